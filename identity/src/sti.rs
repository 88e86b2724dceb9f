//! STI certificates (RFC 8226): the `x5u` chain checked against the
//! federation's STI trust anchors, and the TN authorization list.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;

use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, TrustAnchor, UnixTime};
use webpki::{CertRevocationList, EndEntityCert, KeyPurposeIdIter, OwnedCertRevocationList};
use x509_parser::prelude::{FromDer as _, X509Certificate};

use crate::der::{TnEntry, parse_tn_auth_list};
use crate::error::{CertProblem, Error, Result};

/// id-pe-TNAuthList (RFC 8226 section 9).
pub const OID_TN_AUTH_LIST: &str = "1.3.6.1.5.5.7.1.26";
const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";

/// Trust anchors (and CRLs) for signing certificates: the STI-CAs for
/// RFC 8224, or the CAs trusted for RFC 4474 `Identity-Info`.
///
/// Chains that verified are remembered (keyed by a SHA-256 over the chain,
/// [`chain_digest`]) for [`VERIFIED_TTL`] seconds, never past the
/// end-entity's `notAfter`, so that the same signer's calls skip path
/// building. Changing anchors or CRLs starts a fresh memory (clones made
/// before keep theirs, which matches their anchors and CRLs).
#[derive(Debug, Default, Clone)]
pub struct CertTrust {
    anchors: Vec<TrustAnchor<'static>>,
    crls: Vec<OwnedCertRevocationList>,
    verified: Arc<Mutex<VerifiedChains>>,
}

/// Verified chains by chain hash: what they yielded and until when.
type VerifiedChains = HashMap<ChainDigest, (Arc<SigningCert>, u64)>;

/// The key of a verified chain: SHA-256 over each certificate's length and DER.
pub type ChainDigest = [u8; 32];

