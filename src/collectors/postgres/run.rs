//! The run: one collection's statements on one connection (see the parent module's docs for
//! the steps), with each collector failing alone.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use tokio::time::Instant;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, Row, Statement as Prepared};

use super::custom::{UserRun, run_all};
use super::{
    ALL, Definition, Fallback, MIN_VERSION, Plan, Record, Server, Statement, TrustedRelation,
    stat_statements,
};
use crate::collectors::custom::Query;
use crate::collectors::{Budget, Collection, HEALTH, Options, Outcome, Schedule, Value};
use crate::gateway::postgres::{PostgresGateway, StatementCache, TextColumns, sql};
use crate::gateway::{Deadline, Driver, FailureReason, GatewayError};

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

/// The server's change key: when it last loaded its configuration files, and when the
/// postmaster started (a restart can change settings a reload cannot).
pub const CHANGE_KEY: &str = "\
SELECT pg_catalog.pg_conf_load_time()::pg_catalog.text OPERATOR(pg_catalog.||) ' '
       OPERATOR(pg_catalog.||) pg_catalog.pg_postmaster_start_time()::pg_catalog.text";

/// Discovery: every database that accepts connections (not a template, not left invalid by
/// an interrupted `DROP DATABASE`), by name.
pub const DISCOVER: &str = "\
SELECT d.datname::pg_catalog.text
  FROM pg_catalog.pg_database d
 WHERE d.datallowconn
   AND NOT d.datistemplate
   AND d.datconnlimit OPERATOR(pg_catalog.<>) -2
 ORDER BY 1";

/// What one run reads besides its collectors.
#[derive(Clone, Copy)]
struct Extras<'a> {
    /// An on-change collector runs only when the server's change key is not this.
    unless_unchanged: Option<&'a str>,
    /// Read the server's databases ([`DISCOVER`]).
    discover: bool,
    /// The size guards over all databases (a visit), and the visited database's name.
    budget: Option<(&'a Budget, &'a str)>,
    /// The users' queries due in this run (`collectors/custom`).
    user: UserRun<'a>,
}

