//! Resolves what the user typed, the job file and the defaults into one validated
//! [`JobConfig`]. Precedence: command-line flags, then the job file, then defaults.
//! Everything after this module consumes `JobConfig`; nothing below sees clap types.
//!
//! By concern: the job file (`job_file`), the shards file ([`shards`], with `pgpass`),
//! environment variables in both (`interpolate`), setting values such as sizes and durations ([`values`]), relative dates in parameters
//! ([`dates`]), the partition settings ([`partition`]), the type options
//! (`type_options`), the output's file names (`output`), and the one step that resolves
//! them all in order (`resolve`).

pub mod conninfo;
pub mod dates;
mod interpolate;
mod job_file;
pub mod mysql;
mod output;
pub mod partition;
mod pgpass;
mod resolve;
pub mod shards;
pub mod slices;
pub mod storage;
mod type_options;
pub mod values;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parquet::basic::Compression;
use parquet::file::properties::EnabledStatistics;

use crate::error::Result;
use crate::sql::{Params, SqlTemplate};
use crate::types::TypeRules;

pub use output::{
    DEFAULT_MAX_OPEN_FILES, Dataset, Split, Table, TableMode, manifest_path, part_index, part_path,
};
pub use partition::{PageSplit, PartitionSettingError, PartitionSpec};
pub use shards::{ShardConfig, SourceConfig};
pub use slices::{Slicing, Snapshots};
pub use storage::{ObjectOutput, StorageError};
pub use type_options::TypeOptionsError;
pub use values::SettingError;

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
/// What messages call a query given as text rather than as a file.
pub const INLINE_QUERY: &str = "(query)";

#[derive(Debug, Default, Clone)]
pub struct RunArgs {
    pub query: Option<PathBuf>,
    /// The query's text itself, instead of a file (the Python package's `read_sql`);
    /// messages name it [`INLINE_QUERY`].
    pub query_sql: Option<String>,
    pub job: Option<PathBuf>,
    pub shards: Option<PathBuf>,
    /// The shards as a table (a shards file's `[shards]` table), instead of a file;
    /// relative SQLite paths are from the working directory.
    pub shard_table: Option<toml::Table>,
    pub output: Option<PathBuf>,
    /// `--storage-option KEY=VALUE` pairs, in the order given (over the job's `[storage]`).
    pub storage_options: Vec<(String, String)>,
    /// `name=value` pairs, in the order given.
    pub params: Vec<(String, String)>,
    /// `--as-of DATE|TIMESTAMP`: the instant relative dates are evaluated against.
    pub as_of: Option<String>,
    /// `--timezone ZONE`: the IANA zone relative dates are evaluated in.
    pub timezone: Option<String>,
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
    /// `--metrics-file PATH`: where to write the run's metrics (Prometheus text format).
    pub metrics_file: Option<PathBuf>,
    /// Type options for every column: `(key, value)`, e.g. `("numeric", "float64")`.
    pub type_options: Vec<(String, String)>,
    /// Type options for one column: `(column, key, value)`.
    pub column_types: Vec<(String, String, String)>,
    /// `--for READER`: the readers the output is for, each a name, `any` or a comma list.
    pub readers: Vec<String>,
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
    /// `--partition-by COLS`: write a Hive-partitioned dataset by these columns.
    pub partition_by: Vec<String>,
    /// `--keep-partition-columns`: the dataset's files hold the partition columns too.
    pub keep_partition_columns: bool,
    /// `--max-open-files N`: a dataset's files open at once.
    pub max_open_files: Option<usize>,
    /// `--table-format delta`: write a Delta Lake table.
    pub table_format: Option<String>,
    /// `--table-mode MODE`: `append`, `overwrite` or `replace`.
    pub table_mode: Option<String>,
    /// `--slice I/N`: run slice I (from 0) of N.
    pub slice: Option<(usize, usize)>,
    /// `--slices N`: the plan in N slices (a run's is JOB_COMPLETION_INDEX's).
    pub slices: Option<usize>,
    /// `--snapshots FILE`: the snapshots `tributary snapshot export` holds.
    pub snapshots: Option<PathBuf>,
    /// `--combine on|off`: split the query across shards when it needs it (on, the
    /// default), or concatenate the shards' rows.
    pub combine: Option<bool>,
    /// `--merge SQL`: the final step over the table `shards`.
    pub merge: Option<String>,
    /// `--merge-file FILE`: the final step's SQL, from a file.
    pub merge_file: Option<PathBuf>,
    /// `--memory-limit SIZE`: what the final step holds before it spills to disk.
    pub memory_limit: Option<String>,
    /// `--ledger PATH`: the run ledger's database.
    pub ledger: Option<PathBuf>,
    /// `--no-ledger`: record nothing, take no lock, skip nothing.
    pub no_ledger: bool,
    /// `--force`: run even when an identical run already succeeded.
    pub force: bool,
    /// `--lock-timeout`: past it, a lock is taken over even if its holder may live.
    pub lock_timeout: Option<Duration>,
}

