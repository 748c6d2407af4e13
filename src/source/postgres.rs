//! PostgreSQL: pooled connections (deadpool), each task in a READ ONLY transaction with a
//! server-side `statement_timeout` backing the client's deadline, rows read with
//! `COPY (query) TO STDOUT (FORMAT binary)` and decoded straight into Arrow builders.
//!
//! Every statement that carries the user's SQL (a task's COPY, the describe's prepare, a
//! range probe, an `EXPLAIN` for an estimate or a page check) runs inside a READ ONLY
//! transaction that first sets [`TRANSACTION_SETTINGS`]: a query that would write (a
//! `nextval`, a function that inserts, a data-modifying CTE, even one the planner folds
//! while only explaining) is refused by the server before it writes anything. Outside a
//! task such a transaction is rolled back ([`ReadOnly`]), so the pooled connection goes
//! back clean.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use futures_util::Stream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_postgres::CancelToken;

use crate::config::shards::PgSource;
use crate::decode::pgcopy::{CopyDecoder, CopyError};
use crate::error::{TaskError, TaskErrorKind};
use crate::sql::{KeyValue, quote_ident};
use crate::types::TypeRules;

use super::pgcolumns::{self, Columns};
use super::{BATCH_BYTES, Cancels, TaskContext, tls};

/// Margin added to the client deadline for the server's own `statement_timeout`: the
/// client cancels first; the server stops the statement even if the cancel is lost.
const SERVER_TIMEOUT_MARGIN: Duration = Duration::from_secs(2);

/// How long a discarded connection may take to acknowledge its cancel before it is
/// closed anyway.
const DISCARD_WAIT: Duration = Duration::from_secs(1);

/// Set first in every transaction tributary opens. The query lexer (`crate::sql`) finds
/// parameters and renders their values as literals the way the SQL standard reads
/// strings, where a backslash is an ordinary character; a server, database or role with
/// `standard_conforming_strings = off` would read `'C:\'` as an unfinished string and
/// shift what is a parameter and what is text. `SET LOCAL` lasts until the transaction
/// ends, and every statement carrying the user's SQL is sent after it.
const TRANSACTION_SETTINGS: &str = "SET LOCAL standard_conforming_strings = on";

/// The first PostgreSQL release with TID range scans (`server_version_num`). Before it,
/// a `ctid >= .. AND ctid < ..` restriction is a filter over a scan of the whole table.
const TID_RANGE_SCAN_SINCE: i32 = 140_000;

/// How a server reads one page range of a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageRangeScan {
    /// A Tid Range Scan reads only the range's pages (PostgreSQL 14 and later).
    TidRange,
    /// Every piece would scan the whole table and filter on `ctid`: N pieces read the
    /// table N times, so page partitions are refused on such a server.
    WholeTable,
}

/// How a server of version `server_version_num` (e.g. 150004) reads a page range.
pub fn page_range_scan(server_version_num: i32) -> PageRangeScan {
    if server_version_num >= TID_RANGE_SCAN_SINCE {
        PageRangeScan::TidRange
    } else {
        PageRangeScan::WholeTable
    }
}

pub struct PgShard {
    name: String,
    target: String,
    /// For connections outside the pool (the snapshot session).
    config: tokio_postgres::Config,
    pool: Pool,
    /// Connections in use or being closed; see [`Checkout::slot`].
    slots: Arc<Semaphore>,
    tls: tls::Connector,
    size: usize,
    /// The job's type options: how each column is rendered.
    types: Arc<TypeRules>,
}

/// A client for probes: borrowed from the snapshot session (whose transaction is READ
/// ONLY and stays open for the partitions), or a pooled connection in a READ ONLY
/// transaction of its own.
enum ProbeClient<'a> {
    Session(&'a tokio_postgres::Client),
    Pooled(Box<ReadOnly>),
}

impl ProbeClient<'_> {
    /// Ends the probe's own transaction, if it has one.
    async fn end(self) {
        if let ProbeClient::Pooled(tx) = self {
            (*tx).end().await;
        }
    }
}

impl std::ops::Deref for ProbeClient<'_> {
    type Target = tokio_postgres::Client;

    fn deref(&self) -> &tokio_postgres::Client {
        match self {
            ProbeClient::Session(c) => c,
            ProbeClient::Pooled(tx) => tx,
        }
    }
}

/// A pooled connection inside a READ ONLY transaction (with [`TRANSACTION_SETTINGS`]),
/// for the statements outside a task that carry the user's SQL: describe, probes,
/// estimates. [`ReadOnly::end`] rolls the transaction back and returns the connection to
/// the pool. Dropped without `end` (an error on the way, a deadline dropping the future),
/// the connection is taken out of the pool and its statement cancelled: the pool's fast
/// recycling would otherwise hand out a connection still in the transaction, or busy.
#[must_use = "end() rolls back and returns the connection; dropping it discards it"]
struct ReadOnly {
    object: Option<Object>,
    tls: tls::Connector,
}

impl ReadOnly {
    /// Rolls back and returns the connection to the pool (or discards it if the rollback
    /// fails).
    async fn end(mut self) {
        let Some(object) = self.object.take() else {
            return;
        };
        if object.batch_execute("ROLLBACK").await.is_err() {
            drop(Object::take(object));
        }
    }
}

impl std::ops::Deref for ReadOnly {
    type Target = tokio_postgres::Client;

