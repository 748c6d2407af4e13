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
//! file. Rows are counted as the file will hold them: a failed attempt's row groups are
//! left out of their file as soon as it fails, so the file being filled goes on to the
//! limit with the rows that stay.
//!
//! Encoding and compressing is the most expensive stage of a run (docs/performance.md),
//! so columns are encoded on several threads at once (the merger's own and
//! `encoder_threads - 1` helpers started with it, see [`EncoderPool`]), and the merger
//! does not wait for a batch's columns before it takes the next batch: each column
//! writer has its own queue, and only closing a row group waits for them. Every column
//! writer still receives the same values in the same order, and row groups are cut by
//! rows and Arrow bytes given, not by what was encoded yet, so the file does not depend
//! on the number of threads.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, RecordBatch, StringArray, new_null_array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::arrow_writer::{
    ArrowColumnChunk, ArrowColumnWriter, ArrowLeafColumn, compute_leaves,
};
use parquet::errors::ParquetError;
use parquet::file::properties::WriterProperties;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use crate::config::{Split, part_path};
use crate::error::{Error, Result};
use crate::sink::{
    DictionaryProbe, OutputSummary, ParquetSink, TempFile, commit_parts, file_properties,
};
use crate::types::{self, describe_field};

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
    lanes: Vec<Arc<Lane>>,
    rows: u64,
    /// The Arrow data of the rows given to the group, which decides when it is closed
    /// ([`ROW_GROUP_BYTES`]): known when a batch is queued, so the same rows make the
    /// same groups whatever the encoder threads have written by then.
    bytes: usize,
    /// The leaf columns written without a dictionary ([`DictionaryProbe`]).
    plain: Vec<bool>,
}

