//! Inspector and health against the real server: databases, tables, columns, server health.

use std::time::{Duration, Instant, UNIX_EPOCH};

use mesa::gateway::{Administrator, Column, Deadline, FailureReason, Inspector, TableKind};

use crate::support::*;

const D: Duration = Duration::from_secs(10);

#[tokio::test]
async fn health_matches_the_server() {
    let su = superuser("postgres").await;
    let g = gateway(&target("health", "mesa_monitor"));
    let h = g.server_health(Deadline::after(D)).await.expect("health");
    let show = |name: &'static str| {
        let su = &su;
        async move {
            let v: String = su
                .query_one(&format!("SHOW {name}"), &[])
                .await
                .expect("show")
                .get(0);
            v.parse::<u32>().expect("number")
        }
    };
    assert_eq!(h.max_connections, show("max_connections").await);
    assert_eq!(
        h.superuser_reserved_connections,
        show("superuser_reserved_connections").await
    );
    let row = su
        .query_one(
            "SELECT version(), extract(epoch FROM pg_postmaster_start_time())::float8, current_setting('server_version_num')::int",
            &[],
        )
        .await
        .expect("facts");
    assert_eq!(h.version, row.get::<_, String>(0));
    let started: f64 = row.get(1);
    let ours = h
        .started_at
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64();
    assert!(
        (ours - started).abs() < 0.001,
        "start time {ours} vs {started}"
    );
    let num: i32 = row.get(2);
    assert_eq!(
        h.short_version,
        format!("{}.{}.0", num / 10000, num % 10000)
    );
    assert!(h.uptime > Duration::ZERO);
}

#[tokio::test]
async fn unreachable_target_fails_fast_with_reason() {
    let mut t = target("closed", "mesa_monitor");
    t.spec.common.port = closed_port();
    let started = Instant::now();
    let err = gateway(&t)
        .server_health(Deadline::after(D))
        .await
        .expect_err("nothing listens");
    assert_eq!(err.reason(), FailureReason::Unreachable, "{err}");
    println!("closed port: unreachable after {:?}", started.elapsed());
    assert!(started.elapsed() < t.collection.connect_timeout + Duration::from_secs(1));
}

#[tokio::test]
async fn databases_report_owner_encoding_and_size() {
    let su = superuser("postgres").await;
    su.batch_execute("CREATE ROLE db_owner_1 NOLOGIN")
        .await
        .expect("role");
    su.batch_execute(
        "CREATE DATABASE inspect_sized OWNER db_owner_1 ENCODING 'UTF8' TEMPLATE template0",
    )
    .await
    .expect("database");
    let inside = superuser("inspect_sized").await;
    inside
        .batch_execute("CREATE TABLE filler AS SELECT g, repeat('x', 200) AS pad FROM generate_series(1, 20000) g;")
        .await
        .expect("fill");

    let g = gateway(&target("dbs", "mesa_monitor"));
    let dbs = g.databases(Deadline::after(D)).await.expect("databases");
    let db = dbs
        .iter()
        .find(|d| d.name == "inspect_sized")
        .expect("listed");
    assert_eq!(db.owner, "db_owner_1");
    assert_eq!(db.encoding, "UTF8");
    let truth: i64 = su
        .query_one("SELECT pg_database_size('inspect_sized')", &[])
        .await
        .expect("size")
        .get(0);
    let ours = db.size_bytes.expect("pg_monitor may read sizes") as f64;
    assert_size_close(ours, truth);
    assert!(
        ours > 4_000_000.0,
        "the 20 000-row filler is counted: {ours}"
    );
    assert!(
        dbs.iter().all(|d| !d.name.starts_with("template")),
        "templates are excluded"
    );
}

#[tokio::test]
async fn forbidden_database_has_unknown_size_and_the_call_succeeds() {
    let su = superuser("postgres").await;
    su.batch_execute("CREATE DATABASE inspect_forbidden TEMPLATE template0")
        .await
        .expect("database");
    su.batch_execute("REVOKE CONNECT ON DATABASE inspect_forbidden FROM PUBLIC")
        .await
        .expect("revoke");
    // mesa_plain has no pg_monitor, so CONNECT decides.
    let g = gateway(&target("forbidden", "mesa_plain"));
    let dbs = g
        .databases(Deadline::after(D))
        .await
        .expect("a forbidden database must not fail the call");
    let forbidden = dbs
        .iter()
        .find(|d| d.name == "inspect_forbidden")
        .expect("listed");
    assert_eq!(forbidden.size_bytes, None);
    let allowed = dbs.iter().find(|d| d.name == "postgres").expect("listed");
    assert!(allowed.size_bytes.is_some_and(|s| s > 0));
}

