//! One function per admin route. Each takes [`Authorized`] (so it runs only for a caller
//! that was authenticated, authorised and rate-limited for its action), parses its own input
//! into the gateway's types, and only then talks to the gateway; mutations go through
//! [`mutate`] for the audit trail.

use std::future::Future;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::audit::{AuditEvent, AuditOutcome, AuditRecord, AuditSubject};
use super::extract::Authorized;
use super::problem::Problem;
use super::{Action, AdminState};
use crate::config::Scope;
use crate::gateway::{
    Administrator, BackendRef, Column, Database, Deadline, Gateway, GatewayError, HealthStatus,
    Inspector, ObjectName, Pid, ServerHealth, Session, SessionFilter, SessionLimit, Table,
    TableKind,
};

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

fn path<T>(p: Result<Path<T>, PathRejection>) -> Result<T, Problem> {
    p.map(|Path(v)| v)
        .map_err(|e| Problem::malformed(format!("invalid path: {}", e.body_text())))
}

pub(super) async fn openapi(State(state): State<AdminState>) -> Response {
    let doc = super::openapi::document();
    state.finish(Action::OpenApi, Ok(super::json(StatusCode::OK, doc)))
}

pub(super) async fn no_route(State(state): State<AdminState>) -> Response {
    state.finish_unknown(Problem::not_found(
        "no such route; see /api/v1/openapi.json",
    ))
}

pub(super) async fn method_not_allowed(State(state): State<AdminState>) -> Response {
    state.finish_unknown(Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "this route does not accept that method; see /api/v1/openapi.json",
    ))
}

pub(super) async fn list_targets(State(state): State<AdminState>, auth: Authorized) -> Response {
    let targets: Vec<Value> = state
        .registry
        .all()
        .iter()
        .filter(|t| auth.caller.may_access(&t.config.name))
        .map(|t| {
            let c = &t.config;
            let snapshot = state.store.get(&c.name);
            let (status, reason) = match snapshot.as_deref().map(|s| &s.result) {
                None => ("pending", None),
                Some(Ok(_)) => ("up", None),
                Some(Err(r)) => ("down", Some(r.as_str())),
            };
            json!({
                "name": c.name,
                "driver": c.spec.driver.driver().as_str(),
                "endpoint": format!("{}:{}", c.spec.common.host, c.spec.common.port),
                "status": status,
                "reason": reason,
                "last_collection": snapshot.as_ref().map(|s| rfc3339(s.finished_at)),
                "last_success": snapshot.as_ref().and_then(|s| s.last_success).map(rfc3339),
                "duration_seconds": snapshot.as_ref().map(|s| s.duration.as_secs_f64()),
            })
        })
        .collect();
    state.finish(
        auth.action,
        Ok(super::json(StatusCode::OK, json!({ "targets": targets }))),
    )
}

fn health_json(h: &ServerHealth) -> Value {
    json!({
        "status": match h.status { HealthStatus::Online => "ONLINE", HealthStatus::Offline => "OFFLINE" },
        "version": h.version,
        "short_version": h.short_version,
        "max_connections": h.max_connections,
        "superuser_reserved_connections": h.superuser_reserved_connections,
        "client_sessions": h.client_sessions,
        "started_at": rfc3339(h.started_at),
        "uptime_seconds": h.uptime.as_secs_f64(),
    })
}

pub(super) async fn health(State(state): State<AdminState>, auth: Authorized) -> Response {
    let result = async {
        let deadline = state.read_deadline(&auth)?;
        Ok(match auth.gateway()?.server_health(deadline).await {
            Ok(h) => super::json(StatusCode::OK, health_json(&h)),
            // Health answers the question "is it up?": a failure is an answer, not an error.
            Err(e) => {
                tracing::info!(target_name = %auth.target()?.config.name, error = %e, "health check failed");
                super::json(
                    StatusCode::OK,
                    json!({ "status": "OFFLINE", "reason": e.reason().as_str() }),
                )
            }
        })
    }
    .await;
    state.finish(auth.action, result)
}

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

