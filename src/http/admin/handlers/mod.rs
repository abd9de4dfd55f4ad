//! One function per admin route. Each takes [`Authorized`] (so it runs only for a caller
//! that was authenticated, authorised and rate-limited for its action), parses its own input
//! into the gateway's types, and only then talks to the gateway; mutations go through
//! [`mutate`] for the audit trail. Here: the target list, health, inspection and the shared
//! helpers; `sessions` (list, signal one, signal in bulk) and `users` (create, list, revoke,
//! rotate) in their own files.

use std::future::Future;
use std::time::SystemTime;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::audit::{AuditEvent, AuditOutcome, AuditRecord, AuditSubject};
use super::extract::Authorized;
use super::problem::Problem;
use super::{Action, AdminState};
use crate::gateway::{
    Administrator, Column, Database, Deadline, GatewayError, HealthStatus, Inspector, ObjectName,
    ServerHealth, Table, TableKind,
};

mod sessions;
mod users;

pub(super) use sessions::{bulk_terminate, cancel, sessions, terminate};
pub(super) use users::{create_user, delete_user, list_users, rotate_password};

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
    let same = subject.clone();
    mutate_reporting(state, auth, subject, success, move |deadline| async move {
        call(deadline).await.map(|body| (body, same))
    })
    .await
}

/// As [`mutate`], for a call that says in its outcome record what it did (a bulk signal
/// lists every pid with its outcome): the call returns the body and the outcome's subject.
async fn mutate_reporting<F, Fut>(
    state: &AdminState,
    auth: &Authorized,
    subject: AuditSubject,
    success: StatusCode,
    call: F,
) -> Result<Response, Problem>
where
    F: FnOnce(Deadline) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(Value, AuditSubject), GatewayError>> + Send + 'static,
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
            Ok((_, reported)) => AuditRecord {
                subject: reported.clone(),
                ..intent.outcome(AuditOutcome::Ok, success.as_u16())
            },
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
        result.map(|(body, _)| super::json(success, body))
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
