//! The admin API: authenticated, scoped, rate-limited and audited access to the gateway.
//!
//! Layout: `auth` (tokens, scopes, rate limit), `body` (JSON bodies into gateway types), `extract` (the [`extract::Authorized`]
//! extractor: the one place a request is authenticated, authorised and rate-limited),
//! `problem` (problem+json and the one mapping from gateway errors), `audit` (the typed JSON
//! Lines trail), `handlers` (one function per route), `openapi` (the OpenAPI 3 document). The
//! router is built from [`ROUTES`], the same table the OpenAPI test checks, so a route cannot
//! exist undocumented, and the extractor finds each request's [`Action`] in it.
//!
//! Every request is authenticated, authorised (scope and target) and its input parsed into
//! the gateway's types (`RoleName`, `Pid`, `ObjectName`, `SessionLimit`) before any
//! database traffic. Mutations write an audit intent first (refused with 503 if that fails),
//! run on the daemon's task tracker so they finish even if the client hangs up (and shutdown
//! waits for them), then write the outcome.

pub mod audit;
pub mod auth;
pub mod body;
pub mod extract;
mod handlers;
pub mod openapi;
pub mod problem;

use std::sync::{Arc, RwLock};

use axum::extract::DefaultBodyLimit;
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, post};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::audit::AuditLog;
use self::auth::RateLimiter;
use self::extract::Authorized;
use self::problem::Problem;
use crate::config::{Scope, TokenConfig};
use crate::gateway::Deadline;
use crate::metrics::ExporterMetrics;
use crate::metrics::SnapshotStore;
use crate::scheduler::Registry;

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// What a route does; names the `action` label and the audit records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// `GET /api/v1/targets`.
    ListTargets,
    /// `GET .../health`.
    Health,
    /// `GET .../sessions`.
    Sessions,
    /// `POST .../sessions/{pid}/terminate`.
    Terminate,
    /// `POST .../sessions/{pid}/cancel`.
    Cancel,
    /// `POST .../sessions/terminate`: terminate or cancel every matching session.
    BulkTerminate,
    /// `POST .../users`.
    CreateUser,
    /// `GET .../users`: the managed roles.
    ListUsers,
    /// `DELETE .../users/{name}`: revoke a managed role.
    DeleteUser,
    /// `POST .../users/{name}/password`: rotate a managed role's password.
    RotatePassword,
    /// `GET .../databases`.
    Databases,
    /// `GET .../databases/{db}/tables`.
    Tables,
    /// `GET .../tables/{schema}/{table}/columns`.
    Columns,
    /// `GET /api/v1/openapi.json`.
    OpenApi,
}

impl Action {
    /// The `action` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ListTargets => "list_targets",
            Self::Health => "health",
            Self::Sessions => "sessions",
            Self::Terminate => "terminate",
            Self::Cancel => "cancel",
            Self::BulkTerminate => "bulk_terminate",
            Self::CreateUser => "create_user",
            Self::ListUsers => "list_users",
            Self::DeleteUser => "delete_user",
            Self::RotatePassword => "rotate_password",
            Self::Databases => "databases",
            Self::Tables => "tables",
            Self::Columns => "columns",
            Self::OpenApi => "openapi",
        }
    }

    /// The scope the route needs (`create_superuser` is checked on top for superusers);
    /// `None` only for the public OpenAPI document. No catch-all arm: a new action does not
    /// compile until someone decides its scope.
    pub fn scope(self) -> Option<Scope> {
        match self {
            Self::OpenApi => None,
            Self::Terminate | Self::Cancel | Self::BulkTerminate => Some(Scope::Terminate),
            Self::CreateUser | Self::DeleteUser | Self::RotatePassword => Some(Scope::CreateUser),
            Self::ListTargets
            | Self::ListUsers
            | Self::Health
            | Self::Sessions
            | Self::Databases
            | Self::Tables
            | Self::Columns => Some(Scope::Read),
        }
    }
}

/// One route of the admin API.
#[derive(Debug, Clone)]
pub struct Route {
    /// HTTP method.
    pub method: Method,
    /// Path with `{param}` segments (axum and OpenAPI share the syntax).
    pub path: &'static str,
    /// What it does.
    pub action: Action,
}

