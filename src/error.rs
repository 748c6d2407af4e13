//! Typed errors for every stage of a run, with the context a user needs (file, shard, column)
//! and predicates that map them to stable exit codes.

use std::path::PathBuf;
use std::time::Duration;

/// Exit codes, stable once released and documented in README.md.
pub mod exit {
    /// Every task succeeded and the output was written.
    pub const SUCCESS: i32 = 0;
    /// An error no other code describes (a bug, an I/O failure outside the output).
    pub const FAILURE: i32 = 1;
    /// The command line could not be parsed (clap's own code).
    pub const USAGE: i32 = 2;
    /// The job, shards or query file is invalid, or a parameter is missing or unknown.
    pub const CONFIG: i32 = 3;
    /// A shard rejected the query or returned data that cannot be represented
    /// (SQL error, unsupported type, schema mismatch between shards).
    pub const DATA: i32 = 4;
    /// A shard could not be reached, or its connection was lost.
    pub const UNAVAILABLE: i32 = 5;
    /// A task passed its deadline; its statement was cancelled on the server.
    pub const TIMEOUT: i32 = 6;
    /// `--allow-partial`: the output holds the shards that succeeded, some failed.
    pub const PARTIAL: i32 = 7;
    /// The output could not be written (permissions, disk full, bad path).
    pub const OUTPUT: i32 = 8;
    /// Another run of the same job (the same identity) holds its lock; try again later.
    pub const LOCKED: i32 = 9;
    /// Interrupted by Ctrl-C (SIGINT).
    pub const INTERRUPTED: i32 = 130;
    /// Terminated by SIGTERM.
    pub const TERMINATED: i32 = 143;
}

/// Everything that can make a run fail.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration file or flag is invalid. `path` names the file when there is one,
    /// `at` the place in it when the mistake has one (`job.toml:4:12: ...`).
    #[error("{}{message}", place(path.as_deref(), *at))]
    Config {
        path: Option<PathBuf>,
        at: Option<Position>,
        message: String,
    },

    /// One task (a shard, or a partition of it) failed; the run fails with it.
    #[error(transparent)]
    Task(#[from] TaskError),

    /// Two shards return different columns or types.
    #[error(
        "shards `{first_shard}` and `{other_shard}` disagree on the result's columns: {detail}"
    )]
    SchemaMismatch {
        first_shard: String,
        other_shard: String,
        detail: String,
    },

    /// `--shard-column` names a column a shard's result already has: found when the
    /// shard's columns reach the merger, so it is not a [`Error::Config`] of the job's
    /// files, though it is the job's to fix (and exits as one).
    #[error("--shard-column `{column}`: shard `{shard}` already returns a column of that name")]
    ShardColumnTaken { column: String, shard: String },

    /// `--allow-partial`: the output was written without the rows of the failed tasks.
    #[error(
        "{failed} of {total} tasks failed; {}",
        if *combined {
            "the output was combined from the others' rows only: its aggregates leave the failed shards out"
        } else {
            "the output holds the rows of the others"
        }
    )]
    Partial {
        failed: usize,
        total: usize,
        /// The rows went through a final step (combining or `--merge`).
        combined: bool,
    },

    /// The output could not be written. Nothing is left at `path`.
    #[error("cannot write {}: {message}", path.display())]
    Output { path: PathBuf, message: String },

    /// The query cannot be split across shards; found before any connection.
    #[error(transparent)]
    Combine(#[from] crate::combine::CombineError),

    /// The final step over the shards' results failed (a value that does not fit its
    /// column, a merge SQL error).
    #[error("the final step over the shards' results failed: {message}\n  its SQL: {sql}")]
    FinalStep { sql: String, message: String },

    /// The run ledger could not be opened, read or written.
    #[error("run ledger {}: {message}", path.display())]
    Ledger { path: PathBuf, message: String },

    /// Another run of the same job holds its lock.
    #[error(
        "another run of job `{job}` is in progress: {holder}; this run did nothing (a lock whose process has died is taken over by the next run)"
    )]
    Locked { job: String, holder: String },

    /// The run was interrupted by a signal; running statements were cancelled.
    #[error("interrupted by {signal}; running queries were cancelled and no output was written")]
    Interrupted { signal: &'static str },
}

/// A place in a text file, as editors and compilers count: line and column from 1, the
/// column in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl Position {
    /// The place of byte `offset` of `text` (its end when `offset` is past it or inside a
    /// character).
    pub fn of(text: &str, offset: usize) -> Position {
        let before = text.get(..offset).unwrap_or(text);
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Position {
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
        }
    }
}

