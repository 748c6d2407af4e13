//! Comparing a run's Parquet output with the oracle's answer to the same query, value for
//! value, by the type the Parquet column has:
//!
//! - integers, text, booleans: exactly (an integer must equal the oracle's number, which
//!   must be integral);
//! - `Decimal(p, s)`: the oracle's exact decimal text, rounded half away from zero to
//!   scale `s`, must equal the stored value exactly. When the oracle printed fewer than
//!   `s` digits (PostgreSQL's division keeps only about 16 significant digits, so
//!   `avg(big)` may print a handful), both are roundings of one true value and may differ
//!   by at most half a unit of each: |p - o| <= (10^-os + 10^-s) / 2;
//! - floats: within 1e-9 relative, or 1e-12 absolute near zero; NaN equals NaN;
//! - dates as days, timestamps as instants (the oracle's text carries its offset; a
//!   timestamp without a zone is compared as wall-clock time).
//!
//! Rows are compared in order when the query's order is total; otherwise as multisets:
//! rows are bucketed by their exact columns and matched one to one within a bucket on
//! the inexact ones (decimals, floats).

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::path::Path;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Float64Type, Int64Type, TimeUnit,
    TimestampMicrosecondType,
};
use chrono::{NaiveDate, NaiveDateTime};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use tokio_postgres::{Client, SimpleQueryMessage};

/// One value read back from the Parquet file.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Int(i128),
    /// Unscaled value and scale.
    Dec(i128, i8),
    Float(f64),
    Text(String),
    Bool(bool),
    /// Days since 1970-01-01.
    Date(i32),
    /// Microseconds since 1970-01-01 (UTC for a zoned timestamp).
    Micros(i64),
    /// An oracle value that cannot be read as the column's type.
    Bad(String),
}

impl fmt::Display for Cell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cell::Null => write!(f, "NULL"),
            Cell::Int(v) => write!(f, "{v}"),
            Cell::Dec(v, s) => write!(f, "{}", format_decimal(*v, *s)),
            Cell::Float(v) => write!(f, "{v:?}"),
            Cell::Text(v) => write!(f, "{v:?}"),
            Cell::Bool(v) => write!(f, "{v}"),
            Cell::Date(d) => write!(f, "{}", epoch_day(*d)),
            Cell::Micros(us) => match chrono::DateTime::from_timestamp_micros(*us) {
                Some(t) => write!(f, "{}", t.format("%Y-%m-%d %H:%M:%S%.6fZ")),
                None => write!(f, "{us}us"),
            },
            Cell::Bad(v) => write!(f, "<unreadable {v}>"),
        }
    }
}

fn format_decimal(v: i128, scale: i8) -> String {
    if scale <= 0 {
        return format!("{v}{}", "0".repeat(-scale as usize));
    }
    let digits = v.unsigned_abs().to_string();
    let scale = scale as usize;
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (int, frac) = padded.split_at(padded.len() - scale);
    format!("{}{int}.{frac}", if v < 0 { "-" } else { "" })
}

fn epoch_day(d: i32) -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).unwrap() + chrono::TimeDelta::days(d as i64)
}

/// What the run wrote: column names, Arrow types and rows.
pub struct Got {
    pub names: Vec<String>,
    pub types: Vec<DataType>,
    pub rows: Vec<Vec<Cell>>,
}

/// What the oracle returned: column names, PostgreSQL types and rows as PostgreSQL's text.
pub struct Want {
    pub names: Vec<String>,
    pub types: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
}

/// How the rows must correspond.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Row for row: the query's ORDER BY makes the order total.
    InOrder,
    /// The same multiset of rows.
    AnyOrder,
    /// A LIMIT without ORDER BY: exactly `rows` rows, each a distinct row of the oracle's
    /// full (unlimited) result.
    SubsetOf { rows: usize },
}

