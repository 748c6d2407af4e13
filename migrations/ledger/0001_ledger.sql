-- The run ledger: every run of a job, what it read and what it wrote, and the locks that
-- keep two runs of one job from overlapping. Applied by `tributary` when it opens the
-- ledger (src/ledger/mod.rs); never edited once released: changes are new files.

-- One row per run. `status`: running, succeeded, failed, skipped (an identical run had
-- already succeeded and its outputs were intact) or abandoned (its process died; found
-- when the next run of the job took its lock over).
CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    job TEXT NOT NULL,
    -- SHA-256 (hex) of the resolved query, shards (names and URLs without secrets),
    -- output, result-shaping options and parameter values.
    identity TEXT NOT NULL,
    -- The parameters as resolved (JSON object) and the instant relative dates were
    -- resolved against.
    params TEXT NOT NULL,
    as_of TEXT,
    started_at TEXT NOT NULL,
    ended_at TEXT,
    status TEXT NOT NULL,
    exit_code INTEGER,
    error TEXT,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    version TEXT NOT NULL,
    -- Output rows and bytes, and the snapshot each partitioned shard read (JSON object).
    rows INTEGER,
    bytes INTEGER,
    snapshots TEXT,
    -- What the run was given: the query file, the shards (JSON, without secrets).
    query_path TEXT NOT NULL,
    shards TEXT NOT NULL,
    -- When it took over a dead run's lock: that run's id.
    took_over INTEGER REFERENCES runs (id)
);
CREATE INDEX runs_by_identity ON runs (identity, id);
CREATE INDEX runs_by_job ON runs (job, id);

-- Each task of a finished run.
CREATE TABLE tasks (
    run_id INTEGER NOT NULL REFERENCES runs (id),
    task INTEGER NOT NULL,
    shard TEXT NOT NULL,
    partition TEXT,
    rows INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    seconds REAL NOT NULL,
    outcome TEXT NOT NULL,
    error TEXT,
    PRIMARY KEY (run_id, task)
);

-- Each file a successful run wrote, with what it held when it was committed.
CREATE TABLE outputs (
    run_id INTEGER NOT NULL REFERENCES runs (id),
    path TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    PRIMARY KEY (run_id, path)
);

-- The run holding each identity's lock. A row whose holder died stays until the next
-- run of the identity takes it over.
CREATE TABLE locks (
    identity TEXT PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES runs (id),
    pid INTEGER NOT NULL,
    -- The holder's start time as the kernel counts it (`/proc/PID/stat`), so that a
    -- reused pid is not taken for the holder.
    pid_start TEXT,
    host TEXT NOT NULL,
    started_at TEXT NOT NULL
);
