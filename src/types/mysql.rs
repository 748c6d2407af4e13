//! MySQL's and MariaDB's table: a result column's protocol metadata (type code, flags,
//! collation, display length, decimals, MariaDB's extended type name) to the
//! [`MysqlKind`] the decoder reads and the Arrow type it makes. Every default is exact.
//!
//! | MySQL / MariaDB                                  | Arrow                                     |
//! |--------------------------------------------------|-------------------------------------------|
//! | TINYINT / SMALLINT / MEDIUMINT / INT / BIGINT    | Int8 / Int16 / Int32 / Int32 / Int64      |
//! | the same UNSIGNED                                | UInt8 / UInt16 / UInt32 / UInt32 / UInt64 |
//! | BOOL (TINYINT(1))                                | Boolean (a value other than 0 or 1 is an error) |
//! | DECIMAL(p,s), p <= 38                            | Decimal128(p, s)                          |
//! | DECIMAL(p,s), p > 38                             | Utf8: the exact decimal text              |
//! | FLOAT / DOUBLE                                   | Float32 / Float64                         |
//! | BIT(n)                                           | UInt64 (the bits as a number)             |
//! | YEAR                                             | Int16                                     |
//! | DATE                                             | Date32                                    |
//! | DATETIME(fsp)                                    | Timestamp(µs)                             |
//! | TIMESTAMP(fsp)                                   | Timestamp(µs, "UTC") (session time zone +00:00) |
//! | TIME(fsp), negative and > 24 h included          | Duration(µs)                              |
//! | CHAR, VARCHAR, TEXT, ENUM, SET (utf8mb4)         | Utf8                                      |
//! | BINARY, VARBINARY, BLOB (binary collation)       | Binary                                    |
//! | JSON (MySQL's type, MariaDB's `format=json`)     | Utf8 + arrow.json (Parquet JSON)          |
//! | GEOMETRY and its subtypes                        | Binary: WKB (the SRID prefix removed)     |
//! | UUID (MariaDB)                                   | FixedSizeBinary(16) + arrow.uuid; `uuid`: string |
//! | INET6, INET4 (MariaDB)                           | Utf8, as the server prints it             |
//! | NULL (an untyped NULL expression)                | Null                                      |
//!
//! Zero dates (`0000-00-00`, and dates with a zero month or day) have no Arrow value: by
//! default a run fails naming the column; with `infinity = null` they become NULL.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, TimeUnit};

use super::{DECIMAL128_MAX_PRECISION, UuidMode};

/// The protocol's column type codes (`enum_field_types`).
pub mod code {
    pub const DECIMAL: u8 = 0x00;
    pub const TINY: u8 = 0x01;
    pub const SHORT: u8 = 0x02;
    pub const LONG: u8 = 0x03;
    pub const FLOAT: u8 = 0x04;
    pub const DOUBLE: u8 = 0x05;
    pub const NULL: u8 = 0x06;
    pub const TIMESTAMP: u8 = 0x07;
    pub const LONGLONG: u8 = 0x08;
    pub const INT24: u8 = 0x09;
    pub const DATE: u8 = 0x0a;
    pub const TIME: u8 = 0x0b;
    pub const DATETIME: u8 = 0x0c;
    pub const YEAR: u8 = 0x0d;
    pub const VARCHAR: u8 = 0x0f;
    pub const BIT: u8 = 0x10;
    pub const JSON: u8 = 0xf5;
    pub const NEWDECIMAL: u8 = 0xf6;
    pub const ENUM: u8 = 0xf7;
    pub const SET: u8 = 0xf8;
    pub const TINY_BLOB: u8 = 0xf9;
    pub const MEDIUM_BLOB: u8 = 0xfa;
    pub const LONG_BLOB: u8 = 0xfb;
    pub const BLOB: u8 = 0xfc;
    pub const VAR_STRING: u8 = 0xfd;
    pub const STRING: u8 = 0xfe;
    pub const GEOMETRY: u8 = 0xff;
}

/// Column definition flags.
const UNSIGNED_FLAG: u16 = 32;
const ENUM_FLAG: u16 = 256;
const SET_FLAG: u16 = 2048;
/// The `binary` collation: bytes, not text.
const BINARY_COLLATION: u16 = 63;

