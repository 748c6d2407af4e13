//! The live progress as a user sees it, and what it is made of: the row estimates that
//! come with each shard's describe.

use crate::harness;

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
