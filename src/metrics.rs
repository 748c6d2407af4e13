//! The metrics file (`--metrics-file`): what a run leaves for monitoring when nobody
//! watches it, in Prometheus' text exposition format (version 0.0.4), the format
//! node_exporter's textfile collector reads from `*.prom` files.
//!
//! Every run of a job that resolved (successful, failed, partial or interrupted) replaces
//! its own series in the file, all labelled `job="NAME"` ([`crate::JobConfig::name`]):
//! when it ended, how long it took, the rows and bytes it wrote, its exit code, its tasks
//! and how many failed; and when the job last succeeded. A failed run has no success time
//! of its own, so it carries the one the file already holds for the job; an alert on
//! that series ("no success in 26 h") sees failures and missed runs alike.
//!
//! Several jobs may share one file: the previous file is read, the series of other jobs
//! (and any family tributary does not write) are kept as they were, and the whole is
//! written atomically (`sink::write_atomically`). Two runs writing one file at the same
//! moment may still lose one update, so docs/scheduling.md recommends a file per job.

use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::error::{Result, exit};
use crate::report::{Outcome, RunReport};
use crate::sink;

/// The families tributary writes, in the file's order (and [`RunMetrics::values`]'):
/// name and help text. All are gauges: each holds the last run's value, not a running
/// total.
const FAMILIES: [(&str, &str); 8] = [
    (
        LAST_RUN,
        "When the job's last run ended, successful or not (unix seconds).",
    ),
    (
        LAST_SUCCESS,
        "When the job's last successful run (exit code 0) ended (unix seconds).",
    ),
    (
        "tributary_last_run_duration_seconds",
        "How long the job's last run took.",
    ),
    (
        "tributary_last_run_rows",
        "Rows the job's last run wrote (0 when it wrote no output).",
    ),
    (
        "tributary_last_run_bytes",
        "Bytes of output the job's last run wrote (0 when it wrote no output).",
    ),
    (
        "tributary_last_run_exit_code",
        "The exit code of the job's last run (0: success; see docs/scheduling.md).",
    ),
    (
        "tributary_last_run_tasks",
        "Tasks (shards, or partitions of shards) the job's last run planned.",
    ),
    (
        "tributary_last_run_tasks_failed",
        "Tasks of the job's last run that failed (not those cancelled because of them).",
    ),
];

const LAST_RUN: &str = "tributary_last_run_timestamp_seconds";
const LAST_SUCCESS: &str = "tributary_last_success_timestamp_seconds";

/// The label naming the job in every series tributary writes.
const JOB: &str = "job";

/// What one run of a job puts in the metrics file.
#[derive(Debug, Clone, PartialEq)]
pub struct RunMetrics {
    pub job: String,
    /// When the run ended.
    pub end: SystemTime,
    pub duration: Duration,
    /// Rows written to the output (the result's rows, for a combined run).
    pub rows: u64,
    /// The output's size on disk.
    pub bytes: u64,
    pub exit_code: i32,
    pub tasks: usize,
    pub tasks_failed: usize,
}

impl RunMetrics {
    /// The metrics of a run of `job` that ended at `end` with `report` and `result`.
    pub fn new(job: &str, report: &RunReport, result: &Result<()>, end: SystemTime) -> Self {
        let output = report.output.as_ref();
        RunMetrics {
            job: job.to_owned(),
            end,
            duration: report.elapsed,
            rows: output.map_or(0, |o| o.rows),
            bytes: output.map_or(0, |o| o.bytes),
            exit_code: match result {
                Ok(()) => exit::SUCCESS,
                Err(e) => e.exit_code(),
            },
            tasks: report.tasks.len(),
            tasks_failed: report
                .tasks
                .iter()
                .filter(|t| matches!(t.outcome, Outcome::Failed(_)))
                .count(),
        }
    }

    /// The metrics of a run of `job` that ended at `end` with `exit_code` before any
    /// task ran (nothing to do, or nothing it may do yet): no tasks, no output, no time.
    pub fn without_tasks(job: &str, exit_code: i32, end: SystemTime) -> Self {
        RunMetrics {
            job: job.to_owned(),
            end,
            duration: Duration::ZERO,
            rows: 0,
            bytes: 0,
            exit_code,
            tasks: 0,
            tasks_failed: 0,
        }
    }

    fn succeeded(&self) -> bool {
        self.exit_code == exit::SUCCESS
    }

