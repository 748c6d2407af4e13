//! Sources: one module per database kind. Each opens a pool for a shard (lazily: no
//! connection until a task needs one) and runs a task's query, streaming record batches to
//! the merger. A task that does not finish (error, deadline, abort) cancels its statement
//! on the server and never hands its connection back to the pool.

pub mod coalesce;
pub mod mysql;
pub mod pgcolumns;
pub mod postgres;
mod probe;
pub mod sqlite;
pub mod tls;

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::datatypes::SchemaRef;

use crate::config::{RunOptions, ShardConfig, SourceConfig};
use crate::error::TaskError;
use crate::merge::BatchSender;
use crate::plan::TaskQuery;
use crate::types::{MysqlKind, PgKind};

/// A result column's type as its source describes it.
#[derive(Debug, Clone)]
pub enum ColumnKind {
    Postgres(PgKind),
    Mysql(MysqlKind),
}

pub use postgres::SnapshotSession;
pub use probe::Probe;

/// What a running task needs besides its query.
pub struct TaskContext {
    pub sender: BatchSender,
    /// Rows per batch sent to the merger.
    pub batch_size: usize,
    /// The task's deadline, if any: the server-side `statement_timeout` backs it up.
    pub deadline: Option<Duration>,
    /// What the server-side `statement_timeout` allows beyond the deadline, besides its
    /// margin: for a task that starts while other shards are still being described, the
    /// longest their describes may take, as its deadline counts from the last of them
    /// (`dispatch::deadline`).
    pub server_slack: Duration,
    /// How long the server may send nothing before the query counts as stalled.
    pub stall: Option<Duration>,
    /// Called with the number of rows in each batch sent.
    pub on_rows: Box<dyn Fn(u64) + Send + Sync>,
    pub cancels: Cancels,
    /// Set once the task's transaction has imported its shard's exported snapshot: from
    /// then on the session that exported it may end without harm to this task (the
    /// scheduler fails a shard for a lost snapshot only while a task still has to import
    /// it).
    pub snapshot_imported: Arc<AtomicBool>,
}

/// What `tributary check` learns from a shard, without reading a row of the result.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ShardFacts {
    /// The server and its version.
    pub server: String,
    /// For PostgreSQL: whether the connection is encrypted, and how.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsFacts>,
    /// The role the shard is read as.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// What that role could change, each in words (empty: nothing found).
    pub can_write: Vec<String>,
    /// The query's result columns, when a query was given.
    pub columns: Vec<ColumnFacts>,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct TlsFacts {
    pub encrypted: bool,
    pub protocol: Option<String>,
    pub cipher: Option<String>,
}

/// A result column: its type on the shard, and in the output.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ColumnFacts {
    pub name: String,
    pub source_type: String,
    pub arrow_type: String,
}

/// Decoded bytes after which a batch is sent even if it has fewer rows than `batch_size`
/// (wide rows): keeps the per-task buffer small.
pub const BATCH_BYTES: usize = 8 << 20;

/// Server-side cancellations in flight. They are started from `Drop` (a task can be
/// dropped at any await point), and the run waits for them before it returns, so that no
/// statement of ours is left running when the process exits.
#[derive(Clone, Default)]
pub struct Cancels(Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>);

impl Cancels {
    pub fn spawn(&self, fut: impl std::future::Future<Output = ()> + Send + 'static) {
        let handle = tokio::spawn(fut);
        self.0.lock().expect("not poisoned").push(handle);
    }

    /// Waits for every cancellation started so far, at most `limit`.
    pub async fn wait(&self, limit: Duration) {
        let handles: Vec<_> = std::mem::take(&mut *self.0.lock().expect("not poisoned"));
        let all = futures_util::future::join_all(handles);
        let _ = tokio::time::timeout(limit, all).await;
    }
}

/// A shard's connection pool.
pub enum ShardPool {
    Postgres(Box<postgres::PgShard>),
    Sqlite(sqlite::SqliteShard),
    Mysql(Box<mysql::MysqlShard>),
}

