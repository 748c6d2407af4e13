//! libpq's password file (`~/.pgpass`, or the file `PGPASSFILE` names): one
//! `hostname:port:database:username:password` entry a line, `*` matching anything,
//! `\:` and `\\` escaping. The first matching line wins, as in libpq, and as in libpq a
//! file that group or others may access is ignored with a warning (on Unix).

use std::path::Path;

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
/// as libpq does. On Unix, so is (with libpq's warning) one that is not a plain file, or
/// that its group or others may access: a password left readable by other users is not
/// one to send.
pub fn read(path: &Path) -> Option<String> {
    let metadata = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if !metadata.is_file() {
            tracing::warn!(
                "password file \"{}\" is not a plain file; it is ignored",
                path.display()
            );
            return None;
        }
        if metadata.permissions().mode() & 0o077 != 0 {
            tracing::warn!(
                "password file \"{}\" has group or world access; permissions should be u=rw (0600) or less; it is ignored",
                path.display()
            );
            return None;
        }
    }
    #[cfg(not(unix))]
    let _ = metadata;
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

    /// What `f` logs at `WARN` and above while it runs on this thread.
    #[cfg(unix)]
    fn warnings<T>(f: impl FnOnce() -> T) -> (T, String) {
        use std::sync::{Arc, Mutex};
        #[derive(Clone)]
        struct Sink(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Sink {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let sink = Sink(Arc::default());
        let writer = sink.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let value = tracing::subscriber::with_default(subscriber, f);
        let logged = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        (value, logged)
    }

    #[cfg(unix)]
    #[test]
    fn a_password_file_others_may_access_is_ignored_with_a_warning() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pgpass");
        std::fs::write(&path, "*:*:*:*:pw\n").unwrap();
        for mode in [0o644, 0o640, 0o604, 0o660, 0o601] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let (text, logged) = warnings(|| read(&path));
            assert_eq!(text, None, "mode {mode:o}");
            assert!(
                logged.contains("WARN")
                    && logged.contains(&format!(
                        "password file \"{}\" has group or world access; permissions should be u=rw (0600) or less",
                        path.display()
                    )),
                "mode {mode:o}: {logged}"
            );
            assert!(!logged.contains("pw\n"), "{logged}");
        }
        for mode in [0o600, 0o400] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let (text, logged) = warnings(|| read(&path));
            assert_eq!(text.as_deref(), Some("*:*:*:*:pw\n"), "mode {mode:o}");
            assert_eq!(logged, "", "mode {mode:o}");
        }
        // A missing file is simply absent, as in libpq.
        let (text, logged) = warnings(|| read(&dir.path().join("none")));
        assert_eq!((text, logged.as_str()), (None, ""));
    }

    #[cfg(unix)]
    #[test]
    fn a_password_file_that_is_a_directory_is_ignored_with_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let (text, logged) = warnings(|| read(dir.path()));
        assert_eq!(text, None);
        assert!(logged.contains("is not a plain file"), "{logged}");
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
