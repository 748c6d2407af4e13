//! Fan-in: batches from every task arrive over one channel whose memory is budgeted in
//! bytes, and one blocking thread checks them against a common schema, encodes them and
//! hands the encoded row groups to the sink.
//!
//! The steps, one module each:
//! - `schema`: each task's columns are checked against, and widened into, one common
//!   schema; batches are cast to it. The schema is fixed when the first row group is
//!   begun, so the dispatcher describes every PostgreSQL task first; a wider type that
//!   only shows up after rows were written (a source that cannot be described ahead,
//!   such as SQLite typing by values) is an error naming both shards.
//! - `row_groups`: batches are cut by the output's directories (a Hive-partitioned
//!   dataset's; one for every other output, see `Sink::route`) and into row groups, one
//!   task's rows of one directory each, so a failed task's unfinished group is dropped
//!   and its finished groups are left out at commit.
//!   The groups in progress are bounded together: past [`ENCODER_BUDGET`] the largest is
//!   flushed. When the output is split, a file is set aside at the job's row limit
//!   exactly (a batch that would pass it is cut, and every group in progress is flushed
//!   into the file), or once a closed row group takes it past the byte limit; the next
//!   group starts the next file. Rows are counted as the file will hold them: a failed
//!   attempt's row groups are left out of their file as soon as it fails, so the file
//!   being filled goes on to the limit with the rows that stay.
//! - `encoder`: encoding and compressing is the most expensive stage of a run
//!   (docs/performance.md), so columns are encoded on `encoder_threads` threads at once
//!   (a rayon pool), and the merger does not wait for a
//!   batch's columns before it takes the next batch: each column writer has its own
//!   queue (a lane), and only closing a row group waits for them. Every column writer
//!   still receives the same values in the same order, and row groups are cut by rows
//!   and Arrow bytes given, not by what was encoded yet, so the file does not depend on
//!   the number of threads.
//!
//! The encoded row groups go to a [`Sink`]; a stage that combines the merged batches
//! across shards (an aggregation over them) would sit between the schema step and the
//! row groups, taking conformed batches and giving others.

mod encoder;
mod row_groups;
mod schema;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use crate::combine::engine::{FinalStep, Spool};
use crate::error::{Error, Result};
use crate::sink::{OutputSummary, RowGroupId, Sink};
use encoder::EncoderPool;
use row_groups::GroupInProgress;
use schema::CommonSchema;

/// Bytes of decoded batches that may wait in the channel: the backpressure that stops a
/// fast source from outrunning the encoder. A few batches (8 MiB at most each) keep the
/// encoder busy; 64 MiB made the peak RSS of a long export grow with the time the
/// channel stayed full, and 12 MiB instead of 24 took 10-20 MB off the peak of 4
/// partitions at the same speed (docs/performance.md).
pub const CHANNEL_BUDGET: usize = 12 << 20;
/// Bytes of encoded, not yet written row groups across all tasks.
pub const ENCODER_BUDGET: usize = 256 << 20;
/// A row group is closed once the Arrow data of its rows passes this, whatever its row
/// count (the encoded group is smaller, by its encodings and compression).
pub const ROW_GROUP_BYTES: usize = 128 << 20;
/// Budget permits are counted in KiB so that large budgets fit a semaphore.
const PERMIT_UNIT: usize = 1024;

/// What tasks tell the merger.
#[derive(Debug)]
pub enum Event {
    /// The task's result columns, sent before its first batch (types may be Null when a
    /// source cannot know them before seeing values).
    Schema { task: usize, schema: SchemaRef },
    Batch {
        task: usize,
        batch: RecordBatch,
        /// Released once the batch is encoded.
        permit: OwnedSemaphorePermit,
    },
    /// The task finished; its rows are complete.
    Done { task: usize },
    /// The task failed; none of its rows may reach the output.
    Failed { task: usize },
    /// Write the footer with this metadata and move the file into place.
    Commit { metadata: Vec<(String, String)> },
    /// The shards are being described while their tasks already run: every later event
    /// waits, unprocessed, for [`Event::Described`]. The schema is fixed by the first
    /// row group, so no row may be encoded before every shard's columns are known, but
    /// the queries need not wait for that (their batches hold channel budget while they
    /// wait, so the wait is bounded like the channel).
    Describing,
    /// The columns the describe step found, by task; then the events that waited since
    /// [`Event::Describing`] go on in the order they came.
    Described { schemas: Vec<(usize, SchemaRef)> },
}

