//! Database facts as const metrics, encoded once per immutable snapshot, copied per scrape.
//!
//! Collectors build their families once per collection (`collectors`). This module encodes
//! each target's families once per snapshot ([`EncodedTarget`]: the sample lines of every
//! family, ready to copy) and merges those texts across targets (`scrape` keeps the merge
//! until a target changes): one HELP/TYPE header per family name, then every target's lines
//! for it. A scrape therefore formats no sample; it copies bytes. On `/metrics` every series carries `server="<target>"`; on
//! `/probe` the same families come without it. A target whose last attempt failed shows
//! `pg_up 0` and no other `pg_*` series: a value is either fresh or absent, never stale.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::collectors::{Family, Harvest, Kind, Value, Visit};
use crate::snapshot::TargetSnapshot;

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

/// One family of one target, encoded: the header the family is served under and its sample
/// lines.
#[derive(Debug, Clone)]
struct EncodedFamily {
    /// The collector that yielded it (`None` for Mesa's derived families), so a collector
    /// that serves an earlier result can take its lines over.
    collector: Option<&'static str>,
    /// Shared by every target (see [`header`]).
    name: Arc<str>,
    /// `# HELP` and `# TYPE` lines, shared by every target that has the same ones.
    header: Arc<str>,
    /// Where its sample lines are in the target's text (empty when the target has no
    /// series of it).
    lines: std::ops::Range<u32>,
}

/// A target's families, encoded once per snapshot, in the three phases the merged output
/// orders them by: `pg_up`, the collectors' families, Mesa's per-target meta families. All
/// sample lines are one string (one allocation per target, not one per family).
#[derive(Debug, Clone)]
pub struct EncodedTarget {
    text: String,
    phases: [Vec<EncodedFamily>; 3],
}

/// One interned header: what it was made from, and the shared name and text.
#[derive(Debug)]
struct Interned {
    help: String,
    kind: Kind,
    name: Arc<str>,
    header: Arc<str>,
}

/// The `# HELP` and `# TYPE` lines of `family` as served (database facts say they are
/// cached; prometheus-client writes these two lines the same way, unescaped), and its name.
///
/// Both are interned: a header is the same for every target, and `settings` alone has ~300
/// families with long help texts, so a copy per target would cost ~200 KiB per target, and
/// formatting them per collection showed in the profile. The table holds one entry per
/// family name the catalogue can yield (bounded by the collectors and the server's
/// settings); a header that changed (another server version's help text) replaces its entry.
fn header(family: &Family) -> (Arc<str>, Arc<str>) {
    static HEADERS: std::sync::LazyLock<std::sync::Mutex<HashMap<String, Interned>>> =
        std::sync::LazyLock::new(Default::default);
    let mut headers = HEADERS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(i) = headers.get(family.name.as_ref())
        && i.kind == family.kind
        && i.help == family.help
    {
        return (i.name.clone(), i.header.clone());
    }
    let kind = match family.kind {
        Kind::Gauge => "gauge",
        Kind::Counter => "counter",
    };
    // Every family is a database fact, collected on a schedule, except Mesa's own (`mesa_`).
    let cached = if !family.name.starts_with("mesa_") {
        format!(" {CACHED}")
    } else {
        String::new()
    };
    let text = format!(
        "# HELP {0} {1}{cached}\n# TYPE {0} {kind}\n",
        family.name, family.help
    );
    let interned = Interned {
        help: family.help.clone().into_owned(),
        kind: family.kind,
        name: Arc::from(family.name.as_ref()),
        header: Arc::from(text),
    };
    let out = (interned.name.clone(), interned.header.clone());
    headers.insert(family.name.clone().into_owned(), interned);
    out
}

/// Help of `mesa_collector_success` (one text for the target's and the databases' series).
const SUCCESS_HELP: &str = "1 if the collector ran in the target's last collection (with datname: the database's last visit), 0 if it failed (its families are then absent).";
/// Help of `mesa_collector_rows_omitted`.
const OMITTED_HELP: &str = "Rows a collector's size guard (max_tables, max_indexes, max_statements) left out of the last collection (with datname: of that database's last visit).";

