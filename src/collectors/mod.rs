//! Collectors: one small module per signal, each owning its SQL, its rows and the metric
//! families it yields.
//!
//! A scheduled collection opens one connection to the target and runs every enabled collector
//! on it, pipelined, in one read-only snapshot transaction, under one deadline. The core
//! [`HEALTH`] collector decides `pg_up`: if it fails, the collection fails. Any other collector
//! fails alone (a revoked privilege, a timeout, a view missing on an older server): its families
//! are dropped, its [`Outcome`] says why, and the rest keep flowing.
//!
//! Collectors have a [`Scope`]. Server-scoped ones run in that collection, in the target's
//! `database`. Database-scoped ones (per-table and per-index views) run in each database
//! discovery chose ([`databases`]), on a visit of their own: one connection to that database,
//! the same snapshot discipline, one database at a time (the scheduler spreads visits over
//! `databases.interval`).
//!
//! This file is driver-neutral: the model ([`Family`], [`Collection`], [`Outcome`]), the
//! switches ([`Selection`], [`Options`]) and the [`Collect`] trait the scheduler drives. The
//! PostgreSQL collectors live in [`postgres`], one file each; a MySQL driver would add its own
//! folder beside it.
//!
//! Families are built once per collection, not per scrape: a scrape only encodes them.

pub mod custom;
pub mod databases;
pub mod mysql;
pub mod postgres;
mod target;
mod tiers;

pub use databases::{Budget, Chosen, Databases, Visit};
pub use target::TargetCollector;
pub use tiers::Tiers;

use std::borrow::Cow;
use std::future::Future;
use std::time::{Duration, SystemTime};

use crate::gateway::{Deadline, Driver, FailureReason, GatewayError};

/// The core collector: its failure is the collection's (`pg_up 0`).
pub const HEALTH: &str = "health";

/// Default `max_tables`: how many tables `stat_user_tables` exports, largest first. 19
/// families per table, so the default bounds that collector at about 5 700 series.
pub const DEFAULT_MAX_TABLES: u32 = 300;
/// Default `max_indexes`: how many indexes `stat_user_indexes` and `statio_user_indexes`
/// export over all databases of a target, largest first.
pub const DEFAULT_MAX_INDEXES: u32 = 300;
/// Default `max_statements`: how many statements `stat_statements` exports, by total time.
pub const DEFAULT_MAX_STATEMENTS: u32 = 100;

/// A metric type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A value that goes up and down.
    Gauge,
    /// A monotonic count (`_total` on the wire).
    Counter,
}

/// A sample value: integers stay exact on the wire.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
}

/// One series of a family: its labels (without `server`) and value.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Label pairs, in order.
    pub labels: Vec<(&'static str, String)>,
    /// The value.
    pub value: Value,
}

/// A metric family as one collector yields it for one target.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    /// Name (without `_total` for counters; the encoder appends it).
    pub name: Cow<'static, str>,
    /// HELP text.
    pub help: Cow<'static, str>,
    /// Type.
    pub kind: Kind,
    /// Its series.
    pub series: Vec<Series>,
}

impl Family {
    /// An empty family.
    pub fn new(
        name: impl Into<Cow<'static, str>>,
        help: impl Into<Cow<'static, str>>,
        kind: Kind,
    ) -> Self {
        Self {
            name: name.into(),
            help: help.into(),
            kind,
            series: Vec::new(),
        }
    }

    /// Adds a series.
    pub fn push(&mut self, labels: Vec<(&'static str, String)>, value: Value) {
        self.series.push(Series { labels, value });
    }
}

/// What one collector yielded.
#[derive(Debug, Clone, PartialEq)]
pub struct Harvest {
    /// Its families (those with no series are kept: the encoder skips them).
    pub families: Vec<Family>,
    /// Rows a size guard left out (`max_tables`, `max_statements`); `None` for collectors
    /// without a guard.
    pub omitted: Option<u64>,
}

/// One collector's result in one collection.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The collector's name (the `collector` label).
    pub collector: &'static str,
    /// Server time for its statement plus decoding (statements are pipelined, so this is the
    /// time from the previous statement's answer to this one's).
    pub duration: Duration,
    /// Its families, or why there are none.
    pub result: Result<Harvest, FailureReason>,
    /// When the collection that produced a successful result finished (a collector that is
    /// not due serves the result of an earlier collection); `None` for a failure.
    pub collected_at: Option<SystemTime>,
    /// The result of an earlier collection, served again because the collector was not due:
    /// its families are not here (the store reuses their encoding from that collection).
    pub from_earlier: bool,
}

/// Everything one successful collection gathered (the core health statement ran).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Collection {
    /// `server_version_num`, e.g. 150018.
    pub server_version: u32,
    /// One outcome per collector that ran or served a kept result, in catalogue order
    /// (health first).
    pub outcomes: Vec<Outcome>,
    /// What the server says changes when its configuration does (PostgreSQL: the load time
    /// of its configuration files and the postmaster's start), when it was read: the key of
    /// the [`Schedule::OnChange`] collectors' results.
    pub change_key: Option<String>,
    /// Every database of the server that accepts connections, when discovery read them
    /// (`None`: discovery is off or its statement failed).
    pub databases: Option<Vec<String>>,
    /// The databases to visit, chosen after the collection (`TargetCollector`); `None`
    /// until then.
    pub visited: Option<Chosen>,
}

