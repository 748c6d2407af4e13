//! The output: where the merged row groups go, and how they are committed.
//!
//! The merger hands the sink row groups already encoded (see `merge`); the sink owns
//! everything about the files: preparing them before any query runs (the directory,
//! a locked temporary, stale temporaries removed, the Parquet writer properties),
//! appending row groups, leaving out the groups of failed task attempts, and the commit.
//! [`Sink`] is that seam; a local file (or a split set of them, [`FileSink`]) is one
//! kind, a Hive-partitioned dataset (`dataset`) another, an object in S3, GCS or Azure
//! Blob (staged locally, `object`) a third. The Python package's output, record batches
//! kept in memory (`memory`), fills the same steps without encoding Parquet.
//!
//! A local file is written to a temporary file beside the target, fsynced, and renamed
//! into place only when the run commits; the directory is fsynced after the rename. Until
//! then nothing exists at the target path and a file already there is untouched. Dropping
//! an uncommitted sink, [`ParquetFile`] or [`TempFile`] removes the temporary file
//! (`temp` has the locking that tells a live run's temporaries from a crashed one's).
//!
//! Row groups arrive already encoded, each holding the rows of one task, so a task that
//! fails after some of its row groups were written can be left out at commit by
//! rewriting the footer alone (`parquet`). A split output is several such files and a
//! manifest, the commit point (`split`).

mod dataset;
pub mod delta;
mod dictionary;
mod file;
mod gcs;
mod memory;
pub mod object;
mod parquet;
mod properties;
mod split;
mod temp;

use std::path::PathBuf;

use ::parquet::arrow::arrow_writer::{ArrowColumnChunk, ArrowColumnWriter};
use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;

use crate::config::JobConfig;
use crate::error::Result;

pub use dataset::{DEFAULT_PARTITION, DatasetSink, SUCCESS, hive_escape};
pub use dictionary::{
    ClosedColumn, DICTIONARY_PAGE_LIMIT, DICTIONARY_RETRY, DICTIONARY_RETRY_MAX, DictionaryProbe,
};
pub use file::FileSink;
pub use memory::{Batches, Collected, MEMORY, MemorySink};
pub use parquet::{ParquetFile, WRITEBACK_EVERY};
pub use properties::{file_properties, writer_properties};
pub use split::{Manifest, ManifestPart, PartitionColumn, commit_parts};
pub use temp::{TempFile, write_atomically};

/// Where a run's merged row groups go, from before the first query to the commit.
///
/// The lifecycle:
/// 1. [`open`] makes the sink before any query runs, so that an output that cannot be
///    written fails the run before a shard is asked for a row.
/// 2. [`Sink::start`] fixes the output's schema, once: when the first row group is
///    begun, or at the commit of a run that returned no rows.
/// 3. [`Sink::row_group_writers`] gives the column writers of each new row group (a
///    task's, see `merge`); the encoded group goes back through [`Sink::append`], which
///    names where it lies, so that [`Sink::exclude`] can leave it out when its task's
///    attempt fails. A split output moves on to its next file by itself (at a byte
///    limit) or when told ([`Sink::end_file`], at a row limit).
/// 4. [`Sink::commit`] writes the footers and the job's metadata and moves everything
///    into place; it is the only way output appears.
///
/// Dropping a sink that was not committed aborts it: its temporaries are removed and
/// nothing is left at the target.
///
/// Every sink but the in-memory one writes Parquet, so row groups travel as Parquet
/// column chunks; the in-memory sink keeps the batches [`Sink::route`] gives it, and a
/// sink for a table format fills the same steps.
pub trait Sink: Send {
    /// The path of the file row groups go to (the open one, or the one the next row
    /// group opens), for messages.
    fn path(&self) -> PathBuf;

    /// The output's schema, once [`Sink::start`] fixed it.
    fn schema(&self) -> Option<&SchemaRef>;

    /// Fixes the output's schema and opens the first file. Called once.
    fn start(&mut self, schema: SchemaRef) -> Result<()>;

    /// Cuts a batch of the output's schema (task `task`'s rows) by the directory its rows
    /// go to, giving each directory's rows in the files' columns. Only a dataset has
    /// directories (see `dataset`); every other sink has one, 0, and takes the batch as
    /// it is, but for an output in memory, which keeps it and leaves nothing to encode.
    fn route(&mut self, task: usize, batch: RecordBatch) -> Result<Vec<(usize, RecordBatch)>> {
        let _ = task;
        Ok(vec![(0, batch)])
    }

