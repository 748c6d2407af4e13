//! Cross-shard combining: a query with aggregates, GROUP BY, HAVING, DISTINCT, ORDER BY or
//! LIMIT, run over shards split by customer, must write exactly the rows ONE database
//! holding every shard's rows returns (the oracle), not one partial row per shard.
//!
//! Each case runs the `tributary` binary over a set of shards (see `fixture`), reads the
//! Parquet back and compares it with the oracle's answer to the same query (see
//! `compare`). Cases that the concatenation of shards' rows already gets right (one shard
//! holding every row, groups that live on one shard, plain SELECTs) check the comparison
//! itself; the others need combining.

mod compare;
pub mod fixture;
mod random;

use std::path::PathBuf;

use arrow::datatypes::DataType;
use futures_util::StreamExt;

use compare::Mode;
use fixture::{Fixture, Set};

use crate::harness;

/// Runs at once per test: the binary is a process per case, on two cores in CI.
const PARALLEL: usize = 2;

/// A type the output column must have.
#[derive(Debug, Clone)]
pub enum Ty {
    Is(DataType),
    /// A decimal of any precision and scale.
    AnyDecimal,
}

/// How the rows of a case must correspond to the oracle's.
#[derive(Debug, Clone)]
enum Order {
    /// The ORDER BY is total: row for row.
    Total,
    /// No order to check: the same multiset.
    Any,
    /// LIMIT without ORDER BY: as many rows as the oracle returns for the query, each a
    /// distinct row of this unlimited query's result.
    LimitOf(String),
}

/// One query, the shards it runs over, extra flags and the types it must produce.
#[derive(Debug, Clone)]
pub struct Case {
    sql: String,
    set: Set,
    order: Order,
    flags: Vec<String>,
    types: Vec<(String, Ty)>,
}

/// A case whose rows are compared as a multiset.
pub fn case(set: Set, sql: &str) -> Case {
    Case {
        sql: sql.trim().to_string(),
        set,
        order: Order::Any,
        flags: Vec::new(),
        types: Vec::new(),
    }
}

impl Case {
    /// The query's ORDER BY is total: compare row for row.
    pub fn ordered(mut self) -> Case {
        self.order = Order::Total;
        self
    }

    /// The query has a LIMIT and no ORDER BY; `full` is the query without the LIMIT.
    fn limit_of(mut self, full: &str) -> Case {
        self.order = Order::LimitOf(full.to_string());
        self
    }

    fn flags(mut self, flags: &[&str]) -> Case {
        self.flags.extend(flags.iter().map(|f| f.to_string()));
        self
    }

    /// Column `name` must have type `ty`.
    fn ty(mut self, name: &str, ty: Ty) -> Case {
        self.types.push((name.to_string(), ty));
        self
    }
}

fn decimal(precision: u8, scale: i8) -> Ty {
    Ty::Is(DataType::Decimal128(precision, scale))
}

fn int64() -> Ty {
    Ty::Is(DataType::Int64)
}

fn float64() -> Ty {
    Ty::Is(DataType::Float64)
}

/// The output of one run of the binary.
pub struct Run {
    _dir: tempfile::TempDir,
    pub output: PathBuf,
    pub status: Option<i32>,
    pub stderr: String,
}

