//! Environment variables in the job and shards files: `${NAME}` in a string value is the
//! variable's value, `${NAME:-DEFAULT}` the default when the variable is unset or empty
//! (as in POSIX shells), `$$` a literal `$`; any other `$` stays as written, so values
//! such as `$1` or a dollar-quoted `$tag$` mean what they meant before.
//!
//! Only string values are interpolated, after the TOML is parsed: keys never are, and a
//! value from the environment is never read as TOML (a `"` or a newline in it is just a
//! character). A variable that is not set and has no default is a configuration error
//! naming the file, the line and column of its `${`, and the variable. The query file is
//! not interpolated: parameters are the way to bring a value into SQL.

use std::borrow::Cow;
use std::env::VarError;
use std::ops::Range;
use std::path::Path;

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::error::{Error, Position};

/// Where variables are looked up: [`std::env::var`], or a map in tests (a test may not
/// set the process's environment while other tests run).
pub(super) type Lookup<'a> = &'a dyn Fn(&str) -> Result<String, VarError>;

/// The process's environment.
pub(super) fn env(name: &str) -> Result<String, VarError> {
    std::env::var(name)
}

/// Why a string's `${...}` cannot be replaced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Problem {
    #[error("environment variable `{name}` is not set (`${{{name}:-DEFAULT}}` gives a default)")]
    Unset { name: String },
    #[error("environment variable `{name}` is not valid Unicode")]
    NotUnicode { name: String },
    #[error("`${{` is not closed by `}}` (`$$` writes a literal `$`)")]
    Unterminated,
    /// The reference as written (from the file, never from the environment).
    #[error(
        "`{0}` is not `${{NAME}}` or `${{NAME:-DEFAULT}}` (a NAME holds letters, digits and \
         `_` and does not start with a digit; a DEFAULT holds no `${{` or `}}`; `$$` writes a \
         literal `$`)"
    )]
    Malformed(String),
}

/// A [`Problem`] and the byte offset in the string of the `$` that starts its reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{problem}")]
pub struct InterpolateError {
    pub at: usize,
    pub problem: Problem,
}

/// One piece of a string as the interpolation reads it.
#[derive(Debug, PartialEq, Eq)]
enum Piece<'a> {
    /// Text kept as written (a lone `$` among it).
    Text(&'a str),
    /// `$$`: one `$`.
    Dollar,
    /// `${...}` starting at byte `at`; `body` is what the braces hold, `None` when
    /// there is no closing brace.
    Reference { at: usize, body: Option<&'a str> },
}

/// The pieces of `text`, in order.
fn pieces(text: &str) -> impl Iterator<Item = Piece<'_>> {
    let mut next = 0;
    std::iter::from_fn(move || {
        let rest = text.get(next..).filter(|r| !r.is_empty())?;
        let Some(dollar) = rest.find('$') else {
            next = text.len();
            return Some(Piece::Text(rest));
        };
        if dollar > 0 {
            next += dollar;
            return Some(Piece::Text(&rest[..dollar]));
        }
        let at = next;
        match rest.as_bytes().get(1) {
            Some(b'$') => {
                next += 2;
                Some(Piece::Dollar)
            }
            Some(b'{') => {
                let body = &rest[2..];
                match body.find('}') {
                    Some(end) => {
                        next += 2 + end + 1;
                        Some(Piece::Reference {
                            at,
                            body: Some(&body[..end]),
                        })
                    }
                    None => {
                        next = text.len();
                        Some(Piece::Reference { at, body: None })
                    }
                }
            }
            // A lone `$`, with the text up to the next `$`.
            _ => {
                let end = rest[1..].find('$').map_or(rest.len(), |i| i + 1);
                next += end;
                Some(Piece::Text(&rest[..end]))
            }
        }
    })
}

/// `text` with its references replaced (borrowed when it has none).
pub fn interpolate<'a>(text: &'a str, lookup: Lookup) -> Result<Cow<'a, str>, InterpolateError> {
    if !text.contains('$') {
        return Ok(Cow::Borrowed(text));
    }
    let mut out = String::with_capacity(text.len());
    for piece in pieces(text) {
        match piece {
            Piece::Text(t) => out.push_str(t),
            Piece::Dollar => out.push('$'),
            Piece::Reference { at, body } => {
                let value = reference(text, at, body, lookup)
                    .map_err(|problem| InterpolateError { at, problem })?;
                out.push_str(&value);
            }
        }
    }
    Ok(Cow::Owned(out))
}

