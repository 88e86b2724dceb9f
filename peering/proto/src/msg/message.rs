//! The parsed message: one buffer, byte ranges, a few typed headers.

use std::ops::Range;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use bytestring::ByteString;

use super::header::HeaderName;
use super::lex::{CLASS, CrLf, TOKEN, is_lws, skip_table, split_list, trim_lws};
use super::method::Method;
use super::uri::Uri;
use super::value::{
    CSeq, NameAddr, Via, scan_tagged_addr, scan_via, validate_angle_list, validate_name_addr,
};
use crate::error::ParseError;

/// One header field as received.
///
/// Offsets are kept as `u32` (the header section is below 4 GiB, see
/// [`Message::parse`]) so that a field takes 56 octets and the usual
/// sixteen fit one small allocation.
#[derive(Debug, Clone)]
pub(crate) struct Field {
    /// The name, mapped (compact forms resolved).
    pub(crate) name: HeaderName,
    /// Start of the name (and of the field).
    ns: u32,
    /// End of the name as spelled on the wire.
    ne: u32,
    /// The value without leading/trailing LWS (folding inside kept).
    vs: u32,
    ve: u32,
    /// End of the last line of the field (CRLF excluded).
    end: u32,
}

impl Field {
    /// From the first octet of the name to the end of the last line of the
    /// field (CRLF excluded): the whole field, folding kept.
    pub(crate) fn line(&self) -> Range<usize> {
        self.ns as usize..self.end as usize
    }

    /// The range of the name as spelled on the wire.
    pub(crate) fn name_range(&self) -> Range<usize> {
        self.ns as usize..self.ne as usize
    }

    /// The value without leading/trailing LWS (folding inside kept).
    pub(crate) fn value(&self) -> Range<usize> {
        self.vs as usize..self.ve as usize
    }
}

/// Offsets of a field as stored (the buffer was checked to fit `u32`).
fn to_u32(v: usize) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// A range of the message kept in eight octets.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Span(u32, u32);

impl Span {
    /// Where `part` (a slice of `whole`) lies in the message, `whole`
    /// starting at message offset `base`.
    fn within(whole: &str, base: usize, part: &str) -> Self {
        let start = base + (part.as_ptr() as usize - whole.as_ptr() as usize);
        Self(to_u32(start), to_u32(start + part.len()))
    }

    fn range(self) -> Range<usize> {
        self.0 as usize..self.1 as usize
    }
}

#[derive(Debug, Clone)]
enum Start {
    Request { method: Method, uri: Range<usize> },
    Response { status: u16, reason: Range<usize> },
}

/// A SIP request or response.
///
/// Owns one [`Bytes`] holding exactly the wire form of the message (trailing
/// octets of a datagram after the body are not part of it) and keeps byte
/// ranges of the start line, every header field and the body. The headers a
/// proxy needs for validation (top Via, From, To, Call-ID, CSeq,
/// Max-Forwards, Request-URI) are parsed at parse time; everything else is
/// parsed on demand and passed through byte for byte. Cloning is cheap
/// (reference-counted buffer plus ranges).
///
/// ```text
/// generic-message = start-line *message-header CRLF [ message-body ]
/// start-line      = Request-Line / Status-Line
/// Request-Line    = Method SP Request-URI SP SIP-Version CRLF
/// Status-Line     = SIP-Version SP Status-Code SP Reason-Phrase CRLF
/// ```
#[derive(Debug, Clone)]
pub struct Message {
    pub(crate) buf: Bytes,
    pub(crate) p: Arc<Parsed>,
}

/// What parsing found; shared between clones.
#[derive(Debug)]
pub(crate) struct Parsed {
    /// The start line and header fields (up to the empty line), checked
    /// to be UTF-8: a view of the message's buffer, not a copy.
    text: ByteString,
    start: Start,
    pub(crate) start_line: Range<usize>,
    pub(crate) fields: Vec<Field>,
    pub(crate) body: Range<usize>,
    /// Typed views, built on first use from ranges validated at parse time.
    request_uri: OnceLock<Uri>,
    top_via_range: Range<usize>,
    top_via: OnceLock<Via>,
    /// The top Via's sent-by host (as written), port and branch, found
    /// while validating it: the transaction layer reads them for every
    /// message.
    top_via_host: Span,
    top_via_port: Option<u16>,
    top_via_rport: bool,
    branch: Option<Span>,
    from_range: Range<usize>,
    from: OnceLock<NameAddr>,
    from_tag: Option<Span>,
    to_range: Range<usize>,
    to: OnceLock<NameAddr>,
    to_tag: Option<Span>,
    call_id: Range<usize>,
    cseq: CSeq,
    max_forwards: Option<u32>,
}

