//! The split of one query into what every shard runs and the final step over their
//! results, read off the query's syntax tree (sqlparser, the copy DataFusion uses).
//!
//! The top-level SELECT decides the strategy:
//! - no aggregate, GROUP BY, HAVING, DISTINCT, ORDER BY, LIMIT or OFFSET: the shards'
//!   rows are the answer ([`Rewrite::Stream`]);
//! - aggregates, GROUP BY or HAVING ([`Strategy::Aggregate`]): every shard groups its
//!   rows and computes partial aggregates, the final step groups the partials again and
//!   combines them (sums of counts, sums and counts for averages, ...), then evaluates
//!   what sits over the aggregates (expressions, HAVING, ORDER BY, LIMIT);
//! - otherwise ([`Strategy::Rows`]): every shard sorts, deduplicates and cuts its rows
//!   (`LIMIT n + m`), the final step does the same over all of them.
//!
//! Both split the query in two on the shard: the *row query* (the query's FROM and WHERE,
//! with the expressions the partial step needs as columns named `tributary_*`) and the
//! *partial step* over it. Partitions restrict the row query, so a partition splits the
//! input rows of an aggregate, never its groups. Parameters stay where they were in the
//! row query (rendered per shard as usual); in the final step they are literals.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    BinaryOperator, Distinct, DuplicateTreatment, Expr, Function, FunctionArg, FunctionArgExpr,
    FunctionArgumentClause, FunctionArguments, GroupByExpr, Ident, LimitClause, ObjectNamePart,
    OrderByKind, Query, Select, SelectItem, SetExpr, SetOperator, SetQuantifier, Statement, Value,
    VisitMut, VisitorMut,
};
use datafusion::sql::sqlparser::dialect::{
    Dialect, MySqlDialect, PostgreSqlDialect, SQLiteDialect,
};
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

use super::CombineError;
use crate::sql::{ParamValue, Params};

/// What the final step needs of a query.
#[derive(Debug, Clone, PartialEq)]
pub enum Rewrite {
    /// Every shard's rows, concatenated, are the answer.
    Stream,
    /// Shards run a partial step; the final step combines.
    Combine(Box<Split>),
}

/// A query split into the shards' part and the final step.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    pub strategy: Strategy,
    /// The row query: a plain SELECT over the user's FROM and WHERE, with `:name`
    /// parameters where the query had them.
    pub rows: String,
    /// The partial step over the row query (named `tributary_rows`).
    pub partial: Partial,
    /// The final step, over the table `shards`.
    pub finish: Finish,
    /// Why this strategy, in words, for `tributary plan`.
    pub why: String,
    /// The SQL of each `tributary_*` row query column, by name, for messages.
    pub row_sql: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Partial aggregates per group on each shard, combined by the final step.
    Aggregate,
    /// Rows sorted, deduplicated or cut on each shard, and again by the final step.
    Rows,
}

/// The SQL a shard runs over its row query.
#[derive(Debug, Clone, PartialEq)]
pub struct Partial {
    /// Output columns; `None`: every column of the row query (`*`).
    pub columns: Option<Vec<PartialColumn>>,
    pub group_by: Vec<String>,
    pub order_by: Vec<SortKey>,
    pub limit: Option<u64>,
}

/// A column of the partial step: `expr AS name`, where `expr` may be an aggregate whose
/// type depends on its input's (see `types`).
#[derive(Debug, Clone, PartialEq)]
pub struct PartialColumn {
    pub name: String,
    pub expr: PartialExpr,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PartialExpr {
    /// A row query column, passed through (a group key).
    Column(String),
    /// `func(arg) FILTER (WHERE filter)` over row query columns.
    Aggregate {
        func: PartialFn,
        /// Row query column holding the argument; `None`: `count(*)`.
        arg: Option<String>,
        filter: Option<String>,
    },
}

/// The aggregate a shard computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartialFn {
    Count,
    Sum,
    /// Sum of the argument's squares, for variances.
    SumSquares,
    Min,
    Max,
    BoolAnd,
    BoolOr,
    BitAnd,
    BitOr,
    BitXor,
}

/// One ORDER BY item over output columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortKey {
    /// SQL of the key (a column name on the shard; an expression in the final step).
    pub expr: String,
    pub desc: bool,
    pub nulls_first: bool,
}

impl SortKey {
    pub fn sql(&self) -> String {
        format!(
            "{} {} NULLS {}",
            self.expr,
            if self.desc { "DESC" } else { "ASC" },
            if self.nulls_first { "FIRST" } else { "LAST" }
        )
    }

    /// [`SortKey::sql`] in MySQL's SQL, which has no NULLS FIRST or LAST and sorts NULLs
    /// as smaller than any value: where that is not the order asked for, the key's
    /// nullness sorts first (`x IS NULL DESC` puts NULLs first). Left plain otherwise, so
    /// that an index on the key can serve an ORDER BY with LIMIT.
    pub fn mysql_sql(&self) -> String {
        let order = if self.desc { "DESC" } else { "ASC" };
        if self.nulls_first != self.desc {
            return format!("{} {order}", self.expr);
        }
        format!(
            "{} IS NULL {}, {} {order}",
            self.expr,
            if self.nulls_first { "DESC" } else { "ASC" },
            self.expr
        )
    }
}

