//! The pure rules of RFC 3261 §16 that need no state: request validation
//! (§16.3), branch and loop detection (§16.6 item 8, §16.3 item 4), route
//! pre-processing (§16.4) and best-response selection (§16.7).

use std::fmt::{self, Write as _};
use std::hash::{BuildHasher, Hash, Hasher};

use crate::msg::{HeaderName, Message, Method, NameAddr, Uri, scan_via};

use super::types::{LocalInterface, Rejection, Transport};

/// The RFC 3261 magic cookie that starts every compliant branch.
pub const MAGIC_COOKIE: &str = "z9hG4bK";

/// Option tags this proxy supports in Proxy-Require (none: a proxy needs no
/// extension to relay).
const SUPPORTED_PROXY_OPTIONS: &[&str] = &[];

/// §16.3: checks a request before any routing work. `Err` carries the
/// response to send.
pub fn validate_request(req: &Message) -> Result<(), Rejection> {
    // 1. Reasonable syntax: done by the parser. 2. URI scheme.
    match req.request_uri() {
        Some(Uri::Sip(_) | Uri::Tel(_)) => {}
        Some(Uri::Other { .. }) | None => {
            return Err(Rejection::new(416, "Unsupported URI Scheme"));
        }
    }
    // 3. Max-Forwards. OPTIONS with Max-Forwards 0 addressed to this node is
    // answered by the caller of this function before it gets here.
    if req.max_forwards() == Some(0) {
        return Err(Rejection::new(483, "Too Many Hops"));
    }
    // 5. Proxy-Require.
    let unsupported: Vec<&str> = req
        .header_values(&HeaderName::ProxyRequire)
        .into_iter()
        .map(str::trim)
        .filter(|tag| {
            !tag.is_empty()
                && !SUPPORTED_PROXY_OPTIONS
                    .iter()
                    .any(|s| s.eq_ignore_ascii_case(tag))
        })
        .collect();
    if !unsupported.is_empty() {
        return Err(Rejection::new(420, "Bad Extension")
            .with_header(HeaderName::Unsupported, unsupported.join(", ")));
    }
    Ok(())
}

/// The part of a branch that identifies the request's routing-relevant
/// fields (RFC 3261 §16.6 item 8): Request-URI as received, From tag, To
/// tag, Call-ID, CSeq number, and the Route and Proxy-Require headers. A
/// request that comes back with the same hash in one of our Vias has looped.
pub fn loop_hash(req: &Message) -> u64 {
    loop_hash_after(req, 0)
}

/// [`loop_hash`] of `req` as forwarded without its first `own_routes`
/// Route values (ours, dropped by §16.4 in the forwarding edit).
pub fn loop_hash_after(req: &Message, own_routes: usize) -> u64 {
    let mut h = branch_hasher();
    if let Some(uri) = req.request_uri() {
        // As `uri.to_string().hash(..)` would, without the String: the
        // text's bytes streamed into the hasher, then str's terminator.
        let _ = write!(HashWriter(&mut h), "{uri}");
        h.write_u8(0xff);
    }
    // The tags read from the wire: the same text as the typed views'.
    req.from_tag().hash(&mut h);
    req.to_tag().hash(&mut h);
    req.call_id().hash(&mut h);
    req.cseq().seq.hash(&mut h);
    for value in req
        .header_values(&HeaderName::Route)
        .into_iter()
        .skip(own_routes)
    {
        value.trim().hash(&mut h);
    }
    for value in req.header_values(&HeaderName::ProxyRequire) {
        value.trim().hash(&mut h);
    }
    h.finish()
}

/// The hasher of the branch hashes: the same for every request and every
/// run of this build, so that a request that comes back finds the hash it
/// left. foldhash with a fixed seed rather than std's `DefaultHasher`
/// (SipHash, built to resist chosen keys, which its fixed public key does
/// not anyway): `loop_hash_after` took 4.3 M of the node's 245 M
/// instructions with SipHash and takes 2.6 M with this, most of it now the
/// formatting of the Request-URI (callgrind, 999 calls at 50 cps).
fn branch_hasher() -> impl Hasher {
    foldhash::fast::FixedState::with_seed(0x5eed_b7a9_c4e1_0d3f).build_hasher()
}

/// Builds a branch: magic cookie, the loop hash, then a unique suffix.
///
/// The instance and the counter have fixed widths: the suffix cannot be read
/// two ways (an instance `ab` with counter `c1` would otherwise write what
/// instance `abc` writes with counter `1`), and a branch is as long after a
/// month of uptime as in the first second, so the transactions that keep it
/// (and the requests that carry it) do not grow with the counter. Twelve
/// digits last 89 years at 100,000 branches a second; a counter past them
/// writes more.
pub fn make_branch(loop_hash: u64, instance: u64, counter: u64) -> String {
    // As `format!("{MAGIC_COOKIE}{loop_hash:016x}.{instance:016x}{counter:012x}")`
    // would write it, without the formatting machinery (once per request).
    let mut b = String::with_capacity(MAGIC_COOKIE.len() + 17 + 32);
    b.push_str(MAGIC_COOKIE);
    push_hex(&mut b, loop_hash, 16);
    b.push('.');
    push_hex(&mut b, instance, 16);
    push_hex(&mut b, counter, 12);
    b
}

