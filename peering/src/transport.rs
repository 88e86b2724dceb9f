//! SIP transports at the tokio edge: UDP sockets, TCP and TLS listeners,
//! outbound connections with reuse, and stream framing through the pure
//! `StreamDecoder`.
//!
//! Every received message is parsed here and handed to the core as
//! [`Input::Message`]; requests that fail to parse are answered here with
//! the 400/505 the parser chose (RFC 3261 §16.3 item 1), and responses that
//! fail to parse are dropped and counted. Responses go back over the
//! connection the request came on (§18.2.2); outbound requests reuse an open
//! connection to the same peer (RFC 5923 style) or open one.

use std::collections::HashMap;
use std::io::{IoSlice, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd as _, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use nix::sys::socket::{
    ControlMessageOwned, MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, setsockopt, sockopt,
};
use nix::sys::time::TimeSpec;
use peering_proto::msg::{self, Frame, Message, StreamDecoder};
use peering_proto::proxy::{ConnId, Flow, Transmit, TransmitToken, Transport};
use rustix::net::{MMsgHdr, SendAncillaryBuffer, SendFlags, SocketAddrAny};
use rustls_pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, Interest};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tracing::{debug, info, warn};

use crate::metrics::Metrics;
use crate::overload::{self, QueueMonitor, ShedSignal};

/// What the transports hand to the core task.
#[derive(Debug)]
pub enum Input {
    /// A parsed message and where it came from.
    Message(Message, Flow),
    /// A transmission failed.
    TransportError(TransmitToken),
}

/// Settings of the transports.
#[derive(Debug, Clone)]
pub struct TransportSettings {
    /// A UDP receive queue whose smallest kernel queueing delay over
    /// [`overload::INTERVAL`] reaches this is standing: new calls are shed
    /// (`None`: the queues are not watched).
    pub udp_queue_target: Option<Duration>,
    /// Largest message accepted on a stream.
    pub max_message_size: usize,
    /// Idle connections are closed after this long.
    pub idle_timeout: Duration,
    /// TLS handshake (and TCP connect) limit.
    pub handshake_timeout: Duration,
}

/// What a packet filter is asked about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Traffic {
    /// A datagram that is not a response (a request, or what may be one),
    /// or a new connection: counted against the source's flood threshold.
    Request,
    /// A datagram that starts as a response (`SIP/`): from an address the
    /// node sent requests to, an answer that counts nothing; from any other,
    /// counted like a request.
    Response,
}

impl Traffic {
    /// Classifies a datagram by its first octets (after the CRLFs a sender
    /// may put before the start line), without parsing it.
    pub fn of_datagram(data: &[u8]) -> Self {
        let start = data
            .iter()
            .position(|b| !matches!(b, b'\r' | b'\n'))
            .unwrap_or(data.len());
        if data[start..].starts_with(b"SIP/") {
            Self::Response
        } else {
            Self::Request
        }
    }
}

/// A check run on every datagram and connection before any parsing (flood
/// defence): `false` drops it.
pub trait PacketFilter: Send + Sync + 'static {
    /// Whether `traffic` from `ip` may be looked at.
    fn admit(&self, ip: std::net::IpAddr, traffic: Traffic) -> bool;

    /// The node sent requests over UDP to these addresses (one turn's, in
    /// order, repeats included): their responses are answers.
    fn expect_responses(&self, to: &[std::net::IpAddr]);
}

/// A bound UDP socket.
#[derive(Debug, Clone)]
struct UdpEndpoint {
    local: SocketAddr,
    socket: Arc<UdpSocket>,
}

/// The certificate chain a TLS peer presented (leaf first).
pub type PeerCertificates = Arc<Vec<CertificateDer<'static>>>;

#[derive(Debug)]
struct ConnEntry {
    tx: mpsc::Sender<Outgoing>,
    transport: Transport,
    remote: SocketAddr,
    peer_certificates: Option<PeerCertificates>,
}

#[derive(Debug, Default)]
struct ConnTable {
    by_id: HashMap<ConnId, ConnEntry>,
    by_peer: HashMap<(Transport, SocketAddr), ConnId>,
}

/// All transports of a node.
#[derive(Clone)]
pub struct Transports {
    udp: Arc<Vec<UdpEndpoint>>,
    conns: Arc<Mutex<ConnTable>>,
    next_conn: Arc<AtomicU64>,
    input: mpsc::Sender<Input>,
    settings: TransportSettings,
    tls_connector: Option<TlsConnector>,
    metrics: Arc<Metrics>,
    filter: Option<Arc<dyn PacketFilter>>,
    shed: Arc<ShedSignal>,
}

impl std::fmt::Debug for Transports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transports")
            .field("udp", &self.udp)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Errors while binding the transports.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// A listener could not be bound.
    #[error("cannot bind {transport} on {address}: {source}")]
    Bind {
        /// The transport.
        transport: Transport,
        /// The address.
        address: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A TLS listener was configured without a TLS server configuration.
    #[error("TLS listener on {address} needs a [tls] certificate and key")]
    NoTlsConfig {
        /// The address.
        address: SocketAddr,
    },
}

/// A listener to bind.
#[derive(Debug, Clone)]
pub struct ListenSpec {
    /// Transport.
    pub transport: Transport,
    /// Address (port 0 picks a free port).
    pub address: SocketAddr,
}

/// What was bound.
#[derive(Debug, Clone)]
pub struct Bound {
    /// Transport.
    pub transport: Transport,
    /// The actual local address.
    pub address: SocketAddr,
}

