//! A Delta Lake table (`--table-format delta`): the run's files added to the table in
//! one commit, which readers see whole or not at all.
//!
//! The files are written as a dataset's are (`dataset`, staged beside a local table, or
//! under the staging directory of a remote one), with the table's partition columns as
//! its directories and left out of the files. The commit then:
//! 1. loads the table's latest version (or makes the table, when there is none, with
//!    the run's schema and partition columns);
//! 2. checks the run's schema against the table's: a column the table lacks is added
//!    (nullable, its older rows NULL); a column of another type is refused, naming it;
//! 3. moves (locally) or uploads (remotely) each file to its place in the table, under a
//!    name of its own (`region=eu/part-00000-RUN.parquet`);
//! 4. commits one transaction: an `add` for each file, with its partition values and
//!    row count; for `overwrite` a `remove` of every file the table held, for `replace`
//!    of those in the partitions the run wrote; a `txn` action naming the run (its
//!    application id, from the job's identity, and version), and the job in the commit's
//!    `commitInfo`. Concurrent writers are resolved by Delta's optimistic concurrency:
//!    appends from other writers are merged, conflicts retried.
//!
//! The `txn` action makes reruns idempotent across machines: a run whose application id
//! the table already holds is not run again (unless forced, or the job is incremental,
//! whose every run reads new rows); see [`check`]. A failure before the commit removes
//! the files the run placed: the table is as it was.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::datatypes::{DataType, SchemaRef};
use deltalake_core::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake_core::kernel::transaction::{CommitBuilder, CommitProperties, TransactionError};
use deltalake_core::kernel::{Action, Add, MetadataExt, StructField, StructType, Transaction};
use deltalake_core::logstore::{
    LogStore, LogStoreFactory, ObjectStoreRef, StorageConfig, default_logstore, logstore_factories,
};
use deltalake_core::operations::create::CreateBuilder;
use deltalake_core::protocol::{DeltaOperation, SaveMode};
use deltalake_core::{DeltaTable, DeltaTableBuilder, DeltaTableError};
use futures_util::StreamExt;
use object_store::ObjectStoreExt;
use object_store::path::Path as ObjectPath;
use url::Url;

use super::dataset::{DatasetSink, StagedFiles};
use super::object::{block_on, store, upload_file};
use super::{EncodedRowGroup, OutputSummary, RemoteObject, RowGroupId, RowGroupWriters, Sink};
use crate::config::{JobConfig, ObjectOutput, Slicing, Table, TableMode};
use crate::error::{Error, Result};

/// Where the table lies.
#[derive(Debug, Clone)]
enum Location {
    /// A directory (absolute).
    Local(PathBuf),
    Remote(Box<ObjectOutput>),
}

impl Location {
    fn of(config: &JobConfig) -> Location {
        match &config.remote {
            Some(remote) => Location::Remote(Box::new(remote.clone())),
            None => Location::Local(
                std::path::absolute(&config.output).unwrap_or_else(|_| config.output.clone()),
            ),
        }
    }

    /// The table as messages name it (a remote one's URL without secrets).
    fn display(&self) -> String {
        match self {
            Location::Local(path) => path.display().to_string(),
            Location::Remote(remote) => remote.display(),
        }
    }

    fn error(&self, message: impl std::fmt::Display) -> Error {
        match self {
            Location::Local(path) => Error::output(path, message),
            Location::Remote(remote) => Error::output(remote.display(), remote.scrub(&message)),
        }
    }

    /// A failure to reach the table: a remote one's names its bucket.
    fn unreachable(&self, e: impl std::fmt::Display) -> Error {
        match self {
            Location::Local(_) => self.error(e),
            Location::Remote(remote) => {
                self.error(format!("cannot reach bucket `{}`: {e}", remote.bucket))
            }
        }
    }

