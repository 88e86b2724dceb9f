use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use proptest::prelude::*;

use crate::federation::{FederationFile, diff, render};
use crate::flood::{FloodConfig, FloodGuard, FloodVerdict, ScannerRules};
use crate::headers::{HeaderAction, TopologySeal, action, filter};
use crate::ratelimit::{Limiter, LocalUsage, PeerUsage, TokenBucket, share};
use crate::spit::{CallerHistory, GreylistConfig, SpitConfig, SpitDecision, SpitGuard, SpitInput};
use crate::*;

const FEDERATION: &str = r#"
[[member]]
name = "a"
networks = ["127.0.0.2/32", "10.0.0.0/8"]
identities = ["sip.a.example"]
ranges = [{ prefix = "+1555010" }]
limits = { cps = 20, concurrent = 3, source_concurrent = 2 }

[[member]]
name = "b"
sip_target = "sip:127.0.0.1:5090"
domains = ["b.example"]
networks = ["10.1.0.0/16"]
ranges = [{ prefix = "+4721345", originate = false, preference = 20 }]

[[member]]
name = "c"
sip_target = "sip:127.0.0.1:5091"
ranges = [{ prefix = "+4721345", preference = 10 }, { prefix = "+4799" }]

[[member]]
name = "d"
enabled = false
networks = ["127.0.0.4/32"]
ranges = [{ prefix = "+1777" }]

[[member]]
name = "e"
sip_target = "sip:127.0.0.1:5092"
ranges = [{ prefix = "+47213459" }, { prefix = "+4400" }]

[[agreement]]
from = "a"
to = "b"
topology_hiding = true

[[agreement]]
from = "a"
to = "e"
require_identity = true
accepted_attestation = ["A", "B"]

[[agreement]]
from = "d"
to = "b"

[[list]]
kind = "block"
number = "+15550100666"
reason = "fraud"

[[list]]
kind = "block"
scope = "a"
number = "+1555010077"
prefix = true
status = 403

[[list]]
kind = "allow"
scope = "a"
number = "+15550100777"

[[list]]
kind = "block"
number = "+15550100777"

[[ban]]
network = "192.0.2.0/24"
reason = "abuse"
"#;

fn registry() -> Registry {
    Registry::new(
        FederationFile::parse(FEDERATION)
            .unwrap()
            .to_snapshot()
            .unwrap(),
    )
}

fn call(source: &str, caller: &str, callee: &str) -> CallAttempt {
    CallAttempt {
        source: source.parse().unwrap(),
        tls_names: vec![],
        caller: Some(caller.into()),
        callee: callee.into(),
        identity: IdentityCheck::Absent,
    }
}

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn reject(c: &CallAttempt) -> Rejection {
    evaluate(c, &registry(), now()).unwrap_err()
}

#[test]
fn agreement_allows_a_to_b_and_forbids_a_to_c() {
    let ok = evaluate(
        &call("127.0.0.2", "15550100001", "4721345000"),
        &registry(),
        now(),
    )
    .unwrap();
    assert_eq!(ok.from, "a");
    // c terminates the same range with a better preference, but a has no
    // agreement with c: only b is offered.
    assert_eq!(ok.targets.len(), 1);
    assert_eq!(ok.targets[0].member, "b");
    assert_eq!(
        ok.targets[0].sip_target.as_deref(),
        Some("sip:127.0.0.1:5090")
    );
    assert!(ok.targets[0].headers.topology_hiding);

    let r = reject(&call("127.0.0.2", "15550100001", "4799123"));
    assert_eq!(
        r,
        Rejection::NoAgreement {
            from: "a".into(),
            to: "c".into()
        }
    );
    let s = r.status();
    assert_eq!((s.code, s.reason), (403, "Forbidden"));
    assert!(s.warning.is_some());
    assert_eq!(r.label(), "no_agreement");
}

#[test]
fn preference_orders_targets_at_the_longest_prefix() {
    let mut snap = registry().snapshot().clone();
    snap.apply(&Change::PutAgreement(Agreement {
        from: "a".into(),
        to: "c".into(),
        enabled: true,
        require_identity: false,
        accepted_attestation: vec![],
        headers: HeaderRules::default(),
    }))
    .unwrap();
    let reg = Registry::new(snap);
    let ok = evaluate(&call("127.0.0.2", "15550100001", "4721345000"), &reg, now()).unwrap();
    let order: Vec<&str> = ok.targets.iter().map(|t| t.member.as_str()).collect();
    assert_eq!(order, ["c", "b"]);
    // e owns a longer prefix inside the same range and wins alone.
    let t = reg.terminators("47213459000");
    assert_eq!(t.len(), 1);
    assert_eq!(reg.members()[t[0].member].name(), "e");
}

