//! A Hive-partitioned dataset: `OUT/region=eu/month=2025-01/part-00000.parquet`, one
//! directory for each combination of the `--partition-by` columns' values.
//!
//! Rows are cut by their directory as they arrive ([`Sink::route`]); each directory has
//! its own files, numbered like a split output's, which the same row-group, file-size
//! and compression settings make. Values are written as Hive writes them: the characters
//! Hive escapes become `%XX`, and NULL (or an empty text) is
//! [`DEFAULT_PARTITION`]. The partition columns are left out of the files, as Hive
//! readers expect, unless the job keeps them.
//!
//! At most `max_open_files` files are open at once: past it, the file of the directory
//! written least recently is closed (its footer written) and that directory's next rows
//! start its next file. A closed file's footer is written again at the commit, with the
//! job's metadata and without the row groups of task attempts that failed since.
//!
//! Everything is written under a staging directory beside the output,
//! `.OUT.tributary-PID-RANDOM.staging`, held locked by the run (a later run removes a
//! staging directory whose lock it can take). The commit finishes every file, writes the
//! manifest `_SUCCESS` (every file with its rows and bytes, and the partition columns
//! with their types), and moves the staging directory into place in one step: a rename
//! when there is no dataset yet, an exchange of the two directories (`renameat2`) when
//! there is one, whose files are then removed. A reader that opens the dataset sees the
//! old one or the new one (only one walking its directories at the moment of the
//! exchange can meet both). An output directory that exists must be a dataset tributary wrote
//! (it holds a `_SUCCESS` manifest) or be empty: nothing else is replaced.
//!
//! A dataset in object storage is staged locally like this, then uploaded by
//! `object`, with its `_SUCCESS` written last.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, UInt32Array};
use arrow::compute::{cast, take_record_batch};
use arrow::datatypes::{DataType, SchemaRef};
use parquet::arrow::ArrowSchemaConverter;
use parquet::file::properties::WriterProperties;
use parquet::schema::types::SchemaDescriptor;

use super::dictionary::DictionaryProbe;
use super::parquet::{Closed, Parked, ParquetFile, column_writers};
use super::properties::{file_properties, writer_properties};
use super::split::{Manifest, ManifestPart, PartitionColumn};
use super::temp::{
    TempFile, create_dirs, parent_dir, remove_stale, sync_dir, unique, write_atomically,
};
use super::{EncodedRowGroup, OutputSummary, RowGroupId, RowGroupWriters, Sink};
use crate::config::{Dataset, JobConfig, Split};
use crate::error::{Error, Result};

/// The directory value of NULL, and of an empty text, as Hive writes it.
pub const DEFAULT_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";

/// The name of a dataset's manifest, written last.
pub const SUCCESS: &str = "_SUCCESS";

/// A [`Sink`] writing a Hive-partitioned dataset (see the module doc).
#[must_use = "dropping a sink removes its staging directory"]
pub struct DatasetSink {
    output: PathBuf,
    spec: Dataset,
    split: Option<Split>,
    props: WriterProperties,
    delta: bool,
    /// The output's schema (fixed by [`Sink::start`]), the files' (without the partition
    /// columns unless they are kept) and their properties.
    schema: Option<SchemaRef>,
    files_schema: Option<SchemaRef>,
    files_props: Option<WriterProperties>,
    /// The files' Parquet schema, which row groups are begun with before their file is
    /// opened.
    files_descr: Option<SchemaDescriptor>,
    /// Indexes in the output's schema of the partition columns and of the files' columns.
    keys: Vec<usize>,
    columns: Vec<usize>,
    /// The directories, by number, and their numbers by relative path.
    dirs: Vec<Dir>,
    by_path: HashMap<String, usize>,
    /// Every file, by number across the directories ([`RowGroupId::file`]).
    files: Vec<FileState>,
    /// Files open, those of them set aside (by number), and a clock ordering the
    /// directories by their last row group.
    open: usize,
    set_aside: Vec<usize>,
    clock: u64,
    dictionary: DictionaryProbe,
    /// Dropped last: removes the staging directory unless it was moved into place.
    staging: Staging,
}

