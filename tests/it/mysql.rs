//! MySQL and MariaDB shards, against the MariaDB server on this machine (127.0.0.1:3306,
//! user root, no password; TRIBUTARY_TEST_MYSQL overrides) and one with TLS that a test
//! starts itself: every type read back from the Parquet (by arrow-rs, then by pyarrow,
//! pandas, polars and DuckDB) and compared with what the server prints, zero dates,
//! partitions, deadlines and SIGINT killing the statement on the server, a connection cut
//! or stalled mid-stream and retried, ssl-mode against certificates, a fleet of
//! PostgreSQL, MariaDB and SQLite shards, hostile parameter values, and passwords kept
//! out of every output. Combining across MySQL shards is in `mysql_combine`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use arrow::array::{
    Array, AsArray, BinaryArray, DurationMicrosecondArray, RecordBatch, TimestampMicrosecondArray,
    UInt64Array,
};
use arrow::datatypes::{DataType, TimeUnit};
use tributary::config::PartitionSpec;
use tributary::error::{Error, exit};

use crate::harness::{self, Job, bin, concat, i64_column, job_args, stderr, str_column};
use crate::proxy::{Fault, Proxy};

/// The test server's URL, without a database.
fn base() -> String {
    std::env::var("TRIBUTARY_TEST_MYSQL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into())
}

/// The `mariadb` client's connection arguments for the test server.
fn client_args(names: bool) -> Vec<String> {
    let url = base();
    let rest = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
    let (user, hostport) = rest.split_once('@').unwrap_or(("root", rest));
    let (host, port) = hostport.split_once(':').unwrap_or((hostport, "3306"));
    vec![
        format!("--user={user}"),
        format!("--host={host}"),
        format!("--port={port}"),
        "--protocol=TCP".into(),
        "--batch".into(),
        "--raw".into(),
        if names {
            "--column-names"
        } else {
            "--skip-column-names"
        }
        .into(),
        "--default-character-set=utf8mb4".into(),
    ]
}

/// Runs `sql` with the `mariadb` client in database `db`; its output lines, tab-split
/// (the client prints NULL as `NULL`).
pub fn client(db: &str, sql: &str) -> Vec<Vec<Option<String>>> {
    client_lines(db, sql, false)
}

/// [`client`] with the result's column names as the first line.
pub fn client_named(db: &str, sql: &str) -> Vec<Vec<Option<String>>> {
    client_lines(db, sql, true)
}

fn client_lines(db: &str, sql: &str, names: bool) -> Vec<Vec<Option<String>>> {
    use std::io::Write as _;
    // The SQL goes in on stdin: a setup's INSERT can pass the limit of one argument.
    let mut child = Command::new("mariadb")
        .args(client_args(names))
        .arg(db)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "running the mariadb client, which these tests need (apt-get install mariadb-client): {e}"
            )
        });
    let mut stdin = child.stdin.take().unwrap();
    let input = sql.to_string();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().unwrap();
    writer
        .join()
        .unwrap()
        .expect("writing the SQL to the mariadb client");
    let shown: String = sql.chars().take(2000).collect();
    assert!(
        out.status.success(),
        "mariadb on {} failed: {}\nThese tests need MariaDB on 127.0.0.1:3306 with user root and no password: \
         `apt-get install mariadb-server && service mariadb start`, or point TRIBUTARY_TEST_MYSQL at one.\n{shown}",
        base(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            line.split('\t')
                .map(|v| (v != "NULL").then(|| v.to_string()))
                .collect()
        })
        .collect()
}

/// The full name of a test database (as the PostgreSQL tests name theirs).
pub fn db(name: &str) -> String {
    harness::db(&format!("my_{name}"))
}

/// (Re)creates database `name` and runs `setup` in it; returns its shard URL.
pub fn database(name: &str, setup: &str) -> String {
    let name = db(name);
    client(
        "mysql",
        &format!("DROP DATABASE IF EXISTS {name}; CREATE DATABASE {name} CHARACTER SET utf8mb4"),
    );
    client(&name, setup);
    format!("{}/{name}", base())
}

/// Statements running on the server whose text holds `marker` (other than this look).
fn running(marker: &str) -> Vec<String> {
    client(
        "mysql",
        &format!(
            "SELECT INFO FROM information_schema.PROCESSLIST WHERE INFO LIKE '%{marker}%' AND ID <> CONNECTION_ID()"
        ),
    )
    .into_iter()
    .filter_map(|row| row.into_iter().next().flatten())
    .collect()
}