    /// This run's value of each family tributary writes; `None` for the success time of
    /// a run that failed.
    fn values(&self) -> [Option<String>; 8] {
        let end = seconds(
            self.end
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default(),
        );
        [
            Some(end.clone()),
            self.succeeded().then_some(end),
            Some(seconds(self.duration)),
            Some(self.rows.to_string()),
            Some(self.bytes.to_string()),
            Some(self.exit_code.to_string()),
            Some(self.tasks.to_string()),
            Some(self.tasks_failed.to_string()),
        ]
    }
}

/// Seconds with their fraction, as Prometheus reads floats (never in exponent form).
fn seconds(d: Duration) -> String {
    d.as_secs_f64().to_string()
}

/// Writes `run`'s series into the metrics file at `path`, keeping every other job's
/// series the file holds, atomically (a temporary beside it, fsynced, renamed, the
/// directory fsynced; the directory is created if needed). A previous file that cannot
/// be read is replaced, with a warning: its series, the job's last success time among
/// them, are lost.
pub fn write(path: &Path, run: &RunMetrics) -> Result<()> {
    let previous = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => {
            tracing::warn!(
                "cannot read the metrics file {}, so its series are not kept: {e}",
                path.display()
            );
            String::new()
        }
    };
    sink::write_atomically(path, render(&previous, run).as_bytes())
}

/// The metrics file's new text: `previous` with `run`'s series in place of its job's.
/// Lines of `previous` that are not valid exposition format are dropped.
fn render(previous: &str, run: &RunMetrics) -> String {
    let mut families = parse(previous);
    // The job's last success, if a failed run has to carry it over.
    let last_success = families
        .iter()
        .filter(|f| f.name == LAST_SUCCESS)
        .flat_map(|f| &f.samples)
        .find(|s| s.name == LAST_SUCCESS && s.job() == Some(&run.job))
        .map(|s| s.value.clone());
    let mut out = String::new();
    for ((name, help), value) in FAMILIES.into_iter().zip(run.values()) {
        let value = match name {
            LAST_SUCCESS => value.or(last_success.clone()),
            _ => value,
        };
        let mut samples = match families.iter().position(|f| f.name == name) {
            Some(i) => families.remove(i).samples,
            None => Vec::new(),
        };
        samples.retain(|s| s.job() != Some(&run.job));
        if let Some(value) = value {
            samples.push(Sample {
                name: name.to_owned(),
                labels: vec![(JOB.to_owned(), run.job.clone())],
                value,
                timestamp: None,
            });
        }
        samples.sort_by(|a, b| a.labels.cmp(&b.labels));
        Family {
            name: name.to_owned(),
            help: Some(escape_help(help)),
            kind: Some("gauge".to_owned()),
            samples,
        }
        .render(&mut out);
    }
    // Families tributary does not write, as they were.
    for family in families {
        family.render(&mut out);
    }
    out
}

/// A metric family of the file: its `# HELP` and `# TYPE` lines and its samples.
#[derive(Debug, Clone, PartialEq)]
struct Family {
    name: String,
    /// The help text as written in the file (escaped).
    help: Option<String>,
    kind: Option<String>,
    samples: Vec<Sample>,
}

impl Family {
    fn new(name: &str) -> Family {
        Family {
            name: name.to_owned(),
            help: None,
            kind: None,
            samples: Vec::new(),
        }
    }

    /// The family's lines; nothing for a family without samples.
    fn render(&self, out: &mut String) {
        if self.samples.is_empty() {
            return;
        }
        if let Some(help) = &self.help {
            out.push_str(&format!("# HELP {} {help}\n", self.name));
        }
        if let Some(kind) = &self.kind {
            out.push_str(&format!("# TYPE {} {kind}\n", self.name));
        }
        for s in &self.samples {
            out.push_str(&s.name);
            if !s.labels.is_empty() {
                let labels: Vec<String> = s
                    .labels
                    .iter()
                    .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
                    .collect();
                out.push_str(&format!("{{{}}}", labels.join(",")));
            }
            out.push(' ');
            out.push_str(&s.value);
            if let Some(t) = &s.timestamp {
                out.push(' ');
                out.push_str(t);
            }
            out.push('\n');
        }
    }
}

/// One sample line: `name{label="value",...} value [timestamp]`.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    /// Label names and their values, unescaped, in the file's order.
    labels: Vec<(String, String)>,
    /// The value as written (checked to be a float).
    value: String,
    timestamp: Option<String>,
}

