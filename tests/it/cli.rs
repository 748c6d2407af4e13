//! The binary as scripts see it: exit codes, messages on stderr, no secrets anywhere.

use crate::harness::{self, job_args, stderr, succeeded, tributary, tributary_in, tributary_with};

#[test]
fn usage_errors_exit_2() {
    let out = tributary(&["run", "--frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_report_path_that_names_no_file_fails_before_running() {
    let dir = tempfile::tempdir().unwrap();
    let shard = harness::sqlite_shard(dir.path(), "a.db", "CREATE TABLE t (x INTEGER);");
    harness::write_job(dir.path(), "SELECT x FROM t", &shard);
    for report in ["/", "."] {
        let out = tributary_in(
            dir.path(),
            &job_args("run", &["-o", "o.parquet", "--report", report]),
        );
        assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
        assert!(
            stderr(&out).contains(&format!("report {report} must name a file")),
            "{}",
            stderr(&out)
        );
        assert!(!dir.path().join("o.parquet").exists());
    }
}

#[test]
fn a_missing_parameter_fails_before_connecting() {
    let dir = tempfile::tempdir().unwrap();
    // The shard does not exist: reaching it would be a different error.
    harness::write_query_and_shards(
        dir.path(),
        "SELECT :day",
        "[shards]\nx = \"postgres://u@127.0.0.1:1/d\"\n",
    );
    let out = tributary_in(dir.path(), &job_args("run", &["-o", "o.parquet"]));
    let stderr = stderr(&out);
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
    let secret = "Sup3r-Secret-Pw";
    harness::write_query_and_shards(
        dir.path(),
        "SELECT 1 AS x",
        &format!(
            "[shards]\na = \"postgres://reader:{secret}@127.0.0.1:1/sales\"\nb = {{ url = \"postgres://reader@127.0.0.1:1/sales\", password_env = \"TRIB_TEST_PW\" }}\n"
        ),
    );
    let out = tributary_with(
        dir.path(),
        &job_args("run", &["-o", "o.parquet", "-vv"]),
        |cmd| {
            cmd.env("TRIB_TEST_PW", secret).env("RUST_LOG", "trace");
        },
    );
    assert_eq!(out.status.code(), Some(5));
    for text in [harness::stdout(&out), stderr(&out)] {
        assert!(!text.contains(secret), "the password leaked:\n{text}");
    }
    let stderr = stderr(&out);
    assert!(
        stderr.contains("postgres://reader@127.0.0.1:1/sales"),
        "{stderr}"
    );
}

#[tokio::test]
async fn plan_prints_each_task_with_its_sql() {
    let url = harness::pg_base();
    let dir = tempfile::tempdir().unwrap();
    harness::write_query_and_shards(
        dir.path(),
        "SELECT * FROM t WHERE d >= :from",
        &format!("[shards]\na = \"{url}/x\"\nb = \"sqlite://b.db\"\n"),
    );
    let out = tributary_in(
        dir.path(),
        &job_args("plan", &["-o", "o.parquet", "--param", "from=2024-01-01"]),
    );
    let stdout = succeeded(&out);
    assert!(
        stdout.contains("shard `a`") && stdout.contains("WHERE d >= ('2024-01-01')"),
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
    harness::sqlite_file(
        &dir.path().join("a.db"),
        "CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1),(2),(3);",
    );
    harness::write_query_and_shards(
        dir.path(),
        "SELECT x FROM t",
        "[shards]\nlocal = \"sqlite://a.db\"\n",
    );
    let out = tributary_in(dir.path(), &job_args("run", &["-o", "out/x.parquet"]));
    let stdout = succeeded(&out);
    assert!(
        stdout.contains("local") && stdout.contains("ok") && stdout.contains("out/x.parquet"),
        "{stdout}"
    );
    let batch = harness::read_batch(&dir.path().join("out/x.parquet"));
    assert_eq!(
        harness::i64_column(&batch, "x"),
        [Some(1), Some(2), Some(3)]
    );
}

#[tokio::test]
async fn a_password_given_any_way_appears_in_no_output() {
    let url = harness::database("secrets", "CREATE TABLE t AS SELECT 1::bigint AS x").await;
    let db = harness::db("secrets");
    let secret = "Pw-9f3a-never-print-me";
    let base = url
        .trim_end_matches(&format!("/{db}"))
        .replacen("postgres://", "", 1);
    let userhost = base.as_str();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pgpass"), format!("*:*:*:*:{secret}\n")).unwrap();
    /// How the password is given: a name, the shard's entry, environment variables.
    type Way<'a> = (&'a str, String, Vec<(&'a str, String)>);
    let ways: Vec<Way> = vec![
        (
            "url",
            format!(
                "\"postgres://{}/{db}\"",
                userhost.replacen('@', &format!(":{secret}@"), 1)
            ),
            vec![],
        ),
        (
            "${VAR} in the url",
            format!(
                "\"postgres://{}/{db}\"",
                userhost.replacen('@', ":${TRIB_SECRET}@", 1)
            ),
            vec![("TRIB_SECRET", secret.to_string())],
        ),
        (
            "password_env",
            format!("{{ url = \"postgres://{userhost}/{db}\", password_env = \"TRIB_SECRET\" }}"),
            vec![("TRIB_SECRET", secret.to_string())],
        ),
        (
            "PGPASSWORD",
            format!("\"postgres://{userhost}/{db}\""),
            vec![("PGPASSWORD", secret.to_string())],
        ),
        (
            "pgpass",
            format!("\"postgres://{userhost}/{db}\""),
            vec![(
                "PGPASSFILE",
                dir.path().join("pgpass").display().to_string(),
            )],
        ),
    ];
    for (way, shard, env) in ways {
        for (sql, ok) in [("SELECT x FROM t", true), ("SELECT x FROM missing", false)] {
            harness::write_query_and_shards(dir.path(), sql, &format!("[shards]\na = {shard}\n"));
            let args = job_args(
                "run",
                &[
                    "-o",
                    "out.parquet",
                    "--report",
                    "report.json",
                    "--ledger",
                    "ledger.db",
                    "-vv",
                ],
            );
            let out = tributary_with(dir.path(), &args, |cmd| {
                cmd.env("RUST_LOG", "trace").env_remove("PGPASSWORD");
                for (k, v) in &env {
                    cmd.env(k, v);
                }
            });
            assert_eq!(out.status.success(), ok, "{way}: {}", stderr(&out));
            let mut outputs = vec![("stdout", out.stdout), ("stderr", out.stderr)];
            outputs.push((
                "report",
                std::fs::read(dir.path().join("report.json")).unwrap(),
            ));
            // The run ledger, with what its write-ahead log still holds.
            for file in ["ledger.db", "ledger.db-wal"] {
                if let Ok(bytes) = std::fs::read(dir.path().join(file)) {
                    outputs.push(("ledger", bytes));
                }
            }
            assert!(
                outputs.iter().any(|(name, _)| *name == "ledger"),
                "{way}: the run was recorded"
            );
            if ok {
                outputs.push((
                    "parquet",
                    std::fs::read(dir.path().join("out.parquet")).unwrap(),
                ));
            }
            for (name, bytes) in outputs {
                let found = bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
                assert!(!found, "{way}: the password appears in {name}");
            }
        }
    }
}

#[test]
fn plan_needs_no_output_and_offline_connects_to_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // A port nothing listens on: only a plan that connects to nothing succeeds.
    harness::write_job(
        dir.path(),
        "SELECT id, k FROM t",
        "postgres://u@127.0.0.1:9/x",
    );
    let plan = |extra: &[&str]| tributary_in(dir.path(), &job_args("plan", extra));
    // Probed range bounds: shown as decided at run time, with the query.
    let out = plan(&["--offline", "--partition-on", "k", "--partitions", "4"]);
    let stdout = succeeded(&out);
    assert!(stdout.contains("no shard was connected to"), "{stdout}");
    assert!(
        stdout.contains("shard `a`, split at run time into 4 ranges of `k`")
            && stdout.contains("SELECT min(\"k\"), max(\"k\")")
            && stdout.contains("SELECT id, k FROM t"),
        "{stdout}"
    );
    assert!(!stdout.contains("task "), "{stdout}");
    // Hash buckets need no probe: every task with its SQL.
    let out = plan(&["--offline", "--job", "j.toml"]);
    assert!(!out.status.success(), "no job file: a config error");
    std::fs::write(
        dir.path().join("j.toml"),
        "query = \"q.sql\"\nshards = \"s.toml\"\n[partition]\nkind = \"hash\"\ncolumn = \"k\"\npartitions = 2\n",
    )
    .unwrap();
    let out = tributary_in(dir.path(), &["plan", "--offline", "--job", "j.toml"]);
    let stdout = succeeded(&out);
    assert_eq!(stdout.matches("task ").count(), 3, "{stdout}");
    assert!(stdout.contains("hashtext(\"k\"::text) % 2"), "{stdout}");
    // `run` still needs its output.
    let out = tributary_in(dir.path(), &job_args("run", &[]));
    assert_eq!(out.status.code(), Some(tributary::error::exit::CONFIG));
}

#[test]
fn plan_help_says_what_plan_runs_on_the_shards() {
    let out = tributary(&["plan", "--help"]);
    // Words as clap wraps them: one space between each.
    let help = harness::stdout(&out)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(out.status.success());
    assert!(
        help.contains("READ ONLY") && help.contains("min(key)") && help.contains("--offline"),
        "{help}"
    );
}

#[tokio::test]
async fn plan_without_output_probes_and_says_so() {
    let url = harness::database(
        "cli_plan_probe",
        "CREATE TABLE t (id bigint, k int); INSERT INTO t SELECT g, g FROM generate_series(1, 100) g; ANALYZE t;",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    harness::write_job(dir.path(), "SELECT id, k FROM t", &url);
    let out = tributary_in(
        dir.path(),
        &job_args("plan", &["--partition-on", "k", "--partitions", "2"]),
    );
    let stdout = succeeded(&out);
    assert!(
        stdout.starts_with("-- planned by running the partition probes"),
        "{stdout}"
    );
    assert!(stdout.contains("READ ONLY"), "{stdout}");
    assert!(stdout.contains("\"k\" >= 51"), "real bounds: {stdout}");
}
