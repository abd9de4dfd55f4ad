//! The kept collection session (issue 19, section 4): one login per target instead of one per
//! collection, a backend the server ended between collections replaced without a failed
//! collection, `session: ephemeral` as before, and nothing left open after shutdown.

use std::time::Duration;

use mesa::app::{App, DEFAULT_GRACE_PERIOD};

use crate::support::*;

/// A daemon collecting `name` as `user` every 300 ms, without database visits (they log
/// in on their own), with `session`.
fn config(name: &str, user: &str, session: &str) -> mesa::config::Config {
    daemon_config(&format!(
        "collection: {{interval: 300ms, timeout: 250ms, session: {session}, databases: {{discover: false}}, collectors: {{stat_user_tables: false, statio_user_tables: false, stat_user_indexes: false, statio_user_indexes: false}}}}
web: {{listen_address: '127.0.0.1:0'}}
targets:
  - {{name: {name}, driver: postgres, host: '{{host}}', port: {{port}}, username: {user}, password_file: fixture.pw, sslmode: disable}}
"
    ))
}

/// Logins of `user` in the server log after byte `from`.
fn logins(from: usize, user: &str) -> usize {
    log_lines_since(from, &format!("connection authorized: user={user} ")).len()
}

/// How many collections of `name` succeeded, from the daemon's own counters: the timestamps
/// it has stored.
async fn collections_seen(app: &App, name: &str, n: usize) -> bool {
    let mut seen = std::collections::BTreeSet::new();
    let until = std::time::Instant::now() + Duration::from_secs(15);
    while seen.len() < n && std::time::Instant::now() < until {
        if let Some(s) = app.store().get(name)
            && s.up()
        {
            seen.insert(s.finished_at);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    seen.len() >= n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_session_logs_in_once_and_survives_its_backend_being_ended() {
    monitor_login("kept_user").await;
    let from = cluster().server_log().len();
    let app = App::start(config("kept", "kept_user", "kept"))
        .await
        .expect("daemon starts");
    assert!(collections_seen(&app, "kept", 8).await, "eight collections");
    assert_eq!(
        logins(from, "kept_user"),
        1,
        "one login for eight collections"
    );
    assert_eq!(sessions_of("kept_user").await, 1);

    // The server ends the idle kept backend between collections: the next collection notices
    // before sending anything and logs in again; no collection fails.
    let su = superuser("postgres").await;
    su.batch_execute(
        "SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'kept_user'",
    )
    .await
    .expect("terminate");
    assert!(collections_seen(&app, "kept", 4).await, "collections go on");
    assert_eq!(logins(from, "kept_user"), 2, "one more login");
    let (_, _, text) = http_get(app.metrics_addr(), "/metrics").await;
    assert_eq!(
        sum(&text, "mesa_collect_failures_total", &[("server", "kept")]),
        0.0,
        "{text}"
    );
    app.shutdown(DEFAULT_GRACE_PERIOD).await.expect("shutdown");
    assert!(
        eventually(Duration::from_secs(3), || async {
            sessions_of("kept_user").await == 0
        })
        .await,
        "shutdown closes the kept session"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ephemeral_session_logs_in_at_every_collection() {
    monitor_login("ephemeral_user").await;
    let from = cluster().server_log().len();
    let app = App::start(config("ephemeral", "ephemeral_user", "ephemeral"))
        .await
        .expect("daemon starts");
    assert!(
        collections_seen(&app, "ephemeral", 5).await,
        "five collections"
    );
    app.shutdown(DEFAULT_GRACE_PERIOD).await.expect("shutdown");
    assert!(logins(from, "ephemeral_user") >= 5);
    assert_eq!(sessions_of("ephemeral_user").await, 0);
}

/// The names the server logged for `user`'s executions of statements containing `marker`
/// (tokio-postgres names each prepared statement `sN`, counting per session).
fn executed_names(from: usize, user: &str, marker: &str) -> std::collections::BTreeSet<String> {
    log_lines_since(from, &format!(" {user}@"))
        .iter()
        .filter(|l| l.contains(marker))
        .filter_map(|l| {
            let (_, rest) = l.split_once("execute ")?;
            let (name, _) = rest.split_once(':')?;
            Some(name.to_owned())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_session_prepares_each_statement_once_and_health_alone_is_one_round_trip() {
    monitor_login("kept_cache").await;
    let from = cluster().server_log().len();
    let app = App::start(config("cache", "kept_cache", "kept"))
        .await
        .expect("daemon starts");
    assert!(collections_seen(&app, "cache", 6).await, "six collections");
    app.shutdown(DEFAULT_GRACE_PERIOD).await.expect("shutdown");
    // The health statement runs at every collection: one prepared statement for all six
    // (re-preparing would name a new one each time). The log shows a statement's first line.
    let names = executed_names(from, "kept_cache", "s.short_version");
    let lines = log_lines_since(from, " kept_cache@");
    assert_eq!(names.len(), 1, "{names:?} {lines:#?}");
    let runs = log_lines_since(from, " kept_cache@")
        .iter()
        .filter(|l| l.contains("s.short_version") && l.contains("execute "))
        .count();
    assert!(runs >= 6, "{runs} executions");

    // Health alone: no transaction around its one statement.
    monitor_login("kept_alone").await;
    let from = cluster().server_log().len();
    let app = App::start(daemon_config(
        "collection: {interval: 300ms, timeout: 250ms, collectors: {activity: false, database: false, stat_database: false, bgwriter: false, locks: false, replication: false, replication_slots: false, stat_replication: false, wraparound: false, settings: false, stat_user_tables: false, statio_user_tables: false, stat_user_indexes: false, statio_user_indexes: false, archiver: false, stat_wal: false, stat_io: false, wait_events: false, progress_vacuum: false, database_conflicts: false, subscription: false}}
web: {listen_address: '127.0.0.1:0'}
targets:
  - {name: alone, driver: postgres, host: '{host}', port: {port}, username: kept_alone, password_file: fixture.pw, sslmode: disable}
",
    ))
    .await
    .expect("daemon starts");
    assert!(collections_seen(&app, "alone", 4).await, "four collections");
    app.shutdown(DEFAULT_GRACE_PERIOD).await.expect("shutdown");
    let lines = log_lines_since(from, " kept_alone@");
    let health = lines.iter().filter(|l| l.contains("execute ")).count();
    let begins = lines.iter().filter(|l| l.contains("BEGIN")).count();
    assert!(health >= 4, "{lines:#?}");
    assert_eq!(begins, 0, "{lines:#?}");
    assert_eq!(
        executed_names(from, "kept_alone", "s.short_version").len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_visit_to_the_targets_own_database_borrows_the_kept_session() {
    monitor_login("kept_visit").await;
    let from = cluster().server_log().len();
    let app = App::start(daemon_config(
        "collection: {interval: 300ms, timeout: 250ms, databases: {include: ['^postgres$'], interval: 300ms}}
web: {listen_address: '127.0.0.1:0'}
targets:
  - {name: own, driver: postgres, host: '{host}', port: {port}, database: postgres, username: kept_visit, password_file: fixture.pw, sslmode: disable}
",
    ))
    .await
    .expect("daemon starts");
    // Visits of `postgres`, told apart by their timestamps.
    let mut visits = std::collections::BTreeSet::new();
    let mut text = String::new();
    let until = std::time::Instant::now() + Duration::from_secs(15);
    while visits.len() < 5 && std::time::Instant::now() < until {
        text = http_get(app.metrics_addr(), "/metrics").await.2;
        let at = sum(
            &text,
            "mesa_database_last_visit_timestamp_seconds",
            &[("server", "own"), ("datname", "postgres")],
        );
        if at > 0.0 {
            visits.insert(at.to_bits());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(visits.len() >= 5, "five visits: {text}");
    assert_eq!(
        sum(
            &text,
            "mesa_database_up",
            &[("server", "own"), ("datname", "postgres")]
        ),
        1.0,
        "{text}"
    );
    app.shutdown(DEFAULT_GRACE_PERIOD).await.expect("shutdown");
    // Collections and visits alike ran on the one kept session.
    assert_eq!(
        logins(from, "kept_visit"),
        1,
        "{:#?}",
        log_lines_since(from, " kept_visit@")
    );
}
