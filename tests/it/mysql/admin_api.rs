//! Every admin route on a MySQL target through the daemon's real HTTP API: what each token
//! gets (the auth matrix of the PostgreSQL routes), what each call does on the server, and
//! its audit records.

use std::collections::HashMap;

use mesa::app::{App, DEFAULT_GRACE_PERIOD};
use serde_json::Value;

use super::{PASSWORD, plain_user, server, sleeper};
use crate::support::{Reply, daemon_config, request};

/// (kind, token name, scopes).
const KINDS: [(&str, &str, &str); 5] = [
    ("read", "reader", "[read], targets: ['*']"),
    ("terminate", "terminator", "[terminate], targets: ['*']"),
    ("create_user", "creator", "[create_user], targets: ['*']"),
    (
        "other_target",
        "outsider",
        "[read, terminate, create_user, create_superuser], targets: [elsewhere]",
    ),
    (
        "full",
        "full",
        "[read, terminate, create_user, create_superuser], targets: ['*']",
    ),
];

struct Daemon {
    app: App,
    addr: std::net::SocketAddr,
    tokens: HashMap<&'static str, String>,
    audit: std::path::PathBuf,
}

impl Daemon {
    async fn start() -> Self {
        let mut tokens = HashMap::new();
        let mut yaml = String::new();
        for (kind, name, scopes) in KINDS {
            let t = mesa::token::generate().expect("token");
            yaml.push_str(&format!(
                "    - {{name: {name}, sha256: '{}', scopes: {scopes}}}\n",
                t.sha256_hex
            ));
            tokens.insert(kind, t.token.expose().to_owned());
        }
        let s = server();
        let config = daemon_config(&format!(
            "collection: {{interval: 2s, timeout: 1s}}\nweb: {{listen_address: '127.0.0.1:0'}}\nadmin:\n  listen_address: '127.0.0.1:0'\n  audit_log: audit-mysql.jsonl\n  reap_interval: 24h\n  tokens:\n{yaml}targets:\n  - {{name: my, driver: mysql, host: '{}', port: {}, username: mesa_mon, password_file: fixture.pw, ssl_mode: disabled, account_host: 127.0.0.1, admin: {{username: mesa_adm, password_file: fixture.pw}}}}\n  - {{name: elsewhere, driver: mysql, host: '{}', port: {}, username: mesa_mon, password_file: fixture.pw, ssl_mode: disabled}}\n",
            s.host(),
            s.port(),
            s.host(),
            s.port()
        ));
        let audit = config.admin.audit_log.clone().expect("audit path");
        let _ = std::fs::remove_file(&audit);
        let app = App::start(config).await.expect("daemon starts");
        let addr = app.admin_addr().expect("admin API enabled");
        Self {
            app,
            addr,
            tokens,
            audit,
        }
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        kind: Option<&str>,
        body: Option<&str>,
    ) -> Reply {
        let token = kind.map(|k| {
            self.tokens.get(k).map_or(
                "mesa_wrong_token_0000000000000000000000000000",
                String::as_str,
            )
        });
        request(self.addr, method, path, token, body).await
    }

    fn audit_records(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.audit)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("audit lines are JSON"))
            .collect()
    }
}

