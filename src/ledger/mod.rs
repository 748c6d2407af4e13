//! The run ledger: a SQLite database recording every run of a job (what it was given, how
//! each task went, every file it wrote with its SHA-256), the lock that keeps two runs of
//! one job from overlapping, and what makes a rerun idempotent: a run whose identity
//! already succeeded, with its files still as they were written, is skipped.
//!
//! The schema lives in `migrations/ledger/` and is applied when the ledger is opened. The
//! database is meant for local disk: SQLite's locking is what serializes two processes
//! taking one lock, and it is not reliable over NFS (docs/scheduling.md).

mod identity;
mod lock;
mod record;
pub mod show;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row, SqlSafeStr};

use crate::config::JobConfig;
use crate::error::{Error, Result};
use crate::report::{Outcome, RunReport};

pub use identity::{identity, run_identity};
pub use lock::Holder;
pub use record::{Ran, Recorded, run_recorded, with_marks};

/// How long a write waits for another process's transaction on the ledger.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// The ledger's schema, in order; applied on open. A released migration is never
/// edited: a change is a new one.
fn migrator() -> Migrator {
    let migration = |version, description: &'static str, sql: &'static str| {
        Migration::new(
            version,
            description.into(),
            MigrationType::Simple,
            sql.into_sql_str(),
            false,
        )
    };
    Migrator::with_migrations(vec![
        migration(
            1,
            "ledger",
            include_str!("../../migrations/ledger/0001_ledger.sql"),
        ),
        migration(
            2,
            "marks",
            include_str!("../../migrations/ledger/0002_marks.sql"),
        ),
        migration(
            3,
            "task bytes",
            include_str!("../../migrations/ledger/0003_task_bytes.sql"),
        ),
        migration(
            4,
            "output e_tag",
            include_str!("../../migrations/ledger/0004_output_e_tag.sql"),
        ),
    ])
}

/// The ledger's default place: `$XDG_STATE_HOME/tributary/ledger.db`, else
/// `~/.local/state/tributary/ledger.db`; `None` when neither variable is set.
pub fn default_path() -> Option<PathBuf> {
    let state = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|home| PathBuf::from(home).join(".local/state"))
        })?;
    Some(state.join("tributary").join("ledger.db"))
}

/// An open ledger.
#[derive(Debug, Clone)]
pub struct Ledger {
    pool: SqlitePool,
    path: PathBuf,
}

/// What a run should do, decided when it starts.
#[derive(Debug)]
pub enum Begin {
    /// Run: the lock is held, and the run is recorded as running.
    Run(Started),
    /// Nothing to do: run `previous` of the same identity succeeded and every file it
    /// wrote is still there, unchanged. This run is recorded as skipped.
    Done {
        run: i64,
        previous: i64,
        ended_at: String,
        files: Vec<PathBuf>,
    },
}

/// A run that holds its identity's lock.
#[derive(Debug)]
pub struct Started {
    pub run: i64,
    pub identity: String,
    /// What its lock is held on: the identity, or for an incremental job its name (two
    /// runs of it must not read one window, whatever their parameters).
    pub lock: String,
    /// The dead run whose lock this one took over.
    pub took_over: Option<Holder>,
}

/// One run, as `tributary runs` lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunRow {
    pub id: i64,
    pub job: String,
    pub identity: String,
    pub status: String,
    pub params: serde_json::Value,
    pub as_of: Option<String>,
    pub started_at: String,
    pub ended_at: Option<String>,
    pub exit_code: Option<i64>,
    pub error: Option<String>,
    pub rows: Option<i64>,
    pub bytes: Option<i64>,
    pub pid: i64,
    pub host: String,
    pub version: String,
    pub took_over: Option<i64>,
}

