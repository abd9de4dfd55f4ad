//! Bulk signals: every client session matching a filter, each checked and pinned as the
//! single-session route checks it, with an outcome per pid.
//!
//! The match is one statement ([`sql::MATCH_SESSIONS`]). Over `max_count` matches, nothing is
//! signalled. A dry run returns the matches with what would happen. Otherwise each session is
//! signalled by the same statement the single route sends ([`sql::TERMINATE`] /
//! [`sql::CANCEL`]), pinned by the `backend_start` the match saw, so a pid reused meanwhile is
//! never hit and the superuser and self checks are made again at the moment of the signal.

use std::time::SystemTime;

use tokio_postgres::{Client, Error};

use super::admin::{self, Signal};
use super::roles::Untouchable;
use crate::gateway::{
    BackendRef, BulkOutcome, BulkSession, BulkSignal, GatewayError, Pid, SignalMode,
};

/// Runs `request`. Sessions of Mesa's own logins (`untouchable`) are never signalled: they
/// are its collections and admin calls.
pub(super) async fn signal_matching(
    client: &Client,
    request: &BulkSignal,
    untouchable: &Untouchable<'_>,
) -> Result<Result<Vec<BulkSession>, GatewayError>, Error> {
    let f = &request.filter;
    let secs = f.state_for_longer_than.map(|d| d.as_secs_f64());
    let rows = client
        .query(
            super::sql::MATCH_SESSIONS,
            &[&f.state, &secs, &f.usename, &f.application_name, &f.datname],
        )
        .await?;
    let matched = u32::try_from(rows.len()).unwrap_or(u32::MAX);
    if matched > request.max_count {
        return Ok(Err(GatewayError::TooMany {
            matched,
            max: request.max_count,
        }));
    }
    let mut sessions = Vec::with_capacity(rows.len());
    for row in rows {
        let usename: Option<String> = row.try_get(2)?;
        let superuser: bool = row.try_get(7)?;
        let is_self: bool = row.try_get(8)?;
        let skip = if is_self {
            Some("Mesa's own connection".to_owned())
        } else if usename.as_deref().is_some_and(|u| untouchable.is_own(u)) {
            Some("a session of one of Mesa's own logins".to_owned())
        } else if superuser {
            Some("a superuser's session; Mesa never signals one".to_owned())
        } else {
            None
        };
        sessions.push(BulkSession {
            pid: row.try_get(0)?,
            backend_start: row.try_get::<_, Option<SystemTime>>(1)?,
            usename,
            datname: row.try_get(3)?,
            application_name: row.try_get(4)?,
            state: row.try_get(5)?,
            state_seconds: row.try_get(6)?,
            outcome: match skip {
                Some(why) => BulkOutcome::Skipped(why),
                None => BulkOutcome::WouldSignal,
            },
        });
    }
    if request.dry_run {
        return Ok(Ok(sessions));
    }
    let signal = match request.mode {
        SignalMode::Terminate => Signal::Terminate,
        SignalMode::Cancel => Signal::Cancel,
    };
    for session in &mut sessions {
        if session.outcome != BulkOutcome::WouldSignal {
            continue;
        }
        let Ok(pid) = Pid::new(session.pid) else {
            session.outcome = BulkOutcome::Gone;
            continue;
        };
        let backend = BackendRef {
            pid,
            backend_start: session.backend_start,
        };
        // The checks again, at the signal: most specific first, as the single route says them.
        session.outcome = match admin::signal(client, signal, backend).await? {
            None => BulkOutcome::Gone,
            Some(seen) if seen.signalled == Some(true) => BulkOutcome::Signalled,
            Some(seen) if !seen.same_backend => BulkOutcome::Gone,
            Some(seen) if seen.is_self => BulkOutcome::Skipped("Mesa's own connection".to_owned()),
            Some(seen) if seen.backend_type.is_none() => BulkOutcome::Skipped(
                "the admin role cannot see what kind of process it is; grant it pg_read_all_stats"
                    .to_owned(),
            ),
            Some(seen) if seen.is_superuser => {
                BulkOutcome::Skipped("a superuser's session; Mesa never signals one".to_owned())
            }
            // Not signalled though every check passed: it exited in between.
            Some(_) => BulkOutcome::Gone,
        };
    }
    Ok(Ok(sessions))
}
