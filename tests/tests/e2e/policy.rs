//! Federation policy through running nodes with real SIP traffic: who may
//! call whom, block lists, scanners, floods, live registry changes, a
//! federation-wide CPS limit over two nodes sharing one PostgreSQL, and a
//! PostgreSQL outage.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use peering::node::NodeHandle;
use peering_proto::msg::Method;
use peering_proto::proxy::Transport;
use peering_store::Store;
use peering_tests::node_config;
use peering_tests::ua::{Answer, Call, Callee, UdpUa};

const WAIT: Duration = Duration::from_secs(10);
const A: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// Members a (127.0.0.2, +1555010, cps limit), b and c; a may call b only;
/// +15550100099 is blocked federation-wide with 603.
fn federation(b: SocketAddr, c: SocketAddr, cps: u32, a_to_c: bool) -> String {
    let mut text = format!(
        r#"
[[member]]
name = "a"
networks = ["127.0.0.2/32"]
ranges = [{{ prefix = "+1555010", originate = true, terminate = true }}]
limits = {{ cps = {cps} }}

[[member]]
name = "b"
sip_target = "sip:{b}"
ranges = [{{ prefix = "+4721345", originate = true, terminate = true }}]

[[member]]
name = "c"
sip_target = "sip:{c}"
ranges = [{{ prefix = "+4799", originate = true, terminate = true }}]

[[agreement]]
from = "a"
to = "b"

[[list]]
kind = "block"
number = "+15550100099"
status = 603
reason = "known spammer"
"#
    );
    if a_to_c {
        text.push_str("\n[[agreement]]\nfrom = \"a\"\nto = \"c\"\n");
    }
    text
}

async fn apply(store: &dyn Store, text: &str) {
    let desired = peering_store::parse_federation(text).expect("federation file");
    peering_store::apply_federation(store, &desired, false)
        .await
        .expect("apply federation");
}

fn policy_config(store_url: &str, flood_threshold: u32) -> String {
    format!(
        r#"
[node]
grace_period_secs = 0
[[sip.listen]]
transport = "udp"
address = "127.0.0.1:0"
[store]
url = "{store_url}"
[policy.flood]
interval_ms = 2000
threshold = {flood_threshold}
ban_secs = 60
trusted = ["127.0.0.1/32"]
[policy.spit]
enabled = false
[policy.limits]
sync_interval_ms = 100
[admin]
listen = "127.0.0.1:0"
"#
    )
}

/// A node with `[policy]` (flood threshold `flood_threshold`) on a fresh
/// SQLite registry holding `federation`: the node, the store (to change
/// or read the registry), and the folders to keep while it runs.
async fn policy_node(
    federation: &str,
    flood_threshold: u32,
) -> (NodeHandle, Arc<dyn Store>, [tempfile::TempDir; 2]) {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite:{}", dir.path().join("registry.db").display());
    let store = peering_store::open(&url).await.expect("store");
    store.migrate().await.expect("migrate");
    apply(store.as_ref(), federation).await;
    let (config, data) = node_config(&policy_config(&url, flood_threshold));
    let node = peering::node::start(config).await.expect("node starts");
    (node, store, [dir, data])
}

async fn call(node: &NodeHandle, from: Ipv4Addr, caller: &str, number: &str) -> Option<u16> {
    let node_udp = node.addr(Transport::Udp).expect("udp");
    let mut call =
        Call::invite_from(from, caller, node_udp, &format!("sip:{number}@127.0.0.1")).await;
    let status = call.wait_final(WAIT).await;
    if status == Some(200) {
        call.in_dialog("ACK", 1).await;
        call.in_dialog("BYE", 2).await;
    }
    status
}