impl Collection {
    /// The outcome of `collector`, if it ran.
    pub fn outcome(&self, collector: &str) -> Option<&Outcome> {
        self.outcomes.iter().find(|o| o.collector == collector)
    }
}

/// What the neutral layers know of one driver's collectors: their names and defaults, and the
/// names of the two families Mesa derives for every target of that driver.
#[derive(Debug)]
pub struct Catalogue {
    /// Its collectors, health first, in run order.
    pub collectors: &'static [Entry],
    /// The family that says whether the last collection ran (`pg_up`).
    pub up: &'static str,
    /// The family that says whether anything in it failed (`pg_exporter_last_scrape_error`).
    pub last_scrape_error: &'static str,
}

/// One collector as the neutral layers see it.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    /// Its name (the config key and the `collector` label).
    pub name: &'static str,
    /// Whether it runs when the config does not say.
    pub enabled_by_default: bool,
    /// When it runs when the config does not say.
    pub schedule: Schedule,
    /// Where it runs.
    pub scope: Scope,
}

/// Where a collector runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Once per collection, in the target's `database` (server-wide views).
    Server,
    /// In each visited database, on a visit of its own (per-database views).
    Database,
}

/// When a collector runs (its tier). Health runs at every collection whatever it says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Schedule {
    /// At every collection.
    Every,
    /// Once its last result is this old; in between, that result is served.
    Interval(Duration),
    /// When the server's configuration changed since its last result (a reload, a restart),
    /// and at least once every `refresh`.
    OnChange {
        /// The longest a result is served without reading it again.
        refresh: Duration,
    },
}

impl Schedule {
    /// How long a result stays current; `None` for [`Schedule::Every`].
    pub fn period(self) -> Option<Duration> {
        match self {
            Self::Every => None,
            Self::Interval(d) | Self::OnChange { refresh: d } => Some(d),
        }
    }

    /// This schedule with the configured `interval`: the period of an interval collector, the
    /// refresh of an on-change one.
    pub fn with_interval(self, interval: Duration) -> Self {
        match self {
            Self::Every | Self::Interval(_) => Self::Interval(interval),
            Self::OnChange { .. } => Self::OnChange { refresh: interval },
        }
    }
}

/// The most collectors one driver's catalogue may have (a [`Selection`] bit and an
/// [`Intervals`] slot each).
pub const MAX_COLLECTORS: usize = 32;

/// Configured intervals (`collectors.<name>.interval`), per driver and collector; a collector
/// without one keeps its catalogue schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Intervals([[Option<Duration>; MAX_COLLECTORS]; Driver::ALL.len()]);

impl Default for Intervals {
    fn default() -> Self {
        Self([[None; MAX_COLLECTORS]; Driver::ALL.len()])
    }
}

impl Intervals {
    /// Sets `name`'s interval for `driver`, or with `None` for every driver that has it.
    /// `Err` for a name no catalogue in scope has, and for `health`, which runs at every
    /// collection.
    pub fn set(
        &mut self,
        driver: Option<Driver>,
        name: &str,
        interval: Duration,
    ) -> Result<(), SelectionError> {
        if name == HEALTH {
            return Err(SelectionError::Required);
        }
        for (d, i) in slots(driver, name)? {
            self.0[d.index()][i] = Some(interval);
        }
        Ok(())
    }

    /// The schedule of `name` on targets of `driver`.
    pub fn schedule(&self, driver: Driver, name: &str) -> Schedule {
        let catalogue = catalogue(driver);
        let Some(i) = catalogue.position(name) else {
            return Schedule::Every;
        };
        if name == HEALTH {
            return Schedule::Every;
        }
        let default = catalogue.collectors[i].schedule;
        match self.0[driver.index()][i] {
            Some(interval) => default.with_interval(interval),
            None => default,
        }
    }
}

/// The catalogue of `driver`.
pub fn catalogue(driver: Driver) -> &'static Catalogue {
    match driver {
        Driver::Postgres => &postgres::CATALOGUE,
        Driver::Mysql => &mysql::CATALOGUE,
    }
}

impl Catalogue {
    fn position(&self, name: &str) -> Option<usize> {
        self.collectors.iter().position(|c| c.name == name)
    }
}

/// The drivers a setting applies to: `driver` (a target's block), or with `None` every driver
/// (the `collection` section shared by all targets).
fn in_scope(driver: Option<Driver>) -> impl Iterator<Item = Driver> {
    Driver::ALL
        .into_iter()
        .filter(move |d| driver.is_none_or(|x| x == *d))
}

/// Where `name` sits in the catalogues in scope, as (driver, position); `Unknown` when no
/// catalogue in scope has it.
fn slots(driver: Option<Driver>, name: &str) -> Result<Vec<(Driver, usize)>, SelectionError> {
    let found: Vec<(Driver, usize)> = in_scope(driver)
        .filter_map(|d| catalogue(d).position(name).map(|i| (d, i)))
        .collect();
    if found.is_empty() {
        Err(SelectionError::Unknown)
    } else {
        Ok(found)
    }
}

