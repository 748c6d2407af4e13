//! What the user sees: live progress on stderr (bars on a terminal, log lines otherwise)
//! and the summary of a run: every task's rows, duration and outcome; and what a run
//! records of itself: the JSON report and the Parquet key-value metadata.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use indicatif::{HumanBytes, HumanCount};

use crate::config::{JobConfig, dates};
use crate::error::{self, Result as RunResult};
use crate::plan::Plan;
use crate::sink::{self, OutputSummary};
use crate::sql::ParamValue;

mod progress;
pub use progress::Progress;

/// How a task ended.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "status", content = "error", rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    Failed(String),
    /// Stopped because the run failed elsewhere or was interrupted.
    Cancelled,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct TaskReport {
    pub task: usize,
    pub shard: String,
    pub partition: Option<String>,
    pub rows: u64,
    /// The bytes of Arrow data it sent (its last attempt's).
    pub bytes: u64,
    #[serde(serialize_with = "seconds")]
    pub duration: Duration,
    /// Attempts made (more than one after transient failures).
    pub attempts: u32,
    pub outcome: Outcome,
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// A parameter as the run used it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ParamReport {
    pub value: ParamValue,
    /// The relative date the value was evaluated from (`@today-7d`), if it was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
}

/// What a run's query was given: its parameters and the instant and zone their relative
/// dates were evaluated at.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RunInputs {
    /// RFC 3339, to the second, with the zone's offset.
    pub as_of: String,
    /// The IANA zone's name.
    pub timezone: String,
    pub params: BTreeMap<String, ParamReport>,
    /// The slice of a run split across machines this run is (`--slice I/N`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slice: Option<SliceReport>,
}

/// Slice `index` (from 0) of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct SliceReport {
    pub index: usize,
    pub count: usize,
}

impl RunInputs {
    pub fn of(config: &JobConfig) -> RunInputs {
        RunInputs {
            as_of: dates::rfc3339(&config.as_of),
            timezone: config.timezone().to_string(),
            params: config
                .params
                .iter()
                .map(|(name, value)| {
                    let report = ParamReport {
                        value: value.clone(),
                        expression: config.relative.get(name).cloned(),
                    };
                    (name.clone(), report)
                })
                .collect(),
            slice: config.options.slicing.and_then(|s| {
                Some(SliceReport {
                    index: s.index?,
                    count: s.count,
                })
            }),
        }
    }
}

/// The result of a run, successful or not.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RunReport {
    /// In the JSON, `as_of`, `timezone` and `params` beside the tasks.
    #[serde(flatten)]
    pub inputs: RunInputs,
    pub tasks: Vec<TaskReport>,
    pub output: Option<OutputSummary>,
    #[serde(serialize_with = "seconds")]
    pub elapsed: Duration,
    /// The snapshot each partitioned PostgreSQL shard read, by shard.
    pub snapshots: std::collections::BTreeMap<String, String>,
    /// False when partitions read independently (`--no-snapshot`).
    pub consistent: bool,
    /// Partitioned shards whose partitions each read a snapshot of their own although
    /// consistency is on: MySQL cannot share one between connections.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub independent: Vec<String>,
    /// The final step over every task's rows, when the run has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub combined: Option<Combined>,
    /// An incremental job's next mark for each shard whose rows the committed output
    /// holds in full: the next run reads past it.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub marks: std::collections::BTreeMap<String, crate::plan::window::Mark>,
    /// The reader profile's renderings (`--for`), and the columns common readers cannot
    /// open as written (warnings).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub readers: Option<crate::types::ReaderNotes>,
}

/// What a run's final step combined.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Combined {
    /// How the rows were combined, and why.
    pub strategy: String,
    /// Shards whose every task succeeded: the result covers all of their rows.
    pub covers: Vec<String>,
    /// Shards whose every task failed (`--allow-partial`): none of their rows is in the
    /// result.
    pub missing: Vec<String>,
    /// Shards of which some partitions failed: the result holds only the others' rows.
    pub incomplete: Vec<String>,
}

impl Combined {
    /// The shards of `tasks`, each once in order of first appearance, sorted by how many
    /// of their tasks succeeded.
    pub fn new(strategy: String, tasks: &[TaskReport]) -> Combined {
        let mut combined = Combined {
            strategy,
            covers: Vec::new(),
            missing: Vec::new(),
            incomplete: Vec::new(),
        };
        let mut seen: Vec<&str> = Vec::new();
        for t in tasks {
            if seen.contains(&t.shard.as_str()) {
                continue;
            }
            seen.push(&t.shard);
            let (ok, all) = tasks
                .iter()
                .filter(|u| u.shard == t.shard)
                .fold((0, 0), |(ok, all), u| {
                    (ok + usize::from(u.outcome == Outcome::Ok), all + 1)
                });
            let list = match ok {
                0 => &mut combined.missing,
                ok if ok == all => &mut combined.covers,
                _ => &mut combined.incomplete,
            };
            list.push(t.shard.clone());
        }
        combined
    }

