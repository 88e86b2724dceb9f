//! The interconnect node: the tokio edge that drives the sans-IO SIP core
//! (`peering-proto`) over UDP, TCP and TLS, composes routing (the static
//! table now; ENUM, identity and policy at the same seam) and exposes the
//! CLI, configuration and admin API.
//!
//! It does not parse SIP or run transaction state machines itself: that is
//! `peering-proto`, which has no I/O and no clock. Integration tests start a
//! node in-process with [`node::start`]:
//!
//! ```no_run
//! # async fn example() -> anyhow::Result<()> {
//! let config = peering::config::Config::from_toml(r#"
//!     [[sip.listen]]
//!     transport = "udp"
//!     address = "127.0.0.1:0"
//!     [[route]]
//!     prefix = "+"
//!     targets = ["sip:127.0.0.1:5090"]
//! "#)?;
//! let node = peering::node::start(config).await?;
//! println!("listening on {:?}", node.sip);
//! node.shutdown().await;
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

pub mod admin;
pub mod cli;
pub mod commands;
pub mod config;
pub mod enum_routing;
pub mod env;
pub mod identity;
pub mod metrics;
pub mod node;
pub mod overload;
pub mod policy_layer;
pub mod router;
pub mod tls;
pub mod transport;
pub mod zone_service;
