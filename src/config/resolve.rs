//! The one step from what the user gave to a [`JobConfig`]: each setting from its flag,
//! else the job file, else its default, read and checked. The steps run in a fixed
//! order, so that of several mistakes the user is told about the same one first every
//! time.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::DateTime;
use chrono_tz::Tz;
use parquet::file::properties::EnabledStatistics;

use super::job_file::{LoadedJob, SnapshotSetting};
use super::partition::{self, PartitionSpec};
use super::slices::{INDEX_VAR, Slicing, Snapshots};
use super::storage::{self, ObjectOutput, OutputUrl, StorageError};
use super::type_options::resolve_types;
use super::values::{choice, default_compression, parse_compression, parse_duration, parse_size};
use super::{
    Combine, DEFAULT_BATCH_SIZE, DEFAULT_CONCURRENCY, DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_LOCK_TIMEOUT, DEFAULT_MAX_OPEN_FILES, DEFAULT_RETRIES, DEFAULT_RETRY_FOR,
    DEFAULT_ROW_GROUP_SIZE, DEFAULT_STALL_TIMEOUT, Dataset, Incremental, JobConfig, LedgerSettings,
    RunArgs, RunOptions, ShardConfig, SourceConfig, Split, Table, TableMode, dates, shards, values,
};
use crate::error::{Error, Result};
use crate::sql::{ParamValue, Params, SqlTemplate};

/// Resolves `args` over the job file it names over the defaults. Without
/// `needs_output`, a missing output leaves an empty path (see
/// [`JobConfig::resolve_for_plan`]).
pub(super) fn resolve(args: RunArgs, needs_output: bool) -> Result<JobConfig> {
    let job = LoadedJob::read(args.job.as_deref())?;
    let shards = shards(&args, &job)?;
    // A fleet of MySQL shards only reads the query as MySQL does; any other, as
    // PostgreSQL does (see `crate::sql`).
    let mysql = shards
        .iter()
        .all(|s| matches!(s.source, SourceConfig::Mysql(_)));
    let query = Query::read(&args, &job, mysql)?;
    let as_of = as_of(&args, &job)?;
    let Resolved { params, relative } = params(&args, &job, &query, &as_of)?;
    let (output, remote) = output(&args, &job, needs_output, &params)?;
    let mut options = options(&args, &job)?;
    options.slicing = Slicing::resolve(
        args.slice,
        args.slices,
        std::env::var(INDEX_VAR).ok(),
        needs_output,
    )
    .map_err(|e| Error::config(None, e))?;
    options.snapshots = snapshots(&args, &shards, &options)?;
    check(&options, &shards, &query, &job)?;
    let combine = combine(&args, &job, &query, &params, &shards, &options)?;
    let mut ledger = ledger(&args, &job)?;
    let incremental = incremental(&job, &ledger, &combine)?;
    check_slicing(&options, &combine, incremental.is_some())?;
    if incremental.is_some() {
        // New rows may have come since: an incremental job always runs.
        ledger.skip_done = false;
    }
    let name = job_name(&job, &query.path)?;
    Ok(JobConfig {
        name,
        query_path: query.path,
        query_text: query.text,
        query: query.template,
        params,
        as_of,
        relative,
        shards,
        output,
        remote,
        options,
        combine,
        ledger,
        incremental,
    })
}

/// The job's `[incremental]` table, checked against how it runs.
fn incremental(
    job: &LoadedJob,
    ledger: &LedgerSettings,
    combine: &Combine,
) -> Result<Option<Incremental>> {
    use crate::plan::window::Lookback;
    let Some(file) = &job.file.incremental else {
        return Ok(None);
    };
    if file.column.trim().is_empty() {
        return Err(job.error("[incremental] column must name a column of the result"));
    }
    if ledger.path.is_none() {
        return Err(job.error(
            "[incremental] keeps each shard's mark in the run ledger: it cannot run with --no-ledger or `ledger = false`",
        ));
    }
    if matches!(combine, Combine::Split { .. }) {
        return Err(job.error(
            "[incremental] reads the rows that changed, but this query is combined across shards (aggregates, DISTINCT, ORDER BY or LIMIT): aggregate the incremental rows downstream, or use --combine off",
        ));
    }
    let lookback = match &file.lookback {
        None => None,
        Some(toml::Value::String(s)) => {
            Some(Lookback::Time(parse_duration(s).map_err(|e| {
                job.error(format!("[incremental] lookback: {e}"))
            })?))
        }
        Some(toml::Value::Integer(n)) if *n >= 0 => Some(Lookback::Count(*n)),
        Some(other) => {
            return Err(job.error(format!(
                "[incremental] lookback = {other}: expected a duration such as \"1h\" (date and timestamp columns) or a non-negative number (integer columns)"
            )));
        }
    };
    Ok(Some(Incremental {
        column: file.column.clone(),
        lookback,
        last: Default::default(),
    }))
}

