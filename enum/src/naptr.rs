//! NAPTR processing for ENUM (RFC 3402, RFC 3403, RFC 6116), pure.
//!
//! ```text
//! NAPTR RDATA (RFC 3403 §4.1):
//!   ORDER  PREFERENCE  FLAGS  SERVICES  REGEXP  REPLACEMENT
//!
//! subst-expr = delim-char  ere  delim-char  repl  delim-char  *flags   ; RFC 3402 §3.2
//! delim-char = "/" / "!" / <Any non-digit or non-flag character other than backslash>
//! repl       = *(string / backref)
//! backref    = "\" POS-DIGIT
//! flags      = "i"
//!
//! service-field = "E2U" 1*(servicespec)                                 ; RFC 6116 §3.4.3
//! servicespec   = "+" enumservice
//! enumservice   = type 0*(subtypespec)
//! subtypespec   = ":" subtype
//! ```
//!
//! [`select`] turns one node's NAPTR set into ordered rewrites; [`NaptrWalk`]
//! follows non-terminal rewrites to other domains without doing any I/O: it
//! names the domain it wants next ([`NaptrWalk::poll_query`]) and takes the
//! answer ([`NaptrWalk::handle_answer`]).
//!
//! Choices where the RFCs leave room:
//! - All usable records are returned, lower ORDER first, then lower
//!   PREFERENCE, so that a proxy can fail over down the list (RFC 3403 §4.1
//!   allows using a higher ORDER when the lower ones cannot be used).
//!   Records with equal ORDER and PREFERENCE keep the order of the answer.
//! - The output of a rule is `repl` with its back-references filled in; the
//!   parts of the AUS outside the match are not kept (RFC 3402 §3.2,
//!   "the result ... is the output"; the usual `^...$` patterns make both
//!   readings equal).
//! - The POSIX ERE is mapped onto the `regex` crate: an escaped delimiter is
//!   a literal, a backslash inside a bracket expression is a literal (POSIX),
//!   `[:class:]` stays. Leftmost-longest sub-match rules of POSIX are not
//!   emulated; the overall match of an anchored pattern is the same.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use regex::{Regex, RegexBuilder};

use crate::error::{Error, Result};

/// A NAPTR record's RDATA (RFC 3403 §4.1), as text fields.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NaptrRecord {
    /// ORDER: lower first.
    pub order: u16,
    /// PREFERENCE: lower first among equal ORDER.
    pub preference: u16,
    /// FLAGS, e.g. `u` or empty.
    pub flags: String,
    /// SERVICES, e.g. `E2U+sip`.
    pub services: String,
    /// REGEXP, a substitution expression or empty.
    pub regexp: String,
    /// REPLACEMENT, a domain name, or `.` for none.
    pub replacement: String,
}

impl NaptrRecord {
    /// A record from its six fields.
    pub fn new(
        order: u16,
        preference: u16,
        flags: &str,
        services: &str,
        regexp: &str,
        replacement: &str,
    ) -> Self {
        Self {
            order,
            preference,
            flags: flags.to_owned(),
            services: services.to_owned(),
            regexp: regexp.to_owned(),
            replacement: replacement.to_owned(),
        }
    }
}

/// What one usable NAPTR record yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rewrite {
    /// A terminal rule (`u` flag) gave a SIP URI.
    Uri(String),
    /// A non-terminal rule (empty flags) names the next domain to query.
    Next(String),
}

/// Why a substitution expression is not valid (RFC 3402 §3.2).
///
/// A record with an invalid expression is skipped, so this never reaches
/// the caller of the resolver; [`status`](Self::status) is there for tools
/// that check zone data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegexpError {
    /// Empty, or the delimiter is a digit, a flag or a backslash.
    #[error("bad or missing delimiter")]
    Delimiter,
    /// Fewer than three delimiters.
    #[error("unterminated substitution expression")]
    Unterminated,
    /// A flag other than `i` after the last delimiter.
    #[error("unknown flag {0:?}")]
    Flag(char),
    /// A back-reference to a group that the ERE does not have.
    #[error("back-reference \\{0} to a missing group")]
    Backref(usize),
    /// The ERE does not compile.
    #[error("the regular expression does not compile")]
    Ere,
}

impl RegexpError {
    /// The SIP response when routing fails on this: the fault is in DNS
    /// data upstream, so 503 (try elsewhere).
    pub fn status(&self) -> (u16, &'static str) {
        (503, "Service Unavailable")
    }
}

#[derive(Debug, Clone)]
enum ReplPart {
    Text(String),
    Group(usize),
}

/// A compiled substitution expression (RFC 3402 §3.2).
#[derive(Debug, Clone)]
pub struct SubstExpr {
    regex: Regex,
    repl: Vec<ReplPart>,
}