impl ShardPool {
    /// Builds the pool of `shard`, `size` connections at most; opens no connection.
    pub fn open(
        shard: &ShardConfig,
        size: usize,
        options: &RunOptions,
    ) -> Result<ShardPool, TaskError> {
        tls::install_default_provider();
        match &shard.source {
            SourceConfig::Postgres(pg) => postgres::PgShard::new(
                &shard.name,
                pg,
                size,
                options.connect_timeout,
                options.types.clone(),
            )
            .map(|p| ShardPool::Postgres(Box::new(p))),
            SourceConfig::Sqlite(s) => Ok(ShardPool::Sqlite(sqlite::SqliteShard::new(
                &shard.name,
                s,
                size,
                options.connect_timeout,
            ))),
            SourceConfig::Mysql(m) => Ok(ShardPool::Mysql(Box::new(mysql::MysqlShard::new(
                &shard.name,
                m,
                size,
                options.connect_timeout,
                options.types.clone(),
                options.consistent && options.mysql_lock,
            )))),
        }
    }

    /// Closes the pool's idle connections: called when the shard has no task left, so
    /// that finished shards hold no server connections while others still run.
    pub fn close(&self) {
        match self {
            ShardPool::Postgres(p) => p.close(),
            ShardPool::Sqlite(s) => s.close(),
            ShardPool::Mysql(m) => m.close(),
        }
    }

    /// Connections this pool may hold.
    pub fn size(&self) -> usize {
        match self {
            ShardPool::Postgres(p) => p.size(),
            ShardPool::Sqlite(s) => s.size(),
            ShardPool::Mysql(m) => m.size(),
        }
    }

    /// The task's result columns, when the source can tell them before running the query
    /// (PostgreSQL describes a statement; SQLite types some columns by their values).
    pub async fn describe(&self, query: &TaskQuery) -> Option<Result<SchemaRef, TaskError>> {
        match (self, query) {
            (ShardPool::Postgres(p), TaskQuery::Postgres { sql }) => {
                Some(p.describe(sql).await.map(|c| c.schema()))
            }
            (ShardPool::Mysql(m), TaskQuery::Mysql { sql, .. }) => Some(m.describe(sql).await),
            _ => None,
        }
    }

    /// Connects and learns what `tributary check` reports: the server, the connection's
    /// encryption, the role and what it could write, and `query`'s columns (described,
    /// not run), all inside a READ ONLY transaction.
    pub async fn facts(&self, query: Option<&TaskQuery>) -> Result<ShardFacts, TaskError> {
        match (self, query) {
            (ShardPool::Postgres(p), None) => p.facts(None).await,
            (ShardPool::Postgres(p), Some(TaskQuery::Postgres { sql })) => p.facts(Some(sql)).await,
            (ShardPool::Sqlite(s), None) => s.facts(None).await,
            (ShardPool::Sqlite(s), Some(TaskQuery::Sqlite { sql, .. })) => s.facts(Some(sql)).await,
            (ShardPool::Mysql(m), None) => m.facts(None).await,
            (ShardPool::Mysql(m), Some(TaskQuery::Mysql { sql, .. })) => m.facts(Some(sql)).await,
            _ => unreachable!("the planner renders each query for its shard's kind"),
        }
    }

    /// [`ShardPool::describe`], and the server's row estimate of each of `estimate`,
    /// where the source has one (see `PgShard::describe_estimating`).
    pub async fn describe_estimating(
        &self,
        query: &TaskQuery,
        estimate: &[&TaskQuery],
    ) -> (Option<Result<SchemaRef, TaskError>>, Vec<Option<f64>>) {
        match (self, query) {
            (ShardPool::Postgres(p), TaskQuery::Postgres { sql }) => {
                let sqls: Option<Vec<&str>> = estimate
                    .iter()
                    .map(|q| match q {
                        TaskQuery::Postgres { sql } => Some(sql.as_str()),
                        TaskQuery::Sqlite { .. } | TaskQuery::Mysql { .. } => None,
                    })
                    .collect();
                let sqls = sqls.expect("the planner renders each task for its shard's kind");
                let (columns, estimates) = p.describe_estimating(sql, &sqls).await;
                (Some(columns.map(|c| c.schema())), estimates)
            }
            (ShardPool::Mysql(m), TaskQuery::Mysql { sql, .. }) => {
                (Some(m.describe(sql).await), vec![None; estimate.len()])
            }
            _ => (None, vec![None; estimate.len()]),
        }
    }

