//! Configuration: the YAML file (DESIGN.md §3.2) parsed, then validated into typed settings.
//!
//! Loading is two steps: `yaml::parse` turns text into a generic tree, and `validate` walks it
//! into [`Config`], collecting every problem with its path (`targets[1].port: ...`) instead of
//! stopping at the first. Unknown keys are errors. Secrets are read here (from an environment
//! variable or a file, never inline) and wrapped in [`Secret`].

pub(crate) mod reader;
pub(crate) mod yaml;

use std::collections::{BTreeSet, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde_json::Value;

pub use reader::Problem;
use reader::{Fields, Problems};

use crate::collectors::{Options as CollectorOptions, SelectionError};
use crate::gateway::Driver;
pub use crate::gateway::spec::{ChannelBinding, SslMode};
use crate::gateway::spec::{Credentials, Limits, MIN_IDLE_IN_TRANSACTION_TIMEOUT, TargetSpec};
use crate::secret::Secret;

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
/// Default PostgreSQL port.
pub const DEFAULT_PORT: u16 = 5432;
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
}

/// Separate login for admin actions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminLogin {
    /// Role name.
    pub username: String,
    /// Password.
    pub password: Option<Secret>,
}

/// One database server to watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetConfig {
    /// `[a-z0-9_-]+`, unique; the `server` label.
    pub name: String,
    /// Driver.
    pub driver: Driver,
    /// Host name or IP address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Database for server-wide queries.
    pub database: String,
    /// Monitoring role.
    pub username: String,
    /// Its password.
    pub password: Option<Secret>,
    /// TLS mode.
    pub sslmode: SslMode,
    /// CA bundle for verification.
    pub sslrootcert: Option<PathBuf>,
    /// SCRAM channel binding.
    pub channel_binding: ChannelBinding,
    /// Effective collection settings (defaults plus this target's overrides).
    pub collection: CollectionSettings,
    /// Admin login, when different from the monitoring role.
    pub admin: Option<AdminLogin>,
}

impl TargetConfig {
    /// What the gateway needs to reach this target.
    pub fn spec(&self) -> TargetSpec {
        let c = &self.collection;
        TargetSpec {
            driver: self.driver,
            host: self.host.clone(),
            port: self.port,
            database: self.database.clone(),
            monitor: Credentials {
                user: self.username.clone(),
                password: self.password.clone(),
            },
            admin: self.admin.as_ref().map(|a| Credentials {
                user: a.username.clone(),
                password: a.password.clone(),
            }),
            sslmode: self.sslmode,
            sslrootcert: self.sslrootcert.clone(),
            channel_binding: self.channel_binding,
            limits: Limits {
                connect_timeout: c.connect_timeout,
                statement_timeout: c.statement_timeout,
                lock_timeout: c.lock_timeout,
                idle_in_transaction_timeout: c.timeout.max(MIN_IDLE_IN_TRANSACTION_TIMEOUT),
            },
        }
    }
}

/// Why a config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file was read but is not valid.
    #[error("{}", InvalidList { path, problems })]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Every problem found.
        problems: Vec<Problem>,
    },
}

struct InvalidList<'a> {
    path: &'a Path,
    problems: &'a [Problem],
}

impl fmt::Display for InvalidList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(
            f,
            "{}: {n} problem{}",
            self.path.display(),
            if n == 1 { "" } else { "s" }
        )?;
        for p in self.problems {
            write!(f, "\n  {p}")?;
        }
        Ok(())
    }
}

/// Reads and validates the config file, taking secrets from the process environment.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    load_with_env(path, &|name| std::env::var(name).ok())
}

/// As [`load`], with an explicit environment lookup (tests).
pub fn load_with_env(
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    parse_str(&text, &base, env).map_err(|problems| ConfigError::Invalid {
        path: path.to_owned(),
        problems,
    })
}

