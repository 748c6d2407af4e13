//! The command line: what the user typed, as clap structs, and the examples each
//! command's `--help` (and man page, [`crate::manual`]) ends with. No I/O here; `main`
//! turns these into the library's raw [`RunArgs`](crate::config::RunArgs).

use std::path::PathBuf;
use std::time::Duration;

use clap::builder::StyledStr;
use clap::builder::styling::Style;
use clap::{Args, Parser, Subcommand};

use crate::config::RunArgs;

#[derive(Debug, Parser)]
#[command(
    name = "tributary",
    version,
    about = "Fan SQL out across many database shards at once and land the merged result as Parquet.",
    after_long_help = examples_help("")
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// Only errors on stderr (no progress, no per-task log lines).
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// More log output (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a query on every shard and write the merged result as one Parquet file.
    ///
    /// Each run is recorded in the run ledger (`tributary runs`) and holds its job's
    /// lock while it runs. A job (`--job`) whose identical run already succeeded, with
    /// its files unchanged since, is not run again (unless --force).
    #[command(after_long_help = examples_help("run"))]
    Run(RunJobCommand),
    /// Print the tasks a run would execute, with the exact SQL each sends, without running them.
    ///
    /// To show real partition bounds and row estimates, plan connects to the shards and
    /// runs, inside READ ONLY transactions: the partition probes a run would (SELECT
    /// min(key), max(key) over the query for range partitions, the table's size and an
    /// EXPLAIN for page partitions, after exporting a snapshot) and an EXPLAIN of each
    /// PostgreSQL task. No result row is fetched and nothing is written. With --offline
    /// it connects to nothing and shows probed bounds as decided at run time.
    #[command(after_long_help = examples_help("plan"))]
    Plan(PlanCommand),
    /// Create SQLite shards with generated orders and run a sharded aggregate over them.
    #[command(after_long_help = examples_help("demo"))]
    Demo(DemoCommand),
    /// List the runs the ledger recorded, newest first, or show one (`runs show ID`).
    #[command(after_long_help = examples_help("runs"))]
    Runs(RunsCommand),
    /// Check every shard before a run: reachable, the server, TLS, the role (a warning if
    /// it can write) and, given a query, its columns as each shard describes them.
    ///
    /// Connects to all shards at once, within --connect-timeout, in READ ONLY
    /// transactions; no row of the result is read. Exits 0 only when every shard passes,
    /// else with the code a run would have (5 unreachable, 4 a query the shard rejects).
    #[command(after_long_help = examples_help("check"))]
    Check(CheckCommand),
    /// Run a job once per step of a date range, with --as-of set to each step.
    ///
    /// Steps that already succeeded with their output intact are skipped (the run
    /// ledger); a failed step does not stop the others unless --fail-fast. Each step
    /// prints a line when it ends, and a table closes the backfill. The exit code is the
    /// first failed step's, else 0.
    #[command(after_long_help = examples_help("backfill"))]
    Backfill(BackfillCommand),
    /// Record a run split across machines complete, once every slice has committed.
    ///
    /// Give the run's own arguments (or job file) and --slices N. The table must hold the
    /// commit of every slice (`run --slice I/N`); then a commit of the whole run's
    /// application transaction records it complete, after which the run (sliced or not)
    /// is not run again. Exits 0 when complete, 7 naming the slices still missing.
    #[command(after_long_help = examples_help("finish"))]
    Finish(FinishCommand),
    /// Snapshots shared by the slices of a run split across machines.
    #[command(after_long_help = examples_help("snapshot"))]
    Snapshot(SnapshotCommand),
    /// Print the completion script for a shell.
    ///
    /// Bash, zsh, fish, PowerShell and Elvish. The script completes subcommands and
    /// flags, and file names where a flag takes a path.
    #[command(after_long_help = examples_help("completions"))]
    Completions(CompletionsCommand),
    /// Print the man page of tributary, or of one of its subcommands (tributary-run(1)).
    ///
    /// The pages are roff, generated from the same definition as --help: the options,
    /// the subcommands and the examples. With --dir, every page is written to DIR as
    /// tributary.1, tributary-run.1, ...
    #[command(after_long_help = examples_help("man"))]
    Man(ManCommand),
}

#[derive(Debug, Args)]
pub struct FinishCommand {
    #[command(flatten)]
    pub run: RunCommand,
}

#[derive(Debug, Args)]
pub struct SnapshotCommand {
    #[command(subcommand)]
    pub action: SnapshotAction,
}

