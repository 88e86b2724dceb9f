//! Test harness: starts real peers on loopback (Kamailio today; baresip,
//! secsipidx, Knot and PostgreSQL as the other areas need them) and provides
//! a small scripted SIP user agent for the end-to-end tests in `tests/e2e`.
//!
//! A tool that is missing makes the test fail with an install hint; nothing
//! is skipped silently.
#![warn(missing_docs)]

pub mod kamailio;
pub mod knot;
pub mod pki;
pub mod tools;
pub mod ua;

use std::net::{SocketAddr, TcpListener, UdpSocket};

/// A loopback port that is free for both UDP and TCP right now.
pub fn free_port() -> u16 {
    for _ in 0..100 {
        let Ok(tcp) = TcpListener::bind("127.0.0.1:0") else {
            continue;
        };
        let Ok(addr) = tcp.local_addr() else {
            continue;
        };
        if UdpSocket::bind(addr).is_ok() {
            return addr.port();
        }
    }
    panic!("no free loopback port found")
}

/// `127.0.0.1:port`.
pub fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Parses a node configuration for a test and points its data folder (the
/// embedded store) at a fresh temporary folder, returned with it: keep it
/// alive as long as the node runs.
pub fn node_config(toml: &str) -> (peering::config::Config, tempfile::TempDir) {
    let mut config = peering::config::Config::from_toml(toml).expect("valid test configuration");
    let dir = tempfile::tempdir().expect("tempdir");
    config.node.data_dir = Some(dir.path().join("data"));
    (config, dir)
}

/// Stops a process started in its own process group
/// (`CommandExt::process_group(0)`) and everything it forked: SIGTERM to
/// the group, up to 5 s to exit, then SIGKILL to the group. Killing only
/// the child would leave Kamailio's worker processes running.
pub fn stop_process_group(child: &mut std::process::Child) {
    let group = format!("-{}", child.id());
    let signal = |sig: &str| {
        let _ = std::process::Command::new("kill")
            .args([sig, "--", &group])
            .status();
    };
    signal("-TERM");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::time::Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // The workers may outlive the main process by a moment: the group goes.
    signal("-KILL");
    let _ = child.wait();
}
