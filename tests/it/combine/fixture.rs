//! The orders fixture: rows generated from a fixed seed and spread over shards **by
//! customer**, so that every region, category and day appears on several shards and a
//! sharded aggregate only comes out right once the shards' partial rows are combined.
//!
//! Where each customer's orders live (the "homes"):
//!
//! | home | kind       | customers | orders each | rows  |
//! |------|------------|-----------|-------------|-------|
//! | p1   | PostgreSQL | 1..=50    | 40          | 2000  |
//! | p2   | PostgreSQL | 51..=62   | 15          | 180   |
//! | p3   | PostgreSQL | 63..=70   | 10          | 80    |
//! | l1   | SQLite     | 71..=85   | 10          | 150   |
//! | l2   | SQLite     | 86..=100  | 10          | 150   |
//!
//! p1 holds most rows (skew). On purpose, the data also has:
//! - NULL group keys: about 8% of orders have no region, 5% no `paid`, 8% no quantity;
//! - groups on one shard only: region `polar` (customers 69 and 70, on p3), category
//!   `rare` (customer 90, on l2);
//! - a group whose inputs are all NULL: category `ghost` (on p1, p2 and l1) has NULL
//!   quantity, unit_price, discount, big and paid, so `sum` is NULL and `count(x)` 0;
//! - `big` values that make `sum(big)` exceed the int64 range in category `tools`,
//!   region `eu` and overall (three of 4e18, on p1 and p2);
//! - timestamps with microseconds, read in the databases' time zone, Europe/Berlin (set
//!   on every fixture database), so `date_trunc` keys depend on the session's zone;
//! - an empty database with the same table, to act as an empty shard.
//!
//! Two oracles hold the union of the shards' rows in one PostgreSQL database: `pg` (p1,
//! p2, p3) and `all` (p1, p2, p3, l1, l2). The SQLite files hold the columns whose types
//! map alike from both kinds of shard (integers, text, `DATE`, `BOOLEAN`).

use chrono::{NaiveDate, TimeDelta};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::harness;

const PG_SCHEMA: &str = "CREATE TABLE orders (
    id          bigint PRIMARY KEY,
    customer_id int NOT NULL,
    region      text,
    category    text NOT NULL,
    order_date  date NOT NULL,
    ordered_at  timestamptz NOT NULL,
    quantity    int,
    unit_price  numeric(10, 2),
    discount    double precision,
    big         bigint,
    paid        boolean
);";

/// The portable subset: tributary types `INTEGER` as int64, `TEXT` as utf8, `DATE` as
/// date32 and `BOOLEAN` as boolean, as it types PostgreSQL's int4/int8, text, date and
/// boolean (the ints widen to int64 across shards).
const SQLITE_SCHEMA: &str = "CREATE TABLE orders (
    id          INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL,
    region      TEXT,
    category    TEXT NOT NULL,
    order_date  DATE NOT NULL,
    quantity    INTEGER,
    paid        BOOLEAN
);";

/// The time zone of every fixture database (shards and oracles alike).
pub const TIME_ZONE: &str = "Europe/Berlin";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Home {
    P1,
    P2,
    P3,
    L1,
    L2,
}

fn home(customer: i32) -> (Home, usize) {
    match customer {
        1..=50 => (Home::P1, 40),
        51..=62 => (Home::P2, 15),
        63..=70 => (Home::P3, 10),
        71..=85 => (Home::L1, 10),
        _ => (Home::L2, 10),
    }
}

struct Order {
    home: Home,
    id: i64,
    customer: i32,
    region: Option<&'static str>,
    category: &'static str,
    day: NaiveDate,
    /// `ordered_at` as microseconds since the epoch, UTC.
    at_micros: i64,
    quantity: Option<i32>,
    cents: Option<i64>,
    discount: Option<f64>,
    big: Option<i64>,
    paid: Option<bool>,
}

const HUGE: i64 = 4_000_000_000_000_000_000;

