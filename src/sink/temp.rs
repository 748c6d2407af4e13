//! Temporary files beside their target, locked by the run writing them, fsynced and
//! renamed into place: the one atomic write of every file tributary leaves behind (the
//! Parquet output, a split output's manifest, the JSON report).
//!
//! A temporary file is held under an exclusive advisory lock (`flock`) by the process
//! writing it, for as long as it exists; a temporary of the same target whose lock can be
//! taken belongs to no live run (a crash, a `kill -9`) and is removed by the next run.
//! The lock, not a process id, decides, so runs in other PID namespaces (containers
//! sharing a volume) and on systems without `/proc` are judged right.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A temporary file beside its target, locked by this process for its whole life, and
/// removed on drop unless persisted.
#[derive(Debug)]
pub struct TempFile {
    /// Empty once the file was moved into place (nothing is left to remove).
    path: PathBuf,
    pub(super) target: PathBuf,
    /// The handle holding the file's lock. Writers get duplicates of it
    /// ([`TempFile::handle`]), which share the lock; it is released when the last of them
    /// is closed, after the file was renamed or removed. `None` while set aside
    /// ([`TempFile::close_handle`]).
    file: Option<File>,
    /// Directories made for the target, deepest first: removed again (when empty) if the
    /// file is never moved into place, so that a failed run leaves nothing behind.
    made_dirs: Vec<PathBuf>,
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
        let made_dirs = create_dirs(&dir).map_err(|e| Error::output(target, e))?;
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
                        file: Some(file),
                        made_dirs,
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

    /// The file's handle, opened again if it was closed.
    pub(super) fn file(&mut self) -> std::io::Result<&File> {
        if self.file.is_none() {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&self.path)?;
            self.file = Some(file);
        }
        Ok(self.file.as_ref().expect("opened above"))
    }

    /// The file's handle while it is open (see [`TempFile::close_handle`]).
    pub(super) fn open_handle(&self) -> Option<&File> {
        self.file.as_ref()
    }

    /// A second handle to the file for writing, sharing its lock.
    pub(super) fn handle(&mut self) -> std::io::Result<File> {
        self.file()?.try_clone()
    }

    /// Closes the file's handle, and so releases its lock, until [`TempFile::file`]
    /// opens it again. Only for a temporary in a directory this run holds locked
    /// otherwise (a dataset's staging directory), where no other run looks for stale
    /// temporaries: a dataset keeps its closed files without a descriptor each.
    pub(super) fn close_handle(&mut self) {
        self.file = None;
    }

    /// fsyncs the data, renames it over the target and fsyncs the directory.
    pub fn persist(self) -> Result<()> {
        let target = self.target.clone();
        self.persist_as(&target)
    }

    /// Like [`TempFile::persist`], to another path in the same directory (a part of a
    /// split output is numbered only once it is known which parts hold rows).
    pub(super) fn persist_as(mut self, target: &Path) -> Result<()> {
        let result = self.file().and_then(File::sync_all);
        let path = std::mem::take(&mut self.path);
        let result = result
            .and_then(|_| std::fs::rename(&path, target))
            .and_then(|_| sync_dir(target));
        if let Err(e) = result {
            let _ = std::fs::remove_file(&path);
            return Err(Error::output(target, e));
        }
        self.made_dirs.clear();
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        // Removed while still locked, so that no other run takes the name for a stale one.
        if !self.path.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.path);
        }
        for dir in &self.made_dirs {
            // Only an empty one goes: another file may have come meanwhile.
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// Writes `contents` to `target` atomically: into a locked temporary beside it, fsynced,
/// renamed into place, and the directory fsynced. Used for the JSON report and the
/// manifest of a split output.
pub fn write_atomically(target: &Path, contents: &[u8]) -> Result<()> {
    let mut temp = TempFile::create(target)?;
    temp.file()
        .and_then(|mut file| file.write_all(contents))
        .map_err(|e| Error::output(target, e))?;
    temp.persist()
}

/// A number for a temporary's name that no other run picks: std's hasher keys are
/// random per process and differ from one `RandomState` to the next.
pub(super) fn unique() -> u64 {
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

/// Creates `dir` and its missing ancestors; returns those it made, deepest first (to
/// remove again if what they were made for is abandoned).
pub(super) fn create_dirs(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let made: Vec<PathBuf> = dir
        .ancestors()
        .take_while(|d| !d.as_os_str().is_empty() && !d.exists())
        .map(Path::to_path_buf)
        .collect();
    std::fs::create_dir_all(dir)?;
    Ok(made)
}

pub(super) fn sync_dir(target: &Path) -> std::io::Result<()> {
    File::open(parent_dir(target))?.sync_all()
}

/// The directory a target lies in (`.` for a bare file name).
pub(super) fn parent_dir(target: &Path) -> PathBuf {
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
    remove_stale(target, ".tmp");
}

/// Removes `.NAME.tributary-*SUFFIX` beside `target` (files, or directories with all
/// they hold) that no live run holds locked.
pub(super) fn remove_stale(target: &Path, suffix: &str) {
    let Some(name) = target.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return;
    };
    let prefix = format!(".{name}.tributary-");
    let Ok(entries) = std::fs::read_dir(parent_dir(target)) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        if !file_name.starts_with(&prefix) || !file_name.ends_with(suffix) {
            continue;
        }
        let Ok(file) = File::open(entry.path()) else {
            continue;
        };
        if file.try_lock().is_ok() {
            // Removed while we hold the lock; it is released when `file` is closed.
            let _ = match entry.file_type() {
                Ok(t) if t.is_dir() => std::fs::remove_dir_all(entry.path()),
                _ => std::fs::remove_file(entry.path()),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_made_for_a_file_never_written_are_removed_again() {
        let root = tempfile::tempdir().unwrap();
        let target = root.path().join("day=2025-01-05/part/out.parquet");
        let temp = TempFile::create(&target).unwrap();
        assert!(root.path().join("day=2025-01-05/part").is_dir());
        drop(temp);
        assert!(!root.path().join("day=2025-01-05").exists());

        // A directory that was there before stays; one made for a file written stays.
        std::fs::create_dir(root.path().join("kept")).unwrap();
        drop(TempFile::create(&root.path().join("kept/out.parquet")).unwrap());
        assert!(root.path().join("kept").is_dir());
        write_atomically(&target, b"x").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"x");
    }
}