    /// The table's URL and the store holding it (rooted at the bucket, or `/`).
    fn store(&self) -> Result<(Url, ObjectStoreRef)> {
        match self {
            Location::Local(path) => {
                let url = Url::from_directory_path(path)
                    .map_err(|()| self.error("not an absolute path"))?;
                Ok((
                    url,
                    Arc::new(object_store::local::LocalFileSystem::new()) as ObjectStoreRef,
                ))
            }
            Location::Remote(remote) => {
                let store = store(remote).map_err(|e| self.error(e))?;
                let mut url = remote.url.clone();
                // The table's root: its key, as a directory.
                if let Ok(mut segments) = url.path_segments_mut() {
                    segments.pop_if_empty();
                }
                register_scheme(&url);
                Ok((url, store))
            }
        }
    }

    /// The table at its latest version; `None` when there is none yet. A location
    /// holding anything but a Delta table is refused: a run adds to tables only.
    async fn load(&self) -> Result<Option<DeltaTable>> {
        let (url, store) = self.store()?;
        let mut table = DeltaTableBuilder::from_url(url.clone())
            .map_err(|e| self.error(e))?
            .with_storage_backend(store.clone(), url)
            .build()
            .map_err(|e| self.error(e))?;
        let exists = table
            .verify_deltatable_existence()
            .await
            .map_err(|e| self.unreachable(e))?;
        if !exists {
            if self.holds_anything().await? {
                return Err(self.error(
                    "this location holds files but no Delta table (no _delta_log): a run \
                     writes only to a table or to an empty place; remove them or choose \
                     another output",
                ));
            }
            return Ok(None);
        }
        table
            .load()
            .await
            .map_err(|e| self.unreachable(format!("cannot read the table's log: {e}")))?;
        Ok(Some(table))
    }

    /// Whether anything lies at the location besides a `_delta_log` directory, which a
    /// concurrent run making the table may have begun.
    async fn holds_anything(&self) -> Result<bool> {
        match self {
            Location::Local(path) => match std::fs::read_dir(path) {
                Ok(entries) => Ok(entries
                    .filter_map(|e| e.ok())
                    .any(|e| e.file_name() != LOG_DIR)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
                Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {
                    Err(self.error("a table's output must be a directory, and this is a file"))
                }
                Err(e) => Err(self.error(e)),
            },
            Location::Remote(remote) => {
                let store = store(remote).map_err(|e| self.error(e))?;
                let listed = store
                    .list_with_delimiter(Some(&remote.key))
                    .await
                    .map_err(|e| self.unreachable(e))?;
                let log = remote.key.clone().join(LOG_DIR);
                Ok(!listed.objects.is_empty() || listed.common_prefixes.iter().any(|p| *p != log))
            }
        }
    }
}

/// How many times a commit is built, on the newest table each time, when other
/// writers' commits conflict with it.
const COMMIT_ATTEMPTS: u32 = 10;

/// Why a commit did not land: a conflict with another writer's commit, which building it
/// again on the newer table may resolve, or anything else.
enum CommitError {
    Conflict(String),
    Other(Error),
}

/// The directory of a Delta table's log.
const LOG_DIR: &str = "_delta_log";

/// Lets Delta's log store open tables of `url`'s scheme with the store tributary makes
/// (Delta's own factories cover only local files): its default log store, which commits
/// with the store's put-if-absent.
fn register_scheme(url: &Url) {
    #[derive(Debug)]
    struct Default;
    impl LogStoreFactory for Default {
        fn with_options(
            &self,
            prefixed: ObjectStoreRef,
            root: ObjectStoreRef,
            location: &Url,
            options: &StorageConfig,
        ) -> deltalake_core::DeltaResult<Arc<dyn LogStore>> {
            Ok(default_logstore(prefixed, root, location, options))
        }
    }
    let Ok(scheme) = Url::parse(&format!("{}://", url.scheme())) else {
        return;
    };
    let factories = logstore_factories();
    if !factories.contains_key(&scheme) {
        factories.insert(scheme, Arc::new(Default));
    }
}

/// The application transaction naming a run in the table's log.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RunTxn {
    /// `tributary:JOB:IDENTITY` (the job's identity, see `ledger::identity`, shortened),
    /// with `:slice-I-of-N` for a slice of a run split across machines.
    app_id: String,
    /// The whole run's, which `finish` commits once every slice has.
    run_id: String,
    /// Whether a run the table already holds is run again (forced, or incremental).
    again: bool,
}

