//! Peer authentication and caller identity at the routing seam: the
//! [`IdentityScreen`] runs in front of the destinations and
//!
//! 1. binds the request to a federation member: a TLS peer by the RFC 5922
//!    domains of its (already verified) certificate, any other peer by its
//!    registered source networks; an unknown peer gets 403 with a Warning
//!    before any routing work;
//! 2. keeps `P-Asserted-Identity` only from peers inside the trust domain
//!    (RFC 3325 section 5) and removes it otherwise;
//! 3. for initial INVITEs, verifies the `Identity` header (RFC 8224
//!    STIR/SHAKEN, and RFC 4474 when enabled) with certificates from a local
//!    repository folder or an HTTPS allowlist, answers failures with the
//!    RFC 8224 section 6.2.2 codes (428, 436, 437, 438, 403), or signs the
//!    request as the authentication service for the sources that ask for it.
//!
//! ```text
//! RouteRequest ─► member (TLS domains / CIDR) ─► PAI trust ─► Identity
//!                  │ 403 + Warning                 │ remove     │ verify / sign
//!                  ▼                               ▼            ▼
//!               Rejection                 CallInfo.remove_headers  CallInfo.identity,
//!                                                          add_headers or 428/436/437/438/403
//! ```
//!
//! The member table here (`[identity] tls_members` and `[[identity.member]]`)
//! is a bootstrap until the federation registry (`peering-policy` /
//! `peering-store`) plugs in at the same seam.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use ipnet::IpNet;
use peering_identity::fetch::{CertFetcher, FetchConfig, verify_rfc4474, verify_stir};
use peering_identity::passport::{Attestation, Signer, new_origid};
use peering_identity::rfc4474::{Rfc4474Config, Rfc4474Signer, Rfc4474Verifier};
use peering_identity::rfc8224::{StirConfig, StirSigner, StirVerifier};
use peering_identity::sti::CertTrust;
use peering_identity::{RequestView, Standard, VerificationResult, classify, sip_date};
use peering_proto::msg::{HeaderName, Message, Method};
use peering_proto::proxy::{Rejection, RouteKind, Transport};
use serde::Deserialize;
use tracing::{debug, info};

use crate::router::{BoxFuture, CallInfo, IdentityVerdict, RouteRequest, Screen};

