//! Faults: network trouble through the in-test proxy, server-side kills, connection
//! limits, deadlines, signals, crashes and a full disk. Each checks the error, the exit
//! code, that no output (or temporary) is left, and that no statement of ours is left
//! running on the server.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tributary::error::exit;

use crate::harness::{
    self, Job, active_queries, assert_gone, bin, concat, i64_column, job_args, stderr, succeeded,
    tributary_in, write_job,
};
use crate::proxy::{Fault, Proxy};

const ROWS: &str = "CREATE TABLE t AS SELECT g::bigint AS id, repeat(md5(g::text), 4) AS pad FROM generate_series(1, 60000) g;";

#[tokio::test]
async fn a_server_that_never_answers_times_out_at_connect() {
    let proxy = Proxy::start(|_| Fault::BlackHole).await;
    let mut job = Job::new("SELECT 1 AS x", &[("hole", &proxy.url("postgres"))]);
    job.args.connect_timeout = Some(Duration::from_secs(1));
    job.args.retries = Some(1);
    let started = Instant::now();
    let err = job.run_err().await;
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "took {:?}",
        started.elapsed()
    );
    let msg = err.to_string();
    assert!(
        msg.contains("shard `hole`") && msg.contains("timed out"),
        "{msg}"
    );
    assert_eq!(err.exit_code(), exit::UNAVAILABLE);
    assert_eq!(
        proxy.accepted(),
        2,
        "the up-front describe of the shard, which is the task's first attempt, and one retry"
    );
}

#[tokio::test]
async fn a_stalled_stream_is_cancelled_and_reported() {
    let url = harness::database("fault_stall", ROWS).await;
    let db = harness::db("fault_stall");
    let proxy = Proxy::start(|_| Fault::StallAfter(400_000)).await;
    let mut job = Job::new(
        "SELECT id, pad, 'stall-marker' AS m FROM t",
        &[("slow", &proxy.url(&db))],
    );
    job.args.stall_timeout = Some(Duration::from_secs(1));
    job.args.retries = Some(0);
    let err = job.run_err().await;
    let msg = err.to_string();
    assert!(
        msg.contains("shard `slow`") && msg.contains("stalled"),
        "{msg}"
    );
    assert_eq!(err.exit_code(), exit::TIMEOUT);
    assert!(url.contains(&db));
    assert_gone("stall-marker", Duration::from_secs(3)).await;
}

#[tokio::test]
async fn a_cut_connection_is_retried_and_the_output_is_exact() {
    let url = harness::database("fault_cut", ROWS).await;
    let db = harness::db("fault_cut");
    let expected = concat(
        &Job::new("SELECT id, pad FROM t", &[("s", &url)])
            .run_ok()
            .await,
    );
    // Latency alone changes nothing.
    let proxy = Proxy::start(|_| Fault::Delay(Duration::from_millis(2))).await;
    let got = concat(
        &Job::new("SELECT id, pad FROM t", &[("s", &proxy.url(&db))])
            .run_ok()
            .await,
    );
    assert_eq!(got, expected, "through a slow link");
    for fault in [Fault::CutAfter(500_000), Fault::ResetAfter(700_000)] {
        // The first connection breaks mid-stream; the retry's connection is clean.
        let proxy = Proxy::failing_first(fault).await;
        let mut job = Job::new("SELECT id, pad FROM t", &[("s", &proxy.url(&db))]);
        job.args.row_group_size = Some(5000);
        let (report, result) = job.run().await;
        result.unwrap_or_else(|e| panic!("{fault:?}: {e}\n{report}"));
        assert_eq!(report.tasks[0].attempts, 2, "{fault:?}: {report}");
        let got = harness::read_batch(&job.output());
        assert_eq!(
            got, expected,
            "{fault:?}: the output differs from the fault-free run"
        );
        harness::assert_no_temporaries(job.dir.path());
    }
}

