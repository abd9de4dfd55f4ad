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
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mesa::testing::{ClusterOptions, PgCluster};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

#[path = "../tests/it/faults/proxy.rs"]
mod proxy;
use proxy::{FaultProxy, Mode};

#[path = "common/measure.rs"]
mod measure;
use measure::{free_port, machine, rss_mib, sum_of};

#[path = "common/run_args.rs"]
mod run_args;
use run_args::RunArgs;

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

// ---- the faults ----------------------------------------------------------------------------

/// Every fault of the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Refused,
    BlackHole,
    Stall,
    Latency,
    Reset,
    ConnectionLimitZero,
    WrongPassword,
    MonitorRevoked,
    BackendsTerminated,
    TableLock,
    PostmasterStopped,
    Restart,
    MaxConnections,
}

impl Fault {
    const ALL: [Fault; 13] = [
        Fault::Refused,
        Fault::BlackHole,
        Fault::Stall,
        Fault::Latency,
        Fault::Reset,
        Fault::ConnectionLimitZero,
        Fault::WrongPassword,
        Fault::MonitorRevoked,
        Fault::BackendsTerminated,
        Fault::TableLock,
        Fault::PostmasterStopped,
        Fault::Restart,
        Fault::MaxConnections,
    ];

    fn name(self) -> &'static str {
        match self {
            Fault::Refused => "refused",
            Fault::BlackHole => "black_hole",
            Fault::Stall => "stall",
            Fault::Latency => "latency",
            Fault::Reset => "reset",
            Fault::ConnectionLimitZero => "connection_limit_0",
            Fault::WrongPassword => "wrong_password",
            Fault::MonitorRevoked => "pg_monitor_revoked",
            Fault::BackendsTerminated => "backends_terminated",
            Fault::TableLock => "table_lock",
            Fault::PostmasterStopped => "postmaster_sigstop",
            Fault::Restart => "restart",
            Fault::MaxConnections => "max_connections",
        }
    }

    /// Whether the fault hits some targets (else the whole server).
    fn per_target(self) -> bool {
        match self {
            Fault::Refused
            | Fault::BlackHole
            | Fault::Stall
            | Fault::Latency
            | Fault::Reset
            | Fault::ConnectionLimitZero
            | Fault::WrongPassword
            | Fault::MonitorRevoked
            | Fault::BackendsTerminated => true,
            Fault::TableLock
            | Fault::PostmasterStopped
            | Fault::Restart
            | Fault::MaxConnections => false,
        }
    }

    /// Whether the hit targets' `pg_up` should turn 0 (a table lock fails one collector, not
    /// the health check).
    fn takes_targets_down(self) -> bool {
        self != Fault::TableLock
    }
}

fn role(i: usize) -> String {
    format!("soak_t{i:02}")
}

/// What a held fault keeps until it is cleared.
enum Held {
    Nothing,
    Lock(tokio_postgres::Client),
    Fillers(tokio::task::JoinHandle<()>),
    Terminator(tokio::task::JoinHandle<()>),
}

/// The server, the proxies and a superuser session: what faults act on.
struct Lab {
    cluster: Arc<PgCluster>,
    proxies: Vec<FaultProxy>,
}

impl Lab {
    /// A session as `user`, or `None` while the server does not let it in.
    async fn session(
        &self,
        user: &str,
        password: &str,
        db: &str,
    ) -> Option<tokio_postgres::Client> {
        self.cluster
            .try_session(user, password, db, Duration::from_secs(3))
            .await
    }

    async fn superuser(&self, db: &str) -> Option<tokio_postgres::Client> {
        self.cluster.try_superuser(db, Duration::from_secs(3)).await
    }