/// What the server says of a result column, as the protocol sends it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MysqlColumnType {
    pub code: u8,
    pub flags: u16,
    pub collation: u16,
    /// The display length: a DECIMAL's digits and sign, BIT's bits, TINYINT(1)'s 1.
    pub length: u32,
    /// Digits after the point (a DECIMAL's scale).
    pub decimals: u8,
    /// MariaDB's extended type name (`uuid`, `inet6`, `point`...), empty when none.
    pub extended: String,
    /// MariaDB's extended format (`json`), empty when none.
    pub format: String,
}

impl MysqlColumnType {
    fn unsigned(&self) -> bool {
        self.flags & UNSIGNED_FLAG != 0
    }

    /// The type as MySQL writes it, for messages and `tributary check`.
    pub fn name(&self) -> String {
        let unsigned = if self.unsigned() { " UNSIGNED" } else { "" };
        let binary = self.collation == BINARY_COLLATION;
        match (self.code, self.extended.as_str()) {
            (_, "uuid") => "UUID".into(),
            (_, "inet6") => "INET6".into(),
            (_, "inet4") => "INET4".into(),
            (code::GEOMETRY, ext) if !ext.is_empty() => ext.to_ascii_uppercase(),
            _ if self.format == "json" => "JSON".into(),
            (code::TINY, _) if self.length == 1 && !self.unsigned() => "BOOL".into(),
            (code::TINY, _) => format!("TINYINT{unsigned}"),
            (code::SHORT, _) => format!("SMALLINT{unsigned}"),
            (code::INT24, _) => format!("MEDIUMINT{unsigned}"),
            (code::LONG, _) => format!("INT{unsigned}"),
            (code::LONGLONG, _) => format!("BIGINT{unsigned}"),
            (code::DECIMAL | code::NEWDECIMAL, _) => {
                let (p, s) = self.decimal();
                format!("DECIMAL({p},{s}){unsigned}")
            }
            (code::FLOAT, _) => "FLOAT".into(),
            (code::DOUBLE, _) => "DOUBLE".into(),
            (code::NULL, _) => "NULL".into(),
            (code::TIMESTAMP, _) => "TIMESTAMP".into(),
            (code::DATE, _) => "DATE".into(),
            (code::TIME, _) => "TIME".into(),
            (code::DATETIME, _) => "DATETIME".into(),
            (code::YEAR, _) => "YEAR".into(),
            (code::BIT, _) => format!("BIT({})", self.length),
            (code::JSON, _) => "JSON".into(),
            (code::GEOMETRY, _) => "GEOMETRY".into(),
            _ if self.flags & ENUM_FLAG != 0 || self.code == code::ENUM => "ENUM".into(),
            _ if self.flags & SET_FLAG != 0 || self.code == code::SET => "SET".into(),
            (code::STRING, _) if binary => "BINARY".into(),
            (code::STRING, _) => "CHAR".into(),
            (code::VARCHAR | code::VAR_STRING, _) if binary => "VARBINARY".into(),
            (code::VARCHAR | code::VAR_STRING, _) => "VARCHAR".into(),
            (code::TINY_BLOB | code::MEDIUM_BLOB | code::LONG_BLOB | code::BLOB, _) if binary => {
                "BLOB".into()
            }
            (code::TINY_BLOB | code::MEDIUM_BLOB | code::LONG_BLOB | code::BLOB, _) => {
                "TEXT".into()
            }
            (other, _) => format!("type {other:#04x}"),
        }
    }

    /// A DECIMAL's precision and scale. The protocol sends the display length: the
    /// digits, plus one for the point when there is a scale, plus one for the sign
    /// unless UNSIGNED.
    fn decimal(&self) -> (u32, u8) {
        let s = self.decimals;
        let extra = u32::from(s > 0) + u32::from(!self.unsigned());
        let p = self.length.saturating_sub(extra).max(u32::from(s)).max(1);
        (p, s)
    }
}

/// How a column is decoded and what it becomes in Arrow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MysqlKind {
    Null,
    Bool,
    Int8,
    Int16,
    Int32,
    Int64,
    UInt8,
    UInt16,
    UInt32,
    UInt64,
    Float32,
    Float64,
    Decimal {
        precision: u8,
        scale: i8,
    },
    /// A DECIMAL wider than Decimal128: its exact text.
    DecimalText,
    Bit,
    Year,
    Date,
    Datetime,
    Timestamp,
    Time,
    Text,
    Json,
    Binary,
    /// WKB after the 4-byte SRID the server puts first.
    Geometry,
    Uuid(UuidMode),
}

