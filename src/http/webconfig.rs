//! The metrics listener's web config, in the Prometheus exporter-toolkit format, so the
//! `web.yml` files people already use with other exporters work unchanged:
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: server.crt
//!   key_file: server.key
//!   client_auth_type: RequireAndVerifyClientCert   # or NoClientCert (default), ...
//!   client_ca_file: ca.crt
//!   min_version: TLS12                             # TLS10 and TLS11 are refused
//! http_server_config:
//!   headers: {Strict-Transport-Security: max-age=31536000}
//! basic_auth_users:
//!   prometheus: $2y$10$...                         # bcrypt
//! ```
//!
//! Unknown keys are errors. Hashes costlier than [`MAX_BCRYPT_COST`] are refused at load. The
//! basic-auth check itself (bcrypt queue, caches, decoys) is `basic_auth.rs`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use axum::http::HeaderValue;
use serde_json::Value;

use crate::config::reader::{Fields, Problems};
use crate::tls::{ClientAuth, ServerTls, TlsVersion};

/// Why a web config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum WebConfigError {
    /// The file could not be read.
    #[error("cannot read web config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is invalid.
    #[error("web config {}: {}", path.display(), problems.join("; "))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Every problem, with its path.
        problems: Vec<String>,
    },
}

/// The parsed web config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebConfig {
    /// TLS for the listener.
    pub tls: Option<ServerTls>,
    /// Extra response headers.
    pub headers: Vec<(String, String)>,
    /// User name to bcrypt hash.
    pub basic_auth_users: BTreeMap<String, String>,
}

const TOP: &[&str] = &[
    "tls_server_config",
    "http_server_config",
    "basic_auth_users",
];
const TLS: &[&str] = &[
    "cert_file",
    "key_file",
    "client_auth_type",
    "client_ca_file",
    "client_allowed_sans",
    "min_version",
    "max_version",
    "cipher_suites",
    "prefer_server_cipher_suites",
    "curve_preferences",
];
const HTTP: &[&str] = &["http2", "headers"];
/// The headers exporter-toolkit allows.
const ALLOWED_HEADERS: &[&str] = &[
    "Strict-Transport-Security",
    "X-Content-Type-Options",
    "X-Frame-Options",
    "X-XSS-Protection",
    "Content-Security-Policy",
];

fn version(text: &str, path: &str, p: &mut Problems) -> Option<TlsVersion> {
    match text {
        "TLS13" => Some(TlsVersion::Tls13),
        "TLS12" => Some(TlsVersion::Tls12),
        "TLS10" | "TLS11" => {
            p.add(
                path,
                format!("{text} is refused: TLS below 1.2 is insecure; use TLS12 or TLS13"),
            );
            None
        }
        other => {
            p.add(
                path,
                format!("unknown TLS version {other:?}; expected TLS12 or TLS13"),
            );
            None
        }
    }
}

/// Loads and validates a web config file.
pub fn load(path: &Path) -> Result<WebConfig, WebConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| WebConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    parse(&text, &base).map_err(|problems| WebConfigError::Invalid {
        path: path.to_owned(),
        problems,
    })
}

