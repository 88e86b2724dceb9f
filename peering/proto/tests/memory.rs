//! Heap held per ringing call by the proxy core, measured without the
//! network: a counting global allocator, N calls driven through `Proxy`
//! exactly as the proxy bench drives them (INVITE in, route answer, 100 and
//! forward out, 180 relayed) and left ringing, then (live bytes) / N.
//!
//! Each held call is one server INVITE transaction, one client INVITE
//! transaction and the proxy context linking them. Run with
//! `cargo test -p peering-proto --release --test memory -- --nocapture` to
//! see the figures.

#[path = "../benches/common/mod.rs"]
mod common;

use std::alloc::System;
use std::time::Instant;

use bytes::Bytes;
use common::{A, B, flow, invite, proxy, target};
use peering_proto::msg::{self, Message};
use peering_proto::proxy::{Event, Proxy, RouteDecision, Target};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Calls held ringing at once.
const CALLS: u64 = 10_000;

/// The budget per held call (server INVITE + client INVITE + context).
const BUDGET: usize = 4096;

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
    let target = target();
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
