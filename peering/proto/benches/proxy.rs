//! The proxy core's per-message path: a call set up through `Proxy` (INVITE
//! in, the routing answer, 100 and the forwarded INVITE out, 180 and 200
//! relayed), bytes in and bytes out, with parsing, transactions and
//! serialisation. No I/O. The transactions stay behind (no timer is run),
//! so the proxy grows during a run. The heap a ringing call holds is
//! measured by `tests/memory.rs`.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use peering_proto::msg::{self, Message};
use peering_proto::proxy::{
    Event, Flow, LocalInterface, Proxy, ProxyConfig, RouteDecision, Target, Transport,
};
use peering_proto::txn::TimerConfig;

const NODE: &str = "203.0.113.10:5060";
const A: &str = "192.0.2.1:5060";
const B: &str = "198.51.100.7:5060";

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

/// Runs one call through the proxy and returns the bytes it sent.
fn call(p: &mut Proxy, now: Instant, n: u64, target: &Target) -> usize {
    let mut out = 0;
    let mut drain = |p: &mut Proxy| -> Vec<Bytes> {
        let mut sent = Vec::new();
        while let Some(t) = p.poll_transmit() {
            out += t.bytes.len();
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
    for status in [180, 200] {
        let resp = msg::response_to(&fwd, status, "X", Some("tb"), &[]);
        p.handle_message(now, Message::parse(resp).unwrap(), flow(B));
        drain(p);
    }
    while p.poll_event().is_some() {}
    out
}

fn bench(c: &mut Criterion) {
    #[expect(clippy::disallowed_methods, reason = "the bench owns the clock")]
    let now = Instant::now();
    let target = Target {
        uri: "sip:+4721345678@198.51.100.7:5060".parse().unwrap(),
        transport: Transport::Udp,
        remote: addr(B),
        server_name: None,
    };
    let mut g = c.benchmark_group("proxy");
    g.throughput(Throughput::Elements(1));
    g.bench_function("call_setup_invite_180_200", |b| {
        let mut p = proxy();
        let mut n = 0u64;
        b.iter(|| {
            n += 1;
            black_box(call(&mut p, now, n, &target))
        });
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
