//! `scripts/soak` (`cargo xtask soak`): Mesa under the faults a fleet has, for as long as
//! asked, with the figures that show whether anything leaks.
//!
//! One throwaway PostgreSQL; 50 targets, each with a role of its own and a TCP fault proxy
//! in front of the server; Mesa (the release binary) collects every target every second.
//! Meanwhile:
//! - two scrapers read `/metrics` continuously (one asks for gzip, as Prometheus does);
//! - an admin reader calls the read routes (targets, health, sessions, databases, tables)
//!   of random targets, four times a second;
//! - every `--fault-every` (30 s) a fault from the list is injected, held for half the
//!   period, and cleared: the proxies' refuse, black hole, stall, latency and reset on some
//!   targets; on some targets' roles `CONNECTION LIMIT 0`, a wrong password, `pg_monitor`
//!   revoked, their backends terminated; for everyone a table lock a collector waits on,
//!   the postmaster stopped (SIGSTOP), a restart, `max_connections` exhausted. The order is
//!   a shuffle of the list, reshuffled when used up, from a printed seed (`--seed`).
//! - every second a sample: Mesa's resident memory, open descriptors, threads and live tasks;
//!   Mesa's sessions on the server (all, and the most of one target) and its oldest running
//!   statement; targets up; the slowest scrape of that second.
//!
//! Writes `soak.csv` (the samples), `soak-faults.csv` (the faults) and `RELIABILITY.md`
//! into `--out`. The run fails (exit 1) on what must never happen: a scrape that fails, an
//! admin answer other than 200, 503 or 504, more than 2 sessions of a target, a statement
//! past `statement_timeout` + 1 s, a target not back up before the next fault, Mesa not
//! exiting cleanly on SIGTERM; and, for runs of 10 minutes or more, memory, descriptors or
//! tasks that grow after warm-up.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mesa_testkit::{ClusterOptions, PgCluster};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use mesa_testkit::proxy::{FaultProxy, Mode};

use mesa_testkit::measure::{machine, rss_mib, sum_of};
use mesa_testkit::ports;

use mesa_testkit::run_args::{RunArgs, spawn_mesa};

type Error = Box<dyn std::error::Error + Send + Sync>;

const TARGETS: usize = 50;
/// Targets a per-target fault hits at once.
const HIT: usize = 10;
const PASSWORD: &str = "soak-password-0123456789";
/// Each scraper's pause between two scrapes.
const SCRAPE_PAUSE: Duration = Duration::from_millis(500);
const INTERVAL: Duration = Duration::from_secs(1);
const TIMEOUT: Duration = Duration::from_millis(800);
const STATEMENT_TIMEOUT: Duration = Duration::from_millis(700);
/// The collectors the soak runs: every target sits on one 2-core machine with its server, so
/// 50 collections a second of the full set would cost that one server about 1.4 cores (27.7 ms
/// each, docs/BENCHMARKS.md), the work of 50 servers. The set keeps a collector of each kind
/// of source (server-wide views, per-database statistics, locks, an extension's view that a
/// table lock blocks).
const COLLECTORS: [(&str, bool); 12] = [
    ("activity", true),
    ("stat_database", true),
    ("locks", true),
    ("stat_statements", true),
    ("database", false),
    ("bgwriter", false),
    ("replication", false),
    ("replication_slots", false),
    ("stat_replication", false),
    ("wraparound", false),
    ("settings", false),
    ("stat_user_tables", false),
];
/// Runs at least this long are judged on memory, descriptors and tasks after warm-up.
const JUDGED: Duration = Duration::from_secs(600);
/// Memory growth after warm-up that fails a judged run (issue 11's "baseline + 5 MiB").
const RSS_SLACK_MIB: f64 = 5.0;

mod daemon;
mod faults;
mod report;
mod traffic;
use daemon::*;
use faults::*;
use report::*;
use traffic::*;

// ---- arguments -----------------------------------------------------------------------------

struct Args {
    mesa: PathBuf,
    out: PathBuf,
    duration: Duration,
    fault_every: Duration,
    seed: u64,
    command: String,
}

