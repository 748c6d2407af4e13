//! The Parquet output: written to a temporary file beside the target, fsynced, and renamed
//! into place only when the run commits; the directory is fsynced after the rename. Until
//! then nothing exists at the target path and a file already there is untouched. Dropping
//! an uncommitted [`ParquetSink`] or [`TempFile`] removes the temporary file.
//!
//! A temporary file is held under an exclusive advisory lock (`flock`) by the process
//! writing it, for as long as it exists; a temporary of the same target whose lock can be
//! taken belongs to no live run (a crash, a `kill -9`) and is removed by the next run.
//! The lock, not a process id, decides, so runs in other PID namespaces (containers
//! sharing a volume) and on systems without `/proc` are judged right.
//!
//! Row groups arrive already encoded (see `merge`): each holds the rows of one task, so a
//! task that fails after some of its row groups were written can be left out at commit.
//! Leaving them out costs nothing: the footer is written again listing only the kept row
//! groups (with their page indexes), and the left-out groups' bytes stay in the file,
//! unreferenced. Readers follow the footer's offsets, so such a file is valid Parquet to
//! every reader; the summary reports the unreferenced bytes.
//!
//! A split output is several such files (`out-00000.parquet`, ...; see
//! [`crate::config::part_path`]) and a manifest, `out.manifest.json` (see
//! [`crate::config::manifest_path`]), which lists exactly this run's parts with their
//! rows and bytes. The manifest is the commit point: the commit closes every part, removes
//! the previous run's manifest, moves the parts into place, writes the new manifest
//! atomically, and only then removes the previous run's parts numbered past this run's.
//! Whatever a crash interrupts, a manifest that exists lists a complete output, and none
//! exists while parts of two runs may lie side by side. Parts whose every row was left
//! out are dropped, and the others numbered without gaps.

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use arrow::datatypes::{DataType, Schema, SchemaRef};
use parquet::arrow::arrow_writer::{
    ArrowColumnChunk, ArrowColumnWriter, ArrowRowGroupWriterFactory,
};
use parquet::arrow::{ArrowSchemaConverter, ArrowWriter};
use parquet::basic::{Encoding, PageType, Type as PhysicalType};
use parquet::file::metadata::{
    ColumnChunkMetaData, KeyValue, ParquetMetaData, ParquetMetaDataBuilder, ParquetMetaDataWriter,
};
use parquet::file::properties::{BloomFilterPosition, EnabledStatistics, WriterProperties};
use parquet::file::writer::{SerializedFileWriter, TrackedWrite};

use crate::config::{RunOptions, manifest_path, part_path};
use crate::error::{Error, Result};

/// A temporary file beside its target, locked by this process for its whole life, and
/// removed on drop unless persisted.
#[derive(Debug)]
pub struct TempFile {
    /// Empty once the file was moved into place (nothing is left to remove).
    path: PathBuf,
    target: PathBuf,
    /// The handle holding the file's lock. Writers get duplicates of it
    /// ([`TempFile::handle`]), which share the lock; it is released when the last of them
    /// is closed, after the file was renamed or removed.
    file: File,
}

/// Attempts at a fresh temporary name before giving up: a name is only taken twice by a
/// clash of random numbers, or by another run removing our file before we locked it.
const CREATE_ATTEMPTS: usize = 8;

