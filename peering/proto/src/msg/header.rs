//! Header field names (RFC 3261 §7.3, §20) with compact forms.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use super::lex::is_token_str;
use crate::error::ParseError;

macro_rules! header_names {
    ($( $(#[$doc:meta])* $variant:ident => $canon:literal, $lower:literal, list = $list:literal; )*) => {
        /// A header field name.
        ///
        /// Parsing is case-insensitive and maps the compact forms of RFC 3261
        /// §7.3.3 and the IANA registry (`v` Via, `f` From, `t` To, `i` Call-ID,
        /// `m` Contact, `l` Content-Length, `c` Content-Type, `e`
        /// Content-Encoding, `s` Subject, `k` Supported, `o` Event, `r`
        /// Refer-To, `b` Referred-By, `x` Session-Expires, `u` Allow-Events,
        /// `y` Identity, `n` Identity-Info, `a` Accept-Contact, `j`
        /// Reject-Contact, `d` Request-Disposition). Unknown names are kept as
        /// received in [`HeaderName::Other`], which compares case-insensitively.
        #[derive(Debug, Clone)]
        #[non_exhaustive]
        pub enum HeaderName {
            $( $(#[$doc])* $variant, )*
            /// Any other header, spelled as received. Build names with
            /// [`HeaderName::parse`]: an `Other` holding a known name (or a
            /// compact form) does not equal that name's variant.
            Other(String),
        }

        impl HeaderName {
            /// The canonical (long) name.
            pub fn as_str(&self) -> &str {
                match self {
                    $( Self::$variant => $canon, )*
                    Self::Other(s) => s,
                }
            }

            /// The canonical name for the known headers.
            pub(crate) fn static_name(&self) -> &'static str {
                match self {
                    $( Self::$variant => $canon, )*
                    Self::Other(_) => "extension",
                }
            }

            /// Whether the header's grammar is a comma-separated list, so that
            /// several values may share one field line (RFC 3261 §7.3.1).
            pub fn is_list(&self) -> bool {
                match self {
                    $( Self::$variant => $list, )*
                    Self::Other(_) => false,
                }
            }

            fn from_lower(lower: &[u8]) -> Option<Self> {
                Some(match lower {
                    $( $lower => Self::$variant, )*
                    b"v" => Self::Via,
                    b"f" => Self::From,
                    b"t" => Self::To,
                    b"i" => Self::CallId,
                    b"m" => Self::Contact,
                    b"l" => Self::ContentLength,
                    b"c" => Self::ContentType,
                    b"e" => Self::ContentEncoding,
                    b"s" => Self::Subject,
                    b"k" => Self::Supported,
                    b"o" => Self::Event,
                    b"r" => Self::ReferTo,
                    b"b" => Self::ReferredBy,
                    b"x" => Self::SessionExpires,
                    b"u" => Self::AllowEvents,
                    b"y" => Self::Identity,
                    b"n" => Self::IdentityInfo,
                    b"a" => Self::AcceptContact,
                    b"j" => Self::RejectContact,
                    b"d" => Self::RequestDisposition,
                    _ => return None,
                })
            }
        }
    };
}

header_names! {
    /// Via (list).
    Via => "Via", b"via", list = true;
    /// From.
    From => "From", b"from", list = false;
    /// To.
    To => "To", b"to", list = false;
    /// Call-ID.
    CallId => "Call-ID", b"call-id", list = false;
    /// CSeq.
    CSeq => "CSeq", b"cseq", list = false;
    /// Max-Forwards.
    MaxForwards => "Max-Forwards", b"max-forwards", list = false;
    /// Route (list).
    Route => "Route", b"route", list = true;
    /// Record-Route (list).
    RecordRoute => "Record-Route", b"record-route", list = true;
    /// Contact (list).
    Contact => "Contact", b"contact", list = true;
    /// Content-Length.
    ContentLength => "Content-Length", b"content-length", list = false;
    /// Content-Type.
    ContentType => "Content-Type", b"content-type", list = false;
    /// Content-Encoding (list).
    ContentEncoding => "Content-Encoding", b"content-encoding", list = true;
    /// Content-Disposition.
    ContentDisposition => "Content-Disposition", b"content-disposition", list = false;
    /// Proxy-Require (list).
    ProxyRequire => "Proxy-Require", b"proxy-require", list = true;
    /// Require (list).
    Require => "Require", b"require", list = true;
    /// Supported (list).
    Supported => "Supported", b"supported", list = true;
    /// Unsupported (list).
    Unsupported => "Unsupported", b"unsupported", list = true;
    /// Identity (RFC 4474 / RFC 8224).
    Identity => "Identity", b"identity", list = false;
    /// Identity-Info (RFC 4474).
    IdentityInfo => "Identity-Info", b"identity-info", list = false;
    /// Date.
    Date => "Date", b"date", list = false;
    /// P-Asserted-Identity (RFC 3325, list).
    PAssertedIdentity => "P-Asserted-Identity", b"p-asserted-identity", list = true;
    /// P-Preferred-Identity (RFC 3325, list).
    PPreferredIdentity => "P-Preferred-Identity", b"p-preferred-identity", list = true;
    /// Privacy (RFC 3323).
    Privacy => "Privacy", b"privacy", list = false;
    /// Reason (RFC 3326, list).
    Reason => "Reason", b"reason", list = true;
    /// Warning (list).
    Warning => "Warning", b"warning", list = true;
    /// Retry-After.
    RetryAfter => "Retry-After", b"retry-after", list = false;
    /// User-Agent.
    UserAgent => "User-Agent", b"user-agent", list = false;
    /// Server.
    Server => "Server", b"server", list = false;
    /// Allow (list).
    Allow => "Allow", b"allow", list = true;
    /// Allow-Events (list).
    AllowEvents => "Allow-Events", b"allow-events", list = true;
    /// Accept (list).
    Accept => "Accept", b"accept", list = true;
    /// Accept-Contact (RFC 3841, list).
    AcceptContact => "Accept-Contact", b"accept-contact", list = true;
    /// Reject-Contact (RFC 3841, list).
    RejectContact => "Reject-Contact", b"reject-contact", list = true;
    /// Request-Disposition (RFC 3841, list).
    RequestDisposition => "Request-Disposition", b"request-disposition", list = true;
    /// Expires.
    Expires => "Expires", b"expires", list = false;
    /// Subject.
    Subject => "Subject", b"subject", list = false;
    /// Event (RFC 6665).
    Event => "Event", b"event", list = false;
    /// Refer-To (RFC 3515).
    ReferTo => "Refer-To", b"refer-to", list = false;
    /// Referred-By (RFC 3892).
    ReferredBy => "Referred-By", b"referred-by", list = false;
    /// Session-Expires (RFC 4028).
    SessionExpires => "Session-Expires", b"session-expires", list = false;
    /// Authorization.
    Authorization => "Authorization", b"authorization", list = false;
    /// Proxy-Authorization.
    ProxyAuthorization => "Proxy-Authorization", b"proxy-authorization", list = false;
    /// WWW-Authenticate.
    WwwAuthenticate => "WWW-Authenticate", b"www-authenticate", list = false;
    /// Proxy-Authenticate.
    ProxyAuthenticate => "Proxy-Authenticate", b"proxy-authenticate", list = false;
    /// Min-Expires.
    MinExpires => "Min-Expires", b"min-expires", list = false;
    /// Timestamp.
    Timestamp => "Timestamp", b"timestamp", list = false;
    /// Path (RFC 3327, list).
    Path => "Path", b"path", list = true;
}

impl HeaderName {
    /// Parses a header name from its wire form (case-insensitive, compact forms mapped).
    pub fn parse(name: &str) -> Result<Self, ParseError> {
        if !is_token_str(name) {
            return Err(ParseError::BadHeaderLine { line: 0 });
        }
        Ok(Self::from_wire(name))
    }

    /// Maps a name already known to be a token.
    pub(crate) fn from_wire(name: &str) -> Self {
        Self::from_wire_bytes(name.as_bytes())
    }

    /// Maps a name already known to be a token (ASCII).
    pub(crate) fn from_wire_bytes(b: &[u8]) -> Self {
        let mut buf = [0u8; 24];
        if b.len() <= buf.len() {
            let lower = &mut buf[..b.len()];
            lower.copy_from_slice(b);
            lower.make_ascii_lowercase();
            if let Some(h) = Self::from_lower(lower) {
                return h;
            }
        }
        Self::Other(String::from_utf8_lossy(b).into_owned())
    }

    /// Whether the header may appear at most once (RFC 3261 §7.3.1).
    pub fn is_single(&self) -> bool {
        matches!(
            self,
            Self::From
                | Self::To
                | Self::CallId
                | Self::CSeq
                | Self::MaxForwards
                | Self::ContentLength
                | Self::ContentType
                | Self::Expires
        )
    }
}

impl PartialEq for HeaderName {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Other(a), Self::Other(b)) => a.eq_ignore_ascii_case(b),
            (Self::Other(_), _) | (_, Self::Other(_)) => false,
            _ => std::mem::discriminant(self) == std::mem::discriminant(other),
        }
    }
}

impl Eq for HeaderName {}

impl Hash for HeaderName {
    fn hash<H: Hasher>(&self, state: &mut H) {
        match self {
            Self::Other(s) => {
                for b in s.bytes() {
                    state.write_u8(b.to_ascii_lowercase());
                }
                state.write_u8(0xff);
            }
            _ => std::mem::discriminant(self).hash(state),
        }
    }
}

impl FromStr for HeaderName {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, ParseError> {
        Self::parse(s)
    }
}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
