//! The source-type -> Arrow-type table. Every mapping here is exact: a type that has no
//! exact Arrow rendering yet is refused with an error naming the column, never guessed.
//!
//! | PostgreSQL                         | Arrow                         | Parquet logical type  |
//! |------------------------------------|-------------------------------|-----------------------|
//! | bool                               | Boolean                       |                       |
//! | int2 / int4 / int8                 | Int16 / Int32 / Int64         | INT(16/32/64)         |
//! | oid                                | UInt32                        | INT(32, unsigned)     |
//! | float4 / float8                    | Float32 / Float64             |                       |
//! | numeric(p,s), p <= 38              | Decimal128(p, s)              | DECIMAL(p, s)         |
//! | numeric (no precision, or p > 38)  | Utf8, the exact decimal text  | STRING                |
//! | text, varchar, bpchar, name, citext, unknown, enums | Utf8         | STRING                |
//! | bytea                              | Binary                        |                       |
//! | date                               | Date32                        | DATE                  |
//! | time                               | Time64(µs)                    | TIME(µs)              |
//! | timestamp                          | Timestamp(µs)                 | TIMESTAMP(µs, local)  |
//! | timestamptz                        | Timestamp(µs, "UTC")          | TIMESTAMP(µs, UTC)    |
//! | uuid                               | FixedSizeBinary(16), arrow.uuid | UUID                |
//! | json / jsonb                       | Utf8, arrow.json              | JSON                  |
//! | domains                            | as their base type            |                       |
//!
//! SQLite has no column types, only declared types and per-value storage classes; see
//! [`SqliteKind`] for the rule.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, TimeUnit};
use tokio_postgres::types::{Kind, Type};

/// The largest precision Decimal128 holds.
const DECIMAL128_MAX_PRECISION: i32 = 38;

/// How one PostgreSQL column is decoded (from its binary COPY form) and typed in Arrow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgKind {
    Bool,
    Int2,
    Int4,
    Int8,
    Oid,
    Float4,
    Float8,
    /// `numeric(p,s)` with `p <= 38`: exact, as Decimal128(p, s).
    Decimal {
        precision: u8,
        scale: i8,
    },
    /// `numeric` without a declared precision (or wider than Decimal128): the exact
    /// decimal text, never a float.
    NumericText,
    Text,
    Bytea,
    Date,
    Time,
    Timestamp,
    TimestampTz,
    Uuid,
    Json,
    Jsonb,
}

/// A column type the table has no row for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported {
    pub type_name: String,
    pub hint: Option<String>,
}

impl PgKind {
    /// Looks a column's type up in the table. `typmod` is the column's type modifier
    /// (it carries numeric's precision and scale).
    pub fn of(ty: &Type, typmod: i32) -> Result<PgKind, Unsupported> {
        let kind = match *ty {
            Type::BOOL => PgKind::Bool,
            Type::INT2 => PgKind::Int2,
            Type::INT4 => PgKind::Int4,
            Type::INT8 => PgKind::Int8,
            Type::OID => PgKind::Oid,
            Type::FLOAT4 => PgKind::Float4,
            Type::FLOAT8 => PgKind::Float8,
            Type::NUMERIC => numeric(typmod),
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => PgKind::Text,
            Type::BYTEA => PgKind::Bytea,
            Type::DATE => PgKind::Date,
            Type::TIME => PgKind::Time,
            Type::TIMESTAMP => PgKind::Timestamp,
            Type::TIMESTAMPTZ => PgKind::TimestampTz,
            Type::UUID => PgKind::Uuid,
            Type::JSON => PgKind::Json,
            Type::JSONB => PgKind::Jsonb,
            _ => match ty.kind() {
                // A domain is sent in its base type's binary form.
                Kind::Domain(base) => return PgKind::of(base, -1),
                // Enum labels are sent as their text.
                Kind::Enum(_) => PgKind::Text,
                Kind::Simple if ty.name() == "citext" => PgKind::Text,
                _ => {
                    return Err(Unsupported {
                        type_name: ty.name().to_string(),
                        hint: Some("cast it in the query, e.g. `expr::text`".to_string()),
                    });
                }
            },
        };
        Ok(kind)
    }

    /// The Arrow field for a column of this kind.
    pub fn field(&self, name: &str) -> Field {
        let data_type = match *self {
            PgKind::Bool => DataType::Boolean,
            PgKind::Int2 => DataType::Int16,
            PgKind::Int4 => DataType::Int32,
            PgKind::Int8 => DataType::Int64,
            PgKind::Oid => DataType::UInt32,
            PgKind::Float4 => DataType::Float32,
            PgKind::Float8 => DataType::Float64,
            PgKind::Decimal { precision, scale } => DataType::Decimal128(precision, scale),
            PgKind::NumericText | PgKind::Text | PgKind::Json | PgKind::Jsonb => DataType::Utf8,
            PgKind::Bytea => DataType::Binary,
            PgKind::Date => DataType::Date32,
            PgKind::Time => DataType::Time64(TimeUnit::Microsecond),
            PgKind::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            PgKind::TimestampTz => {
                DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC")))
            }
            PgKind::Uuid => DataType::FixedSizeBinary(16),
        };
        let field = Field::new(name, data_type, true);
        match self {
            PgKind::Uuid => field.with_extension_type(arrow_schema::extension::Uuid),
            PgKind::Json | PgKind::Jsonb => {
                field.with_extension_type(arrow_schema::extension::Json::default())
            }
            _ => field,
        }
    }
}

