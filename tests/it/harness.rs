//! A small harness: PostgreSQL databases and SQLite files as shards, job files, runs
//! (through the library or the binary), and Parquet read back.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use arrow::array::RecordBatch;
use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData, ParquetMetaDataReader};
use tokio_postgres::{Client, NoTls};
use tributary::{Error, JobConfig, RunArgs, RunReport};

/// The server the tests use; override with TRIBUTARY_TEST_PG.
pub fn pg_base() -> String {
    std::env::var("TRIBUTARY_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// A connection to `db` on the test server. Fails loudly, saying how to get a server.
pub async fn connect(db: &str) -> Client {
    let url = format!("{}/{db}", pg_base());
    let (client, conn) = match tokio_postgres::connect(&url, NoTls).await {
        Ok(c) => c,
        Err(e) => panic!(
            "PostgreSQL is not reachable at {url}: {e}\n\
             These tests need a PostgreSQL server with trust auth for user postgres: start it with\n\
             `pg_ctlcluster --skip-systemctl-redirect 15 main start`, or point TRIBUTARY_TEST_PG at one."
        ),
    };
    tokio::spawn(conn);
    client
}

/// The full name of a test database: `TRIBUTARY_TEST_DB_PREFIX` (default `trib`), then
/// the test's own name, so that two checkouts can run their suites against one server.
pub fn db(name: &str) -> String {
    let prefix = std::env::var("TRIBUTARY_TEST_DB_PREFIX").unwrap_or_else(|_| "trib".into());
    format!("{prefix}_{name}")
}

/// (Re)creates a database for one test's shard and runs `setup` in it; returns its URL.
pub async fn database(name: &str, setup: &str) -> String {
    let name = &db(name);
    let admin = connect("postgres").await;
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await
        .unwrap_or_else(|e| panic!("dropping database {name}: {e:?}"));
    // template0 takes no connections, so tests may create databases concurrently.
    admin
        .batch_execute(&format!("CREATE DATABASE {name} TEMPLATE template0"))
        .await
        .unwrap_or_else(|e| panic!("creating database {name}: {e:?}"));
    let client = connect(name).await;
    client
        .batch_execute(setup)
        .await
        .unwrap_or_else(|e| panic!("setting up {name}: {e:?}"));
    format!("{}/{name}", pg_base())
}

/// `setup`, then its `orders` table behind a view whose every statement waits `seconds`
/// before its first row (as the table `delay` says: a test may change it meanwhile).
pub fn slowed_orders(setup: &str, seconds: u32) -> String {
    format!(
        "{setup}\nALTER TABLE orders RENAME TO base;\n\
         CREATE TABLE delay (seconds int);\nINSERT INTO delay VALUES ({seconds});\n\
         CREATE VIEW orders AS SELECT b.* FROM base b \
         CROSS JOIN (SELECT pg_sleep(seconds) FROM delay) d;"
    )
}

/// Creates the SQLite file `name` in `dir` with the `sqlite3` command-line tool, runs
/// `sql` in it and returns its URL.
pub fn sqlite_db(dir: &Path, name: &str, sql: &str) -> String {
    let path = dir.join(name);
    let status = std::process::Command::new("sqlite3")
        .arg(&path)
        .arg(sql)
        .status()
        .expect(
            "the sqlite3 command-line tool is needed to build fixtures (apt-get install sqlite3)",
        );
    assert!(status.success(), "sqlite3 failed on {}", path.display());
    format!("sqlite://{}", path.display())
}

/// A job's files in a temporary directory.
pub struct Job {
    pub dir: tempfile::TempDir,
    pub args: RunArgs,
}

impl Job {
    /// A job running `sql` over `shards` (name, URL), writing `out.parquet`.
    pub fn new(sql: &str, shards: &[(&str, &str)]) -> Job {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("query.sql"), sql).unwrap();
        let mut toml = String::from("[shards]\n");
        for (name, url) in shards {
            toml.push_str(&format!("{name} = \"{url}\"\n"));
        }
        std::fs::write(dir.path().join("shards.toml"), toml).unwrap();
        let args = RunArgs {
            query: Some(dir.path().join("query.sql")),
            shards: Some(dir.path().join("shards.toml")),
            output: Some(dir.path().join("out.parquet")),
            ..Default::default()
        };
        Job { dir, args }
    }

    pub fn param(mut self, name: &str, value: &str) -> Job {
        self.args.params.push((name.into(), value.into()));
        self
    }

    pub fn output(&self) -> PathBuf {
        self.args.output.clone().unwrap()
    }

    /// Resolves and runs the job.
    pub async fn run(&self) -> (RunReport, Result<(), Error>) {
        let config = JobConfig::resolve(self.args.clone()).expect("the job resolves");
        tributary::run(&config, false, std::future::pending()).await
    }

    /// Runs the job with settings the command line does not reach (e.g. encoder
    /// threads), which must succeed; returns the batches read back.
    pub async fn run_ok_with(&self, adjust: impl FnOnce(&mut JobConfig)) -> Vec<RecordBatch> {
        let mut config = JobConfig::resolve(self.args.clone()).expect("the job resolves");
        adjust(&mut config);
        let (report, result) = tributary::run(&config, false, std::future::pending()).await;
        if let Err(e) = result {
            panic!("the run failed: {e}\n{report}");
        }
        read_parquet(&self.output())
    }

    /// Runs the job, which must succeed; returns the batches read back.
    pub async fn run_ok(&self) -> Vec<RecordBatch> {
        let (report, result) = self.run().await;
        if let Err(e) = result {
            panic!("the run failed: {e}\n{report}");
        }
        read_parquet(&self.output())
    }

    /// Runs the job, which must fail and leave no output; returns the error.
    pub async fn run_err(&self) -> Error {
        let (_, result) = self.run().await;
        let err = result.expect_err("the run should fail");
        assert!(
            !self.output().exists(),
            "a failed run left {}",
            self.output().display()
        );
        assert_no_temporaries(self.dir.path());
        err
    }
}

/// A file the test reads, opened.
fn open(path: &Path) -> File {
    File::open(path).unwrap_or_else(|e| panic!("opening {}: {e}", path.display()))
}

/// Every record batch of a Parquet file.
pub fn read_parquet(path: &Path) -> Vec<RecordBatch> {
    ParquetRecordBatchReaderBuilder::try_new(open(path))
        .unwrap()
        .build()
        .unwrap()
        .map(|b| b.unwrap())
        .collect()
}

/// Every row of a Parquet file, in one batch.
pub fn read_batch(path: &Path) -> RecordBatch {
    concat(&read_parquet(path))
}

/// A Parquet file's footer: its schema, row groups (with their column chunks) and
/// key-value metadata.
pub fn parquet_footer(path: &Path) -> ParquetMetaData {
    ParquetMetaDataReader::new()
        .parse_and_finish(&open(path))
        .unwrap_or_else(|e| panic!("reading the footer of {}: {e}", path.display()))
}

/// A reader of a Parquet file that loads the page index (column and offset indexes),
/// which the file must have.
pub fn page_indexed_reader(path: &Path) -> ParquetRecordBatchReaderBuilder<File> {
    let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Required);
    ParquetRecordBatchReaderBuilder::try_new_with_options(open(path), options)
        .unwrap_or_else(|e| panic!("reading the page index of {}: {e}", path.display()))
}