impl Transports {
    /// Binds every listener and starts the receive tasks. Messages go to
    /// `input`.
    pub async fn bind(
        specs: &[ListenSpec],
        settings: TransportSettings,
        tls_acceptor: Option<TlsAcceptor>,
        tls_connector: Option<TlsConnector>,
        input: mpsc::Sender<Input>,
        metrics: Arc<Metrics>,
        filter: Option<Arc<dyn PacketFilter>>,
    ) -> Result<(Self, Vec<Bound>), TransportError> {
        let mut udp = Vec::new();
        let mut listeners = Vec::new();
        let mut bound = Vec::new();
        for spec in specs {
            let bind_err = |source| TransportError::Bind {
                transport: spec.transport,
                address: spec.address,
                source,
            };
            match spec.transport {
                Transport::Udp => {
                    let socket = bind_udp(spec.address).map_err(bind_err)?;
                    let local = socket.local_addr().map_err(bind_err)?;
                    udp.push(UdpEndpoint {
                        local,
                        socket: Arc::new(socket),
                    });
                    bound.push(Bound {
                        transport: Transport::Udp,
                        address: local,
                    });
                }
                Transport::Tcp | Transport::Tls => {
                    if spec.transport == Transport::Tls && tls_acceptor.is_none() {
                        return Err(TransportError::NoTlsConfig {
                            address: spec.address,
                        });
                    }
                    let listener = TcpListener::bind(spec.address).await.map_err(bind_err)?;
                    let local = listener.local_addr().map_err(bind_err)?;
                    bound.push(Bound {
                        transport: spec.transport,
                        address: local,
                    });
                    listeners.push((spec.transport, local, listener));
                }
            }
        }
        let transports = Self {
            udp: Arc::new(udp),
            conns: Arc::new(Mutex::new(ConnTable::default())),
            next_conn: Arc::new(AtomicU64::new(1)),
            input,
            settings,
            tls_connector,
            metrics,
            filter,
            shed: Arc::new(ShedSignal::new(Instant::now())),
        };
        for endpoint in transports.udp.iter() {
            tokio::spawn(transports.clone().udp_loop(endpoint.clone()));
        }
        for (transport, local, listener) in listeners {
            let acceptor = if transport == Transport::Tls {
                tls_acceptor.clone()
            } else {
                None
            };
            tokio::spawn(
                transports
                    .clone()
                    .accept_loop(transport, local, listener, acceptor),
            );
        }
        Ok((transports, bound))
    }

    async fn udp_loop(self, endpoint: UdpEndpoint) {
        let mut batch = RecvBatch::new();
        let mut monitor = self
            .settings
            .udp_queue_target
            .map(|target| QueueMonitor::new(target, overload::INTERVAL));
        let fd = endpoint.socket.as_raw_fd();
        loop {
            if let Err(e) = endpoint.socket.readable().await {
                warn!(error = %e, local = %endpoint.local, "udp socket failed");
                return;
            }
            // Drain the socket until it would block: one system call takes
            // up to RECV_BATCH datagrams, and one wake-up handles everything
            // queued.
            loop {
                match endpoint
                    .socket
                    .try_io(Interest::READABLE, || batch.receive(fd))
                {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => {
                        // ICMP errors surface here on some systems; keep serving.
                        debug!(error = %e, "udp receive error");
                        break;
                    }
                }
                if let Some(monitor) = monitor.as_mut() {
                    self.watch_queue(monitor, &batch);
                }
                for i in 0..batch.received.len() {
                    let Received {
                        len,
                        remote: Some(remote),
                        ..
                    } = batch.received[i]
                    else {
                        continue;
                    };
                    if !self
                        .udp_datagram(&endpoint, &batch.buffers[i][..len], remote)
                        .await
                    {
                        return;
                    }
                }
            }
        }
    }

    /// Feeds how long a batch's datagrams waited in the kernel, and the
    /// socket's drop count, to the queue monitor; a standing queue sheds
    /// new calls.
    fn watch_queue(&self, monitor: &mut QueueMonitor, batch: &RecvBatch) {
        // One clock reading per batch: the kernel stamps arrivals with the
        // wall clock.
        let now = Instant::now();
        let wall = SystemTime::now();
        for received in &batch.received {
            // A stamp in the future (the wall clock stepped back) is no delay.
            let delay = received
                .stamp
                .map(|stamp| wall.duration_since(stamp).unwrap_or(Duration::ZERO));
            if let Some(window) = monitor.observe(now, delay, received.drops) {
                let was = self.shed.shed_permille(now) > 0;
                self.shed.record(now, &window);
                if window.standing && !was {
                    warn!(
                        min_delay_ms = window.min_delay.map(|d| d.as_secs_f64() * 1e3),
                        dropped = window.dropped,
                        received = window.received,
                        "UDP receive queue standing: the node is not keeping up"
                    );
                } else if !window.standing && window.dropped > 0 {
                    // Losses that are not overload (a few in a burst, or
                    // one lossy interval after a pause: see
                    // `overload::LOSS_RATIO`): said, not acted on.
                    info!(
                        dropped = window.dropped,
                        received = window.received,
                        "UDP receive buffer overflowed for a moment; the senders retransmit"
                    );
                }
            }
        }
    }

    /// The overload signal of the UDP receive queues.
    pub fn shed_signal(&self) -> &Arc<ShedSignal> {
        &self.shed
    }

