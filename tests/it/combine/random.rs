//! A differential test: generated aggregate queries, run over the shards and on the
//! oracle, must give the same rows.
//!
//! Each query groups by 0 to 3 keys, computes 1 to 3 aggregates (some with FILTER, some
//! DISTINCT), and may have a WHERE, a HAVING (on aggregates it may not show) and an ORDER
//! BY over every output column with a LIMIT (and OFFSET). The ORDER BY lists every group
//! key before any aggregate whose value is computed inexactly (averages, variances, float
//! sums), so the order is total and decided by exact values only. PostgreSQL-only queries
//! run over p1, p2, p3 (sometimes with an empty shard beside them); portable ones, which
//! SQLite and PostgreSQL both run the same way, over p1, p2, p3, l1, l2.
//!
//! The seed is `TRIBUTARY_TEST_SEED` when set, else random; it is printed first and in
//! every failure, with the failing queries.

use std::hash::{BuildHasher, Hasher};
use std::time::Instant;

use futures_util::StreamExt;
use rand::rngs::SmallRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};

use super::fixture::{self, Set};
use super::{Case, PARALLEL, case, check};

/// Queries per run: PostgreSQL-only, then portable ones over the mixed set.
const PG_QUERIES: usize = 350;
const MIXED_QUERIES: usize = 150;
/// Failure reports printed in full; the rest are counted.
const SHOWN: usize = 5;

/// How the generator may use SQL: PostgreSQL's, or what PostgreSQL and SQLite share.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Dialect {
    Postgres,
    Portable,
}

/// A group key: the expression and the name it has in the output.
struct Key {
    expr: &'static str,
    name: &'static str,
}

const fn key(expr: &'static str, name: &'static str) -> Key {
    Key { expr, name }
}

const PG_KEYS: &[Key] = &[
    key("region", "region"),
    key("category", "category"),
    key("paid", "paid"),
    key("quantity", "quantity"),
    key("customer_id", "customer_id"),
    key("order_date", "order_date"),
    key("date_trunc('month', ordered_at)", "month"),
    key("customer_id % 7", "cbucket"),
    key("quantity > 5", "bulk"),
];

const PORTABLE_KEYS: &[Key] = &[
    key("region", "region"),
    key("category", "category"),
    key("paid", "paid"),
    key("quantity", "quantity"),
    key("customer_id", "customer_id"),
    key("order_date", "order_date"),
    key("customer_id % 7", "cbucket"),
];

const PG_FILTERS: &[&str] = &[
    "paid",
    "NOT paid",
    "quantity > 3",
    "region = 'eu'",
    "region IS NULL",
    "discount < 0.1",
    "order_date >= DATE '2025-07-01'",
    "category <> 'toys'",
];

const PORTABLE_FILTERS: &[&str] = &[
    "paid",
    "quantity > 3",
    "region = 'eu'",
    "region IS NULL",
    "category <> 'toys'",
    "customer_id % 2 = 0",
];

const PG_WHERE: &[&str] = &[
    // p3 holds customers 63 to 70: its part is empty.
    "customer_id <= 62",
    "region IS NOT NULL",
    "order_date < DATE '2025-04-01'",
    "quantity BETWEEN 2 AND 6",
    // Only NULL inputs.
    "category = 'ghost'",
    // Nothing at all.
    "id < 0",
];

const PORTABLE_WHERE: &[&str] = &[
    "customer_id <= 62",
    // Only the SQLite shards have rows.
    "customer_id > 70",
    "region IS NOT NULL",
    "quantity BETWEEN 2 AND 6",
    "category = 'ghost'",
    "order_date < '2025-04-01'",
];

const HAVING: &[&str] = &[
    "count(*) > 1",
    "count(*) > 5",
    "count(*) > 40",
    "sum(quantity) > 100",
    "max(quantity) >= 9",
    "min(customer_id) < 30",
    "count(DISTINCT customer_id) > 3",
    "avg(quantity) > 5",
];

/// An aggregate: its SQL and whether its value is exact (counts, integer and decimal
/// sums, min, max, bool_and/or) rather than computed with rounding.
struct Agg {
    sql: String,
    exact: bool,
}

