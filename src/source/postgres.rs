//! PostgreSQL: pooled connections (deadpool), each task in a READ ONLY transaction with a
//! server-side `statement_timeout` backing the client's deadline, rows read with
//! `COPY (query) TO STDOUT (FORMAT binary)` and decoded straight into Arrow builders.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use futures_util::StreamExt;
use tokio_postgres::CancelToken;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::shards::PgSource;
use crate::decode::pgcopy::{CopyDecoder, CopyError};
use crate::error::{TaskError, TaskErrorKind};
use crate::types::TypeRules;

use super::pgcolumns::{self, Columns};
use super::{BATCH_BYTES, Cancels, TaskContext, tls};

/// Margin added to the client deadline for the server's own `statement_timeout`: the
/// client cancels first; the server stops the statement even if the cancel is lost.
const SERVER_TIMEOUT_MARGIN: Duration = Duration::from_secs(2);

pub struct PgShard {
    name: String,
    target: String,
    pool: Pool,
    tls: MakeRustlsConnect,
    size: usize,
    /// The job's type options: how each column is rendered.
    types: Arc<TypeRules>,
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
                },
            )
        };
        let tls = tls::connector(&source.tls).map_err(fail)?;
        let mut config = source.config.clone();
        if !source.has_connect_timeout {
            config.connect_timeout(connect_timeout);
        }
        let manager = Manager::from_config(
            config,
            tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(size)
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| fail(e.to_string()))?;
        Ok(PgShard {
            name: name.to_string(),
            target: source.display.clone(),
            pool,
            tls,
            size,
            types,
        })
    }

    pub fn size(&self) -> usize {
        self.size
    }

    fn error(&self, kind: TaskErrorKind) -> TaskError {
        TaskError::new(&self.name, kind)
    }

    /// The result's columns as this shard types them, without running the query: lets
    /// the merger unify types across shards before the first row is written.
    pub async fn describe(&self, sql: &str, cancels: &Cancels) -> Result<Columns, TaskError> {
        let mut conn = self.checkout(cancels).await?;
        let columns = pgcolumns::describe(conn.client(), sql, &self.types)
            .await
            .map_err(|e| self.error(classify(&e, None)))?;
        conn.release();
        Ok(columns)
    }

    async fn checkout(&self, cancels: &Cancels) -> Result<Checkout, TaskError> {
        let object = self.pool.get().await.map_err(|e| {
            let message = match &e {
                deadpool_postgres::PoolError::Backend(e) => describe(e),
                other => other.to_string(),
            };
            self.error(TaskErrorKind::Connect {
                target: self.target.clone(),
                message,
            })
        })?;
        Ok(Checkout::new(object, self.tls.clone(), cancels.clone()))
    }

    pub async fn run(&self, sql: &str, ctx: &TaskContext) -> Result<u64, TaskError> {
        let mut conn = self.checkout(&ctx.cancels).await?;
        let rows = self.stream(&conn, sql, ctx).await?;
        conn.release();
        Ok(rows)
    }

    async fn stream(
        &self,
        conn: &Checkout,
        sql: &str,
        ctx: &TaskContext,
    ) -> Result<u64, TaskError> {
        let client = conn.client();
        let classify = |e: tokio_postgres::Error| self.error(classify(&e, ctx.deadline));
        let mut setup = String::from("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
        if let Some(deadline) = ctx.deadline {
            let ms = (deadline + SERVER_TIMEOUT_MARGIN).as_millis();
            setup.push_str(&format!("; SET LOCAL statement_timeout = {ms}"));
        }
        client.batch_execute(&setup).await.map_err(classify)?;

        let columns = pgcolumns::prepare(client, sql, &self.types, &self.name, |e| {
            self::classify(&e, ctx.deadline)
        })
        .await
        .map_err(|kind| self.error(kind))?;
        let kinds = &columns.kinds;
        let mut decoder = CopyDecoder::new(kinds);
        ctx.sender.schema(decoder.schema().clone());

        let copy = client
            .copy_out(columns.copy_sql.as_str())
            .await
            .map_err(classify)?;
        let mut copy = std::pin::pin!(copy);
        let mut rows = 0u64;
        let decode_error = |e: CopyError| {
            self.error(match e {
                CopyError::Value { column, message } => TaskErrorKind::Decode {
                    column: kinds[column].0.clone(),
                    message,
                },
                other => TaskErrorKind::ConnectionLost {
                    message: other.to_string(),
                },
            })
        };
        while let Some(chunk) = copy.next().await {
            let chunk = chunk.map_err(classify)?;
            decoder.push(&chunk).map_err(decode_error)?;
            if decoder.buffered_rows() >= ctx.batch_size || decoder.buffered_bytes() >= BATCH_BYTES
            {
                rows += send(&mut decoder, ctx).await;
            }
        }
        decoder.finish().map_err(decode_error)?;
        rows += send(&mut decoder, ctx).await;
        client.batch_execute("COMMIT").await.map_err(classify)?;
        Ok(rows)
    }
}

async fn send(decoder: &mut CopyDecoder, ctx: &TaskContext) -> u64 {
    let batch = decoder.take_batch();
    let n = batch.num_rows() as u64;
    if n > 0 {
        ctx.sender.batch(batch).await;
        (ctx.on_rows)(n);
    }
    n
}

/// A pooled connection in use by a task. Unless released after a clean finish, dropping
/// it cancels whatever statement may still run on the server and removes the connection
/// from the pool, so no later task waits behind an abandoned query.
#[must_use = "release() returns the connection to the pool; dropping it discards it"]
struct Checkout {
    object: Option<Object>,
    token: CancelToken,
    tls: MakeRustlsConnect,
    cancels: Cancels,
}

impl Checkout {
    fn new(object: Object, tls: MakeRustlsConnect, cancels: Cancels) -> Checkout {
        let token = object.cancel_token();
        Checkout {
            object: Some(object),
            token,
            tls,
            cancels,
        }
    }

    fn client(&self) -> &tokio_postgres::Client {
        self.object.as_ref().expect("present until release or drop")
    }

    /// The task finished cleanly (transaction committed): back to the pool.
    fn release(&mut self) {
        self.object.take();
    }
}

impl Drop for Checkout {
    fn drop(&mut self) {
        let Some(object) = self.object.take() else {
            return;
        };
        // Out of the pool for good: the client and its connection close when dropped.
        let client = Object::take(object);
        let token = self.token.clone();
        let tls = self.tls.clone();
        self.cancels.spawn(async move {
            let _ = token.cancel_query(tls).await;
            drop(client);
        });
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