/// For `tributary runs --job JOB.toml`: the job's name and the ledger it records to
/// (`ledger`: `--ledger`, which overrides the job's).
pub(super) fn job_ledger(
    path: &Path,
    ledger_flag: Option<PathBuf>,
) -> Result<(String, LedgerSettings)> {
    let job = LoadedJob::read(Some(path))?;
    let args = RunArgs {
        job: Some(path.to_owned()),
        ledger: ledger_flag,
        ..RunArgs::default()
    };
    Ok((job_name(&job, path)?, ledger(&args, &job)?))
}

/// The ledger: `--no-ledger`, else `--ledger`, else the job's `ledger` (a path, or
/// `false`), else the default place.
fn ledger(args: &RunArgs, job: &LoadedJob) -> Result<LedgerSettings> {
    let path = if args.no_ledger {
        None
    } else if let Some(path) = &args.ledger {
        Some(path.clone())
    } else {
        match &job.file.ledger {
            None => crate::ledger::default_path(),
            Some(toml::Value::Boolean(false)) => None,
            Some(toml::Value::String(path)) => Some(job.path_in(Path::new(path))),
            Some(other) => {
                return Err(job.error(format!(
                    "ledger = {other}: expected the ledger's path, or false for none"
                )));
            }
        }
    };
    let lock_timeout = duration(
        args.lock_timeout,
        &job.file.lock_timeout,
        "lock_timeout",
        job,
    )?
    .unwrap_or(DEFAULT_LOCK_TIMEOUT);
    let always = match job.file.rerun.as_deref() {
        None | Some("changed") => false,
        Some("always") => true,
        Some(other) => {
            return Err(job.error(format!(
                "rerun = {other:?}: expected \"changed\" (skip a run an identical one already did) or \"always\""
            )));
        }
    };
    Ok(LedgerSettings {
        path,
        chosen: args.ledger.is_some() || job.file.ledger.is_some(),
        skip_done: args.job.is_some() && !args.force && !always,
        force: args.force,
        lock_timeout,
    })
}

/// The job's name: `name` in the job file, else the job file's stem, else the query's.
fn job_name(job: &LoadedJob, query: &Path) -> Result<String> {
    if let Some(name) = &job.file.name {
        if name.trim().is_empty() || name.chars().any(char::is_control) {
            return Err(job.error(format!("name {name:?} must be non-empty printable text")));
        }
        return Ok(name.clone());
    }
    let from = job.path.as_deref().unwrap_or(query);
    Ok(from
        .file_stem()
        .map_or_else(|| "tributary".into(), |s| s.to_string_lossy().into_owned()))
}

/// `tributary check`: the whole job when it has a query, else its shards and options.
pub(super) fn resolve_for_check(args: RunArgs) -> Result<super::CheckTarget> {
    let job = LoadedJob::read(args.job.as_deref())?;
    if args.query.is_some() || job.file.query.is_some() {
        let config = resolve(args, false)?;
        return Ok(super::CheckTarget {
            shards: config.shards.clone(),
            options: config.options.clone(),
            job: Some(config),
        });
    }
    let shards = shards(&args, &job)?;
    let options = options(&args, &job)?;
    Ok(super::CheckTarget {
        shards,
        options,
        job: None,
    })
}

/// The query file, read and lexed.
struct Query {
    path: PathBuf,
    text: String,
    template: SqlTemplate,
}

impl Query {
    fn read(args: &RunArgs, job: &LoadedJob, mysql: bool) -> Result<Query> {
        let (path, text) = match &args.query_sql {
            Some(text) => (PathBuf::from(super::INLINE_QUERY), text.clone()),
            None => {
                let path = args
                    .query
                    .clone()
                    .or_else(|| job.file.query.as_deref().map(|p| job.path_in(p)))
                    .ok_or_else(|| {
                        Error::config(None, "no query: give QUERY.sql or a job file with `query`")
                    })?;
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| Error::config(Some(path.clone()), format!("cannot read: {e}")))?;
                (path, text)
            }
        };
        let template = match mysql {
            true => SqlTemplate::parse_mysql(&text),
            false => SqlTemplate::parse(&text),
        }
        .map_err(|e| query_error(&path, e))?;
        Ok(Query {
            path,
            text,
            template,
        })
    }
}