/// Validates config text; relative paths resolve against `base`.
pub fn parse_str(
    text: &str,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, Vec<Problem>> {
    let mut p = Problems::default();
    let tree = match yaml::parse(text) {
        Ok(tree) => tree,
        Err(message) => {
            p.add("", message);
            return Err(p.0);
        }
    };
    if tree.is_null() {
        p.add("", "the file is empty; at least one target is required");
        return Err(p.0);
    }
    let config = validate(tree, base, env, &mut p);
    match config {
        Some(mut config) if p.0.is_empty() => {
            config.warnings = p.1;
            Ok(config)
        }
        _ => Err(p.0),
    }
}

const TOP_KEYS: &[&str] = &["collection", "web", "admin", "targets"];
const COLLECTION_KEYS: &[&str] = &[
    "interval",
    "timeout",
    "connect_timeout",
    "statement_timeout",
    "lock_timeout",
    "collectors",
    "max_tables",
    "max_statements",
];
const WEB_KEYS: &[&str] = &["listen_address", "config_file", "max_connections"];
const ADMIN_KEYS: &[&str] = &[
    "listen_address",
    "tls",
    "audit_log",
    "tokens",
    "rate_limit",
    "insecure_allow_plaintext",
    "max_connections",
];
const RATE_KEYS: &[&str] = &["burst", "per_second"];
const TLS_KEYS: &[&str] = &["cert_file", "key_file"];
const TOKEN_KEYS: &[&str] = &["name", "sha256", "scopes", "targets"];
const TARGET_KEYS: &[&str] = &[
    "name",
    "driver",
    "host",
    "port",
    "database",
    "username",
    "password",
    "password_env",
    "password_file",
    "sslmode",
    "sslrootcert",
    "channel_binding",
    "interval",
    "timeout",
    "connect_timeout",
    "statement_timeout",
    "lock_timeout",
    "collectors",
    "max_tables",
    "max_statements",
    "admin",
];
const LOGIN_KEYS: &[&str] = &["username", "password", "password_env", "password_file"];

fn validate(
    tree: Value,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    p: &mut Problems,
) -> Option<Config> {
    let mut top = Fields::new(tree, "", TOP_KEYS, p)?;
    let defaults = match top.section("collection", COLLECTION_KEYS, p) {
        Some(mut f) => collection(&mut f, CollectionSettings::default(), p),
        None => CollectionSettings::default(),
    };
    check_collection(&defaults, "collection", p);
    let web = web(top.section("web", WEB_KEYS, p), base, p);
    let mut targets = Vec::new();
    match top.list("targets", p) {
        None if !top.has("targets") => p.add("targets", "at least one target is required"),
        None => {}
        Some(items) if items.is_empty() => p.add("targets", "at least one target is required"),
        Some(items) => {
            let mut names = HashSet::new();
            for (i, item) in items.into_iter().enumerate() {
                let path = format!("targets[{i}]");
                if let Some(name) = item.get("name").and_then(Value::as_str)
                    && !names.insert(name.to_owned())
                {
                    p.add(
                        format!("{path}.name"),
                        format!("duplicate target name {name:?}; names must be unique"),
                    );
                }
                if let Some(t) = target(item, &path, &defaults, base, env, p) {
                    targets.push(t);
                }
            }
        }
    }
    let known: HashSet<&str> = targets.iter().map(|t| t.name.as_str()).collect();
    let admin = admin(top.section("admin", ADMIN_KEYS, p), base, &known, p);
    Some(Config {
        collection: defaults,
        web: web?,
        admin: admin?,
        targets,
        warnings: Vec::new(),
        shard: crate::shard::Shard::SINGLE,
    })
}

fn collection(f: &mut Fields, inherit: CollectionSettings, p: &mut Problems) -> CollectionSettings {
    CollectionSettings {
        interval: f.duration("interval", p).unwrap_or(inherit.interval),
        timeout: f.duration("timeout", p).unwrap_or(inherit.timeout),
        connect_timeout: f
            .duration("connect_timeout", p)
            .unwrap_or(inherit.connect_timeout),
        statement_timeout: f
            .duration("statement_timeout", p)
            .unwrap_or(inherit.statement_timeout),
        lock_timeout: f
            .duration("lock_timeout", p)
            .unwrap_or(inherit.lock_timeout),
        collectors: collectors(f, inherit.collectors, p),
    }
}

/// Largest `max_tables` / `max_statements`: beyond this a target alone would make a scrape
/// of hundreds of thousands of series.
pub const MAX_GUARD: u32 = 10_000;

/// `collectors: {name: bool}` merged over `inherit`, and the size guards.
fn collectors(f: &mut Fields, inherit: CollectorOptions, p: &mut Problems) -> CollectorOptions {
    let mut options = inherit;
    if let Some(value) = f.take("collectors") {
        let path = f.path_of("collectors");
        match value {
            Value::Object(map) => {
                for (name, on) in map {
                    let key = reader::join(&path, &name);
                    let Value::Bool(on) = on else {
                        p.add(key, "expected true or false");
                        continue;
                    };
                    match options.selection.set(&name, on) {
                        Ok(()) => {}
                        Err(SelectionError::Unknown) => p.add(
                            key,
                            format!(
                                "unknown collector; expected one of: {}",
                                crate::collectors::names().join(", ")
                            ),
                        ),
                        Err(SelectionError::Required) => p.add(
                            key,
                            "the health collector cannot be switched off: pg_up and the saturation alerts depend on it",
                        ),
                    }
                }
            }
            _ => p.add(
                path,
                "expected a mapping of collector names to true or false",
            ),
        }
    }
    for (key, slot) in [
        ("max_tables", &mut options.max_tables),
        ("max_statements", &mut options.max_statements),
    ] {
        if let Some(v) = f.take(key) {
            match v
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .filter(|n| (1..=MAX_GUARD).contains(n))
            {
                Some(n) => *slot = n,
                None => p.add(
                    f.path_of(key),
                    format!("expected a whole number from 1 to {MAX_GUARD}"),
                ),
            }
        }
    }
    options
}

fn check_collection(c: &CollectionSettings, path: &str, p: &mut Problems) {
    if c.timeout >= c.interval {
        p.add(
            reader::join(path, "timeout"),
            format!(
                "must be less than interval ({} >= {}), so collections of a target never overlap",
                humantime::format_duration(c.timeout),
                humantime::format_duration(c.interval)
            ),
        );
    }
}

fn socket_addr(f: &mut Fields, key: &str, default: &str, p: &mut Problems) -> Option<SocketAddr> {
    let text = f.string(key, p).unwrap_or_else(|| default.to_owned());
    match text.parse() {
        Ok(addr) => Some(addr),
        Err(_) => {
            p.add(
                f.path_of(key),
                format!("invalid address {text:?}; write IP:PORT, e.g. \"127.0.0.1:9930\" or \"[::]:9930\""),
            );
            None
        }
    }
}

fn web(f: Option<Fields>, base: &Path, p: &mut Problems) -> Option<WebSettings> {
    let mut f = f?;
    let max_connections = connection_cap(&mut f, DEFAULT_WEB_MAX_CONNECTIONS, p);
    Some(WebSettings {
        listen_address: socket_addr(&mut f, "listen_address", DEFAULT_WEB_LISTEN, p)?,
        config_file: f.path("config_file", base, p),
        max_connections,
    })
}

/// `max_connections` of a listener: 1 to [`MAX_LISTENER_CONNECTIONS`].
fn connection_cap(f: &mut Fields, default: usize, p: &mut Problems) -> usize {
    match f.take("max_connections") {
        None => default,
        Some(v) => match v
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .filter(|n| (1..=MAX_LISTENER_CONNECTIONS).contains(n))
        {
            Some(n) => n,
            None => {
                p.add(
                    f.path_of("max_connections"),
                    format!("expected a whole number from 1 to {MAX_LISTENER_CONNECTIONS}"),
                );
                default
            }
        },
    }
}

fn admin(
    f: Option<Fields>,
    base: &Path,
    known: &HashSet<&str>,
    p: &mut Problems,
) -> Option<AdminSettings> {
    let mut f = f?;
    let listen_address = socket_addr(&mut f, "listen_address", DEFAULT_ADMIN_LISTEN, p);
    let tls = if f.has("tls") {
        f.section("tls", TLS_KEYS, p).and_then(|mut t| {
            let cert = t.path("cert_file", base, p);
            let key = t.path("key_file", base, p);
            if cert.is_none() {
                p.add(t.path_of("cert_file"), "is required when tls is set");
            }
            if key.is_none() {
                p.add(t.path_of("key_file"), "is required when tls is set");
            }
            if let Some(warning) = key
                .as_deref()
                .and_then(crate::tls::server::loose_key_warning)
            {
                p.warn(t.path_of("key_file"), warning);
            }
            Some(TlsFiles {
                cert_file: cert?,
                key_file: key?,
            })
        })
    } else {
        None
    };
    let audit_log = f.path("audit_log", base, p);
    let mut rate_limit = RateLimit::default();
    if f.has("rate_limit")
        && let Some(mut r) = f.section("rate_limit", RATE_KEYS, p)
    {
        if let Some(v) = r.take("burst") {
            match v
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .filter(|n| (1.0..=MAX_RATE).contains(&f64::from(*n)))
            {
                Some(n) => rate_limit.burst = n,
                None => p.add(
                    r.path_of("burst"),
                    "expected a whole number of requests from 1 to 1000000",
                ),
            }
        }
        if let Some(v) = r.take("per_second") {
            match v.as_f64().filter(|n| (MIN_RATE..=MAX_RATE).contains(n)) {
                Some(n) => rate_limit.per_second = n,
                None => p.add(
                    r.path_of("per_second"),
                    "expected a number of requests per second from 0.001 to 1000000",
                ),
            }
        }
    }
    let mut tokens = Vec::new();
    let mut names = HashSet::new();
    let path = f.path_of("tokens");
    for (i, item) in f
        .list("tokens", p)
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let tpath = format!("{path}[{i}]");
        if let Some(name) = item.get("name").and_then(Value::as_str)
            && !names.insert(name.to_owned())
        {
            p.add(
                format!("{tpath}.name"),
                format!("duplicate token name {name:?}"),
            );
        }
        if let Some(t) = token(item, &tpath, known, p) {
            tokens.push(t);
        }
    }
    let insecure_allow_plaintext = f.bool("insecure_allow_plaintext", p).unwrap_or(false);
    if let Some(addr) = listen_address
        && !addr.ip().is_loopback()
        && tls.is_none()
        && !insecure_allow_plaintext
        && !tokens.is_empty()
    {
        p.add(
            f.path_of("listen_address"),
            format!(
                "{addr} is reachable from the network, but admin.tls is not set: bearer tokens and generated passwords would cross it in plaintext; set admin.tls, listen on loopback, or write `insecure_allow_plaintext: true` (e.g. behind a TLS-terminating proxy)"
            ),
        );
    }
    let max_connections = connection_cap(&mut f, DEFAULT_ADMIN_MAX_CONNECTIONS, p);
    let mutating = tokens
        .iter()
        .any(|t: &TokenConfig| t.scopes.iter().any(|s| *s != Scope::Read));
    if mutating && audit_log.is_none() {
        p.add(
            f.path_of("audit_log"),
            "is required when a token has the terminate, create_user or create_superuser scope",
        );
    }
    Some(AdminSettings {
        listen_address: listen_address?,
        tls,
        audit_log,
        tokens,
        rate_limit,
        insecure_allow_plaintext,
        max_connections,
    })
}

