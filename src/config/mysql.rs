//! MySQL and MariaDB shard URLs, with the MySQL client's conventions:
//! `mysql://user:password@host:port/database?socket=/path&ssl-mode=VERIFY_CA&ssl-ca=ca.pem`
//! (`mariadb://` alike). The password comes from the URL, else the shard's
//! `password_env`, else `MYSQL_PWD`, else the `[client]` section of `~/.my.cnf`, which
//! also gives the user, host, port, socket and TLS settings the URL leaves out. The
//! character set is always utf8mb4, whatever the option file says: the decoder reads
//! text as UTF-8. The password lives only inside [`Secret`], whose `Debug` redacts it;
//! no error holds the URL.

use std::fmt;
use std::path::{Path, PathBuf};

use super::shards::UrlError;

/// How to reach one MySQL or MariaDB server.
#[derive(Clone)]
pub struct MysqlSource {
    /// `mysql` or `mariadb`, as the URL wrote it (for messages only: both speak the
    /// same protocol, and the server says which it is).
    pub scheme: &'static str,
    pub user: String,
    pub password: Option<Secret>,
    pub host: String,
    pub port: u16,
    /// A Unix socket to connect through instead of TCP.
    pub socket: Option<PathBuf>,
    pub database: Option<String>,
    pub ssl_mode: MysqlSslMode,
    /// The certificate authorities that vouch for the server (`ssl-ca`).
    pub ssl_ca: Option<PathBuf>,
}

impl fmt::Debug for MysqlSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MysqlSource")
            .field("url", &self.display())
            .field("ssl_mode", &self.ssl_mode)
            .finish_non_exhaustive()
    }
}

impl MysqlSource {
    /// `mysql://user@host:port/db` (or `?socket=`), never with the password.
    pub fn display(&self) -> String {
        let db = self.database.as_deref().unwrap_or("");
        match &self.socket {
            Some(socket) => format!(
                "{}://{}@localhost/{db}?socket={}",
                self.scheme,
                self.user,
                socket.display()
            ),
            None if self.host.contains(':') => {
                format!(
                    "{}://{}@[{}]:{}/{db}",
                    self.scheme, self.user, self.host, self.port
                )
            }
            None => format!(
                "{}://{}@{}:{}/{db}",
                self.scheme, self.user, self.host, self.port
            ),
        }
    }
}

/// A password: printed as `***` by `Debug` and never by `Display`.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// The MySQL client's `--ssl-mode`: `PREFERRED` (the default) encrypts when the server
/// can, without checking its certificate; `REQUIRED` never falls back to plaintext;
/// `VERIFY_CA` checks the certificate against `ssl-ca`; `VERIFY_IDENTITY` also checks
/// the host name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MysqlSslMode {
    Disabled,
    Preferred,
    Required,
    VerifyCa,
    VerifyIdentity,
}

impl MysqlSslMode {
    fn parse(text: &str) -> Result<MysqlSslMode, UrlError> {
        Ok(match text.to_ascii_uppercase().replace('-', "_").as_str() {
            "DISABLED" => MysqlSslMode::Disabled,
            "PREFERRED" => MysqlSslMode::Preferred,
            "REQUIRED" => MysqlSslMode::Required,
            "VERIFY_CA" => MysqlSslMode::VerifyCa,
            "VERIFY_IDENTITY" => MysqlSslMode::VerifyIdentity,
            _ => return Err(UrlError::UnknownSslMode(text.to_string())),
        })
    }

    /// The mode as `ssl-mode=` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            MysqlSslMode::Disabled => "DISABLED",
            MysqlSslMode::Preferred => "PREFERRED",
            MysqlSslMode::Required => "REQUIRED",
            MysqlSslMode::VerifyCa => "VERIFY_CA",
            MysqlSslMode::VerifyIdentity => "VERIFY_IDENTITY",
        }
    }

    pub fn verifies(self) -> bool {
        matches!(self, MysqlSslMode::VerifyCa | MysqlSslMode::VerifyIdentity)
    }
}

/// Parses a `mysql://` or `mariadb://` URL; `password_env` names an environment
/// variable holding the password.
pub fn parse(url: &str, password_env: Option<&str>) -> Result<MysqlSource, UrlError> {
    parse_with(url, password_env, &|var| std::env::var(var).ok())
}