#[derive(Debug, Subcommand)]
pub enum SnapshotAction {
    /// Export a snapshot of every PostgreSQL shard, write their ids to a file, and hold
    /// them open until stopped.
    ///
    /// Every slice given the file (`run --snapshots FILE`) reads each shard as of the same
    /// moment, and plans the same partitions. The snapshots live as long as this process:
    /// it holds one idle READ ONLY transaction per shard until SIGTERM or Ctrl-C, --hold
    /// elapses or the file is removed, then removes the file and exits 0. A slice imports
    /// a snapshot once, when it starts, and keeps its own copy for its whole run.
    #[command(after_long_help = examples_help("snapshot export"))]
    Export(SnapshotExportCommand),
}

#[derive(Debug, Args)]
pub struct SnapshotExportCommand {
    /// Where to write the snapshots' ids (JSON), for `run --snapshots FILE`.
    #[arg(long, value_name = "FILE")]
    pub file: PathBuf,

    /// Release the snapshots after this long, if not stopped before [default: until
    /// stopped].
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub hold: Option<Duration>,

    /// The run the snapshots are for: its shards (--shards, or a job file). With its
    /// query and --slices N, the run is also planned in the snapshots and its tasks
    /// dealt to the slices by their row estimates, recorded in the file for the slices.
    #[command(flatten)]
    pub run: RunCommand,
}

#[derive(Debug, Args)]
pub struct CompletionsCommand {
    /// The shell the script is for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManCommand {
    /// The subcommand whose page to print, e.g. `run`, or `runs show` [default: the page
    /// of tributary itself].
    #[arg(value_name = "SUBCOMMAND")]
    pub subcommand: Vec<String>,

    /// Write every page (tributary.1 and one per subcommand) into this directory instead,
    /// e.g. ~/.local/share/man/man1.
    #[arg(long, value_name = "DIR", conflicts_with = "subcommand")]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct BackfillCommand {
    /// The job file (TOML).
    #[arg(long, value_name = "JOB.toml")]
    pub job: PathBuf,

    /// The first step: a date (2025-01-01) or a timestamp without zone (wall time in the
    /// job's time zone).
    #[arg(long, value_name = "DATE|TIMESTAMP")]
    pub from: String,

    /// The end of the range, itself not a step.
    #[arg(long, value_name = "DATE|TIMESTAMP")]
    pub to: String,

    /// The distance between steps: 1d, 6h, 1w, 1m (months keep the day of --from).
    #[arg(long, value_name = "N{h,d,w,m}", default_value = "1d", value_parser = parse_step)]
    pub step: crate::backfill::Step,

    /// Steps running at once.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub parallel: usize,

    /// Start no step once one has failed.
    #[arg(long)]
    pub fail_fast: bool,

    /// A query parameter overriding the job file's (repeatable).
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = parse_param)]
    pub params: Vec<(String, String)>,

    /// The IANA time zone of the steps and relative dates [default: the job's, else UTC].
    #[arg(long, value_name = "ZONE")]
    pub timezone: Option<String>,

    #[command(flatten)]
    pub ledger: LedgerArgs,
}

fn parse_step(s: &str) -> Result<crate::backfill::Step, String> {
    s.parse()
}

impl From<BackfillCommand> for crate::backfill::Backfill {
    fn from(c: BackfillCommand) -> crate::backfill::Backfill {
        crate::backfill::Backfill {
            run: RunArgs {
                job: Some(c.job),
                params: c.params,
                timezone: c.timezone,
                ledger: c.ledger.ledger,
                no_ledger: c.ledger.no_ledger,
                force: c.ledger.force,
                lock_timeout: c.ledger.lock_timeout,
                ..RunArgs::default()
            },
            from: c.from,
            to: c.to,
            step: c.step,
            parallel: c.parallel,
            fail_fast: c.fail_fast,
        }
    }
}

#[derive(Debug, Args)]
pub struct CheckCommand {
    /// The query to describe on every shard (optional: without one, the shards only).
    pub query: Option<PathBuf>,

    /// A job file: its shards, options and query.
    #[arg(long, value_name = "JOB.toml")]
    pub job: Option<PathBuf>,

    /// The shards file.
    #[arg(long, value_name = "SHARDS.toml")]
    pub shards: Option<PathBuf>,

    /// A query parameter (repeatable).
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = parse_param)]
    pub params: Vec<(String, String)>,

    /// Deadline for opening each connection [default: 10s].
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub connect_timeout: Option<Duration>,

    /// Print JSON (one object per shard) instead of text.
    #[arg(long)]
    pub json: bool,
}

