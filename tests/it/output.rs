//! The output as a unit: a split output's manifest is its commit point, part row counts
//! are the rows the parts hold, temporaries are judged stale by their lock, and the JSON
//! report is written like the output.

use std::fs::File;
use std::path::Path;

use tributary::sink::{Manifest, TempFile};

use crate::harness::{self, Job, i64_column};
use crate::proxy::{Fault, Proxy};

const ROWS: &str = "CREATE TABLE t AS SELECT g::bigint AS id, repeat(md5(g::text), 4) AS pad FROM generate_series(1, 60000) g;";

/// The manifest beside `dir/out.parquet`, if there is one.
fn manifest(dir: &Path) -> Option<Manifest> {
    let text = std::fs::read(dir.join("out.manifest.json")).ok()?;
    Some(serde_json::from_slice(&text).expect("the manifest parses"))
}

/// The `out-*.parquet` names in `dir`, sorted: what a reader globbing the parts finds.
fn globbed(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("out-") && n.ends_with(".parquet"))
        .collect();
    names.sort();
    names
}

fn rows_in(path: &Path) -> Vec<i64> {
    i64_column(&harness::read_batch(path), "id")
        .into_iter()
        .map(Option::unwrap)
        .collect()
}

/// Checks that the manifest lists exactly the parts a glob finds, with their true rows
/// and sizes, and returns the ids of all parts in order.
fn check_manifest(dir: &Path, manifest: &Manifest) -> Vec<i64> {
    let listed: Vec<String> = manifest.parts.iter().map(|p| p.file.clone()).collect();
    assert_eq!(globbed(dir), listed, "the parts beside the manifest");
    let mut ids = Vec::new();
    for part in &manifest.parts {
        let path = dir.join(&part.file);
        let rows = rows_in(&path);
        assert_eq!(rows.len() as u64, part.rows, "{}", part.file);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), part.bytes);
        ids.extend(rows);
    }
    assert_eq!(manifest.rows, ids.len() as u64);
    ids
}

#[tokio::test]
async fn a_split_output_is_committed_by_its_manifest_and_a_rerun_cleans_an_interrupted_one() {
    let url = harness::database("output_manifest", ROWS).await;
    let mut job = Job::new("SELECT id, pad FROM t WHERE id <= 35000", &[("s", &url)]);
    job.args.row_group_size = Some(2500);
    job.args.max_file_rows = Some(10_000);
    let dir = job.dir.path().to_owned();
    let (report, result) = job.run().await;
    result.unwrap_or_else(|e| panic!("{e}\n{report}"));
    let summary = report.output.clone().unwrap();
    assert_eq!(
        summary.manifest.as_deref(),
        Some(&*dir.join("out.manifest.json"))
    );
    assert!(report.to_string().contains("out.manifest.json"), "{report}");
    let first = manifest(&dir).expect("a manifest");
    assert_eq!(
        first.parts.iter().map(|p| p.rows).collect::<Vec<_>>(),
        [10_000, 10_000, 10_000, 5_000]
    );
    assert_eq!(
        check_manifest(&dir, &first),
        (1..=35_000).collect::<Vec<_>>()
    );

    // A second run of three parts cannot move its part 1 into place (a directory is in
    // the way): it stops between part renames, as a crash there would.
    std::fs::write(
        dir.join("query2.sql"),
        "SELECT id, pad FROM t WHERE id <= 25000",
    )
    .unwrap();
    job.args.query = Some(dir.join("query2.sql"));
    std::fs::remove_file(dir.join("out-00001.parquet")).unwrap();
    std::fs::create_dir(dir.join("out-00001.parquet")).unwrap();
    std::fs::write(dir.join("out-00001.parquet/keep"), b"x").unwrap();
    let (report, result) = job.run().await;
    let err = result.expect_err("the part cannot be moved into place");
    assert_eq!(err.exit_code(), tributary::error::exit::OUTPUT, "{err}");
    assert!(err.to_string().contains("out-00001.parquet"), "{err}");
    assert!(report.output.is_none());
    // The previous run's manifest went before any part was moved: no manifest says the
    // output is not committed, whatever parts of either run lie beside it.
    assert!(
        manifest(&dir).is_none(),
        "a manifest survived an interrupted commit"
    );
    harness::assert_no_temporaries(&dir);

    // Once the obstacle is gone, a rerun commits and removes what the last one left.
    std::fs::remove_dir_all(dir.join("out-00001.parquet")).unwrap();
    let (report, result) = job.run().await;
    result.unwrap_or_else(|e| panic!("{e}\n{report}"));
    let second = manifest(&dir).expect("a manifest");
    assert_eq!(
        second.parts.iter().map(|p| p.rows).collect::<Vec<_>>(),
        [10_000, 10_000, 5_000]
    );
    assert_eq!(
        check_manifest(&dir, &second),
        (1..=25_000).collect::<Vec<_>>(),
        "part 3 of the first run is gone"
    );
    harness::assert_no_temporaries(&dir);
}

