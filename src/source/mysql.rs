//! MySQL and MariaDB: pooled sqlx connections, each task in
//! `START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY` with the session's time zone
//! at UTC (TIMESTAMP values arrive in UTC) and the server's own statement timeout
//! (`max_statement_time` on MariaDB, `max_execution_time` on MySQL) behind the
//! client's deadline. The query runs as a prepared statement, its parameters bound, and
//! its rows stream in the binary protocol straight into Arrow builders, a batch at a
//! time: the result is never held whole.
//!
//! A task that does not finish (error, deadline, SIGINT) stops its statement on the
//! server with `KILL QUERY <connection id>` sent over a second connection, and its
//! connection is closed rather than returned to the pool.
//!
//! MySQL cannot share a snapshot between connections: each partition of a shard reads
//! its own consistent snapshot, taken when its task starts, so partitions may see
//! different moments of a shard that is being written; unless the job says
//! `snapshot = "lock"`, where the partitions' transactions all start under one
//! `FLUSH TABLES WITH READ LOCK` before any task runs ([`MysqlShard::hold_snapshots`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arrow::array::{
    ArrayBuilder, ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder,
    DurationMicrosecondBuilder, FixedSizeBinaryBuilder, Float32Builder, Float64Builder,
    Int8Builder, Int16Builder, Int32Builder, Int64Builder, NullBuilder, RecordBatch, StringBuilder,
    TimestampMicrosecondBuilder, UInt8Builder, UInt16Builder, UInt32Builder, UInt64Builder,
};
use arrow::datatypes::{Schema, SchemaRef};
use futures_util::TryStreamExt;
use sqlx::mysql::{
    MySql, MySqlArguments, MySqlConnectOptions, MySqlConnection, MySqlDatabaseError,
    MySqlPoolOptions, MySqlRow, MySqlSslMode, MySqlTypeInfo,
};
use sqlx::pool::PoolConnection;
use sqlx::{Column, ConnectOptions, Connection, Executor, MySqlPool, Row, SqlSafeStr, Statement};

use crate::config::mysql::{MysqlSource, MysqlSslMode};
use crate::error::{TaskError, TaskErrorKind};
use crate::plan::window::Mark;
use crate::sql::{KeyValue, ParamValue, quote_ident_mysql};
use crate::types::{InfinityMode, MysqlColumnType, MysqlKind, TypeRules};

use super::postgres::{Watchdog, within};
use super::{BATCH_BYTES, Cancels, TaskContext, check_unique_names};

/// Margin added to the client deadline for the server's own statement timeout: the
/// client kills the statement first; the server stops it even if the kill is lost.
const SERVER_TIMEOUT_MARGIN: Duration = Duration::from_secs(2);

/// How long the kill of an abandoned statement may take (its own connection included).
const KILL_WAIT: Duration = Duration::from_secs(2);

/// Opens every task's transaction: a consistent snapshot (InnoDB reads as of its start,
/// not as of the first read), refusing writes.
const BEGIN: &str = "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY";

pub struct MysqlShard {
    name: String,
    target: String,
    options: MySqlConnectOptions,
    pool: MySqlPool,
    size: usize,
    types: Arc<TypeRules>,
    /// `snapshot = "lock"`: hold the partitions' snapshots ([`MysqlShard::hold_snapshots`]).
    lock: bool,
    /// The transactions started together under the lock, one per partition, each taken
    /// by the first attempt of a task; `None` unless the shard's snapshots are held.
    held: std::sync::Mutex<Option<Vec<MySqlConnection>>>,
}

/// MySQL's and MariaDB's ways of bounding a statement's time differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavor {
    /// `max_execution_time`, in milliseconds, for SELECT statements.
    Mysql,
    /// `max_statement_time`, in seconds.
    Mariadb,
}

impl MysqlShard {
    pub fn new(
        name: &str,
        source: &MysqlSource,
        size: usize,
        connect_timeout: Duration,
        types: Arc<TypeRules>,
        lock: bool,
    ) -> MysqlShard {
        let options = connect_options(source);
        let pool = MySqlPoolOptions::new()
            .max_connections(size as u32)
            .acquire_timeout(connect_timeout)
            .connect_lazy_with(options.clone());
        MysqlShard {
            name: name.to_string(),
            target: source.display(),
            options,
            pool,
            size,
            types,
            lock,
            held: std::sync::Mutex::new(None),
        }
    }

    /// `snapshot = "lock"`: starts `n` transactions, one for each of the shard's
    /// partitions, while `FLUSH TABLES WITH READ LOCK` holds every write back (as
    /// mydumper does), so that they all read one state; each task then reads in one of
    /// them. The connections are opened first, so the lock lasts only as long as the
    /// `START TRANSACTION`s. Needs the RELOAD privilege. Does nothing unless the job
    /// asked for it.
    pub async fn hold_snapshots(&self, n: usize) -> Result<(), TaskError> {
        if !self.lock {
            return Ok(());
        }
        let connect = || async {
            self.options.connect().await.map_err(|e| {
                self.error(TaskErrorKind::Connect {
                    target: self.target.clone(),
                    message: describe(&e),
                    transient: false,
                })
            })
        };
        let server = |e| self.server(e, None);
        let mut control = connect().await?;
        let mut held = Vec::with_capacity(n);
        for _ in 0..n {
            held.push(connect().await?);
        }
        // Writes wait while the lock is held: not for long, and never for ever.
        sqlx::raw_sql("SET SESSION lock_wait_timeout = 30")
            .execute(&mut control)
            .await
            .map_err(server)?;
        sqlx::raw_sql("FLUSH TABLES WITH READ LOCK")
            .execute(&mut control)
            .await
            .map_err(|e| {
                let mut error = self.server(e, None);
                if let TaskErrorKind::Mysql { message, .. } = &mut error.kind {
                    message.push_str(
                        "; snapshot = \"lock\" needs the RELOAD privilege (FLUSH TABLES WITH READ LOCK)",
                    );
                }
                error
            })?;
        let mut started = Ok(());
        for conn in &mut held {
            if let Err(e) = sqlx::raw_sql(BEGIN).execute(&mut *conn).await {
                started = Err(server(e));
                break;
            }
        }
        let unlocked = sqlx::raw_sql("UNLOCK TABLES").execute(&mut control).await;
        drop(control);
        started?;
        unlocked.map_err(server)?;
        *self.held.lock().expect("not poisoned") = Some(held);
        Ok(())
    }