/// Validates web config text; relative paths resolve against `base`.
pub fn parse(text: &str, base: &Path) -> Result<WebConfig, Vec<String>> {
    let mut p = Problems::default();
    let tree = match crate::config::yaml::parse(text) {
        Ok(tree) => tree,
        Err(e) => return Err(vec![e]),
    };
    let mut config = WebConfig::default();
    if let Some(mut top) = Fields::new(tree, "", TOP, &mut p) {
        if top.has("tls_server_config")
            && let Some(mut t) = top.section("tls_server_config", TLS, &mut p)
        {
            config.tls = tls(&mut t, base, &mut p);
        }
        if let Some(mut h) = top.section("http_server_config", HTTP, &mut p) {
            // Mesa serves HTTP/1.1, which every Prometheus speaks; http2 changes nothing.
            if h.take("http2").is_some_and(|v| !v.is_boolean()) {
                p.add(h.path_of("http2"), "expected true or false");
            }
            let hpath = h.path_of("headers");
            match h.take("headers") {
                None => {}
                Some(Value::Object(map)) => {
                    for (name, value) in map {
                        let allowed = ALLOWED_HEADERS
                            .iter()
                            .any(|a| a.eq_ignore_ascii_case(&name));
                        match value {
                            Value::String(v) if allowed && HeaderValue::from_str(&v).is_ok() => {
                                config.headers.push((name, v));
                            }
                            _ if !allowed => p.add(
                                format!("{hpath}.{name}"),
                                format!(
                                    "header not allowed; allowed: {}",
                                    ALLOWED_HEADERS.join(", ")
                                ),
                            ),
                            _ => p.add(format!("{hpath}.{name}"), "expected a valid header value"),
                        }
                    }
                }
                Some(_) => p.add(hpath, "expected a mapping of header names to values"),
            }
        }
        let upath = "basic_auth_users";
        match top.take(upath) {
            None => {}
            Some(Value::Object(map)) => {
                for (user, hash) in map {
                    match hash {
                        Value::String(h) if bcrypt_hash(&h) => match bcrypt_cost(&h) {
                            Some(cost) if (4..=MAX_BCRYPT_COST).contains(&cost) => {
                                config.basic_auth_users.insert(user, h);
                            }
                            _ => p.add(
                                format!("{upath}.{user}"),
                                format!(
                                    "bcrypt cost must be from 4 to {MAX_BCRYPT_COST} (each step doubles the work per login; 10 is usual)"
                                ),
                            ),
                        },
                        _ => p.add(
                            format!("{upath}.{user}"),
                            "expected a bcrypt hash ($2a$, $2b$ or $2y$); create one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`",
                        ),
                    }
                }
            }
            Some(_) => p.add(upath, "expected a mapping of user names to bcrypt hashes"),
        }
    }
    if p.0.is_empty() {
        Ok(config)
    } else {
        Err(p.0.iter().map(ToString::to_string).collect())
    }
}

fn bcrypt_hash(h: &str) -> bool {
    h.len() == 60
        && ["$2a$", "$2b$", "$2y$"]
            .iter()
            .any(|prefix| h.starts_with(prefix))
}

fn tls(t: &mut Fields, base: &Path, p: &mut Problems) -> Option<ServerTls> {
    let cert = t.path("cert_file", base, p);
    let key = t.path("key_file", base, p);
    if cert.is_none() {
        p.add(t.path_of("cert_file"), "is required");
    }
    if key.is_none() {
        p.add(t.path_of("key_file"), "is required");
    }
    let mut out = ServerTls::new(
        cert.clone().unwrap_or_default(),
        key.clone().unwrap_or_default(),
    );
    let apath = t.path_of("client_auth_type");
    out.client_auth = match t.string("client_auth_type", p).as_deref() {
        None | Some("NoClientCert") => ClientAuth::None,
        Some("RequestClientCert") => ClientAuth::RequestAny,
        Some("RequireAnyClientCert") => ClientAuth::RequireAny,
        Some("VerifyClientCertIfGiven") => ClientAuth::VerifyIfGiven,
        Some("RequireAndVerifyClientCert") => ClientAuth::Require,
        Some(other) => {
            p.add(
                apath,
                format!("unknown client_auth_type {other:?}; expected NoClientCert, RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven or RequireAndVerifyClientCert"),
            );
            ClientAuth::None
        }
    };
    out.client_ca_file = t.path("client_ca_file", base, p);
    if matches!(
        out.client_auth,
        ClientAuth::VerifyIfGiven | ClientAuth::Require
    ) && out.client_ca_file.is_none()
    {
        p.add(
            t.path_of("client_ca_file"),
            "is required to verify client certificates",
        );
    }
    let spath = t.path_of("client_allowed_sans");
    if let Some(sans) = t.strings("client_allowed_sans", p) {
        // A SAN allow-list means nothing unless the certificate's chain is verified first:
        // anyone can mint a self-signed certificate with any SAN.
        if !sans.is_empty()
            && !matches!(
                out.client_auth,
                ClientAuth::VerifyIfGiven | ClientAuth::Require
            )
        {
            p.add(
                spath,
                "needs client_auth_type RequireAndVerifyClientCert (or VerifyClientCertIfGiven): without verification any self-signed certificate could claim an allowed name",
            );
        }
        out.client_allowed_sans = sans;
    }
    for (key, slot, default) in [
        ("min_version", &mut out.min_version, TlsVersion::Tls12),
        ("max_version", &mut out.max_version, TlsVersion::Tls13),
    ] {
        let path = t.path_of(key);
        *slot = t
            .string(key, p)
            .and_then(|v| version(&v, &path, p))
            .unwrap_or(default);
    }
    if out.min_version > out.max_version {
        p.add(t.path_of("min_version"), "is above max_version");
    }
    if let Some(suites) = t.strings("cipher_suites", p) {
        out.cipher_suites = suites;
    }
    if let Some(b) = t.bool("prefer_server_cipher_suites", p) {
        out.prefer_server_cipher_suites = b;
    }
    if let Some(curves) = t.strings("curve_preferences", p) {
        out.curve_preferences = curves;
    }
    (cert.is_some() && key.is_some()).then_some(out)
}