impl Sample {
    fn job(&self) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == JOB)
            .map(|(_, v)| v.as_str())
    }
}

/// A label value escaped for the text format: backslash, double quote and line feed.
fn escape_label(value: &str) -> String {
    value
        .replace('\\', r"\\")
        .replace('"', r#"\""#)
        .replace('\n', r"\n")
}

/// A help text escaped for the text format: backslash and line feed.
fn escape_help(text: &str) -> String {
    text.replace('\\', r"\\").replace('\n', r"\n")
}

/// The families of a text-format file, in order. A sample belongs to the family whose
/// `# HELP` or `# TYPE` line came last if its name extends that family's (`_bucket`,
/// `_sum`, ... of a histogram), else to the family of its own name. Lines that do not
/// parse are dropped.
fn parse(text: &str) -> Vec<Family> {
    let mut families: Vec<Family> = Vec::new();
    // The family the last `#` line or sample named.
    let mut current: Option<usize> = None;
    let family =
        |families: &mut Vec<Family>, name: &str| match families.iter().position(|f| f.name == name)
        {
            Some(i) => i,
            None => {
                families.push(Family::new(name));
                families.len() - 1
            }
        };
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let mut words = comment.trim_start().splitn(3, [' ', '\t']);
            let (Some(keyword @ ("HELP" | "TYPE")), Some(name)) = (words.next(), words.next())
            else {
                continue;
            };
            if !is_metric_name(name) {
                continue;
            }
            let rest = words.next().unwrap_or("").trim().to_owned();
            let i = family(&mut families, name);
            match keyword {
                "HELP" => families[i].help = Some(rest),
                _ => families[i].kind = Some(rest),
            }
            current = Some(i);
            continue;
        }
        let Some(sample) = parse_sample(line) else {
            tracing::debug!("a line of the metrics file is not a sample, dropped: {line}");
            continue;
        };
        let i = match current {
            Some(i) if extends(&sample.name, &families[i].name) => i,
            _ => family(&mut families, &sample.name),
        };
        families[i].samples.push(sample);
        current = Some(i);
    }
    families
}

/// Whether a sample named `sample` belongs to the family `family` (the same name, or
/// the family's name and a suffix).
fn extends(sample: &str, family: &str) -> bool {
    sample
        .strip_prefix(family)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('_'))
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// A sample line, or `None` if it is not one.
fn parse_sample(line: &str) -> Option<Sample> {
    let name_end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(line.len());
    let name = &line[..name_end];
    if !is_metric_name(name) {
        return None;
    }
    let mut rest = line[name_end..].trim_start();
    let mut labels = Vec::new();
    if let Some(after) = rest.strip_prefix('{') {
        rest = after;
        loop {
            rest = rest.trim_start();
            if let Some(after) = rest.strip_prefix('}') {
                rest = after;
                break;
            }
            let key_end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))?;
            let key = &rest[..key_end];
            if key.is_empty() || key.starts_with(|c: char| c.is_ascii_digit()) {
                return None;
            }
            rest = rest[key_end..].trim_start().strip_prefix('=')?;
            rest = rest.trim_start().strip_prefix('"')?;
            let (value, after) = label_value(rest)?;
            labels.push((key.to_owned(), value));
            rest = after.trim_start();
            if let Some(after) = rest.strip_prefix(',') {
                rest = after;
            } else if !rest.starts_with('}') {
                return None;
            }
        }
    }
    let mut words = rest.split_whitespace();
    let value = words.next()?;
    let timestamp = words.next();
    if words.next().is_some()
        || !is_float(value)
        || timestamp.is_some_and(|t| t.parse::<i64>().is_err())
    {
        return None;
    }
    Some(Sample {
        name: name.to_owned(),
        labels,
        value: value.to_owned(),
        timestamp: timestamp.map(str::to_owned),
    })
}

/// A label value after its opening quote, unescaped, and the text after its closing
/// quote.
fn label_value(text: &str) -> Option<(String, &str)> {
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((value, &text[i + 1..])),
            '\\' => match chars.next()?.1 {
                'n' => value.push('\n'),
                // `\\`, `\"`, and (as Prometheus reads it) any other escaped character.
                other => value.push(other),
            },
            c => value.push(c),
        }
    }
    None
}