    /// Runs `sql` as the superuser, retrying while the server restarts.
    async fn sql(&self, sql: &str) -> Result<(), Error> {
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(su) = self.superuser("postgres").await {
                match su.batch_execute(sql).await {
                    Ok(()) => return Ok(()),
                    Err(e) if Instant::now() > until => return Err(format!("{sql}: {e}").into()),
                    Err(_) => {}
                }
            } else if Instant::now() > until {
                return Err(format!("{sql}: the server does not answer").into());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn roles(hit: &[usize]) -> String {
        hit.iter().map(|&i| role(i)).collect::<Vec<_>>().join(", ")
    }

    /// `ALTER ROLE <role> <change>` for every hit target's role, in one session.
    async fn alter_roles(&self, hit: &[usize], change: &str) -> Result<(), Error> {
        let batch: String = hit
            .iter()
            .map(|&i| format!("ALTER ROLE {} {change};", role(i)))
            .collect();
        self.sql(&batch).await
    }

    async fn inject(self: &Arc<Self>, fault: Fault, hit: &[usize]) -> Result<Held, Error> {
        let mode = |m: Mode| {
            for &i in hit {
                self.proxies[i].set(m);
            }
        };
        Ok(match fault {
            Fault::Refused => {
                mode(Mode::Refuse);
                Held::Nothing
            }
            Fault::BlackHole => {
                mode(Mode::BlackHole);
                Held::Nothing
            }
            // The authentication request arrives, the rest never does.
            Fault::Stall => {
                mode(Mode::StallAfter(60));
                Held::Nothing
            }
            Fault::Latency => {
                mode(Mode::Latency(Duration::from_millis(400)));
                Held::Nothing
            }
            Fault::Reset => {
                mode(Mode::Reset);
                Held::Nothing
            }
            Fault::ConnectionLimitZero => {
                self.alter_roles(hit, "CONNECTION LIMIT 0").await?;
                Held::Nothing
            }
            Fault::WrongPassword => {
                self.alter_roles(hit, "PASSWORD 'not-the-one-in-the-file'")
                    .await?;
                Held::Nothing
            }
            Fault::MonitorRevoked => {
                self.sql(&format!("REVOKE pg_monitor FROM {}", Self::roles(hit)))
                    .await?;
                Held::Nothing
            }
            Fault::BackendsTerminated => {
                let Some(su) = self.superuser("postgres").await else {
                    return Err("no superuser session for the terminator".into());
                };
                let roles: Vec<String> = hit.iter().map(|&i| role(i)).collect();
                Held::Terminator(tokio::spawn(async move {
                    loop {
                        let _ = su
                            .execute(
                                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = ANY($1)",
                                &[&roles],
                            )
                            .await;
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }))
            }
            Fault::TableLock => {
                let Some(su) = self.superuser("soak").await else {
                    return Err("no superuser session for the lock".into());
                };
                // stat_statements' view: every target's collector waits, then lock_timeout.
                su.batch_execute(
                    "BEGIN; LOCK TABLE public.pg_stat_statements IN ACCESS EXCLUSIVE MODE",
                )
                .await?;
                Held::Lock(su)
            }
            Fault::PostmasterStopped => {
                signal("-STOP", self.cluster.postmaster_pid()?)?;
                Held::Nothing
            }
            Fault::Restart => {
                let cluster = Arc::clone(&self.cluster);
                tokio::task::spawn_blocking(move || cluster.stop()).await?;
                Held::Nothing
            }
            Fault::MaxConnections => {
                // Every free slot, and each one that frees up while the fault lasts (a
                // collection that ends gives its slot back): the task holds the sessions,
                // aborting it closes them.
                let lab = Arc::clone(self);
                Held::Fillers(tokio::spawn(async move {
                    let mut fillers = Vec::new();
                    loop {
                        match lab.session("soak_filler", PASSWORD, "soak").await {
                            Some(c) if fillers.len() < 400 => fillers.push(c),
                            _ => tokio::time::sleep(Duration::from_millis(20)).await,
                        }
                    }
                }))
            }
        })
    }

    async fn clear(&self, fault: Fault, hit: &[usize], held: Held) -> Result<(), Error> {
        match held {
            Held::Nothing => {}
            Held::Lock(su) => su.batch_execute("ROLLBACK").await?,
            Held::Fillers(t) => t.abort(),
            Held::Terminator(t) => t.abort(),
        }
        match fault {
            Fault::Refused | Fault::BlackHole | Fault::Stall | Fault::Latency | Fault::Reset => {
                for &i in hit {
                    self.proxies[i].set(Mode::Pass);
                }
            }
            Fault::ConnectionLimitZero => self.alter_roles(hit, "CONNECTION LIMIT -1").await?,
            Fault::WrongPassword => {
                self.alter_roles(hit, &format!("PASSWORD '{PASSWORD}'"))
                    .await?
            }
            Fault::MonitorRevoked => {
                self.sql(&format!("GRANT pg_monitor TO {}", Self::roles(hit)))
                    .await?;
            }
            Fault::PostmasterStopped => signal("-CONT", self.cluster.postmaster_pid()?)?,
            Fault::Restart => {
                let cluster = Arc::clone(&self.cluster);
                tokio::task::spawn_blocking(move || cluster.start_again()).await??;
            }
            Fault::BackendsTerminated | Fault::TableLock | Fault::MaxConnections => {}
        }
        Ok(())
    }
}

fn signal(sig: &str, pid: u32) -> Result<(), Error> {
    let status = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("kill {sig} {pid}: {status}").into())
    }
}

// ---- HTTP ----------------------------------------------------------------------------------

/// One HTTP/1.0 GET with extra header lines: status and body (the body only when `keep`).
async fn get(
    addr: SocketAddr,
    path: &str,
    headers: &str,
    keep: bool,
) -> Result<(u16, String), Error> {
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n{headers}\r\n").as_bytes())
            .await?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await?;
        let end = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or("no HTTP header end")?;
        let head = String::from_utf8_lossy(&raw[..end]);
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or("no HTTP status")?;
        let body = if keep {
            String::from_utf8_lossy(&raw[end + 4..]).into_owned()
        } else {
            String::new()
        };
        Ok::<_, Error>((status, body))
    };
    tokio::time::timeout(Duration::from_secs(40), exchange)
        .await
        .map_err(|_| "no answer within 40 s")?
}

