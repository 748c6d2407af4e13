//! Fan-in: batches from every task arrive over one channel whose memory is budgeted in
//! bytes, and one blocking thread checks them against a common schema, encodes them and
//! appends them to the Parquet sink.
//!
//! Each task has its own in-progress row group (encoded column writers), so a row group
//! holds one task's rows: a failed task's unfinished group is dropped, and its finished
//! groups are left out at commit. The in-progress groups are bounded together: past
//! [`ENCODER_BUDGET`] the largest is flushed.
//!
//! Shards may type a column differently (int4 here, int8 there; numeric(10,2) and
//! numeric(12,2)): the common type is the narrowest that holds both ([`types::unify`]),
//! and batches are cast up to it. The Parquet schema is fixed when the first row group
//! is encoded, so the dispatcher describes every PostgreSQL task first; a wider type
//! that only shows up after rows were written (a source that cannot be described ahead,
//! such as SQLite typing by values) is an error naming both shards.
//!
//! When the output is split, a file is set aside at the job's row limit exactly (a batch
//! that would pass it is cut, and every group in progress is flushed into the file), or
//! once a closed row group takes it past the byte limit; the next group starts the next
//! file.
//!
//! Encoding and compressing is the most expensive stage of a run (docs/performance.md),
//! so each batch's columns are encoded on several threads at once (the merger's own and
//! `encoder_threads - 1` helpers started with it, see [`EncoderPool`]). Every column
//! writer still receives the same values in the same order, so the file does not depend
//! on the number of threads.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, RecordBatch, StringArray, new_null_array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::arrow_writer::{ArrowColumnWriter, ArrowLeafColumn, compute_leaves};
use parquet::errors::ParquetError;
use parquet::file::properties::WriterProperties;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use crate::config::{Split, part_path};
use crate::error::{Error, Result};
use crate::sink::{OutputSummary, ParquetSink, TempFile, commit_parts, file_properties};
use crate::types::{self, describe_field};

/// Bytes of decoded batches that may wait in the channel: the backpressure that stops a
/// fast source from outrunning the encoder. A few batches (8 MiB at most each) keep the
/// encoder busy; 64 MiB made the peak RSS of a long export grow with the time the
/// channel stayed full, and 12 MiB instead of 24 took 10-20 MB off the peak of 4
/// partitions at the same speed (docs/performance.md).
pub const CHANNEL_BUDGET: usize = 12 << 20;
/// Bytes of encoded, not yet written row groups across all tasks.
pub const ENCODER_BUDGET: usize = 256 << 20;
/// A row group is closed once its encoded size passes this, whatever its row count.
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
}

/// A task's handle for sending to the merger.
#[derive(Clone)]
pub struct BatchSender {
    task: usize,
    tx: mpsc::UnboundedSender<Event>,
    budget: Arc<Semaphore>,
}

impl BatchSender {
    pub fn schema(&self, schema: SchemaRef) {
        let _ = self.tx.send(Event::Schema {
            task: self.task,
            schema,
        });
    }

    /// Drops what the task sent so far (its attempt failed; a retry starts afresh).
    pub fn discard(&self) {
        let _ = self.tx.send(Event::Failed { task: self.task });
    }

    /// Sends a batch, waiting while the channel's byte budget is spent. Returns how long
    /// it waited: the time the source was held back by the stages after it.
    pub async fn batch(&self, batch: RecordBatch) -> Duration {
        if batch.num_rows() == 0 {
            return Duration::ZERO;
        }
        let started = Instant::now();
        let units =
            (batch.get_array_memory_size() / PERMIT_UNIT).clamp(1, CHANNEL_BUDGET / PERMIT_UNIT);
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

/// The sending side, held by the dispatcher.
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
        }
    }

    pub fn send(&self, event: Event) {
        let _ = self.tx.send(event);
    }
}

