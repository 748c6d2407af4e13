//! One Parquet file at its temporary path, receiving row groups that arrive already
//! encoded, and closed with a footer that may leave some of them out.
//!
//! Each row group holds the rows of one task, so a task that fails after some of its row
//! groups were written can be left out at commit. Leaving them out costs nothing: the
//! footer is written again listing only the kept row groups (with their page indexes),
//! and the left-out groups' bytes stay in the file, unreferenced. Readers follow the
//! footer's offsets, so such a file is valid Parquet to every reader; the summary reports
//! the unreferenced bytes.

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::PathBuf;

use arrow::datatypes::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_writer::{
    ArrowColumnChunk, ArrowColumnWriter, ArrowRowGroupWriterFactory,
};
use parquet::file::metadata::{
    FileMetaData, KeyValue, ParquetMetaData, ParquetMetaDataBuilder, ParquetMetaDataWriter,
};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::{SerializedFileWriter, TrackedWrite};
use parquet::schema::types::SchemaDescriptor;

use super::OutputSummary;
use super::dictionary::{ClosedColumn, dictionary_abandoned};
use super::temp::TempFile;
use crate::error::{Error, Result};

/// An open Parquet file receiving encoded row groups.
#[must_use = "a file removes its temporary unless committed"]
pub struct ParquetFile {
    temp: TempFile,
    writer: SerializedFileWriter<File>,
    writeback: Writeback,
    factory: ArrowRowGroupWriterFactory,
    schema: SchemaRef,
    props: WriterProperties,
    row_group_rows: Vec<u64>,
    /// Row groups to leave out at commit (written by task attempts that failed).
    excluded: Vec<bool>,
}

impl ParquetFile {
    pub fn new(
        mut temp: TempFile,
        schema: SchemaRef,
        props: WriterProperties,
    ) -> Result<ParquetFile> {
        let target = temp.target.clone();
        let file = temp.handle().map_err(|e| Error::output(&target, e))?;
        let writeback = Writeback::start(&file);
        let (writer, factory) = ArrowWriter::try_new(file, schema.clone(), Some(props.clone()))
            .and_then(|w| w.into_serialized_writer())
            .map_err(|e| Error::output(&target, e))?;
        Ok(ParquetFile {
            temp,
            writer,
            writeback,
            factory,
            schema,
            props,
            row_group_rows: Vec::new(),
            excluded: Vec::new(),
        })
    }

    /// The file's handle (for reading back what was written).
    pub(super) fn handle(&self) -> &File {
        self.temp
            .open_handle()
            .expect("an open file's handle is open")
    }

    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The output path, for messages.
    pub fn path_hint(&self) -> PathBuf {
        self.temp.target.clone()
    }

    /// Rows in the row groups appended so far and not left out: the rows the file will
    /// hold (a split output fills a file by these).
    pub fn rows(&self) -> u64 {
        kept_rows(&self.row_group_rows, &self.excluded)
    }

    /// Leaves row group `index` out of the file (its task's attempt failed).
    pub fn exclude(&mut self, index: usize) {
        if let Some(excluded) = self.excluded.get_mut(index) {
            *excluded = true;
        }
    }

    /// Bytes written to the file so far.
    pub fn bytes_written(&self) -> u64 {
        self.writer.bytes_written() as u64
    }

    /// Column writers for a new row group; the leaf columns marked in `plain` are
    /// written without a dictionary (see [`DictionaryProbe`](super::DictionaryProbe)).
    pub fn column_writers(&self, plain: &[bool]) -> Result<Vec<ArrowColumnWriter>> {
        let err = |e| Error::output(&self.temp.target, e);
        if !plain.contains(&true) {
            return self
                .factory
                .create_column_writers(self.row_group_rows.len())
                .map_err(err);
        }
        column_writers(self.writer.schema_descr(), &self.props, &self.schema, plain).map_err(err)
    }

    /// Each leaf column of row group `index`, which was written with `plain` (see
    /// [`DictionaryProbe`](super::DictionaryProbe)).
    pub fn closed_columns(&self, index: usize, plain: &[bool]) -> Vec<ClosedColumn> {
        let Some(group) = self.writer.flushed_row_groups().get(index) else {
            return Vec::new();
        };
        let rows = group.num_rows().max(1) as f64;
        group
            .columns()
            .iter()
            .enumerate()
            .map(|(i, column)| ClosedColumn {
                plain: plain.get(i).copied().unwrap_or(false),
                abandoned: dictionary_abandoned(column),
                bytes_per_row: column.compressed_size() as f64 / rows,
            })
            .collect()
    }

