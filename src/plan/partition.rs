//! Partitions within a shard: how one query is split into tasks whose results, together,
//! hold every row of the unsplit query exactly once.
//!
//! Each kind is described here as data ([`Partition`]) with a membership rule that the tests
//! check exhaustively, then rendered to a SQL predicate over the query's result:
//!
//! - **range** on an integer, date or timestamp key: `N` ranges between probed (or given)
//!   bounds; the first range is open below and the last open above, so rows outside the
//!   probed `[min, max]` are still read exactly once, and NULL keys get their own partition;
//! - **hash**: `N` buckets of PostgreSQL's `hashtext(key::text)`, plus the NULL partition;
//! - **predicates**: the user's own list, one partition each (exactly-once is the user's to keep);
//! - **pages**: ranges of the table's heap pages (`ctid`), the last one open above.

use std::fmt;

use crate::config::{PageSplit, PartitionSpec};
use crate::sql::{KeyValue, quote_ident};

/// One partition, as data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Partition {
    /// `lo <= key < hi`; a missing bound is open.
    Range {
        lo: Option<KeyValue>,
        hi: Option<KeyValue>,
    },
    /// Rows whose key is NULL.
    Null,
    /// `hash(key) mod n = bucket`.
    Hash { bucket: usize, of: usize },
    /// The user's predicate.
    Predicate(String),
    /// Heap pages `first <= page < end`; `end` open when `None`.
    Pages { first: u64, end: Option<u64> },
    /// The whole result (an empty table: nothing to split).
    All,
}

impl Partition {
    /// Whether an integer-coded key belongs to this partition (for range and NULL partitions).
    pub fn holds(&self, key: Option<i64>) -> bool {
        match (self, key) {
            (Partition::Null, None) => true,
            (Partition::All, _) => true,
            (Partition::Range { lo, hi }, Some(k)) => {
                lo.is_none_or(|lo| lo.as_i64() <= k) && hi.is_none_or(|hi| k < hi.as_i64())
            }
            _ => false,
        }
    }

    /// The predicate over the query's result (`column` is quoted here).
    pub fn predicate(&self, column: &str) -> String {
        let c = quote_ident(column);
        match self {
            Partition::Range { lo: None, hi: None } => format!("{c} IS NOT NULL"),
            Partition::Range {
                lo: Some(lo),
                hi: None,
            } => format!("{c} >= {}", lo.literal()),
            Partition::Range {
                lo: None,
                hi: Some(hi),
            } => format!("{c} < {}", hi.literal()),
            Partition::Range {
                lo: Some(lo),
                hi: Some(hi),
            } => {
                format!("{c} >= {} AND {c} < {}", lo.literal(), hi.literal())
            }
            Partition::Null => format!("{c} IS NULL"),
            Partition::Hash { bucket, of } => {
                format!("((hashtext({c}::text) % {of}) + {of}) % {of} = {bucket}")
            }
            Partition::Predicate(p) => format!("({p})"),
            Partition::Pages {
                first,
                end: Some(end),
            } => {
                format!("ctid >= '({first},0)'::tid AND ctid < '({end},0)'::tid")
            }
            Partition::Pages { first, end: None } => format!("ctid >= '({first},0)'::tid"),
            Partition::All => "TRUE".into(),
        }
    }
}

impl Partition {
    /// [`Partition::predicate`] in MySQL's dialect: the column backquoted, MySQL's
    /// literals, and hash buckets of `CRC32` (of the value's text, as `hashtext` is).
    pub fn mysql_predicate(&self, column: &str) -> String {
        let c = crate::sql::quote_ident_mysql(column);
        match self {
            Partition::Range { lo: None, hi: None } => format!("{c} IS NOT NULL"),
            Partition::Range {
                lo: Some(lo),
                hi: None,
            } => format!("{c} >= {}", lo.mysql_literal()),
            Partition::Range {
                lo: None,
                hi: Some(hi),
            } => format!("{c} < {}", hi.mysql_literal()),
            Partition::Range {
                lo: Some(lo),
                hi: Some(hi),
            } => format!(
                "{c} >= {} AND {c} < {}",
                lo.mysql_literal(),
                hi.mysql_literal()
            ),
            Partition::Null => format!("{c} IS NULL"),
            // CRC32 is unsigned, so the remainder is never negative.
            Partition::Hash { bucket, of } => format!("MOD(CRC32({c}), {of}) = {bucket}"),
            Partition::Predicate(p) => format!("({p})"),
            Partition::Pages { .. } => {
                unreachable!("page partitions are refused for MySQL shards before planning")
            }
            Partition::All => "TRUE".into(),
        }
    }
}