/// Settings of the merge stage.
pub struct MergeSettings {
    /// The shard of each task, by task index.
    pub task_shards: Vec<String>,
    /// Adds a first column holding the shard's name.
    pub shard_column: Option<String>,
    pub row_group_size: usize,
    pub props: WriterProperties,
    /// Delta encodings where no dictionary is used (`sink::file_properties`).
    pub delta: bool,
    /// The output path as the user gave it (parts are named after it).
    pub output: PathBuf,
    /// When to start the next file; `None` writes one file.
    pub split: Option<Split>,
    /// Threads encoding one batch's columns at once (1: the merger's thread alone).
    pub encoder_threads: usize,
}

/// Starts the merger on a blocking thread. It commits when it receives
/// [`Event::Commit`]; if the channel closes first, the temporary file is removed and the
/// result is `Ok(None)`.
pub fn start(
    temp: TempFile,
    settings: MergeSettings,
) -> (
    MergeHandle,
    tokio::task::JoinHandle<Result<Option<OutputSummary>>>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let budget = Arc::new(Semaphore::new(CHANNEL_BUDGET / PERMIT_UNIT));
    let handle = tokio::task::spawn_blocking(move || Merger::new(temp, settings).run(rx));
    (MergeHandle { tx, budget }, handle)
}

/// One task's row group being encoded.
struct Encoder {
    writers: Vec<ArrowColumnWriter>,
    rows: u64,
}

impl Encoder {
    fn memory(&self) -> usize {
        self.writers.iter().map(|w| w.memory_size()).sum()
    }

    fn encoded_bytes(&self) -> usize {
        self.writers
            .iter()
            .map(|w| w.get_estimated_total_bytes())
            .sum()
    }
}

/// A column of the common schema: its field (Null-typed until some shard gives it a
/// type) and the shard that fixed its type, for messages.
struct Slot {
    field: Field,
    origin: String,
}

struct Merger {
    settings: MergeSettings,
    temp: Option<TempFile>,
    sink: Option<ParquetSink>,
    /// The query's columns as agreed so far (without the shard column).
    slots: Option<Vec<Slot>>,
    encoders: HashMap<usize, Encoder>,
    /// Row groups written by each task, as (file, row group), to leave out if it fails.
    task_groups: HashMap<usize, Vec<(usize, usize)>>,
    excluded: BTreeSet<(usize, usize)>,
    /// Files of a split output that are complete but for their footer.
    parts: Vec<ParquetSink>,
    pool: EncoderPool,
    timings: Timings,
}

/// Where the merger's time went; logged at debug level (`-v`) when it ends. Waiting is
/// time with no batch to encode: the sources are the slower stage.
#[derive(Debug, Default)]
struct Timings {
    waiting: Duration,
    encoding: Duration,
    flushing: Duration,
}

impl Merger {
    fn new(temp: TempFile, settings: MergeSettings) -> Merger {
        Merger {
            temp: Some(temp),
            sink: None,
            slots: None,
            encoders: HashMap::new(),
            task_groups: HashMap::new(),
            excluded: BTreeSet::new(),
            parts: Vec::new(),
            pool: EncoderPool::new(settings.encoder_threads),
            timings: Timings::default(),
            settings,
        }
    }

    fn run(mut self, mut rx: mpsc::UnboundedReceiver<Event>) -> Result<Option<OutputSummary>> {
        loop {
            let started = Instant::now();
            let Some(event) = rx.blocking_recv() else {
                break;
            };
            self.timings.waiting += started.elapsed();
            match event {
                Event::Schema { task, schema } => self.observe(task, &schema)?,
                Event::Batch {
                    task,
                    batch,
                    permit,
                } => {
                    self.observe(task, &batch.schema())?;
                    self.encode(task, batch)?;
                    drop(permit);
                }
                Event::Done { task } => self.flush(task)?,
                Event::Failed { task } => {
                    self.encoders.remove(&task);
                    if let Some(groups) = self.task_groups.remove(&task) {
                        self.excluded.extend(groups);
                    }
                }
                Event::Commit { metadata } => {
                    let tasks: Vec<usize> = self.encoders.keys().copied().collect();
                    for task in tasks {
                        self.flush(task)?;
                    }
                    let sink = match self.sink.take() {
                        Some(sink) => sink,
                        None if self.parts.is_empty() => self.open_sink()?,
                        None => return self.commit_split(metadata).map(Some),
                    };
                    tracing::debug!(
                        "merger: waited {:.2?} for batches, encoded for {:.2?}, closed row groups for {:.2?} ({} encoder threads)",
                        self.timings.waiting,
                        self.timings.encoding,
                        self.timings.flushing,
                        self.settings.encoder_threads,
                    );
                    if self.settings.split.is_none() {
                        let exclude = self.excluded_in(0);
                        return sink.commit(metadata, &exclude).map(Some);
                    }
                    self.parts.push(sink);
                    return self.commit_split(metadata).map(Some);
                }
            }
        }
        Ok(None)
    }

