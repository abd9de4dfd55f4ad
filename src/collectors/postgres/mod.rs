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
//! # The run
//!
//! 1. The server version comes from the connection's startup parameters (no round trip).
//! 2. Every planned statement is prepared, pipelined, outside any transaction: a statement
//!    that cannot be parsed (a view this server lacks) fails its collector alone.
//! 3. `BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY`, the health statement, then for each
//!    collector `SAVEPOINT` and its statement, all pipelined: one round trip in the normal case,
//!    and one snapshot for all (PostgreSQL also caches statistics per transaction).
//! 4. If a collector's statement fails, the transaction is rolled back to its savepoint (the
//!    snapshot is kept) and the collectors after it are sent again.
//! 5. `COMMIT`.

mod activity;
mod bgwriter;
mod database;
mod health;
mod locks;
mod replication;
mod settings;
mod stat_database;
mod stat_statements;
mod stat_user_tables;
mod wraparound;

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use tokio::time::Instant;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, Row, Statement as Prepared};

use super::{Collection, Family, Harvest, Kind, Options, Outcome, Value};
use crate::gateway::postgres::{PostgresGateway, TextColumns, sql};
use crate::gateway::{Deadline, FailureReason, GatewayError};

/// The catalogue: every PostgreSQL collector, health first. Order is the run order.
pub const ALL: &[Definition] = &[
    health::COLLECTOR,
    activity::COLLECTOR,
    database::COLLECTOR,
    stat_database::COLLECTOR,
    bgwriter::COLLECTOR,
    locks::COLLECTOR,
    replication::COLLECTOR,
    replication::SLOTS,
    replication::STANDBYS,
    wraparound::COLLECTOR,
    settings::COLLECTOR,
    stat_user_tables::COLLECTOR,
    stat_statements::COLLECTOR,
];

/// Oldest `server_version_num` the collectors beyond health are written for.
pub const MIN_VERSION: u32 = 130_000;

/// The plan of a collector that runs `sql` unchanged on every supported version (13 on).
pub fn since_13(server: &Server, sql: &'static str) -> Plan {
    if server.version < MIN_VERSION {
        return Plan::Unsupported;
    }
    Plan::Run(Statement::fixed(sql))
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
}