    /// What the summary says of a result that leaves shards out, if it does.
    fn partial(&self) -> Option<String> {
        if self.missing.is_empty() && self.incomplete.is_empty() {
            return None;
        }
        let mut lost = Vec::new();
        if !self.missing.is_empty() {
            lost.push(format!("the rows of {}", names(&self.missing)));
        }
        if !self.incomplete.is_empty() {
            lost.push(format!(
                "the failed partitions' rows of {}",
                names(&self.incomplete)
            ));
        }
        Some(format!(
            "PARTIAL: the result covers only shard{} {} in full; {} are missing from every aggregate",
            if self.covers.len() == 1 { "" } else { "s" },
            names(&self.covers),
            lost.join(" and ")
        ))
    }
}

impl RunReport {
    /// The rows the tasks that succeeded returned (a combined run's partial rows).
    pub fn rows(&self) -> u64 {
        self.tasks
            .iter()
            .filter(|t| t.outcome == Outcome::Ok)
            .map(|t| t.rows)
            .sum()
    }
}

/// The Parquet key-value metadata: what was read, from where, with which parameters
/// (and the relative dates they were evaluated from, at which instant in which zone),
/// and how each task went.
pub fn file_metadata(
    config: &JobConfig,
    plan: &Plan,
    reports: &[TaskReport],
) -> Vec<(String, String)> {
    let shards: Vec<&str> = config.shards.iter().map(|s| s.name.as_str()).collect();
    let params: BTreeMap<&str, &ParamValue> =
        config.params.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let manifest: Vec<serde_json::Value> = plan
        .tasks
        .iter()
        .zip(reports)
        .map(|(t, r)| {
            serde_json::json!({
                "shard": t.shard_name,
                "partition": t.partition,
                "rows": r.rows,
                "seconds": r.duration.as_secs_f64(),
                "attempts": r.attempts,
                "outcome": r.outcome,
            })
        })
        .collect();
    vec![
        ("tributary.version".into(), env!("CARGO_PKG_VERSION").into()),
        (
            "tributary.snapshots".into(),
            serde_json::to_string(&plan.snapshots).expect("serialisable"),
        ),
        ("tributary.query".into(), config.query_text.clone()),
        (
            "tributary.query_path".into(),
            config.query_path.display().to_string(),
        ),
        (
            "tributary.params".into(),
            serde_json::to_string(&params).expect("serialisable"),
        ),
        (
            "tributary.params_relative".into(),
            serde_json::to_string(&config.relative).expect("serialisable"),
        ),
        ("tributary.as_of".into(), dates::rfc3339(&config.as_of)),
        ("tributary.timezone".into(), config.timezone().into()),
        (
            "tributary.shards".into(),
            serde_json::to_string(&shards).expect("serialisable"),
        ),
        (
            "tributary.tasks".into(),
            serde_json::Value::Array(manifest).to_string(),
        ),
    ]
}

/// Writes the JSON run report: the exit code, the error (if any) and every task's
/// outcome. Written atomically like the output ([`sink::write_atomically`]: a locked
/// temporary beside it, fsynced, renamed into place, the directory fsynced), creating
/// its directory if needed.
pub fn write_report(
    path: &std::path::Path,
    report: &RunReport,
    result: &RunResult<()>,
) -> RunResult<()> {
    let (code, error) = match result {
        Ok(()) => (error::exit::SUCCESS, None),
        Err(e) => (e.exit_code(), Some(e.to_string())),
    };
    let json = serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "exit_code": code,
        "error": error,
        "run": report,
    });
    let text = serde_json::to_string_pretty(&json).expect("serialisable");
    sink::write_atomically(path, text.as_bytes())
}

/// A count with thousands separators: `1,234,567`.
fn thousands(n: u64) -> String {
    HumanCount(n).to_string()
}

/// A size in binary units: `512 B`, `1.50 KiB`.
fn bytes(n: u64) -> String {
    HumanBytes(n).to_string()
}

/// What the summary says of a file's unreferenced bytes (row groups of failed task
/// attempts, left out of the footer): nothing when there are none.
fn unreferenced(n: u64) -> String {
    if n == 0 {
        String::new()
    } else {
        format!(", {} unreferenced from failed attempts", bytes(n))
    }
}