/// An error in the query file, naming it.
fn query_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::config(Some(path.to_owned()), e.to_string())
}

/// The shards: `--shards`, else the job file's `shards` (a file's path or a table).
fn shards(args: &RunArgs, job: &LoadedJob) -> Result<Vec<ShardConfig>> {
    if let Some(table) = &args.shard_table {
        let table = toml::Value::Table(table.clone());
        return shards::parse_table(&table, Path::new("."))
            .map_err(|e| Error::config(None, format!("shards: {}", crate::error::chain(&e))));
    }
    match (&args.shards, &job.file.shards) {
        (Some(path), _) => shards::load(path),
        (None, Some(toml::Value::String(path))) => shards::load(&job.path_in(Path::new(path))),
        (None, Some(table)) => {
            shards::parse_table(table, &job.dir).map_err(|e| job.error(crate::error::chain(&e)))
        }
        (None, None) => {
            Err(job.error("no shards: pass --shards SHARDS.toml or set `shards` in the job file"))
        }
    }
}

/// The output path, its template (`{name}`) filled in with the parameters; empty when
/// none is given and none is needed. An object-store URL gives the path it is staged at
/// and the remote output (see `storage`).
fn output(
    args: &RunArgs,
    job: &LoadedJob,
    needs_output: bool,
    params: &Params,
) -> Result<(PathBuf, Option<ObjectOutput>)> {
    let expand = |template: &Path| {
        super::output::expand(template, params)
            .map_err(|e| job.error(format!("output {}: {e}", template.display())))
    };
    let mut options = Vec::new();
    for (key, value) in &job.file.storage {
        let value = match value {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(n) => n.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => {
                return Err(job.error(format!(
                    "storage.{key}: `{other}` is not text, a number or a boolean"
                )));
            }
        };
        options.push((key.clone(), value));
    }
    options.extend(args.storage_options.iter().cloned());
    let given = args.output.as_ref().or(job.file.output.as_ref());
    if let Some(template) = given
        && storage::is_url(&template.to_string_lossy())
    {
        let text = expand(template)?.to_string_lossy().into_owned();
        let error = |e: StorageError| match args.output {
            Some(_) => Error::config(None, format!("-o {e}")),
            None => job.error(format!("output: {e}")),
        };
        return match storage::parse_output(&text, &options).map_err(error)? {
            OutputUrl::Local(path) => Ok((path, None)),
            OutputUrl::Object(remote) => Ok((remote.staging_path(), Some(*remote))),
        };
    }
    if !options.is_empty() {
        let shown = given.map_or(String::new(), |p| p.display().to_string());
        return Err(Error::config(
            None,
            StorageError::NotRemote(shown).to_string(),
        ));
    }
    let output = match (&args.output, &job.file.output) {
        (Some(output), _) => expand(output)?,
        (None, Some(output)) => job.path_in(&expand(output)?),
        (None, None) if !needs_output => PathBuf::new(),
        (None, None) => {
            return Err(job.error("no output: pass -o OUT.parquet or set `output` in the job file"));
        }
    };
    let given = !output.as_os_str().is_empty();
    let dataset = !args.partition_by.is_empty()
        || job.file.partition_by.is_some()
        || args.table_format.is_some()
        || job.file.table_format.is_some();
    if given && (output.file_name().is_none() || (output.is_dir() && !dataset)) {
        return Err(Error::config(
            None,
            format!("output {} must name a file", output.display()),
        ));
    }
    Ok((output, None))
}

/// The instant relative dates are evaluated against: `--as-of`, else the job's `as_of`,
/// else now; in the zone `--timezone`, else the job's `timezone`, else UTC.
fn as_of(args: &RunArgs, job: &LoadedJob) -> Result<DateTime<Tz>> {
    let zone = match (&args.timezone, &job.file.timezone) {
        (Some(name), _) => {
            dates::zone(name).map_err(|e| Error::config(None, format!("--timezone: {e}")))?
        }
        (None, Some(name)) => dates::zone(name).map_err(|e| job.error(format!("timezone: {e}")))?,
        (None, None) => Tz::UTC,
    };
    match (&args.as_of, &job.file.as_of) {
        (Some(text), _) => {
            dates::parse_as_of(text, zone).map_err(|e| Error::config(None, format!("--as-of: {e}")))
        }
        (None, Some(toml::Value::String(text))) => {
            dates::parse_as_of(text, zone).map_err(|e| job.error(format!("as_of: {e}")))
        }
        (None, Some(toml::Value::Datetime(d))) => {
            dates::parse_as_of(&d.to_string(), zone).map_err(|e| job.error(format!("as_of: {e}")))
        }
        (None, Some(other)) => {
            Err(job.error(format!("as_of: `{other}` is not a date or a timestamp")))
        }
        (None, None) => Ok(dates::now(zone)),
    }
}