impl Encoder {
    /// What the column writers hold, as of their last finished batch.
    fn memory(&self) -> usize {
        self.lanes.iter().map(|lane| lane.lock().memory).sum()
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
    /// Files of a split output that are complete but for their footer.
    parts: Vec<ParquetSink>,
    pool: EncoderPool,
    dictionary: DictionaryProbe,
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
            parts: Vec::new(),
            pool: EncoderPool::new(settings.encoder_threads),
            dictionary: DictionaryProbe::default(),
            timings: Timings::default(),
            settings,
        }
    }

    fn run(mut self, mut rx: mpsc::UnboundedReceiver<Event>) -> Result<Option<OutputSummary>> {
        // Events that came between Describing and Described.
        let mut held: Option<VecDeque<Event>> = None;
        loop {
            let started = Instant::now();
            let Some(event) = rx.blocking_recv() else {
                break;
            };
            self.timings.waiting += started.elapsed();
            match (event, &mut held) {
                (Event::Describing, _) => held = Some(VecDeque::new()),
                (Event::Described { schemas }, _) => {
                    for (task, schema) in &schemas {
                        self.observe(*task, schema)?;
                    }
                    for event in held.take().into_iter().flatten() {
                        if let Some(summary) = self.handle(event)? {
                            return Ok(Some(summary));
                        }
                    }
                }
                (event, Some(queue)) => queue.push_back(event),
                (event, None) => {
                    if let Some(summary) = self.handle(event)? {
                        return Ok(Some(summary));
                    }
                }
            }
        }
        Ok(None)
    }

    /// Acts on one event; returns the output's summary once it is committed.
    fn handle(&mut self, event: Event) -> Result<Option<OutputSummary>> {
        match event {
            Event::Schema { task, schema } => self.observe(task, &schema)?,
            Event::Batch {
                task,
                batch,
                permit,
            } => {
                self.observe(task, &batch.schema())?;
                self.encode(task, batch, &Arc::new(permit))?;
            }
            Event::Done { task } => self.flush(task)?,
            Event::Failed { task } => {
                if let Some(encoder) = self.encoders.remove(&task) {
                    self.pool.abandon(&encoder.lanes);
                }
                // Its groups are left out of their files now, so that a split output
                // fills the current file by the rows it will hold.
                for (part, group) in self.task_groups.remove(&task).into_iter().flatten() {
                    let sink = match self.parts.get_mut(part) {
                        Some(sink) => Some(sink),
                        None => self.sink.as_mut(),
                    };
                    if let Some(sink) = sink {
                        sink.exclude(group);
                    }
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
                    return sink.commit(metadata).map(Some);
                }
                self.parts.push(sink);
                return self.commit_split(metadata).map(Some);
            }
            // The hold around the describe step is `run`'s.
            Event::Describing | Event::Described { .. } => {}
        }
        Ok(None)
    }

    fn commit_split(&mut self, metadata: Vec<(String, String)>) -> Result<OutputSummary> {
        let parts = std::mem::take(&mut self.parts);
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

    fn encode(&mut self, task: usize, mut batch: RecordBatch, hold: &Hold) -> Result<()> {
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
            self.encode_group(task, batch.slice(0, room), hold)?;
            self.close_file()?;
            batch = tail;
        }
        self.encode_group(task, batch, hold)
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
    fn encode_group(&mut self, task: usize, mut batch: RecordBatch, hold: &Hold) -> Result<()> {
        let size = self.settings.row_group_size;
        loop {
            let in_group = self.encoders.get(&task).map_or(0, |e| e.rows as usize);
            let room = size.saturating_sub(in_group).max(1);
            if batch.num_rows() <= room {
                return self.encode_rows(task, batch, hold);
            }
            let tail = batch.slice(room, batch.num_rows() - room);
            self.encode_rows(task, batch.slice(0, room), hold)?;
            batch = tail;
        }
    }

    fn encode_rows(&mut self, task: usize, batch: RecordBatch, hold: &Hold) -> Result<()> {
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
            std::collections::hash_map::Entry::Vacant(v) => {
                let plain = self.dictionary.plain();
                v.insert(Encoder {
                    lanes: sink
                        .column_writers(&plain)?
                        .into_iter()
                        .map(Lane::new)
                        .collect(),
                    rows: 0,
                    bytes: 0,
                    plain,
                })
            }
        };
        let path = sink.path_hint();
        let err = |e: ParquetError| Error::output(&path, e);
        let started = Instant::now();
        let mut leaves = Vec::with_capacity(encoder.lanes.len());
        for (field, column) in schema.fields().iter().zip(batch.columns()) {
            leaves.extend(compute_leaves(field, column).map_err(err)?);
            encoder.bytes += column.to_data().get_slice_memory_size().unwrap_or(0);
        }
        self.pool.write(&encoder.lanes, leaves, hold).map_err(err)?;
        self.timings.encoding += started.elapsed();
        encoder.rows += batch.num_rows() as u64;
        if encoder.rows >= self.settings.row_group_size as u64 || encoder.bytes >= ROW_GROUP_BYTES {
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
        let chunks = self
            .pool
            .close(encoder.lanes)
            .map_err(|e| Error::output(&path, e))?;
        let index = sink.append(chunks, encoder.rows)?;
        self.dictionary
            .closed(&sink.closed_columns(index, &encoder.plain));
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

/// A batch's share of the channel budget, released once every column of the batch is
/// written (each column's job holds a reference).
type Hold = Arc<OwnedSemaphorePermit>;

/// One column of one row group in progress: its writer and the values queued for it.
/// One thread at a time runs a lane, writing its queue in order, so a writer sees its
/// column's values in batch order whichever thread runs it.
#[derive(Default)]
struct Lane {
    state: Mutex<LaneState>,
}

#[derive(Default)]
struct LaneState {
    /// `None` while a thread writes with it, and once it is closed.
    writer: Option<ArrowColumnWriter>,
    jobs: VecDeque<LaneJob>,
    /// In the pool's run queue, or being run: set by whoever queues a job on an idle
    /// lane, cleared by the thread that finds the lane's queue empty.
    scheduled: bool,
    /// The writer's buffered bytes after its last job (for [`ENCODER_BUDGET`]).
    memory: usize,
    /// The first error; the jobs after it are dropped.
    error: Option<ParquetError>,
    /// The column chunk, once closed.
    chunk: Option<ArrowColumnChunk>,
}

enum LaneJob {
    Write(ArrowLeafColumn, Hold),
    Close,
}

impl Lane {
    fn new(writer: ArrowColumnWriter) -> Arc<Lane> {
        Arc::new(Lane {
            state: Mutex::new(LaneState {
                writer: Some(writer),
                ..LaneState::default()
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, LaneState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Threads that encode columns beside the merger's own thread, started once per run (a
/// thread per batch cost a spawn, a stack and its page faults every 8192 rows).
///
/// Every column of a row group in progress is a [`Lane`]. A batch's columns are queued
/// on their lanes and the merger goes on to the next batch without waiting for them:
/// a column that takes long (a long text column whose page is being compressed) holds
/// up only its own lane, while the other threads write the next batch's other columns.
/// The merger's thread runs lanes too whenever some are waiting, and a row group waits
/// for its lanes only when it is closed, which is shared out the same way. A writer only
/// ever sees its own column's values, in batch order, so the file is the same whatever
/// the number of threads.
struct EncoderPool {
    shared: Arc<PoolShared>,
    helpers: Vec<std::thread::JoinHandle<()>>,
}

#[derive(Default)]
struct PoolShared {
    state: Mutex<PoolState>,
    /// Signalled when a lane is queued or the pool closes: the helpers wait on it.
    runnable: Condvar,
    /// Signalled when a lane runs out of jobs: the merger waits on it to close a group.
    settled: Condvar,
}

#[derive(Default)]
struct PoolState {
    /// Lanes with jobs that no thread is running yet.
    queue: VecDeque<Arc<Lane>>,
    closing: bool,
    /// How many times a lane ran out of jobs, so that a waiter misses none.
    settled: u64,
    /// Helpers asleep waiting for lanes, and whether the merger is asleep waiting for a
    /// group's lanes to settle: a wake-up is a system call, made only for a sleeper.
    sleeping_helpers: usize,
    closer_waiting: bool,
}

impl PoolShared {
    fn lock(&self) -> MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues jobs on their lanes, and the lanes that were idle on the pool.
    fn push<'a>(&self, jobs: impl Iterator<Item = (&'a Arc<Lane>, LaneJob)>) {
        let mut idle = Vec::new();
        for (lane, job) in jobs {
            let mut state = lane.lock();
            state.jobs.push_back(job);
            if !std::mem::replace(&mut state.scheduled, true) {
                idle.push(lane.clone());
            }
        }
        if idle.is_empty() {
            return;
        }
        let mut state = self.lock();
        let wake = state.sleeping_helpers.min(idle.len());
        state.queue.extend(idle);
        drop(state);
        match wake {
            0 => {}
            1 => self.runnable.notify_one(),
            _ => self.runnable.notify_all(),
        }
    }

    fn try_take(&self) -> Option<Arc<Lane>> {
        self.lock().queue.pop_front()
    }

    /// The next lane with jobs, waiting for one; `None` once the pool closes.
    fn take(&self) -> Option<Arc<Lane>> {
        let mut state = self.lock();
        loop {
            if let Some(lane) = state.queue.pop_front() {
                return Some(lane);
            }
            if state.closing {
                return None;
            }
            state.sleeping_helpers += 1;
            state = self.runnable.wait(state).unwrap_or_else(|e| e.into_inner());
            state.sleeping_helpers -= 1;
        }
    }

    /// Runs the lane's jobs until its queue is empty.
    fn run(&self, lane: &Lane) {
        loop {
            let (job, writer) = {
                let mut state = lane.lock();
                match state.jobs.pop_front() {
                    Some(job) if state.error.is_none() => (job, state.writer.take()),
                    _ => {
                        state.jobs.clear();
                        state.scheduled = false;
                        break;
                    }
                }
            };
            let Some(mut writer) = writer else {
                lane.lock().error = Some(ParquetError::General(
                    "a column was written after its row group was closed".into(),
                ));
                continue;
            };
            match job {
                LaneJob::Write(leaf, hold) => {
                    let written = unpanicked(|| writer.write(&leaf));
                    drop((leaf, hold));
                    let mut state = lane.lock();
                    state.memory = writer.memory_size();
                    state.writer = Some(writer);
                    if let Err(e) = written {
                        state.error = Some(e);
                    }
                }
                LaneJob::Close => {
                    let closed = unpanicked(|| writer.close());
                    let mut state = lane.lock();
                    match closed {
                        Ok(chunk) => state.chunk = Some(chunk),
                        Err(e) => state.error = Some(e),
                    }
                }
            }
        }
        let mut state = self.lock();
        state.settled += 1;
        if state.closer_waiting {
            self.settled.notify_all();
        }
    }
}

/// Calls a column writer, turning a panic in it into an error: a helper thread that
/// died would leave its lane scheduled, and closing the row group waiting for ever.
fn unpanicked<T>(
    call: impl FnOnce() -> std::result::Result<T, ParquetError>,
) -> std::result::Result<T, ParquetError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(call))
        .unwrap_or_else(|_| Err(ParquetError::General("a column writer panicked".into())))
}

impl EncoderPool {
    /// A pool of `threads` in all: the caller's thread and `threads - 1` helpers.
    fn new(threads: usize) -> EncoderPool {
        let shared = Arc::new(PoolShared::default());
        let helpers = (1..threads.max(1))
            .filter_map(|i| {
                let shared = shared.clone();
                std::thread::Builder::new()
                    .name(format!("tributary-encoder-{i}"))
                    .spawn(move || {
                        while let Some(lane) = shared.take() {
                            shared.run(&lane);
                        }
                    })
                    .ok()
            })
            .collect();
        EncoderPool { shared, helpers }
    }

    /// Queues one batch's leaf columns on their lanes (one leaf per lane, in order) and
    /// runs waiting lanes on this thread until none is left. Reports an error a lane
    /// met with an earlier batch.
    fn write(
        &self,
        lanes: &[Arc<Lane>],
        leaves: Vec<ArrowLeafColumn>,
        hold: &Hold,
    ) -> std::result::Result<(), ParquetError> {
        debug_assert_eq!(lanes.len(), leaves.len(), "one lane per leaf column");
        for lane in lanes {
            if let Some(e) = lane.lock().error.take() {
                return Err(e);
            }
        }
        self.shared.push(
            lanes
                .iter()
                .zip(leaves)
                .map(|(lane, leaf)| (lane, LaneJob::Write(leaf, hold.clone()))),
        );
        while let Some(lane) = self.shared.try_take() {
            self.shared.run(&lane);
        }
        Ok(())
    }

    /// Closes a row group's lanes once their queued values are written, and returns the
    /// column chunks in order.
    fn close(
        &self,
        lanes: Vec<Arc<Lane>>,
    ) -> std::result::Result<Vec<ArrowColumnChunk>, ParquetError> {
        self.shared
            .push(lanes.iter().map(|lane| (lane, LaneJob::Close)));
        loop {
            let seen = self.shared.lock().settled;
            if lanes.iter().all(|lane| !lane.lock().scheduled) {
                break;
            }
            if let Some(lane) = self.shared.try_take() {
                self.shared.run(&lane);
                continue;
            }
            let mut state = self.shared.lock();
            state.closer_waiting = true;
            while state.settled == seen && state.queue.is_empty() {
                state = self
                    .shared
                    .settled
                    .wait(state)
                    .unwrap_or_else(|e| e.into_inner());
            }
            state.closer_waiting = false;
        }
        lanes
            .iter()
            .map(|lane| {
                let mut state = lane.lock();
                match state.error.take() {
                    Some(e) => Err(e),
                    None => state.chunk.take().ok_or_else(|| {
                        ParquetError::General("a column writer was lost before closing".into())
                    }),
                }
            })
            .collect()
    }

    /// Drops the values queued on a failed task's lanes; a column being written finishes
    /// and its writer is dropped with the lane.
    fn abandon(&self, lanes: &[Arc<Lane>]) {
        for lane in lanes {
            lane.lock().jobs.clear();
        }
    }
}

impl Drop for EncoderPool {
    fn drop(&mut self) {
        self.shared.lock().closing = true;
        self.shared.runnable.notify_all();
        for helper in self.helpers.drain(..) {
            let _ = helper.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use parquet::arrow::ArrowWriter;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    const PERMITS: usize = 1000;

    /// Writes `batches` as one row group through a pool of `threads`, and returns the
    /// file's bytes and the budget the writes held.
    fn write_group(
        threads: usize,
        batches: &[RecordBatch],
    ) -> (std::result::Result<Vec<u8>, ParquetError>, Arc<Semaphore>) {
        let schema = batches[0].schema();
        let (mut file, factory) = ArrowWriter::try_new(Vec::new(), schema.clone(), None)
            .and_then(|w| w.into_serialized_writer())
            .unwrap();
        let pool = EncoderPool::new(threads);
        let lanes: Vec<_> = factory
            .create_column_writers(0)
            .unwrap()
            .into_iter()
            .map(Lane::new)
            .collect();
        let budget = Arc::new(Semaphore::new(PERMITS));
        let written = (|| {
            for batch in batches {
                let hold = Arc::new(budget.clone().try_acquire_owned().unwrap());
                let mut leaves = Vec::new();
                for (field, column) in schema.fields().iter().zip(batch.columns()) {
                    leaves.extend(compute_leaves(field, column)?);
                }
                pool.write(&lanes, leaves, &hold)?;
            }
            let chunks = pool.close(lanes)?;
            let mut group = file.next_row_group()?;
            for chunk in chunks {
                chunk.append_to_row_group(&mut group)?;
            }
            group.close()?;
            file.into_inner()
        })();
        (written, budget)
    }

    fn batch(schema: &SchemaRef, from: i64) -> RecordBatch {
        let ids: Vec<i64> = (from..from + 1000).collect();
        let names: Vec<String> = ids.iter().map(|i| format!("row {i}")).collect();
        RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(ids)),
                Arc::new(StringArray::from(names)),
            ],
        )
        .unwrap()
    }

    #[test]
    fn lanes_write_each_column_in_batch_order_and_release_the_budget() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
        ]));
        let batches: Vec<RecordBatch> = (0..40).map(|i| batch(&schema, i * 1000)).collect();
        for threads in [1, 2, 4] {
            let (file, budget) = write_group(threads, &batches);
            let file = bytes::Bytes::from(file.unwrap());
            let read: Vec<RecordBatch> = ParquetRecordBatchReaderBuilder::try_new(file)
                .unwrap()
                .build()
                .unwrap()
                .collect::<std::result::Result<_, _>>()
                .unwrap();
            let read = arrow::compute::concat_batches(&schema, &read).unwrap();
            let all = arrow::compute::concat_batches(&schema, &batches).unwrap();
            assert_eq!(read, all, "{threads} encoder threads");
            assert_eq!(budget.available_permits(), PERMITS, "budget still held");
        }
    }

    #[test]
    fn a_column_that_cannot_be_written_fails_the_group_and_releases_the_budget() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
        ]));
        // Text in the `id` column: its writer rejects the values.
        let wrong = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, true),
            Field::new("name", DataType::Utf8, true),
        ]));
        let text = Arc::new(StringArray::from(vec!["a", "b"])) as ArrayRef;
        let bad = RecordBatch::try_new(wrong, vec![text.clone(), text]).unwrap();
        for threads in [1, 2] {
            let mut batches = vec![batch(&schema, 0)];
            batches.push(bad.clone());
            batches.extend((1..5).map(|i| batch(&schema, i * 1000)));
            let (file, budget) = write_group(threads, &batches);
            assert!(file.is_err(), "{threads} threads wrote a broken column");
            assert_eq!(budget.available_permits(), PERMITS, "budget still held");
        }
    }
}
