//! The scheduler: runs every task of a plan concurrently, bounded by the global
//! `--concurrency` and by each shard's pool, each under its deadline. Tasks stream into
//! the merger; the first failure (unless `--allow-partial`) or an interrupt stops the
//! others, cancels their statements on the servers and removes the temporary output.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use tokio::sync::mpsc;

use crate::config::JobConfig;
use crate::error::{Error, TaskError, TaskErrorKind};
use crate::merge::{self, Event, MergeSettings};
use crate::plan::{self, Plan, Task};
use crate::report::{Outcome, Progress, RunReport, TaskReport};
use crate::sink::{TempFile, writer_properties};
use crate::source::{Cancels, ShardPool, SnapshotSession, TaskContext};

/// How long the run waits for server-side cancels to be acknowledged before it returns.
const CANCEL_WAIT: Duration = Duration::from_secs(5);

/// A planned job, with what it holds open: the shards' pools and the sessions keeping
/// their exported snapshots alive.
pub struct Prepared {
    pub plan: Plan,
    pools: Vec<Arc<ShardPool>>,
    sessions: Vec<SnapshotSession>,
    /// Receives a shard's name when its snapshot session ends.
    lost: mpsc::UnboundedReceiver<String>,
}

impl Prepared {
    /// PostgreSQL's row estimate for each task (`None` where there is none).
    pub async fn estimates(&self) -> Vec<Option<f64>> {
        let mut out = Vec::with_capacity(self.plan.tasks.len());
        for task in &self.plan.tasks {
            out.push(self.pools[task.shard].estimate(&task.query).await);
        }
        out
    }

    /// Ends the snapshot sessions.
    pub async fn close(self) {
        drop(self.lost);
        for session in self.sessions {
            session.close().await;
        }
    }
}

/// How `tributary plan` learns what it prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PlanMode {
    /// Connect to the shards and run what a run runs before its tasks: the partition
    /// probes (a range key's `min`/`max` over the query, a page-partitioned table's size
    /// and an `EXPLAIN` of its first piece, after exporting the snapshot the partitions
    /// would read), then an `EXPLAIN` of each PostgreSQL task for its row estimate. All
    /// inside READ ONLY transactions, ended without a change; no row of the result is
    /// fetched. The partitions' bounds are the ones a run at that moment would use.
    Probe,
    /// Connect to nothing: the tasks that need no probe, and for the others each shard's
    /// query and how the run will split it.
    Offline,
}

/// The text `tributary plan` prints: what a run of `config` would execute, with the
/// exact SQL of every task, preceded by a line saying what was run to learn it.
pub async fn plan(config: &JobConfig, mode: PlanMode) -> Result<String, Error> {
    match mode {
        PlanMode::Offline => {
            let plan = plan::offline(config);
            Ok(format!(
                "-- planned offline: no shard was connected to\n{}",
                plan.describe(None)
            ))
        }
        PlanMode::Probe => {
            let prepared = prepare(config).await?;
            let estimates = prepared.estimates().await;
            let text = prepared.plan.describe(Some(&estimates));
            prepared.close().await;
            let probed = match &config.options.partition {
                Some(_) => "the partition probes and the row estimates' EXPLAINs",
                None => "the row estimates' EXPLAINs",
            };
            Ok(format!(
                "-- planned by running {probed} on the shards, in READ ONLY transactions (no result row fetched; --offline connects to nothing)\n{text}"
            ))
        }
    }
}

