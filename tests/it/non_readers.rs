//! Clients that never read (issue 17, item 3): each pipelines requests and never reads a byte
//! of the answers, so Mesa's responses stick in the socket buffers. 500 of them on each
//! listener must not stop either listener from serving clients that do read.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::support::*;

/// Non-reading clients per listener.
const NON_READERS: usize = 500;
/// How long a reading client may wait for its answer while the non-readers are connected:
/// a liveness bound (before the fix it waited for ever), not a speed figure.
const SERVED_WITHIN: Duration = Duration::from_secs(30);

/// `n` clients connected to `addr` (100 at a time, [`hold`]), each of which sends `request`
/// back to back, 64 KiB of them as far as its socket takes them, and never reads.
async fn non_readers(addr: SocketAddr, request: &[u8], n: usize) -> Vec<tokio::net::TcpStream> {
    let burst: Vec<u8> = request
        .iter()
        .copied()
        .cycle()
        .take(64 * 1024 / request.len() * request.len())
        .collect();
    let held = hold(addr, n).await;
    for stream in &held {
        let mut sent = 0;
        while sent < burst.len() {
            match stream.try_write(&burst[sent..]) {
                Ok(n) => sent += n,
                Err(_) => break,
            }
        }
    }
    held
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_listeners_serve_readers_while_500_non_readers_are_connected() {
    let _loud = loud().await;
    let token = mesa::token::generate().expect("token");
    let config = daemon_config(&format!(
        "collection: {{interval: 5s, timeout: 4s}}
web: {{listen_address: '127.0.0.1:0'}}
admin:
  listen_address: '127.0.0.1:0'
  audit_log: audit-non-readers.jsonl
  rate_limit: {{burst: 1000, per_second: 1000}}
  tokens:
    - {{name: ops, sha256: '{}', scopes: [read], targets: ['*']}}
targets:
  - {{name: main, driver: postgres, host: '{{host}}', port: {{port}}, username: mesa_monitor, password_file: fixture.pw, sslmode: disable}}
",
        token.sha256_hex
    ));
    let app = mesa::app::App::start(config).await.expect("daemon starts");
    let (metrics, admin) = (app.metrics_addr(), app.admin_addr().expect("admin API"));
    let up = eventually(Duration::from_secs(10), || async {
        let (_, _, body) = http_get(metrics, "/metrics").await;
        value(&body, "pg_up", &[("server", "main")]) == Some(1.0)
    })
    .await;
    assert!(up, "the target is up before the non-readers come");

    let on_metrics = non_readers(
        metrics,
        b"GET /metrics HTTP/1.1\r\nHost: m\r\n\r\n",
        NON_READERS,
    )
    .await;
    // The admin listener's one unauthenticated route.
    let on_admin = non_readers(
        admin,
        b"GET /api/v1/openapi.json HTTP/1.1\r\nHost: m\r\n\r\n",
        NON_READERS,
    )
    .await;
    assert_eq!(on_metrics.len(), NON_READERS, "non-readers connected");
    assert_eq!(on_admin.len(), NON_READERS, "non-readers connected");

    // Readers, while every non-reader is still connected on its side.
    for round in 0..3 {
        let started = Instant::now();
        let scrape = tokio::time::timeout(SERVED_WITHIN, try_http_get(metrics, "/metrics")).await;
        let (status, _, body) = scrape.ok().flatten().unwrap_or_else(|| {
            panic!("round {round}: /metrics unanswered within {SERVED_WITHIN:?}")
        });
        assert_eq!(status, 200);
        // Served from the last collection (a collection may fail under this load: its
        // deadline is the daemon's, not this test's concern).
        assert!(
            value(&body, "pg_up", &[("server", "main")]).is_some(),
            "{body}"
        );
        let scrape_took = started.elapsed();
        let started = Instant::now();
        let headers = [(
            hyper::header::AUTHORIZATION,
            format!("Bearer {}", token.token.expose()),
        )];
        let call = tokio::time::timeout(
            SERVED_WITHIN,
            exchange(admin, "GET", "/api/v1/targets", &headers, None),
        )
        .await;
        let (status, _, _) = call.ok().flatten().unwrap_or_else(|| {
            panic!("round {round}: the admin call unanswered within {SERVED_WITHIN:?}")
        });
        assert_eq!(status, 200);
        eprintln!(
            "round {round}: /metrics answered in {scrape_took:?}, the admin call in {:?}, with {} + {} non-readers connected",
            started.elapsed(),
            on_metrics.len(),
            on_admin.len()
        );
    }
    drop((on_metrics, on_admin));
    app.shutdown(mesa::app::DEFAULT_GRACE_PERIOD)
        .await
        .expect("shutdown");
}
