//! libpq's connection conventions for PostgreSQL shards, through the binary: key=value
//! connection strings, service files, the PG* environment variables and several hosts.

use std::path::Path;
use std::process::{Command, Output};

use crate::harness::{self, job_args, stderr, succeeded, tributary_with};

/// The variables libpq reads, cleared for every run so that the tests' own environment
/// does not take part.
const PG_VARS: &[&str] = &[
    "PGHOST",
    "PGHOSTADDR",
    "PGPORT",
    "PGUSER",
    "PGDATABASE",
    "PGPASSWORD",
    "PGSERVICE",
    "PGSERVICEFILE",
    "PGSYSCONFDIR",
    "PGSSLMODE",
    "PGSSLROOTCERT",
    "PGAPPNAME",
    "PGCONNECT_TIMEOUT",
    "PGTARGETSESSIONATTRS",
    "PGOPTIONS",
];

/// The test server's host, port and user, from [`harness::pg_base`].
fn server() -> (String, u16, String) {
    let config: tokio_postgres::Config = harness::pg_base().parse().unwrap();
    let host = match &config.get_hosts()[0] {
        tokio_postgres::config::Host::Tcp(h) => h.clone(),
        tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    (
        host,
        port,
        config.get_user().unwrap_or("postgres").to_string(),
    )
}

/// Runs the job in `dir` with shard `a` = `shard` (a TOML value) and `env` on top of an
/// environment without PG* variables.
fn run(dir: &Path, shard: &str, env: &[(&str, &str)]) -> Output {
    std::fs::write(dir.join("s.toml"), format!("[shards]\na = {shard}\n")).unwrap();
    let _ = std::fs::remove_file(dir.join("out.parquet"));
    tributary_with(
        dir,
        &job_args("run", &["-o", "out.parquet", "--ledger", "ledger.db"]),
        |cmd: &mut Command| {
            for var in PG_VARS {
                cmd.env_remove(var);
            }
            for (k, v) in env {
                cmd.env(k, v);
            }
        },
    )
}

/// The rows a successful run wrote: (id, application_name, ssl).
fn rows(dir: &Path, out: &Output) -> Vec<(Option<i64>, Option<String>, Option<String>)> {
    succeeded(out);
    let batch = harness::concat(&harness::read_parquet(&dir.join("out.parquet")));
    let ids = harness::i64_column(&batch, "id");
    let apps = harness::str_column(&batch, "app");
    let ssl = harness::str_column(&batch, "ssl");
    ids.into_iter()
        .zip(apps)
        .zip(ssl)
        .map(|((i, a), s)| (i, a, s))
        .collect()
}

fn expected(app: &str, ssl: &str) -> Vec<(Option<i64>, Option<String>, Option<String>)> {
    (1..=3)
        .map(|i| (Some(i), Some(app.to_string()), Some(ssl.to_string())))
        .collect()
}

const QUERY: &str = "SELECT id, current_setting('application_name') AS app, \
     (SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()) AS ssl \
     FROM t ORDER BY id";

#[tokio::test]
async fn conninfo_strings_service_files_and_pg_variables_connect() {
    harness::database(
        "libpq_ways",
        "CREATE TABLE t AS SELECT generate_series(1, 3)::bigint AS id",
    )
    .await;
    let db = harness::db("libpq_ways");
    let (host, port, user) = server();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("q.sql"), QUERY).unwrap();
    let services = dir.path().join("services.conf");
    // The service names the wrong database: a shard that overrides it reads `t`.
    std::fs::write(
        &services,
        format!(
            "# the test's services\n[trib]\nhost={host}\nport={port}\nuser={user}\n\
             dbname={db}\napplication_name=from service\nsslmode=disable\n\n\
             [elsewhere]\nhost={host}\nport={port}\nuser={user}\ndbname=postgres\n\
             application_name=elsewhere\nsslmode=disable\n"
        ),
    )
    .unwrap();
    let services = services.to_str().unwrap();

    let conninfo = format!(
        "\"host={host} port = {port} user={user} dbname='{db}' sslmode=disable \
         application_name='conn info'\""
    );
    let out = run(dir.path(), &conninfo, &[]);
    assert_eq!(rows(dir.path(), &out), expected("conn info", "false"));

    let out = run(
        dir.path(),
        "\"service=trib\"",
        &[("PGSERVICEFILE", services)],
    );
    assert_eq!(rows(dir.path(), &out), expected("from service", "false"));

    let shard = format!("\"service=elsewhere dbname={db} application_name=override\"");
    let out = run(dir.path(), &shard, &[("PGSERVICEFILE", services)]);
    assert_eq!(rows(dir.path(), &out), expected("override", "false"));

    // A URL's ?service= and PGSERVICE, with the same precedence.
    let shard = format!("\"postgres:///{db}?service=elsewhere\"");
    let out = run(dir.path(), &shard, &[("PGSERVICEFILE", services)]);
    assert_eq!(rows(dir.path(), &out), expected("elsewhere", "false"));
    let out = run(
        dir.path(),
        "\"application_name=x\"",
        &[("PGSERVICEFILE", services), ("PGSERVICE", "trib")],
    );
    assert_eq!(rows(dir.path(), &out), expected("x", "false"));

    // Only the environment: PGHOST and the rest, PGSSLMODE and PGAPPNAME among them.
    let port = port.to_string();
    let env = [
        ("PGHOST", host.as_str()),
        ("PGPORT", port.as_str()),
        ("PGUSER", user.as_str()),
        ("PGDATABASE", db.as_str()),
        ("PGSSLMODE", "disable"),
        ("PGAPPNAME", "from env"),
        ("PGCONNECT_TIMEOUT", "10"),
        ("PGOPTIONS", "-c work_mem=8MB"),
        ("PGTARGETSESSIONATTRS", "read-write"),
    ];
    let out = run(dir.path(), "\"connect_timeout=5\"", &env);
    assert_eq!(rows(dir.path(), &out), expected("from env", "false"));
    // PGOPTIONS reached the server.
    std::fs::write(
        dir.path().join("q.sql"),
        "SELECT 1::bigint AS id, current_setting('work_mem') AS app, 'x' AS ssl",
    )
    .unwrap();
    let out = run(dir.path(), "\"connect_timeout=5\"", &env);
    assert_eq!(
        rows(dir.path(), &out),
        [(Some(1), Some("8MB".to_string()), Some("x".to_string()))]
    );
}