/// Opens the shards' pools and, when the job is partitioned, probes every shard (at most
/// `--concurrency` at once) for how to split its query, exporting a snapshot first where
/// consistency is on. A shard whose probe fails is listed in [`Plan::failed`].
pub async fn prepare(config: &JobConfig) -> Result<Prepared, Error> {
    let mut pools = Vec::with_capacity(config.shards.len());
    for shard in &config.shards {
        let pool = ShardPool::open(shard, config.pool_size(shard), &config.options)?;
        pools.push(Arc::new(pool));
    }
    let (lost_tx, lost) = mpsc::unbounded_channel();
    let Some(spec) = &config.options.partition else {
        return Ok(Prepared {
            plan: plan::unpartitioned(config),
            pools,
            sessions: Vec::new(),
            lost,
        });
    };
    let limit = Arc::new(Semaphore::new(config.options.concurrency));
    let probes = pools.iter().enumerate().map(|(i, pool)| {
        let base = plan::base_query(config, i);
        let limit = limit.clone();
        let lost_tx = lost_tx.clone();
        async move {
            let _slot = limit.acquire().await.expect("never closed");
            pool.layout(spec, &base, config.options.consistent, &lost_tx)
                .await
        }
    });
    let results = futures_util::future::join_all(probes).await;
    let mut sessions = Vec::new();
    let layouts = results
        .into_iter()
        .map(|r| {
            r.map(|(layout, session)| {
                sessions.extend(session);
                Some(layout)
            })
        })
        .collect();
    Ok(Prepared {
        plan: plan::plan(config, layouts),
        pools,
        sessions,
        lost,
    })
}

