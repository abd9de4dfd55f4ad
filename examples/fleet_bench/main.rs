//! `cargo xtask bench` (or `cargo run --release --example fleet_bench -- ...`): Mesa and
//! Debian's postgres_exporter side by side against one throwaway PostgreSQL.
//!
//! Phases, each measured alone so the server's CPU can be attributed:
//! 1. the server idle (its background CPU, subtracted from every server figure);
//! 2. logins alone: client and server CPU of one SCRAM login, and the SCRAM hashing alone;
//! 3. Mesa, one target, one collection per second (and one scrape after each, as
//!    Prometheus would), then postgres_exporter scraped once per second: exporter CPU per
//!    collection, connections, statements and server CPU per collection, memory, series;
//! 4. `/metrics` and `/probe` latency with wrk: 1 and 10 connections, with and without gzip;
//! 5. Mesa at 1, 100 and 1000 targets every 15 s: mean CPU, start delay p99, skipped ticks,
//!    memory;
//! 6. one `queries.yaml` of 20 user queries run by both, once a second (`--only-queries`
//!    runs this phase alone and writes `QUERIES.md`);
//! 7. MySQL: Mesa and Debian's mysqld_exporter against one throwaway MariaDB, once a second
//!    (`mysql.rs`; `--only-mysql` runs this phase alone and writes `MYSQL.md`).
//!
//! Writes `BENCHMARKS.md` and `scale.csv` (for the plot) into `--out`. `--smoke` runs every
//! phase briefly at small scale (CI): the figures are then only a check that each is measured.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mesa_testkit::{ClusterOptions, PgCluster};

use mesa_testkit::scram;

use mesa_testkit::measure::{machine, rss_mib, sum_of};
use mesa_testkit::ports;

use mesa_testkit::run_args::{RunArgs, spawn_mesa};

type Error = Box<dyn std::error::Error>;

mod accounting;
mod http;
mod mysql;
mod procs;
mod queries;
mod report;
use accounting::*;
use http::*;
use mysql::*;
use procs::*;
use queries::*;
use report::*;

/// Clock ticks per second of `/proc/<pid>/stat` (Linux's USER_HZ, 100 on every Debian kernel).
const TICKS: f64 = 100.0;
const PASSWORD: &str = "bench-password-0123456789";

/// How long each phase runs.
#[derive(Debug, Clone)]
struct Plan {
    smoke: bool,
    idle: Duration,
    logins: u32,
    per_collection: Duration,
    wrk: Duration,
    scale: Vec<usize>,
    scale_interval: Duration,
    scale_window: Duration,
    /// The default interval, and how long each exporter runs alone at it.
    default_interval: Duration,
    default_window: Duration,
    /// Databases (of 20 tables each) of the discovery phase, and its window.
    discovery_databases: usize,
    discovery_window: Duration,
    /// The interval of the 100 targets scraped for the memory figure.
    memory_interval: Duration,
}

impl Plan {
    fn full() -> Self {
        Self {
            smoke: false,
            idle: Duration::from_secs(30),
            logins: 300,
            per_collection: Duration::from_secs(60),
            wrk: Duration::from_secs(10),
            scale: vec![1, 100, 1000],
            scale_interval: Duration::from_secs(15),
            scale_window: Duration::from_secs(60),
            default_interval: Duration::from_secs(15),
            default_window: Duration::from_secs(300),
            discovery_databases: 50,
            discovery_window: Duration::from_secs(120),
            memory_interval: Duration::from_secs(5),
        }
    }

    fn smoke() -> Self {
        Self {
            smoke: true,
            idle: Duration::from_secs(2),
            logins: 20,
            per_collection: Duration::from_secs(5),
            wrk: Duration::from_secs(1),
            scale: vec![1, 10, 50],
            scale_interval: Duration::from_secs(2),
            scale_window: Duration::from_secs(4),
            default_interval: Duration::from_secs(2),
            default_window: Duration::from_secs(8),
            discovery_databases: 5,
            discovery_window: Duration::from_secs(6),
            memory_interval: Duration::from_secs(1),
        }
    }
}

struct Args {
    mesa: PathBuf,
    exporter: PathBuf,
    out: PathBuf,
    plan: Plan,
    command: String,
    /// `--only-queries`: the user-queries phase alone, into `QUERIES.md`.
    only_queries: bool,
    /// `--only-mysql`: the MySQL phase alone, into `MYSQL.md`.
    only_mysql: bool,
}

