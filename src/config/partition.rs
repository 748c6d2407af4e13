//! Partition settings: how the user asks to split each shard's query into tasks (the
//! `--partition-on`/`--partitions` flags over the job file's `[partition]` table), checked
//! against the shards and the query. What the partitions are, as data and SQL, is the
//! plan's (`plan::partition`).

use super::{RunArgs, ShardConfig, SourceConfig};
use crate::sql::KeyValue;
use crate::sql::text::{starts_recursive, strip_leading_with};

/// Heap pages per task of a `pages` partition that sets neither `partitions` nor
/// `pages_per_task` (8 MB of table each).
pub const DEFAULT_PAGES_PER_TASK: u64 = 1000;

/// How the user asked to split the query.
#[derive(Debug, Clone, PartialEq)]
pub enum PartitionSpec {
    Range {
        column: String,
        partitions: usize,
        /// Bounds given by the user instead of probed (lower, upper), as literals.
        bounds: Option<(KeyValue, KeyValue)>,
    },
    Hash {
        column: String,
        partitions: usize,
    },
    Predicates(Vec<String>),
    Pages {
        table: String,
        split: PageSplit,
    },
}

/// How a page-partitioned table is cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageSplit {
    /// Ranges of this many heap pages (the last one open-ended).
    PerTask(u64),
    /// This many ranges of equal size (fewer for a table of fewer pages).
    Tasks(usize),
}

/// The job file's `[partition]` table.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PartitionFile {
    /// `range` (default), `hash`, `predicates` or `pages`.
    kind: Option<String>,
    column: Option<String>,
    partitions: Option<usize>,
    lower: Option<toml::Value>,
    upper: Option<toml::Value>,
    predicates: Option<Vec<String>>,
    table: Option<String>,
    pages_per_task: Option<u64>,
}

/// Partition settings that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PartitionSettingError {
    #[error("partitions must be at least 1")]
    ZeroPartitions,
    #[error("give the number of partitions (--partitions N, or `partitions` in [partition])")]
    NoCount,
    #[error("--partitions needs --partition-on COLUMN")]
    CountWithoutColumn,
    #[error("[partition] needs `column`")]
    NoColumn,
    #[error("[partition] needs both `lower` and `upper`, or neither")]
    OneBound,
    #[error("`lower` and `upper` must be of one kind (integers, dates or timestamps)")]
    MixedBounds,
    /// A bound that reads as a date or date-time in TOML but not in chrono.
    #[error("{0}")]
    BadBound(chrono::ParseError),
    /// A bound of another TOML kind (shown as TOML writes it).
    #[error("a bound must be an integer, a date or a date-time, not {0}")]
    NotABound(String),
    #[error("[partition] of kind `predicates` needs a non-empty `predicates` list")]
    NoPredicates,
    #[error("[partition] of kind `pages` takes `partitions` or `pages_per_task`, not both")]
    PagesTwice,
    #[error("[partition] of kind `pages` needs `table`")]
    NoTable,
    #[error("unknown partition kind `{0}`: use range, hash, predicates or pages")]
    UnknownKind(String),
    /// Hash and page partitions use PostgreSQL functions and system columns.
    #[error("{kind} partitions need PostgreSQL{}; shard `{shard}` is not", if *kind == "hash" { " or MySQL" } else { "" })]
    NeedsPostgres { kind: &'static str, shard: String },
}

/// The partitioning asked for: `--partition-on`/`--partitions` over the job file's
/// `[partition]` table.
pub(super) fn partition_spec(
    args: &RunArgs,
    file: Option<&PartitionFile>,
) -> Result<Option<PartitionSpec>, PartitionSettingError> {
    if let Some(column) = &args.partition_on {
        let n = args.partitions.or(file.and_then(|f| f.partitions));
        return Ok(Some(PartitionSpec::Range {
            column: column.clone(),
            partitions: count(n)?,
            bounds: None,
        }));
    }
    let Some(file) = file else {
        if args.partitions.is_some() {
            return Err(PartitionSettingError::CountWithoutColumn);
        }
        return Ok(None);
    };
    let partitions = args.partitions.or(file.partitions);
    let column = || file.column.clone().ok_or(PartitionSettingError::NoColumn);
    let spec = match file.kind.as_deref().unwrap_or("range") {
        "range" => PartitionSpec::Range {
            bounds: bounds(file)?,
            column: column()?,
            partitions: count(partitions)?,
        },
        "hash" => PartitionSpec::Hash {
            column: column()?,
            partitions: count(partitions)?,
        },
        "predicates" => {
            let list = file.predicates.clone().unwrap_or_default();
            if list.is_empty() {
                return Err(PartitionSettingError::NoPredicates);
            }
            PartitionSpec::Predicates(list)
        }
        "pages" => PartitionSpec::Pages {
            split: page_split(args, file)?,
            table: file.table.clone().ok_or(PartitionSettingError::NoTable)?,
        },
        other => return Err(PartitionSettingError::UnknownKind(other.to_string())),
    };
    Ok(Some(spec))
}

