//! SQLite: files opened read-only through sqlx's pool. Rows arrive as sqlx rows and are
//! typed by the rule in [`SqliteKind`]. A deadline or an abort interrupts the running
//! statement inside SQLite (through its progress handler), and the connection is closed
//! rather than returned to the pool.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Float64Builder, Int64Builder,
    NullArray, RecordBatch, StringBuilder, Time64MicrosecondBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use chrono::{NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use futures_util::TryStreamExt;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions, SqliteRow};
use sqlx::{Column, Executor, Row, SqlSafeStr, Sqlite, SqlitePool, TypeInfo, ValueRef};

use crate::config::shards::SqliteSource;
use crate::error::{TaskError, TaskErrorKind};
use crate::plan::window::Mark;
use crate::sql::{KeyValue, ParamValue, quote_ident};
use crate::types::SqliteKind;

use super::{TaskContext, check_unique_names};

/// SQLite virtual-machine steps between checks for a cancel: frequent enough to stop
/// within milliseconds, rare enough to cost nothing measurable.
const PROGRESS_STEPS: i32 = 10_000;
/// Rows a task holds back while a column typed by its values has seen only NULLs, so that
/// its type can still be learned before the first batch is sent.
const MAX_HELD_ROWS: usize = 1 << 16;

pub struct SqliteShard {
    name: String,
    path: String,
    pool: SqlitePool,
    size: usize,
}

impl SqliteShard {
    pub fn new(
        name: &str,
        source: &SqliteSource,
        size: usize,
        connect_timeout: Duration,
    ) -> SqliteShard {
        let options = SqliteConnectOptions::new()
            .filename(&source.path)
            .read_only(true)
            .create_if_missing(false);
        let pool = SqlitePoolOptions::new()
            .max_connections(size as u32)
            .acquire_timeout(connect_timeout)
            .connect_lazy_with(options);
        SqliteShard {
            name: name.to_string(),
            path: source.path.display().to_string(),
            pool,
            size,
        }
    }

    pub fn size(&self) -> usize {
        self.size
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn close(&self) {
        let pool = self.pool.clone();
        tokio::spawn(async move { pool.close().await });
    }

    fn error(&self, kind: TaskErrorKind) -> TaskError {
        TaskError::new(&self.name, kind)
    }

    pub async fn run(
        &self,
        sql: &str,
        binds: &[ParamValue],
        ctx: &TaskContext,
    ) -> Result<u64, TaskError> {
        let mut conn = self.pool.acquire().await.map_err(|e| {
            self.error(TaskErrorKind::Connect {
                target: format!("sqlite://{}", self.path),
                message: e.to_string(),
                transient: false,
            })
        })?;
        let cancelled = Arc::new(AtomicBool::new(false));
        {
            let flag = cancelled.clone();
            let mut handle = conn.lock_handle().await.map_err(|e| self.server(e))?;
            handle.set_progress_handler(PROGRESS_STEPS, move || !flag.load(Ordering::Relaxed));
        }
        let mut checkout = Checkout {
            flag: cancelled,
            conn: Some(conn),
        };
        let conn = checkout.conn.as_mut().expect("present until released");
        let rows = self.stream(conn, sql, binds, ctx).await?;
        if let Some(mut conn) = checkout.conn.take()
            && let Ok(mut handle) = conn.lock_handle().await
        {
            handle.remove_progress_handler();
        }
        Ok(rows)
    }

    /// What `tributary check` reports of this file: SQLite's version, and the query's
    /// columns as SQLite declares them (the file is opened read-only: nothing can be
    /// written through it).
    pub async fn facts(&self, sql: Option<&str>) -> Result<super::ShardFacts, TaskError> {
        use sqlx::{Column, Executor, Statement, TypeInfo};
        let mut conn = self.pool.acquire().await.map_err(|e| {
            self.error(TaskErrorKind::Connect {
                target: format!("sqlite://{}", self.path),
                message: e.to_string(),
                transient: false,
            })
        })?;
        let version: String = sqlx::query_scalar("SELECT sqlite_version()")
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| self.server(e))?;
        let mut columns = Vec::new();
        if let Some(sql) = sql {
            let statement = (&mut *conn)
                .prepare(sqlx::AssertSqlSafe(sql.to_string()).into_sql_str())
                .await
                .map_err(|e| self.server(e))?;
            for column in statement.columns() {
                columns.push(super::ColumnFacts {
                    name: column.name().to_string(),
                    source_type: column.type_info().name().to_string(),
                    arrow_type: "decided by the values read".into(),
                });
            }
        }
        Ok(super::ShardFacts {
            server: format!("SQLite {version}"),
            tls: None,
            role: None,
            can_write: Vec::new(),
            columns,
        })
    }