    /// Appends an encoded row group; returns its index.
    pub fn append(&mut self, chunks: Vec<ArrowColumnChunk>, rows: u64) -> Result<usize> {
        let target = self.temp.target.clone();
        let err = |e| Error::output(&target, e);
        let mut group = self.writer.next_row_group().map_err(err)?;
        for chunk in chunks {
            chunk.append_to_row_group(&mut group).map_err(err)?;
        }
        group.close().map_err(err)?;
        self.writeback.written(self.writer.bytes_written());
        self.row_group_rows.push(rows);
        self.excluded.push(false);
        Ok(self.row_group_rows.len() - 1)
    }

    /// Writes the footer with `metadata`, leaving out the excluded row groups, and moves
    /// the file into place.
    pub fn commit(self, metadata: Vec<(String, String)>) -> Result<OutputSummary> {
        let closed = self.close(&metadata)?;
        let target = closed.temp.target.clone();
        let (rows, row_groups, unreferenced_bytes) =
            (closed.rows, closed.row_groups, closed.unreferenced_bytes);
        closed.temp.persist()?;
        let bytes = std::fs::metadata(&target).map(|m| m.len()).unwrap_or(0);
        Ok(OutputSummary {
            table_version: None,
            run_recorded: None,
            files: vec![target.clone()],
            path: target,
            manifest: None,
            rows,
            row_groups,
            bytes,
            unreferenced_bytes,
            remote: Vec::new(),
        })
    }

    /// Writes the footer with `metadata`, leaving out the excluded row groups; the file
    /// stays a temporary.
    ///
    /// With row groups to leave out, the complete footer is written first (the writer
    /// gives its page indexes only then), and the file is cut back to the end of the last
    /// row group and given a footer that lists only the kept ones, with their column and
    /// offset indexes written again. Nothing is re-encoded: a retried task costs its own
    /// rows only, as dead bytes in the file.
    pub(super) fn close(mut self, metadata: &[(String, String)]) -> Result<Closed> {
        let target = self.temp.target.clone();
        let err = |e: parquet::errors::ParquetError| Error::output(&target, e);
        for (key, value) in metadata {
            self.writer
                .append_key_value_metadata(KeyValue::new(key.clone(), value.clone()));
        }
        // The end of the last row group (and of its bloom filters, written after it).
        let data_end = self.writer.bytes_written() as u64;
        let row_groups = self.excluded.iter().filter(|e| !**e).count();
        let rows = self.rows();
        let written = self.writer.close().map_err(err)?;
        self.writeback
            .finish()
            .map_err(|e| Error::output(&target, e))?;
        let unreferenced_bytes = excluded_bytes(&written, &self.excluded);
        if self.excluded.contains(&true) {
            let kept = without_row_groups(written, &self.excluded).map_err(err)?;
            let file = self.temp.file().map_err(|e| Error::output(&target, e))?;
            rewrite_footer(file, data_end, &kept).map_err(err)?;
        }
        Ok(Closed {
            temp: self.temp,
            rows,
            row_groups,
            unreferenced_bytes,
        })
    }
}

/// Column writers for a row group of files of `schema` (whose Parquet schema is
/// `descr`) written with `props`, the leaf columns marked in `plain` without a
/// dictionary. They need no file: a row group can be begun before its file is opened.
pub(super) fn column_writers(
    descr: &SchemaDescriptor,
    props: &WriterProperties,
    schema: &SchemaRef,
    plain: &[bool],
) -> parquet::errors::Result<Vec<ArrowColumnWriter>> {
    let mut builder = props.clone().into_builder();
    for (column, _) in descr.columns().iter().zip(plain).filter(|(_, p)| **p) {
        builder = builder.set_column_dictionary_enabled(column.path().clone(), false);
    }
    // A file's writer factory builds its writers with the file's properties; a row group
    // with other per-column settings, or one begun without its file, takes them from
    // the function the factory replaced, which builds the same writers (tributary
    // writes no encrypted files).
    #[allow(deprecated)]
    parquet::arrow::arrow_writer::get_column_writers(
        descr,
        &std::sync::Arc::new(builder.build()),
        schema,
    )
}

/// A file closed before the commit (a dataset keeps few files open, see `dataset`): its
/// footer lists every row group, and the commit writes it again with the job's metadata
/// and without the row groups left out since.
pub(super) struct Parked {
    temp: TempFile,
    /// Where the row groups end and the first footer begins.
    data_end: u64,
    metadata: ParquetMetaData,
    row_group_rows: Vec<u64>,
    excluded: Vec<bool>,
}