/// `[identity]`: peer authentication, P-Asserted-Identity trust and caller
/// identity (RFC 8224 STIR/SHAKEN, RFC 4474). See `docs/identity.md`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentitySection {
    /// Require a valid Identity on every initial INVITE (428 when missing).
    #[serde(default)]
    pub require: bool,
    /// Reject an INVITE whose Identity is present but does not verify, with
    /// the RFC 8224 code, even when `require` is off (default on). Off: the
    /// call is forwarded and the failure recorded.
    #[serde(default = "default_true")]
    pub reject_invalid: bool,
    /// Folder of STI-CA certificates (`*.pem`, `*.crt`, `*.cer`) trusted
    /// for signing certificates, and CRLs (`*.crl`).
    #[serde(default)]
    pub sti_ca: Option<PathBuf>,
    /// Folder of signing certificates, found by the last path segment of the
    /// `x5u` / `Identity-Info` URL (any host).
    #[serde(default)]
    pub repository: Option<PathBuf>,
    /// Hosts (`host` or `host:port`) whose certificate URLs may be fetched
    /// over HTTPS; empty: no network fetches.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// PEM files of the CAs of the HTTPS servers in `allowed_hosts`.
    #[serde(default)]
    pub https_ca: Vec<PathBuf>,
    /// Seconds a fetched certificate is reused.
    #[serde(default = "default_cache_ttl")]
    pub cert_cache_secs: u64,
    /// Seconds one certificate fetch may take.
    #[serde(default = "default_fetch_timeout")]
    pub fetch_timeout_secs: u64,
    /// `iat` freshness window of PASSporTs, seconds either way.
    #[serde(default = "default_iat_window")]
    pub iat_window_secs: u64,
    /// SHAKEN attestation levels accepted (`"A"`, `"B"`, `"C"`); a valid
    /// PASSporT with another level is refused with 403.
    #[serde(default = "default_attestations")]
    pub attestation: Vec<String>,
    /// Accept base PASSporTs (RFC 8225, no `ppt=shaken`) too.
    #[serde(default = "default_true")]
    pub allow_base_passport: bool,
    /// Require the called number (To) among the PASSporT's `dest` claims.
    #[serde(default = "default_true")]
    pub check_dest: bool,
    /// Verify RFC 4474 Identity headers (quoted signature with
    /// `Identity-Info`); off: such headers are answered 437.
    #[serde(default)]
    pub rfc4474: bool,
    /// RFC 4474 Date freshness window, seconds either way.
    #[serde(default = "default_rfc4474_window")]
    pub rfc4474_window_secs: u64,
    /// Accept RFC 4474 `rsa-sha1` signatures (verify only).
    #[serde(default)]
    pub rsa_sha1: bool,
    /// Authentication service: PEM private key (EC P-256 for `rfc8224`, RSA
    /// for `rfc4474`).
    #[serde(default)]
    pub sign_key: Option<PathBuf>,
    /// URL of the signing certificate (`x5u` / `Identity-Info`).
    #[serde(default)]
    pub sign_x5u: Option<String>,
    /// Which standard the node signs with: `rfc8224` (SHAKEN) or `rfc4474`.
    #[serde(default = "default_sign_standard")]
    pub sign_standard: String,
    /// SHAKEN attestation the node vouches for when it signs.
    #[serde(default = "default_sign_attestation")]
    pub sign_attestation: String,
    /// Source networks whose INVITEs without Identity the node signs.
    #[serde(default)]
    pub sign_sources: Vec<IpNet>,
    /// Members (by name) whose INVITEs without Identity the node signs.
    #[serde(default)]
    pub sign_members: Vec<String>,
    /// Source networks inside the trust domain (RFC 3325): their
    /// P-Asserted-Identity is kept.
    #[serde(default)]
    pub trusted_pai_sources: Vec<IpNet>,
    /// TLS-authenticated domains (RFC 5922 names of the peer certificate)
    /// inside the trust domain.
    #[serde(default)]
    pub trusted_pai_domains: Vec<String>,
    /// TLS peers: certificate domain -> member name. When any TLS domain is
    /// configured (here or in `member`), a TLS peer naming no member is
    /// refused with 403.
    #[serde(default)]
    pub tls_members: BTreeMap<String, String>,
    /// `[[identity.member]]`: members with their domains (for TLS) and
    /// source networks (for UDP/TCP). When any network is configured, a
    /// UDP/TCP peer from no member's network is refused with 403.
    #[serde(default, rename = "member")]
    pub members: Vec<MemberEntry>,
}

/// One `[[identity.member]]`: a federation member as the bootstrap table
/// knows it, until the registry plugs in.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberEntry {
    /// The member's name (for logs, CDRs and `sign_members`).
    pub name: String,
    /// SIP domains its TLS certificates identify (RFC 5922).
    #[serde(default)]
    pub domains: Vec<String>,
    /// Source networks of its non-TLS traffic.
    #[serde(default)]
    pub networks: Vec<IpNet>,
}

fn default_true() -> bool {
    true
}
fn default_cache_ttl() -> u64 {
    3600
}
fn default_fetch_timeout() -> u64 {
    2
}
fn default_iat_window() -> u64 {
    peering_identity::rfc8224::DEFAULT_MAX_AGE
}
fn default_attestations() -> Vec<String> {
    vec!["A".to_owned(), "B".to_owned(), "C".to_owned()]
}
fn default_rfc4474_window() -> u64 {
    peering_identity::rfc4474::DEFAULT_WINDOW
}
fn default_sign_standard() -> String {
    "rfc8224".to_owned()
}
fn default_sign_attestation() -> String {
    "A".to_owned()
}