    /// The smallest and largest key of the query's result, which must be integers
    /// (`None` when there is no non-NULL key).
    pub async fn probe_range(
        &self,
        sql: &str,
        binds: &[ParamValue],
        column: &str,
    ) -> Result<Option<(KeyValue, KeyValue)>, TaskError> {
        let c = quote_ident(column);
        let row = self
            .probe_row(
                format!("SELECT min({c}), max({c}), typeof(min({c})) FROM (\n{sql}\n) AS tributary_probe"),
                binds,
            )
            .await?;
        let class: String = row.try_get(2).map_err(|e| self.server(e))?;
        match class.as_str() {
            "null" => Ok(None),
            "integer" => {
                let min: i64 = row.try_get(0).map_err(|e| self.server(e))?;
                let max: i64 = row.try_get(1).map_err(|e| self.server(e))?;
                Ok(Some((KeyValue::Int(min), KeyValue::Int(max))))
            }
            other => Err(self.error(TaskErrorKind::Partition {
                message: format!("range partitions on SQLite need an integer key; `{column}` holds {other} values"),
            })),
        }
    }

    /// The one row of a probe over the query (`binds` bound to its parameters).
    async fn probe_row(
        &self,
        probe: String,
        binds: &[ParamValue],
    ) -> Result<sqlx::sqlite::SqliteRow, TaskError> {
        let mut query = sqlx::query(sqlx::AssertSqlSafe(probe));
        for value in binds {
            query = bind(query, value);
        }
        query
            .fetch_one(&self.pool)
            .await
            .map_err(|e| self.server(e))
    }

    /// The largest value of `column` in the query's result, as an incremental job's
    /// mark: an integer, or text (ISO-8601 timestamps order as text); `None` when the
    /// result has no non-NULL value there.
    pub async fn probe_mark(
        &self,
        sql: &str,
        binds: &[ParamValue],
        column: &str,
    ) -> Result<Option<Mark>, TaskError> {
        let c = quote_ident(column);
        let row = self
            .probe_row(
                format!("SELECT max({c}), typeof(max({c})) FROM (\n{sql}\n) AS tributary_probe"),
                binds,
            )
            .await?;
        let class: String = row.try_get(1).map_err(|e| self.server(e))?;
        match class.as_str() {
            "null" => Ok(None),
            "integer" => Ok(Some(Mark::Int(row.try_get(0).map_err(|e| self.server(e))?))),
            "text" => Ok(Some(Mark::Text(row.try_get(0).map_err(|e| self.server(e))?))),
            other => Err(self.error(TaskErrorKind::Partition {
                message: format!(
                    "[incremental] on SQLite needs an integer or text (ISO-8601) column; `{column}` holds {other} values"
                ),
            })),
        }
    }

    fn decode_error(&self, e: ColumnError) -> TaskError {
        self.error(TaskErrorKind::Decode {
            column: e.column,
            message: e.error.to_string(),
        })
    }

    fn server(&self, e: sqlx::Error) -> TaskError {
        let sqlstate = e
            .as_database_error()
            .and_then(|d| d.code().map(|c| c.into_owned()));
        let message = match e.as_database_error() {
            Some(d) => d.message().to_string(),
            None => e.to_string(),
        };
        if message.contains("interrupted") {
            return self.error(TaskErrorKind::Server {
                sqlstate: None,
                message,
            });
        }
        self.error(TaskErrorKind::Server { sqlstate, message })
    }

    async fn stream(
        &self,
        conn: &mut PoolConnection<Sqlite>,
        sql: &str,
        binds: &[ParamValue],
        ctx: &TaskContext,
    ) -> Result<u64, TaskError> {
        let statement = conn
            .prepare(sqlx::AssertSqlSafe(sql.to_string()).into_sql_str())
            .await
            .map_err(|e| self.server(e))?;
        let columns: Vec<(String, SqliteKind)> = sqlx::Statement::columns(&statement)
            .iter()
            .map(|c| {
                (
                    c.name().to_string(),
                    SqliteKind::from_declared(c.type_info().name()),
                )
            })
            .collect();
        check_unique_names(columns.iter().map(|(n, _)| n.as_str())).map_err(|e| {
            self.error(TaskErrorKind::Schema {
                message: e.to_string(),
            })
        })?;
        let mut batcher = Batcher::new(columns);
        ctx.sender.schema(batcher.schema());

        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.to_string()));
        for value in binds {
            query = bind(query, value);
        }
        let mut rows = query.fetch(&mut **conn);
        let mut sent = 0u64;
        while let Some(row) = rows.try_next().await.map_err(|e| self.server(e))? {
            batcher.push(&row).map_err(|e| self.decode_error(e))?;
            if batcher.ready(ctx.batch_size) {
                sent += self.send(&mut batcher, ctx).await?;
            }
        }
        sent += self.send(&mut batcher, ctx).await?;
        Ok(sent)
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
}

