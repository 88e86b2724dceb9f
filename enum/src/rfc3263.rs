//! Locating a SIP server (RFC 3263 §4), pure: which DNS questions to ask for
//! a SIP URI, and how to order the answers (RFC 2782 weighted selection).
//!
//! ```text
//! transport:  URI transport param  >  numeric host / explicit port (UDP, or TLS for sips)
//!             >  NAPTR (SIP+D2U, SIP+D2T, SIPS+D2T)  >  SRV per transport  >  UDP / TLS
//! port:       explicit port  >  SRV  >  5060 (5061 for TLS)
//! ```
//!
//! [`plan`] decides what to look up; [`naptr_services`] picks the SRV names
//! from a NAPTR set; [`order_srv`] orders an SRV set. The resolver edge runs
//! the plan.

use std::net::{IpAddr, SocketAddr};

use rand::Rng;

use crate::error::{Error, Result, UriProblem};
use crate::naptr::NaptrRecord;

/// A SIP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    /// UDP.
    Udp,
    /// TCP.
    Tcp,
    /// TLS over TCP.
    Tls,
}

impl Transport {
    /// The default port (RFC 3261 §19.1.2).
    pub fn default_port(self) -> u16 {
        match self {
            Self::Tls => 5061,
            Self::Udp | Self::Tcp => 5060,
        }
    }

    /// The SRV owner prefix for this transport (RFC 3263 §4.1).
    pub fn srv_prefix(self) -> &'static str {
        match self {
            Self::Udp => "_sip._udp",
            Self::Tcp => "_sip._tcp",
            Self::Tls => "_sips._tcp",
        }
    }

    /// The NAPTR service for this transport (RFC 3263 §4.1).
    pub fn naptr_service(self) -> &'static str {
        match self {
            Self::Udp => "SIP+D2U",
            Self::Tcp => "SIP+D2T",
            Self::Tls => "SIPS+D2T",
        }
    }

    /// The value of a `transport=` URI parameter, case-insensitive.
    pub fn from_param(value: &str) -> Option<Self> {
        [Self::Udp, Self::Tcp, Self::Tls]
            .into_iter()
            .find(|t| t.param().eq_ignore_ascii_case(value))
    }

    /// The `transport=` parameter value.
    pub fn param(self) -> &'static str {
        match self {
            Self::Udp => "udp",
            Self::Tcp => "tcp",
            Self::Tls => "tls",
        }
    }
}

/// The parts of a SIP URI that RFC 3263 needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipUri {
    /// `sips:` rather than `sip:`.
    pub secure: bool,
    /// The host: a domain name or an IP literal (IPv6 without brackets).
    pub host: String,
    /// An explicit port.
    pub port: Option<u16>,
    /// The `transport=` parameter.
    pub transport: Option<Transport>,
    /// The `maddr=` parameter: when present it replaces the host.
    pub maddr: Option<String>,
}

impl SipUri {
    /// Parses the URI text of an ENUM result, e.g.
    /// `sip:alice@example.net:5070;transport=tcp`.
    pub fn parse(text: &str) -> Result<Self> {
        let bad = |problem| Error::BadSipUri { problem };
        let (secure, rest) = if let Some(r) = strip_ci(text, "sips:") {
            (true, r)
        } else if let Some(r) = strip_ci(text, "sip:") {
            (false, r)
        } else {
            return Err(bad(UriProblem::Scheme));
        };
        // Headers (`?`) are not part of the target.
        let rest = rest.split('?').next().unwrap_or_default();
        let hostpart_start = rest.rfind('@').map_or(0, |i| i + 1);
        let after_user = &rest[hostpart_start..];
        let (hostport, params) = match after_user.find(';') {
            Some(i) => (&after_user[..i], &after_user[i + 1..]),
            None => (after_user, ""),
        };
        let (host, port) = split_hostport(hostport).ok_or_else(|| bad(UriProblem::Port))?;
        if host.is_empty() {
            return Err(bad(UriProblem::NoHost));
        }
        let mut transport = None;
        let mut maddr = None;
        for param in params.split(';') {
            let (name, value) = param.split_once('=').unwrap_or((param, ""));
            if name.eq_ignore_ascii_case("transport") {
                transport =
                    Some(Transport::from_param(value).ok_or_else(|| bad(UriProblem::Transport))?);
            } else if name.eq_ignore_ascii_case("maddr") && !value.is_empty() {
                maddr = Some(
                    value
                        .trim_start_matches('[')
                        .trim_end_matches(']')
                        .to_owned(),
                );
            }
        }
        Ok(Self {
            secure,
            host: host.to_owned(),
            port,
            transport,
            maddr,
        })
    }

