//! Typed header values: name-addr (From, To, Contact, Route, ...), Via, CSeq.

use std::fmt;
use std::str::FromStr;

use super::lex::{
    CLASS, LWS, TOKEN, is_lws, is_token_str, skip_lws, skip_quoted, skip_table, skip_token,
    trim_lws,
};
use super::method::Method;
use super::uri::{
    Host, Params, Uri, find_param, parse_port, scan_hostname, validate_in_angle, write_params,
};
use crate::error::ParseError;

/// Characters of an unquoted `gen-value` (token or host: token characters,
/// `:`, `[` and `]`).
static GEN_VALUE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        if CLASS[c] & TOKEN != 0 || matches!(c as u8, b':' | b'[' | b']') {
            t[c] = 1;
        }
        c += 1;
    }
    t
};

/// Parses `*( SEMI generic-param )` starting at `i` (LWS allowed around `;`
/// and `=`), up to the end of `s`.
///
/// ```text
/// generic-param = token [ EQUAL gen-value ]
/// gen-value     = token / host / quoted-string
/// ```
pub(crate) fn parse_params(s: &str, i: usize) -> Option<Params> {
    let mut params = Vec::new();
    scan_params(s, i, |n, v| {
        params.push((n.to_owned(), v.map(str::to_owned)));
        true
    })
    .then_some(params)
}

/// Walks `*( SEMI generic-param )` from `i` up to a `,` outside quotes or
/// the end of `s` (LWS allowed before either), handing each `(name, value)`
/// to `f` like [`scan_params`]; where it stopped, or `None` when the syntax
/// is wrong or `f` refuses a parameter.
pub(crate) fn scan_params_to_comma<'a>(
    s: &'a str,
    mut i: usize,
    mut f: impl FnMut(&'a str, Option<&'a str>) -> bool,
) -> Option<usize> {
    let b = s.as_bytes();
    loop {
        i = skip_lws(b, i);
        match b.get(i) {
            None | Some(b',') => return Some(i),
            Some(b';') => {}
            Some(_) => return None,
        }
        i = skip_lws(b, i + 1);
        let ns = i;
        i = skip_token(b, i);
        if i == ns {
            return None;
        }
        let name = &s[ns..i];
        let j = skip_lws(b, i);
        let value = if b.get(j) == Some(&b'=') {
            let vs = skip_lws(b, j + 1);
            let ve = if b.get(vs) == Some(&b'"') {
                skip_quoted(b, vs)?
            } else {
                skip_table(b, vs, &GEN_VALUE, 1)
            };
            if ve == vs {
                return None;
            }
            i = ve;
            Some(&s[vs..ve])
        } else {
            None
        };
        if !f(name, value) {
            return None;
        }
    }
}

/// Validates a list of addresses each written `<uri>` with parameters, in
/// one pass without splitting the list first. `None` when an element is
/// not of that form (then the general path decides); `Some(ok)` otherwise,
/// `ok` as [`validate_name_addr`] on every element would say.
pub(crate) fn validate_angle_list(v: &str) -> Option<bool> {
    let b = v.as_bytes();
    let mut i = skip_lws(b, 0);
    loop {
        if b.get(i) != Some(&b'<') {
            return None;
        }
        let Some(len) = validate_in_angle(&v[i + 1..]) else {
            return Some(false);
        };
        let Some(j) = scan_params_to_comma(v, i + 1 + len + 1, |n, v| {
            !n.eq_ignore_ascii_case("tag") || v.is_some_and(is_token_str)
        }) else {
            return Some(false);
        };
        if j == b.len() {
            return Some(true);
        }
        i = skip_lws(b, j + 1);
    }
}

/// Walks `*( SEMI generic-param )` from `i` to the end of `s` without
/// allocating, handing each `(name, value)` to `f`; false when the syntax is
/// wrong or `f` refuses a parameter.
pub(crate) fn scan_params<'a>(
    s: &'a str,
    i: usize,
    f: impl FnMut(&'a str, Option<&'a str>) -> bool,
) -> bool {
    // The same walk as up to a comma; a comma before the end is an error here.
    scan_params_to_comma(s, i, f) == Some(s.len())
}