impl TempFile {
    /// Creates and locks `.NAME.tributary-PID-RANDOM.tmp` in the target's directory
    /// (creating the directory if needed), so that the final rename stays on one file
    /// system. Stale temporaries of the same target are removed first. The process id in
    /// the name is only for people looking at the directory.
    pub fn create(target: &Path) -> Result<TempFile> {
        let dir = parent_dir(target);
        std::fs::create_dir_all(&dir).map_err(|e| Error::output(target, e))?;
        remove_stale_temporaries(target);
        let name = target
            .file_name()
            .expect("validated by config")
            .to_string_lossy();
        let mut last = None;
        for _ in 0..CREATE_ATTEMPTS {
            let path = dir.join(format!(
                ".{name}.tributary-{}-{:016x}.tmp",
                std::process::id(),
                unique()
            ));
            let file = match std::fs::OpenOptions::new()
                .write(true)
                .read(true)
                .create_new(true)
                .open(&path)
            {
                Ok(file) => file,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Error::output(target, e)),
            };
            // Between creating the file and locking it, another run may have found it
            // unlocked, judged it stale and removed it (or locked it to do so): then the
            // name is not ours any more, and we start again with another.
            match file.try_lock() {
                Ok(()) if same_file(&path, &file) => {
                    return Ok(TempFile {
                        path,
                        target: target.to_owned(),
                        file,
                    });
                }
                Ok(()) => last = Some(std::io::Error::other("removed by another run")),
                Err(std::fs::TryLockError::WouldBlock) => {
                    last = Some(std::io::Error::other("locked by another run"))
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(Error::output(target, e)),
            }
        }
        Err(Error::output(
            target,
            format!(
                "no temporary file could be made beside it: {}",
                last.map(|e| e.to_string()).unwrap_or_default()
            ),
        ))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path the file is moved to at commit.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// A second handle to the file for writing, sharing its lock.
    fn handle(&self) -> std::io::Result<File> {
        self.file.try_clone()
    }

    /// fsyncs the data, renames it over the target and fsyncs the directory.
    pub fn persist(self) -> Result<()> {
        let target = self.target.clone();
        self.persist_as(&target)
    }

    /// Like [`TempFile::persist`], to another path in the same directory (a part of a
    /// split output is numbered only once it is known which parts hold rows).
    fn persist_as(mut self, target: &Path) -> Result<()> {
        let path = std::mem::take(&mut self.path);
        let result = self
            .file
            .sync_all()
            .and_then(|_| std::fs::rename(&path, target))
            .and_then(|_| sync_dir(target));
        if let Err(e) = result {
            let _ = std::fs::remove_file(&path);
            return Err(Error::output(target, e));
        }
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        // Removed while still locked, so that no other run takes the name for a stale one.
        if !self.path.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Writes `contents` to `target` atomically: into a locked temporary beside it, fsynced,
/// renamed into place, and the directory fsynced. Used for the JSON report and the
/// manifest of a split output.
pub fn write_atomically(target: &Path, contents: &[u8]) -> Result<()> {
    let temp = TempFile::create(target)?;
    (&temp.file)
        .write_all(contents)
        .map_err(|e| Error::output(target, e))?;
    temp.persist()
}

/// A number for a temporary's name that no other run picks: std's hasher keys are
/// random per process and differ from one `RandomState` to the next.
fn unique() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.finish()
}

/// Whether `path` still names the file open as `file`.
fn same_file(path: &Path, file: &File) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(path), file.metadata()) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

fn sync_dir(target: &Path) -> std::io::Result<()> {
    File::open(parent_dir(target))?.sync_all()
}

fn parent_dir(target: &Path) -> PathBuf {
    match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// Removes temporaries of earlier runs for the same target that no live run holds: a
/// temporary whose lock can be taken was left by a run that is gone (a crash or
/// `kill -9` leaves them behind). A live run's temporary is locked, whatever PID
/// namespace or machine sharing the directory it runs in (on file systems where `flock`
/// works across clients; NFS emulates it with byte-range locks).
fn remove_stale_temporaries(target: &Path) {
    let Some(name) = target.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return;
    };
    let prefix = format!(".{name}.tributary-");
    let Ok(entries) = std::fs::read_dir(parent_dir(target)) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        if !file_name.starts_with(&prefix) || !file_name.ends_with(".tmp") {
            continue;
        }
        let Ok(file) = File::open(entry.path()) else {
            continue;
        };
        if file.try_lock().is_ok() {
            // Removed while we hold the lock; it is released when `file` is closed.
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// What was written.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OutputSummary {
    /// The output path (the first file's when the output is split).
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
}

/// One file of a split output, as its manifest lists it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct ManifestPart {
    /// The file's name, beside the manifest.
    pub file: String,
    pub rows: u64,
    pub bytes: u64,
}

/// The manifest of a split output (`OUT.manifest.json`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Manifest {
    /// The manifest's format version: 1.
    pub version: u32,
    /// The tributary version that wrote it.
    pub writer: String,
    /// Rows in all parts together.
    pub rows: u64,
    /// Every part of this run, in order; nothing else beside it belongs to the output.
    pub parts: Vec<ManifestPart>,
}

/// A column chunk whose dictionary grows past this many bytes continues with plain
/// encoding. The parquet crate's default (1 MiB) holds a whole row group of distinct
/// 8-byte values, so ids, timestamps and prices were hashed value by value into a
/// dictionary as large as the data (a quarter of tributary's CPU in the profile), and
/// then stored as that dictionary plus indices: larger than plain values under zstd.
/// 64 KiB still keeps a dictionary for columns of a few thousand distinct values.
pub const DICTIONARY_PAGE_LIMIT: usize = 64 << 10;