/// The number of partitions asked for.
fn count(n: Option<usize>) -> Result<usize, PartitionSettingError> {
    match n {
        Some(0) => Err(PartitionSettingError::ZeroPartitions),
        Some(n) => Ok(n),
        None => Err(PartitionSettingError::NoCount),
    }
}

/// The bounds of a range partition given in the job file, if any.
fn bounds(file: &PartitionFile) -> Result<Option<(KeyValue, KeyValue)>, PartitionSettingError> {
    let bounds = match (&file.lower, &file.upper) {
        (None, None) => None,
        (Some(lo), Some(hi)) => Some((key_value(lo)?, key_value(hi)?)),
        _ => return Err(PartitionSettingError::OneBound),
    };
    if let Some((lo, hi)) = bounds
        && std::mem::discriminant(&lo) != std::mem::discriminant(&hi)
    {
        return Err(PartitionSettingError::MixedBounds);
    }
    Ok(bounds)
}

/// How a page-partitioned table is cut: `--partitions` on the command line overrides
/// either key of the file.
fn page_split(args: &RunArgs, file: &PartitionFile) -> Result<PageSplit, PartitionSettingError> {
    Ok(
        match (args.partitions, file.partitions, file.pages_per_task) {
            (Some(n), _, _) | (None, Some(n), None) => PageSplit::Tasks(count(Some(n))?),
            (None, Some(_), Some(_)) => return Err(PartitionSettingError::PagesTwice),
            (None, None, per_task) => PageSplit::PerTask(
                per_task
                    .filter(|n| *n > 0)
                    .unwrap_or(DEFAULT_PAGES_PER_TASK),
            ),
        },
    )
}

/// A `lower`/`upper` bound: an integer, a date or a date-time.
fn key_value(v: &toml::Value) -> Result<KeyValue, PartitionSettingError> {
    use PartitionSettingError::BadBound;
    match v {
        toml::Value::Integer(i) => Ok(KeyValue::Int(*i)),
        toml::Value::Datetime(d) => {
            let text = d.to_string();
            if d.time.is_none() {
                let date =
                    chrono::NaiveDate::parse_from_str(&text, "%Y-%m-%d").map_err(BadBound)?;
                let days =
                    (date - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid")).num_days();
                return Ok(KeyValue::Date(days as i32));
            }
            if d.offset.is_some() {
                let t = chrono::DateTime::parse_from_rfc3339(&text).map_err(BadBound)?;
                return Ok(KeyValue::Timestamp {
                    micros: t.timestamp_micros(),
                    utc: true,
                });
            }
            let t = chrono::NaiveDateTime::parse_from_str(&text, "%Y-%m-%dT%H:%M:%S%.f")
                .map_err(BadBound)?;
            Ok(KeyValue::Timestamp {
                micros: t.and_utc().timestamp_micros(),
                utc: false,
            })
        }
        other => Err(PartitionSettingError::NotABound(other.to_string())),
    }
}

/// Hash and page partitions use PostgreSQL functions and system columns.
pub(super) fn check_partition_sources(
    spec: &PartitionSpec,
    shards: &[ShardConfig],
) -> Result<(), PartitionSettingError> {
    let kind = match spec {
        PartitionSpec::Hash { .. } => "hash",
        PartitionSpec::Pages { .. } => "pages",
        _ => return Ok(()),
    };
    // MySQL hashes with CRC32 (`Partition::mysql_predicate`); it has no heap pages.
    let supported = |source: &SourceConfig| match source {
        SourceConfig::Postgres(_) => true,
        SourceConfig::Mysql(_) => kind == "hash",
        _ => false,
    };
    match shards.iter().find(|s| !supported(&s.source)) {
        Some(s) => Err(PartitionSettingError::NeedsPostgres {
            kind,
            shard: s.name.clone(),
        }),
        None => Ok(()),
    }
}

/// A query that page partitions cannot split.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PagesQueryError {
    /// The table's shadowing CTE would be seen inside a recursive WITH.
    #[error(
        "page partitions cannot be used with WITH RECURSIVE queries; use range or hash partitions"
    )]
    Recursive,
}

