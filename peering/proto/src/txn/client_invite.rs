//! The client INVITE transaction: RFC 3261 §17.1.1 as corrected by RFC 6026.

use std::mem;
use std::time::Instant;

use super::timers::{Retransmit, Settings, after};
use super::{
    Class, Event, Outputs, Reliability, Timer, TimerConfig, TxnMessage, TxnState, impl_transaction,
};

/// The client INVITE transaction (RFC 3261 §17.1.1, RFC 6026 §7.2).
///
/// ```text
///                                |INVITE from TU
///              Timer A fires     |INVITE sent      Timer B fires
///              Reset A,          V                 or Transport Err.
///              INVITE sent +-----------+           inform TU
///                +---------|           |--------------------------+
///                |         |  Calling  |                          |
///                +-------->|           |-----------+              |
///   300-699                +-----------+ 2xx       |              |
///   ACK sent                  |  |       2xx to TU |              |
///   resp. to TU               |  |1xx              |              |
///   +-------------------------+  |1xx to TU        |              |
///   |                            |                 |              |
///   |                1xx         V                 |              |
///   |                1xx to TU +-----------+       |              |
///   |                +---------|           |       |              |
///   |                |         |Proceeding |       |              |
///   |                +-------->|           |       |              |
///   |                          +-----------+ 2xx   |              |
///   |         300-699             |    |    2xx to TU             |
///   |         ACK sent,  +--------+    +---------------+          |
///   |         resp. to TU|                         |   |          |
///   |                    |                         V   V          |
///   |                    |                   +-----------+        |
///   |                    |                   |           |        |
///   |                    |                   | Accepted  |---+ 2xx|
///   |                    |                   |           |   | to |
///   |                    |                   +-----------+<--+ TU |
///   |  300-699           V                         |              |
///   |  ACK sent    +-----------+  Transport Err.   |              |
///   |  +-----------|           |  Inform TU        |              |
///   |  |           | Completed |--------------+    |              |
///   |  +---------->|           |              |    |Timer M fires |
///   |              +-----------+              |    |-             |
///   |                    ^   |                |    |              |
///   |                    |   | Timer D fires  |    |              |
///   +--------------------+   | -              |    |              |
///                            V                V    V              |
///                           +-----------------------+             |
///                           |      Terminated       |<------------+
///                           +-----------------------+
/// ```
///
/// Timer A runs only on unreliable transports and doubles without a cap
/// (retransmissions at 0.5, 1.5, 3.5, 7.5, 15.5 and 31.5 s with the
/// default T1); Timer B (64*T1) ends "Calling" on every transport. There is
/// no timer in "Proceeding": the proxy core runs Timer C (§16.6 step 11)
/// and CANCELs. Timer D is the larger of 32 s and 64*T1 on unreliable
/// transports and zero on reliable ones (the machine then goes from "Calling"/"Proceeding"
/// straight to "Terminated"). Timer M is 64*T1.
///
/// Retransmissions of the non-2xx final response in "Completed" make the
/// machine send its ACK again and are not passed to the TU. In "Accepted",
/// every 2xx is passed to the TU (the ACK for a 2xx is the TU's job), other
/// responses are dropped.
///
/// # Polling order
///
/// After [`new`](Self::new) and after every `handle_*` call:
///
/// 1. call [`poll_transmit`](Self::poll_transmit) until it returns `None`,
///    passing each message to the transport (the request, its
///    retransmissions, the ACK);
/// 2. call [`poll_event`](Self::poll_event) until it returns `None`,
///    passing each event to the TU ([`Event::Terminated`] comes last);
/// 3. call [`poll_timeout`](Self::poll_timeout) and (re)arm the one timer
///    of this transaction with it, replacing any earlier deadline; when it
///    expires call [`handle_timeout`](Self::handle_timeout).
///
/// Once [`is_terminated`](Self::is_terminated) is true and the queues are
/// drained, drop the machine.
#[derive(Debug)]
pub struct ClientInvite<M> {
    state: State<M>,
    timers: Settings,
    out: Outputs<M>,
}

#[derive(Debug)]
enum State<M> {
    Calling {
        request: M,
        timer_a: Option<Retransmit>,
        timer_b: Instant,
    },
    Proceeding {
        request: M,
    },
    Completed {
        ack: M,
        timer_d: Instant,
    },
    Accepted {
        timer_m: Instant,
    },
    Terminated,
}

