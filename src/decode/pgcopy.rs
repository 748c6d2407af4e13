//! A parser for PostgreSQL's binary COPY format that appends values straight into Arrow
//! builders, with no per-row objects.
//!
//! The stream is a header (`PGCOPY\n\xff\r\n\0`, flags, extension), then tuples (an i16
//! field count, then per field an i32 length, -1 for NULL, and the value in the type's
//! binary send format), then a trailer (field count -1). The server sends one CopyData
//! message per tuple, but this parser accepts any chunking: a partial tuple is kept until
//! the rest arrives. Malformed input is an error, never a panic, and nothing is allocated
//! from a length the input claims before the bytes are actually there.
//!
//! Complete tuples are first gathered into a block of [`BLOCK_ROWS`], then decoded column
//! by column: one loop per column over the block's values, with the column's kind decided
//! once per block rather than once per value, while the block is still in cache. A value
//! that cannot be decoded is reported by the call that completes its block: a `push`
//! that fills the block or reaches the trailer, or `take_batch`.

use std::sync::Arc;

use arrow::array::builder::NullBufferBuilder;
use arrow::array::{
    Array, ArrayRef, ArrowPrimitiveType, BinaryBuilder, BooleanBuilder, Date32Builder,
    Decimal128Builder, DurationMicrosecondBuilder, FixedSizeBinaryBuilder, Float32Builder,
    Float64Builder, Int16Builder, Int32Builder, Int64Builder, ListArray, MapBuilder, MapFieldNames,
    PrimitiveBuilder, RecordBatch, StringArray, StringBuilder, StringDictionaryBuilder,
    StructArray, Time64MicrosecondBuilder, TimestampMicrosecondBuilder, UInt32Builder,
    UInt64Builder,
};
use arrow::buffer::{MutableBuffer, OffsetBuffer};
use arrow::datatypes::{FieldRef, Fields, Int32Type, Schema, SchemaRef};

use crate::types::{
    ArrayBoundsMode, InfinityMode, IntervalMode, MAX_ARRAY_DIMS, MONEY_SCALE, PgKind, TimeTzMode,
    UuidMode,
};

const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";
/// Days from 1970-01-01 (Arrow's epoch) to 2000-01-01 (PostgreSQL's).
const PG_EPOCH_DAYS: i32 = 10_957;
/// PostgreSQL's largest field value (1 GiB).
const MAX_FIELD_BYTES: i32 = 1 << 30;
/// Tuples decoded together, column by column. A block of the benchmark's 15-column rows
/// takes about 14 KiB, which stays in the core's first-level cache between the column
/// passes. The decode benchmark gave 91, 89, 90, 95 and 93 ns/row for blocks of 32, 64,
/// 128, 256 and 1024 rows.
const BLOCK_ROWS: usize = 64;
/// A block of wide tuples is decoded once it holds this many bytes, fewer than
/// [`BLOCK_ROWS`] tuples: the block is a copy, kept small.
const BLOCK_BYTES: usize = 256 << 10;
/// Microseconds from 1970-01-01 to 2000-01-01.
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
const MICROS_PER_DAY: i64 = 86_400_000_000;
/// 10^p for every Decimal128 precision (a numeric(p,s) value stays under it): a table,
/// since `pow` per value showed in the decoding profile.
const POW10: [i128; 39] = {
    let mut table = [1i128; 39];
    let mut p = 1;
    while p < 39 {
        table[p] = table[p - 1] * 10;
        p += 1;
    }
    table
};

pub use super::error::{CopyError, Malformed, ValueError};

/// The header's flags word: bit 16 says every tuple carries an OID; bits 16-31 are all
/// critical (a reader must abort on one it does not know); bits 0-15 are for
/// backwards-compatible format issues, which a reader may ignore.
const FLAG_OIDS: u32 = 1 << 16;
const CRITICAL_FLAGS: u32 = 0xffff_0000;
/// The longest header extension accepted: PostgreSQL sends none, and the extension is
/// buffered whole before the first tuple.
const MAX_HEADER_EXTENSION: u32 = 1 << 20;

/// The length a column's values always have in the send format, which lets the tuple walk
/// find the next field without waiting for this one's length word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Width {
    Fixed(i32),
    /// The length varies (text, numeric, arrays, ...): read it from the length word.
    Varies,
}

#[derive(Debug, PartialEq, Eq)]
enum State {
    Header,
    Tuples,
    Done,
    /// An error was returned: the rows decoded since the last batch were dropped (a
    /// failing value may have left part of itself in its builders) and nothing more is
    /// accepted.
    Failed,
}

/// Decodes one COPY stream into record batches of the given schema.
pub struct CopyDecoder {
    state: State,
    /// A partial tuple (or header) carried over between chunks.
    pending: Vec<u8>,
    /// Stream bytes parsed so far: the offset of `pending`'s first byte, from which
    /// errors say where in the stream they are.
    consumed: u64,
    /// Complete tuples not yet decoded: their fields back to back, without the field
    /// count.
    block: Vec<u8>,
    /// For each tuple in `block`, for each column: where the field's length word starts.
    fields: Vec<usize>,
    /// For each tuple in `block`: what to add to a place in `block` to get its offset in
    /// the stream, for errors.
    shifts: Vec<u64>,
    /// Where a block's values of one column are gathered before they go to its builder.
    scratch: Scratch,
    /// For each column, the length its values always have, if they do.
    widths: Vec<Width>,
    columns: Vec<Column>,
    /// The column names, for errors.
    names: Vec<String>,
    /// The column kinds, to rebuild the builders after an error.
    kinds: Vec<PgKind>,
    schema: SchemaRef,
    rows: usize,
    /// Bytes of the rows decoded and not yet taken: the decoded arrays take about as much.
    bytes: usize,
}

impl CopyDecoder {
    pub fn new(kinds: &[(String, PgKind)]) -> CopyDecoder {
        let fields: Vec<_> = kinds.iter().map(|(name, kind)| kind.field(name)).collect();
        let columns: Vec<Column> = kinds.iter().map(|(_, k)| Column::new(k)).collect();
        CopyDecoder {
            state: State::Header,
            pending: Vec::new(),
            consumed: 0,
            block: Vec::new(),
            fields: Vec::new(),
            shifts: Vec::new(),
            scratch: Scratch::default(),
            widths: columns.iter().map(Column::width).collect(),
            columns,
            names: kinds.iter().map(|(name, _)| name.clone()).collect(),
            kinds: kinds.iter().map(|(_, k)| k.clone()).collect(),
            schema: Arc::new(Schema::new(fields)),
            rows: 0,
            bytes: 0,
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
        self.bytes
    }

    /// Whether the trailer has been seen.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Feeds the next chunk of the stream.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), CopyError> {
        let result = self.push_inner(chunk);
        if result.is_err() {
            self.fail();
        }
        result
    }

    /// Drops what was decoded since the last batch and refuses anything more.
    fn fail(&mut self) {
        self.state = State::Failed;
        self.pending.clear();
        self.block.clear();
        self.fields.clear();
        self.shifts.clear();
        self.columns = self.kinds.iter().map(Column::new).collect();
        self.rows = 0;
        self.bytes = 0;
    }

    /// A protocol error `at` bytes into the data now being parsed.
    fn malformed(&self, at: usize, column: Option<usize>, problem: Malformed) -> CopyError {
        CopyError::Malformed {
            offset: self.consumed + at as u64,
            column: column.map(|c| self.names[c].clone()),
            problem,
        }
    }

    fn push_inner(&mut self, chunk: &[u8]) -> Result<(), CopyError> {
        if self.state == State::Failed {
            return Err(self.malformed(self.pending.len(), None, Malformed::AlreadyFailed));
        }
        if self.pending.is_empty() {
            let used = self.parse(chunk)?;
            self.consumed += used as u64;
            self.pending.extend_from_slice(&chunk[used..]);
        } else {
            let mut data = std::mem::take(&mut self.pending);
            data.extend_from_slice(chunk);
            let used = self.parse(&data)?;
            self.consumed += used as u64;
            data.drain(..used);
            self.pending = data;
        }
        Ok(())
    }

    /// Checks that the stream ended properly (trailer seen, nothing left over).
    pub fn finish(&self) -> Result<(), CopyError> {
        let problem = match self.state {
            State::Done if self.pending.is_empty() => return Ok(()),
            State::Done => Malformed::AfterTrailer,
            State::Failed => Malformed::AlreadyFailed,
            State::Header | State::Tuples => Malformed::Truncated,
        };
        Err(self.malformed(0, None, problem))
    }

    /// Takes the buffered rows as a record batch. `Err` when a value fails a check made
    /// a batch at a time (text that is not UTF-8); the decoder then accepts nothing more.
    pub fn take_batch(&mut self) -> Result<RecordBatch, CopyError> {
        if let Err(e) = self.decode_block() {
            self.fail();
            return Err(e);
        }
        let arrays = self
            .columns
            .iter_mut()
            .zip(&self.names)
            .map(|(c, name)| {
                c.finish().map_err(|problem| CopyError::Value {
                    column: name.clone(),
                    offset: None,
                    problem,
                })
            })
            .collect::<Result<Vec<ArrayRef>, _>>();
        let rows = std::mem::take(&mut self.rows);
        self.bytes = 0;
        let arrays = match arrays {
            Ok(arrays) => arrays,
            Err(e) => {
                self.fail();
                return Err(e);
            }
        };
        Ok(RecordBatch::try_new_with_options(
            self.schema.clone(),
            arrays,
            &arrow::array::RecordBatchOptions::new().with_row_count(Some(rows)),
        )
        .expect("builders match the schema by construction"))
    }

