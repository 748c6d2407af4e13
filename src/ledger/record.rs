//! A run under the ledger: lock, skip when already done, run, record.

use std::borrow::Cow;
use std::future::Future;
use std::path::PathBuf;

use super::{Begin, FileRecord, Holder, Ledger};
use crate::config::JobConfig;
use crate::error::{Error, Result};
use crate::report::RunReport;

/// How a recorded run went.
#[derive(Debug)]
pub enum Recorded {
    /// The job ran.
    Ran(Box<Ran>),
    /// The output table already holds this run (its application transaction): nothing
    /// ran.
    InTable(crate::sink::delta::InTable),
    /// An identical run had succeeded and its files are intact: nothing ran.
    Skipped {
        run: i64,
        previous: i64,
        ended_at: String,
        files: Vec<PathBuf>,
    },
}

/// A run that ran, and what the ledger made of it.
#[derive(Debug)]
pub struct Ran {
    pub report: RunReport,
    pub result: Result<()>,
    /// Its id in the ledger, when there is one.
    pub run: Option<i64>,
    /// The dead run whose lock this one took over.
    pub took_over: Option<Holder>,
    /// Recording the end failed: the run's outcome stands, the ledger does not know it
    /// (the next run runs again).
    pub unrecorded: Option<Error>,
}

/// Runs `config` as [`crate::run`] does, under its ledger when it has one: fails with
/// [`Error::Locked`] while another run of the job holds its lock, skips the run when an
/// identical one already succeeded (for jobs, unless forced), and records the run with
/// its tasks and files.
pub async fn run_recorded(
    config: &JobConfig,
    interactive: bool,
    interrupt: impl Future<Output = &'static str>,
) -> Result<Recorded> {
    if let Some(table) = &config.options.table
        && let Some(done) = crate::sink::delta::check(config, table).await?
    {
        return Ok(Recorded::InTable(done));
    }
    let Some(path) = &config.ledger.path else {
        return Ok(unrecorded(config, interactive, interrupt).await);
    };
    let ledger = match Ledger::open(path).await {
        Ok(ledger) => ledger,
        // The default place may be unwritable (a read-only home in a container): a run
        // that needs no mark goes on, unrecorded and unlocked, and says so.
        Err(e) if !config.ledger.chosen && config.incremental.is_none() => {
            tracing::warn!(
                "{e}; this run is not recorded and takes no lock (give --ledger PATH, or --no-ledger to say so)"
            );
            return Ok(unrecorded(config, interactive, interrupt).await);
        }
        Err(e) => return Err(e),
    };
    let config = with_marks_from(&ledger, config).await?;
    let config = config.as_ref();
    let started = match ledger
        .begin(config, !config.ledger.skip_done, config.ledger.lock_timeout)
        .await?
    {
        Begin::Done {
            run,
            previous,
            ended_at,
            files,
        } => {
            return Ok(Recorded::Skipped {
                run,
                previous,
                ended_at,
                files,
            });
        }
        Begin::Run(started) => started,
    };
    if let Some(holder) = &started.took_over {
        tracing::warn!("took over the lock of {holder}, whose process is gone");
    }
    let (report, result) = crate::run(config, interactive, interrupt).await;
    let files = match (&result, &report.output) {
        // A remote output's objects, as they were sent (nothing is read back).
        (Ok(()), Some(output)) if !output.remote.is_empty() => Ok(output
            .remote
            .iter()
            .map(|o| FileRecord {
                path: PathBuf::from(&o.url),
                bytes: o.bytes,
                sha256: o.sha256.clone(),
                e_tag: o.e_tag.clone(),
            })
            .collect()),
        (Ok(()), Some(output)) => {
            let paths: Vec<PathBuf> = output
                .files
                .iter()
                .chain(&output.manifest)
                .cloned()
                .collect();
            tokio::task::spawn_blocking(move || {
                paths
                    .iter()
                    .map(|p| {
                        FileRecord::of(p).map_err(|e| {
                            Error::output(p, format!("cannot read back to record it: {e}"))
                        })
                    })
                    .collect::<Result<Vec<_>>>()
            })
            .await
            .expect("hashing does not panic")
        }
        _ => Ok(Vec::new()),
    };
    let exit_code = result.as_ref().err().map_or(0, Error::exit_code);
    // Without its files' checksums the run is recorded all the same, and the next run
    // of the job does not take it for done.
    let (files, unreadable) = match files {
        Ok(files) => (files, None),
        Err(e) => (Vec::new(), Some(e)),
    };
    let unrecorded = ledger
        .finish(
            &started,
            &report,
            result.as_ref().err(),
            exit_code,
            &files,
            config
                .incremental
                .as_ref()
                .map(|inc| (config.name.as_str(), inc.column.as_str())),
        )
        .await
        .err()
        .or(unreadable);
    Ok(Recorded::Ran(Box::new(Ran {
        report,
        result,
        run: Some(started.run),
        took_over: started.took_over,
        unrecorded,
    })))
}

/// A run without a ledger: nothing recorded, no lock, nothing skipped.
async fn unrecorded(
    config: &JobConfig,
    interactive: bool,
    interrupt: impl Future<Output = &'static str>,
) -> Recorded {
    let (report, result) = crate::run(config, interactive, interrupt).await;
    Recorded::Ran(Box::new(Ran {
        report,
        result,
        run: None,
        took_over: None,
        unrecorded: None,
    }))
}

/// `config` with the marks its last successful run recorded, when it is incremental.
async fn with_marks_from<'a>(ledger: &Ledger, config: &'a JobConfig) -> Result<Cow<'a, JobConfig>> {
    let Some(inc) = &config.incremental else {
        return Ok(Cow::Borrowed(config));
    };
    let last = ledger.marks(&config.name, &inc.column).await?;
    let mut config = config.clone();
    if let Some(inc) = &mut config.incremental {
        inc.last = last;
    }
    Ok(Cow::Owned(config))
}

/// `config` as its next run would read: an incremental job with the marks in its ledger
/// (none when the ledger does not exist yet), for `tributary plan`.
pub async fn with_marks(config: &JobConfig) -> Result<JobConfig> {
    match (&config.incremental, &config.ledger.path) {
        (Some(_), Some(path)) if path.exists() => {
            let ledger = Ledger::open(path).await?;
            Ok(with_marks_from(&ledger, config).await?.into_owned())
        }
        _ => Ok(config.clone()),
    }
}
