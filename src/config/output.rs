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

/// A Hive-partitioned dataset: the output is a directory with one directory level per
/// partition column (see `sink::DatasetSink`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dataset {
    /// The partition columns, outermost first (`--partition-by region,month`).
    pub columns: Vec<String>,
    /// Keep the partition columns in the files too (Hive readers take them from the
    /// directory names, so by default the files leave them out).
    pub keep_columns: bool,
    /// Files open at once, past which the least recently written is closed.
    pub max_open_files: usize,
}

/// A table format's output: the run's files committed to the table in one transaction
/// (see `sink::delta`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub mode: TableMode,
    /// The table's partition columns (none: an unpartitioned table) and the open-file
    /// bound; the columns are never kept in the files, as Delta readers expect.
    pub layout: Dataset,
}

/// What a table run does with the rows already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TableMode {
    /// Adds the run's rows.
    Append,
    /// Replaces every row with the run's.
    Overwrite,
    /// Replaces the partitions the run wrote rows to (Delta's `replaceWhere`), leaving
    /// the others as they are.
    Replace,
}

/// Files a dataset keeps open at once by default (DuckDB's default for its partitioned
/// writes is the same).
pub const DEFAULT_MAX_OPEN_FILES: usize = 100;

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

/// The number of the split output's part named `name` (beside `output`): `out-00003.parquet`
/// -> 3; `None` for any other name.
pub fn part_index(output: &Path, name: &str) -> Option<usize> {
    let first = part_path(Path::new(output.file_name()?), 0);
    let first = first.to_str()?;
    let ext = output.extension().map_or(0, |e| e.len() + 1);
    // `STEM-` and `.EXT` around the five digits of part 0's name.
    let (prefix, suffix) = (&first[..first.len() - 5 - ext], &first[first.len() - ext..]);
    let digits = name.strip_prefix(prefix)?.strip_suffix(suffix)?;
    if digits.len() != 5 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
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

/// Why an output path's template cannot be filled in.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TemplateError {
    #[error("`{{{0}}}` names no parameter of the query")]
    Unknown(String),
    #[error("`{{` without its closing `}}` (write `{{{{` for a brace)")]
    Unclosed,
    #[error("`}}` without its opening `{{` (write `}}}}` for a brace)")]
    Unopened,
    #[error(
        "parameter `{name}` = {value:?} cannot be part of a path (a `/`, `\\`, `..` or nothing)"
    )]
    NotAPathPart { name: String, value: String },
}

/// Fills in an output path's template: `{name}` is parameter `name`'s value (as the
/// query receives it), `{{` and `}}` are braces. A value is one path component at most:
/// it cannot lead the file out of the directory the template names.
pub fn expand(template: &Path, params: &crate::sql::Params) -> Result<PathBuf, TemplateError> {
    let text = template.to_string_lossy();
    if !text.contains(['{', '}']) {
        return Ok(template.to_owned());
    }
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                out.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                out.push('}');
            }
            '}' => return Err(TemplateError::Unopened),
            '{' => {
                let mut name = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(c) => name.push(c),
                        None => return Err(TemplateError::Unclosed),
                    }
                }
                let value = params
                    .get(name.trim())
                    .ok_or_else(|| TemplateError::Unknown(name.clone()))?
                    .to_string();
                if value.is_empty()
                    || value.contains(['/', '\\', '\0'])
                    || value == ".."
                    || value == "."
                {
                    return Err(TemplateError::NotAPathPart {
                        name: name.trim().to_string(),
                        value,
                    });
                }
                out.push_str(&value);
            }
            c => out.push(c),
        }
    }
    Ok(PathBuf::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::ParamValue;

    #[test]
    fn part_names() {
        assert_eq!(
            part_path(Path::new("/d/out.parquet"), 3),
            Path::new("/d/out-00003.parquet")
        );
        assert_eq!(part_path(Path::new("out"), 0), Path::new("out-00000"));
    }

    #[test]
    fn part_numbers_are_read_back_from_names_only() {
        let output = Path::new("/d/out.parquet");
        assert_eq!(part_index(output, "out-00003.parquet"), Some(3));
        assert_eq!(part_index(output, "out-12345.parquet"), Some(12345));
        for other in [
            "out.parquet",
            "out-0003.parquet",
            "out-0000a.parquet",
            "x-00001.parquet",
        ] {
            assert_eq!(part_index(output, other), None, "{other}");
        }
        assert_eq!(part_index(Path::new("out"), "out-00001"), Some(1));
        assert_eq!(part_index(Path::new("out"), "out-00001.parquet"), None);
    }

    fn params() -> crate::sql::Params {
        [
            ("from".to_string(), ParamValue::Text("2026-12-05".into())),
            ("region".to_string(), ParamValue::Text("eu/west".into())),
            ("n".to_string(), ParamValue::Int(7)),
            ("up".to_string(), ParamValue::Text("..".into())),
        ]
        .into_iter()
        .collect()
    }

    #[test]
    fn a_template_takes_the_parameters_values() {
        let p = params();
        assert_eq!(
            expand(Path::new("out/day={from}/n{ n }.parquet"), &p).unwrap(),
            PathBuf::from("out/day=2026-12-05/n7.parquet")
        );
        assert_eq!(
            expand(Path::new("out/{{x}}.parquet"), &p).unwrap(),
            PathBuf::from("out/{x}.parquet")
        );
        assert_eq!(
            expand(Path::new("plain.parquet"), &p).unwrap(),
            PathBuf::from("plain.parquet")
        );
    }

    #[test]
    fn a_template_that_cannot_be_filled_is_refused() {
        let p = params();
        assert_eq!(
            expand(Path::new("out/{to}.parquet"), &p),
            Err(TemplateError::Unknown("to".into()))
        );
        assert_eq!(
            expand(Path::new("out/{from.parquet"), &p),
            Err(TemplateError::Unclosed)
        );
        assert_eq!(
            expand(Path::new("out/from}.parquet"), &p),
            Err(TemplateError::Unopened)
        );
        assert!(matches!(
            expand(Path::new("out/{region}.parquet"), &p),
            Err(TemplateError::NotAPathPart { name, .. }) if name == "region"
        ));
        assert!(matches!(
            expand(Path::new("out/{up}/x.parquet"), &p),
            Err(TemplateError::NotAPathPart { name, .. }) if name == "up"
        ));
    }
}