/// The final step over `shards`, whose types are known only once the shards are
/// described: the columns' SQL is completed by `types`.
#[derive(Debug, Clone, PartialEq)]
pub struct Finish {
    /// The output columns, in order: the name the user sees, and the SQL over `shards`.
    /// `None`: every column of `shards` but the `hidden` ones.
    pub columns: Option<Vec<FinalColumn>>,
    pub distinct: bool,
    pub group_by: Vec<String>,
    pub having: Option<FinalExpr>,
    pub order_by: Vec<(FinalExpr, SortKey)>,
    pub limit: Option<String>,
    pub offset: Option<String>,
    /// Columns of `shards` the shards add only for the final step (sort keys).
    pub hidden: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FinalColumn {
    pub name: String,
    pub expr: FinalExpr,
}

/// SQL over `shards` in which each combined aggregate is a `{agg:N}` hole, filled once
/// the partial columns' types are known ([`Combined`]).
#[derive(Debug, Clone, PartialEq)]
pub struct FinalExpr {
    pub template: String,
    /// The aggregates whose holes the template holds, by index.
    pub aggregates: Vec<Combined>,
}

/// How the final step combines one aggregate of the query.
#[derive(Debug, Clone, PartialEq)]
pub struct Combined {
    pub func: FinalFn,
    /// Partial columns it reads.
    pub partials: Vec<String>,
    /// `DISTINCT` aggregates read the row query's argument column, grouped on it by the
    /// shards, and this filter column.
    pub filter: Option<String>,
    /// The row query column of the argument (its type decides the result's).
    pub arg: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinalFn {
    /// sum of partial counts.
    Count,
    Sum,
    Min,
    Max,
    /// `sum / count`.
    Avg,
    BoolAnd,
    BoolOr,
    BitAnd,
    BitOr,
    BitXor,
    /// From count, sum and sum of squares.
    Variance {
        sample: bool,
        root: bool,
    },
    CountDistinct,
    SumDistinct,
    AvgDistinct,
}

/// Parses `sql` and splits it. `all_sqlite`: every shard is SQLite (its dialect parses).
/// `input_columns`: the row query of an aggregate also returns every input column
/// (`*`), for partitions that filter on a column of the input.
pub fn rewrite(
    sql: &str,
    params: &Params,
    all_sqlite: bool,
    input_columns: bool,
) -> Result<Rewrite, CombineError> {
    let dialect: &dyn Dialect = if all_sqlite {
        &SQLiteDialect {}
    } else {
        &PostgreSqlDialect {}
    };
    rewrite_in(dialect, sql, params, input_columns, false)
}

/// [`rewrite`] for a fleet with MySQL shards, whose queries are MySQL's (backquoted
/// names, `LIMIT a, b`), answered as MySQL would: NULLs sort before every value, and
/// output columns are named as written (`Total`, `SUM(amount)`).
pub fn rewrite_mysql(
    sql: &str,
    params: &Params,
    input_columns: bool,
) -> Result<Rewrite, CombineError> {
    rewrite_in(&MySqlDialect {}, sql, params, input_columns, true)
}

/// Splits `sql`, read in `dialect`; a query that [`certainly_streams`] is not parsed.
fn rewrite_in(
    dialect: &dyn Dialect,
    sql: &str,
    params: &Params,
    input_columns: bool,
    mysql: bool,
) -> Result<Rewrite, CombineError> {
    if certainly_streams(dialect, sql) {
        return Ok(Rewrite::Stream);
    }
    rewrite_statements(parse(dialect, sql)?, params, input_columns, mysql)
}

/// The keywords of everything that can make a query need combining, or be refused: the
/// clauses that group, deduplicate, sort, cut or combine rows, windows, and `INTO`.
const COMBINING_KEYWORDS: &[Keyword] = &[
    Keyword::GROUP,
    Keyword::HAVING,
    Keyword::DISTINCT,
    Keyword::DISTINCTROW,
    Keyword::ORDER,
    Keyword::LIMIT,
    Keyword::OFFSET,
    Keyword::FETCH,
    Keyword::TOP,
    Keyword::UNION,
    Keyword::INTERSECT,
    Keyword::EXCEPT,
    Keyword::MINUS,
    Keyword::OVER,
    Keyword::WINDOW,
    Keyword::QUALIFY,
    Keyword::INTO,
];

/// Keywords that a parenthesis may follow without making a function call: `a AND (b OR
/// c)`, `id IN (1, 2)`, `WITH x AS (...)`.
const NOT_CALLS: &[Keyword] = &[
    Keyword::AND,
    Keyword::OR,
    Keyword::NOT,
    Keyword::IN,
    Keyword::ON,
    Keyword::AS,
    Keyword::WITH,
    Keyword::MATERIALIZED,
    Keyword::SELECT,
    Keyword::FROM,
    Keyword::JOIN,
    Keyword::WHERE,
    Keyword::WHEN,
    Keyword::THEN,
    Keyword::ELSE,
    Keyword::IS,
    Keyword::BETWEEN,
    Keyword::EXISTS,
    Keyword::USING,
];

/// Whether `sql` streams without a look at its syntax tree: none of its tokens (outside
/// literals, quoted names and comments) is one of [`COMBINING_KEYWORDS`], and no
/// parenthesis follows a name (a function call, which might be an aggregate; a type's
/// precision counts too). Such a query is not parsed, so a plain export does not run the
/// parser, whose code is megabytes of the executable's resident pages
/// (docs/performance.md). Anything else is parsed and decided by [`rewrite_statements`],
/// as is a query that does not tokenize.
fn certainly_streams(dialect: &dyn Dialect, sql: &str) -> bool {
    let Ok(tokens) = Tokenizer::new(dialect, sql).tokenize() else {
        return false;
    };
    let mut after_name = false;
    for token in tokens {
        match token {
            Token::Whitespace(_) => continue,
            Token::Word(word) => {
                let keyword = word.quote_style.is_none().then_some(word.keyword);
                if keyword.is_some_and(|k| COMBINING_KEYWORDS.contains(&k)) {
                    return false;
                }
                after_name = !keyword.is_some_and(|k| NOT_CALLS.contains(&k));
                continue;
            }
            Token::LParen if after_name => return false,
            _ => {}
        }
        after_name = false;
    }
    true
}

fn rewrite_statements(
    statements: Vec<Statement>,
    params: &Params,
    input_columns: bool,
    mysql: bool,
) -> Result<Rewrite, CombineError> {
    let [Statement::Query(query)] = statements.as_slice() else {
        return Ok(Rewrite::Stream);
    };
    let query = query.as_ref();
    let cut = Cut::of(query, params, mysql)?;
    match query.body.as_ref() {
        SetExpr::Select(select) => select_rewrite(query, select, cut, params, input_columns),
        SetExpr::SetOperation {
            op, set_quantifier, ..
        } => {
            let distinct = *op == SetOperator::Union
                && !matches!(
                    set_quantifier,
                    SetQuantifier::All | SetQuantifier::AllByName
                );
            if !distinct && cut.is_empty() {
                return Ok(Rewrite::Stream);
            }
            if !matches!(op, SetOperator::Union) {
                return Err(CombineError::refused(
                    format!("{op} over the shards' rows"),
                    "a row may be on one shard and its match on another",
                ));
            }
            set_rewrite(query, distinct, cut, params)
        }
        _ => Ok(Rewrite::Stream),
    }
}

fn parse(dialect: &dyn Dialect, sql: &str) -> Result<Vec<Statement>, CombineError> {
    Parser::parse_sql(dialect, sql).map_err(|e| CombineError::Parse(e.to_string()))
}

/// ORDER BY, LIMIT and OFFSET of the top-level query.
#[derive(Debug, Default)]
struct Cut {
    order: Vec<(Expr, bool, bool)>,
    limit: Option<Expr>,
    offset: Option<Expr>,
    /// The query is MySQL's: its NULLs sort first, its columns are named as written.
    mysql: bool,
}

impl Cut {
    fn of(query: &Query, params: &Params, mysql: bool) -> Result<Cut, CombineError> {
        let _ = params;
        let mut cut = Cut {
            mysql,
            ..Cut::default()
        };
        if let Some(order) = &query.order_by {
            let OrderByKind::Expressions(items) = &order.kind else {
                return Err(CombineError::refused("ORDER BY ALL", "name the sort keys"));
            };
            for item in items {
                if item.with_fill.is_some() {
                    return Err(CombineError::refused(
                        "ORDER BY ... WITH FILL",
                        "not PostgreSQL",
                    ));
                }
                let desc = item.options.asc == Some(false);
                // PostgreSQL's default: NULLs sort as larger than any value; MySQL's:
                // smaller.
                let nulls_first = item.options.nulls_first.unwrap_or(desc != mysql);
                cut.order.push((item.expr.clone(), desc, nulls_first));
            }
        }
        match &query.limit_clause {
            None => {}
            Some(LimitClause::LimitOffset {
                limit,
                offset,
                limit_by,
            }) => {
                if !limit_by.is_empty() {
                    return Err(CombineError::refused("LIMIT BY", "not PostgreSQL"));
                }
                cut.limit = limit.clone();
                cut.offset = offset.as_ref().map(|o| o.value.clone());
            }
            Some(LimitClause::OffsetCommaLimit { offset, limit }) => {
                cut.limit = Some(limit.clone());
                cut.offset = Some(offset.clone());
            }
        }
        if let Some(fetch) = &query.fetch {
            if fetch.with_ties || fetch.percent {
                return Err(CombineError::refused(
                    "FETCH ... WITH TIES or PERCENT",
                    "the final step cannot know the ties or the total beforehand",
                ));
            }
            cut.limit = Some(
                fetch
                    .quantity
                    .clone()
                    .unwrap_or_else(|| Expr::value(Value::Number("1".into(), false))),
            );
        }
        Ok(cut)
    }

