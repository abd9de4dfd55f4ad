//! Health, the processlist, and `KILL` with its refusals.
//!
//! A client session is a processlist row that is not a server thread (replication, event
//! scheduler, background threads) and not one of Mesa's own logins. `KILL QUERY` (cancel)
//! and `KILL CONNECTION` (terminate) are sent only after the same admin session has read the
//! row again and checked that it is such a session, of an account that has neither `SUPER`
//! nor `CONNECTION ADMIN`, directly or through roles. A connection id is a counter the server
//! never reuses while it runs, so the id pins the session the caller listed.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use mysql_async::{Params, Row};

use super::connect::{Flavor, Session, col};
use super::redact::query_text;
use crate::gateway::{
    BackendRef, BulkOutcome, BulkSession, BulkSignal, Deadline, GatewayError, HealthStatus,
    ServerHealth, Session as ClientSession, SessionFilter, SignalMode,
};

/// Processlist users that are the server's own threads.
const SYSTEM_USERS: [&str; 4] = ["system user", "event_scheduler", "unauthenticated user", ""];
/// Processlist commands of server threads (replication, background work).
const SYSTEM_COMMANDS: [&str; 8] = [
    "Daemon",
    "Binlog Dump",
    "Binlog Dump GTID",
    "Slave_IO",
    "Slave_SQL",
    "Slave_worker",
    "Register Slave",
    "Killed",
];

/// `ServerHealth`: version, `max_connections`, uptime and `Threads_connected` less Mesa's own
/// connection.
pub(super) async fn health(
    s: &mut Session,
    deadline: &Deadline,
) -> Result<ServerHealth, GatewayError> {
    let facts = s.facts(deadline).await?;
    Ok(ServerHealth {
        status: HealthStatus::Online,
        short_version: short_version(&facts.version),
        version: facts.version,
        max_connections: u32::try_from(facts.max_connections).unwrap_or(u32::MAX),
        // MySQL and MariaDB let one connection past max_connections for an account with
        // SUPER or CONNECTION ADMIN.
        superuser_reserved_connections: 1,
        client_sessions: u32::try_from(facts.threads_connected.saturating_sub(1))
            .unwrap_or(u32::MAX),
        started_at: SystemTime::now()
            .checked_sub(facts.uptime)
            .unwrap_or(SystemTime::UNIX_EPOCH),
        uptime: facts.uptime,
    })
}

/// `10.11.19` of `10.11.19-MariaDB-0+deb12u1-log`.
fn short_version(version: &str) -> String {
    version.split('-').next().unwrap_or(version).to_owned()
}

fn no_row(what: &str) -> GatewayError {
    GatewayError::Driver {
        detail: format!("{what} returned no row"),
        source: "no row".into(),
    }
}

/// One processlist row.
#[derive(Debug, Clone)]
struct Process {
    id: u64,
    user: String,
    host: String,
    db: Option<String>,
    command: String,
    time: Option<u64>,
    state: Option<String>,
    info: Option<String>,
}

const PROCESSLIST: &str = "SELECT ID, USER, HOST, DB, COMMAND, TIME, STATE, INFO \
     FROM information_schema.PROCESSLIST";

impl Process {
    fn from_row(row: &Row) -> Result<Self, GatewayError> {
        Ok(Self {
            id: col(row, 0)?,
            user: col::<Option<String>>(row, 1)?.unwrap_or_default(),
            host: col::<Option<String>>(row, 2)?.unwrap_or_default(),
            db: col(row, 3)?,
            command: col::<Option<String>>(row, 4)?.unwrap_or_default(),
            time: col(row, 5)?,
            state: col(row, 6)?,
            info: col(row, 7)?,
        })
    }

    fn is_system(&self) -> bool {
        SYSTEM_USERS.contains(&self.user.as_str())
            || SYSTEM_COMMANDS.contains(&self.command.as_str())
    }

    /// PostgreSQL's words for the two states every DBA filters on; the command otherwise.
    fn state(&self) -> String {
        match self.command.as_str() {
            "Sleep" => "idle".to_owned(),
            "Query" | "Execute" => "active".to_owned(),
            other => other.to_ascii_lowercase(),
        }
    }