impl SubstExpr {
    /// Parses and compiles `delim ere delim repl delim flags`.
    pub fn parse(text: &str) -> Result<Self, RegexpError> {
        let mut chars = text.chars();
        let delim = chars.next().ok_or(RegexpError::Delimiter)?;
        if delim.is_ascii_digit() || delim == '\\' || delim == 'i' {
            return Err(RegexpError::Delimiter);
        }
        let rest = chars.as_str();
        let (ere, rest) = split_at_delim(rest, delim).ok_or(RegexpError::Unterminated)?;
        let (repl, flags) = split_at_delim(rest, delim).ok_or(RegexpError::Unterminated)?;
        let mut insensitive = false;
        for f in flags.chars() {
            match f {
                'i' => insensitive = true,
                other => return Err(RegexpError::Flag(other)),
            }
        }
        let pattern = translate_ere(ere, delim);
        let regex = RegexBuilder::new(&pattern)
            .case_insensitive(insensitive)
            .size_limit(1 << 20)
            .build()
            .map_err(|_| RegexpError::Ere)?;
        let repl = parse_repl(repl);
        let groups = regex.captures_len();
        for part in &repl {
            if let ReplPart::Group(n) = part
                && *n >= groups
            {
                return Err(RegexpError::Backref(*n));
            }
        }
        Ok(Self { regex, repl })
    }

    /// Applies the expression to `aus`: `None` when the ERE does not match.
    pub fn apply(&self, aus: &str) -> Option<String> {
        let caps = self.regex.captures(aus)?;
        let mut out = String::new();
        for part in &self.repl {
            match part {
                ReplPart::Text(t) => out.push_str(t),
                ReplPart::Group(n) => {
                    if let Some(m) = caps.get(*n) {
                        out.push_str(m.as_str());
                    }
                }
            }
        }
        Some(out)
    }
}

/// Splits at the first delimiter not escaped by a backslash.
fn split_at_delim(text: &str, delim: char) -> Option<(&str, &str)> {
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == delim {
            return Some((&text[..i], &text[i + c.len_utf8()..]));
        }
    }
    None
}