    pub fn size(&self) -> usize {
        self.size
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the job asked for `snapshot = "lock"`.
    pub fn locks(&self) -> bool {
        self.lock
    }

    pub fn close(&self) {
        let pool = self.pool.clone();
        tokio::spawn(async move { pool.close().await });
    }

    fn error(&self, kind: TaskErrorKind) -> TaskError {
        TaskError::new(&self.name, kind)
    }

    async fn connection(&self) -> Result<PoolConnection<MySql>, TaskError> {
        self.pool.acquire().await.map_err(|e| {
            let transient = match &e {
                sqlx::Error::Database(d) => d
                    .try_downcast_ref::<MySqlDatabaseError>()
                    .is_some_and(|m| crate::error::mysql_transient(m.number())),
                // A refused certificate reaches sqlx as an I/O error; it will not change
                // on its own.
                sqlx::Error::Io(io) => !refused_certificate(io),
                sqlx::Error::PoolTimedOut => true,
                _ => false,
            };
            self.error(TaskErrorKind::Connect {
                target: self.target.clone(),
                message: describe(&e),
                transient,
            })
        })
    }

    /// The result columns of `sql` and how each is read, from the server's description
    /// of the prepared statement (nothing runs).
    async fn columns(
        &self,
        conn: &mut MySqlConnection,
        sql: &str,
    ) -> Result<Vec<ColumnPlan>, TaskError> {
        let statement = conn
            .prepare(sqlx::AssertSqlSafe(sql.to_string()).into_sql_str())
            .await
            .map_err(|e| self.server(e, None))?;
        let columns: Vec<ColumnPlan> = statement
            .columns()
            .iter()
            .map(|c| {
                let t = column_type(c.type_info());
                let options = self.types.for_column(c.name());
                let kind = MysqlKind::of(&t, options.uuid).ok_or_else(|| {
                    self.error(TaskErrorKind::UnsupportedType {
                        column: c.name().to_string(),
                        type_name: t.name(),
                        hint: Some("cast it to CHAR or BINARY in the query".into()),
                    })
                })?;
                Ok(ColumnPlan {
                    name: c.name().to_string(),
                    wire: t,
                    kind,
                    zero_dates: options.infinity,
                })
            })
            .collect::<Result<_, TaskError>>()?;
        check_unique_names(columns.iter().map(|c| c.name.as_str())).map_err(|e| {
            self.error(TaskErrorKind::Schema {
                message: e.to_string(),
            })
        })?;
        Ok(columns)
    }

    /// The query's result schema, without running it.
    pub async fn describe(&self, sql: &str) -> Result<SchemaRef, TaskError> {
        let mut conn = self.connection().await?;
        let columns = self.columns(&mut conn, sql).await?;
        Ok(schema(&columns))
    }

    /// The query's columns and how each is read, without running it.
    pub async fn column_kinds(&self, sql: &str) -> Result<Vec<(String, MysqlKind)>, TaskError> {
        let mut conn = self.connection().await?;
        let columns = self.columns(&mut conn, sql).await?;
        Ok(columns.into_iter().map(|c| (c.name, c.kind)).collect())
    }

    /// What `tributary check` reports: the server and its version, the connection's
    /// encryption, the account and what it may change, and the query's columns.
    pub async fn facts(&self, sql: Option<&str>) -> Result<super::ShardFacts, TaskError> {
        let mut conn = self.connection().await?;
        let server = |e| self.server(e, None);
        let (version, comment, user): (String, String, String) =
            sqlx::query_as("SELECT VERSION(), @@version_comment, CURRENT_USER()")
                .fetch_one(&mut *conn)
                .await
                .map_err(server)?;
        let status: Vec<(String, String)> = sqlx::query_as(
            "SHOW SESSION STATUS WHERE Variable_name IN ('Ssl_version', 'Ssl_cipher')",
        )
        .fetch_all(&mut *conn)
        .await
        .map_err(server)?;
        let status = |name: &str| {
            status
                .iter()
                .find(|(n, v)| n == name && !v.is_empty())
                .map(|(_, v)| v.clone())
        };
        let grants: Vec<(String,)> = sqlx::query_as("SHOW GRANTS")
            .fetch_all(&mut *conn)
            .await
            .map_err(server)?;
        let columns = match sql {
            None => Vec::new(),
            Some(sql) => self
                .columns(&mut conn, sql)
                .await?
                .iter()
                .map(|c| super::ColumnFacts {
                    name: c.name.clone(),
                    source_type: c.wire.name(),
                    arrow_type: crate::types::describe_field(&c.kind.field(&c.name)),
                })
                .collect(),
        };
        let protocol = status("Ssl_version");
        Ok(super::ShardFacts {
            server: format!("{comment} {version}"),
            tls: Some(super::TlsFacts {
                encrypted: protocol.is_some(),
                protocol,
                cipher: status("Ssl_cipher"),
            }),
            role: Some(user),
            can_write: grants
                .into_iter()
                .map(|(g,)| g)
                .filter(|g| writes(g))
                .collect(),
            columns,
        })
    }

    pub async fn run(
        &self,
        sql: &str,
        binds: &[ParamValue],
        ctx: &TaskContext,
    ) -> Result<u64, TaskError> {
        // A retry must not take another partition's transaction: that one would then
        // find none left.
        let retry = ctx.snapshot_imported.load(Ordering::Relaxed);
        let held = self
            .held
            .lock()
            .expect("not poisoned")
            .as_mut()
            .map(|held| if retry { None } else { held.pop() });
        if let Some(Some(_)) = &held {
            ctx.snapshot_imported.store(true, Ordering::Relaxed);
        }
        let conn = match held {
            None => Conn::Pooled(self.connection().await?),
            Some(Some(conn)) => Conn::Held(conn),
            Some(None) => {
                return Err(self.error(TaskErrorKind::SnapshotLost {
                    message: "snapshot = \"lock\": the partition's transaction, started with the others under the lock, ended with its failed attempt, and MySQL cannot start another at the same moment".into(),
                }));
            }
        };
        let mut checkout = Checkout {
            conn: Some(conn),
            id: None,
            options: self.options.clone(),
            cancels: ctx.cancels.clone(),
        };
        let rows = self.stream(&mut checkout, sql, binds, ctx).await?;
        checkout.release();
        Ok(rows)
    }

    async fn stream(
        &self,
        checkout: &mut Checkout,
        sql: &str,
        binds: &[ParamValue],
        ctx: &TaskContext,
    ) -> Result<u64, TaskError> {
        let stalled = |after| self.error(TaskErrorKind::Stalled { after });
        let begin = matches!(checkout.conn, Some(Conn::Pooled(_)));
        let id = within(ctx.stall, self.begin(checkout.conn(), ctx, begin))
            .await
            .map_err(stalled)??;
        checkout.id = Some(id);
        let conn = checkout.conn();
        let columns = within(ctx.stall, self.columns(conn, sql))
            .await
            .map_err(stalled)??;
        let mut batcher = Batcher::new(columns);
        ctx.sender.schema(batcher.schema.clone());

        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.to_string()));
        for value in binds {
            query = bind(query, value);
        }
        let mut rows = query.fetch(&mut *conn);
        let mut sent = 0u64;
        let mut watchdog = Watchdog::new(ctx.stall);
        let alive = AtomicBool::new(false);
        let mut checked = false;
        loop {
            // Read rows until a batch is full or the result ends; the watchdog gives up
            // once no row has arrived for the stall limit.
            let drained = async {
                while let Some(row) = rows
                    .try_next()
                    .await
                    .map_err(|e| self.server(e, Some(ctx)))?
                {
                    alive.store(true, Ordering::Relaxed);
                    if !checked {
                        batcher.check_wire(&row).map_err(|e| self.decode_error(e))?;
                        checked = true;
                    }
                    batcher.push(&row).map_err(|e| self.decode_error(e))?;
                    if batcher.rows >= ctx.batch_size || batcher.bytes >= BATCH_BYTES {
                        return Ok::<bool, TaskError>(false);
                    }
                }
                Ok(true)
            };
            let ended = watchdog.watch(&alive, drained).await.map_err(stalled)??;
            sent += self.send(&mut batcher, ctx).await?;
            if ended {
                break;
            }
        }
        drop(rows);
        within(ctx.stall, sqlx::raw_sql("COMMIT").execute(&mut *conn))
            .await
            .map_err(stalled)?
            .map_err(|e| self.server(e, Some(ctx)))?;
        Ok(sent)
    }

    /// Opens a task's transaction after bounding its statements' time on the server;
    /// returns the connection's id (for `KILL QUERY`).
    /// (A held transaction, `begin` false, is already open: the settings apply to it.)
    async fn begin(
        &self,
        conn: &mut MySqlConnection,
        ctx: &TaskContext,
        begin: bool,
    ) -> Result<u64, TaskError> {
        let server = |e| self.server(e, Some(ctx));
        let (id, version): (u64, String) = sqlx::query_as("SELECT CONNECTION_ID(), VERSION()")
            .fetch_one(&mut *conn)
            .await
            .map_err(server)?;
        let flavor = if version.contains("MariaDB") {
            Flavor::Mariadb
        } else {
            Flavor::Mysql
        };
        // Set for every task (0: no limit), as a pooled session keeps what the last
        // task set.
        let limit = ctx
            .deadline
            .map(|d| d + ctx.server_slack + SERVER_TIMEOUT_MARGIN);
        let set = match flavor {
            Flavor::Mariadb => format!(
                "SET SESSION max_statement_time = {:.3}",
                limit.map_or(0.0, |l| l.as_secs_f64())
            ),
            Flavor::Mysql => format!(
                "SET SESSION max_execution_time = {}",
                limit.map_or(0, |l| l.as_millis())
            ),
        };
        sqlx::raw_sql(sqlx::AssertSqlSafe(set))
            .execute(&mut *conn)
            .await
            .map_err(server)?;
        if begin {
            sqlx::raw_sql(BEGIN)
                .execute(&mut *conn)
                .await
                .map_err(server)?;
        }
        Ok(id)
    }

    async fn send(&self, batcher: &mut Batcher, ctx: &TaskContext) -> Result<u64, TaskError> {
        let batch = batcher.take().map_err(|e| self.decode_error(e))?;
        let n = batch.num_rows() as u64;
        if n > 0 {
            ctx.sender.batch(batch).await;
            (ctx.on_rows)(n);
        }
        Ok(n)
    }

    /// Runs `probe` (one row) over the query inside a consistent snapshot of its own:
    /// MySQL cannot hand a snapshot to another connection, so a probe reads the state
    /// of its own moment, as each partition does.
    async fn probe_row(&self, probe: String, binds: &[ParamValue]) -> Result<MySqlRow, TaskError> {
        let mut conn = self.connection().await?;
        let server = |e| self.server(e, None);
        sqlx::raw_sql(BEGIN)
            .execute(&mut *conn)
            .await
            .map_err(server)?;
        let mut query = sqlx::query(sqlx::AssertSqlSafe(probe));
        for value in binds {
            query = bind(query, value);
        }
        let row = query.fetch_one(&mut *conn).await.map_err(server)?;
        sqlx::raw_sql("COMMIT")
            .execute(&mut *conn)
            .await
            .map_err(server)?;
        Ok(row)
    }

    /// The smallest and largest key of the query's result (`None` when no key is
    /// non-NULL): integers, dates, DATETIME and TIMESTAMP.
    pub async fn probe_range(
        &self,
        sql: &str,
        binds: &[ParamValue],
        column: &str,
    ) -> Result<Option<(KeyValue, KeyValue)>, TaskError> {
        let c = quote_ident_mysql(column);
        let row = self
            .probe_row(
                format!("SELECT MIN({c}), MAX({c}) FROM (\n{sql}\n) AS tributary_probe"),
                binds,
            )
            .await?;
        let min = self.key(&row, 0, column, "range partitions")?;
        let max = self.key(&row, 1, column, "range partitions")?;
        Ok(min.zip(max))
    }

    /// The largest value of `column` in the query's result, as an incremental job's mark.
    pub async fn probe_mark(
        &self,
        sql: &str,
        binds: &[ParamValue],
        column: &str,
    ) -> Result<Option<Mark>, TaskError> {
        let c = quote_ident_mysql(column);
        let row = self
            .probe_row(
                format!("SELECT MAX({c}) FROM (\n{sql}\n) AS tributary_probe"),
                binds,
            )
            .await?;
        Ok(self
            .key(&row, 0, column, "[incremental]")?
            .map(Mark::of_key))
    }

    /// Value `i` of a probe's row as a range key.
    fn key(
        &self,
        row: &MySqlRow,
        i: usize,
        column: &str,
        purpose: &str,
    ) -> Result<Option<KeyValue>, TaskError> {
        let t = column_type(row.columns()[i].type_info());
        let bytes = row
            .try_get_raw(i)
            .map_err(|e| self.server(e, None))?
            .raw_bytes();
        let Some(bytes) = bytes else {
            return Ok(None);
        };
        let refuse = |why: String| {
            self.error(TaskErrorKind::Partition {
                message: format!("{purpose} on `{column}`: {why}"),
            })
        };
        let key = match MysqlKind::of(&t, crate::types::UuidMode::Binary) {
            Some(
                MysqlKind::Int8
                | MysqlKind::Int16
                | MysqlKind::Int32
                | MysqlKind::Int64
                | MysqlKind::UInt8
                | MysqlKind::UInt16
                | MysqlKind::UInt32
                | MysqlKind::Year,
            ) => KeyValue::Int(integer(bytes, false).map_err(|e| refuse(e.to_string()))? as i64),
            Some(MysqlKind::UInt64) => {
                let v = integer(bytes, true).map_err(|e| refuse(e.to_string()))?;
                KeyValue::Int(
                    i64::try_from(v).map_err(|_| refuse(format!("{v} is past BIGINT's range")))?,
                )
            }
            Some(MysqlKind::Date) => match date(bytes).map_err(|e| refuse(e.to_string()))? {
                Some(d) => KeyValue::Date(d),
                None => return Err(refuse("a zero date has no place in a range".into())),
            },
            Some(kind @ (MysqlKind::Datetime | MysqlKind::Timestamp)) => {
                match datetime(bytes).map_err(|e| refuse(e.to_string()))? {
                    Some(micros) => KeyValue::Timestamp {
                        micros,
                        utc: kind == MysqlKind::Timestamp,
                    },
                    None => return Err(refuse("a zero date has no place in a range".into())),
                }
            }
            _ => {
                return Err(refuse(format!(
                    "the key must be an integer, a date or a timestamp, not {}",
                    t.name()
                )));
            }
        };
        Ok(Some(key))
    }

    fn decode_error(&self, e: ColumnError) -> TaskError {
        self.error(TaskErrorKind::Decode {
            column: e.column,
            message: e.message,
        })
    }

    /// A task's error for a failed statement; `ctx` tells a server-side timeout from
    /// other errors.
    fn server(&self, e: sqlx::Error, ctx: Option<&TaskContext>) -> TaskError {
        self.error(classify(&e, ctx.and_then(|c| c.deadline)))
    }
}

