//! Reader profiles (`--for spark,trino,...`): which readers must open the output, and,
//! per column, the exact representation each of them opens and computes with.
//!
//! The table ([`TABLE`]) is data: for each shape of Arrow value the readers disagree on,
//! what every reader makes of it ([`Verdict`]) and the exact rendering that the ones who
//! cannot read it as is do read ([`Rendering`]). A profile applies a row's rendering when
//! any named reader needs it, and refuses the run before any row is written when a named
//! reader cannot read the shape in any exact form ([`NoExactForm`]). The rules work on
//! the merged Arrow schema, so they hold for every source (PostgreSQL, SQLite, ...) and
//! for a final step's output alike.
//!
//! The Spark column is what PySpark 4 does with the files (tests/it/readers.rs checks
//! it on every test run); the BigQuery column comes from its documentation and the Trino
//! column from its Parquet reader's source, neither tested here. DuckDB and pandas (pyarrow underneath) read every shape.
//!
//! Without a profile nothing changes: [`Profile::plan`] only names, per reader, the
//! columns that reader cannot open as written, for a warning.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, ListArray, StringBuilder, StructArray};
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use arrow::error::ArrowError;

use super::{InvalidValue, TypeRules};

/// A reader a profile can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Reader {
    Spark,
    Trino,
    BigQuery,
    DuckDb,
    Pandas,
}

impl Reader {
    /// Every reader, in the table's column order.
    pub const ALL: [Reader; 5] = [
        Reader::Spark,
        Reader::Trino,
        Reader::BigQuery,
        Reader::DuckDb,
        Reader::Pandas,
    ];

    /// The accepted spellings of `--for`, for messages and docs.
    pub const NAMES: &'static [&'static str] =
        &["spark", "trino", "bigquery", "duckdb", "pandas", "any"];

    fn index(self) -> usize {
        Reader::ALL.iter().position(|r| *r == self).expect("listed")
    }

    /// The name `--for` takes.
    pub fn name(self) -> &'static str {
        match self {
            Reader::Spark => "spark",
            Reader::Trino => "trino",
            Reader::BigQuery => "bigquery",
            Reader::DuckDb => "duckdb",
            Reader::Pandas => "pandas",
        }
    }

    /// Whether the table's column for this reader was checked by reading files, rather
    /// than taken from the reader's documentation.
    pub fn tested(self) -> bool {
        !matches!(self, Reader::Trino | Reader::BigQuery)
    }
}

impl fmt::Display for Reader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Reader::Spark => "Spark",
            Reader::Trino => "Trino",
            Reader::BigQuery => "BigQuery",
            Reader::DuckDb => "DuckDB",
            Reader::Pandas => "pandas",
        })
    }
}

/// The readers a run's output is for: `--for spark,trino` (or repeated flags), `any` for
/// all. Empty: no profile.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Readers(u8);

impl Readers {
    pub fn all() -> Readers {
        Readers::ALL_BITS
    }

    const ALL_BITS: Readers = Readers((1 << Reader::ALL.len()) - 1);

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn contains(self, reader: Reader) -> bool {
        self.0 & (1 << reader.index()) != 0
    }

    pub fn insert(&mut self, reader: Reader) {
        self.0 |= 1 << reader.index();
    }

    pub fn iter(self) -> impl Iterator<Item = Reader> {
        Reader::ALL.into_iter().filter(move |r| self.contains(*r))
    }

    /// Adds the readers of one `--for` value: a name, `any`, or a comma list of them.
    pub fn add(&mut self, text: &str) -> Result<(), InvalidValue> {
        for name in text.split(',') {
            match name.trim().to_ascii_lowercase().as_str() {
                "any" | "all" => *self = Readers::all(),
                "spark" | "pyspark" | "databricks" => self.insert(Reader::Spark),
                "trino" | "presto" | "athena" => self.insert(Reader::Trino),
                "bigquery" => self.insert(Reader::BigQuery),
                "duckdb" => self.insert(Reader::DuckDb),
                "pandas" | "pyarrow" => self.insert(Reader::Pandas),
                _ => {
                    return Err(InvalidValue::NotOneOf {
                        value: name.trim().to_string(),
                        expected: Reader::NAMES,
                    });
                }
            }
        }
        Ok(())
    }
}

impl FromStr for Readers {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Readers, InvalidValue> {
        let mut readers = Readers::default();
        readers.add(s)?;
        Ok(readers)
    }
}

impl fmt::Display for Readers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.iter().map(Reader::name).collect();
        f.write_str(&names.join(","))
    }
}

