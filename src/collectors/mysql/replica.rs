//! `replica_status`: `SHOW ALL SLAVES STATUS` (MariaDB, every connection), `SHOW REPLICA
//! STATUS` (MySQL 8.0.22 on) or `SHOW SLAVE STATUS` (older MySQL), as mysqld_exporter's
//! `mysql_slave_status_<column>` families with `channel_name`, `connection_name`,
//! `master_host` and `master_uuid`. MySQL's newer column names (`Replica_IO_Running`,
//! `Seconds_Behind_Source`) are read as the older ones, so the mixin's queries hold on every
//! version. A server that replicates from nothing yields no series.

use std::collections::BTreeMap;

use super::Server;
use crate::collectors::{Family, Harvest, Kind, Value};
use crate::gateway::mysql::text;
use crate::gateway::mysql::{Flavor, Session};
use crate::gateway::{Deadline, GatewayError};

/// The collector's name.
pub(super) const NAME: &str = "replica_status";

/// The statement for `server`.
fn statement(server: &Server) -> &'static str {
    match server.flavor {
        Flavor::Mariadb => "SHOW ALL SLAVES STATUS",
        Flavor::Mysql if server.version >= 80_022 => "SHOW REPLICA STATUS",
        Flavor::Mysql => "SHOW SLAVE STATUS",
    }
}

/// A column name as mysqld_exporter's (the pre-8.0.22 spelling), lower case.
fn column_name(raw: &str) -> String {
    raw.to_ascii_lowercase()
        .replace("replica", "slave")
        .replace("source", "master")
}

/// A column's value: numbers, `Yes`/`No`, and for the running flags `Connecting` as 0.
fn value(raw: &str) -> Option<Value> {
    match raw {
        "Yes" | "ON" => Some(Value::Int(1)),
        "No" | "OFF" | "Connecting" | "Preparing" => Some(Value::Int(0)),
        _ => raw.parse::<i64>().map(Value::Int).ok().or_else(|| {
            raw.parse::<f64>()
                .ok()
                .filter(|f| f.is_finite())
                .map(Value::Float)
        }),
    }
}

/// `replica_status`.
pub(super) async fn collect(
    s: &mut Session,
    server: &Server,
    deadline: &Deadline,
) -> Result<Harvest, GatewayError> {
    let rows = s.rows(statement(server), deadline).await?;
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    for row in &rows {
        let columns: Vec<String> = row
            .columns_ref()
            .iter()
            .map(|c| column_name(&c.name_str()))
            .collect();
        let field = |name: &str| -> Result<String, GatewayError> {
            match columns.iter().position(|c| c == name) {
                Some(i) => text(row, i),
                None => Ok(String::new()),
            }
        };
        let labels = vec![
            ("channel_name", field("channel_name")?),
            ("connection_name", field("connection_name")?),
            ("master_host", field("master_host")?),
            ("master_uuid", field("master_uuid")?),
        ];
        for (i, column) in columns.iter().enumerate() {
            if !column
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
            {
                continue;
            }
            let Some(v) = value(&text(row, i)?) else {
                continue;
            };
            let name = format!("mysql_slave_status_{column}");
            families
                .entry(name.clone())
                .or_insert_with(|| {
                    Family::new(name, "Generic metric from SHOW SLAVE STATUS.", Kind::Gauge)
                })
                .push(labels.clone(), v);
        }
    }
    Ok(Harvest {
        families: families.into_values().collect(),
        omitted: None,
    })
}

#[cfg(test)]
mod tests {
    use super::{Flavor, Server, column_name, statement, value};
    use crate::collectors::Value;

    #[test]
    fn every_version_reads_its_statement_under_the_old_names() {
        let at = |flavor, version| statement(&Server { flavor, version });
        assert_eq!(at(Flavor::Mariadb, 101_119), "SHOW ALL SLAVES STATUS");
        assert_eq!(at(Flavor::Mysql, 80_036), "SHOW REPLICA STATUS");
        assert_eq!(at(Flavor::Mysql, 80_021), "SHOW SLAVE STATUS");
        assert_eq!(column_name("Replica_IO_Running"), "slave_io_running");
        assert_eq!(
            column_name("Seconds_Behind_Source"),
            "seconds_behind_master"
        );
        assert_eq!(value("Yes"), Some(Value::Int(1)));
        assert_eq!(value("Connecting"), Some(Value::Int(0)));
        assert_eq!(value("mysql-bin.000003"), None);
    }
}