    /// Handles one received datagram; `false` when the node is stopping.
    async fn udp_datagram(&self, endpoint: &UdpEndpoint, data: &[u8], remote: SocketAddr) -> bool {
        if self.input.is_closed() {
            return false;
        }
        if !self.admits(remote.ip(), || Traffic::of_datagram(data)) {
            return true;
        }
        if data.iter().all(|b| matches!(b, b'\r' | b'\n' | 0)) {
            // Keep-alive or padding.
            return true;
        }
        let flow = Flow {
            transport: Transport::Udp,
            local: endpoint.local,
            remote,
            conn: None,
        };
        self.metrics
            .messages_received
            .fetch_add(1, Ordering::Relaxed);
        match Message::parse(Bytes::copy_from_slice(data)) {
            Ok(message) => self.input.send(Input::Message(message, flow)).await.is_ok(),
            Err(error) => {
                if let Some(reply) = self.reject_unparsable(data, &error) {
                    let _ = endpoint.socket.try_send_to(&reply, remote);
                }
                debug!(%remote, %error, "unparsable UDP message");
                true
            }
        }
    }

    /// Whether the packet filter (if any) admits traffic from `ip`; the
    /// traffic is classified only when there is a filter to ask.
    fn admits(&self, ip: std::net::IpAddr, traffic: impl FnOnce() -> Traffic) -> bool {
        self.filter.as_ref().is_none_or(|f| f.admit(ip, traffic()))
    }

    /// Counts an unparsable message and builds the error response for a
    /// request (None for a response, which is dropped).
    fn reject_unparsable(&self, data: &[u8], error: &msg::ParseError) -> Option<Bytes> {
        let looks_like_response = data.starts_with(b"SIP/");
        if looks_like_response {
            self.metrics
                .parse_errors_responses
                .fetch_add(1, Ordering::Relaxed);
            return None;
        }
        self.metrics
            .parse_errors_requests
            .fetch_add(1, Ordering::Relaxed);
        let reply = msg::parse_request_for_error_response(data);
        if let Some((status, reason)) = error.status() {
            self.metrics
                .incr_labelled("rejections", format!("{status} {reason}"));
        }
        reply
    }

