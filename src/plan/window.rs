//! Incremental reads: each shard reads the rows whose watermark column lies between the
//! high mark the last successful run recorded for it and the high mark probed now,
//! inside the snapshot its tasks read.

use std::time::Duration;

use crate::sql::{KeyValue, quote_ident};

/// A watermark: the largest value of the incremental column a run read from a shard.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "lowercase")]
pub enum Mark {
    Int(i64),
    /// Days since 1970-01-01.
    Date(i32),
    /// Microseconds since 1970-01-01 of a `timestamp` (local, no zone).
    Timestamp(i64),
    /// Microseconds since 1970-01-01 UTC of a `timestamptz`.
    Timestamptz(i64),
    /// Text that orders as its values do (SQLite's ISO-8601 timestamps).
    Text(String),
}

impl Mark {
    /// The mark of a probed key.
    pub fn of_key(key: KeyValue) -> Mark {
        match key {
            KeyValue::Int(i) => Mark::Int(i),
            KeyValue::Date(d) => Mark::Date(d),
            KeyValue::Timestamp { micros, utc: false } => Mark::Timestamp(micros),
            KeyValue::Timestamp { micros, utc: true } => Mark::Timestamptz(micros),
        }
    }

    /// The SQL literal a comparison with the column coerces to the column's type.
    pub fn literal(&self) -> String {
        match self {
            Mark::Int(i) => KeyValue::Int(*i).literal(),
            Mark::Date(d) => KeyValue::Date(*d).literal(),
            Mark::Timestamp(micros) => KeyValue::Timestamp {
                micros: *micros,
                utc: false,
            }
            .literal(),
            Mark::Timestamptz(micros) => KeyValue::Timestamp {
                micros: *micros,
                utc: true,
            }
            .literal(),
            Mark::Text(s) => format!("'{}'", s.replace('\'', "''")),
        }
    }

    /// [`Mark::literal`] for MySQL: its literals read backslashes as escapes (unless
    /// `NO_BACKSLASH_ESCAPES`), so text is written as a hex string, which no mode reads
    /// otherwise.
    pub fn mysql_literal(&self) -> String {
        match self {
            Mark::Int(i) => KeyValue::Int(*i).mysql_literal(),
            Mark::Date(d) => KeyValue::Date(*d).mysql_literal(),
            Mark::Timestamp(micros) | Mark::Timestamptz(micros) => KeyValue::Timestamp {
                micros: *micros,
                utc: false,
            }
            .mysql_literal(),
            Mark::Text(s) => crate::sql::mysql_text_literal(s),
        }
    }

    /// The mark `lookback` earlier, for rows that arrive late. `None` when the lookback
    /// does not apply to the mark's kind (checked when the job is resolved).
    pub fn minus(&self, lookback: &Lookback) -> Option<Mark> {
        let micros = |d: &Duration| i64::try_from(d.as_micros()).unwrap_or(i64::MAX);
        Some(match (self, lookback) {
            (Mark::Int(i), Lookback::Count(n)) => Mark::Int(i.saturating_sub(*n)),
            (Mark::Date(d), Lookback::Time(t)) => {
                let days = t.as_secs().div_ceil(86_400);
                Mark::Date(d.saturating_sub(i32::try_from(days).unwrap_or(i32::MAX)))
            }
            (Mark::Timestamp(m), Lookback::Time(t)) => Mark::Timestamp(m.saturating_sub(micros(t))),
            (Mark::Timestamptz(m), Lookback::Time(t)) => {
                Mark::Timestamptz(m.saturating_sub(micros(t)))
            }
            _ => return None,
        })
    }

    /// The later of two marks of one column.
    pub fn max(self, other: Mark) -> Mark {
        let later = match (&self, &other) {
            (Mark::Int(a), Mark::Int(b)) => b > a,
            (Mark::Date(a), Mark::Date(b)) => b > a,
            (Mark::Timestamp(a), Mark::Timestamp(b))
            | (Mark::Timestamptz(a), Mark::Timestamptz(b)) => b > a,
            (Mark::Text(a), Mark::Text(b)) => b > a,
            // The column changed kind: what was probed now is what the next run compares.
            _ => true,
        };
        if later { other } else { self }
    }
}

impl std::fmt::Display for Mark {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(
            self.literal()
                .trim_matches(|c| c == '\'' || c == '(' || c == ')'),
        )
    }
}

/// How far back an incremental run reads before the last mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookback {
    /// For date and timestamp columns.
    Time(Duration),
    /// For integer columns.
    Count(i64),
}

