//! Every database of a server: which ones Mesa visits ([`Databases::choose`]), what one visit
//! yields ([`Visit`]), and the size guards that hold across all of them ([`Budget`]).
//!
//! A target's server collection discovers the server's databases (PostgreSQL: `pg_database`,
//! without templates and databases that refuse connections) at every collection. The ones
//! that pass `include`/`exclude`, at most `max` of them (the largest first), are visited: the
//! database-scoped collectors run in each, on a connection of its own, one database at a time
//! and spread over `databases.interval` (the scheduler's `visits`). The same set filters the
//! `datname`-labelled families of the server collection, so a tenant who creates databases
//! cannot add more than `max` databases' worth of series.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use super::Outcome;
use crate::gateway::FailureReason;

/// Default `databases.max`.
pub const DEFAULT_MAX_DATABASES: u32 = 100;
/// Largest `databases.max`.
pub const MAX_DATABASES: u32 = 10_000;
/// `databases.interval` defaults to this many collection intervals.
pub const DEFAULT_INTERVAL_FACTOR: u32 = 4;

/// A regular expression on database names, compared by its source.
#[derive(Debug, Clone)]
pub struct Pattern {
    regex: regex_lite::Regex,
}

impl Pattern {
    /// Compiles `source`; the error says why it is not a pattern.
    pub fn new(source: &str) -> Result<Self, String> {
        regex_lite::Regex::new(source)
            .map(|regex| Self { regex })
            .map_err(|e| e.to_string())
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        self.regex.as_str()
    }

    fn matches(&self, name: &str) -> bool {
        self.regex.is_match(name)
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Pattern {}

impl std::hash::Hash for Pattern {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

/// A target's `databases` settings.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Databases {
    /// Visit every database discovery finds; `false`: only the target's `database`, and the
    /// server-wide families are not filtered.
    pub discover: bool,
    /// A database must match one of these (when there are any) to be visited.
    pub include: Arc<[Pattern]>,
    /// A database that matches one of these is never visited (wins over `include`).
    pub exclude: Arc<[Pattern]>,
    /// How often each visited database is read; `None`: [`DEFAULT_INTERVAL_FACTOR`] collection
    /// intervals.
    pub interval: Option<Duration>,
    /// Most databases visited per target.
    pub max: u32,
}

impl Default for Databases {
    fn default() -> Self {
        Self {
            discover: true,
            include: Arc::from([]),
            exclude: Arc::from([]),
            interval: None,
            max: DEFAULT_MAX_DATABASES,
        }
    }
}

/// The databases a collection chose to visit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chosen {
    /// Their names, in name order.
    pub visited: Vec<String>,
    /// The databases that passed the filters but were over `max`, by name.
    pub left_out: Vec<String>,
}

impl Chosen {
    /// How many passed the filters but were over `max`.
    pub fn omitted(&self) -> u64 {
        self.left_out.len() as u64
    }
}

impl Databases {
    /// How often each visited database is read, for a target collected every `interval`.
    pub fn interval(&self, interval: Duration) -> Duration {
        self.interval
            .unwrap_or(interval * DEFAULT_INTERVAL_FACTOR)
            .max(interval)
    }

    /// Whether `name` passes `include` and `exclude`.
    pub fn admits(&self, name: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|p| p.matches(name)))
            && !self.exclude.iter().any(|p| p.matches(name))
    }

    /// The databases to visit among `found` (every database that accepts connections): those
    /// `admits` passes, at most `max`, the largest by `sizes` (bytes; unknown sizes rank last,
    /// then by name).
    pub fn choose(&self, found: &[String], sizes: &HashMap<String, i64>) -> Chosen {
        let mut visited: Vec<&String> = found.iter().filter(|n| self.admits(n)).collect();
        let max = self.max as usize;
        let mut left_out: Vec<String> = Vec::new();
        if visited.len() > max {
            visited.sort_by(|a, b| {
                let size = |n: &String| sizes.get(n).copied().unwrap_or(-1);
                size(b).cmp(&size(a)).then_with(|| a.cmp(b))
            });
            left_out = visited.split_off(max).into_iter().cloned().collect();
            left_out.sort();
        }
        let mut visited: Vec<String> = visited.into_iter().cloned().collect();
        visited.sort();
        visited.dedup();
        Chosen { visited, left_out }
    }

    /// Whether the `datname`-labelled series of database `name` are exported, after `chosen`:
    /// it passes `include`/`exclude` and was not left out over `max` (templates and databases
    /// that refuse connections are never visited, but their size and wraparound age are
    /// server-wide facts and stay).
    pub fn exports(&self, name: &str, left_out: &std::collections::HashSet<&str>) -> bool {
        name.is_empty() || (self.admits(name) && !left_out.contains(name))
    }
}

/// What one visit to one database yielded.
#[derive(Debug, Clone, PartialEq)]
pub struct Visit {
    /// The database.
    pub datname: String,
    /// When the visit finished.
    pub finished_at: SystemTime,
    /// How long it took.
    pub duration: Duration,
    /// One outcome per database-scoped collector, or why the visit failed as a whole (no
    /// connection, no snapshot).
    pub result: Result<Vec<Outcome>, FailureReason>,
}

impl Visit {
    /// Whether the visit connected and ran.
    pub fn up(&self) -> bool {
        self.result.is_ok()
    }
}

/// One database's candidates of one guarded collector: their sizes, largest first, and how
/// many of them it exports.
#[derive(Debug, Clone, Default)]
struct Share {
    sizes: Vec<i64>,
    kept: usize,
}