/// Runs one collection on `gateway` (one connection, one snapshot): the collectors `options`
/// selects; an on-change collector (settings) only when the server's change key is not
/// `unless_unchanged`; with `discover`, the server's databases too; then the users' `queries`
/// (those due, of the server scope).
pub async fn collect(
    gateway: &PostgresGateway,
    options: &Options,
    unless_unchanged: Option<&str>,
    discover: bool,
    queries: &[Arc<Query>],
    deadline: Deadline,
) -> Result<Collection, GatewayError> {
    let endpoint = gateway.endpoint();
    let extras = Extras {
        unless_unchanged,
        discover,
        budget: None,
        user: UserRun {
            queries,
            statement_timeout: gateway.limits().statement_timeout,
            deadline: deadline.at(),
            datname: None,
        },
    };
    let (mut collection, hidden) = gateway
        .collection_session(deadline, async |client, version, prepared| {
            run(client, version, prepared, options, extras, &endpoint).await
        })
        .await?;
    stamp(&mut collection.outcomes);
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

/// Visits `datname` (one connection to it, one snapshot): the collectors `options` selects
/// (the scheduler passes the database-scoped ones), their size guards shared through
/// `budget` with the target's other databases; then the users' `queries` of the database
/// scope that are due. The outcomes, or why the visit failed.
pub async fn visit(
    gateway: &PostgresGateway,
    datname: &str,
    options: &Options,
    budget: &Budget,
    queries: &[Arc<Query>],
    deadline: Deadline,
) -> Result<Vec<Outcome>, GatewayError> {
    let endpoint = gateway.endpoint();
    let extras = Extras {
        unless_unchanged: None,
        discover: false,
        budget: Some((budget, datname)),
        user: UserRun {
            queries,
            statement_timeout: gateway.limits().statement_timeout,
            deadline: deadline.at(),
            datname: Some(datname),
        },
    };
    let (collection, _) = gateway
        .visit_session(datname, deadline, async |client, version, prepared| {
            run(client, version, prepared, options, extras, &endpoint).await
        })
        .await?;
    let mut outcomes = collection.outcomes;
    stamp(&mut outcomes);
    Ok(outcomes)
}

/// Marks each successful outcome as collected now (the run's end).
fn stamp(outcomes: &mut [Outcome]) {
    let now = std::time::SystemTime::now();
    for outcome in outcomes.iter_mut().filter(|o| o.result.is_ok()) {
        outcome.collected_at = Some(now);
    }
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
        collected_at: None,
        from_earlier: false,
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

/// Runs `statement` with its row limit bound as `$1`, if it has one.
async fn rows(
    client: &Client,
    statement: &Prepared,
    limit: Option<i64>,
) -> Result<Vec<Row>, tokio_postgres::Error> {
    match &limit {
        Some(limit) => client.query(statement, &[limit]).await,
        None => client.query(statement, &[]).await,
    }
}

/// Decodes every row of `def`'s statement.
fn decode_all(def: &Definition, rows: &[Row]) -> Result<Vec<Record>, tokio_postgres::Error> {
    rows.iter().map(|row| decode(def, row)).collect()
}

fn query<'a>(client: &'a Client, statement: &'a Prepared, limit: Option<i64>) -> Step<'a> {
    Box::pin(async move { Reply::Rows(rows(client, statement, limit).await, Instant::now()) })
}

/// Prepares `statement`, or takes it from the session's `kept` statements (no round trip)
/// when it reads `pg_catalog` alone ([`Statement::reads`] unset).
fn prepare<'a>(client: &'a Client, statement: &'a Statement, kept: &StatementCache) -> Step<'a> {
    if statement.reads.is_none()
        && let Some(ready) = kept.get(&statement.sql)
    {
        return Box::pin(async move { Reply::Prepared(Ok(ready)) });
    }
    Box::pin(async move { Reply::Prepared(client.prepare(&statement.sql).await) })
}

fn simple<'a>(client: &'a Client, sql: String) -> Step<'a> {
    Box::pin(async move { Reply::Done(client.batch_execute(&sql).await) })
}