#[test]
fn source_identification() {
    assert_eq!(
        reject(&call("127.0.0.9", "15550100001", "4721345000")),
        Rejection::UnknownSource
    );
    // By TLS identity, from an address that is not registered.
    let mut c = call("198.51.100.1", "15550100001", "4721345000");
    c.tls_names = vec!["SIP.A.EXAMPLE".into()];
    assert_eq!(evaluate(&c, &registry(), now()).unwrap().from, "a");
    // By domain.
    let mut c = call("198.51.100.1", "4721345111", "15550100001");
    c.tls_names = vec!["b.example".into()];
    // b may not originate (range has originate = false).
    assert_eq!(
        evaluate(&c, &registry(), now()).unwrap_err(),
        Rejection::CallerNotOwned { member: "b".into() }
    );
    // Longest network wins: 10.1.0.0/16 (b) inside 10.0.0.0/8 (a).
    let reg = registry();
    let b = reg.member_by_address("10.1.2.3".parse().unwrap()).unwrap();
    let a = reg.member_by_address("10.2.2.3".parse().unwrap()).unwrap();
    assert_eq!(reg.members()[b].name(), "b");
    assert_eq!(reg.members()[a].name(), "a");
    // IPv4-mapped IPv6 matches IPv4 networks.
    assert!(
        reg.member_by_address("::ffff:127.0.0.2".parse().unwrap())
            .is_some()
    );
    assert_eq!(
        reject(&call("127.0.0.4", "1777000", "4721345000")),
        Rejection::MemberDisabled { member: "d".into() }
    );
    assert_eq!(
        reject(&call("192.0.2.7", "15550100001", "4721345000"))
            .status()
            .code,
        403
    );
}

#[test]
fn numbers_and_lists() {
    assert_eq!(
        reject(&call("127.0.0.2", "1666000", "4721345000")),
        Rejection::CallerNotOwned { member: "a".into() }
    );
    let mut c = call("127.0.0.2", "15550100001", "4721345000");
    c.caller = None;
    assert_eq!(reject(&c), Rejection::NoCaller);
    assert_eq!(
        reject(&call("127.0.0.2", "15550100001", "3300")),
        Rejection::UnknownDestination
    );
    assert_eq!(Rejection::UnknownDestination.status().code, 404);
    let blocked = reject(&call("127.0.0.2", "15550100666", "4721345000"));
    assert_eq!(blocked.status().code, 603);
    assert_eq!(blocked.status().warning.as_deref(), Some("fraud"));
    let prefix = reject(&call("127.0.0.2", "15550100771", "4721345000"));
    assert_eq!(prefix.status().code, 403);
    // Member allow list beats the federation block list.
    let ok = evaluate(
        &call("127.0.0.2", "15550100777", "4721345000"),
        &registry(),
        now(),
    )
    .unwrap();
    assert!(ok.caller_allowed);
}

#[test]
fn terminating_member_block_list() {
    let mut snap = registry().snapshot().clone();
    snap.apply(&Change::PutListEntry(ListEntry {
        scope: Some("b".into()),
        kind: ListKind::Block,
        pattern: "15550100002".into(),
        exact: true,
        status: 486,
        reason: "b refuses this caller".into(),
        expires_at: None,
    }))
    .unwrap();
    let reg = Registry::new(snap);
    let r = evaluate(&call("127.0.0.2", "15550100002", "4721345000"), &reg, now()).unwrap_err();
    assert_eq!(r.status().code, 486);
    assert!(evaluate(&call("127.0.0.2", "15550100003", "4721345000"), &reg, now()).is_ok());
}

#[test]
fn list_entries_and_bans_expire() {
    let mut snap = registry().snapshot().clone();
    let t = i64::try_from(now().duration_since(UNIX_EPOCH).unwrap().as_millis()).unwrap();
    for e in &mut snap.lists {
        e.expires_at = Some(t - 1);
    }
    for b in &mut snap.bans {
        b.expires_at = Some(t);
    }
    let reg = Registry::new(snap);
    assert!(evaluate(&call("127.0.0.2", "15550100666", "4721345000"), &reg, now()).is_ok());
    assert!(reg.banned("192.0.2.7".parse().unwrap(), t).is_none());
}

#[test]
fn identity_requirements() {
    let mut c = call("127.0.0.2", "15550100001", "4400123");
    assert_eq!(reject(&c), Rejection::IdentityRequired);
    assert_eq!(Rejection::IdentityRequired.status().code, 428);
    c.identity = IdentityCheck::Invalid;
    assert_eq!(reject(&c).status().code, 438);
    c.identity = IdentityCheck::Valid(Attestation::C);
    assert_eq!(
        reject(&c),
        Rejection::AttestationNotAccepted {
            level: Attestation::C
        }
    );
    c.identity = IdentityCheck::Valid(Attestation::B);
    assert!(evaluate(&c, &registry(), now()).is_ok());
}

#[test]
fn rejections_map_to_sip_responses() {
    let r = Rejection::RateLimited {
        scope: LimitScope::Member,
        retry_after: Duration::from_millis(1500),
    };
    let s = r.status();
    assert_eq!((s.code, s.retry_after), (503, Some(2)));
    let s = Rejection::Greylisted {
        retry_after: Duration::from_secs(5),
    }
    .status();
    assert_eq!((s.code, s.retry_after), (480, Some(5)));
    assert_eq!(Rejection::Spit { score: 90 }.status().code, 607);
}

