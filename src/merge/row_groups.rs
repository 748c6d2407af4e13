//! Cutting the batches into row groups: each task fills its own group, closed at the
//! row-group size or [`ROW_GROUP_BYTES`], or when the groups in progress together pass
//! [`ENCODER_BUDGET`] (the largest first), or at a split output's row limit.

use std::sync::Arc;
use std::time::Instant;

use arrow::array::RecordBatch;
use parquet::arrow::arrow_writer::compute_leaves;
use parquet::errors::ParquetError;

use super::encoder::{Hold, Lane};
use super::schema::conform;
use super::{ENCODER_BUDGET, Merger, ROW_GROUP_BYTES};
use crate::error::{Error, Result};
use crate::sink::EncodedRowGroup;

/// One task's row group being encoded.
pub(super) struct GroupInProgress {
    /// One lane per leaf column, in order.
    pub(super) lanes: Vec<Arc<Lane>>,
    rows: u64,
    /// The Arrow data of the rows given to the group, which decides when it is closed
    /// ([`ROW_GROUP_BYTES`]): known when a batch is queued, so the same rows make the
    /// same groups whatever the encoder threads have written by then.
    bytes: usize,
    /// The leaf columns written without a dictionary (`sink::DictionaryProbe`), handed
    /// back to the sink with the closed group.
    plain: Vec<bool>,
}

impl GroupInProgress {
    /// What the column writers hold, as of their last finished batch.
    fn memory(&self) -> usize {
        self.lanes.iter().map(|lane| lane.memory()).sum()
    }
}

/// Arrow bytes of a dataset's rows that may wait to be encoded (see [`Pending`]); past
/// it, the stream holding the most is encoded.
pub(super) const PENDING_BUDGET: usize = 128 << 20;

/// A dataset's rows of one stream, waiting to make a row group: rows spread over many
/// directories would otherwise keep a group in progress, with a column writer for each
/// column, open in every directory at once.
#[derive(Default)]
pub(super) struct Pending {
    batches: Vec<RecordBatch>,
    rows: usize,
    bytes: usize,
}

/// A hold on nothing: for rows that already gave their channel budget back.
pub(super) fn no_hold() -> Hold {
    Arc::new(
        Arc::new(tokio::sync::Semaphore::new(1))
            .try_acquire_owned()
            .expect("a fresh semaphore has a permit"),
    )
}

/// Which group in progress rows go to: a task's, in one directory of the output (0
/// unless the output is a dataset, see `Sink::route`).
pub(super) type Stream = (usize, usize);

