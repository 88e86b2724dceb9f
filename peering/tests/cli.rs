//! The `peering` binary as an operator runs it: no configuration at all,
//! the shipped examples, `check-config`, and graceful shutdown on SIGTERM.
//!
//! These tests use the fixed ports the examples name (5060, 5090, 8060), so
//! they run one after another inside a single test.

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_peering")
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

struct Node(Child);

impl Node {
    fn start(args: &[&str], dir: &Path) -> Self {
        let child = Command::new(binary())
            .args(args)
            .current_dir(dir)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start peering");
        Self(child)
    }

    fn terminate(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.0.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = self.0.try_wait() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the node did not stop after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn socket() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    s
}

fn request(method: &str, uri: &str, from: &UdpSocket, branch: &str) -> String {
    let me = from.local_addr().expect("addr");
    format!(
        "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK{branch};rport\r\nMax-Forwards: 70\r\n\
         From: <sip:+15550100@{me}>;tag=t{branch}\r\nTo: <{uri}>\r\nCall-ID: {branch}@test\r\nCSeq: 1 {method}\r\n\
         Contact: <sip:caller@{me}>\r\nContent-Length: 0\r\n\r\n"
    )
}

/// Sends `text` to 127.0.0.1:5060 until a response with a status >= 200
/// comes back (the node may still be starting), or 10 s pass.
fn ask(sock: &UdpSocket, text: &str) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let _ = sock.send_to(text.as_bytes(), "127.0.0.1:5060");
        let mut buf = [0u8; 65_535];
        let until = Instant::now() + Duration::from_secs(2);
        while Instant::now() < until {
            if let Ok((n, _)) = sock.recv_from(&mut buf) {
                let reply = String::from_utf8_lossy(&buf[..n]).into_owned();
                let status: u16 = reply.get(8..11).and_then(|s| s.parse().ok()).unwrap_or(0);
                if status >= 200 {
                    return Some(reply);
                }
            } else {
                break;
            }
        }
    }
    None
}

fn http_get(addr: &str, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .ok()?;
    let mut out = String::new();
    stream.read_to_string(&mut out).ok()?;
    Some(out)
}

fn no_configuration_serves_options_and_metrics(dir: &Path) {
    let node = Node::start(&["node"], dir);
    let sock = socket();
    let reply = ask(
        &sock,
        &request("OPTIONS", "sip:127.0.0.1:5060", &sock, "opt1"),
    )
    .expect("OPTIONS answered");
    assert!(reply.starts_with("SIP/2.0 200 OK"), "{reply}");
    assert!(reply.contains("Allow: "), "{reply}");
    // Nothing is routed without a route: no open relay.
    let reply = ask(
        &sock,
        &request("INVITE", "sip:+4721345678@127.0.0.1", &sock, "inv1"),
    )
    .expect("INVITE answered");
    assert!(reply.starts_with("SIP/2.0 404"), "{reply}");
    let metrics = http_get("127.0.0.1:8060", "/metrics").expect("admin API on 8060");
    assert!(
        metrics.contains("peering_sip_messages_received_total"),
        "{metrics}"
    );
    assert!(http_get("127.0.0.1:8060", "/live").is_some_and(|r| r.contains("200 OK")));
    let status = node.terminate();
    assert!(status.success(), "clean exit after SIGTERM: {status}");
}