/// A shape of Arrow value that some reader does not read as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Shape {
    /// FixedSizeBinary(16) tagged `arrow.uuid`: Parquet's UUID logical type.
    Uuid,
    /// Time32 or Time64: Parquet's TIME.
    Time,
    /// Utf8 tagged `arrow.json`: Parquet's JSON logical type.
    Json,
    /// UInt32: Parquet INT32 annotated unsigned.
    UInt32,
    /// UInt64: Parquet INT64 annotated unsigned.
    UInt64,
    /// Timestamp(ns): Parquet TIMESTAMP(NANOS).
    TimestampNanos,
    /// A list whose elements are lists (multidimensional arrays).
    NestedList,
}

impl Shape {
    /// What the shape is, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            Shape::Uuid => "uuid (Parquet UUID)",
            Shape::Time => "time (Parquet TIME)",
            Shape::Json => "json (Parquet JSON)",
            Shape::UInt32 => "unsigned 32-bit integer",
            Shape::UInt64 => "unsigned 64-bit integer",
            Shape::TimestampNanos => "timestamp in nanoseconds",
            Shape::NestedList => "list of lists (multidimensional array)",
        }
    }

    /// The type option that, set by the user for a column, keeps the profile's hands
    /// off the shape there.
    fn option_key(self) -> Option<&'static str> {
        match self {
            Shape::Uuid => Some("uuid"),
            Shape::NestedList => Some("array_dims"),
            _ => None,
        }
    }

    /// The shape of a field's own type (not of its children), if the table has a row
    /// for it.
    fn of(field: &Field) -> Option<Shape> {
        Some(match field.data_type() {
            DataType::FixedSizeBinary(16) if field.extension_type_name() == Some(UUID) => {
                Shape::Uuid
            }
            DataType::Time32(_) | DataType::Time64(_) => Shape::Time,
            DataType::Utf8 | DataType::LargeUtf8 if field.extension_type_name() == Some(JSON) => {
                Shape::Json
            }
            DataType::UInt32 => Shape::UInt32,
            DataType::UInt64 => Shape::UInt64,
            DataType::Timestamp(TimeUnit::Nanosecond, _) => Shape::TimestampNanos,
            DataType::List(inner) | DataType::LargeList(inner)
                if matches!(
                    inner.data_type(),
                    DataType::List(_) | DataType::LargeList(_)
                ) =>
            {
                Shape::NestedList
            }
            _ => return None,
        })
    }
}

const UUID: &str = "arrow.uuid";
const JSON: &str = "arrow.json";

/// An exact representation a profile writes instead of a shape some named reader does
/// not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rendering {
    /// The canonical 36-character text, lowercase with hyphens (Utf8).
    UuidText,
    /// Int64 microseconds since midnight (24:00:00 is 86,400,000,000); nanosecond times
    /// are exact only in whole microseconds, else the run fails naming the column.
    TimeMicros,
    /// The JSON text as plain Utf8, without the JSON logical type.
    PlainText,
    /// Int64.
    Int64,
    /// Decimal128(20, 0): every unsigned 64-bit value.
    Decimal20,
    /// Timestamp(µs), same zone; a value not in whole microseconds fails the run naming
    /// the column.
    Micros,
}

impl Rendering {
    /// What the rendering writes, for the plan, the report and the file's metadata.
    pub fn describe(self) -> &'static str {
        match self {
            Rendering::UuidText => "36-character text",
            Rendering::TimeMicros => "int64 microseconds since midnight",
            Rendering::PlainText => "plain text (no JSON logical type)",
            Rendering::Int64 => "int64",
            Rendering::Decimal20 => "decimal(20,0)",
            Rendering::Micros => "timestamp in microseconds (exact values only)",
        }
    }

    /// The type written for a field of `from`.
    fn data_type(self, from: &DataType) -> DataType {
        match self {
            Rendering::UuidText | Rendering::PlainText => DataType::Utf8,
            Rendering::TimeMicros | Rendering::Int64 => DataType::Int64,
            Rendering::Decimal20 => DataType::Decimal128(20, 0),
            Rendering::Micros => match from {
                DataType::Timestamp(_, tz) => {
                    DataType::Timestamp(TimeUnit::Microsecond, tz.clone())
                }
                other => other.clone(),
            },
        }
    }
}

/// What one reader makes of a shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Opens it and computes with it as written.
    Reads,
    /// Refuses it (or reads it as something else): the row's rendering is needed.
    Needs,
    /// No exact form of it opens in this reader.
    Cannot,
}

