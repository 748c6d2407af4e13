//! The binary as scripts see it: exit codes, messages on stderr, no secrets anywhere.

use std::process::Command;

use crate::harness;

fn tributary(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn usage_errors_exit_2() {
    let out = tributary(&["run", "--frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_missing_parameter_fails_before_connecting() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("q.sql"), "SELECT :day").unwrap();
    // The shard does not exist: reaching it would be a different error.
    std::fs::write(
        dir.path().join("s.toml"),
        "[shards]\nx = \"postgres://u@127.0.0.1:1/d\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tributary"))
        .current_dir(dir.path())
        .args(["run", "q.sql", "--shards", "s.toml", "-o", "o.parquet"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("q.sql") && stderr.contains(":day") && stderr.contains("--param day="),
        "{stderr}"
    );
    assert!(!dir.path().join("o.parquet").exists());
}

#[test]
fn passwords_never_appear_in_any_output() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("q.sql"), "SELECT 1 AS x").unwrap();
    let secret = "Sup3r-Secret-Pw";
    std::fs::write(
        dir.path().join("s.toml"),
        format!("[shards]\na = \"postgres://reader:{secret}@127.0.0.1:1/sales\"\nb = {{ url = \"postgres://reader@127.0.0.1:1/sales\", password_env = \"TRIB_TEST_PW\" }}\n"),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tributary"))
        .current_dir(dir.path())
        .env("TRIB_TEST_PW", secret)
        .env("RUST_LOG", "trace")
        .args([
            "run",
            "q.sql",
            "--shards",
            "s.toml",
            "-o",
            "o.parquet",
            "-vv",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5));
    for stream in [&out.stdout, &out.stderr] {
        let text = String::from_utf8_lossy(stream);
        assert!(!text.contains(secret), "the password leaked:\n{text}");
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("postgres://reader@127.0.0.1:1/sales"),
        "{stderr}"
    );
}

#[tokio::test]
async fn plan_prints_each_task_with_its_sql() {
    let url = harness::pg_base();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("q.sql"), "SELECT * FROM t WHERE d >= :from").unwrap();
    std::fs::write(
        dir.path().join("s.toml"),
        format!("[shards]\na = \"{url}/x\"\nb = \"sqlite://b.db\"\n"),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tributary"))
        .current_dir(dir.path())
        .args([
            "plan",
            "q.sql",
            "--shards",
            "s.toml",
            "-o",
            "o.parquet",
            "--param",
            "from=2024-01-01",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("shard `a`") && stdout.contains("WHERE d >= '2024-01-01'"),
        "{stdout}"
    );
    assert!(
        stdout.contains("shard `b`")
            && stdout.contains("WHERE d >= ?1")
            && stdout.contains("?1 = Text(\"2024-01-01\")"),
        "{stdout}"
    );
}

#[test]
fn a_run_through_the_binary_exits_0_and_prints_the_summary() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("a.db");
    assert!(
        Command::new("sqlite3")
            .arg(&db)
            .arg("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1),(2),(3);")
            .status()
            .unwrap()
            .success()
    );
    std::fs::write(dir.path().join("q.sql"), "SELECT x FROM t").unwrap();
    std::fs::write(
        dir.path().join("s.toml"),
        "[shards]\nlocal = \"sqlite://a.db\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tributary"))
        .current_dir(dir.path())
        .args(["run", "q.sql", "--shards", "s.toml", "-o", "out/x.parquet"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("local") && stdout.contains("ok") && stdout.contains("out/x.parquet"),
        "{stdout}"
    );
    let batch = crate::harness::concat(&crate::harness::read_parquet(
        &dir.path().join("out/x.parquet"),
    ));
    assert_eq!(
        crate::harness::i64_column(&batch, "x"),
        [Some(1), Some(2), Some(3)]
    );
}
