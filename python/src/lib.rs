//! `tributary._tributary`: the engine behind the Python package's `read_sql`. A call
//! resolves its arguments as `tributary run` resolves its flags (the same checks, the
//! same messages), runs the job with the output kept in memory, and hands the record
//! batches to Python as an Arrow C stream: pyarrow, polars and every reader of the Arrow
//! PyCapsule interface take the buffers without a copy.
//!
//! Failures raise `tributary.Error` (or the subclass of its exit code's class) with the
//! CLI's message, and its `exit_code`, `shard` and `partition` as attributes.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use arrow::array::{RecordBatch, RecordBatchIterator};
use arrow::datatypes::SchemaRef;
use arrow::ffi_stream::FFI_ArrowArrayStream;
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyKeyboardInterrupt, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyCapsule, PyDict};
use tributary::config::RunArgs;
use tributary::error::exit;
use tributary::{Error, JobConfig};

create_exception!(
    _tributary,
    TributaryError,
    PyException,
    "A run failed: `exit_code` is the code the CLI exits with, `shard` (and `partition`) name where, when the failure is a shard's."
);
create_exception!(
    _tributary,
    ConfigError,
    TributaryError,
    "The query, the shards or an option is invalid (exit code 3); raised before any connection."
);
create_exception!(
    _tributary,
    DataError,
    TributaryError,
    "A shard rejected the query or returned what cannot be represented (exit code 4)."
);
create_exception!(
    _tributary,
    ShardUnavailable,
    TributaryError,
    "A shard could not be reached, or its connection was lost (exit code 5)."
);
create_exception!(
    _tributary,
    QueryTimeout,
    TributaryError,
    "A query passed its deadline and was cancelled on the server (exit code 6)."
);

/// How often a run checks for Ctrl-C (Python's signal handlers run between checks).
const SIGNAL_CHECK: Duration = Duration::from_millis(100);

/// Runs the query and returns its result as an [`ArrowStream`]. The arguments are
/// `tributary run`'s flags, normalised by `tributary.read_sql`.
#[pyfunction]
#[pyo3(signature = (
    query, *, query_file, shards_file, shard_table, job, params, partition_on, partitions,
    combine, merge, shard_column, concurrency, query_timeout, retries, memory_limit,
    readers, type_options, no_snapshot
))]
#[allow(clippy::too_many_arguments)]
fn read_sql(
    py: Python<'_>,
    query: Option<String>,
    query_file: Option<PathBuf>,
    shards_file: Option<PathBuf>,
    shard_table: Option<Bound<'_, PyDict>>,
    job: Option<PathBuf>,
    params: Vec<(String, String)>,
    partition_on: Option<String>,
    partitions: Option<usize>,
    combine: Option<bool>,
    merge: Option<String>,
    shard_column: Option<String>,
    concurrency: Option<usize>,
    query_timeout: Option<f64>,
    retries: Option<u32>,
    memory_limit: Option<String>,
    readers: Vec<String>,
    type_options: Vec<(String, String)>,
    no_snapshot: bool,
) -> PyResult<ArrowStream> {
    let shard_table = match shard_table {
        Some(dict) => match to_toml(dict.as_any())? {
            toml::Value::Table(table) => Some(table),
            _ => unreachable!("a dict converts to a table"),
        },
        None => None,
    };
    let query_timeout = query_timeout
        .map(|s| {
            Duration::try_from_secs_f64(s)
                .map_err(|_| PyValueError::new_err(format!("query_timeout={s}: expected seconds")))
        })
        .transpose()?;
    let args = RunArgs {
        query: query_file,
        query_sql: query,
        job,
        shards: shards_file,
        shard_table,
        params,
        partition_on,
        partitions,
        combine,
        merge,
        shard_column,
        concurrency,
        query_timeout,
        retries,
        memory_limit,
        readers,
        type_options,
        no_snapshot,
        // Nothing is written, so nothing is recorded: a notebook reruns at will.
        no_ledger: true,
        ..RunArgs::default()
    };
    let config = JobConfig::resolve_for_plan(args).map_err(raise)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| TributaryError::new_err(format!("cannot start the runtime: {e}")))?;
    let (_report, result) = py.detach(|| runtime.block_on(tributary::read(&config, ctrl_c())));
    drop(runtime);
    let (schema, batches) = result.map_err(raise)?;
    Ok(ArrowStream::new(schema, batches))
}

