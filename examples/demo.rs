//! `cargo run --example demo`: Mesa against a throwaway local PostgreSQL, on a fresh machine.
//!
//! Starts a cluster with the test harness (in `target/demo/`, or the temp folder when the
//! `postgres` user cannot reach it), creates a least-privilege monitoring role (`pg_monitor`)
//! with a generated password in a 0600 file, copies `config/demo.yaml` next to it with the
//! server's port filled in, and runs the Mesa
//! daemon on it until Ctrl-C; then the cluster is stopped and removed (a watchdog also
//! removes it if the demo is killed).
//!
//! `cargo run --example demo -- --check` (used by CI) serves on a free port instead, waits for
//! the first collection, fetches `/metrics` over HTTP, requires `pg_up{server="demo"} 1`, and
//! exits.

use std::io::{Read as _, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::PathBuf;
use std::process::ExitCode;

use mesa::testing::{ClusterOptions, PgCluster};

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
        ..ClusterOptions::default()
    })?;
    let password = mesa::token::generate()?.sha256_hex;
    cluster.psql(
        "postgres",
        &format!("CREATE ROLE mesa_monitor LOGIN PASSWORD '{password}' IN ROLE pg_monitor"),
    )?;
    cluster.psql("postgres", "CREATE DATABASE shop")?;
    cluster.psql(
        "shop",
        "CREATE TABLE orders (id bigserial PRIMARY KEY, total numeric(10,2) NOT NULL);
         INSERT INTO orders (total) SELECT g * 1.5 FROM generate_series(1, 10000) g;",
    )?;

    let pwfile = dir.join("mesa_monitor.password");
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&pwfile)?
        .write_all(password.as_bytes())?;
    let config_path = dir.join("mesa.yaml");
    let template = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/demo.yaml"),
    )?;
    std::fs::write(
        &config_path,
        template.replace("port: 5432", &format!("port: {}", cluster.port())),
    )?;
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
        runtime.block_on(check_once(config))?
    } else {
        println!();
        println!("  metrics:   http://127.0.0.1:9930/metrics");
        println!("  one target: http://127.0.0.1:9930/probe?target=demo");
        println!("  readiness: http://127.0.0.1:9930/readyz");
        println!("  landing:   http://127.0.0.1:9930/");
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

/// Serves on a free port, waits for the first collection, and checks `/metrics` over HTTP.
async fn check_once(mut config: mesa::config::Config) -> Result<bool, Box<dyn std::error::Error>> {
    config.web.listen_address = "127.0.0.1:0".parse()?;
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
    let body = tokio::task::spawn_blocking(move || -> std::io::Result<String> {
        let mut stream = std::net::TcpStream::connect(addr)?;
        stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: demo\r\nConnection: close\r\n\r\n")?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        Ok(response)
    })
    .await??;
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
    app.shutdown(mesa::app::DEFAULT_GRACE_PERIOD).await?;
    println!(
        "demo check: {}",
        if ready && up { "pg_up 1, ok" } else { "FAILED" }
    );
    Ok(ready && up)
}
