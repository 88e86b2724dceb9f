//! The server non-INVITE transaction: RFC 3261 §17.2.2.

use std::mem;
use std::time::Instant;

use super::timers::{Settings, after};
use super::{
    Class, Event, Outputs, Reliability, Timer, TimerConfig, TxnMessage, TxnState, impl_transaction,
};

/// The server non-INVITE transaction (RFC 3261 §17.2.2).
///
/// ```text
///                                   |Request received
///                                   |pass to TU
///                                   V
///                             +-----------+
///                             |           |
///                             | Trying    |-------------+
///                             |           |             |
///                             +-----------+             |200-699 from TU
///                                   |                   |send response
///                                   |1xx from TU        |
///                                   |send response      |
///                                   |                   |
///                Request            V      1xx from TU  |
///                send response+-----------+send response|
///                    +--------|           |--------+    |
///                    |        | Proceeding|        |    |
///                    +------->|           |<-------+    |
///             +<--------------|           |             |
///             |Trnsprt Err    +-----------+             |
///             |Inform TU            |                   |
///             |                     |                   |
///             |                     |200-699 from TU    |
///             |                     |send response      |
///             |  Request            V                   |
///             |  send response+-----------+             |
///             |      +--------|           |             |
///             |      |        | Completed |<------------+
///             |      +------->|           |
///             +<--------------|           |
///             |Trnsprt Err    +-----------+
///             |Inform TU            |
///             |                     |Timer J fires
///             |                     |-
///             |                     |
///             |                     V
///             |               +-----------+
///             |               |           |
///             +-------------->| Terminated|
///                             |           |
///                             +-----------+
/// ```
///
/// Request retransmissions are absorbed in every state: silently in
/// "Trying", with the last provisional response sent again in "Proceeding"
/// and the final response in "Completed". Timer J is 64*T1 on unreliable
/// transports and zero on reliable ones. There is no timer in "Trying" or
/// "Proceeding": the TU must respond (a proxy's client transaction ends
/// within 64*T1 with a response or a timeout it turns into 408).
///
/// # Polling order
///
/// After every `handle_*` call and every [`respond`](Self::respond):
///
/// 1. call [`poll_transmit`](Self::poll_transmit) until it returns `None`,
///    passing each response to the transport;
/// 2. call [`poll_event`](Self::poll_event) until it returns `None`,
///    passing each event to the TU ([`Event::Terminated`] comes last);
/// 3. call [`poll_timeout`](Self::poll_timeout) and (re)arm the one timer
///    of this transaction with it; when it expires call
///    [`handle_timeout`](Self::handle_timeout).
///
/// Once [`is_terminated`](Self::is_terminated) is true and the queues are
/// drained, drop the machine.
#[derive(Debug)]
pub struct ServerNonInvite<M> {
    state: State<M>,
    timers: Settings,
    out: Outputs<M>,
}

#[derive(Debug)]
enum State<M> {
    Trying,
    Proceeding { provisional: M },
    Completed { response: M, timer_j: Instant },
    Terminated,
}

impl<M: TxnMessage> ServerNonInvite<M> {
    /// A transaction for a request that was just received and passed to the
    /// TU.
    pub fn new(reliability: Reliability, config: TimerConfig) -> Self {
        Self {
            state: State::Trying,
            timers: Settings::new(&config, reliability),
            out: Outputs::default(),
        }
    }

    /// The TU sends `response` (status code `status`) on this transaction.
    ///
    /// Accepted in "Trying" and "Proceeding"; in "Completed" and
    /// "Terminated", and for status codes outside 100..=699, it is dropped.
    pub fn respond(&mut self, now: Instant, status: u16, response: M) {
        let Some(class) = Class::of(status) else {
            return;
        };
        let state = mem::replace(&mut self.state, State::Terminated);
        self.state = match (state, class) {
            (State::Trying | State::Proceeding { .. }, Class::Provisional) => {
                self.out.send(response.clone());
                State::Proceeding {
                    provisional: response,
                }
            }
            (State::Trying | State::Proceeding { .. }, Class::Success | Class::Failure) => {
                self.out.send(response.clone());
                match self.timers.duration(Timer::J) {
                    Some(j) if !j.is_zero() => State::Completed {
                        response,
                        timer_j: after(now, j),
                    },
                    _ => self.terminate(),
                }
            }
            (state, _) => state,
        };
    }

    /// A retransmission of the request matched this transaction (RFC 3261
    /// §17.2.3): absorbed, with the last response sent again.
    pub fn handle_request(&mut self, _now: Instant) {
        match &self.state {
            State::Trying => {}
            State::Proceeding { provisional } => self.out.send(provisional.clone()),
            State::Completed { response, .. } => self.out.send(response.clone()),
            State::Terminated => return,
        }
        self.out.event(Event::RequestRetransmission);
    }

    /// Handles every timer that expired at `now`. Calling it early is
    /// harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let State::Completed { timer_j, .. } = self.state
            && now >= timer_j
        {
            self.state = self.terminate();
        }
    }

    /// The transport failed to send a response of this transaction
    /// (§17.2.4): the TU is told and the transaction terminates.
    pub fn handle_transport_error(&mut self, _now: Instant) {
        if !matches!(self.state, State::Terminated) {
            self.out.event(Event::TransportError);
            self.state = self.terminate();
        }
    }

    /// The next message to pass to the transport.
    pub fn poll_transmit(&mut self) -> Option<M> {
        self.out.pop_transmit()
    }

    /// The next event for the TU.
    pub fn poll_event(&mut self) -> Option<Event<M>> {
        self.out.pop_event()
    }

    /// The earliest running timer's deadline.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.state {
            State::Completed { timer_j, .. } => Some(*timer_j),
            State::Trying | State::Proceeding { .. } | State::Terminated => None,
        }
    }

    /// The current state.
    pub fn state(&self) -> TxnState {
        match self.state {
            State::Trying => TxnState::Trying,
            State::Proceeding { .. } => TxnState::Proceeding,
            State::Completed { .. } => TxnState::Completed,
            State::Terminated => TxnState::Terminated,
        }
    }

    /// True once the transaction reached "Terminated".
    pub fn is_terminated(&self) -> bool {
        matches!(self.state, State::Terminated)
    }

    fn terminate(&mut self) -> State<M> {
        self.out.event(Event::Terminated);
        State::Terminated
    }
}

impl_transaction!(ServerNonInvite);
