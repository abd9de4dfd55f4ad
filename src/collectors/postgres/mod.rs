//! PostgreSQL collectors and the run that executes them on one connection.
//!
//! # A collector
//!
//! Each file here defines one [`Definition`]: its name, whether it is on by default, the
//! statement it runs on a given server version ([`Plan`]), the label and value columns the
//! statement returns, and the families those columns become. Adding a signal is one new file
//! plus one line in [`ALL`].
//!
//! Every statement follows the rule at the top of `gateway/postgres/sql.rs`: relations,
//! functions, operators and casts are qualified with `pg_catalog`, so nothing a database user
//! controls is ever looked up (the search_path test runs every statement here too).
//!
//! # The run (`run.rs`)
//!
//! 1. The server version comes from the connection's startup parameters (no round trip).
//! 2. Every planned statement is prepared, pipelined, outside any transaction: a statement
//!    that cannot be parsed (a view this server lacks) fails its collector alone.
//! 3. `BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY`, the health statement, then each
//!    collector's statement, all pipelined: one round trip in the normal case, and one
//!    snapshot for all (PostgreSQL also caches statistics per transaction).
//! 4. If a collector's statement fails, it fails alone: the transaction is rolled back, a new
//!    one begins (in the same round trip), and the collectors after it are sent again, in
//!    that second snapshot. No savepoint is paid for on the normal path.
//! 5. `COMMIT`.

mod activity;
mod archiver;
mod bgwriter;
mod custom;
mod database;
mod database_conflicts;
mod health;
mod locks;
mod progress_vacuum;
mod replication;
mod run;
mod settings;
mod stat_database;
mod stat_io;
mod stat_statements;
mod stat_user_indexes;
mod stat_user_tables;
mod stat_wal;
mod statio_user_tables;
mod subscription;
mod wait_events;
mod wraparound;

use std::borrow::Cow;

use tokio_postgres::Statement as Prepared;

use super::{Catalogue, Entry, Family, Harvest, Kind, Options, Schedule, Scope, Value};

pub use custom::describe;
pub use run::{CHANGE_KEY, DISCOVER, STAT_STATEMENTS_VIEW, collect, visit};

/// The catalogue: every PostgreSQL collector, health first. Order is the run order.
pub const ALL: &[Definition] = &[
    health::COLLECTOR,
    activity::COLLECTOR,
    database::COLLECTOR,
    stat_database::COLLECTOR,
    bgwriter::COLLECTOR,
    archiver::COLLECTOR,
    stat_wal::COLLECTOR,
    stat_io::COLLECTOR,
    locks::COLLECTOR,
    wait_events::COLLECTOR,
    progress_vacuum::COLLECTOR,
    replication::COLLECTOR,
    replication::SLOTS,
    replication::STANDBYS,
    subscription::COLLECTOR,
    database_conflicts::COLLECTOR,
    wraparound::COLLECTOR,
    settings::COLLECTOR,
    stat_statements::COLLECTOR,
    stat_user_tables::COLLECTOR,
    statio_user_tables::COLLECTOR,
    stat_user_indexes::STAT,
    stat_user_indexes::STATIO,
];

/// The catalogue the neutral layers see: [`ALL`]'s names and defaults, and PostgreSQL's up and
/// scrape-error family names (postgres_exporter's).
pub static CATALOGUE: Catalogue = Catalogue {
    collectors: &ENTRIES,
    up: "pg_up",
    last_scrape_error: "pg_exporter_last_scrape_error",
};

const _: () = assert!(ALL.len() <= super::MAX_COLLECTORS, "too many collectors");

const ENTRIES: [Entry; ALL.len()] = {
    let mut out = [Entry {
        name: "",
        enabled_by_default: false,
        schedule: Schedule::Every,
        scope: Scope::Server,
    }; ALL.len()];
    let mut i = 0;
    while i < ALL.len() {
        out[i] = Entry {
            name: ALL[i].name,
            enabled_by_default: ALL[i].enabled_by_default,
            schedule: ALL[i].schedule,
            scope: ALL[i].scope,
        };
        i += 1;
    }
    out
};

/// Oldest `server_version_num` the collectors beyond health are written for.
pub const MIN_VERSION: u32 = 130_000;

/// The plan of a collector that runs `sql` unchanged on every supported version (13 on).
pub fn since_13(server: &Server, sql: &'static str) -> Plan {
    if server.version < MIN_VERSION {
        return Plan::Unsupported;
    }
    Plan::Run(Statement::fixed(sql))
}

/// The plan of a collector whose SQL depends on the version: `sql`, or unsupported (`None`).
pub fn by_version(sql: Option<&'static str>) -> Plan {
    match sql {
        Some(sql) => Plan::Run(Statement::fixed(sql)),
        None => Plan::Unsupported,
    }
}

