//! Query text and its `:name` parameters.
//!
//! A query is lexed once into literal text and parameter references, then rendered for
//! each kind of shard: SQLite binds the values (numbered placeholders); PostgreSQL reads
//! through `COPY`, which cannot bind, so the values are inlined as literals.
//!
//! # Lexing
//!
//! Inlining is only safe if this lexer splits the text exactly where PostgreSQL does: a
//! parameter the server would read inside a string would put the literal's own quotes in
//! the middle of that string. So the lexer follows PostgreSQL's with
//! `standard_conforming_strings = on`, which tributary sets in every PostgreSQL
//! transaction:
//!
//! - `'…'` (and `B'…'`, `X'…'`, `N'…'`, `U&'…'`) has no backslash escapes; a quote is
//!   doubled. `E'…'` also takes backslash escapes (`\'`). Two strings separated by white
//!   space holding a newline are one string, and an `E` string's continuation keeps its
//!   escapes.
//! - `"…"` and `U&"…"` are quoted identifiers (and `` `…` `` too, for SQLite).
//! - `$tag$…$tag$` and `$$…$$` are dollar quotes; `$1` is a positional parameter, and a `$`
//!   inside a word (`a$b$`) belongs to the word.
//! - `--` comments end at either newline byte; `/* … */` comments nest.
//! - `::` is a cast, so `x::date` holds no parameter.
//!
//! A parameter is `:name` (a letter or `_`, then letters, digits and `_`) anywhere else in
//! code, as psql finds its variables, with one exception. Inside an array subscript (a `[`
//! right after a column, a quoted identifier, a parameter or a closing bracket) a `:` is
//! the slice separator of PostgreSQL's grammar: `arr[lo:hi]`, `arr[1:n]`, `arr[:hi]`,
//! `arr[ :hi ]` and `arr[lo:]` name columns, never parameters. psql differs here (it
//! substitutes a set variable even there, turning `arr[2:hi]` into `arr[23]`). To use a
//! parameter as a subscript or slice bound, parenthesise it: `arr[(:i)]`,
//! `arr[(:lo):(:hi)]`. An array constructor's brackets are no subscript:
//! `ARRAY[:a, :b]` holds two parameters, as does `x = ANY(:ids)`.
//!
//! # Inlining
//!
//! [`pg_literal`] renders each value as a parenthesised literal that stands for it exactly
//! as a bound parameter would, whatever text surrounds it: `1-:n` with `n = -0.0` reads
//! `1-('-0.0'::float8)`, never a `--` comment. In return a parameter is always a value,
//! as a bound one is: `ORDER BY :n` sorts by a constant, not by column `n`; a type
//! modifier (`numeric(:p)`) or a typed literal (`DATE :d`) is an error: write `:d::date`
//! or `CAST(:d AS date)`.

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
    /// Lexes `sql` as PostgreSQL does with `standard_conforming_strings = on`, finding its
    /// parameters (see the module documentation for the rules).
    pub fn parse(sql: &str) -> Result<SqlTemplate, SqlError> {
        let b = sql.as_bytes();
        let mut pieces = Vec::new();
        let mut text_start = 0;
        let mut i = 0;
        // Byte offset of a `;` after which only blanks, comments and more `;` may follow.
        let mut semicolon: Option<usize> = None;
        let mut has_code = false;
        // Whether the last token could take a subscript: a `[` right after one opens a
        // subscript, anywhere else an array constructor.
        let mut after_operand = false;
        // The brackets and parentheses open at `i`, innermost last.
        let mut open: Vec<Open> = Vec::new();
        while i < b.len() {
            let c = b[i];
            if is_space(c) {
                i += 1;
                continue;
            }
            if c == b'-' && b.get(i + 1) == Some(&b'-') {
                i = line_end(b, i);
                continue;
            }
            if c == b'/' && b.get(i + 1) == Some(&b'*') {
                i = skip_block_comment(b, i)?;
                continue;
            }
            if c == b';' {
                semicolon.get_or_insert(i);
                i += 1;
                continue;
            }
            if semicolon.is_some() {
                return Err(SqlError::MultipleStatements);
            }
            has_code = true;
            let (end, operand) = match c {
                b'\'' => (skip_string(b, i, false)?, false),
                b'"' | b'`' => (skip_identifier(b, i, c)?, true),
                b'$' => match dollar_tag(b, i) {
                    Some(tag_len) => {
                        let tag = &b[i..i + tag_len];
                        let body = i + tag_len;
                        let end = find(&b[body..], tag)
                            .ok_or(SqlError::Unterminated("dollar-quoted string"))?;
                        (body + end + tag_len, false)
                    }
                    // `$1`: a positional parameter, which may take a subscript.
                    None if b.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                        (skip_digits(b, i + 1), true)
                    }
                    None => (i + 1, false),
                },
                // A cast; `:::` is no parameter either.
                b':' if b.get(i + 1) == Some(&b':') => {
                    (i + b[i..].iter().take_while(|&&c| c == b':').count(), false)
                }
                b':' if b.get(i + 1).is_some_and(|&c| is_param_start(c)) => {
                    if open.last() == Some(&Open::Subscript) {
                        // `arr[lo:hi]`: the slice's separator, and `hi` a column.
                        (i + 1, false)
                    } else {
                        let start = i + 1;
                        let end = start + b[start..].iter().take_while(|&&c| is_ident(c)).count();
                        if text_start < i {
                            pieces.push(Piece::Text(sql[text_start..i].to_string()));
                        }
                        pieces.push(Piece::Param(sql[start..end].to_string()));
                        text_start = end;
                        (end, true)
                    }
                }
                b'(' => {
                    open.push(Open::Paren);
                    (i + 1, false)
                }
                b'[' => {
                    open.push(if after_operand {
                        Open::Subscript
                    } else {
                        Open::Constructor
                    });
                    (i + 1, false)
                }
                b')' | b']' => {
                    open.pop();
                    (i + 1, true)
                }
                b'0'..=b'9' => (skip_number(b, i), false),
                c if is_ident_start(c) => {
                    match (c.to_ascii_lowercase(), b.get(i + 1), b.get(i + 2)) {
                        (b'e', Some(b'\''), _) => (skip_string(b, i + 1, true)?, false),
                        (b'b' | b'x' | b'n', Some(b'\''), _) => {
                            (skip_string(b, i + 1, false)?, false)
                        }
                        (b'u', Some(b'&'), Some(b'\'')) => (skip_string(b, i + 2, false)?, false),
                        (b'u', Some(b'&'), Some(b'"')) => (skip_identifier(b, i + 2, b'"')?, true),
                        _ => {
                            let end = i
                                + 1
                                + b[i + 1..].iter().take_while(|&&c| is_ident_cont(c)).count();
                            // `ARRAY[` constructs an array; any other word before `[` is a
                            // column, a type or a keyword that takes no subscript anyway.
                            (end, !sql[i..end].eq_ignore_ascii_case("array"))
                        }
                    }
                }
                _ => (i + 1, false),
            };
            i = end;
            after_operand = operand;
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

/// A PostgreSQL literal for `value`, standing for it exactly as a bound parameter would.
///
/// Every literal is parenthesised, so that no neighbouring text can change what it means:
/// `1-:n` with `n = -0.0` must not become `1--0.0`, a comment; a prefix (`E:s`, `X:s`)
/// must not turn a string into an escape or bit string; a following quote must not
/// continue the string; `1.:n` must not read as one number.
///
/// Text holding a backslash is an `E''` string with the backslashes doubled (as libpq's
/// `PQescapeLiteral` does), so it reads the same whatever `standard_conforming_strings`
/// is; text stays an untyped literal, so that `d = :day` compares with a date. Numbers and
/// booleans are their text cast to a type, read by the type's input function as a bound
/// value is: integers as `int4` when they fit and `int8` otherwise (the type PostgreSQL
/// gives their literal), floats as `float8` (keeping -0, subnormals, infinities and NaN).
/// A cast rather than a bare constant, because PostgreSQL's grammar treats constants
/// specially where a value is meant: `-(-2147483648)` folds into the `int8` 2147483648
/// where a bound `int4` overflows, `ORDER BY (2)` sorts by the second column and
/// `ORDER BY (TRUE)` is an error, where bound values sort by a constant.
pub fn pg_literal(value: &ParamValue) -> String {
    match value {
        ParamValue::Text(s) => {
            let quoted = s.replace('\'', "''");
            if s.contains('\\') {
                format!("(E'{}')", quoted.replace('\\', "\\\\"))
            } else {
                format!("('{quoted}')")
            }
        }
        ParamValue::Int(i) => {
            let ty = if i32::try_from(*i).is_ok() {
                "int4"
            } else {
                "int8"
            };
            format!("('{i}'::{ty})")
        }
        ParamValue::Float(x) => {
            let text = if x.is_nan() {
                "NaN".to_string()
            } else if x.is_infinite() {
                if *x > 0.0 { "Infinity" } else { "-Infinity" }.to_string()
            } else {
                // Debug prints the shortest text that reads back as the same double.
                format!("{x:?}")
            };
            format!("('{text}'::float8)")
        }
        ParamValue::Bool(b) => if *b {
            "(TRUE::boolean)"
        } else {
            "(FALSE::boolean)"
        }
        .into(),
    }
}

/// What a `[` opened, or a `(`: inside a subscript, `:` separates a slice's bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Paren,
    Subscript,
    Constructor,
}