/// The parameters' values, and the expressions of those given as relative dates.
struct Resolved {
    params: Params,
    relative: BTreeMap<String, String>,
}

/// The parameters: `--param` over the job file's `[params]`, exactly the ones the query
/// uses. Text values (every `--param`, the job file's strings) may be relative dates,
/// evaluated at `as_of` ([`dates`]).
fn params(
    args: &RunArgs,
    job: &LoadedJob,
    query: &Query,
    as_of: &DateTime<Tz>,
) -> Result<Resolved> {
    let mut resolved = Resolved {
        params: Params::new(),
        relative: BTreeMap::new(),
    };
    let mut set = |name: &str, (value, expression): (ParamValue, Option<String>)| {
        resolved.params.insert(name.to_string(), value);
        match expression {
            Some(e) => resolved.relative.insert(name.to_string(), e),
            None => resolved.relative.remove(name),
        };
    };
    for (name, value) in &job.file.params {
        let error = |e: &dyn std::fmt::Display| job.error(format!("params.{name}: {e}"));
        let value = match value {
            toml::Value::String(text) => text_param(text, as_of).map_err(|e| error(&e))?,
            other => (values::toml_param(other).map_err(|e| error(&e))?, None),
        };
        set(name, value);
    }
    for (name, text) in &args.params {
        let value = text_param(text, as_of)
            .map_err(|e| Error::config(None, format!("--param {name}: {e}")))?;
        set(name, value);
    }
    query
        .template
        .check_params(&resolved.params)
        .map_err(|e| query_error(&query.path, e))?;
    Ok(resolved)
}

/// A parameter given as text: its value and, for a relative date, the expression.
fn text_param(
    text: &str,
    as_of: &DateTime<Tz>,
) -> Result<(ParamValue, Option<String>), dates::DateError> {
    let (value, expression) = dates::resolve_text(text, as_of)?;
    Ok((ParamValue::Text(value), expression))
}

