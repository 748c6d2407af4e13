//! Live progress on stderr while a run goes on. On a terminal: a line per task (a bar
//! against the server's row estimate where there is one, a spinner where there is none),
//! one for each shard read in several partitions (after its partitions' lines), and, for
//! a run of several tasks, one for the whole run, redrawn in place. Otherwise, every
//! [`LOG_EVERY`], a log line for the run and, when it reads several shards, one for each
//! shard still running (the last to finish first, [`LOG_SHARDS`] at most), besides each
//! task's start and end. All say the same figures, written to be read at a glance: rows
//! and bytes so far, their rates, the share of the estimate done and the time left.
//!
//! The estimates are PostgreSQL's (`EXPLAIN` of each task's query, pipelined with the
//! describe step: see `dispatch::describe`), a planner's guess: they are marked as one
//! (`~10.0M`, `~42%`), the share stops at 99% while a task runs, and a task that passes
//! its estimate grows its bar rather than going past 100%, its time left then unknown.
//! Where there is no estimate (SQLite, or an `EXPLAIN` that failed) a line has counts and
//! rates and the time so far, and no time left.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

use super::{Outcome, TaskReport, thousands};
use crate::plan::{Plan, Task};

/// How often the whole run's figures are logged when stderr is not a terminal: often
/// enough to see a long run move, rarely enough that a day's log stays short.
pub const LOG_EVERY: Duration = Duration::from_secs(10);
/// The most shards the periodic log line is followed by one line each for: the ones
/// that will finish last.
pub const LOG_SHARDS: usize = 8;
/// How often the bars take the tasks' counts and are redrawn (and their spinners turn).
const DRAW_EVERY: Duration = Duration::from_millis(100);
/// Widest task label the lines make room for; a longer one pushes its line's figures.
const LABEL_WIDTH: usize = 24;

/// Live progress of a run's tasks: what they count, and how it is shown.
pub struct Progress {
    shared: Arc<Shared>,
    view: View,
    /// The task that redraws the bars or writes the periodic log lines (see
    /// [`Progress::follow`]).
    follower: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Set by [`Progress::clear`]: nothing is drawn after it. Taken with the lock of
    /// `drawing`, so that a redraw under way when the bars are cleared cannot bring
    /// them back.
    stopped: AtomicBool,
    drawing: Mutex<()>,
}

/// How the progress is shown.
enum View {
    /// Bars redrawn in place on a terminal: one per task, then the run's total when it
    /// has more than one task.
    Bars {
        multi: MultiProgress,
        tasks: Vec<ProgressBar>,
        /// The line of each shard with several tasks, by index in `Shared::shards`.
        shards: Vec<Option<ProgressBar>>,
        total: Option<ProgressBar>,
        /// The labels' column width.
        width: usize,
    },
    /// Log lines (stderr is not a terminal).
    Log,
    /// Nothing (`--quiet`: info lines are not logged).
    Silent,
}

/// The counts every task adds to while it runs, read when a line is drawn.
struct Shared {
    tasks: Vec<Tally>,
    /// The run's shards and their tasks, in the plan's order.
    shards: Vec<Shard>,
    /// Each task's shard, by index in `shards`.
    shard_of: Vec<usize>,
}

/// A shard: its name, and its tasks (indexes in `Shared::tasks`).
struct Shard {
    name: String,
    tasks: Vec<usize>,
}

/// What one task has done so far.
struct Tally {
    label: String,
    /// Rows the attempt in progress has sent (its final count once it ended).
    rows: AtomicU64,
    /// Arrow bytes the attempt in progress has sent: its `BatchSender`'s own count,
    /// which a retry clears.
    bytes: OnceLock<Arc<AtomicU64>>,
    /// The server's estimate of the task's rows, once known ([`NO_ESTIMATE`] until).
    estimate: AtomicU64,
    span: Mutex<Span>,
    /// When its first attempt started, and when it ended: a shard's and the run's rates
    /// count from the first of their tasks' starts.
    first_start: OnceLock<Instant>,
    ended_at: OnceLock<Instant>,
}

/// The estimate's value while there is none.
const NO_ESTIMATE: u64 = u64::MAX;

/// Where a task is in its life.
#[derive(Debug, Clone, Copy)]
enum Span {
    Waiting,
    /// Since its attempt in progress started.
    Running(Instant),
    /// It took this long, and ended so (`done`, `failed`, `cancelled`).
    Ended(Duration, &'static str),
}

impl Tally {
    fn new(label: String) -> Tally {
        Tally {
            label,
            rows: AtomicU64::new(0),
            bytes: OnceLock::new(),
            estimate: AtomicU64::new(NO_ESTIMATE),
            span: Mutex::new(Span::Waiting),
            first_start: OnceLock::new(),
            ended_at: OnceLock::new(),
        }
    }

    fn estimate(&self) -> Option<u64> {
        Some(self.estimate.load(Ordering::Relaxed)).filter(|&e| e != NO_ESTIMATE)
    }

    fn bytes(&self) -> u64 {
        self.bytes.get().map_or(0, |b| b.load(Ordering::Relaxed))
    }

    fn span(&self) -> Span {
        *self.span.lock().expect("not poisoned")
    }