    /// Parses what it can of `data`; returns the bytes consumed.
    fn parse(&mut self, data: &[u8]) -> Result<usize, CopyError> {
        let mut pos = 0;
        if self.state == State::Header {
            match header_len(data).map_err(|(at, problem)| self.malformed(at, None, problem))? {
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
            if count < 0 || count as usize != self.columns.len() {
                let problem = Malformed::FieldCount {
                    found: count,
                    expected: self.columns.len(),
                };
                return Err(self.malformed(pos, None, problem));
            }
            // First find the whole tuple, so that a partial one appends nothing.
            let Some(len) = self
                .stage(rest, self.consumed + pos as u64)
                .map_err(|(at, column, problem)| self.malformed(pos + at, Some(column), problem))?
            else {
                break;
            };
            self.rows += 1;
            self.bytes += len + 8 * self.columns.len();
            pos += len;
            if self.fields.len() >= BLOCK_ROWS * self.columns.len()
                || self.block.len() >= BLOCK_BYTES
            {
                self.decode_block()?;
            }
        }
        if self.state == State::Done {
            self.decode_block()?;
        }
        if self.state == State::Done && pos < data.len() {
            return Err(self.malformed(pos, None, Malformed::AfterTrailer));
        }
        Ok(pos)
    }

    /// Adds the tuple at the start of `data` (field count included), which starts at byte
    /// `offset` of the stream, to the block if it is complete, and returns its length.
    fn stage(&mut self, data: &[u8], offset: u64) -> Result<Option<usize>, BadField> {
        let mark = self.fields.len();
        self.fields.resize(mark + self.widths.len(), 0);
        let base = self.block.len();
        let found = walk(data, &self.widths, &mut self.fields[mark..], base);
        match found {
            Ok(Some(len)) => {
                self.block.extend_from_slice(&data[2..len]);
                // Block place `base` holds the stream's byte `offset + 2`.
                self.shifts.push(offset + 2 - base as u64);
            }
            _ => self.fields.truncate(mark),
        }
        found
    }

    /// Decodes the block's tuples into the builders, a column at a time.
    fn decode_block(&mut self) -> Result<(), CopyError> {
        if self.fields.is_empty() {
            return Ok(());
        }
        let stride = self.columns.len();
        for (i, column) in self.columns.iter_mut().enumerate() {
            let block = &self.block[..];
            // The row whose value was handed out last: the failing one when a column
            // returns an error, since each value is converted as it is taken.
            let last = std::cell::Cell::new(0);
            let values = self
                .fields
                .chunks_exact(stride)
                .enumerate()
                .map(|(row, fields)| {
                    last.set(row);
                    let at = fields[i];
                    let n = i32::from_be_bytes(block[at..at + 4].try_into().expect("4 bytes"));
                    // `stage` checked every length against the tuple's bytes.
                    usize::try_from(n).ok().map(|n| &block[at + 4..at + 4 + n])
                });
            if let Err(problem) = column.append_values(values, &mut self.scratch) {
                let row = last.get();
                return Err(CopyError::Value {
                    column: self.names[i].clone(),
                    offset: Some(self.shifts[row] + self.fields[row * stride + i] as u64),
                    problem,
                });
            }
        }
        self.block.clear();
        self.fields.clear();
        self.shifts.clear();
        Ok(())
    }
}

/// The header's length if it is complete; `Err` holds where in it the problem is.
fn header_len(data: &[u8]) -> Result<Option<usize>, (usize, Malformed)> {
    let n = data.len().min(SIGNATURE.len());
    if data[..n] != SIGNATURE[..n] {
        return Err((0, Malformed::Signature));
    }
    if data.len() < 19 {
        return Ok(None);
    }
    let flags = u32::from_be_bytes(data[11..15].try_into().expect("4 bytes"));
    if flags & FLAG_OIDS != 0 {
        return Err((11, Malformed::Oids));
    }
    if flags & CRITICAL_FLAGS != 0 {
        return Err((11, Malformed::CriticalFlags(flags & CRITICAL_FLAGS)));
    }
    let ext = u32::from_be_bytes(data[15..19].try_into().expect("4 bytes"));
    if ext > MAX_HEADER_EXTENSION {
        return Err((15, Malformed::ExtensionTooLong(ext)));
    }
    // The extension's contents are skipped, as PostgreSQL's docs ask of a reader.
    let len = 19 + ext as usize;
    Ok((data.len() >= len).then_some(len))
}

/// A bad field length: where in the tuple its length word is, its column, and why.
type BadField = (usize, usize, Malformed);

/// Walks the fields of the tuple at the start of `data` (field count included), noting
/// in `slots` where each length word will be once the tuple, without its field count, is
/// appended to a block at `base`; returns the tuple's length if it is complete.
#[inline]
fn walk(
    data: &[u8],
    widths: &[Width],
    slots: &mut [usize],
    base: usize,
) -> Result<Option<usize>, BadField> {
    let mut at = 2;
    for (column, (slot, &width)) in slots.iter_mut().zip(widths).enumerate() {
        let Some(len) = data.get(at..at + 4) else {
            return Ok(None);
        };
        let n = i32::from_be_bytes(len.try_into().expect("4 bytes"));
        *slot = base + at - 2;
        match width {
            // The size the column's kind always has. The branch is predicted, so the
            // next field's place follows from the kind without waiting for this length
            // to be loaded: the walk is not one long chain of dependent loads.
            Width::Fixed(w) if n == w => at += 4 + w as usize,
            _ => match field_bytes(n) {
                Ok(bytes) => at += 4 + bytes,
                Err(problem) => return Err((at, column, problem)),
            },
        }
        if at > data.len() {
            return Ok(None);
        }
    }
    Ok(Some(at))
}

/// The bytes a field of length word `n` takes after it.
#[inline]
fn field_bytes(n: i32) -> Result<usize, Malformed> {
    if (0..=MAX_FIELD_BYTES).contains(&n) {
        Ok(n as usize)
    } else if n == -1 {
        Ok(0)
    } else {
        Err(bad_length(n))
    }
}

#[cold]
fn bad_length(n: i32) -> Malformed {
    if n < 0 {
        Malformed::NegativeLength(n)
    } else {
        Malformed::TooLong(n)
    }
}

/// Reads a value's parts; every read is bounds-checked, so malformed input is an error.
struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(data: &'a [u8]) -> Cursor<'a> {
        Cursor { data, pos: 0 }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ValueError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|end| *end <= self.data.len())
            .ok_or(ValueError::Short { wanted: n })?;
        let out = &self.data[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn i32(&mut self) -> Result<i32, ValueError> {
        Ok(i32::from_be_bytes(fixed(self.take(4)?)?))
    }

    fn u16(&mut self) -> Result<u16, ValueError> {
        Ok(u16::from_be_bytes(fixed(self.take(2)?)?))
    }

    fn u8(&mut self) -> Result<u8, ValueError> {
        Ok(self.take(1)?[0])
    }

    fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    /// A length-prefixed value: `None` for length -1 (NULL).
    fn field(&mut self) -> Result<Option<&'a [u8]>, ValueError> {
        match self.i32()? {
            -1 => Ok(None),
            n if n < 0 => Err(ValueError::NegativeLength(n)),
            n => self.take(n as usize).map(Some),
        }
    }

    fn end(&self) -> Result<(), ValueError> {
        if self.pos == self.data.len() {
            Ok(())
        } else {
            Err(ValueError::Trailing(self.data.len() - self.pos))
        }
    }
}

/// Which PostgreSQL value a List column holds per row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ListKind {
    /// An array; this level is one of `dims` dimensions (the outermost when `level == 0`).
    Array {
        dims: u8,
        level: u8,
        bounds: ArrayBoundsMode,
    },
    Multirange,
    Vector,
}

/// Which PostgreSQL value a Struct column holds per row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StructKind {
    TimeTz,
    Interval(InfinityMode),
    Point,
    Range,
    Composite,
}

/// One column's builder, by kind. Nested kinds hold their children's columns. After an
/// error a column may hold part of a value: the decoder is then dropped with its task.
enum Column {
    Bool(BooleanBuilder),
    Int16(Int16Builder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    UInt32(UInt32Builder),
    UInt64(UInt64Builder),
    Float32(Float32Builder),
    Float64(Float64Builder),
    Decimal {
        builder: Decimal128Builder,
        precision: u8,
        scale: i8,
        infinity: InfinityMode,
    },
    NumericText(StringBuilder),
    NumericFloat(Float64Builder),
    Money(Decimal128Builder),
    /// Text and json: the bytes as they come, checked as UTF-8 a whole batch at a time
    /// when the batch is taken (one pass over the buffer instead of one call per value).
    Text(BinaryBuilder),
    VersionedText(StringBuilder),
    Char(StringBuilder),
    Jsonb(StringBuilder),
    Dictionary(StringDictionaryBuilder<Int32Type>),
    Bytes(BinaryBuilder),
    Date(Date32Builder, InfinityMode),
    Time(Time64MicrosecondBuilder, InfinityMode),
    TimeTzUtc(Time64MicrosecondBuilder),
    Timestamp(TimestampMicrosecondBuilder, InfinityMode),
    Duration(DurationMicrosecondBuilder, InfinityMode),
    Uuid(FixedSizeBinaryBuilder),
    UuidText(StringBuilder),
    Inet(StringBuilder, bool),
    MacAddr(StringBuilder),
    Bit(StringBuilder),
    Hstore(MapBuilder<StringBuilder, StringBuilder>),
    List {
        kind: ListKind,
        field: FieldRef,
        offsets: Vec<i32>,
        nulls: NullBufferBuilder,
        child: Box<Column>,
    },
    Struct {
        kind: StructKind,
        fields: Fields,
        nulls: NullBufferBuilder,
        children: Vec<Column>,
    },
}

fn fixed<const N: usize>(v: &[u8]) -> Result<[u8; N], ValueError> {
    v.try_into().map_err(|_| ValueError::Size {
        expected: N,
        got: v.len(),
    })
}

fn utf8(v: &[u8]) -> Result<&str, ValueError> {
    std::str::from_utf8(v).map_err(ValueError::Utf8)
}

/// A text value after its one-byte format version (jsonb, ltree, jsonpath: version 1).
fn versioned(v: &[u8]) -> Result<&str, ValueError> {
    match v.split_first() {
        Some((1, text)) => utf8(text),
        Some((n, _)) => Err(ValueError::FormatVersion(*n)),
        None => Err(ValueError::Empty),
    }
}

fn hstore_builder() -> MapBuilder<StringBuilder, StringBuilder> {
    let names = MapFieldNames {
        entry: "entries".into(),
        key: "keys".into(),
        value: "values".into(),
    };
    MapBuilder::new(Some(names), StringBuilder::new(), StringBuilder::new())
}

impl Column {
    fn new(kind: &PgKind) -> Column {
        match kind {
            PgKind::Bool => Column::Bool(BooleanBuilder::new()),
            PgKind::Int2 => Column::Int16(Int16Builder::new()),
            PgKind::Int4 => Column::Int32(Int32Builder::new()),
            PgKind::Int8 => Column::Int64(Int64Builder::new()),
            PgKind::UInt32 => Column::UInt32(UInt32Builder::new()),
            PgKind::UInt64 => Column::UInt64(UInt64Builder::new()),
            PgKind::Float4 => Column::Float32(Float32Builder::new()),
            PgKind::Float8 => Column::Float64(Float64Builder::new()),
            PgKind::Decimal {
                precision,
                scale,
                infinity,
            } => Column::Decimal {
                builder: decimal_builder(*precision, *scale),
                precision: *precision,
                scale: *scale,
                infinity: *infinity,
            },
            PgKind::NumericText => Column::NumericText(StringBuilder::new()),
            PgKind::NumericFloat => Column::NumericFloat(Float64Builder::new()),
            PgKind::Money => Column::Money(decimal_builder(19, MONEY_SCALE)),
            PgKind::Text | PgKind::Json => Column::Text(BinaryBuilder::new()),
            PgKind::VersionedText => Column::VersionedText(StringBuilder::new()),
            PgKind::Char => Column::Char(StringBuilder::new()),
            PgKind::Jsonb => Column::Jsonb(StringBuilder::new()),
            PgKind::EnumDictionary => Column::Dictionary(StringDictionaryBuilder::new()),
            PgKind::Bytea => Column::Bytes(BinaryBuilder::new()),
            PgKind::Date(inf) => Column::Date(Date32Builder::new(), *inf),
            PgKind::Time(inf) => Column::Time(Time64MicrosecondBuilder::new(), *inf),
            PgKind::TimeTz(TimeTzMode::Utc, _) => {
                Column::TimeTzUtc(Time64MicrosecondBuilder::new())
            }
            PgKind::Timestamp(inf) => Column::Timestamp(TimestampMicrosecondBuilder::new(), *inf),
            PgKind::TimestampTz(inf) => Column::Timestamp(
                TimestampMicrosecondBuilder::new().with_timezone("UTC"),
                *inf,
            ),
            PgKind::Interval(IntervalMode::Duration, inf) => {
                Column::Duration(DurationMicrosecondBuilder::new(), *inf)
            }
            PgKind::Uuid(UuidMode::Binary) => Column::Uuid(FixedSizeBinaryBuilder::new(16)),
            PgKind::Uuid(_) => Column::UuidText(StringBuilder::new()),
            PgKind::Inet { cidr } => Column::Inet(StringBuilder::new(), *cidr),
            PgKind::MacAddr => Column::MacAddr(StringBuilder::new()),
            PgKind::Bit => Column::Bit(StringBuilder::new()),
            PgKind::Hstore => Column::Hstore(hstore_builder()),
            PgKind::Vector => Column::list(ListKind::Vector, &PgKind::Float4, "item"),
            PgKind::Array {
                element,
                dims,
                bounds,
            } => Column::array(element, *dims, *bounds, 0),
            PgKind::Multirange(range) => Column::list(ListKind::Multirange, range, "item"),
            PgKind::TimeTz(..) => Column::strukt(StructKind::TimeTz, kind),
            PgKind::Interval(_, inf) => Column::strukt(StructKind::Interval(*inf), kind),
            PgKind::Point => Column::strukt(StructKind::Point, kind),
            PgKind::Range(_) => Column::strukt(StructKind::Range, kind),
            PgKind::Composite(_) => Column::strukt(StructKind::Composite, kind),
        }
    }

    fn list(kind: ListKind, element: &PgKind, name: &str) -> Column {
        Column::List {
            kind,
            field: Arc::new(element.nested_field(name)),
            offsets: vec![0],
            nulls: NullBufferBuilder::new(0),
            child: Box::new(Column::new(element)),
        }
    }

    /// The List column for dimension `level` (0 = outermost) of a `dims`-dimensional array.
    fn array(element: &PgKind, dims: u8, bounds: ArrayBoundsMode, level: u8) -> Column {
        let kind = ListKind::Array {
            dims,
            level,
            bounds,
        };
        if level + 1 == dims {
            return Column::list(kind, element, "item");
        }
        let inner = PgKind::Array {
            element: Box::new(element.clone()),
            dims: dims - level - 1,
            bounds,
        };
        Column::List {
            kind,
            field: Arc::new(inner.nested_field("item")),
            offsets: vec![0],
            nulls: NullBufferBuilder::new(0),
            child: Box::new(Column::array(element, dims, bounds, level + 1)),
        }
    }