/// Waits up to `limit` until no statement holding `marker` runs on the server.
async fn assert_gone(marker: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let left = running(marker);
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "still running on the server: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

const TYPES_SETUP: &str = r#"
SET SESSION sql_mode = '';
SET time_zone = '+00:00';
CREATE TABLE types (
    id INT PRIMARY KEY,
    ti TINYINT, tu TINYINT UNSIGNED, si SMALLINT, su SMALLINT UNSIGNED,
    mi MEDIUMINT, mu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED, bi BIGINT, bu BIGINT UNSIGNED,
    b BOOL, de DECIMAL(12,4), du DECIMAL(5,0) UNSIGNED, dw DECIMAL(65,30),
    f FLOAT, d DOUBLE, bits BIT(10), y YEAR,
    dt DATE, dtm DATETIME, dt6 DATETIME(6), ts TIMESTAMP(6) NULL, tm TIME(6),
    c CHAR(5), vc VARCHAR(50), tx TEXT, bn BINARY(3), vb VARBINARY(10), bl BLOB,
    e ENUM('small', 'médium', 'large'), st SET('a', 'b', 'c'),
    j JSON, g GEOMETRY, u UUID, ip INET6
) CHARACTER SET utf8mb4;
INSERT INTO types VALUES
 (1, 127, 255, 32767, 65535, 8388607, 16777215, 2147483647, 4294967295,
  9223372036854775807, 18446744073709551615, 1, 99999999.9999, 99999,
  12345678901234567890123456789012345.123456789012345678901234567890,
  3.5, 1e308, b'1111111111', 2155,
  '9999-12-31', '9999-12-31 23:59:59', '2024-02-29 12:34:56.789012',
  '2038-01-19 03:14:07.999999', '838:59:59.000000',
  'ab', 'héllo ✓ "quoted"', 'long text', 'abc', 'v', 'blob',
  'médium', 'a,c', '{"k": [1, 2.5, "x"]}', ST_GeomFromText('POINT(1 2)'),
  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '2001:db8::1'),
 (2, -128, 0, -32768, 0, -8388608, 0, -2147483648, 0,
  -9223372036854775808, 0, 0, -99999999.9999, 0, -0.000000000000000000000000000001,
  -0.25, -2.2250738585072014e-308, b'0', 1901,
  '1000-01-01', '1000-01-01 00:00:00', '1970-01-01 00:00:00.000001',
  '1970-01-01 00:00:01.000000', '-838:59:59.000000',
  '', '', '', '', '', '',
  'small', '', '[]', ST_GeomFromText('LINESTRING(0 0, 1 1)'),
  '00000000-0000-0000-0000-000000000000', '::'),
 (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL),
 (4, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 1, 0, 1, 0,
  0, 0, b'1', 2024, '2024-02-29', '2024-02-29 00:00:00', '2024-02-29 23:59:59.5',
  '2024-02-29 23:59:59.5', '-00:00:00.000001',
  'x', 'multi
line', 'x', 'x', X'00FF', X'00FF10',
  'large', 'a,b,c', 'null', ST_GeomFromText('POLYGON((0 0, 1 0, 1 1, 0 0))'),
  'ffffffff-ffff-ffff-ffff-ffffffffffff', '::ffff:192.0.2.1');
"#;

/// Each column as the server prints it, in a form the Parquet's values are printed in
/// below: binary as hex, times with six digits, floats as doubles.
const TYPES_SERVER_VIEW: &str = "SET time_zone = '+00:00';
SELECT id, ti, tu, si, su, mi, mu, i, iu, bi, bu, b, de, du, dw,
  CAST(f AS DOUBLE), d, CAST(bits AS UNSIGNED), y, dt,
  DATE_FORMAT(dtm, '%Y-%m-%d %H:%i:%s.%f'), DATE_FORMAT(dt6, '%Y-%m-%d %H:%i:%s.%f'),
  DATE_FORMAT(ts, '%Y-%m-%d %H:%i:%s.%f'), TIME_FORMAT(tm, '%H:%i:%s.%f'),
  c, REPLACE(vc, '\n', '\\\\n'), tx, HEX(bn), HEX(vb), HEX(bl), e, st, j, HEX(ST_AsWKB(g)), u, ip
FROM types ORDER BY id";

/// A Parquet value printed as the server view above prints it.
pub fn cell(array: &dyn Array, i: usize) -> Option<String> {
    if array.is_null(i) {
        return None;
    }
    let micros_text = |micros: i64| {
        let t = chrono::DateTime::from_timestamp_micros(micros)
            .unwrap()
            .naive_utc();
        t.format("%Y-%m-%d %H:%M:%S%.6f").to_string()
    };
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02X}")).collect::<String>();
    Some(match array.data_type() {
        DataType::Boolean => (array.as_boolean().value(i) as u8).to_string(),
        DataType::Int8 => array
            .as_primitive::<arrow::datatypes::Int8Type>()
            .value(i)
            .to_string(),
        DataType::Int16 => array
            .as_primitive::<arrow::datatypes::Int16Type>()
            .value(i)
            .to_string(),
        DataType::Int32 => array
            .as_primitive::<arrow::datatypes::Int32Type>()
            .value(i)
            .to_string(),
        DataType::Int64 => array
            .as_primitive::<arrow::datatypes::Int64Type>()
            .value(i)
            .to_string(),
        DataType::UInt8 => array
            .as_primitive::<arrow::datatypes::UInt8Type>()
            .value(i)
            .to_string(),
        DataType::UInt16 => array
            .as_primitive::<arrow::datatypes::UInt16Type>()
            .value(i)
            .to_string(),
        DataType::UInt32 => array
            .as_primitive::<arrow::datatypes::UInt32Type>()
            .value(i)
            .to_string(),
        DataType::UInt64 => array
            .as_primitive::<arrow::datatypes::UInt64Type>()
            .value(i)
            .to_string(),
        DataType::Float32 => (array
            .as_primitive::<arrow::datatypes::Float32Type>()
            .value(i) as f64)
            .to_string(),
        DataType::Float64 => array
            .as_primitive::<arrow::datatypes::Float64Type>()
            .value(i)
            .to_string(),
        DataType::Decimal128(_, s) => {
            let v = array
                .as_primitive::<arrow::datatypes::Decimal128Type>()
                .value(i);
            let sign = if v < 0 { "-" } else { "" };
            let p = 10u128.pow(*s as u32);
            let (whole, frac) = (v.unsigned_abs() / p, v.unsigned_abs() % p);
            match s {
                0 => format!("{sign}{whole}"),
                _ => format!("{sign}{whole}.{frac:0width$}", width = *s as usize),
            }
        }
        DataType::Utf8 => array.as_string::<i32>().value(i).replace('\n', "\\n"),
        DataType::Binary => hex(array.as_binary::<i32>().value(i)),
        DataType::FixedSizeBinary(16) => {
            let b = array.as_fixed_size_binary().value(i);
            uuid::Uuid::from_slice(b).unwrap().hyphenated().to_string()
        }
        DataType::Date32 => {
            let d = array
                .as_primitive::<arrow::datatypes::Date32Type>()
                .value(i);
            (chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()
                + chrono::Duration::days(d as i64))
            .to_string()
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => micros_text(
            array
                .as_primitive::<arrow::datatypes::TimestampMicrosecondType>()
                .value(i),
        ),
        DataType::Duration(TimeUnit::Microsecond) => {
            let v = array
                .as_primitive::<arrow::datatypes::DurationMicrosecondType>()
                .value(i);
            let sign = if v < 0 { "-" } else { "" };
            let a = v.unsigned_abs();
            format!(
                "{sign}{:02}:{:02}:{:02}.{:06}",
                a / 3_600_000_000,
                a / 60_000_000 % 60,
                a / 1_000_000 % 60,
                a % 1_000_000
            )
        }
        other => panic!("no printer for {other}"),
    })
}

/// What the readers must type the columns whose type matters most to a notebook:
/// unsigned, exact decimal, zoned and naive timestamps, durations, JSON and UUID.
const READER_TYPES: &[(&str, &[(&str, &str)])] = &[
    (
        "bu",
        &[
            ("pyarrow", "uint64"),
            ("polars", "UInt64"),
            ("duckdb", "UBIGINT"),
        ],
    ),
    (
        "de",
        &[
            ("pyarrow", "decimal128(12, 4)"),
            ("polars", "Decimal(precision=12, scale=4)"),
            ("duckdb", "DECIMAL(12,4)"),
        ],
    ),
    (
        "ts",
        &[
            ("pyarrow", "timestamp[us, tz=UTC]"),
            ("polars", "Datetime(time_unit='us', time_zone='UTC')"),
            ("duckdb", "TIMESTAMP WITH TIME ZONE"),
        ],
    ),
    (
        "dtm",
        &[
            ("pyarrow", "timestamp[us]"),
            ("polars", "Datetime(time_unit='us', time_zone=None)"),
            ("duckdb", "TIMESTAMP"),
        ],
    ),
    (
        "tm",
        &[
            ("pyarrow", "duration[us]"),
            ("polars", "Duration(time_unit='us')"),
        ],
    ),
    ("j", &[("duckdb", "JSON")]),
    ("u", &[("duckdb", "UUID")]),
];

/// The value at `i` in the canonical form of `tests/readers/check.py` (exact decimal
/// text, hex bytes and uuids, temporal values as the integers stored).
fn canonical(array: &dyn Array, i: usize) -> serde_json::Value {
    use arrow::datatypes as t;
    use serde_json::Value;
    if array.is_null(i) {
        return Value::Null;
    }
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    match array.data_type() {
        DataType::Boolean => array.as_boolean().value(i).into(),
        DataType::Int8 => array.as_primitive::<t::Int8Type>().value(i).into(),
        DataType::Int16 => array.as_primitive::<t::Int16Type>().value(i).into(),
        DataType::Int32 => array.as_primitive::<t::Int32Type>().value(i).into(),
        DataType::Int64 => array.as_primitive::<t::Int64Type>().value(i).into(),
        DataType::UInt8 => array.as_primitive::<t::UInt8Type>().value(i).into(),
        DataType::UInt16 => array.as_primitive::<t::UInt16Type>().value(i).into(),
        DataType::UInt32 => array.as_primitive::<t::UInt32Type>().value(i).into(),
        DataType::UInt64 => array.as_primitive::<t::UInt64Type>().value(i).into(),
        DataType::Float32 => (array.as_primitive::<t::Float32Type>().value(i) as f64).into(),
        DataType::Float64 => array.as_primitive::<t::Float64Type>().value(i).into(),
        DataType::Decimal128(..) => cell(array, i).into(),
        DataType::Utf8 => array.as_string::<i32>().value(i).into(),
        DataType::Binary => hex(array.as_binary::<i32>().value(i)).into(),
        DataType::FixedSizeBinary(16) => hex(array.as_fixed_size_binary().value(i)).into(),
        DataType::Date32 => array.as_primitive::<t::Date32Type>().value(i).into(),
        DataType::Timestamp(TimeUnit::Microsecond, _) => array
            .as_primitive::<t::TimestampMicrosecondType>()
            .value(i)
            .into(),
        DataType::Duration(TimeUnit::Microsecond) => array
            .as_primitive::<t::DurationMicrosecondType>()
            .value(i)
            .into(),
        other => panic!("no canonical form for {other}"),
    }
}

/// Whether the server's text and ours say the same: floats, whose text differs in form
/// (`1e308`, `1e+308`), as numbers, which must be equal exactly.
fn same(ty: &DataType, server: &Option<String>, ours: &Option<String>) -> bool {
    match (ty, server, ours) {
        (DataType::Float32 | DataType::Float64, Some(a), Some(b)) => {
            a.parse::<f64>().ok() == b.parse::<f64>().ok() && a.parse::<f64>().is_ok()
        }
        (_, a, b) => a == b,
    }
}

#[tokio::test]
async fn every_mysql_type_reads_back_as_the_server_prints_it() {
    let url = database("types", TYPES_SETUP);
    let job = Job::new("SELECT * FROM types", &[("m", &url)]);
    let batch = concat(&job.run_ok().await);
    let expected_types: &[(&str, DataType)] = &[
        ("ti", DataType::Int8),
        ("tu", DataType::UInt8),
        ("si", DataType::Int16),
        ("su", DataType::UInt16),
        ("mi", DataType::Int32),
        ("mu", DataType::UInt32),
        ("i", DataType::Int32),
        ("iu", DataType::UInt32),
        ("bi", DataType::Int64),
        ("bu", DataType::UInt64),
        ("b", DataType::Boolean),
        ("de", DataType::Decimal128(12, 4)),
        ("du", DataType::Decimal128(5, 0)),
        ("dw", DataType::Utf8),
        ("f", DataType::Float32),
        ("d", DataType::Float64),
        ("bits", DataType::UInt64),
        ("y", DataType::Int16),
        ("dt", DataType::Date32),
        ("dtm", DataType::Timestamp(TimeUnit::Microsecond, None)),
        ("dt6", DataType::Timestamp(TimeUnit::Microsecond, None)),
        (
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        ),
        ("tm", DataType::Duration(TimeUnit::Microsecond)),
        ("c", DataType::Utf8),
        ("tx", DataType::Utf8),
        ("bn", DataType::Binary),
        ("bl", DataType::Binary),
        ("e", DataType::Utf8),
        ("st", DataType::Utf8),
        ("j", DataType::Utf8),
        ("g", DataType::Binary),
        ("u", DataType::FixedSizeBinary(16)),
        ("ip", DataType::Utf8),
    ];
    let schema = batch.schema();
    for (name, ty) in expected_types {
        assert_eq!(
            schema.field_with_name(name).unwrap().data_type(),
            ty,
            "column {name}"
        );
    }
    assert_eq!(
        schema.field_with_name("j").unwrap().extension_type_name(),
        Some("arrow.json")
    );
    assert_eq!(
        schema.field_with_name("u").unwrap().extension_type_name(),
        Some("arrow.uuid")
    );

    let server = client(&db("types"), TYPES_SERVER_VIEW);
    assert_eq!(server.len(), 4);
    for (row, want) in server.iter().enumerate() {
        assert_eq!(want.len(), batch.num_columns(), "the view has every column");
        for (c, want) in want.iter().enumerate() {
            let ours = cell(batch.column(c).as_ref(), row);
            assert!(
                same(schema.field(c).data_type(), want, &ours),
                "row {row}, column `{}`: the server says {want:?}, the Parquet holds {ours:?}",
                schema.field(c).name()
            );
        }
    }
    // The independent readers (pyarrow, pandas, polars, DuckDB) see the values the
    // server printed (checked against the file just above), in the types docs/types.md
    // gives.
    let columns: Vec<serde_json::Value> = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(c, field)| {
            let types = READER_TYPES
                .iter()
                .find(|(name, _)| *name == field.name())
                .map(|(_, types)| {
                    types
                        .iter()
                        .map(|(reader, ty)| (reader.to_string(), serde_json::json!(ty)))
                        .collect::<serde_json::Map<_, _>>()
                })
                .unwrap_or_default();
            serde_json::json!({
                "name": field.name(),
                "types": types,
                "values": (0..batch.num_rows())
                    .map(|i| canonical(batch.column(c).as_ref(), i))
                    .collect::<Vec<_>>(),
            })
        })
        .collect();
    eprintln!(
        "{}",
        crate::readers::check(&job.output(), &serde_json::json!({ "columns": columns }))
    );
    // Spot checks of the extremes, in Arrow's own terms.
    let col = |n: &str| batch.column_by_name(n).unwrap().clone();
    assert_eq!(
        col("bu")
            .as_any()
            .downcast_ref::<UInt64Array>()
            .unwrap()
            .value(0),
        u64::MAX
    );
    assert_eq!(
        col("tm")
            .as_any()
            .downcast_ref::<DurationMicrosecondArray>()
            .unwrap()
            .value(1),
        -(838 * 3600 + 59 * 60 + 59) * 1_000_000
    );
    assert_eq!(
        col("ts")
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .unwrap()
            .value(0),
        2_147_483_647_999_999
    );
    assert_eq!(
        col("bits")
            .as_any()
            .downcast_ref::<UInt64Array>()
            .unwrap()
            .value(0),
        1023
    );
    // WKB of POINT(1 2): little-endian, type 1, x, y.
    let g = col("g");
    let wkb = g.as_any().downcast_ref::<BinaryArray>().unwrap().value(0);
    assert_eq!(&wkb[..5], &[1, 1, 0, 0, 0]);
    assert_eq!(f64::from_le_bytes(wkb[13..21].try_into().unwrap()), 2.0);
}