/// Appends `n` in lower-case hex, zero-padded to at least `width` digits.
fn push_hex(out: &mut String, n: u64, width: usize) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [0u8; 16];
    let mut i = buf.len();
    let mut n = n;
    loop {
        i -= 1;
        buf[i] = DIGITS[(n & 0xf) as usize];
        n >>= 4;
        if n == 0 && buf.len() - i >= width {
            break;
        }
    }
    out.extend(buf[i..].iter().map(|&d| char::from(d)));
}

/// The branch a stateless forward uses (§16.11): derived from the incoming
/// branch, so retransmissions of a 2xx-ACK get the same one.
pub fn stateless_branch(incoming_branch: &str, instance: u64) -> String {
    let mut h = branch_hasher();
    incoming_branch.hash(&mut h);
    instance.hash(&mut h);
    let mut b = String::with_capacity(MAGIC_COOKIE.len() + 18);
    b.push_str(MAGIC_COOKIE);
    b.push_str("sl");
    push_hex(&mut b, h.finish(), 16);
    b
}

/// §16.3 item 4: whether `req` has already passed this node with the same
/// routing-relevant fields (a loop, as opposed to a spiral).
pub fn is_loop(req: &Message, interfaces: &[LocalInterface], domains: &[String]) -> bool {
    // The Vias read from the wire (all validated at parse time): sent-by
    // and branch, without building typed values.
    let mut ours = req
        .via_values()
        .filter_map(scan_via)
        .filter(|via| is_local_host_port(via.host, via.port, None, interfaces, domains))
        .peekable();
    if ours.peek().is_none() {
        return false;
    }
    let hash = format!("{MAGIC_COOKIE}{:016x}.", loop_hash(req));
    ours.any(|via| via.branch.is_some_and(|b| b.starts_with(&hash)))
}

/// Whether `host:port` (port as written, `None` for the transport default)
/// names this node. `transport` narrows the interfaces compared when known.
pub fn is_local_host_port(
    host: &str,
    port: Option<u16>,
    transport: Option<Transport>,
    interfaces: &[LocalInterface],
    domains: &[String],
) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    // An address compares as an address (any spelling of it).
    let ip = host.parse::<std::net::IpAddr>().ok();
    let interface_match = interfaces.iter().any(|i| {
        let default_port = if i.transport == Transport::Tls {
            5061
        } else {
            5060
        };
        transport.is_none_or(|t| t == i.transport)
            && (i.host.eq_ignore_ascii_case(host) || ip == Some(i.addr.ip()))
            && port.unwrap_or(default_port) == i.port
    });
    interface_match || (port.is_none() && domains.iter().any(|d| d.eq_ignore_ascii_case(host)))
}

/// Whether a URI names this node.
pub fn is_local_uri(uri: &Uri, interfaces: &[LocalInterface], domains: &[String]) -> bool {
    match uri {
        Uri::Sip(sip) => {
            let transport = sip.transport().and_then(Transport::from_token);
            let host = ShortStr::of(&sip.host);
            let host = host.as_str();
            is_local_host_port(host, sip.port, transport, interfaces, domains)
                || (sip.port.is_none() && is_local_host_port(host, None, None, interfaces, domains))
        }
        Uri::Tel(_) | Uri::Other { .. } => false,
    }
}

/// The result of §16.4 route pre-processing.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteInfo {
    /// The Request-URI to forward with (changed when a strict router put one
    /// of our URIs there).
    pub request_uri: Option<Uri>,
    /// How many leading Route values were ours and must be removed.
    pub own_routes: usize,
    /// The first Route value that is not ours, if any.
    pub next_route: Option<NameAddr>,
    /// The Request-URI named this node and was replaced from the last Route.
    pub strict_router_fix: bool,
    /// Whether the last Route value must be removed (strict-router fix).
    pub remove_last_route: bool,
}