impl From<CheckCommand> for RunArgs {
    fn from(c: CheckCommand) -> RunArgs {
        RunArgs {
            query: c.query,
            job: c.job,
            shards: c.shards,
            params: c.params,
            connect_timeout: c.connect_timeout,
            ..RunArgs::default()
        }
    }
}

#[derive(Debug, Args)]
pub struct RunJobCommand {
    #[command(flatten)]
    pub run: RunCommand,

    #[command(flatten)]
    pub ledger: LedgerArgs,
}

/// The run ledger's flags.
#[derive(Debug, Args)]
pub struct LedgerArgs {
    /// The run ledger, a SQLite file [default: $XDG_STATE_HOME/tributary/ledger.db, else
    /// ~/.local/state/tributary/ledger.db].
    #[arg(long, value_name = "PATH")]
    pub ledger: Option<PathBuf>,

    /// Record nothing, take no lock and skip nothing.
    #[arg(long, conflicts_with = "ledger")]
    pub no_ledger: bool,

    /// Run even if an identical run already succeeded and its files are intact.
    #[arg(long)]
    pub force: bool,

    /// Take over a job's lock older than this even if its holder may still run (a lock
    /// whose process died on this host is taken over at once) [default: 24h].
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub lock_timeout: Option<Duration>,
}

#[derive(Debug, Args)]
pub struct RunsCommand {
    #[command(subcommand)]
    pub show: Option<RunsShow>,

    /// Only the runs of this job: its name, or its job file (whose `name`, else stem, is
    /// the job's name, and whose `ledger` is read).
    #[arg(long, value_name = "NAME|JOB.toml")]
    pub job: Option<String>,

    /// How many runs, newest first.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub last: usize,

    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,

    /// The run ledger [default: as for `run`].
    #[arg(long, value_name = "PATH", global = true)]
    pub ledger: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum RunsShow {
    /// Show one run: what it was given, its tasks and the files it wrote.
    #[command(after_long_help = examples_help("runs show"))]
    Show {
        /// The run's id, as `tributary runs` lists it.
        id: i64,
    },
}

#[derive(Debug, Args)]
pub struct RunCommand {
    /// The query file (`:name` marks a parameter).
    pub query: Option<PathBuf>,

    /// A job file (TOML) holding the query, shards, output and options; flags override it.
    #[arg(long, value_name = "JOB.toml")]
    pub job: Option<PathBuf>,

    /// The shards file: a `[shards]` table of name = URL or libpq connection string.
    #[arg(long, value_name = "SHARDS.toml")]
    pub shards: Option<PathBuf>,

    /// The Parquet file to write (atomically: it appears only when the run succeeds);
    /// optional for `plan`.
    #[arg(short, long, value_name = "OUT.parquet")]
    pub output: Option<PathBuf>,

    /// An option of a remote output (repeatable): `region=eu-west-1`,
    /// `endpoint=http://127.0.0.1:9000`, `part_size=16MiB`, ... (see README, "Remote
    /// outputs").
    #[arg(long = "storage-option", value_name = "KEY=VALUE", value_parser = parse_param)]
    pub storage_options: Vec<(String, String)>,