    /// Whether [`Sink::route`] cuts batches by directory (a dataset). The merger then
    /// gathers each directory's rows before encoding them, so that rows spread over many
    /// directories still make whole row groups, and few column writers are open at once.
    fn routes(&self) -> bool {
        false
    }

    /// Column writers for a new row group of directory `dir` (see [`Sink::route`]),
    /// opening the directory's next file if its last one was set aside.
    fn row_group_writers(&mut self, dir: usize) -> Result<RowGroupWriters>;

    /// Appends an encoded row group made with [`Sink::row_group_writers`] for the same
    /// `dir`; returns where it lies.
    fn append(&mut self, dir: usize, group: EncodedRowGroup) -> Result<RowGroupId>;

    /// Leaves a row group out of the output (its task's attempt failed).
    fn exclude(&mut self, group: RowGroupId);

    /// Drops the rows of task `task` that the sink keeps itself (its attempt failed):
    /// only an output in memory keeps any.
    fn discard(&mut self, task: usize) {
        let _ = task;
    }

    /// Rows the open file of `dir` will hold (0 when none is open): appended, not left
    /// out.
    fn file_rows(&self, dir: usize) -> u64;

    /// The most rows a file may hold (`None`: no limit).
    fn file_row_limit(&self) -> Option<u64>;

    /// Sets the open file of `dir` aside, complete but for its footer: the directory's
    /// next row group starts its next file. Does nothing when no file is open.
    fn end_file(&mut self, dir: usize);

    /// Writes the footers with `metadata` (Parquet key-value pairs), leaving out the
    /// excluded row groups, and moves the output into place.
    fn commit(self: Box<Self>, metadata: Vec<(String, String)>) -> Result<OutputSummary>;
}

/// Prepares the job's output before any query runs: for a local file, checks (and
/// creates) its directory, removes stale temporaries of earlier runs and creates this
/// run's locked temporary.
#[must_use = "dropping a sink removes its temporary files"]
pub fn open(config: &JobConfig) -> Result<Box<dyn Sink>> {
    if let Some(table) = &config.options.table {
        return Ok(Box::new(delta::DeltaSink::create(config, table)?));
    }
    match (&config.remote, &config.options.dataset) {
        (Some(remote), _) => Ok(Box::new(object::ObjectSink::create(config, remote)?)),
        (None, Some(dataset)) => Ok(Box::new(DatasetSink::create(config, dataset)?)),
        (None, None) => Ok(Box::new(FileSink::create(config)?)),
    }
}

/// The column writers of a new row group, and which leaf columns they write without a
/// dictionary ([`DictionaryProbe`]): the sink learns from how those fared when the group
/// is appended.
pub struct RowGroupWriters {
    pub columns: Vec<ArrowColumnWriter>,
    pub plain: Vec<bool>,
}

/// A closed row group: its column chunks in order, its rows, and the `plain` it was
/// begun with ([`RowGroupWriters`]).
pub struct EncodedRowGroup {
    pub chunks: Vec<ArrowColumnChunk>,
    pub rows: u64,
    pub plain: Vec<bool>,
}

/// Where an appended row group lies: the file (0 unless the output is split or a
/// dataset; numbered across all its directories) and its index in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowGroupId {
    pub file: usize,
    pub index: usize,
}

/// What was written.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OutputSummary {
    /// The output path (the first file's when the output is split); a remote output's
    /// URL.
    pub path: PathBuf,
    /// Every file written, in order (one unless the output is split).
    pub files: Vec<PathBuf>,
    /// The manifest listing the files of a split output; `None` for one file.
    pub manifest: Option<PathBuf>,
    pub rows: u64,
    pub row_groups: usize,
    /// The files' size on disk.
    pub bytes: u64,
    /// Bytes of row groups left out (written by task attempts that failed), which stay in
    /// the files unreferenced by their footers; included in `bytes`.
    pub unreferenced_bytes: u64,
    /// The table version a table output's commit made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table_version: Option<i64>,
    /// The table version that recorded a sliced run complete, when this slice's commit
    /// was the last of the run's slices.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_recorded: Option<i64>,
    /// The objects a remote output wrote (its parts, then its manifest), as uploaded.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub remote: Vec<RemoteObject>,
}

/// An object a remote output wrote: its URL, size, SHA-256 of the bytes sent and the
/// entity tag the store gave it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RemoteObject {
    pub url: String,
    pub bytes: u64,
    pub sha256: String,
    pub e_tag: Option<String>,
}
