//! Header field names (RFC 3261 §7.3, §20) with compact forms.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use super::lex::is_token_str;
use crate::error::ParseError;

macro_rules! header_names {
    ($( $(#[$doc:meta])* $variant:ident => $canon:literal, list = $list:literal; )*) => {
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

            /// Every named variant, for tests.
            #[cfg(test)]
            pub(crate) const ALL: &'static [Self] = &[$( Self::$variant, )*];
        }
    };
}

header_names! {
    /// Via (list).
    Via => "Via", list = true;
    /// From.
    From => "From", list = false;
    /// To.
    To => "To", list = false;
    /// Call-ID.
    CallId => "Call-ID", list = false;
    /// CSeq.
    CSeq => "CSeq", list = false;
    /// Max-Forwards.
    MaxForwards => "Max-Forwards", list = false;
    /// Route (list).
    Route => "Route", list = true;
    /// Record-Route (list).
    RecordRoute => "Record-Route", list = true;
    /// Contact (list).
    Contact => "Contact", list = true;
    /// Content-Length.
    ContentLength => "Content-Length", list = false;
    /// Content-Type.
    ContentType => "Content-Type", list = false;
    /// Content-Encoding (list).
    ContentEncoding => "Content-Encoding", list = true;
    /// Content-Disposition.
    ContentDisposition => "Content-Disposition", list = false;
    /// Proxy-Require (list).
    ProxyRequire => "Proxy-Require", list = true;
    /// Require (list).
    Require => "Require", list = true;
    /// Supported (list).
    Supported => "Supported", list = true;
    /// Unsupported (list).
    Unsupported => "Unsupported", list = true;
    /// Identity (RFC 4474 / RFC 8224).
    Identity => "Identity", list = false;
    /// Identity-Info (RFC 4474).
    IdentityInfo => "Identity-Info", list = false;
    /// Date.
    Date => "Date", list = false;
    /// P-Asserted-Identity (RFC 3325, list).
    PAssertedIdentity => "P-Asserted-Identity", list = true;
    /// P-Preferred-Identity (RFC 3325, list).
    PPreferredIdentity => "P-Preferred-Identity", list = true;
    /// Privacy (RFC 3323).
    Privacy => "Privacy", list = false;
    /// Reason (RFC 3326, list).
    Reason => "Reason", list = true;
    /// Warning (list).
    Warning => "Warning", list = true;
    /// Retry-After.
    RetryAfter => "Retry-After", list = false;
    /// User-Agent.
    UserAgent => "User-Agent", list = false;
    /// Server.
    Server => "Server", list = false;
    /// Allow (list).
    Allow => "Allow", list = true;
    /// Allow-Events (list).
    AllowEvents => "Allow-Events", list = true;
    /// Accept (list).
    Accept => "Accept", list = true;
    /// Accept-Contact (RFC 3841, list).
    AcceptContact => "Accept-Contact", list = true;
    /// Reject-Contact (RFC 3841, list).
    RejectContact => "Reject-Contact", list = true;
    /// Request-Disposition (RFC 3841, list).
    RequestDisposition => "Request-Disposition", list = true;
    /// Expires.
    Expires => "Expires", list = false;
    /// Subject.
    Subject => "Subject", list = false;
    /// Event (RFC 6665).
    Event => "Event", list = false;
    /// Refer-To (RFC 3515).
    ReferTo => "Refer-To", list = false;
    /// Referred-By (RFC 3892).
    ReferredBy => "Referred-By", list = false;
    /// Session-Expires (RFC 4028).
    SessionExpires => "Session-Expires", list = false;
    /// Authorization.
    Authorization => "Authorization", list = false;
    /// Proxy-Authorization.
    ProxyAuthorization => "Proxy-Authorization", list = false;
    /// WWW-Authenticate.
    WwwAuthenticate => "WWW-Authenticate", list = false;
    /// Proxy-Authenticate.
    ProxyAuthenticate => "Proxy-Authenticate", list = false;
    /// Min-Expires.
    MinExpires => "Min-Expires", list = false;
    /// Timestamp.
    Timestamp => "Timestamp", list = false;
    /// Path (RFC 3327, list).
    Path => "Path", list = true;
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
    ///
    /// Picks the one candidate by length and first letter, then compares
    /// case-insensitively: no lowercase copy and no chain of comparisons.
    #[inline(always)]
    pub(crate) fn from_wire_bytes(b: &[u8]) -> Self {
        let Some(&first) = b.first() else {
            return Self::Other(String::new());
        };
        let c = first.to_ascii_lowercase();
        if b.len() == 1
            && let Some(h) = Self::compact(c)
        {
            return h;
        }
        let (lower, h): (&[u8], Self) = match (b.len(), c) {
            (2, b't') => (b"to", Self::To),
            (3, b'v') => (b"via", Self::Via),
            (4, b'c') => (b"cseq", Self::CSeq),
            (4, b'd') => (b"date", Self::Date),
            (4, b'f') => (b"from", Self::From),
            (4, b'p') => (b"path", Self::Path),
            (5, b'a') => (b"allow", Self::Allow),
            (5, b'e') => (b"event", Self::Event),
            (5, b'r') => (b"route", Self::Route),
            (6, b'a') => (b"accept", Self::Accept),
            (6, b'r') => (b"reason", Self::Reason),
            (6, b's') => (b"server", Self::Server),
            (7, b'c') => match b[4].to_ascii_lowercase() {
                b'-' => (b"call-id", Self::CallId),
                _ => (b"contact", Self::Contact),
            },
            (7, b'e') => (b"expires", Self::Expires),
            (7, b'p') => (b"privacy", Self::Privacy),
            (7, b'r') => (b"require", Self::Require),
            (7, b's') => (b"subject", Self::Subject),
            (7, b'w') => (b"warning", Self::Warning),
            (8, b'i') => (b"identity", Self::Identity),
            (8, b'r') => (b"refer-to", Self::ReferTo),
            (9, b's') => (b"supported", Self::Supported),
            (9, b't') => (b"timestamp", Self::Timestamp),
            (10, b'u') => (b"user-agent", Self::UserAgent),
            (11, b'm') => (b"min-expires", Self::MinExpires),
            (11, b'r') => match b[2].to_ascii_lowercase() {
                b'f' => (b"referred-by", Self::ReferredBy),
                _ => (b"retry-after", Self::RetryAfter),
            },
            (11, b'u') => (b"unsupported", Self::Unsupported),
            (12, b'a') => (b"allow-events", Self::AllowEvents),
            (12, b'c') => (b"content-type", Self::ContentType),
            (12, b'm') => (b"max-forwards", Self::MaxForwards),
            (12, b'r') => (b"record-route", Self::RecordRoute),
            (13, b'a') => (b"authorization", Self::Authorization),
            (13, b'i') => (b"identity-info", Self::IdentityInfo),
            (13, b'p') => (b"proxy-require", Self::ProxyRequire),
            (14, b'a') => (b"accept-contact", Self::AcceptContact),
            (14, b'c') => (b"content-length", Self::ContentLength),
            (14, b'r') => (b"reject-contact", Self::RejectContact),
            (15, b's') => (b"session-expires", Self::SessionExpires),
            (16, b'c') => (b"content-encoding", Self::ContentEncoding),
            (16, b'w') => (b"www-authenticate", Self::WwwAuthenticate),
            (18, b'p') => (b"proxy-authenticate", Self::ProxyAuthenticate),
            (19, b'c') => (b"content-disposition", Self::ContentDisposition),
            (19, b'p') => match b[1] {
                b'-' => (b"p-asserted-identity", Self::PAssertedIdentity),
                _ => (b"proxy-authorization", Self::ProxyAuthorization),
            },
            (19, b'r') => (b"request-disposition", Self::RequestDisposition),
            (20, b'p') => (b"p-preferred-identity", Self::PPreferredIdentity),
            _ => (b"", Self::Other(String::new())),
        };
        if !matches!(h, Self::Other(_)) && eq_folded(b, lower) {
            return h;
        }
        Self::Other(String::from_utf8_lossy(b).into_owned())
    }

    /// The compact forms (RFC 3261 §7.3.3 and the IANA registry), by
    /// lowercase letter.
    fn compact(c: u8) -> Option<Self> {
        Some(match c {
            b'v' => Self::Via,
            b'f' => Self::From,
            b't' => Self::To,
            b'i' => Self::CallId,
            b'm' => Self::Contact,
            b'l' => Self::ContentLength,
            b'c' => Self::ContentType,
            b'e' => Self::ContentEncoding,
            b's' => Self::Subject,
            b'k' => Self::Supported,
            b'o' => Self::Event,
            b'r' => Self::ReferTo,
            b'b' => Self::ReferredBy,
            b'x' => Self::SessionExpires,
            b'u' => Self::AllowEvents,
            b'y' => Self::Identity,
            b'n' => Self::IdentityInfo,
            b'a' => Self::AcceptContact,
            b'j' => Self::RejectContact,
            b'd' => Self::RequestDisposition,
            _ => return None,
        })
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

/// Whether `b` equals `lower` (letters in lower case and `-`, same length)
/// ignoring ASCII case, compared a word at a time.
///
/// A letter position matches its letter in either case, a `-` position
/// only `-`: the case bit 0x20 is ORed in where `lower` has bit 0x40 set
/// (the letters), nowhere else.
#[inline(always)]
fn eq_folded(b: &[u8], lower: &[u8]) -> bool {
    fn w8(s: &[u8], i: usize) -> u64 {
        let mut t = [0u8; 8];
        t.copy_from_slice(&s[i..i + 8]);
        u64::from_le_bytes(t)
    }
    fn w4(s: &[u8], i: usize) -> u32 {
        let mut t = [0u8; 4];
        t.copy_from_slice(&s[i..i + 4]);
        u32::from_le_bytes(t)
    }
    let n = lower.len();
    if b.len() != n {
        return false;
    }
    if n >= 8 {
        let eq8 = |i: usize| {
            let l = w8(lower, i);
            w8(b, i) | ((l >> 1) & 0x2020_2020_2020_2020) == l
        };
        let mut i = 0;
        while i + 8 < n {
            if !eq8(i) {
                return false;
            }
            i += 8;
        }
        eq8(n - 8)
    } else if n >= 4 {
        let eq4 = |i: usize| {
            let l = w4(lower, i);
            w4(b, i) | ((l >> 1) & 0x2020_2020) == l
        };
        eq4(0) && eq4(n - 4)
    } else {
        b.iter()
            .zip(lower)
            .all(|(a, l)| a | ((l & 0x40) >> 1) == *l)
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
