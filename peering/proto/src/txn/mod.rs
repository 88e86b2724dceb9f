//! The RFC 3261 §17 transaction layer, as sans-IO state machines.
//!
//! Four machines, one per transaction kind, with the RFC 6026 corrections
//! (the "Accepted" state on both INVITE sides):
//!
//! | machine | RFC | states | timers |
//! |---|---|---|---|
//! | [`ClientInvite`] | §17.1.1, RFC 6026 §7.2 | Calling, Proceeding, Completed, Accepted, Terminated | A, B, D, M |
//! | [`ClientNonInvite`] | §17.1.2 | Trying, Proceeding, Completed, Terminated | E, F, K |
//! | [`ServerInvite`] | §17.2.1, RFC 6026 §7.1 | Proceeding, Completed, Confirmed, Accepted, Terminated | G, H, I, L |
//! | [`ServerNonInvite`] | §17.2.2 | Trying, Proceeding, Completed, Terminated | J |
//!
//! What this layer does not do: it never reads a clock (time comes in as
//! `now`), never touches a socket (messages to send come out of
//! `poll_transmit`, timers come out of `poll_timeout` as deadlines), and
//! never parses or builds SIP (it is generic over the message type through
//! [`TxnMessage`]; the caller tells it the status code of each response and
//! whether the transport is reliable). Matching a message to its
//! transaction is done by the caller with [`TxnKey`] (§17.1.3, §17.2.3),
//! optionally in a [`TxnTable`].
//!
//! Dispatching a received message (the driver's side of §17.1.3 and
//! §17.2.3):
//!
//! ```text
//! response  -> TxnKey::client(top Via branch, CSeq method)
//!              match:    ClientInvite / ClientNonInvite::handle_response(now, status, msg)
//!              no match: drop it (RFC 6026: the "Accepted" state catches
//!                        2xx retransmissions, so a stateful proxy no longer
//!                        forwards unmatched responses)
//! request   -> TxnKey::server(branch, sent-by, method), or
//!              TxnKey::server_rfc2543(..) when the branch has no magic cookie
//!   ACK     -> match:    ServerInvite::handle_ack(now, msg)
//!              no match: the ACK for a 2xx: to the TU (a proxy forwards it)
//!   other   -> match:    ServerInvite / ServerNonInvite::handle_request(now)
//!              no match: a new ServerInvite / ServerNonInvite, request to the TU;
//!                        for a CANCEL, key.cancel_target() finds the INVITE
//! ```
//!
//! The vocabulary is quinn-proto's: inputs are `handle_*(now, ..)`, TU
//! commands are plain methods (`respond`), outputs are `poll_transmit`,
//! `poll_event` and `poll_timeout`. Every machine documents its polling
//! order; in short, after each input drain `poll_transmit`, then
//! `poll_event`, then re-arm the single timer from `poll_timeout`.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use peering_proto::txn::{ClientNonInvite, Event, Reliability, TimerConfig, TxnMessage};
//!
//! #[derive(Clone, Debug, PartialEq)]
//! struct Wire(&'static str);
//! impl TxnMessage for Wire {
//!     fn ack_for(_request: &Self, _response: &Self) -> Self {
//!         Wire("ACK")
//!     }
//! }
//!
//! # #[expect(clippy::disallowed_methods, reason = "the example's driver owns the clock")]
//! let start = Instant::now();
//! let mut txn = ClientNonInvite::new(start, Wire("OPTIONS"), Reliability::Unreliable, TimerConfig::default());
//! assert_eq!(txn.poll_transmit(), Some(Wire("OPTIONS")));
//! // Timer E: first retransmission after T1.
//! assert_eq!(txn.poll_timeout(), Some(start + Duration::from_millis(500)));
//! txn.handle_timeout(start + Duration::from_millis(500));
//! assert_eq!(txn.poll_transmit(), Some(Wire("OPTIONS")));
//! // The final response goes to the TU; Timer K then absorbs retransmissions for T4.
//! txn.handle_response(start + Duration::from_millis(700), 200, Wire("200"));
//! assert!(matches!(txn.poll_event(), Some(Event::Response { status: 200, .. })));
//! assert_eq!(txn.poll_timeout(), Some(start + Duration::from_millis(5700)));
//! txn.handle_timeout(start + Duration::from_millis(5700));
//! assert!(matches!(txn.poll_event(), Some(Event::Terminated)));
//! assert!(txn.is_terminated());
//! ```