#[tokio::test]
async fn a_terminated_backend_is_retried() {
    let url = harness::database("fault_terminate", "SELECT 1").await;
    let sql = "SELECT g::bigint AS id, 'terminate-marker' AS m, pg_sleep(0.001)::text AS s FROM generate_series(1, 3000) g";
    let job = Job::new(sql, &[("s", &url)]);
    let killer = tokio::spawn(async {
        let admin = harness::connect("postgres").await;
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let n = admin
                .execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%terminate-marker%' AND query LIKE 'COPY%' AND pid <> pg_backend_pid()",
                    &[],
                )
                .await
                .unwrap();
            if n > 0 {
                return n;
            }
        }
        0
    });
    let (report, result) = job.run().await;
    assert_eq!(
        killer.await.unwrap(),
        1,
        "the backend should have been found and terminated"
    );
    result.unwrap_or_else(|e| panic!("{e}\n{report}"));
    assert_eq!(report.tasks[0].attempts, 2, "{report}");
    let ids = i64_column(&harness::read_batch(&job.output()), "id");
    assert_eq!(ids, (1..=3000).map(Some).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_connection_limit_below_the_pool_is_waited_out() {
    let role = harness::db("limited");
    let url = harness::database(
        "fault_limit",
        "CREATE TABLE t AS SELECT generate_series(1, 90)::bigint AS id",
    )
    .await;
    let admin = harness::connect("postgres").await;
    admin
        .batch_execute(&format!(
            "DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN CONNECTION LIMIT 1; GRANT pg_read_all_data TO {role}"
        ))
        .await
        .unwrap();
    let limited = url.replacen("postgres://postgres@", &format!("postgres://{role}@"), 1);
    let sql = "SELECT id FROM t CROSS JOIN (SELECT pg_sleep(0.3)) s";
    let mut job = Job::new(sql, &[("s", &limited)]);
    job.args.pool_size = Some(3);
    job.args.concurrency = Some(3);
    job.args.no_snapshot = true;
    job.args.retries = Some(8);
    let mut config = tributary::JobConfig::resolve(job.args.clone()).unwrap();
    config.options.partition = Some(tributary::config::PartitionSpec::Predicates(vec![
        "id <= 30".into(),
        "id > 30 AND id <= 60".into(),
        "id > 60".into(),
    ]));
    let (report, result) = tributary::run(&config, false, std::future::pending()).await;
    result.unwrap_or_else(|e| panic!("{e}\n{report}"));
    assert!(
        report.tasks.iter().any(|t| t.attempts > 1),
        "some task should have met the limit: {report}"
    );
    let mut ids: Vec<i64> = i64_column(&harness::read_batch(&job.output()), "id")
        .into_iter()
        .map(Option::unwrap)
        .collect();
    ids.sort();
    assert_eq!(ids, (1..=90).collect::<Vec<_>>());
}

#[tokio::test]
async fn after_a_timeout_the_next_task_starts_at_once_within_the_pool() {
    let url = harness::database(
        "fault_next",
        "CREATE TABLE t AS SELECT generate_series(1, 10)::bigint AS id",
    )
    .await;
    let db = harness::db("fault_next");
    // Partition 1 sleeps past the deadline; partition 2 is instant. One connection.
    let sql = "SELECT id, 'next-marker' AS m, pg_sleep(CASE WHEN id = 1 THEN 30 ELSE 0 END)::text AS s FROM t";
    let mut job = Job::new(sql, &[("s", &url)]);
    job.args.pool_size = Some(1);
    job.args.concurrency = Some(1);
    job.args.query_timeout = Some(Duration::from_secs(1));
    job.args.allow_partial = true;
    job.args.no_snapshot = true;
    let mut config = tributary::JobConfig::resolve(job.args.clone()).unwrap();
    config.options.partition = Some(tributary::config::PartitionSpec::Predicates(vec![
        "id = 1".into(),
        "id > 1".into(),
    ]));
    let sampler = harness::most_connections(db, "%", 30, Duration::from_millis(50));
    let started = Instant::now();
    let (report, result) = tributary::run(&config, false, std::future::pending()).await;
    let elapsed = started.elapsed();
    harness::assert_partial(&result, &report, 1, 2);
    harness::assert_timed_out(&report, 0);
    assert_eq!(
        report.tasks[1].outcome,
        tributary::report::Outcome::Ok,
        "{report}"
    );
    assert!(
        report.tasks[1].duration < Duration::from_millis(1500),
        "the next task waited: {report}"
    );
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    assert!(
        sampler.await.unwrap() <= 1,
        "more connections than the pool allows"
    );
    assert_gone("next-marker", Duration::from_secs(2)).await;
}

#[tokio::test]
async fn writes_are_refused_and_the_database_is_unchanged() {
    let url = harness::database(
        "fault_readonly",
        "CREATE TABLE t (x int); INSERT INTO t VALUES (1); CREATE SEQUENCE s;",
    )
    .await;
    for sql in [
        "INSERT INTO t VALUES (2) RETURNING x",
        "SELECT nextval('s') AS n",
        "DELETE FROM t RETURNING x",
    ] {
        let err = Job::new(sql, &[("s", &url)]).run_err().await;
        let msg = err.to_string();
        assert!(
            msg.contains("read-only transaction") && msg.contains("25006"),
            "{sql}: {msg}"
        );
        assert_eq!(err.exit_code(), exit::DATA);
    }
    let client = harness::connect(&harness::db("fault_readonly")).await;
    let n: i64 = client
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("a.db");
    harness::sqlite_file(&db, "CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1);");
    let err = Job::new(
        "INSERT INTO t VALUES (2) RETURNING x",
        &[("lite", &format!("sqlite://{}", db.display()))],
    )
    .run_err()
    .await;
    assert!(err.to_string().contains("readonly"), "{err}");
    assert_eq!(
        harness::sqlite_query(&db, "SELECT count(*) FROM t").trim(),
        "1"
    );
}

#[tokio::test]
async fn signals_cancel_every_statement_and_leave_nothing() {
    let url = harness::database("fault_signal", "SELECT 1").await;
    for (signal, code) in [("INT", exit::INTERRUPTED), ("TERM", exit::TERMINATED)] {
        let dir = tempfile::tempdir().unwrap();
        let marker = format!("signal-marker-{signal}");
        write_job(
            dir.path(),
            &format!("SELECT pg_sleep(30)::text AS s, '{marker}' AS m"),
            &url,
        );
        let child = bin()
            .current_dir(dir.path())
            .args(job_args("run", &["-o", "out.parquet"]))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Wait until the statement runs on the server.
        let deadline = Instant::now() + Duration::from_secs(10);
        while active_queries(&marker).await.is_empty() {
            assert!(Instant::now() < deadline, "the query never started");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let out = harness::signal_and_wait(child, signal, code);
        assert!(stderr(&out).contains("interrupted"));
        assert!(!dir.path().join("out.parquet").exists());
        harness::assert_no_temporaries(dir.path());
        assert_gone(&marker, Duration::from_secs(2)).await;
    }
}

#[tokio::test]
async fn a_crash_leaves_no_output_and_the_next_run_cleans_up() {
    let url = harness::database("fault_crash", "CREATE TABLE t AS SELECT g::bigint AS id, md5(g::text) AS pad FROM generate_series(1, 400000) g;").await;
    let dir = tempfile::tempdir().unwrap();
    write_job(
        dir.path(),
        "SELECT t.id, t.pad FROM t, LATERAL (SELECT CASE WHEN t.id % 50000 = 0 THEN pg_sleep(0.2) END) s",
        &url,
    );
    let mut child = bin()
        .current_dir(dir.path())
        .args(job_args(
            "run",
            &["-o", "out.parquet", "--row-group-size", "10000"],
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let temporary = || {
        std::fs::read_dir(dir.path()).unwrap().flatten().any(|e| {
            e.file_name().to_string_lossy().contains(".tributary-")
                && e.metadata().unwrap().len() > 0
        })
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !temporary() {
        assert!(Instant::now() < deadline, "no data was written");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(
        !dir.path().join("out.parquet").exists(),
        "a crash must leave no output"
    );
    assert!(
        temporary(),
        "the crashed run's temporary file is still there"
    );
    write_job(dir.path(), "SELECT 1 AS x", &url);
    succeeded(&tributary_in(
        dir.path(),
        &job_args("run", &["-o", "out.parquet"]),
    ));
    harness::assert_no_temporaries(dir.path());
}

#[tokio::test]
async fn an_unwritable_output_is_a_clear_error_before_any_query() {
    let url = harness::database("fault_unwritable", "SELECT 1").await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("not-a-dir"), b"").unwrap();
    write_job(
        dir.path(),
        "SELECT pg_sleep(5)::text AS s, 'unwritable-marker' AS m",
        &url,
    );
    let started = Instant::now();
    let out = tributary_in(
        dir.path(),
        &job_args("run", &["-o", "not-a-dir/out.parquet"]),
    );
    let stderr = stderr(&out);
    assert_eq!(out.status.code(), Some(exit::OUTPUT), "{stderr}");
    assert!(stderr.contains("not-a-dir/out.parquet"), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the query ran before the output was checked"
    );
}

#[tokio::test]
async fn a_file_size_limit_reached_while_writing_cancels_and_cleans_up() {
    let url = harness::database("fault_fsize", "SELECT 1").await;
    let dir = tempfile::tempdir().unwrap();
    write_job(
        dir.path(),
        "SELECT g::bigint AS id, md5(g::text) || md5((g * 7)::text) AS pad, 'fsize-marker' AS m FROM generate_series(1, 3000000) g",
        &url,
    );
    // The file-size limit is in 512-byte blocks for sh; SIGXFSZ is ignored so that the
    // write fails with EFBIG instead of killing the process.
    let script = format!(
        "trap '' XFSZ; ulimit -f 2048; exec {} run q.sql --shards s.toml -o out.parquet --row-group-size 20000",
        env!("CARGO_BIN_EXE_tributary")
    );
    let out = Command::new("sh")
        .current_dir(dir.path())
        .args(["-c", &script])
        .output()
        .unwrap();
    let stderr = stderr(&out);
    assert_eq!(out.status.code(), Some(exit::OUTPUT), "{stderr}");
    assert!(
        stderr.contains("out.parquet") && stderr.to_lowercase().contains("too large"),
        "{stderr}"
    );
    assert!(!dir.path().join("out.parquet").exists());
    harness::assert_no_temporaries(dir.path());
    assert_gone("fsize-marker", Duration::from_secs(2)).await;
}

#[test]
fn every_exit_code_is_distinct_and_documented() {
    let codes = [
        exit::SUCCESS,
        exit::FAILURE,
        exit::USAGE,
        exit::CONFIG,
        exit::DATA,
        exit::UNAVAILABLE,
        exit::TIMEOUT,
        exit::PARTIAL,
        exit::OUTPUT,
        exit::INTERRUPTED,
        exit::TERMINATED,
    ];
    let unique: std::collections::HashSet<_> = codes.iter().collect();
    assert_eq!(unique.len(), codes.len());
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    for code in codes {
        assert!(
            readme.contains(&format!("| {code} "))
                || readme.contains(&format!("{code} / "))
                || readme.contains(&format!("/ {code} ")),
            "exit code {code} is not in README's table"
        );
    }
}

#[tokio::test]
async fn a_slow_shard_holds_back_neither_the_others_queries_nor_the_widening_of_types() {
    // The narrow shard answers at once; the wide one is behind a link that delays every
    // reply by DELAY, so it is described no sooner than 2 x DELAY after the start (the
    // reply to the connection's startup, then the one to the prepare). The narrow
    // shard's rows must wait for it before anything is encoded (the schema is fixed by
    // the first row group), but the narrow shard's query need not.
    const DELAY: Duration = Duration::from_secs(1);
    let narrow = harness::database(
        "slow_describe_narrow",
        "CREATE TABLE t (id int4, label text);
         INSERT INTO t SELECT g, 'n' || g FROM generate_series(1, 20000) g;",
    )
    .await;
    harness::database(
        "slow_describe_wide",
        "CREATE TABLE t (id int8, label text);
         INSERT INTO t VALUES (9000000000, 'wide');",
    )
    .await;
    let proxy = Proxy::start(|_| Fault::Delay(DELAY)).await;
    let wide = proxy.url(&harness::db("slow_describe_wide"));
    let mut job = Job::new(
        "SELECT id, label, extract(epoch FROM clock_timestamp())::float8 AS ran_at FROM t",
        &[("narrow", &narrow), ("wide", &wide)],
    );
    job.args.shard_column = Some("shard".into());
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let batch = concat(&job.run_ok().await);
    assert_eq!(
        batch.schema().field_with_name("id").unwrap().data_type(),
        &arrow::datatypes::DataType::Int64
    );
    assert_eq!(batch.num_rows(), 20001);
    let ids = i64_column(&batch, "id");
    let shards = harness::str_column(&batch, "shard");
    let ran_at = batch
        .column_by_name("ran_at")
        .unwrap()
        .as_any()
        .downcast_ref::<arrow::array::Float64Array>()
        .unwrap();
    let labels = harness::str_column(&batch, "label");
    let mut narrow_ran = Vec::new();
    for (i, shard) in shards.iter().enumerate() {
        if shard.as_deref() == Some("wide") {
            assert_eq!(ids[i], Some(9_000_000_000));
            assert_eq!(labels[i].as_deref(), Some("wide"));
        } else {
            assert_eq!(
                ids[i],
                Some(narrow_ran.len() as i64 + 1),
                "narrow rows in order"
            );
            narrow_ran.push(ran_at.value(i));
        }
    }
    let last = narrow_ran.iter().copied().fold(f64::MIN, f64::max) - started;
    assert!(
        last < DELAY.as_secs_f64(),
        "the narrow shard's query ran {last:.3}s after the start: it waited for the wide \
         shard to be described"
    );
}

#[tokio::test]
async fn waiting_for_a_slow_shard_to_be_described_does_not_count_against_the_others_deadlines() {
    // The healthy shard's rows outgrow the channel's budget, so its task waits, held by
    // the merger, until the slow shard's describe gives up (at the deadline, as the
    // describe's own limit is the deadline when one is set). That wait is not its own.
    const DEADLINE: Duration = Duration::from_secs(3);
    let healthy = harness::database(
        "held_deadline_healthy",
        "CREATE TABLE t AS SELECT g::bigint AS id, repeat(md5(g::text), 2) AS pad FROM generate_series(1, 300000) g;",
    )
    .await;
    harness::database(
        "held_deadline_slow",
        "CREATE TABLE t AS SELECT 1::bigint AS id, 'slow' AS pad",
    )
    .await;
    let proxy = Proxy::start(|_| Fault::Delay(DEADLINE)).await;
    let slow = proxy.url(&harness::db("held_deadline_slow"));
    let mut job = Job::new(
        "SELECT id, pad FROM t",
        &[("healthy", &healthy), ("slow", &slow)],
    );
    job.args.query_timeout = Some(DEADLINE);
    job.args.allow_partial = true;
    let (report, result) = job.run().await;
    harness::assert_partial(&result, &report, 1, 2);
    assert_eq!(
        report.tasks[0].outcome,
        tributary::report::Outcome::Ok,
        "{report}"
    );
    harness::assert_timed_out(&report, 1);
    let batch = harness::read_batch(&job.output());
    let ids = i64_column(&batch, "id");
    assert_eq!(ids.len(), 300_000);
    assert_eq!(ids.iter().flatten().sum::<i64>(), 300_000 * 300_001 / 2);
}

#[tokio::test]
async fn a_retried_task_is_left_out_by_the_footer_without_rewriting_the_file() {
    let url = harness::database("fault_footer", ROWS).await;
    let db = harness::db("fault_footer");
    // Small batches and row groups, so that the attempt that is cut has surely written
    // row groups of its own.
    let run = |shard: String| async move {
        let mut job = Job::new("SELECT id, pad FROM t", &[("s", &shard)]);
        job.args.row_group_size = Some(1000);
        let mut config = tributary::JobConfig::resolve(job.args.clone()).unwrap();
        config.options.batch_size = 500;
        let (report, result) = tributary::run(&config, false, std::future::pending()).await;
        result.unwrap_or_else(|e| panic!("{e}\n{report}"));
        (job, report)
    };
    let (clean, _) = run(url.clone()).await;
    let expected = harness::read_batch(&clean.output());
    // The first connection (the first attempt's stream) is cut after 4 MB, about 27,000
    // rows: what was in flight when it closed may be lost, but most has been decoded and
    // written by then. The retry's connection goes through.
    let proxy = Proxy::failing_first(Fault::CutAfter(4_000_000)).await;
    let (job, report) = run(proxy.url(&db)).await;
    assert_eq!(report.tasks[0].attempts, 2, "{report}");
    let path = job.output();
    assert_eq!(
        harness::read_batch(&path),
        expected,
        "the output differs from the fault-free run"
    );
    // Not rewritten: the cut attempt's row groups are still at the head of the file, and
    // the first kept one starts right after them.
    let reader = harness::page_indexed_reader(&path);
    let meta = reader.metadata().clone();
    assert_eq!(meta.num_row_groups(), 60);
    assert_eq!(meta.file_metadata().num_rows(), 60_000);
    let (start, _) = meta.row_group(0).column(0).byte_range();
    assert!(
        start > 4,
        "the file was rewritten: its first row group starts at {start}"
    );
    let output = report.output.clone().unwrap();
    assert!(
        output.unreferenced_bytes > 0,
        "the cut attempt wrote no row group: {report}"
    );
    assert!(
        report
            .to_string()
            .contains("unreferenced from failed attempts"),
        "{report}"
    );
    assert_eq!(output.bytes, std::fs::metadata(&path).unwrap().len());
    assert_eq!(
        start,
        4 + output.unreferenced_bytes,
        "the first kept row group's offset"
    );
    // The page indexes are the kept groups': every page lies in its column chunk.
    let offsets = meta.offset_index().expect("an offset index");
    let columns = meta.column_index().expect("a column index");
    assert_eq!((offsets.len(), columns.len()), (60, 60));
    for (g, group) in meta.row_groups().iter().enumerate() {
        for (c, column) in group.columns().iter().enumerate() {
            let (start, len) = column.byte_range();
            for page in offsets[g][c].page_locations() {
                let at = page.offset as u64;
                assert!(
                    at >= start && at + page.compressed_page_size as u64 <= start + len,
                    "row group {g} column {c}: a page at {at} outside {start}..{}",
                    start + len
                );
            }
            assert_eq!(offsets[g][c].page_locations()[0].first_row_index, 0);
        }
    }
    let rows: usize = reader.build().unwrap().map(|b| b.unwrap().num_rows()).sum();
    assert_eq!(rows, 60_000, "read with the page index");

    // Other readers follow the footer too.
    let script = "import sys, duckdb, pyarrow.parquet as pq\n\
                  t = pq.read_table(sys.argv[1])\n\
                  print(t.num_rows, sum(t.column('id').to_pylist()))\n\
                  print(*duckdb.connect().execute(\"SELECT count(*), sum(id) FROM read_parquet(?)\", [sys.argv[1]]).fetchone())\n";
    let out = Command::new(crate::readers::python())
        .args(["-c", script])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(succeeded(&out), "60000 1800030000\n60000 1800030000\n");
}