#[test]
fn federation_file_validation() {
    let bad = |s: &str| FederationFile::parse(s).and_then(|f| f.to_snapshot());
    assert!(matches!(
        bad("[[member]]\nname = \"a\"\n[[member]]\nname = \"a\"\n"),
        Err(Error::DuplicateMember { .. })
    ));
    assert!(matches!(
        bad("[[agreement]]\nfrom = \"a\"\nto = \"b\"\n"),
        Err(Error::UnknownMember { .. })
    ));
    assert!(matches!(
        bad("[[member]]\nname = \"a\"\nranges = [{ prefix = \"+12x\" }]\n"),
        Err(Error::InvalidNumber { .. })
    ));
    assert!(matches!(
        bad("[[member]]\nname = \"A B\"\n"),
        Err(Error::InvalidMemberName { .. })
    ));
    assert!(matches!(
        bad("[[member]]\nname = \"a\"\ncolour = 1\n"),
        Err(Error::Toml { .. })
    ));
    assert!(matches!(
        bad(
            "[[member]]\nname = \"a\"\ndomains = [\"x\"]\n[[member]]\nname = \"b\"\ndomains = [\"X\"]\n"
        ),
        Err(Error::DuplicateDomain { .. })
    ));
}

#[test]
fn federation_diff_round_trip() {
    let desired = registry().snapshot().clone();
    let changes = diff(&Snapshot::default(), &desired);
    let mut s = Snapshot::default();
    for c in &changes {
        s.apply(c).unwrap();
    }
    assert_eq!(s, desired);
    assert!(diff(&desired, &desired).is_empty());

    // Edit: remove c, change b's target, drop an agreement and a list entry.
    let edited = FederationFile::parse(
        &FEDERATION
            .replace("sip:127.0.0.1:5090", "sip:127.0.0.1:6000")
            .replace("[[agreement]]\nfrom = \"d\"\nto = \"b\"\n", "")
            .replace(
                "[[ban]]\nnetwork = \"192.0.2.0/24\"\nreason = \"abuse\"\n",
                "",
            ),
    )
    .unwrap()
    .to_snapshot()
    .unwrap();
    let changes = diff(&desired, &edited);
    let text = render(&changes);
    assert!(text.contains("~ member b"), "{text}");
    assert!(text.contains("- agreement d -> b"), "{text}");
    assert!(text.contains("- ban 192.0.2.0/24"), "{text}");
    let mut s = desired.clone();
    for c in &changes {
        s.apply(c).unwrap();
    }
    assert_eq!(s, edited);
    // Removing a member removes it last, after everything else.
    let mut without_c = edited.clone();
    without_c.members.retain(|m| m.name() != "c");
    let changes = diff(&edited, &without_c);
    assert_eq!(
        changes.last(),
        Some(&Change::RemoveMember { name: "c".into() })
    );
    // Removing a member with agreements and scoped lists: the removal
    // cascades in memory exactly as in the store.
    let mut without_a = edited.clone();
    without_a.members.retain(|m| m.name() != "a");
    without_a
        .agreements
        .retain(|x| x.from != "a" && x.to != "a");
    without_a.lists.retain(|l| l.scope.as_deref() != Some("a"));
    let mut s = edited.clone();
    s.apply(&Change::RemoveMember { name: "a".into() }).unwrap();
    assert_eq!(s, without_a);
    let mut s = edited.clone();
    for c in &diff(&edited, &without_a) {
        s.apply(c).unwrap();
    }
    assert_eq!(s, without_a);
}

proptest! {
    #[test]
    fn bucket_never_exceeds_rate_plus_burst(
        rate in 1.0f64..200.0,
        gaps in proptest::collection::vec(0u64..50_000, 1..400),
    ) {
        let start = Instant::now();
        let burst = (rate / 10.0).max(1.0);
        let mut b = TokenBucket::new(rate, burst);
        let mut t = start;
        let mut admitted = 0u64;
        for g in gaps {
            t += Duration::from_micros(g);
            if b.try_take(t).is_ok() {
                admitted += 1;
            } else {
                prop_assert!(b.try_take(t).unwrap_err() > Duration::ZERO);
            }
        }
        let bound = burst + rate * t.duration_since(start).as_secs_f64();
        prop_assert!(admitted as f64 <= bound + 1e-9, "{} > {}", admitted, bound);
    }

    #[test]
    fn bucket_admits_its_rate_under_steady_overload(rate in 1u32..100) {
        let start = Instant::now();
        let rate = f64::from(rate);
        let mut b = TokenBucket::new(rate, (rate / 10.0).max(1.0));
        let mut admitted = 0u64;
        // Ten seconds of attempts every millisecond.
        for ms in 0..10_000u64 {
            if b.try_take(start + Duration::from_millis(ms)).is_ok() {
                admitted += 1;
            }
        }
        let expect = rate * 10.0;
        prop_assert!((admitted as f64 - expect).abs() <= expect * 0.05 + 2.0);
    }

    #[test]
    fn shares_sum_to_the_limit(
        limit in 1.0f64..1000.0,
        demands in proptest::collection::vec(0.0f64..500.0, 1..6),
    ) {
        let total: f64 = (0..demands.len())
            .map(|i| {
                let others: Vec<f64> = demands
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .map(|(_, d)| *d)
                    .collect();
                share(limit, demands[i], &others)
            })
            .sum();
        prop_assert!((total - limit).abs() < 1e-6 * limit);
    }
}