    /// A query parameter (repeatable).
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = parse_param)]
    pub params: Vec<(String, String)>,

    /// The instant relative dates in parameters (`@today-7d`, `@month_start`) are
    /// evaluated against: a date (its midnight in --timezone), a timestamp with an offset
    /// or Z, or a timestamp without one (wall-clock time in --timezone) [default: now].
    #[arg(long, value_name = "DATE|TIMESTAMP")]
    pub as_of: Option<String>,

    /// The IANA time zone relative dates are evaluated in, e.g. Europe/Berlin [default:
    /// UTC].
    #[arg(long, value_name = "ZONE")]
    pub timezone: Option<String>,

    /// Tasks running at once across all shards [default: 16].
    #[arg(long, value_name = "N")]
    pub concurrency: Option<usize>,

    /// Connections per shard, unless the shard sets `pool_size` [default: 2; with
    /// partitions, one per partition up to the shard's share of --concurrency].
    #[arg(long, value_name = "N")]
    pub pool_size: Option<usize>,

    /// Deadline of each task (e.g. 30s, 10m); the statement is cancelled on the server past it.
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub query_timeout: Option<Duration>,

    /// Deadline for opening a connection [default: 10s].
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub connect_timeout: Option<Duration>,

    /// Add a first column of this name holding each row's shard.
    #[arg(long, value_name = "NAME")]
    pub shard_column: Option<String>,

    /// Parquet compression: zstd, zstd:LEVEL, snappy, lz4 or none [default: zstd].
    #[arg(long, value_name = "CODEC")]
    pub compression: Option<String>,

    /// Rows per Parquet row group [default: 131072].
    #[arg(long, value_name = "ROWS")]
    pub row_group_size: Option<usize>,

    /// When some shards fail, write the others' rows and exit with code 7.
    #[arg(long)]
    pub allow_partial: bool,

    /// Split each shard's query into range partitions on this column (integer, date or
    /// timestamp), read by several connections at once.
    #[arg(long, value_name = "COLUMN")]
    pub partition_on: Option<String>,

    /// How many range partitions per shard (with --partition-on).
    #[arg(long, value_name = "N")]
    pub partitions: Option<usize>,

    /// Let partitions read independently instead of from one snapshot per shard.
    #[arg(long)]
    pub no_snapshot: bool,

    /// Further attempts of a task after a transient failure [default: 3].
    #[arg(long, value_name = "N")]
    pub retries: Option<u32>,

    /// Stop retrying a task once it has been failing this long [default: 10m].
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub retry_for: Option<Duration>,

    /// Cancel (and retry) a query that sends nothing for this long; 0 for no bound [default: 10m].
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub stall_timeout: Option<Duration>,

    /// Combine the shards' results as one database holding all their rows would answer
    /// (`on`: aggregates, GROUP BY, DISTINCT, ORDER BY and LIMIT are split into each
    /// shard's part and a final step), or keep each shard's rows (`off`) [default: on].
    #[arg(long, value_name = "on|off", value_parser = on_off)]
    pub combine: Option<bool>,

    /// The final step yourself: SQL over a table named `shards` holding every shard's
    /// rows (with the --shard-column), run by Apache DataFusion.
    #[arg(long, value_name = "SQL", conflicts_with = "merge_file")]
    pub merge: Option<String>,

    /// --merge, with the SQL read from a file.
    #[arg(long, value_name = "FILE")]
    pub merge_file: Option<PathBuf>,

    /// Memory the final step may hold before its sorts and aggregations spill to disk
    /// (e.g. 256MB, 2GiB) [default: 512MiB].
    #[arg(long, value_name = "SIZE")]
    pub memory_limit: Option<String>,

    /// Write a JSON report of the run (every task's outcome, the output, the exit code).
    #[arg(long, value_name = "PATH")]
    pub report: Option<PathBuf>,

    /// After the run, successful or not, write its metrics (last run and last success
    /// times, duration, rows, bytes, exit code, tasks) to PATH in Prometheus' text
    /// format, for node_exporter's textfile collector; other jobs' series in the file
    /// are kept. See docs/scheduling.md.
    #[arg(long, value_name = "PATH")]
    pub metrics_file: Option<PathBuf>,

    /// A type option for every column (repeatable): numeric=exact|text|float64|decimal(P,S),
    /// uuid=binary|string, enums=text|dictionary, interval=struct|duration|text,
    /// timetz=struct|utc|text, infinity=error|null|clamp, text=true, array_dims=N.
    /// See docs/types.md.
    #[arg(long = "type", value_name = "KEY=VALUE", value_parser = parse_type_option)]
    pub type_options: Vec<(String, String)>,

    /// A type option for one result column (repeatable), e.g. `amount:numeric=float64`.
    #[arg(long = "column-type", value_name = "COLUMN:KEY=VALUE", value_parser = parse_column_type)]
    pub column_types: Vec<(String, String, String)>,

    /// The readers the output is for (repeatable, or a comma list): spark, trino,
    /// bigquery, duckdb, pandas, or any. Each column is written in an exact form every
    /// one of them opens (Spark: uuid as text, time as int64 microseconds since
    /// midnight); a column none fits fails the run before it writes. See docs/types.md.
    #[arg(long = "for", value_name = "READER")]
    pub readers: Vec<String>,

    /// Parquet dictionary encoding: on or off [default: on].
    #[arg(long, value_name = "on|off", value_parser = on_off)]
    pub dictionary: Option<bool>,

    /// How values are encoded where no dictionary is used: delta (DELTA_BINARY_PACKED
    /// for integers, dates and timestamps, DELTA_LENGTH_BYTE_ARRAY for text and binary;
    /// smaller) or plain (for readers before Spark 3.3) [default: delta].
    #[arg(long, value_name = "delta|plain", alias = "text-encoding")]
    pub encoding: Option<String>,

    /// Parquet statistics: none, chunk or page [default: page].
    #[arg(long, value_name = "LEVEL")]
    pub statistics: Option<String>,

    /// Write Parquet's page index (offset and column indexes): on or off [default: on].
    #[arg(long, value_name = "on|off", value_parser = on_off)]
    pub page_index: Option<bool>,

    /// Split the output into files of at most this many rows: OUT.parquet becomes
    /// OUT-00000.parquet, OUT-00001.parquet, ...
    #[arg(long, value_name = "ROWS")]
    pub max_file_rows: Option<u64>,

    /// Split the output into files of at most about this size (e.g. 512MB, 1GiB).
    #[arg(long, value_name = "SIZE")]
    pub max_file_size: Option<String>,

    /// Write a Hive-partitioned dataset: OUT becomes a directory with one level per
    /// column, OUT/region=eu/month=2025-01/part-00000.parquet, committed as a whole.
    #[arg(long, value_name = "COLUMNS", value_delimiter = ',')]
    pub partition_by: Vec<String>,

    /// Keep the partition columns in the dataset's files too (by default they are only
    /// in the directory names, as Hive readers expect).
    #[arg(long)]
    pub keep_partition_columns: bool,

    /// Files a dataset keeps open at once; past it, the least recently written is
    /// closed and its directory's next rows start a new file [default: 100].
    #[arg(long, value_name = "N")]
    pub max_open_files: Option<usize>,

    /// Write a Delta Lake table at OUT (a directory or an object-store URL): the run's
    /// files are added in one commit, which readers see whole or not at all. Partitioned
    /// by --partition-by when given.
    #[arg(long, value_name = "FORMAT", value_parser = ["delta"])]
    pub table_format: Option<String>,

    /// What a table run does with the rows already there: add to them (append), replace
    /// them all (overwrite), or replace those of the partitions the run wrote (replace)
    /// [default: append].
    #[arg(long, value_name = "MODE", value_parser = ["append", "overwrite", "replace"])]
    pub table_mode: Option<String>,

    /// Run slice I of N of the plan's tasks (I from 0, as Kubernetes' JOB_COMPLETION_INDEX),
    /// committing into the Delta table the other slices commit into (docs/scale-out.md).
    #[arg(long, value_name = "I/N", value_parser = parse_slice, conflicts_with = "slices")]
    pub slice: Option<(usize, usize)>,

    /// Split the plan into N slices: `plan` shows each slice's tasks; `run` runs the slice
    /// JOB_COMPLETION_INDEX names (a Kubernetes Indexed Job's); `finish` checks them all.
    #[arg(long, value_name = "N")]
    pub slices: Option<usize>,

    /// Read each PostgreSQL shard in the snapshot `tributary snapshot export` holds open,
    /// as this file names it: every slice of a run then reads the same data.
    #[arg(long, value_name = "FILE")]
    pub snapshots: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PlanCommand {
    #[command(flatten)]
    pub run: RunCommand,

    /// Connect to no shard: no probes, no estimates; partitions whose bounds a probe
    /// decides are shown as split at run time.
    #[arg(long)]
    pub offline: bool,

    /// The run ledger an incremental job's marks are read from [default: as for `run`].
    #[arg(long, value_name = "PATH")]
    pub ledger: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DemoCommand {
    /// Where to create the shards and the output.
    #[arg(long, value_name = "DIR", default_value = "tributary-demo")]
    pub dir: PathBuf,

    /// Orders generated per shard.
    #[arg(long, value_name = "N", default_value_t = 50_000)]
    pub orders: usize,
}

/// A flag value clap could not accept; clap prints it after the flag's name.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArgError {
    #[error("`{0}` is not NAME=VALUE")]
    NotNameValue(String),
    #[error("`{0}` is not a parameter name (letters, digits and _)")]
    BadParamName(String),
    #[error("`{0}` is not KEY=VALUE (e.g. numeric=float64)")]
    NotKeyValue(String),
    #[error("`{0}` is not COLUMN:KEY=VALUE (e.g. amount:numeric=float64)")]
    NotColumnType(String),
    #[error("`{0}` is not on or off")]
    NotOnOff(String),
    #[error("`{0}` is not I/N, slice I (from 0) of N slices (e.g. 0/3)")]
    Slice(String),
    #[error("invalid duration `{value}`; try 30s, 5m or 1h")]
    Duration {
        value: String,
        #[source]
        source: humantime::DurationError,
    },
}

