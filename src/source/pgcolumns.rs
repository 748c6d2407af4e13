//! How a PostgreSQL result is read: each column looked up in the type table (under the
//! job's type options), and the COPY statement that reads them, with a server-side
//! `::text` cast around the columns the table reads as text. Kept apart from the
//! connection handling in `postgres` so the two change independently.

use std::sync::Arc;

use arrow::datatypes::{Schema, SchemaRef};
use tokio_postgres::Client;
use tokio_postgres::types::Kind;

use crate::error::TaskErrorKind;
use crate::source::check_unique_names;
use crate::sql::quote_ident;
use crate::types::{ColumnPlan, MAX_ARRAY_DIMS, PgKind, TextReason, TypeRules};

/// A result's columns, ready to read.
#[derive(Debug)]
pub struct Columns {
    /// Each column's name and how the COPY decoder reads it.
    pub kinds: Vec<(String, PgKind)>,
    /// The statement that streams the result.
    pub copy_sql: String,
    /// Columns read as text because their type has no row in the table: (column, type).
    pub no_mapping: Vec<(String, String)>,
}

impl Columns {
    pub fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(
            self.kinds
                .iter()
                .map(|(name, kind)| kind.field(name))
                .collect::<Vec<_>>(),
        ))
    }
}

/// Describes `sql` on the server (a prepare: nothing runs) and plans how to read it.
pub async fn describe(
    client: &Client,
    sql: &str,
    rules: &TypeRules,
) -> Result<Columns, tokio_postgres::Error> {
    let statement = client.prepare(sql).await?;
    let mut plans = Vec::with_capacity(statement.columns().len());
    for column in statement.columns() {
        let mut options = rules.for_column(column.name());
        if let (Kind::Array(_), None, Some(table), Some(attnum)) = (
            column.type_().kind(),
            rules.array_dims_set(column.name()),
            column.table_oid(),
            column.column_id(),
        ) && let Some(dims) = declared_dims(client, table, attnum).await?
        {
            options.array_dims = dims;
        }
        let plan = ColumnPlan::of(column.type_(), column.type_modifier(), &options);
        plans.push((column.name().to_string(), plan));
    }
    Ok(plan_columns(sql, plans))
}

/// The dimensions a table's array column declares (`int4[][]` -> 2), if more than one.
/// PostgreSQL does not enforce them, so a value with other dimensions is still an error
/// naming the column and the `array_dims` option; the row description does not carry
/// them, hence the catalog.
async fn declared_dims(
    client: &Client,
    table: u32,
    attnum: i16,
) -> Result<Option<u8>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT attndims::int4 FROM pg_catalog.pg_attribute WHERE attrelid = $1 AND attnum = $2",
            &[&table, &attnum],
        )
        .await?;
    let dims: i32 = row.map(|r| r.get(0)).unwrap_or(0);
    Ok((2..=MAX_ARRAY_DIMS as i32)
        .contains(&dims)
        .then_some(dims as u8))
}

/// Describes `sql` for a task about to stream it: the columns, checked (unique names,
/// what the table assumes of the server), with warnings for columns read as text for
/// want of a mapping and for type options naming no column. `classify` turns a server
/// error into the task's error.
pub async fn describe_for_task(
    client: &Client,
    sql: &str,
    rules: &TypeRules,
    shard: &str,
    classify: impl Fn(tokio_postgres::Error) -> TaskErrorKind,
) -> Result<Columns, TaskErrorKind> {
    let columns = describe(client, sql, rules).await.map_err(classify)?;
    check_unique_names(columns.kinds.iter().map(|(n, _)| n.as_str())).map_err(|e| {
        TaskErrorKind::Schema {
            message: e.to_string(),
        }
    })?;
    check_server(client, &columns).await?;
    for column in rules.columns.keys() {
        if !columns.kinds.iter().any(|(name, _)| name == column) {
            tracing::warn!(
                "shard `{shard}`: type options name column `{column}`, which the query does not return"
            );
        }
    }
    for (column, type_name) in &columns.no_mapping {
        tracing::warn!(
            "shard `{shard}`: column `{column}` has type `{type_name}`, which has no exact mapping; it is read as text"
        );
    }
    Ok(columns)
}