// ---- traffic and samples -------------------------------------------------------------------

/// What the scrapers and the admin reader saw.
#[derive(Default)]
struct Traffic {
    /// Scrape latencies of the current second, ms (drained by the sampler).
    second: Vec<f64>,
    /// Every scrape latency, ms.
    all: Vec<f64>,
    scrape_failures: Vec<String>,
    admin: BTreeMap<u16, u64>,
    admin_failures: Vec<String>,
}

/// One second of the run.
#[derive(Debug, Clone, Default)]
struct Sample {
    t: f64,
    rss_mib: f64,
    fds: f64,
    threads: f64,
    tasks: f64,
    sessions: f64,
    max_per_target: f64,
    oldest_statement: f64,
    up: f64,
    /// Samples in the exposition, and its size.
    series: f64,
    exposition_mib: f64,
    scrape_max_ms: f64,
    fault: &'static str,
}

/// One injected fault.
#[derive(Debug, Clone)]
struct Event {
    fault: Fault,
    hit: usize,
    injected: f64,
    cleared: f64,
    /// The fewest targets up while it was held.
    min_up: f64,
    /// Seconds from the clear until every target was up again (`None`: not before the next).
    recovered: Option<f64>,
}

fn count_fds(pid: u32) -> f64 {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count() as f64)
        .unwrap_or(0.0)
}

