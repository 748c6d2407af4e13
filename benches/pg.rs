//! The PostgreSQL benchmark, run with `cargo bench --bench pg -- <export|fanout>`;
//! docs/performance.md describes it and records its figures.
//!
//! - `export` generates a lineitem-like table (15 columns, ~1% NULLs, deterministic) of
//!   1M and 10M rows, then runs the single-stream COPY drain (`psql -c "COPY (...) TO
//!   STDOUT (FORMAT binary)" > /dev/null`) and tributary alternately, several times in the
//!   same run, over the same URL (so with the same TLS setting), and prints medians of wall
//!   time, rows/s, Parquet MB/s, output size and peak RSS, with ratios to the baseline.
//! - `fanout` runs one query that sleeps 250 ms on the server and returns a few thousand
//!   rows on 64 shards at once, against the same run one task at a time, and samples
//!   `pg_stat_activity` to check that the connections never exceed the configured pools.
//!
//! - `combine` splits a lineitem table over 4 databases (2.5M rows each) and runs
//!   cross-shard queries: an aggregate against the slowest shard's own query (the four
//!   run at once by psql), a top-100 that must take at most 100 rows from each shard, and
//!   a GROUP BY of 1M groups under `--memory-limit` values, with peak RSS.
//!
//! Peak RSS is measured by `/usr/bin/time` (GNU time) around each child process. Numbers
//! are medians because the machine is shared: alternating the contenders in one run
//! exposes them to the same noise, so the ratios are what to read.

mod common;
mod text_order;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};

use common::{
    Contender, ExportOptions, Result, db_url, export_report, lineitem_table, load_average, measure,
    median, parquet_rows, peers_python, repository, require_gnu_time, run_alternately,
    run_with_input, tributary_contenders, tributary_exe, tributary_run,
};

// As in the tributary binary, so that `decode` measures the allocator it runs with.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Bump when `lineitem.sql` changes: tables stamped otherwise are generated again.
const GENERATOR_VERSION: &str = "tributary-bench lineitem v1";

#[derive(Parser)]
#[command(about = "tributary's PostgreSQL benchmark (see docs/performance.md)")]
struct Cli {
    #[command(subcommand)]
    command: Bench,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true, global = true)]
    bench: bool,
}

#[derive(Subcommand)]
enum Bench {
    /// Export lineitem tables to Parquet beside the COPY-drain baseline.
    Export(ExportArgs),
    /// 64 shards whose query sleeps 250 ms: concurrent against one by one.
    Fanout(FanoutArgs),
    /// Per-column compressed sizes and encodings of Parquet files (to compare writers).
    Sizes { files: Vec<PathBuf> },
    /// Cross-shard combining over 4 shards of 2.5M rows: aggregate, top-k, 1M groups.
    Combine(CombineArgs),
    /// The COPY decoder alone, in this process: lineitem_1m's binary COPY stream, captured
    /// once, decoded row by row (one slice per tuple, as the server's CopyData messages
    /// arrive) into batches of 8192 rows. No network, no Parquet.
    Decode(DecodeArgs),
    /// The Python package's `read_sql` into a pyarrow.Table beside ConnectorX's, and the
    /// COPY drain: the package is built in release mode (maturin) into a venv under --out.
    Python(PythonArgs),
    /// Profile plain exports under callgrind and write link/plain-path.order, the functions
    /// the linker lays out together (build.rs).
    TextOrder(text_order::TextOrderArgs),
}

#[derive(clap::Args)]
struct PythonArgs {
    /// Server URL without a database. Both libraries read with its TLS setting; the
    /// default is plaintext, so that they read alike whatever their own defaults.
    #[arg(
        long,
        default_value = "postgres://postgres@127.0.0.1:5432?sslmode=disable"
    )]
    server: String,
    #[arg(long, default_value = "tp_bench")]
    database: String,
    /// Table sizes to run, in rows.
    #[arg(long, value_delimiter = ',', default_values_t = [10_000_000u64])]
    rows: Vec<u64>,
    /// Timed runs of each contender.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// The Python 3 the venv is made with.
    #[arg(long, default_value = "python3")]
    python: String,
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
}

#[derive(clap::Args)]
struct DecodeArgs {
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432")]
    server: String,
    #[arg(long, default_value = "tp_bench")]
    database: String,
    /// Timed passes over the stream.
    #[arg(long, default_value_t = 9)]
    runs: usize,
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
}

#[derive(clap::Args)]
struct CombineArgs {
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432")]
    server: String,
    /// Shards: databases `tp_bench_c0`, `tp_bench_c1`, ... on the server.
    #[arg(long, default_value_t = 4)]
    shards: u64,
    /// Rows of each shard's `lineitem` (shard i holds rows i*N+1 ..= (i+1)*N).
    #[arg(long, default_value_t = 2_500_000)]
    rows: u64,
    /// Timed runs of each contender.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// The `--memory-limit` values the 1M-group query runs under.
    #[arg(long, value_delimiter = ',', default_values_t = ["256MB".to_string(), "64MB".to_string(), "16GB".to_string()])]
    memory_limits: Vec<String>,
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
}

