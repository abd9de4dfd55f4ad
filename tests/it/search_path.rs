//! The search_path attack (issue 7, item 1): a role that owns a database plants operators and a
//! `now()` in its own schema, puts that schema first on the database's `search_path`, and waits
//! for Mesa's roles to call them. The trojans `RAISE LOG` the `current_user`, so the server log
//! proves whether any of them ran as Mesa, for every admin route and for scheduled collections.

use std::time::Duration;

use mesa::app::{App, DEFAULT_GRACE_PERIOD};

use crate::support::*;

/// The tenant's trap: every operator and function a Mesa statement could resolve by name
/// (`=` on text, name, int4, oid, "char" and pg_lsn; `<>`; `!~`; `>` on int2 and int8; `-` on
/// timestamptz and int8; `/` on int4 and float8; `%`; `now()`, `lower()`, `age()`), and a
/// counterfeit `pg_stat_statements` view in the database's `public` schema.
/// Each trojan logs who ran it and returns what the real one would, so queries still work and
/// nothing but the log tells.
const TROJANS: &str = r#"
CREATE SCHEMA trojan;
GRANT USAGE ON SCHEMA trojan TO PUBLIC;
CREATE FUNCTION trojan.spy(what text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN RAISE LOG 'TROJAN % ran as %', what, current_user; END $$;
CREATE FUNCTION trojan.now() RETURNS timestamptz LANGUAGE plpgsql AS $$
BEGIN PERFORM trojan.spy('now()'); RETURN pg_catalog.now(); END $$;
CREATE FUNCTION trojan.eq_text(text, text) RETURNS bool LANGUAGE plpgsql AS $$
BEGIN PERFORM trojan.spy('= text'); RETURN $1 OPERATOR(pg_catalog.=) $2; END $$;
CREATE OPERATOR trojan.= (LEFTARG = text, RIGHTARG = text, FUNCTION = trojan.eq_text);
CREATE FUNCTION trojan.eq_name_text(name, text) RETURNS bool LANGUAGE plpgsql AS $$
BEGIN PERFORM trojan.spy('= name'); RETURN $1 OPERATOR(pg_catalog.=) $2; END $$;
CREATE OPERATOR trojan.= (LEFTARG = name, RIGHTARG = text, FUNCTION = trojan.eq_name_text);
CREATE FUNCTION trojan.eq_name(name, name) RETURNS bool LANGUAGE plpgsql AS $$
BEGIN PERFORM trojan.spy('= name name'); RETURN $1 OPERATOR(pg_catalog.=) $2; END $$;
CREATE OPERATOR trojan.= (LEFTARG = name, RIGHTARG = name, FUNCTION = trojan.eq_name);
CREATE FUNCTION trojan.eq_char("char", "char") RETURNS bool LANGUAGE plpgsql AS $$
BEGIN PERFORM trojan.spy('= char'); RETURN $1 OPERATOR(pg_catalog.=) $2; END $$;
CREATE OPERATOR trojan.= (LEFTARG = "char", RIGHTARG = "char", FUNCTION = trojan.eq_char);
CREATE FUNCTION trojan.gt_int2(int2, int4) RETURNS bool LANGUAGE plpgsql AS $$
BEGIN PERFORM trojan.spy('> int2'); RETURN $1 OPERATOR(pg_catalog.>) $2; END $$;
CREATE OPERATOR trojan.> (LEFTARG = int2, RIGHTARG = int4, FUNCTION = trojan.gt_int2);
CREATE FUNCTION trojan.eq_int(int4, int4) RETURNS bool LANGUAGE plpgsql AS $$
BEGIN PERFORM trojan.spy('= int4'); RETURN $1 OPERATOR(pg_catalog.=) $2; END $$;
CREATE OPERATOR trojan.= (LEFTARG = int4, RIGHTARG = int4, FUNCTION = trojan.eq_int);
CREATE FUNCTION trojan.eq_oid(oid, oid) RETURNS bool LANGUAGE plpgsql AS $$
BEGIN PERFORM trojan.spy('= oid'); RETURN $1 OPERATOR(pg_catalog.=) $2; END $$;
CREATE OPERATOR trojan.= (LEFTARG = oid, RIGHTARG = oid, FUNCTION = trojan.eq_oid);
CREATE FUNCTION trojan.ne_text(text, text) RETURNS bool LANGUAGE plpgsql AS $$
BEGIN PERFORM trojan.spy('<> text'); RETURN $1 OPERATOR(pg_catalog.<>) $2; END $$;
CREATE OPERATOR trojan.<> (LEFTARG = text, RIGHTARG = text, FUNCTION = trojan.ne_text);
CREATE FUNCTION trojan.ne_int(int4, int4) RETURNS bool LANGUAGE plpgsql AS $$
BEGIN PERFORM trojan.spy('<> int4'); RETURN $1 OPERATOR(pg_catalog.<>) $2; END $$;
CREATE OPERATOR trojan.<> (LEFTARG = int4, RIGHTARG = int4, FUNCTION = trojan.ne_int);
CREATE FUNCTION trojan.nomatch(text, text) RETURNS bool LANGUAGE plpgsql AS $$
BEGIN PERFORM trojan.spy('!~'); RETURN $1 OPERATOR(pg_catalog.!~) $2; END $$;
CREATE OPERATOR trojan.!~ (LEFTARG = text, RIGHTARG = text, FUNCTION = trojan.nomatch);
CREATE FUNCTION trojan.minus_ts(timestamptz, timestamptz) RETURNS interval LANGUAGE plpgsql AS $$
BEGIN PERFORM trojan.spy('- timestamptz'); RETURN $1 OPERATOR(pg_catalog.-) $2; END $$;
CREATE OPERATOR trojan.- (LEFTARG = timestamptz, RIGHTARG = timestamptz, FUNCTION = trojan.minus_ts);
CREATE FUNCTION trojan.div_int(int4, int4) RETURNS int4 LANGUAGE plpgsql AS $$
BEGIN PERFORM trojan.spy('/ int4'); RETURN $1 OPERATOR(pg_catalog./) $2; END $$;
CREATE OPERATOR trojan./ (LEFTARG = int4, RIGHTARG = int4, FUNCTION = trojan.div_int);
CREATE FUNCTION trojan.mod_int(int4, int4) RETURNS int4 LANGUAGE plpgsql AS $$
BEGIN PERFORM trojan.spy('% int4'); RETURN $1 OPERATOR(pg_catalog.%) $2; END $$;
CREATE OPERATOR trojan.% (LEFTARG = int4, RIGHTARG = int4, FUNCTION = trojan.mod_int);
CREATE FUNCTION trojan.minus_int8(int8, int8) RETURNS int8 LANGUAGE plpgsql AS $$
BEGIN PERFORM trojan.spy('- int8'); RETURN $1 OPERATOR(pg_catalog.-) $2; END $$;
CREATE OPERATOR trojan.- (LEFTARG = int8, RIGHTARG = int8, FUNCTION = trojan.minus_int8);
CREATE FUNCTION trojan.gt_int8(int8, int8) RETURNS bool LANGUAGE plpgsql AS $$
BEGIN PERFORM trojan.spy('> int8'); RETURN $1 OPERATOR(pg_catalog.>) $2; END $$;
CREATE OPERATOR trojan.> (LEFTARG = int8, RIGHTARG = int8, FUNCTION = trojan.gt_int8);
CREATE FUNCTION trojan.div_float8(float8, float8) RETURNS float8 LANGUAGE plpgsql AS $$
BEGIN PERFORM trojan.spy('/ float8'); RETURN $1 OPERATOR(pg_catalog./) $2; END $$;
CREATE OPERATOR trojan./ (LEFTARG = float8, RIGHTARG = float8, FUNCTION = trojan.div_float8);
CREATE FUNCTION trojan.eq_lsn(pg_lsn, pg_lsn) RETURNS bool LANGUAGE plpgsql AS $$
BEGIN PERFORM trojan.spy('= pg_lsn'); RETURN $1 OPERATOR(pg_catalog.=) $2; END $$;
CREATE OPERATOR trojan.= (LEFTARG = pg_lsn, RIGHTARG = pg_lsn, FUNCTION = trojan.eq_lsn);
-- The names the per-database statements use: the stats functions, their aggregates, and the
-- operators on their types.
CREATE FUNCTION trojan.plus_int8(int8, int8) RETURNS int8 LANGUAGE plpgsql AS $$
BEGIN PERFORM trojan.spy('+ int8'); RETURN $1 OPERATOR(pg_catalog.+) $2; END $$;
CREATE OPERATOR trojan.+ (LEFTARG = int8, RIGHTARG = int8, FUNCTION = trojan.plus_int8);
CREATE FUNCTION trojan.ne_name(name, name) RETURNS bool LANGUAGE plpgsql AS $$
BEGIN PERFORM trojan.spy('<> name'); RETURN $1 OPERATOR(pg_catalog.<>) $2; END $$;
CREATE OPERATOR trojan.<> (LEFTARG = name, RIGHTARG = name, FUNCTION = trojan.ne_name);
CREATE FUNCTION trojan.pg_stat_get_numscans(oid) RETURNS int8 LANGUAGE plpgsql AS $$
BEGIN PERFORM trojan.spy('pg_stat_get_numscans()'); RETURN pg_catalog.pg_stat_get_numscans($1); END $$;
CREATE FUNCTION trojan.pg_stat_get_blocks_hit(oid) RETURNS int8 LANGUAGE plpgsql AS $$
BEGIN PERFORM trojan.spy('pg_stat_get_blocks_hit()'); RETURN pg_catalog.pg_stat_get_blocks_hit($1); END $$;
CREATE FUNCTION trojan.current_database() RETURNS name LANGUAGE plpgsql AS $$
BEGIN PERFORM trojan.spy('current_database()'); RETURN pg_catalog.current_database(); END $$;
CREATE FUNCTION trojan.sum_step(numeric, int8) RETURNS numeric LANGUAGE plpgsql AS $$
BEGIN PERFORM trojan.spy('sum()');
      RETURN COALESCE($1, 0::pg_catalog.numeric) OPERATOR(pg_catalog.+) $2::pg_catalog.numeric; END $$;
CREATE AGGREGATE trojan.sum(int8) (SFUNC = trojan.sum_step, STYPE = numeric);
CREATE FUNCTION trojan.count_step(int8) RETURNS int8 LANGUAGE plpgsql AS $$
BEGIN PERFORM trojan.spy('count()'); RETURN $1 OPERATOR(pg_catalog.+) 1::pg_catalog.int8; END $$;
CREATE AGGREGATE trojan.count(*) (SFUNC = trojan.count_step, STYPE = int8, INITCOND = '0');
CREATE FUNCTION trojan.lower(text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN PERFORM trojan.spy('lower()'); RETURN pg_catalog.lower($1); END $$;
CREATE FUNCTION trojan.age(xid) RETURNS int4 LANGUAGE plpgsql AS $$
BEGIN PERFORM trojan.spy('age()'); RETURN pg_catalog.age($1); END $$;
-- A counterfeit pg_stat_statements (the extension needs a superuser; a view does not): Mesa
-- must never read it.
CREATE FUNCTION trojan.fake_statements() RETURNS TABLE (queryid int8, dbid oid, userid oid,
    query text, calls int8, total_exec_time float8, rows int8, blk_read_time float8,
    blk_write_time float8) LANGUAGE plpgsql AS $$
BEGIN PERFORM trojan.spy('fake pg_stat_statements');
      RETURN QUERY SELECT 1::int8, 0::oid, 0::oid, 'x'::text, 1::int8, 1::float8, 1::int8,
                          0::float8, 0::float8; END $$;
CREATE VIEW public.pg_stat_statements AS SELECT * FROM trojan.fake_statements();
GRANT SELECT ON public.pg_stat_statements TO PUBLIC;
CREATE TABLE public.ledger (id int PRIMARY KEY, note text);
GRANT SELECT ON public.ledger TO PUBLIC;
"#;

/// `TROJAN ... ran as <role>` lines of the server log after byte `from`.
fn trojan_runs(from: usize) -> Vec<String> {
    log_lines_since(from, "TROJAN")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_search_path_never_runs_code_as_mesa() {
    let _serial = role_lock().await;
    let su = superuser("postgres").await;
    su.batch_execute(&format!(
        "CREATE ROLE tenant_owner LOGIN PASSWORD '{ROLE_PASSWORD}'"
    ))
    .await
    .expect("tenant role");
    su.batch_execute("CREATE DATABASE tenant_db OWNER tenant_owner TEMPLATE template1")
        .await
        .expect("tenant database");
    let tenant = client_as("tenant_owner", ROLE_PASSWORD, "tenant_db")
        .await
        .expect("tenant connects");
    tenant.batch_execute(TROJANS).await.expect("trojans");
    tenant
        .batch_execute("ALTER DATABASE tenant_db SET search_path = trojan, pg_catalog, public")
        .await
        .expect("tenant sets its database's search_path");
    let log_start = cluster().server_log().len();

    let token = mesa::token::generate().expect("token");
    let config = daemon_config(&format!(
        "collection: {{interval: 2s, timeout: 1500ms}}
web: {{listen_address: '127.0.0.1:0'}}
admin:
  listen_address: '127.0.0.1:0'
  audit_log: audit-search-path.jsonl
  tokens:
    - {{name: ops, sha256: '{}', scopes: [read, terminate, create_user], targets: ['*']}}
targets:
  - {{name: tenant, driver: postgres, host: '{{host}}', port: {{port}}, database: tenant_db, username: mesa_monitor, password_file: fixture.pw, sslmode: disable, collectors: {{stat_statements: true}}, admin: {{username: mesa_admin, password_file: fixture.pw}}}}
  - {{name: found, driver: postgres, host: '{{host}}', port: {{port}}, database: postgres, username: mesa_monitor, password_file: fixture.pw, sslmode: disable, databases: {{include: ['^tenant_db$'], interval: 2s}}}}
",
        token.sha256_hex
    ));
    let app = App::start(config).await.expect("daemon starts");
    let admin = app.admin_addr().expect("admin API");
    let bearer = Some(token.token.expose());

    // Scheduled collections: several, all on the tenant's database.
    let collected = eventually(Duration::from_secs(8), || async {
        let (_, _, body) = http_get(app.metrics_addr(), "/metrics").await;
        value(
            &body,
            "mesa_collect_last_success_timestamp_seconds",
            &[("server", "tenant")],
        )
        .is_some()
            && value(&body, "pg_up", &[("server", "tenant")]) == Some(1.0)
    })
    .await;
    assert!(collected, "collections on the tenant database succeed");
    // Discovery finds the tenant's database by itself and visits it: every database-scoped
    // collector runs there (issue 19).
    let (visited, body) = poll_until(
        Duration::from_secs(10),
        || async { http_get(app.metrics_addr(), "/metrics").await.2 },
        |body| {
            value(
                body,
                "pg_stat_user_tables_n_live_tup",
                &[
                    ("server", "found"),
                    ("datname", "tenant_db"),
                    ("relname", "ledger"),
                ],
            )
            .is_some()
        },
    )
    .await;
    assert!(visited, "the tenant's database was never visited:\n{body}");
    assert_eq!(
        value(
            &body,
            "mesa_database_up",
            &[("server", "found"), ("datname", "tenant_db")]
        ),
        Some(1.0)
    );
    for collector in [
        "stat_user_tables",
        "statio_user_tables",
        "stat_user_indexes",
        "statio_user_indexes",
    ] {
        assert_eq!(
            value(
                &body,
                "mesa_collector_success",
                &[
                    ("server", "found"),
                    ("datname", "tenant_db"),
                    ("collector", collector)
                ]
            ),
            Some(1.0),
            "{collector}"
        );
    }
    assert!(
        value(
            &body,
            "pg_stat_user_indexes_idx_scan_total",
            &[
                ("server", "found"),
                ("datname", "tenant_db"),
                ("indexrelname", "ledger_pkey")
            ]
        )
        .is_some(),
        "{body}"
    );
    // The counterfeit pg_stat_statements is not a superuser-owned member of the extension:
    // that collector fails alone instead of reading it.
    let (_, _, body) = http_get(app.metrics_addr(), "/metrics").await;
    assert_eq!(
        value(
            &body,
            "mesa_collector_success",
            &[("server", "tenant"), ("collector", "stat_statements")]
        ),
        Some(0.0),
        "{body}"
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;

    // Every route that reaches the server. Replies are checked after the log, so a failure
    // names the trojan first (before the fix, trojans also made some routes time out).
    let mut replies = Vec::new();
    let base = "/api/v1/targets/tenant";
    for (method, path, body, status) in [
        ("GET", format!("{base}/health"), None, 200),
        (
            "GET",
            format!("{base}/sessions?include_idle=true"),
            None,
            200,
        ),
        ("GET", format!("{base}/databases"), None, 200),
        (
            "GET",
            format!("{base}/databases/tenant_db/tables"),
            None,
            200,
        ),
        (
            "GET",
            format!("{base}/databases/tenant_db/tables/public/ledger/columns"),
            None,
            200,
        ),
        (
            "POST",
            format!("{base}/users"),
            Some(r#"{"name": "tenant_probe_user"}"#),
            201,
        ),
    ] {
        let reply = request(admin, method, &path, bearer, body).await;
        replies.push((format!("{method} {path}"), status, reply));
    }

    // Cancel one tenant session's statement and terminate another session.
    let mut victims = Vec::new();
    for verb in ["cancel", "terminate"] {
        let victim = client_as("tenant_owner", ROLE_PASSWORD, "tenant_db")
            .await
            .expect("victim connects");
        let (pid, sleep) = background(victim, "SELECT pg_catalog.pg_sleep(60)").await;
        assert!(eventually(Duration::from_secs(5), || is_active(pid)).await);
        let reply = request(
            admin,
            "POST",
            &format!("{base}/sessions/{pid}/{verb}"),
            bearer,
            None,
        )
        .await;
        replies.push((verb.to_owned(), 200, reply));
        victims.push((pid, sleep));
    }
    let pid = victims[1].0;
    let victim_gone = eventually(Duration::from_secs(5), || async { !pid_exists(pid).await }).await;
    app.shutdown(DEFAULT_GRACE_PERIOD).await.expect("shutdown");

    // The trap is live: the tenant's own statements do run its operators (a new session
    // takes the database's search_path)...
    let tenant = client_as("tenant_owner", ROLE_PASSWORD, "tenant_db")
        .await
        .expect("tenant connects again");
    tenant
        .query_one("SELECT 'a'::text = 'a'::text", &[])
        .await
        .expect("tenant query");
    let runs = trojan_runs(log_start);
    assert!(
        runs.iter().any(|l| l.contains("ran as tenant_owner")),
        "the trojan operator must be live for the tenant's own sessions, or this test proves nothing"
    );
    // Defence in depth: every statement is safe on its own, even in a session that took the
    // tenant's search_path (a client without Mesa's startup parameter).
    let bare = client_as("mesa_admin", ROLE_PASSWORD, "tenant_db")
        .await
        .expect("bare client");
    let path: String = bare
        .query_one("SHOW search_path", &[])
        .await
        .expect("search_path")
        .get(0);
    assert!(path.starts_with("trojan"), "the bare session took {path}");
    use mesa::gateway::postgres::sql;
    for statement in [sql::SERVER_HEALTH, sql::DATABASES, sql::TABLES] {
        bare.query(statement, &[]).await.expect(statement);
    }
    let (schema, table) = ("public", "ledger");
    for statement in [sql::COLUMNS, sql::TABLE_EXISTS] {
        bare.query(statement, &[&schema, &table])
            .await
            .expect(statement);
    }
    bare.query(sql::SESSIONS, &[&true, &10_i64])
        .await
        .expect("sessions");
    for statement in [sql::TERMINATE, sql::CANCEL] {
        bare.query(statement, &[&i32::MAX, &None::<std::time::SystemTime>])
            .await
            .expect(statement);
    }
    // Every collector's statement for this server, after the extension lookup, which must
    // not take the counterfeit view for pg_stat_statements.
    let version: i32 = bare
        .query_one(
            "SELECT pg_catalog.current_setting('server_version_num')::pg_catalog.int4",
            &[],
        )
        .await
        .expect("version")
        .get(0);
    let view: Option<String> = bare
        .query_opt(mesa::collectors::postgres::STAT_STATEMENTS_VIEW, &[])
        .await
        .expect("extension lookup")
        .map(|row| row.get(0));
    assert_eq!(view, None, "the counterfeit view was trusted");
    let server = mesa::collectors::postgres::Server {
        version: u32::try_from(version).expect("positive"),
        stat_statements: None,
    };
    let statements = mesa::collectors::postgres::statements(&server);
    assert!(statements.len() >= 11, "{}", statements.len());
    for (name, statement) in statements {
        let result = match statement.limit {
            Some(limit) => bare.query(statement.sql.as_ref(), &[&limit]).await,
            None => bare.query(statement.sql.as_ref(), &[]).await,
        };
        result.unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let runs = trojan_runs(log_start);
    // ...and nothing of it ran as any of Mesa's roles.
    let as_mesa: Vec<&String> = runs
        .iter()
        .filter(|l| !l.contains("ran as tenant_owner"))
        .collect();
    assert!(
        as_mesa.is_empty(),
        "tenant code ran as Mesa's roles {} times ({} as mesa_monitor, {} as mesa_admin), e.g.:\n{}",
        as_mesa.len(),
        as_mesa
            .iter()
            .filter(|l| l.contains("ran as mesa_monitor"))
            .count(),
        as_mesa
            .iter()
            .filter(|l| l.contains("ran as mesa_admin"))
            .count(),
        as_mesa
            .iter()
            .take(10)
            .map(|l| l.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
    for (what, status, reply) in &replies {
        assert_eq!(reply.status, *status, "{what}: {}", reply.body);
    }
    let health = &replies[0].2;
    assert_eq!(health.json()["status"], "ONLINE", "{}", health.body);
    let columns = &replies[4].2;
    assert_eq!(columns.json()["columns"].as_array().map(Vec::len), Some(2));
    assert!(victim_gone, "the terminated session is gone");
    su.batch_execute("DROP ROLE IF EXISTS tenant_probe_user")
        .await
        .expect("cleanup");
}
