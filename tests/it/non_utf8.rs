//! Names and query text that are not UTF-8 (issue 17, item 5): a role with `CREATEDB` makes a
//! `SQL_ASCII` database named with bytes that are not UTF-8, and a session there runs a
//! statement holding such bytes. Every collector and admin read still answers, with the bytes
//! escaped (`\xHH`), instead of failing for every target of the server.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use mesa::gateway::{Administrator, Deadline, Inspector, SessionFilter};

use crate::support::*;

/// How Mesa shows the database's name: `bytes_` and two bytes that are not UTF-8, escaped.
const ESCAPED_NAME: &str = "bytes_\\xff\\xfe";
/// `CREATE DATABASE` options of a database that stores bytes unchecked.
const SQL_ASCII: &str = "ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C'";

/// `psql` as `bytes_tenant` on `bytes_base` with a command of raw bytes (a client that sends
/// what it is given, as the server's SQL_ASCII encoding accepts).
fn tenant_psql(sql: &[u8]) -> Command {
    psql("bytes_tenant", ROLE_PASSWORD, "bytes_base", sql)
}

fn psql(user: &str, password: &str, database: &str, sql: &[u8]) -> Command {
    let c = cluster();
    let bindir = mesa_testkit::find_bindir().expect("PostgreSQL binaries");
    let mut cmd = Command::new(bindir.join("psql"));
    cmd.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", c.host(), "-p"])
        .arg(c.port().to_string())
        .args(["-U", user, "-d", database, "-c"])
        .arg(OsStr::from_bytes(sql))
        .env("PGPASSWORD", password)
        .env("PGCLIENTENCODING", "SQL_ASCII")
        .env("PGSSLMODE", "disable")
        .env("PGAPPNAME", "bytes-tenant")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

/// Runs `cmd` (a [`psql`]) and requires it to succeed.
fn run_ok(mut cmd: Command) {
    let out = cmd.output().expect("psql");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The tenant's sessions (its psql), those in `state` when given.
async fn tenant_sessions(su: &tokio_postgres::Client, state: Option<&str>) -> Option<i64> {
    su.query_one(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'bytes-tenant'
            AND ($1::text IS NULL OR state = $1)",
        &[&state],
    )
    .await
    .ok()
    .map(|r| r.get(0))
}

/// Drops the database named with bytes, left by this or an earlier run (from `bytes_admin`,
/// a SQL_ASCII database of the superuser's: a UTF-8 database refuses the name's bytes).
fn drop_bytes_database() {
    let c = cluster();
    run_ok(psql(
        c.superuser(),
        c.password(),
        "bytes_admin",
        b"DROP DATABASE IF EXISTS \"bytes_\xff\xfe\" WITH (FORCE)",
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_that_are_not_utf8_never_blind_a_collector_or_an_admin_read() {
    let _serial = role_lock().await;
    let su = superuser("postgres").await;
    for sql in [
        "DROP DATABASE IF EXISTS bytes_admin WITH (FORCE)".to_owned(),
        format!("CREATE DATABASE bytes_admin {SQL_ASCII} TEMPLATE template0"),
        "DROP DATABASE IF EXISTS bytes_tmp WITH (FORCE)".to_owned(),
    ] {
        su.batch_execute(&sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    drop_bytes_database();
    tenant_database(&su, "bytes_base", "bytes_tenant", SQL_ASCII).await;
    su.batch_execute("ALTER ROLE bytes_tenant CREATEDB")
        .await
        .expect("CREATEDB");
    // The tenant, with only CREATEDB: a SQL_ASCII database, renamed to bytes that are not UTF-8.
    run_ok(tenant_psql(
        format!("CREATE DATABASE bytes_tmp {SQL_ASCII} TEMPLATE template0").as_bytes(),
    ));
    run_ok(tenant_psql(
        b"ALTER DATABASE bytes_tmp RENAME TO \"bytes_\xff\xfe\"",
    ));
    // A session there whose statement holds such bytes, running while Mesa reads.
    let mut sleeper = tenant_psql(b"SELECT pg_sleep(30) /* \xff\xfe caf\xe9 */")
        .spawn()
        .expect("psql");
    let active = eventually(Duration::from_secs(5), || async {
        tenant_sessions(&su, Some("active")).await == Some(1)
    })
    .await;
    assert!(active, "the tenant's statement runs");

    // Every collector on a target of this server, stat_statements too: the extension fails
    // to return texts in a UTF-8 database once it holds this statement's bytes.
    su.batch_execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        .await
        .expect("extension");
    let t = with_stat_statements(target("bytes", "mesa_monitor"));
    let with_texts = su
        .query("SELECT query FROM pg_stat_statements LIMIT 1", &[])
        .await;
    assert!(
        with_texts
            .as_ref()
            .err()
            .and_then(|e| e.code())
            .is_some_and(|c| *c == tokio_postgres::error::SqlState::CHARACTER_NOT_IN_REPERTOIRE),
        "the extension fails on the tenant's text: {with_texts:?}"
    );
    let (collection, text) = collect_text(&t).await;
    let failed: Vec<_> = collection
        .outcomes
        .iter()
        .filter(|o| o.result.is_err())
        .map(|o| o.collector)
        .collect();
    assert!(failed.is_empty(), "collectors failed: {failed:?}");
    // Statements still exported (without texts), among them the tenant's sleep.
    assert!(
        text.lines()
            .any(|l| l.starts_with("pg_stat_statements_calls_total{") && l.contains("query=\"\"")),
        "no statements without text:\n{text}"
    );

    // In the exposition, the escape's backslash is itself escaped.
    let label = format!("datname=\"{}\"", ESCAPED_NAME.replace('\\', "\\\\"));
    for family in [
        "pg_database_size_bytes",
        "pg_stat_database_xact_commit_total",
    ] {
        assert!(
            text.lines()
                .any(|l| l.starts_with(family) && l.contains(&label)),
            "{family} with {label}:\n{text}"
        );
    }

    // The admin reads.
    let g = gateway(&with_admin(target("bytes", "mesa_monitor"), "mesa_admin"));
    let d = || Deadline::after(Duration::from_secs(5));
    let databases = g.databases(d()).await.expect("databases answer");
    assert!(
        databases.iter().any(|db| db.name == ESCAPED_NAME),
        "{databases:?}"
    );
    let filter = SessionFilter {
        include_idle: true,
        limit: limit(1000),
    };
    let sessions = g.sessions(filter, d()).await.expect("sessions answer");
    let tenant = sessions
        .iter()
        .find(|s| s.application_name == "bytes-tenant")
        .expect("the tenant's session is listed");
    assert!(
        tenant.query.contains("\\xff\\xfe caf\\xe9"),
        "{}",
        tenant.query
    );

    // The tenant's session ends (before its statement completes, which would store the text
    // again), then the extension forgets that database's statements, so other tests read
    // texts again; the rest of its entries stay.
    su.batch_execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'bytes-tenant'",
    )
    .await
    .expect("terminate");
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    let gone = eventually(Duration::from_secs(5), || async {
        tenant_sessions(&su, None).await == Some(0)
    })
    .await;
    assert!(gone, "the tenant's session ends");

    drop_bytes_database();
    // Statements with the name's bytes ran in bytes_base and bytes_admin.
    su.batch_execute(
        "SELECT pg_stat_statements_reset(0, oid, 0) FROM pg_database
          WHERE datname IN ('bytes_base', 'bytes_admin')",
    )
    .await
    .expect("reset the tenant's statements");
    let texts = su
        .query("SELECT query FROM pg_stat_statements LIMIT 1", &[])
        .await;
    assert!(texts.is_ok(), "texts read again: {texts:?}");
    drop_tenant(&su, "bytes_base", "bytes_tenant").await;
    su.batch_execute("DROP DATABASE bytes_admin WITH (FORCE)")
        .await
        .expect("cleanup");
}