    fn client_addr(&self) -> Option<IpAddr> {
        // `127.0.0.1:51234`, `[::1]:51234` (MySQL), `::1:51234`, or `localhost` (a socket).
        let host = self.host.trim_start_matches('[');
        let addr = host.rsplit_once(':').map_or(host, |(a, _)| a);
        addr.trim_end_matches(']').parse().ok()
    }

    fn to_session(&self) -> Option<ClientSession> {
        let pid = i32::try_from(self.id).ok()?;
        let seconds = self.time.map(Duration::from_secs);
        let active = self.command != "Sleep";
        Some(ClientSession {
            pid,
            user: Some(self.user.clone()),
            database: self.db.clone(),
            application_name: String::new(),
            client_addr: self.client_addr(),
            state: Some(self.state()),
            query: self.info.as_deref().map(query_text).unwrap_or_default(),
            wait_event_type: None,
            wait_event: self.state.clone().filter(|s| !s.is_empty()),
            backend_start: None,
            xact_start: None,
            query_start: seconds
                .filter(|_| active)
                .and_then(|d| SystemTime::now().checked_sub(d)),
            duration: seconds.filter(|_| active),
        })
    }
}

/// Client sessions, longest-running first; never a server thread or Mesa's own.
pub(super) async fn list(
    s: &mut Session,
    filter: SessionFilter,
    own: &[&str],
    deadline: &Deadline,
) -> Result<Vec<ClientSession>, GatewayError> {
    let sql = format!("{PROCESSLIST} WHERE ID <> CONNECTION_ID() ORDER BY TIME DESC, ID");
    let mut out = Vec::new();
    for row in s.rows(&sql, deadline).await? {
        let p = Process::from_row(&row)?;
        if p.is_system() || own.contains(&p.user.as_str()) {
            continue;
        }
        if !filter.include_idle && p.command == "Sleep" {
            continue;
        }
        if let Some(session) = p.to_session() {
            out.push(session);
        }
        if out.len() >= filter.limit.get() as usize {
            break;
        }
    }
    Ok(out)
}

/// Which `KILL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kill {
    /// `KILL QUERY`: the statement ends, the session stays.
    Query,
    /// `KILL CONNECTION`: the session ends.
    Connection,
}

/// Kills `backend` after the checks; `NotFound` when it is gone, `Refused` for a server
/// thread, one of Mesa's logins or a privileged account's session.
pub(super) async fn kill(
    s: &mut Session,
    backend: BackendRef,
    what: Kill,
    own: &[&str],
    deadline: &Deadline,
) -> Result<(), GatewayError> {
    let id = backend.pid.get();
    let gone = || GatewayError::NotFound {
        what: format!("session {id}"),
    };
    // MySQL has no start time of a session to compare; a caller who pins one cannot be
    // served what it asked for.
    if backend.backend_start.is_some() {
        return Err(GatewayError::InvalidInput {
            field: "backend_start",
            problem: "MySQL and MariaDB sessions have no start time; a connection id is never reused while the server runs, so send the id alone".to_owned(),
        });
    }
    let process = find(s, id, deadline).await?.ok_or_else(gone)?;
    let mut checked = Checked::default();
    if let Some(why) = refusal(s, &process, own, &mut checked, deadline).await? {
        return Err(GatewayError::Refused { reason: why });
    }
    signal(s, id, what, deadline).await
}

/// Why `p` may not be signalled, if it may not.
async fn refusal(
    s: &mut Session,
    p: &Process,
    own: &[&str],
    checked: &mut Checked,
    deadline: &Deadline,
) -> Result<Option<String>, GatewayError> {
    if s.id().is_some_and(|me| u64::from(me) == p.id) {
        return Ok(Some("Mesa's own connection".to_owned()));
    }
    if p.is_system() {
        return Ok(Some(format!(
            "a server thread ({}, {}); Mesa never signals one",
            if p.user.is_empty() {
                "no user"
            } else {
                &p.user
            },
            p.command
        )));
    }
    if own.contains(&p.user.as_str()) {
        return Ok(Some("a session of one of Mesa's own logins".to_owned()));
    }
    if checked.privileged(s, &p.user, deadline).await? {
        return Ok(Some(format!(
            "a session of {}, which has SUPER or CONNECTION ADMIN; Mesa never signals one",
            p.user
        )));
    }
    Ok(None)
}

