//! The shards file: a `[shards]` table mapping a shard's name to a URL, or to a table with
//! `url` and per-shard options. Parsing resolves everything a connection needs (defaults
//! from the libpq environment variables, the password from the file, an environment
//! variable, `PGPASSWORD` or `~/.pgpass`) and keeps the password out of every `Debug` and
//! `Display` form.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use crate::error::{Error, Result};

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
/// the certificate; `verify-ca` checks it against the root certificate; `verify-full` also
/// checks the host name. `require` and above never fall back to plaintext.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

#[derive(Debug, Clone)]
pub struct TlsSettings {
    pub mode: SslMode,
    /// `sslrootcert`: PEM file of trusted roots for `verify-ca`/`verify-full`.
    pub root_cert: Option<PathBuf>,
}

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
    let table: toml::Table = toml::from_str(&text)
        .map_err(|e| Error::config(Some(path.to_owned()), format!("invalid TOML: {e}")))?;
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
    parse_table(shards, base).map_err(|message| Error::config(Some(path.to_owned()), message))
}

/// Parses a `[shards]` table (from a shards file or a job file).
pub fn parse_table(
    value: &toml::Value,
    base: &Path,
) -> std::result::Result<Vec<ShardConfig>, String> {
    let table = value
        .as_table()
        .ok_or("`shards` must be a table of name = URL".to_string())?;
    if table.is_empty() {
        return Err("`[shards]` names no shard".into());
    }
    let mut shards = Vec::with_capacity(table.len());
    for (name, entry) in table {
        validate_name(name)?;
        shards.push(parse_entry(name, entry, base).map_err(|m| format!("shard `{name}`: {m}"))?);
    }
    Ok(shards)
}

fn validate_name(name: &str) -> std::result::Result<(), String> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "shard name `{name}` may only hold letters, digits, `_`, `-` and `.`"
        ))
    }
}

fn parse_entry(
    name: &str,
    entry: &toml::Value,
    base: &Path,
) -> std::result::Result<ShardConfig, String> {
    let (url, pool_size, password_env) = match entry {
        toml::Value::String(url) => (url.as_str(), None, None),
        toml::Value::Table(t) => {
            let mut url = None;
            let mut pool_size = None;
            let mut password_env = None;
            for (key, value) in t {
                match key.as_str() {
                    "url" => url = Some(value.as_str().ok_or("`url` must be a string")?),
                    "pool_size" => {
                        let n = value
                            .as_integer()
                            .filter(|n| *n >= 1 && *n <= 1024)
                            .ok_or("`pool_size` must be a whole number from 1 to 1024")?;
                        pool_size = Some(n as usize);
                    }
                    "password_env" => {
                        password_env =
                            Some(value.as_str().ok_or("`password_env` must be a string")?)
                    }
                    other => {
                        return Err(format!(
                            "unknown option `{other}` (expected url, pool_size, password_env)"
                        ));
                    }
                }
            }
            (url.ok_or("missing `url`")?, pool_size, password_env)
        }
        _ => return Err("expected a URL string or a table with `url`".into()),
    };
    let source = parse_url(url, base, password_env)?;
    Ok(ShardConfig {
        name: name.to_string(),
        source,
        pool_size,
    })
}

/// Parses a shard URL. `password_env` names an environment variable holding the password.
pub fn parse_url(
    url: &str,
    base: &Path,
    password_env: Option<&str>,
) -> std::result::Result<SourceConfig, String> {
    let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    match scheme.as_deref() {
        Some("postgres" | "postgresql") => {
            parse_postgres(url, password_env).map(|pg| SourceConfig::Postgres(Box::new(pg)))
        }
        Some("sqlite") => {
            if password_env.is_some() {
                return Err("`password_env` does not apply to SQLite".into());
            }
            let rest = &url["sqlite://".len()..];
            let path = rest.split_once('?').map_or(rest, |(p, _)| p);
            if path.is_empty() {
                return Err("a SQLite URL needs a path: sqlite://data/a.db".into());
            }
            let path = Path::new(path);
            let path = if path.is_absolute() {
                path.to_owned()
            } else {
                base.join(path)
            };
            Ok(SourceConfig::Sqlite(SqliteSource { path }))
        }
        Some(s @ ("mysql" | "mariadb")) => Err(format!("`{s}://` shards are not supported yet")),
        _ => Err("the URL must start with postgres://, postgresql:// or sqlite://".into()),
    }
}

