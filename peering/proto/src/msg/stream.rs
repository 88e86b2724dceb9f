//! Stream framing (TCP, TLS): RFC 3261 §18.3, keep-alives of RFC 5626 §4.4.1.

use bytes::{Buf, BytesMut};
use memchr::memmem;

use super::header::HeaderName;
use super::lex::is_token;
use super::message::{Message, parse_content_length};
use crate::error::ParseError;

/// What [`StreamDecoder::decode`] found.
#[derive(Debug, Clone)]
pub enum Frame {
    /// A complete, valid message was framed.
    Message(Message),
    /// A complete message was framed but is not valid SIP; the stream stays
    /// usable. `raw` is its bytes, to answer a request with 400 from.
    Invalid {
        /// Why it is invalid.
        error: ParseError,
        /// The framed bytes.
        raw: bytes::Bytes,
    },
    /// A double-CRLF keep-alive ping (RFC 5626): answer with one CRLF.
    KeepAlive,
}

/// Splits a byte stream into SIP messages. Pure: feed it the connection's
/// receive buffer, it takes what it frames.
///
/// Content-Length is mandatory on streams; a message without it, with a bad
/// one, or larger than `max_message_size` makes the framing unrecoverable
/// (`Err`: close the connection).
#[derive(Debug, Clone)]
pub struct StreamDecoder {
    max: usize,
    /// Bytes of the buffer already searched for the end of the headers.
    searched: usize,
}

impl StreamDecoder {
    /// A decoder refusing messages larger than `max_message_size` octets.
    pub fn new(max_message_size: usize) -> Self {
        Self {
            max: max_message_size,
            searched: 0,
        }
    }

    /// Takes the next frame from `buf`: `Ok(None)` means more bytes are needed.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, ParseError> {
        while buf.starts_with(b"\r\n") {
            if buf.starts_with(b"\r\n\r\n") {
                buf.advance(4);
                self.searched = 0;
                return Ok(Some(Frame::KeepAlive));
            }
            if buf.len() < 4 && b"\r\n\r\n".starts_with(&buf[..]) {
                return Ok(None);
            }
            buf.advance(2);
            self.searched = 0;
        }
        if buf.is_empty() {
            return Ok(None);
        }
        let from = self.searched.saturating_sub(3);
        let Some(rel) = memmem::find(&buf[from..], b"\r\n\r\n") else {
            if buf.len() > self.max {
                return Err(ParseError::TooLarge {
                    max: self.max,
                    len: buf.len(),
                });
            }
            self.searched = buf.len();
            return Ok(None);
        };
        let head_crlf = from + rel;
        let body_start = head_crlf + 4;
        let cl = find_content_length(&buf[..head_crlf + 2])?;
        let total = body_start.checked_add(cl).ok_or(ParseError::TooLarge {
            max: self.max,
            len: usize::MAX,
        })?;
        if total > self.max {
            return Err(ParseError::TooLarge {
                max: self.max,
                len: total,
            });
        }
        self.searched = head_crlf;
        if buf.len() < total {
            return Ok(None);
        }
        self.searched = 0;
        let frame = buf.split_to(total).freeze();
        Ok(Some(match Message::parse(frame.clone()) {
            Ok(message) => Frame::Message(message),
            Err(error) => Frame::Invalid { error, raw: frame },
        }))
    }
}

/// Finds the (single) Content-Length of a header section.
fn find_content_length(head: &[u8]) -> Result<usize, ParseError> {
    let mut found: Option<usize> = None;
    let mut lines = head.split(|b| *b == b'\n').skip(1).peekable();
    while let Some(line) = lines.next() {
        let n = line
            .iter()
            .position(|b| !is_token(*b))
            .unwrap_or(line.len());
        let name = std::str::from_utf8(&line[..n]).unwrap_or_default();
        if n == 0 || HeaderName::from_wire(name) != HeaderName::ContentLength {
            continue;
        }
        let mut value: Vec<u8> = line[n..].to_vec();
        while let Some(next) = lines.peek() {
            if matches!(next.first(), Some(b' ' | b'\t')) {
                value.extend_from_slice(next);
                lines.next();
            } else {
                break;
            }
        }
        let v = std::str::from_utf8(&value).map_err(|_| ParseError::BadHeaderValue {
            name: "Content-Length",
        })?;
        let v = v.trim_start_matches([' ', '\t']).strip_prefix(':').ok_or(
            ParseError::BadHeaderValue {
                name: "Content-Length",
            },
        )?;
        let cl = parse_content_length(v)?;
        if found.is_some() {
            return Err(ParseError::RepeatedHeader {
                name: "Content-Length",
            });
        }
        found = Some(cl);
    }
    found.ok_or(ParseError::MissingContentLength)
}
