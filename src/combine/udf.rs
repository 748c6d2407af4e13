//! The final step's own functions: exact averages and variances from partial sums.
//!
//! DataFusion divides decimals by truncating, and its variance reads rows, not partial
//! sums; these compute in 256-bit integers and round once, half away from zero, as
//! PostgreSQL's numeric does.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Decimal128Builder, Float64Builder};
use arrow::datatypes::{DataType, Decimal128Type, Float64Type, Int64Type, i256};
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

pub fn avg_name(scale: i8) -> String {
    format!("tributary_avg_{scale}")
}

pub fn variance_name(sample: bool, root: bool) -> &'static str {
    match (sample, root) {
        (true, true) => "tributary_stddev_samp",
        (false, true) => "tributary_stddev_pop",
        (true, false) => "tributary_var_samp",
        (false, false) => "tributary_var_pop",
    }
}

/// Every function the final step may call, for the given average scales.
pub fn functions(avg_scales: &[i8]) -> Vec<ScalarUDF> {
    let mut out: Vec<ScalarUDF> = avg_scales
        .iter()
        .map(|&scale| ScalarUDF::new_from_impl(Avg::new(scale)))
        .collect();
    out.push(ScalarUDF::new_from_impl(Divide {
        signature: Signature::any(2, Volatility::Immutable),
    }));
    for (sample, root) in [(true, true), (false, true), (true, false), (false, false)] {
        out.push(ScalarUDF::new_from_impl(Variance::new(sample, root)));
    }
    out
}

/// A value as an integer with a scale: an Int64 or Decimal128 array's element.
fn scaled(array: &ArrayRef, i: usize) -> Option<(i256, i8)> {
    if array.is_null(i) {
        return None;
    }
    match array.data_type() {
        DataType::Int64 => Some((
            i256::from_i128(array.as_primitive::<Int64Type>().value(i) as i128),
            0,
        )),
        DataType::Int32 => Some((
            i256::from_i128(array.as_primitive::<arrow::datatypes::Int32Type>().value(i) as i128),
            0,
        )),
        DataType::Decimal128(_, s) => Some((
            i256::from_i128(array.as_primitive::<Decimal128Type>().value(i)),
            *s,
        )),
        _ => None,
    }
}

fn pow10(n: u32) -> i256 {
    i256::from_i128(10).wrapping_pow(n)
}

/// `n / d` rounded half away from zero.
fn div_round(n: i256, d: i256) -> i256 {
    let (q, r) = (n.wrapping_div(d), n.wrapping_rem(d));
    let twice = r.wrapping_mul(i256::from_i128(2)).wrapping_abs();
    if twice >= d.wrapping_abs() {
        if (n < i256::ZERO) != (d < i256::ZERO) {
            q.wrapping_sub(i256::ONE)
        } else {
            q.wrapping_add(i256::ONE)
        }
    } else {
        q
    }
}

/// `tributary_avg_S(sum, count)`: the average at scale S, NULL for a count of 0.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Avg {
    name: String,
    scale: i8,
    signature: Signature,
}

