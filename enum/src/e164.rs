//! The called party as an E.164 number, and its ENUM domain (RFC 6116 §2.4).
//!
//! Input comes from a `tel:` URI (RFC 3966) or from the user part of a
//! `sip:`/`sips:` URI that carries `user=phone` or starts with `+`
//! (RFC 3261 §19.1.1). Visual separators are dropped; number-portability
//! parameters (RFC 4694) are kept, and a ported number routes on its `rn`.
//!
//! ```text
//! telephone-subscriber = global-number / local-number      ; RFC 3966 §3
//! global-number-digits = "+" *phonedigit DIGIT *phonedigit
//! phonedigit           = DIGIT / [ visual-separator ]
//! visual-separator     = "-" / "." / "(" / ")"
//! rn    = ";rn=" ( global-rn / local-rn )                   ; RFC 4694 §4
//! npdi  = ";npdi"
//! ```

use crate::error::{Error, NumberProblem, Result};

/// The longest E.164 number: 15 digits (ITU-T E.164 §6.1).
pub const MAX_DIGITS: usize = 15;

/// The scheme of the URI the called party was taken from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `sip:`
    Sip,
    /// `sips:`
    Sips,
    /// `tel:`
    Tel,
}

/// The parts of a Request-URI the number is taken from. The caller (the
/// node's SIP parser) has already split the URI.
#[derive(Debug, Clone, Copy)]
pub struct CalledUri<'a> {
    /// The URI scheme.
    pub scheme: Scheme,
    /// For `tel:` everything after `tel:`; for `sip:` the user part (before
    /// `@`), still percent-encoded, with its telephone-subscriber parameters.
    pub user: &'a str,
    /// The URI parameters of a `sip:` URI (`user=phone` is looked up here).
    /// Empty for `tel:`.
    pub uri_params: &'a [(&'a str, Option<&'a str>)],
}

/// An E.164 number: 1 to 15 digits, held without the `+`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct E164(String);

/// A called party: the number dialled and, for a ported number, the routing
/// number that ENUM is asked about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalledNumber {
    /// The number dialled.
    pub number: E164,
    /// The routing number from `rn` (RFC 4694 §4), if any.
    pub rn: Option<E164>,
    /// `npdi` was present: a number-portability dip was already done.
    pub npdi: bool,
}

impl E164 {
    /// Parses `+` followed by digits and visual separators.
    pub fn parse_global(text: &str) -> Result<Self> {
        let Some(rest) = text.strip_prefix('+') else {
            return Err(not_e164(if text.is_empty() {
                NumberProblem::Empty
            } else {
                NumberProblem::Local
            }));
        };
        Self::from_phonedigits(rest)
    }

    /// Parses digits and visual separators (no `+`).
    fn from_phonedigits(text: &str) -> Result<Self> {
        let mut digits = String::with_capacity(text.len());
        for c in text.chars() {
            match c {
                '0'..='9' => digits.push(c),
                '-' | '.' | '(' | ')' => {}
                found => return Err(not_e164(NumberProblem::InvalidChar { found })),
            }
        }
        Self::from_digits(digits)
    }

    /// Wraps a string of 1 to 15 ASCII digits not starting with 0.
    pub fn from_digits(digits: String) -> Result<Self> {
        if digits.is_empty() {
            return Err(not_e164(NumberProblem::Empty));
        }
        if let Some(found) = digits.chars().find(|c| !c.is_ascii_digit()) {
            return Err(not_e164(NumberProblem::InvalidChar { found }));
        }
        if digits.starts_with('0') {
            return Err(not_e164(NumberProblem::CountryCode));
        }
        if digits.len() > MAX_DIGITS {
            return Err(not_e164(NumberProblem::TooLong {
                digits: digits.len(),
            }));
        }
        Ok(Self(digits))
    }

    /// The digits, without `+`.
    pub fn digits(&self) -> &str {
        &self.0
    }

    /// The Application Unique String of RFC 6116 §2.4: `+` and the digits.
    pub fn aus(&self) -> String {
        format!("+{}", self.0)
    }

    /// The ENUM domain under `suffix` (RFC 6116 §2.4): the digits reversed,
    /// one label each, then the suffix, as an absolute name with a final dot.
    ///
    /// `+44 20 7946 0123` under `e164.arpa` is
    /// `3.2.1.0.6.4.9.7.0.2.4.4.e164.arpa.`
    pub fn enum_domain(&self, suffix: &str) -> String {
        let suffix = suffix.trim_matches('.');
        let mut out = String::with_capacity(self.0.len() * 2 + suffix.len() + 1);
        for d in self.0.chars().rev() {
            out.push(d);
            out.push('.');
        }
        out.push_str(suffix);
        out.push('.');
        out
    }