/// The rows of each row group of a Parquet file.
pub fn row_group_rows(path: &Path) -> Vec<i64> {
    parquet_footer(path)
        .row_groups()
        .iter()
        .map(|g| g.num_rows())
        .collect()
}

/// The Parquet file's key-value metadata.
pub fn parquet_metadata(path: &Path) -> std::collections::HashMap<String, String> {
    parquet_footer(path)
        .file_metadata()
        .key_value_metadata()
        .into_iter()
        .flatten()
        .filter_map(|kv| kv.value.clone().map(|v| (kv.key.clone(), v)))
        .collect()
}

pub fn concat(batches: &[RecordBatch]) -> RecordBatch {
    let schema = batches.first().expect("at least one batch").schema();
    arrow::compute::concat_batches(&schema, batches).unwrap()
}

pub fn assert_no_temporaries(dir: &Path) {
    let left: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tributary-"))
        .collect();
    assert!(left.is_empty(), "temporary files left behind: {left:?}");
}

/// Int64 values of a column, by name.
pub fn i64_column(batch: &RecordBatch, name: &str) -> Vec<Option<i64>> {
    let col = batch
        .column_by_name(name)
        .unwrap_or_else(|| panic!("no column {name}"));
    let col = arrow::compute::cast(col, &arrow::datatypes::DataType::Int64).unwrap();
    let col = col
        .as_any()
        .downcast_ref::<arrow::array::Int64Array>()
        .unwrap();
    col.iter().collect()
}

/// Utf8 values of a column, by name.
pub fn str_column(batch: &RecordBatch, name: &str) -> Vec<Option<String>> {
    let col = batch
        .column_by_name(name)
        .unwrap_or_else(|| panic!("no column {name}"));
    let col = col
        .as_any()
        .downcast_ref::<arrow::array::StringArray>()
        .unwrap();
    col.iter().map(|v| v.map(String::from)).collect()
}

