//! Administrator against the real server: sessions, terminate, cancel, create user.

use std::time::Duration;

use mesa::gateway::{
    Administrator, Deadline, FailureReason, NewUser, SessionFilter, postgres::sql,
};
use mesa::secret::Secret;

use crate::support::*;

const D: Duration = Duration::from_secs(10);

async fn sleeper(
    seconds: u32,
) -> (
    i32,
    tokio::task::JoinHandle<Result<(), tokio_postgres::Error>>,
) {
    let client = client_as("app_user", ROLE_PASSWORD, "postgres")
        .await
        .expect("app_user connects");
    let sql: &'static str = match seconds {
        60 => "SELECT pg_sleep(60)",
        _ => "SELECT pg_sleep(600)",
    };
    background(client, sql).await
}

#[tokio::test]
async fn sessions_list_other_backends_but_never_mesas_own() {
    let (pid, _held) = sleeper(60).await;
    assert!(eventually(Duration::from_secs(5), || is_active(pid)).await);
    let g = gateway(&target("sessions", "sess_monitor"));
    let sessions = g
        .sessions(
            SessionFilter {
                limit: limit(1000),
                include_idle: true,
            },
            Deadline::after(D),
        )
        .await
        .expect("sessions");
    let s = sessions
        .iter()
        .find(|s| s.pid == pid)
        .expect("the sleeper is listed");
    assert_eq!(s.user.as_deref(), Some("app_user"));
    assert_eq!(s.database.as_deref(), Some("postgres"));
    assert_eq!(s.state.as_deref(), Some("active"));
    assert_eq!(s.query, "SELECT pg_sleep(60)");
    assert!(s.duration.is_some() && s.query_start.is_some());
    // Only this gateway logs in as sess_monitor, so any such row would be Mesa's own. (Rows
    // named `mesa` do appear: other tests' daemons and gateways run at the same time.)
    assert!(
        sessions
            .iter()
            .all(|s| s.user.as_deref() != Some("sess_monitor"))
    );

    // The default filter hides idle sessions.
    let _idle = client_as("app_user", ROLE_PASSWORD, "postgres")
        .await
        .expect("idle client");
    let active = g
        .sessions(SessionFilter::default(), Deadline::after(D))
        .await
        .expect("sessions");
    assert!(active.iter().all(|s| s.state.as_deref() != Some("idle")));
    assert!(active.iter().any(|s| s.pid == pid));
}

#[tokio::test]
async fn sessions_limit_is_honoured_oldest_first() {
    let mut held = Vec::new();
    for _ in 0..3 {
        let (pid, h) = sleeper(60).await;
        assert!(eventually(Duration::from_secs(5), || is_active(pid)).await);
        held.push(h);
    }
    // Not sess_monitor: the test above counts that role's rows as Mesa's own.
    let g = gateway(&target("limit", "mesa_monitor"));
    let two = g
        .sessions(
            SessionFilter {
                limit: limit(2),
                include_idle: true,
            },
            Deadline::after(D),
        )
        .await
        .expect("sessions");
    assert_eq!(two.len(), 2);
    assert!(two[0].query_start <= two[1].query_start);
    assert_eq!(
        mesa::gateway::SessionLimit::new(0)
            .expect_err("limit 0")
            .reason(),
        FailureReason::InvalidInput
    );
}

#[tokio::test]
async fn terminate_ends_the_session_and_refuses_the_rest() {
    let (pid, held) = sleeper(600).await;
    assert!(eventually(Duration::from_secs(5), || is_active(pid)).await);
    let g = gateway(&with_admin(
        target("terminate", "mesa_monitor"),
        "mesa_admin",
    ));
    g.terminate(backend(pid), Deadline::after(D))
        .await
        .expect("terminate");
    let outcome = tokio::time::timeout(Duration::from_secs(5), held)
        .await
        .expect("the sleeper ends")
        .expect("task");
    let err = outcome.expect_err("the sleeper's connection sees the termination");
    assert_eq!(err.code().map(|c| c.code()), Some("57P01"), "{err}");

    // Gone now: NotFound.
    let again = g
        .terminate(backend(pid), Deadline::after(D))
        .await
        .expect_err("already gone");
    assert_eq!(again.reason(), FailureReason::NotFound);
    // A pid that is no backend at all.
    let stranger = g
        .terminate(backend(std::process::id() as i32), Deadline::after(D))
        .await
        .expect_err("not a backend");
    assert_eq!(stranger.reason(), FailureReason::NotFound);

    // Background processes are refused.
    let su = superuser("postgres").await;
    for kind in ["autovacuum launcher", "checkpointer"] {
        let bg: i32 = su
            .query_one(
                "SELECT pid FROM pg_stat_activity WHERE backend_type = $1",
                &[&kind],
            )
            .await
            .expect(kind)
            .get(0);
        let refused = g
            .terminate(backend(bg), Deadline::after(D))
            .await
            .expect_err(kind);
        assert_eq!(
            refused.reason(),
            FailureReason::Refused,
            "{kind}: {refused}"
        );
        let alive = su
            .query_opt("SELECT 1 FROM pg_stat_activity WHERE pid = $1", &[&bg])
            .await
            .expect("probe");
        assert!(alive.is_some(), "{kind} still runs");
    }

    for bad in [0, -1] {
        let e = mesa::gateway::Pid::new(bad).expect_err("invalid pid");
        assert_eq!(e.reason(), FailureReason::InvalidInput);
    }
}

