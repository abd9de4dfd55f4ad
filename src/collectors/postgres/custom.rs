//! Users' queries (`collectors/custom`) on PostgreSQL, inside the collection's transaction.
//!
//! The collection's transaction is `READ ONLY` with one snapshot, so a query that writes
//! (`DELETE`, `UPDATE`, DDL, `nextval`, a function that writes) fails with
//! `read_only_sql_transaction` and changes nothing. Each query runs as:
//!
//! 1. one `SAVEPOINT mesa_user` before the first query;
//! 2. `SET LOCAL statement_timeout` when its timeout is not the collection's (its `timeout`,
//!    never past the collection's deadline), and its statement, prepared once per session;
//! 3. its rows, the first `max_rows` decoded and the rest counted, pipelined with
//! 4. `ROLLBACK TO SAVEPOINT mesa_user`, whatever happened: an error leaves the transaction
//!    usable for the next query, and anything the query changed in the session (`set_config`,
//!    even with `is_local` false) is undone with it;
//! 5. `RELEASE SAVEPOINT mesa_user` after the last.
//!
//! A failure is the query's alone: an outcome with its reason (`query_failed`, `timeout`,
//! `decode`, ...) and a log line naming the query and, for `decode`, the column. Only a
//! session that broke fails the collection.

use std::sync::Arc;
use std::time::Duration;

use futures_util::TryStreamExt as _;
use tokio::time::Instant;
use tokio_postgres::types::{FromSql, Kind as PgKind, Type};
use tokio_postgres::{Client, Row};

use crate::collectors::Outcome;
use crate::collectors::custom::check::{self, ColumnKind, Line, Returned};
use crate::collectors::custom::{self, Cell, Query};
use crate::gateway::postgres::escape_text as escape;
use crate::gateway::postgres::{PostgresGateway, StatementCache};
use crate::gateway::{Deadline, FailureReason, GatewayError};

/// Time kept back from the collection's deadline for the rollback and `COMMIT`.
const MARGIN: Duration = Duration::from_millis(50);

/// The user queries of one run: which, with what timeouts, and where.
#[derive(Clone, Copy)]
pub(super) struct UserRun<'a> {
    /// The queries due now, of the run's scope.
    pub queries: &'a [Arc<Query>],
    /// The collection's `statement_timeout` (a query's default).
    pub statement_timeout: Duration,
    /// The collection's deadline.
    pub deadline: Instant,
    /// The visited database (its name is added to each series), or `None` in a collection.
    pub datname: Option<&'a str>,
}

