//! Routes of the metrics listener: `/metrics`, `/probe?target=`, `/healthz`, `/readyz`, `/`.
//!
//! Nothing here touches a database: every answer is encoded from the snapshot store.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

use crate::metrics::SnapshotStore;
use crate::metrics::format::{Format, negotiate, to_classic};
use crate::metrics::{Metrics, scrape};
use crate::scheduler::Registry;
use body::Chunks;

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

/// Whether the client accepts gzip (`Accept-Encoding: gzip`, as Prometheus sends), by
/// RFC 9110's rules: a listed `gzip` (or `x-gzip`) or `*` with a non-zero quality.
fn wants_gzip(headers: &HeaderMap) -> bool {
    let mut gzip = None;
    let mut star = None;
    for value in headers.get_all(header::ACCEPT_ENCODING) {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .filter_map(|q| q.trim().parse::<f32>().ok())
                .next()
                .unwrap_or(1.0);
            match coding.as_str() {
                "gzip" | "x-gzip" => gzip = Some(q > 0.0),
                "*" => star = Some(q > 0.0),
                _ => {}
            }
        }
    }
    gzip.or(star).unwrap_or(false)
}

/// An exposition response in `format`, gzipped when asked for and when compression worked.
fn exposition(
    format: Format,
    plain: Vec<bytes::Bytes>,
    gzip: Option<Vec<bytes::Bytes>>,
) -> Response {
    let vary = (header::VARY, "accept, accept-encoding");
    let content_type = format.content_type();
    match gzip {
        Some(chunks) => (
            [
                (header::CONTENT_TYPE, content_type),
                (header::CONTENT_ENCODING, "gzip"),
                vary,
            ],
            axum::body::Body::new(Chunks::new(chunks)),
        )
            .into_response(),
        None => (
            [(header::CONTENT_TYPE, content_type), vary],
            axum::body::Body::new(Chunks::new(plain)),
        )
            .into_response(),
    }
}

fn text(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

async fn metrics(State(state): State<MetricsState>, headers: HeaderMap) -> Response {
    let gzip = wants_gzip(&headers);
    let format = negotiate(&headers);
    // Merging after a change (and the first gzip of it) takes a millisecond or more at
    // hundreds of targets: off the async workers, so the admin API never waits on it.
    let metrics = state.metrics.clone();
    let built = tokio::task::spawn_blocking(move || {
        let scrape = metrics.scrape();
        let gz = if gzip { scrape.gzip(format) } else { None };
        (scrape.plain(format), gz)
    })
    .await;
    match built {
        Ok((plain, gz)) => exposition(format, plain, gz),
        Err(e) => {
            tracing::error!(error = %e, "encoding /metrics panicked");
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "encoding /metrics failed; see the log\n".to_owned(),
            )
        }
    }
}

async fn probe(
    State(state): State<MetricsState>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
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
    match state.metrics.probe(target) {
        Some(body) => {
            let format = negotiate(&headers);
            let body = match format {
                Format::OpenMetrics => body.into_bytes(),
                Format::Text => {
                    let mut out = Vec::new();
                    to_classic(body.as_bytes(), &mut out);
                    out
                }
            };
            let gz = if wants_gzip(&headers) {
                scrape::gzip(&body)
            } else {
                None
            };
            exposition(format, vec![bytes::Bytes::from(body)], gz)
        }
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

mod body {
    //! A response body made of shared byte chunks, sent without joining them.

    use std::collections::VecDeque;
    use std::convert::Infallible;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use bytes::Bytes;
    use http_body::{Frame, SizeHint};

    /// Chunks sent in order, with an exact length (so the response has `Content-Length`).
    #[derive(Debug)]
    pub struct Chunks {
        chunks: VecDeque<Bytes>,
        remaining: u64,
    }

    impl Chunks {
        /// A body of `chunks`, empty ones dropped.
        pub fn new(chunks: Vec<Bytes>) -> Self {
            let chunks: VecDeque<Bytes> = chunks.into_iter().filter(|c| !c.is_empty()).collect();
            let remaining = chunks.iter().map(|c| c.len() as u64).sum();
            Self { chunks, remaining }
        }
    }

    impl http_body::Body for Chunks {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            let next = self.chunks.pop_front();
            if let Some(chunk) = &next {
                self.remaining -= chunk.len() as u64;
            }
            Poll::Ready(next.map(|c| Ok(Frame::data(c))))
        }

        fn is_end_stream(&self) -> bool {
            self.chunks.is_empty()
        }

        fn size_hint(&self) -> SizeHint {
            SizeHint::with_exact(self.remaining)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn accepts(values: &[&str]) -> bool {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(
                header::ACCEPT_ENCODING,
                HeaderValue::from_str(v).expect("ascii"),
            );
        }
        wants_gzip(&h)
    }

    #[test]
    fn gzip_is_chosen_by_accept_encoding_and_its_quality() {
        assert!(accepts(&["gzip"]));
        assert!(accepts(&["deflate, GZIP;q=0.5"]));
        assert!(accepts(&["identity", "x-gzip"]));
        assert!(accepts(&["*"]));
        assert!(!accepts(&[]));
        assert!(!accepts(&["identity"]));
        assert!(!accepts(&["gzip;q=0"]));
        assert!(!accepts(&["*, gzip;q=0"]));
        assert!(!accepts(&["br"]));
    }
}
