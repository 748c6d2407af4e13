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
//! [`SqliteKind`] for the rule.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, FieldRef, Fields, TimeUnit};
use tokio_postgres::types::{Kind, Type};

/// The largest precision Decimal128 holds.
pub const DECIMAL128_MAX_PRECISION: u8 = 38;
/// PostgreSQL arrays have at most this many dimensions.
pub const MAX_ARRAY_DIMS: u8 = 6;
/// Digits after the point in `money`'s minor units. PostgreSQL takes them from
/// `lc_monetary`; the source checks the server agrees before decoding (see `source::postgres`).
pub const MONEY_SCALE: i8 = 2;

macro_rules! option_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
        #[non_exhaustive]
        pub enum $name {
            #[default]
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            /// The accepted spellings, for messages and docs.
            pub const NAMES: &'static [&'static str] = &[$($text),+];
        }

        impl FromStr for $name {
            type Err = InvalidValue;
            fn from_str(s: &str) -> Result<Self, InvalidValue> {
                match s.trim().to_ascii_lowercase().as_str() {
                    $($text => Ok($name::$variant),)+
                    _ => Err(InvalidValue::NotOneOf {
                        value: s.to_string(),
                        expected: Self::NAMES,
                    }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(match self { $($name::$variant => $text),+ })
            }
        }
    };
}

option_enum! {
    /// How `uuid` is rendered.
    UuidMode {
        /// FixedSizeBinary(16) tagged arrow.uuid: Parquet's UUID logical type (DuckDB reads UUID).
        Binary = "binary",
        /// The canonical hyphenated lowercase text (polars and pandas show it as a string).
        String = "string"
    }
}

option_enum! {
    /// How enum values are rendered.
    EnumMode {
        /// The label as Utf8.
        Text = "text",
        /// Dictionary(Int32, Utf8): pandas `category`, polars `Categorical`.
        Dictionary = "dictionary"
    }
}

option_enum! {
    /// How `interval` is rendered. arrow-rs cannot write Arrow's Interval(MonthDayNano) to
    /// Parquet, and PostgreSQL intervals keep months, days and time apart.
    IntervalMode {
        /// Struct{months: Int32, days: Int32, microseconds: Int64}: exact.
        Struct = "struct",
        /// Duration(µs), counting a month as 30 days and a day as 24 hours: lossy.
        Duration = "duration",
        /// PostgreSQL's text (server-side cast, under the session's `IntervalStyle`).
        Text = "text"
    }
}

option_enum! {
    /// How `timetz` is rendered.
    TimeTzMode {
        /// Struct{time: Time64(µs) as written, utc_offset: Int32 seconds east of UTC}: exact.
        Struct = "struct",
        /// Time64(µs) moved to UTC; the offset is dropped: lossy.
        Utc = "utc",
        /// PostgreSQL's text (server-side cast).
        Text = "text"
    }
}

option_enum! {
    /// What happens to values the Arrow type cannot hold: date, timestamp and interval
    /// ±infinity, NaN or ±Infinity in a numeric column read as a decimal, and time
    /// 24:00:00 (Arrow's Time64 ends at 23:59:59.999999).
    InfinityMode {
        /// The run fails with an error naming the column: nothing changes silently.
        Error = "error",
        /// The value becomes NULL.
        Null = "null",
        /// ±infinity becomes the type's largest/smallest value: for dates and timestamps
        /// DuckDB's own ±infinity (i32::MAX / -i32::MAX days, i64::MAX / -i64::MAX µs),
        /// for decimals ±(10^p - 1), for intervals every field at ±its largest value
        /// (a duration: ±i64::MAX µs). A numeric NaN becomes NULL. Time 24:00:00 becomes
        /// 23:59:59.999999.
        Clamp = "clamp"
    }
}

option_enum! {
    /// What happens to an array whose subscripts do not start at 1 (`'[0:2]={1,2,3}'`):
    /// a List keeps the elements in order but has no lower bound.
    ArrayBoundsMode {
        /// The run fails with an error naming the column: nothing changes silently.
        Error = "error",
        /// The elements are kept and the bounds dropped: element `[0]` becomes the
        /// list's first. Lossy.
        Ignore = "ignore"
    }
}

/// Why a type option's value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidValue {
    #[error("`{value}` is not one of {}", expected.join(", "))]
    NotOneOf {
        value: String,
        expected: &'static [&'static str],
    },
    #[error("`{0}`: a decimal needs 1 <= precision <= 38 and 0 <= scale <= precision")]
    DecimalBounds(String),
    #[error("`{0}` is not true or false")]
    NotBool(String),
    #[error("`{0}` is not a number from 1 to 6")]
    ArrayDims(String),
}

/// Why a type option could not be set; `{key}: {problem}`, so that the caller can put
/// where it came from in front (`types.columns.total.numeric: ...`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TypeOptionError {
    #[error("{key}: {problem}")]
    Invalid { key: String, problem: InvalidValue },
    #[error("unknown type option `{key}`; the options are {}", TypeOverrides::KEYS.join(", "))]
    UnknownKey { key: String },
}

/// How `numeric` is rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum NumericMode {
    /// Decimal128(p, s) when the column declares a precision that fits, else the exact text.
    #[default]
    Exact,
    /// Always the exact decimal text (NaN and ±Infinity as PostgreSQL prints them).
    Text,
    /// Float64, rounded to nearest: lossy.
    Float64,
    /// Decimal128 of this precision and scale whatever the column declares. A value that
    /// needs more digits is an error, never rounded.
    Decimal { precision: u8, scale: i8 },
}

impl NumericMode {
    pub const NAMES: &'static [&'static str] = &["exact", "text", "float64", "decimal(P,S)"];
}

