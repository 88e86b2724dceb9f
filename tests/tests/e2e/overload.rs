//! Past its capacity the node refuses new calls with 503 instead of letting
//! every call time out: a flood of INVITEs, far faster than a debug build
//! can relay, makes the kernel's UDP receive queue stand, and the node says
//! so. Once the flood stops it takes calls again.
//!
//! ```text
//! flooder ──UDP INVITEs──► node ──UDP──► a socket that never answers
//! ```

use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use peering_proto::msg::{HeaderName, Message};
use peering_proto::proxy::Transport;
use peering_tests::node_config;
use peering_tests::ua::Call;

/// How long the flood lasts at most.
const FLOOD: Duration = Duration::from_secs(3);

fn invite(n: u64, me: std::net::SocketAddr) -> String {
    format!(
        "INVITE sip:+4721000001@node.test SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKflood{n};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:+15550100001@{me}>;tag=f{n}\r\nTo: <sip:+4721000001@node.test>\r\n\
         Call-ID: flood-{n}@test\r\nCSeq: 1 INVITE\r\nContact: <sip:caller@{me}>\r\nContent-Length: 0\r\n\r\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_gets_503_and_the_node_recovers() {
    // Forwarded INVITEs go here and are never answered.
    let sink = UdpSocket::bind("127.0.0.1:0").expect("bind sink");
    let sink_addr = sink.local_addr().expect("sink addr");
    let toml = format!(
        r#"
[node]
grace_period_secs = 1
[sip]
domains = ["node.test"]
overload_backlog = 0
overload_queue_delay_ms = 5
[[sip.listen]]
transport = "udp"
address = "127.0.0.1:0"
[[route]]
prefix = "+"
targets = ["sip:{sink_addr}"]
"#
    );
    let (config, _dir) = node_config(&toml);
    let node = peering::node::start(config).await.expect("node starts");
    let node_addr = node.addr(Transport::Udp).expect("udp listener");

    // The flooder: its own thread, blocking sends, as fast as the kernel
    // takes them, until a 503 has come back (or FLOOD is over). A reader
    // thread counts the answers.
    let flooder = UdpSocket::bind("127.0.0.1:0").expect("bind flooder");
    let me = flooder.local_addr().expect("flooder addr");
    let reader = flooder.try_clone().expect("clone flooder");
    reader
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("read timeout");
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let retry_after_ok = Arc::new(AtomicBool::new(false));
    let reading = {
        let (stop, refused, retry_after_ok) =
            (stop.clone(), refused.clone(), retry_after_ok.clone());
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65_535];
            let mut quiet_since: Option<Instant> = None;
            loop {
                match reader.recv(&mut buf) {
                    Ok(len) => {
                        quiet_since = None;
                        let Ok(msg) = Message::parse(bytes::Bytes::copy_from_slice(&buf[..len]))
                        else {
                            continue;
                        };
                        if msg.status() == Some(503) {
                            refused.fetch_add(1, Ordering::Relaxed);
                            if msg.header(&HeaderName::RetryAfter) == Some("1") {
                                retry_after_ok.store(true, Ordering::Relaxed);
                            }
                            stop.store(true, Ordering::Relaxed);
                        }
                    }
                    Err(_) => {
                        // Done once the flood is over and answers stopped.
                        if stop.load(Ordering::Relaxed) {
                            let since = *quiet_since.get_or_insert_with(Instant::now);
                            if since.elapsed() > Duration::from_millis(500) {
                                return;
                            }
                        }
                    }
                }
            }
        })
    };
    let flooding = {
        let (stop, sent) = (stop.clone(), sent.clone());
        std::thread::spawn(move || {
            let started = Instant::now();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) && started.elapsed() < FLOOD {
                if flooder.send_to(invite(n, me).as_bytes(), node_addr).is_ok() {
                    n += 1;
                }
            }
            stop.store(true, Ordering::Relaxed);
            sent.store(n, Ordering::Relaxed);
        })
    };
    tokio::task::spawn_blocking(move || {
        flooding.join().expect("flooder");
        reading.join().expect("reader");
    })
    .await
    .expect("threads");

    let refused = refused.load(Ordering::Relaxed);
    let metrics = &node.metrics;
    assert!(
        refused > 0,
        "no 503 for {} INVITEs sent in {FLOOD:?}; metrics:\n{}",
        sent.load(Ordering::Relaxed),
        metrics.render()
    );
    assert!(
        retry_after_ok.load(Ordering::Relaxed),
        "the 503s carry Retry-After: 1"
    );
    assert!(metrics.overload_rejections.load(Ordering::Relaxed) > 0);
    let rendered = metrics.render();
    assert!(rendered.contains("peering_udp_queue_delay_seconds"));
    assert!(rendered.contains("peering_udp_receive_drops_total"));

    // The flood is over: the queue drains and new calls go through again.
    let deadline = Instant::now() + Duration::from_secs(20);
    while metrics.overloaded.load(Ordering::Relaxed) != 0 {
        assert!(
            Instant::now() < deadline,
            "still overloaded 20 s after the flood; metrics:\n{}",
            metrics.render()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut call = Call::invite(node_addr, "sip:+4721000001@node.test").await;
    assert!(
        call.wait_provisional(100, Duration::from_secs(5)).await,
        "a call after the flood is taken (100 Trying), not refused: {:?}",
        call.statuses
    );
    assert!(!call.statuses.contains(&503), "{:?}", call.statuses);
}
