//! Runs split across machines: `plan --slices N`, concurrent `run --slice I/N` (and
//! `JOB_COMPLETION_INDEX`) committing into one Delta table, `finish`, a killed slice run
//! again, and `snapshot export` with `--snapshots`, read back by the `deltalake` package
//! and DuckDB's delta extension against the unsliced export.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use tributary::error::exit;

use crate::delta::{actions, check, commits};
use crate::harness::{self, stderr, stdout};

/// Shard `k`'s orders: 10,000 ids of its own, over 5 days, some regions NULL.
fn orders(k: u32) -> String {
    format!(
        "CREATE TABLE orders AS
SELECT g::bigint AS id,
       (ARRAY['eu', 'us', 'apac', NULL])[1 + g % 4] AS region,
       DATE '2025-01-01' + (g % 5) AS day,
       (g * 1.25)::numeric(12, 2) AS amount,
       md5(g::text) AS note
FROM generate_series({}, {}) g;",
        k * 10_000 + 1,
        (k + 1) * 10_000
    )
}

const SQL: &str = "SELECT id, region, day, amount, note FROM orders";

/// `q.sql`, `s.toml` with `shards` (name, URL) and `job.toml`: the run into the Delta
/// table `table`, partitioned by day, with `partition` as its `[partition]` table.
fn job(dir: &Path, shards: &[(&str, &str)], partition: &str) {
    let shards: String = shards
        .iter()
        .map(|(name, url)| format!("{name} = \"{url}\"\n"))
        .collect();
    harness::write_query_and_shards(dir, SQL, &format!("[shards]\n{shards}"));
    std::fs::write(
        dir.join("job.toml"),
        format!(
            "query = \"q.sql\"\nshards = \"s.toml\"\noutput = \"table\"\n\
             table_format = \"delta\"\npartition_by = [\"day\"]\n{partition}"
        ),
    )
    .unwrap();
}

fn tributary(dir: &Path, args: &[&str]) -> Output {
    harness::tributary_in(dir, args)
}

/// `run --job job.toml --slice SLICE`.
fn slice(dir: &Path, slice: &str) -> Output {
    tributary(
        dir,
        &["run", "--job", "job.toml", "--slice", slice, "--no-ledger"],
    )
}

