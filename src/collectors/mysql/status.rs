//! `global_status` (`SHOW GLOBAL STATUS`) and `global_variables` (`SHOW GLOBAL VARIABLES`),
//! named as mysqld_exporter names them.
//!
//! Status: the families a variable prefix groups (`Com_*` into
//! `mysql_global_status_commands_total{command}`, `Handler_*`, `Connection_errors_*`,
//! `Innodb_buffer_pool_pages_*`, `Innodb_rows_*`, `Performance_schema_*`), every other numeric
//! variable as `mysql_global_status_<name>`. Variables: every numeric one as
//! `mysql_global_variables_<name>`, and the isolation level as `mysql_transaction_isolation`.
//! `ON`/`YES` read as 1, `OFF`/`NO` as 0; other text is left out.

use std::collections::BTreeMap;

use crate::collectors::{Family, Harvest, Kind, Value};
use crate::gateway::mysql::Session;
use crate::gateway::{Deadline, GatewayError};

/// The status collector's name.
pub(super) const STATUS: &str = "global_status";
/// The variables collector's name.
pub(super) const VARIABLES: &str = "global_variables";

/// A status or variable value as a number, as mysqld_exporter reads it.
fn number(value: &str) -> Option<Value> {
    match value {
        "ON" | "on" | "YES" | "Yes" | "yes" | "Primary" => return Some(Value::Int(1)),
        // Galera's wsrep_cluster_status: only a primary component counts as 1.
        "OFF" | "off" | "NO" | "No" | "no" | "non-Primary" | "Disconnected" => {
            return Some(Value::Int(0));
        }
        _ => {}
    }
    if let Ok(i) = value.parse::<i64>() {
        return Some(Value::Int(i));
    }
    value
        .parse::<f64>()
        .ok()
        .filter(|f| f.is_finite())
        .map(Value::Float)
}

