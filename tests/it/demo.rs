//! `tributary demo`: the embedded default needs no server, its shards are split by
//! customer, and its Parquet holds the aggregate SQLite itself computes over all of their
//! rows in one database: one row per region and month.

use std::collections::BTreeSet;

use arrow::array::AsArray;
use arrow::datatypes::Float64Type;

use crate::harness::{concat, i64_column, read_parquet, str_column};

fn sqlite3(args: &[&str]) -> String {
    let out = std::process::Command::new("sqlite3")
        .args(args)
        .output()
        .expect("sqlite3 is needed (apt-get install sqlite3)");
    assert!(
        out.status.success(),
        "sqlite3 {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn demo_writes_one_row_per_region_and_month_over_all_shards() {
    let dir = tempfile::tempdir().unwrap();
    let status = crate::harness::bin()
        .args(["demo", "--orders", "5000", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.status.success(),
        "demo failed: {}\n{stdout}",
        String::from_utf8_lossy(&status.stderr)
    );
    let output = dir.path().join("monthly_revenue.parquet");
    assert!(stdout.contains(&output.display().to_string()), "{stdout}");

    let files: Vec<String> = (0..tributary::demo::SHARDS)
        .map(|i| {
            let name = tributary::demo::shard_name(i);
            dir.path().join(format!("{name}.db")).display().to_string()
        })
        .collect();
    // Split by customer: every region has orders on every shard.
    for file in &files {
        let regions = sqlite3(&[file, "SELECT count(DISTINCT region) FROM orders"]);
        assert_eq!(regions.trim(), "4", "{file} lacks regions");
    }

    let batch = concat(&read_parquet(&output));
    let regions = str_column(&batch, "region");
    let months = str_column(&batch, "month");
    let orders = i64_column(&batch, "orders");
    let units = i64_column(&batch, "units");
    let revenue = batch
        .column_by_name("revenue")
        .unwrap()
        .as_primitive::<Float64Type>();
    let got: Vec<String> = (0..batch.num_rows())
        .map(|i| {
            format!(
                "{}|{}|{}|{}|{:.2}",
                regions[i].as_deref().unwrap(),
                months[i].as_deref().unwrap(),
                orders[i].unwrap(),
                units[i].unwrap(),
                revenue.value(i)
            )
        })
        .collect();
    let keys: BTreeSet<(&str, &str)> = (0..batch.num_rows())
        .map(|i| {
            (
                regions[i].as_deref().unwrap(),
                months[i].as_deref().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        keys.len(),
        batch.num_rows(),
        "more than one row for a region and month:\n{}",
        got.join("\n")
    );

    // SQLite's own answer over every shard's rows in one database, in the query's order.
    let mut script = String::new();
    for (i, file) in files.iter().enumerate() {
        script.push_str(&format!("ATTACH '{file}' AS s{i};\n"));
    }
    let union: Vec<String> = (0..files.len())
        .map(|i| format!("SELECT * FROM s{i}.orders"))
        .collect();
    script.push_str(&format!(
        "SELECT region, strftime('%Y-%m', ordered_at) AS month, count(*), sum(quantity),
                printf('%.2f', round(sum(quantity * unit_price), 2))
         FROM ({}) AS orders
         WHERE ordered_at >= '{}' AND ordered_at < '{}'
         GROUP BY region, month ORDER BY region, month;",
        union.join(" UNION ALL "),
        tributary::demo::FROM,
        tributary::demo::TO
    ));
    let expected: Vec<String> = sqlite3(&[":memory:", &script])
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(expected.len(), 4 * 12, "four regions, twelve months");
    assert_eq!(got, expected);
    let total: i64 = orders.iter().map(|n| n.unwrap()).sum();
    assert_eq!(total, 4 * 5000);
}
