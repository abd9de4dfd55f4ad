//! schemathesis (PyPI) fuzzes the admin API from its OpenAPI document, with a full-scope token
//! on a disposable target: a PostgreSQL cluster of its own, since the fuzzer creates
//! superusers and signals random pids. Any 5xx other than the documented 503/504, or a
//! response that breaks the schema, fails the test.

use std::time::Duration;

use mesa::app::{App, DEFAULT_GRACE_PERIOD};
use mesa::testing::{ClusterOptions, PgCluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_schema_violation() {
    let cluster = PgCluster::start(ClusterOptions::default()).expect("disposable cluster");
    let password = "fuzz-password-0123456789";
    cluster
        .psql(
            "postgres",
            &format!("CREATE ROLE fuzz_monitor LOGIN PASSWORD '{password}' IN ROLE pg_monitor"),
        )
        .expect("role");
    let dir = cluster.dir().join("mesa");
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("monitor.pw"), password).expect("pw");
    std::fs::write(dir.join("admin.pw"), cluster.password()).expect("pw");
    let token = mesa::token::generate().expect("token");
    let yaml = format!(
        "collection: {{interval: 5s, timeout: 4s}}
web: {{listen_address: '127.0.0.1:0'}}
admin:
  listen_address: '127.0.0.1:0'
  audit_log: audit.jsonl
  rate_limit: {{burst: 100000, per_second: 100000}}
  tokens:
    - {{name: fuzzer, sha256: '{}', scopes: [read, terminate, create_user, create_superuser], targets: ['*']}}
targets:
  - {{name: scratch, driver: postgres, host: 127.0.0.1, port: {}, username: fuzz_monitor, password_file: monitor.pw, sslmode: disable, admin: {{username: postgres, password_file: admin.pw}}}}
",
        token.sha256_hex,
        cluster.port()
    );
    let config = mesa::config::parse_str(&yaml, &dir, &|_| None).expect("valid config");
    let app = App::start(config).await.expect("daemon");
    let url = format!(
        "http://{}/api/v1/openapi.json",
        app.admin_addr().expect("admin")
    );
    let header = format!("Authorization: Bearer {}", token.token.expose());
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("st")
            .args(["run", &url, "--header", &header])
            .args(["--checks", "all", "--max-examples", "10", "--workers", "2"])
            .args([
                "--request-timeout",
                "30",
                "--max-time",
                "240",
                "--seed",
                "20261126",
            ])
            .args(["--generation-deterministic", "--no-color"])
            .env("SCHEMATHESIS_HOOKS", "")
            .output()
    })
    .await
    .expect("join")
    .expect("schemathesis runs (pip install schemathesis; .ci/run installs it)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}\n{stderr}");
    assert!(
        output.status.success(),
        "schemathesis found problems:\n{stdout}\n{stderr}"
    );
    tokio::time::timeout(Duration::from_secs(15), app.shutdown(DEFAULT_GRACE_PERIOD))
        .await
        .expect("shutdown in time")
        .expect("clean shutdown");
}