/// One row of the table.
#[derive(Debug, Clone, Copy)]
pub struct Row {
    pub shape: Shape,
    /// What a profile writes when a named reader `Needs` it.
    pub rendering: Option<Rendering>,
    /// Spark, Trino, BigQuery, DuckDB, pandas (the order of [`Reader::ALL`]).
    pub verdicts: [Verdict; 5],
    /// Why, for docs/types.md and messages.
    pub why: &'static str,
}

use Verdict::{Cannot, Needs, Reads};

/// The readers' table. Spark: PySpark 4 on Java 17, checked by the tests. BigQuery: its
/// documentation's Parquet conversions (loads and external tables). Trino: its Parquet
/// reader's source (`ColumnReaderFactory`, `ParquetTypeUtils`), its documentation having
/// no Parquet type mapping. Neither is run here.
pub const TABLE: &[Row] = &[
    Row {
        shape: Shape::Uuid,
        rendering: Some(Rendering::UuidText),
        verdicts: [Needs, Needs, Needs, Reads, Reads],
        why: "Spark refuses the whole file ([PARQUET_TYPE_ILLEGAL] FIXED_LEN_BYTE_ARRAY (UUID)); Trino and BigQuery have no UUID type for it",
    },
    Row {
        shape: Shape::Time,
        rendering: Some(Rendering::TimeMicros),
        verdicts: [Needs, Needs, Needs, Reads, Reads],
        why: "Spark refuses the whole file ([UNSUPPORTED_TIME_TYPE]); Trino and BigQuery do not map Parquet TIME",
    },
    Row {
        shape: Shape::Json,
        rendering: Some(Rendering::PlainText),
        verdicts: [Reads, Reads, Needs, Reads, Reads],
        why: "Spark and Trino read it as a string (Trino ignores the JSON annotation); BigQuery's Parquet conversions have no JSON logical type",
    },
    Row {
        shape: Shape::UInt32,
        rendering: Some(Rendering::Int64),
        verdicts: [Reads, Needs, Reads, Reads, Reads],
        why: "Spark reads it as a long and BigQuery as INT64; Trino's Parquet reader reads signed integers only",
    },
    Row {
        shape: Shape::UInt64,
        rendering: Some(Rendering::Decimal20),
        verdicts: [Reads, Needs, Needs, Reads, Reads],
        why: "Spark reads it as decimal(20,0) itself; values past 2^63 do not fit Trino's signed bigint, and fail BigQuery's load",
    },
    Row {
        shape: Shape::TimestampNanos,
        rendering: Some(Rendering::Micros),
        verdicts: [Needs, Reads, Needs, Reads, Reads],
        why: "Spark refuses TIMESTAMP(NANOS); BigQuery's timestamps hold microseconds",
    },
    Row {
        shape: Shape::NestedList,
        rendering: None,
        verdicts: [Reads, Reads, Cannot, Reads, Reads],
        why: "GoogleSQL has no array of arrays: BigQuery loads one as an array of structs each holding an array, another shape; read the column as text (`text = true`) or one dimension (`array_dims`)",
    },
];

/// The table's row for a shape.
pub fn row(shape: Shape) -> &'static Row {
    TABLE
        .iter()
        .find(|r| r.shape == shape)
        .expect("every shape has a row")
}

/// Why a run cannot be written for a named reader; the run fails before any row is
/// written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NoExactForm {
    #[error(
        "--for {reader_name}: column `{column}` holds a {shape} ({why}), which has no exact form {reader} reads; choose a lossy rendering for the column (e.g. --column-type {column}:text=true) or leave {reader_name} out"
    )]
    Shape {
        column: String,
        reader: Reader,
        reader_name: &'static str,
        shape: &'static str,
        why: &'static str,
    },
    #[error(
        "--for {reader_name}: columns `{first}` and `{second}` differ only in case, and {reader} resolves column names ignoring case ({consequence}); rename one in the query (`AS ...`)"
    )]
    NamesDifferInCase {
        first: String,
        second: String,
        reader: Reader,
        reader_name: &'static str,
        /// What the reader does with such a file.
        consequence: &'static str,
    },
}

/// A rendering the profile applies to a column (or a field inside it).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Conversion {
    /// The column, and the path inside it (`col.field`, `col[]`) for nested values.
    pub column: String,
    /// What the value was (`uuid (Parquet UUID)`).
    pub from: &'static str,
    /// What is written (`36-character text`).
    pub to: &'static str,
}

/// Columns one reader cannot open as written (no profile names it).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReaderWarning {
    pub reader: &'static str,
    /// `column (shape)`, in column order.
    pub columns: Vec<String>,
}