impl MysqlKind {
    /// The kind of a column; `None` when tributary cannot read the type.
    pub fn of(t: &MysqlColumnType, uuid: UuidMode) -> Option<MysqlKind> {
        let unsigned = t.unsigned();
        Some(match (t.code, t.extended.as_str()) {
            (_, "uuid") => MysqlKind::Uuid(uuid),
            (_, "inet6" | "inet4") => MysqlKind::Text,
            (code::GEOMETRY, _) => MysqlKind::Geometry,
            (code::JSON, _) => MysqlKind::Json,
            _ if t.format == "json" => MysqlKind::Json,
            (code::NULL, _) => MysqlKind::Null,
            (code::TINY, _) if t.length == 1 && !unsigned => MysqlKind::Bool,
            (code::TINY, _) if unsigned => MysqlKind::UInt8,
            (code::TINY, _) => MysqlKind::Int8,
            (code::SHORT, _) if unsigned => MysqlKind::UInt16,
            (code::SHORT, _) => MysqlKind::Int16,
            (code::INT24 | code::LONG, _) if unsigned => MysqlKind::UInt32,
            (code::INT24 | code::LONG, _) => MysqlKind::Int32,
            (code::LONGLONG, _) if unsigned => MysqlKind::UInt64,
            (code::LONGLONG, _) => MysqlKind::Int64,
            (code::FLOAT, _) => MysqlKind::Float32,
            (code::DOUBLE, _) => MysqlKind::Float64,
            (code::DECIMAL | code::NEWDECIMAL, _) => {
                let (p, s) = t.decimal();
                if p <= u32::from(DECIMAL128_MAX_PRECISION) && s <= DECIMAL128_MAX_PRECISION {
                    MysqlKind::Decimal {
                        precision: p as u8,
                        scale: s as i8,
                    }
                } else {
                    MysqlKind::DecimalText
                }
            }
            (code::BIT, _) => MysqlKind::Bit,
            (code::YEAR, _) => MysqlKind::Year,
            (code::DATE, _) => MysqlKind::Date,
            (code::DATETIME, _) => MysqlKind::Datetime,
            (code::TIMESTAMP, _) => MysqlKind::Timestamp,
            (code::TIME, _) => MysqlKind::Time,
            (
                code::STRING
                | code::VARCHAR
                | code::VAR_STRING
                | code::ENUM
                | code::SET
                | code::TINY_BLOB
                | code::MEDIUM_BLOB
                | code::LONG_BLOB
                | code::BLOB,
                _,
            ) => {
                // ENUM and SET are text whatever their collation says.
                if t.collation == BINARY_COLLATION && t.flags & (ENUM_FLAG | SET_FLAG) == 0 {
                    MysqlKind::Binary
                } else {
                    MysqlKind::Text
                }
            }
            _ => return None,
        })
    }

    pub fn data_type(self) -> DataType {
        match self {
            MysqlKind::Null => DataType::Null,
            MysqlKind::Bool => DataType::Boolean,
            MysqlKind::Int8 => DataType::Int8,
            MysqlKind::Int16 | MysqlKind::Year => DataType::Int16,
            MysqlKind::Int32 => DataType::Int32,
            MysqlKind::Int64 => DataType::Int64,
            MysqlKind::UInt8 => DataType::UInt8,
            MysqlKind::UInt16 => DataType::UInt16,
            MysqlKind::UInt32 => DataType::UInt32,
            MysqlKind::UInt64 | MysqlKind::Bit => DataType::UInt64,
            MysqlKind::Float32 => DataType::Float32,
            MysqlKind::Float64 => DataType::Float64,
            MysqlKind::Decimal { precision, scale } => DataType::Decimal128(precision, scale),
            MysqlKind::DecimalText
            | MysqlKind::Text
            | MysqlKind::Json
            | MysqlKind::Uuid(UuidMode::String) => DataType::Utf8,
            MysqlKind::Binary | MysqlKind::Geometry => DataType::Binary,
            MysqlKind::Uuid(_) => DataType::FixedSizeBinary(16),
            MysqlKind::Date => DataType::Date32,
            MysqlKind::Datetime => DataType::Timestamp(TimeUnit::Microsecond, None),
            MysqlKind::Timestamp => {
                DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC")))
            }
            MysqlKind::Time => DataType::Duration(TimeUnit::Microsecond),
        }
    }

