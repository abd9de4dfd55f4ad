//! Shared fixtures: one PostgreSQL cluster per test binary, roles, clients, target configs and
//! what tests ask the server; `http` talks to daemons (real HTTP clients, daemon configs);
//! `exposition` reads what they serve (samples, values, OpenMetrics validity).

mod exposition;
mod http;

pub use exposition::*;
pub use http::*;

use std::sync::OnceLock;
use std::time::Duration;

use mesa::config::{ChannelBinding, CollectionSettings, SslMode, TargetConfig};
use mesa::gateway::postgres::PostgresSpec;
use mesa::gateway::{CommonSpec, Credentials, DriverSpec, Gateway, TargetSpec};
use mesa::secret::Secret;
use mesa_testkit::{ClusterOptions, PgCluster};
use tokio_postgres::Client;

/// Password of every role the fixtures create (except the superuser's).
pub const ROLE_PASSWORD: &str = "fixture-password-0123456789";

/// The cluster, started on first use with the fixture roles.
pub fn cluster() -> &'static PgCluster {
    static CLUSTER: OnceLock<PgCluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        let cluster = PgCluster::start(ClusterOptions {
            // Wake autovacuum often so its launcher is always present.
            extra_conf: vec![
                "autovacuum_naptime = 1".to_owned(),
                // For the stat_statements collector's test.
                "shared_preload_libraries = 'pg_stat_statements'".to_owned(),
            ],
            ..ClusterOptions::default()
        })
        .unwrap_or_else(|e| panic!("test PostgreSQL did not start: {e}"));
        let p = ROLE_PASSWORD;
        cluster
            .psql(
                "postgres",
                &format!(
                    "CREATE ROLE mesa_monitor LOGIN PASSWORD '{p}' IN ROLE pg_monitor;
                     CREATE ROLE mesa_plain LOGIN PASSWORD '{p}';
                     CREATE ROLE mesa_admin LOGIN CREATEROLE PASSWORD '{p}' IN ROLE pg_signal_backend, pg_read_all_stats;
                     CREATE ROLE app_user LOGIN PASSWORD '{p}';
                     CREATE ROLE sess_monitor LOGIN PASSWORD '{p}' IN ROLE pg_monitor;
                     CREATE ROLE leak_user LOGIN PASSWORD '{p}' IN ROLE pg_monitor;
                     CREATE ROLE no_slots LOGIN CONNECTION LIMIT 0 PASSWORD '{p}';"
                ),
            )
            .unwrap_or_else(|e| panic!("fixture roles: {e}"));
        cluster
    })
}

/// A cluster of a test's own (its scenario would disturb every other test), with `extra_conf`
/// lines; it lives until the test binary exits, when the harness' watchdog removes it.
pub fn own_cluster(extra_conf: &[&str]) -> &'static PgCluster {
    let cluster = PgCluster::start(ClusterOptions {
        extra_conf: extra_conf.iter().map(|s| (*s).to_owned()).collect(),
        ..ClusterOptions::default()
    })
    .unwrap_or_else(|e| panic!("a test's own PostgreSQL did not start: {e}"));
    Box::leak(Box::new(cluster))
}

/// Serialises tests that create roles or lock `pg_authid`, so a lock held by one test cannot
/// make another time out.
pub async fn role_lock() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

/// Creates `name` afresh on the shared cluster: a `pg_monitor` member with the fixture
/// password, a role of the test's own so its logins and sessions are countable.
pub async fn monitor_login(name: &str) {
    monitor_login_on(&superuser("postgres").await, name).await;
}

/// [`monitor_login`] on the server of the superuser session `su`.
pub async fn monitor_login_on(su: &Client, name: &str) {
    let _guard = role_lock().await;
    su.batch_execute(&format!(
        "DROP ROLE IF EXISTS {name}; CREATE ROLE {name} LOGIN PASSWORD '{ROLE_PASSWORD}' IN ROLE pg_monitor"
    ))
    .await
    .expect("role");
}

/// Sends `signal` (`-STOP`, `-CONT`) to `pid` with the system's `kill`.
pub fn kill(signal: &str, pid: u32) {
    let status = std::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill {signal} {pid}");
}

/// Tests that time their daemon's answers (the fault suite's scrape p99) hold this shared;
/// tests that flood a daemon on purpose (hundreds of connections, bcrypt floods) hold it
/// exclusively, so one test's flood never counts against another's latency figures.
static LOAD: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// Shared: this test's timing must not share the machine with a flood.
pub async fn quiet() -> tokio::sync::RwLockReadGuard<'static, ()> {
    LOAD.read().await
}

/// Exclusive: this test floods a daemon.
pub async fn loud() -> tokio::sync::RwLockWriteGuard<'static, ()> {
    LOAD.write().await
}

