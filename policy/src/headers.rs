//! Header rules per agreement, on plain header names and values: which
//! headers to remove towards the terminating member, and which carry the
//! sending side's topology (for topology hiding).
//!
//! The stateful part of topology hiding (replacing Via, Record-Route and
//! Contact with the node's own and restoring them for in-dialog requests,
//! as Kamailio's topos does) belongs to the proxy core; this module only
//! says what to do with each header.

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
