//! `tributary check`: each shard reached or not, with its server, TLS, role and the
//! query's columns; a role that can write is a warning, an unreachable shard or a query a
//! shard rejects fails the check with the code a run would exit with.

use crate::harness::{self, stderr, stdout, tributary_in};

/// A database with a table and a role that may only read it.
async fn read_only_shard(name: &str) -> String {
    let url = harness::database(
        name,
        "CREATE TABLE t (id bigint, amount numeric(10,2));
         DO $$ BEGIN
           IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'trib_check_reader') THEN
             CREATE ROLE trib_check_reader LOGIN;
           END IF;
         END $$;
         REVOKE CREATE ON SCHEMA public FROM PUBLIC;
         GRANT SELECT ON t TO trib_check_reader;",
    )
    .await;
    url.replacen("://postgres@", "://trib_check_reader@", 1)
}

fn check(dir: &std::path::Path, args: &[&str]) -> (Option<i32>, Vec<serde_json::Value>) {
    let mut all = vec![
        "check",
        "--shards",
        "s.toml",
        "--json",
        "--connect-timeout",
        "5s",
    ];
    all.extend_from_slice(args);
    let out = tributary_in(dir, &all);
    let json = serde_json::from_str(&stdout(&out)).unwrap_or_else(|e| {
        panic!(
            "check --json printed no JSON ({e}):\n{}\n{}",
            stdout(&out),
            stderr(&out)
        )
    });
    (out.status.code(), json)
}

/// The check of shard `name`.
fn shard<'a>(checks: &'a [serde_json::Value], name: &str) -> &'a serde_json::Value {
    checks
        .iter()
        .find(|c| c["shard"] == name)
        .unwrap_or_else(|| panic!("no shard {name}: {checks:#?}"))
}

#[tokio::test]
async fn a_read_only_role_passes_and_a_writer_is_warned_about() {
    let reader = read_only_shard("check_ro").await;
    let writer = harness::database(
        "check_rw",
        "CREATE TABLE t (id bigint, amount numeric(10,2))",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let lite = harness::sqlite_shard(
        dir.path(),
        "l.db",
        "CREATE TABLE t (id INTEGER, amount REAL);",
    );
    std::fs::write(
        dir.path().join("s.toml"),
        format!(
            "[shards]\nreader = \"{reader}?sslmode=require\"\nwriter = \"{writer}?sslmode=disable\"\nlite = \"{lite}\"\n"
        ),
    )
    .unwrap();
    std::fs::write(dir.path().join("q.sql"), "SELECT id, amount FROM t").unwrap();
    let (code, checks) = check(dir.path(), &["q.sql"]);
    assert_eq!(code, Some(0), "{checks:#?}");
    let (r, w, l) = (
        shard(&checks, "reader"),
        shard(&checks, "writer"),
        shard(&checks, "lite"),
    );
    assert!(
        r["passed"].as_bool().unwrap()
            && w["passed"].as_bool().unwrap()
            && l["passed"].as_bool().unwrap()
    );

    assert_eq!(r["facts"]["role"], "trib_check_reader", "{r:#}");
    assert_eq!(r["facts"]["can_write"], serde_json::json!([]));
    assert_eq!(r["warnings"], serde_json::json!([]));
    assert_eq!(r["facts"]["tls"]["encrypted"], true);
    assert!(
        r["facts"]["tls"]["protocol"]
            .as_str()
            .unwrap()
            .starts_with("TLSv1."),
        "{r:#}"
    );
    assert_eq!(r["certificate_verified"], false);
    assert!(
        r["facts"]["server"]
            .as_str()
            .unwrap()
            .starts_with("PostgreSQL "),
        "{r:#}"
    );
    let columns: Vec<(String, String, String)> = r["facts"]["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let s = |k: &str| c[k].as_str().unwrap().to_string();
            (s("name"), s("source_type"), s("arrow_type"))
        })
        .collect();
    assert_eq!(
        columns,
        [
            ("id".into(), "int8".into(), "Int64".into()),
            (
                "amount".into(),
                "numeric".into(),
                "Decimal128(10, 2)".into()
            )
        ]
    );

    // The superuser can write, and the connection is in clear: both warned about.
    assert_eq!(w["facts"]["role"], "postgres");
    assert_eq!(w["facts"]["tls"]["encrypted"], false);
    let warnings = w["warnings"].to_string();
    assert!(
        warnings.contains("role `postgres` can write (everything: the role is a superuser"),
        "{warnings}"
    );
    assert!(
        warnings.contains("not encrypted (sslmode=disable)"),
        "{warnings}"
    );

    assert!(
        l["facts"]["server"]
            .as_str()
            .unwrap()
            .starts_with("SQLite 3."),
        "{l:#}"
    );
    assert_eq!(l["facts"]["columns"][1]["name"], "amount");

    // The text form says the same.
    let out = tributary_in(dir.path(), &["check", "--shards", "s.toml", "q.sql"]);
    let text = stdout(&out);
    assert!(
        text.contains("shard `reader` (")
            && text.contains("role      trib_check_reader: can write nothing"),
        "{text}"
    );
    assert!(
        text.contains("3 shards: 3 passed, 0 failed, 1 with warnings"),
        "{text}"
    );
}

#[tokio::test]
async fn an_unreachable_shard_or_a_rejected_query_fails_the_check() {
    let reader = read_only_shard("check_fail").await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("s.toml"),
        format!("[shards]\nreader = \"{reader}\"\ngone = \"postgres://nobody@127.0.0.1:1/x\"\n"),
    )
    .unwrap();
    let (code, checks) = check(dir.path(), &[]);
    assert_eq!(code, Some(5), "{checks:#?}");
    assert_eq!(shard(&checks, "reader")["passed"], true, "{checks:#?}");
    let gone = shard(&checks, "gone");
    assert_eq!(gone["passed"], false);
    assert_eq!(gone["exit_code"], 5);
    assert!(
        gone["error"].as_str().unwrap().contains("127.0.0.1:1"),
        "{gone:#}"
    );

    std::fs::write(
        dir.path().join("s.toml"),
        format!("[shards]\nreader = \"{reader}\"\n"),
    )
    .unwrap();
    std::fs::write(dir.path().join("q.sql"), "SELECT id FROM no_such_table").unwrap();
    let (code, checks) = check(dir.path(), &["q.sql"]);
    assert_eq!(code, Some(4), "{checks:#?}");
    assert!(
        checks[0]["error"]
            .as_str()
            .unwrap()
            .contains("no_such_table"),
        "{checks:#?}"
    );
}
