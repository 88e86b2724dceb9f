use std::net::SocketAddr;
use std::time::{Duration, Instant};

use peering_proto::msg::Message;

use crate::Out;
use crate::numbers::Numbers;
use crate::sip::{self, Transport};
use crate::stats::Latency;
use crate::uac::{UacConfig, UacCore};
use crate::uas::{Mix, UasConfig, UasCore};

const UAC_ADDR: &str = "127.0.1.1:40000";
const UAS_ADDR: &str = "127.0.0.1:5090";

fn uac_cfg(cancel_percent: u32) -> UacConfig {
    UacConfig {
        transport: Transport::Udp,
        target: UAS_ADDR.parse().unwrap(),
        caller: "+4720000000".into(),
        hold: Duration::from_millis(100),
        cancel_percent,
        cancel_after: Duration::from_millis(50),
        answer_timeout: Duration::from_secs(5),
        t1: Duration::from_millis(500),
        t2: Duration::from_secs(4),
        sdp: true,
        worker: 0,
        nonce: 7,
    }
}

fn uas_cfg(mix: Mix) -> UasConfig {
    UasConfig {
        transport: Transport::Udp,
        mix,
        ring: Duration::from_millis(200),
        send_180: true,
        t1: Duration::from_millis(500),
        t2: Duration::from_secs(4),
        sdp: true,
    }
}

const ANSWER: Mix = Mix {
    ring_percent: 0,
    reject_percent: 0,
    timeout_percent: 0,
    reject_code: 486,
};

/// A UAC and a UAS wired back to back in memory, with a clock of our own
/// and a filter that may drop messages.
struct Wire {
    uac: UacCore,
    uas: UasCore,
    now: Instant,
    to_uas: Vec<Out>,
    to_uac: Vec<Out>,
    delivered: Vec<String>,
}

impl Wire {
    fn new(uac: UacConfig, uas: UasConfig) -> Self {
        let now = Instant::now();
        let numbers = Numbers::from_range("+4721000000-+4721000099").unwrap();
        let mut uac = UacCore::new(uac, numbers, None, now);
        uac.add_flow(UAC_ADDR.parse().unwrap());
        let mut uas = UasCore::new(uas);
        uas.add_flow(UAS_ADDR.parse().unwrap());
        Self {
            uac,
            uas,
            now,
            to_uas: Vec::new(),
            to_uac: Vec::new(),
            delivered: Vec::new(),
        }
    }

    /// Delivers queued messages until quiet; `drop` decides per message
    /// (start line) whether it is lost.
    fn pump(&mut self, drop: &mut dyn FnMut(&str) -> bool) {
        let from_uac: SocketAddr = UAC_ADDR.parse().unwrap();
        let from_uas: SocketAddr = UAS_ADDR.parse().unwrap();
        while !self.to_uas.is_empty() || !self.to_uac.is_empty() {
            for o in std::mem::take(&mut self.to_uas) {
                assert_eq!(o.dest, from_uas);
                let msg = Message::parse(o.data).unwrap();
                let line = msg.start_line().to_owned();
                if drop(&line) {
                    continue;
                }
                self.delivered.push(line);
                self.uas
                    .on_message(msg, 0, from_uac, self.now, &mut self.to_uac);
            }
            for o in std::mem::take(&mut self.to_uac) {
                let msg = Message::parse(o.data).unwrap();
                let line = msg.start_line().to_owned();
                if drop(&line) {
                    continue;
                }
                self.delivered.push(line);
                self.uac.on_message(&msg, self.now, &mut self.to_uas);
            }
        }
    }

    /// Advances the clock in 10 ms steps, firing timers and delivering.
    fn run_for(&mut self, d: Duration, drop: &mut dyn FnMut(&str) -> bool) {
        let end = self.now + d;
        while self.now < end {
            self.now += Duration::from_millis(10);
            self.uac.on_timers(self.now, &mut self.to_uas);
            self.uas.on_timers(self.now, &mut self.to_uac);
            self.pump(drop);
        }
    }
}

fn keep(_: &str) -> bool {
    false
}