/// The highest bcrypt cost accepted. Each step doubles the work: at cost 14 one check takes
/// about a second of CPU here, so a higher cost turns every scrape's first login (and every
/// wrong password) into a denial of service on the exporter itself.
pub const MAX_BCRYPT_COST: u32 = 14;

/// The cost field of a `$2?$NN$...` hash.
pub(super) fn bcrypt_cost(hash: &str) -> Option<u32> {
    hash.get(4..6)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_tls_and_unknown_keys_are_refused() {
        let base = Path::new("/etc");
        let e = parse(
            "tls_server_config: {cert_file: a, key_file: b, min_version: TLS11}\n",
            base,
        )
        .expect_err("TLS11");
        assert!(
            e[0].contains("tls_server_config.min_version: TLS11 is refused"),
            "{e:?}"
        );
        let e = parse(
            "tls_server_config: {cert_file: a, key_file: b}\nbasic_auth: {}\n",
            base,
        )
        .expect_err("unknown key");
        assert!(e[0].starts_with("basic_auth: unknown key"), "{e:?}");
        let ok = parse(
            "tls_server_config: {cert_file: a, key_file: b, min_version: TLS13}\nbasic_auth_users: {u: '$2y$10$abcdefghijklmnopqrstuuKQ3mKyE5/4SSiZk9XO0u8E0HB8r7cNO'}\n",
            base,
        )
        .expect("valid");
        assert_eq!(ok.tls.expect("tls").min_version, TlsVersion::Tls13);
    }

    #[test]
    fn san_lists_need_verified_client_certificates_and_absurd_costs_are_refused() {
        let base = Path::new("/etc");
        for auth in ["NoClientCert", "RequestClientCert", "RequireAnyClientCert"] {
            let e = parse(
                &format!("tls_server_config: {{cert_file: a, key_file: b, client_auth_type: {auth}, client_allowed_sans: [scraper.example]}}\n"),
                base,
            )
            .expect_err(auth);
            assert!(
                e.iter().any(|m| m.starts_with("tls_server_config.client_allowed_sans: needs client_auth_type RequireAndVerifyClientCert")),
                "{auth}: {e:?}"
            );
        }
        let ok = parse(
            "tls_server_config: {cert_file: a, key_file: b, client_auth_type: RequireAndVerifyClientCert, client_ca_file: c, client_allowed_sans: [scraper.example]}\n",
            base,
        );
        assert!(ok.is_ok(), "{ok:?}");
        let costly = "$2y$31$abcdefghijklmnopqrstuuKQ3mKyE5/4SSiZk9XO0u8E0HB8r7cNO";
        let e =
            parse(&format!("basic_auth_users: {{u: '{costly}'}}\n"), base).expect_err("cost 31");
        assert!(
            e[0].starts_with("basic_auth_users.u: bcrypt cost must be from 4 to 14"),
            "{e:?}"
        );
    }
}