impl FromStr for NumericMode {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, InvalidValue> {
        let lower = s.trim().to_ascii_lowercase().replace(' ', "");
        let bad = || InvalidValue::NotOneOf {
            value: s.to_string(),
            expected: Self::NAMES,
        };
        Ok(match lower.as_str() {
            "exact" => NumericMode::Exact,
            "text" | "string" => NumericMode::Text,
            "float64" | "float" | "double" => NumericMode::Float64,
            other => {
                let inner = other
                    .strip_prefix("decimal(")
                    .and_then(|r| r.strip_suffix(')'))
                    .ok_or_else(bad)?;
                let (p, s2) = inner.split_once(',').unwrap_or((inner, "0"));
                let precision: u8 = p.parse().map_err(|_| bad())?;
                let scale: i8 = s2.parse().map_err(|_| bad())?;
                if precision == 0
                    || precision > DECIMAL128_MAX_PRECISION
                    || scale < 0
                    || scale as u8 > precision
                {
                    return Err(InvalidValue::DecimalBounds(s.to_string()));
                }
                NumericMode::Decimal { precision, scale }
            }
        })
    }
}

impl fmt::Display for NumericMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NumericMode::Exact => f.write_str("exact"),
            NumericMode::Text => f.write_str("text"),
            NumericMode::Float64 => f.write_str("float64"),
            NumericMode::Decimal { precision, scale } => write!(f, "decimal({precision},{scale})"),
        }
    }
}

/// The rendering choices for one column, resolved (see [`TypeRules::for_column`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TypeOptions {
    pub numeric: NumericMode,
    pub uuid: UuidMode,
    pub enums: EnumMode,
    pub interval: IntervalMode,
    pub timetz: TimeTzMode,
    pub infinity: InfinityMode,
    /// Read the column as PostgreSQL's text (a server-side `::text` cast), whatever its type.
    pub text: bool,
    /// Dimensions of the column's arrays: each becomes one level of List nesting.
    pub array_dims: u8,
    /// What becomes of arrays whose subscripts do not start at 1.
    pub array_bounds: ArrayBoundsMode,
}

impl Default for TypeOptions {
    fn default() -> Self {
        TypeOptions {
            numeric: NumericMode::default(),
            uuid: UuidMode::default(),
            enums: EnumMode::default(),
            interval: IntervalMode::default(),
            timetz: TimeTzMode::default(),
            infinity: InfinityMode::default(),
            text: false,
            array_dims: 1,
            array_bounds: ArrayBoundsMode::default(),
        }
    }
}

/// Options set at one level (the whole job, or one column); unset keys fall through.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TypeOverrides {
    pub numeric: Option<NumericMode>,
    pub uuid: Option<UuidMode>,
    pub enums: Option<EnumMode>,
    pub interval: Option<IntervalMode>,
    pub timetz: Option<TimeTzMode>,
    pub infinity: Option<InfinityMode>,
    pub text: Option<bool>,
    pub array_dims: Option<u8>,
    pub array_bounds: Option<ArrayBoundsMode>,
}

impl TypeOverrides {
    /// The option keys, for messages and docs.
    pub const KEYS: &'static [&'static str] = &[
        "numeric",
        "uuid",
        "enums",
        "interval",
        "timetz",
        "infinity",
        "text",
        "array_dims",
        "array_bounds",
    ];

    /// Sets one option from its key and textual value.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), TypeOptionError> {
        let ctx = |problem: InvalidValue| TypeOptionError::Invalid {
            key: key.trim().to_string(),
            problem,
        };
        match key.trim() {
            "numeric" => self.numeric = Some(value.parse().map_err(ctx)?),
            "uuid" => self.uuid = Some(value.parse().map_err(ctx)?),
            "enums" => self.enums = Some(value.parse().map_err(ctx)?),
            "interval" => self.interval = Some(value.parse().map_err(ctx)?),
            "timetz" => self.timetz = Some(value.parse().map_err(ctx)?),
            "infinity" => self.infinity = Some(value.parse().map_err(ctx)?),
            "array_bounds" => self.array_bounds = Some(value.parse().map_err(ctx)?),
            "text" => {
                self.text = Some(match value.trim() {
                    "true" => true,
                    "false" => false,
                    other => return Err(ctx(InvalidValue::NotBool(other.to_string()))),
                })
            }
            "array_dims" => {
                let n: u8 = value
                    .trim()
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_ARRAY_DIMS).contains(n))
                    .ok_or_else(|| ctx(InvalidValue::ArrayDims(value.to_string())))?;
                self.array_dims = Some(n);
            }
            other => {
                return Err(TypeOptionError::UnknownKey {
                    key: other.to_string(),
                });
            }
        }
        Ok(())
    }

    /// `self` where set, else `base`.
    fn apply(&self, base: TypeOptions) -> TypeOptions {
        TypeOptions {
            numeric: self.numeric.unwrap_or(base.numeric),
            uuid: self.uuid.unwrap_or(base.uuid),
            enums: self.enums.unwrap_or(base.enums),
            interval: self.interval.unwrap_or(base.interval),
            timetz: self.timetz.unwrap_or(base.timetz),
            infinity: self.infinity.unwrap_or(base.infinity),
            text: self.text.unwrap_or(base.text),
            array_dims: self.array_dims.unwrap_or(base.array_dims),
            array_bounds: self.array_bounds.unwrap_or(base.array_bounds),
        }
    }

    /// `other`'s keys over `self`'s.
    pub fn overlay(&mut self, other: &TypeOverrides) {
        macro_rules! take {
            ($($f:ident),*) => { $( if other.$f.is_some() { self.$f = other.$f; } )* };
        }
        take!(
            numeric,
            uuid,
            enums,
            interval,
            timetz,
            infinity,
            text,
            array_dims,
            array_bounds
        );
    }
}

/// The job's rendering rules: options for every column, and per column by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TypeRules {
    pub global: TypeOverrides,
    pub columns: BTreeMap<String, TypeOverrides>,
}

impl TypeRules {
    /// The `array_dims` the user set for a column (its own, else the job's), if any.
    pub fn array_dims_set(&self, name: &str) -> Option<u8> {
        self.columns
            .get(name)
            .and_then(|c| c.array_dims)
            .or(self.global.array_dims)
    }