    fn figures(&self, now: Instant) -> Figures {
        let (phase, elapsed, outcome) = match self.span() {
            Span::Waiting => (Phase::Waiting, Duration::ZERO, None),
            Span::Running(since) => (Phase::Running, now.saturating_duration_since(since), None),
            Span::Ended(took, outcome) => (Phase::Ended, took, Some(outcome)),
        };
        Figures {
            rows: self.rows.load(Ordering::Relaxed),
            bytes: self.bytes(),
            elapsed,
            estimate: self.estimate(),
            phase,
            outcome,
        }
    }
}

impl Shared {
    /// Tasks labelled `labels`, each of the shard named beside its label.
    fn new(labels: Vec<(String, String)>) -> Shared {
        let mut shards: Vec<Shard> = Vec::new();
        let mut shard_of = Vec::with_capacity(labels.len());
        let mut tasks = Vec::with_capacity(labels.len());
        for (task, (label, shard)) in labels.into_iter().enumerate() {
            let index = match shards.iter().position(|s| s.name == shard) {
                Some(index) => index,
                None => {
                    shards.push(Shard {
                        name: shard,
                        tasks: Vec::new(),
                    });
                    shards.len() - 1
                }
            };
            shards[index].tasks.push(task);
            shard_of.push(index);
            tasks.push(Tally::new(label));
        }
        Shared {
            tasks,
            shards,
            shard_of,
        }
    }

    /// The figures of several tasks together: their rows and bytes, the rate since the
    /// first of them started, an estimate only when every one still to end has one, and
    /// how they ended (`failed` if one failed, else `cancelled` if one was, else `done`).
    fn together(&self, tasks: &[usize], now: Instant) -> Figures {
        let mut sum = Figures {
            rows: 0,
            bytes: 0,
            elapsed: Duration::ZERO,
            estimate: Some(0),
            phase: Phase::Waiting,
            outcome: None,
        };
        let mut first: Option<Instant> = None;
        let mut last: Option<Instant> = None;
        let mut running = false;
        let mut outcome = "done";
        for tally in tasks.iter().map(|&t| &self.tasks[t]) {
            let f = tally.figures(now);
            sum.rows += f.rows;
            sum.bytes += f.bytes;
            sum.estimate = match (sum.estimate, f.phase, f.length()) {
                (Some(sum), Phase::Ended, _) => Some(sum + f.rows),
                (Some(sum), _, Some(len)) => Some(sum + len),
                _ => None,
            };
            if let Some(&at) = tally.first_start.get() {
                first = Some(first.map_or(at, |f| f.min(at)));
            }
            match (f.phase, tally.ended_at.get()) {
                (Phase::Ended, Some(&at)) => last = Some(last.map_or(at, |l| l.max(at))),
                _ => running = true,
            }
            outcome = match (outcome, f.outcome) {
                (_, Some("failed")) | ("failed", _) => "failed",
                (_, Some("cancelled")) | ("cancelled", _) => "cancelled",
                _ => "done",
            };
        }
        if let Some(first) = first {
            (sum.phase, sum.elapsed, sum.outcome) = match (running, last) {
                (false, Some(last)) => (
                    Phase::Ended,
                    last.saturating_duration_since(first),
                    Some(outcome),
                ),
                _ => (Phase::Running, now.saturating_duration_since(first), None),
            };
        }
        sum
    }

    /// The whole run's figures (see [`Shared::together`]); its line says the time it
    /// took once over, not an outcome.
    fn total(&self, now: Instant) -> Figures {
        let all: Vec<usize> = (0..self.tasks.len()).collect();
        Figures {
            outcome: None,
            ..self.together(&all, now)
        }
    }

    /// The figures of shard `shard` (an index in `shards`).
    fn shard(&self, shard: usize, now: Instant) -> Figures {
        self.together(&self.shards[shard].tasks, now)
    }

    /// Tasks ended among `tasks`.
    fn ended_of(&self, tasks: &[usize]) -> usize {
        tasks
            .iter()
            .filter(|&&t| matches!(self.tasks[t].span(), Span::Ended(..)))
            .count()
    }

    fn ended(&self) -> usize {
        self.tasks
            .iter()
            .filter(|t| matches!(t.span(), Span::Ended(..)))
            .count()
    }
}

impl Progress {
    /// The progress of `plan`'s tasks: bars when `interactive` (stderr is a terminal),
    /// else log lines, or nothing when info lines are not logged (`--quiet`).
    pub fn new(plan: &Plan, interactive: bool) -> Progress {
        let labels = plan
            .tasks
            .iter()
            .map(|t| (label(t), t.shard_name.clone()))
            .collect();
        if interactive {
            return Progress::drawn(labels, ProgressDrawTarget::stderr_with_hz(10));
        }
        let view = if tracing::enabled!(tracing::Level::INFO) {
            View::Log
        } else {
            View::Silent
        };
        Progress::with_view(labels, view)
    }

    /// Bars on `target`, one per task labelled `labels` (each beside its shard's name),
    /// each shard's tasks together, then its own when it has several.
    fn drawn(labels: Vec<(String, String)>, target: ProgressDrawTarget) -> Progress {
        let many = labels.len() > 1;
        let mut progress = Progress::with_view(labels, View::Silent);
        let shared = &progress.shared;
        let shard_labels: Vec<Option<String>> = shared
            .shards
            .iter()
            .map(|s| (s.tasks.len() > 1).then(|| format!("{} ({} tasks)", s.name, s.tasks.len())))
            .collect();
        let width = shared
            .tasks
            .iter()
            .map(|t| &t.label)
            .chain(shard_labels.iter().flatten())
            .map(|l| l.chars().count())
            .max()
            .unwrap_or(0)
            .clamp("total".len(), LABEL_WIDTH);
        let multi = MultiProgress::with_draw_target(target);
        let mut tasks = vec![None; shared.tasks.len()];
        let mut shards = Vec::with_capacity(shared.shards.len());
        for (index, shard) in shared.shards.iter().enumerate() {
            for &i in &shard.tasks {
                let bar = multi.add(ProgressBar::no_length());
                bar.set_style(task_style(shared, i, width));
                bar.set_prefix(shared.tasks[i].label.clone());
                tasks[i] = Some(bar);
            }
            shards.push(shard_labels[index].as_ref().map(|label| {
                let bar = multi.add(ProgressBar::no_length());
                bar.set_style(shard_style(shared, index, width));
                bar.set_prefix(label.clone());
                bar
            }));
        }
        let tasks = tasks
            .into_iter()
            .map(|bar| bar.expect("every task is a shard's"))
            .collect();
        let total = many.then(|| {
            let bar = multi.add(ProgressBar::no_length());
            bar.set_style(total_style(shared, width));
            bar.set_prefix("total");
            bar
        });
        progress.view = View::Bars {
            multi,
            tasks,
            shards,
            total,
            width,
        };
        progress
    }