/// Row groups a column is written without a dictionary after its dictionary outgrew
/// [`DICTIONARY_PAGE_LIMIT`] or lost a trial, and row groups it keeps a dictionary that
/// won a trial, before it tries the other way again; doubled for each verdict in a row
/// the same way, up to [`DICTIONARY_RETRY_MAX`].
pub const DICTIONARY_RETRY: u32 = 8;

/// The longest a column goes before trying the other way again: 64 row groups, 8M rows
/// at the default row-group size.
pub const DICTIONARY_RETRY_MAX: u32 = DICTIONARY_RETRY << 3;

/// Which leaf columns the next row group writes without a dictionary.
///
/// - A column whose dictionary outgrew the limit in one row group (ids, timestamps, free
///   text) almost always outgrows it in the next, and each attempt costs: its first values
///   are hashed and written as a dictionary page and indices before the writer falls back.
///   On the benchmark table that was 2.5% of the export's instructions and 7% of the file
///   (docs/performance.md). Such a column skips the dictionary for the next
///   [`DICTIONARY_RETRY`] row groups closed, then tries again in case its values changed.
/// - A column that keeps its dictionary is not always smaller for it: values in insertion
///   order (a sequence, a timestamp, a date per batch) or that step by a constant take a
///   few bits each in the delta encodings, fewer than a dictionary's indices. So the row
///   group after one that kept a dictionary is a trial without it, and the column goes on
///   the way that took fewer compressed bytes per row, for [`DICTIONARY_RETRY`] row
///   groups, before the next trial. Hashing every value into a dictionary costs more
///   CPU than delta-packing, so a column that gains nothing from it also saves that work.
/// - Each verdict the same way as the one before doubles the span before the next try,
///   up to [`DICTIONARY_RETRY_MAX`]: with several row groups in progress at once, a try
///   is several row groups written the larger way.
///
/// What a row group does depends only on the groups closed before it, so one task's
/// rows make the same file whatever the number of encoder threads.
#[derive(Debug, Default)]
pub struct DictionaryProbe {
    /// Per leaf column.
    columns: Vec<ColumnProbe>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct ColumnProbe {
    course: Probe,
    /// Verdicts in a row the same way: positive without a dictionary, negative with.
    streak: i32,
}

impl ColumnProbe {
    /// Records a verdict; returns the row groups to go that way before trying again.
    fn verdict(&mut self, without: bool) -> u32 {
        self.streak = match (without, self.streak) {
            (true, s) if s > 0 => s.saturating_add(1),
            (true, _) => 1,
            (false, s) if s < 0 => s.saturating_sub(1),
            (false, _) => -1,
        };
        let doublings = (self.streak.unsigned_abs() - 1).min(8);
        (DICTIONARY_RETRY << doublings).min(DICTIONARY_RETRY_MAX)
    }
}

/// Where one leaf column stands.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Probe {
    /// Row groups are written with a dictionary; after `trial_in` more of them close with
    /// their dictionary kept, the next is a trial without.
    Dictionary { trial_in: u32 },
    /// The row groups begun now are a trial without a dictionary, against a row group
    /// that kept one in `bytes_per_row`.
    Trial { bytes_per_row: f64 },
    /// Row groups are written without a dictionary until `left` more of them close.
    Without { left: u32 },
}

impl Default for Probe {
    fn default() -> Probe {
        Probe::Dictionary { trial_in: 0 }
    }
}

/// What a closed row group says about one of its leaf columns.
#[derive(Debug, Clone, Copy)]
pub struct ClosedColumn {
    /// Whether it was written without a dictionary.
    pub plain: bool,
    /// Whether its dictionary outgrew the limit and its later pages went on without it.
    pub abandoned: bool,
    /// Its compressed bytes per row of the group, dictionary page included.
    pub bytes_per_row: f64,
}

impl DictionaryProbe {
    /// For a new row group: the leaf columns to write without a dictionary.
    pub fn plain(&self) -> Vec<bool> {
        self.columns
            .iter()
            .map(|p| !matches!(p.course, Probe::Dictionary { .. }))
            .collect()
    }