#[tokio::test]
async fn the_signal_statement_itself_spares_its_own_backend() {
    // Run the exact statement the driver sends, on a connection whose own pid is the target.
    let su = superuser("postgres").await;
    let own = backend_pid(&su).await;
    for statement in [sql::TERMINATE, sql::CANCEL] {
        let row = su
            .query_one(statement, &[&own, &None::<std::time::SystemTime>])
            .await
            .expect("statement runs");
        assert!(row.get::<_, bool>(1), "is_self");
        assert_eq!(row.get::<_, Option<bool>>(6), None, "not signalled");
    }
    su.query_one("SELECT 1", &[])
        .await
        .expect("still connected");
}

#[tokio::test]
async fn a_superuser_session_is_never_signalled_and_missing_privilege_is_permission_denied() {
    let c = cluster();
    let victim = client_as(c.superuser(), c.password(), "postgres")
        .await
        .expect("superuser");
    let (pid, _held) = background(victim, "SELECT pg_sleep(60)").await;
    assert!(eventually(Duration::from_secs(5), || is_active(pid)).await);
    // Even an admin login that could (a superuser) never signals a superuser's session.
    let mighty = gateway(&with_admin(target("mighty", "mesa_plain"), c.superuser()));
    for signal in ["terminate", "cancel"] {
        let err = match signal {
            "terminate" => mighty.terminate(backend(pid), Deadline::after(D)).await,
            _ => mighty.cancel(backend(pid), Deadline::after(D)).await,
        }
        .expect_err("a superuser's session");
        assert_eq!(err.reason(), FailureReason::Refused, "{err}");
        assert!(err.to_string().contains("superuser"), "{err}");
    }
    // mesa_monitor sees every backend (pg_monitor) but has no pg_signal_backend: PostgreSQL
    // refuses to signal another role's session.
    let other = client_as("app_user", ROLE_PASSWORD, "postgres")
        .await
        .expect("app_user");
    let (other_pid, _other) = background(other, "SELECT pg_sleep(60)").await;
    assert!(eventually(Duration::from_secs(5), || is_active(other_pid)).await);
    let g = gateway(&with_admin(target("weak", "mesa_plain"), "mesa_monitor"));
    let err = g
        .terminate(backend(other_pid), Deadline::after(D))
        .await
        .expect_err("no privilege");
    assert_eq!(err.reason(), FailureReason::PermissionDenied, "{err}");
    assert!(is_active(other_pid).await);
    // A role that cannot even see the backend's type is refused before any signal.
    let blind = gateway(&with_admin(target("blind", "mesa_plain"), "mesa_plain"));
    let err = blind
        .terminate(backend(pid), Deadline::after(D))
        .await
        .expect_err("cannot classify");
    assert_eq!(err.reason(), FailureReason::Refused, "{err}");
    assert!(is_active(pid).await, "the superuser's session survives");
}

#[tokio::test]
async fn cancel_stops_the_query_and_keeps_the_session() {
    let client = client_as("app_user", ROLE_PASSWORD, "postgres")
        .await
        .expect("client");
    let pid = backend_pid(&client).await;
    let client = std::sync::Arc::new(client);
    let runner = client.clone();
    let held = tokio::spawn(async move { runner.batch_execute("SELECT pg_sleep(600)").await });
    assert!(eventually(Duration::from_secs(5), || is_active(pid)).await);
    let g = gateway(&with_admin(target("cancel", "mesa_monitor"), "mesa_admin"));
    g.cancel(backend(pid), Deadline::after(D))
        .await
        .expect("cancel");
    let err = tokio::time::timeout(Duration::from_secs(5), held)
        .await
        .expect("the query ends")
        .expect("task")
        .expect_err("canceled");
    assert_eq!(err.code().map(|c| c.code()), Some("57014"));
    let again = backend_pid(&client).await;
    assert_eq!(again, pid);
}

