//! The admin API against the real server: the fixtures (a daemon with one token per scope),
//! the auth matrix and the OpenAPI document here; terminate, cancel, create user and hostile
//! input in `actions`; inspection in `inspect`; the audit trail in `audit`; the rate limit, a
//! slowloris client and a client that hangs up in `limits`.

mod actions;
mod audit;
mod bulk;
mod cli;
mod inspect;
mod lifecycle;
mod limits;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use mesa::app::{App, DEFAULT_GRACE_PERIOD};
use serde_json::Value;

use crate::support::*;

/// One token per kind: (kind, token name, scopes).
pub(crate) const KINDS: [(&str, &str, &str); 7] = [
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
    (
        "expiring",
        "expiring",
        "[create_user], targets: ['*'], require_expiry: true, max_valid_for: 1h",
    ),
];

/// An admin-enabled daemon with one token of each of [`KINDS`].
pub(crate) struct Admin {
    pub app: App,
    pub addr: SocketAddr,
    tokens: HashMap<&'static str, String>,
    pub audit: PathBuf,
}

impl Admin {
    pub fn token(&self, kind: &str) -> &str {
        &self.tokens[kind]
    }

    /// A request with the token of `kind` (`None`: no token).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        kind: Option<&str>,
        body: Option<&str>,
    ) -> Reply {
        request(self.addr, method, path, kind.map(|k| self.token(k)), body).await
    }

    pub async fn stop(self) {
        self.app
            .shutdown(DEFAULT_GRACE_PERIOD)
            .await
            .expect("clean shutdown");
    }

    pub fn audit_records(&self) -> Vec<Value> {
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
    // Every admin daemon of the suite reaps the shared cluster; only the lifecycle tests'
    // own reapers run within a test's lifetime, so their audit trails see every step.
    start_custom(
        tag,
        monitor,
        admin,
        other_monitor,
        "  reap_interval: 24h\n",
        "",
    )
    .await
}

/// As [`start_with`], with `admin_extra` keys in the `admin` section (e.g. the reaper's) and
/// `target_admin_extra` keys in each target's `admin` block (e.g. `grantable_roles`).
async fn start_custom(
    tag: &str,
    monitor: &str,
    admin: &str,
    other_monitor: &str,
    admin_extra: &str,
    target_admin_extra: &str,
) -> Admin {
    let target = |name: &str, monitor: &str| {
        format!(
            "  - {{name: {name}, driver: postgres, host: '{{host}}', port: {{port}}, username: {monitor}, password_file: fixture.pw, sslmode: disable, admin: {{username: {admin}, password_file: fixture.pw{target_admin_extra}}}}}\n"
        )
    };
    start_on(
        tag,
        NO_VISITS,
        admin_extra,
        &format!(
            "{}{}",
            target("main", monitor),
            target("other", other_monitor)
        ),
    )
    .await
}

/// An admin-enabled daemon on `targets` (YAML list items), collecting every 2 s with the
/// `collection_extra` keys, with `admin_extra` keys in its `admin` section, one token of
/// each of [`KINDS`] and an audit log named after `tag`.
pub(crate) async fn start_on(
    tag: &str,
    collection_extra: &str,
    admin_extra: &str,
    targets: &str,
) -> Admin {
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
    let yaml = format!(
        "collection: {{interval: 2s, timeout: 1s, {collection_extra}}}\nweb: {{listen_address: '127.0.0.1:0'}}\nadmin:\n  listen_address: '127.0.0.1:0'\n  audit_log: audit-{tag}.jsonl\n{admin_extra}  tokens:\n{token_yaml}targets:\n{targets}"
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
    // Method, path, body, the scope it needs, and what a token with that scope gets.
    let routes: Vec<(&str, String, Option<String>, &str, u16)> = vec![
        ("GET", "/api/v1/targets".into(), None, "read", 200),
        (
            "GET",
            "/api/v1/targets/main/health".into(),
            None,
            "read",
            200,
        ),
        (
            "GET",
            "/api/v1/targets/main/sessions".into(),
            None,
            "read",
            200,
        ),
        (
            "POST",
            format!("/api/v1/targets/main/sessions/{stranger}/terminate"),
            None,
            "terminate",
            404,
        ),
        (
            "POST",
            format!("/api/v1/targets/main/sessions/{stranger}/cancel"),
            None,
            "terminate",
            404,
        ),
        (
            "POST",
            "/api/v1/targets/main/sessions/terminate".into(),
            Some(
                r#"{"filter":{"application_name":"matrix-nobody"},"max_count":1,"dry_run":true}"#
                    .into(),
            ),
            "terminate",
            200,
        ),
        (
            "POST",
            "/api/v1/targets/main/users".into(),
            Some(r#"{"name":"matrix_user_N"}"#.into()),
            "create_user",
            201,
        ),
        (
            "POST",
            "/api/v1/targets/main/users".into(),
            Some(r#"{"name":"matrix_super_N","superuser":true}"#.into()),
            "create_superuser",
            201,
        ),
        (
            "GET",
            "/api/v1/targets/main/users".into(),
            None,
            "read",
            200,
        ),
        (
            "DELETE",
            "/api/v1/targets/main/users/matrix_nobody".into(),
            None,
            "create_user",
            404,
        ),
        (
            "POST",
            "/api/v1/targets/main/users/matrix_nobody/password".into(),
            None,
            "create_user",
            404,
        ),
        (
            "GET",
            "/api/v1/targets/main/databases".into(),
            None,
            "read",
            200,
        ),
        (
            "GET",
            "/api/v1/targets/main/databases/postgres/tables".into(),
            None,
            "read",
            200,
        ),
        (
            "GET",
            "/api/v1/targets/main/databases/postgres/tables/matrix_schema/matrix_table/columns"
                .into(),
            None,
            "read",
            200,
        ),
        ("GET", "/api/v1/openapi.json".into(), None, "none", 200),
    ];
    // What each token kind gets on a route needing `need` that answers `success`.
    let expect = |need: &str, kind: &str, path: &str, success: u16| -> u16 {
        if need == "none" {
            return 200;
        }
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
        for (method, path, body, need, success) in &routes {
            for kind in [
                "none",
                "wrong",
                "read",
                "terminate",
                "create_user",
                "create_superuser",
                "other_target",
            ] {
                let want = expect(need, kind, path, *success);
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
    for (method, path, body, need, success) in &routes {
        for kind in [
            "read",
            "terminate",
            "create_user",
            "create_superuser",
            "other_target",
            "full",
        ] {
            let want = expect(need, kind, path, *success);
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
