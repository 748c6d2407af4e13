//! A split output: several Parquet files committed together by a manifest.
//!
//! A split output is several files (`out-00000.parquet`, ...; see
//! [`crate::config::part_path`]) and a manifest, `out.manifest.json` (see
//! [`crate::config::manifest_path`]), which lists exactly this run's parts with their
//! rows and bytes. The manifest is the commit point: the commit closes every part, removes
//! the previous run's manifest, moves the parts into place, writes the new manifest
//! atomically, and only then removes the previous run's parts numbered past this run's.
//! Whatever a crash interrupts, a manifest that exists lists a complete output, and none
//! exists while parts of two runs may lie side by side. Parts whose every row was left
//! out are dropped, and the others numbered without gaps.

use std::path::Path;

use super::OutputSummary;
use super::parquet::{Closed, ParquetFile};
use super::temp::{parent_dir, sync_dir, write_atomically};
use crate::config::{manifest_path, part_index, part_path};
use crate::error::{Error, Result};

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
    /// A dataset's parts are named by their path in it: `region=eu/part-00000.parquet`.
    pub parts: Vec<ManifestPart>,
    /// A dataset's partition columns, in the order of its directory levels, with their
    /// types in the output (Arrow's names): what a reader's Hive partitioning is given.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partition_by: Vec<PartitionColumn>,
    /// Whether a dataset's files hold the partition columns too.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub partition_columns_in_files: bool,
}

/// A partition column of a dataset, as its manifest lists it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct PartitionColumn {
    pub name: String,
    #[serde(rename = "type")]
    pub data_type: String,
}

/// Commits a split output (see the module doc): closes every part (each with
/// `metadata`, without its excluded row groups); drops the parts left without rows
/// (keeping one, so that the schema is still written); removes the previous manifest;
/// moves the parts into place, numbered from 0; writes the manifest, the commit point;
/// then removes the previous run's parts numbered past this run's. If a move fails, the
/// parts already moved are removed again and no manifest is left.
pub fn commit_parts(
    output: &Path,
    parts: Vec<ParquetFile>,
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
        table_version: None,
        run_recorded: None,
        path: output.to_owned(),
        files: Vec::new(),
        manifest: Some(manifest.clone()),
        rows: 0,
        row_groups: 0,
        bytes: 0,
        unreferenced_bytes: 0,
        remote: Vec::new(),
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
        partition_by: Vec::new(),
        partition_columns_in_files: false,
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
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if part_index(output, &name).is_some_and(|n| n >= from) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}
