//! Every statement tributary sends with the user's SQL in it runs inside a READ ONLY
//! transaction that sets `standard_conforming_strings = on`: a query that would write is
//! refused before it writes, on every path (range probe with and without a snapshot,
//! describe, estimate, the describe's estimates, page check, task), and a server set to non-standard strings cannot
//! shift what is a parameter. Checked on the server afterwards, not on our own report.

use tributary::config::{PageSplit, PartitionSpec};
use tributary::dispatch::PlanMode;
use tributary::{JobConfig, RunArgs};

use crate::harness::{self, Job, i64_column, str_column};

/// A table to read, a sequence and a table to write to, and functions that write: one the
/// planner folds (IMMUTABLE with constant arguments: it runs while a query is only being
/// planned, as for an EXPLAIN), one that inserts.
const SETUP: &str = "
CREATE TABLE t (id bigint, k int);
INSERT INTO t SELECT g, g FROM generate_series(1, 100) g;
CREATE SEQUENCE sq;
CREATE TABLE log (x int);
CREATE FUNCTION folded_bump() RETURNS bigint IMMUTABLE LANGUAGE plpgsql
    AS $$ BEGIN RETURN nextval('sq'); END $$;
CREATE FUNCTION log_one() RETURNS int VOLATILE LANGUAGE plpgsql
    AS $$ BEGIN INSERT INTO log VALUES (1); RETURN 1; END $$;
";

/// The sequence was never advanced and `log` is empty.
async fn assert_untouched(db: &str, path: &str) {
    let client = harness::connect(db).await;
    let row = client
        .query_one(
            "SELECT (SELECT is_called FROM sq), (SELECT count(*) FROM log)",
            &[],
        )
        .await
        .unwrap();
    let (advanced, logged): (bool, i64) = (row.get(0), row.get(1));
    assert!(!advanced, "{path}: the sequence was advanced");
    assert_eq!(logged, 0, "{path}: rows were inserted into log");
}

fn args(job: &Job, partition: Option<&str>, snapshot: bool) -> RunArgs {
    let mut args = job.args.clone();
    args.partition_on = partition.map(String::from);
    args.partitions = partition.map(|_| 3);
    args.no_snapshot = !snapshot;
    args
}

/// Runs `args` with `spec` instead of the flags' partitioning, if given; the run must fail
/// because the server refused a write in a read-only transaction.
async fn refused(args: RunArgs, spec: Option<PartitionSpec>, path: &str) {
    let mut config = JobConfig::resolve(args).expect("the job resolves");
    if spec.is_some() {
        config.options.partition = spec;
    }
    let (report, result) = tributary::run(&config, false, std::future::pending()).await;
    let err = result.expect_err(path);
    assert!(
        err.to_string().contains("read-only transaction")
            || err.to_string().contains("data-modifying"),
        "{path}: {err}\n{report}"
    );
}

