//! A small scripted SIP user agent over UDP: the caller and the callee at
//! the two ends of a test call. It builds requests and responses as RFC 3261
//! §8 and §12 say (dialog route sets from Record-Route, ACK and BYE along
//! them) so that the proxies in between are exercised as by real phones.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use peering_proto::msg::{HeaderName, Message, Method, Uri};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// A UDP endpoint that sends text and receives parsed messages.
#[derive(Clone)]
pub struct UdpUa {
    socket: Arc<UdpSocket>,
    /// The bound address.
    pub addr: SocketAddr,
}

impl UdpUa {
    /// Binds on 127.0.0.1 at `port` (0 for any).
    pub async fn bind(port: u16) -> Self {
        Self::bind_ip(std::net::Ipv4Addr::LOCALHOST, port).await
    }

    /// Binds on another loopback address (127.0.0.2, ...) to look like
    /// another peer.
    pub async fn bind_ip(ip: std::net::Ipv4Addr, port: u16) -> Self {
        let socket = UdpSocket::bind(SocketAddr::from((ip, port)))
            .await
            .expect("bind UA");
        let addr = socket.local_addr().expect("UA addr");
        Self {
            socket: Arc::new(socket),
            addr,
        }
    }

    /// Sends a message.
    pub async fn send(&self, to: SocketAddr, text: &str) {
        self.socket
            .send_to(text.as_bytes(), to)
            .await
            .expect("UA send");
    }

    /// Sends raw bytes (which need not be UTF-8).
    pub async fn send_bytes(&self, to: SocketAddr, bytes: &[u8]) {
        self.socket.send_to(bytes, to).await.expect("UA send");
    }

    /// The next datagram as it came, parsable or not.
    pub async fn recv_raw(&self, timeout: Duration) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; 65_535];
        let got = tokio::time::timeout(timeout, self.socket.recv_from(&mut buf)).await;
        let Ok(Ok((len, _))) = got else {
            return None;
        };
        buf.truncate(len);
        Some(buf)
    }

    /// The next parsable message, or `None` after `timeout`.
    pub async fn recv(&self, timeout: Duration) -> Option<(Message, SocketAddr)> {
        let mut buf = vec![0u8; 65_535];
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let got = tokio::time::timeout_at(deadline, self.socket.recv_from(&mut buf)).await;
            let Ok(Ok((len, from))) = got else {
                return None;
            };
            if let Ok(msg) = Message::parse(Bytes::copy_from_slice(&buf[..len])) {
                return Some((msg, from));
            }
        }
    }

    /// Waits for a response with CSeq method `method` whose status
    /// satisfies `pred`, skipping others; requests are returned to the
    /// caller through `others`.
    pub async fn expect_response(
        &self,
        method: Method,
        pred: impl Fn(u16) -> bool,
        timeout: Duration,
        seen: &mut Vec<u16>,
    ) -> Option<Message> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let (msg, _) = self.recv(left).await?;
            if let Some(status) = msg.status()
                && msg.cseq().method == method
            {
                seen.push(status);
                if pred(status) {
                    return Some(msg);
                }
            }
        }
    }
}

/// A random token for tags, branches and Call-IDs.
pub fn token() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// What the callee does with an INVITE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// 180 Ringing, then 200 OK.
    RingThenAnswer,
    /// 180 Ringing, then this final status (e.g. 486).
    RingThenReject(u16),
    /// 180 Ringing and nothing more (until CANCEL).
    RingForever,
}

/// What the callee saw, for assertions.
#[derive(Debug, Default, Clone)]
pub struct CalleeLog {
    /// Request methods received, in order (retransmissions included).
    pub requests: Vec<String>,
    /// Request-URIs of received INVITEs.
    pub invite_uris: Vec<String>,
    /// Full text of the first INVITE received.
    pub first_invite: Option<String>,
    /// Full text of the last INVITE received.
    pub last_invite: Option<String>,
}

/// A callee on UDP that answers by `answer` until dropped.
pub struct Callee {
    /// The callee's address.
    pub addr: SocketAddr,
    /// What it saw.
    pub log: Arc<Mutex<CalleeLog>>,
    task: tokio::task::JoinHandle<()>,
    /// Requests the callee should send in-dialog (e.g. a BYE), executed by
    /// [`Callee::hang_up`].
    commands: mpsc::Sender<()>,
}