/// A task's handle for sending to the merger.
#[derive(Clone)]
pub struct BatchSender {
    task: usize,
    tx: mpsc::UnboundedSender<Event>,
    budget: Arc<Semaphore>,
    /// Arrow bytes sent by the attempt in progress.
    sent: Arc<std::sync::atomic::AtomicU64>,
}

impl BatchSender {
    pub fn schema(&self, schema: SchemaRef) {
        let _ = self.tx.send(Event::Schema {
            task: self.task,
            schema,
        });
    }

    /// The bytes of Arrow data the attempt in progress has sent (buffers as allocated).
    pub fn bytes(&self) -> u64 {
        self.sent.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The count behind [`BatchSender::bytes`], shared: the progress reads it while the
    /// task runs.
    pub fn byte_count(&self) -> Arc<std::sync::atomic::AtomicU64> {
        Arc::clone(&self.sent)
    }

    /// Drops what the task sent so far (its attempt failed; a retry starts afresh).
    pub fn discard(&self) {
        self.sent.store(0, std::sync::atomic::Ordering::Relaxed);
        let _ = self.tx.send(Event::Failed { task: self.task });
    }

    /// Sends a batch, waiting while the channel's byte budget is spent. Returns how long
    /// it waited: the time the source was held back by the stages after it.
    pub async fn batch(&self, batch: RecordBatch) -> Duration {
        if batch.num_rows() == 0 {
            return Duration::ZERO;
        }
        let started = Instant::now();
        let size = batch.get_array_memory_size();
        self.sent
            .fetch_add(size as u64, std::sync::atomic::Ordering::Relaxed);
        let units = (size / PERMIT_UNIT).clamp(1, CHANNEL_BUDGET / PERMIT_UNIT);
        let permit = self
            .budget
            .clone()
            .acquire_many_owned(units as u32)
            .await
            .expect("the budget semaphore is never closed");
        let waited = started.elapsed();
        let _ = self.tx.send(Event::Batch {
            task: self.task,
            batch,
            permit,
        });
        waited
    }
}

/// The sending side, held by the dispatcher. The merger ends without output once every
/// handle and [`BatchSender`] is dropped before [`Event::Commit`].
#[derive(Clone)]
pub struct MergeHandle {
    tx: mpsc::UnboundedSender<Event>,
    budget: Arc<Semaphore>,
}

impl MergeHandle {
    pub fn sender(&self, task: usize) -> BatchSender {
        BatchSender {
            task,
            tx: self.tx.clone(),
            budget: self.budget.clone(),
            sent: Default::default(),
        }
    }

