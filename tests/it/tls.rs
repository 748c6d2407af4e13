//! TLS against a PostgreSQL cluster this test starts with its own certificate authority:
//! `verify-full` with the right CA succeeds; a wrong CA or a wrong host name is refused;
//! `verify-ca` accepts the chain whatever the name; `require` never falls back to
//! plaintext when the server has no TLS.

use std::path::{Path, PathBuf};
use std::process::Command;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::{Job, concat, i64_column};

/// A port outside the ranges other test suites on this machine use.
const PORT: u16 = 5541;

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
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
    let cluster = Cluster { dir: dir.clone() };
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
        "port = {PORT}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{d}'\nssl = on\nssl_cert_file = '{d}/server.crt'\nssl_key_file = '{d}/server.key'\n",
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
    result.map(|()| {
        i64_column(
            &concat(&crate::harness::read_parquet(&job.output())),
            "answer",
        )
    })
}

#[tokio::test]
async fn tls_modes_follow_libpq() {
    let cluster = start_cluster();
    let ca = cluster.dir.join("ca.crt");
    let other = cluster.dir.join("other-ca.crt");
    let url = |host: &str, mode: &str, root: &Path| {
        format!(
            "postgres://postgres@{host}:{PORT}/postgres?sslmode={mode}&sslrootcert={}",
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

    let err = attempt(&url("localhost", "verify-full", &other))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("shard `tls`") && err.to_lowercase().contains("certificate"),
        "wrong CA: {err}"
    );

    let err = attempt(&url("127.0.0.1", "verify-full", &ca))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.to_lowercase().contains("certificate") && err.contains("Name"),
        "wrong host name: {err}"
    );

    assert_eq!(
        attempt(&url("127.0.0.1", "verify-ca", &ca)).await.unwrap(),
        [Some(42)],
        "verify-ca ignores the name"
    );
    let err = attempt(&url("127.0.0.1", "verify-ca", &other))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.to_lowercase().contains("certificate"),
        "verify-ca with a wrong CA: {err}"
    );

    assert_eq!(
        attempt(&format!(
            "postgres://postgres@127.0.0.1:{PORT}/postgres?sslmode=require"
        ))
        .await
        .unwrap(),
        [Some(42)]
    );
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
    let err = attempt(&format!(
        "postgres://postgres@127.0.0.1:{port}/postgres?sslmode=require"
    ))
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("TLS") || err.contains("tls"),
        "require without server TLS: {err}"
    );
    plain.abort();
}
