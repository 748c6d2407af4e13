//! Resolves what the user typed, the job file and the defaults into one validated
//! [`JobConfig`]. Precedence: command-line flags, then the job file, then defaults.
//! Everything after this module consumes `JobConfig`; nothing below sees clap types.

pub mod partition;
mod pgpass;
pub mod shards;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::EnabledStatistics;

use crate::error::{Error, Result};
use crate::sql::{ParamValue, Params, SqlTemplate};
use crate::types::{TypeOverrides, TypeRules};

pub use partition::{PageSplit, PartitionSpec};
pub use shards::{ShardConfig, SourceConfig};

/// Fewest connections per shard when the pool size is not set: enough to overlap a query
/// with the next (and the describe step with the first query), light on the server.
pub const DEFAULT_POOL_SIZE: usize = 2;
/// Default number of tasks running at once across all shards.
pub const DEFAULT_CONCURRENCY: usize = 16;
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Rows per Parquet row group: large enough for good compression and fast scans,
/// small enough that one in-progress group per running task stays within memory.
pub const DEFAULT_ROW_GROUP_SIZE: usize = 1 << 17;
/// Rows per Arrow batch decoded from a source: a size that keeps builders in cache.
pub const DEFAULT_BATCH_SIZE: usize = 8192;
/// Further attempts of a task after a transient failure.
pub const DEFAULT_RETRIES: u32 = 3;
/// Retries stop once a task has been failing for this long.
pub const DEFAULT_RETRY_FOR: Duration = Duration::from_secs(600);
/// How long a running query may send nothing before it counts as stalled. Generous,
/// because a query may compute for a long time before its first row.
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(600);

/// The raw request, as typed on the command line (the CLI layer fills it from clap).
#[derive(Debug, Default, Clone)]
pub struct RunArgs {
    pub query: Option<PathBuf>,
    pub job: Option<PathBuf>,
    pub shards: Option<PathBuf>,
    pub output: Option<PathBuf>,
    /// `name=value` pairs, in the order given.
    pub params: Vec<(String, String)>,
    pub concurrency: Option<usize>,
    pub pool_size: Option<usize>,
    pub query_timeout: Option<Duration>,
    pub connect_timeout: Option<Duration>,
    pub shard_column: Option<String>,
    pub compression: Option<String>,
    pub row_group_size: Option<usize>,
    pub allow_partial: bool,
    /// `--partition-on COLUMN`: range partitions on this column.
    pub partition_on: Option<String>,
    /// `--partitions N`.
    pub partitions: Option<usize>,
    /// `--no-snapshot`: partitions read independently instead of from one snapshot.
    pub no_snapshot: bool,
    pub retries: Option<u32>,
    pub retry_for: Option<Duration>,
    pub stall_timeout: Option<Duration>,
    /// `--report PATH`: where to write the JSON run report.
    pub report: Option<PathBuf>,
    /// Type options for every column: `(key, value)`, e.g. `("numeric", "float64")`.
    pub type_options: Vec<(String, String)>,
    /// Type options for one column: `(column, key, value)`.
    pub column_types: Vec<(String, String, String)>,
    /// Parquet dictionary encoding.
    pub dictionary: Option<bool>,
    /// The encoding of values outside a dictionary: `delta` or `plain`.
    pub encoding: Option<String>,
    /// Parquet statistics: `none`, `chunk` or `page`.
    pub statistics: Option<String>,
    /// Write the page index (column and offset indexes).
    pub page_index: Option<bool>,
    /// Start a new output file past this many rows.
    pub max_file_rows: Option<u64>,
    /// Start a new output file past this many bytes (`512MB`, `2GiB`, or a number).
    pub max_file_size: Option<String>,
}

/// A validated job: everything the planner and the run need.
#[derive(Debug, Clone)]
pub struct JobConfig {
    /// Where the query came from, for messages and the output's metadata.
    pub query_path: PathBuf,
    /// The query text as written (with `:name` parameters).
    pub query_text: String,
    pub query: SqlTemplate,
    pub params: Params,
    pub shards: Vec<ShardConfig>,
    pub output: PathBuf,
    pub options: RunOptions,
}

