//! The Python package (python/): built with maturin into the readers' venv, then
//! `tributary.read_sql` is run on the queries and shards the `tributary` binary is run
//! on, and must return the rows and types of the binary's Parquet output, and raise the
//! binary's errors (its exit code, the shard) as exceptions (tests/readers/read_sql.py).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::{Value, json};

use crate::combine::fixture::{Set, fixture};
use crate::harness;
use crate::readers;

const SCRIPT: &str = "tests/readers/read_sql.py";

/// The readers' Python with the package built from python/ (the dev profile, as the
/// tests' own build) installed: built once per test process, under a file lock so that
/// concurrent processes take turns.
fn python_with_package() -> &'static Path {
    static INSTALLED: OnceLock<PathBuf> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let python = readers::python().to_owned();
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let target = readers::target_dir();
        let wheels = target.join("python-wheels");
        let lock = File::create(target.join("python-wheels.lock")).unwrap();
        lock.lock().expect("locking the Python package's build");
        let _ = std::fs::remove_dir_all(&wheels);
        let mut maturin = Command::new(&python);
        maturin
            .args([
                "-m",
                "maturin",
                "build",
                "--quiet",
                "--strip",
                "--auditwheel",
                "skip",
            ])
            .arg("--manifest-path")
            .arg(root.join("python/Cargo.toml"))
            .arg("--interpreter")
            .arg(&python)
            .arg("--out")
            .arg(&wheels)
            .env("CARGO_TARGET_DIR", &target);
        // What cargo sets for this test process (`CARGO_MANIFEST_DIR`, `CARGO_PKG_NAME`,
        // `OUT_DIR`, ...) is not for the build: build scripts that watch those variables
        // (ring's) would see them changed and rebuild most dependencies.
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy();
            if (key.starts_with("CARGO_") && key != "CARGO_HOME" && key != "CARGO_TARGET_DIR")
                || key == "OUT_DIR"
            {
                maturin.env_remove(key.as_ref());
            }
        }
        readers::run(
            "building the Python package with maturin (python/)",
            &mut maturin,
            BUILD_HINT,
        );
        let wheel = std::fs::read_dir(&wheels)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "whl"))
            .expect("maturin leaves a wheel");
        readers::run(
            "installing the Python package's wheel",
            readers::pip_install(&python)
                .args(["--force-reinstall", "--no-deps"])
                .arg(&wheel),
            BUILD_HINT,
        );
        python
    })
}

/// What a failure to build or install the package says.
const BUILD_HINT: &str = "The Python package is built with maturin, which tests/readers/requirements.txt installs in the readers' venv.";

/// One query run both ways.
struct Case {
    name: &'static str,
    sql: &'static str,
    shards: Vec<(String, String)>,
    /// `read_sql`'s keyword arguments, and the same as the binary's flags.
    options: Value,
    flags: Vec<String>,
    ordered: bool,
    combined: bool,
}

impl Case {
    fn new(name: &'static str, sql: &'static str, shards: Vec<(String, String)>) -> Case {
        Case {
            name,
            sql,
            shards,
            options: json!({}),
            flags: Vec::new(),
            ordered: false,
            combined: false,
        }
    }

    fn with(mut self, option: &str, value: Value, flags: &[&str]) -> Case {
        self.options[option] = value;
        self.flags.extend(flags.iter().map(|f| f.to_string()));
        self
    }

    /// Runs the binary in `dir`; returns the case for the script and the binary's output.
    fn run_cli(&self, dir: &Path) -> (Value, std::process::Output) {
        let shards: String = self
            .shards
            .iter()
            .map(|(name, url)| format!("{name} = \"{url}\"\n"))
            .collect();
        let query = dir.join(format!("{}.sql", self.name));
        let shards_file = dir.join(format!("{}.toml", self.name));
        let parquet = dir.join(format!("{}.parquet", self.name));
        std::fs::write(&query, self.sql).unwrap();
        std::fs::write(&shards_file, format!("[shards]\n{shards}")).unwrap();
        let mut args = vec![
            "run".to_string(),
            query.display().to_string(),
            "--shards".into(),
            shards_file.display().to_string(),
            "-o".into(),
            parquet.display().to_string(),
            "--no-ledger".into(),
            "--quiet".into(),
        ];
        args.extend(self.flags.iter().cloned());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = harness::tributary_in(dir, &args);
        let shards: serde_json::Map<String, Value> = self
            .shards
            .iter()
            .map(|(n, u)| (n.clone(), json!(u)))
            .collect();
        let case = json!({
            "name": self.name,
            "query": self.sql,
            "shards": shards,
            "options": self.options,
            "parquet": parquet,
            "ordered": self.ordered,
            "combined": self.combined,
        });
        (case, out)
    }
}