#[test]
fn full_call_flow_completes() {
    let mut w = Wire::new(uac_cfg(0), uas_cfg(ANSWER));
    for _ in 0..10 {
        w.uac.start_call(w.now, &mut w.to_uas);
    }
    w.pump(&mut keep);
    w.run_for(Duration::from_secs(1), &mut keep);
    let s = w.uac.finish(w.now);
    assert_eq!(s.attempted, 10);
    assert_eq!(s.succeeded, 10);
    assert_eq!(s.failed_total(), 0);
    assert_eq!(s.retransmissions, 0);
    assert_eq!(s.latencies_us.len(), 10);
    assert_eq!(w.uas.stats().acks, 10);
    assert_eq!(w.uas.stats().byes, 10);
    assert_eq!(w.uas.calls(), 0);
    let methods: Vec<&str> = w
        .delivered
        .iter()
        .take(6)
        .map(|l| l.split(' ').next().unwrap_or(""))
        .collect();
    // INVITE, then 180 and 200 from the UAS, ACK; the BYE comes after the hold.
    assert_eq!(methods[0], "INVITE");
    assert!(
        w.delivered
            .iter()
            .any(|l| l.starts_with("BYE sip:uas@127.0.0.1:5090"))
    );
}

#[test]
fn lost_invite_is_retransmitted_and_counted() {
    let mut w = Wire::new(uac_cfg(0), uas_cfg(ANSWER));
    w.uac.start_call(w.now, &mut w.to_uas);
    let mut dropped = 0;
    let mut drop_first_two = |line: &str| {
        if line.starts_with("INVITE") && dropped < 2 {
            dropped += 1;
            true
        } else {
            false
        }
    };
    w.pump(&mut drop_first_two);
    w.run_for(Duration::from_secs(3), &mut drop_first_two);
    let s = w.uac.finish(w.now);
    assert_eq!(s.succeeded, 1);
    // Timer A: 500 ms, then 1 s.
    assert_eq!(s.retransmissions, 2);
    assert_eq!(s.timeline[0].retransmissions, 1);
    assert_eq!(s.timeline[1].retransmissions, 1);
    assert!(s.latencies_us[0] >= 1_500_000);
}

#[test]
fn lost_ack_makes_the_uas_retransmit_the_200() {
    let mut w = Wire::new(uac_cfg(0), uas_cfg(ANSWER));
    w.uac.start_call(w.now, &mut w.to_uas);
    let mut acks = 0;
    let mut drop_first_ack = |line: &str| {
        if line.starts_with("ACK") {
            acks += 1;
            acks == 1
        } else {
            false
        }
    };
    w.pump(&mut drop_first_ack);
    w.run_for(Duration::from_secs(2), &mut drop_first_ack);
    assert_eq!(w.uac.stats().succeeded, 1);
    // The BYE after 100 ms of hold ends the call at the UAS before the
    // 200 is retransmitted at 500 ms.
    assert_eq!(w.uas.calls(), 0);
    assert_eq!(w.uas.stats().byes, 1);
}

#[test]
fn uas_retransmits_200_until_ack() {
    let mut cfg = uac_cfg(0);
    cfg.hold = Duration::from_secs(5);
    let mut w = Wire::new(cfg, uas_cfg(ANSWER));
    w.uac.start_call(w.now, &mut w.to_uas);
    let mut acks = 0;
    let mut drop_first_ack = |line: &str| {
        if line.starts_with("ACK") {
            acks += 1;
            acks == 1
        } else {
            false
        }
    };
    w.pump(&mut drop_first_ack);
    w.run_for(Duration::from_secs(1), &mut drop_first_ack);
    assert_eq!(w.uas.stats().retransmissions, 1);
    assert_eq!(w.uas.stats().acks, 1);
    assert_eq!(w.uas.calls(), 0);
}

#[test]
fn timeout_without_any_response() {
    let mut w = Wire::new(uac_cfg(0), uas_cfg(ANSWER));
    w.uac.start_call(w.now, &mut w.to_uas);
    let mut all = |_: &str| true;
    w.pump(&mut all);
    w.run_for(Duration::from_secs(33), &mut all);
    let s = w.uac.finish(w.now);
    assert_eq!(s.failed.get("timeout-invite"), Some(&1));
    // Timer A fires at 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s before Timer B at 32 s.
    assert_eq!(s.retransmissions, 6);
}

#[test]
fn rejected_calls_are_failed_by_code_and_acknowledged() {
    let mix = Mix {
        reject_percent: 100,
        ..ANSWER
    };
    let mut w = Wire::new(uac_cfg(0), uas_cfg(mix));
    for _ in 0..3 {
        w.uac.start_call(w.now, &mut w.to_uas);
    }
    w.pump(&mut keep);
    w.run_for(Duration::from_millis(100), &mut keep);
    let s = w.uac.finish(w.now);
    assert_eq!(s.failed.get("486"), Some(&3));
    assert_eq!(w.uas.stats().acks, 3);
    assert_eq!(w.uas.calls(), 0);
}

