//! Finding the external programs the tests use, with install hints.

use std::path::PathBuf;

/// The path of `program`, or a panic that names the Debian package to
/// install. Tests must not skip silently when a peer is missing.
pub fn require(program: &str, package: &str) -> PathBuf {
    let dirs = std::env::var_os("PATH").unwrap_or_default();
    let extra = ["/usr/sbin", "/sbin", "/usr/local/sbin"];
    for dir in std::env::split_paths(&dirs).chain(extra.iter().map(PathBuf::from)) {
        let candidate = dir.join(program);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "`{program}` is not installed; install it with `apt-get install {package}` (see .ci/run)"
    )
}
