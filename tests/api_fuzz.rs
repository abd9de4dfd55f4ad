//! schemathesis (PyPI) fuzzes the admin API from its OpenAPI document, with a full-scope token
//! on a disposable target: a PostgreSQL cluster of its own, since the fuzzer creates
//! superusers and signals random pids. Any 5xx other than the documented 503/504, or a
//! response that breaks the schema, fails the test.
//!
//! It takes about three minutes, so it runs in the fuzz lane of `.ci/run` (still in every CI
//! run), not in `cargo xtask test`: `cargo xtask test --test api_fuzz -- --ignored`.

use std::time::Duration;

use mesa::app::{App, DEFAULT_GRACE_PERIOD};
use mesa_testkit::{ClusterOptions, PgCluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the fuzz lane runs it: cargo xtask test --test api_fuzz -- --ignored"]
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
  - {{name: main, driver: postgres, host: 127.0.0.1, port: {}, username: fuzz_monitor, password_file: monitor.pw, sslmode: disable, admin: {{username: postgres, password_file: admin.pw}}}}
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

    // Fuzzing and stateful sequences must come back clean.
    let (ok, report) = schemathesis(&url, &header, "examples,fuzzing,stateful", "180").await;
    assert!(ok, "schemathesis found problems:\n{report}");

    // The coverage phase (boundary and negative values per keyword) runs on its own: under
    // CPython 3.11.7 it sometimes dies inside hypothesis with "SystemError: AST constructor
    // recursion depth mismatch", an interpreter bug, not a finding. That error alone is
    // tolerated; any failed check is not.
    let (ok, report) = schemathesis(&url, &header, "coverage", "60").await;
    if !ok {
        assert!(
            !report.contains("Failures:")
                && report.contains("AST constructor recursion depth mismatch"),
            "the coverage phase found problems:\n{report}"
        );
        println!("coverage phase hit the CPython AST recursion bug; no check failed");
    }
    tokio::time::timeout(Duration::from_secs(15), app.shutdown(DEFAULT_GRACE_PERIOD))
        .await
        .expect("shutdown in time")
        .expect("clean shutdown");
}

/// Runs `st run` for `phases`; returns whether it passed and its whole output.
async fn schemathesis(url: &str, header: &str, phases: &str, max_time: &str) -> (bool, String) {
    let args: Vec<String> = [
        "run",
        url,
        "--header",
        header,
        "--phases",
        phases,
        "--checks",
        "all",
        "--max-examples",
        "10",
        "--workers",
        "2",
        "--request-timeout",
        "30",
        "--max-time",
        max_time,
        "--generation-deterministic",
        "--no-color",
    ]
    .iter()
    .map(|a| (*a).to_owned())
    .collect();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(venv::tool("st"))
            .args(&args)
            .output()
    })
    .await
    .expect("join")
    .expect("schemathesis runs (`cargo xtask test` installs it into target/venv)");
    let report = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    println!("{report}");
    (output.status.success(), report)
}

use mesa_testkit::venv;
