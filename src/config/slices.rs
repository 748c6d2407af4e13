//! Runs split across machines: the plan's slices (`--slice I/N`, `--slices N` with
//! `JOB_COMPLETION_INDEX`), and the snapshots file that lets every slice read the same
//! data (`tributary snapshot export`, `--snapshots FILE`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The environment variable a Kubernetes Indexed Job sets to the pod's index.
pub const INDEX_VAR: &str = "JOB_COMPLETION_INDEX";

/// The plan split into `count` slices; `index` is the slice this run runs (`None`: all
/// of them, as `plan` and `finish` see them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slicing {
    pub count: usize,
    pub index: Option<usize>,
}

impl Slicing {
    /// `--slice I/N`, else `--slices N` with the index `JOB_COMPLETION_INDEX` holds (read
    /// from `index_var`); a run needs the index, `plan` and `finish` do not.
    pub fn resolve(
        slice: Option<(usize, usize)>,
        slices: Option<usize>,
        index_var: Option<String>,
        needs_index: bool,
    ) -> Result<Option<Slicing>, String> {
        if let Some((index, count)) = slice {
            return Ok(Some(Slicing {
                count,
                index: Some(index),
            }));
        }
        let Some(count) = slices else {
            return Ok(None);
        };
        if count == 0 {
            return Err("--slices must be at least 1".into());
        }
        let index = match index_var {
            None if needs_index => {
                return Err(format!(
                    "--slices {count} runs the slice {INDEX_VAR} names, and it is not set: \
                     give --slice I/{count}"
                ));
            }
            None => None,
            Some(text) => {
                let index: usize = text.trim().parse().map_err(|_| {
                    format!(
                        "{INDEX_VAR}={text:?} is not a slice number (0 to {})",
                        count - 1
                    )
                })?;
                if index >= count {
                    return Err(format!(
                        "{INDEX_VAR}={index} names no slice of {count} (0 to {})",
                        count - 1
                    ));
                }
                needs_index.then_some(index)
            }
        };
        Ok(Some(Slicing { count, index }))
    }
}

/// The snapshots file `tributary snapshot export` writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotsFile {
    pub version: u32,
    pub writer: String,
    /// When the snapshots were exported (RFC 3339).
    pub exported_at: String,
    /// The process holding them, for messages.
    pub holder: String,
    /// Each PostgreSQL shard's snapshot id, by shard name.
    pub snapshots: BTreeMap<String, String>,
    /// The run's tasks dealt to its slices by their row estimates, when the export was
    /// given the run's arguments and `--slices N`: every slice keeps the tasks this
    /// says, whatever the estimates when it starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slices: Option<SliceAssignment>,
}

/// Which slice each of a run's tasks is in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SliceAssignment {
    pub count: usize,
    pub tasks: Vec<AssignedTask>,
}

/// A task (its shard and partition, as `plan` shows them), its slice and the rows
/// PostgreSQL estimated it reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssignedTask {
    pub shard: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    pub slice: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<f64>,
}

/// The snapshots a run imports: the file's, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshots {
    pub path: PathBuf,
    pub holder: String,
    pub ids: BTreeMap<String, String>,
    pub slices: Option<SliceAssignment>,
}

impl Snapshots {
    /// Reads the snapshots file at `path`; every snapshot id must be one PostgreSQL
    /// gives (`00000003-0000001B-1`: hex digits and dashes).
    pub fn read(path: &Path) -> Result<Snapshots, String> {
        let text = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let file: SnapshotsFile = serde_json::from_slice(&text).map_err(|e| {
            format!(
                "{}: not a snapshots file of `tributary snapshot export` ({e})",
                path.display()
            )
        })?;
        if file.version != 1 {
            return Err(format!(
                "{}: snapshots file version {} (this tributary reads version 1)",
                path.display(),
                file.version
            ));
        }
        for (shard, id) in &file.snapshots {
            if !valid_id(id) {
                return Err(format!(
                    "{}: shard {shard}'s snapshot `{id}` is not a PostgreSQL snapshot id",
                    path.display()
                ));
            }
        }
        if let Some(slices) = &file.slices
            && let Some(task) = slices.tasks.iter().find(|t| t.slice >= slices.count)
        {
            return Err(format!(
                "{}: shard {}'s task is in slice {} of {}",
                path.display(),
                task.shard,
                task.slice,
                slices.count
            ));
        }
        Ok(Snapshots {
            path: path.to_owned(),
            holder: file.holder,
            ids: file.snapshots,
            slices: file.slices,
        })
    }
}

/// Whether `id` has the form of an exported snapshot's id, so that it can be part of
/// `SET TRANSACTION SNAPSHOT '…'`.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slice_comes_from_the_flag_or_the_indexed_jobs_variable() {
        let resolve = |slice, slices, var: Option<&str>, needs| {
            Slicing::resolve(slice, slices, var.map(str::to_owned), needs)
        };
        assert_eq!(resolve(None, None, Some("2"), true), Ok(None));
        assert_eq!(
            resolve(Some((1, 3)), None, Some("2"), true),
            Ok(Some(Slicing {
                count: 3,
                index: Some(1)
            }))
        );
        assert_eq!(
            resolve(None, Some(3), Some("2"), true),
            Ok(Some(Slicing {
                count: 3,
                index: Some(2)
            }))
        );
        // `plan` and `finish` see every slice.
        assert_eq!(
            resolve(None, Some(3), Some("2"), false),
            Ok(Some(Slicing {
                count: 3,
                index: None
            }))
        );
        assert!(
            resolve(None, Some(3), None, true)
                .unwrap_err()
                .contains("JOB_COMPLETION_INDEX")
        );
        assert!(
            resolve(None, Some(3), Some("3"), true)
                .unwrap_err()
                .contains("0 to 2")
        );
        assert!(resolve(None, Some(3), Some("x"), true).is_err());
        assert!(resolve(None, Some(0), None, false).is_err());
    }

    #[test]
    fn only_snapshot_ids_postgresql_gives_are_taken() {
        assert!(valid_id("00000003-0000001B-1"));
        assert!(!valid_id("1'; DROP TABLE t; --"));
        assert!(!valid_id(""));
    }
}