impl IdentitySection {
    /// Makes relative paths relative to `base` (the configuration file's
    /// folder).
    pub fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        for p in [&mut self.sti_ca, &mut self.repository, &mut self.sign_key]
            .into_iter()
            .flatten()
        {
            fix(p);
        }
        self.https_ca.iter_mut().for_each(fix);
    }

    /// Checks values that serde cannot; `Err` is (key, reason).
    pub fn validate(&self) -> Result<(), (String, String)> {
        let invalid = |key: &str, reason: String| Err((format!("identity.{key}"), reason));
        for level in &self.attestation {
            if Attestation::parse(level).is_none() {
                return invalid("attestation", format!("`{level}` is not A, B or C"));
            }
        }
        if Attestation::parse(&self.sign_attestation).is_none() {
            return invalid(
                "sign_attestation",
                format!("`{}` is not A, B or C", self.sign_attestation),
            );
        }
        if !matches!(self.sign_standard.as_str(), "rfc8224" | "rfc4474") {
            return invalid("sign_standard", "must be `rfc8224` or `rfc4474`".to_owned());
        }
        if self.sign_key.is_some() != self.sign_x5u.is_some() {
            return invalid(
                "sign_key",
                "`sign_key` and `sign_x5u` go together".to_owned(),
            );
        }
        let signs = !self.sign_sources.is_empty() || !self.sign_members.is_empty();
        if signs && self.sign_key.is_none() {
            return invalid(
                "sign_sources",
                "signing for sources or members needs `sign_key` and `sign_x5u`".to_owned(),
            );
        }
        if self.require && self.sti_ca.is_none() {
            return invalid(
                "sti_ca",
                "`require = true` needs a folder of trusted STI-CA certificates".to_owned(),
            );
        }
        for m in &self.members {
            if m.name.is_empty() {
                return invalid("member.name", "must not be empty".to_owned());
            }
        }
        Ok(())
    }
}

/// Errors while setting up the identity screen from its section.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentitySetupError {
    /// A file or folder could not be read or holds nothing usable.
    #[error("identity.{key}: {source}")]
    Load {
        /// The configuration key.
        key: &'static str,
        /// What the identity crate said.
        source: peering_identity::Error,
    },
    /// The STI-CA folder holds no certificate.
    #[error("identity.sti_ca: no CA certificate in {path}")]
    NoAnchors {
        /// The folder.
        path: PathBuf,
    },
}

/// Who signs for whom, and with which key.
enum SigningKey {
    Stir(StirSigner),
    Rfc4474(Rfc4474Signer),
}

struct Authentication {
    key: SigningKey,
    attestation: Attestation,
    sources: Vec<IpNet>,
    members: BTreeSet<String>,
}

/// The screen described in the module docs.
pub struct IdentityScreen {
    agent: String,
    require: bool,
    reject_invalid: bool,
    stir: Option<StirVerifier>,
    rfc4474: Option<Rfc4474Verifier>,
    fetcher: Option<CertFetcher>,
    attestations: Vec<Attestation>,
    signing: Option<Authentication>,
    trusted_pai_sources: Vec<IpNet>,
    trusted_pai_domains: BTreeSet<String>,
    /// (domain, member) for TLS peers, lower-case domains.
    tls_members: Vec<(String, String)>,
    /// (network, member) for UDP/TCP peers.
    networks: Vec<(IpNet, String)>,
}

impl std::fmt::Debug for IdentityScreen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityScreen")
            .field("require", &self.require)
            .field("verifies", &self.stir.is_some())
            .field("signs", &self.signing.is_some())
            .field("tls_members", &self.tls_members.len())
            .field("networks", &self.networks.len())
            .finish_non_exhaustive()
    }
}

fn load_err(key: &'static str) -> impl FnOnce(peering_identity::Error) -> IdentitySetupError {
    move |source| IdentitySetupError::Load { key, source }
}