fn spawn(dir: &Path, args: &[&str]) -> Child {
    harness::bin()
        .current_dir(dir)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn assert_code(out: &Output, code: i32) -> String {
    let text = format!("{}{}", stdout(out), stderr(out));
    assert_eq!(out.status.code(), Some(code), "{text}");
    text
}

/// The plain export of every shard's rows, as the Delta readers compare the table to it.
fn export(dir: &Path, name: &str) -> std::path::PathBuf {
    let out = tributary(
        dir,
        &[
            "run",
            "q.sql",
            "--shards",
            "s.toml",
            "-o",
            name,
            "--for",
            "spark",
            "--no-ledger",
        ],
    );
    assert_code(&out, exit::SUCCESS);
    dir.join(name)
}

/// The application ids the table's log holds a `txn` action of, each with its count.
fn txns(table: &Path) -> Vec<String> {
    commits(table)
        .iter()
        .flat_map(|c| actions(c))
        .filter_map(|a| {
            a.get("txn")
                .map(|t| t["appId"].as_str().unwrap().to_string())
        })
        .collect()
}

/// The commits that add files.
fn writes(table: &Path) -> usize {
    commits(table)
        .iter()
        .filter(|c| actions(c).iter().any(|a| a.get("add").is_some()))
        .count()
}

#[tokio::test]
async fn three_concurrent_slices_commit_the_rows_of_the_unsliced_run_once() {
    let mut urls = Vec::new();
    for k in 0..3 {
        urls.push(harness::database(&format!("slices_three_{k}"), &orders(k)).await);
    }
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let shards = [("a", urls[0].as_str()), ("b", &urls[1]), ("c", &urls[2])];
    job(
        dir,
        &shards,
        "[partition]\nkind = \"hash\"\ncolumn = \"id\"\npartitions = 2\n",
    );

    // The plan's 9 tasks (3 shards, 2 hash buckets and the NULL piece each), 3 a slice,
    // the same every time it is planned.
    let plan = tributary(dir, &["plan", "--job", "job.toml", "--slices", "3"]);
    let text = assert_code(&plan, exit::SUCCESS);
    let again = tributary(dir, &["plan", "--job", "job.toml", "--slices", "3"]);
    let slice_lines = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.starts_with("slice "))
            .map(str::to_owned)
            .collect()
    };
    let lines = slice_lines(&text);
    assert_eq!(lines, slice_lines(&stdout(&again)), "deterministic");
    assert_eq!(lines.len(), 3, "{text}");
    let mut tasks = BTreeSet::new();
    for (i, line) in lines.iter().enumerate() {
        assert!(line.starts_with(&format!("slice {i}/3: 3 tasks")), "{line}");
        // Each slice reads from every shard.
        for shard in ["(a ", "(b ", "(c "] {
            assert!(line.contains(shard), "{line}");
        }
        for task in line.split("task ").skip(1) {
            let id: usize = task.split(' ').next().unwrap().parse().unwrap();
            assert!(tasks.insert(id), "task {id} in two slices: {text}");
        }
    }
    assert_eq!(tasks, (0..9).collect(), "{text}");

    // The three slices at once; the third finds its index as an Indexed Job gives it.
    let slices: Vec<_> = (0..3)
        .map(|i| {
            let dir = dir.to_owned();
            std::thread::spawn(move || {
                let (slice, report) = (format!("{i}/3"), format!("report-{i}.json"));
                let mut args = vec![
                    "run",
                    "--job",
                    "job.toml",
                    "--no-ledger",
                    "--report",
                    &report,
                ];
                if i == 2 {
                    args.extend(["--slices", "3"]);
                    harness::tributary_with(&dir, &args, |c| {
                        c.env("JOB_COMPLETION_INDEX", "2");
                    })
                } else {
                    args.extend(["--slice", &slice]);
                    harness::tributary_in(&dir, &args)
                }
            })
        })
        .collect();
    let outputs: Vec<String> = slices
        .into_iter()
        .map(|s| assert_code(&s.join().unwrap(), exit::SUCCESS))
        .collect();
    let recorders = outputs
        .iter()
        .filter(|o| o.contains("recorded the run complete"))
        .count();
    assert_eq!(recorders, 1, "the last slice records the run: {outputs:#?}");
    // Each slice's report names it, its commit, and whether it recorded the run.
    let mut recorded = 0;
    for i in 0..3 {
        let text = std::fs::read_to_string(dir.join(format!("report-{i}.json"))).unwrap();
        let report: serde_json::Value = serde_json::from_str(&text).unwrap();
        let report = &report["run"];
        assert_eq!(
            report["slice"],
            serde_json::json!({"index": i, "count": 3}),
            "{text}"
        );
        assert!(
            report["output"]["table_version"].as_i64().unwrap() >= 1,
            "{text}"
        );
        recorded += usize::from(report["output"]["run_recorded"].is_i64());
    }
    assert_eq!(recorded, 1);

    let table = dir.join("table");
    assert_eq!(writes(&table), 3, "one commit a slice");
    let ids = txns(&table);
    let run_id = ids
        .iter()
        .find(|id| !id.contains(":slice-"))
        .expect("the run recorded complete")
        .clone();
    let mut expected: Vec<String> = (0..3)
        .map(|i| format!("{run_id}:slice-{i}-of-3"))
        .chain([run_id.clone()])
        .collect();
    expected.sort();
    let mut ids = ids;
    ids.sort();
    assert_eq!(ids, expected);

    let export = export(dir, "expected.parquet");
    let readers = check(&table, &export);
    assert!(readers.contains("deltalake: 30000 rows"), "{readers}");

    // `finish` finds the run recorded; a slice run again, or the whole run, adds nothing.
    let finish = tributary(dir, &["finish", "--job", "job.toml", "--slices", "3"]);
    let text = assert_code(&finish, exit::SUCCESS);
    assert!(text.contains("all 3 slices committed"), "{text}");
    assert!(text.contains("already recorded complete"), "{text}");
    let log = commits(&table);
    for args in [
        &["run", "--job", "job.toml", "--slice", "1/3", "--no-ledger"][..],
        &["run", "--job", "job.toml", "--no-ledger"],
    ] {
        let text = assert_code(&tributary(dir, args), exit::SUCCESS);
        assert!(text.contains("already holds this run"), "{text}");
    }
    assert_eq!(commits(&table), log, "nothing committed again");
}

