//! The output's files: temporaries are judged stale by their lock, and the JSON report
//! is written like the output.

use std::fs::File;

use tributary::sink::TempFile;

use crate::harness;

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
        tasks: Vec::new(),
        output: None,
        elapsed: std::time::Duration::from_millis(1500),
        snapshots: Default::default(),
        consistent: true,
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