    async fn accept_loop(
        self,
        transport: Transport,
        local: SocketAddr,
        listener: TcpListener,
        acceptor: Option<TlsAcceptor>,
    ) {
        loop {
            let (stream, remote) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    warn!(error = %e, %local, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            if self.input.is_closed() {
                return;
            }
            if !self.admits(remote.ip(), || Traffic::Request) {
                continue;
            }
            let _ = stream.set_nodelay(true);
            self.metrics
                .connections_accepted
                .fetch_add(1, Ordering::Relaxed);
            let this = self.clone();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                match acceptor {
                    None => {
                        let registered = this.register(transport, remote, None);
                        this.run_stream(transport, stream, local, remote, registered)
                            .await;
                    }
                    Some(acceptor) => {
                        let handshake = tokio::time::timeout(
                            this.settings.handshake_timeout,
                            acceptor.accept(stream),
                        )
                        .await;
                        match handshake {
                            Ok(Ok(tls)) => {
                                let certs = tls.get_ref().1.peer_certificates().map(|c| {
                                    Arc::new(c.iter().map(|d| d.clone().into_owned()).collect())
                                });
                                let registered = this.register(transport, remote, certs);
                                this.run_stream(transport, tls, local, remote, registered)
                                    .await;
                            }
                            Ok(Err(e)) => {
                                this.metrics
                                    .tls_handshake_failures
                                    .fetch_add(1, Ordering::Relaxed);
                                info!(%remote, error = %e, "TLS handshake failed");
                            }
                            Err(_) => {
                                this.metrics
                                    .tls_handshake_failures
                                    .fetch_add(1, Ordering::Relaxed);
                                info!(%remote, "TLS handshake timed out");
                            }
                        }
                    }
                }
            });
        }
    }

    /// Registers a connection and returns its id and send queue.
    fn register(
        &self,
        transport: Transport,
        remote: SocketAddr,
        peer_certificates: Option<PeerCertificates>,
    ) -> (ConnId, mpsc::Sender<Outgoing>, mpsc::Receiver<Outgoing>) {
        let id = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(256);
        let mut table = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        table.by_id.insert(
            id,
            ConnEntry {
                tx: tx.clone(),
                transport,
                remote,
                peer_certificates,
            },
        );
        table.by_peer.insert((transport, remote), id);
        (id, tx, rx)
    }

    fn unregister(&self, id: ConnId) {
        let mut table = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = table.by_id.remove(&id)
            && table.by_peer.get(&(entry.transport, entry.remote)) == Some(&id)
        {
            table.by_peer.remove(&(entry.transport, entry.remote));
        }
    }

    /// Runs one stream connection: reads and frames messages into the core,
    /// writes what is queued for it, closes when idle.
    async fn run_stream<S>(
        self,
        transport: Transport,
        stream: S,
        local: SocketAddr,
        remote: SocketAddr,
        registered: (ConnId, mpsc::Sender<Outgoing>, mpsc::Receiver<Outgoing>),
    ) where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        // One queue per connection: the core's sends (through the table)
        // and this task's own replies (`local_tx`) share it, so the writer
        // drains everything queued before it closes.
        let (id, local_tx, mut rx) = registered;
        self.metrics
            .connections_open
            .fetch_add(1, Ordering::Relaxed);
        let (mut reader, mut writer) = tokio::io::split(stream);
        let this = self.clone();
        let writer_task = tokio::spawn(async move {
            // Everything queued when the writer wakes goes out in one write
            // (one TLS record, one system call) instead of one per message.
            let mut batch = BytesMut::new();
            // The tokens of the messages in the current write (`None` for
            // the connection's own replies).
            let mut tokens: Vec<Option<TransmitToken>> = Vec::new();
            while let Some(first) = rx.recv().await {
                tokens.clear();
                tokens.push(first.token);
                let bytes = match rx.try_recv() {
                    Err(_) => first.bytes,
                    Ok(second) => {
                        batch.clear();
                        batch.extend_from_slice(&first.bytes);
                        batch.extend_from_slice(&second.bytes);
                        tokens.push(second.token);
                        while batch.len() < WRITE_BATCH_BYTES {
                            match rx.try_recv() {
                                Ok(more) => {
                                    batch.extend_from_slice(&more.bytes);
                                    tokens.push(more.token);
                                }
                                Err(_) => break,
                            }
                        }
                        batch.split().freeze()
                    }
                };
                if writer.write_all(&bytes).await.is_err() {
                    // The connection is gone: what this write carried and
                    // what waits behind it never reaches the peer.
                    debug!(%remote, "stream write failed");
                    for token in tokens.drain(..) {
                        this.fail(token);
                    }
                    this.fail_queued(&mut rx);
                    break;
                }
            }
            let _ = writer.shutdown().await;
        });
        let mut decoder = StreamDecoder::new(self.settings.max_message_size);
        let mut buf = BytesMut::with_capacity(8 * 1024);
        let flow = Flow {
            transport,
            local,
            remote,
            conn: Some(id),
        };
        'conn: loop {
            let read =
                tokio::time::timeout(self.settings.idle_timeout, reader.read_buf(&mut buf)).await;
            match read {
                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
                Ok(Ok(_)) => {}
            }
            loop {
                match decoder.decode(&mut buf) {
                    Ok(None) => break,
                    Ok(Some(Frame::KeepAlive)) => {
                        // RFC 5626 §4.4.1: answer a CRLFCRLF ping with CRLF.
                        let _ = local_tx
                            .send(Outgoing::reply(Bytes::from_static(b"\r\n")))
                            .await;
                    }
                    Ok(Some(Frame::Message(message))) => {
                        self.metrics
                            .messages_received
                            .fetch_add(1, Ordering::Relaxed);
                        if self
                            .input
                            .send(Input::Message(message, flow.clone()))
                            .await
                            .is_err()
                        {
                            break 'conn;
                        }
                    }
                    Ok(Some(Frame::Invalid { error, raw })) => {
                        self.metrics
                            .messages_received
                            .fetch_add(1, Ordering::Relaxed);
                        // Framed correctly but invalid: answer and go on.
                        if let Some(reply) = self.reject_unparsable(&raw, &error) {
                            let _ = local_tx.send(Outgoing::reply(reply)).await;
                        }
                    }
                    Err(error) => {
                        // Framing is lost: answer if possible, then close.
                        self.metrics.framing_errors.fetch_add(1, Ordering::Relaxed);
                        if let Some(reply) = self.reject_unparsable(&buf, &error) {
                            let _ = local_tx.send(Outgoing::reply(reply)).await;
                        }
                        debug!(%remote, %error, "stream framing error, closing");
                        break 'conn;
                    }
                }
            }
        }
        self.unregister(id);
        drop(local_tx);
        // Let queued writes (a final error response) go out.
        let _ = tokio::time::timeout(Duration::from_secs(1), writer_task).await;
        self.metrics
            .connections_open
            .fetch_sub(1, Ordering::Relaxed);
    }

    /// Sends one transmission from the core. Never blocks the core: stream
    /// sends are queued, connects happen in their own task.
    pub fn send(&self, transmit: Transmit) {
        self.metrics.messages_sent.fetch_add(1, Ordering::Relaxed);
        match transmit.transport {
            Transport::Udp => {
                self.expect_responses(std::slice::from_ref(&transmit));
                self.send_udp(transmit)
            }
            Transport::Tcp | Transport::Tls => self.send_stream(transmit),
        }
    }

    /// Sends the transmissions of one turn of the core, in order per
    /// socket and per connection: the UDP datagrams of each socket leave
    /// in `sendmmsg` calls of up to [`SEND_BATCH`] (one system call, and
    /// one wake-up of a receiver that gets several), stream messages are
    /// queued as by [`Transports::send`]. Empties `batch`.
    pub fn send_all(&self, batch: &mut Vec<Transmit>) {
        if batch.len() < 2 {
            if let Some(transmit) = batch.pop() {
                self.send(transmit);
            }
            return;
        }
        // Datagrams by socket (index into `self.udp`); a node has one or
        // two UDP sockets, so a short list beats a map.
        let mut per_socket: Vec<(usize, Vec<Transmit>)> = Vec::new();
        self.metrics
            .messages_sent
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        for transmit in batch.drain(..) {
            if transmit.transport != Transport::Udp {
                self.send_stream(transmit);
                continue;
            }
            let Some(index) = self.udp_endpoint(&transmit) else {
                self.fail(transmit.token);
                continue;
            };
            match per_socket.iter_mut().find(|(i, _)| *i == index) {
                Some((_, datagrams)) => datagrams.push(transmit),
                None => per_socket.push((index, vec![transmit])),
            }
        }
        for (index, datagrams) in per_socket {
            self.expect_responses(&datagrams);
            self.send_datagrams(&self.udp[index], datagrams);
        }
    }

    /// Tells the packet filter where the requests among `datagrams` go (a
    /// request from a client transaction carries a token), so that their
    /// responses are taken as answers, not counted as a flood.
    fn expect_responses(&self, datagrams: &[Transmit]) {
        let Some(filter) = &self.filter else {
            return;
        };
        let mut to: Vec<std::net::IpAddr> = Vec::new();
        for t in datagrams.iter().filter(|t| t.token.is_some()) {
            let ip = t.remote.ip();
            if to.last() != Some(&ip) {
                to.push(ip);
            }
        }
        if !to.is_empty() {
            filter.expect_responses(&to);
        }
    }

    /// The UDP socket a datagram leaves from: the one it names, else the
    /// first of the destination's address family.
    fn udp_endpoint(&self, transmit: &Transmit) -> Option<usize> {
        transmit
            .local
            .and_then(|l| self.udp.iter().position(|e| e.local == l))
            .or_else(|| {
                self.udp
                    .iter()
                    .position(|e| e.local.is_ipv4() == transmit.remote.is_ipv4())
            })
    }

    /// Sends datagrams from one socket with `sendmmsg`, in order. The
    /// kernel reports an error only for the first datagram of a call (the
    /// ones before it went out): that one fails, the rest are sent on.
    /// When the socket buffer is full the rest wait for room in a task of
    /// their own, still in order, so the core never blocks.
    fn send_datagrams(&self, endpoint: &UdpEndpoint, mut datagrams: Vec<Transmit>) {
        let mut sent = 0;
        while sent < datagrams.len() {
            let chunk = &datagrams[sent..datagrams.len().min(sent + SEND_BATCH)];
            let result = endpoint.socket.try_io(Interest::WRITABLE, || {
                sendmmsg_chunk(&endpoint.socket, chunk)
            });
            match result {
                Ok(n) if n > 0 => sent += n,
                Ok(_) => {
                    self.send_later(endpoint, datagrams.split_off(sent));
                    return;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    self.send_later(endpoint, datagrams.split_off(sent));
                    return;
                }
                Err(e) => {
                    debug!(remote = %datagrams[sent].remote, error = %e, "udp send failed");
                    self.fail(datagrams[sent].token.take());
                    sent += 1;
                }
            }
        }
    }

    /// Datagrams that found the socket buffer full: sent in order, from a
    /// task of their own, as room appears (the core never waits).
    fn send_later(&self, endpoint: &UdpEndpoint, datagrams: Vec<Transmit>) {
        let socket = endpoint.socket.clone();
        let this = self.clone();
        tokio::spawn(async move {
            for transmit in datagrams {
                if socket
                    .send_to(&transmit.bytes, transmit.remote)
                    .await
                    .is_err()
                {
                    this.fail(transmit.token);
                }
            }
        });
    }

    fn send_udp(&self, transmit: Transmit) {
        let Some(endpoint) = self.udp_endpoint(&transmit).map(|i| &self.udp[i]) else {
            self.fail(transmit.token);
            return;
        };
        match endpoint
            .socket
            .try_send_to(&transmit.bytes, transmit.remote)
        {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                self.send_later(endpoint, vec![transmit]);
            }
            Err(e) => {
                debug!(remote = %transmit.remote, error = %e, "udp send failed");
                self.fail(transmit.token);
            }
        }
    }

    /// Fails every transmission still queued for a connection that will
    /// not carry them (its connect or handshake failed, a write failed):
    /// the core hears a transport error for each, as for the one that
    /// opened the connection, instead of waiting for its timers (RFC 3261
    /// §8.1.3.1, §17.1.4). Closes the queue first, so a send racing with
    /// this finds it closed and opens a new connection.
    fn fail_queued(&self, rx: &mut mpsc::Receiver<Outgoing>) {
        rx.close();
        while let Ok(queued) = rx.try_recv() {
            // Counted as a send error even without a token (a response).
            self.fail(queued.token);
        }
    }

    fn fail(&self, token: Option<TransmitToken>) {
        self.metrics.send_errors.fetch_add(1, Ordering::Relaxed);
        if let Some(token) = token {
            let input = self.input.clone();
            tokio::spawn(async move {
                let _ = input.send(Input::TransportError(token)).await;
            });
        }
    }

    fn send_stream(&self, transmit: Transmit) {
        let existing = {
            let table = self.conns.lock().unwrap_or_else(|e| e.into_inner());
            transmit
                .conn
                .and_then(|id| table.by_id.get(&id))
                .or_else(|| {
                    table
                        .by_peer
                        .get(&(transmit.transport, transmit.remote))
                        .and_then(|id| table.by_id.get(id))
                })
                .map(|entry| entry.tx.clone())
        };
        if let Some(tx) = existing {
            let outgoing = Outgoing {
                bytes: transmit.bytes,
                token: transmit.token,
            };
            match tx.try_send(outgoing) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Full(outgoing)) => {
                    let this = self.clone();
                    tokio::spawn(async move {
                        if let Err(mpsc::error::SendError(lost)) = tx.send(outgoing).await {
                            this.fail(lost.token);
                        }
                    });
                    return;
                }
                Err(mpsc::error::TrySendError::Closed(outgoing)) => {
                    // The connection just closed: open a new one below.
                    return self.connect_and_send(Transmit {
                        bytes: outgoing.bytes,
                        token: outgoing.token,
                        ..transmit
                    });
                }
            }
        }
        self.connect_and_send(transmit);
    }

    /// Opens a connection to the transmission's peer (registering it at
    /// once so that further sends queue behind this one) and sends.
    fn connect_and_send(&self, transmit: Transmit) {
        if transmit.transport == Transport::Tls && self.tls_connector.is_none() {
            warn!(remote = %transmit.remote, "TLS target but no [tls] configuration");
            self.fail(transmit.token);
            return;
        }
        // The request travels in the queue with its token: when the
        // connection cannot be set up, it and everything queued behind it
        // fail together (`fail_queued`).
        let (id, tx, mut rx) = self.register(transmit.transport, transmit.remote, None);
        let _ = tx.try_send(Outgoing {
            bytes: transmit.bytes.clone(),
            token: transmit.token,
        });
        let this = self.clone();
        tokio::spawn(async move {
            let timeout = this.settings.handshake_timeout;
            let connect = tokio::time::timeout(timeout, TcpStream::connect(transmit.remote)).await;
            let Ok(Ok(stream)) = connect else {
                debug!(remote = %transmit.remote, "connect failed");
                this.unregister(id);
                this.fail_queued(&mut rx);
                return;
            };
            let _ = stream.set_nodelay(true);
            let local = stream
                .local_addr()
                .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
            this.metrics
                .connections_opened
                .fetch_add(1, Ordering::Relaxed);
            match (transmit.transport, &this.tls_connector) {
                (Transport::Tls, Some(connector)) => {
                    let name = transmit
                        .server_name
                        .clone()
                        .unwrap_or_else(|| transmit.remote.ip().to_string());
                    let Ok(server_name) = rustls_pki_types::ServerName::try_from(name) else {
                        this.unregister(id);
                        this.fail_queued(&mut rx);
                        return;
                    };
                    let handshake =
                        tokio::time::timeout(timeout, connector.connect(server_name, stream)).await;
                    match handshake {
                        Ok(Ok(tls)) => {
                            this.set_peer_certificates(id, tls.get_ref().1.peer_certificates());
                            this.run_stream(
                                Transport::Tls,
                                tls,
                                local,
                                transmit.remote,
                                (id, tx, rx),
                            )
                            .await;
                        }
                        _ => {
                            this.metrics
                                .tls_handshake_failures
                                .fetch_add(1, Ordering::Relaxed);
                            this.unregister(id);
                            this.fail_queued(&mut rx);
                        }
                    }
                }
                _ => {
                    this.run_stream(Transport::Tcp, stream, local, transmit.remote, (id, tx, rx))
                        .await;
                }
            }
        });
    }

    fn set_peer_certificates(&self, id: ConnId, certs: Option<&[CertificateDer<'_>]>) {
        let certs: Option<PeerCertificates> =
            certs.map(|c| Arc::new(c.iter().map(|d| d.clone().into_owned()).collect()));
        let mut table = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = table.by_id.get_mut(&id) {
            entry.peer_certificates = certs;
        }
    }

    /// The certificate chain the TLS peer of connection `id` presented.
    pub fn peer_certificates(&self, id: ConnId) -> Option<PeerCertificates> {
        let table = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        table.by_id.get(&id)?.peer_certificates.clone()
    }

    /// Open stream connections (for tests and metrics).
    pub fn open_connections(&self) -> usize {
        self.conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .by_id
            .len()
    }
}