#[tokio::test]
async fn a_killed_slice_commits_nothing_and_its_rerun_completes_the_run() {
    let fast = harness::database("slices_killed_fast", &orders(0)).await;
    let slow = harness::database(
        "slices_killed_slow",
        &harness::slowed_orders(&orders(1), 60),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    // Unpartitioned: slice 0 reads shard a, slice 1 shard b.
    job(dir, &[("a", &fast), ("b", &slow)], "");
    let marker = "slices-killed-marker";
    std::fs::write(dir.join("q.sql"), format!("{SQL} /* {marker} */")).unwrap();

    // 2 tasks make at most 2 slices: a third would have none, and never commit.
    let plan = tributary(
        dir,
        &["plan", "--job", "job.toml", "--slices", "3", "--offline"],
    );
    let text = assert_code(&plan, exit::SUCCESS);
    assert!(text.contains("slice 2/3: no task"), "{text}");
    assert!(text.contains("fewer than its 3 slices"), "{text}");
    let text = assert_code(&slice(dir, "2/3"), exit::CONFIG);
    assert!(text.contains("split it into at most 2 slices"), "{text}");
    assert!(!dir.join("table").exists());

    let mut killed = spawn(
        dir,
        &["run", "--job", "job.toml", "--slice", "1/2", "--no-ledger"],
    );
    harness::wait_for_statement(marker, || true, "slice 1's statement never ran").await;
    killed.kill().unwrap();
    killed.wait().unwrap();
    // The machine is gone; its statement is ended on the server, and the shard is quick.
    let client = harness::connect(&harness::db("slices_killed_slow")).await;
    client
        .batch_execute(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE query LIKE '%{marker}%' AND pid <> pg_backend_pid(); \
             UPDATE delay SET seconds = 0;"
        ))
        .await
        .unwrap();

    let text = assert_code(&slice(dir, "0/2"), exit::SUCCESS);
    assert!(!text.contains("recorded the run complete"), "{text}");
    let table = dir.join("table");
    assert_eq!(writes(&table), 1, "the killed slice committed nothing");

    let finish = tributary(dir, &["finish", "--job", "job.toml", "--slices", "2"]);
    let text = assert_code(&finish, exit::PARTIAL);
    assert!(text.contains("1 of 2 slices committed"), "{text}");
    assert!(text.contains("missing: 1/2"), "{text}");

    let text = assert_code(&slice(dir, "1/2"), exit::SUCCESS);
    assert!(text.contains("recorded the run complete"), "{text}");
    let finish = tributary(dir, &["finish", "--job", "job.toml", "--slices", "2"]);
    let text = assert_code(&finish, exit::SUCCESS);
    assert!(text.contains("already recorded complete"), "{text}");

    assert_eq!(writes(&table), 2);
    let export = export(dir, "expected.parquet");
    let readers = check(&table, &export);
    assert!(readers.contains("deltalake: 20000 rows"), "{readers}");
    // The killed slice's staged files went with the next run beside the table.
    harness::assert_no_temporaries(dir);
}

