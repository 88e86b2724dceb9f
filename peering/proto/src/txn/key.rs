//! Matching messages to transactions: RFC 3261 §17.1.3 and §17.2.3.

use std::fmt;

/// The RFC 3261 branch prefix: a branch that starts with it was made
/// unique by an RFC 3261 element, so the branch identifies the transaction
/// (§8.1.1.7). Compared case-sensitively, as kamailio and the RFC's
/// examples do.
pub const MAGIC_COOKIE: &str = "z9hG4bK";

/// The key that matches messages to a transaction, as plain data.
///
/// Client side (RFC 3261 §17.1.3): a response matches a client transaction
/// when the branch of its top Via and the method of its CSeq equal those of
/// the request that created the transaction. The method is needed because
/// a CANCEL shares its INVITE's branch.
///
/// Server side (RFC 3261 §17.2.3), when the top Via's branch starts with
/// [`MAGIC_COOKIE`]: a request matches when the branch, the sent-by of the
/// top Via and the method equal those of the request that created the
/// transaction, except that an ACK matches the INVITE's transaction. A
/// CANCEL has a transaction of its own (method CANCEL);
/// [`TxnKey::cancel_target`] gives the INVITE transaction it cancels
/// (§9.2).
///
/// Server side, RFC 2543 fallback (no magic cookie, §17.2.3): "the INVITE
/// request matches a transaction if the Request-URI, To tag, From tag,
/// Call-ID, CSeq, and top Via header field match those of the INVITE
/// request which created the transaction. [...] The ACK request matches a
/// transaction if the Request-URI, From tag, Call-ID, CSeq number (not the
/// method), and top Via header field match those of the INVITE request
/// which created the transaction, and the To tag of the ACK matches the To
/// tag of the response sent by the server transaction." A hash key cannot
/// hold the To-tag rule (the ACK's tag is the one the server added), so
/// [`TxnKey::server_rfc2543`] keys on everything but the To tag, which
/// makes an ACK and its INVITE share a key; a caller that must tell apart
/// two 2543 requests differing only in their To tag compares that tag
/// after the lookup.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TxnKey(Repr);

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Repr {
    Client {
        branch: Box<str>,
        method: Box<str>,
    },
    Server {
        branch: Box<str>,
        sent_by: Box<str>,
        method: Box<str>,
    },
    Rfc2543(Box<Rfc2543Key>),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Rfc2543Key {
    request_uri: Box<str>,
    from_tag: Option<Box<str>>,
    call_id: Box<str>,
    cseq: u32,
    top_via: Box<str>,
    method: Box<str>,
}

/// The parts of a request an RFC 2543 server transaction key is made of
/// (RFC 3261 §17.2.3, for requests whose top Via has no [`MAGIC_COOKIE`]
/// branch).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rfc2543Parts<'a> {
    /// The Request-URI, as serialised canonically by the caller (the same
    /// form for the INVITE and its retransmissions and ACK).
    pub request_uri: &'a str,
    /// The From tag, if any (RFC 2543 did not require one).
    pub from_tag: Option<&'a str>,
    /// The Call-ID.
    pub call_id: &'a str,
    /// The CSeq sequence number.
    pub cseq: u32,
    /// The request method (the CSeq method).
    pub method: &'a str,
    /// The top Via header field value, as serialised canonically by the
    /// caller.
    pub top_via: &'a str,
}

impl TxnKey {
    /// The key of a client transaction (RFC 3261 §17.1.3), for the request
    /// it sends and for every response to it: the top Via branch and the
    /// CSeq method.
    pub fn client(branch: &str, cseq_method: &str) -> Self {
        Self(Repr::Client {
            branch: branch.into(),
            method: cseq_method.into(),
        })
    }

    /// The key of a server transaction (RFC 3261 §17.2.3) for a request
    /// whose top Via has `branch` and sent-by `host`/`port` and whose
    /// method is `method`; an ACK maps to its INVITE's transaction.
    ///
    /// `None` when the branch does not start with [`MAGIC_COOKIE`]: use
    /// [`TxnKey::server_rfc2543`] then. The host is compared
    /// case-insensitively, the branch, port and method exactly (an absent
    /// port differs from an explicit 5060, as retransmissions repeat the
    /// Via unchanged).
    pub fn server(branch: &str, host: &str, port: Option<u16>, method: &str) -> Option<Self> {
        if !branch.starts_with(MAGIC_COOKIE) {
            return None;
        }
        let mut sent_by = host.to_ascii_lowercase();
        if let Some(port) = port {
            sent_by.push(':');
            sent_by.push_str(&port.to_string());
        }
        Some(Self(Repr::Server {
            branch: branch.into(),
            sent_by: sent_by.into(),
            method: server_method(method).into(),
        }))
    }

    /// The RFC 2543 fallback key of a server transaction (see the type's
    /// documentation for what it leaves out); an ACK maps to its INVITE's
    /// transaction.
    pub fn server_rfc2543(parts: &Rfc2543Parts<'_>) -> Self {
        Self(Repr::Rfc2543(Box::new(Rfc2543Key {
            request_uri: parts.request_uri.into(),
            from_tag: parts.from_tag.map(Into::into),
            call_id: parts.call_id.into(),
            cseq: parts.cseq,
            top_via: parts.top_via.into(),
            method: server_method(parts.method).into(),
        })))
    }

    /// For the server key of a CANCEL, the key of the INVITE server
    /// transaction it cancels (RFC 3261 §9.2: same key, method INVITE).
    /// `None` for any other key.
    pub fn cancel_target(&self) -> Option<Self> {
        match &self.0 {
            Repr::Server {
                branch,
                sent_by,
                method,
            } if &**method == "CANCEL" => Some(Self(Repr::Server {
                branch: branch.clone(),
                sent_by: sent_by.clone(),
                method: "INVITE".into(),
            })),
            Repr::Rfc2543(key) if &*key.method == "CANCEL" => {
                let mut key = key.clone();
                key.method = "INVITE".into();
                Some(Self(Repr::Rfc2543(key)))
            }
            _ => None,
        }
    }

    /// True for a client transaction's key.
    pub fn is_client(&self) -> bool {
        matches!(self.0, Repr::Client { .. })
    }

    /// The branch, for RFC 3261 keys.
    pub fn branch(&self) -> Option<&str> {
        match &self.0 {
            Repr::Client { branch, .. } | Repr::Server { branch, .. } => Some(branch),
            Repr::Rfc2543(_) => None,
        }
    }

    /// The method of the transaction (INVITE for an ACK's server key).
    pub fn method(&self) -> &str {
        match &self.0 {
            Repr::Client { method, .. } | Repr::Server { method, .. } => method,
            Repr::Rfc2543(key) => &key.method,
        }
    }
}

/// §17.2.3: "the method of the request matches the one that created the
/// transaction, except for ACK, where the method of the request that
/// created the transaction is INVITE."
fn server_method(method: &str) -> &str {
    if method == "ACK" { "INVITE" } else { method }
}

impl fmt::Debug for TxnKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for TxnKey {
    /// A compact form for logs: `client z9hG4bK..;INVITE`,
    /// `server z9hG4bK..;host:port;INVITE`, `rfc2543 call-id;cseq;INVITE`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Repr::Client { branch, method } => write!(f, "client {branch};{method}"),
            Repr::Server {
                branch,
                sent_by,
                method,
            } => write!(f, "server {branch};{sent_by};{method}"),
            Repr::Rfc2543(key) => write!(f, "rfc2543 {};{};{}", key.call_id, key.cseq, key.method),
        }
    }
}
