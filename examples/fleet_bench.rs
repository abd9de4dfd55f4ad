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
//!    memory.
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

use mesa::testing::{ClusterOptions, PgCluster};

#[path = "../benches/common/scram.rs"]
mod scram;

#[path = "common/measure.rs"]
mod measure;
use measure::{free_port, machine, rss_mib, sum_of};

#[path = "common/run_args.rs"]
mod run_args;
use run_args::RunArgs;

type Error = Box<dyn std::error::Error>;

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
        }
    }
}

struct Args {
    mesa: PathBuf,
    exporter: PathBuf,
    out: PathBuf,
    plan: Plan,
    command: String,
}

fn parse_args() -> Result<Args, Error> {
    let mut exporter = PathBuf::from("/usr/bin/prometheus-postgres-exporter");
    let mut plan = Plan::full();
    let RunArgs { mesa, out, command } =
        RunArgs::parse::<Error>("cargo xtask bench", |flag, rest| {
            match flag {
                "--exporter" => {
                    exporter = rest.next().map(PathBuf::from).ok_or("--exporter PATH")?
                }
                "--smoke" => plan = Plan::smoke(),
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

// ---- process and server accounting -------------------------------------------------------

/// utime + stime (+ the reaped children's, with `children`) of `pid`, in seconds.
fn cpu_of(pid: u32, children: bool) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces), from field 3 (state) on.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    // utime is field 14, i.e. index 11 here; stime 12, cutime 13, cstime 14.
    let mut ticks = f.get(11).copied().unwrap_or(0.0) + f.get(12).copied().unwrap_or(0.0);
    if children {
        ticks += f.get(13).copied().unwrap_or(0.0) + f.get(14).copied().unwrap_or(0.0);
    }
    ticks / TICKS
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// CPU seconds of the whole server so far: the postmaster, its live children, and every
/// child it has reaped (ended backends land in the postmaster's cutime/cstime).
fn server_cpu(postmaster: u32) -> f64 {
    let mut total = cpu_of(postmaster, true);
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            if let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok())
                && parent_of(pid) == Some(postmaster)
            {
                total += cpu_of(pid, false);
            }
        }
    }
    total
}

/// CPU time of the calling thread, in seconds (nanosecond resolution).
fn thread_cpu() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1e9
}

fn postmaster_pid(cluster: &PgCluster) -> Result<u32, Error> {
    let pidfile = std::fs::read_to_string(cluster.dir().join("data").join("postmaster.pid"))?;
    Ok(pidfile
        .lines()
        .next()
        .ok_or("empty postmaster.pid")?
        .trim()
        .parse()?)
}

// ---- HTTP ----------------------------------------------------------------------------------

/// One HTTP/1.0 GET: status and body.
fn get(addr: SocketAddr, path: &str) -> Result<(u16, String), Error> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").ok_or("no HTTP header end")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or("no HTTP status")?;
    Ok((status, body.to_owned()))
}

fn wait_ready(addr: SocketAddr, path: &str, limit: Duration) -> Result<(), Error> {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if get(addr, path).is_ok_and(|(s, _)| s == 200) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Err(format!("{addr}{path} not ready within {limit:?}").into())
}

/// Series in an exposition (lines that are neither comments nor blank).
fn series(text: &str) -> usize {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .count()
}

/// `le` → cumulative count of a histogram.
fn buckets(text: &str, name: &str) -> BTreeMap<String, f64> {
    let prefix = format!("{name}_bucket{{le=\"");
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(&prefix)?;
            let (le, tail) = rest.split_once('"')?;
            Some((le.to_owned(), tail.rsplit(' ').next()?.parse().ok()?))
        })
        .collect()
}

