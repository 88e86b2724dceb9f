//! Building outgoing messages from received ones.

use std::fmt::Write as _;
use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};

use super::header::HeaderName;
use super::lex::{is_token, split_list};
use super::message::Message;
use super::uri::Uri;
use crate::error::ParseError;

#[derive(Debug, Clone)]
enum Entry {
    /// A field of the original message, copied byte for byte.
    Orig(usize),
    /// An original field with some of its values removed: the name as
    /// received, then these bytes of the original value (absolute range).
    Slice { idx: usize, range: Range<usize> },
    /// A new field.
    New { name: HeaderName, value: String },
}

/// Modifies a copy of a received message. Untouched header fields are copied
/// byte for byte; [`Editor::finish`] always writes a correct Content-Length.
#[derive(Debug, Clone)]
pub struct Editor {
    msg: Message,
    start_line: Option<String>,
    entries: Vec<Entry>,
    body: Option<Bytes>,
}

impl Message {
    /// Starts modifying a copy of this message.
    pub fn edit(&self) -> Editor {
        // Room for the few fields a proxy adds (Via, Record-Route) without
        // growing the list.
        let mut entries = Vec::with_capacity(self.p.fields.len() + 4);
        entries.extend((0..self.p.fields.len()).map(Entry::Orig));
        Editor {
            msg: self.clone(),
            start_line: None,
            entries,
            body: None,
        }
    }
}

impl Editor {
    fn name_of<'a>(&'a self, e: &'a Entry) -> &'a HeaderName {
        match e {
            Entry::Orig(i) | Entry::Slice { idx: i, .. } => &self.msg.p.fields[*i].name,
            Entry::New { name, .. } => name,
        }
    }

    fn value_of<'a>(&'a self, e: &'a Entry) -> &'a str {
        match e {
            Entry::Orig(i) => self.msg.str_at(self.msg.p.fields[*i].value()),
            Entry::Slice { range, .. } => self.msg.str_at(range.clone()),
            Entry::New { value, .. } => value,
        }
    }

    /// Replaces the Request-URI (requests only; ignored for responses).
    pub fn set_request_uri(&mut self, uri: &Uri) -> &mut Self {
        if let Some(m) = self.msg.method() {
            // Sized once: the URI is written piece by piece.
            let mut s = String::with_capacity(m.as_str().len() + 96);
            s.push_str(m.as_str());
            s.push(' ');
            let _ = write!(s, "{uri}");
            s.push_str(" SIP/2.0");
            self.start_line = Some(s);
        }
        self
    }

    /// Inserts a field before the first field of that name (when there is
    /// none: right after the Via fields, or at the top for a Via): a new top
    /// Via or Record-Route.
    pub fn prepend_header(&mut self, name: HeaderName, value: &str) -> &mut Self {
        let pos = self
            .entries
            .iter()
            .position(|e| self.name_of(e) == &name)
            .unwrap_or_else(|| {
                // None yet: keep the Via block on top and put the new field
                // right after it.
                self.entries
                    .iter()
                    .rposition(|e| self.name_of(e) == &HeaderName::Via)
                    .map_or(0, |i| i + 1)
            });
        self.entries.insert(
            pos,
            Entry::New {
                name,
                value: value.to_owned(),
            },
        );
        self
    }

    /// Appends a field after all others.
    pub fn append_header(&mut self, name: HeaderName, value: &str) -> &mut Self {
        self.entries.push(Entry::New {
            name,
            value: value.to_owned(),
        });
        self
    }

    /// Removes the first value of a header (top Via, top Route), also when it
    /// shares a field line with other comma-separated values.
    pub fn remove_first_value(&mut self, name: &HeaderName) -> &mut Self {
        if let Some(pos) = self.entries.iter().position(|e| self.name_of(e) == name) {
            self.drop_value(pos, true);
        }
        self
    }

    /// Removes the last value of a header (the last Route, for strict
    /// routing, RFC 3261 §16.6 step 6), also when it shares a line.
    pub fn remove_last_value(&mut self, name: &HeaderName) -> &mut Self {
        if let Some(pos) = self.entries.iter().rposition(|e| self.name_of(e) == name) {
            self.drop_value(pos, false);
        }
        self
    }