/// An address: `name-addr` or `addr-spec`, with header parameters.
///
/// ```text
/// name-addr    = [ display-name ] LAQUOT addr-spec RAQUOT
/// display-name = *(token LWS) / quoted-string
/// from-spec    = ( name-addr / addr-spec ) *( SEMI from-param )
/// ```
///
/// `display` holds the display name without the surrounding quotes, with
/// backslash escapes kept as received, so that it re-serialises unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    /// The display name (quotes removed, escapes kept), if any.
    pub display: Option<String>,
    /// The URI.
    pub uri: Uri,
    /// Header parameters (`tag`, `expires`, `q`, ...), as received.
    pub params: Params,
}

impl NameAddr {
    /// An address `<uri>` without display name or parameters.
    pub fn new(uri: Uri) -> Self {
        Self {
            display: None,
            uri,
            params: Vec::new(),
        }
    }

    /// Parses one address (one element of a list).
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        parse_name_addr(trim_lws(s)).ok_or(ParseError::BadNameAddr)
    }

    /// The `tag` parameter.
    pub fn tag(&self) -> Option<&str> {
        self.param("tag").flatten()
    }

    /// A header parameter by case-insensitive name.
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        find_param(&self.params, name)
    }
}

/// The parts of a name-addr / addr-spec: display name (inside the quotes),
/// URI text, and where the header parameters start.
pub(crate) struct AddrParts<'a> {
    pub(crate) display: Option<&'a str>,
    pub(crate) uri: &'a str,
    pub(crate) params_at: usize,
}

/// Splits an address without allocating (the URI itself is not checked).
pub(crate) fn scan_name_addr(s: &str) -> Option<AddrParts<'_>> {
    match scan_addr_head(s)? {
        AddrHead::Spec(p) => Some(p),
        AddrHead::Angle { display, lt } => {
            let b = s.as_bytes();
            let gt = lt + 1 + memchr::memchr(b'>', &b[lt + 1..])?;
            Some(AddrParts {
                display,
                uri: &s[lt + 1..gt],
                params_at: gt + 1,
            })
        }
    }
}

/// An address up to its URI: a name-addr's display name and `<`, or a
/// whole addr-spec.
enum AddrHead<'a> {
    Angle { display: Option<&'a str>, lt: usize },
    Spec(AddrParts<'a>),
}

fn scan_addr_head(s: &str) -> Option<AddrHead<'_>> {
    let b = s.as_bytes();
    let (display, lt) = if b.first() == Some(&b'"') {
        let end = skip_quoted(b, 0)?;
        let lt = skip_lws(b, end);
        if b.get(lt) != Some(&b'<') {
            return None;
        }
        (Some(&s[1..end - 1]), lt)
    } else {
        // *(token LWS) followed by '<', or an addr-spec.
        let mut i = 0;
        while i < b.len() && CLASS[b[i] as usize] & (TOKEN | LWS) != 0 {
            i += 1;
        }
        if b.get(i) == Some(&b'<') {
            let d = trim_lws(&s[..i]);
            (if d.is_empty() { None } else { Some(d) }, i)
        } else {
            // addr-spec: the URI ends at the first ';' or LWS and may not
            // contain ',', ';' or '?' (RFC 3261 §20.10).
            let end = b
                .iter()
                .position(|c| *c == b';' || is_lws(*c))
                .unwrap_or(b.len());
            let uri = &s[..end];
            if memchr::memchr2(b',', b'?', uri.as_bytes()).is_some() {
                return None;
            }
            return Some(AddrHead::Spec(AddrParts {
                display: None,
                uri,
                params_at: end,
            }));
        }
    };
    Some(AddrHead::Angle { display, lt })
}

/// Validates an address without allocating; `tag`, when present, must be a token.
pub(crate) fn validate_name_addr(s: &str) -> bool {
    scan_tagged_addr(s).is_some()
}

/// Validates an address like [`validate_name_addr`] and returns its first
/// `tag` parameter's value (`Some(None)` for a valid address without one).
pub(crate) fn scan_tagged_addr(s: &str) -> Option<Option<&str>> {
    let s = trim_lws(s);
    let params_at = match scan_addr_head(s)? {
        AddrHead::Spec(p) => {
            if Uri::validate(p.uri).is_err() {
                return None;
            }
            p.params_at
        }
        // The URI is scanned up to its '>' without searching for it first.
        AddrHead::Angle { lt, .. } => lt + 1 + validate_in_angle(&s[lt + 1..])? + 1,
    };
    let mut tag = None;
    scan_params(s, params_at, |n, v| {
        if !n.eq_ignore_ascii_case("tag") {
            return true;
        }
        if tag.is_none() {
            tag = v;
        }
        v.is_some_and(is_token_str)
    })
    .then_some(tag)
}

