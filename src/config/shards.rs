//! The shards file: a `[shards]` table mapping a shard's name to a URL, or to a table with
//! `url` and per-shard options. Parsing resolves everything a connection needs (defaults
//! from the libpq environment variables, the password from the file, an environment
//! variable, `PGPASSWORD` or `~/.pgpass`) and keeps the password out of every `Debug` and
//! `Display` form. Its errors name the shard and never the password. String values may
//! name environment variables ([`super::interpolate`]), replaced before a URL is parsed,
//! so that a password from one is kept out of sight like any other.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use crate::error::{self, Error, Result};

use super::interpolate;
use super::pgpass;

/// One shard: an independent database, read with its own connection pool.
#[derive(Debug, Clone)]
pub struct ShardConfig {
    /// The key in the `[shards]` table; names the shard in progress, errors and the output.
    pub name: String,
    pub source: SourceConfig,
    /// Connections this shard may open at once; `None` takes the run's `--pool-size`.
    pub pool_size: Option<usize>,
}

/// Where a shard's rows come from.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum SourceConfig {
    Postgres(Box<PgSource>),
    Sqlite(SqliteSource),
}

impl SourceConfig {
    /// The shard's address without credentials, for messages.
    pub fn display(&self) -> String {
        match self {
            SourceConfig::Postgres(pg) => pg.display.clone(),
            SourceConfig::Sqlite(s) => format!("sqlite://{}", s.path.display()),
        }
    }
}

/// How to reach one PostgreSQL server. The password lives only inside `config`, whose
/// `Debug` redacts it.
#[derive(Clone)]
pub struct PgSource {
    pub config: tokio_postgres::Config,
    pub tls: TlsSettings,
    /// `postgres://user@host:port/db`, never with the password.
    pub display: String,
    /// Whether the URL set `connect_timeout`; if not, the run's `--connect-timeout` applies.
    pub has_connect_timeout: bool,
}

impl fmt::Debug for PgSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgSource")
            .field("url", &self.display)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

/// libpq's `sslmode`, with its meanings: `prefer` and `require` encrypt without checking
/// the certificate; `verify-ca` checks it against the root certificates; `verify-full`
/// also checks the host name. `require` and above never fall back to plaintext.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    /// The mode as `sslmode=` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    fn verifies(self) -> bool {
        matches!(self, SslMode::VerifyCa | SslMode::VerifyFull)
    }
}

#[derive(Debug, Clone)]
pub struct TlsSettings {
    pub mode: SslMode,
    /// What authenticates the server: set for `verify-ca` and `verify-full` (a URL that
    /// asks for them without a root certificate file is refused), `None` for the modes
    /// that do not check the certificate.
    pub roots: Option<RootCerts>,
}

/// Where the trusted root certificates come from, as libpq finds them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RootCerts {
    /// A PEM file: `sslrootcert`, else `~/.postgresql/root.crt`; it existed when the URL
    /// was parsed.
    File(PathBuf),
    /// `sslrootcert=system`: the operating system's trust store (`SSL_CERT_FILE` and
    /// `SSL_CERT_DIR` replace it when set, as for OpenSSL). Always with `verify-full`.
    System,
}

/// Why a `[shards]` table is invalid.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShardsError {
    #[error("`shards` must be a table of name = URL")]
    NotATable,
    #[error("`[shards]` names no shard")]
    Empty,
    #[error("shard name `{0}` may only hold letters, digits, `_`, `-` and `.`")]
    BadName(String),
    /// One entry is invalid; `source` says how.
    #[error("shard `{name}`")]
    Shard {
        name: String,
        #[source]
        source: UrlError,
    },
}

