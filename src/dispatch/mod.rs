//! The scheduler: runs every task of a plan concurrently, bounded by the global
//! `--concurrency` and by each shard's pool, each under its deadline. Tasks stream into
//! the merger; the first failure (unless `--allow-partial`) or an interrupt stops the
//! others, cancels their statements on the servers and removes the temporary output.
//!
//! [`execute`] runs in named steps: the sink is opened (before any query), the merger
//! started on it, the shards described (`describe`) while the tasks start
//! (`task`), the tasks' ends and the other events driven until every task is over,
//! and then the output committed, with the Parquet metadata of what ran, or dropped.

mod describe;
mod task;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;

use crate::combine::engine::FinalStep;
use crate::combine::{InputType, InputTypes};
use crate::config::{JobConfig, PartitionSpec};
use crate::error::{Error, TaskError, TaskErrorKind};
use crate::merge::{self, Event, MergeHandle, MergeSettings};
use crate::plan::{self, Plan, ShardLayout, TaskQuery};
use crate::report::{self, Outcome, Progress, RunReport, TaskReport};
use crate::sink::{self, OutputSummary};
use crate::source::{Cancels, ColumnKind, ShardPool, SnapshotSession, TaskContext};
use describe::{Gate, describe, describe_limit};
use task::{Retry, TaskEnd, TaskRun};

/// How long the run waits for server-side cancels to be acknowledged before it returns.
const CANCEL_WAIT: Duration = Duration::from_secs(5);

/// A planned job, with what it holds open: the shards' pools and the sessions keeping
/// their exported snapshots alive.
pub struct OpenPlan {
    pub plan: Plan,
    pools: Vec<Arc<ShardPool>>,
    sessions: Vec<SnapshotSession>,
    /// Receives a shard's name when its snapshot session ends.
    lost: mpsc::UnboundedReceiver<String>,
}

impl OpenPlan {
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
            let mut text = plan.describe(None);
            if let Some(slicing) = config.options.slicing {
                if plan.deferred.is_empty() {
                    let snapshots = config.options.snapshots.as_deref();
                    let slices = plan::slices::describe(&plan, slicing.count, snapshots, None)
                        .map_err(|e| Error::config(None, e))?;
                    text.push_str(&slices);
                } else {
                    text.push_str(
                        "slices: the shards' partitions are found by probes; plan without --offline to see each slice's tasks\n",
                    );
                }
            }
            Ok(format!(
                "-- planned offline: no shard was connected to\n{}{}{text}",
                plan::describe_params(config),
                plan::describe_readers(config),
            ))
        }
        PlanMode::Probe => {
            let planned = open_and_plan(config).await?;
            let estimates = planned.estimates().await;
            let mut text = planned.plan.describe(Some(&estimates));
            if let Some(slicing) = config.options.slicing {
                let snapshots = config.options.snapshots.as_deref();
                let count = slicing.count;
                match plan::slices::describe(&planned.plan, count, snapshots, Some(&estimates)) {
                    Ok(slices) => text.push_str(&slices),
                    Err(e) => {
                        planned.close().await;
                        return Err(Error::config(None, e));
                    }
                }
            }
            planned.close().await;
            // Only PostgreSQL shards estimate their tasks' rows.
            let explains = config
                .shards
                .iter()
                .any(|s| matches!(s.source, crate::config::SourceConfig::Postgres(_)));
            let probed = match (config.options.partition.is_some(), explains) {
                (true, true) => "the partition probes and the row estimates' EXPLAINs",
                (true, false) => "the partition probes",
                (false, true) => "the row estimates' EXPLAINs",
                (false, false) => "nothing but the query's description",
            };
            Ok(format!(
                "-- planned by running {probed} on the shards, in READ ONLY transactions (no result row fetched; --offline connects to nothing)\n{}{}{text}",
                plan::describe_params(config),
                plan::describe_readers(config)
            ))
        }
    }
}