/// The plan of a guarded collector (13 on): `sql` with its row limit bound as `$1`.
pub fn guarded(server: &Server, sql: &'static str, limit: u32) -> Plan {
    if server.version < MIN_VERSION {
        return Plan::Unsupported;
    }
    Plan::Run(Statement {
        sql: sql.into(),
        limit: Some(i64::from(limit)),
        reads: None,
        fallback: None,
    })
}

/// What a collector knows about the server before it plans.
#[derive(Debug, Clone, Default)]
pub struct Server {
    /// `server_version_num`.
    pub version: u32,
    /// The trusted `pg_stat_statements` view, when the extension is installed, its view is a
    /// superuser-owned member of it, and its schema is controlled by a superuser (so nobody
    /// else can drop, rename or replace either, not even during a lock wait).
    pub stat_statements: Option<TrustedRelation>,
}

/// A relation found by [`STAT_STATEMENTS_VIEW`]: its schema, to name it, and its OID, which the
/// prepared statement must read (checked before it runs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedRelation {
    /// The schema's name.
    pub schema: String,
    /// `pg_class.oid` of the relation.
    pub oid: u32,
}

/// A statement to run and its one optional bind parameter.
#[derive(Debug, Clone)]
pub struct Statement {
    /// The SQL.
    pub sql: Cow<'static, str>,
    /// Bound as `$1` (`int8`) when set: a row limit.
    pub limit: Option<i64>,
    /// When set, the statement names a relation outside `pg_catalog`, and the prepared
    /// statement must read the relation with this OID: a column of its result must come from
    /// it, or the statement never runs. A name is looked up again when the server retries
    /// after a lock wait or re-plans; the OID is what was checked.
    pub reads: Option<u32>,
    /// Run instead, in the same snapshot, when the statement fails with its SQLSTATE.
    pub fallback: Option<Fallback>,
}

/// A second statement for a collector whose first fails in a known way; it returns the same
/// columns.
#[derive(Debug, Clone)]
pub struct Fallback {
    /// The SQL.
    pub sql: Cow<'static, str>,
    /// The SQLSTATE of the first statement's failure that calls for it.
    pub when: tokio_postgres::error::SqlState,
}

impl Statement {
    /// A statement without parameters.
    pub const fn fixed(sql: &'static str) -> Self {
        Self {
            sql: Cow::Borrowed(sql),
            limit: None,
            reads: None,
            fallback: None,
        }
    }

    /// Whether `prepared` reads what this statement was planned to read (see [`Self::reads`]).
    fn reads_what_was_checked(&self, prepared: &Prepared) -> bool {
        self.reads.is_none_or(|oid| {
            prepared
                .columns()
                .iter()
                .any(|c| c.table_oid() == Some(oid))
        })
    }
}

/// What a collector does on a given server.
#[derive(Debug, Clone)]
pub enum Plan {
    /// Runs this statement.
    Run(Statement),
    /// The server's version is outside what the collector supports: it is skipped (no
    /// outcome, no `mesa_collector_success` series).
    Unsupported,
    /// It cannot run here (an extension is missing): reported as a failure with this detail.
    Unavailable(&'static str),
}

/// One metric a collector's value column becomes.
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    /// Family name (counters without `_total`).
    pub name: &'static str,
    /// HELP text.
    pub help: &'static str,
    /// Type.
    pub kind: Kind,
    /// The labels this family carries, by name; `None`: all of the collector's labels.
    pub labels: Option<&'static [&'static str]>,
}

impl Metric {
    /// A gauge with all the collector's labels.
    pub const fn gauge(name: &'static str, help: &'static str) -> Self {
        Self {
            name,
            help,
            kind: Kind::Gauge,
            labels: None,
        }
    }

    /// A counter with all the collector's labels.
    pub const fn counter(name: &'static str, help: &'static str) -> Self {
        Self {
            name,
            help,
            kind: Kind::Counter,
            labels: None,
        }
    }

    /// The same metric with only `labels`.
    pub const fn with_labels(mut self, labels: &'static [&'static str]) -> Self {
        self.labels = Some(labels);
        self
    }
}

/// One decoded row: the label columns as text, then the value columns.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Label values, in [`Definition::labels`] order (NULL is `""`).
    pub labels: Vec<String>,
    /// Values, in [`Definition::metrics`] order (NULL is `None`: no series).
    pub values: Vec<Option<Value>>,
}