#[test]
fn cancelled_calls_get_487() {
    let mix = Mix {
        ring_percent: 100,
        ..ANSWER
    };
    let mut w = Wire::new(uac_cfg(100), uas_cfg(mix));
    for _ in 0..4 {
        w.uac.start_call(w.now, &mut w.to_uas);
    }
    w.pump(&mut keep);
    w.run_for(Duration::from_millis(500), &mut keep);
    let s = w.uac.finish(w.now);
    assert_eq!(s.succeeded, 4, "{:?}", s.failed);
    assert_eq!(w.uas.stats().cancelled, 4);
    assert_eq!(w.uas.stats().acks, 4);
    assert!(w.delivered.iter().any(|l| l.starts_with("SIP/2.0 487")));
}

#[test]
fn unanswered_calls_time_out_with_cancel() {
    let mix = Mix {
        timeout_percent: 100,
        ..ANSWER
    };
    let mut w = Wire::new(uac_cfg(0), uas_cfg(mix));
    w.uac.start_call(w.now, &mut w.to_uas);
    w.pump(&mut keep);
    w.run_for(Duration::from_secs(6), &mut keep);
    let s = w.uac.finish(w.now);
    assert_eq!(s.failed.get("no-answer"), Some(&1));
}

#[test]
fn stray_responses_are_counted_not_matched() {
    let mut w = Wire::new(uac_cfg(0), uas_cfg(ANSWER));
    w.uac.start_call(w.now, &mut w.to_uas);
    // A response for a Call-ID from another run.
    let other = Message::parse(bytes::Bytes::from_static(
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.1.1:40000;branch=z9hG4bKx\r\n\
          From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: 1.0.0.0\r\n\
          CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
    ))
    .unwrap();
    let mut out = Vec::new();
    w.uac.on_message(&other, w.now, &mut out);
    assert!(out.is_empty());
    assert_eq!(w.uac.stats().stray, 1);
}

#[test]
fn numbers_from_range_and_file() {
    let n = Numbers::from_range("+4721000098-+4721000100").unwrap();
    assert_eq!(n.get(0), "+4721000098");
    assert_eq!(n.get(2), "+4721000100");
    assert_eq!(n.get(3), "+4721000098");
    assert!(Numbers::from_range("+4721").is_err());
    assert!(Numbers::from_range("+47-x48").is_err());
    assert!(Numbers::from_range("+4721-+472").is_err());
    assert!(Numbers::from_range("+4729-+4721").is_err());
    let f = Numbers::from_lines("# callees\n+111\n\n+222\n").unwrap();
    assert_eq!(f.get(1), "+222");
    assert_eq!(f.get(2), "+111");
    assert!(Numbers::from_lines("# none\n").is_err());
}

#[test]
fn tags_and_uris_are_read_from_header_values() {
    assert_eq!(sip::tag_of("<sip:a@b;tag=x>;tag=abc;foo"), Some("abc"));
    assert_eq!(sip::tag_of("<sip:a@b;tag=x>"), None);
    assert_eq!(sip::tag_of("sip:a@b ; TAG = q1"), Some("q1"));
    assert_eq!(sip::uri_of("\"A\" <sip:a@b;lr>;x=1"), "sip:a@b;lr");
    assert_eq!(sip::uri_of("sip:a@b;x=1"), "sip:a@b");
}

#[test]
fn latency_percentiles() {
    let mut v: Vec<u32> = (1..=100).rev().collect();
    let l = Latency::of(&mut v);
    assert_eq!(l.samples, 100);
    assert_eq!(l.p50_us, 51);
    assert_eq!(l.p99_us, 99);
    assert_eq!(l.max_us, 100);
    assert_eq!(Latency::of(&mut []), Latency::default());
}

#[test]
fn decimal_and_hex_writers() {
    let mut b = bytes::BytesMut::new();
    sip::put_u64(&mut b, 0);
    b.extend_from_slice(b" ");
    sip::put_u64(&mut b, 18_446_744_073_709_551_615);
    b.extend_from_slice(b" ");
    sip::put_hex(&mut b, 0xdead_beef);
    assert_eq!(&b[..], b"0 18446744073709551615 deadbeef");
}

