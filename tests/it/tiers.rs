//! Tiers against the real server (issue 19, section 3): settings are read again only when the
//! server's configuration changed (counted in `pg_stat_statements`), a reload is served by the
//! next collection, and a collector on a longer interval serves its first result with its
//! time, and a collection is one transaction of one statement per collector (no savepoints).

use std::time::Duration;

use mesa::collectors::{Collect, Collection, Databases, Options, TargetCollector, Value};
use mesa::gateway::{Deadline, Driver};

use crate::support::*;

async fn collect(collector: &TargetCollector) -> Collection {
    collector
        .collect(Deadline::after(Duration::from_secs(10)))
        .await
        .expect("the collection runs")
}

/// The value of `log_autovacuum_min_duration` the settings collector served.
fn autovacuum_log_seconds(c: &Collection) -> Option<f64> {
    let harvest = c.outcome("settings")?.result.as_ref().ok()?;
    let family = harvest
        .families
        .iter()
        .find(|f| f.name == "pg_settings_log_autovacuum_min_duration_seconds")?;
    family.series.first().map(|s| match s.value {
        Value::Int(n) => n as f64,
        Value::Float(f) => f,
    })
}

/// Calls by `role` of the statements whose text is `LIKE pattern`, from `pg_stat_statements`.
async fn calls_like(role: &str, pattern: &str) -> i64 {
    superuser("postgres")
        .await
        .query_one(
            "SELECT coalesce(sum(s.calls), 0)::int8 FROM pg_stat_statements s
               JOIN pg_roles r ON r.oid = s.userid
              WHERE r.rolname = $1 AND s.query LIKE $2",
            &[&role, &pattern],
        )
        .await
        .expect("pg_stat_statements")
        .get(0)
}

/// Executions of the settings statement by `role`.
async fn settings_reads(role: &str) -> i64 {
    calls_like(role, "%FROM pg_catalog.pg_settings s%").await
}

/// `pg_stat_statements` loaded in the test database, and a monitoring login `name` (made once,
/// under the role lock) whose statements no other test runs.
async fn counted_monitor(name: &str) {
    let su = superuser("postgres").await;
    su.batch_execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        .await
        .expect("extension");
    let _serial = role_lock().await;
    su.batch_execute(&format!(
        "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{name}') THEN
           CREATE ROLE {name} LOGIN PASSWORD '{ROLE_PASSWORD}' IN ROLE pg_monitor; END IF; END $$"
    ))
    .await
    .expect("role");
}