    pub fn send(&self, event: Event) {
        let _ = self.tx.send(event);
    }
}

/// Settings of the merge stage (the output's own are the sink's).
pub struct MergeSettings {
    /// The shard of each task, by task index.
    pub task_shards: Vec<String>,
    /// Adds a first column holding the shard's name.
    pub shard_column: Option<String>,
    pub row_group_size: usize,
    /// Threads encoding one batch's columns at once (1: the merger's thread alone).
    pub encoder_threads: usize,
    /// The final step across shards: the tasks' rows are spooled, and what the step
    /// returns is the output (see `combine`).
    pub final_step: Option<FinalStep>,
    /// The readers the output is for, with the user's type options, which win over it:
    /// the file's schema is the merged one under the profile's renderings, and batches
    /// are converted to it as they are conformed (see `types::Profile`).
    pub profile: crate::types::Profile,
    /// Where the merger leaves what the profile did (renderings, warnings) for the
    /// run's report, once the file's schema is fixed.
    pub reader_notes: Arc<std::sync::Mutex<crate::types::ReaderNotes>>,
}

/// Starts the merger on a blocking thread, writing to `sink`. It commits when it
/// receives [`Event::Commit`]; if the channel closes first, the sink is dropped (its
/// temporary files removed) and the result is `Ok(None)`.
pub fn start(
    sink: Box<dyn Sink>,
    settings: MergeSettings,
) -> (
    MergeHandle,
    tokio::task::JoinHandle<Result<Option<OutputSummary>>>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let budget = Arc::new(Semaphore::new(CHANNEL_BUDGET / PERMIT_UNIT));
    let handle = tokio::task::spawn_blocking(move || Merger::new(sink, settings)?.run(rx));
    (MergeHandle { tx, budget }, handle)
}

struct Merger {
    settings: MergeSettings,
    sink: Box<dyn Sink>,
    schema: CommonSchema,
    /// Each task's row group being encoded, by task and output directory.
    in_progress: HashMap<row_groups::Stream, GroupInProgress>,
    /// A dataset's rows waiting to make row groups, by task and directory, and their
    /// Arrow bytes in all.
    pending: HashMap<row_groups::Stream, row_groups::Pending>,
    pending_bytes: usize,
    /// The row groups each task has written, to leave out if it fails.
    written: HashMap<usize, Vec<RowGroupId>>,
    pool: EncoderPool,
    timings: Timings,
    /// The tasks' rows when a final step runs over them.
    spool: Option<Spool>,
}

/// Where the merger's time went; logged at debug level (`-v`) when it ends. Waiting is
/// time with no batch to encode: the sources are the slower stage.
#[derive(Debug, Default)]
struct Timings {
    waiting: Duration,
    encoding: Duration,
    flushing: Duration,
}

/// What the merger does after an event.
enum Next {
    Continue,
    Commit(Vec<(String, String)>),
}

impl Merger {
    fn new(sink: Box<dyn Sink>, settings: MergeSettings) -> Result<Merger> {
        let pool = EncoderPool::new(settings.encoder_threads).map_err(|e| {
            Error::output(
                sink.path(),
                format!("cannot start the encoder threads: {e}"),
            )
        })?;
        Ok(Merger {
            sink,
            schema: CommonSchema::new(settings.shard_column.clone()),
            in_progress: HashMap::new(),
            pending: HashMap::new(),
            pending_bytes: 0,
            written: HashMap::new(),
            pool,
            timings: Timings::default(),
            spool: None,
            settings,
        })
    }

    fn run(mut self, mut rx: mpsc::UnboundedReceiver<Event>) -> Result<Option<OutputSummary>> {
        if self.settings.final_step.is_some() {
            self.spool = Some(Spool::new()?);
        }
        // Events that came between Describing and Described.
        let mut held: Option<VecDeque<Event>> = None;
        loop {
            let started = Instant::now();
            let Some(event) = rx.blocking_recv() else {
                break;
            };
            self.timings.waiting += started.elapsed();
            let events = match (event, &mut held) {
                (Event::Describing, _) => {
                    held = Some(VecDeque::new());
                    continue;
                }
                (Event::Described { schemas }, _) => {
                    for (task, schema) in &schemas {
                        self.observe(*task, schema)?;
                    }
                    self.check_profile()?;
                    held.take().unwrap_or_default()
                }
                (event, Some(queue)) => {
                    queue.push_back(event);
                    continue;
                }
                (event, None) => VecDeque::from([event]),
            };
            for event in events {
                if let Next::Commit(metadata) = self.handle(event)? {
                    return self.commit(metadata).map(Some);
                }
            }
        }
        Ok(None)
    }

    /// Acts on one event.
    fn handle(&mut self, event: Event) -> Result<Next> {
        match event {
            Event::Schema { task, schema } => self.observe(task, &schema)?,
            Event::Batch {
                task,
                batch,
                permit,
            } => {
                self.observe(task, &batch.schema())?;
                match &mut self.spool {
                    Some(spool) => spool.write(task, &batch)?,
                    None => self.encode(task, batch, &Arc::new(permit))?,
                }
            }
            Event::Done { task } => match &mut self.spool {
                Some(spool) => spool.finish(task)?,
                None => self.flush_task(task)?,
            },
            Event::Failed { task } => match &mut self.spool {
                Some(spool) => spool.discard(task),
                None => self.discard(task),
            },
            Event::Commit { metadata } => return Ok(Next::Commit(metadata)),
            // The hold around the describe step is `run`'s.
            Event::Describing | Event::Described { .. } => {}
        }
        Ok(Next::Continue)
    }

    /// Checks a task's columns against the common schema (see [`schema`]).
    fn observe(&mut self, task: usize, schema: &arrow::datatypes::Schema) -> Result<()> {
        let fixed = self.sink.schema().is_some();
        self.schema
            .observe(&self.settings.task_shards[task], schema, fixed)
    }

