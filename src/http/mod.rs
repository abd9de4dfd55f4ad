//! HTTP listeners: the accept loop shared by both, TLS, and the routes of each.
//!
//! Connections are served by hyper directly (not `axum::serve`) so every listener gets a
//! cap on concurrent connections (a permit is taken *before* `accept`, so a flood waits in the
//! kernel's backlog and never takes the descriptors collections need), a header-read timeout
//! (a slowloris client is dropped), optional TLS with a handshake deadline, the client address
//! on every request, and a graceful drain at shutdown. Routing is axum's.

pub mod admin;
pub mod metrics;
pub mod webconfig;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower_service::Service as _;

/// A client must send its request headers within this time; also bounds idle keep-alive.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// A TLS client must finish its handshake within this time.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// A request that takes longer is answered 503 (a mutation keeps running on the tracker).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// At shutdown, requests in progress get this long to finish.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause after a failed `accept` (e.g. out of file descriptors) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The peer address of the connection a request came on (a request extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);

/// A listener's name (for logs) and its cap on concurrent connections.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionCap {
    /// `metrics` or `admin`.
    pub listener: &'static str,
    /// Connections served at once.
    pub max: usize,
}

/// Serves `router` on `listener` (over TLS when `tls` is set) until `shutdown` fires, then
/// drains. At most `cap.max` connections are open at once; the first time the cap is reached
/// it is logged.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: CancellationToken,
    cap: ConnectionCap,
) {
    let slots = Arc::new(Semaphore::new(cap.max));
    let mut warned = false;
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    loop {
        let permit = match slots.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if !warned {
                    warned = true;
                    tracing::warn!(
                        listener = cap.listener,
                        max_connections = cap.max,
                        "connection cap reached; further connections wait in the kernel's backlog until one closes (logged once)"
                    );
                }
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    permit = slots.clone().acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_) => break,
                    },
                }
            }
        };
        tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    // Without it, the last partial segment of a large response waits for the
                    // client's delayed ACK (Nagle): 40 ms added to a 1 ms scrape. Go's net/http
                    // sets it on every connection too.
                    if let Err(e) = stream.set_nodelay(true) {
                        tracing::debug!(error = %e, "TCP_NODELAY not set");
                    }
                    let service = hyper::service::service_fn({
                        let router = router.clone();
                        move |mut request: hyper::Request<Incoming>| {
                            request.extensions_mut().insert(ClientAddr(peer));
                            let response = router.clone().call(request);
                            async move {
                                match tokio::time::timeout(REQUEST_TIMEOUT, response).await {
                                    Ok(response) => response,
                                    Err(_) => Ok(timed_out()),
                                }
                            }
                        }
                    });
                    let (builder, watcher, acceptor) = (builder.clone(), graceful.watcher(), acceptor.clone());
                    tokio::spawn(async move {
                        // Held until the connection is closed.
                        let _permit = permit;
                        let result = match acceptor {
                            None => watcher.watch(builder.serve_connection(TokioIo::new(stream), service)).await,
                            Some(acceptor) => {
                                let tls = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                                    Ok(Ok(tls)) => tls,
                                    Ok(Err(e)) => {
                                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                        return;
                                    }
                                    Err(_) => {
                                        tracing::debug!(%peer, "TLS handshake timed out");
                                        return;
                                    }
                                };
                                watcher.watch(builder.serve_connection(TokioIo::new(tls), service)).await
                            }
                        };
                        if let Err(e) = result {
                            tracing::debug!(%peer, error = %e, "connection ended with an error");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            }
        }
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("HTTP connections did not drain in time; closing them");
    }
}

fn timed_out() -> axum::response::Response {
    use axum::response::IntoResponse as _;
    (
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; charset=utf-8",
        )],
        "the request took too long\n",
    )
        .into_response()
}
