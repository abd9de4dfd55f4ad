//! Inspector and health against the real server: databases, tables, columns, server health.

use std::time::{Duration, Instant, UNIX_EPOCH};

use mesa::gateway::{Administrator, Deadline, FailureReason, Inspector, TableKind};

use crate::support::*;

const D: Duration = Duration::from_secs(10);

#[tokio::test]
async fn health_matches_the_server() {
    let su = superuser("postgres").await;
    let g = gateway(&target("health", "mesa_monitor"));
    let h = g.server_health(Deadline::after(D)).await.expect("health");
    let show = |name: &'static str| {
        let su = &su;
        async move {
            let v: String = su.query_one(&format!("SHOW {name}"), &[]).await.expect("show").get(0);
            v.parse::<u32>().expect("number")
        }
    };
    assert_eq!(h.max_connections, show("max_connections").await);
    assert_eq!(h.superuser_reserved_connections, show("superuser_reserved_connections").await);
    let row = su
        .query_one(
            "SELECT version(), extract(epoch FROM pg_postmaster_start_time())::float8, current_setting('server_version_num')::int",
            &[],
        )
        .await
        .expect("facts");
    assert_eq!(h.version, row.get::<_, String>(0));
    let started: f64 = row.get(1);
    let ours = h.started_at.duration_since(UNIX_EPOCH).expect("after 1970").as_secs_f64();
    assert!((ours - started).abs() < 0.001, "start time {ours} vs {started}");
    let num: i32 = row.get(2);
    assert_eq!(h.short_version, format!("{}.{}.0", num / 10000, num % 10000));
    assert!(h.uptime > Duration::ZERO);
}

#[tokio::test]
async fn unreachable_target_fails_fast_with_reason() {
    let mut t = target("closed", "mesa_monitor");
    t.port = closed_port();
    let started = Instant::now();
    let err = gateway(&t).server_health(Deadline::after(D)).await.expect_err("nothing listens");
    assert_eq!(err.reason(), FailureReason::Unreachable, "{err}");
    assert!(started.elapsed() < t.collection.connect_timeout + Duration::from_secs(1));
}