#[derive(clap::Args)]
struct ExportArgs {
    /// Server URL without a database (the benchmark uses database `tp_bench`). Its TLS
    /// setting (libpq's `sslmode`, default prefer) applies to every contender alike.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432")]
    server: String,
    #[command(flatten)]
    export: ExportOptions,
    /// Also run pg2parquet (from PATH) with zstd as a contender.
    #[arg(long)]
    pg2parquet: bool,
}

#[derive(clap::Args)]
struct FanoutArgs {
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432")]
    server: String,
    #[arg(long, default_value = "tp_bench_fan")]
    database: String,
    /// Shards (entries in the shards file, all on the benchmark database).
    #[arg(long, default_value_t = 64)]
    shards: usize,
    /// Server-side sleep of each shard's query, in milliseconds.
    #[arg(long, default_value_t = 250)]
    sleep_ms: u64,
    /// Rows each shard returns.
    #[arg(long, default_value_t = 3000)]
    rows: u64,
    /// tributary's `--concurrency`.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// tributary's `--pool-size` (connections per shard).
    #[arg(long, default_value_t = 1)]
    pool_size: usize,
    /// Timed concurrent runs.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
}

fn main() {
    let cli = Cli::parse();
    require_gnu_time();
    let result = match cli.command {
        Bench::Export(args) => export(&args),
        Bench::Fanout(args) => fanout(&args),
        Bench::Sizes { files } => sizes(&files),
        Bench::Decode(args) => decode(&args),
        Bench::Combine(args) => combine(&args),
        Bench::Python(args) => python(&args),
        Bench::TextOrder(args) => text_order::text_order(&args),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn psql(url: &str, sql: &str) -> Result<String> {
    let args = [url, "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-c", sql];
    run_with_input("psql", &args, &[], "").map_err(|e| format!("psql `{sql}`: {e}"))
}

fn psql_file(url: &str, script: &str) -> Result<()> {
    let args = [url, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", "-"];
    run_with_input("psql", &args, &[], script).map_err(|e| format!("psql script: {e}"))?;
    Ok(())
}

fn ensure_database(server: &str, database: &str) -> Result<()> {
    let admin = db_url(server, "postgres");
    let exists = psql(
        &admin,
        &format!("SELECT 1 FROM pg_database WHERE datname = '{database}'"),
    )?;
    if exists.is_empty() {
        psql(&admin, &format!("CREATE DATABASE {database}"))?;
    }
    Ok(())
}

/// Generates `table` with `rows` rows unless it exists with this generator's stamp.
fn ensure_lineitem(url: &str, table: &str, rows: u64) -> Result<()> {
    ensure_lineitem_rows(
        url,
        table,
        1,
        rows,
        format!("{GENERATOR_VERSION} rows={rows}"),
    )
}

/// Generates `table` with the rows numbered `first..=last` unless it exists with `stamp`.
fn ensure_lineitem_rows(
    url: &str,
    table: &str,
    first: u64,
    last: u64,
    stamp: String,
) -> Result<()> {
    let rows = last + 1 - first;
    let current = psql(
        url,
        &format!("SELECT obj_description(to_regclass('{table}'), 'pg_class')"),
    )?;
    if current == stamp {
        return Ok(());
    }
    eprintln!("generating {table} ({rows} rows; once, then reused)...");
    let started = Instant::now();
    let script = include_str!("lineitem.sql")
        .replace(":first", &first.to_string())
        .replace(":last", &last.to_string())
        .replace(":table_pkey", &format!("{table}_pkey"))
        .replace(":table", table)
        .replace(":stamp", &stamp);
    psql_file(url, &script)?;
    eprintln!("generated {table} in {:.1?}", started.elapsed());
    Ok(())
}

fn tls_setting(url: &str) -> String {
    url.split_once('?')
        .and_then(|(_, q)| q.split('&').find_map(|kv| kv.strip_prefix("sslmode=")))
        .unwrap_or("prefer (libpq's default: TLS when the server offers it)")
        .to_string()
}

fn export(args: &ExportArgs) -> Result<()> {
    ensure_database(&args.server, &args.export.database)?;
    let url = db_url(&args.server, &args.export.database);
    std::fs::create_dir_all(&args.export.out).map_err(|e| e.to_string())?;
    let out = args.export.out.canonicalize().map_err(|e| e.to_string())?;
    for &rows in &args.export.rows {
        ensure_lineitem(&url, &lineitem_table(rows), rows)?;
    }
    println!(
        "tributary export benchmark: {} runs each, alternating; TLS: {}; {} cores; load average {}",
        args.export.runs,
        tls_setting(&url),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_average()
    );
    // Whether the build under test has its plain path laid out together (build.rs): the
    // order file's names stop matching when the toolchain or a locked crate changes.
    let builds = args.export.builds.iter().filter_map(|b| b.split_once('='));
    for (label, exe) in std::iter::once(("tributary", tributary_exe())).chain(builds) {
        let (found, listed) = text_order::order_coverage(Path::new(exe))?;
        println!("{label}: defines {found} of link/plain-path.order's {listed} functions");
    }
    for &rows in &args.export.rows {
        export_one(args, &url, &out, &lineitem_table(rows), rows)?;
    }
    Ok(())
}

fn export_one(args: &ExportArgs, url: &str, out: &Path, table: &str, rows: u64) -> Result<()> {
    let query = format!("SELECT * FROM {table}");
    let query_file = out.join(format!("{table}.sql"));
    std::fs::write(&query_file, &query).map_err(|e| e.to_string())?;
    let shards_file = out.join("export-shards.toml");
    std::fs::write(&shards_file, format!("[shards]\nbench = \"{url}\"\n"))
        .map_err(|e| e.to_string())?;

    let mut contenders = vec![Contender::new(
        "COPY drain (psql)",
        "psql",
        vec![
            url.to_string(),
            "-X".into(),
            "-q".into(),
            "-c".into(),
            format!("COPY ({query}) TO STDOUT (FORMAT binary)"),
        ],
    )];
    contenders.extend(tributary_contenders(
        out,
        table,
        &query_file,
        &shards_file,
        &args.export,
    )?);
    if args.pg2parquet {
        let output = out.join(format!("{table}-pg2parquet.parquet"));
        let command = pg2parquet_args(url, &query, &output);
        let mut pg2parquet =
            Contender::new("pg2parquet (zstd)", "pg2parquet", command).writing(output);
        if std::env::var_os("PGPASSWORD").is_none() {
            // pg2parquet prompts for a password on the terminal unless one is set; the
            // benchmark's server trusts its user, so any value does.
            pg2parquet = pg2parquet.with_env("PGPASSWORD", "unused");
        }
        contenders.push(pg2parquet);
    }

    run_alternately(&mut contenders, args.export.runs, table, Some(rows))?;
    println!(
        "{}",
        export_report(table, rows, args.export.runs, &contenders)
    );
    Ok(())
}

/// The Python contenders' script, and the venv's pinned requirements (ConnectorX, pyarrow,
/// maturin).
const PYTHON_SCRIPT: &str = "benches/python-read.py";
const PYTHON_REQUIREMENTS: &str = "benches/requirements-python-peers.txt";

fn python(args: &PythonArgs) -> Result<()> {
    ensure_database(&args.server, &args.database)?;
    let url = db_url(&args.server, &args.database);
    std::fs::create_dir_all(&args.out).map_err(|e| e.to_string())?;
    let out = args.out.canonicalize().map_err(|e| e.to_string())?;
    for &rows in &args.rows {
        ensure_lineitem(&url, &lineitem_table(rows), rows)?;
    }
    let python = peers_python(&args.python, &out, PYTHON_REQUIREMENTS, "python-peers-venv")?;
    install_package(&python, &out)?;
    println!(
        "Python read_sql benchmark: {} runs each, alternating; TLS: {}; {} cores; load average {}",
        args.runs,
        tls_setting(&url),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_average()
    );
    let python = python.display().to_string();
    let script = repository().join(PYTHON_SCRIPT).display().to_string();
    for &rows in &args.rows {
        let table = lineitem_table(rows);
        let query = format!("SELECT * FROM {table}");
        let read = |tool: &str| {
            Contender::new(
                format!("{tool}.read_sql"),
                python.clone(),
                vec![script.clone(), tool.into(), query.clone()],
            )
            .with_env("TRIBUTARY_BENCH_PG_URL", &url)
        };
        let mut contenders = vec![
            Contender::new(
                "COPY drain (psql)",
                "psql",
                vec![
                    url.clone(),
                    "-X".into(),
                    "-q".into(),
                    "-c".into(),
                    format!("COPY ({query}) TO STDOUT (FORMAT binary)"),
                ],
            ),
            read("tributary"),
            read("connectorx"),
        ];
        // One untimed run of each reader: it says what it read, which must be the table.
        let mut arrow = vec![None];
        for c in &contenders[1..] {
            let said = run_with_input(&c.program, &c.args, &c.env, "")?;
            let (got, bytes) = said
                .split_once(' ')
                .and_then(|(r, b)| Some((r.parse::<u64>().ok()?, b.parse::<u64>().ok()?)))
                .ok_or_else(|| format!("{}: unexpected output {said:?}", c.label))?;
            if got != rows {
                return Err(format!("{} read {got} rows, expected {rows}", c.label));
            }
            arrow.push(Some(bytes));
        }
        run_alternately(&mut contenders, args.runs, &table, None)?;
        println!(
            "{}",
            read_report(&table, rows, args.runs, &contenders, &arrow)
        );
    }
    Ok(())
}

/// Builds the Python package (python/) in release mode with the venv's maturin and
/// installs it there.
fn install_package(python: &Path, out: &Path) -> Result<()> {
    let wheels = out.join("python-wheels");
    let _ = std::fs::remove_dir_all(&wheels);
    eprintln!("building the Python package in release mode (minutes the first time)...");
    let mut maturin = Command::new(python);
    maturin
        .args([
            "-m",
            "maturin",
            "build",
            "--release",
            "--quiet",
            "--auditwheel",
            "skip",
        ])
        .arg("--manifest-path")
        .arg(repository().join("python/Cargo.toml"))
        .arg("--interpreter")
        .arg(python)
        .arg("--out")
        .arg(&wheels);
    // What `cargo bench` sets for this process (`CARGO_MANIFEST_DIR`, `OUT_DIR`, ...) is
    // not for the build: build scripts that watch those variables (ring's) would see them
    // changed and rebuild most dependencies.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if (key.starts_with("CARGO_") && key != "CARGO_HOME" && key != "CARGO_TARGET_DIR")
            || key == "OUT_DIR"
        {
            maturin.env_remove(key.as_ref());
        }
    }
    let status = maturin
        .status()
        .map_err(|e| format!("running maturin: {e}"))?;
    if !status.success() {
        return Err(format!("building the Python package failed ({status})"));
    }
    let wheel = std::fs::read_dir(&wheels)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "whl"))
        .ok_or("maturin left no wheel")?;
    let python = python.display().to_string();
    let wheel = wheel.display().to_string();
    run_with_input(
        &python,
        &[
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--force-reinstall",
            "--no-deps",
            &wheel,
        ],
        &[],
        "",
    )
    .map(|_| ())
}

