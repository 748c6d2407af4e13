//! SQLite's rule: a result column's Arrow type from its declared type, else from its
//! values.

use arrow::datatypes::{DataType, TimeUnit};

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

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn sqlite_declared_types() {
        assert_eq!(SqliteKind::from_declared("integer"), SqliteKind::Int64);
        assert_eq!(SqliteKind::from_declared("DATETIME"), SqliteKind::Timestamp);
        assert_eq!(SqliteKind::from_declared("NULL"), SqliteKind::ByValue);
        assert_eq!(SqliteKind::from_declared("NUMERIC"), SqliteKind::ByValue);
    }
}