impl Drop for Callee {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn header_lines(msg: &Message, name: &HeaderName, label: &str) -> String {
    msg.header_values(name)
        .into_iter()
        .map(|v| format!("{label}: {}\r\n", v.trim()))
        .collect()
}

/// A response to `req` as a UAS builds it (RFC 3261 §8.2.6): Vias, From,
/// To with `to_tag`, Call-ID, CSeq, and for dialog-creating responses the
/// Record-Route and a Contact.
pub fn response(
    req: &Message,
    status: u16,
    reason: &str,
    to_tag: &str,
    contact: SocketAddr,
) -> String {
    let to = req.header(&HeaderName::To).unwrap_or_default().trim();
    let to = if to.contains(";tag=") || status == 100 {
        to.to_owned()
    } else {
        format!("{to};tag={to_tag}")
    };
    let mut text = format!("SIP/2.0 {status} {reason}\r\n");
    text.push_str(&header_lines(req, &HeaderName::Via, "Via"));
    let dialog = req.method() == Some(&Method::Invite) && (101..300).contains(&status);
    if dialog {
        text.push_str(&header_lines(req, &HeaderName::RecordRoute, "Record-Route"));
        text.push_str(&format!("Contact: <sip:callee@{contact}>\r\n"));
    }
    text.push_str(&format!(
        "From: {}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {} {}\r\nContent-Length: 0\r\n\r\n",
        req.header(&HeaderName::From).unwrap_or_default().trim(),
        req.call_id(),
        req.cseq().seq,
        req.cseq().method
    ));
    text
}

impl Callee {
    /// Starts a callee on `port` (0 for any).
    pub async fn start(port: u16, answer: Answer) -> Self {
        Self::start_on(std::net::Ipv4Addr::LOCALHOST, port, answer).await
    }

    /// Starts a callee on another loopback address (127.0.0.2, ...), to look
    /// like another peer.
    pub async fn start_on(ip: std::net::Ipv4Addr, port: u16, answer: Answer) -> Self {
        let ua = UdpUa::bind_ip(ip, port).await;
        let addr = ua.addr;
        let log = Arc::new(Mutex::new(CalleeLog::default()));
        let (commands, mut command_rx) = mpsc::channel::<()>(4);
        let task_log = log.clone();
        let task = tokio::spawn(async move {
            let to_tag = token();
            let mut pending_invite: Option<(Message, SocketAddr)> = None;
            let mut dialog: Option<(Message, SocketAddr)> = None;
            loop {
                let received = tokio::select! {
                    r = ua.recv(Duration::from_secs(3600)) => r,
                    Some(()) = command_rx.recv() => {
                        if let Some((invite, _)) = &dialog {
                            let (bye, to) = callee_bye(invite, &to_tag, addr);
                            ua.send(to, &bye).await;
                        }
                        continue;
                    }
                };
                let Some((msg, from)) = received else {
                    continue;
                };
                let Some(method) = msg.method().cloned() else {
                    continue;
                };
                {
                    let mut log = task_log.lock().expect("log");
                    log.requests.push(method.as_str().to_owned());
                    if method == Method::Invite {
                        if let Some(uri) = msg.request_uri() {
                            log.invite_uris.push(uri.to_string());
                        }
                        let text = String::from_utf8_lossy(msg.as_bytes()).into_owned();
                        if log.first_invite.is_none() {
                            log.first_invite = Some(text.clone());
                        }
                        log.last_invite = Some(text);
                    }
                }
                match method {
                    Method::Invite => {
                        ua.send(from, &response(&msg, 180, "Ringing", &to_tag, addr))
                            .await;
                        // Ring a moment, as a phone does: proxies with several
                        // workers (Kamailio) may otherwise reorder 180 and 200.
                        tokio::time::sleep(Duration::from_millis(30)).await;
                        match answer {
                            Answer::RingThenAnswer => {
                                ua.send(from, &response(&msg, 200, "OK", &to_tag, addr))
                                    .await;
                                dialog = Some((msg.clone(), from));
                            }
                            Answer::RingThenReject(code) => {
                                ua.send(from, &response(&msg, code, "Busy Here", &to_tag, addr))
                                    .await;
                            }
                            Answer::RingForever => {}
                        }
                        pending_invite = Some((msg, from));
                    }
                    Method::Cancel => {
                        ua.send(from, &response(&msg, 200, "OK", &to_tag, addr))
                            .await;
                        if let Some((invite, invite_from)) = pending_invite.take() {
                            ua.send(
                                invite_from,
                                &response(&invite, 487, "Request Terminated", &to_tag, addr),
                            )
                            .await;
                        }
                    }
                    Method::Ack => {}
                    _ => {
                        ua.send(from, &response(&msg, 200, "OK", &to_tag, addr))
                            .await;
                    }
                }
            }
        });
        Self {
            addr,
            log,
            task,
            commands,
        }
    }

    /// Makes the callee send a BYE in the established dialog.
    pub async fn hang_up(&self) {
        let _ = self.commands.send(()).await;
    }