/// The read table: medians of wall time, rows/s, the Arrow table's size and MB/s of it,
/// and peak RSS, with ratios to the baseline's wall time (the first contender).
fn read_report(
    table: &str,
    rows: u64,
    runs: usize,
    contenders: &[Contender],
    arrow: &[Option<u64>],
) -> String {
    let wall = |c: &Contender| median(c.samples.iter().map(|s| s.wall.as_secs_f64()).collect());
    let rss = |c: &Contender| median(c.samples.iter().map(|s| s.rss as f64).collect());
    let base = wall(&contenders[0]);
    let mut out = format!(
        "{table}: {rows} rows, medians of {runs} runs\n\n\
         | | wall s | x drain | rows/s | Arrow MB | Arrow MB/s | peak RSS MB |\n\
         |---|---|---|---|---|---|---|\n"
    );
    for (c, bytes) in contenders.iter().zip(arrow) {
        let w = wall(c);
        let (size, rate) = match bytes {
            Some(b) => (
                format!("{:.1}", *b as f64 / 1e6),
                format!("{:.1}", *b as f64 / 1e6 / w),
            ),
            None => ("-".into(), "-".into()),
        };
        let _ = writeln!(
            out,
            "| {} | {w:.2} | {:.2}x | {:.0} | {size} | {rate} | {:.0} |",
            c.label,
            w / base,
            rows as f64 / w,
            rss(c) / 1e6
        );
    }
    out
}

