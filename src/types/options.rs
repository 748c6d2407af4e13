//! The rendering choices a user makes for a column's type, globally or per column: the
//! lossy or alternative renderings the type table offers ([`NumericMode`], [`UuidMode`],
//! ...), how a choice is parsed from its text, and how the job's and the column's
//! settings resolve into one [`TypeOptions`].

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use super::{DECIMAL128_MAX_PRECISION, MAX_ARRAY_DIMS};

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

    /// Whether the user set option `key` for a column (its own, or the job's), so that
    /// a reader profile leaves the column's rendering to them.
    pub fn is_set(&self, name: &str, key: &str) -> bool {
        let set = |o: &TypeOverrides| match key {
            "uuid" => o.uuid.is_some(),
            "array_dims" => o.array_dims.is_some(),
            "text" => o.text.is_some(),
            "numeric" => o.numeric.is_some(),
            "enums" => o.enums.is_some(),
            "interval" => o.interval.is_some(),
            "timetz" => o.timetz.is_some(),
            "infinity" => o.infinity.is_some(),
            "array_bounds" => o.array_bounds.is_some(),
            _ => false,
        };
        set(&self.global) || self.columns.get(name).is_some_and(set)
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
