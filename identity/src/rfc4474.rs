//! RFC 4474 SIP Identity: the digest string, the authentication service
//! (signing) and the verification service.
//!
//! ```text
//! digest-string = addr-spec "|" addr-spec "|" callid "|" 1*DIGIT SP Method "|"
//!                 SIP-date "|" [ addr-spec ] "|" message-body
//! Identity      = "Identity" HCOLON signed-identity-digest
//! signed-identity-digest = LDQUOT 32LHEX RDQUOT   ; base64 in practice
//! Identity-Info = "Identity-Info" HCOLON ident-info *( SEMI ident-info-params )
//! ident-info    = LAQUOT absoluteURI RAQUOT
//! ident-info-alg = "alg" EQUAL token              ; rsa-sha1, rsa-sha256
//! ```
//!
//! (RFC 4474 section 9 and 10.) The addr-specs are those of From, To and
//! Contact (empty when the request has no Contact); the CSeq is rebuilt as
//! its number, one space and the method. The signature is RSASSA-PKCS1-v1_5
//! over the digest string. `rsa-sha256` is signed and verified; `rsa-sha1`
//! (the algorithm RFC 4474 itself defined) is only verified, and only when
//! [`Rfc4474Config::allow_sha1`] is set.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ring::rand::SystemRandom;
use ring::signature::{self, RsaKeyPair};
use rustls_pki_types::CertificateDer;

use crate::error::{CertProblem, Error, Result};
use crate::replay::ReplayCache;
use crate::sip::{addr_spec, split_params, uri_host};
use crate::sti::CertTrust;
use crate::verify::{RequestView, Standard, VerificationResult, Verified, check_fresh};

/// Default Date freshness window, seconds (RFC 4474 section 6, "one hour").
pub const DEFAULT_WINDOW: u64 = 3600;

/// The signing algorithm of `Identity-Info`'s `alg` parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// `rsa-sha256`.
    RsaSha256,
    /// `rsa-sha1` (verify only, off by default).
    RsaSha1,
}

impl Algorithm {
    /// The token (`rsa-sha256`, `rsa-sha1`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RsaSha256 => "rsa-sha256",
            Self::RsaSha1 => "rsa-sha1",
        }
    }
}

/// Builds the RFC 4474 digest string of a request.
pub fn digest_string(req: &RequestView<'_>) -> Result<Vec<u8>> {
    let from = addr_spec(req.from).ok_or(Error::Malformed { what: "From" })?;
    let to = addr_spec(req.to).ok_or(Error::Malformed { what: "To" })?;
    let call_id = req.call_id.trim();
    if call_id.is_empty() {
        return Err(Error::Malformed { what: "Call-ID" });
    }
    let mut cseq = req.cseq.split_ascii_whitespace();
    let (Some(number), Some(method), None) = (cseq.next(), cseq.next(), cseq.next()) else {
        return Err(Error::Malformed { what: "CSeq" });
    };
    if !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::Malformed { what: "CSeq" });
    }
    let date = req
        .date
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .ok_or(Error::Malformed { what: "Date" })?;
    let contact = match req.contact {
        Some(c) if c.trim() != "*" => addr_spec(c).ok_or(Error::Malformed { what: "Contact" })?,
        _ => "",
    };
    let head = format!("{from}|{to}|{call_id}|{number} {method}|{date}|{contact}|");
    let mut out = Vec::with_capacity(head.len() + req.body.len());
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(req.body);
    Ok(out)
}

/// The two header values an RFC 4474 authentication service adds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    /// `Identity` value: the quoted base64 signature.
    pub identity: String,
    /// `Identity-Info` value: `<url>;alg=rsa-sha256`.
    pub identity_info: String,
}

/// The RFC 4474 authentication service: an RSA key and the URL of its
/// certificate.
#[derive(Debug)]
pub struct Rfc4474Signer {
    key: RsaKeyPair,
    info_url: String,
    rng: SystemRandom,
}

