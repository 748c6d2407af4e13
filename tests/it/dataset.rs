//! Hive-partitioned datasets (`--partition-by`): the directories and their escaping, the
//! `_SUCCESS` manifest, the files read back by pyarrow, polars and DuckDB against the
//! unpartitioned export, few open files with a retried task, and the dataset replaced
//! whole or not at all.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use tributary::sink::Manifest;

use crate::harness::{self, Job, i64_column};
use crate::proxy::{Fault, Proxy};
use crate::readers;

const ORDERS: &str = "CREATE TABLE orders AS
SELECT g::bigint AS id,
       (ARRAY['eu', 'us', 'a/b c', 'x=y:50%', 'zürich', NULL])[1 + g % 6] AS region,
       DATE '2025-01-01' + (g % 5) AS day,
       (g * 1.25)::numeric(12, 2) AS amount,
       TIMESTAMPTZ '2025-01-01 00:00:00+00' + g * interval '1 minute' AS at,
       md5(g::text) AS note
FROM generate_series(1, 20000) g;";

/// A job writing `sql` over `url` as a dataset `ds` in its directory, partitioned by
/// `columns`; returns the job and the dataset's path.
fn dataset_job(sql: &str, url: &str, columns: &[&str]) -> (Job, std::path::PathBuf) {
    let mut job = Job::new(sql, &[("s", url)]);
    let dataset = job.dir.path().join("ds");
    job.args.output = Some(dataset.clone());
    job.args.partition_by = columns.iter().map(|c| c.to_string()).collect();
    (job, dataset)
}

/// The dataset's manifest.
fn manifest(dataset: &Path) -> Manifest {
    let text = std::fs::read(dataset.join("_SUCCESS")).expect("a _SUCCESS manifest");
    serde_json::from_slice(&text).expect("the manifest parses")
}

/// Every file under `dir`, relative to it, sorted.
fn files_under(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                out.push(
                    path.strip_prefix(root)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Checks that the manifest lists exactly the Parquet files under the dataset, with
/// their rows and sizes, that no file holds the partition columns, and returns the ids
/// each directory holds.
fn check_dataset(dataset: &Path) -> BTreeMap<String, Vec<i64>> {
    let manifest = manifest(dataset);
    let mut listed: Vec<String> = manifest.parts.iter().map(|p| p.file.clone()).collect();
    listed.push("_SUCCESS".into());
    listed.sort();
    assert_eq!(files_under(dataset), listed, "the files of the dataset");
    let mut by_dir: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for part in &manifest.parts {
        let path = dataset.join(&part.file);
        let batch = harness::concat(&harness::read_parquet(&path));
        assert_eq!(batch.num_rows() as u64, part.rows, "{}", part.file);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), part.bytes);
        for column in &manifest.partition_by {
            assert!(
                batch.column_by_name(&column.name).is_none(),
                "{} holds partition column {}",
                part.file,
                column.name
            );
        }
        let dir = Path::new(&part.file)
            .parent()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        by_dir
            .entry(dir)
            .or_default()
            .extend(i64_column(&batch, "id").into_iter().map(Option::unwrap));
    }
    let rows: usize = by_dir.values().map(Vec::len).sum();
    assert_eq!(manifest.rows, rows as u64);
    by_dir
}

/// The directory an order's row belongs in, as Hive names it.
fn dir_of(id: i64) -> String {
    let region = match id % 6 {
        0 => "eu",
        1 => "us",
        2 => "a%2Fb c",
        3 => "x%3Dy%3A50%25",
        4 => "zürich",
        _ => "__HIVE_DEFAULT_PARTITION__",
    };
    let day =
        chrono::NaiveDate::from_ymd_opt(2025, 1, 1).unwrap() + chrono::Days::new((id % 5) as u64);
    format!("region={region}/day={day}")
}

/// Checks that every id from 1 to `n` is in its directory, once.
fn assert_every_row_in_its_directory(by_dir: &BTreeMap<String, Vec<i64>>, n: i64) {
    let mut all: Vec<i64> = Vec::new();
    for (dir, ids) in by_dir {
        for id in ids {
            assert_eq!(&dir_of(*id), dir, "id {id}");
        }
        all.extend(ids);
    }
    all.sort();
    let twice = all.windows(2).find(|w| w[0] == w[1]).map(|w| w[0]);
    assert_eq!(twice, None, "a row twice ({} rows in all)", all.len());
    assert!(
        all == (1..=n).collect::<Vec<_>>(),
        "{} rows, from {:?} to {:?}; expected 1 to {n}",
        all.len(),
        all.first(),
        all.last()
    );
}

