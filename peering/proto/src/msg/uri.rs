//! URIs: `sip:`/`sips:` (RFC 3261 §19.1, §25.1, IPv6 per RFC 5118), `tel:`
//! (RFC 3966) and any other absolute URI passed through.
//!
//! ```text
//! SIP-URI  = "sip:" [ userinfo ] hostport uri-parameters [ headers ]
//! SIPS-URI = "sips:" [ userinfo ] hostport uri-parameters [ headers ]
//! userinfo = ( user / telephone-subscriber ) [ ":" password ] "@"
//! hostport = host [ ":" port ]
//! host     = hostname / IPv4address / IPv6reference
//! uri-parameters = *( ";" uri-parameter )
//! headers  = "?" header *( "&" header )
//! ```

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use super::lex::{CLASS, HNV, PARAM, PASSWORD, USER, all, eq_ic, escapes_ok, unescape};
use crate::error::ParseError;

/// `sip` or `sips`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// `sip:`
    Sip,
    /// `sips:`
    Sips,
}

impl Scheme {
    /// The scheme name in lower case.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Sip => "sip",
            Self::Sips => "sips",
        }
    }
}

/// A host: domain name, IPv4 address or IPv6 reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// A host name, as received.
    Domain(String),
    /// An IPv4 address.
    V4(Ipv4Addr),
    /// An IPv6 address (written in brackets).
    V6(Ipv6Addr),
}

impl Host {
    /// Parses `hostname / IPv4address / IPv6reference` (the whole string).
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        if let Some(inner) = s.strip_prefix('[') {
            let inner = inner.strip_suffix(']').ok_or(ParseError::BadUri)?;
            return inner.parse().map(Self::V6).map_err(|_| ParseError::BadUri);
        }
        if s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            return s.parse().map(Self::V4).map_err(|_| ParseError::BadUri);
        }
        if is_hostname(s) {
            Ok(Self::Domain(s.to_owned()))
        } else {
            Err(ParseError::BadUri)
        }
    }

    /// Builds a host that [`scan_sip`] or `scan_via` already validated:
    /// only the kind is decided here.
    pub(crate) fn from_checked(s: &str) -> Result<Self, ParseError> {
        if let Some(inner) = s.strip_prefix('[').and_then(|v| v.strip_suffix(']')) {
            return inner.parse().map(Self::V6).map_err(|_| ParseError::BadUri);
        }
        if let Ok(v4) = s.parse() {
            return Ok(Self::V4(v4));
        }
        Ok(Self::Domain(s.to_owned()))
    }

    /// Whether `s` is a host [`Host::parse`] accepts (no allocation).
    pub fn is_valid(s: &str) -> bool {
        validate_host(s).is_ok()
    }

    /// Case-insensitive comparison for names, exact for addresses.
    pub fn equivalent(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Domain(a), Self::Domain(b)) => {
                eq_ic(a.trim_end_matches('.'), b.trim_end_matches('.'))
            }
            _ => self == other,
        }
    }
}

/// `hostname = *( domainlabel "." ) toplabel [ "." ]`
fn is_hostname(s: &str) -> bool {
    let b = s.as_bytes();
    let b = b.strip_suffix(b".").unwrap_or(b);
    if b.is_empty() || b.len() > 255 {
        return false;
    }
    // Labels of alphanum and '-', non-empty, no '-' at either end; the top
    // label starts with a letter.
    let mut label_start = 0;
    let mut prev = b'.';
    for (i, &c) in b.iter().enumerate() {
        if c == b'.' {
            if prev == b'.' || prev == b'-' {
                return false;
            }
            label_start = i + 1;
        } else if c == b'-' {
            if prev == b'.' {
                return false;
            }
        } else if !c.is_ascii_alphanumeric() {
            return false;
        }
        prev = c;
    }
    prev != b'-' && prev != b'.' && b.get(label_start).is_some_and(u8::is_ascii_alphabetic)
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Domain(d) => f.write_str(d),
            Self::V4(a) => {
                // Dotted quad into one buffer, written at once.
                let mut buf = [0u8; 15];
                let mut n = 0;
                for (k, o) in a.octets().into_iter().enumerate() {
                    if k > 0 {
                        buf[n] = b'.';
                        n += 1;
                    }
                    if o >= 100 {
                        buf[n] = b'0' + o / 100;
                        n += 1;
                    }
                    if o >= 10 {
                        buf[n] = b'0' + o / 10 % 10;
                        n += 1;
                    }
                    buf[n] = b'0' + o % 10;
                    n += 1;
                }
                f.write_str(std::str::from_utf8(&buf[..n]).unwrap_or_default())
            }
            Self::V6(a) => write!(f, "[{a}]"),
        }
    }
}

