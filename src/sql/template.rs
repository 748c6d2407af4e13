//! A query as tributary holds it: text and `:name` parameter references, lexed once
//! (see [`super::text`]), checked against the parameters given, and rendered for each kind
//! of shard: numbered placeholders and bound values for SQLite, inlined literals
//! ([`pg_literal`]) for PostgreSQL's `COPY`.

use std::collections::BTreeSet;

use super::literal::{ParamValue, Params, pg_literal};
use super::text;

/// One run of a query: text as written, or a parameter reference (the name after `:`).
#[derive(Debug, Clone, PartialEq)]
pub(super) enum TemplatePart {
    Text(String),
    Param(String),
}

/// A query split into text and parameter references, with any trailing `;` removed.
#[derive(Debug, Clone, PartialEq)]
pub struct SqlTemplate {
    parts: Vec<TemplatePart>,
}

/// Why a query could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SqlError {
    #[error("unterminated {0}")]
    Unterminated(&'static str),
    #[error("the query holds more than one statement; tributary runs exactly one")]
    MultipleStatements,
    #[error("the query is empty")]
    Empty,
    #[error("missing value for parameter{} {}: pass --param {}=VALUE", if .0.len() > 1 { "s" } else { "" }, .0.iter().map(|n| format!(":{n}")).collect::<Vec<_>>().join(", "), .0[0])]
    MissingParams(Vec<String>),
    #[error("unknown parameter{} {}: the query does not use {}", if .0.len() > 1 { "s" } else { "" }, .0.join(", "), if .0.len() > 1 { "them" } else { "it" })]
    UnknownParams(Vec<String>),
    #[error("parameter :{0} holds a NUL byte, which no database accepts in text")]
    NulByte(String),
}

impl SqlTemplate {
    /// Lexes `sql` as PostgreSQL does with `standard_conforming_strings = on`, finding its
    /// parameters (see [`super::text`] for the rules).
    pub fn parse(sql: &str) -> Result<SqlTemplate, SqlError> {
        Ok(SqlTemplate {
            parts: text::lex(sql)?,
        })
    }

    /// Lexes `sql` as MySQL and MariaDB do by default (backslash escapes in strings, `#`
    /// comments: see [`super::mysql_text`]), for a fleet of MySQL shards.
    pub fn parse_mysql(sql: &str) -> Result<SqlTemplate, SqlError> {
        Ok(SqlTemplate {
            parts: super::mysql_text::lex(sql)?,
        })
    }

    /// The names of the parameters the query uses.
    pub fn param_names(&self) -> BTreeSet<&str> {
        self.parts
            .iter()
            .filter_map(|p| match p {
                TemplatePart::Param(n) => Some(n.as_str()),
                TemplatePart::Text(_) => None,
            })
            .collect()
    }

    /// Checks that `params` gives exactly the parameters the query uses.
    pub fn check_params(&self, params: &Params) -> Result<(), SqlError> {
        let used = self.param_names();
        let missing: Vec<String> = used
            .iter()
            .filter(|n| !params.contains_key(**n))
            .map(|n| n.to_string())
            .collect();
        if !missing.is_empty() {
            return Err(SqlError::MissingParams(missing));
        }
        let unknown: Vec<String> = params
            .keys()
            .filter(|k| !used.contains(k.as_str()))
            .cloned()
            .collect();
        if !unknown.is_empty() {
            return Err(SqlError::UnknownParams(unknown));
        }
        for (name, value) in params {
            if matches!(value, ParamValue::Text(t) if t.contains('\0')) {
                return Err(SqlError::NulByte(name.clone()));
            }
        }
        Ok(())
    }

