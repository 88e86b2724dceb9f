//! Costs on the call path: flood check (before parsing), policy evaluation,
//! limiter admission and scanner matching.

use std::hint::black_box;
use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime};

use criterion::{Criterion, criterion_group, criterion_main};
use peering_policy::federation::FederationFile;
use peering_policy::flood::{FloodConfig, FloodGuard, ScannerRules};
use peering_policy::ratelimit::Limiter;
use peering_policy::{CallAttempt, IdentityCheck, Registry, evaluate};

fn registry() -> Registry {
    let text = include_str!("../testdata/federation.toml");
    let snapshot = FederationFile::parse(text)
        .and_then(|f| f.to_snapshot())
        .unwrap_or_default();
    Registry::new(snapshot)
}

fn bench(c: &mut Criterion) {
    let t0 = Instant::now();
    let mut g = FloodGuard::new(
        FloodConfig {
            threshold: u32::MAX,
            ..FloodConfig::default()
        },
        t0,
    );
    let one: IpAddr = [203, 0, 113, 1].into();
    let mut i = 0u64;
    c.bench_function("flood_check_same_address", |b| {
        b.iter(|| {
            i += 1;
            black_box(g.check(one, t0 + Duration::from_nanos(i)))
        })
    });
    let mut n = 0u32;
    c.bench_function("flood_check_distinct_addresses", |b| {
        b.iter(|| {
            n = n.wrapping_add(1);
            black_box(g.check(IpAddr::from(n.to_be_bytes()), t0))
        })
    });
    let reg = registry();
    let call = CallAttempt {
        source: [127, 0, 0, 2].into(),
        tls_names: vec![],
        caller: Some("15550101234".into()),
        callee: "4721345678".into(),
        identity: IdentityCheck::Absent,
    };
    let now = SystemTime::now();
    c.bench_function("evaluate_admit", |b| {
        b.iter(|| black_box(evaluate(black_box(&call), &reg, now)))
    });
    let mut limiter = Limiter::new(t0);
    limiter.set_limits(&reg, t0);
    let mut k = 0u64;
    c.bench_function("limiter_admit_release", |b| {
        b.iter(|| {
            k += 1;
            // 1 ms apart: under the 20 cps limit half the time.
            if let Ok(slot) = limiter.try_admit("a", call.source, t0 + Duration::from_millis(k)) {
                limiter.release(slot);
            }
        })
    });
    let rules = ScannerRules::default();
    c.bench_function("scanner_match_miss", |b| {
        b.iter(|| black_box(rules.matches(black_box("baresip v3.10.1 (x86_64/linux)"))))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