/// Runs the script on `cases`; returns its report.
fn check(dir: &Path, cases: &[Value]) -> String {
    python_with_package();
    let file = dir.join("cases.json");
    std::fs::write(&file, serde_json::to_vec_pretty(cases).unwrap()).unwrap();
    readers::script(
        SCRIPT,
        &[file.as_os_str()],
        "read_sql disagrees with the CLI",
    )
}

#[tokio::test]
async fn read_sql_returns_the_rows_and_types_of_the_clis_parquet() {
    let f = fixture().await;
    let mixed = Set::Mixed.shards(f);
    let pg = Set::Pg.shards(f);
    let mut ordered = Case::new(
        "ordered",
        "SELECT id, region, unit_price, discount, ordered_at, big FROM orders
         ORDER BY unit_price DESC NULLS LAST, id LIMIT 25",
        pg.clone(),
    );
    ordered.ordered = true;
    ordered.combined = true;
    let mut grouped = Case::new(
        "grouped",
        "SELECT region, count(*) AS n, sum(quantity) AS q, avg(quantity) AS mean
         FROM orders GROUP BY region",
        mixed.clone(),
    );
    grouped.combined = true;
    let cases = [
        // 3 PostgreSQL and 2 SQLite shards, a parameter.
        Case::new(
            "plain",
            "SELECT id, customer_id, region, category, order_date, quantity, paid
             FROM orders WHERE customer_id > :min",
            mixed.clone(),
        )
        .with("params", json!({"min": 10}), &["--param", "min=10"]),
        grouped,
        ordered,
        Case::new(
            "partitioned",
            "SELECT id, unit_price, ordered_at FROM orders",
            pg.clone(),
        )
        .with(
            "partition",
            json!(["id", 3]),
            &["--partition-on", "id", "--partitions", "3"],
        ),
        Case::new(
            "concatenated",
            "SELECT region, count(*) AS n FROM orders GROUP BY region",
            mixed,
        )
        .with("combine", json!(false), &["--combine", "off"])
        .with("shard_column", json!("shard"), &["--shard-column", "shard"]),
    ];
    let dir = tempfile::tempdir().unwrap();
    // A job file whose output is in a bucket no one can reach: read_sql writes nothing,
    // so it takes the job's settings and never contacts the bucket; the binary is given
    // a local output, which overrides the job's.
    let job = dir.path().join("remote-job.toml");
    std::fs::write(
        &job,
        "output = \"s3://tributary-nowhere/orders.parquet\"\nshard_column = \"from\"\n",
    )
    .unwrap();
    let job = job.display().to_string();
    let mut cases = Vec::from(cases);
    cases.push(
        Case::new(
            "job",
            "SELECT id, quantity FROM orders WHERE id % 7 = 0",
            Set::Pg.shards(f),
        )
        .with("job", json!(job), &["--job", &job]),
    );
    let mut runs = Vec::new();
    for case in &cases {
        let (run, out) = case.run_cli(dir.path());
        harness::succeeded(&out);
        runs.push(run);
    }
    let report = check(dir.path(), &runs);
    assert_eq!(report.matches(": ok (").count(), cases.len(), "{report}");
}

#[tokio::test]
async fn read_sql_raises_the_clis_errors_with_the_shard() {
    let f = fixture().await;
    let p1 = ("p1".to_string(), f.pg[0].clone());
    // A database without the table.
    let nowhere = (
        "nowhere".to_string(),
        format!("{}/postgres", harness::pg_base()),
    );
    let down = (
        "down".to_string(),
        "postgres://postgres@127.0.0.1:1/orders".to_string(),
    );
    let cases = [
        (
            Case::new(
                "missing_table",
                "SELECT id FROM orders",
                vec![p1.clone(), nowhere],
            ),
            json!({"class": "DataError", "exit_code": 4, "shard": "nowhere", "contains": ["nowhere", "orders"]}),
        ),
        (
            Case::new(
                "unreachable",
                "SELECT id FROM orders",
                vec![p1.clone(), down],
            ),
            json!({"class": "ShardUnavailable", "exit_code": 5, "shard": "down", "contains": ["down"]}),
        ),
        (
            Case::new(
                "missing_param",
                "SELECT id FROM orders WHERE id > :since",
                vec![p1],
            ),
            json!({"class": "ConfigError", "exit_code": 3, "shard": null, "contains": ["since"]}),
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    let mut runs = Vec::new();
    for (case, error) in &cases {
        let (mut run, out) = case.run_cli(dir.path());
        // The binary fails the same way first.
        assert_eq!(
            out.status.code(),
            error["exit_code"].as_i64().map(|c| c as i32),
            "{}: {}",
            case.name,
            harness::stderr(&out)
        );
        for text in error["contains"].as_array().unwrap() {
            assert!(
                harness::stderr(&out).contains(text.as_str().unwrap()),
                "{}",
                harness::stderr(&out)
            );
        }
        run["error"] = error.clone();
        runs.push(run);
    }
    let report = check(dir.path(), &runs);
    assert_eq!(report.matches(": ok (").count(), cases.len(), "{report}");
}
