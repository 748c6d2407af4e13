//! Relative dates in parameters (`@today-2d`), through the binary: evaluated at
//! `--as-of` in the job's zone, shown by `plan`, recorded in the report and the output's
//! metadata, refused with exit 3 when malformed.

use crate::harness::{self, i64_column, stderr, str_column, succeeded, tributary_in};

#[test]
fn plan_shows_a_relative_date_evaluated_at_the_as_of() {
    let dir = tempfile::tempdir().unwrap();
    // Offline: the shard's file is never opened, and need not exist.
    harness::write_job(
        dir.path(),
        "SELECT id FROM t WHERE day = :day",
        "sqlite://never.db",
    );
    std::fs::write(
        dir.path().join("j.toml"),
        "query = \"q.sql\"\nshards = \"s.toml\"\n[params]\nday = \"@yesterday\"\n",
    )
    .unwrap();
    let out = tributary_in(
        dir.path(),
        &[
            "plan",
            "--offline",
            "--job",
            "j.toml",
            "--as-of",
            "2026-03-01",
        ],
    );
    let stdout = succeeded(&out);
    assert!(
        stdout.contains(
            "parameters (relative dates as of 2026-03-01T00:00:00+00:00 in UTC):\n  :day = \"2026-02-28\" from @yesterday\n"
        ),
        "{stdout}"
    );
    // What the task binds.
    assert!(stdout.contains("?1 = Text(\"2026-02-28\")"), "{stdout}");
}

/// A SQLite shard with a row a day from 2026-02-25 to 2026-03-02 (ids 1 to 6), the row of
/// 2026-02-28 tagged `@skip`; and a job over it keeping the days from `@today-2d` to
/// `@today+1d` (excluded) in New York, without the rows tagged `@@skip`.
fn dated_job(dir: &std::path::Path) {
    let url = harness::sqlite_shard(
        dir,
        "a.db",
        "CREATE TABLE t (id INTEGER, day TEXT, tag TEXT);
         INSERT INTO t VALUES (1, '2026-02-25', ''), (2, '2026-02-26', ''), (3, '2026-02-27', ''),
                              (4, '2026-02-28', '@skip'), (5, '2026-03-01', ''), (6, '2026-03-02', '');",
    );
    harness::write_job(
        dir,
        "SELECT id, day FROM t WHERE day >= :from AND day < :to AND tag <> :skip",
        &url,
    );
    std::fs::write(
        dir.join("j.toml"),
        r#"query = "q.sql"
shards = "s.toml"
output = "out.parquet"
timezone = "America/New_York"
[params]
from = "@today-2d"
to = "@today+1d"
skip = "@@skip"
"#,
    )
    .unwrap();
}

#[test]
fn a_run_filters_by_relative_dates_and_records_them() {
    let dir = tempfile::tempdir().unwrap();
    dated_job(dir.path());
    // 03:00 UTC on 2026-03-02 is 22:00 on 2026-03-01 in New York: `@today` is 2026-03-01
    // there (in UTC the days would be 2026-02-28 to 2026-03-02).
    let out = tributary_in(
        dir.path(),
        &[
            "run",
            "--job",
            "j.toml",
            "--as-of",
            "2026-03-02T03:00:00Z",
            "--report",
            "report.json",
        ],
    );
    succeeded(&out);
    let batch = harness::read_batch(&dir.path().join("out.parquet"));
    let mut rows: Vec<(Option<i64>, Option<String>)> = i64_column(&batch, "id")
        .into_iter()
        .zip(str_column(&batch, "day"))
        .collect();
    rows.sort();
    assert_eq!(
        rows,
        [
            (Some(3), Some("2026-02-27".to_string())),
            (Some(5), Some("2026-03-01".to_string())),
        ]
    );
    // SQLite's own answer with the dates written out.
    assert_eq!(
        harness::sqlite_query(
            &dir.path().join("a.db"),
            "SELECT group_concat(id) FROM (SELECT id FROM t WHERE day >= '2026-02-27' \
             AND day < '2026-03-02' AND tag <> '@skip' ORDER BY id)"
        ),
        "3,5\n"
    );

    let meta = harness::parquet_metadata(&dir.path().join("out.parquet"));
    assert_eq!(meta["tributary.as_of"], "2026-03-01T22:00:00-05:00");
    assert_eq!(meta["tributary.timezone"], "America/New_York");
    assert_eq!(
        meta["tributary.params"],
        r#"{"from":"2026-02-27","skip":"@skip","to":"2026-03-02"}"#
    );
    assert_eq!(
        meta["tributary.params_relative"],
        r#"{"from":"@today-2d","to":"@today+1d"}"#
    );

    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("report.json")).unwrap()).unwrap();
    let run = &report["run"];
    assert_eq!(run["as_of"], "2026-03-01T22:00:00-05:00");
    assert_eq!(run["timezone"], "America/New_York");
    assert_eq!(
        run["params"],
        serde_json::json!({
            "from": {"value": "2026-02-27", "expression": "@today-2d"},
            "to": {"value": "2026-03-02", "expression": "@today+1d"},
            "skip": {"value": "@skip"},
        })
    );
}