fn limiter_with(reg: &Registry, t: Instant) -> Limiter {
    let mut l = Limiter::new(t);
    l.set_limits(reg, t);
    l
}

fn peer_rows(node: &str, usage: Vec<LocalUsage>) -> Vec<PeerUsage> {
    usage
        .into_iter()
        .map(|usage| PeerUsage {
            node: node.into(),
            usage,
        })
        .collect()
}

/// Two nodes, 20 cps federation-wide, each offered 30 cps for 10 s,
/// exchanging usage every 150 ms (with one period of lag): together they
/// admit 200 calls within 10%.
#[test]
fn federation_wide_cps_holds_across_two_nodes() {
    let mut snap = registry().snapshot().clone();
    snap.apply(&Change::SetLimits {
        member: "a".into(),
        limits: Limits {
            cps: Some(20),
            ..Limits::default()
        },
    })
    .unwrap();
    let reg = Registry::new(snap);
    let t0 = Instant::now();
    let mut n1 = limiter_with(&reg, t0);
    let mut n2 = limiter_with(&reg, t0);
    let src: IpAddr = "127.0.0.2".parse().unwrap();
    let mut admitted = [0u32; 2];
    let mut table: Vec<PeerUsage> = Vec::new();
    let mut next_sync = 150u64;
    // Node 1 gets a call every 33 ms, node 2 every 33 ms offset by 16 ms.
    for ms in 0..10_000u64 {
        let t = t0 + Duration::from_millis(ms);
        for (i, node) in [&mut n1, &mut n2].into_iter().enumerate() {
            if ms % 33 == (i as u64) * 16
                && let Ok(slot) = node.try_admit("a", src, t)
            {
                admitted[i] += 1;
                node.release(slot);
            }
        }
        if ms == next_sync {
            next_sync += 150;
            // Both apply the table as it was before this round's reports.
            n1.apply_global("n1", &table, t);
            n2.apply_global("n2", &table, t);
            table = peer_rows("n1", n1.usage(t));
            table.extend(peer_rows("n2", n2.usage(t)));
        }
    }
    let total = admitted[0] + admitted[1];
    eprintln!("two nodes, 20 cps limit, 60 cps offered for 10 s: admitted {admitted:?} = {total}");
    assert!(
        (180..=220).contains(&total),
        "admitted {admitted:?} = {total}, want 200 +- 10%"
    );
    // Equal demand: roughly equal shares.
    assert!(admitted[0].abs_diff(admitted[1]) < 30, "{admitted:?}");
}

#[test]
fn concurrency_limits_per_member_and_source() {
    let reg = registry();
    let t = Instant::now();
    let mut l = limiter_with(&reg, t);
    // Calls 100 ms apart stay under a's 20 cps.
    let mut clock = (1..).map(|i| t + Duration::from_millis(i * 100));
    let mut t = || clock.next().unwrap();
    let s1: IpAddr = "127.0.0.2".parse().unwrap();
    let s2: IpAddr = "10.0.0.2".parse().unwrap();
    let a = l.try_admit("a", s1, t()).unwrap();
    let b = l.try_admit("a", s1, t()).unwrap();
    assert_eq!(
        l.try_admit("a", s1, t()).unwrap_err(),
        Rejection::ConcurrencyLimited {
            scope: LimitScope::Source
        }
    );
    let c = l.try_admit("a", s2, t()).unwrap();
    assert_eq!(
        l.try_admit("a", s2, t()).unwrap_err(),
        Rejection::ConcurrencyLimited {
            scope: LimitScope::Member
        }
    );
    l.release(a);
    assert_eq!(l.concurrent("a"), 2);
    let d = l.try_admit("a", s2, t()).unwrap();
    // Another node's calls count against the member's limit.
    for s in [b, c, d] {
        l.release(s);
    }
    let rows = vec![PeerUsage {
        node: "n2".into(),
        usage: LocalUsage {
            key: "member:a".into(),
            demand_milli: 0,
            concurrent: 3,
        },
    }];
    let now = t();
    l.apply_global("n1", &rows, now);
    assert!(matches!(
        l.try_admit("a", s1, now),
        Err(Rejection::ConcurrencyLimited { .. })
    ));
    // Members without limits are never refused.
    for _ in 0..100 {
        let s = l.try_admit("c", s1, now).unwrap();
        l.release(s);
    }
}

#[test]
fn source_cps_uses_governor_with_the_given_clock() {
    let mut snap = registry().snapshot().clone();
    snap.apply(&Change::SetLimits {
        member: "c".into(),
        limits: Limits {
            source_cps: Some(10),
            ..Limits::default()
        },
    })
    .unwrap();
    let reg = Registry::new(snap);
    let t0 = Instant::now();
    let mut l = limiter_with(&reg, t0);
    let s1: IpAddr = "127.0.0.5".parse().unwrap();
    let s2: IpAddr = "127.0.0.6".parse().unwrap();
    let mut ok = 0;
    for ms in 0..2_000u64 {
        // 1000 attempts per second from s1.
        if let Ok(s) = l.try_admit("c", s1, t0 + Duration::from_millis(ms)) {
            ok += 1;
            l.release(s);
        }
    }
    assert!((19..=23).contains(&ok), "{ok}");
    // Another address is unaffected.
    let t = t0 + Duration::from_millis(2_000);
    assert!(l.try_admit("c", s2, t).is_ok());
    let _ = l.try_admit("c", s1, t);
    match l.try_admit("c", s1, t) {
        Err(Rejection::RateLimited {
            scope: LimitScope::Source,
            retry_after,
        }) => assert!(retry_after <= Duration::from_millis(100)),
        other => panic!("{other:?}"),
    }
    l.retain_recent(t + Duration::from_secs(10));
}

