//! `mesa --check-config --live`: each target's users' queries prepared on the server (never
//! run) and their columns set against the declared usages, in a table per target. All agree:
//! exit 0.

use std::time::Duration;

use crate::collectors::custom::check;
use crate::config::Config;
use crate::gateway::{Deadline, Gateway};

/// The longest one target's check may take.
const PER_TARGET: Duration = Duration::from_secs(15);

/// Checks every target of `config` (or only `only`), printing each table to stdout; whether
/// every query of every target agrees. `Err` names an unknown `only`.
pub async fn run(config: &Config, only: Option<&str>) -> Result<bool, String> {
    if let Some(name) = only
        && !config.targets.iter().any(|t| t.name == name)
    {
        return Err(format!(
            "--target {name:?}: no target of that name in the config"
        ));
    }
    let mut all_ok = true;
    for target in config
        .targets
        .iter()
        .filter(|t| only.is_none_or(|n| n == t.name))
    {
        let queries = &target.collection.queries.queries;
        if queries.is_empty() {
            println!("target {}: no queries", target.name);
            continue;
        }
        let gateway = match Gateway::for_target(&target.spec, target.collection.limits()) {
            Ok(g) => g,
            Err(e) => {
                println!("target {}: {e}", target.name);
                all_ok = false;
                continue;
            }
        };
        let described = match &gateway {
            Gateway::Postgres(g) => {
                crate::collectors::postgres::describe(g, queries, Deadline::after(PER_TARGET)).await
            }
            Gateway::Mysql(_) => {
                println!(
                    "target {}: user queries run on PostgreSQL targets only",
                    target.name
                );
                all_ok = false;
                continue;
            }
        };
        match described {
            Ok((version, lines)) => {
                println!(
                    "target {} ({}, database {}, server_version_num {version})",
                    target.name,
                    gateway.endpoint(),
                    target.spec.common.database
                );
                print!("{}", check::table(&lines));
                all_ok &= lines.iter().all(check::Line::ok);
            }
            Err(e) => {
                println!("target {}: cannot check: {e}", target.name);
                all_ok = false;
            }
        }
        gateway.close_kept().await;
    }
    Ok(all_ok)
}