    /// Replaces the first value of a header, keeping the other values of its
    /// line: e.g. the top Via rewritten with `received`/`rport` (RFC 3581).
    /// Appends a field when there is none.
    pub fn set_first_value(&mut self, name: HeaderName, value: &str) -> &mut Self {
        let Some(pos) = self.entries.iter().position(|e| self.name_of(e) == &name) else {
            self.entries.push(Entry::New {
                name,
                value: value.to_owned(),
            });
            return self;
        };
        self.drop_value(pos, true);
        self.entries.insert(
            pos,
            Entry::New {
                name,
                value: value.to_owned(),
            },
        );
        self
    }

    /// Drops the first (or last) comma-separated value of entry `pos`, and
    /// the entry itself when that was its only value.
    fn drop_value(&mut self, pos: usize, first: bool) {
        let entry = self.entries[pos].clone();
        let value = self.value_of(&entry);
        let mut items = split_list(value).filter(|(a, e)| a < e);
        // The kept values, relative to `value`: from the second value on,
        // or up to the one before the last. A single value: the entry goes.
        let kept = if first {
            items.nth(1).map(|second| (second.0, value.len()))
        } else {
            let mut before_last = None;
            let mut last = None;
            for item in items {
                before_last = last;
                last = Some(item);
            }
            before_last.map(|b: (usize, usize)| (0, b.1))
        };
        let Some((keep_start, keep_end)) = kept else {
            self.entries.remove(pos);
            return;
        };
        self.entries[pos] = match entry {
            Entry::Orig(idx) => {
                let base = self.msg.p.fields[idx].value().start;
                Entry::Slice {
                    idx,
                    range: base + keep_start..base + keep_end,
                }
            }
            Entry::Slice { idx, range } => Entry::Slice {
                idx,
                range: range.start + keep_start..range.start + keep_end,
            },
            Entry::New { name, value } => Entry::New {
                name,
                value: value[keep_start..keep_end].to_owned(),
            },
        };
    }

    /// Removes every field of that name.
    pub fn remove_header(&mut self, name: &HeaderName) -> &mut Self {
        let keep: Vec<Entry> = self
            .entries
            .iter()
            .filter(|e| self.name_of(e) != name)
            .cloned()
            .collect();
        self.entries = keep;
        self
    }

    /// Replaces all fields of that name with one field (in the place of the
    /// first, or appended when there is none).
    pub fn set_header(&mut self, name: HeaderName, value: &str) -> &mut Self {
        let fields = &self.msg.p.fields;
        let is_name = |e: &Entry| match e {
            Entry::Orig(i) | Entry::Slice { idx: i, .. } => fields[*i].name == name,
            Entry::New { name: n, .. } => *n == name,
        };
        // In place, in one pass after the first match: many fields of one
        // name cost no more than one, and nothing else is cloned.
        match self.entries.iter().position(is_name) {
            None => self.entries.push(Entry::New {
                name,
                value: value.to_owned(),
            }),
            Some(first) => {
                let mut k = 0;
                self.entries.retain(|e| {
                    let keep = k <= first || !is_name(e);
                    k += 1;
                    keep
                });
                self.entries[first] = Entry::New {
                    name,
                    value: value.to_owned(),
                };
            }
        }
        self
    }

    /// Sets Max-Forwards.
    pub fn set_max_forwards(&mut self, n: u32) -> &mut Self {
        self.set_header(HeaderName::MaxForwards, itoa::Buffer::new().format(n))
    }

    /// Replaces the body. With `Some(content_type)` Content-Type is set; with
    /// `None` and an empty body Content-Type is removed; Content-Length is
    /// always fixed by [`Editor::finish`].
    pub fn set_body(&mut self, content_type: Option<&str>, body: Bytes) -> &mut Self {
        match content_type {
            Some(ct) => {
                self.set_header(HeaderName::ContentType, ct);
            }
            None if body.is_empty() => {
                self.remove_header(&HeaderName::ContentType);
            }
            None => {}
        }
        self.body = Some(body);
        self
    }

