//! TLS against a PostgreSQL cluster this test starts with its own certificate authority:
//! `verify-full` with the right CA succeeds; a wrong CA or a wrong host name is refused;
//! `verify-ca` accepts the chain whatever the name; `require` never falls back to
//! plaintext when the server has no TLS. As in libpq, `verify-ca`/`verify-full` without
//! a root certificate file are refused before connecting, and `sslrootcert=system` uses
//! the system's trust store (`SSL_CERT_FILE`), with the host name always checked.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::{self, Job, i64_column, read_batch};

/// A port no one listens on now: several checkouts may run this test at once.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free local port")
        .port()
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?}: {}", harness::stderr(&out));
}

fn pg_bin(name: &str) -> PathBuf {
    let version = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server binaries under /usr/lib/postgresql (apt-get install postgresql)")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .max_by_key(|v| v.parse::<u32>().unwrap_or(0))
        .expect("a PostgreSQL version");
    PathBuf::from(format!("/usr/lib/postgresql/{version}/bin/{name}"))
}

/// A throwaway cluster with `ssl = on`; stopped and removed on drop.
struct Cluster {
    dir: PathBuf,
    port: u16,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(pg_bin("pg_ctl"))
            .args(["stop", "-m", "immediate", "-D"])
            .arg(self.dir.join("data"))
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    run(Command::new("openssl").current_dir(dir).args(args));
}

/// Makes a CA and a server certificate for `localhost` signed by it, plus an unrelated CA.
fn certificates(dir: &Path) {
    for ca in ["ca", "other-ca"] {
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                &format!("{ca}.key"),
                "-out",
                &format!("{ca}.crt"),
                "-days",
                "2",
                "-subj",
                &format!("/CN=tributary test {ca}"),
            ],
        );
    }
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    std::fs::write(dir.join("san.ext"), "subjectAltName=DNS:localhost\n").unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ],
    );
}

fn start_cluster() -> Cluster {
    let dir = PathBuf::from(format!("/tmp/tributary-tls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    let cluster = Cluster {
        dir: dir.clone(),
        port,
    };
    certificates(&dir);
    run(Command::new("chown")
        .args(["-R", "postgres:postgres"])
        .arg(&dir));
    run(Command::new("chmod")
        .args(["600"])
        .arg(dir.join("server.key")));
    run(Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(pg_bin("initdb"))
        .args(["-A", "trust", "-U", "postgres", "-D"])
        .arg(dir.join("data")));
    let conf = format!(
        "port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{d}'\nssl = on\nssl_cert_file = '{d}/server.crt'\nssl_key_file = '{d}/server.key'\n",
        d = dir.display()
    );
    let mut existing = std::fs::read_to_string(dir.join("data/postgresql.conf")).unwrap();
    existing.push_str(&conf);
    std::fs::write(dir.join("data/postgresql.conf"), existing).unwrap();
    run(Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(pg_bin("pg_ctl"))
        .args(["start", "-w", "-l"])
        .arg(dir.join("log"))
        .arg("-D")
        .arg(dir.join("data")));
    cluster
}

/// One run; TLS refusals are not retried (the default retries would show as attempts).
async fn attempt(url: &str) -> Result<Vec<Option<i64>>, tributary::Error> {
    let job = Job::new("SELECT 42::bigint AS answer", &[("tls", url)]);
    let (report, result) = job.run().await;
    assert!(
        report.tasks.iter().all(|t| t.attempts <= 1),
        "a TLS refusal was retried: {report}"
    );
    result.map(|()| i64_column(&read_batch(&job.output()), "answer"))
}

/// The error of a run that must fail, as the user reads it.
async fn refusal(url: &str) -> String {
    attempt(url).await.unwrap_err().to_string()
}

#[tokio::test]
async fn tls_modes_follow_libpq() {
    let cluster = start_cluster();
    let ca = cluster.dir.join("ca.crt");
    let other = cluster.dir.join("other-ca.crt");
    let port = cluster.port;
    let url = |host: &str, mode: &str, root: &Path| {
        format!(
            "postgres://postgres@{host}:{port}/postgres?sslmode={mode}&sslrootcert={}",
            root.display()
        )
    };

    assert_eq!(
        attempt(&url("localhost", "verify-full", &ca))
            .await
            .unwrap(),
        [Some(42)],
        "right CA and name"
    );

    // `tributary check` says the certificate was verified, and fails on the wrong CA.
    let checked = |shard_url: String| {
        let dir = tempfile::tempdir().unwrap();
        harness::write_job(dir.path(), "SELECT 42::bigint AS answer", &shard_url);
        let out = harness::tributary_in(
            dir.path(),
            &[
                "check",
                "--shards",
                "s.toml",
                "--json",
                "--connect-timeout",
                "3s",
            ],
        );
        let json: serde_json::Value = serde_json::from_str(&harness::stdout(&out))
            .unwrap_or_else(|e| panic!("no JSON ({e}): {}", harness::stderr(&out)));
        (out.status.code(), json[0].clone())
    };
    let (code, check) = checked(url("localhost", "verify-full", &ca));
    assert_eq!(code, Some(0), "{check:#}");
    assert_eq!(check["certificate_verified"], true, "{check:#}");
    assert_eq!(check["sslmode"], "verify-full");
    assert_eq!(check["facts"]["tls"]["encrypted"], true, "{check:#}");
    let (code, check) = checked(url("localhost", "verify-full", &other));
    assert_eq!(code, Some(5), "{check:#}");
    assert!(
        check["error"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("certificate"),
        "{check:#}"
    );

    let err = refusal(&url("localhost", "verify-full", &other)).await;
    assert!(
        err.contains("shard `tls`") && err.to_lowercase().contains("certificate"),
        "wrong CA: {err}"
    );

    let err = refusal(&url("127.0.0.1", "verify-full", &ca)).await;
    assert!(
        err.to_lowercase().contains("certificate") && err.contains("Name"),
        "wrong host name: {err}"
    );

    assert_eq!(
        attempt(&url("127.0.0.1", "verify-ca", &ca)).await.unwrap(),
        [Some(42)],
        "verify-ca ignores the name"
    );
    let err = refusal(&url("127.0.0.1", "verify-ca", &other)).await;
    assert!(
        err.to_lowercase().contains("certificate"),
        "verify-ca with a wrong CA: {err}"
    );

    assert_eq!(
        attempt(&format!(
            "postgres://postgres@127.0.0.1:{port}/postgres?sslmode=require"
        ))
        .await
        .unwrap(),
        [Some(42)]
    );

    system_roots_follow_libpq(&cluster);
    default_root_file_follows_libpq(&cluster);
    drop(cluster);

    // A server without TLS answers the TLS request with 'N'.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let plain = tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut request = [0u8; 8];
            if socket.read_exact(&mut request).await.is_ok() {
                let _ = socket.write_all(b"N").await;
                let mut rest = Vec::new();
                let _ = socket.read_to_end(&mut rest).await;
            }
        }
    });
    let err = refusal(&format!(
        "postgres://postgres@127.0.0.1:{port}/postgres?sslmode=require"
    ))
    .await;
    assert!(
        err.contains("TLS") || err.contains("tls"),
        "require without server TLS: {err}"
    );
    plain.abort();
}

