//! Server-side TLS for the listeners (rustls): certificate and key from PEM files, TLS 1.2
//! and 1.3 only, optional client-certificate verification in exporter-toolkit's terms.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::CertificateDer;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;

use super::pem::{certs, key, roots};
use super::{HandshakeSignatures, TlsError};

/// TLS protocol versions to offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    /// TLS 1.2.
    Tls12,
    /// TLS 1.3.
    Tls13,
}

/// Client-certificate policy (exporter-toolkit's `client_auth_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// `NoClientCert`: none is asked for.
    None,
    /// `RequestClientCert`: asked for, optional, not verified.
    RequestAny,
    /// `RequireAnyClientCert`: required, not verified against a CA.
    RequireAny,
    /// `VerifyClientCertIfGiven`: verified if the client sends one.
    VerifyIfGiven,
    /// `RequireAndVerifyClientCert`: required and signed by the client CA.
    Require,
}

/// A warning when a TLS private key can be read (or changed) by users other than its owner,
/// as for password files: `--check-config` and the start log it.
pub fn loose_key_warning(key_file: &std::path::Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(key_file).ok()?.permissions().mode();
    (mode & 0o077 != 0).then(|| {
        format!(
            "{} can be read or changed by users other than its owner (mode {:o}): anyone who reads it can impersonate this listener; chmod 600 it",
            key_file.display(),
            mode & 0o7777
        )
    })
}

/// What a TLS listener needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTls {
    /// PEM certificate chain.
    pub cert_file: PathBuf,
    /// PEM private key.
    pub key_file: PathBuf,
    /// Client certificates.
    pub client_auth: ClientAuth,
    /// CA bundle for client certificates.
    pub client_ca_file: Option<PathBuf>,
    /// Lowest version offered.
    pub min_version: TlsVersion,
    /// Highest version offered.
    pub max_version: TlsVersion,
    /// Client certificates must carry one of these SANs (DNS, IP, email or URI); empty: any.
    pub client_allowed_sans: Vec<String>,
    /// TLS 1.2 cipher suites by IANA name; empty: rustls' safe defaults.
    pub cipher_suites: Vec<String>,
    /// Choose the cipher suite by the server's order.
    pub prefer_server_cipher_suites: bool,
    /// Key-exchange groups by Go name (`X25519`, `CurveP256`, `CurveP384`); empty: defaults.
    pub curve_preferences: Vec<String>,
}

impl ServerTls {
    /// Server certificate and key only, TLS 1.2 and 1.3.
    pub fn new(cert_file: PathBuf, key_file: PathBuf) -> Self {
        Self {
            cert_file,
            key_file,
            client_auth: ClientAuth::None,
            client_ca_file: None,
            min_version: TlsVersion::Tls12,
            max_version: TlsVersion::Tls13,
            client_allowed_sans: Vec::new(),
            cipher_suites: Vec::new(),
            prefer_server_cipher_suites: true,
            curve_preferences: Vec::new(),
        }
    }
}