/// Opens the shards' pools and, when the job is partitioned, probes every shard (at most
/// `--concurrency` at once) for how to split its query, exporting a snapshot first where
/// consistency is on. A shard whose probe fails is listed in [`Plan::failed`].
pub async fn open_and_plan(config: &JobConfig) -> Result<OpenPlan, Error> {
    let mut pools = Vec::with_capacity(config.shards.len());
    for shard in &config.shards {
        let pool = ShardPool::open(shard, config.pool_size(shard), &config.options)?;
        pools.push(Arc::new(pool));
    }
    let (lost_tx, lost) = mpsc::unbounded_channel();
    let (types, undescribed) = input_types(config, &pools).await;
    plan::check_split(config, &types)?;
    let spec = config.options.partition.as_ref();
    // Without partitions a shard's one task reads its own snapshot, unless the tasks are
    // to read the snapshots another process holds (`--snapshots`).
    if spec.is_none() && config.incremental.is_none() && config.options.snapshots.is_none() {
        let layouts = undescribed
            .into_iter()
            .map(|e| e.map_or(Ok(None), Err))
            .collect();
        return Ok(OpenPlan {
            plan: plan::plan(config, layouts, &types),
            pools,
            sessions: Vec::new(),
            lost,
        });
    }
    let limit = Arc::new(Semaphore::new(config.options.concurrency));
    let probes = pools.iter().enumerate().map(|(i, pool)| {
        let base = plan::base_query(config, i);
        let limit = limit.clone();
        let lost_tx = lost_tx.clone();
        let shard = &config.shards[i].name;
        async move {
            let _slot = limit.acquire().await.expect("never closed");
            let window = config.incremental.as_ref().map(|inc| (inc, shard.as_str()));
            let snapshots = config.options.snapshots.as_deref();
            let path = snapshots.map(|s| s.path.display().to_string());
            let import = snapshots
                .and_then(|s| s.ids.get(shard))
                .map(|id| (id.as_str(), path.as_deref().unwrap_or_default()));
            shard_layout(
                pool,
                spec,
                window,
                &base,
                config.options.consistent,
                import,
                &lost_tx,
            )
            .await
        }
    });
    let results = futures_util::future::join_all(probes).await;
    let mut sessions = Vec::new();
    let layouts = results
        .into_iter()
        .zip(undescribed)
        .map(|(r, undescribed)| match undescribed {
            Some(e) => Err(e),
            None => r.map(|(layout, session)| {
                sessions.extend(session);
                Some(layout)
            }),
        })
        .collect();
    Ok(OpenPlan {
        plan: plan::plan(config, layouts, &types),
        pools,
        sessions,
        lost,
    })
}

/// For a split query, the types of its row query's columns as the PostgreSQL and MySQL
/// shards describe them (each shard's, widened to hold all), which decide the partial
/// aggregates' casts; and, by shard, the describe's error where it failed.
async fn input_types(
    config: &JobConfig,
    pools: &[Arc<ShardPool>],
) -> (InputTypes, Vec<Option<crate::error::TaskError>>) {
    let mut types = InputTypes::new();
    let mut errors = vec![None; pools.len()];
    if !matches!(config.combine, crate::config::Combine::Split { .. }) {
        return (types, errors);
    }
    let limit = Arc::new(Semaphore::new(config.options.concurrency));
    let described = futures_util::future::join_all(pools.iter().enumerate().map(|(i, pool)| {
        let query = plan::base_query(config, i);
        let limit = limit.clone();
        async move {
            let _slot = limit.acquire().await.expect("never closed");
            pool.column_kinds(&query).await
        }
    }))
    .await;
    for (i, result) in described.into_iter().enumerate() {
        match result {
            None => {}
            Some(Err(e)) => errors[i] = Some(e),
            Some(Ok(columns)) => {
                for (name, kind) in columns {
                    let ty = match &kind {
                        ColumnKind::Postgres(kind) => InputType::of(kind),
                        ColumnKind::Mysql(kind) => InputType::of_mysql(kind),
                    };
                    let merged = match types.get(&name) {
                        Some(t) => t.unify(ty),
                        None => ty,
                    };
                    types.insert(name, merged);
                }
            }
        }
    }
    (types, errors)
}

