//! TLS towards database servers, with libpq's three levels of server verification:
//!
//! | level | chain checked | host name checked | libpq's `sslmode` |
//! |---|---|---|---|
//! | [`ServerVerification::None`] | no | no | `prefer`, `require` without a root |
//! | [`ServerVerification::Chain`] | yes | no | `verify-ca`, `require` with a root |
//! | [`ServerVerification::Full`] | yes | yes | `verify-full` |
//!
//! Without verification the handshake signature is still checked, so the session keys belong
//! to the presented certificate's key.

use std::path::Path;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, SignatureScheme};

use super::pem::{roots, system_roots};
use super::{HandshakeSignatures, TlsError};

/// How much of the server's certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerVerification {
    /// Encrypt only.
    None,
    /// The chain must lead to a trusted root; any host name.
    Chain,
    /// The chain and the host name.
    Full,
}

/// A client configuration with `verification`; roots from `rootcert`, else the system store.
pub fn client_config(
    verification: ServerVerification,
    rootcert: Option<&Path>,
) -> Result<ClientConfig, TlsError> {
    let provider = Arc::new(super::provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let webpki = || -> Result<Arc<WebPkiServerVerifier>, TlsError> {
        let roots = match rootcert {
            Some(path) => roots(path)?,
            None => system_roots()?,
        };
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| TlsError::Config(e.to_string()))
    };
    let verifier: Arc<dyn ServerCertVerifier> = match verification {
        ServerVerification::None => Arc::new(NoVerification(HandshakeSignatures(provider.clone()))),
        ServerVerification::Chain => Arc::new(ChainOnly(webpki()?)),
        ServerVerification::Full => webpki()?,
    };
    let mut config = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    // A gateway talks to one server: a few tickets are plenty. rustls' default table is sized
    // for a browser (256 servers, ~14 KiB each), which a 1000-target fleet pays 1000 times.
    config.resumption = rustls::client::Resumption::in_memory_sessions(4);
    Ok(config)
}

/// Encryption without authentication of the server, as libpq's `prefer` and `require`.
#[derive(Debug)]
struct NoVerification(HandshakeSignatures);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.tls12(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.schemes()
    }
}

/// The chain must lead to a trusted root; the host name is not checked.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            // webpki checks the chain before the name, so a name error means the chain held.
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}