fn run_hive_check(dataset: &Path, export: &Path) -> String {
    readers::script(
        "tests/readers/hive.py",
        &[dataset.as_os_str(), export.as_os_str(), "id".as_ref()],
        "the readers' dataset differs from the export",
    )
}

#[tokio::test]
async fn a_dataset_read_with_hive_partitioning_holds_the_rows_of_the_unpartitioned_export() {
    let url = harness::database("dataset_readers", ORDERS).await;
    let mut job = Job::new(
        "SELECT id, region, day, amount, at, note FROM orders",
        &[("s", &url)],
    );
    let dir = job.dir.path().to_owned();
    job.args.output = Some(dir.join("flat.parquet"));
    let (report, result) = job.run().await;
    result.unwrap_or_else(|e| panic!("{e}\n{report}"));

    let dataset = dir.join("orders");
    job.args.output = Some(dataset.clone());
    job.args.partition_by = vec!["region".into(), "day".into()];
    job.args.row_group_size = Some(1000);
    let (report, result) = job.run().await;
    result.unwrap_or_else(|e| panic!("{e}\n{report}"));
    let summary = report.output.clone().unwrap();
    assert_eq!(summary.rows, 20_000);
    assert_eq!(summary.path, dataset);
    assert_eq!(
        summary.manifest.as_deref(),
        Some(&*dataset.join("_SUCCESS"))
    );

    let by_dir = check_dataset(&dataset);
    assert_eq!(by_dir.len(), 30, "6 regions by 5 days: {:?}", by_dir.keys());
    assert_every_row_in_its_directory(&by_dir, 20_000);
    let manifest = manifest(&dataset);
    let types: Vec<(&str, &str)> = manifest
        .partition_by
        .iter()
        .map(|c| (c.name.as_str(), c.data_type.as_str()))
        .collect();
    assert_eq!(types, [("region", "Utf8"), ("day", "Date32")]);
    harness::assert_no_temporaries(&dir);

    let readers = run_hive_check(&dataset, &dir.join("flat.parquet"));
    for reader in [
        "pyarrow: 20000 rows",
        "polars: 20000 rows",
        "duckdb: 20000 rows",
    ] {
        assert!(readers.contains(reader), "{readers}");
    }
}

#[tokio::test]
async fn few_open_files_and_a_retried_task_keep_every_row_once_in_its_directory() {
    // Rows come in id order, so every batch goes to all 30 directories, and two open
    // files mean a file is closed at almost every row group. The first attempt is cut
    // after about 1 MB: its row groups lie in files already closed, and are left out
    // when the footers are written again at the commit.
    harness::database("dataset_retry", ORDERS).await;
    let db = harness::db("dataset_retry");
    let proxy = Proxy::failing_first(Fault::CutAfter(1_000_000)).await;
    let (mut job, dataset) = dataset_job(
        // In table order, which is id order; ORDER BY would be a final step over
        // spooled rows.
        "SELECT id, region, day, note FROM orders",
        &proxy.url(&db),
        &["region", "day"],
    );
    job.args.max_open_files = Some(2);
    job.args.row_group_size = Some(50);
    let mut config = tributary::JobConfig::resolve(job.args.clone()).unwrap();
    config.options.batch_size = 500;
    let (report, result) = tributary::run(&config, false, std::future::pending()).await;
    result.unwrap_or_else(|e| panic!("{e}\n{report}"));
    assert_eq!(report.tasks[0].attempts, 2, "{report}");
    // The first attempt's ~14,000 rows went into files in groups of 50: were any left
    // in, some ids would be there twice.
    let by_dir = check_dataset(&dataset);
    assert_every_row_in_its_directory(&by_dir, 20_000);
    let files = manifest(&dataset).parts.len();
    assert!(
        files > 30,
        "closed files were continued in new ones: {files} files"
    );
    harness::assert_no_temporaries(job.dir.path());
}

#[tokio::test]
async fn a_dataset_splits_its_directories_files_at_the_row_limit() {
    let url = harness::database("dataset_split", ORDERS).await;
    let (mut job, dataset) = dataset_job(
        "SELECT id, region, note FROM orders WHERE id <= 6000",
        &url,
        &["region"],
    );
    job.args.max_file_rows = Some(400);
    let (report, result) = job.run().await;
    result.unwrap_or_else(|e| panic!("{e}\n{report}"));
    let manifest = manifest(&dataset);
    // 1,000 rows in each of 6 regions: files of 400, 400 and 200.
    let mut rows: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for part in &manifest.parts {
        let (dir, name) = part.file.rsplit_once('/').unwrap();
        assert!(
            name.starts_with("part-0000") && name.ends_with(".parquet"),
            "{name}"
        );
        rows.entry(dir.to_owned()).or_default().push(part.rows);
    }
    assert_eq!(rows.len(), 6);
    for (dir, rows) in &rows {
        assert_eq!(rows, &[400, 400, 200], "{dir}");
    }
    check_dataset(&dataset);
}

