//! The proxy core on a fake wire with a virtual clock: no sockets, no
//! sleeps, exact timer values.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::*;
use crate::msg::{HeaderName, Message, Method, Uri};
use crate::txn::TimerConfig;

const A: &str = "192.0.2.1:5060";
const B: &str = "198.51.100.7:5070";
const C: &str = "198.51.100.8:5080";
const NODE: &str = "203.0.113.10:5060";

#[expect(clippy::disallowed_methods, reason = "the test driver owns the clock")]
fn start_instant() -> Instant {
    Instant::now()
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("socket address")
}

fn config() -> ProxyConfig {
    let node = addr(NODE);
    ProxyConfig {
        interfaces: vec![
            LocalInterface {
                transport: Transport::Udp,
                addr: node,
                host: "203.0.113.10".to_owned(),
                port: 5060,
            },
            LocalInterface {
                transport: Transport::Tcp,
                addr: node,
                host: "203.0.113.10".to_owned(),
                port: 5060,
            },
        ],
        domains: vec!["node.example".to_owned()],
        record_route: true,
        timers: TimerConfig::default(),
        timer_c: Duration::from_secs(180),
        server_header: "test".to_owned(),
        udp_switch_size: Some(1300),
        instance: 7,
    }
}

/// What went out, parsed.
#[derive(Debug)]
struct Sent {
    to: SocketAddr,
    transport: Transport,
    msg: Message,
    token: Option<TransmitToken>,
}

struct Harness {
    proxy: Proxy,
    now: Instant,
    sent: Vec<Sent>,
    routes: Vec<(RouteId, Message, RouteKind)>,
    events: Vec<Event>,
}

impl Harness {
    fn new() -> Self {
        Self::with(config())
    }

    fn with(config: ProxyConfig) -> Self {
        Self {
            proxy: Proxy::new(config),
            now: start_instant(),
            sent: Vec::new(),
            routes: Vec::new(),
            events: Vec::new(),
        }
    }

    fn drain(&mut self) {
        while let Some(t) = self.proxy.poll_transmit() {
            let msg = Message::parse(t.bytes.clone()).expect("the proxy sends valid SIP");
            self.sent.push(Sent {
                to: t.remote,
                transport: t.transport,
                msg,
                token: t.token,
            });
        }
        while let Some(ev) = self.proxy.poll_event() {
            match ev {
                Event::Route {
                    id, request, kind, ..
                } => self.routes.push((id, request, kind)),
                other => self.events.push(other),
            }
        }
    }

    fn recv_on(&mut self, text: &str, from: &str, transport: Transport) {
        let msg = Message::parse(Bytes::from(text.to_owned())).expect("test message parses");
        let flow = Flow {
            transport,
            local: addr(NODE),
            remote: addr(from),
            conn: transport.is_reliable().then_some(1),
        };
        self.proxy.handle_message(self.now, msg, flow);
        self.drain();
    }

    fn recv(&mut self, text: &str, from: &str) {
        self.recv_on(text, from, Transport::Udp);
    }

    fn advance(&mut self, by: Duration) {
        let until = self.now + by;
        while let Some(at) = self.proxy.poll_timeout() {
            if at > until {
                break;
            }
            self.now = at.max(self.now);
            self.proxy.handle_timeout(self.now);
            self.drain();
        }
        self.now = until;
    }

    fn answer_route(&mut self, decision: RouteDecision) {
        let (id, _, _) = self.routes.remove(0);
        self.proxy.handle_route(self.now, id, decision);
        self.drain();
    }

    fn route_to(&mut self, targets: &[(&str, &str, Transport)]) {
        let targets = targets
            .iter()
            .map(|(uri, remote, transport)| Target {
                uri: uri.parse::<Uri>().expect("uri"),
                transport: *transport,
                remote: addr(remote),
                server_name: None,
            })
            .collect();
        self.answer_route(RouteDecision::forward(targets));
    }

    /// Messages sent to `to` since the last call, oldest first.
    fn take_to(&mut self, to: &str) -> Vec<Message> {
        let to = addr(to);
        let (mine, rest): (Vec<Sent>, Vec<Sent>) = self.sent.drain(..).partition(|s| s.to == to);
        self.sent = rest;
        mine.into_iter().map(|s| s.msg).collect()
    }

    /// Whether a CANCEL was among what went to `to` (all of which is taken).
    fn cancel_sent_to(&mut self, to: &str) -> bool {
        self.take_to(to)
            .iter()
            .any(|m| m.method() == Some(&Method::Cancel))
    }

    fn statuses_to(&mut self, to: &str) -> Vec<u16> {
        self.take_to(to)
            .iter()
            .filter_map(Message::status)
            .collect()
    }
}

