//! Hostile and odd input against a running node: the RFC 4475 torture
//! messages and the PROTOS c07-sip suite, over UDP and TCP. The node must
//! answer as the RFC says, relay valid messages with their meaning intact,
//! never crash, and still serve a valid call afterwards.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use peering::config::Config;
use peering::node::NodeHandle;
use peering::router::{BoxFuture, RouteRequest, Router};
use peering_proto::msg::{HeaderName, Message, Method};
use peering_proto::proxy::{RouteDecision, RouteKind, Target, Transport};
use peering_tests::tools::require;
use peering_tests::ua::{Answer, Call, Callee, UdpUa};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn testdata() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../peering/proto/testdata")
}

/// Sends every request that reaches it to one capture address.
struct CatchAll(SocketAddr);

impl Router for CatchAll {
    fn route(&self, request: RouteRequest) -> BoxFuture<'_, RouteDecision> {
        let target = self.0;
        Box::pin(async move {
            let uri = match &request.kind {
                RouteKind::InDialog { .. } | RouteKind::Initial => request
                    .request
                    .request_uri()
                    .cloned()
                    .expect("requests have a Request-URI"),
            };
            RouteDecision::forward(vec![Target {
                uri,
                transport: Transport::Udp,
                remote: target,
                server_name: None,
            }])
        })
    }
}

async fn node_with_router(router: Arc<dyn Router>) -> NodeHandle {
    let config = Config::from_toml(
        r#"
[node]
grace_period_secs = 0
[sip]
domains = ["node.test"]
# The capture endpoint only speaks UDP: keep large requests on UDP.
udp_size_switch = false
[[sip.listen]]
transport = "udp"
address = "127.0.0.1:0"
[[sip.listen]]
transport = "tcp"
address = "127.0.0.1:0"
[timers]
t1_ms = 50
t4_ms = 500
[store]
url = "sqlite::memory:"
[admin]
listen = "127.0.0.1:0"
"#,
    )
    .expect("config");
    peering::node::start_with_router(config, router)
        .await
        .expect("node starts")
}

fn load(name: &str) -> Vec<u8> {
    std::fs::read(testdata().join("rfc4475").join(format!("{name}.sip")))
        .unwrap_or_else(|e| panic!("read {name}: {e}"))
}

/// The valid RFC 4475 requests are relayed with their meaning intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc4475_valid_requests_are_relayed_intact() {
    let sender = UdpUa::bind(0).await;
    for name in [
        "wsinv",
        "intmeth",
        "esc01",
        "escnull",
        "esc02",
        "lwsdisp",
        "longreq",
        "dblreq",
        "semiuri",
        "transports",
        "mpart01",
        "inv2543",
        "unksm2",
        "invut",
        "regaut01",
        "cparam01",
        "cparam02",
        "regescrt",
    ] {
        // A node per message: some of them share a branch and sent-by (e.g.
        // cparam01 and cparam02), which makes them one transaction.
        let capture = UdpUa::bind(0).await;
        let node = node_with_router(Arc::new(CatchAll(capture.addr))).await;
        let node_udp = node.addr(Transport::Udp).expect("udp");
        let raw = load(name);
        let original = Message::parse(Bytes::from(raw.clone())).expect("valid message parses");
        sender.send_bytes(node_udp, &raw).await;
        let relayed = loop {
            let (msg, _) = capture
                .recv(Duration::from_secs(5))
                .await
                .unwrap_or_else(|| panic!("{name} was not relayed\n{}", node.metrics.render()));
            if msg.is_request() && msg.call_id() == original.call_id() {
                break msg;
            }
        };
        assert_eq!(relayed.method(), original.method(), "{name}: method");
        assert_eq!(
            relayed.request_uri().map(ToString::to_string),
            original.request_uri().map(ToString::to_string),
            "{name}: Request-URI"
        );
        assert_eq!(relayed.cseq(), original.cseq(), "{name}: CSeq");
        assert_eq!(
            relayed.from().to_string(),
            original.from().to_string(),
            "{name}: From"
        );
        assert_eq!(
            relayed.to().to_string(),
            original.to().to_string(),
            "{name}: To"
        );
        assert_eq!(relayed.body(), original.body(), "{name}: body");
        // One Via more than received: ours on top.
        let (before, after) = (
            original.vias().expect("vias").len(),
            relayed.vias().expect("vias").len(),
        );
        assert_eq!(after, before + 1, "{name}: our Via added");
        // Unknown headers pass through untouched.
        for (header, value) in original.headers() {
            if matches!(header, HeaderName::Other(_)) {
                assert!(
                    relayed.headers().any(|(h, v)| h == header && v == value),
                    "{name}: header {header:?} kept"
                );
            }
        }
        if original.method() == Some(&Method::Invite) {
            // Answer the INVITE's client transaction so it ends.
            let resp = peering_tests::ua::response(&relayed, 480, "Gone", "x", capture.addr);
            capture.send(node_udp, &resp).await;
        }
        node.shutdown().await;
    }
}