/// Learns how to read one shard's query: with `consistent`, first exports the snapshot
/// all its tasks will read (and probes inside it); for an incremental job, probes the
/// shard's high mark, which bounds its window; then splits the (windowed) query into
/// partitions by `spec`. The snapshot session is returned to be held until the run
/// ends; when its connection ends, the shard's name is sent on `lost`.
async fn shard_layout(
    pool: &ShardPool,
    spec: Option<&PartitionSpec>,
    incremental: Option<(&crate::config::Incremental, &str)>,
    base: &TaskQuery,
    consistent: bool,
    import: Option<(&str, &str)>,
    lost: &mpsc::UnboundedSender<String>,
) -> Result<(ShardLayout, Option<SnapshotSession>), TaskError> {
    let session = match consistent {
        true => pool.export_snapshot(lost, import).await?,
        false => None,
    };
    let probe = pool.probe(session.as_ref());
    let window = match incremental {
        None => None,
        Some((inc, shard)) => Some(plan::window_of(inc, shard, base, &probe).await?),
    };
    let windowed = match &window {
        Some(w) => plan::window_query(base, w),
        None => base.clone(),
    };
    let partitions = match spec {
        Some(spec) => plan::split_shard(spec, &windowed, &probe).await?,
        None => vec![plan::partition::Partition::All],
    };
    let snapshot = session.as_ref().map(|s| s.id.clone());
    Ok((
        ShardLayout {
            partitions,
            snapshot,
            window,
        },
        session,
    ))
}

/// The merger's result: the output's summary once committed, `None` when it ended
/// without output.
type MergerHandle = tokio::task::JoinHandle<crate::Result<Option<OutputSummary>>>;

/// Runs the plan and writes the output: the job's (opened now, see `sink::open`), or
/// `into` when given. Always returns the report of what ran; the result says whether the
/// run succeeded. `interrupt` resolves (to the signal's name) when the user asks to stop.
pub async fn execute(
    config: &JobConfig,
    planned: OpenPlan,
    progress: Arc<Progress>,
    interrupt: impl Future<Output = &'static str>,
    into: Option<Box<dyn sink::Sink>>,
) -> (RunReport, Result<(), Error>) {
    let OpenPlan {
        mut plan,
        pools,
        sessions,
        lost,
    } = planned;
    // Shards whose probe failed are reported like failed tasks.
    let mut unplanned = std::mem::take(&mut plan.failed);
    let plan = &plan;
    let mut reports = RunReports::new(config, plan, &unplanned);
    if !unplanned.is_empty() && !config.options.allow_partial {
        close(sessions).await;
        let first = unplanned.swap_remove(0);
        return (reports.finish(None), Err(first.into()));
    }
    if let Err(e) = lock_mysql_snapshots(config, plan, &pools, &mut reports).await {
        close(sessions).await;
        return (reports.finish(None), Err(e.into()));
    }
    // The output's directory is checked (and its temporary file made) before any query
    // runs; a remote output's bucket, or a table, is reached (unless the output goes
    // `into` a sink of the caller's).
    if into.is_none() {
        let checked = match (&config.options.table, &config.remote) {
            (Some(table), _) => sink::delta::check(config, table).await.map(|_| ()),
            (None, Some(remote)) => {
                sink::object::check(remote, config.options.dataset.is_some()).await
            }
            (None, None) => Ok(()),
        };
        if let Err(e) = checked {
            close(sessions).await;
            return (reports.finish(None), Err(e));
        }
    }
    let sink = match into.map_or_else(|| sink::open(config), Ok) {
        Ok(sink) => sink,
        Err(e) => {
            close(sessions).await;
            return (reports.finish(None), Err(e));
        }
    };
    let (merge, merger) = merge::start(sink, merge_settings(config, plan, &reports));
    let global = Arc::new(Semaphore::new(config.options.concurrency));
    // Each shard's tasks start once the shard is described, not once every shard is: a
    // slow or distant shard's describe no longer holds back the others' queries. The
    // merger keeps their batches until the last describe is in (`Event::Describing`).
    let (gates, opened): (Vec<_>, Vec<_>) = (0..pools.len())
        .map(|_| watch::channel(Gate::Closed))
        .unzip();
    // When the last describe was over: deadlines count from then (see `task::deadline`).
    let (all_described, described_at) = watch::channel(None);
    merge.send(Event::Describing);
    // Boxed, to be dropped with its handle before the merger is awaited.
    let describing = Box::pin(describe(
        &pools,
        plan,
        merge.clone(),
        &global,
        &gates,
        &all_described,
        &progress,
        &config.options,
    ));
    progress.follow();
    let cancels = Cancels::default();
    let tasks = start_tasks(
        config,
        plan,
        &pools,
        &merge,
        &progress,
        &cancels,
        global.clone(),
        &opened,
        &described_at,
    );
    let mut run = Driver {
        config,
        plan,
        pools: &pools,
        progress: &progress,
        merge,
        merger,
        tasks,
        reports,
        failure: None,
        failed: unplanned.len(),
        merger_stopped: false,
    };
    let mut lost = lost;
    run.drive(describing, described_at, &mut lost, interrupt)
        .await;
    cancels.wait(CANCEL_WAIT).await;
    drop(lost);
    close(sessions).await;
    run.finish().await
}

