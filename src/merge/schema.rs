//! The schema every task's batches are checked against and cast to: the query's columns
//! as the shards agree on them so far, widened to hold every shard's values.
//!
//! Shards may type a column differently (int4 here, int8 there; numeric(10,2) and
//! numeric(12,2)): the common type is the narrowest that holds both
//! ([`types::unify_fields`]), and batches are cast up to it. Once the sink has started
//! (the first row group is begun) the schema is fixed: a type that would have to widen
//! after that is an error naming both shards.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray, new_null_array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::error::ArrowError;

use crate::error::{Error, Result};
use crate::types::{self, describe_field};

/// One column of the common schema.
struct CommonColumn {
    /// Null-typed until some shard gives the column a type.
    field: Field,
    /// The shard that fixed the column's type, for messages.
    origin: String,
}

/// The query's columns as agreed so far, and the shard column put before them.
pub(super) struct CommonSchema {
    /// `--shard-column`: a first column holding each row's shard.
    shard_column: Option<String>,
    /// `None` until the first task's columns are known (without the shard column).
    columns: Option<Vec<CommonColumn>>,
}

impl CommonSchema {
    pub(super) fn new(shard_column: Option<String>) -> CommonSchema {
        CommonSchema {
            shard_column,
            columns: None,
        }
    }

    /// Checks `shard`'s columns against the common schema, fills in types that were not
    /// known yet, and widens types to hold every shard's values. `fixed` says that rows
    /// were written already, so that no type may change any more.
    pub(super) fn observe(&mut self, shard: &str, schema: &Schema, fixed: bool) -> Result<()> {
        if let Some(column) = &self.shard_column
            && schema.fields().iter().any(|f| f.name() == column)
        {
            return Err(Error::ShardColumnTaken {
                column: column.clone(),
                shard: shard.to_string(),
            });
        }
        let Some(columns) = &mut self.columns else {
            self.columns = Some(
                schema
                    .fields()
                    .iter()
                    .map(|f| CommonColumn {
                        field: f.as_ref().clone(),
                        origin: shard.to_string(),
                    })
                    .collect(),
            );
            return Ok(());
        };
        if columns.len() != schema.fields().len() {
            let names = |it: Vec<&str>| it.join(", ");
            let first = &columns[0].origin;
            return Err(mismatch(
                first,
                shard,
                format!(
                    "`{first}` returns {} columns ({}), `{shard}` returns {} ({})",
                    columns.len(),
                    names(columns.iter().map(|c| c.field.name().as_str()).collect()),
                    schema.fields().len(),
                    names(schema.fields().iter().map(|f| f.name().as_str()).collect()),
                ),
            ));
        }
        for (i, (column, field)) in columns.iter_mut().zip(schema.fields()).enumerate() {
            column.observe(i, shard, field, fixed)?;
        }
        Ok(())
    }

    /// The output's schema: the shard column, then the query's columns (those no shard
    /// typed yet stay Null).
    pub(super) fn output(&self) -> SchemaRef {
        let mut fields = Vec::new();
        if let Some(column) = &self.shard_column {
            fields.push(Field::new(column, DataType::Utf8, false));
        }
        for column in self.columns.iter().flatten() {
            fields.push(column.field.clone());
        }
        Arc::new(Schema::new(fields))
    }
}

impl CommonColumn {
    /// Checks column `i` as `shard` returns it (`field`) against this one, and takes its
    /// type or widens to it while the schema is not `fixed`.
    fn observe(&mut self, i: usize, shard: &str, field: &Field, fixed: bool) -> Result<()> {
        if self.field.name() != field.name() {
            return Err(mismatch(
                &self.origin,
                shard,
                format!(
                    "column {} is `{}` in `{}` but `{}` in `{shard}`",
                    i + 1,
                    self.field.name(),
                    self.origin,
                    field.name()
                ),
            ));
        }
        if field.data_type() == &DataType::Null {
            return Ok(());
        }
        let untyped = self.field.data_type() == &DataType::Null;
        let common = if untyped {
            field.clone()
        } else {
            types::unify_fields(&self.field, field).ok_or_else(|| {
                mismatch(
                    &self.origin,
                    shard,
                    format!(
                        "column `{}` is {} in `{}` but {} in `{shard}`",
                        field.name(),
                        describe_field(&self.field),
                        self.origin,
                        describe_field(field)
                    ),
                )
            })?
        };
        if common == self.field {
            return Ok(());
        }
        if fixed {
            let detail = if untyped {
                format!(
                    "column `{}` had no type in `{}` (no declared type and only NULLs in the rows written first) but is {} in `{shard}`; give the column a type in the query",
                    field.name(),
                    self.origin,
                    describe_field(field)
                )
            } else {
                format!(
                    "column `{}` is {} in `{}` but {} in `{shard}`, and rows of the narrower type were written before `{shard}` could be described; cast the column to {} in the query",
                    field.name(),
                    describe_field(&self.field),
                    self.origin,
                    describe_field(field),
                    common.data_type()
                )
            };
            return Err(mismatch(&self.origin, shard, detail));
        }
        self.field = common;
        self.origin = shard.to_string();
        Ok(())
    }
}