    /// The options for a result column: its own, else the job's, else the defaults.
    pub fn for_column(&self, name: &str) -> TypeOptions {
        let options = self.global.apply(TypeOptions::default());
        match self.columns.get(name) {
            Some(column) => column.apply(options),
            None => options,
        }
    }
}

/// How one PostgreSQL value is decoded from its binary COPY form: a row of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PgKind {
    Bool,
    Int2,
    Int4,
    Int8,
    /// oid, xid, cid: unsigned 32-bit.
    UInt32,
    /// xid8: unsigned 64-bit.
    UInt64,
    Float4,
    Float8,
    /// numeric as Decimal128(p, s), exactly; values that do not fit are errors.
    Decimal {
        precision: u8,
        scale: i8,
        infinity: InfinityMode,
    },
    /// numeric as its exact decimal text.
    NumericText,
    /// numeric rounded to Float64 (option `numeric = float64`).
    NumericFloat,
    /// money: int8 minor units as Decimal128(19, MONEY_SCALE).
    Money,
    /// Text sent as UTF-8 text (text, varchar, xml, enums, citext, ...).
    Text,
    /// Text after a format version byte (1): ltree, lquery, ltxtquery, jsonpath.
    VersionedText,
    /// "char": one byte.
    Char,
    Json,
    /// jsonb: a version byte, then the JSON text.
    Jsonb,
    /// An enum label as a dictionary entry.
    EnumDictionary,
    Bytea,
    Date(InfinityMode),
    /// time; the mode decides what becomes of 24:00:00, past Time64's last value.
    Time(InfinityMode),
    /// timetz; the infinity mode applies to its time as for `Time`.
    TimeTz(TimeTzMode, InfinityMode),
    Timestamp(InfinityMode),
    TimestampTz(InfinityMode),
    /// interval; the infinity mode applies to PostgreSQL 17's ±infinity.
    Interval(IntervalMode, InfinityMode),
    Uuid(UuidMode),
    /// inet or cidr (cidr prints its mask always).
    Inet {
        cidr: bool,
    },
    /// macaddr (6 bytes) or macaddr8 (8 bytes).
    MacAddr,
    /// bit and varbit, as a string of 0 and 1.
    Bit,
    Point,
    Hstore,
    /// pgvector's `vector`.
    Vector,
    /// An array of `dims` dimensions: `dims` levels of List around the element.
    Array {
        element: Box<PgKind>,
        dims: u8,
        /// Whether subscripts that do not start at 1 are an error or dropped.
        bounds: ArrayBoundsMode,
    },
    Range(Box<PgKind>),
    /// A multirange: a List of its ranges.
    Multirange(Box<PgKind>),
    /// A composite type: a Struct of its fields, in order.
    Composite(Vec<(String, PgKind)>),
}

/// Why a column is read through a server-side `::text` cast rather than decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextReason {
    /// The table maps this type to PostgreSQL's text, or the user asked for it.
    Documented,
    /// The type has no row in the table (a type from an unknown extension, a pseudo-type):
    /// the run warns, naming the column.
    NoMapping { type_name: String },
}

/// What the table says about a result column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnPlan {
    Decode(PgKind),
    /// Cast to text on the server (`col::text` in the COPY query), then read as Utf8.
    ServerText(TextReason),
}

impl ColumnPlan {
    /// Looks a result column's type up in the table. `typmod` is the column's type
    /// modifier (numeric's precision and scale).
    pub fn of(ty: &Type, typmod: i32, options: &TypeOptions) -> ColumnPlan {
        if options.text {
            return ColumnPlan::ServerText(TextReason::Documented);
        }
        match PgKind::of(ty, typmod, options, 0) {
            Ok(kind) => ColumnPlan::Decode(kind),
            Err(reason) => ColumnPlan::ServerText(reason),
        }
    }

    /// The kind the COPY decoder uses for the column.
    pub fn decoder_kind(&self) -> PgKind {
        match self {
            ColumnPlan::Decode(kind) => kind.clone(),
            ColumnPlan::ServerText(_) => PgKind::Text,
        }
    }
}

/// Composite types and ranges nest; past this depth a type is read as text.
const MAX_NESTING: usize = 16;

