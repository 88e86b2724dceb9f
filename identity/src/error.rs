//! The crate's one error type and its mapping to SIP responses.

use std::fmt;

/// Who caused an [`Error`]: the peer that sent the request or this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorSource {
    /// The downstream peer sent something missing, malformed, stale or forged.
    Downstream,
    /// This node is misconfigured or could not do its part (keys, files).
    Internal,
}

/// What was wrong with a certificate or a chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CertProblem {
    /// The DER or PEM could not be parsed.
    Malformed,
    /// The chain does not lead to a configured trust anchor.
    Untrusted,
    /// The certificate is past its `notAfter`.
    Expired,
    /// The certificate is before its `notBefore`.
    NotYetValid,
    /// A CRL lists the certificate as revoked.
    Revoked,
    /// The key type or signature algorithm is not supported.
    UnsupportedKey,
    /// The RFC 8226 TN authorization list does not cover the originating number.
    TnNotAuthorized,
    /// No usable identity (RFC 5922) in the certificate, or it names another domain.
    NameMismatch,
}

impl fmt::Display for CertProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Malformed => "malformed certificate",
            Self::Untrusted => "certificate not issued by a trusted authority",
            Self::Expired => "certificate expired",
            Self::NotYetValid => "certificate not yet valid",
            Self::Revoked => "certificate revoked",
            Self::UnsupportedKey => "unsupported key or signature algorithm",
            Self::TnNotAuthorized => "telephone number not covered by the TN authorization list",
            Self::NameMismatch => "certificate does not name the expected domain",
        })
    }
}

/// Errors of signing and verifying caller identity and of peer certificates.
///
/// Every variant maps to a SIP response through [`Error::status`], following
/// RFC 4474 section 13 and RFC 8224 section 6.2.2:
///
/// ```text
/// 428 Use Identity Header     no Identity where one is required
/// 436 Bad Identity Info       the certificate URL is absent, bad or cannot be fetched
/// 437 Unsupported Credential  the certificate cannot be used (untrusted, expired, wrong TN)
/// 438 Invalid Identity Header the signature or the token does not verify
/// 403 Stale Date              Date or iat outside the freshness window
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request carries no Identity header but one is required.
    #[error("no Identity header")]
    MissingIdentity,
    /// The certificate reference (`info`, `x5u` or `Identity-Info`) is absent.
    #[error("no certificate reference in the Identity header")]
    MissingInfo,
    /// The certificate reference is not a URL this node accepts.
    #[error("certificate reference not acceptable: {url}")]
    BadInfo {
        /// The offending reference.
        url: String,
        /// Why it was refused.
        reason: InfoProblem,
    },
    /// The certificate could not be fetched or read.
    #[error("certificate at {url} could not be retrieved: {reason}")]
    FetchFailed {
        /// The URL being fetched.
        url: String,
        /// What went wrong.
        reason: FetchProblem,
    },
    /// The signing algorithm named in the header is not supported (or not enabled).
    #[error("unsupported algorithm {alg}")]
    UnsupportedAlgorithm {
        /// The algorithm token as received.
        alg: String,
    },
    /// The PASSporT extension (`ppt`) is not supported.
    #[error("unsupported PASSporT extension {ppt}")]
    UnsupportedPpt {
        /// The `ppt` value as received.
        ppt: String,
    },
    /// The signing certificate is unusable.
    #[error("unusable certificate: {problem}")]
    Certificate {
        /// What is wrong with it.
        problem: CertProblem,
    },
    /// The Identity header (or the token in it) is malformed.
    #[error("malformed Identity header: {what}")]
    Malformed {
        /// Which part did not parse.
        what: &'static str,
    },
    /// The signature does not verify against the certificate.
    #[error("signature does not verify")]
    BadSignature,
    /// A signed claim does not agree with the SIP request.
    #[error("claim {claim} does not match the request")]
    ClaimMismatch {
        /// The claim name (`orig`, `dest`, `iat`, ...).
        claim: &'static str,
    },
    /// The Date header or `iat` claim is outside the freshness window.
    #[error("stale date: {age} s from now, window {window} s")]
    StaleDate {
        /// Signed time minus now, seconds (negative when in the past).
        age: i64,
        /// The allowed window, seconds.
        window: u64,
    },
    /// The same signed Identity was already seen within the freshness window.
    #[error("replayed Identity")]
    Replay,
    /// A key given to this node could not be used.
    #[error("bad signing key: {what}")]
    BadKey {
        /// What is wrong.
        what: &'static str,
    },
    /// TLS configuration could not be built.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// A client verifier could not be built.
    #[error("TLS client verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// A named cipher suite is not known to the provider.
    #[error("unknown cipher suite {name}")]
    UnknownCipherSuite {
        /// The name as configured.
        name: String,
    },
    /// Reading a local file failed.
    #[error("reading {path}: {source}")]
    Io {
        /// The path being read.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// Why a certificate URL was refused before any fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum InfoProblem {
    /// Not a parseable absolute URL.
    Syntax,
    /// The scheme is not allowed (HTTPS only unless configured).
    Scheme,
    /// The host is not on the allowlist and no local repository has the file.
    NotAllowed,
}

