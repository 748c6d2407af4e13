//! What the benchmarks share (`benches/pg.rs`, `benches/mysql.rs`): a child process timed
//! under GNU time, contenders run alternately over one table with their outputs checked,
//! the export report, and the small helpers around them; `mariadb`, the MariaDB client
//! that builds and drains MariaDB's tables.
//!
//! Each benchmark is a crate of its own that includes this module (`mod common;`), so
//! every item here must be used by both: one that a benchmark leaves unused is dead code in
//! that crate, which CI's `cargo clippy --all-targets -- -D warnings` refuses.

pub mod mariadb;

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// GNU time, for each child's peak RSS (`%M`), which the shell's `time` does not give.
const GNU_TIME: &str = "/usr/bin/time";

pub type Result<T> = std::result::Result<T, String>;

/// The options of every export benchmark, flattened into each one's arguments beside its
/// server and its own contenders.
#[derive(clap::Args)]
pub struct ExportOptions {
    /// Database holding the generated tables.
    #[arg(long, default_value = "tp_bench")]
    pub database: String,
    /// Table sizes to run, in rows (each is generated once and reused).
    #[arg(long, value_delimiter = ',', default_values_t = [1_000_000u64, 10_000_000])]
    pub rows: Vec<u64>,
    /// Timed runs of each contender (after one untimed warm-up of the baseline).
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Another tributary contender: `LABEL=ARGS`, ARGS added to `tributary run`
    /// (e.g. `4 partitions=--partition-on l_id --partitions 4`). ARGS may begin with
    /// `NAME=VALUE` words, set in the contender's environment as a shell would (e.g.
    /// `decay 1s=_RJEM_MALLOC_CONF=dirty_decay_ms:1000`). Repeatable.
    #[arg(long = "contender", value_name = "LABEL=ARGS")]
    pub contenders: Vec<String>,
    /// Another tributary executable, run with the first contender's arguments: `LABEL=PATH`
    /// (an earlier build, to measure a change against it in the same run). Repeatable.
    #[arg(long = "build", value_name = "LABEL=PATH")]
    pub builds: Vec<String>,
    /// Where the Parquet files are written.
    #[arg(long, default_value = "target/bench")]
    pub out: PathBuf,
}

/// Exits with status 2 and how to install GNU time when it is missing: every
/// measurement needs it.
pub fn require_gnu_time() {
    if !Path::new(GNU_TIME).exists() {
        eprintln!(
            "{GNU_TIME} (GNU time) is needed to measure peak RSS: install it with `apt-get install time`"
        );
        std::process::exit(2);
    }
}

/// One timed child process.
#[derive(Clone, Copy)]
pub struct Sample {
    pub wall: Duration,
    /// Peak resident set size, bytes.
    pub rss: u64,
    /// Output size, bytes (0 when there is none).
    pub output: u64,
}

/// The package's binary, which `cargo bench` builds (in release mode) before running the
/// benchmark.
pub fn tributary_exe() -> &'static str {
    env!("CARGO_BIN_EXE_tributary")
}