/// How one column is read.
#[derive(Debug, Clone)]
struct ColumnPlan {
    name: String,
    /// What the server said of the column when the statement was prepared.
    wire: MysqlColumnType,
    kind: MysqlKind,
    /// What a zero date becomes (the `infinity` option).
    zero_dates: InfinityMode,
}

fn schema(columns: &[ColumnPlan]) -> SchemaRef {
    Arc::new(Schema::new(
        columns
            .iter()
            .map(|c| c.kind.field(&c.name))
            .collect::<Vec<_>>(),
    ))
}

/// The protocol metadata sqlx keeps of a column (vendor/sqlx-mysql exposes it).
fn column_type(t: &MySqlTypeInfo) -> MysqlColumnType {
    MysqlColumnType {
        code: t.type_code(),
        flags: t.flag_bits(),
        collation: t.collation_id(),
        length: t.length().unwrap_or(0),
        decimals: t.decimals(),
        extended: t.extended_type().to_ascii_lowercase(),
        format: t.extended_format().to_ascii_lowercase(),
    }
}

fn connect_options(source: &MysqlSource) -> MySqlConnectOptions {
    let mut options = MySqlConnectOptions::new()
        .host(&source.host)
        .port(source.port)
        .username(&source.user)
        .ssl_mode(match source.ssl_mode {
            MysqlSslMode::Disabled => MySqlSslMode::Disabled,
            MysqlSslMode::Preferred => MySqlSslMode::Preferred,
            MysqlSslMode::Required => MySqlSslMode::Required,
            MysqlSslMode::VerifyCa => MySqlSslMode::VerifyCa,
            MysqlSslMode::VerifyIdentity => MySqlSslMode::VerifyIdentity,
        })
        .charset("utf8mb4")
        // TIMESTAMP values are sent in the session's time zone: UTC, so that they are
        // instants without knowing the server's zone.
        .timezone(Some("+00:00".to_string()))
        // sqlx adds PIPES_AS_CONCAT and NO_ENGINE_SUBSTITUTION to the session's
        // sql_mode by default; the user's query must mean what it means in their own
        // client (`||` is OR unless the server says otherwise).
        .pipes_as_concat(false)
        .no_engine_substitution(false)
        // sqlx logs every statement at DEBUG: ours hold no secret, but the user's SQL
        // belongs in our own messages, not the driver's.
        .disable_statement_logging();
    if let Some(password) = &source.password {
        options = options.password(password.expose());
    }
    if let Some(socket) = &source.socket {
        options = options.socket(socket);
    }
    if let Some(db) = &source.database {
        options = options.database(db);
    }
    if let Some(ca) = &source.ssl_ca {
        options = options.ssl_ca(ca);
    }
    options
}

