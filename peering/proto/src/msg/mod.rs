//! The SIP message layer (RFC 3261 §7, §20, §25; RFC 5118 for IPv6).
//!
//! Zero-copy: a [`Message`] owns one [`bytes::Bytes`] with the wire form and
//! keeps byte ranges of the start line, each header field and the body. The
//! few headers a proxy needs are typed; everything else is passed through
//! byte for byte by the [`Editor`].
//!
//! What is checked at parse time (RFC 3261 ABNF; the RFC 4475 and 5118
//! torture messages and the PROTOS c07-sip suite are the tests):
//!
//! - start line: single SP separators, `SIP/2.0` (another well-formed version
//!   is [`ParseError::VersionNotSupported`], answered 505), token method,
//!   Request-URI without LWS, `<>` or URI headers; status 100..=699;
//! - header lines: token name, optional SP/HTAB before `:`, folding (CRLF
//!   followed by SP/HTAB) kept in the value, CRLF only, UTF-8 only;
//! - Via (every value), From, To, Call-ID, CSeq present; From/To/Call-ID/
//!   CSeq/Max-Forwards/Content-Length/Content-Type/Expires at most once;
//!   CSeq below 2^31 in requests and its method equal to the request's;
//!   Max-Forwards digits (above 255 counts as absent); Content-Length digits
//!   and not beyond the datagram;
//! - in requests also: Contact, Route and Record-Route parse, Expires is
//!   digits, Date is an RFC 1123 GMT date.
//!
//! What is not: bodies (SDP, multipart) are opaque octets; unknown headers
//! only need to be `token ":" value`. Typed views ([`Message::request_uri`],
//! [`Message::top_via`], [`Message::from`], [`Message::to`]) are validated at
//! parse time and built on first use; [`Message::branch`],
//! [`Message::from_tag`] and [`Message::to_tag`] read the wire directly.
//! A request that fails gets the response of [`error_response`] (400 with
//! the fault in the reason phrase, or 505); responses that fail are dropped.
//!
//! ```
//! use bytes::Bytes;
//! use peering_proto::msg::{HeaderName, Message, Method};
//!
//! let wire = Bytes::from_static(
//!     b"OPTIONS sip:bob@example.com SIP/2.0\r\n\
//!       Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK776asdhds\r\n\
//!       Max-Forwards: 70\r\nTo: <sip:bob@example.com>\r\n\
//!       From: <sip:alice@example.org>;tag=1928301774\r\n\
//!       Call-ID: a84b4c76e66710\r\nCSeq: 63104 OPTIONS\r\nContent-Length: 0\r\n\r\n",
//! );
//! let msg = Message::parse(wire)?;
//! assert_eq!(msg.method(), Some(&Method::Options));
//! let out = msg
//!     .edit()
//!     .prepend_header(HeaderName::Via, "SIP/2.0/UDP proxy.example.net;branch=z9hG4bKx1")
//!     .set_max_forwards(69)
//!     .finish();
//! let fwd = Message::parse(out)?;
//! assert_eq!(fwd.vias()?.len(), 2);
//! # Ok::<(), peering_proto::error::ParseError>(())
//! ```

mod edit;
mod header;
mod lex;
mod message;
mod method;
mod stream;
mod uri;
mod value;

pub use edit::{Editor, error_response, parse_request_for_error_response, response_to};
pub use header::HeaderName;
pub use lex::unescape;
pub use message::Message;
pub use method::Method;
pub use stream::{Frame, StreamDecoder};
pub use uri::{Host, Params, Scheme, SipUri, TelUri, Uri};
pub(crate) use value::scan_via;
pub use value::{CSeq, MAGIC_COOKIE, NameAddr, Via};

pub use crate::error::ParseError;

#[cfg(test)]
mod tests;