fn parse_postgres(url: &str, password_env: Option<&str>) -> std::result::Result<PgSource, String> {
    // libpq options tokio-postgres does not parse are taken out here and applied by us.
    let (head, query) = url.split_once('?').unwrap_or((url, ""));
    let mut kept = Vec::new();
    let mut tls = TlsSettings {
        mode: SslMode::Prefer,
        root_cert: None,
    };
    let mut has_connect_timeout = false;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "sslmode" => {
                tls.mode = match value {
                    "disable" => SslMode::Disable,
                    "allow" | "prefer" => SslMode::Prefer,
                    "require" => SslMode::Require,
                    "verify-ca" => SslMode::VerifyCa,
                    "verify-full" => SslMode::VerifyFull,
                    other => return Err(format!("unknown sslmode `{other}`")),
                }
            }
            "sslrootcert" => tls.root_cert = Some(PathBuf::from(percent_decode(value))),
            "sslcert" | "sslkey" | "sslpassword" => {
                return Err(format!(
                    "`{key}` (client certificates) is not supported yet"
                ));
            }
            _ => {
                if key == "connect_timeout" {
                    has_connect_timeout = true;
                }
                kept.push(pair)
            }
        }
    }
    let rebuilt = if kept.is_empty() {
        head.to_string()
    } else {
        format!("{head}?{}", kept.join("&"))
    };
    let mut config = tokio_postgres::Config::from_str(&rebuilt)
        .map_err(|e| format!("invalid PostgreSQL URL: {e}"))?;
    fill_defaults(&mut config);
    if config.get_password().is_none() {
        if let Some(var) = password_env {
            let pw = std::env::var(var)
                .map_err(|_| format!("`password_env` names `{var}`, which is not set"))?;
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

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
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

    #[test]
    fn postgres_url_keeps_libpq_options_and_hides_password() {
        let pg = parse(
            "postgres://reader:s3cret@db-eu1:6432/sales?sslmode=require&application_name=x&connect_timeout=5",
        );
        assert_eq!(pg.display, "postgres://reader@db-eu1:6432/sales");
        assert_eq!(pg.tls.mode, SslMode::Require);
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
        let pg = parse("postgres://u@h/d?sslmode=verify-full&sslrootcert=%2Ftmp%2Fca.pem");
        assert_eq!(pg.tls.mode, SslMode::VerifyFull);
        assert_eq!(pg.tls.root_cert.as_deref(), Some(Path::new("/tmp/ca.pem")));
    }

    #[test]
    fn bad_urls_are_explained() {
        let err = parse_url("mysql://x/y", Path::new("."), None).unwrap_err();
        assert!(err.contains("not supported"), "{err}");
        let err = parse_url("http://x", Path::new("."), None).unwrap_err();
        assert!(err.contains("postgres://"), "{err}");
        let err = parse_url("postgres://u@h/d?sslmode=bogus", Path::new("."), None).unwrap_err();
        assert!(err.contains("sslmode"), "{err}");
        let err = parse_url("postgres://u@h/d?frobnicate=1", Path::new("."), None).unwrap_err();
        assert!(err.contains("invalid PostgreSQL URL"), "{err}");
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
            err.contains("shard `b`") && err.contains("pol_size"),
            "{err}"
        );

        let value: toml::Value = toml::from_str(r#""bad name" = "sqlite://a.db""#).unwrap();
        assert!(
            parse_table(&value, Path::new("/x"))
                .unwrap_err()
                .contains("bad name")
        );
    }

    #[test]
    fn password_env_must_exist() {
        let err = parse_url(
            "postgres://u@h/d",
            Path::new("."),
            Some("TRIBUTARY_TEST_UNSET_VAR"),
        )
        .unwrap_err();
        assert!(err.contains("TRIBUTARY_TEST_UNSET_VAR"), "{err}");
    }
}
