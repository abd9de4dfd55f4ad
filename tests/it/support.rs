//! Shared fixtures: one PostgreSQL cluster per test binary, roles, clients and target configs.

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

/// Serialises tests that create roles or lock `pg_authid`, so a lock held by one test cannot
/// make another time out.
pub async fn role_lock() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
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
    let collection = CollectionSettings::default();
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
                limits: collection.limits(),
            },
            driver: DriverSpec::Postgres(PostgresSpec {
                sslmode: SslMode::Disable,
                sslrootcert: None,
                channel_binding: ChannelBinding::Prefer,
            }),
        },
        collection,
    }
}

/// The PostgreSQL settings of a test target.
pub fn pg(t: &mut TargetConfig) -> &mut PostgresSpec {
    match &mut t.spec.driver {
        DriverSpec::Postgres(pg) => pg,
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
    Gateway::for_target(&t.spec).expect("gateway builds")
}

/// A loopback port nothing listens on, reserved for the rest of this test process (see
/// `mesa_testkit::ports`): no other test, process or ephemeral bind takes it, so it stays
/// closed, or free for the one server a test starts on it.
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

/// One HTTP/1.1 GET with a real client (hyper); returns status, content type and body.
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String, String) {
    try_http_get(addr, path)
        .await
        .unwrap_or_else(|| panic!("GET http://{addr}{path} failed"))
}

/// As [`http_get`], `None` when the connection or the exchange fails.
pub async fn try_http_get(addr: std::net::SocketAddr, path: &str) -> Option<(u16, String, String)> {
    let (status, headers, body) = exchange(addr, "GET", path, &[], None).await?;
    let content_type = headers
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    Some((
        status,
        content_type,
        String::from_utf8_lossy(&body).into_owned(),
    ))
}

/// One HTTP/1.1 exchange with a real client (hyper) on a fresh connection: status, headers
/// and the raw body; `None` when the connection or the exchange fails.
pub async fn exchange(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(hyper::header::HeaderName, String)],
    body: Option<&str>,
) -> Option<(u16, hyper::HeaderMap, hyper::body::Bytes)> {
    use http_body_util::BodyExt as _;
    let stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .ok()?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut builder = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, addr.to_string());
    for (name, value) in headers {
        builder = builder.header(name, value);
    }
    let request = builder
        .body(http_body_util::Full::new(hyper::body::Bytes::from(
            body.unwrap_or("").to_owned(),
        )))
        .ok()?;
    let response = sender.send_request(request).await.ok()?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.ok()?.to_bytes();
    Some((status, headers, body))
}

/// One parsed exposition sample.
#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    /// The value of label `key`.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses the samples of an exposition (comments skipped; label values unescaped).
pub fn samples(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (name, rest) = match line.find(['{', ' ']) {
            Some(i) => line.split_at(i),
            None => continue,
        };
        let mut labels = Vec::new();
        let mut rest = rest;
        if let Some(body) = rest.strip_prefix('{') {
            let mut chars = body.char_indices();
            let mut key = String::new();
            let mut end = 0;
            while let Some((i, c)) = chars.next() {
                match c {
                    '}' => {
                        end = i + 1;
                        break;
                    }
                    ',' => {}
                    '=' => {
                        chars.next(); // opening quote
                        let mut value = String::new();
                        while let Some((_, c)) = chars.next() {
                            match c {
                                '\\' => {
                                    if let Some((_, e)) = chars.next() {
                                        value.push(if e == 'n' { '\n' } else { e });
                                    }
                                }
                                '"' => break,
                                c => value.push(c),
                            }
                        }
                        labels.push((std::mem::take(&mut key), value));
                    }
                    c => key.push(c),
                }
            }
            rest = &body[end..];
        }
        let value = rest
            .trim()
            .split(' ')
            .next()
            .unwrap_or("")
            .parse()
            .unwrap_or(f64::NAN);
        out.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    out
}

/// The value of the one sample named `name` whose labels include `labels`.
pub fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let found: Vec<Sample> = samples(text)
        .into_iter()
        .filter(|s| s.name == name && labels.iter().all(|(k, v)| s.label(k) == Some(*v)))
        .collect();
    match found.as_slice() {
        [one] => Some(one.value),
        [] => None,
        many => panic!(
            "{} samples of {name} match {labels:?}: {many:?}",
            many.len()
        ),
    }
}

/// The sum of the samples named `name` whose labels include `labels` (0 when there are none).
pub fn sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    samples(text)
        .iter()
        .filter(|s| s.name == name && labels.iter().all(|(k, v)| s.label(k) == Some(*v)))
        .map(|s| s.value)
        .sum()
}

/// A Python tool from the environment `cargo xtask test` sets up.
pub use mesa_testkit::venv::tool as venv_tool;

