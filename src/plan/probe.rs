//! Splitting one shard's query when the split depends on the shard's data: what planning
//! must learn from the shard is asked through [`ShardProbe`], which each source
//! implements, so the plan decides how to split and the sources only answer questions.

use std::future::Future;

use super::partition::{self, Partition};
use super::{TaskQuery, restrict_query};
use crate::config::PartitionSpec;
use crate::error::TaskError;
use crate::sql::KeyValue;

/// The questions planning asks a shard before it can split its query. Every answer is
/// read inside a READ ONLY transaction (on the shard's exported snapshot, when the
/// partitions share one), so that it describes what the partitions will read.
pub trait ShardProbe {
    /// A page-partitioned table as the shard resolves it, handed back to
    /// [`ShardProbe::check_page_scan`].
    type PageTable: Send + Sync;

    /// The smallest and largest key in `column` of `query`'s result; `None` when the
    /// result has no non-NULL key.
    fn key_bounds(
        &self,
        query: &TaskQuery,
        column: &str,
    ) -> impl Future<Output = Result<Option<(KeyValue, KeyValue)>, TaskError>> + Send;

    /// The largest value of `column` in `query`'s result, as an incremental job's mark;
    /// `None` when the result has no non-NULL value there.
    fn high_mark(
        &self,
        query: &TaskQuery,
        column: &str,
    ) -> impl Future<Output = Result<Option<super::window::Mark>, TaskError>> + Send;

    /// Resolves `table` and counts its heap pages.
    fn page_table(
        &self,
        table: &str,
    ) -> impl Future<Output = Result<(Self::PageTable, u64), TaskError>> + Send;

    /// Checks that `query`, restricted to one page range of `table` by a common table
    /// expression named `shadow`, reads the table exactly once and only through that
    /// range (nothing is read).
    fn check_page_scan(
        &self,
        table: &Self::PageTable,
        query: &TaskQuery,
        shadow: &str,
    ) -> impl Future<Output = Result<(), TaskError>> + Send;
}

/// The partitions `spec` splits a shard's query `base` into, asking `probe` for what the
/// split depends on: a range key's bounds when none are given; for page ranges, the
/// table's size, then whether the first range's query reads the table through the range.
pub async fn split_shard(
    spec: &PartitionSpec,
    base: &TaskQuery,
    probe: &impl ShardProbe,
) -> Result<Vec<Partition>, TaskError> {
    Ok(match spec {
        PartitionSpec::Range {
            bounds: Some(b),
            partitions,
            ..
        } => partition::range_partitions(Some(*b), *partitions),
        PartitionSpec::Range {
            column,
            partitions,
            bounds: None,
        } => partition::range_partitions(probe.key_bounds(base, column).await?, *partitions),
        PartitionSpec::Hash { partitions, .. } => partition::hash_partitions(*partitions),
        PartitionSpec::Predicates(list) => list.iter().cloned().map(Partition::Predicate).collect(),
        PartitionSpec::Pages { table, split } => {
            let (resolved, pages) = probe.page_table(table).await?;
            let partitions = partition::page_partitions(pages, *split);
            let first = restrict_query(base, spec, &partitions[0]);
            probe
                .check_page_scan(&resolved, &first, partition::shadowed_name(table))
                .await?;
            partitions
        }
    })
}