impl PgKind {
    /// The table's row for a type, or why it is read as text. `depth` guards against
    /// composite types that nest without end.
    fn of(ty: &Type, typmod: i32, o: &TypeOptions, depth: usize) -> Result<PgKind, TextReason> {
        use TextReason::Documented;
        if depth > MAX_NESTING {
            return Err(TextReason::NoMapping {
                type_name: ty.name().to_string(),
            });
        }
        let kind = match *ty {
            Type::BOOL => PgKind::Bool,
            Type::INT2 => PgKind::Int2,
            Type::INT4 => PgKind::Int4,
            Type::INT8 => PgKind::Int8,
            Type::OID | Type::XID | Type::CID => PgKind::UInt32,
            Type::XID8 => PgKind::UInt64,
            Type::FLOAT4 => PgKind::Float4,
            Type::FLOAT8 => PgKind::Float8,
            Type::NUMERIC => numeric(typmod, o),
            Type::MONEY => PgKind::Money,
            Type::TEXT
            | Type::VARCHAR
            | Type::BPCHAR
            | Type::NAME
            | Type::UNKNOWN
            | Type::XML
            | Type::REFCURSOR => PgKind::Text,
            Type::CHAR => PgKind::Char,
            Type::JSONPATH => PgKind::VersionedText,
            Type::JSON => PgKind::Json,
            Type::JSONB => PgKind::Jsonb,
            Type::BYTEA => PgKind::Bytea,
            Type::DATE => PgKind::Date(o.infinity),
            Type::TIME => PgKind::Time(o.infinity),
            Type::TIMETZ if o.timetz == TimeTzMode::Text => return Err(Documented),
            Type::TIMETZ => PgKind::TimeTz(o.timetz, o.infinity),
            Type::TIMESTAMP => PgKind::Timestamp(o.infinity),
            Type::TIMESTAMPTZ => PgKind::TimestampTz(o.infinity),
            Type::INTERVAL if o.interval == IntervalMode::Text => return Err(Documented),
            Type::INTERVAL => PgKind::Interval(o.interval, o.infinity),
            // pandas cannot convert lists of FixedSizeBinary at all (pyarrow 26 raises
            // ArrowNotImplementedError for the whole file): a nested uuid is its text.
            Type::UUID if depth > 0 => PgKind::Uuid(UuidMode::String),
            Type::UUID => PgKind::Uuid(o.uuid),
            Type::INET => PgKind::Inet { cidr: false },
            Type::CIDR => PgKind::Inet { cidr: true },
            Type::MACADDR | Type::MACADDR8 => PgKind::MacAddr,
            Type::BIT | Type::VARBIT => PgKind::Bit,
            Type::POINT => PgKind::Point,
            // Documented text renderings: PostgreSQL's own text is the clearest exact form.
            Type::TS_VECTOR
            | Type::TSQUERY
            | Type::GTS_VECTOR
            | Type::PG_LSN
            | Type::TID
            | Type::TXID_SNAPSHOT
            | Type::PG_SNAPSHOT
            | Type::LINE
            | Type::LSEG
            | Type::BOX
            | Type::PATH
            | Type::POLYGON
            | Type::CIRCLE
            | Type::REGPROC
            | Type::REGPROCEDURE
            | Type::REGOPER
            | Type::REGOPERATOR
            | Type::REGCLASS
            | Type::REGTYPE
            | Type::REGCONFIG
            | Type::REGDICTIONARY
            | Type::REGNAMESPACE
            | Type::REGROLE
            | Type::REGCOLLATION
            | Type::ACLITEM
            | Type::INT2_VECTOR
            | Type::OID_VECTOR
            | Type::PG_NODE_TREE => return Err(Documented),
            _ => match ty.kind() {
                // A domain is sent in its base type's binary form. Its own type modifier
                // (e.g. numeric(10,2)) is not in the row description: see docs/types.md.
                Kind::Domain(base) => return PgKind::of(base, -1, o, depth),
                Kind::Enum(_) => match o.enums {
                    EnumMode::Text => PgKind::Text,
                    EnumMode::Dictionary => PgKind::EnumDictionary,
                },
                Kind::Array(element) => {
                    // An array's type modifier is its element's.
                    let element = PgKind::of(element, typmod, o, depth + 1)?;
                    PgKind::Array {
                        element: Box::new(element),
                        dims: o.array_dims.clamp(1, MAX_ARRAY_DIMS),
                        bounds: o.array_bounds,
                    }
                }
                Kind::Range(sub) => PgKind::Range(Box::new(PgKind::of(sub, -1, o, depth + 1)?)),
                // tokio-postgres names the element type for built-in multiranges and the
                // range type for others: both read as a List of ranges.
                Kind::Multirange(inner) => match PgKind::of(inner, -1, o, depth + 1)? {
                    range @ PgKind::Range(_) => PgKind::Multirange(Box::new(range)),
                    element => PgKind::Multirange(Box::new(PgKind::Range(Box::new(element)))),
                },
                Kind::Composite(fields) if !fields.is_empty() => {
                    let mut out = Vec::with_capacity(fields.len());
                    for f in fields {
                        out.push((
                            f.name().to_string(),
                            PgKind::of(f.type_(), -1, o, depth + 1)?,
                        ));
                    }
                    PgKind::Composite(out)
                }
                Kind::Simple => match ty.name() {
                    "citext" => PgKind::Text,
                    "ltree" | "lquery" | "ltxtquery" => PgKind::VersionedText,
                    "hstore" => PgKind::Hstore,
                    "vector" => PgKind::Vector,
                    _ => return Err(no_mapping(ty)),
                },
                _ => return Err(no_mapping(ty)),
            },
        };
        Ok(kind)
    }

    /// The Arrow type of values of this kind.
    pub fn data_type(&self) -> DataType {
        match self {
            PgKind::Bool => DataType::Boolean,
            PgKind::Int2 => DataType::Int16,
            PgKind::Int4 => DataType::Int32,
            PgKind::Int8 => DataType::Int64,
            PgKind::UInt32 => DataType::UInt32,
            PgKind::UInt64 => DataType::UInt64,
            PgKind::Float4 => DataType::Float32,
            PgKind::Float8 | PgKind::NumericFloat => DataType::Float64,
            PgKind::Decimal {
                precision, scale, ..
            } => DataType::Decimal128(*precision, *scale),
            PgKind::Money => DataType::Decimal128(19, MONEY_SCALE),
            PgKind::NumericText
            | PgKind::Text
            | PgKind::VersionedText
            | PgKind::Char
            | PgKind::Json
            | PgKind::Jsonb
            | PgKind::Inet { .. }
            | PgKind::MacAddr
            | PgKind::Bit
            | PgKind::Uuid(UuidMode::String) => DataType::Utf8,
            PgKind::EnumDictionary => {
                DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
            }
            PgKind::Bytea => DataType::Binary,
            PgKind::Date(_) => DataType::Date32,
            PgKind::Time(_) | PgKind::TimeTz(TimeTzMode::Utc, _) => {
                DataType::Time64(TimeUnit::Microsecond)
            }
            PgKind::Timestamp(_) => DataType::Timestamp(TimeUnit::Microsecond, None),
            PgKind::TimestampTz(_) => {
                DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC")))
            }
            PgKind::Interval(IntervalMode::Duration, _) => {
                DataType::Duration(TimeUnit::Microsecond)
            }
            PgKind::Uuid(_) => DataType::FixedSizeBinary(16),
            PgKind::Vector => {
                DataType::List(Arc::new(Field::new_list_field(DataType::Float32, true)))
            }
            PgKind::Hstore => DataType::Map(hstore_entries(), false),
            PgKind::Array { element, dims, .. } => {
                let mut field = element.nested_field("item");
                for _ in 1..*dims {
                    field = Field::new("item", DataType::List(Arc::new(field)), true);
                }
                DataType::List(Arc::new(field))
            }
            PgKind::Multirange(range) => DataType::List(Arc::new(range.nested_field("item"))),
            PgKind::TimeTz(..)
            | PgKind::Interval(..)
            | PgKind::Point
            | PgKind::Range(_)
            | PgKind::Composite(_) => DataType::Struct(self.struct_fields()),
        }
    }