/// numeric's type modifier is `((precision << 16) | scale) + 4`, or -1 when undeclared.
fn numeric(typmod: i32) -> PgKind {
    if typmod < 4 {
        return PgKind::NumericText;
    }
    let precision = ((typmod - 4) >> 16) & 0xffff;
    let scale = (typmod - 4) & 0xffff;
    if precision == 0 || precision > DECIMAL128_MAX_PRECISION || scale > precision {
        // Scale above precision (allowed since PostgreSQL 15) and negative scales are
        // not representable as Decimal128(p, s) with the same meaning: keep the text.
        return PgKind::NumericText;
    }
    PgKind::Decimal {
        precision: precision as u8,
        scale: scale as i8,
    }
}

/// How one SQLite result column is typed. SQLite values carry their own storage class
/// (NULL, INTEGER, REAL, TEXT, BLOB) whatever the column declares, so the rule is:
///
/// 1. A column read straight from a table uses its declared type, by SQLite's affinity
///    rules plus the usual date names: `INT…` -> Int64; `CHAR`/`CLOB`/`TEXT` -> Utf8;
///    `BLOB` -> Binary; `REAL`/`FLOA`/`DOUB` -> Float64; `BOOL…` -> Boolean;
///    `DATE` -> Date32 (ISO-8601 text); `DATETIME`/`TIMESTAMP` -> Timestamp(µs)
///    (ISO-8601 text, or Unix seconds as numbers); `TIME` -> Time64(µs).
/// 2. Anything else (expressions, aggregates, `NUMERIC`) is typed by its values in the
///    first batch of rows: all integers -> Int64; integers and reals -> Float64; any
///    text -> Utf8; blobs -> Binary. A column that is NULL throughout the first batch has
///    no type yet (Arrow Null) and takes the type another shard gives it.
///
/// A value that does not fit its column's type is an error naming the column (for
/// example text in an `INTEGER` column); integers in a Float64 column are widened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqliteKind {
    Int64,
    Float64,
    Text,
    Blob,
    Bool,
    Date,
    Timestamp,
    Time,
    /// No declared type: decided by the values (rule 2).
    ByValue,
}

impl SqliteKind {
    /// The kind for a declared type name (as sqlx reports it).
    pub fn from_declared(decl: &str) -> SqliteKind {
        match decl.to_ascii_uppercase().as_str() {
            "INTEGER" | "INT4" | "INT8" | "BIGINT" => SqliteKind::Int64,
            "REAL" => SqliteKind::Float64,
            "TEXT" => SqliteKind::Text,
            "BLOB" => SqliteKind::Blob,
            "BOOLEAN" => SqliteKind::Bool,
            "DATE" => SqliteKind::Date,
            "DATETIME" => SqliteKind::Timestamp,
            "TIME" => SqliteKind::Time,
            _ => SqliteKind::ByValue,
        }
    }

    /// The Arrow type, for kinds fixed by their declaration.
    pub fn data_type(&self) -> Option<DataType> {
        Some(match self {
            SqliteKind::Int64 => DataType::Int64,
            SqliteKind::Float64 => DataType::Float64,
            SqliteKind::Text => DataType::Utf8,
            SqliteKind::Blob => DataType::Binary,
            SqliteKind::Bool => DataType::Boolean,
            SqliteKind::Date => DataType::Date32,
            SqliteKind::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            SqliteKind::Time => DataType::Time64(TimeUnit::Microsecond),
            SqliteKind::ByValue => return None,
        })
    }
}

/// A type's name for messages: Arrow's name, with canonical extensions named.
pub fn describe_field(field: &Field) -> String {
    match field.extension_type_name() {
        Some(ext) => format!("{} ({ext})", field.data_type()),
        None => field.data_type().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_typmods() {
        // numeric(12,2): ((12 << 16) | 2) + 4
        assert_eq!(
            PgKind::of(&Type::NUMERIC, (12 << 16 | 2) + 4),
            Ok(PgKind::Decimal {
                precision: 12,
                scale: 2
            })
        );
        assert_eq!(
            PgKind::of(&Type::NUMERIC, (38 << 16) + 4),
            Ok(PgKind::Decimal {
                precision: 38,
                scale: 0
            })
        );
        assert_eq!(PgKind::of(&Type::NUMERIC, -1), Ok(PgKind::NumericText));
        assert_eq!(
            PgKind::of(&Type::NUMERIC, (39 << 16 | 2) + 4),
            Ok(PgKind::NumericText)
        );
    }

    #[test]
    fn unsupported_types_are_named() {
        let err = PgKind::of(&Type::INET, -1).unwrap_err();
        assert_eq!(err.type_name, "inet");
        assert!(PgKind::of(&Type::INT4_ARRAY, -1).is_err());
    }

    #[test]
    fn timestamptz_is_utc_and_uuid_is_tagged() {
        let f = PgKind::TimestampTz.field("t");
        assert_eq!(
            f.data_type(),
            &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        );
        let f = PgKind::Uuid.field("u");
        assert_eq!(f.extension_type_name(), Some("arrow.uuid"));
        let f = PgKind::Jsonb.field("j");
        assert_eq!(f.extension_type_name(), Some("arrow.json"));
    }

    #[test]
    fn sqlite_declared_types() {
        assert_eq!(SqliteKind::from_declared("integer"), SqliteKind::Int64);
        assert_eq!(SqliteKind::from_declared("DATETIME"), SqliteKind::Timestamp);
        assert_eq!(SqliteKind::from_declared("NULL"), SqliteKind::ByValue);
        assert_eq!(SqliteKind::from_declared("NUMERIC"), SqliteKind::ByValue);
    }
}