pub(super) async fn sessions(
    State(state): State<AdminState>,
    auth: Authorized,
    RawQuery(query): RawQuery,
) -> Response {
    let result = async {
        let filter = session_filter(query.as_deref())?;
        let deadline = state.read_deadline(&auth)?;
        let sessions = auth.gateway()?.sessions(filter, deadline).await?;
        let list: Vec<Value> = sessions.iter().map(session_json).collect();
        Ok(super::json(StatusCode::OK, json!({ "sessions": list })))
    }
    .await;
    state.finish(auth.action, result)
}

fn database_json(d: &Database) -> Value {
    json!({ "name": d.name, "owner": d.owner, "encoding": d.encoding, "size_bytes": d.size_bytes })
}

fn table_json(t: &Table) -> Value {
    let kind = match t.kind {
        TableKind::Table => "table",
        TableKind::PartitionedTable => "partitioned_table",
        TableKind::View => "view",
        TableKind::MaterializedView => "materialized_view",
        TableKind::Foreign => "foreign",
        TableKind::Temporary => "temporary",
    };
    json!({ "schema": t.schema, "name": t.name, "kind": kind })
}

fn column_json(c: &Column) -> Value {
    json!({
        "name": c.name,
        "data_type": c.data_type,
        "nullable": c.nullable,
        "default": c.default,
        "position": c.position,
    })
}

pub(super) async fn databases(State(state): State<AdminState>, auth: Authorized) -> Response {
    let result = async {
        let deadline = state.read_deadline(&auth)?;
        let list = auth.gateway()?.databases(deadline).await?;
        let list: Vec<Value> = list.iter().map(database_json).collect();
        Ok(super::json(StatusCode::OK, json!({ "databases": list })))
    }
    .await;
    state.finish(auth.action, result)
}

pub(super) async fn tables(
    State(state): State<AdminState>,
    auth: Authorized,
    params: Result<Path<(String, String)>, PathRejection>,
) -> Response {
    let result = async {
        let (_, database) = path(params)?;
        let database = ObjectName::parse("database", &database)?;
        let deadline = state.read_deadline(&auth)?;
        let list = auth.gateway()?.tables(&database, deadline).await?;
        let list: Vec<Value> = list.iter().map(table_json).collect();
        Ok(super::json(StatusCode::OK, json!({ "tables": list })))
    }
    .await;
    state.finish(auth.action, result)
}

pub(super) async fn columns(
    State(state): State<AdminState>,
    auth: Authorized,
    params: Result<Path<(String, String, String, String)>, PathRejection>,
) -> Response {
    let result = async {
        let (_, database, schema, table) = path(params)?;
        let database = ObjectName::parse("database", &database)?;
        let schema = ObjectName::parse("schema", &schema)?;
        let table = ObjectName::parse("table", &table)?;
        let deadline = state.read_deadline(&auth)?;
        let list = auth
            .gateway()?
            .columns(&database, &schema, &table, deadline)
            .await?;
        let list: Vec<Value> = list.iter().map(column_json).collect();
        Ok(super::json(StatusCode::OK, json!({ "columns": list })))
    }
    .await;
    state.finish(auth.action, result)
}