async fn run(
    client: &Client,
    version: u32,
    prepared: &mut StatementCache,
    options: &Options,
    extras: Extras<'_>,
    endpoint: &str,
) -> Result<(Collection, u64), tokio_postgres::Error> {
    let unless_unchanged = extras.unless_unchanged;
    let mut server = Server {
        version,
        stat_statements: None,
    };
    if options
        .selection
        .runs(Driver::Postgres, stat_statements::COLLECTOR.name)
        && version >= MIN_VERSION
    {
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
    for def in ALL
        .iter()
        .filter(|d| options.selection.runs(Driver::Postgres, d.name))
    {
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
    // When an on-change collector is planned, the server's change key is read in the same
    // round trip; one with a kept result (`unless_unchanged`) is prepared only once the key
    // says the configuration changed (a second round trip, on a change only), so an
    // unchanged server parses nothing for it.
    let on_change = |def: &Definition| {
        matches!(
            options.intervals.schedule(Driver::Postgres, def.name),
            Schedule::OnChange { .. }
        )
    };
    let deferred = |def: &Definition| unless_unchanged.is_some() && on_change(def);
    let wants_key = planned.iter().any(|(def, _)| on_change(def));
    let first: Vec<usize> = (0..planned.len())
        .filter(|&i| !deferred(planned[i].0))
        .collect();
    let mut steps: Vec<Step<'_>> = first
        .iter()
        .map(|&i| prepare(client, &planned[i].1, prepared))
        .collect();
    if wants_key {
        steps.push(Box::pin(async move {
            Reply::Rows(client.query(CHANGE_KEY, &[]).await, Instant::now())
        }));
    }
    if extras.discover {
        steps.push(Box::pin(async move {
            Reply::Rows(client.query(DISCOVER, &[]).await, Instant::now())
        }));
    }
    let mut answers = in_order(steps).await;
    // A failed discovery leaves the databases unknown: the last ones found stay visited.
    let databases = if extras.discover {
        match answers.pop() {
            Some(Reply::Rows(Ok(rows), _)) => rows
                .iter()
                .map(|r| r.opt_text(0).map(Option::unwrap_or_default))
                .collect::<Result<Vec<String>, _>>()
                .ok(),
            _ => None,
        }
    } else {
        None
    };
    let change_key = if wants_key {
        match answers.pop() {
            Some(Reply::Rows(Ok(rows), _)) => {
                rows.first().and_then(|r| r.opt_text(0).ok().flatten())
            }
            _ => None,
        }
    } else {
        None
    };
    let mut replies: Vec<Option<Reply>> = planned.iter().map(|_| None).collect();
    for (i, answer) in first.into_iter().zip(answers) {
        replies[i] = Some(answer);
    }
    // Changed (or the key unreadable): the deferred collectors run after all.
    if change_key.is_none() || change_key.as_deref() != unless_unchanged {
        let later: Vec<usize> = (0..planned.len())
            .filter(|&i| deferred(planned[i].0))
            .collect();
        if !later.is_empty() {
            let steps = later
                .iter()
                .map(|&i| prepare(client, &planned[i].1, prepared))
                .collect();
            for (i, answer) in later.into_iter().zip(in_order(steps).await) {
                replies[i] = Some(answer);
            }
        }
    }
    let mut runnable: Vec<(&'static Definition, Prepared, Option<i64>, Option<Fallback>)> =
        Vec::new();
    for ((def, statement), reply) in planned.iter().zip(replies) {
        // Deferred and the configuration unchanged: its kept result stands.
        let Some(reply) = reply else { continue };
        match reply {
            Reply::Prepared(Ok(p)) if statement.reads_what_was_checked(&p) => {
                if statement.reads.is_none() {
                    prepared.keep(statement.sql.clone(), p.clone());
                }
                runnable.push((def, p, statement.limit, statement.fallback.clone()));
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
            Reply::Prepared(Err(e)) if def.name == HEALTH => return Err(e),
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
    // The statements run in one read-only transaction with no savepoint between them: a
    // savepoint per collector was a statement of its own (two thirds of a collection's
    // statements, about 30 us of server CPU each), paid on every collection for a failure
    // that is rare. A failure costs a rollback and a new transaction for the rest instead.
    // One statement is its own snapshot: a collection with nothing but health due (and its
    // statement prepared on the kept session) is one round trip, with no transaction.
    let alone = runnable.len() == 1
        && runnable[0].0.name == HEALTH
        && runnable[0].3.is_none()
        && extras.user.queries.is_empty();
    let mut begin = (!alone).then_some(sql::COLLECTION_BEGIN);
    // Collectors whose statement failed in the way their fallback is for.
    let mut retries: Vec<usize> = Vec::new();
    while start < runnable.len() {
        let mut steps: Vec<Step<'_>> = Vec::new();
        if let Some(begin) = begin.take() {
            steps.push(simple(client, begin.to_owned()));
        }
        for (_, statement, limit, _) in runnable.iter().skip(start) {
            steps.push(query(client, statement, *limit));
        }
        let replies = in_order(steps).await;
        let mut rows_seen = 0;
        let mut failed_at = None;
        for reply in replies {
            match reply {
                Reply::Done(Ok(())) | Reply::Prepared(_) => {}
                // BEGIN failed: the session is broken.
                Reply::Done(Err(e)) => return Err(e),
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
                    if let (Err(e), Some(fallback)) = (&result, &runnable[i].3)
                        && e.code() == Some(&fallback.when)
                    {
                        retries.push(i);
                    }
                    let mut decoded = result.and_then(|rows| decode_all(def, &rows));
                    let mut omitted = None;
                    if let Ok(records) = &mut decoded {
                        hidden = hidden.max(def.hidden_sessions(records));
                        omitted = within_budget(def, records, runnable[i].2, extras);
                    }
                    results[i] = Some(match decoded {
                        Ok(records) => {
                            let mut harvest = def.harvest(&records);
                            if omitted.is_some() {
                                harvest.omitted = omitted;
                            }
                            Outcome {
                                collector: def.name,
                                duration,
                                result: Ok(harvest),
                                collected_at: None,
                                from_earlier: false,
                            }
                        }
                        Err(e) if def.name == HEALTH => return Err(e),
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
                // The failed statement aborted the transaction, and the statements after it
                // were refused: a new transaction (a new snapshot) for them, in the same round
                // trip as the rollback.
                client
                    .batch_execute(&format!("ROLLBACK; {}", sql::COLLECTION_BEGIN))
                    .await?;
                start = i + 1;
                sent_at = Instant::now();
            }
        }
    }
    for i in retries {
        let (def, _, limit, Some(fallback)) = &runnable[i] else {
            continue;
        };
        if let Some(outcome) = run_fallback(client, def, fallback, *limit, i, endpoint).await? {
            results[i] = Some(outcome);
        }
    }
    // In the same snapshot, each under a savepoint that is always rolled back.
    let user = run_all(client, version, prepared, &extras.user, endpoint).await?;
    if !alone {
        client.batch_execute("COMMIT").await?;
    }
    outcomes.extend(results.into_iter().flatten());
    // Run order, health first, whatever failed where; the users' queries after.
    outcomes.sort_by_key(|o| ALL.iter().position(|d| d.name == o.collector));
    outcomes.extend(user);
    Ok((
        Collection {
            server_version: version,
            outcomes,
            change_key,
            databases,
            visited: None,
        },
        hidden,
    ))
}

/// Cuts a visit's rows of a guarded collector to its share of the guard over all databases of
/// the target (rows come largest first), and says how many of the database's rows are left
/// out. A collection's rows are cut by the `LIMIT` alone (`None`).
fn within_budget(
    def: &Definition,
    records: &mut Vec<Record>,
    limit: Option<i64>,
    extras: Extras<'_>,
) -> Option<u64> {
    let (Some((budget, datname)), true, Some(limit)) = (extras.budget, def.ranked, limit) else {
        return None;
    };
    let total = def.trailing(records, 0);
    let limit = usize::try_from(limit).unwrap_or(0);
    let kept = budget.quota(def.name, datname, limit, def.sizes(records));
    records.truncate(kept);
    Some(total.saturating_sub(records.len() as u64))
}

/// Runs collector `i`'s fallback in the collection's transaction, under a savepoint of its
/// own: its outcome, or `None` (the first failure stands) when it fails too. An error only
/// when the session itself broke.
async fn run_fallback(
    client: &Client,
    def: &'static Definition,
    fallback: &Fallback,
    limit: Option<i64>,
    i: usize,
    endpoint: &str,
) -> Result<Option<Outcome>, tokio_postgres::Error> {
    let started = Instant::now();
    client
        .batch_execute(&format!("SAVEPOINT mesa_fallback_{i}"))
        .await?;
    let decoded = match client.prepare(&fallback.sql).await {
        Ok(prepared) => rows(client, &prepared, limit)
            .await
            .and_then(|rows| decode_all(def, &rows)),
        Err(e) => Err(e),
    };
    match decoded {
        Ok(records) => {
            tracing::debug!(collector = def.name, %endpoint, "the collector's fallback ran");
            Ok(Some(Outcome {
                collector: def.name,
                duration: started.elapsed(),
                result: Ok(def.harvest(&records)),
                collected_at: None,
                from_earlier: false,
            }))
        }
        Err(e) => {
            tracing::debug!(collector = def.name, %endpoint, error = %e, "the collector's fallback failed too");
            client
                .batch_execute(&format!("ROLLBACK TO SAVEPOINT mesa_fallback_{i}"))
                .await?;
            Ok(None)
        }
    }
}