/// Resolves when Python has a signal to handle (Ctrl-C): the run then stops, its queries
/// cancelled, and `read_sql` raises `KeyboardInterrupt`.
async fn ctrl_c() -> &'static str {
    loop {
        tokio::time::sleep(SIGNAL_CHECK).await;
        if Python::attach(|py| py.check_signals()).is_err() {
            return "SIGINT";
        }
    }
}

/// The Python exception for a run's error.
fn raise(error: Error) -> PyErr {
    let message = tributary::error::chain(&error);
    let code = error.exit_code();
    let err = match code {
        exit::CONFIG => ConfigError::new_err(message),
        exit::DATA => DataError::new_err(message),
        exit::UNAVAILABLE => ShardUnavailable::new_err(message),
        exit::TIMEOUT => QueryTimeout::new_err(message),
        exit::INTERRUPTED | exit::TERMINATED => PyKeyboardInterrupt::new_err(message),
        _ => TributaryError::new_err(message),
    };
    Python::attach(|py| {
        let value = err.value(py);
        let partition = match &error {
            Error::Task(e) => e.partition.clone(),
            _ => None,
        };
        // Setting attributes on a fresh exception instance does not fail.
        let _ = value.setattr("exit_code", code);
        let _ = value.setattr("shard", error.shard());
        let _ = value.setattr("partition", partition);
    });
    err
}

/// A Python value of a shards table (`{"eu1": "postgres://...", "eu2": {"url": ...}}`) as
/// the TOML value a shards file would hold.
fn to_toml(value: &Bound<'_, PyAny>) -> PyResult<toml::Value> {
    if let Ok(dict) = value.cast::<PyDict>() {
        let mut table = toml::Table::new();
        for (key, value) in dict.iter() {
            let key: String = key
                .extract()
                .map_err(|_| PyValueError::new_err(format!("shards: key {key} is not a str")))?;
            table.insert(key, to_toml(&value)?);
        }
        return Ok(toml::Value::Table(table));
    }
    if let Ok(b) = value.extract::<bool>() {
        return Ok(toml::Value::Boolean(b));
    }
    if let Ok(n) = value.extract::<i64>() {
        return Ok(toml::Value::Integer(n));
    }
    if let Ok(f) = value.extract::<f64>() {
        return Ok(toml::Value::Float(f));
    }
    if let Ok(s) = value.extract::<String>() {
        return Ok(toml::Value::String(s));
    }
    if let Ok(items) = value.extract::<Vec<Bound<'_, PyAny>>>() {
        return items
            .iter()
            .map(to_toml)
            .collect::<PyResult<_>>()
            .map(toml::Value::Array);
    }
    Err(PyValueError::new_err(format!(
        "shards: {} is not a str, number, bool, list or dict",
        value.get_type().name()?
    )))
}

/// A run's result, exported once as an Arrow C stream (`__arrow_c_stream__`, the Arrow
/// PyCapsule interface).
#[pyclass(module = "tributary._tributary", frozen)]
struct ArrowStream {
    result: Mutex<Option<(SchemaRef, Vec<RecordBatch>)>>,
}

impl ArrowStream {
    fn new(schema: SchemaRef, batches: Vec<RecordBatch>) -> ArrowStream {
        ArrowStream {
            result: Mutex::new(Some((schema, batches))),
        }
    }
}

#[pymethods]
impl ArrowStream {
    /// The result as a PyCapsule holding an `ArrowArrayStream`; the batches move to the
    /// reader, so a second call fails. `requested_schema` is not supported: the result
    /// has the types tributary chose (docs/types.md).
    #[pyo3(signature = (requested_schema=None))]
    fn __arrow_c_stream__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        let _ = requested_schema;
        let (schema, batches) = self
            .result
            .lock()
            .expect("never poisoned")
            .take()
            .ok_or_else(|| TributaryError::new_err("this result was already read"))?;
        let reader = RecordBatchIterator::new(batches.into_iter().map(Ok), schema);
        let stream = FFI_ArrowArrayStream::new(Box::new(reader));
        PyCapsule::new_with_value(py, stream, c"arrow_array_stream")
    }
}

#[pymodule]
fn _tributary(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_function(wrap_pyfunction!(read_sql, m)?)?;
    m.add_class::<ArrowStream>()?;
    m.add("Error", py.get_type::<TributaryError>())?;
    m.add("ConfigError", py.get_type::<ConfigError>())?;
    m.add("DataError", py.get_type::<DataError>())?;
    m.add("ShardUnavailable", py.get_type::<ShardUnavailable>())?;
    m.add("QueryTimeout", py.get_type::<QueryTimeout>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
