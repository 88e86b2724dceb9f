//! ENUM routing at the seam: the called number of the Request-URI goes
//! through `peering-enum` (E.164 → ENUM domain → NAPTR → SIP URIs → RFC 3263
//! targets) and the result becomes the proxy's ordered target list.

use std::net::SocketAddr;
use std::time::Duration;

use peering_enum::e164::{CalledUri, Scheme};
use peering_enum::resolver::{EnumConfig, EnumResolver};
use peering_proto::msg::{Host, Uri};
use peering_proto::proxy::{Rejection, RouteDecision, RouteKind, Target, Transport};
use serde::Deserialize;
use tracing::debug;

use crate::router::{BoxFuture, RouteRequest, Router};

/// `[enum]`: ENUM routing of calls to telephone numbers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnumSection {
    /// The DNS server to ask, `IP:port`.
    pub server: SocketAddr,
    /// ENUM suffixes, asked in order (e.g. the federation's private tree,
    /// then `e164.arpa`).
    #[serde(default = "default_suffixes")]
    pub suffixes: Vec<String>,
    /// Milliseconds to wait for one DNS answer.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Extra tries after a DNS timeout.
    #[serde(default = "default_attempts")]
    pub attempts: usize,
    /// Longest chain of non-terminal NAPTRs followed.
    #[serde(default = "default_max_chain")]
    pub max_chain: usize,
    /// DNS answers kept in the cache.
    #[serde(default = "default_cache_size")]
    pub cache_size: usize,
    /// Limit for a whole lookup (all queries of one call), in milliseconds;
    /// past it the call is answered 503.
    #[serde(default = "default_lookup_timeout_ms")]
    pub lookup_timeout_ms: u64,
}

fn default_suffixes() -> Vec<String> {
    vec!["e164.arpa".to_owned()]
}
fn default_timeout_ms() -> u64 {
    2000
}
fn default_attempts() -> usize {
    1
}
fn default_max_chain() -> usize {
    5
}
fn default_cache_size() -> usize {
    10_000
}
fn default_lookup_timeout_ms() -> u64 {
    5000
}

/// Routes by ENUM.
#[derive(Clone)]
pub struct EnumRouter {
    resolver: EnumResolver,
    lookup_timeout: Duration,
}

impl std::fmt::Debug for EnumRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnumRouter")
            .field("lookup_timeout", &self.lookup_timeout)
            .finish_non_exhaustive()
    }
}

impl EnumRouter {
    /// Builds the resolver for a section.
    pub fn new(section: &EnumSection) -> Result<Self, peering_enum::Error> {
        let mut config = EnumConfig::new(section.server, section.suffixes.clone());
        config.timeout = Duration::from_millis(section.timeout_ms);
        config.attempts = section.attempts;
        config.max_chain = section.max_chain;
        config.cache_capacity = section.cache_size;
        Ok(Self {
            resolver: EnumResolver::new(config)?,
            lookup_timeout: Duration::from_millis(section.lookup_timeout_ms),
        })
    }

    /// The resolver (shared cache), e.g. for RFC 3263 of other URIs.
    pub fn resolver(&self) -> &EnumResolver {
        &self.resolver
    }

    async fn route_uri(&self, uri: &Uri) -> RouteDecision {
        let tel_rest;
        let params: Vec<(&str, Option<&str>)>;
        let called = match uri {
            Uri::Tel(tel) => {
                tel_rest = std::iter::once(tel.number.clone())
                    .chain(tel.params.iter().map(|(k, v)| match v {
                        Some(v) => format!("{k}={v}"),
                        None => k.clone(),
                    }))
                    .collect::<Vec<_>>()
                    .join(";");
                CalledUri {
                    scheme: Scheme::Tel,
                    user: &tel_rest,
                    uri_params: &[],
                }
            }
            Uri::Sip(sip) => {
                let Some(user) = sip.user.as_deref() else {
                    return RouteDecision::Reject(Rejection::new(404, "Not A Telephone Number"));
                };
                params = sip
                    .params
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_deref()))
                    .collect();
                CalledUri {
                    scheme: if matches!(sip.scheme, peering_proto::msg::Scheme::Sips) {
                        Scheme::Sips
                    } else {
                        Scheme::Sip
                    },
                    user,
                    uri_params: &params,
                }
            }
            Uri::Other { .. } => {
                return RouteDecision::Reject(Rejection::new(416, "Unsupported URI Scheme"));
            }
        };
        let lookup = tokio::time::timeout(self.lookup_timeout, self.resolver.resolve_uri(&called));
        let resolved = match lookup.await {
            Ok(Ok(resolved)) => resolved,
            Ok(Err(error)) => {
                let (status, reason) = error.status();
                debug!(%error, status, "ENUM lookup refused the call");
                return RouteDecision::Reject(Rejection::new(status, reason).with_header(
                    peering_proto::msg::HeaderName::Warning,
                    format!(
                        "399 peering \"ENUM: {}\"",
                        error.to_string().replace('"', "'")
                    ),
                ));
            }
            Err(_) => {
                return RouteDecision::Reject(
                    Rejection::new(503, "ENUM Lookup Timed Out")
                        .with_header(peering_proto::msg::HeaderName::RetryAfter, "5"),
                );
            }
        };
        let targets: Vec<Target> = resolved
            .into_iter()
            .filter_map(|r| {
                let uri: Uri = r.uri.parse().ok()?;
                let server_name = match &uri {
                    Uri::Sip(sip) => match &sip.host {
                        Host::Domain(d) => Some(d.clone()),
                        _ => None,
                    },
                    _ => None,
                };
                Some(Target {
                    uri,
                    transport: match r.target.transport {
                        peering_enum::rfc3263::Transport::Udp => Transport::Udp,
                        peering_enum::rfc3263::Transport::Tcp => Transport::Tcp,
                        peering_enum::rfc3263::Transport::Tls => Transport::Tls,
                    },
                    remote: r.target.addr,
                    server_name,
                })
            })
            .collect();
        if targets.is_empty() {
            return RouteDecision::Reject(Rejection::new(404, "No Usable ENUM Route"));
        }
        RouteDecision::forward(targets)
    }
}

impl Router for EnumRouter {
    /// Cached answers are hash lookups; a lookup that needs DNS returns
    /// pending and runs as its own task.
    fn is_cheap(&self, _request: &RouteRequest) -> bool {
        true
    }

    fn route(&self, request: RouteRequest) -> BoxFuture<'_, RouteDecision> {
        Box::pin(async move {
            match &request.kind {
                // In-dialog requests follow their route set, not ENUM.
                RouteKind::InDialog { .. } => {
                    RouteDecision::Reject(Rejection::new(404, "Not Routed By ENUM"))
                }
                RouteKind::Initial => match request.request.request_uri() {
                    Some(uri) => self.route_uri(uri).await,
                    None => RouteDecision::Reject(Rejection::new(400, "Bad Request-URI")),
                },
            }
        })
    }
}