fn relay_example_relays_a_call(dir: &Path) {
    let config = repo().join("examples/relay.toml");
    let node = Node::start(&["node", "--config", &config.display().to_string()], dir);
    // The callee of the example: a user agent on 127.0.0.1:5090.
    let callee = UdpSocket::bind("127.0.0.1:5090").expect("bind 5090");
    callee
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let answering = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut buf = [0u8; 65_535];
        while Instant::now() < deadline {
            let Ok((n, from)) = callee.recv_from(&mut buf) else {
                continue;
            };
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if !text.starts_with("INVITE ") {
                continue;
            }
            let mut head = String::from("SIP/2.0 200 OK\r\n");
            for line in text.split("\r\n").skip(1) {
                let lower = line.to_ascii_lowercase();
                if lower.starts_with("via:")
                    || lower.starts_with("from:")
                    || lower.starts_with("call-id:")
                    || lower.starts_with("cseq:")
                    || lower.starts_with("record-route:")
                {
                    head.push_str(line);
                    head.push_str("\r\n");
                } else if lower.starts_with("to:") {
                    head.push_str(line);
                    head.push_str(";tag=callee\r\n");
                }
            }
            head.push_str("Contact: <sip:callee@127.0.0.1:5090>\r\nContent-Length: 0\r\n\r\n");
            let _ = callee.send_to(head.as_bytes(), from);
            return Some(text);
        }
        None
    });
    let sock = socket();
    let reply = ask(
        &sock,
        &request("INVITE", "sip:+4721345678@127.0.0.1:5060", &sock, "inv2"),
    )
    .expect("INVITE answered");
    assert!(reply.starts_with("SIP/2.0 200 OK"), "{reply}");
    let invite = answering
        .join()
        .expect("callee thread")
        .expect("the callee got the INVITE");
    assert!(
        invite.starts_with("INVITE sip:+4721345678@127.0.0.1:5090 SIP/2.0"),
        "{invite}"
    );
    assert!(
        invite.contains("Record-Route: <sip:127.0.0.1:5060;lr>"),
        "{invite}"
    );
    let status = node.terminate();
    assert!(status.success(), "{status}");
}

fn check_config_exit_codes(dir: &Path) {
    for example in ["relay.toml", "enum.toml"] {
        let out = Command::new(binary())
            .args(["check-config"])
            .arg(repo().join("examples").join(example))
            .output()
            .expect("run check-config");
        assert!(out.status.success(), "{example}: {out:?}");
    }
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[sip]\nlisten_on = 1\n").expect("write");
    let out = Command::new(binary())
        .arg("check-config")
        .arg(&bad)
        .output()
        .expect("run check-config");
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("listen_on"));
    let out = Command::new(binary())
        .arg("--version")
        .output()
        .expect("run --version");
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
}

fn peering(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(binary())
        .args(args)
        .current_dir(dir)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run peering")
}