fn generate() -> Vec<Order> {
    let mut rng = SmallRng::seed_from_u64(0x636f_6d62);
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
    let first = NaiveDate::from_ymd_opt(2025, 1, 1).unwrap();
    let mut orders = Vec::new();
    // Round by round over the customers, so that ids interleave across the shards.
    for k in 0..40 {
        for customer in 1..=100 {
            let (home, count) = home(customer);
            if k >= count {
                continue;
            }
            let id = orders.len() as i64 + 1;
            let ghost = matches!((customer, k), (5, 0..=2) | (55, 0..=1) | (75, 0..=1));
            let huge = matches!((customer, k), (1, 0) | (2, 0) | (51, 0));
            let region = if huge {
                Some("eu")
            } else if (customer == 69 || customer == 70) && rng.random_bool(0.5) {
                Some("polar")
            } else {
                match rng.random_range(0..100) {
                    0..30 => Some("eu"),
                    30..55 => Some("us"),
                    55..75 => Some("apac"),
                    75..92 => Some("latam"),
                    _ => None,
                }
            };
            let category = if ghost {
                "ghost"
            } else if huge {
                "tools"
            } else if customer == 90 && k < 3 {
                "rare"
            } else {
                ["books", "games", "tools", "toys"][rng.random_range(0..4)]
            };
            let day = first + TimeDelta::days(rng.random_range(0..365));
            let at_micros =
                (day - epoch).num_days() * 86_400_000_000 + rng.random_range(0..86_400_000_000i64);
            let maybe = |rng: &mut SmallRng, null_percent: u32| {
                !ghost && rng.random_range(0..100) >= null_percent
            };
            let quantity = maybe(&mut rng, 8).then(|| rng.random_range(1..=10));
            let cents = (!ghost).then(|| rng.random_range(100..=99_999));
            let discount = maybe(&mut rng, 6).then(|| rng.random_range(0..3000) as f64 / 9973.0);
            let big = if huge {
                Some(HUGE)
            } else {
                maybe(&mut rng, 5)
                    .then(|| rng.random_range(-1_000_000_000_000..1_000_000_000_000i64))
            };
            let paid = maybe(&mut rng, 5).then(|| rng.random_bool(0.7));
            orders.push(Order {
                home,
                id,
                customer,
                region,
                category,
                day,
                at_micros,
                quantity,
                cents,
                discount,
                big,
                paid,
            });
        }
    }
    orders
}

fn lit<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "NULL".into(), |v| v.to_string())
}

fn text(v: Option<&str>) -> String {
    v.map_or_else(|| "NULL".into(), |v| format!("'{v}'"))
}

impl Order {
    fn pg_row(&self) -> String {
        let at = chrono::DateTime::from_timestamp_micros(self.at_micros)
            .unwrap()
            .format("%Y-%m-%d %H:%M:%S%.6f+00");
        format!(
            "({}, {}, {}, '{}', '{}', '{at}', {}, {}, {}, {}, {})",
            self.id,
            self.customer,
            text(self.region),
            self.category,
            self.day,
            lit(self.quantity),
            lit(self.cents.map(|c| format!("{}.{:02}", c / 100, c % 100))),
            // `{:?}` is the shortest text that reads back as the same f64.
            lit(self.discount.map(|d| format!("{d:?}"))),
            lit(self.big),
            lit(self.paid),
        )
    }

    fn sqlite_row(&self) -> String {
        format!(
            "({}, {}, {}, '{}', '{}', {}, {})",
            self.id,
            self.customer,
            text(self.region),
            self.category,
            self.day,
            lit(self.quantity),
            lit(self.paid.map(i32::from)),
        )
    }
}

fn pg_setup(name: &str, rows: &[&Order]) -> String {
    let mut sql = format!(
        "ALTER DATABASE {} SET timezone TO '{TIME_ZONE}';\n{PG_SCHEMA}\n",
        harness::db(name)
    );
    if !rows.is_empty() {
        sql.push_str("INSERT INTO orders VALUES\n");
        let values: Vec<String> = rows.iter().map(|o| o.pg_row()).collect();
        sql.push_str(&values.join(",\n"));
        sql.push_str(";\nANALYZE orders;");
    }
    sql
}

/// The shards and oracles, created once per test run.
pub struct Fixture {
    /// PostgreSQL shards p1, p2, p3 (URLs).
    pub pg: [String; 3],
    /// A PostgreSQL shard with the table and no rows (URL); also the oracle of a set of
    /// empty shards.
    pub empty: String,
    /// SQLite shards l1 and l2 (URLs).
    pub lite: [String; 2],
    /// The oracle databases (names, for `harness::connect`).
    pub oracle_pg: String,
    pub oracle_all: String,
    pub empty_db: String,
}

static FIXTURE: tokio::sync::OnceCell<Fixture> = tokio::sync::OnceCell::const_new();

/// The fixture, created by the first test that asks for it.
pub async fn fixture() -> &'static Fixture {
    FIXTURE.get_or_init(create).await
}