/// The smallest bucket bound holding `q` of the observations between two readings.
fn quantile_bound(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>, q: f64) -> String {
    let mut rows: Vec<(f64, String, f64)> = after
        .iter()
        .map(|(le, n)| {
            let bound = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap_or(f64::INFINITY)
            };
            (
                bound,
                le.clone(),
                n - before.get(le).copied().unwrap_or(0.0),
            )
        })
        .collect();
    rows.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = rows.last().map(|r| r.2).unwrap_or(0.0);
    if total <= 0.0 {
        return "no observations".to_owned();
    }
    rows.iter()
        .find(|r| r.2 >= q * total)
        .map(|r| format!("≤ {} s", r.1))
        .unwrap_or_else(|| "> 5 s".to_owned())
}

// ---- the processes under test --------------------------------------------------------------

struct Proc {
    child: Child,
    addr: SocketAddr,
}

impl Proc {
    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_mesa(
    args: &Args,
    dir: &Path,
    cluster: &PgCluster,
    targets: usize,
    interval: Duration,
) -> Result<Proc, Error> {
    let port = free_port()?;
    let pw = dir.join("bench.pw");
    std::fs::write(&pw, PASSWORD)?;
    let mut yaml = format!(
        "collection: {{interval: {}ms, timeout: {}ms}}\nweb: {{listen_address: '127.0.0.1:{port}'}}\ntargets:\n",
        interval.as_millis(),
        (interval.as_millis() * 2 / 3).min(10_000)
    );
    for i in 0..targets {
        writeln!(
            yaml,
            "  - {{name: t{i:04}, driver: postgres, host: 127.0.0.1, port: {}, database: bench_mesa, username: bench_monitor, password_file: {}, sslmode: disable}}",
            cluster.port(),
            pw.display()
        )?;
    }
    let config = dir.join(format!("mesa-{targets}.yaml"));
    std::fs::write(&config, yaml)?;
    let child = Command::new(&args.mesa)
        .arg("--config.file")
        .arg(&config)
        .args(["--log.level", "warn"])
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(
            dir.join(format!("mesa-{targets}.log")),
        )?))
        .spawn()?;
    let proc = Proc {
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
    };
    wait_ready(proc.addr, "/readyz", interval * 2 + Duration::from_secs(10))?;
    Ok(proc)
}

fn start_exporter(args: &Args, dir: &Path, cluster: &PgCluster) -> Result<Proc, Error> {
    let port = free_port()?;
    let child = Command::new(&args.exporter)
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .env(
            "DATA_SOURCE_NAME",
            format!(
                "postgresql://bench_monitor:{PASSWORD}@127.0.0.1:{}/bench_pge?sslmode=disable",
                cluster.port()
            ),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(
            dir.join("exporter.log"),
        )?))
        .spawn()?;
    let proc = Proc {
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
    };
    wait_ready(proc.addr, "/metrics", Duration::from_secs(15))?;
    Ok(proc)
}

// ---- the server's own counters ---------------------------------------------------------------

struct DbCounters {
    sessions: f64,
    statements: f64,
}

fn db_counters(cluster: &PgCluster, db: &str) -> Result<DbCounters, Error> {
    let out = cluster.psql(
        "postgres",
        &format!(
            "SELECT (SELECT sessions FROM pg_stat_database WHERE datname = '{db}'),
                    (SELECT coalesce(sum(calls), 0) FROM pg_stat_statements s
                       JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = '{db}')"
        ),
    )?;
    let mut it = out
        .trim()
        .split('|')
        .map(|v| v.parse::<f64>().unwrap_or(0.0));
    Ok(DbCounters {
        sessions: it.next().unwrap_or(0.0),
        statements: it.next().unwrap_or(0.0),
    })
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

fn logins(cluster: &PgCluster, postmaster: u32, n: u32, idle_per_s: f64) -> Result<Logins, Error> {
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
    let t0 = Instant::now();
    let (client0, server0) = (thread_cpu(), server_cpu(postmaster));
    rt.block_on(async {
        for _ in 0..n {
            let (client, conn) = config.connect(tokio_postgres::NoTls).await?;
            let task = tokio::spawn(conn);
            drop(client);
            let _ = task.await;
        }
        Ok::<_, tokio_postgres::Error>(())
    })?;
    let (client1, server1) = (thread_cpu(), server_cpu(postmaster));
    let idle = idle_per_s * t0.elapsed().as_secs_f64();
    Ok(Logins {
        client_ms: (client1 - client0) * 1000.0 / f64::from(n),
        server_ms: ((server1 - server0 - idle).max(0.0)) * 1000.0 / f64::from(n),
        hashing_ms: scram_hashing_ms(n.min(100))?,
    })
}

/// The server under test and its idle CPU.
struct Server<'a> {
    cluster: &'a PgCluster,
    postmaster: u32,
    idle_per_s: f64,
}

