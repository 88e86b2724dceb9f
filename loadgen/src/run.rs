//! The I/O edge: one OS thread per worker, each with a `current_thread`
//! tokio runtime that owns its sockets and one core ([`UacCore`] or
//! [`UasCore`]). Datagrams are drained with `recvmmsg` until the socket is
//! empty, so one wake-up handles a batch; what a turn produced leaves in one
//! `sendmmsg` per socket (a datagram the kernel refuses, a full socket
//! buffer, counts as a send error, and retransmissions repair it). The
//! UAC's UDP sockets are connected to the target: its datagrams take the
//! socket's cached route, and only the target's datagrams reach it.

use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use peering_proto::msg::{Frame, Message, StreamDecoder};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, UdpSocket};
use tokio::sync::Notify;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::Out;
use crate::error::Error;
use crate::sip::Transport;
use crate::stats::Stats;
use crate::uac::UacCore;
use crate::uas::{UasCore, UasStats};
use crate::udp::{self, RecvBatch};

/// Socket buffer size asked for on every UDP socket (the kernel caps it at
/// `net.core.rmem_max` / `wmem_max`).
pub const SOCKET_BUFFER: usize = 4 << 20;

const RECV_RESERVE: usize = 65_536;
const RECV_BLOCK: usize = 1 << 20;
/// Datagrams handled per wake-up before yielding to the other tasks.
const BATCH: usize = 64;
const MAX_STREAM_MESSAGE: usize = 1 << 20;

fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Io { what, source }
}

/// What a driver needs from a core.
trait Handler {
    fn handle(
        &mut self,
        msg: Message,
        flow: usize,
        from: SocketAddr,
        now: Instant,
        out: &mut Vec<Out>,
    );
    fn unparsable(&mut self);
    fn send_errors(&mut self, n: u64);
}

impl Handler for UacCore {
    fn handle(
        &mut self,
        msg: Message,
        _flow: usize,
        _from: SocketAddr,
        now: Instant,
        out: &mut Vec<Out>,
    ) {
        self.on_message(&msg, now, out);
    }
    fn unparsable(&mut self) {
        self.count_unparsable();
    }
    fn send_errors(&mut self, n: u64) {
        self.count_send_errors(n);
    }
}

impl Handler for UasCore {
    fn handle(
        &mut self,
        msg: Message,
        flow: usize,
        from: SocketAddr,
        now: Instant,
        out: &mut Vec<Out>,
    ) {
        self.on_message(msg, flow, from, now, out);
    }
    fn unparsable(&mut self) {
        self.stats_mut().unparsable += 1;
    }
    fn send_errors(&mut self, n: u64) {
        self.stats_mut().send_errors += n;
    }
}

struct StreamWriter {
    buf: RefCell<BytesMut>,
    notify: Notify,
    closed: std::cell::Cell<bool>,
}

enum FlowIo {
    /// A UDP socket, and the address it is connected to, if it is.
    Udp(Rc<UdpSocket>, Option<SocketAddr>),
    Stream(Rc<StreamWriter>),
}

/// The flows of one worker, indexed like the core's flows.
#[derive(Default)]
struct Flows {
    v: RefCell<Vec<FlowIo>>,
}

impl Flows {
    fn push(&self, f: FlowIo) {
        self.v.borrow_mut().push(f);
    }

    /// Sends everything in `out`, one batch per flow (in order within a
    /// flow); returns the number of failed sends.
    fn send(&self, out: &mut Vec<Out>) -> u64 {
        let v = self.v.borrow();
        let mut errors = 0;
        // Stable: a flow's messages keep their order.
        out.sort_by_key(|o| o.flow);
        for batch in out.chunk_by(|a, b| a.flow == b.flow) {
            match v.get(batch[0].flow) {
                Some(FlowIo::Udp(s, peer)) => errors += udp::send_all(s, *peer, batch),
                Some(FlowIo::Stream(w)) => {
                    if w.closed.get() {
                        errors += batch.len() as u64;
                    } else {
                        let mut buf = w.buf.borrow_mut();
                        for o in batch {
                            buf.extend_from_slice(&o.data);
                        }
                        w.notify.notify_one();
                    }
                }
                None => errors += batch.len() as u64,
            }
        }
        out.clear();
        errors
    }
}

fn udp_socket(addr: SocketAddr, reuse_port: bool) -> Result<UdpSocket, Error> {
    let domain = socket2::Domain::for_address(addr);
    let s = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))
        .map_err(io("UDP socket"))?;
    if reuse_port {
        s.set_reuse_port(true).map_err(io("SO_REUSEPORT"))?;
    }
    // Best effort: the kernel caps these at its maximum.
    let _ = s.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = s.set_send_buffer_size(SOCKET_BUFFER);
    s.set_nonblocking(true).map_err(io("UDP socket"))?;
    s.bind(&addr.into()).map_err(io("UDP bind"))?;
    UdpSocket::from_std(s.into()).map_err(io("UDP socket"))
}