async fn find(
    s: &mut Session,
    id: i32,
    deadline: &Deadline,
) -> Result<Option<Process>, GatewayError> {
    let rows = s
        .rows_with(
            &format!("{PROCESSLIST} WHERE ID = ?"),
            Params::Positional(vec![id.into()]),
            deadline,
        )
        .await?;
    rows.first().map(Process::from_row).transpose()
}

async fn signal(
    s: &mut Session,
    id: i32,
    what: Kill,
    deadline: &Deadline,
) -> Result<(), GatewayError> {
    let verb = match what {
        Kill::Query => "QUERY",
        Kill::Connection => "CONNECTION",
    };
    // `id` is a checked positive integer (the typed edge's `Pid`).
    match s.drop_result(&format!("KILL {verb} {id}"), deadline).await {
        Err(e) if e.sqlstate() == Some("1094") => Err(GatewayError::NotFound {
            what: format!("session {id}"),
        }),
        other => other,
    }
}

/// MariaDB's bits of SUPER (1 << 15) and CONNECTION ADMIN (1 << 32) in `global_priv`'s
/// `access`.
const MARIADB_KILL_BITS: u64 = (1 << 15) | (1 << 32);

/// The grant checks one call has made, by user.
#[derive(Default)]
struct Checked(std::collections::HashMap<String, bool>);

impl Checked {
    /// [`privileged`], once per user.
    async fn privileged(
        &mut self,
        s: &mut Session,
        user: &str,
        deadline: &Deadline,
    ) -> Result<bool, GatewayError> {
        if let Some(known) = self.0.get(user) {
            return Ok(*known);
        }
        let answer = privileged(s, user, deadline).await?;
        self.0.insert(user.to_owned(), answer);
        Ok(answer)
    }
}

/// Whether any account named `user`, or any role it reaches, holds SUPER or CONNECTION ADMIN.
/// Read from the grant tables, so the admin login needs SELECT on them; without it the check
/// fails closed (the server's permission error, nothing signalled).
async fn privileged(
    s: &mut Session,
    user: &str,
    deadline: &Deadline,
) -> Result<bool, GatewayError> {
    let sql = match s.flavor() {
        Flavor::Mariadb => format!(
            "WITH RECURSIVE reach(name) AS ( \
               SELECT CAST(? AS CHAR(128)) \
               UNION SELECT m.Role FROM mysql.roles_mapping m JOIN reach ON m.User = reach.name) \
             SELECT COUNT(*), SUM((CAST(JSON_VALUE(g.Priv, '$.access') AS UNSIGNED) & {MARIADB_KILL_BITS}) <> 0) \
             FROM mysql.global_priv g JOIN reach ON g.User = reach.name"
        ),
        Flavor::Mysql => "WITH RECURSIVE reach(name) AS ( \
               SELECT CAST(? AS CHAR(128)) \
               UNION SELECT e.TO_USER FROM mysql.role_edges e JOIN reach ON e.FROM_USER = reach.name) \
             SELECT (SELECT COUNT(*) FROM mysql.user u JOIN reach ON u.User = reach.name), \
               (SELECT COUNT(*) FROM mysql.user u JOIN reach ON u.User = reach.name WHERE u.Super_priv = 'Y') \
             + (SELECT COUNT(*) FROM mysql.global_grants g JOIN reach ON g.USER = reach.name \
                WHERE g.PRIV IN ('CONNECTION_ADMIN', 'SUPER'))"
            .to_owned(),
    };
    let rows = s
        .rows_with(&sql, Params::Positional(vec![user.into()]), deadline)
        .await
        .map_err(|e| match e.reason() {
            crate::gateway::FailureReason::PermissionDenied => GatewayError::PermissionDenied {
                action: format!(
                    "reading the grants of {user} before KILL (grant the admin login SELECT on mysql.global_priv and mysql.roles_mapping on MariaDB, mysql.user, mysql.global_grants and mysql.role_edges on MySQL)"
                ),
            },
            _ => e,
        })?;
    let row = rows.first().ok_or_else(|| no_row("the grant check"))?;
    let accounts: u64 = col(row, 0)?;
    let holding: Option<u64> = col(row, 1)?;
    if accounts == 0 {
        // No account of that name is visible: nothing proves it unprivileged.
        return Err(GatewayError::Refused {
            reason: format!(
                "no account named {user} is visible to the admin login, so its privileges cannot be checked"
            ),
        });
    }
    Ok(holding.unwrap_or(0) > 0)
}