/// Runs `tributary run` over `shards` with `flags`, in a directory of its own.
pub async fn run_binary(sql: &str, shards: &[(String, String)], flags: &[String]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("q.sql"), sql).unwrap();
    let mut toml = String::from("[shards]\n");
    for (name, url) in shards {
        toml.push_str(&format!("{name} = \"{url}\"\n"));
    }
    std::fs::write(dir.path().join("s.toml"), toml).unwrap();
    let output = dir.path().join("out.parquet");
    let mut command = harness::bin();
    command
        .current_dir(dir.path())
        // A failed run's message, without a backtrace of where the error was made.
        .env_remove("RUST_BACKTRACE")
        .args([
            "run",
            "q.sql",
            "--shards",
            "s.toml",
            "-o",
            "out.parquet",
            "--quiet",
        ])
        .args(flags);
    let out = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    Run {
        _dir: dir,
        output,
        status: out.status.code(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs one case and compares it with the oracle; the error is a full report.
pub async fn check(f: &Fixture, case: &Case) -> Result<(), String> {
    let context = || {
        format!(
            "query:  {}\nshards: {}{}",
            case.sql.replace('\n', "\n        "),
            case.set.describe(),
            if case.flags.is_empty() {
                String::new()
            } else {
                format!("\nflags:  {}", case.flags.join(" "))
            }
        )
    };
    let run = run_binary(&case.sql, &case.set.shards(f), &case.flags).await;
    if run.status != Some(0) {
        return Err(format!(
            "{}\nthe run exited with {:?}:\n{}",
            context(),
            run.status,
            run.stderr.trim_end()
        ));
    }
    let got = compare::read(&run.output);
    let oracle = harness::connect(case.set.oracle(f)).await;
    let want_sql = match &case.order {
        Order::LimitOf(full) => full.as_str(),
        _ => case.sql.as_str(),
    };
    let want = compare::oracle(&oracle, want_sql)
        .await
        .map_err(|e| format!("{}\n{e}", context()))?;
    let mode = match &case.order {
        Order::Total => Mode::InOrder,
        Order::Any => Mode::AnyOrder,
        Order::LimitOf(_) => {
            let limited = compare::oracle(&oracle, &case.sql)
                .await
                .map_err(|e| format!("{}\n{e}", context()))?;
            Mode::SubsetOf {
                rows: limited.rows.len(),
            }
        }
    };
    let mut problems = Vec::new();
    if let Err(e) = compare::compare(&got, &want, mode) {
        problems.push(e);
    }
    for (name, ty) in &case.types {
        let Some(i) = got.names.iter().position(|n| n == name) else {
            problems.push(format!("no output column `{name}`"));
            continue;
        };
        let actual = &got.types[i];
        let ok = match ty {
            Ty::Is(expected) => actual == expected,
            Ty::AnyDecimal => matches!(actual, DataType::Decimal128(..)),
        };
        if !ok {
            problems.push(format!(
                "column `{name}` has type {actual}, expected {ty:?}"
            ));
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(format!(
        "{}\nmismatch: {}\n{}",
        context(),
        problems.join("\n          "),
        compare::render(&got, &want, 30)
    ))
}

/// Runs every case; fails with the report of each one that differs from its oracle.
pub async fn check_all(cases: Vec<Case>) {
    let f = fixture::fixture().await;
    let total = cases.len();
    let failures: Vec<String> = futures_util::stream::iter(cases)
        .map(|case| async move { check(f, &case).await.err() })
        .buffered(PARALLEL)
        .filter_map(|e| async move { e })
        .collect()
        .await;
    if !failures.is_empty() {
        panic!(
            "{} of {total} queries differ from one database holding every row:\n\n{}",
            failures.len(),
            failures.join("\n\n")
        );
    }
}

#[tokio::test]
async fn aggregates_over_shards_equal_one_database() {
    check_all(vec![
        case(
            Set::Pg,
            "SELECT count(*) AS n, count(quantity) AS nq, count(region) AS nr FROM orders",
        )
        .ty("n", int64())
        .ty("nq", int64()),
        case(
            Set::Pg,
            "SELECT region, count(*) AS n, sum(quantity) AS q, min(unit_price) AS lo, max(unit_price) AS hi
             FROM orders GROUP BY region",
        )
        .ty("n", int64())
        .ty("q", int64())
        .ty("lo", decimal(10, 2))
        .ty("hi", decimal(10, 2)),
        // Unnamed aggregates: the output names them as PostgreSQL does.
        case(
            Set::Pg,
            "SELECT region, count(*), sum(quantity), avg(quantity) FROM orders GROUP BY region",
        )
        .ty("count", int64())
        .ty("sum", int64())
        .ty("avg", Ty::AnyDecimal),
        // sum(int8) is numeric: beyond the int64 range for `tools`.
        case(
            Set::Pg,
            "SELECT category, sum(big) AS total, min(big) AS lo, max(big) AS hi
             FROM orders GROUP BY category",
        )
        .ty("total", decimal(38, 0))
        .ty("lo", int64()),
        case(
            Set::Pg,
            "SELECT category, sum(unit_price) AS revenue, avg(unit_price) AS avg_price
             FROM orders GROUP BY category",
        )
        .ty("revenue", decimal(20, 2))
        .ty("avg_price", decimal(14, 6)),
        case(
            Set::Pg,
            "SELECT region, sum(discount) AS total, avg(discount) AS mean, min(discount) AS lo, max(discount) AS hi
             FROM orders GROUP BY region",
        )
        .ty("total", float64())
        .ty("mean", float64())
        .ty("lo", float64()),
        case(
            Set::Pg,
            "SELECT paid, bool_and(quantity > 2) AS all_big, bool_or(discount > 0.28) AS any_deep,
                    count(*) AS n
             FROM orders GROUP BY paid",
        )
        .ty("all_big", Ty::Is(DataType::Boolean)),
        case(
            Set::Pg,
            "SELECT region, stddev_samp(discount) AS sd, stddev_pop(discount) AS sdp,
                    var_samp(discount) AS vs, var_pop(discount) AS vp
             FROM orders GROUP BY region",
        )
        .ty("sd", float64())
        .ty("vp", float64()),
        case(
            Set::Pg,
            "SELECT category, stddev(quantity) AS sd, variance(quantity) AS v,
                    var_pop(unit_price) AS vp, stddev_pop(unit_price) AS sdp
             FROM orders GROUP BY category",
        ),
        case(
            Set::Pg,
            "SELECT category, count(*) AS n, count(quantity) AS nq, sum(quantity) AS q,
                    avg(quantity) AS mean, min(quantity) AS lo, max(quantity) AS hi
             FROM orders GROUP BY category",
        )
        .ty("mean", Ty::AnyDecimal),
        case(
            Set::Pg,
            "SELECT min(region) AS first_region, max(category) AS last_category, min(order_date) AS first_day,
                    max(ordered_at) AS last_at, min(id) AS lo, max(id) AS hi
             FROM orders",
        ),
    ])
    .await;
}

#[tokio::test]
async fn null_keys_all_null_inputs_and_empty_shards() {
    check_all(vec![
        // The `ghost` orders, on p1 and p2, have only NULL inputs: sums are NULL, counts 0.
        case(
            Set::Pg,
            "SELECT count(quantity) AS n, sum(quantity) AS s, avg(unit_price) AS a,
                    max(discount) AS m, bool_and(paid) AS b, stddev_samp(discount) AS sd
             FROM orders WHERE category = 'ghost'",
        ),
        case(
            Set::Pg,
            "SELECT region, paid, count(*) AS n, sum(quantity) AS q
             FROM orders GROUP BY region, paid",
        ),
        // Every shard empty: still exactly one row.
        case(
            Set::AllEmpty,
            "SELECT count(*) AS n, sum(quantity) AS s, avg(quantity) AS a, min(region) AS r,
                    bool_or(paid) AS b, sum(unit_price) AS su, var_pop(discount) AS v
             FROM orders",
        )
        .ty("n", int64()),
        case(
            Set::AllEmpty,
            "SELECT region, count(*) AS n, sum(quantity) AS q FROM orders GROUP BY region",
        ),
        // With a DISTINCT aggregate the shards group by its argument: no partial row at
        // all, and the counts are still 0 (a random query found this).
        case(
            Set::Pg,
            "SELECT count(quantity) AS a1, count(DISTINCT order_date) AS a2, count(*) AS a3
             FROM orders WHERE id < 0",
        ),
        case(
            Set::PgAndEmpty,
            "SELECT region, category, count(*) AS n, sum(unit_price) AS s, avg(discount) AS a
             FROM orders GROUP BY region, category",
        ),
        // p3 holds customers 63 to 70: its part is empty.
        case(
            Set::Pg,
            "SELECT region, count(*) AS n, avg(discount) AS a, max(big) AS hi
             FROM orders WHERE customer_id <= 62 GROUP BY region",
        ),
        case(
            Set::PgAndEmpty,
            "SELECT count(*) AS n, sum(big) AS s, max(ordered_at) AS last_at FROM orders WHERE id < 0",
        ),
    ])
    .await;
}

#[tokio::test]
async fn groups_on_one_shard_and_having() {
    check_all(vec![
        // `polar` lives on p3 only.
        case(
            Set::Pg,
            "SELECT region, count(*) AS n, sum(quantity) AS q, max(unit_price) AS hi
             FROM orders WHERE region = 'polar' OR region IS NULL GROUP BY region",
        ),
        case(
            Set::Pg,
            "SELECT region, count(*) AS n FROM orders GROUP BY region HAVING count(*) > 450",
        ),
        // HAVING on aggregates the SELECT does not show.
        case(
            Set::Pg,
            "SELECT category, sum(quantity) AS q FROM orders GROUP BY category
             HAVING avg(discount) > 0.147 AND count(*) > 10",
        ),
        case(
            Set::Pg,
            "SELECT region FROM orders GROUP BY region HAVING count(DISTINCT customer_id) = 70",
        ),
        case(
            Set::Pg,
            "SELECT order_date, count(*) AS n FROM orders GROUP BY order_date
             HAVING min(quantity) = 1 AND max(quantity) = 10 AND count(*) >= 9",
        ),
    ])
    .await;
}

#[tokio::test]
async fn distinct_aggregates_and_select_distinct() {
    check_all(vec![
        case(
            Set::Pg,
            "SELECT region, count(DISTINCT customer_id) AS customers, count(DISTINCT category) AS categories
             FROM orders GROUP BY region",
        )
        .ty("customers", int64()),
        case(
            Set::Pg,
            "SELECT count(DISTINCT region) AS regions, count(DISTINCT order_date) AS days,
                    count(DISTINCT quantity) AS quantities
             FROM orders",
        ),
        case(
            Set::Pg,
            "SELECT category, sum(DISTINCT quantity) AS distinct_q, count(*) AS n, sum(quantity) AS q
             FROM orders GROUP BY category",
        ),
        case(Set::Pg, "SELECT DISTINCT region, category FROM orders"),
        case(Set::Pg, "SELECT DISTINCT paid FROM orders ORDER BY paid").ordered(),
    ])
    .await;
}

#[tokio::test]
async fn top_k_and_global_order() {
    check_all(vec![
        case(
            Set::Pg,
            "SELECT customer_id, sum(CAST(unit_price * quantity AS numeric(14, 2))) AS spent FROM orders GROUP BY customer_id
             ORDER BY spent DESC NULLS LAST, customer_id LIMIT 5",
        )
        .ordered(),
        case(
            Set::Pg,
            "SELECT region, category, count(*) AS n FROM orders GROUP BY region, category
             ORDER BY n DESC, region, category LIMIT 7 OFFSET 3",
        )
        .ordered(),
        case(
            Set::Pg,
            "SELECT order_date, count(*) AS n FROM orders GROUP BY order_date
             ORDER BY n DESC, order_date LIMIT 5",
        )
        .ordered(),
        case(
            Set::Pg,
            "SELECT id, customer_id, unit_price FROM orders ORDER BY unit_price DESC NULLS LAST, id LIMIT 10",
        )
        .ordered(),
        case(
            Set::Pg,
            "SELECT id, ordered_at, discount FROM orders WHERE discount IS NOT NULL
             ORDER BY ordered_at, id LIMIT 10 OFFSET 25",
        )
        .ordered(),
        // Every row, globally ordered.
        case(
            Set::Pg,
            "SELECT id, customer_id, region, order_date FROM orders ORDER BY order_date DESC, id",
        )
        .ordered(),
        case(
            Set::Pg,
            "SELECT region, quantity, id FROM orders ORDER BY region NULLS FIRST, quantity DESC, id",
        )
        .ordered(),
    ])
    .await;
}

#[tokio::test]
async fn expressions_of_aggregates() {
    check_all(vec![
        case(
            Set::Pg,
            "SELECT region, sum(CAST(unit_price * quantity AS numeric(14, 2))) / sum(quantity) AS per_unit,
                    round(avg(quantity), 2) AS mean_q
             FROM orders GROUP BY region",
        ),
        case(
            Set::Pg,
            "SELECT category, sum(quantity)::float8 / count(*) AS per_order, count(*) * 2 AS twice,
                    max(quantity) - min(quantity) AS spread
             FROM orders GROUP BY category",
        ),
        case(
            Set::Pg,
            "SELECT region, round(avg(unit_price), 2) AS mean_price, sum(quantity)::numeric(12, 0) AS units,
                    CAST(count(*) AS int) AS n
             FROM orders GROUP BY region",
        )
        .ty("units", decimal(12, 0))
        .ty("n", Ty::Is(DataType::Int32)),
        case(
            Set::Pg,
            "SELECT category, CASE WHEN count(*) > 100 THEN 'big' ELSE 'small' END AS size,
                    coalesce(sum(quantity), 0) AS q, sum(quantity) + 1000 * count(*) AS mixed
             FROM orders GROUP BY category",
        ),
        case(
            Set::Pg,
            "SELECT sum(unit_price) / count(*) AS mean_price, max(unit_price) - min(unit_price) AS spread,
                    sum(discount) / count(discount) AS mean_discount
             FROM orders",
        ),
    ])
    .await;
}

#[tokio::test]
async fn group_by_expressions_ordinals_dates_and_timestamps() {
    check_all(vec![
        // A timestamptz key, truncated in the databases' zone (Europe/Berlin).
        case(
            Set::Pg,
            "SELECT date_trunc('month', ordered_at) AS month, count(*) AS n, sum(quantity) AS q
             FROM orders GROUP BY 1 ORDER BY 1",
        )
        .ordered(),
        case(
            Set::Pg,
            "SELECT extract(year FROM order_date)::int AS y, extract(quarter FROM order_date)::int AS q,
                    count(*) AS n
             FROM orders GROUP BY 1, 2 ORDER BY 1, 2",
        )
        .ordered(),
        case(
            Set::Pg,
            "SELECT lower(coalesce(region, 'none')) AS r, quantity > 5 AS bulk, count(*) AS n
             FROM orders GROUP BY lower(coalesce(region, 'none')), quantity > 5",
        ),
        case(
            Set::Pg,
            "SELECT order_date, count(*) AS n, min(ordered_at) AS first_at, max(ordered_at) AS last_at
             FROM orders WHERE order_date < DATE '2025-02-01' GROUP BY order_date ORDER BY order_date",
        )
        .ordered(),
        case(
            Set::Pg,
            "SELECT date_trunc('week', order_date)::date AS week, sum(quantity) AS q
             FROM orders GROUP BY 1",
        ),
        case(
            Set::Pg,
            "SELECT customer_id % 5 AS bucket, count(*) AS n, sum(big) AS total
             FROM orders GROUP BY customer_id % 5 ORDER BY bucket",
        )
        .ordered(),
    ])
    .await;
}

#[tokio::test]
async fn filter_clauses() {
    check_all(vec![
        case(
            Set::Pg,
            "SELECT region, count(*) FILTER (WHERE paid) AS paid_n,
                    sum(quantity) FILTER (WHERE category = 'toys') AS toys_q,
                    avg(unit_price) FILTER (WHERE discount > 0.1) AS deep_price
             FROM orders GROUP BY region",
        ),
        case(
            Set::Pg,
            "SELECT count(*) FILTER (WHERE quantity IS NULL) AS no_qty,
                    sum(unit_price) FILTER (WHERE region IS NULL) AS unknown,
                    count(DISTINCT customer_id) FILTER (WHERE region = 'eu') AS eu_customers
             FROM orders",
        ),
    ])
    .await;
}

#[tokio::test]
async fn limit_without_order_by_returns_rows_of_the_full_result() {
    check_all(vec![
        case(
            Set::Pg,
            "SELECT region, count(*) AS n FROM orders GROUP BY region LIMIT 3",
        )
        .limit_of("SELECT region, count(*) AS n FROM orders GROUP BY region"),
        case(Set::Pg, "SELECT id, region, quantity FROM orders LIMIT 7")
            .limit_of("SELECT id, region, quantity FROM orders"),
    ])
    .await;
}

#[tokio::test]
async fn postgres_and_sqlite_shards_combine() {
    check_all(vec![
        case(
            Set::Mixed,
            "SELECT region, count(*) AS n, sum(quantity) AS q, min(customer_id) AS lo, max(category) AS hi
             FROM orders GROUP BY region",
        ),
        // `rare` lives on l2 only.
        case(
            Set::Mixed,
            "SELECT category, count(DISTINCT customer_id) AS customers, avg(quantity) AS mean
             FROM orders GROUP BY category ORDER BY category",
        )
        .ordered(),
        case(
            Set::Mixed,
            "SELECT order_date, count(*) AS n FROM orders GROUP BY order_date
             ORDER BY n DESC, order_date LIMIT 5",
        )
        .ordered(),
        case(
            Set::Mixed,
            "SELECT count(*) AS n, count(quantity) AS nq, sum(quantity) FILTER (WHERE paid) AS paid_q
             FROM orders",
        ),
        case(
            Set::Mixed,
            "SELECT paid, region, count(*) AS n FROM orders GROUP BY paid, region
             HAVING count(*) > 20",
        ),
    ])
    .await;
}

#[tokio::test]
async fn partitioned_shards_combine() {
    let partitioned = ["--partition-on", "id", "--partitions", "3"];
    check_all(vec![
        case(
            Set::Pg,
            "SELECT id, region, unit_price FROM orders ORDER BY unit_price DESC NULLS LAST, id LIMIT 12",
        )
        .ordered()
        .flags(&partitioned),
        case(
            Set::Pg,
            "SELECT id, customer_id, quantity FROM orders ORDER BY id",
        )
        .ordered()
        .flags(&partitioned),
        // `id` is a column of the table, not of the result: the partitions split each
        // shard's input rows and their partial aggregates are combined.
        case(
            Set::Pg,
            "SELECT region, count(*) AS n, sum(quantity) AS q, avg(unit_price) AS a
             FROM orders GROUP BY region",
        )
        .flags(&partitioned),
    ])
    .await;
}

/// Cases whose answer the concatenation of the shards' rows already gets right: they pass
/// without combining and show that the comparison accepts right answers.
#[tokio::test]
async fn answers_right_without_combining_equal_the_oracle() {
    let mut cases = vec![
        // Every group lives on one shard (the shards are split by customer).
        case(
            Set::Pg,
            "SELECT customer_id, count(*) AS n, sum(unit_price) AS s, avg(discount) AS a,
                    avg(quantity) AS aq, max(ordered_at) AS last_at, sum(big) AS total
             FROM orders GROUP BY customer_id",
        ),
        case(
            Set::Pg,
            "SELECT customer_id, region, count(DISTINCT category) AS c, stddev_samp(quantity) AS sd
             FROM orders GROUP BY customer_id, region HAVING count(*) > 3",
        ),
        case(
            Set::Mixed,
            "SELECT customer_id, count(*) AS n, sum(quantity) AS q, min(region) AS r
             FROM orders GROUP BY customer_id",
        ),
        // Plain SELECTs: one row per order.
        case(
            Set::Pg,
            "SELECT id, customer_id, region, category, order_date, ordered_at, quantity, unit_price,
                    discount, big, paid
             FROM orders",
        ),
        case(
            Set::Mixed,
            "SELECT id, customer_id, region, category, order_date, quantity, paid FROM orders",
        ),
        case(
            Set::Pg,
            "SELECT id, region, quantity FROM orders WHERE quantity > 8",
        )
        .flags(&["--partition-on", "id", "--partitions", "3"]),
        // PostgreSQL's postfix `ISNULL`, which sqlparser does not read: a query that
        // cannot need combining streams without being parsed (it was refused, exit 3).
        case(
            Set::Pg,
            "SELECT id, region, discount FROM orders WHERE discount ISNULL OR quantity > 8",
        ),
    ];
    // One shard holding every row: the concatenation is the answer.
    for single in [
        "SELECT region, count(*), sum(quantity), avg(quantity) FROM orders GROUP BY region",
        "SELECT category, sum(big) AS total, sum(unit_price) AS revenue, avg(unit_price) AS avg_price
         FROM orders GROUP BY category",
        "SELECT region, stddev_samp(discount) AS sd, var_pop(discount) AS vp, sum(discount) AS total
         FROM orders GROUP BY region",
        "SELECT date_trunc('month', ordered_at) AS month, count(*) AS n FROM orders GROUP BY 1 ORDER BY 1",
        "SELECT region, round(avg(unit_price), 2) AS mean_price, sum(quantity)::numeric(12, 0) AS units
         FROM orders GROUP BY region",
        "SELECT customer_id, sum(CAST(unit_price * quantity AS numeric(14, 2))) AS spent FROM orders GROUP BY customer_id
         ORDER BY spent DESC NULLS LAST, customer_id LIMIT 5",
        "SELECT count(quantity) AS n, sum(quantity) AS s, avg(unit_price) AS a FROM orders
         WHERE category = 'ghost'",
        "SELECT DISTINCT region, category FROM orders",
    ] {
        let ordered = single.contains("ORDER BY");
        let c = case(Set::Single, single);
        cases.push(if ordered { c.ordered() } else { c });
    }
    check_all(cases).await;
}

/// The constructs combining cannot compute from partial rows are refused before any
/// connection: the shard is a server that does not exist, so connecting would end in a
/// different error (unavailable, exit 5).
#[tokio::test]
async fn refused_constructs_exit_3_before_connecting() {
    let unreachable = [(
        "nowhere".to_string(),
        "postgres://nobody@127.0.0.1:1/none".to_string(),
    )];
    let refused: [(&str, &[&str]); 6] = [
        (
            "SELECT region, percentile_cont(0.5) WITHIN GROUP (ORDER BY unit_price) AS median
             FROM orders GROUP BY region",
            &["percentile_cont"],
        ),
        (
            "SELECT region, mode() WITHIN GROUP (ORDER BY category) AS usual FROM orders GROUP BY region",
            &["mode()", "`mode`", "mode("],
        ),
        (
            "SELECT region, sum(quantity) AS q, rank() OVER (ORDER BY sum(quantity) DESC) AS r
             FROM orders GROUP BY region",
            &["window", "rank()"],
        ),
        (
            "SELECT region, string_agg(category, ',' ORDER BY category) AS cats FROM orders GROUP BY region",
            &["string_agg"],
        ),
        (
            "SELECT region, array_agg(id ORDER BY id) AS ids FROM orders GROUP BY region",
            &["array_agg"],
        ),
        (
            "SELECT percentile_disc(0.9) WITHIN GROUP (ORDER BY quantity) AS p90 FROM orders",
            &["percentile_disc"],
        ),
    ];
    let mut failures = Vec::new();
    for (sql, names) in refused {
        let run = run_binary(sql, &unreachable, &[]).await;
        let stderr = run.stderr.to_lowercase();
        let named = names.iter().any(|n| stderr.contains(n));
        let hint = stderr.contains("--merge") || stderr.contains("--combine off");
        if run.status != Some(3) || !named || !hint || run.output.exists() {
            failures.push(format!(
                "query: {sql}\nexpected exit 3 naming one of {names:?} and mentioning `--merge` or `--combine off`, without output; got exit {:?}, output written: {}, stderr:\n{}",
                run.status,
                run.output.exists(),
                run.stderr.trim_end()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// A sum over an expression PostgreSQL types as an unbounded numeric (`numeric(10,2) *
/// int`) has no exact Parquet type: it is refused naming the expression and the cast
/// that fixes it, once the shards are described and before any row is read.
#[tokio::test]
async fn an_unbounded_numeric_sum_is_refused_naming_its_expression() {
    let f = fixture::fixture().await;
    let sql = "SELECT region, sum(unit_price * quantity) AS spent FROM orders GROUP BY region";
    let run = run_binary(sql, &Set::Pg.shards(f), &[]).await;
    assert_eq!(run.status, Some(3), "{}", run.stderr);
    assert!(
        run.stderr.contains("unit_price * quantity") && run.stderr.contains("CAST("),
        "{}",
        run.stderr
    );
    assert!(!run.output.exists());
}

/// `--combine off` keeps today's concatenation: one row per shard and group, each equal to
/// that shard's own answer.
#[tokio::test]
async fn combine_off_writes_each_shards_own_rows() {
    let f = fixture::fixture().await;
    let sql = "SELECT region, count(*) AS n, sum(quantity) AS q FROM orders GROUP BY region";
    let mut flags = vec!["--combine".to_string(), "off".to_string()];
    flags.extend(["--shard-column", "shard"].map(String::from));
    let run = run_binary(sql, &Set::Pg.shards(f), &flags).await;
    assert_eq!(run.status, Some(0), "{}", run.stderr);
    let got = compare::read(&run.output);
    let mut want = compare::Want {
        names: vec!["shard".into(), "region".into(), "n".into(), "q".into()],
        types: vec!["text".into(), "text".into(), "int8".into(), "int8".into()],
        rows: Vec::new(),
    };
    for (i, name) in ["p1", "p2", "p3"].iter().enumerate() {
        let shard = harness::connect(&harness::db(&format!("cmb_p{}", i + 1))).await;
        for row in compare::oracle(&shard, sql).await.unwrap().rows {
            want.rows
                .push(std::iter::once(Some(name.to_string())).chain(row).collect());
        }
    }
    if let Err(e) = compare::compare(&got, &want, Mode::AnyOrder) {
        panic!("{e}\n{}", compare::render(&got, &want, 30));
    }
}

/// `--allow-partial` with a shard that fails: the final step combines the others' rows,
/// and the summary, the report and the error say the result leaves that shard out.
#[tokio::test]
async fn a_partial_run_says_its_aggregates_cover_only_the_shards_that_succeeded() {
    let f = fixture::fixture().await;
    let sql = "SELECT count(*) AS n, sum(quantity) AS q FROM orders";
    let gone = format!(
        "{}/{}",
        harness::pg_base(),
        harness::db("cmb_no_such_database")
    );
    let mut job = harness::Job::new(
        sql,
        &[
            ("p1", f.pg[0].as_str()),
            ("gone", &gone),
            ("p2", f.pg[1].as_str()),
        ],
    );
    job.args.allow_partial = true;
    let (report, result) = job.run().await;
    let err = result.expect_err("one shard failed");
    assert!(
        matches!(err, tributary::Error::Partial { combined: true, .. }),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("its aggregates leave the failed shards out"),
        "{err}"
    );
    let combined = report.combined.as_ref().expect("the run combined");
    assert_eq!(combined.covers, ["p1", "p2"]);
    assert_eq!(combined.missing, ["gone"]);
    assert!(combined.incomplete.is_empty());
    let summary = report.to_string();
    assert!(
        summary.contains(
            "PARTIAL: the result covers only shards p1, p2 in full; the rows of gone are missing from every aggregate"
        ),
        "{summary}"
    );
    // The total is the result's one row, not the shards' partial rows.
    let total: Vec<&str> = summary.lines().last().unwrap().split_whitespace().collect();
    assert_eq!(total[..2], ["total", "1"], "{summary}");
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["combined"]["missing"], serde_json::json!(["gone"]));

    let mut want = (0i64, 0i64);
    for name in ["cmb_p1", "cmb_p2"] {
        let shard = harness::connect(&harness::db(name)).await;
        let row = shard
            .query_one("SELECT count(*), sum(quantity)::int8 FROM orders", &[])
            .await
            .unwrap();
        want.0 += row.get::<_, i64>(0);
        want.1 += row.get::<_, i64>(1);
    }
    let got = harness::concat(&harness::read_parquet(&job.output()));
    assert_eq!(harness::i64_column(&got, "n"), [Some(want.0)]);
    assert_eq!(
        got.column_by_name("q").unwrap().data_type(),
        &DataType::Int64,
        "sum(int4) is int64"
    );
    assert_eq!(harness::i64_column(&got, "q"), [Some(want.1)]);
}

/// A GROUP BY whose groups do not fit in `--memory-limit` spills to disk, says so, and
/// gives the same result as with all the memory it wants.
#[test]
fn a_final_step_past_its_memory_limit_spills_and_gives_the_same_result() {
    let dir = tempfile::tempdir().unwrap();
    let mut shards = String::from("[shards]\n");
    for s in ["a", "b"] {
        let url = crate::harness::sqlite_shard(
            dir.path(),
            &format!("{s}.db"),
            "CREATE TABLE t AS WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 200000) SELECT i AS k, i * 2 AS v FROM c;",
        );
        shards.push_str(&format!("{s} = \"{url}\"\n"));
    }
    crate::harness::write_query_and_shards(
        dir.path(),
        "SELECT k, count(*) AS n, sum(v) AS s FROM t GROUP BY k ORDER BY k",
        &shards,
    );
    let run = |limit: &str, out: &str| {
        let args =
            crate::harness::job_args("run", &["-o", out, "--memory-limit", limit, "--no-ledger"]);
        let out = crate::harness::tributary_in(dir.path(), &args);
        assert!(out.status.success(), "{}", crate::harness::stderr(&out));
        crate::harness::stderr(&out)
    };
    let small = run("16MB", "small.parquet");
    assert!(
        small.contains("the final step spilled") && small.contains("--memory-limit 15.3 MiB"),
        "{small}"
    );
    let args = crate::harness::job_args(
        "run",
        &["-o", "tiny.parquet", "--memory-limit", "8MB", "--no-ledger"],
    );
    let tiny = crate::harness::tributary_in(dir.path(), &args);
    assert_eq!(tiny.status.code(), Some(3));
    assert!(
        crate::harness::stderr(&tiny).contains("the final step needs at least 16MB"),
        "{}",
        crate::harness::stderr(&tiny)
    );
    let large = run("4GB", "large.parquet");
    assert!(!large.contains("spilled"), "{large}");
    let read = |name: &str| {
        let batch = crate::harness::concat(&crate::harness::read_parquet(&dir.path().join(name)));
        (
            crate::harness::i64_column(&batch, "k"),
            crate::harness::i64_column(&batch, "n"),
            crate::harness::i64_column(&batch, "s"),
        )
    };
    let (k, n, s) = read("small.parquet");
    assert_eq!(k.len(), 200_000);
    assert_eq!(k[0], Some(1));
    assert_eq!(k[199_999], Some(200_000));
    assert!(n.iter().all(|n| *n == Some(2)));
    assert_eq!(s[41], Some(2 * 2 * 42));
    assert_eq!((k, n, s), read("large.parquet"));
}