/// Why one shard's entry or URL is invalid. No variant holds the URL, whose password
/// must not reach a message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UrlError {
    #[error("expected a URL string or a table with `url`")]
    NotAUrl,
    #[error("`{key}` must be {expected}")]
    OptionType {
        key: &'static str,
        expected: &'static str,
    },
    #[error("unknown option `{0}` (expected url, pool_size, password_env)")]
    UnknownOption(String),
    #[error("missing `url`")]
    MissingUrl,
    #[error("the URL must start with postgres://, postgresql:// or sqlite://")]
    Scheme,
    #[error("`{0}://` shards are not supported yet")]
    Unsupported(String),
    #[error("`password_env` does not apply to SQLite")]
    PasswordEnvForSqlite,
    #[error("a SQLite URL needs a path: sqlite://data/a.db")]
    SqlitePath,
    #[error("`password_env` names `{var}`, which is not set")]
    PasswordEnvUnset {
        var: String,
        #[source]
        source: std::env::VarError,
    },
    #[error("`{key}` is not UTF-8 once percent-decoded")]
    NotUtf8 {
        key: &'static str,
        #[source]
        source: std::str::Utf8Error,
    },
    #[error("unknown sslmode `{0}`")]
    UnknownSslMode(String),
    #[error("`{0}` (client certificates) is not supported yet")]
    ClientCertificates(String),
    /// libpq's rule: the system's roots vouch for public names, so only `verify-full`
    /// may use them.
    #[error("weak sslmode \"{0}\" may not be used with sslrootcert=system (use \"verify-full\")")]
    WeakSslModeForSystemRoots(String),
    #[error(
        "root certificate file \"{}\" does not exist; {ROOT_CERT_HINT}",
        path.display()
    )]
    NoRootCert { path: PathBuf },
    #[error("could not get home directory to locate root certificate file; {ROOT_CERT_HINT}")]
    NoHomeForRootCert,
    #[error("invalid PostgreSQL URL")]
    Postgres(#[source] tokio_postgres::Error),
    /// Said without the URL: the `@` may well be in its password.
    #[error(
        "the URL holds more than one `@`; write an `@` in the user name, the password or an \
         option as %40"
    )]
    ManyAts,
}

/// libpq's advice when `verify-ca`/`verify-full` has no root certificate file.
const ROOT_CERT_HINT: &str = "either provide the file, use the system's trusted roots with \
     sslrootcert=system, or change sslmode to disable server certificate verification";

/// A SQLite database file, opened read-only.
#[derive(Debug, Clone)]
pub struct SqliteSource {
    pub path: PathBuf,
}

/// Reads and validates a shards file. Relative SQLite paths are taken relative to the
/// directory of the file.
pub fn load(path: &Path) -> Result<Vec<ShardConfig>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::config(Some(path.to_owned()), format!("cannot read: {e}")))?;
    let table: toml::Table = interpolate::from_str(&text, &interpolate::env)
        .map_err(|e| e.into_config_error(path, "invalid TOML"))?;
    for key in table.keys() {
        if key != "shards" {
            return Err(Error::config(
                Some(path.to_owned()),
                format!("unknown key `{key}`; a shards file holds one `[shards]` table"),
            ));
        }
    }
    let shards = table
        .get("shards")
        .ok_or_else(|| Error::config(Some(path.to_owned()), "no `[shards]` table".to_string()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse_table(shards, base).map_err(|e| Error::config(Some(path.to_owned()), error::chain(&e)))
}

/// Parses a `[shards]` table (from a shards file or a job file).
pub fn parse_table(
    value: &toml::Value,
    base: &Path,
) -> std::result::Result<Vec<ShardConfig>, ShardsError> {
    let table = value.as_table().ok_or(ShardsError::NotATable)?;
    if table.is_empty() {
        return Err(ShardsError::Empty);
    }
    let mut shards = Vec::with_capacity(table.len());
    for (name, entry) in table {
        validate_name(name)?;
        shards.push(
            parse_entry(name, entry, base).map_err(|source| ShardsError::Shard {
                name: name.clone(),
                source,
            })?,
        );
    }
    Ok(shards)
}

fn validate_name(name: &str) -> std::result::Result<(), ShardsError> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(ShardsError::BadName(name.to_string()))
    }
}