fn flood_config(capacity: usize) -> FloodConfig {
    FloodConfig {
        interval: Duration::from_secs(1),
        threshold: 20,
        ban_time: Duration::from_secs(30),
        capacity,
        trusted: vec!["127.0.0.1/32".parse().unwrap()],
    }
}

#[test]
fn flood_bans_one_address_while_another_keeps_calling() {
    let t0 = Instant::now();
    let mut g = FloodGuard::new(flood_config(64), t0);
    let bad: IpAddr = "203.0.113.1".parse().unwrap();
    let good: IpAddr = "203.0.113.2".parse().unwrap();
    let mut banned_at = None;
    for i in 0..200u64 {
        let t = t0 + Duration::from_millis(i * 5);
        if let FloodVerdict::Banned { new: true, .. } = g.check(bad, t) {
            banned_at.get_or_insert(i);
        }
        if i % 20 == 0 {
            assert_eq!(g.check(good, t), FloodVerdict::Allow);
        }
    }
    assert_eq!(banned_at, Some(20), "banned on the 21st request");
    let t = t0 + Duration::from_secs(10);
    assert!(g.check(bad, t).is_banned());
    assert_eq!(g.banned(t).len(), 1);
    // The ban expires; a slow sender is fine afterwards.
    let t = t0 + Duration::from_secs(32);
    assert_eq!(g.check(bad, t), FloodVerdict::Allow);
    // Trusted addresses are never banned.
    let me: IpAddr = "127.0.0.1".parse().unwrap();
    assert!((0..1000).all(|_| g.check(me, t) == FloodVerdict::Allow));
}

#[test]
fn answers_count_nothing_and_forged_responses_count_as_requests() {
    let t0 = Instant::now();
    let mut g = FloodGuard::new(flood_config(64), t0);
    // The responses of a busy terminating peer the node sends requests to:
    // far more than the threshold, and none counts.
    let peer: IpAddr = "203.0.113.20".parse().unwrap();
    g.expect_responses(peer, t0);
    for i in 0..1000u64 {
        let t = t0 + Duration::from_millis(i);
        assert_eq!(g.check_response(peer, t), FloodVerdict::Allow, "answer {i}");
    }
    assert_eq!(
        g.check(peer, t0 + Duration::from_secs(1)),
        FloodVerdict::Allow
    );
    // Five minutes after the last request to it, its responses count again.
    let later = t0 + Duration::from_secs(301);
    assert!((0..25).any(|_| g.check_response(peer, later).is_banned()));
    // Responses from an address the node never sent to count like requests:
    // a flood of them is banned on the 21st.
    let forger: IpAddr = "203.0.113.21".parse().unwrap();
    let verdicts: Vec<bool> = (0..25)
        .map(|_| g.check_response(forger, t0).is_banned())
        .collect();
    assert_eq!(verdicts.iter().position(|b| *b), Some(20));
    // Once requests have a peer banned, its answers are refused too, until
    // the ban ends.
    let other: IpAddr = "203.0.113.22".parse().unwrap();
    g.expect_responses(other, t0);
    while !g.check(other, t0).is_banned() {}
    assert!(
        g.check_response(other, t0 + Duration::from_secs(29))
            .is_banned()
    );
    assert_eq!(
        g.check_response(other, t0 + Duration::from_secs(31)),
        FloodVerdict::Allow
    );
    // Static bans and trusted networks as for `check`.
    g.ban_network("192.0.2.0/24".parse().unwrap(), None);
    assert!(
        g.check_response("192.0.2.5".parse().unwrap(), t0)
            .is_banned()
    );
    let me: IpAddr = "127.0.0.1".parse().unwrap();
    assert!((0..100).all(|_| g.check_response(me, t0) == FloodVerdict::Allow));
}

#[test]
fn flood_rate_decays_across_intervals() {
    let t0 = Instant::now();
    let mut g = FloodGuard::new(flood_config(64), t0);
    let a: IpAddr = "203.0.113.9".parse().unwrap();
    // 15 requests per second for a minute: under the threshold of 20.
    for i in 0..900u64 {
        let t = t0 + Duration::from_micros(i * 66_667);
        assert_eq!(g.check(a, t), FloodVerdict::Allow, "request {i}");
    }
}

