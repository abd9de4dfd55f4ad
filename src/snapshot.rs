//! The snapshot store: the latest collection result of every target.
//!
//! The scheduler replaces a target's snapshot after each attempt; the metrics listener reads
//! them. Snapshots are immutable and shared as `Arc`s: a scrape clones the pointers under a
//! short read lock and encodes with no lock held, so a slow scrape never delays a collection
//! and a collection never waits on an encoder.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
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

/// Latest snapshot per target, by name.
#[derive(Debug, Default)]
pub struct SnapshotStore {
    inner: RwLock<BTreeMap<String, Arc<TargetSnapshot>>>,
}

impl SnapshotStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the target's snapshot; returns the stored one.
    pub fn put(&self, snapshot: TargetSnapshot) -> Arc<TargetSnapshot> {
        let snapshot = Arc::new(snapshot);
        let mut map = self
            .inner
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        map.insert(snapshot.target.clone(), snapshot.clone());
        snapshot
    }

    /// Removes a target that left the config.
    pub fn remove(&self, target: &str) {
        let mut map = self
            .inner
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        map.remove(target);
    }

    /// One target's snapshot.
    pub fn get(&self, target: &str) -> Option<Arc<TargetSnapshot>> {
        let map = self
            .inner
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        map.get(target).cloned()
    }

    /// Every snapshot, ordered by target name.
    pub fn all(&self) -> Vec<Arc<TargetSnapshot>> {
        let map = self
            .inner
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        map.values().cloned().collect()
    }
}