fn parse_param(s: &str) -> Result<(String, String), ArgError> {
    let (name, value) = s
        .split_once('=')
        .ok_or_else(|| ArgError::NotNameValue(s.to_string()))?;
    let valid = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(ArgError::BadParamName(name.to_string()));
    }
    Ok((name.to_string(), value.to_string()))
}

fn parse_type_option(s: &str) -> Result<(String, String), ArgError> {
    let (key, value) = s
        .split_once('=')
        .ok_or_else(|| ArgError::NotKeyValue(s.to_string()))?;
    Ok((key.trim().to_string(), value.trim().to_string()))
}

/// `COLUMN:KEY=VALUE`; the column is everything before the last `:` left of the `=`, so
/// column names may hold colons.
fn parse_column_type(s: &str) -> Result<(String, String, String), ArgError> {
    let bad = || ArgError::NotColumnType(s.to_string());
    let (left, value) = s.split_once('=').ok_or_else(bad)?;
    let (column, key) = left.rsplit_once(':').ok_or_else(bad)?;
    if column.is_empty() {
        return Err(bad());
    }
    Ok((
        column.to_string(),
        key.trim().to_string(),
        value.trim().to_string(),
    ))
}

/// `I/N`: slice I (from 0) of N.
fn parse_slice(s: &str) -> Result<(usize, usize), ArgError> {
    let bad = || ArgError::Slice(s.to_string());
    let (i, n) = s.split_once('/').ok_or_else(bad)?;
    let (i, n): (usize, usize) = (
        i.trim().parse().map_err(|_| bad())?,
        n.trim().parse().map_err(|_| bad())?,
    );
    if n == 0 || i >= n {
        return Err(bad());
    }
    Ok((i, n))
}

