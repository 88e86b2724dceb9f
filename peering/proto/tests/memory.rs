//! Heap held per ringing call by the proxy core, measured without the
//! network: a counting global allocator, N calls driven through `Proxy`
//! exactly as the proxy bench drives them (INVITE in, route answer, 100 and
//! forward out, 180 relayed) and left ringing, then (live bytes) / N.
//!
//! Each held call is one server INVITE transaction, one client INVITE
//! transaction and the proxy context linking them. Run with
//! `cargo test -p peering-proto --release --test memory -- --nocapture` to
//! see the figures.

use std::alloc::System;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use peering_proto::msg::{self, Message};
use peering_proto::proxy::{
    Event, Flow, LocalInterface, Proxy, ProxyConfig, RouteDecision, Target, Transport,
};
use peering_proto::txn::TimerConfig;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const NODE: &str = "203.0.113.10:5060";
const A: &str = "192.0.2.1:5060";
const B: &str = "198.51.100.7:5060";

/// Calls held ringing at once.
const CALLS: u64 = 10_000;

/// The budget per held call (server INVITE + client INVITE + context).
const BUDGET: usize = 4096;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn proxy() -> Proxy {
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

/// The proxy bench's INVITE (about 1 KB with its SDP).
fn invite(n: u64) -> Bytes {
    let sdp = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n";
    Bytes::from(format!(
        "INVITE sip:+4721345678@203.0.113.10 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK{n:x};rport\r\n\
         Max-Forwards: 70\r\nFrom: \"Alice\" <sip:+15550100@a.example>;tag=fa{n:x}\r\nTo: <sip:+4721345678@b.example>\r\n\
         Call-ID: {n:x}@a.example\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@192.0.2.1:5060>\r\n\
         Allow: INVITE, ACK, CANCEL, BYE, OPTIONS\r\nUser-Agent: bench\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    ))
}

fn flow(remote: &str) -> Flow {
    Flow {
        transport: Transport::Udp,
        local: addr(NODE),
        remote: addr(remote),
        conn: None,
    }
}

/// One call up to a relayed 180, left ringing.
fn ring(p: &mut Proxy, now: Instant, n: u64, target: &Target) {
    let drain = |p: &mut Proxy| -> Vec<Bytes> {
        let mut sent = Vec::new();
        while let Some(t) = p.poll_transmit() {
            sent.push(t.bytes);
        }
        sent
    };
    p.handle_message(now, Message::parse(invite(n)).unwrap(), flow(A));
    drain(p);
    let Some(Event::Route { id, .. }) = p.poll_event() else {
        panic!("route question expected")
    };
    p.handle_route(now, id, RouteDecision::forward(vec![target.clone()]));
    let fwd = Message::parse(drain(p).pop().unwrap()).unwrap();
    let resp = msg::response_to(&fwd, 180, "Ringing", Some("tb"), &[]);
    p.handle_message(now, Message::parse(resp).unwrap(), flow(B));
    assert_eq!(drain(p).len(), 1, "the 180 is relayed");
    while p.poll_event().is_some() {}
}

#[test]
fn heap_per_ringing_call() {
    #[expect(clippy::disallowed_methods, reason = "the test owns the clock")]
    let now = Instant::now();
    let target = Target {
        uri: "sip:+4721345678@198.51.100.7:5060".parse().unwrap(),
        transport: Transport::Udp,
        remote: addr(B),
        server_name: None,
    };
    let region = Region::new(GLOBAL);
    let mut p = proxy();
    for n in 1..=CALLS {
        ring(&mut p, now, n, &target);
    }
    let stats = region.change();
    assert_eq!(p.context_count(), CALLS as usize);
    assert_eq!(p.transaction_count(), 2 * CALLS as usize);
    let live_bytes =
        stats.bytes_allocated as isize - stats.bytes_deallocated as isize + stats.bytes_reallocated;
    let live_blocks = stats.allocations as isize - stats.deallocations as isize;
    let per_call = live_bytes as f64 / CALLS as f64;
    let blocks_per_call = live_blocks as f64 / CALLS as f64;
    println!(
        "held ringing calls: {CALLS}; heap live: {live_bytes} bytes in {live_blocks} blocks; \
         per call: {per_call:.0} bytes in {blocks_per_call:.1} blocks"
    );
    drop(p);
    assert!(
        per_call <= BUDGET as f64,
        "{per_call:.0} bytes per ringing call, budget {BUDGET}"
    );
}