/// Which collectors run: for each driver, one bit per entry of its catalogue, in catalogue
/// order. `Copy` and comparable, so a target's settings stay a plain value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Selection([u64; Driver::ALL.len()]);

impl Selection {
    /// The documented defaults.
    pub fn defaults() -> Self {
        let mut bits = [0; Driver::ALL.len()];
        for driver in Driver::ALL {
            for (i, c) in catalogue(driver).collectors.iter().enumerate() {
                if c.enabled_by_default || c.name == HEALTH {
                    bits[driver.index()] |= 1 << i;
                }
            }
        }
        Self(bits)
    }

    /// Switches `name` on or off for `driver` (a target's block), or, with `None`, for every
    /// driver whose catalogue has it (the `collection` section shared by all targets). `Err`
    /// for a name no catalogue in scope has, and for turning off `health`, which the up family
    /// depends on.
    pub fn set(
        &mut self,
        driver: Option<Driver>,
        name: &str,
        on: bool,
    ) -> Result<(), SelectionError> {
        if name == HEALTH && !on {
            return Err(SelectionError::Required);
        }
        for (d, i) in slots(driver, name)? {
            let bits = &mut self.0[d.index()];
            if on {
                *bits |= 1 << i;
            } else {
                *bits &= !(1 << i);
            }
        }
        Ok(())
    }

    /// Whether `name` runs on targets of `driver`.
    pub fn runs(&self, driver: Driver, name: &str) -> bool {
        catalogue(driver)
            .position(name)
            .is_some_and(|i| self.0[driver.index()] & (1 << i) != 0)
    }

    /// This selection with only `driver`'s collectors of `scope` (other drivers' unchanged).
    pub fn within(mut self, driver: Driver, scope: Scope) -> Self {
        for (i, c) in catalogue(driver).collectors.iter().enumerate() {
            if c.scope != scope {
                self.0[driver.index()] &= !(1 << i);
            }
        }
        self
    }

    /// Whether `name` runs on targets of any driver that has it.
    pub fn contains(&self, name: &str) -> bool {
        Driver::ALL.into_iter().any(|d| self.runs(d, name))
    }
}

/// Why a collector switch was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelectionError {
    /// No collector has that name.
    Unknown,
    /// `health` cannot be switched off.
    Required,
}

/// The scope of `name` in the catalogues in scope (`driver`, or every driver); `None` when
/// none has it or they disagree.
pub fn scope_of(driver: Option<Driver>, name: &str) -> Option<Scope> {
    let mut scopes = in_scope(driver)
        .filter_map(|d| catalogue(d).collectors.iter().find(|c| c.name == name))
        .map(|c| c.scope);
    let first = scopes.next()?;
    scopes.all(|s| s == first).then_some(first)
}

/// Every collector's name of `driver`, or of every driver, in catalogue order.
pub fn names(driver: Option<Driver>) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for d in in_scope(driver) {
        for c in catalogue(d).collectors {
            if !out.contains(&c.name) {
                out.push(c.name);
            }
        }
    }
    out
}

/// A target's collector settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Options {
    /// Collectors that run.
    pub selection: Selection,
    /// Their configured intervals.
    pub intervals: Intervals,
    /// Size guard of the table collectors, over all databases of a target.
    pub max_tables: u32,
    /// Size guard of the index collectors, over all databases of a target.
    pub max_indexes: u32,
    /// Size guard of `stat_statements`.
    pub max_statements: u32,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            selection: Selection::defaults(),
            intervals: Intervals::default(),
            max_tables: DEFAULT_MAX_TABLES,
            max_indexes: DEFAULT_MAX_INDEXES,
            max_statements: DEFAULT_MAX_STATEMENTS,
        }
    }
}

/// A scheduled collection, as the scheduler sees it (a fake stands in for timing tests).
pub trait Collect {
    /// The driver of the target (it names the target's up and scrape-error families).
    fn driver(&self) -> Driver;

    /// Runs one collection. A successful one says which databases to visit
    /// ([`Collection::visited`]).
    fn collect(
        &self,
        deadline: Deadline,
    ) -> impl Future<Output = Result<Collection, GatewayError>> + Send;

    /// Whether any collector runs in the visited databases (else the scheduler visits none).
    fn visits(&self) -> bool {
        false
    }

    /// How often each visited database is read.
    fn visit_interval(&self) -> Duration {
        Duration::from_secs(60)
    }

    /// Lets go of what the target keeps between collections (its loop ended).
    fn release(&self) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// Visits one database: runs the database-scoped collectors in it.
    fn visit(&self, datname: &str, deadline: Deadline) -> impl Future<Output = Visit> + Send {
        let datname = datname.to_owned();
        async move {
            let _ = deadline;
            Visit {
                datname,
                finished_at: SystemTime::now(),
                duration: Duration::ZERO,
                result: Ok(Vec::new()),
            }
        }
    }
}
