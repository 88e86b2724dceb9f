//! RFC 8224 `Identity` header: parse and format, verification service and
//! authentication service for PASSporTs (RFC 8225) with SHAKEN (RFC 8588).
//!
//! ```text
//! Identity = "Identity" HCOLON signed-identity-digest SEMI
//!            ident-info *( SEMI ident-info-params )
//! signed-identity-digest = 1*(base64-char / ".")
//! ident-info        = "info" EQUAL ident-info-uri
//! ident-info-uri    = LAQUOT absoluteURI RAQUOT
//! ident-info-params = ident-info-alg / ident-type / ident-info-extension
//! ident-info-alg    = "alg" EQUAL token
//! ident-type        = "ppt" EQUAL token
//! ```
//!
//! Verification is sans-IO and takes two steps, because the certificate has
//! to be fetched in between (see [`crate::fetch`]):
//!
//! 1. [`StirVerifier::prepare`] parses the header, rejects stale or
//!    unsupported tokens cheaply and names the certificate URL;
//! 2. [`StirVerifier::verify`] checks the fetched chain, the signature, the
//!    claims against the request, the TN authorization list and replays.

use rustls_pki_types::CertificateDer;

use crate::error::{CertProblem, Error, Result};
use crate::keys::KeyTables;
use crate::passport::{Attestation, Claims, ES256, PPT_SHAKEN, Passport, Signer};
use crate::replay::ReplayCache;
use crate::sip::{Party, split_head};
use crate::sti::{CertTrust, ChainDigest, chain_digest};
use crate::verify::{RequestView, Standard, VerificationResult, Verified, check_fresh};

/// Default `iat` freshness window, seconds (RFC 8224 section 6.2.2).
pub const DEFAULT_MAX_AGE: u64 = 60;

/// A parsed `Identity` header value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityHeader {
    /// The PASSporT, full (`h.c.s`) or compact (`h..s`).
    pub token: String,
    /// The `info` URI (without angle brackets).
    pub info: Option<String>,
    /// The `alg` parameter.
    pub alg: Option<String>,
    /// The `ppt` parameter.
    pub ppt: Option<String>,
}

impl IdentityHeader {
    /// Parses an `Identity` header value in RFC 8224 form.
    pub fn parse(value: &str) -> Result<Self> {
        let parts = HeaderParts::parse(value)?;
        Ok(Self {
            token: parts.token.to_owned(),
            info: parts.info.map(str::to_owned),
            alg: parts.alg.map(str::to_owned),
            ppt: parts.ppt.map(str::to_owned),
        })
    }

    /// Whether the token is in compact form (empty claims).
    pub fn is_compact(&self) -> bool {
        self.token.contains("..")
    }

    /// The header value: `token;info=<url>;alg=ES256[;ppt=..]`.
    pub fn to_value(&self) -> String {
        let mut out = self.token.clone();
        if let Some(info) = &self.info {
            out.push_str(";info=<");
            out.push_str(info);
            out.push('>');
        }
        if let Some(alg) = &self.alg {
            out.push_str(";alg=");
            out.push_str(alg);
        }
        if let Some(ppt) = &self.ppt {
            out.push_str(";ppt=");
            out.push_str(ppt);
        }
        out
    }
}

/// [`IdentityHeader`] borrowing from the header value: what the verifier
/// reads per call, without copying.
#[derive(Debug, Clone, Copy)]
struct HeaderParts<'a> {
    token: &'a str,
    info: Option<&'a str>,
    alg: Option<&'a str>,
    ppt: Option<&'a str>,
}

impl<'a> HeaderParts<'a> {
    fn parse(value: &'a str) -> Result<Self> {
        let (token, params) = split_head(value.trim());
        // Branch-free passes over the ~400 bytes of the token.
        let mut bad_chars = 0u8;
        for &b in token.as_bytes() {
            let ok = b.is_ascii_alphanumeric() | (b == b'-') | (b == b'_') | (b == b'.');
            bad_chars |= u8::from(!ok);
        }
        let dots = token.bytes().filter(|&b| b == b'.').count();
        if token.is_empty() || bad_chars != 0 || dots != 2 {
            return Err(Error::Malformed { what: "PASSporT" });
        }
        let mut header = Self {
            token,
            info: None,
            alg: None,
            ppt: None,
        };
        for (name, val) in params {
            if name.eq_ignore_ascii_case("info") {
                let uri = val
                    .strip_prefix('<')
                    .and_then(|v| v.strip_suffix('>'))
                    .ok_or(Error::Malformed { what: "info" })?;
                header.info = Some(uri.trim());
            } else if name.eq_ignore_ascii_case("alg") {
                header.alg = Some(val);
            } else if name.eq_ignore_ascii_case("ppt") {
                header.ppt = Some(val);
            }
        }
        Ok(header)
    }

    fn is_compact(&self) -> bool {
        self.token.contains("..")
    }
}

/// Whether an `Identity` header value is RFC 8224 (a PASSporT) rather than
/// RFC 4474 (a quoted base64 signature).
pub fn is_passport(value: &str) -> bool {
    let value = value.trim_start();
    !value.starts_with('"') && value.split(';').next().is_some_and(|t| t.contains('.'))
}