    /// Fails the run when the shards' columns, as described, have no form a reader of
    /// the profile reads exactly: before any row is written. (A final step's columns
    /// are checked when its first row is.)
    fn check_profile(&self) -> Result<()> {
        if self.settings.final_step.is_some() {
            return Ok(());
        }
        self.settings
            .profile
            .plan(&self.schema.output())
            .map(|_| ())
            .map_err(|e| Error::config(None, e.to_string()))
    }

    /// The schema the file is started with: the merged schema under the reader
    /// profile's renderings. Records what the profile did for the report, and logs its
    /// warnings.
    fn output_schema(&mut self) -> Result<SchemaRef> {
        let profile = &self.settings.profile;
        let plan = profile
            .plan(&self.schema.output())
            .map_err(|e| Error::config(None, e.to_string()))?;
        let notes = crate::types::ReaderNotes::new(profile.readers, &plan);
        for w in &notes.warnings {
            tracing::warn!("{}", w.message);
        }
        *self.settings.reader_notes.lock().expect("never poisoned") = notes;
        Ok(plan.schema)
    }

    /// Drops a failed task's group in progress and leaves its written groups out of
    /// their files now, so that a split output fills the current file by the rows it
    /// will hold.
    fn discard(&mut self, task: usize) {
        self.discard_pending(task);
        for stream in self.streams(|(t, _)| t == task) {
            if let Some(group) = self.in_progress.remove(&stream) {
                self.pool.abandon(&group.lanes);
            }
        }
        for id in self.written.remove(&task).into_iter().flatten() {
            self.sink.exclude(id);
        }
        self.sink.discard(task);
    }

    /// Runs the final step over the spooled rows, if there is one, encoding what it
    /// returns as the output's only task.
    fn run_final_step(&mut self, metadata: &mut Vec<(String, String)>) -> Result<()> {
        let (Some(spool), Some(step)) = (self.spool.take(), self.settings.final_step.clone())
        else {
            return Ok(());
        };
        let schema = self.schema.output();
        let shards = self.settings.task_shards.clone();
        let with_shard = self.settings.shard_column.is_some();
        let conform_to = schema.clone();
        let conform = Arc::new(move |task: usize, batch: RecordBatch| {
            let shard = with_shard.then(|| shards[task].as_str());
            schema::conform(batch, &conform_to, shard).map_err(|e| Error::output("spool", e))
        });
        // The output is the final step's: one task of its own, no shard column.
        self.settings.shard_column = None;
        self.settings.task_shards = vec!["(final step)".into()];
        self.schema = CommonSchema::new(None);
        let hold = row_groups::no_hold();
        let mut first = true;
        let spilled = spool.run(&step, schema, conform, |batch| {
            if first {
                self.schema
                    .observe("(final step)", &batch.schema(), false)?;
                first = false;
            }
            self.encode(0, batch, &hold)
        })?;
        if spilled.files > 0 {
            tracing::info!(
                "the final step spilled {} rows ({:.1} MiB) to disk in {} file{} to stay within --memory-limit {:.1} MiB",
                spilled.rows,
                spilled.bytes as f64 / (1 << 20) as f64,
                spilled.files,
                if spilled.files == 1 { "" } else { "s" },
                step.memory_limit as f64 / (1 << 20) as f64
            );
        }
        metadata.push(("tributary.combine".into(), step.strategy.clone()));
        metadata.push(("tributary.final_sql".into(), step.sql.clone()));
        Ok(())
    }

    /// Flushes every group in progress and commits the sink.
    fn commit(mut self, mut metadata: Vec<(String, String)>) -> Result<OutputSummary> {
        self.run_final_step(&mut metadata)?;
        self.flush_all()?;
        if self.sink.schema().is_none() {
            // No row was written: the file still holds the columns.
            let schema = self.output_schema()?;
            self.sink.start(schema)?;
        }
        metadata.extend(
            self.settings
                .reader_notes
                .lock()
                .expect("never poisoned")
                .metadata(),
        );
        tracing::debug!(
            "merger: waited {:.2?} for batches, encoded for {:.2?}, closed row groups for {:.2?} ({} encoder threads)",
            self.timings.waiting,
            self.timings.encoding,
            self.timings.flushing,
            self.settings.encoder_threads,
        );
        self.sink.commit(metadata)
    }
}
