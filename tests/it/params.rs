//! Parameters inlined into PostgreSQL queries (COPY cannot bind) mean exactly what bound
//! parameters mean: random values of every type, placed next to operators, casts, `IN`
//! lists and line ends, give the server the same result either way.

use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio_postgres::Client;
use tokio_postgres::types::ToSql;
use tributary::sql::{ParamValue, Params, SqlTemplate};

use crate::harness::{self, Job, concat, i64_column};

/// Four rows, so that a filter that stops applying changes the answer.
const SETUP: &str = "CREATE TABLE t (q int, r text);
    INSERT INTO t VALUES (0, 'a'), (1, 'zz'), (2, 'zz'), (3, 'b')";

/// Queries for numbers (`Int` and `Float`); each returns one text column.
const NUMBER_QUERIES: &[&str] = &[
    "SELECT (1-:x)::text",
    "SELECT (1+:x)::text",
    "SELECT (2*:x)::text",
    "SELECT (1/:x)::text",
    "SELECT (-:x)::text",
    "SELECT (1 - -:x)::text",
    "SELECT (:x-1)::text",
    "SELECT :x::text",
    "SELECT (:x)::text",
    "SELECT (0 IN (1, :x, 2))::text",
    "SELECT (ARRAY[0, :x])[2]::text",
    "SELECT string_agg(r, ',' ORDER BY q) FROM t WHERE q > 1-:x\nAND r = 'zz'",
    "SELECT string_agg(r, ',' ORDER BY q) FROM t WHERE q <> :x\nAND r <> 'a'",
    "SELECT string_agg(r, ',' ORDER BY q) FROM t WHERE q > 1/:x -- note\nAND r <> 'b'",
    // A bound value is no column position.
    "SELECT array_agg(r)::text FROM (SELECT r, q FROM t ORDER BY :x, q DESC) s",
];

/// Queries for integers only: slice bounds, written the documented way.
const INT_QUERIES: &[&str] = &[
    "SELECT (ARRAY[10,20,30,40])[1:(:x)]::text",
    "SELECT (ARRAY[10,20,30,40])[(:x):3]::text",
];

const TEXT_QUERIES: &[&str] = &[
    "SELECT :x::text",
    "SELECT (:x)::text",
    "SELECT 'p' || :x",
    "SELECT :x || 'q'",
    "SELECT length(:x)::text",
    "SELECT md5(:x)",
    "SELECT (:x IN ('a', 'zz', :x))::text",
    "SELECT array_length(ARRAY[:x, 'b'], 1)::text",
    "SELECT string_agg(r, ',' ORDER BY q) FROM t WHERE r <> :x\nAND q > 1",
    "SELECT string_agg(r, ',' ORDER BY q) FROM t WHERE r = :x\nOR q = 3",
];

const BOOL_QUERIES: &[&str] = &[
    "SELECT :x::text",
    "SELECT (:x)::text",
    "SELECT (NOT :x)::text",
    "SELECT (TRUE AND:x)::text",
    "SELECT (:x IN (TRUE))::text",
    "SELECT (:x::int)::text",
    "SELECT string_agg(r, ',' ORDER BY q) FROM t WHERE :x\nAND r = 'zz'",
    "SELECT array_agg(r)::text FROM (SELECT r, q FROM t ORDER BY :x, q DESC) s",
];

fn random_text(rng: &mut SmallRng) -> String {
    const PARTS: &[&str] = &[
        "a", "zz", "b", " ", "'", "''", "\\", "\\'", "--", "/*", "*/", "$$", "$a$", "\"", ":x",
        "?1", ";", "\n", "\r", "é", "😀", "E'", "U&", "\\0041", "-", "0", "NaN", "\t",
    ];
    let n = rng.random_range(0..8);
    (0..n)
        .map(|_| PARTS[rng.random_range(0..PARTS.len())])
        .collect()
}