/// The size guards of database-scoped collectors (`max_tables`, `max_indexes`), held across
/// every database of a target: the rows exported are the largest over the whole server, and
/// their number never exceeds the guard, even while visits happen one database at a time.
///
/// A visit's quota is the number of its rows among the largest `limit` of all known
/// candidates, capped by what the other databases leave of `limit` right now; so the sum never
/// exceeds it, and each visit moves the split toward the largest over the whole server.
#[derive(Debug, Default)]
pub struct Budget {
    shares: Mutex<HashMap<(&'static str, String), Share>>,
}

impl Budget {
    /// How many of `datname`'s rows of `collector` to export: `sizes` are its candidates'
    /// sizes, largest first (the statement's order). Records the answer.
    pub fn quota(
        &self,
        collector: &'static str,
        datname: &str,
        limit: usize,
        sizes: Vec<i64>,
    ) -> usize {
        let mut shares = self.shares.lock().unwrap_or_else(|p| p.into_inner());
        let mut others_kept = 0usize;
        // (size, database, position in it): one fixed order over the whole server, whoever is
        // visited, so each database's share of the top converges (ties go by database name,
        // then by the statement's own order).
        let mut all: Vec<(i64, &str, usize)> = sizes
            .iter()
            .enumerate()
            .map(|(i, s)| (*s, datname, i))
            .collect();
        for ((c, db), share) in shares.iter() {
            if *c == collector && db != datname {
                others_kept += share.kept;
                all.extend(
                    share
                        .sizes
                        .iter()
                        .enumerate()
                        .map(|(i, s)| (*s, db.as_str(), i)),
                );
            }
        }
        all.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)).then(a.2.cmp(&b.2)));
        let ranked = all
            .iter()
            .take(limit)
            .filter(|(_, db, _)| *db == datname)
            .count();
        let kept = ranked.min(limit.saturating_sub(others_kept));
        shares.insert((collector, datname.to_owned()), Share { sizes, kept });
        kept
    }

    /// Forgets `datname` (it is no longer visited, or its visit failed: it exports nothing).
    pub fn forget(&self, datname: &str) {
        self.shares
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(_, db), _| db != datname);
    }

    /// Forgets every database but those `keep` names.
    pub fn retain(&self, keep: &[String]) {
        self.shares
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(_, db), _| keep.iter().any(|k| k == db));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(include: &[&str], exclude: &[&str], max: u32) -> Databases {
        let compile = |v: &[&str]| -> Arc<[Pattern]> {
            v.iter().map(|s| Pattern::new(s).expect("valid")).collect()
        };
        Databases {
            include: compile(include),
            exclude: compile(exclude),
            max,
            ..Databases::default()
        }
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn exclude_wins_over_include() {
        let d = settings(&["^app_"], &["^app_scratch"], 100);
        let found = names(&["app_a", "app_scratch_1", "postgres", "app_b"]);
        let chosen = d.choose(&found, &HashMap::new());
        assert_eq!(chosen.visited, names(&["app_a", "app_b"]));
        assert_eq!(chosen.omitted(), 0);
    }

    #[test]
    fn over_max_the_largest_are_visited() {
        let d = settings(&[], &[], 2);
        let found = names(&["a", "b", "c", "d"]);
        let sizes: HashMap<String, i64> = [("a", 10), ("b", 40), ("c", 30)]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        let chosen = d.choose(&found, &sizes);
        assert_eq!(chosen.visited, names(&["b", "c"]));
        assert_eq!(chosen.omitted(), 2);
        assert_eq!(chosen.left_out, names(&["a", "d"]));
    }

    #[test]
    fn the_interval_defaults_to_four_collections() {
        let d = Databases::default();
        assert_eq!(d.interval(Duration::from_secs(15)), Duration::from_secs(60));
    }

    #[test]
    fn the_budget_never_exceeds_its_limit_and_moves_to_the_largest() {
        let b = Budget::default();
        // a first: nothing else known, it takes its 3 best of the limit 4.
        assert_eq!(b.quota("t", "a", 4, vec![5, 4, 3]), 3);
        // b has bigger tables, but a holds 3 of 4: b gets 1 now.
        assert_eq!(b.quota("t", "b", 4, vec![50, 40, 30]), 1);
        // a again: the top 4 is 50, 40, 30, 5: a's share is 1.
        assert_eq!(b.quota("t", "a", 4, vec![5, 4, 3]), 1);
        // b again: 3 of the top 4, and a holds 1.
        assert_eq!(b.quota("t", "b", 4, vec![50, 40, 30]), 3);
        // Equal sizes everywhere (small tables in many databases): the top goes by database
        // name and stays put, whichever database is visited; it never drains to nothing.
        let ties = Budget::default();
        for _round in 0..3 {
            for db in ["d1", "d2", "d3"] {
                ties.quota("t", db, 5, vec![1, 1, 1]);
            }
        }
        assert_eq!(ties.quota("t", "d1", 5, vec![1, 1, 1]), 3);
        assert_eq!(ties.quota("t", "d2", 5, vec![1, 1, 1]), 2);
        assert_eq!(ties.quota("t", "d3", 5, vec![1, 1, 1]), 0);
        // Another collector has its own budget.
        assert_eq!(b.quota("i", "a", 4, vec![1, 1, 1, 1, 1]), 4);
        b.forget("b");
        assert_eq!(b.quota("t", "a", 4, vec![5, 4, 3]), 3);
    }
}
