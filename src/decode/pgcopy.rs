//! A parser for PostgreSQL's binary COPY format that appends values straight into Arrow
//! builders, with no per-row objects.
//!
//! The stream is a header (`PGCOPY\n\xff\r\n\0`, flags, extension), then tuples (an i16
//! field count, then per field an i32 length, -1 for NULL, and the value in the type's
//! binary send format), then a trailer (field count -1). The server sends one CopyData
//! message per tuple, but this parser accepts any chunking: a partial tuple is kept until
//! the rest arrives. Malformed input is an error, never a panic, and nothing is allocated
//! from a length the input claims before the bytes are actually there.

use std::sync::Arc;

use arrow::array::{
    ArrayBuilder, ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder,
    FixedSizeBinaryBuilder, Float32Builder, Float64Builder, Int16Builder, Int32Builder,
    Int64Builder, RecordBatch, StringBuilder, Time64MicrosecondBuilder,
    TimestampMicrosecondBuilder, UInt32Builder,
};
use arrow::datatypes::{Schema, SchemaRef};

use crate::types::PgKind;

const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";
/// Days from 1970-01-01 (Arrow's epoch) to 2000-01-01 (PostgreSQL's).
const PG_EPOCH_DAYS: i32 = 10_957;
/// PostgreSQL's largest field value (1 GiB).
const MAX_FIELD_BYTES: i32 = 1 << 30;
/// Microseconds from 1970-01-01 to 2000-01-01.
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// Why a COPY stream could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CopyError {
    #[error("malformed COPY stream: {0}")]
    Malformed(String),
    #[error("the COPY stream ended before its trailer: the result is truncated")]
    Truncated,
    /// A value of `column` cannot be represented in its Arrow type.
    #[error("{message}")]
    Value { column: usize, message: String },
}

#[derive(Debug, PartialEq, Eq)]
enum State {
    Header,
    Tuples,
    Done,
}

/// Decodes one COPY stream into record batches of the given schema.
pub struct CopyDecoder {
    state: State,
    /// A partial tuple (or header) carried over between chunks.
    pending: Vec<u8>,
    columns: Vec<Column>,
    schema: SchemaRef,
    rows: usize,
}

impl CopyDecoder {
    pub fn new(kinds: &[(String, PgKind)]) -> CopyDecoder {
        let fields: Vec<_> = kinds.iter().map(|(name, kind)| kind.field(name)).collect();
        CopyDecoder {
            state: State::Header,
            pending: Vec::new(),
            columns: kinds.iter().map(|(_, k)| Column::new(*k)).collect(),
            schema: Arc::new(Schema::new(fields)),
            rows: 0,
        }
    }

    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Rows decoded and not yet taken as a batch.
    pub fn buffered_rows(&self) -> usize {
        self.rows
    }

    /// An estimate of the memory the buffered rows take.
    pub fn buffered_bytes(&self) -> usize {
        self.columns.iter().map(Column::bytes).sum()
    }