fn parse_args() -> Result<Args, Error> {
    let mut exporter = PathBuf::from("/usr/bin/prometheus-postgres-exporter");
    let mut plan = Plan::full();
    let mut only_queries = false;
    let mut only_mysql = false;
    let RunArgs { mesa, out, command } =
        RunArgs::parse::<Error>("cargo xtask bench", |flag, rest| {
            match flag {
                "--exporter" => {
                    exporter = rest.next().map(PathBuf::from).ok_or("--exporter PATH")?
                }
                "--smoke" => plan = Plan::smoke(),
                "--only-queries" => only_queries = true,
                "--only-mysql" => only_mysql = true,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
    Ok(Args {
        mesa,
        exporter,
        out,
        plan,
        command,
        only_queries,
        only_mysql,
    })
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fleet_bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

// ---- phases ----------------------------------------------------------------------------------

/// One exporter's figures at one target.
#[derive(Debug, Default, Clone)]
struct OneTarget {
    collections: f64,
    cpu_per_collection_ms: f64,
    series: usize,
    connections_per_collection: f64,
    statements_per_collection: f64,
    server_cpu_per_collection_ms: f64,
    rss_mib: f64,
    /// Where the server's time went (profiled phases only).
    profile: Vec<Spent>,
}

struct Logins {
    client_ms: f64,
    server_ms: f64,
    hashing_ms: f64,
}

/// The SCRAM-SHA-256 client proof alone: 4096 rounds of HMAC-SHA-256 (PBKDF2), with the
/// same crate Mesa's driver uses, against a made-up server-first message.
fn scram_hashing_ms(rounds: u32) -> Result<f64, Error> {
    let start = thread_cpu();
    for _ in 0..rounds {
        scram::client_proof(PASSWORD.as_bytes())?;
    }
    Ok((thread_cpu() - start) * 1000.0 / f64::from(rounds))
}

fn logins(cluster: &PgCluster, postmaster: u32, n: u32) -> Result<Logins, Error> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut config = tokio_postgres::Config::new();
    config
        .host("127.0.0.1")
        .port(cluster.port())
        .user("bench_monitor")
        .password(PASSWORD)
        .dbname("bench_mesa");
    settle();
    let (client0, server0) = (thread_cpu(), client_cpu(postmaster));
    rt.block_on(async {
        for _ in 0..n {
            let (client, conn) = config.connect(tokio_postgres::NoTls).await?;
            let task = tokio::spawn(conn);
            drop(client);
            let _ = task.await;
        }
        Ok::<_, tokio_postgres::Error>(())
    })?;
    settle();
    let (client1, server1) = (thread_cpu(), client_cpu(postmaster));
    Ok(Logins {
        client_ms: (client1 - client0) * 1000.0 / f64::from(n),
        server_ms: (server1 - server0) * 1000.0 / f64::from(n),
        hashing_ms: scram_hashing_ms(n.min(100))?,
    })
}

/// The server under test.
struct Server<'a> {
    cluster: &'a PgCluster,
    postmaster: u32,
}

/// What counts as a collection of one exporter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Counting {
    /// postgres_exporter: each scrape is one.
    Scrapes,
    /// Mesa: its own count of collections started (`mesa_collect_start_delay_seconds`).
    MesaCounter,
}

/// Collections Mesa has started, from a scrape.
fn mesa_collections(body: &str) -> f64 {
    sum_of(body, "mesa_collect_start_delay_seconds_count")
}

/// Runs `proc` for `window`, scraping `/metrics` every `every`, and accounts it. Statements
/// and sessions are the server's, all databases (each phase runs alone; Mesa visits every
/// database of the server).
fn one_target(
    server: &Server<'_>,
    proc: &Proc,
    window: Duration,
    every: Duration,
    counting: Counting,
    profile: bool,
) -> Result<OneTarget, Error> {
    let (cluster, postmaster) = (server.cluster, server.postmaster);
    let started = mesa_collections(&get(proc.addr, "/metrics")?.1);
    if profile {
        reset_statements(cluster)?;
    }
    let c0 = server_counters(cluster)?;
    settle();
    let (cpu0, server0, t0) = (
        cpu_of(proc.pid(), true),
        client_cpu(postmaster),
        Instant::now(),
    );
    let (scrapes, mut last) = scrape_for(proc, t0, window, every)?;
    let (cpu1, server1) = (cpu_of(proc.pid(), true), client_cpu(postmaster));
    let c1 = server_counters(cluster)?;
    if counting == Counting::MesaCounter {
        last = get(proc.addr, "/metrics")?.1;
    }
    let collections = match counting {
        Counting::Scrapes => scrapes,
        Counting::MesaCounter => mesa_collections(&last) - started,
    };
    let collections = collections.max(1.0);
    Ok(OneTarget {
        collections,
        cpu_per_collection_ms: (cpu1 - cpu0) * 1000.0 / collections,
        series: series(&last),
        connections_per_collection: (c1.sessions - c0.sessions) / collections,
        statements_per_collection: (c1.statements - c0.statements) / collections,
        server_cpu_per_collection_ms: (server1 - server0) * 1000.0 / collections,
        rss_mib: rss_mib(proc.pid()),
        profile: if profile {
            statement_profile(cluster, 10)?
        } else {
            Vec::new()
        },
    })
}

/// Scrapes `proc`'s `/metrics` every `every` until `window` has passed since `t0`, as
/// Prometheus would; how many scrapes, and the last body.
fn scrape_for(
    proc: &Proc,
    t0: Instant,
    window: Duration,
    every: Duration,
) -> Result<(f64, String), Error> {
    let mut scrapes = 0.0;
    let mut last = String::new();
    while t0.elapsed() < window {
        let tick = Instant::now();
        let (status, body) = get(proc.addr, "/metrics")?;
        if status != 200 {
            return Err(format!("scrape answered {status}").into());
        }
        last = body;
        scrapes += 1.0;
        std::thread::sleep(every.saturating_sub(tick.elapsed()));
    }
    Ok((scrapes, last))
}

/// One wrk run's figures.
#[derive(Debug, Default, Clone)]
struct Latency {
    p50_ms: f64,
    p99_ms: f64,
    rps: f64,
    errors: u64,
}

fn wrk_ms(v: &str) -> f64 {
    let v = v.trim();
    let (num, scale) = if let Some(n) = v.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = v.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1000.0)
    } else {
        (v, 1.0)
    };
    num.parse::<f64>().unwrap_or(f64::NAN) * scale
}

