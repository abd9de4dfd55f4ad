//! Routes of the metrics listener: `/metrics`, `/probe?target=`, `/healthz`, `/readyz`, `/`.
//!
//! Nothing here touches a database: every answer is encoded from the snapshot store.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

use crate::metrics::{CONTENT_TYPE, Metrics, render_probe};
use crate::scheduler::Registry;
use crate::snapshot::SnapshotStore;

/// What the metrics routes read.
#[derive(Debug, Clone)]
pub struct MetricsState {
    /// The `/metrics` registry.
    pub metrics: Arc<Metrics>,
    /// Latest snapshots.
    pub store: Arc<SnapshotStore>,
    /// The configured targets (kept current by the scheduler).
    pub registry: Registry,
}

impl MetricsState {
    fn is_target(&self, name: &str) -> bool {
        self.registry.contains(name)
    }

    fn target_names(&self) -> Vec<String> {
        self.registry.names()
    }
}

/// The router of the metrics listener.
pub fn router(state: MetricsState) -> axum::Router {
    axum::Router::new()
        .route("/metrics", get(metrics))
        .route("/probe", get(probe))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/", get(landing))
        .with_state(state)
}

fn openmetrics(body: String) -> Response {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response()
}

fn text(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

async fn metrics(State(state): State<MetricsState>) -> Response {
    openmetrics(state.metrics.render())
}

async fn probe(
    State(state): State<MetricsState>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let Some(target) = query.get("target") else {
        return text(StatusCode::BAD_REQUEST, "missing ?target=NAME\n".to_owned());
    };
    if let Some(elsewhere) = state.registry.misdirected(target) {
        return text(
            StatusCode::MISDIRECTED_REQUEST,
            format!(
                "target {target:?} is collected by shard {} of {}; this is shard {}: scrape that replica\n",
                elsewhere.owner,
                elsewhere.here.count(),
                elsewhere.here.index()
            ),
        );
    }
    if !state.is_target(target) {
        return text(
            StatusCode::BAD_REQUEST,
            format!("unknown target {target:?}; see /readyz for the configured targets\n"),
        );
    }
    match state.store.get(target) {
        Some(snapshot) => openmetrics(render_probe(snapshot)),
        None => text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("target {target:?} has not been collected yet\n"),
        ),
    }
}

async fn healthz() -> Response {
    text(StatusCode::OK, "ok\n".to_owned())
}

async fn readyz(State(state): State<MetricsState>) -> Response {
    let waiting: Vec<String> = state
        .target_names()
        .into_iter()
        .filter(|t| state.store.get(t).is_none())
        .collect();
    if waiting.is_empty() {
        text(
            StatusCode::OK,
            "ready: every target has been collected at least once\n".to_owned(),
        )
    } else {
        text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "waiting for the first collection of: {}\n",
                waiting.join(", ")
            ),
        )
    }
}

async fn landing(State(state): State<MetricsState>) -> Html<String> {
    let mut rows = String::new();
    for name in state.target_names() {
        let status = match state.store.get(&name) {
            Some(s) if s.up() => "up".to_owned(),
            Some(s) => match &s.result {
                Err(reason) => format!("down ({reason})"),
                Ok(_) => "up".to_owned(),
            },
            None => "not collected yet".to_owned(),
        };
        // Target names are [a-z0-9_-]+ by config validation: nothing to escape.
        rows.push_str(&format!(
            "<li><a href=\"/probe?target={name}\">{name}</a>: {status}</li>\n"
        ));
    }
    Html(format!(
        "<!doctype html>\n<html><head><title>Mesa</title></head><body>\n<h1>Mesa {}</h1>\n\
         <p><a href=\"/metrics\">/metrics</a> · <a href=\"/healthz\">/healthz</a> · \
         <a href=\"/readyz\">/readyz</a></p>\n<h2>Targets</h2>\n<ul>\n{rows}</ul>\n</body></html>\n",
        crate::VERSION
    ))
}