type Query<'q> = sqlx::query::Query<'q, MySql, MySqlArguments>;

fn bind<'q>(query: Query<'q>, value: &ParamValue) -> Query<'q> {
    match value {
        ParamValue::Text(s) => query.bind(s.clone()),
        ParamValue::Int(i) => query.bind(*i),
        ParamValue::Float(f) => query.bind(*f),
        ParamValue::Bool(b) => query.bind(*b),
    }
}

/// Whether a `SHOW GRANTS` line lets the account change data or schema.
fn writes(grant: &str) -> bool {
    let privileges = grant
        .strip_prefix("GRANT ")
        .and_then(|g| g.split(" ON ").next())
        .unwrap_or("");
    privileges.split(',').any(|p| {
        let p = p.trim().to_ascii_uppercase();
        p.starts_with("ALL")
            || [
                "INSERT", "UPDATE", "DELETE", "CREATE", "DROP", "ALTER", "INDEX", "EXECUTE",
                "TRIGGER", "EVENT",
            ]
            .iter()
            .any(|w| p.starts_with(w) && !p.starts_with("CREATE TEMPORARY"))
    })
}

/// A pooled connection in use by a task. Dropped before [`Checkout::release`] (an
/// error, a deadline, SIGINT), it kills the running statement from a second connection
/// and closes its own instead of returning it to the pool, where the next task would
/// wait behind the abandoned result.
#[must_use = "release() returns the connection to the pool; dropping it kills the statement"]
struct Checkout {
    conn: Option<Conn>,
    /// The connection's id on the server, once known.
    id: Option<u64>,
    /// For the connection that sends `KILL QUERY`.
    options: MySqlConnectOptions,
    cancels: Cancels,
}

impl Checkout {
    fn conn(&mut self) -> &mut MySqlConnection {
        match self.conn.as_mut().expect("present until release or drop") {
            Conn::Pooled(c) => c,
            Conn::Held(c) => c,
        }
    }