/// Builds the rustls server configuration.
pub fn server_config(tls: &ServerTls) -> Result<Arc<ServerConfig>, TlsError> {
    let mut provider = super::provider();
    if !tls.cipher_suites.is_empty() {
        let wanted = |s: &rustls::SupportedCipherSuite| {
            let name = format!("{:?}", s.suite());
            // TLS 1.3 suites are not configurable in Go either; keep them all.
            s.version() == &rustls::version::TLS13 || tls.cipher_suites.contains(&name)
        };
        provider.cipher_suites.retain(wanted);
        if !provider
            .cipher_suites
            .iter()
            .any(|s| s.version() == &rustls::version::TLS12)
            && tls.min_version == TlsVersion::Tls12
        {
            return Err(TlsError::Config(format!(
                "none of cipher_suites {:?} is supported; supported TLS 1.2 suites: ECDHE with AES-GCM or ChaCha20-Poly1305",
                tls.cipher_suites
            )));
        }
    }
    if !tls.curve_preferences.is_empty() {
        let mut groups = Vec::new();
        for curve in &tls.curve_preferences {
            let group = match curve.as_str() {
                "X25519" => rustls::crypto::ring::kx_group::X25519,
                "CurveP256" => rustls::crypto::ring::kx_group::SECP256R1,
                "CurveP384" => rustls::crypto::ring::kx_group::SECP384R1,
                other => {
                    return Err(TlsError::Config(format!(
                        "curve {other:?} is not supported; use X25519, CurveP256 or CurveP384"
                    )));
                }
            };
            groups.push(group);
        }
        provider.kx_groups = groups;
    }
    let provider = Arc::new(provider);
    let versions: Vec<&'static rustls::SupportedProtocolVersion> = [
        (TlsVersion::Tls12, &rustls::version::TLS12),
        (TlsVersion::Tls13, &rustls::version::TLS13),
    ]
    .into_iter()
    .filter(|(v, _)| (tls.min_version..=tls.max_version).contains(v))
    .map(|(_, v)| v)
    .collect();
    let builder =
        ServerConfig::builder_with_provider(provider.clone()).with_protocol_versions(&versions)?;
    let verifier: Option<Arc<dyn ClientCertVerifier>> = match tls.client_auth {
        ClientAuth::None => None,
        ClientAuth::RequestAny | ClientAuth::RequireAny => Some(Arc::new(AnyClientCert {
            signatures: HandshakeSignatures(provider.clone()),
            mandatory: tls.client_auth == ClientAuth::RequireAny,
        })),
        ClientAuth::VerifyIfGiven | ClientAuth::Require => {
            let ca = tls.client_ca_file.as_ref().ok_or_else(|| {
                TlsError::ClientCa(
                    "client_ca_file is required to verify client certificates".to_owned(),
                )
            })?;
            let builder =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots(ca)?), provider.clone());
            let builder = if tls.client_auth == ClientAuth::VerifyIfGiven {
                builder.allow_unauthenticated()
            } else {
                builder
            };
            Some(
                builder
                    .build()
                    .map_err(|e| TlsError::ClientCa(e.to_string()))?,
            )
        }
    };
    let verifier = match (verifier, tls.client_allowed_sans.is_empty()) {
        (Some(inner), false) => Some(Arc::new(AllowedSans::new(inner, &tls.client_allowed_sans)?)
            as Arc<dyn ClientCertVerifier>),
        (None, false) => {
            return Err(TlsError::Config(
                "client_allowed_sans needs a client_auth_type that asks for certificates"
                    .to_owned(),
            ));
        }
        (v, true) => v,
    };
    let builder = match verifier {
        Some(v) => builder.with_client_cert_verifier(v),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(certs(&tls.cert_file)?, key(&tls.key_file)?)?;
    config.ignore_client_order = tls.prefer_server_cipher_suites;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// `RequestClientCert` / `RequireAnyClientCert`: any certificate is accepted (its handshake
/// signature is still checked, so the client holds the key).
#[derive(Debug)]
struct AnyClientCert {
    signatures: HandshakeSignatures,
    mandatory: bool,
}

impl ClientCertVerifier for AnyClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        Ok(rustls::server::danger::ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.signatures.tls12(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.signatures.tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.signatures.schemes()
    }
}

/// `client_allowed_sans`: after the inner verifier, the certificate must be valid for one of
/// the listed DNS names or IP addresses.
#[derive(Debug)]
struct AllowedSans {
    inner: Arc<dyn ClientCertVerifier>,
    names: Vec<rustls::pki_types::ServerName<'static>>,
}

impl AllowedSans {
    fn new(inner: Arc<dyn ClientCertVerifier>, sans: &[String]) -> Result<Self, TlsError> {
        let names = sans
            .iter()
            .map(|s| {
                rustls::pki_types::ServerName::try_from(s.clone()).map_err(|_| {
                    TlsError::Config(format!(
                        "client_allowed_sans: {s:?} is not a DNS name or IP address (email and URI SANs are not supported)"
                    ))
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { inner, names })
    }
}

impl ClientCertVerifier for AllowedSans {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        let cert = webpki::EndEntityCert::try_from(end_entity).map_err(|_| {
            rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding)
        })?;
        if self
            .names
            .iter()
            .any(|name| cert.verify_is_valid_for_subject_name(name).is_ok())
        {
            Ok(verified)
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