/// Reads every row of a Parquet file.
pub fn read(path: &Path) -> Got {
    let file = File::open(path).unwrap_or_else(|e| panic!("opening {}: {e}", path.display()));
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let schema = builder.schema().clone();
    let batches: Vec<RecordBatch> = builder.build().unwrap().map(|b| b.unwrap()).collect();
    let names = schema.fields().iter().map(|f| f.name().clone()).collect();
    let types: Vec<DataType> = schema
        .fields()
        .iter()
        .map(|f| f.data_type().clone())
        .collect();
    let mut rows = Vec::new();
    for batch in &batches {
        let columns: Vec<Vec<Cell>> = batch.columns().iter().map(cells).collect();
        for i in 0..batch.num_rows() {
            rows.push(columns.iter().map(|c| c[i].clone()).collect());
        }
    }
    Got { names, types, rows }
}

/// The values of one column as cells.
pub fn cells(array: &ArrayRef) -> Vec<Cell> {
    let n = array.len();
    let each = |f: &dyn Fn(usize) -> Cell| -> Vec<Cell> {
        (0..n)
            .map(|i| if array.is_null(i) { Cell::Null } else { f(i) })
            .collect()
    };
    match array.data_type() {
        DataType::Null => vec![Cell::Null; n],
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32 => {
            let a = cast(array, &DataType::Int64).unwrap();
            let a = a.as_primitive::<Int64Type>();
            each(&|i| Cell::Int(a.value(i) as i128))
        }
        DataType::UInt64 => {
            let a = array.as_primitive::<arrow::datatypes::UInt64Type>();
            each(&|i| Cell::Int(a.value(i) as i128))
        }
        DataType::Decimal128(_, s) => {
            let a = array.as_primitive::<Decimal128Type>();
            each(&|i| Cell::Dec(a.value(i), *s))
        }
        DataType::Decimal256(_, s) => {
            let a = array.as_primitive::<arrow::datatypes::Decimal256Type>();
            each(&|i| {
                let v = a
                    .value(i)
                    .to_i128()
                    .expect("a decimal256 value within i128");
                Cell::Dec(v, *s)
            })
        }
        DataType::Float16 | DataType::Float32 | DataType::Float64 => {
            let a = cast(array, &DataType::Float64).unwrap();
            let a = a.as_primitive::<Float64Type>();
            each(&|i| Cell::Float(a.value(i)))
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let a = cast(array, &DataType::Utf8).unwrap();
            let a = a.as_string::<i32>();
            each(&|i| Cell::Text(a.value(i).to_string()))
        }
        DataType::Dictionary(_, value) => cells(&cast(array, value).unwrap()),
        DataType::Boolean => {
            let a = array.as_boolean();
            each(&|i| Cell::Bool(a.value(i)))
        }
        DataType::Date32 | DataType::Date64 => {
            let a = cast(array, &DataType::Date32).unwrap();
            let a = a.as_primitive::<Date32Type>();
            each(&|i| Cell::Date(a.value(i)))
        }
        DataType::Timestamp(_, tz) => {
            let a = cast(
                array,
                &DataType::Timestamp(TimeUnit::Microsecond, tz.clone()),
            )
            .unwrap();
            let a = a.as_primitive::<TimestampMicrosecondType>();
            each(&|i| Cell::Micros(a.value(i)))
        }
        other => panic!("the comparison does not read {other} columns"),
    }
}

/// Runs `sql` on the oracle: names and types from the prepared statement, values as
/// PostgreSQL's text (simple query protocol).
pub async fn oracle(client: &Client, sql: &str) -> Result<Want, String> {
    let statement = client
        .prepare(sql)
        .await
        .map_err(|e| format!("the oracle rejected the query: {e:?}"))?;
    let names = statement
        .columns()
        .iter()
        .map(|c| c.name().to_string())
        .collect();
    let types = statement
        .columns()
        .iter()
        .map(|c| c.type_().name().to_string())
        .collect();
    let mut rows = Vec::new();
    for message in client
        .simple_query(sql)
        .await
        .map_err(|e| format!("the oracle failed: {e:?}"))?
    {
        if let SimpleQueryMessage::Row(row) = message {
            rows.push(
                (0..row.len())
                    .map(|i| row.get(i).map(String::from))
                    .collect(),
            );
        }
    }
    Ok(Want { names, types, rows })
}