/// `snapshot = "lock"`: a partitioned MySQL shard's transactions start together, before
/// any task runs; the report says so of each such shard.
async fn lock_mysql_snapshots(
    config: &JobConfig,
    plan: &Plan,
    pools: &[Arc<ShardPool>],
    reports: &mut RunReports,
) -> Result<(), crate::error::TaskError> {
    if !(config.options.consistent && config.options.mysql_lock) {
        return Ok(());
    }
    for (index, pool) in pools.iter().enumerate() {
        let tasks = plan.tasks.iter().filter(|t| t.shard == index).count();
        let partitioned = plan
            .tasks
            .iter()
            .any(|t| t.shard == index && t.partition.is_some());
        if !partitioned || !matches!(pool.as_ref(), ShardPool::Mysql(_)) {
            continue;
        }
        pool.hold_snapshots(tasks).await?;
        let shard = config.shards[index].name.clone();
        reports.independent.retain(|s| *s != shard);
        reports.snapshots.insert(
            shard,
            format!("of {tasks} transactions started together under FLUSH TABLES WITH READ LOCK"),
        );
    }
    Ok(())
}

/// What the merger needs of the job and its plan.
fn merge_settings(config: &JobConfig, plan: &Plan, reports: &RunReports) -> MergeSettings {
    MergeSettings {
        task_shards: plan.tasks.iter().map(|t| t.shard_name.clone()).collect(),
        shard_column: config.options.shard_column.clone(),
        row_group_size: config.options.row_group_size,
        encoder_threads: config.options.encoder_threads,
        final_step: plan.final_step.as_ref().map(|f| FinalStep {
            sql: f.sql.clone(),
            names: f.names.clone(),
            hidden: f.hidden.clone(),
            memory_limit: config.options.memory_limit,
            avg_scales: f.avg_scales.clone(),
            sorted: f.sorted.clone(),
            strategy: f.why.clone(),
        }),
        profile: crate::types::Profile {
            readers: config.options.readers,
            rules: config.options.types.clone(),
        },
        reader_notes: reports.reader_notes.clone(),
    }
}

/// Ends the snapshot sessions.
async fn close(sessions: Vec<SnapshotSession>) {
    for s in sessions {
        s.close().await;
    }
}

/// The tasks started, and what they share with the run's event loop.
struct Tasks {
    set: JoinSet<TaskEnd>,
    /// Rows each task has sent so far: its report's count if it fails.
    counters: Vec<Arc<AtomicU64>>,
    /// Which tasks have imported their shard's snapshot (see [`Driver::snapshot_lost`]).
    imported: Vec<Arc<AtomicBool>>,
    /// Which tasks are over.
    finished: Vec<bool>,
    /// Tasks not over yet, by shard: a shard's pool closes with its last task.
    remaining: Vec<usize>,
}

