//! Remote outputs, against servers that speak each cloud's protocol, started by the
//! tests (`tests/storage/emulator.py`): moto's S3 server (with authentication on),
//! fake-gcs-server and Azurite. The Python side comes from the readers' venv
//! (`readers::python`); Azurite is installed with npm under the target directory on
//! first use. A missing tool fails the test, saying what to install.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use sha2::{Digest, Sha256};
use tributary::error::exit;

use crate::harness::{self, bin, read_parquet, stderr};
use crate::proxy::{Fault, Proxy};
use crate::readers;

/// The Azurite release installed for the Azure tests (3.36 and later need Node 21+).
const AZURITE: &str = "azurite@3.35.0";
const EMULATOR: &str = "tests/storage/emulator.py";

/// Rows of the test table: enough for several 5 MiB parts.
const ROWS: i64 = 300_000;
const SETUP: &str = "CREATE TABLE t AS SELECT i::bigint AS id, md5(i::text) || md5((i * 7)::text) || md5((i * 13)::text) AS note, \
     (i % 100000)::numeric(12,2) / 100 AS amount FROM generate_series(1, 300000) i;";
const QUERY: &str = "SELECT id, note, amount FROM t ORDER BY id";

/// `azurite-blob`, installed with npm under the target directory once per machine.
fn azurite() -> PathBuf {
    let dir = readers::target_dir().join("npm-azurite");
    let bin = dir.join("node_modules").join(".bin").join("azurite-blob");
    let stamp = dir.join("tributary-version");
    std::fs::create_dir_all(&dir).unwrap();
    let lock = std::fs::File::create(dir.join("install.lock")).unwrap();
    lock.lock().expect("locking the Azurite install");
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(AZURITE) {
        let out = Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--prefix"])
            .arg(&dir)
            .arg(AZURITE)
            .output()
            .unwrap_or_else(|e| {
                panic!("the Azure tests need npm (Node.js) to install {AZURITE}: {e}")
            });
        assert!(
            out.status.success(),
            "npm install {AZURITE} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::write(&stamp, AZURITE).unwrap();
    }
    bin
}

/// One emulator, driven through the script's stdin and stdout.
struct Emulator {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    hello: serde_json::Value,
}

impl Emulator {
    fn start(cloud: &str) -> Emulator {
        let mut command = Command::new(readers::python());
        command
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join(EMULATOR))
            .args(["serve", cloud]);
        if cloud == "azure" {
            command.arg("--azurite").arg(azurite());
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting the {cloud} emulator: {e}"));
        let stdin = child.stdin.take();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let hello: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("the {cloud} emulator did not start ({e}): {line:?}"));
        Emulator {
            child,
            stdin,
            stdout,
            hello,
        }
    }

    /// The URL of `key` in the emulator's bucket.
    fn url(&self, key: &str) -> String {
        format!("{}/{key}", self.hello["url"].as_str().unwrap())
    }

    fn port(&self) -> u16 {
        self.hello["port"].as_u64().unwrap() as u16
    }

    /// A credential of the emulator's, which no message may show.
    fn secret(&self) -> Option<String> {
        self.hello["secret"].as_str().map(str::to_string)
    }

    /// `--storage-option` flags reaching the emulator, with `overrides` over them.
    fn storage_args(&self, overrides: &[(&str, &str)]) -> Vec<String> {
        let mut options: BTreeMap<String, String> = self.hello["options"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        for (k, v) in overrides {
            options.insert(k.to_string(), v.to_string());
        }
        options
            .iter()
            .flat_map(|(k, v)| ["--storage-option".to_string(), format!("{k}={v}")])
            .collect()
    }

    /// A `tributary` command with the emulator's environment.
    fn tributary(&self, dir: &Path) -> Command {
        let mut command = bin();
        command
            .current_dir(dir)
            .env("TRIBUTARY_STAGING_DIR", dir.join("staging"));
        for (k, v) in self.hello["env"].as_object().unwrap() {
            command.env(k, v.as_str().unwrap());
        }
        command
    }

    fn ask(&mut self, command: &str) -> serde_json::Value {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{command}").unwrap();
        stdin.flush().unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        let answer: serde_json::Value = serde_json::from_str(&line).unwrap();
        if let Some(error) = answer.get("error") {
            panic!("emulator: {command}: {error}");
        }
        answer
    }

    /// The bucket's objects (key -> size) and unfinished uploads.
    fn list(&mut self) -> (BTreeMap<String, u64>, Vec<String>) {
        let answer = self.ask("list");
        let objects = answer["objects"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
            .collect();
        let uploads = answer["uploads"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        (objects, uploads)
    }

    /// The bucket's objects (key -> size), asserting that `key` is the only one and that
    /// no upload is left unfinished.
    fn only(&mut self, key: &str, cloud: &str) -> BTreeMap<String, u64> {
        let (objects, uploads) = self.list();
        assert_eq!(objects.keys().collect::<Vec<_>>(), [key], "{cloud}");
        assert!(
            uploads.is_empty(),
            "{cloud}: unfinished uploads {uploads:?}"
        );
        objects
    }

    fn get(&mut self, key: &str, path: &Path) -> Vec<u8> {
        self.ask(&format!("get {key} {}", path.display()));
        std::fs::read(path).unwrap()
    }

    fn put(&mut self, key: &str, text: &str) {
        self.ask(&format!("put {key} {text}"));
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A directory with `q.sql` (the test query) over the shard `url`.
fn job_dir(url: &str, query: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    harness::write_query_and_shards(dir.path(), query, &format!("[shards]\na = \"{url}\"\n"));
    dir
}

fn run(command: &mut Command, args: &[&str], extra: &[String]) -> std::process::Output {
    command
        .args(["run", "q.sql", "--shards", "s.toml"])
        .args(args)
        .args(extra)
        .output()
        .unwrap()
}

fn rows(batches: &[RecordBatch]) -> RecordBatch {
    harness::concat(batches)
}

/// Files left under `dir` (recursively).
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_under(&path));
        } else {
            found.push(path);
        }
    }
    found
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A job directory over a new database `name` holding the test table, and the test
/// query's local export, read back.
async fn exported(name: &str) -> (tempfile::TempDir, RecordBatch) {
    let url = harness::database(name, SETUP).await;
    let dir = job_dir(&url, QUERY);
    let out = run(bin().current_dir(dir.path()), &["-o", "local.parquet"], &[]);
    harness::succeeded(&out);
    let expected = rows(&read_parquet(&dir.path().join("local.parquet")));
    assert_eq!(expected.num_rows() as i64, ROWS);
    (dir, expected)
}

/// Exports the test table to `cloud` in 5 MiB parts; the object equals the local export
/// row for row, nothing else is in the bucket, no upload is left unfinished, the report's
/// checksum is the object's, and nothing is left staged.
async fn an_export_lands_as_one_object_equal_to_the_local_export(cloud: &str) {
    let (dir, expected) = exported(&format!("storage_export_{cloud}")).await;
    let dir = dir.path();
    let mut emulator = Emulator::start(cloud);
    let target = emulator.url("exports/day=1/x.parquet");
    let out = run(
        &mut emulator.tributary(dir),
        &["-o", &target, "--report", "report.json"],
        &emulator.storage_args(&[("part_size", "5MiB")]),
    );
    harness::succeeded(&out);
    let objects = emulator.only("exports/day=1/x.parquet", cloud);
    let size = objects["exports/day=1/x.parquet"];
    assert!(
        size > 2 * (5 << 20),
        "{cloud}: {size} bytes: too few for three parts"
    );
    let downloaded = dir.join("downloaded.parquet");
    let bytes = emulator.get("exports/day=1/x.parquet", &downloaded);
    assert_eq!(rows(&read_parquet(&downloaded)), expected, "{cloud}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("report.json")).unwrap()).unwrap();
    let object = &report["run"]["output"]["remote"][0];
    assert_eq!(object["url"], target.as_str());
    assert_eq!(object["bytes"], bytes.len() as u64);
    assert_eq!(object["sha256"], sha256_hex(&bytes).as_str());
    assert_eq!(report["run"]["output"]["path"], target.as_str());
    assert!(
        stderr(&out).contains(&target) || harness::stdout(&out).contains(&target),
        "the summary names the object:\n{}",
        stderr(&out)
    );
    assert_eq!(files_under(&dir.join("staging")), Vec::<PathBuf>::new());
}

#[tokio::test]
async fn s3_an_export_lands_as_one_object_equal_to_the_local_export() {
    an_export_lands_as_one_object_equal_to_the_local_export("s3").await;
}

#[tokio::test]
async fn gcs_an_export_lands_as_one_object_equal_to_the_local_export() {
    an_export_lands_as_one_object_equal_to_the_local_export("gcs").await;
}

#[tokio::test]
async fn azure_an_export_lands_as_one_object_equal_to_the_local_export() {
    an_export_lands_as_one_object_equal_to_the_local_export("azure").await;
}

/// 10M rows of a bigint and a decimal, read in the table's order (no synchronized scans,
/// so that two runs read the rows alike).
const SETUP_10M: &str = "CREATE TABLE t AS SELECT i::bigint AS id, (i % 100000)::numeric(12,2) / 100 AS amount \
     FROM generate_series(1, 10000000) i; ANALYZE t;";
const QUERY_10M: &str = "SELECT id, amount FROM t";

/// The peak RSS (bytes) of `command`, run under GNU time, which must succeed.
fn peak_rss(command: &Command, dir: &Path, name: &str) -> u64 {
    let gnu_time = Path::new("/usr/bin/time");
    assert!(
        gnu_time.exists(),
        "GNU time measures the peak RSS: install it with `apt-get install time`"
    );
    let rss = dir.join(format!("{name}.rss"));
    let mut timed = Command::new(gnu_time);
    timed
        .args(["-f", "%M", "-o"])
        .arg(&rss)
        .arg(command.get_program())
        .args(command.get_args())
        .current_dir(command.get_current_dir().unwrap_or(dir));
    for (k, v) in command.get_envs() {
        match v {
            Some(v) => timed.env(k, v),
            None => timed.env_remove(k),
        };
    }
    harness::succeeded(&timed.output().unwrap());
    let kib: u64 = std::fs::read_to_string(&rss)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    kib * 1024
}

/// 10M rows to `cloud` in the default parts (16 MiB, 2 in flight): one object equal row
/// for row to the local export, no upload left, and a peak RSS within the local
/// export's plus the upload's documented bound, `part_size x (upload_concurrency + 1)`.
async fn ten_million_rows_land_within_the_memory_bound(cloud: &str) {
    let db = format!("storage_10m_{cloud}");
    let url = harness::database(&db, SETUP_10M).await;
    harness::connect(&harness::db(&db))
        .await
        .batch_execute(&format!(
            "ALTER DATABASE {} SET synchronize_seqscans = off",
            harness::db(&db)
        ))
        .await
        .unwrap();
    let dir = job_dir(&url, QUERY_10M);
    let dir = dir.path();
    let mut local = bin();
    local.current_dir(dir).args([
        "run",
        "q.sql",
        "--shards",
        "s.toml",
        "-o",
        "local.parquet",
        "--no-ledger",
        "--quiet",
    ]);
    let local_rss = peak_rss(&local, dir, "local");

    let mut emulator = Emulator::start(cloud);
    let target = emulator.url("big/x.parquet");
    let mut remote = emulator.tributary(dir);
    remote
        .args([
            "run",
            "q.sql",
            "--shards",
            "s.toml",
            "-o",
            &target,
            "--no-ledger",
            "--quiet",
        ])
        .args(emulator.storage_args(&[]));
    let remote_rss = peak_rss(&remote, dir, "remote");

    emulator.only("big/x.parquet", cloud);
    let downloaded = dir.join("downloaded.parquet");
    emulator.get("big/x.parquet", &downloaded);
    let expected = rows(&read_parquet(&dir.join("local.parquet")));
    assert_eq!(expected.num_rows(), 10_000_000);
    assert_eq!(rows(&read_parquet(&downloaded)), expected, "{cloud}");

    eprintln!(
        "{cloud}: peak RSS {} MiB to the object store, {} MiB to a local file",
        remote_rss >> 20,
        local_rss >> 20
    );
    let bound = 16 << 20;
    let parts = bound * 3;
    assert!(
        remote_rss <= local_rss + parts + bound,
        "{cloud}: peak RSS {} MiB against the local export's {} MiB: more than 3 parts of 16 MiB (and 16 MiB of noise) over it",
        remote_rss >> 20,
        local_rss >> 20
    );
}

#[tokio::test]
async fn s3_ten_million_rows_land_within_the_memory_bound() {
    ten_million_rows_land_within_the_memory_bound("s3").await;
}

#[tokio::test]
async fn gcs_ten_million_rows_land_within_the_memory_bound() {
    ten_million_rows_land_within_the_memory_bound("gcs").await;
}

#[tokio::test]
async fn azure_ten_million_rows_land_within_the_memory_bound() {
    ten_million_rows_land_within_the_memory_bound("azure").await;
}

/// A query that fails after more than a part's worth of rows: the run fails, the
/// object already at the target is untouched and nothing else is in the bucket; on S3
/// no unfinished multipart upload is left (fake-gcs-server does not list resumable
/// sessions; Azure keeps an aborted upload's uncommitted blocks, unseen by readers, until
/// it collects them).
async fn a_failed_run_leaves_the_target_untouched(cloud: &str) {
    let url = harness::database(&format!("storage_fail_{cloud}"), SETUP).await;
    let dir = job_dir(
        &url,
        // In the table's order: rows stream until the error.
        "SELECT id, note, amount, CASE WHEN id = 250000 THEN 1 / (id - id) ELSE 0 END AS boom \
         FROM t",
    );
    let dir = dir.path();
    let mut emulator = Emulator::start(cloud);
    emulator.put("out/x.parquet", "old");
    let out = run(
        &mut emulator.tributary(dir),
        &[
            "-o",
            &emulator.url("out/x.parquet"),
            "--retries",
            "0",
            "--row-group-size",
            "50000",
        ],
        &emulator.storage_args(&[("part_size", "5MiB")]),
    );
    assert_ne!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("division by zero"),
        "{}",
        stderr(&out)
    );
    let (objects, uploads) = emulator.list();
    assert_eq!(objects, BTreeMap::from([("out/x.parquet".to_string(), 3)]));
    if cloud == "s3" {
        assert!(
            uploads.is_empty(),
            "{cloud}: unfinished uploads {uploads:?}"
        );
    }
    assert_eq!(emulator.get("out/x.parquet", &dir.join("got")), b"old");
    assert_eq!(files_under(&dir.join("staging")), Vec::<PathBuf>::new());
}

#[tokio::test]
async fn s3_a_failed_run_leaves_the_target_untouched() {
    a_failed_run_leaves_the_target_untouched("s3").await;
}

#[tokio::test]
async fn gcs_a_failed_run_leaves_the_target_untouched() {
    a_failed_run_leaves_the_target_untouched("gcs").await;
}

#[tokio::test]
async fn azure_a_failed_run_leaves_the_target_untouched() {
    a_failed_run_leaves_the_target_untouched("azure").await;
}

/// Wrong credentials fail before any query, exit 8, naming the bucket, and neither the
/// wrong secret nor the emulator's right one appears in any output. (fake-gcs-server
/// checks no credentials.)
#[tokio::test]
async fn wrong_credentials_fail_clearly_without_printing_the_secret() {
    let url = harness::database("storage_creds", "CREATE TABLE t AS SELECT 1 AS id").await;
    let dir = job_dir(&url, "SELECT id FROM t");
    let dir = dir.path();
    for (cloud, key, wrong) in [
        ("s3", "secret_access_key", "WrongSecretValue0123456789"),
        (
            "azure",
            "access_key",
            "V3JvbmdLZXlXcm9uZ0tleVdyb25nS2V5V3JvbmdLZXk=",
        ),
    ] {
        let emulator = Emulator::start(cloud);
        // A file, and a Delta table (its log is read first).
        for output in [
            vec!["-o".to_string(), emulator.url("x.parquet")],
            vec![
                "-o".to_string(),
                emulator.url("lake/t"),
                "--table-format".to_string(),
                "delta".to_string(),
            ],
        ] {
            let mut args: Vec<&str> = output.iter().map(String::as_str).collect();
            args.extend(["--report", "r.json"]);
            let _ = std::fs::remove_file(dir.join("r.json"));
            let out = run(
                &mut emulator.tributary(dir),
                &args,
                &emulator.storage_args(&[(key, wrong)]),
            );
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(exit::OUTPUT), "{cloud}: {err}");
            assert!(err.contains("bucket `tributary`"), "{cloud}: {err}");
            let report = std::fs::read_to_string(dir.join("r.json")).unwrap_or_default();
            let everything = format!("{err}{}{report}", harness::stdout(&out));
            assert!(
                !everything.contains(wrong),
                "{cloud}: the secret was printed: {err}"
            );
            if let Some(secret) = emulator.secret() {
                assert!(!everything.contains(&secret), "{cloud}: {err}");
            }
        }
    }
}

/// The first connection to carry 3 MiB of an upload is cut there: on S3 and Azure the
/// part is sent again on a new connection and the object equals the local export; on
/// GCS the run fails cleanly (exit 8, no object).
async fn an_upload_cut_mid_way_is_retried_and_the_object_is_exact(cloud: &str) {
    let (dir, expected) = exported(&format!("storage_cut_{cloud}")).await;
    let dir = dir.path();
    let mut emulator = Emulator::start(cloud);
    let cut_at = 3 << 20;
    let proxy = Proxy::start_to(emulator.port(), move |_| Fault::CutFirstUploadAfter(cut_at)).await;
    let endpoint = format!("http://127.0.0.1:{}", proxy.port);
    let target = emulator.url("cut/x.parquet");
    let mut command = emulator.tributary(dir);
    // One part at a time: a second connection is the retry of the cut one. Each cloud
    // is reached through the proxy in its own way.
    let mut overrides = vec![("part_size", "5MiB"), ("upload_concurrency", "1")];
    let account = dir.join("proxied-account.json");
    match cloud {
        "s3" => overrides.push(("endpoint", &endpoint)),
        "gcs" => {
            let original = emulator.hello["options"]["google_service_account"]
                .as_str()
                .unwrap();
            let mut key: serde_json::Value =
                serde_json::from_slice(&std::fs::read(original).unwrap()).unwrap();
            key["gcs_base_url"] = endpoint.clone().into();
            std::fs::write(&account, key.to_string()).unwrap();
            overrides.push(("google_service_account", account.to_str().unwrap()));
        }
        _ => {
            command.env("AZURITE_BLOB_STORAGE_URL", &endpoint);
        }
    }
    let args = emulator.storage_args(&overrides);
    let shown = target.clone();
    let out = tokio::task::spawn_blocking(move || run(&mut command, &["-o", &target], &args))
        .await
        .unwrap();
    assert_eq!(proxy.cuts(), 1, "{cloud}: the upload was not cut");
    if cloud == "gcs" {
        // A resumable session's part is not resumed after a cut: the run fails cleanly,
        // naming the object, and leaves none.
        assert_eq!(out.status.code(), Some(exit::OUTPUT), "{}", stderr(&out));
        assert!(stderr(&out).contains(&shown), "{}", stderr(&out));
        let (objects, _) = emulator.list();
        assert!(objects.is_empty(), "{objects:?}");
        return;
    }
    harness::succeeded(&out);
    assert!(
        proxy.accepted() >= 2,
        "{cloud}: the cut connection was not replaced"
    );
    emulator.only("cut/x.parquet", cloud);
    emulator.get("cut/x.parquet", &dir.join("got.parquet"));
    assert_eq!(
        rows(&read_parquet(&dir.join("got.parquet"))),
        expected,
        "{cloud}"
    );
}

#[tokio::test]
async fn s3_an_upload_cut_mid_way_is_retried_and_the_object_is_exact() {
    an_upload_cut_mid_way_is_retried_and_the_object_is_exact("s3").await;
}

#[tokio::test]
async fn gcs_an_upload_cut_mid_way_is_retried_and_the_object_is_exact() {
    an_upload_cut_mid_way_is_retried_and_the_object_is_exact("gcs").await;
}

#[tokio::test]
async fn azure_an_upload_cut_mid_way_is_retried_and_the_object_is_exact() {
    an_upload_cut_mid_way_is_retried_and_the_object_is_exact("azure").await;
}

/// SIGINT while parts are being uploaded: exit 130, no object, no unfinished upload.
#[tokio::test]
async fn s3_an_interrupted_run_leaves_no_object_and_no_upload() {
    let url = harness::database("storage_sigint", SETUP).await;
    let dir = job_dir(
        &url,
        "SELECT id, note, amount FROM t \
         UNION ALL SELECT 0, pg_sleep(60)::text, 0 FROM (SELECT 1) s",
    );
    let dir = dir.path();
    let mut emulator = Emulator::start("s3");
    let child = emulator
        .tributary(dir)
        .args(["run", "q.sql", "--shards", "s.toml", "-o"])
        .arg(emulator.url("int/x.parquet"))
        .args(["--row-group-size", "50000"])
        .args(emulator.storage_args(&[("part_size", "5MiB")]))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the upload has begun.
    let deadline = Instant::now() + Duration::from_secs(60);
    while emulator.list().1.is_empty() {
        assert!(Instant::now() < deadline, "no upload began");
        std::thread::sleep(Duration::from_millis(100));
    }
    harness::signal_and_wait(child, "INT", exit::INTERRUPTED);
    let (objects, uploads) = emulator.list();
    assert!(objects.is_empty(), "{objects:?}");
    assert!(uploads.is_empty(), "{uploads:?}");
    assert_eq!(files_under(&dir.join("staging")), Vec::<PathBuf>::new());
}

/// A split output's parts and manifest land beside the target; a rerun with fewer parts
/// deletes the stale ones, and the manifest lists exactly what is there.
#[tokio::test]
async fn s3_a_split_output_lands_with_its_manifest_and_a_rerun_replaces_it() {
    let (dir, expected) = exported("storage_split").await;
    let dir = dir.path();
    let mut emulator = Emulator::start("s3");
    let target = emulator.url("split/x.parquet");
    for (max_rows, parts) in [("100000", 3), ("200000", 2)] {
        let out = run(
            &mut emulator.tributary(dir),
            &["-o", &target, "--max-file-rows", max_rows],
            &emulator.storage_args(&[]),
        );
        harness::succeeded(&out);
        let (objects, uploads) = emulator.list();
        assert!(uploads.is_empty(), "{uploads:?}");
        let mut names: Vec<String> = (0..parts)
            .map(|i| format!("split/x-{i:05}.parquet"))
            .collect();
        names.push("split/x.manifest.json".into());
        names.sort();
        assert_eq!(objects.keys().cloned().collect::<Vec<_>>(), names);
        let manifest: serde_json::Value = serde_json::from_slice(
            &emulator.get("split/x.manifest.json", &dir.join("manifest.json")),
        )
        .unwrap();
        let listed: Vec<&str> = manifest["parts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["file"].as_str().unwrap())
            .collect();
        assert_eq!(listed.len(), parts);
        let mut batches = Vec::new();
        for name in listed {
            let local = dir.join(name);
            emulator.get(&format!("split/{name}"), &local);
            batches.extend(read_parquet(&local));
        }
        assert_eq!(rows(&batches), expected, "--max-file-rows {max_rows}");
    }
}

/// A job writing to S3 with its ledger: a rerun finds the object intact by its size and
/// entity tag and is skipped; once the object is replaced, the next run runs.
#[tokio::test]
async fn s3_a_ledger_rerun_is_skipped_while_the_object_is_intact() {
    let url = harness::database("storage_ledger", "CREATE TABLE t AS SELECT 1::bigint AS id").await;
    let dir = job_dir(&url, "SELECT id FROM t");
    let dir = dir.path();
    let mut emulator = Emulator::start("s3");
    let mut storage = String::from("[storage]\n");
    for (k, v) in emulator.hello["options"].as_object().unwrap() {
        storage.push_str(&format!("{k} = {v}\n"));
    }
    std::fs::write(
        dir.join("job.toml"),
        format!(
            "name = \"nightly\"\nquery = \"q.sql\"\nshards = \"s.toml\"\n\
             output = \"{}\"\nledger = \"ledger.db\"\n{storage}",
            emulator.url("ledger/x.parquet")
        ),
    )
    .unwrap();
    let statuses = |emulator: &Emulator| -> Vec<String> {
        let out = emulator
            .tributary(dir)
            .args(["runs", "--job", "job.toml", "--json"])
            .output()
            .unwrap();
        let runs: Vec<serde_json::Value> = serde_json::from_str(&harness::succeeded(&out)).unwrap();
        runs.iter()
            .map(|r| r["status"].as_str().unwrap().to_string())
            .collect()
    };
    let run_job = |emulator: &Emulator| {
        let out = emulator
            .tributary(dir)
            .args(["run", "--job", "job.toml"])
            .output()
            .unwrap();
        harness::succeeded(&out);
    };
    run_job(&emulator);
    run_job(&emulator);
    assert_eq!(statuses(&emulator), ["skipped", "succeeded"]);
    emulator.put("ledger/x.parquet", "replaced");
    run_job(&emulator);
    assert_eq!(statuses(&emulator), ["succeeded", "skipped", "succeeded"]);
    let got = emulator.get("ledger/x.parquet", &dir.join("got.parquet"));
    assert_ne!(got, b"replaced");
    assert_eq!(
        harness::i64_column(&harness::read_batch(&dir.join("got.parquet")), "id"),
        [Some(1)]
    );
}

/// A dataset (`--partition-by`) in `cloud`: every file under the dataset's prefix, then
/// `_SUCCESS` listing them; a rerun with fewer directories deletes the previous run's
/// other files; a prefix holding other objects is refused before any query runs.
async fn a_dataset_lands_under_its_prefix_with_its_manifest(cloud: &str) {
    let url = harness::database(&format!("storage_dataset_{cloud}"), SETUP).await;
    let dir = job_dir(
        &url,
        "SELECT id, note, (id % :n)::int AS bucket FROM t ORDER BY id",
    );
    let dir = dir.path();
    let mut emulator = Emulator::start(cloud);
    let target = emulator.url("lake/ds");
    for n in [4, 2] {
        let n_param = format!("n={n}");
        let out = run(
            &mut emulator.tributary(dir),
            &[
                "-o",
                &target,
                "--partition-by",
                "bucket",
                "--param",
                &n_param,
            ],
            &emulator.storage_args(&[]),
        );
        harness::succeeded(&out);
        let (objects, uploads) = emulator.list();
        assert!(uploads.is_empty(), "{uploads:?}");
        let mut expected: Vec<String> = (0..n)
            .map(|b| format!("lake/ds/bucket={b}/part-00000.parquet"))
            .collect();
        expected.push("lake/ds/_SUCCESS".into());
        expected.sort();
        assert_eq!(
            objects.keys().cloned().collect::<Vec<_>>(),
            expected,
            "n = {n}"
        );
        let manifest: serde_json::Value =
            serde_json::from_slice(&emulator.get("lake/ds/_SUCCESS", &dir.join("success.json")))
                .unwrap();
        assert_eq!(manifest["rows"], ROWS);
        let mut ids = Vec::new();
        for part in manifest["parts"].as_array().unwrap() {
            let name = part["file"].as_str().unwrap();
            let local = dir.join(name.replace('/', "_"));
            emulator.get(&format!("lake/ds/{name}"), &local);
            assert_eq!(
                objects[&format!("lake/ds/{name}")],
                part["bytes"].as_u64().unwrap()
            );
            let bucket: i64 = name
                .strip_prefix("bucket=")
                .and_then(|r| r.split('/').next())
                .unwrap()
                .parse()
                .unwrap();
            let batch = rows(&read_parquet(&local));
            assert!(batch.column_by_name("bucket").is_none(), "{name}");
            for id in harness::i64_column(&batch, "id") {
                let id = id.unwrap();
                assert_eq!(id % n, bucket, "{name} holds {id}");
                ids.push(id);
            }
        }
        ids.sort();
        assert_eq!(ids, (1..=ROWS).collect::<Vec<_>>(), "n = {n}");
        assert!(
            files_under(&dir.join("staging")).is_empty(),
            "staged files left"
        );
    }

    emulator.put("lake/other/readme.txt", "not a dataset");
    let out = run(
        &mut emulator.tributary(dir),
        &[
            "-o",
            &emulator.url("lake/other"),
            "--partition-by",
            "bucket",
            "--param",
            "n=2",
        ],
        &emulator.storage_args(&[]),
    );
    assert_eq!(out.status.code(), Some(exit::OUTPUT), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no _SUCCESS manifest"),
        "{}",
        stderr(&out)
    );
    let (objects, _) = emulator.list();
    assert!(
        !objects.keys().any(|k| k.starts_with("lake/other/bucket=")),
        "{objects:?}"
    );
}

#[tokio::test]
async fn s3_a_dataset_lands_under_its_prefix_with_its_manifest() {
    a_dataset_lands_under_its_prefix_with_its_manifest("s3").await;
}

#[tokio::test]
async fn gcs_a_dataset_lands_under_its_prefix_with_its_manifest() {
    a_dataset_lands_under_its_prefix_with_its_manifest("gcs").await;
}

#[tokio::test]
async fn azure_a_dataset_lands_under_its_prefix_with_its_manifest() {
    a_dataset_lands_under_its_prefix_with_its_manifest("azure").await;
}

/// A Delta table in the bucket: two commits (the table, then the run's files), a rerun
/// that adds nothing, and the objects, mirrored locally, read by `deltalake` and DuckDB
/// with the rows of the local export.
async fn a_delta_table_lands_in_one_commit_and_a_rerun_adds_nothing(cloud: &str) {
    let url = harness::database(&format!("storage_delta_{cloud}"), SETUP).await;
    let dir = job_dir(
        &url,
        "SELECT id, note, amount, (id % 4)::int AS bucket FROM t",
    );
    let dir = dir.path();
    harness::succeeded(&run(bin().current_dir(dir), &["-o", "local.parquet"], &[]));
    let mut emulator = Emulator::start(cloud);
    let target = emulator.url("lake/t");
    let args = [
        "-o",
        &target,
        "--table-format",
        "delta",
        "--partition-by",
        "bucket",
        "--no-ledger",
    ];
    let out = run(
        &mut emulator.tributary(dir),
        &args,
        &emulator.storage_args(&[]),
    );
    harness::succeeded(&out);
    let again = run(
        &mut emulator.tributary(dir),
        &args,
        &emulator.storage_args(&[]),
    );
    harness::succeeded(&again);
    assert!(
        harness::stdout(&again).contains("already holds this run"),
        "{}",
        harness::stdout(&again)
    );
    let (objects, uploads) = emulator.list();
    assert!(uploads.is_empty(), "{cloud}: {uploads:?}");
    let log: Vec<&String> = objects
        .keys()
        .filter(|k| k.starts_with("lake/t/_delta_log/"))
        .collect();
    assert_eq!(
        log,
        [
            "lake/t/_delta_log/00000000000000000000.json",
            "lake/t/_delta_log/00000000000000000001.json"
        ],
        "{cloud}"
    );
    let data: Vec<&String> = objects.keys().filter(|k| k.ends_with(".parquet")).collect();
    assert_eq!(data.len(), 4, "{cloud}: one file a bucket: {data:?}");
    let mirror = dir.join("mirror");
    for key in objects.keys() {
        let local = mirror.join(key.strip_prefix("lake/t/").unwrap());
        std::fs::create_dir_all(local.parent().unwrap()).unwrap();
        emulator.get(key, &local);
    }
    let readers = readers::delta_script(
        "tests/readers/delta.py",
        &[
            "check".as_ref(),
            mirror.as_os_str(),
            dir.join("local.parquet").as_os_str(),
            "id".as_ref(),
        ],
        "the Delta readers' table differs from the export",
    );
    assert!(
        readers.contains(&format!("deltalake: {ROWS} rows")),
        "{readers}"
    );
    assert!(
        readers.contains(&format!("duckdb: {ROWS} rows")),
        "{readers}"
    );
    assert!(
        files_under(&dir.join("staging")).is_empty(),
        "staged files left"
    );
}

#[tokio::test]
async fn s3_a_delta_table_lands_in_one_commit_and_a_rerun_adds_nothing() {
    a_delta_table_lands_in_one_commit_and_a_rerun_adds_nothing("s3").await;
}

#[tokio::test]
async fn gcs_a_delta_table_lands_in_one_commit_and_a_rerun_adds_nothing() {
    a_delta_table_lands_in_one_commit_and_a_rerun_adds_nothing("gcs").await;
}

#[tokio::test]
async fn azure_a_delta_table_lands_in_one_commit_and_a_rerun_adds_nothing() {
    a_delta_table_lands_in_one_commit_and_a_rerun_adds_nothing("azure").await;
}