    /// The row groups of file `part` to leave out.
    fn excluded_in(&self, part: usize) -> BTreeSet<usize> {
        self.excluded
            .iter()
            .filter(|(p, _)| *p == part)
            .map(|(_, g)| *g)
            .collect()
    }

    fn commit_split(&mut self, metadata: Vec<(String, String)>) -> Result<OutputSummary> {
        let parts: Vec<_> = std::mem::take(&mut self.parts)
            .into_iter()
            .enumerate()
            .map(|(i, sink)| (sink, self.excluded_in(i)))
            .collect();
        commit_parts(&self.settings.output, parts, metadata)
    }

    /// Checks a task's columns against the common schema, fills in types that were not
    /// known yet, and widens types to hold every shard's values.
    fn observe(&mut self, task: usize, schema: &Schema) -> Result<()> {
        let shard = self.settings.task_shards[task].clone();
        if let Some(col) = &self.settings.shard_column
            && schema.fields().iter().any(|f| f.name() == col)
        {
            return Err(Error::config(
                None,
                format!(
                    "--shard-column `{col}`: shard `{shard}` already returns a column of that name"
                ),
            ));
        }
        let Some(slots) = &mut self.slots else {
            self.slots = Some(
                schema
                    .fields()
                    .iter()
                    .map(|f| Slot {
                        field: f.as_ref().clone(),
                        origin: shard.clone(),
                    })
                    .collect(),
            );
            return Ok(());
        };
        let mismatch = |first: &str, detail: String| Error::SchemaMismatch {
            first_shard: first.to_string(),
            other_shard: shard.clone(),
            detail,
        };
        if slots.len() != schema.fields().len() {
            let names = |it: Vec<&str>| it.join(", ");
            return Err(mismatch(
                &slots[0].origin,
                format!(
                    "`{}` returns {} columns ({}), `{shard}` returns {} ({})",
                    slots[0].origin,
                    slots.len(),
                    names(slots.iter().map(|s| s.field.name().as_str()).collect()),
                    schema.fields().len(),
                    names(schema.fields().iter().map(|f| f.name().as_str()).collect()),
                ),
            ));
        }
        let frozen = self.sink.is_some() || !self.parts.is_empty();
        for (i, (slot, field)) in slots.iter_mut().zip(schema.fields()).enumerate() {
            if slot.field.name() != field.name() {
                return Err(mismatch(
                    &slot.origin,
                    format!(
                        "column {} is `{}` in `{}` but `{}` in `{shard}`",
                        i + 1,
                        slot.field.name(),
                        slot.origin,
                        field.name()
                    ),
                ));
            }
            if field.data_type() == &DataType::Null {
                continue;
            }
            if slot.field.data_type() == &DataType::Null {
                if frozen {
                    return Err(mismatch(
                        &slot.origin,
                        format!(
                            "column `{}` had no type in `{}` (no declared type and only NULLs in the rows written first) but is {} in `{shard}`; give the column a type in the query",
                            field.name(),
                            slot.origin,
                            describe_field(field)
                        ),
                    ));
                }
                slot.field = field.as_ref().clone();
                slot.origin = shard.clone();
                continue;
            }
            let incompatible = || {
                mismatch(
                    &slot.origin,
                    format!(
                        "column `{}` is {} in `{}` but {} in `{shard}`",
                        field.name(),
                        describe_field(&slot.field),
                        slot.origin,
                        describe_field(field)
                    ),
                )
            };
            let common = types::unify_fields(&slot.field, field).ok_or_else(incompatible)?;
            if common != slot.field {
                if frozen {
                    return Err(mismatch(
                        &slot.origin,
                        format!(
                            "column `{}` is {} in `{}` but {} in `{shard}`, and rows of the narrower type were written before `{shard}` could be described; cast the column to {} in the query",
                            field.name(),
                            describe_field(&slot.field),
                            slot.origin,
                            describe_field(field),
                            common.data_type()
                        ),
                    ));
                }
                slot.field = common;
                slot.origin = shard.clone();
            }
        }
        Ok(())
    }

