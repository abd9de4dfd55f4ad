//! Every mutation is audited; an audit log that cannot be written refuses mutations.

use super::*;

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