    fn with_view(labels: Vec<(String, String)>, view: View) -> Progress {
        Progress {
            shared: Arc::new(Shared::new(labels)),
            view,
            follower: Mutex::new(None),
            stopped: AtomicBool::new(false),
            drawing: Mutex::new(()),
        }
    }

    /// Whether anything shows the estimates: the describe step asks the servers for
    /// them only then.
    pub fn wants_estimates(&self) -> bool {
        !matches!(self.view, View::Silent)
    }

    /// The server's estimate of task `task`'s rows (ignored unless a finite count).
    pub fn estimated(&self, task: usize, rows: f64) {
        if !rows.is_finite() || rows < 0.0 {
            return;
        }
        let rows = (rows.round() as u64).min(NO_ESTIMATE - 1);
        self.shared.tasks[task]
            .estimate
            .store(rows, Ordering::Relaxed);
        if let View::Bars {
            tasks,
            shards,
            width,
            ..
        } = &self.view
        {
            tasks[task].set_style(task_style(&self.shared, task, *width));
            let shard = self.shared.shard_of[task];
            if let Some(bar) = &shards[shard] {
                bar.set_style(shard_style(&self.shared, shard, *width));
            }
        }
    }

    /// Starts what keeps the progress moving: the bars' redraws on a terminal, the
    /// periodic log line otherwise. It stops at [`Progress::clear`].
    pub fn follow(self: &Arc<Self>) {
        let every = match self.view {
            View::Bars { .. } => DRAW_EVERY,
            View::Log => LOG_EVERY,
            View::Silent => return,
        };
        let progress = Arc::clone(self);
        let handle = tokio::spawn(async move {
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                match progress.view {
                    View::Bars { .. } => progress.draw(),
                    _ => progress.log(),
                }
            }
        });
        *self.follower.lock().expect("not poisoned") = Some(handle);
    }

    pub fn started(&self, task: &Task) {
        self.start(task.id, Instant::now());
    }

    fn start(&self, task: usize, at: Instant) {
        let tally = &self.shared.tasks[task];
        tally.first_start.get_or_init(|| at);
        *tally.span.lock().expect("not poisoned") = Span::Running(at);
        if let View::Log = self.view {
            tracing::info!("{}: started", tally.label);
        }
    }

    /// A callback counting a task's rows, and the count of the bytes its sender sends.
    pub fn counter(&self, task: &Task, bytes: Arc<AtomicU64>) -> Box<dyn Fn(u64) + Send + Sync> {
        let shared = Arc::clone(&self.shared);
        let id = task.id;
        let _ = shared.tasks[id].bytes.set(bytes);
        Box::new(move |n| {
            shared.tasks[id].rows.fetch_add(n, Ordering::Relaxed);
        })
    }

    /// A retry starts: the failed attempt's rows no longer count (its bytes are cleared
    /// by its sender), and its rate counts from now.
    pub fn restart(&self, task: &Task) {
        let tally = &self.shared.tasks[task.id];
        tally.rows.store(0, Ordering::Relaxed);
        *tally.span.lock().expect("not poisoned") = Span::Running(Instant::now());
        if let View::Bars { tasks, .. } = &self.view {
            tasks[task.id].set_message("  retrying");
        }
    }

    pub fn finished(&self, task: &Task, report: &TaskReport) {
        let tally = &self.shared.tasks[task.id];
        tally.rows.store(report.rows, Ordering::Relaxed);
        let outcome = match &report.outcome {
            Outcome::Ok => "done",
            Outcome::Failed(_) => "failed",
            Outcome::Cancelled => "cancelled",
        };
        let _ = tally.ended_at.set(Instant::now());
        *tally.span.lock().expect("not poisoned") = Span::Ended(report.duration, outcome);
        match &self.view {
            View::Bars {
                tasks,
                shards,
                total,
                ..
            } => {
                let bar = &tasks[task.id];
                if bar.length().is_some() {
                    bar.set_length(report.rows);
                }
                bar.set_position(report.rows);
                bar.finish_with_message("");
                let shard = self.shared.shard_of[task.id];
                if let Some(bar) = &shards[shard] {
                    let figures = self.shared.shard(shard, Instant::now());
                    Progress::sync(bar, figures);
                    if figures.phase == Phase::Ended {
                        bar.finish_with_message("");
                    }
                }
                if let Some(total) = total {
                    self.sync_total(total, Instant::now());
                }
            }
            View::Log => match &report.outcome {
                Outcome::Ok => tracing::info!(
                    "{}: {} rows ({}) in {:.2}s",
                    tally.label,
                    thousands(report.rows),
                    size(report.bytes as f64),
                    report.duration.as_secs_f64()
                ),
                Outcome::Failed(e) => tracing::warn!(
                    "{}: failed after {:.2}s: {e}",
                    tally.label,
                    report.duration.as_secs_f64()
                ),
                Outcome::Cancelled => tracing::info!("{}: cancelled", tally.label),
            },
            View::Silent => {}
        }
    }

