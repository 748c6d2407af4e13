//! Combining across shards: what one database holding every shard's rows would answer.
//!
//! A query is split ([`rewrite`]) into the SQL every shard runs and a final step over all
//! their results; or the user gives the final step (`--merge`), or asks for the shards'
//! rows as they are (`--combine off`). The shard SQL depends on the types of the columns
//! it aggregates (a decimal's sum is cast so that every shard returns one exact type), so
//! it is completed once the shards are described ([`InputType`], [`shard_sql`],
//! [`final_sql`]). The final step runs in DataFusion over the shards' partial results,
//! spooled to disk as they arrive, under a memory limit ([`engine`]).

pub mod engine;
mod rewrite;
mod udf;

use std::collections::BTreeMap;
use std::fmt::Write as _;

pub use rewrite::{
    Combined, FinalExpr, FinalFn, Finish, Partial, PartialExpr, PartialFn, Rewrite, SortKey, Split,
    Strategy, rewrite, rewrite_mysql,
};

use crate::types::MysqlKind;
use crate::types::PgKind;

/// Why a query cannot be combined. Raised before any connection is opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CombineError {
    #[error(
        "the query could not be parsed to split it across shards: {0}\n  use --combine off for the shards' rows as they are, or --merge 'SQL' to combine them yourself"
    )]
    Parse(String),
    #[error(
        "{construct} cannot be split across shards ({reason})\n  use --merge 'SQL' to combine the shards' rows yourself (a table named `shards`), or --combine off for each shard's rows"
    )]
    Refused { construct: String, reason: String },
    #[error(
        "`{0}` is neither a GROUP BY key nor inside an aggregate tributary can split\n  use --merge 'SQL' to combine the shards' rows yourself, or --combine off for each shard's rows"
    )]
    NotGrouped(String),
    #[error("missing value for parameter :{0}")]
    Param(String),
    #[error(
        "{aggregate} over `{column}`, an unbounded numeric on shard `{shard}`, cannot be combined exactly: give it a precision and scale (CAST({column} AS numeric(18, 2)), with the scale its values have) or read numerics as decimals (--type numeric=decimal(P,S))"
    )]
    Unbounded {
        aggregate: &'static str,
        column: String,
        shard: String,
    },
    #[error(
        "{aggregate} is not available on {database} shard `{shard}`\n  use --merge 'SQL' to combine the shards' rows yourself (a table named `shards`), or --combine off for each shard's rows"
    )]
    Unavailable {
        aggregate: &'static str,
        database: &'static str,
        shard: String,
    },
    #[error(
        "{aggregate} over `{column}`, a DECIMAL wider than 38 digits on MySQL shard `{shard}`, cannot be combined exactly: cast it to a narrower one (CAST({column} AS DECIMAL(38, 2)), with the scale its values have)"
    )]
    WideDecimal {
        aggregate: &'static str,
        column: String,
        shard: String,
    },
    #[error(
        "{aggregate} over `{column}` on MySQL shard `{shard}` needs {scale} digits after the point, and MySQL's DECIMAL keeps at most 30: cast the column to a smaller scale"
    )]
    Scale {
        aggregate: &'static str,
        column: String,
        shard: String,
        scale: i8,
    },
}

impl CombineError {
    fn refused(construct: impl Into<String>, reason: impl Into<String>) -> CombineError {
        CombineError::Refused {
            construct: construct.into(),
            reason: reason.into(),
        }
    }
}

/// How the run combines the shards' results.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum CombineMode {
    /// Split the query when it needs it (the default).
    #[default]
    Auto,
    /// Concatenate the shards' rows.
    Off,
    /// The user's final step over `shards`.
    Merge(String),
}

/// What an aggregate's input is, as far as its result type goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputType {
    /// int2, int4: sums are int8.
    SmallInt,
    /// int8: sums are decimal(38, 0).
    BigInt,
    Decimal {
        precision: u8,
        scale: i8,
    },
    /// An unbounded numeric, read as exact text.
    UnboundedNumeric,
    Float,
    /// Anything else (or a source that types by values, SQLite).
    Other,
}

