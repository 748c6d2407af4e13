//! `tributary demo`: the embedded default needs no server and its Parquet holds the
//! aggregate SQLite itself computes.

use std::collections::BTreeMap;

use arrow::array::AsArray;
use arrow::datatypes::Float64Type;

use crate::harness::{i64_column, read_batch, sqlite_query, str_column, succeeded, tributary};

#[tokio::test]
async fn demo_writes_the_monthly_revenue_of_every_region() {
    let dir = tempfile::tempdir().unwrap();
    let dir_arg = dir.path().display().to_string();
    let stdout = succeeded(&tributary(&["demo", "--orders", "5000", "--dir", &dir_arg]));
    let output = dir.path().join("monthly_revenue.parquet");
    assert!(stdout.contains(&output.display().to_string()), "{stdout}");

    let batch = read_batch(&output);
    let shards = str_column(&batch, "shard");
    let months = str_column(&batch, "month");
    let orders = i64_column(&batch, "orders");
    let revenue = batch
        .column_by_name("revenue")
        .unwrap()
        .as_primitive::<Float64Type>();
    let mut got = BTreeMap::new();
    for i in 0..batch.num_rows() {
        got.insert(
            (shards[i].clone().unwrap(), months[i].clone().unwrap()),
            (orders[i].unwrap(), format!("{:.2}", revenue.value(i))),
        );
    }
    // SQLite's own answer, shard by shard.
    let mut expected = BTreeMap::new();
    for region in tributary::demo::REGIONS {
        let out = sqlite_query(
            &dir.path().join(format!("{region}.db")),
            "SELECT strftime('%Y-%m', ordered_at), count(*), printf('%.2f', round(sum(quantity * unit_price), 2)) FROM orders GROUP BY 1",
        );
        for line in out.lines() {
            let f: Vec<&str> = line.split('|').collect();
            expected.insert(
                (region.to_string(), f[0].to_string()),
                (f[1].parse().unwrap(), f[2].to_string()),
            );
        }
    }
    assert_eq!(got.len(), 4 * 12, "four regions, twelve months");
    assert_eq!(got, expected);
    let total: i64 = got.values().map(|(n, _)| n).sum();
    assert_eq!(total, 4 * 5000);
}
