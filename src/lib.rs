//! tributary fans one SQL query out across many database shards at once and lands the
//! merged result as one Parquet file.
//!
//! The sub-problems, one module each, in the order data flows:
//!
//! ```text
//!  cli ──> config ──> plan ──> dispatch ─┬─> source (postgres: binary COPY ─> decode::pgcopy)
//!  (flags)  (JobConfig) (tasks)  (deadlines,│           (sqlite: rows ─> Arrow)
//!                                 cancels)  │           (mysql: binary rows ─> Arrow)
//!                                           └─> merge (byte-budgeted channel, schema check,
//!                                                      per-task row groups) ─> sink (Parquet:
//!                                                      temp file, fsync, rename; manifest
//!                                                      last when split) ─> report
//! ```
//!
//! - [`config`] resolves flags over the job file over defaults into a validated
//!   [`config::JobConfig`]; secrets never print.
//! - [`sql`] finds `:name` parameters and renders them as bound values or quoted literals;
//!   it also writes the SQL that splits and probes a query (quoted names, key literals).
//! - [`plan`] turns a job into tasks (one per shard, or per partition of a shard), each
//!   with its exact SQL; what a partitioned shard's split depends on, it asks through
//!   [`plan::ShardProbe`], which [`source`] implements.
//! - [`dispatch`] runs the tasks under global and per-shard limits and deadlines.
//! - [`source`] reads a shard: PostgreSQL through binary COPY, SQLite and MySQL/MariaDB
//!   through sqlx (MySQL's binary protocol, prepared statements).
//! - [`types`] is the source-type -> Arrow-type table, exact by default, with the lossy
//!   renderings users may choose as typed options (user documentation: docs/types.md).
//! - [`merge`] checks the batches against one common schema and cuts them into row
//!   groups encoded on several threads; [`sink`] (the [`sink::Sink`] seam: a local Parquet
//!   file or a split set of them, a Hive-partitioned dataset, an object in a cloud store,
//!   or, for the Python package, record batches kept in memory) writes them atomically.
//! - [`report`] shows progress and the run's summary, writes the JSON report and builds
//!   the Parquet metadata of what ran; [`metrics`] leaves the run's metrics for
//!   node_exporter (`--metrics-file`); [`error`] maps failures to exit codes.
//! - [`combine`] splits a query that needs it (aggregates, DISTINCT, ORDER BY, LIMIT) into
//!   each shard's part and a final step, which DataFusion runs over the tasks' rows.
//! - [`ledger`] records every run in SQLite, holds a job's lock, skips a run already
//!   done and keeps an incremental job's marks (the windows are [`plan::window`]);
//!   [`backfill`] runs a job once per step of a date range through it.
//! - [`check`] connects to every shard and reports what a run would meet there.
//! - [`manual`] generates shell completions and man pages from the [`cli`] definition.

pub mod backfill;
pub mod check;
pub mod cli;
pub mod combine;
pub mod config;
pub mod decode;
pub mod demo;
pub mod dispatch;
pub mod error;
pub mod ledger;
pub mod manual;
pub mod merge;
pub mod metrics;
pub mod plan;
pub mod report;
pub mod sink;
pub mod snapshot;
pub mod source;
pub mod sql;
pub mod types;

use std::future::Future;
use std::sync::Arc;

pub use config::{JobConfig, RunArgs};
pub use error::{Error, Result};
pub use report::{RunReport, write_report};

/// Plans and runs a job. `interactive` shows live progress bars (for a terminal).
/// `interrupt` resolves with a signal's name when the run should stop.
pub async fn run(
    config: &JobConfig,
    interactive: bool,
    interrupt: impl Future<Output = &'static str>,
) -> (RunReport, Result<()>) {
    run_into(config, interactive, interrupt, None).await
}

/// Plans and runs a job into memory, for a caller in the same process (the Python
/// package): the output's schema, the run's metadata on it, and its record batches. The
/// job's output settings are not used; nothing is written. Progress is logged as for a
/// run whose stderr is not a terminal.
pub async fn read(
    config: &JobConfig,
    interrupt: impl Future<Output = &'static str>,
) -> (RunReport, Result<sink::Batches>) {
    let collected = sink::Collected::default();
    let memory = Box::new(sink::MemorySink::new(collected.clone()));
    let (report, result) = run_into(config, false, interrupt, Some(memory)).await;
    let result = result.and_then(|()| {
        collected
            .take()
            .ok_or_else(|| Error::output(sink::MEMORY, "the run ended without output"))
    });
    (report, result)
}

/// [`run`], into `into` when given instead of the job's output.
async fn run_into(
    config: &JobConfig,
    interactive: bool,
    interrupt: impl Future<Output = &'static str>,
    into: Option<Box<dyn sink::Sink>>,
) -> (RunReport, Result<()>) {
    let started = std::time::Instant::now();
    let mut interrupt = std::pin::pin!(interrupt);
    let planned = tokio::select! {
        planned = dispatch::open_and_plan(config) => planned,
        signal = &mut interrupt => Err(Error::Interrupted { signal }),
    };
    let failed = |e: Error| {
        let report = RunReport {
            inputs: report::RunInputs::of(config),
            tasks: Vec::new(),
            output: None,
            elapsed: started.elapsed(),
            consistent: true,
            ..Default::default()
        };
        (report, Err(e))
    };
    let mut planned = match planned {
        Ok(p) => p,
        Err(e) => return failed(e),
    };
    // A slice of a run split across machines runs its share of the tasks.
    if let Some(config::Slicing {
        count,
        index: Some(index),
    }) = config.options.slicing
    {
        let snapshots = config.options.snapshots.as_deref();
        if !planned.plan.failed.is_empty() {
            // Without every shard's tasks the slices cannot be told apart, and the run
            // fails (a table takes no partial run): it reports the shards that failed.
            planned.plan.tasks.clear();
        } else {
            let slices = plan::slices::check_count(planned.plan.tasks.len(), count)
                .and_then(|()| plan::slices::of(&planned.plan, count, snapshots));
            match slices {
                Ok(slices) => plan::slices::keep(&mut planned.plan, index, &slices),
                Err(e) => {
                    planned.close().await;
                    return failed(Error::config(None, e));
                }
            }
        }
    }
    let progress = Arc::new(report::Progress::new(&planned.plan, interactive));
    dispatch::execute(config, planned, progress, interrupt, into).await
}

/// Installs SIGINT and SIGTERM handlers now (call it inside the runtime, before any
/// work) and returns a future that resolves at the first of them with its name. A
/// second signal exits the process at once.
pub fn shutdown_signal() -> impl Future<Output = &'static str> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut int = signal(SignalKind::interrupt()).expect("signal handlers can be installed");
    let mut term = signal(SignalKind::terminate()).expect("signal handlers can be installed");
    async move {
        let name = tokio::select! {
            _ = int.recv() => "SIGINT",
            _ = term.recv() => "SIGTERM",
        };
        tokio::spawn(async move {
            tokio::select! {
                _ = int.recv() => std::process::exit(error::exit::INTERRUPTED),
                _ = term.recv() => std::process::exit(error::exit::TERMINATED),
            }
        });
        name
    }
}
