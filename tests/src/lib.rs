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