#[test]
fn invalid_connection_strings_exit_3_with_libpq_meaning() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("q.sql"), "SELECT 1").unwrap();
    let services = dir.path().join("services.conf");
    std::fs::write(&services, "[known]\nhost=127.0.0.1\n").unwrap();
    let services = services.to_str().unwrap();
    let secret = "Pw-77c1-never-print-me";
    for (shard, meaning) in [
        (
            format!("host=127.0.0.1 frobnicate=1 password={secret}"),
            "invalid connection option \"frobnicate\"",
        ),
        (
            format!("host=127.0.0.1 password='{secret}"),
            "unterminated quoted string in the connection string",
        ),
        (
            format!("service=nowhere password={secret}"),
            "definition of service \"nowhere\" not found",
        ),
        (
            format!("host=127.0.0.1 password={secret} sslmode=sometimes"),
            "unknown sslmode `sometimes`",
        ),
        (
            format!("postgres://u:{secret}@127.0.0.1/d?service=nowhere"),
            "definition of service \"nowhere\" not found",
        ),
        (
            format!("host=a,b password={secret} target_session_attrs=primary"),
            "target_session_attrs \"primary\" is not supported (supported: any, read-write, read-only)",
        ),
    ] {
        let out = run(
            dir.path(),
            &format!("\"{shard}\""),
            &[
                ("PGSERVICEFILE", services),
                ("PGSYSCONFDIR", "/nonexistent"),
            ],
        );
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(3), "{shard}: {err}");
        assert!(
            err.contains("shard `a`") && err.contains(meaning),
            "{shard}: expected {meaning:?} in:\n{err}"
        );
        assert!(
            !err.contains(secret),
            "{shard}: the password leaked:\n{err}"
        );
    }
}

#[tokio::test]
async fn several_hosts_connect_to_the_first_that_answers() {
    harness::database(
        "libpq_hosts",
        "CREATE TABLE t AS SELECT generate_series(1, 3)::bigint AS id",
    )
    .await;
    let db = harness::db("libpq_hosts");
    let (host, port, user) = server();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("q.sql"), QUERY).unwrap();
    // A port nothing listens on.
    let down = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    for shard in [
        format!(
            "\"host=127.0.0.1,{host} port={down},{port} user={user} dbname={db} \
             sslmode=disable application_name=second\""
        ),
        format!(
            "\"postgres://{user}@127.0.0.1:{down},{host}:{port}/{db}?sslmode=disable&application_name=second&target_session_attrs=read-write\""
        ),
    ] {
        let out = run(dir.path(), &shard, &[]);
        assert_eq!(
            rows(dir.path(), &out),
            expected("second", "false"),
            "{shard}"
        );
    }
    // Both down: the error shows both hosts, as a libpq URL does.
    let shard = format!("\"host=127.0.0.1,127.0.0.1 port={down},{down} user={user} dbname={db}\"");
    let out = run(dir.path(), &shard, &[]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "postgres://{user}@127.0.0.1:{down},127.0.0.1:{down}/{db}"
        )),
        "{err}"
    );
}