impl fmt::Display for ReaderWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let reader = Reader::ALL
            .into_iter()
            .find(|r| r.name() == self.reader)
            .expect("a reader's name");
        write!(
            f,
            "{reader}{} cannot open {}: write with --for {} (or --for any) to get forms it reads exactly",
            if reader.tested() {
                ""
            } else {
                " (per its docs)"
            },
            self.columns.join(", "),
            self.reader
        )
    }
}

/// What a profile does to one output schema.
#[derive(Debug, Clone)]
pub struct ProfilePlan {
    /// The schema written: the merged schema with the profile's renderings.
    pub schema: SchemaRef,
    pub conversions: Vec<Conversion>,
    /// Without a profile (or for columns the user's own options keep): per reader, the
    /// columns it cannot open as written.
    pub warnings: Vec<ReaderWarning>,
}

/// A run's reader profile: the readers named, and the user's type options, which win
/// over the profile.
#[derive(Debug, Clone, Default)]
pub struct Profile {
    pub readers: Readers,
    pub rules: Arc<TypeRules>,
}

impl Profile {
    /// The renderings a profile applies, in table order, for `tributary plan`.
    pub fn describe(&self) -> Vec<String> {
        let mut out = Vec::new();
        for row in TABLE {
            let verdict = |v: Verdict| -> Vec<String> {
                self.readers
                    .iter()
                    .filter(|r| row.verdicts[r.index()] == v)
                    .map(|r| r.to_string())
                    .collect()
            };
            let (cannot, needs) = (verdict(Cannot), verdict(Needs));
            if !cannot.is_empty() {
                out.push(format!(
                    "{}: refused, no exact form for {}",
                    row.shape.describe(),
                    cannot.join(", ")
                ));
            } else if let (false, Some(rendering)) = (needs.is_empty(), row.rendering) {
                out.push(format!(
                    "{} as {} (for {})",
                    row.shape.describe(),
                    rendering.describe(),
                    needs.join(", ")
                ));
            }
        }
        out
    }

    /// The schema to write for `schema` (the merged one), the renderings applied and the
    /// warnings, or why the output cannot be written for a named reader.
    pub fn plan(&self, schema: &Schema) -> Result<ProfilePlan, NoExactForm> {
        self.check_names(schema)?;
        let mut conversions = Vec::new();
        let mut unread: BTreeMap<Reader, Vec<String>> = BTreeMap::new();
        let mut fields = Vec::with_capacity(schema.fields().len());
        for field in schema.fields() {
            let mut walk = Walk {
                profile: self,
                column: field.name(),
                conversions: &mut conversions,
                unread: &mut unread,
            };
            fields.push(walk.field(field, field.name().to_string())?);
        }
        let warnings = unread
            .into_iter()
            .map(|(reader, columns)| ReaderWarning {
                reader: reader.name(),
                columns,
            })
            .collect();
        Ok(ProfilePlan {
            schema: Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone())),
            conversions,
            warnings,
        })
    }

    /// Spark, Trino and BigQuery resolve column names ignoring case.
    fn check_names(&self, schema: &Schema) -> Result<(), NoExactForm> {
        for reader in self.readers.iter() {
            if matches!(reader, Reader::DuckDb | Reader::Pandas) {
                continue;
            }
            let names = schema.fields().iter().map(|f| f.name());
            let mut seen: BTreeMap<String, &String> = BTreeMap::new();
            for name in names {
                if let Some(first) = seen.insert(name.to_lowercase(), name) {
                    return Err(NoExactForm::NamesDifferInCase {
                        first: first.clone(),
                        second: name.clone(),
                        reader,
                        reader_name: reader.name(),
                        consequence: match reader {
                            Reader::Spark => "it refuses the file",
                            Reader::BigQuery => "it refuses the load",
                            _ => "it reads only one of the two, matching the exact name first",
                        },
                    });
                }
            }
        }
        Ok(())
    }
}

/// One column's walk through its type.
struct Walk<'a> {
    profile: &'a Profile,
    column: &'a str,
    conversions: &'a mut Vec<Conversion>,
    unread: &'a mut BTreeMap<Reader, Vec<String>>,
}

