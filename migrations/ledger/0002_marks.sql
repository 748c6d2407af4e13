-- An incremental job's mark on each shard: the largest value of its column that the
-- last successful run read there (JSON: {"type": "timestamptz", "value": ...}). Written
-- in the transaction that records the run's committed output, so a run that died reads
-- the same window again.
CREATE TABLE marks (
    job TEXT NOT NULL,
    column_name TEXT NOT NULL,
    shard TEXT NOT NULL,
    mark TEXT NOT NULL,
    run_id INTEGER NOT NULL REFERENCES runs (id),
    PRIMARY KEY (job, column_name, shard)
);
