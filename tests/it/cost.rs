//! What a collection costs with the default collectors on the test cluster: series per
//! target, collection duration and Mesa's own CPU per collection. Printed, not asserted
//! (speed belongs to benchmarks); the assertions are about shape: every default collector
//! runs as the least-privilege `pg_monitor` role, and the series count is what dashboards need.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use mesa::collectors::Collect;
use mesa::gateway::Deadline;
use mesa::metrics::render_snapshots;
use mesa::snapshot::TargetSnapshot;

use crate::support::*;

/// CPU time this thread has used, from the scheduler's own accounting (nanoseconds, unlike
/// the clock ticks of `/proc/.../stat`). The test runs on a current-thread runtime, so the
/// collection and its connection are polled on this thread and nothing else is counted.
fn thread_cpu() -> Duration {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat")
        .expect("/proc/thread-self/schedstat");
    let ns: u64 = text
        .split(' ')
        .next()
        .and_then(|f| f.parse().ok())
        .expect("schedstat starts with the run time in ns");
    Duration::from_nanos(ns)
}

#[tokio::test]
async fn cost_of_a_collection_with_the_default_collectors() {
    let t = target("cost", "mesa_monitor");
    let g = gateway(&t);
    // Warm up (first connection, catalog caches).
    g.collect(Deadline::after(Duration::from_secs(5)))
        .await
        .expect("collects");
    const N: u32 = 50;
    let cpu = thread_cpu();
    let wall = Instant::now();
    let mut last = None;
    for _ in 0..N {
        last = Some(
            g.collect(Deadline::after(Duration::from_secs(5)))
                .await
                .expect("collects"),
        );
    }
    let wall = wall.elapsed() / N;
    let cpu = (thread_cpu() - cpu) / N;
    let collection = last.expect("collected");
    let mut per_collector = String::new();
    for o in &collection.outcomes {
        assert!(o.result.is_ok(), "{}: {:?}", o.collector, o.result);
        per_collector.push_str(&format!(
            " {}={:.2}ms",
            o.collector,
            o.duration.as_secs_f64() * 1e3
        ));
    }
    println!("cost: per collector (last collection):{per_collector}");
    let snapshot = Arc::new(TargetSnapshot {
        target: "cost".to_owned(),
        driver: mesa::gateway::Driver::Postgres,
        finished_at: SystemTime::now(),
        duration: wall,
        result: Ok(collection),
        last_success: Some(SystemTime::now()),
    });
    let text = render_snapshots(vec![snapshot], false);
    let series = samples(&text)
        .iter()
        .filter(|s| s.name.starts_with("pg_"))
        .count();
    println!(
        "cost: {series} pg_* series per target; collection {:.2} ms wall, {:.2} ms Mesa CPU (mean of {N})",
        wall.as_secs_f64() * 1e3,
        cpu.as_secs_f64() * 1e3
    );
    assert!(series >= 8, "{text}");
}