#[test]
fn a_malformed_relative_date_exits_3_naming_the_parameter_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    dated_job(dir.path());
    let run = |extra: &[&str]| {
        let mut args = vec!["run", "--job", "j.toml", "--report", "report.json"];
        args.extend_from_slice(extra);
        let out = tributary_in(dir.path(), &args);
        let stderr = stderr(&out);
        assert_eq!(
            out.status.code(),
            Some(tributary::error::exit::CONFIG),
            "{stderr}"
        );
        assert!(!dir.path().join("out.parquet").exists());
        assert!(!dir.path().join("report.json").exists());
        harness::assert_no_temporaries(dir.path());
        stderr
    };
    let stderr = run(&["--param", "from=@today-7x"]);
    assert!(
        stderr.contains(
            "--param from: `@today-7x` is not a relative date (unknown unit `x` in the step `-7x`)"
        ) && stderr.contains("@today, @yesterday, @now"),
        "{stderr}"
    );
    std::fs::write(
        dir.path().join("j.toml"),
        std::fs::read_to_string(dir.path().join("j.toml"))
            .unwrap()
            .replace("@today-2d", "@tomorrow"),
    )
    .unwrap();
    let stderr = run(&[]);
    assert!(
        stderr.contains("j.toml")
            && stderr.contains("params.from: `@tomorrow` is not a relative date"),
        "{stderr}"
    );
}

/// `tributary plan --offline` of one of the shipped examples, as of `as_of`, in `dir`;
/// its stdout. The compose shards' password is set, which an offline plan never sends.
fn plan_example(dir: &std::path::Path, example: &str, as_of: &str, extra: &[&str]) -> String {
    let example = format!("{}/examples/{example}", env!("CARGO_MANIFEST_DIR"));
    let mut args = vec!["plan", "--offline", "--job", &example, "--as-of", as_of];
    args.extend_from_slice(extra);
    let out = harness::tributary_with(dir, &args, |cmd| {
        cmd.env("TRIBUTARY_PG_PASSWORD", "unused");
    });
    succeeded(&out)
}

#[test]
fn the_nightly_example_plans_last_month() {
    let dir = tempfile::tempdir().unwrap();
    let stdout = plan_example(dir.path(), "nightly.toml", "2026-03-16", &[]);
    assert!(
        stdout.contains("  :from = \"2026-02-01\" from @month_start-1m\n  :to = \"2026-03-01\" from @month_start\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("ordered_at >= ('2026-02-01') AND ordered_at < ('2026-03-01')"),
        "{stdout}"
    );
}

#[test]
fn the_incremental_example_plans_a_window_per_shard() {
    let dir = tempfile::tempdir().unwrap();
    let stdout = plan_example(
        dir.path(),
        "new_orders.toml",
        "2026-03-16T04:00:00Z",
        &["--ledger", "never-written.db"],
    );
    for shard in ["shard1", "shard2", "shard3"] {
        assert!(
            stdout.contains(&format!(
                "shard `{shard}`, read at run time: the incremental window of every `ordered_at` (no mark recorded yet) up to the largest `ordered_at` probed in the shard's snapshot; the query before the split:"
            )),
            "{stdout}"
        );
    }
    assert!(
        stdout.contains(":at = \"2026-03-16T04:00:00+00:00\" from @now"),
        "{stdout}"
    );
    assert!(
        !dir.path().join("never-written.db").exists(),
        "a plan records nothing"
    );
}