    fn strukt(kind: StructKind, pg: &PgKind) -> Column {
        let children = match pg {
            PgKind::TimeTz(_, inf) => {
                vec![Column::new(&PgKind::Time(*inf)), Column::new(&PgKind::Int4)]
            }
            PgKind::Interval(..) => vec![
                Column::new(&PgKind::Int4),
                Column::new(&PgKind::Int4),
                Column::new(&PgKind::Int8),
            ],
            PgKind::Point => vec![Column::new(&PgKind::Float8), Column::new(&PgKind::Float8)],
            PgKind::Range(bound) => vec![
                Column::new(bound),
                Column::new(bound),
                Column::new(&PgKind::Bool),
                Column::new(&PgKind::Bool),
                Column::new(&PgKind::Bool),
            ],
            PgKind::Composite(fields) => fields.iter().map(|(_, k)| Column::new(k)).collect(),
            _ => unreachable!("only struct kinds reach here"),
        };
        Column::Struct {
            kind,
            fields: pg.struct_fields(),
            nulls: NullBufferBuilder::new(0),
            children,
        }
    }

    /// The length every value of this column has in the send format, if it has one.
    fn width(&self) -> Width {
        Width::Fixed(match self {
            Column::Bool(_) => 1,
            Column::Int16(_) => 2,
            Column::Int32(_) | Column::UInt32(_) | Column::Float32(_) | Column::Date(..) => 4,
            Column::Int64(_)
            | Column::UInt64(_)
            | Column::Float64(_)
            | Column::Money(_)
            | Column::Time(..)
            | Column::Timestamp(..) => 8,
            Column::TimeTzUtc(_) => 12,
            Column::Duration(..) | Column::Uuid(_) | Column::UuidText(_) => 16,
            _ => return Width::Varies,
        })
    }

    fn append_null(&mut self) {
        match self {
            Column::Bool(b) => b.append_null(),
            Column::Int16(b) => b.append_null(),
            Column::Int32(b) => b.append_null(),
            Column::Int64(b) => b.append_null(),
            Column::UInt32(b) => b.append_null(),
            Column::UInt64(b) => b.append_null(),
            Column::Float32(b) => b.append_null(),
            Column::Float64(b) | Column::NumericFloat(b) => b.append_null(),
            Column::Decimal { builder: b, .. } | Column::Money(b) => b.append_null(),
            Column::NumericText(b)
            | Column::VersionedText(b)
            | Column::Char(b)
            | Column::Jsonb(b)
            | Column::UuidText(b)
            | Column::Inet(b, _)
            | Column::MacAddr(b)
            | Column::Bit(b) => b.append_null(),
            Column::Dictionary(b) => b.append_null(),
            Column::Bytes(b) | Column::Text(b) => b.append_null(),
            Column::Date(b, _) => b.append_null(),
            Column::Time(b, _) | Column::TimeTzUtc(b) => b.append_null(),
            Column::Timestamp(b, _) => b.append_null(),
            Column::Duration(b, _) => b.append_null(),
            Column::Uuid(b) => b.append_null(),
            Column::Hstore(b) => b.append(false).expect("keys and values stay aligned"),
            Column::List { offsets, nulls, .. } => {
                let last = *offsets.last().expect("offsets start with 0");
                offsets.push(last);
                nulls.append_null();
            }
            Column::Struct {
                nulls, children, ..
            } => {
                nulls.append_null();
                children.iter_mut().for_each(Column::append_null);
            }
        }
    }

    fn append_opt(&mut self, v: Option<&[u8]>) -> Result<(), ValueError> {
        match v {
            Some(v) => self.append(v),
            None => {
                self.append_null();
                Ok(())
            }
        }
    }

    /// Appends one value in its type's binary send format.
    fn append(&mut self, v: &[u8]) -> Result<(), ValueError> {
        match self {
            Column::Bool(b) => b.append_value(fixed::<1>(v)?[0] != 0),
            Column::Int16(b) => b.append_value(i16::from_be_bytes(fixed(v)?)),
            Column::Int32(b) => b.append_value(i32::from_be_bytes(fixed(v)?)),
            Column::Int64(b) => b.append_value(i64::from_be_bytes(fixed(v)?)),
            Column::UInt32(b) => b.append_value(u32::from_be_bytes(fixed(v)?)),
            Column::UInt64(b) => b.append_value(u64::from_be_bytes(fixed(v)?)),
            Column::Float32(b) => b.append_value(f32::from_be_bytes(fixed(v)?)),
            Column::Float64(b) => b.append_value(f64::from_be_bytes(fixed(v)?)),
            Column::Decimal {
                builder,
                precision,
                scale,
                infinity,
            } => builder.append_option(decimal(v, *precision, *scale, *infinity)?),
            Column::NumericText(b) => b.append_value(Numeric::parse(v)?.to_text()),
            Column::NumericFloat(b) => {
                let text = Numeric::parse(v)?.to_text();
                let f = match text.as_str() {
                    "Infinity" => f64::INFINITY,
                    "-Infinity" => f64::NEG_INFINITY,
                    t => t
                        .parse::<f64>()
                        .map_err(|source| ValueError::NumericFloat {
                            text: t.to_string(),
                            source,
                        })?,
                };
                b.append_value(f)
            }
            Column::Money(b) => b.append_value(i64::from_be_bytes(fixed(v)?) as i128),
            Column::Text(b) => b.append_value(v),
            Column::Jsonb(b) | Column::VersionedText(b) => b.append_value(versioned(v)?),
            Column::Char(b) => {
                // "char" is one byte, not necessarily UTF-8 on its own.
                let byte = fixed::<1>(v)?[0];
                if byte == 0 {
                    b.append_value("")
                } else if byte.is_ascii() {
                    b.append_value((byte as char).to_string())
                } else {
                    b.append_value(format!("\\{byte:03o}"))
                }
            }
            Column::Dictionary(b) => {
                // The only error is running out of Int32 keys.
                b.append(utf8(v)?).map_err(|_| ValueError::DictionaryFull)?;
            }
            Column::Bytes(b) => b.append_value(v),
            Column::Date(b, infinity) => b.append_option(date(v, *infinity)?),
            Column::Time(b, infinity) => b.append_option(time(v, *infinity)?),
            Column::TimeTzUtc(b) => {
                let mut c = Cursor::new(v);
                let micros = i64::from_be_bytes(fixed(c.take(8)?)?);
                let west = c.i32()? as i64;
                c.end()?;
                // A time of day runs to 24:00:00; past it, `micros` would be no time at
                // all, and could overflow the sum below.
                if !(0..=MICROS_PER_DAY).contains(&micros) {
                    return Err(ValueError::OutOfRange("time"));
                }
                // The zone is stored in seconds west of UTC: UTC = local + west. Moved to
                // UTC, a time wraps around midnight (24:00 UTC is 00:00).
                b.append_value((micros + west * 1_000_000).rem_euclid(MICROS_PER_DAY))
            }
            Column::Timestamp(b, infinity) => b.append_option(timestamp(v, *infinity)?),
            Column::Duration(b, mode) => {
                let (micros, days, months) = interval_parts(v)?;
                if let Some(special) = infinite_interval(micros, days, months, *mode) {
                    let clamped = special?.map(|(micros, ..)| micros);
                    b.append_option(clamped);
                    return Ok(());
                }
                let (days, months) = (days as i64, months as i64);
                let total = (months * 30 + days)
                    .checked_mul(MICROS_PER_DAY)
                    .and_then(|d| d.checked_add(micros))
                    .ok_or(ValueError::DurationOverflow)?;
                b.append_value(total)
            }
            Column::Uuid(b) => {
                let v = fixed::<16>(v)?;
                // The builder's only error is a value of another size than its 16.
                b.append_value(v).map_err(|_| ValueError::Size {
                    expected: 16,
                    got: v.len(),
                })?
            }
            Column::UuidText(b) => {
                let uuid = uuid::Uuid::from_bytes(fixed::<16>(v)?);
                b.append_value(
                    uuid.hyphenated()
                        .encode_lower(&mut uuid::Uuid::encode_buffer()),
                )
            }
            Column::Inet(b, cidr) => b.append_value(inet_text(v, *cidr)?),
            Column::MacAddr(b) => {
                if v.len() != 6 && v.len() != 8 {
                    return Err(ValueError::MacAddr(v.len()));
                }
                let parts: Vec<String> = v.iter().map(|x| format!("{x:02x}")).collect();
                b.append_value(parts.join(":"))
            }
            Column::Bit(b) => {
                let mut c = Cursor::new(v);
                let bits = c.i32()?;
                let bytes = c.take(c.remaining())?;
                if bits < 0 || bytes.len() != (bits as usize).div_ceil(8) {
                    return Err(ValueError::BitString {
                        bits,
                        bytes: bytes.len(),
                    });
                }
                let text: String = (0..bits as usize)
                    .map(|i| {
                        if bytes[i / 8] & (0x80 >> (i % 8)) != 0 {
                            '1'
                        } else {
                            '0'
                        }
                    })
                    .collect();
                b.append_value(text)
            }
            Column::Hstore(b) => {
                let mut c = Cursor::new(v);
                let count = c.i32()?;
                // Each pair takes at least 8 bytes: refuse counts the value cannot hold.
                if count < 0 || count as usize > c.remaining() / 8 {
                    return Err(ValueError::Count {
                        what: "hstore pairs",
                        count: count.into(),
                        bytes: v.len(),
                    });
                }
                for _ in 0..count {
                    let key = c.field()?.ok_or(ValueError::NullInside("hstore key"))?;
                    b.keys().append_value(utf8(key)?);
                    match c.field()? {
                        Some(value) => b.values().append_value(utf8(value)?),
                        None => b.values().append_null(),
                    }
                }
                c.end()?;
                // Keys and values were appended in pairs: the builder cannot refuse.
                b.append(true).expect("keys and values stay aligned");
            }
            Column::List {
                kind,
                offsets,
                nulls,
                child,
                ..
            } => {
                let added = match *kind {
                    ListKind::Vector => {
                        let mut c = Cursor::new(v);
                        let dim = c.u16()? as usize;
                        let _unused = c.u16()?;
                        if c.remaining() != dim * 4 {
                            return Err(ValueError::Count {
                                what: "a vector of dimension",
                                count: dim as i64,
                                bytes: v.len(),
                            });
                        }
                        for _ in 0..dim {
                            child.append(c.take(4)?)?;
                        }
                        dim
                    }
                    ListKind::Multirange => {
                        let mut c = Cursor::new(v);
                        let count = c.i32()?;
                        if count < 0 || count as usize > c.remaining() / 5 {
                            return Err(ValueError::Count {
                                what: "a multirange of ranges",
                                count: count.into(),
                                bytes: v.len(),
                            });
                        }
                        for _ in 0..count {
                            let range = c
                                .field()?
                                .ok_or(ValueError::NullInside("range in a multirange"))?;
                            child.append(range)?;
                        }
                        c.end()?;
                        count as usize
                    }
                    ListKind::Array { dims, bounds, .. } => {
                        let array = ArrayValue::parse(v)?;
                        if bounds == ArrayBoundsMode::Error
                            && let Some(&lower) = array.lower.iter().find(|&&l| l != 1)
                        {
                            return Err(ValueError::ArrayLowerBound { lower });
                        }
                        if array.dims.is_empty() {
                            0 // '{}' has no dimensions: an empty list at any depth.
                        } else if array.dims.len() != dims as usize {
                            return Err(ValueError::ArrayDims {
                                found: array.dims.len(),
                                declared: dims,
                            });
                        } else {
                            let mut elements = array.elements;
                            append_block(child, &array.dims[1..], array.dims[0], &mut elements)?;
                            elements.end()?;
                            array.dims[0]
                        }
                    }
                };
                let last = *offsets.last().expect("offsets start with 0");
                let next = i32::try_from(added)
                    .ok()
                    .and_then(|n| last.checked_add(n))
                    .ok_or(ValueError::ListTooLong)?;
                offsets.push(next);
                nulls.append_non_null();
            }
            Column::Struct {
                kind,
                nulls,
                children,
                ..
            } => {
                match kind {
                    StructKind::TimeTz => {
                        let mut c = Cursor::new(v);
                        children[0].append(c.take(8)?)?;
                        let west = c.i32()?;
                        let east = west.checked_neg().ok_or(ValueError::ZoneOffset(west))?;
                        children[1].append(&east.to_be_bytes())?;
                        c.end()?;
                    }
                    StructKind::Interval(mode) => {
                        let (micros, days, months) = interval_parts(v)?;
                        let (micros, days, months) =
                            match infinite_interval(micros, days, months, *mode) {
                                None => (micros, days, months),
                                Some(special) => match special? {
                                    Some(clamped) => clamped,
                                    None => {
                                        nulls.append_null();
                                        children.iter_mut().for_each(Column::append_null);
                                        return Ok(());
                                    }
                                },
                            };
                        children[0].append(&months.to_be_bytes())?;
                        children[1].append(&days.to_be_bytes())?;
                        children[2].append(&micros.to_be_bytes())?;
                    }
                    StructKind::Point => {
                        let v = fixed::<16>(v)?;
                        children[0].append(&v[0..8])?;
                        children[1].append(&v[8..16])?;
                    }
                    StructKind::Range => append_range(children, v)?,
                    StructKind::Composite => {
                        let mut c = Cursor::new(v);
                        let count = c.i32()?;
                        if count < 0 || count as usize != children.len() {
                            return Err(ValueError::CompositeFields {
                                found: count,
                                expected: children.len(),
                            });
                        }
                        for child in children.iter_mut() {
                            let _oid = c.take(4)?;
                            child.append_opt(c.field()?)?;
                        }
                        c.end()?;
                    }
                }
                nulls.append_non_null();
            }
        }
        Ok(())
    }