fn on_off(s: &str) -> Result<bool, ArgError> {
    match s.trim().to_ascii_lowercase().as_str() {
        "on" | "true" | "yes" => Ok(true),
        "off" | "false" | "no" => Ok(false),
        _ => Err(ArgError::NotOnOff(s.to_string())),
    }
}

/// A human duration (`30s`, `5m`, `1h30m`), as the job file takes them.
fn duration(s: &str) -> Result<Duration, ArgError> {
    humantime::parse_duration(s.trim()).map_err(|source| ArgError::Duration {
        value: s.to_string(),
        source,
    })
}

impl From<RunJobCommand> for RunArgs {
    fn from(c: RunJobCommand) -> RunArgs {
        RunArgs {
            ledger: c.ledger.ledger,
            no_ledger: c.ledger.no_ledger,
            force: c.ledger.force,
            lock_timeout: c.ledger.lock_timeout,
            ..RunArgs::from(c.run)
        }
    }
}

impl From<RunCommand> for RunArgs {
    fn from(c: RunCommand) -> RunArgs {
        RunArgs {
            query: c.query,
            job: c.job,
            shards: c.shards,
            output: c.output,
            storage_options: c.storage_options,
            params: c.params,
            as_of: c.as_of,
            timezone: c.timezone,
            concurrency: c.concurrency,
            pool_size: c.pool_size,
            query_timeout: c.query_timeout,
            connect_timeout: c.connect_timeout,
            shard_column: c.shard_column,
            compression: c.compression,
            row_group_size: c.row_group_size,
            allow_partial: c.allow_partial,
            partition_on: c.partition_on,
            partitions: c.partitions,
            no_snapshot: c.no_snapshot,
            retries: c.retries,
            retry_for: c.retry_for,
            stall_timeout: c.stall_timeout,
            report: c.report,
            metrics_file: c.metrics_file,
            type_options: c.type_options,
            column_types: c.column_types,
            readers: c.readers,
            dictionary: c.dictionary,
            encoding: c.encoding,
            statistics: c.statistics,
            page_index: c.page_index,
            max_file_rows: c.max_file_rows,
            max_file_size: c.max_file_size,
            partition_by: c.partition_by,
            keep_partition_columns: c.keep_partition_columns,
            max_open_files: c.max_open_files,
            table_format: c.table_format,
            table_mode: c.table_mode,
            slice: c.slice,
            slices: c.slices,
            snapshots: c.snapshots,
            combine: c.combine,
            merge: c.merge,
            merge_file: c.merge_file,
            memory_limit: c.memory_limit,
            ..RunArgs::default()
        }
    }
}

