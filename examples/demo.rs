//! `cargo xtask demo` (or `cargo run --example demo` once PostgreSQL is installed): Mesa
//! against a throwaway local PostgreSQL, on a fresh machine.
//!
//! Starts a cluster with the test harness (in `target/demo/`, or the temp folder when the
//! `postgres` user cannot reach it), creates a least-privilege monitoring role (`pg_monitor`)
//! and an admin role (`CREATEROLE`, `pg_signal_backend`, `pg_read_all_stats`) with generated
//! passwords in 0600 files, generates an admin API token, copies `config/demo.yaml` next to
//! them with the server's port and the token's digest filled in, prints two ready `curl` lines
//! (list sessions, create a user), and runs the Mesa daemon until Ctrl-C; then the cluster is
//! stopped and removed (a watchdog also removes it if the demo is killed).
//!
//! `-- --check` (used by CI) serves on free ports instead, waits for the first collection,
//! fetches `/metrics` over HTTP and requires `pg_up{server="demo"} 1`, runs both `curl`
//! requests' equivalents against the admin API (200, then 201), and exits.

use std::io::{Read as _, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::PathBuf;
use std::process::ExitCode;

use mesa_testkit::{ClusterOptions, PgCluster};

fn demo_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("demo")
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("demo: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<bool, Box<dyn std::error::Error>> {
    let dir = demo_dir();
    std::fs::create_dir_all(&dir)?;
    println!("starting a throwaway PostgreSQL ...");
    let cluster = PgCluster::start(ClusterOptions {
        parent: Some(dir.clone()),
        // DDL is logged, so the check below can show no password reached the server's log.
        extra_conf: vec!["log_statement = 'ddl'".to_owned()],
        ..ClusterOptions::default()
    })?;
    let password = mesa::token::generate()?.sha256_hex;
    let admin_password = mesa::token::generate()?.sha256_hex;
    // Only SCRAM verifiers go over the wire, as the admin API sends them (psql's \password
    // does the same): the passwords never reach the server's logs or statistics.
    let verifier = |p: &str| postgres_protocol::password::scram_sha_256(p.as_bytes());
    cluster.psql(
        "postgres",
        &format!(
            "CREATE ROLE mesa_monitor LOGIN PASSWORD '{}' IN ROLE pg_monitor;
             CREATE ROLE mesa_admin LOGIN CREATEROLE PASSWORD '{}'
               IN ROLE pg_signal_backend, pg_read_all_stats;",
            verifier(&password),
            verifier(&admin_password)
        ),
    )?;
    let log = cluster.server_log();
    if !log.contains("CREATE ROLE mesa_monitor") || log.contains(&password) {
        return Err(
            "the demo's roles were not created with verifiers only (see the server log)".into(),
        );
    }
    let token = mesa::token::generate()?;
    cluster.psql("postgres", "CREATE DATABASE shop")?;
    cluster.psql(
        "shop",
        "CREATE TABLE orders (id bigserial PRIMARY KEY, total numeric(10,2) NOT NULL);
         INSERT INTO orders (total) SELECT g * 1.5 FROM generate_series(1, 10000) g;",
    )?;

    for (file, secret) in [
        ("mesa_monitor.password", &password),
        ("mesa_admin.password", &admin_password),
    ] {
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(dir.join(file))?
            .write_all(secret.as_bytes())?;
    }
    let config_path = dir.join("mesa.yaml");
    let template = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/demo.yaml"),
    )?;
    std::fs::write(
        &config_path,
        template
            .replace("port: 5432", &format!("port: {}", cluster.port()))
            .replace("DEMO_TOKEN_SHA256", &token.sha256_hex),
    )?;
    let bearer = token.token.expose().to_owned();
    println!(
        "PostgreSQL {}:{} is up; config: {}",
        cluster.host(),
        cluster.port(),
        config_path.display()
    );

    let config = mesa::config::load(&config_path)?;
    let check = std::env::args().any(|a| a == "--check");
    mesa::logging::init(
        if check { "warn" } else { "info" },
        mesa::cli::LogFormat::Logfmt,
    )?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let ok = if check {
        runtime.block_on(check_once(config, &bearer))?
    } else {
        println!();
        println!("  metrics:   http://127.0.0.1:9930/metrics");
        println!("  one target: http://127.0.0.1:9930/probe?target=demo");
        println!("  readiness: http://127.0.0.1:9930/readyz");
        println!("  landing:   http://127.0.0.1:9930/");
        println!();
        println!("  admin API (token valid for this demo only):");
        for line in curl_lines("127.0.0.1:9931", &bearer) {
            println!("    {line}");
        }
        println!();
        println!("Ctrl-C stops Mesa and PostgreSQL.");
        runtime.block_on(mesa::app::run(
            &config_path,
            config,
            mesa::app::Overrides::default(),
        ))?;
        true
    };
    println!(
        "stopping PostgreSQL and removing {}",
        cluster.dir().display()
    );
    drop(cluster);
    Ok(ok)
}

