//! Fixed collections for tests that need one without a server: every collector of the
//! catalogue fed with made-up rows through its own build, so golden files cover every
//! family a collector can yield (a new collector shows up in them without further work).

use std::time::Duration;

use mesa::collectors::postgres::{ALL, Definition, Record};
use mesa::collectors::{Collection, Outcome, Value};

/// A plausible value for a label column, by name.
fn label(name: &str, row: usize) -> String {
    let rows: &[&str] = match name {
        "version" => &["PostgreSQL 15.18 (Debian 15.18-0+deb12u1) on x86_64-pc-linux-gnu"],
        "short_version" => &["15.18.0"],
        "datname" | "database" => &["orders", "reports"],
        "datid" => &["16384", "16385"],
        "usename" | "user" => &["app", "etl"],
        "owner" => &["app_owner", "postgres"],
        "encoding" => &["UTF8", "SQL_ASCII"],
        "state" => &["active", "idle in transaction"],
        "mode" => &["accessexclusivelock", "rowexclusivelock"],
        "slot_name" => &["standby_1", "cdc"],
        "slot_type" => &["physical", "logical"],
        "application_name" => &["walreceiver", "pg_receivewal"],
        "client_addr" => &["10.0.0.2", "10.0.0.3"],
        "sync_state" => &["async", "sync"],
        "schemaname" => &["public", "audit"],
        "relname" => &["orders", "order_lines"],
        "indexrelname" => &["orders_pkey", "order_lines_order_id_idx"],
        "queryid" => &["-4157263125094571217", "8210551326912434337"],
        "query" => &[
            "SELECT * FROM orders WHERE id = $1",
            "ALTER ROLE app PASSWORD 'hunter2'",
        ],
        "wait_event_type" => &["Lock", "IO"],
        "wait_event" => &["relation", "DataFileRead"],
        "phase" => &["scanning heap", "vacuuming indexes"],
        "relid" => &["16390", "16402"],
        "backend_type" => &["client backend", "checkpointer"],
        "object" => &["relation", "wal"],
        "context" => &["normal", "bulkread"],
        "subname" => &["orders_sub", "audit_sub"],
        other => panic!("no sample value for label {other:?}; add one to tests/it/sample.rs"),
    };
    rows[row % rows.len()].to_owned()
}

/// Two made-up rows for a shaped collector (one for a server-wide one).
pub fn records(def: &Definition) -> Vec<Record> {
    if def.name == "settings" {
        return [
            (
                "shared_buffers",
                "8kB",
                "Sets the number of shared memory buffers.",
                16384.0,
            ),
            (
                "autovacuum_vacuum_scale_factor",
                "",
                "Fraction of tuples before vacuum.",
                0.2,
            ),
            (
                "statement_timeout",
                "ms",
                "Maximum allowed duration of any statement.",
                0.0,
            ),
            (
                "fsync",
                "",
                "Forces synchronization of updates to disk.",
                1.0,
            ),
        ]
        .into_iter()
        .map(|(name, unit, desc, v)| Record {
            labels: vec![name.to_owned(), unit.to_owned(), desc.to_owned()],
            values: vec![Some(Value::Float(v))],
        })
        .collect();
    }
    let rows = if def.labels.is_empty() || def.labels == ["version", "short_version"] {
        1
    } else {
        2
    };
    (0..rows)
        .map(|row| {
            let mut values: Vec<Option<Value>> = (0..def.metrics.len())
                .map(|j| {
                    let n = (row * 100 + j + 1) as i64;
                    Some(if j % 3 == 2 {
                        Value::Float(n as f64 + 0.25)
                    } else {
                        Value::Int(n)
                    })
                })
                .collect();
            if def.guarded {
                // Five rows before the guard, two kept: three left out.
                values.push(Some(Value::Int(5)));
            }
            if def.ranked {
                // Each row's size for the guard over databases, largest first.
                values.push(Some(Value::Int(100 - row as i64)));
            }
            Record {
                labels: def.labels.iter().map(|l| label(l, row)).collect(),
                values,
            }
        })
        .collect()
}

/// A collection with every collector's families.
pub fn collection() -> Collection {
    let outcomes = ALL
        .iter()
        .enumerate()
        .map(|(i, def)| Outcome {
            collector: def.name,
            duration: Duration::from_micros(250 * (i as u64 + 1)),
            result: Ok(def.harvest(&records(def))),
            // A fixed time, so golden files stay the same from run to run.
            collected_at: Some(std::time::UNIX_EPOCH + Duration::from_secs(1_800_000_000)),
            from_earlier: false,
        })
        .collect();
    Collection {
        server_version: 150_018,
        outcomes,
        change_key: Some("2027-01-15 08:00:00+00 2027-01-15 07:59:58+00".to_owned()),
        databases: None,
        visited: None,
    }
}