fn random_int(rng: &mut SmallRng) -> i64 {
    const EDGES: &[i64] = &[
        i64::MIN,
        i64::MIN + 1,
        i64::MAX,
        i32::MIN as i64,
        i32::MIN as i64 - 1,
        i32::MAX as i64,
        i32::MAX as i64 + 1,
        -1,
        0,
        1,
        2,
    ];
    match rng.random_range(0..3) {
        0 => EDGES[rng.random_range(0..EDGES.len())],
        1 => rng.random_range(-5..5),
        _ => rng.random(),
    }
}

fn random_float(rng: &mut SmallRng) -> f64 {
    const EDGES: &[f64] = &[
        -0.0,
        0.0,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NAN,
        f64::MIN_POSITIVE,
        5e-324,
        -5e-324,
        -1e-310,
        f64::MAX,
        f64::MIN,
        -1.5,
        0.1,
    ];
    match rng.random_range(0..3) {
        0 => EDGES[rng.random_range(0..EDGES.len())],
        1 => rng.random_range(-3.0..3.0),
        _ => f64::from_bits(rng.random()),
    }
}

/// One random value and the queries it may stand in.
fn random_case(rng: &mut SmallRng) -> (ParamValue, &'static str) {
    let pick = |rng: &mut SmallRng, qs: &[&'static str]| qs[rng.random_range(0..qs.len())];
    match rng.random_range(0..4) {
        0 => {
            let q = if rng.random_bool(0.2) {
                pick(rng, INT_QUERIES)
            } else {
                pick(rng, NUMBER_QUERIES)
            };
            (ParamValue::Int(random_int(rng)), q)
        }
        1 => (
            ParamValue::Float(random_float(rng)),
            pick(rng, NUMBER_QUERIES),
        ),
        2 => (ParamValue::Text(random_text(rng)), pick(rng, TEXT_QUERIES)),
        _ => (ParamValue::Bool(rng.random()), pick(rng, BOOL_QUERIES)),
    }
}

/// The rows' first column, or the error's SQLSTATE.
type Outcome = Result<Vec<Option<String>>, String>;

fn sqlstate(e: &tokio_postgres::Error) -> String {
    e.code()
        .map_or_else(|| format!("no SQLSTATE: {e}"), |c| c.code().to_string())
}

/// The query as tributary sends it to PostgreSQL, through the simple protocol.
async fn run_inlined(client: &Client, sql: &str) -> Outcome {
    let messages = client.simple_query(sql).await.map_err(|e| sqlstate(&e))?;
    Ok(messages
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => Some(row.get(0).map(String::from)),
            _ => None,
        })
        .collect())
}

/// The query with the value bound to `$1`, cast to the type PostgreSQL gives the inlined
/// literal: `integer` or `bigint` as the number's literal would be, `float8`, `boolean`,
/// and `text` (an untyped string literal resolves to text in these queries).
async fn run_bound(client: &Client, numbered: &str, value: &ParamValue) -> Outcome {
    let (cast, bind): (&str, Box<dyn ToSql + Sync + Send>) = match value {
        ParamValue::Text(s) => ("text", Box::new(s.clone())),
        ParamValue::Int(i) => match i32::try_from(*i) {
            Ok(small) => ("int4", Box::new(small)),
            Err(_) => ("int8", Box::new(*i)),
        },
        ParamValue::Float(f) => ("float8", Box::new(*f)),
        ParamValue::Bool(b) => ("bool", Box::new(*b)),
    };
    let sql = numbered.replace("?1", &format!("($1::{cast})"));
    let rows = client
        .query(&sql, &[bind.as_ref() as &(dyn ToSql + Sync)])
        .await
        .map_err(|e| sqlstate(&e))?;
    Ok(rows.iter().map(|r| r.get::<_, Option<String>>(0)).collect())
}

