//! Environment variables in the job and shards files, through the binary: `${VAR}`,
//! `${VAR:-default}` and `$$` in string values, and a missing variable named with its
//! line before anything runs.

use crate::harness::{self, i64_column, stderr, str_column, succeeded, tributary_with};

#[test]
fn job_and_shards_files_take_values_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    harness::sqlite_file(
        &dir.path().join("data/orders.db"),
        "CREATE TABLE t (id INTEGER, region TEXT);
         INSERT INTO t VALUES (1, 'eu'), (2, 'us'), (3, 'eu'), (4, 'apac'), (5, 'eu');",
    );
    std::fs::write(
        dir.path().join("q.sql"),
        "SELECT id, :note AS note FROM t WHERE region = :region AND id >= :min ORDER BY id",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("job.toml"),
        r#"query = "q.sql"
output = "${TRIB_OUT}/orders-${TRIB_REGION:-eu}.parquet"
shards = "${TRIB_SHARDS:-s.toml}"

[params]
region = "${TRIB_REGION:-eu}"
min = "${TRIB_MIN}"
note = "$$${TRIB_MIN}, ${TRIB_EMPTY:-as of} $1"
"#,
    )
    .unwrap();
    // Paths from the environment are relative to the file that names them, as written ones.
    std::fs::write(
        dir.path().join("s.toml"),
        "[shards]\norders = \"sqlite://${TRIB_DATA}/orders.db\"\n",
    )
    .unwrap();
    let out = tributary_with(dir.path(), &["run", "--job", "job.toml"], |cmd| {
        cmd.env("TRIB_OUT", "out")
            .env("TRIB_MIN", "2")
            .env("TRIB_DATA", "data")
            .env("TRIB_EMPTY", "")
            .env_remove("TRIB_REGION")
            .env_remove("TRIB_SHARDS");
    });
    succeeded(&out);
    let batch = harness::read_batch(&dir.path().join("out/orders-eu.parquet"));
    assert_eq!(i64_column(&batch, "id"), [Some(3), Some(5)]);
    assert_eq!(
        str_column(&batch, "note"),
        [Some("$2, as of $1".into()), Some("$2, as of $1".into())]
    );
}

#[test]
fn a_missing_variable_exits_3_naming_its_line_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let shard = harness::sqlite_shard(
        dir.path(),
        "a.db",
        "CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1);",
    );
    std::fs::write(dir.path().join("q.sql"), "SELECT x, :day AS day FROM t").unwrap();
    let run = |job: &str, shards: &str| {
        std::fs::write(dir.path().join("job.toml"), job).unwrap();
        std::fs::write(dir.path().join("s.toml"), shards).unwrap();
        let out = tributary_with(dir.path(), &["run", "--job", "job.toml"], |cmd| {
            cmd.env_remove("TRIB_UNSET_DAY")
                .env_remove("TRIB_UNSET_DIR")
                .env_remove("TRIB_DAY");
        });
        assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
        assert!(!dir.path().join("out").exists(), "a failed run wrote");
        stderr(&out)
    };
    let shards = format!("[shards]\na = \"{shard}\"\n");
    // In the job file's parameters.
    let job = "query = \"q.sql\"\nshards = \"s.toml\"\noutput = \"out/${TRIB_DAY:-today}.parquet\"\n\n[params]\nday = \"${TRIB_UNSET_DAY}\"\n";
    let stderr = run(job, &shards);
    assert!(
        stderr.contains(
            "job.toml:6:8: environment variable `TRIB_UNSET_DAY` is not set (`${TRIB_UNSET_DAY:-DEFAULT}` gives a default)"
        ),
        "{stderr}"
    );
    // In the shards file.
    let job = "query = \"q.sql\"\nshards = \"s.toml\"\noutput = \"out/x.parquet\"\n[params]\nday = \"d\"\n";
    let stderr = run(job, "[shards]\na = \"sqlite://${TRIB_UNSET_DIR}/a.db\"\n");
    assert!(
        stderr.contains("s.toml:2:15: environment variable `TRIB_UNSET_DIR` is not set"),
        "{stderr}"
    );
    // In a `[shards]` table of the job file.
    let job = "query = \"q.sql\"\noutput = \"out/x.parquet\"\nparams = { day = \"d\" }\n[shards]\na = \"sqlite://${TRIB_UNSET_DIR}/a.db\"\n";
    let stderr = run(job, "");
    assert!(
        stderr.contains("job.toml:5:15: environment variable `TRIB_UNSET_DIR` is not set"),
        "{stderr}"
    );
}
