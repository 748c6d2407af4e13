//! What can go wrong decoding a binary COPY stream, split by whose fault it is: a stream
//! that breaks the protocol ([`Malformed`], with the byte offset where it broke) or a
//! value that its Arrow column cannot hold or that is not a valid value of its type
//! ([`ValueError`]). Neither is worth a retry: the server sends the same bytes again.

/// Why a COPY stream could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CopyError {
    /// The bytes are not a binary COPY stream of the query's columns. `offset` counts
    /// from the stream's first byte (the signature) to where the problem was found: the
    /// tuple's field count, or the field's length word when `column` is known.
    #[error("malformed COPY stream at byte {offset}{}: {problem}", column.as_ref().map(|c| format!(", column `{c}`")).unwrap_or_default())]
    Malformed {
        offset: u64,
        column: Option<String>,
        problem: Malformed,
    },
    /// A value of `column` cannot be decoded into its Arrow type. `offset` is where the
    /// field's length word starts in the stream, when known (UTF-8 is checked a batch
    /// at a time, after the fields' places are forgotten).
    #[error("{problem}{}", offset.map(|o| format!(" (field at byte {o} of the COPY stream)")).unwrap_or_default())]
    Value {
        column: String,
        offset: Option<u64>,
        problem: ValueError,
    },
}

impl CopyError {
    /// The column the error is about, if it is about one.
    pub fn column(&self) -> Option<&str> {
        match self {
            CopyError::Malformed { column, .. } => column.as_deref(),
            CopyError::Value { column, .. } => Some(column),
        }
    }
}

/// How a stream breaks the binary COPY protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Malformed {
    #[error("bad signature: not a binary COPY stream")]
    Signature,
    /// Flags bit 16: every tuple carries an OID field the query's columns do not have.
    #[error(
        "the header says every row carries an OID (flags bit 16), which the query did not ask for"
    )]
    Oids,
    /// PostgreSQL's docs: bits 16-31 mark critical format changes, and a reader must
    /// abort on one it does not know.
    #[error("the header sets critical flag bits {0:#010x} this reader does not know")]
    CriticalFlags(u32),
    #[error("a header extension of {0} bytes (more than 1 MiB)")]
    ExtensionTooLong(u32),
    #[error("a row has {found} fields, the query has {expected} columns")]
    FieldCount { found: i16, expected: usize },
    /// -1 is NULL; any other negative length is nonsense.
    #[error("negative field length {0} (only -1, NULL, is allowed)")]
    NegativeLength(i32),
    /// PostgreSQL never sends a larger value: waiting for one would buffer without bound.
    #[error("field length {0} exceeds 1 GiB")]
    TooLong(i32),
    #[error("data after the trailer")]
    AfterTrailer,
    #[error("the stream ended before its trailer: the result is truncated")]
    Truncated,
    /// Something was pushed after an error was returned.
    #[error("the stream was already found malformed")]
    AlreadyFailed,
}

/// Why one value could not be decoded into its Arrow column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValueError {
    #[error("value too short: wanted {wanted} more bytes")]
    Short { wanted: usize },
    #[error("expected {expected} bytes, got {got}")]
    Size { expected: usize, got: usize },
    #[error("{0} unexpected bytes after a value")]
    Trailing(usize),
    #[error("negative length {0} inside a value")]
    NegativeLength(i32),
    #[error("invalid UTF-8 text: {0}")]
    Utf8(std::str::Utf8Error),
    /// Every value is valid UTF-8 but the batch's buffer is not: never seen, kept so
    /// that the check cannot panic.
    #[error("text values that split a UTF-8 character")]
    Utf8Boundaries,
    #[error("unknown binary format version {0}")]
    FormatVersion(u8),
    #[error("empty value")]
    Empty,
    #[error("a NULL {0}")]
    NullInside(&'static str),
    /// A count the value's bytes cannot hold (hstore pairs, vector dimensions, ...).
    #[error("{what} of {count} in {bytes} bytes")]
    Count {
        what: &'static str,
        count: i64,
        bytes: usize,
    },
    #[error("a composite value with {found} fields for a type of {expected}")]
    CompositeFields { found: i32, expected: usize },
    #[error("a MAC address has 6 or 8 bytes, not {0}")]
    MacAddr(usize),
    #[error("a bit string of {bits} bits in {bytes} bytes")]
    BitString { bits: i32, bytes: usize },
    #[error("unknown address family {family} of {len} bytes")]
    AddressFamily { family: u8, len: usize },
    #[error("a /{0} mask")]
    Mask(u8),
    #[error("bad time zone offset {0}")]
    ZoneOffset(i32),
    #[error("more than 2^31 list elements in one batch")]
    ListTooLong,
    #[error("more than 2^31 distinct enum labels in one batch")]
    DictionaryFull,
    #[error("an array with {0} dimensions")]
    ArrayDimensions(i32),
    #[error("an array dimension of size {0}")]
    ArraySize(i32),
    #[error(
        "a {found}-dimensional array in a column read with {declared} dimension(s); set the column's `array_dims = {found}`"
    )]
    ArrayDims { found: usize, declared: u8 },
    /// An array whose subscripts do not start at 1 (`'[0:2]={1,2,3}'`): a List has no
    /// lower bound, so keeping the elements alone would shift every subscript.
    #[error(
        "an array with lower bound {lower} (subscripts do not start at 1), which a list cannot keep; set `array_bounds = \"ignore\"` for this column to keep the elements and drop the bounds"
    )]
    ArrayLowerBound { lower: i32 },
    #[error("numeric value too short")]
    NumericShort,
    #[error("numeric digit count does not match its length")]
    NumericDigitCount,
    #[error("numeric digit out of range")]
    NumericDigit,
    #[error("unknown numeric sign {0:#x}")]
    NumericSign(u16),
    #[error("numeric {text} as float64: {source}")]
    NumericFloat {
        text: String,
        source: std::num::ParseFloatError,
    },
    /// NaN or ±Infinity in a decimal column without an `infinity` choice.
    #[error(
        "{special} cannot be stored in a decimal column; choose `infinity = \"null\"` or `\"clamp\"`, or `numeric = \"text\"` or `\"float64\"`"
    )]
    NumericSpecial { special: &'static str },
    #[error("{text} does not fit numeric({precision},{scale})")]
    DecimalRange {
        text: String,
        precision: u8,
        scale: i8,
    },
    #[error("{text} does not fit a 128-bit decimal")]
    DecimalOverflow { text: String },
    #[error("{text} has more than {scale} decimal places")]
    DecimalPlaces { text: String, scale: u32 },
    /// ±infinity of a date, timestamp or interval without an `infinity` choice.
    #[error(
        "{what} {}infinity has no Arrow value; choose `infinity = \"null\"` or `\"clamp\"` for this column",
        if *positive { "" } else { "-" }
    )]
    Infinite { what: &'static str, positive: bool },
    /// `time '24:00:00'`: valid in PostgreSQL, one past Time64's last value.
    #[error(
        "time 24:00:00 is past Arrow's last time of day (23:59:59.999999); choose `infinity = \"null\"` or `\"clamp\"` for this column"
    )]
    EndOfDay,
    #[error("{0} out of range")]
    OutOfRange(&'static str),
    #[error("interval too long for a duration in microseconds")]
    DurationOverflow,
}