fn parse_args() -> Result<Args, Error> {
    let mut duration = Duration::from_secs(30 * 60);
    let mut fault_every = Duration::from_secs(30);
    let mut seed = None;
    let duration_arg = |v: Option<String>, what: &str| -> Result<Duration, Error> {
        let v = v.ok_or_else(|| format!("{what} DURATION (e.g. 30m)"))?;
        humantime::parse_duration(&v).map_err(|e| format!("{what} {v:?}: {e}").into())
    };
    let RunArgs { mesa, out, command } = RunArgs::parse::<Error>("scripts/soak", |flag, rest| {
        match flag {
            "--duration" => duration = duration_arg(rest.next(), "--duration")?,
            "--fault-every" => fault_every = duration_arg(rest.next(), "--fault-every")?,
            "--seed" => seed = Some(rest.next().ok_or("--seed NUMBER")?.parse()?),
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    if fault_every < Duration::from_secs(10) {
        return Err("--fault-every must be at least 10s (a fault, then time to recover)".into());
    }
    if duration < fault_every * 2 {
        return Err("--duration must hold at least two fault periods".into());
    }
    let seed = match seed {
        Some(s) => s,
        None => {
            let mut raw = [0u8; 8];
            getrandom::fill(&mut raw)?;
            u64::from_le_bytes(raw)
        }
    };
    Ok(Args {
        mesa,
        out,
        duration,
        fault_every,
        seed,
        command,
    })
}

/// xorshift64*: a small reproducible generator for the fault order and the targets hit.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0.max(1);
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            v.swap(i, self.below(i + 1));
        }
    }
}

// ---- the run -------------------------------------------------------------------------------

