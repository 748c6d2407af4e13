//! libpq's key=value connection strings (`host=db1 port=5432 dbname=sales`) and its
//! connection service file (`pg_service.conf`), read as psql reads them. This module only
//! splits text into keyword/value pairs; which keywords tributary honours, and how, is
//! [`super::shards`]'s business. Values can hold passwords, so no error here quotes one:
//! errors name keywords, services, files and line numbers only.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Keyword -> value, each keyword once. A map keeps the merge of explicit settings,
/// a service's and the environment's simple: the first to set a keyword wins.
pub type Params = BTreeMap<String, String>;

/// Why a connection string or a service file could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConninfoError {
    /// libpq's `missing "=" after "x"`; the word is named only when it is a keyword, as
    /// the tail of an unquoted password with a space would otherwise be printed.
    #[error("missing \"=\" after \"{0}\" in the connection string")]
    MissingEquals(String),
    #[error(
        "a word in the connection string has no \"=\" after it (a value holding spaces is \
         written in single quotes: key='a b')"
    )]
    MissingEqualsAfterValue,
    /// An unknown word right after an unquoted password is likely the password's tail.
    #[error(
        "invalid connection option after `password` (not shown, as it may be the end of the \
         password: a password holding spaces is written in single quotes, password='a b')"
    )]
    WordAfterPassword,
    #[error("unterminated quoted string in the connection string")]
    UnterminatedQuote,
    #[error("definition of service \"{0}\" not found")]
    ServiceNotFound(String),
    #[error("syntax error in service file \"{}\", line {line}", path.display())]
    ServiceSyntax { path: PathBuf, line: usize },
    #[error("nested service specifications not supported in service file \"{}\", line {line}", path.display())]
    NestedService { path: PathBuf, line: usize },
    #[error("invalid connection option \"{key}\" in service file \"{}\", line {line}", path.display())]
    ServiceOption {
        path: PathBuf,
        line: usize,
        key: String,
    },
}

/// libpq's connection keywords (PostgreSQL 17), the ones tributary honours and the ones
/// it refuses alike: a word outside this list is a mistake, one inside it may be a
/// setting tributary does not support, which is a different message.
pub const KEYWORDS: &[&str] = &[
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "passfile",
    "require_auth",
    "channel_binding",
    "connect_timeout",
    "client_encoding",
    "options",
    "application_name",
    "fallback_application_name",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "tcp_user_timeout",
    "replication",
    "sslmode",
    "sslnegotiation",
    "sslcompression",
    "sslcert",
    "sslkey",
    "sslpassword",
    "sslcertmode",
    "sslrootcert",
    "sslcrl",
    "sslcrldir",
    "sslsni",
    "requirepeer",
    "ssl_min_protocol_version",
    "ssl_max_protocol_version",
    "gssencmode",
    "krbsrvname",
    "gsslib",
    "gssdelegation",
    "service",
    "target_session_attrs",
    "load_balance_hosts",
];

/// Whether `word` is one of libpq's connection keywords.
pub fn is_keyword(word: &str) -> bool {
    KEYWORDS.contains(&word)
}

/// Whether a shard's string is a key=value connection string rather than a URL: libpq's
/// own test is the URL prefix; ours, with more schemes than libpq knows, is `://`.
pub fn looks_like_conninfo(s: &str) -> bool {
    !s.contains("://") && s.contains('=')
}

/// Splits a key=value connection string with libpq's syntax: pairs separated by
/// whitespace, spaces allowed around `=`, a value in single quotes when it holds spaces,
/// `\` escaping the next character (in quotes or not). A keyword given twice keeps its
/// last value, as in libpq. Keywords are not checked here.
pub fn parse(s: &str) -> Result<Params, ConninfoError> {
    let mut params = Params::new();
    let mut chars = s.chars().peekable();
    let skip_spaces = |chars: &mut std::iter::Peekable<std::str::Chars>| {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
    };
    // Whether the last pair was a password without quotes.
    let mut after_bare_password = false;
    loop {
        skip_spaces(&mut chars);
        if chars.peek().is_none() {
            return Ok(params);
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        skip_spaces(&mut chars);
        if after_bare_password && !is_keyword(&key) {
            return Err(ConninfoError::WordAfterPassword);
        }
        if chars.next() != Some('=') {
            return Err(if is_keyword(&key) {
                ConninfoError::MissingEquals(key)
            } else {
                ConninfoError::MissingEqualsAfterValue
            });
        }
        skip_spaces(&mut chars);
        let mut value = String::new();
        let quoted = chars.peek() == Some(&'\'');
        if quoted {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err(ConninfoError::UnterminatedQuote),
                    Some('\'') => break,
                    Some('\\') => match chars.next() {
                        Some(c) => value.push(c),
                        None => return Err(ConninfoError::UnterminatedQuote),
                    },
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                chars.next();
                if c == '\\' {
                    if let Some(escaped) = chars.next() {
                        value.push(escaped);
                    }
                } else {
                    value.push(c);
                }
            }
        }
        after_bare_password = key == "password" && !quoted;
        params.insert(key, value);
    }
}

