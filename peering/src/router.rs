//! The routing seam: where the node decides where a request goes.
//!
//! The proxy core asks one question per request ([`RouteRequest`]); a
//! [`Router`] answers with targets or a rejection. The static table from the
//! configuration is one router; ENUM and policy plug in as others, composed
//! in front of it, with no change to the proxy core.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;

use peering_proto::msg::{HeaderName, Host, Message, Scheme, Uri};
use peering_proto::proxy::{Flow, Rejection, RouteDecision, RouteKind, Target, Transport};

use crate::config::RouteEntry;

/// A boxed future, as the routing trait returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One routing question.
#[derive(Debug, Clone)]
pub struct RouteRequest {
    /// The request after route pre-processing.
    pub request: Message,
    /// Where it came from.
    pub flow: Flow,
    /// Initial or in-dialog (with the next hop fixed).
    pub kind: RouteKind,
    /// For TLS: the certificate chain the peer presented (leaf first).
    pub peer_certificates: Option<crate::transport::PeerCertificates>,
}

/// Decides where requests go.
pub trait Router: Send + Sync + 'static {
    /// Answers one routing question.
    fn route(&self, request: RouteRequest) -> BoxFuture<'_, RouteDecision>;

    /// Whether the answer to `request`, when it needs no I/O, is also cheap
    /// in CPU (a table lookup, not a signature): the node then takes it
    /// inline on its core task instead of spawning a task for it.
    fn is_cheap(&self, request: &RouteRequest) -> bool {
        let _ = request;
        false
    }
}

/// The outcome of Identity verification for a call, as later screens
/// (policy) need it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum IdentityVerdict {
    /// No Identity header, or the node does not verify.
    #[default]
    Absent,
    /// A valid Identity; the SHAKEN attestation level (`A`, `B`, `C`) when
    /// the PASSporT carries one. Also set when the node signed the call.
    Valid {
        /// The attestation level.
        attestation: Option<char>,
    },
    /// An Identity header that failed verification.
    Invalid,
}

/// What the screens learned about a call before it is routed: attached to
/// the decision (headers to add or remove) and to logs and CDRs.
#[derive(Debug, Clone, Default)]
pub struct CallInfo {
    /// The Identity verification outcome.
    pub identity_verdict: IdentityVerdict,
    /// The federation member that sent the call, once authenticated.
    pub member: Option<String>,
    /// A short description of the Identity verification (standard,
    /// outcome, attestation), for logs and CDRs.
    pub identity: Option<String>,
    /// Headers to remove from the forwarded request.
    pub remove_headers: Vec<HeaderName>,
    /// Headers to add to the forwarded request.
    pub add_headers: Vec<(HeaderName, String)>,
    /// The SPIT decision and score, for logs and CDRs.
    pub spit: Option<String>,
    /// Hide each side's topology from the other (an agreement's
    /// `topology_hiding`).
    pub hide_topology: bool,
    /// Destinations a screen chose (policy: the terminating members' SIP
    /// targets, in order). When set, the destination routers are skipped.
    pub targets: Option<Vec<Uri>>,
}

/// A check that runs before the destination is looked up: authentication,
/// Identity, policy. It may refuse the request or annotate it.
pub trait Screen: Send + Sync + 'static {
    /// Screens one request; `Err` is the response to send.
    fn screen<'a>(
        &'a self,
        request: &'a RouteRequest,
        info: &'a mut CallInfo,
    ) -> BoxFuture<'a, Result<(), Rejection>>;

    /// See [`Router::is_cheap`]; signature checks are not.
    fn is_cheap(&self, request: &RouteRequest) -> bool {
        let _ = request;
        false
    }
}

/// Screens in order, then a destination router; the screens' header changes
/// are merged into the forwarding decision.
pub struct Pipeline {
    screens: Vec<Arc<dyn Screen>>,
    destination: Arc<dyn Router>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("screens", &self.screens.len())
            .finish_non_exhaustive()
    }
}

impl Pipeline {
    /// A pipeline of `screens` in front of `destination`.
    pub fn new(screens: Vec<Arc<dyn Screen>>, destination: Arc<dyn Router>) -> Self {
        Self {
            screens,
            destination,
        }
    }
}

impl Router for Pipeline {
    fn is_cheap(&self, request: &RouteRequest) -> bool {
        self.screens.iter().all(|s| s.is_cheap(request)) && self.destination.is_cheap(request)
    }