#[test]
fn flood_memory_is_bounded_and_bans_survive_address_floods() {
    let t0 = Instant::now();
    let mut g = FloodGuard::new(flood_config(1024), t0);
    let bad: IpAddr = "198.51.100.1".parse().unwrap();
    for _ in 0..25 {
        g.check(bad, t0);
    }
    assert!(g.check(bad, t0).is_banned());
    // A million distinct spoofed addresses.
    for i in 0..1_000_000u32 {
        let addr = IpAddr::from((0x0a00_0000u32 | i).to_be_bytes());
        let t = t0 + Duration::from_micros(u64::from(i));
        assert!(!g.check(addr, t).is_banned());
    }
    assert_eq!(g.capacity(), 1024);
    assert!(g.tracked() <= 1024);
    assert!(g.evictions() > 990_000);
    assert!(g.check(bad, t0 + Duration::from_secs(2)).is_banned());
}

#[test]
fn static_bans_and_scanners() {
    let t0 = Instant::now();
    let mut g = FloodGuard::new(flood_config(64), t0);
    g.ban_network(
        "192.0.2.0/24".parse().unwrap(),
        Some(t0 + Duration::from_secs(5)),
    );
    let a: IpAddr = "192.0.2.77".parse().unwrap();
    assert!(g.check(a, t0).is_banned());
    assert!(!g.check(a, t0 + Duration::from_secs(6)).is_banned());
    let rules = ScannerRules::default();
    assert_eq!(rules.matches("friendly-scanner"), Some("friendly-scanner"));
    assert_eq!(rules.matches("SIPVicious 0.3.4"), Some("sipvicious"));
    assert_eq!(rules.matches("baresip v3.10.1 (x86_64/linux)"), None);
    let custom = ScannerRules::new(["MyScanner", ""]);
    assert_eq!(custom.matches("xx myscanner/1.0"), Some("myscanner"));
    let b: IpAddr = "203.0.113.50".parse().unwrap();
    g.ban(b, t0);
    assert!(g.check(b, t0 + Duration::from_secs(29)).is_banned());
}

#[test]
fn spit_scores_and_decides() {
    let t = Instant::now();
    let mut g = SpitGuard::new(SpitConfig::default());
    let clean = SpitInput {
        caller: "15550100001",
        identity: IdentityCheck::Valid(Attestation::A),
        allowed: false,
        history: CallerHistory::default(),
    };
    let a = g.assess(&clean, t);
    assert_eq!((a.score, a.decision), (0, SpitDecision::Accept));
    let robocall = SpitInput {
        caller: "15550100002",
        identity: IdentityCheck::Absent,
        allowed: false,
        history: CallerHistory {
            calls: 120,
            answered: 50,
            short_calls: 45,
        },
    };
    let a = g.assess(&robocall, t);
    assert_eq!(a.score, 100);
    assert_eq!(a.decision, SpitDecision::Reject);
    assert_eq!(a.rejection().unwrap().status().code, 607);
    let allowed = SpitInput {
        allowed: true,
        ..robocall.clone()
    };
    assert_eq!(g.assess(&allowed, t).score, 0);
    // Local attempts count before any call record exists.
    let burst = SpitInput {
        caller: "15550100003",
        identity: IdentityCheck::Valid(Attestation::C),
        allowed: false,
        history: CallerHistory::default(),
    };
    let mut last = None;
    for i in 0..40u64 {
        last = Some(g.assess(&burst, t + Duration::from_millis(i * 100)));
    }
    let last = last.unwrap();
    assert_eq!(last.score, 60);
    assert_eq!(last.decision, SpitDecision::Accept);
}

#[test]
fn greylisting_first_time_callers() {
    let t = Instant::now();
    let mut g = SpitGuard::new(SpitConfig {
        greylist: Some(GreylistConfig {
            min_delay: Duration::from_secs(5),
            retry_window: Duration::from_secs(60),
            pass_ttl: Duration::from_secs(3600),
            capacity: 2,
        }),
        ..SpitConfig::default()
    });
    let input = SpitInput {
        caller: "15550100001",
        identity: IdentityCheck::Valid(Attestation::A),
        allowed: false,
        history: CallerHistory::default(),
    };
    assert_eq!(
        g.assess(&input, t).decision,
        SpitDecision::Greylist(Duration::from_secs(5))
    );
    assert_eq!(
        g.assess(&input, t + Duration::from_secs(2)).decision,
        SpitDecision::Greylist(Duration::from_secs(3))
    );
    assert_eq!(
        g.assess(&input, t + Duration::from_secs(6)).decision,
        SpitDecision::Accept
    );
    assert_eq!(
        g.assess(&input, t + Duration::from_secs(600)).decision,
        SpitDecision::Accept
    );
    // Capacity: a full table of live entries fails open.
    for c in ["1", "2"] {
        let i = SpitInput {
            caller: c,
            ..input.clone()
        };
        g.assess(&i, t + Duration::from_secs(601));
    }
    let i = SpitInput {
        caller: "3",
        ..input.clone()
    };
    assert_eq!(
        g.assess(&i, t + Duration::from_secs(601)).decision,
        SpitDecision::Accept
    );
}

