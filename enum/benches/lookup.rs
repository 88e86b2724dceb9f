//! The lookup path: a called number to ordered SIP targets, through the
//! crate's own authoritative server on loopback, with a cold cache
//! (every NAPTR/SRV/A query goes to DNS) and a warm one; plus the pure NAPTR
//! step alone.
//!
//! Run: `cargo bench -p peering-enum --bench lookup`

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use peering_enum::e164::CalledNumber;
use peering_enum::naptr::{NaptrRecord, NaptrWalk, RegexpCache};
use peering_enum::resolver::{EnumConfig, EnumResolver};
use peering_enum::rfc3263::SrvRecord;
use peering_enum::server::ZoneServer;
use peering_enum::zone::{
    EnumZone, MemoryZoneSource, RecordData, ZoneEntry, ZoneRecord, ZoneSource,
};

fn naptrs() -> Vec<NaptrRecord> {
    vec![
        NaptrRecord::new(
            10,
            10,
            "u",
            "E2U+sip",
            r"!^\+44(.*)$!sip:\1@gw1.sip.test!",
            ".",
        ),
        NaptrRecord::new(10, 20, "u", "E2U+sip", "!^.*$!sip:b@gw1.sip.test!", "."),
        NaptrRecord::new(
            20,
            10,
            "u",
            "E2U+email:mailto",
            "!^.*$!mailto:a@example.test!",
            ".",
        ),
    ]
}

fn zones() -> Vec<EnumZone> {
    let mut e = EnumZone::new("e164.test.", "ns.sip.test.", 1);
    e.entries
        .push(ZoneEntry::number("441632960001", "m", naptrs()));
    let mut h = EnumZone::new("sip.test.", "ns.sip.test.", 1);
    let rec = |name: &str, data| ZoneRecord {
        name: name.into(),
        ttl: 300,
        data,
    };
    h.extra = vec![
        rec("gw1", RecordData::A(Ipv4Addr::new(127, 0, 0, 1))),
        rec(
            "gw1",
            RecordData::Naptr(NaptrRecord::new(
                10,
                10,
                "s",
                "SIP+D2U",
                "",
                "_sip._udp.gw1.sip.test.",
            )),
        ),
        rec(
            "_sip._udp.gw1",
            RecordData::Srv(SrvRecord {
                priority: 10,
                weight: 10,
                port: 5060,
                target: "gw1.sip.test.".into(),
            }),
        ),
    ];
    vec![e, h]
}

fn lookup(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let source: Arc<dyn ZoneSource> = Arc::new(MemoryZoneSource::new(zones()));
    let server = rt
        .block_on(ZoneServer::bind("127.0.0.1:0".parse().unwrap(), source))
        .unwrap();
    let resolver = rt
        .block_on(async {
            EnumResolver::new(EnumConfig::new(
                server.local_addr(),
                vec!["e164.test".into()],
            ))
        })
        .unwrap();
    let called = CalledNumber::parse_tel("tel:+441632960001").unwrap();
    let targets = rt.block_on(resolver.resolve(&called)).unwrap();
    assert_eq!(targets.len(), 2);

    let mut group = c.benchmark_group("lookup");
    group.bench_function("uncached", |b| {
        b.iter(|| {
            resolver.clear_cache();
            black_box(rt.block_on(resolver.resolve(&called)).unwrap())
        })
    });
    group.bench_function("cached", |b| {
        b.iter(|| black_box(rt.block_on(resolver.resolve(&called)).unwrap()))
    });
    let records = naptrs();
    let aus = called.number.aus();
    let domain = called.routing().enum_domain("e164.test");
    group.bench_function("naptr_pure", |b| {
        b.iter(|| {
            let mut walk = NaptrWalk::new(&aus, &domain, 5);
            walk.handle_answer(black_box(&records));
            black_box(walk.finish().unwrap())
        })
    });
    let regexps = Arc::new(RegexpCache::new(64));
    group.bench_function("naptr_pure_regexp_cached", |b| {
        b.iter(|| {
            let mut walk = NaptrWalk::new(&aus, &domain, 5).with_cache(regexps.clone());
            walk.handle_answer(black_box(&records));
            black_box(walk.finish().unwrap())
        })
    });
    group.finish();
    drop(server);
}

criterion_group!(benches, lookup);
criterion_main!(benches);