/// A target's text stays far below 4 GiB (the guards bound its rows).
fn at(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Appends `f`'s sample lines to `text` (with `server` as the first label when given) and
/// says where they are.
fn encode_family(
    text: &mut String,
    f: &Family,
    collector: Option<&'static str>,
    server: Option<&str>,
) -> EncodedFamily {
    let (name, header) = header(f);
    let start = text.len();
    super::lines::write_family(text, f, server);
    EncodedFamily {
        collector,
        name,
        header,
        lines: at(start)..at(text.len()),
    }
}

/// The successful outcomes of a snapshot, in run order.
fn collected(snapshot: &TargetSnapshot) -> impl Iterator<Item = &crate::collectors::Outcome> {
    snapshot
        .result
        .iter()
        .flat_map(|c| c.outcomes.iter())
        .filter(|o| o.result.is_ok())
}

impl EncodedTarget {
    /// Per-target families Mesa derives from each snapshot: `pg_up`, collection timing, and
    /// each collector's success, duration and size-guard omissions.
    pub fn derived(snapshot: &TargetSnapshot) -> Vec<Family> {
        let names = crate::collectors::catalogue(snapshot.driver);
        let mut up = Family::new(
            names.up,
            "1 if the last collection connected and the core health statement ran, else 0.",
            Kind::Gauge,
        );
        up.push(Vec::new(), Value::Int(i64::from(snapshot.up())));
        let mut duration = Family::new(
            "mesa_collect_duration_seconds",
            "Duration of the target's last collection attempt, in seconds.",
            Kind::Gauge,
        );
        duration.push(Vec::new(), seconds(snapshot.duration));
        let mut last = Family::new(
            "mesa_collect_last_success_timestamp_seconds",
            "When the target's last successful collection finished, as Unix seconds; time() minus this is the age of its pg_* values.",
            Kind::Gauge,
        );
        if let Some(t) = snapshot.last_success {
            last.push(Vec::new(), unix(t));
        }
        let mut success = Family::new("mesa_collector_success", SUCCESS_HELP, Kind::Gauge);
        let mut took = Family::new(
            "mesa_collector_duration_seconds",
            "Server and decoding time of the collector in the target's last collection, in seconds.",
            Kind::Gauge,
        );
        let mut collected = Family::new(
            "mesa_collector_last_success_timestamp_seconds",
            "When the result the collector serves was collected, as Unix seconds; a collector on a longer schedule (collectors.<name>.interval) serves an earlier collection's result in between.",
            Kind::Gauge,
        );
        let mut omitted = Family::new("mesa_collector_rows_omitted", OMITTED_HELP, Kind::Gauge);
        let mut databases_omitted = Family::new(
            "mesa_databases_omitted",
            "Databases that pass databases.include/exclude but are not visited: over databases.max (the largest are visited).",
            Kind::Gauge,
        );
        let mut scrape_error = Family::new(
            names.last_scrape_error,
            "1 if the last collection failed or any collector in it failed, else 0 (postgres_exporter's name).",
            Kind::Gauge,
        );
        let mut any_failed = !snapshot.up();
        if let Ok(collection) = &snapshot.result {
            if let Some(chosen) = &collection.visited {
                databases_omitted.push(
                    Vec::new(),
                    Value::Int(i64::try_from(chosen.omitted()).unwrap_or(i64::MAX)),
                );
            }
            for o in &collection.outcomes {
                let label = || vec![("collector", o.collector.to_owned())];
                success.push(label(), Value::Int(i64::from(o.result.is_ok())));
                took.push(label(), seconds(o.duration));
                match &o.result {
                    Ok(h) => {
                        if let Some(t) = o.collected_at {
                            collected.push(label(), unix(t));
                        }
                        if let Some(n) = h.omitted {
                            omitted.push(label(), Value::Int(i64::try_from(n).unwrap_or(i64::MAX)));
                        }
                    }
                    Err(_) => any_failed = true,
                }
            }
        }
        scrape_error.push(Vec::new(), Value::Int(i64::from(any_failed)));
        vec![
            up,
            duration,
            last,
            success,
            took,
            collected,
            omitted,
            databases_omitted,
            scrape_error,
        ]
    }

    /// Encodes one database visit of `server` (with the `server` label): the visit's
    /// families, then `mesa_database_up`, the time of its last successful visit
    /// (`last_success`), the visit's duration, and each collector's success and size-guard
    /// omissions, all with `datname`. A failed visit has no other families: a database's
    /// values are fresh or absent, as a target's are.
    pub fn for_visit(server: &str, visit: &Visit, last_success: Option<SystemTime>) -> Self {
        let db = || vec![("datname", visit.datname.clone())];
        let mut up = Family::new(
            "mesa_database_up",
            "1 if the last visit to the database connected and ran its collectors, else 0.",
            Kind::Gauge,
        );
        up.push(db(), Value::Int(i64::from(visit.up())));
        let mut last = Family::new(
            "mesa_database_last_visit_timestamp_seconds",
            "When the last successful visit to the database finished, as Unix seconds; databases are visited one at a time, each every databases.interval.",
            Kind::Gauge,
        );
        if let Some(t) = last_success {
            last.push(db(), unix(t));
        }
        let mut took = Family::new(
            "mesa_database_visit_duration_seconds",
            "Duration of the last visit to the database, in seconds.",
            Kind::Gauge,
        );
        took.push(db(), seconds(visit.duration));
        let mut success = Family::new("mesa_collector_success", SUCCESS_HELP, Kind::Gauge);
        let mut omitted = Family::new("mesa_collector_rows_omitted", OMITTED_HELP, Kind::Gauge);
        let outcomes = visit.result.as_deref().unwrap_or_default();
        for o in outcomes {
            let labels = || {
                vec![
                    ("collector", o.collector.to_owned()),
                    ("datname", visit.datname.clone()),
                ]
            };
            success.push(labels(), Value::Int(i64::from(o.result.is_ok())));
            if let Ok(Harvest {
                omitted: Some(n), ..
            }) = &o.result
            {
                omitted.push(labels(), Value::Int(i64::try_from(*n).unwrap_or(i64::MAX)));
            }
        }
        let mut text = String::new();
        let mut phases: [Vec<EncodedFamily>; 3] = Default::default();
        for o in outcomes {
            if let Ok(harvest) = &o.result {
                for f in &harvest.families {
                    phases[1].push(encode_family(&mut text, f, Some(o.collector), Some(server)));
                }
            }
        }
        for f in [up, last, took, success, omitted] {
            phases[2].push(encode_family(&mut text, &f, None, Some(server)));
        }
        text.shrink_to_fit();
        Self { text, phases }
    }

    /// Encodes `snapshot`'s families; with the `server` label for `/metrics`.
    pub fn new(snapshot: &Arc<TargetSnapshot>, server_label: bool) -> Self {
        Self::with_earlier(snapshot, server_label, None)
    }

    /// Encodes `snapshot`'s families, taking the lines of each collector that serves an
    /// earlier collection's result (`Outcome::from_earlier`: its families are not in the
    /// snapshot) from `earlier`, the target's previous encoding made with the same
    /// `server_label`.
    pub fn with_earlier(
        snapshot: &Arc<TargetSnapshot>,
        server_label: bool,
        earlier: Option<&EncodedTarget>,
    ) -> Self {
        let derived = Self::derived(snapshot);
        let server = server_label.then_some(snapshot.target.as_str());
        let mut text = String::new();
        let encode = |text: &mut String, f: &Family, collector: Option<&'static str>| {
            encode_family(text, f, collector, server)
        };
        let mut phases: [Vec<EncodedFamily>; 3] = Default::default();
        phases[0] = derived[..1]
            .iter()
            .map(|f| encode(&mut text, f, None))
            .collect();
        for outcome in collected(snapshot) {
            if outcome.from_earlier {
                let Some(earlier) = earlier else { continue };
                for family in earlier.phases[1]
                    .iter()
                    .filter(|f| f.collector == Some(outcome.collector))
                {
                    let start = text.len();
                    text.push_str(earlier.lines(family));
                    phases[1].push(EncodedFamily {
                        lines: at(start)..at(text.len()),
                        ..family.clone()
                    });
                }
            } else if let Ok(harvest) = &outcome.result {
                for f in &harvest.families {
                    let encoded = encode(&mut text, f, Some(outcome.collector));
                    phases[1].push(encoded);
                }
            }
        }
        phases[2] = derived[1..]
            .iter()
            .map(|f| encode(&mut text, f, None))
            .collect();
        for phase in &mut phases {
            phase.shrink_to_fit();
        }
        // Kept for a whole interval: no growth slack.
        text.shrink_to_fit();
        Self { text, phases }
    }

    /// The sample lines of `family` (one of this target's).
    fn lines(&self, family: &EncodedFamily) -> &str {
        let range = family.lines.start as usize..family.lines.end as usize;
        self.text.get(range).unwrap_or("")
    }
}

