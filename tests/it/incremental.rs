//! Incremental jobs: each run reads, per shard, the rows whose column moved past the
//! shard's last mark, so that successive outputs hold every committed version of a row
//! once, while a writer keeps inserting and updating, and a killed run changes nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::harness::{self, bin, stderr, succeeded, tributary_in};

const TABLE: &str =
    "CREATE TABLE t (id bigint PRIMARY KEY, version int NOT NULL, updated_at timestamptz NOT NULL)";

/// (shard, id, version)
type Version = (String, i64, i32);

/// Inserts and updates rows of `t` on one shard, one statement at a time on one
/// connection, `updated_at` set to the statement's clock; records each version once its
/// statement has committed. Stops when `stop` is set.
async fn writer(
    shard: &'static str,
    db: String,
    committed: Arc<Mutex<BTreeSet<Version>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) {
    let client = harness::connect(&db).await;
    let mut next_id = 1i64;
    let mut step = 0u64;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        step += 1;
        // Two inserts for each update, the update on an earlier row.
        let row = if step.is_multiple_of(3) && next_id > 1 {
            let id = (step as i64 * 7919) % (next_id - 1) + 1;
            client
                .query_one(
                    "UPDATE t SET version = version + 1, updated_at = clock_timestamp() WHERE id = $1 RETURNING id, version",
                    &[&id],
                )
                .await
                .unwrap()
        } else {
            next_id += 1;
            client
                .query_one(
                    "INSERT INTO t VALUES ($1, 1, clock_timestamp()) RETURNING id, version",
                    &[&(next_id - 1)],
                )
                .await
                .unwrap()
        };
        committed
            .lock()
            .unwrap()
            .insert((shard.to_string(), row.get(0), row.get(1)));
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// The versions in one output file.
fn versions(path: &Path) -> Vec<Version> {
    let mut out = Vec::new();
    for batch in harness::read_parquet(path) {
        let shard = harness::str_column(&batch, "shard");
        let id = harness::i64_column(&batch, "id");
        let version = harness::i64_column(&batch, "version");
        for ((shard, id), version) in shard.into_iter().zip(id).zip(version) {
            out.push((shard.unwrap(), id.unwrap(), version.unwrap() as i32));
        }
    }
    out
}

/// Whether the ledger shows a run of the job in progress.
fn running(dir: &Path) -> bool {
    if !dir.join("ledger.db").exists() {
        return false;
    }
    let out = tributary_in(dir, &["runs", "--job", "job.toml", "--json"]);
    let runs: Vec<serde_json::Value> = serde_json::from_str(&succeeded(&out)).unwrap();
    runs.iter().any(|r| r["status"] == "running")
}

fn run(dir: &Path, batch: u32, pause: f64) -> std::process::Output {
    let (batch, pause) = (batch.to_string(), pause.to_string());
    tributary_in(
        dir,
        &[
            "run",
            "--job",
            "job.toml",
            "--param",
            &format!("batch={batch}"),
            "--param",
            &format!("pause={pause}"),
        ],
    )
}

#[tokio::test]
async fn successive_runs_read_every_committed_version_once() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let a = harness::database("incr_a", TABLE).await;
    let b = harness::database("incr_b", TABLE).await;
    std::fs::write(
        dir.join("q.sql"),
        "SELECT id, version, updated_at, :batch AS batch FROM t WHERE (SELECT pg_sleep(:pause)::text) IS NOT NULL",
    )
    .unwrap();
    std::fs::write(
        dir.join("job.toml"),
        format!(
            "name = \"changes\"\nquery = \"q.sql\"\noutput = \"out/batch={{batch}}.parquet\"\nledger = \"ledger.db\"\nshard_column = \"shard\"\n\n[incremental]\ncolumn = \"updated_at\"\n\n[shards]\na = \"{a}\"\nb = \"{b}\"\n"
        ),
    )
    .unwrap();
    let committed = Arc::new(Mutex::new(BTreeSet::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers = [("a", harness::db("incr_a")), ("b", harness::db("incr_b"))]
        .map(|(s, db)| tokio::spawn(writer(s, db, committed.clone(), stop.clone())));

    // Five runs while the writers write, one of them killed mid-way and run again.
    let mut outputs = Vec::new();
    for batch in 1..=5u32 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        if batch == 3 {
            let mut killed = bin()
                .current_dir(dir)
                .args([
                    "run",
                    "--job",
                    "job.toml",
                    "--param",
                    "batch=3",
                    "--param",
                    "pause=1.5",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let deadline = Instant::now() + Duration::from_secs(30);
            while !running(dir) {
                assert!(Instant::now() < deadline, "the run to kill never started");
                std::thread::sleep(Duration::from_millis(50));
            }
            std::thread::sleep(Duration::from_millis(500));
            killed.kill().unwrap();
            killed.wait().unwrap();
            assert!(!dir.join("out/batch=3.parquet").exists());
        }
        let out = run(dir, batch, 0.0);
        assert!(out.status.success(), "run {batch}: {}", stderr(&out));
        outputs.push(dir.join(format!("out/batch={batch}.parquet")));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    // After the writers stopped: the last run reads what is left.
    succeeded(&run(dir, 6, 0.0));
    outputs.push(dir.join("out/batch=6.parquet"));

    let committed = committed.lock().unwrap().clone();
    let mut seen: BTreeMap<Version, usize> = BTreeMap::new();
    for path in &outputs {
        for v in versions(path) {
            *seen.entry(v).or_default() += 1;
        }
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "versions read twice: {twice:?}");
    let unknown: Vec<_> = seen.keys().filter(|v| !committed.contains(v)).collect();
    assert!(unknown.is_empty(), "versions never committed: {unknown:?}");
    // Every row's last version is in exactly one output.
    let mut last: BTreeMap<(String, i64), i32> = BTreeMap::new();
    for (shard, id, version) in &committed {
        let v = last.entry((shard.clone(), *id)).or_default();
        *v = (*v).max(*version);
    }
    let missing: Vec<_> = last
        .iter()
        .filter(|((shard, id), version)| !seen.contains_key(&(shard.clone(), *id, **version)))
        .collect();
    assert!(missing.is_empty(), "final versions never read: {missing:?}");
    // The writers ran during the runs: several outputs hold rows, and updates were read.
    let nonempty = outputs.iter().filter(|p| !versions(p).is_empty()).count();
    assert!(nonempty >= 4, "only {nonempty} outputs hold rows");
    assert!(seen.keys().any(|(_, _, v)| *v > 1), "no update was read");

    // The ledger keeps one mark per shard, the killed run none: it shows as abandoned.
    let runs = tributary_in(
        dir,
        &["runs", "--job", "job.toml", "--json", "--last", "50"],
    );
    let runs: Vec<serde_json::Value> = serde_json::from_str(&succeeded(&runs)).unwrap();
    let statuses: Vec<&str> = runs.iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == "succeeded").count(),
        6,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == "abandoned").count(),
        1,
        "{statuses:?}"
    );
}

#[test]
fn an_incremental_job_needs_the_ledger_and_an_uncombined_query() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let url = harness::sqlite_shard(dir, "a.db", "CREATE TABLE t (id INTEGER, at TEXT);");
    std::fs::write(dir.join("q.sql"), "SELECT id, at FROM t").unwrap();
    std::fs::write(dir.join("agg.sql"), "SELECT count(*) AS n FROM t").unwrap();
    let job = |query: &str, ledger: &str| {
        std::fs::write(
            dir.join("job.toml"),
            format!(
                "query = \"{query}\"\noutput = \"o.parquet\"\nledger = {ledger}\n[incremental]\ncolumn = \"at\"\n[shards]\na = \"{url}\"\n"
            ),
        )
        .unwrap();
        tributary_in(dir, &["run", "--job", "job.toml"])
    };
    let out = job("q.sql", "false");
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains("job.toml: [incremental] keeps each shard's mark in the run ledger"),
        "{}",
        stderr(&out)
    );
    let out = job("agg.sql", "\"ledger.db\"");
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains("combined across shards"),
        "{}",
        stderr(&out)
    );
    assert!(!dir.join("o.parquet").exists());

    // SQLite text timestamps: the first run reads all, the next only what came since.
    let path = dir.join("a.db");
    harness::sqlite_file(
        &path,
        "INSERT INTO t VALUES (1, '2026-12-01 10:00:00'), (2, '2026-12-01 11:00:00');",
    );
    succeeded(&job("q.sql", "\"ledger.db\""));
    assert_eq!(
        harness::i64_column(&harness::read_batch(&dir.join("o.parquet")), "id"),
        [Some(1), Some(2)]
    );
    harness::sqlite_file(
        &path,
        "INSERT INTO t VALUES (3, '2026-12-01 12:00:00'); UPDATE t SET at = '2026-12-01 12:30:00' WHERE id = 1;",
    );
    succeeded(&job("q.sql", "\"ledger.db\""));
    let mut ids = harness::i64_column(&harness::read_batch(&dir.join("o.parquet")), "id");
    ids.sort();
    assert_eq!(ids, [Some(1), Some(3)]);
    // Nothing new: an empty output, and the job still runs (it is never skipped).
    let out = succeeded(&job("q.sql", "\"ledger.db\""));
    assert!(!out.contains("already done"), "{out}");
    assert_eq!(
        harness::read_parquet(&dir.join("o.parquet"))
            .iter()
            .map(|b| b.num_rows())
            .sum::<usize>(),
        0
    );
}
