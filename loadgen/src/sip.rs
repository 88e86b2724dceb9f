//! Building the few SIP messages a load generator sends, straight into a
//! byte buffer (no intermediate strings), and reading the few fields it
//! needs from received ones.

use std::fmt::Write as _;
use std::net::SocketAddr;

use bytes::{BufMut, Bytes, BytesMut};
use peering_proto::msg::{HeaderName, Message};

/// The transport a flow uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// UDP (with RFC 3261 retransmissions).
    Udp,
    /// TCP.
    Tcp,
    /// TLS over TCP.
    Tls,
}

impl Transport {
    /// The Via token (`UDP`, `TCP`, `TLS`).
    pub fn via_token(self) -> &'static str {
        match self {
            Self::Udp => "UDP",
            Self::Tcp => "TCP",
            Self::Tls => "TLS",
        }
    }

    /// The `transport` URI parameter, with its leading `;` (empty for UDP).
    pub fn uri_param(self) -> &'static str {
        match self {
            Self::Udp => "",
            Self::Tcp => ";transport=tcp",
            Self::Tls => ";transport=tls",
        }
    }

    /// Whether the transport is unreliable (retransmissions apply).
    pub fn is_unreliable(self) -> bool {
        self == Self::Udp
    }
}

/// A small SDP offer/answer so that messages have a realistic size.
pub const SDP: &str = "v=0\r\no=- 2890844526 2890844526 IN IP4 127.0.0.1\r\ns=-\r\n\
c=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 49170 RTP/AVP 0 8 101\r\n\
a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\na=ptime:20\r\na=sendrecv\r\n";

/// Appends `name: value\r\n`.
pub fn put_header(buf: &mut BytesMut, name: &str, value: &str) {
    buf.put_slice(name.as_bytes());
    buf.put_slice(b": ");
    buf.put_slice(value.as_bytes());
    buf.put_slice(b"\r\n");
}

/// Appends a decimal number without formatting machinery.
pub fn put_u64(buf: &mut BytesMut, mut n: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.put_slice(&tmp[i..]);
}

/// Appends a lowercase hexadecimal number.
pub fn put_hex(buf: &mut BytesMut, mut n: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut tmp = [0u8; 16];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = DIGITS[(n & 15) as usize];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    buf.put_slice(&tmp[i..]);
}

/// Appends `host:port` of a socket address (IPv6 in brackets).
pub fn put_addr(buf: &mut BytesMut, addr: SocketAddr) {
    // Rare enough per message (Via, Contact) that `write!` is acceptable;
    // callers cache the rendered form where it matters.
    let mut s = String::with_capacity(48);
    let _ = write!(s, "{addr}");
    buf.put_slice(s.as_bytes());
}

/// Appends `Content-Length: n\r\n\r\n` and the body.
pub fn put_body(buf: &mut BytesMut, content_type: Option<&str>, body: &[u8]) {
    if let Some(ct) = content_type {
        put_header(buf, "Content-Type", ct);
    }
    buf.put_slice(b"Content-Length: ");
    put_u64(buf, body.len() as u64);
    buf.put_slice(b"\r\n\r\n");
    buf.put_slice(body);
}

/// The value of the `tag` parameter of a From or To header value.
pub fn tag_of(value: &str) -> Option<&str> {
    // Parameters follow the closing '>' when there is one.
    let params = match value.rfind('>') {
        Some(i) => &value[i..],
        None => value,
    };
    let bytes = params.as_bytes();
    let mut start = 0;
    while let Some(pos) = params[start..].find(';') {
        let p = start + pos + 1;
        let rest = &params[p..];
        let rest_trim = rest.trim_start();
        if rest_trim.len() >= 4 && rest_trim[..3].eq_ignore_ascii_case("tag") {
            let after = rest_trim[3..].trim_start();
            if let Some(v) = after.strip_prefix('=') {
                let v = v.trim_start();
                let end = v
                    .find(|c: char| c == ';' || c == ',' || c.is_ascii_whitespace())
                    .unwrap_or(v.len());
                return Some(&v[..end]);
            }
        }
        start = p;
        if start >= bytes.len() {
            break;
        }
    }
    None
}

/// The URI inside a name-addr (`<...>`), or the value itself for an
/// addr-spec without brackets (parameters cut off).
pub fn uri_of(value: &str) -> &str {
    if let (Some(a), Some(b)) = (value.find('<'), value.rfind('>'))
        && a < b
    {
        return &value[a + 1..b];
    }
    let v = value.trim();
    match v.find(';') {
        Some(i) => &v[..i],
        None => v,
    }
}

/// What a UAC needs from a response.
#[derive(Debug)]
pub struct ResponseView<'a> {
    /// Status code.
    pub status: u16,
    /// The CSeq method is INVITE.
    pub is_invite: bool,
    /// The CSeq method is CANCEL.
    pub is_cancel: bool,
    /// The CSeq method is BYE.
    pub is_bye: bool,
    /// Call-ID.
    pub call_id: &'a str,
    /// The whole To header value.
    pub to: &'a str,
}

impl<'a> ResponseView<'a> {
    /// Reads the fields from a parsed response; `None` for a request.
    pub fn of(msg: &'a Message) -> Option<Self> {
        let status = msg.status()?;
        let method = &msg.cseq().method;
        use peering_proto::msg::Method;
        Some(Self {
            status,
            is_invite: *method == Method::Invite,
            is_cancel: *method == Method::Cancel,
            is_bye: *method == Method::Bye,
            call_id: msg.call_id(),
            to: msg.header(&HeaderName::To).unwrap_or(""),
        })
    }
}

/// Builds a response to `req` with the given status, copying Via, From,
/// Call-ID, CSeq (and Record-Route for dialog-creating responses), adding
/// `to_tag` to To when it has none. `contact` and `sdp` are added when given.
pub fn response(
    req: &Message,
    status: u16,
    reason: &str,
    to_tag: &str,
    contact: Option<&str>,
    with_record_route: bool,
    sdp: Option<&str>,
) -> Bytes {
    let mut buf = BytesMut::with_capacity(512 + sdp.map_or(0, str::len));
    buf.put_slice(b"SIP/2.0 ");
    put_u64(&mut buf, u64::from(status));
    buf.put_u8(b' ');
    buf.put_slice(reason.as_bytes());
    buf.put_slice(b"\r\n");
    for (name, value) in req.headers() {
        match name {
            HeaderName::Via | HeaderName::From | HeaderName::CallId | HeaderName::CSeq => {
                put_header(&mut buf, name.as_str(), value);
            }
            HeaderName::RecordRoute if with_record_route => {
                put_header(&mut buf, name.as_str(), value);
            }
            HeaderName::To => {
                buf.put_slice(b"To: ");
                buf.put_slice(value.as_bytes());
                if tag_of(value).is_none() && !to_tag.is_empty() {
                    buf.put_slice(b";tag=");
                    buf.put_slice(to_tag.as_bytes());
                }
                buf.put_slice(b"\r\n");
            }
            _ => {}
        }
    }
    if let Some(c) = contact {
        put_header(&mut buf, "Contact", c);
    }
    match sdp {
        Some(body) => put_body(&mut buf, Some("application/sdp"), body.as_bytes()),
        None => put_body(&mut buf, None, b""),
    }
    buf.freeze()
}
