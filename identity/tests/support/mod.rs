//! Shared helpers of the integration tests.
#![allow(dead_code)]

pub mod pki;

use std::path::PathBuf;
use std::process::Command;

/// The path of an external tool, or a failing test with the install hint.
pub fn tool(name: &str, package: &str) -> PathBuf {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .output()
        .expect("sh runs");
    let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(
        out.status.success() && !path.is_empty(),
        "`{name}` is required by this test: install it with `apt-get install {package}`"
    );
    PathBuf::from(path)
}

/// Runs a command, asserting success, and returns its stdout.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("command starts");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a command and returns (success, stdout + stderr).
pub fn try_run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().expect("command starts");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// Seconds since the UNIX epoch.
pub fn now() -> u64 {
    peering_identity::unix_seconds(std::time::SystemTime::now())
}
