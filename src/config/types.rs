//! The validated configuration's types and defaults: what the rest of Mesa takes.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::collectors::Options as CollectorOptions;
pub use crate::gateway::spec::SessionMode;
use crate::gateway::spec::{Limits, MIN_IDLE_IN_TRANSACTION_TIMEOUT, TargetSpec};

use super::reader::Problem;

/// Default collection interval.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(15);
/// Default deadline for one whole collection; below the interval so collections never pile up.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default TCP connect + startup limit (the origin spec's 3 s).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Default server-side `statement_timeout`.
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default server-side `lock_timeout`: a monitoring query must never queue behind DDL.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(1);
/// Default metrics listener.
pub const DEFAULT_WEB_LISTEN: &str = "0.0.0.0:9930";
/// Default admin listener: loopback only.
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9931";
/// Default cap on concurrent connections to the metrics listener. Prometheus keeps one
/// connection per scraper; 256 leaves room for HA pairs, federation and people, and keeps the
/// daemon far inside systemd's default 1024 descriptors with every target's connections.
pub const DEFAULT_WEB_MAX_CONNECTIONS: usize = 256;
/// Default cap on concurrent connections to the admin API: people and runbooks, not fleets.
pub const DEFAULT_ADMIN_MAX_CONNECTIONS: usize = 64;
/// The largest cap either listener accepts.
pub const MAX_LISTENER_CONNECTIONS: usize = 65_536;

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Collection defaults (each target has its effective copy).
    pub collection: CollectionSettings,
    /// Metrics listener.
    pub web: WebSettings,
    /// Admin API; enabled only with at least one token.
    pub admin: AdminSettings,
    /// Database targets, in file order.
    pub targets: Vec<TargetConfig>,
    /// Things that load but deserve the operator's attention (e.g. a password file others can
    /// read); logged at start and printed by `--check-config`.
    pub warnings: Vec<Problem>,
    /// Which targets this replica collects (`--shard.index`/`--shard.count`; never from the
    /// file, so every replica can share one config).
    pub shard: crate::shard::Shard,
}

impl Config {
    /// The targets this replica collects.
    pub fn owned_targets(&self) -> Vec<TargetConfig> {
        self.targets
            .iter()
            .filter(|t| self.shard.owns(&t.name))
            .cloned()
            .collect()
    }
}

/// Timing of collections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionSettings {
    /// Time between collection starts.
    pub interval: Duration,
    /// Deadline for one whole collection; less than `interval`.
    pub timeout: Duration,
    /// TCP connect + startup + authentication.
    pub connect_timeout: Duration,
    /// Server-side `statement_timeout`.
    pub statement_timeout: Duration,
    /// Server-side `lock_timeout`.
    pub lock_timeout: Duration,
    /// Which collectors run, and their size guards.
    pub collectors: CollectorOptions,
    /// Which databases of the server are visited, and how often.
    pub databases: crate::collectors::Databases,
    /// Whether the collection session is kept between collections.
    pub session: SessionMode,
    /// The users' queries (`queries`: postgres_exporter queries files; a target's list
    /// replaces the shared one).
    pub queries: std::sync::Arc<crate::collectors::custom::QuerySet>,
}

impl Default for CollectionSettings {
    fn default() -> Self {
        Self {
            interval: DEFAULT_INTERVAL,
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            statement_timeout: DEFAULT_STATEMENT_TIMEOUT,
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            collectors: CollectorOptions::default(),
            databases: crate::collectors::Databases::default(),
            session: SessionMode::default(),
            queries: std::sync::Arc::default(),
        }
    }
}

/// Metrics listener settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSettings {
    /// Address to listen on.
    pub listen_address: SocketAddr,
    /// Exporter-toolkit web config (TLS, basic auth).
    pub config_file: Option<PathBuf>,
    /// At most this many connections at once; more wait in the kernel's backlog.
    pub max_connections: usize,
}

/// Default `admin.reap_interval`.
pub const DEFAULT_REAP_INTERVAL: Duration = Duration::from_secs(30);
/// Default `admin.drop_after`.
pub const DEFAULT_DROP_AFTER: Duration = Duration::from_secs(24 * 3600);

