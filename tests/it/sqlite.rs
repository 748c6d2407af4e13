//! SQLite shards: the typing rule, bound parameters, and SQLite beside PostgreSQL.

use arrow::array::AsArray;
use arrow::datatypes::{DataType, Float64Type, TimeUnit};
use tributary::error::exit;

use crate::harness::{self, Job, concat, i64_column, sqlite_db, str_column};

#[tokio::test]
async fn declared_types_then_values_decide_column_types() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_db(
        dir.path(),
        "a.db",
        "CREATE TABLE t (id INTEGER, name TEXT, price REAL, day DATE, at DATETIME, ok BOOLEAN, raw BLOB, n NUMERIC);
         INSERT INTO t VALUES (1, 'a', 1.5, '2024-01-31', '2024-01-31 10:00:00.25', 1, x'00ff', 7);
         INSERT INTO t VALUES (2, NULL, 2, NULL, '2024-02-01T00:00:00Z', 0, NULL, 7.5);",
    );
    let job = Job::new(
        "SELECT id, name, price, day, at, ok, raw, n, id * 2 AS twice, sum(price) OVER () AS total FROM t ORDER BY id",
        &[("a", &url)],
    );
    // The window sees one shard's rows: what --combine off asks for.
    let mut job = job;
    job.args.combine = Some(false);
    let batch = concat(&job.run_ok().await);
    let schema = batch.schema();
    let ty = |n: &str| schema.field_with_name(n).unwrap().data_type().clone();
    assert_eq!(ty("id"), DataType::Int64);
    assert_eq!(ty("name"), DataType::Utf8);
    assert_eq!(ty("price"), DataType::Float64);
    assert_eq!(ty("day"), DataType::Date32);
    assert_eq!(ty("at"), DataType::Timestamp(TimeUnit::Microsecond, None));
    assert_eq!(ty("ok"), DataType::Boolean);
    assert_eq!(ty("raw"), DataType::Binary);
    assert_eq!(
        ty("n"),
        DataType::Float64,
        "NUMERIC is typed by its values (an int and a real)"
    );
    assert_eq!(ty("twice"), DataType::Int64);
    assert_eq!(ty("total"), DataType::Float64);
    assert_eq!(i64_column(&batch, "twice"), [Some(2), Some(4)]);
    assert_eq!(str_column(&batch, "name"), [Some("a".into()), None]);
    let price = batch
        .column_by_name("price")
        .unwrap()
        .as_primitive::<Float64Type>();
    assert_eq!(price.values().to_vec(), [1.5, 2.0]);
    let at = batch
        .column_by_name("at")
        .unwrap()
        .as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
    assert_eq!(at.value(0), 1_706_695_200_250_000);
    assert_eq!(at.value(1), 1_706_745_600_000_000);
}

#[tokio::test]
async fn a_value_that_does_not_fit_its_declared_type_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_db(
        dir.path(),
        "a.db",
        "CREATE TABLE t (qty INTEGER); INSERT INTO t VALUES (1), ('lots');",
    );
    let err = Job::new("SELECT qty FROM t", &[("a", &url)])
        .run_err()
        .await;
    let msg = err.to_string();
    assert!(
        msg.contains("shard `a`") && msg.contains("`qty`") && msg.contains("'lots'"),
        "{msg}"
    );
    assert_eq!(err.exit_code(), exit::DATA);
}

#[tokio::test]
async fn parameters_are_bound_not_spliced() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_db(
        dir.path(),
        "a.db",
        "CREATE TABLE t (name TEXT); INSERT INTO t VALUES ('x'), ('it''s; DROP TABLE t; --');",
    );
    let nasty = "it's; DROP TABLE t; --";
    let job = Job::new(
        "SELECT name, :v AS echoed FROM t WHERE name = :v",
        &[("a", &url)],
    )
    .param("v", nasty);
    let batch = concat(&job.run_ok().await);
    assert_eq!(str_column(&batch, "name"), [Some(nasty.to_string())]);
    assert_eq!(str_column(&batch, "echoed"), [Some(nasty.to_string())]);
}

#[tokio::test]
async fn a_missing_sqlite_file_is_an_unavailable_shard() {
    let dir = tempfile::tempdir().unwrap();
    let missing = format!("sqlite://{}", dir.path().join("nope.db").display());
    let err = Job::new("SELECT 1 AS x", &[("gone", &missing)])
        .run_err()
        .await;
    assert!(err.to_string().contains("shard `gone`"), "{err}");
    assert_eq!(err.exit_code(), exit::UNAVAILABLE);
    assert!(
        !dir.path().join("nope.db").exists(),
        "a read-only open must not create the file"
    );
}

#[tokio::test]
async fn sqlite_and_postgres_shards_merge_into_one_file() {
    let dir = tempfile::tempdir().unwrap();
    let lite = sqlite_db(
        dir.path(),
        "a.db",
        "CREATE TABLE t (id INTEGER, name TEXT); INSERT INTO t VALUES (1, 'lite');",
    );
    let pg = harness::database(
        "mixed",
        "CREATE TABLE t (id bigint, name text); INSERT INTO t VALUES (2, 'pg')",
    )
    .await;
    let mut job = Job::new("SELECT id, name FROM t", &[("lite", &lite), ("pg", &pg)]);
    job.args.shard_column = Some("src".into());
    let batch = concat(&job.run_ok().await);
    let mut rows: Vec<(i64, String, String)> = i64_column(&batch, "id")
        .into_iter()
        .zip(str_column(&batch, "name"))
        .zip(str_column(&batch, "src"))
        .map(|((i, n), s)| (i.unwrap(), n.unwrap(), s.unwrap()))
        .collect();
    rows.sort();
    assert_eq!(
        rows,
        [
            (1, "lite".into(), "lite".into()),
            (2, "pg".into(), "pg".into())
        ]
    );
}