#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Tasks running at once across all shards.
    pub concurrency: usize,
    /// Connections per shard unless the shard sets its own; `None` sizes each pool to
    /// its share of the work ([`JobConfig::pool_size`]).
    pub pool_size: Option<usize>,
    /// Deadline of one task; past it the statement is cancelled on the server.
    pub query_timeout: Option<Duration>,
    pub connect_timeout: Duration,
    /// Name of an added column holding each row's shard name.
    pub shard_column: Option<String>,
    pub compression: Compression,
    pub row_group_size: usize,
    pub batch_size: usize,
    /// Threads encoding a batch's Parquet columns at once: the machine's cores, since
    /// encoding and compressing is the costliest stage (docs/performance.md).
    pub encoder_threads: usize,
    /// Write what succeeded when some shards fail (exit code 7) instead of failing the run.
    pub allow_partial: bool,
    /// How each shard's query is split into tasks; `None` runs it whole.
    pub partition: Option<PartitionSpec>,
    /// Whether the partitions of one PostgreSQL shard read one exported snapshot.
    pub consistent: bool,
    /// Further attempts of a task after a transient failure (connection lost, server
    /// shutting down, too many connections, serialization failure).
    pub retries: u32,
    /// No retry starts once a task has been failing for this long.
    pub retry_for: Duration,
    /// A query silent for this long is stalled: cancelled, and retried. `None`: no bound.
    pub stall_timeout: Option<Duration>,
    /// Where to write the JSON run report.
    pub report: Option<PathBuf>,
    /// How source types are rendered (see `types` and docs/types.md).
    pub types: Arc<TypeRules>,
    /// Parquet dictionary encoding (on by default; off can suit unique values).
    pub dictionary: bool,
    /// Integer and byte-array columns outside a dictionary in Parquet's delta encodings
    /// (the default) rather than PLAIN; see `sink::file_properties`.
    pub delta: bool,
    /// Parquet statistics (page level by default: what readers use to skip data).
    pub statistics: EnabledStatistics,
    /// Write the page index: the offset index, and with page statistics the column index.
    pub page_index: bool,
    /// Splitting the output into several files; `None` writes one file.
    pub split: Option<Split>,
}

/// When to start the next output file. The files are named `STEM-00000.EXT`,
/// `STEM-00001.EXT`, ... after the output path `STEM.EXT` (see [`part_path`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Split {
    /// Past this many rows in a file (checked when a row group is closed).
    pub max_rows: Option<u64>,
    /// Past this many bytes written to a file (checked when a row group is closed).
    pub max_bytes: Option<u64>,
}

/// The path of output file `index` when the output is split: `out.parquet` ->
/// `out-00000.parquet`, `out-00001.parquet`, ...
pub fn part_path(output: &Path, index: usize) -> PathBuf {
    let stem = output
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match output.extension() {
        Some(ext) => format!("{stem}-{index:05}.{}", ext.to_string_lossy()),
        None => format!("{stem}-{index:05}"),
    };
    output.with_file_name(name)
}

/// The manifest of a split output, beside its parts: `out.parquet` ->
/// `out.manifest.json`. It lists exactly the parts of the run that wrote it and is written
/// last (see `sink::commit_parts`); its name matches no `out-*.parquet` glob.
pub fn manifest_path(output: &Path) -> PathBuf {
    let stem = output
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    output.with_file_name(format!("{stem}.manifest.json"))
}

/// The job file's keys. Paths in it are relative to the file.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct JobFile {
    query: Option<PathBuf>,
    shards: Option<toml::Value>,
    output: Option<PathBuf>,
    #[serde(default)]
    params: toml::Table,
    concurrency: Option<usize>,
    pool_size: Option<usize>,
    query_timeout: Option<String>,
    connect_timeout: Option<String>,
    shard_column: Option<String>,
    compression: Option<String>,
    row_group_size: Option<usize>,
    allow_partial: Option<bool>,
    partition: Option<partition::PartitionFile>,
    /// `false` turns off snapshot consistency across partitions.
    snapshot: Option<bool>,
    retries: Option<u32>,
    retry_for: Option<String>,
    stall_timeout: Option<String>,
    report: Option<PathBuf>,
    types: Option<toml::Table>,
    dictionary: Option<bool>,
    #[serde(alias = "text_encoding")]
    encoding: Option<String>,
    statistics: Option<String>,
    page_index: Option<bool>,
    max_file_rows: Option<u64>,
    max_file_size: Option<toml::Value>,
}