impl Avg {
    fn new(scale: i8) -> Avg {
        Avg {
            name: avg_name(scale),
            scale,
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for Avg {
    fn name(&self) -> &str {
        &self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Decimal128(38, self.scale))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let (sums, counts) = (&arrays[0], &arrays[1]);
        let mut out = Decimal128Builder::with_capacity(sums.len());
        for i in 0..sums.len() {
            let count = scaled(counts, i)
                .map(|(c, _)| c)
                .filter(|c| *c != i256::ZERO);
            match (scaled(sums, i), count) {
                (Some((sum, scale)), Some(count)) => {
                    let shift = self.scale as i32 - scale as i32;
                    let (n, d) = if shift >= 0 {
                        (sum.wrapping_mul(pow10(shift as u32)), count)
                    } else {
                        (sum, count.wrapping_mul(pow10((-shift) as u32)))
                    };
                    let value = div_round(n, d);
                    match value.to_i128() {
                        Some(v) => out.append_value(v),
                        None => {
                            return exec_err!(
                                "an average does not fit decimal(38, {})",
                                self.scale
                            );
                        }
                    }
                }
                (None, _) if !sums.is_null(i) => {
                    return exec_err!("{}: unexpected sum type {}", self.name, sums.data_type());
                }
                _ => out.append_null(),
            }
        }
        let array = out.finish().with_precision_and_scale(38, self.scale)?;
        Ok(ColumnarValue::Array(Arc::new(array)))
    }
}

/// `tributary_{var,stddev}_{samp,pop}(count, sum, sum_of_squares)`: exact for integer and
/// decimal sums (n * Σx² - (Σx)² in 256-bit integers), a float result.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Variance {
    name: &'static str,
    sample: bool,
    root: bool,
    signature: Signature,
}

impl Variance {
    fn new(sample: bool, root: bool) -> Variance {
        Variance {
            name: variance_name(sample, root),
            sample,
            root,
            signature: Signature::any(3, Volatility::Immutable),
        }
    }

