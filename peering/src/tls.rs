//! rustls configurations for the node's TLS listeners and outbound TLS,
//! built from the `[tls]` section with `peering-identity`'s
//! [`TlsSettings`] (ring is the one crypto provider):
//!
//! * several CA files as trust anchors, intermediates sent by the peer;
//! * CRLs from the operator (`crl`), optionally required (`require_crl`);
//! * TLS 1.2 as the floor (`min_version = "1.3"` raises it) and a cipher
//!   policy by suite name (`cipher_suites`);
//! * inbound: a client certificate is demanded (mutual TLS) and the
//!   [`crate::identity`] screen binds the connection to a member by its
//!   RFC 5922 domains;
//! * outbound: the server certificate must identify the domain the node
//!   connects to by RFC 5922 (`sip:` URI or DNS SAN, no wildcards); a
//!   target given as an IP address is checked against the certificate's IP
//!   addresses instead.

use std::sync::Arc;

use peering_identity::tls::{MinVersion, SipServerVerifier, TlsSettings};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::config::TlsSection;

/// Errors while loading TLS material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read, holds nothing usable, or names an unknown
    /// cipher suite.
    #[error(transparent)]
    Material(#[from] peering_identity::Error),
    /// The node's certificate file holds no certificate.
    #[error("{path}: no certificate found")]
    NoCertificate {
        /// The file.
        path: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// The server verifier could not be built (for example no CA).
    #[error("server certificate verifier: {0}")]
    Verifier(#[from] rustls::client::VerifierBuilderError),
}

/// The [`TlsSettings`] a `[tls]` section describes.
pub fn settings(section: &TlsSection) -> Result<TlsSettings, TlsError> {
    let ca: Vec<&std::path::Path> = section.ca.iter().map(AsRef::as_ref).collect();
    let crl: Vec<&std::path::Path> = section.crl.iter().map(AsRef::as_ref).collect();
    let mut settings =
        TlsSettings::from_pem_files(&section.certificate, &section.private_key, &ca, &crl)?;
    if settings.cert_chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: section.certificate.display().to_string(),
        });
    }
    settings.require_crl = section.require_crl;
    settings.cipher_suites.clone_from(&section.cipher_suites);
    settings.min_version = if section.min_version == "1.3" {
        MinVersion::Tls13
    } else {
        MinVersion::Tls12
    };
    Ok(settings)
}

/// The ring provider narrowed to the configured cipher suites.
fn provider(settings: &TlsSettings) -> Result<Arc<CryptoProvider>, TlsError> {
    let mut provider = rustls::crypto::ring::default_provider();
    if !settings.cipher_suites.is_empty() {
        let mut chosen = Vec::new();
        for name in &settings.cipher_suites {
            let suite = provider
                .cipher_suites
                .iter()
                .find(|s| {
                    s.suite()
                        .as_str()
                        .is_some_and(|n| n.eq_ignore_ascii_case(name))
                })
                .ok_or_else(|| peering_identity::Error::UnknownCipherSuite {
                    name: name.clone(),
                })?;
            chosen.push(*suite);
        }
        provider.cipher_suites = chosen;
    }
    Ok(Arc::new(provider))
}

fn versions(settings: &TlsSettings) -> &'static [&'static rustls::SupportedProtocolVersion] {
    static BOTH: [&rustls::SupportedProtocolVersion; 2] =
        [&rustls::version::TLS13, &rustls::version::TLS12];
    static TLS13_ONLY: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
    match settings.min_version {
        MinVersion::Tls12 => &BOTH,
        MinVersion::Tls13 => &TLS13_ONLY,
    }
}

/// The acceptor for TLS listeners: the node's certificate and (when
/// `require_client_certificate`, the default) mutual TLS against `ca` with
/// the CRLs, version floor and cipher policy of the section.
pub fn acceptor(section: &TlsSection) -> Result<TlsAcceptor, TlsError> {
    let settings = settings(section)?;
    let config = if section.require_client_certificate {
        settings.server_config()?
    } else {
        Arc::new(
            rustls::ServerConfig::builder_with_provider(provider(&settings)?)
                .with_protocol_versions(versions(&settings))?
                .with_no_client_auth()
                .with_single_cert(settings.cert_chain.clone(), settings.key.clone_key())?,
        )
    };
    Ok(TlsAcceptor::from(config))
}

/// The connector for outbound TLS: presents the node's certificate and
/// verifies the terminating side by RFC 5922 (see the module docs).
pub fn connector(section: &TlsSection) -> Result<TlsConnector, TlsError> {
    let settings = settings(section)?;
    let provider = provider(&settings)?;
    let verifier: Arc<dyn ServerCertVerifier> = if section.verify_server {
        Arc::new(FederationVerifier::new(&settings, provider.clone())?)
    } else {
        Arc::new(NoVerify(provider.clone()))
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions(&settings))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(settings.cert_chain.clone(), settings.key.clone_key())?;
    Ok(TlsConnector::from(Arc::new(config)))
}

/// RFC 5922 for domain names ([`SipServerVerifier`]), webpki's IP address
/// check for targets given as addresses.
#[derive(Debug)]
struct FederationVerifier {
    sip: SipServerVerifier,
    ip: Arc<WebPkiServerVerifier>,
}

impl FederationVerifier {
    fn new(settings: &TlsSettings, provider: Arc<CryptoProvider>) -> Result<Self, TlsError> {
        let mut ip =
            WebPkiServerVerifier::builder_with_provider(settings.roots()?, provider.clone())
                .with_crls(settings.crls.iter().cloned());
        if !settings.require_crl {
            ip = ip.allow_unknown_revocation_status();
        }
        Ok(Self {
            sip: SipServerVerifier::new(settings, provider)?,
            ip: ip.build()?,
        })
    }
}

impl ServerCertVerifier for FederationVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verifier: &dyn ServerCertVerifier = match server_name {
            ServerName::IpAddress(_) => self.ip.as_ref(),
            _ => &self.sip,
        };
        verifier.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.ip.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.ip.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.ip.supported_verify_schemes()
    }
}

/// Accepts any server certificate (`verify_server = false`, lab use only).
#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerify {
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
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