fn parse_entry(
    name: &str,
    entry: &toml::Value,
    base: &Path,
) -> std::result::Result<ShardConfig, UrlError> {
    let (url, pool_size, password_env) = match entry {
        toml::Value::String(url) => (url.as_str(), None, None),
        toml::Value::Table(t) => {
            let mut url = None;
            let mut pool_size = None;
            let mut password_env = None;
            for (key, value) in t {
                match key.as_str() {
                    "url" => url = Some(string("url", value)?),
                    "pool_size" => {
                        let n = value.as_integer().filter(|n| *n >= 1 && *n <= 1024).ok_or(
                            UrlError::OptionType {
                                key: "pool_size",
                                expected: "a whole number from 1 to 1024",
                            },
                        )?;
                        pool_size = Some(n as usize);
                    }
                    "password_env" => password_env = Some(string("password_env", value)?),
                    other => return Err(UrlError::UnknownOption(other.to_string())),
                }
            }
            (url.ok_or(UrlError::MissingUrl)?, pool_size, password_env)
        }
        _ => return Err(UrlError::NotAUrl),
    };
    let source = parse_url(url, base, password_env)?;
    Ok(ShardConfig {
        name: name.to_string(),
        source,
        pool_size,
    })
}

/// The string value of option `key`.
fn string<'a>(key: &'static str, value: &'a toml::Value) -> std::result::Result<&'a str, UrlError> {
    value.as_str().ok_or(UrlError::OptionType {
        key,
        expected: "a string",
    })
}

/// Parses a shard URL. `password_env` names an environment variable holding the password.
pub fn parse_url(
    url: &str,
    base: &Path,
    password_env: Option<&str>,
) -> std::result::Result<SourceConfig, UrlError> {
    let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    match scheme.as_deref() {
        Some("postgres" | "postgresql") => {
            parse_postgres(url, password_env).map(|pg| SourceConfig::Postgres(Box::new(pg)))
        }
        Some("sqlite") => {
            if password_env.is_some() {
                return Err(UrlError::PasswordEnvForSqlite);
            }
            let rest = &url["sqlite://".len()..];
            let path = rest.split_once('?').map_or(rest, |(p, _)| p);
            if path.is_empty() {
                return Err(UrlError::SqlitePath);
            }
            let path = Path::new(path);
            let path = if path.is_absolute() {
                path.to_owned()
            } else {
                base.join(path)
            };
            Ok(SourceConfig::Sqlite(SqliteSource { path }))
        }
        Some(s @ ("mysql" | "mariadb")) => Err(UrlError::Unsupported(s.to_string())),
        _ => Err(UrlError::Scheme),
    }
}