/// Runs an audited mutation on the task tracker: intent record, the call, outcome record.
/// The spawned task owns everything, so the mutation and its outcome record complete even if
/// the client disconnects; shutdown waits for the tracker. A mutation whose intent record was
/// written only after the request's deadline is not started (outcome `abandoned`, 504).
async fn mutate<F, Fut>(
    state: &AdminState,
    auth: &Authorized,
    subject: AuditSubject,
    success: StatusCode,
    call: F,
) -> Result<Response, Problem>
where
    F: FnOnce(Deadline) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Value, GatewayError>> + Send + 'static,
{
    let Some(audit) = state.audit.clone() else {
        return Err(Problem::audit_unavailable());
    };
    let deadline = auth.deadline()?;
    let intent = AuditRecord {
        event: AuditEvent::Intent,
        request_id: super::audit::request_id(),
        token: auth.caller.token.clone(),
        client: auth.client.to_string(),
        target: auth.target()?.config.name.clone(),
        action: auth.action.as_str(),
        subject,
        outcome: None,
        status: None,
        reason: None,
        sqlstate: None,
    };
    let task = state.tracker.spawn(async move {
        if let Err(e) = super::audit::append(&audit, intent.clone()).await {
            tracing::error!(error = %e, "cannot write the audit intent record; mutation refused");
            return Err(Problem::audit_unavailable());
        }
        if Instant::now() >= deadline.at() {
            let problem = Problem::new(
                StatusCode::GATEWAY_TIMEOUT,
                "timeout",
                "the audit record was written only after the request's deadline; the action was not started",
            );
            let outcome = intent.outcome(AuditOutcome::Abandoned, problem.status.as_u16());
            if let Err(e) = super::audit::append(&audit, outcome).await {
                tracing::error!(error = %e, "cannot write the audit outcome record");
            }
            return Err(problem);
        }
        let result = call(deadline).await.map_err(Problem::from);
        let outcome = match &result {
            Ok(_) => intent.outcome(AuditOutcome::Ok, success.as_u16()),
            Err(problem) => AuditRecord {
                reason: problem.reason.map(|r| r.as_str()),
                sqlstate: problem.sqlstate.clone(),
                ..intent.outcome(AuditOutcome::Error, problem.status.as_u16())
            },
        };
        if let Err(e) = super::audit::append(&audit, outcome).await {
            // The action happened; it cannot be undone. Say so loudly.
            tracing::error!(error = %e, "cannot write the audit outcome record");
        }
        result.map(|body| super::json(success, body))
    });
    task.await.map_err(|e| {
        tracing::error!(error = %e, "admin mutation task failed");
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the mutation task failed",
        )
    })?
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
        let pinned = super::body::signal(&read_body(body)?)?;
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

pub(super) async fn terminate(
    State(state): State<AdminState>,
    auth: Authorized,
    params: Result<Path<(String, String)>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    signal(state, auth, params, body, Signal::Terminate).await
}

pub(super) async fn cancel(
    State(state): State<AdminState>,
    auth: Authorized,
    params: Result<Path<(String, String)>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    signal(state, auth, params, body, Signal::Cancel).await
}

/// The request body's bytes: 413 when over the limit, 400 when unreadable.
fn read_body(body: Result<Bytes, BytesRejection>) -> Result<Bytes, Problem> {
    body.map_err(|e| {
        let status = e.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            Problem::new(
                status,
                "body-too-large",
                format!("the body exceeds {} bytes", super::MAX_BODY_BYTES),
            )
        } else {
            Problem::new(status, "malformed-request", "the body could not be read")
        }
    })
}

pub(super) async fn create_user(
    State(state): State<AdminState>,
    auth: Authorized,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = async {
        let request = super::body::create_user(&read_body(body)?)?;
        if request.superuser() && !auth.caller.has(Scope::CreateSuperuser) {
            return Err(Problem::forbidden(
                "creating a superuser needs the create_superuser scope",
            ));
        }
        let user = request.validate()?;
        let gateway = auth.gateway()?;
        let subject = AuditSubject::Role {
            role: user.name.as_str().to_owned(),
            superuser: user.superuser,
            login: user.login,
            password: if user.password.is_some() {
                "chosen"
            } else {
                "generated"
            },
        };
        mutate(
            &state,
            &auth,
            subject,
            StatusCode::CREATED,
            move |deadline| async move {
                let created = gateway.create_user(user.clone(), deadline).await?;
                let mut body = json!({
                    "name": created.name.as_str(),
                    "superuser": user.superuser,
                    "login": user.login,
                });
                if let Some(password) = created.generated_password {
                    // Returned once, to this caller only; never logged or audited.
                    body["password"] = json!(password.expose());
                }
                Ok(body)
            },
        )
        .await
    }
    .await;
    state.finish(auth.action, result)
}