/// Every route; the router and the OpenAPI test both read this table.
pub const ROUTES: &[Route] = &[
    Route {
        method: Method::GET,
        path: "/api/v1/targets",
        action: Action::ListTargets,
    },
    Route {
        method: Method::GET,
        path: "/api/v1/targets/{target}/health",
        action: Action::Health,
    },
    Route {
        method: Method::GET,
        path: "/api/v1/targets/{target}/sessions",
        action: Action::Sessions,
    },
    Route {
        method: Method::POST,
        path: "/api/v1/targets/{target}/sessions/terminate",
        action: Action::BulkTerminate,
    },
    Route {
        method: Method::POST,
        path: "/api/v1/targets/{target}/sessions/{pid}/terminate",
        action: Action::Terminate,
    },
    Route {
        method: Method::POST,
        path: "/api/v1/targets/{target}/sessions/{pid}/cancel",
        action: Action::Cancel,
    },
    Route {
        method: Method::POST,
        path: "/api/v1/targets/{target}/users",
        action: Action::CreateUser,
    },
    Route {
        method: Method::GET,
        path: "/api/v1/targets/{target}/users",
        action: Action::ListUsers,
    },
    Route {
        method: Method::DELETE,
        path: "/api/v1/targets/{target}/users/{name}",
        action: Action::DeleteUser,
    },
    Route {
        method: Method::POST,
        path: "/api/v1/targets/{target}/users/{name}/password",
        action: Action::RotatePassword,
    },
    Route {
        method: Method::GET,
        path: "/api/v1/targets/{target}/databases",
        action: Action::Databases,
    },
    Route {
        method: Method::GET,
        path: "/api/v1/targets/{target}/databases/{database}/tables",
        action: Action::Tables,
    },
    Route {
        method: Method::GET,
        path: "/api/v1/targets/{target}/databases/{database}/tables/{schema}/{table}/columns",
        action: Action::Columns,
    },
    Route {
        method: Method::GET,
        path: "/api/v1/openapi.json",
        action: Action::OpenApi,
    },
];

/// Everything the admin handlers share.
#[derive(Debug, Clone)]
pub struct AdminState {
    /// Configured tokens (replaced on reload).
    pub tokens: Arc<RwLock<Arc<Vec<TokenConfig>>>>,
    /// Targets and their gateways (shared with the scheduler).
    pub registry: Registry,
    /// Latest snapshots, for the target list.
    pub store: Arc<SnapshotStore>,
    /// The audit trail; `None` when not configured (mutations are then refused).
    pub audit: Option<Arc<AuditLog>>,
    /// Per-token rate limit.
    pub limiter: Arc<RateLimiter>,
    /// `mesa_admin_requests_total`.
    pub metrics: Arc<ExporterMetrics>,
    /// Mutations run here so they finish even if the client leaves.
    pub tracker: TaskTracker,
    /// Cancels reads at shutdown (mutations are left to finish).
    pub shutdown: CancellationToken,
    /// Rate-limits the log line of failed authentications.
    pub auth_failures: Arc<extract::AuthFailureLog>,
}

impl AdminState {
    /// The deadline of a read on the target, ended early by shutdown.
    pub(crate) fn read_deadline(&self, request: &Authorized) -> Result<Deadline, Problem> {
        Ok(request.deadline()?.with_cancel(self.shutdown.clone()))
    }

    /// Counts the request and turns the result into the response.
    pub(crate) fn finish(&self, action: Action, result: Result<Response, Problem>) -> Response {
        let response = match result {
            Ok(response) => response,
            Err(problem) => problem.into_response(),
        };
        self.metrics
            .admin_request(action.as_str(), problem::outcome(response.status()));
        response
    }

    /// Counts a request that matched no action and answers `problem`.
    pub(crate) fn finish_unknown(&self, problem: Problem) -> Response {
        self.metrics.admin_request("unknown", problem.outcome());
        problem.into_response()
    }
}

/// The config name of a scope.
pub fn scope_name(scope: Scope) -> &'static str {
    match scope {
        Scope::Read => "read",
        Scope::Terminate => "terminate",
        Scope::CreateUser => "create_user",
        Scope::CreateSuperuser => "create_superuser",
    }
}

/// A JSON response that must not be cached.
pub(crate) fn json(status: StatusCode, body: serde_json::Value) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body.to_string(),
    )
        .into_response()
}

fn method_router(action: Action) -> MethodRouter<AdminState> {
    match action {
        Action::ListTargets => get(handlers::list_targets),
        Action::Health => get(handlers::health),
        Action::Sessions => get(handlers::sessions),
        Action::Terminate => post(handlers::terminate),
        Action::Cancel => post(handlers::cancel),
        Action::BulkTerminate => post(handlers::bulk_terminate),
        Action::CreateUser => post(handlers::create_user),
        Action::ListUsers => get(handlers::list_users),
        Action::DeleteUser => delete(handlers::delete_user),
        Action::RotatePassword => post(handlers::rotate_password),
        Action::Databases => get(handlers::databases),
        Action::Tables => get(handlers::tables),
        Action::Columns => get(handlers::columns),
        Action::OpenApi => get(handlers::openapi),
    }
}

/// The admin router.
pub fn router(state: AdminState) -> axum::Router {
    // One method router per path (a path may serve several methods), then its fallback.
    let mut paths: Vec<(&str, MethodRouter<AdminState>)> = Vec::new();
    for route in ROUTES {
        match paths.iter_mut().find(|(p, _)| *p == route.path) {
            Some((_, methods)) => {
                *methods = std::mem::take(methods).merge(method_router(route.action));
            }
            None => paths.push((route.path, method_router(route.action))),
        }
    }
    let mut router = axum::Router::new();
    for (path, methods) in paths {
        router = router.route(path, methods.fallback(handlers::method_not_allowed));
    }
    router
        .fallback(handlers::no_route)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}