impl RunTxn {
    fn of(config: &JobConfig) -> RunTxn {
        let identity = crate::ledger::run_identity(config);
        let run_id = format!("tributary:{}:{}", config.name, &identity[..32]);
        let app_id = match config.options.slicing {
            Some(Slicing {
                count,
                index: Some(index),
            }) => slice_id(&run_id, index, count),
            _ => run_id.clone(),
        };
        RunTxn {
            app_id,
            run_id,
            again: config.ledger.force || config.incremental.is_some(),
        }
    }
}

/// The application id of slice `index` of `count` of the run `run_id`.
fn slice_id(run_id: &str, index: usize, count: usize) -> String {
    format!("{run_id}:slice-{index}-of-{count}")
}

/// A run the table already holds.
#[derive(Debug, Clone)]
pub struct InTable {
    /// The table, as messages name it.
    pub table: String,
    /// The run's application id in the table's log, and the version it committed.
    pub app_id: String,
    pub version: i64,
}

/// Reaches the table before any query runs: it must be a Delta table or an empty place,
/// partitioned by the job's columns. Returns the run when the table already holds it
/// and it is not to run again.
pub async fn check(config: &JobConfig, table: &Table) -> Result<Option<InTable>> {
    let location = Location::of(config);
    let Some(delta) = location.load().await? else {
        return Ok(None);
    };
    let snapshot = delta.snapshot().map_err(|e| location.error(e))?;
    let columns = snapshot.metadata().partition_columns().to_vec();
    if columns != table.layout.columns {
        return Err(Error::config(
            None,
            format!(
                "{}: the table is partitioned by ({}), the run by ({}): give --partition-by {}",
                location.display(),
                columns.join(", "),
                table.layout.columns.join(", "),
                if columns.is_empty() {
                    "nothing (leave it out)".to_string()
                } else {
                    columns.join(",")
                }
            ),
        ));
    }
    let txn = RunTxn::of(config);
    if txn.again {
        return Ok(None);
    }
    // A slice's own commit, or the whole run's (once `finish` saw every slice).
    for app_id in [&txn.app_id, &txn.run_id] {
        let version = snapshot
            .transaction_version(delta.log_store().as_ref(), app_id)
            .await
            .map_err(|e| location.error(e))?;
        if let Some(version) = version {
            return Ok(Some(InTable {
                table: location.display(),
                app_id: app_id.clone(),
                version,
            }));
        }
    }
    Ok(None)
}

/// What `tributary finish` found.
#[derive(Debug, Clone)]
pub struct Finished {
    /// The table, as messages name it.
    pub table: String,
    /// The slices the table holds no commit of.
    pub missing: Vec<usize>,
    /// The run's application id, and the table version that recorded it complete (this
    /// finish's commit, or an earlier one's).
    pub app_id: String,
    pub version: Option<i64>,
    /// Whether an earlier finish had recorded it.
    pub already: bool,
}

/// `tributary finish --slices N`: checks that the table holds the commit of every slice
/// of the run, and if so records the run complete, with a commit of the whole run's
/// application transaction (no files): from then on the run, sliced or not, is one the
/// table holds.
pub async fn finish(config: &JobConfig, count: usize) -> Result<Finished> {
    let location = Location::of(config);
    let txn = RunTxn::of(config);
    record_complete(&location, &txn.run_id, &config.name, count).await
}

