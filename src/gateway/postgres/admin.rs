//! Row mapping for the Administrator operations: health, sessions, signals, create user.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use postgres_protocol::escape::{escape_identifier, escape_literal};
use tokio_postgres::Client;

use super::text::TextColumns;
use super::{redact, sql};
use crate::gateway::{BackendRef, HealthStatus, NewUser, ServerHealth, Session, SessionFilter};
use crate::secret::Secret;

/// `GetServerHealth`.
pub(super) async fn server_health(client: &Client) -> Result<ServerHealth, tokio_postgres::Error> {
    let row = client.query_one(sql::SERVER_HEALTH, &[]).await?;
    let version_num: i32 = row.try_get(1)?;
    let max_connections: i32 = row.try_get(2)?;
    let reserved: i32 = row.try_get(3)?;
    let sessions: i32 = row.try_get(4)?;
    Ok(ServerHealth {
        status: HealthStatus::Online,
        version: row.text(0)?,
        short_version: short_version(version_num),
        max_connections: non_negative(max_connections),
        superuser_reserved_connections: non_negative(reserved),
        client_sessions: non_negative(sessions),
        started_at: epoch(row.try_get(5)?),
        uptime: seconds(row.try_get(6)?),
    })
}

/// `major.minor.patch` from `server_version_num`, as postgres_exporter's `short_version`:
/// 150018 -> `15.18.0`, 90624 -> `9.6.24`.
pub(crate) fn short_version(num: i32) -> String {
    if num >= 100_000 {
        format!("{}.{}.0", num / 10_000, num % 10_000)
    } else {
        format!("{}.{}.{}", num / 10_000, num / 100 % 100, num % 100)
    }
}

fn non_negative(v: i32) -> u32 {
    u32::try_from(v).unwrap_or(0)
}

/// Seconds since the Unix epoch as a time; the server never sends times before 1970.
pub(super) fn epoch(secs: f64) -> SystemTime {
    UNIX_EPOCH + seconds(secs)
}

/// A non-negative, finite number of seconds as a duration.
pub(super) fn seconds(secs: f64) -> Duration {
    Duration::try_from_secs_f64(secs.max(0.0)).unwrap_or_default()
}

/// `ListSessions`.
pub(super) async fn sessions(
    client: &Client,
    filter: SessionFilter,
) -> Result<Vec<Session>, tokio_postgres::Error> {
    let limit = i64::from(filter.limit.get());
    let rows = client
        .query(sql::SESSIONS, &[&filter.include_idle, &limit])
        .await?;
    rows.iter()
        .map(|row| {
            let time = |i: usize| -> Result<Option<SystemTime>, tokio_postgres::Error> {
                Ok(row.try_get::<_, Option<f64>>(i)?.map(epoch))
            };
            Ok(Session {
                pid: row.try_get(0)?,
                user: row.opt_text(1)?,
                database: row.opt_text(2)?,
                application_name: row.text(3)?,
                client_addr: row.try_get(4)?,
                state: row.opt_text(5)?,
                query: redact::query_text(row.text(6)?),
                wait_event_type: row.opt_text(7)?,
                wait_event: row.opt_text(8)?,
                backend_start: row.try_get(9)?,
                xact_start: time(10)?,
                query_start: time(11)?,
                duration: row.try_get::<_, Option<f64>>(12)?.map(seconds),
            })
        })
        .collect()
}

/// What the signalling statement saw.
pub(super) struct SignalOutcome {
    /// NULL when the role may not see it (no `pg_read_all_stats`).
    pub backend_type: Option<String>,
    pub is_self: bool,
    /// True also when the backend's role could not be found.
    pub is_superuser: bool,
    pub role: Option<String>,
    /// False when the caller pinned a start time and the backend started at another.
    pub same_backend: bool,
    pub backend_start: Option<SystemTime>,
    pub signalled: Option<bool>,
}

/// Which signal to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Signal {
    Terminate,
    Cancel,
}

/// Runs [`sql::TERMINATE`] or [`sql::CANCEL`]; `None` when no backend has that pid.
pub(super) async fn signal(
    client: &Client,
    signal: Signal,
    backend: BackendRef,
) -> Result<Option<SignalOutcome>, tokio_postgres::Error> {
    let statement = match signal {
        Signal::Terminate => sql::TERMINATE,
        Signal::Cancel => sql::CANCEL,
    };
    let pid = backend.pid.get();
    let Some(row) = client
        .query_opt(statement, &[&pid, &backend.backend_start])
        .await?
    else {
        return Ok(None);
    };
    Ok(Some(SignalOutcome {
        backend_type: row.opt_text(0)?,
        is_self: row.try_get(1)?,
        is_superuser: row.try_get(2)?,
        role: row.opt_text(3)?,
        same_backend: row.try_get(4)?,
        backend_start: row.try_get(5)?,
        signalled: row.try_get(6)?,
    }))
}

/// The `CREATE ROLE` statement for `user` with the SCRAM verifier of `password`, its
/// connection limit and `VALID UNTIL` (a time the server computed). The name was validated to
/// `[a-z_][a-z0-9_]*` and is still quoted; the verifier contains only base64 and `$:` and the
/// time only digits and `-:.TZ`, and both are still escaped as literals. The plaintext never
/// leaves this function.
pub(super) fn create_role_statement(
    user: &NewUser,
    password: &Secret,
    valid_until: Option<SystemTime>,
) -> String {
    let verifier = postgres_protocol::password::scram_sha_256(password.expose().as_bytes());
    let mut sql = format!(
        "CREATE ROLE {} WITH {} {} NOCREATEROLE NOCREATEDB NOREPLICATION NOBYPASSRLS",
        escape_identifier(user.name.as_str()),
        if user.superuser {
            "SUPERUSER"
        } else {
            "NOSUPERUSER"
        },
        if user.login { "LOGIN" } else { "NOLOGIN" },
    );
    if let Some(limit) = user.connection_limit {
        sql.push_str(&format!(" CONNECTION LIMIT {limit}"));
    }
    if let Some(until) = valid_until {
        let at = humantime::format_rfc3339_micros(until).to_string();
        sql.push_str(&format!(" VALID UNTIL {}", escape_literal(&at)));
    }
    sql.push_str(&format!(" PASSWORD {}", escape_literal(&verifier)));
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_versions_match_postgres_exporter() {
        assert_eq!(short_version(150018), "15.18.0");
        assert_eq!(short_version(100001), "10.1.0");
        assert_eq!(short_version(90624), "9.6.24");
    }

    #[test]
    fn create_role_carries_a_verifier_not_the_password() {
        let user = NewUser::new("app_user", None, false, true).expect("valid");
        let password = Secret::new("correct horse battery staple");
        let sql = create_role_statement(&user, &password, None);
        assert!(
            sql.starts_with(
                "CREATE ROLE \"app_user\" WITH NOSUPERUSER LOGIN NOCREATEROLE NOCREATEDB NOREPLICATION NOBYPASSRLS PASSWORD 'SCRAM-SHA-256$4096:"
            ),
            "{sql}"
        );
        assert!(!sql.contains("correct horse"));
        let limited = user.with_connection_limit(3).expect("valid");
        let until = UNIX_EPOCH + Duration::from_secs(1_764_550_000);
        let sql = create_role_statement(&limited, &password, Some(until));
        assert!(
            sql.contains(" CONNECTION LIMIT 3 VALID UNTIL '2025-12-01T00:46:40.000000Z' PASSWORD 'SCRAM-SHA-256$4096:"),
            "{sql}"
        );
    }
}
