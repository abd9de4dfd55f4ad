//! MySQL/MariaDB collectors and the run that executes them on one connection.
//!
//! Every family carries mysqld_exporter's name and labels, so its mixin's alerts and
//! dashboards work unchanged; `mysql_connections_utilization_ratio` is Mesa's own, the
//! counterpart of `pg_connections_utilization_ratio`.
//!
//! The run: the collection session (kept between collections by default) runs health first
//! (its failure is the collection's: `mysql_up 0`), then each selected collector's statement,
//! each failing alone (a missing privilege, a statement this server lacks). MySQL has no
//! snapshot across `SHOW` statements, so each collector reads its own moment.

mod processlist;
mod replica;
mod status;

use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::{
    Catalogue, Collection, Entry, Family, HEALTH, Harvest, Kind, Options, Outcome, Schedule, Scope,
    Value,
};
use crate::gateway::mysql::{Flavor, MysqlGateway, Session};
use crate::gateway::{Deadline, Driver, GatewayError};

/// `global_variables` changes when a DBA runs `SET GLOBAL`: read it this often by default.
const VARIABLES_EVERY: Duration = Duration::from_secs(300);

/// The catalogue: every MySQL collector, health first. Order is the run order.
const ENTRIES: [Entry; 5] = [
    entry(HEALTH, Schedule::Every),
    entry(status::STATUS, Schedule::Every),
    entry(status::VARIABLES, Schedule::Interval(VARIABLES_EVERY)),
    entry(processlist::NAME, Schedule::Every),
    entry(replica::NAME, Schedule::Every),
];

const fn entry(name: &'static str, schedule: Schedule) -> Entry {
    Entry {
        name,
        enabled_by_default: true,
        schedule,
        scope: Scope::Server,
    }
}

/// The catalogue the neutral layers see, with mysqld_exporter's up and scrape-error names.
pub static CATALOGUE: Catalogue = Catalogue {
    collectors: &ENTRIES,
    up: "mysql_up",
    last_scrape_error: "mysql_exporter_last_scrape_error",
};

/// The server a collection runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Server {
    /// MariaDB or MySQL.
    pub flavor: Flavor,
    /// `major * 10000 + minor * 100 + patch`, e.g. 101119 for 10.11.19.
    pub version: u32,
}

/// `10.11.19-MariaDB-0+deb12u1-log` as 101119; 0 if it cannot be read.
fn version_num(version: &str) -> u32 {
    let mut parts = version
        .split(['.', '-'])
        .take(3)
        .map(|p| p.parse::<u32>().ok());
    match (parts.next(), parts.next(), parts.next()) {
        (Some(Some(a)), Some(Some(b)), Some(Some(c))) if b < 100 && c < 100 => {
            a * 10_000 + b * 100 + c
        }
        _ => 0,
    }
}

/// Health: `mysql_version_info`, and how full the connection slots are.
async fn health(s: &mut Session, deadline: &Deadline) -> Result<(Server, Harvest), GatewayError> {
    let facts = s.facts(deadline).await?;
    let mut info = Family::new(
        "mysql_version_info",
        "MySQL version and distribution.",
        Kind::Gauge,
    );
    info.push(
        vec![
            ("innodb_version", facts.innodb_version),
            ("version", facts.version.clone()),
            ("version_comment", facts.version_comment),
        ],
        Value::Int(1),
    );
    let mut ratio = Family::new(
        "mysql_connections_utilization_ratio",
        "Client connections (Mesa's own excluded) / max_connections.",
        Kind::Gauge,
    );
    if facts.max_connections > 0 {
        // Threads_connected counts Mesa's collection session too.
        ratio.push(
            vec![],
            Value::Float(
                facts.threads_connected.saturating_sub(1) as f64 / facts.max_connections as f64,
            ),
        );
    }
    let server = Server {
        flavor: s.flavor(),
        version: version_num(&facts.version),
    };
    Ok((
        server,
        Harvest {
            families: vec![info, ratio],
            omitted: None,
        },
    ))
}

/// One collection: health, then every selected collector, each failing alone.
pub async fn collect(
    gateway: &MysqlGateway,
    options: &Options,
    deadline: Deadline,
) -> Result<Collection, GatewayError> {
    gateway
        .collection_session(deadline, async |s, deadline| {
            let started = Instant::now();
            let (server, harvest) = health(s, deadline).await?;
            let mut outcomes = vec![outcome(HEALTH, started, Ok(harvest))];
            for entry in ENTRIES.iter().skip(1) {
                if !options.selection.runs(Driver::Mysql, entry.name) {
                    continue;
                }
                let started = Instant::now();
                let result = match entry.name {
                    status::STATUS => status::global_status(s, deadline).await,
                    status::VARIABLES => status::global_variables(s, deadline).await,
                    processlist::NAME => processlist::collect(s, deadline).await,
                    replica::NAME => replica::collect(s, &server, deadline).await,
                    _ => continue,
                };
                if let Err(e) = &result {
                    tracing::debug!(collector = entry.name, error = %e, "collector failed");
                }
                outcomes.push(outcome(entry.name, started, result));
            }
            Ok(Collection {
                server_version: server.version,
                outcomes,
                ..Collection::default()
            })
        })
        .await
}

fn outcome(
    collector: &'static str,
    started: Instant,
    result: Result<Harvest, GatewayError>,
) -> Outcome {
    let ok = result.is_ok();
    Outcome {
        collector,
        duration: started.elapsed(),
        result: result.map_err(|e| e.reason()),
        collected_at: ok.then(SystemTime::now),
        from_earlier: false,
    }
}

#[cfg(test)]
mod tests {
    use super::version_num;

    #[test]
    fn versions_read_as_numbers() {
        assert_eq!(version_num("10.11.19-MariaDB-0+deb12u1-log"), 101_119);
        assert_eq!(version_num("8.0.36"), 80_036);
        assert_eq!(version_num("11.4.2-MariaDB"), 110_402);
        assert_eq!(version_num("garbage"), 0);
    }
}
