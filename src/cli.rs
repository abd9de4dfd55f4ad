//! Command-line flags, in the Prometheus style (`--config.file`, `--web.listen-address`).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Exit code for an invalid config or invalid usage (sysexits.h `EX_USAGE`).
pub const EXIT_INVALID_CONFIG: u8 = 64;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// `key=value` pairs, one event per line.
    Logfmt,
    /// One JSON object per line.
    Json,
}

/// Mesa: PostgreSQL fleet exporter and admin API.
#[derive(Debug, Parser)]
#[command(name = "mesa", version, about)]
pub struct Cli {
    /// Path to the YAML configuration file.
    #[arg(long = "config.file", value_name = "PATH")]
    pub config_file: Option<PathBuf>,

    /// Validate the configuration and exit: 0 when valid, 64 with every problem listed.
    #[arg(long = "check-config", requires = "config_file")]
    pub check_config: bool,

    /// With `--check-config`: also connect to each target, prepare every query of its
    /// queries files there (never run them) and print their columns against the declared
    /// usages; 0 only when all agree.
    #[arg(long = "live", requires = "check_config")]
    pub live: bool,

    /// With `--live`: only this target.
    #[arg(long = "target", value_name = "NAME", requires = "live")]
    pub target: Option<String>,

    /// Print a new admin bearer token and the SHA-256 digest to put in the config, then exit.
    #[arg(long = "new-token", conflicts_with_all = ["config_file", "check_config"])]
    pub new_token: bool,

    /// Override `web.listen_address`.
    #[arg(long = "web.listen-address", value_name = "ADDR")]
    pub web_listen_address: Option<SocketAddr>,

    /// Override `web.config_file` (exporter-toolkit web config: TLS, basic auth).
    #[arg(long = "web.config.file", value_name = "PATH")]
    pub web_config_file: Option<PathBuf>,

    /// This replica's shard, 0 to `--shard.count` - 1: it collects and serves only the targets
    /// whose name hashes to it (every replica reads the same config).
    #[arg(long = "shard.index", value_name = "N", requires = "shard_count")]
    pub shard_index: Option<u32>,

    /// How many replicas share the targets.
    #[arg(long = "shard.count", value_name = "N", requires = "shard_index")]
    pub shard_count: Option<u32>,

    /// Log level: error, warn, info, debug, trace (or a tracing filter directive).
    #[arg(long = "log.level", value_name = "LEVEL", default_value = "info")]
    pub log_level: String,

    /// Log format.
    #[arg(long = "log.format", value_enum, default_value_t = LogFormat::Logfmt)]
    pub log_format: LogFormat,

    /// A command instead of the daemon.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Commands of the `mesa` binary besides running the daemon.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Talk to a running Mesa's admin API: sessions, users, inspection (exit codes: 0 ok,
    /// 1 other failure, 2 usage, 3 denied, 4 not found, 5 conflict).
    Admin(Box<crate::admin_cli::AdminArgs>),
    /// Print a completion script for `mesa` to stdout (e.g. `mesa completions bash >
    /// /etc/bash_completion.d/mesa`).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}
