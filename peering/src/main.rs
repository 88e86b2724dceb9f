//! The `peering` binary: parses the command line and runs the node.

fn main() {
    println!("peering {}", env!("CARGO_PKG_VERSION"));
}