/// What a [`Error::Config`] message starts with: `path: `, or `path:line:column: `.
fn place(path: Option<&std::path::Path>, at: Option<Position>) -> String {
    match (path, at) {
        (Some(path), Some(at)) => format!("{}:{}:{}: ", path.display(), at.line, at.column),
        (Some(path), None) => format!("{}: ", path.display()),
        (None, Some(at)) => format!("line {}, column {}: ", at.line, at.column),
        (None, None) => String::new(),
    }
}

impl Error {
    pub fn config(path: Option<PathBuf>, message: impl Into<String>) -> Error {
        Error::Config {
            path,
            at: None,
            message: message.into(),
        }
    }

    /// A mistake at `at` in the configuration file `path`.
    pub fn config_at(path: PathBuf, at: Position, message: impl Into<String>) -> Error {
        Error::Config {
            path: Some(path),
            at: Some(at),
            message: message.into(),
        }
    }

    pub fn output(path: impl Into<PathBuf>, message: impl std::fmt::Display) -> Error {
        Error::Output {
            path: path.into(),
            message: message.to_string(),
        }
    }

    /// The process exit code this error maps to (see [`exit`]).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Config { .. } => exit::CONFIG,
            Error::Task(e) => e.exit_code(),
            Error::SchemaMismatch { .. } => exit::DATA,
            Error::ShardColumnTaken { .. } => exit::CONFIG,
            Error::Output { .. } => exit::OUTPUT,
            Error::Combine(_) => exit::CONFIG,
            Error::FinalStep { .. } => exit::DATA,
            Error::Partial { .. } => exit::PARTIAL,
            Error::Ledger { .. } => exit::FAILURE,
            Error::Locked { .. } => exit::LOCKED,
            Error::Interrupted { signal } if *signal == "SIGTERM" => exit::TERMINATED,
            Error::Interrupted { .. } => exit::INTERRUPTED,
        }
    }

    /// The shard the error is about, when it is about one.
    pub fn shard(&self) -> Option<&str> {
        match self {
            Error::Task(e) => Some(&e.shard),
            Error::SchemaMismatch { other_shard, .. } => Some(other_shard),
            Error::ShardColumnTaken { shard, .. } => Some(shard),
            _ => None,
        }
    }

    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Task(e) if e.is_timeout())
    }
}

/// A failure of one task, naming its shard (and partition, when the shard is split).
#[derive(Debug, Clone, thiserror::Error)]
#[error("shard `{shard}`{}: {kind}", partition.as_ref().map(|p| format!(" ({p})")).unwrap_or_default())]
pub struct TaskError {
    pub shard: String,
    pub partition: Option<String>,
    pub kind: TaskErrorKind,
}

impl TaskError {
    pub fn new(shard: impl Into<String>, kind: TaskErrorKind) -> TaskError {
        TaskError {
            shard: shard.into(),
            partition: None,
            kind,
        }
    }

    pub fn exit_code(&self) -> i32 {
        match self.kind {
            TaskErrorKind::Connect { .. }
            | TaskErrorKind::ConnectionLost { .. }
            | TaskErrorKind::SnapshotLost { .. } => exit::UNAVAILABLE,
            TaskErrorKind::Partition { .. } => exit::DATA,
            TaskErrorKind::Timeout { .. } | TaskErrorKind::Stalled { .. } => exit::TIMEOUT,
            TaskErrorKind::Server { .. }
            | TaskErrorKind::Mysql { .. }
            | TaskErrorKind::UnsupportedType { .. }
            | TaskErrorKind::Decode { .. }
            | TaskErrorKind::Protocol { .. }
            | TaskErrorKind::Schema { .. } => exit::DATA,
        }
    }

    pub fn is_timeout(&self) -> bool {
        matches!(self.kind, TaskErrorKind::Timeout { .. })
    }

    /// Whether running the task again may succeed (the server or network failed, not the query).
    pub fn is_retryable(&self) -> bool {
        match &self.kind {
            TaskErrorKind::Connect { transient, .. } => *transient,
            TaskErrorKind::ConnectionLost { .. } | TaskErrorKind::Stalled { .. } => true,
            TaskErrorKind::Server { sqlstate, .. } => sqlstate.as_deref().is_some_and(|s| {
                s.starts_with("08") || matches!(s, "57P01" | "53300" | "40001" | "40P01")
            }),
            TaskErrorKind::Mysql { code, .. } => mysql_transient(*code),
            _ => false,
        }
    }
}

