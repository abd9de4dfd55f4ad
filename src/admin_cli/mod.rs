//! `mesa admin`: the admin API from a terminal, for people at 3 a.m. and for scripts.
//!
//! The URL comes from `--admin-url` or `MESA_ADMIN_URL`; the bearer token from
//! `MESA_ADMIN_TOKEN` or `--token-file`, never from a flag (`ps` would show it to every user
//! of the machine). Tables for people, `--output json` (the API's own JSON) for scripts.
//! Errors are one line on stderr. Exit codes: 0 ok, 2 usage (also an invalid value the API
//! refused), 3 denied (401, 403), 4 not found, 5 conflict (409), 1 anything else.
//!
//! `users create` and `users rotate` print the password, and only it, to stdout, so
//! `PW=$(mesa admin users create ...)` works; everything else they say goes to stderr.

mod client;
mod render;

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};

use self::client::{AdminClient, ClientError, Reply};

/// Exit codes of `mesa admin`.
pub mod exit {
    /// Done.
    pub const OK: u8 = 0;
    /// Anything else: unreachable, a server error, an unreadable answer.
    pub const FAILURE: u8 = 1;
    /// Invalid usage, or a value the API refused as invalid (400, 422).
    pub const USAGE: u8 = 2;
    /// The token is missing, wrong, or lacks the scope or the target (401, 403).
    pub const DENIED: u8 = 3;
    /// No such target, session, role, database or table (404).
    pub const NOT_FOUND: u8 = 4;
    /// Refused as a conflict (409): a role that exists, is not Mesa's, owns objects; too many
    /// sessions match.
    pub const CONFLICT: u8 = 5;
}

/// How answers are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Aligned tables for people.
    Table,
    /// The API's JSON, one document per call, for scripts.
    Json,
}

/// `mesa admin`: flags shared by every command.
#[derive(Debug, Args)]
pub struct AdminArgs {
    /// Base URL of the admin API, e.g. https://mesa.example:9931.
    #[arg(
        long = "admin-url",
        env = "MESA_ADMIN_URL",
        value_name = "URL",
        global = true
    )]
    pub admin_url: Option<String>,

    /// A file holding the bearer token (otherwise the MESA_ADMIN_TOKEN variable). There is
    /// no flag for the token itself: `ps` shows every process's arguments.
    #[arg(long = "token-file", value_name = "PATH", global = true)]
    pub token_file: Option<PathBuf>,

    /// CA certificates (PEM) to verify an https admin API with (otherwise the system's).
    #[arg(long = "cacert", value_name = "PATH", global = true)]
    pub cacert: Option<PathBuf>,

    /// The target to act on.
    #[arg(
        id = "admin_target",
        long = "target",
        env = "MESA_ADMIN_TARGET",
        value_name = "NAME",
        global = true
    )]
    pub target: Option<String>,

    /// `table` for people, `json` for scripts.
    #[arg(long = "output", value_enum, default_value_t = Output::Table, global = true)]
    pub output: Output,

    /// What to do.
    #[command(subcommand)]
    pub command: AdminCommand,
}

/// The commands of `mesa admin`.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// The targets the token may access, with their last collection status.
    Targets,
    /// Client sessions: list, cancel, terminate (one, or every match of a filter).
    #[command(subcommand)]
    Sessions(SessionsCommand),
    /// Mesa-managed roles: list, create, delete (revoke), rotate.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Databases of the target, with owner, encoding and size.
    Databases,
    /// Tables and views of a database.
    Tables {
        /// The database.
        database: String,
    },
    /// Columns of a table.
    Columns {
        /// The database.
        database: String,
        /// The table, as SCHEMA.TABLE.
        table: String,
    },
}

