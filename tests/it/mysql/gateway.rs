//! The MySQL driver's inspector and administrator against the live MariaDB: every call, its
//! refusals, and create user proven by the server's own logs.

use std::time::Duration;

use mesa::gateway::mysql::AccountHost;
use mesa::gateway::{
    Administrator, BackendRef, Deadline, FailureReason, GatewayError, Inspector, NewUser,
    ObjectName, Pid, SessionFilter, TableKind,
};
use mesa::secret::Secret;
use mysql_async::prelude::Queryable;

use super::{PASSWORD, client, gateway, plain_user, server, sleeper, spec, target};

fn deadline() -> Deadline {
    Deadline::after(Duration::from_secs(10))
}

fn name(raw: &str) -> ObjectName {
    ObjectName::parse("name", raw).expect("object name")
}

#[tokio::test]
async fn the_inspector_reads_databases_tables_and_columns_from_information_schema() {
    let s = server();
    s.sql(
        "",
        "CREATE DATABASE IF NOT EXISTS shop CHARACTER SET utf8mb4; \
         CREATE TABLE IF NOT EXISTS shop.orders (id INT PRIMARY KEY, note VARCHAR(20) NOT NULL DEFAULT 'x', amount DECIMAL(10,2) NULL) ENGINE=InnoDB; \
         CREATE OR REPLACE VIEW shop.v_orders AS SELECT id FROM shop.orders; \
         GRANT SELECT ON shop.* TO mesa_mon@'%';",
    )
    .expect("schema");
    let g = gateway(&target("my_inspect"));

    let dbs = g.databases(deadline()).await.expect("databases");
    let shop = dbs.iter().find(|d| d.name == "shop").expect("shop listed");
    assert_eq!(shop.encoding, "utf8mb4");
    let expected: u64 = s
        .sql(
            "",
            "SELECT SUM(DATA_LENGTH + INDEX_LENGTH) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'shop'",
        )
        .expect("size")
        .trim()
        .parse()
        .expect("number");
    assert_eq!(shop.size_bytes, Some(expected));
    assert!(
        expected >= 16 * 1024,
        "an InnoDB table takes a page at least: {expected}"
    );
    for hidden in ["mysql", "information_schema", "performance_schema", "sys"] {
        assert!(dbs.iter().all(|d| d.name != hidden), "{hidden} listed");
    }

    let tables = g.tables(&name("shop"), deadline()).await.expect("tables");
    let kinds: Vec<(&str, TableKind)> = tables.iter().map(|t| (t.name.as_str(), t.kind)).collect();
    assert_eq!(
        kinds,
        vec![("orders", TableKind::Table), ("v_orders", TableKind::View)]
    );
    assert!(tables.iter().all(|t| t.schema == "shop"));

    let columns = g
        .columns(&name("shop"), &name("shop"), &name("orders"), deadline())
        .await
        .expect("columns");
    let shape: Vec<(&str, &str, bool, Option<&str>, u32)> = columns
        .iter()
        .map(|c| {
            (
                c.name.as_str(),
                c.data_type.as_str(),
                c.nullable,
                c.default.as_deref(),
                c.position,
            )
        })
        .collect();
    assert_eq!(
        shape,
        vec![
            ("id", "int(11)", false, None, 1),
            ("note", "varchar(20)", false, Some("'x'"), 2),
            ("amount", "decimal(10,2)", true, Some("NULL"), 3),
        ]
    );

    for err in [
        g.tables(&name("no_such_db"), deadline()).await.map(|_| ()),
        g.columns(&name("shop"), &name("shop"), &name("missing"), deadline())
            .await
            .map(|_| ()),
        // MySQL has no schemas inside a database.
        g.columns(&name("shop"), &name("public"), &name("orders"), deadline())
            .await
            .map(|_| ()),
    ] {
        assert_eq!(
            err.expect_err("not found").reason(),
            FailureReason::NotFound
        );
    }
}