async fn udp_recv_loop<H: Handler>(
    sock: Rc<UdpSocket>,
    flow: usize,
    core: Rc<RefCell<H>>,
    flows: Rc<Flows>,
) {
    let mut batch = RecvBatch::new();
    let mut out = Vec::with_capacity(256);
    loop {
        if sock.readable().await.is_err() {
            return;
        }
        let mut handled = 0;
        loop {
            match batch.receive(&sock) {
                // Not expected from a non-blocking recvmmsg; never spin on it.
                Ok(()) if batch.datagrams().is_empty() => break,
                Ok(()) => {
                    let now = Instant::now();
                    handled += batch.datagrams().len();
                    {
                        let mut c = core.borrow_mut();
                        for d in batch.datagrams() {
                            // A datagram cut short or without a source cannot
                            // be handled: it counts, like one that does not
                            // parse.
                            let (Some(from), false) = (d.from, d.truncated) else {
                                c.unparsable();
                                continue;
                            };
                            match Message::parse(Bytes::copy_from_slice(batch.bytes(d))) {
                                Ok(msg) => c.handle(msg, flow, from, now, &mut out),
                                Err(_) => c.unparsable(),
                            }
                        }
                        if handled >= BATCH {
                            let e = flows.send(&mut out);
                            c.send_errors(e);
                        }
                    }
                    if handled >= BATCH {
                        // Let the pacing task and the other sockets run.
                        handled = 0;
                        tokio::task::yield_now().await;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => break,
            }
        }
        let e = flows.send(&mut out);
        core.borrow_mut().send_errors(e);
    }
}

async fn stream_write_loop<W: AsyncWrite + Unpin>(mut w: W, writer: Rc<StreamWriter>) {
    loop {
        writer.notify.notified().await;
        loop {
            let data = writer.buf.borrow_mut().split().freeze();
            if data.is_empty() {
                break;
            }
            if w.write_all(&data).await.is_err() || w.flush().await.is_err() {
                writer.closed.set(true);
                return;
            }
        }
    }
}

async fn stream_read_loop<H: Handler, R: AsyncRead + Unpin>(
    mut r: R,
    flow: usize,
    peer: SocketAddr,
    core: Rc<RefCell<H>>,
    flows: Rc<Flows>,
    writer: Rc<StreamWriter>,
) {
    let mut buf = BytesMut::with_capacity(RECV_BLOCK);
    let mut decoder = StreamDecoder::new(MAX_STREAM_MESSAGE);
    let mut out = Vec::with_capacity(256);
    loop {
        if buf.capacity() - buf.len() < RECV_RESERVE {
            buf.reserve(RECV_BLOCK);
        }
        match r.read_buf(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let now = Instant::now();
        let mut c = core.borrow_mut();
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(Frame::Message(msg))) => c.handle(msg, flow, peer, now, &mut out),
                Ok(Some(Frame::Invalid { .. })) => c.unparsable(),
                Ok(Some(Frame::KeepAlive)) => {
                    writer.buf.borrow_mut().put_slice(b"\r\n");
                    writer.notify.notify_one();
                }
                Ok(None) => break,
                Err(_) => {
                    c.unparsable();
                    writer.closed.set(true);
                    return;
                }
            }
        }
        let e = flows.send(&mut out);
        c.send_errors(e);
    }
    writer.closed.set(true);
    writer.notify.notify_one();
}

fn new_writer() -> Rc<StreamWriter> {
    Rc::new(StreamWriter {
        buf: RefCell::new(BytesMut::with_capacity(64 * 1024)),
        notify: Notify::new(),
        closed: std::cell::Cell::new(false),
    })
}

/// Spawns reader and writer tasks for a connected stream.
fn spawn_stream<H, S>(
    stream: S,
    flow: usize,
    peer: SocketAddr,
    core: Rc<RefCell<H>>,
    flows: &Rc<Flows>,
) -> Rc<StreamWriter>
where
    H: Handler + 'static,
    S: AsyncRead + AsyncWrite + 'static,
{
    let writer = new_writer();
    let (r, w) = tokio::io::split(stream);
    tokio::task::spawn_local(stream_write_loop(w, writer.clone()));
    tokio::task::spawn_local(stream_read_loop(
        r,
        flow,
        peer,
        core,
        flows.clone(),
        writer.clone(),
    ));
    writer
}

