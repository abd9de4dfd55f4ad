//! The `admin` section: listener, TLS, audit log, rate limit and bearer tokens.

use std::collections::HashSet;
use std::path::Path;

use serde_json::Value;

use super::reader::{Fields, MAX_DURATION, Problems};
use super::*;

pub(super) const ADMIN_KEYS: &[&str] = &[
    "listen_address",
    "tls",
    "audit_log",
    "tokens",
    "rate_limit",
    "insecure_allow_plaintext",
    "max_connections",
    "reap_interval",
    "drop_after",
];
pub(super) const RATE_KEYS: &[&str] = &["burst", "per_second"];
pub(super) const TLS_KEYS: &[&str] = &["cert_file", "key_file"];
pub(super) const TOKEN_KEYS: &[&str] = &[
    "name",
    "sha256",
    "scopes",
    "targets",
    "max_valid_for",
    "require_expiry",
];

/// Longest `drop_after` and `max_valid_for`: ten years.
const MAX_LIFETIME: std::time::Duration = std::time::Duration::from_secs(3650 * 24 * 3600);

pub(super) fn admin(
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
    let reap_interval = f
        .long_duration("reap_interval", MAX_DURATION, "24h", p)
        .unwrap_or(DEFAULT_REAP_INTERVAL);
    let drop_after = f
        .long_duration("drop_after", MAX_LIFETIME, "3650d", p)
        .unwrap_or(DEFAULT_DROP_AFTER);
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
        reap_interval,
        drop_after,
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
    let max_valid_for = f.long_duration("max_valid_for", MAX_LIFETIME, "3650d", p);
    let require_expiry = f.bool("require_expiry", p).unwrap_or(false);
    if (max_valid_for.is_some() || require_expiry) && !scopes.contains(&Scope::CreateUser) {
        p.warn(
            f.path_of("scopes"),
            "max_valid_for and require_expiry apply to users this token creates, but it lacks the create_user scope",
        );
    }
    Some(TokenConfig {
        name: name?,
        sha256: sha256?,
        scopes,
        targets: targets?,
        max_valid_for,
        require_expiry,
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
