//! The RFC 3261 §16 stateful proxy core, sans-IO.
//!
//! [`Proxy`] takes parsed messages with the [`Flow`] they arrived on, the
//! routing seam's answers and the time, and returns bytes to send
//! ([`Transmit`]), questions for the routing seam and notices
//! ([`Event`]), and the next deadline. It owns the server and client
//! transactions (`crate::txn`) and the proxy context that links them
//! (§16.6 forwarding, §16.7 response processing, §16.10 CANCEL).
//!
//! ```text
//!            handle_message(now, msg, flow)      handle_route(now, id, decision)
//!                      │                                    ▲
//!  peer A ──► server txn ──► validate (16.3) ──► routes (16.4) ──► Event::Route ──► router
//!                 ▲                                                     │
//!                 │ best response (16.7)                               ▼
//!                 └──────────── client txn per target ◄── forward (16.6), serial failover
//! ```
//!
//! Polling order after every `handle_*` call: drain [`Proxy::poll_transmit`],
//! then [`Proxy::poll_event`], then re-arm one timer at
//! [`Proxy::poll_timeout`] and call [`Proxy::handle_timeout`] when it fires.
//!
//! What it does not do: parse bytes (the edge calls `Message::parse` or the
//! stream decoder), open sockets, resolve names, or decide where a call may
//! go — those belong to the edge and the routing seam.

mod core;
mod hiding;
pub mod rules;
mod shard;
#[cfg(test)]
mod tests;
mod types;

pub use core::Proxy;
pub use types::{
    ConnId, Event, Flow, LocalInterface, ProxyConfig, Rejection, RouteDecision, RouteId, RouteKind,
    Target, Transmit, TransmitToken, Transport,
};