    /// Whether the trailer has been seen.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Feeds the next chunk of the stream.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), CopyError> {
        if self.pending.is_empty() {
            let used = self.parse(chunk)?;
            self.pending.extend_from_slice(&chunk[used..]);
        } else {
            let mut data = std::mem::take(&mut self.pending);
            data.extend_from_slice(chunk);
            let used = self.parse(&data)?;
            data.drain(..used);
            self.pending = data;
        }
        Ok(())
    }

    /// Checks that the stream ended properly (trailer seen, nothing left over).
    pub fn finish(&self) -> Result<(), CopyError> {
        match self.state {
            State::Done if self.pending.is_empty() => Ok(()),
            State::Done => Err(CopyError::Malformed("data after the trailer".into())),
            _ => Err(CopyError::Truncated),
        }
    }

    /// Takes the buffered rows as a record batch.
    pub fn take_batch(&mut self) -> RecordBatch {
        let arrays: Vec<ArrayRef> = self.columns.iter_mut().map(Column::finish).collect();
        let rows = std::mem::take(&mut self.rows);
        RecordBatch::try_new_with_options(
            self.schema.clone(),
            arrays,
            &arrow::array::RecordBatchOptions::new().with_row_count(Some(rows)),
        )
        .expect("builders match the schema by construction")
    }

    /// Parses what it can of `data`; returns the bytes consumed.
    fn parse(&mut self, data: &[u8]) -> Result<usize, CopyError> {
        let mut pos = 0;
        if self.state == State::Header {
            match header_len(data)? {
                Some(n) => {
                    pos = n;
                    self.state = State::Tuples;
                }
                None => return Ok(0),
            }
        }
        while self.state == State::Tuples {
            let rest = &data[pos..];
            if rest.len() < 2 {
                break;
            }
            let count = i16::from_be_bytes([rest[0], rest[1]]);
            if count == -1 {
                self.state = State::Done;
                pos += 2;
                break;
            }
            if count as usize != self.columns.len() || count < 0 {
                return Err(CopyError::Malformed(format!(
                    "a row has {count} fields, the query has {} columns",
                    self.columns.len()
                )));
            }
            // First find the whole tuple, so that a partial one appends nothing.
            let Some(len) = tuple_len(rest, self.columns.len())? else {
                break;
            };
            let mut at = 2;
            for (i, column) in self.columns.iter_mut().enumerate() {
                let n = i32::from_be_bytes(rest[at..at + 4].try_into().expect("4 bytes"));
                at += 4;
                if n < 0 {
                    column.append_null();
                } else {
                    let value = &rest[at..at + n as usize];
                    at += n as usize;
                    column
                        .append(value)
                        .map_err(|message| CopyError::Value { column: i, message })?;
                }
            }
            debug_assert_eq!(at, len);
            self.rows += 1;
            pos += len;
        }
        if self.state == State::Done && pos < data.len() {
            return Err(CopyError::Malformed("data after the trailer".into()));
        }
        Ok(pos)
    }
}

/// The header's length if it is complete.
fn header_len(data: &[u8]) -> Result<Option<usize>, CopyError> {
    let n = data.len().min(SIGNATURE.len());
    if data[..n] != SIGNATURE[..n] {
        return Err(CopyError::Malformed("bad signature".into()));
    }
    if data.len() < 19 {
        return Ok(None);
    }
    let ext = u32::from_be_bytes(data[15..19].try_into().expect("4 bytes")) as usize;
    if ext > 1 << 20 {
        return Err(CopyError::Malformed("header extension too long".into()));
    }
    Ok((data.len() >= 19 + ext).then_some(19 + ext))
}

/// The length of the tuple at the start of `data` (field count included), if complete.
fn tuple_len(data: &[u8], fields: usize) -> Result<Option<usize>, CopyError> {
    let mut at = 2;
    for _ in 0..fields {
        let Some(len) = data.get(at..at + 4) else {
            return Ok(None);
        };
        let n = i32::from_be_bytes(len.try_into().expect("4 bytes"));
        at += 4;
        if n < -1 {
            return Err(CopyError::Malformed(format!("negative field length {n}")));
        }
        if n > MAX_FIELD_BYTES {
            // PostgreSQL never sends a larger value: waiting for one would buffer without bound.
            return Err(CopyError::Malformed(format!(
                "field length {n} exceeds 1 GiB"
            )));
        }
        if n > 0 {
            at += n as usize;
        }
        if at > data.len() {
            return Ok(None);
        }
    }
    Ok(Some(at))
}