impl FromStr for Host {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, ParseError> {
        Self::parse(s)
    }
}

/// Parameters as `(name, value)` pairs, names and values as received (still escaped).
pub type Params = Vec<(String, Option<String>)>;

/// Looks up a parameter by case-insensitive name.
pub(crate) fn find_param<'a>(params: &'a Params, name: &str) -> Option<Option<&'a str>> {
    params
        .iter()
        .find(|(n, _)| eq_ic(n, name))
        .map(|(_, v)| v.as_deref())
}

pub(crate) fn write_params(f: &mut fmt::Formatter<'_>, params: &Params) -> fmt::Result {
    for (n, v) in params {
        f.write_str(";")?;
        f.write_str(n)?;
        if let Some(v) = v {
            f.write_str("=")?;
            f.write_str(v)?;
        }
    }
    Ok(())
}

/// A `sip:` or `sips:` URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipUri {
    /// `sip` or `sips`.
    pub scheme: Scheme,
    /// The user part, still %-escaped as received.
    pub user: Option<String>,
    /// The password, still %-escaped as received.
    pub password: Option<String>,
    /// The host.
    pub host: Host,
    /// The port, when given.
    pub port: Option<u16>,
    /// URI parameters, in order, as received.
    pub params: Params,
    /// URI headers (`?name=value&...`), as received.
    pub headers: Vec<(String, String)>,
}

impl SipUri {
    /// A URI `sip:host` with nothing else.
    pub fn new(scheme: Scheme, host: Host) -> Self {
        Self {
            scheme,
            user: None,
            password: None,
            host,
            port: None,
            params: Vec::new(),
            headers: Vec::new(),
        }
    }

    /// Parses the part after `sip:` / `sips:`.
    fn parse_rest(scheme: Scheme, s: &str) -> Result<Self, ParseError> {
        let p = scan_sip(s)?;
        let params = p
            .params
            .split(';')
            .skip(1)
            .map(|kv| match kv.split_once('=') {
                Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
                None => (kv.to_owned(), None),
            })
            .collect();
        let headers = p
            .headers
            .map(|h| {
                h.split('&')
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(n, v)| (n.to_owned(), v.to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self {
            scheme,
            user: p.user.map(str::to_owned),
            password: p.password.map(str::to_owned),
            host: Host::from_checked(p.host)?,
            port: p.port,
            params,
            headers,
        })
    }

    /// A URI parameter by case-insensitive name: `Some(None)` for a flag.
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        find_param(&self.params, name)
    }

    /// The `transport` parameter.
    pub fn transport(&self) -> Option<&str> {
        self.param("transport").flatten()
    }

    /// Whether the `lr` parameter is present (loose routing, RFC 3261 §16.4).
    pub fn is_lr(&self) -> bool {
        self.param("lr").is_some()
    }

    /// The `maddr` parameter.
    pub fn maddr(&self) -> Option<&str> {
        self.param("maddr").flatten()
    }

    /// The `user` parameter (`phone`, `ip`, ...).
    pub fn user_param(&self) -> Option<&str> {
        self.param("user").flatten()
    }

    /// The user part with %-escapes decoded (may contain any octet, even NUL).
    pub fn user_unescaped(&self) -> Option<Vec<u8>> {
        self.user.as_deref().map(unescape)
    }

    /// Sets or replaces a parameter.
    pub fn set_param(&mut self, name: &str, value: Option<&str>) {
        let value = value.map(str::to_owned);
        match self.params.iter_mut().find(|(n, _)| eq_ic(n, name)) {
            Some(p) => p.1 = value,
            None => self.params.push((name.to_owned(), value)),
        }
    }

    /// Removes a parameter (all occurrences).
    pub fn remove_param(&mut self, name: &str) {
        self.params.retain(|(n, _)| !eq_ic(n, name));
    }

    /// URI comparison of RFC 3261 §19.1.4.
    pub fn equivalent(&self, other: &Self) -> bool {
        if self.scheme != other.scheme
            || self.user.as_deref().map(unescape) != other.user.as_deref().map(unescape)
            || self.password.as_deref().map(unescape) != other.password.as_deref().map(unescape)
            || !self.host.equivalent(&other.host)
            || self.port != other.port
        {
            return false;
        }
        let value_eq = |a: Option<&str>, b: Option<&str>| match (a, b) {
            (Some(a), Some(b)) => unescape(a).eq_ignore_ascii_case(&unescape(b)),
            (None, None) => true,
            _ => false,
        };
        for special in ["user", "ttl", "method", "maddr", "transport"] {
            match (self.param(special), other.param(special)) {
                (None, None) => {}
                (Some(a), Some(b)) if value_eq(a, b) => {}
                _ => return false,
            }
        }
        for (n, v) in &self.params {
            if let Some(ov) = other.param(n)
                && !value_eq(v.as_deref(), ov)
            {
                return false;
            }
        }
        if self.headers.len() != other.headers.len() {
            return false;
        }
        self.headers.iter().all(|(n, v)| {
            other.headers.iter().any(|(on, ov)| {
                unescape(n).eq_ignore_ascii_case(&unescape(on)) && unescape(v) == unescape(ov)
            })
        })
    }
}

/// The validated parts of a SIP URI, borrowed from the input.
pub(crate) struct SipParts<'a> {
    pub(crate) user: Option<&'a str>,
    pub(crate) password: Option<&'a str>,
    pub(crate) host: &'a str,
    pub(crate) port: Option<u16>,
    /// `*( ";" uri-parameter )`, starting with `;` (or empty).
    pub(crate) params: &'a str,
    /// After `?`, when present.
    pub(crate) headers: Option<&'a str>,
}