#[tokio::test]
async fn zero_dates_fail_naming_the_column_unless_read_as_null() {
    let url = database(
        "zero_dates",
        "SET SESSION sql_mode = '';
         CREATE TABLE z (id INT, d DATE, t DATETIME);
         INSERT INTO z VALUES (1, '0000-00-00', '2024-01-01 00:00:00'), (2, '2024-01-01', '0000-00-00 00:00:00');",
    );
    let job = Job::new("SELECT id, d, t FROM z", &[("m", &url)]);
    let err = job.run_err().await.to_string();
    assert!(err.contains("`d`") && err.contains("0000-00-00"), "{err}");
    assert!(
        err.contains("infinity"),
        "the message says how to read them: {err}"
    );

    let mut job = job;
    job.args.type_options = vec![("infinity".into(), "null".into())];
    let batch = concat(&job.run_ok().await);
    let d = batch.column_by_name("d").unwrap();
    let t = batch.column_by_name("t").unwrap();
    assert!(d.is_null(0) && !d.is_null(1));
    assert!(!t.is_null(0) && t.is_null(1));
}

/// 20,000 rows (MariaDB's sequence engine) with skewed keys, NULLs, dates, times and
/// padding, as the PostgreSQL partition tests have.
const ROWS_SETUP: &str = "
CREATE TABLE t (id BIGINT PRIMARY KEY, k INT, day DATE, at DATETIME(3), ts TIMESTAMP(3) NULL, label VARCHAR(20), pad VARCHAR(200));
INSERT INTO t
SELECT seq,
       CASE WHEN seq % 10 = 0 THEN NULL WHEN seq % 3 = 0 THEN 7 ELSE CAST(seq AS SIGNED) - 5000 END,
       CASE WHEN seq % 11 = 0 THEN NULL ELSE DATE '2024-01-01' + INTERVAL (seq % 400) DAY END,
       CASE WHEN seq % 13 = 0 THEN NULL ELSE TIMESTAMP '2024-01-01 00:00:00' + INTERVAL (seq * 1023250) MICROSECOND END,
       CASE WHEN seq % 19 = 0 THEN NULL ELSE TIMESTAMP '2024-06-01 00:00:00' + INTERVAL (seq * 777) SECOND END,
       CASE WHEN seq % 17 = 0 THEN NULL ELSE CONCAT('label ', seq % 101) END,
       REPEAT('x', 150)
