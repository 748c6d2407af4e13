//! The shards file: a `[shards]` table mapping a shard's name to a URL (or, for
//! PostgreSQL, a libpq key=value connection string), or to a table with `url` and
//! per-shard options. Parsing resolves everything a connection needs as libpq would (a
//! `service` from `pg_service.conf`, defaults from the PG* environment variables, the
//! password from the string, an environment variable, the service, `PGPASSWORD` or
//! `~/.pgpass`) and keeps the password out of every `Debug` and
//! `Display` form. Its errors name the shard and never the password. String values may
//! name environment variables ([`super::interpolate`]), replaced before a URL is parsed,
//! so that a password from one is kept out of sight like any other.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use crate::error::{self, Error, Result};

use super::conninfo;
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
    /// MySQL or MariaDB.
    Mysql(Box<super::mysql::MysqlSource>),
}

impl SourceConfig {
    /// The shard's address without credentials, for messages.
    pub fn display(&self) -> String {
        match self {
            SourceConfig::Postgres(pg) => pg.display.clone(),
            SourceConfig::Sqlite(s) => format!("sqlite://{}", s.path.display()),
            SourceConfig::Mysql(m) => m.display(),
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
    /// Whether `connect_timeout` was set (by the shard's string, its service or
    /// `PGCONNECT_TIMEOUT`); if not, the run's `--connect-timeout` applies.
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
    #[error(
        "the URL must start with postgres://, postgresql://, mysql://, mariadb:// or sqlite://, \
         or be a key=value connection string"
    )]
    Scheme,
    #[error("`{0}://` shards are not supported yet")]
    Unsupported(String),
    #[error("charset `{0}` is not supported: MySQL shards are always read as utf8mb4")]
    MysqlCharset(String),
    #[error("ssl-mode={0} checks the server's certificate: give the authority's as ssl-ca=PATH")]
    MysqlNoCa(&'static str),
    #[error("a bracketed IPv6 host must be closed, then followed by nothing or `:port`")]
    MysqlHost,
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
    #[error("the PostgreSQL driver refused the settings")]
    Postgres(#[source] tokio_postgres::Error),
    /// libpq's words for a keyword it does not know.
    #[error("invalid connection option \"{0}\"")]
    InvalidOption(String),
    #[error("connection option \"{0}\" is not supported")]
    UnsupportedOption(String),
    #[error(
        "target_session_attrs \"{0}\" is not supported (supported: any, read-write, read-only)"
    )]
    TargetSessionAttrs(String),
    #[error(transparent)]
    Conninfo(#[from] conninfo::ConninfoError),
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
    if conninfo::looks_like_conninfo(url) {
        return parse_postgres(url, password_env).map(|pg| SourceConfig::Postgres(Box::new(pg)));
    }
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
        Some("mysql" | "mariadb") => {
            super::mysql::parse(url, password_env).map(|m| SourceConfig::Mysql(Box::new(m)))
        }
        _ => Err(UrlError::Scheme),
    }
}

fn parse_postgres(
    url: &str,
    password_env: Option<&str>,
) -> std::result::Result<PgSource, UrlError> {
    parse_postgres_with(url, password_env, &|var| std::env::var(var).ok())
}