#[tokio::test]
async fn split_parts_count_the_rows_they_hold_when_a_task_is_retried() {
    // The first attempt is cut after ~27,000 rows, in row groups of 1,000 and files of
    // 2,000: whole files hold only rows that are left out, and the file being filled
    // when it fails holds some.
    harness::database("output_retry_split", ROWS).await;
    let db = harness::db("output_retry_split");
    // The first connection (the first attempt's stream) is cut after 4 MB, about 27,000
    // rows: what was in flight when it closed may be lost, but most has been decoded and
    // written by then. The retry's connection goes through.
    let proxy = Proxy::failing_first(Fault::CutAfter(4_000_000)).await;
    let mut job = Job::new("SELECT id, pad FROM t", &[("s", &proxy.url(&db))]);
    job.args.row_group_size = Some(1000);
    job.args.max_file_rows = Some(2000);
    let mut config = tributary::JobConfig::resolve(job.args.clone()).unwrap();
    config.options.batch_size = 500;
    let (report, result) = tributary::run(&config, false, std::future::pending()).await;
    result.unwrap_or_else(|e| panic!("{e}\n{report}"));
    assert_eq!(report.tasks[0].attempts, 2, "{report}");
    let output = report.output.clone().unwrap();
    let rows: Vec<usize> = output.files.iter().map(|f| rows_in(f).len()).collect();
    // Before parts were counted by the rows they hold, the files filled by the cut
    // attempt came out empty, and the one being filled short.
    assert_eq!(rows, vec![2000; 30], "every part full, none empty");
    let dir = job.dir.path();
    let manifest = manifest(dir).expect("a manifest");
    let rows: Vec<u64> = manifest.parts.iter().map(|p| p.rows).collect();
    assert_eq!(rows, vec![2000; 30]);
    assert_eq!(
        check_manifest(dir, &manifest),
        (1..=60_000).collect::<Vec<_>>()
    );
    assert_eq!(output.files.len(), 30);
    harness::assert_no_temporaries(dir);
}

#[test]
fn a_temporary_is_stale_when_its_lock_can_be_taken_whatever_its_pid() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("out.parquet");
    // PID 1 runs in every namespace; no process has this high a PID.
    let unlocked = dir.path().join(".out.parquet.tributary-1-1.tmp");
    let locked = dir.path().join(".out.parquet.tributary-4194000-2.tmp");
    std::fs::write(&unlocked, b"left by a crash").unwrap();
    std::fs::write(&locked, b"being written").unwrap();
    let holder = File::open(&locked).unwrap();
    holder.lock().unwrap();
    // Another target's temporary is not this run's business.
    let other = dir.path().join(".other.parquet.tributary-1-3.tmp");
    std::fs::write(&other, b"").unwrap();

    let temp = TempFile::create(&target).unwrap();
    assert!(!unlocked.exists(), "an unlocked temporary is stale");
    assert!(locked.exists(), "a locked temporary belongs to a live run");
    assert!(other.exists());
    // The new temporary is locked for as long as it lives.
    let probe = File::open(temp.path()).unwrap();
    assert!(
        matches!(probe.try_lock(), Err(std::fs::TryLockError::WouldBlock)),
        "a live temporary can be locked by another"
    );
    let path = temp.path().to_owned();
    drop(temp);
    assert!(!path.exists(), "dropped uncommitted, removed");

    drop(holder);
    let temp = TempFile::create(&target).unwrap();
    assert!(!locked.exists(), "its owner is gone");
    drop(temp);
}

#[test]
fn the_report_is_written_atomically_into_its_directory_even_a_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reports/run.json");
    std::fs::create_dir(dir.path().join("reports")).unwrap();
    let stale = dir.path().join("reports/.run.json.tributary-1-9.tmp");
    std::fs::write(&stale, b"{").unwrap();
    let report = tributary::RunReport {
        inputs: Default::default(),
        tasks: Vec::new(),
        output: None,
        elapsed: std::time::Duration::from_millis(1500),
        consistent: true,
        ..Default::default()
    };
    tributary::write_report(&path, &report, &Ok(())).unwrap();
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(json["exit_code"], 0);
    assert_eq!(json["run"]["elapsed"], 1.5);
    assert!(
        !stale.exists(),
        "a crashed run's temporary report is removed"
    );
    harness::assert_no_temporaries(&dir.path().join("reports"));

    // A directory that does not exist yet is made, as for the output.
    let nested = dir.path().join("new/run.json");
    tributary::write_report(&nested, &report, &Ok(())).unwrap();
    assert!(nested.exists());
}