impl fmt::Display for Partition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Partition::Range { lo, hi } => write!(
                f,
                "[{}, {})",
                lo.map_or("-∞".into(), |v| v
                    .literal()
                    .trim_matches('\'')
                    .to_string()),
                hi.map_or("+∞".into(), |v| v
                    .literal()
                    .trim_matches('\'')
                    .to_string())
            ),
            Partition::Null => f.write_str("NULL"),
            Partition::Hash { bucket, of } => write!(f, "hash {bucket}/{of}"),
            Partition::Predicate(p) => write!(f, "where {p}"),
            Partition::Pages {
                first,
                end: Some(end),
            } => write!(f, "pages [{first}, {end})"),
            Partition::Pages { first, end: None } => write!(f, "pages [{first}, ∞)"),
            Partition::All => f.write_str("all"),
        }
    }
}

/// The partitions of `spec` when no database has to be asked: given range bounds, hash
/// buckets, the user's predicates. `None` for probed range bounds and page ranges.
pub fn partitions_without_probe(spec: &PartitionSpec) -> Option<Vec<Partition>> {
    match spec {
        PartitionSpec::Range {
            bounds: Some(b),
            partitions,
            ..
        } => Some(range_partitions(Some(*b), *partitions)),
        PartitionSpec::Range { bounds: None, .. } | PartitionSpec::Pages { .. } => None,
        PartitionSpec::Hash { partitions, .. } => Some(hash_partitions(*partitions)),
        PartitionSpec::Predicates(list) => {
            Some(list.iter().cloned().map(Partition::Predicate).collect())
        }
    }
}

/// Range partitions over `[min, max]` (or `None` for an empty result): `n` ranges as even as
/// integer arithmetic allows (fewer when there are fewer distinct keys), the first open
/// below and the last open above, then the NULL partition.
pub fn range_partitions(bounds: Option<(KeyValue, KeyValue)>, n: usize) -> Vec<Partition> {
    let Some((min, max)) = bounds else {
        // An empty result (or only NULLs): one partition reads whatever is there.
        return vec![Partition::All];
    };
    let (lo, hi) = (min.as_i64() as i128, max.as_i64() as i128);
    let (lo, hi) = if lo <= hi { (lo, hi) } else { (hi, lo) };
    let span = hi - lo + 1;
    let n = (n.max(1) as i128).min(span);
    let mut cuts: Vec<i64> = (1..n).map(|k| (lo + k * span / n) as i64).collect();
    cuts.dedup();
    let mut partitions = Vec::with_capacity(cuts.len() + 2);
    let mut prev = None;
    for cut in cuts {
        partitions.push(Partition::Range {
            lo: prev,
            hi: Some(min.with(cut)),
        });
        prev = Some(min.with(cut));
    }
    partitions.push(Partition::Range { lo: prev, hi: None });
    partitions.push(Partition::Null);
    partitions
}

/// Hash buckets `0..n`, then the NULL partition (`hashtext(NULL)` is NULL, in no bucket).
pub fn hash_partitions(n: usize) -> Vec<Partition> {
    let n = n.max(1);
    let mut partitions: Vec<Partition> = (0..n)
        .map(|bucket| Partition::Hash { bucket, of: n })
        .collect();
    partitions.push(Partition::Null);
    partitions
}

/// The name a page range's CTE shadows: the table's name without its schema.
pub fn shadowed_name(table: &str) -> &str {
    table.rsplit('.').next().unwrap_or(table)
}

