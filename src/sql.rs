//! Query text and its `:name` parameters.
//!
//! A query is lexed once into literal text and parameter references. Parameters are found
//! only in code: never inside string literals (`'…'`, `E'…'`, `$tag$…$tag$`), quoted
//! identifiers, comments, or `::` casts. Rendering then either binds them as values
//! (numbered placeholders) or, where the protocol cannot bind (PostgreSQL's COPY), inlines
//! them as properly quoted literals.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// A parameter's value. Values from the command line are text; a job file may give
/// numbers and booleans too.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(untagged)]
pub enum ParamValue {
    Text(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl fmt::Display for ParamValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamValue::Text(s) => f.write_str(s),
            ParamValue::Int(i) => write!(f, "{i}"),
            ParamValue::Float(x) => write!(f, "{x}"),
            ParamValue::Bool(b) => write!(f, "{b}"),
        }
    }
}

pub type Params = BTreeMap<String, ParamValue>;

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(String),
    Param(String),
}

/// A query split into text and parameter references, with any trailing `;` removed.
#[derive(Debug, Clone, PartialEq)]
pub struct SqlTemplate {
    pieces: Vec<Piece>,
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
    /// Lexes `sql`, finding its parameters.
    pub fn parse(sql: &str) -> Result<SqlTemplate, SqlError> {
        let b = sql.as_bytes();
        let mut pieces = Vec::new();
        let mut text_start = 0;
        let mut i = 0;
        // Byte offset of a `;` after which only blanks and comments may follow.
        let mut semicolon: Option<usize> = None;
        let mut has_code = false;
        while i < b.len() {
            let c = b[i];
            if !c.is_ascii_whitespace() && !starts_comment(b, i) && c != b';' {
                has_code = true;
            }
            if semicolon.is_some() && !c.is_ascii_whitespace() && !starts_comment(b, i) && c != b';'
            {
                return Err(SqlError::MultipleStatements);
            }
            match c {
                b'\'' => {
                    let escapes =
                        i > 0 && matches!(b[i - 1], b'E' | b'e') && (i < 2 || !is_ident(b[i - 2]));
                    i = skip_quoted(b, i, b'\'', escapes)
                        .ok_or(SqlError::Unterminated("string literal"))?;
                }
                b'"' => {
                    i = skip_quoted(b, i, b'"', false)
                        .ok_or(SqlError::Unterminated("quoted identifier"))?
                }
                b'`' => {
                    i = skip_quoted(b, i, b'`', false)
                        .ok_or(SqlError::Unterminated("quoted identifier"))?
                }
                b'-' if b.get(i + 1) == Some(&b'-') => {
                    i = b[i..]
                        .iter()
                        .position(|&c| c == b'\n')
                        .map_or(b.len(), |p| i + p + 1);
                }
                b'/' if b.get(i + 1) == Some(&b'*') => i = skip_block_comment(b, i)?,
                b'$' if i == 0 || !is_ident(b[i - 1]) => match dollar_tag(b, i) {
                    Some(tag_len) => {
                        let tag = &b[i..i + tag_len];
                        let body = i + tag_len;
                        let end = find(&b[body..], tag)
                            .ok_or(SqlError::Unterminated("dollar-quoted string"))?;
                        i = body + end + tag_len;
                    }
                    None => i += 1,
                },
                b':' if b.get(i + 1) == Some(&b':') => {
                    while i < b.len() && b[i] == b':' {
                        i += 1;
                    }
                }
                b':' if b
                    .get(i + 1)
                    .is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_') =>
                {
                    let start = i + 1;
                    let mut end = start;
                    while end < b.len() && is_ident(b[end]) {
                        end += 1;
                    }
                    if text_start < i {
                        pieces.push(Piece::Text(sql[text_start..i].to_string()));
                    }
                    pieces.push(Piece::Param(sql[start..end].to_string()));
                    i = end;
                    text_start = end;
                }
                b';' => {
                    semicolon.get_or_insert(i);
                    i += 1;
                }
                _ => i += 1,
            }
        }
        let end = semicolon.unwrap_or(b.len());
        if text_start < end {
            pieces.push(Piece::Text(sql[text_start..end].to_string()));
        }
        if !has_code {
            return Err(SqlError::Empty);
        }
        Ok(SqlTemplate { pieces })
    }

    /// The names of the parameters the query uses.
    pub fn param_names(&self) -> BTreeSet<&str> {
        self.pieces
            .iter()
            .filter_map(|p| match p {
                Piece::Param(n) => Some(n.as_str()),
                Piece::Text(_) => None,
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
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Param(n) => out.push_str(&pg_literal(&params[n])),
            }
        }
        out
    }

