//! One function per admin route. Each authorises first, validates its input, and only then
//! talks to the gateway; mutations go through [`mutate`] for the audit trail.

use std::future::Future;
use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Extension;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::problem::Problem;
use super::{Action, AdminState, Targeted};
use crate::config::Scope;
use crate::gateway::validate;
use crate::gateway::{
    Administrator, Column, Database, GatewayError, HealthStatus, Inspector, NewUser, ServerHealth,
    Session, SessionFilter, Table, TableKind,
};
use crate::http::ClientAddr;
use crate::secret::Secret;

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

fn path<T>(p: Result<Path<T>, PathRejection>) -> Result<T, Problem> {
    p.map(|Path(v)| v)
        .map_err(|e| Problem::malformed(format!("invalid path: {}", e.body_text())))
}

pub(super) async fn openapi(State(state): State<AdminState>) -> Response {
    let names: Vec<String> = state
        .registry
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .keys()
        .cloned()
        .collect();
    let doc = super::openapi::document(&names);
    state.finish(Action::OpenApi, Ok(super::json(StatusCode::OK, doc)))
}

pub(super) async fn no_route(State(state): State<AdminState>) -> Response {
    let problem = Problem::not_found("no such route; see /api/v1/openapi.json");
    state.metrics.admin_request("unknown", problem.outcome());
    problem.into_response()
}

pub(super) async fn method_not_allowed(State(state): State<AdminState>) -> Response {
    let problem = Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "this route does not accept that method; see /api/v1/openapi.json",
    );
    state.metrics.admin_request("unknown", problem.outcome());
    problem.into_response()
}

pub(super) async fn list_targets(State(state): State<AdminState>, headers: HeaderMap) -> Response {
    let result = (|| {
        let caller = state.authorize(&headers, Action::ListTargets)?;
        // The registry lock is held only while the list is built; nothing here waits.
        let registry = state.registry.read().unwrap_or_else(|p| p.into_inner());
        let targets: Vec<Value> = registry
            .values()
            .filter(|t| caller.may_access(&t.config.name))
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
                    "driver": c.driver.as_str(),
                    "endpoint": format!("{}:{}", c.host, c.port),
                    "status": status,
                    "reason": reason,
                    "last_collection": snapshot.as_ref().map(|s| rfc3339(s.finished_at)),
                    "last_success": snapshot.as_ref().and_then(|s| s.last_success).map(rfc3339),
                    "duration_seconds": snapshot.as_ref().map(|s| s.duration.as_secs_f64()),
                })
            })
            .collect();
        Ok(super::json(StatusCode::OK, json!({ "targets": targets })))
    })();
    state.finish(Action::ListTargets, result)
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

