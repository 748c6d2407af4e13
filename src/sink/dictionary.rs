//! Which leaf columns of the next row group are written with a dictionary: learnt from
//! the row groups closed so far.

use parquet::basic::{Encoding, PageType};
use parquet::file::metadata::ColumnChunkMetaData;

/// A column chunk whose dictionary grows past this many bytes continues with plain
/// encoding. The parquet crate's default (1 MiB) holds a whole row group of distinct
/// 8-byte values, so ids, timestamps and prices were hashed value by value into a
/// dictionary as large as the data (a quarter of tributary's CPU in the profile), and
/// then stored as that dictionary plus indices: larger than plain values under zstd.
/// 64 KiB still keeps a dictionary for columns of a few thousand distinct values.
pub const DICTIONARY_PAGE_LIMIT: usize = 64 << 10;

/// Row groups a column is written without a dictionary after its dictionary outgrew
/// [`DICTIONARY_PAGE_LIMIT`] or lost a trial, and row groups it keeps a dictionary that
/// won a trial, before it tries the other way again; doubled for each verdict in a row
/// the same way, up to [`DICTIONARY_RETRY_MAX`].
pub const DICTIONARY_RETRY: u32 = 8;

/// The longest a column goes before trying the other way again: 64 row groups, 8M rows
/// at the default row-group size.
pub const DICTIONARY_RETRY_MAX: u32 = DICTIONARY_RETRY << 3;

/// Which leaf columns the next row group writes without a dictionary.
///
/// - A column whose dictionary outgrew the limit in one row group (ids, timestamps, free
///   text) almost always outgrows it in the next, and each attempt costs: its first values
///   are hashed and written as a dictionary page and indices before the writer falls back.
///   On the benchmark table that was 2.5% of the export's instructions and 7% of the file
///   (docs/performance.md). Such a column skips the dictionary for the next
///   [`DICTIONARY_RETRY`] row groups closed, then tries again in case its values changed.
/// - A column that keeps its dictionary is not always smaller for it: values in insertion
///   order (a sequence, a timestamp, a date per batch) or that step by a constant take a
///   few bits each in the delta encodings, fewer than a dictionary's indices. So the row
///   group after one that kept a dictionary is a trial without it, and the column goes on
///   the way that took fewer compressed bytes per row, for [`DICTIONARY_RETRY`] row
///   groups, before the next trial. Hashing every value into a dictionary costs more
///   CPU than delta-packing, so a column that gains nothing from it also saves that work.
/// - Each verdict the same way as the one before doubles the span before the next try,
///   up to [`DICTIONARY_RETRY_MAX`]: with several row groups in progress at once, a try
///   is several row groups written the larger way.
///
/// What a row group does depends only on the groups closed before it, so one task's
/// rows make the same file whatever the number of encoder threads.
#[derive(Debug, Default)]
pub struct DictionaryProbe {
    /// Per leaf column.
    columns: Vec<ColumnProbe>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct ColumnProbe {
    course: Probe,
    /// Verdicts in a row the same way: positive without a dictionary, negative with.
    streak: i32,
}

impl ColumnProbe {
    /// Records a verdict; returns the row groups to go that way before trying again.
    fn verdict(&mut self, without: bool) -> u32 {
        self.streak = match (without, self.streak) {
            (true, s) if s > 0 => s.saturating_add(1),
            (true, _) => 1,
            (false, s) if s < 0 => s.saturating_sub(1),
            (false, _) => -1,
        };
        let doublings = (self.streak.unsigned_abs() - 1).min(8);
        (DICTIONARY_RETRY << doublings).min(DICTIONARY_RETRY_MAX)
    }
}

/// Where one leaf column stands.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Probe {
    /// Row groups are written with a dictionary; after `trial_in` more of them close with
    /// their dictionary kept, the next is a trial without.
    Dictionary { trial_in: u32 },
    /// The row groups begun now are a trial without a dictionary, against a row group
    /// that kept one in `bytes_per_row`.
    Trial { bytes_per_row: f64 },
    /// Row groups are written without a dictionary until `left` more of them close.
    Without { left: u32 },
}