FROM seq_1_to_20000;
";

type Rows = Vec<(i64, Option<i64>, Option<String>)>;

fn rows(batch: &RecordBatch) -> Rows {
    let mut rows: Rows = i64_column(batch, "id")
        .into_iter()
        .zip(i64_column(batch, "k"))
        .zip(str_column(batch, "label"))
        .map(|((id, k), label)| (id.unwrap(), k, label))
        .collect();
    rows.sort();
    rows
}

#[tokio::test]
async fn partitioned_output_equals_the_unpartitioned_output_row_for_row() {
    let url = database("partitions", ROWS_SETUP);
    let sql = "SELECT id, CAST(k AS SIGNED) AS k, day, at, ts, label FROM t";
    let whole = rows(&concat(&Job::new(sql, &[("m", &url)]).run_ok().await));
    assert_eq!(whole.len(), 20_000);
    for (column, partitions) in [("id", 7), ("k", 5), ("day", 4), ("at", 6), ("ts", 3)] {
        let mut job = Job::new(sql, &[("m", &url)]);
        job.args.partition_on = Some(column.into());
        job.args.partitions = Some(partitions);
        let (report, result) = job.run().await;
        result.unwrap_or_else(|e| panic!("range on {column}: {e}\n{report}"));
        assert_eq!(
            report.independent,
            ["m"],
            "the summary says how partitions read"
        );
        assert!(report.to_string().contains("partitions read independently"));
        let split = rows(&concat(&harness::read_parquet(&job.output())));
        assert_eq!(split, whole, "range partitions on `{column}`");
    }
    for spec in [
        PartitionSpec::Hash {
            column: "label".into(),
            partitions: 4,
        },
        PartitionSpec::Predicates(vec![
            "id < 5000".into(),
            "id >= 5000 AND k IS NULL".into(),
            "id >= 5000 AND k IS NOT NULL".into(),
        ]),
    ] {
        let job = Job::new(sql, &[("m", &url)]);
        let spec_text = format!("{spec:?}");
        let split = rows(&concat(
            &job.run_ok_with(|config| config.options.partition = Some(spec))
                .await,
        ));
        assert_eq!(split, whole, "{spec_text}");
    }
}