/// What went wrong in a task.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum TaskErrorKind {
    /// No connection could be opened (refused, DNS, authentication, missing file).
    #[error("cannot connect to {target}: {message}")]
    Connect {
        target: String,
        message: String,
        /// Whether trying again may succeed (network trouble, too many connections) rather
        /// than not (bad password, missing database or file).
        transient: bool,
    },

    /// The connection broke while the query ran.
    #[error("connection lost: {message}")]
    ConnectionLost { message: String },

    /// The query sent nothing for too long; it was cancelled on the server.
    #[error("stalled: no data for {} (the query was cancelled)", humantime::format_duration(*after))]
    Stalled { after: Duration },

    /// The task passed its deadline; the statement was cancelled on the server.
    #[error("query timed out after {} and was cancelled on the server", humantime::format_duration(*after))]
    Timeout { after: Duration },

    /// The server rejected the query.
    #[error("{message}{}", sqlstate.as_ref().map(|s| format!(" (SQLSTATE {s})")).unwrap_or_default())]
    Server {
        sqlstate: Option<String>,
        message: String,
    },

    /// A MySQL or MariaDB server refused the statement. Its error number, not the
    /// SQLSTATE (`HY000` for most), tells what happened.
    #[error("{message} (MySQL error {code}, SQLSTATE {sqlstate})")]
    Mysql {
        code: u16,
        sqlstate: String,
        message: String,
    },

    /// The query returns a column whose type tributary cannot represent.
    #[error("column `{column}` has type `{type_name}`, which tributary cannot read{}", hint.as_ref().map(|h| format!("; {h}")).unwrap_or_default())]
    UnsupportedType {
        column: String,
        type_name: String,
        hint: Option<String>,
    },

    /// A value could not be decoded into its column's Arrow type.
    #[error("column `{column}`: {message}")]
    Decode { column: String, message: String },

    /// The shard's COPY stream is not valid binary COPY data (a bad header, a field
    /// length that is neither -1 nor a size, a truncated stream). Not retried: the
    /// server would send the same bytes again. `offset` counts bytes from the stream's
    /// start; `column` is the field's, when the problem is in one.
    #[error("malformed COPY data from the server at byte {offset}{}: {problem}", column.as_ref().map(|c| format!(" (column `{c}`)")).unwrap_or_default())]
    Protocol {
        column: Option<String>,
        offset: u64,
        problem: crate::decode::error::Malformed,
    },

    /// The session holding the shard's exported snapshot ended: the partitions not yet
    /// started cannot read the same state as the others, so the run stops.
    #[error("snapshot lost: {message}")]
    SnapshotLost { message: String },

    /// Partitioning could not be planned (e.g. a range key of the wrong type).
    #[error("cannot partition: {message}")]
    Partition { message: String },

    /// The result's shape is not one tributary can write (e.g. duplicate column names).
    #[error("{message}")]
    Schema { message: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Whether a MySQL server error passes on its own: 1040 too many connections, 1205 lock
/// wait timeout, 1213 deadlock, 1053 server shutting down, 1927 connection killed (a
/// server restarting). A statement someone else stopped with `KILL QUERY` (1317) is
/// not retried: that was meant.
pub fn mysql_transient(code: u16) -> bool {
    matches!(code, 1040 | 1205 | 1213 | 1053 | 1927)
}

/// An error and its sources on one line, `outer: inner: innermost`, for the places that
/// keep a message rather than the error (a configuration error, a task's failure). A
/// source whose text its parent already shows is not repeated.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = s.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::error::Malformed;

    /// Regression: a malformed COPY stream was reported as a lost connection, retried
    /// three times and exited as "unavailable".
    #[test]
    fn malformed_copy_data_is_a_data_error_not_retried() {
        let error = TaskError::new(
            "eu-1",
            TaskErrorKind::Protocol {
                column: Some("total".into()),
                offset: 41,
                problem: Malformed::NegativeLength(-2),
            },
        );
        assert!(!error.is_retryable());
        assert!(!error.is_timeout());
        assert_eq!(error.exit_code(), exit::DATA);
        assert_eq!(
            error.to_string(),
            "shard `eu-1`: malformed COPY data from the server at byte 41 (column `total`): negative field length -2 (only -1, NULL, is allowed)"
        );
        assert_eq!(Error::Task(error).exit_code(), exit::DATA);
    }

    #[test]
    fn a_config_error_names_its_file_and_place() {
        let text = "a = 1\n\u{e9}t\u{e9} = \"${X}\"\n";
        let at = Position::of(text, text.find('$').unwrap());
        assert_eq!(at, Position { line: 2, column: 8 });
        assert_eq!(Position::of(text, 0), Position { line: 1, column: 1 });
        // Past the end or inside a character: the end.
        assert_eq!(Position::of(text, 7), Position::of(text, text.len()));
        let e = Error::config_at("jobs/job.toml".into(), at, "boom");
        assert_eq!(e.to_string(), "jobs/job.toml:2:8: boom");
        assert_eq!(e.exit_code(), exit::CONFIG);
        let e = Error::config(Some("jobs/job.toml".into()), "boom");
        assert_eq!(e.to_string(), "jobs/job.toml: boom");
        assert_eq!(Error::config(None, "boom").to_string(), "boom");
    }
}
