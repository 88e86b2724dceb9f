//! The crate's one error type, and the SIP response each error maps to.

use std::net::SocketAddr;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a called party is not an E.164 number that ENUM can look up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NumberProblem {
    /// The URI is a `sip:`/`sips:` URI whose user part is not a telephone
    /// number (no `user=phone` and no leading `+`).
    NotTelephone,
    /// No digits at all.
    Empty,
    /// A local number (no leading `+`, RFC 3966 §5.1.5): the caller must dial
    /// the full international number.
    Local,
    /// More than 15 digits (ITU-T E.164 §6.1).
    TooLong {
        /// How many digits there were.
        digits: usize,
    },
    /// Starts with 0: no E.164 country code does (ITU-T E.164 §6.2.1).
    CountryCode,
    /// A character that is neither a digit nor a visual separator.
    InvalidChar {
        /// The offending character.
        found: char,
    },
    /// An `rn` parameter (RFC 4694) that is not a global number and has no
    /// usable `rn-context`.
    BadRoutingNumber,
}

/// Who caused an error; this picks the SIP response class (compare
/// pingora's `ErrorSource`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The caller sent something we cannot route (4xx).
    Downstream,
    /// DNS or a remote server failed (5xx, try again or fail over).
    Upstream,
    /// Our own configuration or I/O (500).
    Internal,
}

/// Everything that can go wrong in ENUM routing, zone serving and pushing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The called party is not an E.164 number.
    #[error("called party is not an E.164 number: {problem:?}")]
    NotE164 {
        /// What is wrong with it.
        problem: NumberProblem,
    },
    /// Every configured ENUM suffix answered NXDOMAIN / NODATA for the number.
    #[error("number {number} not found under any ENUM suffix")]
    NumberNotFound {
        /// The number, `+` and digits.
        number: String,
    },
    /// NAPTR records exist, but none yields a usable SIP URI.
    #[error("no usable SIP NAPTR for {number}")]
    NoSipRoute {
        /// The number, `+` and digits.
        number: String,
    },
    /// A non-terminal NAPTR chain came back to a domain already visited.
    #[error("NAPTR loop at {domain}")]
    NaptrLoop {
        /// The domain seen twice.
        domain: String,
    },
    /// A non-terminal NAPTR chain is longer than allowed.
    #[error("NAPTR chain longer than {max} steps")]
    ChainTooLong {
        /// The configured limit.
        max: usize,
    },
    /// A SIP URI's host has no SRV/A/AAAA records to send to.
    #[error("SIP server {host} does not resolve")]
    Unresolvable {
        /// The host of the SIP URI.
        host: String,
    },
    /// A SIP URI from an ENUM answer is not usable for RFC 3263.
    #[error("unusable SIP URI in NAPTR result: {problem:?}")]
    BadSipUri {
        /// What is wrong with it.
        problem: UriProblem,
    },
    /// The DNS server did not answer in time.
    #[error("DNS timeout asking {server} for {name}")]
    DnsTimeout {
        /// The name queried.
        name: String,
        /// The server asked.
        server: SocketAddr,
    },
    /// The DNS server answered with an error code (SERVFAIL, REFUSED, ...),
    /// or the exchange failed.
    #[error("DNS failure for {name}: rcode {rcode}")]
    DnsFailure {
        /// The name queried.
        name: String,
        /// The DNS response code (RFC 1035 §4.1.1, RFC 6895), or 2 (SERVFAIL)
        /// when the exchange failed without a response.
        rcode: u16,
    },
    /// A zone entry or a zone as a whole is invalid.
    #[error("invalid zone data: {problem:?}")]
    Zone {
        /// What is wrong.
        problem: ZoneProblem,
    },
    /// The primary refused a dynamic update (RFC 2136 §2.2 RCODE).
    #[error("dynamic update refused by {server}: rcode {rcode}")]
    UpdateRefused {
        /// The primary.
        server: SocketAddr,
        /// Its response code.
        rcode: u16,
    },
    /// The primary's answer to a signed update failed TSIG verification.
    #[error("TSIG verification of the answer from {server} failed")]
    TsigVerify {
        /// The primary.
        server: SocketAddr,
    },
    /// Socket or file I/O.
    #[error("I/O: {source}")]
    Io {
        /// The underlying error.
        #[from]
        source: std::io::Error,
    },
    /// Encoding or decoding a DNS message failed.
    #[error("DNS protocol: {source}")]
    Proto {
        /// The underlying error.
        #[from]
        source: hickory_proto::ProtoError,
    },
}

/// What is wrong with a SIP URI found in a NAPTR result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum UriProblem {
    /// Not `sip:` or `sips:`.
    Scheme,
    /// No host.
    NoHost,
    /// A port that is not a number in 1..=65535.
    Port,
    /// `transport=` names a transport we do not speak.
    Transport,
}

/// What is wrong with zone data.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ZoneProblem {
    /// The zone origin is not a valid domain name.
    Origin,
    /// An entry's number or prefix is not 1 to 15 digits.
    Digits {
        /// The digits given.
        digits: String,
    },
    /// Two entries claim the same number or prefix.
    Duplicate {
        /// The digits claimed twice.
        digits: String,
    },
    /// A NAPTR field does not fit a DNS character-string or name.
    Naptr {
        /// The digits of the entry.
        digits: String,
    },
}

impl Error {
    /// The SIP response (RFC 3261 §21) a proxy sends when routing fails with
    /// this error.
    pub fn status(&self) -> (u16, &'static str) {
        match self {
            Self::NotE164 { problem } => match problem {
                NumberProblem::Empty | NumberProblem::Local => (484, "Address Incomplete"),
                _ => (404, "Not Found"),
            },
            // RFC 3261 §21.6.3: the ENUM trees are authoritative for numbers.
            Self::NumberNotFound { .. } => (604, "Does Not Exist Anywhere"),
            Self::NoSipRoute { .. } => (404, "Not Found"),
            Self::NaptrLoop { .. }
            | Self::ChainTooLong { .. }
            | Self::Unresolvable { .. }
            | Self::BadSipUri { .. }
            | Self::DnsTimeout { .. }
            | Self::DnsFailure { .. } => (503, "Service Unavailable"),
            Self::Zone { .. }
            | Self::UpdateRefused { .. }
            | Self::TsigVerify { .. }
            | Self::Io { .. }
            | Self::Proto { .. } => (500, "Server Internal Error"),
        }
    }

    /// Who caused the error.
    pub fn side(&self) -> Side {
        match self.status().0 {
            400..=499 | 600..=699 => Side::Downstream,
            500 => Side::Internal,
            _ => Side::Upstream,
        }
    }

    /// A copy of a DNS lookup error, for sharing one failed query's result
    /// among its waiters. Errors that cannot be copied (I/O, protocol)
    /// become a SERVFAIL-like [`Error::DnsFailure`].
    pub(crate) fn duplicate(&self) -> Self {
        match self {
            Self::DnsTimeout { name, server } => Self::DnsTimeout {
                name: name.clone(),
                server: *server,
            },
            Self::DnsFailure { name, rcode } => Self::DnsFailure {
                name: name.clone(),
                rcode: *rcode,
            },
            _ => Self::DnsFailure {
                name: String::new(),
                rcode: 2,
            },
        }
    }

    /// True when DNS did not answer in time.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::DnsTimeout { .. })
    }

    /// True when the number is simply not in any ENUM tree.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NumberNotFound { .. } | Self::NoSipRoute { .. })
    }
}