    /// The fields of kinds rendered as a Struct.
    pub fn struct_fields(&self) -> Fields {
        let f = |name: &str, t: DataType| Field::new(name, t, true);
        match self {
            PgKind::TimeTz(..) => Fields::from(vec![
                f("time", DataType::Time64(TimeUnit::Microsecond)),
                f("utc_offset", DataType::Int32),
            ]),
            PgKind::Interval(..) => Fields::from(vec![
                f("months", DataType::Int32),
                f("days", DataType::Int32),
                f("microseconds", DataType::Int64),
            ]),
            PgKind::Point => {
                Fields::from(vec![f("x", DataType::Float64), f("y", DataType::Float64)])
            }
            PgKind::Range(bound) => Fields::from(vec![
                bound.nested_field("lower"),
                bound.nested_field("upper"),
                f("lower_inclusive", DataType::Boolean),
                f("upper_inclusive", DataType::Boolean),
                f("empty", DataType::Boolean),
            ]),
            PgKind::Composite(fields) => {
                Fields::from_iter(fields.iter().map(|(name, kind)| kind.nested_field(name)))
            }
            _ => Fields::empty(),
        }
    }

    /// The Arrow field for a column of this kind, with canonical extension types (UUID,
    /// JSON) where Parquet has a logical type for them.
    pub fn field(&self, name: &str) -> Field {
        let field = self.nested_field(name);
        match self {
            PgKind::Uuid(UuidMode::Binary) => {
                field.with_extension_type(arrow_schema::extension::Uuid)
            }
            PgKind::Json | PgKind::Jsonb => {
                field.with_extension_type(arrow_schema::extension::Json::default())
            }
            PgKind::NumericText => field.with_metadata(
                [(NUMERIC_TEXT_KEY.to_string(), "true".to_string())]
                    .into_iter()
                    .collect(),
            ),
            _ => field,
        }
    }
}

/// Field metadata marking a Utf8 column of numeric text, so that a column typed
/// `numeric(p,s)` on one shard and `numeric` on another unifies (to the exact text).
pub const NUMERIC_TEXT_KEY: &str = "tributary.numeric_text";

/// The column that holds both shards' values exactly. Shards are described in whatever
/// order they answer, so this is a join: commutative and associative, with the same
/// result (or the same refusal) in any order.
///
/// - The names must be equal (the merger pairs columns by position).
/// - Nullable if either is.
/// - Metadata: the union of both; the same key with two values refuses. Extension
///   types (UUID, JSON) must agree.
/// - Exact numbers (int2, int4, int8, oid, decimals and numeric text) join into the
///   narrowest that holds both (see [`unify`]); when no Decimal128 does (more than 38
///   digits), into numeric text, which holds them all. Numeric text joins exact numbers
///   only: plain text beside it would let the order decide whether a third shard's
///   decimals fit.
/// - Otherwise [`unify`], field by field inside lists and structs.
pub fn unify_fields(a: &Field, b: &Field) -> Option<Field> {
    if a == b {
        return Some(a.clone());
    }
    if a.name() != b.name() || a.extension_type_name() != b.extension_type_name() {
        return None;
    }
    let mut metadata = a.metadata().clone();
    for (key, value) in b.metadata() {
        match metadata.get(key) {
            Some(mine) if mine != value => return None,
            Some(_) => {}
            None => {
                metadata.insert(key.clone(), value.clone());
            }
        }
    }
    let data_type = match (Exact::of_field(a), Exact::of_field(b)) {
        (Some(x), Some(y)) => match x.join(y) {
            Exact::Text => {
                metadata.insert(NUMERIC_TEXT_KEY.to_string(), "true".to_string());
                DataType::Utf8
            }
            joined => joined.data_type(),
        },
        (Some(Exact::Text), _) | (_, Some(Exact::Text)) => return None,
        _ => unify(a.data_type(), b.data_type())?,
    };
    Some(
        a.clone()
            .with_data_type(data_type)
            .with_nullable(a.is_nullable() || b.is_nullable())
            .with_metadata(metadata),
    )
}

/// A type of exact numbers, placed in the order by which they join.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exact {
    /// A signed integer of this many bits.
    Int(u8),
    UInt32,
    Decimal {
        /// Digits before the point.
        int: i16,
        scale: i16,
    },
    /// Numeric text: the exact decimal text, which holds every other.
    Text,
}

impl Exact {
    fn of(t: &DataType) -> Option<Exact> {
        use DataType::*;
        Some(match t {
            Int16 => Exact::Int(16),
            Int32 => Exact::Int(32),
            Int64 => Exact::Int(64),
            UInt32 => Exact::UInt32,
            Decimal128(p, s) if *s >= 0 && s.unsigned_abs() <= *p => Exact::Decimal {
                int: (*p - s.unsigned_abs()).into(),
                scale: (*s).into(),
            },
            _ => return None,
        })
    }

    fn of_field(f: &Field) -> Option<Exact> {
        if f.data_type() == &DataType::Utf8 && f.metadata().contains_key(NUMERIC_TEXT_KEY) {
            Some(Exact::Text)
        } else {
            Exact::of(f.data_type())
        }
    }