/// The two `curl` lines the demo prints: list sessions, create a user.
fn curl_lines(admin: &str, bearer: &str) -> [String; 2] {
    [
        format!(
            "curl -s -H 'Authorization: Bearer {bearer}' 'http://{admin}/api/v1/targets/demo/sessions?include_idle=true'"
        ),
        format!(
            "curl -s -X POST -H 'Authorization: Bearer {bearer}' -H 'Content-Type: application/json' -d '{{\"name\": \"demo_user\"}}' http://{admin}/api/v1/targets/demo/users"
        ),
    ]
}

/// One HTTP/1.1 request over a plain socket; the status code and the whole response.
fn http(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<&str>,
) -> std::io::Result<(u16, String)> {
    let mut stream = std::net::TcpStream::connect(addr)?;
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: demo\r\nConnection: close\r\n");
    if let Some(b) = bearer {
        request.push_str(&format!("Authorization: Bearer {b}\r\n"));
    }
    if let Some(body) = body {
        request.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    request.push_str("\r\n");
    request.push_str(body.unwrap_or(""));
    stream.write_all(request.as_bytes())?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let code = response
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((code, response))
}

/// Serves on free ports, waits for the first collection, checks `/metrics` over HTTP, then
/// makes the two requests the demo's `curl` lines make.
async fn check_once(
    mut config: mesa::config::Config,
    bearer: &str,
) -> Result<bool, Box<dyn std::error::Error>> {
    config.web.listen_address = "127.0.0.1:0".parse()?;
    config.admin.listen_address = "127.0.0.1:0".parse()?;
    let interval = config.targets[0].collection.interval;
    let app = mesa::app::App::start(config).await?;
    let addr = app.metrics_addr();
    let ready = tokio::time::timeout(interval * 3, async {
        while app.store().get("demo").is_none() {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    })
    .await
    .is_ok();
    let body = tokio::task::spawn_blocking(move || http(addr, "GET", "/metrics", None, None))
        .await??
        .1;
    let up = body.lines().any(|l| l == "pg_up{server=\"demo\"} 1");
    println!(
        "GET http://{addr}/metrics -> {}",
        body.lines().next().unwrap_or("")
    );
    for line in body.lines().filter(|l| {
        l.starts_with("pg_up")
            || l.starts_with("pg_settings_max_connections")
            || l.starts_with("pg_database_size_bytes")
    }) {
        println!("  {line}");
    }
    let admin = app
        .admin_addr()
        .ok_or("the demo config enables the admin API")?;
    let token = bearer.to_owned();
    let (sessions, created) =
        tokio::task::spawn_blocking(move || -> std::io::Result<(u16, u16)> {
            let sessions = http(
                admin,
                "GET",
                "/api/v1/targets/demo/sessions?include_idle=true",
                Some(&token),
                None,
            )?;
            let created = http(
                admin,
                "POST",
                "/api/v1/targets/demo/users",
                Some(&token),
                Some("{\"name\": \"demo_user\"}"),
            )?;
            Ok((sessions.0, created.0))
        })
        .await??;
    println!("GET  http://{admin}/api/v1/targets/demo/sessions -> {sessions}");
    println!("POST http://{admin}/api/v1/targets/demo/users -> {created}");
    app.shutdown(mesa::app::DEFAULT_GRACE_PERIOD).await?;
    let ok = ready && up && sessions == 200 && created == 201;
    println!(
        "demo check: {}",
        if ok {
            "pg_up 1, admin API answers, ok"
        } else {
            "FAILED"
        }
    );
    Ok(ok)
}