/// Reads any column: numbers, booleans, text (and enums), intervals; anything else by type
/// name, for the error.
impl<'a> FromSql<'a> for Cell {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(match *ty {
            Type::INT2 => Cell::Int(i64::from(i16::from_sql(ty, raw)?)),
            Type::INT4 => Cell::Int(i64::from(i32::from_sql(ty, raw)?)),
            Type::INT8 => Cell::Int(i64::from_sql(ty, raw)?),
            Type::OID => Cell::Int(i64::from(u32::from_sql(ty, raw)?)),
            Type::FLOAT4 => Cell::Float(f64::from(f32::from_sql(ty, raw)?)),
            Type::FLOAT8 => Cell::Float(f64::from_sql(ty, raw)?),
            Type::NUMERIC => Cell::Float(numeric(raw).ok_or("malformed numeric")?),
            Type::BOOL => Cell::Bool(bool::from_sql(ty, raw)?),
            Type::INTERVAL => Cell::Interval(interval_ms(raw).ok_or("malformed interval")?),
            _ if <&str as FromSql>::accepts(ty) || matches!(ty.kind(), PgKind::Enum(_)) => {
                Cell::Text(escape(raw))
            }
            _ => Cell::Other(ty.name().to_owned()),
        })
    }

    fn from_sql_null(_: &Type) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Cell::Null)
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// A binary `numeric` as a float: base-10000 digits with a weight; NaN and the infinities.
fn numeric(raw: &[u8]) -> Option<f64> {
    let word = |i: usize| raw.get(i..i + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
    let ndigits = usize::from(word(0)?);
    let weight = i32::from(i16::from_be_bytes(raw.get(2..4)?.try_into().ok()?));
    let sign = word(4)?;
    match sign {
        0xC000 => return Some(f64::NAN),
        0xD000 => return Some(f64::INFINITY),
        0xF000 => return Some(f64::NEG_INFINITY),
        _ => {}
    }
    let mut value = 0.0f64;
    for i in 0..ndigits {
        let digit = f64::from(word(8 + 2 * i)?);
        value += digit * 10_000f64.powi(weight - i32::try_from(i).ok()?);
    }
    Some(if sign == 0x4000 { -value } else { value })
}

/// A binary `interval` in milliseconds (a month counts 30 days, as PostgreSQL's `extract`).
fn interval_ms(raw: &[u8]) -> Option<f64> {
    let micros = i64::from_be_bytes(raw.get(0..8)?.try_into().ok()?);
    let days = i32::from_be_bytes(raw.get(8..12)?.try_into().ok()?);
    let months = i32::from_be_bytes(raw.get(12..16)?.try_into().ok()?);
    Some(
        micros as f64 / 1000.0
            + f64::from(days) * 86_400_000.0
            + f64::from(months) * 30.0 * 86_400_000.0,
    )
}

/// The kind of a returned column's type (`--check-config --live`).
fn kind_of(ty: &Type) -> ColumnKind {
    match *ty {
        Type::INT2 | Type::INT4 | Type::INT8 | Type::OID => ColumnKind::Integer,
        Type::FLOAT4 | Type::FLOAT8 | Type::NUMERIC => ColumnKind::Float,
        Type::BOOL => ColumnKind::Bool,
        Type::INTERVAL => ColumnKind::Interval,
        _ if <&str as FromSql>::accepts(ty) || matches!(ty.kind(), PgKind::Enum(_)) => {
            ColumnKind::Text
        }
        _ => ColumnKind::Other,
    }
}

/// `--check-config --live` on one target: each query prepared (never run) in a read-only
/// transaction in the target's database, its columns against the declared ones. The server's
/// version, and the table's lines.
pub async fn describe(
    gateway: &PostgresGateway,
    queries: &[Arc<Query>],
    deadline: Deadline,
) -> Result<(u32, Vec<Line>), GatewayError> {
    let endpoint = gateway.endpoint();
    gateway
        .visit_session(gateway.database(), deadline, async |client, version, _| {
            client.batch_execute("BEGIN READ ONLY").await?;
            let in_recovery: bool = client
                .query_one("SELECT pg_catalog.pg_is_in_recovery()", &[])
                .await?
                .try_get(0)?;
            let mut lines = Vec::new();
            for query in queries {
                if !query.runs_on(version, in_recovery) {
                    lines.push(Line {
                        query: query.name.to_owned(),
                        column: "-".into(),
                        declared: "-".into(),
                        returned: "-".into(),
                        verdict:
                            "skipped: runonserver, min/max_version or role excludes this server"
                                .into(),
                    });
                    continue;
                }
                client.batch_execute("SAVEPOINT mesa_check").await?;
                match client.prepare(&query.sql).await {
                    Ok(statement) => {
                        let returned: Vec<Returned> = statement
                            .columns()
                            .iter()
                            .map(|c| Returned {
                                name: c.name().to_owned(),
                                kind: kind_of(c.type_()),
                                type_name: c.type_().name().to_owned(),
                            })
                            .collect();
                        lines.extend(check::lines(query, &returned));
                    }
                    Err(e) => {
                        let code = e.as_db_error().map(|d| d.code().code().to_owned());
                        let message = e
                            .as_db_error()
                            .map_or_else(|| e.to_string(), |d| d.message().to_owned());
                        lines.push(check::failed(query, code.as_deref(), &message));
                    }
                }
                client
                    .batch_execute("ROLLBACK TO SAVEPOINT mesa_check")
                    .await?;
            }
            client.batch_execute("ROLLBACK").await?;
            tracing::debug!(%endpoint, queries = queries.len(), "queries described");
            Ok((version, lines))
        })
        .await
}

/// Runs `run`'s queries that apply to this server; their outcomes. `Err` only when the
/// session broke (the collection then fails as any broken session fails it). Statements are
/// prepared once per session (`prepared`); a cached one that fails is prepared afresh next
/// time.
pub(super) async fn run_all(
    client: &Client,
    version: u32,
    prepared: &mut StatementCache,
    run: &UserRun<'_>,
    endpoint: &str,
) -> Result<Vec<Outcome>, tokio_postgres::Error> {
    let mut outcomes = Vec::new();
    if run.queries.is_empty() {
        return Ok(outcomes);
    }
    let in_recovery = if run.queries.iter().any(|q| q.role != custom::Role::Any) {
        client
            .query_one("SELECT pg_catalog.pg_is_in_recovery()", &[])
            .await?
            .try_get::<_, bool>(0)?
    } else {
        false
    };
    // One savepoint for all: each query ends with a rollback to it, which undoes whatever it
    // changed (a `SET LOCAL` of its timeout, a `set_config`, an aborted transaction) and
    // leaves the savepoint in place for the next.
    client.batch_execute("SAVEPOINT mesa_user").await?;
    for query in run
        .queries
        .iter()
        .filter(|q| q.runs_on(version, in_recovery))
    {
        outcomes.push(one(client, query, prepared, run, endpoint).await?);
    }
    client.batch_execute("RELEASE SAVEPOINT mesa_user").await?;
    Ok(outcomes)
}

/// What one query came to before the rollback to the savepoint.
enum Ran {
    Rows(Vec<Vec<Cell>>, Vec<usize>, u64),
    Failed(FailureReason, String),
}

async fn one(
    client: &Client,
    query: &Query,
    prepared: &mut StatementCache,
    run: &UserRun<'_>,
    endpoint: &str,
) -> Result<Outcome, tokio_postgres::Error> {
    let started = Instant::now();
    let left = run
        .deadline
        .saturating_duration_since(started)
        .saturating_sub(MARGIN);
    let timeout = query.timeout.unwrap_or(run.statement_timeout).min(left);
    let ran = if timeout < Duration::from_millis(1) {
        Ran::Failed(
            FailureReason::Timeout,
            "no time left in the collection's deadline".into(),
        )
    } else {
        // The session's statement_timeout is the collection's: set only another one (our own
        // number, never the user's text).
        if timeout != run.statement_timeout {
            client
                .batch_execute(&format!(
                    "SET LOCAL statement_timeout = {}",
                    timeout.as_millis()
                ))
                .await?;
        }
        let statement = match prepared.get(&query.sql) {
            Some(s) => Ok(s),
            None => client.prepare(&query.sql).await,
        };
        let ran = match statement {
            Err(e) => failure(e, endpoint),
            Ok(statement) => {
                let names: Vec<&str> = statement.columns().iter().map(|c| c.name()).collect();
                match custom::match_columns(query, &names) {
                    Err(e) => Ran::Failed(
                        FailureReason::Decode,
                        format!("column {}: {}", e.column, e.detail),
                    ),
                    Ok(at) => {
                        // The rows and the rollback after them, pipelined: one round trip.
                        let (result, rolled_back) = tokio::join!(
                            rows(client, &statement, query.max_rows),
                            client.batch_execute("ROLLBACK TO SAVEPOINT mesa_user")
                        );
                        rolled_back?;
                        let ran = match result {
                            Ok((rows, omitted)) => Ran::Rows(rows, at, omitted),
                            Err(e) => failure(e, endpoint),
                        };
                        if matches!(ran, Ran::Rows(..)) {
                            prepared.keep(query.sql.clone().into(), statement);
                        } else {
                            prepared.forget(&query.sql);
                        }
                        return Ok(outcome(query, run, endpoint, started, ran));
                    }
                }
            }
        };
        prepared.forget(&query.sql);
        client
            .batch_execute("ROLLBACK TO SAVEPOINT mesa_user")
            .await?;
        ran
    };
    Ok(outcome(query, run, endpoint, started, ran))
}

/// The outcome of `query` from what it came to, logged when it failed.
fn outcome(
    query: &Query,
    run: &UserRun<'_>,
    endpoint: &str,
    started: Instant,
    ran: Ran,
) -> Outcome {
    let duration = started.elapsed();
    let result = match ran {
        Ran::Rows(rows, at, omitted) => custom::harvest(query, &at, &rows, run.datname, omitted)
            .map_err(|e| {
                (
                    FailureReason::Decode,
                    format!("column {}: {}", e.column, e.detail),
                )
            }),
        Ran::Failed(reason, detail) => Err((reason, detail)),
    };
    match result {
        Ok(harvest) => Outcome {
            collector: query.name,
            duration,
            result: Ok(harvest),
            collected_at: None,
            from_earlier: false,
        },
        Err((reason, detail)) => {
            tracing::warn!(query = query.name, origin = %query.origin, datname = run.datname.unwrap_or(""), %endpoint, %reason, detail, "user query failed");
            Outcome {
                collector: query.name,
                duration,
                result: Err(reason),
                collected_at: None,
                from_earlier: false,
            }
        }
    }
}

fn failure(e: tokio_postgres::Error, endpoint: &str) -> Ran {
    let e = crate::gateway::postgres::classify_error(e, endpoint);
    Ran::Failed(e.reason(), e.to_string())
}

/// The first `max_rows` rows as cells, and how many more there were.
async fn rows(
    client: &Client,
    statement: &tokio_postgres::Statement,
    max_rows: u32,
) -> Result<(Vec<Vec<Cell>>, u64), tokio_postgres::Error> {
    let stream = client
        .query_raw(
            statement,
            std::iter::empty::<&(dyn tokio_postgres::types::ToSql + Sync)>(),
        )
        .await?;
    let mut stream = std::pin::pin!(stream);
    let mut kept = Vec::new();
    let mut more = 0u64;
    while let Some(row) = stream.try_next().await? {
        if kept.len() < max_rows as usize {
            kept.push(cells(&row)?);
        } else {
            more += 1;
        }
    }
    Ok((kept, more))
}

fn cells(row: &Row) -> Result<Vec<Cell>, tokio_postgres::Error> {
    (0..row.len()).map(|i| row.try_get::<_, Cell>(i)).collect()
}

#[cfg(test)]
mod tests {
    use super::{interval_ms, numeric};

    #[test]
    fn numerics_decode() {
        // 12345.678: ndigits 3, weight 1, sign +, dscale 3; digits 1, 2345, 6780.
        let raw = [0, 3, 0, 1, 0, 0, 0, 3, 0, 1, 0x09, 0x29, 0x1A, 0x7C];
        assert!((numeric(&raw).expect("decodes") - 12345.678).abs() < 1e-9);
        let nan = [0, 0, 0, 0, 0xC0, 0, 0, 0];
        assert!(numeric(&nan).expect("decodes").is_nan());
    }

    #[test]
    fn intervals_decode() {
        let mut raw = Vec::new();
        raw.extend_from_slice(&1_500_000i64.to_be_bytes());
        raw.extend_from_slice(&1i32.to_be_bytes());
        raw.extend_from_slice(&0i32.to_be_bytes());
        assert_eq!(interval_ms(&raw), Some(86_401_500.0));
    }
}
