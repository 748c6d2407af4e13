//! The final step: the shards' partial results, spooled to disk as they arrive, read
//! back as the table `shards` of a DataFusion session that runs the final SQL under a
//! memory limit, spilling its sorts and aggregations to disk past it.
//!
//! Each task attempt spools to its own files: an attempt that fails is dropped with its
//! files, so a retried task's rows count once. Each finished task is one partition of
//! `shards`, read back lazily, so the spool's size does not bound the run's memory.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Schema, SchemaRef};
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::error::DataFusionError;
use datafusion::execution::TaskContext;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::logical_expr::{Expr, SortExpr};
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::prelude::{SessionConfig, SessionContext};
use futures_util::StreamExt;

use super::SortKey;
use crate::error::{Error, Result};

/// The default of `--memory-limit`: what the final step's sorts and aggregations may
/// hold before they spill.
pub const DEFAULT_MEMORY_LIMIT: u64 = 512 << 20;

/// What the merger needs to run the final step.
#[derive(Debug, Clone)]
pub struct FinalStep {
    pub sql: String,
    /// The output's column names, by position (the final SQL names them
    /// `tributary_o{i}`); `None`: the final step's own names.
    pub names: Option<Vec<String>>,
    /// Columns the final step returns only to sort by, left out of the output.
    pub hidden: Vec<String>,
    pub memory_limit: u64,
    /// The average scales the SQL calls (`udf`).
    pub avg_scales: Vec<i8>,
    /// The order of each task's rows, by columns of `shards` (names or 1-based
    /// positions): the final step merges the tasks' rows in that order instead of
    /// sorting them again, when it compares every key as the shards do.
    pub sorted: Vec<SortKey>,
    /// What the output's metadata records of the step.
    pub strategy: String,
}

/// One task attempt's spool files, each holding batches of one schema.
#[derive(Default)]
struct TaskSpool {
    files: Vec<PathBuf>,
    writer: Option<(SchemaRef, StreamWriter<BufWriter<File>>)>,
}

/// The partial results of every task, on disk.
pub struct Spool {
    dir: tempfile::TempDir,
    open: HashMap<usize, TaskSpool>,
    /// Finished tasks' files, by task.
    done: Vec<(usize, Vec<PathBuf>)>,
    next: usize,
}

impl Spool {
    /// A spool in the system's temporary directory (`TMPDIR`).
    pub fn new() -> Result<Spool> {
        let dir = tempfile::Builder::new()
            .prefix("tributary-spool-")
            .tempdir()
            .map_err(|e| {
                Error::output(
                    std::env::temp_dir(),
                    format!("cannot create the spool directory: {e}"),
                )
            })?;
        Ok(Spool {
            dir,
            open: HashMap::new(),
            done: Vec::new(),
            next: 0,
        })
    }

    fn io(&self, e: impl std::fmt::Display) -> Error {
        Error::output(self.dir.path(), format!("spooling partial results: {e}"))
    }

    /// Appends a batch of a task's current attempt.
    pub fn write(&mut self, task: usize, batch: &RecordBatch) -> Result<()> {
        let spool = self.open.entry(task).or_default();
        if spool
            .writer
            .as_ref()
            .is_some_and(|(schema, _)| schema.as_ref() != batch.schema().as_ref())
        {
            // A source typing by values may type a column only in a later batch.
            let (_, mut w) = spool.writer.take().expect("checked");
            w.finish().map_err(|e| Error::output("spool", e))?;
        }
        if spool.writer.is_none() {
            let path = self.dir.path().join(format!("{task}-{}.arrow", self.next));
            self.next += 1;
            let file = File::create(&path).map_err(|e| Error::output(&path, e))?;
            let writer = StreamWriter::try_new(BufWriter::new(file), &batch.schema())
                .map_err(|e| Error::output(&path, e))?;
            let spool = self.open.get_mut(&task).expect("inserted");
            spool.files.push(path);
            spool.writer = Some((batch.schema(), writer));
        }
        let spool = self.open.get_mut(&task).expect("inserted");
        let result = spool.writer.as_mut().expect("opened").1.write(batch);
        result.map_err(|e| self.io(e))
    }