#[tokio::test]
async fn a_query_that_writes_is_refused_on_every_path_before_it_writes() {
    let url = harness::database("ro_paths", SETUP).await;
    let db = harness::db("ro_paths");
    let writers = [
        ("nextval", "SELECT id, k, nextval('sq') AS n FROM t"),
        (
            "an INSERT in a function",
            "SELECT id, k, log_one() AS n FROM t",
        ),
        (
            "a data-modifying CTE",
            "WITH w AS (INSERT INTO log VALUES (2) RETURNING x) SELECT id, k, x FROM t, w",
        ),
    ];
    for (what, sql) in writers {
        let job = Job::new(sql, &[("s", &url)]);
        // The range probe, on a pooled connection and on the snapshot session.
        for snapshot in [false, true] {
            let path = format!("{what}: range probe, snapshot {snapshot}");
            refused(args(&job, Some("k"), snapshot), None, &path).await;
            assert_untouched(&db, &path).await;
        }
        // Unpartitioned: the describe (a prepare) and the task.
        let path = format!("{what}: describe and task");
        refused(args(&job, None, true), None, &path).await;
        assert_untouched(&db, &path).await;
    }

    // Planning alone runs a folded function: the EXPLAINs of the estimate and of the
    // page check, and the task's own planning.
    let sql = "SELECT id, k FROM t WHERE id < folded_bump()";
    let job = Job::new(sql, &[("s", &url)]);
    let config = JobConfig::resolve(args(&job, None, true)).unwrap();
    let text = tributary::dispatch::plan(&config, PlanMode::Probe)
        .await
        .unwrap();
    assert!(text.contains("task 0"), "{text}");
    assert_untouched(&db, "estimate").await;
    // A run's estimates for its progress, sent with the describe: refused, and the
    // describe (a prepare, which plans nothing) as without them.
    let pool = tributary::source::ShardPool::open(&config.shards[0], 2, &config.options).unwrap();
    let query = tributary::plan::TaskQuery::Postgres { sql: sql.into() };
    let (described, estimates) = pool.describe_estimating(&query, &[&query]).await;
    assert!(matches!(described, Some(Ok(_))), "{described:?}");
    assert_eq!(estimates, [None]);
    assert_untouched(&db, "the describe's estimates").await;
    let pages = PartitionSpec::Pages {
        table: "t".into(),
        split: PageSplit::Tasks(2),
    };
    for snapshot in [false, true] {
        let path = format!("page check, snapshot {snapshot}");
        refused(args(&job, None, snapshot), Some(pages.clone()), &path).await;
        assert_untouched(&db, &path).await;
    }
    refused(args(&job, None, true), None, "folded: describe and task").await;
    assert_untouched(&db, "folded: describe and task").await;

    // The probes' transactions were ended: the pool's connections are idle, not idle in
    // a transaction, and a clean query still runs on them.
    let rows = Job::new("SELECT id, k FROM t", &[("s", &url)]);
    let mut clean = args(&rows, Some("k"), false);
    clean.output = rows.args.output.clone();
    let config = JobConfig::resolve(clean).unwrap();
    let (report, result) = tributary::run(&config, false, std::future::pending()).await;
    result.unwrap_or_else(|e| panic!("{e}\n{report}"));
    let admin = harness::connect("postgres").await;
    let stuck: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND state LIKE 'idle in transaction%'",
            &[&db],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stuck, 0, "a connection was left inside a transaction");
}

#[tokio::test]
async fn a_database_with_non_standard_strings_reads_the_right_rows() {
    let name = harness::db("ro_strings");
    let url = harness::database(
        "ro_strings",
        &format!(
            "CREATE TABLE t (id bigint, k int, path text);
             INSERT INTO t VALUES (1, 1, 'C:\\'), (2, 2, 'D:\\x'), (3, 3, 'E:'), (4, 4, 'C:\\');
             ANALYZE t;
             ALTER DATABASE {name} SET standard_conforming_strings = off;"
        ),
    )
    .await;
    // Under the standard reading `'C:\'` is a whole literal and `:lo` a parameter; a
    // server reading backslash escapes would see one string running past `:lo`.
    let sql = "SELECT id, k, path FROM t WHERE path <> 'C:\\' AND id >= :lo";
    let job = Job::new(sql, &[("s", &url)]).param("lo", "2");
    for (partition, snapshot) in [(None, true), (Some("k"), true), (Some("k"), false)] {
        let config = JobConfig::resolve(args(&job, partition, snapshot)).unwrap();
        let (report, result) = tributary::run(&config, false, std::future::pending()).await;
        result.unwrap_or_else(|e| panic!("{partition:?} snapshot {snapshot}: {e}\n{report}"));
        let batch = harness::read_batch(&job.output());
        let mut rows: Vec<_> = i64_column(&batch, "id")
            .into_iter()
            .zip(str_column(&batch, "path"))
            .collect();
        rows.sort();
        assert_eq!(
            rows,
            [
                (Some(2), Some("D:\\x".to_string())),
                (Some(3), Some("E:".to_string()))
            ],
            "{partition:?} snapshot {snapshot}"
        );
    }
    // The estimate's EXPLAIN too: an estimate is shown only when it ran.
    let config = JobConfig::resolve(args(&job, None, true)).unwrap();
    let text = tributary::dispatch::plan(&config, PlanMode::Probe)
        .await
        .unwrap();
    assert!(text.contains("estimated"), "{text}");
}