/// White space as PostgreSQL's lexer knows it.
fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// The first byte of an identifier or keyword; every non-ASCII byte is one.
fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c >= 0x80
}

/// A byte that continues an identifier: `a$b` is one identifier, not `a` and a dollar quote.
fn is_ident_cont(c: u8) -> bool {
    is_ident(c) || c == b'$'
}

/// A byte of a parameter name or dollar-quote tag after the first.
fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80
}

/// The first byte of a parameter name after `:`.
fn is_param_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_'
}

/// The end of a `--` comment starting at `i`: PostgreSQL ends it at either newline byte.
fn line_end(b: &[u8], i: usize) -> usize {
    b[i..]
        .iter()
        .position(|&c| c == b'\n' || c == b'\r')
        .map_or(b.len(), |p| i + p)
}

fn skip_digits(b: &[u8], i: usize) -> usize {
    i + b[i..].iter().take_while(|c| c.is_ascii_digit()).count()
}

/// The end of a number starting at `i`: digits, a fraction, an exponent. A letter right
/// after it starts a new token, as in PostgreSQL before 15 (15 rejects such junk), so
/// `1e'…'` is the number 1 and an escape string, never a plain string.
fn skip_number(b: &[u8], i: usize) -> usize {
    let mut j = skip_digits(b, i);
    if b.get(j) == Some(&b'.') {
        j = skip_digits(b, j + 1);
    }
    if matches!(b.get(j), Some(b'e' | b'E')) {
        let digits = if matches!(b.get(j + 1), Some(b'+' | b'-')) {
            j + 2
        } else {
            j + 1
        };
        if b.get(digits).is_some_and(u8::is_ascii_digit) {
            j = skip_digits(b, digits);
        }
    }
    j
}