fn aggregate(rng: &mut SmallRng, dialect: Dialect) -> Agg {
    let pick = |rng: &mut SmallRng, from: &[&'static str]| *from.choose(rng).unwrap();
    let (mut sql, exact) = match dialect {
        Dialect::Postgres => match rng.random_range(0..10) {
            0 => ("count(*)".to_string(), true),
            1 => {
                let c = pick(
                    rng,
                    &[
                        "region",
                        "quantity",
                        "unit_price",
                        "discount",
                        "big",
                        "paid",
                    ],
                );
                (format!("count({c})"), true)
            }
            2 => {
                let c = pick(
                    rng,
                    &[
                        "region",
                        "category",
                        "customer_id",
                        "quantity",
                        "order_date",
                        "paid",
                    ],
                );
                (format!("count(DISTINCT {c})"), true)
            }
            3 => {
                let c = pick(
                    rng,
                    &["quantity", "customer_id", "unit_price", "big", "discount"],
                );
                (format!("sum({c})"), c != "discount")
            }
            4 => ("sum(DISTINCT quantity)".to_string(), true),
            5 => {
                let c = pick(rng, &["quantity", "customer_id", "unit_price", "discount"]);
                (format!("avg({c})"), false)
            }
            6 | 7 => {
                let f = pick(rng, &["min", "max"]);
                let c = pick(
                    rng,
                    &[
                        "quantity",
                        "unit_price",
                        "discount",
                        "region",
                        "category",
                        "order_date",
                        "ordered_at",
                        "big",
                        "id",
                    ],
                );
                (format!("{f}({c})"), true)
            }
            8 => {
                let f = pick(rng, &["bool_and", "bool_or"]);
                let c = pick(rng, &["paid", "quantity > 5", "discount > 0.2"]);
                (format!("{f}({c})"), true)
            }
            _ => {
                let f = pick(
                    rng,
                    &[
                        "stddev_samp",
                        "stddev_pop",
                        "var_samp",
                        "var_pop",
                        "stddev",
                        "variance",
                    ],
                );
                let c = pick(rng, &["quantity", "unit_price", "discount"]);
                (format!("{f}({c})"), false)
            }
        },
        Dialect::Portable => match rng.random_range(0..7) {
            0 => ("count(*)".to_string(), true),
            1 => {
                let c = pick(rng, &["region", "quantity", "paid"]);
                (format!("count({c})"), true)
            }
            2 => {
                let c = pick(rng, &["region", "category", "customer_id", "quantity"]);
                (format!("count(DISTINCT {c})"), true)
            }
            3 => {
                let c = pick(rng, &["quantity", "customer_id"]);
                (format!("sum({c})"), true)
            }
            4 => ("sum(DISTINCT quantity)".to_string(), true),
            5 => {
                let c = pick(rng, &["quantity", "customer_id"]);
                (format!("avg({c})"), false)
            }
            _ => {
                let f = pick(rng, &["min", "max"]);
                let c = pick(
                    rng,
                    &["quantity", "customer_id", "region", "category", "id"],
                );
                (format!("{f}({c})"), true)
            }
        },
    };
    if sql != "count(*)" && rng.random_bool(0.25) {
        let filters = match dialect {
            Dialect::Postgres => PG_FILTERS,
            Dialect::Portable => PORTABLE_FILTERS,
        };
        sql.push_str(&format!(" FILTER (WHERE {})", pick(rng, filters)));
    }
    Agg { sql, exact }
}

/// One generated query and the case that checks it.
fn query(rng: &mut SmallRng, dialect: Dialect) -> Case {
    let (keys, wheres) = match dialect {
        Dialect::Postgres => (PG_KEYS, PG_WHERE),
        Dialect::Portable => (PORTABLE_KEYS, PORTABLE_WHERE),
    };
    let key_count = *[0, 1, 1, 1, 2, 2, 3].choose(rng).unwrap();
    let keys: Vec<&Key> = keys.choose_multiple(rng, key_count).collect();
    let aggs: Vec<Agg> = (0..rng.random_range(1..=3))
        .map(|_| aggregate(rng, dialect))
        .collect();

    let mut select: Vec<String> = keys
        .iter()
        .map(|k| {
            if k.expr == k.name {
                k.name.to_string()
            } else {
                format!("{} AS {}", k.expr, k.name)
            }
        })
        .collect();
    select.extend(
        aggs.iter()
            .enumerate()
            .map(|(i, a)| format!("{} AS a{}", a.sql, i + 1)),
    );
    let mut sql = format!("SELECT {} FROM orders", select.join(", "));
    if rng.random_bool(0.25) {
        sql.push_str(&format!(" WHERE {}", wheres.choose(rng).unwrap()));
    }
    if !keys.is_empty() {
        // PostgreSQL-only queries also group by position.
        let group: Vec<String> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                if dialect == Dialect::Postgres && rng.random_bool(0.3) {
                    (i + 1).to_string()
                } else {
                    k.expr.to_string()
                }
            })
            .collect();
        sql.push_str(&format!(" GROUP BY {}", group.join(", ")));
        if rng.random_bool(0.3) {
            sql.push_str(&format!(" HAVING {}", HAVING.choose(rng).unwrap()));
        }
    }
    let ordered = rng.random_bool(0.4);
    if ordered {
        // Keys and exact aggregates in any order, then the inexact ones: every key comes
        // before any value that rounding could tie or untie.
        let mut first: Vec<String> = keys.iter().map(|k| k.name.to_string()).collect();
        let mut last = Vec::new();
        for (i, a) in aggs.iter().enumerate() {
            let name = format!("a{}", i + 1);
            if a.exact {
                first.push(name);
            } else {
                last.push(name);
            }
        }
        first.shuffle(rng);
        last.shuffle(rng);
        let items: Vec<String> = first
            .into_iter()
            .chain(last)
            .map(|c| {
                let dir = if rng.random_bool(0.5) { " DESC" } else { "" };
                let nulls = match rng.random_range(0..4) {
                    0 => " NULLS FIRST",
                    1 => " NULLS LAST",
                    _ => "",
                };
                format!("{c}{dir}{nulls}")
            })
            .collect();
        sql.push_str(&format!(
            " ORDER BY {} LIMIT {}",
            items.join(", "),
            rng.random_range(1..=15)
        ));
        if rng.random_bool(0.3) {
            sql.push_str(&format!(" OFFSET {}", rng.random_range(1..=5)));
        }
    }
    let set = match dialect {
        Dialect::Postgres if rng.random_bool(0.2) => Set::PgAndEmpty,
        Dialect::Postgres => Set::Pg,
        Dialect::Portable => Set::Mixed,
    };
    let c = case(set, &sql);
    if ordered { c.ordered() } else { c }
}

