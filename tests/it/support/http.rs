//! Talking to daemons: one HTTP exchange with a real client (hyper), daemon configs, an
//! admin-enabled daemon, and connections that are held open.

use super::*;

/// One HTTP/1.1 GET with a real client (hyper); returns status, content type and body.
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String, String) {
    try_http_get(addr, path)
        .await
        .unwrap_or_else(|| panic!("GET http://{addr}{path} failed"))
}

/// The `Accept` header Prometheus 2.x scrapes with: OpenMetrics first.
pub const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// As [`http_get`], `None` when the connection or the exchange fails. It asks for what
/// Prometheus asks for ([`PROMETHEUS_ACCEPT`]).
pub async fn try_http_get(addr: std::net::SocketAddr, path: &str) -> Option<(u16, String, String)> {
    get_accepting(addr, path, PROMETHEUS_ACCEPT).await
}

/// A GET with `Accept: accept` (none when empty): status, content type and body.
pub async fn get_accepting(
    addr: std::net::SocketAddr,
    path: &str,
    accept: &str,
) -> Option<(u16, String, String)> {
    let headers = if accept.is_empty() {
        Vec::new()
    } else {
        vec![(hyper::header::ACCEPT, accept.to_owned())]
    };
    let (status, headers, body) = exchange(addr, "GET", path, &headers, None).await?;
    let content_type = headers
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    Some((
        status,
        content_type,
        String::from_utf8_lossy(&body).into_owned(),
    ))
}

/// One HTTP/1.1 exchange with a real client (hyper) on a fresh connection: status, headers
/// and the raw body; `None` when the connection or the exchange fails.
pub async fn exchange(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(hyper::header::HeaderName, String)],
    body: Option<&str>,
) -> Option<(u16, hyper::HeaderMap, hyper::body::Bytes)> {
    use http_body_util::BodyExt as _;
    let stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .ok()?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut builder = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, addr.to_string());
    for (name, value) in headers {
        builder = builder.header(name, value);
    }
    let request = builder
        .body(http_body_util::Full::new(hyper::body::Bytes::from(
            body.unwrap_or("").to_owned(),
        )))
        .ok()?;
    let response = sender.send_request(request).await.ok()?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.ok()?.to_bytes();
    Some((status, headers, body))
}

/// A config for the in-process daemon; `{cluster}` is replaced by the cluster's host/port.
pub fn daemon_config(yaml: &str) -> mesa::config::Config {
    let c = cluster();
    let dir = std::env::temp_dir().join(format!("mesa-it-{}", std::process::id()));
    // Written once per process: rewriting it while a concurrent test reads it (truncate,
    // then write) let that test see an empty password file.
    static FIXTURE: std::sync::Once = std::sync::Once::new();
    FIXTURE.call_once(|| {
        std::fs::create_dir_all(&dir).expect("temp dir");
        std::fs::write(dir.join("fixture.pw"), ROLE_PASSWORD).expect("password file");
    });
    let text = yaml
        .replace("{host}", c.host())
        .replace("{port}", &c.port().to_string());
    mesa::config::parse_str(&text, &dir, &|_| None)
        .unwrap_or_else(|p| panic!("test config invalid: {p:#?}"))
}

/// A response: status, headers and body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: String,
}

impl Reply {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// One HTTP/1.1 request with a real client (hyper): method, path, bearer token, body.
pub async fn request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> Reply {
    let mut headers = Vec::new();
    if let Some(token) = token {
        headers.push((hyper::header::AUTHORIZATION, format!("Bearer {token}")));
    }
    if body.is_some() {
        headers.push((hyper::header::CONTENT_TYPE, "application/json".to_owned()));
    }
    let (status, headers, body) = exchange(addr, method, path, &headers, body)
        .await
        .unwrap_or_else(|| panic!("{method} http://{addr}{path} failed"));
    Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// A daemon with the admin API on `targets` (YAML list items) and one all-scopes token;
/// returns it, the admin address and the token.
pub async fn admin_daemon(
    collection: &str,
    audit: &str,
    targets: &str,
) -> (mesa::app::App, std::net::SocketAddr, String) {
    let token = mesa::token::generate().expect("token");
    let config = daemon_config(&format!(
        "collection: {{{collection}}}
web: {{listen_address: '127.0.0.1:0'}}
admin:
  listen_address: '127.0.0.1:0'
  audit_log: {audit}
  rate_limit: {{burst: 1000, per_second: 1000}}
  tokens:
    - {{name: ops, sha256: '{}', scopes: [read, terminate, create_user], targets: ['*']}}
targets:
{targets}",
        token.sha256_hex
    ));
    let app = mesa::app::App::start(config).await.expect("daemon starts");
    let addr = app.admin_addr().expect("admin API");
    (app, addr, token.token.expose().to_owned())
}

/// Opens up to `n` connections to `addr`, 100 at a time, each with a 1 s connect deadline;
/// returns those that connected (beyond a listener's cap they wait in its backlog, which
/// completes the handshake without Mesa accepting them).
pub async fn hold(addr: std::net::SocketAddr, n: usize) -> Vec<tokio::net::TcpStream> {
    let mut held = Vec::with_capacity(n);
    for chunk in 0..n.div_ceil(100) {
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..100.min(n - chunk * 100) {
            set.spawn(async move {
                tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(addr))
                    .await
                    .ok()
                    .and_then(Result::ok)
            });
        }
        while let Some(stream) = set.join_next().await {
            if let Some(stream) = stream.expect("join") {
                held.push(stream);
            }
        }
    }
    held
}