/// Skips a string literal whose opening quote is at `open`, with its continuations: as in
/// PostgreSQL, `'a'` followed by white space holding a newline and another `'b'` is one
/// string, and an `E'…'` string's continuations keep its backslash escapes.
fn skip_string(b: &[u8], mut open: usize, backslash_escapes: bool) -> Result<usize, SqlError> {
    loop {
        let end = skip_quoted(b, open, b'\'', backslash_escapes)
            .ok_or(SqlError::Unterminated("string literal"))?;
        match continuation(b, end) {
            Some(next) => open = next,
            None => return Ok(end),
        }
    }
}

/// Where a string that ended just before `i` continues: the quote after white space that
/// holds a newline (`--` comments count as white space, block comments do not).
fn continuation(b: &[u8], mut i: usize) -> Option<usize> {
    loop {
        match b.get(i) {
            Some(b' ' | b'\t' | 0x0b | 0x0c) => i += 1,
            Some(b'-') if b.get(i + 1) == Some(&b'-') => i = line_end(b, i),
            _ => break,
        }
    }
    if !matches!(b.get(i), Some(b'\n' | b'\r')) {
        return None;
    }
    loop {
        match b.get(i) {
            Some(&c) if is_space(c) => i += 1,
            Some(b'-') if b.get(i + 1) == Some(&b'-') => {
                i = line_end(b, i);
                if i == b.len() {
                    return None;
                }
            }
            _ => break,
        }
    }
    (b.get(i) == Some(&b'\'')).then_some(i)
}