/// TLS certificate and key files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain.
    pub cert_file: PathBuf,
    /// PEM private key.
    pub key_file: PathBuf,
}

/// Admin API settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminSettings {
    /// Address to listen on.
    pub listen_address: SocketAddr,
    /// Optional TLS.
    pub tls: Option<TlsFiles>,
    /// JSON Lines audit file.
    pub audit_log: Option<PathBuf>,
    /// Bearer tokens; none means the admin API is off.
    pub tokens: Vec<TokenConfig>,
    /// Per-token rate limit.
    pub rate_limit: RateLimit,
    /// `insecure_allow_plaintext`: the operator's explicit consent to serve bearer tokens and
    /// generated passwords without TLS on a non-loopback address.
    pub insecure_allow_plaintext: bool,
    /// At most this many connections at once; more wait in the kernel's backlog.
    pub max_connections: usize,
    /// How often the reaper looks for expired managed roles (`reap_interval`).
    pub reap_interval: Duration,
    /// How long past its expiry a managed role is dropped (`drop_after`).
    pub drop_after: Duration,
}

/// A token bucket: `burst` requests at once, refilled at `per_second`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Bucket size.
    pub burst: u32,
    /// Refill rate.
    pub per_second: f64,
}

impl Eq for RateLimit {}

impl Default for RateLimit {
    /// 20 at once, 5 per second: generous for people, runbooks and chat bots; a loop gone
    /// wrong is stopped.
    fn default() -> Self {
        Self {
            burst: 20,
            per_second: 5.0,
        }
    }
}

impl AdminSettings {
    /// The admin API runs only when at least one token is configured.
    pub fn enabled(&self) -> bool {
        !self.tokens.is_empty()
    }
}

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// Read-only inspection.
    Read,
    /// Terminate or cancel sessions.
    Terminate,
    /// Create non-superuser roles.
    CreateUser,
    /// Create superuser roles; never implied by another scope.
    CreateSuperuser,
}

impl FromStr for Scope {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "read" => Ok(Self::Read),
            "terminate" => Ok(Self::Terminate),
            "create_user" => Ok(Self::CreateUser),
            "create_superuser" => Ok(Self::CreateSuperuser),
            _ => Err(()),
        }
    }
}

/// Which targets a token may touch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetSelector {
    /// `["*"]`.
    All,
    /// Named targets.
    Names(BTreeSet<String>),
}

/// One admin bearer token, known only by its SHA-256 digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenConfig {
    /// Name for logs and the audit trail.
    pub name: String,
    /// SHA-256 of the token.
    pub sha256: [u8; 32],
    /// Granted scopes.
    pub scopes: BTreeSet<Scope>,
    /// Allowed targets.
    pub targets: TargetSelector,
    /// Longest `valid_for` this token may ask for (`max_valid_for`).
    pub max_valid_for: Option<Duration>,
    /// Every user this token creates must expire (`require_expiry`).
    pub require_expiry: bool,
}

/// One database server to watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetConfig {
    /// `[a-z0-9_-]+`, unique; the `server` label.
    pub name: String,
    /// What the gateway needs to reach it: endpoint, logins and its driver's own settings
    /// (its session limits come from `collection`, [`CollectionSettings::limits`]).
    pub spec: TargetSpec,
    /// Effective collection settings (defaults plus this target's overrides).
    pub collection: CollectionSettings,
    /// Roles the admin API may grant new users on this target (`admin.grantable_roles`).
    pub grantable_roles: Vec<crate::gateway::RoleName>,
}

impl CollectionSettings {
    /// The session limits these settings give every connection of a target.
    pub fn limits(&self) -> Limits {
        Limits {
            connect_timeout: self.connect_timeout,
            statement_timeout: self.statement_timeout,
            lock_timeout: self.lock_timeout,
            idle_in_transaction_timeout: self.timeout.max(MIN_IDLE_IN_TRANSACTION_TIMEOUT),
            session: self.session,
        }
    }
}
