//! Partitions within a shard: for each kind, the partitioned output holds exactly the rows
//! of the unpartitioned one; all partitions of a shard read one snapshot.

use std::time::Duration;

use arrow::array::RecordBatch;
use tributary::config::{PageSplit, PartitionSpec};
use tributary::error::{Error, TaskErrorKind, exit};
use tributary::sql::KeyValue;

use crate::harness::{self, Job, concat, i64_column, str_column};

/// Skewed keys (most rows share one value), negatives, NULLs, dates and timestamps.
const SETUP: &str = "
CREATE TABLE t (id bigint PRIMARY KEY, k int, day date, at timestamptz, label text);
INSERT INTO t
SELECT g,
       CASE WHEN g % 10 = 0 THEN NULL WHEN g % 3 = 0 THEN 7 ELSE g - 5000 END,
       CASE WHEN g % 11 = 0 THEN NULL ELSE date '2024-01-01' + (g % 400) END,
       CASE WHEN g % 13 = 0 THEN NULL ELSE timestamptz '2024-01-01 00:00:00+00' + g * interval '17 minutes 3.25 seconds' END,
       CASE WHEN g % 17 = 0 THEN NULL ELSE 'label ' || (g % 101) END
FROM generate_series(1, 20000) g;
";

fn rows(batch: &RecordBatch) -> Vec<(i64, Option<i64>, Option<String>)> {
    let mut rows: Vec<_> = i64_column(batch, "id")
        .into_iter()
        .zip(i64_column(batch, "k"))
        .zip(str_column(batch, "label"))
        .map(|((id, k), label)| (id.unwrap(), k, label))
        .collect();
    rows.sort();
    rows
}

async fn whole(url: &str, sql: &str) -> Vec<(i64, Option<i64>, Option<String>)> {
    rows(&concat(&Job::new(sql, &[("s", url)]).run_ok().await))
}

async fn split(
    url: &str,
    sql: &str,
    spec: PartitionSpec,
    concurrency: usize,
) -> (Vec<(i64, Option<i64>, Option<String>)>, Job) {
    let mut job = Job::new(sql, &[("s", url)]);
    job.args.concurrency = Some(concurrency);
    job.args.pool_size = Some(concurrency);
    let mut config = tributary::JobConfig::resolve(job.args.clone()).unwrap();
    config.options.partition = Some(spec);
    let (report, result) = tributary::run(&config, false, std::future::pending()).await;
    if let Err(e) = result {
        panic!("partitioned run failed: {e}\n{report}");
    }
    assert!(report.tasks.len() > 1, "{report}");
    (rows(&harness::read_batch(&job.output())), job)
}

const QUERY: &str = "SELECT id, k, day, at, label FROM t WHERE id <> 42";

#[tokio::test]
async fn range_partitions_on_integers_dates_and_timestamps_read_every_row_once() {
    let url = harness::database("part_range", SETUP).await;
    let expected = whole(&url, QUERY).await;
    assert_eq!(expected.len(), 19_999);
    for (column, n) in [("k", 5), ("id", 1), ("day", 4), ("at", 7)] {
        let spec = PartitionSpec::Range {
            column: column.into(),
            partitions: n,
            bounds: None,
        };
        let (got, job) = split(&url, QUERY, spec, 3).await;
        assert_eq!(got, expected, "range on {column} x {n}");
        let meta = harness::parquet_metadata(&job.output());
        let snapshots: serde_json::Value =
            serde_json::from_str(&meta["tributary.snapshots"]).unwrap();
        assert!(
            snapshots["s"].as_str().is_some_and(|s| !s.is_empty()),
            "{meta:?}"
        );
    }
    // Explicit bounds narrower than the data: the open-ended first and last pieces still
    // hold the rows outside them.
    let spec = PartitionSpec::Range {
        column: "k".into(),
        partitions: 3,
        bounds: Some((KeyValue::Int(0), KeyValue::Int(10))),
    };
    assert_eq!(split(&url, QUERY, spec, 2).await.0, expected);
}