/// One shard's incremental window: `after < column <= upto`.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    pub column: String,
    /// The last run's mark (less the lookback); `None` on the first run.
    pub after: Option<Mark>,
    /// The mark probed in this run's snapshot; `None` when the result has no non-NULL
    /// value in the column yet (nothing is read).
    pub upto: Option<Mark>,
}

impl Window {
    /// `sql` restricted to the window.
    pub fn restrict(&self, sql: &str) -> String {
        let c = quote_ident(&self.column);
        let predicate = match (&self.after, &self.upto) {
            (_, None) => "false".to_string(),
            (None, Some(upto)) => format!("{c} <= {}", upto.literal()),
            (Some(after), Some(upto)) => {
                format!("{c} > {} AND {c} <= {}", after.literal(), upto.literal())
            }
        };
        format!("SELECT * FROM (\n{sql}\n) AS tributary_window WHERE {predicate}")
    }

    /// [`Window::restrict`] in MySQL's dialect (backquoted column, MySQL literals).
    pub fn restrict_mysql(&self, sql: &str) -> String {
        let c = crate::sql::quote_ident_mysql(&self.column);
        let predicate = match (&self.after, &self.upto) {
            (_, None) => "FALSE".to_string(),
            (None, Some(upto)) => format!("{c} <= {}", upto.mysql_literal()),
            (Some(after), Some(upto)) => format!(
                "{c} > {} AND {c} <= {}",
                after.mysql_literal(),
                upto.mysql_literal()
            ),
        };
        format!("SELECT * FROM (\n{sql}\n) AS tributary_window WHERE {predicate}")
    }

    /// The mark the next run starts after, once this run's output is committed: the
    /// later of the last one and the one probed now.
    pub fn next(&self, last: Option<&Mark>) -> Option<Mark> {
        match (last.cloned(), self.upto.clone()) {
            (Some(last), Some(upto)) => Some(last.max(upto)),
            (last, upto) => upto.or(last),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_reads_after_the_last_mark_up_to_the_probed_one() {
        let w = Window {
            column: "updated_at".into(),
            after: Some(Mark::Timestamptz(0)),
            upto: Some(Mark::Timestamptz(1_500_000)),
        };
        assert_eq!(
            w.restrict("SELECT 1"),
            "SELECT * FROM (\nSELECT 1\n) AS tributary_window WHERE \"updated_at\" > '1970-01-01 00:00:00.000000+00' AND \"updated_at\" <= '1970-01-01 00:00:01.500000+00'"
        );
        let first = Window {
            after: None,
            ..w.clone()
        };
        assert!(
            first
                .restrict("q")
                .ends_with("WHERE \"updated_at\" <= '1970-01-01 00:00:01.500000+00'")
        );
        let empty = Window {
            upto: None,
            ..first
        };
        assert!(empty.restrict("q").ends_with("WHERE false"));
        assert_eq!(Mark::Text("it's".into()).literal(), "'it''s'");
    }

    #[test]
    fn the_next_mark_never_goes_back() {
        let w = |upto| Window {
            column: "id".into(),
            after: None,
            upto,
        };
        assert_eq!(
            w(Some(Mark::Int(5))).next(Some(&Mark::Int(9))),
            Some(Mark::Int(9))
        );
        assert_eq!(
            w(Some(Mark::Int(12))).next(Some(&Mark::Int(9))),
            Some(Mark::Int(12))
        );
        assert_eq!(w(None).next(Some(&Mark::Int(9))), Some(Mark::Int(9)));
        assert_eq!(w(None).next(None), None);
    }

    #[test]
    fn a_lookback_reads_earlier_rows_again() {
        let hour = Lookback::Time(Duration::from_secs(3600));
        assert_eq!(
            Mark::Timestamptz(7_200_000_000).minus(&hour),
            Some(Mark::Timestamptz(3_600_000_000))
        );
        assert_eq!(Mark::Date(10).minus(&hour), Some(Mark::Date(9)));
        assert_eq!(Mark::Int(10).minus(&Lookback::Count(3)), Some(Mark::Int(7)));
        assert_eq!(Mark::Int(10).minus(&hour), None);
        let json = serde_json::to_string(&Mark::Timestamptz(5)).unwrap();
        assert_eq!(json, r#"{"type":"timestamptz","value":5}"#);
        assert_eq!(
            serde_json::from_str::<Mark>(&json).unwrap(),
            Mark::Timestamptz(5)
        );
    }
}