    /// Digits before and after the point. oid counts as the int8 it joins signed
    /// integers into, so that joining with integers first or with decimals first agrees.
    fn digits(self) -> (i16, i16) {
        match self {
            Exact::Int(16) => (5, 0),
            Exact::Int(32) => (10, 0),
            Exact::Int(_) | Exact::UInt32 => (19, 0),
            Exact::Decimal { int, scale } => (int, scale),
            Exact::Text => (i16::MAX, 0),
        }
    }

    fn join(self, other: Exact) -> Exact {
        match (self, other) {
            (Exact::Text, _) | (_, Exact::Text) => Exact::Text,
            (Exact::Int(a), Exact::Int(b)) => Exact::Int(a.max(b)),
            (Exact::UInt32, Exact::UInt32) => Exact::UInt32,
            (Exact::UInt32, Exact::Int(_)) | (Exact::Int(_), Exact::UInt32) => Exact::Int(64),
            _ => {
                let (ia, sa) = self.digits();
                let (ib, sb) = other.digits();
                let (int, scale) = (ia.max(ib), sa.max(sb));
                if int + scale > DECIMAL128_MAX_PRECISION as i16 {
                    Exact::Text
                } else {
                    Exact::Decimal { int, scale }
                }
            }
        }
    }

    fn data_type(self) -> DataType {
        match self {
            Exact::Int(16) => DataType::Int16,
            Exact::Int(32) => DataType::Int32,
            Exact::Int(_) => DataType::Int64,
            Exact::UInt32 => DataType::UInt32,
            Exact::Decimal { int, scale } => DataType::Decimal128((int + scale) as u8, scale as i8),
            Exact::Text => DataType::Utf8,
        }
    }
}

impl PgKind {
    /// The Arrow field for a value nested in a list or struct. Nested values carry no
    /// extension type: pandas cannot convert a list of `arrow.uuid` at all (pyarrow 26
    /// raises ArrowNotImplementedError for the whole file).
    pub fn nested_field(&self, name: &str) -> Field {
        Field::new(name, self.data_type(), true)
    }
}

/// hstore's map entries: text keys (never NULL) to text values (NULL allowed).
pub fn hstore_entries() -> FieldRef {
    Arc::new(Field::new(
        "entries",
        DataType::Struct(Fields::from(vec![
            Field::new("keys", DataType::Utf8, false),
            Field::new("values", DataType::Utf8, true),
        ])),
        false,
    ))
}

fn no_mapping(ty: &Type) -> TextReason {
    TextReason::NoMapping {
        type_name: ty.name().to_string(),
    }
}

/// numeric's type modifier is `((precision << 16) | scale) + 4`, or -1 when undeclared.
fn numeric(typmod: i32, o: &TypeOptions) -> PgKind {
    match o.numeric {
        NumericMode::Text => return PgKind::NumericText,
        NumericMode::Float64 => return PgKind::NumericFloat,
        NumericMode::Decimal { precision, scale } => {
            return PgKind::Decimal {
                precision,
                scale,
                infinity: o.infinity,
            };
        }
        NumericMode::Exact => {}
    }
    if typmod < 4 {
        return PgKind::NumericText;
    }
    let precision = ((typmod - 4) >> 16) & 0xffff;
    // The scale is an 11-bit signed field since PostgreSQL 15 (negative scales round to
    // tens, hundreds, ...).
    let scale = (((typmod - 4) & 0x7ff) ^ 0x400) - 0x400;
    if precision == 0
        || precision > DECIMAL128_MAX_PRECISION as i32
        || scale < 0
        || scale > precision
    {
        // Decimal128(p, s) cannot hold these with the same meaning: keep the text.
        return PgKind::NumericText;
    }
    PgKind::Decimal {
        precision: precision as u8,
        scale: scale as i8,
        infinity: o.infinity,
    }
}