/// One column's builder, by kind.
enum Column {
    Bool(BooleanBuilder),
    Int16(Int16Builder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    UInt32(UInt32Builder),
    Float32(Float32Builder),
    Float64(Float64Builder),
    Decimal {
        builder: Decimal128Builder,
        precision: u8,
        scale: i8,
    },
    NumericText(StringBuilder),
    Text(StringBuilder),
    Jsonb(StringBuilder),
    Bytes(BinaryBuilder),
    Date(Date32Builder),
    Time(Time64MicrosecondBuilder),
    Timestamp(TimestampMicrosecondBuilder),
    TimestampTz(TimestampMicrosecondBuilder),
    Uuid(FixedSizeBinaryBuilder),
}

fn fixed<const N: usize>(v: &[u8]) -> Result<[u8; N], String> {
    v.try_into()
        .map_err(|_| format!("expected {N} bytes, got {}", v.len()))
}

fn utf8(v: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(v).map_err(|e| format!("invalid UTF-8 text: {e}"))
}

impl Column {
    fn new(kind: PgKind) -> Column {
        match kind {
            PgKind::Bool => Column::Bool(BooleanBuilder::new()),
            PgKind::Int2 => Column::Int16(Int16Builder::new()),
            PgKind::Int4 => Column::Int32(Int32Builder::new()),
            PgKind::Int8 => Column::Int64(Int64Builder::new()),
            PgKind::Oid => Column::UInt32(UInt32Builder::new()),
            PgKind::Float4 => Column::Float32(Float32Builder::new()),
            PgKind::Float8 => Column::Float64(Float64Builder::new()),
            PgKind::Decimal { precision, scale } => Column::Decimal {
                builder: decimal_builder(precision, scale),
                precision,
                scale,
            },
            PgKind::NumericText => Column::NumericText(StringBuilder::new()),
            PgKind::Text | PgKind::Json => Column::Text(StringBuilder::new()),
            PgKind::Jsonb => Column::Jsonb(StringBuilder::new()),
            PgKind::Bytea => Column::Bytes(BinaryBuilder::new()),
            PgKind::Date => Column::Date(Date32Builder::new()),
            PgKind::Time => Column::Time(Time64MicrosecondBuilder::new()),
            PgKind::Timestamp => Column::Timestamp(TimestampMicrosecondBuilder::new()),
            PgKind::TimestampTz => {
                Column::TimestampTz(TimestampMicrosecondBuilder::new().with_timezone("UTC"))
            }
            PgKind::Uuid => Column::Uuid(FixedSizeBinaryBuilder::new(16)),
        }
    }

    fn append_null(&mut self) {
        match self {
            Column::Bool(b) => b.append_null(),
            Column::Int16(b) => b.append_null(),
            Column::Int32(b) => b.append_null(),
            Column::Int64(b) => b.append_null(),
            Column::UInt32(b) => b.append_null(),
            Column::Float32(b) => b.append_null(),
            Column::Float64(b) => b.append_null(),
            Column::Decimal { builder, .. } => builder.append_null(),
            Column::NumericText(b) | Column::Text(b) | Column::Jsonb(b) => b.append_null(),
            Column::Bytes(b) => b.append_null(),
            Column::Date(b) => b.append_null(),
            Column::Time(b) => b.append_null(),
            Column::Timestamp(b) | Column::TimestampTz(b) => b.append_null(),
            Column::Uuid(b) => b.append_null(),
        }
    }

    fn append(&mut self, v: &[u8]) -> Result<(), String> {
        match self {
            Column::Bool(b) => b.append_value(fixed::<1>(v)?[0] != 0),
            Column::Int16(b) => b.append_value(i16::from_be_bytes(fixed(v)?)),
            Column::Int32(b) => b.append_value(i32::from_be_bytes(fixed(v)?)),
            Column::Int64(b) => b.append_value(i64::from_be_bytes(fixed(v)?)),
            Column::UInt32(b) => b.append_value(u32::from_be_bytes(fixed(v)?)),
            Column::Float32(b) => b.append_value(f32::from_be_bytes(fixed(v)?)),
            Column::Float64(b) => b.append_value(f64::from_be_bytes(fixed(v)?)),
            Column::Decimal {
                builder,
                precision,
                scale,
            } => {
                let n = Numeric::parse(v)?;
                let value = n.to_i128(*scale as u32)?;
                if value.unsigned_abs() >= 10u128.pow(*precision as u32) {
                    return Err(format!(
                        "{} does not fit numeric({precision},{scale})",
                        n.to_text()
                    ));
                }
                builder.append_value(value)
            }
            Column::NumericText(b) => b.append_value(Numeric::parse(v)?.to_text()),
            Column::Text(b) => b.append_value(utf8(v)?),
            Column::Jsonb(b) => match v.split_first() {
                Some((1, json)) => b.append_value(utf8(json)?),
                _ => return Err("unknown jsonb format version".into()),
            },
            Column::Bytes(b) => b.append_value(v),
            Column::Date(b) => {
                let days = i32::from_be_bytes(fixed(v)?);
                if days == i32::MAX || days == i32::MIN {
                    return Err("date ±infinity has no Arrow Date32 value".into());
                }
                let days = days
                    .checked_add(PG_EPOCH_DAYS)
                    .ok_or("date out of Date32 range")?;
                b.append_value(days)
            }
            Column::Time(b) => b.append_value(i64::from_be_bytes(fixed(v)?)),
            Column::Timestamp(b) | Column::TimestampTz(b) => {
                let micros = i64::from_be_bytes(fixed(v)?);
                if micros == i64::MAX || micros == i64::MIN {
                    return Err("timestamp ±infinity has no Arrow Timestamp value".into());
                }
                let micros = micros
                    .checked_add(PG_EPOCH_MICROS)
                    .ok_or("timestamp out of range")?;
                b.append_value(micros)
            }
            Column::Uuid(b) => b.append_value(fixed::<16>(v)?).map_err(|e| e.to_string())?,
        }
        Ok(())
    }

