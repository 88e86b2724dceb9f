//! Plain data that crosses the proxy core's boundary: where a message came
//! from, where one must go, and what the routing seam decided.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::msg::{HeaderName, Message, Uri};
use crate::txn::TimerConfig;

/// A SIP transport protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// UDP: unreliable, datagram framed.
    Udp,
    /// TCP: reliable, stream framed.
    Tcp,
    /// TLS over TCP: reliable, stream framed, authenticated.
    Tls,
}

impl Transport {
    /// Reliable transports need no retransmissions (RFC 3261 §17).
    pub fn is_reliable(self) -> bool {
        !matches!(self, Self::Udp)
    }

    /// The token used in Via (`UDP`, `TCP`, `TLS`).
    pub fn via_token(self) -> &'static str {
        match self {
            Self::Udp => "UDP",
            Self::Tcp => "TCP",
            Self::Tls => "TLS",
        }
    }

    /// The value of a URI `transport` parameter (`udp`, `tcp`, `tls`).
    pub fn param(self) -> &'static str {
        match self {
            Self::Udp => "udp",
            Self::Tcp => "tcp",
            Self::Tls => "tls",
        }
    }

    /// Parses a Via transport token or a URI transport parameter,
    /// case-insensitively. Unknown transports give `None`.
    pub fn from_token(token: &str) -> Option<Self> {
        if token.eq_ignore_ascii_case("udp") {
            Some(Self::Udp)
        } else if token.eq_ignore_ascii_case("tcp") {
            Some(Self::Tcp)
        } else if token.eq_ignore_ascii_case("tls") {
            Some(Self::Tls)
        } else {
            None
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.via_token())
    }
}

/// Identifies one TCP or TLS connection at the transport edge.
pub type ConnId = u64;

/// Where a message was received: the flow that responses go back on
/// (RFC 3261 §18.2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flow {
    /// The transport it arrived on.
    pub transport: Transport,
    /// The local address that received it.
    pub local: SocketAddr,
    /// The peer's address (source of the datagram or connection).
    pub remote: SocketAddr,
    /// The connection, for stream transports.
    pub conn: Option<ConnId>,
}

/// A token the core attaches to a transmission so that the edge can report
/// a transport failure for it with [`Proxy::handle_transport_error`].
///
/// [`Proxy::handle_transport_error`]: super::Proxy::handle_transport_error
///
/// It holds the key of the client transaction that sent it (its branch), so
/// the core finds the transaction with the one lookup it needs anyway; a
/// branch is never reused, so a late report cannot reach another
/// transaction.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TransmitToken(pub(crate) Arc<str>);

impl TransmitToken {
    /// A token made from a number, for an edge's tests: the core ignores a
    /// report for a token it did not issue (no branch it makes is a bare
    /// number).
    pub fn from_raw(raw: u64) -> Self {
        Self(Arc::from(raw.to_string()))
    }
}

/// Bytes to send, and where.
#[derive(Debug, Clone)]
pub struct Transmit {
    /// Transport to use.
    pub transport: Transport,
    /// Destination address.
    pub remote: SocketAddr,
    /// Local address to send from, when it matters (the interface a request
    /// arrived on, for responses).
    pub local: Option<SocketAddr>,
    /// Reuse this connection when it is still open (stream transports).
    pub conn: Option<ConnId>,
    /// For TLS: the name the peer's certificate must match (RFC 5922).
    pub server_name: Option<String>,
    /// The wire bytes.
    pub bytes: Bytes,
    /// Report failures of this transmission with this token.
    pub token: Option<TransmitToken>,
}

/// One place the routing seam says a request may go, in failover order.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// The Request-URI to send (for in-dialog requests, the URI as received).
    pub uri: Uri,
    /// The next hop's transport.
    pub transport: Transport,
    /// The next hop's address.
    pub remote: SocketAddr,
    /// For TLS: the domain the next hop's certificate must show.
    pub server_name: Option<String>,
}

/// A rejection chosen by the routing seam (policy, ENUM, identity).
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    /// Status code, 300-699.
    pub status: u16,
    /// Reason phrase.
    pub reason: String,
    /// Extra headers (Warning, Retry-After, Reason, ...).
    pub headers: Vec<(HeaderName, String)>,
}

impl Rejection {
    /// A rejection with no extra header.
    pub fn new(status: u16, reason: impl Into<String>) -> Self {
        Self {
            status,
            reason: reason.into(),
            headers: Vec::new(),
        }
    }

