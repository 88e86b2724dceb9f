//! Mutual TLS between federation members (rustls, ring provider).
//!
//! Both directions use the same rules:
//!
//! * the peer's chain must lead to one of the federation's trust anchors
//!   (several CAs, intermediates sent by the peer), not be expired or not
//!   yet valid, and not be revoked by an operator-provided CRL;
//! * TLS 1.2 is the floor; the cipher suites can be narrowed by name;
//! * the peer is identified by its RFC 5922 SIP domains
//!   ([`crate::rfc5922::domains`]): inbound, the node binds the connection
//!   to the member whose registered domain matches
//!   ([`crate::rfc5922::match_member`]); outbound, the server certificate
//!   must identify the domain the node connects to (the `ServerName`), by
//!   the same rule rather than by the HTTPS hostname rule (so `sip:` URIs
//!   count and wildcards do not).

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName, UnixTime,
};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig,
    SignatureScheme,
};

use crate::error::{CertProblem, Error, Result};

/// The lowest TLS version accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MinVersion {
    /// TLS 1.2 and 1.3 (the default floor).
    #[default]
    Tls12,
    /// TLS 1.3 only.
    Tls13,
}

/// Everything needed to build the TLS configurations of a node.
#[derive(Debug)]
pub struct TlsSettings {
    /// This node's certificate chain, end-entity first.
    pub cert_chain: Vec<CertificateDer<'static>>,
    /// This node's private key.
    pub key: PrivateKeyDer<'static>,
    /// The federation's trust anchors (one or more CA certificates).
    pub trust_anchors: Vec<CertificateDer<'static>>,
    /// CRLs from the operator.
    pub crls: Vec<CertificateRevocationListDer<'static>>,
    /// Fail peers whose issuer has no CRL configured (default: only check
    /// where a CRL is given).
    pub require_crl: bool,
    /// Cipher suite names as IANA/rustls spells them (for example
    /// `TLS13_AES_256_GCM_SHA384`,
    /// `TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384`); empty means the
    /// provider's defaults.
    pub cipher_suites: Vec<String>,
    /// The TLS version floor.
    pub min_version: MinVersion,
}

impl TlsSettings {
    /// Settings from PEM files: the node's chain and key, trust anchor
    /// bundles and CRL files.
    pub fn from_pem_files(
        cert: &Path,
        key: &Path,
        trust_anchors: &[&Path],
        crls: &[&Path],
    ) -> Result<Self> {
        let mut anchors = Vec::new();
        for path in trust_anchors {
            anchors.extend(certs_from_pem(&read(path)?)?);
        }
        let mut crl_list = Vec::new();
        for path in crls {
            crl_list.extend(crls_from_pem(&read(path)?)?);
        }
        Ok(Self {
            cert_chain: certs_from_pem(&read(cert)?)?,
            key: key_from_pem(&read(key)?)?,
            trust_anchors: anchors,
            crls: crl_list,
            require_crl: false,
            cipher_suites: Vec::new(),
            min_version: MinVersion::Tls12,
        })
    }

    fn provider(&self) -> Result<Arc<CryptoProvider>> {
        let mut provider = rustls::crypto::ring::default_provider();
        if !self.cipher_suites.is_empty() {
            let mut chosen = Vec::new();
            for name in &self.cipher_suites {
                let suite = provider
                    .cipher_suites
                    .iter()
                    .find(|s| {
                        s.suite()
                            .as_str()
                            .is_some_and(|n| n.eq_ignore_ascii_case(name))
                    })
                    .ok_or_else(|| Error::UnknownCipherSuite { name: name.clone() })?;
                chosen.push(*suite);
            }
            provider.cipher_suites = chosen;
        }
        Ok(Arc::new(provider))
    }

