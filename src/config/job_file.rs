//! The job file: a TOML file giving any of the run's settings (flags override it), read
//! and kept with where it is, since the paths in it are relative to its directory. Its
//! string values may name environment variables ([`super::interpolate`]).

use std::path::{Path, PathBuf};

use super::interpolate;
use super::partition::PartitionFile;
use crate::error::{Error, Result};

/// The job file's `snapshot`: `true`, `false` or `"lock"`.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(untagged)]
pub(super) enum SnapshotSetting {
    On(bool),
    Mode(String),
}

/// The job file's keys.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct JobFile {
    /// The job's name in the ledger, the report and metrics (default: the file's stem).
    pub name: Option<String>,
    pub query: Option<PathBuf>,
    /// A shards file's path, or the `[shards]` table itself.
    pub shards: Option<toml::Value>,
    pub output: Option<PathBuf>,
    /// `[storage]`: options of a remote output (`region`, `endpoint`, `part_size`, ...).
    #[serde(default)]
    pub storage: toml::Table,
    #[serde(default)]
    pub params: toml::Table,
    /// The instant relative dates are evaluated against: a TOML date or date-time, or
    /// text (see `dates::parse_as_of`).
    pub as_of: Option<toml::Value>,
    /// The IANA zone relative dates are evaluated in.
    pub timezone: Option<String>,
    pub concurrency: Option<usize>,
    pub pool_size: Option<usize>,
    pub query_timeout: Option<String>,
    pub connect_timeout: Option<String>,
    pub shard_column: Option<String>,
    pub compression: Option<String>,
    pub row_group_size: Option<usize>,
    pub allow_partial: Option<bool>,
    pub partition: Option<PartitionFile>,
    /// `false` turns off snapshot consistency across partitions; `"lock"` also starts a
    /// MySQL shard's partitions' snapshots under one `FLUSH TABLES WITH READ LOCK`.
    pub snapshot: Option<SnapshotSetting>,
    pub retries: Option<u32>,
    pub retry_for: Option<String>,
    pub stall_timeout: Option<String>,
    pub report: Option<PathBuf>,
    /// Where to write the run's metrics for node_exporter's textfile collector.
    pub metrics_file: Option<PathBuf>,
    pub types: Option<toml::Table>,
    /// The readers the output is for: a name, a comma list, or a list of names.
    #[serde(rename = "for")]
    pub readers: Option<toml::Value>,
    pub dictionary: Option<bool>,
    #[serde(alias = "text_encoding")]
    pub encoding: Option<String>,
    pub statistics: Option<String>,
    pub page_index: Option<bool>,
    pub max_file_rows: Option<u64>,
    /// Partition columns of a dataset output: a list, or text with commas.
    pub partition_by: Option<toml::Value>,
    pub keep_partition_columns: Option<bool>,
    pub max_open_files: Option<usize>,
    /// `"delta"`: write a Delta Lake table at `output`.
    pub table_format: Option<String>,
    /// `append`, `overwrite` or `replace` (a table's partitions the run wrote).
    pub table_mode: Option<String>,
    /// A size: a number of bytes, or text such as `"512MB"`.
    pub max_file_size: Option<toml::Value>,
    /// `false`: the shards' rows, concatenated.
    pub combine: Option<bool>,
    /// The final step's SQL over `shards`.
    pub merge: Option<String>,
    /// What the final step holds before it spills: bytes, or text such as `"256MB"`.
    pub memory_limit: Option<toml::Value>,
    /// The run ledger's path, or `false` for none.
    pub ledger: Option<toml::Value>,
    pub lock_timeout: Option<String>,
    /// `changed` (the default): skip a run whose identical run succeeded with its files
    /// intact; `always`: run every time.
    pub rerun: Option<String>,
    /// `[incremental]`: read only what changed since the last run.
    pub incremental: Option<IncrementalFile>,
}

/// The job file's `[incremental]` table.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct IncrementalFile {
    /// The result's column whose values grow as rows are written or updated.
    pub column: String,
    /// How far before the last mark to read again: a duration (`"1h"`) for date and
    /// timestamp columns, a number for integer ones.
    pub lookback: Option<toml::Value>,
}

/// The job file of a run (empty when there is none), and where it is.
pub(super) struct LoadedJob {
    pub file: JobFile,
    /// The file's path, named in its errors.
    pub path: Option<PathBuf>,
    /// The directory the file's paths are relative to (`.` without a file).
    pub dir: PathBuf,
}

impl LoadedJob {
    /// Reads and parses the job file at `path`, if one is given.
    pub fn read(path: Option<&Path>) -> Result<LoadedJob> {
        let Some(path) = path else {
            return Ok(LoadedJob {
                file: JobFile::default(),
                path: None,
                dir: PathBuf::from("."),
            });
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::config(Some(path.to_owned()), format!("cannot read: {e}")))?;
        let file: JobFile = interpolate::from_str(&text, &interpolate::env)
            .map_err(|e| e.into_config_error(path, "invalid job file"))?;
        Ok(LoadedJob {
            file,
            path: Some(path.to_owned()),
            dir: path.parent().unwrap_or(Path::new(".")).to_owned(),
        })
    }

    /// A path the job file gives, relative to its directory.
    pub fn path_in(&self, path: &Path) -> PathBuf {
        self.dir.join(path)
    }

    /// An error in the job file's settings, naming the file when there is one.
    pub fn error(&self, message: impl Into<String>) -> Error {
        Error::config(self.path.clone(), message)
    }
}
