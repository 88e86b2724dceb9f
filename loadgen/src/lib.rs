//! `peering-loadgen`: the SIP load generator used to measure the node (and
//! Kamailio, side by side) — the roles SIPp plays, written for our needs.
//!
//! * [`uac::UacCore`] places calls (INVITE → 1xx → 200 → ACK → hold → BYE →
//!   200, or CANCEL) with UDP retransmissions (Timer A/E) so that loss shows.
//! * [`uas::UasCore`] answers, rings, rejects or never answers by a mix.
//! * [`stats`] keeps attempted/succeeded/failed-by-reason counters, setup
//!   latency and a per-second timeline, summarised as JSON.
//! * [`run`] drives the cores on UDP, TCP or TLS sockets, one
//!   `current_thread` runtime per worker thread, sources spread over
//!   127.0.0.0/8; UDP datagrams are read and sent several per system call
//!   (`udp`).
//!
//! The cores are sans-IO: time comes in as an argument and the messages to
//! send come out as [`Out`] values.

#![warn(missing_docs)]

use std::net::SocketAddr;

use bytes::Bytes;

pub mod error;
pub mod identity;
pub mod numbers;
pub mod run;
pub mod sip;
pub mod stats;
mod timers;
pub mod tls;
pub mod uac;
pub mod uas;
mod udp;

pub use error::Error;

/// A message to send: on flow `flow` (a UDP socket or a connection, as
/// registered with the core), to `dest` (used by UDP only).
#[derive(Debug, Clone)]
pub struct Out {
    /// Index of the flow.
    pub flow: usize,
    /// Destination address (UDP).
    pub dest: SocketAddr,
    /// The message.
    pub data: Bytes,
}

#[cfg(test)]
mod tests;