impl Merger {
    /// Encodes a task's batch: conforms it to the output's schema (fixing that schema
    /// with the first row), cuts it by the output's directories, and encodes each
    /// directory's rows (see [`Merger::encode_in`]).
    pub(super) fn encode(&mut self, task: usize, batch: RecordBatch, hold: &Hold) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let schema = match self.sink.schema() {
            Some(schema) => schema.clone(),
            None => {
                // The first row: the output's schema is fixed now.
                let schema = self.output_schema()?;
                self.sink.start(schema.clone())?;
                schema
            }
        };
        let shard = self
            .settings
            .shard_column
            .as_ref()
            .map(|_| self.settings.task_shards[task].as_str());
        let batch =
            conform(batch, &schema, shard).map_err(|e| Error::output(self.sink.path(), e))?;
        let routed = self.sink.route(task, batch)?;
        if !self.sink.routes() {
            for (dir, rows) in routed {
                self.encode_in((task, dir), rows, hold)?;
            }
            return Ok(());
        }
        // A dataset: each directory's rows wait until they make a row group (or the
        // rows waiting pass their budget), then are encoded and closed at once.
        for (dir, rows) in routed {
            let stream = (task, dir);
            let bytes = rows.get_array_memory_size();
            let pending = self.pending.entry(stream).or_default();
            pending.rows += rows.num_rows();
            pending.bytes += bytes;
            pending.batches.push(rows);
            self.pending_bytes += bytes;
            if pending.rows >= self.settings.row_group_size || pending.bytes >= ROW_GROUP_BYTES {
                self.encode_pending(stream)?;
            }
        }
        while self.pending_bytes > PENDING_BUDGET {
            let largest = self
                .pending
                .iter()
                .max_by_key(|(_, p)| p.bytes)
                .map(|(s, _)| *s);
            match largest {
                Some(stream) => self.encode_pending(stream)?,
                None => break,
            }
        }
        Ok(())
    }

    /// Encodes a dataset stream's waiting rows as row groups, all closed.
    fn encode_pending(&mut self, stream: Stream) -> Result<()> {
        let Some(pending) = self.pending.remove(&stream) else {
            return Ok(());
        };
        self.pending_bytes -= pending.bytes;
        let Some(first) = pending.batches.first() else {
            return Ok(());
        };
        let batch = arrow::compute::concat_batches(&first.schema(), &pending.batches)
            .map_err(|e| Error::output(self.sink.path(), e))?;
        drop(pending);
        self.encode_in(stream, batch, &no_hold())?;
        self.flush(stream)
    }

    /// Drops a failed task's waiting rows.
    pub(super) fn discard_pending(&mut self, task: usize) {
        let bytes = &mut self.pending_bytes;
        self.pending.retain(|(t, _), pending| {
            if *t == task {
                *bytes -= pending.bytes;
            }
            *t != task
        });
    }

    /// Encodes the waiting rows `which` picks, in a fixed order.
    fn encode_pending_where(&mut self, which: impl Fn(Stream) -> bool) -> Result<()> {
        for stream in sorted(self.pending.keys(), which) {
            self.encode_pending(stream)?;
        }
        Ok(())
    }

    /// Encodes rows of one directory. With a row limit per file, a batch that would pass
    /// it is cut, and the directory's file is closed (the directory's groups in progress
    /// flushed into it) at the limit exactly.
    fn encode_in(&mut self, stream: Stream, mut batch: RecordBatch, hold: &Hold) -> Result<()> {
        let dir = stream.1;
        while let Some(max) = self.sink.file_row_limit() {
            let in_file = self.sink.file_rows(dir)
                + self
                    .in_progress
                    .iter()
                    .filter(|((_, d), _)| *d == dir)
                    .map(|(_, g)| g.rows)
                    .sum::<u64>();
            let room = max.saturating_sub(in_file) as usize;
            if batch.num_rows() <= room {
                break;
            }
            let tail = batch.slice(room, batch.num_rows() - room);
            self.encode_group(stream, batch.slice(0, room), hold)?;
            self.flush_dir(dir)?;
            self.sink.end_file(dir);
            batch = tail;
        }
        self.encode_group(stream, batch, hold)
    }

    /// Encodes the batch into the stream's row groups, cutting it where a group reaches
    /// `row_group_size` rows: batches need not divide it (a source's batch can pass its
    /// batch size by part of a network read, or end early at its byte bound).
    fn encode_group(&mut self, stream: Stream, mut batch: RecordBatch, hold: &Hold) -> Result<()> {
        let size = self.settings.row_group_size;
        loop {
            let in_group = self.in_progress.get(&stream).map_or(0, |g| g.rows as usize);
            let room = size.saturating_sub(in_group).max(1);
            if batch.num_rows() <= room {
                return self.encode_rows(stream, batch, hold);
            }
            let tail = batch.slice(room, batch.num_rows() - room);
            self.encode_rows(stream, batch.slice(0, room), hold)?;
            batch = tail;
        }
    }

    /// Queues rows (conformed, in the files' columns) that fit the stream's group on its
    /// lanes, then closes groups that are full and, past the budget, the largest group
    /// in progress.
    fn encode_rows(&mut self, stream: Stream, batch: RecordBatch, hold: &Hold) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        if !self.in_progress.contains_key(&stream) {
            let writers = self.sink.row_group_writers(stream.1)?;
            self.in_progress.insert(
                stream,
                GroupInProgress {
                    lanes: writers.columns.into_iter().map(Lane::new).collect(),
                    rows: 0,
                    bytes: 0,
                    plain: writers.plain,
                },
            );
        }
        let group = self.in_progress.get_mut(&stream).expect("inserted above");
        let path = self.sink.path();
        let err = |e: ParquetError| Error::output(&path, e);
        let started = Instant::now();
        let mut leaves = Vec::with_capacity(group.lanes.len());
        for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
            leaves.extend(compute_leaves(field, column).map_err(err)?);
            group.bytes += column.to_data().get_slice_memory_size().unwrap_or(0);
        }
        self.pool.write(&group.lanes, leaves, hold).map_err(err)?;
        self.timings.encoding += started.elapsed();
        group.rows += batch.num_rows() as u64;
        if group.rows >= self.settings.row_group_size as u64 || group.bytes >= ROW_GROUP_BYTES {
            self.flush(stream)?;
        }
        let total: usize = self.in_progress.values().map(GroupInProgress::memory).sum();
        if total > ENCODER_BUDGET {
            let largest = self
                .in_progress
                .iter()
                .max_by_key(|(_, g)| g.memory())
                .map(|(s, _)| *s);
            if let Some(s) = largest {
                self.flush(s)?;
            }
        }
        Ok(())
    }

    /// Closes the stream's row group and appends it to the sink.
    pub(super) fn flush(&mut self, stream: Stream) -> Result<()> {
        let Some(group) = self.in_progress.remove(&stream) else {
            return Ok(());
        };
        if group.rows == 0 {
            return Ok(());
        }
        let started = Instant::now();
        let chunks = self
            .pool
            .close(group.lanes)
            .map_err(|e| Error::output(self.sink.path(), e))?;
        let id = self.sink.append(
            stream.1,
            EncodedRowGroup {
                chunks,
                rows: group.rows,
                plain: group.plain,
            },
        )?;
        self.written.entry(stream.0).or_default().push(id);
        self.timings.flushing += started.elapsed();
        Ok(())
    }

    /// Closes every group in progress of directory `dir`.
    fn flush_dir(&mut self, dir: usize) -> Result<()> {
        self.flush_where(|(_, d)| d == dir)
    }

    /// Encodes the waiting rows of `task` and closes every group in progress of it (it
    /// finished).
    pub(super) fn flush_task(&mut self, task: usize) -> Result<()> {
        self.encode_pending_where(|(t, _)| t == task)?;
        self.flush_where(|(t, _)| t == task)
    }

    /// Encodes every waiting row and closes every group in progress.
    pub(super) fn flush_all(&mut self) -> Result<()> {
        self.encode_pending_where(|_| true)?;
        self.flush_where(|_| true)
    }

    /// The streams with a group in progress that `which` picks, in a fixed order (so
    /// that the same rows make the same files).
    pub(super) fn streams(&self, which: impl Fn(Stream) -> bool) -> Vec<Stream> {
        sorted(self.in_progress.keys(), which)
    }

    fn flush_where(&mut self, which: impl Fn(Stream) -> bool) -> Result<()> {
        for stream in self.streams(which) {
            self.flush(stream)?;
        }
        Ok(())
    }
}

/// The streams `which` picks among `keys`, in order.
fn sorted<'a>(
    keys: impl Iterator<Item = &'a Stream>,
    which: impl Fn(Stream) -> bool,
) -> Vec<Stream> {
    let mut streams: Vec<Stream> = keys.copied().filter(|s| which(*s)).collect();
    streams.sort_unstable();
    streams
}
