//! The `tributary` binary: parses the command line, calls the library, prints the
//! summary and maps errors to the exit codes documented in README.md.

use std::io::IsTerminal;

use clap::Parser;
use tributary::cli::{Cli, Command};
use tributary::error::exit;
use tributary::ledger::Recorded;
use tributary::metrics::RunMetrics;

use tributary::{JobConfig, RunArgs};

/// jemalloc rather than glibc's allocator: glibc hands the freed buffers of each encoded
/// page and batch back to the kernel and faults them in again. For a 10M-row export
/// jemalloc takes 40% fewer page faults and about 5% less CPU, at the same peak memory
/// (docs/performance.md).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    let cli = Cli::parse();
    init_logging(cli.quiet, cli.verbose);
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
        builder.worker_threads(async_workers());
    }
    let runtime = builder.enable_all().build().expect("the runtime starts");
    let code = runtime.block_on(run(cli));
    // Blocking threads (the Parquet writer) have finished; do not wait for idle ones.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    std::process::exit(code);
}

/// Threads for the asynchronous side (connections, TLS, decoding): half the cores, at
/// least one. The other half is left to the Parquet encoders, which run on their own
/// threads. A worker per core made each network read wake a second worker (a futex and
/// an eventfd write per CopyData chunk): about 15% more CPU for a one-shard export on
/// two cores. `TOKIO_WORKER_THREADS` overrides it.
fn async_workers() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cores / 2).max(1)
}

async fn run(cli: Cli) -> i32 {
    // Installed before any work, so that Ctrl-C always cancels cleanly.
    let interrupt = tributary::shutdown_signal();
    let interactive = !cli.quiet && std::io::stderr().is_terminal();
    let done = |result: Result<i32, tributary::Error>| result.unwrap_or_else(|e| fail(&e));
    match cli.command {
        Command::Run(args) => done(run_job(args, interactive, interrupt).await),
        Command::Backfill(args) => {
            let backfill = tributary::backfill::Backfill::from(args);
            done(
                tributary::backfill::run(&backfill, interrupt)
                    .await
                    .map(|(job, results)| {
                        let (summary, code) = tributary::backfill::summary(&job, &results);
                        print!("{summary}");
                        code
                    }),
            )
        }
        Command::Check(args) => done(check(args).await),
        Command::Runs(args) => done(runs(args).await.map(|()| exit::SUCCESS)),
        Command::Plan(args) => done(plan(args).await),
        Command::Finish(args) => done(finish(args).await),
        Command::Snapshot(args) => match args.action {
            tributary::cli::SnapshotAction::Export(args) => {
                done(snapshot_export(args, interrupt).await)
            }
        },
        Command::Demo(args) => done(
            tributary::demo::run(&args.dir, args.orders, interactive, interrupt)
                .await
                .map(|()| exit::SUCCESS),
        ),
        Command::Completions(args) => print(&tributary::manual::completions(args.shell)),
        Command::Man(args) => match args.dir {
            Some(dir) => done(tributary::manual::write_man_pages(&dir).map(|files| {
                for file in files {
                    println!("{}", file.display());
                }
                exit::SUCCESS
            })),
            None => match tributary::manual::man_page(&args.subcommand) {
                Ok(page) => print(&page),
                Err(e) => {
                    eprintln!("error: {e}");
                    exit::USAGE
                }
            },
        },
    }
}

/// `tributary run`: the job under its ledger, then the summary, the report and the
/// metrics, whichever way it ended.
async fn run_job(
    args: tributary::cli::RunJobCommand,
    interactive: bool,
    interrupt: impl std::future::Future<Output = &'static str>,
) -> Result<i32, tributary::Error> {
    let config = JobConfig::resolve(RunArgs::from(args))?;
    let now = std::time::SystemTime::now;
    let ran = match tributary::ledger::run_recorded(&config, interactive, interrupt).await {
        Err(e) => {
            write_metrics(
                &config,
                &RunMetrics::without_tasks(&config.name, e.exit_code(), now()),
            );
            return Err(e);
        }
        Ok(Recorded::Skipped {
            run,
            previous,
            ended_at,
            files,
        }) => {
            println!(
                "{}",
                skipped(&config.name, run, previous, &ended_at, &files)
            );
            // The job's output is as current as an identical run makes it.
            write_metrics(
                &config,
                &RunMetrics::without_tasks(&config.name, exit::SUCCESS, now()),
            );
            return Ok(exit::SUCCESS);
        }
        Ok(Recorded::InTable(done)) => {
            println!(
                "job `{}`: table {} already holds this run (application id {}, \
                 version {}); nothing ran, nothing was added. --force runs it again.",
                config.name, done.table, done.app_id, done.version
            );
            write_metrics(
                &config,
                &RunMetrics::without_tasks(&config.name, exit::SUCCESS, now()),
            );
            return Ok(exit::SUCCESS);
        }
        Ok(Recorded::Ran(ran)) => ran,
    };
    println!("{}", ran.report);
    if let Some(path) = &config.options.report
        && let Err(e) = tributary::write_report(path, &ran.report, &ran.result)
    {
        eprintln!("error: {e}");
    }
    write_metrics(
        &config,
        &RunMetrics::new(&config.name, &ran.report, &ran.result, now()),
    );
    if let Some(e) = &ran.unrecorded {
        eprintln!("error: {e} (the run's outcome stands; the ledger does not know it)");
    }
    ran.result.map(|()| exit::SUCCESS)
}