/// One directory of the dataset.
struct Dir {
    /// Relative to the dataset: `region=eu/month=2025-01` (empty when the dataset has no
    /// partition columns: a table's).
    path: String,
    /// The partition columns' values as text, `None` for NULL (and an empty text).
    values: Vec<Option<String>>,
    /// The file its row groups go to, by number, while it is open.
    current: Option<usize>,
    /// Its files, in order.
    files: Vec<usize>,
    last_used: u64,
}

enum FileState {
    Open(ParquetFile),
    /// Complete but for its footer, and no longer the current file of its directory.
    SetAside(ParquetFile),
    Parked(Parked),
    /// Finished by the commit.
    Done,
}

impl FileState {
    fn rows(&self) -> u64 {
        match self {
            FileState::Open(f) | FileState::SetAside(f) => f.rows(),
            FileState::Parked(p) => p.rows(),
            FileState::Done => 0,
        }
    }
}

impl DatasetSink {
    /// Checks what lies at the output, removes stale staging directories of earlier
    /// runs and creates this run's. The partition columns are checked at the start.
    pub fn create(config: &JobConfig, spec: &Dataset) -> Result<DatasetSink> {
        check_replaceable(&config.output)?;
        DatasetSink::staged(config, spec)
    }

    /// Makes the sink of a table's files (see `delta`): a dataset staged beside the
    /// output like any, but never moved into place, so whatever lies at the output is
    /// not checked, and `spec` may have no partition columns.
    pub fn staged(config: &JobConfig, spec: &Dataset) -> Result<DatasetSink> {
        let output = config.output.clone();
        let staging = Staging::create(&output)?;
        Ok(DatasetSink {
            output,
            spec: spec.clone(),
            split: config.options.split,
            props: writer_properties(&config.options),
            delta: config.options.delta,
            schema: None,
            files_schema: None,
            files_props: None,
            files_descr: None,
            keys: Vec::new(),
            columns: Vec::new(),
            dirs: Vec::new(),
            by_path: HashMap::new(),
            files: Vec::new(),
            open: 0,
            set_aside: Vec::new(),
            clock: 0,
            dictionary: DictionaryProbe::default(),
            staging,
        })
    }

    /// The number of the directory of `row`, whose partition values (as text) are in
    /// `values`; a directory seen first is added.
    fn dir_of(&mut self, values: &[&arrow::array::StringArray], row: usize) -> usize {
        let mut path = String::new();
        let mut texts = Vec::with_capacity(values.len());
        for (i, (&key, values)) in self.keys.iter().zip(values).enumerate() {
            if i > 0 {
                path.push('/');
            }
            let name = self
                .schema
                .as_ref()
                .expect("routed after the start")
                .fields()[key]
                .name();
            path.push_str(&hive_escape(name));
            path.push('=');
            match values.is_valid(row).then(|| values.value(row)) {
                Some(value) if !value.is_empty() => {
                    path.push_str(&hive_escape(value));
                    texts.push(Some(value.to_owned()));
                }
                _ => {
                    path.push_str(DEFAULT_PARTITION);
                    texts.push(None);
                }
            }
        }
        if let Some(&dir) = self.by_path.get(&path) {
            return dir;
        }
        self.dirs.push(Dir {
            path: path.clone(),
            values: texts,
            current: None,
            files: Vec::new(),
            last_used: 0,
        });
        self.by_path.insert(path, self.dirs.len() - 1);
        self.dirs.len() - 1
    }

    /// The open file of `dir`, opening its next one (and closing another directory's
    /// past `max_open_files`) if it has none.
    fn open_file(&mut self, dir: usize) -> Result<&mut ParquetFile> {
        self.clock += 1;
        self.dirs[dir].last_used = self.clock;
        if self.dirs[dir].current.is_none() {
            while self.open >= self.spec.max_open_files {
                self.park_one(dir)?;
            }
            let (Some(schema), Some(props)) = (self.files_schema.clone(), &self.files_props) else {
                return Err(Error::output(
                    &self.output,
                    "a row group was begun before the output's schema was fixed",
                ));
            };
            let index = self.dirs[dir].files.len();
            let target = self
                .staging
                .path
                .join(file_name(&self.dirs[dir].path, index));
            let file = ParquetFile::new(TempFile::create(&target)?, schema, props.clone())?;
            self.files.push(FileState::Open(file));
            let number = self.files.len() - 1;
            self.dirs[dir].current = Some(number);
            self.dirs[dir].files.push(number);
            self.open += 1;
        }
        let number = self.dirs[dir].current.expect("opened above");
        match &mut self.files[number] {
            FileState::Open(file) => Ok(file),
            _ => unreachable!("a directory's current file is open"),
        }
    }