#[tokio::test]
async fn settings_are_read_once_until_a_reload_and_the_reload_is_served_at_once() {
    counted_monitor("tier_monitor").await;
    let su = superuser("postgres").await;
    let collector = TargetCollector::new(
        std::sync::Arc::new(gateway(&target("tiers", "tier_monitor"))),
        Options::default(),
        Databases::default(),
        Duration::from_secs(1),
    );
    let first = collect(&collector).await;
    let before = autovacuum_log_seconds(&first).expect("settings served");
    for _ in 0..4 {
        let again = collect(&collector).await;
        let settings = again
            .outcome("settings")
            .expect("the kept result is served");
        assert_eq!(
            settings.collected_at,
            first.outcome("settings").and_then(|s| s.collected_at),
            "served from the first collection"
        );
    }
    assert_eq!(
        settings_reads("tier_monitor").await,
        1,
        "five collections, no configuration change: one read"
    );

    // A reload: the first collection after the postmaster re-read its files serves it.
    su.batch_execute("ALTER SYSTEM SET log_autovacuum_min_duration = '4242ms'")
        .await
        .expect("alter system");
    su.batch_execute("SELECT pg_reload_conf()")
        .await
        .expect("reload");
    let until = std::time::Instant::now() + Duration::from_secs(10);
    let (served, last) = loop {
        let c = collect(&collector).await;
        if autovacuum_log_seconds(&c) == Some(4.242) {
            break (true, c);
        }
        if std::time::Instant::now() > until {
            break (false, c);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    su.batch_execute("ALTER SYSTEM RESET log_autovacuum_min_duration")
        .await
        .expect("alter system");
    su.batch_execute("SELECT pg_reload_conf()")
        .await
        .expect("reload");
    assert!(
        served,
        "the reloaded value was not served: {:?} (before {before})",
        autovacuum_log_seconds(&last)
    );
    assert_eq!(
        settings_reads("tier_monitor").await,
        2,
        "read again once, on the change"
    );
}

#[tokio::test]
async fn a_collector_on_an_interval_serves_its_first_result_with_its_time() {
    let mut options = Options::default();
    options
        .intervals
        .set(
            Some(Driver::Postgres),
            "database",
            Duration::from_secs(3600),
        )
        .expect("known collector");
    let collector = TargetCollector::new(
        std::sync::Arc::new(gateway(&target("tiers_interval", "mesa_monitor"))),
        options,
        Databases::default(),
        Duration::from_secs(1),
    );
    let first = collect(&collector).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let second = collect(&collector).await;
    let at = |c: &Collection, name: &str| c.outcome(name).and_then(|o| o.collected_at);
    assert!(at(&first, "database").is_some());
    assert_eq!(at(&second, "database"), at(&first, "database"), "kept");
    assert!(
        at(&second, "health") > at(&first, "health"),
        "health runs every time"
    );
    assert!(at(&second, "activity") > at(&first, "activity"));
    // The kept result carries no families: the store takes its lines from the encoding of
    // the collection that read it, so /probe still serves every database's size.
    assert!(
        second
            .outcome("database")
            .and_then(|o| o.result.as_ref().ok())
            .is_some_and(|h| h.families.is_empty())
    );
    let store = mesa::metrics::SnapshotStore::new();
    let snapshot = |c: &Collection| mesa::snapshot::TargetSnapshot {
        target: "tiers_interval".to_owned(),
        driver: Driver::Postgres,
        finished_at: std::time::SystemTime::now(),
        duration: Duration::ZERO,
        result: Ok(c.clone()),
        last_success: Some(std::time::SystemTime::now()),
    };
    store.put(snapshot(&first));
    let first_text = store.probe("tiers_interval").expect("stored");
    store.put(snapshot(&second));
    let text = store.probe("tiers_interval").expect("stored");
    let sizes = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| l.starts_with("pg_database_size_bytes{"))
            .map(str::to_owned)
            .collect()
    };
    assert!(!sizes(&first_text).is_empty(), "{first_text}");
    assert_eq!(
        sizes(&text),
        sizes(&first_text),
        "served from the first collection"
    );
    // The exposition says how old each served result is.
    let first_at = at(&first, "database")
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs_f64())
        .expect("a time");
    let served = value(
        &text,
        "mesa_collector_last_success_timestamp_seconds",
        &[("collector", "database")],
    )
    .expect("the family");
    assert!((served - first_at).abs() < 1e-3, "{served} vs {first_at}");
}

#[tokio::test]
async fn a_collection_is_one_transaction_of_one_statement_per_collector_without_savepoints() {
    // The load on the monitored server (issue 19, section 4): a savepoint per collector was a
    // statement of its own, two thirds of a collection's statements.
    counted_monitor("stmt_monitor").await;
    let collector = TargetCollector::new(
        std::sync::Arc::new(gateway(&target("stmts", "stmt_monitor"))),
        Options::default(),
        Databases::default(),
        Duration::from_secs(1),
    );
    let mut ran = 0;
    for _ in 0..3 {
        let c = collect(&collector).await;
        assert!(c.outcomes.iter().all(|o| o.result.is_ok()), "{c:?}");
        ran = c.outcomes.iter().filter(|o| !o.from_earlier).count();
    }
    assert_eq!(calls_like("stmt_monitor", "SAVEPOINT%").await, 0);
    assert_eq!(calls_like("stmt_monitor", "BEGIN%").await, 3);
    assert_eq!(calls_like("stmt_monitor", "COMMIT%").await, 3);
    // Each collector's statement once per collection, nothing else but the reads before the
    // transaction (discovery, the configuration's change key) and the first collection's
    // collectors on longer intervals.
    let all = calls_like("stmt_monitor", "%").await;
    assert!(ran >= 10, "{ran} collectors ran");
    assert!(
        all <= 3 * (ran as i64 + 2 + 2) + 10,
        "{all} statements for 3 collections of {ran} collectors"
    );
}