/// Fails unless PyPI's `prometheus-client` strict OpenMetrics parser accepts `text`.
pub fn assert_openmetrics_valid(text: &str) {
    use std::io::Write as _;
    let script = "import sys\n\
from prometheus_client.openmetrics.parser import text_string_to_metric_families\n\
families = list(text_string_to_metric_families(sys.stdin.read()))\n\
print(len(families))\n";
    let mut child = std::process::Command::new(venv_tool("python3"))
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs (cargo xtask test sets up target/venv)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write exposition");
    let out = child.wait_with_output().expect("python3 finishes");
    assert!(
        out.status.success(),
        "the OpenMetrics parser rejected the exposition (`cargo xtask test` installs prometheus-client into target/venv):\n{}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A config for the in-process daemon; `{cluster}` is replaced by the cluster's host/port.
pub fn daemon_config(yaml: &str) -> mesa::config::Config {
    let c = cluster();
    let dir = std::env::temp_dir().join(format!("mesa-it-{}", std::process::id()));
    // Written once per process: rewriting it while a concurrent test reads it (truncate,
    // then write) let that test see an empty password file.
    static FIXTURE: std::sync::Once = std::sync::Once::new();
    FIXTURE.call_once(|| {
        std::fs::create_dir_all(&dir).expect("temp dir");
        std::fs::write(dir.join("fixture.pw"), ROLE_PASSWORD).expect("password file");
    });
    let text = yaml
        .replace("{host}", c.host())
        .replace("{port}", &c.port().to_string());
    mesa::config::parse_str(&text, &dir, &|_| None)
        .unwrap_or_else(|p| panic!("test config invalid: {p:#?}"))
}

/// A response: status, headers and body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: String,
}

impl Reply {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// One HTTP/1.1 request with a real client (hyper): method, path, bearer token, body.
pub async fn request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> Reply {
    let mut headers = Vec::new();
    if let Some(token) = token {
        headers.push((hyper::header::AUTHORIZATION, format!("Bearer {token}")));
    }
    if body.is_some() {
        headers.push((hyper::header::CONTENT_TYPE, "application/json".to_owned()));
    }
    let (status, headers, body) = exchange(addr, method, path, &headers, body)
        .await
        .unwrap_or_else(|| panic!("{method} http://{addr}{path} failed"));
    Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// Sessions of `user` that Mesa opened (`application_name = 'mesa'`).
pub async fn mesa_sessions_of(user: &str) -> i64 {
    superuser("postgres")
        .await
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'mesa' AND usename = $1",
            &[&user],
        )
        .await
        .expect("count")
        .get(0)
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

/// One collection of `t` with its configured collectors, rendered as `/probe` renders it
/// (no `server` label), with the collection itself.
pub async fn collect_text(t: &TargetConfig) -> (mesa::collectors::Collection, String) {
    use mesa::collectors::{Collect, TargetCollector};
    let collector = TargetCollector::new(std::sync::Arc::new(gateway(t)), t.collection.collectors);
    let collection = collector
        .collect(mesa::gateway::Deadline::after(Duration::from_secs(10)))
        .await
        .expect("the collection runs");
    let snapshot = std::sync::Arc::new(mesa::snapshot::TargetSnapshot {
        target: t.name.clone(),
        driver: mesa::gateway::Driver::Postgres,
        finished_at: std::time::SystemTime::now(),
        duration: Duration::ZERO,
        result: Ok(collection.clone()),
        last_success: Some(std::time::SystemTime::now()),
    });
    let text = mesa::metrics::render_snapshots(vec![snapshot], false);
    (collection, text)
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

/// The value of the sample `name{labels}` in `text`; panics naming it when there is none.
pub fn must(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    value(text, name, labels).unwrap_or_else(|| panic!("no {name}{labels:?} in:\n{text}"))
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

/// A daemon with the admin API on `targets` (YAML list items) and one all-scopes token;
/// returns it, the admin address and the token.
pub async fn admin_daemon(
    collection: &str,
    audit: &str,
    targets: &str,
) -> (mesa::app::App, std::net::SocketAddr, String) {
    let token = mesa::token::generate().expect("token");
    let config = daemon_config(&format!(
        "collection: {{{collection}}}
web: {{listen_address: '127.0.0.1:0'}}
admin:
  listen_address: '127.0.0.1:0'
  audit_log: {audit}
  rate_limit: {{burst: 1000, per_second: 1000}}
  tokens:
    - {{name: ops, sha256: '{}', scopes: [read, terminate, create_user], targets: ['*']}}
targets:
{targets}",
        token.sha256_hex
    ));
    let app = mesa::app::App::start(config).await.expect("daemon starts");
    let addr = app.admin_addr().expect("admin API");
    (app, addr, token.token.expose().to_owned())
}

/// Opens up to `n` connections to `addr`, 100 at a time, each with a 1 s connect deadline;
/// returns those that connected (beyond a listener's cap they wait in its backlog, which
/// completes the handshake without Mesa accepting them).
pub async fn hold(addr: std::net::SocketAddr, n: usize) -> Vec<tokio::net::TcpStream> {
    let mut held = Vec::with_capacity(n);
    for chunk in 0..n.div_ceil(100) {
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..100.min(n - chunk * 100) {
            set.spawn(async move {
                tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(addr))
                    .await
                    .ok()
                    .and_then(Result::ok)
            });
        }
        while let Some(stream) = set.join_next().await {
            if let Some(stream) = stream.expect("join") {
                held.push(stream);
            }
        }
    }
    held
}

/// Asserts that every collector of `collection` but `except` succeeded.
pub fn assert_the_rest_succeeded(collection: &mesa::collectors::Collection, except: &str) {
    for o in collection.outcomes.iter().filter(|o| o.collector != except) {
        assert!(o.result.is_ok(), "{}: {:?}", o.collector, o.result);
    }
}
