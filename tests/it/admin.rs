//! The admin API against the real server: the auth matrix, terminate and cancel, create user,
//! hostile input, inspection, the audit trail, the rate limit and a slowloris client.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use mesa::app::{App, DEFAULT_GRACE_PERIOD};
use serde_json::Value;

use crate::support::*;

const KINDS: [(&str, &str, &str); 6] = [
    ("read", "reader", "[read], targets: ['*']"),
    ("terminate", "terminator", "[terminate], targets: ['*']"),
    ("create_user", "creator", "[create_user], targets: ['*']"),
    (
        "create_superuser",
        "super",
        "[create_user, create_superuser], targets: ['*']",
    ),
    (
        "other_target",
        "outsider",
        "[read, terminate, create_user, create_superuser], targets: [other]",
    ),
    (
        "full",
        "full",
        "[read, terminate, create_user, create_superuser], targets: ['*']",
    ),
];

struct Admin {
    app: App,
    addr: SocketAddr,
    tokens: HashMap<&'static str, String>,
    audit: PathBuf,
}

impl Admin {
    fn token(&self, kind: &str) -> &str {
        &self.tokens[kind]
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        kind: Option<&str>,
        body: Option<&str>,
    ) -> Reply {
        request(self.addr, method, path, kind.map(|k| self.token(k)), body).await
    }

    async fn stop(self) {
        self.app
            .shutdown(DEFAULT_GRACE_PERIOD)
            .await
            .expect("clean shutdown");
    }

    fn audit_records(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.audit)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("audit lines are JSON"))
            .collect()
    }
}

/// An admin-enabled daemon; `main` and `other` point at the cluster as `monitor` with admin
/// login `admin`.
async fn start(tag: &str, monitor: &str, admin: &str) -> Admin {
    start_with(tag, monitor, admin, monitor).await
}

/// As [`start`], with `other` collected as `other_monitor`.
async fn start_with(tag: &str, monitor: &str, admin: &str, other_monitor: &str) -> Admin {
    let mut tokens = HashMap::new();
    let mut token_yaml = String::new();
    for (kind, name, scopes) in KINDS {
        let t = mesa::token::generate().expect("token");
        token_yaml.push_str(&format!(
            "    - {{name: {name}, sha256: '{}', scopes: {scopes}}}\n",
            t.sha256_hex
        ));
        tokens.insert(kind, t.token.expose().to_owned());
    }
    let target = |name: &str, monitor: &str| {
        format!(
            "  - {{name: {name}, driver: postgres, host: '{{host}}', port: {{port}}, username: {monitor}, password_file: fixture.pw, sslmode: disable, admin: {{username: {admin}, password_file: fixture.pw}}}}\n"
        )
    };
    let yaml = format!(
        "collection: {{interval: 2s, timeout: 1s}}\nweb: {{listen_address: '127.0.0.1:0'}}\nadmin:\n  listen_address: '127.0.0.1:0'\n  audit_log: audit-{tag}.jsonl\n  tokens:\n{token_yaml}targets:\n{}{}",
        target("main", monitor),
        target("other", other_monitor)
    );
    let config = daemon_config(&yaml);
    let audit = config.admin.audit_log.clone().expect("audit path");
    let _ = std::fs::remove_file(&audit);
    let app = App::start(config).await.expect("daemon starts");
    let addr = app.admin_addr().expect("admin API enabled");
    Admin {
        app,
        addr,
        tokens,
        audit,
    }
}

async fn roles(names: &[&str]) {
    let su = superuser("postgres").await;
    for statement in names {
        su.batch_execute(statement).await.expect("role");
    }
}