impl InputType {
    pub fn of(kind: &PgKind) -> InputType {
        match kind {
            PgKind::Int2 | PgKind::Int4 => InputType::SmallInt,
            PgKind::Int8 => InputType::BigInt,
            PgKind::Decimal {
                precision, scale, ..
            } => InputType::Decimal {
                precision: *precision,
                scale: *scale,
            },
            PgKind::NumericText => InputType::UnboundedNumeric,
            PgKind::Float4 | PgKind::Float8 | PgKind::NumericFloat => InputType::Float,
            _ => InputType::Other,
        }
    }

    /// The input type of a MySQL column: its integers sum as PostgreSQL's do (int8 up to
    /// INT, decimal(38, 0) for BIGINT), a BOOL (TINYINT(1)) as an integer.
    pub fn of_mysql(kind: &MysqlKind) -> InputType {
        match kind {
            MysqlKind::Bool
            | MysqlKind::Int8
            | MysqlKind::Int16
            | MysqlKind::Int32
            | MysqlKind::UInt8
            | MysqlKind::UInt16
            | MysqlKind::UInt32 => InputType::SmallInt,
            MysqlKind::Int64 | MysqlKind::UInt64 => InputType::BigInt,
            MysqlKind::Decimal { precision, scale } => InputType::Decimal {
                precision: *precision,
                scale: *scale,
            },
            MysqlKind::DecimalText => InputType::UnboundedNumeric,
            MysqlKind::Float32 | MysqlKind::Float64 => InputType::Float,
            _ => InputType::Other,
        }
    }

    /// The wider of two shards' types for one column.
    pub fn unify(self, other: InputType) -> InputType {
        use InputType::*;
        match (self, other) {
            (a, b) if a == b => a,
            (
                Decimal {
                    precision: p1,
                    scale: s1,
                },
                Decimal {
                    precision: p2,
                    scale: s2,
                },
            ) => {
                let scale = s1.max(s2);
                let int = (p1 as i16 - s1 as i16).max(p2 as i16 - s2 as i16);
                Decimal {
                    precision: (int + scale as i16).min(38) as u8,
                    scale,
                }
            }
            (SmallInt, BigInt) | (BigInt, SmallInt) => BigInt,
            (UnboundedNumeric, _) | (_, UnboundedNumeric) => UnboundedNumeric,
            (Float, _) | (_, Float) => Float,
            _ => Other,
        }
    }
}

/// The row query columns' input types, by name; a column missing is [`InputType::Other`].
pub type InputTypes = BTreeMap<String, InputType>;

/// The SQL dialect of a shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    Sqlite,
    Mysql,
}

/// The scale of `avg` over integers.
pub const AVG_INT_SCALE: i8 = 6;

fn input(types: &InputTypes, column: Option<&String>) -> InputType {
    column
        .and_then(|c| types.get(c))
        .copied()
        .unwrap_or(InputType::Other)
}

/// The SQL a shard runs: the partial step over `rows` (the row query, already restricted
/// to the task's partition and rendered for the shard).
pub fn shard_sql(
    split: &Split,
    rows: &str,
    dialect: Dialect,
    types: &InputTypes,
    shard: &str,
) -> Result<String, CombineError> {
    let partial = &split.partial;
    let columns = match &partial.columns {
        None => "*".to_string(),
        Some(columns) => {
            let mut out = Vec::with_capacity(columns.len());
            for c in columns {
                let sql = match &c.expr {
                    PartialExpr::Column(name) => name.clone(),
                    PartialExpr::Aggregate { func, arg, filter } => {
                        partial_sql(*func, arg.as_ref(), filter.as_ref(), dialect, types, shard)
                            .map_err(|e| named(e, split))?
                    }
                };
                out.push(format!("{sql} AS {}", c.name));
            }
            out.join(", ")
        }
    };
    let mut sql = format!("SELECT {columns} FROM (\n{rows}\n) AS tributary_rows");
    if !partial.group_by.is_empty() {
        let _ = write!(sql, " GROUP BY {}", partial.group_by.join(", "));
    }
    if !partial.order_by.is_empty() {
        let keys: Vec<String> = partial
            .order_by
            .iter()
            .map(|k| match dialect {
                Dialect::Mysql => k.mysql_sql(),
                _ => k.sql(),
            })
            .collect();
        let _ = write!(sql, " ORDER BY {}", keys.join(", "));
    }
    if let Some(n) = partial.limit {
        let _ = write!(sql, " LIMIT {n}");
    }
    Ok(sql)
}