/// Spawns every task of the plan (each waits for its shard's describe, then for its
/// slots; see [`TaskRun`]).
#[allow(clippy::too_many_arguments)]
fn start_tasks(
    config: &JobConfig,
    plan: &Plan,
    pools: &[Arc<ShardPool>],
    merge: &MergeHandle,
    progress: &Arc<Progress>,
    cancels: &Cancels,
    global: Arc<Semaphore>,
    opened: &[watch::Receiver<Gate>],
    described_at: &watch::Receiver<Option<Instant>>,
) -> Tasks {
    // What a task that starts before every shard is described adds to its server-side
    // timeout (see `TaskContext::server_slack`).
    let slack = describe_limit(&config.options);
    let per_shard: Vec<Arc<Semaphore>> = pools
        .iter()
        .map(|p| Arc::new(Semaphore::new(p.size())))
        .collect();
    let mut tasks = Tasks {
        set: JoinSet::new(),
        counters: Vec::with_capacity(plan.tasks.len()),
        imported: plan
            .tasks
            .iter()
            .map(|_| Arc::new(AtomicBool::new(false)))
            .collect(),
        finished: vec![false; plan.tasks.len()],
        remaining: vec![0; pools.len()],
    };
    for task in &plan.tasks {
        tasks.remaining[task.shard] += 1;
        let rows = Arc::new(AtomicU64::new(0));
        tasks.counters.push(rows.clone());
        let sender = merge.sender(task.id);
        let count = progress.counter(task, sender.byte_count());
        let counted = rows.clone();
        let ctx = TaskContext {
            sender,
            batch_size: config.options.batch_size,
            deadline: config.options.query_timeout,
            server_slack: Duration::ZERO,
            stall: config.options.stall_timeout,
            on_rows: Box::new(move |n| {
                counted.fetch_add(n, Ordering::Relaxed);
                count(n);
            }),
            cancels: cancels.clone(),
            snapshot_imported: tasks.imported[task.id].clone(),
        };
        let run = TaskRun {
            task: task.clone(),
            pool: pools[task.shard].clone(),
            ctx,
            retry: Retry {
                attempts: config.options.retries,
                within: config.options.retry_for,
            },
            shard_slots: per_shard[task.shard].clone(),
            global: global.clone(),
            progress: progress.clone(),
            opened: opened[task.shard].clone(),
            described_at: described_at.clone(),
            slack,
            rows,
        };
        tasks.set.spawn(run.run());
    }
    tasks
}

/// The run's state while its tasks go on: what the event loop reacts to and decides.
struct Driver<'a> {
    config: &'a JobConfig,
    plan: &'a Plan,
    pools: &'a [Arc<ShardPool>],
    progress: &'a Progress,
    merge: MergeHandle,
    merger: MergerHandle,
    tasks: Tasks,
    reports: RunReports,
    /// The run's failure: the first task's (unless `--allow-partial`), the merger's, a
    /// lost snapshot or an interrupt.
    failure: Option<Error>,
    /// Failed tasks and unplanned shards, for `--allow-partial`.
    failed: usize,
    /// Set when the merger stopped before the commit: it does so only on an error, which
    /// then becomes the run's failure.
    merger_stopped: bool,
}

