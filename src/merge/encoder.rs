//! The encoder lanes: threads that encode a row group's columns beside the merger's own
//! thread, each column written in batch order whichever thread runs it.
//!
//! A column's values must reach its writer in order, one thread at a time, and the merger
//! must be able to go on to the next batch without waiting for the last one's columns:
//! each column has a lane (its writer and a queue), and a lane with work is one job on a
//! rayon pool, which runs the lane's queue empty. A hand-made scheduler (a run queue under
//! a mutex, the merger's thread helping) measured no faster (docs/performance.md).

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use parquet::arrow::arrow_writer::{ArrowColumnChunk, ArrowColumnWriter, ArrowLeafColumn};
use parquet::errors::ParquetError;
use tokio::sync::OwnedSemaphorePermit;

/// A batch's share of the channel budget, released once every column of the batch is
/// written (each column's job holds a reference).
pub(super) type Hold = Arc<OwnedSemaphorePermit>;

/// One column of one row group in progress: its writer and the values queued for it.
/// One thread at a time runs a lane, writing its queue in order, so a writer sees its
/// column's values in batch order whichever thread runs it.
#[derive(Default)]
pub(super) struct Lane {
    state: Mutex<LaneState>,
}

#[derive(Default)]
struct LaneState {
    /// `None` while a thread writes with it, and once it is closed.
    writer: Option<ArrowColumnWriter>,
    jobs: VecDeque<LaneJob>,
    /// A job on the pool, waiting or running: set by whoever queues a job on an idle
    /// lane, cleared by the thread that finds the lane's queue empty.
    scheduled: bool,
    /// The writer's buffered bytes after its last job (for [`super::ENCODER_BUDGET`]).
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
    pub(super) fn new(writer: ArrowColumnWriter) -> Arc<Lane> {
        Arc::new(Lane {
            state: Mutex::new(LaneState {
                writer: Some(writer),
                ..LaneState::default()
            }),
        })
    }

    /// What the column's writer holds, as of its last finished job.
    pub(super) fn memory(&self) -> usize {
        self.lock().memory
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
/// A row group waits for its lanes only when it is closed. A writer only ever sees its
/// own column's values, in batch order, so the file is the same whatever the number of
/// threads.
pub(super) struct EncoderPool {
    pool: rayon::ThreadPool,
    shared: Arc<Outstanding>,
}

/// How many lanes are jobs on the pool, signalled when one runs out of work: to a merger
/// waiting to close a group, and to the pool's drop. A lane's job runs here, to count
/// itself out when done.
#[derive(Default)]
struct Outstanding {
    running: Mutex<usize>,
    changed: Condvar,
}

impl Outstanding {
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
        *self.lock() -= 1;
        self.changed.notify_all();
    }

    fn lock(&self) -> MutexGuard<'_, usize> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits, holding the lock, until `done` says so.
    fn wait_until(&self, mut done: impl FnMut(usize) -> bool) {
        let mut running = self.lock();
        while !done(*running) {
            running = self
                .changed
                .wait(running)
                .unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// Calls a column writer, turning a panic in it into an error: a lane left scheduled
/// would keep closing the row group waiting for ever (and a panic in a rayon job aborts).
fn unpanicked<T>(
    call: impl FnOnce() -> std::result::Result<T, ParquetError>,
) -> std::result::Result<T, ParquetError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(call))
        .unwrap_or_else(|_| Err(ParquetError::General("a column writer panicked".into())))
}

impl EncoderPool {
    /// A pool of `threads` encoding threads.
    pub(super) fn new(threads: usize) -> std::io::Result<EncoderPool> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .thread_name(|i| format!("tributary-encoder-{i}"))
            .build()
            .map_err(std::io::Error::other)?;
        Ok(EncoderPool {
            pool,
            shared: Arc::new(Outstanding::default()),
        })
    }

    /// Queues jobs on their lanes, and each lane that was idle as a job on the pool.
    fn push<'a>(&self, jobs: impl Iterator<Item = (&'a Arc<Lane>, LaneJob)>) {
        for (lane, job) in jobs {
            let mut state = lane.lock();
            state.jobs.push_back(job);
            if !std::mem::replace(&mut state.scheduled, true) {
                drop(state);
                *self.shared.lock() += 1;
                let lane = lane.clone();
                let shared = self.shared.clone();
                self.pool.spawn_fifo(move || shared.run(&lane));
            }
        }
    }

    /// Queues one batch's leaf columns on their lanes (one leaf per lane, in order).
    /// Reports an error a lane met with an earlier batch.
    pub(super) fn write(
        &self,
        lanes: &[Arc<Lane>],
        leaves: Vec<ArrowLeafColumn>,
        hold: &Hold,
    ) -> std::result::Result<(), ParquetError> {
        debug_assert_eq!(lanes.len(), leaves.len(), "one lane per leaf column");
        for lane in lanes {
            let failed = lane.lock().error.take();
            if let Some(e) = failed {
                // The group is lost: its queued values go now, with their share of the
                // budget (the pool's drop waits for a value being written).
                self.abandon(lanes);
                return Err(e);
            }
        }
        self.push(
            lanes
                .iter()
                .zip(leaves)
                .map(|(lane, leaf)| (lane, LaneJob::Write(leaf, hold.clone()))),
        );
        Ok(())
    }

    /// Closes a row group's lanes once their queued values are written, and returns the
    /// column chunks in order.
    pub(super) fn close(
        &self,
        lanes: Vec<Arc<Lane>>,
    ) -> std::result::Result<Vec<ArrowColumnChunk>, ParquetError> {
        self.push(lanes.iter().map(|lane| (lane, LaneJob::Close)));
        self.settle(&lanes);
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

    /// Waits until no thread runs or will run any of `lanes`. (A lane clears `scheduled`
    /// before it counts itself out, under the lock this waits with.)
    fn settle(&self, lanes: &[Arc<Lane>]) {
        self.shared
            .wait_until(|_| lanes.iter().all(|lane| !lane.lock().scheduled));
    }

    /// Drops the values queued on a failed task's lanes; a column being written finishes
    /// and its writer is dropped with the lane.
    pub(super) fn abandon(&self, lanes: &[Arc<Lane>]) {
        for lane in lanes {
            lane.lock().jobs.clear();
        }
    }
}

impl Drop for EncoderPool {
    /// Waits for the lanes still queued or running (a failed group's, being dropped), so
    /// that their share of the budget is back when the merger ends.
    fn drop(&mut self) {
        self.shared.wait_until(|running| running == 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
    use parquet::arrow::ArrowWriter;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::arrow::arrow_writer::compute_leaves;
    use tokio::sync::Semaphore;

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
        let pool = EncoderPool::new(threads).unwrap();
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