#[tokio::test]
async fn a_rerun_replaces_the_dataset_whole_and_a_failed_run_leaves_it_as_it_was() {
    let url = harness::database("dataset_replace", ORDERS).await;
    let (job, dataset) = dataset_job(
        "SELECT id, region, day, note FROM orders WHERE id <= :n",
        &url,
        &["region", "day"],
    );
    let mut job = job.param("n", "600");
    let (report, result) = job.run().await;
    result.unwrap_or_else(|e| panic!("{e}\n{report}"));
    assert_every_row_in_its_directory(&check_dataset(&dataset), 600);

    // Fewer rows and one region less: the old directories go with the old dataset.
    job.args.params = vec![("n".into(), "4".into())];
    let (report, result) = job.run().await;
    result.unwrap_or_else(|e| panic!("{e}\n{report}"));
    let by_dir = check_dataset(&dataset);
    assert_eq!(by_dir.len(), 4);
    assert_every_row_in_its_directory(&by_dir, 4);
    let before = files_under(&dataset);

    // A run that fails after its rows were written changes nothing.
    job.args.params = vec![("n".into(), "600".into())];
    job.args.partition_by = vec!["region".into(), "nope".into()];
    let (_, result) = job.run().await;
    let err = result.expect_err("no column `nope`");
    assert!(
        err.to_string()
            .contains("`nope` is not a column of the result"),
        "{err}"
    );
    assert_eq!(files_under(&dataset), before);
    assert_every_row_in_its_directory(&check_dataset(&dataset), 4);
    harness::assert_no_temporaries(job.dir.path());

    // A rerun that finds no rows leaves an empty dataset, not the previous one.
    job.args.params = vec![("n".into(), "0".into())];
    job.args.partition_by = vec!["region".into(), "day".into()];
    let (report, result) = job.run().await;
    result.unwrap_or_else(|e| panic!("{e}\n{report}"));
    assert_eq!(files_under(&dataset), ["_SUCCESS"]);
    assert!(check_dataset(&dataset).is_empty());
    assert_eq!(manifest(&dataset).partition_by.len(), 2);

    // A directory that is not a dataset is never replaced.
    let other = job.dir.path().join("photos");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("cat.jpg"), b"meow").unwrap();
    job.args.output = Some(other.clone());
    job.args.partition_by = vec!["region".into()];
    let (_, result) = job.run().await;
    let err = result.expect_err("not a dataset");
    assert_eq!(err.exit_code(), tributary::error::exit::OUTPUT, "{err}");
    assert!(err.to_string().contains("no _SUCCESS manifest"), "{err}");
    assert_eq!(files_under(&other), ["cat.jpg"]);
}

#[test]
fn partition_columns_are_checked_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    harness::write_query_and_shards(
        dir.path(),
        "SELECT 1 AS a",
        "[shards]\ns = \"sqlite://x.db\"\n",
    );
    for (args, message) in [
        (
            vec!["--partition-by", "a,a"],
            "--partition-by: column `a` is named twice",
        ),
        (
            vec!["--partition-by", "a,,b"],
            "--partition-by: an empty column name in `a,,b`",
        ),
        (
            vec!["--max-open-files", "3"],
            "apply to a dataset: give --partition-by",
        ),
        (
            vec!["--partition-by", "a", "--max-open-files", "0"],
            "max_open_files must be at least 1",
        ),
    ] {
        let mut all = harness::job_args("run", &["-o", "ds"]);
        all.extend(args);
        let out = harness::tributary_in(dir.path(), &all);
        assert_eq!(out.status.code(), Some(tributary::error::exit::CONFIG));
        let err = harness::stderr(&out);
        assert!(err.contains(message), "{err}");
    }
}