/// Runs `proc` for `window`, scraping `/metrics` once a second, and accounts it: with
/// `scrapes_are_collections` (postgres_exporter) each scrape is a collection, else the
/// sessions opened in `db` are.
fn one_target(
    server: &Server<'_>,
    proc: &Proc,
    db: &str,
    window: Duration,
    scrapes_are_collections: bool,
) -> Result<OneTarget, Error> {
    let (cluster, postmaster, idle_per_s) = (server.cluster, server.postmaster, server.idle_per_s);
    let every = Duration::from_secs(1);
    let c0 = db_counters(cluster, db)?;
    let (cpu0, server0, t0) = (
        cpu_of(proc.pid(), true),
        server_cpu(postmaster),
        Instant::now(),
    );
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
    let elapsed = t0.elapsed().as_secs_f64();
    let (cpu1, server1) = (cpu_of(proc.pid(), true), server_cpu(postmaster));
    let c1 = db_counters(cluster, db)?;
    let collections = if scrapes_are_collections {
        scrapes
    } else {
        c1.sessions - c0.sessions
    };
    let collections = collections.max(1.0);
    Ok(OneTarget {
        collections,
        cpu_per_collection_ms: (cpu1 - cpu0) * 1000.0 / collections,
        series: series(&last),
        connections_per_collection: (c1.sessions - c0.sessions) / collections,
        statements_per_collection: (c1.statements - c0.statements) / collections,
        server_cpu_per_collection_ms: (server1 - server0 - idle_per_s * elapsed).max(0.0) * 1000.0
            / collections,
        rss_mib: rss_mib(proc.pid()),
    })
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
    let mesa = start_mesa(args, dir, cluster, targets, plan.scale_interval)?;
    // One more interval after every target's first collection: the steady state.
    std::thread::sleep(plan.scale_interval);
    let metrics = |p: &Proc| get(p.addr, "/metrics").map(|(_, b)| b);
    let before = metrics(&mesa)?;
    let c0 = db_counters(cluster, "bench_mesa")?;
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
    let c1 = db_counters(cluster, "bench_mesa")?;
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
        collections: c1.sessions - c0.sessions,
    })
}

// ---- the report ------------------------------------------------------------------------------

fn version(cmd: &Path, arg: &str) -> String {
    Command::new(cmd)
        .arg(arg)
        .output()
        .map(|o| {
            let all = format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            all.lines().next().unwrap_or("").trim().to_owned()
        })
        .unwrap_or_default()
}

fn ratio(mesa: f64, other: f64) -> String {
    if other > 0.0 && mesa.is_finite() {
        format!("{:.2}", mesa / other)
    } else {
        "n/a".to_owned()
    }
}

