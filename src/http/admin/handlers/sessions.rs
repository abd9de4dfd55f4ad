//! The session routes: list, terminate and cancel one (pinned by `backend_start`), and
//! terminate or cancel every match of a filter, with an outcome per pid.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::{mutate, mutate_reporting, path, read_body, rfc3339};
use crate::gateway::{
    Administrator, BackendRef, BulkOutcome, BulkSession, Deadline, Gateway, GatewayError, Pid,
    Session, SessionFilter, SessionLimit, SignalMode,
};
use crate::http::admin::AdminState;
use crate::http::admin::audit::AuditSubject;
use crate::http::admin::extract::Authorized;
use crate::http::admin::problem::Problem;

/// `?limit=N&include_idle=BOOL`, strictly.
fn session_filter(query: Option<&str>) -> Result<SessionFilter, Problem> {
    let mut filter = SessionFilter::default();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "limit" => {
                filter.limit = value
                    .parse::<u32>()
                    .ok()
                    .and_then(|n| SessionLimit::new(n).ok())
                    .ok_or_else(|| {
                        Problem::invalid(format!(
                            "limit must be an integer from 1 to {}",
                            SessionLimit::MAX
                        ))
                    })?;
            }
            "include_idle" => {
                filter.include_idle = match value {
                    "true" => true,
                    "false" => false,
                    _ => return Err(Problem::invalid("include_idle must be true or false")),
                };
            }
            _ => {
                return Err(Problem::invalid(
                    "unknown query parameter; expected limit and include_idle",
                ));
            }
        }
    }
    Ok(filter)
}

fn since_epoch(t: Option<SystemTime>) -> Option<String> {
    t.filter(|t| *t > UNIX_EPOCH).map(rfc3339)
}

fn session_json(s: &Session) -> Value {
    json!({
        "pid": s.pid,
        "user": s.user,
        "database": s.database,
        "application_name": s.application_name,
        "client_addr": s.client_addr.map(|a| a.to_string()),
        "state": s.state,
        "query": s.query,
        "wait_event_type": s.wait_event_type,
        "wait_event": s.wait_event,
        "backend_start": s.backend_start.filter(|t| *t > UNIX_EPOCH).map(|t| humantime::format_rfc3339_micros(t).to_string()),
        "xact_start": since_epoch(s.xact_start),
        "query_start": since_epoch(s.query_start),
        "duration_seconds": s.duration.map(|d| d.as_secs_f64()),
    })
}

pub(in crate::http::admin) async fn sessions(
    State(state): State<AdminState>,
    auth: Authorized,
    RawQuery(query): RawQuery,
) -> Response {
    let result = async {
        let filter = session_filter(query.as_deref())?;
        let deadline = state.read_deadline(&auth)?;
        let sessions = auth.gateway()?.sessions(filter, deadline).await?;
        let list: Vec<Value> = sessions.iter().map(session_json).collect();
        Ok(crate::http::admin::json(
            StatusCode::OK,
            json!({ "sessions": list }),
        ))
    }
    .await;
    state.finish(auth.action, result)
}

/// The two signal routes.
#[derive(Debug, Clone, Copy)]
enum Signal {
    Terminate,
    Cancel,
}

impl Signal {
    /// Sends the signal; the word the response uses for it.
    async fn send(
        self,
        gateway: &Gateway,
        backend: BackendRef,
        deadline: Deadline,
    ) -> Result<&'static str, GatewayError> {
        match self {
            Self::Terminate => gateway
                .terminate(backend, deadline)
                .await
                .map(|()| "terminated"),
            Self::Cancel => gateway
                .cancel(backend, deadline)
                .await
                .map(|()| "cancelled"),
        }
    }
}

async fn signal(
    state: AdminState,
    auth: Authorized,
    params: Result<Path<(String, String)>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
    signal: Signal,
) -> Response {
    let result = async {
        let (_, pid) = path(params)?;
        let pid = Pid::parse(&pid)?;
        let pinned = crate::http::admin::body::signal(&read_body(body)?)?;
        let backend = BackendRef {
            pid,
            backend_start: pinned.as_ref().map(|(_, t)| *t),
        };
        let gateway = auth.gateway()?;
        let subject = AuditSubject::Backend {
            pid: pid.get(),
            backend_start: pinned.map(|(text, _)| text),
        };
        mutate(
            &state,
            &auth,
            subject,
            StatusCode::OK,
            move |deadline| async move {
                let done = signal.send(&gateway, backend, deadline).await?;
                Ok(json!({ "pid": pid.get(), "result": done }))
            },
        )
        .await
    }
    .await;
    state.finish(auth.action, result)
}

pub(in crate::http::admin) async fn terminate(
    State(state): State<AdminState>,
    auth: Authorized,
    params: Result<Path<(String, String)>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    signal(state, auth, params, body, Signal::Terminate).await
}

pub(in crate::http::admin) async fn cancel(
    State(state): State<AdminState>,
    auth: Authorized,
    params: Result<Path<(String, String)>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    signal(state, auth, params, body, Signal::Cancel).await
}

fn bulk_json(s: &BulkSession, mode: SignalMode) -> Value {
    let (outcome, reason) = match &s.outcome {
        BulkOutcome::WouldSignal => (
            match mode {
                SignalMode::Terminate => "would_terminate",
                SignalMode::Cancel => "would_cancel",
            },
            None,
        ),
        BulkOutcome::Signalled => (
            match mode {
                SignalMode::Terminate => "terminated",
                SignalMode::Cancel => "cancelled",
            },
            None,
        ),
        BulkOutcome::Skipped(why) => ("skipped", Some(why.as_str())),
        BulkOutcome::Gone => (
            "gone",
            Some("it ended, or its pid now belongs to another backend, before the signal"),
        ),
    };
    json!({
        "pid": s.pid,
        "backend_start": s.backend_start.filter(|t| *t > UNIX_EPOCH).map(|t| humantime::format_rfc3339_micros(t).to_string()),
        "usename": s.usename,
        "datname": s.datname,
        "application_name": s.application_name,
        "state": s.state,
        "state_seconds": s.state_seconds,
        "outcome": outcome,
        "reason": reason,
    })
}

pub(in crate::http::admin) async fn bulk_terminate(
    State(state): State<AdminState>,
    auth: Authorized,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = async {
        let (request, filter_as_given) = crate::http::admin::body::bulk(&read_body(body)?)?;
        let gateway = auth.gateway()?;
        let subject = AuditSubject::Bulk {
            filter: filter_as_given.clone(),
            mode: request.mode.as_str(),
            max_count: request.max_count,
            dry_run: request.dry_run,
            sessions: Vec::new(),
        };
        mutate_reporting(
            &state,
            &auth,
            subject,
            StatusCode::OK,
            move |deadline| async move {
                let sessions = gateway.signal_matching(&request, deadline).await?;
                let list: Vec<Value> = sessions
                    .iter()
                    .map(|s| bulk_json(s, request.mode))
                    .collect();
                let reported = AuditSubject::Bulk {
                    filter: filter_as_given,
                    mode: request.mode.as_str(),
                    max_count: request.max_count,
                    dry_run: request.dry_run,
                    sessions: list
                        .iter()
                        .map(|s| json!({"pid": s["pid"], "backend_start": s["backend_start"], "outcome": s["outcome"]}))
                        .collect(),
                };
                let body = json!({
                    "mode": request.mode.as_str(),
                    "dry_run": request.dry_run,
                    "matched": list.len(),
                    "sessions": list,
                });
                Ok((body, reported))
            },
        )
        .await
    }
    .await;
    state.finish(auth.action, result)
}