fn main() -> std::process::ExitCode {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build();
    let result = match runtime {
        Ok(rt) => rt.block_on(run()),
        Err(e) => Err(e.into()),
    };
    match result {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(e) => {
            eprintln!("soak: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn setup(cluster: &PgCluster) -> Result<(), Error> {
    cluster.psql("postgres", "CREATE DATABASE soak")?;
    let mut sql = format!(
        "CREATE EXTENSION pg_stat_statements;
         CREATE ROLE soak_filler LOGIN PASSWORD '{PASSWORD}';"
    );
    for i in 0..TARGETS {
        write!(
            sql,
            "CREATE ROLE {} LOGIN PASSWORD '{PASSWORD}' IN ROLE pg_monitor;",
            role(i)
        )?;
    }
    cluster.psql("soak", &sql)?;
    // 150 distinct statements before Mesa starts: stat_statements exports its 100 from the
    // first collection, so the exposition is at full size during warm-up rather than growing
    // for the first minutes as Mesa's own statements accumulate.
    let prefill: String = (0..150).map(|i| format!("SELECT 1 AS soak_{i};")).collect();
    cluster.psql("soak", &prefill)?;
    Ok(())
}

async fn run() -> Result<bool, Error> {
    let args = parse_args()?;
    std::fs::create_dir_all(&args.out)?;
    let work = std::env::temp_dir().join(format!("mesa-soak-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    eprintln!(
        "soak: {} with a fault every {}, seed {}",
        humantime::format_duration(args.duration),
        humantime::format_duration(args.fault_every),
        args.seed
    );
    let cluster = Arc::new(PgCluster::start(ClusterOptions {
        extra_conf: vec![
            "shared_preload_libraries = 'pg_stat_statements'".to_owned(),
            "max_connections = 150".to_owned(),
        ],
        ..ClusterOptions::default()
    })?);
    setup(&cluster).await?;
    let upstream = SocketAddr::from(([127, 0, 0, 1], cluster.port()));
    let mut proxies = Vec::new();
    for _ in 0..TARGETS {
        proxies.push(FaultProxy::start(upstream).await);
    }
    let mut mesa = start_mesa(&args, &work, &proxies)?;
    let pid = mesa.child.id();
    let lab = Arc::new(Lab {
        cluster: Arc::clone(&cluster),
        proxies,
    });
    if all_up(mesa.metrics, Duration::from_secs(30))
        .await
        .is_none()
    {
        return Err(format!(
            "not every target came up within 30 s; Mesa's log: {}",
            work.join("mesa.log").display()
        )
        .into());
    }
    eprintln!("soak: all {TARGETS} targets up; faults start");

    let traffic = Arc::new(Mutex::new(Traffic::default()));
    let started = Instant::now();
    let end = started + args.duration;
    let mut background = Vec::new();
    for gzip in [false, true] {
        let (traffic, addr) = (Arc::clone(&traffic), mesa.metrics);
        background.push(tokio::spawn(async move {
            // Prometheus' Accept (OpenMetrics), with and without gzip.
            let headers = if gzip {
                "Accept: application/openmetrics-text;version=1.0.0\r\nAccept-Encoding: gzip\r\n"
            } else {
                "Accept: application/openmetrics-text;version=1.0.0\r\n"
            };
            loop {
                let t0 = Instant::now();
                let result = get(addr, "/metrics", headers, false).await;
                let ms = t0.elapsed().as_secs_f64() * 1000.0;
                if let Ok(mut t) = traffic.lock() {
                    match result {
                        Ok((200, _)) => {
                            t.second.push(ms);
                            t.all.push(ms);
                        }
                        Ok((s, _)) => t.scrape_failures.push(format!("status {s}")),
                        Err(e) => t.scrape_failures.push(e.to_string()),
                    }
                }
                tokio::time::sleep(SCRAPE_PAUSE).await;
            }
        }));
    }
    {
        let (traffic, addr) = (Arc::clone(&traffic), mesa.admin);
        let auth = format!("Authorization: Bearer {}\r\n", mesa.bearer);
        let mut rng = Rng(args.seed ^ 0x5eed);
        background.push(tokio::spawn(async move {
            loop {
                let t = rng.below(TARGETS);
                let path = match rng.below(5) {
                    0 => "/api/v1/targets".to_owned(),
                    1 => format!("/api/v1/targets/t{t:02}/health"),
                    2 => format!("/api/v1/targets/t{t:02}/sessions?limit=5"),
                    3 => format!("/api/v1/targets/t{t:02}/databases"),
                    _ => format!("/api/v1/targets/t{t:02}/databases/soak/tables"),
                };
                let result = get(addr, &path, &auth, false).await;
                if let Ok(mut tr) = traffic.lock() {
                    match result {
                        Ok((s, _)) => {
                            *tr.admin.entry(s).or_default() += 1;
                            if !matches!(s, 200 | 503 | 504) {
                                tr.admin_failures.push(format!("{path}: {s}"));
                            }
                        }
                        Err(e) => tr.admin_failures.push(format!("{path}: {e}")),
                    }
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }));
    }

    // The sampler: one row a second, the current fault named by the driver.
    let current: Arc<Mutex<&'static str>> = Arc::new(Mutex::new(""));
    let samples: Arc<Mutex<Vec<Sample>>> = Arc::new(Mutex::new(Vec::new()));
    let sampler = {
        let (lab, traffic, current, samples) = (
            Arc::clone(&lab),
            Arc::clone(&traffic),
            Arc::clone(&current),
            Arc::clone(&samples),
        );
        let addr = mesa.metrics;
        tokio::spawn(async move {
            let mut su = lab.superuser("postgres").await;
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tick.tick().await;
                let mut s = Sample {
                    t: started.elapsed().as_secs_f64(),
                    rss_mib: rss_mib(pid),
                    fds: count_fds(pid),
                    threads: threads(pid),
                    fault: current.lock().map(|c| *c).unwrap_or(""),
                    ..Sample::default()
                };
                if let Ok((200, text)) = get(addr, "/metrics", "", true).await {
                    s.tasks = sum_of(&text, "mesa_runtime_alive_tasks");
                    s.up = sum_of(&text, "pg_up");
                    s.series = text
                        .lines()
                        .filter(|l| !l.is_empty() && !l.starts_with('#'))
                        .count() as f64;
                    s.exposition_mib = text.len() as f64 / (1024.0 * 1024.0);
                }
                if su.as_ref().is_none_or(|c| c.is_closed()) {
                    su = lab.superuser("postgres").await;
                }
                match &su {
                    Some(c) => match sessions(c).await {
                        Some((all, most, oldest)) => {
                            s.sessions = all;
                            s.max_per_target = most;
                            s.oldest_statement = oldest;
                        }
                        None => s.sessions = f64::NAN,
                    },
                    None => s.sessions = f64::NAN,
                }
                if let Ok(mut t) = traffic.lock() {
                    s.scrape_max_ms = t.second.drain(..).fold(0.0, f64::max);
                }
                if let Ok(mut v) = samples.lock() {
                    v.push(s);
                }
            }
        })
    };

    // The fault driver.
    let mut rng = Rng(args.seed);
    let mut order: Vec<Fault> = Vec::new();
    let mut events: Vec<Event> = Vec::new();
    let hold = args.fault_every / 2;
    let mut problems: Vec<String> = Vec::new();
    while Instant::now() + args.fault_every <= end {
        let period = Instant::now();
        if order.is_empty() {
            order = Fault::ALL.to_vec();
            rng.shuffle(&mut order);
        }
        let fault = order.pop().ok_or("empty fault list")?;
        let mut targets: Vec<usize> = (0..TARGETS).collect();
        rng.shuffle(&mut targets);
        let hit: Vec<usize> = if fault.per_target() {
            targets[..HIT].to_vec()
        } else {
            (0..TARGETS).collect()
        };
        let injected = started.elapsed().as_secs_f64();
        if let Ok(mut c) = current.lock() {
            *c = fault.name();
        }
        let held = lab.inject(fault, &hit).await?;
        let mut min_up = TARGETS as f64;
        while period.elapsed() < hold {
            tokio::time::sleep(Duration::from_millis(500)).await;
            if let Ok((200, text)) = get(mesa.metrics, "/metrics", "", true).await {
                min_up = min_up.min(sum_of(&text, "pg_up"));
            }
        }
        lab.clear(fault, &hit, held).await?;
        let cleared = started.elapsed().as_secs_f64();
        if let Ok(mut c) = current.lock() {
            *c = "";
        }
        let left = args.fault_every.saturating_sub(period.elapsed());
        let recovered = all_up(mesa.metrics, left).await;
        if recovered.is_none() {
            problems.push(format!(
                "{} at {injected:.0} s: not every target up again before the next fault",
                fault.name()
            ));
        }
        if !fault.takes_targets_down() && min_up < TARGETS as f64 {
            problems.push(format!(
                "{} at {injected:.0} s: took {} targets down (it fails one collector, not the health check)",
                fault.name(),
                TARGETS as f64 - min_up
            ));
        }
        // A collection may slip between two terminations (they come every 10 ms): terminated
        // backends must take some of the hit targets down, the other faults all of them.
        let must_be_up = if fault == Fault::BackendsTerminated {
            TARGETS as f64 - 1.0
        } else {
            (TARGETS - hit.len()) as f64
        };
        if fault.takes_targets_down() && min_up > must_be_up {
            problems.push(format!(
                "{} at {injected:.0} s: too few of the hit targets' pg_up turned 0 (fewest up: {min_up})",
                fault.name()
            ));
        }
        eprintln!(
            "soak: {:>6.0} s {:<20} on {:>2} targets, fewest up {:>2}, all up {} after the clear",
            injected,
            fault.name(),
            hit.len(),
            min_up,
            recovered.map_or("NOT".to_owned(), |r| format!("{r:.1} s")),
        );
        events.push(Event {
            fault,
            hit: hit.len(),
            injected,
            cleared,
            min_up,
            recovered,
        });
        tokio::time::sleep(args.fault_every.saturating_sub(period.elapsed())).await;
    }
    // The rest of the run without faults, then Mesa's exit.
    tokio::time::sleep_until(end.into()).await;
    sampler.abort();
    for b in &background {
        b.abort();
    }
    let exit = tokio::task::spawn_blocking(move || {
        let _ = signal("-TERM", pid);
        let status = mesa.child.wait();
        (mesa, status)
    })
    .await?;
    let (mesa_proc, status) = exit;
    drop(mesa_proc);
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => problems.push(format!("Mesa exited with {s} on SIGTERM")),
        Err(e) => problems.push(format!("Mesa's exit: {e}")),
    }
    let samples = samples.lock().map(|v| v.clone()).unwrap_or_default();
    let traffic = std::mem::take(&mut *traffic.lock().map_err(|_| "traffic lock poisoned")?);
    let report = Report::new(&args, samples, events, traffic, problems);
    report.write(&args)?;
    for p in &report.problems {
        eprintln!("soak: FAILED: {p}");
    }
    eprintln!("soak: wrote {}", args.out.join("RELIABILITY.md").display());
    Ok(report.problems.is_empty())
}
