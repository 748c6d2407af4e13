//! One Arrow builder per column, by kind ([`Column`]): how a column is built for its
//! [`PgKind`], the length its values always have, how one value or a block of values is
//! appended, and how the builders become arrays for a batch, sized for the next one.

use std::sync::Arc;

use arrow::array::builder::NullBufferBuilder;
use arrow::array::{
    Array, ArrayRef, ArrowPrimitiveType, BinaryBuilder, BooleanBuilder, Date32Builder,
    Decimal128Builder, DurationMicrosecondBuilder, FixedSizeBinaryBuilder, Float32Builder,
    Float64Builder, Int16Builder, Int32Builder, Int64Builder, ListArray, MapBuilder, MapFieldNames,
    PrimitiveBuilder, StringArray, StringBuilder, StringDictionaryBuilder, StructArray,
    Time64MicrosecondBuilder, TimestampMicrosecondBuilder, UInt32Builder, UInt64Builder,
};
use arrow::buffer::{MutableBuffer, OffsetBuffer};
use arrow::datatypes::{FieldRef, Fields, Int32Type};

use super::ValueError;
use super::block::{BLOCK_ROWS, Width};
use super::cursor::utf8;
use super::nested::{append_hstore, append_list, append_struct};
use super::numeric::{decimal, money, numeric_float, numeric_text};
use super::scalar::{
    bit_text, boolean, char_text, date, duration, inet_text, macaddr_text, number, time, timestamp,
    timetz_utc, uuid, versioned,
};
use crate::types::{
    ArrayBoundsMode, InfinityMode, IntervalMode, MONEY_SCALE, PgKind, TimeTzMode, UuidMode,
};

/// Which PostgreSQL value a List column holds per row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ListKind {
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
pub(super) enum StructKind {
    TimeTz,
    Interval(InfinityMode),
    Point,
    Range,
    Composite,
}