    fn is_empty(&self) -> bool {
        self.order.is_empty() && self.limit.is_none() && self.offset.is_none()
    }

    /// `LIMIT n + m` for the shards, when both are known numbers (a parameter counts).
    fn shard_limit(&self, params: &Params) -> Option<u64> {
        let n = constant(self.limit.as_ref()?, params)?;
        let m = match &self.offset {
            Some(offset) => constant(offset, params)?,
            None => 0,
        };
        n.checked_add(m)
    }

    fn final_limit(
        &self,
        params: &Params,
    ) -> Result<(Option<String>, Option<String>), CombineError> {
        let render = |e: &Option<Expr>| -> Result<Option<String>, CombineError> {
            e.as_ref()
                .map(|e| {
                    let mut e = e.clone();
                    inline_params(&mut e, params)?;
                    Ok(e.to_string())
                })
                .transpose()
        };
        Ok((render(&self.limit)?, render(&self.offset)?))
    }
}

/// A non-negative integer literal or parameter.
fn constant(e: &Expr, params: &Params) -> Option<u64> {
    match e {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => n.parse().ok(),
            Value::Placeholder(p) => match params.get(p.strip_prefix(':')?)? {
                ParamValue::Int(i) => u64::try_from(*i).ok(),
                ParamValue::Text(t) => t.trim().parse().ok(),
                _ => None,
            },
            _ => None,
        },
        Expr::Nested(e) => constant(e, params),
        _ => None,
    }
}

/// The name PostgreSQL gives an output column without an alias (its `FigureColname`).
fn column_name(expr: &Expr) -> String {
    match expr {
        Expr::Identifier(i) => ident_name(i),
        Expr::CompoundIdentifier(parts) => parts.last().map(ident_name).unwrap_or_default(),
        Expr::Function(f) => match f.name.0.last() {
            Some(ObjectNamePart::Identifier(i)) => ident_name(i),
            _ => "?column?".into(),
        },
        Expr::Cast { expr, .. } | Expr::Nested(expr) => column_name(expr),
        Expr::Case { .. } => "case".into(),
        Expr::Extract { .. } => "extract".into(),
        Expr::Ceil { .. } => "ceil".into(),
        Expr::Floor { .. } => "floor".into(),
        Expr::Substring { .. } => "substring".into(),
        Expr::Position { .. } => "position".into(),
        Expr::Exists { .. } => "exists".into(),
        _ => "?column?".into(),
    }
}

/// The name MySQL gives an output column: its alias, or the column's name, or the
/// expression as written.
fn mysql_column_name(item: &SelectItem) -> String {
    match item {
        SelectItem::ExprWithAlias { alias, .. } => alias.value.clone(),
        SelectItem::UnnamedExpr(Expr::Identifier(i)) => i.value.clone(),
        SelectItem::UnnamedExpr(Expr::CompoundIdentifier(parts)) => {
            parts.last().map(|i| i.value.clone()).unwrap_or_default()
        }
        other => other.to_string(),
    }
}

/// An identifier as PostgreSQL names it: unquoted ones folded to lower case.
fn ident_name(i: &Ident) -> String {
    match i.quote_style {
        Some(_) => i.value.clone(),
        None => i.value.to_lowercase(),
    }
}

fn select_rewrite(
    query: &Query,
    select: &Select,
    cut: Cut,
    params: &Params,
    input_columns: bool,
) -> Result<Rewrite, CombineError> {
    check_select(select)?;
    let found = find_aggregates(select, &cut)?;
    let grouped = !found.is_empty()
        || !matches!(&select.group_by, GroupByExpr::Expressions(e, _) if e.is_empty())
        || select.having.is_some();
    let distinct = matches!(select.distinct, Some(Distinct::Distinct));
    if grouped {
        return AggregateSplit::new(query, select, params, cut.mysql)?.finish(
            found,
            cut,
            distinct,
            input_columns,
        );
    }
    if !distinct && cut.is_empty() {
        return Ok(Rewrite::Stream);
    }
    rows_rewrite(query, select, cut, distinct, params)
}

/// What a split cannot carry over to the shards or the final step.
fn check_select(select: &Select) -> Result<(), CombineError> {
    if let Some(Distinct::On(_)) = &select.distinct {
        return Err(CombineError::refused(
            "DISTINCT ON",
            "the first row of each group depends on rows of every shard",
        ));
    }
    if select.into.is_some() {
        return Err(CombineError::refused("SELECT INTO", "tributary only reads"));
    }
    if !select.named_window.is_empty() || select.qualify.is_some() {
        return Err(CombineError::refused(
            "a WINDOW or QUALIFY clause",
            "window functions see only one shard's rows",
        ));
    }
    match &select.group_by {
        GroupByExpr::All(_) => Err(CombineError::refused("GROUP BY ALL", "name the keys")),
        GroupByExpr::Expressions(exprs, modifiers) => {
            if !modifiers.is_empty()
                || exprs
                    .iter()
                    .any(|e| matches!(e, Expr::Rollup(_) | Expr::Cube(_) | Expr::GroupingSets(_)))
            {
                return Err(CombineError::refused(
                    "GROUPING SETS, ROLLUP or CUBE",
                    "not split by tributary yet",
                ));
            }
            Ok(())
        }
    }
}

/// The aggregate function calls of the top-level query (projection, HAVING, ORDER BY),
/// not those inside subqueries; a window function or an aggregate that cannot be split
/// is an error.
fn find_aggregates(select: &Select, cut: &Cut) -> Result<Vec<Function>, CombineError> {
    struct Finder {
        depth: usize,
        found: Vec<Function>,
        error: Option<CombineError>,
        mysql: bool,
    }
    impl VisitorMut for Finder {
        type Break = ();
        fn pre_visit_query(&mut self, _: &mut Query) -> ControlFlow<()> {
            self.depth += 1;
            ControlFlow::Continue(())
        }
        fn post_visit_query(&mut self, _: &mut Query) -> ControlFlow<()> {
            self.depth -= 1;
            ControlFlow::Continue(())
        }
        fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
            if self.depth > 0 {
                return ControlFlow::Continue(());
            }
            let Expr::Function(f) = expr else {
                return ControlFlow::Continue(());
            };
            if f.over.is_some() {
                self.error = Some(CombineError::refused(
                    format!("the window function `{f}`"),
                    "a window over the result needs every shard's rows",
                ));
                return ControlFlow::Break(());
            }
            match classify(f, self.mysql) {
                Ok(Some(_)) => {
                    if !self.found.contains(f) {
                        self.found.push(f.clone());
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    self.error = Some(e);
                    return ControlFlow::Break(());
                }
            }
            ControlFlow::Continue(())
        }
    }
    let mut finder = Finder {
        depth: 0,
        found: Vec::new(),
        error: None,
        mysql: cut.mysql,
    };
    let mut exprs: Vec<Expr> = select
        .projection
        .iter()
        .filter_map(|item| match item {
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                Some(e.clone())
            }
            _ => None,
        })
        .collect();
    exprs.extend(select.having.clone());
    exprs.extend(cut.order.iter().map(|(e, _, _)| e.clone()));
    for e in &mut exprs {
        let _ = e.visit(&mut finder);
        if let Some(error) = finder.error.take() {
            return Err(error);
        }
    }
    Ok(finder.found)
}