/// One run with its tasks, outputs and inputs, as `tributary runs show` prints it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunDetail {
    #[serde(flatten)]
    pub run: RunRow,
    pub query_path: String,
    pub shards: serde_json::Value,
    pub snapshots: serde_json::Value,
    pub tasks: Vec<TaskRow>,
    pub outputs: Vec<OutputRow>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct TaskRow {
    pub task: i64,
    pub shard: String,
    pub partition: Option<String>,
    pub rows: i64,
    /// The bytes of Arrow data it sent.
    pub bytes: i64,
    pub attempts: i64,
    pub seconds: f64,
    pub outcome: String,
    pub error: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct OutputRow {
    pub path: String,
    pub bytes: i64,
    pub sha256: String,
    /// A remote output object's entity tag.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub e_tag: Option<String>,
}

/// A file a run wrote, as it was committed: a local path or a remote output's URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRecord {
    pub path: PathBuf,
    pub bytes: u64,
    pub sha256: String,
    /// The entity tag of an object in object storage.
    pub e_tag: Option<String>,
}

impl FileRecord {
    /// Reads `path` and records its size and SHA-256.
    pub fn of(path: &Path) -> std::io::Result<FileRecord> {
        use sha2::{Digest, Sha256};
        use std::io::Read;
        let mut file = std::fs::File::open(path)?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut bytes = 0u64;
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            bytes += n as u64;
        }
        let sha256 = hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(FileRecord {
            path: path.to_owned(),
            bytes,
            sha256,
            e_tag: None,
        })
    }
}