    fn deref(&self) -> &tokio_postgres::Client {
        self.object.as_ref().expect("present until end or drop")
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        let Some(object) = self.object.take() else {
            return;
        };
        // Out of the pool for good; the server rolls back when the connection closes.
        let client = Object::take(object);
        let token = client.cancel_token();
        let tls = self.tls.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = tokio::time::timeout(DISCARD_WAIT, token.cancel_query(tls)).await;
                drop(client);
            });
        }
    }
}

/// A connection holding an exported snapshot open: a REPEATABLE READ READ ONLY
/// transaction with the idle-in-transaction timeout off, kept until the run ends so that
/// every partition (and every retry) can import the snapshot.
pub struct SnapshotSession {
    client: tokio_postgres::Client,
    pub id: String,
}

impl SnapshotSession {
    pub fn client(&self) -> &tokio_postgres::Client {
        &self.client
    }

    /// Ends the transaction and the connection.
    pub async fn close(self) {
        let _ = self.client.batch_execute("COMMIT").await;
    }
}

/// What a key probe's answer is for, which its errors name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyPurpose {
    /// A range partition's bounds.
    Range,
    /// An incremental job's mark.
    Mark,
}

impl PgShard {
    pub fn new(
        name: &str,
        source: &PgSource,
        size: usize,
        connect_timeout: Duration,
        types: Arc<TypeRules>,
    ) -> Result<PgShard, TaskError> {
        let fail = |message: String| {
            TaskError::new(
                name,
                TaskErrorKind::Connect {
                    target: source.display.clone(),
                    message,
                    transient: false,
                },
            )
        };
        let tls = tls::connector(&source.tls).map_err(|e| fail(crate::error::chain(&e)))?;
        let mut config = source.config.clone();
        if !source.has_connect_timeout {
            config.connect_timeout(connect_timeout);
        }
        let manager = Manager::from_config(
            config.clone(),
            tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        // The socket-level connect timeout does not cover the startup handshake; the
        // pool's create timeout bounds the whole of it (a server that accepts and then
        // says nothing must not hang the run).
        let pool = Pool::builder(manager)
            .max_size(size)
            .create_timeout(whole_connect_timeout(&config))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| fail(e.to_string()))?;
        Ok(PgShard {
            name: name.to_string(),
            target: source.display.clone(),
            config,
            pool,
            slots: Arc::new(Semaphore::new(size)),
            tls,
            size,
            types,
        })
    }

    pub fn size(&self) -> usize {
        self.size
    }

    pub fn close(&self) {
        self.pool.close();
    }

    fn error(&self, kind: TaskErrorKind) -> TaskError {
        TaskError::new(&self.name, kind)
    }

    /// The result's columns as this shard types them, without running the query: lets
    /// the merger unify types across shards before the first row is written.
    pub async fn describe(&self, sql: &str) -> Result<Columns, TaskError> {
        self.describe_estimating(sql, &[]).await.0
    }

    /// [`PgShard::describe`], and PostgreSQL's estimate of the rows each of `estimate`
    /// returns (`None` where its `EXPLAIN` failed). The `EXPLAIN`s are pipelined with the
    /// describe: sent together on its connection, they add the server's planning time
    /// (a fraction of a millisecond for a plain query) and no round trip. They run inside
    /// a savepoint rolled back before the describe, so that one that fails leaves the
    /// transaction usable and the describe's answer as it would be without them.
    pub async fn describe_estimating(
        &self,
        sql: &str,
        estimate: &[&str],
    ) -> (Result<Columns, TaskError>, Vec<Option<f64>>) {
        let tx = match self.read_only().await {
            Ok(tx) => tx,
            Err(e) => return (Err(e), vec![None; estimate.len()]),
        };
        let (columns, estimates) = if estimate.is_empty() {
            (pgcolumns::describe(&tx, sql, &self.types).await, Vec::new())
        } else {
            let explains: Vec<String> = estimate
                .iter()
                .map(|sql| format!("EXPLAIN (FORMAT JSON) {sql}"))
                .collect();
            // `join!` polls in this order, and each request is sent at its future's first
            // poll: the server gets them in this order before any answer is awaited.
            let (_, explained, _, columns) = futures_util::join!(
                tx.batch_execute("SAVEPOINT estimates"),
                in_order(explains.iter().map(|e| tx.query_typed(e, &[]))),
                tx.batch_execute("ROLLBACK TO SAVEPOINT estimates"),
                pgcolumns::describe(&tx, sql, &self.types),
            );
            let estimates = explained
                .into_iter()
                .map(|rows| {
                    let plan: serde_json::Value = rows.ok()?.first()?.try_get(0).ok()?;
                    plan[0]["Plan"]["Plan Rows"].as_f64()
                })
                .collect();
            (columns, estimates)
        };
        tx.end().await;
        (
            columns.map_err(|e| self.error(classify(&e, None))),
            estimates,
        )
    }

    /// What `tributary check` reports of this shard (see [`super::ShardPool::facts`]).
    pub async fn facts(&self, sql: Option<&str>) -> Result<super::ShardFacts, TaskError> {
        let tx = self.read_only().await?;
        let facts = self.facts_on(&tx, sql).await;
        tx.end().await;
        facts.map_err(|e| self.error(classify(&e, None)))
    }