impl Driver<'_> {
    /// Reacts to the run's events until every task is over or the run stops: tasks
    /// ending, the merger stopping early, a shard's snapshot session ending, an
    /// interrupt. The describe step runs beside them.
    async fn drive(
        &mut self,
        mut describing: std::pin::Pin<Box<impl Future<Output = ()>>>,
        described_at: watch::Receiver<Option<Instant>>,
        lost: &mut mpsc::UnboundedReceiver<String>,
        interrupt: impl Future<Output = &'static str>,
    ) {
        let mut interrupt = std::pin::pin!(interrupt);
        loop {
            tokio::select! {
                // Done once `described_at` is set, which is the describe step's last act.
                _ = &mut describing, if described_at.borrow().is_none() => {}
                joined = self.tasks.set.join_next() => {
                    let Some(joined) = joined else { break };
                    match joined {
                        Ok(end) => self.task_ended(end),
                        Err(e) if e.is_cancelled() => continue,
                        Err(e) => std::panic::resume_unwind(e.into_panic()),
                    }
                }
                result = &mut self.merger, if !self.merger_stopped => {
                    // The merger stops early only on an error (a schema mismatch, a write failure).
                    self.merger_stopped = true;
                    if let Err(e) = result.expect("the merger does not panic") {
                        self.failure.get_or_insert(e);
                        self.tasks.set.abort_all();
                    }
                }
                Some(shard) = lost.recv() => self.snapshot_lost(shard),
                signal = &mut interrupt => {
                    self.failure = Some(Error::Interrupted { signal });
                    self.tasks.set.abort_all();
                    while self.tasks.set.join_next().await.is_some() {}
                    break;
                }
            }
        }
        if self.failure.is_none() && described_at.borrow().is_none() {
            // Every task has run, so every shard's describe is over; what is left is
            // handing the schemas to the merger.
            describing.as_mut().await;
        }
    }

    /// Records a task's end in its report and tells the merger.
    fn task_ended(&mut self, end: TaskEnd) {
        let TaskEnd {
            task,
            duration,
            attempts,
            result,
            bytes,
        } = end;
        self.tasks.remaining[task.shard] -= 1;
        self.tasks.finished[task.id] = true;
        if self.tasks.remaining[task.shard] == 0 {
            self.pools[task.shard].close();
        }
        let r = &mut self.reports.tasks[task.id];
        r.duration = duration;
        r.attempts = attempts;
        r.bytes = bytes;
        r.rows = self.tasks.counters[task.id].load(Ordering::Relaxed);
        match result {
            Ok(rows) => {
                r.rows = rows;
                r.outcome = Outcome::Ok;
                self.merge.send(Event::Done { task: task.id });
            }
            Err(e) => {
                r.outcome = Outcome::Failed(e.kind.to_string());
                self.merge.send(Event::Failed { task: task.id });
                self.failed += 1;
                if !self.config.options.allow_partial && self.failure.is_none() {
                    self.failure = Some(e.into());
                    self.tasks.set.abort_all();
                }
            }
        }
        self.progress.finished(&task, r);
    }

    /// A shard's snapshot session ended.
    fn snapshot_lost(&mut self, shard: String) {
        // A transaction that imported the snapshot keeps it when the exporting
        // session ends: the shard fails only if a task has yet to import it (a
        // retry of a task that had imported it imports it again, and then fails
        // with the same error on its own).
        let waiting = self.plan.tasks.iter().any(|t| {
            t.shard_name == shard
                && !self.tasks.finished[t.id]
                && !self.tasks.imported[t.id].load(Ordering::Relaxed)
        });
        if !waiting {
            tracing::debug!(
                "shard {shard}: the snapshot session ended after every partition had imported the snapshot"
            );
            return;
        }
        if self.failure.is_none() {
            self.failure = Some(
                TaskError::new(
                    shard,
                    TaskErrorKind::SnapshotLost {
                        message: "the session that exported the shard's snapshot ended; \
                                  partitions that had not started could not read the same state"
                            .into(),
                    },
                )
                .into(),
            );
        }
        self.tasks.set.abort_all();
    }

    /// Commits the output when the run succeeded (or, with `--allow-partial`, some
    /// tasks did), or lets the merger drop it; returns the report and the run's result.
    async fn finish(self) -> (RunReport, Result<(), Error>) {
        let Driver {
            config,
            plan,
            progress,
            merge,
            merger,
            reports,
            failure,
            failed,
            merger_stopped,
            ..
        } = self;
        if let Some(error) = failure {
            drop(merge);
            if !merger_stopped {
                let _ = merger.await;
            }
            progress.clear();
            return (reports.finish(None), Err(error));
        }
        merge.send(Event::Commit {
            metadata: report::file_metadata(config, plan, &reports.tasks),
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
                let total = reports.tasks.len();
                let failed = failed.min(total);
                let outcome = if failed > 0 {
                    Err(Error::Partial {
                        failed,
                        total,
                        combined: plan.final_step.is_some(),
                    })
                } else {
                    Ok(())
                };
                (reports.finish(output), outcome)
            }
            Err(e) => (reports.finish(None), Err(e)),
        }
    }
}

