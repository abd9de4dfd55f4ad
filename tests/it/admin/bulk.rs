//! Bulk terminate and cancel against the real server: a dry run signals nothing, more
//! matches than `max_count` signal nothing, a superuser's session and one of Mesa's own
//! logins are skipped with their reason, every pid gets its outcome, and one audit record
//! holds the filter and every pid.

use super::*;

/// A session as `user` with `application_name` `app`, its connection driven by a task.
async fn session_as(user: &str, password: &str, app: &str) -> tokio_postgres::Client {
    let c = cluster();
    let (client, connection) = tokio_postgres::Config::new()
        .host(c.host())
        .port(c.port())
        .user(user)
        .password(password)
        .dbname("postgres")
        .application_name(app)
        .connect(tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("{user} connects: {e}"));
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// The outcome the answer gives `pid`, and its reason.
fn outcome_of(reply: &serde_json::Value, pid: i32) -> (String, String) {
    let s = reply["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .find(|s| s["pid"] == pid)
        .unwrap_or_else(|| panic!("pid {pid} in {reply}"));
    assert!(s["backend_start"].is_string(), "pinned: {s}");
    (
        s["outcome"].as_str().expect("outcome").to_owned(),
        s["reason"].as_str().unwrap_or("").to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_terminate_dry_run_limit_skips_and_one_audit_record() {
    let _serial = role_lock().await;
    let p = ROLE_PASSWORD;
    roles(&[format!("CREATE ROLE bulk_app LOGIN PASSWORD '{p}'").as_str()]).await;
    let admin = start("bulk", "mesa_monitor", "mesa_admin").await;

    // Three application sessions idle in a transaction, and beside them, matching the same
    // filter, a superuser's and one of Mesa's own admin login.
    let mut apps = Vec::new();
    for _ in 0..3 {
        let c = session_as("bulk_app", p, "bulk_worker").await;
        c.batch_execute("BEGIN; SELECT 1")
            .await
            .expect("idle in tx");
        apps.push((backend_pid(&c).await, c));
    }
    let c = cluster();
    let root = session_as(c.superuser(), c.password(), "bulk_worker").await;
    root.batch_execute("BEGIN; SELECT 1")
        .await
        .expect("idle in tx");
    let root_pid = backend_pid(&root).await;
    let own = session_as("mesa_admin", p, "bulk_worker").await;
    own.batch_execute("BEGIN; SELECT 1")
        .await
        .expect("idle in tx");
    let own_pid = backend_pid(&own).await;
    let all: Vec<i32> = apps
        .iter()
        .map(|(pid, _)| *pid)
        .chain([root_pid, own_pid])
        .collect();

    let call = |body: String| {
        let admin = &admin;
        async move {
            admin
                .call(
                    "POST",
                    "/api/v1/targets/main/sessions/terminate",
                    Some("terminate"),
                    Some(&body),
                )
                .await
        }
    };
    let filter = r#"{"state": "idle in transaction", "application_name": "bulk_worker"}"#;

    // Dry run: what would happen to each, nothing signalled.
    let dry = call(format!(
        r#"{{"filter": {filter}, "max_count": 10, "dry_run": true}}"#
    ))
    .await;
    assert_eq!(dry.status, 200, "{}", dry.body);
    let dry = dry.json();
    assert_eq!(dry["matched"], 5, "{dry}");
    for (pid, _) in &apps {
        assert_eq!(outcome_of(&dry, *pid).0, "would_terminate");
    }
    let (root_outcome, root_reason) = outcome_of(&dry, root_pid);
    assert_eq!(root_outcome, "skipped");
    assert!(root_reason.contains("superuser"), "{root_reason}");
    let (own_outcome, own_reason) = outcome_of(&dry, own_pid);
    assert_eq!(own_outcome, "skipped");
    assert!(own_reason.contains("Mesa's own"), "{own_reason}");
    for pid in &all {
        assert!(pid_exists(*pid).await, "the dry run signalled {pid}");
    }

    // More matches than max_count: 409 with the count, nothing signalled.
    let over = call(format!(r#"{{"filter": {filter}, "max_count": 4}}"#)).await;
    assert_eq!(over.status, 409, "{}", over.body);
    assert_eq!(over.json()["matched"], 5);
    assert_eq!(over.json()["type"], "urn:mesa:problem:too-many-matches");
    for pid in &all {
        assert!(
            pid_exists(*pid).await,
            "over the limit, {pid} was signalled"
        );
    }
    // A filter on time in the state: none has been idle for an hour.
    let none = call(
        r#"{"filter": {"application_name": "bulk_worker", "state_for_longer_than": "1h"}, "max_count": 10}"#
            .to_owned(),
    )
    .await;
    assert_eq!(none.status, 200, "{}", none.body);
    assert_eq!(none.json()["matched"], 0);

    // For real: the three application sessions end; the other two are left.
    let done = call(format!(r#"{{"filter": {filter}, "max_count": 5}}"#)).await;
    assert_eq!(done.status, 200, "{}", done.body);
    let done = done.json();
    for (pid, _) in &apps {
        assert_eq!(outcome_of(&done, *pid).0, "terminated");
    }
    assert_eq!(outcome_of(&done, root_pid).0, "skipped");
    assert_eq!(outcome_of(&done, own_pid).0, "skipped");
    for (pid, _) in &apps {
        let pid = *pid;
        assert!(
            eventually(Duration::from_secs(5), || async { !pid_exists(pid).await }).await,
            "{pid} ended"
        );
    }
    assert!(pid_exists(root_pid).await && pid_exists(own_pid).await);

    // One outcome record holds the filter and every pid with its outcome.
    let records: Vec<serde_json::Value> = admin
        .audit_records()
        .into_iter()
        .filter(|r| {
            r["action"] == "bulk_terminate"
                && r["event"] == "outcome"
                && r["dry_run"] == false
                && r["status"] == 200
                && r["filter"]["state"] == "idle in transaction"
        })
        .collect();
    assert_eq!(records.len(), 1, "{records:?}");
    let record = &records[0];
    assert_eq!(record["filter"]["application_name"], "bulk_worker");
    let mut pids: Vec<i64> = record["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .map(|s| s["pid"].as_i64().expect("pid"))
        .collect();
    pids.sort_unstable();
    let mut want: Vec<i64> = all.iter().map(|p| i64::from(*p)).collect();
    want.sort_unstable();
    assert_eq!(pids, want);

    // Cancel: the running statement ends, the session stays.
    let sleeper = session_as("bulk_app", p, "bulk_sleeper").await;
    let sleeper_pid = backend_pid(&sleeper).await;
    let sleeping = tokio::spawn(async move {
        let result = sleeper.simple_query("SELECT pg_sleep(30)").await;
        (result.is_err(), sleeper)
    });
    assert!(
        eventually(Duration::from_secs(5), || async {
            is_active(sleeper_pid).await
        })
        .await
    );
    let cancelled = call(
        r#"{"filter": {"application_name": "bulk_sleeper", "state": "active"}, "mode": "cancel", "max_count": 1}"#
            .to_owned(),
    )
    .await;
    assert_eq!(cancelled.status, 200, "{}", cancelled.body);
    assert_eq!(outcome_of(&cancelled.json(), sleeper_pid).0, "cancelled");
    let (was_cancelled, sleeper) = tokio::time::timeout(Duration::from_secs(10), sleeping)
        .await
        .expect("the statement ended early")
        .expect("join");
    assert!(was_cancelled, "pg_sleep was cancelled");
    sleeper
        .simple_query("SELECT 1")
        .await
        .expect("the session stays");

    drop(apps);
    drop(root);
    drop(own);
    drop(sleeper);
    admin.stop().await;
    roles(&["DROP ROLE bulk_app"]).await;
}