    fn open_sink(&mut self) -> Result<ParquetSink> {
        let mut fields = Vec::new();
        if let Some(col) = &self.settings.shard_column {
            fields.push(Field::new(col, DataType::Utf8, false));
        }
        for slot in self.slots.iter().flatten() {
            fields.push(slot.field.clone());
        }
        let schema = Arc::new(Schema::new(fields));
        let temp = match self.temp.take() {
            Some(temp) => temp,
            None => {
                let path = part_path(&self.settings.output, self.parts.len());
                TempFile::create(&path)?
            }
        };
        let props = file_properties(&self.settings.props, &schema, self.settings.delta)
            .map_err(|e| Error::output(&self.settings.output, e))?;
        ParquetSink::new(temp, schema, props)
    }

    /// The batch in the output's schema: shard column added, untyped NULL columns typed,
    /// narrower types cast up to the common type.
    fn conform(&self, task: usize, batch: RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
        let rows = batch.num_rows();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
        if self.settings.shard_column.is_some() {
            let shard = self.settings.task_shards[task].as_str();
            columns.push(Arc::new(StringArray::from_iter_values(
                std::iter::repeat_n(shard, rows),
            )));
        }
        let offset = columns.len();
        for (i, column) in batch.columns().iter().enumerate() {
            let want = schema.field(offset + i).data_type();
            if column.data_type() == want {
                columns.push(column.clone());
            } else if column.data_type() == &DataType::Null {
                columns.push(new_null_array(want, rows));
            } else {
                // A narrower type of this shard: `observe` checked that it widens losslessly.
                let cast = arrow::compute::cast(column, want)
                    .map_err(|e| Error::output(self.temp_target(), e))?;
                columns.push(cast);
            }
        }
        RecordBatch::try_new(schema.clone(), columns)
            .map_err(|e| Error::output(self.temp_target(), e))
    }

    fn temp_target(&self) -> std::path::PathBuf {
        self.sink
            .as_ref()
            .map(|s| s.path_hint())
            .unwrap_or_default()
    }

    fn encode(&mut self, task: usize, mut batch: RecordBatch) -> Result<()> {
        // With a row limit per file, a batch that would pass it is cut, and the file is
        // closed (all tasks' groups in progress flushed into it) at the limit exactly.
        while let Some(max) = self.settings.split.and_then(|s| s.max_rows) {
            let in_file = self.sink.as_ref().map_or(0, |s| s.rows())
                + self.encoders.values().map(|e| e.rows).sum::<u64>();
            let room = max.saturating_sub(in_file) as usize;
            if batch.num_rows() <= room {
                break;
            }
            let tail = batch.slice(room, batch.num_rows() - room);
            self.encode_group(task, batch.slice(0, room))?;
            self.close_file()?;
            batch = tail;
        }
        self.encode_group(task, batch)
    }

    /// Flushes every group in progress into the current file and sets the file aside.
    fn close_file(&mut self) -> Result<()> {
        let tasks: Vec<usize> = self.encoders.keys().copied().collect();
        for task in tasks {
            self.flush(task)?;
        }
        if let Some(sink) = self.sink.take() {
            self.parts.push(sink);
        }
        Ok(())
    }