/// An aggregate tributary splits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Aggregate {
    Count,
    Sum,
    Min,
    Max,
    Avg,
    BoolAnd,
    BoolOr,
    BitAnd,
    BitOr,
    BitXor,
    Variance { sample: bool, root: bool },
}

/// Aggregates that exist and cannot be split: refused by name.
const UNSPLITTABLE: &[&str] = &[
    "array_agg",
    "string_agg",
    "group_concat",
    "json_arrayagg",
    "json_objectagg",
    "json_agg",
    "jsonb_agg",
    "json_object_agg",
    "jsonb_object_agg",
    "json_group_array",
    "json_group_object",
    "xmlagg",
    "percentile_cont",
    "percentile_disc",
    "mode",
    "corr",
    "covar_pop",
    "covar_samp",
    "regr_avgx",
    "regr_avgy",
    "regr_count",
    "regr_intercept",
    "regr_r2",
    "regr_slope",
    "regr_sxx",
    "regr_sxy",
    "regr_syy",
    "range_agg",
    "range_intersect_agg",
    "any_value",
    "median",
    "total",
];

/// Whether `f` is an aggregate call, and which; an aggregate that cannot be split is an
/// error naming it. In MySQL's dialect (`mysql`), `std`, `stddev` and `variance` are the
/// population's, as MySQL computes them.
fn classify(f: &Function, mysql: bool) -> Result<Option<Aggregate>, CombineError> {
    let name = match f.name.0.as_slice() {
        [ObjectNamePart::Identifier(i)] => i.value.to_lowercase(),
        [
            ObjectNamePart::Identifier(schema),
            ObjectNamePart::Identifier(i),
        ] if schema.value.eq_ignore_ascii_case("pg_catalog") => i.value.to_lowercase(),
        _ => return Ok(None),
    };
    let args = match &f.args {
        FunctionArguments::List(list) => list.args.len(),
        _ => 0,
    };
    if !f.within_group.is_empty() {
        return Err(CombineError::refused(
            format!("the ordered-set aggregate `{f}`"),
            "its result depends on every shard's rows in order",
        ));
    }
    let aggregate = match name.as_str() {
        "count" => Aggregate::Count,
        "sum" => Aggregate::Sum,
        // SQLite's min and max of several arguments are scalar functions.
        "min" if args == 1 => Aggregate::Min,
        "max" if args == 1 => Aggregate::Max,
        "avg" => Aggregate::Avg,
        "bool_and" | "every" => Aggregate::BoolAnd,
        "bool_or" => Aggregate::BoolOr,
        "bit_and" => Aggregate::BitAnd,
        "bit_or" => Aggregate::BitOr,
        "bit_xor" => Aggregate::BitXor,
        "std" | "stddev" | "variance" if mysql => Aggregate::Variance {
            sample: false,
            root: name != "variance",
        },
        "stddev" | "stddev_samp" => Aggregate::Variance {
            sample: true,
            root: true,
        },
        "stddev_pop" => Aggregate::Variance {
            sample: false,
            root: true,
        },
        "variance" | "var_samp" => Aggregate::Variance {
            sample: true,
            root: false,
        },
        "var_pop" => Aggregate::Variance {
            sample: false,
            root: false,
        },
        n if UNSPLITTABLE.contains(&n) => {
            return Err(CombineError::refused(
                format!("the aggregate `{f}`"),
                "its partial results do not combine exactly",
            ));
        }
        _ => return Ok(None),
    };
    if let FunctionArguments::List(list) = &f.args
        && list
            .clauses
            .iter()
            .any(|c| !matches!(c, FunctionArgumentClause::IgnoreOrRespectNulls(_)))
    {
        return Err(CombineError::refused(
            format!("the aggregate `{f}`"),
            "an ORDER BY or LIMIT inside an aggregate needs every shard's rows in order",
        ));
    }
    Ok(Some(aggregate))
}

/// The argument of a one-argument aggregate (`None` for `count(*)`), and whether it is
/// `DISTINCT`.
fn aggregate_arg(f: &Function) -> Result<(Option<Expr>, bool), CombineError> {
    let FunctionArguments::List(list) = &f.args else {
        return Err(CombineError::refused(
            format!("`{f}`"),
            "one argument expected",
        ));
    };
    let distinct = matches!(list.duplicate_treatment, Some(DuplicateTreatment::Distinct));
    match list.args.as_slice() {
        [FunctionArg::Unnamed(FunctionArgExpr::Wildcard)] if !distinct => Ok((None, false)),
        [FunctionArg::Unnamed(FunctionArgExpr::Expr(e))] => Ok((Some(e.clone()), distinct)),
        _ => Err(CombineError::refused(
            format!("`{f}`"),
            "tributary splits aggregates of one argument",
        )),
    }
}

/// The query's WITH, FROM and WHERE (and the DISTINCT keyword) around `columns`: the
/// row query.
fn row_query(query: &Query, select: &Select, distinct: bool, columns: &[String]) -> String {
    let mut sql = String::new();
    if let Some(with) = &query.with {
        let _ = write!(sql, "{with} ");
    }
    sql.push_str("SELECT ");
    if distinct {
        sql.push_str("DISTINCT ");
    }
    sql.push_str(&columns.join(", "));
    if !select.from.is_empty() {
        let from: Vec<String> = select.from.iter().map(|t| t.to_string()).collect();
        let _ = write!(sql, " FROM {}", from.join(", "));
    }
    if let Some(selection) = &select.selection {
        let _ = write!(sql, " WHERE {selection}");
    }
    sql
}

/// The user's projection with aliases resolved: (expression, alias) per item; `None`
/// for a wildcard.
fn projection(select: &Select) -> Vec<Option<(Expr, Option<String>)>> {
    select
        .projection
        .iter()
        .map(|item| match item {
            SelectItem::UnnamedExpr(e) => Some((e.clone(), None)),
            SelectItem::ExprWithAlias { expr, alias } => {
                Some((expr.clone(), Some(ident_name(alias))))
            }
            _ => None,
        })
        .collect()
}

