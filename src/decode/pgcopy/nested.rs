//! The decoders of values that hold other values, appending them to their column's
//! children: lists (arrays, one List level per dimension; multiranges; pgvector's
//! vectors), structs (timetz, interval, point, ranges, composites) and hstore's maps.

use arrow::array::builder::NullBufferBuilder;
use arrow::array::{MapBuilder, StringBuilder};

use super::ValueError;
use super::builders::{Column, ListKind, StructKind};
use super::cursor::{Cursor, fixed, utf8};
use super::scalar::interval;
use crate::types::{ArrayBoundsMode, MAX_ARRAY_DIMS};

/// Appends a List column's value: its elements to `child`, then where the list ends.
pub(super) fn append_list(
    kind: ListKind,
    offsets: &mut Vec<i32>,
    nulls: &mut NullBufferBuilder,
    child: &mut Column,
    v: &[u8],
) -> Result<(), ValueError> {
    let len = match kind {
        ListKind::Vector => vector(child, v)?,
        ListKind::Multirange => multirange(child, v)?,
        ListKind::Array { dims, bounds, .. } => array(child, dims, bounds, v)?,
    };
    end_list(offsets, nulls, len)
}

/// Ends a list whose `len` elements (or sub-lists) were just appended to its child.
fn end_list(
    offsets: &mut Vec<i32>,
    nulls: &mut NullBufferBuilder,
    len: usize,
) -> Result<(), ValueError> {
    let last = *offsets.last().expect("offsets start with 0");
    let next = i32::try_from(len)
        .ok()
        .and_then(|n| last.checked_add(n))
        .ok_or(ValueError::ListTooLong)?;
    offsets.push(next);
    nulls.append_non_null();
    Ok(())
}

/// pgvector's `vector`: an int16 dimension count, an int16 left unused, then the float4s.
/// Returns the list's length.
fn vector(child: &mut Column, v: &[u8]) -> Result<usize, ValueError> {
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
    Ok(dim)
}

/// A multirange: a count, then each range length-prefixed. Returns the list's length.
fn multirange(child: &mut Column, v: &[u8]) -> Result<usize, ValueError> {
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
    Ok(count as usize)
}

/// An array of `dims` dimensions, the outermost appended to `child`'s lists; returns the
/// outermost length.
fn array(
    child: &mut Column,
    dims: u8,
    bounds: ArrayBoundsMode,
    v: &[u8],
) -> Result<usize, ValueError> {
    let array = ArrayValue::parse(v)?;
    if bounds == ArrayBoundsMode::Error
        && let Some(&lower) = array.lower.iter().find(|&&l| l != 1)
    {
        return Err(ValueError::ArrayLowerBound { lower });
    }
    if array.dims.is_empty() {
        return Ok(0); // '{}' has no dimensions: an empty list at any depth.
    }
    if array.dims.len() != dims as usize {
        return Err(ValueError::ArrayDims {
            found: array.dims.len(),
            declared: dims,
        });
    }
    let mut elements = array.elements;
    append_block(child, &array.dims[1..], array.dims[0], &mut elements)?;
    elements.end()?;
    Ok(array.dims[0])
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
        end_list(offsets, nulls, inner)?;
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

/// Appends a Struct column's value to its children.
pub(super) fn append_struct(
    kind: StructKind,
    nulls: &mut NullBufferBuilder,
    children: &mut [Column],
    v: &[u8],
) -> Result<(), ValueError> {
    match kind {
        StructKind::TimeTz => timetz(children, v)?,
        StructKind::Interval(mode) => match interval(v, mode)? {
            Some((micros, days, months)) => {
                children[0].append(&months.to_be_bytes())?;
                children[1].append(&days.to_be_bytes())?;
                children[2].append(&micros.to_be_bytes())?;
            }
            None => {
                nulls.append_null();
                children.iter_mut().for_each(Column::append_null);
                return Ok(());
            }
        },
        StructKind::Point => {
            let v = fixed::<16>(v)?;
            children[0].append(&v[0..8])?;
            children[1].append(&v[8..16])?;
        }
        StructKind::Range => range(children, v)?,
        StructKind::Composite => composite(children, v)?,
    }
    nulls.append_non_null();
    Ok(())
}

/// timetz: the time as written (8 bytes), then the zone in seconds west of UTC. Children
/// are the time and the offset in seconds east, as PostgreSQL prints it.
fn timetz(children: &mut [Column], v: &[u8]) -> Result<(), ValueError> {
    let mut c = Cursor::new(v);
    children[0].append(c.take(8)?)?;
    let west = c.i32()?;
    let east = west.checked_neg().ok_or(ValueError::ZoneOffset(west))?;
    children[1].append(&east.to_be_bytes())?;
    c.end()
}

/// A composite: a field count, then each field's type OID and length-prefixed value.
fn composite(children: &mut [Column], v: &[u8]) -> Result<(), ValueError> {
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
    c.end()
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
fn range(children: &mut [Column], v: &[u8]) -> Result<(), ValueError> {
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

/// hstore: a pair count, then each key (never NULL) and value, length-prefixed text.
pub(super) fn append_hstore(
    b: &mut MapBuilder<StringBuilder, StringBuilder>,
    v: &[u8],
) -> Result<(), ValueError> {
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
    Ok(())
}