impl Ledger {
    /// Opens the ledger at `path`, creating it and its directory if needed, and brings
    /// its schema up to date.
    pub async fn open(path: &Path) -> Result<Ledger> {
        let error = |message: String| Error::Ledger {
            path: path.to_owned(),
            message,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| error(format!("cannot create {}: {e}", dir.display())))?;
        }
        let options = SqliteConnectOptions::from_str("sqlite://")
            .map_err(|e| error(e.to_string()))?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        // SQLite has no advisory lock for the migrator to take: two processes opening a
        // new ledger at once would both create its tables, and the second one's switch
        // to WAL can meet the first one's schema change with SQLITE_BUSY, which the busy
        // timeout does not wait out. A lock on a file beside it makes them take turns at
        // opening and migrating.
        let guard = {
            let mut name = path.as_os_str().to_owned();
            name.push(".lock");
            PathBuf::from(name)
        };
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&guard)
            .map_err(|e| error(format!("cannot open {}: {e}", guard.display())))?;
        let lock = tokio::task::spawn_blocking(move || lock.lock().map(|()| lock))
            .await
            .expect("locking does not panic")
            .map_err(|e| error(format!("cannot lock {}: {e}", guard.display())))?;
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await
            .map_err(|e| error(format!("cannot open: {e}")))?;
        let migrated = migrator().run(&pool).await;
        drop(lock);
        migrated.map_err(|e| error(format!("cannot bring its schema up to date: {e}")))?;
        Ok(Ledger {
            pool,
            path: path.to_owned(),
        })
    }

    /// Where the ledger is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn error(&self, e: impl std::fmt::Display) -> Error {
        Error::Ledger {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }

    /// Starts a run of `config`: takes its identity's lock (taking over one whose holder
    /// died, or is older than `lock_timeout`), records the run, and unless `force`, finds
    /// whether an identical run already succeeded with its files intact.
    ///
    /// Fails with [`Error::Locked`] while a live run holds the lock.
    pub async fn begin(
        &self,
        config: &JobConfig,
        force: bool,
        lock_timeout: Duration,
    ) -> Result<Begin> {
        let identity = identity(config);
        let lock = match &config.incremental {
            Some(inc) => format!("incremental:{}:{}", config.name, inc.column),
            None => identity.clone(),
        };
        let mut conn = self.pool.acquire().await.map_err(|e| self.error(e))?;
        // IMMEDIATE takes SQLite's write lock at once, so that two processes cannot
        // both find the lock free.
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut *conn)
            .await
            .map_err(|e| self.error(e))?;
        let result = take_lock(&mut conn, config, &identity, &lock, lock_timeout).await;
        let end = match &result {
            Ok(Ok(_)) => "COMMIT",
            _ => "ROLLBACK",
        };
        sqlx::query(end)
            .execute(&mut *conn)
            .await
            .map_err(|e| self.error(e))?;
        let (run, took_over) = match result.map_err(|e| self.error(e))? {
            Ok(started) => started,
            Err(holder) => {
                return Err(Error::Locked {
                    job: config.name.clone(),
                    holder: holder.to_string(),
                });
            }
        };
        let started = Started {
            run,
            identity,
            lock,
            took_over,
        };
        if !force
            && let Some((previous, ended_at, files)) =
                self.intact(&started.identity, config).await?
        {
            self.end_skipped(&started, previous).await?;
            return Ok(Begin::Done {
                run: started.run,
                previous,
                ended_at,
                files,
            });
        }
        Ok(Begin::Run(started))
    }

    /// The last successful run of `identity`, if every file it wrote is still there with
    /// the size and SHA-256 it was committed with.
    async fn intact(
        &self,
        identity: &str,
        config: &JobConfig,
    ) -> Result<Option<(i64, String, Vec<PathBuf>)>> {
        let Some(row) = sqlx::query(
            "SELECT id, ended_at FROM runs WHERE identity = ? AND status = 'succeeded' \
             ORDER BY id DESC LIMIT 1",
        )
        .bind(identity)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| self.error(e))?
        else {
            return Ok(None);
        };
        let previous: i64 = row.get(0);
        let ended_at: String = row.get(1);
        let outputs = self.outputs(previous).await?;
        if outputs.is_empty() {
            return Ok(None);
        }
        let mut files = Vec::new();
        for output in outputs {
            let path = PathBuf::from(&output.path);
            let same = match &config.remote {
                Some(remote) => remote_intact(remote, &output).await,
                None => tokio::task::spawn_blocking({
                    let path = path.clone();
                    move || FileRecord::of(&path)
                })
                .await
                .expect("hashing does not panic")
                .is_ok_and(|f| f.bytes == output.bytes as u64 && f.sha256 == output.sha256),
            };
            if !same {
                tracing::info!(
                    "{} is missing or changed since run {previous} wrote it: running again",
                    path.display()
                );
                return Ok(None);
            }
            files.push(path);
        }
        Ok(Some((previous, ended_at, files)))
    }

    async fn end_skipped(&self, started: &Started, previous: i64) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(|e| self.error(e))?;
        sqlx::query(
            "UPDATE runs SET status = 'skipped', ended_at = ?, exit_code = 0, error = ? \
             WHERE id = ?",
        )
        .bind(timestamp(Utc::now()))
        .bind(format!(
            "run {previous} already succeeded and its files are intact"
        ))
        .bind(started.run)
        .execute(&mut *tx)
        .await
        .map_err(|e| self.error(e))?;
        release(&mut tx, started).await.map_err(|e| self.error(e))?;
        tx.commit().await.map_err(|e| self.error(e))
    }

    /// Records how a started run ended, with its tasks and, when it succeeded, every file
    /// it wrote (`files`: read back after the commit) and, for an incremental job
    /// (`incremental`: its name and column), each shard's next mark; releases its lock.
    /// One transaction: the marks move only with the committed output they belong to.
    pub async fn finish(
        &self,
        started: &Started,
        report: &RunReport,
        error: Option<&Error>,
        exit_code: i32,
        files: &[FileRecord],
        incremental: Option<(&str, &str)>,
    ) -> Result<()> {
        let status = if error.is_none() {
            "succeeded"
        } else {
            "failed"
        };
        let mut tx = self.pool.begin().await.map_err(|e| self.error(e))?;
        let result = async {
            sqlx::query(
                "UPDATE runs SET status = ?, ended_at = ?, exit_code = ?, error = ?, rows = ?, \
                 bytes = ?, snapshots = ? WHERE id = ?",
            )
            .bind(status)
            .bind(timestamp(Utc::now()))
            .bind(exit_code)
            .bind(error.map(|e| crate::error::chain(e)))
            .bind(report.output.as_ref().map(|o| o.rows as i64))
            .bind(report.output.as_ref().map(|o| o.bytes as i64))
            .bind(serde_json::to_string(&report.snapshots).expect("JSON"))
            .bind(started.run)
            .execute(&mut *tx)
            .await?;
            for task in &report.tasks {
                let (outcome, error) = match &task.outcome {
                    Outcome::Ok => ("ok", None),
                    Outcome::Failed(e) => ("failed", Some(e.as_str())),
                    Outcome::Cancelled => ("cancelled", None),
                };
                sqlx::query(
                    "INSERT INTO tasks (run_id, task, shard, partition, rows, bytes, attempts, \
                     seconds, outcome, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                )
                .bind(started.run)
                .bind(task.task as i64)
                .bind(&task.shard)
                .bind(&task.partition)
                .bind(task.rows as i64)
                .bind(task.bytes as i64)
                .bind(task.attempts as i64)
                .bind(task.duration.as_secs_f64())
                .bind(outcome)
                .bind(error)
                .execute(&mut *tx)
                .await?;
            }
            if let (None, Some((job, column))) = (error, incremental) {
                for (shard, mark) in &report.marks {
                    sqlx::query(
                        "INSERT INTO marks (job, column_name, shard, mark, run_id) \
                         VALUES (?, ?, ?, ?, ?) ON CONFLICT (job, column_name, shard) \
                         DO UPDATE SET mark = excluded.mark, run_id = excluded.run_id",
                    )
                    .bind(job)
                    .bind(column)
                    .bind(shard)
                    .bind(serde_json::to_string(mark).expect("JSON"))
                    .bind(started.run)
                    .execute(&mut *tx)
                    .await?;
                }
            }
            for file in files {
                sqlx::query(
                    "INSERT INTO outputs (run_id, path, bytes, sha256, e_tag) \
                     VALUES (?, ?, ?, ?, ?)",
                )
                .bind(started.run)
                .bind(file.path.display().to_string())
                .bind(file.bytes as i64)
                .bind(&file.sha256)
                .bind(&file.e_tag)
                .execute(&mut *tx)
                .await?;
            }
            release(&mut tx, started).await
        }
        .await;
        result.map_err(|e| self.error(e))?;
        tx.commit().await.map_err(|e| self.error(e))
    }

    /// Each shard's mark for job `job`'s column `column`, from its last successful run.
    pub async fn marks(
        &self,
        job: &str,
        column: &str,
    ) -> Result<std::collections::BTreeMap<String, crate::plan::window::Mark>> {
        let rows = sqlx::query("SELECT shard, mark FROM marks WHERE job = ? AND column_name = ?")
            .bind(job)
            .bind(column)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.error(e))?;
        rows.iter()
            .map(|row| {
                let shard: String = row.get(0);
                let text: String = row.get(1);
                let mark = serde_json::from_str(&text)
                    .map_err(|e| self.error(format!("shard `{shard}`'s mark {text}: {e}")))?;
                Ok((shard, mark))
            })
            .collect()
    }

    /// The last `last` runs, newest first, of `job` or of every job.
    pub async fn list(&self, job: Option<&str>, last: usize) -> Result<Vec<RunRow>> {
        let rows = sqlx::query(
            "SELECT id, job, identity, status, params, as_of, started_at, ended_at, exit_code, \
             error, rows, bytes, pid, host, version, took_over FROM runs \
             WHERE ?1 IS NULL OR job = ?1 ORDER BY id DESC LIMIT ?2",
        )
        .bind(job)
        .bind(last as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.error(e))?;
        let mut runs = Vec::new();
        for row in &rows {
            runs.push(self.with_liveness(run_row(row)).await?);
        }
        Ok(runs)
    }

    /// `run` as it stands: a run recorded as running whose process is gone is shown as
    /// abandoned (the next run of its job records it so when it takes the lock over).
    async fn with_liveness(&self, mut run: RunRow) -> Result<RunRow> {
        if run.status != "running" {
            return Ok(run);
        }
        let holder =
            sqlx::query("SELECT pid, pid_start, host, started_at FROM locks WHERE run_id = ?")
                .bind(run.id)
                .fetch_optional(&self.pool)
                .await
                .map_err(|e| self.error(e))?
                .map(|row| Holder {
                    run: run.id,
                    pid: row.get::<i64, _>(0) as u32,
                    pid_start: row.get(1),
                    host: row.get(2),
                    started_at: row.get(3),
                });
        if !holder.is_some_and(|h| h.alive(crate::config::DEFAULT_LOCK_TIMEOUT)) {
            run.status = "abandoned".into();
        }
        Ok(run)
    }

    /// One run with its tasks and outputs.
    pub async fn show(&self, id: i64) -> Result<Option<RunDetail>> {
        let Some(row) = sqlx::query(
            "SELECT id, job, identity, status, params, as_of, started_at, ended_at, exit_code, \
             error, rows, bytes, pid, host, version, took_over, query_path, shards, snapshots \
             FROM runs WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| self.error(e))?
        else {
            return Ok(None);
        };
        let tasks = sqlx::query(
            "SELECT task, shard, partition, rows, attempts, seconds, outcome, error, bytes \
             FROM tasks WHERE run_id = ? ORDER BY task",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.error(e))?
        .iter()
        .map(|r| TaskRow {
            task: r.get(0),
            shard: r.get(1),
            partition: r.get(2),
            rows: r.get(3),
            attempts: r.get(4),
            seconds: r.get(5),
            outcome: r.get(6),
            error: r.get(7),
            bytes: r.get(8),
        })
        .collect();
        Ok(Some(RunDetail {
            run: self.with_liveness(run_row(&row)).await?,
            query_path: row.get(16),
            shards: json(row.get(17)),
            snapshots: json(row.get(18)),
            tasks,
            outputs: self.outputs(id).await?,
        }))
    }

    async fn outputs(&self, run: i64) -> Result<Vec<OutputRow>> {
        Ok(sqlx::query(
            "SELECT path, bytes, sha256, e_tag FROM outputs WHERE run_id = ? ORDER BY path",
        )
        .bind(run)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.error(e))?
        .iter()
        .map(|r| OutputRow {
            path: r.get(0),
            bytes: r.get(1),
            sha256: r.get(2),
            e_tag: r.get(3),
        })
        .collect())
    }
}