/// [`parse`], with the environment read through `env`.
pub(super) fn parse_with(
    url: &str,
    password_env: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<MysqlSource, UrlError> {
    let (scheme, rest) = url.split_once("://").ok_or(UrlError::Scheme)?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "mysql" => "mysql",
        "mariadb" => "mariadb",
        _ => return Err(UrlError::Scheme),
    };
    // An `@` in the password would end it early and put the rest in the host, which
    // messages print.
    if rest.matches('@').count() > 1 {
        return Err(UrlError::ManyAts);
    }
    let (head, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (authority, path) = head.split_once('/').unwrap_or((head, ""));
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let (user, password) = match userinfo {
        None => (None, None),
        Some(u) => match u.split_once(':') {
            Some((user, pw)) => (Some(decode("user", user)?), Some(decode("password", pw)?)),
            None => (Some(decode("user", u)?), None),
        },
    };
    let (host, port) = split_host_port(hostport)?;
    let database = Some(decode("database", path)?).filter(|d| !d.is_empty());

    let mut socket = None;
    let mut ssl_mode = None;
    let mut ssl_ca = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = decode("option", value)?;
        match key.replace('_', "-").as_str() {
            "socket" => socket = Some(PathBuf::from(value)),
            "ssl-mode" | "sslmode" => ssl_mode = Some(MysqlSslMode::parse(&value)?),
            "ssl-ca" => ssl_ca = Some(PathBuf::from(value)),
            "charset" => {
                if !value.eq_ignore_ascii_case("utf8mb4") {
                    return Err(UrlError::MysqlCharset(value));
                }
            }
            "ssl-cert" | "ssl-key" => return Err(UrlError::ClientCertificates(key.into())),
            _ => return Err(UrlError::InvalidOption(key.to_string())),
        }
    }

    let file = env("HOME")
        .map(|home| Path::new(&home).join(".my.cnf"))
        .and_then(|path| std::fs::read_to_string(path).ok())
        .map(|text| client_section(&text))
        .unwrap_or_default();
    let from_file = |key: &str| {
        file.iter()
            .rev()
            .find(|(k, _)| k.replace('_', "-") == key)
            .map(|(_, v)| v.clone())
    };

    let password = match password {
        Some(pw) => Some(pw),
        None => match password_env {
            Some(var) => Some(
                std::env::var(var).map_err(|source| UrlError::PasswordEnvUnset {
                    var: var.to_string(),
                    source,
                })?,
            ),
            None => env("MYSQL_PWD").or_else(|| from_file("password")),
        },
    };
    let user = user
        .filter(|u| !u.is_empty())
        .or_else(|| from_file("user"))
        .or_else(|| env("USER"))
        .unwrap_or_else(|| "root".into());
    let host = host
        .or_else(|| from_file("host"))
        .unwrap_or_else(|| "localhost".into());
    let port = match port {
        Some(p) => p,
        None => match from_file("port") {
            Some(p) => p.parse().map_err(|_| UrlError::OptionType {
                key: "port",
                expected: "a port number",
            })?,
            None => 3306,
        },
    };
    let socket = socket.or_else(|| from_file("socket").map(PathBuf::from));
    let ssl_mode = match ssl_mode {
        Some(m) => m,
        None => match from_file("ssl-mode") {
            Some(m) => MysqlSslMode::parse(&m)?,
            None => MysqlSslMode::Preferred,
        },
    };
    let ssl_ca = ssl_ca.or_else(|| from_file("ssl-ca").map(PathBuf::from));
    if ssl_mode.verifies() {
        match &ssl_ca {
            None => return Err(UrlError::MysqlNoCa(ssl_mode.as_str())),
            Some(path) if !path.exists() => {
                return Err(UrlError::NoRootCert { path: path.clone() });
            }
            Some(_) => {}
        }
    }
    Ok(MysqlSource {
        scheme,
        user,
        password: password.map(Secret),
        host,
        port,
        socket,
        database,
        ssl_mode,
        ssl_ca,
    })
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`; both empty when not written.
fn split_host_port(text: &str) -> Result<(Option<String>, Option<u16>), UrlError> {
    let bad_port = || UrlError::OptionType {
        key: "port",
        expected: "a port number",
    };
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or(UrlError::MysqlHost)?;
        match after.strip_prefix(':') {
            Some(port) => (host.to_string(), Some(port)),
            None if after.is_empty() => (host.to_string(), None),
            None => return Err(UrlError::MysqlHost),
        }
    } else {
        match text.split_once(':') {
            Some((host, port)) => (decode("host", host)?, Some(port)),
            None => (decode("host", text)?, None),
        }
    };
    let port = match port {
        Some(p) => Some(p.parse::<u16>().map_err(|_| bad_port())?),
        None => None,
    };
    Ok((Some(host).filter(|h| !h.is_empty()), port))
}

fn decode(key: &'static str, value: &str) -> Result<String, UrlError> {
    percent_encoding::percent_decode_str(value)
        .decode_utf8()
        .map(|v| v.into_owned())
        .map_err(|source| UrlError::NotUtf8 { key, source })
}

/// The `key = value` lines of an option file's `[client]` section, the one every MySQL
/// client reads, in order; quotes around a value are removed, as the client does.
fn client_section(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut inside = false;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(section) = line.strip_prefix('[') {
            inside = section
                .trim_end_matches(']')
                .trim()
                .eq_ignore_ascii_case("client");
            continue;
        }
        if !inside {
            continue;
        }
        let (key, value) = match line.split_once('=') {
            Some((k, v)) => (k.trim(), v.trim()),
            None => (line, ""),
        };
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(value);
        out.push((key.to_ascii_lowercase(), value.to_string()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_in(url: &str, vars: &[(&str, &str)]) -> Result<MysqlSource, UrlError> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        parse_with(url, None, &move |k| {
            vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn urls_give_user_password_host_port_database_and_hide_the_password() {
        let m = parse_in(
            "mysql://reader:s%40cret@db.example:3307/sales?ssl-mode=required",
            &[],
        )
        .unwrap();
        assert_eq!(m.user, "reader");
        assert_eq!(m.password.as_ref().unwrap().expose(), "s@cret");
        assert_eq!((m.host.as_str(), m.port), ("db.example", 3307));
        assert_eq!(m.database.as_deref(), Some("sales"));
        assert_eq!(m.ssl_mode, MysqlSslMode::Required);
        assert_eq!(m.display(), "mysql://reader@db.example:3307/sales");
        assert!(!format!("{m:?}").contains("s@cret"));

        let m = parse_in("mariadb://u@[::1]/d", &[]).unwrap();
        assert_eq!(m.display(), "mariadb://u@[::1]:3306/d");
        let m = parse_in("mysql://u@/d?socket=/run/mysqld/mysqld.sock", &[]).unwrap();
        assert_eq!(
            m.socket.as_deref(),
            Some(Path::new("/run/mysqld/mysqld.sock"))
        );
        assert_eq!(m.ssl_mode, MysqlSslMode::Preferred);
    }

    #[test]
    fn the_password_comes_from_mysql_pwd_then_the_option_file() {
        let home = tempfile::tempdir().unwrap();
        std::fs::write(
            home.path().join(".my.cnf"),
            "[mysqld]\npassword=server\n[client]\nuser = filer\npassword = \"from file\"\nport=3310\n",
        )
        .unwrap();
        let home = home.path().to_str().unwrap();
        let m = parse_in("mysql://h/d", &[("HOME", home), ("MYSQL_PWD", "env")]).unwrap();
        assert_eq!(m.password.unwrap().expose(), "env");
        let m = parse_in("mysql://h/d", &[("HOME", home)]).unwrap();
        assert_eq!(m.password.unwrap().expose(), "from file");
        assert_eq!((m.user.as_str(), m.port), ("filer", 3310));
        let m = parse_in(
            "mysql://me:url@h:1/d",
            &[("HOME", home), ("MYSQL_PWD", "e")],
        )
        .unwrap();
        assert_eq!(m.password.unwrap().expose(), "url");
        assert_eq!((m.user.as_str(), m.port), ("me", 1));
    }

    #[test]
    fn bad_urls_are_refused_without_the_password() {
        let err = |url: &str| crate::error::chain(&parse_in(url, &[]).unwrap_err());
        assert_eq!(
            err("mysql://h/d?ssl-mode=sometimes"),
            "unknown sslmode `sometimes`"
        );
        assert!(err("mysql://h/d?ssl-mode=VERIFY_CA").contains("ssl-ca"));
        assert!(err("mysql://h/d?ssl-mode=verify_identity&ssl-ca=/nope.pem").contains("/nope.pem"));
        assert!(err("mysql://h/d?charset=latin1").contains("utf8mb4"));
        assert!(err("mysql://h/d?frobnicate=1").contains("frobnicate"));
        let e = err("mysql://u:p@ss@h/d");
        assert!(!e.contains("ss@h"), "{e}");
        assert!(err("mysql://h:port/d").contains("port"));
    }
}