/// Checks what the type table assumes of the server: `money`'s fraction digits.
async fn check_server(client: &Client, columns: &Columns) -> Result<(), TaskErrorKind> {
    let Some((name, _)) = columns.kinds.iter().find(|(_, k)| contains_money(k)) else {
        return Ok(());
    };
    let scale: i32 = client
        .query_one("SELECT scale(0::money::numeric)", &[])
        .await
        .map(|row| row.get(0))
        .map_err(|e| TaskErrorKind::Server {
            sqlstate: e.code().map(|c| c.code().to_string()),
            message: e.to_string(),
        })?;
    if scale != crate::types::MONEY_SCALE as i32 {
        return Err(TaskErrorKind::Decode {
            column: name.clone(),
            message: format!(
                "money has {scale} fraction digits under this server's lc_monetary; tributary reads it with {}: read the column as text (`text = true`) or cast it to numeric in the query",
                crate::types::MONEY_SCALE
            ),
        });
    }
    Ok(())
}

fn contains_money(kind: &PgKind) -> bool {
    match kind {
        PgKind::Money => true,
        PgKind::Array { element: k, .. } | PgKind::Range(k) | PgKind::Multirange(k) => {
            contains_money(k)
        }
        PgKind::Composite(fields) => fields.iter().any(|(_, k)| contains_money(k)),
        _ => false,
    }
}

/// The decoder kinds and the COPY statement for planned columns.
fn plan_columns(sql: &str, plans: Vec<(String, ColumnPlan)>) -> Columns {
    let any_text = plans
        .iter()
        .any(|(_, p)| matches!(p, ColumnPlan::ServerText(_)));
    let copy_sql = if any_text {
        let select: Vec<String> = plans
            .iter()
            .map(|(name, plan)| match plan {
                ColumnPlan::Decode(_) => format!("q.{}", quote_ident(name)),
                ColumnPlan::ServerText(_) => {
                    format!("q.{}::text AS {}", quote_ident(name), quote_ident(name))
                }
            })
            .collect();
        format!(
            "COPY (SELECT {} FROM (\n{sql}\n) AS q) TO STDOUT (FORMAT binary)",
            select.join(", ")
        )
    } else {
        format!("COPY (\n{sql}\n) TO STDOUT (FORMAT binary)")
    };
    let no_mapping = plans
        .iter()
        .filter_map(|(name, plan)| match plan {
            ColumnPlan::ServerText(TextReason::NoMapping { type_name }) => {
                Some((name.clone(), type_name.clone()))
            }
            _ => None,
        })
        .collect();
    Columns {
        kinds: plans
            .into_iter()
            .map(|(name, plan)| (name, plan.decoder_kind()))
            .collect(),
        copy_sql,
        no_mapping,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::TypeOptions;
    use tokio_postgres::types::Type;

    #[test]
    fn only_text_columns_are_cast_and_names_are_quoted() {
        let o = TypeOptions::default();
        let plans = vec![
            ("id".to_string(), ColumnPlan::of(&Type::INT4, -1, &o)),
            (
                "we\"ird".to_string(),
                ColumnPlan::of(&Type::TS_VECTOR, -1, &o),
            ),
            ("v".to_string(), ColumnPlan::of(&Type::VOID, -1, &o)),
        ];
        let columns = plan_columns("SELECT 1 -- comment", plans);
        assert_eq!(
            columns.copy_sql,
            "COPY (SELECT q.\"id\", q.\"we\"\"ird\"::text AS \"we\"\"ird\", q.\"v\"::text AS \"v\" FROM (\nSELECT 1 -- comment\n) AS q) TO STDOUT (FORMAT binary)"
        );
        assert_eq!(columns.no_mapping, [("v".to_string(), "void".to_string())]);
        assert_eq!(columns.kinds[1].1, PgKind::Text);

        let plain = plan_columns(
            "SELECT 1",
            vec![("id".into(), ColumnPlan::of(&Type::INT4, -1, &o))],
        );
        assert_eq!(
            plain.copy_sql,
            "COPY (\nSELECT 1\n) TO STDOUT (FORMAT binary)"
        );
    }
}