    fn release(&mut self) {
        self.conn.take();
    }
}

impl Drop for Checkout {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        let id = self.id;
        let options = self.options.clone();
        self.cancels.spawn(async move {
            if let Some(id) = id {
                let _ = tokio::time::timeout(KILL_WAIT, kill_query(&options, id)).await;
            }
            // Out of the pool for good (the pool may open another in its place only
            // once the kill is done, so the server never sees more of our connections
            // than the pool allows, the killer aside); closing the socket ends the
            // session.
            match conn {
                Conn::Pooled(c) => drop(c.detach()),
                Conn::Held(c) => drop(c),
            }
        });
    }
}

/// A task's connection: from the pool, or one of the transactions held under the lock
/// (closed when the task is done).
enum Conn {
    Pooled(PoolConnection<MySql>),
    Held(MySqlConnection),
}

/// Stops connection `id`'s statement from a new connection.
async fn kill_query(options: &MySqlConnectOptions, id: u64) {
    if let Ok(mut killer) = options.connect().await {
        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!("KILL QUERY {id}")))
            .execute(&mut killer)
            .await;
        let _ = killer.close().await;
    }
}

/// Whether an I/O error is rustls refusing the server (its certificate, the handshake).
fn refused_certificate(e: &std::io::Error) -> bool {
    e.get_ref()
        .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
}

/// The message of a sqlx error, with its sources.
fn describe(e: &sqlx::Error) -> String {
    match e.as_database_error() {
        Some(d) => d.message().to_string(),
        None => crate::error::chain(e),
    }
}

/// A task error kind for a failed statement.
fn classify(e: &sqlx::Error, deadline: Option<Duration>) -> TaskErrorKind {
    if let Some(d) = e.as_database_error() {
        if let Some(m) = d.try_downcast_ref::<MySqlDatabaseError>() {
            let code = m.number();
            // 1969: MariaDB's max_statement_time; 3024: MySQL's max_execution_time.
            if matches!(code, 1969 | 3024)
                && let Some(after) = deadline
            {
                return TaskErrorKind::Timeout { after };
            }
            if matches!(code, 1053 | 1927 | 2006 | 2013) {
                return TaskErrorKind::ConnectionLost {
                    message: format!("{} (MySQL error {code})", m.message()),
                };
            }
            return TaskErrorKind::Mysql {
                code,
                sqlstate: m.code().unwrap_or("HY000").to_string(),
                message: m.message().to_string(),
            };
        }
        return TaskErrorKind::Server {
            sqlstate: d.code().map(|c| c.into_owned()),
            message: d.message().to_string(),
        };
    }
    match e {
        sqlx::Error::Io(_) | sqlx::Error::Protocol(_) | sqlx::Error::Tls(_) => {
            TaskErrorKind::ConnectionLost {
                message: describe(e),
            }
        }
        _ => TaskErrorKind::Server {
            sqlstate: None,
            message: describe(e),
        },
    }
}

/// A value that could not be put in its column.
#[derive(Debug)]
struct ColumnError {
    column: String,
    message: String,
}