/// A collector.
#[derive(Debug, Clone, Copy)]
pub struct Definition {
    /// Name: the config key and the `collector` label.
    pub name: &'static str,
    /// On unless the config switches it off.
    pub enabled_by_default: bool,
    /// When it runs unless the config says (`collectors.<name>.interval`).
    pub schedule: Schedule,
    /// Where it runs: in the server collection, or in each visited database.
    pub scope: Scope,
    /// The statement for a server.
    pub plan: fn(&Server, &Options) -> Plan,
    /// Names of the label columns, which come first in each row.
    pub labels: &'static [&'static str],
    /// The value columns, after the labels, in order.
    pub metrics: &'static [Metric],
    /// When set, one more value column follows: the row count before the size guard's
    /// `LIMIT`, so the collector can say how many it left out.
    pub guarded: bool,
    /// When set, one more value column follows (after the guard's): how many sessions
    /// `pg_stat_activity` hides from the role. It is not exported; above 0 the collection
    /// fails with `permission_denied` (health's: the counts would read low).
    pub counts_hidden: bool,
    /// When set, one more value column follows (the last): the row's size for the size
    /// guard, which holds over all databases of a target (`databases::Budget`). Rows come
    /// largest first.
    pub ranked: bool,
    /// Builds the families; [`shaped`] unless the collector computes names (settings).
    pub build: fn(&Definition, &[Record]) -> Vec<Family>,
}

impl Definition {
    /// Value columns after the exported ones: the guard's total, the hidden sessions.
    pub fn trailing_columns(&self) -> usize {
        usize::from(self.guarded) + usize::from(self.counts_hidden) + usize::from(self.ranked)
    }

    /// Each row's size for the guard over all databases (see [`Self::ranked`]).
    fn sizes(&self, records: &[Record]) -> Vec<i64> {
        let at = self.metrics.len() + self.trailing_columns() - 1;
        records
            .iter()
            .map(|r| match r.values.get(at).copied().flatten() {
                Some(Value::Int(n)) => n,
                Some(Value::Float(f)) => f as i64,
                None => 0,
            })
            .collect()
    }

    /// The first row's trailing column `k` (0: the first after the exported ones), as a count.
    fn trailing(&self, records: &[Record], k: usize) -> u64 {
        records
            .first()
            .and_then(|r| r.values.get(self.metrics.len() + k).copied().flatten())
            .map_or(0, |v| match v {
                Value::Int(n) => u64::try_from(n).unwrap_or(0),
                Value::Float(f) => f as u64,
            })
    }

    /// Sessions `pg_stat_activity` hid from the role, for a collector that counts them.
    fn hidden_sessions(&self, records: &[Record]) -> u64 {
        if self.counts_hidden {
            self.trailing(records, usize::from(self.guarded))
        } else {
            0
        }
    }

    /// Families and the omitted count from decoded rows.
    pub fn harvest(&self, records: &[Record]) -> Harvest {
        let omitted = self.guarded.then(|| {
            self.trailing(records, 0)
                .saturating_sub(records.len() as u64)
        });
        Harvest {
            families: (self.build)(self, records),
            omitted,
        }
    }
}

/// The default build: one family per value column, one series per row.
pub fn shaped(def: &Definition, records: &[Record]) -> Vec<Family> {
    def.metrics
        .iter()
        .enumerate()
        .map(|(j, metric)| {
            let mut family = Family::new(metric.name, metric.help, metric.kind);
            for record in records {
                let Some(value) = record.values.get(j).copied().flatten() else {
                    continue;
                };
                let labels = def
                    .labels
                    .iter()
                    .zip(&record.labels)
                    .filter(|(name, _)| metric.labels.is_none_or(|only| only.contains(name)))
                    .map(|(name, v)| (*name, v.clone()))
                    .collect();
                family.push(labels, value);
            }
            family
        })
        .collect()
}

/// Whether `name` is (or may be) a family of Mesa's own: a built-in collector's, a setting's
/// (`pg_settings_*`), the derived ones (`pg_up`, `mesa_*`). Users' queries may not make one.
pub fn is_builtin_family(name: &str) -> bool {
    name.starts_with("mesa_")
        || name.starts_with("pg_settings_")
        || name == CATALOGUE.up
        || name == CATALOGUE.last_scrape_error
        || ALL.iter().any(|d| d.metrics.iter().any(|m| m.name == name))
}

/// The definition named `name`.
pub fn definition(name: &str) -> Option<&'static Definition> {
    ALL.iter().find(|d| d.name == name)
}

/// Every statement the collectors would run on `server` with every collector on: for the
/// search_path test and the docs.
pub fn statements(server: &Server) -> Vec<(&'static str, Statement)> {
    let options = Options::default();
    ALL.iter()
        .filter_map(|d| match (d.plan)(server, &options) {
            Plan::Run(s) => Some((d.name, s)),
            Plan::Unsupported | Plan::Unavailable(_) => None,
        })
        .collect()
}