    /// The host to resolve: `maddr` when present (RFC 3263 §4).
    pub fn target_host(&self) -> &str {
        self.maddr.as_deref().unwrap_or(&self.host)
    }
}

fn strip_ci<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// `host`, `host:port`, `[v6]`, `[v6]:port`.
fn split_hostport(text: &str) -> Option<(&str, Option<u16>)> {
    let parse_port = |p: &str| p.parse::<u16>().ok().filter(|p| *p != 0);
    if let Some(rest) = text.strip_prefix('[') {
        let end = rest.find(']')?;
        let host = &rest[..end];
        let tail = &rest[end + 1..];
        return match tail.strip_prefix(':') {
            Some(p) => Some((host, Some(parse_port(p)?))),
            None if tail.is_empty() => Some((host, None)),
            None => None,
        };
    }
    match text.rsplit_once(':') {
        Some((host, p)) => Some((host, Some(parse_port(p)?))),
        None => Some((text, None)),
    }
}

/// One place to send a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Target {
    /// The transport.
    pub transport: Transport,
    /// The address and port.
    pub addr: SocketAddr,
    /// The SRV priority it came from (0 without SRV); lower is tried first.
    pub priority: u16,
}

/// An SRV record (RFC 2782).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SrvRecord {
    /// Priority: lower first.
    pub priority: u16,
    /// Weight among equal priority.
    pub weight: u16,
    /// Port.
    pub port: u16,
    /// Target host; `.` means "no service here".
    pub target: String,
}

/// An SRV name to ask for, with the transport it stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrvQuery {
    /// The transport.
    pub transport: Transport,
    /// The SRV owner name, e.g. `_sip._udp.example.net`.
    pub name: String,
}

/// What to look up for a SIP URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// The host is an IP literal: no lookup.
    Numeric(Target),
    /// Resolve A/AAAA of `host` and use `port` and `transport`.
    Address {
        /// The host.
        host: String,
        /// The port.
        port: u16,
        /// The transport.
        transport: Transport,
    },
    /// Ask SRV for `queries` in order; if none answers, resolve A/AAAA of
    /// `host` with the transport's default port (`fallback`).
    Srv {
        /// The SRV names.
        queries: Vec<SrvQuery>,
        /// The host for the A/AAAA fallback.
        host: String,
        /// The transport for the A/AAAA fallback.
        fallback: Transport,
    },
    /// Ask NAPTR for `host` and pick SRV names with [`naptr_services`]
    /// limited to `allowed`; if that yields nothing, go on as
    /// [`Plan::Srv`] with `srv`.
    Naptr {
        /// The host.
        host: String,
        /// The transports acceptable for this URI.
        allowed: Vec<Transport>,
        /// The plan without NAPTR (RFC 3263 §4.1 last paragraph).
        srv: Box<Plan>,
    },
}

/// The transports a client with `supported` transports may use for `uri`.
fn usable(uri: &SipUri, supported: &[Transport]) -> Vec<Transport> {
    supported
        .iter()
        .copied()
        .filter(|t| !uri.secure || *t == Transport::Tls)
        .collect()
}

