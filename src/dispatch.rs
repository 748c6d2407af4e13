//! The scheduler: runs every task of a plan concurrently, bounded by the global
//! `--concurrency` and by each shard's pool, each under its deadline. Tasks stream into
//! the merger; the first failure (unless `--allow-partial`) or an interrupt stops the
//! others, cancels their statements on the servers and removes the temporary output.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::config::JobConfig;
use crate::error::{Error, TaskError, TaskErrorKind};
use crate::merge::{self, Event, MergeSettings};
use crate::plan::{Plan, Task};
use crate::report::{Outcome, Progress, RunReport, TaskReport};
use crate::sink::{TempFile, writer_properties};
use crate::source::{Cancels, ShardPool, TaskContext};

/// How long the run waits for server-side cancels to be acknowledged before it returns.
const CANCEL_WAIT: Duration = Duration::from_secs(5);

/// Runs the plan and writes the output. Always returns the report of what ran; the
/// result says whether the run succeeded. `interrupt` resolves (to the signal's name)
/// when the user asks to stop.
pub async fn execute(
    config: &JobConfig,
    plan: &Plan,
    progress: Arc<Progress>,
    interrupt: impl Future<Output = &'static str>,
) -> (RunReport, Result<(), Error>) {
    let started = Instant::now();
    let mut reports: Vec<TaskReport> = plan
        .tasks
        .iter()
        .map(|t| TaskReport {
            task: t.id,
            shard: t.shard_name.clone(),
            partition: t.partition.clone(),
            rows: 0,
            duration: Duration::ZERO,
            outcome: Outcome::Cancelled,
        })
        .collect();
    let report = |reports: Vec<TaskReport>, output| RunReport {
        tasks: reports,
        output,
        elapsed: started.elapsed(),
    };

    // The output's directory is checked (and the temporary file made) before any query runs.
    let temp = match TempFile::create(&config.first_output()) {
        Ok(t) => t,
        Err(e) => return (report(reports, None), Err(e)),
    };
    let mut pools = Vec::with_capacity(config.shards.len());
    for shard in &config.shards {
        match ShardPool::open(shard, &config.options) {
            Ok(p) => pools.push(Arc::new(p)),
            Err(e) => return (report(reports, None), Err(e.into())),
        }
    }
    let (merge, mut merger) = merge::start(
        temp,
        MergeSettings {
            task_shards: plan.tasks.iter().map(|t| t.shard_name.clone()).collect(),
            shard_column: config.options.shard_column.clone(),
            row_group_size: config.options.row_group_size,
            props: writer_properties(&config.options),
            output: config.output.clone(),
            split: config.options.split,
        },
    );
    let cancels = Cancels::default();
    let mut interrupt = std::pin::pin!(interrupt);
    tokio::select! {
        _ = describe(&pools, plan, &merge, &config.options, &cancels) => {}
        signal = &mut interrupt => {
            // Nothing ran yet: stop the describes (dropping them cancels on the server).
            cancels.wait(CANCEL_WAIT).await;
            drop(merge);
            let _ = merger.await;
            return (report(reports, None), Err(Error::Interrupted { signal }));
        }
    }

    let global = Arc::new(Semaphore::new(config.options.concurrency));
    let per_shard: Vec<Arc<Semaphore>> = pools
        .iter()
        .map(|p| Arc::new(Semaphore::new(p.size())))
        .collect();
    let mut set = JoinSet::new();
    let mut counters = Vec::with_capacity(plan.tasks.len());
    for task in &plan.tasks {
        let rows = Arc::new(AtomicU64::new(0));
        counters.push(rows.clone());
        let count = progress.counter(task);
        let ctx = TaskContext {
            sender: merge.sender(task.id),
            batch_size: config.options.batch_size,
            deadline: config.options.query_timeout,
            on_rows: Box::new(move |n| {
                rows.fetch_add(n, Ordering::Relaxed);
                count(n);
            }),
            cancels: cancels.clone(),
        };
        let pool = pools[task.shard].clone();
        let shard_slots = per_shard[task.shard].clone();
        let global = global.clone();
        let progress = progress.clone();
        let task = task.clone();
        set.spawn(async move {
            // The shard's slot first: a task waiting for a busy shard holds no global slot.
            let _shard = shard_slots.acquire_owned().await.expect("never closed");
            let _global = global.acquire_owned().await.expect("never closed");
            progress.started(&task);
            let begun = Instant::now();
            let result = run_task(&pool, &task, &ctx).await;
            (task, begun.elapsed(), result)
        });
    }

    let mut failure: Option<Error> = None;
    let mut failed = 0;
    let mut merger_result = None;
    loop {
        tokio::select! {
            joined = set.join_next() => {
                let Some(joined) = joined else { break };
                let (task, duration, result) = match joined {
                    Ok(r) => r,
                    Err(e) if e.is_cancelled() => continue,
                    Err(e) => std::panic::resume_unwind(e.into_panic()),
                };
                let r = &mut reports[task.id];
                r.duration = duration;
                r.rows = counters[task.id].load(Ordering::Relaxed);
                match result {
                    Ok(rows) => {
                        r.rows = rows;
                        r.outcome = Outcome::Ok;
                        merge.send(Event::Done { task: task.id });
                    }
                    Err(e) => {
                        r.outcome = Outcome::Failed(e.kind.to_string());
                        merge.send(Event::Failed { task: task.id });
                        failed += 1;
                        if !config.options.allow_partial && failure.is_none() {
                            failure = Some(e.into());
                            set.abort_all();
                        }
                    }
                }
                progress.finished(&task, r);
            }
            result = &mut merger, if merger_result.is_none() => {
                // The merger stops early only on an error (a schema mismatch, a write failure).
                let result = result.expect("the merger does not panic");
                if let Err(e) = &result {
                    if failure.is_none() {
                        failure = Some(clone_error(e));
                    }
                    set.abort_all();
                }
                merger_result = Some(result);
            }
            signal = &mut interrupt => {
                failure = Some(Error::Interrupted { signal });
                set.abort_all();
                while set.join_next().await.is_some() {}
                break;
            }
        }
    }
    cancels.wait(CANCEL_WAIT).await;

    if let Some(error) = failure {
        drop(merge);
        if merger_result.is_none() {
            let _ = merger.await;
        }
        progress.clear();
        return (report(reports, None), Err(error));
    }

    merge.send(Event::Commit {
        metadata: metadata(config, plan, &reports),
    });
    drop(merge);
    let result = match merger_result {
        Some(r) => r,
        None => merger.await.expect("the merger does not panic"),
    };
    progress.clear();
    match result {
        Ok(output) => {
            let total = reports.len();
            let outcome = if failed > 0 {
                Err(Error::Partial { failed, total })
            } else {
                Ok(())
            };
            (report(reports, output), outcome)
        }
        Err(e) => (report(reports, None), Err(e)),
    }
}