    /// Encodes the batch into the task's row groups, cutting it where a group reaches
    /// `row_group_size` rows: batches need not divide it (a source's batch can pass its
    /// batch size by part of a network read, or end early at its byte bound).
    fn encode_group(&mut self, task: usize, mut batch: RecordBatch) -> Result<()> {
        let size = self.settings.row_group_size;
        loop {
            let in_group = self.encoders.get(&task).map_or(0, |e| e.rows as usize);
            let room = size.saturating_sub(in_group).max(1);
            if batch.num_rows() <= room {
                return self.encode_rows(task, batch);
            }
            let tail = batch.slice(room, batch.num_rows() - room);
            self.encode_rows(task, batch.slice(0, room))?;
            batch = tail;
        }
    }

    fn encode_rows(&mut self, task: usize, batch: RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        if self.sink.is_none() {
            let sink = self.open_sink()?;
            self.sink = Some(sink);
        }
        let sink = self.sink.as_ref().expect("opened above");
        let schema = sink.schema().clone();
        let batch = self.conform(task, batch, &schema)?;
        let encoder = match self.encoders.entry(task) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => v.insert(Encoder {
                writers: sink.column_writers()?,
                rows: 0,
            }),
        };
        let path = sink.path_hint();
        let err = |e: ParquetError| Error::output(&path, e);
        let started = Instant::now();
        let mut leaves = Vec::with_capacity(encoder.writers.len());
        for (field, column) in schema.fields().iter().zip(batch.columns()) {
            leaves.extend(compute_leaves(field, column).map_err(err)?);
        }
        self.pool.write(&mut encoder.writers, leaves).map_err(err)?;
        self.timings.encoding += started.elapsed();
        encoder.rows += batch.num_rows() as u64;
        if encoder.rows >= self.settings.row_group_size as u64
            || encoder.encoded_bytes() >= ROW_GROUP_BYTES
        {
            self.flush(task)?;
        }
        let total: usize = self.encoders.values().map(Encoder::memory).sum();
        if total > ENCODER_BUDGET {
            let largest = self
                .encoders
                .iter()
                .max_by_key(|(_, e)| e.memory())
                .map(|(t, _)| *t);
            if let Some(t) = largest {
                self.flush(t)?;
            }
        }
        Ok(())
    }

    /// Closes the task's row group and appends it to the file.
    fn flush(&mut self, task: usize) -> Result<()> {
        let Some(encoder) = self.encoders.remove(&task) else {
            return Ok(());
        };
        if encoder.rows == 0 {
            return Ok(());
        }
        let started = Instant::now();
        if self.sink.is_none() {
            // The file this group was begun for was set aside (split output): start the next.
            let sink = self.open_sink()?;
            self.sink = Some(sink);
        }
        let sink = self.sink.as_mut().expect("opened above");
        let path = sink.path_hint();
        let chunks = encoder
            .writers
            .into_iter()
            .map(|w| w.close())
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::output(&path, e))?;
        let index = sink.append(chunks, encoder.rows)?;
        let part = self.parts.len();
        self.task_groups
            .entry(task)
            .or_default()
            .push((part, index));
        if let Some(split) = self.settings.split {
            let full = split.max_rows.is_some_and(|max| sink.rows() >= max)
                || split
                    .max_bytes
                    .is_some_and(|max| sink.bytes_written() >= max);
            if full {
                let sink = self.sink.take().expect("appended to above");
                self.parts.push(sink);
            }
        }
        self.timings.flushing += started.elapsed();
        Ok(())
    }
}

/// A column to encode: its position in the row group, its writer and its values.
type Job = (usize, ArrowColumnWriter, ArrowLeafColumn);
/// An encoded column: its position, its writer back, and how the write went.
type Done = (
    usize,
    ArrowColumnWriter,
    std::result::Result<(), ParquetError>,
);

/// Threads that encode a batch's columns beside the merger's own thread, started once per
/// run (a thread per batch cost a spawn, a stack and its page faults every 8192 rows).
/// Each batch's columns go into a queue; the helpers and the merger's thread each take
/// the next column until none is left. A writer only ever sees its own column's values,
/// in batch order, so the file is the same whatever the number of threads.
struct EncoderPool {
    queue: Arc<JobQueue>,
    done: std::sync::mpsc::Receiver<Done>,
    helpers: Vec<std::thread::JoinHandle<()>>,
}