    /// The source types of the query's columns, where the source can tell them without
    /// running it (PostgreSQL and MySQL; SQLite types values, not columns).
    pub async fn column_kinds(
        &self,
        query: &TaskQuery,
    ) -> Option<Result<Vec<(String, ColumnKind)>, TaskError>> {
        match (self, query) {
            (ShardPool::Postgres(p), TaskQuery::Postgres { sql }) => {
                Some(p.describe(sql).await.map(|c| {
                    c.kinds
                        .into_iter()
                        .map(|(name, kind)| (name, ColumnKind::Postgres(kind)))
                        .collect()
                }))
            }
            (ShardPool::Mysql(m), TaskQuery::Mysql { sql, .. }) => {
                Some(m.column_kinds(sql).await.map(|c| {
                    c.into_iter()
                        .map(|(name, kind)| (name, ColumnKind::Mysql(kind)))
                        .collect()
                }))
            }
            _ => None,
        }
    }

    /// Runs one task; returns the rows it sent.
    pub async fn run(
        &self,
        query: &TaskQuery,
        snapshot: Option<&str>,
        ctx: &TaskContext,
    ) -> Result<u64, TaskError> {
        match (self, query) {
            (ShardPool::Postgres(p), TaskQuery::Postgres { sql }) => {
                p.run(sql, snapshot, ctx).await
            }
            (ShardPool::Sqlite(s), TaskQuery::Sqlite { sql, binds }) => {
                s.run(sql, binds, ctx).await
            }
            (ShardPool::Mysql(m), TaskQuery::Mysql { sql, binds }) => m.run(sql, binds, ctx).await,
            _ => unreachable!("the planner renders each task for its shard's kind"),
        }
    }
}

impl ShardPool {
    /// Exports the snapshot the shard's partitions will all read, on PostgreSQL (`None`
    /// on SQLite, which has none to share, and on MySQL, which cannot share one: each
    /// partition reads its own consistent snapshot). The session holding it is to be kept until
    /// the run ends; when its connection ends, the shard's name is sent on `lost`.
    ///
    /// With `import` (an id another process holds, and the file naming it), a PostgreSQL
    /// shard reads that snapshot instead (see `PgShard::open_snapshot`).
    pub async fn export_snapshot(
        &self,
        lost: &tokio::sync::mpsc::UnboundedSender<String>,
        import: Option<(&str, &str)>,
    ) -> Result<Option<SnapshotSession>, TaskError> {
        match self {
            ShardPool::Postgres(pg) => Ok(Some(pg.open_snapshot(lost.clone(), import).await?)),
            ShardPool::Sqlite(_) => Ok(None),
            ShardPool::Mysql(m) if m.locks() => Ok(None),
            ShardPool::Mysql(m) => {
                tracing::warn!(
                    "shard {}: MySQL shares no snapshot between connections; its probe and each of its partitions read their own consistent snapshot",
                    m.name()
                );
                Ok(None)
            }
        }
    }

    /// `snapshot = "lock"` on a MySQL shard: starts its `n` partitions' transactions
    /// together under a brief global read lock (see `MysqlShard::hold_snapshots`);
    /// nothing elsewhere.
    pub async fn hold_snapshots(&self, n: usize) -> Result<(), TaskError> {
        match self {
            ShardPool::Mysql(m) => m.hold_snapshots(n).await,
            _ => Ok(()),
        }
    }

    /// Answers planning's questions about this shard, on `session`'s snapshot when given.
    pub fn probe<'a>(&'a self, session: Option<&'a SnapshotSession>) -> Probe<'a> {
        Probe {
            pool: self,
            session,
        }
    }

    /// The server's row estimate for a task's query, where the source has one.
    pub async fn estimate(&self, query: &TaskQuery) -> Option<f64> {
        match (self, query) {
            (ShardPool::Postgres(pg), TaskQuery::Postgres { sql }) => pg.estimate(sql).await.ok(),
            _ => None,
        }
    }
}

/// A result that names a column twice.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the result has two columns named `{name}`; give one an alias")]
pub struct DuplicateColumn {
    pub name: String,
}

/// Refuses results that name a column twice: Parquet readers cannot tell them apart.
pub fn check_unique_names<'a>(
    names: impl IntoIterator<Item = &'a str>,
) -> Result<(), DuplicateColumn> {
    let mut seen = std::collections::HashSet::new();
    for name in names {
        if !seen.insert(name) {
            return Err(DuplicateColumn {
                name: name.to_string(),
            });
        }
    }
    Ok(())
}
