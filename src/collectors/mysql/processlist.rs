//! `processlist`: the server's threads by command and state, with the seconds they have spent
//! there, and the client processes by user and by host (mysqld_exporter's
//! `info_schema.processlist` families). Mesa's own connection is left out.

use std::collections::BTreeMap;

use crate::collectors::{Family, Harvest, Kind, Value};
use crate::gateway::mysql::Session;
use crate::gateway::mysql::text;
use crate::gateway::{Deadline, GatewayError};

/// The collector's name.
pub(super) const NAME: &str = "processlist";

/// A state or command as a label value: lower case, every run of other characters one `_`.
fn sanitize(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.trim().chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    out.trim_matches('_').to_owned()
}

/// The client host of `host:port` (or `localhost`).
fn client_host(host: &str) -> String {
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => {
            h.trim_matches(['[', ']']).to_owned()
        }
        _ => host.to_owned(),
    }
}

/// `processlist`.
pub(super) async fn collect(s: &mut Session, deadline: &Deadline) -> Result<Harvest, GatewayError> {
    let rows = s
        .rows(
            "SELECT USER, HOST, COMMAND, STATE, TIME FROM information_schema.PROCESSLIST \
             WHERE ID <> CONNECTION_ID()",
            deadline,
        )
        .await?;
    let mut threads: BTreeMap<(String, String), (i64, i64)> = BTreeMap::new();
    let mut by_user: BTreeMap<String, i64> = BTreeMap::new();
    let mut by_host: BTreeMap<String, i64> = BTreeMap::new();
    for row in &rows {
        let user = text(row, 0)?;
        let host = text(row, 1)?;
        let command = sanitize(&text(row, 2)?);
        let state = sanitize(&text(row, 3)?);
        let seconds: i64 = text(row, 4)?.parse().unwrap_or(0);
        let entry = threads.entry((command, state)).or_default();
        entry.0 += 1;
        entry.1 += seconds;
        *by_user.entry(user).or_default() += 1;
        *by_host.entry(client_host(&host)).or_default() += 1;
    }
    let mut count = Family::new(
        "mysql_info_schema_processlist_threads",
        "The number of threads split by current state.",
        Kind::Gauge,
    );
    let mut seconds = Family::new(
        "mysql_info_schema_processlist_seconds",
        "The number of seconds threads have used split by current state.",
        Kind::Gauge,
    );
    for ((command, state), (n, secs)) in threads {
        let labels = vec![("command", command), ("state", state)];
        count.push(labels.clone(), Value::Int(n));
        seconds.push(labels, Value::Int(secs));
    }
    let mut users = Family::new(
        "mysql_info_schema_processlist_processes_by_user",
        "The number of processes by user.",
        Kind::Gauge,
    );
    for (user, n) in by_user {
        users.push(vec![("mysql_user", user)], Value::Int(n));
    }
    let mut hosts = Family::new(
        "mysql_info_schema_processlist_processes_by_host",
        "The number of processes by host.",
        Kind::Gauge,
    );
    for (host, n) in by_host {
        hosts.push(vec![("client_host", host)], Value::Int(n));
    }
    Ok(Harvest {
        families: vec![count, seconds, users, hosts],
        omitted: None,
    })
}

#[cfg(test)]
mod tests {
    use super::{client_host, sanitize};

    #[test]
    fn states_and_hosts_become_label_values() {
        assert_eq!(sanitize("User sleep"), "user_sleep");
        assert_eq!(
            sanitize("Waiting for table metadata lock"),
            "waiting_for_table_metadata_lock"
        );
        assert_eq!(sanitize(""), "");
        assert_eq!(sanitize("Query"), "query");
        assert_eq!(client_host("127.0.0.1:51234"), "127.0.0.1");
        assert_eq!(client_host("[::1]:51234"), "::1");
        assert_eq!(client_host("localhost"), "localhost");
    }
}