fn seed() -> u64 {
    match std::env::var("TRIBUTARY_TEST_SEED") {
        Ok(s) => s
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("TRIBUTARY_TEST_SEED={s} is not an unsigned integer")),
        // Randomly keyed by the standard library: a fresh seed each run.
        Err(_) => std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish(),
    }
}

#[tokio::test]
async fn random_aggregates_equal_one_database() {
    let seed = seed();
    println!("random queries: TRIBUTARY_TEST_SEED={seed}");
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut cases: Vec<Case> = (0..PG_QUERIES)
        .map(|_| query(&mut rng, Dialect::Postgres))
        .collect();
    cases.extend((0..MIXED_QUERIES).map(|_| query(&mut rng, Dialect::Portable)));
    let total = cases.len();
    let f = fixture::fixture().await;
    let started = Instant::now();
    let failures: Vec<String> = futures_util::stream::iter(cases)
        .map(|case| async move { check(f, &case).await.err() })
        .buffered(PARALLEL)
        .filter_map(|e| async move { e })
        .collect()
        .await;
    println!(
        "{total} random queries in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    if !failures.is_empty() {
        // Each report opens with the query and the shards it ran over.
        let queries: Vec<String> = failures
            .iter()
            .map(|f| f.lines().take(2).collect::<Vec<_>>().join("\n"))
            .collect();
        panic!(
            "TRIBUTARY_TEST_SEED={seed}: {} of {total} random queries differ from one database holding every row.\n\
             Failing queries:\n{}\n\nThe first {} in full:\n\n{}",
            failures.len(),
            queries.join("\n"),
            SHOWN.min(failures.len()),
            failures[..SHOWN.min(failures.len())].join("\n\n")
        );
    }
}

#[test]
fn portable_queries_use_only_what_sqlite_shards_have() {
    let mut rng = SmallRng::seed_from_u64(7);
    // Columns the SQLite shards do not have, and functions SQLite does not know.
    let postgres_only = [
        "ordered_at",
        "unit_price",
        "discount",
        "big",
        "bool_",
        "stddev",
        "var",
        "date_trunc",
        "::",
        "DATE '",
    ];
    for _ in 0..2000 {
        let c = query(&mut rng, Dialect::Portable);
        for word in postgres_only {
            assert!(!c.sql.contains(word), "{}", c.sql);
        }
    }
}