mod client_invite;
mod client_non_invite;
mod key;
mod server_invite;
mod server_non_invite;
mod table;
mod timers;

#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::fmt;
use std::time::Instant;

pub use client_invite::ClientInvite;
pub use client_non_invite::ClientNonInvite;
pub use key::{MAGIC_COOKIE, Rfc2543Parts, TxnKey};
pub use server_invite::ServerInvite;
pub use server_non_invite::ServerNonInvite;
pub use table::TxnTable;
pub use timers::{Reliability, Timer, TimerConfig};

/// What the transaction layer needs from a SIP message type.
///
/// The machines store, clone and hand back messages; they never look
/// inside. `Clone` should be cheap (a reference-counted buffer): every
/// retransmission is a clone.
pub trait TxnMessage: Clone {
    /// RFC 3261 §17.1.1.3: the ACK a client INVITE transaction sends for a
    /// non-2xx final `response` to `request` (same Request-URI, Call-ID,
    /// From, CSeq number and the single top Via of the request; To from the
    /// response; CSeq method ACK; Route copied from the request).
    fn ack_for(request: &Self, response: &Self) -> Self;
}

/// Something a transaction tells its transaction user (the proxy core).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event<M> {
    /// Client transactions: a response for the TU. Provisional responses,
    /// the first final response and, in the RFC 6026 "Accepted" state,
    /// every further 2xx (the TU forwards them; they are not absorbed).
    Response {
        /// The status code, as the caller gave it.
        status: u16,
        /// The response.
        response: M,
    },
    /// Server INVITE transaction in "Accepted" (RFC 6026 §7.1): an ACK that
    /// matched the transaction is passed to the TU rather than absorbed.
    Ack(M),
    /// Server transactions: a retransmission of the request was absorbed
    /// (and the last response, if any, sent again). For statistics only.
    RequestRetransmission,
    /// A transaction timeout: Timer B (client INVITE, no response), F
    /// (client non-INVITE, no final response) or H (server INVITE, no ACK).
    /// A proxy answers B and F as a 408 from that branch (§16.7 step 6).
    Timeout(Timer),
    /// The caller reported a transport error (§17.1.4, §17.2.4). Client
    /// and server non-INVITE transactions then terminate; a server INVITE
    /// transaction stays in its state (RFC 6026 §7.1).
    TransportError,
    /// The transaction reached "Terminated": drop it once its queues are
    /// drained. Always the last event, emitted once.
    Terminated,
}

/// The state of a transaction, for the TU and for logs. The machines keep
/// their real state (with its timers and stored messages) privately.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TxnState {
    /// Client INVITE: request sent, no response yet.
    Calling,
    /// Non-INVITE: request sent (client) or received (server), no response yet.
    Trying,
    /// A provisional response was received (client) or sent (server).
    Proceeding,
    /// A final response (non-2xx for INVITE) was received or sent; waiting
    /// for retransmissions to stop.
    Completed,
    /// Server INVITE: the ACK for a non-2xx final response arrived.
    Confirmed,
    /// RFC 6026: INVITE with a 2xx final response.
    Accepted,
    /// Done: the transaction can be dropped.
    Terminated,
}

impl TxnState {
    /// The state's name as RFC 3261 writes it ("Calling", "Proceeding", ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Calling => "Calling",
            Self::Trying => "Trying",
            Self::Proceeding => "Proceeding",
            Self::Completed => "Completed",
            Self::Confirmed => "Confirmed",
            Self::Accepted => "Accepted",
            Self::Terminated => "Terminated",
        }
    }
}

impl fmt::Display for TxnState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The operations every machine shares, so that a [`TxnTable`] (or a
/// driver) can treat them alike.
pub trait Transaction {
    /// The message type.
    type Message;
    /// Handles every timer that expired at `now` (or earlier).
    fn handle_timeout(&mut self, now: Instant);
    /// The transport failed to send one of this transaction's messages.
    fn handle_transport_error(&mut self, now: Instant);
    /// The next message to pass to the transport.
    fn poll_transmit(&mut self) -> Option<Self::Message>;
    /// The next event for the TU.
    fn poll_event(&mut self) -> Option<Event<Self::Message>>;
    /// The earliest deadline at which [`Transaction::handle_timeout`] must
    /// be called, if any timer runs.
    fn poll_timeout(&self) -> Option<Instant>;
    /// The state, for the TU and for logs.
    fn state(&self) -> TxnState;
    /// True once the machine reached "Terminated". Drain the queues before
    /// dropping it.
    fn is_terminated(&self) -> bool {
        self.state() == TxnState::Terminated
    }
}

/// The class of a response status code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Provisional,
    Success,
    Failure,
}

