//! Issue 21's credentials lifecycle against the real server: a user that expires, is reaped
//! (session ended, login refused, dropped) with an audit record per step; revocation that
//! touches only Mesa-managed roles; memberships checked against the allow-list and on the
//! server; the token's expiry policy; rotation; and a role that owns objects.

use super::*;

/// A session as `user` with `password`, or the server's refusal.
async fn login(
    user: &str,
    password: &str,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    cluster().connect(user, password, "postgres").await
}

async fn scalar_text(sql: &str) -> String {
    superuser("postgres")
        .await
        .query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expiring_user_logs_in_then_the_reaper_ends_its_session_and_drops_it() {
    let _serial = role_lock().await;
    let admin = start_custom(
        "reap",
        "mesa_monitor",
        "mesa_admin",
        "mesa_monitor",
        "  reap_interval: 1s\n  drop_after: 4s\n",
        "",
    )
    .await;
    let created = admin
        .call(
            "POST",
            "/api/v1/targets/main/users",
            Some("create_user"),
            Some(r#"{"name": "lc_temp", "valid_for": "3s"}"#),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let body = created.json();
    let password = body["password"].as_str().expect("generated").to_owned();
    let until = body["valid_until"].as_str().expect("an expiry");
    let until = humantime::parse_rfc3339(until).expect("RFC 3339");
    let ahead = until
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();
    assert!(
        ahead <= Duration::from_secs(3),
        "valid_until {ahead:?} ahead"
    );
    assert_eq!(
        scalar_text(
            "SELECT (rolvaliduntil IS NOT NULL)::text FROM pg_roles WHERE rolname = 'lc_temp'"
        )
        .await,
        "true",
        "VALID UNTIL is set on the server"
    );

    // Before the expiry: it logs in, and the list shows it with its open session.
    let session = login("lc_temp", &password)
        .await
        .expect("a fresh user logs in");
    let listed = admin
        .call("GET", "/api/v1/targets/main/users", Some("read"), None)
        .await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    let entry = listed.json()["users"]
        .as_array()
        .expect("list")
        .iter()
        .find(|u| u["name"] == "lc_temp")
        .cloned()
        .expect("listed");
    assert_eq!(entry["sessions"], 1);
    assert_eq!(entry["login"], true);
    assert!(entry["created_at"].is_string() && entry["valid_until"].is_string());

    // After it: the reaper ends the open session, a new login fails, and it is dropped.
    let ended = eventually(Duration::from_secs(20), || async {
        session.simple_query("SELECT 1").await.is_err()
    })
    .await;
    assert!(ended, "the session opened before the expiry was ended");
    assert!(
        login("lc_temp", &password).await.is_err(),
        "no new login after the expiry"
    );
    let dropped = eventually(Duration::from_secs(20), || async {
        !role_exists("lc_temp").await
    })
    .await;
    assert!(dropped, "dropped drop_after past the expiry");

    // Every step is audited as the reaper's, and counted. The reaper writes a round's records
    // after the round's connection is closed, so they follow the DROP by a moment: the test
    // waits for them (up to 10 s) rather than reading the trail once.
    const STEPS: [&str; 3] = ["disabled", "terminated", "dropped"];
    let daemon = &admin;
    let reaped = || async move {
        let steps: Vec<String> = daemon
            .audit_records()
            .iter()
            .filter(|r| r["token"] == "mesa:reaper" && r["role"] == "lc_temp")
            .map(|r| r["step"].as_str().expect("step").to_owned())
            .collect();
        let (status, _, text) = http_get(daemon.app.metrics_addr(), "/metrics").await;
        assert_eq!(status, 200);
        let dropped: f64 = ["main", "other"]
            .iter()
            .filter_map(|server| {
                value(
                    &text,
                    "mesa_admin_reaped_total",
                    &[("server", server), ("action", "dropped")],
                )
            })
            .sum();
        (steps, dropped, text)
    };
    // Waits until all is there; the assertions below judge a read taken after the wait.
    eventually(Duration::from_secs(10), || async {
        let (steps, dropped, _) = reaped().await;
        dropped >= 1.0 && STEPS.iter().all(|step| steps.iter().any(|s| s == step))
    })
    .await;
    let (steps, dropped_count, text) = reaped().await;
    for step in STEPS {
        assert!(steps.iter().any(|s| s == step), "{step} in {steps:?}");
    }
    assert!(dropped_count >= 1.0, "{text}");
    let intents = admin
        .audit_records()
        .iter()
        .filter(|r| r["token"] == "mesa:reaper" && r["event"] == "intent")
        .count();
    assert!(intents >= 1, "each round's intent is recorded first");
    admin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_touches_only_managed_roles_and_grants_are_checked_on_the_server() {
    let _serial = role_lock().await;
    let p = ROLE_PASSWORD;
    roles(&[
        format!("CREATE ROLE lc_outsider LOGIN PASSWORD '{p}'").as_str(),
        "CREATE ROLE lc_readonly NOLOGIN",
        "CREATE ROLE lc_risky NOLOGIN",
        "CREATE ROLE lc_powerful NOLOGIN CREATEDB",
        "CREATE ROLE lc_indirect NOLOGIN IN ROLE lc_powerful",
        "CREATE ROLE lc_unlisted NOLOGIN",
        // From PostgreSQL 16 a CREATEROLE login grants only roles it holds ADMIN OPTION on.
        "GRANT lc_readonly, lc_risky, lc_indirect, lc_unlisted TO mesa_admin WITH ADMIN OPTION",
    ])
    .await;
    let admin = start_custom(
        "revoke",
        "mesa_monitor",
        "mesa_admin",
        "mesa_monitor",
        "  reap_interval: 24h\n",
        ", grantable_roles: [lc_readonly, lc_risky, lc_indirect]",
    )
    .await;
    let create = |body: &'static str, kind: &'static str| {
        let admin = &admin;
        async move {
            admin
                .call("POST", "/api/v1/targets/main/users", Some(kind), Some(body))
                .await
        }
    };

    // A member of an allow-listed, harmless role, with an expiry and a connection limit.
    let made = create(
        r#"{"name": "lc_member", "valid_for": "1h", "member_of": ["lc_readonly"], "connection_limit": 2}"#,
        "create_user",
    )
    .await;
    assert_eq!(made.status, 201, "{}", made.body);
    assert_eq!(made.json()["member_of"], serde_json::json!(["lc_readonly"]));
    assert_eq!(
        scalar_text(
            "SELECT rolconnlimit::text || ' ' || pg_has_role('lc_member', 'lc_readonly', 'MEMBER')::text
               FROM pg_roles WHERE rolname = 'lc_member'"
        )
        .await,
        "2 true"
    );
    let listed = admin
        .call("GET", "/api/v1/targets/main/users", Some("read"), None)
        .await
        .json();
    let entry = listed["users"]
        .as_array()
        .expect("list")
        .iter()
        .find(|u| u["name"] == "lc_member")
        .cloned()
        .expect("listed");
    assert_eq!(entry["member_of"], serde_json::json!(["lc_readonly"]));
    assert_eq!(entry["connection_limit"], 2);
    assert!(
        !listed["users"]
            .as_array()
            .expect("list")
            .iter()
            .any(|u| u["name"] == "lc_outsider" || u["name"] == "mesa_admin"),
        "only managed roles are listed"
    );

    // Refused before the server: a role outside the allow-list.
    let unlisted = create(
        r#"{"name": "lc_nope_a", "member_of": ["lc_unlisted"]}"#,
        "create_user",
    )
    .await;
    assert_eq!(unlisted.status, 403, "{}", unlisted.body);
    assert!(unlisted.body.contains("not-grantable"), "{}", unlisted.body);
    // Refused by the server-side check: an allow-listed role that gained CREATEROLE behind
    // Mesa's back, and one that reaches CREATEDB through its own membership.
    roles(&["ALTER ROLE lc_risky CREATEROLE"]).await;
    let risky = create(
        r#"{"name": "lc_nope_b", "member_of": ["lc_readonly", "lc_risky"]}"#,
        "create_user",
    )
    .await;
    assert_eq!(risky.status, 403, "{}", risky.body);
    assert!(
        risky.body.contains("unsafe-grant") && risky.body.contains("CREATEROLE"),
        "{}",
        risky.body
    );
    let indirect = create(
        r#"{"name": "lc_nope_c", "member_of": ["lc_indirect"]}"#,
        "create_user",
    )
    .await;
    assert_eq!(indirect.status, 403, "{}", indirect.body);
    assert!(
        indirect.body.contains("CREATEDB") && indirect.body.contains("lc_powerful"),
        "{}",
        indirect.body
    );
    for name in ["lc_nope_a", "lc_nope_b", "lc_nope_c"] {
        assert!(!role_exists(name).await, "{name}: nothing was created");
    }

    // The token's expiry policy: required, and at most an hour.
    let open_ended = create(r#"{"name": "lc_nope_d"}"#, "expiring").await;
    assert_eq!(open_ended.status, 400, "{}", open_ended.body);
    assert!(open_ended.body.contains("expiry-required"));
    let too_long = create(r#"{"name": "lc_nope_e", "valid_for": "2h"}"#, "expiring").await;
    assert_eq!(too_long.status, 400, "{}", too_long.body);
    assert!(
        too_long.body.contains("1h"),
        "names the limit: {}",
        too_long.body
    );
    let short = create(r#"{"name": "lc_short", "valid_for": "30m"}"#, "expiring").await;
    assert_eq!(short.status, 201, "{}", short.body);
    assert!(!role_exists("lc_nope_d").await && !role_exists("lc_nope_e").await);

    // Never touched: postgres, Mesa's own logins, a role Mesa did not create.
    for (name, kind) in [
        ("postgres", "refused"),
        ("mesa_monitor", "refused"),
        ("mesa_admin", "refused"),
        ("lc_outsider", "not-managed"),
    ] {
        let reply = admin
            .call(
                "DELETE",
                &format!("/api/v1/targets/main/users/{name}"),
                Some("create_user"),
                None,
            )
            .await;
        assert_eq!(reply.status, 409, "{name}: {}", reply.body);
        assert!(reply.body.contains(kind), "{name}: {}", reply.body);
        assert!(role_exists(name).await, "{name} is intact");
    }
    assert!(login("lc_outsider", p).await.is_ok(), "still logs in");
    // A role without CREATEROLE cannot forge Mesa's mark on itself.
    let outsider = login("lc_outsider", p).await.expect("login");
    let forged = outsider
        .batch_execute("COMMENT ON ROLE lc_outsider IS 'mesa:managed created_at=1'")
        .await
        .expect_err("forging the mark is refused");
    assert_eq!(
        forged.code(),
        Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE),
        "{forged}"
    );

    // Rotation: a new generated password works, the old one does not.
    let old = made.json()["password"]
        .as_str()
        .expect("generated")
        .to_owned();
    let rotated = admin
        .call(
            "POST",
            "/api/v1/targets/main/users/lc_member/password",
            Some("create_user"),
            None,
        )
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let new = rotated.json()["password"]
        .as_str()
        .expect("generated")
        .to_owned();
    assert!(login("lc_member", &new).await.is_ok());
    assert!(login("lc_member", &old).await.is_err());
    assert!(
        !cluster().server_log().contains(&new),
        "the new password never reaches the server's log (only its SCRAM verifier)"
    );
    let rotations: Vec<serde_json::Value> = admin
        .audit_records()
        .into_iter()
        .filter(|r| r["action"] == "rotate_password" && r["role"] == "lc_member")
        .collect();
    assert_eq!(rotations.len(), 2, "intent and outcome: {rotations:?}");
    assert!(
        rotations.iter().all(|r| !r.to_string().contains(&new)),
        "never the password in the audit trail"
    );
    let not_ours = admin
        .call(
            "POST",
            "/api/v1/targets/main/users/lc_outsider/password",
            Some("create_user"),
            None,
        )
        .await;
    assert_eq!(not_ours.status, 409, "{}", not_ours.body);
    assert!(
        login("lc_outsider", p).await.is_ok(),
        "its password unchanged"
    );

    // Revocation of a role that owns a table: its session ends, it stays NOLOGIN, and the
    // answer lists what it owns; once that is gone, it is dropped.
    roles(&[
        "CREATE TABLE lc_owned_table (x int)",
        "ALTER TABLE lc_owned_table OWNER TO lc_member",
    ])
    .await;
    let member_session = login("lc_member", &new).await.expect("login");
    let owns = admin
        .call(
            "DELETE",
            "/api/v1/targets/main/users/lc_member",
            Some("create_user"),
            None,
        )
        .await;
    assert_eq!(owns.status, 409, "{}", owns.body);
    let problem = owns.json();
    assert_eq!(problem["type"], "urn:mesa:problem:owns-objects");
    assert!(
        problem["owned"]
            .as_array()
            .expect("owned")
            .iter()
            .any(|o| o.as_str().is_some_and(|o| o.contains("lc_owned_table"))),
        "{problem}"
    );
    assert_eq!(
        scalar_text("SELECT rolcanlogin::text FROM pg_roles WHERE rolname = 'lc_member'").await,
        "false"
    );
    assert!(
        eventually(Duration::from_secs(5), || async {
            member_session.simple_query("SELECT 1").await.is_err()
        })
        .await,
        "its session was ended"
    );
    roles(&["DROP TABLE lc_owned_table"]).await;
    let gone = admin
        .call(
            "DELETE",
            "/api/v1/targets/main/users/lc_member",
            Some("create_user"),
            None,
        )
        .await;
    assert_eq!(gone.status, 200, "{}", gone.body);
    assert_eq!(gone.json()["result"], "dropped");
    assert!(!role_exists("lc_member").await);

    // Each revocation is audited, intent and outcome.
    let records: Vec<serde_json::Value> = admin
        .audit_records()
        .into_iter()
        .filter(|r| r["action"] == "delete_user" && r["role"] == "lc_member")
        .collect();
    let events: Vec<(&str, Option<u64>)> = records
        .iter()
        .map(|r| (r["event"].as_str().expect("event"), r["status"].as_u64()))
        .collect();
    assert_eq!(
        events,
        [
            ("intent", None),
            ("outcome", Some(409)),
            ("intent", None),
            ("outcome", Some(200))
        ]
    );
    roles(&["DROP ROLE lc_short"]).await;
    admin.stop().await;
}