/// Kinds of host characters, looked up in [`HOST_KIND`] (0: not a host character).
const H_ALPHA: u8 = 1;
const H_DIGIT: u8 = 2;
const H_DASH: u8 = 4;
const H_DOT: u8 = 8;
const H_ALNUM: u8 = H_ALPHA | H_DIGIT;
/// Inside a label: alphanum or `-`.
const H_LABEL: u8 = 16;

const fn build_host_kind() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = if b.is_ascii_alphabetic() {
            H_ALPHA | H_LABEL
        } else if b.is_ascii_digit() {
            H_DIGIT | H_LABEL
        } else if b == b'-' {
            H_DASH | H_LABEL
        } else if b == b'.' {
            H_DOT
        } else {
            0
        };
        c += 1;
    }
    t
}

static HOST_KIND: [u8; 256] = build_host_kind();

#[inline]
fn host_kind(b: &[u8], i: usize) -> u8 {
    b.get(i).map_or(0, |c| HOST_KIND[*c as usize])
}

/// Classes of the SIP URI components, with a bit of its own for `%` so
/// that escapes are checked only when one was seen.
const U_USER: u8 = 1;
const U_PASSWORD: u8 = 2;
const U_PARAM: u8 = 4;
const U_HNV: u8 = 8;
const U_PCT: u8 = 16;

static URI_CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        let k = CLASS[c];
        let mut v = 0;
        if k & USER != 0 {
            v |= U_USER;
        }
        if k & PASSWORD != 0 {
            v |= U_PASSWORD;
        }
        if k & PARAM != 0 {
            v |= U_PARAM;
        }
        if k & HNV != 0 {
            v |= U_HNV;
        }
        if c == b'%' as usize {
            v |= U_PCT;
        }
        t[c] = v;
        c += 1;
    }
    t
};

/// Skips the characters of class `mask` (one bit) from `i`, noting the
/// classes seen; four at a time while it can.
#[inline]
fn skip_uri(b: &[u8], mut i: usize, mask: u8, seen: &mut u8) -> usize {
    while let Some(w) = b.get(i..i + 4) {
        let k = [
            URI_CLASS[w[0] as usize],
            URI_CLASS[w[1] as usize],
            URI_CLASS[w[2] as usize],
            URI_CLASS[w[3] as usize],
        ];
        if k[0] & k[1] & k[2] & k[3] & mask == 0 {
            break;
        }
        *seen |= k[0] | k[1] | k[2] | k[3];
        i += 4;
    }
    while let Some(c) = b.get(i) {
        let k = URI_CLASS[*c as usize];
        if k & mask == 0 {
            break;
        }
        *seen |= k;
        i += 1;
    }
    i
}