    /// The query with every parameter replaced by a PostgreSQL literal, for statements
    /// that cannot take bind parameters (COPY). Call [`check_params`](Self::check_params) first.
    pub fn render_pg_literals(&self, params: &Params) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                TemplatePart::Text(t) => out.push_str(t),
                TemplatePart::Param(n) => out.push_str(&pg_literal(&params[n])),
            }
        }
        out
    }

    /// The query with numbered placeholders (`?1`, `?2`, …; a name used twice keeps its
    /// number) and the values to bind, in order.
    pub fn render_numbered<'p>(&self, params: &'p Params) -> (String, Vec<&'p ParamValue>) {
        let mut out = String::new();
        let mut order: Vec<&str> = Vec::new();
        for part in &self.parts {
            match part {
                TemplatePart::Text(t) => out.push_str(t),
                TemplatePart::Param(n) => {
                    let idx = match order.iter().position(|o| *o == n) {
                        Some(i) => i,
                        None => {
                            order.push(n);
                            order.len() - 1
                        }
                    };
                    out.push_str(&format!("?{}", idx + 1));
                }
            }
        }
        let values = order.iter().map(|n| &params[*n]).collect();
        (out, values)
    }

    /// The query with a positional placeholder (`?`) for every parameter reference and
    /// the values to bind, in order (a name used twice is bound twice): MySQL's
    /// prepared statements, where placeholders have no numbers.
    pub fn render_positional<'p>(&self, params: &'p Params) -> (String, Vec<&'p ParamValue>) {
        let mut out = String::new();
        let mut values = Vec::new();
        for part in &self.parts {
            match part {
                TemplatePart::Text(t) => out.push_str(t),
                TemplatePart::Param(n) => {
                    out.push('?');
                    values.push(&params[n]);
                }
            }
        }
        (out, values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::params;

    #[test]
    fn trailing_semicolon_is_removed_but_two_statements_are_refused() {
        let t = SqlTemplate::parse("SELECT 1; -- done\n").unwrap();
        assert_eq!(t.render_pg_literals(&Params::new()), "SELECT 1");
        assert_eq!(
            SqlTemplate::parse("SELECT 1; SELECT 2"),
            Err(SqlError::MultipleStatements)
        );
        assert_eq!(SqlTemplate::parse("  -- nothing\n"), Err(SqlError::Empty));
        assert_eq!(
            SqlTemplate::parse("SELECT 'x"),
            Err(SqlError::Unterminated("string literal"))
        );
    }

    #[test]
    fn missing_and_unknown_params_are_errors() {
        let t = SqlTemplate::parse("SELECT :a, :b").unwrap();
        let err = t
            .check_params(&params(&[("a", ParamValue::Int(1))]))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "missing value for parameter :b: pass --param b=VALUE"
        );
        let err = t
            .check_params(&params(&[
                ("a", ParamValue::Int(1)),
                ("b", ParamValue::Int(1)),
                ("c", ParamValue::Int(1)),
            ]))
            .unwrap_err();
        assert_eq!(err, SqlError::UnknownParams(vec!["c".into()]));
    }

    #[test]
    fn numbered_placeholders_reuse_numbers() {
        let t = SqlTemplate::parse("SELECT :a, :b, :a").unwrap();
        let p = params(&[
            ("a", ParamValue::Int(1)),
            ("b", ParamValue::Text("x".into())),
        ]);
        let (sql, values) = t.render_numbered(&p);
        assert_eq!(sql, "SELECT ?1, ?2, ?1");
        assert_eq!(values, [&ParamValue::Int(1), &ParamValue::Text("x".into())]);
    }

    #[test]
    fn positional_placeholders_repeat_values() {
        let t = SqlTemplate::parse("SELECT :a, ':b', :b, :a").unwrap();
        let p = params(&[
            ("a", ParamValue::Int(1)),
            ("b", ParamValue::Text("x' OR 1 --".into())),
        ]);
        let (sql, values) = t.render_positional(&p);
        assert_eq!(sql, "SELECT ?, ':b', ?, ?");
        assert_eq!(
            values,
            [
                &ParamValue::Int(1),
                &ParamValue::Text("x' OR 1 --".into()),
                &ParamValue::Int(1)
            ]
        );
    }

    #[test]
    fn nul_bytes_are_refused() {
        let t = SqlTemplate::parse("SELECT :a").unwrap();
        let err = t
            .check_params(&params(&[("a", ParamValue::Text("a\0b".into()))]))
            .unwrap_err();
        assert_eq!(err, SqlError::NulByte("a".into()));
    }
}