impl Default for Probe {
    fn default() -> Probe {
        Probe::Dictionary { trial_in: 0 }
    }
}

/// What a closed row group says about one of its leaf columns.
#[derive(Debug, Clone, Copy)]
pub struct ClosedColumn {
    /// Whether it was written without a dictionary.
    pub plain: bool,
    /// Whether its dictionary outgrew the limit and its later pages went on without it.
    pub abandoned: bool,
    /// Its compressed bytes per row of the group, dictionary page included.
    pub bytes_per_row: f64,
}

impl DictionaryProbe {
    /// For a new row group: the leaf columns to write without a dictionary.
    pub fn plain(&self) -> Vec<bool> {
        self.columns
            .iter()
            .map(|p| !matches!(p.course, Probe::Dictionary { .. }))
            .collect()
    }

    /// Learns from a closed row group's leaf columns (see `ParquetFile::closed_columns`).
    /// Several row groups can be in progress at once, so a group's column may have been
    /// begun before the column's last change of course.
    pub fn closed(&mut self, columns: &[ClosedColumn]) {
        if self.columns.len() < columns.len() {
            self.columns.resize(columns.len(), ColumnProbe::default());
        }
        for (probe, closed) in self.columns.iter_mut().zip(columns) {
            probe.course = match (probe.course, closed.plain) {
                (_, false) if closed.abandoned => Probe::Without {
                    left: probe.verdict(true),
                },
                (Probe::Dictionary { trial_in: 0 }, false) => Probe::Trial {
                    bytes_per_row: closed.bytes_per_row,
                },
                (Probe::Dictionary { trial_in }, false) => Probe::Dictionary {
                    trial_in: trial_in - 1,
                },
                // Measured against the latest group that kept its dictionary.
                (Probe::Trial { .. }, false) => Probe::Trial {
                    bytes_per_row: closed.bytes_per_row,
                },
                (Probe::Trial { bytes_per_row }, true) => {
                    if closed.bytes_per_row < bytes_per_row {
                        Probe::Without {
                            left: probe.verdict(true),
                        }
                    } else {
                        // This group was one of them.
                        Probe::Dictionary {
                            trial_in: probe.verdict(false) - 1,
                        }
                    }
                }
                (Probe::Without { left }, true) if left > 1 => Probe::Without { left: left - 1 },
                (Probe::Without { .. }, true) => Probe::Dictionary { trial_in: 0 },
                // A group begun before the column changed course.
                (probe, _) => probe,
            };
        }
    }
}