/// Runs `program` under GNU time with stdout to /dev/null and `env` added to its
/// environment; returns its wall time and peak RSS.
pub fn measure(program: &str, args: &[String], env: &[(String, String)]) -> Result<Sample> {
    let stats = tempfile::NamedTempFile::new().map_err(|e| e.to_string())?;
    let started = Instant::now();
    let out = Command::new(GNU_TIME)
        .arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(stats.path())
        .arg(program)
        .args(args)
        .envs(env.iter().cloned())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("running {program}: {e}"))?;
    let wall = started.elapsed();
    if !out.status.success() {
        return Err(format!(
            "{program} {} failed ({}):\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let text = std::fs::read_to_string(stats.path()).map_err(|e| e.to_string())?;
    let kib: u64 = text
        .lines()
        .rev()
        .find_map(|l| l.trim().parse().ok())
        .ok_or_else(|| format!("no RSS in GNU time's output: {text}"))?;
    Ok(Sample {
        wall,
        rss: kib * 1024,
        output: 0,
    })
}

/// Runs `program` to its end with `input` on its stdin (a script, or nothing) and `env`
/// added to its environment; returns its stdout, trimmed. An error carries its stderr.
pub fn run_with_input<S: AsRef<OsStr>>(
    program: &str,
    args: &[S],
    env: &[(String, String)],
    input: &str,
) -> Result<String> {
    use std::io::Write;
    let mut child = Command::new(program)
        .args(args)
        .envs(env.iter().cloned())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("running {program}: {e}"))?;
    // The scripts are a few kilobytes and their output smaller, so writing all of the
    // input before reading any output cannot fill both pipes. A child that fails before
    // reading everything closes its stdin: its stderr says why, not the broken pipe.
    let written = child
        .stdin
        .take()
        .expect("piped")
        .write_all(input.as_bytes());
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "{program} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    written.map_err(|e| format!("writing to {program}: {e}"))?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// `server` + `/database`, keeping a query string (`?sslmode=...`) at the end.
pub fn db_url(server: &str, database: &str) -> String {
    match server.split_once('?') {
        Some((base, query)) => format!("{}/{database}?{query}", base.trim_end_matches('/')),
        None => format!("{}/{database}", server.trim_end_matches('/')),
    }
}

/// The generated table of `rows` rows: `lineitem_10m`, or `lineitem_N` for other sizes.
pub fn lineitem_table(rows: u64) -> String {
    if rows.is_multiple_of(1_000_000) {
        format!("lineitem_{}m", rows / 1_000_000)
    } else {
        format!("lineitem_{rows}")
    }
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// `tributary -q run QUERY --shards SHARDS -o OUTPUT`: the command line that every run of
/// tributary starts from, its options added after it.
pub fn tributary_run(query_file: &Path, shards_file: &Path, output: &Path) -> Vec<String> {
    vec![
        "-q".into(),
        "run".into(),
        query_file.display().to_string(),
        "--shards".into(),
        shards_file.display().to_string(),
        "-o".into(),
        output.display().to_string(),
    ]
}

/// One program the benchmark times, with its samples.
pub struct Contender {
    pub label: String,
    pub program: String,
    pub args: Vec<String>,
    /// Added to the child's environment: a password stays off its command line (and so out
    /// of `ps` and of the error a failed run prints).
    pub env: Vec<(String, String)>,
    /// The output file (or dataset directory) to size and check, if any.
    pub output: Option<PathBuf>,
    pub samples: Vec<Sample>,
}

impl Contender {
    pub fn new(label: impl Into<String>, program: impl Into<String>, args: Vec<String>) -> Self {
        Contender {
            label: label.into(),
            program: program.into(),
            args,
            env: Vec::new(),
            output: None,
            samples: Vec::new(),
        }
    }

    /// The contender writes `output`: removed before each run, sized after it.
    pub fn writing(mut self, output: PathBuf) -> Self {
        self.output = Some(output);
        self
    }

    pub fn with_env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    pub fn measure(&self) -> Result<Sample> {
        measure(&self.program, &self.args, &self.env)
    }
}

/// tributary's contenders: `tributary run QUERY --shards SHARDS -o OUT` with default
/// settings, then one for each `LABEL=ARGS` of `--contender` (ARGS added to the command
/// line, after the environment words it begins with), then one for each `LABEL=PATH` of
/// `--build` (that executable with the first one's arguments). Their outputs are
/// `STEM-tributary*.parquet` under `out`.
pub fn tributary_contenders(
    out: &Path,
    stem: &str,
    query_file: &Path,
    shards_file: &Path,
    options: &ExportOptions,
) -> Result<Vec<Contender>> {
    let run = |label: String, name: &str, program: &str, extra: Vec<String>| {
        let output = out.join(format!("{stem}-{name}.parquet"));
        let mut args = tributary_run(query_file, shards_file, &output);
        args.extend(extra);
        Contender::new(label, program, args).writing(output)
    };
    let exe = tributary_exe();
    let mut contenders = vec![run("tributary".into(), "tributary", exe, Vec::new())];
    for (i, spec) in options.contenders.iter().enumerate() {
        let (label, extra) = spec
            .split_once('=')
            .ok_or_else(|| format!("--contender `{spec}` is not LABEL=ARGS"))?;
        let mut words = extra.split_whitespace().peekable();
        let mut env = Vec::new();
        while let Some((key, value)) = words.peek().and_then(|w| environment_word(w)) {
            env.push((key.to_string(), value.to_string()));
            words.next();
        }
        let name = format!("tributary-{}", i + 1);
        let mut contender = run(
            format!("tributary {label}"),
            &name,
            exe,
            words.map(String::from).collect(),
        );
        contender.env = env;
        contenders.push(contender);
    }
    for (i, spec) in options.builds.iter().enumerate() {
        let (label, path) = spec
            .split_once('=')
            .ok_or_else(|| format!("--build `{spec}` is not LABEL=PATH"))?;
        if !Path::new(path).is_file() {
            return Err(format!("--build `{label}`: no executable at {path}"));
        }
        let name = format!("tributary-build-{}", i + 1);
        contenders.push(run(format!("tributary {label}"), &name, path, Vec::new()));
    }
    Ok(contenders)
}

/// `NAME=VALUE` with NAME a variable's name (letters, digits and `_`, not starting with a
/// digit), as a shell takes it before a command.
fn environment_word(word: &str) -> Option<(&str, &str)> {
    let (key, value) = word.split_once('=')?;
    let mut chars = key.chars();
    let first = chars.next()?;
    let valid = (first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    valid.then_some((key, value))
}

/// Runs each contender `runs` times, in turn, after one untimed run of the first (which
/// warms the page cache and the server's buffers): alternating exposes them all to the
/// same noise of a shared machine. Outputs are removed before each run and sized after
/// it; with `rows`, the first run's output of each contender must hold that many rows.
pub fn run_alternately(
    contenders: &mut [Contender],
    runs: usize,
    name: &str,
    rows: Option<u64>,
) -> Result<()> {
    contenders[0].measure()?;
    for run in 0..runs {
        for c in contenders.iter_mut() {
            if let Some(o) = &c.output {
                let _ = std::fs::remove_file(o).or_else(|_| std::fs::remove_dir_all(o));
            }
            let mut s = c.measure()?;
            if let Some(o) = &c.output {
                let files = parquet_files(o)?;
                s.output = files
                    .iter()
                    .map(|f| std::fs::metadata(f).map(|m| m.len()))
                    .sum::<std::io::Result<u64>>()
                    .map_err(|e| e.to_string())?;
                let expected = rows.filter(|_| run == 0);
                if let Some(expected) = expected {
                    let got = files.iter().map(|f| parquet_rows(f)).sum::<Result<u64>>()?;
                    if got != expected {
                        return Err(format!("{} wrote {got} rows, expected {expected}", c.label));
                    }
                }
            }
            eprintln!(
                "  {name} run {}: {:<40} {:>7.2}s  {:>6.0} MB RSS",
                run + 1,
                c.label,
                s.wall.as_secs_f64(),
                s.rss as f64 / 1e6
            );
            c.samples.push(s);
        }
    }
    Ok(())
}

/// The export table: medians of wall time, rows/s, Parquet MB/s (output bytes per wall
/// second), output size and peak RSS of each contender, with ratios to the first (the
/// baseline).
pub fn export_report(table: &str, rows: u64, runs: usize, contenders: &[Contender]) -> String {
    let mb = |b: f64| b / 1e6;
    let median_wall =
        |c: &Contender| median(c.samples.iter().map(|s| s.wall.as_secs_f64()).collect());
    let median_rss = |c: &Contender| median(c.samples.iter().map(|s| s.rss as f64).collect());
    let base_wall = median_wall(&contenders[0]);
    let base_rss = median_rss(&contenders[0]);
    let mut report = String::new();
    let _ = writeln!(
        report,
        "\n{table}: {rows} rows, medians of {runs} runs (load average now {})\n",
        load_average()
    );
    let _ = writeln!(
        report,
        "| contender | wall s | x base | rows/s | Parquet MB/s | output MB | peak RSS MB | x base |"
    );
    let _ = writeln!(report, "|---|---:|---:|---:|---:|---:|---:|---:|");
    for c in contenders {
        let (wall, rss) = (median_wall(c), median_rss(c));
        let output = median(c.samples.iter().map(|s| s.output as f64).collect());
        let (mbps, size) = if c.output.is_some() {
            (
                format!("{:.1}", mb(output) / wall),
                format!("{:.1}", mb(output)),
            )
        } else {
            ("-".into(), "-".into())
        };
        let _ = writeln!(
            report,
            "| {} | {wall:.2} | {:.2} | {:.0} | {mbps} | {size} | {:.0} | {:.2} |",
            c.label,
            wall / base_wall,
            rows as f64 / wall,
            mb(rss),
            rss / base_rss,
        );
    }
    report
}

/// The Parquet files of an output: the file itself, or every `.parquet` file under a
/// dataset's directory (`--partition-by`).
fn parquet_files(path: &Path) -> Result<Vec<PathBuf>> {
    if !path.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).map_err(|e| e.to_string())? {
        let entry = entry.map_err(|e| e.to_string())?.path();
        if entry.is_dir() {
            files.extend(parquet_files(&entry)?);
        } else if entry.extension().is_some_and(|e| e == "parquet") {
            files.push(entry);
        }
    }
    Ok(files)
}

pub fn parquet_rows(path: &Path) -> Result<u64> {
    use parquet::file::reader::FileReader;
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let reader = parquet::file::serialized_reader::SerializedFileReader::new(file)
        .map_err(|e| e.to_string())?;
    Ok(reader.metadata().file_metadata().num_rows() as u64)
}

/// The repository's root, where the benchmarks' scripts and requirements are read.
pub fn repository() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A Python for the peers: the venv `out/NAME` with `requirements` (a path in the
/// repository) installed, made with `python` on first use and again when the
/// requirements change (the venv keeps the text it was made from).
pub fn peers_python(python: &str, out: &Path, requirements: &str, name: &str) -> Result<PathBuf> {
    let requirements = repository().join(requirements);
    let wanted = std::fs::read_to_string(&requirements)
        .map_err(|e| format!("{}: {e}", requirements.display()))?;
    let venv = out.join(name);
    let bin = venv.join("bin").join("python");
    let stamp = venv.join("tributary-requirements.txt");
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s == wanted) {
        return Ok(bin);
    }
    eprintln!(
        "installing the peers into {} (once, then reused)...",
        venv.display()
    );
    let _ = std::fs::remove_dir_all(&venv);
    run_with_input(
        python,
        &[OsStr::new("-m"), OsStr::new("venv"), venv.as_os_str()],
        &[],
        "",
    )
    .map_err(|e| format!("making the peers' venv: {e}"))?;
    run_with_input(
        &bin.display().to_string(),
        &[
            OsStr::new("-m"),
            OsStr::new("pip"),
            OsStr::new("install"),
            OsStr::new("--quiet"),
            OsStr::new("--disable-pip-version-check"),
            OsStr::new("-r"),
            requirements.as_os_str(),
        ],
        &[],
        "",
    )
    .map_err(|e| format!("installing the peers (PyPI needed): {e}"))?;
    std::fs::write(&stamp, &wanted).map_err(|e| e.to_string())?;
    Ok(bin)
}