impl JobConfig {
    /// The connections `shard`'s pool may hold: the size the shard's entry or the job
    /// sets; else, for a partitioned job, as many as the partitions asked for (so that
    /// `--partitions 4` reads four at once) but no more than the shard's share of
    /// `concurrency` (so that the running tasks spread over the shards); else
    /// [`DEFAULT_POOL_SIZE`]. Connections open as tasks need them, so a shard never
    /// holds more than it runs.
    pub fn pool_size(&self, shard: &ShardConfig) -> usize {
        let options = &self.options;
        if let Some(n) = shard.pool_size.or(options.pool_size) {
            return n;
        }
        let asked = match &options.partition {
            None => return DEFAULT_POOL_SIZE,
            Some(
                PartitionSpec::Range { partitions, .. } | PartitionSpec::Hash { partitions, .. },
            ) => *partitions,
            Some(PartitionSpec::Predicates(list)) => list.len(),
            Some(PartitionSpec::Pages { split, .. }) => match split {
                PageSplit::Tasks(n) => *n,
                // Pieces of a fixed size: as many as the share allows.
                PageSplit::PerTask(_) => usize::MAX,
            },
        };
        let share = options.concurrency.div_ceil(self.shards.len().max(1));
        asked.min(share).max(DEFAULT_POOL_SIZE)
    }

    /// The first file the run writes: the output, or its part 0 when the output is split.
    pub fn first_output(&self) -> PathBuf {
        match self.options.split {
            Some(_) => part_path(&self.output, 0),
            None => self.output.clone(),
        }
    }

    /// Merges flags over the job file over defaults, reads the query and the shards, and
    /// checks the parameters. No connection is opened.
    pub fn resolve(args: RunArgs) -> Result<JobConfig> {
        JobConfig::resolve_with(args, true)
    }

    /// [`JobConfig::resolve`] for `tributary plan`, which writes nothing: the output may
    /// be missing, and the config then holds an empty `output` path, which a plan never
    /// reads (a run given such a config fails to create its output file).
    pub fn resolve_for_plan(args: RunArgs) -> Result<JobConfig> {
        JobConfig::resolve_with(args, false)
    }