/// TLS settings of a UAC.
#[derive(Clone)]
pub struct ClientTls {
    /// The connector.
    pub connector: TlsConnector,
    /// Name checked against the server certificate.
    pub server_name: rustls_pki_types::ServerName<'static>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

/// One UAC worker's job.
#[derive(Debug)]
pub struct UacJob {
    /// The core to drive (its config names the target and transport).
    pub core: UacCore,
    /// Calls per second started by this worker.
    pub rate: f64,
    /// Most calls in flight in this worker.
    pub max_in_flight: usize,
    /// How long calls are started for.
    pub duration: Duration,
    /// How long to wait for calls in flight after `duration`.
    pub drain: Duration,
    /// Source addresses: one UDP socket, or `connections_per_source`
    /// connections, per address.
    pub sources: Vec<IpAddr>,
    /// Connections per source address (TCP, TLS).
    pub connections_per_source: usize,
    /// Connect the UDP sockets to the target (see the module doc).
    pub connect_udp: bool,
    /// TLS client settings (TLS transport only).
    pub tls: Option<ClientTls>,
    /// Set from outside to stop starting calls early.
    pub stop: Arc<AtomicBool>,
}

/// Runs a UAC worker on the current thread until its calls are done.
pub fn run_uac(job: UacJob) -> Result<Stats, Error> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(io("runtime"))?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, uac_main(job))
}

async fn uac_main(job: UacJob) -> Result<Stats, Error> {
    let UacJob {
        core,
        rate,
        max_in_flight,
        duration,
        drain,
        sources,
        connections_per_source,
        connect_udp,
        tls,
        stop,
    } = job;
    let transport = core.transport();
    let target = core.target();
    let core = Rc::new(RefCell::new(core));
    let flows = Rc::new(Flows::default());
    for ip in &sources {
        match transport {
            Transport::Udp => {
                let sock = udp_socket(SocketAddr::new(*ip, 0), false)?;
                let peer = if connect_udp {
                    sock.connect(target).await.map_err(io("UDP connect"))?;
                    Some(target)
                } else {
                    None
                };
                let sock = Rc::new(sock);
                let local = sock.local_addr().map_err(io("UDP socket"))?;
                let flow = core.borrow_mut().add_flow(local);
                flows.push(FlowIo::Udp(sock.clone(), peer));
                tokio::task::spawn_local(udp_recv_loop(sock, flow, core.clone(), flows.clone()));
            }
            Transport::Tcp | Transport::Tls => {
                for _ in 0..connections_per_source.max(1) {
                    let sock = if ip.is_ipv4() {
                        TcpSocket::new_v4()
                    } else {
                        TcpSocket::new_v6()
                    }
                    .map_err(io("TCP socket"))?;
                    sock.bind(SocketAddr::new(*ip, 0)).map_err(io("TCP bind"))?;
                    let stream = sock.connect(target).await.map_err(io("TCP connect"))?;
                    let _ = stream.set_nodelay(true);
                    let local = stream.local_addr().map_err(io("TCP socket"))?;
                    let flow = core.borrow_mut().add_flow(local);
                    let writer = match (&tls, transport) {
                        (Some(t), Transport::Tls) => {
                            let s = t
                                .connector
                                .connect(t.server_name.clone(), stream)
                                .await
                                .map_err(io("TLS handshake"))?;
                            spawn_stream(s, flow, target, core.clone(), &flows)
                        }
                        (None, Transport::Tls) => {
                            return Err(Error::Invalid {
                                what: "transport",
                                reason: "TLS needs --tls-ca",
                            });
                        }
                        _ => spawn_stream(stream, flow, target, core.clone(), &flows),
                    };
                    flows.push(FlowIo::Stream(writer));
                }
            }
        }
    }

    let mut out = Vec::with_capacity(1024);
    let mut started: u64 = 0;
    let begin = Instant::now();
    let end = begin + duration;
    let tick = Duration::from_millis(1);
    loop {
        let now = Instant::now();
        let starting = now < end && !stop.load(Ordering::Relaxed);
        let mut behind = false;
        {
            let mut c = core.borrow_mut();
            if starting {
                let due = (now.duration_since(begin).as_secs_f64() * rate) as u64;
                // At most BATCH * 4 calls per turn, so that responses are read
                // in between; the rest follow after a yield.
                let turn_end = started + (BATCH as u64) * 4;
                behind = due > turn_end;
                let due = due.min(turn_end);
                while started < due {
                    if c.in_flight() >= max_in_flight {
                        c.count_throttled(due - started);
                        started = due;
                        break;
                    }
                    c.start_call(now, &mut out);
                    started += 1;
                    if out.len() >= 256 {
                        let e = flows.send(&mut out);
                        c.send_errors(e);
                    }
                }
            }
            c.on_timers(now, &mut out);
            let e = flows.send(&mut out);
            c.send_errors(e);
            if !starting && (c.in_flight() == 0 || now >= end + drain) {
                break;
            }
        }
        if behind {
            tokio::task::yield_now().await;
            continue;
        }
        let mut wake = now + tick;
        if !starting {
            wake = core
                .borrow()
                .next_timer()
                .map_or(now + tick * 10, |t| t.min(now + tick * 10));
        }
        tokio::time::sleep_until(wake.into()).await;
    }
    let stats = core.borrow_mut().finish(Instant::now());
    Ok(stats)
}