impl Walk<'_> {
    /// The field as written, its children first.
    fn field(&mut self, field: &Field, path: String) -> Result<Field, NoExactForm> {
        let data_type = match field.data_type() {
            DataType::List(inner) => {
                DataType::List(Arc::new(self.field(inner, format!("{path}[]"))?))
            }
            DataType::LargeList(inner) => {
                DataType::LargeList(Arc::new(self.field(inner, format!("{path}[]"))?))
            }
            DataType::Struct(children) => {
                let mut out = Vec::with_capacity(children.len());
                for child in children {
                    out.push(self.field(child, format!("{path}.{}", child.name()))?);
                }
                DataType::Struct(Fields::from(out))
            }
            DataType::Map(entries, sorted) => {
                DataType::Map(Arc::new(self.field(entries, path.clone())?), *sorted)
            }
            other => other.clone(),
        };
        let field = field.clone().with_data_type(data_type);
        let Some(shape) = Shape::of(&field) else {
            return Ok(field);
        };
        let row = row(shape);
        let kept = shape
            .option_key()
            .is_some_and(|key| self.profile.rules.is_set(self.column, key));
        let mut needed = false;
        for reader in Reader::ALL {
            let verdict = row.verdicts[reader.index()];
            if verdict == Reads {
                continue;
            }
            let named = self.profile.readers.contains(reader);
            if !named || kept {
                // Unnamed readers are warned about only where tested: the Trino and
                // BigQuery columns are from their docs.
                if kept && named || !named && reader.tested() {
                    self.unread
                        .entry(reader)
                        .or_default()
                        .push(format!("`{path}` ({})", shape.describe()));
                }
                continue;
            }
            match (verdict, row.rendering) {
                (Needs, Some(_)) => needed = true,
                _ => {
                    return Err(NoExactForm::Shape {
                        column: self.column.to_string(),
                        reader,
                        reader_name: reader.name(),
                        shape: shape.describe(),
                        why: row.why,
                    });
                }
            }
        }
        let Some(rendering) = row.rendering.filter(|_| needed) else {
            return Ok(field);
        };
        self.conversions.push(Conversion {
            column: path,
            from: shape.describe(),
            to: rendering.describe(),
        });
        let mut metadata = field.metadata().clone();
        metadata.remove("ARROW:extension:name");
        metadata.remove("ARROW:extension:metadata");
        Ok(Field::new(
            field.name(),
            rendering.data_type(field.data_type()),
            field.is_nullable(),
        )
        .with_metadata(metadata))
    }
}

/// `array` in the type `to` a profile planned for it: the renderings above where the
/// types say so (inside lists and structs too), else Arrow's cast (which also widens a
/// narrower shard's type). Values a rendering cannot hold exactly are an error.
pub fn convert(array: &ArrayRef, to: &DataType) -> Result<ArrayRef, ArrowError> {
    let from = array.data_type();
    if from == to {
        return Ok(array.clone());
    }
    match (from, to) {
        (DataType::FixedSizeBinary(16), DataType::Utf8) => Ok(uuid_text(array)),
        (
            DataType::Timestamp(TimeUnit::Nanosecond, _),
            DataType::Timestamp(TimeUnit::Microsecond, _),
        ) => {
            whole_micros(array)?;
            arrow::compute::cast(array, to)
        }
        (DataType::Time64(TimeUnit::Nanosecond), DataType::Int64) => {
            whole_micros(array)?;
            let micros = arrow::compute::cast(array, &DataType::Time64(TimeUnit::Microsecond))?;
            arrow::compute::cast(&micros, to)
        }
        (DataType::Time32(_), DataType::Int64) => {
            let micros = arrow::compute::cast(array, &DataType::Time64(TimeUnit::Microsecond))?;
            arrow::compute::cast(&micros, to)
        }
        (DataType::List(_), DataType::List(item)) => {
            let list = array.as_list::<i32>();
            let values = convert(list.values(), item.data_type())?;
            Ok(Arc::new(ListArray::try_new(
                item.clone(),
                list.offsets().clone(),
                values,
                list.nulls().cloned(),
            )?))
        }
        (DataType::Struct(_), DataType::Struct(fields)) => {
            let s = array.as_struct();
            let columns = s
                .columns()
                .iter()
                .zip(fields.iter())
                .map(|(c, f)| convert(c, f.data_type()))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Arc::new(StructArray::try_new(
                fields.clone(),
                columns,
                s.nulls().cloned(),
            )?))
        }
        _ => arrow::compute::cast(array, to),
    }
}

/// 16-byte uuids as their canonical text.
fn uuid_text(array: &ArrayRef) -> ArrayRef {
    let bytes = array.as_fixed_size_binary();
    let mut out = StringBuilder::with_capacity(bytes.len(), bytes.len() * 36);
    for value in bytes.iter() {
        match value {
            Some(b) => out.append_value(
                uuid::Uuid::from_slice(b)
                    .expect("16 bytes")
                    .hyphenated()
                    .to_string(),
            ),
            None => out.append_null(),
        }
    }
    Arc::new(out.finish())
}