fn parse_postgres(
    url: &str,
    password_env: Option<&str>,
) -> std::result::Result<PgSource, UrlError> {
    // tokio-postgres ends the user name and password at the first `@`, as libpq does: after
    // a second one, in a password from an environment variable say, the rest of the
    // password would be read as the host, and printed in messages.
    if url.matches('@').count() > 1 {
        return Err(UrlError::ManyAts);
    }
    // libpq options tokio-postgres does not parse are taken out here and applied by us.
    let (head, query) = url.split_once('?').unwrap_or((url, ""));
    let mut kept = Vec::new();
    // The mode as written (libpq's messages quote it) and as understood.
    let mut mode: Option<(String, SslMode)> = None;
    let mut root_cert: Option<String> = None;
    let mut has_connect_timeout = false;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "sslmode" => {
                let value = percent_decode("sslmode", value)?;
                let parsed = match value.as_str() {
                    "disable" => SslMode::Disable,
                    "allow" | "prefer" => SslMode::Prefer,
                    "require" => SslMode::Require,
                    "verify-ca" => SslMode::VerifyCa,
                    "verify-full" => SslMode::VerifyFull,
                    _ => return Err(UrlError::UnknownSslMode(value)),
                };
                mode = Some((value, parsed));
            }
            // libpq takes an empty value as not set.
            "sslrootcert" => {
                root_cert = Some(percent_decode("sslrootcert", value)?).filter(|v| !v.is_empty())
            }
            "sslcert" | "sslkey" | "sslpassword" => {
                return Err(UrlError::ClientCertificates(key.to_string()));
            }
            _ => {
                if key == "connect_timeout" {
                    has_connect_timeout = true;
                }
                kept.push(pair)
            }
        }
    }
    let tls = tls_settings(mode, root_cert)?;
    let rebuilt = if kept.is_empty() {
        head.to_string()
    } else {
        format!("{head}?{}", kept.join("&"))
    };
    let mut config = tokio_postgres::Config::from_str(&rebuilt).map_err(UrlError::Postgres)?;
    fill_defaults(&mut config);
    if config.get_password().is_none() {
        if let Some(var) = password_env {
            let pw = std::env::var(var).map_err(|source| UrlError::PasswordEnvUnset {
                var: var.to_string(),
                source,
            })?;
            config.password(pw);
        } else if let Ok(pw) = std::env::var("PGPASSWORD") {
            config.password(pw);
        } else if let Some(pw) = pgpass_password(&config) {
            config.password(pw);
        }
    }
    tls.mode_applies_to(&mut config);
    let display = display(&config);
    Ok(PgSource {
        config,
        tls,
        display,
        has_connect_timeout,
    })
}

/// Resolves `sslmode` and `sslrootcert` as libpq does: `sslrootcert=system` makes
/// `verify-full` the default and refuses any other mode; `verify-ca` and `verify-full`
/// need a root certificate file (`sslrootcert`, else `~/.postgresql/root.crt`) that
/// exists, and are refused here, before any connection, when there is none.
fn tls_settings(
    mode: Option<(String, SslMode)>,
    root_cert: Option<String>,
) -> std::result::Result<TlsSettings, UrlError> {
    let system = root_cert.as_deref() == Some("system");
    let mode = match mode {
        Some((written, mode)) => {
            if system && mode != SslMode::VerifyFull {
                return Err(UrlError::WeakSslModeForSystemRoots(written));
            }
            mode
        }
        None if system => SslMode::VerifyFull,
        None => SslMode::Prefer,
    };
    if !mode.verifies() {
        return Ok(TlsSettings { mode, roots: None });
    }
    let path = match root_cert {
        Some(_) if system => {
            return Ok(TlsSettings {
                mode,
                roots: Some(RootCerts::System),
            });
        }
        Some(path) => PathBuf::from(path),
        None => std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(|h| PathBuf::from(h).join(".postgresql/root.crt"))
            .ok_or(UrlError::NoHomeForRootCert)?,
    };
    if !path.exists() {
        return Err(UrlError::NoRootCert { path });
    }
    Ok(TlsSettings {
        mode,
        roots: Some(RootCerts::File(path)),
    })
}

impl TlsSettings {
    fn mode_applies_to(&self, config: &mut tokio_postgres::Config) {
        use tokio_postgres::config::SslMode as Pg;
        config.ssl_mode(match self.mode {
            SslMode::Disable => Pg::Disable,
            SslMode::Prefer => Pg::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => Pg::Require,
        });
    }
}