/// A command line that a command's `--help` and man page end with, and what it does.
#[derive(Debug, Clone, Copy)]
pub struct Example {
    /// What the command line does, one sentence.
    pub does: &'static str,
    /// The command line; a line ending in ` \` goes on on the next one, as in a shell.
    pub line: &'static str,
}

/// Every command's examples, by its subcommand path below `tributary` (`""` for
/// tributary itself, `"runs show"`). Only flags that exist: a test parses each line.
const EXAMPLES: &[(&str, &[Example])] = &[
    (
        "",
        &[
            Example {
                does: "Try it without a database server: SQLite shards and a sharded aggregate.",
                line: "tributary demo",
            },
            Example {
                does: "Run a job file (its query, shards, output and options).",
                line: "tributary run --job nightly.toml",
            },
            Example {
                does: "Show the tasks of a run and the exact SQL each sends, without running it.",
                line: "tributary plan --offline --job nightly.toml",
            },
        ],
    ),
    (
        "run",
        &[
            Example {
                does: "Export a month of orders from every shard, each row with its shard's name.",
                line: "tributary run queries/orders.sql --shards shards.toml -o orders.parquet \\\n  \
                       --param from=2025-01-01 --param to=2025-02-01 --shard-column shard",
            },
            Example {
                does: "Run a job file; flags override its keys.",
                line: "tributary run --job nightly.toml --as-of 2025-03-01",
            },
            Example {
                does: "Read each shard in 8 range partitions on `id`, at once.",
                line: "tributary run queries/events.sql --shards shards.toml -o events.parquet \\\n  \
                       --partition-on id --partitions 8",
            },
        ],
    ),
    (
        "plan",
        &[
            Example {
                does: "Show each task's SQL, with the partition bounds and row estimates the shards give.",
                line: "tributary plan queries/orders.sql --shards shards.toml --param from=2025-01-01 \\\n  \
                       --param to=2025-02-01",
            },
            Example {
                does: "The same for a job file, connecting to no shard.",
                line: "tributary plan --offline --job nightly.toml",
            },
            Example {
                does: "An incremental job: the range its next run reads, from the ledger's marks.",
                line: "tributary plan --job new_orders.toml --ledger ledger.db",
            },
        ],
    ),
    (
        "demo",
        &[
            Example {
                does: "Create the shards and the output in ./tributary-demo.",
                line: "tributary demo",
            },
            Example {
                does: "A million orders per shard, in /tmp/demo.",
                line: "tributary demo --dir /tmp/demo --orders 1000000",
            },
        ],
    ),
    (
        "runs",
        &[
            Example {
                does: "The last 20 runs of every job.",
                line: "tributary runs",
            },
            Example {
                does: "The last 5 runs of one job, as JSON.",
                line: "tributary runs --job nightly.toml --last 5 --json",
            },
            Example {
                does: "One run in full: its inputs, tasks and files.",
                line: "tributary runs show 42",
            },
        ],
    ),
    (
        "runs show",
        &[
            Example {
                does: "Run 42: what it was given, its tasks and the files it wrote.",
                line: "tributary runs show 42",
            },
            Example {
                does: "The same as JSON, from another ledger.",
                line: "tributary runs show 42 --json --ledger /var/lib/tributary/ledger.db",
            },
        ],
    ),
    (
        "backfill",
        &[
            Example {
                does: "The job once per day of January (--as-of 2025-01-01, ..., 2025-01-31).",
                line: "tributary backfill --job nightly.toml --from 2025-01-01 --to 2025-02-01",
            },
            Example {
                does: "A year by month, two steps at once, stopping at the first failure.",
                line: "tributary backfill --job monthly.toml --from 2024-01-01 --to 2025-01-01 \\\n  \
                       --step 1m --parallel 2 --fail-fast",
            },
            Example {
                does: "Every 6 hours of a day in Berlin, steps already done included.",
                line: "tributary backfill --job hourly.toml --from 2025-03-30 --to 2025-03-31 \\\n  \
                       --step 6h --timezone Europe/Berlin --force",
            },
        ],
    ),
    (
        "check",
        &[
            Example {
                does: "Every shard of a job: reachable, TLS, role, the query's columns.",
                line: "tributary check --job nightly.toml",
            },
            Example {
                does: "The shards alone, as JSON for a script, giving up on each after 5 s.",
                line: "tributary check --shards shards.toml --json --connect-timeout 5s",
            },
            Example {
                does: "A query's columns on every shard, with its parameters.",
                line: "tributary check queries/orders.sql --shards shards.toml \\\n  \
                       --param from=2025-01-01 --param to=2025-02-01",
            },
        ],
    ),
    (
        "finish",
        &[
            Example {
                does: "After the 3 slices of a run committed, record the run complete.",
                line: "tributary finish --job nightly.toml --slices 3",
            },
            Example {
                does: "The same for a run given by its arguments.",
                line: "tributary finish q.sql --shards shards.toml -o s3://lake/orders \\\n  \
                       --table-format delta --slices 3",
            },
        ],
    ),
    (
        "snapshot",
        &[
            Example {
                does: "Hold a snapshot of every PostgreSQL shard for the slices of a run.",
                line: "tributary snapshot export --shards shards.toml --file snapshots.json",
            },
            Example {
                does: "The same, with the run's 4 slices dealt by row estimates, for 2h at most.",
                line: "tributary snapshot export --job nightly.toml --slices 4 \\\n  \
                       --file snapshots.json --hold 2h",
            },
        ],
    ),
    (
        "snapshot export",
        &[
            Example {
                does: "Hold a snapshot of every PostgreSQL shard until stopped.",
                line: "tributary snapshot export --shards shards.toml --file snapshots.json",
            },
            Example {
                does: "The same, with the run's 4 slices dealt by row estimates, for 2h at most.",
                line: "tributary snapshot export --job nightly.toml --slices 4 \\\n  \
                       --file snapshots.json --hold 2h",
            },
            Example {
                does: "The same for a run given by its arguments; slices then take \
                       `--snapshots snapshots.json`.",
                line: "tributary snapshot export q.sql --shards shards.toml --param day=2026-12-06 \\\n  \
                       --partition-on id --partitions 8 --slices 4 --file snapshots.json",
            },
        ],
    ),
    (
        "completions",
        &[
            Example {
                does: "Bash (bash-completion loads it when `tributary` is first completed).",
                line: "tributary completions bash \\\n  \
                       > ~/.local/share/bash-completion/completions/tributary",
            },
            Example {
                does: "Zsh: a file named _tributary in a directory on $fpath.",
                line: "tributary completions zsh > ~/.zfunc/_tributary",
            },
            Example {
                does: "Fish.",
                line: "tributary completions fish > ~/.config/fish/completions/tributary.fish",
            },
        ],
    ),
    (
        "man",
        &[
            Example {
                does: "Install every page where man finds it.",
                line: "tributary man --dir ~/.local/share/man/man1",
            },
            Example {
                does: "Read the page of `run` without installing it.",
                line: "tributary man run | man -l -",
            },
        ],
    ),
];

