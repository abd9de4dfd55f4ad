//! Database facts as const metrics, encoded from immutable snapshots at scrape time.
//!
//! Collectors build their families once per collection (`collectors`); this module only
//! merges them across targets (one family per name, its series from every target) and adds
//! the per-target meta families. On `/metrics` every series carries `server="<target>"`; on
//! `/probe` the same families come without it. A target whose last attempt failed shows
//! `pg_up 0` and no other `pg_*` series: a value is either fresh or absent, never stale.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;

use crate::collectors::{Family, Kind, Series, Value};
use crate::snapshot::{SnapshotStore, TargetSnapshot};

/// Appended to every HELP text of database facts.
const CACHED: &str =
    "Collected on a schedule and cached; see mesa_collect_last_success_timestamp_seconds.";

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

/// A family being merged: its first-seen help and type, and each target's series.
struct Merged<'a> {
    name: &'a str,
    help: &'a str,
    kind: Kind,
    parts: Vec<(&'a str, &'a [Series])>,
}

/// Encodes one family's series from several targets.
fn encode(
    enc: &mut DescriptorEncoder,
    family: &Merged<'_>,
    help: &str,
    server_label: bool,
) -> Result<(), std::fmt::Error> {
    if family.parts.iter().all(|(_, s)| s.is_empty()) {
        return Ok(());
    }
    let kind = match family.kind {
        Kind::Gauge => MetricType::Gauge,
        Kind::Counter => MetricType::Counter,
    };
    let mut metric = enc.encode_descriptor(family.name, help, None, kind)?;
    for (server, series) in &family.parts {
        for s in series.iter() {
            let mut labels: Vec<(&str, &str)> = Vec::with_capacity(s.labels.len() + 1);
            if server_label {
                labels.push(("server", server));
            }
            labels.extend(s.labels.iter().map(|(k, v)| (*k, v.as_str())));
            let mut m = metric.encode_family(&labels)?;
            match (family.kind, s.value) {
                (Kind::Counter, Value::Int(v)) => {
                    m.encode_counter::<NoLabelSet, _, u64>(&u64::try_from(v).unwrap_or(0), None)?
                }
                (Kind::Counter, Value::Float(v)) => {
                    m.encode_counter::<NoLabelSet, _, f64>(&v.max(0.0), None)?
                }
                (Kind::Gauge, Value::Int(v)) => m.encode_gauge(&v)?,
                (Kind::Gauge, Value::Float(v)) => m.encode_gauge(&v)?,
            }
        }
    }
    Ok(())
}

/// The `pg_*` and per-target `mesa_collect*` families of a set of snapshots.
#[derive(Debug)]
pub struct SnapshotFamilies {
    snapshots: Vec<Arc<TargetSnapshot>>,
    server_label: bool,
}

/// A meta family built here (not by a collector).
fn meta(name: &'static str, help: &'static str, kind: Kind) -> Family {
    Family::new(name, help, kind)
}

impl SnapshotFamilies {
    /// Families for `snapshots`; `server_label` false for `/probe`.
    pub fn new(snapshots: Vec<Arc<TargetSnapshot>>, server_label: bool) -> Self {
        Self {
            snapshots,
            server_label,
        }
    }

    /// Per-target families Mesa derives from each snapshot: `pg_up`, collection timing, and
    /// each collector's success, duration and size-guard omissions.
    fn derived(snapshot: &TargetSnapshot) -> Vec<Family> {
        let mut up = meta(
            "pg_up",
            "1 if the last collection connected and the core health statement ran, else 0.",
            Kind::Gauge,
        );
        up.push(Vec::new(), Value::Int(i64::from(snapshot.up())));
        let mut duration = meta(
            "mesa_collect_duration_seconds",
            "Duration of the target's last collection attempt, in seconds.",
            Kind::Gauge,
        );
        duration.push(Vec::new(), seconds(snapshot.duration));
        let mut last = meta(
            "mesa_collect_last_success_timestamp_seconds",
            "When the target's last successful collection finished, as Unix seconds; time() minus this is the age of its pg_* values.",
            Kind::Gauge,
        );
        if let Some(t) = snapshot.last_success {
            last.push(Vec::new(), unix(t));
        }
        let mut success = meta(
            "mesa_collector_success",
            "1 if the collector ran in the target's last collection, 0 if it failed (its families are then absent).",
            Kind::Gauge,
        );
        let mut took = meta(
            "mesa_collector_duration_seconds",
            "Server and decoding time of the collector in the target's last collection, in seconds.",
            Kind::Gauge,
        );
        let mut omitted = meta(
            "mesa_collector_rows_omitted",
            "Rows a collector's size guard (max_tables, max_statements) left out of the last collection.",
            Kind::Gauge,
        );
        let mut scrape_error = meta(
            "pg_exporter_last_scrape_error",
            "1 if the last collection failed or any collector in it failed, else 0 (postgres_exporter's name).",
            Kind::Gauge,
        );
        let mut any_failed = !snapshot.up();
        if let Ok(collection) = &snapshot.result {
            for o in &collection.outcomes {
                let label = || vec![("collector", o.collector.to_owned())];
                success.push(label(), Value::Int(i64::from(o.result.is_ok())));
                took.push(label(), seconds(o.duration));
                match &o.result {
                    Ok(h) => {
                        if let Some(n) = h.omitted {
                            omitted.push(label(), Value::Int(i64::try_from(n).unwrap_or(i64::MAX)));
                        }
                    }
                    Err(_) => any_failed = true,
                }
            }
        }
        scrape_error.push(Vec::new(), Value::Int(i64::from(any_failed)));
        vec![up, duration, last, success, took, omitted, scrape_error]
    }

    fn encode_all(&self, enc: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let derived: Vec<(&str, Vec<Family>)> = self
            .snapshots
            .iter()
            .map(|s| (s.target.as_str(), Self::derived(s)))
            .collect();
        let mut order: Vec<Merged<'_>> = Vec::new();
        let mut index: HashMap<&str, usize> = HashMap::new();
        // pg_up first, then collector families in catalogue order, then the meta families.
        let sources = derived
            .iter()
            .map(|(server, families)| (*server, &families[..1]))
            .chain(
                self.snapshots
                    .iter()
                    .filter_map(|s| s.result.as_ref().ok().map(|c| (s.target.as_str(), c)))
                    .flat_map(|(server, c)| {
                        c.outcomes.iter().filter_map(move |o| {
                            o.result
                                .as_ref()
                                .ok()
                                .map(move |h| (server, &h.families[..]))
                        })
                    }),
            )
            .chain(
                derived
                    .iter()
                    .map(|(server, families)| (*server, &families[1..])),
            );
        for (server, families) in sources {
            for family in families {
                let at = *index.entry(family.name.as_ref()).or_insert_with(|| {
                    order.push(Merged {
                        name: family.name.as_ref(),
                        help: family.help.as_ref(),
                        kind: family.kind,
                        parts: Vec::new(),
                    });
                    order.len() - 1
                });
                order[at].parts.push((server, &family.series));
            }
        }
        for family in &order {
            let help = if family.name.starts_with("pg_") {
                format!("{} {CACHED}", family.help)
            } else {
                family.help.to_owned()
            };
            encode(enc, family, &help, self.server_label)?;
        }
        Ok(())
    }
}

impl Collector for SnapshotFamilies {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        self.encode_all(&mut enc)
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