/// `mesa admin sessions ...`.
#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// Client sessions, oldest statement first.
    List {
        /// Only sessions in this state (`active`, `idle`, `idle in transaction`, ...).
        #[arg(long)]
        state: Option<String>,
        /// Only sessions of this role.
        #[arg(long)]
        user: Option<String>,
        /// At most this many (1 to 1000).
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Cancel a session's running statement; the session stays.
    Cancel {
        /// Backend pid.
        pid: i32,
    },
    /// Terminate one session by pid, or every session matching the filter flags.
    Terminate(TerminateArgs),
}

/// `mesa admin sessions terminate`.
#[derive(Debug, Args)]
pub struct TerminateArgs {
    /// Backend pid; without it, the filter flags pick the sessions.
    #[arg(conflicts_with_all = ["state", "longer_than", "user", "application", "database", "max", "dry_run", "cancel"])]
    pub pid: Option<i32>,
    /// Sessions in this state, e.g. 'idle in transaction'.
    #[arg(long)]
    pub state: Option<String>,
    /// In that state for longer than this, e.g. 10m.
    #[arg(long = "longer-than", value_name = "DURATION")]
    pub longer_than: Option<String>,
    /// Sessions of this role.
    #[arg(long)]
    pub user: Option<String>,
    /// Sessions with this application_name.
    #[arg(long)]
    pub application: Option<String>,
    /// Sessions on this database.
    #[arg(long)]
    pub database: Option<String>,
    /// Refuse (and signal nothing) when more than this many match (1 to 1000).
    #[arg(long, required_unless_present = "pid")]
    pub max: Option<u32>,
    /// Only list what would be signalled.
    #[arg(long = "dry-run")]
    pub dry_run: bool,
    /// Cancel their statements instead of ending the sessions.
    #[arg(long)]
    pub cancel: bool,
}

/// `mesa admin users ...`.
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// The roles Mesa created, with expiry, memberships and open sessions.
    List,
    /// Create a role; prints its generated password, and only that, to stdout.
    Create {
        /// Role name.
        name: String,
        /// It expires this long from now (e.g. 8h); the reaper ends its sessions then.
        #[arg(long = "valid-for", value_name = "DURATION")]
        valid_for: Option<String>,
        /// Grant it this role (from the target's admin.grantable_roles); repeatable.
        #[arg(long = "member-of", value_name = "ROLE")]
        member_of: Vec<String>,
        /// Most sessions it may open at once.
        #[arg(long = "connection-limit", value_name = "N")]
        connection_limit: Option<u32>,
        /// Create it NOLOGIN.
        #[arg(long = "no-login")]
        no_login: bool,
    },
    /// Revoke a Mesa-managed role: NOLOGIN, its sessions ended, dropped.
    Delete {
        /// Role name.
        name: String,
    },
    /// Give a Mesa-managed role a new generated password; prints it, and only it, to stdout.
    Rotate {
        /// Role name.
        name: String,
    },
}

/// A failure of the command line itself, before or instead of an API answer.
#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// Runs `mesa admin` and returns its exit code. Reads the token from `env` (the process
/// environment in the binary).
pub fn run(args: AdminArgs, env: &dyn Fn(&str) -> Option<String>) -> u8 {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mesa admin: cannot start the async runtime: {e}");
            return exit::FAILURE;
        }
    };
    match runtime.block_on(execute(&args, env)) {
        Ok(code) => code,
        Err(CliError::Usage(message)) => {
            eprintln!("mesa admin: {message}");
            exit::USAGE
        }
        Err(CliError::Client(e)) => {
            eprintln!("mesa admin: {e}");
            exit::FAILURE
        }
    }
}

/// The token: `--token-file`, else `MESA_ADMIN_TOKEN`.
fn token(args: &AdminArgs, env: &dyn Fn(&str) -> Option<String>) -> Result<String, CliError> {
    let raw = match &args.token_file {
        Some(path) => std::fs::read_to_string(path).map_err(|e| {
            CliError::Usage(format!("cannot read --token-file {}: {e}", path.display()))
        })?,
        None => env("MESA_ADMIN_TOKEN").ok_or_else(|| {
            CliError::Usage(
                "no token: set MESA_ADMIN_TOKEN or pass --token-file PATH (never the token itself as a flag)".to_owned(),
            )
        })?,
    };
    let token = raw.trim().to_owned();
    if token.is_empty() {
        return Err(CliError::Usage("the token is empty".to_owned()));
    }
    Ok(token)
}