/// Page partitions shadow the table with a CTE, which a recursive WITH would see inside
/// itself: such queries are refused.
pub fn check_pages_query(sql: &str) -> Result<(), PagesQueryError> {
    if strip_leading_with(sql).is_some_and(starts_recursive) {
        return Err(PagesQueryError::Recursive);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_flags_and_job_tables() {
        let args = RunArgs {
            partition_on: Some("id".into()),
            partitions: Some(4),
            ..Default::default()
        };
        assert_eq!(
            partition_spec(&args, None).unwrap(),
            Some(PartitionSpec::Range {
                column: "id".into(),
                partitions: 4,
                bounds: None
            })
        );
        let err = partition_spec(
            &RunArgs {
                partitions: Some(4),
                ..Default::default()
            },
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("--partition-on"), "{err}");
        let file: PartitionFile = toml::from_str(
            "column = \"day\"\npartitions = 3\nlower = 2024-01-01\nupper = 2024-12-31\n",
        )
        .unwrap();
        match partition_spec(&RunArgs::default(), Some(&file)).unwrap() {
            Some(PartitionSpec::Range {
                bounds: Some((KeyValue::Date(lo), KeyValue::Date(hi))),
                ..
            }) => {
                assert_eq!((lo, hi), (19_723, 20_088))
            }
            other => panic!("{other:?}"),
        }
        let file: PartitionFile =
            toml::from_str("kind = \"pages\"\ntable = \"lineitem\"\n").unwrap();
        assert_eq!(
            partition_spec(&RunArgs::default(), Some(&file)).unwrap(),
            Some(PartitionSpec::Pages {
                table: "lineitem".into(),
                split: PageSplit::PerTask(DEFAULT_PAGES_PER_TASK)
            })
        );
        let file: PartitionFile =
            toml::from_str("kind = \"pages\"\ntable = \"t\"\npartitions = 4\n").unwrap();
        let tasks = |args: &RunArgs, file: &PartitionFile| match partition_spec(args, Some(file)) {
            Ok(Some(PartitionSpec::Pages { split, .. })) => split,
            other => panic!("{other:?}"),
        };
        assert_eq!(tasks(&RunArgs::default(), &file), PageSplit::Tasks(4));
        let cli = RunArgs {
            partitions: Some(6),
            ..Default::default()
        };
        let file: PartitionFile =
            toml::from_str("kind = \"pages\"\ntable = \"t\"\npages_per_task = 50\n").unwrap();
        assert_eq!(tasks(&RunArgs::default(), &file), PageSplit::PerTask(50));
        assert_eq!(
            tasks(&cli, &file),
            PageSplit::Tasks(6),
            "the flag overrides the file"
        );
        let file: PartitionFile = toml::from_str(
            "kind = \"pages\"\ntable = \"t\"\npartitions = 4\npages_per_task = 50\n",
        )
        .unwrap();
        assert!(
            partition_spec(&RunArgs::default(), Some(&file))
                .unwrap_err()
                .to_string()
                .contains("not both")
        );
        let file: PartitionFile = toml::from_str("kind = \"hash\"\npartitions = 2\n").unwrap();
        assert!(
            partition_spec(&RunArgs::default(), Some(&file))
                .unwrap_err()
                .to_string()
                .contains("column")
        );
    }

    #[test]
    fn recursive_queries_cannot_be_split_into_pages() {
        assert!(check_pages_query("with recursive r AS (SELECT 1) SELECT * FROM r").is_err());
        assert!(check_pages_query("with r AS (SELECT 1) SELECT * FROM r").is_ok());
    }
}