/// A validated job: everything the planner and the run need.
#[derive(Debug, Clone)]
pub struct JobConfig {
    /// The job's name: the job file's `name`, else the job file's stem, else the query
    /// file's.
    pub name: String,
    /// Where the query came from, for messages and the output's metadata.
    pub query_path: PathBuf,
    /// The query text as written (with `:name` parameters).
    pub query_text: String,
    pub query: SqlTemplate,
    /// The parameters' values, relative dates evaluated.
    pub params: Params,
    /// The instant relative dates were evaluated against, in the job's time zone:
    /// `--as-of`, else the job's `as_of`, else when the job was resolved (the run's
    /// start), to the second; the zone is `--timezone`, else `timezone`, else UTC.
    pub as_of: chrono::DateTime<chrono_tz::Tz>,
    /// The parameters given as relative dates: the expression each one's value was
    /// evaluated from (`@today-7d`), by name, so that the plan, the report and the
    /// output's metadata show where a value came from.
    pub relative: BTreeMap<String, String>,
    pub shards: Vec<ShardConfig>,
    /// The local output path; for a remote output, where it is staged while it uploads.
    pub output: PathBuf,
    /// The output in object storage, when the output is given as such a URL.
    pub remote: Option<ObjectOutput>,
    pub options: RunOptions,
    /// How the shards' results are combined.
    pub combine: Combine,
    /// The run ledger, the job's lock and reruns.
    pub ledger: LedgerSettings,
    /// `[incremental]`: each shard reads only the rows past its last mark.
    pub incremental: Option<Incremental>,
}

/// An incremental job's settings, and the marks its last successful run recorded.
#[derive(Debug, Clone)]
pub struct Incremental {
    /// The result's column whose values grow as rows are written.
    pub column: String,
    pub lookback: Option<crate::plan::window::Lookback>,
    /// Each shard's mark from the last successful run (from the ledger); a shard
    /// without one reads everything up to its probed mark.
    pub last: std::collections::BTreeMap<String, crate::plan::window::Mark>,
}

/// Where runs are recorded, and how a run treats the runs before it.
#[derive(Debug, Clone)]
pub struct LedgerSettings {
    /// The ledger's database; `None`: no ledger (`--no-ledger`, or no home directory).
    pub path: Option<PathBuf>,
    /// Whether the path was given (`--ledger`, the job's `ledger`) rather than the
    /// default: a default ledger that cannot be opened (a read-only home directory) lets
    /// the run go on unrecorded, with a warning.
    pub chosen: bool,
    /// Skip a run whose identity already succeeded with its files intact: on for jobs
    /// (`--job`), unless `--force`.
    pub skip_done: bool,
    /// `--force`: run even what is done (a table's run it already holds, too).
    pub force: bool,
    /// A lock older than this is taken over even if its holder may still live.
    pub lock_timeout: Duration,
}

