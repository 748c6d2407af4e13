//! `tributary snapshot export`: one snapshot of every PostgreSQL shard, held open for the
//! slices of a run split across machines, which import them (`run --snapshots FILE`).
//!
//! An exported snapshot can be imported only while the transaction that exported it is
//! open, so this process is the snapshots' lifetime: it opens one REPEATABLE READ READ
//! ONLY transaction per shard, exports its snapshot, writes the ids to the file
//! (atomically) and waits, its transactions idle, until it is stopped (SIGTERM, Ctrl-C),
//! `--hold` elapses or the file is removed; then it ends them and removes the file. A slice imports each
//! snapshot once, when it plans, and exports it again from its own transaction for its
//! tasks, so a slice that started goes on whatever becomes of this process.

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use tokio::sync::mpsc;

use std::sync::Arc;

use crate::config::slices::{SliceAssignment, SnapshotsFile};
use crate::config::{CheckTarget, JobConfig, Snapshots, SourceConfig};
use crate::error::{Error, Result};
use crate::source::{ShardPool, SnapshotSession};
use crate::{dispatch, plan};

/// How an export ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Released {
    /// Stopped by a signal (its name).
    Signal(&'static str),
    /// `--hold` elapsed.
    Held(Duration),
    /// The file was removed.
    Removed,
}

/// Exports the snapshots of `target`'s PostgreSQL shards to `output` and holds them until
/// `stop` resolves or `hold` elapses; `exported` is told the file's contents once it is
/// written. A shard that cannot export, or whose session ends while held, fails the
/// export (its snapshot could no longer be imported).
pub async fn export(
    target: &CheckTarget,
    output: &Path,
    hold: Option<Duration>,
    stop: impl Future<Output = &'static str>,
    exported: impl FnOnce(&SnapshotsFile),
) -> Result<Released> {
    let (lost_tx, mut lost) = mpsc::unbounded_channel();
    let mut sessions: Vec<SnapshotSession> = Vec::new();
    let mut file = SnapshotsFile {
        version: 1,
        writer: format!("tributary {}", env!("CARGO_PKG_VERSION")),
        exported_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        holder: format!(
            "tributary snapshot export (pid {} on {})",
            std::process::id(),
            hostname()
        ),
        snapshots: Default::default(),
        slices: None,
    };
    let shards: Vec<_> = target
        .shards
        .iter()
        .filter(|s| matches!(s.source, SourceConfig::Postgres(_)))
        .collect();
    if shards.is_empty() {
        return Err(Error::config(
            None,
            "no PostgreSQL shard: only PostgreSQL shares a snapshot between connections",
        ));
    }
    let opened = futures_util::future::join_all(shards.iter().map(|shard| {
        let lost_tx = lost_tx.clone();
        async move {
            let pool = ShardPool::open(shard, 1, &target.options)?;
            pool.export_snapshot(&lost_tx, None).await
        }
    }))
    .await;
    for (shard, session) in shards.iter().zip(opened) {
        match session {
            Ok(Some(session)) => {
                file.snapshots
                    .insert(shard.name.clone(), session.id.clone());
                sessions.push(session);
            }
            Ok(None) => unreachable!("a PostgreSQL shard exports its snapshot"),
            Err(e) => {
                close(sessions).await;
                return Err(e.into());
            }
        }
    }
    // With the run's query and slices: the run planned in these snapshots, its tasks
    // dealt to the slices by their row estimates.
    if let Some(config) = &target.job
        && let Some(slicing) = config.options.slicing
    {
        match deal(config, slicing.count, output, &file).await {
            Ok(slices) => file.slices = Some(slices),
            Err(e) => {
                close(sessions).await;
                return Err(e);
            }
        }
    }
    let text = serde_json::to_vec_pretty(&file).expect("serialisable");
    if let Err(e) = crate::sink::write_atomically(output, &text) {
        close(sessions).await;
        return Err(e);
    }
    exported(&file);
    let held = async {
        match hold {
            Some(hold) => tokio::time::sleep(hold).await,
            None => std::future::pending().await,
        }
    };
    // Removing the file (a cleanup step on another machine sharing its volume) releases
    // the snapshots too.
    let removed = async {
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            if matches!(std::fs::exists(output), Ok(false)) {
                break;
            }
        }
    };
    let ended = tokio::select! {
        signal = stop => Ok(Released::Signal(signal)),
        () = held => Ok(Released::Held(hold.unwrap_or_default())),
        () = removed => Ok(Released::Removed),
        Some(shard) = lost.recv() => Err(Error::output(
            output,
            format!("the session holding shard {shard}'s snapshot ended: the slices that have not started cannot import it"),
        )),
    };
    let _ = std::fs::remove_file(output);
    close(sessions).await;
    ended
}

/// Plans `config`'s run reading the snapshots `file` names (as its slices will) and deals
/// its tasks to `count` slices by PostgreSQL's row estimates.
async fn deal(
    config: &JobConfig,
    count: usize,
    output: &Path,
    file: &SnapshotsFile,
) -> Result<SliceAssignment> {
    let mut config = config.clone();
    config.options.snapshots = Some(Arc::new(Snapshots {
        path: output.to_owned(),
        holder: file.holder.clone(),
        ids: file.snapshots.clone(),
        slices: None,
    }));
    let planned = dispatch::open_and_plan(&config).await?;
    if let Some(failed) = planned.plan.failed.first().cloned() {
        planned.close().await;
        return Err(failed.into());
    }
    if !planned.plan.deferred.is_empty() {
        planned.close().await;
        return Err(Error::config(
            None,
            "the run's partitions could not be planned",
        ));
    }
    if let Err(e) = plan::slices::check_count(planned.plan.tasks.len(), count) {
        planned.close().await;
        return Err(Error::config(None, e));
    }
    let rows = planned.estimates().await;
    let slices = plan::slices::assign_by_rows(&planned.plan.tasks, count, &rows);
    let assignment = plan::slices::record(&planned.plan, count, &slices, &rows);
    planned.close().await;
    Ok(assignment)
}

async fn close(sessions: Vec<SnapshotSession>) {
    for session in sessions {
        session.close().await;
    }
}

/// This machine's name, for the file's `holder`.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "this machine".into())
}