type Query<'q> = sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments>;

fn bind<'q>(query: Query<'q>, value: &ParamValue) -> Query<'q> {
    match value {
        ParamValue::Text(s) => query.bind(s.clone()),
        ParamValue::Int(i) => query.bind(*i),
        ParamValue::Float(f) => query.bind(*f),
        ParamValue::Bool(b) => query.bind(*b),
    }
}

/// A pooled connection in use by a task. Dropped before the task finished (error,
/// deadline, abort), it interrupts the running statement inside SQLite and closes the
/// connection instead of returning it to the pool.
struct Checkout {
    flag: Arc<AtomicBool>,
    conn: Option<PoolConnection<Sqlite>>,
}

impl Drop for Checkout {
    fn drop(&mut self) {
        if let Some(mut conn) = self.conn.take() {
            self.flag.store(true, Ordering::Relaxed);
            conn.close_on_drop();
        }
    }
}

/// A SQLite value, owned, as the storage class it was stored with.
#[derive(Debug, Clone)]
enum Value {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl Value {
    fn class(&self) -> &'static str {
        match self {
            Value::Null => "NULL",
            Value::Int(_) => "INTEGER",
            Value::Real(_) => "REAL",
            Value::Text(_) => "TEXT",
            Value::Blob(_) => "BLOB",
        }
    }
}

/// Why a value could not be put in its column.
#[derive(Debug, thiserror::Error)]
enum ValueError {
    #[error("{0}")]
    Read(sqlx::Error),
    /// The value's storage class does not fit the column's type.
    #[error("the column is {typed} but holds the {class} value {shown}")]
    Misfit {
        /// How the column was typed: `declared Int64`, `typed Text by its first values`.
        typed: String,
        class: &'static str,
        /// The value, cut short if long.
        shown: String,
    },
    /// A value after the column's first batch fixed its type as NULL.
    #[error(
        "only NULLs in the first rows, then a {0} value; the column's type was already fixed as NULL"
    )]
    AfterNulls(&'static str),
    #[error("{0}")]
    Batch(arrow::error::ArrowError),
}

/// A value error in a column (`(batch)` when the batch as a whole failed).
#[derive(Debug)]
struct ColumnError {
    column: String,
    error: ValueError,
}

fn read(row: &SqliteRow, i: usize) -> Result<Value, ValueError> {
    let raw = row.try_get_raw(i).map_err(ValueError::Read)?;
    if raw.is_null() {
        return Ok(Value::Null);
    }
    let class = raw.type_info().name().to_string();
    let e = ValueError::Read;
    Ok(match class.as_str() {
        "INTEGER" => Value::Int(row.try_get_unchecked::<i64, _>(i).map_err(e)?),
        "REAL" => Value::Real(row.try_get_unchecked::<f64, _>(i).map_err(e)?),
        "TEXT" => Value::Text(row.try_get_unchecked::<String, _>(i).map_err(e)?),
        _ => Value::Blob(row.try_get_unchecked::<Vec<u8>, _>(i).map_err(e)?),
    })
}

/// Collects rows column by column and turns them into batches of a fixed schema.
struct Batcher {
    names: Vec<String>,
    /// Declared kinds; `ByValue` columns are resolved from their first non-NULL values.
    kinds: Vec<SqliteKind>,
    resolved: Vec<Option<SqliteKind>>,
    values: Vec<Vec<Value>>,
    /// Whether a batch was sent: from then on the schema is fixed.
    started: bool,
}

impl Batcher {
    fn new(columns: Vec<(String, SqliteKind)>) -> Batcher {
        let (names, kinds): (Vec<_>, Vec<_>) = columns.into_iter().unzip();
        let resolved = kinds
            .iter()
            .map(|k| (*k != SqliteKind::ByValue).then_some(*k))
            .collect();
        let values = vec![Vec::new(); names.len()];
        Batcher {
            names,
            kinds,
            resolved,
            values,
            started: false,
        }
    }

    fn schema(&self) -> SchemaRef {
        let fields: Vec<Field> = self
            .names
            .iter()
            .zip(&self.resolved)
            .map(|(name, kind)| {
                let data_type = kind.and_then(|k| k.data_type()).unwrap_or(DataType::Null);
                Field::new(name, data_type, true)
            })
            .collect();
        Arc::new(Schema::new(fields))
    }