#[tokio::test]
async fn health_reads_version_limits_and_uptime() {
    let g = gateway(&target("my_health"));
    let h = g.server_health(deadline()).await.expect("health");
    assert!(h.version.contains("MariaDB"), "{}", h.version);
    assert!(
        h.version.starts_with(&h.short_version),
        "{} / {}",
        h.version,
        h.short_version
    );
    assert_eq!(h.short_version.split('.').count(), 3, "{}", h.short_version);
    assert_eq!(h.max_connections, 200);
    // The server may have started within the second.
    assert!(h.uptime < Duration::from_secs(86_400));
    assert!(h.started_at <= std::time::SystemTime::now());
    let connected: u32 = server()
        .sql("", "SHOW GLOBAL STATUS LIKE 'Threads_connected'")
        .expect("status")
        .split_whitespace()
        .nth(1)
        .expect("value")
        .parse()
        .expect("number");
    // Other tests connect meanwhile; the figure is the server's, less Mesa's own session.
    assert!(
        h.client_sessions < connected + 20,
        "{} vs {connected}",
        h.client_sessions
    );
}

fn backend(id: u32) -> BackendRef {
    BackendRef::pid(Pid::new(i32::try_from(id).expect("id")).expect("pid"))
}

#[tokio::test]
async fn sessions_are_listed_redacted_without_mesas_own() {
    plain_user(server(), "my_app_list");
    let g = gateway(&target("my_sessions"));
    let (id, task) = sleeper("my_app_list", PASSWORD, 30).await;
    let list = g
        .sessions(SessionFilter::default(), deadline())
        .await
        .expect("sessions");
    let mine = list
        .iter()
        .find(|s| s.pid == i32::try_from(id).expect("id"))
        .expect("the sleeping session is listed");
    assert_eq!(mine.user.as_deref(), Some("my_app_list"));
    assert_eq!(mine.state.as_deref(), Some("active"));
    assert!(mine.query.contains("SLEEP(30)"), "{}", mine.query);
    assert!(!mine.query.contains("hunter2"), "{}", mine.query);
    assert!(mine.query.contains("[redacted]"), "{}", mine.query);
    assert_eq!(mine.client_addr, Some([127, 0, 0, 1].into()));
    assert!(mine.duration.is_some());
    for s in &list {
        let user = s.user.as_deref().unwrap_or_default();
        assert!(
            !["mesa_mon", "mesa_adm", "event_scheduler", "system user"].contains(&user),
            "{s:?}"
        );
        assert_ne!(
            s.state.as_deref(),
            Some("idle"),
            "idle sessions only on request: {s:?}"
        );
    }
    g.terminate(backend(id), deadline())
        .await
        .expect("terminate");
    let (_, result) = task.await.expect("task");
    assert!(
        result.is_err(),
        "the killed session's statement fails: {result:?}"
    );
}