fn wrk(
    addr: SocketAddr,
    path: &str,
    conns: u32,
    gzip: bool,
    d: Duration,
) -> Result<Latency, Error> {
    let mut cmd = Command::new("wrk");
    cmd.args(["--latency", "-t", if conns > 1 { "2" } else { "1" }])
        .args(["-c", &conns.to_string()])
        .args(["-d", &format!("{}s", d.as_secs().max(1))])
        .args(["--timeout", "10s"]);
    if gzip {
        cmd.args(["-H", "Accept-Encoding: gzip"]);
    }
    cmd.args(["-H", &format!("Accept: {}", http::PROMETHEUS_ACCEPT)]);
    let out = cmd.arg(format!("http://{addr}{path}")).output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!("wrk failed: {text}{}", String::from_utf8_lossy(&out.stderr)).into());
    }
    let mut l = Latency::default();
    for line in text.lines() {
        let t = line.trim();
        if let Some(v) = t.strip_prefix("50%") {
            l.p50_ms = wrk_ms(v);
        } else if let Some(v) = t.strip_prefix("99%") {
            l.p99_ms = wrk_ms(v);
        } else if let Some(v) = t.strip_prefix("Requests/sec:") {
            l.rps = v.trim().parse().unwrap_or(0.0);
        } else if let Some(v) = t.strip_prefix("Non-2xx or 3xx responses:") {
            l.errors += v.trim().parse::<u64>().unwrap_or(0);
        } else if t.starts_with("Socket errors:") {
            l.errors += t
                .split(|c: char| !c.is_ascii_digit())
                .filter_map(|n| n.parse::<u64>().ok())
                .sum::<u64>();
        }
    }
    Ok(l)
}

/// Mesa at one scale.
#[derive(Debug, Clone)]
struct Scale {
    targets: usize,
    cpu_percent: f64,
    rss_mib: f64,
    delay_p99: String,
    delay_p50: String,
    skipped: f64,
    up: f64,
    collections: f64,
}