/// The error with the row query column's expression for its internal name.
fn named(mut e: CombineError, split: &Split) -> CombineError {
    if let CombineError::Unbounded { column, .. }
    | CombineError::WideDecimal { column, .. }
    | CombineError::Scale { column, .. } = &mut e
        && let Some(sql) = split.row_sql.get(column.as_str())
    {
        *column = sql.clone();
    }
    e
}

fn partial_sql(
    func: PartialFn,
    arg: Option<&String>,
    filter: Option<&String>,
    dialect: Dialect,
    types: &InputTypes,
    shard: &str,
) -> Result<String, CombineError> {
    if dialect == Dialect::Mysql {
        return mysql_partial_sql(func, arg, filter, types, shard);
    }
    let a = arg.map(String::as_str).unwrap_or("*");
    let ty = input(types, arg);
    let unbounded = |aggregate| CombineError::Unbounded {
        aggregate,
        column: arg.cloned().unwrap_or_default(),
        shard: shard.to_string(),
    };
    let sqlite = dialect == Dialect::Sqlite;
    let filter = filter
        .map(|f| format!(" FILTER (WHERE {f})"))
        .unwrap_or_default();
    // An aggregate call over `x`, its FILTER inside whatever cast wraps it.
    let agg = |f: &str, x: &str| format!("{f}({x}){filter}");
    Ok(match func {
        PartialFn::Count => agg("count", a),
        PartialFn::Sum => match ty {
            InputType::BigInt => format!("CAST({} AS numeric(38, 0))", agg("sum", a)),
            InputType::Decimal { scale, .. } => {
                format!("CAST({} AS numeric(38, {scale}))", agg("sum", a))
            }
            InputType::UnboundedNumeric => return Err(unbounded("sum")),
            _ => agg("sum", a),
        },
        PartialFn::SumSquares => match ty {
            InputType::SmallInt | InputType::BigInt => format!(
                "CAST({} AS numeric(38, 0))",
                agg("sum", &format!("CAST({a} AS numeric) * {a}"))
            ),
            InputType::Decimal { scale, .. } => format!(
                "CAST({} AS numeric(38, {}))",
                agg("sum", &format!("CAST({a} AS numeric) * {a}")),
                (scale as i16 * 2).min(38)
            ),
            InputType::UnboundedNumeric => return Err(unbounded("a variance")),
            InputType::Float | InputType::Other if sqlite => {
                agg("sum", &format!("CAST({a} AS REAL) * {a}"))
            }
            _ => agg("sum", &format!("{a} * {a}")),
        },
        PartialFn::Min | PartialFn::Max => {
            let f = if func == PartialFn::Min { "min" } else { "max" };
            match ty {
                InputType::Decimal { precision, scale } => {
                    format!("CAST({} AS numeric({precision}, {scale}))", agg(f, a))
                }
                InputType::UnboundedNumeric => return Err(unbounded(f)),
                _ => agg(f, a),
            }
        }
        PartialFn::BoolAnd if sqlite => agg("min", a),
        PartialFn::BoolOr if sqlite => agg("max", a),
        PartialFn::BoolAnd => agg("bool_and", a),
        PartialFn::BoolOr => agg("bool_or", a),
        PartialFn::BitAnd | PartialFn::BitOr | PartialFn::BitXor if sqlite => {
            return Err(CombineError::Unavailable {
                aggregate: "bit_and, bit_or and bit_xor",
                database: "SQLite",
                shard: shard.to_string(),
            });
        }
        PartialFn::BitAnd => agg("bit_and", a),
        PartialFn::BitOr => agg("bit_or", a),
        PartialFn::BitXor => agg("bit_xor", a),
    })
}