    /// Stops the redraws and the periodic lines, and removes the bars before the
    /// summary is printed.
    pub fn clear(&self) {
        if let Some(follower) = self.follower.lock().expect("not poisoned").take() {
            follower.abort();
        }
        let _drawing = self.drawing.lock().expect("not poisoned");
        self.stopped.store(true, Ordering::Relaxed);
        if let View::Bars { multi, .. } = &self.view {
            let _ = multi.clear();
        }
    }

    /// Brings every bar up to date with its task's counts and redraws.
    fn draw(&self) {
        let _drawing = self.drawing.lock().expect("not poisoned");
        if self.stopped.load(Ordering::Relaxed) {
            return;
        }
        let View::Bars {
            tasks,
            shards,
            total,
            ..
        } = &self.view
        else {
            return;
        };
        let now = Instant::now();
        for (bar, tally) in tasks.iter().zip(&self.shared.tasks) {
            if !bar.is_finished() {
                Progress::sync(bar, tally.figures(now));
            }
        }
        for (shard, bar) in shards.iter().enumerate() {
            if let Some(bar) = bar.as_ref().filter(|b| !b.is_finished()) {
                Progress::sync(bar, self.shared.shard(shard, now));
            }
        }
        if let Some(total) = total {
            self.sync_total(total, now);
        }
    }

    /// Sets a bar's position and length to `figures` (a bar without an estimate has no
    /// length: its style has a spinner and no bar), and ticks it.
    fn sync(bar: &ProgressBar, figures: Figures) {
        if let Some(len) = figures.length() {
            bar.set_length(len);
        }
        bar.set_position(figures.rows);
        bar.tick();
    }

    /// [`Progress::sync`] for the run's line, which gets its bar once every task has an
    /// estimate.
    fn sync_total(&self, total: &ProgressBar, now: Instant) {
        let figures = self.shared.total(now);
        if figures.estimate.is_some()
            && total.length().is_none()
            && let View::Bars { width, .. } = &self.view
        {
            total.set_style(total_style(&self.shared, *width));
        }
        Progress::sync(total, figures);
    }

    /// Logs the whole run's figures and, when it reads several shards, those of the
    /// shards still running that will end last.
    fn log(&self) {
        let now = Instant::now();
        let figures = self.shared.total(now);
        if figures.phase != Phase::Running {
            return;
        }
        let tasks = self.shared.tasks.len();
        tracing::info!(
            "progress: {}; {} of {tasks} {} done",
            figures.sentence(),
            self.shared.ended(),
            tasks_word(tasks)
        );
        if self.shared.shards.len() < 2 {
            return;
        }
        for line in self.shared.shard_lines(now) {
            tracing::info!("{line}");
        }
    }
}

impl Shared {
    /// A log line for each running shard, the ones that will end last first (by their
    /// time left; those with none known after them, the slowest first), at most
    /// [`LOG_SHARDS`]; then how many more run.
    fn shard_lines(&self, now: Instant) -> Vec<String> {
        let mut running: Vec<(usize, Figures)> = (0..self.shards.len())
            .map(|s| (s, self.shard(s, now)))
            .filter(|(_, f)| f.phase == Phase::Running)
            .collect();
        running.sort_by(|(a, fa), (b, fb)| {
            let left = |f: &Figures| f.eta().map_or(Duration::ZERO, |e| e);
            let rate = |f: &Figures| f.rates().map_or(0.0, |(r, _)| r);
            (fa.eta().is_none(), left(fb))
                .cmp(&(fb.eta().is_none(), left(fa)))
                .then(rate(fa).total_cmp(&rate(fb)))
                .then(a.cmp(b))
        });
        let mut lines: Vec<String> = running
            .iter()
            .take(LOG_SHARDS)
            .map(|&(s, f)| {
                let shard = &self.shards[s];
                let tasks = shard.tasks.len();
                format!(
                    "progress of shard {}: {}; {} of {tasks} {} done",
                    shard.name,
                    f.sentence(),
                    self.ended_of(&shard.tasks),
                    tasks_word(tasks)
                )
            })
            .collect();
        if running.len() > LOG_SHARDS {
            lines.push(format!(
                "progress of {} more shards: running",
                running.len() - LOG_SHARDS
            ));
        }
        lines
    }
}

/// `task` or `tasks`, after a count of `n`.
fn tasks_word(n: usize) -> &'static str {
    if n == 1 { "task" } else { "tasks" }
}

/// A task's line: its label, a bar when it has an estimate, its figures, its state.
fn task_style(shared: &Arc<Shared>, task: usize, width: usize) -> ProgressStyle {
    let shared = Arc::clone(shared);
    let bar = shared.tasks[task].estimate().is_some();
    style(width, bar, move || {
        shared.tasks[task].figures(Instant::now()).columns()
    })
}

/// A shard's line, after its tasks': a bar once each of them has an estimate.
fn shard_style(shared: &Arc<Shared>, shard: usize, width: usize) -> ProgressStyle {
    let bar = shared.shard(shard, Instant::now()).estimate.is_some();
    let shared = Arc::clone(shared);
    style(width, bar, move || {
        shared.shard(shard, Instant::now()).columns()
    })
}

