//! The independent readers: a Python virtual environment with pyarrow, pandas, polars,
//! DuckDB and PySpark (local mode, on the machine's Java), and the Prometheus client's
//! parser for metrics files (pinned in
//! `tests/readers/requirements.txt`), made under `target/` on first use
//! and reused while the requirements are unchanged. Made once per machine and guarded by
//! a file lock, so concurrent test processes wait for one another rather than race.
//! Anything missing is a loud failure, never a skip: the checks run in CI.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const REQUIREMENTS: &str = "tests/readers/requirements.txt";
/// The Delta Lake readers, in a venv of their own (see the file).
const DELTA_REQUIREMENTS: &str = "tests/readers/requirements-delta.txt";
pub const CHECK_SCRIPT: &str = "tests/readers/check.py";
const SPARK_SCRIPT: &str = "tests/readers/spark.py";
const METRICS_SCRIPT: &str = "tests/readers/metrics.py";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

/// The virtual environment's Python, set up if needed.
pub fn python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        if let Some(python) = std::env::var_os("TRIBUTARY_TEST_PYTHON") {
            return PathBuf::from(python);
        }
        setup(REQUIREMENTS, "py-readers")
    })
}

/// The Python of the Delta Lake readers' venv (`deltalake`, DuckDB with its delta
/// extension), set up if needed.
pub fn delta_python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| setup(DELTA_REQUIREMENTS, "py-delta"))
}

/// Runs `cmd` to its end; panics saying `what` failed, with its output and `hint`, if it
/// does.
pub fn run(what: &str, cmd: &mut Command, hint: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}\n{hint}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `python -m pip install`, quietly; the packages to add after it.
pub fn pip_install(python: &Path) -> Command {
    let mut pip = Command::new(python);
    pip.args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
    ]);
    pip
}

/// What a failure to set up the venv says.
const SETUP_HINT: &str = "The reader checks need Python 3 with venv and pip, and PyPI (or TRIBUTARY_TEST_PYTHON pointing at a Python that has tests/readers/requirements.txt installed).";

/// Makes the venv `name` under the target directory with `requirements` (a path in the
/// repository) installed, unless it is there with them; returns its Python.
fn setup(requirements_path: &str, name: &str) -> PathBuf {
    let requirements = std::fs::read_to_string(root().join(requirements_path))
        .unwrap_or_else(|e| panic!("reading {requirements_path}: {e}"));
    let target = target_dir();
    std::fs::create_dir_all(&target).unwrap();
    let venv = target.join(name);
    let python = venv.join("bin").join("python");
    let stamp = venv.join("tributary-requirements.txt");
    // One process sets up; the others wait here, then find the stamp.
    let lock = File::create(target.join(format!("{name}.lock"))).unwrap();
    lock.lock().expect("locking the reader venv");
    let ready = std::fs::read_to_string(&stamp).is_ok_and(|s| s == requirements);
    if !ready {
        let _ = std::fs::remove_dir_all(&venv);
        let interpreter = std::env::var("TRIBUTARY_TEST_PYTHON3").unwrap_or("python3".into());
        run(
            "creating the reader venv",
            Command::new(&interpreter).args(["-m", "venv"]).arg(&venv),
            SETUP_HINT,
        );
        run(
            "installing the readers with pip",
            pip_install(&python)
                .arg("-r")
                .arg(root().join(requirements_path)),
            SETUP_HINT,
        );
        std::fs::write(&stamp, &requirements).unwrap();
    }
    drop(lock);
    python
}

/// Where a check keeps its files after the test, to rerun it by hand:
/// `target/py-readers-last/TEST`, one directory per test (tests run concurrently, and two
/// checks sharing `expected.json` would read each other's expectations).
fn kept_dir() -> PathBuf {
    let test = std::thread::current()
        .name()
        .unwrap_or("unnamed")
        .replace(|c: char| !c.is_ascii_alphanumeric() && c != '_', "-");
    let dir = target_dir().join("py-readers-last").join(test);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Checks `parquet` with every reader against `expected` (see `tests/readers/check.py`);
/// returns the script's report. Panics with the mismatches, if any.
pub fn check(parquet: &Path, expected: &serde_json::Value) -> String {
    let dir = kept_dir();
    let kept = dir.join(parquet.file_name().unwrap());
    std::fs::copy(parquet, &kept).unwrap();
    let parquet = kept.as_path();
    let expected_path = dir.join("expected.json");
    std::fs::write(&expected_path, serde_json::to_vec_pretty(expected).unwrap()).unwrap();
    script(
        CHECK_SCRIPT,
        &[parquet.as_os_str(), expected_path.as_os_str()],
        "the readers disagree with PostgreSQL",
    )
}

/// Runs `script` (a path in the repository) with the venv's Python and `args`; returns
/// what it printed. Panics with `failure` and that output if it fails.
pub fn script(script: &str, args: &[&std::ffi::OsStr], failure: &str) -> String {
    run_script(python(), script, args, failure)
}

/// [`script`] with the Delta Lake readers' Python (see [`delta_python`]).
pub fn delta_script(script: &str, args: &[&std::ffi::OsStr], failure: &str) -> String {
    run_script(delta_python(), script, args, failure)
}

fn run_script(python: &Path, script: &str, args: &[&std::ffi::OsStr], failure: &str) -> String {
    let out = Command::new(python)
        .arg(root().join(script))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {script}: {e}"));
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{failure}:\n{report}");
    report
}

/// Checks each `(parquet, expected)` with PySpark, all in one Spark session (its start
/// takes seconds): every value as PostgreSQL returned it (see `tests/readers/spark.py`).
/// Returns the script's report (Spark's types); panics with the mismatches, if any.
pub fn spark(files: &[(&Path, &serde_json::Value)]) -> String {
    let dir = kept_dir();
    let mut args = Vec::new();
    for (i, (parquet, expected)) in files.iter().enumerate() {
        let kept = dir.join(format!(
            "spark-{i}-{}",
            parquet.file_name().unwrap().to_string_lossy()
        ));
        std::fs::copy(parquet, &kept).unwrap();
        let expected_path = dir.join(format!("spark-{i}-expected.json"));
        std::fs::write(&expected_path, serde_json::to_vec_pretty(expected).unwrap()).unwrap();
        args.push(expected_path);
        args.push(kept);
    }
    let started = std::time::Instant::now();
    let out = Command::new(python())
        .arg(root().join(SPARK_SCRIPT))
        .args(&args)
        // Spark hands nested timestamps to Python in the local zone.
        .env("TZ", "UTC")
        .output()
        .expect("running the Spark check (needs Java 17 or later on PATH)");
    let report = format!(
        "{}{}spark check took {:.1?}\n",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter(|l| !l.contains("WARN") && !l.trim().is_empty())
            .map(|l| format!("{l}\n"))
            .collect::<String>(),
        started.elapsed()
    );
    assert!(
        out.status.success(),
        "Spark disagrees with PostgreSQL:\n{report}"
    );
    report
}

/// The metrics file at `path` as the Prometheus client's parser reads it (see
/// `tests/readers/metrics.py`): `{family: {type, help, samples: [{name, labels, value}]}}`.
/// Panics if it does not parse.
pub fn prometheus(path: &Path) -> serde_json::Value {
    let out = Command::new(python())
        .arg(root().join(METRICS_SCRIPT))
        .arg(path)
        .output()
        .expect("running the metrics parser");
    assert!(
        out.status.success(),
        "the Prometheus parser refuses {}:\n{}\n{}",
        path.display(),
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(path).unwrap_or_default()
    );
    serde_json::from_slice(&out.stdout).expect("the parser prints JSON")
}