/// Why a value could not be decoded.
#[derive(Debug, thiserror::Error)]
enum ValueError {
    #[error("{0} bytes do not hold a {1}")]
    Length(usize, &'static str),
    #[error(
        "the zero date {0} has no value in Arrow; set the `infinity` type option to `null` to read zero dates as NULL"
    )]
    ZeroDate(String),
    #[error("the server sent {0:?}, which is not a {1}")]
    Text(String, &'static str),
    #[error("{0} does not fit {1}")]
    Range(String, &'static str),
    #[error("a BOOL (TINYINT(1)) column holds {0}; cast it to SIGNED to read it as a number")]
    NotBool(i8),
    #[error("text that is not UTF-8")]
    Utf8,
}

/// A little-endian integer of 1, 2, 4 or 8 bytes, as the binary protocol sends them;
/// `unsigned` reads the top bit as a digit.
fn integer(v: &[u8], unsigned: bool) -> Result<i128, ValueError> {
    Ok(match (v.len(), unsigned) {
        (1, false) => v[0] as i8 as i128,
        (1, true) => v[0] as i128,
        (2, false) => i16::from_le_bytes([v[0], v[1]]) as i128,
        (2, true) => u16::from_le_bytes([v[0], v[1]]) as i128,
        (4, false) => i32::from_le_bytes(v.try_into().expect("4 bytes")) as i128,
        (4, true) => u32::from_le_bytes(v.try_into().expect("4 bytes")) as i128,
        (8, false) => i64::from_le_bytes(v.try_into().expect("8 bytes")) as i128,
        (8, true) => u64::from_le_bytes(v.try_into().expect("8 bytes")) as i128,
        (n, _) => return Err(ValueError::Length(n, "integer")),
    })
}

/// Days since 1970-01-01 of a DATE (`[len, year lo, year hi, month, day, ..]`);
/// `None` for a zero date or a date with a zero month or day.
fn date(v: &[u8]) -> Result<Option<i32>, ValueError> {
    let len = *v.first().ok_or(ValueError::Length(0, "date"))? as usize;
    if len == 0 {
        return Ok(None);
    }
    if len < 4 || v.len() < 5 {
        return Err(ValueError::Length(v.len(), "date"));
    }
    let year = u16::from_le_bytes([v[1], v[2]]) as i32;
    match chrono::NaiveDate::from_ymd_opt(year, v[3] as u32, v[4] as u32) {
        Some(d) => Ok(Some(
            (d - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid")).num_days() as i32,
        )),
        None if v[3] == 0 || v[4] == 0 => Ok(None),
        None => Err(ValueError::Range(
            format!("{year:04}-{:02}-{:02}", v[3], v[4]),
            "a date",
        )),
    }
}

/// Microseconds since 1970-01-01 of a DATETIME or TIMESTAMP (`[len, date, h, m, s,
/// micros]`, shorter when the tail is zero); `None` for a zero date.
fn datetime(v: &[u8]) -> Result<Option<i64>, ValueError> {
    let len = *v.first().ok_or(ValueError::Length(0, "datetime"))? as usize;
    if v.len() != len + 1 || !matches!(len, 0 | 4 | 7 | 11) {
        return Err(ValueError::Length(v.len(), "datetime"));
    }
    let Some(days) = date(v)? else {
        return Ok(None);
    };
    let (h, m, s) = if len >= 7 {
        (v[5] as i64, v[6] as i64, v[7] as i64)
    } else {
        (0, 0, 0)
    };
    let micros = if len == 11 {
        u32::from_le_bytes([v[8], v[9], v[10], v[11]]) as i64
    } else {
        0
    };
    Ok(Some(
        days as i64 * 86_400_000_000 + ((h * 60 + m) * 60 + s) * 1_000_000 + micros,
    ))
}

/// A TIME as signed microseconds (`[len, negative, days(4), h, m, s, micros(4)]`):
/// MySQL's TIME runs from -838:59:59 to 838:59:59, a duration rather than a time of day.
fn time(v: &[u8]) -> Result<i64, ValueError> {
    let len = *v.first().ok_or(ValueError::Length(0, "time"))? as usize;
    if v.len() != len + 1 || !matches!(len, 0 | 8 | 12) {
        return Err(ValueError::Length(v.len(), "time"));
    }
    if len == 0 {
        return Ok(0);
    }
    let negative = v[1] == 1;
    let days = u32::from_le_bytes([v[2], v[3], v[4], v[5]]) as i64;
    let (h, m, s) = (v[6] as i64, v[7] as i64, v[8] as i64);
    let micros = if len == 12 {
        u32::from_le_bytes([v[9], v[10], v[11], v[12]]) as i64
    } else {
        0
    };
    let total = (((days * 24 + h) * 60 + m) * 60 + s) * 1_000_000 + micros;
    Ok(if negative { -total } else { total })
}

/// A DECIMAL's text (`-123.4500`) as an integer of `scale` digits after the point.
fn decimal(text: &str, scale: i8) -> Result<i128, ValueError> {
    let bad = || ValueError::Text(text.to_string(), "decimal");
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() && fraction.is_empty()
        || !whole
            .bytes()
            .chain(fraction.bytes())
            .all(|b| b.is_ascii_digit())
        || fraction.len() > scale.max(0) as usize
    {
        return Err(bad());
    }
    let mut value: i128 = 0;
    for b in whole.bytes().chain(fraction.bytes()) {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add((b - b'0') as i128))
            .ok_or_else(|| ValueError::Range(text.to_string(), "Decimal128"))?;
    }
    for _ in fraction.len()..scale.max(0) as usize {
        value = value
            .checked_mul(10)
            .ok_or_else(|| ValueError::Range(text.to_string(), "Decimal128"))?;
    }
    Ok(if negative { -value } else { value })
}

/// A UUID, as MariaDB sends it (its text) or as 16 bytes.
fn uuid_bytes(v: &[u8]) -> Result<[u8; 16], ValueError> {
    if let Ok(bytes) = <[u8; 16]>::try_from(v) {
        return Ok(bytes);
    }
    let text = std::str::from_utf8(v).map_err(|_| ValueError::Utf8)?;
    uuid::Uuid::parse_str(text)
        .map(|u| *u.as_bytes())
        .map_err(|_| ValueError::Text(text.to_string(), "UUID"))
}

/// One column's Arrow builder.
enum Builder {
    Null(NullBuilder),
    Bool(BooleanBuilder),
    Int8(Int8Builder),
    Int16(Int16Builder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    UInt8(UInt8Builder),
    UInt16(UInt16Builder),
    UInt32(UInt32Builder),
    UInt64(UInt64Builder),
    Float32(Float32Builder),
    Float64(Float64Builder),
    Decimal(Decimal128Builder, i8),
    Text(StringBuilder),
    Binary(BinaryBuilder),
    Uuid(FixedSizeBinaryBuilder),
    Date(Date32Builder),
    Timestamp(TimestampMicrosecondBuilder),
    Duration(DurationMicrosecondBuilder),
}

impl Builder {
    fn new(kind: MysqlKind) -> Builder {
        match kind {
            MysqlKind::Null => Builder::Null(NullBuilder::new()),
            MysqlKind::Bool => Builder::Bool(BooleanBuilder::new()),
            MysqlKind::Int8 => Builder::Int8(Int8Builder::new()),
            MysqlKind::Int16 | MysqlKind::Year => Builder::Int16(Int16Builder::new()),
            MysqlKind::Int32 => Builder::Int32(Int32Builder::new()),
            MysqlKind::Int64 => Builder::Int64(Int64Builder::new()),
            MysqlKind::UInt8 => Builder::UInt8(UInt8Builder::new()),
            MysqlKind::UInt16 => Builder::UInt16(UInt16Builder::new()),
            MysqlKind::UInt32 => Builder::UInt32(UInt32Builder::new()),
            MysqlKind::UInt64 | MysqlKind::Bit => Builder::UInt64(UInt64Builder::new()),
            MysqlKind::Float32 => Builder::Float32(Float32Builder::new()),
            MysqlKind::Float64 => Builder::Float64(Float64Builder::new()),
            MysqlKind::Decimal { precision, scale } => Builder::Decimal(
                Decimal128Builder::new()
                    .with_precision_and_scale(precision, scale)
                    .expect("checked by MysqlKind::of"),
                scale,
            ),
            MysqlKind::DecimalText
            | MysqlKind::Text
            | MysqlKind::Json
            | MysqlKind::Uuid(crate::types::UuidMode::String) => {
                Builder::Text(StringBuilder::new())
            }
            MysqlKind::Uuid(_) => Builder::Uuid(FixedSizeBinaryBuilder::new(16)),
            MysqlKind::Binary | MysqlKind::Geometry => Builder::Binary(BinaryBuilder::new()),
            MysqlKind::Date => Builder::Date(Date32Builder::new()),
            MysqlKind::Datetime => Builder::Timestamp(TimestampMicrosecondBuilder::new()),
            MysqlKind::Timestamp => {
                Builder::Timestamp(TimestampMicrosecondBuilder::new().with_timezone("UTC"))
            }
            MysqlKind::Time => Builder::Duration(DurationMicrosecondBuilder::new()),
        }
    }

    fn append_null(&mut self) {
        match self {
            Builder::Null(b) => b.append_null(),
            Builder::Bool(b) => b.append_null(),
            Builder::Int8(b) => b.append_null(),
            Builder::Int16(b) => b.append_null(),
            Builder::Int32(b) => b.append_null(),
            Builder::Int64(b) => b.append_null(),
            Builder::UInt8(b) => b.append_null(),
            Builder::UInt16(b) => b.append_null(),
            Builder::UInt32(b) => b.append_null(),
            Builder::UInt64(b) => b.append_null(),
            Builder::Float32(b) => b.append_null(),
            Builder::Float64(b) => b.append_null(),
            Builder::Decimal(b, _) => b.append_null(),
            Builder::Text(b) => b.append_null(),
            Builder::Binary(b) => b.append_null(),
            Builder::Uuid(b) => b.append_null(),
            Builder::Date(b) => b.append_null(),
            Builder::Timestamp(b) => b.append_null(),
            Builder::Duration(b) => b.append_null(),
        }
    }

    /// Appends one value of column `c`, as the binary protocol sent it.
    fn append(&mut self, c: &ColumnPlan, v: &[u8]) -> Result<(), ValueError> {
        let unsigned = matches!(
            c.kind,
            MysqlKind::UInt8 | MysqlKind::UInt16 | MysqlKind::UInt32 | MysqlKind::UInt64
        );
        let int = |target: &'static str| -> Result<i128, ValueError> {
            integer(v, unsigned).map_err(|_| ValueError::Length(v.len(), target))
        };
        let fits = |x: i128, target: &'static str| ValueError::Range(x.to_string(), target);
        // A zero date: NULL on request (the `infinity` option), else an error.
        let zero_null = c.zero_dates == InfinityMode::Null;
        let zero = || ValueError::ZeroDate(zero_text(c.kind, v));
        match self {
            Builder::Null(b) => b.append_null(),
            Builder::Bool(b) => match int("BOOL")? {
                0 => b.append_value(false),
                1 => b.append_value(true),
                other => return Err(ValueError::NotBool(other as i8)),
            },
            Builder::Int8(b) => {
                let x = int("TINYINT")?;
                b.append_value(i8::try_from(x).map_err(|_| fits(x, "Int8"))?)
            }
            Builder::Int16(b) => {
                let x = int("SMALLINT")?;
                b.append_value(i16::try_from(x).map_err(|_| fits(x, "Int16"))?)
            }
            Builder::Int32(b) => {
                let x = int("INT")?;
                b.append_value(i32::try_from(x).map_err(|_| fits(x, "Int32"))?)
            }
            Builder::Int64(b) => {
                let x = int("BIGINT")?;
                b.append_value(i64::try_from(x).map_err(|_| fits(x, "Int64"))?)
            }
            Builder::UInt8(b) => {
                let x = int("TINYINT UNSIGNED")?;
                b.append_value(u8::try_from(x).map_err(|_| fits(x, "UInt8"))?)
            }
            Builder::UInt16(b) => {
                let x = int("SMALLINT UNSIGNED")?;
                b.append_value(u16::try_from(x).map_err(|_| fits(x, "UInt16"))?)
            }
            Builder::UInt32(b) => {
                let x = int("INT UNSIGNED")?;
                b.append_value(u32::try_from(x).map_err(|_| fits(x, "UInt32"))?)
            }
            Builder::UInt64(b) if c.kind == MysqlKind::Bit => {
                // BIT(n): ceil(n / 8) bytes, big-endian.
                if v.len() > 8 {
                    return Err(ValueError::Length(v.len(), "BIT"));
                }
                b.append_value(v.iter().fold(0u64, |acc, x| (acc << 8) | *x as u64))
            }
            Builder::UInt64(b) => {
                let x = int("BIGINT UNSIGNED")?;
                b.append_value(u64::try_from(x).map_err(|_| fits(x, "UInt64"))?)
            }
            Builder::Float32(b) => match <[u8; 4]>::try_from(v) {
                Ok(bytes) => b.append_value(f32::from_le_bytes(bytes)),
                Err(_) => return Err(ValueError::Length(v.len(), "FLOAT")),
            },
            Builder::Float64(b) => match (<[u8; 8]>::try_from(v), <[u8; 4]>::try_from(v)) {
                (Ok(bytes), _) => b.append_value(f64::from_le_bytes(bytes)),
                (_, Ok(bytes)) => b.append_value(f32::from_le_bytes(bytes) as f64),
                _ => return Err(ValueError::Length(v.len(), "DOUBLE")),
            },
            Builder::Decimal(b, scale) => {
                let text = std::str::from_utf8(v).map_err(|_| ValueError::Utf8)?;
                b.append_value(decimal(text, *scale)?)
            }
            Builder::Text(b) => {
                let text = std::str::from_utf8(v).map_err(|_| ValueError::Utf8)?;
                b.append_value(text)
            }
            Builder::Binary(b) if c.kind == MysqlKind::Geometry => {
                // The server's geometry is a 4-byte SRID, then WKB.
                if v.len() < 4 {
                    return Err(ValueError::Length(v.len(), "geometry"));
                }
                b.append_value(&v[4..])
            }
            Builder::Binary(b) => b.append_value(v),
            Builder::Uuid(b) => b
                .append_value(uuid_bytes(v)?)
                .expect("16 bytes for a 16-byte column"),
            Builder::Date(b) => match date(v)? {
                Some(d) => b.append_value(d),
                None if zero_null => b.append_null(),
                None => return Err(zero()),
            },
            Builder::Timestamp(b) => match datetime(v)? {
                Some(t) => b.append_value(t),
                None if zero_null => b.append_null(),
                None => return Err(zero()),
            },
            Builder::Duration(b) => b.append_value(time(v)?),
        }
        Ok(())
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Builder::Null(b) => Arc::new(b.finish()),
            Builder::Bool(b) => Arc::new(b.finish()),
            Builder::Int8(b) => Arc::new(b.finish()),
            Builder::Int16(b) => Arc::new(b.finish()),
            Builder::Int32(b) => Arc::new(b.finish()),
            Builder::Int64(b) => Arc::new(b.finish()),
            Builder::UInt8(b) => Arc::new(b.finish()),
            Builder::UInt16(b) => Arc::new(b.finish()),
            Builder::UInt32(b) => Arc::new(b.finish()),
            Builder::UInt64(b) => Arc::new(b.finish()),
            Builder::Float32(b) => Arc::new(b.finish()),
            Builder::Float64(b) => Arc::new(b.finish()),
            Builder::Decimal(b, _) => Arc::new(b.finish()),
            Builder::Text(b) => Arc::new(b.finish()),
            Builder::Binary(b) => Arc::new(b.finish()),
            Builder::Uuid(b) => Arc::new(b.finish()),
            Builder::Date(b) => Arc::new(b.finish()),
            Builder::Timestamp(b) => Arc::new(b.finish()),
            Builder::Duration(b) => Arc::new(b.finish()),
        }
    }

    fn len(&self) -> usize {
        match self {
            Builder::Null(b) => b.len(),
            Builder::Bool(b) => b.len(),
            Builder::Int8(b) => b.len(),
            Builder::Int16(b) => b.len(),
            Builder::Int32(b) => b.len(),
            Builder::Int64(b) => b.len(),
            Builder::UInt8(b) => b.len(),
            Builder::UInt16(b) => b.len(),
            Builder::UInt32(b) => b.len(),
            Builder::UInt64(b) => b.len(),
            Builder::Float32(b) => b.len(),
            Builder::Float64(b) => b.len(),
            Builder::Decimal(b, _) => b.len(),
            Builder::Text(b) => b.len(),
            Builder::Binary(b) => b.len(),
            Builder::Uuid(b) => b.len(),
            Builder::Date(b) => b.len(),
            Builder::Timestamp(b) => b.len(),
            Builder::Duration(b) => b.len(),
        }
    }
}

