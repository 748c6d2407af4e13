//! libpq's password file (`~/.pgpass`, or the file `PGPASSFILE` names): one
//! `hostname:port:database:username:password` entry a line, `*` matching anything,
//! `\:` and `\\` escaping. The first matching line wins, as in libpq.

use std::path::{Path, PathBuf};

/// The password file libpq would read: `PGPASSFILE`, else `~/.pgpass`.
pub fn default_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("PGPASSFILE") {
        return Some(PathBuf::from(p));
    }
    std::env::var_os("HOME").map(|h| Path::new(&h).join(".pgpass"))
}

/// Looks up the password for a connection in the password file's text.
pub fn lookup(text: &str, host: &str, port: u16, database: &str, user: &str) -> Option<String> {
    let port = port.to_string();
    let wanted = [host, port.as_str(), database, user];
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields = split_fields(line);
        if fields.len() != 5 {
            continue;
        }
        let matches = fields[..4].iter().zip(wanted).all(|(pattern, value)| {
            pattern == "*" || pattern == value || (pattern == "localhost" && value.starts_with('/'))
        });
        if matches {
            return Some(fields[4].clone());
        }
    }
    None
}

/// Reads the password file if it exists. A file that cannot be read is treated as absent,
/// as libpq does.
pub fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

fn split_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    fields.last_mut().expect("never empty").push(next);
                }
            }
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => fields.last_mut().expect("never empty").push(c),
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_matching_line_wins_and_wildcards_match() {
        let text = "# comment\n\
                    db1:5432:sales:reader:first\n\
                    *:*:sales:reader:second\n\
                    *:*:*:*:fallback\n";
        assert_eq!(
            lookup(text, "db1", 5432, "sales", "reader").as_deref(),
            Some("first")
        );
        assert_eq!(
            lookup(text, "db2", 5433, "sales", "reader").as_deref(),
            Some("second")
        );
        assert_eq!(
            lookup(text, "db2", 5433, "hr", "x").as_deref(),
            Some("fallback")
        );
    }

    #[test]
    fn escaped_colons_and_backslashes() {
        let text = r"h:5432:d:u:pa\:ss\\word";
        assert_eq!(
            lookup(text, "h", 5432, "d", "u").as_deref(),
            Some(r"pa:ss\word")
        );
    }

    #[test]
    fn no_match_and_malformed_lines() {
        let text = "h:5432:d\nh:5432:d:u:pw\n";
        assert_eq!(lookup(text, "h", 5432, "d", "other"), None);
        assert_eq!(lookup(text, "h", 5432, "d", "u").as_deref(), Some("pw"));
    }

    #[test]
    fn localhost_matches_unix_socket() {
        let text = "localhost:5432:d:u:pw\n";
        assert_eq!(
            lookup(text, "/var/run/postgresql", 5432, "d", "u").as_deref(),
            Some("pw")
        );
    }
}
