//! Tiers: each collector on its own schedule ([`Schedule`]).
//!
//! A collection runs health and every collector that is due; a collector that is not due
//! serves the result it kept from an earlier collection, with the time it was collected
//! (`mesa_collector_last_success_timestamp_seconds`). A kept result older than twice its
//! collector's period is dropped, never served forever; a collector that fails loses its kept
//! result (its families are absent, as before tiers). Only the results of collectors that are
//! not run at every collection are kept, and without their families: a kept result is served
//! as `from_earlier`, and the store takes its lines from the target's current encoding. A
//! failed collection forgets every kept result (`TargetCollector`), since it leaves no lines
//! to take. An on-change collector (settings) is
//! sent to the driver as due but conditional: the driver reads the server's change key in the
//! same round trip as its prepares and runs the collector only if the key moved, so a reload
//! is served by the very collection that sees it.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use super::{Collection, Options, Outcome, Schedule, Selection, catalogue};
use crate::gateway::Driver;

/// A collector's kept result: its outcome without families (served as `from_earlier`; the
/// store has their encoding).
#[derive(Debug, Clone)]
struct Kept {
    outcome: Outcome,
    /// When the collection that produced it started (collections start on ticks, so ages
    /// compare in whole intervals).
    at: Instant,
    /// The server's change key when it was read.
    key: Option<String>,
}

/// What a collection should run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The collectors to run (on-change ones possibly only if the key moved).
    pub due: Selection,
    /// Run the on-change collectors only if the server's change key is not this.
    pub unless_unchanged: Option<String>,
}

/// One target's kept results.
#[derive(Debug, Default)]
pub struct Tiers {
    kept: HashMap<&'static str, Kept>,
}

/// A period shortened by a tenth: collections start on ticks with jitter, so a result one
/// interval old must count as due, not wait a whole interval more.
fn nearly(period: Duration) -> Duration {
    period.mul_f64(0.9)
}

impl Tiers {
    /// The plan of a collection starting `now` with `options`.
    pub fn plan(&self, driver: Driver, options: &Options, now: Instant) -> Plan {
        let mut due = options.selection;
        let mut unless_unchanged = None;
        for entry in catalogue(driver).collectors {
            if !options.selection.runs(driver, entry.name) {
                continue;
            }
            let Some(kept) = self.kept.get(entry.name) else {
                continue;
            };
            let age = now.saturating_duration_since(kept.at);
            match options.intervals.schedule(driver, entry.name) {
                Schedule::Every => {}
                Schedule::Interval(period) => {
                    if age < nearly(period) {
                        // Cannot fail: the name is the catalogue's, and health (the one
                        // collector that cannot be switched off) is always `Every`.
                        let _ = due.set(Some(driver), entry.name, false);
                    }
                }
                Schedule::OnChange { refresh } => {
                    if age < nearly(refresh) && kept.key.is_some() {
                        unless_unchanged = kept.key.clone();
                    }
                }
            }
        }
        Plan {
            due,
            unless_unchanged,
        }
    }

