//! PostgreSQL shards: types read back value by value, deadlines with server-side cancel,
//! and the failures that must leave no output.

use std::time::{Duration, Instant};

use arrow::array::{
    Array, AsArray, BinaryArray, BooleanArray, Date32Array, Decimal128Array, FixedSizeBinaryArray,
    Float32Array, Float64Array, Int16Array, Int32Array, Int64Array, StringArray,
    Time64MicrosecondArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, TimeUnit};
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use tributary::error::{Error, TaskErrorKind, exit};

use crate::harness::{self, Job, concat, i64_column, str_column};

const TYPES_SETUP: &str = r#"
CREATE TABLE types (
    id int PRIMARY KEY,
    b bool, i2 int2, i4 int4, i8 int8, f4 float4, f8 float8,
    n numeric(12,3), nu numeric, t text, vc varchar(20), bp char(5), nm name,
    by bytea, d date, tm time, ts timestamp, tz timestamptz, u uuid, j json, jb jsonb
);
INSERT INTO types VALUES
 (1, true, 32767, 2147483647, 9223372036854775807, 3.5, 1e308, 123456789.123,
  12345678901234567890.000000001, 'héllo ✓ "quoted"', 'varchar', 'ab', 'a_name',
  '\x00ff10', '2024-02-29', '23:59:59.999999', '2024-02-29 12:34:56.789012',
  '2024-02-29 12:34:56.789012+02', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
  '{"k": [1, 2.5, "x"]}', '{"k": [1, 2.5, "x"]}'),
 (2, false, -32768, -2147483648, -9223372036854775808, -0.25, -1.5e-300, -0.001,
  -0.5, '', '', '', '', '', '0001-01-01', '00:00:00', '1900-01-01 00:00:00',
  '1970-01-01 00:00:00+00', '00000000-0000-0000-0000-000000000000', '[]', '{}'),
 (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (4, true, 0, 0, 0, 'NaN', 'Infinity', 0, 'NaN', 'multi
line', 'x', 'abcde', 'n', '\x', '2262-04-11', '12:00:00.5', '2100-12-31 23:59:59.999999',
  '1969-12-31 23:59:59.999999+00', 'ffffffff-ffff-ffff-ffff-ffffffffffff', 'null', '"s"');
"#;

fn col<'a, T: 'static>(batch: &'a arrow::array::RecordBatch, name: &str) -> &'a T {
    batch
        .column_by_name(name)
        .unwrap_or_else(|| panic!("no column {name}"))
        .as_any()
        .downcast_ref::<T>()
        .unwrap_or_else(|| {
            panic!(
                "column {name} has type {}",
                batch.column_by_name(name).unwrap().data_type()
            )
        })
}

fn opt<T>(array: &dyn Array, i: usize, value: impl FnOnce() -> T) -> Option<T> {
    (!array.is_null(i)).then(value)
}

fn decimal_text(v: i128, scale: u32) -> String {
    let sign = if v < 0 { "-" } else { "" };
    let abs = v.unsigned_abs();
    let p = 10u128.pow(scale);
    format!(
        "{sign}{}.{:0width$}",
        abs / p,
        abs % p,
        width = scale as usize
    )
}

#[tokio::test]
async fn every_listed_type_reads_back_as_postgres_returns_it() {
    let url = harness::database("types", TYPES_SETUP).await;
    let job = Job::new("SELECT * FROM types ORDER BY id", &[("only", &url)]);
    let batch = concat(&job.run_ok().await);

    // The schema: exact decimals, UTC-tagged timestamptz, UUID and JSON tagged as such.
    let schema = batch.schema();
    let ty = |n: &str| schema.field_with_name(n).unwrap().data_type().clone();
    assert_eq!(ty("n"), DataType::Decimal128(12, 3));
    assert_eq!(ty("nu"), DataType::Utf8);
    assert_eq!(
        ty("tz"),
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
    );
    assert_eq!(ty("ts"), DataType::Timestamp(TimeUnit::Microsecond, None));
    assert_eq!(
        schema.field_with_name("u").unwrap().extension_type_name(),
        Some("arrow.uuid")
    );
    assert_eq!(
        schema.field_with_name("jb").unwrap().extension_type_name(),
        Some("arrow.json")
    );

    // What PostgreSQL returns for the same rows, through tokio-postgres' own decoders.
    let client = harness::connect(&harness::db("types")).await;
    let rows = client
        .query(
            "SELECT *, n::text AS n_text, nu::text AS nu_text, j::text AS j_text, jb::text AS jb_text FROM types ORDER BY id",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(batch.num_rows(), rows.len());
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
    for (i, row) in rows.iter().enumerate() {
        let b = col::<BooleanArray>(&batch, "b");
        assert_eq!(
            opt(b, i, || b.value(i)),
            row.get::<_, Option<bool>>("b"),
            "b row {i}"
        );
        let a = col::<Int16Array>(&batch, "i2");
        assert_eq!(opt(a, i, || a.value(i)), row.get::<_, Option<i16>>("i2"));
        let a = col::<Int32Array>(&batch, "i4");
        assert_eq!(opt(a, i, || a.value(i)), row.get::<_, Option<i32>>("i4"));
        let a = col::<Int64Array>(&batch, "i8");
        assert_eq!(opt(a, i, || a.value(i)), row.get::<_, Option<i64>>("i8"));
        let a = col::<Float32Array>(&batch, "f4");
        let want = row.get::<_, Option<f32>>("f4");
        assert_eq!(
            opt(a, i, || a.value(i).to_bits()),
            want.map(f32::to_bits),
            "f4 row {i}"
        );
        let a = col::<Float64Array>(&batch, "f8");
        let want = row.get::<_, Option<f64>>("f8");
        assert_eq!(
            opt(a, i, || a.value(i).to_bits()),
            want.map(f64::to_bits),
            "f8 row {i}"
        );
        let a = col::<Decimal128Array>(&batch, "n");
        assert_eq!(
            opt(a, i, || decimal_text(a.value(i), 3)),
            row.get::<_, Option<String>>("n_text"),
            "n row {i}"
        );
        let a = col::<StringArray>(&batch, "nu");
        assert_eq!(
            opt(a, i, || a.value(i).to_string()),
            row.get::<_, Option<String>>("nu_text"),
            "nu row {i}"
        );
        for name in ["t", "vc", "bp", "nm"] {
            let a = col::<StringArray>(&batch, name);
            assert_eq!(
                opt(a, i, || a.value(i).to_string()),
                row.get::<_, Option<String>>(name),
                "{name} row {i}"
            );
        }
        let a = col::<BinaryArray>(&batch, "by");
        assert_eq!(
            opt(a, i, || a.value(i).to_vec()),
            row.get::<_, Option<Vec<u8>>>("by"),
            "by row {i}"
        );
        let a = col::<Date32Array>(&batch, "d");
        let want = row.get::<_, Option<NaiveDate>>("d");
        assert_eq!(
            opt(a, i, || epoch + chrono::Duration::days(a.value(i) as i64)),
            want,
            "d row {i}"
        );
        let a = col::<Time64MicrosecondArray>(&batch, "tm");
        let want = row.get::<_, Option<NaiveTime>>("tm");
        let midnight = NaiveTime::from_hms_opt(0, 0, 0).unwrap();
        assert_eq!(
            opt(a, i, || midnight
                + chrono::Duration::microseconds(a.value(i))),
            want,
            "tm row {i}"
        );
        let a = col::<TimestampMicrosecondArray>(&batch, "ts");
        let want = row.get::<_, Option<NaiveDateTime>>("ts");
        assert_eq!(
            opt(a, i, || DateTime::from_timestamp_micros(a.value(i))
                .unwrap()
                .naive_utc()),
            want,
            "ts row {i}"
        );
        let a = col::<TimestampMicrosecondArray>(&batch, "tz");
        let want = row.get::<_, Option<DateTime<Utc>>>("tz");
        assert_eq!(
            opt(a, i, || DateTime::from_timestamp_micros(a.value(i))
                .unwrap()),
            want,
            "tz row {i}"
        );
        let a = col::<FixedSizeBinaryArray>(&batch, "u");
        let want = row.get::<_, Option<uuid::Uuid>>("u");
        assert_eq!(
            opt(a, i, || uuid::Uuid::from_slice(a.value(i)).unwrap()),
            want,
            "u row {i}"
        );
        for (name, text) in [("j", "j_text"), ("jb", "jb_text")] {
            let a = col::<StringArray>(&batch, name);
            assert_eq!(
                opt(a, i, || a.value(i).to_string()),
                row.get::<_, Option<String>>(text),
                "{name} row {i}"
            );
        }
    }
    // The row of NULLs is NULL everywhere: never 0, '' or 1970.
    for column in batch.columns().iter().skip(1) {
        assert!(column.is_null(2), "row 3 should be NULL in every column");
    }
}

/// An `orders` table holding ids `first..=last` (none when `last < first`).
fn shards_setup(first: i64, last: i64) -> String {
    format!(
        "CREATE TABLE orders (id bigint PRIMARY KEY, region text NOT NULL, amount numeric(10,2) NOT NULL);
         INSERT INTO orders SELECT g, 'r' || (g % 3), (g % 1000) / 7.0 FROM generate_series({}, {}) g;",
        first, last
    )
}

#[tokio::test]
async fn shards_are_merged_with_a_shard_column_and_recorded_in_metadata() {
    let a = harness::database("merge_a", &shards_setup(1, 20_000)).await;
    let b = harness::database("merge_b", &shards_setup(20_001, 50_000)).await;
    let c = harness::database("merge_c", &shards_setup(1, 0)).await;
    let mut job = Job::new(
        "SELECT id, region, amount FROM orders WHERE id >= :min",
        &[("a", &a), ("b", &b), ("c", &c)],
    )
    .param("min", "11");
    job.args.shard_column = Some("shard".into());
    job.args.row_group_size = Some(4096);
    let batch = concat(&job.run_ok().await);
    assert_eq!(batch.num_rows(), 50_000 - 10);

    let ids = i64_column(&batch, "id");
    let shards = str_column(&batch, "shard");
    let mut seen = std::collections::HashSet::new();
    for (id, shard) in ids.iter().zip(&shards) {
        let id = id.unwrap();
        assert!(seen.insert(id), "id {id} written twice");
        let expected = if id <= 20_000 { "a" } else { "b" };
        assert_eq!(shard.as_deref(), Some(expected), "id {id}");
    }
    // Sums agree with the databases' own.
    let amounts = batch
        .column_by_name("amount")
        .unwrap()
        .as_primitive::<arrow::datatypes::Decimal128Type>();
    let total: i128 = amounts.iter().map(|v| v.unwrap()).sum();
    let mut expected = 0i128;
    for db in ["merge_a", "merge_b"] {
        let client = harness::connect(&harness::db(db)).await;
        let row = client
            .query_one(
                "SELECT (sum(amount) * 100)::bigint FROM orders WHERE id >= 11",
                &[],
            )
            .await
            .unwrap();
        expected += row.get::<_, i64>(0) as i128;
    }
    assert_eq!(total, expected);

    let meta = harness::parquet_metadata(&job.output());
    assert_eq!(
        meta["tributary.query"],
        "SELECT id, region, amount FROM orders WHERE id >= :min"
    );
    assert_eq!(meta["tributary.params"], r#"{"min":"11"}"#);
    assert_eq!(meta["tributary.shards"], r#"["a","b","c"]"#);
    assert_eq!(meta["tributary.version"], env!("CARGO_PKG_VERSION"));
    let tasks: serde_json::Value = serde_json::from_str(&meta["tributary.tasks"]).unwrap();
    assert_eq!(tasks[0]["rows"], 19_990);
    assert_eq!(tasks[2]["rows"], 0);
}

#[tokio::test]
async fn a_query_past_its_deadline_is_cancelled_on_the_server() {
    let url = harness::database("deadline_sleepy", "SELECT 1").await;
    let fast = harness::database("deadline_fast", "SELECT 1").await;
    let mut job = Job::new(
        "SELECT pg_sleep(CASE WHEN current_database() LIKE '%deadline_sleepy' THEN 60 ELSE 0 END)::text AS slept, 'tributary-deadline-marker' AS m",
        &[("sleepy", &url), ("fast", &fast)],
    );
    job.args.query_timeout = Some(Duration::from_secs(1));
    let started = Instant::now();
    let err = job.run_err().await;
    let msg = err.to_string();
    assert!(
        msg.contains("shard `sleepy`") && msg.contains("timed out after 1s"),
        "{msg}"
    );
    assert!(err.is_timeout());
    assert_eq!(err.exit_code(), exit::TIMEOUT);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the run took {:?}",
        started.elapsed()
    );
    // The statement is gone on the server within a couple of seconds.
    harness::assert_gone("tributary-deadline-marker", Duration::from_secs(2)).await;
}

#[tokio::test]
async fn bad_sql_on_one_shard_names_the_shard_and_the_server_error() {
    let good = harness::database(
        "badsql_good",
        "CREATE TABLE t (x int); INSERT INTO t VALUES (1)",
    )
    .await;
    let bad = harness::database("badsql_bad", "SELECT 1").await;
    let job = Job::new("SELECT x FROM t", &[("good", &good), ("bad", &bad)]);
    let err = job.run_err().await;
    let msg = err.to_string();
    assert!(
        msg.contains("shard `bad`")
            && msg.contains("relation \"t\" does not exist")
            && msg.contains("42P01"),
        "{msg}"
    );
    assert_eq!(err.exit_code(), exit::DATA);
}

#[tokio::test]
async fn an_unreachable_shard_is_named_and_nothing_is_written() {
    let good = harness::database("unreach_good", "SELECT 1").await;
    let job = Job::new(
        "SELECT 1 AS x",
        &[
            ("good", &good),
            ("gone", "postgres://postgres@127.0.0.1:1/nothing"),
        ],
    );
    let err = job.run_err().await;
    let msg = err.to_string();
    assert!(
        msg.contains("shard `gone`")
            && msg.contains("cannot connect to postgres://postgres@127.0.0.1:1/nothing"),
        "{msg}"
    );
    assert_eq!(err.exit_code(), exit::UNAVAILABLE);
}

#[tokio::test]
async fn a_schema_mismatch_names_the_column_and_both_shards() {
    let a = harness::database("mismatch_a", "CREATE TABLE t (id int, v int)").await;
    let b = harness::database("mismatch_b", "CREATE TABLE t (id int, v text)").await;
    let job = Job::new("SELECT id, v FROM t", &[("a", &a), ("b", &b)]);
    let err = job.run_err().await;
    let msg = err.to_string();
    assert!(matches!(err, Error::SchemaMismatch { .. }), "{msg}");
    assert!(
        msg.contains("`a`")
            && msg.contains("`b`")
            && msg.contains("column `v`")
            && msg.contains("Int32")
            && msg.contains("Utf8"),
        "{msg}"
    );
    assert_eq!(err.exit_code(), exit::DATA);
}

#[tokio::test]
async fn parameter_values_are_literals_never_sql() {
    let url = harness::database("params", "CREATE TABLE t (x int); INSERT INTO t VALUES (1)").await;
    let nasty = r#"it's'); DROP TABLE t; -- \' "x" $$ :other"#;
    let job = Job::new("SELECT :v AS v, count(*) AS n FROM t", &[("s", &url)]).param("v", nasty);
    let batch = concat(&job.run_ok().await);
    assert_eq!(str_column(&batch, "v"), [Some(nasty.to_string())]);
    let client = harness::connect(&harness::db("params")).await;
    let n: i64 = client
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1, "the table must be untouched");
}

#[tokio::test]
async fn allow_partial_writes_exactly_the_healthy_shards() {
    let good = harness::database("partial_good", &shards_setup(1, 30_000)).await;
    // Fails with a division by zero after streaming 20,000 rows.
    let failing = harness::database(
        "partial_bad",
        "CREATE TABLE orders AS SELECT g::bigint AS id, 'r' AS region, 1.5::numeric(10,2) AS amount FROM generate_series(100001, 140000) g",
    )
    .await;
    let mut job = Job::new(
        "SELECT id, region, (amount / CASE WHEN id = 120001 THEN 0 ELSE 1 END)::numeric(10,2) AS amount FROM orders",
        &[("good", &good), ("failing", &failing)],
    );
    job.args.allow_partial = true;
    job.args.row_group_size = Some(1000);
    let (report, result) = job.run().await;
    let err = result.expect_err("one shard failed");
    assert!(
        matches!(
            err,
            Error::Partial {
                failed: 1,
                total: 2,
                combined: false
            }
        ),
        "{err}"
    );
    assert_eq!(err.exit_code(), exit::PARTIAL);
    assert!(report.to_string().contains("division by zero"), "{report}");
    // The failing shard had streamed (and written) rows before the error: they must go.
    assert!(report.tasks[1].rows >= 1000, "{report}");
    let batch = harness::read_batch(&job.output());
    let mut ids: Vec<i64> = i64_column(&batch, "id")
        .into_iter()
        .map(Option::unwrap)
        .collect();
    ids.sort();
    assert_eq!(ids, (1..=30_000).collect::<Vec<_>>());
    harness::assert_no_temporaries(job.dir.path());
}

#[tokio::test]
async fn a_failed_run_leaves_an_existing_output_untouched() {
    let url = harness::database("untouched", "SELECT 1").await;
    let job = Job::new("SELECT x FROM missing_table", &[("s", &url)]);
    std::fs::write(job.output(), b"yesterday's file").unwrap();
    let (_, result) = job.run().await;
    assert!(
        matches!(result, Err(Error::Task(ref e)) if matches!(e.kind, TaskErrorKind::Server { .. }))
    );
    assert_eq!(std::fs::read(job.output()).unwrap(), b"yesterday's file");
    harness::assert_no_temporaries(job.dir.path());
}

#[tokio::test]
async fn shards_run_concurrently() {
    let mut shards = Vec::new();
    for i in 0..4 {
        shards.push(harness::database(&format!("concurrent_{i}"), "SELECT 1").await);
    }
    let named: Vec<(String, &str)> = shards
        .iter()
        .enumerate()
        .map(|(i, u)| (format!("s{i}"), u.as_str()))
        .collect();
    let refs: Vec<(&str, &str)> = named.iter().map(|(n, u)| (n.as_str(), *u)).collect();
    let job = Job::new("SELECT pg_sleep(1)::text AS slept", &refs);
    let started = Instant::now();
    let batch = concat(&job.run_ok().await);
    assert_eq!(batch.num_rows(), 4);
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_millis(3500),
        "4 shards sleeping 1s took {elapsed:?}: not concurrent"
    );
}

/// Many rows of mixed columns: unique ids, prices, timestamps and long comments (whose
/// dictionaries outgrow the limit and fall back to plain encoding), low-cardinality
/// columns (which keep theirs), and NULLs in each.
const ENCODING_SETUP: &str = r#"
CREATE TABLE wide AS
SELECT g::bigint AS id,
       CASE WHEN g % 97 = 0 THEN NULL ELSE g % 5 END AS grp,
       (CASE WHEN g % 89 = 0 THEN NULL ELSE ((g * 7919) % 1000000) / 100.0 END)::numeric(15,2) AS price,
       CASE WHEN g % 83 = 0 THEN NULL ELSE g * 0.5::float8 END AS f,
       CASE WHEN g % 79 = 0 THEN NULL ELSE g % 3 = 0 END AS flag,
       CASE WHEN g % 73 = 0 THEN NULL
            ELSE timestamptz '2020-01-01 00:00:00+00' + g * interval '1 second' END AS ts,
       CASE WHEN g % 71 = 0 THEN NULL ELSE (ARRAY['AIR', 'RAIL', 'SHIP'])[g % 3 + 1] END AS mode,
       CASE WHEN g % 67 = 0 THEN NULL ELSE md5(g::text) || ' ' || repeat('x', g % 40) END AS comment
FROM generate_series(1, 40000) AS g;
"#;

#[tokio::test]
async fn parallel_encoding_writes_the_values_one_thread_writes() {
    let url = harness::database("parallel_encoding", ENCODING_SETUP).await;
    let mut job = Job::new("SELECT * FROM wide ORDER BY id", &[("s", &url)]);
    // Decoded batches (8192 rows) are cut to fill row groups of exactly the size asked,
    // and several groups are written.
    job.args.row_group_size = Some(10_000);
    let one = concat(&job.run_ok_with(|c| c.options.encoder_threads = 1).await);
    assert_eq!(harness::row_group_rows(&job.output()), [10_000; 4]);
    let four = concat(&job.run_ok_with(|c| c.options.encoder_threads = 4).await);
    assert_eq!(harness::row_group_rows(&job.output()), [10_000; 4]);
    assert_eq!(one, four, "4 encoder threads wrote other values than 1");

    // And the values are the database's, row by row.
    let client = harness::connect(&harness::db("parallel_encoding")).await;
    let rows = client
        .query(
            "SELECT id, grp::bigint, (price * 100)::bigint, f, flag,
                    (extract(epoch FROM ts) * 1000000)::bigint, mode, comment
             FROM wide ORDER BY id",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(four.num_rows(), rows.len());
    let ids = i64_column(&four, "id");
    let grp = i64_column(&four, "grp");
    let price = col::<Decimal128Array>(&four, "price");
    let f = col::<Float64Array>(&four, "f");
    let flag = col::<BooleanArray>(&four, "flag");
    let ts = col::<TimestampMicrosecondArray>(&four, "ts");
    let mode = str_column(&four, "mode");
    let comment = str_column(&four, "comment");
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(ids[i], Some(row.get::<_, i64>(0)), "row {i}");
        assert_eq!(grp[i], row.get::<_, Option<i64>>(1), "row {i}");
        assert_eq!(
            opt(price, i, || price.value(i) as i64),
            row.get::<_, Option<i64>>(2),
            "row {i}"
        );
        assert_eq!(
            opt(f, i, || f.value(i)),
            row.get::<_, Option<f64>>(3),
            "row {i}"
        );
        assert_eq!(
            opt(flag, i, || flag.value(i)),
            row.get::<_, Option<bool>>(4),
            "row {i}"
        );
        assert_eq!(
            opt(ts, i, || ts.value(i)),
            row.get::<_, Option<i64>>(5),
            "row {i}"
        );
        assert_eq!(mode[i], row.get::<_, Option<String>>(6), "row {i}");
        assert_eq!(comment[i], row.get::<_, Option<String>>(7), "row {i}");
    }
}

#[tokio::test]
async fn a_row_group_closes_once_its_rows_hold_row_group_bytes() {
    let url = harness::database("wide_rows", "").await;
    // 160 rows of 1 MiB: the first group closes once its rows pass 128 MiB as Arrow
    // data, long before the row count.
    let job = Job::new(
        "SELECT g::bigint AS g, repeat('x', 1048576) AS v FROM generate_series(1, 160) AS g",
        &[("s", &url)],
    );
    let all = concat(&job.run_ok().await);
    let groups = harness::row_group_rows(&job.output());
    let limit = (tributary::merge::ROW_GROUP_BYTES >> 20) as i64;
    assert_eq!(groups.len(), 2, "{groups:?}");
    assert!(
        (limit..limit + 8).contains(&groups[0]),
        "the first group closed at {} rows: {groups:?}",
        groups[0]
    );
    assert_eq!(groups.iter().sum::<i64>(), 160);
    let g = i64_column(&all, "g");
    assert_eq!(g, (1..=160).map(Some).collect::<Vec<_>>());
    let v = str_column(&all, "v");
    assert!(
        v.iter()
            .all(|v| v.as_deref().map(str::len) == Some(1 << 20))
    );
}

#[tokio::test]
async fn a_column_that_outgrew_its_dictionary_skips_it_for_the_next_row_groups() {
    let url = harness::database("dictionary_retry", ENCODING_SETUP).await;
    let mut job = Job::new(
        "SELECT id, mode, comment FROM wide ORDER BY id",
        &[("s", &url)],
    );
    // In groups of 2000 rows: `comment` (about 50 bytes, all distinct) outgrows the
    // 64 KiB dictionary limit in every group; `mode` (3 values) is smaller with its
    // dictionary; `id` (2000 distinct values a group, 16 KB) fits in a dictionary, but
    // delta-encoded, a sequence takes almost nothing.
    job.args.row_group_size = Some(2000);
    let batches = job.run_ok().await;
    let footer = harness::parquet_footer(&job.output());
    let groups = footer.row_groups();
    assert_eq!(groups.len(), 20);
    let with_dictionary = |column: usize| -> Vec<usize> {
        (0..groups.len())
            .filter(|&g| groups[g].column(column).dictionary_page_offset().is_some())
            .collect()
    };
    // Tried in the first group, skipped for 8 groups, tried again, skipped for 16.
    assert_eq!(with_dictionary(2), [0, 9], "comment");
    // A trial without the dictionary after the first group, lost, and again 8 groups
    // later.
    let mut mode: Vec<usize> = (0..20).collect();
    mode.retain(|g| ![1, 10].contains(g));
    assert_eq!(with_dictionary(1), mode, "mode");
    // The trial after the first group is won: 8 groups without, one with, a trial won
    // again, 16 groups without.
    assert_eq!(with_dictionary(0), [0, 10], "id");
    let bytes = |column: usize, g: usize| groups[g].column(column).compressed_size();
    assert!(
        bytes(0, 1) * 4 < bytes(0, 0),
        "id: {} bytes without a dictionary, {} with",
        bytes(0, 1),
        bytes(0, 0)
    );
    assert!(
        bytes(1, 0) < bytes(1, 1),
        "mode: {} bytes with a dictionary, {} without",
        bytes(1, 0),
        bytes(1, 1)
    );
    let all = concat(&batches);
    assert_eq!(
        i64_column(&all, "id"),
        (1..=40000).map(Some).collect::<Vec<_>>()
    );
    let comment = str_column(&all, "comment");
    let client = harness::connect(&harness::db("dictionary_retry")).await;
    let rows = client
        .query("SELECT comment FROM wide ORDER BY id", &[])
        .await
        .unwrap();
    assert_eq!(comment.len(), rows.len());
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(comment[i], row.get::<_, Option<String>>(0), "row {i}");
    }
}