#[test]
fn header_rules() {
    let hiding = HeaderRules {
        topology_hiding: true,
        strip: vec!["X-Internal".into()],
    };
    assert_eq!(action("via", &hiding), HeaderAction::Hide);
    assert_eq!(action("v", &hiding), HeaderAction::Hide);
    assert_eq!(action("m", &hiding), HeaderAction::Hide);
    assert_eq!(action("x-internal", &hiding), HeaderAction::Strip);
    assert_eq!(action("P-Charging-Vector", &hiding), HeaderAction::Strip);
    assert_eq!(action("From", &hiding), HeaderAction::Keep);
    assert_eq!(action("Via", &HeaderRules::default()), HeaderAction::Keep);
    let (keep, hide) = filter(
        &[
            ("Via", "SIP/2.0/UDP a"),
            ("To", "<sip:b>"),
            ("X-Internal", "1"),
        ],
        &hiding,
    );
    assert_eq!(keep, vec![("To", "<sip:b>")]);
    assert_eq!(hide, vec![("Via", "SIP/2.0/UDP a")]);
}

#[test]
fn example_federation_file() {
    let text = include_str!("../testdata/federation.toml");
    let reg = Registry::new(FederationFile::parse(text).unwrap().to_snapshot().unwrap());
    let ok = evaluate(&call("127.0.0.2", "15550101234", "4721345678"), &reg, now()).unwrap();
    assert_eq!(ok.from, "a");
    assert_eq!(
        ok.targets[0].sip_target.as_deref(),
        Some("sip:127.0.0.1:5090")
    );
    assert_eq!(
        evaluate(&call("127.0.0.1", "4721345678", "15550101234"), &reg, now()).unwrap_err(),
        Rejection::UnknownSource
    );
    assert_eq!(
        evaluate(
            &call("127.0.0.2", "15550101234", "15550109999"),
            &reg,
            now()
        )
        .unwrap_err(),
        Rejection::NoAgreement {
            from: "a".into(),
            to: "a".into()
        }
    );
    assert_eq!(
        evaluate(&call("127.0.0.2", "15550101234", "3312345678"), &reg, now()).unwrap_err(),
        Rejection::UnknownDestination
    );
    let a = reg.member_index("a").unwrap();
    assert_eq!(reg.members()[a].limits.cps, Some(20));
}

fn arb_snapshot() -> impl Strategy<Value = Snapshot> {
    let names = ["a", "b", "c", "d"];
    (
        proptest::collection::vec(any::<bool>(), 4),
        proptest::collection::vec(
            (
                0usize..4,
                "[1-9][0-9]{0,3}",
                any::<bool>(),
                any::<bool>(),
                0i32..3,
            ),
            0..8,
        ),
        proptest::collection::vec((0usize..4, 0u8..4), 0..5),
        proptest::collection::vec((0usize..4, 0usize..4, any::<bool>(), any::<bool>()), 0..6),
        proptest::collection::vec(
            (
                proptest::option::of(0usize..4),
                any::<bool>(),
                "[1-9][0-9]{0,4}",
            ),
            0..5,
        ),
        proptest::collection::vec((0usize..4, proptest::option::of(1u32..50)), 0..4),
    )
        .prop_map(move |(present, ranges, nets, agreements, lists, limits)| {
            let mut s = Snapshot::default();
            for (i, p) in present.iter().enumerate() {
                if *p {
                    let mut m = Member::new(MemberInfo {
                        name: names[i].into(),
                        display_name: format!("M{i}"),
                        enabled: i != 3,
                        sip_target: (i % 2 == 0).then(|| format!("sip:127.0.0.1:{}", 5090 + i)),
                    });
                    m.domains.push(format!("{}.example", names[i]));
                    s.members.push(m);
                }
            }
            let has = |s: &Snapshot, i: usize| s.member(names[i]).is_some();
            for (i, prefix, o, t, pref) in ranges {
                if has(&s, i) {
                    s.apply(&Change::PutRange {
                        member: names[i].into(),
                        range: NumberRange {
                            prefix,
                            may_originate: o,
                            terminates: t,
                            preference: pref,
                        },
                    })
                    .unwrap();
                }
            }
            for (i, octet) in nets {
                if has(&s, i) {
                    let network = format!("10.{i}.{octet}.0/24").parse().unwrap();
                    s.apply(&Change::AddNetwork {
                        member: names[i].into(),
                        network,
                    })
                    .unwrap();
                }
            }
            for (f, t, req, hide) in agreements {
                if has(&s, f) && has(&s, t) {
                    s.apply(&Change::PutAgreement(Agreement {
                        from: names[f].into(),
                        to: names[t].into(),
                        enabled: true,
                        require_identity: req,
                        accepted_attestation: if req { vec![Attestation::A] } else { vec![] },
                        headers: HeaderRules {
                            topology_hiding: hide,
                            strip: vec![],
                        },
                    }))
                    .unwrap();
                }
            }
            for (scope, block, pattern) in lists {
                let scope = scope.filter(|i| has(&s, *i)).map(|i| names[i].to_owned());
                s.apply(&Change::PutListEntry(ListEntry {
                    scope,
                    kind: if block {
                        ListKind::Block
                    } else {
                        ListKind::Allow
                    },
                    pattern,
                    exact: block,
                    status: 603,
                    reason: String::new(),
                    expires_at: None,
                }))
                .unwrap();
            }
            for (i, cps) in limits {
                if has(&s, i) {
                    s.apply(&Change::SetLimits {
                        member: names[i].into(),
                        limits: Limits {
                            cps,
                            ..Limits::default()
                        },
                    })
                    .unwrap();
                }
            }
            s.normalize();
            s
        })
}

