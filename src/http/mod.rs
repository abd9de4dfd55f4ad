//! HTTP listeners: the accept loop shared by both, TLS, and the routes of each.
//!
//! Connections are served by hyper directly (not `axum::serve`) so every listener gets a
//! cap on concurrent connections (a permit is taken *before* `accept`, so a flood waits in the
//! kernel's backlog and never takes the descriptors collections need), a header-read timeout
//! (a slowloris client is dropped), a write deadline with a minimum send rate, a total lifetime,
//! and eviction of stalled connections when the cap is reached (a client that never reads its
//! responses is dropped: `conn.rs`), at most [`MAX_BUFFERED_REQUEST_BYTES`] of pipelined
//! requests buffered (hyper answers one request at a time), optional TLS with a handshake
//! deadline, the client address on every request, and a graceful drain at shutdown. Routing is
//! axum's.

pub mod admin;
pub mod basic_auth;
mod conn;
pub mod metrics;
pub mod webconfig;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
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
/// Pipelined request bytes read ahead of the request being answered (hyper's minimum is 8 KiB;
/// its default, ~400 KiB, let a client queue hundreds of requests per connection).
pub const MAX_BUFFERED_REQUEST_BYTES: usize = 16 * 1024;
/// Unsent bytes a connection's socket may hold (`TCP_NOTSENT_LOWAT`); what is in flight to
/// the client is not limited, so throughput is not either.
const NOTSENT_LOWAT: u32 = 128 * 1024;
/// How often a full listener looks for stalled connections to close.
const EVICT_CHECK: Duration = Duration::from_millis(100);
pub use conn::{
    EVICT_STALLED_AFTER, MAX_CONNECTION_LIFETIME, MIN_SEND_PROGRESS, WRITE_STALL_TIMEOUT,
};
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
    /// How long one connection may live ([`MAX_CONNECTION_LIFETIME`] for both listeners).
    pub max_lifetime: Duration,
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
    let registry = Arc::new(conn::Registry::default());
    let mut warned = false;
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_BUFFERED_REQUEST_BYTES);
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
                        "connection cap reached; stalled connections are closed to make room, others wait in the kernel's backlog until one closes (logged once)"
                    );
                }
                // Full: connections whose clients stopped reading make room first.
                let permit = loop {
                    registry.evict_stalled(EVICT_STALLED_AFTER);
                    tokio::select! {
                        () = shutdown.cancelled() => break None,
                        permit = slots.clone().acquire_owned() => break permit.ok(),
                        () = tokio::time::sleep(EVICT_CHECK) => {}
                    }
                };
                match permit {
                    Some(permit) => permit,
                    None => break,
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
                    // At most this much of a response waits unsent in the kernel: a client that
                    // does not read stalls Mesa's write after a few responses (then the write
                    // deadline and eviction apply), instead of after megabytes of autotuned
                    // send buffer, each pipelined response costing an encoding.
                    if let Err(e) = socket2::SockRef::from(&stream).set_tcp_notsent_lowat(NOTSENT_LOWAT) {
                        tracing::debug!(error = %e, "TCP_NOTSENT_LOWAT not set");
                    }
                    let registered = registry.register();
                    let (builder, router, acceptor, shutdown) =
                        (builder.clone(), router.clone(), acceptor.clone(), shutdown.clone());
                    let lifetime = cap.max_lifetime;
                    tokio::spawn(async move {
                        // Held until the connection is closed.
                        let _permit = permit;
                        match acceptor {
                            None => drive(stream, peer, builder, router, registered, shutdown, lifetime).await,
                            Some(acceptor) => {
                                match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                                    Ok(Ok(tls)) => drive(tls, peer, builder, router, registered, shutdown, lifetime).await,
                                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                                }
                            }
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
    // Every connection holds a slot until it closes: all slots back means all drained.
    let all = u32::try_from(cap.max).unwrap_or(u32::MAX);
    if tokio::time::timeout(DRAIN_TIMEOUT, slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("HTTP connections did not drain in time; closing them");
    }
}

/// Serves one connection until it ends, its client stalls past the write deadline, it is
/// evicted, its lifetime ends (then gracefully), or shutdown (gracefully, within the drain).
async fn drive<S>(
    stream: S,
    peer: SocketAddr,
    builder: hyper::server::conn::http1::Builder,
    router: axum::Router,
    registered: conn::Registered,
    shutdown: CancellationToken,
    max_lifetime: Duration,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ClientAddr(peer));
        let response = router.clone().call(request);
        async move {
            match tokio::time::timeout(REQUEST_TIMEOUT, response).await {
                Ok(response) => response,
                Err(_) => Ok(timed_out()),
            }
        }
    });
    let io = TokioIo::new(conn::Guarded::new(stream, registered.conn.clone()));
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    let evict = registered.conn.evict.clone();
    let lifetime = tokio::time::sleep(max_lifetime);
    tokio::pin!(lifetime);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = evict.cancelled() => {
            tracing::debug!(%peer, "stalled connection closed to make room");
            return;
        }
        () = &mut lifetime => {
            connection.as_mut().graceful_shutdown();
            tokio::time::timeout(REQUEST_TIMEOUT, connection.as_mut()).await.unwrap_or(Ok(()))
        }
        () = shutdown.cancelled() => {
            connection.as_mut().graceful_shutdown();
            tokio::time::timeout(DRAIN_TIMEOUT, connection.as_mut()).await.unwrap_or(Ok(()))
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Sends one keep-alive request on `stream` and reads its whole answer; false once the
    /// server has closed the connection.
    async fn exchange(stream: &mut tokio::net::TcpStream) -> bool {
        if stream
            .write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .is_err()
        {
            return false;
        }
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        // The answer is small: headers and "ok".
        while !got.ends_with(b"ok") {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        true
    }

    #[tokio::test]
    async fn a_busy_keep_alive_connection_is_closed_after_its_lifetime() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let router = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(serve(
            listener,
            router,
            None,
            shutdown.clone(),
            ConnectionCap {
                listener: "test",
                max: 4,
                max_lifetime: Duration::from_millis(800),
            },
        ));
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        // A request every 100 ms keeps the connection busy (no idle timeout applies): only
        // its lifetime can end it.
        let started = std::time::Instant::now();
        let mut served = 0;
        while started.elapsed() < Duration::from_secs(4) {
            if !exchange(&mut stream).await {
                break;
            }
            served += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let lived = started.elapsed();
        assert!(served >= 2, "served {served}");
        assert!(
            lived < Duration::from_secs(4),
            "the connection outlived its lifetime: {lived:?}, {served} requests"
        );
        // A new connection is served as usual.
        let mut again = tokio::net::TcpStream::connect(addr).await.expect("connect");
        assert!(exchange(&mut again).await);
        shutdown.cancel();
        server.await.expect("server");
    }
}