/// A path segment, percent-encoded (names may hold spaces or slashes).
fn segment(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for b in raw.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

async fn execute(args: &AdminArgs, env: &dyn Fn(&str) -> Option<String>) -> Result<u8, CliError> {
    let url = args.admin_url.clone().ok_or_else(|| {
        CliError::Usage("no admin API: pass --admin-url URL or set MESA_ADMIN_URL".to_owned())
    })?;
    let client = AdminClient::new(&url, token(args, env)?, args.cacert.as_deref())?;
    let target = || -> Result<String, CliError> {
        args.target
            .as_deref()
            .map(|t| format!("/api/v1/targets/{}", segment(t)))
            .ok_or_else(|| {
                CliError::Usage(
                    "which target? pass --target NAME or set MESA_ADMIN_TARGET".to_owned(),
                )
            })
    };
    let out = args.output;
    match &args.command {
        AdminCommand::Targets => {
            let reply = client.call("GET", "/api/v1/targets", None).await?;
            Ok(finish(out, &reply, render::targets))
        }
        AdminCommand::Databases => {
            let reply = client
                .call("GET", &format!("{}/databases", target()?), None)
                .await?;
            Ok(finish(out, &reply, render::databases))
        }
        AdminCommand::Tables { database } => {
            let path = format!("{}/databases/{}/tables", target()?, segment(database));
            let reply = client.call("GET", &path, None).await?;
            Ok(finish(out, &reply, render::tables))
        }
        AdminCommand::Columns { database, table } => {
            let (schema, table) = table.split_once('.').ok_or_else(|| {
                CliError::Usage(format!("{table:?}: write the table as SCHEMA.TABLE"))
            })?;
            let path = format!(
                "{}/databases/{}/tables/{}/{}/columns",
                target()?,
                segment(database),
                segment(schema),
                segment(table)
            );
            let reply = client.call("GET", &path, None).await?;
            Ok(finish(out, &reply, render::columns))
        }
        AdminCommand::Sessions(command) => sessions(&client, &target()?, out, command).await,
        AdminCommand::Users(command) => users(&client, &target()?, out, command).await,
    }
}

async fn sessions(
    client: &AdminClient,
    base: &str,
    out: Output,
    command: &SessionsCommand,
) -> Result<u8, CliError> {
    match command {
        SessionsCommand::List { state, user, limit } => {
            // `idle` sessions are left out unless asked for.
            let idle = state.as_deref() == Some("idle");
            let path = format!("{base}/sessions?limit={limit}&include_idle={idle}");
            let mut reply = client.call("GET", &path, None).await?;
            if let Some(list) = reply.body.get_mut("sessions").and_then(Value::as_array_mut) {
                list.retain(|s| {
                    state.as_deref().is_none_or(|want| s["state"] == want)
                        && user.as_deref().is_none_or(|want| s["user"] == want)
                });
            }
            Ok(finish(out, &reply, render::sessions))
        }
        SessionsCommand::Cancel { pid } => {
            let reply = client
                .call("POST", &format!("{base}/sessions/{pid}/cancel"), None)
                .await?;
            Ok(finish(out, &reply, render::signalled))
        }
        SessionsCommand::Terminate(t) => match t.pid {
            Some(pid) => {
                let reply = client
                    .call("POST", &format!("{base}/sessions/{pid}/terminate"), None)
                    .await?;
                Ok(finish(out, &reply, render::signalled))
            }
            None => {
                let mut filter = serde_json::Map::new();
                for (key, value) in [
                    ("state", &t.state),
                    ("state_for_longer_than", &t.longer_than),
                    ("usename", &t.user),
                    ("application_name", &t.application),
                    ("datname", &t.database),
                ] {
                    if let Some(v) = value {
                        filter.insert(key.to_owned(), json!(v));
                    }
                }
                if filter.is_empty() {
                    return Err(CliError::Usage(
                        "say which sessions: a PID, or at least one of --state, --longer-than, --user, --application, --database".to_owned(),
                    ));
                }
                let body = json!({
                    "filter": filter,
                    "mode": if t.cancel { "cancel" } else { "terminate" },
                    "max_count": t.max,
                    "dry_run": t.dry_run,
                });
                let reply = client
                    .call("POST", &format!("{base}/sessions/terminate"), Some(body))
                    .await?;
                Ok(finish(out, &reply, render::bulk))
            }
        },
    }
}

async fn users(
    client: &AdminClient,
    base: &str,
    out: Output,
    command: &UsersCommand,
) -> Result<u8, CliError> {
    match command {
        UsersCommand::List => {
            let reply = client.call("GET", &format!("{base}/users"), None).await?;
            Ok(finish(out, &reply, render::users))
        }
        UsersCommand::Create {
            name,
            valid_for,
            member_of,
            connection_limit,
            no_login,
        } => {
            let mut body = json!({ "name": name, "login": !no_login });
            if let Some(d) = valid_for {
                body["valid_for"] = json!(d);
            }
            if !member_of.is_empty() {
                body["member_of"] = json!(member_of);
            }
            if let Some(n) = connection_limit {
                body["connection_limit"] = json!(n);
            }
            let reply = client
                .call("POST", &format!("{base}/users"), Some(body))
                .await?;
            Ok(finish(out, &reply, render::password_once))
        }
        UsersCommand::Delete { name } => {
            let reply = client
                .call("DELETE", &format!("{base}/users/{}", segment(name)), None)
                .await?;
            Ok(finish(out, &reply, render::dropped))
        }
        UsersCommand::Rotate { name } => {
            let reply = client
                .call(
                    "POST",
                    &format!("{base}/users/{}/password", segment(name)),
                    None,
                )
                .await?;
            Ok(finish(out, &reply, render::password_once))
        }
    }
}

/// Prints a reply (the table `render` makes of a success, or the problem as one line) and
/// returns the exit code its status maps to.
fn finish(out: Output, reply: &Reply, render: fn(&Value)) -> u8 {
    if (200..300).contains(&reply.status) {
        match out {
            Output::Json => println!("{}", reply.body),
            Output::Table => render(&reply.body),
        }
        return exit::OK;
    }
    let b = &reply.body;
    let kind = b["type"]
        .as_str()
        .and_then(|t| t.strip_prefix("urn:mesa:problem:"))
        .unwrap_or("error");
    let detail = b["detail"].as_str().unwrap_or("(no detail)");
    eprintln!("mesa admin: {} {kind}: {detail}", reply.status);
    if out == Output::Json {
        println!("{b}");
    }
    exit_code(reply.status)
}

/// The exit code of an HTTP status.
pub fn exit_code(status: u16) -> u8 {
    match status {
        200..=299 => exit::OK,
        400 | 413 | 422 => exit::USAGE,
        401 | 403 => exit::DENIED,
        404 => exit::NOT_FOUND,
        409 => exit::CONFLICT,
        _ => exit::FAILURE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_the_documented_exit_codes() {
        for (status, code) in [
            (200, 0),
            (201, 0),
            (400, 2),
            (422, 2),
            (401, 3),
            (403, 3),
            (404, 4),
            (409, 5),
            (429, 1),
            (503, 1),
            (504, 1),
        ] {
            assert_eq!(exit_code(status), code, "{status}");
        }
    }

    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(segment("orders-primary"), "orders-primary");
        assert_eq!(segment("my db/x"), "my%20db%2Fx");
    }
}