/// Decides the lookups for `uri` (RFC 3263 §4.1, §4.2). `supported` lists
/// the transports this client speaks, in order of preference for SRV
/// queries without NAPTR.
pub fn plan(uri: &SipUri, supported: &[Transport]) -> Plan {
    let host = uri.target_host().trim_end_matches('.');
    // sips: always TLS; transport=tcp with sips means TLS (RFC 3261 §26.2.2).
    let explicit = uri
        .transport
        .map(|t| if uri.secure { Transport::Tls } else { t });
    let default_transport = if uri.secure {
        Transport::Tls
    } else {
        Transport::Udp
    };
    if let Ok(ip) = host.parse::<IpAddr>() {
        let transport = explicit.unwrap_or(default_transport);
        let port = uri.port.unwrap_or_else(|| transport.default_port());
        return Plan::Numeric(Target {
            transport,
            addr: SocketAddr::new(ip, port),
            priority: 0,
        });
    }
    if let Some(port) = uri.port {
        return Plan::Address {
            host: host.to_owned(),
            port,
            transport: explicit.unwrap_or(default_transport),
        };
    }
    if let Some(transport) = explicit {
        return Plan::Srv {
            queries: vec![srv_query(transport, host)],
            host: host.to_owned(),
            fallback: transport,
        };
    }
    let allowed = usable(uri, supported);
    let srv = Plan::Srv {
        queries: allowed.iter().map(|t| srv_query(*t, host)).collect(),
        host: host.to_owned(),
        fallback: default_transport,
    };
    Plan::Naptr {
        host: host.to_owned(),
        allowed,
        srv: Box::new(srv),
    }
}

fn srv_query(transport: Transport, host: &str) -> SrvQuery {
    SrvQuery {
        transport,
        name: format!("{}.{host}", transport.srv_prefix()),
    }
}

/// The SRV names a host's NAPTR set offers for SIP (RFC 3263 §4.1): records
/// with flag `s` and a service of an `allowed` transport, by ORDER then
/// PREFERENCE.
pub fn naptr_services(records: &[NaptrRecord], allowed: &[Transport]) -> Vec<SrvQuery> {
    let mut sorted: Vec<&NaptrRecord> = records.iter().collect();
    sorted.sort_by_key(|r| (r.order, r.preference));
    sorted
        .into_iter()
        .filter(|r| r.flags.eq_ignore_ascii_case("s"))
        .filter(|r| !r.replacement.is_empty() && r.replacement != ".")
        .filter_map(|r| {
            let transport = allowed
                .iter()
                .copied()
                .find(|t| t.naptr_service().eq_ignore_ascii_case(r.services.trim()))?;
            Some(SrvQuery {
                transport,
                name: r.replacement.trim_end_matches('.').to_owned(),
            })
        })
        .collect()
}

/// Orders an SRV set (RFC 2782, "Usage rules"): by priority, and within one
/// priority by repeated weighted random choice, weight-0 records first in
/// the running sum so that they are chosen rarely. Records whose target is
/// `.` are dropped. `rng` is injected so that tests are repeatable.
pub fn order_srv<R: Rng + ?Sized>(records: &[SrvRecord], rng: &mut R) -> Vec<SrvRecord> {
    let mut usable: Vec<&SrvRecord> = records
        .iter()
        .filter(|r| !r.target.is_empty() && r.target != ".")
        .collect();
    usable.sort_by_key(|r| (r.priority, r.weight != 0));
    let mut out = Vec::with_capacity(usable.len());
    let mut start = 0;
    while start < usable.len() {
        let prio = usable[start].priority;
        let end = usable[start..]
            .iter()
            .position(|r| r.priority != prio)
            .map_or(usable.len(), |n| start + n);
        let mut group: Vec<&SrvRecord> = usable[start..end].to_vec();
        while !group.is_empty() {
            let total: u32 = group.iter().map(|r| u32::from(r.weight)).sum();
            let pick = rng.random_range(0..=total);
            let mut running = 0u32;
            let mut chosen = group.len() - 1;
            for (i, r) in group.iter().enumerate() {
                running += u32::from(r.weight);
                if running >= pick {
                    chosen = i;
                    break;
                }
            }
            out.push(group.remove(chosen).clone());
        }
        start = end;
    }
    out
}

#[cfg(test)]
mod tests;