/// libpq's defaults for what a URL leaves out: PGHOST/PGPORT/PGUSER/PGDATABASE, then the
/// local socket and the operating-system user.
fn fill_defaults(config: &mut tokio_postgres::Config) {
    if config.get_hosts().is_empty() {
        match std::env::var("PGHOST") {
            Ok(h) => {
                config.host(h);
            }
            Err(_) => {
                if Path::new("/var/run/postgresql").is_dir() {
                    config.host("/var/run/postgresql");
                } else {
                    config.host("localhost");
                }
            }
        }
    }
    if config.get_ports().is_empty()
        && let Some(p) = std::env::var("PGPORT").ok().and_then(|p| p.parse().ok())
    {
        config.port(p);
    }
    if config.get_user().is_none() {
        let user = std::env::var("PGUSER")
            .or_else(|_| std::env::var("USER"))
            .unwrap_or_else(|_| "postgres".into());
        config.user(user);
    }
    if config.get_dbname().is_none()
        && let Ok(db) = std::env::var("PGDATABASE")
    {
        config.dbname(db);
    }
    if config.get_application_name().is_none() {
        config.application_name("tributary");
    }
    // Dead peers are noticed within about a minute rather than libpq's two hours.
    config.keepalives(true);
    config.keepalives_idle(Duration::from_secs(30));
}

fn host_string(config: &tokio_postgres::Config) -> String {
    match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    }
}

fn port(config: &tokio_postgres::Config) -> u16 {
    config.get_ports().first().copied().unwrap_or(5432)
}

fn pgpass_password(config: &tokio_postgres::Config) -> Option<String> {
    let path = pgpass::default_path()?;
    let text = pgpass::read(&path)?;
    let user = config.get_user().unwrap_or_default();
    let db = config.get_dbname().unwrap_or(user);
    pgpass::lookup(&text, &host_string(config), port(config), db, user)
}

/// `postgres://user@host:port/db`: what messages show of a PostgreSQL shard.
fn display(config: &tokio_postgres::Config) -> String {
    let user = config.get_user().unwrap_or_default();
    let db = config.get_dbname().unwrap_or(user);
    format!(
        "postgres://{user}@{}:{}/{db}",
        host_string(config),
        port(config)
    )
}

