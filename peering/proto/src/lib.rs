//! Sans-IO SIP: message parsing and serialisation, transactions and the stateful proxy core, with no I/O and no clock.
//!
//! This crate does no networking and reads no clock: it takes bytes (and,
//! for timers, `now` as an argument) and returns parsed messages, bytes to
//! send and decisions. The tokio edge lives in the `peering` crate.
//!
//! - [`msg`]: the zero-copy SIP message layer (parse, typed views, edit, serialise, stream framing).
#![warn(missing_docs)]

pub mod error;
pub mod msg;
pub mod proxy;
pub mod txn;