/// Scans `hostname / IPv4address` from `hs` and returns where it ends, or
/// `None` when the text there is neither.
///
/// Label by label: a label starts with alphanum, holds alphanum and `-`
/// and does not end with `-`; labels are separated by single dots and one
/// trailing dot is allowed. When only digits and dots were seen the text
/// must be an IPv4 address; otherwise the top label must start with a
/// letter and the name be at most 256 octets.
#[inline(always)]
pub(crate) fn scan_hostname(s: &str, hs: usize) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = hs;
    let mut top = 0u8;
    let mut ok = true;
    loop {
        let k = host_kind(b, i);
        if k & H_ALNUM == 0 {
            // An empty label: the end after a trailing dot, or a fault
            // ("", ".", "..", ".-", leading "-").
            ok &= i > hs && k & (H_DOT | H_DASH) == 0;
            break;
        }
        top = k & H_ALNUM;
        // Octet by octet (labels are short); the octet after the label
        // tells whether a dot follows.
        i += 1;
        let next = loop {
            let n = host_kind(b, i);
            if n & H_LABEL == 0 {
                break n;
            }
            i += 1;
        };
        if b[i - 1] == b'-' {
            ok = false;
            break;
        }
        if next & H_DOT == 0 {
            break;
        }
        i += 1;
    }
    match top {
        // A name: its top label starts with a letter.
        H_ALPHA => (ok && i - hs <= 256).then_some(i),
        // Only an IPv4 address may have a top label starting with a digit
        // (a name with a letter elsewhere is refused there too).
        H_DIGIT => (ok && is_ipv4(&b[hs..i])).then_some(i),
        _ => None,
    }
}

/// Whether `b` is an IPv4 address as [`Ipv4Addr`]'s parser accepts it:
/// four decimal octets of one to three digits, at most 255, without leading
/// zeros, separated by dots (no allocation, no parser state).
pub(crate) fn is_ipv4(b: &[u8]) -> bool {
    let mut parts = 0;
    let mut i = 0;
    loop {
        let st = i;
        let mut v = 0u32;
        while i < b.len() && i - st < 4 && b[i].is_ascii_digit() {
            v = v * 10 + u32::from(b[i] - b'0');
            i += 1;
        }
        let len = i - st;
        if len == 0 || len > 3 || v > 255 || (len > 1 && b[st] == b'0') {
            return false;
        }
        parts += 1;
        if parts == 4 {
            return i == b.len();
        }
        if b.get(i) != Some(&b'.') {
            return false;
        }
        i += 1;
    }
}

/// Validates the part after `sip:` without allocating, in one pass over
/// each component with table lookups.
pub(crate) fn scan_sip(s: &str) -> Result<SipParts<'_>, ParseError> {
    let (parts, end) = scan_sip_prefix(s, memchr::memchr(b'@', s.as_bytes()))?;
    if end != s.len() {
        return Err(ParseError::BadUri);
    }
    Ok(parts)
}

/// Checks the URI between `<` and `>` that starts `rest`: returns its
/// length (where the first `>` is) when [`Uri::validate`] accepts it.
///
/// A SIP URI is scanned up to where its grammar stops, which must be that
/// `>` (no URI component holds a `>`): one search for `@` or `>` instead of
/// a search for `>` and another for `@`.
pub(crate) fn validate_in_angle(rest: &str) -> Option<usize> {
    let Some(after) = strip_sip_scheme(rest) else {
        let g = memchr::memchr(b'>', rest.as_bytes())?;
        return Uri::validate(&rest[..g]).is_ok().then_some(g);
    };
    let off = rest.len() - after.len();
    let ab = after.as_bytes();
    let hit = memchr::memchr2(b'@', b'>', ab)?;
    if ab[hit] == b'@' {
        // The '@' comes before the first '>', so it is the URI's.
        let (_, end) = scan_sip_prefix(after, Some(hit)).ok()?;
        (ab.get(end) == Some(&b'>')).then_some(off + end)
    } else {
        let (_, end) = scan_sip_prefix(&after[..hit], None).ok()?;
        (end == hit).then_some(off + hit)
    }
}

