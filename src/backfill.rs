//! `tributary backfill`: a job run once per step of a date range, each step with its
//! `--as-of` set to the step, so that the job's relative dates (`@yesterday`,
//! `@month_start`) and templated output name each step's own period. Steps that already
//! succeeded are skipped through the ledger; at most `parallel` run at once.

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::{Months, NaiveDate, NaiveDateTime, NaiveTime};
use futures_util::{FutureExt, StreamExt};

use crate::config::{JobConfig, RunArgs};
use crate::error::{Error, Result, exit};
use crate::ledger::{Recorded, run_recorded};

/// How far apart the steps are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Hours(u32),
    Days(u32),
    Weeks(u32),
    Months(u32),
}

impl std::str::FromStr for Step {
    type Err = String;

    /// `1d`, `6h`, `2w`, `1m`.
    fn from_str(s: &str) -> std::result::Result<Step, String> {
        let s = s.trim();
        let bad =
            || format!("step `{s}`: expected a count and a unit, h, d, w or m (e.g. 1d, 6h, 1m)");
        let unit = s.chars().last().ok_or_else(bad)?;
        let n: u32 = s[..s.len() - unit.len_utf8()].parse().map_err(|_| bad())?;
        if n == 0 {
            return Err(format!("step `{s}` must be at least 1"));
        }
        Ok(match unit {
            'h' => Step::Hours(n),
            'd' => Step::Days(n),
            'w' => Step::Weeks(n),
            'm' => Step::Months(n),
            _ => return Err(bad()),
        })
    }
}

/// A backfill: the job (its arguments, `as_of` aside), the range and how to walk it.
#[derive(Debug, Clone)]
pub struct Backfill {
    pub run: RunArgs,
    /// The first step (a date, or a timestamp without zone: wall time in the job's zone).
    pub from: String,
    /// The end of the range, excluded.
    pub to: String,
    pub step: Step,
    /// Steps running at once.
    pub parallel: usize,
    /// No step starts once one has failed.
    pub fail_fast: bool,
}

/// How one step went.
#[derive(Debug)]
pub enum Outcome {
    Ran {
        rows: u64,
        output: Option<PathBuf>,
    },
    /// Already done by run `previous`, whose files are intact.
    Skipped {
        previous: i64,
    },
    /// Already committed to the output table (application id `app_id`).
    InTable {
        app_id: String,
    },
    Failed {
        code: i32,
        message: String,
    },
    /// Not started: an earlier step failed and `--fail-fast` was given, or the backfill
    /// was interrupted.
    NotRun,
}

#[derive(Debug)]
pub struct StepResult {
    /// The step's `--as-of`.
    pub as_of: String,
    pub outcome: Outcome,
    pub elapsed: Duration,
}

impl StepResult {
    /// The step's line in the backfill's output.
    pub fn line(&self) -> String {
        let what = match &self.outcome {
            Outcome::Ran { rows, output } => format!(
                "succeeded  {rows} rows in {:.1} s{}",
                self.elapsed.as_secs_f64(),
                output
                    .as_ref()
                    .map(|p| format!(" -> {}", p.display()))
                    .unwrap_or_default()
            ),
            Outcome::Skipped { previous } => format!("skipped    already done by run {previous}"),
            Outcome::InTable { app_id } => {
                format!("skipped    already in the table (application id {app_id})")
            }
            Outcome::Failed { code, message } => format!("failed     exit {code}: {message}"),
            Outcome::NotRun => "not run".into(),
        };
        format!("{}  {what}", self.as_of)
    }
}

