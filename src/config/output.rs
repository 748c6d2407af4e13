//! Where a run writes: one file, or a split output's numbered parts and the manifest
//! beside them.

use std::path::{Path, PathBuf};

/// When to start the next output file. The files are named `STEM-00000.EXT`,
/// `STEM-00001.EXT`, ... after the output path `STEM.EXT` (see [`part_path`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Split {
    /// Past this many rows in a file (checked when a row group is closed).
    pub max_rows: Option<u64>,
    /// Past this many bytes written to a file (checked when a row group is closed).
    pub max_bytes: Option<u64>,
}

/// The path of output file `index` when the output is split: `out.parquet` ->
/// `out-00000.parquet`, `out-00001.parquet`, ...
pub fn part_path(output: &Path, index: usize) -> PathBuf {
    let stem = output
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match output.extension() {
        Some(ext) => format!("{stem}-{index:05}.{}", ext.to_string_lossy()),
        None => format!("{stem}-{index:05}"),
    };
    output.with_file_name(name)
}

/// The manifest of a split output, beside its parts: `out.parquet` ->
/// `out.manifest.json`. It lists exactly the parts of the run that wrote it and is written
/// last (see `sink::commit_parts`); its name matches no `out-*.parquet` glob.
pub fn manifest_path(output: &Path) -> PathBuf {
    let stem = output
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    output.with_file_name(format!("{stem}.manifest.json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_names() {
        assert_eq!(
            part_path(Path::new("/d/out.parquet"), 3),
            Path::new("/d/out-00003.parquet")
        );
        assert_eq!(part_path(Path::new("out"), 0), Path::new("out-00000"));
    }
}
