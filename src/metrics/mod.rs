//! Metrics: database facts encoded from snapshots, and the exporter's own instruments.
//!
//! `/metrics` is the targets' families, copied from each target's encoding (made once per
//! collection, when the scheduler stores the snapshot), followed by one long-lived registry of
//! the exporter's counters and gauges (mutable instruments, touched only by the scheduler,
//! the reloader and the admin API). `/probe` is one target's encoding with the `server` label
//! taken out. Output is OpenMetrics text.

pub mod families;
pub mod format;
mod lines;
pub mod scrape;
mod store;

use std::sync::Arc;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::collectors::HEALTH;
use crate::gateway::FailureReason;
use crate::snapshot::TargetSnapshot;
use scrape::{Scrape, ScrapeCache};
pub use store::SnapshotStore;

/// The OpenMetrics content type of `/metrics` and `/probe`.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Reasons a collection can fail with; their counters start at zero for every target so
/// `increase()` sees the first failure.
pub const COLLECT_REASONS: [FailureReason; 7] = [
    FailureReason::Unreachable,
    FailureReason::Timeout,
    FailureReason::AuthFailed,
    FailureReason::TooManyConnections,
    FailureReason::PermissionDenied,
    FailureReason::Tls,
    FailureReason::QueryFailed,
];

type Labels = Vec<(&'static str, String)>;

/// Upper bounds of `mesa_collect_start_delay_seconds`'s buckets.
pub const START_DELAY_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// The process' own resources, read from `/proc/self` when `/metrics` is scraped (what a
/// leak would show first).
#[derive(Debug, Default)]
struct ProcessGauges {
    open_fds: Gauge,
    resident_bytes: Gauge,
    alive_tasks: Gauge,
}

impl ProcessGauges {
    fn refresh(&self) {
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            self.open_fds
                .set(i64::try_from(dir.count()).unwrap_or(i64::MAX));
        }
        // statm's second field: resident pages.
        if let Some(pages) = std::fs::read_to_string("/proc/self/statm")
            .ok()
            .and_then(|s| s.split_whitespace().nth(1)?.parse::<i64>().ok())
        {
            // Every Linux Mesa runs on uses 4 KiB pages on x86_64 and aarch64 by default.
            self.resident_bytes.set(pages.saturating_mul(4096));
        }
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let tasks = handle.metrics().num_alive_tasks();
            self.alive_tasks
                .set(i64::try_from(tasks).unwrap_or(i64::MAX));
        }
    }
}

/// The exporter's own instruments.
#[derive(Debug)]
pub struct ExporterMetrics {
    failures: Family<Labels, Counter>,
    skipped: Family<Labels, Counter>,
    reload_ok: Gauge,
    process: ProcessGauges,
    admin_requests: Family<Labels, Counter>,
    reaped: Family<Labels, Counter>,
    start_delay: Histogram,
    /// Collector names outside the catalogues that failed (users' queries), so a target that
    /// leaves the config takes their failure series along.
    others: std::sync::Mutex<std::collections::BTreeSet<String>>,
}

impl Default for ExporterMetrics {
    fn default() -> Self {
        Self {
            failures: Family::default(),
            skipped: Family::default(),
            reload_ok: Gauge::default(),
            process: ProcessGauges::default(),
            admin_requests: Family::default(),
            reaped: Family::default(),
            start_delay: Histogram::new(START_DELAY_BUCKETS),
            others: std::sync::Mutex::default(),
        }
    }
}

impl ExporterMetrics {
    /// Creates a target's series at zero: every reason the core (`health`) can fail with.
    /// A collector's own failure counters appear with its first failure
    /// (`mesa_collector_success` is the signal to alert on).
    pub fn init_target(&self, target: &str) {
        for reason in COLLECT_REASONS {
            let _created = self
                .failures
                .get_or_create(&failure_labels(target, reason, HEALTH));
        }
        let _created = self
            .skipped
            .get_or_create(&vec![("server", target.to_owned())]);
    }

    /// Drops a target's series (it left the config).
    pub fn forget_target(&self, target: &str) {
        let others: Vec<String> = self
            .others
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect();
        for reason in FailureReason::ALL {
            for collector in crate::collectors::names(None)
                .into_iter()
                .chain([crate::visits::VISIT])
                .chain(others.iter().map(String::as_str))
            {
                self.failures
                    .remove(&failure_labels(target, reason, collector));
            }
        }
        self.skipped.remove(&vec![("server", target.to_owned())]);
    }

    /// Counts a failure: of the whole collection (`collector` is `health`) or of one
    /// collector.
    pub fn collect_failed(&self, target: &str, reason: FailureReason, collector: &str) {
        if collector != crate::visits::VISIT && !crate::collectors::names(None).contains(&collector)
        {
            self.others
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(collector.to_owned());
        }
        self.failures
            .get_or_create(&failure_labels(target, reason, collector))
            .inc();
    }

    /// Counts a tick skipped because the previous collection still ran.
    pub fn collect_skipped(&self, target: &str) {
        self.skipped
            .get_or_create(&vec![("server", target.to_owned())])
            .inc();
    }

    /// Records how late a collection started after its scheduled tick (the runtime's lag:
    /// a busy or starved process shows here first).
    pub fn collect_started(&self, delay: std::time::Duration) {
        self.start_delay.observe(delay.as_secs_f64());
    }