    fn resolve_with(args: RunArgs, needs_output: bool) -> Result<JobConfig> {
        let (job, job_dir) = match &args.job {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| Error::config(Some(path.clone()), format!("cannot read: {e}")))?;
                let job: JobFile = toml::from_str(&text).map_err(|e| {
                    Error::config(Some(path.clone()), format!("invalid job file: {e}"))
                })?;
                (job, path.parent().unwrap_or(Path::new(".")).to_owned())
            }
            None => (JobFile::default(), PathBuf::from(".")),
        };
        let job_path = args.job.clone();
        let in_job = |p: &Path| job_dir.join(p);
        let job_err = |m: String| Error::config(job_path.clone(), m);

        let query_path = args
            .query
            .clone()
            .or_else(|| job.query.as_deref().map(in_job))
            .ok_or_else(|| {
                Error::config(None, "no query: give QUERY.sql or a job file with `query`")
            })?;
        let query_text = std::fs::read_to_string(&query_path)
            .map_err(|e| Error::config(Some(query_path.clone()), format!("cannot read: {e}")))?;
        let query = SqlTemplate::parse(&query_text)
            .map_err(|e| Error::config(Some(query_path.clone()), e.to_string()))?;

        let shards = match (&args.shards, &job.shards) {
            (Some(path), _) => shards::load(path)?,
            (None, Some(toml::Value::String(path))) => shards::load(&in_job(Path::new(path)))?,
            (None, Some(table)) => shards::parse_table(table, &job_dir)
                .map_err(|e| job_err(crate::error::chain(&e)))?,
            (None, None) => {
                return Err(Error::config(
                    job_path.clone(),
                    "no shards: pass --shards SHARDS.toml or set `shards` in the job file",
                ));
            }
        };

        let output = match args
            .output
            .clone()
            .or_else(|| job.output.as_deref().map(in_job))
        {
            Some(output) => output,
            None if !needs_output => PathBuf::new(),
            None => {
                return Err(Error::config(
                    job_path.clone(),
                    "no output: pass -o OUT.parquet or set `output` in the job file",
                ));
            }
        };
        let given = !output.as_os_str().is_empty();
        if given && (output.file_name().is_none() || output.is_dir()) {
            return Err(Error::config(
                None,
                format!("output {} must name a file", output.display()),
            ));
        }

        let mut params = Params::new();
        for (name, value) in &job.params {
            params.insert(
                name.clone(),
                toml_param(value).map_err(|m| job_err(format!("params.{name}: {m}")))?,
            );
        }
        for (name, value) in &args.params {
            params.insert(name.clone(), ParamValue::Text(value.clone()));
        }
        query
            .check_params(&params)
            .map_err(|e| Error::config(Some(query_path.clone()), e.to_string()))?;

        let duration = |flag: Option<Duration>,
                        file: &Option<String>,
                        key: &str|
         -> Result<Option<Duration>> {
            match (flag, file) {
                (Some(d), _) => Ok(Some(d)),
                (None, Some(s)) => parse_duration(s)
                    .map(Some)
                    .map_err(|m| job_err(format!("{key}: {m}"))),
                (None, None) => Ok(None),
            }
        };
        let compression = match args.compression.as_ref().or(job.compression.as_ref()) {
            Some(s) => parse_compression(s).map_err(|m| Error::config(job_path.clone(), m))?,
            None => default_zstd(),
        };
        let types =
            resolve_types(&job.types, &args).map_err(|m| Error::config(job_path.clone(), m))?;
        let delta = choice(
            "encoding",
            args.encoding.as_ref().or(job.encoding.as_ref()),
            &[("delta", true), ("plain", false)],
        )
        .map_err(job_err)?;
        let statistics = choice(
            "statistics",
            args.statistics.as_ref().or(job.statistics.as_ref()),
            &[
                ("page", EnabledStatistics::Page),
                ("none", EnabledStatistics::None),
                ("chunk", EnabledStatistics::Chunk),
            ],
        )
        .map_err(job_err)?;
        let max_bytes = match (&args.max_file_size, &job.max_file_size) {
            (Some(s), _) => Some(parse_size(s).map_err(|m| Error::config(None, m))?),
            (None, Some(toml::Value::Integer(n))) if *n > 0 => Some(*n as u64),
            (None, Some(toml::Value::String(s))) => Some(parse_size(s).map_err(&job_err)?),
            (None, Some(other)) => {
                return Err(job_err(format!(
                    "max_file_size: `{other}` is not a size such as \"512MB\""
                )));
            }
            (None, None) => None,
        };
        let max_rows = args.max_file_rows.or(job.max_file_rows);
        if max_rows == Some(0) || max_bytes == Some(0) {
            return Err(Error::config(
                None,
                "max_file_rows and max_file_size must be at least 1",
            ));
        }
        let split = (max_rows.is_some() || max_bytes.is_some()).then_some(Split {
            max_rows,
            max_bytes,
        });
        let options = RunOptions {
            concurrency: positive(
                args.concurrency.or(job.concurrency),
                DEFAULT_CONCURRENCY,
                "concurrency",
            )?,
            pool_size: args
                .pool_size
                .or(job.pool_size)
                .map(|n| positive(Some(n), n, "pool_size"))
                .transpose()?,
            query_timeout: duration(args.query_timeout, &job.query_timeout, "query_timeout")?,
            connect_timeout: duration(
                args.connect_timeout,
                &job.connect_timeout,
                "connect_timeout",
            )?
            .unwrap_or(DEFAULT_CONNECT_TIMEOUT),
            shard_column: args.shard_column.clone().or(job.shard_column.clone()),
            compression,
            row_group_size: positive(
                args.row_group_size.or(job.row_group_size),
                DEFAULT_ROW_GROUP_SIZE,
                "row_group_size",
            )?,
            batch_size: DEFAULT_BATCH_SIZE,
            encoder_threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            allow_partial: args.allow_partial || job.allow_partial.unwrap_or(false),
            partition: partition::partition_spec(&args, job.partition.as_ref())
                .map_err(|m| Error::config(job_path.clone(), m))?,
            consistent: !args.no_snapshot && job.snapshot.unwrap_or(true),
            retries: args.retries.or(job.retries).unwrap_or(DEFAULT_RETRIES),
            retry_for: duration(args.retry_for, &job.retry_for, "retry_for")?
                .unwrap_or(DEFAULT_RETRY_FOR),
            stall_timeout: duration(args.stall_timeout, &job.stall_timeout, "stall_timeout")?
                .or(Some(DEFAULT_STALL_TIMEOUT))
                .filter(|d| !d.is_zero()),
            report: args
                .report
                .clone()
                .or_else(|| job.report.as_deref().map(in_job)),
            types: Arc::new(types),
            dictionary: args.dictionary.or(job.dictionary).unwrap_or(true),
            delta,
            statistics,
            page_index: args.page_index.or(job.page_index).unwrap_or(true),
            split,
        };
        if let Some(spec) = &options.partition {
            partition::check_partition_sources(spec, &shards)
                .map_err(|m| Error::config(job_path.clone(), m))?;
            if matches!(spec, PartitionSpec::Pages { .. }) {
                partition::check_pages_query(&query_text)
                    .map_err(|e| Error::config(Some(query_path.clone()), e.to_string()))?;
            }
        }
        if let Some(col) = &options.shard_column
            && col.trim().is_empty()
        {
            return Err(Error::config(None, "--shard-column needs a column name"));
        }
        Ok(JobConfig {
            query_path,
            query_text,
            query,
            params,
            shards,
            output,
            options,
        })
    }
}