/// Runs the plan and writes the output. Always returns the report of what ran; the
/// result says whether the run succeeded. `interrupt` resolves (to the signal's name)
/// when the user asks to stop.
pub async fn execute(
    config: &JobConfig,
    prepared: Prepared,
    progress: Arc<Progress>,
    interrupt: impl Future<Output = &'static str>,
) -> (RunReport, Result<(), Error>) {
    let started = Instant::now();
    let Prepared {
        mut plan,
        pools,
        sessions,
        mut lost,
    } = prepared;
    // Shards whose probe failed are reported like failed tasks.
    let mut unplanned = std::mem::take(&mut plan.failed);
    let plan = &plan;
    let mut reports: Vec<TaskReport> = plan
        .tasks
        .iter()
        .map(|t| TaskReport {
            task: t.id,
            shard: t.shard_name.clone(),
            partition: t.partition.clone(),
            rows: 0,
            duration: Duration::ZERO,
            attempts: 0,
            outcome: Outcome::Cancelled,
        })
        .collect();
    for e in &unplanned {
        reports.push(TaskReport {
            task: reports.len(),
            shard: e.shard.clone(),
            partition: Some("planning".into()),
            rows: 0,
            duration: Duration::ZERO,
            attempts: 1,
            outcome: Outcome::Failed(e.kind.to_string()),
        });
    }
    let snapshots = plan.snapshots.clone();
    let consistent = config.options.partition.is_none() || config.options.consistent;
    let report = |reports: Vec<TaskReport>, output| RunReport {
        tasks: reports,
        output,
        elapsed: started.elapsed(),
        snapshots: snapshots.clone(),
        consistent,
    };
    let close = |sessions: Vec<SnapshotSession>| async move {
        for s in sessions {
            s.close().await;
        }
    };
    if !unplanned.is_empty() && !config.options.allow_partial {
        close(sessions).await;
        let first = unplanned.swap_remove(0);
        return (report(reports, None), Err(first.into()));
    }

    // The output's directory is checked (and the temporary file made) before any query runs.
    let temp = match TempFile::create(&config.first_output()) {
        Ok(t) => t,
        Err(e) => {
            close(sessions).await;
            return (report(reports, None), Err(e));
        }
    };
    let (merge, mut merger) = merge::start(
        temp,
        MergeSettings {
            task_shards: plan.tasks.iter().map(|t| t.shard_name.clone()).collect(),
            shard_column: config.options.shard_column.clone(),
            row_group_size: config.options.row_group_size,
            props: writer_properties(&config.options),
            delta: config.options.delta,
            output: config.output.clone(),
            split: config.options.split,
            encoder_threads: config.options.encoder_threads,
        },
    );
    let cancels = Cancels::default();
    let mut interrupt = std::pin::pin!(interrupt);

    let global = Arc::new(Semaphore::new(config.options.concurrency));
    // What a task that starts before every shard is described adds to its server-side
    // timeout (see `TaskContext::server_slack`).
    let slack = describe_limit(&config.options);
    // Each shard's tasks start once the shard is described, not once every shard is: a
    // slow or distant shard's describe no longer holds back the others' queries. The
    // merger keeps their batches until the last describe is in (`Event::Describing`).
    let (gates, opened): (Vec<_>, Vec<_>) = (0..pools.len())
        .map(|_| tokio::sync::watch::channel(Gate::Closed))
        .unzip();
    // When the last describe was over: deadlines count from then (see `deadline`).
    let (all_described, described_at) = tokio::sync::watch::channel(None);
    merge.send(Event::Describing);
    // Boxed, to be dropped with its handle before the merger is awaited.
    let mut describing = Box::pin(describe(
        &pools,
        plan,
        merge.clone(),
        &global,
        &gates,
        &all_described,
        &config.options,
    ));
    let per_shard: Vec<Arc<Semaphore>> = pools
        .iter()
        .map(|p| Arc::new(Semaphore::new(p.size())))
        .collect();
    let mut set = JoinSet::new();
    let mut counters = Vec::with_capacity(plan.tasks.len());
    // Which tasks have imported their shard's snapshot (see `lost` below).
    let imported: Vec<Arc<AtomicBool>> = plan
        .tasks
        .iter()
        .map(|_| Arc::new(AtomicBool::new(false)))
        .collect();
    let mut finished = vec![false; plan.tasks.len()];
    for task in &plan.tasks {
        let rows = Arc::new(AtomicU64::new(0));
        counters.push(rows.clone());
        let count = progress.counter(task);
        let counted = rows.clone();
        let ctx = TaskContext {
            sender: merge.sender(task.id),
            batch_size: config.options.batch_size,
            deadline: config.options.query_timeout,
            server_slack: Duration::ZERO,
            stall: config.options.stall_timeout,
            on_rows: Box::new(move |n| {
                counted.fetch_add(n, Ordering::Relaxed);
                count(n);
            }),
            cancels: cancels.clone(),
            snapshot_imported: imported[task.id].clone(),
        };
        let retry = Retry {
            attempts: config.options.retries,
            within: config.options.retry_for,
        };
        let pool = pools[task.shard].clone();
        let shard_slots = per_shard[task.shard].clone();
        let global = global.clone();
        let progress = progress.clone();
        let mut opened = opened[task.shard].clone();
        let described_at = described_at.clone();
        let task = task.clone();
        set.spawn(async move {
            let mut ctx = ctx;
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
            (task, begun.elapsed(), attempts, result)
        });
    }

    let mut remaining = vec![0usize; pools.len()];
    for task in &plan.tasks {
        remaining[task.shard] += 1;
    }
    let mut failure: Option<Error> = None;
    let mut failed = unplanned.len();
    // Set when the merger stopped before the commit: it does so only on an error, which
    // then becomes the run's failure.
    let mut merger_stopped = false;
    loop {
        tokio::select! {
            // Done once `described_at` is set, which is the describe step's last act.
            _ = &mut describing, if described_at.borrow().is_none() => {}
            joined = set.join_next() => {
                let Some(joined) = joined else { break };
                let (task, duration, attempts, result) = match joined {
                    Ok(r) => r,
                    Err(e) if e.is_cancelled() => continue,
                    Err(e) => std::panic::resume_unwind(e.into_panic()),
                };
                remaining[task.shard] -= 1;
                finished[task.id] = true;
                if remaining[task.shard] == 0 {
                    pools[task.shard].close();
                }
                let r = &mut reports[task.id];
                r.duration = duration;
                r.attempts = attempts;
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
            result = &mut merger, if !merger_stopped => {
                // The merger stops early only on an error (a schema mismatch, a write failure).
                merger_stopped = true;
                if let Err(e) = result.expect("the merger does not panic") {
                    failure.get_or_insert(e);
                    set.abort_all();
                }
            }
            Some(shard) = lost.recv() => {
                // A transaction that imported the snapshot keeps it when the exporting
                // session ends: the shard fails only if a task has yet to import it (a
                // retry of a task that had imported it imports it again, and then fails
                // with the same error on its own).
                let waiting = plan.tasks.iter().any(|t| {
                    t.shard_name == shard
                        && !finished[t.id]
                        && !imported[t.id].load(Ordering::Relaxed)
                });
                if !waiting {
                    tracing::debug!(
                        "shard {shard}: the snapshot session ended after every partition had imported the snapshot"
                    );
                    continue;
                }
                if failure.is_none() {
                    failure = Some(TaskError::new(shard, TaskErrorKind::SnapshotLost {
                        message: "the session that exported the shard's snapshot ended; \
                                  partitions that had not started could not read the same state"
                            .into(),
                    }).into());
                }
                set.abort_all();
            }
            signal = &mut interrupt => {
                failure = Some(Error::Interrupted { signal });
                set.abort_all();
                while set.join_next().await.is_some() {}
                break;
            }
        }
    }
    if failure.is_none() && described_at.borrow().is_none() {
        // Every task has run, so every shard's describe is over; what is left is
        // handing the schemas to the merger.
        describing.as_mut().await;
    }
    drop(describing);
    cancels.wait(CANCEL_WAIT).await;
    drop(lost);
    close(sessions).await;

    if let Some(error) = failure {
        drop(merge);
        if !merger_stopped {
            let _ = merger.await;
        }
        progress.clear();
        return (report(reports, None), Err(error));
    }

    merge.send(Event::Commit {
        metadata: metadata(config, plan, &reports),
    });
    drop(merge);
    let result = if merger_stopped {
        Ok(None)
    } else {
        merger.await.expect("the merger does not panic")
    };
    progress.clear();
    match result {
        Ok(output) => {
            let total = reports.len();
            let failed = failed.min(total);
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

/// How transient failures are retried: capped exponential backoff with full jitter.
struct Retry {
    /// Further attempts after the first.
    attempts: u32,
    /// No retry starts after the task has been failing this long.
    within: Duration,
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

/// Whether a shard's tasks may start: closed until its describe is over.
#[derive(Debug, Clone)]
enum Gate {
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
async fn describe(
    pools: &[Arc<ShardPool>],
    plan: &Plan,
    merge: merge::MergeHandle,
    global: &Arc<Semaphore>,
    gates: &[tokio::sync::watch::Sender<Gate>],
    all_described: &tokio::sync::watch::Sender<Option<Instant>>,
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
fn describe_limit(options: &crate::config::RunOptions) -> Duration {
    options.query_timeout.unwrap_or(options.connect_timeout * 2)
}

/// Sleeps until `after` has passed since the task started, or since the last shard was
/// described if that was later. A task may start while other shards are still being
/// described, and the merger holds its rows until they are (only the channel's budget of
/// them, then the task waits): that wait is the other shards', not this task's server's,
/// so it does not count against the task's deadline, which then bounds the same span as
/// when no task started before every shard was described.
async fn deadline(
    after: Duration,
    mut described_at: tokio::sync::watch::Receiver<Option<Instant>>,
) {
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
    described_at: tokio::sync::watch::Receiver<Option<Instant>>,
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
                "attempts": r.attempts,
                "outcome": r.outcome,
            })
        })
        .collect();
    vec![
        ("tributary.version".into(), env!("CARGO_PKG_VERSION").into()),
        (
            "tributary.snapshots".into(),
            serde_json::to_string(&plan.snapshots).expect("serialisable"),
        ),
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