    /// Learns from a closed row group's leaf columns (see [`ParquetSink::closed_columns`]).
    /// Several row groups can be in progress at once, so a group's column may have been
    /// begun before the column's last change of course.
    pub fn closed(&mut self, columns: &[ClosedColumn]) {
        if self.columns.len() < columns.len() {
            self.columns.resize(columns.len(), ColumnProbe::default());
        }
        for (probe, closed) in self.columns.iter_mut().zip(columns) {
            probe.course = match (probe.course, closed.plain) {
                (_, false) if closed.abandoned => Probe::Without {
                    left: probe.verdict(true),
                },
                (Probe::Dictionary { trial_in: 0 }, false) => Probe::Trial {
                    bytes_per_row: closed.bytes_per_row,
                },
                (Probe::Dictionary { trial_in }, false) => Probe::Dictionary {
                    trial_in: trial_in - 1,
                },
                // Measured against the latest group that kept its dictionary.
                (Probe::Trial { .. }, false) => Probe::Trial {
                    bytes_per_row: closed.bytes_per_row,
                },
                (Probe::Trial { bytes_per_row }, true) => {
                    if closed.bytes_per_row < bytes_per_row {
                        Probe::Without {
                            left: probe.verdict(true),
                        }
                    } else {
                        // This group was one of them.
                        Probe::Dictionary {
                            trial_in: probe.verdict(false) - 1,
                        }
                    }
                }
                (Probe::Without { left }, true) if left > 1 => Probe::Without { left: left - 1 },
                (Probe::Without { .. }, true) => Probe::Dictionary { trial_in: 0 },
                // A group begun before the column changed course.
                (probe, _) => probe,
            };
        }
    }
}

/// Writer properties for the output: compression, dictionary encoding, statistics and
/// the page index as the job asks.
pub fn writer_properties(options: &RunOptions) -> WriterProperties {
    let statistics = match (options.statistics, options.page_index) {
        // Page statistics live in the column index, which is part of the page index.
        (EnabledStatistics::Page, false) => EnabledStatistics::Chunk,
        (level, _) => level,
    };
    WriterProperties::builder()
        .set_compression(options.compression)
        .set_dictionary_enabled(options.dictionary)
        .set_dictionary_page_size_limit(DICTIONARY_PAGE_LIMIT)
        .set_statistics_enabled(statistics)
        .set_offset_index_disabled(!options.page_index)
        // Bloom filters (none are enabled today) then lie beside their row group, inside
        // the bytes a commit keeps, rather than after the last group, where a commit that
        // leaves groups out writes the footer again.
        .set_bloom_filter_position(BloomFilterPosition::AfterRowGroup)
        .set_created_by(format!("tributary version {}", env!("CARGO_PKG_VERSION")))
        .build()
}

/// The writer properties for a file of `schema`: `props`, and with `delta` every column
/// that leaves its dictionary, or has none, continues in a delta encoding where Parquet
/// has one for its type:
/// - byte arrays (text, JSON, binary) in DELTA_LENGTH_BYTE_ARRAY: the lengths
///   delta-packed apart from the bytes, which lie back to back. Under zstd that is 7%
///   smaller than plain's length-prefixed values on the benchmark table;
/// - 32- and 64-bit integers (and the dates, times, timestamps and decimals stored as
///   them) in DELTA_BINARY_PACKED: differences from the previous value, bit-packed per
///   block. Under zstd, ids in insertion order come out 5-6x smaller than plain,
///   timestamps in insertion order about 30% smaller, and random values mostly a little
///   smaller, as the packing drops the bits no value in a block uses; full-range random
///   64-bit values come out 4% larger (docs/performance.md).
///
/// The integer encoding also costs less CPU than plain (5% fewer instructions for the
/// benchmark export), as zstd has fewer bytes to compress; the text encoding costs no
/// measurable CPU.
pub fn file_properties(
    props: &WriterProperties,
    schema: &Schema,
    delta: bool,
) -> parquet::errors::Result<WriterProperties> {
    if !delta {
        return Ok(props.clone());
    }
    let descr = ArrowSchemaConverter::new()
        .with_coerce_types(props.coerce_types())
        .convert(schema)?;
    // pyarrow cannot decode delta-encoded pages into an Arrow dictionary column ("DecodeArrow
    // of DictAccumulator for DeltaLengthByteArrayDecoder" in pyarrow 26): those columns
    // keep PLAIN.
    let dictionary_typed: Vec<&str> = schema
        .fields()
        .iter()
        .filter(|f| has_dictionary(f.data_type()))
        .map(|f| f.name().as_str())
        .collect();
    let mut builder = props.clone().into_builder();
    for column in descr.columns() {
        let top = column.path().parts().first().map(String::as_str);
        if top.is_some_and(|name| dictionary_typed.contains(&name)) {
            continue;
        }
        let encoding = match column.physical_type() {
            PhysicalType::BYTE_ARRAY => Encoding::DELTA_LENGTH_BYTE_ARRAY,
            PhysicalType::INT32 | PhysicalType::INT64 => Encoding::DELTA_BINARY_PACKED,
            _ => continue,
        };
        builder = builder.set_column_encoding(column.path().clone(), encoding);
    }
    Ok(builder.build())
}