/// The [`ChainDigest`] of `chain`. The fetcher computes it once per fetched
/// chain, so that a cached chain is recognised without hashing it per call.
pub fn chain_digest(chain: &[CertificateDer<'_>]) -> ChainDigest {
    let mut hasher = ring::digest::Context::new(&ring::digest::SHA256);
    for cert in chain {
        hasher.update(&(cert.len() as u64).to_be_bytes());
        hasher.update(cert);
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(hasher.finish().as_ref());
    key
}

/// How long a verified chain is reused without checking it again, seconds.
pub const VERIFIED_TTL: u64 = 300;
/// How many verified chains are remembered.
const VERIFIED_CAPACITY: usize = 1024;

/// What a verified signing certificate tells the verifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningCert {
    /// The subjectPublicKey bits (an uncompressed EC point, or an RSAPublicKey).
    pub public_key: Vec<u8>,
    /// Whether the key is an EC P-256 key.
    pub is_p256: bool,
    /// Whether the key is an RSA key.
    pub is_rsa: bool,
    /// The RFC 8226 TN authorization list, if the certificate has one.
    pub tn_auth: Option<Vec<TnEntry>>,
    /// The subject distinguished name, for logs.
    pub subject: String,
    /// The end of the validity period, UNIX seconds.
    pub not_after: i64,
}

impl SigningCert {
    /// The service provider codes of the TN authorization list.
    pub fn spcs(&self) -> Vec<&str> {
        self.tn_auth
            .iter()
            .flatten()
            .filter_map(|e| match e {
                TnEntry::Spc(s) => Some(s.as_str()),
                _ => None,
            })
            .collect()
    }

    /// Whether the certificate may sign for `tn` (normalised): true without a
    /// TN authorization list, or with one that has only SPC entries (the
    /// SPC is reported for policy, it cannot be checked from the call);
    /// otherwise a number or range entry must cover `tn`.
    pub fn authorizes_tn(&self, tn: &str) -> bool {
        let Some(list) = &self.tn_auth else {
            return true;
        };
        let mut numbered = list
            .iter()
            .filter(|e| !matches!(e, TnEntry::Spc(_)))
            .peekable();
        numbered.peek().is_none() || numbered.any(|e| e.covers(tn))
    }
}

impl CertTrust {
    /// An empty trust store (verifies nothing).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds every certificate of a PEM bundle as a trust anchor; returns how many.
    pub fn add_pem(&mut self, pem: &[u8]) -> Result<usize> {
        let mut n = 0;
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|_| Error::from(CertProblem::Malformed))?;
            self.add_der(&cert)?;
            n += 1;
        }
        Ok(n)
    }

    /// Adds one DER certificate as a trust anchor.
    pub fn add_der(&mut self, der: &CertificateDer<'_>) -> Result<()> {
        let anchor = webpki::anchor_from_trusted_cert(der)
            .map_err(|_| Error::from(CertProblem::Malformed))?
            .to_owned();
        self.anchors.push(anchor);
        self.forget_verified();
        Ok(())
    }

    /// Adds CRLs from PEM (`X509 CRL` blocks) or a single DER CRL.
    pub fn add_crls(&mut self, bytes: &[u8]) -> Result<usize> {
        let ders: Vec<CertificateRevocationListDer<'static>> = if bytes.starts_with(b"-----") {
            CertificateRevocationListDer::pem_slice_iter(bytes)
                .collect::<Result<_, _>>()
                .map_err(|_| Error::from(CertProblem::Malformed))?
        } else {
            vec![CertificateRevocationListDer::from(bytes.to_vec())]
        };
        for der in &ders {
            let crl = OwnedCertRevocationList::from_der(der.as_ref())
                .map_err(|_| Error::from(CertProblem::Malformed))?;
            self.crls.push(crl);
        }
        self.forget_verified();
        Ok(ders.len())
    }

    /// Loads every `*.pem`, `*.crt` and `*.cer` file of a folder as trust
    /// anchors and every `*.crl` file as CRLs. Returns the anchor count.
    pub fn load_dir(&mut self, dir: &Path) -> Result<usize> {
        let io = |source| Error::Io {
            path: dir.display().to_string(),
            source,
        };
        let mut paths: Vec<_> = std::fs::read_dir(dir)
            .map_err(io)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        paths.sort();
        let mut n = 0;
        for path in paths {
            let ext = path
                .extension()
                .and_then(|e| e.to_str())
                .unwrap_or_default()
                .to_ascii_lowercase();
            let read = || {
                std::fs::read(&path).map_err(|source| Error::Io {
                    path: path.display().to_string(),
                    source,
                })
            };
            match ext.as_str() {
                "pem" | "crt" | "cer" => {
                    let bytes = read()?;
                    if bytes.starts_with(b"-----") {
                        n += self.add_pem(&bytes)?;
                    } else {
                        self.add_der(&CertificateDer::from(bytes))?;
                        n += 1;
                    }
                }
                "crl" => {
                    self.add_crls(&read()?)?;
                }
                _ => {}
            }
        }
        Ok(n)
    }

    /// How many trust anchors are configured.
    pub fn len(&self) -> usize {
        self.anchors.len()
    }

    /// Whether no trust anchor is configured.
    pub fn is_empty(&self) -> bool {
        self.anchors.is_empty()
    }

    /// Drops the verified chains of this store (not of clones made before a
    /// change: their anchors and CRLs did not change).
    fn forget_verified(&mut self) {
        self.verified = Arc::default();
    }

    /// Verifies `chain` (end-entity first, then intermediates) at `now`
    /// (seconds since the UNIX epoch) and returns what the verifier needs.
    pub fn verify(&self, chain: &[CertificateDer<'_>], now: u64) -> Result<SigningCert> {
        self.verify_shared(chain, &chain_digest(chain), now)
            .map(|cert| (*cert).clone())
    }

    /// [`CertTrust::verify`] with the chain's digest already at hand (it must
    /// be [`chain_digest`] of `chain`), returning the remembered result
    /// itself: a chain verified less than [`VERIFIED_TTL`] ago costs a map
    /// lookup.
    pub(crate) fn verify_shared(
        &self,
        chain: &[CertificateDer<'_>],
        digest: &ChainDigest,
        now: u64,
    ) -> Result<Arc<SigningCert>> {
        if let Some((cert, until)) = self.verified.lock().get(digest)
            && now < *until
        {
            return Ok(cert.clone());
        }
        let cert = Arc::new(self.verify_uncached(chain, now)?);
        let until = now
            .saturating_add(VERIFIED_TTL)
            .min(u64::try_from(cert.not_after).unwrap_or(0).saturating_add(1));
        let mut verified = self.verified.lock();
        if verified.len() >= VERIFIED_CAPACITY {
            verified.retain(|_, (_, u)| *u > now);
            if verified.len() >= VERIFIED_CAPACITY {
                verified.clear();
            }
        }
        verified.insert(*digest, (cert.clone(), until));
        Ok(cert)
    }

    fn verify_uncached(&self, chain: &[CertificateDer<'_>], now: u64) -> Result<SigningCert> {
        let (leaf, intermediates) = chain
            .split_first()
            .ok_or_else(|| Error::from(CertProblem::Malformed))?;
        let ee = EndEntityCert::try_from(leaf).map_err(|_| Error::from(CertProblem::Malformed))?;
        let crl_refs: Vec<CertRevocationList<'_>> = self
            .crls
            .iter()
            .map(|c| CertRevocationList::from(c.clone()))
            .collect();
        let crl_refs: Vec<&CertRevocationList<'_>> = crl_refs.iter().collect();
        let revocation = webpki::RevocationOptionsBuilder::new(&crl_refs)
            .ok()
            .map(|b| {
                b.with_depth(webpki::RevocationCheckDepth::Chain)
                    .with_status_policy(webpki::UnknownStatusPolicy::Allow)
                    .build()
            });
        ee.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &self.anchors,
            intermediates,
            UnixTime::since_unix_epoch(std::time::Duration::from_secs(now)),
            AnyUsage,
            revocation,
            None,
        )
        .map_err(|e| Error::from(cert_problem(&e)))?;
        describe(leaf)
    }
}

/// Reads the parts of a certificate this crate needs, without checking it.
pub fn describe(der: &CertificateDer<'_>) -> Result<SigningCert> {
    let (_, cert) =
        X509Certificate::from_der(der.as_ref()).map_err(|_| Error::from(CertProblem::Malformed))?;
    let spki = cert.public_key();
    let alg = spki.algorithm.algorithm.to_id_string();
    let is_p256 = alg == OID_EC_PUBLIC_KEY
        && spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok())
            .is_some_and(|oid| oid.to_id_string() == OID_P256);
    let is_rsa = alg == "1.2.840.113549.1.1.1";
    let mut tn_auth = None;
    for ext in cert.extensions() {
        if ext.oid.to_id_string() == OID_TN_AUTH_LIST {
            tn_auth = Some(parse_tn_auth_list(ext.value).ok_or(CertProblem::Malformed)?);
        }
    }
    Ok(SigningCert {
        public_key: spki.subject_public_key.data.to_vec(),
        is_p256,
        is_rsa,
        tn_auth,
        subject: cert.subject().to_string(),
        not_after: cert.validity().not_after.timestamp(),
    })
}

