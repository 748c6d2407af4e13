//! `--metrics-file`: what the binary leaves for node_exporter's textfile collector after
//! a run, successful or not, read back with the Prometheus client's own parser.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;
use tributary::error::exit;

use crate::harness::{self, active_queries, bin, stderr, succeeded, tributary_in};
use crate::readers;

/// Every family tributary writes, all gauges.
const FAMILIES: [&str; 8] = [
    "tributary_last_run_timestamp_seconds",
    "tributary_last_success_timestamp_seconds",
    "tributary_last_run_duration_seconds",
    "tributary_last_run_rows",
    "tributary_last_run_bytes",
    "tributary_last_run_exit_code",
    "tributary_last_run_tasks",
    "tributary_last_run_tasks_failed",
];

/// The value of `family`'s series for `job` in a parsed metrics file, if it has one.
fn value(metrics: &Value, family: &str, job: &str) -> Option<f64> {
    metrics[family]["samples"]
        .as_array()?
        .iter()
        .find(|s| s["labels"]["job"] == job)
        .map(|s| s["value"].as_f64().expect("a number"))
}

/// [`value`], which must be there.
fn must(metrics: &Value, family: &str, job: &str) -> f64 {
    value(metrics, family, job).unwrap_or_else(|| panic!("no {family} for job {job}: {metrics}"))
}

/// Every series of `job` in a parsed metrics file, by family.
fn series(metrics: &Value, job: &str) -> Vec<(&'static str, Option<f64>)> {
    FAMILIES
        .iter()
        .map(|f| (*f, value(metrics, f, job)))
        .collect()
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Two SQLite shards of orders (3 and 2 rows) and the job `nightly.toml` over them,
/// writing its metrics to `metrics/tributary.prom`.
fn nightly(dir: &Path) {
    for (name, rows) in [
        ("a.db", "(1, 10.5), (2, 20), (3, 30)"),
        ("b.db", "(4, 1), (5, 2)"),
    ] {
        harness::sqlite_shard(
            dir,
            name,
            &format!(
                "CREATE TABLE orders (id INTEGER, amount REAL); INSERT INTO orders VALUES {rows};"
            ),
        );
    }
    harness::write_query_and_shards(
        dir,
        "SELECT id, amount FROM orders",
        "[shards]\na = \"sqlite://a.db\"\nb = \"sqlite://b.db\"\n",
    );
    std::fs::write(
        dir.join("nightly.toml"),
        "query = \"q.sql\"\nshards = \"s.toml\"\noutput = \"out/orders.parquet\"\nmetrics_file = \"metrics/tributary.prom\"\n",
    )
    .unwrap();
}

#[test]
fn every_run_of_a_job_leaves_its_metrics_and_a_failure_keeps_the_last_success() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    nightly(dir);
    let file = dir.join("metrics/tributary.prom");

    // A successful run.
    let before = now();
    succeeded(&tributary_in(dir, &["run", "--job", "nightly.toml"]));
    let after = now();
    let first = readers::prometheus(&file);
    for family in FAMILIES {
        assert_eq!(first[family]["type"], "gauge", "{family}: {first}");
        assert!(
            !first[family]["help"].as_str().unwrap().is_empty(),
            "{family}: {first}"
        );
    }
    // The job is named after its file's stem.
    let job = "nightly";
    let output = dir.join("out/orders.parquet");
    let rows = harness::read_batch(&output).num_rows();
    assert_eq!(rows, 5);
    assert_eq!(must(&first, "tributary_last_run_rows", job), rows as f64);
    assert_eq!(
        must(&first, "tributary_last_run_bytes", job),
        std::fs::metadata(&output).unwrap().len() as f64
    );
    assert_eq!(must(&first, "tributary_last_run_exit_code", job), 0.0);
    assert_eq!(must(&first, "tributary_last_run_tasks", job), 2.0);
    assert_eq!(must(&first, "tributary_last_run_tasks_failed", job), 0.0);
    let ran = must(&first, "tributary_last_run_timestamp_seconds", job);
    let succeeded_at = must(&first, "tributary_last_success_timestamp_seconds", job);
    assert!(
        before <= ran && ran <= after,
        "{before} <= {ran} <= {after}"
    );
    assert_eq!(succeeded_at, ran);
    let duration = must(&first, "tributary_last_run_duration_seconds", job);
    assert!(duration > 0.0 && duration <= after - before, "{duration}");
    harness::assert_no_temporaries(&dir.join("metrics"));

    // A failing run of the same job: a query the shards reject.
    std::fs::write(dir.join("bad.sql"), "SELECT id FROM no_such_table").unwrap();
    let out = tributary_in(dir, &["run", "--job", "nightly.toml", "bad.sql"]);
    let code = out.status.code().unwrap();
    assert_eq!(code, exit::DATA, "{}", stderr(&out));
    let failed = readers::prometheus(&file);
    assert_eq!(
        must(&failed, "tributary_last_run_exit_code", job),
        code as f64
    );
    assert_eq!(
        must(&failed, "tributary_last_success_timestamp_seconds", job),
        succeeded_at,
        "the failure keeps the last success"
    );
    assert!(must(&failed, "tributary_last_run_timestamp_seconds", job) >= ran);
    assert_eq!(must(&failed, "tributary_last_run_rows", job), 0.0);
    assert_eq!(must(&failed, "tributary_last_run_bytes", job), 0.0);
    assert!(must(&failed, "tributary_last_run_tasks_failed", job) >= 1.0);
    // The first run's output is untouched by the failed one.
    assert_eq!(harness::read_batch(&output).num_rows(), rows);
}