    /// The task's attempt failed: its rows are dropped.
    pub fn discard(&mut self, task: usize) {
        if let Some(spool) = self.open.remove(&task) {
            drop(spool.writer);
            for f in spool.files {
                let _ = std::fs::remove_file(f);
            }
        }
    }

    /// The task finished: its rows count.
    pub fn finish(&mut self, task: usize) -> Result<()> {
        if let Some(mut spool) = self.open.remove(&task) {
            if let Some((_, mut w)) = spool.writer.take() {
                w.finish().map_err(|e| self.io(e))?;
            }
            self.done.push((task, spool.files));
        }
        Ok(())
    }

    /// Runs the final step over the finished tasks' rows, each conformed to `schema` by
    /// `conform` (given the task), handing every output batch to `each`, the first one
    /// empty (the output's columns). Returns what the step spilled to disk to stay within
    /// its memory limit.
    pub fn run(
        self,
        step: &FinalStep,
        schema: SchemaRef,
        conform: Arc<dyn Fn(usize, RecordBatch) -> Result<RecordBatch> + Send + Sync>,
        mut each: impl FnMut(RecordBatch) -> Result<()>,
    ) -> Result<Spilled> {
        let failed = |e: DataFusionError| Error::FinalStep {
            sql: step.sql.clone(),
            message: e.to_string(),
        };
        let handle = tokio::runtime::Handle::current();
        let mut partitions: Vec<Arc<dyn PartitionStream>> = self
            .done
            .iter()
            .map(|(task, files)| {
                Arc::new(SpoolPartition {
                    schema: schema.clone(),
                    task: *task,
                    files: files.clone(),
                    conform: conform.clone(),
                }) as Arc<dyn PartitionStream>
            })
            .collect();
        if partitions.is_empty() {
            partitions.push(Arc::new(SpoolPartition {
                schema: schema.clone(),
                task: 0,
                files: Vec::new(),
                conform: conform.clone(),
            }));
        }
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(FairSpillPool::new(step.memory_limit as usize)))
            .with_disk_manager_builder(DiskManagerBuilder::default().with_mode(
                DiskManagerMode::Directories(vec![self.dir.path().to_path_buf()]),
            ))
            .build_arc()
            .map_err(failed)?;
        // PostgreSQL's dialect: no backslash escapes in '…', as the query's own literals.
        // A sort that spills first reserves memory for merging its spill files back
        // (10 MiB by default): under a smaller limit it would fail instead of spilling.
        let merge_reserve = (step.memory_limit / 8).min(10 << 20) as usize;
        let config = SessionConfig::new()
            .with_information_schema(false)
            .with_sort_spill_reservation_bytes(merge_reserve)
            .set_str("datafusion.sql_parser.dialect", "PostgreSQL");
        let ctx = SessionContext::new_with_config_rt(config, runtime);
        for f in super::udf::functions(&step.avg_scales) {
            ctx.register_udf(f);
        }
        let table = StreamingTable::try_new(schema.clone(), partitions)
            .map_err(failed)?
            .with_sort_order(ordering(&step.sorted, &schema));
        ctx.register_table("shards", Arc::new(table))
            .map_err(failed)?;
        let (plan, mut stream) = handle
            .block_on(async {
                let frame = ctx.sql(&step.sql).await?;
                let task = Arc::new(frame.task_ctx());
                let plan = frame.create_physical_plan().await?;
                let stream = datafusion::physical_plan::execute_stream(plan.clone(), task)?;
                Ok::<_, DataFusionError>((plan, stream))
            })
            .map_err(failed)?;
        // The output's columns, even when no row comes.
        each(output(step, RecordBatch::new_empty(stream.schema()))?)?;
        while let Some(batch) = handle.block_on(stream.next()) {
            let batch = batch.map_err(failed)?;
            each(output(step, batch)?)?;
        }
        Ok(Spilled::of(plan.as_ref()))
    }
}

/// What a final step wrote to its spool directory because its sorts and aggregations
/// did not fit in `--memory-limit`, from DataFusion's own metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Spilled {
    pub files: usize,
    pub bytes: usize,
    pub rows: usize,
}

