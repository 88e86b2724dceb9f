//! The client non-INVITE transaction: RFC 3261 §17.1.2.

use std::mem;
use std::time::Instant;

use super::timers::{Retransmit, Settings, after};
use super::{
    Class, Event, Outputs, Reliability, Timer, TimerConfig, TxnMessage, TxnState, impl_transaction,
};

/// The client non-INVITE transaction (RFC 3261 §17.1.2), used for every
/// request but INVITE and ACK (ACK has no transaction; a CANCEL has its
/// own).
///
/// ```text
///                                |Request from TU
///                                |send request
///            Timer E             V
///            send request  +-----------+
///                +---------|           |-------------------+
///                |         |  Trying   |  Timer F          |
///                +-------->|           |  or Transport Err.|
///                          +-----------+  inform TU        |
///             200-699         |  |                         |
///             resp. to TU     |  |1xx                      |
///             +---------------+  |resp. to TU              |
///             |                  |                         |
///             |   Timer E        V       Timer F           |
///             |   send req +-----------+ or Transport Err. |
///             |  +---------|           | inform TU         |
///             |  |         |Proceeding |------------------>|
///             |  +-------->|           |-----+             |
///             |            +-----------+     |1xx          |
///             |              |      ^        |resp to TU   |
///             | 200-699      |      +--------+             |
///             | resp. to TU  |                             |
///             |              |                             |
///             |              V                             |
///             |            +-----------+                   |
///             |            |           |                   |
///             |            | Completed |                   |
///             |            |           |                   |
///             |            +-----------+                   |
///             |              ^   |                         |
///             |              |   | Timer K                 |
///             +--------------+   | -                       |
///                                |                         |
///                                V                         |
///          NOTE:           +-----------+                   |
///                          |           |                   |
///      transitions         | Terminated|<------------------+
///      labeled with        |           |
///      the event           +-----------+
///      over the action
///      to take
/// ```
///
/// Timer E runs only on unreliable transports: T1, doubling up to T2 in
/// "Trying" and T2 in "Proceeding" (retransmissions at 0.5, 1.5, 3.5, 7.5,
/// 11.5, ... s with the defaults). Timer F (64*T1) runs in "Trying" and
/// "Proceeding" on every transport. Timer K is T4 on unreliable transports
/// and zero on reliable ones. Response retransmissions in "Completed" are
/// absorbed.
///
/// # Polling order
///
/// After [`new`](Self::new) and after every `handle_*` call:
///
/// 1. call [`poll_transmit`](Self::poll_transmit) until it returns `None`,
///    passing each message to the transport;
/// 2. call [`poll_event`](Self::poll_event) until it returns `None`,
///    passing each event to the TU ([`Event::Terminated`] comes last);
/// 3. call [`poll_timeout`](Self::poll_timeout) and (re)arm the one timer
///    of this transaction with it; when it expires call
///    [`handle_timeout`](Self::handle_timeout).
///
/// Once [`is_terminated`](Self::is_terminated) is true and the queues are
/// drained, drop the machine.
#[derive(Debug)]
pub struct ClientNonInvite<M> {
    state: State<M>,
    timers: Settings,
    out: Outputs<M>,
}

#[derive(Debug)]
enum State<M> {
    /// "Trying" and "Proceeding" share their data.
    Waiting {
        proceeding: bool,
        request: M,
        timer_e: Option<Retransmit>,
        timer_f: Instant,
    },
    Completed {
        timer_k: Instant,
    },
    Terminated,
}

impl<M: TxnMessage> ClientNonInvite<M> {
    /// Starts the transaction at `now`: `request` is queued for
    /// [`poll_transmit`](Self::poll_transmit) and Timers E and F start.
    pub fn new(now: Instant, request: M, reliability: Reliability, config: TimerConfig) -> Self {
        let mut out = Outputs::default();
        out.send(request.clone());
        Self {
            state: State::Waiting {
                proceeding: false,
                request,
                timer_e: Retransmit::start(now, &config, reliability),
                timer_f: after(now, config.timeout()),
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
        self.state = match (state, class) {
            (
                State::Waiting {
                    request,
                    timer_e,
                    timer_f,
                    ..
                },
                Class::Provisional,
            ) => {
                self.out.event(Event::Response { status, response });
                State::Waiting {
                    proceeding: true,
                    request,
                    timer_e,
                    timer_f,
                }
            }
            (State::Waiting { .. }, Class::Success | Class::Failure) => {
                self.out.event(Event::Response { status, response });
                match self.timers.duration(Timer::K) {
                    Some(k) if !k.is_zero() => State::Completed {
                        timer_k: after(now, k),
                    },
                    _ => self.terminate(),
                }
            }
            // "Completed" absorbs retransmissions; "Terminated" ignores all.
            (state, _) => state,
        };
    }

    /// Handles every timer that expired at `now`. Calling it early is
    /// harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        let state = mem::replace(&mut self.state, State::Terminated);
        self.state = match state {
            State::Waiting {
                proceeding,
                request,
                timer_e,
                timer_f,
            } => {
                if now >= timer_f {
                    self.out.event(Event::Timeout(Timer::F));
                    self.terminate()
                } else {
                    let timer_e = match timer_e {
                        Some(e) if now >= e.at => {
                            self.out.send(request.clone());
                            Some(if proceeding {
                                Retransmit::reset(now, self.timers.t2())
                            } else {
                                e.next(now, Some(self.timers.t2()))
                            })
                        }
                        other => other,
                    };
                    State::Waiting {
                        proceeding,
                        request,
                        timer_e,
                        timer_f,
                    }
                }
            }
            State::Completed { timer_k } if now >= timer_k => self.terminate(),
            other => other,
        };
    }

    /// The transport reported a fatal error for the request (§17.1.4): the
    /// TU is told and the transaction terminates.
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
            State::Waiting {
                timer_e, timer_f, ..
            } => Some(timer_e.map_or(*timer_f, |e| e.at.min(*timer_f))),
            State::Completed { timer_k } => Some(*timer_k),
            State::Terminated => None,
        }
    }

    /// The current state.
    pub fn state(&self) -> TxnState {
        match self.state {
            State::Waiting {
                proceeding: false, ..
            } => TxnState::Trying,
            State::Waiting {
                proceeding: true, ..
            } => TxnState::Proceeding,
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

impl_transaction!(ClientNonInvite);