/// Parses a certificate body as fetched: a PEM bundle (end-entity first) or
/// a single DER certificate.
pub fn parse_chain(bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>> {
    let trimmed = bytes.trim_ascii_start();
    if trimmed.starts_with(b"-----") {
        let certs: Vec<_> = CertificateDer::pem_slice_iter(trimmed)
            .collect::<Result<_, _>>()
            .map_err(|_| Error::from(CertProblem::Malformed))?;
        if certs.is_empty() {
            return Err(CertProblem::Malformed.into());
        }
        Ok(certs)
    } else if trimmed.first() == Some(&0x30) {
        Ok(vec![CertificateDer::from(trimmed.to_vec())])
    } else {
        Err(CertProblem::Malformed.into())
    }
}

/// Maps a webpki error to what went wrong with the certificate.
pub(crate) fn cert_problem(e: &webpki::Error) -> CertProblem {
    use webpki::Error as E;
    match e {
        E::CertExpired { .. } => CertProblem::Expired,
        E::CertNotValidYet { .. } => CertProblem::NotYetValid,
        E::CertRevoked => CertProblem::Revoked,
        E::BadDer | E::BadDerTime | E::TrailingData(_) => CertProblem::Malformed,
        E::UnsupportedSignatureAlgorithmContext(_)
        | E::UnsupportedSignatureAlgorithmForPublicKeyContext(_) => CertProblem::UnsupportedKey,
        _ => CertProblem::Untrusted,
    }
}

/// STI certificates carry no extended key usage that webpki knows; accept any.
struct AnyUsage;

impl webpki::ExtendedKeyUsageValidator for AnyUsage {
    fn validate(&self, _iter: KeyPurposeIdIter<'_, '_>) -> Result<(), webpki::Error> {
        Ok(())
    }
}
