//! One task from its start to its end: waiting for its shard's describe and for a
//! slot, then its attempts, each under its deadline, with retries of transient failures.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, watch};

use super::describe::Gate;
use crate::error::{TaskError, TaskErrorKind};
use crate::plan::Task;
use crate::report::Progress;
use crate::source::{ShardPool, TaskContext};

/// What a task holds from its start to its end.
pub(super) struct TaskRun {
    pub(super) task: Task,
    pub(super) pool: Arc<ShardPool>,
    pub(super) ctx: TaskContext,
    pub(super) retry: Retry,
    /// A slot of the task's shard, then a slot of the global `--concurrency`.
    pub(super) shard_slots: Arc<Semaphore>,
    pub(super) global: Arc<Semaphore>,
    pub(super) progress: Arc<Progress>,
    /// The task's shard's gate (see [`Gate`]).
    pub(super) opened: watch::Receiver<Gate>,
    /// When the last describe was over: deadlines count from then (see [`deadline`]).
    pub(super) described_at: watch::Receiver<Option<Instant>>,
    /// What an attempt that starts before every shard is described adds to its
    /// server-side timeout (see `TaskContext::server_slack`).
    pub(super) slack: Duration,
    /// Rows sent by the attempt in progress (cleared for a retry).
    pub(super) rows: Arc<AtomicU64>,
}

/// How a task ended.
pub(super) struct TaskEnd {
    pub(super) task: Task,
    pub(super) duration: Duration,
    pub(super) attempts: u32,
    /// The rows the task sent, or its last attempt's error.
    pub(super) result: Result<u64, TaskError>,
    /// The bytes of Arrow data its last attempt sent.
    pub(super) bytes: u64,
}

impl TaskRun {
    /// Runs the task: attempts until one succeeds, a failure is not retryable, or the
    /// retries are spent.
    pub(super) async fn run(self) -> TaskEnd {
        let TaskRun {
            task,
            pool,
            mut ctx,
            retry,
            shard_slots,
            global,
            progress,
            mut opened,
            described_at,
            slack,
            rows,
        } = self;
        // Not before the shard's describe is over: it holds one of the shard's
        // connections, and a slot for it was asked before any task's.
        let gate = opened
            .wait_for(|gate| !matches!(gate, Gate::Closed))
            .await
            .map(|gate| gate.clone())
            .unwrap_or(Gate::Open);
        // The shard's slot first: a task waiting for a busy shard holds no global slot.
        let _shard = shard_slots.acquire_owned().await.expect("never closed");
        let _global = global.acquire_owned().await.expect("never closed");
        progress.started(&task);
        let begun = Instant::now();
        let mut attempts = 1;
        let result = loop {
            ctx.server_slack = match *described_at.borrow() {
                Some(_) => Duration::ZERO,
                None => slack,
            };
            let result = match &gate {
                // The describe's connection was this attempt.
                Gate::Unreachable(e) if attempts == 1 => Err(e.clone()),
                _ => run_task(&pool, &task, &ctx, described_at.clone()).await,
            }
            .map_err(|mut e| {
                e.partition = task.partition.clone();
                e
            });
            let Err(e) = &result else { break result };
            let Some(pause) = retry.pause_before(attempts, begun.elapsed(), e) else {
                break result;
            };
            tracing::warn!(
                "shard {}{}: {}; retrying in {:.1}s (attempt {} of {})",
                task.shard_name,
                task.partition
                    .as_ref()
                    .map(|p| format!(" ({p})"))
                    .unwrap_or_default(),
                e.kind,
                pause.as_secs_f64(),
                attempts + 1,
                retry.attempts + 1
            );
            // What the failed attempt sent never reaches the output.
            ctx.sender.discard();
            rows.store(0, Ordering::Relaxed);
            progress.restart(&task);
            tokio::time::sleep(pause).await;
            attempts += 1;
        };
        TaskEnd {
            task,
            duration: begun.elapsed(),
            attempts,
            result,
            bytes: ctx.sender.bytes(),
        }
    }
}

/// How transient failures are retried: capped exponential backoff with full jitter.
pub(super) struct Retry {
    /// Further attempts after the first.
    pub(super) attempts: u32,
    /// No retry starts after the task has been failing this long.
    pub(super) within: Duration,
}

/// The first pause; doubled each attempt up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(250);
const MAX_PAUSE: Duration = Duration::from_secs(30);