    /// Serialises the edited message into a buffer of its size (at most a
    /// few octets spare, when Content-Length is rewritten), so that the
    /// bytes can be kept without copying.
    pub fn finish(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.size_bound());
        self.write_to(&mut |piece| out.put_slice(piece));
        out.freeze()
    }

    /// An upper bound of the serialised size, without writing: the pieces
    /// of [`Editor::write_to`], with Content-Length counted as the larger of
    /// its received line and a rewritten one.
    fn size_bound(&self) -> usize {
        let m = &self.msg;
        let body = match &self.body {
            Some(b) => b.len(),
            None => m.p.body.len(),
        };
        let mut digits = 1;
        let mut n = body / 10;
        while n > 0 {
            digits += 1;
            n /= 10;
        }
        // "Content-Length: " digits CRLF
        let mut cl = 16 + digits + 2;
        let mut len = match &self.start_line {
            Some(s) => s.len(),
            None => m.p.start_line.len(),
        } + 2;
        for e in &self.entries {
            match e {
                Entry::Orig(i) => {
                    let f = &m.p.fields[*i];
                    if f.name == HeaderName::ContentLength {
                        cl = cl.max(f.line().len() + 2);
                    } else {
                        len += f.line().len() + 2;
                    }
                }
                Entry::Slice { idx, range } => {
                    len += m.p.fields[*idx].name_range().len() + 2 + range.len() + 2;
                }
                Entry::New { name, value } => {
                    len += name.as_str().len() + 2 + value.len() + 2;
                }
            }
        }
        len + cl + 2 + body
    }

    /// Hands the serialised message to `put`, piece by piece.
    #[inline]
    fn write_to<F: FnMut(&[u8])>(&self, put: &mut F) {
        let m = &self.msg;
        let body: &[u8] = match &self.body {
            Some(b) => b,
            None => m.body(),
        };
        match &self.start_line {
            Some(s) => put(s.as_bytes()),
            None => put(&m.buf[m.p.start_line.clone()]),
        }
        put(b"\r\n");
        let mut cl_written = false;
        let write_cl = |put: &mut F, orig: Option<usize>| {
            if let Some(i) = orig {
                let f = &m.p.fields[i];
                let same = super::message::parse_content_length(m.str_at(f.value()))
                    .is_ok_and(|n| n == body.len());
                if same {
                    put(&m.buf[f.line()]);
                    put(b"\r\n");
                    return;
                }
            }
            put(b"Content-Length: ");
            put(itoa::Buffer::new().format(body.len()).as_bytes());
            put(b"\r\n");
        };
        for e in &self.entries {
            if self.name_of(e) == &HeaderName::ContentLength {
                if !cl_written {
                    cl_written = true;
                    write_cl(
                        put,
                        if let Entry::Orig(i) = e {
                            Some(*i)
                        } else {
                            None
                        },
                    );
                }
                continue;
            }
            match e {
                Entry::Orig(i) => put(&m.buf[m.p.fields[*i].line()]),
                Entry::Slice { idx, range } => {
                    put(&m.buf[m.p.fields[*idx].name_range()]);
                    put(b": ");
                    put(&m.buf[range.clone()]);
                }
                Entry::New { name, value } => {
                    put(name.as_str().as_bytes());
                    put(b": ");
                    put(value.as_bytes());
                }
            }
            put(b"\r\n");
        }
        if !cl_written {
            write_cl(put, None);
        }
        put(b"\r\n");
        put(body);
    }
}

/// A response to `req` (RFC 3261 §8.2.6.2, §16.7): Via (all), From, To
/// (with `to_tag` added when To has no tag), Call-ID, CSeq copied, then
/// `extra_headers`, then `Content-Length: 0`.
pub fn response_to(
    req: &Message,
    status: u16,
    reason: &str,
    to_tag: Option<&str>,
    extra_headers: &[(HeaderName, &str)],
) -> Bytes {
    // Two passes over the same pieces: the size, then the bytes, so that
    // the buffer is exactly as large as the response.
    let write = |put: &mut dyn FnMut(&[u8])| {
        let mut code = itoa::Buffer::new();
        put(b"SIP/2.0 ");
        put(code.format(status).as_bytes());
        put(b" ");
        put(reason.as_bytes());
        put(b"\r\n");
        let copy = |put: &mut dyn FnMut(&[u8]), name: &HeaderName| {
            for f in req.p.fields.iter().filter(|f| &f.name == name) {
                put(&req.buf[f.line()]);
                put(b"\r\n");
            }
        };
        copy(put, &HeaderName::Via);
        copy(put, &HeaderName::From);
        for f in req.p.fields.iter().filter(|f| f.name == HeaderName::To) {
            put(&req.buf[f.line()]);
            if let Some(tag) = to_tag
                && req.to().tag().is_none()
            {
                put(b";tag=");
                put(tag.as_bytes());
            }
            put(b"\r\n");
        }
        copy(put, &HeaderName::CallId);
        copy(put, &HeaderName::CSeq);
        for (name, value) in extra_headers {
            put(name.as_str().as_bytes());
            put(b": ");
            put(value.as_bytes());
            put(b"\r\n");
        }
        put(b"Content-Length: 0\r\n\r\n");
    };
    let mut len = 0;
    write(&mut |piece| len += piece.len());
    let mut out = BytesMut::with_capacity(len);
    write(&mut |piece| out.put_slice(piece));
    out.freeze()
}