/// Rate limits outside this range are typos, and extreme ones overflow token-bucket arithmetic.
const MIN_RATE: f64 = 0.001;
const MAX_RATE: f64 = 1_000_000.0;

fn token(item: Value, path: &str, known: &HashSet<&str>, p: &mut Problems) -> Option<TokenConfig> {
    let mut f = Fields::new(item, path, TOKEN_KEYS, p)?;
    let name = f.required_string("name", p);
    if name.as_deref().is_some_and(str::is_empty) {
        p.add(f.path_of("name"), "must not be empty");
    }
    let sha256 = f.required_string("sha256", p).and_then(|hex| {
        let digest = decode_sha256(&hex);
        if digest.is_none() {
            p.add(
                f.path_of("sha256"),
                "expected 64 hex characters (the SHA-256 digest `mesa --new-token` prints), never the token itself",
            );
        }
        digest
    });
    let mut scopes = BTreeSet::new();
    let spath = f.path_of("scopes");
    match f.strings("scopes", p) {
        None => p.add(
            spath.clone(),
            "is required: a list of read, terminate, create_user, create_superuser",
        ),
        Some(list) if list.is_empty() => p.add(spath.clone(), "must name at least one scope"),
        Some(list) => {
            for (i, s) in list.iter().enumerate() {
                match s.parse() {
                    Ok(scope) => {
                        scopes.insert(scope);
                    }
                    Err(()) => p.add(
                        format!("{spath}[{i}]"),
                        format!("unknown scope {s:?}; expected read, terminate, create_user or create_superuser"),
                    ),
                }
            }
        }
    }
    let tpath = f.path_of("targets");
    let targets = match f.strings("targets", p) {
        None => {
            p.add(tpath, "is required: [\"*\"] or a list of target names");
            None
        }
        Some(list) if list.iter().any(|t| t == "*") => {
            if list.len() > 1 {
                p.add(tpath, "\"*\" already means every target; list it alone");
            }
            Some(TargetSelector::All)
        }
        Some(list) if list.is_empty() => {
            p.add(tpath, "must name at least one target, or \"*\"");
            None
        }
        Some(list) => {
            for (i, t) in list.iter().enumerate() {
                if !known.contains(t.as_str()) {
                    p.add(format!("{tpath}[{i}]"), format!("no target is named {t:?}"));
                }
            }
            Some(TargetSelector::Names(list.into_iter().collect()))
        }
    };
    Some(TokenConfig {
        name: name?,
        sha256: sha256?,
        scopes,
        targets: targets?,
    })
}

