//! The verification result attached to a call, common to both standards.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::Error;
use crate::passport::Attestation;
use crate::sip::Party;

/// Which identity standard a result is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Standard {
    /// RFC 4474 `Identity` with `Identity-Info` (rsa-sha256 / rsa-sha1).
    Rfc4474,
    /// RFC 8224 `Identity` carrying a PASSporT (RFC 8225, SHAKEN RFC 8588).
    Rfc8224,
}

impl Standard {
    /// A short lower-case name for CDRs and metrics (`rfc4474`, `rfc8224`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rfc4474 => "rfc4474",
            Self::Rfc8224 => "rfc8224",
        }
    }
}

/// What a successful verification established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The SHAKEN attestation, when the PASSporT is a SHAKEN one.
    pub attestation: Option<Attestation>,
    /// The originating identity that was vouched for.
    pub orig: Party,
    /// The SHAKEN origination identifier.
    pub origid: Option<String>,
    /// The signed time (`iat`, or the Date header for RFC 4474), UNIX seconds.
    pub signed_at: u64,
    /// Subject of the signing certificate.
    pub signer: String,
    /// Service provider codes from the certificate's TN authorization list.
    pub spc: Vec<String>,
}

/// The outcome of verifying one request's identity: which standard, and
/// either what was verified or why not.
#[derive(Debug)]
pub struct VerificationResult {
    /// The standard the Identity header follows.
    pub standard: Standard,
    /// Valid (with details) or the failure.
    pub outcome: Result<Verified, Error>,
}

impl VerificationResult {
    /// Whether the identity verified.
    pub fn is_valid(&self) -> bool {
        self.outcome.is_ok()
    }

    /// The attestation level of a valid SHAKEN PASSporT.
    pub fn attestation(&self) -> Option<Attestation> {
        self.outcome.as_ref().ok().and_then(|v| v.attestation)
    }

    /// The SIP response for a failure (`None` when valid).
    pub fn status(&self) -> Option<(u16, &'static str)> {
        self.outcome.as_ref().err().map(Error::status)
    }

    /// A short token for CDRs: `valid` or the status code of the failure.
    pub fn cdr_token(&self) -> String {
        match &self.outcome {
            Ok(_) => "valid".to_owned(),
            Err(e) => e.status().0.to_string(),
        }
    }
}

/// Which standard an `Identity` header value follows: a quoted base64
/// signature is RFC 4474, anything else (a JWS) RFC 8224.
pub fn classify(identity: &str) -> Standard {
    if identity.trim_start().starts_with('"') {
        Standard::Rfc4474
    } else {
        Standard::Rfc8224
    }
}

/// Seconds since the UNIX epoch (0 before it).
pub fn unix_seconds(now: SystemTime) -> u64 {
    now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Checks `signed` against `now` within `window` seconds either way.
pub(crate) fn check_fresh(signed: u64, now: u64, window: u64) -> Result<(), Error> {
    let age = signed as i64 - now as i64;
    if age.unsigned_abs() > window {
        return Err(Error::StaleDate { age, window });
    }
    Ok(())
}

/// The SIP header values of a request that identity signing and
/// verification read. The node fills it from its parsed message; values are
/// the header field values as received (without the header name).
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestView<'a> {
    /// From header value.
    pub from: &'a str,
    /// To header value.
    pub to: &'a str,
    /// Call-ID header value.
    pub call_id: &'a str,
    /// CSeq header value (`1 INVITE`).
    pub cseq: &'a str,
    /// Date header value (RFC 1123 date), if present.
    pub date: Option<&'a str>,
    /// Contact header value, if present.
    pub contact: Option<&'a str>,
    /// The message body.
    pub body: &'a [u8],
}

impl RequestView<'_> {
    /// The Date header as UNIX seconds, if present and valid.
    pub fn date_unix(&self) -> Option<u64> {
        let date = self.date?;
        httpdate::parse_http_date(date.trim())
            .ok()
            .map(unix_seconds)
    }
}

/// Formats UNIX seconds as a SIP Date value (RFC 3261 section 20.17).
pub fn sip_date(unix: u64) -> String {
    httpdate::fmt_http_date(UNIX_EPOCH + std::time::Duration::from_secs(unix))
}