/// The examples of the command at `path` below `tributary` (`""`, `"run"`, `"runs show"`).
pub fn examples(path: &str) -> &'static [Example] {
    EXAMPLES
        .iter()
        .find(|(p, _)| *p == path)
        .map_or(&[], |(_, examples)| examples)
}

/// The end of a command's `--help`: its examples under a heading styled as clap styles
/// its own (`Usage:`, `Options:`).
fn examples_help(path: &str) -> StyledStr {
    let heading = Style::new().bold().underline();
    let mut help = format!("{heading}Examples:{heading:#}\n");
    for (i, example) in examples(path).iter().enumerate() {
        if i > 0 {
            help.push('\n');
        }
        help.push_str(&format!("  {}\n", example.does));
        for line in example.line.lines() {
            help.push_str(&format!("    {line}\n"));
        }
    }
    help.trim_end().to_string().into()
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn flag_values_fail_with_typed_errors() {
        assert!(matches!(parse_param("x"), Err(ArgError::NotNameValue(v)) if v == "x"));
        assert!(matches!(parse_param("1x=2"), Err(ArgError::BadParamName(n)) if n == "1x"));
        assert_eq!(parse_param("a=b=c").unwrap(), ("a".into(), "b=c".into()));
        assert!(matches!(
            parse_type_option("numeric"),
            Err(ArgError::NotKeyValue(_))
        ));
        assert!(matches!(
            parse_column_type(":numeric=text"),
            Err(ArgError::NotColumnType(_))
        ));
        assert_eq!(
            parse_column_type("a:b:numeric=text").unwrap(),
            ("a:b".into(), "numeric".into(), "text".into())
        );
        assert!(matches!(on_off("maybe"), Err(ArgError::NotOnOff(_))));
        let e = duration("soon").unwrap_err();
        assert!(e.to_string().contains("`soon`"), "{e}");
        assert!(e.source().is_some(), "the parser's own error is kept");
        assert_eq!(duration("1m30s").unwrap(), Duration::from_secs(90));
    }
}