    /// The Arrow field, with the canonical extension types (JSON, UUID) PostgreSQL's
    /// columns get.
    pub fn field(self, name: &str) -> Field {
        let field = Field::new(name, self.data_type(), true);
        match self {
            MysqlKind::Json => field.with_extension_type(arrow_schema::extension::Json::default()),
            MysqlKind::Uuid(UuidMode::Binary) => {
                field.with_extension_type(arrow_schema::extension::Uuid)
            }
            _ => field,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(code: u8, flags: u16, collation: u16, length: u32, decimals: u8) -> MysqlColumnType {
        MysqlColumnType {
            code,
            flags,
            collation,
            length,
            decimals,
            ..Default::default()
        }
    }

    fn kind(t: &MysqlColumnType) -> MysqlKind {
        MysqlKind::of(t, UuidMode::Binary).unwrap()
    }

    #[test]
    fn integers_keep_their_sign_and_width() {
        assert_eq!(kind(&column(code::TINY, 0, 63, 4, 0)), MysqlKind::Int8);
        assert_eq!(kind(&column(code::TINY, 0, 63, 1, 0)), MysqlKind::Bool);
        assert_eq!(kind(&column(code::TINY, 32, 63, 1, 0)), MysqlKind::UInt8);
        assert_eq!(kind(&column(code::INT24, 32, 63, 8, 0)), MysqlKind::UInt32);
        let big = column(code::LONGLONG, 32, 63, 20, 0);
        assert_eq!(kind(&big), MysqlKind::UInt64);
        assert_eq!(big.name(), "BIGINT UNSIGNED");
    }

    #[test]
    fn decimals_take_precision_from_the_display_length() {
        // DECIMAL(10,2): 10 digits, a point and a sign.
        let d = column(code::NEWDECIMAL, 0, 63, 12, 2);
        assert_eq!(
            kind(&d),
            MysqlKind::Decimal {
                precision: 10,
                scale: 2
            }
        );
        assert_eq!(d.name(), "DECIMAL(10,2)");
        // DECIMAL(5,0) UNSIGNED: no point, no sign.
        assert_eq!(
            kind(&column(code::NEWDECIMAL, 32, 63, 5, 0)),
            MysqlKind::Decimal {
                precision: 5,
                scale: 0
            }
        );
        // DECIMAL(65,30) does not fit Decimal128.
        assert_eq!(
            kind(&column(code::NEWDECIMAL, 0, 63, 67, 30)),
            MysqlKind::DecimalText
        );
    }

    #[test]
    fn text_binary_json_and_mariadb_types() {
        assert_eq!(
            kind(&column(code::VAR_STRING, 0, 45, 400, 0)),
            MysqlKind::Text
        );
        assert_eq!(
            kind(&column(code::VAR_STRING, 128, 63, 16, 0)),
            MysqlKind::Binary
        );
        assert_eq!(
            kind(&column(code::BLOB, 16, 63, 65535, 0)),
            MysqlKind::Binary
        );
        assert_eq!(kind(&column(code::STRING, 256, 63, 4, 0)), MysqlKind::Text);
        assert_eq!(kind(&column(code::JSON, 0, 63, 0, 0)), MysqlKind::Json);
        let mut json = column(code::BLOB, 16, 45, 0, 0);
        json.format = "json".into();
        assert_eq!(kind(&json), MysqlKind::Json);
        let mut uuid = column(code::STRING, 0, 8, 36, 0);
        uuid.extended = "uuid".into();
        assert_eq!(kind(&uuid), MysqlKind::Uuid(UuidMode::Binary));
        assert_eq!(
            MysqlKind::Uuid(UuidMode::Binary)
                .field("u")
                .extension_type_name(),
            Some("arrow.uuid")
        );
        assert_eq!(
            MysqlKind::Json.field("j").extension_type_name(),
            Some("arrow.json")
        );
    }
}