/// The default `--lock-timeout`: longer than any nightly run should take.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// How a job combines the shards' results.
#[derive(Debug, Clone)]
pub enum Combine {
    /// The shards' rows, concatenated: the query needs no combining, or `--combine off`.
    Off,
    /// The query split by tributary: the shards run `rows` under the split's partial
    /// step, the final step combines.
    Split {
        split: Arc<crate::combine::Split>,
        rows: SqlTemplate,
    },
    /// The user's final step (`--merge`) over the shards' whole results.
    Merge(String),
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
    /// `snapshot = "lock"`: a partitioned MySQL shard's partitions start their snapshots
    /// together under `FLUSH TABLES WITH READ LOCK`, before any of them runs, and hold
    /// them (one connection each) until their turn.
    pub mysql_lock: bool,
    /// Further attempts of a task after a transient failure (connection lost, server
    /// shutting down, too many connections, serialization failure).
    pub retries: u32,
    /// No retry starts once a task has been failing for this long.
    pub retry_for: Duration,
    /// A query silent for this long is stalled: cancelled, and retried. `None`: no bound.
    pub stall_timeout: Option<Duration>,
    /// Where to write the JSON run report.
    pub report: Option<PathBuf>,
    /// Where to write the run's metrics for node_exporter's textfile collector, after
    /// every run that got this far, successful or not (see `metrics`).
    pub metrics_file: Option<PathBuf>,
    /// How source types are rendered (see `types` and docs/types.md).
    pub types: Arc<TypeRules>,
    /// The readers the output is for (`--for`): columns are written in forms they all
    /// read (see `types::Profile`); empty: as the type table says, with a warning for
    /// columns common readers cannot open.
    pub readers: crate::types::Readers,
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
    /// Writing a Hive-partitioned dataset (a directory) instead of a file.
    pub dataset: Option<Dataset>,
    /// Committing to a table (Delta Lake) instead; `dataset` is then `None`, the
    /// table's partition columns being in its layout.
    pub table: Option<Table>,
    /// The plan split into slices, and the slice this run runs (see `plan::slices`).
    pub slicing: Option<Slicing>,
    /// Each PostgreSQL shard's snapshot, held by `tributary snapshot export`, by shard
    /// name: imported instead of exported.
    pub snapshots: Option<Arc<Snapshots>>,
    /// What the final step across shards holds in memory before it spills to disk.
    pub memory_limit: u64,
}

/// For `tributary runs --job JOB.toml`: the job's name, and its ledger settings with
/// `ledger` (the `--ledger` flag) over the job file's.
pub fn job_ledger(path: &Path, ledger: Option<PathBuf>) -> Result<(String, LedgerSettings)> {
    resolve::job_ledger(path, ledger)
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
                // Ranges of a fixed size: as many as the share allows.
                PageSplit::PerTask(_) => usize::MAX,
            },
        };
        let share = options.concurrency.div_ceil(self.shards.len().max(1));
        asked.min(share).max(DEFAULT_POOL_SIZE)
    }

    /// The IANA name of the zone relative dates were evaluated in (`UTC`, `Europe/Berlin`).
    pub fn timezone(&self) -> &'static str {
        self.as_of.timezone().name()
    }

    /// The output as the user gave it: the path, or the remote output's URL.
    pub fn output_display(&self) -> String {
        match &self.remote {
            Some(remote) => remote.display(),
            None => self.output.display().to_string(),
        }
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
        resolve::resolve(args, true)
    }

    /// [`JobConfig::resolve`] for `tributary plan`, which writes nothing: the output may
    /// be missing, and the config then holds an empty `output` path, which a plan never
    /// reads (a run given such a config fails to create its output file).
    pub fn resolve_for_plan(args: RunArgs) -> Result<JobConfig> {
        resolve::resolve(args, false)
    }
}

/// What `tributary check` checks: the shards, with the run's options, and the whole job
/// when a query is given (its columns are described on every shard).
#[derive(Debug, Clone)]
pub struct CheckTarget {
    pub shards: Vec<ShardConfig>,
    pub options: RunOptions,
    pub job: Option<JobConfig>,
}

