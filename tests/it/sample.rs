//! Fixed model values for tests that need a collection without a server.

use std::time::{Duration, UNIX_EPOCH};

use mesa::gateway::{ActivityGroup, Collection, Database, HealthStatus, ServerHealth};

/// A collection with two databases and three activity groups.
pub fn collection() -> Collection {
    Collection {
        health: ServerHealth {
            status: HealthStatus::Online,
            version: "PostgreSQL 15.18 (Debian 15.18-0+deb12u1) on x86_64-pc-linux-gnu".to_owned(),
            short_version: "15.18.0".to_owned(),
            max_connections: 100,
            superuser_reserved_connections: 3,
            client_sessions: 7,
            started_at: UNIX_EPOCH + Duration::from_millis(1_795_000_000_250),
            uptime: Duration::from_secs(3600),
        },
        activity: vec![
            group("orders", "app", "active", 2, 12.5, 3.25),
            group("orders", "app", "idle", 4, 0.0, 0.0),
            group("orders", "etl", "idle in transaction", 1, 600.0, 0.0),
        ],
        databases: vec![
            Database {
                name: "orders".to_owned(),
                owner: "app_owner".to_owned(),
                encoding: "UTF8".to_owned(),
                size_bytes: Some(123_456_789),
            },
            Database {
                name: "secret_db".to_owned(),
                owner: "postgres".to_owned(),
                encoding: "SQL_ASCII".to_owned(),
                size_bytes: None,
            },
        ],
    }
}

fn group(db: &str, user: &str, state: &str, count: u32, tx: f64, query: f64) -> ActivityGroup {
    ActivityGroup {
        database: db.to_owned(),
        user: user.to_owned(),
        state: state.to_owned(),
        count,
        max_tx_duration: Duration::from_secs_f64(tx),
        max_query_duration: Duration::from_secs_f64(query),
    }
}
