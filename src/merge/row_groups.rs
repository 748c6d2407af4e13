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

impl Merger {
    /// Encodes a task's batch. With a row limit per file, a batch that would pass it is
    /// cut, and the file is closed (all tasks' groups in progress flushed into it) at the
    /// limit exactly.
    pub(super) fn encode(
        &mut self,
        task: usize,
        mut batch: RecordBatch,
        hold: &Hold,
    ) -> Result<()> {
        while let Some(max) = self.sink.file_row_limit() {
            let in_file =
                self.sink.file_rows() + self.in_progress.values().map(|g| g.rows).sum::<u64>();
            let room = max.saturating_sub(in_file) as usize;
            if batch.num_rows() <= room {
                break;
            }
            let tail = batch.slice(room, batch.num_rows() - room);
            self.encode_group(task, batch.slice(0, room), hold)?;
            self.flush_all()?;
            self.sink.end_file();
            batch = tail;
        }
        self.encode_group(task, batch, hold)
    }

    /// Encodes the batch into the task's row groups, cutting it where a group reaches
    /// `row_group_size` rows: batches need not divide it (a source's batch can pass its
    /// batch size by part of a network read, or end early at its byte bound).
    fn encode_group(&mut self, task: usize, mut batch: RecordBatch, hold: &Hold) -> Result<()> {
        let size = self.settings.row_group_size;
        loop {
            let in_group = self.in_progress.get(&task).map_or(0, |g| g.rows as usize);
            let room = size.saturating_sub(in_group).max(1);
            if batch.num_rows() <= room {
                return self.encode_rows(task, batch, hold);
            }
            let tail = batch.slice(room, batch.num_rows() - room);
            self.encode_rows(task, batch.slice(0, room), hold)?;
            batch = tail;
        }
    }

    /// Queues rows that fit the task's group on its lanes, then closes groups that are
    /// full and, past the budget, the largest group in progress.
    fn encode_rows(&mut self, task: usize, batch: RecordBatch, hold: &Hold) -> Result<()> {
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
        if !self.in_progress.contains_key(&task) {
            let writers = self.sink.row_group_writers()?;
            self.in_progress.insert(
                task,
                GroupInProgress {
                    lanes: writers.columns.into_iter().map(Lane::new).collect(),
                    rows: 0,
                    bytes: 0,
                    plain: writers.plain,
                },
            );
        }
        let group = self.in_progress.get_mut(&task).expect("inserted above");
        let path = self.sink.path();
        let err = |e: ParquetError| Error::output(&path, e);
        let started = Instant::now();
        let mut leaves = Vec::with_capacity(group.lanes.len());
        for (field, column) in schema.fields().iter().zip(batch.columns()) {
            leaves.extend(compute_leaves(field, column).map_err(err)?);
            group.bytes += column.to_data().get_slice_memory_size().unwrap_or(0);
        }
        self.pool.write(&group.lanes, leaves, hold).map_err(err)?;
        self.timings.encoding += started.elapsed();
        group.rows += batch.num_rows() as u64;
        if group.rows >= self.settings.row_group_size as u64 || group.bytes >= ROW_GROUP_BYTES {
            self.flush(task)?;
        }
        let total: usize = self.in_progress.values().map(GroupInProgress::memory).sum();
        if total > ENCODER_BUDGET {
            let largest = self
                .in_progress
                .iter()
                .max_by_key(|(_, g)| g.memory())
                .map(|(t, _)| *t);
            if let Some(t) = largest {
                self.flush(t)?;
            }
        }
        Ok(())
    }

    /// Closes the task's row group and appends it to the sink.
    pub(super) fn flush(&mut self, task: usize) -> Result<()> {
        let Some(group) = self.in_progress.remove(&task) else {
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
        let id = self.sink.append(EncodedRowGroup {
            chunks,
            rows: group.rows,
            plain: group.plain,
        })?;
        self.written.entry(task).or_default().push(id);
        self.timings.flushing += started.elapsed();
        Ok(())
    }

    /// Closes every group in progress.
    pub(super) fn flush_all(&mut self) -> Result<()> {
        let tasks: Vec<usize> = self.in_progress.keys().copied().collect();
        for task in tasks {
            self.flush(task)?;
        }
        Ok(())
    }
}