async fn role_flags(name: &str) -> Option<(bool, bool, String)> {
    let su = superuser("postgres").await;
    su.query_opt(
        "SELECT rolsuper, rolcanlogin, rolpassword FROM pg_authid WHERE rolname = $1",
        &[&name],
    )
    .await
    .expect("pg_authid")
    .map(|r| (r.get(0), r.get(1), r.get(2)))
}

#[tokio::test]
async fn create_user_sends_a_verifier_and_the_role_logs_in() {
    let _serial = role_lock().await;
    let c = cluster();
    let g = gateway(&with_admin(target("create", "mesa_monitor"), "mesa_admin"));

    // Generated password.
    let user = NewUser::new("gen_user_1", None, false, true).expect("valid");
    let created = g
        .create_user(user, Deadline::after(D))
        .await
        .expect("created");
    let generated = created.generated_password.expect("a password is generated");
    assert!(generated.expose().len() >= 32);
    client_as("gen_user_1", generated.expose(), "postgres")
        .await
        .expect("logs in with the generated password");
    let (sup, login, verifier) = role_flags("gen_user_1").await.expect("exists");
    assert!(!sup && login);
    assert!(verifier.starts_with("SCRAM-SHA-256$4096:"), "{verifier}");

    // Chosen password, NOLOGIN.
    let chosen = "Chosen-Password-For-Tests-42";
    let user =
        NewUser::new("chosen_user_1", Some(Secret::new(chosen)), false, true).expect("valid");
    let created = g
        .create_user(user, Deadline::after(D))
        .await
        .expect("created");
    assert!(created.generated_password.is_none());
    client_as("chosen_user_1", chosen, "postgres")
        .await
        .expect("logs in with the chosen password");
    let nologin =
        NewUser::new("nologin_user_1", Some(Secret::new(chosen)), false, false).expect("valid");
    g.create_user(nologin, Deadline::after(D))
        .await
        .expect("created");
    let (_, login, _) = role_flags("nologin_user_1").await.expect("exists");
    assert!(!login);
    assert!(
        client_as("nologin_user_1", chosen, "postgres")
            .await
            .is_err()
    );

    // Superuser needs a superuser admin login; CREATEROLE alone is refused by PostgreSQL.
    let su_req = NewUser::new("super_user_1", None, true, true).expect("valid");
    let denied = g
        .create_user(su_req.clone(), Deadline::after(D))
        .await
        .expect_err("CREATEROLE cannot");
    assert_eq!(denied.reason(), FailureReason::PermissionDenied, "{denied}");
    assert!(role_flags("super_user_1").await.is_none());
    let root = gateway(&with_admin(
        target("create-su", "mesa_monitor"),
        c.superuser(),
    ));
    root.create_user(su_req, Deadline::after(D))
        .await
        .expect("superuser creates");
    let (sup, _, _) = role_flags("super_user_1").await.expect("exists");
    assert!(sup);

    // Duplicate.
    let dup = NewUser::new("gen_user_1", None, false, true).expect("valid");
    let err = g
        .create_user(dup, Deadline::after(D))
        .await
        .expect_err("exists");
    assert_eq!(err.reason(), FailureReason::AlreadyExists);

    // The server log, with log_statement=all, never saw a plaintext password.
    let log = c.server_log();
    assert!(
        log.contains("CREATE ROLE \"gen_user_1\""),
        "the statement is logged"
    );
    assert!(!log.contains(generated.expose()));
    assert!(!log.contains(chosen));
}

#[tokio::test]
async fn hostile_role_names_are_rejected_before_any_sql() {
    let _serial = role_lock().await;
    let before = role_count().await;
    let long = "a".repeat(64);
    let hostile: Vec<&str> = vec![
        "",
        &long,
        "pg_x",
        "PG_monitor",
        "a;DROP ROLE mesa_admin",
        "a\"b",
        "a b",
        "a\nb",
        "a\0b",
        "rôle",
        "1abc",
        "a-b",
        "a.b",
        "a'b",
        "a\\b",
        "a$b",
        "a/*x*/",
        "--x",
        "a\tb",
        "🙂",
        "a;",
        "(a)",
        "a,b",
        "a=b",
        "\"quoted\"",
        "a\u{200b}b",
        " a",
        "a ",
        "x'; DROP TABLE t; --",
    ];
    assert!(hostile.len() >= 25);
    for name in &hostile {
        let err = NewUser::new(name, None, false, true).expect_err(name);
        assert_eq!(err.reason(), FailureReason::InvalidInput, "{name:?}");
    }
    assert_eq!(role_count().await, before, "no role was created");
    let log = cluster().server_log();
    assert!(!log.contains("DROP ROLE mesa_admin"));
    assert!(!log.contains("DROP TABLE t"));
}