    fn versions(&self) -> &'static [&'static rustls::SupportedProtocolVersion] {
        static BOTH: [&rustls::SupportedProtocolVersion; 2] =
            [&rustls::version::TLS13, &rustls::version::TLS12];
        static TLS13_ONLY: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
        match self.min_version {
            MinVersion::Tls12 => &BOTH,
            MinVersion::Tls13 => &TLS13_ONLY,
        }
    }

    /// The trust anchors as a rustls root store.
    pub fn roots(&self) -> Result<Arc<RootCertStore>> {
        let mut roots = RootCertStore::empty();
        for anchor in &self.trust_anchors {
            roots.add(anchor.clone())?;
        }
        Ok(Arc::new(roots))
    }

    /// The server configuration: presents this node's certificate and
    /// requires a client certificate from every peer.
    pub fn server_config(&self) -> Result<Arc<ServerConfig>> {
        let provider = self.provider()?;
        let mut verifier =
            WebPkiClientVerifier::builder_with_provider(self.roots()?, provider.clone())
                .with_crls(self.crls.iter().cloned());
        if !self.require_crl {
            verifier = verifier.allow_unknown_revocation_status();
        }
        let verifier = verifier.build()?;
        let config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(self.versions())?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.cert_chain.clone(), self.key.clone_key())?;
        Ok(Arc::new(config))
    }

    /// The client configuration: presents this node's certificate and
    /// verifies the terminating member by RFC 5922 (see [`SipServerVerifier`]).
    pub fn client_config(&self) -> Result<Arc<ClientConfig>> {
        let provider = self.provider()?;
        let verifier = SipServerVerifier::new(self, provider.clone())?;
        let config = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(self.versions())?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_client_auth_cert(self.cert_chain.clone(), self.key.clone_key())?;
        Ok(Arc::new(config))
    }
}

/// Verifies a server certificate chain with webpki (anchors, intermediates,
/// validity, CRLs) and then its name by RFC 5922 against the domain the
/// node connected to, instead of the HTTPS hostname rule.
#[derive(Debug)]
pub struct SipServerVerifier {
    inner: Arc<WebPkiServerVerifier>,
}

impl SipServerVerifier {
    /// A verifier over the trust anchors and CRLs of `settings`.
    pub fn new(settings: &TlsSettings, provider: Arc<CryptoProvider>) -> Result<Self> {
        let mut builder = WebPkiServerVerifier::builder_with_provider(settings.roots()?, provider)
            .with_crls(settings.crls.iter().cloned());
        if !settings.require_crl {
            builder = builder.allow_unknown_revocation_status();
        }
        Ok(Self {
            inner: builder.build()?,
        })
    }
}

impl ServerCertVerifier for SipServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // webpki checks the chain first and the hostname last: a name error
        // therefore means the chain itself is fine.
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Ok(_)
            | Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => {}
            Err(e) => return Err(e),
        }
        let ServerName::DnsName(expected) = server_name else {
            return Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName,
            ));
        };
        let expected = expected.as_ref().trim_end_matches('.').to_ascii_lowercase();
        let names = crate::rfc5922::domains(end_entity)
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        if names.contains(&expected) {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The RFC 5922 SIP domains of a TLS peer, from its certificate chain as
/// rustls reports it (`peer_certificates()`); empty without certificates.
pub fn peer_domains(chain: Option<&[CertificateDer<'_>]>) -> Result<BTreeSet<String>> {
    match chain.and_then(<[_]>::first) {
        Some(leaf) => crate::rfc5922::domains(leaf),
        None => Ok(BTreeSet::new()),
    }
}

/// What a TLS handshake error says about the peer's certificate, for logs
/// and metrics.
pub fn cert_problem(err: &rustls::Error) -> Option<CertProblem> {
    use CertificateError as C;
    let rustls::Error::InvalidCertificate(e) = err else {
        return None;
    };
    Some(match e {
        C::Expired | C::ExpiredContext { .. } => CertProblem::Expired,
        C::NotValidYet | C::NotValidYetContext { .. } => CertProblem::NotYetValid,
        C::Revoked => CertProblem::Revoked,
        C::NotValidForName | C::NotValidForNameContext { .. } => CertProblem::NameMismatch,
        C::BadEncoding => CertProblem::Malformed,
        C::UnsupportedSignatureAlgorithmContext { .. } => CertProblem::UnsupportedKey,
        _ => CertProblem::Untrusted,
    })
}

/// Certificates from a PEM bundle.
pub fn certs_from_pem(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>> {
    CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| CertProblem::Malformed.into())
}

/// The first private key of a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn key_from_pem(pem: &[u8]) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|_| Error::BadKey {
        what: "no private key in PEM",
    })
}

/// CRLs from PEM (`X509 CRL` blocks) or one DER CRL.
pub fn crls_from_pem(bytes: &[u8]) -> Result<Vec<CertificateRevocationListDer<'static>>> {
    if bytes.trim_ascii_start().starts_with(b"-----") {
        CertificateRevocationListDer::pem_slice_iter(bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| CertProblem::Malformed.into())
    } else {
        Ok(vec![CertificateRevocationListDer::from(bytes.to_vec())])
    }
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| Error::Io {
        path: path.display().to_string(),
        source,
    })
}