#[test]
fn certificates_are_generated_and_loadable() {
    let dir = tempfile::tempdir().unwrap();
    crate::tls::generate(dir.path(), &["node", "uac"]).unwrap();
    let ca = dir.path().join("ca.pem");
    crate::tls::client_config(
        &ca,
        Some((&dir.path().join("uac.pem"), &dir.path().join("uac.key"))),
    )
    .unwrap();
    crate::tls::server_config(
        &dir.path().join("node.pem"),
        &dir.path().join("node.key"),
        Some(&ca),
    )
    .unwrap();
}

#[test]
fn invites_carry_a_verifiable_shaken_identity() {
    use peering_identity::passport::{Attestation, Passport, Signer};
    use peering_proto::msg::HeaderName;
    let dir = tempfile::tempdir().unwrap();
    crate::tls::generate(dir.path(), &["sti"]).unwrap();
    let key = dir.path().join("sti.key");
    let hook =
        crate::identity::StirHook::from_pem_file(&key, "https://sti.example/sp.pem").unwrap();
    let now = Instant::now();
    let numbers = Numbers::from_range("+4721000000-+4721000009").unwrap();
    let mut uac = UacCore::new(uac_cfg(0), numbers, Some(std::sync::Arc::new(hook)), now);
    uac.add_flow(UAC_ADDR.parse().unwrap());
    let mut out = Vec::new();
    uac.start_call(now, &mut out);
    let invite = Message::parse(out.remove(0).data).unwrap();
    let value = invite
        .header(&HeaderName::Identity)
        .expect("Identity header");
    assert!(
        value.contains(";info=<https://sti.example/sp.pem>"),
        "{value}"
    );
    let jws = value.split(';').next().unwrap();
    let passport = Passport::decode(jws).unwrap();
    assert_eq!(passport.claims.attest, Some(Attestation::A));
    let pem = std::fs::read_to_string(&key).unwrap();
    let signer = Signer::from_pem(&pem, "https://sti.example/sp.pem").unwrap();
    passport.verify_signature(signer.public_point()).unwrap();
}

#[test]
fn drivers_complete_calls_on_loopback_over_udp_and_tcp() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use crate::run::{UacJob, UasJob, run_uac, run_uas};

    // UDP with connected and unconnected sockets; at 2,000 cps a turn sends
    // several datagrams per socket, so sendmmsg and recvmmsg carry batches.
    for (transport, connect_udp, rate) in [
        (Transport::Udp, true, 200.0),
        (Transport::Udp, false, 200.0),
        (Transport::Udp, true, 2000.0),
        (Transport::Tcp, true, 200.0),
    ] {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let listen: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let mut ucfg = uas_cfg(ANSWER);
        ucfg.transport = transport;
        let uas_job = UasJob {
            core: UasCore::new(ucfg),
            listen,
            transport,
            reuse_port: false,
            tls: None,
            stop: stop.clone(),
        };
        let uas = std::thread::spawn(move || run_uas(uas_job));
        std::thread::sleep(Duration::from_millis(200));
        let mut cfg = uac_cfg(0);
        cfg.transport = transport;
        cfg.target = listen;
        let numbers = Numbers::from_range("+4721000000-+4721000099").unwrap();
        let stats = run_uac(UacJob {
            core: UacCore::new(cfg, numbers, None, Instant::now()),
            rate,
            max_in_flight: 10_000,
            duration: Duration::from_millis(500),
            drain: Duration::from_secs(5),
            sources: vec!["127.0.0.1".parse().unwrap(), "127.0.0.2".parse().unwrap()],
            connections_per_source: 1,
            connect_udp,
            tls: None,
            stop: Arc::new(AtomicBool::new(false)),
        })
        .unwrap();
        stop.store(true, Ordering::Relaxed);
        let uas_stats = uas.join().unwrap().unwrap();
        let case = format!("{transport:?} connected={connect_udp} rate={rate}");
        assert!(
            stats.attempted as f64 >= rate * 0.45,
            "{case}: {}",
            stats.attempted
        );
        assert_eq!(
            stats.succeeded, stats.attempted,
            "{case}: {:?}",
            stats.failed
        );
        assert_eq!(uas_stats.invites, stats.attempted);
        assert_eq!(uas_stats.byes, stats.attempted);
    }
}