    /// Adds a header to the response.
    pub fn with_header(mut self, name: HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

/// What the routing seam decided for a request.
#[derive(Debug, Clone)]
pub enum RouteDecision {
    /// Forward to these targets, serially, in order.
    Forward {
        /// The targets.
        targets: Vec<Target>,
        /// Headers to remove from the forwarded request (e.g. an untrusted
        /// P-Asserted-Identity), by name.
        remove_headers: Vec<HeaderName>,
        /// Headers to add to the forwarded request (e.g. an Identity the node
        /// signed).
        add_headers: Vec<(HeaderName, String)>,
        /// Hide each side's topology from the other (Via, Record-Route and
        /// Contact), as Kamailio's topos does; the dialog keeps working
        /// because the node restores them for in-dialog requests.
        hide_topology: bool,
    },
    /// Answer the request with this response.
    Reject(Rejection),
}

impl RouteDecision {
    /// Forward to `targets` unchanged.
    pub fn forward(targets: Vec<Target>) -> Self {
        Self::Forward {
            targets,
            remove_headers: Vec::new(),
            add_headers: Vec::new(),
            hide_topology: false,
        }
    }
}

/// Identifies a pending routing question; answer it with
/// [`Proxy::handle_route`](super::Proxy::handle_route).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RouteId(pub(crate) u64);

/// What kind of routing question the core asks.
#[derive(Debug, Clone, PartialEq)]
pub enum RouteKind {
    /// A dialog-creating or out-of-dialog request: the router decides
    /// everything (authorisation, policy, destination).
    Initial,
    /// An in-dialog request that follows a route set through this node: the
    /// next hop is fixed (the first remaining Route, else the Request-URI);
    /// the edge resolves it (RFC 3263) and may still refuse it.
    InDialog {
        /// The URI to resolve for the next hop.
        next_hop: Uri,
    },
}

/// Something the edge must act on.
#[derive(Debug, Clone)]
pub enum Event {
    /// Decide where `request` goes; answer with `Proxy::handle_route`.
    Route {
        /// The question's id.
        id: RouteId,
        /// The request after route pre-processing (§16.4). An in-dialog
        /// request that only needed our own Route values dropped from the
        /// top comes as received: they are dropped when it is forwarded,
        /// and `kind` names its next hop. Initial requests, and those whose
        /// Request-URI a strict router changed, come edited.
        request: Message,
        /// Where it came from.
        flow: Flow,
        /// Initial or in-dialog.
        kind: RouteKind,
    },
    /// The node answered a request itself with an error (for logs and metrics).
    Rejected {
        /// The status sent.
        status: u16,
        /// Why.
        reason: String,
        /// Method of the request.
        method: String,
        /// Where it came from.
        flow: Flow,
    },
    /// A final response was sent upstream for a forwarded INVITE (for CDRs
    /// and metrics).
    CallFinal {
        /// The Call-ID.
        call_id: String,
        /// The final status.
        status: u16,
        /// How many targets were tried.
        attempts: usize,
    },
    /// A received response matched no transaction and was dropped.
    StrayResponse {
        /// Its status.
        status: u16,
    },
}

/// One address this node listens on.
#[derive(Debug, Clone)]
pub struct LocalInterface {
    /// The transport.
    pub transport: Transport,
    /// The bound address.
    pub addr: SocketAddr,
    /// Host written in Via and Record-Route (a name or an IP literal;
    /// IPv6 without brackets).
    pub host: String,
    /// Port written in Via and Record-Route.
    pub port: u16,
}

/// The proxy core's settings.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Where this node listens; at least one.
    pub interfaces: Vec<LocalInterface>,
    /// Other host names that mean this node.
    pub domains: Vec<String>,
    /// Insert Record-Route into dialog-creating requests.
    pub record_route: bool,
    /// Transaction timers.
    pub timers: TimerConfig,
    /// Timer C (§16.6 item 11).
    pub timer_c: Duration,
    /// Server header of local responses.
    pub server_header: String,
    /// RFC 3261 §18.1.1: a request to a UDP target that is larger than this
    /// minus 200 bytes goes over TCP instead, unless the target URI names
    /// its transport; should that TCP connection fail before any response,
    /// the request is retried once over UDP. `None` disables the switch.
    pub udp_switch_size: Option<usize>,
    /// A number unique to this node instance, mixed into branch ids and tags.
    pub instance: u64,
}