/// [`partial_sql`] in MySQL's SQL, in the types PostgreSQL's partials have (MySQL sums
/// integers and decimals as DECIMAL(65)): an INT's sum as BIGINT, a BIGINT's as
/// DECIMAL(38, 0), a DECIMAL(p, s)'s as DECIMAL(38, s). MySQL has no FILTER clause: a
/// filtered aggregate reads `CASE WHEN filter THEN x END`, which it skips as NULL.
fn mysql_partial_sql(
    func: PartialFn,
    arg: Option<&String>,
    filter: Option<&String>,
    types: &InputTypes,
    shard: &str,
) -> Result<String, CombineError> {
    let ty = input(types, arg);
    let column = || arg.cloned().unwrap_or_default();
    let wide = |aggregate| CombineError::WideDecimal {
        aggregate,
        column: column(),
        shard: shard.to_string(),
    };
    // The aggregate's argument, NULL where the filter does not hold.
    let x = |x: &str| match filter {
        Some(f) => format!("CASE WHEN {f} THEN {x} END"),
        None => x.to_string(),
    };
    let a = match arg {
        Some(a) => x(a),
        None if filter.is_some() => x("1"),
        None => "*".to_string(),
    };
    // MySQL's DECIMAL keeps at most 30 digits after the point (a PostgreSQL shard's
    // column may have more).
    let scaled = |aggregate, scale: i8| match scale {
        0..=30 => Ok(scale),
        _ => Err(CombineError::Scale {
            aggregate,
            column: column(),
            shard: shard.to_string(),
            scale,
        }),
    };
    Ok(match func {
        PartialFn::Count => format!("count({a})"),
        PartialFn::Sum => match ty {
            InputType::SmallInt => format!("CAST(sum({a}) AS SIGNED)"),
            InputType::BigInt => format!("CAST(sum({a}) AS DECIMAL(38, 0))"),
            InputType::Decimal { scale, .. } => {
                format!("CAST(sum({a}) AS DECIMAL(38, {}))", scaled("sum", scale)?)
            }
            InputType::UnboundedNumeric => return Err(wide("sum")),
            _ => format!("sum({a})"),
        },
        PartialFn::SumSquares => {
            let arg = arg.map(String::as_str).unwrap_or("*");
            match ty {
                InputType::SmallInt | InputType::BigInt => format!(
                    "CAST(sum({}) AS DECIMAL(38, 0))",
                    x(&format!("CAST({arg} AS DECIMAL(38, 0)) * {arg}"))
                ),
                InputType::Decimal { scale, .. } => {
                    let squared = i8::try_from(scale as i16 * 2).unwrap_or(i8::MAX);
                    let squared = scaled("a variance", squared)?;
                    format!(
                        "CAST(sum({}) AS DECIMAL(38, {squared}))",
                        x(&format!("CAST({arg} AS DECIMAL(38, {scale})) * {arg}"))
                    )
                }
                InputType::UnboundedNumeric => return Err(wide("a variance")),
                _ => format!("sum({})", x(&format!("{arg} * {arg}"))),
            }
        }
        PartialFn::Min | PartialFn::Max => {
            let f = if func == PartialFn::Min { "min" } else { "max" };
            match ty {
                InputType::Decimal { precision, scale } => {
                    format!(
                        "CAST({f}({a}) AS DECIMAL({precision}, {}))",
                        scaled(f, scale)?
                    )
                }
                InputType::UnboundedNumeric => return Err(wide(f)),
                _ => format!("{f}({a})"),
            }
        }
        // MySQL's booleans are integers, 0 or 1.
        PartialFn::BoolAnd => format!("min({a})"),
        PartialFn::BoolOr => format!("max({a})"),
        // MySQL's are BIGINT UNSIGNED, all bits set over no row.
        PartialFn::BitAnd | PartialFn::BitOr | PartialFn::BitXor => {
            return Err(CombineError::Unavailable {
                aggregate: "bit_and, bit_or and bit_xor",
                database: "MySQL",
                shard: shard.to_string(),
            });
        }
    })
}

/// The final step's SQL over `shards`; its output columns are named `tributary_o{i}`
/// (renamed to the query's names afterwards, see [`Split::output_names`]).
pub fn final_sql(split: &Split, types: &InputTypes) -> String {
    let finish = &split.finish;
    let mut sql = String::from("SELECT ");
    if finish.distinct {
        sql.push_str("DISTINCT ");
    }
    match &finish.columns {
        None => sql.push('*'),
        Some(columns) => {
            let items: Vec<String> = columns
                .iter()
                .enumerate()
                .map(|(i, c)| format!("{} AS tributary_o{i}", fill(&c.expr, types)))
                .collect();
            sql.push_str(&items.join(", "));
        }
    }
    sql.push_str(" FROM shards");
    if !finish.group_by.is_empty() {
        let _ = write!(sql, " GROUP BY {}", finish.group_by.join(", "));
    }
    if let Some(having) = &finish.having {
        let _ = write!(sql, " HAVING {}", fill(having, types));
    }
    if !finish.order_by.is_empty() {
        let keys: Vec<String> = finish
            .order_by
            .iter()
            .map(|(expr, key)| {
                SortKey {
                    expr: fill(expr, types),
                    ..key.clone()
                }
                .sql()
            })
            .collect();
        let _ = write!(sql, " ORDER BY {}", keys.join(", "));
    }
    if let Some(limit) = &finish.limit {
        let _ = write!(sql, " LIMIT {limit}");
    }
    if let Some(offset) = &finish.offset {
        let _ = write!(sql, " OFFSET {offset}");
    }
    sql
}