/// The projection item an ORDER BY or GROUP BY item names: an ordinal, or an output
/// alias (`prefer_alias`: PostgreSQL's ORDER BY rule; GROUP BY prefers input columns,
/// which tributary cannot see, so an alias counts there only when it is no input name
/// the projection uses itself).
fn named_item(
    e: &Expr,
    items: &[Option<(Expr, Option<String>)>],
) -> Result<Option<usize>, CombineError> {
    if let Expr::Value(v) = e
        && let Value::Number(n, _) = &v.value
    {
        let index: usize = n
            .parse()
            .ok()
            .filter(|i| (1..=items.len()).contains(i))
            .ok_or_else(|| {
                CombineError::refused(format!("position {n}"), "out of the select list's range")
            })?;
        if items[..index].iter().any(Option::is_none) {
            return Err(CombineError::refused(
                format!("position {n} after a `*`"),
                "name the column instead",
            ));
        }
        return Ok(Some(index - 1));
    }
    if let Expr::Identifier(i) = e {
        let name = ident_name(i);
        return Ok(items.iter().position(|item| {
            matches!(item, Some((expr, Some(alias))) if *alias == name && !matches!(expr, Expr::Identifier(_)))
        }));
    }
    Ok(None)
}

/// Replaces `:name` parameters by literals (the final step runs in DataFusion).
fn inline_params(expr: &mut Expr, params: &Params) -> Result<(), CombineError> {
    let mut missing = None;
    let _ = datafusion::sql::sqlparser::ast::visit_expressions_mut(expr, |e| {
        if let Expr::Value(v) = e
            && let Value::Placeholder(p) = &v.value
            && let Some(name) = p.strip_prefix(':')
        {
            match params.get(name) {
                Some(value) => *e = literal(value),
                None => {
                    missing = Some(name.to_string());
                    return ControlFlow::Break(());
                }
            }
        }
        ControlFlow::Continue(())
    });
    match missing {
        Some(name) => Err(CombineError::Param(name)),
        None => Ok(()),
    }
}

/// A parameter's value as a literal of the final step: numbers as numbers (a command-line
/// value that reads as one too, as PostgreSQL would coerce it), text quoted.
fn literal(value: &ParamValue) -> Expr {
    let number = |n: String| Expr::value(Value::Number(n, false));
    match value {
        ParamValue::Int(i) => number(i.to_string()),
        ParamValue::Float(f) => number(f.to_string()),
        ParamValue::Bool(b) => Expr::value(Value::Boolean(*b)),
        ParamValue::Text(t) => {
            let trimmed = t.trim();
            let numeric = !trimmed.is_empty()
                && trimmed.parse::<f64>().is_ok()
                && trimmed
                    .chars()
                    .all(|c| c.is_ascii_digit() || "+-.eE".contains(c));
            if numeric {
                number(trimmed.to_string())
            } else {
                // As bytes cast to text: whatever the value holds, no quote or `$` of
                // it can end the literal for the final step's parser.
                let hex: String = t.bytes().map(|b| format!("{b:02X}")).collect();
                Parser::new(&PostgreSqlDialect {})
                    .try_with_sql(&format!("CAST(X'{hex}' AS VARCHAR)"))
                    .and_then(|mut p| p.parse_expr())
                    .expect("a hex literal parses")
            }
        }
    }
}

/// ORDER BY on the shards and in the final step of a split without aggregates: each key
/// becomes a hidden column of the row query, so that the final step can sort by it.
fn rows_rewrite(
    query: &Query,
    select: &Select,
    cut: Cut,
    distinct: bool,
    params: &Params,
) -> Result<Rewrite, CombineError> {
    let items = projection(select);
    let mut columns: Vec<String> = select.projection.iter().map(|i| i.to_string()).collect();
    let mut hidden = Vec::new();
    let mut order_by = Vec::new();
    for (i, (expr, desc, nulls_first)) in cut.order.iter().enumerate() {
        let expr = match named_item(expr, &items)? {
            Some(index) => items[index].as_ref().expect("checked").0.clone(),
            None => expr.clone(),
        };
        let name = format!("tributary_s{i}");
        columns.push(format!("{expr} AS {name}"));
        hidden.push(name.clone());
        order_by.push(SortKey {
            expr: name,
            desc: *desc,
            nulls_first: *nulls_first,
        });
    }
    let limit = cut.shard_limit(params);
    let mut why = Vec::new();
    if distinct {
        why.push(
            "DISTINCT: each shard deduplicates its rows, the final step deduplicates them all",
        );
    }
    if !order_by.is_empty() {
        why.push("ORDER BY: each shard sorts its rows, the final step merges the sorted rows (it sorts them again after a text key)");
    }
    if cut.limit.is_some() || cut.offset.is_some() {
        why.push(if limit.is_some() {
            "LIMIT/OFFSET: each shard returns its first LIMIT + OFFSET rows, the final step cuts them all"
        } else {
            "LIMIT/OFFSET: the final step cuts the rows of every shard"
        });
    }
    rows_split(
        row_query(query, select, distinct, &columns),
        distinct,
        order_by,
        cut,
        params,
        hidden,
        why.join("; "),
    )
}

/// A split of rows (no aggregate): each shard sorts, deduplicates and cuts (`LIMIT
/// n + m`), the final step does the same over all of them.
fn rows_split(
    rows: String,
    distinct: bool,
    order_by: Vec<SortKey>,
    cut: Cut,
    params: &Params,
    hidden: Vec<String>,
    why: String,
) -> Result<Rewrite, CombineError> {
    let (limit, offset) = cut.final_limit(params)?;
    Ok(Rewrite::Combine(Box::new(Split {
        strategy: Strategy::Rows,
        rows,
        partial: Partial {
            columns: None,
            group_by: Vec::new(),
            order_by: order_by.clone(),
            limit: cut.shard_limit(params),
        },
        finish: Finish {
            columns: None,
            distinct,
            group_by: Vec::new(),
            having: None,
            order_by: order_by
                .into_iter()
                .map(|k| {
                    let expr = FinalExpr {
                        template: k.expr.clone(),
                        aggregates: Vec::new(),
                    };
                    (expr, k)
                })
                .collect(),
            limit,
            offset,
            hidden,
        },
        why,
        row_sql: Default::default(),
    })))
}

/// A UNION (or a set operation cut by ORDER BY/LIMIT): the shards run it whole and cut
/// it; the final step deduplicates (UNION), sorts and cuts. Its ORDER BY names output
/// columns, as SQL requires of a set operation.
fn set_rewrite(
    query: &Query,
    distinct: bool,
    cut: Cut,
    params: &Params,
) -> Result<Rewrite, CombineError> {
    let mut order_by = Vec::new();
    for (expr, desc, nulls_first) in &cut.order {
        if !matches!(expr, Expr::Identifier(_) | Expr::Value(_)) {
            return Err(CombineError::refused(
                format!("ORDER BY {expr} over a set operation"),
                "name an output column",
            ));
        }
        order_by.push(SortKey {
            expr: expr.to_string(),
            desc: *desc,
            nulls_first: *nulls_first,
        });
    }
    let mut rows = String::new();
    if let Some(with) = &query.with {
        let _ = write!(rows, "{with} ");
    }
    let _ = write!(rows, "{}", query.body);
    let why = if distinct {
        "UNION: each shard runs it, the final step deduplicates the rows of all"
    } else {
        "a set operation cut by ORDER BY/LIMIT: each shard cuts its rows, the final step cuts them all"
    };
    rows_split(
        rows,
        distinct,
        order_by,
        cut,
        params,
        Vec::new(),
        why.into(),
    )
}

