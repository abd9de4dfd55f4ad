//! The MySQL/MariaDB driver against a live MariaDB (Debian's `mariadb-server`), one
//! throwaway server for the whole binary ([`server`]).
//!
//! Logins: `mesa_mon` (PROCESS, REPLICATION CLIENT, SLAVE MONITOR: what the monitor needs),
//! `mesa_adm` (CONNECTION ADMIN, CREATE USER, PROCESS, and SELECT on the grant tables the
//! KILL and role checks read), `root` (the server's superuser).

mod admin_api;
mod alerting;
mod collectors;
mod compat;
mod faults;
mod gateway;
mod tls;

use std::sync::OnceLock;

use mesa::config::{CollectionSettings, TargetConfig};
use mesa::gateway::mysql::{AccountHost, MysqlSpec, SslMode};
use mesa::gateway::{CommonSpec, Credentials, DriverSpec, Gateway, TargetSpec};
use mesa::secret::Secret;
use mesa_testkit::mariadb::MariaDb;

/// The password of every login the tests create.
pub const PASSWORD: &str = crate::support::ROLE_PASSWORD;
/// The monitoring login.
pub const MONITOR: &str = "mesa_mon";
/// The admin login.
pub const ADMIN: &str = "mesa_adm";

/// The shared server, its logins made once.
pub fn server() -> &'static MariaDb {
    static SERVER: OnceLock<MariaDb> = OnceLock::new();
    SERVER.get_or_init(|| {
        let server = MariaDb::start().unwrap_or_else(|e| panic!("MariaDB did not start: {e}"));
        setup(&server);
        server
    })
}

fn setup(server: &MariaDb) {
    server
        .sql(
            "",
            &format!(
                "CREATE USER {MONITOR}@'%' IDENTIFIED BY '{PASSWORD}'; \
                 GRANT PROCESS, REPLICATION CLIENT, SLAVE MONITOR ON *.* TO {MONITOR}@'%'; \
                 CREATE USER {ADMIN}@'%' IDENTIFIED BY '{PASSWORD}'; \
                 GRANT PROCESS, CONNECTION ADMIN, CREATE USER ON *.* TO {ADMIN}@'%'; \
                 GRANT SELECT ON mysql.global_priv TO {ADMIN}@'%'; \
                 GRANT SELECT ON mysql.roles_mapping TO {ADMIN}@'%'; \
                 GRANT SELECT ON mysql.db TO {ADMIN}@'%';"
            ),
        )
        .unwrap_or_else(|e| panic!("MariaDB logins: {e}"));
}

/// A target on `server` as `user` (password [`PASSWORD`], or root's).
pub fn target_on(server: &MariaDb, name: &str, user: &str) -> TargetConfig {
    let password = if user == server.superuser() {
        server.password()
    } else {
        PASSWORD
    };
    TargetConfig {
        name: name.to_owned(),
        spec: TargetSpec {
            common: CommonSpec {
                host: server.host().to_owned(),
                port: server.port(),
                database: String::new(),
                monitor: Credentials {
                    user: user.to_owned(),
                    password: Some(Secret::new(password)),
                },
                admin: Some(Credentials {
                    user: ADMIN.to_owned(),
                    password: Some(Secret::new(PASSWORD)),
                }),
            },
            driver: DriverSpec::Mysql(MysqlSpec {
                ssl_mode: SslMode::Disabled,
                ssl_ca: None,
                socket: None,
                account_host: AccountHost::localhost(),
            }),
        },
        collection: CollectionSettings::default(),
        grantable_roles: Vec::new(),
    }
}

/// A target on the shared server as the monitor, with the admin login.
pub fn target(name: &str) -> TargetConfig {
    target_on(server(), name, MONITOR)
}

/// The MySQL settings of a test target.
pub fn spec(t: &mut TargetConfig) -> &mut MysqlSpec {
    match &mut t.spec.driver {
        DriverSpec::Mysql(m) => m,
        DriverSpec::Postgres(_) => panic!("not a MySQL target"),
    }
}

