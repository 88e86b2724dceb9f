//! Errors of the SIP message layer.
//!
//! Every parse failure names the fault precisely enough to build the response
//! RFC 3261 asks for: [`ParseError::status`] gives the status code and a reason
//! phrase (400 with the fault named, 505 for an unsupported SIP version).

use thiserror::Error;

/// Why a message (or a part of one) could not be parsed.
///
/// All faults come from the peer that sent the bytes (the downstream side).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The buffer holds no start line at all (empty or only line breaks).
    #[error("empty message")]
    Empty,
    /// The header section does not end with an empty line.
    #[error("header section not terminated by an empty line")]
    Unterminated,
    /// The header section is not valid UTF-8.
    #[error("header section is not valid UTF-8")]
    NotUtf8,
    /// A line break that is not CRLF (bare CR or bare LF) in the header section.
    #[error("bare CR or LF in the header section")]
    BareLineBreak,
    /// The start line is neither a Request-Line nor a Status-Line.
    #[error("malformed start line")]
    BadStartLine,
    /// The method token of the Request-Line is not a token.
    #[error("malformed method")]
    BadMethod,
    /// The Request-URI does not parse (or contains forbidden components).
    #[error("malformed Request-URI")]
    BadRequestUri,
    /// The SIP-Version is well formed but not SIP/2.0 (answer 505).
    #[error("SIP version {major}.{minor} not supported")]
    VersionNotSupported {
        /// Major version number as received (saturated).
        major: u32,
        /// Minor version number as received (saturated).
        minor: u32,
    },
    /// The SIP-Version field is not of the form `SIP/x.y`.
    #[error("malformed SIP version")]
    BadVersion,
    /// The Status-Code is not three digits in 100..=699.
    #[error("malformed status code")]
    BadStatus,
    /// A header line is not `name: value` (line number counted from 1 at the start line).
    #[error("malformed header line {line}")]
    BadHeaderLine {
        /// 1-based line number of the offending line.
        line: usize,
    },
    /// A header the message must carry is missing.
    #[error("missing {name} header")]
    MissingHeader {
        /// Canonical header name.
        name: &'static str,
    },
    /// A header that may appear only once appears more than once (or with a list).
    #[error("more than one {name} header")]
    RepeatedHeader {
        /// Canonical header name.
        name: &'static str,
    },
    /// The value of a header does not follow its grammar.
    #[error("malformed {name} header")]
    BadHeaderValue {
        /// Canonical header name.
        name: &'static str,
    },
    /// A numeric header value is larger than the protocol allows.
    #[error("{name} value out of range")]
    ValueOutOfRange {
        /// Canonical header name.
        name: &'static str,
    },
    /// The CSeq method differs from the Request-Line method.
    #[error("CSeq method does not match the request method")]
    CSeqMethodMismatch,
    /// Content-Length declares more octets than were received.
    #[error("Content-Length {declared} larger than the {available} octets received")]
    BodyTooShort {
        /// Declared Content-Length.
        declared: usize,
        /// Octets available after the header section.
        available: usize,
    },
    /// A stream-framed message without Content-Length (RFC 3261 §18.3).
    #[error("Content-Length is mandatory on stream transports")]
    MissingContentLength,
    /// The message exceeds the configured maximum size.
    #[error("message of {len} octets exceeds the maximum of {max}")]
    TooLarge {
        /// Configured maximum.
        max: usize,
        /// Size seen (at least).
        len: usize,
    },
    /// A URI does not follow RFC 3261 §25.1 / RFC 3966.
    #[error("malformed URI")]
    BadUri,
    /// A name-addr / addr-spec value does not parse.
    #[error("malformed address")]
    BadNameAddr,
    /// A Via value does not parse.
    #[error("malformed Via")]
    BadVia,
}

impl ParseError {
    /// The response a server sends for a REQUEST that failed with this error:
    /// `(505, ..)` for an unsupported version, `(400, reason naming the
    /// fault)` otherwise, `None` where nothing should be sent (there is no
    /// request to answer, or the stream framing is lost).
    ///
    /// Failed responses are always dropped silently; callers only use this for
    /// requests (see [`crate::msg::parse_request_for_error_response`]).
    pub fn status(&self) -> Option<(u16, &'static str)> {
        let reason = match self {
            Self::Empty => return None,
            Self::VersionNotSupported { .. } => return Some((505, "Version Not Supported")),
            Self::Unterminated => "Bad Request (Unterminated Header Section)",
            Self::NotUtf8 => "Bad Request (Invalid UTF-8)",
            Self::BareLineBreak => "Bad Request (Bare CR or LF)",
            Self::BadStartLine => "Bad Request (Malformed Request-Line)",
            Self::BadMethod => "Bad Request (Malformed Method)",
            Self::BadRequestUri => "Bad Request (Malformed Request-URI)",
            Self::BadVersion => "Bad Request (Malformed SIP-Version)",
            Self::BadStatus => "Bad Request (Malformed Status-Code)",
            Self::BadHeaderLine { .. } => "Bad Request (Malformed Header Line)",
            Self::MissingHeader { name } => missing_reason(name),
            Self::RepeatedHeader { name } => repeated_reason(name),
            Self::BadHeaderValue { name } | Self::ValueOutOfRange { name } => bad_reason(name),
            Self::CSeqMethodMismatch => "Bad Request (CSeq Method Mismatch)",
            Self::BodyTooShort { .. } => "Bad Request (Content-Length Exceeds Body)",
            Self::MissingContentLength => "Bad Request (Missing Content-Length)",
            Self::TooLarge { .. } => "Message Too Large",
            Self::BadUri => "Bad Request (Malformed URI)",
            Self::BadNameAddr => "Bad Request (Malformed Address)",
            Self::BadVia => "Bad Request (Malformed Via)",
        };
        if matches!(self, Self::TooLarge { .. }) {
            return Some((513, reason));
        }
        Some((400, reason))
    }
}

macro_rules! reason_table {
    ($fn_name:ident, $prefix:literal, $fallback:literal) => {
        fn $fn_name(name: &str) -> &'static str {
            match name {
                "Via" => concat!("Bad Request (", $prefix, " Via)"),
                "From" => concat!("Bad Request (", $prefix, " From)"),
                "To" => concat!("Bad Request (", $prefix, " To)"),
                "Call-ID" => concat!("Bad Request (", $prefix, " Call-ID)"),
                "CSeq" => concat!("Bad Request (", $prefix, " CSeq)"),
                "Max-Forwards" => concat!("Bad Request (", $prefix, " Max-Forwards)"),
                "Content-Length" => concat!("Bad Request (", $prefix, " Content-Length)"),
                "Content-Type" => concat!("Bad Request (", $prefix, " Content-Type)"),
                "Contact" => concat!("Bad Request (", $prefix, " Contact)"),
                "Route" => concat!("Bad Request (", $prefix, " Route)"),
                "Record-Route" => concat!("Bad Request (", $prefix, " Record-Route)"),
                "Expires" => concat!("Bad Request (", $prefix, " Expires)"),
                "Date" => concat!("Bad Request (", $prefix, " Date)"),
                _ => $fallback,
            }
        }
    };
}
reason_table!(missing_reason, "Missing", "Bad Request (Missing Header)");
reason_table!(repeated_reason, "Repeated", "Bad Request (Repeated Header)");
reason_table!(bad_reason, "Malformed", "Bad Request (Malformed Header)");