#[tokio::test]
async fn tables_and_columns_of_a_schema_come_back_exactly() {
    let su = superuser("postgres").await;
    su.batch_execute("CREATE DATABASE inspect_shop TEMPLATE template0")
        .await
        .expect("db");
    let shop = superuser("inspect_shop").await;
    shop.batch_execute(
        "CREATE SCHEMA sales;
         CREATE TABLE sales.orders (
             id bigserial PRIMARY KEY,
             customer text NOT NULL,
             total numeric(10,2) DEFAULT 0,
             tags varchar(40)[],
             created timestamptz NOT NULL DEFAULT now()
         );
         CREATE VIEW sales.big_orders AS SELECT id, total FROM sales.orders WHERE total > 100;
         GRANT USAGE ON SCHEMA sales TO mesa_monitor;
         GRANT SELECT ON ALL TABLES IN SCHEMA sales TO mesa_monitor;",
    )
    .await
    .expect("schema");

    let g = gateway(&target("shop", "mesa_monitor"));
    let tables = g
        .tables(&object("inspect_shop"), Deadline::after(D))
        .await
        .expect("tables");
    let listed: Vec<(&str, &str, TableKind)> = tables
        .iter()
        .map(|t| (t.schema.as_str(), t.name.as_str(), t.kind))
        .collect();
    assert_eq!(
        listed,
        vec![
            ("sales", "big_orders", TableKind::View),
            ("sales", "orders", TableKind::Table)
        ]
    );

    let columns = g
        .columns(
            &object("inspect_shop"),
            &object("sales"),
            &object("orders"),
            Deadline::after(D),
        )
        .await
        .expect("columns");
    assert_eq!(
        rows(&columns),
        vec![
            (
                1,
                "id",
                "bigint",
                false,
                Some("nextval('sales.orders_id_seq'::regclass)")
            ),
            (2, "customer", "text", false, None),
            (3, "total", "numeric(10,2)", true, Some("0")),
            (4, "tags", "character varying(40)[]", true, None),
            (
                5,
                "created",
                "timestamp with time zone",
                false,
                Some("now()")
            ),
        ]
    );

    let missing = g
        .columns(
            &object("inspect_shop"),
            &object("sales"),
            &object("nope"),
            Deadline::after(D),
        )
        .await
        .expect_err("no such table");
    assert_eq!(missing.reason(), FailureReason::NotFound);
    let no_db = g
        .tables(&object("inspect_missing_db"), Deadline::after(D))
        .await
        .expect_err("no such db");
    assert_eq!(no_db.reason(), FailureReason::NotFound, "{no_db}");
}

#[tokio::test]
async fn a_least_privilege_role_sees_the_structure_as_psql_does() {
    // mesa_monitor as deploy/postgres/roles.sql creates it: pg_monitor, no grant on any table.
    superuser("postgres")
        .await
        .batch_execute("CREATE DATABASE inspect_private")
        .await
        .expect("db");
    let db = superuser("inspect_private").await;
    db.batch_execute(
        "CREATE SCHEMA vault;
         REVOKE ALL ON SCHEMA public FROM PUBLIC;
         CREATE TABLE vault.secrets (id int PRIMARY KEY, body text NOT NULL DEFAULT 'x');
         CREATE TABLE vault.events (at date NOT NULL, what text) PARTITION BY RANGE (at);
         CREATE TABLE vault.events_2026 PARTITION OF vault.events
             FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
         CREATE MATERIALIZED VIEW vault.counts AS SELECT count(*) AS n FROM vault.secrets;
         CREATE VIEW vault.recent AS SELECT id FROM vault.secrets;",
    )
    .await
    .expect("objects");
    let g = gateway(&target("private", "mesa_monitor"));
    let tables = g
        .tables(&object("inspect_private"), Deadline::after(D))
        .await
        .expect("tables");
    let listed: Vec<(&str, &str, TableKind)> = tables
        .iter()
        .map(|t| (t.schema.as_str(), t.name.as_str(), t.kind))
        .collect();
    assert_eq!(
        listed,
        vec![
            ("vault", "counts", TableKind::MaterializedView),
            ("vault", "events", TableKind::PartitionedTable),
            ("vault", "events_2026", TableKind::Table),
            ("vault", "recent", TableKind::View),
            ("vault", "secrets", TableKind::Table),
        ],
        "without any privilege on the tables, as \\dt would list them"
    );
    let columns = g
        .columns(
            &object("inspect_private"),
            &object("vault"),
            &object("secrets"),
            Deadline::after(D),
        )
        .await
        .expect("columns");
    assert_eq!(
        rows(&columns),
        vec![
            (1, "id", "integer", false, None),
            (2, "body", "text", false, Some("'x'::text")),
        ]
    );
    // And nothing was read from the tables themselves: no privilege error anywhere.
    let denied = g
        .columns(
            &object("inspect_private"),
            &object("vault"),
            &object("missing"),
            Deadline::after(D),
        )
        .await
        .expect_err("no such table");
    assert_eq!(denied.reason(), FailureReason::NotFound);
}

/// Columns as (position, name, type, nullable, default), for comparing with a literal.
fn rows(columns: &[Column]) -> Vec<(u32, &str, &str, bool, Option<&str>)> {
    columns
        .iter()
        .map(|c| {
            (
                c.position,
                c.name.as_str(),
                c.data_type.as_str(),
                c.nullable,
                c.default.as_deref(),
            )
        })
        .collect()
}