/// Invalid and semantically wrong requests get the answer RFC 4475 gives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc4475_invalid_requests_get_the_rfc_answer() {
    let capture = UdpUa::bind(0).await;
    let node = node_with_router(Arc::new(CatchAll(capture.addr))).await;
    let node_udp = node.addr(Transport::Udp).expect("udp");
    let cases: &[(&str, u16)] = &[
        ("badinv01", 400),
        ("clerr", 400),
        ("ncl", 400),
        ("scalar02", 400),
        ("quotbal", 400),
        ("ltgtruri", 400),
        ("lwsruri", 400),
        ("lwsstart", 400),
        ("trws", 400),
        ("regbadct", 400),
        ("badaspec", 400),
        ("baddn", 400),
        ("badvers", 505),
        ("mismatch01", 400),
        ("insuf", 400),
        ("multi01", 400),
        ("mcl01", 400),
        ("unkscm", 416),
        ("novelsc", 416),
        // §16.3 item 3 lets a proxy answer OPTIONS with Max-Forwards 0 itself.
        ("zeromf", 200),
        ("bext01", 420),
    ];
    let node_tcp = node.addr(Transport::Tcp).expect("tcp");
    let mut wrong = Vec::new();
    for (name, expected) in cases {
        let raw = load(name);
        // Over UDP a response goes to the Via's sent-by port (RFC 3261
        // §18.2.2), which is not ours in these messages: ask over TCP, where
        // it comes back on the connection. clerr is about datagram framing,
        // and baddn ends without the empty line a stream needs to frame it.
        let got = if matches!(*name, "clerr" | "baddn") {
            let sender = UdpUa::bind(0).await;
            sender.send_bytes(node_udp, &raw).await;
            sender
                .recv_raw(Duration::from_secs(3))
                .await
                .and_then(|d| status_of(&d))
        } else {
            ask_tcp(node_tcp, &raw).await
        };
        if got != Some(*expected) {
            wrong.push(format!("{name}: expected {expected}, got {got:?}"));
        }
    }
    assert!(wrong.is_empty(), "wrong answers:\n{}", wrong.join("\n"));
    // Nothing invalid was forwarded.
    assert!(capture.recv(Duration::from_millis(300)).await.is_none());
    assert_drains(&node).await;
    node.shutdown().await;
}