/// Rows of our own on the server that are still running a statement (not idle).
pub async fn active_queries(like: &str) -> Vec<String> {
    let admin = connect("postgres").await;
    admin
        .query(
            "SELECT query FROM pg_stat_activity WHERE state <> 'idle' AND pid <> pg_backend_pid() AND query LIKE $1",
            &[&format!("%{like}%")],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Waits (20 s at most) until a statement whose text holds `marker` runs on the server
/// and `also()` holds; `what` says what never happened otherwise.
pub async fn wait_for_statement(marker: &str, also: impl Fn() -> bool, what: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !also() || active_queries(marker).await.is_empty() {
        assert!(std::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Counts, every `every` for `samples` samples, the connections of database `db` whose
/// `application_name` is tributary's and whose query is LIKE `query`: the most seen at once.
pub fn most_connections(
    db: String,
    query: &'static str,
    samples: usize,
    every: std::time::Duration,
) -> tokio::task::JoinHandle<i64> {
    tokio::spawn(async move {
        let admin = connect("postgres").await;
        let mut most = 0i64;
        for _ in 0..samples {
            let n: i64 = admin
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 \
                     AND application_name = 'tributary' AND query LIKE $2",
                    &[&db, &query],
                )
                .await
                .unwrap()
                .get(0);
            most = most.max(n);
            tokio::time::sleep(every).await;
        }
        most
    })
}

/// Waits up to `limit` until no statement containing `marker` runs on the server.
pub async fn assert_gone(marker: &str, limit: std::time::Duration) {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let left = active_queries(marker).await;
        if left.is_empty() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still running on the server: {left:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// The `tributary` binary built for these tests. Its default run ledger is under the
/// build's temporary directory, not the user's home.
pub fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tributary"));
    cmd.env(
        "XDG_STATE_HOME",
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("state"),
    );
    cmd
}

/// The binary run with `args` in the tests' own directory, to its end.
pub fn tributary(args: &[&str]) -> Output {
    bin().args(args).output().expect("the binary runs")
}

/// The binary run with `args` in `dir`, to its end.
pub fn tributary_in(dir: &Path, args: &[&str]) -> Output {
    tributary_with(dir, args, |_| {})
}

/// [`tributary_in`], with the command set up by `adjust` first (its environment).
pub fn tributary_with(dir: &Path, args: &[&str], adjust: impl FnOnce(&mut Command)) -> Output {
    let mut cmd = bin();
    cmd.current_dir(dir).args(args);
    adjust(&mut cmd);
    cmd.output().expect("the binary runs")
}

/// What a run printed on stdout.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What a run printed on stderr.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts that a run succeeded (exit code 0), showing what it printed if not; returns
/// its stdout.
pub fn succeeded(out: &Output) -> String {
    assert!(
        out.status.success(),
        "the run failed ({}):\n{}\n{}",
        out.status,
        stderr(out),
        stdout(out)
    );
    stdout(out)
}

/// Creates the SQLite file `path` with the statements `sql` (run by the sqlite3 tool).
pub fn sqlite_file(path: &Path, sql: &str) {
    sqlite3(path, sql);
}

/// A SQLite shard: the file `dir/name` made with `sql`; returns its URL.
pub fn sqlite_shard(dir: &Path, name: &str, sql: &str) -> String {
    let path = dir.join(name);
    sqlite_file(&path, sql);
    format!("sqlite://{}", path.display())
}

/// What the sqlite3 tool prints for `sql` run on the file `path`: SQLite's own answer.
pub fn sqlite_query(path: &Path, sql: &str) -> String {
    String::from_utf8(sqlite3(path, sql).stdout).expect("sqlite3 prints UTF-8")
}

/// The sqlite3 tool run on `path` with `sql`, which must succeed.
fn sqlite3(path: &Path, sql: &str) -> Output {
    let out = Command::new("sqlite3").arg(path).arg(sql).output().expect(
        "the sqlite3 command-line tool is needed to build fixtures (apt-get install sqlite3)",
    );
    assert!(
        out.status.success(),
        "sqlite3 {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The binary's arguments for `command` (`run`, `plan`) on the job files
/// [`write_query_and_shards`] writes (`q.sql`, `--shards s.toml`), then `extra`.
pub fn job_args<'a>(command: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![command, "q.sql", "--shards", "s.toml"];
    args.extend_from_slice(extra);
    args
}

/// Writes `q.sql` and a shards file `s.toml` with one shard `a` at `url` into `dir`.
pub fn write_job(dir: &Path, sql: &str, url: &str) {
    write_query_and_shards(dir, sql, &format!("[shards]\na = \"{url}\"\n"));
}

/// Writes `q.sql` holding `sql` and the shards file `s.toml` holding `shards` into `dir`.
pub fn write_query_and_shards(dir: &Path, sql: &str, shards: &str) {
    std::fs::write(dir.join("q.sql"), sql).unwrap();
    std::fs::write(dir.join("s.toml"), shards).unwrap();
}

/// Asserts that a run with `--allow-partial` ended partial: `failed` of `total` tasks
/// failed, the others wrote their rows.
pub fn assert_partial(result: &Result<(), Error>, report: &RunReport, failed: usize, total: usize) {
    assert!(
        matches!(result, Err(Error::Partial { failed: f, total: t, .. }) if *f == failed && *t == total),
        "expected {failed} of {total} tasks failed: {result:?}\n{report}"
    );
}

/// Asserts that task `index` of `report` failed by passing its deadline.
pub fn assert_timed_out(report: &RunReport, index: usize) {
    assert!(
        matches!(&report.tasks[index].outcome, tributary::report::Outcome::Failed(m) if m.contains("timed out")),
        "task {index} did not time out: {report}"
    );
}

/// Sends `signal` (`"INT"`, `"TERM"`) to `child`, waits for it and checks that it exited
/// with `code`; returns its output.
pub fn signal_and_wait(child: std::process::Child, signal: &str, code: i32) -> Output {
    assert!(
        std::process::Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(code), "{}", stderr(&out));
    out
}