#[tokio::test]
async fn a_query_past_its_deadline_is_killed_on_the_server() {
    let url = database("deadline", "SELECT 1");
    let marker = "tributary-mysql-deadline-marker";
    let mut job = Job::new(
        &format!("SELECT SLEEP(60) AS slept, '{marker}' AS m"),
        &[("sleepy", &url)],
    );
    job.args.query_timeout = Some(Duration::from_secs(1));
    let started = Instant::now();
    let err = job.run_err().await;
    let msg = err.to_string();
    assert!(
        msg.contains("shard `sleepy`") && msg.contains("timed out after 1s"),
        "{msg}"
    );
    assert_eq!(err.exit_code(), exit::TIMEOUT);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert_gone(marker, Duration::from_secs(2)).await;

    // The binary exits 6.
    let dir = tempfile::tempdir().unwrap();
    harness::write_job(
        dir.path(),
        &format!("SELECT SLEEP(60) AS slept, '{marker}-bin' AS m"),
        &url,
    );
    let out = bin()
        .current_dir(dir.path())
        .args(job_args(
            "run",
            &["-o", "out.parquet", "--query-timeout", "1s"],
        ))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(exit::TIMEOUT), "{}", stderr(&out));
    assert_gone(&format!("{marker}-bin"), Duration::from_secs(2)).await;
}