    /// Keeps the fresh results of `collection` (started `now`) and adds the kept results of
    /// the selected collectors that did not run, in catalogue order; drops what is too old,
    /// failed, or no longer selected.
    pub fn merge(
        &mut self,
        driver: Driver,
        options: &Options,
        collection: &mut Collection,
        now: Instant,
    ) {
        for outcome in &collection.outcomes {
            // Only results served between runs are kept: a copy of every collector's families
            // would cost memory and time for nothing.
            let served_later =
                options.intervals.schedule(driver, outcome.collector) != Schedule::Every;
            if let (Ok(harvest), true) = (&outcome.result, served_later) {
                let kept = Outcome {
                    collector: outcome.collector,
                    duration: outcome.duration,
                    result: Ok(super::Harvest {
                        families: Vec::new(),
                        omitted: harvest.omitted,
                    }),
                    collected_at: outcome.collected_at,
                    from_earlier: true,
                };
                self.kept.insert(
                    outcome.collector,
                    Kept {
                        outcome: kept,
                        at: now,
                        key: collection.change_key.clone(),
                    },
                );
            } else {
                self.kept.remove(outcome.collector);
            }
        }
        let ran: Vec<&'static str> = collection.outcomes.iter().map(|o| o.collector).collect();
        self.kept.retain(|name, kept| {
            if !options.selection.runs(driver, name) {
                return false;
            }
            let limit = options
                .intervals
                .schedule(driver, name)
                .period()
                .map(|p| p * 2);
            limit.is_none_or(|limit| now.saturating_duration_since(kept.at) <= limit)
        });
        for (name, kept) in &self.kept {
            if !ran.contains(name) {
                collection.outcomes.push(kept.outcome.clone());
            }
        }
        let order = |name: &str| {
            catalogue(driver)
                .collectors
                .iter()
                .position(|c| c.name == name)
                .unwrap_or(usize::MAX)
        };
        collection.outcomes.sort_by_key(|o| order(o.collector));
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::collectors::{Harvest, Intervals};
    use crate::gateway::FailureReason;

    const PG: Driver = Driver::Postgres;

    fn outcome(name: &'static str, ok: bool) -> Outcome {
        Outcome {
            collector: name,
            duration: Duration::ZERO,
            result: if ok {
                Ok(Harvest {
                    families: Vec::new(),
                    omitted: None,
                })
            } else {
                Err(FailureReason::Timeout)
            },
            collected_at: ok.then(SystemTime::now),
            from_earlier: false,
        }
    }

    /// A collection of `names` (all successful), with `key`.
    fn collection(names: &[&'static str], key: &str) -> Collection {
        Collection {
            server_version: 150_000,
            outcomes: names.iter().map(|n| outcome(n, true)).collect(),
            change_key: Some(key.to_owned()),
            ..Collection::default()
        }
    }

    fn names(c: &Collection) -> Vec<&'static str> {
        c.outcomes.iter().map(|o| o.collector).collect()
    }

    fn options() -> Options {
        let mut o = Options::default();
        let mut intervals = Intervals::default();
        intervals
            .set(Some(PG), "database", Duration::from_secs(60))
            .expect("known");
        o.intervals = intervals;
        o
    }

    #[test]
    fn a_collector_not_due_serves_its_kept_result_until_its_interval() {
        let (o, t0) = (options(), Instant::now());
        let mut tiers = Tiers::default();
        // Nothing kept: everything selected is due.
        assert_eq!(tiers.plan(PG, &o, t0).due, o.selection);
        let mut first = collection(&["health", "database", "settings"], "k1");
        tiers.merge(PG, &o, &mut first, t0);
        // 15 s later: database (60 s) is not due, health is; settings is due on change.
        let t1 = t0 + Duration::from_secs(15);
        let plan = tiers.plan(PG, &o, t1);
        assert!(plan.due.runs(PG, "health"));
        assert!(!plan.due.runs(PG, "database"));
        assert!(plan.due.runs(PG, "settings"));
        assert_eq!(plan.unless_unchanged.as_deref(), Some("k1"));
        // The driver ran health only (the key had not moved): the kept results are served,
        // in catalogue order, with their first collection's time.
        let mut second = collection(&["health"], "k1");
        tiers.merge(PG, &o, &mut second, t1);
        assert_eq!(names(&second), ["health", "database", "settings"]);
        assert_eq!(
            second.outcome("database").map(|d| d.collected_at),
            first.outcome("database").map(|d| d.collected_at)
        );
        // One interval on (less the jitter allowance), database is due again.
        let t2 = t0 + Duration::from_secs(55);
        assert!(tiers.plan(PG, &o, t2).due.runs(PG, "database"));
    }

    #[test]
    fn a_kept_result_past_twice_its_interval_is_dropped() {
        let (o, t0) = (options(), Instant::now());
        let mut tiers = Tiers::default();
        tiers.merge(PG, &o, &mut collection(&["health", "database"], "k"), t0);
        // Collections that did not run database (it failed to be planned, or was skipped):
        // within twice its interval it is served, past that it is gone.
        let mut within = collection(&["health"], "k");
        tiers.merge(PG, &o, &mut within, t0 + Duration::from_secs(120));
        assert_eq!(names(&within), ["health", "database"]);
        let mut past = collection(&["health"], "k");
        tiers.merge(PG, &o, &mut past, t0 + Duration::from_secs(121));
        assert_eq!(names(&past), ["health"]);
        assert!(
            tiers
                .plan(PG, &o, t0 + Duration::from_secs(122))
                .due
                .runs(PG, "database")
        );
    }

    #[test]
    fn a_failure_drops_the_kept_result_and_on_change_refreshes_after_its_period() {
        let (o, t0) = (options(), Instant::now());
        let mut tiers = Tiers::default();
        tiers.merge(PG, &o, &mut collection(&["health", "settings"], "k"), t0);
        let mut failed = Collection {
            outcomes: vec![outcome("health", true), outcome("settings", false)],
            ..collection(&[], "k")
        };
        tiers.merge(PG, &o, &mut failed, t0 + Duration::from_secs(15));
        assert_eq!(
            failed.outcome("settings").map(|s| s.result.is_err()),
            Some(true),
            "the failure is served, not the old result"
        );
        let plan = tiers.plan(PG, &o, t0 + Duration::from_secs(30));
        assert_eq!(
            plan.unless_unchanged, None,
            "nothing kept: runs unconditionally"
        );
        // Kept for under an hour: conditional; past its refresh: unconditional.
        tiers.merge(PG, &o, &mut collection(&["health", "settings"], "k2"), t0);
        assert_eq!(
            tiers
                .plan(PG, &o, t0 + Duration::from_secs(3000))
                .unless_unchanged
                .as_deref(),
            Some("k2")
        );
        assert_eq!(
            tiers
                .plan(PG, &o, t0 + Duration::from_secs(3300))
                .unless_unchanged,
            None
        );
    }
}