pub(super) async fn health(
    State(state): State<AdminState>,
    headers: HeaderMap,
    target: Result<Path<String>, PathRejection>,
) -> Response {
    let result = async {
        let target = path(target)?;
        let t = state.authorize_target(&headers, Action::Health, &target)?;
        Ok(
            match t.gateway()?.server_health(state.read_deadline(&t)).await {
                Ok(h) => super::json(StatusCode::OK, health_json(&h)),
                // Health answers the question "is it up?": a failure is an answer, not an error.
                Err(e) => {
                    tracing::info!(target_name = %target, error = %e, "health check failed");
                    super::json(
                        StatusCode::OK,
                        json!({ "status": "OFFLINE", "reason": e.reason().as_str() }),
                    )
                }
            },
        )
    }
    .await;
    state.finish(Action::Health, result)
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
                    .filter(|n| (1..=SessionFilter::MAX_LIMIT).contains(n))
                    .ok_or_else(|| {
                        Problem::invalid(format!(
                            "limit must be an integer from 1 to {}",
                            SessionFilter::MAX_LIMIT
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
        "backend_start": since_epoch(s.backend_start),
        "xact_start": since_epoch(s.xact_start),
        "query_start": since_epoch(s.query_start),
        "duration_seconds": s.duration.map(|d| d.as_secs_f64()),
    })
}

pub(super) async fn sessions(
    State(state): State<AdminState>,
    headers: HeaderMap,
    target: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Response {
    let result = async {
        let target = path(target)?;
        let t = state.authorize_target(&headers, Action::Sessions, &target)?;
        let filter = session_filter(query.as_deref())?;
        let sessions = t
            .gateway()?
            .sessions(filter, state.read_deadline(&t))
            .await?;
        let list: Vec<Value> = sessions.iter().map(session_json).collect();
        Ok(super::json(StatusCode::OK, json!({ "sessions": list })))
    }
    .await;
    state.finish(Action::Sessions, result)
}

fn database_json(d: &Database) -> Value {
    json!({ "name": d.name, "owner": d.owner, "encoding": d.encoding, "size_bytes": d.size_bytes })
}

fn table_json(t: &Table) -> Value {
    let kind = match t.kind {
        TableKind::Table => "table",
        TableKind::View => "view",
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

pub(super) async fn databases(
    State(state): State<AdminState>,
    headers: HeaderMap,
    target: Result<Path<String>, PathRejection>,
) -> Response {
    let result = async {
        let target = path(target)?;
        let t = state.authorize_target(&headers, Action::Databases, &target)?;
        let list = t.gateway()?.databases(state.read_deadline(&t)).await?;
        let list: Vec<Value> = list.iter().map(database_json).collect();
        Ok(super::json(StatusCode::OK, json!({ "databases": list })))
    }
    .await;
    state.finish(Action::Databases, result)
}

pub(super) async fn tables(
    State(state): State<AdminState>,
    headers: HeaderMap,
    params: Result<Path<(String, String)>, PathRejection>,
) -> Response {
    let result = async {
        let (target, database) = path(params)?;
        let t = state.authorize_target(&headers, Action::Tables, &target)?;
        validate::object_name("database", &database)?;
        let list = t
            .gateway()?
            .tables(&database, state.read_deadline(&t))
            .await?;
        let list: Vec<Value> = list.iter().map(table_json).collect();
        Ok(super::json(StatusCode::OK, json!({ "tables": list })))
    }
    .await;
    state.finish(Action::Tables, result)
}

pub(super) async fn columns(
    State(state): State<AdminState>,
    headers: HeaderMap,
    params: Result<Path<(String, String, String, String)>, PathRejection>,
) -> Response {
    let result = async {
        let (target, database, schema, table) = path(params)?;
        let t = state.authorize_target(&headers, Action::Columns, &target)?;
        validate::object_name("database", &database)?;
        validate::object_name("schema", &schema)?;
        validate::object_name("table", &table)?;
        let list = t
            .gateway()?
            .columns(&database, &schema, &table, state.read_deadline(&t))
            .await?;
        let list: Vec<Value> = list.iter().map(column_json).collect();
        Ok(super::json(StatusCode::OK, json!({ "columns": list })))
    }
    .await;
    state.finish(Action::Columns, result)
}

/// A backend pid from the path: a positive 32-bit integer.
fn parse_pid(raw: &str) -> Result<i32, Problem> {
    let pid: i32 = raw
        .parse()
        .map_err(|_| Problem::invalid("pid must be a positive 32-bit integer"))?;
    validate::pid(pid)?;
    Ok(pid)
}

/// Runs an audited mutation on the task tracker: intent record, the call, outcome record.
/// The spawned task owns everything, so the mutation and its outcome record complete even if
/// the client disconnects; shutdown waits for the tracker.
async fn mutate<F, Fut>(
    state: &AdminState,
    target: &Targeted,
    client: SocketAddr,
    action: Action,
    details: Map<String, Value>,
    success: StatusCode,
    call: F,
) -> Result<Response, Problem>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = Result<Value, GatewayError>> + Send + 'static,
{
    let Some(audit) = state.audit.clone() else {
        return Err(Problem::audit_unavailable());
    };
    let mut record = Map::new();
    record.insert("request_id".to_owned(), json!(super::audit::request_id()));
    record.insert("token".to_owned(), json!(target.caller.token));
    record.insert("client".to_owned(), json!(client.to_string()));
    record.insert("target".to_owned(), json!(target.handle.config.name));
    record.insert("action".to_owned(), json!(action.as_str()));
    record.extend(details);
    let task = state.tracker.spawn(async move {
        let mut intent = record.clone();
        intent.insert("event".to_owned(), json!("intent"));
        if let Err(e) = super::audit::append(&audit, intent).await {
            tracing::error!(error = %e, "cannot write the audit intent record; mutation refused");
            return Err(Problem::audit_unavailable());
        }
        let result = call().await;
        let mut outcome = record;
        outcome.insert("event".to_owned(), json!("outcome"));
        match &result {
            Ok(_) => {
                outcome.insert("outcome".to_owned(), json!("ok"));
                outcome.insert("status".to_owned(), json!(success.as_u16()));
            }
            Err(e) => {
                outcome.insert("outcome".to_owned(), json!("error"));
                outcome.insert("reason".to_owned(), json!(e.reason().as_str()));
                if let Some(code) = e.sqlstate() {
                    outcome.insert("sqlstate".to_owned(), json!(code));
                }
            }
        }
        let result = result.map_err(Problem::from);
        if let Err(problem) = &result {
            outcome.insert("status".to_owned(), json!(problem.status.as_u16()));
        }
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

async fn signal(
    state: AdminState,
    client: SocketAddr,
    headers: HeaderMap,
    params: Result<Path<(String, String)>, PathRejection>,
    action: Action,
) -> Response {
    let result = async {
        let (target, pid) = path(params)?;
        let t = state.authorize_target(&headers, action, &target)?;
        let pid = parse_pid(&pid)?;
        let gateway = t.gateway()?;
        let deadline = t.deadline();
        let mut details = Map::new();
        details.insert("pid".to_owned(), json!(pid));
        mutate(
            &state,
            &t,
            client,
            action,
            details,
            StatusCode::OK,
            move || async move {
                match action {
                    Action::Cancel => gateway.cancel(pid, deadline).await?,
                    _ => gateway.terminate(pid, deadline).await?,
                }
                let done = if action == Action::Cancel {
                    "cancelled"
                } else {
                    "terminated"
                };
                Ok(json!({ "pid": pid, "result": done }))
            },
        )
        .await
    }
    .await;
    state.finish(action, result)
}

pub(super) async fn terminate(
    State(state): State<AdminState>,
    Extension(ClientAddr(client)): Extension<ClientAddr>,
    headers: HeaderMap,
    params: Result<Path<(String, String)>, PathRejection>,
) -> Response {
    signal(state, client, headers, params, Action::Terminate).await
}

pub(super) async fn cancel(
    State(state): State<AdminState>,
    Extension(ClientAddr(client)): Extension<ClientAddr>,
    headers: HeaderMap,
    params: Result<Path<(String, String)>, PathRejection>,
) -> Response {
    signal(state, client, headers, params, Action::Cancel).await
}

/// The body of `POST .../users`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateUserBody {
    name: String,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    superuser: bool,
    #[serde(default = "yes")]
    login: bool,
}

fn yes() -> bool {
    true
}

/// Parses a JSON body: syntax errors are 400, wrong shapes and values 422.
fn parse_body<T: serde::de::DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
) -> Result<T, Problem> {
    let bytes = body.map_err(|e| {
        let status = e.status();
        Problem::new(
            status,
            if status == StatusCode::PAYLOAD_TOO_LARGE {
                "body-too-large"
            } else {
                "malformed-request"
            },
            if status == StatusCode::PAYLOAD_TOO_LARGE {
                format!("the body exceeds {} bytes", super::MAX_BODY_BYTES)
            } else {
                "the body could not be read".to_owned()
            },
        )
    })?;
    serde_json::from_slice(&bytes).map_err(|e| {
        use serde_json::error::Category;
        // serde's message names the field and the expected type; it never echoes values.
        match e.classify() {
            Category::Data => Problem::invalid(format!("invalid body: {e}")),
            Category::Syntax | Category::Eof | Category::Io => {
                Problem::malformed(format!("the body is not valid JSON: {e}"))
            }
        }
    })
}

pub(super) async fn create_user(
    State(state): State<AdminState>,
    Extension(ClientAddr(client)): Extension<ClientAddr>,
    headers: HeaderMap,
    target: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = async {
        let target = path(target)?;
        let t = state.authorize_target(&headers, Action::CreateUser, &target)?;
        let body: CreateUserBody = parse_body(body)?;
        if body.superuser && !t.caller.has(Scope::CreateSuperuser) {
            return Err(Problem::forbidden(
                "creating a superuser needs the create_superuser scope",
            ));
        }
        let user = NewUser::new(
            &body.name,
            body.password.map(Secret::new),
            body.superuser,
            body.login,
        )?;
        let gateway = t.gateway()?;
        let deadline = t.deadline();
        let mut details = Map::new();
        details.insert("role".to_owned(), json!(user.name.as_str()));
        details.insert("superuser".to_owned(), json!(user.superuser));
        details.insert("login".to_owned(), json!(user.login));
        details.insert(
            "password".to_owned(),
            json!(if user.password.is_some() {
                "chosen"
            } else {
                "generated"
            }),
        );
        mutate(
            &state,
            &t,
            client,
            Action::CreateUser,
            details,
            StatusCode::CREATED,
            move || async move {
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
    state.finish(Action::CreateUser, result)
}