    fn of(&self, n: i64, sums: &ArrayRef, squares: &ArrayRef, i: usize) -> Result<Option<f64>> {
        let denominator = if self.sample { n - 1 } else { n };
        if denominator <= 0 {
            return Ok(None);
        }
        let variance = match (scaled(sums, i), scaled(squares, i)) {
            (Some((s, s_scale)), Some((ss, ss_scale))) => {
                // Σx at scale k, Σx² at scale 2k: n·Σx² - (Σx)² at scale 2k.
                let align = 2 * s_scale as i32 - ss_scale as i32;
                let ss = if align >= 0 {
                    ss.wrapping_mul(pow10(align as u32))
                } else {
                    return exec_err!(
                        "{}: sum of squares at a finer scale than its sum",
                        self.name
                    );
                };
                let numerator = ss
                    .wrapping_mul(i256::from_i128(n as i128))
                    .wrapping_sub(s.wrapping_mul(s));
                let numerator = match numerator.to_i128() {
                    Some(v) => v as f64,
                    None => numerator.to_string().parse().unwrap_or(f64::NAN),
                } / 10f64.powi(2 * s_scale as i32);
                numerator / (n as f64 * denominator as f64)
            }
            _ => {
                let float = |a: &ArrayRef| -> Option<f64> {
                    (!a.is_null(i)).then(|| match a.data_type() {
                        DataType::Float64 => a.as_primitive::<Float64Type>().value(i),
                        _ => f64::NAN,
                    })
                };
                let (Some(s), Some(ss)) = (float(sums), float(squares)) else {
                    return Ok(None);
                };
                let n = n as f64;
                ((ss - s * s / n) / denominator as f64).max(0.0)
            }
        };
        let variance = variance.max(0.0);
        Ok(Some(if self.root { variance.sqrt() } else { variance }))
    }
}

impl ScalarUDFImpl for Variance {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let (counts, sums, squares) = (&arrays[0], &arrays[1], &arrays[2]);
        let mut out = Float64Builder::with_capacity(counts.len());
        for i in 0..counts.len() {
            let n = match scaled(counts, i) {
                Some((n, _)) => n.as_i128() as i64,
                None => {
                    out.append_null();
                    continue;
                }
            };
            out.append_option(self.of(n, sums, squares, i)?);
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

/// The name the final step gives `/` over aggregates.
pub const DIVIDE: &str = "tributary_divide";

/// `a / b` as PostgreSQL divides: integers truncate, a decimal operand gives a decimal
/// rounded half away from zero (at the dividend's scale + 4, at least 6), floats divide
/// as floats; dividing by zero is an error.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Divide {
    signature: Signature,
}

fn is_int(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64
    )
}

impl Divide {
    fn decimal_scale(a: &DataType) -> i8 {
        match a {
            DataType::Decimal128(_, s) => (*s + 4).clamp(6, 38),
            _ => 6,
        }
    }
}

impl ScalarUDFImpl for Divide {
    fn name(&self) -> &str {
        DIVIDE
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, t: &[DataType]) -> Result<DataType> {
        Ok(match (&t[0], &t[1]) {
            (a, b) if is_int(a) && is_int(b) => DataType::Int64,
            (a @ DataType::Decimal128(..), b) | (a, b @ DataType::Decimal128(..))
                if (is_int(a) || matches!(a, DataType::Decimal128(..)))
                    && (is_int(b) || matches!(b, DataType::Decimal128(..))) =>
            {
                DataType::Decimal128(38, Divide::decimal_scale(&t[0]))
            }
            _ => DataType::Float64,
        })
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let (a, b) = (&arrays[0], &arrays[1]);
        let out_type = self.return_type(&[a.data_type().clone(), b.data_type().clone()])?;
        let rows = a.len();
        let zero = || exec_err!("division by zero");
        match out_type {
            DataType::Int64 => {
                let (a, b) = (
                    arrow::compute::cast(a, &DataType::Int64)?,
                    arrow::compute::cast(b, &DataType::Int64)?,
                );
                let (a, b) = (a.as_primitive::<Int64Type>(), b.as_primitive::<Int64Type>());
                let mut out = arrow::array::Int64Builder::with_capacity(rows);
                for i in 0..rows {
                    if a.is_null(i) || b.is_null(i) {
                        out.append_null();
                    } else if b.value(i) == 0 {
                        return zero();
                    } else {
                        out.append_value(a.value(i).wrapping_div(b.value(i)));
                    }
                }
                Ok(ColumnarValue::Array(Arc::new(out.finish())))
            }
            DataType::Decimal128(_, scale) => {
                let mut out = Decimal128Builder::with_capacity(rows);
                for i in 0..rows {
                    let (Some((n, sn)), Some((d, sd))) = (scaled(a, i), scaled(b, i)) else {
                        out.append_null();
                        continue;
                    };
                    if d == i256::ZERO {
                        return zero();
                    }
                    // n/10^sn ÷ d/10^sd at `scale`: n·10^(scale+sd-sn) / d.
                    let shift = scale as i32 + sd as i32 - sn as i32;
                    let (n, d) = if shift >= 0 {
                        (n.wrapping_mul(pow10(shift as u32)), d)
                    } else {
                        (n, d.wrapping_mul(pow10((-shift) as u32)))
                    };
                    match div_round(n, d).to_i128() {
                        Some(v) => out.append_value(v),
                        None => return exec_err!("a quotient does not fit decimal(38, {scale})"),
                    }
                }
                let array = out.finish().with_precision_and_scale(38, scale)?;
                Ok(ColumnarValue::Array(Arc::new(array)))
            }
            _ => {
                let (a, b) = (
                    arrow::compute::cast(a, &DataType::Float64)?,
                    arrow::compute::cast(b, &DataType::Float64)?,
                );
                let (a, b) = (
                    a.as_primitive::<Float64Type>(),
                    b.as_primitive::<Float64Type>(),
                );
                let mut out = Float64Builder::with_capacity(rows);
                for i in 0..rows {
                    if a.is_null(i) || b.is_null(i) {
                        out.append_null();
                    } else if b.value(i) == 0.0 {
                        return zero();
                    } else {
                        out.append_value(a.value(i) / b.value(i));
                    }
                }
                Ok(ColumnarValue::Array(Arc::new(out.finish())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn division_rounds_half_away_from_zero() {
        let i = |v: i128| i256::from_i128(v);
        assert_eq!(div_round(i(5), i(2)), i(3));
        assert_eq!(div_round(i(-5), i(2)), i(-3));
        assert_eq!(div_round(i(4), i(3)), i(1));
        assert_eq!(div_round(i(-4), i(3)), i(-1));
        assert_eq!(div_round(i(7), i(-2)), i(-4));
    }
}