/// Rewrites a POSIX ERE into the `regex` crate's syntax.
fn translate_ere(ere: &str, delim: char) -> String {
    let mut out = String::with_capacity(ere.len() + 8);
    let chars: Vec<char> = ere.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\\' if i + 1 < chars.len() => {
                let next = chars[i + 1];
                if next == delim || !next.is_ascii_alphanumeric() {
                    out.push_str(&regex::escape(&next.to_string()));
                } else {
                    out.push('\\');
                    out.push(next);
                }
                i += 2;
            }
            '[' => {
                i = translate_bracket(&chars, i, &mut out);
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// Copies a bracket expression starting at `chars[start] == '['`; returns
/// the index after it. Inside brackets POSIX has no escapes.
fn translate_bracket(chars: &[char], start: usize, out: &mut String) -> usize {
    let mut i = start + 1;
    out.push('[');
    if chars.get(i) == Some(&'^') {
        out.push('^');
        i += 1;
    }
    if chars.get(i) == Some(&']') {
        out.push_str("\\]");
        i += 1;
    }
    while i < chars.len() {
        let c = chars[i];
        match c {
            ']' => {
                out.push(']');
                return i + 1;
            }
            '[' if matches!(chars.get(i + 1), Some(':' | '.' | '=')) => {
                let kind = chars[i + 1];
                let mut j = i + 2;
                while j + 1 < chars.len() && !(chars[j] == kind && chars[j + 1] == ']') {
                    j += 1;
                }
                let inner: String = chars[(i + 2).min(chars.len())..j.min(chars.len())]
                    .iter()
                    .collect();
                match kind {
                    ':' => {
                        out.push_str("[:");
                        out.push_str(&inner);
                        out.push_str(":]");
                    }
                    // Collating symbols and equivalence classes of one
                    // character are that character.
                    _ => out.push_str(&regex::escape(&inner)),
                }
                i = j + 2;
            }
            '\\' | '[' | '&' | '~' => {
                out.push('\\');
                out.push(c);
                i += 1;
            }
            '-' if chars.get(i + 1) == Some(&'-') => {
                out.push_str("\\-");
                i += 1;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    // Unterminated: let the regex compiler reject it.
    i
}

fn parse_repl(repl: &str) -> Vec<ReplPart> {
    let mut parts = Vec::new();
    let mut text = String::new();
    let mut chars = repl.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            text.push(c);
            continue;
        }
        match chars.next() {
            Some(d @ '1'..='9') => {
                if !text.is_empty() {
                    parts.push(ReplPart::Text(std::mem::take(&mut text)));
                }
                parts.push(ReplPart::Group(d as usize - '0' as usize));
            }
            Some(other) => text.push(other),
            None => text.push('\\'),
        }
    }
    if !text.is_empty() {
        parts.push(ReplPart::Text(text));
    }
    parts
}

/// True when an ENUM service field (RFC 6116 §3.4.3) offers SIP: an
/// enumservice of type `sip` (`E2U+sip`, RFC 3764) or with subtype `sip`
/// (`E2U+voice:sip`, RFC 4415 style). Case-insensitive.
pub fn offers_sip(services: &str) -> bool {
    let Some(rest) = strip_prefix_ci(services, "E2U") else {
        return false;
    };
    let Some(specs) = rest.strip_prefix('+') else {
        return false;
    };
    specs.split('+').any(|spec| {
        let mut tokens = spec.split(':');
        let ty = tokens.next().unwrap_or_default();
        ty.eq_ignore_ascii_case("sip") || tokens.any(|sub| sub.eq_ignore_ascii_case("sip"))
    })
}

fn strip_prefix_ci<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

fn is_sip_uri(uri: &str) -> bool {
    strip_prefix_ci(uri, "sip:").is_some() || strip_prefix_ci(uri, "sips:").is_some()
}

/// Compiled substitution expressions by their text, so that a cached NAPTR
/// answer does not compile its regexps again on every call. Bounded: when
/// full it starts over.
#[derive(Debug)]
pub struct RegexpCache {
    capacity: usize,
    compiled: Mutex<HashMap<String, Option<Arc<SubstExpr>>>>,
}

impl RegexpCache {
    /// A cache of at most `capacity` expressions.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            compiled: Mutex::new(HashMap::new()),
        }
    }

    /// The compiled expression for `text`, or `None` when it is invalid.
    pub fn get(&self, text: &str) -> Option<Arc<SubstExpr>> {
        if let Some(hit) = self.compiled.lock().get(text) {
            return hit.clone();
        }
        let compiled = SubstExpr::parse(text).ok().map(Arc::new);
        let mut map = self.compiled.lock();
        if map.len() >= self.capacity {
            map.clear();
        }
        map.insert(text.to_owned(), compiled.clone());
        compiled
    }

    /// How many expressions are held.
    pub fn len(&self) -> usize {
        self.compiled.lock().len()
    }

    /// True when none is held.
    pub fn is_empty(&self) -> bool {
        self.compiled.lock().is_empty()
    }
}

fn apply(aus: &str, regexp: &str, cache: Option<&RegexpCache>) -> Option<String> {
    match cache {
        Some(cache) => cache.get(regexp)?.apply(aus),
        None => SubstExpr::parse(regexp).ok()?.apply(aus),
    }
}

/// What one record yields for `aus`, or `None` when it is not usable:
/// unknown flags, a service other than SIP, a regexp that does not parse or
/// does not match, or a result that is not a SIP URI.
pub fn rewrite(aus: &str, record: &NaptrRecord) -> Option<Rewrite> {
    rewrite_with(aus, record, None)
}

fn rewrite_with(aus: &str, record: &NaptrRecord, cache: Option<&RegexpCache>) -> Option<Rewrite> {
    let flags = record.flags.trim();
    let has_replacement = !record.replacement.is_empty() && record.replacement != ".";
    if flags.eq_ignore_ascii_case("u") {
        // Terminal (RFC 3404 §4.3, RFC 6116 §3.4.2): regexp gives a URI.
        if !offers_sip(&record.services) || record.regexp.is_empty() {
            return None;
        }
        let uri = apply(aus, &record.regexp, cache)?;
        return is_sip_uri(&uri).then_some(Rewrite::Uri(uri));
    }
    if !flags.is_empty() {
        // `s`, `a`, `p` and anything else are not ENUM flags: skip.
        return None;
    }
    // Non-terminal: the next key is the replacement or the regexp result.
    let services = record.services.trim();
    if !services.is_empty() && strip_prefix_ci(services, "E2U").is_none() {
        return None;
    }
    if has_replacement {
        return Some(Rewrite::Next(record.replacement.clone()));
    }
    if record.regexp.is_empty() {
        return None;
    }
    let next = apply(aus, &record.regexp, cache)?;
    (!next.is_empty()).then_some(Rewrite::Next(next))
}

/// The usable rewrites of one NAPTR set, ORDER then PREFERENCE ascending.
pub fn select(aus: &str, records: &[NaptrRecord]) -> Vec<Rewrite> {
    select_with(aus, records, None)
}