    /// Closes one open file other than `dir`'s: a set-aside one first, else the current
    /// file of the directory written least recently.
    fn park_one(&mut self, dir: usize) -> Result<()> {
        let number = match self.set_aside.pop() {
            Some(number) => number,
            None => {
                let lru = self
                    .dirs
                    .iter_mut()
                    .enumerate()
                    .filter(|(d, entry)| *d != dir && entry.current.is_some())
                    .min_by_key(|(_, entry)| entry.last_used)
                    .map(|(_, entry)| entry)
                    .ok_or_else(|| {
                        Error::output(&self.output, "max_open_files must be at least 1")
                    })?;
                lru.current.take().expect("filtered above")
            }
        };
        let file = match std::mem::replace(&mut self.files[number], FileState::Done) {
            FileState::Open(file) | FileState::SetAside(file) => file,
            _ => unreachable!("only open files are parked"),
        };
        self.files[number] = FileState::Parked(file.park()?);
        self.open -= 1;
        Ok(())
    }

    /// Whether the open file of `dir` reached a limit of the split.
    fn full(&self, dir: usize) -> bool {
        let (Some(split), Some(number)) = (self.split, self.dirs[dir].current) else {
            return false;
        };
        let FileState::Open(file) = &self.files[number] else {
            return false;
        };
        split.max_rows.is_some_and(|max| file.rows() >= max)
            || split
                .max_bytes
                .is_some_and(|max| file.bytes_written() >= max)
    }

    /// Finishes every file, moves those holding rows to their final names in the
    /// staging directory, and writes the manifest there. Returns the summary and the
    /// files.
    fn finish(&mut self, metadata: &[(String, String)]) -> Result<(OutputSummary, Vec<Finished>)> {
        let mut closed: Vec<Option<Closed>> = Vec::with_capacity(self.files.len());
        for state in &mut self.files {
            closed.push(match std::mem::replace(state, FileState::Done) {
                FileState::Open(file) | FileState::SetAside(file) => Some(file.close(metadata)?),
                FileState::Parked(parked) => Some(parked.close(metadata)?),
                FileState::Done => None,
            });
        }
        self.open = 0;
        self.set_aside.clear();
        let mut summary = OutputSummary {
            table_version: None,
            run_recorded: None,
            path: self.output.clone(),
            files: Vec::new(),
            manifest: Some(self.output.join(SUCCESS)),
            rows: 0,
            row_groups: 0,
            bytes: 0,
            unreferenced_bytes: 0,
            remote: Vec::new(),
        };
        let mut listed = Vec::new();
        let mut names = Vec::new();
        let mut dirs: Vec<(usize, &Dir)> = self.dirs.iter().enumerate().collect();
        dirs.sort_by(|a, b| a.1.path.cmp(&b.1.path));
        for (number, dir) in dirs {
            let kept = dir
                .files
                .iter()
                .filter_map(|&n| closed[n].take())
                .filter(|file| file.rows > 0);
            for (i, file) in kept.enumerate() {
                let name = file_name(&dir.path, i);
                names.push(Finished {
                    name: name.clone(),
                    dir: number,
                    rows: file.rows,
                });
                let staged = self.staging.path.join(&name);
                let (rows, row_groups, unreferenced) =
                    (file.rows, file.row_groups, file.unreferenced_bytes);
                file.temp.persist_as(&staged)?;
                let bytes = std::fs::metadata(&staged).map(|m| m.len()).unwrap_or(0);
                summary.rows += rows;
                summary.row_groups += row_groups;
                summary.bytes += bytes;
                summary.unreferenced_bytes += unreferenced;
                summary.files.push(self.output.join(&name));
                listed.push(ManifestPart {
                    file: name,
                    rows,
                    bytes,
                });
            }
        }
        let schema = self.schema.as_ref().expect("started before the commit");
        let manifest = Manifest {
            version: 1,
            writer: format!("tributary {}", env!("CARGO_PKG_VERSION")),
            rows: summary.rows,
            parts: listed,
            partition_by: self
                .keys
                .iter()
                .map(|&k| PartitionColumn {
                    name: schema.field(k).name().clone(),
                    data_type: schema.field(k).data_type().to_string(),
                })
                .collect(),
            partition_columns_in_files: self.spec.keep_columns,
        };
        let text = serde_json::to_vec_pretty(&manifest).expect("serialisable");
        write_atomically(&self.staging.path.join(SUCCESS), &text)?;
        Ok((summary, names))
    }

