//! When to visit each database of a target: [`VisitPlan`], driven by the target's loop in
//! `scheduler`.
//!
//! Each visited database is read once per `databases.interval`, one at a time, and visits
//! are spread over that interval: two visits of a target start at least `interval / n` apart
//! (n databases), so 200 databases never mean 200 logins in one second. A database that
//! discovery adds is due at once (in its turn); one it drops is forgotten.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use crate::collectors::Visit;

/// The label `mesa_collect_failures_total` counts a whole visit's failure under (no
/// connection to the database, no snapshot); a collector that fails in a visit is counted
/// under its own name.
pub const VISIT: &str = "visit";

/// One target's visits: when each database is due, and what its visits said.
#[derive(Debug)]
pub struct VisitPlan {
    interval: Duration,
    due: BTreeMap<String, Instant>,
    last_start: Option<Instant>,
    last_success: HashMap<String, SystemTime>,
    failing: BTreeSet<String>,
}

impl VisitPlan {
    /// A plan that reads each database every `interval`.
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            due: BTreeMap::new(),
            last_start: None,
            last_success: HashMap::new(),
            failing: BTreeSet::new(),
        }
    }

    /// The databases to visit from now on: new ones are due `now`, the others keep their
    /// turn, the rest are forgotten.
    pub fn set(&mut self, visited: &[String], now: Instant) {
        self.due.retain(|d, _| visited.contains(d));
        self.last_success.retain(|d, _| visited.contains(d));
        self.failing.retain(|d| visited.contains(d));
        for d in visited {
            self.due.entry(d.clone()).or_insert(now);
        }
    }

    /// Whether `datname` is still to be visited.
    pub fn contains(&self, datname: &str) -> bool {
        self.due.contains_key(datname)
    }

    /// The least time between two visits' starts.
    fn step(&self) -> Duration {
        let n = u32::try_from(self.due.len()).unwrap_or(u32::MAX).max(1);
        self.interval / n
    }

    /// The next database to visit and when: the one due first (by name among equals), not
    /// before one step after the last visit started.
    pub fn next(&self) -> Option<(String, Instant)> {
        let (datname, due) = self
            .due
            .iter()
            .min_by(|a, b| a.1.cmp(b.1).then_with(|| a.0.cmp(b.0)))?;
        let at = match self.last_start {
            Some(last) => (*due).max(last + self.step()),
            None => *due,
        };
        Some((datname.clone(), at))
    }

    /// A visit to `datname` starts `now`: it is next due one interval later.
    pub fn started(&mut self, datname: &str, now: Instant) {
        if let Some(due) = self.due.get_mut(datname) {
            *due = now + self.interval;
        }
        self.last_start = Some(now);
    }

    /// Records a finished visit: the time of the database's last successful one, and whether
    /// its failing state changed (`Some(true)`: it started failing, `Some(false)`: it
    /// recovered), for the log.
    pub fn finished(&mut self, visit: &Visit) -> (Option<SystemTime>, Option<bool>) {
        let changed = if visit.up() {
            self.last_success
                .insert(visit.datname.clone(), visit.finished_at);
            self.failing.remove(&visit.datname).then_some(false)
        } else {
            self.failing.insert(visit.datname.clone()).then_some(true)
        };
        (self.last_success.get(&visit.datname).copied(), changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::FailureReason;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn visits_are_spread_over_the_interval() {
        let now = Instant::now();
        let mut plan = VisitPlan::new(Duration::from_secs(60));
        plan.set(&names(&["a", "b", "c", "d"]), now);
        let mut at = now;
        let mut order = Vec::new();
        for _ in 0..4 {
            let (db, when) = plan.next().expect("due");
            assert!(when >= at, "visits never go back in time");
            if !order.is_empty() {
                assert_eq!(when - at, Duration::from_secs(15), "one step apart");
            }
            plan.started(&db, when);
            order.push(db);
            at = when;
        }
        assert_eq!(order, names(&["a", "b", "c", "d"]));
        // Each is next due one interval after its start.
        let (db, when) = plan.next().expect("due");
        assert_eq!((db.as_str(), when), ("a", now + Duration::from_secs(60)));
    }

    #[test]
    fn a_new_database_is_due_in_its_turn_and_a_dropped_one_is_forgotten() {
        let now = Instant::now();
        let mut plan = VisitPlan::new(Duration::from_secs(60));
        plan.set(&names(&["a", "b"]), now);
        plan.started("a", now);
        plan.started("b", now + Duration::from_secs(30));
        plan.set(&names(&["b", "new"]), now + Duration::from_secs(31));
        assert!(!plan.contains("a"));
        let (db, when) = plan.next().expect("due");
        assert_eq!(db, "new");
        // Two databases: a step of 30 s after b started.
        assert_eq!(when, now + Duration::from_secs(60));
    }

    #[test]
    fn failing_and_recovering_are_said_once() {
        let mut plan = VisitPlan::new(Duration::from_secs(60));
        plan.set(&names(&["a"]), Instant::now());
        let visit = |ok: bool| Visit {
            datname: "a".to_owned(),
            finished_at: SystemTime::UNIX_EPOCH + Duration::from_secs(7),
            duration: Duration::ZERO,
            result: if ok {
                Ok(Vec::new())
            } else {
                Err(FailureReason::PermissionDenied)
            },
        };
        assert_eq!(plan.finished(&visit(false)), (None, Some(true)));
        assert_eq!(plan.finished(&visit(false)), (None, None));
        let t = Some(SystemTime::UNIX_EPOCH + Duration::from_secs(7));
        assert_eq!(plan.finished(&visit(true)), (t, Some(false)));
        assert_eq!(plan.finished(&visit(true)), (t, None));
    }
}
