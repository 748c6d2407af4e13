//! The describe step: each shard's result columns, learnt before its tasks run, so that
//! the merger can widen every shard's types before the first row is written; and the
//! gates that hold a shard's tasks until its describe is over.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, watch};

use crate::error::{TaskError, TaskErrorKind};
use crate::merge::{self, Event};
use crate::plan::{Plan, Task};
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
pub(super) async fn describe(
    pools: &[Arc<ShardPool>],
    plan: &Plan,
    merge: merge::MergeHandle,
    global: &Arc<Semaphore>,
    gates: &[watch::Sender<Gate>],
    all_described: &watch::Sender<Option<Instant>>,
    options: &crate::config::RunOptions,
) {
    let limit = describe_limit(options);
    let mut firsts: Vec<&Task> = Vec::new();
    for task in &plan.tasks {
        if !firsts.iter().any(|t| t.shard == task.shard) {
            firsts.push(task);
        }
    }
    let described = firsts.into_iter().map(|task| {
        let (pool, global) = (pools[task.shard].clone(), global.clone());
        async move {
            let _slot = global.acquire_owned().await.expect("never closed");
            let schema = tokio::time::timeout(limit, pool.describe(&task.query)).await;
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