/// Writes the merged exposition of `targets` (without `# EOF`): families in first-seen order
/// (all `pg_up`, then the collectors' families, then the meta families), one header each,
/// then every target's lines for it in target order. A family no target has series of is
/// left out.
pub fn write_merged(out: &mut String, targets: &[Arc<EncodedTarget>]) {
    // Grouped first, so the exact size is known before writing: a merged part of a few MB
    // that grew by doubling would hold up to twice its size for as long as it is served.
    let mut phases = Vec::with_capacity(3);
    let mut size = 0;
    for phase in 0..3 {
        let mut order: Vec<&EncodedFamily> = Vec::new();
        let mut bodies: HashMap<&str, Vec<&str>> = HashMap::new();
        for target in targets {
            for family in &target.phases[phase] {
                let entry = bodies.entry(family.name.as_ref()).or_insert_with(|| {
                    order.push(family);
                    Vec::new()
                });
                let lines = target.lines(family);
                if !lines.is_empty() {
                    size += lines.len();
                    entry.push(lines);
                }
            }
        }
        order.retain(|family| !bodies[family.name.as_ref()].is_empty());
        size += order.iter().map(|f| f.header.len()).sum::<usize>();
        phases.push((order, bodies));
    }
    out.reserve_exact(size);
    for (order, bodies) in phases {
        for family in order {
            out.push_str(&family.header);
            for part in &bodies[family.name.as_ref()] {
                out.push_str(part);
            }
        }
    }
}