    /// A copy of what the callee saw.
    pub fn log(&self) -> CalleeLog {
        self.log.lock().expect("log").clone()
    }
}

/// The BYE a callee sends: Request-URI = the caller's Contact, Route = the
/// Record-Route of the INVITE in order (RFC 3261 §12.1.1), From/To swapped.
fn callee_bye(invite: &Message, to_tag: &str, contact: SocketAddr) -> (String, SocketAddr) {
    let routes: Vec<String> = invite
        .header_values(&HeaderName::RecordRoute)
        .into_iter()
        .map(|v| v.trim().to_owned())
        .collect();
    let remote = invite
        .contacts()
        .ok()
        .and_then(|c| c.into_iter().next())
        .map(|c| c.uri.to_string())
        .unwrap_or_default();
    let first_hop = routes
        .first()
        .map(|r| uri_addr(r))
        .unwrap_or_else(|| uri_addr(&remote));
    let mut text = format!(
        "BYE {remote} SIP/2.0\r\nVia: SIP/2.0/UDP {contact};branch=z9hG4bK{};rport\r\nMax-Forwards: 70\r\n",
        token()
    );
    for r in &routes {
        text.push_str(&format!("Route: {r}\r\n"));
    }
    let to = invite.header(&HeaderName::To).unwrap_or_default().trim();
    text.push_str(&format!(
        "From: {to};tag={to_tag}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n",
        invite.header(&HeaderName::From).unwrap_or_default().trim(),
        invite.call_id()
    ));
    (text, first_hop)
}

/// The host:port of a URI (in `<...>` or bare), defaulting to port 5060.
pub fn uri_addr(text: &str) -> SocketAddr {
    let inner = text
        .trim()
        .trim_start_matches('<')
        .split('>')
        .next()
        .unwrap_or_default();
    let uri: Uri = inner.parse().expect("route uri");
    let Uri::Sip(sip) = uri else {
        panic!("not a sip uri: {text}")
    };
    let host = sip.host.to_string();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    SocketAddr::new(
        host.parse().expect("numeric host in test"),
        sip.port.unwrap_or(5060),
    )
}

/// A caller's call, established or not.
pub struct Call {
    /// The caller's endpoint.
    pub ua: UdpUa,
    /// Where the INVITE was sent (the caller's outbound proxy).
    pub proxy: SocketAddr,
    /// The INVITE's Call-ID.
    pub call_id: String,
    /// The caller's From tag.
    pub from_tag: String,
    /// Request-URI of the INVITE.
    pub uri: String,
    /// The INVITE's top Via branch.
    pub branch: String,
    /// The calling number in From.
    pub caller: String,
    /// Final response to the INVITE, once received.
    pub final_response: Option<Message>,
    /// Every status seen for the INVITE, in order.
    pub statuses: Vec<u16>,
}

impl Call {
    /// The INVITE text.
    fn invite_text(&self) -> String {
        format!(
            "INVITE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch={branch};rport\r\nMax-Forwards: 70\r\n\
             From: <sip:{caller}@{me}>;tag={tag}\r\nTo: <{uri}>\r\nCall-ID: {cid}\r\nCSeq: 1 INVITE\r\n\
             Contact: <sip:caller@{me}>\r\nContent-Type: application/sdp\r\nContent-Length: {len}\r\n\r\n{sdp}",
            caller = self.caller,
            uri = self.uri,
            me = self.ua.addr,
            branch = self.branch,
            tag = self.from_tag,
            cid = self.call_id,
            len = SDP.len(),
            sdp = SDP
        )
    }

    /// Sends an INVITE for `uri` through `proxy`.
    pub async fn invite(proxy: SocketAddr, uri: &str) -> Self {
        Self::invite_from(std::net::Ipv4Addr::LOCALHOST, "+15550100001", proxy, uri).await
    }

    /// Sends an INVITE from the loopback address `ip` with `caller` in From.
    pub async fn invite_from(
        ip: std::net::Ipv4Addr,
        caller: &str,
        proxy: SocketAddr,
        uri: &str,
    ) -> Self {
        let ua = UdpUa::bind_ip(ip, 0).await;
        let call = Self {
            caller: caller.to_owned(),
            ua,
            proxy,
            call_id: format!("{}@test", token()),
            from_tag: token(),
            uri: uri.to_owned(),
            branch: format!("z9hG4bK{}", token()),
            final_response: None,
            statuses: Vec::new(),
        };
        call.ua.send(proxy, &call.invite_text()).await;
        call
    }