fn read_pem(key: &'static str, path: &Path) -> Result<String, IdentitySetupError> {
    std::fs::read_to_string(path).map_err(|source| IdentitySetupError::Load {
        key,
        source: peering_identity::Error::Io {
            path: path.display().to_string(),
            source,
        },
    })
}

fn normalize_domain(d: &str) -> String {
    d.trim().trim_end_matches('.').to_ascii_lowercase()
}

impl IdentityScreen {
    /// Builds the screen; `agent` is the warn-agent of Warning headers
    /// (the node's name).
    pub fn new(section: &IdentitySection, agent: &str) -> Result<Self, IdentitySetupError> {
        let (stir, rfc4474, fetcher) = match &section.sti_ca {
            Some(dir) => {
                let mut trust = CertTrust::new();
                let n = trust.load_dir(dir).map_err(load_err("sti_ca"))?;
                if n == 0 {
                    return Err(IdentitySetupError::NoAnchors { path: dir.clone() });
                }
                let stir = StirVerifier::new(
                    trust.clone(),
                    StirConfig {
                        max_age: section.iat_window_secs,
                        allow_base_passport: section.allow_base_passport,
                        check_dest: section.check_dest,
                        ..StirConfig::default()
                    },
                );
                let rfc4474 = section.rfc4474.then(|| {
                    Rfc4474Verifier::new(
                        trust,
                        Rfc4474Config {
                            window: section.rfc4474_window_secs,
                            allow_sha1: section.rsa_sha1,
                            ..Rfc4474Config::default()
                        },
                    )
                });
                let mut https_roots = Vec::new();
                for path in &section.https_ca {
                    let pem = read_pem("https_ca", path)?;
                    https_roots.extend(
                        peering_identity::tls::certs_from_pem(pem.as_bytes())
                            .map_err(load_err("https_ca"))?,
                    );
                }
                let fetcher = CertFetcher::new(FetchConfig {
                    allowed_hosts: section.allowed_hosts.clone(),
                    repository: section.repository.clone(),
                    timeout: std::time::Duration::from_secs(section.fetch_timeout_secs),
                    cache_ttl: std::time::Duration::from_secs(section.cert_cache_secs),
                    https_roots,
                    ..FetchConfig::default()
                })
                .map_err(load_err("https_ca"))?;
                (Some(stir), rfc4474, Some(fetcher))
            }
            None => (None, None, None),
        };
        let signing = match (&section.sign_key, &section.sign_x5u) {
            (Some(path), Some(x5u)) => {
                let pem = read_pem("sign_key", path)?;
                let key = if section.sign_standard == "rfc4474" {
                    SigningKey::Rfc4474(
                        Rfc4474Signer::from_pem(&pem, x5u.clone()).map_err(load_err("sign_key"))?,
                    )
                } else {
                    SigningKey::Stir(StirSigner::new(
                        Signer::from_pem(&pem, x5u.clone()).map_err(load_err("sign_key"))?,
                    ))
                };
                Some(Authentication {
                    key,
                    attestation: Attestation::parse(&section.sign_attestation)
                        .unwrap_or(Attestation::C),
                    sources: section.sign_sources.clone(),
                    members: section.sign_members.iter().cloned().collect(),
                })
            }
            _ => None,
        };
        let mut tls_members: Vec<(String, String)> = section
            .tls_members
            .iter()
            .map(|(d, m)| (normalize_domain(d), m.clone()))
            .collect();
        let mut networks = Vec::new();
        for m in &section.members {
            tls_members.extend(
                m.domains
                    .iter()
                    .map(|d| (normalize_domain(d), m.name.clone())),
            );
            networks.extend(m.networks.iter().map(|n| (*n, m.name.clone())));
        }
        Ok(Self {
            agent: agent.to_owned(),
            require: section.require,
            reject_invalid: section.reject_invalid,
            stir,
            rfc4474,
            fetcher,
            attestations: section
                .attestation
                .iter()
                .filter_map(|a| Attestation::parse(a))
                .collect(),
            signing,
            trusted_pai_sources: section.trusted_pai_sources.clone(),
            trusted_pai_domains: section
                .trusted_pai_domains
                .iter()
                .map(|d| normalize_domain(d))
                .collect(),
            tls_members,
            networks,
        })
    }