fn run() -> Result<(), Error> {
    let args = parse_args()?;
    let plan = args.plan.clone();
    std::fs::create_dir_all(&args.out)?;
    let work = std::env::temp_dir().join(format!("mesa-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let started = Instant::now();
    eprintln!("bench: starting PostgreSQL");
    let cluster = PgCluster::start(ClusterOptions {
        extra_conf: vec![
            "shared_preload_libraries = 'pg_stat_statements'".to_owned(),
            "max_connections = 200".to_owned(),
        ],
        ..ClusterOptions::default()
    })?;
    cluster.psql(
        "postgres",
        &format!(
            "CREATE EXTENSION pg_stat_statements;
             CREATE ROLE bench_monitor LOGIN PASSWORD '{PASSWORD}' IN ROLE pg_monitor;"
        ),
    )?;
    cluster.psql("postgres", "CREATE DATABASE bench_mesa")?;
    cluster.psql("postgres", "CREATE DATABASE bench_pge")?;
    for db in ["bench_mesa", "bench_pge"] {
        cluster.psql(
            db,
            "CREATE TABLE orders (id bigserial PRIMARY KEY, total numeric);
             INSERT INTO orders (total) SELECT g FROM generate_series(1, 10000) g;
             ANALYZE orders;",
        )?;
    }
    let postmaster = postmaster_pid(&cluster)?;

    eprintln!("bench: server idle for {:?}", plan.idle);
    let (s0, t0) = (server_cpu(postmaster), Instant::now());
    std::thread::sleep(plan.idle);
    let idle_per_s = (server_cpu(postmaster) - s0) / t0.elapsed().as_secs_f64();

    eprintln!("bench: {} logins", plan.logins);
    let login = logins(&cluster, postmaster, plan.logins, idle_per_s)?;

    eprintln!(
        "bench: Mesa, one target, every second, for {:?}",
        plan.per_collection
    );
    let second = Duration::from_secs(1);
    let mesa1 = start_mesa(&args, &work, &cluster, 1, second)?;
    std::thread::sleep(Duration::from_millis(1500));
    let server = Server {
        cluster: &cluster,
        postmaster,
        idle_per_s,
    };
    let mesa = one_target(&server, &mesa1, "bench_mesa", plan.per_collection, false)?;
    eprintln!(
        "bench: postgres_exporter, scraped every second, for {:?}",
        plan.per_collection
    );
    let pge = start_exporter(&args, &work, &cluster)?;
    std::thread::sleep(Duration::from_millis(1500));
    let exporter = one_target(&server, &pge, "bench_pge", plan.per_collection, true)?;

    eprintln!("bench: latency with wrk");
    let hundred = if plan.smoke { 10 } else { 100 };
    let mesa100 = start_mesa(&args, &work, &cluster, hundred, Duration::from_secs(15))?;
    let mut latency: Vec<(String, u32, bool, Latency)> = Vec::new();
    let endpoints: Vec<(String, SocketAddr, &str)> = vec![
        (
            "Mesa, 1 target: /metrics".to_owned(),
            mesa1.addr,
            "/metrics",
        ),
        (
            format!("Mesa, {hundred} targets: /metrics"),
            mesa100.addr,
            "/metrics",
        ),
        (
            format!("Mesa, {hundred} targets: /probe"),
            mesa100.addr,
            "/probe?target=t0001",
        ),
        (
            "postgres_exporter, 1 target: /metrics".to_owned(),
            pge.addr,
            "/metrics",
        ),
    ];
    let hundred_size = get(mesa100.addr, "/metrics")?.1.len();
    for (label, addr, path) in &endpoints {
        for conns in [1, 10] {
            for gzip in [false, true] {
                latency.push((
                    label.clone(),
                    conns,
                    gzip,
                    wrk(*addr, path, conns, gzip, plan.wrk)?,
                ));
            }
        }
    }
    let rss_pge = rss_mib(pge.pid());
    drop((mesa1, mesa100, pge));

    let mut scales = Vec::new();
    for n in plan.scale.clone() {
        eprintln!("bench: Mesa at {n} targets every {:?}", plan.scale_interval);
        scales.push(scale(&args, &work, &cluster, n)?);
    }
    let total = started.elapsed();

    // ---- write the report ----
    let mut csv = String::from("targets,cpu_percent,rss_mib\n");
    for s in &scales {
        writeln!(csv, "{},{:.3},{:.2}", s.targets, s.cpu_percent, s.rss_mib)?;
    }
    std::fs::write(args.out.join("scale.csv"), csv)?;

    let mut md = String::new();
    writeln!(
        md,
        "# Benchmarks: Mesa and postgres_exporter side by side\n"
    )?;
    writeln!(
        md,
        "Written by `{}` ({}). Do not edit by hand: run the command again.\n",
        args.command,
        if plan.smoke {
            "smoke run: short windows, small scale; the figures only show each is measured"
        } else {
            "full run"
        }
    )?;
    writeln!(md, "- Machine: {}", machine())?;
    writeln!(
        md,
        "- PostgreSQL: {}",
        cluster.psql("postgres", "SHOW server_version")?.trim()
    )?;
    writeln!(
        md,
        "- Mesa: {} (release build)",
        version(&args.mesa, "--version")
    )?;
    writeln!(
        md,
        "- postgres_exporter: {}",
        version(&args.exporter, "--version")
    )?;
    writeln!(
        md,
        "- One throwaway cluster (the test harness), `pg_stat_statements` loaded; both exporters log in as a `pg_monitor` member with SCRAM-SHA-256, without TLS, each to its own database with one 10 000-row table. Every phase runs alone; the server's idle CPU ({:.2} ms/s) is subtracted from its figures.",
        idle_per_s * 1000.0
    )?;
    writeln!(md, "- Run time: {:.0} s.\n", total.as_secs_f64())?;

    writeln!(md, "## One target, default collectors of each\n")?;
    writeln!(
        md,
        "Mesa collects on its schedule (every second here) and is scraped once per collection; postgres_exporter collects on each scrape (every second here). CPU is the exporter process's user + system time over the window ({:.0} s) divided by collections.\n",
        plan.per_collection.as_secs_f64()
    )?;
    writeln!(
        md,
        "| figure | Mesa | postgres_exporter | Mesa / postgres_exporter |"
    )?;
    writeln!(md, "|---|---:|---:|---:|")?;
    let m_per_series = mesa.cpu_per_collection_ms * 1000.0 / mesa.series as f64;
    let e_per_series = exporter.cpu_per_collection_ms * 1000.0 / exporter.series as f64;
    let rows: Vec<(&str, f64, f64, usize)> = vec![
        (
            "exporter CPU per collection (ms)",
            mesa.cpu_per_collection_ms,
            exporter.cpu_per_collection_ms,
            2,
        ),
        (
            "series exported (whole /metrics)",
            mesa.series as f64,
            exporter.series as f64,
            0,
        ),
        (
            "exporter CPU per exported series (µs)",
            m_per_series,
            e_per_series,
            2,
        ),
        (
            "connections opened per collection",
            mesa.connections_per_collection,
            exporter.connections_per_collection,
            2,
        ),
        (
            "statements per collection (pg_stat_statements calls)",
            mesa.statements_per_collection,
            exporter.statements_per_collection,
            1,
        ),
        (
            "server CPU per collection (ms)",
            mesa.server_cpu_per_collection_ms,
            exporter.server_cpu_per_collection_ms,
            2,
        ),
        (
            "resident memory (MiB)",
            mesa.rss_mib,
            exporter.rss_mib.max(rss_pge),
            1,
        ),
        (
            "collections in the window",
            mesa.collections,
            exporter.collections,
            0,
        ),
    ];
    for (name, m, e, digits) in rows {
        writeln!(
            md,
            "| {name} | {m:.digits$} | {e:.digits$} | {} |",
            ratio(m, e)
        )?;
    }
    writeln!(md, "\n### Authentication\n")?;
    writeln!(
        md,
        "Mesa opens one connection per collection (the design: no idle sessions on the fleet), so each collection pays one SCRAM-SHA-256 login; postgres_exporter keeps its connection. Measured alone, {} logins in a row with Mesa's driver (tokio-postgres):\n",
        plan.logins
    )?;
    writeln!(
        md,
        "| per login | CPU (ms) | share of Mesa's per-collection figure |"
    )?;
    writeln!(md, "|---|---:|---:|")?;
    writeln!(
        md,
        "| client: SCRAM hashing alone (PBKDF2, 4096 rounds) | {:.2} | {:.0}% of exporter CPU |",
        login.hashing_ms,
        100.0 * login.hashing_ms / mesa.cpu_per_collection_ms
    )?;
    writeln!(
        md,
        "| client: whole connect and close | {:.2} | {:.0}% of exporter CPU |",
        login.client_ms,
        100.0 * login.client_ms / mesa.cpu_per_collection_ms
    )?;
    writeln!(
        md,
        "| server: backend start, authentication and exit | {:.2} | {:.0}% of server CPU |\n",
        login.server_ms,
        100.0 * login.server_ms / mesa.server_cpu_per_collection_ms.max(f64::MIN_POSITIVE)
    )?;

    writeln!(
        md,
        "## Scrape latency (wrk, {:.0} s per row)\n",
        plan.wrk.as_secs_f64()
    )?;
    writeln!(
        md,
        "wrk runs on the same 2 cores as the exporter. Mesa's `/metrics` at {hundred} targets is {:.1} MB of text. postgres_exporter queries the server on every scrape, so its rows are collections, not cache reads.\n",
        hundred_size as f64 / 1e6
    )?;
    writeln!(
        md,
        "| endpoint | connections | gzip | p50 (ms) | p99 (ms) | requests/s | errors |"
    )?;
    writeln!(md, "|---|---:|---|---:|---:|---:|---:|")?;
    for (label, conns, gzip, l) in &latency {
        writeln!(
            md,
            "| {label} | {conns} | {} | {:.2} | {:.2} | {:.0} | {} |",
            if *gzip { "yes" } else { "no" },
            l.p50_ms,
            l.p99_ms,
            l.rps,
            l.errors
        )?;
    }
    writeln!(
        md,
        "\nMesa / postgres_exporter at one target, `/metrics`:\n"
    )?;
    writeln!(md, "| connections | gzip | p99 ratio | throughput ratio |")?;
    writeln!(md, "|---:|---|---:|---:|")?;
    for conns in [1, 10] {
        for gzip in [false, true] {
            let find = |prefix: &str| {
                latency
                    .iter()
                    .find(|(l, c, g, _)| l.starts_with(prefix) && *c == conns && *g == gzip)
                    .map(|r| r.3.clone())
                    .unwrap_or_default()
            };
            let (m, e) = (find("Mesa, 1 target"), find("postgres_exporter"));
            writeln!(
                md,
                "| {conns} | {} | {} | {} |",
                if gzip { "yes" } else { "no" },
                ratio(m.p99_ms, e.p99_ms),
                ratio(m.rps, e.rps)
            )?;
        }
    }

    writeln!(
        md,
        "\n## Mesa at scale: every target every {:.0} s\n",
        plan.scale_interval.as_secs_f64()
    )?;
    writeln!(
        md,
        "Targets share the one cluster. Measured over {:.0} s after one full interval of warm-up, with one `/metrics` scrape per interval. Start delay is how late a collection started after its tick (`mesa_collect_start_delay_seconds`, read as the smallest bucket bound that holds the quantile).\n",
        plan.scale_window.as_secs_f64()
    )?;
    writeln!(
        md,
        "| targets | mean CPU (% of one core) | start delay p50 | start delay p99 | skipped ticks | collections | pg_up | resident memory (MiB) |"
    )?;
    writeln!(md, "|---:|---:|---|---|---:|---:|---:|---:|")?;
    for s in &scales {
        writeln!(
            md,
            "| {} | {:.2} | {} | {} | {:.0} | {:.0} | {:.0} | {:.1} |",
            s.targets,
            s.cpu_percent,
            s.delay_p50,
            s.delay_p99,
            s.skipped,
            s.collections,
            s.up,
            s.rss_mib
        )?;
    }
    writeln!(
        md,
        "\n![Mesa's CPU and memory against target count](benchmarks.png)"
    )?;
    std::fs::write(args.out.join("BENCHMARKS.md"), &md)?;
    println!("{md}");
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}
