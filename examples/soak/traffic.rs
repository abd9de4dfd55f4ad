//! The soak's HTTP client, its scrapers' and admin reader's traffic, and the per-second
//! samples of Mesa and the server.

use super::*;

// ---- HTTP ----------------------------------------------------------------------------------

/// One HTTP/1.0 GET with extra header lines: status and body (the body only when `keep`).
pub(crate) async fn get(
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
pub(crate) struct Traffic {
    /// Scrape latencies of the current second, ms (drained by the sampler).
    pub(crate) second: Vec<f64>,
    /// Every scrape latency, ms.
    pub(crate) all: Vec<f64>,
    pub(crate) scrape_failures: Vec<String>,
    pub(crate) admin: BTreeMap<u16, u64>,
    pub(crate) admin_failures: Vec<String>,
}

/// One second of the run.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sample {
    pub(crate) t: f64,
    pub(crate) rss_mib: f64,
    pub(crate) fds: f64,
    pub(crate) threads: f64,
    pub(crate) tasks: f64,
    pub(crate) sessions: f64,
    pub(crate) max_per_target: f64,
    pub(crate) oldest_statement: f64,
    pub(crate) up: f64,
    /// Samples in the exposition, and its size.
    pub(crate) series: f64,
    pub(crate) exposition_mib: f64,
    pub(crate) scrape_max_ms: f64,
    pub(crate) fault: &'static str,
}

/// One injected fault.
#[derive(Debug, Clone)]
pub(crate) struct Event {
    pub(crate) fault: Fault,
    pub(crate) hit: usize,
    pub(crate) injected: f64,
    pub(crate) cleared: f64,
    /// The fewest targets up while it was held.
    pub(crate) min_up: f64,
    /// Seconds from the clear until every target was up again (`None`: not before the next).
    pub(crate) recovered: Option<f64>,
}

pub(crate) fn count_fds(pid: u32) -> f64 {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count() as f64)
        .unwrap_or(0.0)
}

pub(crate) fn threads(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Mesa's sessions on the server: all of them, the most of one target, the oldest running
/// statement in seconds.
pub(crate) async fn sessions(su: &tokio_postgres::Client) -> Option<(f64, f64, f64)> {
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

pub(crate) fn percentile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1]
}