/// Describes each shard's result (a prepare of its first task's query: the columns are
/// the same for all its tasks) before any task runs, so that the merger knows every
/// shard's column types, and can widen them, before the first row is written. A shard
/// that cannot be described here (unreachable, bad SQL) is left to fail, or to report
/// its columns, when its tasks run.
async fn describe(
    pools: &[Arc<ShardPool>],
    plan: &Plan,
    merge: &merge::MergeHandle,
    options: &crate::config::RunOptions,
    cancels: &Cancels,
) {
    let limit = options.query_timeout.unwrap_or(options.connect_timeout * 2);
    let slots = Arc::new(Semaphore::new(options.concurrency));
    let mut firsts: Vec<&Task> = Vec::new();
    for task in &plan.tasks {
        if !firsts.iter().any(|t| t.shard == task.shard) {
            firsts.push(task);
        }
    }
    let described = firsts.into_iter().map(|task| {
        let (pool, cancels, slots) = (pools[task.shard].clone(), cancels.clone(), slots.clone());
        async move {
            let _slot = slots.acquire_owned().await.expect("never closed");
            let schema = tokio::time::timeout(limit, pool.describe(&task.query, &cancels)).await;
            (task.shard, schema)
        }
    });
    for (shard, schema) in futures_util::future::join_all(described).await {
        if let Ok(Some(Ok(schema))) = schema {
            for task in plan.tasks.iter().filter(|t| t.shard == shard) {
                merge.send(Event::Schema {
                    task: task.id,
                    schema: schema.clone(),
                });
            }
        }
    }
}

async fn run_task(pool: &ShardPool, task: &Task, ctx: &TaskContext) -> Result<u64, TaskError> {
    let result = match ctx.deadline {
        Some(after) => tokio::time::timeout(after, pool.run(&task.query, ctx))
            .await
            .unwrap_or_else(|_| {
                Err(TaskError::new(
                    &task.shard_name,
                    TaskErrorKind::Timeout { after },
                ))
            }),
        None => pool.run(&task.query, ctx).await,
    };
    result.map_err(|mut e| {
        e.partition = task.partition.clone();
        e
    })
}

/// Errors are not `Clone`; the merger's error is reported by the run, so it is rebuilt.
fn clone_error(e: &Error) -> Error {
    match e {
        Error::SchemaMismatch {
            first_shard,
            other_shard,
            detail,
        } => Error::SchemaMismatch {
            first_shard: first_shard.clone(),
            other_shard: other_shard.clone(),
            detail: detail.clone(),
        },
        Error::Output { path, message } => Error::Output {
            path: path.clone(),
            message: message.clone(),
        },
        Error::Config { path, message } => Error::Config {
            path: path.clone(),
            message: message.clone(),
        },
        other => Error::config(None, other.to_string()),
    }
}

/// The Parquet key-value metadata: what was read, from where, with which parameters.
fn metadata(config: &JobConfig, plan: &Plan, reports: &[TaskReport]) -> Vec<(String, String)> {
    let shards: Vec<&str> = config.shards.iter().map(|s| s.name.as_str()).collect();
    let params: BTreeMap<&str, &crate::sql::ParamValue> =
        config.params.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let manifest: Vec<serde_json::Value> = plan
        .tasks
        .iter()
        .zip(reports)
        .map(|(t, r)| {
            serde_json::json!({
                "shard": t.shard_name,
                "partition": t.partition,
                "rows": r.rows,
                "seconds": r.duration.as_secs_f64(),
                "outcome": r.outcome,
            })
        })
        .collect();
    vec![
        ("tributary.version".into(), env!("CARGO_PKG_VERSION").into()),
        ("tributary.query".into(), config.query_text.clone()),
        (
            "tributary.query_path".into(),
            config.query_path.display().to_string(),
        ),
        (
            "tributary.params".into(),
            serde_json::to_string(&params).expect("serialisable"),
        ),
        (
            "tributary.shards".into(),
            serde_json::to_string(&shards).expect("serialisable"),
        ),
        (
            "tributary.tasks".into(),
            serde_json::Value::Array(manifest).to_string(),
        ),
    ]
}