impl fmt::Display for RunReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let label = |t: &TaskReport| match &t.partition {
            Some(p) => format!("{} {p}", t.shard),
            None => t.shard.clone(),
        };
        let width = self
            .tasks
            .iter()
            .map(|t| label(t).len())
            .max()
            .unwrap_or(5)
            .max(5);
        let rows_width = self
            .tasks
            .iter()
            .map(|t| thousands(t.rows).len())
            .chain([thousands(self.rows()).len(), 4])
            .max()
            .unwrap_or(4);
        writeln!(
            f,
            "{:<width$}  {:>rows_width$}  {:>8}  outcome",
            "shard", "rows", "time"
        )?;
        for t in &self.tasks {
            let retried = if t.attempts > 1 {
                format!(" after {} attempts", t.attempts)
            } else {
                String::new()
            };
            let outcome = match &t.outcome {
                Outcome::Ok if t.attempts > 1 => format!("ok{retried}"),
                Outcome::Ok => "ok".to_string(),
                Outcome::Failed(e) => format!("FAILED{retried}: {e}"),
                Outcome::Cancelled => "cancelled".to_string(),
            };
            writeln!(
                f,
                "{:<width$}  {:>rows_width$}  {:>7.2}s  {outcome}",
                label(t),
                thousands(t.rows),
                t.duration.as_secs_f64()
            )?;
        }
        if !self.consistent {
            writeln!(
                f,
                "consistency off: partitions read independently, not from one snapshot"
            )?;
        }
        for (shard, id) in &self.snapshots {
            writeln!(f, "shard {shard}: all partitions read snapshot {id}")?;
        }
        for shard in &self.independent {
            writeln!(
                f,
                "shard {shard}: partitions read independently, each its own snapshot (MySQL shares none between connections)"
            )?;
        }
        if let Some(c) = &self.combined {
            writeln!(
                f,
                "combined {} rows from the shards in a final step: {}",
                thousands(self.rows()),
                c.strategy
            )?;
            if let Some(partial) = c.partial() {
                writeln!(f, "{partial}")?;
            }
        }
        if let Some(readers) = &self.readers {
            write!(f, "{readers}")?;
        }
        let outcome = match &self.output {
            Some(o) if o.files.len() > 1 => format!(
                "wrote {} files, {} .. {} ({} row groups, {}{}){}",
                o.files.len(),
                o.files[0].display(),
                o.files[o.files.len() - 1].display(),
                o.row_groups,
                bytes(o.bytes),
                unreferenced(o.unreferenced_bytes),
                manifest(o),
            ),
            Some(o) => format!(
                "wrote {} ({} row group{}, {}{}){}",
                o.path.display(),
                o.row_groups,
                if o.row_groups == 1 { "" } else { "s" },
                bytes(o.bytes),
                unreferenced(o.unreferenced_bytes),
                manifest(o),
            ),
            None => "no output written".to_string(),
        };
        // A combined run's total is its result's rows, not the partial rows above.
        let total = match (&self.combined, &self.output) {
            (Some(_), Some(o)) => o.rows,
            _ => self.rows(),
        };
        write!(
            f,
            "{:<width$}  {:>rows_width$}  {:>7.2}s  {outcome}",
            "total",
            thousands(total),
            self.elapsed.as_secs_f64()
        )
    }
}

/// Shard names for the summary: `a, b` (`none` for no shard).
fn names(shards: &[String]) -> String {
    if shards.is_empty() {
        "none".into()
    } else {
        shards.join(", ")
    }
}

/// Where a split output's manifest is, or the version a table's commit made, for the
/// summary.
fn manifest(o: &OutputSummary) -> String {
    match (&o.manifest, o.table_version) {
        (Some(m), _) => format!(", listed in {}", m.display()),
        (None, Some(version)) => match o.run_recorded {
            Some(recorded) => format!(
                ", committed as table version {version}; the last of the run's slices, \
                 it recorded the run complete (table version {recorded})"
            ),
            None => format!(", committed as table version {version}"),
        },
        (None, None) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_combined_result_names_the_shards_it_leaves_out() {
        let task = |shard: &str, ok: bool| TaskReport {
            task: 0,
            shard: shard.into(),
            partition: Some("p".into()),
            rows: 1,
            bytes: 8,
            duration: Duration::ZERO,
            attempts: 1,
            outcome: if ok {
                Outcome::Ok
            } else {
                Outcome::Failed("gone".into())
            },
        };
        let tasks = [
            task("eu", true),
            task("us", true),
            task("us", false),
            task("ap", false),
            task("eu", true),
            task("ap", false),
        ];
        let c = Combined::new("s".into(), &tasks);
        assert_eq!(c.covers, ["eu"]);
        assert_eq!(c.missing, ["ap"]);
        assert_eq!(c.incomplete, ["us"]);
        assert_eq!(
            c.partial().unwrap(),
            "PARTIAL: the result covers only shard eu in full; the rows of ap and the failed partitions' rows of us are missing from every aggregate"
        );
        assert_eq!(Combined::new("s".into(), &tasks[..2]).partial(), None);
    }

    #[test]
    fn numbers_are_readable() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.50 KiB");
        assert_eq!(bytes(3 << 30), "3.00 GiB");
        assert_eq!(unreferenced(0), "");
        assert_eq!(
            unreferenced(2048),
            ", 2.00 KiB unreferenced from failed attempts"
        );
    }
}