impl CheckTarget {
    /// Resolves `args` as a run would; without a query (no QUERY.sql, no `query` in the
    /// job file), only the shards and the options.
    pub fn resolve(args: RunArgs) -> Result<CheckTarget> {
        resolve::resolve_for_check(args)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::sql::ParamValue;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn a_dataset_takes_its_columns_from_the_flag_over_the_job_file() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "q.sql", "SELECT 1 AS a, 2 AS b");
        write(
            dir.path(),
            "shards.toml",
            "[shards]\na = \"sqlite://a.db\"\n",
        );
        std::fs::create_dir(dir.path().join("lake")).unwrap();
        for (partition_by, columns) in [
            (r#"["region", "day"]"#, vec!["region", "day"]),
            (r#""region, day""#, vec!["region", "day"]),
        ] {
            let job = write(
                dir.path(),
                "job.toml",
                &format!(
                    "query = \"q.sql\"\nshards = \"shards.toml\"\noutput = \"lake\"\n\
                     partition_by = {partition_by}\nmax_open_files = 7\n"
                ),
            );
            let config = JobConfig::resolve(RunArgs {
                job: Some(job.clone()),
                ..Default::default()
            })
            .unwrap();
            let dataset = config.options.dataset.unwrap();
            assert_eq!(dataset.columns, columns);
            assert_eq!(dataset.max_open_files, 7);
            assert!(!dataset.keep_columns);
            // An existing directory is a dataset's output.
            assert_eq!(config.output, dir.path().join("lake"));

            let config = JobConfig::resolve(RunArgs {
                job: Some(job),
                partition_by: vec!["day".into()],
                keep_partition_columns: true,
                ..Default::default()
            })
            .unwrap();
            let dataset = config.options.dataset.unwrap();
            assert_eq!(dataset.columns, ["day"]);
            assert!(dataset.keep_columns);
        }
        // Without partition columns a directory is no output.
        let err = JobConfig::resolve(RunArgs {
            query: Some(dir.path().join("q.sql")),
            shards: Some(dir.path().join("shards.toml")),
            output: Some(dir.path().join("lake")),
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("must name a file"), "{err}");
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
    fn the_metrics_file_is_relative_to_the_job_file_and_the_flag_overrides_it() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "q.sql", "SELECT 1");
        let job = write(
            dir.path(),
            "nightly.toml",
            "query = \"q.sql\"\nshards = { a = \"sqlite://a.db\" }\noutput = \"o.parquet\"\nmetrics_file = \"m/nightly.prom\"\n",
        );
        let resolve = |metrics_file: Option<&str>| {
            JobConfig::resolve(RunArgs {
                job: Some(job.clone()),
                metrics_file: metrics_file.map(PathBuf::from),
                ..Default::default()
            })
        };
        let config = resolve(None).unwrap();
        assert_eq!(
            config.options.metrics_file,
            Some(dir.path().join("m/nightly.prom"))
        );
        assert_eq!(config.name, "nightly");
        assert_eq!(
            resolve(Some("here.prom")).unwrap().options.metrics_file,
            Some(PathBuf::from("here.prom"))
        );
        let dir_path = dir.path().display().to_string();
        let err = resolve(Some(&dir_path)).unwrap_err();
        assert_eq!(err.exit_code(), crate::error::exit::CONFIG);
        assert!(err.to_string().contains("must name a file"), "{err}");
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
    fn relative_dates_are_evaluated_at_the_as_of_in_the_jobs_zone() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "q.sql",
            "SELECT :from, :to, :at, :home, :day, :n",
        );
        let job = write(
            dir.path(),
            "job.toml",
            r#"
            query = "q.sql"
            shards = { a = "sqlite://a.db" }
            output = "out.parquet"
            timezone = "Asia/Tokyo"
            as_of = 2026-12-05T23:30:00Z
            [params]
            from = "@today-1m"
            to = "@today"
            at = "@now"
            home = "@@home"
            day = 2026-01-31
            n = 7
            "#,
        );
        let resolve = |args: RunArgs| {
            JobConfig::resolve(RunArgs {
                job: Some(job.clone()),
                ..args
            })
        };
        let text = |c: &JobConfig, name: &str| c.params[name].to_string();
        // 23:30 UTC is the next morning in Tokyo.
        let config = resolve(RunArgs::default()).unwrap();
        assert_eq!(config.timezone(), "Asia/Tokyo");
        assert_eq!(dates::rfc3339(&config.as_of), "2026-12-06T08:30:00+09:00");
        assert_eq!(text(&config, "from"), "2026-11-06");
        assert_eq!(text(&config, "to"), "2026-12-06");
        assert_eq!(text(&config, "at"), "2026-12-06T08:30:00+09:00");
        assert_eq!(config.params["home"], ParamValue::Text("@home".into()));
        assert_eq!(config.params["day"], ParamValue::Text("2026-01-31".into()));
        assert_eq!(config.params["n"], ParamValue::Int(7));
        assert_eq!(
            config.relative,
            BTreeMap::from([
                ("at".to_string(), "@now".to_string()),
                ("from".to_string(), "@today-1m".to_string()),
                ("to".to_string(), "@today".to_string()),
            ])
        );

        // Flags override the job's as-of and zone; a literal `--param` replaces a
        // relative one, and a relative `--param` is recorded like the job's.
        let config = resolve(RunArgs {
            as_of: Some("2026-03-01".into()),
            timezone: Some("UTC".into()),
            params: vec![
                ("from".into(), "2020-01-01".into()),
                ("n".into(), "@yesterday".into()),
            ],
            ..Default::default()
        })
        .unwrap();
        assert_eq!(dates::rfc3339(&config.as_of), "2026-03-01T00:00:00+00:00");
        assert_eq!(text(&config, "from"), "2020-01-01");
        assert_eq!(text(&config, "to"), "2026-03-01");
        assert_eq!(text(&config, "n"), "2026-02-28");
        assert_eq!(
            config.relative.keys().collect::<Vec<_>>(),
            ["at", "n", "to"]
        );
        assert_eq!(config.relative["n"], "@yesterday");
    }

