//! Federation policy: the registry model, agreements, rate limits, flood
//! detection, SPIT scoring and the declarative federation file.
//!
//! Everything here is pure: no I/O, no clock (time comes in as `now`), no
//! tokio. The node loads a [`Snapshot`] from `peering-store`, indexes it into
//! a [`Registry`] and calls [`evaluate`] for every new call; the stateful
//! guards ([`flood::FloodGuard`], [`ratelimit::Limiter`], [`spit::SpitGuard`])
//! are owned by the node and fed with each request. This crate does not
//! parse SIP, verify Identity headers or talk to a database.
//!
//! ```
//! use std::net::IpAddr;
//! use std::time::SystemTime;
//! use peering_policy::{evaluate, federation::FederationFile, CallAttempt, IdentityCheck, Registry};
//!
//! let file = FederationFile::parse(r#"
//! [[member]]
//! name = "a"
//! networks = ["127.0.0.2/32"]
//! ranges = [{ prefix = "+1555010" }]
//! [[member]]
//! name = "b"
//! sip_target = "sip:127.0.0.1:5090"
//! ranges = [{ prefix = "+4721345" }]
//! [[agreement]]
//! from = "a"
//! to = "b"
//! "#).unwrap();
//! let registry = Registry::new(file.to_snapshot().unwrap());
//! let call = CallAttempt {
//!     source: "127.0.0.2".parse::<IpAddr>().unwrap(),
//!     tls_names: vec![],
//!     caller: Some("15550100001".into()),
//!     callee: "4721345000".into(),
//!     identity: IdentityCheck::Absent,
//! };
//! let admitted = evaluate(&call, &registry, SystemTime::now()).unwrap();
//! assert_eq!(admitted.targets[0].member, "b");
//! ```
//!
//! # How a node uses it
//!
//! For every request, cheapest check first:
//!
//! ```text
//! bytes arrive from addr  -> flood::FloodGuard::check(addr, now)         banned: drop / 503
//! message parsed          -> flood::ScannerRules::matches(user_agent)    403, FloodGuard::ban(addr)
//! new INVITE              -> evaluate(&CallAttempt, &registry, wallclock)
//!                              Err(r): r.status() -> response, r.label() -> log + metric
//!                         -> ratelimit::Limiter::try_admit(from, addr, now)   503 + Retry-After
//!                         -> spit::SpitGuard::assess(&SpitInput, now)         607 / 480
//!                         -> relay to Admission::targets in order, with headers::action per header
//! call ends               -> Limiter::release(slot); write the call record with the SPIT score
//! ```
//!
//! In the background: reload the [`Registry`] when the store announces a
//! change (then `Limiter::set_limits`), and exchange rate usage with the
//! other nodes every 100-200 ms (`docs/rate-limits.md`).
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod config;
mod error;
pub mod federation;
pub mod flood;
pub mod headers;
pub mod ratelimit;
pub mod registry;
pub mod rules;
pub mod spit;

pub use error::{Error, Result};
pub use registry::{
    AddressBan, Agreement, Attestation, Change, HeaderRules, Limits, ListEntry, ListKind, Member,
    MemberInfo, NumberRange, Registry, Snapshot,
};
pub use rules::{
    Admission, CallAttempt, IdentityCheck, LimitScope, Rejection, Status, Target, Verdict, evaluate,
};

#[cfg(test)]
mod tests;