/// The aggregate: a few groups, every kind of partial (count, exact sums, avg, min, max).
const COMBINE_AGGREGATE: &str = "SELECT l_shipmode, l_returned, count(*) AS n, \
    sum(l_extendedprice) AS revenue, avg(l_quantity) AS avg_qty, min(l_shipdate) AS first_ship, \
    max(l_committed_at) AS last_commit FROM lineitem GROUP BY l_shipmode, l_returned";
/// The top-k: a total order, so the 100 rows are one answer.
const COMBINE_TOP: &str = "SELECT l_id, l_orderkey, l_extendedprice, l_shipdate FROM lineitem \
    ORDER BY l_extendedprice DESC, l_id LIMIT 100";
/// 1M groups, each on every shard: 4M partial rows for the final step.
const COMBINE_GROUPS: &str = "SELECT l_id % 1000000 AS k, count(*) AS n, \
    sum(l_extendedprice) AS revenue FROM lineitem GROUP BY 1";

fn combine(args: &CombineArgs) -> Result<()> {
    std::fs::create_dir_all(&args.out).map_err(|e| e.to_string())?;
    let out = args.out.canonicalize().map_err(|e| e.to_string())?;
    let mut urls = Vec::new();
    for i in 0..args.shards {
        let database = format!("tp_bench_c{i}");
        ensure_database(&args.server, &database)?;
        let url = db_url(&args.server, &database);
        let (first, last) = (i * args.rows + 1, (i + 1) * args.rows);
        let stamp = format!("{GENERATOR_VERSION} rows={first}..={last}");
        ensure_lineitem_rows(&url, "lineitem", first, last, stamp)?;
        urls.push(url);
    }
    let shards_file = out.join("combine-shards.toml");
    let mut toml = String::from("[shards]\n");
    for (i, url) in urls.iter().enumerate() {
        let _ = writeln!(toml, "c{i} = \"{url}\"");
    }
    std::fs::write(&shards_file, toml).map_err(|e| e.to_string())?;
    println!(
        "tributary combine benchmark: {} shards of {} rows, {} runs each, alternating; {} cores; load average {}",
        args.shards,
        args.rows,
        args.runs,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_average()
    );

    // Each shard's own query, all at once as tributary runs them: the slowest decides.
    let own_queries = |sql: &str| {
        let script: Vec<String> = urls
            .iter()
            .map(|u| format!("psql '{u}' -X -q -At -c \"{sql}\" > /dev/null &"))
            .collect();
        Contender::new(
            "each shard's own query (psql, at once)",
            "sh",
            vec!["-c".into(), format!("{} wait", script.join(" "))],
        )
    };
    let run = |name: &str, sql: &str, extra: &[&str]| -> Result<Contender> {
        let query = out.join(format!("combine-{name}.sql"));
        std::fs::write(&query, sql).map_err(|e| e.to_string())?;
        let output = out.join(format!("combine-{name}.parquet"));
        let report = out.join(format!("combine-{name}.json"));
        let mut a = tributary_run(&query, &shards_file, &output);
        a.extend(["--report".to_string(), report.display().to_string()]);
        a.extend(extra.iter().map(|s| s.to_string()));
        let label = format!("tributary {}", extra.join(" ")).trim().to_string();
        Ok(Contender::new(label, tributary_exe(), a).writing(output))
    };

    let mut aggregate = vec![
        own_queries(COMBINE_AGGREGATE),
        run("aggregate", COMBINE_AGGREGATE, &[])?,
    ];
    run_alternately(&mut aggregate, args.runs, "aggregate", None)?;
    print_combine("aggregate (14 groups)", COMBINE_AGGREGATE, &aggregate, args);

    let mut top = vec![own_queries(COMBINE_TOP), run("top", COMBINE_TOP, &[])?];
    run_alternately(&mut top, args.runs, "top", None)?;
    print_combine("top 100", COMBINE_TOP, &top, args);
    let taken = task_rows(&out.join("combine-top.json"))?;
    println!(
        "rows each shard returned: {taken:?} (at most 100 each: {}); rows written: {}\n",
        if taken.iter().all(|&r| r <= 100) {
            "yes"
        } else {
            "NO"
        },
        parquet_rows(&out.join("combine-top.parquet"))?
    );

    let mut groups = Vec::new();
    for limit in &args.memory_limits {
        groups.push(run(
            &format!("groups-{limit}"),
            COMBINE_GROUPS,
            &["--memory-limit", limit],
        )?);
    }
    run_alternately(&mut groups, args.runs, "groups", None)?;
    print_combine("1M groups", COMBINE_GROUPS, &groups, args);
    for (limit, contender) in args.memory_limits.iter().zip(&groups) {
        let name = format!("groups-{limit}");
        let partial: u64 = task_rows(&out.join(format!("combine-{name}.json")))?
            .iter()
            .sum();
        // Once more without -q: what the final step says it spilled (DataFusion's own
        // metrics), or that it did not.
        let spilled = Command::new(&contender.program)
            .args(contender.args.iter().filter(|a| *a != "-q"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| e.to_string())?;
        let log = String::from_utf8_lossy(&spilled.stderr);
        let spill = log
            .lines()
            .find_map(|l| l.split_once("the final step spilled").map(|(_, rest)| rest))
            .map_or("no spill".to_string(), |rest| format!("spilled{rest}"));
        println!(
            "--memory-limit {limit}: {partial} partial rows in, {} groups written; {spill}",
            parquet_rows(&out.join(format!("combine-{name}.parquet")))?
        );
    }
    Ok(())
}

fn print_combine(title: &str, sql: &str, contenders: &[Contender], args: &CombineArgs) {
    let wall = |c: &Contender| median(c.samples.iter().map(|s| s.wall.as_secs_f64()).collect());
    let rss = |c: &Contender| median(c.samples.iter().map(|s| s.rss as f64 / 1e6).collect());
    let base = wall(&contenders[0]);
    let rows = (args.shards * args.rows) as f64;
    println!(
        "\n{title}: `{sql}`\nmedians of {} runs (load average now {})\n",
        args.runs,
        load_average()
    );
    println!("| contender | wall s | x first | input rows/s | peak RSS MB |");
    println!("|---|---:|---:|---:|---:|");
    for c in contenders {
        println!(
            "| {} | {:.2} | {:.2} | {:.0} | {:.0} |",
            c.label,
            wall(c),
            wall(c) / base,
            rows / wall(c),
            rss(c)
        );
    }
    println!();
}

/// The rows each task returned, from a run's JSON report.
fn task_rows(report: &Path) -> Result<Vec<u64>> {
    let text = std::fs::read_to_string(report).map_err(|e| format!("{}: {e}", report.display()))?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let tasks = json["run"]["tasks"]
        .as_array()
        .ok_or_else(|| format!("{}: no tasks", report.display()))?;
    Ok(tasks
        .iter()
        .map(|t| t["rows"].as_u64().unwrap_or(0))
        .collect())
}

/// pg2parquet's command line for the same URL (so the same TLS setting) and query, with
/// zstd at its default level.
fn pg2parquet_args(url: &str, query: &str, output: &Path) -> Vec<String> {
    vec![
        "export".into(),
        "--quiet".into(),
        "--connection".into(),
        url.into(),
        "--query".into(),
        query.into(),
        "--compression".into(),
        "zstd".into(),
        "--output-file".into(),
        output.display().to_string(),
    ]
}

fn fanout(args: &FanoutArgs) -> Result<()> {
    ensure_database(&args.server, &args.database)?;
    let admin = db_url(&args.server, "postgres");
    // Connections are told apart from everyone else's by this application_name.
    let app = format!("{}_run", args.database);
    let base = db_url(&args.server, &args.database);
    let url = if base.contains('?') {
        format!("{base}&application_name={app}")
    } else {
        format!("{base}?application_name={app}")
    };
    psql_file(
        &base,
        &format!(
            "DROP TABLE IF EXISTS fan; CREATE TABLE fan AS \
             SELECT g AS id, md5(g::text) AS label, (g * 0.01)::numeric(12,2) AS amount, \
                    timestamptz '2025-01-01 00:00:00+00' + g * interval '1 minute' AS at \
             FROM generate_series(1, {}) AS g; VACUUM (FREEZE, ANALYZE) fan",
            args.rows
        ),
    )?;
    std::fs::create_dir_all(&args.out).map_err(|e| e.to_string())?;
    let out = args.out.canonicalize().map_err(|e| e.to_string())?;
    // The sleep is an InitPlan: it runs once per query, before the rows stream.
    let query = format!(
        "SELECT f.* FROM fan AS f WHERE (SELECT pg_sleep({})::text) IS NOT NULL",
        args.sleep_ms as f64 / 1000.0
    );
    let query_file = out.join("fanout.sql");
    std::fs::write(&query_file, &query).map_err(|e| e.to_string())?;
    let shards_file = out.join("fanout-shards.toml");
    let mut shards = String::from("[shards]\n");
    for i in 0..args.shards {
        let _ = writeln!(shards, "s{i:02} = \"{url}\"");
    }
    std::fs::write(&shards_file, shards).map_err(|e| e.to_string())?;
    let output = out.join("fanout.parquet");
    let run_args = |concurrency: usize| -> Vec<String> {
        let mut command = tributary_run(&query_file, &shards_file, &output);
        command.extend([
            "--concurrency".to_string(),
            concurrency.to_string(),
            "--pool-size".to_string(),
            args.pool_size.to_string(),
        ]);
        command
    };
    // The pools bound the connections; --concurrency bounds running tasks, not idle
    // pooled connections (each shard's is opened to describe its result before any task
    // runs), so it is reported beside the peak but not enforced.
    let limit = args.shards * args.pool_size;
    let expected_rows = args.rows * args.shards as u64;
    println!(
        "tributary fan-out benchmark: {} shards x {} ms + {} rows, --concurrency {} --pool-size {}; \
         TLS: {}; load average {}",
        args.shards,
        args.sleep_ms,
        args.rows,
        args.concurrency,
        args.pool_size,
        tls_setting(&url),
        load_average()
    );

    let sequential = measure(tributary_exe(), &run_args(1), &[])?;
    check_rows(&output, expected_rows)?;
    eprintln!("  one by one: {:.2}s", sequential.wall.as_secs_f64());
    let mut walls = Vec::new();
    let mut peaks = Vec::new();
    for run in 0..args.runs {
        let sampler = Sampler::start(&admin, &app)?;
        let s = measure(tributary_exe(), &run_args(args.concurrency), &[])?;
        let peak = sampler.stop();
        check_rows(&output, expected_rows)?;
        eprintln!(
            "  run {}: {:.2}s, at most {peak} connections",
            run + 1,
            s.wall.as_secs_f64()
        );
        walls.push(s.wall.as_secs_f64());
        peaks.push(peak);
    }
    let wall = median(walls);
    let peak = peaks.iter().copied().max().unwrap_or(0);
    let ideal = args.sleep_ms as f64 / 1000.0;
    println!(
        "\n| measure | value |\n|---|---:|\n\
         | one by one (`--concurrency 1`), wall s | {:.2} |\n\
         | concurrent, median wall s | {wall:.2} |\n\
         | ratio concurrent / one by one | {:.3} |\n\
         | server-side floor (one sleep), s | {ideal:.2} |\n\
         | most connections seen at once (pg_stat_activity) | {peak} |\n\
         | configured pools (shards x pool size) | {limit} |\n\
         | within the pools | {} |\n\
         | within --concurrency ({}) | {} |",
        sequential.wall.as_secs_f64(),
        wall / sequential.wall.as_secs_f64(),
        if peak <= limit { "yes" } else { "NO" },
        args.concurrency,
        if peak <= args.concurrency {
            "yes"
        } else {
            "no"
        },
    );
    if peak > limit {
        return Err(format!(
            "{peak} connections were open at once; the pools allow {limit}"
        ));
    }
    Ok(())
}

fn check_rows(path: &Path, expected: u64) -> Result<()> {
    let got = parquet_rows(path)?;
    if got != expected {
        return Err(format!("the output has {got} rows, expected {expected}"));
    }
    Ok(())
}

/// How often the sampler counts connections. Every connection of the run lives at
/// least as long as its query's 250 ms sleep, so it is seen several times; more frequent
/// samples only load the server whose cores the run needs (see docs/performance.md).
const SAMPLE_EVERY: Duration = Duration::from_millis(20);

/// Counts the benchmark's server connections every few milliseconds on its own thread.
struct Sampler {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicUsize>,
    thread: std::thread::JoinHandle<()>,
}

impl Sampler {
    fn start(admin: &str, app: &str) -> Result<Sampler> {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicUsize::new(0));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let sql = format!("SELECT count(*) FROM pg_stat_activity WHERE application_name = '{app}'");
        let (client, statement) = runtime
            .block_on(async {
                let (client, conn) = tokio_postgres::connect(admin, tokio_postgres::NoTls).await?;
                tokio::spawn(conn);
                let statement = client.prepare(&sql).await?;
                Ok::<_, tokio_postgres::Error>((client, statement))
            })
            .map_err(|e| format!("connecting the sampler: {e}"))?;
        let (s, p) = (stop.clone(), peak.clone());
        let thread = std::thread::spawn(move || {
            runtime.block_on(async move {
                while !s.load(Ordering::Relaxed) {
                    if let Ok(row) = client.query_one(&statement, &[]).await {
                        let n: i64 = row.get(0);
                        p.fetch_max(n as usize, Ordering::Relaxed);
                    }
                    tokio::time::sleep(SAMPLE_EVERY).await;
                }
            })
        });
        Ok(Sampler { stop, peak, thread })
    }

    fn stop(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
        self.peak.load(Ordering::Relaxed)
    }
}

