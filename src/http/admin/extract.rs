//! The one door of the admin API: [`Authorized`], an extractor that finds the route's
//! [`Action`], authenticates the bearer token, checks the action's scope and the token's target
//! allow-list, finds the target, and takes one request from the token's rate budget, in that
//! order and exactly once per request. A handler that takes `Authorized` cannot run for a
//! caller who may not run it; a handler cannot forget a step.
//!
//! Failed authentications are logged with the peer address, at most once per
//! [`AUTH_FAILURE_LOG_INTERVAL`] (with the count suppressed since), so a password-guessing
//! loop is visible without flooding the log.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{FromRequestParts, MatchedPath, RawPathParams};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::Response;
use tokio::time::Instant;

use super::auth::{Caller, authenticate};
use super::problem::Problem;
use super::{Action, AdminState, ROUTES, scope_name};
use crate::gateway::{Deadline, Gateway};
use crate::http::ClientAddr;
use crate::scheduler::TargetHandle;

/// At most one "authentication failed" log line per this interval.
pub const AUTH_FAILURE_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// A request that passed authentication, authorisation and the rate limit.
pub struct Authorized {
    /// What the route does.
    pub action: Action,
    /// Who is calling.
    pub caller: Caller,
    /// The peer address.
    pub client: SocketAddr,
    /// The target, for routes under `/targets/{target}`.
    target: Option<Arc<TargetHandle>>,
}

impl Authorized {
    /// The target of a targeted route. Answers 500 if a route without `{target}` asks, which
    /// is a programming error caught by the route tests.
    pub fn target(&self) -> Result<&Arc<TargetHandle>, Problem> {
        self.target.as_ref().ok_or_else(|| {
            Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "this route has no target",
            )
        })
    }

    /// The target's gateway; 503 when it could not be built.
    pub fn gateway(&self) -> Result<Arc<Gateway>, Problem> {
        self.target()?.gateway.clone().ok_or_else(|| {
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "target-misconfigured",
                "the target's TLS settings could not be loaded; see Mesa's log",
            )
        })
    }

    /// The deadline of a call on the target: its collection timeout. Mutations use it as
    /// is: they finish, and shutdown waits for them.
    pub fn deadline(&self) -> Result<Deadline, Problem> {
        Ok(Deadline::after(self.target()?.config.collection.timeout))
    }
}

/// Rate-limits the "authentication failed" log line.
#[derive(Debug)]
pub struct AuthFailureLog {
    state: Mutex<(Option<Instant>, u64)>,
}

impl Default for AuthFailureLog {
    fn default() -> Self {
        Self {
            state: Mutex::new((None, 0)),
        }
    }
}

impl AuthFailureLog {
    /// Records a failure from `peer`; logs it unless a line was written recently.
    pub fn record(&self, peer: SocketAddr, action: Action, detail: &str) {
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (last, suppressed) = &mut *state;
        if last.is_some_and(|t| now.duration_since(t) < AUTH_FAILURE_LOG_INTERVAL) {
            *suppressed += 1;
            return;
        }
        tracing::warn!(
            %peer,
            action = action.as_str(),
            detail,
            suppressed_since_last = *suppressed,
            "admin API authentication failed"
        );
        *last = Some(now);
        *suppressed = 0;
    }
}

/// The action of the matched route.
fn action_of(parts: &Parts) -> Option<Action> {
    let path = parts.extensions.get::<MatchedPath>()?.as_str();
    ROUTES
        .iter()
        .find(|r| r.path == path && r.method == parts.method)
        .map(|r| r.action)
}

impl FromRequestParts<AdminState> for Authorized {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AdminState,
    ) -> Result<Self, Self::Rejection> {
        let Some(action) = action_of(parts) else {
            let problem = Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the route is not in the route table",
            );
            return Err(state.finish_unknown(problem));
        };
        let client = parts
            .extensions
            .get::<ClientAddr>()
            .map_or(SocketAddr::from(([0, 0, 0, 0], 0)), |c| c.0);
        let params = RawPathParams::from_request_parts(parts, state).await;
        authorize(parts, state, action, client, params).map_err(|p| state.finish(action, Err(p)))
    }
}

fn authorize(
    parts: &Parts,
    state: &AdminState,
    action: Action,
    client: SocketAddr,
    params: Result<RawPathParams, axum::extract::rejection::RawPathParamsRejection>,
) -> Result<Authorized, Problem> {
    // A path that cannot be decoded is the client's mistake whoever they are.
    let params = params.map_err(|e| Problem::malformed(format!("invalid path: {e}")))?;
    let target_name = params
        .iter()
        .find(|(k, _)| *k == "target")
        .map(|(_, v)| v.to_owned());
    let tokens = state
        .tokens
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let caller = authenticate(&parts.headers, &tokens).inspect_err(|p| {
        state.auth_failures.record(client, action, &p.detail);
    })?;
    let Some(scope) = action.scope() else {
        // Unauthenticated routes never take this extractor; refuse rather than guess.
        return Err(Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "this route needs no authorisation",
        ));
    };
    if !caller.has(scope) {
        return Err(Problem::forbidden(format!(
            "the token lacks the {} scope",
            scope_name(scope)
        )));
    }
    let target = match target_name {
        None => None,
        Some(name) => {
            if !caller.may_access(&name) {
                return Err(Problem::forbidden("the token may not access this target"));
            }
            if let Some(elsewhere) = state.registry.misdirected(&name) {
                return Err(Problem::misdirected(format!(
                    "target {name:?} is served by shard {} of {}; this is shard {}: send the request to that replica",
                    elsewhere.owner,
                    elsewhere.here.count(),
                    elsewhere.here.index()
                )));
            }
            let handle = state
                .registry
                .get(&name)
                .ok_or_else(|| Problem::not_found(format!("no target is named {name:?}")))?;
            Some(handle)
        }
    };
    state
        .limiter
        .check(&caller.token)
        .map_err(Problem::rate_limited)?;
    Ok(Authorized {
        action,
        caller,
        client,
        target,
    })
}