fn parse_name_addr(s: &str) -> Option<NameAddr> {
    let p = scan_name_addr(s)?;
    Some(NameAddr {
        display: p.display.map(str::to_owned),
        uri: Uri::parse(p.uri).ok()?,
        params: parse_params(s, p.params_at)?,
    })
}

impl fmt::Display for NameAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(d) = &self.display {
            write!(f, "\"{d}\" ")?;
        }
        write!(f, "<{}>", self.uri)?;
        write_params(f, &self.params)
    }
}

impl FromStr for NameAddr {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, ParseError> {
        Self::parse(s)
    }
}

/// One Via value.
///
/// ```text
/// via-parm      = sent-protocol LWS sent-by *( SEMI via-params )
/// sent-protocol = protocol-name SLASH protocol-version SLASH transport
/// sent-by       = host [ COLON port ]
/// ```
///
/// Only `SIP/2.0` is accepted as protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    /// The transport token as received (`UDP`, `TCP`, `TLS`, `SCTP`, ...).
    pub transport: String,
    /// sent-by host.
    pub host: Host,
    /// sent-by port.
    pub port: Option<u16>,
    /// Parameters, as received.
    pub params: Params,
}

/// The branch prefix of RFC 3261 §8.1.1.7.
pub const MAGIC_COOKIE: &str = "z9hG4bK";

impl Via {
    /// Parses one Via value (one element of the list).
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        parse_via(trim_lws(s)).ok_or(ParseError::BadVia)
    }

    /// A parameter by case-insensitive name.
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        find_param(&self.params, name)
    }

    /// The `branch` parameter.
    pub fn branch(&self) -> Option<&str> {
        self.param("branch").flatten()
    }

    /// Whether the branch carries the RFC 3261 magic cookie (and more than it).
    pub fn is_rfc3261_branch(&self) -> bool {
        self.branch()
            .is_some_and(|b| b.len() > MAGIC_COOKIE.len() && b.starts_with(MAGIC_COOKIE))
    }

    /// The `received` parameter.
    pub fn received(&self) -> Option<&str> {
        self.param("received").flatten()
    }

    /// The `rport` parameter (RFC 3581): `Some(None)` when present without value.
    pub fn rport(&self) -> Option<Option<u16>> {
        self.param("rport").map(|v| v.and_then(parse_port))
    }

    /// `(host, port)` of sent-by.
    pub fn sent_by(&self) -> (Host, Option<u16>) {
        (self.host.clone(), self.port)
    }

    /// Sets or replaces a parameter.
    pub fn set_param(&mut self, name: &str, value: Option<&str>) {
        let value = value.map(str::to_owned);
        match self
            .params
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            Some(p) => p.1 = value,
            None => self.params.push((name.to_owned(), value)),
        }
    }
}

/// The parts of one Via value, borrowed.
pub(crate) struct ViaParts<'a> {
    transport: &'a str,
    /// The sent-by host as written (brackets of an IPv6 reference kept).
    pub(crate) host: &'a str,
    pub(crate) port: Option<u16>,
    pub(crate) params_at: usize,
    /// The value of the first `branch` parameter.
    pub(crate) branch: Option<&'a str>,
    /// Whether an `rport` parameter is present (RFC 3581).
    pub(crate) rport: bool,
}