fn sizes(files: &[PathBuf]) -> Result<()> {
    use parquet::file::reader::FileReader;
    for path in files {
        let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let reader = parquet::file::serialized_reader::SerializedFileReader::new(file)
            .map_err(|e| e.to_string())?;
        let meta = reader.metadata();
        println!(
            "\n{}: {} rows, {} row groups, {} bytes",
            path.display(),
            meta.file_metadata().num_rows(),
            meta.num_row_groups(),
            std::fs::metadata(path).map_err(|e| e.to_string())?.len()
        );
        println!(
            "| column | physical | compressed MB | codec | encodings |\n|---|---|---:|---|---|"
        );
        let columns = meta.file_metadata().schema_descr().num_columns();
        for c in 0..columns {
            let mut bytes = 0i64;
            let mut encodings = std::collections::BTreeSet::new();
            let mut codec = String::new();
            for rg in meta.row_groups() {
                let chunk = rg.column(c);
                bytes += chunk.compressed_size();
                encodings.extend(chunk.encodings().map(|e| format!("{e:?}")));
                codec = format!("{:?}", chunk.compression());
            }
            let descr = meta.file_metadata().schema_descr().column(c);
            println!(
                "| {} | {:?} | {:.2} | {codec} | {} |",
                descr.path(),
                descr.physical_type(),
                bytes as f64 / 1e6,
                encodings.into_iter().collect::<Vec<_>>().join(" ")
            );
        }
    }
    Ok(())
}

