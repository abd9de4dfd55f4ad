//! Terminate and cancel, create user (the password never logged), and hostile names and
//! bodies, through the API against the real server.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_and_cancel_through_the_api() {
    // It creates a role: other tests count roles.
    let _serial = role_lock().await;
    // An admin role of its own (mesa_admin's rights), so the server log lines counted below
    // are this test's and not those of the other tests that log in as mesa_admin at the time.
    roles(&[
        "CREATE ROLE signal_admin LOGIN PASSWORD 'fixture-password-0123456789' IN ROLE pg_signal_backend, pg_read_all_stats",
    ])
    .await;
    let admin = start("signal", "mesa_monitor", "signal_admin").await;
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

    let admin_lines = log_lines("signal_admin");
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
        log_lines("signal_admin"),
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
