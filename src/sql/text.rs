//! How query text is read: the lexer that finds a query's `:name` parameters, and what a
//! query starts with (a leading `WITH`).
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

use super::template::{SqlError, TemplatePart};

/// Lexes `sql` into text and parameter references. A trailing `;` ends the text: after
/// it only blanks, comments and more `;` may follow.
pub(super) fn lex(sql: &str) -> Result<Vec<TemplatePart>, SqlError> {
    let b = sql.as_bytes();
    let mut lexer = Lexer {
        sql,
        parts: Vec::new(),
        text_start: 0,
        after_operand: false,
        open: Vec::new(),
    };
    let mut i = 0;
    // Byte offset of a `;` after which only blanks, comments and more `;` may follow.
    let mut semicolon: Option<usize> = None;
    let mut has_code = false;
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
        let (end, operand) = lexer.token(i)?;
        i = end;
        lexer.after_operand = operand;
    }
    let end = semicolon.unwrap_or(b.len());
    lexer.text_until(end);
    if !has_code {
        return Err(SqlError::Empty);
    }
    Ok(lexer.parts)
}

/// The lexer's state between tokens.
struct Lexer<'a> {
    sql: &'a str,
    parts: Vec<TemplatePart>,
    /// Where the text not yet in `parts` starts.
    text_start: usize,
    /// Whether the last token could take a subscript: a `[` right after one opens a
    /// subscript, anywhere else an array constructor.
    after_operand: bool,
    /// The brackets and parentheses open, innermost last.
    open: Vec<Open>,
}

impl Lexer<'_> {
    /// The token of code starting at `i` (not a blank, a comment or a `;`): where it
    /// ends, and whether it could take a subscript.
    fn token(&mut self, i: usize) -> Result<(usize, bool), SqlError> {
        let b = self.sql.as_bytes();
        let c = b[i];
        Ok(match c {
            b'\'' => (skip_string(b, i, false)?, false),
            b'"' | b'`' => (skip_identifier(b, i, c)?, true),
            b'$' => dollar(b, i)?,
            b':' => self.colon(i),
            b'(' => {
                self.open.push(Open::Paren);
                (i + 1, false)
            }
            b'[' => {
                self.open.push(if self.after_operand {
                    Open::Subscript
                } else {
                    Open::Constructor
                });
                (i + 1, false)
            }
            b')' | b']' => {
                self.open.pop();
                (i + 1, true)
            }
            b'0'..=b'9' => (skip_number(b, i), false),
            c if is_ident_start(c) => word(b, i, self.sql)?,
            _ => (i + 1, false),
        })
    }

    /// A token starting with `:`: a cast, a parameter, or a slice's separator.
    fn colon(&mut self, i: usize) -> (usize, bool) {
        let b = self.sql.as_bytes();
        match b.get(i + 1) {
            // A cast; `:::` is no parameter either.
            Some(b':') => (i + b[i..].iter().take_while(|&&c| c == b':').count(), false),
            Some(&c) if is_param_start(c) => {
                if self.open.last() == Some(&Open::Subscript) {
                    // `arr[lo:hi]`: the slice's separator, and `hi` a column.
                    (i + 1, false)
                } else {
                    let start = i + 1;
                    let end = start + b[start..].iter().take_while(|&&c| is_ident(c)).count();
                    self.text_until(i);
                    self.parts
                        .push(TemplatePart::Param(self.sql[start..end].to_string()));
                    self.text_start = end;
                    (end, true)
                }
            }
            _ => (i + 1, false),
        }
    }

    /// Ends the text not yet in `parts` at `end`.
    fn text_until(&mut self, end: usize) {
        if self.text_start < end {
            self.parts.push(TemplatePart::Text(
                self.sql[self.text_start..end].to_string(),
            ));
        }
    }
}

/// A token starting with `$`: a dollar-quoted string, a positional parameter (`$1`, which
/// may take a subscript) or a lone `$`.
fn dollar(b: &[u8], i: usize) -> Result<(usize, bool), SqlError> {
    Ok(match dollar_tag(b, i) {
        Some(tag_len) => {
            let tag = &b[i..i + tag_len];
            let body = i + tag_len;
            let end =
                find(&b[body..], tag).ok_or(SqlError::Unterminated("dollar-quoted string"))?;
            (body + end + tag_len, false)
        }
        None if b.get(i + 1).is_some_and(u8::is_ascii_digit) => (skip_digits(b, i + 1), true),
        None => (i + 1, false),
    })
}

/// A token starting with a letter: a prefixed string (`E'…'`, `B'…'`, `X'…'`, `N'…'`,
/// `U&'…'`), a `U&"…"` identifier, or a word.
fn word(b: &[u8], i: usize, sql: &str) -> Result<(usize, bool), SqlError> {
    Ok(
        match (b[i].to_ascii_lowercase(), b.get(i + 1), b.get(i + 2)) {
            (b'e', Some(b'\''), _) => (skip_string(b, i + 1, true)?, false),
            (b'b' | b'x' | b'n', Some(b'\''), _) => (skip_string(b, i + 1, false)?, false),
            (b'u', Some(b'&'), Some(b'\'')) => (skip_string(b, i + 2, false)?, false),
            (b'u', Some(b'&'), Some(b'"')) => (skip_identifier(b, i + 2, b'"')?, true),
            _ => {
                let end = i + 1 + b[i + 1..].iter().take_while(|&&c| is_ident_cont(c)).count();
                // `ARRAY[` constructs an array; any other word before `[` is a column, a type
                // or a keyword that takes no subscript anyway.
                (end, !sql[i..end].eq_ignore_ascii_case("array"))
            }
        },
    )
}

/// For a query starting with `WITH` (after blanks and comments), the text after that
/// keyword; `None` otherwise.
pub fn strip_leading_with(sql: &str) -> Option<&str> {
    let rest = skip_blanks(sql);
    let head = rest.get(..4)?;
    let after = rest.get(4..)?;
    (head.eq_ignore_ascii_case("with") && after.starts_with(|c: char| c.is_whitespace()))
        .then_some(after)
}

/// Whether `sql` starts with the keyword `RECURSIVE` after blanks and comments (as the
/// text after a leading `WITH` may).
pub fn starts_recursive(sql: &str) -> bool {
    let next = skip_blanks(sql);
    next.get(..9)
        .is_some_and(|head| head.eq_ignore_ascii_case("recursive"))
}

/// `s` from its first byte that is neither white space nor in a comment.
fn skip_blanks(mut s: &str) -> &str {
    loop {
        let t = s.trim_start();
        if let Some(rest) = t.strip_prefix("--") {
            s = rest.split_once('\n').map_or("", |(_, r)| r);
        } else if let Some(rest) = t.strip_prefix("/*") {
            s = rest.split_once("*/").map_or("", |(_, r)| r);
        } else {
            return t;
        }
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
pub(super) fn skip_quoted(
    b: &[u8],
    start: usize,
    quote: u8,
    backslash_escapes: bool,
) -> Option<usize> {
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

pub(super) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::SqlTemplate;

    fn names(sql: &str) -> Vec<String> {
        SqlTemplate::parse(sql)
            .unwrap()
            .param_names()
            .into_iter()
            .map(String::from)
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
    fn leading_with_is_found_past_comments() {
        assert_eq!(
            strip_leading_with("-- c\n /* d */ WITH x AS (SELECT 1) SELECT * FROM x"),
            Some(" x AS (SELECT 1) SELECT * FROM x")
        );
        assert_eq!(strip_leading_with("SELECT 1"), None);
        assert_eq!(strip_leading_with("WITHOUT"), None);
    }
}