/// Validates one Via value without allocating.
pub(crate) fn scan_via(s: &str) -> Option<ViaParts<'_>> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut parts = [(0, 0); 3];
    if b.len() > 8 && b[..4].eq_ignore_ascii_case(b"SIP/") && &b[4..8] == b"2.0/" {
        // The usual spelling: only the transport is left to scan (the
        // general loop below finds the same parts).
        let st = skip_lws(b, 8);
        i = skip_token(b, st);
        if i == st {
            return None;
        }
        parts = [(0, 3), (4, 7), (st, i)];
    } else {
        for (k, part) in parts.iter_mut().enumerate() {
            if k > 0 {
                i = skip_lws(b, i);
                if b.get(i) != Some(&b'/') {
                    return None;
                }
                i = skip_lws(b, i + 1);
            }
            let st = i;
            i = skip_token(b, i);
            if i == st {
                return None;
            }
            *part = (st, i);
        }
    }
    if !s[parts[0].0..parts[0].1].eq_ignore_ascii_case("SIP") || &s[parts[1].0..parts[1].1] != "2.0"
    {
        return None;
    }
    let transport = &s[parts[2].0..parts[2].1];
    let hs = skip_lws(b, i);
    if hs == i {
        return None;
    }
    let (host, he) = if b.get(hs) == Some(&b'[') {
        let he = hs + memchr::memchr(b']', &b[hs..])? + 1;
        let host = &s[hs..he];
        if !Host::is_valid(host) {
            return None;
        }
        (host, he)
    } else {
        // What `Host::is_valid` accepts: a name of at most 255 octets
        // besides one trailing dot, or an IPv4 address.
        let he = scan_hostname(s, hs)?;
        let host = &s[hs..he];
        if host.len() - usize::from(host.ends_with('.')) > 255 {
            return None;
        }
        (host, he)
    };
    let mut i = he;
    let mut port = None;
    let j = skip_lws(b, i);
    if b.get(j) == Some(&b':') {
        let ps = skip_lws(b, j + 1);
        let mut pe = ps;
        while pe < b.len() && b[pe].is_ascii_digit() {
            pe += 1;
        }
        port = Some(parse_port(&s[ps..pe])?);
        i = pe;
    }
    let mut branch = None;
    let mut rport = false;
    let ok = scan_params(s, i, |n, v| {
        if n.eq_ignore_ascii_case("branch") {
            if branch.is_none() {
                branch = v;
            }
            v.is_some_and(is_token_str)
        } else if n.eq_ignore_ascii_case("received") {
            v.is_some_and(|v| {
                let v = v
                    .strip_prefix('[')
                    .and_then(|v| v.strip_suffix(']'))
                    .unwrap_or(v);
                v.parse::<std::net::IpAddr>().is_ok()
            })
        } else if n.eq_ignore_ascii_case("rport") {
            rport = true;
            v.is_none_or(|v| parse_port(v).is_some())
        } else if n.eq_ignore_ascii_case("ttl") {
            v.is_some_and(|v| v.len() <= 3 && v.parse::<u8>().is_ok())
        } else if n.eq_ignore_ascii_case("maddr") {
            v.is_some_and(Host::is_valid)
        } else {
            true
        }
    });
    ok.then_some(ViaParts {
        transport,
        host,
        port,
        params_at: i,
        branch,
        rport,
    })
}

fn parse_via(s: &str) -> Option<Via> {
    let p = scan_via(s)?;
    Some(Via {
        transport: p.transport.to_owned(),
        host: Host::from_checked(p.host).ok()?,
        port: p.port,
        params: parse_params(s, p.params_at)?,
    })
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SIP/2.0/{} {}", self.transport, self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        write_params(f, &self.params)
    }
}

impl FromStr for Via {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, ParseError> {
        Self::parse(s)
    }
}

/// CSeq: sequence number and method.
///
/// ```text
/// CSeq = "CSeq" HCOLON 1*DIGIT LWS Method
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    /// Sequence number (< 2^31 in requests, RFC 3261 §8.1.1.5).
    pub seq: u32,
    /// Method.
    pub method: Method,
}

impl CSeq {
    /// Parses a CSeq value; numbers up to 2^32-1 are accepted here.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let s = trim_lws(s);
        let b = s.as_bytes();
        let de = b
            .iter()
            .position(|c| !c.is_ascii_digit())
            .unwrap_or(b.len());
        if de == 0 {
            return Err(ParseError::BadHeaderValue { name: "CSeq" });
        }
        let ms = skip_lws(b, de);
        if ms == de {
            return Err(ParseError::BadHeaderValue { name: "CSeq" });
        }
        let digits = s[..de].trim_start_matches('0');
        if digits.len() > 10 {
            return Err(ParseError::ValueOutOfRange { name: "CSeq" });
        }
        let seq = digits
            .bytes()
            .fold(0u64, |a, c| a * 10 + u64::from(c - b'0'));
        let seq = u32::try_from(seq).map_err(|_| ParseError::ValueOutOfRange { name: "CSeq" })?;
        let method = s[ms..]
            .parse()
            .map_err(|_| ParseError::BadHeaderValue { name: "CSeq" })?;
        Ok(Self { seq, method })
    }
}

impl fmt::Display for CSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.seq, self.method)
    }
}