async fn create() -> Fixture {
    let orders = generate();
    let of = |homes: &[Home]| -> Vec<&Order> {
        orders.iter().filter(|o| homes.contains(&o.home)).collect()
    };
    let setups = [
        ("cmb_p1", of(&[Home::P1])),
        ("cmb_p2", of(&[Home::P2])),
        ("cmb_p3", of(&[Home::P3])),
        ("cmb_empty", Vec::new()),
        ("cmb_oracle_pg", of(&[Home::P1, Home::P2, Home::P3])),
        (
            "cmb_oracle_all",
            of(&[Home::P1, Home::P2, Home::P3, Home::L1, Home::L2]),
        ),
    ]
    .map(|(name, rows)| (name, pg_setup(name, &rows)));
    let urls = futures_util::future::join_all(
        setups
            .iter()
            .map(|(name, setup)| harness::database(name, setup)),
    )
    .await;
    // The SQLite shards live as long as the databases: replaced by the next run, like
    // them, rather than removed when the first test is done with them.
    let dir = std::env::temp_dir().join(harness::db("cmb_sqlite"));
    std::fs::create_dir_all(&dir).unwrap();
    let lite = [(Home::L1, "l1.db"), (Home::L2, "l2.db")].map(|(home, file)| {
        let _ = std::fs::remove_file(dir.join(file));
        let rows: Vec<String> = of(&[home]).iter().map(|o| o.sqlite_row()).collect();
        harness::sqlite_db(
            &dir,
            file,
            &format!(
                "{SQLITE_SCHEMA}\nINSERT INTO orders VALUES\n{};",
                rows.join(",\n")
            ),
        )
    });
    Fixture {
        pg: [urls[0].clone(), urls[1].clone(), urls[2].clone()],
        empty: urls[3].clone(),
        lite,
        oracle_pg: harness::db("cmb_oracle_pg"),
        oracle_all: harness::db("cmb_oracle_all"),
        empty_db: harness::db("cmb_empty"),
    }
}

/// A set of shards a query runs over, and the oracle that holds the union of their rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Set {
    /// p1, p2, p3.
    Pg,
    /// p1, p2, p3 and an empty PostgreSQL shard.
    PgAndEmpty,
    /// p1, p2, p3, l1 (SQLite), l2 (SQLite).
    Mixed,
    /// Three shards, all empty.
    AllEmpty,
    /// One shard holding every row of p1, p2, p3 (the oracle itself): the answer is
    /// right today, with or without combining.
    Single,
}

impl Set {
    /// (name, URL) of each shard.
    pub fn shards(self, f: &Fixture) -> Vec<(String, String)> {
        let named = |pairs: &[(&str, &String)]| {
            pairs
                .iter()
                .map(|(n, u)| (n.to_string(), u.to_string()))
                .collect()
        };
        match self {
            Set::Pg => named(&[("p1", &f.pg[0]), ("p2", &f.pg[1]), ("p3", &f.pg[2])]),
            Set::PgAndEmpty => named(&[
                ("p1", &f.pg[0]),
                ("p2", &f.pg[1]),
                ("p3", &f.pg[2]),
                ("e", &f.empty),
            ]),
            Set::Mixed => named(&[
                ("p1", &f.pg[0]),
                ("p2", &f.pg[1]),
                ("p3", &f.pg[2]),
                ("l1", &f.lite[0]),
                ("l2", &f.lite[1]),
            ]),
            Set::AllEmpty => named(&[("e1", &f.empty), ("e2", &f.empty), ("e3", &f.empty)]),
            Set::Single => {
                let url = format!("{}/{}", harness::pg_base(), f.oracle_pg);
                named(&[("all", &url)])
            }
        }
    }

    /// The oracle database's name.
    pub fn oracle(self, f: &Fixture) -> &str {
        match self {
            Set::Pg | Set::PgAndEmpty | Set::Single => &f.oracle_pg,
            Set::Mixed => &f.oracle_all,
            Set::AllEmpty => &f.empty_db,
        }
    }

    /// What the set is, for failure messages.
    pub fn describe(self) -> &'static str {
        match self {
            Set::Pg => {
                "3 PostgreSQL shards by customer: p1 (2000 rows), p2 (180), p3 (80); oracle: their union"
            }
            Set::PgAndEmpty => {
                "p1 (2000 rows), p2 (180), p3 (80) and e, an empty PostgreSQL shard; oracle: their union"
            }
            Set::Mixed => {
                "p1 (2000 rows), p2 (180), p3 (80) on PostgreSQL, l1 (150), l2 (150) on SQLite; oracle: their union"
            }
            Set::AllEmpty => "3 empty PostgreSQL shards; oracle: an empty database",
            Set::Single => "1 PostgreSQL shard holding all 2260 rows of p1, p2, p3; oracle: itself",
        }
    }
}
