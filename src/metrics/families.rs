//! Database facts as const metrics, encoded from immutable snapshots at scrape time.
//!
//! Names follow postgres_exporter where the concept overlaps (DESIGN.md §3.3). On `/metrics`
//! every series carries `server="<target>"`; on `/probe` the same families come without it.
//! A target whose last attempt failed shows `pg_up 0` and no other `pg_*` series: a value is
//! either fresh or absent, never stale.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;

use crate::gateway::Collection;
use crate::snapshot::{SnapshotStore, TargetSnapshot};

/// Appended to every HELP text of database facts.
const CACHED: &str =
    "Collected on a schedule and cached; see mesa_collect_last_success_timestamp_seconds.";

/// A sample value.
#[derive(Debug, Clone, Copy)]
enum Value {
    Int(i64),
    Float(f64),
}

/// One series: its labels (without `server`) and value.
type Row<'a> = (Vec<(&'static str, &'a str)>, Value);

fn seconds(d: Duration) -> Value {
    Value::Float(d.as_secs_f64())
}

fn unix(t: SystemTime) -> Value {
    Value::Float(
        t.duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64(),
    )
}

/// The labels of an activity group.
fn group(g: &crate::gateway::ActivityGroup) -> Vec<(&'static str, &str)> {
    vec![
        ("datname", g.database.as_str()),
        ("usename", g.user.as_str()),
        ("state", g.state.as_str()),
    ]
}

