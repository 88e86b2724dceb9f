//! Header rules per agreement, on plain header names and values: which
//! headers to remove towards the terminating member, and which carry the
//! sending side's topology (for topology hiding).
//!
//! The proxy core replaces Via, Record-Route and Contact with the node's
//! own and must restore them for responses and in-dialog requests, as
//! Kamailio's topos does. Instead of a table, [`TopologySeal`] seals the
//! hidden values into an opaque token the proxy puts in its own Via branch
//! parameter, Record-Route or Contact URI: the other side echoes it back,
//! and only the node can open it (ChaCha20-Poly1305), so no state is kept
//! and nothing leaks.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

use crate::registry::HeaderRules;

/// The full name of a compact header form (RFC 3261 §7.3.3 and later
/// RFCs), or the name itself.
pub fn expand_compact(name: &str) -> &str {
    if name.len() != 1 {
        return name;
    }
    match name.as_bytes()[0].to_ascii_lowercase() {
        b'v' => "Via",
        b'm' => "Contact",
        b'f' => "From",
        b't' => "To",
        b'i' => "Call-ID",
        b'l' => "Content-Length",
        b'c' => "Content-Type",
        b'e' => "Content-Encoding",
        b'k' => "Supported",
        b's' => "Subject",
        b'o' => "Event",
        b'r' => "Refer-To",
        b'b' => "Referred-By",
        b'u' => "Allow-Events",
        b'x' => "Session-Expires",
        b'y' => "Identity",
        b'a' => "Accept-Contact",
        b'j' => "Reject-Contact",
        b'd' => "Request-Disposition",
        _ => name,
    }
}

/// Headers that reveal the sender's topology.
const TOPOLOGY: &[&str] = &["Via", "Record-Route", "Contact", "Route", "Path"];

/// Headers whose content is internal to the sender and never crosses the
/// federation when topology hiding is on.
const INTERNAL: &[&str] = &[
    "P-Charging-Vector",
    "P-Charging-Function-Addresses",
    "P-Visited-Network-ID",
    "P-Access-Network-Info",
    "Server",
    "User-Agent",
    "Warning",
];

/// What to do with one header towards the terminating member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderAction {
    /// Pass it through unchanged.
    Keep,
    /// Remove it.
    Strip,
    /// It describes the sender's topology: the proxy replaces it with its
    /// own (Via, Record-Route, Contact) and keeps the original for the
    /// dialog.
    Hide,
}

/// The action for header `name` under `rules`. Names compare
/// case-insensitively and compact forms are expanded.
pub fn action(name: &str, rules: &HeaderRules) -> HeaderAction {
    let name = expand_compact(name.trim());
    if rules.strip.iter().any(|s| s.eq_ignore_ascii_case(name)) {
        return HeaderAction::Strip;
    }
    if rules.topology_hiding {
        if TOPOLOGY.iter().any(|t| t.eq_ignore_ascii_case(name)) {
            return HeaderAction::Hide;
        }
        if INTERNAL.iter().any(|t| t.eq_ignore_ascii_case(name)) {
            return HeaderAction::Strip;
        }
    }
    HeaderAction::Keep
}

/// A header as `(name, value)`.
pub type Header<'a> = (&'a str, &'a str);

/// Applies `rules` to a list of headers: stripped headers are removed,
/// hidden ones are returned separately (second) for the proxy.
pub fn filter<'a>(
    headers: &[Header<'a>],
    rules: &HeaderRules,
) -> (Vec<Header<'a>>, Vec<Header<'a>>) {
    let mut keep = Vec::with_capacity(headers.len());
    let mut hide = Vec::new();
    for &(n, v) in headers {
        match action(n, rules) {
            HeaderAction::Keep => keep.push((n, v)),
            HeaderAction::Hide => hide.push((n, v)),
            HeaderAction::Strip => {}
        }
    }
    (keep, hide)
}

const SEAL_AAD: &[u8] = b"peering-topology-v1";

/// Seals hidden header values into an opaque token (base64url, safe in a
/// SIP URI parameter or Via branch) and opens such tokens again.
pub struct TopologySeal {
    key: LessSafeKey,
    rng: SystemRandom,
}

impl std::fmt::Debug for TopologySeal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopologySeal").finish_non_exhaustive()
    }
}

impl TopologySeal {
    /// A seal with a 32-byte secret shared by the federation's nodes (so a
    /// token sealed by one node opens on another).
    pub fn new(secret: &[u8; 32]) -> Self {
        // A 32-byte key is always valid for ChaCha20-Poly1305.
        let key = UnboundKey::new(&CHACHA20_POLY1305, secret)
            .map(LessSafeKey::new)
            .unwrap_or_else(|_| unreachable!("32-byte ChaCha20-Poly1305 key"));
        Self {
            key,
            rng: SystemRandom::new(),
        }
    }

    /// Seals `values` (header values without CR or LF) into a token.
    pub fn seal(&self, values: &[&str]) -> Option<String> {
        if values.iter().any(|v| v.contains(['\r', '\n'])) {
            return None;
        }
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).ok()?;
        let mut buf = values.join("\n").into_bytes();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(SEAL_AAD),
                &mut buf,
            )
            .ok()?;
        let mut token = Vec::with_capacity(NONCE_LEN + buf.len());
        token.extend_from_slice(&nonce);
        token.extend_from_slice(&buf);
        Some(URL_SAFE_NO_PAD.encode(token))
    }

    /// Opens a token from [`Self::seal`]; `None` if it was not sealed with
    /// this secret or was altered.
    pub fn open(&self, token: &str) -> Option<Vec<String>> {
        let raw = URL_SAFE_NO_PAD.decode(token).ok()?;
        if raw.len() < NONCE_LEN {
            return None;
        }
        let (nonce, sealed) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut sealed = sealed.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(SEAL_AAD), &mut sealed)
            .ok()?;
        let text = std::str::from_utf8(plain).ok()?;
        Some(text.split('\n').map(str::to_owned).collect())
    }
}
