//! Reader profiles (`--for`): the warning a run without one gives for columns common
//! readers cannot open, the refusal of a column with no exact form for a named reader,
//! the user's own type options winning, and the profile in `plan`. (The type suite
//! written with `--for spark` and read by PySpark is in `types`.)

use arrow::datatypes::DataType;
use tributary::error::exit;

use crate::harness::{self, Job};

const SETUP: &str = "CREATE TABLE t (id int4, u uuid, at time, n int4);
     INSERT INTO t VALUES (1, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '12:30:00.5', 7);";

/// Without a profile the file is as the type table writes it, and the summary and the
/// JSON report name the columns Spark cannot open, and how to choose a profile.
#[tokio::test]
async fn without_a_profile_uuid_and_time_columns_give_a_warning_naming_both() {
    let url = harness::database("profiles_warning", SETUP).await;
    let mut job = Job::new("SELECT id, u, at, n FROM t", &[("s1", &url)]);
    let report_path = job.dir.path().join("report.json");
    let (report, result) = job.run().await;
    tributary::write_report(&report_path, &report, &result).unwrap();
    result.unwrap();
    let summary = report.to_string();
    let warning = summary
        .lines()
        .find(|l| l.starts_with("warning: Spark cannot open"))
        .unwrap_or_else(|| panic!("no warning in:\n{summary}"));
    assert!(
        warning.contains("`u` (uuid") && warning.contains("`at` (time") && !warning.contains("`n`"),
        "{warning}"
    );
    assert!(warning.contains("--for spark"), "{warning}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap()).unwrap();
    let warnings = &json["run"]["readers"]["warnings"];
    assert_eq!(warnings[0]["reader"], "spark", "{json:#}");
    assert_eq!(
        warnings[0]["columns"],
        serde_json::json!(["`u` (uuid (Parquet UUID))", "`at` (time (Parquet TIME))"])
    );
    assert_eq!(warnings[0]["message"], &warning["warning: ".len()..]);
    // Nothing changed in the file.
    let batch = harness::read_batch(&job.output());
    assert_eq!(
        batch.schema().field(1).data_type(),
        &DataType::FixedSizeBinary(16)
    );
    assert!(!harness::parquet_metadata(&job.output()).contains_key("tributary.for"));

    // With the profile, no warning, and the columns in Spark's forms.
    job.args.readers = vec!["spark".into()];
    let (report, result) = job.run().await;
    result.unwrap();
    assert!(!report.to_string().contains("warning:"), "{report}");
    assert!(
        report.to_string().contains(
            "for spark: `u` as 36-character text, `at` as int64 microseconds since midnight"
        ),
        "{report}"
    );
    let batch = harness::read_batch(&job.output());
    assert_eq!(
        harness::str_column(&batch, "u"),
        [Some("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11".to_string())]
    );
    assert_eq!(harness::i64_column(&batch, "at"), [Some(45_000_500_000)]);
}

/// A column with no exact form for a named reader fails the run before it writes,
/// naming the column and the reader, with the exit code of a bad configuration. Spark
/// resolves names ignoring case and refuses a file holding `id` and `ID`
/// ([COLUMN_ALREADY_EXISTS]).
#[test]
fn a_column_with_no_exact_spark_form_fails_naming_it() {
    let url = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(harness::database("profiles_refused", SETUP));
    let dir = tempfile::tempdir().unwrap();
    harness::write_job(dir.path(), "SELECT id, n AS \"ID\" FROM t", &url);
    let out = harness::tributary_in(
        dir.path(),
        &harness::job_args(
            "run",
            &["-o", "out.parquet", "--for", "spark", "--no-ledger"],
        ),
    );
    assert_eq!(
        out.status.code(),
        Some(exit::CONFIG),
        "{}",
        harness::stderr(&out)
    );
    let stderr = harness::stderr(&out);
    assert!(
        stderr.contains(
            "--for spark: columns `id` and `ID` differ only in case, and Spark resolves column names ignoring case"
        ),
        "{stderr}"
    );
    assert!(!dir.path().join("out.parquet").exists());
    // For DuckDB the same query is fine.
    let out = harness::tributary_in(
        dir.path(),
        &harness::job_args(
            "run",
            &["-o", "out.parquet", "--for", "duckdb", "--no-ledger"],
        ),
    );
    harness::succeeded(&out);
}

/// The user's own option for a column wins over the profile: `--type uuid=binary` keeps
/// the uuid binary under `--for spark`, with a warning that Spark cannot open it.
#[tokio::test]
async fn an_explicit_type_option_wins_over_the_profile() {
    let url = harness::database("profiles_explicit", SETUP).await;
    let mut job = Job::new("SELECT id, u, at FROM t", &[("s1", &url)]);
    job.args.readers = vec!["spark".into()];
    job.args.type_options.push(("uuid".into(), "binary".into()));
    let (report, result) = job.run().await;
    result.unwrap();
    let batch = harness::read_batch(&job.output());
    assert_eq!(
        batch.schema().field(1).data_type(),
        &DataType::FixedSizeBinary(16)
    );
    assert_eq!(batch.schema().field(2).data_type(), &DataType::Int64);
    let summary = report.to_string();
    assert!(
        summary.contains("warning: Spark cannot open `u` (uuid (Parquet UUID))"),
        "{summary}"
    );
}

/// `plan` shows the profile's renderings; a job file takes `for` as a list.
#[test]
fn the_plan_shows_the_profile_and_a_job_file_takes_a_list() {
    let dir = tempfile::tempdir().unwrap();
    harness::write_job(
        dir.path(),
        "SELECT 1 AS x",
        "postgres://postgres@127.0.0.1/none",
    );
    let plan = harness::succeeded(&harness::tributary_in(
        dir.path(),
        &harness::job_args("plan", &["--offline", "--for", "spark,bigquery"]),
    ));
    assert!(plan.contains("for spark,bigquery:\n"), "{plan}");
    assert!(
        plan.contains("  uuid (Parquet UUID) as 36-character text (for Spark, BigQuery)"),
        "{plan}"
    );
    assert!(
        plan.contains(
            "  list of lists (multidimensional array): refused, no exact form for BigQuery"
        ),
        "{plan}"
    );
    std::fs::write(
        dir.path().join("job.toml"),
        "query = \"q.sql\"\nshards = \"s.toml\"\nfor = [\"trino\", \"duckdb\"]\n",
    )
    .unwrap();
    let plan = harness::succeeded(&harness::tributary_in(
        dir.path(),
        &["plan", "--offline", "--job", "job.toml"],
    ));
    assert!(plan.contains("for trino,duckdb:\n"), "{plan}");
    let out = harness::tributary_in(
        dir.path(),
        &harness::job_args("plan", &["--offline", "--for", "sparc"]),
    );
    assert_eq!(out.status.code(), Some(exit::CONFIG));
    assert!(
        harness::stderr(&out)
            .contains("--for: `sparc` is not one of spark, trino, bigquery, duckdb, pandas, any"),
        "{}",
        harness::stderr(&out)
    );
}