/// Scans a SIP URI (the part after `sip:`) from the start of `s` as far as
/// its grammar goes and returns its parts and where it stopped. `at` is
/// the first '@' of the URI, if any: when there is one it must end a valid
/// userinfo (no later component may hold an '@').
#[inline(always)]
fn scan_sip_prefix(s: &str, at: Option<usize>) -> Result<(SipParts<'_>, usize), ParseError> {
    let b = s.as_bytes();
    let bad = ParseError::BadUri;
    let mut seen = 0u8;

    // userinfo: user characters, then optionally ':' and password
    // characters, up to the '@'.
    let (user, password, mut i) = match at {
        Some(at) => {
            let user_end = skip_uri(&b[..at], 0, U_USER, &mut seen);
            if user_end == 0 {
                return Err(bad);
            }
            let password = if user_end < at {
                if b[user_end] != b':'
                    || skip_uri(&b[..at], user_end + 1, U_PASSWORD, &mut seen) != at
                {
                    return Err(bad);
                }
                Some(&s[user_end + 1..at])
            } else {
                None
            };
            (Some(&s[..user_end]), password, at + 1)
        }
        None => (None, None, 0),
    };

    // host
    let hs = i;
    if b.get(i) == Some(&b'[') {
        i += memchr::memchr(b']', &b[i..]).ok_or(ParseError::BadUri)? + 1;
        s[hs + 1..i - 1]
            .parse::<Ipv6Addr>()
            .map_err(|_| ParseError::BadUri)?;
    } else {
        i = scan_hostname(s, hs).ok_or(ParseError::BadUri)?;
    }
    let host = &s[hs..i];

    // port
    let mut port = None;
    if b.get(i) == Some(&b':') {
        let ps = i + 1;
        i = ps;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        port = Some(parse_port(&s[ps..i]).ok_or(ParseError::BadUri)?);
    }

    // uri-parameters: ";" pname [ "=" pvalue ], both 1*paramchar.
    let params_start = i;
    while b.get(i) == Some(&b';') {
        let ns = i + 1;
        i = skip_uri(b, ns, U_PARAM, &mut seen);
        if i == ns {
            return Err(bad);
        }
        if b.get(i) == Some(&b'=') {
            let vs = i + 1;
            i = skip_uri(b, vs, U_PARAM, &mut seen);
            if i == vs {
                return Err(bad);
            }
        }
    }
    let params = &s[params_start..i];

    // headers: "?" hname "=" hvalue *( "&" hname "=" hvalue )
    let mut headers = None;
    if b.get(i) == Some(&b'?') {
        let hs = i + 1;
        loop {
            let ns = i + 1;
            i = skip_uri(b, ns, U_HNV, &mut seen);
            if i == ns || b.get(i) != Some(&b'=') {
                return Err(bad);
            }
            i = skip_uri(b, i + 1, U_HNV, &mut seen);
            if b.get(i) != Some(&b'&') {
                break;
            }
        }
        headers = Some(&s[hs..i]);
    }
    // '%' may only appear in userinfo, parameters and headers; each must
    // start an escape (the octet after each component is a delimiter, never
    // a hex digit, so checking all of them at once is the same as checking
    // each).
    if seen & U_PCT != 0 && !escapes_ok(&b[..i]) {
        return Err(bad);
    }
    Ok((
        SipParts {
            user,
            password,
            host,
            port,
            params,
            headers,
        },
        i,
    ))
}

/// The part after `sip:` or `sips:` (scheme in any case), found without a
/// search for the colon.
#[inline]
fn strip_sip_scheme(s: &str) -> Option<&str> {
    let b = s.as_bytes();
    if b.len() < 4 || !b[..3].eq_ignore_ascii_case(b"sip") {
        return None;
    }
    match b[3] {
        b':' => s.get(4..),
        b's' | b'S' if b.get(4) == Some(&b':') => s.get(5..),
        _ => None,
    }
}