#[tokio::test]
async fn hash_predicate_and_page_partitions_read_every_row_once() {
    let url = harness::database("part_kinds", SETUP).await;
    let expected = whole(&url, QUERY).await;
    let spec = PartitionSpec::Hash {
        column: "label".into(),
        partitions: 6,
    };
    assert_eq!(split(&url, QUERY, spec, 3).await.0, expected, "hash");
    let spec = PartitionSpec::Predicates(vec![
        "id < 5000".into(),
        "id >= 5000 AND id < 12000".into(),
        "id >= 12000".into(),
    ]);
    assert_eq!(split(&url, QUERY, spec, 2).await.0, expected, "predicates");
    // The page pieces go through the table's own pages: several tasks of 20, or 4.
    for (split_as, tasks) in [
        (PageSplit::PerTask(20), None),
        (PageSplit::Tasks(4), Some(4)),
    ] {
        let spec = PartitionSpec::Pages {
            table: "t".into(),
            split: split_as,
        };
        let (got, job) = split(&url, QUERY, spec, 4).await;
        assert_eq!(got, expected, "pages by {split_as:?}");
        let meta = harness::parquet_metadata(&job.output());
        let ran: serde_json::Value = serde_json::from_str(&meta["tributary.tasks"]).unwrap();
        let ran = ran.as_array().unwrap().len();
        match tasks {
            Some(n) => assert_eq!(ran, n, "{split_as:?}"),
            None => assert!(ran >= 3, "{split_as:?}: {ran} tasks"),
        }
    }
}

#[tokio::test]
async fn page_partitions_refuse_a_query_that_does_not_read_the_table_once_by_name() {
    let url = harness::database(
        "part_pages_refused",
        &format!("{SETUP} CREATE VIEW v AS SELECT * FROM t;"),
    )
    .await;
    // Each of these would read the whole table in every piece (the range shadows the
    // name `t` only), or pair rows of the same range only.
    for (sql, says) in [
        (
            "SELECT id, k, label FROM public.t",
            "does not read it through the page range",
        ),
        (
            "SELECT id, k, label FROM v",
            "does not read it through the page range",
        ),
        (
            "SELECT a.id, a.k, b.label FROM t AS a JOIN t AS b ON b.id = a.id + 1",
            "more than once",
        ),
    ] {
        let mut job = Job::new(sql, &[("s", &url)]);
        job.args.pool_size = Some(3);
        let mut config = tributary::JobConfig::resolve(job.args.clone()).unwrap();
        config.options.partition = Some(PartitionSpec::Pages {
            table: "t".into(),
            split: PageSplit::PerTask(20),
        });
        let (report, result) = tributary::run(&config, false, std::future::pending()).await;
        let err = result.expect_err(sql);
        let message = err.to_string();
        assert!(
            message.contains("shard `s`") && message.contains("`t`") && message.contains(says),
            "{sql}: {message}\n{report}"
        );
        assert_eq!(err.exit_code(), exit::DATA, "{sql}");
        assert!(!job.output().exists(), "{sql}");
    }
}

#[tokio::test]
async fn empty_results_and_single_values_split_cleanly() {
    let url = harness::database("part_edges", "CREATE TABLE t (id bigint, k int, label text); INSERT INTO t VALUES (1, 5, 'a'), (2, 5, NULL), (3, NULL, 'c');").await;
    let sql = "SELECT id, k, label FROM t";
    let expected = whole(&url, sql).await;
    let spec = PartitionSpec::Range {
        column: "k".into(),
        partitions: 8,
        bounds: None,
    };
    assert_eq!(split(&url, sql, spec, 2).await.0, expected, "min = max");
    let sql = "SELECT id, k, label FROM t WHERE id > 100";
    let mut job = Job::new(sql, &[("s", &url)]);
    job.args.partition_on = Some("k".into());
    job.args.partitions = Some(4);
    let batches = job.run_ok().await;
    assert_eq!(batches.iter().map(RecordBatch::num_rows).sum::<usize>(), 0);
}