/// What one run of the binary did.
struct Run {
    code: Option<i32>,
    stderr: String,
    /// The `answer` column, when the run succeeded.
    answer: Option<Vec<Option<i64>>>,
}

/// Runs the binary over one shard `a` at `url`, with `env` set and `unset` removed. The
/// trust store and the home directory come from the environment, which a test must not
/// change in its own (multi-threaded) process; the machine's own `SSL_CERT_FILE`,
/// `SSL_CERT_DIR` and `HOME` are never relied on.
fn run_binary(url: &str, env: &[(&str, &OsStr)], unset: &[&str]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    harness::write_job(dir.path(), "SELECT 42::bigint AS answer", url);
    let args = harness::job_args(
        "run",
        &[
            "-o",
            "o.parquet",
            "--retries",
            "0",
            "--connect-timeout",
            "3s",
        ],
    );
    let out = harness::tributary_with(dir.path(), &args, |cmd| {
        for var in ["SSL_CERT_FILE", "SSL_CERT_DIR", "PGPASSWORD", "PGSSLMODE"]
            .iter()
            .chain(unset)
        {
            cmd.env_remove(var);
        }
        for (var, value) in env {
            cmd.env(var, value);
        }
    });
    let output = dir.path().join("o.parquet");
    Run {
        code: out.status.code(),
        stderr: harness::stderr(&out),
        answer: output
            .exists()
            .then(|| i64_column(&read_batch(&output), "answer")),
    }
}

/// A local port that accepts nothing: a run that must fail before connecting is pointed
/// at it, and afterwards no connection may be waiting.
struct Untouched(std::net::TcpListener);

impl Untouched {
    fn new() -> Untouched {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        Untouched(listener)
    }

    fn port(&self) -> u16 {
        self.0.local_addr().unwrap().port()
    }

    fn assert_untouched(&self, what: &str) {
        match self.0.accept() {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            other => panic!("{what}: the shard was connected to: {other:?}"),
        }
    }
}