/// [`parse_postgres`], with the environment read through `env`. Both forms of string, a
/// URL and a key=value connection string, become one map of libpq keywords; the service's
/// settings and then the environment's fill what it leaves out, as libpq's precedence has
/// it; the options tributary applies itself (TLS, the password, the service) are taken
/// out, and the rest is handed to tokio-postgres as a key=value string, so that every
/// shard, whatever its form, reaches the driver through one path.
fn parse_postgres_with(
    url: &str,
    password_env: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> std::result::Result<PgSource, UrlError> {
    let (mut params, mut password) = if conninfo::looks_like_conninfo(url) {
        (conninfo::parse(url)?, None)
    } else {
        url_params(url)?
    };
    // libpq takes an empty value as not set.
    params.retain(|_, v| !v.is_empty());
    for key in params.keys() {
        check_keyword(key)?;
    }
    if let Some(pw) = params.remove("password") {
        password = Some(pw.into_bytes());
    }
    if password.is_none()
        && let Some(var) = password_env
    {
        let pw = std::env::var(var).map_err(|source| UrlError::PasswordEnvUnset {
            var: var.to_string(),
            source,
        })?;
        password = Some(pw.into_bytes());
    }
    let service = params
        .remove("service")
        .or_else(|| env("PGSERVICE").filter(|s| !s.is_empty()));
    if let Some(service) = service {
        let files = conninfo::service_files(env);
        for (key, value) in conninfo::service(&service, &files)? {
            check_keyword(&key)?;
            if value.is_empty() {
                continue;
            }
            if key == "password" {
                password.get_or_insert(value.into_bytes());
            } else {
                params.entry(key).or_insert(value);
            }
        }
    }
    fill_defaults(&mut params, env);
    let mode = params
        .remove("sslmode")
        .map(|written| {
            let mode = match written.as_str() {
                "disable" => SslMode::Disable,
                "allow" | "prefer" => SslMode::Prefer,
                "require" => SslMode::Require,
                "verify-ca" => SslMode::VerifyCa,
                "verify-full" => SslMode::VerifyFull,
                _ => return Err(UrlError::UnknownSslMode(written)),
            };
            Ok((written, mode))
        })
        .transpose()?;
    let tls = tls_settings(mode, params.remove("sslrootcert"))?;
    if let Some(attrs) = params.get("target_session_attrs")
        && matches!(attrs.as_str(), "primary" | "standby" | "prefer-standby")
    {
        return Err(UrlError::TargetSessionAttrs(attrs.clone()));
    }
    let passfile = params.remove("passfile");
    let has_connect_timeout = params.contains_key("connect_timeout");
    let text = params
        .iter()
        .map(|(key, value)| {
            // libpq's name; tokio-postgres's is keepalives_retries.
            let key = if key == "keepalives_count" {
                "keepalives_retries"
            } else {
                key
            };
            format!("{key}={}", conninfo::quote(value))
        })
        .collect::<Vec<_>>()
        .join(" ");
    let mut config = tokio_postgres::Config::from_str(&text).map_err(UrlError::Postgres)?;
    // Dead peers are noticed within about a minute rather than libpq's two hours.
    if !params.contains_key("keepalives_idle") {
        config.keepalives_idle(Duration::from_secs(30));
    }
    if let Some(pw) = password
        .or_else(|| env("PGPASSWORD").map(String::into_bytes))
        .or_else(|| pgpass_password(&config, passfile, env).map(String::into_bytes))
    {
        config.password(pw);
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

/// A URL's settings as libpq keywords, percent-decoded, and its password, which may not
/// be UTF-8. tokio-postgres reads the part before the query (user, password, hosts and
/// ports, database); the query's options override it, as in libpq.
fn url_params(url: &str) -> std::result::Result<(conninfo::Params, Option<Vec<u8>>), UrlError> {
    // tokio-postgres ends the user name and password at the first `@`, as libpq does: after
    // a second one, in a password from an environment variable say, the rest of the
    // password would be read as the host, and printed in messages.
    if url.matches('@').count() > 1 {
        return Err(UrlError::ManyAts);
    }
    let (head, query) = url.split_once('?').unwrap_or((url, ""));
    let config = tokio_postgres::Config::from_str(head).map_err(UrlError::Postgres)?;
    let mut params = conninfo::Params::new();
    if let Some(user) = config.get_user() {
        params.insert("user".into(), user.to_string());
    }
    if let Some(db) = config.get_dbname() {
        params.insert("dbname".into(), db.to_string());
    }
    let hosts: Vec<String> = config.get_hosts().iter().map(host_name).collect();
    if !hosts.is_empty() {
        params.insert("host".into(), hosts.join(","));
    }
    // tokio-postgres gives a host written without a port 5432; libpq leaves it to
    // PGPORT, so the ports are kept only when the URL writes one.
    let authority = head.split_once("://").map_or("", |(_, rest)| rest);
    let authority = authority.split('/').next().unwrap_or_default();
    let authority = authority
        .rsplit_once('@')
        .map_or(authority, |(_, hosts)| hosts);
    let writes_a_port = authority
        .split(',')
        .any(|chunk| match chunk.strip_prefix('[') {
            Some(bracketed) => bracketed.contains("]:"),
            None => chunk.contains(':'),
        });
    if writes_a_port {
        let ports: Vec<String> = config.get_ports().iter().map(u16::to_string).collect();
        params.insert("port".into(), ports.join(","));
    }
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = percent_decode("option", key)?;
        let value = percent_decode(static_key(&key), value)?;
        params.insert(key, value);
    }
    Ok((params, config.get_password().map(<[u8]>::to_vec)))
}

/// The keyword as a `'static` name for [`UrlError::NotUtf8`]: the two that the tests and
/// messages name, else "option".
fn static_key(key: &str) -> &'static str {
    match key {
        "sslrootcert" => "sslrootcert",
        "sslmode" => "sslmode",
        "password" => "password",
        _ => "option",
    }
}

/// Whether tributary honours libpq keyword `key`: an error for the client certificate
/// options, for libpq's other options that it does not support, and (with libpq's
/// words) for anything that is not a libpq keyword.
fn check_keyword(key: &str) -> std::result::Result<(), UrlError> {
    match key {
        "host"
        | "hostaddr"
        | "port"
        | "dbname"
        | "user"
        | "password"
        | "passfile"
        | "connect_timeout"
        | "options"
        | "application_name"
        | "fallback_application_name"
        | "keepalives"
        | "keepalives_idle"
        | "keepalives_interval"
        | "keepalives_count"
        | "tcp_user_timeout"
        | "sslmode"
        | "sslnegotiation"
        | "sslrootcert"
        | "channel_binding"
        | "target_session_attrs"
        | "load_balance_hosts"
        | "service" => Ok(()),
        // tokio-postgres's name for keepalives_count, which URLs have always accepted.
        "keepalives_retries" => Ok(()),
        "sslcert" | "sslkey" | "sslpassword" => Err(UrlError::ClientCertificates(key.into())),
        _ if conninfo::is_keyword(key) => Err(UrlError::UnsupportedOption(key.into())),
        _ => Err(UrlError::InvalidOption(key.into())),
    }
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

/// The environment variables libpq reads for keywords a shard's string and its service
/// leave out.
const ENV_DEFAULTS: &[(&str, &str)] = &[
    ("host", "PGHOST"),
    ("hostaddr", "PGHOSTADDR"),
    ("port", "PGPORT"),
    ("user", "PGUSER"),
    ("dbname", "PGDATABASE"),
    ("options", "PGOPTIONS"),
    ("application_name", "PGAPPNAME"),
    ("sslmode", "PGSSLMODE"),
    ("sslrootcert", "PGSSLROOTCERT"),
    ("connect_timeout", "PGCONNECT_TIMEOUT"),
    ("target_session_attrs", "PGTARGETSESSIONATTRS"),
];

/// libpq's defaults for what the shard's string and its service leave out: the PG*
/// variables of [`ENV_DEFAULTS`], then the local socket and the operating-system user.
fn fill_defaults(params: &mut conninfo::Params, env: &dyn Fn(&str) -> Option<String>) {
    for (key, var) in ENV_DEFAULTS {
        if !params.contains_key(*key)
            && let Some(value) = env(var).filter(|v| !v.is_empty())
        {
            params.insert(key.to_string(), value);
        }
    }
    if !params.contains_key("host") && !params.contains_key("hostaddr") {
        let host = if Path::new("/var/run/postgresql").is_dir() {
            "/var/run/postgresql"
        } else {
            "localhost"
        };
        params.insert("host".into(), host.into());
    }
    if !params.contains_key("user") {
        let user = env("USER").unwrap_or_else(|| "postgres".into());
        params.insert("user".into(), user);
    }
    let fallback = params.remove("fallback_application_name");
    if !params.contains_key("application_name") {
        let name = fallback.unwrap_or_else(|| "tributary".into());
        params.insert("application_name".into(), name);
    }
}

fn host_name(host: &tokio_postgres::config::Host) -> String {
    match host {
        tokio_postgres::config::Host::Tcp(h) => h.clone(),
        #[cfg(unix)]
        tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
    }
}

/// The first host: the one `~/.pgpass` is looked up for.
fn host_string(config: &tokio_postgres::Config) -> String {
    match config.get_hosts().first() {
        Some(host) => host_name(host),
        None => match config.get_hostaddrs().first() {
            Some(addr) => addr.to_string(),
            None => "localhost".into(),
        },
    }
}

fn port(config: &tokio_postgres::Config) -> u16 {
    config.get_ports().first().copied().unwrap_or(5432)
}

/// The password file's entry for the first host: `passfile`, else `PGPASSFILE`, else
/// `~/.pgpass`.
fn pgpass_password(
    config: &tokio_postgres::Config,
    passfile: Option<String>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<String> {
    let path = passfile
        .or_else(|| env("PGPASSFILE"))
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|h| Path::new(&h).join(".pgpass")))?;
    let text = pgpass::read(&path)?;
    let user = config.get_user().unwrap_or_default();
    let db = config.get_dbname().unwrap_or(user);
    pgpass::lookup(&text, &host_string(config), port(config), db, user)
}

/// `postgres://user@host:port/db`: what messages show of a PostgreSQL shard. Several
/// hosts are joined as in a libpq URL: `postgres://user@h1:5432,h2:5433/db`.
fn display(config: &tokio_postgres::Config) -> String {
    let user = config.get_user().unwrap_or_default();
    let db = config.get_dbname().unwrap_or(user);
    let mut hosts: Vec<String> = config.get_hosts().iter().map(host_name).collect();
    if hosts.is_empty() {
        hosts = config
            .get_hostaddrs()
            .iter()
            .map(|a| a.to_string())
            .collect();
    }
    if hosts.is_empty() {
        hosts.push("localhost".into());
    }
    let ports = config.get_ports();
    let hosts: Vec<String> = hosts
        .iter()
        .enumerate()
        .map(|(i, host)| {
            // As tokio-postgres connects: one port for all hosts, or one each.
            let port = ports
                .get(i)
                .or(ports.first().filter(|_| ports.len() == 1))
                .copied()
                .unwrap_or(5432);
            if host.contains(':') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            }
        })
        .collect();
    format!("postgres://{user}@{}/{db}", hosts.join(","))
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
        let (err, _) = refused("mysql://x/y?ssl-mode=bogus");
        assert!(matches!(err, UrlError::UnknownSslMode(_)), "{err:?}");
        let (err, _) = refused("http://x");
        assert!(matches!(err, UrlError::Scheme), "{err:?}");
        let (err, message) = refused("postgres://u@h/d?sslmode=bogus");
        assert!(
            matches!(err, UrlError::UnknownSslMode(ref m) if m == "bogus"),
            "{err:?}"
        );
        assert_eq!(message, "unknown sslmode `bogus`");
        let (err, message) = refused("postgres://u:s3cret@h/d?frobnicate=1");
        assert!(
            matches!(err, UrlError::InvalidOption(ref k) if k == "frobnicate"),
            "{err:?}"
        );
        assert_eq!(message, "invalid connection option \"frobnicate\"");
        let (err, message) = refused("postgres://u:s3cret@h/d?port=x");
        assert!(matches!(err, UrlError::Postgres(_)), "{err:?}");
        // The chain is real: the cause is tokio-postgres's own error.
        assert!(
            std::error::Error::source(&err).is_some()
                && message.starts_with(
                    "the PostgreSQL driver refused the settings: invalid connection string: "
                )
                && message.contains("port")
                && !message.contains("s3cret"),
            "{message}"
        );
    }

    /// `parse_postgres_with` in an environment of `vars` only.
    fn parse_in(s: &str, vars: &[(&str, &str)]) -> std::result::Result<PgSource, UrlError> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        parse_postgres_with(s, None, &move |k| {
            vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
        })
    }

    fn hosts(pg: &PgSource) -> Vec<String> {
        pg.config.get_hosts().iter().map(host_name).collect()
    }

    #[test]
    fn conninfo_strings_take_the_same_options_as_urls() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "").unwrap();
        let pg = parse_in(
            &format!(
                "host=db1 port = 6432 dbname=sales user=reader password='s3 cr\\'et' \
                 sslmode=verify-full sslrootcert='{}' connect_timeout=5 application_name=x \
                 options='-c search_path=a' target_session_attrs=read-write keepalives_count=3",
                ca.display()
            ),
            &[],
        )
        .unwrap();
        assert_eq!(pg.display, "postgres://reader@db1:6432/sales");
        assert_eq!(pg.tls.mode, SslMode::VerifyFull);
        assert_eq!(pg.tls.roots, Some(RootCerts::File(ca)));
        assert_eq!(pg.config.get_password(), Some(&b"s3 cr'et"[..]));
        assert_eq!(pg.config.get_application_name(), Some("x"));
        assert_eq!(pg.config.get_options(), Some("-c search_path=a"));
        assert_eq!(pg.config.get_keepalives_retries(), Some(3));
        assert_eq!(
            pg.config.get_target_session_attrs(),
            tokio_postgres::config::TargetSessionAttrs::ReadWrite
        );
        assert!(pg.has_connect_timeout);
        assert!(!format!("{pg:?}").contains("s3 cr"));
    }

    #[test]
    fn several_hosts_are_shown_as_a_libpq_url() {
        let pg = parse_in("host=a,b port=5432,5433 user=u dbname=d", &[]).unwrap();
        assert_eq!(hosts(&pg), ["a", "b"]);
        assert_eq!(pg.display, "postgres://u@a:5432,b:5433/d");
        let pg = parse_in("host=a,::1 port=6000 user=u dbname=d", &[]).unwrap();
        assert_eq!(pg.display, "postgres://u@a:6000,[::1]:6000/d");
        let pg = parse_in("postgres://u:pw@h1:5432,h2:5433/d", &[]).unwrap();
        assert_eq!(pg.display, "postgres://u@h1:5432,h2:5433/d");
        assert_eq!(pg.config.get_ports(), [5432, 5433]);
        for attrs in ["primary", "standby", "prefer-standby"] {
            let err = parse_in(&format!("host=a,b target_session_attrs={attrs}"), &[]).unwrap_err();
            assert_eq!(
                error::chain(&err),
                format!(
                    "target_session_attrs \"{attrs}\" is not supported (supported: any, \
                     read-write, read-only)"
                )
            );
        }
    }

    #[test]
    fn explicit_settings_beat_the_service_which_beats_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("services.conf");
        std::fs::write(
            &file,
            "[sales]\nhost=svc-host\nport=6000\ndbname=sales\nuser=svc\npassword=svc-pw\n\
             application_name=from-service\n",
        )
        .unwrap();
        let file = file.to_str().unwrap();
        let env = [
            ("PGSERVICEFILE", file),
            ("PGUSER", "env-user"),
            ("PGAPPNAME", "from-env"),
            ("PGOPTIONS", "-c work_mem=64MB"),
            ("PGSSLMODE", "require"),
            ("PGCONNECT_TIMEOUT", "7"),
            ("PGTARGETSESSIONATTRS", "read-only"),
            ("PGPASSWORD", "env-pw"),
        ];
        let pg = parse_in("service=sales", &env).unwrap();
        assert_eq!(pg.display, "postgres://svc@svc-host:6000/sales");
        assert_eq!(pg.config.get_password(), Some(&b"svc-pw"[..]));
        assert_eq!(pg.config.get_application_name(), Some("from-service"));
        assert_eq!(pg.config.get_options(), Some("-c work_mem=64MB"));
        assert_eq!(pg.tls.mode, SslMode::Require);
        assert_eq!(
            pg.config.get_connect_timeout(),
            Some(&Duration::from_secs(7))
        );
        assert!(pg.has_connect_timeout);
        assert_eq!(
            pg.config.get_target_session_attrs(),
            tokio_postgres::config::TargetSessionAttrs::ReadOnly
        );
        let pg = parse_in(
            "postgres://me:mine@other/db?service=sales&application_name=mine&sslmode=disable",
            &env,
        )
        .unwrap();
        assert_eq!(pg.display, "postgres://me@other:6000/db");
        assert_eq!(pg.config.get_password(), Some(&b"mine"[..]));
        assert_eq!(pg.config.get_application_name(), Some("mine"));
        assert_eq!(pg.tls.mode, SslMode::Disable);
        // PGSERVICE names the service when the string does not.
        let mut with_service = env.to_vec();
        with_service.push(("PGSERVICE", "sales"));
        let pg = parse_in("dbname=other", &with_service).unwrap();
        assert_eq!(pg.display, "postgres://svc@svc-host:6000/other");
        // Without a service, the environment; then the built-in defaults.
        let pg = parse_in("host=h", &env).unwrap();
        assert_eq!(pg.display, "postgres://env-user@h:5432/env-user");
        assert_eq!(pg.config.get_password(), Some(&b"env-pw"[..]));
        let pg = parse_in("host=h", &[("USER", "me")]).unwrap();
        assert_eq!(pg.config.get_application_name(), Some("tributary"));
        assert_eq!(pg.tls.mode, SslMode::Prefer);
        assert!(!pg.has_connect_timeout);
        assert_eq!(pg.display, "postgres://me@h:5432/me");
        // PGPORT applies to a URL that writes no port.
        let pg = parse_in("postgres://u@h/d", &[("PGPORT", "6543")]).unwrap();
        assert_eq!(pg.display, "postgres://u@h:6543/d");
    }

    #[test]
    fn invalid_connection_strings_are_explained_without_the_password() {
        for (s, expected) in [
            (
                "host=a frobnicate=1 password=s3cret",
                "invalid connection option \"frobnicate\"",
            ),
            (
                "host=a password='s3cret",
                "unterminated quoted string in the connection string",
            ),
            (
                "host=a password=s3cret sslmode=bogus",
                "unknown sslmode `bogus`",
            ),
            (
                "password=s3cret service=nowhere",
                "definition of service \"nowhere\" not found",
            ),
            (
                "password=s3cret sslcert=c.pem",
                "`sslcert` (client certificates) is not supported yet",
            ),
            (
                "password=s3cret krbsrvname=x",
                "connection option \"krbsrvname\" is not supported",
            ),
            (
                "password=s3 cret host=a",
                "invalid connection option after `password` (not shown, as it may be the end of the \
                 password: a password holding spaces is written in single quotes, password='a b')",
            ),
            (
                "password=s3cret port=x",
                "the PostgreSQL driver refused the settings: invalid connection string: invalid value for option `port`",
            ),
        ] {
            let err = parse_in(
                s,
                &[
                    ("PGSERVICEFILE", "/nonexistent"),
                    ("PGSYSCONFDIR", "/nonexistent"),
                ],
            )
            .unwrap_err();
            let message = error::chain(&err);
            assert_eq!(message, expected, "{s}");
            assert!(
                !message.contains("s3cret") && !message.contains("cret"),
                "{message}"
            );
        }
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
