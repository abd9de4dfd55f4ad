//! The file-descriptor budget: what the configured listeners and targets may need at once,
//! checked against `RLIMIT_NOFILE` at start.
//!
//! Like Go programs (postgres_exporter among them), Mesa raises its soft descriptor limit to
//! the hard limit at start, because the soft default (1024 under systemd) is a relic of
//! `select(2)`, which Mesa does not use. If the budget still does not fit, Mesa says so once,
//! with the numbers, instead of failing collections later with "too many open files".

use crate::config::Config;
use crate::gateway::Driver;

/// Descriptors for everything that is not a listener's connection or a target's connection:
/// stdio, the two listening sockets, the audit file, config and secret reads, DNS lookups,
/// the async runtime's own (epoll, eventfd), and slack.
pub const RESERVED: u64 = 64;

/// What a config may need at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// The metrics listener's cap.
    pub metrics: u64,
    /// The admin listener's cap (0 when it is off).
    pub admin: u64,
    /// Every target's connections (each with the descriptors its driver keeps), plus one each
    /// for a cancel request in flight.
    pub targets: u64,
}

impl Budget {
    /// The budget of `config`.
    pub fn of(config: &Config) -> Self {
        Self {
            metrics: config.web.max_connections as u64,
            admin: if config.admin.enabled() {
                config.admin.max_connections as u64
            } else {
                0
            },
            // Each target's driver says how many connections its gateway opens at once.
            targets: config
                .targets
                .iter()
                .map(|t| per_target(t.spec.driver.driver()))
                .sum(),
        }
    }

    /// Descriptors needed in all.
    pub fn total(&self) -> u64 {
        self.metrics + self.admin + self.targets + RESERVED
    }
}

/// The descriptors one target of `driver` may hold at once: its connections, each with the
/// descriptors its driver keeps, and one for a cancel request in flight.
fn per_target(driver: Driver) -> u64 {
    (driver.max_connections_per_target() * driver.descriptors_per_connection()) as u64 + 1
}

/// Raises the soft limit to the hard limit, and warns if the budget still does not fit.
pub fn ensure(budget: &Budget) {
    let (soft, hard) = match rlimit::Resource::NOFILE.get() {
        Ok(limits) => limits,
        Err(e) => {
            tracing::debug!(error = %e, "cannot read RLIMIT_NOFILE");
            return;
        }
    };
    let mut effective = soft;
    if soft < hard {
        match rlimit::Resource::NOFILE.set(hard, hard) {
            Ok(()) => {
                tracing::debug!(from = soft, to = hard, "raised the soft descriptor limit");
                effective = hard;
            }
            Err(e) => tracing::debug!(error = %e, "cannot raise RLIMIT_NOFILE"),
        }
    }
    if budget.total() > effective {
        tracing::warn!(
            limit = effective,
            needed = budget.total(),
            metrics_connections = budget.metrics,
            admin_connections = budget.admin,
            target_connections = budget.targets,
            "the descriptor limit is below what the listeners' caps and the targets may need at once; raise LimitNOFILE (or ulimit -n) or lower web.max_connections / admin.max_connections"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_budget_fits_systemds_default_with_a_hundred_targets() {
        let targets: String = (0..100)
            .map(|i| format!("  - {{name: t{i}, driver: postgres, host: h, username: u}}\n"))
            .collect();
        let config = crate::config::parse_str(
            &format!("targets:\n{targets}"),
            std::path::Path::new("/"),
            &|_| None,
        )
        .expect("valid");
        let budget = Budget::of(&config);
        assert_eq!(budget.admin, 0, "the admin API is off without tokens");
        assert_eq!(budget.targets, 500);
        assert!(budget.total() <= 1024, "{budget:?}: {}", budget.total());
    }

    #[test]
    fn the_shipped_unit_fits_the_default_caps_and_twenty_thousand_targets() {
        let unit = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/deploy/systemd/mesa.service"
        ))
        .expect("unit file");
        let limit: u64 = unit
            .lines()
            .find_map(|l| l.strip_prefix("LimitNOFILE="))
            .expect("LimitNOFILE is set")
            .parse()
            .expect("a number");
        let budget = Budget {
            metrics: crate::config::DEFAULT_WEB_MAX_CONNECTIONS as u64,
            admin: crate::config::DEFAULT_ADMIN_MAX_CONNECTIONS as u64,
            targets: 20_000 * per_target(Driver::Postgres),
        };
        assert!(budget.total() <= limit, "{} > {limit}", budget.total());
    }
}
