//! The SQL tributary writes around a user's query to split or probe it: identifiers
//! quoted as the query's result names them, and the values of a partition key as
//! literals.

/// A quoted identifier: the column is named exactly as the query's result names it.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A MySQL identifier: backquoted, a backquote doubled. (Double quotes are string
/// delimiters in MySQL unless `ANSI_QUOTES`.)
pub fn quote_ident_mysql(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// A MySQL text literal that reads the same under every `sql_mode`: a hex string
/// (`X'..'`), so neither a backslash nor a quote in `text` is ever read as syntax,
/// converted to the connection's character set (utf8mb4).
pub fn mysql_text_literal(text: &str) -> String {
    let hex: String = text.bytes().map(|b| format!("{b:02X}")).collect();
    format!("CONVERT(X'{hex}' USING utf8mb4)")
}

/// A range key's value, in the unit the arithmetic uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyValue {
    Int(i64),
    /// Days since 1970-01-01.
    Date(i32),
    /// Microseconds since 1970-01-01; `utc` for timestamptz.
    Timestamp {
        micros: i64,
        utc: bool,
    },
}

impl KeyValue {
    /// The value as a number in its unit (days, microseconds), for cutting ranges.
    pub fn as_i64(self) -> i64 {
        match self {
            KeyValue::Int(i) => i,
            KeyValue::Date(d) => d as i64,
            KeyValue::Timestamp { micros, .. } => micros,
        }
    }

    /// A value of the same kind as `self`, `v` in its unit.
    pub fn with(self, v: i64) -> KeyValue {
        match self {
            KeyValue::Int(_) => KeyValue::Int(v),
            KeyValue::Date(_) => KeyValue::Date(v as i32),
            KeyValue::Timestamp { utc, .. } => KeyValue::Timestamp { micros: v, utc },
        }
    }

    /// The SQL literal: a number, or a quoted text literal that the comparison coerces
    /// to the key's type.
    pub fn literal(self) -> String {
        match self {
            KeyValue::Int(i) if i < 0 => format!("({i})"),
            KeyValue::Int(i) => i.to_string(),
            KeyValue::Date(d) => {
                let date = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid")
                    + chrono::Duration::days(d as i64);
                format!("'{}'", date.format("%Y-%m-%d"))
            }
            KeyValue::Timestamp { micros, utc } => {
                let t = chrono::DateTime::from_timestamp_micros(micros).expect("in range");
                let text = t.naive_utc().format("%Y-%m-%d %H:%M:%S%.6f");
                if utc {
                    format!("'{text}+00'")
                } else {
                    format!("'{text}'")
                }
            }
        }
    }
}

impl KeyValue {
    /// [`KeyValue::literal`] for MySQL, which has no `+00` offsets in its literals:
    /// timestamps are written in UTC, the session's time zone (`source::mysql`).
    pub fn mysql_literal(self) -> String {
        match self {
            KeyValue::Timestamp { micros, .. } => {
                let t = chrono::DateTime::from_timestamp_micros(micros).expect("in range");
                format!("'{}'", t.naive_utc().format("%Y-%m-%d %H:%M:%S%.6f"))
            }
            other => other.literal(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("Order\"Id"), "\"Order\"\"Id\"");
        assert_eq!(quote_ident_mysql("a`b\"c"), "`a``b\"c`");
        assert_eq!(
            mysql_text_literal("it's \\"),
            "CONVERT(X'69742773205C' USING utf8mb4)"
        );
    }
}
