//! `JobConfig -> Plan`: the tasks to run, one per shard times one per partition, each with
//! the exact SQL its source receives. Pure: what had to be learned from the databases
//! (a partition key's bounds, a table's size, an exported snapshot) arrives as a
//! [`ShardLayout`] per shard, so planning itself does no I/O and the plan can be printed
//! (`tributary plan`) and tested without a database. The one step that asks a shard,
//! [`split_shard`], does so through the [`ShardProbe`] its source implements.

pub mod partition;
mod probe;
pub mod slices;
pub mod window;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::combine::{self, Dialect, InputTypes};
use crate::config::{Combine, JobConfig, PageSplit, PartitionSpec, SourceConfig};
use crate::error::TaskError;
use crate::sql::ParamValue;

use partition::Partition;
pub use probe::{ShardProbe, split_shard};

/// What one task sends to its source.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskQuery {
    /// PostgreSQL: the query is wrapped in COPY, which takes no bind parameters, so
    /// parameters are inlined as quoted literals.
    Postgres { sql: String },
    /// SQLite: numbered placeholders and the values bound to them.
    Sqlite { sql: String, binds: Vec<ParamValue> },
    /// MySQL and MariaDB: a prepared statement, one `?` per parameter reference and the
    /// values bound to them in order, so that no value is ever part of the SQL text.
    Mysql { sql: String, binds: Vec<ParamValue> },
}