/// The service files libpq reads, in its order: the user's (`PGSERVICEFILE`, else
/// `~/.pg_service.conf`), then the system's (`$PGSYSCONFDIR/pg_service.conf`, else
/// `/etc/postgresql-common/pg_service.conf`, where Debian's libpq looks).
pub fn service_files(env: &dyn Fn(&str) -> Option<String>) -> Vec<PathBuf> {
    let user = env("PGSERVICEFILE").map(PathBuf::from).or_else(|| {
        env("HOME")
            .filter(|h| !h.is_empty())
            .map(|h| Path::new(&h).join(".pg_service.conf"))
    });
    let system = Path::new(&env("PGSYSCONFDIR").unwrap_or_else(|| "/etc/postgresql-common".into()))
        .join("pg_service.conf");
    user.into_iter().chain([system]).collect()
}

/// The settings of service `name`: its section in the first of `files` that has one (a
/// file that cannot be read is passed over, as libpq does).
pub fn service(name: &str, files: &[PathBuf]) -> Result<Params, ConninfoError> {
    for path in files {
        let Ok(text) = std::fs::read_to_string(path) else {
            continue;
        };
        if let Some(params) = section(&text, name, path)? {
            return Ok(params);
        }
    }
    Err(ConninfoError::ServiceNotFound(name.to_string()))
}

/// Section `[name]` of a service file's text, `path` naming the file in errors. Lines are
/// trimmed; empty ones and `#` comments are skipped; a value is the rest of its line,
/// unquoted. The first section with the name is the one read, and within it the first
/// setting of a keyword wins, as in libpq.
pub fn section(text: &str, name: &str, path: &Path) -> Result<Option<Params>, ConninfoError> {
    let mut found: Option<Params> = None;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        let number = i + 1;
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(group) = line.strip_prefix('[') {
            if found.is_some() {
                break;
            }
            if group.strip_suffix(']') == Some(name) {
                found = Some(Params::new());
            }
            continue;
        }
        let Some(params) = found.as_mut() else {
            continue;
        };
        let Some((key, value)) = line.split_once('=') else {
            return Err(ConninfoError::ServiceSyntax {
                path: path.to_owned(),
                line: number,
            });
        };
        let key = key.trim();
        if key == "service" {
            return Err(ConninfoError::NestedService {
                path: path.to_owned(),
                line: number,
            });
        }
        if !is_keyword(key) {
            return Err(ConninfoError::ServiceOption {
                path: path.to_owned(),
                line: number,
                key: key.to_string(),
            });
        }
        params
            .entry(key.to_string())
            .or_insert_with(|| value.trim().to_string());
    }
    Ok(found)
}

