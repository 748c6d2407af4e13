//! The job's type options (how source types are rendered; see `types` and
//! docs/types.md): the job file's `[types]` table, then the `--type` and `--column-type`
//! flags over it, key by key.

use super::RunArgs;
use crate::types::{TypeOptionError, TypeOverrides, TypeRules};

/// A type option that could not be set, with where it was given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TypeOptionsError {
    #[error("types.columns must be a table of column names")]
    ColumnsNotATable,
    #[error("types.columns.{column} must be a table of type options")]
    ColumnNotATable { column: String },
    /// In the job file's table for one column.
    #[error("types.columns.{column}.{error}")]
    Column {
        column: String,
        error: TypeOptionError,
    },
    /// In the job file's `[types]` table.
    #[error("types.{0}")]
    Global(TypeOptionError),
    /// In a `--type` flag.
    #[error("--type {0}")]
    Flag(TypeOptionError),
    /// In a `--column-type` flag.
    #[error("--column-type {column}:{error}")]
    ColumnFlag {
        column: String,
        error: TypeOptionError,
    },
}

/// The type options: the job file's `[types]` table (global keys, and a `columns` table
/// of per-column tables), then `--type` and `--column-type` flags over it, key by key.
pub(super) fn resolve_types(
    table: &Option<toml::Table>,
    args: &RunArgs,
) -> Result<TypeRules, TypeOptionsError> {
    let mut rules = TypeRules::default();
    let text = |v: &toml::Value| match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    for (key, value) in table.iter().flatten() {
        if key == "columns" {
            let columns = value.as_table().ok_or(TypeOptionsError::ColumnsNotATable)?;
            for (column, options) in columns {
                let options =
                    options
                        .as_table()
                        .ok_or_else(|| TypeOptionsError::ColumnNotATable {
                            column: column.clone(),
                        })?;
                let entry = rules.columns.entry(column.clone()).or_default();
                for (key, value) in options {
                    entry
                        .set(key, &text(value))
                        .map_err(|error| TypeOptionsError::Column {
                            column: column.clone(),
                            error,
                        })?;
                }
            }
        } else {
            rules
                .global
                .set(key, &text(value))
                .map_err(TypeOptionsError::Global)?;
        }
    }
    let mut flags = TypeOverrides::default();
    for (key, value) in &args.type_options {
        flags.set(key, value).map_err(TypeOptionsError::Flag)?;
    }
    rules.global.overlay(&flags);
    for (column, key, value) in &args.column_types {
        let mut flag = TypeOverrides::default();
        flag.set(key, value)
            .map_err(|error| TypeOptionsError::ColumnFlag {
                column: column.clone(),
                error,
            })?;
        rules
            .columns
            .entry(column.clone())
            .or_default()
            .overlay(&flag);
    }
    Ok(rules)
}
