//! The composition root: turns a validated [`Config`] into running work.
//!
//! Until the scheduler lands, the daemon runs one collection of every target concurrently and
//! prints a short human-readable summary. Each target gets its own gateway and the
//! collection deadline from its config; a failing target never holds up another.

use std::fmt::Write as _;
use std::time::Instant;

use crate::config::{Config, TargetConfig};
use crate::gateway::{Collection, Collector, Deadline, Gateway, GatewayError};

/// One target's result of a single collection.
#[derive(Debug)]
pub struct TargetReport {
    /// Target name.
    pub name: String,
    /// `host:port`.
    pub endpoint: String,
    /// How long the collection took.
    pub elapsed: std::time::Duration,
    /// What it returned.
    pub result: Result<Collection, GatewayError>,
}

async fn collect_target(target: &TargetConfig) -> TargetReport {
    let started = Instant::now();
    let endpoint = format!("{}:{}", target.host, target.port);
    let result = match Gateway::for_target(target) {
        Ok(gateway) => {
            gateway
                .collect(Deadline::after(target.collection.timeout))
                .await
        }
        Err(e) => Err(e),
    };
    if let Err(e) = &result {
        tracing::warn!(target_name = %target.name, reason = %e.reason(), error = %e, "collection failed");
    }
    TargetReport {
        name: target.name.clone(),
        endpoint,
        elapsed: started.elapsed(),
        result,
    }
}

/// Collects every target once, concurrently.
pub async fn collect_once(config: &Config) -> Vec<TargetReport> {
    let mut tasks = tokio::task::JoinSet::new();
    for (i, target) in config.targets.iter().cloned().enumerate() {
        tasks.spawn(async move { (i, collect_target(&target).await) });
    }
    let mut reports: Vec<(usize, TargetReport)> = Vec::with_capacity(config.targets.len());
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(report) => reports.push(report),
            Err(e) => tracing::error!(error = %e, "collection task failed"),
        }
    }
    reports.sort_by_key(|(i, _)| *i);
    reports.into_iter().map(|(_, r)| r).collect()
}

/// The human-readable summary of one round.
pub fn summary(reports: &[TargetReport]) -> String {
    let mut out = String::new();
    for r in reports {
        let ms = r.elapsed.as_millis();
        let _ = match &r.result {
            Ok(c) => writeln!(
                out,
                "{:<20} {:<22} UP    PostgreSQL {}  sessions {}/{}  databases {}  ({ms} ms)",
                r.name,
                r.endpoint,
                c.health.short_version,
                c.health.client_sessions,
                c.health.max_connections,
                c.databases.len(),
            ),
            Err(e) => writeln!(
                out,
                "{:<20} {:<22} DOWN  {}: {e}  ({ms} ms)",
                r.name,
                r.endpoint,
                e.reason()
            ),
        };
    }
    out
}

/// Runs Mesa: today, one collection round with a printed summary. Returns whether every
/// target was collected.
pub async fn run(config: Config) -> bool {
    tracing::info!(
        targets = config.targets.len(),
        version = crate::VERSION,
        "collecting every target once"
    );
    let reports = collect_once(&config).await;
    print!("{}", summary(&reports));
    reports.iter().all(|r| r.result.is_ok())
}