    /// Appends a block's values of this column (`None` for NULL). The commonest kinds
    /// are converted in a loop of their own; the others go through [`Column::append`].
    fn append_values<'a>(
        &mut self,
        values: impl Iterator<Item = Option<&'a [u8]>>,
        scratch: &mut Scratch,
    ) -> Result<(), ValueError> {
        match self {
            Column::Bool(b) => {
                for v in values {
                    match v {
                        Some(v) => b.append_value(fixed::<1>(v)?[0] != 0),
                        None => b.append_null(),
                    }
                }
                Ok(())
            }
            Column::Int16(b) => each(b, scratch, values, |v| {
                Ok(Some(i16::from_be_bytes(fixed(v)?)))
            }),
            Column::Int32(b) => each(b, scratch, values, |v| {
                Ok(Some(i32::from_be_bytes(fixed(v)?)))
            }),
            Column::Int64(b) => each(b, scratch, values, |v| {
                Ok(Some(i64::from_be_bytes(fixed(v)?)))
            }),
            Column::Float32(b) => each(b, scratch, values, |v| {
                Ok(Some(f32::from_be_bytes(fixed(v)?)))
            }),
            Column::Float64(b) => each(b, scratch, values, |v| {
                Ok(Some(f64::from_be_bytes(fixed(v)?)))
            }),
            Column::Decimal {
                builder,
                precision,
                scale,
                infinity,
            } => each(builder, scratch, values, |v| {
                decimal(v, *precision, *scale, *infinity)
            }),
            Column::Date(b, infinity) => each(b, scratch, values, |v| date(v, *infinity)),
            Column::Time(b, infinity) => each(b, scratch, values, |v| time(v, *infinity)),
            Column::Timestamp(b, infinity) => each(b, scratch, values, |v| timestamp(v, *infinity)),
            Column::Text(b) | Column::Bytes(b) => {
                for v in values {
                    match v {
                        Some(v) => b.append_value(v),
                        None => b.append_null(),
                    }
                }
                Ok(())
            }
            _ => {
                for v in values {
                    self.append_opt(v)?;
                }
                Ok(())
            }
        }
    }

    /// The values appended since the last call, as an array; the builder is left with
    /// room for as many values as it gave and a little more ([`headroom`]), so that the next
    /// batch does not regrow it. `Err` when a text value is not UTF-8.
    fn finish(&mut self) -> Result<ArrayRef, ValueError> {
        Ok(match self {
            Column::Bool(b) => {
                let array = b.finish();
                *b = BooleanBuilder::with_capacity(headroom(array.len()));
                Arc::new(array)
            }
            Column::Int16(b) => finish_primitive(b),
            Column::Int32(b) => finish_primitive(b),
            Column::Int64(b) => finish_primitive(b),
            Column::UInt32(b) => finish_primitive(b),
            Column::UInt64(b) => finish_primitive(b),
            Column::Float32(b) => finish_primitive(b),
            Column::Float64(b) | Column::NumericFloat(b) => finish_primitive(b),
            Column::Decimal { builder: b, .. } | Column::Money(b) => finish_primitive(b),
            Column::Text(b) => {
                let bytes = b.finish();
                *b = BinaryBuilder::with_capacity(
                    headroom(bytes.len()),
                    headroom(bytes.value_data().len()),
                );
                match StringArray::try_from_binary(bytes.clone()) {
                    Ok(text) => Arc::new(text),
                    Err(_) => {
                        let bad = bytes
                            .iter()
                            .flatten()
                            .find_map(|v| std::str::from_utf8(v).err());
                        return Err(bad.map_or(ValueError::Utf8Boundaries, ValueError::Utf8));
                    }
                }
            }
            Column::NumericText(b)
            | Column::VersionedText(b)
            | Column::Char(b)
            | Column::Jsonb(b)
            | Column::UuidText(b)
            | Column::Inet(b, _)
            | Column::MacAddr(b)
            | Column::Bit(b) => Arc::new(b.finish()),
            Column::Dictionary(b) => Arc::new(b.finish()),
            Column::Bytes(b) => {
                let array = b.finish();
                *b = BinaryBuilder::with_capacity(
                    headroom(array.len()),
                    headroom(array.value_data().len()),
                );
                Arc::new(array)
            }
            Column::Date(b, _) => finish_primitive(b),
            Column::Time(b, _) | Column::TimeTzUtc(b) => finish_primitive(b),
            Column::Timestamp(b, _) => finish_primitive(b),
            Column::Duration(b, _) => finish_primitive(b),
            Column::Uuid(b) => Arc::new(b.finish()),
            Column::Hstore(b) => Arc::new(b.finish()),
            Column::List {
                field,
                offsets,
                nulls,
                child,
                ..
            } => {
                let offsets = OffsetBuffer::new(std::mem::replace(offsets, vec![0]).into());
                Arc::new(ListArray::new(
                    field.clone(),
                    offsets,
                    child.finish()?,
                    nulls.finish(),
                ))
            }
            Column::Struct {
                fields,
                nulls,
                children,
                ..
            } => {
                let arrays = children
                    .iter_mut()
                    .map(Column::finish)
                    .collect::<Result<_, _>>()?;
                Arc::new(StructArray::new(fields.clone(), arrays, nulls.finish()))
            }
        })
    }
}

/// Room for [`BLOCK_ROWS`] values of a primitive type and their validity, kept from
/// block to block, so that [`each`] does not fill arrays of its own with zeros for every
/// column of every block (a `memset` call each time: 2% of an export's CPU).
struct Scratch {
    natives: MutableBuffer,
    valid: [bool; BLOCK_ROWS],
}

impl Default for Scratch {
    fn default() -> Scratch {
        Scratch {
            // Decimals' i128, the widest type decoded a block at a time.
            natives: MutableBuffer::from_len_zeroed(BLOCK_ROWS * size_of::<i128>()),
            valid: [true; BLOCK_ROWS],
        }
    }
}

/// Appends each value converted by `value` (`None` from it or from the block: NULL),
/// a block at a time: the builder's bookkeeping is paid per block, not per value.
fn each<'a, T: ArrowPrimitiveType>(
    b: &mut PrimitiveBuilder<T>,
    scratch: &mut Scratch,
    values: impl Iterator<Item = Option<&'a [u8]>>,
    value: impl Fn(&[u8]) -> Result<Option<T::Native>, ValueError>,
) -> Result<(), ValueError> {
    let bytes = BLOCK_ROWS * size_of::<T::Native>();
    if scratch.natives.len() < bytes {
        scratch.natives.resize(bytes, 0);
    }
    let natives = &mut scratch.natives.typed_data_mut::<T::Native>()[..BLOCK_ROWS];
    let valid = &mut scratch.valid;
    let mut all_valid = true;
    let mut n = 0;
    for v in values {
        let x = match v {
            Some(v) => value(v)?,
            None => None,
        };
        all_valid &= x.is_some();
        valid[n] = x.is_some();
        natives[n] = x.unwrap_or_default();
        n += 1;
        if n == BLOCK_ROWS {
            append_natives(b, natives, valid, all_valid);
            (n, all_valid) = (0, true);
        }
    }
    append_natives(b, &natives[..n], &valid[..n], all_valid);
    Ok(())
}

fn append_natives<T: ArrowPrimitiveType>(
    b: &mut PrimitiveBuilder<T>,
    natives: &[T::Native],
    valid: &[bool],
    all_valid: bool,
) {
    if all_valid {
        b.append_slice(natives);
    } else {
        b.append_values(natives, valid);
    }
}

/// A numeric value as a decimal(precision, scale): `None` for a NaN or infinity read as
/// NULL.
#[inline]
fn decimal(
    v: &[u8],
    precision: u8,
    scale: i8,
    infinity: InfinityMode,
) -> Result<Option<i128>, ValueError> {
    match small_decimal(v, scale) {
        Some(value) if value.unsigned_abs() < POW10[precision as usize] as u128 => Ok(Some(value)),
        _ => any_decimal(v, precision, scale, infinity),
    }
}

/// The common case of [`decimal`] without building a [`Numeric`] and without a division:
/// a finite value of at most 4 base-10000 digits (16 decimal digits) whose digits past
/// `scale` are zeros. `None` leaves the value, and any error, to [`any_decimal`].
#[inline]
fn small_decimal(v: &[u8], scale: i8) -> Option<i128> {
    let (header, digits) = v.split_first_chunk::<8>()?;
    let ndigits = u16::from_be_bytes([header[0], header[1]]) as usize;
    let weight = i16::from_be_bytes([header[2], header[3]]) as i64;
    let sign = u16::from_be_bytes([header[4], header[5]]);
    if ndigits > 4 || digits.len() != 2 * ndigits || !matches!(sign, NUMERIC_POS | NUMERIC_NEG) {
        return None;
    }
    let mut value = 0u64;
    for pair in digits.chunks_exact(2) {
        let digit = u16::from_be_bytes([pair[0], pair[1]]);
        if digit > 9999 {
            return None;
        }
        value = value * 10_000 + digit as u64;
    }
    // The last digit's power of ten in the scaled value.
    let exp10 = 4 * (weight - ndigits as i64 + 1) + scale as i64;
    let scaled = match exp10 {
        _ if value == 0 => 0,
        0..=19 => value.checked_mul(10u64.pow(exp10 as u32))?,
        // Dropping up to 4 fractional digits: constant divisors, which compile to
        // multiplications.
        -1 => exact_div::<10>(value)?,
        -2 => exact_div::<100>(value)?,
        -3 => exact_div::<1_000>(value)?,
        -4 => exact_div::<10_000>(value)?,
        _ => return None,
    };
    Some(if sign == NUMERIC_NEG {
        -(scaled as i128)
    } else {
        scaled as i128
    })
}

/// `value / D` if it divides exactly.
#[inline]
fn exact_div<const D: u64>(value: u64) -> Option<u64> {
    value.is_multiple_of(D).then_some(value / D)
}

/// [`decimal`] for any numeric value, with the error saying why one does not fit.
#[inline(never)]
fn any_decimal(
    v: &[u8],
    precision: u8,
    scale: i8,
    infinity: InfinityMode,
) -> Result<Option<i128>, ValueError> {
    let n = Numeric::parse(v)?;
    let limit = POW10[precision as usize];
    if let Some(special) = n.special() {
        return match (infinity, n.sign) {
            (InfinityMode::Error, _) => Err(ValueError::NumericSpecial { special }),
            (InfinityMode::Clamp, NUMERIC_PINF) => Ok(Some(limit - 1)),
            (InfinityMode::Clamp, NUMERIC_NINF) => Ok(Some(1 - limit)),
            _ => Ok(None),
        };
    }
    let value = n.to_i128(scale as u32)?;
    if value.unsigned_abs() >= limit as u128 {
        return Err(ValueError::DecimalRange {
            text: n.to_text(),
            precision,
            scale,
        });
    }
    Ok(Some(value))
}