/// Fails unless every nanosecond value is a whole number of microseconds.
fn whole_micros(array: &ArrayRef) -> Result<(), ArrowError> {
    let values = arrow::compute::cast(array, &DataType::Int64)?;
    let values = values.as_primitive::<arrow::datatypes::Int64Type>();
    match values.iter().flatten().find(|v| v % 1000 != 0) {
        None => Ok(()),
        Some(v) => Err(ArrowError::CastError(format!(
            "the value {v} ns is not a whole number of microseconds, which the reader profile writes; cast the column to microseconds in the query"
        ))),
    }
}

/// What a profile did to a run's output, for the summary, the JSON report and the
/// file's metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReaderNotes {
    /// The readers named with `--for`; empty without a profile.
    #[serde(rename = "for")]
    pub readers: Vec<&'static str>,
    /// The renderings applied.
    pub conversions: Vec<Conversion>,
    /// Readers (not named, or kept off a column by the user's own options) that cannot
    /// open some columns as written.
    pub warnings: Vec<ReaderWarningNote>,
}

/// A [`ReaderWarning`] with its message, as the JSON report holds it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReaderWarningNote {
    #[serde(flatten)]
    pub warning: ReaderWarning,
    pub message: String,
}

impl ReaderNotes {
    pub fn new(readers: Readers, plan: &ProfilePlan) -> ReaderNotes {
        ReaderNotes {
            readers: readers.iter().map(Reader::name).collect(),
            conversions: plan.conversions.clone(),
            warnings: plan
                .warnings
                .iter()
                .map(|w| ReaderWarningNote {
                    message: w.to_string(),
                    warning: w.clone(),
                })
                .collect(),
        }
    }

    /// Nothing to say: no profile, no warning.
    pub fn is_empty(&self) -> bool {
        self.readers.is_empty() && self.conversions.is_empty() && self.warnings.is_empty()
    }

    /// The Parquet key-value metadata: `tributary.for` and `tributary.conversions`.
    pub fn metadata(&self) -> Vec<(String, String)> {
        if self.readers.is_empty() {
            return Vec::new();
        }
        let conversions: BTreeMap<&str, String> = self
            .conversions
            .iter()
            .map(|c| (c.column.as_str(), format!("{} as {}", c.from, c.to)))
            .collect();
        vec![
            ("tributary.for".into(), self.readers.join(",")),
            (
                "tributary.conversions".into(),
                serde_json::to_string(&conversions).expect("serialisable"),
            ),
        ]
    }
}

