//! The decoders of values that hold other values: arrays (one List level per
//! dimension) and ranges.

use super::ValueError;
use super::builders::Column;
use super::cursor::Cursor;
use crate::types::MAX_ARRAY_DIMS;

/// Appends `count` sub-arrays of shape `dims` (or, at the innermost level, `count`
/// elements) to `column`, taking elements in PostgreSQL's row-major order.
pub(super) fn append_block(
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
pub(super) struct ArrayValue<'a> {
    pub(super) dims: Vec<usize>,
    pub(super) lower: Vec<i32>,
    pub(super) elements: Cursor<'a>,
}

impl<'a> ArrayValue<'a> {
    pub(super) fn parse(v: &'a [u8]) -> Result<ArrayValue<'a>, ValueError> {
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
pub(super) fn append_range(children: &mut [Column], v: &[u8]) -> Result<(), ValueError> {
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