/// Validates a Request-URI: any URI, but a SIP URI without headers.
pub(crate) fn validate_request_uri(s: &str) -> Result<(), ParseError> {
    if let Some(rest) = strip_sip_scheme(s) {
        return match scan_sip(rest)?.headers {
            Some(_) => Err(ParseError::BadUri),
            None => Ok(()),
        };
    }
    let colon = memchr::memchr(b':', s.as_bytes()).ok_or(ParseError::BadUri)?;
    let scheme = &s[..colon];
    if eq_ic(scheme, "sip") || eq_ic(scheme, "sips") {
        match scan_sip(&s[colon + 1..])?.headers {
            Some(_) => Err(ParseError::BadUri),
            None => Ok(()),
        }
    } else {
        Uri::parse(s).map(|_| ())
    }
}

/// Validates a host without allocating.
fn validate_host(s: &str) -> Result<(), ParseError> {
    if let Some(inner) = s.strip_prefix('[') {
        let inner = inner.strip_suffix(']').ok_or(ParseError::BadUri)?;
        return inner
            .parse::<Ipv6Addr>()
            .map(|_| ())
            .map_err(|_| ParseError::BadUri);
    }
    if s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return if is_ipv4(s.as_bytes()) {
            Ok(())
        } else {
            Err(ParseError::BadUri)
        };
    }
    if is_hostname(s) {
        Ok(())
    } else {
        Err(ParseError::BadUri)
    }
}

pub(crate) fn parse_port(s: &str) -> Option<u16> {
    let b = s.as_bytes();
    if b.is_empty() || b.len() > 5 {
        return None;
    }
    let mut v = 0u32;
    for c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(c - b'0');
    }
    u16::try_from(v).ok()
}

impl fmt::Display for SipUri {
    // Pieces written directly: no format arguments on the proxy's path.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.scheme.as_str())?;
        f.write_str(":")?;
        if let Some(u) = &self.user {
            f.write_str(u)?;
            if let Some(p) = &self.password {
                f.write_str(":")?;
                f.write_str(p)?;
            }
            f.write_str("@")?;
        }
        self.host.fmt(f)?;
        if let Some(p) = self.port {
            f.write_str(":")?;
            f.write_str(itoa::Buffer::new().format(p))?;
        }
        write_params(f, &self.params)?;
        for (i, (n, v)) in self.headers.iter().enumerate() {
            f.write_str(if i == 0 { "?" } else { "&" })?;
            f.write_str(n)?;
            f.write_str("=")?;
            f.write_str(v)?;
        }
        Ok(())
    }
}

impl FromStr for SipUri {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, ParseError> {
        match Uri::parse(s)? {
            Uri::Sip(u) => Ok(u),
            _ => Err(ParseError::BadUri),
        }
    }
}

/// A `tel:` URI (RFC 3966).
///
/// ```text
/// telephone-uri = "tel:" telephone-subscriber
/// global-number = "+" 1*phonedigit *par      ; phonedigit = DIGIT / visual-separator
/// local-number  = 1*phonedigit-hex *par context *par
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelUri {
    /// The number as received (with `+` for global numbers, visual separators kept).
    pub number: String,
    /// Parameters, as received.
    pub params: Params,
}

impl TelUri {
    fn parse_rest(s: &str) -> Result<Self, ParseError> {
        let mut parts = s.split(';');
        let number = parts.next().unwrap_or_default();
        let digits = number.strip_prefix('+').unwrap_or(number);
        let global = digits.len() != number.len();
        let ok_char = |b: u8| {
            b.is_ascii_digit()
                || matches!(b, b'-' | b'.' | b'(' | b')')
                || (!global && (b.is_ascii_hexdigit() || b == b'*' || b == b'#'))
        };
        if digits.is_empty() || !digits.bytes().all(ok_char) {
            return Err(ParseError::BadUri);
        }
        let mut params = Vec::new();
        for p in parts {
            let (n, v) = match p.find('=') {
                Some(e) => (&p[..e], Some(&p[e + 1..])),
                None => (p, None),
            };
            if n.is_empty() || !n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                return Err(ParseError::BadUri);
            }
            if let Some(v) = v
                && (v.is_empty() || !all(v.as_bytes(), PARAM) || !escapes_ok(v.as_bytes()))
            {
                return Err(ParseError::BadUri);
            }
            params.push((n.to_owned(), v.map(str::to_owned)));
        }
        Ok(Self {
            number: number.to_owned(),
            params,
        })
    }

    /// A parameter by case-insensitive name.
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        find_param(&self.params, name)
    }

    /// The number without visual separators (`+` kept).
    pub fn digits(&self) -> String {
        self.number
            .chars()
            .filter(|c| !matches!(c, '-' | '.' | '(' | ')'))
            .collect()
    }

    /// RFC 3966 §4 comparison: numbers without separators, parameters as sets.
    pub fn equivalent(&self, other: &Self) -> bool {
        self.digits().eq_ignore_ascii_case(&other.digits())
            && self.params.len() == other.params.len()
            && self.params.iter().all(|(n, v)| {
                other.param(n).is_some_and(|ov| match (v.as_deref(), ov) {
                    (Some(a), Some(b)) => eq_ic(a, b),
                    (None, None) => true,
                    _ => false,
                })
            })
    }
}