impl Rfc4474Signer {
    /// A signer from a PEM RSA private key (PKCS#8 or PKCS#1).
    pub fn from_pem(pem: &str, info_url: impl Into<String>) -> Result<Self> {
        use rustls_pki_types::PrivateKeyDer;
        use rustls_pki_types::pem::PemObject as _;
        let key = PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|_| Error::BadKey {
            what: "no private key in PEM",
        })?;
        let key = match key {
            PrivateKeyDer::Pkcs8(der) => RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()),
            PrivateKeyDer::Pkcs1(der) => RsaKeyPair::from_der(der.secret_pkcs1_der()),
            _ => {
                return Err(Error::BadKey {
                    what: "not an RSA key",
                });
            }
        }
        .map_err(|_| Error::BadKey {
            what: "unusable RSA key",
        })?;
        Ok(Self {
            key,
            info_url: info_url.into(),
            rng: SystemRandom::new(),
        })
    }

    /// Signs `req` with rsa-sha256. The request must carry a Date header
    /// (the node adds one with [`crate::sip_date`] before signing, as
    /// RFC 4474 section 5 step 3 says).
    pub fn sign(&self, req: &RequestView<'_>) -> Result<SignedHeaders> {
        let digest = digest_string(req)?;
        let mut sig = vec![0; self.key.public().modulus_len()];
        self.key
            .sign(&signature::RSA_PKCS1_SHA256, &self.rng, &digest, &mut sig)
            .map_err(|_| Error::BadKey {
                what: "signing failed",
            })?;
        Ok(SignedHeaders {
            identity: format!("\"{}\"", B64.encode(sig)),
            identity_info: format!("<{}>;alg={}", self.info_url, Algorithm::RsaSha256.as_str()),
        })
    }
}

/// Settings of the RFC 4474 verification service.
#[derive(Debug, Clone)]
pub struct Rfc4474Config {
    /// Date freshness window in seconds, either way (default 3600).
    pub window: u64,
    /// Accept `rsa-sha1` signatures (default off).
    pub allow_sha1: bool,
    /// Require the signing certificate to identify the From domain
    /// (RFC 4474 section 6 step 2, with RFC 5922 names; default on).
    pub check_from_domain: bool,
    /// Capacity of the replay cache.
    pub replay_capacity: usize,
}

impl Default for Rfc4474Config {
    fn default() -> Self {
        Self {
            window: DEFAULT_WINDOW,
            allow_sha1: false,
            check_from_domain: true,
            replay_capacity: 100_000,
        }
    }
}

/// An RFC 4474 Identity that passed the cheap checks and waits for its
/// certificate.
#[derive(Debug, Clone)]
pub struct Pending4474 {
    signature: Vec<u8>,
    alg: Algorithm,
    url: String,
    date: u64,
}

impl Pending4474 {
    /// The `Identity-Info` URL to fetch.
    pub fn cert_url(&self) -> &str {
        &self.url
    }

    /// The algorithm named by `Identity-Info`.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }
}

/// The RFC 4474 verification service.
#[derive(Debug)]
pub struct Rfc4474Verifier {
    trust: CertTrust,
    config: Rfc4474Config,
    replay: ReplayCache,
}

impl Rfc4474Verifier {
    /// A verifier trusting the CAs in `trust`.
    pub fn new(trust: CertTrust, config: Rfc4474Config) -> Self {
        let replay = ReplayCache::new(config.replay_capacity);
        Self {
            trust,
            config,
            replay,
        }
    }

