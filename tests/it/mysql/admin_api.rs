//! Every admin route on a MySQL target through the daemon's real HTTP API: what each token
//! gets (the auth matrix of the PostgreSQL routes), what each call does on the server, and
//! its audit records.

use mysql_async::prelude::Queryable;

use super::{PASSWORD, plain_user, server, sleeper};
use crate::admin::{Admin, start_on};
use crate::support::{Reply, request};

/// A daemon with the admin API on two MySQL targets of the shared server: `my` (admin login
/// `mesa_adm`, accounts for `127.0.0.1`) and `other_target`'s only target, `other`.
async fn daemon() -> Admin {
    let s = server();
    start_on(
        "mysql",
        "session: kept",
        "  reap_interval: 24h\n",
        &format!(
            "  - {{name: my, driver: mysql, host: '{h}', port: {p}, username: mesa_mon, password_file: fixture.pw, ssl_mode: disabled, account_host: 127.0.0.1, admin: {{username: mesa_adm, password_file: fixture.pw}}}}\n  - {{name: other, driver: mysql, host: '{h}', port: {p}, username: mesa_mon, password_file: fixture.pw, ssl_mode: disabled}}\n",
            h = s.host(),
            p = s.port()
        ),
    )
    .await
}

/// A request with the token of `kind`; `wrong` sends a token no one has, `none` none.
async fn call(d: &Admin, method: &str, path: &str, kind: &str, body: Option<&str>) -> Reply {
    match kind {
        "none" => d.call(method, path, None, body).await,
        "wrong" => {
            request(
                d.addr,
                method,
                path,
                Some("mesa_wrong_token_000000000000000000000000"),
                body,
            )
            .await
        }
        k => d.call(method, path, Some(k), body).await,
    }
}

/// `mesa admin --target my ARGS` (the real binary) with the token of `kind`: exit code,
/// stdout, stderr.
async fn mesa_admin(d: &Admin, kind: &str, args: &[&str]) -> (i32, String, String) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_mesa"));
    command
        .args(["admin", "--target", "my"])
        .args(args)
        .env("MESA_ADMIN_URL", format!("http://{}", d.addr))
        .env("MESA_ADMIN_TOKEN", d.token(kind))
        .env_remove("MESA_ADMIN_TARGET");
    let out = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("join")
        .expect("the mesa binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
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
    let d = daemon().await;

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
            let got = call(&d, method, path, kind, None).await;
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
            let got = call(&d, method, path, kind, body).await;
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

    // The command line lists it, and a dry run of a bulk terminate finds it.
    let (code, out, err) = mesa_admin(&d, "read", &["sessions", "list"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&id.to_string()) && out.contains("my_api_app"),
        "{out}"
    );
    let (code, out, err) = mesa_admin(
        &d,
        "terminate",
        &[
            "sessions",
            "terminate",
            "--user",
            "my_api_app",
            "--max",
            "5",
            "--dry-run",
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&id.to_string()), "{out}");
    // What MySQL cannot do says so, with the conflict's exit code.
    let (code, _, err) = mesa_admin(&d, "read", &["users", "list"]).await;
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("mark"), "{err}");

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
    d.stop().await;
}