/// A zero date as the server writes it, for messages.
fn zero_text(kind: MysqlKind, v: &[u8]) -> String {
    let (year, month, day) = match v {
        [_, y0, y1, m, d, ..] => (u16::from_le_bytes([*y0, *y1]), *m, *d),
        _ => (0, 0, 0),
    };
    let date = format!("{year:04}-{month:02}-{day:02}");
    match kind {
        MysqlKind::Date => date,
        _ => format!("{date} 00:00:00"),
    }
}

/// Rows gathered column by column into the next batch.
struct Batcher {
    columns: Vec<ColumnPlan>,
    builders: Vec<Builder>,
    schema: SchemaRef,
    rows: usize,
    /// Bytes of values received since the last batch (about the batch's size).
    bytes: usize,
}

impl Batcher {
    fn new(columns: Vec<ColumnPlan>) -> Batcher {
        let builders = columns.iter().map(|c| Builder::new(c.kind)).collect();
        Batcher {
            schema: schema(&columns),
            columns,
            builders,
            rows: 0,
            bytes: 0,
        }
    }

    /// Checks that the result's columns are sent as the prepared statement described
    /// them (the decoder reads each value by the type it was told).
    fn check_wire(&self, row: &MySqlRow) -> Result<(), ColumnError> {
        if row.columns().len() != self.columns.len() {
            return Err(ColumnError {
                column: "(result)".into(),
                message: format!(
                    "the server described {} columns but sent {}",
                    self.columns.len(),
                    row.columns().len()
                ),
            });
        }
        for (c, column) in self.columns.iter().zip(row.columns()) {
            let sent = column_type(column.type_info());
            if sent.code != c.wire.code || (sent.flags ^ c.wire.flags) & 32 != 0 {
                return Err(ColumnError {
                    column: c.name.clone(),
                    message: format!(
                        "the server described the column as {} but sent {}",
                        c.wire.name(),
                        sent.name()
                    ),
                });
            }
        }
        Ok(())
    }