async fn options(ua: &UdpUa, node: SocketAddr, user_agent: &str, n: u32) -> Option<u16> {
    let me = ua.addr;
    let text = format!(
        "OPTIONS sip:{node} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKopt{n};rport\r\nMax-Forwards: 70\r\n\
         From: <sip:probe@{me}>;tag={n}\r\nTo: <sip:{node}>\r\nCall-ID: opt-{n}-{me}\r\nCSeq: 1 OPTIONS\r\n\
         User-Agent: {user_agent}\r\nContent-Length: 0\r\n\r\n"
    );
    ua.send(node, &text).await;
    let call_id = format!("opt-{n}-{me}");
    let deadline = tokio::time::Instant::now() + Duration::from_millis(300);
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let (msg, _) = ua.recv(left).await?;
        if msg.call_id() == call_id {
            return msg.status();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agreements_lists_scanners_floods_and_live_changes() {
    let b = Callee::start(0, Answer::RingThenAnswer).await;
    let c = Callee::start(0, Answer::RingThenAnswer).await;
    let (node, store, _dirs) = policy_node(&federation(b.addr, c.addr, 50, false), 50).await;
    let node_udp = node.addr(Transport::Udp).expect("udp");

    // A -> B is agreed; A -> C is not; nobody else may send.
    assert_eq!(
        call(&node, A, "+15550100001", "+4721345678").await,
        Some(200)
    );
    assert_eq!(b.log().invite_uris.len(), 1, "B got the call");
    assert_eq!(
        call(&node, A, "+15550100001", "+4799000001").await,
        Some(403)
    );
    assert!(c.log().invite_uris.is_empty(), "C got nothing");
    let stranger = Ipv4Addr::new(127, 0, 0, 3);
    assert_eq!(
        call(&node, stranger, "+15550100001", "+4721345678").await,
        Some(403)
    );
    // A number nobody owns.
    assert_eq!(
        call(&node, A, "+15550100001", "+4755000000").await,
        Some(404)
    );
    // A caller number A does not own.
    assert_eq!(
        call(&node, A, "+19990000000", "+4721345678").await,
        Some(403)
    );
    // A block-listed caller gets the configured code.
    assert_eq!(
        call(&node, A, "+15550100099", "+4721345678").await,
        Some(603)
    );

    // A scanner is refused and its address banned.
    let scanner = UdpUa::bind_ip(Ipv4Addr::new(127, 0, 0, 5), 0).await;
    assert_eq!(
        options(&scanner, node_udp, "friendly-scanner", 1).await,
        Some(403)
    );
    assert_eq!(
        options(&scanner, node_udp, "Linphone/5.0", 2).await,
        None,
        "banned now"
    );

    // A flood from one address is banned while A keeps calling.
    let flooder = UdpUa::bind_ip(Ipv4Addr::new(127, 0, 0, 4), 0).await;
    let mut answered_late = 0;
    for n in 0..160 {
        let got = if n < 150 {
            flooder
                .send(node_udp, &format!("OPTIONS sip:{node_udp} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKf{n}\r\nMax-Forwards: 70\r\nFrom: <sip:f@{me}>;tag={n}\r\nTo: <sip:{node_udp}>\r\nCall-ID: flood-{n}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n", me = flooder.addr))
                .await;
            None
        } else {
            options(&flooder, node_udp, "flood", n).await
        };
        if got.is_some() {
            answered_late += 1;
        }
    }
    assert_eq!(answered_late, 0, "the flooding address is banned");
    assert_eq!(
        call(&node, A, "+15550100001", "+4721345001").await,
        Some(200)
    );

    // A registry change takes effect on the running node, no restart.
    apply(store.as_ref(), &federation(b.addr, c.addr, 50, true)).await;
    let mut status = None;
    for _ in 0..30 {
        status = call(&node, A, "+15550100001", "+4799000001").await;
        if status == Some(200) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(status, Some(200), "A -> C allowed after the change");
    assert_eq!(c.log().invite_uris.len(), 1);
    let metrics = node.metrics.render();
    assert!(
        metrics.contains("peering_policy_rejections_total"),
        "{metrics}"
    );
    node.shutdown().await;
}

/// Flood detection counts requests, not the answers a terminating peer
/// sends back to the node's requests: B answers 20 calls with 60 responses
/// inside one sampling interval, six times the threshold of 10 requests,
/// and every call is answered. Counting responses banned B during its fourth call, and every
/// answer it sent after that was dropped (found at 17,000 cps in the
/// benchmark, where the UAS's responses crossed 100,000 per 2 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_terminating_peer_is_not_banned_for_its_responses() {
    let b = Callee::start_on(Ipv4Addr::new(127, 0, 0, 6), 0, Answer::RingThenAnswer).await;
    let federation = format!(
        r#"
[[member]]
name = "a"
networks = ["127.0.1.0/24"]
ranges = [{{ prefix = "+1555010", originate = true, terminate = false }}]

[[member]]
name = "b"
sip_target = "sip:{b}"
ranges = [{{ prefix = "+4721345", originate = false, terminate = true }}]

[[agreement]]
from = "a"
to = "b"
"#,
        b = b.addr
    );
    let (node, _store, _dirs) = policy_node(&federation, 10).await;
    // Ten callers, two calls each: six requests per caller (INVITE, ACK,
    // BYE), under the threshold.
    for n in 0..20u8 {
        let caller = Ipv4Addr::new(127, 0, 1, 1 + n / 2);
        assert_eq!(
            call(&node, caller, "+15550100001", &format!("+47213450{n:02}")).await,
            Some(200),
            "call {n}"
        );
    }
    assert_eq!(b.log().invite_uris.len(), 20);
    assert_eq!(node.metrics.labelled("flood_dropped", "127.0.0.6"), 0);

    // Responses from an address the node never sent a request to are no
    // answers: they count like requests, and a flood of them is banned.
    let node_udp = node.addr(Transport::Udp).expect("udp");
    let forger = UdpUa::bind_ip(Ipv4Addr::new(127, 0, 0, 7), 0).await;
    for n in 0..30 {
        forger
            .send(node_udp, &format!("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP {node_udp};branch=z9hG4bKforged{n}\r\nFrom: <sip:a@{me}>;tag={n}\r\nTo: <sip:b@{me}>;tag=x\r\nCall-ID: forged-{n}\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n", me = forger.addr))
            .await;
    }
    assert_eq!(
        options(&forger, node_udp, "Linphone/5.0", 1).await,
        None,
        "the forger is banned"
    );
    assert!(node.metrics.labelled("flood_dropped", "127.0.0.7") > 0);
    node.shutdown().await;
}

/// The call record writer groups records (up to 200 ms), so records of
/// calls that ended just before a graceful stop are still waiting when it
/// comes: the stop writes them before the node exits. Checked right after
/// the last call: one answered and hung up (the BYE's 200 came back), one
/// refused by policy (no agreement A -> C).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_writes_the_waiting_call_records() {
    let b = Callee::start(0, Answer::RingThenAnswer).await;
    let c = Callee::start(0, Answer::RingThenAnswer).await;
    let (node, store, _dirs) = policy_node(&federation(b.addr, c.addr, 50, false), 1000).await;
    let node_udp = node.addr(Transport::Udp).expect("udp");

    let mut answered =
        Call::invite_from(A, "+15550100001", node_udp, "sip:+4721345001@127.0.0.1").await;
    assert_eq!(answered.wait_final(WAIT).await, Some(200));
    answered.in_dialog("ACK", 1).await;
    answered.in_dialog("BYE", 2).await;
    assert!(
        answered.wait_for(Method::Bye, 200, WAIT).await,
        "the BYE is answered"
    );
    assert_eq!(
        call(&node, A, "+15550100001", "+4799000001").await,
        Some(403),
        "no agreement A -> C"
    );
    node.shutdown().await;

    let records = store.call_records(0, 100).await.expect("call records");
    let mut seen: Vec<(String, u16, String)> = records
        .into_iter()
        .map(|(_, r)| (r.callee, r.status, r.reason))
        .collect();
    seen.sort();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen[0].0.ends_with("4721345001"), "{seen:?}");
    assert_eq!((seen[0].1, seen[0].2.as_str()), (200, "hangup"), "{seen:?}");
    assert!(seen[1].0.ends_with("4799000001"), "{seen:?}");
    assert_eq!(seen[1].1, 403, "{seen:?}");
}