#[tokio::test]
async fn cancel_ends_the_statement_and_terminate_the_session() {
    plain_user(server(), "my_app_kill");
    let g = gateway(&target("my_kill"));

    let (id, task) = sleeper("my_app_kill", PASSWORD, 60).await;
    let started = std::time::Instant::now();
    g.cancel(backend(id), deadline()).await.expect("cancel");
    let (mut conn, result) = task.await.expect("task");
    // The statement ends at once with "interrupted" (1317); the session stays.
    match result {
        Err(mysql_async::Error::Server(e)) => assert_eq!(e.code, 1317, "{e}"),
        other => panic!("the statement should end interrupted: {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(30));
    let alive: Option<i64> = conn.query_first("SELECT 1").await.expect("session kept");
    assert_eq!(alive, Some(1));

    g.terminate(backend(id), deadline())
        .await
        .expect("terminate");
    let after = conn.query_drop("SELECT 1").await;
    assert!(after.is_err(), "the session ended");
    let gone = g
        .terminate(backend(id), deadline())
        .await
        .expect_err("gone");
    assert_eq!(gone.reason(), FailureReason::NotFound, "{gone}");
}

#[tokio::test]
async fn privileged_own_and_server_sessions_are_never_killed() {
    let s = server();
    s.sql(
        "",
        &format!(
            "CREATE USER IF NOT EXISTS my_super@'%' IDENTIFIED BY '{PASSWORD}'; GRANT SUPER ON *.* TO my_super@'%'; \
             CREATE ROLE IF NOT EXISTS my_killer_role; GRANT CONNECTION ADMIN ON *.* TO my_killer_role; \
             CREATE ROLE IF NOT EXISTS my_outer_role; GRANT my_killer_role TO my_outer_role; \
             CREATE USER IF NOT EXISTS my_via_role@'%' IDENTIFIED BY '{PASSWORD}'; GRANT my_outer_role TO my_via_role@'%'; \
             SET GLOBAL event_scheduler = ON;"
        ),
    )
    .expect("accounts");
    let g = gateway(&target("my_refuse"));
    let refused = |e: GatewayError| {
        assert_eq!(e.reason(), FailureReason::Refused, "{e}");
        e.to_string()
    };

    // Directly, and through a role granted to a role.
    for user in ["my_super", "my_via_role"] {
        let (id, task) = sleeper(user, PASSWORD, 20).await;
        let why = refused(
            g.terminate(backend(id), deadline())
                .await
                .expect_err("refused"),
        );
        assert!(why.contains("SUPER or CONNECTION ADMIN"), "{why}");
        refused(
            g.cancel(backend(id), deadline())
                .await
                .expect_err("refused"),
        );
        s.sql("", &format!("KILL {id}")).expect("cleanup");
        let _ = task.await;
    }
    // Mesa's own logins.
    let mut own = client(s, "mesa_mon", PASSWORD).await;
    let why = refused(
        g.terminate(backend(own.id()), deadline())
            .await
            .expect_err("refused"),
    );
    assert!(why.contains("Mesa's own"), "{why}");
    own.query_drop("SELECT 1").await.expect("untouched");
    // A server thread.
    let daemon: u32 = s
        .sql(
            "",
            "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = 'event_scheduler'",
        )
        .expect("event scheduler")
        .trim()
        .parse()
        .expect("its id");
    let why = refused(
        g.terminate(backend(daemon), deadline())
            .await
            .expect_err("refused"),
    );
    assert!(why.contains("server thread"), "{why}");
    // Nothing by that id; a start time MySQL cannot check.
    let missing = g
        .terminate(backend(2_000_000_000), deadline())
        .await
        .expect_err("none");
    assert_eq!(missing.reason(), FailureReason::NotFound);
    let pinned = BackendRef {
        pid: Pid::new(1).expect("pid"),
        backend_start: Some(std::time::SystemTime::now()),
    };
    let invalid = g.terminate(pinned, deadline()).await.expect_err("invalid");
    assert_eq!(invalid.reason(), FailureReason::InvalidInput);
}

#[tokio::test]
async fn without_the_grant_tables_the_kill_check_fails_closed() {
    let s = server();
    s.sql(
        "",
        &format!(
            "CREATE USER IF NOT EXISTS my_blind_adm@'%' IDENTIFIED BY '{PASSWORD}'; \
             GRANT PROCESS, CONNECTION ADMIN ON *.* TO my_blind_adm@'%';"
        ),
    )
    .expect("account");
    plain_user(s, "my_app_blind");
    let mut t = target("my_blind");
    t.spec.common.admin = Some(mesa::gateway::Credentials {
        user: "my_blind_adm".to_owned(),
        password: Some(Secret::new(PASSWORD)),
    });
    let g = gateway(&t);
    let (id, task) = sleeper("my_app_blind", PASSWORD, 20).await;
    let err = g
        .terminate(backend(id), deadline())
        .await
        .expect_err("cannot check");
    assert_eq!(err.reason(), FailureReason::PermissionDenied, "{err}");
    assert!(err.to_string().contains("mysql.global_priv"), "{err}");
    // Nothing was done: the statement still runs.
    let command = s
        .sql(
            "",
            &format!("SELECT COMMAND FROM information_schema.PROCESSLIST WHERE ID = {id}"),
        )
        .expect("processlist");
    assert_eq!(command.trim(), "Query");
    s.sql("", &format!("KILL {id}")).expect("cleanup");
    let _ = task.await;
}

#[tokio::test]
async fn create_user_sends_only_a_hash_as_the_server_logs_prove() {
    let s = server();
    let mut t = target("my_create");
    spec(&mut t).account_host = AccountHost::parse("127.0.0.1", false).expect("host");
    let g = gateway(&t);
    let password = "Correct-Horse-Battery-Staple-42";
    let user = NewUser::new("my_new_app", Some(Secret::new(password)), false, true)
        .expect("valid")
        .with_expiry(Duration::from_secs(2 * 86_400))
        .expect("expiry")
        .with_connection_limit(3)
        .expect("limit");
    let created = g.create_user(user, deadline()).await.expect("created");
    assert_eq!(created.name.as_str(), "my_new_app");
    assert!(created.generated_password.is_none());
    let until = created.valid_until.expect("expiry");
    let in_two_days = std::time::SystemTime::now() + Duration::from_secs(2 * 86_400);
    assert!(until <= in_two_days && until > in_two_days - Duration::from_secs(60));

    // The account works with the password, with its limits as asked.
    let mut conn = client(s, "my_new_app", password).await;
    let me: Option<String> = conn
        .query_first("SELECT CURRENT_USER()")
        .await
        .expect("login");
    assert_eq!(me.as_deref(), Some("my_new_app@127.0.0.1"));
    let account = s
        .sql(
            "",
            "SELECT JSON_VALUE(Priv, '$.password_lifetime'), JSON_VALUE(Priv, '$.max_user_connections'), JSON_VALUE(Priv, '$.plugin') \
             FROM mysql.global_priv WHERE User = 'my_new_app' AND Host = '127.0.0.1'",
        )
        .expect("account");
    assert_eq!(
        account.split_whitespace().collect::<Vec<_>>(),
        ["2", "3", "mysql_native_password"]
    );

    // Never the plaintext in the general log, the slow log or the binlog; the hash is there.
    let hash: String = s
        .sql("", &format!("SELECT PASSWORD('{password}')"))
        .expect("hash")
        .trim()
        .to_owned();
    let general = s.general_log();
    assert!(
        general.contains(&format!(
            "CREATE USER 'my_new_app'@'127.0.0.1' IDENTIFIED BY PASSWORD '{hash}'"
        )),
        "general log lacks the statement"
    );
    let binlog = s.binlog().expect("binlog");
    assert!(binlog.contains(&hash), "binlog lacks the statement");
    for (log, text) in [
        ("general", &general),
        ("slow", &s.slow_log()),
        ("binlog", &binlog),
    ] {
        // The harness's own PASSWORD() above is root's, through the socket; Mesa's
        // statement is the one that must not carry it.
        let mesa_lines: Vec<&str> = text.lines().filter(|l| l.contains("my_new_app")).collect();
        assert!(
            !mesa_lines.is_empty() || log == "slow",
            "{log} log has no line of the account"
        );
        for line in mesa_lines {
            assert!(
                !line.contains(password),
                "{log} log has the plaintext: {line}"
            );
        }
    }

    // Again: it exists.
    let again =
        NewUser::new("my_new_app", Some(Secret::new(password)), false, true).expect("valid");
    let err = g.create_user(again, deadline()).await.expect_err("exists");
    assert_eq!(err.reason(), FailureReason::AlreadyExists, "{err}");

    // A generated password, a locked account.
    let locked = NewUser::new("my_locked_app", None, false, false).expect("valid");
    let created = g.create_user(locked, deadline()).await.expect("created");
    let generated = created.generated_password.expect("generated");
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname(s.host())
        .tcp_port(s.port())
        .user(Some("my_locked_app"))
        .pass(Some(generated.expose()))
        .prefer_socket(false);
    let refused = mysql_async::Conn::new(opts).await.expect_err("locked");
    assert!(refused.to_string().contains("locked"), "{refused}");
    assert!(
        !s.general_log().contains(generated.expose()),
        "the generated password reached the log"
    );
}

#[tokio::test]
async fn what_mysql_cannot_do_is_refused_before_the_server_is_asked() {
    let g = gateway(&target("my_cannot"));
    let before = server().general_log().len();
    let hourly = NewUser::new(
        "my_hourly",
        Some(Secret::new("a-long-enough-password")),
        false,
        true,
    )
    .expect("valid")
    .with_expiry(Duration::from_secs(3600))
    .expect("expiry");
    let err = g
        .create_user(hourly, deadline())
        .await
        .expect_err("whole days");
    assert_eq!(err.reason(), FailureReason::InvalidInput, "{err}");
    let general = server().general_log();
    assert!(!general[before..].contains("my_hourly"));
    // The lifecycle calls on Mesa's accounts: refused, with the reason.
    let err = g.managed_users(deadline()).await.expect_err("no mark");
    assert_eq!(err.reason(), FailureReason::Refused);
    assert!(err.to_string().contains("mark"), "{err}");
}

#[test]
fn a_wildcard_account_host_is_a_config_error_unless_allowed() {
    let s = server();
    let yaml = |extra: &str| {
        format!(
            "targets:\n  - name: m\n    driver: mysql\n    host: 127.0.0.1\n    port: {}\n    username: mesa_mon\n    password_env: MESA_PW\n{extra}",
            s.port()
        )
    };
    let env = |_: &str| Some("x".to_owned());
    let base = std::path::Path::new(".");
    let problems = mesa::config::parse_str(&yaml("    account_host: '%'\n"), base, &env)
        .expect_err("wildcard refused");
    let text = format!("{problems:?}");
    assert!(
        text.contains("targets[0].account_host") && text.contains("allow_wildcard_host"),
        "{text}"
    );
    let ok = mesa::config::parse_str(
        &yaml(
            "    account_host: '10.0.0.%'\n    allow_wildcard_host: true\n    ssl_mode: required\n",
        ),
        base,
        &env,
    );
    assert!(ok.is_ok(), "{ok:?}");
    let problems = mesa::config::parse_str(&yaml("    ssl_mode: verify-full\n"), base, &env)
        .expect_err("libpq's spelling is not MySQL's");
    assert!(format!("{problems:?}").contains("targets[0].ssl_mode"));
    let problems = mesa::config::parse_str(&yaml("    sslmode: require\n"), base, &env)
        .expect_err("a PostgreSQL key on a MySQL target");
    assert!(format!("{problems:?}").contains("sslmode"), "{problems:?}");
}

#[tokio::test]
async fn a_statement_past_mesas_deadline_is_killed_on_the_server() {
    let s = server();
    // A DDL that waits: root holds the grant table CREATE USER must write.
    let mut holder = client(s, "root", s.password()).await;
    holder
        .query_drop("LOCK TABLES mysql.global_priv WRITE")
        .await
        .expect("lock");
    let mut t = target("my_deadline");
    spec(&mut t).account_host = AccountHost::parse("127.0.0.1", false).expect("host");
    // The server would let it wait 30 s; Mesa's deadline is 600 ms.
    t.collection.statement_timeout = Duration::from_secs(30);
    t.collection.lock_timeout = Duration::from_secs(30);
    let g = gateway(&t);
    let user = NewUser::new("my_waiting_user", None, false, true).expect("valid");
    let started = std::time::Instant::now();
    let err = g
        .create_user(user, Deadline::after(Duration::from_millis(600)))
        .await
        .expect_err("past the deadline");
    assert_eq!(err.reason(), FailureReason::Timeout, "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // The statement no longer waits on the server: KILL QUERY ended it, long before the
    // server's own 30 s.
    let waiting = || {
        s.sql(
            "",
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = 'mesa_adm' AND INFO LIKE 'CREATE USER%my_waiting_user%'",
        )
        .expect("processlist")
        .trim()
        .to_owned()
    };
    let ended =
        crate::support::eventually(Duration::from_secs(3), || async { waiting() == "0" }).await;
    assert!(ended, "the CREATE USER still waits on the server");
    assert!(
        s.general_log().lines().any(|l| l.contains("KILL QUERY")),
        "no KILL QUERY reached the server"
    );
    // The server's own deadline, when it is the shorter: max_statement_time (from
    // statement_timeout) ends the statement on the server, with its error.
    let mut t = target("my_server_deadline");
    spec(&mut t).account_host = AccountHost::parse("127.0.0.1", false).expect("host");
    t.collection.statement_timeout = Duration::from_secs(2);
    t.collection.lock_timeout = Duration::from_secs(30);
    let user = NewUser::new("my_waiting_user", None, false, true).expect("valid");
    let started = std::time::Instant::now();
    let err = gateway(&t)
        .create_user(user, Deadline::after(Duration::from_secs(20)))
        .await
        .expect_err("the server's lock wait timeout");
    assert_eq!(err.reason(), FailureReason::Timeout, "{err}");
    assert_eq!(err.sqlstate(), Some("1969"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    holder.query_drop("UNLOCK TABLES").await.expect("unlock");
    // Nothing was created.
    let exists = s
        .sql(
            "",
            "SELECT COUNT(*) FROM mysql.global_priv WHERE User = 'my_waiting_user'",
        )
        .expect("count");
    assert_eq!(exists.trim(), "0");
}

#[tokio::test]
async fn roles_are_granted_only_when_they_hand_out_data_access_alone() {
    let s = server();
    s.sql(
        "",
        "CREATE DATABASE IF NOT EXISTS role_shop; \
         CREATE TABLE IF NOT EXISTS role_shop.items (id INT PRIMARY KEY); \
         CREATE ROLE IF NOT EXISTS my_reader; GRANT SELECT ON role_shop.* TO my_reader; \
         GRANT my_reader TO mesa_adm@'%' WITH ADMIN OPTION; \
         CREATE ROLE IF NOT EXISTS my_not_mine; GRANT SELECT ON role_shop.* TO my_not_mine; \
         CREATE ROLE IF NOT EXISTS my_admin_role; GRANT CREATE USER ON *.* TO my_admin_role; \
         CREATE ROLE IF NOT EXISTS my_wrapper; GRANT my_admin_role TO my_wrapper; \
         CREATE ROLE IF NOT EXISTS my_granter; GRANT SELECT ON role_shop.* TO my_granter WITH GRANT OPTION;",
    )
    .expect("roles");
    let mut t = target("my_roles");
    spec(&mut t).account_host = AccountHost::parse("127.0.0.1", false).expect("host");
    let g = gateway(&t);
    let user = |name: &str, role: &str| {
        NewUser::new(
            name,
            Some(Secret::new("Role-Test-Password-123456")),
            false,
            true,
        )
        .expect("valid")
        .with_memberships(&[role.to_owned()])
        .expect("roles")
    };
    let exists = |name: &str| {
        s.sql(
            "",
            &format!("SELECT COUNT(*) FROM mysql.global_priv WHERE User = '{name}'"),
        )
        .expect("count")
        .trim()
            == "1"
    };

    // Data access alone: granted; the account enables it (MariaDB's roles are per session).
    g.create_user(user("my_role_ok", "my_reader"), deadline())
        .await
        .expect("created");
    let mut conn = client(s, "my_role_ok", "Role-Test-Password-123456").await;
    assert!(
        conn.query_drop("SELECT * FROM role_shop.items")
            .await
            .is_err(),
        "not before SET ROLE"
    );
    conn.query_drop("SET ROLE my_reader")
        .await
        .expect("the role was granted");
    conn.query_drop("SELECT * FROM role_shop.items")
        .await
        .expect("reads through the role");

    // More than data access, directly or through a role granted to the role; a schema
    // privilege it could pass on; no such role: refused before the account exists.
    for (name, role, reason, says) in [
        (
            "my_role_admin",
            "my_admin_role",
            FailureReason::PermissionDenied,
            "global privileges",
        ),
        (
            "my_role_wrapped",
            "my_wrapper",
            FailureReason::PermissionDenied,
            "through my_admin_role",
        ),
        (
            "my_role_granter",
            "my_granter",
            FailureReason::PermissionDenied,
            "GRANT OPTION",
        ),
        (
            "my_role_missing",
            "my_no_such_role",
            FailureReason::NotFound,
            "my_no_such_role",
        ),
    ] {
        let err = g
            .create_user(user(name, role), deadline())
            .await
            .expect_err(role);
        assert_eq!(err.reason(), reason, "{role}: {err}");
        assert!(err.to_string().contains(says), "{role}: {err}");
        assert!(!exists(name), "{name} was created");
    }

    // The server refuses the GRANT itself (the admin login has no ADMIN OPTION on the
    // role): the account made a moment before is dropped again, nothing is left.
    let err = g
        .create_user(user("my_role_denied", "my_not_mine"), deadline())
        .await
        .expect_err("no admin option");
    assert_eq!(err.reason(), FailureReason::PermissionDenied, "{err}");
    assert!(!exists("my_role_denied"), "the account was left behind");
    assert!(
        s.general_log()
            .contains("DROP USER 'my_role_denied'@'127.0.0.1'"),
        "the account was not dropped by Mesa"
    );
}