    fn warning(&self, status: u16, reason: &str, text: &str) -> Rejection {
        Rejection::new(status, reason).with_header(
            HeaderName::Warning,
            format!("399 {} \"{}\"", self.agent, text.replace('"', "'")),
        )
    }

    /// Step 1: which member sent the request. `Ok(None)` when no member
    /// table applies to its transport.
    pub fn authenticate(
        &self,
        transport: Transport,
        source: IpAddr,
        tls_domains: &BTreeSet<String>,
    ) -> Result<Option<String>, Rejection> {
        if transport == Transport::Tls {
            if self.tls_members.is_empty() {
                return Ok(None);
            }
            return self
                .tls_members
                .iter()
                .find(|(d, _)| tls_domains.contains(d))
                .map(|(_, m)| Some(m.clone()))
                .ok_or_else(|| {
                    self.warning(
                        403,
                        "Forbidden",
                        "TLS certificate names no federation member",
                    )
                });
        }
        if self.networks.is_empty() {
            return Ok(None);
        }
        self.networks
            .iter()
            .find(|(n, _)| n.contains(&source))
            .map(|(_, m)| Some(m.clone()))
            .ok_or_else(|| self.warning(403, "Forbidden", "source address of no federation member"))
    }

    /// Step 2: whether the peer is inside the RFC 3325 trust domain.
    pub fn pai_trusted(&self, source: IpAddr, tls_domains: &BTreeSet<String>) -> bool {
        self.trusted_pai_sources.iter().any(|n| n.contains(&source))
            || tls_domains
                .iter()
                .any(|d| self.trusted_pai_domains.contains(d))
    }

    fn should_sign(&self, source: IpAddr, member: Option<&str>) -> Option<&Authentication> {
        let auth = self.signing.as_ref()?;
        let by_source = auth.sources.iter().any(|n| n.contains(&source));
        let by_member = member.is_some_and(|m| auth.members.contains(m));
        (by_source || by_member).then_some(auth)
    }

    async fn verify(&self, msg: &Message, view: &RequestView<'_>, now: u64) -> VerificationResult {
        let identities = msg.header_values(&HeaderName::Identity);
        let mut first: Option<VerificationResult> = None;
        for identity in identities {
            let result = match (classify(identity), &self.fetcher) {
                (Standard::Rfc8224, Some(fetcher)) => match &self.stir {
                    Some(stir) => verify_stir(stir, fetcher, identity, view, now).await,
                    None => unusable(Standard::Rfc8224),
                },
                (Standard::Rfc4474, Some(fetcher)) => match &self.rfc4474 {
                    Some(v) => {
                        let info = msg.header(&HeaderName::IdentityInfo);
                        verify_rfc4474(v, fetcher, Some(identity), info, view, now).await
                    }
                    None => unusable(Standard::Rfc4474),
                },
                (standard, None) => unusable(standard),
            };
            if result.is_valid() {
                return result;
            }
            first.get_or_insert(result);
        }
        first.unwrap_or(VerificationResult {
            standard: Standard::Rfc8224,
            outcome: Err(peering_identity::Error::MissingIdentity),
        })
    }