proptest! {
    #[test]
    fn diff_applied_gives_the_desired_snapshot(a in arb_snapshot(), b in arb_snapshot()) {
        let changes = diff(&a, &b);
        let mut s = a.clone();
        for c in &changes {
            s.apply(c).unwrap();
        }
        prop_assert_eq!(&s, &b);
        prop_assert!(diff(&b, &b).is_empty());
        // Every change renders as one diff line.
        prop_assert_eq!(render(&changes).lines().count(), changes.len());
    }
}

#[test]
fn topology_seal_round_trip() {
    let seal = TopologySeal::new(&[7u8; 32]);
    let hidden = [
        "SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK776asdhds",
        "<sip:alice@10.0.0.5:5060;transport=udp>",
    ];
    let token = seal.seal(&hidden).unwrap();
    assert!(
        token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );
    assert!(!token.contains("10.0.0.5"));
    assert_eq!(seal.open(&token).unwrap(), hidden);
    // Another node with the same secret opens it; another secret does not.
    assert_eq!(TopologySeal::new(&[7u8; 32]).open(&token).unwrap(), hidden);
    assert!(TopologySeal::new(&[8u8; 32]).open(&token).is_none());
    // Tampering is detected.
    let mut bad = token.into_bytes();
    let last = bad.len() - 2;
    bad[last] = if bad[last] == b'A' { b'B' } else { b'A' };
    assert!(seal.open(std::str::from_utf8(&bad).unwrap()).is_none());
    assert!(seal.open("short").is_none());
    assert!(seal.seal(&["a\r\nVia: injected"]).is_none());
}

#[test]
fn policy_config_defaults_and_overrides() {
    let d: config::PolicyConfig = toml::from_str("").unwrap();
    assert_eq!(d.flood(), FloodConfig::default());
    assert!(d.scanner_rules().matches("friendly-scanner").is_some());
    assert_eq!(d.spit().unwrap(), SpitConfig::default());
    let c: config::PolicyConfig = toml::from_str(
        r#"
[flood]
threshold = 10
trusted = ["127.0.0.1/32"]
[scanners]
user_agents = ["evil"]
[spit]
greylist = true
greylist_min_delay_secs = 2
[limits]
sync_interval_ms = 100
"#,
    )
    .unwrap();
    assert_eq!(c.flood().threshold, 10);
    let banned: config::PolicyConfig =
        toml::from_str("[flood]\nbanned = [\"192.0.2.0/24\"]\n").unwrap();
    let mut g = banned.flood_guard(Instant::now());
    assert!(
        g.check("192.0.2.1".parse().unwrap(), Instant::now())
            .is_banned()
    );
    assert_eq!(c.flood().trusted.len(), 1);
    assert!(c.scanner_rules().matches("friendly-scanner").is_none());
    assert!(c.scanner_rules().matches("EVIL/1.0").is_some());
    let g = c.spit().unwrap().greylist.unwrap();
    assert_eq!(g.min_delay, Duration::from_secs(2));
    assert_eq!(c.sync_interval(), Duration::from_millis(100));
    assert!(toml::from_str::<config::PolicyConfig>("[flood]\nthreshhold = 1\n").is_err());
}

#[test]
fn zero_cps_admits_nothing() {
    let mut snap = registry().snapshot().clone();
    snap.apply(&Change::SetLimits {
        member: "c".into(),
        limits: Limits {
            cps: Some(0),
            ..Limits::default()
        },
    })
    .unwrap();
    let t0 = Instant::now();
    let mut l = limiter_with(&Registry::new(snap), t0);
    let src: IpAddr = "127.0.0.5".parse().unwrap();
    for i in 0..100u64 {
        assert!(matches!(
            l.try_admit("c", src, t0 + Duration::from_millis(i * 100)),
            Err(Rejection::RateLimited { .. })
        ));
    }
}

#[test]
fn changes_are_validated() {
    let ok = Change::PutRange {
        member: "a".into(),
        range: NumberRange {
            prefix: "4721".into(),
            may_originate: true,
            terminates: true,
            preference: 1,
        },
    };
    assert!(ok.validate().is_ok());
    let plus = Change::RemoveRange {
        member: "a".into(),
        prefix: "+4721".into(),
    };
    assert!(matches!(plus.validate(), Err(Error::InvalidNumber { .. })));
    assert!(matches!(
        Change::RemoveMember { name: "A".into() }.validate(),
        Err(Error::InvalidMemberName { .. })
    ));
    let status = Change::PutListEntry(ListEntry {
        scope: None,
        kind: ListKind::Block,
        pattern: "1555".into(),
        exact: false,
        status: 200,
        reason: String::new(),
        expires_at: None,
    });
    assert!(matches!(
        status.validate(),
        Err(Error::InvalidStatus { .. })
    ));
    // Everything the federation file produces is valid.
    let snap = registry().snapshot().clone();
    for c in diff(&Snapshot::default(), &snap) {
        c.validate().unwrap();
    }
}