/// Sends INVITEs from member A at `rate` per second for `secs`, alternating
/// between `nodes`; returns how many were sent.
async fn blast(nodes: &[SocketAddr], rate: u32, secs: u64) -> usize {
    let ua = UdpUa::bind_ip(A, 0).await;
    let me = ua.addr;
    let total = (u64::from(rate) * secs) as usize;
    let gap = Duration::from_secs(1) / rate;
    let start = tokio::time::Instant::now();
    for n in 0..total {
        let node = nodes[n % nodes.len()];
        let text = format!(
            "INVITE sip:+4721345{n:04}@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKb{n};rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:+15550100001@{me}>;tag=b{n}\r\nTo: <sip:+4721345{n:04}@127.0.0.1>\r\n\
             Call-ID: blast-{n}@test\r\nCSeq: 1 INVITE\r\nContact: <sip:a@{me}>\r\nContent-Length: 0\r\n\r\n"
        );
        ua.send(node, &text).await;
        tokio::time::sleep_until(start + gap * (n as u32 + 1)).await;
    }
    total
}

/// Counts INVITEs at a UDP address and answers each 486 (the calls end at
/// once; only admission is measured).
async fn counting_callee() -> (SocketAddr, Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    let ua = UdpUa::bind(0).await;
    let addr = ua.addr;
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    let task = tokio::spawn(async move {
        let mut calls = std::collections::HashSet::new();
        loop {
            let Some((msg, from)) = ua.recv(Duration::from_secs(3600)).await else {
                continue;
            };
            if msg.method() == Some(&Method::Invite) {
                if calls.insert(msg.call_id().to_owned()) {
                    seen.fetch_add(1, Ordering::Relaxed);
                }
                let resp = peering_tests::ua::response(&msg, 486, "Busy Here", "x", addr);
                ua.send(from, &resp).await;
            }
        }
    });
    (addr, count, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cps_limit_holds_across_two_nodes_and_survives_a_postgres_outage() {
    let pg = peering_store::testing::test_postgres().expect("PostgreSQL for the test");
    let url = pg
        .fresh_database("policy_two_nodes")
        .await
        .expect("fresh database");
    let store = peering_store::open(&url).await.expect("store");
    store.migrate().await.expect("migrate");
    let (callee, admitted, task) = counting_callee().await;
    let c = Callee::start(0, Answer::RingThenAnswer).await;
    apply(store.as_ref(), &federation(callee, c.addr, 20, false)).await;

    let (mut config1, _d1) = node_config(&policy_config(&url, 100_000));
    let (mut config2, _d2) = node_config(&policy_config(&url, 100_000));
    config1.node.name = "node-1".to_owned();
    config2.node.name = "node-2".to_owned();
    let node1 = peering::node::start(config1).await.expect("node 1");
    let node2 = peering::node::start(config2).await.expect("node 2");
    let nodes = [
        node1.addr(Transport::Udp).expect("udp"),
        node2.addr(Transport::Udp).expect("udp"),
    ];

    // 50 calls per second offered for 10 s against a limit of 20 per second
    // for the whole federation.
    let sent = blast(&nodes, 50, 10).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = admitted.load(Ordering::Relaxed);
    assert_eq!(sent, 500);
    assert!(
        (180..=220).contains(&got),
        "A's 20 cps limit over two nodes for 10 s admitted {got} calls (200 +- 10 %)"
    );

    // A registry change made directly in the database reaches both nodes.
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    client
        .execute(
            "INSERT INTO agreements (from_member, to_member) VALUES ('a', 'c')",
            &[],
        )
        .await
        .expect("insert agreement");
    for node in [&node1, &node2] {
        let mut status = None;
        for _ in 0..30 {
            status = call(node, A, "+15550100001", "+4799000001").await;
            if status == Some(200) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(status, Some(200), "agreement inserted with SQL took effect");
    }

    // PostgreSQL goes away: calls keep flowing on the cached registry.
    pg.stop().expect("stop PostgreSQL");
    tokio::time::sleep(Duration::from_secs(1)).await;
    for node in [&node1, &node2] {
        assert_eq!(
            call(node, A, "+15550100001", "+4799000002").await,
            Some(200)
        );
        assert_eq!(
            call(node, A, "+15550100001", "+4755000000").await,
            Some(404)
        );
    }
    // It comes back: the nodes recover and see new changes again.
    pg.start().expect("start PostgreSQL");
    let (client, conn) = loop {
        match tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
            Ok(pair) => break pair,
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    tokio::spawn(conn);
    client
        .execute(
            "DELETE FROM agreements WHERE from_member = 'a' AND to_member = 'c'",
            &[],
        )
        .await
        .expect("delete agreement");
    for node in [&node1, &node2] {
        let mut status = None;
        for _ in 0..50 {
            status = call(node, A, "+15550100001", "+4799000003").await;
            if status == Some(403) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(status, Some(403), "the node follows the database again");
    }
    node1.shutdown().await;
    node2.shutdown().await;
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topology_hiding_and_header_stripping_per_agreement() {
    let b = Callee::start(0, Answer::RingThenAnswer).await;
    let c = Callee::start(0, Answer::RingThenAnswer).await;
    let text = federation(b.addr, c.addr, 50, false).replace(
        "[[agreement]]\nfrom = \"a\"\nto = \"b\"\n",
        "[[agreement]]\nfrom = \"a\"\nto = \"b\"\ntopology_hiding = true\nstrip_headers = [\"X-Internal-Billing\"]\n",
    );
    let (node, _store, _dirs) = policy_node(&text, 1000).await;
    let node_udp = node.addr(Transport::Udp).expect("udp");

    let mut call =
        Call::invite_from(A, "+15550100001", node_udp, "sip:+4721345678@127.0.0.1").await;
    assert_eq!(call.wait_final(WAIT).await, Some(200));
    let invite = b.log().first_invite.expect("B got the INVITE");
    let head = invite
        .split("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .to_owned();
    // Topology is Via, Record-Route and Contact (From and To are the
    // parties' own business, as with Kamailio's topos).
    let topology: Vec<&str> = head
        .lines()
        .filter(|l| {
            l.starts_with("Via:") || l.starts_with("Record-Route:") || l.starts_with("Contact:")
        })
        .collect();
    assert!(
        topology.iter().all(|l| !l.contains("127.0.0.2")),
        "A's address hidden from B:\n{head}"
    );
    assert_eq!(
        head.matches("\nVia:").count(),
        1,
        "one Via, the node's:\n{head}"
    );
    assert!(
        head.contains("Contact: <sip:th@"),
        "the node's Contact:\n{head}"
    );
    // The caller's view: the node's Contact and Record-Route only.
    let ok = call.final_response.as_ref().expect("200");
    let ok_text = String::from_utf8_lossy(ok.as_bytes()).into_owned();
    assert!(
        ok_text
            .lines()
            .filter(|l| l.starts_with("Record-Route:") || l.starts_with("Contact:"))
            .all(|l| !l.contains(&b.addr.to_string())),
        "B's address hidden from A:\n{ok_text}"
    );
    // The dialog still works both ways through the node.
    call.in_dialog("ACK", 1).await;
    call.in_dialog("BYE", 2).await;
    assert!(call.wait_for(Method::Bye, 200, WAIT).await);
    let requests = b.log().requests;
    assert!(requests.contains(&"ACK".to_owned()), "{requests:?}");
    assert!(requests.contains(&"BYE".to_owned()), "{requests:?}");

    // A header the agreement strips does not reach B.
    let node_addr = node_udp;
    let ua = UdpUa::bind_ip(A, 0).await;
    let me = ua.addr;
    ua.send(
        node_addr,
        &format!(
            "INVITE sip:+4721345679@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKstrip;rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:+15550100001@{me}>;tag=s1\r\nTo: <sip:+4721345679@127.0.0.1>\r\n\
             Call-ID: strip@test\r\nCSeq: 1 INVITE\r\nContact: <sip:a@{me}>\r\nX-Internal-Billing: secret\r\n\
             Content-Length: 0\r\n\r\n"
        ),
    )
    .await;
    let mut seen = Vec::new();
    let _ = ua
        .expect_response(Method::Invite, |s| s >= 200, WAIT, &mut seen)
        .await;
    let log = b.log();
    let stripped = log.invite_uris.iter().any(|u| u.contains("4721345679"));
    assert!(stripped, "the second call reached B: {:?}", log.invite_uris);
    let last = log.last_invite.unwrap_or_default();
    assert!(
        !last.contains("X-Internal-Billing"),
        "stripped by the agreement:\n{last}"
    );
    node.shutdown().await;
}