/// The whole run's line: a bar once every task has an estimate.
fn total_style(shared: &Arc<Shared>, width: usize) -> ProgressStyle {
    let bar = shared.total(Instant::now()).estimate.is_some();
    let shared = Arc::clone(shared);
    style(width, bar, move || shared.total(Instant::now()).columns())
}

/// A line's template: spinner, label, the bar if `bar` (it takes the width the rest
/// leaves), the figures `figures` writes (the last column says the state of a task not
/// running), and `retrying` during a retry.
fn style(
    width: usize,
    bar: bool,
    figures: impl Fn() -> String + Clone + Send + Sync + 'static,
) -> ProgressStyle {
    // Without a bar, its room is left blank, so that every line's figures line up.
    let (bar, chars) = match bar {
        true => ("[{wide_bar}]", "=> "),
        false => (" {wide_bar} ", "   "),
    };
    ProgressStyle::with_template(&format!(
        "{{spinner}} {{prefix:<{width}}} {bar} {{figures}}{{msg}}"
    ))
    .expect("a valid template")
    .progress_chars(chars)
    .with_key(
        "figures",
        move |_: &ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = w.write_str(&figures());
        },
    )
}

/// A task's label: its shard, and its partition if it has one.
fn label(task: &Task) -> String {
    match &task.partition {
        Some(p) => format!("{} {p}", task.shard_name),
        None => task.shard_name.clone(),
    }
}

/// Where a task (or the run) is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Waiting,
    Running,
    Ended,
}

/// What a line of progress says of a task or of the whole run.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Figures {
    rows: u64,
    /// Arrow bytes.
    bytes: u64,
    /// The time the rows took: the attempt's (the run's) so far, or all of it once over.
    elapsed: Duration,
    /// The server's estimate of all the rows.
    estimate: Option<u64>,
    phase: Phase,
    /// How a task ended (`done`, `failed`, `cancelled`).
    outcome: Option<&'static str>,
}

impl Figures {
    /// The bar's length: the estimate, or the rows counted once they pass it.
    fn length(&self) -> Option<u64> {
        self.estimate.map(|e| e.max(self.rows))
    }

    /// Rows and bytes per second, averaged since the start: the merger's backpressure
    /// makes the rate of the last moments jump, and the average tells the time left of
    /// a long, steady export better.
    fn rates(&self) -> Option<(f64, f64)> {
        let secs = self.elapsed.as_secs_f64();
        (self.phase != Phase::Waiting && secs > 0.0)
            .then(|| (self.rows as f64 / secs, self.bytes as f64 / secs))
    }

    /// The share of the estimate done while running: whole percents, 99 at most (the
    /// estimate is a guess; the end says 100% by ending).
    fn percent(&self) -> Option<u64> {
        let len = self.length()?;
        if self.phase != Phase::Running {
            return None;
        }
        let done = match len {
            0 => 0,
            len => (self.rows as u128 * 100 / len as u128) as u64,
        };
        Some(done.min(99))
    }

    /// The time left at the rate so far, while the rows are short of the estimate.
    fn eta(&self) -> Option<Duration> {
        let left = self.length()?.checked_sub(self.rows).filter(|&l| l > 0)?;
        let (rate, _) = self.rates().filter(|&(r, _)| r > 0.0)?;
        (self.phase == Phase::Running)
            .then(|| Duration::try_from_secs_f64(left as f64 / rate).ok())
            .flatten()
    }

    /// The figures in fixed-width columns, for a line redrawn in place: rows (of the
    /// estimate), share, rates, and the time left (`ETA ?` past the estimate; with no
    /// estimate, the time so far) or the state of a task not running (`waiting`, `done`).
    fn columns(&self) -> String {
        // Once over, the count is all there is: no estimate to set it against.
        let counts = match (self.phase, self.length()) {
            (Phase::Waiting | Phase::Running, Some(len)) => {
                format!("{}/~{}", count(self.rows as f64), count(len as f64))
            }
            _ => count(self.rows as f64),
        };
        let share = self.percent().map(|p| format!("~{p}%")).unwrap_or_default();
        let (rate, byte_rate) = match self.rates() {
            Some((rows, bytes)) => (
                format!("{} rows/s", count(rows)),
                format!("{}/s", size(bytes)),
            ),
            None => Default::default(),
        };
        let time = match (self.phase, self.eta(), self.outcome) {
            (Phase::Waiting, _, _) => "waiting".to_string(),
            (Phase::Running, Some(eta), _) => format!("ETA {}", clock(eta)),
            (Phase::Running, None, _) if self.estimate.is_some() => "ETA ?".to_string(),
            (Phase::Ended, _, Some(outcome)) => outcome.to_string(),
            _ => clock(self.elapsed),
        };
        format!("{counts:>12} rows {share:>4}  {rate:>11}  {byte_rate:>12}  {time:>9}")
    }

    /// The figures in a sentence, for a log line.
    fn sentence(&self) -> String {
        let mut out = match self.length() {
            Some(len) => format!("{} of ~{} rows", count(self.rows as f64), count(len as f64)),
            None => format!("{} rows", count(self.rows as f64)),
        };
        if let Some(p) = self.percent() {
            let _ = write!(out, " (~{p}%)");
        }
        let _ = write!(
            out,
            ", {} in {}",
            size(self.bytes as f64),
            clock(self.elapsed)
        );
        if let Some((rows, bytes)) = self.rates() {
            let _ = write!(out, ", {} rows/s, {}/s", count(rows), size(bytes));
        }
        match self.eta() {
            Some(eta) => {
                let _ = write!(out, ", ETA {}", clock(eta));
            }
            None if self.estimate.is_some() && self.phase == Phase::Running => {
                out.push_str(", ETA unknown (past the estimate)");
            }
            None => {}
        }
        out
    }
}