fn log_lines(user: &str) -> usize {
    let marker = format!("] {user}@");
    cluster()
        .server_log()
        .lines()
        .filter(|l| l.contains(&marker))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_and_token_gets_its_documented_status() {
    let _serial = role_lock().await;
    roles(&[
        "CREATE ROLE matrix_monitor LOGIN PASSWORD 'fixture-password-0123456789' IN ROLE pg_monitor",
        // `other` collects as its own role, so its collections never count as main's.
        "CREATE ROLE matrix_other_monitor LOGIN PASSWORD 'fixture-password-0123456789' IN ROLE pg_monitor",
        "CREATE ROLE matrix_admin LOGIN SUPERUSER PASSWORD 'fixture-password-0123456789'",
        "CREATE SCHEMA matrix_schema",
        "CREATE TABLE matrix_schema.matrix_table (id int)",
        "GRANT USAGE ON SCHEMA matrix_schema TO matrix_monitor",
        "GRANT SELECT ON matrix_schema.matrix_table TO matrix_monitor",
    ])
    .await;
    let admin = start_with(
        "matrix",
        "matrix_monitor",
        "matrix_admin",
        "matrix_other_monitor",
    )
    .await;
    let stranger = std::process::id().to_string();
    let routes: Vec<(&str, String, Option<String>, &str)> = vec![
        ("GET", "/api/v1/targets".into(), None, "read"),
        ("GET", "/api/v1/targets/main/health".into(), None, "read"),
        ("GET", "/api/v1/targets/main/sessions".into(), None, "read"),
        (
            "POST",
            format!("/api/v1/targets/main/sessions/{stranger}/terminate"),
            None,
            "terminate",
        ),
        (
            "POST",
            format!("/api/v1/targets/main/sessions/{stranger}/cancel"),
            None,
            "terminate",
        ),
        (
            "POST",
            "/api/v1/targets/main/users".into(),
            Some(r#"{"name":"matrix_user_N"}"#.into()),
            "create_user",
        ),
        (
            "POST",
            "/api/v1/targets/main/users".into(),
            Some(r#"{"name":"matrix_super_N","superuser":true}"#.into()),
            "create_superuser",
        ),
        ("GET", "/api/v1/targets/main/databases".into(), None, "read"),
        (
            "GET",
            "/api/v1/targets/main/databases/postgres/tables".into(),
            None,
            "read",
        ),
        (
            "GET",
            "/api/v1/targets/main/databases/postgres/tables/matrix_schema/matrix_table/columns"
                .into(),
            None,
            "read",
        ),
        ("GET", "/api/v1/openapi.json".into(), None, "none"),
    ];
    // What each token kind gets on a route needing `need`.
    let expect = |need: &str, kind: &str, path: &str| -> u16 {
        if need == "none" {
            return 200;
        }
        let success = if path.contains("/users") {
            201
        } else if path.ends_with("terminate") || path.ends_with("cancel") {
            404
        } else {
            200
        };
        match kind {
            "none" | "wrong" => 401,
            "full" => success,
            "other_target" if path == "/api/v1/targets" => 200,
            "other_target" => 403,
            "create_superuser" if need == "create_user" => success,
            k if k == need => success,
            _ => 403,
        }
    };

    // Rejections first, inside a window without a collection, to prove they send no query.
    let mut rejected_window_ok = false;
    for _ in 0..5 {
        let store = admin.app.store();
        let seen = store.get("main").map(|s| s.finished_at);
        assert!(
            eventually(Duration::from_secs(6), || async {
                store.get("main").map(|s| s.finished_at) != seen
            })
            .await
        );
        let mark = store.get("main").map(|s| s.finished_at);
        let before = (log_lines("matrix_monitor"), log_lines("matrix_admin"));
        for (method, path, body, need) in &routes {
            for kind in [
                "none",
                "wrong",
                "read",
                "terminate",
                "create_user",
                "create_superuser",
                "other_target",
            ] {
                let want = expect(need, kind, path);
                if want != 401 && want != 403 {
                    continue;
                }
                let token = match kind {
                    "none" => None,
                    "wrong" => Some(
                        "mesa_0000000000000000000000000000000000000000000000000000000000000000",
                    ),
                    k => Some(admin.token(k)),
                };
                let reply = request(admin.addr, method, path, token, body.as_deref()).await;
                assert_eq!(
                    reply.status, want,
                    "{method} {path} with {kind}: {}",
                    reply.body
                );
                assert_eq!(
                    reply.header("content-type"),
                    Some("application/problem+json")
                );
                if want == 401 {
                    assert!(
                        reply
                            .header("www-authenticate")
                            .is_some_and(|v| v.starts_with("Bearer"))
                    );
                }
            }
        }
        // A collection of main that started inside the window has finished after its 1 s
        // deadline, and shows in finished_at.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        if store.get("main").map(|s| s.finished_at) == mark {
            assert_eq!(
                (log_lines("matrix_monitor"), log_lines("matrix_admin")),
                before,
                "a rejected request reached the server"
            );
            rejected_window_ok = true;
            break;
        }
    }
    assert!(rejected_window_ok, "no quiet window between collections");

    // Accepted combinations.
    let mut n = 0;
    for (method, path, body, need) in &routes {
        for kind in [
            "read",
            "terminate",
            "create_user",
            "create_superuser",
            "other_target",
            "full",
        ] {
            let want = expect(need, kind, path);
            if want == 403 {
                continue;
            }
            n += 1;
            let body = body.as_ref().map(|b| b.replace('N', &n.to_string()));
            let reply = admin.call(method, path, Some(kind), body.as_deref()).await;
            assert_eq!(
                reply.status, want,
                "{method} {path} with {kind}: {}",
                reply.body
            );
        }
    }
    let listed = admin
        .call("GET", "/api/v1/targets", Some("other_target"), None)
        .await
        .json();
    let names: Vec<&str> = listed["targets"]
        .as_array()
        .expect("list")
        .iter()
        .map(|t| t["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, vec!["other"], "a token sees only its targets");
    let unknown = admin
        .call("GET", "/api/v1/targets/ghost/health", Some("full"), None)
        .await;
    assert_eq!(unknown.status, 404);
    let missing = admin.call("GET", "/api/v1/nope", Some("full"), None).await;
    assert_eq!(missing.status, 404);
    assert_eq!(
        missing.header("content-type"),
        Some("application/problem+json")
    );
    admin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_and_cancel_through_the_api() {
    let admin = start("signal", "mesa_monitor", "mesa_admin").await;
    let victim = client_as("app_user", ROLE_PASSWORD, "postgres")
        .await
        .expect("victim");
    let (pid, held) = background(victim, "SELECT pg_sleep(600)").await;
    let path = format!("/api/v1/targets/main/sessions/{pid}/terminate");
    let reply = admin.call("POST", &path, Some("terminate"), None).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["result"], "terminated");
    let started = Instant::now();
    assert!(eventually(Duration::from_secs(2), || async { !pid_exists(pid).await }).await);
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(
        held.await.expect("task").is_err(),
        "the victim saw its termination"
    );
    assert_eq!(
        admin
            .call("POST", &path, Some("terminate"), None)
            .await
            .status,
        404
    );

    let launcher: i32 = superuser("postgres")
        .await
        .query_one(
            "SELECT pid FROM pg_stat_activity WHERE backend_type = 'autovacuum launcher'",
            &[],
        )
        .await
        .expect("launcher")
        .get(0);
    let refused = admin
        .call(
            "POST",
            &format!("/api/v1/targets/main/sessions/{launcher}/terminate"),
            Some("terminate"),
            None,
        )
        .await;
    assert_eq!(refused.status, 409, "{}", refused.body);
    assert!(pid_exists(launcher).await);

    let admin_lines = log_lines("mesa_admin");
    for bad in ["0", "-1", "2147483648", "abc", "1.5", "%20"] {
        let reply = admin
            .call(
                "POST",
                &format!("/api/v1/targets/main/sessions/{bad}/terminate"),
                Some("terminate"),
                None,
            )
            .await;
        assert!(
            (400..500).contains(&reply.status),
            "pid {bad:?}: {}",
            reply.status
        );
    }
    assert_eq!(
        log_lines("mesa_admin"),
        admin_lines,
        "an invalid pid reached the server"
    );

    // Cancel stops the statement but keeps the session.
    let client = std::sync::Arc::new(
        client_as("app_user", ROLE_PASSWORD, "postgres")
            .await
            .expect("client"),
    );
    let pid = backend_pid(&client).await;
    let runner = client.clone();
    let running = tokio::spawn(async move { runner.batch_execute("SELECT pg_sleep(600)").await });
    assert!(eventually(Duration::from_secs(5), || is_active(pid)).await);
    let reply = admin
        .call(
            "POST",
            &format!("/api/v1/targets/main/sessions/{pid}/cancel"),
            Some("terminate"),
            None,
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let err = running.await.expect("task").expect_err("cancelled");
    assert_eq!(err.code().map(|c| c.code()), Some("57014"));
    client
        .query_one("SELECT 1", &[])
        .await
        .expect("the session survives");
    assert!(pid_exists(pid).await);
    admin.stop().await;
}

/// Captures Mesa's log output on this thread (the tests below run on one thread).
pub(crate) fn capture_logs() -> (
    std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    tracing::subscriber::DefaultGuard,
) {
    #[derive(Clone)]
    struct Sink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = Sink(buffer.clone());
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || sink.clone())
        .finish();
    (buffer, tracing::subscriber::set_default(subscriber))
}

#[tokio::test]
async fn create_user_returns_a_working_password_that_is_never_logged() {
    let _serial = role_lock().await;
    let (logs, _guard) = capture_logs();
    let admin = start("create", "mesa_monitor", "mesa_admin").await;
    let reply = admin
        .call(
            "POST",
            "/api/v1/targets/main/users",
            Some("create_user"),
            Some(r#"{"name":"api_user_1"}"#),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let body = reply.json();
    let password = body["password"]
        .as_str()
        .expect("a generated password")
        .to_owned();
    assert_eq!(body["name"], "api_user_1");
    client_as("api_user_1", &password, "postgres")
        .await
        .expect("the new role logs in");
    let verifier: String = superuser("postgres")
        .await
        .query_one(
            "SELECT rolpassword FROM pg_authid WHERE rolname = 'api_user_1'",
            &[],
        )
        .await
        .expect("role")
        .get(0);
    assert!(verifier.starts_with("SCRAM-SHA-256$4096:"));

    let dup = admin
        .call(
            "POST",
            "/api/v1/targets/main/users",
            Some("create_user"),
            Some(r#"{"name":"api_user_1"}"#),
        )
        .await;
    assert_eq!(dup.status, 409, "{}", dup.body);

    let denied = admin
        .call(
            "POST",
            "/api/v1/targets/main/users",
            Some("create_user"),
            Some(r#"{"name":"api_super_1","superuser":true}"#),
        )
        .await;
    assert_eq!(denied.status, 403);
    assert!(!role_exists("api_super_1").await, "nothing was created");

    let audit_path = admin.audit.clone();
    admin.stop().await;
    let mesa_log = String::from_utf8_lossy(&logs.lock().expect("lock")).into_owned();
    assert!(!mesa_log.is_empty(), "Mesa logged something");
    assert!(
        !mesa_log.contains(&password),
        "Mesa's log holds the password"
    );
    assert!(
        !cluster().server_log().contains(&password),
        "the server log holds the password"
    );
    let audit = std::fs::read_to_string(&audit_path).expect("audit");
    assert!(
        audit.contains("api_user_1") && !audit.contains(&password),
        "{audit}"
    );
    assert!(
        !audit.contains("SCRAM-SHA-256"),
        "the audit holds a verifier"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_names_and_bodies_get_4xx_and_create_nothing() {
    let _serial = role_lock().await;
    let admin = start("hostile", "mesa_monitor", "mesa_admin").await;
    let before = role_count().await;
    let names = [
        "",
        "1abc",
        "pg_x",
        "PG_monitor",
        "a b",
        "a\"b",
        "a;DROP ROLE mesa_admin",
        "a'b",
        "a\\nb",
        "a\\u0000b",
        "rôle",
        "a-b",
        "a.b",
        "a$b",
        "--x",
        "a/*x*/",
        "🙂",
        "x'; DROP TABLE t; --",
        " a",
        "a ",
        &"a".repeat(64),
        "a,b",
        "(a)",
        "a=b",
        "\\u200b",
    ];
    let mut bodies: Vec<String> = names
        .iter()
        .map(|n| format!(r#"{{"name":"{n}"}}"#))
        .collect();
    bodies.extend(
        [
            r#"{"name": 5}"#,
            r#"{"name": ["a"]}"#,
            r#"{"name": null}"#,
            r#"{"name": "ok_name", "superuser": "yes"}"#,
            r#"{"name": "ok_name", "login": 1}"#,
            r#"{"name": "ok_name", "admin": true}"#,
            r#"{"name": "ok_name", "password": "short"}"#,
            r#"{"name": "ok_name", "password": 12345678901234567890}"#,
            r#"{}"#,
            r#"[]"#,
            r#"{"name": "ok_name""#,
            "not json",
            "",
        ]
        .map(str::to_owned),
    );
    bodies.push(format!(
        r#"{{"name":"ok_name","password":"{}"}}"#,
        "x".repeat(17 * 1024)
    ));
    bodies.push(format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)));
    bodies.push(format!(
        r#"{{"name":"ok_name","x":{}1{}}}"#,
        "{\"a\":".repeat(200),
        "}".repeat(200)
    ));
    assert!(bodies.len() >= 40);
    // Three tokens that may create users share the load, so the rate limit never answers
    // instead of validation.
    let tokens = ["full", "create_superuser", "create_user"];
    for (i, body) in bodies.iter().enumerate() {
        let reply = admin
            .call(
                "POST",
                "/api/v1/targets/main/users",
                Some(tokens[i % 3]),
                Some(body),
            )
            .await;
        assert!(
            [400, 413, 422].contains(&reply.status),
            "{} for {:?}: {}",
            reply.status,
            body.chars().take(60).collect::<String>(),
            reply.body
        );
        assert_eq!(
            reply.header("content-type"),
            Some("application/problem+json")
        );
        assert!(!reply.body.contains("CREATE ROLE"));
    }
    let large = admin
        .call(
            "POST",
            "/api/v1/targets/main/users",
            Some("create_user"),
            Some(&format!(r#"{{"name":"{}"}}"#, "a".repeat(17 * 1024))),
        )
        .await;
    assert_eq!(large.status, 413);
    assert_eq!(role_count().await, before, "no role was created");
    admin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspection_matches_the_catalogs_and_offline_health_is_200() {
    let su = superuser("postgres").await;
    su.batch_execute("CREATE DATABASE api_inspect TEMPLATE template0")
        .await
        .expect("db");
    let db = superuser("api_inspect").await;
    db.batch_execute(
        "CREATE SCHEMA inv; CREATE TABLE inv.items (sku text PRIMARY KEY, qty integer NOT NULL DEFAULT 0, note varchar(20));
         GRANT USAGE ON SCHEMA inv TO mesa_monitor; GRANT SELECT ON inv.items TO mesa_monitor;",
    )
    .await
    .expect("schema");
    let admin = start("inspect", "mesa_monitor", "mesa_admin").await;
    let dbs = admin
        .call("GET", "/api/v1/targets/main/databases", Some("read"), None)
        .await;
    assert_eq!(dbs.status, 200);
    let size: i64 = su
        .query_one("SELECT pg_database_size('api_inspect')", &[])
        .await
        .expect("size")
        .get(0);
    let entry = dbs.json()["databases"]
        .as_array()
        .expect("list")
        .iter()
        .find(|d| d["name"] == "api_inspect")
        .cloned()
        .expect("listed");
    assert_eq!(entry["owner"], "postgres");
    assert_eq!(entry["encoding"], "UTF8");
    let ours = entry["size_bytes"].as_i64().expect("size");
    assert!((ours - size).abs() as f64 / (size as f64) < 0.01);

    let tables = admin
        .call(
            "GET",
            "/api/v1/targets/main/databases/api_inspect/tables",
            Some("read"),
            None,
        )
        .await
        .json();
    assert_eq!(
        tables["tables"],
        serde_json::json!([{"schema": "inv", "name": "items", "kind": "table"}])
    );
    let columns = admin
        .call(
            "GET",
            "/api/v1/targets/main/databases/api_inspect/tables/inv/items/columns",
            Some("read"),
            None,
        )
        .await
        .json();
    assert_eq!(
        columns["columns"],
        serde_json::json!([
            {"name": "sku", "data_type": "text", "nullable": false, "default": null, "position": 1},
            {"name": "qty", "data_type": "integer", "nullable": false, "default": "0", "position": 2},
            {"name": "note", "data_type": "character varying(20)", "nullable": true, "default": null, "position": 3},
        ])
    );
    let health = admin
        .call("GET", "/api/v1/targets/main/health", Some("read"), None)
        .await
        .json();
    assert_eq!(health["status"], "ONLINE");
    let sessions = admin
        .call(
            "GET",
            "/api/v1/targets/main/sessions?limit=5&include_idle=true",
            Some("read"),
            None,
        )
        .await;
    assert_eq!(sessions.status, 200);
    assert!(sessions.json()["sessions"].as_array().expect("list").len() <= 5);
    assert_eq!(
        admin
            .call(
                "GET",
                "/api/v1/targets/main/sessions?limit=0",
                Some("read"),
                None
            )
            .await
            .status,
        422
    );
    admin.stop().await;

    // An unreachable target: health is 200 OFFLINE.
    let t = mesa::token::generate().expect("token");
    let yaml = format!(
        "web: {{listen_address: '127.0.0.1:0'}}\nadmin:\n  listen_address: '127.0.0.1:0'\n  tokens:\n    - {{name: r, sha256: '{}', scopes: [read], targets: ['*']}}\ntargets:\n  - {{name: gone, driver: postgres, host: 127.0.0.1, port: {}, username: x, sslmode: disable}}\n",
        t.sha256_hex,
        closed_port()
    );
    let app = App::start(daemon_config(&yaml)).await.expect("daemon");
    let reply = request(
        app.admin_addr().expect("admin"),
        "GET",
        "/api/v1/targets/gone/health",
        Some(t.token.expose()),
        None,
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.json(),
        serde_json::json!({"status": "OFFLINE", "reason": "unreachable"})
    );
    app.shutdown(DEFAULT_GRACE_PERIOD).await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mutation_is_audited_and_an_unwritable_audit_refuses_mutations() {
    let _serial = role_lock().await;
    let admin = start("audit", "mesa_monitor", "mesa_admin").await;
    let victim = client_as("app_user", ROLE_PASSWORD, "postgres")
        .await
        .expect("victim");
    let (pid, _held) = background(victim, "SELECT pg_sleep(600)").await;
    assert_eq!(
        admin
            .call(
                "POST",
                &format!("/api/v1/targets/main/sessions/{pid}/terminate"),
                Some("full"),
                None
            )
            .await
            .status,
        200
    );
    assert_eq!(
        admin
            .call(
                "POST",
                "/api/v1/targets/main/sessions/1/cancel",
                Some("full"),
                None
            )
            .await
            .status,
        404
    );
    assert_eq!(
        admin
            .call(
                "POST",
                "/api/v1/targets/main/users",
                Some("full"),
                Some(r#"{"name":"audited_user_1","login":false}"#)
            )
            .await
            .status,
        201
    );
    let records = admin.audit_records();
    assert_eq!(records.len(), 6, "{records:#?}");
    for pair in records.chunks(2) {
        let (intent, outcome) = (&pair[0], &pair[1]);
        assert_eq!(intent["event"], "intent");
        assert_eq!(outcome["event"], "outcome");
        assert_eq!(intent["request_id"], outcome["request_id"]);
        for field in ["time", "token", "client", "target", "action"] {
            assert!(intent[field].is_string(), "{field} in {intent}");
        }
        assert_eq!(intent["token"], "full");
        assert_eq!(intent["target"], "main");
        assert!(
            intent["client"]
                .as_str()
                .expect("client")
                .starts_with("127.0.0.1:")
        );
    }
    assert_eq!(records[0]["action"], "terminate");
    assert_eq!(records[0]["pid"], pid);
    assert_eq!(records[1]["outcome"], "ok");
    assert_eq!(records[3]["outcome"], "error");
    assert_eq!(records[3]["reason"], "not_found");
    assert_eq!(records[3]["status"], 404);
    assert_eq!(records[4]["role"], "audited_user_1");
    assert_eq!(records[4]["login"], false);
    assert_eq!(records[4]["superuser"], false);
    assert_eq!(records[5]["status"], 201);
    // mesa_monitor lacks pg_signal_backend: PostgreSQL refuses to signal app_user's session.
    let other = client_as("app_user", ROLE_PASSWORD, "postgres")
        .await
        .expect("app_user");
    let denied_pid = backend_pid(&other).await;
    let weak = start("audit-weak", "mesa_monitor", "mesa_monitor").await;
    assert_eq!(
        weak.call(
            "POST",
            &format!("/api/v1/targets/main/sessions/{denied_pid}/terminate"),
            Some("full"),
            None
        )
        .await
        .status,
        403
    );
    let weak_records = weak.audit_records();
    assert_eq!(weak_records[1]["sqlstate"], "42501", "{weak_records:#?}");
    weak.stop().await;

    // Replace the audit file with a directory: it can no longer be appended to (even by root).
    std::fs::remove_file(&admin.audit).expect("remove audit");
    std::fs::create_dir(&admin.audit).expect("directory in its place");
    let victim = client_as("app_user", ROLE_PASSWORD, "postgres")
        .await
        .expect("victim");
    let (pid, _held2) = background(victim, "SELECT pg_sleep(600)").await;
    let refused = admin
        .call(
            "POST",
            &format!("/api/v1/targets/main/sessions/{pid}/terminate"),
            Some("full"),
            None,
        )
        .await;
    assert_eq!(refused.status, 503, "{}", refused.body);
    let refused = admin
        .call(
            "POST",
            "/api/v1/targets/main/users",
            Some("full"),
            Some(r#"{"name":"unaudited_user_1"}"#),
        )
        .await;
    assert_eq!(refused.status, 503);
    assert!(pid_exists(pid).await, "the session was not terminated");
    assert!(
        !role_exists("unaudited_user_1").await,
        "the role was not created"
    );
    assert_eq!(
        admin
            .call("GET", "/api/v1/targets/main/databases", Some("full"), None)
            .await
            .status,
        200,
        "reads still work"
    );
    std::fs::remove_dir(&admin.audit).expect("cleanup");
    admin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_is_rate_limited_per_token() {
    let admin = start("rate", "mesa_monitor", "mesa_admin").await;
    let mut limited = None;
    for _ in 0..40 {
        let reply = admin
            .call("GET", "/api/v1/targets", Some("read"), None)
            .await;
        if reply.status == 429 {
            limited = Some(reply);
            break;
        }
        assert_eq!(reply.status, 200);
    }
    let limited = limited.expect("a burst of 40 hits the limit");
    let retry: u64 = limited
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry));
    assert_eq!(
        admin
            .call("GET", "/api/v1/targets", Some("full"), None)
            .await
            .status,
        200,
        "other tokens are unaffected"
    );
    tokio::time::sleep(Duration::from_secs(retry)).await;
    assert_eq!(
        admin
            .call("GET", "/api/v1/targets", Some("read"), None)
            .await
            .status,
        200,
        "the budget refills"
    );
    admin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowloris_client_is_dropped_while_others_are_served() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let admin = start("slow", "mesa_monitor", "mesa_admin").await;
    let addr = admin.addr;
    let slow = tokio::spawn(async move {
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let started = Instant::now();
        let header = b"GET /api/v1/targets HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
        for byte in header {
            if stream.write_all(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            let mut buf = [0u8; 512];
            if let Ok(Ok(n)) =
                tokio::time::timeout(Duration::from_millis(1), stream.read(&mut buf)).await
                && (n == 0 || buf[..n].starts_with(b"HTTP/1.1 408"))
            {
                break;
            }
        }
        started.elapsed()
    });
    // Meanwhile, ordinary requests are answered.
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            admin
                .call("GET", "/api/v1/openapi.json", None, None)
                .await
                .status,
            200
        );
    }
    let held = slow.await.expect("slow client");
    assert!(
        held <= mesa::http::HEADER_READ_TIMEOUT + Duration::from_secs(2),
        "held {held:?}"
    );
    admin.stop().await;
}

#[tokio::test]
async fn the_openapi_document_and_the_router_agree() {
    let doc = mesa::http::admin::openapi::document();
    let mut documented: Vec<(String, String)> = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("operations").keys() {
            documented.push((method.to_uppercase(), path.clone()));
        }
    }
    let mut routed: Vec<(String, String)> = mesa::http::admin::ROUTES
        .iter()
        .map(|r| (r.method.to_string(), r.path.to_owned()))
        .collect();
    documented.sort();
    routed.sort();
    assert_eq!(documented, routed);
    // And the live server answers every documented path (not with "no such route").
    let admin = start("openapi", "mesa_monitor", "mesa_admin").await;
    for (method, path) in &documented {
        let concrete = path
            .replace("{target}", "main")
            .replace("{pid}", "1")
            .replace("{database}", "postgres")
            .replace("{schema}", "public")
            .replace("{table}", "nope");
        let reply = admin.call(method, &concrete, None, None).await;
        let expected = if path.ends_with("openapi.json") {
            200
        } else {
            401
        };
        assert_eq!(reply.status, expected, "{method} {path}");
    }
    // The document is public: it must not list the configured targets (`main` and `other`).
    let served = admin.call("GET", "/api/v1/openapi.json", None, None).await;
    assert!(
        !served.body.contains("\"other\""),
        "the unauthenticated document names a configured target"
    );
    let target = &served.json()["paths"]["/api/v1/targets/{target}/health"]["get"]["parameters"][0];
    assert_eq!(target["name"], "target");
    assert!(target["schema"].get("enum").is_none(), "{target}");
    admin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mutation_finishes_when_the_client_hangs_up_and_shutdown_waits_for_it() {
    use tokio::io::AsyncWriteExt as _;
    let _serial = role_lock().await;
    let admin = start("hangup", "mesa_monitor", "mesa_admin").await;
    // CREATE ROLE waits while pg_authid is locked (the collection lock_timeout is 1 s).
    let locker = superuser("postgres").await;
    locker
        .batch_execute("BEGIN; LOCK TABLE pg_catalog.pg_authid IN EXCLUSIVE MODE;")
        .await
        .expect("lock");
    let body = r#"{"name":"hangup_user_1"}"#;
    let raw = format!(
        "POST /api/v1/targets/main/users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        admin.token("create_user"),
        body.len()
    );
    let mut stream = tokio::net::TcpStream::connect(admin.addr)
        .await
        .expect("connect");
    stream.write_all(raw.as_bytes()).await.expect("send");
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(stream); // the client hangs up mid-request
    let Admin { app, audit, .. } = admin;
    let shutdown = tokio::spawn(async move {
        let started = Instant::now();
        app.shutdown(DEFAULT_GRACE_PERIOD)
            .await
            .expect("clean shutdown");
        started.elapsed()
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(!shutdown.is_finished(), "shutdown waits for the mutation");
    let released = Instant::now();
    locker.batch_execute("COMMIT").await.expect("unlock");
    shutdown.await.expect("shutdown task");
    assert!(released.elapsed() < DEFAULT_GRACE_PERIOD);
    assert!(
        role_exists("hangup_user_1").await,
        "the mutation completed without its client"
    );
    let records = std::fs::read_to_string(&audit).expect("audit");
    assert!(
        records.contains("\"event\":\"outcome\"") && records.contains("hangup_user_1"),
        "{records}"
    );
}