/// The type options: the job file's `[types]` table (global keys, and a `columns` table
/// of per-column tables), then `--type` and `--column-type` flags over it, key by key.
fn resolve_types(
    table: &Option<toml::Table>,
    args: &RunArgs,
) -> std::result::Result<TypeRules, String> {
    let mut rules = TypeRules::default();
    let text = |v: &toml::Value| match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    for (key, value) in table.iter().flatten() {
        if key == "columns" {
            let columns = value
                .as_table()
                .ok_or("types.columns must be a table of column names")?;
            for (column, options) in columns {
                let options = options.as_table().ok_or_else(|| {
                    format!("types.columns.{column} must be a table of type options")
                })?;
                let entry = rules.columns.entry(column.clone()).or_default();
                for (key, value) in options {
                    entry
                        .set(key, &text(value))
                        .map_err(|e| format!("types.columns.{column}.{e}"))?;
                }
            }
        } else {
            rules
                .global
                .set(key, &text(value))
                .map_err(|e| format!("types.{e}"))?;
        }
    }
    let mut flags = TypeOverrides::default();
    for (key, value) in &args.type_options {
        flags.set(key, value).map_err(|e| format!("--type {e}"))?;
    }
    rules.global.overlay(&flags);
    for (column, key, value) in &args.column_types {
        let mut flag = TypeOverrides::default();
        flag.set(key, value)
            .map_err(|e| format!("--column-type {column}:{e}"))?;
        rules
            .columns
            .entry(column.clone())
            .or_default()
            .overlay(&flag);
    }
    Ok(rules)
}

/// A size in bytes: `1048576`, `512MB`, `512MiB`, `2G`, `2GiB` (KB/MB/GB are powers of 1000).
pub fn parse_size(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("invalid size `{s}`; try 512MB or 1GiB"))?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        _ => return Err(format!("invalid size `{s}`; try 512MB or 1GiB")),
    };
    number
        .checked_mul(factor)
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("invalid size `{s}`"))
}

fn positive(value: Option<usize>, default: usize, name: &str) -> Result<usize> {
    match value {
        Some(0) => Err(Error::config(None, format!("{name} must be at least 1"))),
        Some(n) => Ok(n),
        None => Ok(default),
    }
}

fn toml_param(value: &toml::Value) -> std::result::Result<ParamValue, String> {
    Ok(match value {
        toml::Value::String(s) => ParamValue::Text(s.clone()),
        toml::Value::Integer(i) => ParamValue::Int(*i),
        toml::Value::Float(f) => ParamValue::Float(*f),
        toml::Value::Boolean(b) => ParamValue::Bool(*b),
        toml::Value::Datetime(d) => ParamValue::Text(d.to_string()),
        _ => return Err("must be a string, number, boolean or date".into()),
    })
}

/// The value of a setting that names one of `options` (case-insensitive); the first
/// option when the setting is absent.
fn choice<T: Copy>(
    key: &str,
    value: Option<&String>,
    options: &[(&str, T)],
) -> std::result::Result<T, String> {
    let Some(value) = value else {
        return Ok(options[0].1);
    };
    let wanted = value.trim().to_ascii_lowercase();
    options
        .iter()
        .find(|(name, _)| *name == wanted)
        .map(|(_, v)| *v)
        .ok_or_else(|| {
            let names: Vec<&str> = options.iter().map(|(name, _)| *name).collect();
            format!("{key}: `{value}` is not one of {}", names.join(", "))
        })
}

/// A human duration: `30s`, `5m`, `1h30m`, `250ms`.
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("invalid duration `{s}` ({e}); try 30s, 5m or 1h"))
}