/// One column's builder, by kind. Nested kinds hold their children's columns. After an
/// error a column may hold part of a value: the decoder is then dropped with its task.
pub(super) enum Column {
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

fn hstore_builder() -> MapBuilder<StringBuilder, StringBuilder> {
    let names = MapFieldNames {
        entry: "entries".into(),
        key: "keys".into(),
        value: "values".into(),
    };
    MapBuilder::new(Some(names), StringBuilder::new(), StringBuilder::new())
}

impl Column {
    pub(super) fn new(kind: &PgKind) -> Column {
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
    pub(super) fn width(&self) -> Width {
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

    pub(super) fn append_null(&mut self) {
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

    pub(super) fn append_opt(&mut self, v: Option<&[u8]>) -> Result<(), ValueError> {
        match v {
            Some(v) => self.append(v),
            None => {
                self.append_null();
                Ok(())
            }
        }
    }

    /// Appends one value in its type's binary send format, decoded by its type's
    /// decoder, as [`Column::append_values`] does a block at a time.
    pub(super) fn append(&mut self, v: &[u8]) -> Result<(), ValueError> {
        match self {
            Column::Bool(b) => b.append_value(boolean(v)?),
            Column::Int16(b) => b.append_option(number(v)?),
            Column::Int32(b) => b.append_option(number(v)?),
            Column::Int64(b) => b.append_option(number(v)?),
            Column::UInt32(b) => b.append_option(number(v)?),
            Column::UInt64(b) => b.append_option(number(v)?),
            Column::Float32(b) => b.append_option(number(v)?),
            Column::Float64(b) => b.append_option(number(v)?),
            Column::Decimal {
                builder,
                precision,
                scale,
                infinity,
            } => builder.append_option(decimal(v, *precision, *scale, *infinity)?),
            Column::NumericText(b) => b.append_value(numeric_text(v)?),
            Column::NumericFloat(b) => b.append_option(numeric_float(v)?),
            Column::Money(b) => b.append_option(money(v)?),
            Column::Text(b) | Column::Bytes(b) => b.append_value(v),
            Column::Jsonb(b) | Column::VersionedText(b) => b.append_value(versioned(v)?),
            Column::Char(b) => b.append_value(char_text(v)?),
            Column::Dictionary(b) => {
                // The only error is running out of Int32 keys.
                b.append(utf8(v)?).map_err(|_| ValueError::DictionaryFull)?;
            }
            Column::Date(b, infinity) => b.append_option(date(v, *infinity)?),
            Column::Time(b, infinity) => b.append_option(time(v, *infinity)?),
            Column::TimeTzUtc(b) => b.append_option(timetz_utc(v)?),
            Column::Timestamp(b, infinity) => b.append_option(timestamp(v, *infinity)?),
            Column::Duration(b, infinity) => b.append_option(duration(v, *infinity)?),
            Column::Uuid(b) => {
                let bytes = *uuid(v)?.as_bytes();
                // The builder's only error is a value of another size than its 16.
                b.append_value(bytes).map_err(|_| ValueError::Size {
                    expected: 16,
                    got: bytes.len(),
                })?
            }
            Column::UuidText(b) => b.append_value(
                uuid(v)?
                    .hyphenated()
                    .encode_lower(&mut uuid::Uuid::encode_buffer()),
            ),
            Column::Inet(b, cidr) => b.append_value(inet_text(v, *cidr)?),
            Column::MacAddr(b) => b.append_value(macaddr_text(v)?),
            Column::Bit(b) => b.append_value(bit_text(v)?),
            Column::Hstore(b) => append_hstore(b, v)?,
            Column::List {
                kind,
                offsets,
                nulls,
                child,
                ..
            } => append_list(*kind, offsets, nulls, child, v)?,
            Column::Struct {
                kind,
                nulls,
                children,
                ..
            } => append_struct(*kind, nulls, children, v)?,
        }
        Ok(())
    }

    /// Appends a block's values of this column (`None` for NULL). Primitive columns are
    /// filled a block at a time ([`each`]), and text and bytes in a loop of their own;
    /// the others go through [`Column::append`]. Each type's decoder is the one
    /// [`Column::append`] calls.
    ///
    /// Inlined into the block decoder, as it was when both lived in one module: called
    /// out of line, the decode benchmark ran 2-3% slower.
    #[inline]
    pub(super) fn append_values<'a>(
        &mut self,
        values: impl Iterator<Item = Option<&'a [u8]>>,
        scratch: &mut Scratch,
    ) -> Result<(), ValueError> {
        match self {
            Column::Bool(b) => {
                for v in values {
                    match v {
                        Some(v) => b.append_value(boolean(v)?),
                        None => b.append_null(),
                    }
                }
                Ok(())
            }
            Column::Int16(b) => each(b, scratch, values, number),
            Column::Int32(b) => each(b, scratch, values, number),
            Column::Int64(b) => each(b, scratch, values, number),
            Column::UInt32(b) => each(b, scratch, values, number),
            Column::UInt64(b) => each(b, scratch, values, number),
            Column::Float32(b) => each(b, scratch, values, number),
            Column::Float64(b) => each(b, scratch, values, number),
            Column::Decimal {
                builder,
                precision,
                scale,
                infinity,
            } => each(builder, scratch, values, |v| {
                decimal(v, *precision, *scale, *infinity)
            }),
            Column::NumericFloat(b) => each(b, scratch, values, numeric_float),
            Column::Money(b) => each(b, scratch, values, money),
            Column::Date(b, infinity) => each(b, scratch, values, |v| date(v, *infinity)),
            Column::Time(b, infinity) => each(b, scratch, values, |v| time(v, *infinity)),
            Column::TimeTzUtc(b) => each(b, scratch, values, timetz_utc),
            Column::Timestamp(b, infinity) => each(b, scratch, values, |v| timestamp(v, *infinity)),
            Column::Duration(b, infinity) => each(b, scratch, values, |v| duration(v, *infinity)),
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
    pub(super) fn finish(&mut self) -> Result<ArrayRef, ValueError> {
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
pub(super) struct Scratch {
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

fn decimal_builder(precision: u8, scale: i8) -> Decimal128Builder {
    Decimal128Builder::new()
        .with_precision_and_scale(precision, scale)
        .expect("precision and scale were validated by the type table")
}