impl Split {
    /// The output's column names, in order, when the final step renames its columns;
    /// `None` when it keeps the shards' names.
    pub fn output_names(&self) -> Option<Vec<String>> {
        self.finish
            .columns
            .as_ref()
            .map(|c| c.iter().map(|c| c.name.clone()).collect())
    }
}

/// A final expression with each aggregate's combination filled in.
fn fill(expr: &FinalExpr, types: &InputTypes) -> String {
    let mut sql = expr.template.clone();
    for (i, combined) in expr.aggregates.iter().enumerate() {
        sql = sql.replace(&format!("{{agg:{i}}}"), &combine_sql(combined, types));
    }
    sql
}

/// One aggregate combined from its partials, in the type the rules of docs/combine.md
/// give it.
fn combine_sql(c: &Combined, types: &InputTypes) -> String {
    let ty = input(types, c.arg.as_ref());
    let p = |i: usize| c.partials[i].as_str();
    let filter = c
        .filter
        .as_ref()
        .map(|f| format!(" FILTER (WHERE {f} = 1)"))
        .unwrap_or_default();
    match c.func {
        // No partial row at all (every shard empty, under a split that groups by a
        // DISTINCT argument) is a count of 0, as one database would say.
        FinalFn::Count => format!("CAST(coalesce(sum({}), 0) AS BIGINT)", p(0)),
        FinalFn::Sum => sum_type(ty, format!("sum({})", p(0))),
        FinalFn::Min => format!("min({})", p(0)),
        FinalFn::Max => format!("max({})", p(0)),
        FinalFn::BoolAnd => format!("bool_and(CAST({} AS BOOLEAN))", p(0)),
        FinalFn::BoolOr => format!("bool_or(CAST({} AS BOOLEAN))", p(0)),
        FinalFn::BitAnd => format!("bit_and({})", p(0)),
        FinalFn::BitOr => format!("bit_or({})", p(0)),
        FinalFn::BitXor => format!("bit_xor({})", p(0)),
        FinalFn::Avg => avg(ty, format!("sum({})", p(0)), format!("sum({})", p(1))),
        FinalFn::Variance { sample, root } => format!(
            "{}(CAST(sum({}) AS BIGINT), sum({}), sum({}))",
            udf::variance_name(sample, root),
            p(0),
            p(1),
            p(2)
        ),
        FinalFn::CountDistinct => format!("count(DISTINCT {}){filter}", p(0)),
        FinalFn::SumDistinct => sum_type(ty, format!("sum(DISTINCT {}){filter}", p(0))),
        FinalFn::AvgDistinct => avg(
            ty,
            format!("sum(DISTINCT {}){filter}", p(0)),
            format!("count(DISTINCT {}){filter}", p(0)),
        ),
    }
}

/// A sum in its result type: int8 for int2/int4, decimal(38, 0) for int8,
/// decimal(min(38, p + 10), s) for decimal(p, s).
fn sum_type(ty: InputType, sum: String) -> String {
    match ty {
        InputType::BigInt => format!("CAST({sum} AS DECIMAL(38, 0))"),
        InputType::Decimal { precision, scale } => format!(
            "CAST({sum} AS DECIMAL({}, {scale}))",
            (precision as u16 + 10).min(38)
        ),
        InputType::SmallInt => format!("CAST({sum} AS BIGINT)"),
        _ => sum,
    }
}