/// Records the run `run_id` of `count` slices complete in the table at `location` when
/// every slice has committed (see [`finish`]).
async fn record_complete(
    location: &Location,
    run_id: &str,
    job: &str,
    count: usize,
) -> Result<Finished> {
    let Some(table) = location.load().await? else {
        return Err(location.error("there is no table here yet: no slice of the run has committed"));
    };
    let snapshot = table.snapshot().map_err(|e| location.error(e))?.clone();
    let log_store = table.log_store();
    let version_of = |app_id: String| {
        let (snapshot, log_store) = (&snapshot, &log_store);
        async move {
            snapshot
                .transaction_version(log_store.as_ref(), &app_id)
                .await
                .map_err(|e| location.error(e))
        }
    };
    let mut missing = Vec::new();
    for index in 0..count {
        if version_of(slice_id(run_id, index, count)).await?.is_none() {
            missing.push(index);
        }
    }
    let mut finished = Finished {
        table: location.display(),
        missing,
        app_id: run_id.to_string(),
        version: None,
        already: false,
    };
    if !finished.missing.is_empty() {
        return Ok(finished);
    }
    if let Some(version) = version_of(run_id.to_string()).await? {
        finished.already = true;
        finished.version = Some(version);
        return Ok(finished);
    }
    let properties = CommitProperties::default()
        .with_application_transaction(Transaction::new(run_id, 1))
        .with_metadata([(
            "tributary".to_string(),
            serde_json::json!({
                "job": job,
                "finished": { "slices": count },
                "version": env!("CARGO_PKG_VERSION"),
            }),
        )]);
    let done = CommitBuilder::from(properties)
        .with_actions(Vec::new())
        .build(
            Some(&snapshot),
            log_store.clone(),
            DeltaOperation::Write {
                mode: SaveMode::Append,
                partition_by: None,
                predicate: None,
            },
        )
        .await;
    match done {
        Ok(done) => finished.version = Some(done.version() as i64),
        // Another slice (or finish) recorded the run at the same moment.
        Err(DeltaTableError::Transaction {
            source: TransactionError::CommitConflict(e),
        }) => match recorded(location, run_id).await? {
            Some(version) => {
                finished.already = true;
                finished.version = Some(version);
            }
            None => return Err(location.error(format!("the commit failed: {e}"))),
        },
        Err(e) => return Err(location.error(format!("the commit failed: {e}"))),
    }
    Ok(finished)
}

/// The version of the table at `location` that recorded the run `run_id`, if any.
async fn recorded(location: &Location, run_id: &str) -> Result<Option<i64>> {
    let Some(table) = location.load().await? else {
        return Ok(None);
    };
    let snapshot = table.snapshot().map_err(|e| location.error(e))?;
    snapshot
        .transaction_version(table.log_store().as_ref(), run_id)
        .await
        .map_err(|e| location.error(e))
}

/// A [`Sink`] committing to a Delta table (see the module doc).
#[must_use = "dropping a sink removes its staged files"]
pub struct DeltaSink {
    files: DatasetSink,
    commit: Committer,
    runtime: tokio::runtime::Handle,
}

/// What the commit needs besides the files.
struct Committer {
    location: Location,
    mode: TableMode,
    txn: RunTxn,
    job: String,
    /// The run's slice count, when this run is one of its slices.
    slices: Option<usize>,
    /// The run's schema in Delta's terms, fixed by [`Sink::start`].
    schema: Option<StructType>,
}

impl DeltaSink {
    /// Prepares the staged files; [`check`] reached the table before.
    pub fn create(config: &JobConfig, table: &Table) -> Result<DeltaSink> {
        let location = Location::of(config);
        let runtime = tokio::runtime::Handle::try_current().map_err(|e| location.error(e))?;
        Ok(DeltaSink {
            files: DatasetSink::staged(config, &table.layout)?,
            commit: Committer {
                location,
                mode: table.mode,
                txn: RunTxn::of(config),
                job: config.name.clone(),
                slices: config
                    .options
                    .slicing
                    .filter(|s| s.index.is_some())
                    .map(|s| s.count),
                schema: None,
            },
            runtime,
        })
    }
}