    /// Step 1: parses the `Identity` and `Identity-Info` values and checks
    /// the algorithm and the Date window at `now` (UNIX seconds).
    pub fn prepare(
        &self,
        identity: Option<&str>,
        identity_info: Option<&str>,
        req: &RequestView<'_>,
        now: u64,
    ) -> Result<Pending4474> {
        let identity = identity.ok_or(Error::MissingIdentity)?;
        let info = identity_info.ok_or(Error::MissingInfo)?;
        let (uri, params) = split_params(info);
        let url = uri
            .strip_prefix('<')
            .and_then(|u| u.strip_suffix('>'))
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .ok_or_else(|| Error::BadInfo {
                url: uri.to_owned(),
                reason: crate::InfoProblem::Syntax,
            })?;
        // RFC 4474 section 10: alg defaults to rsa-sha1.
        let alg = params
            .iter()
            .find(|(n, _)| n == "alg")
            .map_or("rsa-sha1", |(_, v)| *v);
        let alg = match alg.to_ascii_lowercase().as_str() {
            "rsa-sha256" => Algorithm::RsaSha256,
            "rsa-sha1" if self.config.allow_sha1 => Algorithm::RsaSha1,
            _ => {
                return Err(Error::UnsupportedAlgorithm {
                    alg: alg.to_owned(),
                });
            }
        };
        let quoted = identity.trim();
        let b64 = quoted
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .ok_or(Error::Malformed { what: "Identity" })?;
        let b64: String = b64.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        let signature = B64
            .decode(b64)
            .map_err(|_| Error::Malformed { what: "Identity" })?;
        let date = req.date_unix().ok_or(Error::Malformed { what: "Date" })?;
        check_fresh(date, now, self.config.window)?;
        Ok(Pending4474 {
            signature,
            alg,
            url: url.to_owned(),
            date,
        })
    }

    /// Step 2: verifies with the fetched chain (end-entity first) at `now`.
    pub fn verify(
        &self,
        pending: &Pending4474,
        chain: &[CertificateDer<'_>],
        req: &RequestView<'_>,
        now: u64,
    ) -> Result<Verified> {
        let cert = self.trust.verify(chain, now)?;
        if !cert.is_rsa {
            return Err(CertProblem::UnsupportedKey.into());
        }
        let from_spec = addr_spec(req.from).ok_or(Error::Malformed { what: "From" })?;
        if self.config.check_from_domain {
            let host = uri_host(from_spec).ok_or(Error::Malformed { what: "From" })?;
            let leaf = chain.first().ok_or(CertProblem::Malformed)?;
            let names = crate::rfc5922::domains(leaf)?;
            if !names.contains(&host) {
                return Err(CertProblem::NameMismatch.into());
            }
        }
        let alg: &dyn signature::VerificationAlgorithm = match pending.alg {
            Algorithm::RsaSha256 => &signature::RSA_PKCS1_2048_8192_SHA256,
            Algorithm::RsaSha1 => &signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
        };
        let digest = digest_string(req)?;
        signature::UnparsedPublicKey::new(alg, &cert.public_key)
            .verify(&digest, &pending.signature)
            .map_err(|_| Error::BadSignature)?;
        let expires = pending.date.saturating_add(self.config.window) + 1;
        if !self
            .replay
            .check_and_insert(&pending.signature, expires, now)
        {
            return Err(Error::Replay);
        }
        Ok(Verified {
            attestation: None,
            orig: crate::sip::Party::from_header(req.from)
                .unwrap_or_else(|| crate::sip::Party::Uri(from_spec.to_owned())),
            origid: None,
            signed_at: pending.date,
            signer: cert.subject,
            spc: Vec::new(),
        })
    }

    /// Both steps with a chain at hand (local repository, cache), as a
    /// [`VerificationResult`].
    pub fn verify_with<F>(
        &self,
        identity: Option<&str>,
        identity_info: Option<&str>,
        req: &RequestView<'_>,
        now: u64,
        fetch: F,
    ) -> VerificationResult
    where
        F: FnOnce(&str) -> Result<Vec<CertificateDer<'static>>>,
    {
        let outcome = self
            .prepare(identity, identity_info, req, now)
            .and_then(|pending| {
                let chain = fetch(pending.cert_url())?;
                self.verify(&pending, &chain, req, now)
            });
        VerificationResult {
            standard: Standard::Rfc4474,
            outcome,
        }
    }
}
