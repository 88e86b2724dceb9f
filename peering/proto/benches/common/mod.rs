//! A call through `Proxy` without the network, shared by the proxy bench
//! and the heap-per-call test (`tests/memory.rs` includes this file).

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use peering_proto::proxy::{Flow, LocalInterface, Proxy, ProxyConfig, Target, Transport};
use peering_proto::txn::TimerConfig;

pub(crate) const NODE: &str = "203.0.113.10:5060";
pub(crate) const A: &str = "192.0.2.1:5060";
pub(crate) const B: &str = "198.51.100.7:5060";

pub(crate) fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

pub(crate) fn proxy() -> Proxy {
    Proxy::new(ProxyConfig {
        interfaces: vec![LocalInterface {
            transport: Transport::Udp,
            addr: addr(NODE),
            host: "203.0.113.10".to_owned(),
            port: 5060,
        }],
        domains: Vec::new(),
        record_route: true,
        timers: TimerConfig::default(),
        timer_c: Duration::from_secs(180),
        server_header: "bench".to_owned(),
        udp_switch_size: None,
        instance: 1,
    })
}

pub(crate) fn invite(n: u64) -> Bytes {
    let sdp = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n";
    Bytes::from(format!(
        "INVITE sip:+4721345678@203.0.113.10 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK{n:x};rport\r\n\
         Max-Forwards: 70\r\nFrom: \"Alice\" <sip:+15550100@a.example>;tag=fa{n:x}\r\nTo: <sip:+4721345678@b.example>\r\n\
         Call-ID: {n:x}@a.example\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@192.0.2.1:5060>\r\n\
         Allow: INVITE, ACK, CANCEL, BYE, OPTIONS\r\nUser-Agent: bench\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    ))
}

pub(crate) fn flow(remote: &str) -> Flow {
    Flow {
        transport: Transport::Udp,
        local: addr(NODE),
        remote: addr(remote),
        conn: None,
    }
}

/// The next hop of every call: B.
pub(crate) fn target() -> Target {
    Target {
        uri: "sip:+4721345678@198.51.100.7:5060".parse().unwrap(),
        transport: Transport::Udp,
        remote: addr(B),
        server_name: None,
    }
}
