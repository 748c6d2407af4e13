//! `JobConfig -> Plan`: the tasks to run, one per shard (times one per partition when a
//! shard is split), each with the exact SQL its source receives. Pure: no I/O, so the plan
//! can be printed (`tributary plan`) and tested without a database.

use std::fmt;

use crate::config::{JobConfig, SourceConfig};
use crate::sql::ParamValue;

/// What one task sends to its source.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskQuery {
    /// PostgreSQL: the query is wrapped in COPY, which takes no bind parameters, so
    /// parameters are inlined as quoted literals.
    Postgres { sql: String },
    /// SQLite: numbered placeholders and the values bound to them.
    Sqlite { sql: String, binds: Vec<ParamValue> },
}

impl TaskQuery {
    pub fn sql(&self) -> &str {
        match self {
            TaskQuery::Postgres { sql } | TaskQuery::Sqlite { sql, .. } => sql,
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
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub tasks: Vec<Task>,
}

/// Plans a job. Parameters were checked when the config was resolved.
pub fn plan(config: &JobConfig) -> Plan {
    let tasks = config
        .shards
        .iter()
        .enumerate()
        .map(|(i, shard)| Task {
            id: i,
            shard: i,
            shard_name: shard.name.clone(),
            partition: None,
            query: match &shard.source {
                SourceConfig::Postgres(_) => TaskQuery::Postgres {
                    sql: config.query.render_pg_literals(&config.params),
                },
                SourceConfig::Sqlite(_) => {
                    let (sql, binds) = config.query.render_numbered(&config.params);
                    TaskQuery::Sqlite {
                        sql,
                        binds: binds.into_iter().cloned().collect(),
                    }
                }
            },
        })
        .collect();
    Plan { tasks }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for task in &self.tasks {
            write!(f, "task {} on shard `{}`", task.id, task.shard_name)?;
            if let Some(p) = &task.partition {
                write!(f, " ({p})")?;
            }
            writeln!(f, ":")?;
            match &task.query {
                TaskQuery::Postgres { sql } => writeln!(
                    f,
                    "  COPY (\n    {}\n  ) TO STDOUT (FORMAT binary)",
                    sql.trim().replace('\n', "\n    ")
                )?,
                TaskQuery::Sqlite { sql, binds } => {
                    writeln!(f, "  {}", sql.trim().replace('\n', "\n  "))?;
                    for (i, b) in binds.iter().enumerate() {
                        writeln!(f, "  ?{} = {b:?}", i + 1)?;
                    }
                }
            }
        }
        Ok(())
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
        let plan = plan(&config);
        assert_eq!(plan.tasks.len(), 2);
        assert_eq!(
            plan.tasks[0].query,
            TaskQuery::Postgres {
                sql: "SELECT * FROM t WHERE d = '2024-01-01' AND r = '2024-01-01'".into()
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
}