/// What a token of `kind` gets on a route needing `need` whose success is `success`.
fn expected(need: &str, kind: &str, success: u16) -> u16 {
    match kind {
        "none" | "wrong" => 401,
        "full" => success,
        "other_target" => 403,
        k if k == need => success,
        _ => 403,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_each_token_as_on_postgres_and_acts_on_the_server() {
    let s = server();
    s.sql(
        "",
        "CREATE DATABASE IF NOT EXISTS api_shop; \
         CREATE TABLE IF NOT EXISTS api_shop.items (id INT PRIMARY KEY, label TEXT); \
         GRANT SELECT ON api_shop.* TO mesa_mon@'%';",
    )
    .expect("schema");
    plain_user(s, "my_api_app");
    let d = Daemon::start().await;

    // The auth matrix, on requests that change nothing when they succeed or are refused
    // before the gateway: every route, every kind of token.
    let reads: [(&str, String); 6] = [
        ("GET", "/api/v1/targets/my/health".into()),
        ("GET", "/api/v1/targets/my/sessions".into()),
        ("GET", "/api/v1/targets/my/databases".into()),
        ("GET", "/api/v1/targets/my/databases/api_shop/tables".into()),
        (
            "GET",
            "/api/v1/targets/my/databases/api_shop/tables/api_shop/items/columns".into(),
        ),
        ("GET", "/api/v1/targets/my/users".into()),
    ];
    for (method, path) in &reads {
        let success = if path.ends_with("/users") { 409 } else { 200 };
        for kind in [
            "none",
            "wrong",
            "read",
            "terminate",
            "create_user",
            "other_target",
            "full",
        ] {
            let token = (kind != "none").then_some(kind);
            let got = d.call(method, path, token, None).await;
            assert_eq!(
                got.status,
                expected("read", kind, success),
                "{kind} {method} {path}: {}",
                got.body
            );
        }
    }
    let mutations: [(&str, &str, Option<&str>, &str, u16); 5] = [
        (
            "POST",
            "/api/v1/targets/my/sessions/2000000000/terminate",
            None,
            "terminate",
            404,
        ),
        (
            "POST",
            "/api/v1/targets/my/sessions/2000000000/cancel",
            None,
            "terminate",
            404,
        ),
        (
            "POST",
            "/api/v1/targets/my/sessions/terminate",
            Some(r#"{"filter":{"usename":"nobody_at_all"},"max_count":5,"dry_run":true}"#),
            "terminate",
            200,
        ),
        (
            "DELETE",
            "/api/v1/targets/my/users/my_nobody",
            None,
            "create_user",
            409,
        ),
        (
            "POST",
            "/api/v1/targets/my/users/my_nobody/password",
            None,
            "create_user",
            409,
        ),
    ];
    for (method, path, body, need, success) in mutations {
        for kind in [
            "none",
            "wrong",
            "read",
            "terminate",
            "create_user",
            "other_target",
            "full",
        ] {
            let token = (kind != "none").then_some(kind);
            let got = d.call(method, path, token, body).await;
            assert_eq!(
                got.status,
                expected(need, kind, success),
                "{kind} {method} {path}: {}",
                got.body
            );
        }
    }

    // What each call does.
    let health = d
        .call("GET", "/api/v1/targets/my/health", Some("read"), None)
        .await
        .json();
    assert!(
        health["version"]
            .as_str()
            .unwrap_or_default()
            .contains("MariaDB"),
        "{health}"
    );
    assert_eq!(health["max_connections"], 200);

    let (id, task) = sleeper("my_api_app", PASSWORD, 60).await;
    let sessions = d
        .call("GET", "/api/v1/targets/my/sessions", Some("read"), None)
        .await
        .json();
    let listed = sessions["sessions"]
        .as_array()
        .or_else(|| sessions.as_array())
        .expect("a list")
        .iter()
        .find(|s| s["pid"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("{id} not in {sessions}"));
    assert_eq!(listed["user"], "my_api_app");
    assert!(!listed.to_string().contains("hunter2"), "{listed}");

    let dry = d
        .call(
            "POST",
            "/api/v1/targets/my/sessions/terminate",
            Some("terminate"),
            Some(r#"{"filter":{"usename":"my_api_app","state":"active"},"max_count":5,"dry_run":true}"#),
        )
        .await;
    assert_eq!(dry.status, 200, "{}", dry.body);
    assert!(
        dry.body.contains(&id.to_string()) && dry.body.contains("would_terminate"),
        "{}",
        dry.body
    );

    let cancel = d
        .call(
            "POST",
            &format!("/api/v1/targets/my/sessions/{id}/cancel"),
            Some("terminate"),
            None,
        )
        .await;
    assert_eq!(cancel.status, 200, "{}", cancel.body);
    let (mut conn, result) = task.await.expect("task");
    assert!(
        matches!(result, Err(mysql_async::Error::Server(ref e)) if e.code == 1317),
        "{result:?}"
    );
    use mysql_async::prelude::Queryable;
    conn.query_drop("SELECT 1")
        .await
        .expect("cancel keeps the session");
    let terminate = d
        .call(
            "POST",
            &format!("/api/v1/targets/my/sessions/{id}/terminate"),
            Some("terminate"),
            None,
        )
        .await;
    assert_eq!(terminate.status, 200, "{}", terminate.body);
    assert!(
        conn.query_drop("SELECT 1").await.is_err(),
        "terminate ends the session"
    );

    // A privileged account's session: refused with the reason, as problem+json.
    let mut root = super::client(s, "root", s.password()).await;
    let refused = d
        .call(
            "POST",
            &format!("/api/v1/targets/my/sessions/{}/terminate", root.id()),
            Some("terminate"),
            None,
        )
        .await;
    assert_eq!(refused.status, 409, "{}", refused.body);
    assert_eq!(
        refused.header("content-type"),
        Some("application/problem+json")
    );
    assert!(
        refused.body.contains("SUPER or CONNECTION ADMIN"),
        "{}",
        refused.body
    );
    root.query_drop("SELECT 1").await.expect("untouched");

    let created = d
        .call(
            "POST",
            "/api/v1/targets/my/users",
            Some("create_user"),
            Some(r#"{"name":"my_api_user","valid_for":"3days"}"#),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let body = created.json();
    let password = body["password"]
        .as_str()
        .expect("generated password")
        .to_owned();
    assert!(body["valid_until"].is_string(), "{body}");
    let mut login = super::client(s, "my_api_user", &password).await;
    login
        .query_drop("SELECT 1")
        .await
        .expect("the new account logs in");
    let superuser = d
        .call(
            "POST",
            "/api/v1/targets/my/users",
            Some("full"),
            Some(r#"{"name":"my_api_root","superuser":true}"#),
        )
        .await;
    assert_eq!(superuser.status, 409, "{}", superuser.body);
    let hourly = d
        .call(
            "POST",
            "/api/v1/targets/my/users",
            Some("create_user"),
            Some(r#"{"name":"my_api_hourly","valid_for":"1h"}"#),
        )
        .await;
    assert_eq!(hourly.status, 422, "{}", hourly.body);

    let dbs = d
        .call("GET", "/api/v1/targets/my/databases", Some("read"), None)
        .await;
    assert!(dbs.body.contains("\"api_shop\""), "{}", dbs.body);
    let columns = d
        .call(
            "GET",
            "/api/v1/targets/my/databases/api_shop/tables/api_shop/items/columns",
            Some("read"),
            None,
        )
        .await;
    assert!(
        columns.body.contains("\"label\"") && columns.body.contains("\"text\""),
        "{}",
        columns.body
    );
    let missing = d
        .call(
            "GET",
            "/api/v1/targets/my/databases/no_such_db/tables",
            Some("read"),
            None,
        )
        .await;
    assert_eq!(missing.status, 404, "{}", missing.body);

    // The audit: an intent and an outcome per mutation that reached the gateway, on `my`,
    // never the password.
    let records = d.audit_records();
    let text = std::fs::read_to_string(&d.audit).expect("audit");
    assert!(!text.contains(&password), "the audit holds the password");
    let of = |action: &str, outcome: &str| {
        records
            .iter()
            .filter(|r| r["event"] == "outcome" && r["action"] == action && r["outcome"] == outcome)
            .count()
    };
    assert!(
        of("terminate", "ok") >= 1 && of("cancel", "ok") >= 1,
        "{records:#?}"
    );
    assert!(
        of("terminate", "error") >= 2,
        "the refused and the missing: {records:#?}"
    );
    assert!(of("create_user", "ok") >= 1, "{records:#?}");
    let intent = records
        .iter()
        .find(|r| {
            r["event"] == "intent" && r["action"] == "create_user" && r["role"] == "my_api_user"
        })
        .expect("the create intent");
    assert_eq!(intent["target"], "my");
    assert_eq!(intent["token"], "creator");
    for pair in records.iter().filter(|r| r["event"] == "intent") {
        let id = &pair["request_id"];
        assert_eq!(
            records
                .iter()
                .filter(|r| r["event"] == "outcome" && r["request_id"] == *id)
                .count(),
            1,
            "one outcome for {pair}"
        );
    }
    d.app
        .shutdown(DEFAULT_GRACE_PERIOD)
        .await
        .expect("clean shutdown");
}