/// The type that holds every value of both `a` and `b` exactly, if there is one: int2 <
/// int4 < int8, oid < int8 and oid < xid8, float4 < float8, integers and decimals into
/// a decimal with enough digits on both sides of the point (at most 38; oid counts 19
/// digits, as the int8 it becomes beside signed integers), field by field inside lists
/// and structs (see [`unify_fields`]). Commutative and associative: the result depends
/// only on the set of types.
pub fn unify(a: &DataType, b: &DataType) -> Option<DataType> {
    use DataType::*;
    if a == b {
        return Some(a.clone());
    }
    if let (Some(x), Some(y)) = (Exact::of(a), Exact::of(b)) {
        return match x.join(y) {
            // Only a field can say its text is numeric text (see `unify_fields`).
            Exact::Text => None,
            joined => Some(joined.data_type()),
        };
    }
    match (a, b) {
        (Float32, Float64) | (Float64, Float32) => Some(Float64),
        (UInt32, UInt64) | (UInt64, UInt32) => Some(UInt64),
        (List(fa), List(fb)) => Some(List(Arc::new(unify_fields(fa, fb)?))),
        (Struct(fa), Struct(fb)) if fa.len() == fb.len() => {
            let fields: Option<Vec<Field>> = fa
                .iter()
                .zip(fb.iter())
                .map(|(x, y)| unify_fields(x, y))
                .collect();
            Some(Struct(Fields::from(fields?)))
        }
        _ => None,
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

    fn plan(ty: &Type, typmod: i32) -> ColumnPlan {
        ColumnPlan::of(ty, typmod, &TypeOptions::default())
    }

    fn kind(ty: &Type, typmod: i32) -> PgKind {
        match plan(ty, typmod) {
            ColumnPlan::Decode(k) => k,
            other => panic!("{ty}: {other:?}"),
        }
    }

    #[test]
    fn numeric_typmods() {
        // numeric(12,2): ((12 << 16) | 2) + 4
        assert_eq!(
            kind(&Type::NUMERIC, (12 << 16 | 2) + 4),
            PgKind::Decimal {
                precision: 12,
                scale: 2,
                infinity: InfinityMode::Error
            }
        );
        assert_eq!(
            kind(&Type::NUMERIC, (38 << 16) + 4).data_type(),
            DataType::Decimal128(38, 0)
        );
        assert_eq!(kind(&Type::NUMERIC, -1), PgKind::NumericText);
        assert_eq!(
            kind(&Type::NUMERIC, (39 << 16 | 2) + 4),
            PgKind::NumericText
        );
        // numeric(5,-2) (PostgreSQL 15): the scale field is 11-bit signed.
        assert_eq!(
            kind(&Type::NUMERIC, ((5 << 16) | (0x7ff & -2i32)) + 4),
            PgKind::NumericText
        );
        // numeric(2,4): scale above precision.
        assert_eq!(kind(&Type::NUMERIC, (2 << 16 | 4) + 4), PgKind::NumericText);
    }

    #[test]
    fn numeric_options_are_explicit() {
        let mut rules = TypeRules::default();
        rules.global.set("numeric", "float64").unwrap();
        let mut col = TypeOverrides::default();
        col.set("numeric", "decimal(20, 4)").unwrap();
        rules.columns.insert("price".into(), col);
        let k = |name: &str| {
            ColumnPlan::of(&Type::NUMERIC, -1, &rules.for_column(name))
                .decoder_kind()
                .data_type()
        };
        assert_eq!(k("other"), DataType::Float64);
        assert_eq!(k("price"), DataType::Decimal128(20, 4));
        assert!("decimal(39,2)".parse::<NumericMode>().is_err());
        assert!("decimal(3,4)".parse::<NumericMode>().is_err());
        assert_eq!(
            "decimal(10)".parse::<NumericMode>().unwrap().to_string(),
            "decimal(10,0)"
        );
        let err = TypeOverrides::default().set("infinty", "null").unwrap_err();
        assert_eq!(
            err,
            TypeOptionError::UnknownKey {
                key: "infinty".into()
            }
        );
        assert!(err.to_string().contains("infinity"), "{err}");
        let err = TypeOverrides::default().set("uuid", "text").unwrap_err();
        assert_eq!(err.to_string(), "uuid: `text` is not one of binary, string");
    }

    #[test]
    fn documented_and_unknown_text_casts() {
        assert_eq!(
            plan(&Type::TS_VECTOR, -1),
            ColumnPlan::ServerText(TextReason::Documented)
        );
        assert_eq!(
            plan(&Type::VOID, -1),
            ColumnPlan::ServerText(TextReason::NoMapping {
                type_name: "void".into()
            })
        );
        // An array of a type read as text is read as text whole.
        assert_eq!(
            plan(&Type::TS_VECTOR_ARRAY, -1),
            ColumnPlan::ServerText(TextReason::Documented)
        );
        let text = TypeOptions {
            text: true,
            ..Default::default()
        };
        assert_eq!(
            ColumnPlan::of(&Type::INT4, -1, &text),
            ColumnPlan::ServerText(TextReason::Documented)
        );
    }

    #[test]
    fn multiranges_are_lists_of_ranges() {
        let k = kind(&Type::DATEMULTI_RANGE, -1);
        assert_eq!(
            k,
            PgKind::Multirange(Box::new(PgKind::Range(Box::new(PgKind::Date(
                InfinityMode::Error
            )))))
        );
    }

    #[test]
    fn arrays_nest_once_per_dimension() {
        let k = kind(&Type::INT4_ARRAY, -1);
        assert_eq!(
            k.data_type(),
            DataType::List(Arc::new(Field::new_list_field(DataType::Int32, true)))
        );
        let two = TypeOptions {
            array_dims: 2,
            ..Default::default()
        };
        let k = ColumnPlan::of(&Type::TEXT_ARRAY, -1, &two).decoder_kind();
        assert_eq!(k.data_type().to_string(), "List(List(Utf8))");
        // numeric(10,2)[]: the array's typmod is its element's.
        let k = kind(&Type::NUMERIC_ARRAY, (10 << 16 | 2) + 4);
        assert_eq!(k.data_type().to_string(), "List(Decimal128(10, 2))");
    }

    #[test]
    fn timestamptz_is_utc_and_uuid_is_tagged() {
        let f = kind(&Type::TIMESTAMPTZ, -1).field("t");
        assert_eq!(
            f.data_type(),
            &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        );
        let f = kind(&Type::UUID, -1).field("u");
        assert_eq!(f.extension_type_name(), Some("arrow.uuid"));
        let f = kind(&Type::JSONB, -1).field("j");
        assert_eq!(f.extension_type_name(), Some("arrow.json"));
        let o = TypeOptions {
            uuid: UuidMode::String,
            ..Default::default()
        };
        let f = ColumnPlan::of(&Type::UUID, -1, &o)
            .decoder_kind()
            .field("u");
        assert_eq!(
            (f.data_type(), f.extension_type_name()),
            (&DataType::Utf8, None)
        );
    }

    #[test]
    fn unification_widens_never_narrows() {
        use DataType::*;
        assert_eq!(unify(&Int32, &Int64), Some(Int64));
        assert_eq!(unify(&Int64, &Int16), Some(Int64));
        assert_eq!(unify(&Float32, &Float64), Some(Float64));
        assert_eq!(
            unify(&Decimal128(10, 2), &Decimal128(12, 2)),
            Some(Decimal128(12, 2))
        );
        // Integer digits of one and fraction digits of the other.
        assert_eq!(
            unify(&Decimal128(10, 2), &Decimal128(8, 4)),
            Some(Decimal128(12, 4))
        );
        assert_eq!(unify(&Int32, &Decimal128(5, 2)), Some(Decimal128(12, 2)));
        assert_eq!(unify(&Decimal128(38, 0), &Decimal128(38, 10)), None);
        assert_eq!(unify(&Int32, &Utf8), None);
        assert_eq!(unify(&Int64, &Float64), None);
        let list = |t| List(Arc::new(Field::new_list_field(t, true)));
        assert_eq!(unify(&list(Int32), &list(Int64)), Some(list(Int64)));
        let tz = Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        assert_eq!(unify(&Timestamp(TimeUnit::Microsecond, None), &tz), None);
    }

    #[test]
    fn numeric_text_takes_decimals_but_plain_text_does_not() {
        let text = kind(&Type::NUMERIC, -1).field("n");
        let decimal = kind(&Type::NUMERIC, (10 << 16 | 2) + 4).field("n");
        assert_eq!(unify_fields(&decimal, &text), Some(text.clone()));
        assert_eq!(unify_fields(&text, &decimal), Some(text.clone()));
        let plain = kind(&Type::TEXT, -1).field("n");
        assert_eq!(unify_fields(&plain, &decimal), None);
        // Plain text beside numeric text is refused: joined first, it would take a third
        // shard's decimals; joined after them, not (the order would decide).
        assert_eq!(unify_fields(&plain, &text), None);
        assert_eq!(unify_fields(&text, &plain), None);
        // No Decimal128 holds numeric(38,0) and numeric(38,10): the exact text does,
        // as it does when a shard sends numeric text.
        let wide = kind(&Type::NUMERIC, (38 << 16) + 4).field("n");
        let deep = kind(&Type::NUMERIC, (38 << 16 | 10) + 4).field("n");
        assert_eq!(unify_fields(&wide, &deep), Some(text.clone()));
        let uuid = kind(&Type::UUID, -1).field("n");
        let binary = Field::new("n", DataType::FixedSizeBinary(16), true);
        assert_eq!(unify_fields(&uuid, &binary), None);
    }

    /// Every field the property test below joins: the exact numbers, the other
    /// chains, text with and without the numeric-text mark, extension types, other
    /// metadata, and lists and structs of some of them; each nullable or not.
    fn unify_pool() -> Vec<Field> {
        use DataType::*;
        let mark = |f: Field, k: &str, v: &str| {
            let mut m = f.metadata().clone();
            m.insert(k.to_string(), v.to_string());
            f.with_metadata(m)
        };
        let mut types = vec![
            Int16,
            Int32,
            Int64,
            UInt32,
            UInt64,
            Float32,
            Float64,
            Utf8,
            Decimal128(5, 2),
            Decimal128(10, 0),
            Decimal128(12, 2),
            Decimal128(20, 4),
            Decimal128(38, 0),
            Decimal128(38, 10),
            Date32,
        ];
        let scalars = types.clone();
        for t in [Int32, Int64, Decimal128(38, 0), Decimal128(38, 10), Utf8] {
            types.push(List(Arc::new(Field::new_list_field(t.clone(), true))));
            types.push(List(Arc::new(Field::new_list_field(t, false))));
        }
        for (a, b) in [(Int16, Utf8), (Int64, Utf8), (Decimal128(12, 2), Float32)] {
            types.push(Struct(Fields::from(vec![
                Field::new("a", a.clone(), true),
                Field::new("b", b.clone(), true),
            ])));
            types.push(Struct(Fields::from(vec![
                Field::new("b", a, true),
                Field::new("a", b, true),
            ])));
        }
        let mut fields = Vec::new();
        for t in types {
            for nullable in [true, false] {
                fields.push(Field::new("n", t.clone(), nullable));
            }
        }
        for t in &scalars[..4] {
            fields.push(mark(Field::new("n", t.clone(), true), "origin", "a"));
            fields.push(mark(Field::new("n", t.clone(), false), "origin", "b"));
        }
        let text = kind(&Type::NUMERIC, -1).field("n");
        fields.push(text.clone());
        fields.push(text.clone().with_nullable(false));
        fields.push(mark(text, "origin", "a"));
        fields.push(kind(&Type::UUID, -1).field("n"));
        fields.push(Field::new("n", FixedSizeBinary(16), true));
        fields.push(kind(&Type::JSONB, -1).field("n"));
        fields.push(Field::new("m", Int32, true));
        fields
    }

    /// The merged schema must not depend on the order the shards answer: any two fields
    /// join the same both ways, and any three the same in all six orders (a refusal
    /// included).
    #[test]
    fn unify_is_commutative_and_associative() {
        use rand::{Rng, SeedableRng};
        let pool = unify_pool();
        for a in &pool {
            for b in &pool {
                assert_eq!(unify_fields(a, b), unify_fields(b, a), "{a:?} | {b:?}");
                assert_eq!(
                    unify(a.data_type(), b.data_type()),
                    unify(b.data_type(), a.data_type()),
                    "{a:?} | {b:?}"
                );
            }
            assert_eq!(unify_fields(a, a).as_ref(), Some(a), "{a:?}");
        }
        let fold = |fields: &[&Field]| -> Option<Field> {
            let mut acc = fields[0].clone();
            for f in &fields[1..] {
                acc = unify_fields(&acc, f)?;
            }
            Some(acc)
        };
        let mut rng = rand::rngs::SmallRng::seed_from_u64(17);
        let mut joined = 0;
        for _ in 0..30_000 {
            let pick: Vec<&Field> = (0..3)
                .map(|_| &pool[rng.random_range(0..pool.len())])
                .collect();
            let (a, b, c) = (pick[0], pick[1], pick[2]);
            let want = fold(&[a, b, c]);
            for order in [[a, c, b], [b, a, c], [b, c, a], [c, a, b], [c, b, a]] {
                assert_eq!(fold(&order), want, "{order:?}");
            }
            joined += want.is_some() as usize;
        }
        // The check means something only if many triples join and many do not.
        assert!(
            (1_000..29_000).contains(&joined),
            "{joined} of 30000 joined"
        );
    }

    #[test]
    fn sqlite_declared_types() {
        assert_eq!(SqliteKind::from_declared("integer"), SqliteKind::Int64);
        assert_eq!(SqliteKind::from_declared("DATETIME"), SqliteKind::Timestamp);
        assert_eq!(SqliteKind::from_declared("NULL"), SqliteKind::ByValue);
        assert_eq!(SqliteKind::from_declared("NUMERIC"), SqliteKind::ByValue);
    }
}