/// The value of the reference `${body}` at `at` in `text`.
fn reference(text: &str, at: usize, body: Option<&str>, lookup: Lookup) -> Result<String, Problem> {
    let body = body.ok_or(Problem::Unterminated)?;
    let (name, default) = match body.split_once(":-") {
        Some((name, default)) => (name, Some(default)),
        None => (body, None),
    };
    let valid_name = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid_name || default.is_some_and(|d| d.contains("${")) {
        let written = &text[at..at + "${".len() + body.len() + "}".len()];
        return Err(Problem::Malformed(written.to_string()));
    }
    let default = default.map(|d| d.replace("$$", "$"));
    match (lookup(name), default) {
        (Ok(value), Some(default)) if value.is_empty() => Ok(default),
        (Ok(value), _) => Ok(value),
        (Err(VarError::NotPresent), Some(default)) => Ok(default),
        (Err(VarError::NotPresent), None) => Err(Problem::Unset {
            name: name.to_string(),
        }),
        (Err(VarError::NotUnicode(_)), _) => Err(Problem::NotUnicode {
            name: name.to_string(),
        }),
    }
}

/// The byte offsets of the references in `text`.
fn reference_offsets(text: &str) -> impl Iterator<Item = usize> + '_ {
    pieces(text).filter_map(|p| match p {
        Piece::Reference { at, .. } => Some(at),
        _ => None,
    })
}