    fn rows(&self) -> usize {
        self.values.first().map_or(0, Vec::len)
    }

    /// The error `error` in column `i`.
    fn in_column(&self, i: usize, error: ValueError) -> ColumnError {
        ColumnError {
            column: self.names[i].clone(),
            error,
        }
    }

    fn push(&mut self, row: &SqliteRow) -> Result<(), ColumnError> {
        for i in 0..self.values.len() {
            let value = read(row, i).map_err(|e| self.in_column(i, e))?;
            self.values[i].push(value);
        }
        Ok(())
    }

    /// Whether a batch should be sent now.
    fn ready(&self, batch_size: usize) -> bool {
        let rows = self.rows();
        if rows < batch_size {
            return false;
        }
        let unresolved = !self.started
            && self
                .resolved
                .iter()
                .zip(&self.values)
                .any(|(r, v)| r.is_none() && v.iter().all(|x| matches!(x, Value::Null)));
        !unresolved || rows >= MAX_HELD_ROWS
    }

    fn take(&mut self) -> Result<RecordBatch, ColumnError> {
        if !self.started {
            for (i, column) in self.values.iter().enumerate() {
                if self.resolved[i].is_none() {
                    self.resolved[i] = by_values(column);
                }
            }
        }
        self.started = true;
        let rows = self.rows();
        let mut arrays = Vec::with_capacity(self.values.len());
        for i in 0..self.values.len() {
            let values = std::mem::take(&mut self.values[i]);
            let kind = match (self.resolved[i], self.kinds[i]) {
                (Some(k), _) => k,
                // Still untyped (only NULLs so far): a NULL column.
                (None, _) => {
                    if let Some(v) = values.iter().find(|v| !matches!(v, Value::Null)) {
                        return Err(self.in_column(i, ValueError::AfterNulls(v.class())));
                    }
                    arrays.push(Arc::new(NullArray::new(rows)) as ArrayRef);
                    continue;
                }
            };
            let declared = self.kinds[i] != SqliteKind::ByValue;
            arrays.push(build(kind, values, declared).map_err(|e| self.in_column(i, e))?);
        }
        RecordBatch::try_new_with_options(
            self.schema(),
            arrays,
            &arrow::array::RecordBatchOptions::new().with_row_count(Some(rows)),
        )
        .map_err(|e| ColumnError {
            column: String::from("(batch)"),
            error: ValueError::Batch(e),
        })
    }
}

/// Rule 2 of [`SqliteKind`]: the type the values call for, if any is not NULL.
fn by_values(values: &[Value]) -> Option<SqliteKind> {
    let mut kind = None;
    for v in values {
        kind = match (kind, v) {
            (k, Value::Null) => k,
            (_, Value::Text(_)) => return Some(SqliteKind::Text),
            (Some(SqliteKind::Blob), _) | (_, Value::Blob(_)) => Some(SqliteKind::Blob),
            (Some(SqliteKind::Float64), _) | (_, Value::Real(_)) => Some(SqliteKind::Float64),
            (_, Value::Int(_)) => Some(SqliteKind::Int64),
        };
    }
    kind
}

fn misfit(v: &Value, kind: SqliteKind, declared: bool) -> ValueError {
    let shown = match v {
        Value::Text(t) if t.len() > 40 => format!(
            "'{}…'",
            &t[..t.char_indices().nth(40).map_or(t.len(), |(i, _)| i)]
        ),
        Value::Text(t) => format!("'{t}'"),
        Value::Int(i) => i.to_string(),
        Value::Real(r) => r.to_string(),
        Value::Blob(b) => format!("<{} bytes>", b.len()),
        Value::Null => "NULL".into(),
    };
    let typed = if declared {
        format!("declared {kind:?}")
    } else {
        format!("typed {kind:?} by its first values")
    };
    ValueError::Misfit {
        typed,
        class: v.class(),
        shown,
    }
}