/// Every setting of the run besides the query, the shards and the output.
fn options(args: &RunArgs, job: &LoadedJob) -> Result<RunOptions> {
    let file = &job.file;
    let compression = match args.compression.as_ref().or(file.compression.as_ref()) {
        Some(s) => parse_compression(s).map_err(|e| job.error(e.to_string()))?,
        None => default_compression(),
    };
    let types = resolve_types(&file.types, args).map_err(|e| job.error(e.to_string()))?;
    let delta = choice(
        "encoding",
        args.encoding.as_ref().or(file.encoding.as_ref()),
        &[("delta", true), ("plain", false)],
    )
    .map_err(|e| job.error(e.to_string()))?;
    let statistics = choice(
        "statistics",
        args.statistics.as_ref().or(file.statistics.as_ref()),
        &[
            ("page", EnabledStatistics::Page),
            ("none", EnabledStatistics::None),
            ("chunk", EnabledStatistics::Chunk),
        ],
    )
    .map_err(|e| job.error(e.to_string()))?;
    let split = split(args, job)?;
    let (dataset, table) = table(dataset(args, job)?, args, job)?;
    Ok(RunOptions {
        concurrency: positive(
            args.concurrency.or(file.concurrency),
            DEFAULT_CONCURRENCY,
            "concurrency",
        )?,
        pool_size: args
            .pool_size
            .or(file.pool_size)
            .map(|n| positive(Some(n), n, "pool_size"))
            .transpose()?,
        query_timeout: duration(
            args.query_timeout,
            &file.query_timeout,
            "query_timeout",
            job,
        )?,
        connect_timeout: duration(
            args.connect_timeout,
            &file.connect_timeout,
            "connect_timeout",
            job,
        )?
        .unwrap_or(DEFAULT_CONNECT_TIMEOUT),
        shard_column: args.shard_column.clone().or(file.shard_column.clone()),
        compression,
        row_group_size: positive(
            args.row_group_size.or(file.row_group_size),
            DEFAULT_ROW_GROUP_SIZE,
            "row_group_size",
        )?,
        batch_size: DEFAULT_BATCH_SIZE,
        encoder_threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        allow_partial: args.allow_partial || file.allow_partial.unwrap_or(false),
        partition: partition::partition_spec(args, file.partition.as_ref())
            .map_err(|e| job.error(e.to_string()))?,
        consistent: !args.no_snapshot && !matches!(file.snapshot, Some(SnapshotSetting::On(false))),
        mysql_lock: !args.no_snapshot
            && match &file.snapshot {
                Some(SnapshotSetting::Mode(mode)) if mode == "lock" => true,
                Some(SnapshotSetting::Mode(other)) => {
                    return Err(job.error(format!(
                        "`snapshot` must be true, false or \"lock\", not \"{other}\""
                    )));
                }
                _ => false,
            },
        retries: args.retries.or(file.retries).unwrap_or(DEFAULT_RETRIES),
        retry_for: duration(args.retry_for, &file.retry_for, "retry_for", job)?
            .unwrap_or(DEFAULT_RETRY_FOR),
        stall_timeout: duration(
            args.stall_timeout,
            &file.stall_timeout,
            "stall_timeout",
            job,
        )?
        .or(Some(DEFAULT_STALL_TIMEOUT))
        .filter(|d| !d.is_zero()),
        report: file_path(
            args.report.clone(),
            file.report.as_deref().map(|p| job.path_in(p)),
            "report",
        )?,
        metrics_file: file_path(
            args.metrics_file.clone(),
            job.file.metrics_file.as_deref().map(|p| job.path_in(p)),
            "metrics file",
        )?,
        types: Arc::new(types),
        readers: {
            let mut readers = readers(args, job)?;
            // Spark is the reader a Delta table is written for: its forms (a uuid as
            // text, a time as microseconds) are those Delta's types hold.
            if table.is_some() {
                readers.insert(crate::types::Reader::Spark);
            }
            readers
        },
        dictionary: args.dictionary.or(file.dictionary).unwrap_or(true),
        delta,
        statistics,
        page_index: args.page_index.or(file.page_index).unwrap_or(true),
        split,
        dataset,
        table,
        slicing: None,
        snapshots: None,
        memory_limit: memory_limit(args, job)?,
    })
}

/// The dataset the output is, when partition columns are given: `--partition-by` over
/// the job's `partition_by`.
fn dataset(args: &RunArgs, job: &LoadedJob) -> Result<Option<Dataset>> {
    let file = &job.file;
    let columns: Vec<String> = if !args.partition_by.is_empty() {
        args.partition_by.clone()
    } else {
        match &file.partition_by {
            None => Vec::new(),
            Some(toml::Value::String(s)) => s.split(',').map(str::to_owned).collect(),
            Some(toml::Value::Array(list)) => list
                .iter()
                .map(|v| match v {
                    toml::Value::String(s) => Ok(s.clone()),
                    other => {
                        Err(job.error(format!("partition_by: `{other}` is not a column name")))
                    }
                })
                .collect::<Result<_>>()?,
            Some(other) => {
                return Err(job.error(format!(
                    "partition_by: `{other}` is not a list of column names"
                )));
            }
        }
    };
    let columns: Vec<String> = columns.iter().map(|c| c.trim().to_owned()).collect();
    let keep_columns = args.keep_partition_columns || file.keep_partition_columns.unwrap_or(false);
    let max_open_files = args.max_open_files.or(file.max_open_files);
    if columns.is_empty() {
        if keep_columns || max_open_files.is_some() {
            return Err(Error::config(
                None,
                "keep_partition_columns and max_open_files apply to a dataset: give --partition-by",
            ));
        }
        return Ok(None);
    }
    if columns.iter().any(String::is_empty) {
        return Err(Error::config(
            None,
            format!(
                "--partition-by: an empty column name in `{}`",
                columns.join(",")
            ),
        ));
    }
    for (i, c) in columns.iter().enumerate() {
        if columns[..i].contains(c) {
            return Err(Error::config(
                None,
                format!("--partition-by: column `{c}` is named twice"),
            ));
        }
    }
    let max_open_files = max_open_files.unwrap_or(DEFAULT_MAX_OPEN_FILES);
    if max_open_files == 0 {
        return Err(Error::config(None, "max_open_files must be at least 1"));
    }
    Ok(Some(Dataset {
        columns,
        keep_columns,
        max_open_files,
    }))
}