/// A date as days since 1970-01-01: `None` for an infinity read as NULL.
fn date(v: &[u8], mode: InfinityMode) -> Result<Option<i32>, ValueError> {
    let days = i32::from_be_bytes(fixed(v)?);
    if let Some(special) = infinity(days, i32::MAX, i32::MIN, "date", mode) {
        return special;
    }
    days.checked_add(PG_EPOCH_DAYS)
        .map(Some)
        .ok_or(ValueError::OutOfRange("date"))
}

/// A timestamp as microseconds since 1970-01-01: `None` for an infinity read as NULL.
fn timestamp(v: &[u8], mode: InfinityMode) -> Result<Option<i64>, ValueError> {
    let micros = i64::from_be_bytes(fixed(v)?);
    if let Some(special) = infinity(micros, i64::MAX, i64::MIN, "timestamp", mode) {
        return special;
    }
    micros
        .checked_add(PG_EPOCH_MICROS)
        .map(Some)
        .ok_or(ValueError::OutOfRange("timestamp"))
}

/// A time of day in microseconds. PostgreSQL's `time` runs to 24:00:00 inclusive, one
/// past Arrow's Time64 (which ends at 23:59:59.999999): `mode` decides what becomes of
/// it, as of the other values Arrow cannot hold.
fn time(v: &[u8], mode: InfinityMode) -> Result<Option<i64>, ValueError> {
    let micros = i64::from_be_bytes(fixed(v)?);
    match micros {
        0..MICROS_PER_DAY => Ok(Some(micros)),
        MICROS_PER_DAY => match mode {
            InfinityMode::Error => Err(ValueError::EndOfDay),
            InfinityMode::Null => Ok(None),
            InfinityMode::Clamp => Ok(Some(MICROS_PER_DAY - 1)),
        },
        _ => Err(ValueError::OutOfRange("time")),
    }
}

/// An interval's send format: microseconds (8 bytes), days (4), months (4).
fn interval_parts(v: &[u8]) -> Result<(i64, i32, i32), ValueError> {
    let v = fixed::<16>(v)?;
    Ok((
        i64::from_be_bytes(v[0..8].try_into().expect("8 bytes")),
        i32::from_be_bytes(v[8..12].try_into().expect("4 bytes")),
        i32::from_be_bytes(v[12..16].try_into().expect("4 bytes")),
    ))
}

/// PostgreSQL 17's infinite intervals (every field at its largest, or smallest, value)
/// as `mode` reads them: clamped, each field is at its largest value or that negated,
/// like dates and timestamps; `None` for a finite interval.
#[allow(clippy::type_complexity)]
fn infinite_interval(
    micros: i64,
    days: i32,
    months: i32,
    mode: InfinityMode,
) -> Option<Result<Option<(i64, i32, i32)>, ValueError>> {
    let positive = match (micros, days, months) {
        (i64::MAX, i32::MAX, i32::MAX) => true,
        (i64::MIN, i32::MIN, i32::MIN) => false,
        _ => return None,
    };
    Some(match mode {
        InfinityMode::Error => Err(ValueError::Infinite {
            what: "interval",
            positive,
        }),
        InfinityMode::Null => Ok(None),
        InfinityMode::Clamp if positive => Ok(Some((i64::MAX, i32::MAX, i32::MAX))),
        InfinityMode::Clamp => Ok(Some((-i64::MAX, -i32::MAX, -i32::MAX))),
    })
}

/// PostgreSQL's `infinity` and `-infinity` (the type's largest and smallest value) as
/// `mode` reads them; `None` for a finite value.
fn infinity<T>(
    value: T,
    max: T,
    min: T,
    what: &'static str,
    mode: InfinityMode,
) -> Option<Result<Option<T>, ValueError>>
where
    T: Copy + PartialEq + std::ops::Neg<Output = T>,
{
    if value != max && value != min {
        return None;
    }
    let positive = value == max;
    Some(match mode {
        InfinityMode::Error => Err(ValueError::Infinite { what, positive }),
        InfinityMode::Null => Ok(None),
        InfinityMode::Clamp => Ok(Some(if positive { max } else { -max })),
    })
}

/// Room for a batch like one of `n` values (or bytes) and a little more. A batch is sent
/// once it has `batch_size` rows, checked after each received chunk, so batches differ
/// by a few rows, and text by more bytes: room for exactly the last batch's made the
/// next one outgrow its buffers about every other time, each time copying them whole
/// (1.5% of an export's CPU).
fn headroom(n: usize) -> usize {
    n + n / 8
}

/// Finishes a primitive builder, leaving it with room for as many values and a little
/// more ([`headroom`]), and the same data type (a time zone, a decimal's precision and
/// scale).
fn finish_primitive<T: ArrowPrimitiveType>(b: &mut PrimitiveBuilder<T>) -> ArrayRef {
    let array = b.finish();
    *b = PrimitiveBuilder::<T>::with_capacity(headroom(array.len()))
        .with_data_type(array.data_type().clone());
    Arc::new(array)
}

/// Appends `count` sub-arrays of shape `dims` (or, at the innermost level, `count`
/// elements) to `column`, taking elements in PostgreSQL's row-major order.
fn append_block(
    column: &mut Column,
    dims: &[usize],
    count: usize,
    elements: &mut Cursor,
) -> Result<(), ValueError> {
    let Some((&inner, rest)) = dims.split_first() else {
        for _ in 0..count {
            column.append_opt(elements.field()?)?;
        }
        return Ok(());
    };
    let Column::List {
        offsets,
        nulls,
        child,
        ..
    } = column
    else {
        unreachable!("an array column nests one List per dimension")
    };
    for _ in 0..count {
        append_block(child, rest, inner, elements)?;
        let last = *offsets.last().expect("offsets start with 0");
        let next = i32::try_from(inner)
            .ok()
            .and_then(|n| last.checked_add(n))
            .ok_or(ValueError::ListTooLong)?;
        offsets.push(next);
        nulls.append_non_null();
    }
    Ok(())
}

/// An array value's header: its dimensions, their lower bounds (a List has none: it
/// starts at its first element) and the cursor at its first element.
struct ArrayValue<'a> {
    dims: Vec<usize>,
    lower: Vec<i32>,
    elements: Cursor<'a>,
}

