//! The shipped alert rules: `promtool check rules` accepts them, `promtool test rules` passes,
//! and every alert has unit tests in both directions (firing and not firing).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

fn deploy(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy/prometheus")
        .join(file)
}

fn yaml(file: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(deploy(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"))
}

fn promtool(args: &[&str]) -> (bool, String) {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(deploy(""))
        .output()
        .expect("promtool runs (Debian's prometheus package; .ci/run installs it)");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn promtool_accepts_the_rules_and_their_unit_tests_pass() {
    let (ok, out) = promtool(&["check", "rules", "alerts.yml"]);
    assert!(ok, "{out}");
    let (ok, out) = promtool(&["test", "rules", "alerts_test.yml"]);
    assert!(ok, "{out}");
}

#[test]
fn every_alert_is_tested_firing_and_not_firing() {
    let rules = yaml("alerts.yml");
    let alerts: BTreeSet<String> = rules["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().expect("rules").iter())
        .filter_map(|r| r["alert"].as_str().map(str::to_owned))
        .collect();
    assert!(alerts.len() >= 7, "{alerts:?}");
    for required in [
        "PostgresDown",
        "MesaCollectionFailing",
        "PostgresConnectionSaturation",
        "PostgresTooManyConnectionsRefused",
        "PostgresLongTransaction",
        "PostgresRestarted",
        "MesaDatabaseNotVisited",
        "MysqlDown",
        "MysqlConnectionSaturation",
        "MysqlTooManyConnectionsRefused",
        "MysqlReplicationNotRunning",
    ] {
        assert!(alerts.contains(required), "{required} is missing");
    }
    // Every rule has summary and description annotations.
    for rule in rules["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().into_iter().flatten())
    {
        for key in ["summary", "description"] {
            assert!(
                rule["annotations"][key]
                    .as_str()
                    .is_some_and(|s| !s.is_empty()),
                "{} lacks {key}",
                rule["alert"]
            );
        }
    }
    // (firing, quiet) cases per alert name in the unit tests.
    let tests = yaml("alerts_test.yml");
    let mut seen: BTreeMap<String, (bool, bool)> = BTreeMap::new();
    for test in tests["tests"].as_array().expect("tests") {
        for case in test["alert_rule_test"].as_array().into_iter().flatten() {
            let name = case["alertname"].as_str().expect("alertname").to_owned();
            let firing = case["exp_alerts"].as_array().is_some_and(|a| !a.is_empty());
            let entry = seen.entry(name).or_default();
            if firing {
                entry.0 = true;
            } else {
                entry.1 = true;
            }
        }
    }
    for alert in &alerts {
        assert_eq!(
            seen.get(alert),
            Some(&(true, true)),
            "{alert} needs a firing and a not-firing test in alerts_test.yml"
        );
    }
}