/// A plain client (no TLS) as `user` on the shared cluster ([`PgCluster::connect`]).
pub async fn client_as(
    user: &str,
    password: &str,
    database: &str,
) -> Result<Client, tokio_postgres::Error> {
    cluster().connect(user, password, database).await
}

/// The backend process id of `client`'s session.
pub async fn backend_pid(client: &Client) -> i32 {
    client
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .expect("pg_backend_pid()")
        .get(0)
}

/// A superuser client on `database`.
pub async fn superuser(database: &str) -> Client {
    let c = cluster();
    client_as(c.superuser(), c.password(), database)
        .await
        .expect("superuser connects")
}

/// A target for the test cluster as `user` with the fixture password.
pub fn target(name: &str, user: &str) -> TargetConfig {
    let c = cluster();
    let password = if user == c.superuser() {
        c.password()
    } else {
        ROLE_PASSWORD
    };
    TargetConfig {
        name: name.to_owned(),
        spec: TargetSpec {
            common: CommonSpec {
                host: c.host().to_owned(),
                port: c.port(),
                database: "postgres".to_owned(),
                monitor: Credentials {
                    user: user.to_owned(),
                    password: Some(Secret::new(password)),
                },
                admin: None,
            },
            driver: DriverSpec::Postgres(PostgresSpec {
                sslmode: SslMode::Disable,
                sslrootcert: None,
                channel_binding: ChannelBinding::Prefer,
            }),
        },
        collection: CollectionSettings::default(),
        grantable_roles: Vec::new(),
    }
}

/// The PostgreSQL settings of a test target.
pub fn pg(t: &mut TargetConfig) -> &mut PostgresSpec {
    match &mut t.spec.driver {
        DriverSpec::Postgres(pg) => pg,
        DriverSpec::Mysql(_) => panic!("not a PostgreSQL target"),
    }
}

/// `target` with a separate admin login.
pub fn with_admin(mut t: TargetConfig, user: &str) -> TargetConfig {
    let c = cluster();
    let password = if user == c.superuser() {
        c.password()
    } else {
        ROLE_PASSWORD
    };
    t.spec.common.admin = Some(Credentials {
        user: user.to_owned(),
        password: Some(Secret::new(password)),
    });
    t
}

/// A gateway for `target`.
pub fn gateway(t: &TargetConfig) -> Gateway {
    Gateway::for_target(&t.spec, t.collection.limits()).expect("gateway builds")
}

/// A loopback port nothing listens on, reserved for the rest of this test process (see
/// `mesa_testkit::ports`): no other test, process or ephemeral bind takes it, so it stays
/// closed, or free for the one server a test starts on it.
/// Asserts that a database size Mesa reported is the server's, read moments apart.
///
/// A database's directory changes on its own between two reads: the relcache init file
/// (`pg_internal.init`, about 160 KiB) is written when a backend logs in and unlinked when any
/// test's DDL on a shared catalog invalidates it. So the bound is 1 % plus 256 KiB.
pub fn assert_size_close(ours: f64, truth: i64) {
    let truth = truth as f64;
    assert!(
        (ours - truth).abs() < truth * 0.01 + 256.0 * 1024.0,
        "size {ours} vs the server's {truth}"
    );
}

pub fn closed_port() -> u16 {
    static HELD: std::sync::Mutex<Vec<mesa_testkit::ports::Reserved>> =
        std::sync::Mutex::new(Vec::new());
    let reserved = mesa_testkit::ports::reserve().expect("a loopback port");
    let port = reserved.port();
    HELD.lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(reserved);
    port
}