impl Committer {
    /// Commits the staged files (see the module doc).
    async fn commit(&self, staged: &StagedFiles) -> Result<OutputSummary> {
        let location = &self.location;
        let schema = self.schema.as_ref().expect("started before the commit");
        let mut table = match location.load().await? {
            Some(table) => table,
            None => self.create_table(schema, &staged.partition_columns).await?,
        };
        let nothing = || OutputSummary {
            path: PathBuf::from(location.display()),
            files: Vec::new(),
            manifest: None,
            rows: 0,
            row_groups: 0,
            bytes: 0,
            unreferenced_bytes: 0,
            table_version: None,
            run_recorded: None,
            remote: Vec::new(),
        };
        let mut committed = self.committed(&table).await?;
        if self.holds_this_run(committed) {
            return Ok(nothing());
        }

        let run = uuid::Uuid::new_v4();
        let mut placed = Placed::new(location);
        let mut adds = Vec::new();
        let mut summary = OutputSummary {
            path: PathBuf::from(location.display()),
            files: Vec::new(),
            manifest: None,
            ..staged.summary.clone()
        };
        summary.bytes = 0;
        let now = chrono::Utc::now().timestamp_millis();
        for file in &staged.files {
            let name = table_file_name(&file.name, run);
            let place = placed.put(file.path.as_path(), &name).await?;
            summary.bytes += file.bytes;
            summary.files.push(PathBuf::from(&place.shown));
            if let Some(remote) = place.remote {
                summary.remote.push(remote);
            }
            adds.push(Action::Add(Add {
                path: name.clone(),
                partition_values: staged
                    .partition_columns
                    .iter()
                    .cloned()
                    .zip(file.values.iter().cloned())
                    .collect(),
                size: file.bytes as i64,
                modification_time: now,
                data_change: true,
                stats: Some(serde_json::json!({ "numRecords": file.rows }).to_string()),
                tags: None,
                deletion_vector: None,
                base_row_id: None,
                default_row_commit_version: None,
                clustering_provider: None,
            }));
        }

        // Delta retries a commit that lost the race for its version over appends; a
        // winner that changed what this commit was built on (another run making the
        // table, or adding a column) makes it build the commit again on the newer table.
        let mut attempt = 1;
        let done = loop {
            match self
                .commit_once(&table, committed, staged, schema, &adds)
                .await
            {
                Ok(version) => break version,
                Err(CommitError::Conflict(e)) if attempt < COMMIT_ATTEMPTS => {
                    tracing::debug!(
                        "{}: the commit conflicted with another writer's ({e}); again on the newer table",
                        location.display()
                    );
                    attempt += 1;
                    let pause =
                        50 * u64::from(attempt) + (uuid::Uuid::new_v4().as_u128() % 100) as u64;
                    tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
                    table = location
                        .load()
                        .await?
                        .ok_or_else(|| location.error("the table disappeared during the commit"))?;
                    committed = self.committed(&table).await?;
                    if self.holds_this_run(committed) {
                        return Ok(nothing());
                    }
                }
                Err(CommitError::Conflict(e)) => {
                    return Err(location.error(format!(
                        "the commit failed: it conflicted with other writers' {COMMIT_ATTEMPTS} times; last: {e}"
                    )));
                }
                Err(CommitError::Other(e)) => return Err(e),
            }
        };
        placed.keep();
        summary.table_version = Some(done);
        if let Some(count) = self.slices {
            // The last slice to commit records the run complete, as `finish` would.
            match record_complete(location, &self.txn.run_id, &self.job, count).await {
                Ok(finished) if finished.missing.is_empty() && !finished.already => {
                    summary.run_recorded = finished.version;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(
                    "{}: the slice committed; recording the run complete failed ({e}): \
                     `tributary finish` records it",
                    location.display()
                ),
            }
        }
        Ok(summary)
    }

    /// The version of this run's application transaction `table` holds, if any.
    async fn committed(&self, table: &DeltaTable) -> Result<Option<i64>> {
        let location = &self.location;
        let snapshot = table.snapshot().map_err(|e| location.error(e))?;
        snapshot
            .transaction_version(table.log_store().as_ref(), &self.txn.app_id)
            .await
            .map_err(|e| location.error(e))
    }

    /// Whether the table holds this run's commit (`committed`) and the run is not to run
    /// again: another process committed it meanwhile, and nothing is to be added.
    fn holds_this_run(&self, committed: Option<i64>) -> bool {
        let holds = committed.is_some() && !self.txn.again;
        if holds {
            tracing::warn!(
                "{}: the table got this run's commit from another process meanwhile \
                 (application id {}); nothing added",
                self.location.display(),
                self.txn.app_id
            );
        }
        holds
    }

    /// Builds the commit of `adds` on `table`'s version, which holds this run's
    /// application transaction at version `committed`, and commits it; returns the
    /// version made.
    async fn commit_once(
        &self,
        table: &DeltaTable,
        committed: Option<i64>,
        staged: &StagedFiles,
        schema: &StructType,
        adds: &[Action],
    ) -> std::result::Result<i64, CommitError> {
        let location = &self.location;
        let other = |e: Error| CommitError::Other(e);
        let snapshot = table
            .snapshot()
            .map_err(|e| other(location.error(e)))?
            .clone();
        let log_store = table.log_store();
        let evolved = evolve(&snapshot.schema(), schema).map_err(|e| other(location.error(e)))?;
        let mut actions = adds.to_vec();
        let written: BTreeSet<Vec<Option<String>>> =
            staged.files.iter().map(|f| f.values.clone()).collect();
        let mut predicate = None;
        if self.mode != TableMode::Append {
            let mut views = snapshot.snapshot().file_views(log_store.as_ref(), None);
            while let Some(view) = views.next().await {
                let view = view.map_err(|e| other(location.error(e)))?;
                let values = view.partition_values_map();
                let values: Vec<Option<String>> = staged
                    .partition_columns
                    .iter()
                    .map(|c| values.get(c).cloned().flatten())
                    .collect();
                if self.mode == TableMode::Overwrite || written.contains(&values) {
                    actions.push(Action::Remove(view.remove_action(true)));
                }
            }
            if self.mode == TableMode::Replace {
                predicate = Some(replace_predicate(&staged.partition_columns, &written));
            }
        }
        if let Some(evolved) = &evolved {
            let metadata = snapshot
                .metadata()
                .clone()
                .with_schema(evolved)
                .map_err(|e| other(location.error(e)))?;
            actions.push(Action::Metadata(metadata));
        }
        let version = committed.map_or(1, |v| v + 1);
        let properties = CommitProperties::default()
            .with_application_transaction(Transaction::new(&self.txn.app_id, version))
            .with_metadata([(
                "tributary".to_string(),
                serde_json::json!({
                    "job": self.job,
                    "mode": self.mode,
                    "rows": staged.summary.rows,
                    "version": env!("CARGO_PKG_VERSION"),
                }),
            )]);
        let operation = DeltaOperation::Write {
            mode: match self.mode {
                TableMode::Append => SaveMode::Append,
                TableMode::Overwrite | TableMode::Replace => SaveMode::Overwrite,
            },
            partition_by: (!staged.partition_columns.is_empty())
                .then(|| staged.partition_columns.clone()),
            predicate,
        };
        match CommitBuilder::from(properties)
            .with_actions(actions)
            .build(Some(&snapshot), log_store.clone(), operation)
            .await
        {
            Ok(done) => Ok(done.version() as i64),
            Err(DeltaTableError::Transaction {
                source: TransactionError::CommitConflict(e),
            }) => Err(CommitError::Conflict(e.to_string())),
            Err(e) => Err(other(location.error(format!("the commit failed: {e}")))),
        }
    }

    /// Makes the table with the run's schema and partition columns. When another
    /// writer made it meanwhile, that table is used.
    async fn create_table(&self, schema: &StructType, partitions: &[String]) -> Result<DeltaTable> {
        let location = &self.location;
        if let Location::Local(path) = location {
            std::fs::create_dir_all(path).map_err(|e| location.error(e))?;
        }
        let (url, store) = location.store()?;
        let log_store = DeltaTableBuilder::from_url(url.clone())
            .map_err(|e| location.error(e))?
            .with_storage_backend(store, url)
            .build_storage()
            .map_err(|e| location.error(e))?;
        let created = CreateBuilder::new()
            .with_log_store(log_store)
            .with_columns(schema.fields().cloned())
            .with_partition_columns(partitions.to_vec())
            .with_save_mode(SaveMode::Ignore)
            .await;
        match created {
            Ok(table) => Ok(table),
            Err(e) => match location.load().await? {
                Some(table) => Ok(table),
                None => Err(location.error(format!("cannot make the table: {e}"))),
            },
        }
    }
}

impl Sink for DeltaSink {
    fn path(&self) -> PathBuf {
        PathBuf::from(self.commit.location.display())
    }