    /// A target's skipped-tick count.
    pub fn skipped(&self, target: &str) -> u64 {
        self.skipped
            .get_or_create(&vec![("server", target.to_owned())])
            .get()
    }

    /// A target's failure count for `reason` and `collector`.
    pub fn failures(&self, target: &str, reason: FailureReason, collector: &str) -> u64 {
        self.failures
            .get_or_create(&failure_labels(target, reason, collector))
            .get()
    }

    /// Records whether the last config reload succeeded.
    pub fn set_reload_ok(&self, ok: bool) {
        self.reload_ok.set(i64::from(ok));
    }

    /// Counts reaper steps on `server` (`disabled`, `terminated` per session, `dropped`,
    /// `failed`).
    pub fn reaped(&self, server: &str, action: &str, n: u64) {
        self.reaped
            .get_or_create(&vec![
                ("server", server.to_owned()),
                ("action", action.to_owned()),
            ])
            .inc_by(n);
    }

    /// Counts an admin API request.
    pub fn admin_request(&self, action: &str, outcome: &str) {
        self.admin_requests
            .get_or_create(&vec![
                ("action", action.to_owned()),
                ("outcome", outcome.to_owned()),
            ])
            .inc();
    }
}

fn failure_labels(target: &str, reason: FailureReason, collector: &str) -> Labels {
    vec![
        ("server", target.to_owned()),
        ("reason", reason.as_str().to_owned()),
        ("collector", collector.to_owned()),
    ]
}

/// The `/metrics` registry.
#[derive(Debug)]
pub struct Metrics {
    /// The exporter's own instruments.
    registry: Registry,
    exporter: Arc<ExporterMetrics>,
    /// Each target's snapshot and its encoding.
    store: Arc<SnapshotStore>,
    /// The targets' part, merged (and gzipped) once per change.
    scrapes: ScrapeCache,
}

impl Metrics {
    /// A registry over `store` with fresh exporter instruments.
    pub fn new(store: Arc<SnapshotStore>) -> Self {
        let exporter = Arc::new(ExporterMetrics::default());
        exporter.set_reload_ok(true);
        let mut registry = Registry::default();
        registry.register(
            "mesa_collect_failures",
            "Failures by reason and collector: collector=\"health\" is a failed collection (pg_up 0), any other a collector that failed alone",
            exporter.failures.clone(),
        );
        registry.register(
            "mesa_collect_skipped",
            "Collection ticks skipped because the previous collection of the target still ran",
            exporter.skipped.clone(),
        );
        let build = Family::<Labels, Gauge>::default();
        build
            .get_or_create(&vec![("version", crate::VERSION.to_owned())])
            .set(1);
        registry.register(
            "mesa_build_info",
            "Mesa's version; the value is always 1",
            build,
        );
        registry.register(
            "mesa_config_last_reload_successful",
            "1 if the last configuration reload succeeded (or none was attempted), else 0",
            exporter.reload_ok.clone(),
        );
        registry.register(
            "mesa_collect_start_delay_seconds",
            "How late collections started after their scheduled tick, in seconds (all targets); the tail says whether Mesa keeps up with its schedule",
            exporter.start_delay.clone(),
        );
        registry.register(
            "process_open_fds",
            "Open file descriptors of the Mesa process",
            exporter.process.open_fds.clone(),
        );
        registry.register(
            "process_resident_memory_bytes",
            "Resident memory of the Mesa process, in bytes",
            exporter.process.resident_bytes.clone(),
        );
        registry.register(
            "mesa_runtime_alive_tasks",
            "Tasks alive in Mesa's async runtime (one per target, plus listeners and requests in flight)",
            exporter.process.alive_tasks.clone(),
        );
        registry.register(
            "mesa_admin_requests",
            "Admin API requests by action and outcome",
            exporter.admin_requests.clone(),
        );
        registry.register(
            "mesa_admin_reaped",
            "Reaper steps on expired Mesa-managed roles, by server and action (disabled, terminated: per session, dropped, failed)",
            exporter.reaped.clone(),
        );
        Self {
            registry,
            exporter,
            store,
            scrapes: ScrapeCache::default(),
        }
    }

    /// The exporter's instruments.
    pub fn exporter(&self) -> &Arc<ExporterMetrics> {
        &self.exporter
    }

    /// One `/metrics` response: the targets' part (merged once per change of any target's
    /// encoding, shared between scrapes), then the exporter's own instruments, encoded now.
    pub fn scrape(&self) -> Scrape {
        let targets = self.store.encodings();
        self.exporter.process.refresh();
        let mut tail = String::with_capacity(16 * 1024);
        // Writing to a String cannot fail; a collector error would be a bug in this module.
        if let Err(e) = encode(&mut tail, &self.registry) {
            tracing::error!(error = %e, "encoding /metrics failed");
        }
        self.scrapes.scrape(targets, tail)
    }

    /// `/probe` of `target` (its families without the `server` label), or `None` before its
    /// first collection.
    pub fn probe(&self, target: &str) -> Option<String> {
        self.store.probe(target)
    }

    /// `/metrics` as one string.
    pub fn render(&self) -> String {
        self.scrape().text()
    }
}

/// Encodes the families of `snapshots` alone, from scratch (golden tests; `/probe` is served
/// from the per-target encodings, [`Metrics::probe`]).
pub fn render_snapshots(snapshots: Vec<Arc<TargetSnapshot>>, server_label: bool) -> String {
    families::render(&snapshots, server_label)
}
