//! CPU of processes and of the server's backends from `/proc`, and the server's own
//! statement and connection counters.

use super::*;

// ---- process and server accounting -------------------------------------------------------

/// utime + stime (+ the reaped children's, with `children`) of `pid`, in seconds.
pub(crate) fn cpu_of(pid: u32, children: bool) -> f64 {
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

pub(crate) fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// CPU seconds of the whole server so far: the postmaster, its live children, and every
/// child it has reaped (ended backends land in the postmaster's cutime/cstime).
pub(crate) fn server_cpu(postmaster: u32) -> f64 {
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
pub(crate) fn thread_cpu() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1e9
}

pub(crate) fn postmaster_pid(cluster: &PgCluster) -> Result<u32, Error> {
    let pidfile = std::fs::read_to_string(cluster.dir().join("data").join("postmaster.pid"))?;
    Ok(pidfile
        .lines()
        .next()
        .ok_or("empty postmaster.pid")?
        .trim()
        .parse()?)
}

// ---- the server's own counters ---------------------------------------------------------------

pub(crate) struct DbCounters {
    pub(crate) sessions: f64,
    pub(crate) statements: f64,
}

/// Sessions opened and statements run on the whole server so far (every database: Mesa
/// visits them all); this query is one statement of its own.
pub(crate) fn server_counters(cluster: &PgCluster) -> Result<DbCounters, Error> {
    let out = cluster.psql(
        "postgres",
        "SELECT (SELECT coalesce(sum(sessions), 0) FROM pg_stat_database),
                (SELECT coalesce(sum(calls), 0) FROM pg_stat_statements)",
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