#[test]
fn jobs_sharing_a_metrics_file_keep_each_others_series() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    nightly(dir);
    let file = dir.join("metrics/tributary.prom");
    succeeded(&tributary_in(dir, &["run", "--job", "nightly.toml"]));
    let first = readers::prometheus(&file);

    // Another job, named with the characters a label value escapes.
    let other = r#"orders "eu" \ weekly"#;
    std::fs::write(
        dir.join("weekly.toml"),
        format!(
            "name = '{other}'\nquery = \"q.sql\"\nshards = \"s.toml\"\noutput = \"out/weekly.parquet\"\nmetrics_file = \"metrics/tributary.prom\"\n"
        ),
    )
    .unwrap();
    succeeded(&tributary_in(dir, &["run", "--job", "weekly.toml"]));
    let both = readers::prometheus(&file);
    assert_eq!(series(&both, "nightly"), series(&first, "nightly"));
    assert_eq!(must(&both, "tributary_last_run_rows", other), 5.0);
    assert_eq!(must(&both, "tributary_last_run_exit_code", other), 0.0);

    // A failure of the second job changes only its own series.
    let out = tributary_in(
        dir,
        &["run", "--job", "weekly.toml", "--shards", "missing.toml"],
    );
    assert_eq!(out.status.code(), Some(exit::CONFIG), "{}", stderr(&out));
    // The shards file is read while the job resolves: no job yet, so no metrics.
    assert_eq!(readers::prometheus(&file), both);
    std::fs::write(
        dir.join("gone.toml"),
        "[shards]\na = \"sqlite://nope.db\"\n",
    )
    .unwrap();
    let out = tributary_in(
        dir,
        &["run", "--job", "weekly.toml", "--shards", "gone.toml"],
    );
    assert_eq!(
        out.status.code(),
        Some(exit::UNAVAILABLE),
        "{}",
        stderr(&out)
    );
    let after = readers::prometheus(&file);
    assert_eq!(series(&after, "nightly"), series(&first, "nightly"));
    assert_eq!(
        must(&after, "tributary_last_run_exit_code", other),
        exit::UNAVAILABLE as f64
    );
    assert_eq!(
        value(&after, "tributary_last_success_timestamp_seconds", other),
        value(&both, "tributary_last_success_timestamp_seconds", other),
    );
}

#[test]
fn a_metrics_file_that_cannot_be_written_is_reported_but_does_not_fail_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    nightly(dir);
    // A directory where the file's directory should be.
    let out = tributary_in(
        dir,
        &[
            "run",
            "--job",
            "nightly.toml",
            "--metrics-file",
            "q.sql/m.prom",
        ],
    );
    succeeded(&out);
    let stderr = stderr(&out);
    assert!(
        stderr.contains("error: cannot write q.sql/m.prom"),
        "{stderr}"
    );
    assert!(dir.join("out/orders.parquet").exists());
}

#[tokio::test]
async fn an_interrupted_run_leaves_its_metrics() {
    let url = harness::database("metrics_signal", "SELECT 1").await;
    let dir = tempfile::tempdir().unwrap();
    let marker = "metrics-signal-marker";
    harness::write_job(
        dir.path(),
        &format!("SELECT pg_sleep(30)::text AS s, '{marker}' AS m"),
        &url,
    );
    let child = bin()
        .current_dir(dir.path())
        .args(harness::job_args(
            "run",
            &["-o", "out.parquet", "--metrics-file", "run.prom"],
        ))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while active_queries(marker).await.is_empty() {
        assert!(Instant::now() < deadline, "the query never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    harness::signal_and_wait(child, "TERM", exit::TERMINATED);
    let metrics = readers::prometheus(&dir.path().join("run.prom"));
    // Named after the query file, as there is no job file.
    assert_eq!(
        must(&metrics, "tributary_last_run_exit_code", "q"),
        exit::TERMINATED as f64
    );
    assert_eq!(
        value(&metrics, "tributary_last_success_timestamp_seconds", "q"),
        None
    );
    assert_eq!(must(&metrics, "tributary_last_run_tasks", "q"), 1.0);
}