/// The aggregate split being built: the row query's columns and the partial step's.
struct AggregateSplit<'a> {
    /// The query is MySQL's (see [`classify`]).
    mysql: bool,
    query: &'a Query,
    select: &'a Select,
    params: &'a Params,
    items: Vec<Option<(Expr, Option<String>)>>,
    /// GROUP BY keys, as the row query's `tributary_k{i}`.
    keys: Vec<Expr>,
    /// Row query columns: (SQL, name).
    row_columns: Vec<(String, String)>,
    /// Extra group columns of the partial step (DISTINCT aggregates' arguments and
    /// filters).
    distinct_columns: Vec<String>,
    partials: Vec<PartialColumn>,
    combined: Vec<(Function, Combined)>,
}

impl<'a> AggregateSplit<'a> {
    fn new(
        query: &'a Query,
        select: &'a Select,
        params: &'a Params,
        mysql: bool,
    ) -> Result<AggregateSplit<'a>, CombineError> {
        if select.projection.iter().any(|i| {
            !matches!(
                i,
                SelectItem::UnnamedExpr(_) | SelectItem::ExprWithAlias { .. }
            )
        }) {
            return Err(CombineError::refused(
                "`*` in an aggregate query",
                "name the columns",
            ));
        }
        let items = projection(select);
        let mut split = AggregateSplit {
            mysql,
            query,
            select,
            params,
            items,
            keys: Vec::new(),
            row_columns: Vec::new(),
            distinct_columns: Vec::new(),
            partials: Vec::new(),
            combined: Vec::new(),
        };
        if let GroupByExpr::Expressions(exprs, _) = &select.group_by {
            for e in exprs {
                let key = match named_item(e, &split.items)? {
                    Some(index) => split.items[index].as_ref().expect("checked").0.clone(),
                    None => e.clone(),
                };
                if !split.keys.iter().any(|k| k.to_string() == key.to_string()) {
                    let name = format!("tributary_k{}", split.keys.len());
                    split.row_columns.push((key.to_string(), name));
                    split.keys.push(key);
                }
            }
        }
        Ok(split)
    }

    /// A row query column computing `expr` (the same expression is one column).
    fn row_column(&mut self, expr: &Expr, prefix: &str) -> String {
        let sql = expr.to_string();
        if let Some((_, name)) = self
            .row_columns
            .iter()
            .find(|(s, n)| *s == sql && n.starts_with(prefix))
        {
            return name.clone();
        }
        let name = format!("{prefix}{}", self.row_columns.len());
        self.row_columns.push((sql, name.clone()));
        name
    }

    fn partial(
        &mut self,
        func: PartialFn,
        arg: Option<&String>,
        filter: Option<&String>,
    ) -> String {
        let expr = PartialExpr::Aggregate {
            func,
            arg: arg.cloned(),
            filter: filter.cloned(),
        };
        if let Some(c) = self.partials.iter().find(|c| c.expr == expr) {
            return c.name.clone();
        }
        let name = format!("tributary_p{}", self.partials.len());
        self.partials.push(PartialColumn {
            name: name.clone(),
            expr,
        });
        name
    }

    /// Splits one aggregate call into partial columns and its final combination.
    fn add(&mut self, f: &Function) -> Result<(), CombineError> {
        let aggregate = classify(f, self.mysql)?.expect("found as an aggregate");
        let (arg, distinct) = aggregate_arg(f)?;
        let filter = f.filter.as_deref();
        if distinct {
            let arg = arg.expect("DISTINCT has an argument");
            let column = self.row_column(&arg, "tributary_d");
            // A flag column the final step reads: an integer, which every source types
            // alike (SQLite has no boolean).
            let filter = filter.map(|c| {
                let flag: Expr = Parser::new(&PostgreSqlDialect {})
                    .try_with_sql(&format!("CASE WHEN {c} THEN 1 ELSE 0 END"))
                    .and_then(|mut p| p.parse_expr())
                    .expect("a CASE over a parsed condition parses");
                self.row_column(&flag, "tributary_g")
            });
            for c in std::iter::once(&column).chain(filter.as_ref()) {
                if !self.distinct_columns.contains(c) {
                    self.distinct_columns.push(c.clone());
                }
            }
            let func = match aggregate {
                Aggregate::Count => FinalFn::CountDistinct,
                Aggregate::Sum => FinalFn::SumDistinct,
                Aggregate::Avg => FinalFn::AvgDistinct,
                Aggregate::Min => FinalFn::Min,
                Aggregate::Max => FinalFn::Max,
                Aggregate::BoolAnd => FinalFn::BoolAnd,
                Aggregate::BoolOr => FinalFn::BoolOr,
                Aggregate::BitAnd => FinalFn::BitAnd,
                Aggregate::BitOr => FinalFn::BitOr,
                Aggregate::BitXor | Aggregate::Variance { .. } => {
                    return Err(CombineError::refused(
                        format!("the aggregate `{f}`"),
                        "DISTINCT is split for count, sum, avg, min, max, bool_and, bool_or, bit_and and bit_or",
                    ));
                }
            };
            self.combined.push((
                f.clone(),
                Combined {
                    func,
                    partials: vec![column.clone()],
                    filter,
                    arg: Some(column),
                },
            ));
            return Ok(());
        }
        let arg = arg.map(|a| self.row_column(&a, "tributary_a"));
        let filter = filter.map(|c| self.row_column(c, "tributary_f"));
        let (arg, filter) = (arg.as_ref(), filter.as_ref());
        let (func, partials) = match aggregate {
            Aggregate::Count => (
                FinalFn::Count,
                vec![self.partial(PartialFn::Count, arg, filter)],
            ),
            Aggregate::Sum => (
                FinalFn::Sum,
                vec![self.partial(PartialFn::Sum, arg, filter)],
            ),
            Aggregate::Min => (
                FinalFn::Min,
                vec![self.partial(PartialFn::Min, arg, filter)],
            ),
            Aggregate::Max => (
                FinalFn::Max,
                vec![self.partial(PartialFn::Max, arg, filter)],
            ),
            Aggregate::BoolAnd => (
                FinalFn::BoolAnd,
                vec![self.partial(PartialFn::BoolAnd, arg, filter)],
            ),
            Aggregate::BoolOr => (
                FinalFn::BoolOr,
                vec![self.partial(PartialFn::BoolOr, arg, filter)],
            ),
            Aggregate::BitAnd => (
                FinalFn::BitAnd,
                vec![self.partial(PartialFn::BitAnd, arg, filter)],
            ),
            Aggregate::BitOr => (
                FinalFn::BitOr,
                vec![self.partial(PartialFn::BitOr, arg, filter)],
            ),
            Aggregate::BitXor => (
                FinalFn::BitXor,
                vec![self.partial(PartialFn::BitXor, arg, filter)],
            ),
            Aggregate::Avg => (
                FinalFn::Avg,
                vec![
                    self.partial(PartialFn::Sum, arg, filter),
                    self.partial(PartialFn::Count, arg, filter),
                ],
            ),
            Aggregate::Variance { sample, root } => (
                FinalFn::Variance { sample, root },
                vec![
                    self.partial(PartialFn::Count, arg, filter),
                    self.partial(PartialFn::Sum, arg, filter),
                    self.partial(PartialFn::SumSquares, arg, filter),
                ],
            ),
        };
        self.combined.push((
            f.clone(),
            Combined {
                func,
                partials,
                filter: None,
                arg: arg.cloned(),
            },
        ));
        Ok(())
    }

    /// `expr` over `shards`: keys become key columns, aggregates holes, parameters
    /// literals; a column that is neither a key nor inside an aggregate is an error.
    fn final_expr(&self, expr: &Expr) -> Result<FinalExpr, CombineError> {
        struct Rewriter<'s, 'a> {
            split: &'s AggregateSplit<'a>,
            depth: usize,
            used: Vec<Combined>,
            error: Option<CombineError>,
        }
        impl VisitorMut for Rewriter<'_, '_> {
            type Break = ();
            fn pre_visit_query(&mut self, _: &mut Query) -> ControlFlow<()> {
                self.depth += 1;
                self.error = Some(CombineError::refused(
                    "a subquery over the grouped result",
                    "the final step cannot reach the shards' tables",
                ));
                ControlFlow::Break(())
            }
            fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
                let sql = expr.to_string();
                if let Some(i) = self.split.keys.iter().position(|k| k.to_string() == sql) {
                    *expr = Expr::Identifier(Ident::new(format!("tributary_k{i}")));
                    return ControlFlow::Continue(());
                }
                match expr {
                    Expr::Function(f) => {
                        if let Some((_, combined)) =
                            self.split.combined.iter().find(|(g, _)| g == &*f)
                        {
                            let hole = self.used.len();
                            self.used.push(combined.clone());
                            *expr = Expr::Identifier(Ident::new(format!("tributary_hole_{hole}")));
                        }
                    }
                    Expr::Identifier(i) if i.value.starts_with("tributary_") => {}
                    Expr::Identifier(_) | Expr::CompoundIdentifier(_) => {
                        self.error = Some(CombineError::NotGrouped(sql));
                        return ControlFlow::Break(());
                    }
                    Expr::Value(v) => {
                        if let Value::Placeholder(p) = &v.value {
                            let name = p.trim_start_matches(':');
                            match self.split.params.get(name) {
                                Some(value) => *expr = literal(value),
                                None => {
                                    self.error = Some(CombineError::Param(name.to_string()));
                                    return ControlFlow::Break(());
                                }
                            }
                        }
                    }
                    _ => {}
                }
                ControlFlow::Continue(())
            }
        }
        let mut rewriter = Rewriter {
            split: self,
            depth: 0,
            used: Vec::new(),
            error: None,
        };
        let mut expr = expr.clone();
        let _ = expr.visit(&mut rewriter);
        if let Some(e) = rewriter.error {
            return Err(e);
        }
        // `/` as PostgreSQL divides decimals (DataFusion truncates them).
        let _ = datafusion::sql::sqlparser::ast::visit_expressions_mut(&mut expr, |e| {
            if let Expr::BinaryOp {
                left,
                op: BinaryOperator::Divide,
                right,
            } = e
            {
                let call = format!("{}({left}, {right})", super::udf::DIVIDE);
                *e = Parser::new(&PostgreSqlDialect {})
                    .try_with_sql(&call)
                    .and_then(|mut p| p.parse_expr())
                    .expect("a call of two parsed expressions parses");
            }
            ControlFlow::<()>::Continue(())
        });
        let mut template = expr.to_string();
        for i in 0..rewriter.used.len() {
            template = template.replace(&format!("tributary_hole_{i}"), &format!("{{agg:{i}}}"));
        }
        Ok(FinalExpr {
            template,
            aggregates: rewriter.used,
        })
    }

    fn finish(
        mut self,
        found: Vec<Function>,
        cut: Cut,
        distinct: bool,
        input_columns: bool,
    ) -> Result<Rewrite, CombineError> {
        for f in &found {
            self.add(f)?;
        }
        let mut columns = Vec::new();
        for (item, written) in self.items.iter().zip(&self.select.projection) {
            let (expr, alias) = item.as_ref().expect("no wildcard in an aggregate query");
            let name = match cut.mysql {
                true => mysql_column_name(written),
                false => alias.clone().unwrap_or_else(|| column_name(expr)),
            };
            columns.push(FinalColumn {
                name,
                expr: self.final_expr(expr)?,
            });
        }
        let having = self
            .select
            .having
            .as_ref()
            .map(|h| self.final_expr(h))
            .transpose()?;
        let order_by = self.final_order(&cut)?;
        let (limit, offset) = cut.final_limit(self.params)?;
        let mut row_columns: Vec<String> = self
            .row_columns
            .iter()
            .map(|(sql, name)| format!("{sql} AS {name}"))
            .collect();
        if input_columns {
            row_columns.insert(0, "*".into());
        }
        if row_columns.is_empty() {
            // `count(*)` alone reads no column; a constant keeps the row query valid.
            row_columns.push("1 AS tributary_one".into());
        }
        let group_by: Vec<String> = (0..self.keys.len())
            .map(|i| format!("tributary_k{i}"))
            .collect();
        let mut partial_columns: Vec<PartialColumn> = group_by
            .iter()
            .chain(&self.distinct_columns)
            .map(|c| PartialColumn {
                name: c.clone(),
                expr: PartialExpr::Column(c.clone()),
            })
            .collect();
        partial_columns.extend(self.partials.iter().cloned());
        let why = self.why(&found, &cut);
        Ok(Rewrite::Combine(Box::new(Split {
            strategy: Strategy::Aggregate,
            rows: row_query(self.query, self.select, false, &row_columns),
            partial: Partial {
                columns: Some(partial_columns),
                group_by: group_by
                    .iter()
                    .chain(&self.distinct_columns)
                    .cloned()
                    .collect(),
                order_by: Vec::new(),
                limit: None,
            },
            finish: Finish {
                columns: Some(columns),
                distinct,
                group_by,
                having,
                order_by,
                limit,
                offset,
                hidden: Vec::new(),
            },
            why,
            row_sql: self
                .row_columns
                .iter()
                .map(|(sql, name)| (name.clone(), sql.clone()))
                .collect(),
        })))
    }

    /// The final step's ORDER BY: an output column where the key names one (by position,
    /// alias or the same expression), else the key evaluated over the combined aggregates.
    fn final_order(&self, cut: &Cut) -> Result<Vec<(FinalExpr, SortKey)>, CombineError> {
        let mut order_by = Vec::new();
        for (expr, desc, nulls_first) in &cut.order {
            let expr = match named_item(expr, &self.items)? {
                Some(index) => FinalExpr {
                    template: format!("tributary_o{index}"),
                    aggregates: Vec::new(),
                },
                None => {
                    // An output column named by its alias, or repeated as an expression.
                    let alias_of = |alias: &Option<String>| match expr {
                        Expr::Identifier(i) => alias.as_deref() == Some(ident_name(i).as_str()),
                        _ => false,
                    };
                    let same = self.items.iter().position(|item| {
                        item.as_ref().is_some_and(|(e, alias)| {
                            e.to_string() == expr.to_string() || alias_of(alias)
                        })
                    });
                    match same {
                        Some(index) => FinalExpr {
                            template: format!("tributary_o{index}"),
                            aggregates: Vec::new(),
                        },
                        None => self.final_expr(expr)?,
                    }
                }
            };
            let key = SortKey {
                expr: String::new(),
                desc: *desc,
                nulls_first: *nulls_first,
            };
            order_by.push((expr, key));
        }
        Ok(order_by)
    }

    /// What `plan` prints about the split: the aggregates, the group keys and what the final
    /// step applies after combining.
    fn why(&self, found: &[Function], cut: &Cut) -> String {
        let names: BTreeSet<&str> = found
            .iter()
            .filter_map(|f| f.name.0.last())
            .filter_map(|p| match p {
                ObjectNamePart::Identifier(i) => Some(i.value.as_str()),
                _ => None,
            })
            .collect();
        format!(
            "aggregates ({}) over {}: each shard computes partial aggregates per group, the final step combines them{}",
            if names.is_empty() {
                "none".to_string()
            } else {
                names.into_iter().collect::<Vec<_>>().join(", ")
            },
            match self.keys.len() {
                0 => "the whole result".to_string(),
                1 => "1 group key".to_string(),
                n => format!("{n} group keys"),
            },
            if self.select.having.is_some() || !cut.is_empty() {
                " and applies HAVING, ORDER BY and LIMIT"
            } else {
                ""
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_queries_stream_without_being_parsed() {
        let pg = PostgreSqlDialect {};
        for sql in [
            "SELECT * FROM lineitem",
            "SELECT id, \"order\", \"group\" FROM t WHERE day >= :from AND (id = 1 OR id = 2)",
            "SELECT a FROM t -- GROUP BY a, then ORDER BY it\n WHERE b = 'LIMIT 1' /* count(*) */",
            "SELECT a::numeric, b FROM t JOIN u ON (t.id = u.id) WHERE a IN (1, 2)",
            "WITH x AS (SELECT a FROM t) SELECT * FROM x WHERE NOT (a IS NULL)",
        ] {
            assert!(certainly_streams(&pg, sql), "{sql}");
        }
        assert!(certainly_streams(&MySqlDialect {}, "SELECT `order` FROM t"));
    }

    #[test]
    fn queries_that_may_combine_are_parsed() {
        let pg = PostgreSqlDialect {};
        for sql in [
            "SELECT count(*) FROM t",
            "SELECT sum (x) FROM t",
            "SELECT lower(x) FROM t",
            "SELECT \"count\"(x) FROM t",
            "SELECT a::numeric(10, 2) FROM t",
            "SELECT a FROM t GROUP BY a",
            "SELECT a FROM t ORDER BY a",
            "select a from t limit 5",
            "SELECT a FROM t OFFSET 5",
            "SELECT a FROM t FETCH FIRST 3 ROWS ONLY",
            "SELECT DISTINCT a FROM t",
            "SELECT a FROM t UNION SELECT a FROM u",
            "SELECT a FROM t EXCEPT SELECT a FROM u",
            "SELECT a, row_number() OVER w FROM t WINDOW w AS (ORDER BY a)",
            "SELECT a INTO b FROM t",
            "SELECT a FROM t WHERE 'unterminated",
        ] {
            assert!(!certainly_streams(&pg, sql), "{sql}");
        }
        assert!(!certainly_streams(
            &MySqlDialect {},
            "SELECT DISTINCTROW a FROM t"
        ));
    }

    /// A query the tokens let through is one the syntax tree streams too.
    #[test]
    fn the_token_check_agrees_with_the_syntax_tree() {
        let queries = [
            "SELECT * FROM t",
            "SELECT a, b AS c FROM t WHERE a > 1 AND b IS NOT NULL",
            "SELECT t.a, u.b FROM t LEFT JOIN u ON t.id = u.id",
            "WITH x AS (SELECT a FROM t) SELECT a FROM x",
            "SELECT a FROM (SELECT a FROM t) s",
            "SELECT a FROM t WHERE a BETWEEN :lo AND :hi",
            "SELECT CASE WHEN a THEN 1 ELSE 2 END FROM t",
            "SELECT a FROM t UNION ALL SELECT a FROM u",
            "SELECT sum(a) FROM t",
            "SELECT a FROM t ORDER BY a LIMIT 3",
        ];
        for sql in queries {
            let parsed = rewrite_statements(
                parse(&PostgreSqlDialect {}, sql).unwrap(),
                &Params::default(),
                false,
                false,
            )
            .unwrap();
            if certainly_streams(&PostgreSqlDialect {}, sql) {
                assert_eq!(parsed, Rewrite::Stream, "{sql}");
            }
        }
    }

    #[test]
    fn mysql_sort_keys_spell_out_the_null_order_only_where_mysql_differs() {
        let key = |desc, nulls_first| {
            SortKey {
                expr: "x".into(),
                desc,
                nulls_first,
            }
            .mysql_sql()
        };
        assert_eq!(key(false, true), "x ASC");
        assert_eq!(key(true, false), "x DESC");
        assert_eq!(key(false, false), "x IS NULL ASC, x ASC");
        assert_eq!(key(true, true), "x IS NULL DESC, x DESC");
    }

    #[test]
    fn mysql_names_its_variances_for_the_population() {
        let split = |sql: &str| match rewrite_mysql(sql, &Params::default(), false).unwrap() {
            Rewrite::Combine(split) => split,
            Rewrite::Stream => panic!("{sql} needs combining"),
        };
        let funcs = |sql: &str| -> Vec<FinalFn> {
            let split = split(sql);
            let columns = split.finish.columns.unwrap();
            columns
                .iter()
                .flat_map(|c| c.expr.aggregates.iter().map(|a| a.func))
                .collect()
        };
        let pop = |root| FinalFn::Variance {
            sample: false,
            root,
        };
        let sample = |root| FinalFn::Variance { sample: true, root };
        assert_eq!(
            funcs("SELECT STD(x), STDDEV(x), VARIANCE(x), VAR_SAMP(x), STDDEV_SAMP(x) FROM t"),
            [
                pop(true),
                pop(true),
                pop(false),
                sample(false),
                sample(true)
            ]
        );
        assert_eq!(
            funcs("SELECT stddev(x), variance(x) FROM t"),
            [pop(true), pop(false)]
        );
        let pg = match rewrite(
            "SELECT stddev(x), variance(x) FROM t",
            &Params::default(),
            false,
            false,
        )
        .unwrap()
        {
            Rewrite::Combine(split) => split,
            Rewrite::Stream => panic!("needs combining"),
        };
        let names: Vec<FinalFn> = pg
            .finish
            .columns
            .unwrap()
            .iter()
            .flat_map(|c| c.expr.aggregates.iter().map(|a| a.func))
            .collect();
        assert_eq!(names, [sample(true), sample(false)]);
        // Output names as MySQL gives them, as PostgreSQL gives them.
        let names = split("SELECT COUNT(*), `Region`, SUM(x) AS Total FROM t GROUP BY `Region`")
            .output_names()
            .unwrap();
        assert_eq!(names, ["COUNT(*)", "Region", "Total"]);
        assert!(matches!(
            rewrite_mysql("SELECT GROUP_CONCAT(x) FROM t", &Params::default(), false),
            Err(CombineError::Refused { .. })
        ));
    }
}