fn threads(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Mesa's sessions on the server: all of them, the most of one target, the oldest running
/// statement in seconds.
async fn sessions(su: &tokio_postgres::Client) -> Option<(f64, f64, f64)> {
    let query = su.query_one(
        "SELECT coalesce(sum(n), 0)::float8, coalesce(max(n), 0)::float8, coalesce(max(age), 0)::float8
           FROM (SELECT usename, count(*) AS n,
                        max(extract(epoch FROM clock_timestamp() - query_start))
                          FILTER (WHERE state = 'active') AS age
                   FROM pg_stat_activity WHERE usename LIKE 'soak\\_t%' GROUP BY usename) s",
        &[],
    );
    let row = tokio::time::timeout(Duration::from_secs(1), query)
        .await
        .ok()?
        .ok()?;
    Some((row.get(0), row.get(1), row.get(2)))
}

fn percentile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1]
}

// ---- Mesa ----------------------------------------------------------------------------------

struct Mesa {
    child: Child,
    metrics: SocketAddr,
    admin: SocketAddr,
    bearer: String,
}

impl Drop for Mesa {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_mesa(args: &Args, dir: &Path, proxies: &[FaultProxy]) -> Result<Mesa, Error> {
    let (metrics, admin) = (free_port()?, free_port()?);
    let pw = dir.join("soak.pw");
    std::fs::write(&pw, PASSWORD)?;
    let token = mesa::token::generate()?;
    let mut yaml = format!(
        "collection:
  interval: {i}ms
  timeout: {t}ms
  connect_timeout: 500ms
  statement_timeout: {s}ms
  lock_timeout: 300ms
  collectors: {{{collectors}}}
web: {{listen_address: '127.0.0.1:{metrics}'}}
admin:
  listen_address: '127.0.0.1:{admin}'
  rate_limit: {{burst: 100, per_second: 100}}
  tokens:
    - {{name: soak, sha256: '{digest}', scopes: [read], targets: ['*']}}
targets:
",
        i = INTERVAL.as_millis(),
        t = TIMEOUT.as_millis(),
        s = STATEMENT_TIMEOUT.as_millis(),
        digest = token.sha256_hex,
        collectors = COLLECTORS
            .iter()
            .map(|(name, on)| format!("{name}: {on}"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    for (i, p) in proxies.iter().enumerate() {
        writeln!(
            yaml,
            "  - {{name: t{i:02}, driver: postgres, host: 127.0.0.1, port: {}, database: soak, username: {}, password_file: {}, sslmode: disable}}",
            p.port(),
            role(i),
            pw.display()
        )?;
    }
    let config = dir.join("mesa.yaml");
    std::fs::write(&config, yaml)?;
    let child = Command::new(&args.mesa)
        .arg("--config.file")
        .arg(&config)
        .args(["--log.level", "warn"])
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(dir.join("mesa.log"))?))
        .spawn()?;
    Ok(Mesa {
        child,
        metrics: SocketAddr::from(([127, 0, 0, 1], metrics)),
        admin: SocketAddr::from(([127, 0, 0, 1], admin)),
        bearer: token.token.expose().to_owned(),
    })
}

/// Waits until every target is up; the seconds it took, or `None` after `limit`.
async fn all_up(addr: SocketAddr, limit: Duration) -> Option<f64> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if let Ok((200, text)) = get(addr, "/metrics", "", true).await
            && sum_of(&text, "pg_up") == TARGETS as f64
        {
            return Some(started.elapsed().as_secs_f64());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    None
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
            let headers = if gzip {
                "Accept-Encoding: gzip\r\n"
            } else {
                ""
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

// ---- the report ----------------------------------------------------------------------------

struct Window {
    from: f64,
    to: f64,
    rows: Vec<Sample>,
}

impl Window {
    fn col(&self, f: impl Fn(&Sample) -> f64) -> Vec<f64> {
        self.rows.iter().map(f).filter(|v| v.is_finite()).collect()
    }

    fn min(&self, f: impl Fn(&Sample) -> f64) -> f64 {
        self.col(f).into_iter().fold(f64::INFINITY, f64::min)
    }

    fn max(&self, f: impl Fn(&Sample) -> f64) -> f64 {
        self.col(f).into_iter().fold(f64::NEG_INFINITY, f64::max)
    }

    fn median(&self, f: impl Fn(&Sample) -> f64) -> f64 {
        percentile(&self.col(f), 0.5)
    }
}

/// One figure of a window (a row of the verdict's table).
type WindowFigure = Box<dyn Fn(&Window) -> f64>;

struct Report {
    samples: Vec<Sample>,
    events: Vec<Event>,
    traffic: Traffic,
    problems: Vec<String>,
    windows: Vec<Window>,
    warm_up: f64,
    judged: bool,
}

impl Report {
    fn new(
        args: &Args,
        samples: Vec<Sample>,
        events: Vec<Event>,
        traffic: Traffic,
        mut problems: Vec<String>,
    ) -> Self {
        let total = args.duration.as_secs_f64();
        // Warm-up: the first 5 minutes, or a sixth of a shorter run; windows of 5 minutes
        // (a quarter of a shorter run's remainder).
        let warm_up = (total / 6.0).min(300.0);
        let width = ((total - warm_up) / 4.0).clamp(1.0, 300.0);
        let mut windows = Vec::new();
        let mut from = warm_up;
        while from + width / 2.0 < total {
            let to = (from + width).min(total);
            windows.push(Window {
                from,
                to,
                rows: samples
                    .iter()
                    .filter(|s| s.t >= from && s.t < to)
                    .cloned()
                    .collect(),
            });
            from = to;
        }
        let judged = args.duration >= JUDGED;
        for s in &samples {
            if s.max_per_target > 2.0 {
                problems.push(format!(
                    "{:.0} s: {} sessions of one target on the server",
                    s.t, s.max_per_target
                ));
            }
            if s.oldest_statement > (STATEMENT_TIMEOUT + Duration::from_secs(1)).as_secs_f64() {
                problems.push(format!(
                    "{:.0} s: a Mesa statement {:.1} s old on the server",
                    s.t, s.oldest_statement
                ));
            }
        }
        for f in traffic.scrape_failures.iter().take(5) {
            problems.push(format!("a scrape failed: {f}"));
        }
        for f in traffic.admin_failures.iter().take(5) {
            problems.push(format!("an admin read: {f}"));
        }
        if let (true, Some(first), Some(last)) = (judged, windows.first(), windows.last()) {
            let rss = last.median(|s| s.rss_mib) - first.median(|s| s.rss_mib);
            if rss > RSS_SLACK_MIB {
                problems.push(format!(
                    "resident memory grew {rss:.1} MiB after warm-up (median of the last window against the first)"
                ));
            }
            let fds = last.min(|s| s.fds) - first.min(|s| s.fds);
            if fds > 2.0 {
                problems.push(format!(
                    "the descriptors' floor grew by {fds} after warm-up"
                ));
            }
            let tasks = last.min(|s| s.tasks) - first.min(|s| s.tasks);
            if tasks > 2.0 {
                problems.push(format!(
                    "the live tasks' floor grew by {tasks} after warm-up"
                ));
            }
        }
        Self {
            samples,
            events,
            traffic,
            problems,
            windows,
            warm_up,
            judged,
        }
    }

    fn write(&self, args: &Args) -> Result<(), Error> {
        let mut csv = String::from(
            "t_s,rss_mib,fds,threads,tasks,sessions,max_sessions_per_target,oldest_statement_s,targets_up,series,exposition_mib,scrape_max_ms,fault\n",
        );
        for s in &self.samples {
            writeln!(
                csv,
                "{:.1},{:.2},{},{},{},{},{},{:.3},{},{},{:.3},{:.2},{}",
                s.t,
                s.rss_mib,
                s.fds,
                s.threads,
                s.tasks,
                s.sessions,
                s.max_per_target,
                s.oldest_statement,
                s.up,
                s.series,
                s.exposition_mib,
                s.scrape_max_ms,
                s.fault
            )?;
        }
        std::fs::write(args.out.join("soak.csv"), csv)?;
        let mut faults =
            String::from("fault,targets_hit,injected_s,cleared_s,min_up,recovered_s\n");
        for e in &self.events {
            writeln!(
                faults,
                "{},{},{:.1},{:.1},{},{}",
                e.fault.name(),
                e.hit,
                e.injected,
                e.cleared,
                e.min_up,
                e.recovered.map_or(String::new(), |r| format!("{r:.2}"))
            )?;
        }
        std::fs::write(args.out.join("soak-faults.csv"), faults)?;
        std::fs::write(args.out.join("RELIABILITY.md"), self.markdown(args)?)?;
        Ok(())
    }

    fn markdown(&self, args: &Args) -> Result<String, Error> {
        let mut md = String::new();
        let minutes = args.duration.as_secs_f64() / 60.0;
        writeln!(md, "# Reliability: the soak\n")?;
        writeln!(
            md,
            "Written by `{}` (`examples/soak.rs`); the plot by `scripts/plot_soak.py`. Do not edit by hand.\n",
            args.command
        )?;
        writeln!(md, "- Machine: {}", machine())?;
        writeln!(
            md,
            "- Run: {minutes:.0} minutes, {TARGETS} targets (one role and one TCP fault proxy each) on one PostgreSQL 15 cluster, collected every {} s (timeout {} ms, statement_timeout {} ms, lock_timeout 300 ms; collectors health, {}: the full set, 50 times a second, would cost this one server the work of 50); seed {}",
            INTERVAL.as_secs(),
            TIMEOUT.as_millis(),
            STATEMENT_TIMEOUT.as_millis(),
            COLLECTORS
                .iter()
                .filter(|(_, on)| *on)
                .map(|(name, _)| *name)
                .collect::<Vec<_>>()
                .join(", "),
            args.seed
        )?;
        writeln!(
            md,
            "- `pg_stat_statements` holds 150 statements before Mesa starts, so `stat_statements` exports its 100 per target (5 families each) from the first collection and `/metrics` is at full size from the start (its size is on the plot)"
        )?;
        writeln!(
            md,
            "- Load besides the collections: two scrapers reading `/metrics` back to back with a {} ms pause (one with gzip), an admin reader calling the read routes of random targets every 250 ms",
            SCRAPE_PAUSE.as_millis()
        )?;
        writeln!(
            md,
            "- Faults: one every {} s, held {} s, then cleared; per-target faults hit {HIT} random targets, the others the whole server. {} faults injected.",
            args.fault_every.as_secs(),
            (args.fault_every / 2).as_secs(),
            self.events.len()
        )?;
        writeln!(
            md,
            "- Warm-up: the first {:.0} s; the figures after it are judged{}.\n",
            self.warm_up,
            if self.judged {
                ""
            } else {
                " only for runs of 10 minutes or more (this one is shorter: shown, not judged)"
            }
        )?;
        writeln!(
            md,
            "![memory, descriptors, tasks and connections over time](soak.png)\n"
        )?;
        writeln!(md, "## Verdict\n")?;
        if self.problems.is_empty() {
            writeln!(md, "Passed: nothing that must never happen happened.\n")?;
        } else {
            for p in &self.problems {
                writeln!(md, "- FAILED: {p}")?;
            }
            writeln!(md)?;
        }
        if let (Some(first), Some(last)) = (self.windows.first(), self.windows.last()) {
            writeln!(
                md,
                "| after warm-up | first window | last window | change |"
            )?;
            writeln!(md, "|---|---:|---:|---:|")?;
            let rows: [(&str, WindowFigure); 4] = [
                (
                    "resident memory, median MiB",
                    Box::new(|w: &Window| w.median(|s| s.rss_mib)),
                ),
                (
                    "open descriptors, floor",
                    Box::new(|w: &Window| w.min(|s| s.fds)),
                ),
                (
                    "open descriptors, median",
                    Box::new(|w: &Window| w.median(|s| s.fds)),
                ),
                (
                    "live tasks, floor",
                    Box::new(|w: &Window| w.min(|s| s.tasks)),
                ),
            ];
            for (name, f) in rows {
                let (a, b) = (f(first), f(last));
                writeln!(md, "| {name} | {a:.1} | {b:.1} | {:+.1} |", b - a)?;
            }
            writeln!(md)?;
        }
        writeln!(md, "## Over time\n")?;
        writeln!(
            md,
            "| window (s) | memory MiB min / median / max | descriptors min / median / max | threads max | tasks min / max | Mesa sessions median / max | most of one target | oldest statement s | slowest scrape ms |"
        )?;
        writeln!(md, "|---|---|---|---:|---|---|---:|---:|---:|")?;
        for w in &self.windows {
            writeln!(
                md,
                "| {:.0}–{:.0} | {:.1} / {:.1} / {:.1} | {} / {} / {} | {} | {} / {} | {} / {} | {} | {:.2} | {:.1} |",
                w.from,
                w.to,
                w.min(|s| s.rss_mib),
                w.median(|s| s.rss_mib),
                w.max(|s| s.rss_mib),
                w.min(|s| s.fds),
                w.median(|s| s.fds),
                w.max(|s| s.fds),
                w.max(|s| s.threads),
                w.min(|s| s.tasks),
                w.max(|s| s.tasks),
                w.median(|s| s.sessions),
                w.max(|s| s.sessions),
                w.max(|s| s.max_per_target),
                w.max(|s| s.oldest_statement),
                w.max(|s| s.scrape_max_ms),
            )?;
        }
        writeln!(md)?;
        writeln!(md, "## Faults\n")?;
        writeln!(
            md,
            "| fault | times | targets hit | fewest targets up while held | slowest recovery after the clear (s) |"
        )?;
        writeln!(md, "|---|---:|---:|---:|---:|")?;
        for fault in Fault::ALL {
            let of: Vec<&Event> = self.events.iter().filter(|e| e.fault == fault).collect();
            if of.is_empty() {
                writeln!(md, "| {} | 0 | | | |", fault.name())?;
                continue;
            }
            let slowest = of
                .iter()
                .map(|e| e.recovered.unwrap_or(f64::INFINITY))
                .fold(0.0, f64::max);
            writeln!(
                md,
                "| {} | {} | {} | {} | {} |",
                fault.name(),
                of.len(),
                of[0].hit,
                of.iter().map(|e| e.min_up).fold(f64::INFINITY, f64::min),
                if slowest.is_finite() {
                    format!("{slowest:.1}")
                } else {
                    "not recovered".to_owned()
                }
            )?;
        }
        writeln!(md)?;
        let t = &self.traffic;
        writeln!(md, "## Scrapes and admin reads\n")?;
        writeln!(
            md,
            "- `/metrics`: {} scrapes, {} failed; p50 {:.1} ms, p99 {:.1} ms, slowest {:.1} ms",
            t.all.len() + t.scrape_failures.len(),
            t.scrape_failures.len(),
            percentile(&t.all, 0.5),
            percentile(&t.all, 0.99),
            t.all.iter().copied().fold(0.0, f64::max)
        )?;
        let answers: Vec<String> = t.admin.iter().map(|(s, n)| format!("{n} × {s}")).collect();
        writeln!(
            md,
            "- admin reads: {} ({}); {} outside 200, 503 and 504 or unanswered",
            t.admin.values().sum::<u64>(),
            answers.join(", "),
            t.admin_failures.len()
        )?;
        writeln!(
            md,
            "\nThe samples are in `soak.csv` (one row a second) and the faults in `soak-faults.csv`."
        )?;
        Ok(md)
    }
}
