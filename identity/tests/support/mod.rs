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

/// Stops a process started in its own process group
/// (`CommandExt::process_group(0)`) and everything it forked: SIGTERM to
/// the group, up to 5 s to exit, then SIGKILL to the group. Killing only
/// the child would leave Kamailio's worker processes running.
#[allow(dead_code)]
pub fn stop_process_group(child: &mut std::process::Child) {
    let group = format!("-{}", child.id());
    let signal = |sig: &str| {
        let _ = Command::new("kill").args([sig, "--", &group]).status();
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
