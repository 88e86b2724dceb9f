//! ENUM and RFC 3263: E.164 numbers, NAPTR processing, SIP server location,
//! DNS caching, the ENUM zone and its authoritative server.
#![warn(missing_docs)]

pub mod cache;
mod dns;
pub mod e164;
mod error;
pub mod naptr;
pub mod push;
pub mod resolver;
pub mod rfc3263;
pub mod server;
pub mod zone;

pub use error::{Error, NumberProblem, Result, Side, UriProblem, ZoneProblem};