/// `sslrootcert=system`: the system's trust store, `verify-full` by default and only.
fn system_roots_follow_libpq(cluster: &Cluster) {
    let port = cluster.port;
    let ca = cluster.dir.join("ca.crt");
    let other = cluster.dir.join("other-ca.crt");
    let url = |host: &str, query: &str| {
        format!("postgres://postgres@{host}:{port}/postgres?sslrootcert=system{query}")
    };

    // The CA is in the store SSL_CERT_FILE names, as with OpenSSL.
    for query in ["", "&sslmode=verify-full"] {
        let run = run_binary(
            &url("localhost", query),
            &[("SSL_CERT_FILE", ca.as_os_str())],
            &[],
        );
        assert_eq!(run.answer, Some(vec![Some(42)]), "{query}: {}", run.stderr);
        assert_eq!(run.code, Some(0));
    }

    // verify-full is implied: the name is checked even with the right roots.
    let run = run_binary(
        &url("127.0.0.1", ""),
        &[("SSL_CERT_FILE", ca.as_os_str())],
        &[],
    );
    assert_eq!(run.code, Some(5), "{}", run.stderr);
    assert!(
        run.stderr.contains("shard `a`")
            && run
                .stderr
                .contains("certificate not valid for name \"127.0.0.1\""),
        "system roots, wrong name: {}",
        run.stderr
    );

    // A store without the CA (another CA; the machine's own bundle) refuses the server.
    for (env, what) in [
        (vec![("SSL_CERT_FILE", other.as_os_str())], "another CA"),
        (vec![], "the platform's store"),
    ] {
        let run = run_binary(&url("localhost", ""), &env, &[]);
        assert_eq!(run.code, Some(5), "{what}: {}", run.stderr);
        assert!(
            run.stderr.contains("shard `a`") && run.stderr.contains("invalid peer certificate"),
            "{what}: {}",
            run.stderr
        );
        assert_eq!(run.answer, None);
    }

    // Any other mode is refused before connecting, in libpq's words.
    let listener = Untouched::new();
    for mode in ["verify-ca", "require"] {
        let run = run_binary(
            &format!(
                "postgres://postgres:Sup3r-Secret@127.0.0.1:{}/postgres?sslmode={mode}&sslrootcert=system",
                listener.port()
            ),
            &[("SSL_CERT_FILE", ca.as_os_str())],
            &[],
        );
        assert_eq!(run.code, Some(3), "{mode}: {}", run.stderr);
        assert!(
            run.stderr.contains(&format!(
                "shard `a`: weak sslmode \"{mode}\" may not be used with sslrootcert=system (use \"verify-full\")"
            )) && !run.stderr.contains("Sup3r-Secret"),
            "{mode}: {}",
            run.stderr
        );
    }
    listener.assert_untouched("sslrootcert=system with a weak sslmode");
}

/// Without `sslrootcert`, `verify-ca` and `verify-full` use `~/.postgresql/root.crt`, and
/// are refused before connecting when it does not exist: no public roots stand in.
fn default_root_file_follows_libpq(cluster: &Cluster) {
    let home = tempfile::tempdir().unwrap();
    let listener = Untouched::new();
    let secret = "Sup3r-Secret";
    for mode in ["verify-ca", "verify-full"] {
        let url = format!(
            "postgres://postgres:{secret}@127.0.0.1:{}/postgres?sslmode={mode}",
            listener.port()
        );
        let run = run_binary(&url, &[("HOME", home.path().as_os_str())], &[]);
        assert_eq!(run.code, Some(3), "{mode}: {}", run.stderr);
        let expected = format!(
            "shard `a`: root certificate file \"{}\" does not exist; either provide the file, use the system's trusted roots with sslrootcert=system, or change sslmode to disable server certificate verification",
            home.path().join(".postgresql/root.crt").display()
        );
        assert!(
            run.stderr.contains(&expected) && !run.stderr.contains(secret),
            "{mode}: {}",
            run.stderr
        );

        let run = run_binary(&url, &[], &["HOME"]);
        assert_eq!(run.code, Some(3), "{mode}: {}", run.stderr);
        assert!(
            run.stderr.contains(
                "shard `a`: could not get home directory to locate root certificate file"
            ) && !run.stderr.contains(secret),
            "{mode} without HOME: {}",
            run.stderr
        );
    }
    listener.assert_untouched("verify-ca/verify-full without a root certificate file");

    // With the file in place it is the trusted root.
    std::fs::create_dir(home.path().join(".postgresql")).unwrap();
    std::fs::copy(
        cluster.dir.join("ca.crt"),
        home.path().join(".postgresql/root.crt"),
    )
    .unwrap();
    let run = run_binary(
        &format!(
            "postgres://postgres@localhost:{}/postgres?sslmode=verify-full",
            cluster.port
        ),
        &[("HOME", home.path().as_os_str())],
        &[],
    );
    assert_eq!(run.answer, Some(vec![Some(42)]), "{}", run.stderr);
}