    async fn facts_on(
        &self,
        client: &tokio_postgres::Client,
        sql: Option<&str>,
    ) -> Result<super::ShardFacts, tokio_postgres::Error> {
        let about = client
            .query_one(
                "SELECT 'PostgreSQL ' || current_setting('server_version'), current_user::text,                         (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user),                         s.ssl, s.version, s.cipher                  FROM (SELECT 1) AS one                  LEFT JOIN pg_catalog.pg_stat_ssl AS s ON s.pid = pg_backend_pid()",
                &[],
            )
            .await?;
        let mut can_write = Vec::new();
        if about.get::<_, Option<bool>>(2).unwrap_or(false) {
            can_write.push("everything: the role is a superuser".to_string());
        }
        let tables: Vec<String> = client
            .query(
                "SELECT format('%I.%I', n.nspname, c.relname)                  FROM pg_catalog.pg_class AS c JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace                  WHERE c.relkind IN ('r', 'p')                    AND n.nspname NOT IN ('pg_catalog', 'information_schema')                    AND n.nspname NOT LIKE 'pg\\_%'                    AND has_table_privilege(c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE')                  ORDER BY 1",
                &[],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if !tables.is_empty() {
            let shown: Vec<&str> = tables.iter().take(3).map(String::as_str).collect();
            let more = tables.len().saturating_sub(shown.len());
            can_write.push(format!(
                "the rows of {} table{} ({}{})",
                tables.len(),
                if tables.len() == 1 { "" } else { "s" },
                shown.join(", "),
                if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                }
            ));
        }
        let schemas: Vec<String> = client
            .query(
                "SELECT format('%I', nspname) FROM pg_catalog.pg_namespace                  WHERE nspname NOT IN ('pg_catalog', 'information_schema')                    AND nspname NOT LIKE 'pg\\_%' AND has_schema_privilege(oid, 'CREATE')                  ORDER BY 1",
                &[],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if !schemas.is_empty() {
            can_write.push(format!("new tables in schema {}", schemas.join(", ")));
        }
        let mut columns = Vec::new();
        if let Some(sql) = sql {
            let statement = client.prepare(sql).await?;
            let described = pgcolumns::describe(client, sql, &self.types).await?;
            let schema = described.schema();
            for (column, field) in statement.columns().iter().zip(schema.fields()) {
                columns.push(super::ColumnFacts {
                    name: column.name().to_string(),
                    source_type: column.type_().name().to_string(),
                    arrow_type: field.data_type().to_string(),
                });
            }
        }
        Ok(super::ShardFacts {
            server: about.get(0),
            tls: Some(super::TlsFacts {
                encrypted: about.get::<_, Option<bool>>(3).unwrap_or(false),
                protocol: about.get(4),
                cipher: about.get(5),
            }),
            role: Some(about.get(1)),
            can_write,
            columns,
        })
    }

    /// A pooled connection in a new READ ONLY transaction.
    async fn read_only(&self) -> Result<ReadOnly, TaskError> {
        let tx = ReadOnly {
            object: Some(self.connection().await?),
            tls: self.tls.clone(),
        };
        tx.batch_execute(&format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; {TRANSACTION_SETTINGS}"
        ))
        .await
        .map_err(|e| self.error(classify(&e, None)))?;
        Ok(tx)
    }

    async fn connection(&self) -> Result<Object, TaskError> {
        self.pool.get().await.map_err(|e| {
            let (message, transient) = match &e {
                deadpool_postgres::PoolError::Backend(e) => (describe(e), transient_connect(e)),
                deadpool_postgres::PoolError::Timeout(_) => {
                    ("timed out while connecting".to_string(), true)
                }
                other => (other.to_string(), true),
            };
            self.error(TaskErrorKind::Connect {
                target: self.target.clone(),
                message,
                transient,
            })
        })
    }

    /// Opens a connection outside the pool and exports a snapshot from it. When that
    /// connection ends, the shard's name is sent on `lost`.
    ///
    /// With `import` (a snapshot another process exported and holds, and where its id
    /// comes from, for messages), the transaction reads that snapshot and exports it
    /// again: the run's tasks import this session's copy, which lives as long as the run
    /// whatever becomes of the other process.
    pub async fn open_snapshot(
        &self,
        lost: tokio::sync::mpsc::UnboundedSender<String>,
        import: Option<(&str, &str)>,
    ) -> Result<SnapshotSession, TaskError> {
        let mut config = self.config.clone();
        config.application_name("tributary snapshot");
        let connect_timeout = whole_connect_timeout(&config);
        let connecting = config.connect(self.tls.clone());
        let connected = match connect_timeout {
            Some(limit) => tokio::time::timeout(limit, connecting).await.ok(),
            None => Some(connecting.await),
        };
        let connect_error = |message: String, transient: bool| {
            self.error(TaskErrorKind::Connect {
                target: self.target.clone(),
                message,
                transient,
            })
        };
        let (client, connection) = match connected {
            None => return Err(connect_error("timed out while connecting".into(), true)),
            Some(Err(e)) => return Err(connect_error(describe(&e), transient_connect(&e))),
            Some(Ok(c)) => c,
        };
        let shard = self.name.clone();
        tokio::spawn(async move {
            let _ = connection.await;
            let _ = lost.send(shard);
        });
        let fail = |e: tokio_postgres::Error| self.error(classify(&e, None));
        // Only ids `config::slices::valid_id` accepts reach here: hex digits and dashes.
        let import_sql = import.map_or(String::new(), |(id, _)| {
            format!("; SET TRANSACTION SNAPSHOT '{id}'")
        });
        client
            .batch_execute(&format!(
                "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; \
                     SET LOCAL idle_in_transaction_session_timeout = 0; {TRANSACTION_SETTINGS}{import_sql}"
            ))
            .await
            .map_err(|e| match (import, classify(&e, None)) {
                (Some((id, from)), TaskErrorKind::SnapshotLost { message }) => {
                    self.error(TaskErrorKind::SnapshotLost {
                        message: format!(
                            "cannot import snapshot {id} from {from}: {message} (is `tributary snapshot export` still running?)"
                        ),
                    })
                }
                (_, kind) => self.error(kind),
            })?;
        let id: String = client
            .query_one("SELECT pg_export_snapshot()", &[])
            .await
            .map_err(fail)?
            .get(0);
        Ok(SnapshotSession { client, id })
    }