/// Where a single-valued header was first seen.
#[derive(Default)]
struct Singles {
    from: Option<usize>,
    to: Option<usize>,
    call_id: Option<usize>,
    cseq: Option<usize>,
    max_forwards: Option<usize>,
    content_length: Option<usize>,
    content_type: Option<usize>,
    expires: Option<usize>,
}

/// Records one header field `(name_start, name_end, colon, end)`: value
/// trimmed of LWS, name mapped, single-valued headers counted.
///
/// Kept out of [`Message::parse`] on purpose: inlined there, the push
/// was left as a call that copied the field from the stack just after it
/// was written, and that load waited on the stores (a store-forwarding
/// stall that was 8 % of the parse); here the field is written in place.
#[inline(never)]
fn finish_field(
    b: &[u8],
    singles: &mut Singles,
    c: (usize, usize, usize, usize),
    fields: &mut Vec<Field>,
) -> Result<(), ParseError> {
    let (ns, ne, colon, end) = c;
    let raw = &b[colon + 1..end];
    let vs = colon + 1 + raw.iter().position(|c| !is_lws(*c)).unwrap_or(raw.len());
    let ve = vs
        + b[vs..end]
            .iter()
            .rposition(|c| !is_lws(*c))
            .map_or(0, |p| p + 1);
    let name = HeaderName::from_wire_bytes(&b[ns..ne]);
    if let Some(slot) = singles.slot(&name) {
        if slot.is_some() {
            return Err(ParseError::RepeatedHeader {
                name: name.static_name(),
            });
        }
        *slot = Some(fields.len());
    }
    fields.push(Field {
        name,
        ns: to_u32(ns),
        ne: to_u32(ne),
        vs: to_u32(vs),
        ve: to_u32(ve),
        end: to_u32(end),
    });
    Ok(())
}

impl Singles {
    fn slot(&mut self, name: &HeaderName) -> Option<&mut Option<usize>> {
        Some(match name {
            HeaderName::From => &mut self.from,
            HeaderName::To => &mut self.to,
            HeaderName::CallId => &mut self.call_id,
            HeaderName::CSeq => &mut self.cseq,
            HeaderName::MaxForwards => &mut self.max_forwards,
            HeaderName::ContentLength => &mut self.content_length,
            HeaderName::ContentType => &mut self.content_type,
            HeaderName::Expires => &mut self.expires,
            _ => return None,
        })
    }
}

/// Visible ASCII (`%x21-7E`), for Call-ID.
static GRAPHIC: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0x21;
    while c < 0x7f {
        t[c] = 1;
        c += 1;
    }
    t
};

/// Checks `SIP/x.y`: Ok for 2.0, 505 for another well-formed version.
fn check_version(v: &str) -> Result<(), ParseError> {
    if v == "SIP/2.0" {
        return Ok(());
    }
    let b = v.as_bytes();
    if b.len() < 7 || !b[..4].eq_ignore_ascii_case(b"SIP/") {
        return Err(ParseError::BadVersion);
    }
    let (major, minor) = v[4..].split_once('.').ok_or(ParseError::BadVersion)?;
    let num = |s: &str| {
        if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
            return Err(ParseError::BadVersion);
        }
        Ok(s.parse::<u32>().unwrap_or(u32::MAX))
    };
    let (major, minor) = (num(major)?, num(minor)?);
    if (major, minor) == (2, 0) {
        Ok(())
    } else {
        Err(ParseError::VersionNotSupported { major, minor })
    }
}

/// Parses a Content-Length value (`1*DIGIT`).
pub(crate) fn parse_content_length(v: &str) -> Result<usize, ParseError> {
    let v = trim_lws(v);
    if v.is_empty() || !v.bytes().all(|c| c.is_ascii_digit()) {
        return Err(ParseError::BadHeaderValue {
            name: "Content-Length",
        });
    }
    let d = v.trim_start_matches('0');
    if d.len() > 12 {
        return Err(ParseError::ValueOutOfRange {
            name: "Content-Length",
        });
    }
    let n = d.bytes().fold(0u64, |a, c| a * 10 + u64::from(c - b'0'));
    Ok(usize::try_from(n).unwrap_or(0))
}