/// Page ranges over a table of `pages` pages, cut as `split` says; the last range is open
/// so that pages added after the count are still read.
pub fn page_partitions(pages: u64, split: PageSplit) -> Vec<Partition> {
    let per_task = match split {
        PageSplit::PerTask(n) => n,
        PageSplit::Tasks(n) => pages.div_ceil(n.max(1) as u64),
    }
    .max(1);
    let mut partitions = Vec::new();
    let mut first = 0;
    while first + per_task < pages {
        partitions.push(Partition::Pages {
            first,
            end: Some(first + per_task),
        });
        first += per_task;
    }
    partitions.push(Partition::Pages { first, end: None });
    partitions
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn exactly_once(partitions: &[Partition], key: Option<i64>) {
        let n = partitions.iter().filter(|p| p.holds(key)).count();
        assert_eq!(n, 1, "key {key:?} is in {n} of {partitions:?}");
    }

    #[test]
    fn every_key_lands_in_exactly_one_range_piece() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(42);
        let cases: Vec<(i64, i64, usize)> = vec![
            (0, 0, 4),                   // min = max
            (-10, -1, 3),                // negative bounds
            (1, 3, 10),                  // fewer keys than partitions
            (i64::MIN, i64::MAX, 7),     // the whole domain
            (i64::MAX - 2, i64::MAX, 2), // at the top edge
            (5, 1_000_000, 1),
        ];
        let random: Vec<(i64, i64, usize)> = (0..500)
            .map(|_| {
                let a = rng.random_range(-1_000_000i64..1_000_000);
                let b = a + rng.random_range(0..100_000);
                (a, b, rng.random_range(1..40))
            })
            .collect();
        for (min, max, n) in cases.into_iter().chain(random) {
            let partitions = range_partitions(Some((KeyValue::Int(min), KeyValue::Int(max))), n);
            assert!(partitions.len() <= n + 1);
            let probes = [
                min,
                max,
                min.saturating_sub(1),
                max.saturating_add(1),
                i64::MIN,
                i64::MAX,
                min / 2 + max / 2,
            ];
            for k in probes {
                exactly_once(&partitions, Some(k));
            }
            for _ in 0..50 {
                exactly_once(&partitions, Some(rng.random_range(min..=max)));
            }
            exactly_once(&partitions, None);
        }
    }

    #[test]
    fn ranges_are_even_and_skew_changes_nothing_but_sizes() {
        let partitions = range_partitions(Some((KeyValue::Int(0), KeyValue::Int(99))), 4);
        assert_eq!(
            partitions[..4]
                .iter()
                .map(|p| p.predicate("id"))
                .collect::<Vec<_>>(),
            [
                "\"id\" < 25",
                "\"id\" >= 25 AND \"id\" < 50",
                "\"id\" >= 50 AND \"id\" < 75",
                "\"id\" >= 75"
            ]
        );
        assert_eq!(partitions[4], Partition::Null);
    }

    #[test]
    fn an_empty_result_is_one_piece() {
        assert_eq!(range_partitions(None, 8), [Partition::All]);
        assert!(Partition::All.holds(None) && Partition::All.holds(Some(1)));
    }

    #[test]
    fn dates_and_timestamps_render_as_literals() {
        let d = range_partitions(Some((KeyValue::Date(19_723), KeyValue::Date(19_724))), 2);
        assert_eq!(d[0].predicate("day"), "\"day\" < '2024-01-02'");
        let t = KeyValue::Timestamp {
            micros: 1_704_067_200_000_001,
            utc: true,
        };
        assert_eq!(t.literal(), "'2024-01-01 00:00:00.000001+00'");
        let t = KeyValue::Timestamp {
            micros: -1,
            utc: false,
        };
        assert_eq!(t.literal(), "'1969-12-31 23:59:59.999999'");
        assert_eq!(KeyValue::Int(-5).literal(), "(-5)");
    }

    #[test]
    fn hash_buckets_cover_every_hash_once() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        for n in 1..20usize {
            let partitions = hash_partitions(n);
            for h in (0..2000)
                .map(|_| rng.random::<i32>())
                .chain([i32::MIN, i32::MAX, 0, -1])
            {
                // The SQL `((h % n) + n) % n` with PostgreSQL's truncating `%`, as Rust's.
                let bucket = (((h as i64 % n as i64) + n as i64) % n as i64) as usize;
                let hits = partitions
                    .iter()
                    .filter(|p| matches!(p, Partition::Hash { bucket: b, .. } if *b == bucket))
                    .count();
                assert_eq!(hits, 1);
            }
        }
        assert_eq!(
            hash_partitions(3)[1].predicate("k"),
            "((hashtext(\"k\"::text) % 3) + 3) % 3 = 1"
        );
    }

    #[test]
    fn page_ranges_cover_every_page_once() {
        for (pages, per) in [(0, 10), (1, 10), (10, 10), (11, 10), (1000, 7), (5, 1)] {
            let partitions = page_partitions(pages, PageSplit::PerTask(per));
            for page in 0..pages + 20 {
                let hits = partitions
                    .iter()
                    .filter(|p| match p {
                        Partition::Pages { first, end } => {
                            *first <= page && end.is_none_or(|e| page < e)
                        }
                        _ => false,
                    })
                    .count();
                assert_eq!(hits, 1, "page {page} of {pages} by {per}");
            }
        }
    }

    #[test]
    fn a_page_split_into_n_tasks_gives_n_ranges_of_equal_size() {
        let tasks = |pages, n| page_partitions(pages, PageSplit::Tasks(n));
        let partitions = tasks(214_788, 4);
        assert_eq!(partitions.len(), 4);
        assert_eq!(
            partitions[1],
            Partition::Pages {
                first: 53_697,
                end: Some(107_394)
            }
        );
        assert_eq!(
            partitions[3],
            Partition::Pages {
                first: 161_091,
                end: None
            }
        );
        assert_eq!(tasks(8, 4).len(), 4);
        // A table of fewer pages than tasks: a range per page at most, never an empty one.
        assert_eq!(tasks(3, 8).len(), 3);
        assert_eq!(
            tasks(0, 4),
            vec![Partition::Pages {
                first: 0,
                end: None
            }]
        );
        assert_eq!(page_partitions(10, PageSplit::PerTask(0)).len(), 10);
    }
}