fn scale(args: &Args, dir: &Path, cluster: &PgCluster, targets: usize) -> Result<Scale, Error> {
    let plan = &args.plan;
    // Each target stands for a server of its own, but they all share this one 2-core
    // cluster: it cannot hold 1000 kept sessions, and 1000 targets' database visits (17
    // cold sessions a second at 1000) saturated it in the first run with visits (463 of
    // 1000 targets timed out). The phase measures Mesa's own scheduling cost, as before
    // discovery: ephemeral sessions, server collectors only.
    let mesa = start_mesa(
        args,
        dir,
        cluster,
        targets,
        plan.scale_interval,
        ", session: ephemeral, databases: {discover: false}, collectors: {stat_user_tables: false, statio_user_tables: false, stat_user_indexes: false, statio_user_indexes: false}",
    )?;
    // One more interval after every target's first collection: the steady state.
    std::thread::sleep(plan.scale_interval);
    let metrics = |p: &Proc| get(p.addr, "/metrics").map(|(_, b)| b);
    let before = metrics(&mesa)?;

    let (cpu0, t0) = (cpu_of(mesa.pid(), true), Instant::now());
    // Prometheus' share: one gzip scrape per interval.
    while t0.elapsed() < plan.scale_window {
        let _ = get(mesa.addr, "/metrics");
        std::thread::sleep(
            plan.scale_interval
                .min(plan.scale_window.saturating_sub(t0.elapsed())),
        );
    }
    let (cpu1, elapsed) = (cpu_of(mesa.pid(), true), t0.elapsed().as_secs_f64());
    let after = metrics(&mesa)?;

    let name = "mesa_collect_start_delay_seconds";
    let (b0, b1) = (buckets(&before, name), buckets(&after, name));
    Ok(Scale {
        targets,
        cpu_percent: (cpu1 - cpu0) * 100.0 / elapsed,
        rss_mib: rss_mib(mesa.pid()),
        delay_p99: quantile_bound(&b0, &b1, 0.99),
        delay_p50: quantile_bound(&b0, &b1, 0.50),
        skipped: sum_of(&after, "mesa_collect_skipped_total")
            - sum_of(&before, "mesa_collect_skipped_total"),
        up: sum_of(&after, "pg_up"),
        collections: mesa_collections(&after) - mesa_collections(&before),
    })
}

/// One exporter on a server with many databases, discovery on.
#[derive(Debug, Default, Clone)]
struct Discovery {
    logins_per_s: f64,
    server_cpu_ms_per_s: f64,
    exporter_cpu_ms_per_s: f64,
    series: usize,
    /// Databases with table series in the last scrape.
    databases: usize,
}

/// Creates `n` databases `bench_dNN` of 20 small tables each.
fn many_databases(cluster: &PgCluster, n: usize) -> Result<(), Error> {
    for i in 0..n {
        let db = format!("bench_d{i:02}");
        cluster.psql("postgres", &format!("CREATE DATABASE {db}"))?;
        cluster.psql(
            &db,
            "DO $$ BEGIN FOR i IN 1..20 LOOP
                EXECUTE format('CREATE TABLE t%s (id int PRIMARY KEY, v text)', i);
                EXECUTE format('INSERT INTO t%s SELECT g, g::text FROM generate_series(1, 100) g', i);
             END LOOP; END $$; ANALYZE;",
        )?;
    }
    Ok(())
}

/// Drops the databases [`many_databases`] made.
fn drop_databases(cluster: &PgCluster, n: usize) -> Result<(), Error> {
    for i in 0..n {
        cluster.psql(
            "postgres",
            &format!("DROP DATABASE bench_d{i:02} WITH (FORCE)"),
        )?;
    }
    Ok(())
}

/// Runs `proc` for `window` after one `every` of warm-up, scraped every `every`.
fn discovery(
    server: &Server<'_>,
    proc: &Proc,
    window: Duration,
    every: Duration,
) -> Result<Discovery, Error> {
    std::thread::sleep(every);
    let (cluster, postmaster) = (server.cluster, server.postmaster);
    let c0 = server_counters(cluster)?;
    settle();
    let (cpu0, server0, t0) = (
        cpu_of(proc.pid(), true),
        client_cpu(postmaster),
        Instant::now(),
    );
    let mut last = String::new();
    while t0.elapsed() < window {
        let tick = Instant::now();
        last = get(proc.addr, "/metrics")?.1;
        std::thread::sleep(
            every
                .saturating_sub(tick.elapsed())
                .min(window.saturating_sub(t0.elapsed())),
        );
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let (cpu1, server1) = (cpu_of(proc.pid(), true), client_cpu(postmaster));
    let c1 = server_counters(cluster)?;
    let databases: std::collections::BTreeSet<&str> = last
        .lines()
        .filter(|l| l.starts_with("pg_stat_user_tables_n_live_tup{"))
        .filter_map(|l| l.split("datname=\"").nth(1)?.split('"').next())
        .collect();
    Ok(Discovery {
        logins_per_s: (c1.sessions - c0.sessions) / elapsed,
        server_cpu_ms_per_s: (server1 - server0) * 1000.0 / elapsed,
        exporter_cpu_ms_per_s: (cpu1 - cpu0) * 1000.0 / elapsed,
        series: series(&last),
        databases: databases.len(),
    })
}

/// The largest resident memory of `pid` while `work` runs, sampled every 50 ms.
fn peak_rss_during<T>(pid: u32, work: impl FnOnce() -> T) -> (T, f64) {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut peak = 0.0f64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(rss_mib(pid));
                std::thread::sleep(Duration::from_millis(50));
            }
            peak.max(rss_mib(pid))
        })
    };
    let out = work();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let peak = sampler.join().unwrap_or(0.0);
    (out, peak)
}