/// Decodes a 64-character hex SHA-256 digest.
pub fn decode_sha256(hex: &str) -> Option<[u8; 32]> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let nibble = |c: u8| (c as char).to_digit(16).and_then(|d| u8::try_from(d).ok());
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        out[i] = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(out)
}

fn valid_target_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

fn target(
    item: Value,
    path: &str,
    defaults: &CollectionSettings,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    p: &mut Problems,
) -> Option<TargetConfig> {
    let mut f = Fields::new(item, path, TARGET_KEYS, p)?;
    let name = f.required_string("name", p);
    if let Some(n) = name.as_deref().filter(|n| !valid_target_name(n)) {
        p.add(
            f.path_of("name"),
            format!("invalid name {n:?}; use lowercase letters, digits, '_' and '-' (it becomes the `server` label)"),
        );
    }
    let driver = f
        .required_string("driver", p)
        .and_then(|d| match d.parse::<Driver>() {
            Ok(driver) => Some(driver),
            Err(e) => {
                p.add(f.path_of("driver"), e.to_string());
                None
            }
        });
    let host = f.required_string("host", p);
    if host.as_deref().is_some_and(str::is_empty) {
        p.add(f.path_of("host"), "must not be empty");
    }
    let port = if f.has("port") {
        f.port("port", p)
    } else {
        Some(DEFAULT_PORT)
    };
    let database = f
        .string("database", p)
        .unwrap_or_else(|| "postgres".to_owned());
    let username = f.required_string("username", p);
    let password = read_password(&mut f, env, base, p);
    let sslmode = match f.string("sslmode", p) {
        None => Some(SslMode::Prefer),
        Some(s) => match s.parse() {
            Ok(mode) => Some(mode),
            Err(()) => {
                p.add(
                    f.path_of("sslmode"),
                    format!("unknown sslmode {s:?}; expected one of: {}", SslMode::NAMES),
                );
                None
            }
        },
    };
    let sslrootcert = f.path("sslrootcert", base, p);
    if let Some(cert) = sslrootcert.as_deref().filter(|c| !c.is_file()) {
        p.add(
            f.path_of("sslrootcert"),
            format!("{} is not a readable file", cert.display()),
        );
    }
    // libpq refuses the system store below verify-full: with any public CA trusted and no
    // host name check, anyone's certificate for any host would pass.
    if sslmode == Some(SslMode::VerifyCa) && sslrootcert.is_none() {
        p.add(
            f.path_of("sslmode"),
            "verify-ca needs sslrootcert (the CA that signs this server's certificate); without it any certificate from any public CA for any host would be accepted. Set sslrootcert, or use verify-full to check the host name against the system's CAs",
        );
    }
    let channel_binding = match f.string("channel_binding", p) {
        None => sslmode.map(|m| ChannelBinding::default_for(m, sslrootcert.is_some())),
        Some(s) => match s.parse() {
            Ok(ChannelBinding::Require) if sslmode == Some(SslMode::Disable) => {
                p.add(
                    f.path_of("channel_binding"),
                    "require needs TLS, but sslmode is disable",
                );
                None
            }
            Ok(cb) => Some(cb),
            Err(()) => {
                p.add(
                    f.path_of("channel_binding"),
                    format!(
                        "unknown channel_binding {s:?}; expected one of: {}",
                        ChannelBinding::NAMES
                    ),
                );
                None
            }
        },
    };
    // Inherited values were checked under `collection`; recheck only what this target changes.
    let overrides = COLLECTION_KEYS.iter().any(|k| f.has(k));
    let collection = collection(&mut f, *defaults, p);
    if overrides {
        check_collection(&collection, path, p);
    }
    let admin = if f.has("admin") {
        f.section("admin", LOGIN_KEYS, p).and_then(|mut a| {
            let username = a.required_string("username", p);
            let password = read_password(&mut a, env, base, p);
            Some(AdminLogin {
                username: username?,
                password,
            })
        })
    } else {
        None
    };
    Some(TargetConfig {
        name: name?,
        driver: driver?,
        host: host?,
        port: port?,
        database,
        username: username?,
        password,
        sslmode: sslmode?,
        sslrootcert,
        channel_binding: channel_binding?,
        collection,
        admin,
    })
}

