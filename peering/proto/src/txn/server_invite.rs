//! The server INVITE transaction: RFC 3261 §17.2.1 as corrected by RFC 6026.

use std::mem;
use std::time::Instant;

use super::timers::{Retransmit, Settings, after};
use super::{
    Class, Event, Outputs, Reliability, Timer, TimerConfig, TxnMessage, TxnState, impl_transaction,
};

/// The server INVITE transaction (RFC 3261 §17.2.1, RFC 6026 §7.1).
///
/// ```text
///                                |INVITE
///                                |pass INV to TU
///             INVITE             V send 100 if TU won't in 200 ms
///             send response+------------+
///                 +--------|            |--------+ 101-199 from TU
///                 |        |            |        | send response
///                 +------->|            |<-------+
///                          | Proceeding |
///                          |            |--------+ Transport Err.
///                          |            |        | Inform TU
///                          |            |<-------+
///                          +------------+
///             300-699 from TU |    |2xx from TU
///             send response   |    |send response
///              +--------------+    +------------+
///              |                                |
///     INVITE   V          Timer G fires         |
///     send +-----------+  send response         |
///     resp |           |------+                 |
///     +----|           |      |                 |
///     |    | Completed |<-----+                 |
///     +--->|           |                        |
///          |           |--------+ Transport Err.|
///          |           |        | Inform TU     |
///          |           |<-------+               |
///          +-----------+                        |
///  ACK      |    |  Timer H fires               |
///  -        |    +----------+                   V           2xx from TU
///           V      Inform TU|               +----------+    send response
///       +-----------+       |               |          |---------+
///       |           |       |               | Accepted |         |
///       | Confirmed |       |               |          |<--------+
///       |           |       |               +----------+
///       +-----------+       |      INVITE: -  |  ^  |    ACK: to TU
///         |  ACK: -         |      Transport  +--+  |    Timer L fires
///         |  Timer I fires  |      Err.: Inform TU  |    -
///         |  -              |                       |
///         V                 V                       V
///       +-------------------------------------------------+
///       |                    Terminated                   |
///       +-------------------------------------------------+
/// ```
///
/// The transaction starts in "Proceeding" when the TU has the INVITE.
///
/// **100 Trying.** This layer never builds messages, so it does not make
/// the 100 (Trying) itself: the TU (the proxy core, RFC 3261 §16.2) builds
/// it and hands it over with [`respond`](Self::respond)`(now, 100, trying)`
/// right after creating the transaction, as §17.2.1 requires unless the TU
/// answers within 200 ms. From then on, INVITE retransmissions in
/// "Proceeding" are absorbed and the most recent provisional response is
/// sent again.
///
/// **Transport errors** (RFC 6026 §7.1, replacing RFC 3261 §17.2.4 for
/// INVITE): "A server transaction MUST NOT discard transaction state based
/// only on encountering a non-recoverable transport error when sending a
/// response. Instead, the associated INVITE server transaction state
/// machine MUST remain in its current state." The TU is told with
/// [`Event::TransportError`]; Timers H, I and L end the transaction (in
/// "Proceeding" the TU's final response does).
///
/// Timer G runs only on unreliable transports (T1, doubling up to T2);
/// Timer H (64*T1) runs on every transport and ends "Completed" with
/// [`Event::Timeout`]`(Timer::H)` when no ACK came. Timer I is T4 on
/// unreliable transports and zero on reliable ones. In "Accepted" (Timer L,
/// 64*T1) INVITE retransmissions are absorbed without a response (the
/// 2xx retransmissions are the TU's), 2xx responses from the TU are sent,
/// and ACKs go to the TU as [`Event::Ack`].
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
pub struct ServerInvite<M> {
    state: State<M>,
    timers: Settings,
    out: Outputs<M>,
}

#[derive(Debug)]
enum State<M> {
    Proceeding {
        provisional: Option<M>,
    },
    Completed {
        response: M,
        timer_g: Option<Retransmit>,
        timer_h: Instant,
    },
    Confirmed {
        timer_i: Instant,
    },
    Accepted {
        timer_l: Instant,
    },
    Terminated,
}

impl<M: TxnMessage> ServerInvite<M> {
    /// A transaction for an INVITE that was just received and passed to the
    /// TU. No timer runs until the TU responds.
    pub fn new(reliability: Reliability, config: TimerConfig) -> Self {
        Self {
            state: State::Proceeding { provisional: None },
            timers: Settings::new(&config, reliability),
            out: Outputs::default(),
        }
    }

