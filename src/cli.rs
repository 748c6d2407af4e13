//! The command line: what the user typed, as clap structs. No I/O here; `main` turns
//! these into the library's raw [`RunArgs`](crate::config::RunArgs).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::config::{RunArgs, parse_duration};

#[derive(Debug, Parser)]
#[command(
    name = "tributary",
    version,
    about = "Fan SQL out across many database shards at once and land the merged result as Parquet."
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
    Run(RunCommand),
    /// Print the tasks a run would execute, with the exact SQL each sends, without running them.
    Plan(RunCommand),
    /// Create SQLite shards with generated orders and run a sharded aggregate over them.
    Demo(DemoCommand),
}

#[derive(Debug, Args)]
pub struct RunCommand {
    /// The query file (`:name` marks a parameter).
    pub query: Option<PathBuf>,

    /// A job file (TOML) holding the query, shards, output and options; flags override it.
    #[arg(long, value_name = "JOB.toml")]
    pub job: Option<PathBuf>,

    /// The shards file: a `[shards]` table of name = URL.
    #[arg(long, value_name = "SHARDS.toml")]
    pub shards: Option<PathBuf>,

    /// The Parquet file to write (atomically: it appears only when the run succeeds).
    #[arg(short, long, value_name = "OUT.parquet")]
    pub output: Option<PathBuf>,

    /// A query parameter (repeatable).
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = parse_param)]
    pub params: Vec<(String, String)>,

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

    /// Write a JSON report of the run (every task's outcome, the output, the exit code).
    #[arg(long, value_name = "PATH")]
    pub report: Option<PathBuf>,
    /// A type option for every column (repeatable): numeric=exact|text|float64|decimal(P,S),
    /// uuid=binary|string, enums=text|dictionary, interval=struct|duration|text,
    /// timetz=struct|utc|text, infinity=error|null|clamp, text=true, array_dims=N.
    /// See docs/types.md.
    #[arg(long = "type", value_name = "KEY=VALUE", value_parser = parse_type_option)]
    pub type_options: Vec<(String, String)>,

    /// A type option for one result column (repeatable), e.g. `amount:numeric=float64`.
    #[arg(long = "column-type", value_name = "COLUMN:KEY=VALUE", value_parser = parse_column_type)]
    pub column_types: Vec<(String, String, String)>,

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

fn parse_param(s: &str) -> Result<(String, String), String> {
    let (name, value) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not NAME=VALUE"))?;
    let valid = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(format!(
            "`{name}` is not a parameter name (letters, digits and _)"
        ));
    }
    Ok((name.to_string(), value.to_string()))
}

fn parse_type_option(s: &str) -> Result<(String, String), String> {
    let (key, value) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not KEY=VALUE (e.g. numeric=float64)"))?;
    Ok((key.trim().to_string(), value.trim().to_string()))
}

/// `COLUMN:KEY=VALUE`; the column is everything before the last `:` left of the `=`, so
/// column names may hold colons.
fn parse_column_type(s: &str) -> Result<(String, String, String), String> {
    let bad = || format!("`{s}` is not COLUMN:KEY=VALUE (e.g. amount:numeric=float64)");
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

fn on_off(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "on" | "true" | "yes" => Ok(true),
        "off" | "false" | "no" => Ok(false),
        _ => Err(format!("`{s}` is not on or off")),
    }
}

fn duration(s: &str) -> Result<Duration, String> {
    parse_duration(s)
}

impl From<RunCommand> for RunArgs {
    fn from(c: RunCommand) -> RunArgs {
        RunArgs {
            query: c.query,
            job: c.job,
            shards: c.shards,
            output: c.output,
            params: c.params,
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
            type_options: c.type_options,
            column_types: c.column_types,
            dictionary: c.dictionary,
            encoding: c.encoding,
            statistics: c.statistics,
            page_index: c.page_index,
            max_file_rows: c.max_file_rows,
            max_file_size: c.max_file_size,
        }
    }
}