/// Reads `password_env` or `password_file`; an inline `password` is an error with a hint.
fn read_password(
    f: &mut Fields,
    env: &dyn Fn(&str) -> Option<String>,
    base: &Path,
    p: &mut Problems,
) -> Option<Secret> {
    if f.take("password").is_some() {
        p.add(
            f.path_of("password"),
            "inline passwords are not allowed; use password_env: VARIABLE or password_file: PATH",
        );
    }
    let from_env = f.string("password_env", p);
    let from_file = f.path("password_file", base, p);
    match (from_env, from_file) {
        (Some(_), Some(_)) => {
            p.add(
                f.path_of("password_env"),
                "set password_env or password_file, not both",
            );
            None
        }
        (Some(var), None) => match env(&var) {
            Some(value) if !value.is_empty() => Some(Secret::new(value)),
            _ => {
                p.add(
                    f.path_of("password_env"),
                    format!("environment variable {var} is not set or empty"),
                );
                None
            }
        },
        (None, Some(file)) => match read_secret_file(&file) {
            Ok(secret) => {
                if secret.loose {
                    p.warn(
                        f.path_of("password_file"),
                        format!(
                            "{} can be read or changed by users other than its owner (group or other permission bits are set); chmod 600 it",
                            file.display()
                        ),
                    );
                }
                password_from_file(secret.text, &file, f, p)
            }
            Err(e) => {
                p.add(
                    f.path_of("password_file"),
                    format!("cannot read {}: {e}", file.display()),
                );
                None
            }
        },
        (None, None) => None,
    }
}

