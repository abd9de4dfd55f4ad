//! The counterfeit `pg_stat_statements` race (issue 17, item 1).
//!
//! A tenant owns a database whose `public` schema (owned by `pg_database_owner`, so by the
//! tenant) holds the real, superuser-installed extension. In an open transaction the tenant
//! drops the schema with the extension in it (holding a lock on the real view), waits until a
//! Mesa session queues behind that lock, then creates a counterfeit `public.pg_stat_statements`
//! that calls the tenant's function, and commits. PostgreSQL retries a name lookup after a
//! lock wait, so a statement that names the view lands on the counterfeit. The trojan
//! `RAISE LOG`s `current_user`: the server log tells whether it ever ran as Mesa's role.

use std::time::Duration;

use crate::support::*;

/// The tenant's function and the counterfeit view that calls it: the same columns as the
/// real view, so a statement written for the real one prepares against it.
const COUNTERFEIT: &str = r#"
CREATE SCHEMA public;
GRANT USAGE ON SCHEMA public TO PUBLIC;
CREATE VIEW public.pg_stat_statements AS
  SELECT 1::int8 AS queryid, 0::oid AS dbid, 0::oid AS userid,
         race_trap.spy() AS query, 1::int8 AS calls, 1::float8 AS total_exec_time,
         1::int8 AS rows, 0::float8 AS blk_read_time, 0::float8 AS blk_write_time,
         0::float8 AS shared_blk_read_time, 0::float8 AS shared_blk_write_time;
GRANT SELECT ON public.pg_stat_statements TO PUBLIC;
"#;

/// Polls until a session of `user` in `database` waits for a lock; false after `limit`.
async fn waits_for_lock(watcher: &tokio_postgres::Client, database: &str, user: &str) -> bool {
    eventually(Duration::from_secs(5), || async {
        watcher
            .query_one(
                "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)
                  WHERE NOT l.granted AND a.datname = $1 AND a.usename = $2",
                &[&database, &user],
            )
            .await
            .map(|r| r.get::<_, i64>(0) > 0)
            .unwrap_or(false)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_counterfeit_pg_stat_statements_swapped_in_during_a_lock_wait_never_runs() {
    let _serial = role_lock().await;
    let su = superuser("postgres").await;
    tenant_database(&su, "race_db", "race_tenant", "").await;
    // The extension as a DBA installs it: by a superuser, into the database's public schema.
    superuser("race_db")
        .await
        .batch_execute("CREATE EXTENSION pg_stat_statements")
        .await
        .expect("extension");
    let tenant = client_as("race_tenant", ROLE_PASSWORD, "race_db")
        .await
        .expect("tenant connects");
    tenant
        .batch_execute(
            "CREATE SCHEMA race_trap;
             GRANT USAGE ON SCHEMA race_trap TO PUBLIC;
             CREATE FUNCTION race_trap.spy() RETURNS text LANGUAGE plpgsql AS $$
             BEGIN RAISE LOG 'RACE_TROJAN ran as %', current_user; RETURN 'RACE_TROJAN'; END $$;",
        )
        .await
        .expect("the tenant's function");
    let watcher = superuser("postgres").await;
    let log_start = cluster().server_log().len();

    // The tenant drops the schema, and the real view with it, in an open transaction.
    tenant
        .batch_execute("BEGIN; DROP SCHEMA public CASCADE")
        .await
        .expect("the tenant drops its schema");
    let mut t = target("race", "mesa_monitor");
    t.spec.common.database = "race_db".to_owned();
    t = with_stat_statements(t);
    // A lock wait long enough for the tenant to act.
    t.collection.lock_timeout = Duration::from_secs(4);
    let collection = tokio::spawn(async move { collect_text(&t).await });
    // Mesa queues behind the tenant's lock (before the fix it always did); the tenant then
    // swaps in the counterfeit and commits, which wakes Mesa up.
    let waited = waits_for_lock(&watcher, "race_db", "mesa_monitor").await;
    tenant
        .batch_execute(COUNTERFEIT)
        .await
        .expect("the counterfeit");
    tenant.batch_execute("COMMIT").await.expect("commit");
    let (collection, text) = collection.await.expect("collection task");

    let runs = log_lines_since(log_start, "RACE_TROJAN");
    assert!(
        runs.is_empty(),
        "the tenant's function ran in Mesa's session (Mesa waited on the lock: {waited}):\n{}",
        runs.join("\n")
    );
    assert!(!text.contains("RACE_TROJAN"), "{text}");
    // The collector fails alone: the extension's schema belongs to the tenant (and, were it
    // trusted, the prepared statement would not read the checked view's OID).
    let outcome = collection.outcome("stat_statements").expect("ran");
    assert!(
        outcome.result.is_err(),
        "waited on the lock: {waited}; {outcome:?}"
    );
    assert_the_rest_succeeded(&collection, "stat_statements");
    drop(tenant);
    drop_tenant(&su, "race_db", "race_tenant").await;
}

#[tokio::test]
async fn the_extension_in_a_superuser_owned_schema_of_a_tenant_database_is_read() {
    let _serial = role_lock().await;
    let su = superuser("postgres").await;
    tenant_database(&su, "race_ok_db", "race_ok_tenant", "").await;
    // What the collector's error tells a DBA to do: a schema only a superuser controls.
    superuser("race_ok_db")
        .await
        .batch_execute(&format!(
            "CREATE SCHEMA monitoring AUTHORIZATION {};
             GRANT USAGE ON SCHEMA monitoring TO PUBLIC;
             CREATE EXTENSION pg_stat_statements SCHEMA monitoring",
            cluster().superuser()
        ))
        .await
        .expect("extension in a superuser's schema");
    let mut t = target("race_ok", "mesa_monitor");
    t.spec.common.database = "race_ok_db".to_owned();
    t = with_stat_statements(t);
    let (collection, text) = collect_text(&t).await;
    let outcome = collection.outcome("stat_statements").expect("ran");
    assert!(outcome.result.is_ok(), "{outcome:?}");
    assert!(text.contains("pg_stat_statements_calls_total"), "{text}");
    drop_tenant(&su, "race_ok_db", "race_ok_tenant").await;
}