    /// The inverse of [`E164::enum_domain`]: `None` when `domain` is not a
    /// number's domain under `suffix`.
    pub fn from_enum_domain(domain: &str, suffix: &str) -> Option<Self> {
        let domain = domain.trim_end_matches('.');
        let suffix = suffix.trim_matches('.');
        let labels = if suffix.is_empty() {
            domain
        } else {
            let head = strip_suffix_ci(domain, suffix)?;
            head.strip_suffix('.')?
        };
        let mut digits = String::new();
        for label in labels.split('.').rev() {
            let mut chars = label.chars();
            match (chars.next(), chars.next()) {
                (Some(d @ '0'..='9'), None) => digits.push(d),
                _ => return None,
            }
        }
        Self::from_digits(digits).ok()
    }
}

impl std::fmt::Display for E164 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "+{}", self.0)
    }
}

impl CalledNumber {
    /// Takes the called number from a split Request-URI.
    pub fn from_uri(uri: &CalledUri<'_>) -> Result<Self> {
        match uri.scheme {
            Scheme::Tel => Self::parse_subscriber(uri.user),
            Scheme::Sip | Scheme::Sips => {
                let decoded = percent_decode(uri.user);
                let user_phone = uri.uri_params.iter().any(|(k, v)| {
                    k.eq_ignore_ascii_case("user")
                        && v.is_some_and(|v| v.eq_ignore_ascii_case("phone"))
                });
                if !user_phone && !decoded.starts_with('+') {
                    return Err(not_e164(NumberProblem::NotTelephone));
                }
                Self::parse_subscriber(&decoded)
            }
        }
    }

    /// Parses a `tel:` URI text such as `tel:+1-201-555-0123;npdi;rn=+1-202-544-0000`
    /// (the scheme is optional).
    pub fn parse_tel(text: &str) -> Result<Self> {
        let body = match text.get(..4) {
            Some(s) if s.eq_ignore_ascii_case("tel:") => &text[4..],
            _ => text,
        };
        Self::parse_subscriber(body)
    }

    /// Parses a telephone-subscriber (RFC 3966 §3): the number and its
    /// parameters.
    pub fn parse_subscriber(text: &str) -> Result<Self> {
        let mut parts = text.split(';');
        let number = E164::parse_global(parts.next().unwrap_or_default())?;
        let mut rn_raw = None;
        let mut rn_context = None;
        let mut npdi = false;
        for param in parts {
            let (name, value) = match param.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (param, None),
            };
            if name.eq_ignore_ascii_case("rn") {
                rn_raw = value;
            } else if name.eq_ignore_ascii_case("rn-context") {
                rn_context = value;
            } else if name.eq_ignore_ascii_case("npdi") {
                npdi = true;
            }
        }
        let rn = match rn_raw {
            None => None,
            Some(raw) => Some(routing_number(raw, rn_context)?),
        };
        Ok(Self { number, rn, npdi })
    }

    /// The number ENUM is asked about: the routing number of a ported number
    /// (RFC 4694 §5), else the number dialled.
    pub fn routing(&self) -> &E164 {
        self.rn.as_ref().unwrap_or(&self.number)
    }
}

/// A global `rn`, or a local `rn` whose `rn-context` is a global prefix
/// (RFC 4694 §4: `rn-context` takes the form of RFC 3966's phone-context).
fn routing_number(raw: &str, context: Option<&str>) -> Result<E164> {
    if raw.starts_with('+') {
        return E164::parse_global(raw).map_err(|_| not_e164(NumberProblem::BadRoutingNumber));
    }
    let Some(prefix) = context.filter(|c| c.starts_with('+')) else {
        return Err(not_e164(NumberProblem::BadRoutingNumber));
    };
    let joined = format!("{prefix}{raw}");
    E164::parse_global(&joined).map_err(|_| not_e164(NumberProblem::BadRoutingNumber))
}

fn not_e164(problem: NumberProblem) -> Error {
    Error::NotE164 { problem }
}

fn strip_suffix_ci<'a>(text: &'a str, suffix: &str) -> Option<&'a str> {
    let cut = text.len().checked_sub(suffix.len())?;
    let tail = text.get(cut..)?;
    tail.eq_ignore_ascii_case(suffix).then(|| &text[..cut])
}

/// Decodes `%XX` escapes; malformed escapes are kept as they are (they then
/// fail the digit check).
fn percent_decode(text: &str) -> String {
    if !text.contains('%') {
        return text.to_owned();
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = text.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests;