/// The steps' `--as-of` values: `from`, `from + step`, ... before `to`.
pub fn steps(from: &str, to: &str, step: Step) -> std::result::Result<Vec<String>, String> {
    let parse = |name: &str, s: &str| -> std::result::Result<(NaiveDateTime, bool), String> {
        let s = s.trim();
        if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
            return Ok((d.and_time(NaiveTime::MIN), true));
        }
        for format in ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M"] {
            if let Ok(t) = NaiveDateTime::parse_from_str(s, format) {
                return Ok((t, false));
            }
        }
        Err(format!(
            "--{name} `{s}`: expected a date (2025-01-01) or a timestamp without zone (2025-01-01T06:00:00, wall time in the job's time zone)"
        ))
    };
    let (from_t, from_date) = parse("from", from)?;
    let (to_t, _) = parse("to", to)?;
    if to_t <= from_t {
        return Err(format!("--to {to} must come after --from {from}"));
    }
    let dates = from_date && !matches!(step, Step::Hours(_));
    let mut out = Vec::new();
    let mut t = from_t;
    let mut k: u32 = 0;
    while t < to_t {
        out.push(if dates {
            t.date().format("%Y-%m-%d").to_string()
        } else {
            t.format("%Y-%m-%dT%H:%M:%S").to_string()
        });
        k += 1;
        // From the start each time, so that month steps keep the day (Jan 31, Feb 28,
        // Mar 31) rather than drift.
        t = match step {
            Step::Hours(n) => from_t + chrono::Duration::hours(i64::from(n) * i64::from(k)),
            Step::Days(n) => from_t + chrono::Duration::days(i64::from(n) * i64::from(k)),
            Step::Weeks(n) => from_t + chrono::Duration::weeks(i64::from(n) * i64::from(k)),
            Step::Months(n) => from_t
                .checked_add_months(Months::new(n * k))
                .ok_or_else(|| "the range runs past the calendar".to_string())?,
        };
        if out.len() > 100_000 {
            return Err("more than 100000 steps: use a larger --step".into());
        }
    }
    Ok(out)
}

/// Runs the backfill, printing each step's line as it ends; returns the job's name and
/// every step's result in step order. `interrupt` stops the running steps (their statements
/// cancelled) and starts no more.
pub async fn run(
    backfill: &Backfill,
    interrupt: impl Future<Output = &'static str> + Send + 'static,
) -> Result<(String, Vec<StepResult>)> {
    if backfill.run.as_of.is_some() {
        return Err(Error::config(
            None,
            "backfill sets each step's --as-of itself",
        ));
    }
    let steps =
        steps(&backfill.from, &backfill.to, backfill.step).map_err(|e| Error::config(None, e))?;
    // Every step's job must resolve before any runs: a mistake in the job file fails
    // the backfill at once rather than once per step.
    let mut configs = Vec::with_capacity(steps.len());
    for as_of in &steps {
        let args = RunArgs {
            as_of: Some(as_of.clone()),
            ..backfill.run.clone()
        };
        configs.push(JobConfig::resolve(args)?);
    }
    let name = configs.first().map(|c| c.name.clone()).unwrap_or_default();
    let interrupt = interrupt.shared();
    let stopped = AtomicBool::new(false);
    let results = futures_util::stream::iter(steps.into_iter().zip(configs))
        .map(|(as_of, config)| {
            let interrupt = interrupt.clone();
            let stopped = &stopped;
            async move {
                let started = Instant::now();
                if stopped.load(Ordering::Relaxed) {
                    return StepResult {
                        as_of,
                        outcome: Outcome::NotRun,
                        elapsed: Duration::ZERO,
                    };
                }
                let outcome = step(&config, interrupt).await;
                if let Outcome::Failed { code, .. } = &outcome
                    && (backfill.fail_fast
                        || *code == exit::INTERRUPTED
                        || *code == exit::TERMINATED)
                {
                    stopped.store(true, Ordering::Relaxed);
                }
                let result = StepResult {
                    as_of,
                    outcome,
                    elapsed: started.elapsed(),
                };
                println!("{}", result.line());
                result
            }
        })
        .buffer_unordered(backfill.parallel.max(1))
        .collect::<Vec<_>>()
        .await;
    let mut results = results;
    results.sort_by(|a, b| a.as_of.cmp(&b.as_of));
    Ok((name, results))
}