/// Skips a quoted identifier (`"…"`, or SQLite's and MySQL's `` `…` ``) opening at `open`.
fn skip_identifier(b: &[u8], open: usize, quote: u8) -> Result<usize, SqlError> {
    skip_quoted(b, open, quote, false).ok_or(SqlError::Unterminated("quoted identifier"))
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
            r"SELECT ('it''s''; DROP TABLE x; --'), (E'back\\slash'''), x-('-5'::int4), ('NaN'::float8), (TRUE::boolean)"
        );
    }

    fn inline(sql: &str, value: ParamValue) -> String {
        let t = SqlTemplate::parse(sql).unwrap();
        let p = params(&[("v", value)]);
        t.check_params(&p).unwrap();
        t.render_pg_literals(&p)
    }

    #[test]
    fn negative_zero_after_a_minus_is_no_comment() {
        assert_eq!(
            inline(
                "SELECT * FROM t WHERE quantity > 1-:v AND region = 'zz'",
                ParamValue::Float(-0.0)
            ),
            "SELECT * FROM t WHERE quantity > 1-('-0.0'::float8) AND region = 'zz'"
        );
    }

    #[test]
    fn every_literal_is_parenthesised() {
        let cases = [
            (ParamValue::Int(0), "('0'::int4)"),
            (ParamValue::Int(7), "('7'::int4)"),
            (ParamValue::Int(-7), "('-7'::int4)"),
            (ParamValue::Int(i64::MIN), "('-9223372036854775808'::int8)"),
            (ParamValue::Int(i64::MAX), "('9223372036854775807'::int8)"),
            (ParamValue::Float(0.0), "('0.0'::float8)"),
            (ParamValue::Float(-0.0), "('-0.0'::float8)"),
            (ParamValue::Float(1.5), "('1.5'::float8)"),
            (ParamValue::Float(-1.5), "('-1.5'::float8)"),
            (ParamValue::Float(5e-324), "('5e-324'::float8)"),
            (
                ParamValue::Float(-f64::MAX),
                "('-1.7976931348623157e308'::float8)",
            ),
            (ParamValue::Float(f64::INFINITY), "('Infinity'::float8)"),
            (
                ParamValue::Float(f64::NEG_INFINITY),
                "('-Infinity'::float8)",
            ),
            (ParamValue::Float(-f64::NAN), "('NaN'::float8)"),
            (ParamValue::Int(i32::MIN.into()), "('-2147483648'::int4)"),
            (ParamValue::Int(1 << 31), "('2147483648'::int8)"),
            (ParamValue::Bool(false), "(FALSE::boolean)"),
            (ParamValue::Text(String::new()), "('')"),
            (ParamValue::Text("-- /* '".into()), "('-- /* ''')"),
            (ParamValue::Text(r"\".into()), r"(E'\\')"),
        ];
        for (value, literal) in cases {
            // Glued to a word, a number, a minus, a slash and a quote on either side.
            assert_eq!(
                inline("SELECT E:v'x', 1.:v.5, 1-:v-1, 1/:v/*c*/", value.clone()),
                format!("SELECT E{literal}'x', 1.{literal}.5, 1-{literal}-1, 1/{literal}/*c*/"),
                "{value:?}"
            );
        }
    }

    #[test]
    fn plain_strings_take_no_backslash_escapes() {
        assert_eq!(names(r"SELECT 'a\', :yes, 'b\\', :also"), ["also", "yes"]);
        assert_eq!(names(r"SELECT B'1\', X'f\', N'n\', :yes"), ["yes"]);
        assert_eq!(names(r"SELECT ae'\', :yes"), ["yes"]);
    }

    #[test]
    fn escape_strings_take_backslash_escapes() {
        assert_eq!(names(r"SELECT E'\' :no \\', e'\''' :no', :yes"), ["yes"]);
        // A `$` continues a word, so `a$e` is one identifier and the string is plain.
        assert_eq!(names(r"SELECT a$e'\', :yes"), ["yes"]);
        // A number ends before a letter (PostgreSQL 15 rejects the junk, older servers
        // read an escape string).
        assert_eq!(names(r"SELECT 1e'\' :no ', :yes"), ["yes"]);
        assert_eq!(names(r"SELECT 1.e'\' :no ', :yes"), ["yes"]);
    }

    #[test]
    fn an_escape_strings_continuation_keeps_its_escapes() {
        assert_eq!(names("SELECT E'a'\n'\\' :no ', :yes"), ["yes"]);
        assert_eq!(
            names("SELECT E'a' \t-- c\n  \r\n-- d\n'\\' :no ', :yes"),
            ["yes"]
        );
        // No newline, or a block comment in between: a new, plain string.
        assert_eq!(names("SELECT E'a' '\\', :yes"), ["yes"]);
        assert_eq!(names("SELECT E'a' /* c */\n'\\', :yes"), ["yes"]);
        assert_eq!(names("SELECT E'a'\n/* c */ '\\', :yes"), ["yes"]);
    }

    #[test]
    fn unicode_strings_and_identifiers() {
        assert_eq!(
            names(r"SELECT U&'d\0061t\', :yes, u&'\', :also"),
            ["also", "yes"]
        );
        assert_eq!(
            names(r#"SELECT U&"d:no\0061""" FROM t WHERE a = :yes"#),
            ["yes"]
        );
        assert_eq!(names(r"SELECT U&'d!0061t' UESCAPE '!', :yes"), ["yes"]);
    }

    #[test]
    fn dollar_quotes_and_words_holding_dollars() {
        assert_eq!(names("SELECT $$ :no $$, $a1$ $a$ :no $a1$, :yes"), ["yes"]);
        // `a$$b$$` is one identifier; after a number, `$$` opens a quote.
        assert_eq!(names("SELECT a$$b$$ :yes"), ["yes"]);
        assert_eq!(names("SELECT 1$$ :no $$, :yes"), ["yes"]);
        assert_eq!(names("SELECT $1, $2::int, :yes"), ["yes"]);
        assert_eq!(
            SqlTemplate::parse("SELECT $x$ :no $y$"),
            Err(SqlError::Unterminated("dollar-quoted string"))
        );
    }

    #[test]
    fn comments_end_at_either_newline_and_nest() {
        assert_eq!(names("SELECT 1 -- :no\r, :yes"), ["yes"]);
        assert_eq!(names("SELECT 1 /* :no /* :no */ :no */, :yes"), ["yes"]);
        assert_eq!(
            names("SELECT 1 /*/ :no */, :yes /**/ :also"),
            ["also", "yes"]
        );
        assert_eq!(names("SELECT 2*/*:no*/:yes"), ["yes"]);
        assert_eq!(
            SqlTemplate::parse("SELECT 1 /* /* */"),
            Err(SqlError::Unterminated("block comment"))
        );
    }

    #[test]
    fn a_colon_inside_a_subscript_separates_slice_bounds() {
        for sql in [
            "SELECT arr[lo:hi] FROM t",
            "SELECT arr[1:n] FROM t",
            "SELECT arr[:hi] FROM t",
            "SELECT arr[ :hi ] FROM t",
            "SELECT arr[lo:] FROM t",
            "SELECT t.arr[1:n][:m], \"Arr\"[a:b], f(x)[a:b], $1[a:b] FROM t",
            "SELECT (ARRAY[1,2,3])[:n], ARRAY[1,2][lo:hi] FROM t",
            "SELECT arr [ lo:hi ] FROM t",
        ] {
            assert_eq!(names(sql), Vec::<String>::new(), "{sql}");
        }
    }

    #[test]
    fn parameters_in_constructors_parentheses_and_after_subscripts() {
        assert_eq!(names("SELECT ARRAY[:a, :b]"), ["a", "b"]);
        assert_eq!(names("SELECT array [[1, :a], [:b, 2]]"), ["a", "b"]);
        assert_eq!(names("SELECT 1 WHERE x = ANY(:ids)"), ["ids"]);
        assert_eq!(names("SELECT :arr[1:n], :a[2]"), ["a", "arr"]);
        assert_eq!(names("SELECT arr[(:i)], arr[f(:j)]"), ["i", "j"]);
        assert_eq!(names("SELECT arr[ARRAY[:k][1]]"), ["k"]);
        assert_eq!(names("SELECT arr[lo:hi], :after"), ["after"]);
    }

    #[test]
    fn a_parenthesised_parameter_is_a_slice_bound() {
        assert_eq!(
            inline(
                "SELECT (ARRAY[1,2,3,4])[(:v):hi], arr[:v]",
                ParamValue::Int(2)
            ),
            "SELECT (ARRAY[1,2,3,4])[(('2'::int4)):hi], arr[:v]"
        );
        let t = SqlTemplate::parse("SELECT arr[(:lo):(:hi)]").unwrap();
        let p = params(&[("lo", ParamValue::Int(2)), ("hi", ParamValue::Int(3))]);
        assert_eq!(
            t.render_pg_literals(&p),
            "SELECT arr[(('2'::int4)):(('3'::int4))]"
        );
        assert_eq!(t.render_numbered(&p).0, "SELECT arr[(?1):(?2)]");
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
