//! Knot DNS (Debian's `knot`) as an independent authoritative server for
//! ENUM zones, started on a loopback port with zone files the test writes.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::tools::require;

/// A running knotd; killed on drop.
pub struct Knot {
    child: Child,
    /// Where it answers (UDP and TCP).
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Knot {
    /// Starts knotd serving `zones` (origin, master-file text). With
    /// `tsig = Some((name, base64 secret))` the zones accept RFC 2136
    /// updates signed with that hmac-sha256 key.
    pub fn start(zones: &[(&str, String)], tsig: Option<(&str, &str)>) -> Self {
        let knotd = require("knotd", "knot");
        let dir = tempfile::tempdir().expect("tempdir");
        let port = crate::free_port();
        let mut conf = format!(
            "server:\n    rundir: \"{d}\"\n    listen: 127.0.0.1@{port}\n    udp-workers: 1\n    tcp-workers: 1\n    background-workers: 1\n\
             database:\n    storage: \"{d}/db\"\n\
             log:\n  - target: stderr\n    any: warning\n",
            d = dir.path().display()
        );
        if let Some((name, secret)) = tsig {
            conf.push_str(&format!(
                "key:\n  - id: {name}\n    algorithm: hmac-sha256\n    secret: {secret}\n\
                 acl:\n  - id: update\n    key: {name}\n    action: update\n"
            ));
        }
        conf.push_str(&format!(
            "template:\n  - id: default\n    storage: \"{}\"\n    file: \"%s.zone\"\n    zonefile-sync: -1\nzone:\n",
            dir.path().display()
        ));
        for (origin, text) in zones {
            let origin = origin.trim_end_matches('.');
            std::fs::write(dir.path().join(format!("{origin}.zone")), text).expect("zone file");
            conf.push_str(&format!("  - domain: {origin}.\n"));
            if tsig.is_some() {
                conf.push_str("    acl: update\n");
            }
        }
        std::fs::create_dir_all(dir.path().join("db")).expect("db dir");
        let conf_path = dir.path().join("knot.conf");
        std::fs::write(&conf_path, conf).expect("knot.conf");
        let log = std::fs::File::create(dir.path().join("knot.log")).expect("log");
        let child = Command::new(knotd)
            .arg("-c")
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start knotd");
        let knot = Self {
            child,
            addr: crate::local(port),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        for (origin, _) in zones {
            loop {
                if dig(knot.addr, origin, "SOA").0 == "NOERROR" {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "knotd did not serve {origin}:\n{}",
                    knot.log()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        knot
    }

    /// What knotd logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("knot.log")).unwrap_or_default()
    }

    /// Its working folder.
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_owned()
    }
}

impl Drop for Knot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Asks `server` with `dig` (bind9-dnsutils): the status (NOERROR,
/// NXDOMAIN, ...) and the answer records as sorted `name ttl class type data`
/// lines with the TTL removed.
pub fn dig(server: SocketAddr, name: &str, rtype: &str) -> (String, Vec<String>) {
    let dig = require("dig", "bind9-dnsutils");
    let out = Command::new(dig)
        .arg(format!("@{}", server.ip()))
        .arg("-p")
        .arg(server.port().to_string())
        .args([
            "+norecurse",
            "+time=2",
            "+tries=1",
            "+nocmd",
            "+nostats",
            "+noquestion",
        ])
        .arg(name)
        .arg(rtype)
        .output()
        .expect("run dig");
    let text = String::from_utf8_lossy(&out.stdout);
    let status = text
        .split("status: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or("NO ANSWER")
        .to_owned();
    let mut answers: Vec<String> = text
        .split(";; ANSWER SECTION:")
        .nth(1)
        .map(|section| {
            section
                .lines()
                .skip(1)
                .take_while(|l| !l.trim().is_empty())
                .map(|l| {
                    let fields: Vec<&str> = l.split_whitespace().collect();
                    let mut kept: Vec<&str> = Vec::new();
                    for (i, f) in fields.iter().enumerate() {
                        if i != 1 {
                            kept.push(f);
                        }
                    }
                    kept.join(" ")
                })
                .collect()
        })
        .unwrap_or_default();
    answers.sort();
    (status, answers)
}