/// `tributary check`: every shard's check, as text or JSON; the exit code of the first
/// that failed.
async fn check(args: tributary::cli::CheckCommand) -> Result<i32, tributary::Error> {
    let json = args.json;
    let target = tributary::config::CheckTarget::resolve(RunArgs::from(args))?;
    let checks = tributary::check::check(&target).await;
    if json {
        println!("{}", serde_json::to_string_pretty(&checks).expect("JSON"));
    } else {
        print!("{}", tributary::check::render(&checks));
    }
    Ok(tributary::check::exit_code(&checks))
}

/// `tributary plan`: the tasks and their SQL, probed on the shards or offline.
async fn plan(args: tributary::cli::PlanCommand) -> Result<i32, tributary::Error> {
    let mode = if args.offline {
        tributary::dispatch::PlanMode::Offline
    } else {
        tributary::dispatch::PlanMode::Probe
    };
    let run_args = RunArgs {
        ledger: args.ledger,
        ..RunArgs::from(args.run)
    };
    let config = JobConfig::resolve_for_plan(run_args)?;
    let config = tributary::ledger::with_marks(&config).await?;
    print!("{}", tributary::dispatch::plan(&config, mode).await?);
    Ok(exit::SUCCESS)
}

/// `tributary finish --slices N`: whether every slice of the run committed to its table;
/// if so the run is recorded complete.
async fn finish(args: tributary::cli::FinishCommand) -> Result<i32, tributary::Error> {
    let Some(count) = args.run.slices else {
        return Err(tributary::Error::config(
            None,
            "finish needs --slices N: the number of slices the run was split into",
        ));
    };
    let run_args = RunArgs {
        slices: None,
        slice: None,
        ..RunArgs::from(args.run)
    };
    let config = JobConfig::resolve(run_args)?;
    if config.options.table.is_none() {
        return Err(tributary::Error::config(
            None,
            "finish checks the slices' commits in a Delta table: give the run's --table-format delta",
        ));
    }
    let finished = tributary::sink::delta::finish(&config, count).await?;
    if !finished.missing.is_empty() {
        let missing: Vec<String> = finished
            .missing
            .iter()
            .map(|i| format!("{i}/{count}"))
            .collect();
        println!(
            "job `{}`: {} of {count} slices committed to {}; missing: {} (run them, then finish again)",
            config.name,
            count - finished.missing.len(),
            finished.table,
            missing.join(", ")
        );
        return Ok(exit::PARTIAL);
    }
    match (finished.already, finished.version) {
        (true, _) => println!(
            "job `{}`: all {count} slices committed to {}; the run was already recorded complete ({})",
            config.name, finished.table, finished.app_id
        ),
        (false, version) => println!(
            "job `{}`: all {count} slices committed to {}; the run is recorded complete ({}, table version {})",
            config.name,
            finished.table,
            finished.app_id,
            version.unwrap_or_default()
        ),
    }
    Ok(exit::SUCCESS)
}