/// `rfc1123-date = wkday "," SP date1 SP time SP "GMT"` (RFC 3261 §20.17).
fn is_rfc1123_date(v: &str) -> bool {
    // Compared as bytes: the value may hold any UTF-8, and slicing the str
    // at fixed offsets could split a character.
    let b = v.as_bytes();
    if b.len() != 29 {
        return false;
    }
    let digits = |r: Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    const DAYS: [&[u8]; 7] = [b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat", b"Sun"];
    const MONTHS: [&[u8]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    DAYS.contains(&&b[0..3])
        && &b[3..5] == b", "
        && digits(5..7)
        && b[7] == b' '
        && MONTHS.contains(&&b[8..11])
        && b[11] == b' '
        && digits(12..16)
        && b[16] == b' '
        && digits(17..19)
        && b[19] == b':'
        && digits(20..22)
        && b[22] == b':'
        && digits(23..25)
        && &b[25..] == b" GMT"
}

fn bad(name: &HeaderName) -> ParseError {
    ParseError::BadHeaderValue {
        name: name.static_name(),
    }
}

impl Message {
    /// Parses a whole message from one UDP datagram (or one stream frame).
    ///
    /// The body is framed by Content-Length when present: fewer octets than
    /// declared is an error, octets after it are ignored (and not part of
    /// [`Message::as_bytes`]). Without Content-Length the body runs to the
    /// end of the buffer. CRLFs before the start line are skipped.
    ///
    /// A request must carry Via (the top one parsed), From, To, Call-ID and
    /// CSeq (number below 2^31, method equal to the Request-Line's), and no
    /// repeated single-valued header; Contact, Route and Record-Route must
    /// parse, and Date, when present, must be an RFC 1123 GMT date.
    /// A buffer of 4 GiB or more is refused as too large.
    pub fn parse(buf: Bytes) -> Result<Self, ParseError> {
        let mut off = 0;
        while buf[off..].starts_with(b"\r\n") {
            off += 2;
        }
        if off >= buf.len() {
            return Err(ParseError::Empty);
        }
        let mut buf = buf.slice(off..);
        // Field offsets are stored as u32.
        if u32::try_from(buf.len()).is_err() {
            return Err(ParseError::TooLarge {
                max: u32::MAX as usize,
                len: buf.len(),
            });
        }
        let b = &buf[..];
        // Start line.
        // The usual case in one search: the first CR or LF is a CRLF (then
        // the start line holds neither). Otherwise the errors in the order
        // of the general checks below.
        let crlf = CrLf::new();
        let j = crlf.find(b).ok_or(ParseError::Unterminated)?;
        let (lf, crlf_first) = if b[j] == b'\r' && b.get(j + 1) == Some(&b'\n') {
            (j + 1, true)
        } else {
            let lf = memchr::memchr(b'\n', b).ok_or(ParseError::Unterminated)?;
            (lf, false)
        };
        if lf == 0 || b[lf - 1] != b'\r' {
            return Err(ParseError::BareLineBreak);
        }
        let sl_end = lf - 1;
        let start_line = std::str::from_utf8(&b[..sl_end]).map_err(|_| ParseError::NotUtf8)?;
        if !crlf_first && memchr::memchr(b'\r', start_line.as_bytes()).is_some() {
            return Err(ParseError::BareLineBreak);
        }
        let start = parse_start_line(start_line)?;

        // Header fields, up to the empty line. Every LF must follow a CR;
        // bare CRs are caught by counting below.
        let mut fields: Vec<Field> = Vec::with_capacity(16);
        let mut pos = lf + 1;
        let mut line_no = 1;
        // (name_start, name_end, colon, end)
        let mut cur: Option<(usize, usize, usize, usize)> = None;
        let mut singles = Singles::default();
        // A CR not followed by LF is reported after the header section (as
        // the count of CRs against LFs did), so that a bad line before it
        // keeps its own error.
        let mut bare_cr = false;
        let head_end = loop {
            line_no += 1;
            // The line ends at the first CRLF; an LF without CR before it is
            // an error at once.
            let mut i = pos;
            let lf = loop {
                let j = i + crlf.find(&b[i..]).ok_or(ParseError::Unterminated)?;
                if b[j] == b'\n' {
                    return Err(ParseError::BareLineBreak);
                }
                match b.get(j + 1) {
                    Some(b'\n') => break j + 1,
                    Some(_) => {
                        bare_cr = true;
                        i = j + 1;
                    }
                    None => return Err(ParseError::Unterminated),
                }
            };
            let le = lf - 1;
            if le == pos {
                break pos;
            }
            if matches!(b[pos], b' ' | b'\t') {
                match cur.as_mut() {
                    Some(c) => c.3 = le,
                    None => return Err(ParseError::BadHeaderLine { line: line_no }),
                }
            } else {
                if let Some(c) = cur.take() {
                    finish_field(b, &mut singles, c, &mut fields)?;
                }
                let ne = skip_table(&b[..le], pos, &CLASS, TOKEN);
                let mut i = ne;
                while i < le && matches!(b[i], b' ' | b'\t') {
                    i += 1;
                }
                if ne == pos || i >= le || b[i] != b':' {
                    return Err(ParseError::BadHeaderLine { line: line_no });
                }
                cur = Some((pos, ne, i, le));
            }
            pos = lf + 1;
        };
        if let Some(c) = cur.take() {
            finish_field(b, &mut singles, c, &mut fields)?;
        }
        let body_start = head_end + 2;
        // The whole header section as text, validated once and sharing the
        // buffer: every later read of a field is a slice of it, with no
        // second validation.
        let text = ByteString::try_from(buf.slice(..head_end)).map_err(|_| ParseError::NotUtf8)?;
        let head = |r: Range<usize>| text.get(r).unwrap_or_default();
        if bare_cr {
            return Err(ParseError::BareLineBreak);
        }

        // Framing.
        let available = buf.len() - body_start;
        let body = match singles.content_length {
            Some(i) => {
                let cl = parse_content_length(head(fields[i].value()))?;
                if cl > available {
                    return Err(ParseError::BodyTooShort {
                        declared: cl,
                        available,
                    });
                }
                body_start..body_start + cl
            }
            None => body_start..buf.len(),
        };

        let is_request = matches!(start, Start::Request { .. });
        let value = |i: usize| head(fields[i].value());

        // Via: every value must parse; the first is kept.
        let mut top = None;
        for f in fields.iter().filter(|f| matches!(f.name, HeaderName::Via)) {
            let v = head(f.value());
            let base = f.value().start;
            for (a, e) in split_list(v) {
                let parts = scan_via(&v[a..e]).ok_or(ParseError::BadVia)?;
                if top.is_none() {
                    top = Some((
                        base + a..base + e,
                        Span::within(v, base, parts.host),
                        parts.port,
                        parts.rport,
                        parts.branch.map(|b| Span::within(v, base, b)),
                    ));
                }
            }
        }
        let (top_via_range, top_via_host, top_via_port, top_via_rport, branch) =
            top.ok_or(ParseError::MissingHeader { name: "Via" })?;

        type Addr = (Range<usize>, Option<Span>);
        let addr = |slot: Option<usize>, name: &'static str| -> Result<Addr, ParseError> {
            let i = slot.ok_or(ParseError::MissingHeader { name })?;
            let v = value(i);
            let tag = scan_tagged_addr(v).ok_or(ParseError::BadHeaderValue { name })?;
            let r = fields[i].value();
            Ok((r.clone(), tag.map(|t| Span::within(v, r.start, t))))
        };
        let (from_range, from_tag) = addr(singles.from, "From")?;
        let (to_range, to_tag) = addr(singles.to, "To")?;

        let ci = singles
            .call_id
            .ok_or(ParseError::MissingHeader { name: "Call-ID" })?;
        let cv = value(ci);
        if cv.is_empty() || skip_table(cv.as_bytes(), 0, &GRAPHIC, 1) != cv.len() {
            return Err(ParseError::BadHeaderValue { name: "Call-ID" });
        }
        let call_id = fields[ci].value();

        let si = singles
            .cseq
            .ok_or(ParseError::MissingHeader { name: "CSeq" })?;
        let cseq = CSeq::parse(value(si))?;

        let max_forwards = match singles.max_forwards {
            Some(i) => {
                let v = value(i);
                if v.is_empty() || !v.bytes().all(|c| c.is_ascii_digit()) {
                    return Err(ParseError::BadHeaderValue {
                        name: "Max-Forwards",
                    });
                }
                // Larger than 255: treated as absent (RFC 4475 §3.1.2.4).
                let d = v.trim_start_matches('0');
                if d.is_empty() {
                    Some(0)
                } else if d.len() > 3 {
                    None
                } else {
                    d.parse::<u32>().ok().filter(|n| *n <= 255)
                }
            }
            None => None,
        };

        if let Start::Request { method, .. } = &start {
            if cseq.seq > 0x7fff_ffff {
                return Err(ParseError::ValueOutOfRange { name: "CSeq" });
            }
            if &cseq.method != method {
                return Err(ParseError::CSeqMethodMismatch);
            }
            if let Some(i) = singles.expires {
                let v = value(i);
                if v.is_empty() || !v.bytes().all(|c| c.is_ascii_digit()) {
                    return Err(ParseError::BadHeaderValue { name: "Expires" });
                }
            }
            // The value is cut out only for the headers checked here.
            for f in &fields {
                match f.name {
                    HeaderName::Date if !is_rfc1123_date(head(f.value())) => {
                        return Err(bad(&f.name));
                    }
                    HeaderName::Contact => {
                        let v = head(f.value());
                        if v != "*" {
                            check_addr_list(v, &f.name)?;
                        }
                    }
                    HeaderName::Route | HeaderName::RecordRoute => {
                        check_addr_list(head(f.value()), &f.name)?;
                    }
                    _ => {}
                }
            }
        }
        let _ = is_request;
        buf.truncate(body.end);

        Ok(Self {
            buf,
            p: Arc::new(Parsed {
                text,
                start,
                start_line: 0..sl_end,
                fields,
                body,
                request_uri: OnceLock::new(),
                top_via_range,
                top_via: OnceLock::new(),
                top_via_host,
                top_via_port,
                top_via_rport,
                branch,
                from_range,
                from: OnceLock::new(),
                from_tag,
                to_range,
                to: OnceLock::new(),
                to_tag,
                call_id,
                cseq,
                max_forwards,
            }),
        })
    }

    /// The text of a range of the header section (every range the parser
    /// keeps ends on an ASCII delimiter).
    pub(crate) fn str_at(&self, r: Range<usize>) -> &str {
        self.p.text.get(r).unwrap_or_default()
    }

    /// Whether this is a request.
    pub fn is_request(&self) -> bool {
        matches!(self.p.start, Start::Request { .. })
    }

    /// The method of a request.
    pub fn method(&self) -> Option<&Method> {
        match &self.p.start {
            Start::Request { method, .. } => Some(method),
            Start::Response { .. } => None,
        }
    }

    /// The Request-URI of a request.
    pub fn request_uri(&self) -> Option<&Uri> {
        match &self.p.start {
            Start::Request { uri, .. } => Some(self.p.request_uri.get_or_init(|| {
                Uri::parse(self.str_at(uri.clone())).unwrap_or_else(|_| unreachable_uri())
            })),
            Start::Response { .. } => None,
        }
    }

    /// The status code of a response.
    pub fn status(&self) -> Option<u16> {
        match &self.p.start {
            Start::Response { status, .. } => Some(*status),
            Start::Request { .. } => None,
        }
    }

    /// The reason phrase of a response (possibly empty).
    pub fn reason(&self) -> Option<&str> {
        match &self.p.start {
            Start::Response { reason, .. } => Some(self.str_at(reason.clone())),
            Start::Request { .. } => None,
        }
    }

    /// The method a response answers (from CSeq), or the request's method.
    pub fn cseq_method(&self) -> &Method {
        &self.p.cseq.method
    }

    /// The start line as received (CRLF excluded).
    pub fn start_line(&self) -> &str {
        self.str_at(self.p.start_line.clone())
    }

    /// Every header field in order: the name and the value as on the wire
    /// (folding kept, surrounding LWS trimmed). A line with several
    /// comma-separated values is one item.
    pub fn headers(&self) -> impl Iterator<Item = (&HeaderName, &str)> {
        self.p
            .fields
            .iter()
            .map(|f| (&f.name, self.str_at(f.value())))
    }

    /// The value of the first field with this name.
    pub fn header(&self, name: &HeaderName) -> Option<&str> {
        self.p
            .fields
            .iter()
            .find(|f| &f.name == name)
            .map(|f| self.str_at(f.value()))
    }

    /// All values of a header, in order: every field, split at top-level
    /// commas when the header's grammar is a list ([`HeaderName::is_list`]).
    pub fn header_values(&self, name: &HeaderName) -> Vec<&str> {
        let mut out = Vec::new();
        for f in self.p.fields.iter().filter(|f| &f.name == name) {
            let v = self.str_at(f.value());
            if name.is_list() {
                out.extend(split_list(v).filter(|(a, e)| a < e).map(|(a, e)| &v[a..e]));
            } else {
                out.push(v);
            }
        }
        out
    }

    fn addr_list(&self, name: &HeaderName) -> Result<Vec<NameAddr>, ParseError> {
        let mut out = Vec::new();
        for f in self.p.fields.iter().filter(|f| &f.name == name) {
            let v = self.str_at(f.value());
            if name == &HeaderName::Contact && v == "*" {
                continue;
            }
            for (a, e) in split_list(v) {
                out.push(NameAddr::parse(&v[a..e]).map_err(|_| bad(name))?);
            }
        }
        Ok(out)
    }

    /// Every Via value, in order, across lines and commas.
    pub fn vias(&self) -> Result<Vec<Via>, ParseError> {
        let mut out = Vec::new();
        for f in self.p.fields.iter().filter(|f| f.name == HeaderName::Via) {
            let v = self.str_at(f.value());
            for (a, e) in split_list(v) {
                out.push(Via::parse(&v[a..e])?);
            }
        }
        Ok(out)
    }

    /// The top Via (always present in a parsed message).
    pub fn top_via(&self) -> Option<&Via> {
        Some(self.p.top_via.get_or_init(|| {
            Via::parse(self.str_at(self.p.top_via_range.clone())).unwrap_or(Via {
                transport: String::new(),
                host: super::uri::Host::Domain(String::new()),
                port: None,
                params: Vec::new(),
            })
        }))
    }

    /// The Call-ID.
    pub fn call_id(&self) -> &str {
        self.str_at(self.p.call_id.clone())
    }

    /// The CSeq.
    pub fn cseq(&self) -> &CSeq {
        &self.p.cseq
    }

    /// The From address.
    pub fn from(&self) -> &NameAddr {
        self.p
            .from
            .get_or_init(|| self.addr_at(self.p.from_range.clone()))
    }

    /// The To address.
    pub fn to(&self) -> &NameAddr {
        self.p
            .to
            .get_or_init(|| self.addr_at(self.p.to_range.clone()))
    }

    /// Builds an address validated at parse time.
    fn addr_at(&self, r: Range<usize>) -> NameAddr {
        NameAddr::parse(self.str_at(r)).unwrap_or_else(|_| NameAddr::new(unreachable_uri()))
    }

    /// Max-Forwards, when present and at most 255 (larger values count as absent).
    pub fn max_forwards(&self) -> Option<u32> {
        self.p.max_forwards
    }

    /// Route values, in order.
    pub fn routes(&self) -> Result<Vec<NameAddr>, ParseError> {
        self.addr_list(&HeaderName::Route)
    }

    /// Record-Route values, in order.
    pub fn record_routes(&self) -> Result<Vec<NameAddr>, ParseError> {
        self.addr_list(&HeaderName::RecordRoute)
    }

    /// Contact values, in order. A `Contact: *` (REGISTER, RFC 3261 §10.2.2)
    /// contributes nothing; see [`Message::contact_is_star`].
    pub fn contacts(&self) -> Result<Vec<NameAddr>, ParseError> {
        self.addr_list(&HeaderName::Contact)
    }

    /// Whether a Contact field is the wildcard `*`.
    pub fn contact_is_star(&self) -> bool {
        self.p
            .fields
            .iter()
            .any(|f| f.name == HeaderName::Contact && self.str_at(f.value()) == "*")
    }

    /// The body (Content-Length octets, or the rest of the datagram).
    pub fn body(&self) -> &[u8] {
        &self.buf[self.p.body.clone()]
    }

    /// The exact wire bytes of this message (no trailing junk).
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// The wire bytes as a shared buffer (cheap clone).
    pub fn to_bytes(&self) -> Bytes {
        self.buf.clone()
    }

    /// The top Via's branch, if any (found at parse time, no allocation).
    pub fn branch(&self) -> Option<&str> {
        self.p.branch.map(|s| self.str_at(s.range()))
    }

    /// The top Via's sent-by: the host as written (an IPv6 reference with
    /// its brackets) and the port, if any (found at parse time).
    pub fn top_via_sent_by(&self) -> (&str, Option<u16>) {
        (
            self.str_at(self.p.top_via_host.range()),
            self.p.top_via_port,
        )
    }

    /// Whether the top Via has an `rport` parameter (RFC 3581).
    pub fn top_via_rport(&self) -> bool {
        self.p.top_via_rport
    }

    /// The From tag, if any (found at parse time, no allocation).
    pub fn from_tag(&self) -> Option<&str> {
        self.p.from_tag.map(|s| self.str_at(s.range()))
    }

    /// The To tag, if any (found at parse time, no allocation).
    pub fn to_tag(&self) -> Option<&str> {
        self.p.to_tag.map(|s| self.str_at(s.range()))
    }

    /// Every Via value, top first, as received (each element of a
    /// comma-separated list on its own). All were validated at parse time.
    pub fn via_values(&self) -> impl Iterator<Item = &str> {
        self.p
            .fields
            .iter()
            .filter(|f| f.name == HeaderName::Via)
            .flat_map(|f| {
                let v = self.str_at(f.value());
                split_list(v).map(move |(a, e)| &v[a..e])
            })
    }
}

fn check_addr_list(v: &str, name: &HeaderName) -> Result<(), ParseError> {
    // The usual `<uri>;params, <uri>;params` in one pass.
    match validate_angle_list(v) {
        Some(true) => return Ok(()),
        Some(false) => return Err(bad(name)),
        None => {}
    }
    for (a, e) in split_list(v) {
        if !validate_name_addr(&v[a..e]) {
            return Err(bad(name));
        }
    }
    Ok(())
}

/// Stands in for a typed view whose text was validated at parse time, so
/// building it cannot fail; never observed.
fn unreachable_uri() -> Uri {
    Uri::Other {
        scheme: String::new(),
        rest: String::new(),
    }
}

fn parse_start_line(line: &str) -> Result<Start, ParseError> {
    let lb = line.as_bytes();
    let sp1 = memchr::memchr(b' ', lb).ok_or(ParseError::BadStartLine)?;
    let first = &line[..sp1];
    if first.len() >= 4 && first.as_bytes()[..4].eq_ignore_ascii_case(b"SIP/") {
        check_version(first)?;
        let rest = &line[sp1 + 1..];
        let (code, reason) = match memchr::memchr(b' ', rest.as_bytes()) {
            Some(s) => (&rest[..s], sp1 + 1 + s + 1..line.len()),
            None => (rest, line.len()..line.len()),
        };
        if code.len() != 3 || !code.bytes().all(|c| c.is_ascii_digit()) {
            return Err(ParseError::BadStatus);
        }
        let status: u16 = code.parse().map_err(|_| ParseError::BadStatus)?;
        if !(100..=699).contains(&status) {
            return Err(ParseError::BadStatus);
        }
        if line[reason.clone()]
            .bytes()
            .any(|c| c.is_ascii_control() && c != b'\t')
        {
            return Err(ParseError::BadStatus);
        }
        return Ok(Start::Response { status, reason });
    }
    // The usual `Method SP URI SP SIP/2.0` in one search: the first SP or
    // HTAB after the method is a SP followed by the version and nothing
    // else, so it is the last SP, the version is right and the URI holds
    // no LWS. Otherwise the checks one by one.
    let fast = memchr::memchr2(b' ', b'\t', &lb[sp1 + 1..])
        .map(|k| sp1 + 1 + k)
        .filter(|&k| lb[k] == b' ' && &lb[k + 1..] == b"SIP/2.0");
    let sp2 = match fast {
        Some(sp2) => sp2,
        None => {
            let sp2 = memchr::memrchr(b' ', lb).ok_or(ParseError::BadStartLine)?;
            if sp2 == sp1 {
                return Err(ParseError::BadStartLine);
            }
            check_version(&line[sp2 + 1..])?;
            sp2
        }
    };
    let method: Method = first.parse()?;
    let uri_s = &line[sp1 + 1..sp2];
    if uri_s.is_empty()
        || (fast.is_none() && memchr::memchr2(b' ', b'\t', uri_s.as_bytes()).is_some())
    {
        return Err(ParseError::BadRequestUri);
    }
    // RFC 3261 §19.1.1, Table 1: headers are not allowed in a Request-URI.
    super::uri::validate_request_uri(uri_s).map_err(|_| ParseError::BadRequestUri)?;
    Ok(Start::Request {
        method,
        uri: sp1 + 1..sp2,
    })
}
