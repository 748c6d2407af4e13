//! Source bytes and rows -> Arrow record batches.
//!
//! `pgcopy` parses PostgreSQL's binary COPY stream straight into Arrow builders; the
//! SQLite decoder lives with its source, as sqlx hands over rows.

pub mod pgcopy;