    /// The query with numbered placeholders (`?1`, `?2`, …; a name used twice keeps its
    /// number) and the values to bind, in order.
    pub fn render_numbered<'p>(&self, params: &'p Params) -> (String, Vec<&'p ParamValue>) {
        let mut out = String::new();
        let mut order: Vec<&str> = Vec::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Param(n) => {
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
}

/// A PostgreSQL literal for `value`, safe whatever `standard_conforming_strings` is:
/// quotes are doubled, and text holding a backslash becomes an `E''` string with the
/// backslashes doubled (as libpq's `PQescapeLiteral` does). Negative numbers are
/// parenthesised so that `x-:n` cannot turn into a `--` comment.
pub fn pg_literal(value: &ParamValue) -> String {
    match value {
        ParamValue::Text(s) => {
            let quoted = s.replace('\'', "''");
            if s.contains('\\') {
                format!(" E'{}'", quoted.replace('\\', "\\\\"))
            } else {
                format!("'{quoted}'")
            }
        }
        ParamValue::Int(i) if *i < 0 => format!("({i})"),
        ParamValue::Int(i) => i.to_string(),
        ParamValue::Float(x) if x.is_finite() && *x < 0.0 => format!("({x:?}::float8)"),
        ParamValue::Float(x) if x.is_finite() => format!("{x:?}::float8"),
        ParamValue::Float(x) if x.is_nan() => "'NaN'::float8".into(),
        ParamValue::Float(x) if *x > 0.0 => "'Infinity'::float8".into(),
        ParamValue::Float(_) => "'-Infinity'::float8".into(),
        ParamValue::Bool(b) => if *b { "TRUE" } else { "FALSE" }.into(),
    }
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80
}

fn starts_comment(b: &[u8], i: usize) -> bool {
    (b[i] == b'-' && b.get(i + 1) == Some(&b'-')) || (b[i] == b'/' && b.get(i + 1) == Some(&b'*'))
}

/// Skips a quoted run starting at `start` (the opening quote); doubled quotes stay inside.
/// Returns the index after the closing quote.
fn skip_quoted(b: &[u8], start: usize, quote: u8, backslash_escapes: bool) -> Option<usize> {
    let mut i = start + 1;
    while i < b.len() {
        if backslash_escapes && b[i] == b'\\' {
            i += 2;
            continue;
        }
        if b[i] == quote {
            if b.get(i + 1) == Some(&quote) {
                i += 2;
                continue;
            }
            return Some(i + 1);
        }
        i += 1;
    }
    None
}

/// Block comments nest in PostgreSQL.
fn skip_block_comment(b: &[u8], start: usize) -> Result<usize, SqlError> {
    let mut depth = 0;
    let mut i = start;
    while i + 1 < b.len() {
        if b[i] == b'/' && b[i + 1] == b'*' {
            depth += 1;
            i += 2;
        } else if b[i] == b'*' && b[i + 1] == b'/' {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return Ok(i);
            }
        } else {
            i += 1;
        }
    }
    Err(SqlError::Unterminated("block comment"))
}

/// The length of a dollar-quote tag (`$$` or `$tag$`) starting at `i`, if there is one.
fn dollar_tag(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    if b.get(j).is_some_and(|c| c.is_ascii_digit()) {
        return None; // `$1`: a positional parameter, not a quote
    }
    while j < b.len() && is_ident(b[j]) {
        j += 1;
    }
    (b.get(j) == Some(&b'$')).then_some(j + 1 - i)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(sql: &str) -> Vec<String> {
        SqlTemplate::parse(sql)
            .unwrap()
            .param_names()
            .into_iter()
            .map(String::from)
            .collect()
    }

    fn params(pairs: &[(&str, ParamValue)]) -> Params {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn finds_params_only_in_code() {
        let sql = "SELECT ':no', \"col:no\", x::date, $$ :no $$, $t$ :no $t$, E'it\\'s :no' -- :no\n\
                   /* :no /* nested :no */ :no */ FROM t WHERE a = :yes AND b > :also_yes";
        assert_eq!(names(sql), ["also_yes", "yes"]);
    }

    #[test]
    fn casts_and_assignments_are_not_params() {
        assert_eq!(
            names("SELECT a::int, f(x := 1), ARRAY[1,2][1:2] FROM t WHERE d = :d::date"),
            ["d"]
        );
    }

    #[test]
    fn positional_dollar_params_are_not_quotes() {
        assert_eq!(names("SELECT $1, :a, $2"), ["a"]);
    }

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
    fn pg_literals_are_quoted() {
        let t = SqlTemplate::parse("SELECT :s, :b, x-:n, :f, :t").unwrap();
        let p = params(&[
            ("s", ParamValue::Text("it's'; DROP TABLE x; --".into())),
            ("b", ParamValue::Text(r"back\slash'".into())),
            ("n", ParamValue::Int(-5)),
            ("f", ParamValue::Float(f64::NAN)),
            ("t", ParamValue::Bool(true)),
        ]);
        t.check_params(&p).unwrap();
        assert_eq!(
            t.render_pg_literals(&p),
            r"SELECT 'it''s''; DROP TABLE x; --',  E'back\\slash''', x-(-5), 'NaN'::float8, TRUE"
        );
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
    fn nul_bytes_are_refused() {
        let t = SqlTemplate::parse("SELECT :a").unwrap();
        let err = t
            .check_params(&params(&[("a", ParamValue::Text("a\0b".into()))]))
            .unwrap_err();
        assert_eq!(err, SqlError::NulByte("a".into()));
    }
}