/// Whether `name` can stand in a metric name as it is (lowercased).
fn plain(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Families by name, in name order; each grouped family keeps its own label.
#[derive(Default)]
struct Families(BTreeMap<String, Family>);

impl Families {
    fn push(
        &mut self,
        name: String,
        help: &'static str,
        kind: Kind,
        label: Option<(&'static str, String)>,
        value: Value,
    ) {
        let family = self
            .0
            .entry(name.clone())
            .or_insert_with(|| Family::new(name, help, kind));
        family.push(label.into_iter().collect(), value);
    }

    fn into_harvest(self) -> Harvest {
        Harvest {
            families: self.0.into_values().collect(),
            omitted: None,
        }
    }
}

const GENERIC_STATUS: &str = "Generic metric from SHOW GLOBAL STATUS.";

/// Where one status variable goes: (family name, help, kind, label).
fn status_family(name: &str) -> (String, &'static str, Kind, Option<(&'static str, String)>) {
    let grouped = |family: &str, help, kind, label, value: &str| {
        (
            format!("mysql_global_status_{family}"),
            help,
            kind,
            Some((label, value.to_owned())),
        )
    };
    if let Some(rest) = name.strip_prefix("com_") {
        return grouped(
            "commands",
            "Total number of executed MySQL commands.",
            Kind::Counter,
            "command",
            rest,
        );
    }
    if let Some(rest) = name.strip_prefix("handler_") {
        return grouped(
            "handlers",
            "Total number of executed MySQL handlers.",
            Kind::Counter,
            "handler",
            rest,
        );
    }
    if let Some(rest) = name.strip_prefix("connection_errors_") {
        return grouped(
            "connection_errors",
            "Total number of MySQL connection errors.",
            Kind::Counter,
            "error",
            rest,
        );
    }
    if let Some(rest) = name.strip_prefix("innodb_rows_") {
        return grouped(
            "innodb_row_ops",
            "Total number of MySQL InnoDB row operations.",
            Kind::Counter,
            "operation",
            rest,
        );
    }
    if let Some(rest) = name.strip_prefix("performance_schema_") {
        return grouped(
            "performance_schema_lost",
            "Total number of MySQL instrumentations that could not be loaded or created due to memory constraints.",
            Kind::Counter,
            "instrumentation",
            rest,
        );
    }
    if let Some(rest) = name.strip_prefix("innodb_buffer_pool_pages_") {
        return match rest {
            "data" | "free" | "misc" | "old" => grouped(
                "buffer_pool_pages",
                "Innodb buffer pool pages by state.",
                Kind::Gauge,
                "state",
                rest,
            ),
            "dirty" => (
                "mysql_global_status_buffer_pool_dirty_pages".to_owned(),
                "Innodb buffer pool dirty pages.",
                Kind::Gauge,
                None,
            ),
            _ => grouped(
                "buffer_pool_page_changes",
                "Innodb buffer pool page state changes.",
                Kind::Counter,
                "operation",
                rest,
            ),
        };
    }
    (
        format!("mysql_global_status_{name}"),
        GENERIC_STATUS,
        Kind::Gauge,
        None,
    )
}

/// `global_status`.
pub(super) async fn global_status(
    s: &mut Session,
    deadline: &Deadline,
) -> Result<Harvest, GatewayError> {
    let mut out = Families::default();
    for (name, value) in s.name_values("SHOW GLOBAL STATUS", deadline).await? {
        let name = name.to_ascii_lowercase();
        // The buffer pool's total is the sum of its states (mysqld_exporter leaves it out).
        if !plain(&name) || name == "innodb_buffer_pool_pages_total" {
            continue;
        }
        let Some(value) = number(&value) else {
            continue;
        };
        let (family, help, kind, label) = status_family(&name);
        out.push(family, help, kind, label, value);
    }
    Ok(out.into_harvest())
}

/// `global_variables`.
pub(super) async fn global_variables(
    s: &mut Session,
    deadline: &Deadline,
) -> Result<Harvest, GatewayError> {
    let mut out = Families::default();
    for (name, value) in s.name_values("SHOW GLOBAL VARIABLES", deadline).await? {
        let name = name.to_ascii_lowercase();
        if matches!(name.as_str(), "tx_isolation" | "transaction_isolation") {
            // Both names exist on some servers: one series.
            if !out.0.contains_key("mysql_transaction_isolation") {
                out.push(
                    "mysql_transaction_isolation".to_owned(),
                    "MySQL transaction isolation.",
                    Kind::Gauge,
                    Some(("level", value)),
                    Value::Int(1),
                );
            }
            continue;
        }
        if !plain(&name) {
            continue;
        }
        let Some(value) = number(&value) else {
            continue;
        };
        out.push(
            format!("mysql_global_variables_{name}"),
            "Generic gauge metric from SHOW GLOBAL VARIABLES.",
            Kind::Gauge,
            None,
            value,
        );
    }
    Ok(out.into_harvest())
}

#[cfg(test)]
mod tests {
    use super::{Kind, Value, number, status_family};

    #[test]
    fn values_read_as_mysqld_exporter_reads_them() {
        assert_eq!(number("42"), Some(Value::Int(42)));
        assert_eq!(number("0.5"), Some(Value::Float(0.5)));
        assert_eq!(number("ON"), Some(Value::Int(1)));
        assert_eq!(number("OFF"), Some(Value::Int(0)));
        assert_eq!(
            number("18446744073709551615"),
            Some(Value::Float(18_446_744_073_709_551_615.0))
        );
        assert_eq!(number("AUTH_MASTER"), None);
        assert_eq!(number(""), None);
    }

    #[test]
    fn grouped_status_variables_land_in_mysqld_exporters_families() {
        let (name, _, kind, label) = status_family("com_select");
        assert_eq!(
            (name.as_str(), kind),
            ("mysql_global_status_commands", Kind::Counter)
        );
        assert_eq!(label, Some(("command", "select".to_owned())));
        let (name, _, kind, label) = status_family("innodb_buffer_pool_pages_free");
        assert_eq!(
            (name.as_str(), kind),
            ("mysql_global_status_buffer_pool_pages", Kind::Gauge)
        );
        assert_eq!(label, Some(("state", "free".to_owned())));
        let (name, _, _, label) = status_family("innodb_buffer_pool_pages_dirty");
        assert_eq!(
            (name.as_str(), label),
            ("mysql_global_status_buffer_pool_dirty_pages", None)
        );
        let (name, _, kind, _) = status_family("innodb_buffer_pool_pages_flushed");
        assert_eq!(
            (name.as_str(), kind),
            (
                "mysql_global_status_buffer_pool_page_changes",
                Kind::Counter
            )
        );
        let (name, _, kind, label) = status_family("threads_connected");
        assert_eq!(
            (name.as_str(), kind, label),
            ("mysql_global_status_threads_connected", Kind::Gauge, None)
        );
    }
}