impl ParquetFile {
    /// Closes the file before the commit, releasing its writer, its writeback thread and
    /// every handle on it, its lock's too (see [`TempFile::close_handle`]: only for a
    /// file in a dataset's staging directory); [`Parked::close`] finishes it.
    pub(super) fn park(mut self) -> Result<Parked> {
        let target = self.temp.target.clone();
        let data_end = self.writer.bytes_written() as u64;
        let metadata = self.writer.close().map_err(|e| Error::output(&target, e))?;
        self.writeback
            .finish()
            .map_err(|e| Error::output(&target, e))?;
        self.temp.close_handle();
        Ok(Parked {
            temp: self.temp,
            data_end,
            metadata,
            row_group_rows: self.row_group_rows,
            excluded: self.excluded,
        })
    }
}

impl Parked {
    /// Rows the file will hold (see [`ParquetFile::rows`]).
    pub(super) fn rows(&self) -> u64 {
        kept_rows(&self.row_group_rows, &self.excluded)
    }

    /// Leaves row group `index` out of the file (its task's attempt failed).
    pub(super) fn exclude(&mut self, index: usize) {
        if let Some(excluded) = self.excluded.get_mut(index) {
            *excluded = true;
        }
    }

    /// Writes the footer again with `metadata` added to the file's key-value pairs and
    /// without the excluded row groups; the file stays a temporary.
    pub(super) fn close(self, metadata: &[(String, String)]) -> Result<Closed> {
        let target = self.temp.target.clone();
        let err = |e: parquet::errors::ParquetError| Error::output(&target, e);
        let rows = self.rows();
        let row_groups = self.excluded.iter().filter(|e| !**e).count();
        let unreferenced_bytes = excluded_bytes(&self.metadata, &self.excluded);
        let with_metadata = with_key_values(self.metadata, metadata);
        let kept = without_row_groups(with_metadata, &self.excluded).map_err(err)?;
        let mut temp = self.temp;
        let file = temp.file().map_err(|e| Error::output(&target, e))?;
        rewrite_footer(file, self.data_end, &kept).map_err(err)?;
        temp.close_handle();
        Ok(Closed {
            temp,
            rows,
            row_groups,
            unreferenced_bytes,
        })
    }
}

/// The bytes of the row groups marked in `excluded`, which stay in the file
/// unreferenced.
fn excluded_bytes(metadata: &ParquetMetaData, excluded: &[bool]) -> u64 {
    metadata
        .row_groups()
        .iter()
        .zip(excluded)
        .filter(|(_, excluded)| **excluded)
        .map(|(group, _)| group.compressed_size() as u64)
        .sum()
}

/// The rows of the row groups not `excluded`.
fn kept_rows(row_group_rows: &[u64], excluded: &[bool]) -> u64 {
    row_group_rows
        .iter()
        .zip(excluded)
        .filter(|(_, excluded)| !**excluded)
        .map(|(rows, _)| rows)
        .sum()
}

/// The file's metadata with `pairs` added to its key-value pairs.
fn with_key_values(metadata: ParquetMetaData, pairs: &[(String, String)]) -> ParquetMetaData {
    let file = metadata.file_metadata();
    let mut key_values = file.key_value_metadata().cloned().unwrap_or_default();
    key_values.extend(
        pairs
            .iter()
            .map(|(key, value)| KeyValue::new(key.clone(), value.clone())),
    );
    let file = FileMetaData::new(
        file.version(),
        file.num_rows(),
        file.created_by().map(str::to_owned),
        Some(key_values),
        file.schema_descr_ptr(),
        file.column_orders().cloned(),
    );
    let mut old = ParquetMetaDataBuilder::new_from_metadata(metadata);
    let (row_groups, column_index, offset_index) = (
        old.take_row_groups(),
        old.take_column_index(),
        old.take_offset_index(),
    );
    ParquetMetaDataBuilder::new(file)
        .set_row_groups(row_groups)
        .set_column_index(column_index)
        .set_offset_index(offset_index)
        .build()
}

