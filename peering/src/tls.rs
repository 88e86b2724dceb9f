//! rustls configurations for the node's TLS listeners and outbound TLS,
//! built from the `[tls]` section (ring is the one crypto provider).

use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::config::TlsSection;

/// Errors while loading TLS material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("{path}: {reason}")]
    Pem {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client verifier could not be built (for example no CA).
    #[error("client certificate verifier: {0}")]
    Verifier(String),
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem_err = |reason: String| TlsError::Pem {
        path: path.display().to_string(),
        reason,
    };
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_err(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| pem_err(e.to_string()))?;
    if certs.is_empty() {
        return Err(pem_err("no certificate found".to_owned()));
    }
    Ok(certs)
}

fn load_roots(paths: &[impl AsRef<Path>]) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for path in paths {
        for cert in load_certs(path.as_ref())? {
            roots.add(cert).map_err(|e| TlsError::Pem {
                path: path.as_ref().display().to_string(),
                reason: e.to_string(),
            })?;
        }
    }
    Ok(roots)
}

/// The acceptor for TLS listeners: the node's certificate, TLS 1.2 and 1.3,
/// and (when `require_client_certificate`) mutual TLS against `ca`.
pub fn acceptor(section: &TlsSection) -> Result<TlsAcceptor, TlsError> {
    let certs = load_certs(&section.certificate)?;
    let key = PrivateKeyDer::from_pem_file(&section.private_key).map_err(|e| TlsError::Pem {
        path: section.private_key.display().to_string(),
        reason: e.to_string(),
    })?;
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let builder = if section.require_client_certificate {
        let roots = Arc::new(load_roots(&section.ca)?);
        let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider())
            .build()
            .map_err(|e| TlsError::Verifier(e.to_string()))?;
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let config = builder.with_single_cert(certs, key)?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The connector for outbound TLS: verifies servers against `ca` and
/// presents the node's certificate for mutual TLS.
pub fn connector(section: &TlsSection) -> Result<TlsConnector, TlsError> {
    let certs = load_certs(&section.certificate)?;
    let key = PrivateKeyDer::from_pem_file(&section.private_key).map_err(|e| TlsError::Pem {
        path: section.private_key.display().to_string(),
        reason: e.to_string(),
    })?;
    let roots = load_roots(&section.ca)?;
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let config = if section.verify_server {
        builder
            .with_root_certificates(roots)
            .with_client_auth_cert(certs, key)?
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider())))
            .with_client_auth_cert(certs, key)?
    };
    Ok(TlsConnector::from(Arc::new(config)))
}

/// Accepts any server certificate (`verify_server = false`, lab use only).
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