impl Spilled {
    /// The spills of every operator of `plan`.
    fn of(plan: &dyn datafusion::physical_plan::ExecutionPlan) -> Spilled {
        let mut total = Spilled::default();
        if let Some(metrics) = plan.metrics() {
            total.files += metrics.spill_count().unwrap_or(0);
            total.bytes += metrics.spilled_bytes().unwrap_or(0);
            total.rows += metrics.spilled_rows().unwrap_or(0);
        }
        for child in plan.children() {
            let spilled = Spilled::of(child.as_ref());
            total.files += spilled.files;
            total.bytes += spilled.bytes;
            total.rows += spilled.rows;
        }
        total
    }
}

/// The order every partition of `shards` holds, as DataFusion states it, when each key
/// is a column whose values DataFusion compares as the shards do: numbers, decimals,
/// dates, times, timestamps and booleans. Text is left out (a database's collation may
/// order it otherwise than by code point), and with it the keys after it; so is a key
/// that names no column. An empty order: the final step sorts.
fn ordering(keys: &[SortKey], schema: &Schema) -> Vec<SortExpr> {
    let mut order = Vec::new();
    for key in keys {
        let index = match key.expr.parse::<usize>() {
            Ok(position) => position.checked_sub(1),
            Err(_) => {
                let name = match key.expr.strip_prefix('"').and_then(|n| n.strip_suffix('"')) {
                    Some(quoted) => quoted.replace("\"\"", "\""),
                    None => key.expr.to_lowercase(),
                };
                schema.index_of(&name).ok()
            }
        };
        let Some(field) = index.and_then(|i| schema.fields().get(i)) else {
            break;
        };
        let comparable = field.data_type().is_numeric()
            || matches!(
                field.data_type(),
                DataType::Boolean
                    | DataType::Date32
                    | DataType::Date64
                    | DataType::Time32(_)
                    | DataType::Time64(_)
                    | DataType::Timestamp(_, _)
            );
        if !comparable {
            break;
        }
        let column = Expr::Column(datafusion::common::Column::new_unqualified(field.name()));
        order.push(column.sort(!key.desc, key.nulls_first));
    }
    order
}

/// A final batch in the output's columns: hidden sort keys dropped, columns renamed.
fn output(step: &FinalStep, batch: RecordBatch) -> Result<RecordBatch> {
    let schema = batch.schema();
    let keep: Vec<usize> = (0..schema.fields().len())
        .filter(|&i| !step.hidden.contains(schema.field(i).name()))
        .collect();
    let batch = batch.project(&keep).map_err(|e| Error::FinalStep {
        sql: step.sql.clone(),
        message: e.to_string(),
    })?;
    // DataFusion's view types, as the rest of tributary writes text and bytes.
    let mut fields = Vec::with_capacity(batch.num_columns());
    let mut columns = Vec::with_capacity(batch.num_columns());
    for (i, (field, column)) in batch
        .schema()
        .fields()
        .iter()
        .zip(batch.columns())
        .enumerate()
    {
        let want = match field.data_type() {
            DataType::Utf8View => Some(DataType::Utf8),
            DataType::BinaryView => Some(DataType::Binary),
            _ => None,
        };
        let name = step
            .names
            .as_ref()
            .and_then(|n| n.get(i))
            .unwrap_or(field.name());
        let mut field = field.as_ref().clone().with_name(name);
        let column = match want {
            Some(t) => {
                field = field.with_data_type(t.clone());
                arrow::compute::cast(column, &t).map_err(|e| Error::FinalStep {
                    sql: step.sql.clone(),
                    message: e.to_string(),
                })?
            }
            None => column.clone(),
        };
        fields.push(field);
        columns.push(column);
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(|e| Error::FinalStep {
        sql: step.sql.clone(),
        message: e.to_string(),
    })
}

/// One finished task's spooled rows: one partition of `shards`.
struct SpoolPartition {
    schema: SchemaRef,
    task: usize,
    files: Vec<PathBuf>,
    conform: Arc<dyn Fn(usize, RecordBatch) -> Result<RecordBatch> + Send + Sync>,
}

impl std::fmt::Debug for SpoolPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SpoolPartition(task {}, {} files)",
            self.task,
            self.files.len()
        )
    }
}