/// zstd's level when none is given: zstd's fastest regular level, as the parquet crate and
/// Arrow C++ default to. With text columns in DELTA_LENGTH_BYTE_ARRAY (see `sink`) it
/// writes the lineitem benchmark smaller than pg2parquet does at level 3, for about 15%
/// less CPU than level 3 (docs/performance.md).
pub const DEFAULT_ZSTD_LEVEL: i32 = 1;

fn default_zstd() -> Compression {
    Compression::ZSTD(ZstdLevel::try_new(DEFAULT_ZSTD_LEVEL).expect("a valid zstd level"))
}

/// `zstd`, `zstd:9`, `snappy`, `lz4`, `none`.
pub fn parse_compression(s: &str) -> std::result::Result<Compression, String> {
    let lower = s.trim().to_ascii_lowercase();
    let (name, level) = match lower.split_once([':', '(']) {
        Some((n, l)) => (n, Some(l.trim_end_matches(')'))),
        None => (lower.as_str(), None),
    };
    let level: Option<i32> = level
        .map(|l| {
            l.parse()
                .map_err(|_| format!("invalid compression level in `{s}`"))
        })
        .transpose()?;
    match (name, level) {
        ("zstd", None) => Ok(default_zstd()),
        ("zstd", Some(l)) => ZstdLevel::try_new(l)
            .map(Compression::ZSTD)
            .map_err(|_| format!("zstd level must be from 1 to 22, not {l}")),
        ("snappy", None) => Ok(Compression::SNAPPY),
        ("lz4", None) => Ok(Compression::LZ4_RAW),
        ("none" | "uncompressed", None) => Ok(Compression::UNCOMPRESSED),
        _ => Err(format!(
            "unknown compression `{s}`: use zstd, zstd:LEVEL, snappy, lz4 or none"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn flags_override_the_job_file_which_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "q.sql", "SELECT :day, :n");
        write(
            dir.path(),
            "shards.toml",
            "[shards]\na = \"sqlite://a.db\"\n",
        );
        let job = write(
            dir.path(),
            "job.toml",
            r#"
            query = "q.sql"
            shards = "shards.toml"
            output = "out.parquet"
            concurrency = 3
            query_timeout = "5m"
            [params]
            day = 2024-01-31
            n = 7
            "#,
        );
        let config = JobConfig::resolve(RunArgs {
            job: Some(job),
            concurrency: Some(9),
            params: vec![("n".into(), "8".into())],
            ..Default::default()
        })
        .unwrap();
        assert_eq!(config.options.concurrency, 9);
        assert_eq!(config.options.query_timeout, Some(Duration::from_secs(300)));
        assert_eq!(config.options.pool_size, None);
        assert_eq!(config.output, dir.path().join("out.parquet"));
        assert_eq!(config.params["day"], ParamValue::Text("2024-01-31".into()));
        assert_eq!(config.params["n"], ParamValue::Text("8".into()));
        match &config.shards[0].source {
            SourceConfig::Sqlite(s) => assert_eq!(s.path, dir.path().join("a.db")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn pools_hold_a_connection_per_partition_within_the_shards_share() {
        let dir = tempfile::tempdir().unwrap();
        let query = write(dir.path(), "q.sql", "SELECT 1 AS x");
        let mut shards =
            String::from("[shards]\nown = { url = \"sqlite://o.db\", pool_size = 5 }\n");
        for i in 0..7 {
            shards.push_str(&format!("s{i} = \"sqlite://{i}.db\"\n"));
        }
        let shards = write(dir.path(), "shards.toml", &shards);
        // The pool sizes of the shard with its own size and of the others.
        let sizes = |args: RunArgs| {
            let config = JobConfig::resolve(RunArgs {
                query: Some(query.clone()),
                shards: Some(shards.clone()),
                output: Some(dir.path().join("o.parquet")),
                ..args
            })
            .unwrap();
            let size = |i: usize| config.pool_size(&config.shards[i]);
            (size(0), size(1))
        };
        let ranges = |partitions, concurrency| RunArgs {
            partition_on: Some("x".into()),
            partitions: Some(partitions),
            concurrency: Some(concurrency),
            ..Default::default()
        };
        assert_eq!(sizes(RunArgs::default()), (5, DEFAULT_POOL_SIZE));
        // 8 shards share 64 slots: 8 each, and 6 partitions need 6.
        assert_eq!(sizes(ranges(6, 64)), (5, 6));
        assert_eq!(sizes(ranges(12, 64)), (5, 8));
        // A small share still overlaps a query with the next.
        assert_eq!(sizes(ranges(12, 8)), (5, DEFAULT_POOL_SIZE));
        let set = RunArgs {
            pool_size: Some(3),
            ..ranges(12, 64)
        };
        assert_eq!(sizes(set), (5, 3));
    }

    #[test]
    fn missing_parameter_names_the_query_file() {
        let dir = tempfile::tempdir().unwrap();
        let q = write(dir.path(), "q.sql", "SELECT :day");
        let s = write(
            dir.path(),
            "shards.toml",
            "[shards]\na = \"sqlite://a.db\"\n",
        );
        let err = JobConfig::resolve(RunArgs {
            query: Some(q.clone()),
            shards: Some(s),
            output: Some(dir.path().join("o.parquet")),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(err.exit_code(), crate::error::exit::CONFIG);
        let msg = err.to_string();
        assert!(msg.contains("q.sql") && msg.contains(":day"), "{msg}");
    }

    #[test]
    fn unknown_job_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let job = write(dir.path(), "job.toml", "qeury = \"q.sql\"\n");
        let msg = JobConfig::resolve(RunArgs {
            job: Some(job),
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(msg.contains("job.toml") && msg.contains("qeury"), "{msg}");
    }

    #[test]
    fn compression_names() {
        assert_eq!(
            parse_compression("zstd:9").unwrap(),
            Compression::ZSTD(ZstdLevel::try_new(9).unwrap())
        );
        assert_eq!(
            parse_compression("ZSTD(3)").unwrap(),
            Compression::ZSTD(ZstdLevel::try_new(3).unwrap())
        );
        assert_eq!(
            parse_compression("none").unwrap(),
            Compression::UNCOMPRESSED
        );
        assert!(parse_compression("zstd:99").is_err());
        assert!(parse_compression("gzip").is_err());
    }

    #[test]
    fn type_options_flags_over_job_file_key_by_key() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "q.sql", "SELECT 1");
        let job = write(
            dir.path(),
            "job.toml",
            r#"
            query = "q.sql"
            shards = { a = "sqlite://a.db" }
            output = "out.parquet"
            max_file_size = "64MiB"
            statistics = "chunk"
            encoding = "Plain"
            [types]
            numeric = "float64"
            infinity = "null"
            [types.columns.amount]
            numeric = "decimal(20,4)"
            [types.columns.m]
            array_dims = 2
            text = false
            "#,
        );
        let config = JobConfig::resolve(RunArgs {
            job: Some(job.clone()),
            type_options: vec![("infinity".into(), "clamp".into())],
            column_types: vec![("tags".into(), "text".into(), "true".into())],
            ..Default::default()
        })
        .unwrap();
        let types = &config.options.types;
        let o = types.for_column("other");
        assert_eq!(o.numeric, crate::types::NumericMode::Float64);
        assert_eq!(o.infinity, crate::types::InfinityMode::Clamp);
        assert_eq!(
            types.for_column("amount").numeric.to_string(),
            "decimal(20,4)"
        );
        assert_eq!(types.for_column("m").array_dims, 2);
        assert!(types.for_column("tags").text);
        assert_eq!(config.options.statistics, EnabledStatistics::Chunk);
        assert!(!config.options.delta);
        assert_eq!(
            config.options.split,
            Some(Split {
                max_rows: None,
                max_bytes: Some(64 << 20)
            })
        );

        let err = JobConfig::resolve(RunArgs {
            job: Some(job),
            column_types: vec![("x".into(), "numeric".into(), "float32".into())],
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("--column-type x:numeric") && err.contains("float64"),
            "{err}"
        );
    }

    #[test]
    fn sizes_and_part_names() {
        assert_eq!(parse_size("512MB").unwrap(), 512_000_000);
        assert_eq!(parse_size("2GiB").unwrap(), 2 << 30);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("lots").is_err());
        assert!(parse_size("0").is_err());
        assert_eq!(
            part_path(Path::new("/d/out.parquet"), 3),
            Path::new("/d/out-00003.parquet")
        );
        assert_eq!(part_path(Path::new("out"), 0), Path::new("out-00000"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert!(parse_duration("soon").unwrap_err().contains("soon"));
    }
}