/// Settings of the verification service.
#[derive(Debug, Clone)]
pub struct StirConfig {
    /// `iat` freshness window in seconds, either way (default 60).
    pub max_age: u64,
    /// Accept PASSporTs without `ppt=shaken` (base RFC 8225) too.
    pub allow_base_passport: bool,
    /// Require the To number to be among the `dest` claims.
    pub check_dest: bool,
    /// Capacity of the replay cache (entries).
    pub replay_capacity: usize,
}

impl Default for StirConfig {
    fn default() -> Self {
        Self {
            max_age: DEFAULT_MAX_AGE,
            allow_base_passport: true,
            check_dest: true,
            replay_capacity: 100_000,
        }
    }
}

/// A PASSporT that passed the cheap checks and waits for its certificate.
#[derive(Debug, Clone)]
pub struct Pending {
    passport: Passport,
}

impl Pending {
    /// The certificate URL to fetch (the `x5u`, equal to `info`).
    pub fn cert_url(&self) -> &str {
        &self.passport.header.x5u
    }

    /// The decoded PASSporT.
    pub fn passport(&self) -> &Passport {
        &self.passport
    }
}

/// The RFC 8224 verification service.
#[derive(Debug)]
pub struct StirVerifier {
    trust: CertTrust,
    config: StirConfig,
    replay: ReplayCache,
    keys: KeyTables,
}