/// `tributary snapshot export`: the snapshots held until stopped.
async fn snapshot_export(
    args: tributary::cli::SnapshotExportCommand,
    interrupt: impl std::future::Future<Output = &'static str>,
) -> Result<i32, tributary::Error> {
    let run_args = RunArgs::from(args.run);
    if run_args.snapshots.is_some() || run_args.slice.is_some() {
        return Err(tributary::Error::config(
            None,
            "snapshot export makes the snapshots file for every slice: give it the run's \
             arguments with --slices N, not --snapshots or --slice",
        ));
    }
    let slices = run_args.slices;
    let target = tributary::config::CheckTarget::resolve(run_args)?;
    if let (Some(count), None) = (slices, &target.job) {
        return Err(tributary::Error::config(
            None,
            format!(
                "--slices {count} deals the run's tasks to its slices: give the run's query \
                 (QUERY.sql, or a job file with `query`)"
            ),
        ));
    }
    let output = args.file;
    let hold = args.hold;
    let released = tributary::snapshot::export(&target, &output, hold, interrupt, |file| {
        let shards: Vec<&str> = file.snapshots.keys().map(String::as_str).collect();
        let slices = match &file.slices {
            Some(slices) => format!(
                " with the run's {} tasks dealt to {} slices by their row estimates",
                slices.tasks.len(),
                slices.count
            ),
            None => String::new(),
        };
        println!(
            "exported the snapshots of {} shards ({}) to {}{slices}; holding them until stopped or the file is removed{}",
            shards.len(),
            shards.join(", "),
            output.display(),
            match hold {
                Some(hold) => format!(" or {} from now", humantime::format_duration(hold)),
                None => String::new(),
            }
        );
    })
    .await?;
    match released {
        tributary::snapshot::Released::Signal(signal) => {
            println!(
                "released the snapshots ({signal}); removed {}",
                output.display()
            )
        }
        tributary::snapshot::Released::Removed => {
            println!("released the snapshots: {} was removed", output.display())
        }
        tributary::snapshot::Released::Held(hold) => println!(
            "released the snapshots after {}; removed {}",
            humantime::format_duration(hold),
            output.display()
        ),
    }
    Ok(exit::SUCCESS)
}

/// Writes generated text (a completion script, a man page) to stdout. A reader that
/// stopped early (`| head`) is no failure.
fn print(text: &[u8]) -> i32 {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text).and_then(|()| stdout.flush()) {
        Ok(()) => exit::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => exit::SUCCESS,
        Err(e) => {
            eprintln!("error: writing to stdout: {e}");
            exit::FAILURE
        }
    }
}

/// `tributary runs`: the ledger's runs as a table or JSON, or one run in full.
async fn runs(args: tributary::cli::RunsCommand) -> Result<(), tributary::Error> {
    use tributary::ledger::{Ledger, show};
    let (job, settings) = match &args.job {
        Some(job) if std::path::Path::new(job).is_file() => {
            let (name, settings) =
                tributary::config::job_ledger(std::path::Path::new(job), args.ledger.clone())?;
            (Some(name), settings.path)
        }
        job => (
            job.clone(),
            args.ledger.clone().or_else(tributary::ledger::default_path),
        ),
    };
    let path = settings.ok_or_else(|| {
        tributary::Error::config(
            None,
            "no ledger: pass --ledger PATH (neither XDG_STATE_HOME nor HOME is set)",
        )
    })?;
    if !path.exists() {
        return Err(tributary::Error::Ledger {
            path,
            message: "no such file: no run has been recorded there".into(),
        });
    }
    let ledger = Ledger::open(&path).await?;
    match args.show {
        Some(tributary::cli::RunsShow::Show { id }) => {
            let detail = ledger
                .show(id)
                .await?
                .ok_or_else(|| tributary::Error::Ledger {
                    path: path.clone(),
                    message: format!("no run {id}"),
                })?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&detail).expect("JSON"));
            } else {
                print!("{}", show::detail(&detail));
            }
        }
        None => {
            let rows = ledger.list(job.as_deref(), args.last).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&rows).expect("JSON"));
            } else {
                print!("{}", show::table(&rows));
            }
        }
    }
    Ok(())
}

/// The line a run that had nothing to do prints.
fn skipped(
    job: &str,
    run: i64,
    previous: i64,
    ended_at: &str,
    files: &[std::path::PathBuf],
) -> String {
    let files: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    format!(
        "job `{job}`: already done by run {previous} (ended {ended_at}); its output is unchanged ({}). Nothing ran (recorded as run {run}); --force runs it again.",
        files.join(", ")
    )
}

/// Writes the run's metrics if the job asks for them: after every run of a resolved
/// job, whichever way it ended. Like the report, a metrics file that cannot be written
/// is an error on stderr that leaves the run's exit code as it is.
fn write_metrics(config: &JobConfig, metrics: &RunMetrics) {
    if let Some(path) = &config.options.metrics_file
        && let Err(e) = tributary::metrics::write(path, metrics)
    {
        eprintln!("error: {e}");
    }
}

fn fail(e: &tributary::Error) -> i32 {
    let mut message = format!("error: {e}");
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        message.push_str(&format!("\n  caused by: {s}"));
        source = s.source();
    }
    eprintln!("{message}");
    e.exit_code()
}

fn init_logging(quiet: bool, verbose: u8) {
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "tributary=info",
        (false, 1) => "tributary=debug",
        (false, _) => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .compact()
        .init();
}