    fn route(&self, request: RouteRequest) -> BoxFuture<'_, RouteDecision> {
        Box::pin(async move {
            let mut info = CallInfo::default();
            for screen in &self.screens {
                if let Err(rejection) = screen.screen(&request, &mut info).await {
                    return RouteDecision::Reject(rejection);
                }
            }
            let decision = match &info.targets {
                Some(uris) => match request.request.request_uri() {
                    Some(uri) => static_targets(uri, uris).await,
                    None => RouteDecision::Reject(Rejection::new(400, "Bad Request-URI")),
                },
                None => self.destination.route(request).await,
            };
            match decision {
                RouteDecision::Forward {
                    targets,
                    mut remove_headers,
                    mut add_headers,
                    hide_topology,
                } => {
                    remove_headers.extend(info.remove_headers);
                    add_headers.extend(info.add_headers);
                    RouteDecision::Forward {
                        targets,
                        remove_headers,
                        add_headers,
                        hide_topology: hide_topology || info.hide_topology,
                    }
                }
                reject => reject,
            }
        })
    }
}

/// Tries routers in order: the first that does not answer 404 decides. The
/// static table goes first (explicit entries win), then ENUM.
pub struct FirstMatch(pub Vec<Arc<dyn Router>>);

impl Router for FirstMatch {
    fn is_cheap(&self, request: &RouteRequest) -> bool {
        self.0.iter().all(|r| r.is_cheap(request))
    }

    fn route(&self, request: RouteRequest) -> BoxFuture<'_, RouteDecision> {
        Box::pin(async move {
            let mut last = RouteDecision::Reject(Rejection::new(404, "No Route To Destination"));
            for router in &self.0 {
                match router.route(request.clone()).await {
                    RouteDecision::Reject(r) if r.status == 404 => {
                        last = RouteDecision::Reject(r);
                    }
                    decision => return decision,
                }
            }
            last
        })
    }
}

/// The static routing table of the configuration (`[[route]]`).
#[derive(Debug, Clone)]
pub struct StaticRouter {
    domains: Vec<(String, Vec<Uri>)>,
    /// Sorted longest prefix first.
    prefixes: Vec<(String, Vec<Uri>)>,
}

impl StaticRouter {
    /// Builds the table; target URIs were validated with the configuration.
    pub fn new(entries: &[RouteEntry]) -> Self {
        let mut domains = Vec::new();
        let mut prefixes = Vec::new();
        for entry in entries {
            let targets: Vec<Uri> = entry
                .targets
                .iter()
                .filter_map(|t| t.parse::<Uri>().ok())
                .collect();
            if let Some(domain) = &entry.domain {
                domains.push((domain.to_ascii_lowercase(), targets));
            } else if let Some(prefix) = &entry.prefix {
                prefixes.push((prefix.clone(), targets));
            }
        }
        // Longest prefix first; a stable sort keeps file order among equals.
        prefixes.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        Self { domains, prefixes }
    }

    /// The targets configured for a Request-URI, if any entry matches.
    pub fn lookup(&self, uri: &Uri) -> Option<&[Uri]> {
        if let Uri::Sip(sip) = uri {
            let host = sip.host.to_string().to_ascii_lowercase();
            if let Some((_, t)) = self.domains.iter().find(|(d, _)| *d == host) {
                return Some(t);
            }
        }
        let number = called_number(uri)?;
        self.prefixes
            .iter()
            .find(|(p, _)| number.starts_with(p.as_str()))
            .map(|(_, t)| t.as_slice())
    }
}

/// The called number of a Request-URI: the user part of a `sip:`/`sips:`
/// URI (unescaped `%2B` becomes `+`) or the number of a `tel:` URI.
pub fn called_number(uri: &Uri) -> Option<String> {
    match uri {
        Uri::Sip(sip) => sip
            .user
            .as_deref()
            .map(|u| String::from_utf8_lossy(&peering_proto::msg::unescape(u)).into_owned()),
        Uri::Tel(tel) => Some(tel.number.clone()),
        Uri::Other { .. } => None,
    }
}

impl Router for StaticRouter {
    fn is_cheap(&self, _request: &RouteRequest) -> bool {
        true
    }

    fn route(&self, request: RouteRequest) -> BoxFuture<'_, RouteDecision> {
        Box::pin(async move {
            match &request.kind {
                RouteKind::InDialog { next_hop } => match resolve_uri(next_hop).await {
                    Ok(targets) => RouteDecision::forward(
                        targets
                            .into_iter()
                            .map(|mut t| {
                                // In-dialog: the Request-URI is kept as received.
                                if let Some(uri) = request.request.request_uri() {
                                    t.uri = uri.clone();
                                }
                                t
                            })
                            .collect(),
                    ),
                    Err(rejection) => RouteDecision::Reject(rejection),
                },
                RouteKind::Initial => {
                    if request.request.header(&HeaderName::Route).is_some() {
                        // Our own Route values are gone by now: this one
                        // would send the call past the table to anywhere.
                        return RouteDecision::Reject(Rejection::new(
                            403,
                            "Pre-loaded Route Not Accepted",
                        ));
                    }
                    let Some(uri) = request.request.request_uri() else {
                        return RouteDecision::Reject(Rejection::new(400, "Bad Request-URI"));
                    };
                    let Some(configured) = self.lookup(uri) else {
                        return RouteDecision::Reject(Rejection::new(
                            404,
                            "No Route To Destination",
                        ));
                    };
                    let mut targets = Vec::new();
                    let mut last_err = None;
                    for target_uri in configured {
                        match resolve_uri(target_uri).await {
                            Ok(resolved) => {
                                for mut t in resolved {
                                    t.uri = request_uri_for(uri, target_uri);
                                    targets.push(t);
                                }
                            }
                            Err(e) => last_err = Some(e),
                        }
                    }
                    if targets.is_empty() {
                        return RouteDecision::Reject(
                            last_err.unwrap_or_else(|| Rejection::new(404, "Not Found")),
                        );
                    }
                    RouteDecision::forward(targets)
                }
            }
        })
    }
}