    /// The partition columns and the bound on open files.
    pub fn spec(&self) -> &Dataset {
        &self.spec
    }

    /// Finishes every file in the staging directory (see [`DatasetSink::staged`]) and
    /// gives them, with the directory that holds them until it is dropped.
    pub fn finish_staged(mut self, metadata: &[(String, String)]) -> Result<StagedFiles> {
        if self.schema.is_none() {
            return Err(Error::output(
                &self.output,
                "committed before the schema was fixed",
            ));
        }
        let (summary, names) = self.finish(metadata)?;
        let files = names
            .into_iter()
            .map(|Finished { name, dir, rows }| {
                let path = self.staging.path.join(&name);
                let bytes = std::fs::metadata(&path)
                    .map_err(|e| Error::output(&path, e))?
                    .len();
                Ok(StagedFile {
                    dir: self.dirs[dir].path.clone(),
                    values: self.dirs[dir].values.clone(),
                    name,
                    path,
                    rows,
                    bytes,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(StagedFiles {
            files,
            summary,
            partition_columns: self.spec.columns.clone(),
            _sink: self,
        })
    }
}

/// A file the commit finished: its name in the staging directory, its directory's
/// number and its rows.
struct Finished {
    name: String,
    dir: usize,
    rows: u64,
}

/// The files of a staged dataset (see [`DatasetSink::finish_staged`]).
pub struct StagedFiles {
    pub files: Vec<StagedFile>,
    /// The summary a dataset would give (its paths are the dataset's, not the staged).
    pub summary: OutputSummary,
    pub partition_columns: Vec<String>,
    /// Holds the staging directory (and its lock) until dropped.
    _sink: DatasetSink,
}

/// A finished file in the staging directory.
pub struct StagedFile {
    /// Its directory, relative to the dataset (empty when there are no partition
    /// columns).
    pub dir: String,
    /// The partition columns' values of its rows as text, `None` for NULL.
    pub values: Vec<Option<String>>,
    /// Its name relative to the dataset.
    pub name: String,
    /// Where it lies now.
    pub path: PathBuf,
    pub rows: u64,
    pub bytes: u64,
}

/// A file's name in a dataset: `DIR/part-00003.parquet`, or `part-00003.parquet` when the
/// dataset has no partition columns.
fn file_name(dir: &str, index: usize) -> String {
    if dir.is_empty() {
        format!("part-{index:05}.parquet")
    } else {
        format!("{dir}/part-{index:05}.parquet")
    }
}

impl Sink for DatasetSink {
    fn path(&self) -> PathBuf {
        self.output.clone()
    }

    fn schema(&self) -> Option<&SchemaRef> {
        self.schema.as_ref()
    }

    fn start(&mut self, schema: SchemaRef) -> Result<()> {
        debug_assert!(self.schema.is_none(), "the schema is fixed once");
        let err = |message: String| Error::config(None, format!("--partition-by: {message}"));
        let mut keys = Vec::new();
        for name in &self.spec.columns {
            let Some((index, field)) = schema.column_with_name(name) else {
                let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                return Err(err(format!(
                    "`{name}` is not a column of the result (its columns: {})",
                    names.join(", ")
                )));
            };
            if !partition_type(field.data_type()) {
                return Err(err(format!(
                    "column `{name}` is {}, which cannot name a directory (partition by \
                     text, numbers, booleans, dates or timestamps)",
                    field.data_type()
                )));
            }
            keys.push(index);
        }
        let columns: Vec<usize> = (0..schema.fields().len())
            .filter(|i| self.spec.keep_columns || !keys.contains(i))
            .collect();
        if columns.is_empty() {
            return Err(err(
                "every column is a partition column: the files would hold no column \
                 (keep them in the files with keep_partition_columns)"
                    .into(),
            ));
        }
        let files_schema = Arc::new(
            schema
                .project(&columns)
                .map_err(|e| Error::output(&self.output, e))?,
        );
        let props = file_properties(&self.props, &files_schema, self.delta)
            .map_err(|e| Error::output(&self.output, e))?;
        let descr = ArrowSchemaConverter::new()
            .with_coerce_types(props.coerce_types())
            .convert(&files_schema)
            .map_err(|e| Error::output(&self.output, e))?;
        self.keys = keys;
        self.columns = columns;
        self.files_schema = Some(files_schema);
        self.files_props = Some(props);
        self.files_descr = Some(descr);
        self.schema = Some(schema);
        Ok(())
    }

    fn routes(&self) -> bool {
        true
    }

    fn route(&mut self, _task: usize, batch: RecordBatch) -> Result<Vec<(usize, RecordBatch)>> {
        let output = self.output.clone();
        let err = |e: arrow::error::ArrowError| Error::output(&output, e);
        let texts: Vec<ArrayRef> = self
            .keys
            .iter()
            .map(|&k| cast(batch.column(k), &DataType::Utf8))
            .collect::<std::result::Result<_, _>>()
            .map_err(err)?;
        let values: Vec<&arrow::array::StringArray> =
            texts.iter().map(|a| a.as_string::<i32>()).collect();
        let same_as = |a: usize, b: usize| {
            values.iter().all(|v| {
                v.is_valid(a) == v.is_valid(b) && (!v.is_valid(a) || v.value(a) == v.value(b))
            })
        };
        // Rows of one directory mostly come together: a directory is looked up only
        // where the values change.
        let mut rows_of: Vec<(usize, Vec<u32>)> = Vec::new();
        let mut slot_of: HashMap<usize, usize> = HashMap::new();
        let mut slot = 0;
        for row in 0..batch.num_rows() {
            if row == 0 || !same_as(row - 1, row) {
                let dir = self.dir_of(&values, row);
                slot = *slot_of.entry(dir).or_insert_with(|| {
                    rows_of.push((dir, Vec::new()));
                    rows_of.len() - 1
                });
            }
            rows_of[slot].1.push(row as u32);
        }
        let projected = batch.project(&self.columns).map_err(err)?;
        if let [(dir, _)] = rows_of.as_slice() {
            return Ok(vec![(*dir, projected)]);
        }
        rows_of
            .into_iter()
            .map(|(dir, rows)| {
                let rows = take_record_batch(&projected, &UInt32Array::from(rows)).map_err(err)?;
                Ok((dir, rows))
            })
            .collect()
    }

    fn row_group_writers(&mut self, _dir: usize) -> Result<RowGroupWriters> {
        // Begun without opening the directory's file: a group is open long before it is
        // appended, and only appending needs the file.
        let (Some(descr), Some(props), Some(schema)) =
            (&self.files_descr, &self.files_props, &self.files_schema)
        else {
            return Err(Error::output(
                &self.output,
                "a row group was begun before the output's schema was fixed",
            ));
        };
        let plain = self.dictionary.plain();
        let columns = column_writers(descr, props, schema, &plain)
            .map_err(|e| Error::output(&self.output, e))?;
        Ok(RowGroupWriters { columns, plain })
    }

    fn append(&mut self, dir: usize, group: EncodedRowGroup) -> Result<RowGroupId> {
        let file = self.open_file(dir)?;
        let index = file.append(group.chunks, group.rows)?;
        let closed = file.closed_columns(index, &group.plain);
        self.dictionary.closed(&closed);
        let id = RowGroupId {
            file: self.dirs[dir].current.expect("opened above"),
            index,
        };
        if self.full(dir) {
            self.end_file(dir);
        }
        Ok(id)
    }

    fn exclude(&mut self, group: RowGroupId) {
        match self.files.get_mut(group.file) {
            Some(FileState::Open(file) | FileState::SetAside(file)) => file.exclude(group.index),
            Some(FileState::Parked(parked)) => parked.exclude(group.index),
            Some(FileState::Done) | None => {}
        }
    }

    fn file_rows(&self, dir: usize) -> u64 {
        self.dirs
            .get(dir)
            .and_then(|d| d.current)
            .map_or(0, |n| self.files[n].rows())
    }

    fn file_row_limit(&self) -> Option<u64> {
        self.split.and_then(|s| s.max_rows)
    }

    fn end_file(&mut self, dir: usize) {
        let Some(number) = self.dirs.get_mut(dir).and_then(|d| d.current.take()) else {
            return;
        };
        if let FileState::Open(file) = std::mem::replace(&mut self.files[number], FileState::Done) {
            self.files[number] = FileState::SetAside(file);
            self.set_aside.push(number);
        }
    }

    fn commit(mut self: Box<Self>, metadata: Vec<(String, String)>) -> Result<OutputSummary> {
        if self.schema.is_none() {
            return Err(Error::output(
                &self.output,
                "committed before the schema was fixed",
            ));
        }
        let (summary, _) = self.finish(&metadata)?;
        self.staging.move_into_place(&self.output)?;
        Ok(summary)
    }
}

/// Whether a column of this type can name a directory: its values as text are what
/// readers parse back.
fn partition_type(data_type: &DataType) -> bool {
    use DataType::*;
    match data_type {
        Boolean | Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 | UInt64 | Float32
        | Float64 | Utf8 | LargeUtf8 | Utf8View | Date32 | Date64 | Decimal32(..)
        | Decimal64(..) | Decimal128(..) | Decimal256(..) | Timestamp(..) | Time32(_)
        | Time64(_) => true,
        Dictionary(_, value) => partition_type(value),
        _ => false,
    }
}

/// A value (or column name) as a directory name part, escaped as Hive escapes it
/// (`FileUtils.escapePathName`): control characters and `"#%'*/:=?\{[]^` and DEL become
/// `%XX`.
pub fn hive_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        let escaped = matches!(
            c,
            '\u{01}'
                ..='\u{1f}'
                    | '"'
                    | '#'
                    | '%'
                    | '\''
                    | '*'
                    | '/'
                    | ':'
                    | '='
                    | '?'
                    | '\\'
                    | '\u{7f}'
                    | '{'
                    | '['
                    | ']'
                    | '^'
        );
        if escaped {
            out.push_str(&format!("%{:02X}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether a path (its parts, relative to a dataset) names a dataset's file:
/// `a=1/b=x/part-00000.parquet`.
pub fn is_dataset_file(parts: &[String]) -> bool {
    let Some((name, dirs)) = parts.split_last() else {
        return false;
    };
    let numbered = name
        .strip_prefix("part-")
        .and_then(|n| n.strip_suffix(".parquet"))
        .is_some_and(|n| n.len() == 5 && n.bytes().all(|b| b.is_ascii_digit()));
    numbered && !dirs.is_empty() && dirs.iter().all(|d| d.contains('='))
}

/// Fails unless the output is missing, an empty directory, or a dataset tributary
/// wrote: a run replaces nothing else.
fn check_replaceable(output: &Path) -> Result<()> {
    let meta = match std::fs::symlink_metadata(output) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::output(output, e)),
    };
    if !meta.is_dir() {
        return Err(Error::output(
            output,
            "a dataset's output must be a directory, and this is not one",
        ));
    }
    let mut entries = std::fs::read_dir(output).map_err(|e| Error::output(output, e))?;
    if entries.next().is_none() {
        return Ok(());
    }
    let written_by_us = std::fs::read(output.join(SUCCESS))
        .ok()
        .and_then(|text| serde_json::from_slice::<Manifest>(&text).ok())
        .is_some_and(|m| m.writer.starts_with("tributary"));
    if written_by_us {
        return Ok(());
    }
    Err(Error::output(
        output,
        "the directory holds files but no _SUCCESS manifest of a tributary dataset; \
         a run replaces only its own datasets: remove it or choose another output",
    ))
}

/// The staging directory beside the output, locked by this run.
struct Staging {
    /// Empty once moved into place.
    path: PathBuf,
    /// A handle on the directory, holding its lock.
    _lock: Option<File>,
    /// Directories made for the output, deepest first: removed again (when empty) if
    /// the dataset is never moved into place.
    made_dirs: Vec<PathBuf>,
}

impl Staging {
    fn create(output: &Path) -> Result<Staging> {
        let parent = parent_dir(output);
        let made_dirs = create_dirs(&parent).map_err(|e| Error::output(output, e))?;
        remove_stale(output, ".staging");
        let name = output
            .file_name()
            .expect("validated by config")
            .to_string_lossy();
        let path = parent.join(format!(
            ".{name}.tributary-{}-{:016x}.staging",
            std::process::id(),
            unique()
        ));
        std::fs::create_dir(&path).map_err(|e| Error::output(output, e))?;
        let lock = File::open(&path).and_then(|dir| {
            dir.try_lock().map_err(std::io::Error::from)?;
            Ok(dir)
        });
        match lock {
            Ok(lock) => Ok(Staging {
                path,
                _lock: Some(lock),
                made_dirs,
            }),
            Err(e) => {
                let _ = std::fs::remove_dir_all(&path);
                Err(Error::output(output, e))
            }
        }
    }

    /// Moves the staging directory to `output` in one step, replacing a dataset there
    /// (see the module doc), and removes the replaced one.
    fn move_into_place(&mut self, output: &Path) -> Result<()> {
        let staged = std::mem::take(&mut self.path);
        let err = |e: std::io::Error| Error::output(output, e);
        match std::fs::symlink_metadata(output) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::rename(&staged, output).map_err(err)?;
            }
            Err(e) => {
                self.path = staged;
                return Err(err(e));
            }
            Ok(_) => {
                if let Err(e) = exchange(&staged, output) {
                    self.path = staged;
                    return Err(err(e));
                }
                // `staged` now names the replaced dataset.
                let _ = std::fs::remove_dir_all(&staged);
            }
        }
        self.made_dirs.clear();
        sync_dir(output).map_err(err)
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.path);
        }
        for dir in &self.made_dirs {
            if std::fs::remove_dir(dir).is_err() {
                break;
            }
        }
    }
}

/// Swaps two directories in one step (Linux `renameat2` with `RENAME_EXCHANGE`). Where
/// the file system cannot, the output is renamed aside first: readers may then find
/// no dataset for the moment between the two renames, never a mix of two.
fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    use rustix::io::Errno;
    match renameat_with(CWD, a, CWD, b, RenameFlags::EXCHANGE) {
        Ok(()) => return Ok(()),
        Err(e) if ![Errno::INVAL, Errno::NOSYS, Errno::NOTSUP].contains(&e) => {
            return Err(e.into());
        }
        Err(_) => {}
    }
    let aside = a.with_extension("old");
    std::fs::rename(b, &aside)?;
    if let Err(e) = std::fs::rename(a, b) {
        let _ = std::fs::rename(&aside, b);
        return Err(e);
    }
    std::fs::rename(&aside, a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_as_hive_escapes_them() {
        assert_eq!(hive_escape("eu"), "eu");
        assert_eq!(hive_escape("a/b c"), "a%2Fb c");
        assert_eq!(hive_escape("x=y:50%"), "x%3Dy%3A50%25");
        assert_eq!(
            hive_escape("2025-01-01 10:00:00"),
            "2025-01-01 10%3A00%3A00"
        );
        assert_eq!(hive_escape("zürich"), "zürich");
        assert_eq!(
            hive_escape("\"#'*?\\{[]^\u{7f}\u{1}\n"),
            "%22%23%27%2A%3F%5C%7B%5B%5D%5E%7F%01%0A"
        );
    }

    #[test]
    fn a_datasets_files_are_told_by_their_names() {
        let parts = |s: &str| s.split('/').map(str::to_owned).collect::<Vec<_>>();
        assert!(is_dataset_file(&parts("a=1/part-00000.parquet")));
        assert!(is_dataset_file(&parts("a=1/b=x%2Fy/part-00012.parquet")));
        for other in [
            "part-00000.parquet",
            "_SUCCESS",
            "a=1/part-0000.parquet",
            "a=1/notes.txt",
            "docs/part-00000.parquet",
            "a=1/part-00000.parquet.tmp",
        ] {
            assert!(!is_dataset_file(&parts(other)), "{other}");
        }
    }

    #[test]
    fn only_types_with_a_text_form_readers_parse_back_name_directories() {
        assert!(partition_type(&DataType::Utf8));
        assert!(partition_type(&DataType::Date32));
        assert!(partition_type(&DataType::Decimal128(12, 2)));
        assert!(partition_type(&DataType::Dictionary(
            Box::new(DataType::Int32),
            Box::new(DataType::Utf8)
        )));
        assert!(!partition_type(&DataType::Binary));
        assert!(!partition_type(&DataType::FixedSizeBinary(16)));
        assert!(!partition_type(&DataType::new_list(DataType::Int32, true)));
    }
}