/// The snapshots file (`--snapshots`), read and checked against the shards: every
/// PostgreSQL shard must have its snapshot in it.
fn snapshots(
    args: &RunArgs,
    shards: &[ShardConfig],
    options: &RunOptions,
) -> Result<Option<Arc<Snapshots>>> {
    let Some(path) = &args.snapshots else {
        return Ok(None);
    };
    let snapshots =
        Snapshots::read(path).map_err(|e| Error::config(None, format!("--snapshots {e}")))?;
    if !options.consistent {
        return Err(Error::config(
            None,
            "--snapshots imports each shard's snapshot, and --no-snapshot (or `snapshot = false`) says to read none",
        ));
    }
    for shard in shards {
        if matches!(shard.source, SourceConfig::Postgres(_))
            && !snapshots.ids.contains_key(&shard.name)
        {
            return Err(Error::config(
                Some(path.clone()),
                format!(
                    "shard {} has no snapshot in this file: export the snapshots with the same shards file",
                    shard.name
                ),
            ));
        }
    }
    Ok(Some(Arc::new(snapshots)))
}

/// What a sliced run needs: slices commit into one Delta table (appending), read rows
/// that need no combining, and plan the same tasks on every machine.
fn check_slicing(options: &RunOptions, combine: &Combine, incremental: bool) -> Result<()> {
    let Some(slicing) = options.slicing else {
        return Ok(());
    };
    let err = |message: String| Err(Error::config(None, message));
    if slicing.index.is_none() {
        // `plan` shows the slices of any job; the rules are a run's.
        return Ok(());
    }
    match &options.table {
        None => {
            return err(
                "--slice: slices commit into one Delta table; give --table-format delta".into(),
            );
        }
        Some(table) if table.mode != TableMode::Append => {
            return err(format!(
                "--slice: slices append to the table; table_mode = {:?} would have each slice replace the others' rows",
                table.mode
            ).to_lowercase());
        }
        Some(_) => {}
    }
    if !matches!(combine, Combine::Off) {
        return err(
            "--slice: this query is combined across shards (aggregates, DISTINCT, ORDER BY or LIMIT), which no slice can do alone: slice with --combine off and aggregate the table".into(),
        );
    }
    if incremental {
        return err(
            "--slice: an incremental job's windows come from its ledger, which slices on other machines do not share".into(),
        );
    }
    // Range and page partitions are bounds a probe finds: slices probing at different
    // moments could split differently, and lose or repeat rows, unless they all read one
    // snapshot.
    let probed = matches!(
        options.partition,
        Some(PartitionSpec::Range { bounds: None, .. } | PartitionSpec::Pages { .. })
    );
    if probed && options.snapshots.is_none() {
        return err(
            "--slice with range or page partitions: each slice finds the partitions' bounds itself, and reads the same bounds only in one snapshot: give --snapshots FILE (tributary snapshot export), or partition by hash or predicates".into(),
        );
    }
    Ok(())
}

/// The table the output is, when `--table-format` (or the job's `table_format`) says
/// so: the dataset's partition columns become the table's. Returns the dataset and the
/// table, at most one of them.
fn table(
    dataset: Option<Dataset>,
    args: &RunArgs,
    job: &LoadedJob,
) -> Result<(Option<Dataset>, Option<Table>)> {
    let file = &job.file;
    let format = args.table_format.as_ref().or(file.table_format.as_ref());
    let mode = args.table_mode.as_ref().or(file.table_mode.as_ref());
    let Some(format) = format else {
        if mode.is_some() {
            return Err(Error::config(
                None,
                "table_mode applies to a table: give --table-format delta",
            ));
        }
        return Ok((dataset, None));
    };
    choice("table_format", Some(format), &[("delta", ())]).map_err(|e| job.error(e.to_string()))?;
    let mode = choice(
        "table_mode",
        mode,
        &[
            ("append", TableMode::Append),
            ("overwrite", TableMode::Overwrite),
            ("replace", TableMode::Replace),
        ],
    )
    .map_err(|e| job.error(e.to_string()))?;
    let layout = dataset.unwrap_or(Dataset {
        columns: Vec::new(),
        keep_columns: false,
        max_open_files: DEFAULT_MAX_OPEN_FILES,
    });
    if layout.keep_columns {
        return Err(Error::config(
            None,
            "keep_partition_columns: a Delta table's files never hold its partition columns \
             (readers take them from the table's log)",
        ));
    }
    if mode == TableMode::Replace && layout.columns.is_empty() {
        return Err(Error::config(
            None,
            "table_mode = replace replaces the partitions the run writes: give the table's \
             partition columns with --partition-by (or use overwrite)",
        ));
    }
    Ok((None, Some(Table { mode, layout })))
}

