//! The Inspector through `information_schema`: databases (schemas) with their size, tables,
//! columns. Every value from the caller is bound as a parameter, never spliced.

use mysql_async::Params;

use super::connect::{Session, col};
use crate::gateway::{Column, Database, Deadline, GatewayError, Table, TableKind};

/// Schemas the server keeps for itself.
const SYSTEM_SCHEMAS: &str = "('information_schema', 'performance_schema', 'mysql', 'sys')";

/// `GetDatabases`: every schema but the server's own, with its default character set and
/// `data_length + index_length` of its tables (MySQL has no owner of a database).
pub(super) async fn databases(
    s: &mut Session,
    deadline: &Deadline,
) -> Result<Vec<Database>, GatewayError> {
    let sql = format!(
        "SELECT s.SCHEMA_NAME, s.DEFAULT_CHARACTER_SET_NAME, \
         (SELECT CAST(COALESCE(SUM(t.DATA_LENGTH + t.INDEX_LENGTH), 0) AS UNSIGNED) \
          FROM information_schema.TABLES t WHERE t.TABLE_SCHEMA = s.SCHEMA_NAME) \
         FROM information_schema.SCHEMATA s \
         WHERE s.SCHEMA_NAME NOT IN {SYSTEM_SCHEMAS} ORDER BY s.SCHEMA_NAME"
    );
    s.rows(&sql, deadline)
        .await?
        .iter()
        .map(|row| {
            Ok(Database {
                name: col(row, 0)?,
                owner: String::new(),
                encoding: col(row, 1)?,
                size_bytes: col(row, 2)?,
            })
        })
        .collect()
}

/// `GetTables` of `database`: its tables and views; `NotFound` when it does not exist (or
/// the login may not see it).
pub(super) async fn tables(
    s: &mut Session,
    database: &str,
    deadline: &Deadline,
) -> Result<Vec<Table>, GatewayError> {
    exists(s, database, deadline).await?;
    let rows = s
        .rows_with(
            "SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME",
            Params::Positional(vec![database.into()]),
            deadline,
        )
        .await?;
    rows.iter()
        .map(|row| {
            let kind: String = col(row, 2)?;
            Ok(Table {
                schema: col(row, 0)?,
                name: col(row, 1)?,
                kind: match kind.as_str() {
                    "VIEW" | "SYSTEM VIEW" => TableKind::View,
                    "TEMPORARY" | "LOCAL TEMPORARY" => TableKind::Temporary,
                    _ => TableKind::Table,
                },
            })
        })
        .collect()
}

async fn exists(s: &mut Session, database: &str, deadline: &Deadline) -> Result<(), GatewayError> {
    let found = s
        .rows_with(
            "SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
            Params::Positional(vec![database.into()]),
            deadline,
        )
        .await?;
    if found.is_empty() {
        return Err(GatewayError::NotFound {
            what: format!("database {database}"),
        });
    }
    Ok(())
}

/// `GetColumns` of `database.table`, in table order; `None` when the table is not visible.
pub(super) async fn columns(
    s: &mut Session,
    database: &str,
    table: &str,
    deadline: &Deadline,
) -> Result<Option<Vec<Column>>, GatewayError> {
    let rows = s
        .rows_with(
            "SELECT COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT, ORDINAL_POSITION \
             FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? \
             ORDER BY ORDINAL_POSITION",
            Params::Positional(vec![database.into(), table.into()]),
            deadline,
        )
        .await?;
    if rows.is_empty() {
        // A table has at least one column: none means no table the login can see.
        return Ok(None);
    }
    rows.iter()
        .map(|row| {
            let nullable: String = col(row, 2)?;
            Ok(Column {
                name: col(row, 0)?,
                data_type: col(row, 1)?,
                nullable: nullable == "YES",
                default: col(row, 3)?,
                position: col(row, 4)?,
            })
        })
        .collect::<Result<Vec<_>, GatewayError>>()
        .map(Some)
}