#[derive(Default)]
struct JobQueue {
    /// The columns not yet taken, and whether the pool is closing.
    state: Mutex<(std::collections::VecDeque<Job>, bool)>,
    ready: std::sync::Condvar,
}

impl JobQueue {
    /// The next column, without waiting.
    fn try_take(&self) -> Option<Job> {
        self.lock().0.pop_front()
    }

    /// The next column, waiting for one; `None` once the pool closes.
    fn take(&self) -> Option<Job> {
        let mut state = self.lock();
        loop {
            if let Some(job) = state.0.pop_front() {
                return Some(job);
            }
            if state.1 {
                return None;
            }
            state = self.ready.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (std::collections::VecDeque<Job>, bool)> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Writes one column, turning a panic in the writer into an error.
fn encode_column(
    writer: &mut ArrowColumnWriter,
    leaf: &ArrowLeafColumn,
) -> std::result::Result<(), ParquetError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| writer.write(leaf)))
        .unwrap_or_else(|_| Err(ParquetError::General("a column writer panicked".into())))
}

impl EncoderPool {
    /// A pool of `threads` in all: the caller's thread and `threads - 1` helpers.
    fn new(threads: usize) -> EncoderPool {
        let queue = Arc::new(JobQueue::default());
        let (done_tx, done) = std::sync::mpsc::channel();
        let helpers = (1..threads.max(1))
            .filter_map(|i| {
                let queue = queue.clone();
                let done_tx = done_tx.clone();
                std::thread::Builder::new()
                    .name(format!("tributary-encoder-{i}"))
                    .spawn(move || {
                        while let Some((column, mut writer, leaf)) = queue.take() {
                            let result = encode_column(&mut writer, &leaf);
                            if done_tx.send((column, writer, result)).is_err() {
                                return;
                            }
                        }
                    })
                    .ok()
            })
            .collect();
        EncoderPool {
            queue,
            done,
            helpers,
        }
    }

    /// Writes one batch's leaf columns into their writers (one leaf per writer, in order).
    fn write(
        &self,
        writers: &mut Vec<ArrowColumnWriter>,
        leaves: Vec<ArrowLeafColumn>,
    ) -> std::result::Result<(), ParquetError> {
        debug_assert_eq!(writers.len(), leaves.len(), "one writer per leaf column");
        if self.helpers.is_empty() || writers.len() <= 1 {
            let mut result = Ok(());
            for (writer, leaf) in writers.iter_mut().zip(&leaves) {
                result = result.and(encode_column(writer, leaf));
            }
            return result;
        }
        let count = writers.len();
        {
            let mut state = self.queue.lock();
            state.0.extend(
                std::mem::take(writers)
                    .into_iter()
                    .zip(leaves)
                    .enumerate()
                    .map(|(column, (writer, leaf))| (column, writer, leaf)),
            );
        }
        self.queue.ready.notify_all();
        let mut slots: Vec<Option<ArrowColumnWriter>> = (0..count).map(|_| None).collect();
        let mut result = Ok(());
        let mut finished = 0;
        while let Some((column, mut writer, leaf)) = self.queue.try_take() {
            result = result.and(encode_column(&mut writer, &leaf));
            slots[column] = Some(writer);
            finished += 1;
        }
        while finished < count {
            let Ok((column, writer, written)) = self.done.recv() else {
                return Err(ParquetError::General("the encoder threads stopped".into()));
            };
            result = result.and(written);
            slots[column] = Some(writer);
            finished += 1;
        }
        *writers = slots
            .into_iter()
            .map(|w| w.expect("every column came back"))
            .collect();
        result
    }
}

impl Drop for EncoderPool {
    fn drop(&mut self) {
        self.queue.lock().1 = true;
        self.queue.ready.notify_all();
        for helper in self.helpers.drain(..) {
            let _ = helper.join();
        }
    }
}
