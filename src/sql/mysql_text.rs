//! The lexer that finds `:name` parameters in a query for MySQL and MariaDB shards,
//! reading the text as those servers do by default (see [`super::text`] for PostgreSQL's
//! reading, which a fleet mixing kinds of shards uses):
//!
//! - `'…'` and `"…"` are strings, in which a backslash escapes the next character and a
//!   doubled quote is a quote (`'it\'s'`, `'it''s'`);
//! - `` `…` `` is a quoted name (a backquote doubled);
//! - `#` and `-- ` (two dashes, then a blank or a control character) comment to the end
//!   of the line; `/* … */` comments do not nest, and `/*! … */` (code the server runs)
//!   is read as code.
//!
//! The values are bound, never written into the text, so a misreading (a server running
//! with `NO_BACKSLASH_ESCAPES` or `ANSI_QUOTES`) can only make a query fail, never change
//! what a value means.

use super::template::{SqlError, TemplatePart};
use super::text::skip_quoted;

/// Where `needle` first occurs in `b` at or past `from`.
fn find(b: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    super::text::find(b.get(from..)?, needle).map(|p| from + p)
}

/// Lexes `sql` into text and parameter references. A trailing `;` ends the text: after
/// it only blanks, comments and more `;` may follow.
pub(super) fn lex(sql: &str) -> Result<Vec<TemplatePart>, SqlError> {
    let b = sql.as_bytes();
    let mut parts = Vec::new();
    let mut text_start = 0;
    let mut semicolon: Option<usize> = None;
    let mut has_code = false;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() || c == 0x0b {
            i += 1;
            continue;
        }
        if c == b'#' || (c == b'-' && b.get(i + 1) == Some(&b'-') && dash_comment(b, i + 2)) {
            i = b[i..]
                .iter()
                .position(|&c| c == b'\n')
                .map_or(b.len(), |n| i + n + 1);
            continue;
        }
        if c == b'/' && b.get(i + 1) == Some(&b'*') && b.get(i + 2) != Some(&b'!') {
            i = find(b, i + 2, b"*/").ok_or(SqlError::Unterminated("block comment"))? + 2;
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
        i = match c {
            b'\'' | b'"' => {
                skip_quoted(b, i, c, true).ok_or(SqlError::Unterminated("string literal"))?
            }
            b'`' => {
                skip_quoted(b, i, b'`', false).ok_or(SqlError::Unterminated("quoted identifier"))?
            }
            b':' if b
                .get(i + 1)
                .is_some_and(|&c| c.is_ascii_alphabetic() || c == b'_') =>
            {
                let start = i + 1;
                let end = start + b[start..].iter().take_while(|&&c| is_name(c)).count();
                if text_start < i {
                    parts.push(TemplatePart::Text(sql[text_start..i].to_string()));
                }
                parts.push(TemplatePart::Param(sql[start..end].to_string()));
                text_start = end;
                end
            }
            // A name or keyword, whole: `a:b` is `a`, then a parameter.
            c if is_name(c) => {
                i + b[i..]
                    .iter()
                    .take_while(|&&c| is_name(c) || c == b'$')
                    .count()
            }
            _ => i + 1,
        };
    }
    let end = semicolon.unwrap_or(b.len());
    if text_start < end {
        parts.push(TemplatePart::Text(sql[text_start..end].to_string()));
    }
    if !has_code {
        return Err(SqlError::Empty);
    }
    Ok(parts)
}

/// Whether two dashes followed by byte `i` start a comment: MySQL needs a blank or a
/// control character after them (`1--1` is one minus minus one).
fn dash_comment(b: &[u8], i: usize) -> bool {
    b.get(i).is_none_or(|&c| c <= b' ')
}

fn is_name(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(sql: &str) -> Vec<String> {
        lex(sql)
            .unwrap()
            .into_iter()
            .filter_map(|p| match p {
                TemplatePart::Param(n) => Some(n),
                TemplatePart::Text(_) => None,
            })
            .collect()
    }

    #[test]
    fn strings_names_and_comments_hold_no_parameters() {
        assert_eq!(
            params(r#"SELECT 'it\'s :a', 'x'':b', 'C:\\', :c, `d:e`, ":f\"", :g"#),
            ["c", "g"]
        );
        assert_eq!(
            params("SELECT :a # :b\n, :c -- :d\n, 1--:e"),
            ["a", "c", "e"]
        );
        assert_eq!(params("SELECT /* :a */ :b /*! , :c */"), ["b", "c"]);
        assert_eq!(params("SELECT @x := :y, a:b"), ["y", "b"]);
    }

    #[test]
    fn text_is_kept_whole_and_statements_counted() {
        let parts = lex("SELECT :a + 1;  -- done\n;").unwrap();
        assert_eq!(
            parts,
            [
                TemplatePart::Text("SELECT ".into()),
                TemplatePart::Param("a".into()),
                TemplatePart::Text(" + 1".into()),
            ]
        );
        assert_eq!(lex("SELECT 1; SELECT 2"), Err(SqlError::MultipleStatements));
        assert_eq!(lex("# nothing\n"), Err(SqlError::Empty));
        assert_eq!(
            lex(r"SELECT 'a\'"),
            Err(SqlError::Unterminated("string literal"))
        );
    }
}
