//! The reaper: PostgreSQL's `VALID UNTIL` only refuses new password logins, so every
//! `admin.reap_interval` Mesa visits each target with admin credentials and, for every
//! Mesa-managed role past its expiry, sets `NOLOGIN`, terminates its sessions, and drops it
//! `admin.drop_after` past the expiry (the gateway's `reap`).
//!
//! Every round writes an audit intent first and acts only if that succeeded (fail closed, as
//! the admin API does); every step is an audit outcome record with actor `mesa:reaper` and is
//! counted in `mesa_admin_reaped_total{server,action}`. A target that is down, or a round that
//! fails, is logged and counted as `failed`, and tried again at the next round.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::gateway::{Administrator, Deadline, ReapStep, Reaped};
use crate::http::admin::audit::{
    self, AuditEvent, AuditLog, AuditOutcome, AuditRecord, AuditSubject,
};
use crate::metrics::ExporterMetrics;
use crate::scheduler::{Registry, TargetHandle};

/// The actor the audit records name.
pub const ACTOR: &str = "mesa:reaper";

/// The shortest time a round may take on one target before it is given up.
const MIN_ROUND_TIMEOUT: Duration = Duration::from_secs(10);

/// What the reaper needs.
#[derive(Debug, Clone)]
pub struct Reaper {
    /// The targets this replica serves (its shard's).
    pub registry: Registry,
    /// The audit trail; the reaper acts only when a round's intent is recorded.
    pub audit: Arc<AuditLog>,
    /// `mesa_admin_reaped_total`.
    pub metrics: Arc<ExporterMetrics>,
    /// `admin.reap_interval`.
    pub interval: Duration,
    /// `admin.drop_after`.
    pub drop_after: Duration,
}

impl Reaper {
    /// Runs rounds every `interval` until `shutdown`, the first one an interval after start
    /// (a daemon that starts and stops at once, as a config check or a test does, never
    /// reaps).
    pub async fn run(self, shutdown: CancellationToken) {
        let first = tokio::time::Instant::now() + self.interval;
        let mut tick = tokio::time::interval_at(first, self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            for target in self.registry.all() {
                if shutdown.is_cancelled() {
                    return;
                }
                self.round(&target, &shutdown).await;
            }
        }
    }

    /// One round on one target.
    async fn round(&self, target: &TargetHandle, shutdown: &CancellationToken) {
        if target.config.spec.common.admin.is_none() {
            return;
        }
        let server = target.config.name.as_str();
        let Some(gateway) = &target.gateway else {
            return;
        };
        let intent = AuditRecord {
            event: AuditEvent::Intent,
            request_id: audit::request_id(),
            token: ACTOR.to_owned(),
            client: ACTOR.to_owned(),
            target: server.to_owned(),
            action: "reap",
            subject: AuditSubject::Sweep {
                drop_after: humantime::format_duration(self.drop_after).to_string(),
            },
            outcome: None,
            status: None,
            reason: None,
            sqlstate: None,
        };
        if let Err(e) = audit::append(&self.audit, intent.clone()).await {
            tracing::error!(target_name = server, error = %e, "reaper: cannot write the audit intent record; nothing reaped this round");
            self.metrics.reaped(server, ReapStep::Failed.as_str(), 1);
            return;
        }
        let timeout = target.config.collection.timeout.max(MIN_ROUND_TIMEOUT);
        let deadline = Deadline::after(timeout).with_cancel(shutdown.clone());
        let steps = match gateway.reap(self.drop_after, deadline).await {
            Ok(steps) => steps,
            Err(e) => {
                tracing::warn!(target_name = server, error = %e, "reaper: the round failed; trying again at the next one");
                self.metrics.reaped(server, ReapStep::Failed.as_str(), 1);
                let outcome = AuditRecord {
                    reason: Some(e.reason().as_str()),
                    sqlstate: e.sqlstate().map(str::to_owned),
                    ..intent.finished(AuditOutcome::Error)
                };
                self.record(outcome).await;
                return;
            }
        };
        for step in steps {
            self.report(&intent, server, step).await;
        }
    }

    /// Logs, counts and audits one step.
    async fn report(&self, intent: &AuditRecord, server: &str, step: Reaped) {
        let action = step.step.as_str();
        let count = match step.step {
            ReapStep::Terminated => u64::from(step.sessions),
            ReapStep::Disabled | ReapStep::Dropped | ReapStep::Failed => 1,
        };
        self.metrics.reaped(server, action, count);
        match step.step {
            ReapStep::Failed => tracing::warn!(
                target_name = server,
                role = %step.role,
                detail = step.detail.as_deref().unwrap_or(""),
                "reaper: a step on an expired role failed; trying again at the next round"
            ),
            ReapStep::Disabled | ReapStep::Terminated | ReapStep::Dropped => tracing::info!(
                target_name = server,
                role = %step.role,
                step = action,
                sessions = step.sessions,
                "reaper: expired role"
            ),
        }
        let outcome = match step.step {
            ReapStep::Failed => AuditOutcome::Error,
            ReapStep::Disabled | ReapStep::Terminated | ReapStep::Dropped => AuditOutcome::Ok,
        };
        let record = AuditRecord {
            subject: AuditSubject::Reaped {
                role: step.role,
                step: action,
                sessions: step.sessions,
                detail: step.detail,
            },
            ..intent.finished(outcome)
        };
        self.record(record).await;
    }

    async fn record(&self, record: AuditRecord) {
        if let Err(e) = audit::append(&self.audit, record).await {
            // The step happened; it cannot be undone. Say so loudly.
            tracing::error!(error = %e, "reaper: cannot write the audit outcome record");
        }
    }
}
