//! Source bytes and rows -> Arrow record batches.
//!
//! `pgcopy` parses PostgreSQL's binary COPY stream straight into Arrow builders, and
//! `error` says what can go wrong doing so; the SQLite decoder lives with its source, as
//! sqlx hands over rows.

pub mod error;
pub mod pgcopy;