impl PartitionStream for SpoolPartition {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let task = self.task;
        let conform = self.conform.clone();
        let readers = self.files.clone().into_iter().map(move |path| {
            let file = File::open(&path).map_err(|e| DataFusionError::External(Box::new(e)))?;
            StreamReader::try_new(BufReader::new(file), None).map_err(DataFusionError::from)
        });
        let batches = readers.flat_map(move |reader| {
            let conform = conform.clone();
            let it: Box<dyn Iterator<Item = datafusion::error::Result<RecordBatch>> + Send> =
                match reader {
                    Ok(reader) => Box::new(reader.map(move |b| {
                        let b = b.map_err(DataFusionError::from)?;
                        conform(task, b).map_err(|e| DataFusionError::External(Box::new(e)))
                    })),
                    Err(e) => Box::new(std::iter::once(Err(e))),
                };
            it
        });
        Box::pin(RecordBatchStreamAdapter::new(
            self.schema.clone(),
            futures_util::stream::iter(batches),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, Int64Array, StringArray};
    use arrow::datatypes::Field;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
        ]))
    }

    /// Two tasks' rows, each sorted by `k` ascending, NULLs last.
    fn spool() -> Spool {
        let mut spool = Spool::new().unwrap();
        let rows: [&[Option<i64>]; 2] = [&[Some(1), Some(4), Some(9), None], &[Some(2), Some(3)]];
        for (task, keys) in rows.into_iter().enumerate() {
            let names: Vec<String> = keys.iter().map(|k| format!("{k:?}")).collect();
            let batch = RecordBatch::try_new(
                schema(),
                vec![
                    Arc::new(Int64Array::from(keys.to_vec())),
                    Arc::new(StringArray::from(names)),
                ],
            )
            .unwrap();
            spool.write(task, &batch).unwrap();
            spool.finish(task).unwrap();
        }
        spool
    }

    fn step(sql: &str, key: &str) -> FinalStep {
        FinalStep {
            sql: sql.into(),
            names: None,
            hidden: Vec::new(),
            memory_limit: DEFAULT_MEMORY_LIMIT,
            avg_scales: Vec::new(),
            sorted: vec![SortKey {
                expr: key.into(),
                desc: false,
                nulls_first: false,
            }],
            strategy: String::new(),
        }
    }

    /// Runs `step` over [`spool`]'s rows; the output's batches.
    fn run(step: &FinalStep) -> Vec<RecordBatch> {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let _entered = runtime.enter();
        let mut out = Vec::new();
        spool()
            .run(step, schema(), Arc::new(|_, b| Ok(b)), |b| {
                out.push(b);
                Ok(())
            })
            .unwrap();
        out
    }

    fn physical_plan(step: &FinalStep) -> String {
        let batches = run(step);
        let plans = arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
        let text = plans
            .column(1)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        (0..plans.num_rows())
            .map(|i| text.value(i))
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn sorted_tasks_are_merged_not_sorted_again() {
        let plan = physical_plan(&step(
            "EXPLAIN SELECT * FROM shards ORDER BY k ASC NULLS LAST",
            "k",
        ));
        assert!(plan.contains("SortPreservingMergeExec"), "{plan}");
        assert!(!plan.contains("SortExec"), "{plan}");

        // By position, as a set operation's ORDER BY names its columns.
        let plan = physical_plan(&step(
            "EXPLAIN SELECT * FROM shards ORDER BY k ASC NULLS LAST LIMIT 2",
            "1",
        ));
        assert!(
            plan.contains("SortPreservingMergeExec: [k@0 ASC NULLS LAST], fetch=2"),
            "{plan}"
        );
        assert!(!plan.contains("SortExec"), "{plan}");

        let batches = run(&step("SELECT * FROM shards ORDER BY k ASC NULLS LAST", "k"));
        let keys: Vec<Option<i64>> = batches
            .iter()
            .flat_map(|b| {
                let k = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
                (0..k.len())
                    .map(|i| k.is_valid(i).then(|| k.value(i)))
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(keys, [Some(1), Some(2), Some(3), Some(4), Some(9), None]);
    }

    #[test]
    fn text_keys_are_sorted_again() {
        // The shards may have ordered text by a collation, not by code point.
        let plan = physical_plan(&step("EXPLAIN SELECT * FROM shards ORDER BY name", "name"));
        assert!(plan.contains("SortExec"), "{plan}");
    }
}
