//! numeric from its binary form: as a Decimal128 of the column's precision and scale
//! (with the one fast path for the common small values), as its exact text, or as a
//! float64; and money, a decimal of fixed scale. [`Numeric`] is the general reader every
//! path but the fast one goes through.

use super::ValueError;
use super::scalar::number;
use crate::types::InfinityMode;

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

/// A numeric value as a decimal(precision, scale): `None` for a NaN or infinity read as
/// NULL.
#[inline]
pub(super) fn decimal(
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
pub(super) fn small_decimal(v: &[u8], scale: i8) -> Option<i128> {
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
pub(super) fn any_decimal(
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

/// A numeric value as its exact decimal text (NaN and ±Infinity as PostgreSQL prints them).
pub(super) fn numeric_text(v: &[u8]) -> Result<String, ValueError> {
    Ok(Numeric::parse(v)?.to_text())
}

/// A numeric value rounded to the nearest float64 (NaN and ±Infinity kept).
pub(super) fn numeric_float(v: &[u8]) -> Result<Option<f64>, ValueError> {
    let text = numeric_text(v)?;
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
    Ok(Some(f))
}

/// money: int8 minor units, the value of a decimal of scale `MONEY_SCALE`.
#[inline]
pub(super) fn money(v: &[u8]) -> Result<Option<i128>, ValueError> {
    Ok(number::<i64>(v)?.map(i128::from))
}

/// PostgreSQL's binary numeric: base-10000 digits with a weight (the exponent of the
/// first digit), a sign word and a display scale.
#[derive(Debug)]
pub(super) struct Numeric<'a> {
    digits: &'a [u8],
    weight: i16,
    sign: u16,
    dscale: u16,
}

pub(super) const NUMERIC_POS: u16 = 0x0000;
pub(super) const NUMERIC_NEG: u16 = 0x4000;
pub(super) const NUMERIC_NAN: u16 = 0xC000;
pub(super) const NUMERIC_PINF: u16 = 0xD000;
pub(super) const NUMERIC_NINF: u16 = 0xF000;

impl<'a> Numeric<'a> {
    pub(super) fn parse(v: &'a [u8]) -> Result<Numeric<'a>, ValueError> {
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

    /// The value times 10^scale, exactly, a digit at a time. Decimal columns call it only
    /// for what [`small_decimal`], the one fast path, leaves: wide values and errors.
    pub(super) fn to_i128(&self, scale: u32) -> Result<i128, ValueError> {
        if let Some(s) = self.special() {
            return Err(ValueError::NumericSpecial { special: s });
        }
        let overflow = || ValueError::DecimalOverflow {
            text: self.to_text(),
        };
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
    pub(super) fn to_text(&self) -> String {
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
