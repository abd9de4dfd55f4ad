//! `settings`: every numeric and boolean server setting as `pg_settings_<name>`, in base
//! units, as postgres_exporter's settings collector: times become `_seconds`, sizes `_bytes`
//! (`shared_buffers` in 8 kB pages is `pg_settings_shared_buffers_bytes`), booleans 1/0, and
//! `-1` (disabled) stays `-1`. Dots in extension settings become underscores.
//! `max_connections` and `superuser_reserved_connections` come from `health`, which always
//! runs, so the saturation alerts never depend on this collector.

use super::{Definition, Metric, Record};
use crate::collectors::{Family, Kind, Value};

const SQL: &str = "\
SELECT s.name::pg_catalog.text, coalesce(s.unit, ''), coalesce(s.short_desc, ''),
       CASE WHEN s.vartype OPERATOR(pg_catalog.=) 'bool'
            THEN (s.setting OPERATOR(pg_catalog.=) 'on')::pg_catalog.int4::pg_catalog.float8
            ELSE s.setting::pg_catalog.float8 END
  FROM pg_catalog.pg_settings s
 WHERE s.vartype OPERATOR(pg_catalog.=) ANY ('{bool,integer,real}'::pg_catalog.text[])
   AND NOT (s.name OPERATOR(pg_catalog.=)
              ANY ('{max_connections,superuser_reserved_connections}'::pg_catalog.text[]))
 ORDER BY 1";

/// The collector.
pub const COLLECTOR: Definition = Definition {
    name: "settings",
    enabled_by_default: true,
    schedule: crate::collectors::Schedule::OnChange {
        refresh: std::time::Duration::from_secs(3600),
    },
    scope: crate::collectors::Scope::Server,
    plan: |server, _| super::since_13(server, SQL),
    labels: &["name", "unit", "short_desc"],
    metrics: &[Metric::gauge("pg_settings_*", "One family per setting.")],
    guarded: false,
    counts_hidden: false,
    ranked: false,
    build,
};

/// A unit of `pg_settings.unit` as a base unit: (suffix, factor).
fn base_unit(unit: &str) -> Option<(&'static str, f64)> {
    // `8kB`, `16MB`: a multiplier before the unit.
    let digits = unit.bytes().take_while(u8::is_ascii_digit).count();
    let multiplier = if digits == 0 {
        1.0
    } else {
        unit[..digits].parse::<f64>().ok()?
    };
    let (suffix, factor) = match &unit[digits..] {
        "" => return (digits == 0).then_some(("", 1.0)),
        "us" => ("_seconds", 1e-6),
        "ms" => ("_seconds", 1e-3),
        "s" => ("_seconds", 1.0),
        "min" => ("_seconds", 60.0),
        "h" => ("_seconds", 3600.0),
        "d" => ("_seconds", 86_400.0),
        "B" => ("_bytes", 1.0),
        "kB" => ("_bytes", 1024.0),
        "MB" => ("_bytes", 1024.0 * 1024.0),
        "GB" => ("_bytes", 1024.0 * 1024.0 * 1024.0),
        "TB" => ("_bytes", 1024.0 * 1024.0 * 1024.0 * 1024.0),
        _ => return None,
    };
    Some((suffix, factor * multiplier))
}

/// The family of one setting, or `None` for a unit Mesa does not know (skipped, not guessed).
pub(super) fn setting(name: &str, unit: &str, short_desc: &str, value: f64) -> Option<Family> {
    let (suffix, factor) = base_unit(unit)?;
    let metric = format!("pg_settings_{}{suffix}", name.replace(['.', '-'], "_"));
    // -1 means "disabled" for most settings; scaling it would invent a value.
    let value = if value == -1.0 { -1.0 } else { value * factor };
    let help = if unit.is_empty() {
        format!("Server setting {name}: {short_desc}")
    } else {
        format!("Server setting {name} (set in {unit}, exported in base units): {short_desc}")
    };
    let mut family = Family::new(metric, help, Kind::Gauge);
    family.push(
        Vec::new(),
        if value.fract() == 0.0 && value.abs() < 9.0e15 {
            Value::Int(value as i64)
        } else {
            Value::Float(value)
        },
    );
    Some(family)
}

fn build(_: &Definition, records: &[Record]) -> Vec<Family> {
    records
        .iter()
        .filter_map(|r| {
            let Some(Value::Float(v)) = r.values.first().copied().flatten() else {
                return None;
            };
            setting(&r.labels[0], &r.labels[1], &r.labels[2], v)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(name: &str, unit: &str, v: f64) -> (String, Value) {
        let f = setting(name, unit, "d", v).expect("known unit");
        (f.name.into_owned(), f.series[0].value)
    }

    #[test]
    fn settings_come_out_in_base_units_under_postgres_exporter_names() {
        assert_eq!(
            one("shared_buffers", "8kB", 16384.0),
            (
                "pg_settings_shared_buffers_bytes".into(),
                Value::Int(134_217_728)
            )
        );
        assert_eq!(
            one("statement_timeout", "ms", 1500.0),
            (
                "pg_settings_statement_timeout_seconds".into(),
                Value::Float(1.5)
            )
        );
        assert_eq!(
            one("autovacuum_naptime", "s", 60.0),
            (
                "pg_settings_autovacuum_naptime_seconds".into(),
                Value::Int(60)
            )
        );
        assert_eq!(
            one("log_rotation_age", "min", 1440.0),
            (
                "pg_settings_log_rotation_age_seconds".into(),
                Value::Int(86_400)
            )
        );
        assert_eq!(
            one("max_wal_size", "MB", 1024.0),
            (
                "pg_settings_max_wal_size_bytes".into(),
                Value::Int(1_073_741_824)
            )
        );
        assert_eq!(
            one("autovacuum_vacuum_scale_factor", "", 0.2),
            (
                "pg_settings_autovacuum_vacuum_scale_factor".into(),
                Value::Float(0.2)
            )
        );
        assert_eq!(
            one("autovacuum_work_mem", "kB", -1.0),
            (
                "pg_settings_autovacuum_work_mem_bytes".into(),
                Value::Int(-1)
            )
        );
        assert_eq!(
            one("pg_stat_statements.max", "", 5000.0),
            (
                "pg_settings_pg_stat_statements_max".into(),
                Value::Int(5000)
            )
        );
        assert!(setting("odd", "furlongs", "d", 1.0).is_none());
    }
}