#[tokio::test]
async fn kept_partition_columns_hold_the_value_their_directory_names() {
    let url = harness::database("dataset_keep", ORDERS).await;
    let (mut job, dataset) = dataset_job(
        "SELECT id, region, day FROM orders WHERE id <= 120",
        &url,
        &["day"],
    );
    job.args.keep_partition_columns = true;
    let (report, result) = job.run().await;
    result.unwrap_or_else(|e| panic!("{e}\n{report}"));
    let manifest = manifest(&dataset);
    assert!(manifest.partition_columns_in_files);
    assert_eq!(manifest.parts.len(), 5);
    for part in &manifest.parts {
        let batch = harness::concat(&harness::read_parquet(&dataset.join(&part.file)));
        let day = batch.column_by_name("day").expect("the day column is kept");
        assert_eq!(day.data_type(), &arrow::datatypes::DataType::Date32);
        let text = arrow::compute::cast(day, &arrow::datatypes::DataType::Utf8).unwrap();
        let text = text
            .as_any()
            .downcast_ref::<arrow::array::StringArray>()
            .unwrap();
        for value in text.iter() {
            assert!(
                part.file.starts_with(&format!("day={}/", value.unwrap())),
                "{}",
                part.file
            );
        }
        assert!(batch.column_by_name("region").is_some());
    }
}

/// 2,000 directories, their rows interleaved, under a limit of 128 descriptors: each
/// closed file keeps none, so the run needs about three per open file (20 here), not
/// one or more per directory.
#[tokio::test]
async fn closed_files_hold_no_descriptor() {
    let url = harness::database(
        "dataset_descriptors",
        "CREATE TABLE t AS SELECT g::bigint AS id, g % 2000 AS k FROM generate_series(1, 40000) g;",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    harness::write_job(dir.path(), "SELECT id, k FROM t", &url);
    let out = Command::new("sh")
        .current_dir(dir.path())
        .args(["-c", "ulimit -n 128 && exec \"$0\" \"$@\""])
        .arg(env!("CARGO_BIN_EXE_tributary"))
        .args(harness::job_args(
            "run",
            &[
                "-o",
                "ds",
                "--partition-by",
                "k",
                "--max-open-files",
                "20",
                "--no-ledger",
            ],
        ))
        .output()
        .unwrap();
    harness::succeeded(&out);
    let by_dir = check_dataset(&dir.path().join("ds"));
    assert_eq!(by_dir.len(), 2000);
    for (name, ids) in &by_dir {
        let k: i64 = name.strip_prefix("k=").unwrap().parse().unwrap();
        assert!(ids.iter().all(|id| id % 2000 == k), "{name}");
    }
    assert_eq!(by_dir.values().map(Vec::len).sum::<usize>(), 40_000);
}

/// The rows of a checked dataset.
fn rows_of(dataset: &Path) -> usize {
    check_dataset(dataset).values().map(Vec::len).sum()
}

#[tokio::test]
async fn an_interrupted_dataset_run_leaves_the_previous_dataset_and_no_staging() {
    let fast = harness::database("dataset_sigint_fast", ORDERS).await;
    // Every statement on this shard waits 30 s before its first row.
    let slow = harness::database("dataset_sigint_slow", &harness::slowed_orders(ORDERS, 30)).await;
    let dir = tempfile::tempdir().unwrap();
    let marker = "dataset-sigint-marker";
    let sql = format!("SELECT id, region, note FROM orders /* {marker} */");
    harness::write_query_and_shards(dir.path(), &sql, &format!("[shards]\nfast = \"{fast}\"\n"));
    let args = harness::job_args("run", &["-o", "ds", "--partition-by", "region", "--quiet"]);
    let out = harness::bin()
        .current_dir(dir.path())
        .args(&args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", harness::stderr(&out));
    let dataset = dir.path().join("ds");
    let before = files_under(&dataset);
    assert_eq!(rows_of(&dataset), 20000);

    // Both shards: the fast one's files are written in the staging directory (under
    // temporary names) while the slow one's statement runs.
    harness::write_query_and_shards(
        dir.path(),
        &sql,
        &format!("[shards]\nfast = \"{fast}\"\nslow = \"{slow}\"\n"),
    );
    let child = harness::bin()
        .current_dir(dir.path())
        .args(&args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let staged = || {
        std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".staging"))
            .any(|e| {
                files_under(&e.path())
                    .iter()
                    .any(|f| f.contains("part-00000"))
            })
    };
    harness::wait_for_statement(
        marker,
        staged,
        "the fast shard's files never appeared while the slow shard's statement ran",
    )
    .await;
    let out = harness::signal_and_wait(child, "INT", tributary::error::exit::INTERRUPTED);
    assert!(
        harness::stderr(&out).contains("interrupted"),
        "{}",
        harness::stderr(&out)
    );
    assert_eq!(files_under(&dataset), before);
    assert_eq!(rows_of(&dataset), 20000);
    harness::assert_no_temporaries(dir.path());
    harness::assert_gone(marker, std::time::Duration::from_secs(2)).await;
}
