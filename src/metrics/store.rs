//! The one store: for each target its latest [`TargetSnapshot`] (without its families) and
//! that snapshot's encoding, written together by one call ([`SnapshotStore::put`]).
//!
//! The scheduler puts a snapshot after each attempt; the store encodes it (its families
//! become sample lines once, here, not per scrape), drops the families from the snapshot it
//! keeps, and swaps both in under one lock, so a reader never sees a snapshot without its
//! encoding. A collector that was not due (tiers) serves its earlier result: the snapshot
//! says so, without the families, and the new encoding takes that collector's lines from the
//! target's current one, so no copy of those families is kept anywhere.
//!
//! Beside each target's snapshot, the store keeps one encoded part per visited database
//! ([`SnapshotStore::put_visit`]): visits happen one database at a time, so a visit replaces
//! its database's part alone. A target's parts follow its own encoding in every merge, which
//! groups each family's lines under one header. Scrapes take the encodings (`/metrics` merges
//! them, see `scrape`), `/probe` merges one target's, the admin API and the readiness check
//! take snapshots: all clone `Arc`s under a short lock and work with no lock held, so a slow
//! scrape never delays a collection.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use super::families::EncodedTarget;
use crate::snapshot::TargetSnapshot;

/// A target's stored snapshot and its encoding (with the `server` label).
#[derive(Debug)]
struct Entry {
    snapshot: Arc<TargetSnapshot>,
    encoded: Arc<EncodedTarget>,
}

/// The entries by target name, the database parts by target and database, and a number that
/// changes whenever any of them does.
#[derive(Debug, Default)]
struct Entries {
    by_target: BTreeMap<String, Entry>,
    visits: BTreeMap<String, BTreeMap<String, Arc<EncodedTarget>>>,
    generation: u64,
}

impl Entries {
    /// A target's encoding, then its databases' parts.
    fn parts(&self, target: &str) -> Vec<Arc<EncodedTarget>> {
        let Some(entry) = self.by_target.get(target) else {
            return Vec::new();
        };
        let mut out = vec![entry.encoded.clone()];
        if let Some(visits) = self.visits.get(target) {
            out.extend(visits.values().cloned());
        }
        out
    }
}

/// Latest snapshot and encoding per target, by name.
#[derive(Debug, Default)]
pub struct SnapshotStore {
    inner: RwLock<Entries>,
}

impl SnapshotStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Entries> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Entries> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Encodes `snapshot` and stores it, without its families, with its encoding; returns
    /// the stored snapshot. The only way anything is stored.
    pub fn put(&self, snapshot: TargetSnapshot) -> Arc<TargetSnapshot> {
        // Collectors that serve an earlier result take their lines from the target's
        // current encoding (one task writes a target, so nothing replaces it meanwhile).
        let earlier = self
            .read()
            .by_target
            .get(&snapshot.target)
            .map(|e| e.encoded.clone());
        let full = Arc::new(snapshot);
        let encoded = Arc::new(EncodedTarget::with_earlier(&full, true, earlier.as_deref()));
        // The encoder let go of its reference, so this does not copy.
        let slim = Arc::new(
            Arc::try_unwrap(full)
                .unwrap_or_else(|shared| (*shared).clone())
                .without_families(),
        );
        let mut entries = self.write();
        entries.by_target.insert(
            slim.target.clone(),
            Entry {
                snapshot: slim.clone(),
                encoded,
            },
        );
        entries.generation += 1;
        slim
    }

    /// Removes a target that left the config, with its databases' parts.
    pub fn remove(&self, target: &str) {
        let mut entries = self.write();
        let visited = entries.visits.remove(target).is_some();
        if entries.by_target.remove(target).is_some() || visited {
            entries.generation += 1;
        }
    }

    /// Stores the encoded visit of one of `target`'s databases (see
    /// `EncodedTarget::for_visit`), replacing that database's earlier part.
    pub fn put_visit(&self, target: &str, datname: &str, part: EncodedTarget) {
        let mut entries = self.write();
        entries
            .visits
            .entry(target.to_owned())
            .or_default()
            .insert(datname.to_owned(), Arc::new(part));
        entries.generation += 1;
    }

    /// Drops the parts of `target`'s databases that `keep` refuses (no longer visited, or
    /// all of them when the target is down).
    pub fn retain_visits(&self, target: &str, keep: impl Fn(&str) -> bool) {
        let mut entries = self.write();
        let Some(visits) = entries.visits.get_mut(target) else {
            return;
        };
        let before = visits.len();
        visits.retain(|datname, _| keep(datname));
        if visits.len() != before {
            entries.generation += 1;
        }
    }

    /// One target's snapshot.
    pub fn get(&self, target: &str) -> Option<Arc<TargetSnapshot>> {
        self.read()
            .by_target
            .get(target)
            .map(|e| e.snapshot.clone())
    }

    /// Every snapshot, ordered by target name.
    pub fn all(&self) -> Vec<Arc<TargetSnapshot>> {
        self.read()
            .by_target
            .values()
            .map(|e| e.snapshot.clone())
            .collect()
    }

    /// Every target's encoding followed by its databases' parts, ordered by target name, and
    /// the generation they belong to (equal generations mean equal encodings).
    pub fn encodings(&self) -> (u64, Vec<Arc<EncodedTarget>>) {
        let entries = self.read();
        let out = entries
            .by_target
            .keys()
            .flat_map(|target| entries.parts(target))
            .collect();
        (entries.generation, out)
    }

    /// `/probe` of `target`: its encoding and its databases' parts without the `server`
    /// label, or `None` before its first collection.
    pub fn probe(&self, target: &str) -> Option<String> {
        let parts = self.read().parts(target);
        if parts.is_empty() {
            return None;
        }
        Some(super::families::probe_text(&parts, target))
    }
}