    fn bytes(&self) -> usize {
        match self {
            Column::NumericText(b) | Column::Text(b) | Column::Jsonb(b) => {
                b.values_slice().len() + b.len() * 4
            }
            Column::Bytes(b) => b.values_slice().len() + b.len() * 4,
            // Fixed-width values: at most 16 bytes each (decimal, uuid).
            _ => self.len() * 16,
        }
    }

    fn len(&self) -> usize {
        match self {
            Column::Bool(b) => b.len(),
            Column::Int16(b) => b.len(),
            Column::Int32(b) => b.len(),
            Column::Int64(b) => b.len(),
            Column::UInt32(b) => b.len(),
            Column::Float32(b) => b.len(),
            Column::Float64(b) => b.len(),
            Column::Decimal { builder, .. } => builder.len(),
            Column::NumericText(b) | Column::Text(b) | Column::Jsonb(b) => b.len(),
            Column::Bytes(b) => b.len(),
            Column::Date(b) => b.len(),
            Column::Time(b) => b.len(),
            Column::Timestamp(b) | Column::TimestampTz(b) => b.len(),
            Column::Uuid(b) => b.len(),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Column::Bool(b) => Arc::new(b.finish()),
            Column::Int16(b) => Arc::new(b.finish()),
            Column::Int32(b) => Arc::new(b.finish()),
            Column::Int64(b) => Arc::new(b.finish()),
            Column::UInt32(b) => Arc::new(b.finish()),
            Column::Float32(b) => Arc::new(b.finish()),
            Column::Float64(b) => Arc::new(b.finish()),
            Column::Decimal {
                builder,
                precision,
                scale,
            } => {
                let array = builder.finish();
                *builder = decimal_builder(*precision, *scale);
                Arc::new(array)
            }
            Column::NumericText(b) | Column::Text(b) | Column::Jsonb(b) => Arc::new(b.finish()),
            Column::Bytes(b) => Arc::new(b.finish()),
            Column::Date(b) => Arc::new(b.finish()),
            Column::Time(b) => Arc::new(b.finish()),
            Column::Timestamp(b) | Column::TimestampTz(b) => Arc::new(b.finish()),
            Column::Uuid(b) => Arc::new(b.finish()),
        }
    }
}

fn decimal_builder(precision: u8, scale: i8) -> Decimal128Builder {
    Decimal128Builder::new()
        .with_precision_and_scale(precision, scale)
        .expect("precision and scale were validated by the type table")
}

/// PostgreSQL's binary numeric: base-10000 digits with a weight (the exponent of the
/// first digit), a sign word and a display scale.
#[derive(Debug)]
struct Numeric<'a> {
    digits: &'a [u8],
    weight: i16,
    sign: u16,
    dscale: u16,
}

const NUMERIC_POS: u16 = 0x0000;
const NUMERIC_NEG: u16 = 0x4000;
const NUMERIC_NAN: u16 = 0xC000;
const NUMERIC_PINF: u16 = 0xD000;
const NUMERIC_NINF: u16 = 0xF000;

