//! The local-file sink: one Parquet file, or a split output's numbered files and
//! manifest, written beside the target and moved into place at commit.

use std::path::PathBuf;

use arrow::datatypes::SchemaRef;
use parquet::file::properties::WriterProperties;

use super::dictionary::DictionaryProbe;
use super::parquet::ParquetFile;
use super::properties::{file_properties, writer_properties};
use super::split::commit_parts;
use super::temp::TempFile;
use super::{EncodedRowGroup, OutputSummary, RowGroupId, RowGroupWriters, Sink};
use crate::config::{JobConfig, Split, part_path};
use crate::error::{Error, Result};

/// A [`Sink`] writing local files (see the module doc of `sink`).
#[must_use = "dropping a sink removes its temporary files"]
pub struct FileSink {
    /// The output path as the user gave it (parts are named after it).
    output: PathBuf,
    /// When to start the next file; `None` writes one file.
    split: Option<Split>,
    /// The job's writer properties; each file's are these with its delta encodings.
    props: WriterProperties,
    /// Delta encodings where no dictionary is used ([`file_properties`]).
    delta: bool,
    /// The first file's temporary, made by [`FileSink::create`] before any query ran, and
    /// taken when the first file opens.
    first: Option<TempFile>,
    /// Fixed by [`Sink::start`].
    schema: Option<SchemaRef>,
    /// The file row groups are appended to; `None` before the start and while a split
    /// output's next file has not been needed yet.
    open: Option<ParquetFile>,
    /// Files of a split output that are complete but for their footer.
    set_aside: Vec<ParquetFile>,
    /// Learns across files which columns gain from a dictionary.
    dictionary: DictionaryProbe,
}

impl FileSink {
    /// Checks the output's directory (creating it), removes stale temporaries and
    /// creates the first file's locked temporary.
    pub fn create(config: &JobConfig) -> Result<FileSink> {
        let first = TempFile::create(&config.first_output())?;
        Ok(FileSink {
            output: config.output.clone(),
            split: config.options.split,
            props: writer_properties(&config.options),
            delta: config.options.delta,
            first: Some(first),
            schema: None,
            open: None,
            set_aside: Vec::new(),
            dictionary: DictionaryProbe::default(),
        })
    }

    /// The open file's handle, if one is open.
    pub(super) fn open_handle(&self) -> Option<&std::fs::File> {
        self.open.as_ref().map(ParquetFile::handle)
    }

    /// The open file, opening the next one (a split output's) if there is none.
    fn open_file(&mut self) -> Result<&mut ParquetFile> {
        if self.open.is_none() {
            let Some(schema) = self.schema.clone() else {
                return Err(Error::output(
                    &self.output,
                    "a row group was begun before the output's schema was fixed",
                ));
            };
            let temp = match self.first.take() {
                Some(temp) => temp,
                None => TempFile::create(&part_path(&self.output, self.set_aside.len()))?,
            };
            let props = file_properties(&self.props, &schema, self.delta)
                .map_err(|e| Error::output(&self.output, e))?;
            self.open = Some(ParquetFile::new(temp, schema, props)?);
        }
        Ok(self.open.as_mut().expect("opened above"))
    }

    /// Whether the open file reached a limit of the split.
    fn full(&self) -> bool {
        let (Some(split), Some(file)) = (self.split, &self.open) else {
            return false;
        };
        split.max_rows.is_some_and(|max| file.rows() >= max)
            || split
                .max_bytes
                .is_some_and(|max| file.bytes_written() >= max)
    }
}

impl Sink for FileSink {
    fn path(&self) -> PathBuf {
        match (&self.open, &self.first) {
            (Some(file), _) => file.path_hint(),
            (None, Some(first)) => first.target().to_owned(),
            // The file the next row group opens.
            (None, None) => part_path(&self.output, self.set_aside.len()),
        }
    }

    fn schema(&self) -> Option<&SchemaRef> {
        self.schema.as_ref()
    }

    fn start(&mut self, schema: SchemaRef) -> Result<()> {
        debug_assert!(self.schema.is_none(), "the schema is fixed once");
        self.schema = Some(schema);
        self.open_file().map(|_| ())
    }

    fn row_group_writers(&mut self, _dir: usize) -> Result<RowGroupWriters> {
        let plain = self.dictionary.plain();
        let columns = self.open_file()?.column_writers(&plain)?;
        Ok(RowGroupWriters { columns, plain })
    }

    fn append(&mut self, _dir: usize, group: EncodedRowGroup) -> Result<RowGroupId> {
        let file = self.open_file()?;
        let index = file.append(group.chunks, group.rows)?;
        let closed = file.closed_columns(index, &group.plain);
        self.dictionary.closed(&closed);
        let id = RowGroupId {
            file: self.set_aside.len(),
            index,
        };
        if self.full() {
            self.end_file(0);
        }
        Ok(id)
    }

    fn exclude(&mut self, group: RowGroupId) {
        let file = match self.set_aside.get_mut(group.file) {
            Some(file) => Some(file),
            None => self.open.as_mut(),
        };
        if let Some(file) = file {
            file.exclude(group.index);
        }
    }

    fn file_rows(&self, _dir: usize) -> u64 {
        self.open.as_ref().map_or(0, ParquetFile::rows)
    }

    fn file_row_limit(&self) -> Option<u64> {
        self.split.and_then(|s| s.max_rows)
    }

    fn end_file(&mut self, _dir: usize) {
        if let Some(file) = self.open.take() {
            self.set_aside.push(file);
        }
    }

    fn commit(mut self: Box<Self>, metadata: Vec<(String, String)>) -> Result<OutputSummary> {
        if self.split.is_none() {
            self.open_file()?;
            let file = self.open.take().expect("opened above");
            return file.commit(metadata);
        }
        self.end_file(0);
        let parts = std::mem::take(&mut self.set_aside);
        commit_parts(&self.output, parts, metadata)
    }
}