    /// Where probes run: on the snapshot session when there is one (so they see what the
    /// partitions will read), else on a pooled connection in a READ ONLY transaction.
    /// Either way the user's SQL cannot write.
    async fn probe_client<'a>(
        &self,
        session: Option<&'a SnapshotSession>,
    ) -> Result<ProbeClient<'a>, TaskError> {
        Ok(match session {
            Some(s) => ProbeClient::Session(s.client()),
            None => ProbeClient::Pooled(Box::new(self.read_only().await?)),
        })
    }

    /// The smallest and largest key of the query's result (`None` when it has no non-NULL
    /// key), on `session`'s snapshot if given, else on a pooled connection.
    pub async fn probe_range(
        &self,
        session: Option<&SnapshotSession>,
        sql: &str,
        column: &str,
        purpose: KeyPurpose,
    ) -> Result<Option<(KeyValue, KeyValue)>, TaskError> {
        let client = self.probe_client(session).await?;
        let bounds = self.probe_range_on(&client, sql, column, purpose).await;
        client.end().await;
        bounds
    }

    async fn probe_range_on(
        &self,
        client: &tokio_postgres::Client,
        sql: &str,
        column: &str,
        purpose: KeyPurpose,
    ) -> Result<Option<(KeyValue, KeyValue)>, TaskError> {
        use tokio_postgres::types::Type;
        let fail = |e: tokio_postgres::Error| self.error(classify(&e, None));
        let c = quote_ident(column);
        let probe = format!("SELECT min({c}), max({c}) FROM (\n{sql}\n) AS tributary_probe");
        let statement = client.prepare(&probe).await.map_err(fail)?;
        let ty = statement.columns()[0].type_().clone();
        let supported = [
            Type::INT2,
            Type::INT4,
            Type::INT8,
            Type::DATE,
            Type::TIMESTAMP,
            Type::TIMESTAMPTZ,
        ];
        if !supported.contains(&ty) {
            return Err(self.error(TaskErrorKind::Partition {
                message: match purpose {
                    KeyPurpose::Range => format!(
                        "range partitions need an integer, date or timestamp key; `{column}` is {ty}: use hash partitions"
                    ),
                    KeyPurpose::Mark => format!(
                        "[incremental] needs an integer, date or timestamp column; `{column}` is {ty}"
                    ),
                },
            }));
        }
        let row = client.query_one(&statement, &[]).await.map_err(fail)?;
        let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid");
        let key = |i: usize| -> Result<Option<KeyValue>, tokio_postgres::Error> {
            Ok(match ty {
                Type::INT2 => row
                    .try_get::<_, Option<i16>>(i)?
                    .map(|v| KeyValue::Int(v as i64)),
                Type::INT4 => row
                    .try_get::<_, Option<i32>>(i)?
                    .map(|v| KeyValue::Int(v as i64)),
                Type::INT8 => row.try_get::<_, Option<i64>>(i)?.map(KeyValue::Int),
                Type::DATE => row
                    .try_get::<_, Option<chrono::NaiveDate>>(i)?
                    .map(|d| KeyValue::Date((d - epoch).num_days() as i32)),
                Type::TIMESTAMP => row
                    .try_get::<_, Option<chrono::NaiveDateTime>>(i)?
                    .map(|t| KeyValue::Timestamp {
                        micros: t.and_utc().timestamp_micros(),
                        utc: false,
                    }),
                _ => row
                    .try_get::<_, Option<chrono::DateTime<chrono::Utc>>>(i)?
                    .map(|t| KeyValue::Timestamp {
                        micros: t.timestamp_micros(),
                        utc: true,
                    }),
            })
        };
        let bad = |e: tokio_postgres::Error| {
            self.error(TaskErrorKind::Partition {
                message: match purpose {
                    KeyPurpose::Range => format!(
                        "the bounds of `{column}` cannot be used ({e}); give explicit bounds in the job file"
                    ),
                    KeyPurpose::Mark => {
                        format!("the largest `{column}` cannot be used as a mark ({e})")
                    }
                },
            })
        };
        match (key(0).map_err(bad)?, key(1).map_err(bad)?) {
            (Some(min), Some(max)) => Ok(Some((min, max))),
            _ => Ok(None),
        }
    }

    /// The table of a page-partitioned job, on `session`'s snapshot if given: its heap
    /// pages and the schema and name it resolves to.
    pub async fn page_table(
        &self,
        session: Option<&SnapshotSession>,
        table: &str,
    ) -> Result<PageTable, TaskError> {
        let client = self.probe_client(session).await?;
        let row = client
            .query_one(
                "SELECT (pg_relation_size(c.oid) / current_setting('block_size')::int)::bigint, \
                        n.nspname, c.relname, \
                        current_setting('server_version_num')::int, current_setting('server_version') \
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.oid = $1::text::regclass",
                &[&table],
            )
            .await;
        client.end().await;
        let row = row.map_err(|e| self.error(classify(&e, None)))?;
        let version_num: i32 = row.get(3);
        if page_range_scan(version_num) == PageRangeScan::WholeTable {
            let version: String = row.get(4);
            return Err(self.error(TaskErrorKind::Partition {
                message: format!(
                    "page partitions need PostgreSQL 14 or later (TID range scans); this shard runs {version}, where every piece would read the whole table: use range or hash partitions"
                ),
            }));
        }
        Ok(PageTable {
            given: table.to_string(),
            pages: row.get::<_, i64>(0).max(0) as u64,
            schema: row.get(1),
            name: row.get(2),
        })
    }

    /// Checks that `sql`, a query restricted to one page range of `table` by a common
    /// table expression named `shadow`, reads `table` exactly once and only through that
    /// range. The restriction shadows the table's name, so a query that reaches the table otherwise (schema-qualified, through a
    /// view, under another name) would read all of it in every piece, and one that reads
    /// it twice (a self-join) would pair rows of the same range only: either would be a
    /// wrong result, not an error, so the plan is looked at first (`EXPLAIN`: nothing is
    /// read).
    pub async fn check_page_scan(
        &self,
        session: Option<&SnapshotSession>,
        sql: &str,
        table: &PageTable,
        shadow: &str,
    ) -> Result<(), TaskError> {
        let client = self.probe_client(session).await?;
        let row = client
            .query_one(&format!("EXPLAIN (FORMAT JSON, VERBOSE) {sql}"), &[])
            .await;
        client.end().await;
        let row = row.map_err(|e| self.error(classify(&e, None)))?;
        let plan: serde_json::Value = row.get(0);
        let mut scans = Vec::new();
        let mut shared = false;
        walk_plan(&plan[0]["Plan"], &mut |node| {
            let text = |key: &str| node[key].as_str().unwrap_or_default();
            if text("Relation Name") == table.name && text("Schema") == table.schema {
                // Only a Tid Range Scan reads just the range's pages; a ctid filter over
                // another scan reads the whole table for every piece.
                scans.push(text("Node Type") == "Tid Range Scan");
            }
            if text("Node Type") == "CTE Scan" && text("CTE Name") == shadow {
                shared = true;
            }
        });
        let given = &table.given;
        let message = match scans.as_slice() {
            [true] if !shared => return Ok(()),
            [] | [false] => format!(
                "page partitions need the query to read table `{given}` by that name, unqualified, through a TID range scan: its plan does not read it through the page range (a view or a schema-qualified name is not restricted; with enable_tidscan off every piece would read the whole table)"
            ),
            _ => format!(
                "page partitions need the query to read table `{given}` once: it reads it more than once (a self-join would only pair rows of the same page range)"
            ),
        };
        Err(self.error(TaskErrorKind::Partition { message }))
    }

    /// PostgreSQL's estimate of the rows `sql` returns (`EXPLAIN`: nothing is read).
    /// In a READ ONLY transaction all the same: planning evaluates immutable functions
    /// with constant arguments, which may be user functions that write.
    pub async fn estimate(&self, sql: &str) -> Result<f64, TaskError> {
        let tx = self.read_only().await?;
        let row = tx
            .query_one(&format!("EXPLAIN (FORMAT JSON) {sql}"), &[])
            .await;
        tx.end().await;
        let row = row.map_err(|e| self.error(classify(&e, None)))?;
        let plan: serde_json::Value = row.get(0);
        Ok(plan[0]["Plan"]["Plan Rows"].as_f64().unwrap_or(f64::NAN))
    }

    pub async fn run(
        &self,
        sql: &str,
        snapshot: Option<&str>,
        ctx: &TaskContext,
    ) -> Result<u64, TaskError> {
        let slot = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .expect("never closed");
        let object = self.connection().await?;
        let mut conn = Checkout {
            token: object.cancel_token(),
            object: Some(object),
            slot: Some(slot),
            pid: std::sync::OnceLock::new(),
            config: self.config.clone(),
            tls: self.tls.clone(),
            cancels: ctx.cancels.clone(),
        };
        let rows = self.stream(&conn, sql, snapshot, ctx).await?;
        conn.release();
        Ok(rows)
    }

    async fn stream(
        &self,
        conn: &Checkout,
        sql: &str,
        snapshot: Option<&str>,
        ctx: &TaskContext,
    ) -> Result<u64, TaskError> {
        let client = conn.client();
        let classify = |e: tokio_postgres::Error| self.error(classify(&e, ctx.deadline));
        let stalled = |after| self.error(TaskErrorKind::Stalled { after });
        self.begin(conn, snapshot, ctx).await?;

        let columns = within(
            ctx.stall,
            pgcolumns::describe_for_task(client, sql, &self.types, &self.name, |e| {
                self::classify(&e, ctx.deadline)
            }),
        )
        .await
        .map_err(stalled)?
        .map_err(|kind| self.error(kind))?;
        let kinds = &columns.kinds;
        let mut decoder = CopyDecoder::new(kinds);
        ctx.sender.schema(decoder.schema().clone());

        let copy = within(ctx.stall, client.copy_out(columns.copy_sql.as_str()))
            .await
            .map_err(stalled)?
            .map_err(classify)?;
        let started = Instant::now();
        let mut held_back = Duration::ZERO;
        let rows = self
            .copy_rows(std::pin::pin!(copy), &mut decoder, ctx, &mut held_back)
            .await?;
        within(ctx.stall, client.batch_execute("COMMIT"))
            .await
            .map_err(stalled)?
            .map_err(classify)?;
        tracing::debug!(
            "{}: {rows} rows in {:.2?}, held back {:.2?} by the merger (channel budget spent)",
            self.name,
            started.elapsed(),
            held_back
        );
        Ok(rows)
    }

    /// Opens a task's transaction on `conn`: READ ONLY, on `snapshot` when given, with
    /// [`TRANSACTION_SETTINGS`] and the server-side `statement_timeout` behind the
    /// task's deadline; notes the backend's process id in `conn`.
    async fn begin(
        &self,
        conn: &Checkout,
        snapshot: Option<&str>,
        ctx: &TaskContext,
    ) -> Result<(), TaskError> {
        let mut setup = String::from("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
        if let Some(id) = snapshot {
            // Must come before any query of the transaction.
            setup.push_str(&format!(
                "; SET TRANSACTION SNAPSHOT '{}'",
                id.replace('\'', "''")
            ));
        }
        setup.push_str("; ");
        setup.push_str(TRANSACTION_SETTINGS);
        if let Some(deadline) = ctx.deadline {
            let ms = (deadline + ctx.server_slack + SERVER_TIMEOUT_MARGIN).as_millis();
            setup.push_str(&format!("; SET LOCAL statement_timeout = {ms}"));
        }
        setup.push_str("; SELECT pg_backend_pid()");
        let replies = within(ctx.stall, conn.client().simple_query(&setup))
            .await
            .map_err(|after| self.error(TaskErrorKind::Stalled { after }))?
            .map_err(|e| self.error(classify(&e, ctx.deadline)))?;
        let pid = replies.iter().find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).and_then(|p| p.parse().ok()),
            _ => None,
        });
        if let Some(pid) = pid {
            let _ = conn.pid.set(pid);
        }
        if snapshot.is_some() {
            // From here on this transaction keeps the snapshot whatever becomes of the
            // session that exported it.
            ctx.snapshot_imported.store(true, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Decodes the COPY stream into batches sent to the merger until it ends; returns
    /// the rows sent, and adds to `held_back` the time the merger kept a batch waiting.
    async fn copy_rows(
        &self,
        mut copy: std::pin::Pin<&mut tokio_postgres::CopyOutStream>,
        decoder: &mut CopyDecoder,
        ctx: &TaskContext,
        held_back: &mut Duration,
    ) -> Result<u64, TaskError> {
        let classify = |e: tokio_postgres::Error| self.error(classify(&e, ctx.deadline));
        let stalled = |after| self.error(TaskErrorKind::Stalled { after });
        let decode_error = |e: CopyError| self.decode_error(e);
        let mut rows = 0u64;
        // Stream bytes since the decoded size was last looked at: summing the builders'
        // sizes for every row (one CopyData message each) was a visible share of decoding.
        let mut unchecked = 0;
        let mut watchdog = Watchdog::new(ctx.stall);
        let alive = AtomicBool::new(false);
        loop {
            // Decode every message already received in one go, and only then wait: a
            // wake-up, a timer check and a channel poll per row cost more than the row.
            let drained = std::future::poll_fn(|cx| {
                loop {
                    let chunk = match copy.as_mut().poll_next(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(None) => return Poll::Ready(Ok(Drained::End)),
                        Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(classify(e))),
                        Poll::Ready(Some(Ok(chunk))) => chunk,
                    };
                    alive.store(true, Ordering::Relaxed);
                    if let Err(e) = decoder.push(&chunk) {
                        return Poll::Ready(Err(decode_error(e)));
                    }
                    unchecked += chunk.len();
                    let full = decoder.buffered_rows() >= ctx.batch_size
                        || (unchecked >= BYTES_CHECK_INTERVAL && {
                            unchecked = 0;
                            decoder.buffered_bytes() >= BATCH_BYTES
                        });
                    if full {
                        unchecked = 0;
                        return Poll::Ready(Ok(Drained::Batch));
                    }
                }
            });
            match watchdog.watch(&alive, drained).await.map_err(stalled)?? {
                Drained::Batch => {
                    rows += send(decoder, ctx, held_back).await.map_err(decode_error)?;
                }
                Drained::End => break,
            }
        }
        decoder.finish().map_err(decode_error)?;
        rows += send(decoder, ctx, held_back).await.map_err(decode_error)?;
        Ok(rows)
    }

    /// A task's error for bytes the COPY decoder refused. Bad bytes are the data's
    /// fault, not the connection's: not retried.
    fn decode_error(&self, e: CopyError) -> TaskError {
        let message = e.to_string();
        self.error(match e {
            CopyError::Value { column, .. } => TaskErrorKind::Decode { column, message },
            CopyError::Malformed {
                offset,
                column,
                problem,
            } => TaskErrorKind::Protocol {
                column,
                offset,
                problem,
            },
        })
    }
}

