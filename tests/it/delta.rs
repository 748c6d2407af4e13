//! Delta Lake tables (`--table-format delta`): a run's files in one commit, read back by
//! the `deltalake` package and DuckDB's delta extension against the plain export; reruns
//! that add nothing; `replace` of some partitions; `overwrite`; schema evolution and a
//! refused type change; a reader polling the table during a run.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Output;

use tributary::error::exit;

use crate::harness::{self, stderr, stdout};
use crate::readers;

/// Orders over 10 days, with region values that need escaping in a path (and NULL).
const ORDERS: &str = "CREATE TABLE orders AS
SELECT g::bigint AS id,
       (ARRAY['eu', 'us', 'a/b c', 'x=y:50%', 'zürich', NULL])[1 + g % 6] AS region,
       DATE '2025-01-01' + (g % 10) AS day,
       (g * 1.25)::numeric(12, 2) AS amount,
       TIMESTAMPTZ '2025-01-01 00:00:00+00' + g * interval '1 minute' AS at,
       md5(g::text) AS note,
       md5(g::text)::uuid AS uid,
       TIMESTAMP '2025-01-01 10:00' + g * interval '1 minute' AS local_at,
       jsonb_build_object('g', g) AS doc,
       TIME '10:00' + g * interval '1 second' AS clock,
       ARRAY[g, g + 1] AS pair
FROM generate_series(1, 20000) g;
CREATE TABLE orders_v2 AS SELECT id, region, day, (amount + 1000)::numeric(12, 2) AS amount, at, note, uid FROM orders;";

const COLUMNS: &str = "id, region, day, amount, at, note, uid";

/// A job directory: `q.sql` over the shard `url`, and `shards.toml`.
fn job_dir(url: &str, sql: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    harness::write_query_and_shards(dir.path(), sql, &format!("[shards]\ns = \"{url}\"\n"));
    dir
}

/// Runs the binary in `dir` over `q.sql` and `s.toml` with `args`.
fn run(dir: &Path, args: &[&str]) -> Output {
    let mut all = vec!["run", "q.sql", "--shards", "s.toml", "--no-ledger"];
    all.extend_from_slice(args);
    harness::tributary_in(dir, &all)
}

fn run_ok(dir: &Path, args: &[&str]) -> Output {
    let out = run(dir, args);
    assert!(
        out.status.success(),
        "the run failed ({}):\n{}\n{}",
        out.status,
        stdout(&out),
        stderr(&out)
    );
    out
}

