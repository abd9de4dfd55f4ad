//! `cargo run --example demo`: Mesa against a throwaway local PostgreSQL, on a fresh machine.
//!
//! Starts a cluster with the test harness (in `target/demo/`, or the temp folder when the
//! `postgres` user cannot reach it), creates a least-privilege monitoring role (`pg_monitor`)
//! with a generated password in a 0600 file, writes a config next to it, and runs Mesa on it.
//! The cluster is stopped and removed when the demo ends, also on Ctrl-C.

use std::io::Write as _;
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
    std::fs::write(
        &config_path,
        format!(
            "# Written by `cargo run --example demo`.
collection: {{interval: 15s, timeout: 10s}}
web: {{listen_address: \"127.0.0.1:9930\"}}
targets:
  - name: demo
    driver: postgres
    host: {host}
    port: {port}
    database: postgres
    username: mesa_monitor
    password_file: mesa_monitor.password
    sslmode: require
",
            host = cluster.host(),
            port = cluster.port()
        ),
    )?;
    println!(
        "PostgreSQL {}:{} is up; config: {}",
        cluster.host(),
        cluster.port(),
        config_path.display()
    );

    let config = mesa::config::load(&config_path)?;
    mesa::logging::init("warn", mesa::cli::LogFormat::Logfmt)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let ok = runtime.block_on(mesa::app::run(config));
    println!(
        "stopping PostgreSQL and removing {}",
        cluster.dir().display()
    );
    drop(cluster);
    Ok(ok)
}