fn select_with(aus: &str, records: &[NaptrRecord], cache: Option<&RegexpCache>) -> Vec<Rewrite> {
    let mut sorted: Vec<&NaptrRecord> = records.iter().collect();
    sorted.sort_by_key(|r| (r.order, r.preference));
    sorted
        .into_iter()
        .filter_map(|r| rewrite_with(aus, r, cache))
        .collect()
}

/// The default limit on non-terminal steps in one chain.
pub const DEFAULT_MAX_DEPTH: usize = 5;

/// Follows NAPTR chains (non-terminal rules) to an ordered list of SIP URIs,
/// without I/O.
///
/// Polling order: while [`poll_query`](Self::poll_query) names a domain,
/// look it up and pass its NAPTR set to
/// [`handle_answer`](Self::handle_answer) (an empty slice for NXDOMAIN or
/// NODATA) or [`handle_failure`](Self::handle_failure); then call
/// [`finish`](Self::finish). URIs reached through a non-terminal rule take
/// that rule's place in the order.
#[derive(Debug)]
pub struct NaptrWalk {
    aus: String,
    max_depth: usize,
    max_queries: usize,
    queries: usize,
    /// The chain from the first domain to the current one, each with the
    /// rewrites still to visit (reversed, so `pop` gives the next).
    stack: Vec<(String, Vec<Rewrite>)>,
    pending: Option<String>,
    out: Vec<String>,
    problem: Option<Error>,
    cache: Option<Arc<RegexpCache>>,
}

impl NaptrWalk {
    /// Starts at `domain` with the Application Unique String `aus`; at most
    /// `max_depth` non-terminal steps in a chain.
    pub fn new(aus: &str, domain: &str, max_depth: usize) -> Self {
        Self {
            aus: aus.to_owned(),
            max_depth,
            max_queries: 4 * (max_depth + 1),
            queries: 0,
            stack: Vec::new(),
            pending: Some(domain.to_owned()),
            out: Vec::new(),
            problem: None,
            cache: None,
        }
    }

    /// Compiles regexps through `cache`.
    pub fn with_cache(mut self, cache: Arc<RegexpCache>) -> Self {
        self.cache = Some(cache);
        self
    }

    /// The domain whose NAPTR set is needed next, if any.
    pub fn poll_query(&self) -> Option<&str> {
        self.pending.as_deref()
    }

    /// True when the first domain has not been answered yet.
    pub fn at_start(&self) -> bool {
        self.stack.is_empty() && self.queries == 0
    }

    /// Takes the NAPTR set of the domain named by `poll_query`.
    pub fn handle_answer(&mut self, records: &[NaptrRecord]) {
        let Some(domain) = self.pending.take() else {
            return;
        };
        self.queries += 1;
        let mut rewrites = select_with(&self.aus, records, self.cache.as_deref());
        rewrites.reverse();
        self.stack.push((domain, rewrites));
        self.advance();
    }

    /// The lookup of the domain named by `poll_query` failed: that branch is
    /// skipped, and the error is kept in case nothing else works.
    pub fn handle_failure(&mut self, error: Error) {
        if self.pending.take().is_some() {
            self.queries += 1;
            self.problem.get_or_insert(error);
            self.advance();
        }
    }

    fn advance(&mut self) {
        while let Some((_, rewrites)) = self.stack.last_mut() {
            match rewrites.pop() {
                None => {
                    self.stack.pop();
                }
                Some(Rewrite::Uri(uri)) => {
                    if !self.out.contains(&uri) {
                        self.out.push(uri);
                    }
                }
                Some(Rewrite::Next(domain)) => {
                    let looped = self.stack.iter().any(|(d, _)| same_name(d, &domain));
                    if looped {
                        self.problem.get_or_insert(Error::NaptrLoop { domain });
                    } else if self.stack.len() > self.max_depth || self.queries >= self.max_queries
                    {
                        self.problem.get_or_insert(Error::ChainTooLong {
                            max: self.max_depth,
                        });
                    } else {
                        self.pending = Some(domain);
                        return;
                    }
                }
            }
        }
    }

    /// The SIP URIs found, in order. An error when none was found and a
    /// branch failed (loop, overlong chain, DNS failure); an empty list when
    /// none was found and nothing failed.
    pub fn finish(self) -> Result<Vec<String>> {
        match (self.out.is_empty(), self.problem) {
            (true, Some(problem)) => Err(problem),
            _ => Ok(self.out),
        }
    }
}

/// Domain names compare case-insensitively, with or without the final dot.
fn same_name(a: &str, b: &str) -> bool {
    a.trim_end_matches('.')
        .eq_ignore_ascii_case(b.trim_end_matches('.'))
}

#[cfg(test)]
mod tests;
