//! Topology hiding (as Kamailio's topos does): each side of a dialog sees
//! only this node. Towards the other side, the node sends its own Via,
//! Record-Route and Contact; responses get their Vias back from the server
//! transaction, and in-dialog requests get the real remote target and route
//! set back from the dialog the node remembers.
//!
//! ```text
//!  A ──(Via A.., RR A.., Contact A)──► node ──(Via node, RR node, Contact node)──► B
//!  A ◄──(Via A.., RR node+A.., Contact node)── node ◄──(RR B..+node, Contact B)── B
//!  A ──BYE sip:th@node, Route node──► node ──BYE <Contact B>, Route <RR B..>──► B
//! ```

use std::time::Instant;

use crate::msg::{Editor, HeaderName, Message, NameAddr, Uri};

use super::types::{LocalInterface, Transport};

/// What the node hides of one dialog, to restore it for in-dialog requests.
#[derive(Debug, Clone)]
pub(crate) struct HiddenDialog {
    /// The caller's From tag: tells the direction of in-dialog requests.
    pub(crate) a_tag: String,
    /// The caller's Contact.
    pub(crate) a_contact: Option<String>,
    /// The caller side's Record-Route values, as received (closest first).
    pub(crate) a_routes: Vec<String>,
    /// The callee's Contact, once a response carried one.
    pub(crate) b_contact: Option<String>,
    /// The callee side's Record-Route values, as in its response.
    pub(crate) b_routes: Vec<String>,
    /// When the node forgets the dialog.
    pub(crate) expires: Instant,
}

/// The Contact the node puts in place of a hidden one.
pub(crate) fn node_contact(iface: &LocalInterface) -> String {
    let host = if iface.host.contains(':') && !iface.host.starts_with('[') {
        format!("[{}]", iface.host)
    } else {
        iface.host.clone()
    };
    let transport = match iface.transport {
        Transport::Udp => String::new(),
        t => format!(";transport={}", t.param()),
    };
    format!("<sip:th@{host}:{}{transport}>", iface.port)
}

/// Replaces every Via of the message being edited with `original`'s.
pub(crate) fn restore_vias(editor: &mut Editor, original: &Message) {
    editor.remove_header(&HeaderName::Via);
    for via in original.header_values(&HeaderName::Via).iter().rev() {
        editor.prepend_header(HeaderName::Via, via.trim());
    }
}

/// The first Contact value of a message.
pub(crate) fn first_contact(msg: &Message) -> Option<String> {
    msg.header_values(&HeaderName::Contact)
        .into_iter()
        .next()
        .map(|v| v.trim().to_owned())
}

/// The URI inside a name-addr or addr-spec value.
pub(crate) fn uri_of(value: &str) -> Option<Uri> {
    NameAddr::parse(value).ok().map(|na| na.uri)
}

impl HiddenDialog {
    /// Where an in-dialog request goes: the Request-URI and the Route
    /// values to send, for a request from the caller side (`from_a`) or
    /// from the callee side.
    pub(crate) fn next_hop(&self, from_a: bool) -> Option<(String, Vec<String>)> {
        if from_a {
            // Towards B: B's remote target, B's route set in the order a
            // UAC uses it (the Record-Route list reversed, RFC 3261 §12.1.2).
            let contact = self.b_contact.clone()?;
            let mut routes = self.b_routes.clone();
            routes.reverse();
            Some((contact, routes))
        } else {
            // Towards A: A's Contact, A's route set as a UAS uses it
            // (Record-Route order, §12.1.1).
            Some((self.a_contact.clone()?, self.a_routes.clone()))
        }
    }
}