    /// Step 3 for an initial INVITE: verify, sign or refuse.
    async fn identity(
        &self,
        req: &RouteRequest,
        info: &mut CallInfo,
        now: u64,
    ) -> Result<(), Rejection> {
        let msg = &req.request;
        let view = request_view(msg);
        let has_identity = msg.header(&HeaderName::Identity).is_some();
        if !has_identity {
            if let Some(auth) = self.should_sign(req.flow.remote.ip(), info.member.as_deref()) {
                return self.sign(auth, msg, &view, info, now);
            }
            info.identity = Some("none".to_owned());
            if self.require {
                let (status, reason) = peering_identity::Error::MissingIdentity.status();
                return Err(Rejection::new(status, reason));
            }
            return Ok(());
        }
        if self.stir.is_none() {
            // No `sti_ca`: this node does not verify; the header travels on.
            info.identity = Some("unverified".to_owned());
            return Ok(());
        }
        let result = self.verify(msg, &view, now).await;
        match &result.outcome {
            Ok(verified) => {
                let attest = verified.attestation;
                info.identity_verdict = IdentityVerdict::Valid {
                    attestation: attest.and_then(|a| a.as_str().chars().next()),
                };
                info.identity = Some(valid_token(result.standard, attest).to_owned());
                if let Some(a) = attest
                    && !self.attestations.contains(&a)
                {
                    info!(
                        call_id = msg.call_id(),
                        attest = a.as_str(),
                        "attestation not accepted"
                    );
                    return Err(self.warning(
                        403,
                        "Attestation Not Accepted",
                        &format!("attestation {} not accepted", a.as_str()),
                    ));
                }
                debug!(call_id = msg.call_id(), signer = %verified.signer, "Identity verified");
                Ok(())
            }
            Err(e) => {
                let (status, reason) = e.status();
                info.identity_verdict = IdentityVerdict::Invalid;
                info.identity = Some(format!("{} {status}", result.standard.as_str()));
                info!(call_id = msg.call_id(), error = %e, status, "Identity does not verify");
                if self.require || self.reject_invalid {
                    Err(self.warning(status, reason, &e.to_string()))
                } else {
                    Ok(())
                }
            }
        }
    }

    fn sign(
        &self,
        auth: &Authentication,
        msg: &Message,
        view: &RequestView<'_>,
        info: &mut CallInfo,
        now: u64,
    ) -> Result<(), Rejection> {
        // The key failing is this node's fault (500); a request whose
        // From, To or CSeq cannot be read cannot be signed (400).
        let fail = |e: peering_identity::Error| {
            info!(call_id = msg.call_id(), error = %e, "signing failed");
            match e.status() {
                (500, reason) => Rejection::new(500, reason),
                _ => self.warning(400, "Bad Request", &e.to_string()),
            }
        };
        match &auth.key {
            SigningKey::Stir(signer) => {
                let value = signer
                    .sign_shaken(view, auth.attestation, &new_origid(), now)
                    .map_err(fail)?;
                info.add_headers.push((HeaderName::Identity, value));
                info.identity_verdict = IdentityVerdict::Valid {
                    attestation: auth.attestation.as_str().chars().next(),
                };
                info.identity = Some(format!(
                    "rfc8224 signed attest={}",
                    auth.attestation.as_str()
                ));
            }
            SigningKey::Rfc4474(signer) => {
                // RFC 4474 section 5 step 3: add a Date header when absent.
                let date = sip_date(now);
                let mut view = *view;
                if view.date.is_none() {
                    view.date = Some(&date);
                    info.add_headers.push((HeaderName::Date, date.clone()));
                }
                let signed = signer.sign(&view).map_err(fail)?;
                info.add_headers
                    .push((HeaderName::Identity, signed.identity));
                info.add_headers
                    .push((HeaderName::IdentityInfo, signed.identity_info));
                info.identity_verdict = IdentityVerdict::Valid { attestation: None };
                info.identity = Some("rfc4474 signed".to_owned());
            }
        }
        Ok(())
    }
}

