//! The interconnect node: the tokio edge that drives the sans-IO SIP core
//! (`peering-proto`) over UDP, TCP and TLS, composes ENUM, identity and policy
//! at the routing seam, and exposes the CLI, configuration and admin API.
#![warn(missing_docs)]