impl<'a> Numeric<'a> {
    fn parse(v: &'a [u8]) -> Result<Numeric<'a>, String> {
        if v.len() < 8 {
            return Err("numeric value too short".into());
        }
        let ndigits = u16::from_be_bytes([v[0], v[1]]) as usize;
        let weight = i16::from_be_bytes([v[2], v[3]]);
        let sign = u16::from_be_bytes([v[4], v[5]]);
        let dscale = u16::from_be_bytes([v[6], v[7]]);
        let digits = &v[8..];
        if digits.len() != ndigits * 2 {
            return Err("numeric digit count does not match its length".into());
        }
        if digits
            .chunks(2)
            .any(|d| u16::from_be_bytes([d[0], d[1]]) > 9999)
        {
            return Err("numeric digit out of range".into());
        }
        if !matches!(
            sign,
            NUMERIC_POS | NUMERIC_NEG | NUMERIC_NAN | NUMERIC_PINF | NUMERIC_NINF
        ) {
            return Err(format!("unknown numeric sign {sign:#x}"));
        }
        Ok(Numeric {
            digits,
            weight,
            sign,
            dscale,
        })
    }

    fn digit(&self, k: usize) -> u16 {
        u16::from_be_bytes([self.digits[2 * k], self.digits[2 * k + 1]])
    }

    fn ndigits(&self) -> usize {
        self.digits.len() / 2
    }

    fn special(&self) -> Option<&'static str> {
        match self.sign {
            NUMERIC_NAN => Some("NaN"),
            NUMERIC_PINF => Some("Infinity"),
            NUMERIC_NINF => Some("-Infinity"),
            _ => None,
        }
    }

    /// The value times 10^scale, exactly.
    fn to_i128(&self, scale: u32) -> Result<i128, String> {
        if let Some(s) = self.special() {
            return Err(format!("{s} cannot be stored in a decimal column"));
        }
        let overflow = || format!("{} does not fit a 128-bit decimal", self.to_text());
        let mut acc: i128 = 0;
        for k in 0..self.ndigits() {
            acc = acc
                .checked_mul(10_000)
                .and_then(|a| a.checked_add(self.digit(k) as i128))
                .ok_or_else(overflow)?;
        }
        // acc holds the digits; its last digit has exponent (weight - ndigits + 1) in base 10000.
        let exp10 = 4 * (self.weight as i64 - self.ndigits() as i64 + 1) + scale as i64;
        if exp10 >= 0 {
            let factor = 10i128.checked_pow(exp10 as u32).ok_or_else(overflow)?;
            acc = acc.checked_mul(factor).ok_or_else(overflow)?;
        } else {
            let divisor = 10i128.checked_pow((-exp10) as u32).ok_or_else(overflow)?;
            if acc % divisor != 0 {
                return Err(format!(
                    "{} has more than {scale} decimal places",
                    self.to_text()
                ));
            }
            acc /= divisor;
        }
        Ok(if self.sign == NUMERIC_NEG { -acc } else { acc })
    }