/// A message queued for a stream connection, with the core's token when it
/// carries a request the core wants to hear about should it not go out.
#[derive(Debug)]
struct Outgoing {
    bytes: Bytes,
    token: Option<TransmitToken>,
}

impl Outgoing {
    /// A message of the connection's own (a reply to a keep-alive or an
    /// unparsable message): nobody waits for news of it.
    fn reply(bytes: Bytes) -> Self {
        Self { bytes, token: None }
    }
}

/// A stream writer stops collecting queued messages into one write past
/// this many bytes.
const WRITE_BATCH_BYTES: usize = 64 * 1024;

/// Datagrams taken from a UDP socket in one system call, at most.
const RECV_BATCH: usize = 32;

/// The fewest a receive asks for.
const RECV_BATCH_MIN: usize = 4;

/// The largest UDP payload.
const MAX_DATAGRAM: usize = 65_535;

/// One datagram of a batch.
#[derive(Debug, Clone, Copy)]
struct Received {
    len: usize,
    /// Its source (`None`: unusable, skipped).
    remote: Option<SocketAddr>,
    /// When the kernel queued it (`SO_TIMESTAMPNS`).
    stamp: Option<SystemTime>,
    /// The socket's cumulative drop count when it was taken
    /// (`SO_RXQ_OVFL`; the kernel sends it once there was a drop).
    drops: Option<u32>,
}

