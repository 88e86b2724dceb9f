//! ENUM routing through a running node against an independent
//! authoritative server (Knot): every case ends as RFC 6116/3402/3403/3263
//! say, and the caller gets the right answer.

use std::time::Duration;

use peering::node::NodeHandle;
use peering_proto::proxy::Transport;
use peering_tests::free_port;
use peering_tests::knot::Knot;
use peering_tests::ua::{Answer, Call, Callee};

const WAIT: Duration = Duration::from_secs(10);

/// The ENUM zone, as an operator would write it for Knot.
fn zone(callee: u16, dead: u16) -> String {
    let sip = |user: &str| format!("sip:{user}@127.0.0.1:{callee}");
    format!(
        r#"$ORIGIN e164.arpa.
$TTL 60
@ SOA ns.e164.arpa. hostmaster.e164.arpa. 1 3600 600 86400 60
@ NS ns.e164.arpa.
ns A 127.0.0.1
; +47 21 34 56 01: one terminal NAPTR
1.0.6.5.4.3.1.2.7.4 NAPTR 10 10 "u" "E2U+sip" "!^.*$!{one}!" .
; +47 21 34 56 02: order/preference: the preferred target is dead, the next answers
2.0.6.5.4.3.1.2.7.4 NAPTR 10 10 "u" "E2U+sip" "!^.*$!sip:dead@127.0.0.1:{dead};transport=tcp!" .
2.0.6.5.4.3.1.2.7.4 NAPTR 10 20 "u" "E2U+sip" "!^.*$!{two}!" .
2.0.6.5.4.3.1.2.7.4 NAPTR 20 10 "u" "E2U+sip" "!^.*$!sip:never@127.0.0.1:{dead}!" .
; +47 21 34 56 03: back-references and the i flag
3.0.6.5.4.3.1.2.7.4 NAPTR 10 10 "u" "E2U+sip" "!^\\+(47)(.*)$!sip:\\2-\\1@127.0.0.1:{callee}!i" .
; +47 21 34 56 04: a non-terminal NAPTR to another name
4.0.6.5.4.3.1.2.7.4 NAPTR 10 10 "" "" "" chain.e164.arpa.
chain NAPTR 10 10 "u" "E2U+sip" "!^.*$!{four}!" .
; +47 21 34 56 05: only e-mail, no SIP
5.0.6.5.4.3.1.2.7.4 NAPTR 10 10 "u" "E2U+email:mailto" "!^.*$!mailto:info@example.test!" .
; +47 21 34 56 06: ported away; its routing number is +47 99 99 99 99
6.0.6.5.4.3.1.2.7.4 NAPTR 10 10 "u" "E2U+sip" "!^.*$!sip:stale@127.0.0.1:{dead}!" .
9.9.9.9.9.9.9.9.7.4 NAPTR 10 10 "u" "E2U+sip" "!^.*$!{ported}!" .
; +47 21 34 56 07: several services in one field, unknown flag skipped
7.0.6.5.4.3.1.2.7.4 NAPTR 5 10 "z" "E2U+sip" "!^.*$!sip:skip@127.0.0.1:{dead}!" .
7.0.6.5.4.3.1.2.7.4 NAPTR 10 10 "u" "E2U+voice:sip+video:sip" "!^.*$!{seven}!" .
"#,
        one = sip("one"),
        two = sip("two"),
        four = sip("four"),
        ported = sip("ported"),
        seven = sip("seven"),
    )
}

async fn node(dns: std::net::SocketAddr) -> (NodeHandle, tempfile::TempDir) {
    let (config, data) = peering_tests::node_config(&format!(
        r#"
[node]
grace_period_secs = 0
[[sip.listen]]
transport = "udp"
address = "127.0.0.1:0"
[enum]
server = "{dns}"
suffixes = ["e164.arpa"]
timeout_ms = 500
lookup_timeout_ms = 2000
[admin]
listen = "127.0.0.1:0"
"#
    ));
    (
        peering::node::start(config).await.expect("node starts"),
        data,
    )
}

/// Places a call to `uri` and returns the final status and the user part
/// the callee saw in its Request-URI (if it saw the call).
async fn call(node: &NodeHandle, callee: &Callee, uri: &str) -> (Option<u16>, Option<String>) {
    let before = callee.log().invite_uris.len();
    let mut call = Call::invite(node.addr(Transport::Udp).expect("udp"), uri).await;
    let status = call.wait_final(WAIT).await;
    let seen = callee.log().invite_uris.get(before).cloned();
    let user = seen.and_then(|u| {
        u.strip_prefix("sip:")
            .and_then(|rest| rest.split('@').next())
            .map(str::to_owned)
    });
    if status == Some(200) {
        call.in_dialog("ACK", 1).await;
    }
    (status, user)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enum_routes_as_the_rfcs_say() {
    let callee = Callee::start(0, Answer::RingThenAnswer).await;
    let dead = free_port();
    let knot = Knot::start(&[("e164.arpa", zone(callee.addr.port(), dead))], None);
    let (node, _data) = node(knot.addr).await;
    let cases: &[(&str, Option<u16>, Option<&str>)] = &[
        (
            "sip:+4721345601@node.test;user=phone",
            Some(200),
            Some("one"),
        ),
        ("tel:+47-21-34-56-01", Some(200), Some("one")),
        ("sip:+4721345602@node.test", Some(200), Some("two")),
        ("sip:+4721345603@node.test", Some(200), Some("21345603-47")),
        ("sip:+4721345604@node.test", Some(200), Some("four")),
        ("sip:+4721345605@node.test", Some(404), None),
        (
            "sip:+4721345606;rn=+4799999999;npdi@node.test;user=phone",
            Some(200),
            Some("ported"),
        ),
        ("sip:+4721345607@node.test", Some(200), Some("seven")),
        // Nobody owns it: NXDOMAIN under every suffix.
        ("sip:+4721345699@node.test", Some(604), None),
        // Not E.164 at all.
        ("sip:alice@node.test", Some(404), None),
    ];
    let mut wrong = Vec::new();
    for (uri, status, user) in cases {
        let got = call(&node, &callee, uri).await;
        if got.0 != *status || got.1.as_deref() != *user {
            wrong.push(format!("{uri}: expected {status:?}/{user:?}, got {got:?}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "{}\n--- knot ---\n{}\n--- metrics ---\n{}",
        wrong.join("\n"),
        knot.log(),
        node.metrics.render()
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_timeout_gives_503() {
    // A DNS "server" that never answers.
    let silent = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let (node, _data) = node(silent.local_addr().expect("addr")).await;
    let callee = Callee::start(0, Answer::RingThenAnswer).await;
    let (status, user) = call(&node, &callee, "sip:+4721345601@node.test").await;
    assert_eq!(status, Some(503));
    assert_eq!(user, None);
    node.shutdown().await;
}