/// An average from a sum and a count: decimal(min(38, p + 4), s + 4) for decimal(p, s),
/// decimal(38, 6) for integers (rounded half away from zero, as PostgreSQL rounds), a
/// float otherwise.
fn avg(ty: InputType, sum: String, count: String) -> String {
    match ty {
        InputType::SmallInt | InputType::BigInt => format!(
            "{}({sum}, CAST({count} AS BIGINT))",
            udf::avg_name(AVG_INT_SCALE)
        ),
        InputType::Decimal { precision, scale } => {
            let out = (scale as i16 + 4).min(38) as i8;
            format!(
                "CAST({}({sum}, CAST({count} AS BIGINT)) AS DECIMAL({}, {out}))",
                udf::avg_name(out),
                (precision as u16 + 4).min(38)
            )
        }
        _ => format!("CAST({sum} AS DOUBLE) / CAST(NULLIF({count}, 0) AS DOUBLE)"),
    }
}

/// The scales of averages the final step may need (one function each, see `udf`).
pub fn avg_scales(split: &Split, types: &InputTypes) -> Vec<i8> {
    let mut scales = vec![AVG_INT_SCALE];
    let mut visit = |e: &FinalExpr| {
        for c in &e.aggregates {
            if let InputType::Decimal { scale, .. } = input(types, c.arg.as_ref()) {
                scales.push((scale as i16 + 4).min(38) as i8);
            }
        }
    };
    if let Some(columns) = &split.finish.columns {
        columns.iter().for_each(|c| visit(&c.expr));
    }
    if let Some(h) = &split.finish.having {
        visit(h);
    }
    split.finish.order_by.iter().for_each(|(e, _)| visit(e));
    scales.sort();
    scales.dedup();
    scales
}

/// The row query columns whose types the split depends on (aggregates' arguments).
pub fn typed_columns(split: &Split) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(columns) = &split.partial.columns {
        for c in columns {
            if let PartialExpr::Aggregate { arg: Some(a), .. } = &c.expr {
                out.push(a.clone());
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mysql(func: PartialFn, ty: InputType) -> Result<String, CombineError> {
        let types = InputTypes::from([("x".to_string(), ty)]);
        mysql_partial_sql(func, Some(&"x".to_string()), None, &types, "m1")
    }

    #[test]
    fn mysql_partials_are_cast_to_postgres_partial_types() {
        let int = InputType::SmallInt;
        let decimal = InputType::Decimal {
            precision: 10,
            scale: 2,
        };
        assert_eq!(
            mysql(PartialFn::Sum, int).unwrap(),
            "CAST(sum(x) AS SIGNED)"
        );
        assert_eq!(
            mysql(PartialFn::Sum, InputType::BigInt).unwrap(),
            "CAST(sum(x) AS DECIMAL(38, 0))"
        );
        assert_eq!(
            mysql(PartialFn::Sum, decimal).unwrap(),
            "CAST(sum(x) AS DECIMAL(38, 2))"
        );
        assert_eq!(
            mysql(PartialFn::SumSquares, decimal).unwrap(),
            "CAST(sum(CAST(x AS DECIMAL(38, 2)) * x) AS DECIMAL(38, 4))"
        );
        let types = InputTypes::from([("x".to_string(), int)]);
        let filtered =
            |func| mysql_partial_sql(func, None, Some(&"f".to_string()), &types, "m1").unwrap();
        assert_eq!(filtered(PartialFn::Count), "count(CASE WHEN f THEN 1 END)");
    }

    #[test]
    fn mysql_partials_that_cannot_be_exact_are_refused_naming_the_shard() {
        let wide = mysql(PartialFn::Sum, InputType::UnboundedNumeric).unwrap_err();
        assert!(
            wide.to_string()
                .starts_with("sum over `x`, a DECIMAL wider than 38 digits on MySQL shard `m1`"),
            "{wide}"
        );
        let fine = InputType::Decimal {
            precision: 30,
            scale: 16,
        };
        let scale = mysql(PartialFn::SumSquares, fine).unwrap_err();
        assert!(
            scale
                .to_string()
                .contains("needs 32 digits after the point"),
            "{scale}"
        );
        let bits = mysql(PartialFn::BitOr, InputType::SmallInt).unwrap_err();
        assert!(
            bits.to_string()
                .starts_with("bit_and, bit_or and bit_xor is not available on MySQL shard `m1`"),
            "{bits}"
        );
    }
}
