//! `tributary backfill`: a job run once per day of a range over PostgreSQL shards, each
//! day writing its own output; reruns do only the days whose output is missing or
//! changed, and a failing day fails the backfill without stopping the others.

use std::path::Path;

use crate::harness::{self, stdout, succeeded, tributary_in};

/// Orders of 2025-01-01 to 2025-01-12 over three shards: shard `s` holds the ids with
/// `id % 3 = s`, day `d` has `d + 2` orders.
async fn shards(dir: &Path, prefix: &str) {
    let mut toml = String::from("[shards]\n");
    for s in 0..3 {
        let url = harness::database(
            &format!("{prefix}_{s}"),
            &format!(
                "CREATE TABLE orders AS
                 SELECT id, day, (id * 1.25)::numeric(10,2) AS amount
                 FROM (SELECT row_number() OVER (ORDER BY d, n)::bigint AS id, d::date AS day
                       FROM generate_series(date '2025-01-01', date '2025-01-12', interval '1 day') AS d,
                            LATERAL generate_series(1, extract(day FROM d)::int + 2) AS n) o
                 WHERE id % 3 = {s}"
            ),
        )
        .await;
        toml.push_str(&format!("s{s} = \"{url}\"\n"));
    }
    std::fs::write(dir.join("shards.toml"), toml).unwrap();
}

/// The rows `day`'s output holds, by id.
fn ids(dir: &Path, day: &str) -> Vec<i64> {
    let batches = harness::read_parquet(&dir.join(format!("out/day={day}/orders.parquet")));
    let mut ids: Vec<i64> = batches
        .iter()
        .flat_map(|b| harness::i64_column(b, "id"))
        .map(Option::unwrap)
        .collect();
    ids.sort();
    ids
}

/// The ids of `day` (1-based day of January 2025), as the generator made them.
fn expected(day: i64) -> Vec<i64> {
    let first: i64 = (1..day).map(|d| d + 2).sum::<i64>() + 1;
    (first..first + day + 2).collect()
}

fn days(n: u32) -> Vec<String> {
    (1..=n).map(|d| format!("2025-01-{d:02}")).collect()
}

fn backfill(dir: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "backfill",
        "--job",
        "job.toml",
        "--from",
        "2025-01-01",
        "--to",
        "2025-01-11",
    ];
    args.extend_from_slice(extra);
    tributary_in(dir, &args)
}

#[tokio::test]
async fn a_backfill_runs_each_day_once_and_again_only_where_its_output_changed() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    shards(dir, "backfill").await;
    std::fs::write(
        dir.join("q.sql"),
        "SELECT id, day, amount FROM orders WHERE day = :day::date",
    )
    .unwrap();
    std::fs::write(
        dir.join("job.toml"),
        "name = \"daily-orders\"\nquery = \"q.sql\"\nshards = \"shards.toml\"\noutput = \"out/day={day}/orders.parquet\"\nledger = \"ledger.db\"\n\n[params]\nday = \"@today\"\n",
    )
    .unwrap();

    let first = succeeded(&backfill(dir, &["--step", "1d", "--parallel", "3"]));
    assert!(
        first.contains(
            "backfill of job `daily-orders`: 10 steps, 10 ran, 0 skipped (already done), 0 failed"
        ),
        "{first}"
    );
    for (d, day) in days(10).iter().enumerate() {
        assert_eq!(ids(dir, day), expected(d as i64 + 1), "{day}");
    }
    assert!(
        !dir.join("out/day=2025-01-11").exists(),
        "--to is not a step"
    );

    let second = succeeded(&backfill(dir, &["--parallel", "3"]));
    assert!(second.contains("10 steps, 0 ran, 10 skipped"), "{second}");

    // One output deleted, one changed by a byte: exactly those two days run again.
    std::fs::remove_file(dir.join("out/day=2025-01-03/orders.parquet")).unwrap();
    let changed = dir.join("out/day=2025-01-07/orders.parquet");
    let mut bytes = std::fs::read(&changed).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    std::fs::write(&changed, bytes).unwrap();
    let third = succeeded(&backfill(dir, &["--parallel", "2"]));
    assert!(third.contains("10 steps, 2 ran, 8 skipped"), "{third}");
    for line in third.lines().filter(|l| l.contains("succeeded")) {
        assert!(
            line.contains("2025-01-03") || line.contains("2025-01-07"),
            "{line}"
        );
    }
    assert_eq!(ids(dir, "2025-01-03"), expected(3));
    assert_eq!(ids(dir, "2025-01-07"), expected(7));
}

#[tokio::test]
async fn a_failing_day_fails_the_backfill_but_not_the_other_days() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    shards(dir, "backfill_fail").await;
    // Day 5 divides by zero on every shard.
    std::fs::write(
        dir.join("q.sql"),
        "SELECT id, day, 1 / (CASE WHEN :day::date = date '2025-01-05' THEN 0 ELSE 1 END) AS one FROM orders WHERE day = :day::date",
    )
    .unwrap();
    std::fs::write(
        dir.join("job.toml"),
        "query = \"q.sql\"\nshards = \"shards.toml\"\noutput = \"out/day={day}/orders.parquet\"\nledger = \"ledger.db\"\n\n[params]\nday = \"@today\"\n",
    )
    .unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "backfill",
            "--job",
            "job.toml",
            "--from",
            "2025-01-03",
            "--to",
            "2025-01-08",
        ];
        args.extend_from_slice(extra);
        tributary_in(dir, &args)
    };
    let out = run(&["--fail-fast"]);
    assert_eq!(out.status.code(), Some(4), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.contains("5 steps, 2 ran, 0 skipped (already done), 1 failed, 2 not run"),
        "{text}"
    );
    assert!(
        text.contains("2025-01-05  failed     exit 4") && text.contains("division by zero"),
        "{text}"
    );
    assert!(!dir.join("out/day=2025-01-06").exists());

    let out = run(&[]);
    assert_eq!(out.status.code(), Some(4), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.contains("5 steps, 2 ran, 2 skipped (already done), 1 failed"),
        "{text}"
    );
    for day in ["2025-01-03", "2025-01-04", "2025-01-06", "2025-01-07"] {
        assert_eq!(ids(dir, day), expected(day[8..].parse().unwrap()), "{day}");
    }
    assert!(!dir.join("out/day=2025-01-05").exists());
}
