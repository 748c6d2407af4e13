//! Who holds a job's lock, and whether it is still alive.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};

/// The run holding a lock: its process, host and start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub run: i64,
    pub pid: u32,
    /// The process's start in clock ticks since boot (`/proc/PID/stat`), where known.
    pub pid_start: Option<String>,
    pub host: String,
    pub started_at: String,
}

impl Holder {
    /// This process, as it records itself in a lock.
    pub fn me() -> Holder {
        let pid = std::process::id();
        Holder {
            run: 0,
            pid,
            pid_start: process_start(pid),
            host: hostname(),
            started_at: String::new(),
        }
    }

    /// Whether the lock is still held: on this host, while its process lives (the same
    /// process: a reused pid has another start time); on another, which this one cannot
    /// look into, until it is `lock_timeout` old.
    pub fn alive(&self, lock_timeout: Duration) -> bool {
        if self.host == hostname() {
            match process_start(self.pid) {
                None => return false,
                Some(start) => {
                    if self.pid_start.as_ref().is_some_and(|s| *s != start) {
                        return false;
                    }
                }
            }
        }
        let Ok(started) = DateTime::parse_from_rfc3339(&self.started_at) else {
            return false;
        };
        let age = Utc::now().signed_duration_since(started);
        age.to_std().map_or(true, |age| age < lock_timeout)
    }
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "run {} (pid {} on {}, started {})",
            self.run, self.pid, self.host, self.started_at
        )
    }
}

/// When process `pid` started, in clock ticks since boot: field 22 of `/proc/PID/stat`.
/// `None` when there is no such process (or no `/proc`).
fn process_start(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count from the
    // last closing one. Field 3 is the state; a zombie has exited.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    if fields.first() == Some(&"Z") {
        return None;
    }
    fields.get(19).map(|s| s.to_string())
}

/// This machine's name, as the kernel has it.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(pid: u32, pid_start: Option<String>, started: DateTime<Utc>) -> Holder {
        Holder {
            run: 1,
            pid,
            pid_start,
            host: hostname(),
            started_at: started.to_rfc3339(),
        }
    }

    #[test]
    fn this_process_holds_its_lock() {
        let me = Holder::me();
        assert!(me.pid_start.is_some(), "/proc/self/stat is readable");
        let h = holder(me.pid, me.pid_start, Utc::now());
        assert!(h.alive(Duration::from_secs(3600)));
    }

    #[test]
    fn a_dead_or_reused_pid_holds_nothing() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(!holder(pid, None, Utc::now()).alive(Duration::from_secs(3600)));
        // Our own pid with another start time: a process that reused a dead one's pid.
        let me = std::process::id();
        assert!(!holder(me, Some("1".into()), Utc::now()).alive(Duration::from_secs(3600)));
    }

    #[test]
    fn an_old_lock_expires_and_another_hosts_lock_lives_until_then() {
        let me = Holder::me();
        let old = Utc::now() - chrono::Duration::hours(2);
        assert!(!holder(me.pid, me.pid_start.clone(), old).alive(Duration::from_secs(3600)));
        let mut remote = holder(1, None, Utc::now());
        remote.host = "elsewhere.invalid".into();
        assert!(remote.alive(Duration::from_secs(3600)));
        remote.started_at = old.to_rfc3339();
        assert!(!remote.alive(Duration::from_secs(3600)));
    }
}