impl<M: TxnMessage> ClientInvite<M> {
    /// Starts the transaction at `now`: `request` (the INVITE, with its top
    /// Via and branch already in place) is queued for
    /// [`poll_transmit`](Self::poll_transmit) and Timers A and B start.
    pub fn new(now: Instant, request: M, reliability: Reliability, config: TimerConfig) -> Self {
        let mut out = Outputs::default();
        out.send(request.clone());
        Self {
            state: State::Calling {
                request,
                timer_a: Retransmit::start(now, &config, reliability),
                timer_b: after(now, config.timeout()),
            },
            timers: Settings::new(&config, reliability),
            out,
        }
    }

    /// A response matched this transaction (RFC 3261 §17.1.3). `status` is
    /// its status code; values outside 100..=699 are dropped.
    pub fn handle_response(&mut self, now: Instant, status: u16, response: M) {
        let Some(class) = Class::of(status) else {
            return;
        };
        let state = mem::replace(&mut self.state, State::Terminated);
        self.state = self.on_response(state, now, class, status, response);
    }

    fn on_response(
        &mut self,
        state: State<M>,
        now: Instant,
        class: Class,
        status: u16,
        response: M,
    ) -> State<M> {
        match (state, class) {
            (
                State::Calling { request, .. } | State::Proceeding { request },
                Class::Provisional,
            ) => {
                self.out.event(Event::Response { status, response });
                State::Proceeding { request }
            }
            (State::Calling { .. } | State::Proceeding { .. }, Class::Success) => {
                // RFC 6026 §7.2: the TU gets the 2xx and sends the ACK itself.
                self.out.event(Event::Response { status, response });
                State::Accepted {
                    timer_m: after(now, self.timers.timeout()),
                }
            }
            (State::Calling { request, .. } | State::Proceeding { request }, Class::Failure) => {
                let ack = M::ack_for(&request, &response);
                self.out.send(ack.clone());
                self.out.event(Event::Response { status, response });
                match self.timers.duration(Timer::D) {
                    Some(d) if !d.is_zero() => State::Completed {
                        ack,
                        timer_d: after(now, d),
                    },
                    _ => self.terminate(),
                }
            }
            (State::Completed { ack, timer_d }, Class::Failure) => {
                // §17.1.1.2: a retransmitted final response; resend the ACK.
                self.out.send(ack.clone());
                State::Completed { ack, timer_d }
            }
            (State::Accepted { timer_m }, Class::Success) => {
                // RFC 6026: 2xx retransmissions (and 2xx from other
                // forks) go to the TU.
                self.out.event(Event::Response { status, response });
                State::Accepted { timer_m }
            }
            // Anything else is stale or bogus: absorbed.
            (state, _) => state,
        }
    }

    /// Handles every timer that expired at `now`. Calling it early is
    /// harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        let state = mem::replace(&mut self.state, State::Terminated);
        self.state = match state {
            State::Calling {
                request,
                timer_a,
                timer_b,
            } => {
                if now >= timer_b {
                    self.out.event(Event::Timeout(Timer::B));
                    self.terminate()
                } else {
                    let timer_a = match timer_a {
                        Some(a) if now >= a.at => {
                            self.out.send(request.clone());
                            Some(a.next(now, None))
                        }
                        other => other,
                    };
                    State::Calling {
                        request,
                        timer_a,
                        timer_b,
                    }
                }
            }
            State::Completed { timer_d, .. } if now >= timer_d => self.terminate(),
            State::Accepted { timer_m } if now >= timer_m => self.terminate(),
            other => other,
        };
    }

    /// The transport reported a fatal error for this transaction's request
    /// or ACK (§17.1.4): the TU is told and the transaction terminates.
    pub fn handle_transport_error(&mut self, _now: Instant) {
        if !matches!(self.state, State::Terminated) {
            self.out.event(Event::TransportError);
            self.state = self.terminate();
        }
    }

    /// The request, while no final response has arrived (Calling and
    /// Proceeding): what a CANCEL is built from (§9.1).
    pub fn request(&self) -> Option<&M> {
        match &self.state {
            State::Calling { request, .. } | State::Proceeding { request } => Some(request),
            _ => None,
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
            State::Calling {
                timer_a, timer_b, ..
            } => Some(timer_a.map_or(*timer_b, |a| a.at.min(*timer_b))),
            State::Completed { timer_d, .. } => Some(*timer_d),
            State::Accepted { timer_m } => Some(*timer_m),
            State::Proceeding { .. } | State::Terminated => None,
        }
    }

    /// The current state.
    pub fn state(&self) -> TxnState {
        match self.state {
            State::Calling { .. } => TxnState::Calling,
            State::Proceeding { .. } => TxnState::Proceeding,
            State::Completed { .. } => TxnState::Completed,
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

impl_transaction!(ClientInvite);