    fn push(&mut self, row: &MySqlRow) -> Result<(), ColumnError> {
        for (i, (c, b)) in self.columns.iter().zip(&mut self.builders).enumerate() {
            // Not `Option<&[u8]>`: sqlx decodes a zero date as NULL. (The batcher's
            // columns are the row's: `check_wire` compared them.)
            let value = row.raw_value(i);
            match value {
                None => b.append_null(),
                Some(v) => {
                    self.bytes += v.len();
                    b.append(c, v).map_err(|e| ColumnError {
                        column: c.name.clone(),
                        message: e.to_string(),
                    })?;
                }
            }
        }
        self.rows += 1;
        Ok(())
    }

    fn take(&mut self) -> Result<RecordBatch, ColumnError> {
        let rows = self.builders.first().map_or(self.rows, Builder::len);
        let arrays = self.builders.iter_mut().map(Builder::finish).collect();
        self.rows = 0;
        self.bytes = 0;
        RecordBatch::try_new_with_options(
            self.schema.clone(),
            arrays,
            &arrow::array::RecordBatchOptions::new().with_row_count(Some(rows)),
        )
        .map_err(|e| ColumnError {
            column: "(batch)".into(),
            message: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_of_every_width_and_sign() {
        assert_eq!(integer(&[0xff], false).unwrap(), -1);
        assert_eq!(integer(&[0xff], true).unwrap(), 255);
        assert_eq!(integer(&[0xff; 8], true).unwrap(), u64::MAX as i128);
        assert_eq!(integer(&[0, 0, 0, 0x80], false).unwrap(), i32::MIN as i128);
        assert!(integer(&[1, 2, 3], false).is_err());
    }

    #[test]
    fn dates_datetimes_and_zero_dates() {
        // 1970-01-02
        assert_eq!(date(&[4, 0xb2, 0x07, 1, 2]).unwrap(), Some(1));
        assert_eq!(date(&[0]).unwrap(), None);
        assert_eq!(date(&[4, 0xe8, 0x07, 0, 0]).unwrap(), None);
        // 1970-01-01 00:00:01.000002
        assert_eq!(
            datetime(&[11, 0xb2, 0x07, 1, 1, 0, 0, 1, 2, 0, 0, 0]).unwrap(),
            Some(1_000_002)
        );
        assert_eq!(datetime(&[4, 0xb2, 0x07, 1, 1]).unwrap(), Some(0));
        assert!(datetime(&[5, 0xb2, 0x07, 1, 1, 0]).is_err());
    }

    #[test]
    fn times_are_signed_durations_past_a_day() {
        // -838:59:59
        let v = [8, 1, 34, 0, 0, 0, 22, 59, 59];
        assert_eq!(time(&v).unwrap(), -(838 * 3600 + 59 * 60 + 59) * 1_000_000);
        assert_eq!(time(&[0]).unwrap(), 0);
        assert_eq!(
            time(&[12, 0, 0, 0, 0, 0, 0, 0, 1, 5, 0, 0, 0]).unwrap(),
            1_000_005
        );
    }

    #[test]
    fn decimals_keep_every_digit() {
        assert_eq!(decimal("-123.45", 4).unwrap(), -1_234_500);
        assert_eq!(decimal("0", 2).unwrap(), 0);
        assert_eq!(decimal(&"9".repeat(38), 0).unwrap(), 10i128.pow(38) - 1);
        assert!(decimal("1.234", 2).is_err());
        assert!(decimal("1e5", 0).is_err());
        assert!(decimal("-", 0).is_err());
    }

    #[test]
    fn grants_that_write() {
        assert!(writes("GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost`"));
        assert!(writes("GRANT SELECT, INSERT ON `db`.* TO `u`@`%`"));
        assert!(!writes(
            "GRANT SELECT, CREATE TEMPORARY TABLES ON `db`.* TO `u`@`%`"
        ));
        assert!(!writes("GRANT USAGE ON *.* TO `u`@`%`"));
    }
}
