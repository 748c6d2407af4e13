//! The live progress as a user sees it: the binary on a terminal 100 columns wide (a
//! detached tmux session, read back with `capture-pane`), and its log lines when stderr is
//! not a terminal; and what it is made of: the row estimates that come with each shard's
//! describe.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::{self, pg_base, stderr, succeeded, tributary_in, write_job};

/// A query that streams for about four seconds, whose row count PostgreSQL's planner
/// knows exactly (`generate_series` with constant bounds): 400,000 rows, pausing 0.2 s
/// every 20,000.
const SLOW_400K: &str = "SELECT g, md5(g::text) AS s, \
     CASE WHEN g % 20000 = 0 THEN pg_sleep(0.2) IS NULL END AS paused \
     FROM generate_series(1, 400000) g";

/// A detached tmux session of its own server (`-L`), killed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    /// Runs `command` (a shell command) in a new session on a terminal of 100 x 20.
    fn start(command: &str) -> Tmux {
        if Command::new("tmux").arg("-V").output().is_err() {
            panic!(
                "tmux is needed to show the progress on a terminal of a known size: \
                 apt-get install tmux (.ci/run installs it)"
            );
        }
        let socket = format!("tributary-it-{}-{:?}", std::process::id(), Instant::now());
        let socket = socket.replace(|c: char| !c.is_ascii_alphanumeric(), "-");
        let tmux = Tmux { socket };
        let status = tmux
            .command()
            .args(["new-session", "-d", "-x", "100", "-y", "20", command])
            .status()
            .expect("tmux runs");
        assert!(status.success(), "tmux new-session failed");
        tmux
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new("tmux");
        cmd.args(["-L", &self.socket]);
        cmd
    }

    /// What the terminal shows now.
    fn screen(&self) -> String {
        let out = self
            .command()
            .args(["capture-pane", "-p"])
            .output()
            .expect("tmux runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The screens seen every 100 ms until one shows `end`, or `limit` has passed.
    fn screens_until(&self, end: &str, limit: Duration) -> Vec<String> {
        let started = Instant::now();
        let mut screens = Vec::new();
        loop {
            let screen = self.screen();
            let over = screen.contains(end);
            screens.push(screen);
            if over {
                return screens;
            }
            assert!(
                started.elapsed() < limit,
                "the run did not end within {limit:?}; last screen:\n{}",
                screens.last().unwrap()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.command().arg("kill-server").status();
    }
}

/// The shell command running the binary on the job in `dir`, then printing its exit
/// code and keeping the terminal open for the screen to be read.
fn shell_command(dir: &Path) -> String {
    let state = Path::new(env!("CARGO_TARGET_TMPDIR")).join("state");
    format!(
        "cd '{}' && XDG_STATE_HOME='{}' '{}' run q.sql --shards s.toml -o out.parquet; echo EXIT=$?; sleep 60",
        dir.display(),
        state.display(),
        env!("CARGO_BIN_EXE_tributary"),
    )
}

/// The words before `rows/s` and `B/s` on a line: its rates.
fn rates(line: &str) -> Vec<&str> {
    let words: Vec<&str> = line.split_whitespace().collect();
    words
        .windows(2)
        .filter(|w| {
            let unit = w[1].trim_end_matches([',', ';']);
            unit == "rows/s" || unit.ends_with("B/s")
        })
        .map(|w| w[0])
        .collect()
}

/// Asserts that a rate reads like `726k` or `84.3`: digits, one decimal at most, a
/// suffix at most.
fn assert_readable(rate: &str, context: &str) {
    let digits = rate.trim_end_matches(['k', 'M', 'G', 'T']);
    let decimals = digits.split_once('.').map_or(0, |(_, d)| d.len());
    assert!(
        !digits.is_empty()
            && digits.chars().all(|c| c.is_ascii_digit() || c == '.')
            && decimals <= 1,
        "the rate {rate:?} is not readable in:\n{context}"
    );
}

#[test]
fn progress_on_a_terminal_shows_the_estimate_a_readable_rate_and_an_eta() {
    let dir = tempfile::tempdir().unwrap();
    write_job(dir.path(), SLOW_400K, &format!("{}/postgres", pg_base()));
    let tmux = Tmux::start(&shell_command(dir.path()));
    let screens = tmux.screens_until("EXIT=", Duration::from_secs(60));
    let last = screens.last().unwrap();
    assert!(last.contains("EXIT=0"), "the run failed:\n{last}");
    assert!(last.contains("a      400,000"), "the summary:\n{last}");
    // A line of the task while it ran, rows counted: `⠙ a  [==>   ]  57.8k/~400k rows
    // ~14%  96.9k rows/s  4.7 MiB/s  ETA 3.5s`.
    let line = screens
        .iter()
        .flat_map(|s| s.lines())
        .find(|l| l.contains("/~400k rows") && !l.contains(" 0/~400k") && l.contains("ETA "))
        .unwrap_or_else(|| {
            panic!(
                "no progress line with rows, estimate and ETA:\n{}",
                screens.join("\n---\n")
            )
        });
    assert!(line.chars().count() <= 100, "{line:?}");
    assert!(line.contains(" ["), "a bar against the estimate: {line:?}");
    let share = line
        .split_whitespace()
        .find(|w| w.starts_with('~') && w.ends_with('%'))
        .unwrap_or_else(|| panic!("no share of the estimate: {line:?}"));
    let percent: u32 = share[1..share.len() - 1].parse().unwrap();
    assert!(percent <= 99, "{line:?}");
    let eta = line
        .split("ETA ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap();
    assert!(
        eta.ends_with('s') && eta.starts_with(|c: char| c.is_ascii_digit()),
        "the ETA is {eta:?} in {line:?}"
    );
    let rates = rates(line);
    assert_eq!(rates.len(), 2, "rows/s and bytes/s: {line:?}");
    for rate in rates {
        assert_readable(rate, line);
    }
}

#[test]
fn a_shard_read_in_partitions_has_a_line_with_its_own_eta() {
    let dir = tempfile::tempdir().unwrap();
    write_job(dir.path(), SLOW_400K, &format!("{}/postgres", pg_base()));
    let command = shell_command(dir.path()).replace(
        " -o out.parquet;",
        " -o out.parquet --partition-on g --partitions 2;",
    );
    let tmux = Tmux::start(&command);
    let screens = tmux.screens_until("EXIT=", Duration::from_secs(60));
    let last = screens.last().unwrap();
    assert!(last.contains("EXIT=0"), "the run failed:\n{last}");
    // Each partition's line, then the shard's: `⠙ a (2 tasks)  [==>   ]  120k/~267k rows
    // ~45%  61.2k rows/s  3.0 MiB/s  ETA 2.4s`, then the total. (A range split may add a
    // partition for NULL keys: the count of tasks is the plan's.)
    let is_shard = |l: &str| l.contains(" a (") && l.contains(" tasks)");
    let screen = screens
        .iter()
        .find(|s| {
            s.lines()
                .any(|l| is_shard(l) && l.contains("ETA ") && !l.contains(" 0/~"))
        })
        .unwrap_or_else(|| {
            panic!(
                "no line of the shard with rows and an ETA:\n{}",
                screens.join("\n---\n")
            )
        });
    let lines: Vec<&str> = screen.lines().filter(|l| l.contains(" rows")).collect();
    let shard = lines.iter().position(|l| is_shard(l)).unwrap();
    let tasks: usize = lines[shard]
        .split(" a (")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(tasks >= 2, "{screen}");
    assert_eq!(
        shard, tasks,
        "the partitions' lines, then the shard's:\n{screen}"
    );
    for (i, line) in lines[..shard].iter().enumerate() {
        let label = format!(" a {}/{tasks} ", i + 1);
        assert!(line.contains(&label), "{label:?}:\n{screen}");
    }
    assert!(lines[shard + 1].contains("total"), "{screen}");
    let line = lines[shard];
    assert!(line.chars().count() <= 100, "{line:?}");
    assert!(line.contains(" ["), "a bar against the estimate: {line:?}");
    let rates = rates(line);
    assert_eq!(rates.len(), 2, "rows/s and bytes/s: {line:?}");
    for rate in rates {
        assert_readable(rate, line);
    }
}

#[test]
fn progress_without_an_estimate_is_a_spinner_with_no_eta() {
    let dir = tempfile::tempdir().unwrap();
    // SQLite has no estimate: 2M rows made up on the fly take a few seconds.
    let url = harness::sqlite_db(dir.path(), "s.db", "CREATE TABLE one(x);");
    write_job(
        dir.path(),
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000000) \
         SELECT x, x * 2 AS y FROM c",
        &url,
    );
    let tmux = Tmux::start(&shell_command(dir.path()));
    let screens = tmux.screens_until("EXIT=", Duration::from_secs(60));
    let last = screens.last().unwrap();
    assert!(last.contains("EXIT=0"), "the run failed:\n{last}");
    let lines: Vec<&str> = screens
        .iter()
        .flat_map(|s| s.lines())
        .filter(|l| l.contains(" rows/s"))
        .collect();
    assert!(
        lines.iter().any(|l| !l.contains(" 0 rows")),
        "no progress line with rows:\n{}",
        screens.join("\n---\n")
    );
    for line in lines {
        assert!(
            !line.contains("ETA"),
            "an ETA without an estimate: {line:?}"
        );
        assert!(!line.contains('~'), "an estimate from nowhere: {line:?}");
        assert!(!line.contains('['), "a bar without a length: {line:?}");
        for rate in rates(line) {
            assert_readable(rate, line);
        }
    }
}

#[test]
fn a_run_off_a_terminal_logs_its_progress_every_ten_seconds() {
    let dir = tempfile::tempdir().unwrap();
    // About 12 s: 20 pauses of 0.6 s.
    let sql = SLOW_400K.replace("pg_sleep(0.2)", "pg_sleep(0.6)");
    write_job(dir.path(), &sql, &format!("{}/postgres", pg_base()));
    let out = tributary_in(
        dir.path(),
        &harness::job_args("run", &["-o", "out.parquet"]),
    );
    succeeded(&out);
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().filter(|l| l.contains("progress: ")).collect();
    assert_eq!(lines.len(), 1, "one line after 10 s:\n{err}");
    // `progress: 313k of ~400k rows (~78%), 13.8 MiB in 10s, 31.4k rows/s, 1.4 MiB/s,
    // ETA 2.8s; 0 of 1 task done`
    let line = lines[0];
    assert!(line.contains(" INFO "), "{line}");
    assert!(line.contains(" of ~400k rows (~"), "{line}");
    assert!(line.contains("ETA "), "{line}");
    assert!(line.contains("0 of 1 task done"), "{line}");
    let rates = rates(line);
    assert_eq!(rates.len(), 2, "{line}");
    for rate in rates {
        assert_readable(rate, line);
    }
}

#[tokio::test]
async fn row_estimates_ride_with_the_describe_and_one_that_fails_harms_it_not() {
    use tributary::plan::TaskQuery;
    use tributary::source::ShardPool;
    let url = harness::database(
        "progress_estimates",
        "CREATE TABLE t (m int4[][]);
         INSERT INTO t SELECT '{{1,2},{3,4}}' FROM generate_series(1, 500);
         ANALYZE t;",
    )
    .await;
    let job = harness::Job::new("SELECT m FROM t", &[("s", &url)]);
    let config = tributary::JobConfig::resolve(job.args.clone()).expect("the job resolves");
    let pool = ShardPool::open(&config.shards[0], 2, &config.options).unwrap();
    let query = |sql: &str| TaskQuery::Postgres { sql: sql.into() };
    let (described, estimates) = pool
        .describe_estimating(
            &query("SELECT m FROM t"),
            &[
                &query("SELECT m FROM t"),
                &query("SELECT m FROM t WHERE false"),
                // Planning folds the constant, and fails: the transaction is aborted
                // until the savepoint is rolled back, and the estimates after it fail too.
                &query("SELECT 1 / 0"),
                &query("SELECT m FROM t"),
            ],
        )
        .await;
    assert_eq!(estimates, [Some(500.0), Some(0.0), None, None]);
    // The describe came after the failure, and its catalog look-up (the array's declared
    // dimensions) too: both as without the estimates.
    let schema = described.expect("a PostgreSQL shard is described").unwrap();
    assert_eq!(schema.field(0).data_type().to_string(), "List(List(Int32))");
    // The connection went back to the pool out of any transaction.
    let (again, none) = pool
        .describe_estimating(&query("SELECT 1 AS one"), &[])
        .await;
    assert!(again.unwrap().is_ok());
    assert!(none.is_empty());
}
