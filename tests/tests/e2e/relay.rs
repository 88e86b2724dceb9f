//! Calls across the node between independent peers: Kamailio as the edge
//! proxy of each member, with a scripted user agent behind each.
//!
//! ```text
//! caller ──UDP──► Kamailio A ──{UDP,TCP,TLS}──► node ──{UDP,TCP}──► Kamailio B ──UDP──► callee
//! ```

use std::time::Duration;

use peering::config::Config;
use peering::node::NodeHandle;
use peering_proto::msg::Method;
use peering_proto::proxy::Transport;
use peering_tests::kamailio::{EdgeProxy, Kamailio, KamailioTls};
use peering_tests::pki::TestCa;
use peering_tests::ua::{Answer, Call, Callee};
use peering_tests::{free_port, local};

const WAIT: Duration = Duration::from_secs(10);

struct Topology {
    node: NodeHandle,
    kam_a: Kamailio,
    kam_b: Kamailio,
    callee: Callee,
    _dir: tempfile::TempDir,
}

struct Options {
    inbound: Transport,
    outbound: Transport,
    answer: Answer,
    /// Targets tried before Kamailio B (dead ones, for failover).
    before: Vec<String>,
    t1_ms: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            inbound: Transport::Udp,
            outbound: Transport::Udp,
            answer: Answer::RingThenAnswer,
            before: Vec::new(),
            t1_ms: 500,
        }
    }
}

async fn topology(opts: Options) -> Topology {
    let dir = tempfile::tempdir().expect("tempdir");
    let callee = Callee::start(0, opts.answer).await;

    let kam_b = EdgeProxy {
        port: free_port(),
        tls: None,
        next_hop: format!("sip:{}", callee.addr),
    }
    .start();

    let ca = TestCa::new("federation test CA");
    let ca_file = ca.write_ca(dir.path(), "ca.crt");
    let node_leaf = ca.issue(dir.path(), "node", &["node.test", "127.0.0.1"]);
    let kam_leaf = ca.issue(dir.path(), "kamailio-a", &["member-a.test", "127.0.0.1"]);

    let mut targets = opts.before.clone();
    targets.push(format!(
        "sip:127.0.0.1:{};transport={}",
        kam_b.addr.port(),
        opts.outbound.param()
    ));
    let targets: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
    let toml = format!(
        r#"
[node]
grace_period_secs = 1
[sip]
domains = ["node.test"]
[[sip.listen]]
transport = "udp"
address = "127.0.0.1:0"
[[sip.listen]]
transport = "tcp"
address = "127.0.0.1:0"
[[sip.listen]]
transport = "tls"
address = "127.0.0.1:0"
[tls]
certificate = "{cert}"
private_key = "{key}"
ca = ["{ca}"]
[timers]
t1_ms = {t1}
[admin]
listen = "127.0.0.1:0"
[[route]]
prefix = "+"
targets = [{targets}]
"#,
        cert = node_leaf.cert.display(),
        key = node_leaf.key.display(),
        ca = ca_file.display(),
        t1 = opts.t1_ms,
        targets = targets.join(", ")
    );
    let mut config = Config::from_toml(&toml).expect("node config");
    config.node.data_dir = Some(dir.path().join("data"));
    let node = peering::node::start(config).await.expect("node starts");
    let node_addr = node
        .addr(opts.inbound)
        .expect("listener for inbound transport");

    let tls = (opts.inbound == Transport::Tls).then(|| {
        (
            free_port(),
            KamailioTls {
                leaf: kam_leaf.clone(),
                ca: ca_file.clone(),
            },
        )
    });
    let kam_a = EdgeProxy {
        port: free_port(),
        tls,
        next_hop: format!("sip:{node_addr};transport={}", opts.inbound.param()),
    }
    .start();
    Topology {
        node,
        kam_a,
        kam_b,
        callee,
        _dir: dir,
    }
}

impl Topology {
    fn dump(&self) -> String {
        format!(
            "--- kamailio A ---\n{}\n--- kamailio B ---\n{}\n--- callee ---\n{:?}\n--- node metrics ---\n{}",
            self.kam_a.log(),
            self.kam_b.log(),
            self.callee.log(),
            self.node.metrics.render()
        )
    }

    fn uri(&self) -> String {
        format!("sip:+4721345678@127.0.0.1:{}", self.kam_a.addr.port())
    }
}

