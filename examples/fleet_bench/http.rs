//! A minimal HTTP client for the processes under test, and what is read from an exposition
//! (series, histogram buckets, quantile bounds).

use super::*;

// ---- HTTP ----------------------------------------------------------------------------------

/// One HTTP/1.0 GET: status and body.
pub(crate) fn get(addr: SocketAddr, path: &str) -> Result<(u16, String), Error> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    // What Prometheus asks for (postgres_exporter serves the classic text whatever is asked).
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nAccept: {PROMETHEUS_ACCEPT}\r\n\r\n"
    )?;
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

pub(crate) fn wait_ready(addr: SocketAddr, path: &str, limit: Duration) -> Result<(), Error> {
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
pub(crate) fn series(text: &str) -> usize {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .count()
}

/// `le` → cumulative count of a histogram.
pub(crate) fn buckets(text: &str, name: &str) -> BTreeMap<String, f64> {
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
pub(crate) fn quantile_bound(
    before: &BTreeMap<String, f64>,
    after: &BTreeMap<String, f64>,
    q: f64,
) -> String {
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

/// The `Accept` header Prometheus 2.x scrapes with.
pub const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
