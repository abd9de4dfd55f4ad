//! The rate limit per token, a slowloris client, and a mutation whose client hangs up.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_is_rate_limited_per_token() {
    let admin = start("rate", "mesa_monitor", "mesa_admin").await;
    let mut limited = None;
    for _ in 0..40 {
        let reply = admin
            .call("GET", "/api/v1/targets", Some("read"), None)
            .await;
        if reply.status == 429 {
            limited = Some(reply);
            break;
        }
        assert_eq!(reply.status, 200);
    }
    let limited = limited.expect("a burst of 40 hits the limit");
    let retry: u64 = limited
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry));
    assert_eq!(
        admin
            .call("GET", "/api/v1/targets", Some("full"), None)
            .await
            .status,
        200,
        "other tokens are unaffected"
    );
    tokio::time::sleep(Duration::from_secs(retry)).await;
    assert_eq!(
        admin
            .call("GET", "/api/v1/targets", Some("read"), None)
            .await
            .status,
        200,
        "the budget refills"
    );
    admin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowloris_client_is_dropped_while_others_are_served() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let admin = start("slow", "mesa_monitor", "mesa_admin").await;
    let addr = admin.addr;
    let slow = tokio::spawn(async move {
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let started = Instant::now();
        let header = b"GET /api/v1/targets HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
        for byte in header {
            if stream.write_all(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            let mut buf = [0u8; 512];
            if let Ok(Ok(n)) =
                tokio::time::timeout(Duration::from_millis(1), stream.read(&mut buf)).await
                && (n == 0 || buf[..n].starts_with(b"HTTP/1.1 408"))
            {
                break;
            }
        }
        started.elapsed()
    });
    // Meanwhile, ordinary requests are answered.
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            admin
                .call("GET", "/api/v1/openapi.json", None, None)
                .await
                .status,
            200
        );
    }
    let held = slow.await.expect("slow client");
    assert!(
        held <= mesa::http::HEADER_READ_TIMEOUT + Duration::from_secs(2),
        "held {held:?}"
    );
    admin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mutation_finishes_when_the_client_hangs_up_and_shutdown_waits_for_it() {
    use tokio::io::AsyncWriteExt as _;
    let _serial = role_lock().await;
    let admin = start("hangup", "mesa_monitor", "mesa_admin").await;
    // CREATE ROLE waits while pg_authid is locked (the collection lock_timeout is 1 s).
    let locker = superuser("postgres").await;
    locker
        .batch_execute("BEGIN; LOCK TABLE pg_catalog.pg_authid IN EXCLUSIVE MODE;")
        .await
        .expect("lock");
    let body = r#"{"name":"hangup_user_1"}"#;
    let raw = format!(
        "POST /api/v1/targets/main/users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        admin.token("create_user"),
        body.len()
    );
    let mut stream = tokio::net::TcpStream::connect(admin.addr)
        .await
        .expect("connect");
    stream.write_all(raw.as_bytes()).await.expect("send");
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(stream); // the client hangs up mid-request
    let Admin { app, audit, .. } = admin;
    let shutdown = tokio::spawn(async move {
        let started = Instant::now();
        app.shutdown(DEFAULT_GRACE_PERIOD)
            .await
            .expect("clean shutdown");
        started.elapsed()
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(!shutdown.is_finished(), "shutdown waits for the mutation");
    let released = Instant::now();
    locker.batch_execute("COMMIT").await.expect("unlock");
    shutdown.await.expect("shutdown task");
    assert!(released.elapsed() < DEFAULT_GRACE_PERIOD);
    assert!(
        role_exists("hangup_user_1").await,
        "the mutation completed without its client"
    );
    let records = std::fs::read_to_string(&audit).expect("audit");
    assert!(
        records.contains("\"event\":\"outcome\"") && records.contains("hangup_user_1"),
        "{records}"
    );
}