impl TaskQuery {
    pub fn sql(&self) -> &str {
        match self {
            TaskQuery::Postgres { sql }
            | TaskQuery::Sqlite { sql, .. }
            | TaskQuery::Mysql { sql, .. } => sql,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    /// Index in [`Plan::tasks`].
    pub id: usize,
    /// Index of the shard in the job's shard list.
    pub shard: usize,
    pub shard_name: String,
    /// A label for the partition, when the shard is split.
    pub partition: Option<String>,
    pub query: TaskQuery,
    /// The exported snapshot the task imports, so that all partitions of a shard read
    /// one consistent state.
    pub snapshot: Option<String>,
}

/// What probing one shard found.
#[derive(Debug, Clone, PartialEq)]
pub struct ShardLayout {
    /// The partitions the shard's query splits into.
    pub partitions: Vec<Partition>,
    /// The snapshot the partitions read, when consistency is on.
    pub snapshot: Option<String>,
    /// An incremental job's window on the shard's rows.
    pub window: Option<window::Window>,
}

#[derive(Debug)]
pub struct Plan {
    pub tasks: Vec<Task>,
    /// Shards that could not be planned (their probe failed): each fails the run unless
    /// `--allow-partial`.
    pub failed: Vec<TaskError>,
    /// The snapshot each shard's partitions read, by shard name.
    pub snapshots: BTreeMap<String, String>,
    /// Shards whose split depends on what a probe finds, planned without one
    /// ([`offline`]): their tasks are known only at run time.
    pub deferred: Vec<Deferred>,
    /// The final step across shards, when the job has one.
    pub final_step: Option<FinalPlan>,
    /// An incremental job's window on each shard, by shard name.
    pub windows: BTreeMap<String, window::Window>,
}

/// The final step over every task's result (`combine`).
#[derive(Debug, Clone, PartialEq)]
pub struct FinalPlan {
    /// Why the query is combined, and how.
    pub why: String,
    /// Its SQL over the table `shards`.
    pub sql: String,
    /// The output's column names when the SQL's are internal.
    pub names: Option<Vec<String>>,
    /// Columns of `shards` left out of the output.
    pub hidden: Vec<String>,
    pub avg_scales: Vec<i8>,
    /// The order each task's rows arrive in (columns of `shards`), which the final step
    /// merges rather than sorts again where it can compare as the shards did.
    pub sorted: Vec<combine::SortKey>,
}

impl FinalPlan {
    fn of(config: &JobConfig, types: &InputTypes) -> Option<FinalPlan> {
        match &config.combine {
            Combine::Off => None,
            Combine::Merge(sql) => Some(FinalPlan {
                why: "--merge: the given SQL over the table `shards`, the union of every shard's rows".into(),
                sql: sql.clone(),
                names: None,
                hidden: Vec::new(),
                avg_scales: Vec::new(),
                sorted: Vec::new(),
            }),
            Combine::Split { split, .. } => Some(FinalPlan {
                why: split.why.clone(),
                sql: combine::final_sql(split, types),
                names: split.output_names(),
                hidden: split.finish.hidden.clone(),
                avg_scales: combine::avg_scales(split, types),
                sorted: match split.strategy {
                    combine::Strategy::Rows => split.partial.order_by.clone(),
                    // The shards' groups are not in the final order.
                    combine::Strategy::Aggregate => Vec::new(),
                },
            }),
        }
    }
}

/// A shard planned without probing it: how its query will be split, and the query.
#[derive(Debug, Clone, PartialEq)]
pub struct Deferred {
    pub shard_name: String,
    /// The whole query as the shard receives it, before the split.
    pub query: TaskQuery,
    /// What the run probes to read it, in words.
    pub split: String,
}

/// The plan of an unpartitioned job: one task per shard.
pub fn unpartitioned(config: &JobConfig, types: &InputTypes) -> Plan {
    plan(
        config,
        config.shards.iter().map(|_| Ok(None)).collect(),
        types,
    )
}

/// The SQL dialect of shard `index`.
pub fn dialect(config: &JobConfig, index: usize) -> Dialect {
    match &config.shards[index].source {
        SourceConfig::Postgres(_) => Dialect::Postgres,
        SourceConfig::Sqlite(_) => Dialect::Sqlite,
        SourceConfig::Mysql(_) => Dialect::Mysql,
    }
}

/// Checks that every shard can run its part of a split query with the columns' `types`
/// (an unbounded numeric cannot be summed exactly; SQLite has no bit_and).
pub fn check_split(config: &JobConfig, types: &InputTypes) -> Result<(), combine::CombineError> {
    if let Combine::Split { split, .. } = &config.combine {
        for (i, shard) in config.shards.iter().enumerate() {
            combine::shard_sql(split, "", dialect(config, i), types, &shard.name)?;
        }
    }
    Ok(())
}

/// What a task of shard `index` sends: `rows` (the row query, or the whole query when
/// the job has no split, restricted to the task's partition) under the split's partial
/// step.
fn shard_query(config: &JobConfig, index: usize, rows: TaskQuery, types: &InputTypes) -> TaskQuery {
    let Combine::Split { split, .. } = &config.combine else {
        return rows;
    };
    let wrap = |sql: &str| {
        combine::shard_sql(
            split,
            sql,
            dialect(config, index),
            types,
            &config.shards[index].name,
        )
        .expect("checked by check_split before planning")
    };
    match rows {
        TaskQuery::Postgres { sql } => TaskQuery::Postgres { sql: wrap(&sql) },
        TaskQuery::Sqlite { sql, binds } => TaskQuery::Sqlite {
            sql: wrap(&sql),
            binds,
        },
        TaskQuery::Mysql { sql, binds } => TaskQuery::Mysql {
            sql: wrap(&sql),
            binds,
        },
    }
}

/// Plans a job from what each shard's probe found (`Ok(None)`: run the shard whole).
/// Parameters were checked when the config was resolved.
pub fn plan(
    config: &JobConfig,
    layouts: Vec<Result<Option<ShardLayout>, TaskError>>,
    types: &InputTypes,
) -> Plan {
    let mut tasks = Vec::new();
    let mut failed = Vec::new();
    let mut snapshots = BTreeMap::new();
    let mut windows = BTreeMap::new();
    for ((index, shard), layout) in config.shards.iter().enumerate().zip(layouts) {
        let mut base = base_query(config, index);
        if let Ok(Some(ShardLayout {
            window: Some(w), ..
        })) = &layout
        {
            base = window_query(&base, w);
            windows.insert(shard.name.clone(), w.clone());
        }
        let mut push = |query: TaskQuery, label: Option<String>, snapshot: Option<String>| {
            tasks.push(Task {
                id: tasks.len(),
                shard: index,
                shard_name: shard.name.clone(),
                partition: label,
                query: shard_query(config, index, query, types),
                snapshot,
            })
        };
        match (layout, &config.options.partition) {
            (Err(e), _) => failed.push(e),
            (Ok(None), _) => push(base, None, None),
            (Ok(Some(layout)), None) => {
                if let Some(id) = &layout.snapshot {
                    snapshots.insert(shard.name.clone(), id.clone());
                }
                push(base, None, layout.snapshot)
            }
            (Ok(Some(layout)), Some(spec)) => {
                if let Some(id) = &layout.snapshot {
                    snapshots.insert(shard.name.clone(), id.clone());
                }
                let count = layout.partitions.len();
                for (k, partition) in layout.partitions.iter().enumerate() {
                    let query = restrict_query(&base, spec, partition);
                    let label = format!("{}/{count} {partition}", k + 1);
                    push(query, Some(label), layout.snapshot.clone());
                }
            }
        }
    }
    Plan {
        tasks,
        failed,
        snapshots,
        deferred: Vec::new(),
        final_step: FinalPlan::of(config, types),
        windows,
    }
}

/// Shard `shard`'s incremental window: after its last mark (less the lookback), up to the
/// mark `probe` finds now in `base`'s result.
pub async fn window_of(
    inc: &crate::config::Incremental,
    shard: &str,
    base: &TaskQuery,
    probe: &impl ShardProbe,
) -> Result<window::Window, TaskError> {
    let upto = probe.high_mark(base, &inc.column).await?;
    let after = match (inc.last.get(shard), &inc.lookback) {
        (None, _) => None,
        (Some(last), None) => Some(last.clone()),
        (Some(last), Some(lookback)) => Some(last.minus(lookback).ok_or_else(|| {
            TaskError::new(
                shard,
                crate::error::TaskErrorKind::Partition {
                    message: format!(
                        "[incremental] lookback {lookback:?} does not apply to `{}`, whose mark is {last:?}: a duration for date and timestamp columns, a number for integer ones",
                        inc.column
                    ),
                },
            )
        })?),
    };
    Ok(window::Window {
        column: inc.column.clone(),
        after,
        upto,
    })
}

/// A task's query restricted to an incremental window.
pub fn window_query(base: &TaskQuery, window: &window::Window) -> TaskQuery {
    match base {
        TaskQuery::Postgres { sql } => TaskQuery::Postgres {
            sql: window.restrict(sql),
        },
        TaskQuery::Sqlite { sql, binds } => TaskQuery::Sqlite {
            sql: window.restrict(sql),
            binds: binds.clone(),
        },
        TaskQuery::Mysql { sql, binds } => TaskQuery::Mysql {
            sql: window.restrict_mysql(sql),
            binds: binds.clone(),
        },
    }
}

/// The plan as far as it can be known without connecting to any shard: every task of an
/// unpartitioned job, or of partitions that need no probe (given range bounds, hash
/// buckets, predicates); for probed ranges and page ranges, each shard's query and how
/// the run will split it ([`Plan::deferred`]).
pub fn offline(config: &JobConfig) -> Plan {
    let types = InputTypes::new();
    if let Some(inc) = &config.incremental {
        return offline_incremental(config, inc, &types);
    }
    let Some(spec) = &config.options.partition else {
        return unpartitioned(config, &types);
    };
    if let Some(partitions) = partition::partitions_without_probe(spec) {
        let layouts = config
            .shards
            .iter()
            .map(|_| {
                Ok(Some(ShardLayout {
                    partitions: partitions.clone(),
                    snapshot: None,
                    window: None,
                }))
            })
            .collect();
        return plan(config, layouts, &types);
    }
    let split = match spec {
        PartitionSpec::Range {
            column, partitions, ..
        } => {
            let c = crate::sql::quote_ident(column);
            format!(
                "{partitions} ranges of `{column}` and one for NULL keys, between the bounds probed at run time (SELECT min({c}), max({c}) over the query)"
            )
        }
        PartitionSpec::Pages { table, split } => {
            let size = match split {
                PageSplit::Tasks(n) => format!("{n} ranges"),
                PageSplit::PerTask(n) => format!("ranges of {n} pages"),
            };
            format!(
                "{size} of table `{table}`'s heap pages, from its size at run time (pg_relation_size), each read through a TID range scan"
            )
        }
        // Split without a probe above.
        PartitionSpec::Hash { .. } | PartitionSpec::Predicates(_) => String::new(),
    };
    Plan {
        tasks: Vec::new(),
        failed: Vec::new(),
        snapshots: BTreeMap::new(),
        deferred: (0..config.shards.len())
            .map(|i| Deferred {
                shard_name: config.shards[i].name.clone(),
                query: shard_query(config, i, base_query(config, i), &types),
                split: format!("split at run time into {split}"),
            })
            .collect(),
        final_step: FinalPlan::of(config, &types),
        windows: BTreeMap::new(),
    }
}

/// An incremental job's offline plan: each shard's window ends at a mark probed at run
/// time, so every shard is deferred, with the mark its window starts after.
fn offline_incremental(
    config: &JobConfig,
    inc: &crate::config::Incremental,
    types: &InputTypes,
) -> Plan {
    let partitions = match &config.options.partition {
        None => String::new(),
        Some(_) => ", then partitioned as configured".into(),
    };
    Plan {
        tasks: Vec::new(),
        failed: Vec::new(),
        snapshots: BTreeMap::new(),
        deferred: (0..config.shards.len())
            .map(|i| {
                let shard = &config.shards[i].name;
                let after = match inc.last.get(shard) {
                    Some(mark) => format!("`{}` > {}", inc.column, mark.literal()),
                    None => format!("every `{}` (no mark recorded yet)", inc.column),
                };
                Deferred {
                    shard_name: shard.clone(),
                    query: shard_query(config, i, base_query(config, i), types),
                    split: format!(
                        "read at run time: the incremental window of {after} up to the largest `{}` probed in the shard's snapshot{partitions}",
                        inc.column
                    ),
                }
            })
            .collect(),
        final_step: FinalPlan::of(config, types),
        windows: BTreeMap::new(),
    }
}

/// The whole query as shard `index` receives it, before partitions; for a split query,
/// its row query (which partitions restrict, and the partial step reads).
pub fn base_query(config: &JobConfig, index: usize) -> TaskQuery {
    let query = match &config.combine {
        Combine::Split { rows, .. } => rows,
        _ => &config.query,
    };
    match &config.shards[index].source {
        SourceConfig::Postgres(_) => TaskQuery::Postgres {
            sql: query.render_pg_literals(&config.params),
        },
        SourceConfig::Sqlite(_) => {
            let (sql, binds) = query.render_numbered(&config.params);
            TaskQuery::Sqlite {
                sql,
                binds: binds.into_iter().cloned().collect(),
            }
        }
        SourceConfig::Mysql(_) => {
            let (sql, binds) = query.render_positional(&config.params);
            TaskQuery::Mysql {
                sql,
                binds: binds.into_iter().cloned().collect(),
            }
        }
    }
}

/// A task's query restricted to one partition (see [`restrict`]).
fn restrict_query(base: &TaskQuery, spec: &PartitionSpec, partition: &Partition) -> TaskQuery {
    match base {
        TaskQuery::Postgres { sql } => TaskQuery::Postgres {
            sql: restrict(sql, spec, partition),
        },
        TaskQuery::Sqlite { sql, binds } => TaskQuery::Sqlite {
            sql: restrict(sql, spec, partition),
            binds: binds.clone(),
        },
        TaskQuery::Mysql { sql, binds } => TaskQuery::Mysql {
            sql: restrict_mysql(sql, spec, partition),
            binds: binds.clone(),
        },
    }
}

/// The query restricted to one partition: filtered on its result, or (for page ranges)
/// with the table shadowed by a common table expression of the same name that reads only
/// the partition's pages. A non-recursive CTE does not see its own name, so inside it the
/// name still means the table.
fn restrict(sql: &str, spec: &PartitionSpec, partition: &Partition) -> String {
    match (spec, partition) {
        (PartitionSpec::Pages { table, .. }, _) => {
            let name = partition::shadowed_name(table);
            let cte = format!(
                "{name} AS (SELECT * FROM {table} WHERE {})",
                partition.predicate("")
            );
            match crate::sql::text::strip_leading_with(sql) {
                Some(rest) => format!("WITH {cte},\n{rest}"),
                None => format!("WITH {cte}\n{sql}"),
            }
        }
        (PartitionSpec::Range { column, .. } | PartitionSpec::Hash { column, .. }, _) => {
            format!(
                "SELECT * FROM (\n{sql}\n) AS tributary_partition WHERE {}",
                partition.predicate(column)
            )
        }
        (PartitionSpec::Predicates(_), _) => {
            format!(
                "SELECT * FROM (\n{sql}\n) AS tributary_partition WHERE {}",
                partition.predicate("")
            )
        }
    }
}

/// [`restrict`] in MySQL's dialect: backquoted identifiers, MySQL's literals and hash
/// function. Page partitions are PostgreSQL's only (refused before planning).
fn restrict_mysql(sql: &str, spec: &PartitionSpec, partition: &Partition) -> String {
    let column = match spec {
        PartitionSpec::Range { column, .. } | PartitionSpec::Hash { column, .. } => column,
        PartitionSpec::Predicates(_) | PartitionSpec::Pages { .. } => "",
    };
    format!(
        "SELECT * FROM (\n{sql}\n) AS tributary_partition WHERE {}",
        partition.mysql_predicate(column)
    )
}

impl Plan {
    /// The plan as text, with the server's row estimate of each task when given.
    pub fn describe(&self, estimates: Option<&[Option<f64>]>) -> String {
        let mut out = String::new();
        for (shard, id) in &self.snapshots {
            let _ = writeln!(out, "shard `{shard}` reads snapshot {id}");
        }
        for task in &self.tasks {
            let _ = write!(out, "task {} on shard `{}`", task.id, task.shard_name);
            if let Some(p) = &task.partition {
                let _ = write!(out, " ({p})");
            }
            if let Some(Some(rows)) = estimates.and_then(|e| e.get(task.id)) {
                let _ = write!(out, ", estimated {rows:.0} rows");
            }
            let _ = writeln!(out, ":");
            write_query(&mut out, &task.query);
        }
        for d in &self.deferred {
            let _ = writeln!(
                out,
                "shard `{}`, {}; the query before the split:",
                d.shard_name, d.split
            );
            write_query(&mut out, &d.query);
        }
        for e in &self.failed {
            let _ = writeln!(out, "shard `{}` cannot be planned: {}", e.shard, e.kind);
        }
        if let Some(step) = &self.final_step {
            let _ = writeln!(
                out,
                "final step ({}), over the table `shards` holding every task's rows:\n  {}",
                step.why, step.sql
            );
        }
        out
    }
}

/// The parameters as `tributary plan` shows them, before the tasks: each one's value and,
/// for a relative date, the expression, with the instant and zone it was evaluated at.
/// Empty when the query takes none.
pub fn describe_params(config: &JobConfig) -> String {
    let mut out = String::new();
    if config.params.is_empty() {
        return out;
    }
    let _ = match config.relative.is_empty() {
        true => writeln!(out, "parameters:"),
        false => writeln!(
            out,
            "parameters (relative dates as of {} in {}):",
            crate::config::dates::rfc3339(&config.as_of),
            config.timezone()
        ),
    };
    for (name, value) in &config.params {
        let _ = match value {
            ParamValue::Text(text) => write!(out, "  :{name} = {text:?}"),
            other => write!(out, "  :{name} = {other}"),
        };
        let _ = match config.relative.get(name) {
            Some(expression) => writeln!(out, " from {expression}"),
            None => writeln!(out),
        };
    }
    out
}

/// The reader profile as `tributary plan` shows it (`--for`): the renderings it writes
/// for the readers named. Empty without a profile.
pub fn describe_readers(config: &JobConfig) -> String {
    let readers = config.options.readers;
    if readers.is_empty() {
        return String::new();
    }
    let profile = crate::types::Profile {
        readers,
        rules: config.options.types.clone(),
    };
    let mut out = format!("for {readers}:");
    let rules = profile.describe();
    if rules.is_empty() {
        out.push_str(" every column as the type table writes it\n");
        return out;
    }
    out.push('\n');
    for rule in rules {
        let _ = writeln!(out, "  {rule}");
    }
    let _ = writeln!(
        out,
        "  (unless a column's own type option says otherwise; columns whose names differ only in case are refused for Spark, Trino and BigQuery)"
    );
    out
}

/// A task's statement, indented under its heading.
fn write_query(out: &mut String, query: &TaskQuery) {
    match query {
        TaskQuery::Postgres { sql } => {
            let _ = writeln!(
                out,
                "  COPY (\n    {}\n  ) TO STDOUT (FORMAT binary)",
                sql.trim().replace('\n', "\n    ")
            );
        }
        TaskQuery::Sqlite { sql, binds } => {
            let _ = writeln!(out, "  {}", sql.trim().replace('\n', "\n  "));
            for (i, b) in binds.iter().enumerate() {
                let _ = writeln!(out, "  ?{} = {b:?}", i + 1);
            }
        }
        TaskQuery::Mysql { sql, binds } => {
            let _ = writeln!(out, "  {}", sql.trim().replace('\n', "\n  "));
            for (i, b) in binds.iter().enumerate() {
                let _ = writeln!(out, "  ? #{} = {b:?}", i + 1);
            }
        }
    }
}

impl std::fmt::Display for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe(None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{JobConfig, RunArgs};

    #[test]
    fn one_task_per_shard_rendered_for_its_kind() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("q.sql"),
            "SELECT * FROM t WHERE d = :day AND r = :day",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("s.toml"),
            "[shards]\na = \"postgres://u@h/d\"\nb = \"sqlite://b.db\"\n",
        )
        .unwrap();
        let config = JobConfig::resolve(RunArgs {
            query: Some(dir.path().join("q.sql")),
            shards: Some(dir.path().join("s.toml")),
            output: Some(dir.path().join("o.parquet")),
            params: vec![("day".into(), "2024-01-01".into())],
            ..Default::default()
        })
        .unwrap();
        let plan = unpartitioned(&config, &InputTypes::new());
        assert_eq!(plan.tasks.len(), 2);
        assert_eq!(
            plan.tasks[0].query,
            TaskQuery::Postgres {
                sql: "SELECT * FROM t WHERE d = ('2024-01-01') AND r = ('2024-01-01')".into()
            }
        );
        assert_eq!(
            plan.tasks[1].query,
            TaskQuery::Sqlite {
                sql: "SELECT * FROM t WHERE d = ?1 AND r = ?1".into(),
                binds: vec![ParamValue::Text("2024-01-01".into())]
            }
        );
        assert!(plan.to_string().contains("COPY ("));
    }

