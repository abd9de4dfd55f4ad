//! Admin calls whose target dies mid-call: 503/504 problem+json, an outcome per call in the
//! audit log, nothing left half done.

use super::*;

/// Starts an admin call (`start`) with every chunk slowed by 60 ms, lets `moment` pass, then
/// makes `fault`; returns the answer and how long after the fault it came.
async fn interrupted(
    proxy: &FaultProxy,
    start: impl FnOnce() -> tokio::task::JoinHandle<Reply>,
    moment: impl std::future::Future<Output = ()>,
    fault: Mode,
) -> (Reply, Duration) {
    proxy.set(Mode::Latency(Duration::from_millis(60)));
    let pending = start();
    moment.await;
    proxy.set(fault);
    let at = Instant::now();
    let reply = pending.await.expect("request task");
    (reply, at.elapsed())
}

/// The audit log's records, one JSON object per line.
fn audit_records(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("audit lines are JSON"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_actions_whose_target_dies_mid_call() {
    let (monitor, admin) = ("fault_adm_monitor", "fault_adm_admin");
    {
        let _guard = role_lock().await;
        superuser("postgres")
            .await
            .batch_execute(&format!(
                "DROP ROLE IF EXISTS fault_half_user;
                 DROP ROLE IF EXISTS {monitor}; DROP ROLE IF EXISTS {admin};
                 CREATE ROLE {monitor} LOGIN PASSWORD '{ROLE_PASSWORD}' IN ROLE pg_monitor;
                 CREATE ROLE {admin} LOGIN CREATEROLE PASSWORD '{ROLE_PASSWORD}'
                   IN ROLE pg_signal_backend, pg_read_all_stats;"
            ))
            .await
            .expect("roles");
    }
    let upstream = std::net::SocketAddr::from(([127, 0, 0, 1], cluster().port()));
    let proxy = FaultProxy::start(upstream).await;
    let token = mesa::token::generate().expect("token");
    let config = daemon_config(&format!(
        "collection: {{interval: 2s, timeout: 1s, connect_timeout: 500ms}}
web: {{listen_address: '127.0.0.1:0'}}
admin:
  listen_address: '127.0.0.1:0'
  audit_log: audit-faults.jsonl
  tokens:
    - {{name: ops, sha256: '{sha}', scopes: [read, terminate, create_user], targets: ['*']}}
targets:
  - {{name: faulty, driver: postgres, host: 127.0.0.1, port: {port}, username: {monitor}, password_file: fixture.pw, sslmode: disable, admin: {{username: {admin}, password_file: fixture.pw}}}}
",
        sha = token.sha256_hex,
        port = proxy.port(),
    ));
    let audit = config.admin.audit_log.clone().expect("audit path");
    let _ = std::fs::remove_file(&audit);
    let app = App::start(config).await.expect("daemon starts");
    let addr = app.admin_addr().expect("admin API");
    let bearer = token.token.expose().to_owned();
    let call = |method: &'static str, path: String, body: Option<&'static str>| {
        let bearer = bearer.clone();
        tokio::spawn(async move { request(addr, method, &path, Some(&bearer), body).await })
    };

    // Create-user: every chunk is slowed, then the connection is reset while the call is in
    // flight (during the login or the transaction).
    let create = || {
        call(
            "POST",
            "/api/v1/targets/faulty/users".to_owned(),
            Some(r#"{"name":"fault_half_user"}"#),
        )
    };
    let sleep = || tokio::time::sleep(Duration::from_millis(250));
    let (created, _) = interrupted(&proxy, create, sleep(), Mode::Reset).await;
    eprintln!(
        "create-user, reset during the login: {} {}",
        created.status, created.body
    );
    assert!(
        [503, 504].contains(&created.status),
        "create-user through a dying target: {} {}",
        created.status,
        created.body
    );
    assert_eq!(
        created.header("content-type"),
        Some("application/problem+json")
    );

    // Again, but the reset comes once Mesa's admin session exists on the server (logged in,
    // its transaction on the way).
    let su = superuser("postgres").await;
    let admin_session = async {
        let logged_in = Instant::now();
        while su
            .query_opt(
                "SELECT 1 FROM pg_stat_activity WHERE usename = $1",
                &[&admin],
            )
            .await
            .expect("probe")
            .is_none()
        {
            assert!(
                logged_in.elapsed() < Duration::from_secs(5),
                "no admin session"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    let (mid, _) = interrupted(&proxy, create, admin_session, Mode::Reset).await;
    eprintln!(
        "create-user, reset after the login: {} {}",
        mid.status, mid.body
    );
    assert!(
        [503, 504].contains(&mid.status),
        "{} {}",
        mid.status,
        mid.body
    );
    proxy.set(Mode::Pass);

    // Terminate: the target stops answering mid-call (a black hole).
    let victim = client_as("app_user", ROLE_PASSWORD, "postgres")
        .await
        .expect("victim");
    let pid = backend_pid(&victim).await;
    let terminate = || {
        call(
            "POST",
            format!("/api/v1/targets/faulty/sessions/{pid}/terminate"),
            None,
        )
    };
    let (terminated, after_fault) = interrupted(&proxy, terminate, sleep(), Mode::BlackHole).await;
    assert_eq!(terminated.status, 504, "{}", terminated.body);
    assert!(after_fault < Duration::from_secs(10), "{after_fault:?}");
    proxy.set(Mode::Pass);

    // Nothing half-created: the role either does not exist or exists whole (created and
    // committed in one transaction, its login and password usable).
    if role_exists("fault_half_user").await {
        panic!(
            "create-user answered {} but the role exists: the outcome says it failed",
            created.status
        );
    }
    // The terminate never reached the server (or did, whole): the audit says which.
    let records = audit_records(&audit);
    let outcomes: Vec<&serde_json::Value> =
        records.iter().filter(|r| r["event"] == "outcome").collect();
    assert_eq!(outcomes.len(), 3, "{records:#?}");
    for (outcome, status) in outcomes
        .iter()
        .zip([created.status, mid.status, terminated.status])
    {
        assert_eq!(outcome["outcome"], "error", "{outcome}");
        assert_eq!(outcome["status"], status, "{outcome}");
    }
    assert!(
        pid_exists(pid).await,
        "the terminate failed, so the victim session must still be there"
    );
    drop(victim);
    app.shutdown(DEFAULT_GRACE_PERIOD)
        .await
        .expect("clean shutdown");
}