    #[test]
    fn bad_zones_as_ofs_and_expressions_name_where_they_came_from() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "q.sql", "SELECT :from");
        let job = |extra: &str| {
            write(
                dir.path(),
                "job.toml",
                &format!(
                    "query = \"q.sql\"\nshards = {{ a = \"sqlite://a.db\" }}\noutput = \"o.parquet\"\n{extra}"
                ),
            )
        };
        let error = |extra: &str, args: RunArgs| {
            let err = JobConfig::resolve(RunArgs {
                job: Some(job(extra)),
                ..args
            })
            .unwrap_err();
            assert_eq!(err.exit_code(), crate::error::exit::CONFIG, "{err}");
            err.to_string()
        };
        let with = |params: &[(&str, &str)]| RunArgs {
            params: params
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        };
        let msg = error(
            "timezone = \"Mars/Olympus\"\n[params]\nfrom = \"x\"",
            RunArgs::default(),
        );
        assert!(
            msg.contains("job.toml") && msg.contains("timezone: unknown time zone `Mars/Olympus`"),
            "{msg}"
        );
        let msg = error(
            "",
            RunArgs {
                timezone: Some("utc+1".into()),
                ..with(&[("from", "x")])
            },
        );
        assert!(
            msg.contains("--timezone: unknown time zone `utc+1`"),
            "{msg}"
        );
        let msg = error(
            "as_of = \"soon\"\n[params]\nfrom = \"x\"",
            RunArgs::default(),
        );
        assert!(msg.contains("as_of: `soon` is not a date"), "{msg}");
        let msg = error(
            "",
            RunArgs {
                as_of: Some("2026-13-01".into()),
                ..with(&[("from", "x")])
            },
        );
        assert!(msg.contains("--as-of: `2026-13-01` is not a date"), "{msg}");
        let msg = error("[params]\nfrom = \"@tomorrow\"", RunArgs::default());
        assert!(
            msg.contains("job.toml")
                && msg.contains(
                    "params.from: `@tomorrow` is not a relative date (unknown anchor `@tomorrow`)"
                )
                && msg.contains("@month_start"),
            "{msg}"
        );
        let msg = error("", with(&[("from", "@today-7")]));
        assert!(
            msg.contains(
                "--param from: `@today-7` is not a relative date (the step `-7` has no unit)"
            ),
            "{msg}"
        );
    }
}