/// A gateway for `target`.
pub fn gateway(t: &TargetConfig) -> Gateway {
    Gateway::for_target(&t.spec, t.collection.limits()).expect("gateway builds")
}

/// A client session on `server` as `user`, for the tests to hold or run statements on.
pub async fn client(server: &MariaDb, user: &str, password: &str) -> mysql_async::Conn {
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname(server.host())
        .tcp_port(server.port())
        .user(Some(user))
        .pass(Some(password))
        .prefer_socket(false);
    mysql_async::Conn::new(opts)
        .await
        .unwrap_or_else(|e| panic!("client {user}: {e}"))
}

/// Creates a plain login `user` (no global privileges) if it does not exist.
pub fn plain_user(server: &MariaDb, user: &str) {
    server
        .sql(
            "",
            &format!("CREATE USER IF NOT EXISTS {user}@'%' IDENTIFIED BY '{PASSWORD}'"),
        )
        .unwrap_or_else(|e| panic!("create {user}: {e}"));
}

/// Runs `SELECT SLEEP(secs), 'hunter2-secret'` on a new session of `user`; returns its
/// connection id and the task (its connection, and the result: the row, or the error a
/// KILL gave), once the server shows the statement running.
pub async fn sleeper(
    user: &str,
    password: &str,
    secs: u32,
) -> (
    u32,
    tokio::task::JoinHandle<(mysql_async::Conn, Result<Option<i64>, mysql_async::Error>)>,
) {
    use mysql_async::prelude::Queryable;
    let mut conn = client(server(), user, password).await;
    let id = conn.id();
    let task = tokio::spawn(async move {
        let r = conn
            .query_first::<(i64, String), _>(format!("SELECT SLEEP({secs}), 'hunter2-secret'"))
            .await
            .map(|row| row.map(|(v, _)| v));
        (conn, r)
    });
    for _ in 0..100 {
        let state = server()
            .sql(
                "",
                &format!("SELECT COMMAND FROM information_schema.PROCESSLIST WHERE ID = {id}"),
            )
            .expect("processlist");
        if state.trim() == "Query" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    (id, task)
}

/// A replica of the shared server (GTID, from the primary's position when it starts, errors
/// of statements the primary's tests made on accounts it lacks skipped), with Mesa's logins
/// of its own.
pub fn replica() -> &'static MariaDb {
    static REPLICA: OnceLock<MariaDb> = OnceLock::new();
    REPLICA.get_or_init(|| {
        let primary = server();
        primary
            .sql(
                "",
                &format!(
                    "CREATE USER IF NOT EXISTS mesa_repl@'%' IDENTIFIED BY '{PASSWORD}'; \
                     GRANT REPLICATION SLAVE ON *.* TO mesa_repl@'%';"
                ),
            )
            .unwrap_or_else(|e| panic!("replication login: {e}"));
        let replica = MariaDb::start_with(&["--server-id=2", "--slave-skip-errors=all"])
            .unwrap_or_else(|e| panic!("the replica did not start: {e}"));
        setup(&replica);
        let position = primary
            .sql("", "SELECT @@gtid_binlog_pos")
            .unwrap_or_else(|e| panic!("primary position: {e}"));
        replica
            .sql(
                "",
                &format!(
                    "SET GLOBAL gtid_slave_pos = '{}'; \
                     CHANGE MASTER TO MASTER_HOST = '127.0.0.1', MASTER_PORT = {}, \
                       MASTER_USER = 'mesa_repl', MASTER_PASSWORD = '{PASSWORD}', \
                       MASTER_USE_GTID = slave_pos; \
                     START SLAVE;",
                    position.trim(),
                    primary.port()
                ),
            )
            .unwrap_or_else(|e| panic!("replication: {e}"));
        replica
    })
}
