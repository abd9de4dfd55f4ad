//! Shared fixtures: one PostgreSQL cluster per test binary, roles, clients and target configs.

use std::sync::OnceLock;
use std::time::Duration;

use mesa::config::{AdminLogin, CollectionSettings, SslMode, TargetConfig};
use mesa::gateway::{Driver, Gateway};
use mesa::secret::Secret;
use mesa::testing::{ClusterOptions, PgCluster};
use tokio_postgres::{Client, NoTls};

/// Password of every role the fixtures create (except the superuser's).
pub const ROLE_PASSWORD: &str = "fixture-password-0123456789";

/// The cluster, started on first use with the fixture roles.
pub fn cluster() -> &'static PgCluster {
    static CLUSTER: OnceLock<PgCluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        let cluster = PgCluster::start(ClusterOptions {
            // Wake autovacuum often so its launcher is always present.
            extra_conf: vec!["autovacuum_naptime = 1".to_owned()],
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

/// A plain client (no TLS) as `user`, its connection driven by a spawned task.
pub async fn client_as(
    user: &str,
    password: &str,
    database: &str,
) -> Result<Client, tokio_postgres::Error> {
    let c = cluster();
    let (client, connection) = tokio_postgres::Config::new()
        .host(c.host())
        .port(c.port())
        .user(user)
        .password(password)
        .dbname(database)
        .application_name("mesa-tests")
        .connect(NoTls)
        .await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
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
        driver: Driver::Postgres,
        host: c.host().to_owned(),
        port: c.port(),
        database: "postgres".to_owned(),
        username: user.to_owned(),
        password: Some(Secret::new(password)),
        sslmode: SslMode::Disable,
        sslrootcert: None,
        collection: CollectionSettings::default(),
        admin: None,
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
    t.admin = Some(AdminLogin {
        username: user.to_owned(),
        password: Some(Secret::new(password)),
    });
    t
}

/// A gateway for `target`.
pub fn gateway(t: &TargetConfig) -> Gateway {
    Gateway::for_target(t).expect("gateway builds")
}

/// A loopback port nothing listens on.
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
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

/// A session on `client` that runs `sql` in the background; returns its backend pid.
pub async fn background(
    client: Client,
    sql: &'static str,
) -> (
    i32,
    tokio::task::JoinHandle<Result<(), tokio_postgres::Error>>,
) {
    let pid: i32 = client
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .expect("pid")
        .get(0);
    let handle = tokio::spawn(async move {
        let r = client.batch_execute(sql).await;
        drop(client);
        r
    });
    (pid, handle)
}