/// The families of a target's parts (its server encoding, then its databases') as `/probe`
/// serves them: merged, with the `server` label (always the first label, see `lines`) taken
/// out, and `# EOF`.
pub fn probe_text(parts: &[Arc<EncodedTarget>], server: &str) -> String {
    let with_more = format!("{{server=\"{server}\",");
    let alone = format!("{{server=\"{server}\"}}");
    let mut merged = String::new();
    write_merged(&mut merged, parts);
    let mut out = String::with_capacity(merged.len() + 8);
    for line in merged.split_inclusive('\n') {
        if line.starts_with('#') {
            out.push_str(line);
        } else if let Some((name, rest)) = line.split_once(&with_more) {
            out.push_str(name);
            out.push('{');
            out.push_str(rest);
        } else if let Some((name, rest)) = line.split_once(&alone) {
            out.push_str(name);
            out.push_str(rest);
        } else {
            out.push_str(line);
        }
    }
    out.push_str("# EOF\n");
    out
}

/// Encodes `snapshots` alone, each from scratch (golden tests, `/probe`).
pub fn render(snapshots: &[Arc<TargetSnapshot>], server_label: bool) -> String {
    let encoded: Vec<Arc<EncodedTarget>> = snapshots
        .iter()
        .map(|s| Arc::new(EncodedTarget::new(s, server_label)))
        .collect();
    let mut out = String::with_capacity(4 * 1024);
    write_merged(&mut out, &encoded);
    out.push_str("# EOF\n");
    out
}

