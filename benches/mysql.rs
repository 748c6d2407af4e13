//! The MariaDB benchmark, run with `cargo bench --bench mysql`; docs/performance.md
//! describes it beside the PostgreSQL one (`benches/pg.rs`), whose `export` it mirrors.
//!
//! It generates `lineitem_1m` and `lineitem_10m` in MariaDB once
//! (`benches/lineitem-mysql.sql`: lineitem.sql's 15 columns and values in MariaDB's
//! types), then runs alternately, `--runs` times after one untimed warm-up:
//!
//! - the baseline: the `mariadb` client draining `SELECT * FROM lineitem_10m` to /dev/null
//!   (`--quick --batch`: the rows streamed as text, one connection, no file);
//! - tributary (`tributary run` of the same query on one shard, default settings) and each
//!   `--contender`;
//! - with `--peers`, ConnectorX and DuckDB's mysql extension (`benches/mysql-peers.py`,
//!   zstd Parquet, with a Python venv made under `--out` from
//!   `benches/requirements-mysql-peers.txt`).
//!
//! Then it prints the export table of benches/pg.rs: medians of wall time, rows/s, Parquet
//! MB/s, output size and peak RSS, with ratios to the baseline.
//!
//! The generator needs MariaDB (its SEQUENCE engine); the contenders would read MySQL too.

mod common;

use std::path::Path;
use std::time::Instant;

use clap::Parser;

use common::mariadb::Client;
use common::{
    Contender, ExportOptions, Result, db_url, export_report, lineitem_table, load_average,
    peers_python, repository, require_gnu_time, run_alternately, tributary_contenders,
};

/// Bump when `lineitem-mysql.sql` changes: tables stamped otherwise are generated again.
const GENERATOR_VERSION: &str = "tributary-bench lineitem-mysql v1";
/// The peers' script and their pinned requirements, read where the repository is.
const PEERS_SCRIPT: &str = "benches/mysql-peers.py";
const PEERS_REQUIREMENTS: &str = "benches/requirements-mysql-peers.txt";
/// How the peers' script receives the URL: off their command lines, as a password may be
/// in it.
const PEERS_URL_VAR: &str = "TRIBUTARY_BENCH_MYSQL_URL";

#[derive(Parser)]
#[command(about = "tributary's MariaDB benchmark (see docs/performance.md)")]
struct Cli {
    /// Server URL without a database (the benchmark uses database `tp_bench`); a password
    /// in it reaches the `mariadb` client as `MYSQL_PWD`.
    #[arg(long, default_value = "mysql://root@127.0.0.1:3306")]
    server: String,
    #[command(flatten)]
    export: ExportOptions,
    /// Also run ConnectorX and DuckDB's mysql extension (zstd), from a Python venv made
    /// under --out on first use (needs Python 3 with venv, and PyPI).
    #[arg(long)]
    peers: bool,
    /// The Python 3 the peers' venv is made with.
    #[arg(long, default_value = "python3")]
    python: String,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

fn main() {
    let cli = Cli::parse();
    require_gnu_time();
    if let Err(e) = export(&cli) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

/// Generates `table` with `rows` rows unless it exists with this generator's stamp (its
/// table comment, set only on a complete table).
fn ensure_lineitem(client: &Client, database: &str, table: &str, rows: u64) -> Result<()> {
    let stamp = format!("{GENERATOR_VERSION} rows={rows}");
    let current = client.run(
        Some(database),
        &format!(
            "SELECT table_comment FROM information_schema.tables \
             WHERE table_schema = DATABASE() AND table_name = '{table}'"
        ),
    )?;
    if current == stamp {
        return Ok(());
    }
    eprintln!("generating {table} ({rows} rows; once, then reused)...");
    let started = Instant::now();
    let script = include_str!("lineitem-mysql.sql")
        .replace(":first", "1")
        .replace(":last", &rows.to_string())
        .replace(":stamp", &stamp)
        .replace(":table", table);
    client.run(Some(database), &script)?;
    eprintln!("generated {table} in {:.1?}", started.elapsed());
    Ok(())
}

fn export(cli: &Cli) -> Result<()> {
    let client = Client::new(&cli.server)?;
    client.run(
        None,
        &format!("CREATE DATABASE IF NOT EXISTS `{}`", cli.export.database),
    )?;
    std::fs::create_dir_all(&cli.export.out).map_err(|e| e.to_string())?;
    let out = cli.export.out.canonicalize().map_err(|e| e.to_string())?;
    for &rows in &cli.export.rows {
        ensure_lineitem(&client, &cli.export.database, &lineitem_table(rows), rows)?;
    }
    let python = if cli.peers {
        Some(peers_python(
            &cli.python,
            &out,
            PEERS_REQUIREMENTS,
            "mysql-peers-venv",
        )?)
    } else {
        None
    };
    println!(
        "tributary MariaDB export benchmark: {} runs each, alternating; server {}; TLS: {}; {} cores; load average {}",
        cli.export.runs,
        client.run(None, "SELECT VERSION()")?,
        client.tls,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_average()
    );
    for &rows in &cli.export.rows {
        export_one(cli, &client, python.as_deref(), &out, rows)?;
    }
    Ok(())
}

fn export_one(
    cli: &Cli,
    client: &Client,
    python: Option<&Path>,
    out: &Path,
    rows: u64,
) -> Result<()> {
    let table = lineitem_table(rows);
    // The files are prefixed: benches/pg.rs writes its own of the same tables to --out.
    let stem = format!("mysql-{table}");
    let query = format!("SELECT * FROM {table}");
    let query_file = out.join(format!("{stem}.sql"));
    std::fs::write(&query_file, &query).map_err(|e| e.to_string())?;
    let url = db_url(&cli.server, &cli.export.database);
    let shards_file = out.join("mysql-export-shards.toml");
    std::fs::write(&shards_file, format!("[shards]\nonly = \"{url}\"\n"))
        .map_err(|e| e.to_string())?;

    let mut drain = client.args.clone();
    drain.extend([
        "--quick".to_string(),
        "--batch".to_string(),
        format!("--database={}", cli.export.database),
        format!("--execute={query}"),
    ]);
    let mut baseline = Contender::new(
        format!("{} --quick --batch (drain)", client.program),
        client.program,
        drain,
    );
    baseline.env = client.env();
    let mut contenders = vec![baseline];
    contenders.extend(tributary_contenders(
        out,
        &stem,
        &query_file,
        &shards_file,
        &cli.export,
    )?);
    if let Some(python) = python {
        let script = repository().join(PEERS_SCRIPT);
        for (label, tool) in [
            ("ConnectorX (zstd)", "connectorx"),
            ("DuckDB mysql (zstd)", "duckdb"),
        ] {
            let output = out.join(format!("{stem}-{tool}.parquet"));
            let args = vec![
                script.display().to_string(),
                tool.to_string(),
                query.clone(),
                output.display().to_string(),
            ];
            contenders.push(
                Contender::new(label, python.display().to_string(), args)
                    .writing(output)
                    .with_env(PEERS_URL_VAR, &url),
            );
        }
    }

    run_alternately(&mut contenders, cli.export.runs, &table, Some(rows))?;
    println!(
        "{}",
        export_report(&table, rows, cli.export.runs, &contenders)
    );
    Ok(())
}