async fn step(config: &JobConfig, interrupt: impl Future<Output = &'static str>) -> Outcome {
    match run_recorded(config, false, interrupt).await {
        Err(e) => Outcome::Failed {
            code: e.exit_code(),
            message: crate::error::chain(&e),
        },
        Ok(Recorded::Skipped { previous, .. }) => Outcome::Skipped { previous },
        Ok(Recorded::InTable(done)) => Outcome::InTable {
            app_id: done.app_id,
        },
        Ok(Recorded::Ran(ran)) => match ran.result {
            Ok(()) => Outcome::Ran {
                rows: ran.report.output.as_ref().map_or(0, |o| o.rows),
                output: ran.report.output.as_ref().map(|o| o.path.clone()),
            },
            Err(e) => Outcome::Failed {
                code: e.exit_code(),
                message: crate::error::chain(&e),
            },
        },
    }
}

/// The backfill's closing summary, and its exit code: the first failed step's, else 0.
pub fn summary(job: &str, results: &[StepResult]) -> (String, i32) {
    let count = |f: fn(&Outcome) -> bool| results.iter().filter(|r| f(&r.outcome)).count();
    let ran = count(|o| matches!(o, Outcome::Ran { .. }));
    let skipped = count(|o| matches!(o, Outcome::Skipped { .. } | Outcome::InTable { .. }));
    let failed = count(|o| matches!(o, Outcome::Failed { .. }));
    let not_run = count(|o| matches!(o, Outcome::NotRun));
    let mut text = format!(
        "backfill of job `{job}`: {} steps, {ran} ran, {skipped} skipped (already done), {failed} failed",
        results.len()
    );
    if not_run > 0 {
        text.push_str(&format!(", {not_run} not run"));
    }
    text.push('\n');
    for r in results {
        text.push_str("  ");
        text.push_str(&r.line());
        text.push('\n');
    }
    let code = results
        .iter()
        .find_map(|r| match r.outcome {
            Outcome::Failed { code, .. } => Some(code),
            _ => None,
        })
        .unwrap_or(if not_run > 0 {
            exit::FAILURE
        } else {
            exit::SUCCESS
        });
    (text, code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_walk_the_range_and_leave_its_end_out() {
        assert_eq!(
            steps("2025-01-30", "2025-02-02", Step::Days(1)).unwrap(),
            ["2025-01-30", "2025-01-31", "2025-02-01"]
        );
        assert_eq!(
            steps("2024-01-31", "2024-06-01", Step::Months(1)).unwrap(),
            [
                "2024-01-31",
                "2024-02-29",
                "2024-03-31",
                "2024-04-30",
                "2024-05-31"
            ]
        );
        assert_eq!(
            steps("2025-03-01", "2025-03-01T12:00:00", Step::Hours(6)).unwrap(),
            ["2025-03-01T00:00:00", "2025-03-01T06:00:00"]
        );
        assert_eq!(
            steps("2025-01-01", "2025-01-15", Step::Weeks(1))
                .unwrap()
                .len(),
            2
        );
        assert!(steps("2025-02-01", "2025-01-01", Step::Days(1)).is_err());
        assert!(
            steps("yesterday", "2025-01-01", Step::Days(1))
                .unwrap_err()
                .contains("--from")
        );
    }

    #[test]
    fn steps_parse() {
        assert_eq!("1d".parse::<Step>(), Ok(Step::Days(1)));
        assert_eq!("6h".parse::<Step>(), Ok(Step::Hours(6)));
        assert_eq!("2w".parse::<Step>(), Ok(Step::Weeks(2)));
        assert_eq!("1m".parse::<Step>(), Ok(Step::Months(1)));
        assert!("0d".parse::<Step>().is_err());
        assert!("d".parse::<Step>().is_err());
        assert!("1y".parse::<Step>().is_err());
    }
}
