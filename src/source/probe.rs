//! A shard's answers to what planning asks before it splits the shard's query
//! ([`ShardProbe`]): a range key's bounds, a page-partitioned table's size, and whether a
//! page range's query reads the table through the range.

use super::{ShardPool, SnapshotSession, postgres};
use crate::error::{TaskError, TaskErrorKind};
use crate::plan::window::Mark;
use crate::plan::{ShardProbe, TaskQuery};
use crate::sql::KeyValue;

/// A shard asked about its data, on its exported snapshot when the partitions share one.
pub struct Probe<'a> {
    pub(super) pool: &'a ShardPool,
    pub(super) session: Option<&'a SnapshotSession>,
}

impl ShardProbe for Probe<'_> {
    type PageTable = postgres::PageTable;

    async fn key_bounds(
        &self,
        query: &TaskQuery,
        column: &str,
    ) -> Result<Option<(KeyValue, KeyValue)>, TaskError> {
        match (self.pool, query) {
            (ShardPool::Postgres(pg), TaskQuery::Postgres { sql }) => {
                pg.probe_range(self.session, sql, column, postgres::KeyPurpose::Range)
                    .await
            }
            (ShardPool::Sqlite(s), TaskQuery::Sqlite { sql, binds }) => {
                s.probe_range(sql, binds, column).await
            }
            (ShardPool::Mysql(m), TaskQuery::Mysql { sql, binds }) => {
                m.probe_range(sql, binds, column).await
            }
            _ => unreachable!("the planner renders each query for its shard's kind"),
        }
    }

    async fn high_mark(&self, query: &TaskQuery, column: &str) -> Result<Option<Mark>, TaskError> {
        match (self.pool, query) {
            (ShardPool::Postgres(pg), TaskQuery::Postgres { sql }) => Ok(pg
                .probe_range(self.session, sql, column, postgres::KeyPurpose::Mark)
                .await?
                .map(|(_, max)| Mark::of_key(max))),
            (ShardPool::Sqlite(s), TaskQuery::Sqlite { sql, binds }) => {
                s.probe_mark(sql, binds, column).await
            }
            (ShardPool::Mysql(m), TaskQuery::Mysql { sql, binds }) => {
                m.probe_mark(sql, binds, column).await
            }
            _ => unreachable!("the planner renders each query for its shard's kind"),
        }
    }

    async fn page_table(&self, table: &str) -> Result<(postgres::PageTable, u64), TaskError> {
        match self.pool {
            ShardPool::Postgres(pg) => {
                let table = pg.page_table(self.session, table).await?;
                let pages = table.pages;
                Ok((table, pages))
            }
            ShardPool::Mysql(m) => Err(TaskError::new(
                m.name(),
                TaskErrorKind::Partition {
                    message: "page partitions need PostgreSQL".into(),
                },
            )),
            ShardPool::Sqlite(s) => Err(TaskError::new(
                s.name(),
                TaskErrorKind::Partition {
                    message: "page partitions need PostgreSQL".into(),
                },
            )),
        }
    }

    async fn check_page_scan(
        &self,
        table: &postgres::PageTable,
        query: &TaskQuery,
        shadow: &str,
    ) -> Result<(), TaskError> {
        match (self.pool, query) {
            (ShardPool::Postgres(pg), TaskQuery::Postgres { sql }) => {
                pg.check_page_scan(self.session, sql, table, shadow).await
            }
            _ => unreachable!("only a PostgreSQL shard resolves a page table"),
        }
    }
}