#[tokio::test]
async fn a_range_key_of_another_type_is_refused_by_name() {
    let url = harness::database("part_badkey", "CREATE TABLE t (id bigint, label text)").await;
    let mut job = Job::new("SELECT id, label FROM t", &[("s", &url)]);
    job.args.partition_on = Some("label".into());
    job.args.partitions = Some(2);
    let err = job.run_err().await;
    let msg = err.to_string();
    assert!(
        msg.contains("shard `s`") && msg.contains("`label`") && msg.contains("hash"),
        "{msg}"
    );
    assert_eq!(err.exit_code(), exit::DATA);
}

#[tokio::test]
async fn sqlite_shards_split_on_integer_keys() {
    let dir = tempfile::tempdir().unwrap();
    let mut sql = String::from("CREATE TABLE t (id INTEGER, k INTEGER, label TEXT);");
    for i in 0..500 {
        let k = if i % 7 == 0 {
            "NULL".to_string()
        } else {
            (i - 250).to_string()
        };
        sql.push_str(&format!("INSERT INTO t VALUES ({i}, {k}, 'l{i}');"));
    }
    let url = harness::sqlite_shard(dir.path(), "a.db", &sql);
    let query = "SELECT id, k, label FROM t";
    let expected = whole(&url, query).await;
    let spec = PartitionSpec::Range {
        column: "k".into(),
        partitions: 4,
        bounds: None,
    };
    assert_eq!(split(&url, query, spec, 2).await.0, expected);
}

#[tokio::test]
async fn partitions_read_one_snapshot_while_rows_move_between_them() {
    // Rows keep moving between partitions (their key changes) and are deleted and
    // re-inserted under new ids; every committed state has the same count and sum.
    let url = harness::database(
        "part_churn",
        "CREATE TABLE t (id bigint PRIMARY KEY, k int NOT NULL, v int NOT NULL);
         INSERT INTO t SELECT g, g, g % 100 FROM generate_series(1, 5000) g;
         CREATE SEQUENCE next_id START 100000;",
    )
    .await;
    let (before_count, before_sum) = {
        let c = harness::connect(&harness::db("part_churn")).await;
        let r = c
            .query_one("SELECT count(*), sum(v) FROM t", &[])
            .await
            .unwrap();
        (r.get::<_, i64>(0), r.get::<_, i64>(1))
    };
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let db = harness::db("part_churn");
        tokio::spawn(async move {
            let c = harness::connect(&db).await;
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                c.batch_execute(
                    "BEGIN;
                     UPDATE t SET k = 5001 - k WHERE id IN (SELECT id FROM t ORDER BY random() LIMIT 20);
                     WITH gone AS (DELETE FROM t WHERE id = (SELECT id FROM t ORDER BY random() LIMIT 1) RETURNING k, v)
                     INSERT INTO t SELECT nextval('next_id'), k, v FROM gone;
                     COMMIT;",
                )
                .await
                .unwrap();
                n += 1;
            }
            n
        })
    };
    // Eight partitions read one after another, each slowed down, while the writer runs.
    let sql = "SELECT id, k, v FROM t CROSS JOIN (SELECT pg_sleep(0.15)) AS slow";
    let mut job = Job::new(sql, &[("s", &url)]);
    job.args.partition_on = Some("k".into());
    job.args.partitions = Some(8);
    job.args.concurrency = Some(1);
    let batch = concat(&job.run_ok().await);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let commits = writer.await.unwrap();
    assert!(
        commits > 10,
        "the writer committed only {commits} times during the run"
    );

    let ids = i64_column(&batch, "id");
    let unique: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "an id was read twice");
    assert_eq!(batch.num_rows() as i64, before_count);
    let sum: i64 = i64_column(&batch, "v")
        .into_iter()
        .map(Option::unwrap)
        .sum();
    assert_eq!(sum, before_sum);
}

