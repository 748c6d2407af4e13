//! The output kept in memory as Arrow record batches, for a caller in the same process
//! (the Python package's `read_sql`): the same merge, type renderings and final step as
//! a file, without encoding Parquet.
//!
//! Batches arrive already conformed to the output's schema ([`Sink::route`]); each is
//! kept with its task, so that a failed attempt's rows are dropped ([`Sink::discard`])
//! as a file leaves its row groups out. The commit hands the batches over through the
//! [`Collected`] the sink was made with.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use arrow::array::RecordBatch;
use arrow::datatypes::{Schema, SchemaRef};

use super::{EncodedRowGroup, OutputSummary, RowGroupId, RowGroupWriters, Sink};
use crate::error::{Error, Result};

/// What an in-memory output names itself in messages and the run's report.
pub const MEMORY: &str = "(memory)";

/// An output in memory: its schema (with the run's metadata) and its batches, in the order
/// they came.
pub type Batches = (SchemaRef, Vec<RecordBatch>);

/// The committed output of a [`MemorySink`]; empty until the sink commits.
#[derive(Clone, Default)]
pub struct Collected(Arc<Mutex<Option<Batches>>>);

impl Collected {
    /// The output, once committed (taken: a second call gives `None`).
    pub fn take(&self) -> Option<Batches> {
        self.0.lock().expect("never poisoned").take()
    }
}

/// An output held in memory (see the module's documentation).
pub struct MemorySink {
    schema: Option<SchemaRef>,
    /// Each batch with the task that sent it.
    batches: Vec<(usize, RecordBatch)>,
    collected: Collected,
}

impl MemorySink {
    /// A sink whose batches reach `collected` when it commits.
    pub fn new(collected: Collected) -> MemorySink {
        MemorySink {
            schema: None,
            batches: Vec::new(),
            collected,
        }
    }
}

impl Sink for MemorySink {
    fn path(&self) -> PathBuf {
        PathBuf::from(MEMORY)
    }

    fn schema(&self) -> Option<&SchemaRef> {
        self.schema.as_ref()
    }

    fn start(&mut self, schema: SchemaRef) -> Result<()> {
        self.schema = Some(schema);
        Ok(())
    }

    /// Keeps the batch: nothing is left to encode.
    fn route(&mut self, task: usize, batch: RecordBatch) -> Result<Vec<(usize, RecordBatch)>> {
        self.batches.push((task, batch));
        Ok(Vec::new())
    }

    fn discard(&mut self, task: usize) {
        self.batches.retain(|(t, _)| *t != task);
    }

    fn row_group_writers(&mut self, _dir: usize) -> Result<RowGroupWriters> {
        Err(Error::output(
            MEMORY,
            "an in-memory output encodes no row group",
        ))
    }

    fn append(&mut self, _dir: usize, _group: EncodedRowGroup) -> Result<RowGroupId> {
        Err(Error::output(
            MEMORY,
            "an in-memory output encodes no row group",
        ))
    }

    fn exclude(&mut self, _group: RowGroupId) {}

    fn file_rows(&self, _dir: usize) -> u64 {
        0
    }

    fn file_row_limit(&self) -> Option<u64> {
        None
    }

    fn end_file(&mut self, _dir: usize) {}

    /// Hands the batches over, the run's metadata on their schema.
    fn commit(self: Box<Self>, metadata: Vec<(String, String)>) -> Result<OutputSummary> {
        let MemorySink {
            schema,
            batches,
            collected,
        } = *self;
        let schema = schema.expect("the merger starts the sink before it commits");
        let mut kept = schema.metadata().clone();
        kept.extend(metadata);
        let schema = Arc::new(Schema::new_with_metadata(schema.fields().clone(), kept));
        let batches: Vec<RecordBatch> = batches
            .into_iter()
            .map(|(_, batch)| batch.with_schema(schema.clone()))
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| Error::output(MEMORY, e))?;
        let summary = OutputSummary {
            table_version: None,
            run_recorded: None,
            path: PathBuf::from(MEMORY),
            files: Vec::new(),
            manifest: None,
            rows: batches.iter().map(|b| b.num_rows() as u64).sum(),
            row_groups: 0,
            bytes: batches
                .iter()
                .map(|b| b.get_array_memory_size() as u64)
                .sum(),
            unreferenced_bytes: 0,
            remote: Vec::new(),
        };
        *collected.0.lock().expect("never poisoned") = Some((schema, batches));
        Ok(summary)
    }
}