/// Whether a column chunk's dictionary outgrew [`DICTIONARY_PAGE_LIMIT`] and its later
/// pages went on without it.
fn dictionary_abandoned(column: &ColumnChunkMetaData) -> bool {
    let Some(stats) = column.page_encoding_stats() else {
        return false;
    };
    let dictionary = stats
        .iter()
        .any(|s| s.page_type == PageType::DICTIONARY_PAGE);
    let other = stats.iter().any(|s| {
        matches!(s.page_type, PageType::DATA_PAGE | PageType::DATA_PAGE_V2)
            && !matches!(
                s.encoding,
                Encoding::RLE_DICTIONARY | Encoding::PLAIN_DICTIONARY
            )
    });
    dictionary && other
}

/// Whether `t` is, or holds, an Arrow dictionary.
fn has_dictionary(t: &DataType) -> bool {
    match t {
        DataType::Dictionary(..) => true,
        DataType::List(f)
        | DataType::LargeList(f)
        | DataType::FixedSizeList(f, _)
        | DataType::Map(f, _) => has_dictionary(f.data_type()),
        DataType::Struct(fields) => fields.iter().any(|f| has_dictionary(f.data_type())),
        _ => false,
    }
}

/// An open Parquet file receiving encoded row groups.
#[must_use = "a sink removes its temporary file unless committed"]
pub struct ParquetSink {
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

impl ParquetSink {
    pub fn new(temp: TempFile, schema: SchemaRef, props: WriterProperties) -> Result<ParquetSink> {
        let target = temp.target.clone();
        let file = temp.handle().map_err(|e| Error::output(&target, e))?;
        let writeback = Writeback::start(&file);
        let (writer, factory) = ArrowWriter::try_new(file, schema.clone(), Some(props.clone()))
            .and_then(|w| w.into_serialized_writer())
            .map_err(|e| Error::output(&target, e))?;
        Ok(ParquetSink {
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
        self.row_group_rows
            .iter()
            .zip(&self.excluded)
            .filter(|(_, excluded)| !**excluded)
            .map(|(rows, _)| rows)
            .sum()
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
    /// written without a dictionary (see [`DictionaryProbe`]).
    pub fn column_writers(&self, plain: &[bool]) -> Result<Vec<ArrowColumnWriter>> {
        let err = |e| Error::output(&self.temp.target, e);
        if !plain.contains(&true) {
            return self
                .factory
                .create_column_writers(self.row_group_rows.len())
                .map_err(err);
        }
        let descr = self.writer.schema_descr();
        let mut builder = self.props.clone().into_builder();
        for (column, _) in descr.columns().iter().zip(plain).filter(|(_, p)| **p) {
            builder = builder.set_column_dictionary_enabled(column.path().clone(), false);
        }
        // The factory's properties are the file's; a row group with other per-column
        // settings takes its writers from the function the factory replaced, which
        // builds the same writers (tributary writes no encrypted files).
        #[allow(deprecated)]
        parquet::arrow::arrow_writer::get_column_writers(
            descr,
            &std::sync::Arc::new(builder.build()),
            &self.schema,
        )
        .map_err(err)
    }

    /// Each leaf column of row group `index`, which was written with `plain` (see
    /// [`DictionaryProbe`]).
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
            files: vec![target.clone()],
            path: target,
            manifest: None,
            rows,
            row_groups,
            bytes,
            unreferenced_bytes,
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
    fn close(mut self, metadata: &[(String, String)]) -> Result<Closed> {
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
        let unreferenced_bytes = written
            .row_groups()
            .iter()
            .zip(&self.excluded)
            .filter(|(_, excluded)| **excluded)
            .map(|(group, _)| group.compressed_size() as u64)
            .sum();
        if self.excluded.contains(&true) {
            let kept = without_row_groups(written, &self.excluded).map_err(err)?;
            rewrite_footer(&self.temp.file, data_end, &kept).map_err(err)?;
        }
        Ok(Closed {
            temp: self.temp,
            rows,
            row_groups,
            unreferenced_bytes,
        })
    }
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
struct Closed {
    temp: TempFile,
    rows: u64,
    row_groups: usize,
    unreferenced_bytes: u64,
}

/// Commits a split output (see the module doc): closes every part (each with
/// `metadata`, without its excluded row groups); drops the parts left without rows
/// (keeping one, so that the schema is still written); removes the previous manifest;
/// moves the parts into place, numbered from 0; writes the manifest, the commit point;
/// then removes the previous run's parts numbered past this run's. If a move fails, the
/// parts already moved are removed again and no manifest is left.
pub fn commit_parts(
    output: &Path,
    parts: Vec<ParquetSink>,
    metadata: Vec<(String, String)>,
) -> Result<OutputSummary> {
    let mut closed = Vec::with_capacity(parts.len());
    for sink in parts {
        closed.push(sink.close(&metadata)?);
    }
    let (mut kept, empty): (Vec<Closed>, Vec<Closed>) =
        closed.into_iter().partition(|part| part.rows > 0);
    if kept.is_empty() {
        kept.extend(empty.into_iter().next());
    }
    let manifest = manifest_path(output);
    match std::fs::remove_file(&manifest) {
        Ok(()) => sync_dir(&manifest).map_err(|e| Error::output(&manifest, e))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::output(&manifest, e)),
    }
    let mut summary = OutputSummary {
        path: output.to_owned(),
        files: Vec::new(),
        manifest: Some(manifest.clone()),
        rows: 0,
        row_groups: 0,
        bytes: 0,
        unreferenced_bytes: 0,
    };
    let mut listed = Vec::with_capacity(kept.len());
    for (i, part) in kept.into_iter().enumerate() {
        let target = part_path(output, i);
        if let Err(e) = part.temp.persist_as(&target) {
            for done in &summary.files {
                let _ = std::fs::remove_file(done);
            }
            return Err(e);
        }
        let bytes = std::fs::metadata(&target).map(|m| m.len()).unwrap_or(0);
        summary.rows += part.rows;
        summary.row_groups += part.row_groups;
        summary.bytes += bytes;
        summary.unreferenced_bytes += part.unreferenced_bytes;
        listed.push(ManifestPart {
            file: target
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            rows: part.rows,
            bytes,
        });
        summary.files.push(target);
    }
    let text = serde_json::to_vec_pretty(&Manifest {
        version: 1,
        writer: format!("tributary {}", env!("CARGO_PKG_VERSION")),
        rows: summary.rows,
        parts: listed,
    })
    .expect("serialisable");
    if let Err(e) = write_atomically(&manifest, &text) {
        for done in &summary.files {
            let _ = std::fs::remove_file(done);
        }
        return Err(e);
    }
    if let Some(first) = summary.files.first() {
        summary.path = first.clone();
    }
    remove_stale_parts(output, summary.files.len());
    Ok(summary)
}

/// Removes `STEM-NNNNN.EXT` files numbered `from` and above beside `output`.
fn remove_stale_parts(output: &Path, from: usize) {
    let Ok(entries) = std::fs::read_dir(parent_dir(output)) else {
        return;
    };
    let first = part_path(output, 0);
    let Some(first) = first.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return;
    };
    // `STEM-` and `.EXT` around the five digits of part 0's name.
    let (prefix, suffix) = (&first[..first.len() - 5 - ext_len(output)], {
        let n = ext_len(output);
        &first[first.len() - n..]
    });
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(digits) = name
            .strip_prefix(prefix)
            .and_then(|r| r.strip_suffix(suffix))
        else {
            continue;
        };
        if digits.len() == 5
            && digits.bytes().all(|b| b.is_ascii_digit())
            && digits.parse::<usize>().is_ok_and(|n| n >= from)
        {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Length of `.EXT` in the output's name (0 without an extension).
fn ext_len(output: &Path) -> usize {
    output.extension().map_or(0, |e| e.len() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Closes `groups` row groups one after another, each begun with the probe's choice
    /// and its columns given `(abandoned, bytes_per_row)` by `outcome(plain)`; returns,
    /// per column, the groups written with a dictionary.
    fn dictionary_groups(
        probe: &mut DictionaryProbe,
        columns: usize,
        groups: usize,
        outcome: impl Fn(usize, bool) -> (bool, f64),
    ) -> Vec<Vec<usize>> {
        let mut with = vec![Vec::new(); columns];
        for group in 0..groups {
            let mut plain = probe.plain();
            plain.resize(columns, false);
            let closed: Vec<ClosedColumn> = (0..columns)
                .map(|c| {
                    if !plain[c] {
                        with[c].push(group);
                    }
                    let (abandoned, bytes_per_row) = outcome(c, plain[c]);
                    ClosedColumn {
                        plain: plain[c],
                        abandoned: abandoned && !plain[c],
                        bytes_per_row,
                    }
                })
                .collect();
            probe.closed(&closed);
        }
        with
    }

    #[test]
    fn a_column_that_abandoned_its_dictionary_skips_it_then_tries_again() {
        let mut probe = DictionaryProbe::default();
        assert_eq!(
            probe.plain(),
            Vec::<bool>::new(),
            "every column tries at first"
        );
        // Column 0 keeps a dictionary that is smaller; column 1 outgrows its own.
        let with = dictionary_groups(&mut probe, 2, 30, |c, plain| match (c, plain) {
            (0, false) => (false, 1.0),
            (0, true) => (false, 3.0),
            _ => (true, 50.0),
        });
        // A trial without after the first group, lost; the next after 8 more groups,
        // lost again; the next after 16.
        let mut kept: Vec<usize> = (0..30).collect();
        kept.retain(|g| ![1, 10, 27].contains(g));
        assert_eq!(with[0], kept, "the smaller dictionary");
        assert_eq!(
            with[1],
            [0, 9, 26],
            "tries again after {DICTIONARY_RETRY} groups, then after twice as many"
        );
        // The span stops doubling at its maximum.
        let mut probe = DictionaryProbe::default();
        let with = dictionary_groups(&mut probe, 1, 400, |_, _| (true, 50.0));
        let spans: Vec<usize> = with[0].windows(2).map(|w| w[1] - w[0] - 1).collect();
        assert_eq!(spans, [8, 16, 32, 64, 64, 64, 64, 64]);
    }

    #[test]
    fn a_column_smaller_without_its_dictionary_goes_on_without_it() {
        let mut probe = DictionaryProbe::default();
        let with = dictionary_groups(&mut probe, 1, 25, |_, plain| {
            (false, if plain { 0.5 } else { 2.0 })
        });
        // Kept, tried without (won), 8 groups without, kept again, tried without (won),
        // 16 groups without.
        assert_eq!(with[0], [0, 10]);

        // The values change: the dictionary wins the next trial and stays.
        let with = dictionary_groups(&mut probe, 1, 12, |_, plain| {
            (false, if plain { 4.0 } else { 2.0 })
        });
        let plain: Vec<usize> = (0..12).filter(|g| !with[0].contains(g)).collect();
        assert_eq!(plain, [0, 1, 2, 4], "{with:?}");
    }

    #[test]
    fn a_row_group_begun_before_a_change_of_course_does_not_count_twice() {
        let mut probe = DictionaryProbe::default();
        let kept = |bytes_per_row| ClosedColumn {
            plain: false,
            abandoned: false,
            bytes_per_row,
        };
        let without = |bytes_per_row| ClosedColumn {
            plain: true,
            abandoned: false,
            bytes_per_row,
        };
        // Two groups begun with a dictionary close; the first starts a trial, the second
        // only updates the size it is measured against.
        probe.closed(&[kept(2.0)]);
        probe.closed(&[kept(1.0)]);
        assert_eq!(probe.plain(), [true]);
        // 1.5 is smaller than the first group's 2.0 but not the second's 1.0.
        probe.closed(&[without(1.5)]);
        assert_eq!(probe.plain(), [false]);
        // A second trial group, begun before the verdict, changes nothing.
        probe.closed(&[without(0.1)]);
        assert_eq!(
            probe.columns[0].course,
            Probe::Dictionary {
                trial_in: DICTIONARY_RETRY - 1
            }
        );
    }

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
