//! The describe step: each shard's result columns, learnt before its tasks run, so that
//! the merger can widen every shard's types before the first row is written; and the
//! gates that hold a shard's tasks until its describe is over.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, watch};

use crate::error::{TaskError, TaskErrorKind};
use crate::merge::{self, Event};
use crate::plan::{Plan, Task, TaskQuery};
use crate::report::Progress;
use crate::source::ShardPool;

/// Whether a shard's tasks may start: closed until its describe is over.
#[derive(Debug, Clone)]
pub(super) enum Gate {
    Closed,
    Open,
    /// The describe could not connect (this error). Each of the shard's tasks takes that
    /// as its first attempt, which its retries follow as usual, rather than waiting for
    /// another connection to fail the same way (a connect timeout more on an unreachable
    /// host).
    Unreachable(TaskError),
}

/// Describes each shard's result (a prepare of its first task's query: the columns are
/// the same for all its tasks), so that the merger knows every shard's column types, and
/// can widen them, before the first row is written. Each shard's gate opens when its
/// describe is over, letting its tasks start; the schemas go to the merger together once
/// all are in ([`Event::Described`]). A shard whose describe could not connect opens its
/// gate as [`Gate::Unreachable`]; one that cannot be described otherwise (bad SQL, a
/// describe past its limit) is left to fail, or to report its columns, when its tasks
/// run.
///
/// Each describe takes a slot of `global`, the tasks' own `--concurrency` bound; the
/// describes ask for theirs before any task can.
///
/// When the progress shows them, the describe also asks for the row estimate of each of
/// the shard's tasks, on its connection and in the same round trip (see
/// `PgShard::describe_estimating`), and hands them to `progress` before the gate opens.
#[allow(clippy::too_many_arguments)]
pub(super) async fn describe(
    pools: &[Arc<ShardPool>],
    plan: &Plan,
    merge: merge::MergeHandle,
    global: &Arc<Semaphore>,
    gates: &[watch::Sender<Gate>],
    all_described: &watch::Sender<Option<Instant>>,
    progress: &Progress,
    options: &crate::config::RunOptions,
) {
    let limit = describe_limit(options);
    let mut firsts: Vec<&Task> = Vec::new();
    for task in &plan.tasks {
        if !firsts.iter().any(|t| t.shard == task.shard) {
            firsts.push(task);
        }
    }
    let estimate = progress.wants_estimates();
    let described = firsts.into_iter().map(|task| {
        let (pool, global) = (pools[task.shard].clone(), global.clone());
        let tasks: Vec<&Task> = match estimate {
            true => plan
                .tasks
                .iter()
                .filter(|t| t.shard == task.shard)
                .collect(),
            false => Vec::new(),
        };
        async move {
            let _slot = global.acquire_owned().await.expect("never closed");
            let queries: Vec<&TaskQuery> = tasks.iter().map(|t| &t.query).collect();
            let started = Instant::now();
            let described =
                tokio::time::timeout(limit, pool.describe_estimating(&task.query, &queries)).await;
            let schema = described.map(|(schema, estimates)| {
                let known = estimates.iter().flatten().count();
                for (t, rows) in tasks.iter().zip(estimates) {
                    if let Some(rows) = rows {
                        progress.estimated(t.id, rows);
                    }
                }
                tracing::debug!(
                    "shard {}: described in {:.2?}, with {known} of {} row estimates",
                    task.shard_name,
                    started.elapsed(),
                    tasks.len()
                );
                schema
            });
            gates[task.shard].send_replace(match &schema {
                Ok(Some(Err(e))) if matches!(e.kind, TaskErrorKind::Connect { .. }) => {
                    Gate::Unreachable(e.clone())
                }
                _ => Gate::Open,
            });
            (task.shard, schema)
        }
    });
    let mut schemas = Vec::new();
    for (shard, schema) in futures_util::future::join_all(described).await {
        if let Ok(Some(Ok(schema))) = schema {
            for task in plan.tasks.iter().filter(|t| t.shard == shard) {
                schemas.push((task.id, schema.clone()));
            }
        }
    }
    merge.send(Event::Described { schemas });
    all_described.send_replace(Some(Instant::now()));
}

/// How long one shard's describe may take.
pub(super) fn describe_limit(options: &crate::config::RunOptions) -> Duration {
    options.query_timeout.unwrap_or(options.connect_timeout * 2)
}