/// Resolves configured target URIs for a request to `uri`, in order.
pub async fn static_targets(uri: &Uri, configured: &[Uri]) -> RouteDecision {
    let mut targets = Vec::new();
    let mut last_err = None;
    for target_uri in configured {
        match resolve_uri(target_uri).await {
            Ok(resolved) => {
                for mut t in resolved {
                    t.uri = request_uri_for(uri, target_uri);
                    targets.push(t);
                }
            }
            Err(e) => last_err = Some(e),
        }
    }
    if targets.is_empty() {
        return RouteDecision::Reject(last_err.unwrap_or_else(|| Rejection::new(404, "Not Found")));
    }
    RouteDecision::forward(targets)
}

/// The Request-URI to send to a static target: the target's host, port and
/// parameters with the called user kept, so that the terminating side sees
/// the number that was dialled.
fn request_uri_for(original: &Uri, target: &Uri) -> Uri {
    let Uri::Sip(target_sip) = target else {
        return target.clone();
    };
    let mut out = target_sip.clone();
    if out.user.is_none() {
        match original {
            Uri::Sip(orig) => {
                out.user.clone_from(&orig.user);
                if let Some(v) = orig.param("user") {
                    out.params.push(("user".to_owned(), v.map(str::to_owned)));
                }
            }
            Uri::Tel(tel) => {
                out.user = Some(tel.number.clone());
                out.params
                    .push(("user".to_owned(), Some("phone".to_owned())));
            }
            Uri::Other { .. } => {}
        }
    }
    Uri::Sip(out)
}

/// Resolves a SIP URI to next-hop targets: numeric hosts directly, names
/// through the system resolver (A/AAAA). The transport comes from the
/// `transport` parameter, `sips:` means TLS, else UDP.
pub async fn resolve_uri(uri: &Uri) -> Result<Vec<Target>, Rejection> {
    let Uri::Sip(sip) = uri else {
        return Err(Rejection::new(416, "Unsupported URI Scheme"));
    };
    let sips = sip.scheme == Scheme::Sips;
    let transport = match sip.transport() {
        Some(t) => Transport::from_token(t)
            .ok_or_else(|| Rejection::new(503, "Unsupported Transport To Next Hop"))?,
        None if sips => Transport::Tls,
        None => Transport::Udp,
    };
    let transport = if sips { Transport::Tls } else { transport };
    let default_port = if transport == Transport::Tls {
        5061
    } else {
        5060
    };
    let port = sip.port.unwrap_or(default_port);
    let server_name = match &sip.host {
        Host::Domain(d) => Some(d.clone()),
        _ => None,
    };
    // Numeric hosts (the usual case for a configured next hop) need no
    // formatting or resolver round trip.
    let numeric = match (sip.maddr(), &sip.host) {
        (Some(maddr), _) => maddr
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .ok(),
        (None, Host::V4(ip)) => Some(IpAddr::V4(*ip)),
        (None, Host::V6(ip)) => Some(IpAddr::V6(*ip)),
        (None, Host::Domain(d)) => d.parse::<IpAddr>().ok(),
    };
    let addrs: Vec<SocketAddr> = match numeric {
        Some(ip) => vec![SocketAddr::new(ip, port)],
        None => {
            let host = sip
                .maddr()
                .map_or_else(|| sip.host.to_string(), str::to_owned);
            let bare = host.trim_start_matches('[').trim_end_matches(']');
            match tokio::net::lookup_host((bare, port)).await {
                Ok(addrs) => addrs.collect(),
                Err(_) => return Err(Rejection::new(503, "Next Hop Not Resolvable")),
            }
        }
    };
    if addrs.is_empty() {
        return Err(Rejection::new(503, "Next Hop Not Resolvable"));
    }
    Ok(addrs
        .into_iter()
        .filter(|a| !a.ip().is_unspecified() && !is_broadcast(a.ip()))
        .map(|remote| Target {
            uri: uri.clone(),
            transport,
            remote,
            server_name: server_name.clone(),
        })
        .collect())
}

fn is_broadcast(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_broadcast() || v4.is_multicast(),
        IpAddr::V6(v6) => v6.is_multicast(),
    }
}

#[cfg(test)]
mod tests;