/// `value` as a key=value string writes it: in single quotes, `'` and `\` escaped.
pub fn quote(value: &str) -> String {
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('\'');
    for c in value.chars() {
        if matches!(c, '\'' | '\\') {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push('\'');
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(s: &str) -> Vec<(String, String)> {
        parse(s).unwrap().into_iter().collect()
    }

    fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn key_value_syntax_as_libpq_reads_it() {
        assert_eq!(
            pairs("host=db1 port = 5432\tdbname= sales  user =reader"),
            owned(&[
                ("dbname", "sales"),
                ("host", "db1"),
                ("port", "5432"),
                ("user", "reader")
            ])
        );
        assert_eq!(
            pairs(r"password='it\'s a \\ secret' options='-c search_path=x' application_name=a\ b"),
            owned(&[
                ("application_name", "a b"),
                ("options", "-c search_path=x"),
                ("password", r"it's a \ secret"),
            ])
        );
        // An empty quoted value, a later setting winning, and libpq's quirk: after `=`
        // spaces are skipped, so `user= dbname=x` gives the user `dbname=x`.
        assert_eq!(
            pairs("host='' host=b user= dbname=x"),
            owned(&[("host", "b"), ("user", "dbname=x")])
        );
        assert_eq!(pairs("  "), owned(&[]));
    }

    #[test]
    fn malformed_strings_are_explained_without_values() {
        let err = parse("host=a port").unwrap_err();
        assert!(
            matches!(&err, ConninfoError::MissingEquals(k) if k == "port"),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "missing \"=\" after \"port\" in the connection string"
        );
        // The tail of an unquoted password with a space is not printed.
        for s in ["password=pa ss99 host=a", "password=pa ss99=x host=a"] {
            let err = parse(s).unwrap_err();
            assert!(
                matches!(err, ConninfoError::WordAfterPassword),
                "{s}: {err:?}"
            );
            assert!(!err.to_string().contains("ss99"));
        }
        let err = parse("host=a ss99").unwrap_err();
        assert!(
            matches!(err, ConninfoError::MissingEqualsAfterValue),
            "{err:?}"
        );
        assert!(!err.to_string().contains("ss99"));
        for s in ["password='abc", r"password='abc\"] {
            let err = parse(s).unwrap_err();
            assert!(
                matches!(err, ConninfoError::UnterminatedQuote),
                "{s}: {err:?}"
            );
        }
    }

    #[test]
    fn quoting_round_trips() {
        for value in ["", "plain", "a b", r"it's \ odd", "'"] {
            let parsed = parse(&format!("password={}", quote(value))).unwrap();
            assert_eq!(parsed["password"], value);
        }
    }

    #[test]
    fn service_sections_as_libpq_finds_them() {
        let text = "# comment\n[other]\nhost=x\n\n[sales]\n  host = db1 \nport=6432\nhost=ignored\n\
                    options=-c a=b\n[after]\nhost=y\n";
        let params = section(text, "sales", Path::new("f")).unwrap().unwrap();
        assert_eq!(
            params.into_iter().collect::<Vec<_>>(),
            owned(&[("host", "db1"), ("options", "-c a=b"), ("port", "6432")])
        );
        assert_eq!(section(text, "nope", Path::new("f")).unwrap(), None);

        let err = section("[s]\nhost=a\nbogus=1\n", "s", Path::new("/f")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid connection option \"bogus\" in service file \"/f\", line 3"
        );
        let err = section("[s]\nhost\n", "s", Path::new("/f")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "syntax error in service file \"/f\", line 2"
        );
        let err = section("[s]\nservice=t\n", "s", Path::new("/f")).unwrap_err();
        assert!(matches!(err, ConninfoError::NestedService { line: 2, .. }));
        // Errors in other sections do not matter.
        assert!(section("[t]\nnonsense\n[s]\nhost=a\n", "s", Path::new("/f")).is_ok());
    }

    #[test]
    fn the_first_file_with_the_service_wins() {
        let dir = tempfile::tempdir().unwrap();
        let user = dir.path().join("user.conf");
        let system = dir.path().join("pg_service.conf");
        std::fs::write(&user, "[mine]\nhost=u\n").unwrap();
        std::fs::write(&system, "[mine]\nhost=s\n[shared]\nhost=s2\n").unwrap();
        let files = [dir.path().join("missing.conf"), user, system];
        assert_eq!(service("mine", &files).unwrap()["host"], "u");
        assert_eq!(service("shared", &files).unwrap()["host"], "s2");
        let err = service("nope", &files).unwrap_err();
        assert_eq!(err.to_string(), "definition of service \"nope\" not found");
    }

    #[test]
    fn service_files_follow_the_environment() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                vars.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(
            service_files(&env(&[
                ("PGSERVICEFILE", "/a.conf"),
                ("PGSYSCONFDIR", "/etc/pg")
            ])),
            [
                PathBuf::from("/a.conf"),
                PathBuf::from("/etc/pg/pg_service.conf")
            ]
        );
        assert_eq!(
            service_files(&env(&[("HOME", "/home/u")])),
            [
                PathBuf::from("/home/u/.pg_service.conf"),
                PathBuf::from("/etc/postgresql-common/pg_service.conf")
            ]
        );
    }

    #[test]
    fn conninfo_or_url() {
        assert!(looks_like_conninfo("host=a"));
        assert!(looks_like_conninfo("service=x"));
        assert!(!looks_like_conninfo("postgres://u@h/d?sslmode=require"));
        assert!(!looks_like_conninfo("sqlite://a.db"));
        assert!(!looks_like_conninfo("nonsense"));
    }
}