#[cfg(test)]
mod reference {
    //! prometheus-client's own text encoder, the reference the direct writer
    //! (`super::super::lines`) must match byte for byte.

    use std::collections::HashMap;

    use prometheus_client::collector::Collector;
    use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
    use prometheus_client::metrics::MetricType;
    use prometheus_client::registry::Registry;
    use proptest::prelude::*;

    use crate::collectors::{Family, Kind, Series, Value};

    /// Encodes one family's series of one target (HELP left empty: [`split`] drops the header,
    /// which [`write_merged`] writes once per name).
    fn encode(
        enc: &mut DescriptorEncoder,
        family: &Family,
        server: &str,
        server_label: bool,
    ) -> Result<(), std::fmt::Error> {
        if family.series.is_empty() {
            return Ok(());
        }
        let kind = match family.kind {
            Kind::Gauge => MetricType::Gauge,
            Kind::Counter => MetricType::Counter,
        };
        let mut metric = enc.encode_descriptor(&family.name, "", None, kind)?;
        for s in &family.series {
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
        Ok(())
    }

    /// Splits an exposition into each family's sample lines, by name (the `# HELP` and `# TYPE`
    /// lines and the closing `# EOF` dropped).
    fn split(text: &str) -> HashMap<String, String> {
        let mut out: HashMap<String, String> = HashMap::new();
        let mut current: Option<&mut String> = None;
        for line in text.split_inclusive('\n') {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let name = rest.split(' ').next().unwrap_or("").trim_end().to_owned();
                current = Some(out.entry(name).or_default());
            } else if line.starts_with("# TYPE ") || line.starts_with("# EOF") {
                continue;
            } else if let Some(body) = current.as_mut() {
                body.push_str(line);
            }
        }
        // Kept for a whole interval: no growth slack.
        for body in out.values_mut() {
            body.shrink_to_fit();
        }
        out
    }

    /// `family`'s sample lines as prometheus-client writes them.
    fn reference(family: &Family, server: Option<&str>) -> String {
        #[derive(Debug)]
        struct One(Family, Option<String>);
        impl Collector for One {
            fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
                super::reference::encode(
                    &mut enc,
                    &self.0,
                    self.1.as_deref().unwrap_or(""),
                    self.1.is_some(),
                )
            }
        }
        let mut registry = Registry::default();
        registry.register_collector(Box::new(One(family.clone(), server.map(str::to_owned))));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encodes");
        split(&text)
            .remove(family.name.as_ref())
            .unwrap_or_default()
    }

    const KEYS: [&str; 4] = ["datname", "state", "mode", "query"];

    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            any::<i64>().prop_map(Value::Int),
            any::<f64>().prop_map(Value::Float),
            prop_oneof![
                Just(f64::NAN),
                Just(f64::INFINITY),
                Just(f64::NEG_INFINITY),
                Just(-0.0),
                Just(1e21),
                Just(16384.0),
                Just(0.25)
            ]
            .prop_map(Value::Float),
        ]
    }

    fn series() -> impl Strategy<Value = Series> {
        (
            proptest::sample::subsequence(KEYS.to_vec(), 0..=KEYS.len()),
            proptest::collection::vec(
                prop_oneof!["(?s).{0,12}", Just("a\"b\\c\nd".to_owned())],
                KEYS.len(),
            ),
            value(),
        )
            .prop_map(|(keys, values, value)| Series {
                labels: keys.into_iter().zip(values).collect(),
                value,
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn the_direct_writer_matches_prometheus_client(
            name in "pg_[a-z_]{1,16}",
            counter in any::<bool>(),
            series in proptest::collection::vec(series(), 1..5),
            server in proptest::option::of("[a-z0-9_-]{1,12}"),
        ) {
            let mut family = Family::new(
                name,
                "help",
                if counter { Kind::Counter } else { Kind::Gauge },
            );
            family.series = series;
            let mut direct = String::new();
            super::super::lines::write_family(&mut direct, &family, server.as_deref());
            prop_assert_eq!(direct, reference(&family, server.as_deref()));
        }
    }
}