/// Every transaction ends once its timers ran out: nothing leaks. Timer D
/// keeps a client INVITE transaction for at least 32 s on UDP whatever T1
/// is (RFC 3261 §17.1.1.2), so this can take that long.
async fn assert_drains(node: &NodeHandle) {
    use std::sync::atomic::Ordering;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(45);
    loop {
        let live = node.metrics.transactions.load(Ordering::Relaxed);
        let calls = node.metrics.contexts.load(Ordering::Relaxed);
        if live == 0 && calls == 0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{live} transactions and {calls} calls still live"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The status code of a raw response's status line.
fn status_of(datagram: &[u8]) -> Option<u16> {
    let rest = datagram.strip_prefix(b"SIP/2.0 ")?;
    std::str::from_utf8(rest.get(..3)?).ok()?.parse().ok()
}

/// Sends one message on a new TCP connection and returns the status of the
/// first final response (skipping 100 Trying).
async fn ask_tcp(node: SocketAddr, raw: &[u8]) -> Option<u16> {
    let mut stream = tokio::net::TcpStream::connect(node).await.ok()?;
    stream.write_all(raw).await.ok()?;
    // Read status lines only: the error responses echo the request's broken
    // headers, so they need not parse as messages themselves.
    let mut buf = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    loop {
        let text = String::from_utf8_lossy(&buf);
        let final_status = text
            .split("\r\n")
            .filter_map(|line| line.strip_prefix("SIP/2.0 "))
            .filter_map(|rest| rest.get(..3)?.parse::<u16>().ok())
            .find(|status| *status >= 200);
        if final_status.is_some() {
            return final_status;
        }
        let read = tokio::time::timeout_at(deadline, stream.read_buf(&mut buf)).await;
        match read {
            Ok(Ok(n)) if n > 0 => {}
            _ => return None,
        }
    }
}

/// Responses that are invalid or match nothing are dropped silently; the
/// broadcast Via of bcast.sip is never a destination.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc4475_bad_responses_are_dropped() {
    let capture = UdpUa::bind(0).await;
    let node = node_with_router(Arc::new(CatchAll(capture.addr))).await;
    let node_udp = node.addr(Transport::Udp).expect("udp");
    let sender = UdpUa::bind(0).await;
    for name in ["scalarlg", "bigcode", "bcast", "unreason", "noreason"] {
        sender.send_bytes(node_udp, &load(name)).await;
    }
    assert!(sender.recv(Duration::from_millis(500)).await.is_none());
    assert!(capture.recv(Duration::from_millis(100)).await.is_none());
    // The node still serves.
    let callee = Callee::start(0, Answer::RingThenAnswer).await;
    drop(callee);
    let mut options = Call::invite(node_udp, "sip:+1@node.test").await;
    let _ = options.wait_final(Duration::from_secs(5)).await;
    node.shutdown().await;
}

/// Renders the PROTOS cases for a target with the corpus's own script.
fn render_protos(target: SocketAddr, out: &std::path::Path) {
    let python = require("python3", "python3");
    let dir = testdata().join("protos");
    let status = std::process::Command::new(python)
        .arg(dir.join("render_protos.py"))
        .arg("--archive")
        .arg(dir.join("c07-sip-r2-cases.tar.xz"))
        .arg("--to")
        .arg(format!("protos@{target}"))
        .arg("--from-host")
        .arg("127.0.0.1")
        .arg("--out")
        .arg(out)
        .status()
        .expect("run render_protos.py");
    assert!(status.success(), "render_protos.py failed");
}

/// A valid INVITE to the node still gets an answer.
async fn still_answers(node_udp: SocketAddr) {
    let mut call = Call::invite(node_udp, "sip:+4721345678@node.test").await;
    let status = call.wait_final(Duration::from_secs(5)).await;
    assert!(status.is_some(), "the node stopped answering");
}

fn protos_cases(dir: &std::path::Path) -> Vec<(PathBuf, PathBuf)> {
    let mut invites: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("rendered dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().contains("invite"))
        .collect();
    invites.sort();
    invites
        .into_iter()
        .map(|inv| {
            let teardown = PathBuf::from(inv.to_string_lossy().replace("invite", "teardown"));
            (inv, teardown)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protos_c07_sip_over_udp_and_tcp() {
    let callee = Callee::start(0, Answer::RingThenReject(486)).await;
    let node = node_with_router(Arc::new(CatchAll(callee.addr))).await;
    let node_udp = node.addr(Transport::Udp).expect("udp");
    let node_tcp = node.addr(Transport::Tcp).expect("tcp");
    let dir = tempfile::tempdir().expect("tempdir");
    render_protos(node_udp, dir.path());
    let cases = protos_cases(dir.path());
    assert_eq!(cases.len(), 4527, "all PROTOS cases rendered");

    let sender = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    for (i, (invite, teardown)) in cases.iter().enumerate() {
        for file in [invite, teardown] {
            let Ok(bytes) = std::fs::read(file) else {
                continue;
            };
            // Datagrams above 65,507 bytes cannot be sent over UDP at all.
            let _ = sender
                .send_to(&bytes[..bytes.len().min(65_507)], node_udp)
                .await;
        }
        if i % 500 == 499 {
            still_answers(node_udp).await;
        }
    }
    still_answers(node_udp).await;

    for (i, (invite, teardown)) in cases.iter().enumerate() {
        let mut stream = tokio::net::TcpStream::connect(node_tcp)
            .await
            .expect("connect");
        for file in [invite, teardown] {
            if let Ok(bytes) = std::fs::read(file) {
                let _ = stream.write_all(&bytes).await;
            }
        }
        let _ = stream.shutdown().await;
        let mut sink = Vec::new();
        let _ =
            tokio::time::timeout(Duration::from_millis(200), stream.read_to_end(&mut sink)).await;
        if i % 500 == 499 {
            still_answers(node_udp).await;
        }
    }
    still_answers(node_udp).await;
    assert_drains(&node).await;
    node.shutdown().await;
}