/// §16.4: strict-router compatibility and removal of our own Route values.
pub fn preprocess_routes(
    req: &Message,
    interfaces: &[LocalInterface],
    domains: &[String],
) -> Result<RouteInfo, Rejection> {
    let routes = req
        .routes()
        .map_err(|_| Rejection::new(400, "Bad Route Header"))?;
    let mut info = RouteInfo {
        request_uri: None,
        own_routes: 0,
        next_route: None,
        strict_router_fix: false,
        remove_last_route: false,
    };
    let mut routes: &[NameAddr] = &routes;
    // A strict router upstream put our Record-Route URI (which we always
    // write with `lr`) into the Request-URI: restore the real one from the
    // last Route value.
    if let Some(uri @ Uri::Sip(sip)) = req.request_uri()
        && sip.is_lr()
        && is_local_uri(uri, interfaces, domains)
        && let Some((last, rest)) = routes.split_last()
    {
        info.request_uri = Some(last.uri.clone());
        info.strict_router_fix = true;
        info.remove_last_route = true;
        routes = rest;
    }
    for route in routes {
        if is_local_uri(&route.uri, interfaces, domains) {
            info.own_routes += 1;
        } else {
            info.next_route = Some(route.clone());
            break;
        }
    }
    Ok(info)
}

/// How good a final response is for §16.7 step 6 best-response selection:
/// lower is better. 6xx beats everything, then 2xx (never stored), then the
/// lowest class, preferring specific 4xx codes over 408 and 503.
pub fn response_rank(status: u16) -> u32 {
    match status {
        600..=699 => 0,
        200..=299 => 1,
        300..=399 => 2,
        401 | 407 | 415 | 420 | 484 => 3,
        408 => 6,
        400..=499 => 4,
        503 => 8,
        500..=599 => 7,
        _ => 9,
    }
}

/// Whether a final response (or its absence) should send the call to the
/// next target in the list: 408, 5xx and transport errors (generated as
/// 503 by the core).
pub fn is_failover_status(status: u16) -> bool {
    status == 408 || (500..=599).contains(&status)
}

/// Methods that create dialogs and therefore get a Record-Route.
pub fn creates_dialog(method: &Method) -> bool {
    matches!(
        method,
        Method::Invite | Method::Subscribe | Method::Refer | Method::Notify
    )
}

/// Streams formatted text into a hasher.
struct HashWriter<'a, H: Hasher>(&'a mut H);

impl<H: Hasher> fmt::Write for HashWriter<'_, H> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.write(s.as_bytes());
        Ok(())
    }
}

/// A displayed value on the stack when it is short (host names and
/// addresses almost always are), else on the heap.
enum ShortStr {
    Stack([u8; 64], usize),
    Heap(String),
}

impl ShortStr {
    fn of(value: &impl fmt::Display) -> Self {
        struct Buf([u8; 64], usize);
        impl fmt::Write for Buf {
            fn write_str(&mut self, s: &str) -> fmt::Result {
                let end = self.1 + s.len();
                let dst = self.0.get_mut(self.1..end).ok_or(fmt::Error)?;
                dst.copy_from_slice(s.as_bytes());
                self.1 = end;
                Ok(())
            }
        }
        let mut buf = Buf([0; 64], 0);
        if write!(buf, "{value}").is_ok() {
            Self::Stack(buf.0, buf.1)
        } else {
            Self::Heap(value.to_string())
        }
    }

    fn as_str(&self) -> &str {
        match self {
            Self::Stack(buf, len) => std::str::from_utf8(&buf[..*len]).unwrap_or_default(),
            Self::Heap(s) => s,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branches_are_written_as_format_would() {
        for (hash, instance, counter) in [
            (0, 0, 0),
            (1, 0xf, 0x10),
            (0xdead_beef, 7, u64::MAX),
            (u64::MAX, u64::MAX, 1),
            (5, 1 << 60, (1 << 48) - 1),
            (5, 1 << 60, 1 << 48),
        ] {
            assert_eq!(
                make_branch(hash, instance, counter),
                format!("{MAGIC_COOKIE}{hash:016x}.{instance:016x}{counter:012x}")
            );
        }
        assert_eq!(
            make_branch(1, 2, 0).len(),
            make_branch(1, 2, (1 << 48) - 1).len()
        );
        let b = stateless_branch("z9hG4bKabc", 3);
        assert_eq!(b.len(), MAGIC_COOKIE.len() + 2 + 16);
        assert!(b.starts_with("z9hG4bKsl"));
        assert_eq!(b, stateless_branch("z9hG4bKabc", 3));
        assert_ne!(b, stateless_branch("z9hG4bKabd", 3));
    }

    #[test]
    fn local_addresses_compare_as_addresses() {
        let iface = LocalInterface {
            transport: Transport::Udp,
            host: "2001:db8::1".to_owned(),
            addr: "[2001:db8::1]:5060".parse().unwrap(),
            port: 5060,
        };
        let ifaces = [iface];
        for host in ["[2001:db8::1]", "[2001:DB8:0::1]", "2001:db8:0:0::1"] {
            assert!(is_local_host_port(host, None, None, &ifaces, &[]), "{host}");
        }
        assert!(!is_local_host_port(
            "[2001:db8::2]",
            None,
            None,
            &ifaces,
            &[]
        ));
        assert!(!is_local_host_port(
            "[2001:db8::1]",
            Some(5070),
            None,
            &ifaces,
            &[]
        ));
    }
}