/// The lineitem table's columns as the decoder sees them (what `tributary run` derives
/// from the server's description of `SELECT * FROM lineitem_1m`, default type options).
fn lineitem_kinds() -> Vec<(String, tributary::types::PgKind)> {
    use tributary::types::{InfinityMode, PgKind};
    let decimal = || PgKind::Decimal {
        precision: 15,
        scale: 2,
        infinity: InfinityMode::Error,
    };
    [
        ("l_id", PgKind::Int8),
        ("l_orderkey", PgKind::Int8),
        ("l_partkey", PgKind::Int4),
        ("l_suppkey", PgKind::Int4),
        ("l_linenumber", PgKind::Int4),
        ("l_quantity", decimal()),
        ("l_extendedprice", decimal()),
        ("l_discount", PgKind::Float8),
        ("l_tax", PgKind::Float8),
        ("l_returned", PgKind::Bool),
        ("l_shipdate", PgKind::Date(InfinityMode::Error)),
        ("l_committed_at", PgKind::TimestampTz(InfinityMode::Error)),
        ("l_shipmode", PgKind::Text),
        ("l_status", PgKind::Text),
        ("l_comment", PgKind::Text),
    ]
    .into_iter()
    .map(|(name, kind)| (name.to_string(), kind))
    .collect()
}