impl Statement {
    /// A statement without parameters.
    pub const fn fixed(sql: &'static str) -> Self {
        Self {
            sql: Cow::Borrowed(sql),
            limit: None,
            reads: None,
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
    /// Builds the families; [`shaped`] unless the collector computes names (settings).
    pub build: fn(&Definition, &[Record]) -> Vec<Family>,
}

impl Definition {
    /// Value columns after the exported ones: the guard's total, the hidden sessions.
    pub fn trailing_columns(&self) -> usize {
        usize::from(self.guarded) + usize::from(self.counts_hidden)
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

/// Decodes a row: label columns as text, the rest as numbers (booleans as 0/1).
fn decode(def: &Definition, row: &Row) -> Result<Record, tokio_postgres::Error> {
    let n = def.labels.len();
    let labels = (0..n)
        .map(|i| Ok(row.opt_text(i)?.unwrap_or_default()))
        .collect::<Result<Vec<_>, tokio_postgres::Error>>()?;
    let values = (n..row.len())
        .map(|i| {
            let ty = row.columns()[i].type_();
            Ok(if *ty == Type::INT8 {
                row.try_get::<_, Option<i64>>(i)?.map(Value::Int)
            } else if *ty == Type::INT4 {
                row.try_get::<_, Option<i32>>(i)?
                    .map(|v| Value::Int(i64::from(v)))
            } else if *ty == Type::BOOL {
                row.try_get::<_, Option<bool>>(i)?
                    .map(|v| Value::Int(i64::from(v)))
            } else {
                row.try_get::<_, Option<f64>>(i)?.map(Value::Float)
            })
        })
        .collect::<Result<Vec<_>, tokio_postgres::Error>>()?;
    Ok(Record { labels, values })
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

/// Finds a trusted `pg_stat_statements` view (see [`Server::stat_statements`]): its schema
/// and OID.
///
/// Trusted means that no role but a superuser can change what the name resolves to: the view
/// is a superuser-owned member of the extension, and its schema is owned by a superuser (or,
/// for `public` since PostgreSQL 14, by `pg_database_owner` in a database a superuser owns).
/// A schema's owner can drop it with the extension inside, even in an open transaction while
/// Mesa waits for the lock, and put a counterfeit under the same name (issue 17).
pub const STAT_STATEMENTS_VIEW: &str = "\
SELECT n.nspname::pg_catalog.text, c.oid
  FROM pg_catalog.pg_extension e
  JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) e.extnamespace
  JOIN pg_catalog.pg_class c ON c.relnamespace OPERATOR(pg_catalog.=) n.oid
  JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) c.relowner
  JOIN pg_catalog.pg_roles so ON so.oid OPERATOR(pg_catalog.=) n.nspowner
 WHERE e.extname OPERATOR(pg_catalog.=) 'pg_stat_statements'
   AND c.relname OPERATOR(pg_catalog.=) 'pg_stat_statements'
   AND r.rolsuper
   AND (so.rolsuper
        OR (so.rolname OPERATOR(pg_catalog.=) 'pg_database_owner'
            AND EXISTS (SELECT 1 FROM pg_catalog.pg_database db
                          JOIN pg_catalog.pg_roles dbo ON dbo.oid OPERATOR(pg_catalog.=) db.datdba
                         WHERE db.datname OPERATOR(pg_catalog.=) pg_catalog.current_database()
                           AND dbo.rolsuper)))
   AND EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
                  AND d.objid OPERATOR(pg_catalog.=) c.oid
                  AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass
                  AND d.refobjid OPERATOR(pg_catalog.=) e.oid
                  AND d.deptype OPERATOR(pg_catalog.=) 'e')";

/// Runs one collection on `gateway` (one connection, one snapshot).
pub async fn collect(
    gateway: &PostgresGateway,
    options: &Options,
    deadline: Deadline,
) -> Result<Collection, GatewayError> {
    let endpoint = gateway.endpoint();
    let (collection, hidden) = gateway
        .collection_session(deadline, async |client, version| {
            run(client, version, options, &endpoint).await
        })
        .await?;
    // A role without pg_read_all_stats (pg_monitor) sees other roles' sessions without
    // their type: connection counts and utilisation would read low, and a saturation alert
    // would stay silent. That is a monitoring outage, said as one.
    if hidden > 0 {
        tracing::warn!(%endpoint, hidden, "pg_stat_activity hides sessions from the monitoring role");
        return Err(GatewayError::PermissionDenied {
            action: format!(
                "see every session: pg_stat_activity hides {hidden} from the monitoring role (grant it pg_monitor)"
            ),
        });
    }
    Ok(collection)
}

/// A collector's failure before or during its statement.
fn failed(
    def: &Definition,
    reason: FailureReason,
    detail: &str,
    endpoint: &str,
    duration: Duration,
) -> Outcome {
    tracing::debug!(collector = def.name, %endpoint, %reason, detail, "collector failed");
    Outcome {
        collector: def.name,
        duration,
        result: Err(reason),
    }
}

fn failure(e: tokio_postgres::Error, endpoint: &str) -> (FailureReason, String) {
    let e = crate::gateway::postgres::classify_error(e, endpoint);
    (e.reason(), e.to_string())
}

/// What a pipelined step answered.
enum Reply {
    Prepared(Result<Prepared, tokio_postgres::Error>),
    Done(Result<(), tokio_postgres::Error>),
    Rows(Result<Vec<Row>, tokio_postgres::Error>, Instant),
}

type Step<'a> = Pin<Box<dyn Future<Output = Reply> + Send + 'a>>;

/// Polls `steps` to completion, each first polled in order, so their messages reach the
/// server in that order (tokio-postgres sends a request on its first poll).
async fn in_order(mut steps: Vec<Step<'_>>) -> Vec<Reply> {
    let mut done: Vec<Option<Reply>> = steps.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (step, slot) in steps.iter_mut().zip(done.iter_mut()) {
            if slot.is_some() {
                continue;
            }
            match step.as_mut().poll(cx) {
                Poll::Ready(reply) => *slot = Some(reply),
                Poll::Pending => pending = true,
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    done.into_iter().flatten().collect()
}

fn query<'a>(client: &'a Client, statement: &'a Prepared, limit: Option<i64>) -> Step<'a> {
    Box::pin(async move {
        let rows = match &limit {
            Some(limit) => client.query(statement, &[limit]).await,
            None => client.query(statement, &[]).await,
        };
        Reply::Rows(rows, Instant::now())
    })
}

fn simple<'a>(client: &'a Client, sql: String) -> Step<'a> {
    Box::pin(async move { Reply::Done(client.batch_execute(&sql).await) })
}

async fn run(
    client: &Client,
    version: u32,
    options: &Options,
    endpoint: &str,
) -> Result<(Collection, u64), tokio_postgres::Error> {
    let mut server = Server {
        version,
        stat_statements: None,
    };
    if options.selection.contains(stat_statements::COLLECTOR.name) && version >= MIN_VERSION {
        // A failed lookup leaves the view unknown; the collector then reports it missing.
        if let Ok(Some(row)) = client.query_opt(STAT_STATEMENTS_VIEW, &[]).await {
            server.stat_statements = match (row.try_get(0), row.try_get(1)) {
                (Ok(schema), Ok(oid)) => Some(TrustedRelation { schema, oid }),
                _ => None,
            };
        }
    }

    let mut outcomes: Vec<Outcome> = Vec::new();
    // (definition, statement) in run order; health first.
    let mut planned: Vec<(&'static Definition, Statement)> = Vec::new();
    for def in ALL.iter().filter(|d| options.selection.contains(d.name)) {
        match (def.plan)(&server, options) {
            Plan::Run(statement) => planned.push((def, statement)),
            Plan::Unsupported => {}
            Plan::Unavailable(detail) => outcomes.push(failed(
                def,
                FailureReason::NotFound,
                detail,
                endpoint,
                Duration::ZERO,
            )),
        }
    }

    // Prepare everything in one round trip; outside a transaction, so one failure is alone.
    let prepares: Vec<Step<'_>> = planned
        .iter()
        .map(|(_, s)| -> Step<'_> {
            Box::pin(async move { Reply::Prepared(client.prepare(&s.sql).await) })
        })
        .collect();
    let mut runnable: Vec<(&'static Definition, Prepared, Option<i64>)> = Vec::new();
    for ((def, statement), reply) in planned.iter().zip(in_order(prepares).await) {
        match reply {
            Reply::Prepared(Ok(p)) if statement.reads_what_was_checked(&p) => {
                runnable.push((def, p, statement.limit));
            }
            Reply::Prepared(Ok(_)) => {
                // The name now resolves to another relation than the one checked: never run it.
                tracing::warn!(collector = def.name, %endpoint, "the statement's relation changed after it was checked; not run");
                outcomes.push(failed(
                    def,
                    FailureReason::Refused,
                    "the relation changed after it was checked",
                    endpoint,
                    Duration::ZERO,
                ));
            }
            Reply::Prepared(Err(e)) if def.name == super::HEALTH => return Err(e),
            Reply::Prepared(Err(e)) => {
                let (reason, detail) = failure(e, endpoint);
                outcomes.push(failed(def, reason, &detail, endpoint, Duration::ZERO));
            }
            Reply::Done(_) | Reply::Rows(..) => unreachable!("prepare steps answer Prepared"),
        }
    }
    let mut results: Vec<Option<Outcome>> = runnable.iter().map(|_| None).collect();
    // Sessions pg_stat_activity hides from the role (see `Definition::counts_hidden`).
    let mut hidden = 0u64;
    let mut start = 0;
    let mut sent_at = Instant::now();
    let mut begin = Some(sql::COLLECTION_BEGIN);
    while start < runnable.len() {
        let mut steps: Vec<Step<'_>> = Vec::new();
        if let Some(begin) = begin.take() {
            steps.push(simple(client, begin.to_owned()));
        }
        for (i, (def, statement, limit)) in runnable.iter().enumerate().skip(start) {
            if def.name != super::HEALTH {
                steps.push(simple(client, format!("SAVEPOINT mesa_{i}")));
            }
            steps.push(query(client, statement, *limit));
        }
        let replies = in_order(steps).await;
        let mut rows_seen = 0;
        let mut failed_at = None;
        for reply in replies {
            match reply {
                Reply::Done(Ok(())) | Reply::Prepared(_) => {}
                Reply::Done(Err(e)) => {
                    // BEGIN or a SAVEPOINT: either the transaction is already aborted (its
                    // collector's answer says why) or the session is broken.
                    if e.code() != Some(&SqlState::IN_FAILED_SQL_TRANSACTION) {
                        return Err(e);
                    }
                }
                Reply::Rows(result, finished) => {
                    let i = start + rows_seen;
                    rows_seen += 1;
                    if failed_at.is_some() {
                        continue;
                    }
                    let (def, ..) = &runnable[i];
                    let duration = finished.saturating_duration_since(sent_at);
                    sent_at = sent_at.max(finished);
                    // Only a statement the server failed aborts the transaction (and makes the
                    // collectors after it run again); rows Mesa cannot decode fail their
                    // collector alone.
                    let aborted = result.is_err();
                    let decoded = result.and_then(|rows| {
                        rows.iter()
                            .map(|row| decode(def, row))
                            .collect::<Result<Vec<_>, _>>()
                    });
                    if let Ok(records) = &decoded {
                        hidden = hidden.max(def.hidden_sessions(records));
                    }
                    results[i] = Some(match decoded {
                        Ok(records) => Outcome {
                            collector: def.name,
                            duration,
                            result: Ok(def.harvest(&records)),
                        },
                        Err(e) if def.name == super::HEALTH => return Err(e),
                        Err(e) => {
                            let (reason, detail) = failure(e, endpoint);
                            failed(def, reason, &detail, endpoint, duration)
                        }
                    });
                    if aborted {
                        failed_at = Some(i);
                    }
                }
            }
        }
        match failed_at {
            None => break,
            Some(i) => {
                // Back to the failed collector's savepoint: the snapshot stays, the rest run again.
                client
                    .batch_execute(&format!("ROLLBACK TO SAVEPOINT mesa_{i}"))
                    .await?;
                start = i + 1;
                sent_at = Instant::now();
            }
        }
    }
    client.batch_execute("COMMIT").await?;
    outcomes.extend(results.into_iter().flatten());
    // Run order, health first, whatever failed where.
    outcomes.sort_by_key(|o| ALL.iter().position(|d| d.name == o.collector));
    Ok((
        Collection {
            server_version: version,
            outcomes,
        },
        hidden,
    ))
}