/// How many stream bytes may arrive between two looks at the decoded size.
const BYTES_CHECK_INTERVAL: usize = 64 << 10;

/// Why a drain of the COPY stream stopped.
enum Drained {
    /// A batch's worth of rows is decoded.
    Batch,
    /// The stream ended.
    End,
}

/// The stall bound on a stream of messages. One timer for the whole stream, ticking every
/// quarter of the limit: a message only sets a flag, and a tick that finds the flag unset
/// for a whole limit gives up, so a stall is reported between `limit` and 1.25 x `limit`
/// after the last message. Arming a timeout per message (one per row), or even reading
/// the clock per message, cost a visible share of the CPU of a fast export.
pub(super) struct Watchdog {
    limit: Option<Duration>,
    /// A tick at which the stream was known to be alive.
    alive_at: tokio::time::Instant,
    timer: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl Watchdog {
    pub(super) fn new(limit: Option<Duration>) -> Watchdog {
        let now = tokio::time::Instant::now();
        let first = now + limit.map_or(Duration::from_secs(86_400), Watchdog::tick);
        Watchdog {
            limit,
            alive_at: now,
            timer: Box::pin(tokio::time::sleep_until(first)),
        }
    }

    fn tick(limit: Duration) -> Duration {
        limit / 4
    }

    /// Awaits `fut`, which sets `alive` whenever a message arrives; `Err(limit)` once
    /// no message has arrived for `limit`.
    pub(super) async fn watch<F: Future>(
        &mut self,
        alive: &AtomicBool,
        fut: F,
    ) -> Result<F::Output, Duration> {
        let Some(limit) = self.limit else {
            return Ok(fut.await);
        };
        let mut fut = std::pin::pin!(fut);
        loop {
            tokio::select! {
                biased;
                output = &mut fut => return Ok(output),
                () = &mut self.timer => {
                    let now = tokio::time::Instant::now();
                    if alive.swap(false, Ordering::Relaxed) {
                        self.alive_at = now;
                    } else if now >= self.alive_at + limit {
                        return Err(limit);
                    }
                    self.timer.as_mut().reset(now + Watchdog::tick(limit));
                }
            }
        }
    }
}

/// The table of a page-partitioned job, as the server resolves it.
pub struct PageTable {
    /// The name the job gives (the one the page ranges shadow).
    pub given: String,
    pub pages: u64,
    pub schema: String,
    pub name: String,
}

/// Calls `visit` on every node of an `EXPLAIN (FORMAT JSON)` plan.
fn walk_plan(node: &serde_json::Value, visit: &mut impl FnMut(&serde_json::Value)) {
    visit(node);
    if let Some(children) = node["Plans"].as_array() {
        for child in children {
            walk_plan(child, visit);
        }
    }
}

/// Awaits `fut`, giving up after `limit` of silence (`Err` holds the limit).
pub(super) async fn within<T>(
    limit: Option<Duration>,
    fut: impl std::future::Future<Output = T>,
) -> Result<T, Duration> {
    match limit {
        Some(limit) => tokio::time::timeout(limit, fut).await.map_err(|_| limit),
        None => Ok(fut.await),
    }
}

async fn send(
    decoder: &mut CopyDecoder,
    ctx: &TaskContext,
    held_back: &mut Duration,
) -> Result<u64, CopyError> {
    let batch = decoder.take_batch()?;
    let n = batch.num_rows() as u64;
    if n > 0 {
        *held_back += ctx.sender.batch(batch).await;
        (ctx.on_rows)(n);
    }
    Ok(n)
}

/// A pooled connection in use by a task. Unless released after a clean finish, dropping
/// it cancels whatever statement may still run on the server and removes the connection
/// from the pool, so no later task waits behind an abandoned query.
#[must_use = "release() returns the connection to the pool; dropping it discards it"]
struct Checkout {
    object: Option<Object>,
    /// The shard's connection slot: held until a discarded connection is closed, so the
    /// server never sees more of our connections than the pool allows.
    slot: Option<OwnedSemaphorePermit>,
    token: CancelToken,
    /// The backend's process id, to terminate it if it cannot be cancelled (a backend
    /// blocked writing to a stalled link ignores cancel requests).
    pid: std::sync::OnceLock<i32>,
    /// For the separate connection that terminates such a backend.
    config: tokio_postgres::Config,
    tls: tls::Connector,
    cancels: Cancels,
}

impl Checkout {
    fn client(&self) -> &tokio_postgres::Client {
        self.object.as_ref().expect("present until release or drop")
    }

