//! The run ledger as a nightly job relies on it: a rerun of a job that succeeded does
//! nothing while its output is intact, runs again when the output is gone or changed,
//! two runs of one job never overlap, and a run killed mid-way is found abandoned and
//! its lock taken over.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{self, bin, stderr, succeeded, tributary_in};

/// A job file `job.toml` over SQLite shards `a` and `b`, recording to `ledger.db`.
fn sqlite_job(dir: &Path) {
    let a = harness::sqlite_shard(
        dir,
        "a.db",
        "CREATE TABLE t (id INTEGER, v TEXT); INSERT INTO t VALUES (1, 'x'), (2, 'y');",
    );
    let b = harness::sqlite_shard(
        dir,
        "b.db",
        "CREATE TABLE t (id INTEGER, v TEXT); INSERT INTO t VALUES (3, 'z');",
    );
    harness::write_query_and_shards(
        dir,
        "SELECT id, v FROM t ORDER BY id",
        &format!("[shards]\na = \"{a}\"\nb = \"{b}\"\n"),
    );
    std::fs::write(
        dir.join("job.toml"),
        "name = \"nightly-t\"\nquery = \"q.sql\"\nshards = \"s.toml\"\noutput = \"out/t.parquet\"\nledger = \"ledger.db\"\n",
    )
    .unwrap();
}

/// The ledger's runs of the job, newest first, as `tributary runs --json` gives them.
fn runs(dir: &Path) -> Vec<serde_json::Value> {
    let out = tributary_in(dir, &["runs", "--job", "job.toml", "--json"]);
    serde_json::from_str(&succeeded(&out)).expect("runs --json prints JSON")
}

fn statuses(dir: &Path) -> Vec<String> {
    runs(dir)
        .iter()
        .map(|r| r["status"].as_str().unwrap().to_string())
        .collect()
}

fn ids(dir: &Path) -> Vec<i64> {
    let out = harness::read_batch(&dir.join("out/t.parquet"));
    harness::i64_column(&out, "id")
        .into_iter()
        .map(Option::unwrap)
        .collect()
}