/// The readers the output is for: `--for` (every flag), else the job's `for` (a
/// string or a list of strings), else none.
fn readers(args: &RunArgs, job: &LoadedJob) -> Result<crate::types::Readers> {
    let mut readers = crate::types::Readers::default();
    if !args.readers.is_empty() {
        for value in &args.readers {
            readers
                .add(value)
                .map_err(|e| Error::config(None, format!("--for: {e}")))?;
        }
        return Ok(readers);
    }
    let values: Vec<&toml::Value> = match &job.file.readers {
        None => Vec::new(),
        Some(toml::Value::Array(list)) => list.iter().collect(),
        Some(value) => vec![value],
    };
    for value in values {
        let toml::Value::String(text) = value else {
            return Err(job.error(format!(
                "for = {value}: expected a reader's name or a list of them ({})",
                crate::types::Reader::NAMES.join(", ")
            )));
        };
        readers
            .add(text)
            .map_err(|e| job.error(format!("for: {e}")))?;
    }
    Ok(readers)
}

/// A file the run writes beside its output (`--report`, `--metrics-file`): the flag,
/// else the job's key (relative to the job file). It must name a file: it is replaced by
/// a temporary renamed over it.
fn file_path(flag: Option<PathBuf>, key: Option<PathBuf>, what: &str) -> Result<Option<PathBuf>> {
    match flag.or(key) {
        Some(p) if p.file_name().is_none() || p.is_dir() => Err(Error::config(
            None,
            format!("{what} {} must name a file", p.display()),
        )),
        path => Ok(path),
    }
}

/// `--memory-limit`, else the job's `memory_limit`, else the default.
fn memory_limit(args: &RunArgs, job: &LoadedJob) -> Result<u64> {
    let limit = match (&args.memory_limit, &job.file.memory_limit) {
        (Some(s), _) => {
            parse_size(s).map_err(|e| Error::config(None, format!("--memory-limit: {e}")))
        }
        (None, Some(toml::Value::Integer(n))) if *n > 0 => Ok(*n as u64),
        (None, Some(toml::Value::String(s))) => {
            parse_size(s).map_err(|e| job.error(format!("memory_limit: {e}")))
        }
        (None, Some(other)) => Err(job.error(format!(
            "memory_limit: `{other}` is not a size such as \"512MB\""
        ))),
        (None, None) => Ok(crate::combine::engine::DEFAULT_MEMORY_LIMIT),
    }?;
    // Below this, the final step's aggregation, sort and merge cannot all hold the
    // buffers they need at once, even while spilling: measured, a 300k-group GROUP BY
    // with ORDER BY failed 4 runs in 5 at 4MB and 2 in 5 at 8MB, none of 10 at 12MB.
    const FLOOR: u64 = 16_000_000;
    if limit < FLOOR {
        return Err(Error::config(
            None,
            format!("memory limit of {limit} bytes: the final step needs at least 16MB"),
        ));
    }
    Ok(limit)
}

