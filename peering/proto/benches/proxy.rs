//! The proxy core's per-message path: a call set up through `Proxy` (INVITE
//! in, the routing answer, 100 and the forwarded INVITE out, 180 and 200
//! relayed), bytes in and bytes out, with parsing, transactions and
//! serialisation. No I/O. The transactions stay behind (no timer is run),
//! so the proxy grows during a run. The heap a ringing call holds is
//! measured by `tests/memory.rs`.

mod common;

use std::hint::black_box;
use std::time::Instant;

use bytes::Bytes;
use common::{A, B, flow, invite, proxy, target};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use peering_proto::msg::{self, Message};
use peering_proto::proxy::{Event, Proxy, RouteDecision, Target};

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
    let target = target();
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