/// TLS settings of a UAS.
#[derive(Clone)]
pub struct ServerTls {
    /// The acceptor.
    pub acceptor: TlsAcceptor,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls").finish_non_exhaustive()
    }
}

/// One UAS worker's job.
#[derive(Debug)]
pub struct UasJob {
    /// The core.
    pub core: UasCore,
    /// Where to listen (UDP sockets share it with SO_REUSEPORT).
    pub listen: SocketAddr,
    /// Transport.
    pub transport: Transport,
    /// Several workers share the UDP port.
    pub reuse_port: bool,
    /// TLS (TLS transport only).
    pub tls: Option<ServerTls>,
    /// Set from outside to stop.
    pub stop: Arc<AtomicBool>,
}

/// Runs a UAS worker on the current thread until `stop` is set.
pub fn run_uas(job: UasJob) -> Result<UasStats, Error> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(io("runtime"))?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, uas_main(job))
}

async fn uas_main(job: UasJob) -> Result<UasStats, Error> {
    let UasJob {
        core,
        listen,
        transport,
        reuse_port,
        tls,
        stop,
    } = job;
    let core = Rc::new(RefCell::new(core));
    let flows = Rc::new(Flows::default());
    match transport {
        Transport::Udp => {
            let sock = Rc::new(udp_socket(listen, reuse_port)?);
            let local = sock.local_addr().map_err(io("UDP socket"))?;
            let flow = core.borrow_mut().add_flow(local);
            flows.push(FlowIo::Udp(sock.clone(), None));
            tokio::task::spawn_local(udp_recv_loop(sock, flow, core.clone(), flows.clone()));
        }
        Transport::Tcp | Transport::Tls => {
            let sock = if listen.is_ipv4() {
                TcpSocket::new_v4()
            } else {
                TcpSocket::new_v6()
            }
            .map_err(io("TCP socket"))?;
            sock.set_reuseaddr(true).map_err(io("SO_REUSEADDR"))?;
            sock.bind(listen).map_err(io("TCP bind"))?;
            let listener: TcpListener = sock.listen(1024).map_err(io("TCP listen"))?;
            let core2 = core.clone();
            let flows2 = flows.clone();
            tokio::task::spawn_local(async move {
                while let Ok((stream, peer)) = listener.accept().await {
                    let _ = stream.set_nodelay(true);
                    let Ok(local) = stream.local_addr() else {
                        continue;
                    };
                    let core = core2.clone();
                    let flows = flows2.clone();
                    let tls = tls.clone();
                    tokio::task::spawn_local(async move {
                        // Register the flow only once the stream is usable.
                        match (tls, transport) {
                            (Some(t), Transport::Tls) => {
                                let Ok(s) = t.acceptor.accept(stream).await else {
                                    return;
                                };
                                let flow = core.borrow_mut().add_flow(local);
                                let w = spawn_stream(s, flow, peer, core.clone(), &flows);
                                flows.push(FlowIo::Stream(w));
                            }
                            (None, Transport::Tls) => {}
                            _ => {
                                let flow = core.borrow_mut().add_flow(local);
                                let w = spawn_stream(stream, flow, peer, core.clone(), &flows);
                                flows.push(FlowIo::Stream(w));
                            }
                        }
                    });
                }
            });
        }
    }
    let mut out = Vec::with_capacity(256);
    let tick = Duration::from_millis(1);
    loop {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let now = Instant::now();
        let next = {
            let mut c = core.borrow_mut();
            c.on_timers(now, &mut out);
            let e = flows.send(&mut out);
            c.send_errors(e);
            c.next_timer()
        };
        let wake = next.map_or(now + tick * 50, |t| t.clamp(now + tick, now + tick * 50));
        tokio::time::sleep_until(wake.into()).await;
    }
    let stats = *core.borrow().stats();
    Ok(stats)
}