#[tokio::test]
async fn sigint_exits_130_and_kills_the_statement() {
    let url = database("sigint", "SELECT 1");
    let marker = "tributary-mysql-sigint-marker";
    let dir = tempfile::tempdir().unwrap();
    harness::write_job(
        dir.path(),
        &format!("SELECT SLEEP(30) AS s, '{marker}' AS m"),
        &url,
    );
    let child = bin()
        .current_dir(dir.path())
        .args(job_args("run", &["-o", "out.parquet"]))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while running(marker).is_empty() {
        assert!(Instant::now() < deadline, "the query never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    harness::signal_and_wait(child, "INT", exit::INTERRUPTED);
    assert!(!dir.path().join("out.parquet").exists());
    assert_gone(marker, Duration::from_secs(2)).await;
}

#[tokio::test]
async fn a_connection_cut_mid_stream_is_retried_and_the_output_is_whole() {
    let url = database("cut", ROWS_SETUP);
    let sql = "SELECT id, CAST(k AS SIGNED) AS k, label, pad FROM t";
    let clean = rows(&concat(&Job::new(sql, &[("m", &url)]).run_ok().await));
    let name = db("cut");
    for fault in [Fault::CutAfter(1_000_000), Fault::ResetAfter(1_500_000)] {
        let proxy = Proxy::start_to(3306, move |n| if n == 0 { fault } else { Fault::Pass }).await;
        let through = format!(
            "mysql://root@127.0.0.1:{}/{name}?ssl-mode=DISABLED",
            proxy.port
        );
        let mut job = Job::new(sql, &[("m", &through)]);
        // One connection: the describe's is the task's, so the fault meets the stream.
        job.args.pool_size = Some(1);
        let (report, result) = job.run().await;
        result.unwrap_or_else(|e| panic!("{fault:?}: {e}\n{report}"));
        assert_eq!(
            report.tasks[0].attempts, 2,
            "{fault:?}: the task was retried\n{report}"
        );
        let got = rows(&concat(&harness::read_parquet(&job.output())));
        assert_eq!(got.len(), clean.len(), "{fault:?}");
        assert!(got == clean, "{fault:?}: the retried output differs");
    }
}

#[tokio::test]
async fn a_fleet_of_postgres_mariadb_and_sqlite_shards_writes_one_file() {
    let pg_setup = |first: i64| {
        format!(
            "CREATE TABLE t (id int8, small int2, amount numeric(10,2), name text, day date);
             INSERT INTO t SELECT g, (g % 100)::int2, g * 1.25, 'pg ' || g, date '2024-01-01' + g::int FROM generate_series({first}, {first} + 9) g;"
        )
    };
    let my_setup = |first: i64| {
        let last = first + 9;
        format!(
            "CREATE TABLE t (id INT, small TINYINT, amount DECIMAL(12,3), name VARCHAR(20), day DATE);
             INSERT INTO t SELECT seq, seq % 100, seq * 1.25, CONCAT('my ', seq), DATE '2024-01-01' + INTERVAL seq DAY
             FROM seq_{first}_to_{last};"
        )
    };
    let pg1 = harness::database("fleet_pg1", &pg_setup(1)).await;
    let pg2 = harness::database("fleet_pg2", &pg_setup(11)).await;
    let my1 = database("fleet1", &my_setup(21));
    let my2 = database("fleet2", &my_setup(31));
    let dir = tempfile::tempdir().unwrap();
    let lite = harness::sqlite_db(
        dir.path(),
        "fleet.db",
        "CREATE TABLE t (id INTEGER, name TEXT);
         INSERT INTO t VALUES (41, 'lite 41'), (42, 'lite 42');",
    );
    // SQLite has no small, amount or day: the fleet reads the columns all have.
    let job = Job::new(
        "SELECT id, name FROM t",
        &[
            ("pg1", &pg1),
            ("pg2", &pg2),
            ("my1", &my1),
            ("my2", &my2),
            ("lite", &lite),
        ],
    );
    let batch = concat(&job.run_ok().await);
    assert_eq!(
        batch.schema().field_with_name("id").unwrap().data_type(),
        &DataType::Int64
    );
    assert_eq!(
        batch.schema().field_with_name("name").unwrap().data_type(),
        &DataType::Utf8
    );
    let mut ids: Vec<i64> = i64_column(&batch, "id").into_iter().flatten().collect();
    ids.sort();
    assert_eq!(ids, (1..=40).chain([41, 42]).collect::<Vec<_>>());
    let names = str_column(&batch, "name");
    assert!(names.contains(&Some("my 35".into())) && names.contains(&Some("pg 3".into())));

    // Without SQLite, the wider columns unify: TINYINT with int2, DECIMAL(12,3) with
    // numeric(10,2), MySQL's INT with int8.
    let job = Job::new(
        "SELECT id, small, amount, day FROM t",
        &[("pg1", &pg1), ("pg2", &pg2), ("my1", &my1), ("my2", &my2)],
    );
    let batch = concat(&job.run_ok().await);
    let schema = batch.schema();
    assert_eq!(
        schema.field_with_name("small").unwrap().data_type(),
        &DataType::Int16
    );
    assert_eq!(
        schema.field_with_name("amount").unwrap().data_type(),
        &DataType::Decimal128(12, 3)
    );
    assert_eq!(
        schema.field_with_name("day").unwrap().data_type(),
        &DataType::Date32
    );
    assert_eq!(batch.num_rows(), 40);
    let amounts = batch
        .column_by_name("amount")
        .unwrap()
        .as_primitive::<arrow::datatypes::Decimal128Type>();
    let ids = i64_column(&batch, "id");
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(amounts.value(i), id.unwrap() as i128 * 1250, "id {id:?}");
    }
}

#[tokio::test]
async fn hostile_parameter_values_are_values_never_sql() {
    let url = database(
        "params",
        r"CREATE TABLE t (id INT, name VARCHAR(50));
          INSERT INTO t VALUES (1, 'plain'), (2, 'it''s \\ tricky'), (3, 'x');",
    );
    let sql = "SELECT id FROM t WHERE name = :name";
    for (value, want) in [
        ("plain", vec![1]),
        ("it's \\ tricky", vec![2]),
        ("x' OR '1'='1", vec![]),
        ("\\' OR 1=1 -- ", vec![]),
        ("x\" OR \"1\"=\"1", vec![]),
        ("'; DROP TABLE t; --", vec![]),
    ] {
        let job = Job::new(sql, &[("m", &url)]).param("name", value);
        let ids: Vec<i64> = job
            .run_ok()
            .await
            .iter()
            .flat_map(|b| i64_column(b, "id"))
            .flatten()
            .collect();
        assert_eq!(ids, want, "value {value:?}");
    }
    assert_eq!(
        client(&db("params"), "SELECT COUNT(*) FROM t"),
        [[Some("3".to_string())]]
    );
}

#[tokio::test]
async fn a_mysql_password_appears_in_no_output() {
    let secret = "My-Pw-5d1e-never-print-me";
    let dir = tempfile::tempdir().unwrap();
    harness::write_query_and_shards(
        dir.path(),
        "SELECT 1 AS x",
        &format!(
            "[shards]\na = \"mysql://reader:{secret}@127.0.0.1:1/sales\"\nb = {{ url = \"mariadb://reader@127.0.0.1:1/sales\", password_env = \"TRIB_MY_PW\" }}\nc = \"mysql://nobody:{secret}@127.0.0.1:3306/nowhere\"\n"
        ),
    );
    for (command, extra) in [
        ("run", &["-o", "out.parquet", "--connect-timeout", "2s"][..]),
        ("plan", &[][..]),
        ("check", &["--connect-timeout", "2s"][..]),
    ] {
        let out = harness::tributary_with(dir.path(), &job_args(command, extra), |cmd| {
            cmd.env("TRIB_MY_PW", secret)
                .env("MYSQL_PWD", secret)
                .env("RUST_LOG", "trace");
        });
        let text = format!("{}{}", harness::stdout(&out), stderr(&out));
        assert!(
            !text.contains(secret),
            "`{command}` printed the password:\n{text}"
        );
        assert!(
            text.contains("127.0.0.1") || text.contains("shard `a`"),
            "`{command}` names the shard:\n{text}"
        );
    }
}

#[tokio::test]
async fn ssl_mode_required_never_falls_back_to_plaintext() {
    // The test server has no TLS: REQUIRED must refuse it, PREFERRED go on in plaintext.
    let url = database("tls", "CREATE TABLE t (x INT); INSERT INTO t VALUES (1);");
    let job = Job::new(
        "SELECT x FROM t",
        &[("m", &format!("{url}?ssl-mode=PREFERRED"))],
    );
    assert_eq!(concat(&job.run_ok().await).num_rows(), 1);
    let job = Job::new(
        "SELECT x FROM t",
        &[("m", &format!("{url}?ssl-mode=REQUIRED"))],
    );
    let err = job.run_err().await;
    assert_eq!(err.exit_code(), exit::UNAVAILABLE, "{err}");
    assert!(matches!(err, Error::Task(_)), "{err}");
}

#[tokio::test]
async fn plan_and_check_describe_mysql_columns_without_reading_rows() {
    let url = database(
        "describe",
        "CREATE TABLE t (id BIGINT UNSIGNED, amount DECIMAL(9,2), at TIMESTAMP NULL);",
    );
    let dir = tempfile::tempdir().unwrap();
    harness::write_job(
        dir.path(),
        "SELECT id, amount, at FROM t WHERE id > :min",
        &url,
    );
    let out = harness::tributary_in(dir.path(), &job_args("check", &["--param", "min=3"]));
    let text = format!("{}{}", harness::stdout(&out), stderr(&out));
    assert!(out.status.success(), "{text}");
    assert!(text.contains("MariaDB"), "{text}");
    assert!(
        text.contains("BIGINT UNSIGNED") && text.contains("UInt64"),
        "{text}"
    );
    assert!(text.contains("Decimal128(9, 2)"), "{text}");
    let out = harness::tributary_in(dir.path(), &job_args("plan", &["--param", "min=3"]));
    let text = harness::stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(text.contains("WHERE id > ?"), "{text}");
    // MySQL shards give no row estimates, and the header does not claim any.
    assert!(
        text.starts_with("-- planned by running nothing but the query's description"),
        "{text}"
    );
}

#[tokio::test]
async fn a_stalled_stream_is_killed_and_retried() {
    let url = database("stall", ROWS_SETUP);
    let sql = "SELECT id, CAST(k AS SIGNED) AS k, label, pad FROM t";
    let clean = rows(&concat(&Job::new(sql, &[("m", &url)]).run_ok().await));
    let proxy = Proxy::start_to(3306, |n| {
        if n == 0 {
            Fault::StallAfter(600_000)
        } else {
            Fault::Pass
        }
    })
    .await;
    let through = format!(
        "mysql://root@127.0.0.1:{}/{}?ssl-mode=DISABLED",
        proxy.port,
        db("stall")
    );
    let mut job = Job::new(sql, &[("m", &through)]);
    job.args.stall_timeout = Some(Duration::from_secs(1));
    job.args.pool_size = Some(1);
    let started = Instant::now();
    let (report, result) = job.run().await;
    result.unwrap_or_else(|e| panic!("{e}\n{report}"));
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
    assert!(report.tasks[0].attempts >= 2, "{report}");
    assert!(rows(&concat(&harness::read_parquet(&job.output()))) == clean);
}

/// A MariaDB server of the test's own, with TLS: a certificate for `localhost` signed by
/// a test authority, on a free port; stopped when dropped.
struct TlsServer {
    dir: tempfile::TempDir,
    port: u16,
    server: std::process::Child,
}

impl TlsServer {
    fn start() -> TlsServer {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let run = |what: &str, cmd: &mut Command| {
            let out = cmd.output().unwrap_or_else(|e| {
                panic!("{what}: {e} (the TLS test needs mariadb-server and openssl)")
            });
            assert!(
                out.status.success(),
                "{what}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(
            "mariadb-install-db",
            Command::new("mariadb-install-db")
                .arg("--no-defaults")
                .arg(format!("--datadir={}", d.join("data").display()))
                .args([
                    "--user=root",
                    "--auth-root-authentication-method=normal",
                    "--skip-test-db",
                ]),
        );
        let openssl = |args: &[&str]| {
            run("openssl", Command::new("openssl").current_dir(d).args(args));
        };
        for (name, subject) in [
            ("ca", "/CN=tributary test authority"),
            ("other", "/CN=someone else"),
        ] {
            openssl(&[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                subject,
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.pem"),
            ]);
        }
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ]);
        std::fs::write(d.join("ext.cnf"), "subjectAltName=DNS:localhost\n").unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
            "-out",
            "server.pem",
        ]);
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let path = |f: &str| d.join(f).display().to_string();
        let server = Command::new("mariadbd")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", path("data")))
            .arg(format!("--port={port}"))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--socket={}", path("sock")))
            .arg(format!("--pid-file={}", path("pid")))
            .arg("--user=root")
            .arg(format!("--ssl-cert={}", path("server.pem")))
            .arg(format!("--ssl-key={}", path("server.key")))
            .arg(format!("--ssl-ca={}", path("ca.pem")))
            .arg(format!("--log-error={}", path("error.log")))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mariadbd starts (apt-get install mariadb-server)");
        let server = TlsServer { dir, port, server };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let up = Command::new("mariadb")
                .args(["-uroot", "-h127.0.0.1", "--protocol=TCP"])
                .arg(format!("-P{port}"))
                .args(["-e", "SELECT 1"])
                .output()
                .is_ok_and(|o| o.status.success());
            if up {
                return server;
            }
            assert!(
                Instant::now() < deadline,
                "the TLS MariaDB did not start: {}",
                std::fs::read_to_string(server.dir.path().join("error.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn url(&self, host: &str, options: &str) -> String {
        let options = options.replace("{dir}", &self.dir.path().display().to_string());
        format!("mysql://root@{host}:{}/mysql?{options}", self.port)
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

#[tokio::test]
async fn ssl_modes_check_what_they_promise_against_a_tls_server() {
    let server = TlsServer::start();
    let sql = "SELECT VARIABLE_VALUE AS tls FROM information_schema.SESSION_STATUS WHERE VARIABLE_NAME = 'Ssl_version'";
    let tls_version = |batch: &RecordBatch| str_column(batch, "tls")[0].clone().unwrap();
    // Encrypted whenever the server can, checked or not.
    for (host, options) in [
        ("127.0.0.1", ""),
        ("127.0.0.1", "ssl-mode=REQUIRED"),
        ("127.0.0.1", "ssl-mode=VERIFY_CA&ssl-ca={dir}/ca.pem"),
        ("localhost", "ssl-mode=VERIFY_IDENTITY&ssl-ca={dir}/ca.pem"),
    ] {
        let job = Job::new(sql, &[("m", &server.url(host, options))]);
        let batch = concat(&job.run_ok().await);
        assert!(tls_version(&batch).starts_with("TLS"), "{host} {options}");
    }
    // DISABLED talks plaintext.
    let job = Job::new(sql, &[("m", &server.url("127.0.0.1", "ssl-mode=DISABLED"))]);
    assert_eq!(tls_version(&concat(&job.run_ok().await)), "");
    // A certificate from another authority, or for another name, is refused, at once.
    for (host, options, why) in [
        (
            "127.0.0.1",
            "ssl-mode=VERIFY_CA&ssl-ca={dir}/other.pem",
            "UnknownIssuer",
        ),
        (
            "127.0.0.1",
            "ssl-mode=VERIFY_IDENTITY&ssl-ca={dir}/ca.pem",
            "not valid for name",
        ),
    ] {
        let job = Job::new(sql, &[("m", &server.url(host, options))]);
        let (report, result) = job.run().await;
        let err = result.expect_err(options);
        assert!(err.to_string().contains(why), "{options}: {err}");
        assert_eq!(err.exit_code(), exit::UNAVAILABLE);
        assert_eq!(report.tasks[0].attempts, 1, "not retried: {report}");
    }
}

#[tokio::test]
async fn an_incremental_job_reads_only_the_rows_past_its_mark() {
    let url = database(
        "incremental",
        "CREATE TABLE t (id BIGINT, at DATETIME(6));
         INSERT INTO t VALUES (1, '2024-01-01 00:00:00.5'), (2, '2024-01-02 00:00:00');",
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("q.sql"), "SELECT id, at FROM t").unwrap();
    std::fs::write(
        dir.path().join("job.toml"),
        format!(
            "name = \"my-changes\"\nquery = \"q.sql\"\nledger = \"ledger.db\"\n[incremental]\ncolumn = \"at\"\n[shards]\na = \"{url}\"\n"
        ),
    )
    .unwrap();
    let run = |n: &str| {
        let out = harness::tributary_in(
            dir.path(),
            &[
                "run",
                "--job",
                "job.toml",
                "-o",
                &format!("out-{n}.parquet"),
            ],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        let mut ids: Vec<i64> = harness::read_parquet(&dir.path().join(format!("out-{n}.parquet")))
            .iter()
            .flat_map(|b| i64_column(b, "id"))
            .flatten()
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(run("1"), [1, 2]);
    client(
        &db("incremental"),
        "INSERT INTO t VALUES (3, '2024-01-02 00:00:00.000001'), (4, '2023-12-31 00:00:00')",
    );
    // Only the row past the mark; the late one (4) is behind it.
    assert_eq!(run("2"), [3]);
}

/// Environment variables a run is given.
type Env = Vec<(&'static str, String)>;

#[tokio::test]
async fn a_password_given_any_way_reads_and_appears_in_no_output() {
    let url = database(
        "secrets",
        "CREATE TABLE t (x INT); INSERT INTO t VALUES (7);",
    );
    let name = db("secrets");
    let secret = "My-Pw-77ab-never-print-me";
    client(
        "mysql",
        &format!(
            "CREATE USER IF NOT EXISTS 'trib_reader'@'127.0.0.1' IDENTIFIED BY '{secret}';
             ALTER USER 'trib_reader'@'127.0.0.1' IDENTIFIED BY '{secret}';
             GRANT SELECT ON {name}.* TO 'trib_reader'@'127.0.0.1';"
        ),
    );
    let hostport = url
        .split_once('@')
        .and_then(|(_, rest)| rest.split_once('/'))
        .map(|(hp, _)| hp.to_string())
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".my.cnf"),
        format!("[client]\nuser = trib_reader\npassword = \"{secret}\"\n"),
    )
    .unwrap();
    let home = dir.path().display().to_string();
    // (how, the shard's entry, the environment it needs)
    let ways: Vec<(&str, String, Env)> = vec![
        (
            "url",
            format!("\"mysql://trib_reader:{secret}@{hostport}/{name}\""),
            vec![],
        ),
        (
            "password_env",
            format!(
                "{{ url = \"mysql://trib_reader@{hostport}/{name}\", password_env = \"TRIB_MY_SECRET\" }}"
            ),
            vec![("TRIB_MY_SECRET", secret.to_string())],
        ),
        (
            "MYSQL_PWD",
            format!("\"mariadb://trib_reader@{hostport}/{name}\""),
            vec![("MYSQL_PWD", secret.to_string())],
        ),
        (
            "my.cnf",
            format!("\"mysql://{hostport}/{name}\""),
            vec![("HOME", home.clone())],
        ),
    ];
    for (way, shard, env) in ways {
        for (sql, ok) in [("SELECT x FROM t", true), ("SELECT x FROM missing", false)] {
            harness::write_query_and_shards(dir.path(), sql, &format!("[shards]\na = {shard}\n"));
            let args = job_args(
                "run",
                &[
                    "-o",
                    "out.parquet",
                    "--report",
                    "report.json",
                    "--no-ledger",
                    "-vv",
                ],
            );
            let out = harness::tributary_with(dir.path(), &args, |cmd| {
                cmd.env("RUST_LOG", "trace").env_remove("MYSQL_PWD");
                for (k, v) in &env {
                    cmd.env(k, v);
                }
            });
            assert_eq!(out.status.success(), ok, "{way}: {}", stderr(&out));
            let mut outputs = vec![
                ("stdout", out.stdout),
                ("stderr", out.stderr),
                (
                    "report",
                    std::fs::read(dir.path().join("report.json")).unwrap(),
                ),
            ];
            if ok {
                let parquet = dir.path().join("out.parquet");
                let batch = concat(&harness::read_parquet(&parquet));
                assert_eq!(i64_column(&batch, "x"), [Some(7)], "{way}");
                outputs.push(("parquet", std::fs::read(&parquet).unwrap()));
                std::fs::remove_file(parquet).unwrap();
            }
            for (what, bytes) in outputs {
                let found = bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
                assert!(!found, "{way}: the password appears in {what}");
            }
        }
    }
}

// Two threads: the writer goes on while the test waits for the binary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_snapshot_lock_every_partition_reads_one_state_while_a_writer_churns() {
    use sqlx::{Connection, Executor};
    let url = database(
        "churn",
        "CREATE TABLE t (id INT PRIMARY KEY, v BIGINT NOT NULL) ENGINE = InnoDB;
         INSERT INTO t SELECT seq, 100 FROM seq_1_to_1000;",
    );
    // Transfers between rows of different partitions keep the total at 100,000 in every
    // committed state.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let moved = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let writer = {
        let (stop, moved, url) = (stop.clone(), moved.clone(), url.clone());
        tokio::spawn(async move {
            let mut conn = sqlx::MySqlConnection::connect(&url).await.unwrap();
            let mut k = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                k += 1;
                let (from, to) = (k * 7 % 1000 + 1, (k * 13 + 500) % 1000 + 1);
                conn.execute(sqlx::AssertSqlSafe(format!(
                    "START TRANSACTION; UPDATE t SET v = v - 1 WHERE id = {from}; UPDATE t SET v = v + 1 WHERE id = {to}; COMMIT"
                )))
                .await
                .unwrap();
                moved.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        })
    };
    let dir = tempfile::tempdir().unwrap();
    // Each partition waits a little (once: a derived table) before it reads, so that
    // they run at different moments of the churn.
    std::fs::write(
        dir.path().join("q.sql"),
        "SELECT id, v FROM t, (SELECT SLEEP(0.1) AS slept) AS pause",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("job.toml"),
        format!(
            "query = \"q.sql\"\noutput = \"out.parquet\"\npool_size = 1\nsnapshot = \"lock\"\n[partition]\nkind = \"range\"\ncolumn = \"id\"\npartitions = 4\n[shards]\nm = \"{url}\"\n"
        ),
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    for _ in 0..3 {
        let before = moved.load(std::sync::atomic::Ordering::Relaxed);
        let out = harness::tributary_in(dir.path(), &["run", "--job", "job.toml", "--no-ledger"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let said = format!("{}{}", harness::stdout(&out), stderr(&out));
        assert!(
            said.contains("FLUSH TABLES WITH READ LOCK"),
            "the summary says how the partitions read: {said}"
        );
        let batch = concat(&harness::read_parquet(&dir.path().join("out.parquet")));
        assert_eq!(batch.num_rows(), 1000);
        let total: i64 = i64_column(&batch, "v").into_iter().flatten().sum();
        assert_eq!(total, 100_000, "the partitions read different states");
        assert!(
            moved.load(std::sync::atomic::Ordering::Relaxed) > before,
            "the writer wrote during the run"
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.await.unwrap();
}

#[tokio::test]
async fn a_query_is_read_as_mysql_reads_it() {
    let url = database(
        "lexing",
        r"CREATE TABLE t (id INT, name VARCHAR(50));
          INSERT INTO t VALUES (1, 'it''s :not'), (2, 'x');",
    );
    // A backslash-escaped quote, a `:word` in a string, in a `#` comment and in a
    // backquoted alias: only `:id` is a parameter.
    let sql =
        "SELECT id AS `a:b`, name FROM t # rows of :nobody\nWHERE name = 'it\\'s :not' OR id = :id";
    let job = Job::new(sql, &[("m", &url)]).param("id", "2");
    let batch = concat(&job.run_ok().await);
    let mut ids: Vec<i64> = i64_column(&batch, "a:b").into_iter().flatten().collect();
    ids.sort();
    assert_eq!(ids, [1, 2]);
}