/// Polls `probe` every 50 ms until it returns true or `limit` passes; returns the last answer.
pub async fn eventually<F, Fut>(limit: Duration, mut probe: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = tokio::time::Instant::now() + limit;
    loop {
        if probe().await {
            return true;
        }
        if tokio::time::Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Fetches with `fetch` until `done` holds or `limit` passes; the last text and whether it held.
pub async fn poll_until<F, Fut>(
    limit: Duration,
    mut fetch: F,
    done: impl Fn(&str) -> bool,
) -> (bool, String)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = String>,
{
    let until = std::time::Instant::now() + limit;
    loop {
        let text = fetch().await;
        if done(&text) {
            return (true, text);
        }
        if std::time::Instant::now() > until {
            return (false, text);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A session on `client` that runs `sql` in the background; returns its backend pid.
pub async fn background(
    client: Client,
    sql: &'static str,
) -> (
    i32,
    tokio::task::JoinHandle<Result<(), tokio_postgres::Error>>,
) {
    let pid = backend_pid(&client).await;
    let handle = tokio::spawn(async move {
        let r = client.batch_execute(sql).await;
        drop(client);
        r
    });
    (pid, handle)
}

/// A Python tool from the environment `cargo xtask test` sets up.
pub use mesa_testkit::venv::tool as venv_tool;

/// Collection keys (YAML flow mapping entries) that keep a test daemon from visiting any
/// database: the shared cluster holds other tests' databases (some refuse CONNECT, some
/// hang), and a visit is a login of its own, which tests that count logins must not see.
pub const NO_VISITS: &str = "databases: {discover: false}, collectors: {stat_user_tables: false, statio_user_tables: false, stat_user_indexes: false, statio_user_indexes: false}";

/// The backend pids of the sessions of `user` that Mesa opened (`application_name = 'mesa'`).
pub async fn mesa_session_pids(user: &str) -> Vec<i32> {
    superuser("postgres")
        .await
        .query(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'mesa' AND usename = $1",
            &[&user],
        )
        .await
        .expect("pids")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// How many sessions of `user` Mesa opened.
pub async fn mesa_sessions_of(user: &str) -> i64 {
    mesa_session_pids(user).await.len() as i64
}

/// Sessions of `user`, whoever opened them.
pub async fn sessions_of(user: &str) -> i64 {
    superuser("postgres")
        .await
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE usename = $1",
            &[&user],
        )
        .await
        .expect("count")
        .get(0)
}

/// Whether a backend with `pid` exists.
pub async fn pid_exists(pid: i32) -> bool {
    superuser("postgres")
        .await
        .query_opt("SELECT 1 FROM pg_stat_activity WHERE pid = $1", &[&pid])
        .await
        .expect("probe")
        .is_some()
}

/// Whether a role named `name` exists.
pub async fn role_exists(name: &str) -> bool {
    superuser("postgres")
        .await
        .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&name])
        .await
        .expect("probe")
        .is_some()
}

/// Whether backend `pid` is running a statement.
pub async fn is_active(pid: i32) -> bool {
    superuser("postgres")
        .await
        .query_opt(
            "SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND state = 'active'",
            &[&pid],
        )
        .await
        .expect("probe")
        .is_some()
}

/// How many roles exist.
pub async fn role_count() -> i64 {
    superuser("postgres")
        .await
        .query_one("SELECT count(*) FROM pg_roles", &[])
        .await
        .expect("count")
        .get(0)
}

/// A pid the tests know is valid (positive), as the gateway takes it.
pub fn backend(pid: i32) -> mesa::gateway::BackendRef {
    mesa::gateway::BackendRef::pid(mesa::gateway::Pid::new(pid).expect("a positive pid"))
}

/// A database, schema or table name, as the gateway takes it.
pub fn object(name: &str) -> mesa::gateway::ObjectName {
    mesa::gateway::ObjectName::parse("name", name).expect("a valid name")
}

/// A session page size, as the gateway takes it.
pub fn limit(n: u32) -> mesa::gateway::SessionLimit {
    mesa::gateway::SessionLimit::new(n).expect("a valid limit")
}

/// Creates database `name` (dropping a leftover of an earlier run) and returns a superuser
/// client connected to it.
pub async fn fresh_database(name: &str) -> Client {
    // From template0, which nobody connects to (a copy of template1 fails while any session
    // is connected to it).
    let admin = superuser("postgres").await;
    for statement in [
        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        format!("CREATE DATABASE {name} TEMPLATE template0"),
    ] {
        admin
            .batch_execute(&statement)
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e:?}"));
    }
    superuser(name).await
}

/// Lines of the server log after byte `from` that contain `marker` (a trojan's `RAISE LOG`).
pub fn log_lines_since(from: usize, marker: &str) -> Vec<String> {
    cluster()
        .server_log()
        .get(from..)
        .unwrap_or("")
        .lines()
        .filter(|l| l.contains(marker))
        .map(str::to_owned)
        .collect()
}

/// A fresh database `db` owned by a fresh login role `role` with the fixture password,
/// created from template0 with `options` (e.g. an encoding); leftovers of an earlier run are
/// dropped first.
pub async fn tenant_database(su: &Client, db: &str, role: &str, options: &str) {
    drop_tenant(su, db, role).await;
    for sql in [
        format!("CREATE ROLE {role} LOGIN PASSWORD '{ROLE_PASSWORD}'"),
        format!("CREATE DATABASE {db} OWNER {role} TEMPLATE template0 {options}"),
    ] {
        su.batch_execute(&sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

/// Drops `db` and `role` if they exist.
pub async fn drop_tenant(su: &Client, db: &str, role: &str) {
    for sql in [
        format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
        format!("DROP ROLE IF EXISTS {role}"),
    ] {
        su.batch_execute(&sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

/// `t` with the stat_statements collector on, and room for every test's statements (they
/// share the server's one pg_stat_statements).
pub fn with_stat_statements(mut t: TargetConfig) -> TargetConfig {
    t.collection
        .collectors
        .selection
        .set(
            Some(mesa::gateway::Driver::Postgres),
            "stat_statements",
            true,
        )
        .expect("known collector");
    t.collection.collectors.max_statements = 10_000;
    t
}