    fn schema(&self) -> Option<&SchemaRef> {
        self.files.schema()
    }

    fn start(&mut self, schema: SchemaRef) -> Result<()> {
        let mut fields = Vec::with_capacity(schema.fields().len());
        for field in schema.fields() {
            // Delta has no extension types: a `uuid` column is binary in the table, a
            // `json` one text; Arrow's extension names would make readers rebuild types
            // the table does not hold.
            let plain = field.as_ref().clone().with_metadata(HashMap::new());
            let kernel: StructField = (&plain).try_into_kernel().map_err(|e| {
                Error::output(
                    self.path(),
                    format!(
                        "column `{}` is {}, which a Delta table cannot hold ({e}); cast it in \
                         the query (to text, say)",
                        field.name(),
                        field.data_type()
                    ),
                )
            })?;
            fields.push(kernel);
        }
        for name in &self.files.spec().columns {
            if let Some(field) = schema.field_with_name(name).ok()
                && !delta_partition_type(field.data_type())
            {
                return Err(Error::config(
                    None,
                    format!(
                        "--partition-by: column `{name}` is {}; a Delta table is partitioned \
                         by text, integers, booleans, dates or decimals",
                        field.data_type()
                    ),
                ));
            }
        }
        self.commit.schema =
            Some(StructType::try_new(fields).map_err(|e| Error::output(self.path(), e))?);
        self.files.start(schema)
    }