fn migrate_and_provision_the_enum_zone(dir: &Path) {
    let config = dir.join("zone.toml");
    std::fs::write(
        &config,
        "[node]\ndata_dir = \"zone-data\"\n[enum_zone]\norigin = \"e164.example.\"\n",
    )
    .expect("write config");
    let config = config.display().to_string();
    let out = peering(dir, &["migrate", "--config", &config]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("schema"),
        "{out:?}"
    );
    assert!(
        dir.join("zone-data/registry.db").is_file(),
        "store created in data_dir"
    );
    let out = peering(
        dir,
        &[
            "enum",
            "--config",
            &config,
            "add",
            "--number",
            "+47 21 34 56 78",
            "--member",
            "member-b",
            "--uri",
            "sip:+4721345678@gw.member-b.example",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let out = peering(
        dir,
        &[
            "enum",
            "--config",
            &config,
            "add",
            "--number",
            "+4722",
            "--range",
            "--member",
            "member-b",
            "--uri",
            "sip:range@gw.member-b.example",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let bad = peering(
        dir,
        &[
            "enum", "--config", &config, "add", "--number", "+47abc", "--member", "x", "--uri",
            "sip:x@y",
        ],
    );
    assert!(!bad.status.success(), "a non-number is refused");
    let list = peering(dir, &["enum", "--config", &config, "list"]);
    let list = String::from_utf8_lossy(&list.stdout).into_owned();
    assert!(
        list.contains("+4721345678") && list.contains("member-b"),
        "{list}"
    );
    let export = peering(dir, &["enum", "--config", &config, "export"]);
    let zone = String::from_utf8_lossy(&export.stdout).into_owned();
    assert!(zone.contains("e164.example."), "{zone}");
    assert!(zone.contains("NAPTR"), "{zone}");
    assert!(
        zone.contains("!^.*$!sip:+4721345678@gw.member-b.example!"),
        "{zone}"
    );
    let id = list
        .lines()
        .find(|l| l.contains("+4721345678"))
        .and_then(|l| l.split('\t').next())
        .expect("id column")
        .to_owned();
    let out = peering(dir, &["enum", "--config", &config, "remove", &id]);
    assert!(out.status.success(), "{out:?}");
    let list = peering(dir, &["enum", "--config", &config, "list"]);
    assert!(!String::from_utf8_lossy(&list.stdout).contains("+4721345678"));
}

/// `peering federation apply` with the shipped examples, then `peering node
/// --config examples/policy.toml` serving that federation on 5060.
fn policy_examples_serve_the_federation(dir: &Path) {
    // Copies, so that the example's relative data_dir lands in the temp dir.
    for name in ["policy.toml", "federation.toml"] {
        std::fs::copy(repo().join("examples").join(name), dir.join(name)).expect("copy example");
    }
    let config = dir.join("policy.toml").display().to_string();
    let file = dir.join("federation.toml").display().to_string();
    let dry = peering(
        dir,
        &[
            "federation",
            "--config",
            &config,
            "apply",
            "--dry-run",
            &file,
        ],
    );
    assert!(dry.status.success(), "{dry:?}");
    let text = String::from_utf8_lossy(&dry.stdout).into_owned();
    assert!(text.contains("dry run"), "{text}");
    // The form the documentation gives: options after the subcommand.
    let out = peering(dir, &["federation", "apply", "--config", &config, &file]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("applied"),
        "{out:?}"
    );
    let again = peering(dir, &["federation", "--config", &config, "apply", &file]);
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("already matches"),
        "{again:?}"
    );
    let show = peering(dir, &["federation", "--config", &config, "show"]);
    assert!(
        String::from_utf8_lossy(&show.stdout).contains('a'),
        "{show:?}"
    );

    let node = Node::start(&["node", "--config", &config], dir);
    let callee = UdpSocket::bind("127.0.0.1:5090").expect("bind 5090");
    callee
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let answering = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut buf = [0u8; 65_535];
        while Instant::now() < deadline {
            let Ok((n, from)) = callee.recv_from(&mut buf) else {
                continue;
            };
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if !text.starts_with("INVITE ") {
                continue;
            }
            let mut head = String::from("SIP/2.0 486 Busy Here\r\n");
            for line in text.split("\r\n").skip(1) {
                let lower = line.to_ascii_lowercase();
                if ["via:", "from:", "call-id:", "cseq:"]
                    .iter()
                    .any(|p| lower.starts_with(p))
                {
                    head.push_str(line);
                    head.push_str("\r\n");
                } else if lower.starts_with("to:") {
                    head.push_str(line);
                    head.push_str(";tag=callee\r\n");
                }
            }
            head.push_str("Content-Length: 0\r\n\r\n");
            let _ = callee.send_to(head.as_bytes(), from);
            return true;
        }
        false
    });
    // Member A sends from 127.0.0.2 with a number it owns.
    let a = UdpSocket::bind("127.0.0.2:0").expect("bind 127.0.0.2");
    a.set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    let invite = request("INVITE", "sip:+4721345678@127.0.0.1:5060", &a, "pol1")
        .replace("+15550100@", "+15550100001@");
    let reply = ask(&a, &invite).expect("answered");
    assert!(reply.starts_with("SIP/2.0 486"), "relayed to B: {reply}");
    assert!(
        answering.join().expect("callee"),
        "B at 127.0.0.1:5090 got the call"
    );
    // Anyone else is refused.
    let other = socket();
    let reply = ask(
        &other,
        &request("INVITE", "sip:+4721345678@127.0.0.1:5060", &other, "pol2")
            .replace("+15550100@", "+15550100001@"),
    )
    .expect("answered");
    assert!(reply.starts_with("SIP/2.0 403"), "{reply}");
    let status = node.terminate();
    assert!(status.success(), "{status}");
}

#[test]
fn the_binary_as_an_operator_runs_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    check_config_exit_codes(dir.path());
    migrate_and_provision_the_enum_zone(dir.path());
    no_configuration_serves_options_and_metrics(dir.path());
    relay_example_relays_a_call(dir.path());
    policy_examples_serve_the_federation(dir.path());
}