    /// The TU sends `response` (status code `status`) on this transaction.
    ///
    /// Accepted in "Proceeding" (any status) and, for 2xx only, in
    /// "Accepted" (RFC 6026: the TU's 2xx retransmissions pass
    /// through). Anything else, and status codes outside 100..=699, is
    /// dropped: check [`state`](Self::state) first if that matters.
    pub fn respond(&mut self, now: Instant, status: u16, response: M) {
        let Some(class) = Class::of(status) else {
            return;
        };
        let state = mem::replace(&mut self.state, State::Terminated);
        self.state = match (state, class) {
            (State::Proceeding { .. }, Class::Provisional) => {
                self.out.send(response.clone());
                State::Proceeding {
                    provisional: Some(response),
                }
            }
            (State::Proceeding { .. }, Class::Success) => {
                self.out.send(response);
                State::Accepted {
                    timer_l: after(now, self.timers.timeout()),
                }
            }
            (State::Proceeding { .. }, Class::Failure) => {
                self.out.send(response.clone());
                State::Completed {
                    response,
                    timer_g: Retransmit::start(
                        now,
                        &self.timers.config(),
                        self.timers.reliability(),
                    ),
                    timer_h: after(now, self.timers.timeout()),
                }
            }
            (State::Accepted { timer_l }, Class::Success) => {
                self.out.send(response);
                State::Accepted { timer_l }
            }
            (state, _) => state,
        };
    }

    /// A retransmission of the INVITE matched this transaction (RFC 3261
    /// §17.2.3). It is absorbed; in "Proceeding" the last provisional
    /// response and in "Completed" the final response is sent again.
    pub fn handle_request(&mut self, _now: Instant) {
        match &self.state {
            State::Proceeding { provisional } => {
                if let Some(provisional) = provisional {
                    self.out.send(provisional.clone());
                }
            }
            State::Completed { response, .. } => self.out.send(response.clone()),
            State::Confirmed { .. } | State::Accepted { .. } => {}
            State::Terminated => return,
        }
        self.out.event(Event::RequestRetransmission);
    }

    /// An ACK matched this transaction. In "Completed" it moves the
    /// transaction to "Confirmed" (or straight to "Terminated" on a
    /// reliable transport); in "Accepted" it is passed to the TU as
    /// [`Event::Ack`] (RFC 6026 §7.1); elsewhere it is absorbed.
    pub fn handle_ack(&mut self, now: Instant, ack: M) {
        let state = mem::replace(&mut self.state, State::Terminated);
        self.state = match state {
            State::Completed { .. } => match self.timers.duration(Timer::I) {
                Some(i) if !i.is_zero() => State::Confirmed {
                    timer_i: after(now, i),
                },
                _ => self.terminate(),
            },
            State::Accepted { timer_l } => {
                self.out.event(Event::Ack(ack));
                State::Accepted { timer_l }
            }
            other => other,
        };
    }

    /// Handles every timer that expired at `now`. Calling it early is
    /// harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        let state = mem::replace(&mut self.state, State::Terminated);
        self.state = match state {
            State::Completed {
                response,
                timer_g,
                timer_h,
            } => {
                if now >= timer_h {
                    self.out.event(Event::Timeout(Timer::H));
                    self.terminate()
                } else {
                    let timer_g = match timer_g {
                        Some(g) if now >= g.at => {
                            self.out.send(response.clone());
                            Some(g.next(now, Some(self.timers.t2())))
                        }
                        other => other,
                    };
                    State::Completed {
                        response,
                        timer_g,
                        timer_h,
                    }
                }
            }
            State::Confirmed { timer_i } if now >= timer_i => self.terminate(),
            State::Accepted { timer_l } if now >= timer_l => self.terminate(),
            other => other,
        };
    }

    /// The transport failed to send a response of this transaction (after
    /// any RFC 3263 §5 failover the caller does): the TU is told and,
    /// per RFC 6026 §7.1, the transaction stays in its state; its timers
    /// end it.
    pub fn handle_transport_error(&mut self, _now: Instant) {
        if !matches!(self.state, State::Terminated) {
            self.out.event(Event::TransportError);
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
            State::Completed {
                timer_g, timer_h, ..
            } => Some(timer_g.map_or(*timer_h, |g| g.at.min(*timer_h))),
            State::Confirmed { timer_i } => Some(*timer_i),
            State::Accepted { timer_l } => Some(*timer_l),
            State::Proceeding { .. } | State::Terminated => None,
        }
    }

    /// The current state.
    pub fn state(&self) -> TxnState {
        match self.state {
            State::Proceeding { .. } => TxnState::Proceeding,
            State::Completed { .. } => TxnState::Completed,
            State::Confirmed { .. } => TxnState::Confirmed,
            State::Accepted { .. } => TxnState::Accepted,
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

impl_transaction!(ServerInvite);