impl Retry {
    /// The pause before the next attempt, or `None` when the task must fail now.
    fn pause_before(
        &self,
        attempts_made: u32,
        elapsed: Duration,
        error: &TaskError,
    ) -> Option<Duration> {
        if !error.is_retryable() || attempts_made > self.attempts {
            return None;
        }
        let cap = FIRST_PAUSE
            .saturating_mul(1 << (attempts_made - 1).min(16))
            .min(MAX_PAUSE);
        // Full jitter: tasks failing together do not come back together.
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let mut rng = <rand::rngs::SmallRng as rand::SeedableRng>::seed_from_u64(seed);
        let pause = cap.mul_f64(rand::Rng::random_range(&mut rng, 0.5..=1.0));
        (elapsed + pause <= self.within).then_some(pause)
    }
}

/// Sleeps until `after` has passed since the task started, or since the last shard was
/// described if that was later. A task may start while other shards are still being
/// described, and the merger holds its rows until they are (only the channel's budget of
/// them, then the task waits): that wait is the other shards', not this task's server's,
/// so it does not count against the task's deadline, which then bounds the same span as
/// when no task started before every shard was described.
async fn deadline(after: Duration, mut described_at: watch::Receiver<Option<Instant>>) {
    let started = Instant::now();
    let from = match described_at.wait_for(Option::is_some).await {
        Ok(at) => at.map_or(started, |at| at.max(started)),
        // The describe step was dropped: the run is ending anyway.
        Err(_) => started,
    };
    tokio::time::sleep_until((from + after).into()).await;
}

async fn run_task(
    pool: &ShardPool,
    task: &Task,
    ctx: &TaskContext,
    described_at: watch::Receiver<Option<Instant>>,
) -> Result<u64, TaskError> {
    let run = pool.run(&task.query, task.snapshot.as_deref(), ctx);
    match ctx.deadline {
        Some(after) => {
            // Dropping the run past the deadline cancels its statement on the server.
            tokio::select! {
                biased;
                result = run => result,
                () = deadline(after, described_at) => Err(TaskError::new(
                    &task.shard_name,
                    TaskErrorKind::Timeout { after },
                )),
            }
        }
        None => run.await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(kind: TaskErrorKind) -> TaskError {
        TaskError::new("s", kind)
    }

    #[test]
    fn only_transient_failures_are_retried_within_bounds() {
        let retry = Retry {
            attempts: 3,
            within: Duration::from_secs(60),
        };
        let lost = err(TaskErrorKind::ConnectionLost {
            message: "reset".into(),
        });
        let syntax = err(TaskErrorKind::Server {
            sqlstate: Some("42601".into()),
            message: "syntax".into(),
        });
        let busy = err(TaskErrorKind::Server {
            sqlstate: Some("53300".into()),
            message: "too many".into(),
        });
        assert!(retry.pause_before(1, Duration::ZERO, &lost).is_some());
        assert!(retry.pause_before(1, Duration::ZERO, &busy).is_some());
        assert!(retry.pause_before(1, Duration::ZERO, &syntax).is_none());
        assert!(
            retry.pause_before(4, Duration::ZERO, &lost).is_none(),
            "attempts are capped"
        );
        assert!(
            retry
                .pause_before(1, Duration::from_secs(60), &lost)
                .is_none(),
            "time is capped"
        );
        for attempt in 1..=3 {
            let pause = retry.pause_before(attempt, Duration::ZERO, &lost).unwrap();
            let cap = FIRST_PAUSE * (1 << (attempt - 1));
            assert!(
                pause <= cap && pause >= cap / 2,
                "attempt {attempt}: {pause:?}"
            );
        }
        let long = Retry {
            attempts: 40,
            within: Duration::from_secs(3600),
        };
        assert!(long.pause_before(30, Duration::ZERO, &lost).unwrap() <= MAX_PAUSE);
        let refused = err(TaskErrorKind::Connect {
            target: "x".into(),
            message: "refused".into(),
            transient: true,
        });
        let auth = err(TaskErrorKind::Connect {
            target: "x".into(),
            message: "password".into(),
            transient: false,
        });
        assert!(retry.pause_before(1, Duration::ZERO, &refused).is_some());
        assert!(retry.pause_before(1, Duration::ZERO, &auth).is_none());
    }
}
