//! The binary as scripts see it: exit codes, messages on stderr, no secrets anywhere.

use std::process::Command;

use crate::harness;

fn tributary(args: &[&str]) -> std::process::Output {
    harness::bin().args(args).output().unwrap()
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
    let out = harness::bin()
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
    let out = harness::bin()
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
    let out = harness::bin()
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
    let out = harness::bin()
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
            std::fs::write(dir.path().join("q.sql"), sql).unwrap();
            std::fs::write(
                dir.path().join("s.toml"),
                format!("[shards]\na = {shard}\n"),
            )
            .unwrap();
            let mut cmd = harness::bin();
            cmd.current_dir(dir.path())
                .env("RUST_LOG", "trace")
                .env_remove("PGPASSWORD")
                .args([
                    "run",
                    "q.sql",
                    "--shards",
                    "s.toml",
                    "-o",
                    "out.parquet",
                    "--report",
                    "report.json",
                    "-vv",
                ]);
            for (k, v) in &env {
                cmd.env(k, v);
            }
            let out = cmd.output().unwrap();
            assert_eq!(
                out.status.success(),
                ok,
                "{way}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let mut outputs = vec![("stdout", out.stdout), ("stderr", out.stderr)];
            outputs.push((
                "report",
                std::fs::read(dir.path().join("report.json")).unwrap(),
            ));
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
    let plan = |extra: &[&str]| {
        let mut args = vec!["plan", "q.sql", "--shards", "s.toml"];
        args.extend_from_slice(extra);
        harness::bin()
            .current_dir(dir.path())
            .args(&args)
            .output()
            .unwrap()
    };
    // Probed range bounds: shown as decided at run time, with the query.
    let out = plan(&["--offline", "--partition-on", "k", "--partitions", "4"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
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
    let out = harness::bin()
        .current_dir(dir.path())
        .args(["plan", "--offline", "--job", "j.toml"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.matches("task ").count(), 3, "{stdout}");
    assert!(stdout.contains("hashtext(\"k\"::text) % 2"), "{stdout}");
    // `run` still needs its output.
    let out = harness::bin()
        .current_dir(dir.path())
        .args(["run", "q.sql", "--shards", "s.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(tributary::error::exit::CONFIG));
}

#[test]
fn plan_help_says_what_plan_runs_on_the_shards() {
    let out = tributary(&["plan", "--help"]);
    // Words as clap wraps them: one space between each.
    let help = String::from_utf8_lossy(&out.stdout)
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
    let out = harness::bin()
        .current_dir(dir.path())
        .args([
            "plan",
            "q.sql",
            "--shards",
            "s.toml",
            "--partition-on",
            "k",
            "--partitions",
            "2",
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
        stdout.starts_with("-- planned by running the partition probes"),
        "{stdout}"
    );
    assert!(stdout.contains("READ ONLY"), "{stdout}");
    assert!(stdout.contains("\"k\" >= 51"), "real bounds: {stdout}");
}
