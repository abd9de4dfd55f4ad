//! Sharding targets across replicas (`--shard.index`, `--shard.count`), as kube-state-metrics
//! does: every replica reads the same config, and a stable hash of each target's name decides
//! which one collects it. Each replica serves only its own targets; asked for another's, it
//! answers 421 naming the owner. Nothing coordinates the replicas: Prometheus scrapes them all.

use std::fmt;

/// This replica's place among `count` replicas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    index: u32,
    count: u32,
}

/// Why a shard was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    /// `--shard.count 0`.
    #[error("--shard.count must be at least 1")]
    NoShards,
    /// `index >= count`.
    #[error(
        "--shard.index {index} is out of range: shards are numbered 0 to {last} for --shard.count {count}"
    )]
    OutOfRange {
        /// The index given.
        index: u32,
        /// The count given.
        count: u32,
        /// `count - 1`.
        last: u32,
    },
}

impl Default for Shard {
    fn default() -> Self {
        Self::SINGLE
    }
}

impl Shard {
    /// One replica collecting every target.
    pub const SINGLE: Self = Self { index: 0, count: 1 };

    /// Shard `index` of `count`.
    pub fn new(index: u32, count: u32) -> Result<Self, ShardError> {
        if count == 0 {
            return Err(ShardError::NoShards);
        }
        if index >= count {
            return Err(ShardError::OutOfRange {
                index,
                count,
                last: count - 1,
            });
        }
        Ok(Self { index, count })
    }

    /// This replica's index.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// How many replicas share the targets.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The shard that collects `target`: FNV-1a (64 bit) of its name, modulo the count. The
    /// function is part of Mesa's contract: it must not change between versions, or a rolling
    /// upgrade would collect some targets twice and others not at all.
    pub fn owner_of(&self, target: &str) -> u32 {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in target.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        // `count` is at least 1 and fits u32, so the remainder does too.
        u32::try_from(hash % u64::from(self.count)).unwrap_or(0)
    }

    /// Whether this replica collects `target`.
    pub fn owns(&self, target: &str) -> bool {
        self.owner_of(target) == self.index
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "shard {} of {}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_stable_and_spreads_targets() {
        // Pinned: changing the function would reshuffle every sharded fleet.
        let s = Shard::new(0, 3).expect("valid");
        assert_eq!(s.owner_of(""), (0xcbf2_9ce4_8422_2325_u64 % 3) as u32);
        let owners: Vec<u32> = ["orders-primary", "billing", "reports", "t-0", "t-1"]
            .iter()
            .map(|t| s.owner_of(t))
            .collect();
        // Checked against an independent FNV-1a implementation.
        assert_eq!(owners, [2, 1, 0, 0, 1]);
        let mut per_shard = [0u32; 3];
        for i in 0..300 {
            per_shard[s.owner_of(&format!("target-{i}")) as usize] += 1;
        }
        assert!(per_shard.iter().all(|&n| n > 70), "{per_shard:?}");
    }

    #[test]
    fn every_target_has_exactly_one_owner() {
        let shards: Vec<Shard> = (0..4).map(|i| Shard::new(i, 4).expect("valid")).collect();
        for i in 0..100 {
            let name = format!("db-{i}");
            assert_eq!(shards.iter().filter(|s| s.owns(&name)).count(), 1, "{name}");
        }
        assert!(Shard::SINGLE.owns("anything"));
    }

    #[test]
    fn bad_shards_are_refused_with_a_reason() {
        assert_eq!(Shard::new(0, 0), Err(ShardError::NoShards));
        assert_eq!(
            Shard::new(3, 3).expect_err("out of range").to_string(),
            "--shard.index 3 is out of range: shards are numbered 0 to 2 for --shard.count 3"
        );
    }
}