/// Why a file cannot be read as interpolated TOML.
#[derive(Debug, thiserror::Error)]
pub(super) enum ParseError {
    /// Invalid TOML, or not the keys and types `T` has.
    #[error(transparent)]
    Toml(#[from] toml::de::Error),
    /// A reference in a string value, at `at` in the file.
    #[error("{problem}")]
    Env { at: Position, problem: Problem },
}

impl ParseError {
    /// The configuration error of the file at `path`; `invalid` introduces a TOML error
    /// (`invalid job file`).
    pub(super) fn into_config_error(self, path: &Path, invalid: &str) -> Error {
        match self {
            ParseError::Toml(e) => Error::config(Some(path.to_owned()), format!("{invalid}: {e}")),
            ParseError::Env { at, problem } => {
                Error::config_at(path.to_owned(), at, problem.to_string())
            }
        }
    }
}

/// Parses the TOML `text` into `T`, each string value interpolated from `lookup`.
///
/// What was written is deserialized once before anything from the environment is in it:
/// a value of the wrong type is then reported as written (`"${N}"`, not the value of
/// `N`), and serde's messages, which quote the value they reject, never hold a value from
/// the environment, which may be a secret. Interpolation changes strings into strings,
/// so the second pass meets no type the first did not accept.
pub(super) fn from_str<T: DeserializeOwned>(text: &str, lookup: Lookup) -> Result<T, ParseError> {
    let mut doc = DeTable::parse(text)?;
    deserialize::<T>(doc.clone(), text)?;
    interpolate_table(doc.get_mut(), text, lookup)?;
    Ok(deserialize(doc, text)?)
}

fn deserialize<T: DeserializeOwned>(
    doc: Spanned<DeTable<'_>>,
    text: &str,
) -> Result<T, toml::de::Error> {
    T::deserialize(toml::de::Deserializer::from(doc)).map_err(|mut e| {
        // The spans are the file's: errors show its lines.
        e.set_input(Some(text));
        e
    })
}

fn interpolate_table(
    table: &mut DeTable<'_>,
    text: &str,
    lookup: Lookup,
) -> Result<(), ParseError> {
    for (_, value) in table.iter_mut() {
        interpolate_value(value, text, lookup)?;
    }
    Ok(())
}

fn interpolate_value(
    value: &mut Spanned<DeValue<'_>>,
    text: &str,
    lookup: Lookup,
) -> Result<(), ParseError> {
    let span = value.span();
    match value.get_mut() {
        DeValue::String(s) => {
            let replaced = match interpolate(s, lookup) {
                Ok(Cow::Borrowed(_)) => None,
                Ok(Cow::Owned(replaced)) => Some(replaced),
                Err(e) => {
                    return Err(ParseError::Env {
                        at: locate(text, span, s, e.at),
                        problem: e.problem,
                    });
                }
            };
            if let Some(replaced) = replaced {
                *s = Cow::Owned(replaced);
            }
        }
        DeValue::Array(items) => {
            for item in items.iter_mut() {
                interpolate_value(item, text, lookup)?;
            }
        }
        DeValue::Table(table) => interpolate_table(table, text, lookup)?,
        DeValue::Integer(_) | DeValue::Float(_) | DeValue::Boolean(_) | DeValue::Datetime(_) => {}
    }
    Ok(())
}

/// Where in `text` the reference at byte `at` of the string `value` is written; `span` is
/// the string's token, quotes included. The token as written and the value hold the same
/// references unless an escape (`\u0024`) wrote a `$` or a brace: then the string's
/// start stands for it.
fn locate(text: &str, span: Range<usize>, value: &str, at: usize) -> Position {
    let token = text.get(span.clone()).unwrap_or_default();
    let in_value: Vec<usize> = reference_offsets(value).collect();
    let in_token: Vec<usize> = reference_offsets(token).collect();
    let offset = match in_value.iter().position(|&o| o == at) {
        Some(k) if in_token.len() == in_value.len() => span.start + in_token[k],
        _ => span.start,
    };
    Position::of(text, offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A lookup over `vars`, with `BAD` set to a value that is not Unicode.
    fn vars(vars: &[(&str, &str)]) -> impl Fn(&str) -> Result<String, VarError> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| {
            if name == "BAD" {
                return Err(VarError::NotUnicode("\u{FFFD}".into()));
            }
            vars.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .ok_or(VarError::NotPresent)
        }
    }

    fn ok(text: &str, env: &[(&str, &str)]) -> String {
        interpolate(text, &vars(env))
            .unwrap_or_else(|e| panic!("{text}: {e}"))
            .into_owned()
    }

    fn err(text: &str, env: &[(&str, &str)]) -> InterpolateError {
        interpolate(text, &vars(env)).unwrap_err()
    }

    #[test]
    fn references_take_the_variable() {
        let env = [("PG_PW", "s3cret"), ("DIR", "/data"), ("EMPTY", "")];
        assert_eq!(
            ok("postgres://reader:${PG_PW}@db/sales", &env),
            "postgres://reader:s3cret@db/sales"
        );
        assert_eq!(ok("${DIR}/${DIR}", &env), "/data//data");
        assert_eq!(ok("${DIR}", &env), "/data");
        // Set and empty, without a default: empty, as in a shell.
        assert_eq!(ok("a${EMPTY}b", &env), "ab");
        // A value is not read again: a `${` in it stays.
        assert_eq!(ok("${X}", &[("X", "${Y} $$")]), "${Y} $$");
        assert_eq!(ok("${_x1}", &[("_x1", "v")]), "v");
    }

    #[test]
    fn defaults_apply_when_unset_or_empty() {
        let env = [("SET", "value"), ("EMPTY", "")];
        assert_eq!(ok("${SET:-d}", &env), "value");
        assert_eq!(ok("${UNSET:-d}", &env), "d");
        assert_eq!(ok("${EMPTY:-d}", &env), "d");
        assert_eq!(ok("${UNSET:-}", &env), "");
        assert_eq!(ok("${UNSET:-@yesterday}", &env), "@yesterday");
        // A default holds any text but `}` and `${`; `$$` in it is a `$`.
        assert_eq!(ok("${UNSET:-a:-b $1 $$x}", &env), "a:-b $1 $x");
    }

    #[test]
    fn dollars_other_than_references_are_kept() {
        let env = [("X", "v")];
        assert_eq!(ok("$$", &env), "$");
        assert_eq!(ok("$${X}", &env), "${X}");
        assert_eq!(ok("$$$${X}", &env), "$${X}");
        assert_eq!(ok("$$${X}", &env), "$v");
        assert_eq!(ok("a $ b", &env), "a $ b");
        assert_eq!(ok("$", &env), "$");
        assert_eq!(ok("x$", &env), "x$");
        assert_eq!(ok("$1 $tag$ $X ${X}$", &env), "$1 $tag$ $X v$");
        assert_eq!(ok("€$é${X}ü", &env), "€$évü");
        assert!(matches!(
            interpolate("no dollar", &vars(&env)),
            Ok(Cow::Borrowed("no dollar"))
        ));
    }

    #[test]
    fn a_missing_variable_is_named() {
        let e = err("out/${DAY}/${MISSING}.parquet", &[("DAY", "d")]);
        assert_eq!(
            e,
            InterpolateError {
                at: 11,
                problem: Problem::Unset {
                    name: "MISSING".into()
                }
            }
        );
        assert_eq!(
            e.to_string(),
            "environment variable `MISSING` is not set (`${MISSING:-DEFAULT}` gives a default)"
        );
        assert_eq!(
            err("${BAD:-x}", &[]).to_string(),
            "environment variable `BAD` is not valid Unicode"
        );
    }

    #[test]
    fn malformed_references_are_refused() {
        let e = err("a ${X", &[("X", "v")]);
        assert_eq!((e.at, &e.problem), (2, &Problem::Unterminated));
        assert_eq!(
            e.to_string(),
            "`${` is not closed by `}` (`$$` writes a literal `$`)"
        );
        assert_eq!(err("${X:-d", &[]).problem, Problem::Unterminated);
        for written in [
            "${}",
            "${1X}",
            "${X-d}",
            "${X:?e}",
            "${ X }",
            "${X:-${Y}",
            "${é}",
        ] {
            let e = err(&format!("ab{written}"), &[("X", "v")]);
            assert_eq!(e.at, 2, "{written}");
            assert_eq!(e.problem, Problem::Malformed(written.into()), "{written}");
        }
        assert!(
            err("${-}", &[])
                .to_string()
                .starts_with("`${-}` is not `${NAME}` or `${NAME:-DEFAULT}`")
        );
    }

    /// The string values of `text` interpolated, as a table.
    fn file(text: &str, env: &[(&str, &str)]) -> Result<toml::Table, ParseError> {
        from_str(text, &vars(env))
    }

    /// The line and column `text` names for its first bad reference.
    fn where_unset(text: &str) -> (usize, usize, Problem) {
        match file(text, &[]) {
            Err(ParseError::Env { at, problem }) => (at.line, at.column, problem),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_string_value_and_no_key_is_interpolated() {
        let text = r#"
output = "${DIR}/out.parquet"
concurrency = 4
"${DIR}" = "key"
[params]
region = "${REGION:-eu}"
days = ["${D1}", 'literal ${D1}', 7]
[shards]
a = "sqlite://${DIR}/a.db"
b = { url = "postgres://u:${PW}@h/d", pool_size = 2 }
[[list]]
x = """
${D1}"""
"#;
        let env = [("DIR", "/srv"), ("D1", "mon"), ("PW", "p\"w\n")];
        let t = file(text, &env).unwrap();
        assert_eq!(t["output"].as_str(), Some("/srv/out.parquet"));
        assert_eq!(t["concurrency"].as_integer(), Some(4));
        assert_eq!(t["${DIR}"].as_str(), Some("key"));
        assert_eq!(t["params"]["region"].as_str(), Some("eu"));
        assert_eq!(
            t["params"]["days"],
            toml::Value::Array(vec!["mon".into(), "literal mon".into(), 7.into()])
        );
        assert_eq!(t["shards"]["a"].as_str(), Some("sqlite:///srv/a.db"));
        // A value is never read as TOML: a quote or a newline is a character.
        assert_eq!(
            t["shards"]["b"]["url"].as_str(),
            Some("postgres://u:p\"w\n@h/d")
        );
        assert_eq!(t["list"][0]["x"].as_str(), Some("mon"));
    }

    #[test]
    fn an_error_names_the_line_and_column_of_its_reference() {
        let unset = |name: &str| Problem::Unset { name: name.into() };
        let text = "a = 1\n\n[t]\nb = \"x ${NOPE}\"\n";
        assert_eq!(where_unset(text), (4, 8, unset("NOPE")));
        // Not the first reference of the string; characters before it, not bytes.
        let text = "[t]\n  \"é\" = \"€${A:-1} $$ ${NOPE}\"\n";
        assert_eq!(where_unset(text), (2, 22, unset("NOPE")));
        // In a multi-line string, on the line it is written on.
        let text = "x = \"\"\"\nfirst\nsecond ${NOPE}\n\"\"\"\n";
        assert_eq!(where_unset(text), (3, 8, unset("NOPE")));
        let text = "x = '''\n${A:-a}\n  ${NOPE}'''\n";
        assert_eq!(where_unset(text), (3, 3, unset("NOPE")));
        // In an array, an inline table, after escapes that change the length.
        let text = "x = [\n  \"ok\",\n  { y = \"\\t\\u00e9 ${NOPE}\" },\n]\n";
        assert_eq!(where_unset(text), (3, 19, unset("NOPE")));
        let text = "x = \"\"\"\\\n   ${NOPE}\"\"\"\n";
        assert_eq!(where_unset(text), (2, 4, unset("NOPE")));
        let text = "\n\nx = 'a ${X'\n";
        assert_eq!(where_unset(text), (3, 8, Problem::Unterminated));
        // A `$` written as an escape: the string's start stands for the reference.
        let text = "\nx = \"\\u0024{NOPE}\"\n";
        assert_eq!(where_unset(text), (2, 5, unset("NOPE")));
    }

    #[test]
    fn types_are_checked_as_written() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Job {
            concurrency: Option<usize>,
        }
        let e = from_str::<Job>("concurrency = \"${N}\"\n", &vars(&[("N", "s3cret")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"${N}\"") && !e.contains("s3cret"), "{e}");
        assert!(e.contains("line 1, column 15"), "{e}");
    }
}