/// How the job combines: `--merge` (or `--merge-file`, or the job's `merge`) over
/// `--combine` over the job's `combine` over the default, which splits the query when
/// it needs it. A query that needs combining and cannot be split fails here, before
/// any connection.
fn combine(
    args: &RunArgs,
    job: &LoadedJob,
    query: &Query,
    params: &Params,
    shards: &[ShardConfig],
    options: &RunOptions,
) -> Result<Combine> {
    let merge = match (&args.merge, &args.merge_file, &job.file.merge) {
        (Some(_), Some(_), _) => {
            return Err(Error::config(
                None,
                "give --merge or --merge-file, not both",
            ));
        }
        (Some(sql), None, _) => Some(sql.clone()),
        (None, Some(path), _) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| Error::config(Some(path.clone()), format!("cannot read: {e}")))?,
        ),
        (None, None, merge) => merge.clone(),
    };
    if let Some(sql) = merge {
        if sql.trim().is_empty() {
            return Err(Error::config(None, "--merge: the merge SQL is empty"));
        }
        return Ok(Combine::Merge(sql));
    }
    if !args.combine.or(job.file.combine).unwrap_or(true) {
        return Ok(Combine::Off);
    }
    let all_sqlite = shards
        .iter()
        .all(|s| matches!(s.source, SourceConfig::Sqlite(_)));
    // Range, hash and predicate partitions filter on a column of the input rows.
    let input_columns = matches!(
        options.partition,
        Some(
            PartitionSpec::Range { .. } | PartitionSpec::Hash { .. } | PartitionSpec::Predicates(_)
        )
    );
    let any_mysql = shards
        .iter()
        .any(|s| matches!(s.source, SourceConfig::Mysql(_)));
    let rewritten = if any_mysql {
        crate::combine::rewrite_mysql(&query.text, params, input_columns)
    } else {
        crate::combine::rewrite(&query.text, params, all_sqlite, input_columns)
    };
    let split = match rewritten.map_err(|e| query_error(&query.path, e))? {
        crate::combine::Rewrite::Stream => return Ok(Combine::Off),
        crate::combine::Rewrite::Combine(split) => split,
    };
    if let Some(column) = &options.shard_column {
        return Err(Error::config(
            None,
            format!(
                "--shard-column `{column}`: the query's rows are combined across shards, so no row has one shard; use --combine off for each shard's rows, or --merge with the shard column"
            ),
        ));
    }
    let rows = SqlTemplate::parse(&split.rows).map_err(|e| {
        query_error(
            &query.path,
            format!("the split query is invalid ({e}): {}", split.rows),
        )
    })?;
    Ok(Combine::Split {
        split: Arc::from(split),
        rows,
    })
}

/// A duration: the flag's, else the job file's `key` read as one.
fn duration(
    flag: Option<Duration>,
    file: &Option<String>,
    key: &str,
    job: &LoadedJob,
) -> Result<Option<Duration>> {
    match (flag, file) {
        (Some(d), _) => Ok(Some(d)),
        (None, Some(s)) => parse_duration(s)
            .map(Some)
            .map_err(|e| job.error(format!("{key}: {e}"))),
        (None, None) => Ok(None),
    }
}

/// A count that must be at least 1; `default` when not given.
fn positive(value: Option<usize>, default: usize, name: &str) -> Result<usize> {
    match value {
        Some(0) => Err(Error::config(None, format!("{name} must be at least 1"))),
        Some(n) => Ok(n),
        None => Ok(default),
    }
}

/// When the output is split into several files, if it is.
fn split(args: &RunArgs, job: &LoadedJob) -> Result<Option<Split>> {
    let max_bytes = match (&args.max_file_size, &job.file.max_file_size) {
        (Some(s), _) => Some(parse_size(s).map_err(|e| Error::config(None, e.to_string()))?),
        (None, Some(toml::Value::Integer(n))) if *n > 0 => Some(*n as u64),
        (None, Some(toml::Value::String(s))) => {
            Some(parse_size(s).map_err(|e| job.error(e.to_string()))?)
        }
        (None, Some(other)) => {
            return Err(job.error(format!(
                "max_file_size: `{other}` is not a size such as \"512MB\""
            )));
        }
        (None, None) => None,
    };
    let max_rows = args.max_file_rows.or(job.file.max_file_rows);
    if max_rows == Some(0) || max_bytes == Some(0) {
        return Err(Error::config(
            None,
            "max_file_rows and max_file_size must be at least 1",
        ));
    }
    Ok(
        (max_rows.is_some() || max_bytes.is_some()).then_some(Split {
            max_rows,
            max_bytes,
        }),
    )
}

/// What can be checked only with the options, the shards and the query together.
fn check(
    options: &RunOptions,
    shards: &[ShardConfig],
    query: &Query,
    job: &LoadedJob,
) -> Result<()> {
    if options.table.is_some() && options.allow_partial {
        // The commit names the run done (its txn action): a partial one would make a
        // rerun skip the shards that failed.
        return Err(Error::config(
            None,
            "allow_partial does not apply to a Delta table: a partial run's commit would \
             mark the run done, and its rerun would add nothing",
        ));
    }
    if let Some(spec) = &options.partition {
        partition::check_partition_sources(spec, shards).map_err(|e| job.error(e.to_string()))?;
        if matches!(spec, PartitionSpec::Pages { .. }) {
            partition::check_pages_query(&query.text).map_err(|e| query_error(&query.path, e))?;
        }
    }
    if let Some(col) = &options.shard_column
        && col.trim().is_empty()
    {
        return Err(Error::config(None, "--shard-column needs a column name"));
    }
    Ok(())
}