    fn routes(&self) -> bool {
        self.files.routes()
    }

    fn route(
        &mut self,
        task: usize,
        batch: arrow::array::RecordBatch,
    ) -> Result<Vec<(usize, arrow::array::RecordBatch)>> {
        self.files.route(task, batch)
    }

    fn row_group_writers(&mut self, dir: usize) -> Result<RowGroupWriters> {
        self.files.row_group_writers(dir)
    }

    fn append(&mut self, dir: usize, group: EncodedRowGroup) -> Result<RowGroupId> {
        self.files.append(dir, group)
    }

    fn exclude(&mut self, group: RowGroupId) {
        self.files.exclude(group);
    }

    fn file_rows(&self, dir: usize) -> u64 {
        self.files.file_rows(dir)
    }

    fn file_row_limit(&self) -> Option<u64> {
        self.files.file_row_limit()
    }

    fn end_file(&mut self, dir: usize) {
        self.files.end_file(dir);
    }

    fn commit(self: Box<Self>, metadata: Vec<(String, String)>) -> Result<OutputSummary> {
        let DeltaSink {
            files,
            commit,
            runtime,
        } = *self;
        let staged = files.finish_staged(&metadata)?;
        block_on(&runtime, commit.commit(&staged))
    }
}

/// The files a commit placed in the table, removed again unless kept.
struct Placed<'a> {
    location: &'a Location,
    local: Vec<PathBuf>,
    remote: Vec<ObjectPath>,
    kept: bool,
}

/// Where a file was placed: as messages name it, and a remote object's record.
struct Place {
    shown: String,
    remote: Option<RemoteObject>,
}

