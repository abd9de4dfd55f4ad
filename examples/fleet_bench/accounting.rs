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

/// Titles of the server's own processes (`postgres: checkpointer` and the like): their CPU
/// is the server's, whoever watches it, so it is left out of the clients' figures.
const BACKGROUND: [&str; 9] = [
    "checkpointer",
    "background writer",
    "walwriter",
    "autovacuum launcher",
    "logical replication launcher",
    "archiver",
    "stats collector",
    "io worker",
    "walsummarizer",
];

/// The process title of `pid` (`postgres: bench_monitor bench_mesa 127.0.0.1(5432) idle`).
fn title_of(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

/// CPU seconds the server has spent on its clients so far: the postmaster (which forks every
/// backend), every child it has reaped (ended backends land in its cutime/cstime), and its
/// live children but for the background processes of [`BACKGROUND`].
///
/// Differences of two readings are the clients' cost over the window, with nothing
/// subtracted: an ended backend's whole life is counted once (a live one at the first reading
/// counts from that reading on because its reading is subtracted), and the background
/// processes' timers are not. Autovacuum is off on the bench's cluster, so no reaped worker is
/// counted either.
pub(crate) fn client_cpu(postmaster: u32) -> f64 {
    cpu_of(postmaster, true) + children_cpu(postmaster, false)
}

/// CPU seconds of the server's own processes so far (what [`client_cpu`] leaves out).
pub(crate) fn background_cpu(postmaster: u32) -> f64 {
    children_cpu(postmaster, true)
}

/// CPU seconds of the postmaster's live children: its background processes, or the others.
fn children_cpu(postmaster: u32, background: bool) -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| parent_of(pid) == Some(postmaster))
        .filter(|&pid| {
            let title = title_of(pid);
            // `postgres: checkpointer`, or `postgres: <cluster_name>: checkpointer`.
            let own = title
                .split(": ")
                .skip(1)
                .any(|part| BACKGROUND.iter().any(|b| part.trim().starts_with(b)));
            own == background
        })
        .map(|pid| cpu_of(pid, false))
        .sum()
}

/// Waits until the bench's own `psql` backends have ended and been reaped, so a reading taken
/// next does not see one of them land in the postmaster's cutime inside the window.
pub(crate) fn settle() {
    std::thread::sleep(std::time::Duration::from_millis(300));
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

/// One statement's share of the server's time, from `pg_stat_statements`.
#[derive(Debug, Clone)]
pub(crate) struct Spent {
    pub(crate) calls: f64,
    /// Execution and planning time, in ms.
    pub(crate) ms: f64,
    /// The normalized text's start, whitespace collapsed.
    pub(crate) text: String,
}

/// Forgets every statement's counters (before a profiled phase).
pub(crate) fn reset_statements(cluster: &PgCluster) -> Result<(), Error> {
    cluster.psql("postgres", "SELECT public.pg_stat_statements_reset()")?;
    Ok(())
}

/// The statements that took the most server time since the last reset, the bench's own left
/// out (they read pg_stat_statements, pg_stat_database or reset them).
pub(crate) fn statement_profile(cluster: &PgCluster, top: usize) -> Result<Vec<Spent>, Error> {
    let out = cluster.psql(
        "postgres",
        &format!(
            "SELECT calls, total_exec_time + total_plan_time,
                    left(regexp_replace(query, '\\s+', ' ', 'g'), 72)
               FROM pg_stat_statements
              WHERE query NOT LIKE '%pg_stat_statements%' AND query NOT LIKE '%sum(sessions)%'
              ORDER BY 2 DESC LIMIT {top}"
        ),
    )?;
    Ok(out
        .lines()
        .filter_map(|line| {
            let mut it = line.splitn(3, '|');
            Some(Spent {
                calls: it.next()?.trim().parse().ok()?,
                ms: it.next()?.trim().parse().ok()?,
                text: it.next()?.trim().replace('|', "\\|"),
            })
        })
        .collect())
}