impl fmt::Display for ReaderNotes {
    /// One line per rendering applied and per warning.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.readers.is_empty() {
            let list: Vec<String> = self
                .conversions
                .iter()
                .map(|c| format!("`{}` as {}", c.column, c.to))
                .collect();
            writeln!(
                f,
                "for {}: {}",
                self.readers.join(", "),
                if list.is_empty() {
                    "every column as written".to_string()
                } else {
                    list.join(", ")
                }
            )?;
        }
        for w in &self.warnings {
            writeln!(f, "warning: {}", w.message)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{
        FixedSizeBinaryArray, Int64Array, Time64MicrosecondArray, TimestampNanosecondArray,
    };

    fn uuid_field(name: &str) -> Field {
        Field::new(name, DataType::FixedSizeBinary(16), true)
            .with_extension_type(arrow_schema::extension::Uuid)
    }

    fn time() -> DataType {
        DataType::Time64(TimeUnit::Microsecond)
    }

    fn profile(readers: &str) -> Profile {
        Profile {
            readers: readers.parse().unwrap(),
            rules: Default::default(),
        }
    }

    /// A schema with every shape the table has a row for, some nested.
    fn schema() -> Schema {
        Schema::new(vec![
            Field::new("id", DataType::Int32, false),
            uuid_field("u"),
            Field::new("tm", time(), true),
            Field::new("j", DataType::Utf8, true)
                .with_extension_type(arrow_schema::extension::Json::default()),
            Field::new("o", DataType::UInt32, true),
            Field::new("x8", DataType::UInt64, true),
            Field::new(
                "ns",
                DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
                true,
            ),
            Field::new(
                "tz",
                DataType::Struct(Fields::from(vec![
                    Field::new("time", time(), true),
                    Field::new("utc_offset", DataType::Int32, true),
                ])),
                true,
            ),
            Field::new(
                "times",
                DataType::List(Arc::new(Field::new_list_field(time(), true))),
                true,
            ),
        ])
    }

    fn types(plan: &ProfilePlan) -> Vec<String> {
        plan.schema
            .fields()
            .iter()
            .map(|f| super::super::describe_field(f))
            .collect()
    }

    #[test]
    fn the_table_has_one_row_per_shape_and_a_rendering_wherever_one_is_needed() {
        for (i, row) in TABLE.iter().enumerate() {
            assert!(
                TABLE[i + 1..].iter().all(|r| r.shape != row.shape),
                "{:?} twice",
                row.shape
            );
            let needs = row.verdicts.contains(&Needs);
            assert_eq!(needs, row.rendering.is_some(), "{:?}", row.shape);
            // DuckDB and pandas (pyarrow) read every shape as written.
            assert_eq!(row.verdicts[3..], [Reads, Reads], "{:?}", row.shape);
        }
        // The Spark column, as PySpark 4.3 reads the files (tests/it/readers.rs).
        let spark: Vec<(Shape, Verdict)> = TABLE.iter().map(|r| (r.shape, r.verdicts[0])).collect();
        assert_eq!(
            spark,
            [
                (Shape::Uuid, Needs),
                (Shape::Time, Needs),
                (Shape::Json, Reads),
                (Shape::UInt32, Reads),
                (Shape::UInt64, Reads),
                (Shape::TimestampNanos, Needs),
                (Shape::NestedList, Reads),
            ]
        );
    }

    #[test]
    fn readers_parse_from_names_lists_and_any() {
        let r: Readers = "spark, Trino".parse().unwrap();
        assert_eq!(r.iter().collect::<Vec<_>>(), [Reader::Spark, Reader::Trino]);
        assert_eq!(r.to_string(), "spark,trino");
        assert_eq!("any".parse::<Readers>().unwrap(), Readers::all());
        let mut r = Readers::default();
        r.add("duckdb").unwrap();
        r.add("pandas").unwrap();
        assert_eq!(r.to_string(), "duckdb,pandas");
        let err = "sparkk".parse::<Readers>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "`sparkk` is not one of spark, trino, bigquery, duckdb, pandas, any"
        );
    }

    #[test]
    fn spark_gets_uuid_text_time_micros_and_micro_timestamps_and_keeps_the_rest() {
        let plan = profile("spark").plan(&schema()).unwrap();
        assert_eq!(
            types(&plan),
            [
                "Int32",
                "Utf8",
                "Int64",
                "Utf8 (arrow.json)",
                "UInt32",
                "UInt64",
                "Timestamp(µs, \"UTC\")",
                "Struct(\"time\": Int64, \"utc_offset\": Int32)",
                "List(Int64)",
            ]
        );
        let converted: Vec<&str> = plan.conversions.iter().map(|c| c.column.as_str()).collect();
        assert_eq!(converted, ["u", "tm", "ns", "tz.time", "times[]"]);
        assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
        // DuckDB and pandas need nothing: the schema is written as it is.
        let plan = profile("duckdb,pandas").plan(&schema()).unwrap();
        assert_eq!(plan.schema.as_ref(), &schema());
        assert!(plan.conversions.is_empty());
    }

    #[test]
    fn any_writes_what_every_reader_reads() {
        let plan = profile("any").plan(&schema()).unwrap();
        let t = types(&plan);
        assert_eq!(t[3], "Utf8", "JSON without its logical type");
        assert_eq!(t[4], "Int64");
        assert_eq!(t[5], "Decimal128(20, 0)");
    }

    #[test]
    fn without_a_profile_nothing_changes_and_spark_is_warned_about() {
        let plan = Profile::default().plan(&schema()).unwrap();
        assert_eq!(plan.schema.as_ref(), &schema());
        assert_eq!(plan.warnings.len(), 1, "{:?}", plan.warnings);
        let w = &plan.warnings[0];
        assert_eq!(w.reader, "spark");
        assert_eq!(
            w.columns,
            [
                "`u` (uuid (Parquet UUID))",
                "`tm` (time (Parquet TIME))",
                "`ns` (timestamp in nanoseconds)",
                "`tz.time` (time (Parquet TIME))",
                "`times[]` (time (Parquet TIME))",
            ]
        );
        assert!(w.to_string().starts_with("Spark cannot open `u`"), "{w}");
        assert!(w.to_string().contains("--for spark"), "{w}");
    }

    #[test]
    fn the_users_own_option_wins_over_the_profile_with_a_warning() {
        let mut rules = TypeRules::default();
        rules.global.set("uuid", "binary").unwrap();
        let profile = Profile {
            readers: "spark".parse().unwrap(),
            rules: Arc::new(rules),
        };
        let plan = profile.plan(&schema()).unwrap();
        assert_eq!(types(&plan)[1], "FixedSizeBinary(16) (arrow.uuid)");
        assert_eq!(plan.warnings.len(), 1);
        assert_eq!(plan.warnings[0].columns, ["`u` (uuid (Parquet UUID))"]);
    }

    #[test]
    fn a_shape_with_no_exact_form_fails_naming_the_column_and_the_reader() {
        let matrix = Field::new(
            "m",
            DataType::List(Arc::new(Field::new_list_field(
                DataType::List(Arc::new(Field::new_list_field(DataType::Int32, true))),
                true,
            ))),
            true,
        );
        let schema = Schema::new(vec![matrix]);
        let err = profile("spark,bigquery").plan(&schema).unwrap_err();
        assert!(
            matches!(&err, NoExactForm::Shape { column, reader: Reader::BigQuery, .. } if column == "m"),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .starts_with("--for bigquery: column `m` holds a list of lists"),
            "{err}"
        );
        assert!(profile("spark").plan(&schema).is_ok());
    }

    #[test]
    fn names_equal_but_for_case_are_refused_for_spark_trino_and_bigquery() {
        let schema = Schema::new(vec![
            Field::new("a", DataType::Int32, true),
            Field::new("A", DataType::Int32, true),
        ]);
        let err = profile("spark").plan(&schema).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--for spark: columns `a` and `A` differ only in case, and Spark resolves column names ignoring case (it refuses the file); rename one in the query (`AS ...`)"
        );
        let err = profile("bigquery").plan(&schema).unwrap_err().to_string();
        assert!(err.contains("(it refuses the load)"), "{err}");
        let err = profile("trino").plan(&schema).unwrap_err().to_string();
        assert!(err.contains("(it reads only one of the two"), "{err}");
        assert!(profile("duckdb").plan(&schema).is_ok());
        assert!(Profile::default().plan(&schema).is_ok());
    }

    #[test]
    fn conversions_keep_every_value_or_fail() {
        let bytes: Vec<Option<[u8; 16]>> = vec![
            Some(
                *uuid::Uuid::parse_str("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
                    .unwrap()
                    .as_bytes(),
            ),
            None,
        ];
        let u: ArrayRef = Arc::new(
            FixedSizeBinaryArray::try_from_sparse_iter_with_size(bytes.into_iter(), 16).unwrap(),
        );
        let text = convert(&u, &DataType::Utf8).unwrap();
        let text = text.as_string::<i32>();
        assert_eq!(text.value(0), "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
        assert!(text.is_null(1));

        let t: ArrayRef = Arc::new(Time64MicrosecondArray::from(vec![
            Some(86_400_000_000),
            None,
            Some(1),
        ]));
        let list: ArrayRef = Arc::new(ListArray::new(
            Arc::new(Field::new_list_field(time(), true)),
            arrow::buffer::OffsetBuffer::from_lengths([2, 1]),
            t.clone(),
            None,
        ));
        let to = DataType::List(Arc::new(Field::new_list_field(DataType::Int64, true)));
        let converted = convert(&list, &to).unwrap();
        let values = converted.as_list::<i32>().values().clone();
        let values = values.as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(
            values.iter().collect::<Vec<_>>(),
            [Some(86_400_000_000), None, Some(1)]
        );

        let micros = DataType::Timestamp(TimeUnit::Microsecond, None);
        let exact: ArrayRef = Arc::new(TimestampNanosecondArray::from(vec![Some(-2_000), None]));
        assert_eq!(
            convert(&exact, &micros)
                .unwrap()
                .as_primitive::<arrow::datatypes::TimestampMicrosecondType>()
                .value(0),
            -2
        );
        let inexact: ArrayRef = Arc::new(TimestampNanosecondArray::from(vec![Some(1_500)]));
        let err = convert(&inexact, &micros).unwrap_err();
        assert!(err.to_string().contains("1500 ns"), "{err}");
    }

    #[test]
    fn the_plan_lists_the_renderings_of_the_readers_named() {
        assert_eq!(
            profile("spark").describe(),
            [
                "uuid (Parquet UUID) as 36-character text (for Spark)",
                "time (Parquet TIME) as int64 microseconds since midnight (for Spark)",
                "timestamp in nanoseconds as timestamp in microseconds (exact values only) (for Spark)",
            ]
        );
        let bigquery = profile("bigquery").describe();
        assert!(
            bigquery
                .last()
                .unwrap()
                .contains("refused, no exact form for BigQuery"),
            "{bigquery:?}"
        );
        assert!(profile("duckdb").describe().is_empty());
    }
}
