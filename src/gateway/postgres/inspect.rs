//! Row mapping for the Inspector operations: databases, tables, columns.

use tokio_postgres::Client;

use super::sql;
use super::text::TextColumns;
use crate::gateway::{Column, Database, Table, TableKind};

/// `GetDatabases`.
pub(super) async fn databases(client: &Client) -> Result<Vec<Database>, tokio_postgres::Error> {
    let rows = client.query(sql::DATABASES, &[]).await?;
    rows.iter()
        .map(|row| {
            let size: Option<i64> = row.try_get(3)?;
            Ok(Database {
                name: row.text(0)?,
                owner: row.text(1)?,
                encoding: row.text(2)?,
                // pg_database_size is never negative; a negative would be a server bug.
                size_bytes: size.and_then(|s| u64::try_from(s).ok()),
            })
        })
        .collect()
}

/// `GetTables`.
pub(super) async fn tables(client: &Client) -> Result<Vec<Table>, tokio_postgres::Error> {
    let rows = client.query(sql::TABLES, &[]).await?;
    rows.iter()
        .map(|row| {
            let kind: String = row.text(2)?;
            Ok(Table {
                schema: row.text(0)?,
                name: row.text(1)?,
                // The statement selects exactly these relkinds.
                kind: match kind.as_str() {
                    "p" => TableKind::PartitionedTable,
                    "v" => TableKind::View,
                    "m" => TableKind::MaterializedView,
                    "f" => TableKind::Foreign,
                    _ => TableKind::Table,
                },
            })
        })
        .collect()
}

/// `GetColumns`; `None` when the table is not visible at all.
pub(super) async fn columns(
    client: &Client,
    schema: &str,
    table: &str,
) -> Result<Option<Vec<Column>>, tokio_postgres::Error> {
    let rows = client.query(sql::COLUMNS, &[&schema, &table]).await?;
    let columns = rows
        .iter()
        .map(|row| {
            let position: i32 = row.try_get(4)?;
            Ok(Column {
                name: row.text(0)?,
                data_type: row.text(1)?,
                nullable: row.try_get(2)?,
                default: row.opt_text(3)?,
                position: u32::try_from(position).unwrap_or(0),
            })
        })
        .collect::<Result<Vec<_>, tokio_postgres::Error>>()?;
    if columns.is_empty() {
        let exists: bool = client
            .query_one(sql::TABLE_EXISTS, &[&schema, &table])
            .await?
            .try_get(0)?;
        if !exists {
            return Ok(None);
        }
    }
    Ok(Some(columns))
}
