//! ENUM and RFC 3263: E.164 numbers, NAPTR processing, SIP server location,
//! DNS caching, the ENUM zone and its authoritative server.
//!
//! What it does:
//!
//! ```text
//!  Request-URI ─► e164 ─► CalledNumber (+rn/npdi) ─► ENUM domain per suffix
//!       resolver: NAPTR ─► naptr::NaptrWalk (order, preference, flags, regexp, chains)
//!              ─► SIP URIs ─► rfc3263::plan ─► NAPTR ─► SRV (RFC 2782) ─► A/AAAA
//!              ─► Vec<ResolvedTarget> (uri, transport, address, priority), in failover order
//!  zone: EnumZone (numbers, ranges, owners) ─► records / master file
//!        ─► server::ZoneServer (hickory-server, follows a ZoneSource)
//!        ─► push::UpdateClient (RFC 2136 + TSIG to an external primary)
//! ```
//!
//! The protocol logic ([`e164`], [`naptr`], [`rfc3263`], [`cache`],
//! [`zone`], [`push::diff`]) is pure: no sockets, time passed in. The tokio
//! edge is [`resolver`], [`server`] and [`push::UpdateClient`].
//!
//! It does not decide policy (who may call whom) and does not speak SIP:
//! the node takes the called party from its parser, asks
//! [`resolver::EnumResolver::resolve`], and walks the targets; every error
//! maps to a SIP response through [`Error::status`].
//!
//! ```
//! use peering_enum::e164::CalledNumber;
//! use peering_enum::naptr::{NaptrRecord, NaptrWalk};
//!
//! let called = CalledNumber::parse_tel("tel:+44-1632-960083;npdi").unwrap();
//! let domain = called.routing().enum_domain("e164.arpa");
//! assert_eq!(domain, "3.8.0.0.6.9.2.3.6.1.4.4.e164.arpa.");
//!
//! // The NAPTR set DNS gave for that domain (RFC 6116 §3.2.1 style).
//! let answer = [
//!     NaptrRecord::new(100, 10, "u", "E2U+sip", r"!^\+44(.*)$!sip:\1@example.net!", "."),
//!     NaptrRecord::new(102, 10, "u", "E2U+email:mailto", "!^.*$!mailto:info@example.net!", "."),
//! ];
//! let mut walk = NaptrWalk::new(&called.number.aus(), &domain, 5);
//! assert_eq!(walk.poll_query(), Some(domain.as_str()));
//! walk.handle_answer(&answer);
//! assert_eq!(walk.poll_query(), None);
//! assert_eq!(walk.finish().unwrap(), vec!["sip:1632960083@example.net"]);
//!
//! let e = CalledNumber::parse_tel("tel:555-0123").unwrap_err();
//! assert_eq!(e.status(), (484, "Address Incomplete"));
//! ```
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
