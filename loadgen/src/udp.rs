//! UDP with several datagrams per system call: `recvmmsg` to read what a
//! socket holds, `sendmmsg` to send what a turn produced.
//!
//! On loopback most of a datagram's cost is the kernel's delivery, which
//! the sender pays; what batching saves is the system call around each
//! datagram, and a connected socket (the UAC's, whose datagrams all go to
//! the target) saves the route lookup of every send.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::AsRawFd as _;

use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg};
use rustix::net::{MMsgHdr, SendAncillaryBuffer, SendFlags, SocketAddrAny};
use tokio::io::Interest;
use tokio::net::UdpSocket;

use crate::Out;

/// Datagrams asked for per `recvmmsg` call.
const RECV_BATCH: usize = 16;
/// The largest UDP payload: no datagram is cut short.
const MAX_DATAGRAM: usize = 65_536;
/// Datagrams handed to the kernel per `sendmmsg` call.
const SEND_BATCH: usize = 64;

/// One received datagram: where it is in the batch's buffer, its source,
/// and whether it was longer than the buffer (never, at 64 KiB).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Datagram {
    slot: usize,
    len: usize,
    /// The source address (`None` if the kernel gave none).
    pub(crate) from: Option<SocketAddr>,
    /// Cut short by the kernel (`MSG_TRUNC`).
    pub(crate) truncated: bool,
}

/// Buffers for `recvmmsg`, reused for every call.
pub(crate) struct RecvBatch {
    buffers: Vec<Vec<u8>>,
    received: Vec<Datagram>,
}

impl RecvBatch {
    pub(crate) fn new() -> Self {
        Self {
            buffers: (0..RECV_BATCH).map(|_| vec![0u8; MAX_DATAGRAM]).collect(),
            received: Vec::with_capacity(RECV_BATCH),
        }
    }

    /// Reads what `sock` holds, up to [`RECV_BATCH`] datagrams, without
    /// blocking: `WouldBlock` when it holds none (which clears tokio's
    /// readiness, so that the next `readable().await` waits).
    pub(crate) fn receive(&mut self, sock: &UdpSocket) -> io::Result<()> {
        self.received.clear();
        let fd = sock.as_raw_fd();
        let buffers = &mut self.buffers;
        let received = &mut self.received;
        sock.try_io(Interest::READABLE, || {
            let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(RECV_BATCH, None);
            let mut slices: Vec<[IoSliceMut<'_>; 1]> = buffers
                .iter_mut()
                .map(|b| [IoSliceMut::new(b.as_mut_slice())])
                .collect();
            let results = recvmmsg(
                fd,
                &mut headers,
                slices.iter_mut(),
                MsgFlags::MSG_DONTWAIT,
                None,
            )
            .map_err(io::Error::from)?;
            for (slot, message) in results.enumerate() {
                let from = message.address.and_then(|a| {
                    a.as_sockaddr_in()
                        .map(|v4| SocketAddr::V4((*v4).into()))
                        .or_else(|| a.as_sockaddr_in6().map(|v6| SocketAddr::V6((*v6).into())))
                });
                received.push(Datagram {
                    slot,
                    len: message.bytes,
                    from,
                    truncated: message.flags.contains(MsgFlags::MSG_TRUNC),
                });
            }
            Ok(())
        })
    }

    /// The datagrams the last [`receive`](Self::receive) returned.
    pub(crate) fn datagrams(&self) -> &[Datagram] {
        &self.received
    }

    /// The octets of `d`, one of the datagrams the last call returned.
    pub(crate) fn bytes(&self, d: &Datagram) -> &[u8] {
        let buffer = &self.buffers[d.slot];
        &buffer[..d.len.min(buffer.len())]
    }
}

/// Sends `batch` (all for one socket) in order, [`SEND_BATCH`] per system
/// call, without blocking. A datagram for `peer`, the address the socket is
/// connected to, goes without an address (the socket's cached route).
/// Returns how many datagrams the kernel refused (a full socket buffer):
/// each refused one is counted and skipped, as a lost datagram would be,
/// and retransmissions repair it.
pub(crate) fn send_all(sock: &UdpSocket, peer: Option<SocketAddr>, batch: &[Out]) -> u64 {
    let mut errors = 0;
    let mut at = 0;
    while at < batch.len() {
        let chunk = &batch[at..batch.len().min(at + SEND_BATCH)];
        match sendmmsg_chunk(sock, peer, chunk) {
            Ok(n) if n > 0 => at += n,
            _ => {
                errors += 1;
                at += 1;
            }
        }
    }
    errors
}

/// One `sendmmsg` call for `chunk`: how many datagrams the kernel took.
fn sendmmsg_chunk(sock: &UdpSocket, peer: Option<SocketAddr>, chunk: &[Out]) -> io::Result<usize> {
    let addresses: Vec<Option<SocketAddrAny>> = chunk
        .iter()
        .map(|o| (Some(o.dest) != peer).then(|| o.dest.into()))
        .collect();
    let slices: Vec<[IoSlice<'_>; 1]> = chunk.iter().map(|o| [IoSlice::new(&o.data)]).collect();
    let mut controls: Vec<SendAncillaryBuffer<'_, '_, '_>> = chunk
        .iter()
        .map(|_| SendAncillaryBuffer::default())
        .collect();
    let mut headers: Vec<MMsgHdr<'_>> = addresses
        .iter()
        .zip(&slices)
        .zip(controls.iter_mut())
        .map(|((address, slice), control)| match address {
            Some(address) => MMsgHdr::new_with_addr(address, slice, control),
            None => MMsgHdr::new(slice, control),
        })
        .collect();
    rustix::net::sendmmsg(sock, &mut headers, SendFlags::DONTWAIT).map_err(io::Error::from)
}