/// The reports of a run in progress: one per task (cancelled until it ends), then one
/// per shard that could not be planned.
struct RunReports {
    started: Instant,
    inputs: report::RunInputs,
    tasks: Vec<TaskReport>,
    snapshots: std::collections::BTreeMap<String, String>,
    consistent: bool,
    /// See [`RunReport::independent`].
    independent: Vec<String>,
    /// The final step's strategy, when the run has one.
    combined: Option<String>,
    /// An incremental job's window on each shard, and the marks they start after.
    windows: std::collections::BTreeMap<String, crate::plan::window::Window>,
    last: std::collections::BTreeMap<String, crate::plan::window::Mark>,
    /// What the reader profile did to the output, filled in by the merger.
    reader_notes: Arc<std::sync::Mutex<crate::types::ReaderNotes>>,
}

impl RunReports {
    fn new(config: &JobConfig, plan: &Plan, unplanned: &[TaskError]) -> RunReports {
        let mut tasks: Vec<TaskReport> = plan
            .tasks
            .iter()
            .map(|t| TaskReport {
                task: t.id,
                shard: t.shard_name.clone(),
                partition: t.partition.clone(),
                rows: 0,
                bytes: 0,
                duration: Duration::ZERO,
                attempts: 0,
                outcome: Outcome::Cancelled,
            })
            .collect();
        for e in unplanned {
            tasks.push(TaskReport {
                task: tasks.len(),
                shard: e.shard.clone(),
                partition: Some("planning".into()),
                rows: 0,
                bytes: 0,
                duration: Duration::ZERO,
                attempts: 1,
                outcome: Outcome::Failed(e.kind.to_string()),
            });
        }
        RunReports {
            started: Instant::now(),
            inputs: report::RunInputs::of(config),
            tasks,
            snapshots: plan.snapshots.clone(),
            consistent: config.options.partition.is_none() || config.options.consistent,
            independent: match config.options.consistent {
                false => Vec::new(),
                true => {
                    let mut shards: Vec<String> = plan
                        .tasks
                        .iter()
                        .filter(|t| {
                            t.partition.is_some()
                                && matches!(
                                    config.shards[t.shard].source,
                                    crate::config::SourceConfig::Mysql(_)
                                )
                        })
                        .map(|t| t.shard_name.clone())
                        .collect();
                    shards.dedup();
                    shards
                }
            },
            combined: plan.final_step.as_ref().map(|f| f.why.clone()),
            windows: plan.windows.clone(),
            last: config
                .incremental
                .as_ref()
                .map(|inc| inc.last.clone())
                .unwrap_or_default(),
            reader_notes: Default::default(),
        }
    }

    fn finish(self, output: Option<OutputSummary>) -> RunReport {
        // A shard's next mark counts only once the output holding its rows is committed,
        // and only for a shard every task of which succeeded (with --allow-partial, a
        // failed shard reads the same window again next time).
        let marks = match &output {
            None => Default::default(),
            Some(_) => self
                .windows
                .iter()
                .filter(|(shard, _)| {
                    self.tasks
                        .iter()
                        .filter(|t| &t.shard == *shard)
                        .all(|t| matches!(t.outcome, Outcome::Ok))
                })
                .filter_map(|(shard, w)| Some((shard.clone(), w.next(self.last.get(shard))?)))
                .collect(),
        };
        let readers = std::mem::take(&mut *self.reader_notes.lock().expect("never poisoned"));
        RunReport {
            readers: (!readers.is_empty()).then_some(readers),
            marks,
            inputs: self.inputs,
            combined: self
                .combined
                .map(|strategy| report::Combined::new(strategy, &self.tasks)),
            tasks: self.tasks,
            output,
            elapsed: self.started.elapsed(),
            snapshots: self.snapshots,
            consistent: self.consistent,
            independent: self.independent,
        }
    }
}
