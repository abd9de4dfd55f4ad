//! [`TargetSnapshot`]: the outcome of a target's latest collection attempt, immutable once
//! made. The scheduler makes one after each attempt and puts it in the one store
//! (`metrics::SnapshotStore`), which encodes it once and keeps it with its encoding.

use std::time::{Duration, SystemTime};

use crate::collectors::Collection;
use crate::gateway::{Driver, FailureReason};

/// The outcome of a target's most recent collection attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetSnapshot {
    /// Target name (the `server` label).
    pub target: String,
    /// Its driver (which names its up and scrape-error families).
    pub driver: Driver,
    /// When the attempt finished.
    pub finished_at: SystemTime,
    /// How long it took.
    pub duration: Duration,
    /// The data, or why there is none. Failed attempts never carry stale data.
    pub result: Result<Collection, FailureReason>,
    /// When the last successful attempt finished, if any.
    pub last_success: Option<SystemTime>,
}

impl TargetSnapshot {
    /// Whether the attempt connected and ran.
    pub fn up(&self) -> bool {
        self.result.is_ok()
    }

    /// The snapshot without the collectors' families (each outcome keeps its collector,
    /// duration, size-guard count and error). Once a snapshot is encoded, its families live
    /// on as text; keeping their label strings too would cost ~140 KiB per target.
    pub fn without_families(mut self) -> Self {
        if let Ok(collection) = &mut self.result {
            for outcome in &mut collection.outcomes {
                if let Ok(harvest) = &mut outcome.result {
                    harvest.families = Vec::new();
                }
            }
        }
        self
    }
}