/// Whether a column chunk's dictionary outgrew [`DICTIONARY_PAGE_LIMIT`] and its later
/// pages went on without it.
pub(super) fn dictionary_abandoned(column: &ColumnChunkMetaData) -> bool {
    let Some(stats) = column.page_encoding_stats() else {
        return false;
    };
    let dictionary = stats
        .iter()
        .any(|s| s.page_type == PageType::DICTIONARY_PAGE);
    let other = stats.iter().any(|s| {
        matches!(s.page_type, PageType::DATA_PAGE | PageType::DATA_PAGE_V2)
            && !matches!(
                s.encoding,
                Encoding::RLE_DICTIONARY | Encoding::PLAIN_DICTIONARY
            )
    });
    dictionary && other
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Closes `groups` row groups one after another, each begun with the probe's choice
    /// and its columns given `(abandoned, bytes_per_row)` by `outcome(plain)`; returns,
    /// per column, the groups written with a dictionary.
    fn dictionary_groups(
        probe: &mut DictionaryProbe,
        columns: usize,
        groups: usize,
        outcome: impl Fn(usize, bool) -> (bool, f64),
    ) -> Vec<Vec<usize>> {
        let mut with = vec![Vec::new(); columns];
        for group in 0..groups {
            let mut plain = probe.plain();
            plain.resize(columns, false);
            let closed: Vec<ClosedColumn> = (0..columns)
                .map(|c| {
                    if !plain[c] {
                        with[c].push(group);
                    }
                    let (abandoned, bytes_per_row) = outcome(c, plain[c]);
                    ClosedColumn {
                        plain: plain[c],
                        abandoned: abandoned && !plain[c],
                        bytes_per_row,
                    }
                })
                .collect();
            probe.closed(&closed);
        }
        with
    }

    #[test]
    fn a_column_that_abandoned_its_dictionary_skips_it_then_tries_again() {
        let mut probe = DictionaryProbe::default();
        assert_eq!(
            probe.plain(),
            Vec::<bool>::new(),
            "every column tries at first"
        );
        // Column 0 keeps a dictionary that is smaller; column 1 outgrows its own.
        let with = dictionary_groups(&mut probe, 2, 30, |c, plain| match (c, plain) {
            (0, false) => (false, 1.0),
            (0, true) => (false, 3.0),
            _ => (true, 50.0),
        });
        // A trial without after the first group, lost; the next after 8 more groups,
        // lost again; the next after 16.
        let mut kept: Vec<usize> = (0..30).collect();
        kept.retain(|g| ![1, 10, 27].contains(g));
        assert_eq!(with[0], kept, "the smaller dictionary");
        assert_eq!(
            with[1],
            [0, 9, 26],
            "tries again after {DICTIONARY_RETRY} groups, then after twice as many"
        );
        // The span stops doubling at its maximum.
        let mut probe = DictionaryProbe::default();
        let with = dictionary_groups(&mut probe, 1, 400, |_, _| (true, 50.0));
        let spans: Vec<usize> = with[0].windows(2).map(|w| w[1] - w[0] - 1).collect();
        assert_eq!(spans, [8, 16, 32, 64, 64, 64, 64, 64]);
    }

    #[test]
    fn a_column_smaller_without_its_dictionary_goes_on_without_it() {
        let mut probe = DictionaryProbe::default();
        let with = dictionary_groups(&mut probe, 1, 25, |_, plain| {
            (false, if plain { 0.5 } else { 2.0 })
        });
        // Kept, tried without (won), 8 groups without, kept again, tried without (won),
        // 16 groups without.
        assert_eq!(with[0], [0, 10]);

        // The values change: the dictionary wins the next trial and stays.
        let with = dictionary_groups(&mut probe, 1, 12, |_, plain| {
            (false, if plain { 4.0 } else { 2.0 })
        });
        let plain: Vec<usize> = (0..12).filter(|g| !with[0].contains(g)).collect();
        assert_eq!(plain, [0, 1, 2, 4], "{with:?}");
    }

    #[test]
    fn a_row_group_begun_before_a_change_of_course_does_not_count_twice() {
        let mut probe = DictionaryProbe::default();
        let kept = |bytes_per_row| ClosedColumn {
            plain: false,
            abandoned: false,
            bytes_per_row,
        };
        let without = |bytes_per_row| ClosedColumn {
            plain: true,
            abandoned: false,
            bytes_per_row,
        };
        // Two groups begun with a dictionary close; the first starts a trial, the second
        // only updates the size it is measured against.
        probe.closed(&[kept(2.0)]);
        probe.closed(&[kept(1.0)]);
        assert_eq!(probe.plain(), [true]);
        // 1.5 is smaller than the first group's 2.0 but not the second's 1.0.
        probe.closed(&[without(1.5)]);
        assert_eq!(probe.plain(), [false]);
        // A second trial group, begun before the verdict, changes nothing.
        probe.closed(&[without(0.1)]);
        assert_eq!(
            probe.columns[0].course,
            Probe::Dictionary {
                trial_in: DICTIONARY_RETRY - 1
            }
        );
    }
}
