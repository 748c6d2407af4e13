//! The source-type -> Arrow-type table, readable like a spec. The default rendering of every
//! type is exact: what PostgreSQL returns is what the Parquet file holds. Lossy renderings
//! exist only as explicit, user-selected options ([`TypeOptions`]), globally or per column.
//! The user-facing version of this table, with what pandas, polars, pyarrow and DuckDB make
//! of each type, is `docs/types.md`.
//!
//! | PostgreSQL                               | Arrow (default)                         | option (lossy or alternative)   |
//! |------------------------------------------|-----------------------------------------|---------------------------------|
//! | bool                                     | Boolean                                 |                                 |
//! | int2 / int4 / int8                       | Int16 / Int32 / Int64                   |                                 |
//! | oid, xid, cid / xid8                     | UInt32 / UInt64                         |                                 |
//! | float4 / float8 (NaN, ±Infinity kept)    | Float32 / Float64                       |                                 |
//! | numeric(p,s), 0 <= s <= p <= 38          | Decimal128(p, s)                        | `numeric`: text, float64, decimal(P,S) |
//! | numeric (no precision, or p > 38, s < 0) | Utf8: the exact decimal text, NaN, ±Infinity | `numeric`: float64, decimal(P,S) |
//! | money                                    | Decimal128(19, 2): minor units exact    |                                 |
//! | text, varchar, bpchar, name, "char", xml, citext, ltree, lquery, ltxtquery, jsonpath, refcursor, unknown | Utf8 | |
//! | json / jsonb                             | Utf8 + arrow.json (Parquet JSON)        |                                 |
//! | enums                                    | Utf8 (the label)                        | `enums`: dictionary             |
//! | bytea                                    | Binary                                  |                                 |
//! | date                                     | Date32                                  | `infinity`: error, null, clamp  |
//! | time                                     | Time64(µs)                              | `infinity` (for 24:00:00)       |
//! | timetz                                   | Struct{time: Time64(µs), utc_offset: Int32 seconds east} | `timetz`: utc, text |
//! | timestamp / timestamptz                  | Timestamp(µs) / Timestamp(µs, "UTC")    | `infinity`: error, null, clamp  |
//! | interval                                 | Struct{months: Int32, days: Int32, microseconds: Int64} | `interval`: duration, text; `infinity` |
//! | uuid                                     | FixedSizeBinary(16) + arrow.uuid; inside arrays, composites and ranges its text | `uuid`: string |
//! | inet, cidr, macaddr, macaddr8, bit, varbit | Utf8, as PostgreSQL prints it         |                                 |
//! | point                                    | Struct{x: Float64, y: Float64}          |                                 |
//! | hstore                                   | Map<Utf8, Utf8>                         |                                 |
//! | vector (pgvector)                        | List<Float32>                           |                                 |
//! | T[] (any supported T)                    | List<T>, nested once per dimension (declared by the table column, else 1) | `array_dims`: N; `array_bounds`: error, ignore |
//! | range of T / multirange of T             | Struct{lower, upper: T, lower_inclusive, upper_inclusive, empty: Boolean} / List of it | |
//! | composite types                          | Struct of the fields                    |                                 |
//! | domains                                  | as their base type                      |                                 |
//! | tsvector, tsquery, pg_lsn, tid, geometric types but point, reg* types, snapshots, ... | Utf8 through a server-side `::text` cast | |
//! | anything else                            | Utf8 through a server-side `::text` cast, with a warning naming the column | |
//!
//! Every column can also be read as PostgreSQL's text with the `text` option.
//!
//! SQLite has no column types, only declared types and per-value storage classes; see
//! [`SqliteKind`] for the rule. MySQL's and MariaDB's table is [`MysqlKind`]'s module.
//!
//! The table is split by what each part answers: `options` (the rendering choices a
//! user makes, per job or per column), `postgres` (the table itself: a PostgreSQL type
//! to the [`PgKind`] the decoder reads and the Arrow type it makes), `unify` (the column
//! that holds two shards' types exactly), `sqlite` (SQLite's rule) and `readers` (the
//! reader profiles of `--for`: what Spark, Trino, BigQuery, DuckDB and pandas open, and
//! the exact renderings a profile writes for them).

pub mod mysql;
mod options;
mod postgres;
mod readers;
mod sqlite;
mod unify;

use arrow::datatypes::Field;

pub use mysql::{MysqlColumnType, MysqlKind};
pub use options::{
    ArrayBoundsMode, EnumMode, InfinityMode, IntervalMode, InvalidValue, NumericMode, TimeTzMode,
    TypeOptionError, TypeOptions, TypeOverrides, TypeRules, UuidMode,
};
pub use postgres::{ColumnPlan, PgKind, TextReason, hstore_entries};
pub use readers::{
    Conversion, NoExactForm, Profile, ProfilePlan, Reader, ReaderNotes, ReaderWarning,
    ReaderWarningNote, Readers, Rendering, Shape, Verdict, convert,
};
pub use sqlite::SqliteKind;
pub use unify::{NUMERIC_TEXT_KEY, unify, unify_fields};

/// The largest precision Decimal128 holds.
pub const DECIMAL128_MAX_PRECISION: u8 = 38;

/// PostgreSQL arrays have at most this many dimensions.
pub const MAX_ARRAY_DIMS: u8 = 6;

/// Digits after the point in `money`'s minor units. PostgreSQL takes them from
/// `lc_monetary`; the source checks the server agrees before decoding (see `source::postgres`).
pub const MONEY_SCALE: i8 = 2;

/// A type's name for messages: Arrow's name, with canonical extensions named.
pub fn describe_field(field: &Field) -> String {
    match field.extension_type_name() {
        Some(ext) => format!("{} ({ext})", field.data_type()),
        None => field.data_type().to_string(),
    }
}
