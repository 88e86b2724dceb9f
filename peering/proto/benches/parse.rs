//! Parse and proxy-style re-serialisation of a typical INVITE with SDP.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use peering_proto::msg::{HeaderName, Message, Uri};

const INVITE: &[u8] = include_bytes!("../testdata/captures/invite-sdp.sip");

fn parse(c: &mut Criterion) {
    let wire = Bytes::from_static(INVITE);
    let mut g = c.benchmark_group("invite");
    g.throughput(Throughput::Bytes(INVITE.len() as u64));
    g.bench_function("parse", |b| {
        b.iter(|| Message::parse(black_box(wire.clone())).unwrap())
    });
    // Parse plus the typed views a proxy reads for every request (they are
    // validated at parse time and built on first use).
    g.bench_function("parse_typed_views", |b| {
        b.iter(|| {
            let m = Message::parse(black_box(wire.clone())).unwrap();
            black_box(m.request_uri());
            black_box(m.top_via().and_then(|v| v.branch()).map(str::len));
            black_box(m.from().tag().map(str::len));
            black_box(m.to().tag().map(str::len));
            m
        })
    });
    let msg = Message::parse(wire.clone()).unwrap();
    let next_hop: Uri = "sip:+14155550123@10.0.0.7:5060;user=phone".parse().unwrap();
    g.bench_function("proxy_edit_finish", |b| {
        b.iter(|| {
            let m = black_box(&msg);
            let mut e = m.edit();
            e.prepend_header(
                HeaderName::Via,
                "SIP/2.0/UDP node1.federation.example.org;branch=z9hG4bKnode1x7",
            )
            .remove_first_value(&HeaderName::Route)
            .set_request_uri(&next_hop)
            .set_max_forwards(m.max_forwards().unwrap_or(70) - 1)
            .prepend_header(
                HeaderName::RecordRoute,
                "<sip:node1.federation.example.org;lr>",
            );
            e.finish()
        })
    });
    g.bench_function("parse_edit_finish", |b| {
        b.iter(|| {
            let m = Message::parse(black_box(wire.clone())).unwrap();
            let mut e = m.edit();
            e.prepend_header(
                HeaderName::Via,
                "SIP/2.0/UDP node1.federation.example.org;branch=z9hG4bKnode1x7",
            )
            .remove_first_value(&HeaderName::Route)
            .set_max_forwards(68);
            e.finish()
        })
    });
    g.finish();
}

criterion_group!(benches, parse);
criterion_main!(benches);