/// A count on a progress line: one decimal at most, with an SI suffix past a
/// thousand (`950`, `12.3k`, `726k`, `1.2M`, `10.0M`).
fn count(n: f64) -> String {
    const UNITS: [(f64, &str); 4] = [(1e3, "k"), (1e6, "M"), (1e9, "G"), (1e12, "T")];
    if !n.is_finite() || n < 0.0 {
        return "?".into();
    }
    if n.round() < 1000.0 {
        return format!("{n:.0}");
    }
    for (i, (unit, suffix)) in UNITS.iter().enumerate() {
        let x = n / unit;
        if x < 99.95 {
            return format!("{x:.1}{suffix}");
        }
        if x.round() < 1000.0 || i == UNITS.len() - 1 {
            return format!("{x:.0}{suffix}");
        }
    }
    unreachable!("the last unit returns")
}

/// A size on a progress line, in binary units with one decimal (`512 B`, `84.3 MiB`).
fn size(n: f64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    if !n.is_finite() || n < 0.0 {
        return "?".into();
    }
    if n.round() < 1000.0 {
        return format!("{n:.0} B");
    }
    let mut x = n;
    let mut unit = 0;
    while (unit == 0 || x >= 999.95) && unit < UNITS.len() - 1 {
        x /= 1024.0;
        unit += 1;
    }
    format!("{x:.1} {}", UNITS[unit])
}