/// INVITE, 100, 180, 200, ACK, BYE, 200 across the node; in-dialog requests
/// follow the record-route through the node.
async fn full_call(opts: Options) {
    let (inbound, outbound) = (opts.inbound, opts.outbound);
    let topo = topology(opts).await;
    let mut call = Call::invite(topo.kam_a.addr, &topo.uri()).await;
    let status = call.wait_final(WAIT).await;
    assert_eq!(
        status,
        Some(200),
        "statuses {:?}\n{}",
        call.statuses,
        topo.dump()
    );
    // Kamailio's workers may relay the 180 after the 200: allow for it.
    if !call.statuses.contains(&180) {
        call.wait_provisional(180, Duration::from_secs(2)).await;
    }
    assert!(
        call.statuses.contains(&180),
        "180 relayed: {:?}",
        call.statuses
    );

    // The node record-routed, on both of its interfaces when they differ.
    let invite = topo
        .callee
        .log()
        .first_invite
        .expect("callee saw the INVITE");
    let node_in = topo.node.addr(inbound).expect("in");
    let node_out = topo.node.addr(outbound).expect("out");
    assert!(
        invite.contains(&format!("{node_in}")),
        "node RR in:\n{invite}"
    );
    if inbound != outbound {
        assert!(
            invite.contains(&format!("{node_out}")),
            "node RR out:\n{invite}"
        );
        assert!(
            invite.contains(&format!("transport={}", inbound.param())) || inbound == Transport::Udp,
            "inbound RR carries its transport:\n{invite}"
        );
    }
    assert!(invite.contains("Max-Forwards: "), "{invite}");

    call.in_dialog("ACK", 1).await;
    // The ACK and the BYE are separate transactions on UDP: give the ACK its
    // own moment so the assertion below is about delivery, not ordering.
    let ack_seen = async {
        for _ in 0..100 {
            if topo.callee.log().requests.iter().any(|r| r == "ACK") {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    };
    assert!(ack_seen.await, "ACK reached callee\n{}", topo.dump());
    call.in_dialog("BYE", 2).await;
    assert!(
        call.wait_for(Method::Bye, 200, WAIT).await,
        "BYE answered\n{}",
        topo.dump()
    );
    let requests = topo.callee.log().requests;
    assert!(
        requests.contains(&"ACK".to_owned()),
        "ACK reached callee: {requests:?}"
    );
    assert!(
        requests.contains(&"BYE".to_owned()),
        "BYE reached callee: {requests:?}"
    );
    topo.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_udp_to_udp() {
    full_call(Options::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_tcp_to_udp() {
    full_call(Options {
        inbound: Transport::Tcp,
        ..Options::default()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_tls_to_tcp() {
    full_call(Options {
        inbound: Transport::Tls,
        outbound: Transport::Tcp,
        ..Options::default()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callee_hangs_up_through_the_node() {
    let topo = topology(Options::default()).await;
    let mut call = Call::invite(topo.kam_a.addr, &topo.uri()).await;
    assert_eq!(call.wait_final(WAIT).await, Some(200), "{}", topo.dump());
    call.in_dialog("ACK", 1).await;
    topo.callee.hang_up().await;
    let bye = call.answer_request(Method::Bye, WAIT).await;
    assert!(
        bye.is_some(),
        "caller got the callee's BYE\n{}",
        topo.dump()
    );
    topo.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_before_answer_ends_both_legs_with_487() {
    let topo = topology(Options {
        answer: Answer::RingForever,
        ..Options::default()
    })
    .await;
    let mut call = Call::invite(topo.kam_a.addr, &topo.uri()).await;
    assert!(
        call.wait_provisional(180, WAIT).await,
        "ringing\n{}",
        topo.dump()
    );
    call.cancel().await;
    let status = call.wait_final(WAIT).await;
    assert_eq!(
        status,
        Some(487),
        "statuses {:?}\n{}",
        call.statuses,
        topo.dump()
    );
    let requests = topo.callee.log().requests;
    assert!(
        requests.contains(&"CANCEL".to_owned()),
        "CANCEL reached callee: {requests:?}"
    );
    topo.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_callee_486_reaches_caller() {
    let topo = topology(Options {
        answer: Answer::RingThenReject(486),
        ..Options::default()
    })
    .await;
    let mut call = Call::invite(topo.kam_a.addr, &topo.uri()).await;
    assert_eq!(call.wait_final(WAIT).await, Some(486), "{}", topo.dump());
    topo.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_tcp_target_fails_over_to_the_next() {
    // Nothing listens on this port: the TCP connect is refused at once.
    let dead = free_port();
    let topo = topology(Options {
        before: vec![format!("sip:127.0.0.1:{dead};transport=tcp")],
        ..Options::default()
    })
    .await;
    let mut call = Call::invite(topo.kam_a.addr, &topo.uri()).await;
    assert_eq!(call.wait_final(WAIT).await, Some(200), "{}", topo.dump());
    call.in_dialog("ACK", 1).await;
    call.in_dialog("BYE", 2).await;
    assert!(
        call.wait_for(Method::Bye, 200, WAIT).await,
        "{}",
        topo.dump()
    );
    topo.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_udp_target_times_out_and_fails_over() {
    // A UDP socket that never answers: Timer B (64*T1) ends the branch with
    // 408 and the node moves on. T1 is shortened to keep the test short.
    let silent = tokio::net::UdpSocket::bind(local(0)).await.expect("bind");
    let silent_addr = silent.local_addr().expect("addr");
    let topo = topology(Options {
        before: vec![format!("sip:{silent_addr}")],
        t1_ms: 50,
        ..Options::default()
    })
    .await;
    let mut call = Call::invite(topo.kam_a.addr, &topo.uri()).await;
    assert_eq!(
        call.wait_final(Duration::from_secs(15)).await,
        Some(200),
        "{}",
        topo.dump()
    );
    let mut buf = [0u8; 4096];
    let (len, _) = silent
        .try_recv_from(&mut buf)
        .expect("the dead target got the INVITE");
    assert!(buf[..len].starts_with(b"INVITE "));
    topo.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_tcp_connection_is_reused() {
    let topo = topology(Options {
        outbound: Transport::Tcp,
        ..Options::default()
    })
    .await;
    for _ in 0..3 {
        let mut call = Call::invite(topo.kam_a.addr, &topo.uri()).await;
        assert_eq!(call.wait_final(WAIT).await, Some(200), "{}", topo.dump());
        call.in_dialog("ACK", 1).await;
        call.in_dialog("BYE", 2).await;
        assert!(
            call.wait_for(Method::Bye, 200, WAIT).await,
            "{}",
            topo.dump()
        );
    }
    let opened = topo
        .node
        .metrics
        .connections_opened
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(opened, 1, "three calls over one connection to Kamailio B");
    topo.node.shutdown().await;
}

/// IPv6 listeners (RFC 5118 references in Via and Record-Route).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_udp_and_tcp_listeners_answer() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (config, _data) = peering_tests::node_config(
        r#"
[node]
grace_period_secs = 0
[[sip.listen]]
transport = "udp"
address = "[::1]:0"
[[sip.listen]]
transport = "tcp"
address = "[::1]:0"
[admin]
listen = "127.0.0.1:0"
"#,
    );
    let node = peering::node::start(config).await.expect("node on ::1");
    let udp_addr = node.addr(Transport::Udp).expect("udp");
    let options = |me: std::net::SocketAddr| {
        format!(
            "OPTIONS sip:[::1]:{port} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKv6{p}\r\nMax-Forwards: 70\r\n\
             From: <sip:probe@[::1]>;tag=1\r\nTo: <sip:[::1]>\r\nCall-ID: v6-{p}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
            port = udp_addr.port(),
            p = me.port()
        )
    };
    let sock = tokio::net::UdpSocket::bind("[::1]:0")
        .await
        .expect("bind ::1");
    let me = sock.local_addr().expect("addr");
    sock.send_to(options(me).as_bytes(), udp_addr)
        .await
        .expect("send");
    let mut buf = [0u8; 4096];
    let (n, _) = tokio::time::timeout(WAIT, sock.recv_from(&mut buf))
        .await
        .expect("answer over IPv6 UDP")
        .expect("recv");
    assert!(
        buf[..n].starts_with(b"SIP/2.0 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );

    let tcp_addr = node.addr(Transport::Tcp).expect("tcp");
    let mut stream = tokio::net::TcpStream::connect(tcp_addr)
        .await
        .expect("connect ::1");
    let me = stream.local_addr().expect("addr");
    stream
        .write_all(options(me).replace("SIP/2.0/UDP", "SIP/2.0/TCP").as_bytes())
        .await
        .expect("write");
    let n = tokio::time::timeout(WAIT, stream.read(&mut buf))
        .await
        .expect("answer over IPv6 TCP")
        .expect("read");
    assert!(
        buf[..n].starts_with(b"SIP/2.0 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    node.shutdown().await;
}

/// RFC 3261 §18.1.1: a request too large for UDP goes to a UDP target over
/// TCP; when that connect is refused (the callee listens on UDP only), the
/// node retries over UDP and the call completes there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_invite_to_a_udp_only_callee_falls_back_to_udp() {
    let (node, node_addr, callee, _dir) = node_before_a_udp_only_callee().await;

    let uri = format!("sip:+4721345678@{node_addr}");
    let mut call = Call::invite(node_addr, &uri).await;
    let dump = |callee: &Callee| {
        format!(
            "--- callee ---\n{:?}\n--- node metrics ---\n{}",
            callee.log(),
            node.metrics.render()
        )
    };
    assert_eq!(
        call.wait_final(WAIT).await,
        Some(200),
        "statuses {:?}\n{}",
        call.statuses,
        dump(&callee)
    );
    let invite = callee.log().first_invite.expect("callee saw the INVITE");
    let top_via = invite
        .lines()
        .find(|l| l.starts_with("Via:"))
        .unwrap_or_default();
    assert!(
        top_via.starts_with("Via: SIP/2.0/UDP "),
        "the retry went over UDP with a UDP Via:\n{invite}"
    );
    assert!(
        !invite.contains("transport=tcp"),
        "Record-Route names the UDP leg only:\n{invite}"
    );
    call.in_dialog("ACK", 1).await;
    call.in_dialog("BYE", 2).await;
    assert!(
        call.wait_for(Method::Bye, 200, WAIT).await,
        "BYE answered\n{}",
        dump(&callee)
    );
    node.shutdown().await;
}

/// Calls that queue behind one failing connect all fail over with it: four
/// large INVITEs at once to a UDP-only callee, each switched to TCP by its
/// size (§18.1.1); the connection they share is refused, and every one of
/// them is retried over UDP at once instead of waiting for Timer B.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_invites_queued_behind_a_refused_connect_all_fall_back_to_udp() {
    let (node, node_addr, callee, _dir) = node_before_a_udp_only_callee().await;

    let mut calls = Vec::new();
    for n in 0..4 {
        let uri = format!("sip:+472134567{n}@{node_addr}");
        calls.push(Call::invite(node_addr, &uri).await);
    }
    // Well under Timer B (32 s): only an immediate fallback answers in time.
    for call in &mut calls {
        assert_eq!(
            call.wait_final(WAIT).await,
            Some(200),
            "statuses {:?}\n--- callee ---\n{:?}\n--- node metrics ---\n{}",
            call.statuses,
            callee.log(),
            node.metrics.render()
        );
    }
    for call in &mut calls {
        call.in_dialog("ACK", 1).await;
        call.in_dialog("BYE", 2).await;
        assert!(call.wait_for(Method::Bye, 200, WAIT).await, "BYE answered");
    }
    node.shutdown().await;
}

/// A node with `udp_switch_size = 300` that routes every number to a callee
/// listening on UDP only (answering 180 then 200), for the §18.1.1 tests.
async fn node_before_a_udp_only_callee()
-> (NodeHandle, std::net::SocketAddr, Callee, tempfile::TempDir) {
    let callee = Callee::start(0, Answer::RingThenAnswer).await;
    // A switch size below the tests' INVITEs, so that they move to TCP;
    // the target names no transport, as a NAPTR-less peer would be routed.
    let toml = format!(
        r#"
[node]
grace_period_secs = 1
[sip]
domains = ["node.test"]
udp_switch_size = 300
[[sip.listen]]
transport = "udp"
address = "127.0.0.1:0"
[[sip.listen]]
transport = "tcp"
address = "127.0.0.1:0"
[admin]
listen = "127.0.0.1:0"
[[route]]
prefix = "+"
targets = ["sip:{callee}"]
"#,
        callee = callee.addr
    );
    let (config, dir) = peering_tests::node_config(&toml);
    let node = peering::node::start(config).await.expect("node starts");
    let node_addr = node.addr(Transport::Udp).expect("udp listener");
    (node, node_addr, callee, dir)
}