    /// The task finished cleanly (transaction committed): back to the pool.
    fn release(&mut self) {
        self.object.take();
        self.slot.take();
    }
}

impl Drop for Checkout {
    fn drop(&mut self) {
        let Some(object) = self.object.take() else {
            return;
        };
        // Out of the pool for good: the client and its connection close when dropped.
        let client = Object::take(object);
        let slot = self.slot.take();
        let token = self.token.clone();
        let tls = self.tls.clone();
        let pid = self.pid.get().copied();
        let config = self.config.clone();
        self.cancels.spawn(async move {
            let _ = tokio::time::timeout(DISCARD_WAIT, token.cancel_query(tls.clone())).await;
            // Once the backend has given the statement up (the ROLLBACK is answered), it
            // exits as soon as the connection closes. If it does not answer, it may be
            // blocked writing to a stalled link, where cancels are not honoured: end it
            // from a separate connection.
            let idle = tokio::time::timeout(DISCARD_WAIT, client.batch_execute("ROLLBACK")).await;
            if !matches!(idle, Ok(Ok(())))
                && let Some(pid) = pid
            {
                let _ = tokio::time::timeout(DISCARD_WAIT, terminate(config, tls, pid)).await;
            }
            drop(client);
            drop(slot);
        });
    }
}

/// How long a whole connect may take: `connect_timeout` is per host, as in libpq, and
/// with several hosts each is tried in turn until one answers.
fn whole_connect_timeout(config: &tokio_postgres::Config) -> Option<Duration> {
    let hosts = config
        .get_hosts()
        .len()
        .max(config.get_hostaddrs().len())
        .max(1);
    config
        .get_connect_timeout()
        .map(|t| t.saturating_mul(u32::try_from(hosts).unwrap_or(u32::MAX)))
}

/// Ends backend `pid` from a new connection (a role may end its own backends).
async fn terminate(config: tokio_postgres::Config, tls: tls::Connector, pid: i32) {
    if let Ok((client, connection)) = config.connect(tls).await {
        let running = tokio::spawn(connection);
        let _ = client
            .execute("SELECT pg_terminate_backend($1)", &[&pid])
            .await;
        drop(client);
        let _ = running.await;
    }
}

/// Whether a failed connection attempt may succeed later: network errors and a server
/// that is busy or starting, not authentication or a missing database.
fn transient_connect(e: &tokio_postgres::Error) -> bool {
    match e.as_db_error() {
        Some(db) => {
            let code = db.code().code();
            code.starts_with("08") || matches!(code, "53300" | "57P01" | "57P03")
        }
        // A refused certificate or a server without TLS will not change on its own.
        None => !e.to_string().contains("TLS"),
    }
}

/// The message of a tokio-postgres error, with the server's detail and hint.
fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut m = db.message().to_string();
            if let Some(detail) = db.detail() {
                m.push_str(&format!(" ({detail})"));
            }
            if let Some(hint) = db.hint() {
                m.push_str(&format!("; hint: {hint}"));
            }
            m
        }
        None => {
            let mut m = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                let text = s.to_string();
                if !m.contains(&text) {
                    m.push_str(&format!(": {text}"));
                }
                source = s.source();
            }
            m
        }
    }
}