impl<'a> ArrayValue<'a> {
    fn parse(v: &'a [u8]) -> Result<ArrayValue<'a>, ValueError> {
        let mut c = Cursor::new(v);
        let ndim = c.i32()?;
        let _has_nulls = c.i32()?;
        let _element_oid = c.i32()?;
        if !(0..=MAX_ARRAY_DIMS as i32).contains(&ndim) {
            return Err(ValueError::ArrayDimensions(ndim));
        }
        let mut dims = Vec::with_capacity(ndim as usize);
        let mut lower = Vec::with_capacity(ndim as usize);
        let mut total: usize = 1;
        for _ in 0..ndim {
            let size = c.i32()?;
            lower.push(c.i32()?);
            if size < 0 {
                return Err(ValueError::ArraySize(size));
            }
            total = total.saturating_mul(size as usize);
            dims.push(size as usize);
        }
        // Every element takes at least its 4-byte length: refuse shapes the value cannot hold.
        if ndim > 0 && total > c.remaining() / 4 {
            return Err(ValueError::Count {
                what: "an array of elements",
                count: i64::try_from(total).unwrap_or(i64::MAX),
                bytes: c.remaining(),
            });
        }
        Ok(ArrayValue {
            dims,
            lower,
            elements: c,
        })
    }
}

const RANGE_EMPTY: u8 = 0x01;
const RANGE_LB_INC: u8 = 0x02;
const RANGE_UB_INC: u8 = 0x04;
const RANGE_LB_INF: u8 = 0x08;
const RANGE_UB_INF: u8 = 0x10;
const RANGE_LB_NULL: u8 = 0x20;
const RANGE_UB_NULL: u8 = 0x40;

/// A range: a flags byte, then the bounds it has, each length-prefixed. Children are
/// lower, upper, lower_inclusive, upper_inclusive, empty; an unbounded side is NULL.
fn append_range(children: &mut [Column], v: &[u8]) -> Result<(), ValueError> {
    let mut c = Cursor::new(v);
    let flags = c.u8()?;
    let empty = flags & RANGE_EMPTY != 0;
    let has_lower = !empty && flags & (RANGE_LB_INF | RANGE_LB_NULL) == 0;
    let has_upper = !empty && flags & (RANGE_UB_INF | RANGE_UB_NULL) == 0;
    let lower = if has_lower { c.field()? } else { None };
    let upper = if has_upper { c.field()? } else { None };
    c.end()?;
    children[0].append_opt(lower)?;
    children[1].append_opt(upper)?;
    children[2].append(&[(flags & RANGE_LB_INC != 0) as u8])?;
    children[3].append(&[(flags & RANGE_UB_INC != 0) as u8])?;
    children[4].append(&[empty as u8])
}

/// inet and cidr as PostgreSQL prints them: inet shows its mask only when it is not the
/// whole address; cidr always does. IPv6 follows PostgreSQL's (BIND's) formatting.
fn inet_text(v: &[u8], cidr: bool) -> Result<String, ValueError> {
    let mut c = Cursor::new(v);
    let family = c.u8()?;
    let bits = c.u8()?;
    let _is_cidr = c.u8()?;
    let len = c.u8()? as usize;
    let addr = c.take(len)?;
    c.end()?;
    let (text, max) = match (family, len) {
        (2, 4) => (
            format!("{}.{}.{}.{}", addr[0], addr[1], addr[2], addr[3]),
            32,
        ),
        (3, 16) => (ipv6_text(&fixed::<16>(addr)?), 128),
        _ => return Err(ValueError::AddressFamily { family, len }),
    };
    if bits > max {
        return Err(ValueError::Mask(bits));
    }
    Ok(if cidr || bits != max {
        format!("{text}/{bits}")
    } else {
        text
    })
}

fn ipv6_text(b: &[u8; 16]) -> String {
    let words: Vec<u16> = b
        .chunks(2)
        .map(|w| u16::from_be_bytes([w[0], w[1]]))
        .collect();
    // The longest run of zero words (the first of equals), if at least two long.
    let (mut best, mut cur): ((usize, usize), Option<(usize, usize)>) = ((0, 0), None);
    for (i, w) in words.iter().enumerate() {
        if *w == 0 {
            let run = cur.map_or((i, 1), |(s, n)| (s, n + 1));
            cur = Some(run);
            if run.1 > best.1 {
                best = run;
            }
        } else {
            cur = None;
        }
    }
    let (base, len) = if best.1 >= 2 { best } else { (usize::MAX, 0) };
    let mut out = String::new();
    let mut i = 0;
    while i < 8 {
        if base != usize::MAX && i >= base && i < base + len {
            if i == base {
                out.push(':');
            }
            i += 1;
            continue;
        }
        if i != 0 {
            out.push(':');
        }
        if i == 6 && base == 0 && (len == 6 || (len == 5 && words[5] == 0xffff)) {
            out.push_str(&format!("{}.{}.{}.{}", b[12], b[13], b[14], b[15]));
            return out;
        }
        out.push_str(&format!("{:x}", words[i]));
        i += 1;
    }
    if base != usize::MAX && base + len == 8 {
        out.push(':');
    }
    out
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
    fn parse(v: &'a [u8]) -> Result<Numeric<'a>, ValueError> {
        if v.len() < 8 {
            return Err(ValueError::NumericShort);
        }
        let ndigits = u16::from_be_bytes([v[0], v[1]]) as usize;
        let weight = i16::from_be_bytes([v[2], v[3]]);
        let sign = u16::from_be_bytes([v[4], v[5]]);
        let dscale = u16::from_be_bytes([v[6], v[7]]);
        let digits = &v[8..];
        if digits.len() != ndigits * 2 {
            return Err(ValueError::NumericDigitCount);
        }
        if digits
            .chunks(2)
            .any(|d| u16::from_be_bytes([d[0], d[1]]) > 9999)
        {
            return Err(ValueError::NumericDigit);
        }
        if !matches!(
            sign,
            NUMERIC_POS | NUMERIC_NEG | NUMERIC_NAN | NUMERIC_PINF | NUMERIC_NINF
        ) {
            return Err(ValueError::NumericSign(sign));
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
    fn to_i128(&self, scale: u32) -> Result<i128, ValueError> {
        if let Some(s) = self.special() {
            return Err(ValueError::NumericSpecial { special: s });
        }
        let overflow = || ValueError::DecimalOverflow {
            text: self.to_text(),
        };
        // The last digit's power of ten in the scaled value (it counts 10000^(weight -
        // ndigits + 1)).
        let exp10 = 4 * (self.weight as i64 - self.ndigits() as i64 + 1) + scale as i64;
        if self.ndigits() <= 4 && (-19..0).contains(&exp10) {
            // Up to 16 decimal digits with fractional digits to drop (the common
            // numeric(p,s) case): u64 arithmetic, since i128 division was a visible share
            // of decoding in the profile.
            let digits = (0..self.ndigits()).fold(0u64, |a, k| a * 10_000 + self.digit(k) as u64);
            let divisor = 10u64.pow((-exp10) as u32);
            if digits % divisor != 0 {
                return Err(ValueError::DecimalPlaces {
                    text: self.to_text(),
                    scale,
                });
            }
            let value = (digits / divisor) as i128;
            return Ok(if self.sign == NUMERIC_NEG {
                -value
            } else {
                value
            });
        }
        let mut acc: i128 = 0;
        for k in 0..self.ndigits() {
            let digit = self.digit(k) as i128;
            // Digit k counts units of 10000^(weight - k); times 10^scale.
            let exp10 = 4 * (self.weight as i64 - k as i64) + scale as i64;
            let part = if exp10 >= 0 {
                u32::try_from(exp10)
                    .ok()
                    .and_then(|e| 10i128.checked_pow(e))
                    .and_then(|f| digit.checked_mul(f))
                    .ok_or_else(overflow)?
            } else {
                let divisor = 10i128.pow((-exp10).min(4) as u32);
                if digit % divisor != 0 {
                    return Err(ValueError::DecimalPlaces {
                        text: self.to_text(),
                        scale,
                    });
                }
                digit / divisor
            };
            acc = acc.checked_add(part).ok_or_else(overflow)?;
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
                .to_string()
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
        // 38 significant digits whose last base-10000 group is padded with zeros.
        let b = numeric_bytes(
            6,
            NUMERIC_POS,
            10,
            &[9999, 9999, 9999, 9999, 9999, 9999, 9999, 9999, 9999, 9900],
        );
        let n = Numeric::parse(&b).unwrap();
        assert_eq!(n.to_text(), "9999999999999999999999999999.9999999999");
        assert_eq!(n.to_i128(10).unwrap(), 10i128.pow(38) - 1);
        assert!(
            n.to_i128(11)
                .unwrap_err()
                .to_string()
                .contains("does not fit")
        );
        // A digit above 9999 is malformed.
        assert!(Numeric::parse(&numeric_bytes(0, NUMERIC_POS, 0, &[10000])).is_err());
    }

    #[test]
    fn the_decimal_fast_path_agrees_with_the_general_one() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::SmallRng::seed_from_u64(5);
        let signs = [
            NUMERIC_POS,
            NUMERIC_NEG,
            NUMERIC_NAN,
            NUMERIC_PINF,
            NUMERIC_NINF,
        ];
        let mut fast = 0;
        for _ in 0..200_000 {
            let ndigits = rng.random_range(0..=6);
            let mut digits: Vec<u16> = (0..ndigits).map(|_| rng.random_range(0..10_000)).collect();
            match rng.random_range(0..10) {
                // Trailing zeros, as in prices: 12.50 is [12, 5000].
                0..=3 if ndigits > 0 => digits[ndigits - 1] = rng.random_range(0..100) * 100,
                4 if ndigits > 0 => digits[0] = 10_000, // malformed
                _ => {}
            }
            let sign = if rng.random_range(0..10) == 0 {
                signs[rng.random_range(0..signs.len())]
            } else {
                signs[rng.random_range(0..2)]
            };
            let v = numeric_bytes(rng.random_range(-6..6), sign, 2, &digits);
            let precision = rng.random_range(1..=38u8);
            let scale = rng.random_range(0..=precision.min(8)) as i8;
            let infinity = [InfinityMode::Error, InfinityMode::Null, InfinityMode::Clamp]
                [rng.random_range(0..3)];
            let general = any_decimal(&v, precision, scale, infinity);
            assert_eq!(
                decimal(&v, precision, scale, infinity),
                general,
                "{v:?} as numeric({precision},{scale})"
            );
            fast += small_decimal(&v, scale).is_some() as usize;
        }
        // The comparison means something only if both paths were taken often.
        assert!(
            (30_000..170_000).contains(&fast),
            "{fast} of 200000 took the fast path"
        );
    }

    /// Columns of every kind decoded a block at a time, and one (jsonb) decoded a value at
    /// a time, with NULLs in every position of a block.
    #[test]
    fn blocks_decode_every_row_whatever_the_chunks_and_batches() {
        use rand::{Rng, SeedableRng};
        let kinds: Vec<(String, PgKind)> = [
            PgKind::Int4,
            PgKind::Int8,
            PgKind::Bool,
            PgKind::Float8,
            PgKind::Text,
            PgKind::Decimal {
                precision: 15,
                scale: 2,
                infinity: InfinityMode::Error,
            },
            PgKind::Date(InfinityMode::Null),
            PgKind::TimestampTz(InfinityMode::Error),
            PgKind::Jsonb,
        ]
        .into_iter()
        .enumerate()
        .map(|(i, k)| (format!("c{i}"), k))
        .collect();
        let rows = 3 * BLOCK_ROWS + 77;
        let null = |r: usize, c: usize| (r * 7 + c * 3).is_multiple_of(13);
        let data: Vec<Vec<Option<Vec<u8>>>> = (0..rows)
            .map(|r| {
                let values = [
                    (r as i32 - 500).to_be_bytes().to_vec(),
                    (r as i64 * 1_000_000_007).to_be_bytes().to_vec(),
                    vec![(r % 2) as u8],
                    (r as f64 / 8.0).to_be_bytes().to_vec(),
                    format!("row {r} ü").into_bytes(),
                    numeric_bytes(0, NUMERIC_POS, 2, &[r as u16, 2500]),
                    // Every 10th date is infinity, read as NULL.
                    if r % 10 == 9 { i32::MAX } else { r as i32 }
                        .to_be_bytes()
                        .to_vec(),
                    (r as i64 * 1_000_000).to_be_bytes().to_vec(),
                    [&[1u8][..], format!("{{\"r\": {r}}}").as_bytes()].concat(),
                ];
                values
                    .into_iter()
                    .enumerate()
                    .map(|(c, v)| (!null(r, c)).then_some(v))
                    .collect()
            })
            .collect();
        let bytes = stream(&data);
        let mut rng = rand::rngs::SmallRng::seed_from_u64(3);
        for _ in 0..20 {
            let mut dec = CopyDecoder::new(&kinds);
            let mut batches = Vec::new();
            let mut at = 0;
            while at < bytes.len() {
                let end = (at + rng.random_range(1..4000)).min(bytes.len());
                dec.push(&bytes[at..end]).unwrap();
                at = end;
                if rng.random_range(0..4) == 0 {
                    batches.push(dec.take_batch().unwrap());
                }
            }
            dec.finish().unwrap();
            batches.push(dec.take_batch().unwrap());
            let batch = arrow::compute::concat_batches(dec.schema(), &batches).unwrap();
            assert_eq!(batch.num_rows(), rows);
            for r in 0..rows {
                let shown: Vec<String> = batch
                    .columns()
                    .iter()
                    .map(|c| arrow::util::display::array_value_to_string(c, r).unwrap())
                    .collect();
                let ts = arrow::util::display::array_value_to_string(
                    &arrow::array::TimestampMicrosecondArray::from(vec![
                        PG_EPOCH_MICROS + r as i64 * 1_000_000,
                    ])
                    .with_timezone("UTC"),
                    0,
                )
                .unwrap();
                let date = arrow::util::display::array_value_to_string(
                    &arrow::array::Date32Array::from(vec![PG_EPOCH_DAYS + r as i32]),
                    0,
                )
                .unwrap();
                let want = [
                    (r as i32 - 500).to_string(),
                    (r as i64 * 1_000_000_007).to_string(),
                    (r % 2 == 1).to_string(),
                    format!("{:?}", r as f64 / 8.0),
                    format!("row {r} ü"),
                    format!("{r}.25"),
                    if r % 10 == 9 { String::new() } else { date },
                    ts,
                    format!("{{\"r\": {r}}}"),
                ];
                for (c, (got, want)) in shown.iter().zip(&want).enumerate() {
                    let want = if null(r, c) { "" } else { want.as_str() };
                    assert_eq!(got, want, "row {r}, column {c}");
                    assert_eq!(
                        batch.column(c).is_null(r),
                        null(r, c) || (c == 6 && r % 10 == 9)
                    );
                }
            }
        }
    }

    #[test]
    fn wide_tuples_are_decoded_before_the_block_fills() {
        let kinds = vec![
            ("i".to_string(), PgKind::Int4),
            ("t".to_string(), PgKind::Text),
        ];
        let wide = |r: usize| format!("{r:>60000}");
        let rows: Vec<Vec<Option<Vec<u8>>>> = (0..20)
            .map(|r| {
                vec![
                    Some((r as i32).to_be_bytes().to_vec()),
                    Some(wide(r).into_bytes()),
                ]
            })
            .collect();
        let data = stream(&rows);
        let tuple = 2 + (4 + 4) + (4 + 60_000);
        // Four tuples (240 KB) wait in the block; the fifth passes 256 KiB and all five
        // are decoded.
        let mut dec = CopyDecoder::new(&kinds);
        dec.push(&data[..19 + 4 * tuple]).unwrap();
        assert_eq!(dec.fields.len(), 4 * 2);
        dec.push(&data[19 + 4 * tuple..19 + 5 * tuple]).unwrap();
        assert!(dec.block.is_empty() && dec.fields.is_empty());
        assert_eq!(dec.buffered_rows(), 5);
        let mut dec = CopyDecoder::new(&kinds);
        dec.push(&data).unwrap();
        dec.finish().unwrap();
        let batch = dec.take_batch().unwrap();
        let text = batch.column(1).as_string::<i32>();
        for r in 0..20 {
            assert_eq!(
                batch.column(0).as_primitive::<Int32Type>().value(r),
                r as i32
            );
            assert_eq!(text.value(r), wide(r));
        }
    }

    #[test]
    fn a_bad_value_fails_the_push_that_completes_its_block_or_the_batch() {
        let kinds = vec![("i".to_string(), PgKind::Int4)];
        let mut rows: Vec<Vec<Option<Vec<u8>>>> = (0..BLOCK_ROWS as i32)
            .map(|r| vec![Some(r.to_be_bytes().to_vec())])
            .collect();
        rows[5] = vec![Some(vec![1, 2])];
        let mut bytes = stream(&rows);
        bytes.truncate(bytes.len() - 2); // no trailer
        // The bad value is the sixth tuple's field: after the header and five tuples.
        let want = CopyError::Value {
            column: "i".into(),
            offset: Some(19 + 5 * (2 + 4 + 4) + 2),
            problem: ValueError::Size {
                expected: 4,
                got: 2,
            },
        };
        // One row short of a block: the push succeeds, taking the batch reports it.
        let last = bytes.len() - (2 + 4 + 4);
        let mut dec = CopyDecoder::new(&kinds);
        dec.push(&bytes[..last]).unwrap();
        assert_eq!(dec.take_batch().unwrap_err(), want);
        assert!(
            dec.push(&bytes[last..]).is_err(),
            "nothing more is accepted"
        );
        // The whole block: the push reports it.
        let mut dec = CopyDecoder::new(&kinds);
        assert_eq!(dec.push(&bytes).unwrap_err(), want);
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
                    infinity: InfinityMode::Error,
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
        check(&dec.take_batch().unwrap());
    }

    #[test]
    fn text_that_is_not_utf8_fails_its_batch() {
        let kinds = vec![("t".to_string(), PgKind::Text)];
        // Each value alone is invalid, though their concatenation is valid UTF-8: a
        // check of the whole buffer must also find values split inside a character.
        let cases: [&[&[u8]]; 3] = [
            &[b"fine", b"bad \xff byte"],
            &[b"a\xc3", b"\xa9b"],
            &[b"\xe2\x82", b"\xac"],
        ];
        for values in cases {
            let rows: Vec<Vec<Option<Vec<u8>>>> =
                values.iter().map(|v| vec![Some(v.to_vec())]).collect();
            let mut dec = CopyDecoder::new(&kinds);
            dec.push(&stream(&rows)).unwrap();
            let err = dec.take_batch().unwrap_err();
            assert!(
                matches!(&err, CopyError::Value { column, problem: ValueError::Utf8(_), .. } if column == "t"),
                "{values:?}: {err:?}"
            );
            assert!(dec.push(&[0, 1]).is_err(), "nothing more is accepted");
        }
        // Valid multibyte text comes back as sent, however the stream is cut into
        // batches (each batch's builders are sized by the one before).
        let words = ["Grüße", "€", "", "日本語", "a"];
        let rows: Vec<_> = (0..3)
            .flat_map(|_| words.iter())
            .map(|w| vec![Some(w.as_bytes().to_vec())])
            .collect();
        let data = stream(&rows);
        for size in [1, 7, 40, data.len()] {
            let mut dec = CopyDecoder::new(&kinds);
            let mut seen = Vec::new();
            for chunk in data.chunks(size) {
                dec.push(chunk).unwrap();
                let batch = dec.take_batch().unwrap();
                let text = batch.column(0).as_string::<i32>();
                seen.extend(text.iter().flatten().map(str::to_string));
            }
            dec.finish().unwrap();
            assert_eq!(seen, words.repeat(3), "chunks of {size}");
        }
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
            check(&dec.take_batch().unwrap());
        }
    }

    #[test]
    fn truncation_is_detected() {
        let data = sample();
        for cut in 0..data.len() - 1 {
            let mut dec = CopyDecoder::new(&kinds());
            let r = dec.push(&data[..cut]);
            assert!(
                r.is_err()
                    || matches!(
                        dec.finish(),
                        Err(CopyError::Malformed {
                            problem: Malformed::Truncated,
                            ..
                        })
                    ),
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
                column: "i".into(),
                offset: Some(19 + 2),
                problem: ValueError::Size {
                    expected: 4,
                    got: 2
                },
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

    /// One row of `COPY (SELECT ...) TO STDOUT (FORMAT binary)` captured from PostgreSQL 15:
    /// '1 year 2 mons -3 days 04:05:06.789'::interval, '12:34:56.789+02'::timetz,
    /// '2001:db8::1/64'::inet, '::ffff:1.2.3.4'::inet, '10.0.0.0/8'::cidr,
    /// '08:00:2b:01:02:03'::macaddr, '1010000011'::varbit, '(1.5,-2)'::point,
    /// 'a=>1, b=>NULL'::hstore, '{{1,2},{3,NULL}}'::int4[], '[1,5)'::int4range,
    /// '{[2024-01-01,2024-01-10), (,2000-01-01)}'::datemultirange, ROW(7, 'x')::pair2,
    /// 'NaN'::numeric, '-12.34'::money, 'a.b'::ltree, '{"k": 1}'::jsonb,
    /// 'infinity'::date, 'empty'::int4range
    const CAPTURED: &str = "5047434f50590aff0d0a000000000000000000001300000010000000036c97ca88fffffffd0000000e0000000c0000000a8be62608ffffe3e0000000140340001020010db8000000000000000000000001000000140380001000000000000000000000ffff0102030400000008020801040a0000000000000608002b010203000000060000000aa0c0000000103ff8000000000000c0000000000000000000001700000002000000016100000001310000000162ffffffff0000003800000002000000010000001700000002000000010000000200000001000000040000000100000004000000020000000400000003ffffffff0000001102000000040000000100000004000000050000002600000002000000090800000004000000000000001102000000040000223e000000040000224700000019000000020000001700000004000000070000001900000001780000000800000000c000000000000008fffffffffffffb2e0000000401612e6200000009017b226b223a20317d000000047fffffff0000000101ffff";

    fn captured_kinds(infinity: InfinityMode) -> Vec<(String, PgKind)> {
        let int4_range = PgKind::Range(Box::new(PgKind::Int4));
        [
            PgKind::Interval(IntervalMode::Struct, InfinityMode::Error),
            PgKind::TimeTz(TimeTzMode::Struct, InfinityMode::Error),
            PgKind::Inet { cidr: false },
            PgKind::Inet { cidr: false },
            PgKind::Inet { cidr: true },
            PgKind::MacAddr,
            PgKind::Bit,
            PgKind::Point,
            PgKind::Hstore,
            PgKind::Array {
                element: Box::new(PgKind::Int4),
                dims: 2,
                bounds: ArrayBoundsMode::Error,
            },
            int4_range.clone(),
            PgKind::Multirange(Box::new(PgKind::Range(Box::new(PgKind::Date(
                InfinityMode::Error,
            ))))),
            PgKind::Composite(vec![("n".into(), PgKind::Int4), ("s".into(), PgKind::Text)]),
            PgKind::NumericText,
            PgKind::Money,
            PgKind::VersionedText,
            PgKind::Jsonb,
            PgKind::Date(infinity),
            int4_range,
        ]
        .into_iter()
        .enumerate()
        .map(|(i, k)| (format!("c{i}"), k))
        .collect()
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn captured_values_decode_as_postgres_prints_them() {
        let mut dec = CopyDecoder::new(&captured_kinds(InfinityMode::Null));
        dec.push(&hex(CAPTURED)).unwrap();
        dec.finish().unwrap();
        let batch = dec.take_batch().unwrap();
        let shown: Vec<String> = batch
            .columns()
            .iter()
            .map(|c| arrow::util::display::array_value_to_string(c, 0).unwrap())
            .collect();
        assert_eq!(
            shown,
            [
                "{months: 14, days: -3, microseconds: 14706789000}",
                "{time: 12:34:56.789, utc_offset: 7200}",
                "2001:db8::1/64",
                "::ffff:1.2.3.4",
                "10.0.0.0/8",
                "08:00:2b:01:02:03",
                "1010000011",
                "{x: 1.5, y: -2.0}",
                "{a: 1, b: }",
                "[[1, 2], [3, ]]",
                "{lower: 1, upper: 5, lower_inclusive: true, upper_inclusive: false, empty: false}",
                // PostgreSQL sends a multirange's ranges in order.
                "[{lower: , upper: 2000-01-01, lower_inclusive: false, upper_inclusive: false, empty: false}, {lower: 2024-01-01, upper: 2024-01-10, lower_inclusive: true, upper_inclusive: false, empty: false}]",
                "{n: 7, s: x}",
                "NaN",
                "-12.34",
                "a.b",
                "{\"k\": 1}",
                "",
                "{lower: , upper: , lower_inclusive: false, upper_inclusive: false, empty: true}",
            ]
        );
        assert!(batch.column(17).is_null(0), "infinity read as NULL");
        // The default for infinity is an error naming what to choose.
        let err = CopyDecoder::new(&captured_kinds(InfinityMode::Error))
            .push(&hex(CAPTURED))
            .unwrap_err();
        assert!(
            matches!(&err, CopyError::Value { column, problem: ValueError::Infinite { what: "date", positive: true }, .. } if column == "c17")
                && err.to_string().contains("clamp"),
            "{err:?}"
        );
    }

    #[test]
    fn captured_bytes_cut_or_corrupted_never_panic() {
        use rand::{Rng, SeedableRng};
        let valid = hex(CAPTURED);
        let kinds = captured_kinds(InfinityMode::Clamp);
        for cut in 0..valid.len() {
            let mut dec = CopyDecoder::new(&kinds);
            let _ = dec.push(&valid[..cut]).and_then(|_| dec.finish());
        }
        let mut rng = rand::rngs::SmallRng::seed_from_u64(11);
        for _ in 0..5000 {
            let mut data = valid.clone();
            for _ in 0..rng.random_range(1..4) {
                let i = rng.random_range(19..data.len());
                data[i] = rng.random();
            }
            let mut dec = CopyDecoder::new(&kinds);
            let _ = dec.push(&data).and_then(|_| dec.finish());
            // Accepted or not, what the decoder holds makes a valid batch.
            let _ = dec.take_batch();
        }
    }

    #[test]
    fn vectors_and_uuids_as_text() {
        // pgvector's binary form: int16 dimensions, int16 unused, then float4s.
        let mut vector = Vec::new();
        vector.extend(3u16.to_be_bytes());
        vector.extend(0u16.to_be_bytes());
        for f in [1.5f32, -0.0, f32::MAX] {
            vector.extend(f.to_be_bytes());
        }
        let uuid: Vec<u8> = (0u8..16).collect();
        let kinds = vec![
            ("v".to_string(), PgKind::Vector),
            ("u".to_string(), PgKind::Uuid(UuidMode::String)),
        ];
        let mut dec = CopyDecoder::new(&kinds);
        dec.push(&stream(&[vec![Some(vector.clone()), Some(uuid)]]))
            .unwrap();
        let batch = dec.take_batch().unwrap();
        let shown = arrow::util::display::array_value_to_string(batch.column(0), 0).unwrap();
        assert_eq!(shown, "[1.5, -0.0, 3.4028235e38]");
        assert_eq!(
            batch.column(1).as_string::<i32>().value(0),
            "00010203-0405-0607-0809-0a0b0c0d0e0f"
        );
        // A dimension count the value cannot hold is an error.
        vector[1] = 4;
        let err = CopyDecoder::new(&kinds)
            .push(&stream(&[vec![Some(vector), None]]))
            .unwrap_err();
        assert!(
            matches!(&err, CopyError::Value { column, problem: ValueError::Count { count: 4, bytes: 16, .. }, .. } if column == "v"),
            "{err:?}"
        );
    }

    #[test]
    fn arrays_refuse_shapes_they_cannot_hold() {
        let kinds = vec![(
            "a".to_string(),
            PgKind::Array {
                element: Box::new(PgKind::Int4),
                dims: 1,
                bounds: ArrayBoundsMode::Error,
            },
        )];
        let array = |ndim: i32, dims: &[i32], elements: &[i32]| {
            let mut v = Vec::new();
            v.extend(ndim.to_be_bytes());
            v.extend(0i32.to_be_bytes());
            v.extend(23i32.to_be_bytes());
            for d in dims {
                v.extend(d.to_be_bytes());
                v.extend(1i32.to_be_bytes());
            }
            for e in elements {
                v.extend(4i32.to_be_bytes());
                v.extend(e.to_be_bytes());
            }
            v
        };
        let decode = |v: Vec<u8>| CopyDecoder::new(&kinds).push(&stream(&[vec![Some(v)]]));
        decode(array(1, &[2], &[1, 2])).unwrap();
        // Two dimensions in a one-dimensional column: the message says what to set.
        let err = decode(array(2, &[1, 2], &[1, 2])).unwrap_err();
        assert!(format!("{err}").contains("array_dims = 2"), "{err}");
        // A huge claimed size with no elements behind it allocates nothing and fails.
        assert!(decode(array(2, &[i32::MAX, i32::MAX], &[])).is_err());
        assert!(decode(array(1, &[-1], &[])).is_err());
        assert!(decode(array(7, &[1; 7], &[1])).is_err());
        // Elements left over after the shape.
        assert!(decode(array(1, &[1], &[1, 2])).is_err());
    }

    /// A tuple of `fields` (raw length words and bytes) after a valid header.
    fn raw_tuple(fields: &[(i32, &[u8])]) -> Vec<u8> {
        let mut v = stream(&[]);
        v.truncate(19);
        v.extend((fields.len() as i16).to_be_bytes());
        for (len, bytes) in fields {
            v.extend(len.to_be_bytes());
            v.extend(*bytes);
        }
        v
    }

    /// Regression: -2 was the walk's mark for variable-width columns, so a field length
    /// of -2 in a fixed-width column matched it and overflowed `at += width as usize`
    /// (a panic in debug builds, a mis-walked tuple in release).
    #[test]
    fn field_length_minus_two_is_a_protocol_error_not_a_panic() {
        let kinds = vec![
            ("a".to_string(), PgKind::Int8),
            ("b".to_string(), PgKind::Int4),
            ("t".to_string(), PgKind::Text),
        ];
        for (at, column) in [(0, "a"), (1, "b"), (2, "t")] {
            for bad in [-2, -3, -7, i32::MIN] {
                let mut fields: Vec<(i32, &[u8])> = vec![(8, &[0; 8]), (4, &[0; 4]), (1, b"x")];
                fields[at] = (bad, b"");
                let data = raw_tuple(&fields);
                // The length word's offset: header, field count, the fields before.
                let offset = 19 + 2 + [0, 12, 20][at];
                for size in [1, 3, data.len()] {
                    let mut dec = CopyDecoder::new(&kinds);
                    let err = data
                        .chunks(size)
                        .map(|chunk| dec.push(chunk))
                        .find_map(Result::err)
                        .expect("refused");
                    assert_eq!(
                        err,
                        CopyError::Malformed {
                            offset,
                            column: Some(column.into()),
                            problem: Malformed::NegativeLength(bad),
                        },
                        "{bad} in `{column}`, chunks of {size}"
                    );
                }
            }
        }
        let err = CopyDecoder::new(&kinds)
            .push(&raw_tuple(&[(-2, b""), (4, &[0; 4]), (-1, b"")]))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "malformed COPY stream at byte 21, column `a`: negative field length -2 (only -1, NULL, is allowed)"
        );
    }

    #[test]
    fn protocol_errors_say_where_they_are() {
        // A bad field count in the third tuple, pushed a byte at a time.
        let mut data = sample();
        data.truncate(data.len() - 2);
        let third = data.len();
        data.extend(2i16.to_be_bytes());
        let mut dec = CopyDecoder::new(&kinds());
        let err = data
            .chunks(1)
            .map(|chunk| dec.push(chunk))
            .find_map(Result::err)
            .unwrap();
        assert_eq!(
            err,
            CopyError::Malformed {
                offset: third as u64,
                column: None,
                problem: Malformed::FieldCount {
                    found: 2,
                    expected: 3
                },
            }
        );
        // Data after the trailer, and a stream cut short.
        let mut after = sample();
        let end = after.len() as u64;
        after.extend([0, 0]);
        let err = CopyDecoder::new(&kinds()).push(&after).unwrap_err();
        assert!(
            matches!(err, CopyError::Malformed { offset, problem: Malformed::AfterTrailer, .. } if offset == end),
            "{err:?}"
        );
        let cut = sample();
        let mut dec = CopyDecoder::new(&kinds());
        dec.push(&cut[..30]).unwrap();
        assert!(matches!(
            dec.finish(),
            Err(CopyError::Malformed {
                problem: Malformed::Truncated,
                ..
            })
        ));
    }

    #[test]
    fn header_flags_and_extension_are_checked() {
        let header = |flags: u32, ext: &[u8]| {
            let mut v = SIGNATURE.to_vec();
            v.extend(flags.to_be_bytes());
            v.extend((ext.len() as u32).to_be_bytes());
            v.extend(ext);
            v
        };
        let with_rows = |mut v: Vec<u8>| {
            v.extend(&sample()[19..]);
            v
        };
        let push = |v: &[u8]| CopyDecoder::new(&kinds()).push(v);
        // Bit 16: every tuple would carry an OID the columns do not have.
        assert_eq!(
            push(&header(1 << 16, b"")).unwrap_err(),
            CopyError::Malformed {
                offset: 11,
                column: None,
                problem: Malformed::Oids
            }
        );
        // Any other critical bit (16-31) is refused too.
        for bit in [17, 24, 31] {
            assert_eq!(
                push(&header(1 << bit, b"")).unwrap_err(),
                CopyError::Malformed {
                    offset: 11,
                    column: None,
                    problem: Malformed::CriticalFlags(1 << bit)
                }
            );
        }
        // Bits 0-15 are backwards-compatible: ignored. An extension is skipped.
        for v in [header(0xffff, b""), header(0, b"abcd"), header(3, &[0; 9])] {
            let mut dec = CopyDecoder::new(&kinds());
            dec.push(&with_rows(v)).unwrap();
            dec.finish().unwrap();
            check(&dec.take_batch().unwrap());
        }
        // An extension longer than 1 MiB is refused before it is waited for.
        let mut long = SIGNATURE.to_vec();
        long.extend(0u32.to_be_bytes());
        long.extend((MAX_HEADER_EXTENSION + 1).to_be_bytes());
        assert_eq!(
            push(&long).unwrap_err(),
            CopyError::Malformed {
                offset: 15,
                column: None,
                problem: Malformed::ExtensionTooLong(MAX_HEADER_EXTENSION + 1)
            }
        );
    }

    /// PostgreSQL 17's infinite intervals, in its binary form (only 15 runs here):
    /// every field at its largest value, or its smallest.
    #[test]
    fn infinite_intervals_follow_the_infinity_option() {
        let interval = |micros: i64, days: i32, months: i32| {
            let mut v = micros.to_be_bytes().to_vec();
            v.extend(days.to_be_bytes());
            v.extend(months.to_be_bytes());
            v
        };
        let rows = vec![
            vec![Some(interval(i64::MAX, i32::MAX, i32::MAX))],
            vec![Some(interval(i64::MIN, i32::MIN, i32::MIN))],
            vec![Some(interval(1, 2, 3))],
        ];
        let decode = |mode: IntervalMode, infinity: InfinityMode| {
            let kinds = vec![("i".to_string(), PgKind::Interval(mode, infinity))];
            let mut dec = CopyDecoder::new(&kinds);
            dec.push(&stream(&rows))?;
            dec.take_batch()
        };
        let shown = |batch: RecordBatch| -> Vec<String> {
            (0..3)
                .map(|r| arrow::util::display::array_value_to_string(batch.column(0), r).unwrap())
                .collect()
        };
        for mode in [IntervalMode::Struct, IntervalMode::Duration] {
            let err = decode(mode, InfinityMode::Error).unwrap_err();
            assert!(
                matches!(
                    &err,
                    CopyError::Value {
                        problem: ValueError::Infinite {
                            what: "interval",
                            positive: true
                        },
                        ..
                    }
                ),
                "{err:?}"
            );
            let nulls = decode(mode, InfinityMode::Null).unwrap();
            assert_eq!(nulls.column(0).null_count(), 2, "{mode:?}");
        }
        assert_eq!(
            shown(decode(IntervalMode::Struct, InfinityMode::Null).unwrap())[2],
            "{months: 3, days: 2, microseconds: 1}"
        );
        assert_eq!(
            shown(decode(IntervalMode::Struct, InfinityMode::Clamp).unwrap()),
            [
                "{months: 2147483647, days: 2147483647, microseconds: 9223372036854775807}",
                "{months: -2147483647, days: -2147483647, microseconds: -9223372036854775807}",
                "{months: 3, days: 2, microseconds: 1}",
            ]
        );
        let clamped = decode(IntervalMode::Duration, InfinityMode::Clamp).unwrap();
        let micros = clamped
            .column(0)
            .as_primitive::<arrow::datatypes::DurationMicrosecondType>();
        assert_eq!(
            micros.values().to_vec(),
            [i64::MAX, -i64::MAX, 1 + (3 * 30 + 2) * MICROS_PER_DAY]
        );
    }

    #[test]
    fn time_24_00_follows_the_infinity_option() {
        let day = MICROS_PER_DAY.to_be_bytes().to_vec();
        let noon = (MICROS_PER_DAY / 2).to_be_bytes().to_vec();
        let tz = |t: &[u8], west: i32| [t, &west.to_be_bytes()[..]].concat();
        let rows = vec![
            vec![Some(day.clone()), Some(tz(&day, -7200)), Some(tz(&day, 0))],
            vec![
                Some(noon.clone()),
                Some(tz(&noon, 0)),
                Some(tz(&noon, 3600)),
            ],
        ];
        let decode = |infinity: InfinityMode| {
            let kinds = vec![
                ("t".to_string(), PgKind::Time(infinity)),
                (
                    "s".to_string(),
                    PgKind::TimeTz(TimeTzMode::Struct, infinity),
                ),
                ("u".to_string(), PgKind::TimeTz(TimeTzMode::Utc, infinity)),
            ];
            let mut dec = CopyDecoder::new(&kinds);
            dec.push(&stream(&rows))?;
            dec.take_batch()
        };
        let err = decode(InfinityMode::Error).unwrap_err();
        assert_eq!(
            err,
            CopyError::Value {
                column: "t".into(),
                offset: Some(19 + 2),
                problem: ValueError::EndOfDay
            }
        );
        let shown = |batch: &RecordBatch, c: usize| -> Vec<String> {
            (0..2)
                .map(|r| arrow::util::display::array_value_to_string(batch.column(c), r).unwrap())
                .collect()
        };
        let clamped = decode(InfinityMode::Clamp).unwrap();
        assert_eq!(shown(&clamped, 0), ["23:59:59.999999", "12:00:00"]);
        assert_eq!(
            shown(&clamped, 1),
            [
                "{time: 23:59:59.999999, utc_offset: 7200}",
                "{time: 12:00:00, utc_offset: 0}"
            ]
        );
        // Moved to UTC, times wrap around midnight whatever the option: 24:00 UTC is
        // 00:00, as 12:00 one hour west is 13:00.
        assert_eq!(shown(&clamped, 2), ["00:00:00", "13:00:00"]);
        let nulls = decode(InfinityMode::Null).unwrap();
        assert_eq!(shown(&nulls, 0), ["", "12:00:00"]);
        assert_eq!(
            shown(&nulls, 1)[0],
            "{time: , utc_offset: 7200}",
            "the offset is kept"
        );
        // Past 24:00 is not a time at all. (Found by the stable fuzz driver: such a
        // timetz overflowed the move to UTC.)
        let late = (MICROS_PER_DAY + 1).to_be_bytes().to_vec();
        let huge = 0x7fff_ffff_4743_bc00i64.to_be_bytes();
        for (kind, value) in [
            (PgKind::Time(InfinityMode::Clamp), late.clone()),
            (
                PgKind::TimeTz(TimeTzMode::Utc, InfinityMode::Clamp),
                tz(&late, 0),
            ),
            (
                PgKind::TimeTz(TimeTzMode::Utc, InfinityMode::Clamp),
                tz(&huge, 18000),
            ),
            (
                PgKind::TimeTz(TimeTzMode::Struct, InfinityMode::Clamp),
                tz(&huge, 0),
            ),
        ] {
            let err = CopyDecoder::new(&[("t".to_string(), kind)])
                .push(&stream(&[vec![Some(value)]]))
                .unwrap_err();
            assert!(
                matches!(
                    err,
                    CopyError::Value {
                        problem: ValueError::OutOfRange("time"),
                        ..
                    }
                ),
                "{err:?}"
            );
        }
    }

    #[test]
    fn array_lower_bounds_are_an_error_unless_ignored() {
        let array = |lower: i32| {
            let mut v = Vec::new();
            for word in [1, 0, 23, 3, lower] {
                v.extend(word.to_be_bytes());
            }
            for e in [1i32, 2, 3] {
                v.extend(4i32.to_be_bytes());
                v.extend(e.to_be_bytes());
            }
            v
        };
        let decode = |bounds: ArrayBoundsMode, lower: i32| {
            let kinds = vec![(
                "a".to_string(),
                PgKind::Array {
                    element: Box::new(PgKind::Int4),
                    dims: 1,
                    bounds,
                },
            )];
            let mut dec = CopyDecoder::new(&kinds);
            dec.push(&stream(&[vec![Some(array(lower))]]))?;
            dec.take_batch()
        };
        let shown = |b: RecordBatch| arrow::util::display::array_value_to_string(b.column(0), 0);
        assert_eq!(
            shown(decode(ArrayBoundsMode::Error, 1).unwrap()).unwrap(),
            "[1, 2, 3]"
        );
        for lower in [0, -5, 2] {
            let err = decode(ArrayBoundsMode::Error, lower).unwrap_err();
            assert!(
                matches!(&err, CopyError::Value { column, problem: ValueError::ArrayLowerBound { lower: l }, .. } if column == "a" && *l == lower),
                "{err:?}"
            );
            assert!(err.to_string().contains("array_bounds"), "{err}");
            let kept = decode(ArrayBoundsMode::Ignore, lower).unwrap();
            assert_eq!(shown(kept).unwrap(), "[1, 2, 3]");
        }
    }

    #[test]
    fn ipv6_text_follows_postgres() {
        let v6 = |s: &str| ipv6_text(&s.parse::<std::net::Ipv6Addr>().unwrap().octets());
        assert_eq!(v6("::"), "::");
        assert_eq!(v6("::1"), "::1");
        assert_eq!(v6("::1.2.3.4"), "::1.2.3.4");
        assert_eq!(v6("::ffff:1.2.3.4"), "::ffff:1.2.3.4");
        assert_eq!(v6("fe80:0:0:1:0:0:0:1"), "fe80:0:0:1::1");
        assert_eq!(v6("1:0:1:0:1:0:1:0"), "1:0:1:0:1:0:1:0");
        assert_eq!(v6("2001:db8::"), "2001:db8::");
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
