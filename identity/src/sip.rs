//! Small, allocation-light helpers over SIP header values as plain strings.
//!
//! The node owns SIP parsing; this crate only needs the addr-spec of a
//! name-addr, the user part of a URI and telephone-number normalisation.

/// The addr-spec inside a From, To or Contact header value (RFC 3261 section 20.10).
///
/// ```text
/// name-addr  = [ display-name ] LAQUOT addr-spec RAQUOT
/// From       = ( name-addr / addr-spec ) *( SEMI from-param )
/// ```
///
/// For the bare form, header parameters after the first `;` are dropped (as
/// RFC 3261 says, they then belong to the header, not to the URI).
pub fn addr_spec(value: &str) -> Option<&str> {
    let value = value.trim();
    // A quoted display name may contain '<'; skip it first.
    let rest = if let Some(stripped) = value.strip_prefix('"') {
        let mut escaped = false;
        let mut end = None;
        for (i, c) in stripped.char_indices() {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => {
                    end = Some(i);
                    break;
                }
                _ => {}
            }
        }
        &stripped[end? + 1..]
    } else {
        value
    };
    if let Some(start) = rest.find('<') {
        let after = &rest[start + 1..];
        let end = after.find('>')?;
        let spec = after[..end].trim();
        return (!spec.is_empty()).then_some(spec);
    }
    let spec = rest.split(';').next()?.trim();
    (!spec.is_empty() && spec.contains(':')).then_some(spec)
}

/// The telephone number or URI a header value names, as RFC 8224 section 8
/// describes for `orig` and `dest`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Party {
    /// A telephone number, normalised (digits only, see [`normalize_tn`]).
    Tn(String),
    /// A URI that is not a telephone number, as found in the header.
    Uri(String),
}

impl Party {
    /// The party named by a From or To header value (or a bare URI).
    ///
    /// `tel:` URIs, and `sip:`/`sips:` URIs whose user part normalises to a
    /// telephone number, give [`Party::Tn`]; anything else gives [`Party::Uri`]
    /// with the URI stripped of its parameters.
    pub fn from_header(value: &str) -> Option<Self> {
        let spec = addr_spec(value)?;
        let (scheme, rest) = spec.split_once(':')?;
        if scheme.eq_ignore_ascii_case("tel") {
            let number = rest.split(';').next()?;
            normalize_tn(number).map(Self::Tn)
        } else if scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips") {
            if let Some((user, _host)) = rest.split_once('@') {
                let user = user.split(';').next()?;
                let user = user.split(':').next()?; // drop any password
                if let Some(tn) = normalize_tn(&percent_decode(user)) {
                    return Some(Self::Tn(tn));
                }
            }
            let bare = spec.split(['?']).next()?;
            let bare = match bare.split_once('@') {
                Some((user, host)) => {
                    let host = host.split(';').next()?;
                    format!("{user}@{host}")
                }
                None => bare.split(';').next()?.to_owned(),
            };
            Some(Self::Uri(bare))
        } else {
            Some(Self::Uri(spec.to_owned()))
        }
    }

    /// The telephone number, if this is one.
    pub fn tn(&self) -> Option<&str> {
        match self {
            Self::Tn(tn) => Some(tn),
            Self::Uri(_) => None,
        }
    }
}

/// Normalises a telephone number as RFC 8224 section 8.3 says: visual
/// separators (`-`, `.`, `(`, `)`, space) and a leading `+` are removed, and
/// what remains must be digits only (else `None`: not a telephone number).
///
/// ```
/// use peering_identity::sip::normalize_tn;
/// assert_eq!(normalize_tn("+1 (215) 555-0100").as_deref(), Some("12155550100"));
/// assert_eq!(normalize_tn("alice"), None);
/// ```
pub fn normalize_tn(number: &str) -> Option<String> {
    let number = number.trim();
    let number = number.strip_prefix('+').unwrap_or(number);
    let mut out = String::with_capacity(number.len());
    for c in number.chars() {
        match c {
            '0'..='9' => out.push(c),
            '-' | '.' | '(' | ')' | ' ' => {}
            _ => return None,
        }
    }
    (!out.is_empty()).then_some(out)
}

fn percent_decode(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains('%') {
        return std::borrow::Cow::Borrowed(s);
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    std::borrow::Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Splits a header value into its first element and `;`-separated parameters,
/// honouring angle brackets and quoted strings. Parameter names are returned
/// lower-cased; a parameter without `=` has an empty value. Quotes around a
/// value are removed.
pub(crate) fn split_params(value: &str) -> (&str, Vec<(String, &str)>) {
    let (head, params) = split_head(value);
    let params = params
        .map(|(name, val)| (name.to_ascii_lowercase(), val))
        .collect();
    (head, params)
}

/// [`split_params`] without allocating: the first element (trimmed) and an
/// iterator over the parameters, whose names keep their case (compare them
/// with `eq_ignore_ascii_case`).
pub(crate) fn split_head(value: &str) -> (&str, Params<'_>) {
    let mut params = Params { rest: Some(value) };
    let head = params.next_part().unwrap_or_default().trim();
    (head, params)
}

/// The parameters of a header value, see [`split_head`].
pub(crate) struct Params<'a> {
    rest: Option<&'a str>,
}

impl<'a> Params<'a> {
    /// The text up to the next `;` outside quotes and angle brackets.
    fn next_part(&mut self) -> Option<&'a str> {
        let rest = self.rest?;
        // Fast path (the ~400-byte PASSporT, plain parameters): no quote or
        // '<' before the first ';', so the scan below would stop at that ';'
        // with nothing open. Cheaper than the scan: memchr for ';', then a
        // branch-free pass.
        let end = rest.find(';').unwrap_or(rest.len());
        let mut opens = 0u8;
        for &b in &rest.as_bytes()[..end] {
            opens |= u8::from(b == b'"') | u8::from(b == b'<');
        }
        if opens == 0 {
            self.rest = rest.get(end + 1..);
            return Some(&rest[..end]);
        }
        let mut angle = false;
        let mut quoted = false;
        // The delimiters are ASCII, so scanning bytes finds the same places
        // as scanning characters.
        for (i, b) in rest.bytes().enumerate() {
            match b {
                b'"' => quoted = !quoted,
                b'<' if !quoted => angle = true,
                b'>' if !quoted => angle = false,
                b';' if !quoted && !angle => {
                    self.rest = Some(&rest[i + 1..]);
                    return Some(&rest[..i]);
                }
                _ => {}
            }
        }
        self.rest = None;
        Some(rest)
    }
}

impl<'a> Iterator for Params<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let p = self.next_part()?.trim();
            if p.is_empty() {
                continue;
            }
            let (name, val) = p.split_once('=').unwrap_or((p, ""));
            let val = val.trim();
            let val = val
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(val);
            return Some((name.trim(), val));
        }
    }
}

/// The host part of a SIP or SIPS URI (`sip:user@host:port;params`),
/// lower-cased; `None` for other schemes.
pub fn uri_host(uri: &str) -> Option<String> {
    let (scheme, rest) = uri.split_once(':')?;
    if !scheme.eq_ignore_ascii_case("sip") && !scheme.eq_ignore_ascii_case("sips") {
        return None;
    }
    let rest = rest.split([';', '?']).next()?;
    let hostport = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let host = if let Some(v6) = hostport.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        hostport.split(':').next()?
    };
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}