/// For a datagram that failed [`Message::parse`]: when it is a request whose
/// Via, From, To, Call-ID and CSeq lines can still be found, the 400 (or
/// 505) response to send back. `None` for responses, for messages that
/// parse, and when there is nothing to address the answer to.
pub fn parse_request_for_error_response(buf: &[u8]) -> Option<Bytes> {
    let Err(err) = Message::parse(Bytes::copy_from_slice(buf)) else {
        return None;
    };
    error_response(buf, &err)
}

/// Like [`parse_request_for_error_response`] with the error already known.
pub fn error_response(buf: &[u8], err: &ParseError) -> Option<Bytes> {
    let (status, reason) = err.status()?;
    let mut start = 0;
    while buf[start..].starts_with(b"\r\n") {
        start += 2;
    }
    let buf = &buf[start..];
    let first = buf.split(|b| *b == b'\r' || *b == b'\n').next()?;
    let method_end = first.iter().position(|b| *b == b' ')?;
    let method = &first[..method_end];
    // Responses are dropped, and an ACK is never answered (RFC 3261 §17.2.3).
    if method.is_empty()
        || !method.iter().all(|b| is_token(*b))
        || method.starts_with(b"SIP/")
        || method == b"ACK"
    {
        return None;
    }
    // Header lines up to the empty line (or the end), folding joined.
    let head_end = memchr::memmem::find(buf, b"\r\n\r\n").map_or(buf.len(), |p| p + 2);
    let head = &buf[..head_end];
    let mut lines: Vec<Vec<u8>> = Vec::new();
    for raw in head.split(|b| *b == b'\n').skip(1) {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.is_empty() {
            continue;
        }
        if matches!(raw[0], b' ' | b'\t') {
            if let Some(last) = lines.last_mut() {
                last.extend_from_slice(b"\r\n");
                last.extend_from_slice(raw);
            }
            continue;
        }
        lines.push(raw.to_vec());
    }
    let name_of = |l: &[u8]| {
        let n = l.iter().position(|b| !is_token(*b)).unwrap_or(l.len());
        HeaderName::from_wire(std::str::from_utf8(&l[..n]).unwrap_or_default())
    };
    let wanted = [
        HeaderName::Via,
        HeaderName::From,
        HeaderName::To,
        HeaderName::CallId,
        HeaderName::CSeq,
    ];
    let mut out = BytesMut::with_capacity(512);
    out.put_slice(format!("SIP/2.0 {status} {reason}\r\n").as_bytes());
    for want in &wanted {
        let mut found = false;
        for l in lines.iter().filter(|l| &name_of(l) == want) {
            if want == &HeaderName::To && found {
                break;
            }
            found = true;
            out.put_slice(l);
            if want == &HeaderName::To && !contains_tag(l) {
                out.put_slice(format!(";tag={:08x}", fnv(buf)).as_bytes());
            }
            out.put_slice(b"\r\n");
        }
        if !found && matches!(want, HeaderName::Via) {
            return None;
        }
    }
    out.put_slice(b"Content-Length: 0\r\n\r\n");
    Some(out.freeze())
}

fn contains_tag(line: &[u8]) -> bool {
    line.windows(4).any(|w| w.eq_ignore_ascii_case(b"tag="))
}

/// A deterministic To tag for stateless error responses.
fn fnv(b: &[u8]) -> u32 {
    b.iter().fold(0x811c_9dc5_u32, |h, c| {
        (h ^ u32::from(*c)).wrapping_mul(0x0100_0193)
    })
}