/// Splits a binary COPY stream into its header and its tuples (the trailer last), as the
/// server sends them: one CopyData message per tuple, the header with the first.
fn copy_messages(stream: &[u8]) -> Result<Vec<&[u8]>> {
    let bad = || "the captured COPY stream is malformed".to_string();
    let mut messages = Vec::new();
    let ext = u32::from_be_bytes(stream.get(15..19).ok_or_else(bad)?.try_into().unwrap());
    let mut start = 0;
    let mut at = 19 + ext as usize;
    loop {
        let count = i16::from_be_bytes(stream.get(at..at + 2).ok_or_else(bad)?.try_into().unwrap());
        at += 2;
        for _ in 0..count.max(0) {
            let n = i32::from_be_bytes(stream.get(at..at + 4).ok_or_else(bad)?.try_into().unwrap());
            at += 4 + n.max(0) as usize;
        }
        messages.push(stream.get(start..at).ok_or_else(bad)?);
        start = at;
        if count == -1 {
            return Ok(messages);
        }
    }
}

fn decode(args: &DecodeArgs) -> Result<()> {
    ensure_database(&args.server, &args.database)?;
    let url = db_url(&args.server, &args.database);
    let table = "lineitem_1m";
    ensure_lineitem(&url, table, 1_000_000)?;
    std::fs::create_dir_all(&args.out).map_err(|e| e.to_string())?;
    let capture = args.out.join(format!("{table}.copy"));
    if !capture.exists() {
        let file = std::fs::File::create(&capture).map_err(|e| e.to_string())?;
        let status = Command::new("psql")
            .args([url.as_str(), "-X", "-q", "-c"])
            .arg(format!("COPY {table} TO STDOUT (FORMAT binary)"))
            .stdout(file)
            .status()
            .map_err(|e| format!("running psql: {e}"))?;
        if !status.success() {
            let _ = std::fs::remove_file(&capture);
            return Err(format!("capturing the COPY stream of {table} failed"));
        }
    }
    let stream = std::fs::read(&capture).map_err(|e| e.to_string())?;
    let messages = copy_messages(&stream)?;
    let kinds = lineitem_kinds();
    let mut times = Vec::new();
    for _ in 0..=args.runs {
        let started = Instant::now();
        let mut decoder = tributary::decode::pgcopy::CopyDecoder::new(&kinds);
        let mut rows = 0;
        for message in &messages {
            decoder.push(message).map_err(|e| e.to_string())?;
            if decoder.buffered_rows() >= 8192 {
                rows += decoder.take_batch().map_err(|e| e.to_string())?.num_rows();
            }
        }
        decoder.finish().map_err(|e| e.to_string())?;
        rows += decoder.take_batch().map_err(|e| e.to_string())?.num_rows();
        if rows != 1_000_000 {
            return Err(format!("decoded {rows} rows of 1000000"));
        }
        times.push(started.elapsed().as_secs_f64());
    }
    // The first pass warms the allocator and the caches.
    let time = median(times[1..].to_vec());
    println!(
        "decode {table}: {:.1} MB stream, median of {} passes: {:.3} s, {:.0} ns/row, {:.0} MB/s (min {:.3} s, max {:.3} s)",
        stream.len() as f64 / 1e6,
        args.runs,
        time,
        time * 1e9 / 1e6,
        stream.len() as f64 / 1e6 / time,
        times[1..].iter().cloned().fold(f64::INFINITY, f64::min),
        times[1..].iter().cloned().fold(0.0, f64::max),
    );
    Ok(())
}