/// The file's metadata without the row groups marked in `excluded`: their column and
/// offset indexes go with them, the kept groups are numbered again, and the index
/// locations of the first footer are forgotten (the new footer writes its own).
fn without_row_groups(
    metadata: ParquetMetaData,
    excluded: &[bool],
) -> parquet::errors::Result<ParquetMetaData> {
    let mut builder = ParquetMetaDataBuilder::new_from_metadata(metadata);
    let keep = |i: &usize| !excluded.get(*i).copied().unwrap_or(false);
    let mut row_groups = Vec::new();
    for (i, group) in builder.take_row_groups().into_iter().enumerate() {
        if !keep(&i) {
            continue;
        }
        let ordinal = row_groups.len() as i16;
        let mut group = group.into_builder();
        let columns = group
            .take_columns()
            .into_iter()
            .map(|column| {
                column
                    .into_builder()
                    .set_column_index_offset(None)
                    .set_column_index_length(None)
                    .set_offset_index_offset(None)
                    .set_offset_index_length(None)
                    .build()
            })
            .collect::<parquet::errors::Result<Vec<_>>>()?;
        row_groups.push(
            group
                .set_column_metadata(columns)
                .set_ordinal(ordinal)
                .build()?,
        );
    }
    fn filter<T>(all: Vec<T>, keep: impl Fn(&usize) -> bool) -> Vec<T> {
        all.into_iter()
            .enumerate()
            .filter(|(i, _)| keep(i))
            .map(|(_, v)| v)
            .collect()
    }
    let column_index = builder.take_column_index().map(|all| filter(all, keep));
    let offset_index = builder.take_offset_index().map(|all| filter(all, keep));
    Ok(builder
        .set_row_groups(row_groups)
        .set_column_index(column_index)
        .set_offset_index(offset_index)
        .build())
}

/// Cuts `file` back to `data_end` and writes `metadata` there as its footer (page
/// indexes, file metadata, length, magic). The offsets the footer records are the
/// file's: the footer is encoded by a writer that counts the `data_end` bytes before it
/// without keeping them.
fn rewrite_footer(
    file: &File,
    data_end: u64,
    metadata: &ParquetMetaData,
) -> parquet::errors::Result<()> {
    let mut footer = Vec::new();
    {
        let mut tracked = TrackedWrite::new(SkipFirst {
            skip: data_end,
            inner: &mut footer,
        });
        // Large writes pass the writer's buffer straight to `SkipFirst`, which drops
        // them: counting a file of gigabytes takes a few thousand calls and no copying.
        let zeros = vec![0u8; 1 << 20];
        let mut left = data_end;
        while left > 0 {
            let n = left.min(zeros.len() as u64) as usize;
            tracked.write_all(&zeros[..n])?;
            left -= n as u64;
        }
        // Dropping the writer flushes its buffer into `footer` (a Vec: cannot fail).
        ParquetMetaDataWriter::new_with_tracked(tracked, metadata).finish()?;
    }
    file.set_len(data_end)?;
    let mut out = file;
    out.seek(SeekFrom::Start(data_end))?;
    out.write_all(&footer)?;
    Ok(())
}

/// A writer that drops its first `skip` bytes and passes the rest on.
struct SkipFirst<W> {
    skip: u64,
    inner: W,
}

impl<W: Write> Write for SkipFirst<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.skip > 0 {
            let n = buf.len().min(self.skip.min(usize::MAX as u64) as usize);
            self.skip -= n as u64;
            return Ok(n);
        }
        self.inner.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Bytes written between two requests to write the file back to disk.
pub const WRITEBACK_EVERY: usize = 64 << 20;

/// Writes a file's pages back to disk while the run goes on: a thread that syncs the
/// file each time another [`WRITEBACK_EVERY`] bytes have been written, so that the
/// fsync before the rename finds little left to write. That fsync used to leave both
/// cores idle for the time it took to write out the whole file (80 ms for 287 MB on
/// loopback runs). A failed sync fails the commit: the error may not be reported again
/// to the final fsync, which uses a new descriptor.
struct Writeback {
    thread: Option<(
        std::sync::mpsc::SyncSender<()>,
        std::thread::JoinHandle<std::io::Result<()>>,
    )>,
    /// Bytes written when the last sync was asked for.
    asked_at: usize,
}

impl Writeback {
    /// Starts the thread on a second handle of `file`; without one (the handle or the
    /// thread cannot be had), the final fsync writes everything, as it would anyway.
    fn start(file: &File) -> Writeback {
        let thread = file.try_clone().ok().and_then(|file| {
            let (tx, rx) = std::sync::mpsc::sync_channel::<()>(1);
            std::thread::Builder::new()
                .name("tributary-writeback".into())
                .spawn(move || {
                    while rx.recv().is_ok() {
                        file.sync_data()?;
                    }
                    Ok(())
                })
                .ok()
                .map(|handle| (tx, handle))
        });
        Writeback {
            thread,
            asked_at: 0,
        }
    }

