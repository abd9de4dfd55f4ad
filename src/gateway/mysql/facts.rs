//! What `SHOW GLOBAL STATUS` and `SHOW GLOBAL VARIABLES` say, read by the administrator
//! (health) and the collectors alike: the (name, value) rows of such a statement
//! ([`Session::name_values`]) and the server's facts both health reads ([`Session::facts`]).

use std::time::Duration;

use super::connect::{Session, text};
use crate::gateway::{Deadline, GatewayError};

/// The facts a server's health is made of, from two statements.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerFacts {
    /// `version`, e.g. `10.11.19-MariaDB-0+deb12u1-log`.
    pub version: String,
    /// `version_comment`, e.g. `Debian 12`.
    pub version_comment: String,
    /// `innodb_version`; empty where the server has none (MariaDB 10.10 on).
    pub innodb_version: String,
    /// `max_connections`.
    pub max_connections: u64,
    /// `Threads_connected`: client connections, this session included.
    pub threads_connected: u64,
    /// `Uptime`.
    pub uptime: Duration,
}

impl Session {
    /// The (name, value) rows of a `SHOW ... STATUS` or `SHOW ... VARIABLES` statement.
    pub async fn name_values(
        &mut self,
        sql: &str,
        deadline: &Deadline,
    ) -> Result<Vec<(String, String)>, GatewayError> {
        self.rows(sql, deadline)
            .await?
            .iter()
            .map(|r| Ok((text(r, 0)?, text(r, 1)?)))
            .collect()
    }

    /// The server's [`ServerFacts`]: its version variables and its connection and uptime
    /// counters.
    pub async fn facts(&mut self, deadline: &Deadline) -> Result<ServerFacts, GatewayError> {
        let mut facts = ServerFacts::default();
        let variables = self
            .name_values(
                "SHOW GLOBAL VARIABLES WHERE Variable_name IN \
                 ('version', 'version_comment', 'innodb_version', 'max_connections')",
                deadline,
            )
            .await?;
        let status = self
            .name_values(
                "SHOW GLOBAL STATUS WHERE Variable_name IN ('Uptime', 'Threads_connected')",
                deadline,
            )
            .await?;
        for (name, value) in variables.into_iter().chain(status) {
            let number = || value.parse::<u64>().unwrap_or(0);
            match name.to_ascii_lowercase().as_str() {
                "version" => facts.version = value,
                "version_comment" => facts.version_comment = value,
                "innodb_version" => facts.innodb_version = value,
                "max_connections" => facts.max_connections = number(),
                "threads_connected" => facts.threads_connected = number(),
                "uptime" => facts.uptime = Duration::from_secs(number()),
                _ => {}
            }
        }
        Ok(facts)
    }
}
