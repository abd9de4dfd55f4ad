//! Inspection through the API matches the catalogs; an offline target's health is a 200.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspection_matches_the_catalogs_and_offline_health_is_200() {
    let su = superuser("postgres").await;
    su.batch_execute("CREATE DATABASE api_inspect TEMPLATE template0")
        .await
        .expect("db");
    let db = superuser("api_inspect").await;
    db.batch_execute(
        "CREATE SCHEMA inv; CREATE TABLE inv.items (sku text PRIMARY KEY, qty integer NOT NULL DEFAULT 0, note varchar(20));
         GRANT USAGE ON SCHEMA inv TO mesa_monitor; GRANT SELECT ON inv.items TO mesa_monitor;",
    )
    .await
    .expect("schema");
    let admin = start("inspect", "mesa_monitor", "mesa_admin").await;
    let dbs = admin
        .call("GET", "/api/v1/targets/main/databases", Some("read"), None)
        .await;
    assert_eq!(dbs.status, 200);
    let size: i64 = su
        .query_one("SELECT pg_database_size('api_inspect')", &[])
        .await
        .expect("size")
        .get(0);
    let entry = dbs.json()["databases"]
        .as_array()
        .expect("list")
        .iter()
        .find(|d| d["name"] == "api_inspect")
        .cloned()
        .expect("listed");
    assert_eq!(entry["owner"], "postgres");
    assert_eq!(entry["encoding"], "UTF8");
    let ours = entry["size_bytes"].as_i64().expect("size");
    assert_size_close(ours as f64, size);

    let tables = admin
        .call(
            "GET",
            "/api/v1/targets/main/databases/api_inspect/tables",
            Some("read"),
            None,
        )
        .await
        .json();
    assert_eq!(
        tables["tables"],
        serde_json::json!([{"schema": "inv", "name": "items", "kind": "table"}])
    );
    let columns = admin
        .call(
            "GET",
            "/api/v1/targets/main/databases/api_inspect/tables/inv/items/columns",
            Some("read"),
            None,
        )
        .await
        .json();
    assert_eq!(
        columns["columns"],
        serde_json::json!([
            {"name": "sku", "data_type": "text", "nullable": false, "default": null, "position": 1},
            {"name": "qty", "data_type": "integer", "nullable": false, "default": "0", "position": 2},
            {"name": "note", "data_type": "character varying(20)", "nullable": true, "default": null, "position": 3},
        ])
    );
    let health = admin
        .call("GET", "/api/v1/targets/main/health", Some("read"), None)
        .await
        .json();
    assert_eq!(health["status"], "ONLINE");
    let sessions = admin
        .call(
            "GET",
            "/api/v1/targets/main/sessions?limit=5&include_idle=true",
            Some("read"),
            None,
        )
        .await;
    assert_eq!(sessions.status, 200);
    assert!(sessions.json()["sessions"].as_array().expect("list").len() <= 5);
    assert_eq!(
        admin
            .call(
                "GET",
                "/api/v1/targets/main/sessions?limit=0",
                Some("read"),
                None
            )
            .await
            .status,
        422
    );
    admin.stop().await;

    // An unreachable target: health is 200 OFFLINE.
    let t = mesa::token::generate().expect("token");
    let yaml = format!(
        "web: {{listen_address: '127.0.0.1:0'}}\nadmin:\n  listen_address: '127.0.0.1:0'\n  tokens:\n    - {{name: r, sha256: '{}', scopes: [read], targets: ['*']}}\ntargets:\n  - {{name: gone, driver: postgres, host: 127.0.0.1, port: {}, username: x, sslmode: disable}}\n",
        t.sha256_hex,
        closed_port()
    );
    let app = App::start(daemon_config(&yaml)).await.expect("daemon");
    let reply = request(
        app.admin_addr().expect("admin"),
        "GET",
        "/api/v1/targets/gone/health",
        Some(t.token.expose()),
        None,
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.json(),
        serde_json::json!({"status": "OFFLINE", "reason": "unreachable"})
    );
    app.shutdown(DEFAULT_GRACE_PERIOD).await.expect("shutdown");
}