impl Class {
    /// 100..=199, 200..=299, 300..=699; anything else is not a SIP status
    /// code and the machines drop it.
    fn of(status: u16) -> Option<Self> {
        match status {
            100..=199 => Some(Self::Provisional),
            200..=299 => Some(Self::Success),
            300..=699 => Some(Self::Failure),
            _ => None,
        }
    }
}

/// A FIFO that holds its first element inline: a machine emits at most one
/// message or event per input in the common case.
#[derive(Debug)]
struct Queue<T> {
    first: Option<T>,
    rest: VecDeque<T>,
}

impl<T> Default for Queue<T> {
    fn default() -> Self {
        Self {
            first: None,
            rest: VecDeque::new(),
        }
    }
}

impl<T> Queue<T> {
    fn push_back(&mut self, item: T) {
        if self.first.is_none() {
            // Invariant: `rest` is empty whenever `first` is.
            self.first = Some(item);
        } else {
            self.rest.push_back(item);
        }
    }

    fn pop_front(&mut self) -> Option<T> {
        let item = self.first.take()?;
        self.first = self.rest.pop_front();
        Some(item)
    }

    fn is_empty(&self) -> bool {
        self.first.is_none()
    }
}

/// The output queues of a machine: boxed while they hold something, and
/// nothing but a null pointer in between. They are empty between inputs
/// (the driver drains them after each), while a machine is held for every
/// call in progress and every finished call for up to 32 s: inline, the two
/// queues took 152 bytes of each machine for that whole time; boxed, an
/// input with outputs costs one short-lived allocation.
#[derive(Debug)]
struct Outputs<M>(Option<Box<Pending<M>>>);

#[derive(Debug)]
struct Pending<M> {
    transmit: Queue<M>,
    events: Queue<Event<M>>,
}

impl<M> Default for Outputs<M> {
    fn default() -> Self {
        Self(None)
    }
}

impl<M> Outputs<M> {
    fn pending(&mut self) -> &mut Pending<M> {
        self.0.get_or_insert_with(|| {
            Box::new(Pending {
                transmit: Queue::default(),
                events: Queue::default(),
            })
        })
    }

    fn send(&mut self, message: M) {
        self.pending().transmit.push_back(message);
    }

    fn event(&mut self, event: Event<M>) {
        self.pending().events.push_back(event);
    }

    /// The next message to send, freeing the queues once both are empty.
    fn pop_transmit(&mut self) -> Option<M> {
        let pending = self.0.as_mut()?;
        let message = pending.transmit.pop_front();
        if pending.transmit.is_empty() && pending.events.is_empty() {
            self.0 = None;
        }
        message
    }

    /// The next event, freeing the queues once both are empty.
    fn pop_event(&mut self) -> Option<Event<M>> {
        let pending = self.0.as_mut()?;
        let event = pending.events.pop_front();
        if pending.transmit.is_empty() && pending.events.is_empty() {
            self.0 = None;
        }
        event
    }
}

macro_rules! impl_transaction {
    ($machine:ident) => {
        impl<M: $crate::txn::TxnMessage> $crate::txn::Transaction for $machine<M> {
            type Message = M;
            fn handle_timeout(&mut self, now: ::std::time::Instant) {
                $machine::handle_timeout(self, now)
            }
            fn handle_transport_error(&mut self, now: ::std::time::Instant) {
                $machine::handle_transport_error(self, now)
            }
            fn poll_transmit(&mut self) -> Option<M> {
                $machine::poll_transmit(self)
            }
            fn poll_event(&mut self) -> Option<$crate::txn::Event<M>> {
                $machine::poll_event(self)
            }
            fn poll_timeout(&self) -> Option<::std::time::Instant> {
                $machine::poll_timeout(self)
            }
            fn state(&self) -> $crate::txn::TxnState {
                $machine::state(self)
            }
        }
    };
}
use impl_transaction;