/// Buffers for `recvmmsg`: several datagrams per system call.
struct RecvBatch {
    buffers: Vec<Vec<u8>>,
    /// The datagrams of the last call.
    received: Vec<Received>,
    /// How many datagrams the next call asks for: twice what the last one
    /// got, within [`RECV_BATCH_MIN`]..=[`RECV_BATCH`]. The kernel headers
    /// are built (and zeroed) per call, so a lightly loaded socket, where a
    /// wake-up finds one or two datagrams, does not pay for 32 of them;
    /// under load the batch doubles back to the full size at once.
    want: usize,
}

impl RecvBatch {
    fn new() -> Self {
        Self {
            buffers: (0..RECV_BATCH).map(|_| vec![0u8; MAX_DATAGRAM]).collect(),
            received: Vec::with_capacity(RECV_BATCH),
            want: RECV_BATCH,
        }
    }

    /// Takes what is queued on `fd` (without blocking) into the buffers.
    fn receive(&mut self, fd: RawFd) -> std::io::Result<()> {
        self.received.clear();
        // Built per call: nix's headers hold raw pointers (not Send), and the
        // receive loop is a task that may move between threads.
        let control = nix::cmsg_space!(TimeSpec, u32);
        let want = self.want;
        let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(want, Some(control));
        let mut slices: Vec<[IoSliceMut<'_>; 1]> = self
            .buffers
            .iter_mut()
            .take(want)
            .map(|b| [IoSliceMut::new(b.as_mut_slice())])
            .collect();
        let results = recvmmsg(
            fd,
            &mut headers,
            slices.iter_mut(),
            MsgFlags::MSG_DONTWAIT,
            None,
        )?;
        for message in results {
            // A datagram without a usable source address cannot be
            // answered; the caller skips it.
            let remote = message.address.and_then(|a| {
                a.as_sockaddr_in()
                    .map(|v4| SocketAddr::V4((*v4).into()))
                    .or_else(|| a.as_sockaddr_in6().map(|v6| SocketAddr::V6((*v6).into())))
            });
            let mut stamp = None;
            let mut drops = None;
            // A truncated control buffer only loses the overload figures.
            if let Ok(cmsgs) = message.cmsgs() {
                for cmsg in cmsgs {
                    match cmsg {
                        ControlMessageOwned::ScmTimestampns(ts) => {
                            stamp = Some(SystemTime::UNIX_EPOCH + Duration::from(ts));
                        }
                        ControlMessageOwned::RxqOvfl(count) => drops = Some(count),
                        _ => {}
                    }
                }
            }
            self.received.push(Received {
                len: message.bytes,
                remote,
                stamp,
                drops,
            });
        }
        self.want = (self.received.len() * 2).clamp(RECV_BATCH_MIN, RECV_BATCH);
        Ok(())
    }
}

/// Datagrams handed to the kernel in one `sendmmsg` call.
const SEND_BATCH: usize = 64;

/// One `sendmmsg` call for `chunk` (at most [`SEND_BATCH`] datagrams):
/// how many the kernel took.
fn sendmmsg_chunk(socket: &UdpSocket, chunk: &[Transmit]) -> std::io::Result<usize> {
    let addresses: Vec<SocketAddrAny> = chunk.iter().map(|t| t.remote.into()).collect();
    let slices: Vec<[IoSlice<'_>; 1]> = chunk.iter().map(|t| [IoSlice::new(&t.bytes)]).collect();
    let mut controls: Vec<SendAncillaryBuffer<'_, '_, '_>> = chunk
        .iter()
        .map(|_| SendAncillaryBuffer::default())
        .collect();
    let mut headers: Vec<MMsgHdr<'_>> = addresses
        .iter()
        .zip(&slices)
        .zip(controls.iter_mut())
        .map(|((address, slice), control)| MMsgHdr::new_with_addr(address, slice, control))
        .collect();
    rustix::net::sendmmsg(socket, &mut headers, SendFlags::DONTWAIT).map_err(std::io::Error::from)
}

/// Binds a UDP socket with large buffers (bursts of retransmissions at
/// thousands of calls per second overflow the default 208 KiB).
fn bind_udp(address: SocketAddr) -> std::io::Result<UdpSocket> {
    let domain = if address.is_ipv4() {
        socket2::Domain::IPV4
    } else {
        socket2::Domain::IPV6
    };
    let socket = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    if address.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    let _ = socket.set_recv_buffer_size(4 * 1024 * 1024);
    let _ = socket.set_send_buffer_size(4 * 1024 * 1024);
    // Arrival stamps and the drop count, for overload detection; a kernel
    // without them only loses that.
    let _ = setsockopt(&socket, sockopt::ReceiveTimestampns, &true);
    let _ = setsockopt(&socket, sockopt::RxqOvfl, &1);
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    UdpSocket::from_std(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn datagram(n: usize, remote: SocketAddr) -> Transmit {
        Transmit {
            transport: Transport::Udp,
            remote,
            local: None,
            conn: None,
            server_name: None,
            bytes: Bytes::from(format!("OPTIONS sip:{n}@example.invalid SIP/2.0\r\n\r\n")),
            token: None,
        }
    }

    /// Transports with one UDP listener on a free loopback port, feeding
    /// `input`, and their metrics.
    async fn udp_transports(input: mpsc::Sender<Input>) -> (Transports, Arc<Metrics>) {
        let metrics = Arc::new(Metrics::default());
        let settings = TransportSettings {
            udp_queue_target: None,
            max_message_size: 65_535,
            idle_timeout: Duration::from_secs(30),
            handshake_timeout: Duration::from_secs(5),
        };
        let spec = ListenSpec {
            transport: Transport::Udp,
            address: "127.0.0.1:0".parse().expect("address"),
        };
        let (transports, _bound) =
            Transports::bind(&[spec], settings, None, None, input, metrics.clone(), None)
                .await
                .expect("bind");
        (transports, metrics)
    }

    #[test]
    fn datagrams_are_told_apart_without_parsing() {
        assert_eq!(
            Traffic::of_datagram(b"SIP/2.0 200 OK\r\nVia: x\r\n\r\n"),
            Traffic::Response
        );
        assert_eq!(
            Traffic::of_datagram(b"\r\n\r\nSIP/2.0 180 Ringing\r\n\r\n"),
            Traffic::Response
        );
        for request in [
            &b"INVITE sip:+4721000001@node.test SIP/2.0\r\n\r\n"[..],
            b"\r\n\r\n",
            b"",
            b"SIP",
            b"garbage",
        ] {
            assert_eq!(Traffic::of_datagram(request), Traffic::Request);
        }
    }

    /// More datagrams than one `sendmmsg` takes, with one the kernel
    /// refuses in the middle: every other datagram arrives, in order, and
    /// the refused one is counted as a send error.
    #[tokio::test]
    async fn a_turn_of_datagrams_leaves_in_order_and_a_refused_one_fails_alone() {
        let (input, _rx) = mpsc::channel(16);
        let (transports, metrics) = udp_transports(input).await;
        let receiver = UdpSocket::bind("127.0.0.1:0").await.expect("receiver");
        let to = receiver.local_addr().expect("address");
        // Let the runtime see the new socket writable, as it has long
        // before a node's first call.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let refused: SocketAddr = "127.0.0.1:0".parse().expect("address");
        let total = SEND_BATCH * 2 + 10;
        let mut batch: Vec<Transmit> = (0..total)
            .map(|n| datagram(n, if n == SEND_BATCH + 3 { refused } else { to }))
            .collect();
        transports.send_all(&mut batch);
        assert!(batch.is_empty(), "send_all empties the batch");
        let mut buf = [0u8; 256];
        for n in (0..total).filter(|n| *n != SEND_BATCH + 3) {
            let len = tokio::time::timeout(Duration::from_secs(5), receiver.recv(&mut buf))
                .await
                .expect("a datagram in time")
                .expect("a datagram");
            let expected = format!("OPTIONS sip:{n}@example.invalid SIP/2.0\r\n\r\n");
            assert_eq!(&buf[..len], expected.as_bytes(), "datagram {n} in order");
        }
        assert_eq!(metrics.send_errors.load(Ordering::Relaxed), 1);
        assert_eq!(metrics.messages_sent.load(Ordering::Relaxed), total as u64);
    }

    /// Requests queued behind a connection that cannot be set up all fail
    /// with it: the core hears a transport error for each (and can fail
    /// over at once), not only for the one that opened the connection.
    #[tokio::test]
    async fn requests_queued_behind_a_failed_connect_all_fail() {
        let (input, mut rx) = mpsc::channel(16);
        let (transports, metrics) = udp_transports(input).await;
        // A port where nothing listens: the connect is refused.
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port");
        // Three requests in one turn of the core: the first opens the
        // connection, the others queue behind it.
        for n in 1..=3 {
            transports.send(Transmit {
                transport: Transport::Tcp,
                remote: closed,
                local: None,
                conn: None,
                server_name: None,
                bytes: Bytes::from(format!("OPTIONS sip:{n}@example.invalid SIP/2.0\r\n\r\n")),
                token: Some(TransmitToken::from_raw(n)),
            });
        }
        let mut failed = Vec::new();
        while failed.len() < 3 {
            let got = tokio::time::timeout(Duration::from_secs(5), rx.recv())
                .await
                .expect("a transport error in time");
            match got {
                Some(Input::TransportError(token)) => failed.push(token),
                Some(_) => {}
                None => panic!("input closed"),
            }
        }
        failed.sort_by_key(|t| format!("{t:?}"));
        let expected: Vec<TransmitToken> = (1..=3).map(TransmitToken::from_raw).collect();
        assert_eq!(failed, expected);
        assert_eq!(metrics.send_errors.load(Ordering::Relaxed), 3);
        assert_eq!(transports.open_connections(), 0);
    }

    /// The receive batch shrinks while wake-ups find few datagrams and
    /// grows back under a burst, losing and reordering nothing.
    #[test]
    fn receive_batch_follows_the_queue() {
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let to = rx.local_addr().expect("address");
        let fd = rx.as_raw_fd();
        let mut batch = RecvBatch::new();
        let drain = |batch: &mut RecvBatch, got: &mut Vec<String>| {
            let mut calls = Vec::new();
            // Loopback delivery is synchronous: everything sent is queued.
            while batch.receive(fd).is_ok() {
                calls.push(batch.received.len());
                for (i, r) in batch.received.iter().enumerate() {
                    got.push(String::from_utf8_lossy(&batch.buffers[i][..r.len]).into_owned());
                }
            }
            calls
        };
        let mut got = Vec::new();
        tx.send_to(b"0", to).expect("send");
        assert_eq!(drain(&mut batch, &mut got), vec![1]);
        assert_eq!(batch.want, RECV_BATCH_MIN);
        for n in 1..=100 {
            tx.send_to(n.to_string().as_bytes(), to).expect("send");
        }
        let calls = drain(&mut batch, &mut got);
        assert_eq!(calls[..4], [4, 8, 16, 32], "{calls:?}");
        assert_eq!(calls.iter().sum::<usize>(), 100);
        let expected: Vec<String> = (0..=100).map(|n: i32| n.to_string()).collect();
        assert_eq!(got, expected);
    }
}
