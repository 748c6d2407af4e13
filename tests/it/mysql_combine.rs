//! Cross-shard combining on MySQL fleets: a query with aggregates, GROUP BY, HAVING,
//! DISTINCT, ORDER BY or LIMIT, run over MariaDB shards split by customer (and over a fleet
//! mixing them with a PostgreSQL shard), must write the rows ONE MariaDB database holding
//! every shard's rows returns, named as it names them, with its NULL order.
//!
//! The orders are generated here, deterministically, and inserted by the same statement
//! into every database, so the shards and the oracle hold the same values.

use std::fmt::Write as _;

use arrow::datatypes::DataType;
use tributary::error::exit;

use crate::combine::run_binary;
use crate::harness;
use crate::mysql::{cell, client_named, database};

/// Written so that MariaDB and PostgreSQL both take it: the same column types on every
/// shard of either kind.
const SCHEMA: &str = "CREATE TABLE orders (
    id          bigint PRIMARY KEY,
    customer_id int NOT NULL,
    region      varchar(10),
    category    varchar(10) NOT NULL,
    order_date  date NOT NULL,
    quantity    int,
    unit_price  numeric(10, 2),
    discount    double precision,
    big         bigint,
    paid        boolean
);";

const ORDERS: i64 = 3000;

/// Shards by customer: every region, category and day is on each of them.
const SHARDS: i64 = 3;

/// The INSERT of the orders of the customers `keep` selects, valid in MySQL and
/// PostgreSQL. NULLs in every nullable column; `big` sums past the int64 range; the
/// discounts are multiples of 1/8, so that their sums are exact in any order.
fn insert(keep: impl Fn(i64) -> bool) -> String {
    const REGIONS: [&str; 4] = ["eu", "us", "apac", "latam"];
    const CATEGORIES: [&str; 5] = ["books", "tools", "games", "food", "toys"];
    let mut sql = String::from("INSERT INTO orders VALUES ");
    let mut first = true;
    for id in 1..=ORDERS {
        let customer = id % 97 + 1;
        if !keep(customer) {
            continue;
        }
        let null_or = |null: bool, v: String| if null { "NULL".into() } else { v };
        let region = null_or(id % 13 == 0, format!("'{}'", REGIONS[(id % 4) as usize]));
        let category = CATEGORIES[(id * 7 % 5) as usize];
        let day = chrono::NaiveDate::from_ymd_opt(2024, 1, 1).unwrap()
            + chrono::Duration::days(id * id % 41);
        let quantity = null_or(id % 11 == 0, (id * 31 % 50).to_string());
        let cents = id * 37 % 100_000;
        let price = null_or(id % 7 == 0, format!("{}.{:02}", cents / 100, cents % 100));
        let discount = null_or(id % 9 == 0, format!("{}", (id % 1000) as f64 / 8.0));
        let big = id * 1_000_000_000_000_000;
        let paid = null_or(id % 17 == 0, (id % 3 == 0).to_string());
        if !first {
            sql.push_str(", ");
        }
        first = false;
        let _ = write!(
            sql,
            "({id}, {customer}, {region}, '{category}', '{day}', {quantity}, {price}, {discount}, {big}, {paid})"
        );
    }
    sql.push(';');
    sql
}

/// The fleet: `SHARDS` MariaDB databases and an empty one, the oracle holding every
/// row, and a PostgreSQL database holding the last shard's rows.
struct Fleet {
    mysql: Vec<(String, String)>,
    oracle: String,
    postgres: String,
}

/// Made once per test process: the tests share the databases.
async fn fleet() -> &'static Fleet {
    static FLEET: tokio::sync::OnceCell<Fleet> = tokio::sync::OnceCell::const_new();
    FLEET.get_or_init(make_fleet).await
}

async fn make_fleet() -> Fleet {
    let mut mysql = Vec::new();
    for i in 0..SHARDS {
        let url = database(
            &format!("cmb{i}"),
            &format!("{SCHEMA}\n{}", insert(|c| c % SHARDS == i)),
        );
        mysql.push((format!("m{i}"), url));
    }
    mysql.push(("empty".into(), database("cmb_empty", SCHEMA)));
    database("cmb_all", &format!("{SCHEMA}\n{}", insert(|_| true)));
    let postgres = harness::database(
        "my_cmb_pg",
        &format!("{SCHEMA}\n{}", insert(|c| c % SHARDS == SHARDS - 1)),
    )
    .await;
    Fleet {
        mysql,
        oracle: crate::mysql::db("cmb_all"),
        postgres,
    }
}