/// Encodes one family. Skipped when no target has a series for it.
fn family<'a>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    server_label: bool,
    per_target: impl Iterator<Item = (&'a str, Vec<Row<'a>>)>,
) -> Result<(), std::fmt::Error> {
    let rows: Vec<(&str, Vec<Row<'a>>)> = per_target.filter(|(_, r)| !r.is_empty()).collect();
    if rows.is_empty() {
        return Ok(());
    }
    let mut metric = enc.encode_descriptor(name, help, None, kind)?;
    for (server, series) in rows {
        for (labels, value) in series {
            let mut all: Vec<(&str, &str)> = Vec::with_capacity(labels.len() + 1);
            if server_label {
                all.push(("server", server));
            }
            all.extend(labels);
            let mut m = metric.encode_family(&all)?;
            match (kind, value) {
                (MetricType::Counter, Value::Int(v)) => m
                    .encode_counter::<prometheus_client::encoding::NoLabelSet, _, u64>(
                        &u64::try_from(v).unwrap_or(0),
                        None,
                    )?,
                (MetricType::Counter, Value::Float(v)) => {
                    m.encode_counter::<prometheus_client::encoding::NoLabelSet, _, f64>(&v, None)?
                }
                (_, Value::Int(v)) => m.encode_gauge(&v)?,
                (_, Value::Float(v)) => m.encode_gauge(&v)?,
            }
        }
    }
    Ok(())
}

/// The `pg_*` and per-target `mesa_collect_*` families of a set of snapshots.
#[derive(Debug)]
pub struct SnapshotFamilies {
    snapshots: Vec<Arc<TargetSnapshot>>,
    server_label: bool,
}

impl SnapshotFamilies {
    /// Families for `snapshots`; `server_label` false for `/probe`.
    pub fn new(snapshots: Vec<Arc<TargetSnapshot>>, server_label: bool) -> Self {
        Self {
            snapshots,
            server_label,
        }
    }

    fn each<'a>(
        &'a self,
        rows: impl Fn(&'a TargetSnapshot) -> Vec<Row<'a>> + 'a,
    ) -> impl Iterator<Item = (&'a str, Vec<Row<'a>>)> + 'a {
        self.snapshots
            .iter()
            .map(move |s| (s.target.as_str(), rows(s)))
    }

    fn each_up<'a>(
        &'a self,
        rows: impl Fn(&'a Collection) -> Vec<Row<'a>> + 'a,
    ) -> impl Iterator<Item = (&'a str, Vec<Row<'a>>)> + 'a {
        self.snapshots.iter().map(move |s| {
            let series = match &s.result {
                Ok(c) => rows(c),
                Err(_) => Vec::new(),
            };
            (s.target.as_str(), series)
        })
    }

    /// Encodes the `mesa_collect_*` families that come from snapshots.
    pub fn encode_collect_meta(&self, enc: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let sl = self.server_label;
        family(
            enc,
            "mesa_collect_duration_seconds",
            "Duration of the target's last collection attempt, in seconds.",
            MetricType::Gauge,
            sl,
            self.each(|s| vec![(vec![], seconds(s.duration))]),
        )?;
        family(
            enc,
            "mesa_collect_last_success_timestamp_seconds",
            "When the target's last successful collection finished, as Unix seconds; time() minus this is the age of its pg_* values.",
            MetricType::Gauge,
            sl,
            self.each(|s| {
                s.last_success
                    .map(|t| (vec![], unix(t)))
                    .into_iter()
                    .collect()
            }),
        )
    }

    /// Encodes the `pg_*` families.
    pub fn encode_pg(&self, enc: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let sl = self.server_label;
        let help = |text: &str| format!("{text} {CACHED}");
        family(
            enc,
            "pg_up",
            &help("1 if the last collection connected and ran, else 0."),
            MetricType::Gauge,
            sl,
            self.each(|s| vec![(vec![], Value::Int(i64::from(s.up())))]),
        )?;
        family(
            enc,
            "pg_static",
            &help("Server version; the value is always 1."),
            MetricType::Gauge,
            sl,
            self.each_up(|c| {
                vec![(
                    vec![
                        ("version", c.health.version.as_str()),
                        ("short_version", c.health.short_version.as_str()),
                    ],
                    Value::Int(1),
                )]
            }),
        )?;
        family(
            enc,
            "pg_postmaster_start_time_seconds",
            &help("When the server started, as Unix seconds."),
            MetricType::Gauge,
            sl,
            self.each_up(|c| vec![(vec![], unix(c.health.started_at))]),
        )?;
        family(
            enc,
            "pg_settings_max_connections",
            &help("The max_connections setting."),
            MetricType::Gauge,
            sl,
            self.each_up(|c| vec![(vec![], Value::Int(i64::from(c.health.max_connections)))]),
        )?;
        family(
            enc,
            "pg_settings_superuser_reserved_connections",
            &help("The superuser_reserved_connections setting."),
            MetricType::Gauge,
            sl,
            self.each_up(|c| {
                vec![(
                    vec![],
                    Value::Int(i64::from(c.health.superuser_reserved_connections)),
                )]
            }),
        )?;
        family(
            enc,
            "pg_stat_activity_count",
            &help("Client backends per database, user and state (Mesa's own excluded)."),
            MetricType::Gauge,
            sl,
            self.each_up(|c| {
                c.activity
                    .iter()
                    .map(|g| (group(g), Value::Int(i64::from(g.count))))
                    .collect()
            }),
        )?;
        family(
            enc,
            "pg_stat_activity_max_tx_duration",
            &help("Age of the oldest open transaction per database, user and state, in seconds."),
            MetricType::Gauge,
            sl,
            self.each_up(|c| {
                c.activity
                    .iter()
                    .map(|g| (group(g), seconds(g.max_tx_duration)))
                    .collect()
            }),
        )?;
        family(
            enc,
            "pg_stat_activity_max_query_duration_seconds",
            &help("Longest-running active statement per database, user and state, in seconds."),
            MetricType::Gauge,
            sl,
            self.each_up(|c| {
                c.activity
                    .iter()
                    .map(|g| (group(g), seconds(g.max_query_duration)))
                    .collect()
            }),
        )?;
        family(
            enc,
            "pg_connections_utilization_ratio",
            &help("Client backends / (max_connections - superuser_reserved_connections)."),
            MetricType::Gauge,
            sl,
            self.each_up(|c| {
                let h = &c.health;
                let usable = h
                    .max_connections
                    .saturating_sub(h.superuser_reserved_connections);
                if usable == 0 {
                    return Vec::new();
                }
                let ratio = f64::from(h.client_sessions) / f64::from(usable);
                vec![(vec![], Value::Float(ratio))]
            }),
        )?;
        family(
            enc,
            "pg_database_size_bytes",
            &help("Database size on disk, in bytes; absent when the role may not read it."),
            MetricType::Gauge,
            sl,
            self.each_up(|c| {
                c.databases
                    .iter()
                    .filter_map(|d| {
                        let size = i64::try_from(d.size_bytes?).ok()?;
                        Some((vec![("datname", d.name.as_str())], Value::Int(size)))
                    })
                    .collect()
            }),
        )?;
        family(
            enc,
            "pg_database_info",
            &help("Database owner and encoding; the value is always 1."),
            MetricType::Gauge,
            sl,
            self.each_up(|c| {
                c.databases
                    .iter()
                    .map(|d| {
                        (
                            vec![
                                ("datname", d.name.as_str()),
                                ("owner", d.owner.as_str()),
                                ("encoding", d.encoding.as_str()),
                            ],
                            Value::Int(1),
                        )
                    })
                    .collect()
            }),
        )
    }
}

impl Collector for SnapshotFamilies {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        self.encode_pg(&mut enc)?;
        self.encode_collect_meta(&mut enc)
    }
}

/// Reads the store at scrape time (for the long-lived `/metrics` registry).
#[derive(Debug)]
pub struct StoreFamilies(pub Arc<SnapshotStore>);

impl Collector for StoreFamilies {
    fn encode(&self, enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        SnapshotFamilies::new(self.0.all(), true).encode(enc)
    }
}