fn mismatch(first: &str, other: &str, detail: String) -> Error {
    Error::SchemaMismatch {
        first_shard: first.to_string(),
        other_shard: other.to_string(),
        detail,
    }
}

/// The batch in the output's `schema`: the shard column added (when `shard` is given),
/// untyped NULL columns typed, narrower types cast up to the common type, and columns
/// a reader profile renders otherwise converted ([`types::convert`]).
pub(super) fn conform(
    batch: RecordBatch,
    schema: &SchemaRef,
    shard: Option<&str>,
) -> std::result::Result<RecordBatch, ArrowError> {
    let rows = batch.num_rows();
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    if let Some(shard) = shard {
        columns.push(Arc::new(StringArray::from_iter_values(
            std::iter::repeat_n(shard, rows),
        )));
    }
    let offset = columns.len();
    for (i, column) in batch.columns().iter().enumerate() {
        let want = schema.field(offset + i).data_type();
        if column.data_type() == want {
            columns.push(column.clone());
        } else if column.data_type() == &DataType::Null {
            columns.push(new_null_array(want, rows));
        } else {
            // A narrower type of this shard (`observe` checked that it widens
            // losslessly), or a reader profile's rendering.
            columns.push(types::convert(column, want)?);
        }
    }
    RecordBatch::try_new(schema.clone(), columns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::exit;

    fn schema(fields: &[(&str, DataType)]) -> Schema {
        Schema::new(
            fields
                .iter()
                .map(|(name, t)| Field::new(*name, t.clone(), true))
                .collect::<Vec<_>>(),
        )
    }

    /// Regression: a shard returning a column named like `--shard-column` was reported
    /// as a configuration error with no type of its own.
    #[test]
    fn a_shard_returning_the_shard_column_is_its_own_error() {
        let mut common = CommonSchema::new(Some("shard".into()));
        let taken = schema(&[("id", DataType::Int64), ("shard", DataType::Utf8)]);
        let err = common.observe("eu-1", &taken, false).unwrap_err();
        assert!(
            matches!(&err, Error::ShardColumnTaken { column, shard } if column == "shard" && shard == "eu-1"),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "--shard-column `shard`: shard `eu-1` already returns a column of that name"
        );
        assert_eq!(err.exit_code(), exit::CONFIG);
    }

    #[test]
    fn types_widen_until_the_schema_is_fixed() {
        let mut common = CommonSchema::new(Some("shard".into()));
        common
            .observe(
                "a",
                &schema(&[("n", DataType::Int32), ("x", DataType::Null)]),
                false,
            )
            .unwrap();
        common
            .observe(
                "b",
                &schema(&[("n", DataType::Int64), ("x", DataType::Utf8)]),
                false,
            )
            .unwrap();
        let output = common.output();
        let types: Vec<(&str, &DataType)> = output
            .fields()
            .iter()
            .map(|f| (f.name().as_str(), f.data_type()))
            .collect();
        assert_eq!(
            types,
            [
                ("shard", &DataType::Utf8),
                ("n", &DataType::Int64),
                ("x", &DataType::Utf8)
            ]
        );
        // Once rows were written, no column may be renamed or take another type.
        let mut fixed = |first: (&str, DataType)| {
            common
                .observe("c", &schema(&[first, ("x", DataType::Utf8)]), true)
                .unwrap_err()
        };
        let err = fixed(("n", DataType::Float64));
        assert!(matches!(err, Error::SchemaMismatch { .. }), "{err}");
        let err = fixed(("m", DataType::Int64));
        assert_eq!(
            err.to_string(),
            "shards `b` and `c` disagree on the result's columns: column 1 is `n` in `b` but `m` in `c`"
        );
    }
}