impl fmt::Display for TelUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tel:{}", self.number)?;
        write_params(f, &self.params)
    }
}

/// Any URI the node may meet in a Request-URI or an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Uri {
    /// `sip:` / `sips:`.
    Sip(SipUri),
    /// `tel:`.
    Tel(TelUri),
    /// Any other absolute URI, kept as received.
    Other {
        /// The scheme, as received.
        scheme: String,
        /// Everything after the first `:`.
        rest: String,
    },
}

impl Uri {
    /// Parses an absolute URI. The whole string must be the URI (no LWS).
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let colon = memchr::memchr(b':', s.as_bytes()).ok_or(ParseError::BadUri)?;
        let scheme = &s[..colon];
        let rest = &s[colon + 1..];
        let sb = scheme.as_bytes();
        if sb.is_empty()
            || !sb[0].is_ascii_alphabetic()
            || !sb
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        {
            return Err(ParseError::BadUri);
        }
        if eq_ic(scheme, "sip") {
            SipUri::parse_rest(Scheme::Sip, rest).map(Self::Sip)
        } else if eq_ic(scheme, "sips") {
            SipUri::parse_rest(Scheme::Sips, rest).map(Self::Sip)
        } else if eq_ic(scheme, "tel") {
            TelUri::parse_rest(rest).map(Self::Tel)
        } else {
            // absoluteURI = scheme ":" ( hier-part / opaque-part ): any
            // visible characters except the delimiters of the SIP grammar.
            if rest.is_empty()
                || !rest
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && !matches!(b, b'<' | b'>' | b'"' | b'\\'))
            {
                return Err(ParseError::BadUri);
            }
            Ok(Self::Other {
                scheme: scheme.to_owned(),
                rest: rest.to_owned(),
            })
        }
    }

    /// Checks that `s` is a URI [`Uri::parse`] accepts, without building it.
    pub fn validate(s: &str) -> Result<(), ParseError> {
        if let Some(rest) = strip_sip_scheme(s) {
            return scan_sip(rest).map(|_| ());
        }
        let colon = memchr::memchr(b':', s.as_bytes()).ok_or(ParseError::BadUri)?;
        let scheme = &s[..colon];
        if eq_ic(scheme, "sip") || eq_ic(scheme, "sips") {
            scan_sip(&s[colon + 1..]).map(|_| ())
        } else {
            Self::parse(s).map(|_| ())
        }
    }

    /// The SIP URI, if this is one.
    pub fn as_sip(&self) -> Option<&SipUri> {
        match self {
            Self::Sip(u) => Some(u),
            _ => None,
        }
    }

    /// URI equality of RFC 3261 §19.1.4 (and RFC 3966 for `tel:`).
    pub fn equivalent(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Sip(a), Self::Sip(b)) => a.equivalent(b),
            (Self::Tel(a), Self::Tel(b)) => a.equivalent(b),
            (
                Self::Other {
                    scheme: a,
                    rest: ra,
                },
                Self::Other {
                    scheme: b,
                    rest: rb,
                },
            ) => eq_ic(a, b) && ra == rb,
            _ => false,
        }
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sip(u) => u.fmt(f),
            Self::Tel(u) => u.fmt(f),
            Self::Other { scheme, rest } => write!(f, "{scheme}:{rest}"),
        }
    }
}

impl FromStr for Uri {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, ParseError> {
        Self::parse(s)
    }
}

impl From<SipUri> for Uri {
    fn from(u: SipUri) -> Self {
        Self::Sip(u)
    }
}