#[tokio::test]
async fn inlined_parameters_mean_what_bound_parameters_mean() {
    harness::database("params_inline", SETUP).await;
    let client = harness::connect(&harness::db("params_inline")).await;
    let seed: u64 = match std::env::var("TRIBUTARY_TEST_SEED") {
        Ok(s) => s.parse().expect("TRIBUTARY_TEST_SEED is a u64"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    };
    eprintln!("seed {seed} (rerun with TRIBUTARY_TEST_SEED={seed})");
    let mut rng = SmallRng::seed_from_u64(seed);
    // Hundreds of cases, but never more than a few seconds on a busy machine.
    let (cases, budget) = (2000, Duration::from_secs(6));
    let started = Instant::now();
    let mut ran = 0;
    while ran < cases && started.elapsed() < budget {
        let (value, query) = random_case(&mut rng);
        assert!(
            !query.contains('?'),
            "the bound form replaces `?1`: {query}"
        );
        let template = SqlTemplate::parse(query).unwrap();
        let params: Params = [("x".to_string(), value.clone())].into();
        template.check_params(&params).unwrap();
        let inlined = template.render_pg_literals(&params);
        let (numbered, _) = template.render_numbered(&params);
        let want = run_bound(&client, &numbered, &value).await;
        let got = run_inlined(&client, &inlined).await;
        assert_eq!(
            got, want,
            "seed {seed}, case {ran}, value {value:?}\nquery:   {query}\ninlined: {inlined}\nbound:   {numbered}"
        );
        ran += 1;
    }
    eprintln!("{ran} cases in {:?}", started.elapsed());
    assert!(ran >= 100, "only {ran} cases ran in {budget:?}");
}

#[tokio::test]
async fn negative_zero_after_a_minus_keeps_the_rest_of_the_line() {
    let url = harness::database(
        "params_negzero",
        "CREATE TABLE orders (id int, quantity int, region text);
         INSERT INTO orders VALUES (1, 5, 'eu'), (2, 7, 'us'), (3, 9, 'zz'), (4, 0, 'zz')",
    )
    .await;
    let job = Job::new(
        "SELECT id FROM orders WHERE quantity > 1-:f AND region = 'zz' ORDER BY id",
        &[("s", &url)],
    );
    let job_file = job.dir.path().join("job.toml");
    std::fs::write(&job_file, "[params]\nf = -0.0\n").unwrap();
    let mut job = job;
    job.args.job = Some(job_file);
    let batch = concat(&job.run_ok().await);
    // quantity > 1 AND region = 'zz' holds for order 3 alone; were the filter on region
    // commented out, orders 1 and 2 would come too.
    assert_eq!(i64_column(&batch, "id"), [Some(3)]);

    // The reproduction with the region that matches nothing: no rows at all.
    let empty = Job::new(
        "SELECT id FROM orders WHERE quantity > 1-:f AND region = 'none'",
        &[("s", &url)],
    );
    let job_file = empty.dir.path().join("job.toml");
    std::fs::write(&job_file, "[params]\nf = -0.0\n").unwrap();
    let mut empty = empty;
    empty.args.job = Some(job_file);
    let batches = empty.run_ok().await;
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 0);
}

#[tokio::test]
async fn slices_take_columns_and_parenthesised_parameters() {
    let url = harness::database(
        "params_slices",
        "CREATE TABLE t (arr int[], lo int, hi int);
         INSERT INTO t VALUES ('{10,20,30,40,50}', 2, 3)",
    )
    .await;
    let job = Job::new(
        "SELECT array_to_string(arr[lo:hi], ',') AS cols,
                array_to_string(arr[:hi], ',') AS upto,
                array_to_string(arr[(:a):(:b)], ',') AS params,
                arr[(:a)] AS one
         FROM t",
        &[("s", &url)],
    )
    .param("a", "4")
    .param("b", "5");
    let batch = concat(&job.run_ok().await);
    assert_eq!(
        harness::str_column(&batch, "cols"),
        [Some("20,30".to_string())]
    );
    assert_eq!(
        harness::str_column(&batch, "upto"),
        [Some("10,20,30".to_string())]
    );
    assert_eq!(
        harness::str_column(&batch, "params"),
        [Some("40,50".to_string())]
    );
    assert_eq!(i64_column(&batch, "one"), [Some(40)]);
}