/// A duration on a progress line: `4.2s`, `42s`, `3m05s`, `2h07m`.
fn clock(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 9.95 {
        return format!("{secs:.1}s");
    }
    let whole = secs.round() as u64;
    match whole {
        0..60 => format!("{whole}s"),
        60..3600 => format!("{}m{:02}s", whole / 60, whole % 60),
        _ => format!("{}h{:02}m", whole / 3600, whole % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use indicatif::InMemoryTerm;

    #[test]
    fn counts_sizes_and_times_are_short() {
        let counts = [
            (0.0, "0"),
            (950.0, "950"),
            (999.4, "999"),
            (999.6, "1.0k"),
            (12_345.0, "12.3k"),
            (99_960.0, "100k"),
            (726_437.191_926_014_4, "726k"),
            (999_600.0, "1.0M"),
            (1_234_567.0, "1.2M"),
            (10_000_000.0, "10.0M"),
            (3.5e9, "3.5G"),
            (2e15, "2000T"),
            (f64::NAN, "?"),
        ];
        for (n, text) in counts {
            assert_eq!(count(n), text, "{n}");
        }
        let sizes = [
            (0.0, "0 B"),
            (512.0, "512 B"),
            (1000.0, "1.0 KiB"),
            (1536.0, "1.5 KiB"),
            (88_389_632.0, "84.3 MiB"),
            (1_048_000.0, "1.0 MiB"),
            (3.0 * (1u64 << 40) as f64, "3.0 TiB"),
        ];
        for (n, text) in sizes {
            assert_eq!(size(n), text, "{n}");
        }
        let times = [
            (0.0, "0.0s"),
            (4.24, "4.2s"),
            (42.4, "42s"),
            (185.0, "3m05s"),
            (7620.0, "2h07m"),
        ];
        for (secs, text) in times {
            assert_eq!(clock(Duration::from_secs_f64(secs)), text, "{secs}");
        }
    }

    fn running(rows: u64, estimate: Option<u64>) -> Figures {
        Figures {
            rows,
            bytes: rows * 100,
            elapsed: Duration::from_secs(10),
            estimate,
            phase: Phase::Running,
            outcome: None,
        }
    }

    #[test]
    fn the_estimate_is_marked_and_never_passed() {
        let f = running(1_234_567, Some(10_000_000));
        assert_eq!(f.length(), Some(10_000_000));
        assert_eq!(f.percent(), Some(12));
        // 8,765,433 rows left at 123,456.7 rows/s.
        assert_eq!(f.eta().map(|d| d.as_secs()), Some(71));
        assert_eq!(
            f.columns(),
            " 1.2M/~10.0M rows ~12%  123k rows/s    11.8 MiB/s  ETA 1m11s"
        );
        assert_eq!(
            f.sentence(),
            "1.2M of ~10.0M rows (~12%), 117.7 MiB in 10s, 123k rows/s, 11.8 MiB/s, ETA 1m11s"
        );
        // Past the estimate: the length grows with the rows, the share stays below
        // 100% and the time left is unknown.
        let past = running(12_000_000, Some(10_000_000));
        assert_eq!(past.length(), Some(12_000_000));
        assert_eq!(past.percent(), Some(99));
        assert_eq!(past.eta(), None);
        assert!(past.columns().contains("12.0M/~12.0M rows ~99%"));
        assert!(past.columns().ends_with("ETA ?"), "{}", past.columns());
        assert!(past.sentence().ends_with("ETA unknown (past the estimate)"));
        // Over: no share and no time left, the time it took.
        let over = Figures {
            phase: Phase::Ended,
            ..running(10_200_000, Some(10_000_000))
        };
        assert_eq!((over.percent(), over.eta()), (None, None));
        assert!(over.columns().ends_with("   10s"), "{}", over.columns());
        let done = Figures {
            outcome: Some("done"),
            ..over
        };
        assert!(done.columns().ends_with("  done"), "{}", done.columns());
        assert!(done.columns().starts_with("       10.2M rows "));
    }

    #[test]
    fn without_an_estimate_there_is_no_time_left() {
        let f = running(1_234_567, None);
        assert_eq!((f.length(), f.percent(), f.eta()), (None, None, None));
        assert_eq!(
            f.columns(),
            "        1.2M rows       123k rows/s    11.8 MiB/s        10s"
        );
        assert_eq!(
            f.sentence(),
            "1.2M rows, 117.7 MiB in 10s, 123k rows/s, 11.8 MiB/s"
        );
        let waiting = Figures {
            phase: Phase::Waiting,
            elapsed: Duration::ZERO,
            ..running(0, Some(5))
        };
        assert_eq!(waiting.rates(), None);
        assert!(
            waiting.columns().starts_with("        0/~5 rows ")
                && waiting.columns().ends_with("  waiting"),
            "{}",
            waiting.columns()
        );
    }

    /// Progress drawn on an in-memory terminal 100 columns wide, with its tasks' state
    /// set: `(rows, bytes, estimate)` each, started `ago`, each task a shard of its own.
    fn drawn(tasks: &[(u64, u64, Option<f64>)], ago: Duration) -> String {
        let shards: Vec<String> = (0..tasks.len()).map(|i| format!("shard{i}")).collect();
        drawn_on(tasks, &shards, ago).1
    }

    /// [`drawn`], task `i` of shard `shards[i]`; returns the progress too.
    fn drawn_on(
        tasks: &[(u64, u64, Option<f64>)],
        shards: &[String],
        ago: Duration,
    ) -> (Progress, String) {
        let term = InMemoryTerm::new(12, 100);
        let labels = shards
            .iter()
            .enumerate()
            .map(|(i, shard)| (format!("{shard} p{i}"), shard.clone()))
            .collect();
        let progress = Progress::drawn(
            labels,
            ProgressDrawTarget::term_like_with_hz(Box::new(term.clone()), 100),
        );
        set(&progress, tasks, ago);
        // The terminal takes a burst of redraws, then one every 10 ms: once every line
        // was drawn as the bars were made, each needs room for one more.
        std::thread::sleep(Duration::from_millis(250));
        progress.draw();
        let screen = term.contents();
        (progress, screen)
    }

    /// Sets each task's state: `(rows, bytes, estimate)`, started `ago`.
    fn set(progress: &Progress, tasks: &[(u64, u64, Option<f64>)], ago: Duration) {
        let since = Instant::now() - ago;
        for (i, &(rows, bytes, estimate)) in tasks.iter().enumerate() {
            if let Some(e) = estimate {
                progress.estimated(i, e);
            }
            progress.start(i, since);
            let tally = &progress.shared.tasks[i];
            tally.rows.store(rows, Ordering::Relaxed);
            let _ = tally.bytes.set(Arc::new(AtomicU64::new(bytes)));
        }
    }

    /// The rates on a line (the words before `rows/s` and `B/s`).
    fn rates(line: &str) -> Vec<&str> {
        let words: Vec<&str> = line.split_whitespace().collect();
        words
            .windows(2)
            .filter(|w| w[1] == "rows/s" || w[1].ends_with("B/s"))
            .map(|w| w[0])
            .collect()
    }

    fn assert_human(rate: &str, screen: &str) {
        let digits = rate.trim_end_matches(['k', 'M', 'G', 'T']);
        let decimals = digits.split_once('.').map_or(0, |(_, d)| d.len());
        assert!(
            !digits.is_empty()
                && digits.chars().all(|c| c.is_ascii_digit() || c == '.')
                && decimals <= 1,
            "the rate {rate:?} is not readable in:\n{screen}"
        );
    }

    #[test]
    fn a_line_on_a_terminal_has_a_readable_rate_the_estimate_and_an_eta() {
        // 1,234,567 rows of an estimated 10M in 10 s. A rate was once drawn as
        // `726,437.1919260143768/s`; this one reads `123k rows/s`.
        let screen = drawn(
            &[(1_234_567, 123 << 20, Some(10_000_000.0))],
            Duration::from_secs(10),
        );
        let lines: Vec<&str> = screen.lines().collect();
        assert_eq!(lines.len(), 1, "one task, no total line:\n{screen}");
        let line = lines[0];
        assert!(line.chars().count() <= 100, "{line:?}");
        assert!(line.contains("shard0 p0"), "{screen}");
        assert!(line.contains(" [==="), "a bar:\n{screen}");
        assert!(line.contains("1.2M/~10.0M rows ~12%"), "{screen}");
        // The exact figures are `Figures`' (above); here the clock runs on while the
        // line is drawn, so they are checked by their shape: about 123k rows/s, 12.3 MiB/s
        // and 71 s left.
        assert!(line.contains("k rows/s"), "{screen}");
        assert!(line.contains(" MiB/s"), "{screen}");
        assert!(line.contains("ETA 1m1"), "{screen}");
        let rates = rates(line);
        assert_eq!(rates.len(), 2, "{screen}");
        for rate in rates {
            assert_human(rate, &screen);
        }
    }

    #[test]
    fn the_run_has_a_total_line_and_a_task_without_estimate_a_spinner() {
        // A task with an estimate, one past it, and one without (SQLite).
        let screen = drawn(
            &[
                (1_000_000, 100 << 20, Some(4_000_000.0)),
                (3_000_000, 300 << 20, Some(2_000_000.0)),
                (500_000, 50 << 20, None),
            ],
            Duration::from_secs(20),
        );
        let lines: Vec<&str> = screen.lines().collect();
        assert_eq!(lines.len(), 4, "three tasks and the total:\n{screen}");
        assert!(lines[0].contains("1.0M/~4.0M rows ~25%"), "{screen}");
        assert!(lines[0].contains("ETA 1m0"), "{screen}");
        assert!(lines[1].contains("3.0M/~3.0M rows ~99%"), "{screen}");
        assert!(lines[1].contains("ETA ?"), "{screen}");
        assert!(
            !lines[2].contains('['),
            "no bar without an estimate:\n{screen}"
        );
        assert!(!lines[2].contains('~'), "{screen}");
        assert!(!lines[2].contains("ETA"), "no made-up time left:\n{screen}");
        assert!(lines[2].contains("500k rows"), "{screen}");
        assert!(lines[2].contains("k rows/s"), "{screen}");
        assert!(
            lines[2].trim_end().ends_with("s"),
            "the time so far:\n{screen}"
        );
        // The total: no estimate while a task has none, so no time left either.
        assert!(lines[3].contains("total"), "{screen}");
        assert!(lines[3].contains("4.5M rows"), "{screen}");
        assert!(lines[3].contains("k rows/s"), "{screen}");
        assert!(!lines[3].contains("ETA"), "{screen}");
        for line in &lines {
            assert!(line.chars().count() <= 100, "{line:?}");
            for rate in rates(line) {
                assert_human(rate, &screen);
            }
        }
    }

    #[test]
    fn the_total_has_an_eta_when_every_task_has_an_estimate() {
        let screen = drawn(
            &[
                (1_000_000, 100 << 20, Some(4_000_000.0)),
                (1_000_000, 100 << 20, Some(2_000_000.0)),
            ],
            Duration::from_secs(10),
        );
        let total = screen.lines().nth(2).expect("a total line");
        // 4M rows left at about 200k rows/s.
        assert!(total.contains("2.0M/~6.0M rows ~33%"), "{screen}");
        assert!(total.contains("k rows/s"), "{screen}");
        assert!(total.contains("ETA 2"), "{screen}");
        assert!(total.contains(" [===="), "{screen}");
    }

    #[test]
    fn a_shard_in_several_tasks_has_a_line_and_an_eta_of_its_own() {
        // eu: two partitions with estimates, 3M of 6M rows in 10 s; us: one partition
        // without an estimate; ap: one task.
        let shards = ["eu", "eu", "us", "us", "ap"].map(String::from);
        let (_, screen) = drawn_on(
            &[
                (1_000_000, 100 << 20, Some(4_000_000.0)),
                (2_000_000, 100 << 20, Some(2_000_000.0)),
                (1_000_000, 100 << 20, Some(3_000_000.0)),
                (500_000, 50 << 20, None),
                (700_000, 70 << 20, Some(1_400_000.0)),
            ],
            &shards,
            Duration::from_secs(10),
        );
        let lines: Vec<&str> = screen.lines().collect();
        assert_eq!(lines.len(), 8, "5 tasks, 2 shards, the total:\n{screen}");
        // Each shard's line comes after its tasks'.
        assert!(lines[1].contains("eu p1"), "{screen}");
        assert!(lines[2].contains("eu (2 tasks)"), "{screen}");
        assert!(lines[5].contains("us (2 tasks)"), "{screen}");
        assert!(
            lines[6].contains("ap p4") && lines[7].contains("total"),
            "{screen}"
        );
        // eu: 3M of ~6M (4M and 2M: one task has reached its estimate), at
        // about 300k rows/s, 3M left: 10 s.
        assert!(lines[2].contains("3.0M/~6.0M rows ~50%"), "{screen}");
        assert!(lines[2].contains("ETA 1"), "{screen}");
        assert!(lines[2].contains(" [===="), "{screen}");
        // us: a task without an estimate, so neither a bar nor a time left.
        assert!(lines[5].contains("1.5M rows"), "{screen}");
        assert!(
            !lines[5].contains("ETA") && !lines[5].contains('['),
            "{screen}"
        );
        for line in &lines {
            assert!(line.chars().count() <= 100, "{line:?}");
        }
    }

    #[test]
    fn the_log_names_the_shards_that_end_last_first() {
        let shards = ["a", "b", "b", "c"].map(String::from);
        let labels = shards
            .iter()
            .enumerate()
            .map(|(i, s)| (format!("{s} p{i}"), s.clone()))
            .collect();
        let progress = Progress::with_view(labels, View::Log);
        set(
            &progress,
            &[
                // a: 1M left at 100k rows/s (10 s); b: 3M left at 200k rows/s (15 s);
                // c: no estimate.
                (1_000_000, 0, Some(2_000_000.0)),
                (1_000_000, 0, Some(4_000_000.0)),
                (1_000_000, 0, Some(1_000_000.0)),
                (1_000_000, 0, None),
            ],
            Duration::from_secs(10),
        );
        let lines = progress.shared.shard_lines(Instant::now());
        assert_eq!(lines.len(), 3, "{lines:#?}");
        assert!(
            lines[0].starts_with("progress of shard b: 2.0M of ~5.0M rows (~40%)"),
            "{lines:#?}"
        );
        assert!(
            lines[0].contains(", ETA 1") && lines[0].ends_with("; 0 of 2 tasks done"),
            "{lines:#?}"
        );
        assert!(
            lines[1].starts_with("progress of shard a: 1.0M of ~2.0M rows"),
            "{lines:#?}"
        );
        assert!(
            lines[1].contains(", ETA ") && lines[1].ends_with("; 0 of 1 task done"),
            "{lines:#?}"
        );
        assert!(
            lines[2].starts_with("progress of shard c: 1.0M rows,"),
            "{lines:#?}"
        );
        assert!(!lines[2].contains("ETA"), "{lines:#?}");
    }
}