/// Decodes a query value the way tokio-postgres decodes the others: `%XX` becomes the
/// byte, a `%` without two hex digits after it stays as written.
fn percent_decode(key: &'static str, value: &str) -> std::result::Result<String, UrlError> {
    percent_encoding::percent_decode_str(value)
        .decode_utf8()
        .map(|v| v.into_owned())
        .map_err(|source| UrlError::NotUtf8 { key, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> PgSource {
        match parse_url(url, Path::new("/base"), None).unwrap() {
            SourceConfig::Postgres(pg) => *pg,
            other => panic!("expected postgres, got {other:?}"),
        }
    }

    /// The error of `url`, with its sources, as a user reads it.
    fn refused(url: &str) -> (UrlError, String) {
        let err = parse_url(url, Path::new("."), None).unwrap_err();
        let message = error::chain(&err);
        (err, message)
    }

    #[test]
    fn postgres_url_keeps_libpq_options_and_hides_password() {
        let pg = parse(
            "postgres://reader:s3cret@db-eu1:6432/sales?sslmode=require&application_name=x&connect_timeout=5",
        );
        assert_eq!(pg.display, "postgres://reader@db-eu1:6432/sales");
        assert_eq!(pg.tls.mode, SslMode::Require);
        assert_eq!(pg.tls.roots, None);
        assert_eq!(pg.config.get_application_name(), Some("x"));
        assert_eq!(
            pg.config.get_connect_timeout(),
            Some(&Duration::from_secs(5))
        );
        assert!(pg.has_connect_timeout);
        assert_eq!(pg.config.get_password(), Some(&b"s3cret"[..]));
        let debug = format!("{pg:?}");
        assert!(!debug.contains("s3cret"), "{debug}");
    }

    #[test]
    fn verify_full_with_root_cert() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("c a.pem");
        std::fs::write(&ca, "").unwrap();
        let encoded = ca
            .display()
            .to_string()
            .replace('/', "%2F")
            .replace(' ', "%20");
        let pg = parse(&format!(
            "postgres://u@h/d?sslmode=verify-full&sslrootcert={encoded}"
        ));
        assert_eq!(pg.tls.mode, SslMode::VerifyFull);
        assert_eq!(pg.tls.roots, Some(RootCerts::File(ca)));
    }

    #[test]
    fn verify_modes_without_a_root_certificate_file_are_refused() {
        for mode in ["verify-ca", "verify-full"] {
            let (err, message) = refused(&format!(
                "postgres://u:s3cret@h/d?sslmode={mode}&sslrootcert=%2Fno%2Fsuch%2Fca.pem"
            ));
            assert!(
                matches!(&err, UrlError::NoRootCert { path } if path == Path::new("/no/such/ca.pem")),
                "{err:?}"
            );
            assert_eq!(
                message,
                "root certificate file \"/no/such/ca.pem\" does not exist; either provide the \
                 file, use the system's trusted roots with sslrootcert=system, or change sslmode \
                 to disable server certificate verification"
            );
        }
        // The modes that do not check the certificate do not need the file (as in libpq).
        let pg = parse("postgres://u@h/d?sslmode=require&sslrootcert=%2Fno%2Fsuch%2Fca.pem");
        assert_eq!((pg.tls.mode, pg.tls.roots), (SslMode::Require, None));
    }

    #[test]
    fn system_roots_need_verify_full() {
        for mode in ["disable", "allow", "prefer", "require", "verify-ca"] {
            let (err, message) = refused(&format!(
                "postgres://u:s3cret@h/d?sslmode={mode}&sslrootcert=system"
            ));
            assert!(
                matches!(&err, UrlError::WeakSslModeForSystemRoots(m) if m == mode),
                "{err:?}"
            );
            assert_eq!(
                message,
                format!(
                    "weak sslmode \"{mode}\" may not be used with sslrootcert=system (use \"verify-full\")"
                )
            );
        }
        // libpq makes verify-full the default with system roots.
        for url in [
            "postgres://u@h/d?sslrootcert=system",
            "postgres://u@h/d?sslrootcert=system&sslmode=verify-full",
        ] {
            let pg = parse(url);
            assert_eq!(pg.tls.mode, SslMode::VerifyFull, "{url}");
            assert_eq!(pg.tls.roots, Some(RootCerts::System), "{url}");
        }
    }

    /// A `%` before a multibyte character once sliced the string inside the character.
    #[test]
    fn percent_before_a_multibyte_character_does_not_panic() {
        for (written, decoded) in [("%1é", "%1é"), ("%€", "%€"), ("%C3%A9%", "é%")] {
            let (err, _) = refused(&format!(
                "postgres://u@h/d?sslmode=verify-ca&sslrootcert=%2Fno%2F{written}"
            ));
            assert!(
                matches!(&err, UrlError::NoRootCert { path } if *path == Path::new("/no").join(decoded)),
                "{written}: {err:?}"
            );
        }
        let (err, message) = refused("postgres://u@h/d?sslmode=verify-ca&sslrootcert=%FF");
        assert!(
            matches!(
                err,
                UrlError::NotUtf8 {
                    key: "sslrootcert",
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(message.starts_with("`sslrootcert` is not UTF-8 once percent-decoded: "));
        // libpq decodes every value; `sslmode` too.
        assert_eq!(
            parse("postgres://u@h/d?sslmode=requir%65").tls.mode,
            SslMode::Require
        );
    }

    #[test]
    fn bad_urls_are_explained() {
        let (err, message) = refused("mysql://x/y");
        assert!(
            matches!(err, UrlError::Unsupported(ref s) if s == "mysql"),
            "{err:?}"
        );
        assert_eq!(message, "`mysql://` shards are not supported yet");
        let (err, _) = refused("http://x");
        assert!(matches!(err, UrlError::Scheme), "{err:?}");
        let (err, message) = refused("postgres://u@h/d?sslmode=bogus");
        assert!(
            matches!(err, UrlError::UnknownSslMode(ref m) if m == "bogus"),
            "{err:?}"
        );
        assert_eq!(message, "unknown sslmode `bogus`");
        let (err, message) = refused("postgres://u:s3cret@h/d?frobnicate=1");
        assert!(matches!(err, UrlError::Postgres(_)), "{err:?}");
        // The chain is real: the cause is tokio-postgres's own error.
        assert!(
            std::error::Error::source(&err).is_some()
                && message.starts_with("invalid PostgreSQL URL: ")
                && message.contains("frobnicate")
                && !message.contains("s3cret"),
            "{message}"
        );
    }

    /// A password with an `@` (one from the environment, unseen) once had its end read as
    /// the host, which messages print.
    #[test]
    fn an_at_sign_in_a_password_is_refused_without_echoing_it() {
        for url in [
            "postgres://reader:p@Zq9-tail@db/sales",
            "postgres://reader:p@Zq9?x=tail@db/sales",
            "postgres://reader:p@Zq9-tail@db/sales?sslmode=require",
        ] {
            let (err, message) = refused(url);
            assert!(matches!(err, UrlError::ManyAts), "{url}: {err:?}");
            assert!(
                !message.contains("Zq9") && !message.contains("tail"),
                "{message}"
            );
        }
        let pg = parse("postgres://reader:p%40ss@db/sales");
        assert_eq!(pg.config.get_password(), Some(&b"p@ss"[..]));
        assert_eq!(pg.display, "postgres://reader@db:5432/sales");
    }

    #[test]
    fn sqlite_paths_are_relative_to_the_file() {
        match parse_url("sqlite://data/a.db", Path::new("/jobs"), None).unwrap() {
            SourceConfig::Sqlite(s) => assert_eq!(s.path, Path::new("/jobs/data/a.db")),
            other => panic!("{other:?}"),
        }
        match parse_url("sqlite:///abs/a.db", Path::new("/jobs"), None).unwrap() {
            SourceConfig::Sqlite(s) => assert_eq!(s.path, Path::new("/abs/a.db")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn table_entries_and_unknown_options() {
        let value: toml::Value = toml::from_str(
            r#"
            a = "sqlite://a.db"
            b = { url = "postgres://u@h/d", pool_size = 4 }
            "#,
        )
        .unwrap();
        let shards = parse_table(&value, Path::new("/x")).unwrap();
        assert_eq!(shards.len(), 2);
        assert_eq!(shards[1].pool_size, Some(4));

        let value: toml::Value =
            toml::from_str(r#"b = { url = "postgres://u@h/d", pol_size = 4 }"#).unwrap();
        let err = parse_table(&value, Path::new("/x")).unwrap_err();
        assert!(
            matches!(&err, ShardsError::Shard { name, source: UrlError::UnknownOption(o) } if name == "b" && o == "pol_size"),
            "{err:?}"
        );
        assert_eq!(
            error::chain(&err),
            "shard `b`: unknown option `pol_size` (expected url, pool_size, password_env)"
        );

        let value: toml::Value = toml::from_str(r#"b = { url = 5 }"#).unwrap();
        assert_eq!(
            error::chain(&parse_table(&value, Path::new("/x")).unwrap_err()),
            "shard `b`: `url` must be a string"
        );

        let value: toml::Value = toml::from_str(r#""bad name" = "sqlite://a.db""#).unwrap();
        assert!(matches!(
            parse_table(&value, Path::new("/x")).unwrap_err(),
            ShardsError::BadName(n) if n == "bad name"
        ));
    }

    #[test]
    fn password_env_must_exist() {
        let err = parse_url(
            "postgres://u@h/d",
            Path::new("."),
            Some("TRIBUTARY_TEST_UNSET_VAR"),
        )
        .unwrap_err();
        assert!(
            matches!(&err, UrlError::PasswordEnvUnset { var, .. } if var == "TRIBUTARY_TEST_UNSET_VAR"),
            "{err:?}"
        );
        assert!(
            error::chain(&err)
                .starts_with("`password_env` names `TRIBUTARY_TEST_UNSET_VAR`, which is not set: "),
            "{err}"
        );
    }
}