/// The longest password file read: far above any password, and a bound on what a mistaken
/// path (a log file, a device) can make Mesa read.
pub const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

/// A secret file's text, and whether anyone but its owner may read or change it.
struct SecretFile {
    text: String,
    /// Group or other permission bits are set (`0o077`).
    loose: bool,
}

/// Reads a secret file: a regular file (not a device or FIFO, which could block or never
/// end) of at most [`MAX_SECRET_FILE_BYTES`], as UTF-8. The permissions come from the same
/// open file, so they are the ones of the file that was read.
fn read_secret_file(path: &Path) -> std::io::Result<SecretFile> {
    use std::io::Read as _;
    use std::os::unix::fs::PermissionsExt as _;
    let file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    if meta.len() > MAX_SECRET_FILE_BYTES {
        return Err(std::io::Error::other(format!(
            "larger than {MAX_SECRET_FILE_BYTES} bytes; is this really a password file?"
        )));
    }
    let mut text = String::new();
    file.take(MAX_SECRET_FILE_BYTES).read_to_string(&mut text)?;
    Ok(SecretFile {
        text,
        loose: meta.permissions().mode() & 0o077 != 0,
    })
}

/// A password from a file's text. A trailing newline is an artefact of `echo` or editors,
/// never part of a password.
fn password_from_file(text: String, file: &Path, f: &Fields, p: &mut Problems) -> Option<Secret> {
    let value = text.trim_end_matches(['\n', '\r']);
    if value.is_empty() {
        p.add(
            f.path_of("password_file"),
            format!("{} is empty", file.display()),
        );
        None
    } else {
        Some(Secret::new(value))
    }
}

#[cfg(test)]
mod tests;