/// Whether `value` is a sample value: a float, `+Inf`, `-Inf` or `NaN` (Rust reads
/// these as Go's `ParseFloat`, which Prometheus uses, does).
fn is_float(value: &str) -> bool {
    value.parse::<f64>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(job: &str, exit_code: i32, end: u64) -> RunMetrics {
        RunMetrics {
            job: job.into(),
            end: SystemTime::UNIX_EPOCH + Duration::from_millis(end),
            duration: Duration::from_millis(2500),
            rows: 1234,
            bytes: 5678,
            exit_code,
            tasks: 3,
            tasks_failed: usize::from(exit_code != 0),
        }
    }

    /// The sample of `name` for `job`, if the text has one.
    fn value(text: &str, name: &str, job: &str) -> Option<String> {
        parse(text)
            .into_iter()
            .flat_map(|f| f.samples)
            .find(|s| s.name == name && s.job() == Some(job))
            .map(|s| s.value)
    }

    #[test]
    fn a_successful_run_writes_every_family_with_help_and_type() {
        let text = render("", &run("nightly", 0, 1_718_000_000_250));
        assert_eq!(
            text,
            "\
# HELP tributary_last_run_timestamp_seconds When the job's last run ended, successful or not (unix seconds).
# TYPE tributary_last_run_timestamp_seconds gauge
tributary_last_run_timestamp_seconds{job=\"nightly\"} 1718000000.25
# HELP tributary_last_success_timestamp_seconds When the job's last successful run (exit code 0) ended (unix seconds).
# TYPE tributary_last_success_timestamp_seconds gauge
tributary_last_success_timestamp_seconds{job=\"nightly\"} 1718000000.25
# HELP tributary_last_run_duration_seconds How long the job's last run took.
# TYPE tributary_last_run_duration_seconds gauge
tributary_last_run_duration_seconds{job=\"nightly\"} 2.5
# HELP tributary_last_run_rows Rows the job's last run wrote (0 when it wrote no output).
# TYPE tributary_last_run_rows gauge
tributary_last_run_rows{job=\"nightly\"} 1234
# HELP tributary_last_run_bytes Bytes of output the job's last run wrote (0 when it wrote no output).
# TYPE tributary_last_run_bytes gauge
tributary_last_run_bytes{job=\"nightly\"} 5678
# HELP tributary_last_run_exit_code The exit code of the job's last run (0: success; see docs/scheduling.md).
# TYPE tributary_last_run_exit_code gauge
tributary_last_run_exit_code{job=\"nightly\"} 0
# HELP tributary_last_run_tasks Tasks (shards, or partitions of shards) the job's last run planned.
# TYPE tributary_last_run_tasks gauge
tributary_last_run_tasks{job=\"nightly\"} 3
# HELP tributary_last_run_tasks_failed Tasks of the job's last run that failed (not those cancelled because of them).
# TYPE tributary_last_run_tasks_failed gauge
tributary_last_run_tasks_failed{job=\"nightly\"} 0
"
        );
        assert_eq!(parse(&text).len(), FAMILIES.len());
    }

    #[test]
    fn a_failed_run_carries_the_last_success_over() {
        let first = render("", &run("nightly", 0, 1_000_000));
        let failed = render(&first, &run("nightly", 5, 2_000_000));
        assert_eq!(value(&failed, LAST_RUN, "nightly").unwrap(), "2000");
        assert_eq!(value(&failed, LAST_SUCCESS, "nightly").unwrap(), "1000");
        assert_eq!(
            value(&failed, "tributary_last_run_exit_code", "nightly").unwrap(),
            "5"
        );
        // And again: a second failure still carries it.
        let again = render(&failed, &run("nightly", 6, 3_000_000));
        assert_eq!(value(&again, LAST_SUCCESS, "nightly").unwrap(), "1000");
        // A success replaces it.
        let ok = render(&again, &run("nightly", 0, 4_000_000));
        assert_eq!(value(&ok, LAST_SUCCESS, "nightly").unwrap(), "4000");
    }

    #[test]
    fn a_run_without_tasks_keeps_the_last_success_unless_it_succeeded() {
        let first = render("", &run("nightly", 0, 1_000_000));
        let end = SystemTime::UNIX_EPOCH + Duration::from_secs(2000);
        let locked = render(&first, &RunMetrics::without_tasks("nightly", 9, end));
        assert_eq!(value(&locked, LAST_SUCCESS, "nightly").unwrap(), "1000");
        assert_eq!(value(&locked, LAST_RUN, "nightly").unwrap(), "2000");
        assert_eq!(
            value(&locked, "tributary_last_run_tasks", "nightly").unwrap(),
            "0"
        );
        let done = render(&first, &RunMetrics::without_tasks("nightly", 0, end));
        assert_eq!(value(&done, LAST_SUCCESS, "nightly").unwrap(), "2000");
    }

    #[test]
    fn a_failed_run_with_no_success_on_record_writes_no_success_time() {
        for previous in ["", "garbage\n", &render("", &run("other", 0, 1_000))] {
            let text = render(previous, &run("nightly", 4, 2_000_000));
            assert_eq!(value(&text, LAST_SUCCESS, "nightly"), None, "{text}");
            assert_eq!(value(&text, LAST_RUN, "nightly").unwrap(), "2000");
        }
    }

    #[test]
    fn other_jobs_series_and_families_are_kept() {
        let previous = format!(
            "{}# HELP node_custom Something else.\n# TYPE node_custom counter\nnode_custom_total{{a=\"1\"}} 7 1700000000000\n",
            render("", &run("zeta", 0, 1_000_000))
        );
        let text = render(&previous, &run("alpha", 4, 2_000_000));
        assert_eq!(value(&text, LAST_SUCCESS, "zeta").unwrap(), "1000");
        assert_eq!(value(&text, LAST_RUN, "zeta").unwrap(), "1000");
        assert_eq!(value(&text, LAST_RUN, "alpha").unwrap(), "2000");
        assert!(
            text.ends_with(
                "# HELP node_custom Something else.\n# TYPE node_custom counter\nnode_custom_total{a=\"1\"} 7 1700000000000\n"
            ),
            "{text}"
        );
        // One HELP and TYPE per family, the jobs' series in order of their names.
        let families = parse(&text);
        let run_family = families.iter().find(|f| f.name == LAST_RUN).unwrap();
        let jobs: Vec<_> = run_family.samples.iter().map(|s| s.job()).collect();
        assert_eq!(jobs, [Some("alpha"), Some("zeta")]);
        assert_eq!(text.matches(&format!("# TYPE {LAST_RUN} ")).count(), 1);
        // The job's own series are replaced, not added to.
        let twice = render(&text, &run("alpha", 0, 3_000_000));
        assert_eq!(twice.matches("job=\"alpha\"").count(), FAMILIES.len());
    }

    #[test]
    fn label_values_are_escaped_and_read_back() {
        let job = "a \"quoted\" C:\\path\nline";
        let text = render("", &run(job, 0, 1_000));
        assert!(
            text.contains(r#"tributary_last_run_rows{job="a \"quoted\" C:\\path\nline"} 1234"#),
            "{text}"
        );
        assert_eq!(
            value(&text, "tributary_last_run_rows", job).unwrap(),
            "1234"
        );
        assert_eq!(escape_help("a\\b\nc"), r"a\\b\nc");
        // A failed run of the same job finds its success through the escaping.
        let failed = render(&text, &run(job, 3, 2_000_000));
        assert_eq!(value(&failed, LAST_SUCCESS, job).unwrap(), "1");
    }

    #[test]
    fn samples_are_parsed_as_the_format_allows_and_garbage_is_dropped() {
        let s = parse_sample(r#"m_x{a="1", b="x\\y\"z\n",} -1.5e3 1700000000000"#).unwrap();
        assert_eq!(s.name, "m_x");
        assert_eq!(
            s.labels,
            [("a".into(), "1".into()), ("b".into(), "x\\y\"z\n".into())]
        );
        assert_eq!(s.value, "-1.5e3");
        assert_eq!(s.timestamp.as_deref(), Some("1700000000000"));
        assert_eq!(parse_sample("up 1").unwrap().labels, []);
        assert_eq!(parse_sample("up{} +Inf").unwrap().value, "+Inf");
        for bad in [
            "1up 1",
            "up",
            "up one",
            "up 1 2 3",
            "up 1 soon",
            r#"up{a="1" 1"#,
            r#"up{a=1} 1"#,
            r#"up{a="1} 1"#,
            r#"up{9a="1"} 1"#,
        ] {
            assert_eq!(parse_sample(bad), None, "{bad}");
        }
        let families = parse(
            "# a comment\nup 1\n\nnot a sample line\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_sum 3\n",
        );
        let names: Vec<_> = families.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["up", "h"]);
        assert_eq!(families[1].samples.len(), 2);
    }
}