fn invite(branch: &str) -> String {
    let body = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
    format!(
        "INVITE sip:+4721345678@node.example SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch={branch}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:+15550100@a.example>;tag=fa\r\nTo: <sip:+4721345678@node.example>\r\n\
         Call-ID: call-{branch}\r\nCSeq: 1 INVITE\r\nContact: <sip:caller@192.0.2.1:5060>\r\n\
         X-Custom: kept as is\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// A response from the downstream side to the request `req` we forwarded.
fn reply(req: &Message, status: u16, to_tag: Option<&str>) -> String {
    let resp = crate::msg::response_to(req, status, "Reason", to_tag, &[]);
    String::from_utf8(resp.to_vec()).expect("utf8")
}

fn cancel(branch: &str) -> String {
    format!(
        "CANCEL sip:+4721345678@node.example SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch={branch}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:+15550100@a.example>;tag=fa\r\nTo: <sip:+4721345678@node.example>\r\n\
         Call-ID: call-{branch}\r\nCSeq: 1 CANCEL\r\nContent-Length: 0\r\n\r\n"
    )
}

fn to_b() -> [(&'static str, &'static str, Transport); 1] {
    [("sip:+4721345678@198.51.100.7:5070", B, Transport::Udp)]
}

/// Sets up an INVITE forwarded to B and returns it as B received it.
fn forwarded_invite(h: &mut Harness, branch: &str) -> Message {
    h.recv(&invite(branch), A);
    assert_eq!(h.statuses_to(A), vec![100], "100 Trying at once");
    assert_eq!(h.routes.len(), 1, "one routing question");
    h.route_to(&to_b());
    let mut at_b = h.take_to(B);
    assert_eq!(at_b.len(), 1);
    at_b.remove(0)
}

#[test]
fn invite_is_forwarded_with_via_record_route_and_max_forwards() {
    let mut h = Harness::new();
    let fwd = forwarded_invite(&mut h, "z9hG4bKaaa1");
    assert_eq!(fwd.method(), Some(&Method::Invite));
    assert_eq!(
        fwd.request_uri().map(ToString::to_string).as_deref(),
        Some("sip:+4721345678@198.51.100.7:5070")
    );
    assert_eq!(fwd.max_forwards(), Some(69));
    let vias = fwd.vias().expect("vias");
    assert_eq!(vias.len(), 2);
    let top = &vias[0];
    assert!(top.branch().is_some_and(|b| b.starts_with("z9hG4bK")));
    assert_eq!(top.sent_by().1, Some(5060));
    let rr = fwd.record_routes().expect("record-route");
    assert_eq!(rr.len(), 1, "one interface, one Record-Route");
    assert_eq!(rr[0].uri.to_string(), "sip:203.0.113.10:5060;lr");
    assert_eq!(
        fwd.header(&HeaderName::Other("X-Custom".to_owned())),
        Some("kept as is")
    );
    assert_eq!(
        fwd.body().len(),
        fwd.header(&HeaderName::ContentLength)
            .map_or(0, |l| l.trim().parse().unwrap_or(0))
    );
}

#[test]
fn provisional_and_final_responses_go_upstream_without_our_via() {
    let mut h = Harness::new();
    let fwd = forwarded_invite(&mut h, "z9hG4bKaaa2");
    h.recv(&reply(&fwd, 180, Some("tb")), B);
    h.recv(&reply(&fwd, 200, Some("tb")), B);
    let up = h.take_to(A);
    assert_eq!(
        up.iter().filter_map(Message::status).collect::<Vec<_>>(),
        vec![180, 200]
    );
    for resp in &up {
        let vias = resp.vias().expect("vias");
        assert_eq!(vias.len(), 1, "our Via removed");
        assert_eq!(vias[0].branch(), Some("z9hG4bKaaa2"));
    }
    // A 2xx retransmission from B is relayed too (RFC 6026).
    h.recv(&reply(&fwd, 200, Some("tb")), B);
    assert_eq!(h.statuses_to(A), vec![200]);
    assert!(
        h.events
            .iter()
            .any(|e| matches!(e, Event::CallFinal { status: 200, .. }))
    );
}

#[test]
fn retransmitted_invite_is_absorbed_and_answered_with_the_last_response() {
    let mut h = Harness::new();
    let fwd = forwarded_invite(&mut h, "z9hG4bKaaa3");
    h.recv(&reply(&fwd, 180, Some("tb")), B);
    assert_eq!(h.statuses_to(A), vec![180]);
    h.recv(&invite("z9hG4bKaaa3"), A);
    assert!(h.routes.is_empty(), "no second routing question");
    assert!(h.take_to(B).is_empty(), "nothing new forwarded");
    assert_eq!(h.statuses_to(A), vec![180], "last provisional sent again");
}

#[test]
fn busy_is_relayed_and_acked_hop_by_hop() {
    let mut h = Harness::new();
    let fwd = forwarded_invite(&mut h, "z9hG4bKaaa4");
    h.recv(&reply(&fwd, 486, Some("tb")), B);
    assert_eq!(h.statuses_to(A), vec![486]);
    let acks = h.take_to(B);
    assert_eq!(acks.len(), 1);
    assert_eq!(acks[0].method(), Some(&Method::Ack));
    assert_eq!(
        acks[0].top_via().and_then(|v| v.branch()),
        fwd.top_via().and_then(|v| v.branch())
    );
    assert_eq!(acks[0].to().tag(), Some("tb"));
    // Timer G: the 486 is retransmitted to A over UDP until A's ACK.
    h.advance(Duration::from_millis(500));
    assert_eq!(h.statuses_to(A), vec![486]);
    let ack_a = invite("z9hG4bKaaa4")
        .replacen("INVITE sip:", "ACK sip:", 1)
        .replace("CSeq: 1 INVITE", "CSeq: 1 ACK");
    h.recv(&ack_a, A);
    h.advance(Duration::from_secs(10));
    assert!(
        h.statuses_to(A).is_empty(),
        "ACK stopped the retransmissions"
    );
    assert!(
        h.take_to(B).is_empty(),
        "A's ACK for a non-2xx is not forwarded"
    );
}

#[test]
fn server_errors_fail_over_and_503_becomes_500() {
    let mut h = Harness::new();
    h.recv(&invite("z9hG4bKaaa5"), A);
    h.statuses_to(A);
    h.route_to(&[
        ("sip:+4721345678@198.51.100.7:5070", B, Transport::Udp),
        ("sip:+4721345678@198.51.100.8:5080", C, Transport::Udp),
    ]);
    let at_b = h.take_to(B);
    h.recv(&reply(&at_b[0], 503, Some("tb")), B);
    assert!(
        h.statuses_to(A).is_empty(),
        "503 is not final while targets remain"
    );
    let at_c = h.take_to(C);
    assert_eq!(at_c.len(), 1, "failover to the second target");
    assert_ne!(
        at_c[0].top_via().and_then(|v| v.branch()),
        at_b[0].top_via().and_then(|v| v.branch()),
        "a new branch per target"
    );
    h.recv(&reply(&at_c[0], 503, Some("tc")), C);
    let up = h.take_to(A);
    assert_eq!(
        up.iter().filter_map(Message::status).collect::<Vec<_>>(),
        vec![500]
    );
}

#[test]
fn busy_ends_the_search_without_failover() {
    let mut h = Harness::new();
    h.recv(&invite("z9hG4bKaaa6"), A);
    h.route_to(&[
        ("sip:+4721345678@198.51.100.7:5070", B, Transport::Udp),
        ("sip:+4721345678@198.51.100.8:5080", C, Transport::Udp),
    ]);
    let at_b = h.take_to(B);
    h.recv(&reply(&at_b[0], 486, Some("tb")), B);
    assert!(h.take_to(C).is_empty());
    assert_eq!(h.statuses_to(A), vec![100, 486]);
}

#[test]
fn transport_error_fails_over_at_once() {
    let mut h = Harness::new();
    h.recv(&invite("z9hG4bKaaa7"), A);
    h.route_to(&[
        (
            "sip:+4721345678@198.51.100.7:5070;transport=tcp",
            B,
            Transport::Tcp,
        ),
        ("sip:+4721345678@198.51.100.8:5080", C, Transport::Udp),
    ]);
    let token = h
        .sent
        .iter()
        .find(|s| s.to == addr(B))
        .and_then(|s| s.token.clone())
        .expect("the forward carries a token");
    assert_eq!(
        h.sent.iter().find(|s| s.to == addr(B)).map(|s| s.transport),
        Some(Transport::Tcp)
    );
    h.proxy.handle_transport_error(h.now, token);
    h.drain();
    assert_eq!(h.take_to(C).len(), 1, "second target tried");
}

#[test]
fn silent_udp_target_times_out_after_64_t1_then_fails_over() {
    let mut h = Harness::new();
    h.recv(&invite("z9hG4bKaaa8"), A);
    h.route_to(&[
        ("sip:+4721345678@198.51.100.7:5070", B, Transport::Udp),
        ("sip:+4721345678@198.51.100.8:5080", C, Transport::Udp),
    ]);
    let start = h.now;
    // Timer A: retransmissions at 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s.
    h.advance(Duration::from_millis(31_999));
    assert_eq!(h.take_to(B).len(), 7, "the INVITE and six retransmissions");
    assert!(h.take_to(C).is_empty());
    h.advance(Duration::from_millis(1));
    assert_eq!(h.now - start, Duration::from_secs(32));
    assert_eq!(h.take_to(C).len(), 1, "Timer B ended the first branch");
}

#[test]
fn all_targets_silent_gives_408() {
    let mut h = Harness::new();
    h.recv(&invite("z9hG4bKaaa9"), A);
    h.route_to(&to_b());
    h.statuses_to(A);
    h.advance(Duration::from_secs(33));
    let up = h.statuses_to(A);
    assert_eq!(up.first(), Some(&408));
    assert!(
        up.iter().all(|s| *s == 408),
        "only the 408 and its Timer G retransmissions: {up:?}"
    );
}

#[test]
fn cancel_while_routing_answers_487_and_forwards_nothing() {
    let mut h = Harness::new();
    h.recv(&invite("z9hG4bKab10"), A);
    h.statuses_to(A);
    h.recv(&cancel("z9hG4bKab10"), A);
    let up = h.take_to(A);
    let mut got: Vec<(u16, Method)> = up
        .iter()
        .map(|m| (m.status().unwrap_or(0), m.cseq().method.clone()))
        .collect();
    got.sort_by_key(|(s, _)| *s);
    assert_eq!(got, vec![(200, Method::Cancel), (487, Method::Invite)]);
    h.route_to(&to_b());
    assert!(h.take_to(B).is_empty(), "a cancelled call is not forwarded");
}

#[test]
fn cancel_after_ringing_cancels_the_branch() {
    let mut h = Harness::new();
    let fwd = forwarded_invite(&mut h, "z9hG4bKab11");
    h.recv(&reply(&fwd, 180, Some("tb")), B);
    h.statuses_to(A);
    h.recv(&cancel("z9hG4bKab11"), A);
    assert_eq!(h.statuses_to(A), vec![200], "CANCEL answered hop by hop");
    let at_b = h.take_to(B);
    assert_eq!(at_b.len(), 1);
    let c = &at_b[0];
    assert_eq!(c.method(), Some(&Method::Cancel));
    assert_eq!(
        c.top_via().and_then(|v| v.branch()),
        fwd.top_via().and_then(|v| v.branch())
    );
    assert_eq!(c.request_uri(), fwd.request_uri());
    h.recv(&reply(c, 200, Some("tb")), B);
    h.recv(&reply(&fwd, 487, Some("tb")), B);
    assert_eq!(h.statuses_to(A), vec![487]);
}

#[test]
fn cancel_before_any_provisional_waits_for_one() {
    let mut h = Harness::new();
    let fwd = forwarded_invite(&mut h, "z9hG4bKab12");
    h.recv(&cancel("z9hG4bKab12"), A);
    assert!(
        h.take_to(B)
            .iter()
            .all(|m| m.method() != Some(&Method::Cancel)),
        "no CANCEL before a provisional response (RFC 3261 §9.1)"
    );
    h.recv(&reply(&fwd, 180, Some("tb")), B);
    assert!(
        h.take_to(B)
            .iter()
            .any(|m| m.method() == Some(&Method::Cancel))
    );
}

#[test]
fn unknown_cancel_gets_481() {
    let mut h = Harness::new();
    h.recv(&cancel("z9hG4bKnothere"), A);
    assert_eq!(h.statuses_to(A), vec![481]);
}

#[test]
fn validation_answers_483_420_416() {
    let mut h = Harness::new();
    h.recv(
        &invite("z9hG4bKab13").replace("Max-Forwards: 70", "Max-Forwards: 0"),
        A,
    );
    assert_eq!(h.statuses_to(A), vec![100, 483]);
    h.recv(
        &invite("z9hG4bKab14").replace(
            "Max-Forwards: 70",
            "Max-Forwards: 70\r\nProxy-Require: foo, bar",
        ),
        A,
    );
    let up = h.take_to(A);
    let last = up.last().expect("a final response");
    assert_eq!(last.status(), Some(420));
    assert_eq!(last.header(&HeaderName::Unsupported), Some("foo, bar"));
    h.recv(
        &invite("z9hG4bKab15").replace(
            "INVITE sip:+4721345678@node.example SIP",
            "INVITE mailto:x@y SIP",
        ),
        A,
    );
    assert_eq!(h.statuses_to(A), vec![100, 416]);
    assert!(h.routes.is_empty(), "nothing invalid reaches the router");
}

#[test]
fn a_request_that_comes_back_unchanged_is_a_loop() {
    let mut h = Harness::new();
    h.recv(&invite("z9hG4bKab16"), A);
    h.statuses_to(A);
    // Route it to a target whose Request-URI is the same as received: when it
    // comes back, every loop-relevant field is unchanged.
    h.route_to(&[("sip:+4721345678@node.example", B, Transport::Udp)]);
    let fwd = h.take_to(B).remove(0);
    let text = String::from_utf8(fwd.as_bytes().to_vec()).expect("utf8");
    h.recv(&text, B);
    assert_eq!(h.statuses_to(B), vec![100, 482]);
}

#[test]
fn a_spiral_is_not_a_loop() {
    let mut h = Harness::new();
    h.recv(&invite("z9hG4bKab17"), A);
    h.statuses_to(A);
    h.route_to(&[("sip:+4721999999@node.example", B, Transport::Udp)]);
    let fwd = h.take_to(B).remove(0);
    let text = String::from_utf8(fwd.as_bytes().to_vec()).expect("utf8");
    h.recv(&text, B);
    assert_eq!(h.statuses_to(B), vec![100]);
    assert_eq!(h.routes.len(), 1, "the spiral is routed again");
}

#[test]
fn options_to_the_node_is_answered_locally() {
    let mut h = Harness::new();
    h.recv(
        "OPTIONS sip:203.0.113.10:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKopt1\r\n\
         Max-Forwards: 70\r\nFrom: <sip:probe@a.example>;tag=1\r\nTo: <sip:203.0.113.10>\r\n\
         Call-ID: opt1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        A,
    );
    let up = h.take_to(A);
    assert_eq!(up.len(), 1);
    assert_eq!(up[0].status(), Some(200));
    assert!(
        up[0]
            .header(&HeaderName::Allow)
            .is_some_and(|a| a.contains("INVITE"))
    );
    assert!(h.routes.is_empty());
}

#[test]
fn in_dialog_requests_follow_the_route_set() {
    let mut h = Harness::new();
    h.recv(
        "BYE sip:callee@198.51.100.7:5070 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKbye1\r\n\
         Max-Forwards: 70\r\nRoute: <sip:203.0.113.10:5060;lr>, <sip:edge-b.example;lr>\r\n\
         From: <sip:+15550100@a.example>;tag=fa\r\nTo: <sip:+4721345678@node.example>;tag=tb\r\n\
         Call-ID: dialog1\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
        A,
    );
    let (_, req, kind) = h.routes.first().cloned().expect("a routing question");
    assert_eq!(
        kind,
        RouteKind::InDialog {
            next_hop: "sip:edge-b.example;lr".parse().expect("uri")
        }
    );
    // The routing seam sees the request as received; our own Route value
    // goes in the forwarding edit.
    assert_eq!(req.routes().expect("routes").len(), 2);
    h.route_to(&[("sip:callee@198.51.100.7:5070", B, Transport::Udp)]);
    let at_b = h.take_to(B);
    assert_eq!(at_b.len(), 1);
    let routes = at_b[0].routes().expect("routes");
    assert_eq!(routes.len(), 1, "our own Route value removed");
    assert_eq!(routes[0].uri.to_string(), "sip:edge-b.example;lr");
    assert_eq!(
        at_b[0].header(&HeaderName::Route),
        Some("<sip:edge-b.example;lr>"),
        "the rest of the route set passed on as received"
    );
    assert!(
        at_b[0].record_routes().expect("rr").is_empty(),
        "no Record-Route on in-dialog requests"
    );
    h.recv(&reply(&at_b[0], 200, None), B);
    assert_eq!(h.statuses_to(A), vec![200]);
}

#[test]
fn an_answered_invite_keeps_no_context_and_still_relays_2xx_retransmissions() {
    let mut h = Harness::new();
    let fwd = forwarded_invite(&mut h, "z9hG4bKctx1");
    h.recv(&reply(&fwd, 180, Some("tb")), B);
    assert_eq!(h.proxy.context_count(), 1, "a ringing call has its context");
    h.recv(&reply(&fwd, 200, Some("tb")), B);
    assert_eq!(h.statuses_to(A), vec![180, 200]);
    assert_eq!(h.proxy.context_count(), 0, "the 2xx ends the context");
    assert_eq!(
        h.proxy.transaction_count(),
        2,
        "both INVITE transactions linger (RFC 6026 Timers L and M)"
    );
    // B's 2xx retransmissions still reach A, each once, without our Via.
    for _ in 0..2 {
        h.recv(&reply(&fwd, 200, Some("tb")), B);
        let up = h.take_to(A);
        assert_eq!(
            up.iter().filter_map(Message::status).collect::<Vec<_>>(),
            vec![200]
        );
        let vias = up[0].vias().expect("vias");
        assert_eq!(vias.len(), 1, "our Via removed");
        assert_eq!(vias[0].branch(), Some("z9hG4bKctx1"));
    }
    let finals = h
        .events
        .iter()
        .filter(|e| matches!(e, Event::CallFinal { .. }))
        .count();
    assert_eq!(finals, 1, "one CallFinal, for the first 2xx");
    // A's INVITE retransmission is absorbed ("Accepted"), a late CANCEL
    // gets its 200 and cancels nothing.
    h.recv(&invite("z9hG4bKctx1"), A);
    assert!(h.sent.is_empty(), "INVITE retransmission absorbed");
    assert!(h.routes.is_empty(), "no second routing question");
    h.recv(&cancel("z9hG4bKctx1"), A);
    assert_eq!(h.statuses_to(A), vec![200]);
    assert!(h.take_to(B).is_empty(), "no CANCEL after the 2xx");
    // A 2xx retransmission after Timer M is no longer relayed (the client
    // transaction is gone), and nothing is left behind.
    h.advance(Duration::from_secs(40));
    h.recv(&reply(&fwd, 200, Some("tb")), B);
    assert!(h.take_to(A).is_empty());
    assert_eq!(h.proxy.transaction_count(), 0);
    assert_eq!(h.proxy.context_count(), 0);
    assert_eq!(h.proxy.timer_count(), 0);
}

#[test]
fn an_answered_bye_keeps_no_context_and_its_retransmission_gets_the_200_again() {
    let mut h = Harness::new();
    let bye = "BYE sip:callee@198.51.100.7:5070 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKctxbye\r\n\
         Max-Forwards: 70\r\nRoute: <sip:203.0.113.10:5060;lr>\r\n\
         From: <sip:+15550100@a.example>;tag=fa\r\nTo: <sip:+4721345678@node.example>;tag=tb\r\n\
         Call-ID: dialog-ctx\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n";
    h.recv(bye, A);
    h.route_to(&[("sip:callee@198.51.100.7:5070", B, Transport::Udp)]);
    let at_b = h.take_to(B);
    assert_eq!(at_b.len(), 1);
    assert_eq!(h.proxy.context_count(), 1);
    h.recv(&reply(&at_b[0], 200, None), B);
    assert_eq!(h.statuses_to(A), vec![200]);
    assert_eq!(h.proxy.context_count(), 0, "the final response ends it");
    // The server transaction answers A's retransmission alone (Timer J),
    // and the client transaction absorbs B's 200 retransmission (Timer K).
    h.recv(bye, A);
    let again = h.take_to(A);
    assert_eq!(
        again.iter().filter_map(Message::status).collect::<Vec<_>>(),
        vec![200]
    );
    assert_eq!(again[0].call_id(), "dialog-ctx");
    assert!(
        h.take_to(B).is_empty(),
        "the retransmission is not forwarded"
    );
    assert!(h.routes.is_empty(), "no second routing question");
    h.recv(&reply(&at_b[0], 200, None), B);
    assert!(h.take_to(A).is_empty(), "B's retransmission absorbed");
    h.advance(Duration::from_secs(40));
    assert_eq!(h.proxy.transaction_count(), 0);
    assert_eq!(h.proxy.timer_count(), 0);
}

#[test]
fn ipv6_peers_get_their_responses_at_their_exact_address() {
    use std::net::{Ipv6Addr, SocketAddrV6};
    let mut h = Harness::new();
    // A link-local peer asking for rport (RFC 3581): responses go back to
    // the flow's address as it came, scope included.
    let peer = SocketAddr::V6(SocketAddrV6::new(
        "fe80::1".parse::<Ipv6Addr>().expect("ip"),
        5062,
        7,
        3,
    ));
    let flow = Flow {
        transport: Transport::Udp,
        local: addr(NODE),
        remote: peer,
        conn: None,
    };
    let bye = "BYE sip:callee@[2001:db8::7]:5070 SIP/2.0\r\nVia: SIP/2.0/UDP [fe80::1]:5062;branch=z9hG4bKv6bye;rport\r\n\
         Max-Forwards: 70\r\nRoute: <sip:203.0.113.10:5060;lr>\r\n\
         From: <sip:+15550100@a.example>;tag=fa\r\nTo: <sip:+4721345678@node.example>;tag=tb\r\n\
         Call-ID: dialog-v6\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n";
    let msg = Message::parse(Bytes::from(bye)).expect("parses");
    h.proxy.handle_message(h.now, msg.clone(), flow.clone());
    h.drain();
    h.route_to(&[(
        "sip:callee@[2001:db8::7]:5070",
        "[2001:db8::7]:5070",
        Transport::Udp,
    )]);
    let at_b = h.take_to("[2001:db8::7]:5070");
    assert_eq!(at_b.len(), 1, "forwarded to the IPv6 target");
    h.recv(&reply(&at_b[0], 200, None), "[2001:db8::7]:5070");
    let up: Vec<&Sent> = h.sent.iter().filter(|s| s.to == peer).collect();
    assert_eq!(up.len(), 1);
    assert_eq!(up[0].msg.status(), Some(200));
    h.sent.clear();
    // Its retransmission gets the 200 again (Timer J), at the same address.
    h.proxy.handle_message(h.now, msg, flow);
    h.drain();
    assert_eq!(h.sent.len(), 1);
    assert_eq!(h.sent[0].to, peer);
    assert_eq!(h.sent[0].msg.status(), Some(200));
}

#[test]
fn a_rejected_invite_keeps_no_context_and_retransmissions_still_work() {
    let mut h = Harness::new();
    let fwd = forwarded_invite(&mut h, "z9hG4bKctx2");
    h.recv(&reply(&fwd, 486, Some("tb")), B);
    assert_eq!(h.statuses_to(A), vec![486]);
    assert_eq!(h.take_to(B).len(), 1, "the ACK to B");
    assert_eq!(h.proxy.context_count(), 0);
    // B's retransmission of the 486 gets the ACK again, not relayed.
    h.recv(&reply(&fwd, 486, Some("tb")), B);
    assert!(h.take_to(A).is_empty());
    let acks = h.take_to(B);
    assert_eq!(acks.len(), 1);
    assert_eq!(acks[0].method(), Some(&Method::Ack));
    // A's INVITE retransmission gets the 486 again.
    h.recv(&invite("z9hG4bKctx2"), A);
    assert_eq!(h.statuses_to(A), vec![486]);
}

#[test]
fn strict_router_request_uri_is_restored_from_the_last_route() {
    let mut h = Harness::new();
    h.recv(
        "BYE sip:203.0.113.10:5060;lr SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKbye2\r\n\
         Max-Forwards: 70\r\nRoute: <sip:callee@198.51.100.7:5070>\r\n\
         From: <sip:+15550100@a.example>;tag=fa\r\nTo: <sip:+4721345678@node.example>;tag=tb\r\n\
         Call-ID: dialog2\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
        A,
    );
    let (_, req, kind) = h.routes.first().cloned().expect("a routing question");
    assert_eq!(
        req.request_uri().map(ToString::to_string).as_deref(),
        Some("sip:callee@198.51.100.7:5070")
    );
    assert!(req.header(&HeaderName::Route).is_none());
    assert!(matches!(kind, RouteKind::InDialog { .. }));
}

#[test]
fn double_record_route_when_the_transport_changes() {
    let mut h = Harness::new();
    h.recv(&invite("z9hG4bKab18"), A);
    h.route_to(&[(
        "sip:+4721345678@198.51.100.7:5070;transport=tcp",
        B,
        Transport::Tcp,
    )]);
    let fwd = h.take_to(B).remove(0);
    let rr: Vec<String> = fwd
        .record_routes()
        .expect("rr")
        .iter()
        .map(|r| r.uri.to_string())
        .collect();
    assert_eq!(
        rr,
        vec![
            "sip:203.0.113.10:5060;transport=tcp;lr".to_owned(),
            "sip:203.0.113.10:5060;lr".to_owned()
        ]
    );
    assert_eq!(
        fwd.top_via().map(|v| v.transport.clone()).as_deref(),
        Some("TCP")
    );
}

#[test]
fn large_requests_move_to_tcp() {
    let mut h = Harness::new();
    let big = invite("z9hG4bKab19").replace(
        "X-Custom: kept as is",
        &format!("X-Custom: {}", "x".repeat(1400)),
    );
    h.recv(&big, A);
    h.route_to(&to_b());
    let sent = h.sent.iter().find(|s| s.to == addr(B)).expect("forwarded");
    assert_eq!(sent.transport, Transport::Tcp, "RFC 3261 §18.1.1");
    assert_eq!(
        sent.msg.top_via().map(|v| v.transport.clone()).as_deref(),
        Some("TCP")
    );
}

/// An INVITE too large for UDP (§18.1.1), received from A and routed to
/// `targets`; returns what went out to B, with its transport and token.
fn large_invite_to(
    h: &mut Harness,
    branch: &str,
    targets: &[(&str, &str, Transport)],
) -> (Message, Transport, TransmitToken) {
    let big = invite(branch).replace(
        "X-Custom: kept as is",
        &format!("X-Custom: {}", "x".repeat(1400)),
    );
    h.recv(&big, A);
    assert_eq!(h.statuses_to(A), vec![100]);
    h.route_to(targets);
    only_to_b(h)
}

/// The one message sent since the last call, which went to B.
fn only_to_b(h: &mut Harness) -> (Message, Transport, TransmitToken) {
    assert_eq!(h.sent.len(), 1, "one transmission: {:?}", h.sent);
    let sent = h.sent.remove(0);
    assert_eq!(sent.to, addr(B));
    let token = sent.token.expect("a forward carries a token");
    (sent.msg, sent.transport, token)
}

fn top_via_transport(msg: &Message) -> Option<String> {
    msg.top_via().map(|v| v.transport.clone())
}

fn top_branch(msg: &Message) -> Option<String> {
    msg.top_via().and_then(|v| v.branch()).map(str::to_owned)
}

#[test]
fn large_request_whose_tcp_connect_fails_is_retried_over_udp() {
    let mut h = Harness::new();
    let (tcp, transport, token) = large_invite_to(&mut h, "z9hG4bKab30", &to_b());
    assert_eq!(transport, Transport::Tcp, "switched by size");
    assert_eq!(top_via_transport(&tcp).as_deref(), Some("TCP"));

    // The connect is refused: RFC 3261 §18.1.1 says retry over UDP.
    h.proxy.handle_transport_error(h.now, token);
    h.drain();
    assert!(h.take_to(A).is_empty(), "the caller hears nothing yet");
    let (udp, transport, _) = only_to_b(&mut h);
    assert_eq!(transport, Transport::Udp);
    assert_eq!(udp.method(), Some(&Method::Invite));
    assert_eq!(top_via_transport(&udp).as_deref(), Some("UDP"));
    assert!(udp.top_via_rport(), "our UDP Via asks for rport");
    assert_ne!(top_branch(&udp), top_branch(&tcp), "a new branch");
    assert!(top_branch(&udp).is_some_and(|b| b.starts_with("z9hG4bK")));
    // The same edits as the TCP attempt: Request-URI, Max-Forwards, the
    // caller's Via below ours, headers and body untouched.
    assert_eq!(udp.request_uri(), tcp.request_uri());
    assert_eq!(udp.max_forwards(), Some(69));
    let vias = udp.vias().expect("vias");
    assert_eq!(vias.len(), 2);
    assert_eq!(vias[1].branch(), Some("z9hG4bKab30"));
    assert_eq!(
        udp.header(&HeaderName::Other("X-Custom".to_owned())),
        tcp.header(&HeaderName::Other("X-Custom".to_owned()))
    );
    assert_eq!(udp.body(), tcp.body());
    // Record-Route names the UDP leg only: both legs are UDP now, so the
    // TCP attempt's double entry is gone.
    let rr: Vec<String> = udp
        .record_routes()
        .expect("rr")
        .iter()
        .map(|r| r.uri.to_string())
        .collect();
    assert_eq!(rr, vec!["sip:203.0.113.10:5060;lr".to_owned()]);

    // The callee answers over UDP; the answer reaches the caller.
    h.recv(&reply(&udp, 180, Some("tb")), B);
    h.recv(&reply(&udp, 200, Some("tb")), B);
    let up = h.take_to(A);
    assert_eq!(
        up.iter().filter_map(Message::status).collect::<Vec<_>>(),
        vec![180, 200]
    );
    assert_eq!(top_branch(&up[1]).as_deref(), Some("z9hG4bKab30"));
    assert!(
        h.events.iter().any(|e| matches!(
            e,
            Event::CallFinal {
                status: 200,
                attempts: 1,
                ..
            }
        )),
        "one target tried: {:?}",
        h.events
    );
    // The TCP branch does not answer late: a response on it is stray.
    h.recv(&reply(&tcp, 200, Some("tb")), B);
    assert!(h.take_to(A).is_empty());
}

#[test]
fn a_failed_udp_retry_fails_the_branch() {
    let mut h = Harness::new();
    let (_, transport, token) = large_invite_to(&mut h, "z9hG4bKab31", &to_b());
    assert_eq!(transport, Transport::Tcp);
    h.proxy.handle_transport_error(h.now, token);
    h.drain();
    let (_, transport, token) = only_to_b(&mut h);
    assert_eq!(transport, Transport::Udp);
    // Only one retry: a transport error on UDP ends the only target, as
    // any transport error does (503 without a message, relayed as 500).
    h.proxy.handle_transport_error(h.now, token);
    h.drain();
    assert!(h.take_to(B).is_empty(), "no third attempt");
    assert_eq!(h.statuses_to(A), vec![500]);
    h.advance(Duration::from_secs(64));
    assert_eq!(h.proxy.transaction_count(), 0);
    assert_eq!(h.proxy.context_count(), 0);
}

#[test]
fn a_failed_udp_retry_fails_over_to_the_next_target() {
    let mut h = Harness::new();
    let targets = [
        ("sip:+4721345678@198.51.100.7:5070", B, Transport::Udp),
        ("sip:+4721345678@198.51.100.8:5080", C, Transport::Udp),
    ];
    let (_, _, token) = large_invite_to(&mut h, "z9hG4bKab32", &targets);
    h.proxy.handle_transport_error(h.now, token);
    h.drain();
    assert!(h.take_to(C).is_empty(), "B is retried before C is tried");
    let (_, transport, token) = only_to_b(&mut h);
    assert_eq!(transport, Transport::Udp);
    h.proxy.handle_transport_error(h.now, token);
    h.drain();
    let at_c: Vec<Sent> = h.sent.drain(..).collect();
    assert_eq!(at_c.len(), 1);
    assert_eq!(at_c[0].to, addr(C));
    assert_eq!(
        at_c[0].transport,
        Transport::Tcp,
        "C is switched by size too"
    );
}

#[test]
fn no_udp_retry_when_the_target_asked_for_tcp() {
    let mut h = Harness::new();
    let (_, transport, token) = large_invite_to(
        &mut h,
        "z9hG4bKab33",
        &[(
            "sip:+4721345678@198.51.100.7:5070;transport=tcp",
            B,
            Transport::Tcp,
        )],
    );
    assert_eq!(transport, Transport::Tcp);
    h.proxy.handle_transport_error(h.now, token);
    h.drain();
    assert!(h.take_to(B).is_empty(), "no retry over UDP");
    assert_eq!(h.statuses_to(A), vec![500]);
}

#[test]
fn no_udp_retry_once_the_callee_answered_over_tcp() {
    let mut h = Harness::new();
    let (tcp, transport, token) = large_invite_to(&mut h, "z9hG4bKab34", &to_b());
    assert_eq!(transport, Transport::Tcp);
    // The connection was up: the callee had the request.
    h.recv_on(&reply(&tcp, 100, None), B, Transport::Tcp);
    h.proxy.handle_transport_error(h.now, token);
    h.drain();
    assert!(h.take_to(B).is_empty(), "no retry over UDP");
    assert_eq!(h.statuses_to(A), vec![500]);
}

#[test]
fn no_udp_retry_after_cancel() {
    let mut h = Harness::new();
    let (_, _, token) = large_invite_to(&mut h, "z9hG4bKab35", &to_b());
    h.recv(&cancel("z9hG4bKab35"), A);
    assert_eq!(h.statuses_to(A), vec![200], "CANCEL answered hop by hop");
    h.proxy.handle_transport_error(h.now, token);
    h.drain();
    assert!(h.take_to(B).is_empty(), "no retry over UDP");
    assert_eq!(h.statuses_to(A), vec![487]);
}

#[test]
fn stray_responses_are_dropped() {
    let mut h = Harness::new();
    h.recv(
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 203.0.113.10:5060;branch=z9hG4bKnope\r\nVia: SIP/2.0/UDP 255.255.255.255;branch=z9hG4bKx\r\n\
         From: <sip:a@a.example>;tag=1\r\nTo: <sip:b@b.example>;tag=2\r\nCall-ID: stray\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
        B,
    );
    assert!(h.sent.is_empty());
    assert!(
        h.events
            .iter()
            .any(|e| matches!(e, Event::StrayResponse { status: 200 }))
    );
}

#[test]
fn router_rejection_reaches_the_caller_with_its_headers() {
    let mut h = Harness::new();
    h.recv(&invite("z9hG4bKab20"), A);
    h.statuses_to(A);
    h.answer_route(RouteDecision::Reject(
        Rejection::new(503, "Rate Limited").with_header(HeaderName::RetryAfter, "2"),
    ));
    let up = h.take_to(A);
    assert_eq!(up[0].status(), Some(503));
    assert_eq!(up[0].reason(), Some("Rate Limited"));
    assert_eq!(up[0].header(&HeaderName::RetryAfter), Some("2"));
    assert!(
        up[0].to().tag().is_some(),
        "a local final response carries a To tag"
    );
    assert!(
        h.events
            .iter()
            .any(|e| matches!(e, Event::Rejected { status: 503, .. }))
    );
}

/// A call whose branch rings (its 180 relayed, still queued for A) under a
/// Timer C of 181 s.
fn ringing_under_timer_c(branch: &str) -> (Harness, Message) {
    let mut cfg = config();
    cfg.timer_c = Duration::from_secs(181);
    let mut h = Harness::with(cfg);
    let fwd = forwarded_invite(&mut h, branch);
    h.recv(&reply(&fwd, 180, Some("tb")), B);
    (h, fwd)
}

#[test]
fn timer_c_cancels_a_branch_that_rings_forever() {
    let (mut h, fwd) = ringing_under_timer_c("z9hG4bKab21");
    h.statuses_to(A);
    h.advance(Duration::from_secs(180));
    assert!(h.take_to(B).is_empty());
    h.advance(Duration::from_secs(1));
    assert!(h.cancel_sent_to(B), "Timer C sent CANCEL");
    h.recv(&reply(&fwd, 487, Some("tb")), B);
    assert_eq!(
        h.statuses_to(A),
        vec![408],
        "the caller sees a timeout, not the 487"
    );
}

#[test]
fn a_2xx_racing_timer_c_cancel_still_reaches_the_caller() {
    // §16.8 cancels a branch that rang for Timer C; the callee may answer
    // before the CANCEL arrives. §16.7 step 5: every 2xx is forwarded, so
    // the caller gets the call the callee accepted (and can ACK or BYE it),
    // not a 408 for a call that is up on the far side.
    let (mut h, fwd) = ringing_under_timer_c("z9hG4bKrace1");
    assert_eq!(h.statuses_to(A), vec![180]);
    h.advance(Duration::from_secs(181));
    assert!(h.cancel_sent_to(B), "Timer C sent CANCEL");
    h.recv(&reply(&fwd, 200, Some("tb")), B);
    let up = h.take_to(A);
    assert_eq!(
        up.iter().filter_map(Message::status).collect::<Vec<_>>(),
        vec![200],
        "the 2xx is relayed, and no 408 is generated"
    );
    let vias = up[0].vias().expect("vias");
    assert_eq!(vias.len(), 1, "our Via removed");
    let finals: Vec<u16> = h
        .events
        .iter()
        .filter_map(|e| match e {
            Event::CallFinal { status, .. } => Some(*status),
            _ => None,
        })
        .collect();
    assert_eq!(finals, vec![200], "the call is recorded as answered");
    // The callee's 2xx retransmission reaches the caller too.
    h.recv(&reply(&fwd, 200, Some("tb")), B);
    assert_eq!(h.statuses_to(A), vec![200]);
    // Nothing lingers once the transactions have run out.
    h.advance(Duration::from_secs(40));
    assert_eq!(h.proxy.context_count(), 0);
    assert_eq!(h.proxy.transaction_count(), 0);
    assert_eq!(h.proxy.timer_count(), 0);
}

#[test]
fn draining_refuses_new_requests_with_retry_after() {
    let mut h = Harness::new();
    h.proxy.start_draining();
    h.recv(&invite("z9hG4bKab22"), A);
    let up = h.take_to(A);
    assert_eq!(up.len(), 1);
    assert_eq!(up[0].status(), Some(503));
    assert!(up[0].header(&HeaderName::RetryAfter).is_some());
    assert!(h.proxy.is_idle());
}

#[test]
fn overload_sheds_new_calls_and_keeps_calls_in_progress() {
    let mut h = Harness::new();
    // A call in progress before the overload.
    let fwd = forwarded_invite(&mut h, "z9hG4bKov1");
    h.proxy.set_overloaded(true);
    // A new call: 503 with Retry-After, no routing question, nothing kept.
    h.recv(&invite("z9hG4bKov2"), A);
    let up = h.take_to(A);
    assert_eq!(up.len(), 1);
    assert_eq!(up[0].status(), Some(503));
    assert_eq!(up[0].header(&HeaderName::RetryAfter), Some("1"));
    assert!(h.routes.is_empty());
    assert_eq!(h.proxy.overload_rejections(), 1);
    // Its ACK is hop by hop: absorbed, neither routed nor forwarded.
    let tag = up[0].to().tag().expect("the 503 has a To tag").to_owned();
    let ack = invite("z9hG4bKov2")
        .replacen("INVITE sip:", "ACK sip:", 1)
        .replace("CSeq: 1 INVITE", "CSeq: 1 ACK")
        .replace(
            "To: <sip:+4721345678@node.example>",
            &format!("To: <sip:+4721345678@node.example>;tag={tag}"),
        );
    h.recv(&ack, A);
    assert!(h.routes.is_empty(), "the ACK of our 503 is not routed");
    assert!(h.sent.is_empty(), "nor sent anywhere");
    // The call in progress still completes.
    h.recv(&reply(&fwd, 200, Some("tb")), B);
    assert_eq!(h.statuses_to(A), vec![200]);
    // Over: new calls are routed again.
    h.proxy.set_overloaded(false);
    h.recv(&invite("z9hG4bKov3"), A);
    assert_eq!(h.statuses_to(A), vec![100]);
    assert_eq!(h.routes.len(), 1);
}

#[test]
fn an_answered_call_leaves_no_timer_behind() {
    let mut h = Harness::new();
    let fwd = forwarded_invite(&mut h, "z9hG4bKtm1");
    // The client INVITE transaction's (Timer A) and Timer C; the server
    // transaction needs none until it answers.
    assert_eq!(h.proxy.timer_count(), 2);
    h.recv(&reply(&fwd, 180, Some("tb")), B);
    h.recv(&reply(&fwd, 200, Some("tb")), B);
    assert_eq!(h.statuses_to(A), vec![180, 200]);
    // Timer C went with the 2xx, the INVITE transactions with their last
    // timers (RFC 6026 Timer L/M, 32 s): three minutes before Timer C
    // would have come due, nothing is left queued.
    h.advance(Duration::from_secs(40));
    assert_eq!(h.proxy.transaction_count(), 0);
    assert_eq!(h.proxy.context_count(), 0);
    assert_eq!(h.proxy.timer_count(), 0);
}

#[test]
fn partial_shedding_refuses_that_share_of_new_calls_evenly() {
    let mut h = Harness::new();
    h.proxy.set_shed_permille(250);
    let mut statuses = Vec::new();
    for i in 0..8 {
        h.recv(&invite(&format!("z9hG4bKps{i}")), A);
        statuses.extend(h.statuses_to(A));
    }
    // Every fourth new call is refused; the others are routed.
    assert_eq!(statuses, vec![100, 100, 100, 503, 100, 100, 100, 503]);
    assert_eq!(h.proxy.overload_rejections(), 2);
    assert_eq!(h.routes.len(), 6);
    // Retransmissions of a routed call are not counted as new calls.
    h.recv(&invite("z9hG4bKps0"), A);
    h.recv(&invite("z9hG4bKps1"), A);
    h.recv(&invite("z9hG4bKps2"), A);
    assert!(!h.statuses_to(A).contains(&503));
    assert_eq!(h.proxy.overload_rejections(), 2);
    // Back to 0: everything is taken, and the spreading starts afresh.
    h.proxy.set_shed_permille(0);
    h.recv(&invite("z9hG4bKps9"), A);
    assert_eq!(h.statuses_to(A), vec![100]);
}

#[test]
fn responses_over_udp_go_to_the_via_port_or_rport() {
    let mut h = Harness::new();
    // Sent from port 40000, Via says 5060 without rport: reply to 5060.
    h.recv(&invite("z9hG4bKab23"), "192.0.2.1:40000");
    assert_eq!(h.statuses_to("192.0.2.1:5060"), vec![100]);
    // With rport: reply to the source port.
    h.recv(
        &invite("z9hG4bKab24").replace(";branch=z9hG4bKab24", ";branch=z9hG4bKab24;rport"),
        "192.0.2.1:40000",
    );
    assert_eq!(h.statuses_to("192.0.2.1:40000"), vec![100]);
}

#[test]
fn every_transaction_and_call_ends() {
    let mut h = Harness::new();
    for i in 0..20 {
        let branch = format!("z9hG4bKleak{i}");
        h.sent.clear();
        let fwd = forwarded_invite(&mut h, &branch);
        match i % 4 {
            0 => {
                h.recv(&reply(&fwd, 180, Some("tb")), B);
                h.recv(&reply(&fwd, 200, Some("tb")), B);
            }
            1 => h.recv(&reply(&fwd, 486, Some("tb")), B),
            2 => {
                h.recv(&reply(&fwd, 180, Some("tb")), B);
                h.recv(&cancel(&branch), A);
                h.recv(&reply(&fwd, 487, Some("tb")), B);
            }
            _ => {}
        }
    }
    assert!(h.proxy.transaction_count() > 0);
    h.advance(Duration::from_secs(200));
    assert_eq!(h.proxy.transaction_count(), 0, "{:?}", h.proxy.describe());
    assert_eq!(h.proxy.context_count(), 0, "{:?}", h.proxy.describe());
    assert!(h.proxy.poll_timeout().is_none(), "no timer left");
}

/// Answers the pending routing question: to B, with topology hiding.
fn forward_hidden_to_b(h: &mut Harness) {
    let (id, _, _) = h.routes.remove(0);
    let decision = RouteDecision::Forward {
        targets: vec![Target {
            uri: "sip:+4721345678@198.51.100.7:5070".parse().expect("uri"),
            transport: Transport::Udp,
            remote: addr(B),
            server_name: None,
        }],
        remove_headers: Vec::new(),
        add_headers: Vec::new(),
        hide_topology: true,
    };
    h.proxy.handle_route(h.now, id, decision);
    h.drain();
}

#[test]
fn topology_hiding_shows_each_side_only_the_node_and_dialogs_still_work() {
    let mut h = Harness::new();
    let invite = invite("z9hG4bKth1").replace(
        "Max-Forwards: 70\r\n",
        "Via: SIP/2.0/UDP 192.0.2.99:5060;branch=z9hG4bKinner\r\nMax-Forwards: 70\r\nRecord-Route: <sip:edge-a.example;lr>\r\n",
    );
    h.recv(&invite, A);
    h.statuses_to(A);
    forward_hidden_to_b(&mut h);
    let fwd = h.take_to(B).remove(0);
    assert_eq!(fwd.vias().expect("vias").len(), 1, "only our Via towards B");
    let rr: Vec<String> = fwd
        .record_routes()
        .expect("rr")
        .iter()
        .map(|r| r.uri.to_string())
        .collect();
    assert_eq!(
        rr,
        vec!["sip:203.0.113.10:5060;lr".to_owned()],
        "only our Record-Route"
    );
    let contact = fwd.contacts().expect("contact");
    assert_eq!(contact[0].uri.to_string(), "sip:th@203.0.113.10:5060");
    // Signalling only: media addresses in SDP are not topology (topos does
    // not touch them either).
    let text = String::from_utf8(fwd.as_bytes().to_vec()).expect("utf8");
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    assert!(
        !head.contains("192.0.2"),
        "nothing of A's side leaks to B:\n{head}"
    );
    assert_eq!(h.proxy.hidden_dialogs(), 1);

    // B answers through its own proxy.
    let ok = reply(&fwd, 200, Some("tb")).replace(
        "Content-Length: 0",
        "Record-Route: <sip:edge-b.example;lr>, <sip:203.0.113.10:5060;lr>\r\nContact: <sip:callee@198.51.100.7:5070>\r\nContent-Length: 0",
    );
    h.recv(&ok, B);
    let up = h.take_to(A);
    let ok_up = up
        .iter()
        .find(|m| m.status() == Some(200))
        .expect("200 upstream");
    let vias = ok_up.vias().expect("vias");
    assert_eq!(vias.len(), 2, "A's own Vias are back");
    assert_eq!(vias[0].branch(), Some("z9hG4bKth1"));
    let rr: Vec<String> = ok_up
        .record_routes()
        .expect("rr")
        .iter()
        .map(|r| r.uri.to_string())
        .collect();
    assert_eq!(
        rr,
        vec![
            "sip:203.0.113.10:5060;lr".to_owned(),
            "sip:edge-a.example;lr".to_owned()
        ],
        "B's proxy hidden, A's own Record-Route kept"
    );
    assert_eq!(
        ok_up.contacts().expect("contact")[0].uri.to_string(),
        "sip:th@203.0.113.10:5060"
    );
    let text = String::from_utf8(ok_up.as_bytes().to_vec()).expect("utf8");
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    assert!(
        !head.contains("198.51.100"),
        "nothing of B's side leaks to A:\n{head}"
    );

    // A hangs up: the BYE comes to the node's Contact and goes to B's.
    h.recv(
        "BYE sip:th@203.0.113.10:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKbyeA\r\n\
         Max-Forwards: 70\r\nRoute: <sip:203.0.113.10:5060;lr>\r\n\
         From: <sip:+15550100@a.example>;tag=fa\r\nTo: <sip:+4721345678@node.example>;tag=tb\r\n\
         Call-ID: call-z9hG4bKth1\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
        A,
    );
    let (id, bye, kind) = h.routes.remove(0);
    assert_eq!(
        kind,
        RouteKind::InDialog {
            next_hop: "sip:edge-b.example;lr".parse().expect("uri")
        }
    );
    assert_eq!(
        bye.request_uri().map(ToString::to_string).as_deref(),
        Some("sip:callee@198.51.100.7:5070")
    );
    h.proxy.handle_route(
        h.now,
        id,
        RouteDecision::forward(vec![Target {
            uri: "sip:callee@198.51.100.7:5070".parse().expect("uri"),
            transport: Transport::Udp,
            remote: addr(B),
            server_name: None,
        }]),
    );
    h.drain();
    let bye_b = h.take_to(B).remove(0);
    assert_eq!(
        bye_b.vias().expect("vias").len(),
        1,
        "A's Via hidden in the BYE"
    );
    h.recv(&reply(&bye_b, 200, None), B);
    let up = h.take_to(A);
    assert_eq!(up[0].status(), Some(200));
    assert_eq!(
        up[0].top_via().and_then(|v| v.branch()),
        Some("z9hG4bKbyeA")
    );
}

#[test]
fn topology_hiding_routes_the_callee_side_back_to_the_caller() {
    let mut h = Harness::new();
    let invite = invite("z9hG4bKth2").replace(
        "Max-Forwards: 70\r\n",
        "Max-Forwards: 70\r\nRecord-Route: <sip:edge-a.example;lr>\r\n",
    );
    h.recv(&invite, A);
    forward_hidden_to_b(&mut h);
    let fwd = h.take_to(B).remove(0);
    h.recv(
        &reply(&fwd, 200, Some("tb")).replace(
            "Content-Length: 0",
            "Contact: <sip:callee@198.51.100.7:5070>\r\nRecord-Route: <sip:203.0.113.10:5060;lr>\r\nContent-Length: 0",
        ),
        B,
    );
    // B hangs up towards the node's Contact.
    h.recv(
        "BYE sip:th@203.0.113.10:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 198.51.100.7:5070;branch=z9hG4bKbyeB\r\n\
         Max-Forwards: 70\r\nRoute: <sip:203.0.113.10:5060;lr>\r\n\
         From: <sip:+4721345678@node.example>;tag=tb\r\nTo: <sip:+15550100@a.example>;tag=fa\r\n\
         Call-ID: call-z9hG4bKth2\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n",
        B,
    );
    let (_, bye, kind) = h.routes.remove(0);
    assert_eq!(
        bye.request_uri().map(ToString::to_string).as_deref(),
        Some("sip:caller@192.0.2.1:5060"),
        "towards A's own Contact"
    );
    assert_eq!(
        kind,
        RouteKind::InDialog {
            next_hop: "sip:edge-a.example;lr".parse().expect("uri")
        }
    );
}

#[test]
fn many_timers_due_together_are_all_handled() {
    // Forty answered calls: their INVITE transactions linger for Timers L
    // and M, all due at the same instant, so one handle_timeout takes 80
    // timers, read ahead 16 at a time.
    let mut h = Harness::new();
    for i in 0..40 {
        let fwd = forwarded_invite(&mut h, &format!("z9hG4bKmany{i}"));
        h.recv(&reply(&fwd, 200, Some("tb")), B);
        assert_eq!(h.statuses_to(A), vec![200]);
    }
    assert_eq!(h.proxy.transaction_count(), 80);
    assert_eq!(h.proxy.timer_count(), 80);
    let due = h.proxy.poll_timeout().expect("a deadline");
    h.now = due;
    h.proxy.handle_timeout(due);
    h.drain();
    assert_eq!(h.proxy.transaction_count(), 0, "all 80 ended in one call");
    assert_eq!(h.proxy.timer_count(), 0);
    assert!(h.sent.is_empty(), "lingering transactions end silently");
}