/// Whether the object a remote output wrote is still there as it was committed: the
/// same size and entity tag (an object written again gets a new one). Nothing is read
/// back.
async fn remote_intact(remote: &crate::config::ObjectOutput, output: &OutputRow) -> bool {
    use object_store::ObjectStoreExt;
    let (Some(e_tag), Ok(url)) = (&output.e_tag, url::Url::parse(&output.path)) else {
        return false;
    };
    let Ok(key) = object_store::path::Path::from_url_path(url.path()) else {
        return false;
    };
    let Ok(store) = crate::sink::object::store(remote) else {
        return false;
    };
    store
        .head(&key)
        .await
        .is_ok_and(|meta| meta.size == output.bytes as u64 && meta.e_tag.as_ref() == Some(e_tag))
}

/// Inside the ledger's write transaction on `conn`: takes `lock` for a new run of `config`
/// (taking it over from a holder that is gone) and records the run. `Err(holder)` when a
/// live run holds it.
async fn take_lock(
    conn: &mut sqlx::SqliteConnection,
    config: &JobConfig,
    identity: &str,
    lock: &str,
    lock_timeout: Duration,
) -> std::result::Result<std::result::Result<(i64, Option<Holder>), Holder>, sqlx::Error> {
    let me = Holder::me();
    let now = timestamp(Utc::now());
    let held = sqlx::query(
        "SELECT run_id, pid, pid_start, host, started_at FROM locks WHERE identity = ?",
    )
    .bind(lock)
    .fetch_optional(&mut *conn)
    .await?
    .map(|row| Holder {
        run: row.get(0),
        pid: row.get::<i64, _>(1) as u32,
        pid_start: row.get(2),
        host: row.get(3),
        started_at: row.get(4),
    });
    let mut took_over = None;
    if let Some(holder) = held {
        if holder.alive(lock_timeout) {
            return Ok(Err(holder));
        }
        sqlx::query(
            "UPDATE runs SET status = 'abandoned', ended_at = ?, \
                 error = 'the process died before the run ended' \
                 WHERE id = ? AND status = 'running'",
        )
        .bind(&now)
        .bind(holder.run)
        .execute(&mut *conn)
        .await?;
        sqlx::query("DELETE FROM locks WHERE identity = ?")
            .bind(lock)
            .execute(&mut *conn)
            .await?;
        took_over = Some(holder);
    }
    let params = serde_json::to_string(&params_json(config)).expect("JSON");
    let shards = serde_json::to_string(&identity::shards_json(config)).expect("JSON");
    let run: i64 = sqlx::query(
        "INSERT INTO runs (job, identity, params, as_of, started_at, status, pid, host, \
             version, query_path, shards, took_over) \
             VALUES (?, ?, ?, ?, ?, 'running', ?, ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(&config.name)
    .bind(identity)
    .bind(params)
    .bind(crate::config::dates::rfc3339(&config.as_of))
    .bind(&now)
    .bind(me.pid as i64)
    .bind(&me.host)
    .bind(env!("CARGO_PKG_VERSION"))
    .bind(config.query_path.display().to_string())
    .bind(shards)
    .bind(took_over.as_ref().map(|h: &Holder| h.run))
    .fetch_one(&mut *conn)
    .await?
    .get(0);
    sqlx::query(
        "INSERT INTO locks (identity, run_id, pid, pid_start, host, started_at) \
             VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(lock)
    .bind(run)
    .bind(me.pid as i64)
    .bind(&me.pid_start)
    .bind(&me.host)
    .bind(&now)
    .execute(&mut *conn)
    .await?;
    Ok(Ok((run, took_over)))
}

/// Deletes `started`'s lock, if it still holds it (a run taken for dead and taken over
/// no longer does).
async fn release(
    conn: &mut sqlx::SqliteConnection,
    started: &Started,
) -> std::result::Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM locks WHERE identity = ? AND run_id = ?")
        .bind(&started.lock)
        .bind(started.run)
        .execute(conn)
        .await
        .map(|_| ())
}

fn run_row(row: &SqliteRow) -> RunRow {
    RunRow {
        id: row.get(0),
        job: row.get(1),
        identity: row.get(2),
        status: row.get(3),
        params: json(row.get(4)),
        as_of: row.get(5),
        started_at: row.get(6),
        ended_at: row.get(7),
        exit_code: row.get(8),
        error: row.get(9),
        rows: row.get(10),
        bytes: row.get(11),
        pid: row.get(12),
        host: row.get(13),
        version: row.get(14),
        took_over: row.get(15),
    }
}

fn json(text: Option<String>) -> serde_json::Value {
    text.and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(serde_json::Value::Null)
}

/// The parameters as resolved, as a JSON object.
fn params_json(config: &JobConfig) -> serde_json::Value {
    config
        .params
        .iter()
        .map(|(name, value)| (name.clone(), serde_json::Value::String(value.to_string())))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// An instant as the ledger keeps it: RFC 3339 in UTC, to the millisecond.
fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}