impl<'a> Placed<'a> {
    fn new(location: &'a Location) -> Placed<'a> {
        Placed {
            location,
            local: Vec::new(),
            remote: Vec::new(),
            kept: false,
        }
    }

    /// Moves (locally) or uploads the staged file `from` to `name` in the table.
    async fn put(&mut self, from: &Path, name: &str) -> Result<Place> {
        match self.location {
            Location::Local(root) => {
                let to = root.join(name);
                if let Some(dir) = to.parent() {
                    std::fs::create_dir_all(dir).map_err(|e| self.location.error(e))?;
                }
                std::fs::rename(from, &to).map_err(|e| Error::output(&to, e))?;
                // The data reaches the disk before the log names it.
                super::temp::sync_dir(&to).map_err(|e| Error::output(&to, e))?;
                self.local.push(to.clone());
                Ok(Place {
                    shown: to.display().to_string(),
                    remote: None,
                })
            }
            Location::Remote(remote) => {
                let (key, url) = remote.under(name).map_err(|e| self.location.error(e))?;
                let store = store(remote).map_err(|e| self.location.error(e))?;
                let done = upload_file(&store, &key, from, remote)
                    .await
                    .map_err(|e| self.location.error(e))?;
                self.remote.push(key);
                Ok(Place {
                    shown: url.clone(),
                    remote: Some(RemoteObject {
                        url,
                        bytes: done.bytes,
                        sha256: done.sha256,
                        e_tag: done.e_tag,
                    }),
                })
            }
        }
    }

    fn keep(&mut self) {
        self.kept = true;
    }
}

impl Drop for Placed<'_> {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        for path in &self.local {
            let _ = std::fs::remove_file(path);
        }
        if let Location::Remote(remote) = self.location
            && !self.remote.is_empty()
            && let Ok(store) = store(remote)
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let keys = std::mem::take(&mut self.remote);
            block_on(&runtime, async move {
                for key in keys {
                    let _ = store.delete(&key).await;
                }
            });
        }
    }
}

/// The name of a staged file in the table: `region=eu/part-00000.parquet` ->
/// `region=eu/part-00000-RUN.parquet`, unique to the run (a table keeps the files of
/// earlier versions).
fn table_file_name(name: &str, run: uuid::Uuid) -> String {
    let stem = name.strip_suffix(".parquet").unwrap_or(name);
    format!("{stem}-{run}.parquet")
}

/// The schema the table takes from a run of `run`'s: `None` when it already holds
/// `run`'s columns; with the columns it lacks added (nullable). A column of another
/// type is an error naming it.
fn evolve(table: &StructType, run: &StructType) -> std::result::Result<Option<StructType>, String> {
    let mut added = Vec::new();
    for field in run.fields() {
        match table.field(field.name()) {
            Some(existing) if existing.data_type() == field.data_type() => {}
            Some(existing) => {
                return Err(format!(
                    "column `{}` is {} in the table and {} in this run: a Delta table's \
                     column keeps its type (cast it in the query, or write another table)",
                    field.name(),
                    existing.data_type(),
                    field.data_type()
                ));
            }
            None => added.push(StructField::nullable(
                field.name().clone(),
                field.data_type().clone(),
            )),
        }
    }
    for field in table.fields() {
        if !field.is_nullable() && run.field(field.name()).is_none() {
            return Err(format!(
                "column `{}` of the table is NOT NULL and this run has no such column",
                field.name()
            ));
        }
    }
    if added.is_empty() {
        return Ok(None);
    }
    let fields = table.fields().cloned().chain(added);
    StructType::try_new(fields)
        .map(Some)
        .map_err(|e| e.to_string())
}

/// The `replaceWhere` predicate a `replace` commit records: the partitions it wrote.
fn replace_predicate(columns: &[String], written: &BTreeSet<Vec<Option<String>>>) -> String {
    let quote = |v: &str| format!("'{}'", v.replace('\'', "''"));
    written
        .iter()
        .map(|values| {
            let terms: Vec<String> = columns
                .iter()
                .zip(values)
                .map(|(c, v)| match v {
                    Some(v) => format!("{c} = {}", quote(v)),
                    None => format!("{c} IS NULL"),
                })
                .collect();
            format!("({})", terms.join(" AND "))
        })
        .collect::<Vec<_>>()
        .join(" OR ")
}

/// Whether a column of this type can partition a Delta table: its values as text are
/// what Delta's partition values hold.
fn delta_partition_type(data_type: &DataType) -> bool {
    use DataType::*;
    match data_type {
        Boolean | Int8 | Int16 | Int32 | Int64 | Utf8 | LargeUtf8 | Utf8View | Date32
        | Decimal128(..) => true,
        Dictionary(_, value) => delta_partition_type(value),
        _ => false,
    }
}
