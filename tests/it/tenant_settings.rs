//! Settings a tenant attaches to its database (issue 17, item 6): the owner of a database can
//! `ALTER DATABASE ... SET` any user-settable parameter, and every session in it, Mesa's
//! included, starts with those values. Mesa's startup options override each one that changes
//! how its statements behave, so nothing a tenant sets there reaches Mesa's sessions.

use std::time::Duration;

use mesa::gateway::{Deadline, Gateway, NewUser};

use crate::support::*;

/// (setting, the tenant's value, what Mesa's session must have): every parameter Mesa pins
/// that a database owner may set.
const HOSTILE: &[(&str, &str, &str)] = &[
    ("exit_on_error", "on", "off"),
    ("jit", "on", "off"),
    ("jit_above_cost", "0", "0"),
    // Long enough for the test's own sessions to do their work first.
    ("idle_session_timeout", "'2s'", "0"),
    ("idle_in_transaction_session_timeout", "'2s'", "10s"),
    (
        "default_transaction_isolation",
        "serializable",
        "read committed",
    ),
    ("default_transaction_deferrable", "on", "off"),
    ("default_transaction_read_only", "off", "on"),
    ("client_min_messages", "debug5", "warning"),
    ("DateStyle", "SQL, DMY", "ISO, MDY"),
    ("IntervalStyle", "sql_standard", "postgres"),
    ("TimeZone", "Pacific/Chatham", "UTC"),
    ("extra_float_digits", "-15", "1"),
    ("row_security", "off", "on"),
    ("standard_conforming_strings", "off", "on"),
    ("transform_null_equals", "on", "off"),
    ("max_parallel_workers_per_gather", "8", "0"),
    ("plan_cache_mode", "force_custom_plan", "auto"),
    ("search_path", "tenant, public", "pg_catalog,pg_temp"),
];

/// A database `db` owned by role `role` that sets every [`HOSTILE`] value on itself.
async fn hostile_database(db: &str, role: &str) {
    tenant_database(&superuser("postgres").await, db, role, "").await;
    // As the tenant: a database owner needs no other privilege for these.
    let tenant = client_as(role, ROLE_PASSWORD, db)
        .await
        .expect("tenant connects");
    for (name, value, _) in HOSTILE {
        let value = if value.contains([',', '/', ' ']) {
            format!("'{value}'")
        } else {
            (*value).to_owned()
        };
        let sql = format!("ALTER DATABASE {db} SET {name} = {value}");
        tenant
            .batch_execute(&sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

#[tokio::test]
async fn a_tenant_database_s_settings_never_reach_mesa_sessions() {
    let _serial = role_lock().await;
    hostile_database("hostile_db", "hostile_owner").await;
    // A plain session there gets the tenant's values (so the test sets something real).
    let plain = client_as("mesa_monitor", ROLE_PASSWORD, "hostile_db")
        .await
        .expect("plain session");
    let jit: String = plain
        .query_one("SELECT current_setting('exit_on_error')", &[])
        .await
        .expect("setting")
        .get(0);
    assert_eq!(
        jit, "on",
        "the database's settings apply to a plain session"
    );

    let mut t = target("hostile", "mesa_monitor");
    t.spec.common.database = "hostile_db".to_owned();
    let Gateway::Postgres(gateway) = gateway(&t) else {
        panic!("a PostgreSQL target");
    };
    let names: Vec<String> = HOSTILE.iter().map(|(n, ..)| n.to_string()).collect();
    let seen: Vec<(String, String)> = gateway
        .collection_session(Deadline::after(Duration::from_secs(5)), async |c, _, _| {
            let mut seen = Vec::new();
            for name in &names {
                let row = c
                    .query_one(
                        "SELECT pg_catalog.current_setting($1::pg_catalog.text)",
                        &[name],
                    )
                    .await?;
                seen.push((name.clone(), row.get(0)));
            }
            Ok(seen)
        })
        .await
        .expect("Mesa's session");
    let wrong: Vec<String> = HOSTILE
        .iter()
        .zip(&seen)
        .filter(|((_, _, want), (_, got))| got != want)
        .map(|((name, tenant, want), (_, got))| {
            format!("{name}: {got} (tenant set {tenant}, Mesa wants {want})")
        })
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[tokio::test]
async fn exit_on_error_set_by_a_tenant_fails_one_collector_not_the_target() {
    let _serial = role_lock().await;
    hostile_database("hostile_exit_db", "hostile_exit_owner").await;
    // The extension where Mesa trusts it, locked by another session: its collector's lock
    // wait ends in an error, which exit_on_error would turn into the end of Mesa's session.
    let su = superuser("hostile_exit_db").await;
    su.batch_execute(&format!(
        "SET idle_in_transaction_session_timeout = 0; SET idle_session_timeout = 0;
         SET exit_on_error = off;
         CREATE SCHEMA monitoring AUTHORIZATION {};
         GRANT USAGE ON SCHEMA monitoring TO PUBLIC;
         CREATE EXTENSION pg_stat_statements SCHEMA monitoring;",
        cluster().superuser()
    ))
    .await
    .expect("extension");
    su.batch_execute("BEGIN; LOCK TABLE monitoring.pg_stat_statements IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock");
    let mut t = target("hostile_exit", "mesa_monitor");
    t.spec.common.database = "hostile_exit_db".to_owned();
    t = with_stat_statements(t);
    t.collection.lock_timeout = Duration::from_millis(200);
    let (collection, text) = collect_text(&t).await;
    su.batch_execute("ROLLBACK").await.expect("unlock");
    assert_eq!(must(&text, "pg_up", &[]), 1.0, "{text}");
    let blocked = collection.outcome("stat_statements").expect("ran");
    assert_eq!(
        blocked.result.as_ref().err(),
        Some(&mesa::gateway::FailureReason::Timeout),
        "{blocked:?}"
    );
    assert_the_rest_succeeded(&collection, "stat_statements");
}

#[tokio::test]
async fn a_tenant_s_read_only_default_does_not_stop_create_user() {
    let _serial = role_lock().await;
    hostile_database("hostile_rw_db", "hostile_rw_owner").await;
    let su = superuser("postgres").await;
    su.batch_execute("ALTER DATABASE hostile_rw_db SET default_transaction_read_only = on")
        .await
        .expect("read-only default");
    let mut t = with_admin(target("hostile_rw", "mesa_monitor"), "mesa_admin");
    t.spec.common.database = "hostile_rw_db".to_owned();
    let _ = su
        .batch_execute("DROP ROLE IF EXISTS hostile_rw_made")
        .await;
    let user = NewUser::new("hostile_rw_made", None, false, true).expect("valid");
    use mesa::gateway::Administrator;
    gateway(&t)
        .create_user(user, Deadline::after(Duration::from_secs(5)))
        .await
        .expect("created despite the database's read-only default");
    assert!(role_exists("hostile_rw_made").await);
    su.batch_execute("DROP ROLE hostile_rw_made")
        .await
        .expect("cleanup");
}