#[tokio::test]
async fn slices_importing_exported_snapshots_read_one_state_of_every_shard() {
    // Shard a holds three times b's rows: dealt by estimates, each slice reads about half.
    let a = harness::database(
        "slices_snapshot_a",
        &format!(
            "{}\nINSERT INTO orders SELECT id + 50000, region, day, amount, note FROM orders;\n\
             INSERT INTO orders SELECT id + 100000, region, day, amount, note FROM orders WHERE id < 50000;\n\
             ANALYZE orders;",
            orders(0)
        ),
    )
    .await;
    let b = harness::database(
        "slices_snapshot_b",
        &format!("{}\nANALYZE orders;", orders(1)),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let partition = "[partition]\nkind = \"range\"\ncolumn = \"id\"\npartitions = 3\n";
    job(dir, &[("a", &a), ("b", &b)], partition);

    // Range bounds are probed by each slice: without one snapshot, refused.
    let text = assert_code(&slice(dir, "0/2"), exit::CONFIG);
    assert!(text.contains("--snapshots FILE"), "{text}");

    let expected = export(dir, "expected.parquet");
    let exporter = spawn(
        dir,
        &[
            "snapshot",
            "export",
            "--job",
            "job.toml",
            "--slices",
            "2",
            "--file",
            "snaps.json",
        ],
    );
    let file = dir.join("snaps.json");
    exported(&file).await;
    let saved = std::fs::read_to_string(&file).unwrap();
    let snapshots: serde_json::Value = serde_json::from_str(&saved).unwrap();
    let names: Vec<&String> = snapshots["snapshots"].as_object().unwrap().keys().collect();
    assert_eq!(names, ["a", "b"], "{saved}");
    // The plan's 8 tasks (3 ranges and the NULL piece a shard), dealt by their estimates.
    let dealt = &snapshots["slices"];
    assert_eq!(dealt["count"], 2, "{saved}");
    let tasks = dealt["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 8, "{saved}");
    let mut load = [0f64; 2];
    for task in tasks {
        let slice = task["slice"].as_u64().unwrap() as usize;
        load[slice] += task["rows"].as_f64().expect("an estimate for every task");
    }
    let total = load[0] + load[1];
    assert!((30_000.0..50_000.0).contains(&total), "{saved}");
    assert!(
        (load[0] - load[1]).abs() < total * 0.2,
        "the slices' estimated rows are balanced: {load:?}\n{saved}"
    );
    // `plan` shows the slices the file records; another slice count is refused.
    let plan = tributary(
        dir,
        &[
            "plan",
            "--job",
            "job.toml",
            "--slices",
            "2",
            "--snapshots",
            "snaps.json",
        ],
    );
    let text = assert_code(&plan, exit::SUCCESS);
    for task in tasks {
        let slice = task["slice"].as_u64().unwrap();
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("slice {slice}/2:")))
            .unwrap_or_else(|| panic!("no slice {slice} in {text}"));
        let named = format!(
            "({} {})",
            task["shard"].as_str().unwrap(),
            task["partition"].as_str().unwrap()
        );
        assert!(line.contains(&named), "{named} not in {line}\n{saved}");
    }
    let text = assert_code(
        &tributary(
            dir,
            &[
                "run",
                "--job",
                "job.toml",
                "--slice",
                "0/3",
                "--snapshots",
                "snaps.json",
                "--no-ledger",
            ],
        ),
        exit::CONFIG,
    );
    assert!(text.contains("exported for 2 slices"), "{text}");

    // After the export, both shards change: the slices read them as they were.
    for db in ["slices_snapshot_a", "slices_snapshot_b"] {
        harness::connect(&harness::db(db))
            .await
            .batch_execute(
                "DELETE FROM orders WHERE id % 7 = 0; \
                 INSERT INTO orders SELECT id + 100000, region, day, amount, note FROM orders; \
                 UPDATE orders SET note = 'changed' WHERE id % 3 = 0;",
            )
            .await
            .unwrap();
    }
    let slices: Vec<_> = (0..2)
        .map(|i| {
            spawn(
                dir,
                &[
                    "run",
                    "--job",
                    "job.toml",
                    "--slice",
                    &format!("{i}/2"),
                    "--snapshots",
                    "snaps.json",
                    "--no-ledger",
                ],
            )
        })
        .collect();
    for slice in slices {
        assert_code(&slice.wait_with_output().unwrap(), exit::SUCCESS);
    }
    let table = dir.join("table");
    let readers = check(&table, &expected);
    assert!(readers.contains("deltalake: 40000 rows"), "{readers}");
    let finish = tributary(dir, &["finish", "--job", "job.toml", "--slices", "2"]);
    assert_code(&finish, exit::SUCCESS);

    // Held: one session a shard. Stopped, the export ends them and removes its file.
    assert_eq!(holders().await, 2);
    let out = harness::signal_and_wait(exporter, "TERM", exit::SUCCESS);
    assert!(
        stdout(&out).contains("released the snapshots"),
        "{}",
        stdout(&out)
    );
    assert!(!file.exists());
    assert_released().await;

    // Removing the file releases them too (a cleanup step on another machine).
    let exporter = spawn(
        dir,
        &[
            "snapshot",
            "export",
            "--shards",
            "s.toml",
            "--file",
            "snaps.json",
            "--hold",
            "5m",
        ],
    );
    exported(&file).await;
    std::fs::remove_file(&file).unwrap();
    let out = exporter.wait_with_output().unwrap();
    let text = assert_code(&out, exit::SUCCESS);
    assert!(text.contains("snaps.json was removed"), "{text}");
    assert_released().await;

    // A file whose export has ended names what to do.
    std::fs::write(&file, &saved).unwrap();
    let text = assert_code(
        &tributary(
            dir,
            &[
                "run",
                "--job",
                "job.toml",
                "-o",
                "other",
                "--slice",
                "0/2",
                "--snapshots",
                "snaps.json",
                "--no-ledger",
            ],
        ),
        exit::UNAVAILABLE,
    );
    assert!(text.contains("tributary snapshot export"), "{text}");
    assert!(!dir.join("other").exists(), "nothing written");
}

/// The sessions holding a snapshot in this test's databases.
async fn holders() -> i64 {
    harness::connect("postgres")
        .await
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'tributary snapshot' \
             AND datname IN ($1, $2)",
            &[
                &harness::db("slices_snapshot_a"),
                &harness::db("slices_snapshot_b"),
            ],
        )
        .await
        .unwrap()
        .get(0)
}

/// Waits (5 s at most) for the export's sessions to end on the server.
async fn assert_released() {
    let deadline = Instant::now() + Duration::from_secs(5);
    while holders().await > 0 {
        assert!(
            Instant::now() < deadline,
            "the export's sessions did not end"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits (20 s at most) for `snapshot export` to write its file.
async fn exported(file: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !file.exists() {
        assert!(Instant::now() < deadline, "no snapshots file");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
