//! Users' own SQL as metrics (issue 20, sections 1 to 3), live, one file per concern:
//! postgres_exporter's names and `cache_seconds` (`compat.rs`, against Debian's
//! postgres_exporter 0.11 on the same file), the guarantees (`guarantees.rs`: writes refused,
//! each failing query alone, `max_rows`, label bytes through the strict parser and a real
//! Prometheus), and the operator's side (`operator.rs`: a reload that keeps the running set,
//! `--check-config --live`). This file holds what they share.

mod compat;
mod guarantees;
mod operator;

use std::path::{Path, PathBuf};
use std::time::Duration;

use mesa::app::App;

use crate::support::*;

/// A directory of its own for a test's files, with the fixture password file.
pub(super) fn workdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mesa-it-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("fixture.pw"), ROLE_PASSWORD).expect("password file");
    dir
}

/// The config text of one target `name` on `database` with the queries file `queries`.
pub(super) fn config_text(
    name: &str,
    database: &str,
    queries: &Path,
    collection: &str,
    databases: &str,
) -> String {
    let c = cluster();
    format!(
        "collection: {{{collection}, queries: ['{}']}}
web: {{listen_address: '127.0.0.1:0'}}
targets:
  - {{name: {name}, driver: postgres, host: '{}', port: {}, database: {database}, username: mesa_monitor, password_file: fixture.pw, sslmode: disable, databases: {databases}}}
",
        queries.display(),
        c.host(),
        c.port()
    )
}

pub(super) fn load(
    dir: &Path,
    text: &str,
) -> Result<mesa::config::Config, mesa::config::ConfigError> {
    let path = dir.join("mesa.yml");
    std::fs::write(&path, text).expect("config");
    mesa::config::load(&path)
}

pub(super) async fn metrics(app: &App) -> String {
    http_get(app.metrics_addr(), "/metrics").await.2
}

/// A daemon with one target `server` on `database`, the queries file `queries_text` (written
/// to the test's own directory), `collection` keys and `databases`; once `ready` holds for its
/// exposition, the directory, the daemon and that exposition.
pub(super) async fn daemon(
    tag: &str,
    server: &str,
    database: &str,
    queries_text: &str,
    collection: &str,
    databases: &str,
    ready: impl Fn(&str) -> bool,
) -> (PathBuf, App, String) {
    let dir = workdir(tag);
    let queries = dir.join("queries.yaml");
    std::fs::write(&queries, queries_text).expect("queries");
    let config = load(
        &dir,
        &config_text(server, database, &queries, collection, databases),
    )
    .expect("config loads");
    let app = App::start(config).await.expect("daemon starts");
    let (ok, text) = poll_until(Duration::from_secs(20), || metrics(&app), ready).await;
    assert!(ok, "user queries served:\n{text}");
    (dir, app, text)
}

/// The value of `name` with `server` and `labels` in `text`.
pub(super) fn of(text: &str, server: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut all = vec![("server", server)];
    all.extend_from_slice(labels);
    value(text, name, &all)
}

pub(super) async fn app_database(db: &str) {
    let su = fresh_database(db).await;
    su.batch_execute(
        "CREATE SCHEMA app;
         CREATE TABLE app.jobs (queue text, retries int, took_ms numeric, took text);
         INSERT INTO app.jobs VALUES ('mail', 1, 1500, '1.5s'), ('mail', 2, 250, '250ms'), ('pdf', 0, 120000, '2m');
         ANALYZE app.jobs;
         GRANT USAGE ON SCHEMA app TO mesa_monitor;
         GRANT SELECT ON ALL TABLES IN SCHEMA app TO mesa_monitor;",
    )
    .await
    .expect("app schema");
}