    /// The exact decimal text, with `dscale` digits after the point (as PostgreSQL prints it).
    fn to_text(&self) -> String {
        if let Some(s) = self.special() {
            return s.to_string();
        }
        let mut out = String::new();
        if self.sign == NUMERIC_NEG && self.ndigits() > 0 {
            out.push('-');
        }
        let digit_at = |exp: i64| -> u16 {
            let k = self.weight as i64 - exp;
            if k >= 0 && (k as usize) < self.ndigits() {
                self.digit(k as usize)
            } else {
                0
            }
        };
        if self.weight < 0 || self.ndigits() == 0 {
            out.push('0');
        } else {
            out.push_str(&digit_at(self.weight as i64).to_string());
            for exp in (0..self.weight as i64).rev() {
                out.push_str(&format!("{:04}", digit_at(exp)));
            }
        }
        if self.dscale > 0 {
            out.push('.');
            let mut frac = String::new();
            let mut exp = -1;
            while frac.len() < self.dscale as usize {
                frac.push_str(&format!("{:04}", digit_at(exp)));
                exp -= 1;
            }
            frac.truncate(self.dscale as usize);
            out.push_str(&frac);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Decimal128Type, Int32Type};

    fn numeric_bytes(weight: i16, sign: u16, dscale: u16, digits: &[u16]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend((digits.len() as u16).to_be_bytes());
        v.extend(weight.to_be_bytes());
        v.extend(sign.to_be_bytes());
        v.extend(dscale.to_be_bytes());
        for d in digits {
            v.extend(d.to_be_bytes());
        }
        v
    }

    #[test]
    fn numeric_text_and_decimal() {
        // 12345.678 = 1|2345|6780 with weight 1
        let b = numeric_bytes(1, NUMERIC_POS, 3, &[1, 2345, 6780]);
        let n = Numeric::parse(&b).unwrap();
        assert_eq!(n.to_text(), "12345.678");
        assert_eq!(n.to_i128(3).unwrap(), 12_345_678);
        assert_eq!(n.to_i128(5).unwrap(), 1_234_567_800);
        assert!(
            n.to_i128(2)
                .unwrap_err()
                .contains("more than 2 decimal places")
        );

        // -0.0042 = weight -1, digits [42], dscale 4
        let b = numeric_bytes(-1, NUMERIC_NEG, 4, &[42]);
        let n = Numeric::parse(&b).unwrap();
        assert_eq!(n.to_text(), "-0.0042");
        assert_eq!(n.to_i128(4).unwrap(), -42);

        // 1000000 = [100] weight 1 (100 * 10000)
        let b = numeric_bytes(1, NUMERIC_POS, 0, &[100]);
        assert_eq!(Numeric::parse(&b).unwrap().to_text(), "1000000");
        // 0 with scale 2
        let b = numeric_bytes(0, NUMERIC_POS, 2, &[]);
        assert_eq!(Numeric::parse(&b).unwrap().to_text(), "0.00");
        let b = numeric_bytes(0, NUMERIC_NAN, 0, &[]);
        assert_eq!(Numeric::parse(&b).unwrap().to_text(), "NaN");
        assert!(Numeric::parse(&b).unwrap().to_i128(2).is_err());
        // A digit above 9999 is malformed.
        assert!(Numeric::parse(&numeric_bytes(0, NUMERIC_POS, 0, &[10000])).is_err());
    }

    fn stream(rows: &[Vec<Option<Vec<u8>>>]) -> Vec<u8> {
        let mut v = SIGNATURE.to_vec();
        v.extend(0i32.to_be_bytes());
        v.extend(0i32.to_be_bytes());
        for row in rows {
            v.extend((row.len() as i16).to_be_bytes());
            for f in row {
                match f {
                    None => v.extend((-1i32).to_be_bytes()),
                    Some(b) => {
                        v.extend((b.len() as i32).to_be_bytes());
                        v.extend(b);
                    }
                }
            }
        }
        v.extend((-1i16).to_be_bytes());
        v
    }

    fn kinds() -> Vec<(String, PgKind)> {
        vec![
            ("i".into(), PgKind::Int4),
            ("t".into(), PgKind::Text),
            (
                "d".into(),
                PgKind::Decimal {
                    precision: 10,
                    scale: 2,
                },
            ),
        ]
    }

    fn sample() -> Vec<u8> {
        stream(&[
            vec![
                Some(7i32.to_be_bytes().to_vec()),
                Some(b"seven".to_vec()),
                Some(numeric_bytes(0, NUMERIC_POS, 2, &[7, 5000])),
            ],
            vec![None, None, None],
            vec![
                Some((-1i32).to_be_bytes().to_vec()),
                Some("ünï".as_bytes().to_vec()),
                Some(numeric_bytes(0, NUMERIC_NEG, 2, &[1])),
            ],
        ])
    }

    fn check(batch: &RecordBatch) {
        assert_eq!(batch.num_rows(), 3);
        let i = batch.column(0).as_primitive::<Int32Type>();
        assert_eq!((i.value(0), i.is_null(1), i.value(2)), (7, true, -1));
        let t = batch.column(1).as_string::<i32>();
        assert_eq!(
            (t.value(0), t.is_null(1), t.value(2)),
            ("seven", true, "ünï")
        );
        let d = batch.column(2).as_primitive::<Decimal128Type>();
        assert_eq!((d.value(0), d.is_null(1), d.value(2)), (750, true, -100));
    }

    #[test]
    fn decodes_whole_stream() {
        let mut dec = CopyDecoder::new(&kinds());
        dec.push(&sample()).unwrap();
        dec.finish().unwrap();
        check(&dec.take_batch());
    }

    #[test]
    fn any_chunking_gives_the_same_result() {
        let data = sample();
        for size in 1..data.len() {
            let mut dec = CopyDecoder::new(&kinds());
            for chunk in data.chunks(size) {
                dec.push(chunk).unwrap();
            }
            dec.finish().unwrap();
            check(&dec.take_batch());
        }
    }

    #[test]
    fn truncation_is_detected() {
        let data = sample();
        for cut in 0..data.len() - 1 {
            let mut dec = CopyDecoder::new(&kinds());
            let r = dec.push(&data[..cut]);
            assert!(
                r.is_err() || dec.finish() == Err(CopyError::Truncated),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        // Wrong field count, bad signature, absurd lengths, wrong fixed sizes.
        let bad_count = stream(&[vec![None]]);
        assert!(CopyDecoder::new(&kinds()).push(&bad_count).is_err());
        assert!(CopyDecoder::new(&kinds()).push(b"PGCOPX\n").is_err());
        let wrong_size = stream(&[vec![Some(vec![1, 2]), None, None]]);
        let err = CopyDecoder::new(&kinds()).push(&wrong_size).unwrap_err();
        assert_eq!(
            err,
            CopyError::Value {
                column: 0,
                message: "expected 4 bytes, got 2".into()
            }
        );
        let mut neg = stream(&[]);
        neg.truncate(19);
        neg.extend(3i16.to_be_bytes());
        neg.extend((-7i32).to_be_bytes());
        assert!(CopyDecoder::new(&kinds()).push(&neg).is_err());
        let mut huge = stream(&[]);
        huge.truncate(19);
        huge.extend(3i16.to_be_bytes());
        huge.extend(i32::MAX.to_be_bytes());
        assert!(
            CopyDecoder::new(&kinds()).push(&huge).is_err(),
            "a claimed 2 GiB field is refused at once"
        );
        let mut after = sample();
        after.push(0);
        assert!(CopyDecoder::new(&kinds()).push(&after).is_err());
    }

    #[test]
    fn reordered_chunks_are_errors_not_panics() {
        use rand::seq::SliceRandom;
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::SmallRng::seed_from_u64(11);
        let valid = sample();
        for _ in 0..1000 {
            let size = rng.random_range(1..12);
            let mut chunks: Vec<&[u8]> = valid.chunks(size).collect();
            chunks.shuffle(&mut rng);
            let mut dec = CopyDecoder::new(&kinds());
            let mut result = Ok(());
            for chunk in &chunks {
                result = dec.push(chunk);
                if result.is_err() {
                    break;
                }
            }
            let ordered = chunks.windows(2).all(|w| w[0].as_ptr() < w[1].as_ptr());
            if !ordered {
                // Whatever the decoder made of it, it never claims a complete, valid stream
                // unless the bytes happen to form one.
                let rebuilt: Vec<u8> = chunks.concat();
                if result.is_ok() && dec.finish().is_ok() {
                    assert!(CopyDecoder::new(&kinds()).push(&rebuilt).is_ok());
                }
            }
        }
    }

    #[test]
    fn random_bytes_never_panic() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        let valid = sample();
        for _ in 0..2000 {
            let mut data = valid.clone();
            for _ in 0..rng.random_range(1..6) {
                let i = rng.random_range(0..data.len());
                data[i] = rng.random();
            }
            let cut = rng.random_range(0..=data.len());
            let mut dec = CopyDecoder::new(&kinds());
            let _ = dec.push(&data[..cut]).and_then(|_| dec.finish());
        }
    }
}