/// The table's commits: `_delta_log/*.json`, in order.
pub(crate) fn commits(table: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(table.join("_delta_log"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

/// The actions of one commit.
pub(crate) fn actions(commit: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(commit)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The table's live files (path -> partition values), replaying its log.
pub(crate) fn live_files(table: &Path) -> BTreeMap<String, serde_json::Value> {
    let mut live = BTreeMap::new();
    for commit in commits(table) {
        for action in actions(&commit) {
            if let Some(add) = action.get("add") {
                live.insert(
                    add["path"].as_str().unwrap().to_string(),
                    add["partitionValues"].clone(),
                );
            }
            if let Some(remove) = action.get("remove") {
                live.remove(remove["path"].as_str().unwrap());
            }
        }
    }
    live
}

/// Every Parquet file under `dir`, relative to it.
fn parquet_files(dir: &Path) -> BTreeSet<String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, out);
            } else if path.extension().is_some_and(|e| e == "parquet") {
                out.insert(
                    path.strip_prefix(root)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(dir, dir, &mut out);
    out
}

/// Checks the table with `deltalake` and DuckDB's delta scan against `export`.
pub(crate) fn check(table: &Path, export: &Path) -> String {
    readers::delta_script(
        "tests/readers/delta.py",
        &[
            "check".as_ref(),
            table.as_os_str(),
            export.as_os_str(),
            "id".as_ref(),
        ],
        "the Delta readers' table differs from the export",
    )
}

/// An add action's path decoded (the log holds it percent-encoded).
fn decoded(path: &str) -> String {
    percent_encoding::percent_decode_str(path)
        .decode_utf8()
        .unwrap()
        .into_owned()
}

#[tokio::test]
async fn a_partitioned_table_holds_the_rows_of_the_plain_export_in_one_commit() {
    let url = harness::database("delta_readers", ORDERS).await;
    let dir = job_dir(
        &url,
        &format!("SELECT {COLUMNS}, local_at, doc, clock, pair FROM orders"),
    );
    let dir = dir.path();
    // A Delta table is written in the forms Spark reads (a uuid as its text, a time of
    // day as microseconds).
    run_ok(dir, &["-o", "flat.parquet", "--for", "spark"]);
    let out = run_ok(
        dir,
        &[
            "-o",
            "table",
            "--table-format",
            "delta",
            "--partition-by",
            "region,day",
            "--max-file-rows",
            "300",
        ],
    );
    let table = dir.join("table");

    // One commit made the table, one added every file of the run.
    let commits = commits(&table);
    assert_eq!(commits.len(), 2, "{commits:?}\n{}", stdout(&out));
    let write = actions(&commits[1]);
    let adds: Vec<&serde_json::Value> = write.iter().filter_map(|a| a.get("add")).collect();
    let on_disk = parquet_files(&table);
    let named: BTreeSet<String> = adds
        .iter()
        .map(|a| decoded(a["path"].as_str().unwrap()))
        .collect();
    assert_eq!(
        named, on_disk,
        "the log names exactly the files in the table"
    );
    assert!(
        adds.len() > 60,
        "6 regions x 10 days, split at 300 rows: {}",
        adds.len()
    );
    let rows: u64 = adds
        .iter()
        .map(|a| {
            let stats: serde_json::Value =
                serde_json::from_str(a["stats"].as_str().unwrap()).unwrap();
            stats["numRecords"].as_u64().unwrap()
        })
        .sum();
    assert_eq!(rows, 20_000);
    // Partition values as Delta keeps them: the value itself (not Hive's escape), null
    // for NULL; the file's directory as Hive escapes it.
    let odd = adds
        .iter()
        .find(|a| a["partitionValues"]["region"] == "x=y:50%")
        .expect("a file of region x=y:50%");
    assert!(
        decoded(odd["path"].as_str().unwrap()).starts_with("region=x%3Dy%3A50%25/day=2025-01-"),
        "{odd}"
    );
    assert!(
        adds.iter().any(|a| a["partitionValues"]["region"].is_null()
            && decoded(a["path"].as_str().unwrap())
                .starts_with("region=__HIVE_DEFAULT_PARTITION__/")),
        "NULL's files"
    );
    let txn = write
        .iter()
        .find_map(|a| a.get("txn"))
        .expect("a txn action");
    assert!(
        txn["appId"].as_str().unwrap().starts_with("tributary:"),
        "{txn}"
    );
    assert_eq!(txn["version"], 1);
    let info = write
        .iter()
        .find_map(|a| a.get("commitInfo"))
        .expect("commitInfo");
    assert_eq!(info["tributary"]["rows"], 20_000, "{info}");
    harness::assert_no_temporaries(dir);

    let readers = check(&table, &dir.join("flat.parquet"));
    for reader in ["deltalake: 20000 rows", "duckdb: 20000 rows"] {
        assert!(readers.contains(reader), "{readers}");
    }
    assert!(
        readers.contains("amount: decimal128(12, 2), at: timestamp[us, tz=UTC], clock: int64, day: date32[day], doc: string")
            && readers.contains("local_at: timestamp[us]")
            && readers.contains("pair: list<int32>")
            && readers.contains("uid: string"),
        "{readers}"
    );
}

#[tokio::test]
async fn a_rerun_of_a_committed_run_adds_nothing_and_force_runs_it_again() {
    let url = harness::database("delta_rerun", ORDERS).await;
    let dir = job_dir(
        &url,
        &format!("SELECT {COLUMNS} FROM orders WHERE day = :day"),
    );
    let dir = dir.path();
    let args = [
        "-o",
        "table",
        "--table-format",
        "delta",
        "--param",
        "day=2025-01-03",
    ];
    run_ok(dir, &args);
    let table = dir.join("table");
    let first = live_files(&table);
    assert_eq!(commits(&table).len(), 2);

    // Without a ledger only the table knows the run: it is not run again.
    let again = run_ok(dir, &args);
    assert!(
        stdout(&again).contains("already holds this run"),
        "{}",
        stdout(&again)
    );
    assert_eq!(commits(&table).len(), 2, "no commit");
    assert_eq!(live_files(&table), first);
    assert_eq!(parquet_files(&table).len(), first.len(), "no file added");

    // Another day is another run.
    let mut other = args.to_vec();
    other[5] = "day=2025-01-04";
    run_ok(dir, &other);
    assert_eq!(commits(&table).len(), 3);

    // --force runs it again: appended twice.
    let mut forced = args.to_vec();
    forced.push("--force");
    run_ok(dir, &forced);
    let log = commits(&table);
    assert_eq!(log.len(), 4);
    let txn = actions(&log[3])
        .into_iter()
        .find_map(|a| a.get("txn").cloned())
        .unwrap();
    assert_eq!(txn["version"], 2, "the run's second commit: {txn}");
    assert_eq!(live_files(&table).len(), first.len() * 3);
}

#[tokio::test]
async fn replace_rewrites_the_partitions_the_run_wrote_and_leaves_the_others() {
    let url = harness::database("delta_replace", ORDERS).await;
    let dir = job_dir(&url, &format!("SELECT {COLUMNS} FROM orders"));
    let dir = dir.path();
    let table_args = [
        "-o",
        "table",
        "--table-format",
        "delta",
        "--partition-by",
        "day",
    ];
    run_ok(dir, &table_args);
    let table = dir.join("table");
    let before = live_files(&table);
    assert_eq!(before.len(), 10, "one file a day: {before:?}");

    // The 2 days again, from the changed rows.
    let days = "('2025-01-04', '2025-01-07')";
    std::fs::write(
        dir.join("q.sql"),
        format!("SELECT {COLUMNS} FROM orders_v2 WHERE day IN {days}"),
    )
    .unwrap();
    let mut replace = table_args.to_vec();
    replace.extend(["--table-mode", "replace"]);
    run_ok(dir, &replace);
    let after = live_files(&table);
    let day = |v: &serde_json::Value| v["day"].as_str().unwrap().to_string();
    let untouched: BTreeMap<&String, String> = before
        .iter()
        .filter(|(_, v)| !["2025-01-04", "2025-01-07"].contains(&day(v).as_str()))
        .map(|(k, v)| (k, day(v)))
        .collect();
    assert_eq!(untouched.len(), 8);
    for path in untouched.keys() {
        assert!(
            after.contains_key(*path),
            "{path} of an untouched day is still live"
        );
    }
    assert_eq!(after.len(), 10);
    let last = actions(commits(&table).last().unwrap());
    let removed: Vec<String> = last
        .iter()
        .filter_map(|a| a.get("remove"))
        .map(|r| day(&r["partitionValues"]))
        .collect();
    assert_eq!(removed.len(), 2, "{removed:?}");
    let info = last.iter().find_map(|a| a.get("commitInfo")).unwrap();
    let predicate = info["operationParameters"]["predicate"].as_str().unwrap();
    assert!(predicate.contains("day = '2025-01-04'"), "{predicate}");

    // What the table holds: 8 days as they were, 2 as they are now.
    std::fs::write(
        dir.join("q.sql"),
        format!(
            "SELECT {COLUMNS} FROM orders WHERE day NOT IN {days} \
             UNION ALL SELECT {COLUMNS} FROM orders_v2 WHERE day IN {days}"
        ),
    )
    .unwrap();
    run_ok(dir, &["-o", "expected.parquet", "--for", "spark"]);
    let readers = check(&table, &dir.join("expected.parquet"));
    assert!(readers.contains("deltalake: 20000 rows"), "{readers}");
    assert!(readers.contains("duckdb: 20000 rows"), "{readers}");

    // Replace needs partition columns to say what it replaces.
    let out = run(
        dir,
        &[
            "-o",
            "t2",
            "--table-format",
            "delta",
            "--table-mode",
            "replace",
        ],
    );
    assert_eq!(out.status.code(), Some(exit::CONFIG), "{}", stderr(&out));
    assert!(stderr(&out).contains("--partition-by"), "{}", stderr(&out));
    // A partial commit would mark the run done.
    let out = run(
        dir,
        &["-o", "t3", "--table-format", "delta", "--allow-partial"],
    );
    assert_eq!(out.status.code(), Some(exit::CONFIG), "{}", stderr(&out));
    assert!(stderr(&out).contains("allow_partial"), "{}", stderr(&out));
    assert!(!dir.join("t2").exists() && !dir.join("t3").exists());
}

#[tokio::test]
async fn overwrite_leaves_only_the_runs_rows() {
    let url = harness::database("delta_overwrite", ORDERS).await;
    let dir = job_dir(&url, &format!("SELECT {COLUMNS} FROM orders"));
    let dir = dir.path();
    let args = ["-o", "table", "--table-format", "delta"];
    run_ok(dir, &args);
    std::fs::write(
        dir.join("q.sql"),
        format!("SELECT {COLUMNS} FROM orders_v2 WHERE id <= 500"),
    )
    .unwrap();
    let mut overwrite = args.to_vec();
    overwrite.extend(["--table-mode", "overwrite"]);
    run_ok(dir, &overwrite);
    run_ok(dir, &["-o", "expected.parquet", "--for", "spark"]);
    let table = dir.join("table");
    assert_eq!(live_files(&table).len(), 1);
    let readers = check(&table, &dir.join("expected.parquet"));
    assert!(readers.contains("deltalake: 500 rows"), "{readers}");
    assert!(readers.contains("duckdb: 500 rows"), "{readers}");
}

#[tokio::test]
async fn a_new_column_is_added_and_a_changed_type_is_refused() {
    let url = harness::database("delta_schema", ORDERS).await;
    let dir = job_dir(&url, "SELECT id, amount FROM orders WHERE id <= 100");
    let dir = dir.path();
    let args = ["-o", "table", "--table-format", "delta"];
    run_ok(dir, &args);
    let table = dir.join("table");

    // A new column: added to the table, NULL in the rows written before.
    std::fs::write(
        dir.join("q.sql"),
        "SELECT id, amount, note FROM orders WHERE id > 100 AND id <= 200",
    )
    .unwrap();
    run_ok(dir, &args);
    std::fs::write(
        dir.join("q.sql"),
        "SELECT id, amount, CASE WHEN id > 100 THEN note END AS note FROM orders WHERE id <= 200",
    )
    .unwrap();
    run_ok(dir, &["-o", "expected.parquet", "--for", "spark"]);
    let readers = check(&table, &dir.join("expected.parquet"));
    assert!(readers.contains("deltalake: 200 rows"), "{readers}");
    assert!(readers.contains("duckdb: 200 rows"), "{readers}");

    // A column of another type: refused, naming it; the table as it was, no file left.
    let log = commits(&table);
    let files = parquet_files(&table);
    std::fs::write(
        dir.join("q.sql"),
        "SELECT id, amount::text AS amount FROM orders WHERE id > 200 AND id <= 300",
    )
    .unwrap();
    let out = run(dir, &args);
    assert_eq!(out.status.code(), Some(exit::OUTPUT), "{}", stderr(&out));
    let message = stderr(&out);
    assert!(message.contains("column `amount`"), "{message}");
    assert!(message.contains("string"), "{message}");
    assert_eq!(commits(&table), log);
    assert_eq!(parquet_files(&table), files);
    harness::assert_no_temporaries(dir);

    // A directory that is not a table is not written into.
    std::fs::create_dir(dir.join("other")).unwrap();
    std::fs::write(dir.join("other").join("notes.txt"), "mine").unwrap();
    let out = run(dir, &["-o", "other", "--table-format", "delta"]);
    assert_eq!(out.status.code(), Some(exit::OUTPUT), "{}", stderr(&out));
    assert!(stderr(&out).contains("no Delta table"), "{}", stderr(&out));
    assert_eq!(std::fs::read_dir(dir.join("other")).unwrap().count(), 1);
}

#[tokio::test]
async fn a_reader_polling_the_table_never_sees_part_of_a_run() {
    let url = harness::database(
        "delta_poll",
        "CREATE TABLE t AS SELECT g::bigint AS id, md5(g::text) AS note FROM generate_series(1, 400000) g;",
    )
    .await;
    let dir = job_dir(&url, "SELECT id, note FROM t");
    let dir = dir.path();
    let table = dir.join("table");
    let args = [
        "-o",
        "table",
        "--table-format",
        "delta",
        "--max-file-rows",
        "20000",
        "--partitions",
        "4",
        "--partition-on",
        "id",
    ];
    let poller = std::process::Command::new(readers::delta_python())
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/readers/delta.py"))
        .args(["poll".as_ref(), table.as_os_str()])
        .arg(dir.join("stop"))
        .arg(dir.join("seen.json"))
        .spawn()
        .unwrap();
    // Two runs while the reader polls: the table is made with the first.
    run_ok(dir, &args);
    let mut forced = args.to_vec();
    forced.push("--force");
    run_ok(dir, &forced);
    // A last read of the finished table, then the reader stops.
    std::thread::sleep(std::time::Duration::from_secs(2));
    std::fs::write(dir.join("stop"), "").unwrap();
    let status = poller.wait_with_output().unwrap().status;
    assert!(status.success());
    let seen: Vec<(i64, serde_json::Value)> =
        serde_json::from_slice(&std::fs::read(dir.join("seen.json")).unwrap()).unwrap();
    let counts: BTreeSet<u64> = seen
        .iter()
        .map(|(_, rows)| {
            rows.as_u64()
                .unwrap_or_else(|| panic!("the reader failed: {rows}"))
        })
        .collect();
    assert!(
        counts.is_subset(&BTreeSet::from([0, 400_000, 800_000])),
        "the reader saw part of a run: {seen:?}"
    );
    assert!(
        counts.contains(&400_000) && counts.contains(&800_000),
        "the reader saw each run's table: {seen:?}"
    );
}

#[tokio::test]
async fn concurrent_runs_appending_to_one_table_all_land() {
    let url = harness::database("delta_concurrent", ORDERS).await;
    let dir = job_dir(
        &url,
        &format!("SELECT {COLUMNS} FROM orders WHERE day = :day"),
    );
    let dir = dir.path().to_owned();
    // Three runs at once, none finding a table: one makes it, all three commit.
    let runs: Vec<_> = ["2025-01-01", "2025-01-02", "2025-01-03"]
        .into_iter()
        .map(|day| {
            let dir = dir.clone();
            std::thread::spawn(move || {
                let param = format!("day={day}");
                run(
                    &dir,
                    &[
                        "-o",
                        "table",
                        "--table-format",
                        "delta",
                        "--partition-by",
                        "day",
                        "--param",
                        &param,
                    ],
                )
            })
        })
        .collect();
    for run in runs {
        let out = run.join().unwrap();
        assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    }
    let table = dir.join("table");
    let log = commits(&table);
    let writes = log
        .iter()
        .filter(|c| actions(c).iter().any(|a| a.get("add").is_some()))
        .count();
    assert_eq!(writes, 3, "one commit a run: {log:?}");
    let days: BTreeSet<String> = live_files(&table)
        .values()
        .map(|v| v["day"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(days.len(), 3, "{days:?}");
    std::fs::write(
        dir.join("q.sql"),
        format!("SELECT {COLUMNS} FROM orders WHERE day <= '2025-01-03'"),
    )
    .unwrap();
    run_ok(&dir, &["-o", "expected.parquet", "--for", "spark"]);
    let readers = check(&table, &dir.join("expected.parquet"));
    assert!(readers.contains("deltalake: 6000 rows"), "{readers}");
}

#[tokio::test]
async fn an_interrupted_run_commits_nothing_and_leaves_no_file() {
    let fast = harness::database("delta_sigint_fast", ORDERS).await;
    // Every statement on this shard waits 30 s before its first row.
    let slow = harness::database("delta_sigint_slow", &harness::slowed_orders(ORDERS, 30)).await;
    let marker = "delta-sigint-marker";
    let sql = format!("SELECT id, region, day, note FROM orders /* {marker} */");
    let dir = job_dir(&fast, &sql);
    let dir = dir.path();
    let args = [
        "-o",
        "table",
        "--table-format",
        "delta",
        "--partition-by",
        "day",
        "--quiet",
    ];
    run_ok(dir, &args);
    let table = dir.join("table");
    let (log, files) = (commits(&table), parquet_files(&table));

    // Both shards: the fast one's files are written in the staging directory while the
    // slow one's statement runs.
    harness::write_query_and_shards(
        dir,
        &sql,
        &format!("[shards]\nfast = \"{fast}\"\nslow = \"{slow}\"\n"),
    );
    let child = harness::bin()
        .current_dir(dir)
        .args(["run", "q.sql", "--shards", "s.toml", "--no-ledger"])
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let staged = || {
        std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".staging"))
            .any(|e| holds_files(&e.path()))
    };
    harness::wait_for_statement(
        marker,
        staged,
        "the fast shard's files never appeared while the slow shard's statement ran",
    )
    .await;
    let out = harness::signal_and_wait(child, "INT", exit::INTERRUPTED);
    assert!(stderr(&out).contains("interrupted"), "{}", stderr(&out));
    assert_eq!(commits(&table), log, "no commit");
    assert_eq!(parquet_files(&table), files, "no file placed");
    harness::assert_no_temporaries(dir);
    harness::assert_gone(marker, std::time::Duration::from_secs(2)).await;
}

/// Whether anything lies under `dir`, at any depth.
fn holds_files(dir: &Path) -> bool {
    std::fs::read_dir(dir).unwrap().flatten().any(|e| {
        let path = e.path();
        !path.is_dir() || holds_files(&path)
    })
}