impl fmt::Display for InfoProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Syntax => "not a URL",
            Self::Scheme => "scheme not allowed",
            Self::NotAllowed => "host not allowed",
        })
    }
}

/// Why fetching a certificate failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FetchProblem {
    /// The fetch took longer than the time limit.
    Timeout,
    /// The body is larger than the size limit.
    TooLarge,
    /// Connecting, TLS or reading failed.
    Transport,
    /// The server answered with a status other than 200.
    Status(u16),
    /// The response was not HTTP/1.x or not understood.
    BadResponse,
    /// Not found in the local repository.
    NotFound,
    /// The body holds no certificate.
    NoCertificate,
}

impl fmt::Display for FetchProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout => f.write_str("timed out"),
            Self::TooLarge => f.write_str("response too large"),
            Self::Transport => f.write_str("transport failure"),
            Self::Status(code) => write!(f, "HTTP status {code}"),
            Self::BadResponse => f.write_str("bad HTTP response"),
            Self::NotFound => f.write_str("not found"),
            Self::NoCertificate => f.write_str("no certificate in the response"),
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The SIP status code and reason phrase to answer with.
    pub fn status(&self) -> (u16, &'static str) {
        match self {
            Self::MissingIdentity => (428, "Use Identity Header"),
            Self::MissingInfo | Self::BadInfo { .. } | Self::FetchFailed { .. } => {
                (436, "Bad Identity Info")
            }
            Self::UnsupportedAlgorithm { .. }
            | Self::UnsupportedPpt { .. }
            | Self::Certificate { .. } => (437, "Unsupported Credential"),
            Self::Malformed { .. } | Self::BadSignature | Self::ClaimMismatch { .. } => {
                (438, "Invalid Identity Header")
            }
            Self::StaleDate { .. } => (403, "Stale Date"),
            Self::Replay => (403, "Replayed Identity"),
            Self::BadKey { .. }
            | Self::Tls(_)
            | Self::Verifier(_)
            | Self::UnknownCipherSuite { .. }
            | Self::Io { .. } => (500, "Server Internal Error"),
        }
    }

    /// Who caused the error.
    pub fn source_kind(&self) -> ErrorSource {
        match self.status().0 {
            500 => ErrorSource::Internal,
            _ => ErrorSource::Downstream,
        }
    }

    /// Whether the error is a stale `iat` or `Date`.
    pub fn is_stale(&self) -> bool {
        matches!(self, Self::StaleDate { .. })
    }
}

impl From<CertProblem> for Error {
    fn from(problem: CertProblem) -> Self {
        Self::Certificate { problem }
    }
}