/// The CDR token of a valid identity: `<standard> valid[ attest=<level>]`.
fn valid_token(standard: Standard, attest: Option<Attestation>) -> &'static str {
    use Attestation as A;
    match (standard, attest) {
        (Standard::Rfc8224, None) => "rfc8224 valid",
        (Standard::Rfc8224, Some(A::A)) => "rfc8224 valid attest=A",
        (Standard::Rfc8224, Some(A::B)) => "rfc8224 valid attest=B",
        (Standard::Rfc8224, Some(A::C)) => "rfc8224 valid attest=C",
        (Standard::Rfc4474, None) => "rfc4474 valid",
        (Standard::Rfc4474, Some(A::A)) => "rfc4474 valid attest=A",
        (Standard::Rfc4474, Some(A::B)) => "rfc4474 valid attest=B",
        (Standard::Rfc4474, Some(A::C)) => "rfc4474 valid attest=C",
    }
}

fn unusable(standard: Standard) -> VerificationResult {
    VerificationResult {
        standard,
        outcome: Err(peering_identity::Error::UnsupportedAlgorithm {
            alg: standard.as_str().to_owned(),
        }),
    }
}

/// The header values identity signing and verification read.
pub fn request_view(msg: &Message) -> RequestView<'_> {
    RequestView {
        from: msg.header(&HeaderName::From).unwrap_or_default(),
        to: msg.header(&HeaderName::To).unwrap_or_default(),
        call_id: msg.header(&HeaderName::CallId).unwrap_or_default(),
        cseq: msg.header(&HeaderName::CSeq).unwrap_or_default(),
        date: msg.header(&HeaderName::Date),
        contact: msg.header(&HeaderName::Contact),
        body: msg.body(),
    }
}

/// The RFC 5922 domains of a TLS peer's certificate (empty for other
/// transports or an unreadable certificate).
fn tls_domains(req: &RouteRequest) -> BTreeSet<String> {
    if req.flow.transport != Transport::Tls {
        return BTreeSet::new();
    }
    let chain = req.peer_certificates.as_ref().map(|c| c.as_slice());
    peering_identity::tls::peer_domains(chain).unwrap_or_default()
}

impl Screen for IdentityScreen {
    /// Member and P-Asserted-Identity checks are table lookups; only an
    /// initial INVITE may need a signature checked or made. So in-dialog
    /// requests (ACK, BYE) and other methods are answered inline.
    fn is_cheap(&self, request: &RouteRequest) -> bool {
        let initial_invite = matches!(request.kind, RouteKind::Initial)
            && request.request.method() == Some(&Method::Invite);
        if !initial_invite {
            return true;
        }
        if request.request.header(&HeaderName::Identity).is_some() {
            self.stir.is_none()
        } else {
            self.signing.is_none()
        }
    }

    fn screen<'a>(
        &'a self,
        request: &'a RouteRequest,
        info: &'a mut CallInfo,
    ) -> BoxFuture<'a, Result<(), Rejection>> {
        Box::pin(async move {
            let source = request.flow.remote.ip();
            let has_pai = request
                .request
                .header(&HeaderName::PAssertedIdentity)
                .is_some();
            // The certificate is parsed only when a table could match its
            // domains; without one, the checks below do not read them.
            let domains = if !self.tls_members.is_empty()
                || (has_pai && !self.trusted_pai_domains.is_empty())
            {
                tls_domains(request)
            } else {
                BTreeSet::new()
            };
            let member = self.authenticate(request.flow.transport, source, &domains)?;
            if member.is_some() {
                info.member = member;
            }
            if has_pai && !self.pai_trusted(source, &domains) {
                debug!(%source, "P-Asserted-Identity from outside the trust domain removed");
                info.remove_headers.push(HeaderName::PAssertedIdentity);
            }
            let initial_invite = matches!(request.kind, RouteKind::Initial)
                && request.request.method() == Some(&Method::Invite);
            if initial_invite {
                let now = peering_identity::unix_seconds(SystemTime::now());
                self.identity(request, info, now).await?;
            }
            Ok(())
        })
    }
}

/// The screen as the pipeline holds it.
pub fn screen(
    section: &IdentitySection,
    agent: &str,
) -> Result<Arc<dyn Screen>, IdentitySetupError> {
    Ok(Arc::new(IdentityScreen::new(section, agent)?))
}

#[cfg(test)]
mod tests;
