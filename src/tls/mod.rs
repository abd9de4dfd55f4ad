//! TLS for both sides of Mesa, on rustls with the ring provider: one place that loads PEM
//! material and checks handshake signatures.
//!
//! Layout: `pem` reads certificates, keys and trust roots from files; `server` builds the
//! listeners' configuration (exporter-toolkit's settings); `client` builds the configuration
//! Mesa uses towards database servers, with libpq's three levels of server verification.
//! Driver-specific glue (PostgreSQL's `sslmode`, its TLS negotiation) stays in the driver.

pub mod client;
pub mod pem;
pub mod server;

use std::path::PathBuf;
use std::sync::Arc;

use rustls::DigitallySignedStruct;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::CertificateDer;

pub use client::{ServerVerification, client_config};
pub use server::{ClientAuth, ServerTls, TlsVersion, server_config};

/// Why TLS settings could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file held no usable PEM item.
    #[error("{path}: {what}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What was missing or wrong.
        what: String,
    },
    /// rustls rejected the combination.
    #[error("invalid TLS settings: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client CA could not be used.
    #[error("invalid client CA: {0}")]
    ClientCa(String),
    /// The system trust store holds no usable certificate.
    #[error("no CA certificates found in the system trust store; set sslrootcert")]
    NoSystemRoots,
    /// A setting cannot be honoured.
    #[error("{0}")]
    Config(String),
}

/// The crypto provider every TLS configuration of Mesa uses.
pub fn provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// Checks handshake signatures with a provider's algorithms. Verifiers that accept a peer's
/// certificate without checking its chain (libpq's `require`, exporter-toolkit's
/// `RequestClientCert`) still use this, so the peer provably holds the certificate's key.
#[derive(Debug, Clone)]
pub struct HandshakeSignatures(pub Arc<CryptoProvider>);

impl HandshakeSignatures {
    /// A TLS 1.2 handshake signature.
    pub fn tls12(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    /// A TLS 1.3 handshake signature.
    pub fn tls13(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    /// The signature schemes offered.
    pub fn schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