    /// Notes that the file now holds `bytes`, asking for a sync every
    /// [`WRITEBACK_EVERY`] (none is queued while one is waiting).
    fn written(&mut self, bytes: usize) {
        if bytes.saturating_sub(self.asked_at) < WRITEBACK_EVERY {
            return;
        }
        if let Some((tx, _)) = &self.thread {
            let _ = tx.try_send(());
        }
        self.asked_at = bytes;
    }

    /// Waits for the sync in progress, and reports any that failed.
    fn finish(&mut self) -> std::io::Result<()> {
        let Some((tx, handle)) = self.thread.take() else {
            return Ok(());
        };
        drop(tx);
        handle
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the writeback thread panicked")))
    }
}

impl Drop for Writeback {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

/// A complete file still at its temporary path.
pub(super) struct Closed {
    pub(super) temp: TempFile,
    pub(super) rows: u64,
    pub(super) row_groups: usize,
    pub(super) unreferenced_bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{DataType, Schema};
    use parquet::file::properties::EnabledStatistics;

    /// Writes three row groups of ids 0..30 with `props`, then leaves out the middle one
    /// by rewriting the footer; returns the ids read back.
    fn without_the_middle_group(props: WriterProperties) -> Vec<i64> {
        use arrow::array::{Array, Int64Array, RecordBatch};
        use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
        use parquet::file::metadata::PageIndexPolicy;
        let schema = std::sync::Arc::new(Schema::new(vec![arrow::datatypes::Field::new(
            "id",
            DataType::Int64,
            false,
        )]));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.parquet");
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        let mut writer =
            ArrowWriter::try_new(file.try_clone().unwrap(), schema.clone(), Some(props)).unwrap();
        for group in 0..3i64 {
            let ids = Int64Array::from_iter_values(group * 10..group * 10 + 10);
            let batch = RecordBatch::try_new(schema.clone(), vec![std::sync::Arc::new(ids)]);
            writer.write(&batch.unwrap()).unwrap();
            writer.flush().unwrap();
        }
        let data_end = writer.bytes_written() as u64;
        let metadata = writer.close().unwrap();
        let kept = without_row_groups(metadata, &[false, true, false]).unwrap();
        rewrite_footer(&file, data_end, &kept).unwrap();
        let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional);
        let reader = ParquetRecordBatchReaderBuilder::try_new_with_options(
            File::open(&path).unwrap(),
            options,
        )
        .unwrap();
        assert_eq!(reader.metadata().num_row_groups(), 2);
        assert_eq!(reader.metadata().file_metadata().num_rows(), 20);
        let mut ids = Vec::new();
        for batch in reader.build().unwrap() {
            let batch = batch.unwrap();
            let column = batch
                .column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap();
            assert_eq!(column.null_count(), 0);
            ids.extend(column.values().iter().copied());
        }
        ids
    }

    #[test]
    fn a_row_group_is_left_out_by_rewriting_only_the_footer() {
        let expected: Vec<i64> = (0..10).chain(20..30).collect();
        for page_index in [true, false] {
            for statistics in [EnabledStatistics::Page, EnabledStatistics::None] {
                let props = WriterProperties::builder()
                    .set_offset_index_disabled(!page_index)
                    .set_statistics_enabled(statistics)
                    .build();
                assert_eq!(
                    without_the_middle_group(props),
                    expected,
                    "page index {page_index}, statistics {statistics:?}"
                );
            }
        }
    }

    /// A handle whose `sync_data` fails (`fdatasync` on a pipe is EINVAL), so that a
    /// sync the writeback thread ran shows up as the error `finish` reports.
    fn unsyncable() -> File {
        let (_reader, writer) = std::io::pipe().expect("a pipe");
        File::from(std::os::fd::OwnedFd::from(writer))
    }

    #[test]
    fn writeback_syncs_only_once_another_writeback_every_bytes_are_written() {
        let file = unsyncable();
        let mut writeback = Writeback::start(&file);
        writeback.written(WRITEBACK_EVERY - 1);
        writeback
            .finish()
            .expect("no sync below WRITEBACK_EVERY bytes");

        let mut writeback = Writeback::start(&file);
        writeback.written(WRITEBACK_EVERY);
        let err = writeback
            .finish()
            .expect_err("a sync at WRITEBACK_EVERY bytes, and its failure reported");
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
    }
}