#[tokio::test]
async fn losing_the_exporting_session_fails_the_run_cleanly() {
    let url = harness::database(
        "part_lost",
        "CREATE TABLE t (id bigint, k int); INSERT INTO t SELECT g, g FROM generate_series(1, 1000) g;",
    )
    .await;
    let db = harness::db("part_lost");
    let sql = "SELECT id, k FROM t CROSS JOIN (SELECT pg_sleep(0.4)) AS slow";
    let mut job = Job::new(sql, &[("s", &url)]);
    job.args.partition_on = Some("k".into());
    job.args.partitions = Some(6);
    job.args.concurrency = Some(1);
    let killer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let admin = harness::connect("postgres").await;
        admin
            .execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND application_name = 'tributary snapshot'",
                &[&db],
            )
            .await
            .unwrap()
    });
    let err = job.run_err().await;
    assert_eq!(
        killer.await.unwrap(),
        1,
        "the snapshot session should have been found"
    );
    match &err {
        Error::Task(e) => assert!(
            matches!(e.kind, TaskErrorKind::SnapshotLost { .. }),
            "{err}"
        ),
        other => panic!("expected a lost snapshot, got {other}"),
    }
    assert!(err.to_string().contains("snapshot lost"), "{err}");
}

#[tokio::test]
async fn without_consistency_the_summary_says_so() {
    let url = harness::database(
        "part_nosnap",
        "CREATE TABLE t (id bigint); INSERT INTO t SELECT generate_series(1, 100);",
    )
    .await;
    let mut job = Job::new("SELECT id FROM t", &[("s", &url)]);
    job.args.partition_on = Some("id".into());
    job.args.partitions = Some(3);
    job.args.no_snapshot = true;
    let (report, result) = job.run().await;
    result.unwrap();
    assert!(report.to_string().contains("consistency off"), "{report}");
    assert_eq!(
        i64_column(&harness::read_batch(&job.output()), "id").len(),
        100
    );
}

#[tokio::test]
async fn plan_prints_every_partition_with_its_sql_and_estimate() {
    let url = harness::database("part_plan", "CREATE TABLE t (id bigint, k int); INSERT INTO t SELECT g, g FROM generate_series(1, 1000) g; ANALYZE t;").await;
    let dir = tempfile::tempdir().unwrap();
    harness::write_job(dir.path(), "SELECT id, k FROM t", &url);
    let stdout = harness::succeeded(&harness::tributary_in(
        dir.path(),
        &harness::job_args(
            "plan",
            &[
                "-o",
                "o.parquet",
                "--partition-on",
                "k",
                "--partitions",
                "4",
            ],
        ),
    ));
    assert_eq!(
        stdout.matches("task ").count(),
        5,
        "4 ranges and the NULL piece:\n{stdout}"
    );
    assert!(stdout.contains("\"k\" >= 251 AND \"k\" < 501"), "{stdout}");
    assert!(stdout.contains("\"k\" IS NULL"), "{stdout}");
    assert!(stdout.contains("estimated"), "{stdout}");
    assert!(stdout.contains("reads snapshot"), "{stdout}");
    assert!(
        !dir.path().join("o.parquet").exists(),
        "plan reads no data and writes nothing"
    );
}

