//! The decoders of scalar types from their binary send format, one function per type:
//! numbers and booleans, dates and times (with PostgreSQL's epoch and infinities), uuids,
//! network addresses, bit strings, and the text-like types that carry a format version.
//! A decoder returns `Ok(None)` for a value its column reads as NULL (an infinity, by the
//! column's choice).

use super::ValueError;
use super::cursor::{Cursor, fixed, utf8};
use crate::types::InfinityMode;

/// Days from 1970-01-01 (Arrow's epoch) to 2000-01-01 (PostgreSQL's).
pub(super) const PG_EPOCH_DAYS: i32 = 10_957;

/// Microseconds from 1970-01-01 to 2000-01-01.
pub(super) const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
pub(super) const MICROS_PER_DAY: i64 = 86_400_000_000;

/// A number sent as its big-endian bytes: int2, int4, int8, oid, xid8, float4, float8.
#[inline]
pub(super) fn number<T: BigEndian>(v: &[u8]) -> Result<Option<T>, ValueError> {
    T::from_be(v).map(Some)
}

/// The types [`number`] reads: each from exactly its size in bytes.
pub(super) trait BigEndian: Sized {
    fn from_be(v: &[u8]) -> Result<Self, ValueError>;
}

macro_rules! big_endian {
    ($($t:ty),+) => {$(
        impl BigEndian for $t {
            #[inline]
            fn from_be(v: &[u8]) -> Result<$t, ValueError> {
                Ok(<$t>::from_be_bytes(fixed(v)?))
            }
        }
    )+};
}

big_endian!(i16, i32, i64, u32, u64, f32, f64);

/// bool: one byte, true unless 0.
#[inline]
pub(super) fn boolean(v: &[u8]) -> Result<bool, ValueError> {
    Ok(fixed::<1>(v)?[0] != 0)
}

/// "char": one byte, not necessarily UTF-8 on its own, as PostgreSQL prints it (a
/// non-ASCII byte as an octal escape).
pub(super) fn char_text(v: &[u8]) -> Result<String, ValueError> {
    let byte = fixed::<1>(v)?[0];
    Ok(if byte == 0 {
        String::new()
    } else if byte.is_ascii() {
        (byte as char).to_string()
    } else {
        format!("\\{byte:03o}")
    })
}

/// A text value after its one-byte format version (jsonb, ltree, jsonpath: version 1).
pub(super) fn versioned(v: &[u8]) -> Result<&str, ValueError> {
    match v.split_first() {
        Some((1, text)) => utf8(text),
        Some((n, _)) => Err(ValueError::FormatVersion(*n)),
        None => Err(ValueError::Empty),
    }
}

/// A date as days since 1970-01-01: `None` for an infinity read as NULL.
#[inline]
pub(super) fn date(v: &[u8], mode: InfinityMode) -> Result<Option<i32>, ValueError> {
    let days = i32::from_be_bytes(fixed(v)?);
    if let Some(special) = infinity(days, i32::MAX, i32::MIN, "date", mode) {
        return special;
    }
    days.checked_add(PG_EPOCH_DAYS)
        .map(Some)
        .ok_or(ValueError::OutOfRange("date"))
}

/// A timestamp as microseconds since 1970-01-01: `None` for an infinity read as NULL.
#[inline]
pub(super) fn timestamp(v: &[u8], mode: InfinityMode) -> Result<Option<i64>, ValueError> {
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
#[inline]
pub(super) fn time(v: &[u8], mode: InfinityMode) -> Result<Option<i64>, ValueError> {
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

/// timetz moved to UTC, as a time of day in microseconds; the offset is dropped.
pub(super) fn timetz_utc(v: &[u8]) -> Result<Option<i64>, ValueError> {
    let mut c = Cursor::new(v);
    let micros = i64::from_be_bytes(fixed(c.take(8)?)?);
    let west = c.i32()? as i64;
    c.end()?;
    // A time of day runs to 24:00:00; past it, `micros` would be no time at all, and
    // could overflow the sum below.
    if !(0..=MICROS_PER_DAY).contains(&micros) {
        return Err(ValueError::OutOfRange("time"));
    }
    // The zone is stored in seconds west of UTC: UTC = local + west. Moved to UTC, a time
    // wraps around midnight (24:00 UTC is 00:00).
    Ok(Some((micros + west * 1_000_000).rem_euclid(MICROS_PER_DAY)))
}

/// An interval as (microseconds, days, months): `None` for an infinity read as NULL.
pub(super) fn interval(
    v: &[u8],
    mode: InfinityMode,
) -> Result<Option<(i64, i32, i32)>, ValueError> {
    let (micros, days, months) = interval_parts(v)?;
    match infinite_interval(micros, days, months, mode) {
        Some(special) => special,
        None => Ok(Some((micros, days, months))),
    }
}

/// An interval as a duration in microseconds, a month counted as 30 days: `None` for an
/// infinity read as NULL. A clamped infinity is ±i64::MAX microseconds.
pub(super) fn duration(v: &[u8], mode: InfinityMode) -> Result<Option<i64>, ValueError> {
    let (micros, days, months) = interval_parts(v)?;
    if let Some(special) = infinite_interval(micros, days, months, mode) {
        return special.map(|clamped| clamped.map(|(micros, ..)| micros));
    }
    let (days, months) = (days as i64, months as i64);
    (months * 30 + days)
        .checked_mul(MICROS_PER_DAY)
        .and_then(|d| d.checked_add(micros))
        .map(Some)
        .ok_or(ValueError::DurationOverflow)
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
#[inline]
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

/// uuid: its 16 bytes.
pub(super) fn uuid(v: &[u8]) -> Result<uuid::Uuid, ValueError> {
    Ok(uuid::Uuid::from_bytes(fixed(v)?))
}

/// inet and cidr as PostgreSQL prints them: inet shows its mask only when it is not the
/// whole address; cidr always does. IPv6 follows PostgreSQL's (BIND's) formatting.
pub(super) fn inet_text(v: &[u8], cidr: bool) -> Result<String, ValueError> {
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

pub(super) fn ipv6_text(b: &[u8; 16]) -> String {
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

/// macaddr (6 bytes) and macaddr8 (8 bytes) as PostgreSQL prints them.
pub(super) fn macaddr_text(v: &[u8]) -> Result<String, ValueError> {
    if v.len() != 6 && v.len() != 8 {
        return Err(ValueError::MacAddr(v.len()));
    }
    let parts: Vec<String> = v.iter().map(|x| format!("{x:02x}")).collect();
    Ok(parts.join(":"))
}

/// bit and varbit: the bit count, then the bits, first in the high bit of the first byte;
/// as a string of 0 and 1.
pub(super) fn bit_text(v: &[u8]) -> Result<String, ValueError> {
    let mut c = Cursor::new(v);
    let bits = c.i32()?;
    let bytes = c.take(c.remaining())?;
    if bits < 0 || bytes.len() != (bits as usize).div_ceil(8) {
        return Err(ValueError::BitString {
            bits,
            bytes: bytes.len(),
        });
    }
    Ok((0..bits as usize)
        .map(|i| {
            if bytes[i / 8] & (0x80 >> (i % 8)) != 0 {
                '1'
            } else {
                '0'
            }
        })
        .collect())
}
