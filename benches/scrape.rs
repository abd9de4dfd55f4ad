//! In-process benchmarks (`cargo bench`): what a collection costs Mesa after the server
//! answered, and what a scrape costs.
//!
//! - `harvest`: one collection's rows turned into families (every collector of the
//!   catalogue, fed the made-up rows of `tests/it/sample.rs`);
//! - `encode_target`: one target's snapshot encoded, as the scheduler does once per
//!   collection;
//! - `scrape_100`: `/metrics` of 100 such targets, plain and gzip, when nothing changed since
//!   the last scrape (a copy of cached chunks) and right after one target's collection (one
//!   merge, and for gzip one compression);
//! - `scram_client_proof`: the client side of one SCRAM-SHA-256 login (4096 rounds of
//!   HMAC-SHA-256) with the crate Mesa's driver uses.
//!
//! The whole-process comparison with postgres_exporter is `cargo xtask bench`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use criterion::{Criterion, criterion_group, criterion_main};
use mesa::collectors::postgres::ALL;
use mesa::metrics::Metrics;
use mesa::metrics::SnapshotStore;
use mesa::metrics::families::EncodedTarget;
use mesa::metrics::format::Format;
use mesa::snapshot::TargetSnapshot;

#[allow(dead_code)]
use mesa_testkit::{sample, scram};

fn snapshot(name: &str) -> TargetSnapshot {
    TargetSnapshot {
        target: name.to_owned(),
        driver: mesa::gateway::Driver::Postgres,
        finished_at: SystemTime::now(),
        duration: Duration::from_millis(20),
        result: Ok(sample::collection()),
        last_success: Some(SystemTime::now()),
    }
}

fn harvest(c: &mut Criterion) {
    let rows: Vec<_> = ALL.iter().map(|def| (def, sample::records(def))).collect();
    c.bench_function("harvest", |b| {
        b.iter(|| {
            for (def, records) in &rows {
                black_box(def.harvest(black_box(records)));
            }
        })
    });
}

fn encode_target(c: &mut Criterion) {
    let one = Arc::new(snapshot("t000"));
    c.bench_function("encode_target", |b| {
        b.iter(|| black_box(EncodedTarget::new(black_box(&one), true)))
    });
}

fn scrape_100(c: &mut Criterion) {
    let store = Arc::new(SnapshotStore::new());
    let metrics = Metrics::new(store.clone());
    for i in 0..100 {
        store.put(snapshot(&format!("t{i:03}")));
    }
    let bytes = |chunks: Vec<bytes::Bytes>| chunks.iter().map(|c| c.len()).sum::<usize>();
    eprintln!(
        "scrape_100: {} bytes plain, {} bytes gzip",
        bytes(metrics.scrape().plain(OM)),
        bytes(metrics.scrape().gzip(OM).expect("gzip"))
    );
    let mut group = c.benchmark_group("scrape_100");
    group.bench_function("plain_unchanged", |b| {
        b.iter(|| black_box(metrics.scrape().plain(OM)))
    });
    group.bench_function("gzip_unchanged", |b| {
        b.iter(|| black_box(metrics.scrape().gzip(OM)))
    });
    let changed = snapshot("t050");
    group.bench_function("plain_after_a_collection", |b| {
        b.iter(|| {
            store.put(changed.clone());
            black_box(metrics.scrape().plain(OM))
        })
    });
    group.bench_function("gzip_after_a_collection", |b| {
        b.iter(|| {
            store.put(changed.clone());
            black_box(metrics.scrape().gzip(OM))
        })
    });
    // The classic text format, derived from the merged OpenMetrics part once per change.
    group.bench_function("classic_unchanged", |b| {
        b.iter(|| black_box(metrics.scrape().plain(Format::Text)))
    });
    group.bench_function("classic_after_a_collection", |b| {
        b.iter(|| {
            store.put(changed.clone());
            black_box(metrics.scrape().plain(Format::Text))
        })
    });
    group.finish();
}

/// What Prometheus asks for.
const OM: Format = Format::OpenMetrics;

fn scram_client_proof(c: &mut Criterion) {
    c.bench_function("scram_client_proof", |b| {
        b.iter(|| {
            black_box(
                scram::client_proof(b"bench-password").expect("a well-formed server-first message"),
            )
        })
    });
}

criterion_group!(
    benches,
    harvest,
    encode_target,
    scrape_100,
    scram_client_proof
);
criterion_main!(benches);