#[tokio::test]
async fn partitions_read_at_once_without_a_pool_size() {
    let url = harness::database("part_pool", SETUP).await;
    let db = harness::db("part_pool");
    // Each partition's query sleeps once (an InitPlan) before its rows.
    let sql = "SELECT id, k, label FROM t WHERE (SELECT pg_sleep(0.8)::text) IS NOT NULL";
    let job = Job::new(sql, &[("s", &url)]);
    let mut config = tributary::JobConfig::resolve(job.args.clone()).unwrap();
    assert_eq!(config.options.pool_size, None);
    config.options.partition = Some(PartitionSpec::Range {
        column: "id".into(),
        partitions: 4,
        bounds: None,
    });
    let sampler = harness::most_connections(db, "COPY%", 80, Duration::from_millis(25));
    let (report, result) = tributary::run(&config, false, std::future::pending()).await;
    result.unwrap_or_else(|e| panic!("{e}\n{report}"));
    // Four ranges and the NULL piece: the ranges read at once on 4 connections, not more.
    assert_eq!(report.tasks.len(), 5, "{report}");
    assert_eq!(sampler.await.unwrap(), 4, "COPYs running at once\n{report}");
    let got = rows(&harness::read_batch(&job.output()));
    assert_eq!(got, whole(&url, "SELECT id, k, label FROM t").await);
}

#[tokio::test]
async fn losing_the_snapshot_session_after_every_partition_imported_it_is_harmless() {
    let url = harness::database(
        "part_lost_late",
        "CREATE TABLE t (id bigint, k int); INSERT INTO t SELECT g, g FROM generate_series(1, 1000) g;",
    )
    .await;
    let db = harness::db("part_lost_late");
    // Every partition runs at once and sleeps inside its COPY: the session is killed
    // once all of them are streaming, i.e. have imported the snapshot.
    let sql = "SELECT id, k FROM t CROSS JOIN (SELECT pg_sleep(1.5)) AS slow";
    let mut job = Job::new(sql, &[("s", &url)]);
    job.args.partition_on = Some("k".into());
    job.args.partitions = Some(3);
    job.args.concurrency = Some(8);
    job.args.pool_size = Some(4);
    let killer = tokio::spawn(async move {
        let admin = harness::connect("postgres").await;
        for _ in 0..200 {
            let copying: i64 = admin
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 \
                     AND application_name = 'tributary' AND state = 'active' AND query LIKE 'COPY%'",
                    &[&db],
                )
                .await
                .unwrap()
                .get(0);
            // Three ranges and the NULL piece.
            if copying == 4 {
                return admin
                    .execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND application_name = 'tributary snapshot'",
                        &[&db],
                    )
                    .await
                    .unwrap();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        0
    });
    let batch = concat(&job.run_ok().await);
    assert_eq!(
        killer.await.unwrap(),
        1,
        "the snapshot session should have been killed while the partitions read"
    );
    let mut ids: Vec<i64> = i64_column(&batch, "id").into_iter().flatten().collect();
    ids.sort();
    assert_eq!(ids, (1..=1000).collect::<Vec<i64>>());
}

#[tokio::test]
async fn page_partitions_need_a_tid_range_scan_not_a_ctid_filter() {
    let name = harness::db("part_pages_tidscan");
    let url = harness::database(
        "part_pages_tidscan",
        &format!("{SETUP} ALTER DATABASE {name} SET enable_tidscan = off;"),
    )
    .await;
    // Without TID scans the range is a filter over a scan of the whole table: every
    // piece would read all of it.
    let mut job = Job::new("SELECT id, k, label FROM t", &[("s", &url)]);
    job.args.pool_size = Some(2);
    let mut config = tributary::JobConfig::resolve(job.args.clone()).unwrap();
    config.options.partition = Some(PartitionSpec::Pages {
        table: "t".into(),
        split: PageSplit::Tasks(4),
    });
    let (report, result) = tributary::run(&config, false, std::future::pending()).await;
    let err = result.expect_err("a ctid filter is not a page range scan");
    let message = err.to_string();
    assert!(
        message.contains("shard `s`") && message.contains("TID range scan"),
        "{message}\n{report}"
    );
    assert_eq!(err.exit_code(), exit::DATA);
    assert!(!job.output().exists());
}