/// A decimal number as PostgreSQL prints it: sign, digits, scale.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Num {
    negative: bool,
    /// Every digit, integer part then fraction, without the point.
    digits: Vec<u8>,
    scale: usize,
}

fn parse_num(text: &str) -> Option<Num> {
    let (negative, rest) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (int, frac) = rest.split_once('.').unwrap_or((rest, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let all = || int.bytes().chain(frac.bytes());
    if !all().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(Num {
        negative,
        digits: all().map(|b| b - b'0').collect(),
        scale: frac.len(),
    })
}

fn digits_to_i128(digits: &[u8]) -> Option<i128> {
    digits
        .iter()
        .try_fold(0i128, |acc, d| acc.checked_mul(10)?.checked_add(*d as i128))
}

impl Num {
    /// The value as an unscaled integer at `scale`, rounded half away from zero; `None`
    /// when it does not fit an i128.
    fn at_scale(&self, scale: usize) -> Option<i128> {
        let magnitude = if scale >= self.scale {
            let mut digits = self.digits.clone();
            digits.extend(std::iter::repeat_n(0, scale - self.scale));
            digits_to_i128(&digits)?
        } else {
            let keep = self.digits.len() - (self.scale - scale);
            let kept = digits_to_i128(&self.digits[..keep])?;
            if self.digits[keep] >= 5 {
                kept.checked_add(1)?
            } else {
                kept
            }
        };
        Some(if self.negative { -magnitude } else { magnitude })
    }
}

fn parse_float(text: &str) -> Option<f64> {
    match text {
        "NaN" => Some(f64::NAN),
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        _ => text.parse().ok(),
    }
}

/// A timestamp's text, with or without an offset (`+01`, `-05:30`), as microseconds:
/// the instant when it has an offset, the wall-clock time read as UTC when not.
fn parse_micros(text: &str) -> Option<i64> {
    let split = text
        .char_indices()
        .skip(11)
        .find(|(_, c)| *c == '+' || *c == '-')
        .map(|(i, _)| i);
    let (local, offset) = match split {
        Some(i) => (&text[..i], Some(&text[i..])),
        None => (text, None),
    };
    let naive = NaiveDateTime::parse_from_str(local, "%Y-%m-%d %H:%M:%S%.f").ok()?;
    let mut micros = naive.and_utc().timestamp_micros();
    if let Some(offset) = offset {
        let sign = if offset.starts_with('-') { -1 } else { 1 };
        let mut seconds = 0i64;
        for (part, unit) in offset[1..].split(':').zip([3600, 60, 1]) {
            seconds += part.parse::<i64>().ok()? * unit;
        }
        micros -= sign * seconds * 1_000_000;
    }
    Some(micros)
}

/// Whether a column of this type is compared exactly (and so decides a row's bucket).
fn exact(ty: &DataType) -> bool {
    !matches!(
        ty,
        DataType::Float16
            | DataType::Float32
            | DataType::Float64
            | DataType::Decimal128(..)
            | DataType::Decimal256(..)
    )
}

/// The oracle's value as the cell an exactly compared column of type `ty` holds.
fn canonical(ty: &DataType, text: Option<&str>) -> Cell {
    let Some(text) = text else {
        return Cell::Null;
    };
    let bad = || Cell::Bad(format!("{ty}: {text}"));
    let ty = match ty {
        DataType::Dictionary(_, value) => value.as_ref(),
        ty => ty,
    };
    match ty {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Cell::Text(text.into()),
        DataType::Boolean => match text {
            "t" => Cell::Bool(true),
            "f" => Cell::Bool(false),
            _ => bad(),
        },
        DataType::Date32 | DataType::Date64 => NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .map(|d| Cell::Date((d - epoch_day(0)).num_days() as i32))
            .unwrap_or_else(|_| bad()),
        DataType::Timestamp(..) => parse_micros(text).map_or_else(bad, Cell::Micros),
        DataType::Null => bad(),
        _ => match parse_num(text) {
            Some(n) if n.digits[n.digits.len() - n.scale..].iter().all(|d| *d == 0) => {
                n.at_scale(0).map_or_else(bad, Cell::Int)
            }
            _ => bad(),
        },
    }
}

/// Whether a cell of type `ty` holds the oracle's value `text`.
fn matches(ty: &DataType, cell: &Cell, text: Option<&str>) -> bool {
    match (cell, text) {
        (Cell::Null, None) => true,
        (Cell::Null, Some(_)) | (_, None) => false,
        (Cell::Dec(v, s), Some(text)) => {
            let Some(n) = parse_num(text) else {
                return false;
            };
            let s = (*s).max(0) as usize;
            if n.scale >= s {
                n.at_scale(s) == Some(*v)
            } else {
                // The oracle printed fewer digits than the column holds: both are
                // roundings of one value, so they differ by at most half a unit of each.
                let Some(o) = n.at_scale(s) else {
                    return false;
                };
                let unit = 10i128.pow((s - n.scale) as u32);
                (v - o).unsigned_abs() * 2 <= (unit + 1) as u128
            }
        }
        (Cell::Float(v), Some(text)) => match parse_float(text) {
            Some(o) if v.is_nan() || o.is_nan() => v.is_nan() && o.is_nan(),
            Some(o) if v.is_infinite() || o.is_infinite() => *v == o,
            Some(o) => (v - o).abs() <= 1e-9 * v.abs().max(o.abs()) || (v - o).abs() <= 1e-12,
            None => false,
        },
        (cell, text) => canonical(ty, text) == *cell,
    }
}

fn row_matches(types: &[DataType], got: &[Cell], want: &[Option<String>]) -> bool {
    types
        .iter()
        .zip(got)
        .zip(want)
        .all(|((ty, g), w)| matches(ty, g, w.as_deref()))
}

/// The first column of a row pair that differs, described.
fn row_difference(got: &Got, want: &Want, g: usize, w: usize) -> String {
    for (c, ty) in got.types.iter().enumerate() {
        let (cell, text) = (&got.rows[g][c], want.rows[w][c].as_deref());
        if !matches(ty, cell, text) {
            return format!(
                "column `{}` ({ty}): got {cell}, the oracle has {}",
                got.names[c],
                text.unwrap_or("NULL")
            );
        }
    }
    "no column differs".into()
}

fn bucket_key(types: &[DataType], cells: impl Iterator<Item = Cell>) -> String {
    let exact: Vec<String> = types
        .iter()
        .zip(cells)
        .filter(|(ty, _)| exact(ty))
        .map(|(_, c)| format!("{c:?}"))
        .collect();
    exact.join("\u{1f}")
}

/// Matches every row of `got` to a distinct row of `want`; returns the unmatched rows of
/// each side.
fn match_rows(got: &Got, want: &Want) -> (Vec<usize>, Vec<usize>) {
    let mut buckets: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, row) in want.rows.iter().enumerate() {
        let key = bucket_key(
            &got.types,
            got.types
                .iter()
                .zip(row)
                .map(|(ty, v)| canonical(ty, v.as_deref())),
        );
        buckets.entry(key).or_default().push(i);
    }
    let mut used = vec![false; want.rows.len()];
    let mut unmatched = Vec::new();
    for (g, row) in got.rows.iter().enumerate() {
        let key = bucket_key(&got.types, row.iter().cloned());
        let found = buckets.get(&key).and_then(|candidates| {
            candidates
                .iter()
                .copied()
                .find(|&w| !used[w] && row_matches(&got.types, row, &want.rows[w]))
        });
        match found {
            Some(w) => used[w] = true,
            None => unmatched.push(g),
        }
    }
    let left = (0..want.rows.len()).filter(|w| !used[*w]).collect();
    (unmatched, left)
}

/// Compares what a run wrote with the oracle's answer; the error says what differs.
pub fn compare(got: &Got, want: &Want, mode: Mode) -> Result<(), String> {
    if got.names != want.names {
        return Err(format!(
            "the columns differ: got {:?}, the oracle has {:?}",
            got.names, want.names
        ));
    }
    match mode {
        Mode::InOrder => {
            if got.rows.len() != want.rows.len() {
                return Err(format!(
                    "got {} rows, the oracle has {}",
                    got.rows.len(),
                    want.rows.len()
                ));
            }
            for i in 0..got.rows.len() {
                if !row_matches(&got.types, &got.rows[i], &want.rows[i]) {
                    return Err(format!("row {i}: {}", row_difference(got, want, i, i)));
                }
            }
            Ok(())
        }
        Mode::AnyOrder => {
            let (extra, missing) = match_rows(got, want);
            if extra.is_empty() && missing.is_empty() {
                return Ok(());
            }
            Err(format!(
                "got {} rows, the oracle has {}; {} rows of the output match no row of the oracle (first: {}), {} rows of the oracle are missing (first: {})",
                got.rows.len(),
                want.rows.len(),
                extra.len(),
                first_rows(extra.iter().map(|&g| render_got_row(&got.rows[g]))),
                missing.len(),
                first_rows(missing.iter().map(|&w| render_want_row(&want.rows[w]))),
            ))
        }
        Mode::SubsetOf { rows } => {
            if got.rows.len() != rows {
                return Err(format!(
                    "got {} rows, the query's LIMIT gives {rows}",
                    got.rows.len()
                ));
            }
            let (extra, _) = match_rows(got, want);
            if extra.is_empty() {
                return Ok(());
            }
            Err(format!(
                "{} rows of the output are not distinct rows of the oracle's full result (first: {})",
                extra.len(),
                first_rows(extra.iter().map(|&g| render_got_row(&got.rows[g]))),
            ))
        }
    }
}

fn first_rows(rows: impl Iterator<Item = String>) -> String {
    let rows: Vec<String> = rows.take(5).collect();
    if rows.is_empty() {
        "none".into()
    } else {
        rows.join(", ")
    }
}

fn render_got_row(row: &[Cell]) -> String {
    let cells: Vec<String> = row.iter().map(|c| c.to_string()).collect();
    format!("({})", cells.join(", "))
}

fn render_want_row(row: &[Option<String>]) -> String {
    let cells: Vec<&str> = row.iter().map(|c| c.as_deref().unwrap_or("NULL")).collect();
    format!("({})", cells.join(", "))
}

/// At most `limit` rows of each side, as a table for a failure message.
pub fn render(got: &Got, want: &Want, limit: usize) -> String {
    let mut out = String::new();
    let types: Vec<String> = got.types.iter().map(|t| t.to_string()).collect();
    out.push_str(&format!(
        "  output ({} rows) {}\n",
        got.rows.len(),
        columns(&got.names, &types)
    ));
    for row in got.rows.iter().take(limit) {
        out.push_str(&format!("    {}\n", render_got_row(row)));
    }
    if got.rows.len() > limit {
        out.push_str("    ...\n");
    }
    out.push_str(&format!(
        "  oracle ({} rows) {}\n",
        want.rows.len(),
        columns(&want.names, &want.types)
    ));
    for row in want.rows.iter().take(limit) {
        out.push_str(&format!("    {}\n", render_want_row(row)));
    }
    if want.rows.len() > limit {
        out.push_str("    ...\n");
    }
    out
}

fn columns(names: &[String], types: &[String]) -> String {
    let cols: Vec<String> = names
        .iter()
        .zip(types)
        .map(|(n, t)| format!("{n} {t}"))
        .collect();
    format!("[{}]", cols.join(", "))
}

#[cfg(test)]
mod tests {
    //! The comparison must reject wrong answers; these feed it some.

    use super::*;

    fn got(types: Vec<DataType>, rows: Vec<Vec<Cell>>) -> Got {
        Got {
            names: (0..types.len()).map(|i| format!("c{i}")).collect(),
            types,
            rows,
        }
    }

    fn want(rows: &[&[Option<&str>]]) -> Want {
        let width = rows.first().map_or(0, |r| r.len());
        Want {
            names: (0..width).map(|i| format!("c{i}")).collect(),
            types: vec!["?".into(); width],
            rows: rows
                .iter()
                .map(|r| r.iter().map(|v| v.map(String::from)).collect())
                .collect(),
        }
    }

    fn one(ty: DataType, cell: Cell, text: Option<&str>) -> Result<(), String> {
        compare(
            &got(vec![ty], vec![vec![cell]]),
            &want(&[&[text]]),
            Mode::InOrder,
        )
    }

    #[test]
    fn decimals_equal_the_oracle_rounded_half_away_from_zero() {
        let d = DataType::Decimal128(20, 2);
        assert!(one(d.clone(), Cell::Dec(12345, 2), Some("123.445")).is_ok());
        assert!(one(d.clone(), Cell::Dec(-12345, 2), Some("-123.445")).is_ok());
        assert!(one(d.clone(), Cell::Dec(12344, 2), Some("123.4449999")).is_ok());
        assert!(one(d.clone(), Cell::Dec(12300, 2), Some("123")).is_ok());
        assert!(one(d.clone(), Cell::Dec(12344, 2), Some("123.445")).is_err());
        assert!(one(d.clone(), Cell::Dec(-12344, 2), Some("-123.445")).is_err());
        assert!(one(d.clone(), Cell::Dec(12345, 2), Some("123.4449999")).is_err());
        assert!(one(d.clone(), Cell::Dec(12345, 2), Some("-123.45")).is_err());
        assert!(one(d.clone(), Cell::Dec(12345, 2), None).is_err());
        assert!(one(d, Cell::Null, Some("0.00")).is_err());
        // An oracle printed with fewer digits bounds the value within half a unit of each.
        let d6 = DataType::Decimal128(38, 6);
        assert!(
            one(
                d6.clone(),
                Cell::Dec(20_000_000_400_000, 6),
                Some("20000000.4")
            )
            .is_ok()
        );
        assert!(
            one(
                d6.clone(),
                Cell::Dec(20_000_000_450_000, 6),
                Some("20000000.4")
            )
            .is_ok()
        );
        assert!(one(d6, Cell::Dec(20_000_000_450_001, 6), Some("20000000.4")).is_err());
    }

    #[test]
    fn integers_text_and_booleans_are_exact() {
        assert!(one(DataType::Int64, Cell::Int(5), Some("5")).is_ok());
        assert!(one(DataType::Int64, Cell::Int(5), Some("5.000")).is_ok());
        assert!(one(DataType::Int64, Cell::Int(5), Some("6")).is_err());
        assert!(one(DataType::Int64, Cell::Int(5), Some("5.5")).is_err());
        assert!(one(DataType::Int64, Cell::Int(0), None).is_err());
        assert!(one(DataType::Utf8, Cell::Text("eu".into()), Some("eu")).is_ok());
        assert!(one(DataType::Utf8, Cell::Text("eu".into()), Some("eu ")).is_err());
        assert!(one(DataType::Utf8, Cell::Text("1.50".into()), Some("1.5")).is_err());
        assert!(one(DataType::Boolean, Cell::Bool(true), Some("t")).is_ok());
        assert!(one(DataType::Boolean, Cell::Bool(true), Some("f")).is_err());
    }

    #[test]
    fn floats_agree_within_a_billionth() {
        let f = DataType::Float64;
        assert!(one(f.clone(), Cell::Float(0.1), Some("0.1000000000000001")).is_ok());
        assert!(one(f.clone(), Cell::Float(1e-13), Some("0")).is_ok());
        assert!(one(f.clone(), Cell::Float(f64::NAN), Some("NaN")).is_ok());
        assert!(one(f.clone(), Cell::Float(0.1), Some("0.100001")).is_err());
        assert!(one(f.clone(), Cell::Float(1e-6), Some("0")).is_err());
        assert!(one(f.clone(), Cell::Float(f64::INFINITY), Some("1e308")).is_err());
        assert!(one(f, Cell::Float(f64::NAN), Some("0")).is_err());
    }

    #[test]
    fn dates_and_timestamps_are_instants() {
        let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        // 2025-03-01 00:00:00 in Berlin is 2025-02-28 23:00:00 UTC.
        let micros = 1_740_783_600_000_000;
        assert!(
            one(
                ts.clone(),
                Cell::Micros(micros),
                Some("2025-03-01 00:00:00+01")
            )
            .is_ok()
        );
        assert!(
            one(
                ts.clone(),
                Cell::Micros(micros),
                Some("2025-02-28 23:00:00+00")
            )
            .is_ok()
        );
        assert!(
            one(
                ts.clone(),
                Cell::Micros(micros + 1),
                Some("2025-02-28 23:00:00.000001+00:00")
            )
            .is_ok()
        );
        assert!(
            one(
                ts.clone(),
                Cell::Micros(micros),
                Some("2025-03-01 00:00:00+00")
            )
            .is_err()
        );
        assert!(
            one(
                ts,
                Cell::Micros(micros),
                Some("2025-02-28 23:00:00.5-00:30")
            )
            .is_err()
        );
        let date = DataType::Date32;
        assert!(one(date.clone(), Cell::Date(20_089), Some("2025-01-01")).is_ok());
        assert!(one(date, Cell::Date(20_089), Some("2025-01-02")).is_err());
    }

    #[test]
    fn rows_must_correspond_one_to_one() {
        let types = vec![DataType::Utf8, DataType::Float64];
        let rows = vec![
            vec![Cell::Text("a".into()), Cell::Float(1.0)],
            vec![Cell::Text("a".into()), Cell::Float(2.0)],
            vec![Cell::Null, Cell::Float(3.0)],
        ];
        let g = got(types.clone(), rows.clone());
        let w = want(&[
            &[None, Some("3")],
            &[Some("a"), Some("2")],
            &[Some("a"), Some("1")],
        ]);
        assert!(compare(&g, &w, Mode::AnyOrder).is_ok());
        assert!(compare(&g, &w, Mode::InOrder).is_err(), "the order differs");
        // A row twice instead of two distinct rows.
        let twice = got(
            types.clone(),
            vec![rows[0].clone(), rows[0].clone(), rows[2].clone()],
        );
        assert!(compare(&twice, &w, Mode::AnyOrder).is_err());
        // A missing row; an extra row.
        let fewer = got(types.clone(), rows[..2].to_vec());
        assert!(compare(&fewer, &w, Mode::AnyOrder).is_err());
        let mut more = rows.clone();
        more.push(vec![Cell::Text("b".into()), Cell::Float(1.0)]);
        assert!(compare(&got(types.clone(), more), &w, Mode::AnyOrder).is_err());
        // A LIMIT without ORDER BY: distinct rows of the full result, and exactly so many.
        assert!(compare(&fewer, &w, Mode::SubsetOf { rows: 2 }).is_ok());
        assert!(compare(&fewer, &w, Mode::SubsetOf { rows: 3 }).is_err());
        let twice = got(types.clone(), vec![rows[0].clone(), rows[0].clone()]);
        assert!(compare(&twice, &w, Mode::SubsetOf { rows: 2 }).is_err());
        // Column names must match.
        let mut renamed = got(types, rows);
        renamed.names[1] = "sum".into();
        assert!(compare(&renamed, &w, Mode::AnyOrder).is_err());
    }
}