/// One query and how its rows compare with the oracle's.
struct Case {
    sql: &'static str,
    /// The ORDER BY is total: compare row for row (else as multisets).
    ordered: bool,
    /// Columns the server prints at a smaller scale: averages of integers (tributary
    /// gives them scale 6, see docs/combine.md, MariaDB 4) and variances of integers (a
    /// DOUBLE the client prints with 4 decimals). Equal once ours is rounded half away
    /// from zero to the server's scale.
    rounded: &'static [&'static str],
}

const fn case(sql: &'static str, ordered: bool) -> Case {
    Case {
        sql,
        ordered,
        rounded: &[],
    }
}

/// Whether our value says what the server's does: `rounded` columns at the server's
/// scale, floats within 1e-12 relative (a sum of squares divided in another order).
fn agree(ty: &DataType, at_scale: bool, server: &Option<String>, ours: &Option<String>) -> bool {
    match (server, ours) {
        (Some(a), Some(b)) if a != b => {
            if at_scale {
                return rounded(b, a.split_once('.').map_or(0, |(_, f)| f.len())) == *a;
            }
            if matches!(ty, DataType::Float64 | DataType::Float32) {
                let (x, y) = (a.parse::<f64>().unwrap(), b.parse::<f64>().unwrap());
                return (x - y).abs() <= 1e-12 * x.abs().max(y.abs());
            }
            false
        }
        (a, b) => a == b,
    }
}

/// A decimal's text rounded half away from zero to `scale` digits after the point.
fn rounded(text: &str, scale: usize) -> String {
    let (sign, digits) = text.strip_prefix('-').map_or(("", text), |d| ("-", d));
    let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let frac = format!("{frac:0<scale$}");
    let mut value: i128 = format!("{whole}{}", &frac[..scale]).parse().unwrap();
    if frac[scale..].starts_with(|c: char| ('5'..='9').contains(&c)) {
        value += 1;
    }
    let p = 10i128.pow(scale as u32);
    match scale {
        0 => format!("{sign}{value}"),
        _ => format!("{sign}{}.{:0scale$}", value / p, value % p),
    }
}

