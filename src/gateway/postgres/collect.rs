//! The scheduled collection: health, activity aggregates and databases, pipelined on one
//! connection (tokio-postgres sends the three statements without waiting for each answer).

use tokio_postgres::Client;

use super::admin::{seconds, server_health};
use super::inspect::databases;
use super::sql;
use crate::gateway::{ActivityGroup, Collection};

/// Session aggregates per (database, user, state).
async fn activity(client: &Client) -> Result<Vec<ActivityGroup>, tokio_postgres::Error> {
    let rows = client.query(sql::ACTIVITY, &[]).await?;
    rows.iter()
        .map(|row| {
            let count: i32 = row.try_get(3)?;
            Ok(ActivityGroup {
                database: row.try_get(0)?,
                user: row.try_get(1)?,
                state: row.try_get(2)?,
                count: u32::try_from(count).unwrap_or(0),
                max_tx_duration: seconds(row.try_get(4)?),
                max_query_duration: seconds(row.try_get(5)?),
            })
        })
        .collect()
}

/// One whole collection, in one read-only transaction so health and activity see the same
/// `pg_stat_activity` snapshot (PostgreSQL caches backend status per transaction): the session
/// count in health equals the sum of the activity groups.
pub(super) async fn collection(client: &Client) -> Result<Collection, tokio_postgres::Error> {
    client.batch_execute(sql::COLLECTION_BEGIN).await?;
    let (health, activity, databases) =
        tokio::try_join!(server_health(client), activity(client), databases(client))?;
    client.batch_execute("COMMIT").await?;
    Ok(Collection {
        health,
        activity,
        databases,
    })
}