fn build(kind: SqliteKind, values: Vec<Value>, declared: bool) -> Result<ArrayRef, ValueError> {
    let n = values.len();
    macro_rules! fill {
        ($builder:expr, $convert:expr) => {{
            let mut b = $builder;
            for v in &values {
                match v {
                    Value::Null => b.append_null(),
                    other => match $convert(other) {
                        Some(x) => b.append_value(x),
                        None => return Err(misfit(other, kind, declared)),
                    },
                }
            }
            Arc::new(b.finish()) as ArrayRef
        }};
    }
    Ok(match kind {
        SqliteKind::Int64 => fill!(Int64Builder::with_capacity(n), |v: &Value| match v {
            Value::Int(i) => Some(*i),
            _ => None,
        }),
        SqliteKind::Float64 => fill!(Float64Builder::with_capacity(n), |v: &Value| match v {
            Value::Int(i) => Some(*i as f64),
            Value::Real(r) => Some(*r),
            _ => None,
        }),
        SqliteKind::Text | SqliteKind::ByValue => fill!(
            StringBuilder::with_capacity(n, n * 16),
            |v: &Value| match v {
                Value::Text(t) => Some(t.clone()),
                Value::Int(i) => Some(i.to_string()),
                Value::Real(r) => Some(r.to_string()),
                _ => None,
            }
        ),
        SqliteKind::Blob => fill!(
            BinaryBuilder::with_capacity(n, n * 16),
            |v: &Value| match v {
                Value::Blob(b) => Some(b.clone()),
                Value::Text(t) => Some(t.clone().into_bytes()),
                _ => None,
            }
        ),
        SqliteKind::Bool => fill!(BooleanBuilder::with_capacity(n), |v: &Value| match v {
            Value::Int(0) => Some(false),
            Value::Int(1) => Some(true),
            _ => None,
        }),
        SqliteKind::Date => fill!(Date32Builder::with_capacity(n), |v: &Value| match v {
            Value::Text(t) => parse_date(t),
            _ => None,
        }),
        SqliteKind::Timestamp => fill!(
            TimestampMicrosecondBuilder::with_capacity(n),
            |v: &Value| match v {
                Value::Text(t) => parse_timestamp(t),
                Value::Int(s) => s.checked_mul(1_000_000),
                Value::Real(s) => Some((s * 1e6).round() as i64),
                _ => None,
            }
        ),
        SqliteKind::Time => fill!(
            Time64MicrosecondBuilder::with_capacity(n),
            |v: &Value| match v {
                Value::Text(t) => parse_time(t),
                _ => None,
            }
        ),
    })
}

fn parse_date(t: &str) -> Option<i32> {
    let d = NaiveDate::parse_from_str(t.trim(), "%Y-%m-%d").ok()?;
    Some((d - NaiveDate::from_ymd_opt(1970, 1, 1)?).num_days() as i32)
}

/// ISO-8601 text as SQLite's date functions write it, with an optional offset (converted
/// to UTC).
fn parse_timestamp(t: &str) -> Option<i64> {
    let t = t.trim();
    if let Ok(dt) = chrono::DateTime::parse_from_rfc3339(t) {
        return Some(dt.timestamp_micros());
    }
    for format in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(t, format) {
            return Some(dt.and_utc().timestamp_micros());
        }
    }
    NaiveDate::parse_from_str(t, "%Y-%m-%d").ok().map(|d| {
        d.and_hms_opt(0, 0, 0)
            .expect("midnight")
            .and_utc()
            .timestamp_micros()
    })
}

fn parse_time(t: &str) -> Option<i64> {
    let t = t.trim();
    let time = NaiveTime::parse_from_str(t, "%H:%M:%S%.f")
        .or_else(|_| NaiveTime::parse_from_str(t, "%H:%M"))
        .ok()?;
    Some(time.num_seconds_from_midnight() as i64 * 1_000_000 + (time.nanosecond() / 1000) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_by_values() {
        assert_eq!(
            by_values(&[Value::Null, Value::Int(1)]),
            Some(SqliteKind::Int64)
        );
        assert_eq!(
            by_values(&[Value::Int(1), Value::Real(1.5)]),
            Some(SqliteKind::Float64)
        );
        assert_eq!(
            by_values(&[Value::Real(1.5), Value::Int(1)]),
            Some(SqliteKind::Float64)
        );
        assert_eq!(
            by_values(&[Value::Int(1), Value::Text("a".into())]),
            Some(SqliteKind::Text)
        );
        assert_eq!(by_values(&[Value::Null]), None);
    }

    #[test]
    fn misfits_name_the_value() {
        let err = build(
            SqliteKind::Int64,
            vec![Value::Int(1), Value::Text("abc".into())],
            true,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "the column is declared Int64 but holds the TEXT value 'abc'"
        );
    }

    #[test]
    fn dates_and_times() {
        assert_eq!(parse_date("1970-01-02"), Some(1));
        assert_eq!(parse_timestamp("1970-01-01 00:00:01.5"), Some(1_500_000));
        assert_eq!(parse_timestamp("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(parse_timestamp("1970-01-02"), Some(86_400_000_000));
        assert_eq!(parse_time("00:01:00.25"), Some(60_250_000));
        assert_eq!(parse_timestamp("yesterday"), None);
    }
}
