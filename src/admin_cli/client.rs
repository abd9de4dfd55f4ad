//! One HTTP/1.1 exchange per call with the admin API, over TCP or TLS (rustls; the server is
//! verified against `--cacert` or the system's roots).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{Request, Uri, header};
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use serde_json::Value;

/// How long one call may take, connection included.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a call got no answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The URL is not `http(s)://host[:port][/prefix]`.
    #[error("invalid admin URL {url:?}: {why}")]
    Url {
        /// As given.
        url: String,
        /// What is wrong.
        why: String,
    },
    /// The trust roots could not be loaded (`--cacert`, or the system's).
    #[error("--cacert: {0}")]
    Roots(#[source] crate::tls::TlsError),
    /// No connection, TLS failed, or the exchange broke.
    #[error("cannot reach the admin API at {endpoint}: {why}")]
    Unreachable {
        /// `host:port`.
        endpoint: String,
        /// What failed.
        why: String,
    },
    /// No answer within [`CALL_TIMEOUT`].
    #[error("the admin API at {endpoint} did not answer within {CALL_TIMEOUT:?}")]
    Timeout {
        /// `host:port`.
        endpoint: String,
    },
}

/// A status and a JSON body (a body that is not JSON becomes a string).
#[derive(Debug)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// The body.
    pub body: Value,
}

/// Where the admin API is and how to talk to it.
pub struct AdminClient {
    host: String,
    port: u16,
    prefix: String,
    token: String,
    tls: Option<(
        tokio_rustls::TlsConnector,
        rustls::pki_types::ServerName<'static>,
    )>,
}

impl AdminClient {
    /// Parses `url`, and for https loads the roots (`cacert`, or the system's).
    pub fn new(url: &str, token: String, cacert: Option<&Path>) -> Result<Self, ClientError> {
        let bad = |why: &str| ClientError::Url {
            url: url.to_owned(),
            why: why.to_owned(),
        };
        let uri: Uri = url.parse().map_err(|_| bad("not a URL"))?;
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err(bad("the scheme must be http or https")),
        };
        let host = uri
            .host()
            .ok_or_else(|| bad("no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        if uri.query().is_some() {
            return Err(bad("no query string, please"));
        }
        let prefix = uri.path().trim_end_matches('/').to_owned();
        let tls = if https {
            let config =
                rustls::ClientConfig::builder_with_provider(Arc::new(crate::tls::provider()))
                    .with_safe_default_protocol_versions()
                    .map_err(|e| bad(&e.to_string()))?
                    .with_root_certificates(roots(cacert)?)
                    .with_no_client_auth();
            let name = rustls::pki_types::ServerName::try_from(host.clone())
                .map_err(|_| bad("the host is not a valid TLS server name"))?;
            Some((tokio_rustls::TlsConnector::from(Arc::new(config)), name))
        } else {
            None
        };
        Ok(Self {
            host,
            port,
            prefix,
            token,
            tls,
        })
    }

    fn endpoint(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// One request: `method` on `path` (under the URL's prefix), with a JSON `body`.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Reply, ClientError> {
        let endpoint = self.endpoint();
        tokio::time::timeout(CALL_TIMEOUT, self.exchange(method, path, body))
            .await
            .map_err(|_| ClientError::Timeout {
                endpoint: endpoint.clone(),
            })?
            .map_err(|why| ClientError::Unreachable { endpoint, why })
    }

    async fn exchange(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Reply, String> {
        let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| e.to_string())?;
        let bytes = body.map(|b| b.to_string()).unwrap_or_default();
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.prefix))
            .header(header::HOST, self.endpoint())
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token))
            .header(header::ACCEPT, "application/json, application/problem+json")
            .header(
                header::USER_AGENT,
                concat!("mesa-admin/", env!("CARGO_PKG_VERSION")),
            );
        if !bytes.is_empty() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(Full::new(bytes::Bytes::from(bytes)))
            .map_err(|e| e.to_string())?;
        let response = match &self.tls {
            None => send(TokioIo::new(tcp), request).await?,
            Some((connector, name)) => {
                let tls = connector
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|e| format!("TLS: {e}"))?;
                send(TokioIo::new(tls), request).await?
            }
        };
        let status = response.status().as_u16();
        let collected = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        let body = serde_json::from_slice(&collected)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&collected).into_owned()));
        Ok(Reply { status, body })
    }
}

/// Sends `request` on a fresh HTTP/1.1 connection over `io`.
async fn send<I>(
    io: I,
    request: Request<Full<bytes::Bytes>>,
) -> Result<hyper::Response<hyper::body::Incoming>, String>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())
}

/// The roots to verify the admin API with: the PEM file's certificates, or the system's.
fn roots(cacert: Option<&Path>) -> Result<rustls::RootCertStore, ClientError> {
    match cacert {
        Some(path) => crate::tls::pem::roots(path),
        None => crate::tls::pem::system_roots(),
    }
    .map_err(ClientError::Roots)
}