#[test]
fn a_job_that_succeeded_runs_again_only_when_its_output_changed() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    sqlite_job(dir);
    let run = |extra: &[&str]| {
        let mut args = vec!["run", "--job", "job.toml"];
        args.extend_from_slice(extra);
        tributary_in(dir, &args)
    };
    let first = succeeded(&run(&[]));
    assert!(!first.contains("already done"), "{first}");
    assert_eq!(ids(dir), [1, 2, 3]);
    let output = dir.join("out/t.parquet");
    let written = std::fs::metadata(&output).unwrap().modified().unwrap();

    // Nothing changed: nothing runs, the file is not touched, the rerun is recorded.
    let second = succeeded(&run(&[]));
    assert!(
        second.contains("job `nightly-t`: already done by run") && second.contains("--force"),
        "{second}"
    );
    assert_eq!(
        std::fs::metadata(&output).unwrap().modified().unwrap(),
        written
    );
    assert_eq!(statuses(dir), ["skipped", "succeeded"]);

    // One byte of the output changed: the job runs again and the file is whole again.
    let mut bytes = std::fs::read(&output).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&output, &bytes).unwrap();
    let third = succeeded(&run(&[]));
    assert!(!third.contains("already done"), "{third}");
    assert_eq!(ids(dir), [1, 2, 3]);
    assert_eq!(statuses(dir), ["succeeded", "skipped", "succeeded"]);

    // The output deleted: it runs again.
    std::fs::remove_file(&output).unwrap();
    succeeded(&run(&[]));
    assert_eq!(ids(dir), [1, 2, 3]);
    // --force runs it though it is intact; a parameter of another value is another run.
    let forced = succeeded(&run(&["--force"]));
    assert!(!forced.contains("already done"), "{forced}");
    assert_eq!(
        statuses(dir),
        [
            "succeeded",
            "succeeded",
            "succeeded",
            "skipped",
            "succeeded"
        ]
    );

    // A job that must refresh every time says so.
    let job = std::fs::read_to_string(dir.join("job.toml")).unwrap();
    std::fs::write(dir.join("job.toml"), format!("rerun = \"always\"\n{job}")).unwrap();
    let always = succeeded(&run(&[]));
    assert!(!always.contains("already done"), "{always}");
    std::fs::write(dir.join("job.toml"), format!("rerun = \"never\"\n{job}")).unwrap();
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains("rerun = \"never\""),
        "{}",
        stderr(&out)
    );
    std::fs::write(dir.join("job.toml"), job).unwrap();

    // What the ledger kept of the last run: the tasks and the file with its checksum.
    let last = runs(dir)[0]["id"].as_i64().unwrap();
    let out = tributary_in(
        dir,
        &[
            "runs",
            "show",
            &last.to_string(),
            "--ledger",
            "ledger.db",
            "--json",
        ],
    );
    let shown: serde_json::Value = serde_json::from_str(&succeeded(&out)).unwrap();
    assert_eq!(shown["job"], "nightly-t");
    assert_eq!(shown["exit_code"], 0);
    assert_eq!(shown["rows"], 3);
    let tasks = shown["tasks"].as_array().unwrap();
    let rows: Vec<(String, i64)> = tasks
        .iter()
        .map(|t| {
            (
                t["shard"].as_str().unwrap().to_string(),
                t["rows"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(rows, [("a".to_string(), 2), ("b".to_string(), 1)]);
    // Each task recorded the Arrow bytes it sent.
    let bytes: Vec<i64> = tasks.iter().map(|t| t["bytes"].as_i64().unwrap()).collect();
    assert!(bytes[0] > 0 && bytes[1] > 0, "{bytes:?}");
    let outputs = shown["outputs"].as_array().unwrap();
    assert_eq!(outputs.len(), 1);
    let bytes = std::fs::read(&output).unwrap();
    assert_eq!(outputs[0]["bytes"].as_u64().unwrap(), bytes.len() as u64);
    assert_eq!(outputs[0]["sha256"].as_str().unwrap(), sha256_hex(&bytes));
    // The same, as people read it.
    let table = succeeded(&tributary_in(dir, &["runs", "--job", "job.toml"]));
    let header = table.lines().next().unwrap();
    assert!(
        header.starts_with("ID") && header.contains("STATUS") && header.ends_with("PARAMS"),
        "{table}"
    );
    assert!(
        table
            .lines()
            .nth(1)
            .unwrap()
            .starts_with(&format!("{last} ")),
        "{table}"
    );
    assert_eq!(
        table.lines().filter(|l| l.contains(" skipped ")).count(),
        1,
        "{table}"
    );
    let shown = succeeded(&tributary_in(
        dir,
        &["runs", "show", &last.to_string(), "--ledger", "ledger.db"],
    ));
    assert!(
        shown.starts_with(&format!("run {last} of job `nightly-t`: succeeded"))
            && shown.contains("    a: ok, 2 rows, ")
            && shown.contains(&format!(
                "({} bytes, sha256 {})",
                bytes.len(),
                sha256_hex(&bytes)
            )),
        "{shown}"
    );

    // A run without a job file is recorded but never skipped.
    let adhoc = [
        "run",
        "q.sql",
        "--shards",
        "s.toml",
        "-o",
        "adhoc.parquet",
        "--ledger",
        "ledger.db",
    ];
    for _ in 0..2 {
        let out = succeeded(&tributary_in(dir, &adhoc));
        assert!(!out.contains("already done"), "{out}");
    }
    let listed = tributary_in(
        dir,
        &["runs", "--ledger", "ledger.db", "--job", "q", "--json"],
    );
    let listed: Vec<serde_json::Value> = serde_json::from_str(&succeeded(&listed)).unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|r| r["status"] == "succeeded"));
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A job over one PostgreSQL shard whose query takes `seconds`.
async fn slow_job(dir: &Path, name: &str, seconds: f64) {
    let url = harness::database(
        name,
        "CREATE TABLE t AS SELECT g::bigint AS id FROM generate_series(1, 3) g",
    )
    .await;
    std::fs::write(
        dir.join("q.sql"),
        format!(
            "SELECT id FROM t WHERE (SELECT pg_sleep({seconds})::text) IS NOT NULL ORDER BY id"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("job.toml"),
        format!(
            "name = \"nightly-t\"\nquery = \"q.sql\"\noutput = \"out/t.parquet\"\nledger = \"ledger.db\"\n\n[shards]\na = \"{url}\"\n"
        ),
    )
    .unwrap();
}

fn spawn_run(dir: &Path, extra: &[&str]) -> Child {
    bin()
        .current_dir(dir)
        .args(["run", "--job", "job.toml", "-q"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs")
}

/// Waits until the ledger shows a run of the job as running; returns its id.
fn wait_running(dir: &Path) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if dir.join("ledger.db").exists()
            && let Some(run) = runs(dir).into_iter().find(|r| r["status"] == "running")
        {
            return run["id"].as_i64().unwrap();
        }
        assert!(Instant::now() < deadline, "no run started");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn a_second_run_of_a_job_exits_locked_while_the_first_runs() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    slow_job(dir, "ledger_lock", 3.0).await;
    let first = spawn_run(dir, &[]);
    let running = wait_running(dir);
    let second = tributary_in(dir, &["run", "--job", "job.toml"]);
    assert_eq!(second.status.code(), Some(9), "{}", stderr(&second));
    let message = stderr(&second);
    assert!(
        message.contains("another run of job `nightly-t` is in progress")
            && message.contains(&format!("run {running} (pid {}", first.id())),
        "{message}"
    );
    let first = first.wait_with_output().unwrap();
    assert!(first.status.success(), "{}", stderr(&first));
    assert_eq!(ids(dir), [1, 2, 3]);
    // The refused run left no trace: one run, succeeded.
    assert_eq!(statuses(dir), ["succeeded"]);
}

#[tokio::test]
async fn a_run_killed_mid_way_is_abandoned_and_its_lock_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    slow_job(dir, "ledger_kill", 2.0).await;
    let mut first = spawn_run(dir, &[]);
    let killed = wait_running(dir);
    first.kill().unwrap();
    first.wait().unwrap();
    assert!(!dir.join("out/t.parquet").exists());
    // Before any rerun, the ledger already tells the dead run from a live one.
    assert_eq!(statuses(dir), ["abandoned"]);

    let rerun = tributary_in(dir, &["run", "--job", "job.toml"]);
    succeeded(&rerun);
    assert!(
        stderr(&rerun).contains(&format!("took over the lock of run {killed}")),
        "{}",
        stderr(&rerun)
    );
    assert_eq!(ids(dir), [1, 2, 3]);
    let listed = runs(dir);
    assert_eq!(statuses(dir), ["succeeded", "abandoned"]);
    assert_eq!(listed[0]["took_over"].as_i64(), Some(killed));
    harness::assert_no_temporaries(&dir.join("out"));
}

#[tokio::test]
async fn of_two_runs_started_together_one_runs_and_the_other_exits_locked() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    slow_job(dir, "ledger_race", 1.0).await;
    let runs: Vec<Child> = (0..2).map(|_| spawn_run(dir, &[])).collect();
    let mut codes: Vec<i32> = runs
        .into_iter()
        .map(|r| r.wait_with_output().unwrap().status.code().unwrap())
        .collect();
    codes.sort();
    assert_eq!(codes, [0, 9]);
    assert_eq!(ids(dir), [1, 2, 3]);
    assert_eq!(statuses(dir), ["succeeded"]);
}

#[test]
fn an_unwritable_default_ledger_leaves_the_run_unrecorded_and_a_chosen_one_fails_it() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    sqlite_job(dir);
    // A state directory that is a file: nothing can be made under it.
    std::fs::write(dir.join("state"), "not a directory").unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec!["run", "q.sql", "--shards", "s.toml", "-o", "o.parquet"];
        args.extend_from_slice(extra);
        crate::harness::tributary_with(dir, &args, |cmd| {
            cmd.env("XDG_STATE_HOME", dir.join("state"));
        })
    };
    let out = run(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("this run is not recorded and takes no lock"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        harness::i64_column(&harness::read_batch(&dir.join("o.parquet")), "id"),
        [Some(1), Some(2), Some(3)]
    );
    std::fs::remove_file(dir.join("o.parquet")).unwrap();
    let out = run(&["--ledger", "state/ledger.db"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("run ledger state/ledger.db"),
        "{}",
        stderr(&out)
    );
    assert!(!dir.join("o.parquet").exists());
}
