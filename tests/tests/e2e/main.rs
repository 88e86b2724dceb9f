//! End-to-end tests: one binary, one module per area, real peers started by
//! the harness in `peering-tests`.

mod enum_routing;
mod enum_zone;
mod identity;
mod overload;
mod policy;
mod relay;
mod torture;