/// Runs `case` over `shards` with `flags`; a report of how it differs from the oracle,
/// if it does.
async fn check(
    case: &Case,
    shards: &[(String, String)],
    flags: &[String],
    oracle: &str,
) -> Result<(), String> {
    let run = run_binary(case.sql, shards, flags).await;
    let context = format!(
        "query: {}\nshards: {}",
        case.sql,
        shards
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    if run.status != Some(0) {
        return Err(format!(
            "{context}\nexited with {:?}: {}",
            run.status, run.stderr
        ));
    }
    let batch = harness::concat(&harness::read_parquet(&run.output));
    let schema = batch.schema();
    let names: Vec<Option<String>> = schema
        .fields()
        .iter()
        .map(|f| Some(f.name().clone()))
        .collect();
    let mut want = client_named(oracle, case.sql);
    let want_names = want.remove(0);
    if names != want_names {
        return Err(format!(
            "{context}\ncolumns {names:?}, MariaDB's {want_names:?}"
        ));
    }
    let mut got: Vec<Vec<Option<String>>> = (0..batch.num_rows())
        .map(|i| {
            batch
                .columns()
                .iter()
                .map(|c| cell(c.as_ref(), i))
                .collect()
        })
        .collect();
    if !case.ordered {
        got.sort();
        want.sort();
    }
    let mismatch = got.len() != want.len()
        || got.iter().zip(&want).any(|(g, w)| {
            g.iter().zip(w).enumerate().any(|(c, (ours, server))| {
                let field = schema.field(c);
                let rounded = case.rounded.contains(&field.name().as_str());
                !agree(field.data_type(), rounded, server, ours)
            })
        });
    if mismatch {
        return Err(format!(
            "{context}\n{} rows, MariaDB {}:\nours:    {:?}\nMariaDB: {:?}",
            got.len(),
            want.len(),
            &got[..got.len().min(12)],
            &want[..want.len().min(12)]
        ));
    }
    Ok(())
}

async fn check_all(cases: &[Case], shards: &[(String, String)], flags: &[String], oracle: &str) {
    let mut failures = Vec::new();
    for case in cases {
        if let Err(e) = check(case, shards, flags, oracle).await {
            failures.push(e);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} queries differ from one MariaDB database holding every row:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

const GROUPED: Case = Case {
    sql: "SELECT region, COUNT(*) AS n, SUM(quantity) AS q, SUM(big) AS b, SUM(unit_price) AS s,
       MIN(unit_price) AS lo, MAX(category) AS hi, AVG(unit_price) AS mp, SUM(discount) AS d,
       AVG(quantity) AS mq
FROM orders GROUP BY region ORDER BY region",
    ordered: true,
    rounded: &["mq"],
};

#[tokio::test]
async fn mysql_shards_combine_to_what_one_database_returns() {
    let f = fleet().await;
    let cases = [
        // NULL region first, as MySQL sorts it; sum(big) past int64; exact decimals.
        GROUPED,
        Case {
            sql: "SELECT category, COUNT(DISTINCT customer_id) AS customers, AVG(quantity) AS mean,
       VAR_SAMP(quantity) AS v, STDDEV(discount) AS sd, STD(quantity) AS s2,
       VARIANCE(discount) AS vp, SUM(DISTINCT quantity) AS dq
FROM orders GROUP BY category",
            ordered: false,
            rounded: &["mean", "v", "s2"],
        },
        case(
            "SELECT order_date, COUNT(*) AS n FROM orders GROUP BY order_date
ORDER BY n DESC, order_date LIMIT 5",
            true,
        ),
        // NULL quantities sort first ascending and last descending, as in MySQL.
        case(
            "SELECT id, quantity FROM orders ORDER BY quantity, id LIMIT 12",
            true,
        ),
        case(
            "SELECT id, quantity FROM orders ORDER BY quantity DESC, id LIMIT 5 OFFSET 3",
            true,
        ),
        case("SELECT DISTINCT region, paid FROM orders", false),
        // Unaliased columns named as MySQL names them, case kept.
        case(
            "SELECT COUNT(*), SUM(paid), `Region` FROM orders GROUP BY `Region` HAVING COUNT(*) > 500",
            false,
        ),
        case(
            "SELECT region AS `Where`, SUM(quantity) AS total FROM orders
WHERE order_date >= '2024-01-20' GROUP BY region ORDER BY total DESC LIMIT 3",
            true,
        ),
        case(
            "SELECT COUNT(*) AS n, MAX(order_date) AS last, MIN(discount) AS lo FROM orders",
            false,
        ),
    ];
    check_all(&cases, &f.mysql, &[], &f.oracle).await;
}

#[tokio::test]
async fn a_fleet_of_mariadb_and_postgres_shards_combines_in_mysqls_order() {
    let f = fleet().await;
    // The last MariaDB shard's rows come from PostgreSQL instead.
    let mut shards = f.mysql[..SHARDS as usize - 1].to_vec();
    shards.push(("pg".into(), f.postgres.clone()));
    let cases = [
        GROUPED,
        case(
            "SELECT id, quantity, region FROM orders ORDER BY quantity, region DESC, id LIMIT 20",
            true,
        ),
    ];
    check_all(&cases, &shards, &[], &f.oracle).await;
}

#[tokio::test]
async fn partitioned_mysql_shards_combine() {
    let f = fleet().await;
    let flags = ["--partition-on", "id", "--partitions", "3"].map(String::from);
    let cases = [
        GROUPED,
        case(
            "SELECT id, quantity FROM orders ORDER BY quantity, id LIMIT 12",
            true,
        ),
    ];
    check_all(&cases, &f.mysql, &flags, &f.oracle).await;
}

#[tokio::test]
async fn bit_aggregates_on_mysql_shards_are_refused_naming_the_shard() {
    let f = fleet().await;
    let run = run_binary(
        "SELECT region, BIT_OR(quantity) AS bits FROM orders GROUP BY region",
        &f.mysql,
        &[],
    )
    .await;
    assert_eq!(run.status, Some(exit::CONFIG), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("bit_and, bit_or and bit_xor is not available on MySQL shard `"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("--merge"), "{}", run.stderr);
    assert!(!run.output.exists());
}