    #[test]
    fn parameters_show_their_values_and_relative_dates_their_expressions() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("q.sql"), "SELECT :from, :n, :to").unwrap();
        std::fs::write(
            dir.path().join("s.toml"),
            "[shards]\nb = \"sqlite://b.db\"\n",
        )
        .unwrap();
        let args = |params: &[(&str, &str)]| RunArgs {
            query: Some(dir.path().join("q.sql")),
            shards: Some(dir.path().join("s.toml")),
            params: params
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            as_of: Some("2026-03-08T12:00:00".into()),
            timezone: Some("America/New_York".into()),
            ..Default::default()
        };
        let config =
            JobConfig::resolve_for_plan(args(&[("from", "@now-24h"), ("n", "7"), ("to", "@@x")]))
                .unwrap();
        assert_eq!(
            describe_params(&config),
            "parameters (relative dates as of 2026-03-08T12:00:00-04:00 in America/New_York):\n  \
             :from = \"2026-03-07T11:00:00-05:00\" from @now-24h\n  \
             :n = \"7\"\n  \
             :to = \"@x\"\n"
        );
        let config =
            JobConfig::resolve_for_plan(args(&[("from", "a"), ("n", "7"), ("to", "b")])).unwrap();
        assert_eq!(
            describe_params(&config),
            "parameters:\n  :from = \"a\"\n  :n = \"7\"\n  :to = \"b\"\n"
        );
    }
}