fn classify(e: &tokio_postgres::Error, deadline: Option<Duration>) -> TaskErrorKind {
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        if code == "22023" && db.message().contains("snapshot") {
            return TaskErrorKind::SnapshotLost {
                message: format!(
                    "{} (SQLSTATE {code}): the session that exported it has ended",
                    db.message()
                ),
            };
        }
        if code == "57014"
            && let Some(after) = deadline
        {
            return TaskErrorKind::Timeout { after };
        }
        if code.starts_with("08") || code == "57P01" {
            return TaskErrorKind::ConnectionLost {
                message: format!("{} (SQLSTATE {code})", describe(e)),
            };
        }
        return TaskErrorKind::Server {
            sqlstate: Some(code.to_string()),
            message: describe(e),
        };
    }
    if e.is_closed() || std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>()) {
        return TaskErrorKind::ConnectionLost {
            message: describe(e),
        };
    }
    TaskErrorKind::Server {
        sqlstate: None,
        message: describe(e),
    }
}

/// Awaits every future of `futures`, polling them in their order each time (the first
/// time included): a pipelining client sends a request at its future's first poll, so
/// the server receives them in this order. (`join_all` promises no order past a few
/// dozen futures.)
async fn in_order<F: std::future::Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut futures: Vec<_> = futures
        .into_iter()
        .map(|f| Box::pin(futures_util::future::maybe_done(f)))
        .collect();
    std::future::poll_fn(|cx| {
        let mut done = true;
        for f in &mut futures {
            done &= f.as_mut().poll(cx).is_ready();
        }
        if done { Poll::Ready(()) } else { Poll::Pending }
    })
    .await;
    futures
        .iter_mut()
        .map(|f| f.as_mut().take_output().expect("every future is done"))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use futures_util::stream::{self, Stream, StreamExt};

    use super::*;

    /// `items` numbers, each after `gap`, then nothing ever again.
    fn every(gap: Duration, items: usize) -> impl Stream<Item = usize> + Unpin {
        let numbers = stream::unfold(0, move |i| async move {
            if i == items {
                return None;
            }
            tokio::time::sleep(gap).await;
            Some((i, i + 1))
        });
        Box::pin(numbers.chain(stream::pending()))
    }

    #[test]
    fn page_ranges_are_scanned_as_ranges_from_postgresql_14() {
        assert_eq!(page_range_scan(90_624), PageRangeScan::WholeTable);
        assert_eq!(page_range_scan(130_016), PageRangeScan::WholeTable);
        assert_eq!(page_range_scan(140_000), PageRangeScan::TidRange);
        assert_eq!(page_range_scan(150_004), PageRangeScan::TidRange);
        assert_eq!(page_range_scan(180_000), PageRangeScan::TidRange);
    }

    #[tokio::test]
    async fn a_stall_is_reported_between_the_limit_and_a_quarter_more() {
        let limit = Duration::from_millis(200);
        let alive = AtomicBool::new(false);
        // The next item, marking the stream alive as the COPY drain does.
        async fn next(
            watchdog: &mut Watchdog,
            alive: &AtomicBool,
            stream: &mut (impl Stream<Item = usize> + Unpin),
        ) -> Result<Option<usize>, Duration> {
            let item = async {
                let item = stream.next().await;
                alive.store(true, Ordering::Relaxed);
                item
            };
            watchdog.watch(alive, item).await
        }
        // Gaps just under the limit, for several limits in all: never a stall.
        let mut steady = every(Duration::from_millis(150), 8);
        let mut watchdog = Watchdog::new(Some(limit));
        for i in 0..8 {
            assert_eq!(next(&mut watchdog, &alive, &mut steady).await, Ok(Some(i)));
        }
        // Then silence: reported no sooner than the limit after the last item, and no
        // later than a tick more (with room for a loaded machine).
        let last = Instant::now();
        assert_eq!(next(&mut watchdog, &alive, &mut steady).await, Err(limit));
        let waited = last.elapsed();
        assert!(waited >= limit, "reported after {waited:?}");
        assert!(
            waited <= limit + Watchdog::tick(limit) + Duration::from_millis(150),
            "reported after {waited:?}"
        );
    }
}