/// Signals every client session matching `request` (at most `max_count`, else nothing), each
/// checked again at its `KILL`.
pub(super) async fn signal_matching(
    s: &mut Session,
    request: &BulkSignal,
    own: &[&str],
    deadline: &Deadline,
) -> Result<Vec<BulkSession>, GatewayError> {
    let f = &request.filter;
    if f.application_name.is_some() {
        return Err(GatewayError::InvalidInput {
            field: "application_name",
            problem: "MySQL and MariaDB sessions carry no application_name in the processlist"
                .to_owned(),
        });
    }
    let sql = format!("{PROCESSLIST} WHERE ID <> CONNECTION_ID() ORDER BY ID");
    let mut matched = Vec::new();
    for row in s.rows(&sql, deadline).await? {
        let p = Process::from_row(&row)?;
        let longer = f
            .state_for_longer_than
            .is_none_or(|d| p.time.is_some_and(|t| Duration::from_secs(t) > d));
        if p.is_system()
            || f.state.as_ref().is_some_and(|st| *st != p.state())
            || f.usename.as_ref().is_some_and(|u| *u != p.user)
            || f.datname.as_ref().is_some_and(|d| p.db.as_ref() != Some(d))
            || !longer
        {
            continue;
        }
        matched.push(p);
    }
    let count = u32::try_from(matched.len()).unwrap_or(u32::MAX);
    if count > request.max_count {
        return Err(GatewayError::TooMany {
            matched: count,
            max: request.max_count,
        });
    }
    let what = match request.mode {
        SignalMode::Terminate => Kill::Connection,
        SignalMode::Cancel => Kill::Query,
    };
    let mut out = Vec::with_capacity(matched.len());
    // One grant check per user for the whole call: a bulk call often matches many sessions
    // of one application's login.
    let mut checked = Checked::default();
    for p in matched {
        let outcome = match (
            i32::try_from(p.id),
            refusal(s, &p, own, &mut checked, deadline).await?,
        ) {
            (Err(_), _) => {
                BulkOutcome::Skipped("its connection id is beyond what Mesa addresses".to_owned())
            }
            (_, Some(why)) => BulkOutcome::Skipped(why),
            (Ok(_), None) if request.dry_run => BulkOutcome::WouldSignal,
            (Ok(id), None) => match signal(s, id, what, deadline).await {
                Ok(()) => BulkOutcome::Signalled,
                Err(GatewayError::NotFound { .. }) => BulkOutcome::Gone,
                Err(e) => return Err(e),
            },
        };
        out.push(BulkSession {
            pid: i32::try_from(p.id).unwrap_or(i32::MAX),
            backend_start: None,
            usename: Some(p.user.clone()),
            datname: p.db.clone(),
            application_name: String::new(),
            state: Some(p.state()),
            state_seconds: p.time.map(|t| t as f64),
            outcome,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::{Process, short_version};

    fn process(user: &str, command: &str, host: &str) -> Process {
        Process {
            id: 7,
            user: user.to_owned(),
            host: host.to_owned(),
            db: None,
            command: command.to_owned(),
            time: Some(3),
            state: None,
            info: None,
        }
    }

    #[test]
    fn server_threads_are_told_from_client_sessions() {
        assert!(process("system user", "Slave_SQL", "").is_system());
        assert!(process("event_scheduler", "Daemon", "localhost").is_system());
        assert!(process("repl", "Binlog Dump GTID", "10.0.0.2:4000").is_system());
        assert!(!process("app", "Query", "10.0.0.2:4000").is_system());
        assert!(!process("app", "Sleep", "localhost").is_system());
    }

    #[test]
    fn client_addresses_and_states_read_as_postgres_users_expect() {
        let p = process("app", "Sleep", "127.0.0.1:51234");
        assert_eq!(p.client_addr(), Some([127, 0, 0, 1].into()));
        assert_eq!(p.state(), "idle");
        assert_eq!(
            process("a", "Query", "[::1]:5").client_addr(),
            Some("::1".parse().expect("ip"))
        );
        assert_eq!(process("a", "Query", "localhost").client_addr(), None);
        assert_eq!(process("a", "Query", "x").state(), "active");
        assert_eq!(short_version("10.11.19-MariaDB-0+deb12u1-log"), "10.11.19");
        assert_eq!(short_version("8.0.36"), "8.0.36");
    }
}