    /// Waits for the final response to the INVITE (retransmitting the INVITE
    /// while nothing at all arrives, as a UDP client transaction would).
    pub async fn wait_final(&mut self, timeout: Duration) -> Option<u16> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut got_any = false;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return None;
            }
            let step = if got_any {
                left
            } else {
                left.min(Duration::from_millis(500))
            };
            let mut seen = Vec::new();
            let resp = self
                .ua
                .expect_response(Method::Invite, |s| s >= 200, step, &mut seen)
                .await;
            got_any |= !seen.is_empty();
            self.statuses.extend(seen);
            match resp {
                Some(resp) => {
                    let status = resp.status();
                    if status.is_some_and(|s| s >= 300) {
                        self.ack_non_2xx(&resp).await;
                    }
                    self.final_response = Some(resp);
                    return status;
                }
                None if !got_any => {
                    let text = self.invite_text();
                    self.ua.send(self.proxy, &text).await;
                }
                None => {}
            }
        }
    }

    /// Waits until a provisional response with `status` arrives.
    pub async fn wait_provisional(&mut self, status: u16, timeout: Duration) -> bool {
        let mut seen = Vec::new();
        let got = self
            .ua
            .expect_response(Method::Invite, |s| s == status, timeout, &mut seen)
            .await
            .is_some();
        self.statuses.extend(seen);
        got
    }

    /// RFC 3261 §17.1.1.3: the ACK of a non-2xx final response, to the
    /// same proxy with the INVITE's branch.
    async fn ack_non_2xx(&self, resp: &Message) {
        let text = format!(
            "ACK {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch={branch};rport\r\nMax-Forwards: 70\r\n\
             From: <sip:{caller}@{me}>;tag={tag}\r\nTo: {to}\r\nCall-ID: {cid}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
            uri = self.uri,
            me = self.ua.addr,
            branch = self.branch,
            caller = self.caller,
            tag = self.from_tag,
            to = resp.header(&HeaderName::To).unwrap_or_default().trim(),
            cid = self.call_id
        );
        self.ua.send(self.proxy, &text).await;
    }

    /// The route set (Record-Route reversed, §12.1.2) and remote target of
    /// the established dialog.
    fn dialog(&self) -> (Vec<String>, String, String) {
        let resp = self.final_response.as_ref().expect("call answered");
        let mut routes: Vec<String> = resp
            .header_values(&HeaderName::RecordRoute)
            .into_iter()
            .map(|v| v.trim().to_owned())
            .collect();
        routes.reverse();
        let target = resp
            .contacts()
            .ok()
            .and_then(|c| c.into_iter().next())
            .map(|c| c.uri.to_string())
            .expect("contact in 2xx");
        let to = resp
            .header(&HeaderName::To)
            .unwrap_or_default()
            .trim()
            .to_owned();
        (routes, target, to)
    }

    /// Sends an in-dialog request (`ACK` for the 2xx or `BYE`) along the
    /// route set; returns the text sent.
    pub async fn in_dialog(&self, method: &str, cseq: u32) -> String {
        let (routes, target, to) = self.dialog();
        let first_hop = routes
            .first()
            .map(|r| uri_addr(r))
            .unwrap_or_else(|| uri_addr(&target));
        let mut text = format!(
            "{method} {target} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK{b};rport\r\nMax-Forwards: 70\r\n",
            me = self.ua.addr,
            b = token()
        );
        for r in &routes {
            text.push_str(&format!("Route: {r}\r\n"));
        }
        text.push_str(&format!(
            "From: <sip:{caller}@{me}>;tag={tag}\r\nTo: {to}\r\nCall-ID: {cid}\r\nCSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n",
            caller = self.caller,
            me = self.ua.addr,
            tag = self.from_tag,
            cid = self.call_id
        ));
        self.ua.send(first_hop, &text).await;
        text
    }

    /// Sends a CANCEL for the INVITE (same branch, §9.1).
    pub async fn cancel(&self) {
        let text = format!(
            "CANCEL {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch={branch};rport\r\nMax-Forwards: 70\r\n\
             From: <sip:{caller}@{me}>;tag={tag}\r\nTo: <{uri}>\r\nCall-ID: {cid}\r\nCSeq: 1 CANCEL\r\nContent-Length: 0\r\n\r\n",
            caller = self.caller,
            uri = self.uri,
            me = self.ua.addr,
            branch = self.branch,
            tag = self.from_tag,
            cid = self.call_id
        );
        self.ua.send(self.proxy, &text).await;
    }

    /// Waits for a response to `method` with `status`.
    pub async fn wait_for(&self, method: Method, status: u16, timeout: Duration) -> bool {
        let mut seen = Vec::new();
        self.ua
            .expect_response(method, |s| s == status, timeout, &mut seen)
            .await
            .is_some()
    }

    /// Waits for an in-dialog request from the callee side (e.g. a BYE) and
    /// answers it 200.
    pub async fn answer_request(&self, method: Method, timeout: Duration) -> Option<Message> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let (msg, from) = self.ua.recv(left).await?;
            if msg.method() == Some(&method) {
                self.ua
                    .send(from, &response(&msg, 200, "OK", "unused", self.ua.addr))
                    .await;
                return Some(msg);
            }
        }
    }
}

/// A minimal SDP offer.
pub const SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";