impl StirVerifier {
    /// A verifier trusting the STI-CAs in `trust`.
    pub fn new(trust: CertTrust, config: StirConfig) -> Self {
        let replay = ReplayCache::new(config.replay_capacity);
        Self {
            trust,
            config,
            replay,
            keys: KeyTables::default(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &StirConfig {
        &self.config
    }

    /// How many signing keys have a table of multiples.
    #[cfg(test)]
    pub(crate) fn key_tables(&self) -> usize {
        self.keys.tables()
    }

    /// Step 1: parses `identity` (the header value), checks the parameters,
    /// the algorithm, the extension and the `iat` freshness at `now` (UNIX
    /// seconds), and returns the certificate URL to fetch.
    pub fn prepare(&self, identity: &str, req: &RequestView<'_>, now: u64) -> Result<Pending> {
        let header = HeaderParts::parse(identity)?;
        if let Some(alg) = header.alg
            && alg != ES256
        {
            return Err(Error::UnsupportedAlgorithm {
                alg: alg.to_owned(),
            });
        }
        let passport = if header.is_compact() {
            if header.ppt == Some(PPT_SHAKEN) {
                // attest and origid cannot be rebuilt from SIP headers.
                return Err(Error::Malformed {
                    what: "SHAKEN PASSporT in compact form",
                });
            }
            Passport::decode_compact(header.token, claims_from_request(req)?)?
        } else {
            Passport::decode(header.token)?
        };
        if passport.header.alg != ES256 {
            return Err(Error::UnsupportedAlgorithm {
                alg: passport.header.alg.clone(),
            });
        }
        if passport.header.typ != "passport" {
            return Err(Error::Malformed { what: "typ" });
        }
        match (passport.header.ppt.as_deref(), header.ppt) {
            (Some(a), Some(b)) if a != b => return Err(Error::ClaimMismatch { claim: "ppt" }),
            (Some(PPT_SHAKEN), _) => {
                if passport.claims.attest.is_none() || passport.claims.origid.is_none() {
                    return Err(Error::Malformed {
                        what: "SHAKEN claims",
                    });
                }
            }
            (None, None) if self.config.allow_base_passport => {}
            (Some(other), _) | (None, Some(other)) => {
                return Err(Error::UnsupportedPpt {
                    ppt: other.to_owned(),
                });
            }
            (None, None) => {
                return Err(Error::UnsupportedPpt { ppt: String::new() });
            }
        }
        if let Some(info) = header.info
            && info != passport.header.x5u
        {
            return Err(Error::ClaimMismatch { claim: "x5u" });
        }
        check_fresh(passport.claims.iat, now, self.config.max_age)?;
        Ok(Pending { passport })
    }

    /// Step 2: verifies `pending` with the certificate chain fetched from
    /// its URL (end-entity first), at `now` (UNIX seconds).
    pub fn verify(
        &self,
        pending: &Pending,
        chain: &[CertificateDer<'_>],
        req: &RequestView<'_>,
        now: u64,
    ) -> Result<Verified> {
        self.verify_fetched(pending, chain, &chain_digest(chain), req, now)
    }

    /// [`StirVerifier::verify`] with the chain's digest computed when it was
    /// fetched (see [`crate::fetch::CertFetcher`]), so that a chain verified
    /// before is found without hashing it again.
    pub(crate) fn verify_fetched(
        &self,
        pending: &Pending,
        chain: &[CertificateDer<'_>],
        digest: &ChainDigest,
        req: &RequestView<'_>,
        now: u64,
    ) -> Result<Verified> {
        let passport = &pending.passport;
        let cert = self.trust.verify_shared(chain, digest, now)?;
        if !cert.is_p256 {
            return Err(CertProblem::UnsupportedKey.into());
        }
        match self.keys.get(&cert.public_key, now) {
            Some(key) => passport.verify_signature_with(&key)?,
            None => passport.verify_signature(&cert.public_key)?,
        }
        let claims = &passport.claims;
        let from = Party::from_header(req.from).ok_or(Error::Malformed { what: "From" })?;
        if claims.orig != from {
            return Err(Error::ClaimMismatch { claim: "orig" });
        }
        if self.config.check_dest {
            let to = Party::from_header(req.to).ok_or(Error::Malformed { what: "To" })?;
            if !claims.dest.contains(&to) {
                return Err(Error::ClaimMismatch { claim: "dest" });
            }
        }
        if let Some(tn) = claims.orig.tn()
            && !cert.authorizes_tn(tn)
        {
            return Err(CertProblem::TnNotAuthorized.into());
        }
        let expires = claims.iat.saturating_add(self.config.max_age) + 1;
        // The signature verified, so it is the 64-byte r || s; r alone keys
        // the replay cache (see ReplayCache).
        let fresh = match passport.signature().first_chunk::<32>() {
            Some(r) => self.replay.check_and_insert_key(*r, expires, now),
            None => self
                .replay
                .check_and_insert(passport.signature(), expires, now),
        };
        if !fresh {
            return Err(Error::Replay);
        }
        Ok(Verified {
            attestation: claims.attest,
            orig: claims.orig.clone(),
            origid: claims.origid.clone(),
            signed_at: claims.iat,
            spc: cert.spcs().into_iter().map(str::to_owned).collect(),
            signer: cert.subject.clone(),
        })
    }

    /// Both steps with a chain already at hand (from a local repository or a
    /// cache), wrapped as a [`VerificationResult`]. `fetch` maps the URL to
    /// the chain.
    pub fn verify_with<F>(
        &self,
        identity: &str,
        req: &RequestView<'_>,
        now: u64,
        fetch: F,
    ) -> VerificationResult
    where
        F: FnOnce(&str) -> Result<Vec<CertificateDer<'static>>>,
    {
        let outcome = self.prepare(identity, req, now).and_then(|pending| {
            let chain = fetch(pending.cert_url())?;
            self.verify(&pending, &chain, req, now)
        });
        VerificationResult {
            standard: Standard::Rfc8224,
            outcome,
        }
    }
}

/// The base claims the compact form stands for (RFC 8224 section 5.2):
/// `orig` from From, `dest` from To, `iat` from Date.
pub fn claims_from_request(req: &RequestView<'_>) -> Result<Claims> {
    let orig = Party::from_header(req.from).ok_or(Error::Malformed { what: "From" })?;
    let dest = Party::from_header(req.to).ok_or(Error::Malformed { what: "To" })?;
    let iat = req.date_unix().ok_or(Error::Malformed { what: "Date" })?;
    Ok(Claims {
        orig,
        dest: vec![dest],
        iat,
        attest: None,
        origid: None,
    })
}

/// The RFC 8224 authentication service: signs requests with one key.
#[derive(Debug)]
pub struct StirSigner {
    signer: Signer,
}

impl StirSigner {
    /// Wraps a [`Signer`] whose `x5u` is the certificate URL.
    pub fn new(signer: Signer) -> Self {
        Self { signer }
    }

    /// The underlying signer.
    pub fn signer(&self) -> &Signer {
        &self.signer
    }

    /// A full-form SHAKEN Identity header value for `req`, issued at `now`
    /// (UNIX seconds): `jws;info=<x5u>;alg=ES256;ppt=shaken`.
    pub fn sign_shaken(
        &self,
        req: &RequestView<'_>,
        attest: Attestation,
        origid: &str,
        now: u64,
    ) -> Result<String> {
        let orig = Party::from_header(req.from).ok_or(Error::Malformed { what: "From" })?;
        let dest = Party::from_header(req.to).ok_or(Error::Malformed { what: "To" })?;
        let claims = Claims::shaken(orig, dest, now, attest, origid);
        self.header_for(&claims, false)
    }

    /// A base (no `ppt`) Identity header value in compact form; `req` must
    /// carry a Date header, whose value becomes `iat`.
    pub fn sign_compact(&self, req: &RequestView<'_>) -> Result<String> {
        let claims = claims_from_request(req)?;
        self.header_for(&claims, true)
    }

    /// The Identity header value for arbitrary claims, full or compact.
    pub fn header_for(&self, claims: &Claims, compact: bool) -> Result<String> {
        let jws = self.signer.sign(claims)?;
        let token = if compact {
            let mut parts = jws.split('.');
            match (parts.next(), parts.next(), parts.next()) {
                (Some(h), Some(_), Some(s)) => format!("{h}..{s}"),
                _ => return Err(Error::Malformed { what: "JWS" }),
            }
        } else {
            jws
        };
        Ok(IdentityHeader {
            token,
            info: Some(self.signer.x5u().to_owned()),
            alg: Some(ES256.to_owned()),
            ppt: claims.attest.map(|_| PPT_SHAKEN.to_owned()),
        }
        .to_value())
    }
}
