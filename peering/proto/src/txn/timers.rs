//! RFC 3261 §17 timer values (Table 4 of §A) and the retransmission timer shape.
//!
//! ```text
//! Timer    Value            Section               Meaning
//! ----------------------------------------------------------------------
//! T1       500ms default    Section 17.1.1.1     RTT Estimate
//! T2       4s               Section 17.1.2.2     The maximum retransmit
//!                                                interval for non-INVITE
//!                                                requests and INVITE
//!                                                responses
//! T4       5s               Section 17.1.2.2     Maximum duration a
//!                                                message will
//!                                                remain in the network
//! Timer A  initially T1     Section 17.1.1.2     INVITE request retransmit
//!                                                interval, for UDP only
//! Timer B  64*T1            Section 17.1.1.2     INVITE transaction
//!                                                timeout timer
//! Timer C  > 3min           Section 16.6         proxy INVITE transaction
//!                           bullet 11            timeout
//! Timer D  > 32s for UDP    Section 17.1.1.2     Wait time for response
//!          0s for TCP/SCTP                       retransmits
//! Timer E  initially T1     Section 17.1.2.2     non-INVITE request
//!                                                retransmit interval,
//!                                                UDP only
//! Timer F  64*T1            Section 17.1.2.2     non-INVITE transaction
//!                                                timeout timer
//! Timer G  initially T1     Section 17.2.1       INVITE response
//!                                                retransmit interval
//! Timer H  64*T1            Section 17.2.1       Wait time for
//!                                                ACK receipt
//! Timer I  T4 for UDP       Section 17.2.1       Wait time for
//!          0s for TCP/SCTP                       ACK retransmits
//! Timer J  64*T1 for UDP    Section 17.2.2       Wait time for
//!          0s for TCP/SCTP                       non-INVITE request
//!                                                retransmits
//! Timer K  T4 for UDP       Section 17.1.2.2     Wait time for
//!          0s for TCP/SCTP                       response retransmits
//! ```
//!
//! RFC 6026 adds Timer L (64*T1, server INVITE "Accepted": wait time
//! for INVITE retransmissions and 2xx retransmissions from the TU) and
//! Timer M (64*T1, client INVITE "Accepted": wait time for 2xx
//! retransmissions). Timer C belongs to the proxy core (it decides whether
//! to CANCEL), not to the transaction layer.

use std::fmt;
use std::time::{Duration, Instant};

/// The base timer values every transaction timer is derived from.
///
/// `Default` gives the RFC 3261 values (T1 = 500 ms, T2 = 4 s, T4 = 5 s).
/// RFC 3261 §17.1.1.1 allows a larger T1 on high-latency links and a
/// smaller one only on networks where the RTT is known to be smaller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimerConfig {
    /// T1, the round-trip time estimate: the first retransmission interval.
    pub t1: Duration,
    /// T2, the cap on the retransmission interval of non-INVITE requests
    /// (Timer E) and of INVITE final responses (Timer G).
    pub t2: Duration,
    /// T4, the longest a message stays in the network: Timers I and K.
    pub t4: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        Self::RFC3261
    }
}

impl TimerConfig {
    /// The RFC 3261 defaults: T1 = 500 ms, T2 = 4 s, T4 = 5 s.
    pub const RFC3261: Self = Self {
        t1: Duration::from_millis(500),
        t2: Duration::from_secs(4),
        t4: Duration::from_secs(5),
    };

    /// 64*T1: the duration of Timers B, F, H, J (unreliable transports),
    /// L and M, and the lower bound of Timer D (see [`Timer::D`]).
    pub fn timeout(&self) -> Duration {
        self.t1.saturating_mul(64)
    }

    /// The duration of `timer` for the given transport, or `None` for a
    /// retransmission timer (A, E, G) which never runs on a reliable
    /// transport. A zero duration means "fires at once": the machines then
    /// make the transition without arming anything.
    pub fn duration(&self, timer: Timer, reliability: Reliability) -> Option<Duration> {
        let reliable = reliability.is_reliable();
        match timer {
            Timer::A | Timer::E | Timer::G => (!reliable).then_some(self.t1),
            Timer::B | Timer::F | Timer::H | Timer::L | Timer::M => Some(self.timeout()),
            Timer::D => Some(if reliable {
                Duration::ZERO
            } else {
                self.timeout().max(MIN_TIMER_D)
            }),
            Timer::J => Some(if reliable {
                Duration::ZERO
            } else {
                self.timeout()
            }),
            Timer::I | Timer::K => Some(if reliable { Duration::ZERO } else { self.t4 }),
        }
    }
}

/// What a machine keeps of its timer configuration and transport: in 16
/// bytes where a [`TimerConfig`] of `Duration`s and a [`Reliability`] take
/// 56. A machine is held for every call in progress and every finished one
/// for up to 32 s, so this is paid hundreds of thousands of times over.
/// Configurations in whole milliseconds (every one in practice) are held
/// as such; any other is boxed, so every value is kept exactly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Settings {
    Millis {
        t1: u32,
        t2: u32,
        t4: u32,
        reliability: Reliability,
    },
    Exact(Box<(TimerConfig, Reliability)>),
}

impl Settings {
    pub(crate) fn new(config: &TimerConfig, reliability: Reliability) -> Self {
        let millis = |d: Duration| {
            u32::try_from(d.as_millis())
                .ok()
                .filter(|&ms| Duration::from_millis(u64::from(ms)) == d)
        };
        match (millis(config.t1), millis(config.t2), millis(config.t4)) {
            (Some(t1), Some(t2), Some(t4)) => Self::Millis {
                t1,
                t2,
                t4,
                reliability,
            },
            _ => Self::Exact(Box::new((*config, reliability))),
        }
    }

    /// The configuration, as given.
    pub(crate) fn config(&self) -> TimerConfig {
        match self {
            Self::Millis { t1, t2, t4, .. } => TimerConfig {
                t1: Duration::from_millis(u64::from(*t1)),
                t2: Duration::from_millis(u64::from(*t2)),
                t4: Duration::from_millis(u64::from(*t4)),
            },
            Self::Exact(exact) => exact.0,
        }
    }

    pub(crate) fn reliability(&self) -> Reliability {
        match self {
            Self::Millis { reliability, .. } => *reliability,
            Self::Exact(exact) => exact.1,
        }
    }

    /// [`TimerConfig::duration`] of `timer` on this transport.
    pub(crate) fn duration(&self, timer: Timer) -> Option<Duration> {
        self.config().duration(timer, self.reliability())
    }

    /// [`TimerConfig::timeout`]: 64*T1.
    pub(crate) fn timeout(&self) -> Duration {
        self.config().timeout()
    }

    /// T2.
    pub(crate) fn t2(&self) -> Duration {
        self.config().t2
    }
}

/// RFC 3261 §17.1.1.2: Timer D is "at least 32 seconds for unreliable
/// transports", whatever T1 is configured here: the server's T1 may be
/// the default.
const MIN_TIMER_D: Duration = Duration::from_secs(32);

/// Whether the transport under a transaction retransmits by itself.
///
/// RFC 3261 §17: on a reliable transport (TCP, TLS, SCTP) the
/// retransmission timers A, E and G are not run, and Timers D, I, J and K
/// are zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reliability {
    /// UDP: the transaction layer retransmits.
    Unreliable,
    /// TCP, TLS, SCTP, WebSocket: the transport delivers or reports an error.
    Reliable,
}

impl Reliability {
    /// True for [`Reliability::Reliable`].
    pub fn is_reliable(self) -> bool {
        matches!(self, Self::Reliable)
    }
}

/// The transaction timers, named as in RFC 3261 Table 4 and RFC 6026.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Timer {
    /// Client INVITE request retransmission (T1, doubling, unreliable only).
    A,
    /// Client INVITE timeout in "Calling" (64*T1).
    B,
    /// Client INVITE wait for final response retransmissions in
    /// "Completed": at least 32 s on unreliable transports (the RFC's
    /// minimum, which covers a server's Timer H with the default T1) and
    /// at least 64*T1 (our own Timer H window, when T1 is configured
    /// larger); zero on reliable transports.
    D,
    /// Client non-INVITE request retransmission (T1, doubling, capped at
    /// T2; unreliable only).
    E,
    /// Client non-INVITE timeout (64*T1).
    F,
    /// Server INVITE final response retransmission (T1, doubling, capped at
    /// T2; unreliable only).
    G,
    /// Server INVITE wait for the ACK (64*T1).
    H,
    /// Server INVITE wait for ACK retransmissions in "Confirmed" (T4, zero
    /// on reliable transports).
    I,
    /// Server non-INVITE wait for request retransmissions in "Completed"
    /// (64*T1, zero on reliable transports).
    J,
    /// Client non-INVITE wait for response retransmissions in "Completed"
    /// (T4, zero on reliable transports).
    K,
    /// RFC 6026: server INVITE "Accepted" (64*T1).
    L,
    /// RFC 6026: client INVITE "Accepted" (64*T1).
    M,
}

/// The longest any timer may run: durations beyond it (a misconfigured
/// T1, say) are clamped so that computing a deadline cannot overflow.
const MAX_TIMER: Duration = Duration::from_secs(24 * 60 * 60);

/// The deadline `duration` after `now`, clamped to [`MAX_TIMER`].
pub(crate) fn after(now: Instant, duration: Duration) -> Instant {
    let duration = duration.min(MAX_TIMER);
    now.checked_add(duration).unwrap_or(now)
}

impl fmt::Display for Timer {
    /// "Timer A" .. "Timer M", as the RFCs write them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let letter = match self {
            Self::A => "A",
            Self::B => "B",
            Self::D => "D",
            Self::E => "E",
            Self::F => "F",
            Self::G => "G",
            Self::H => "H",
            Self::I => "I",
            Self::J => "J",
            Self::K => "K",
            Self::L => "L",
            Self::M => "M",
        };
        write!(f, "Timer {letter}")
    }
}

/// A running retransmission timer (A, E or G): its deadline and the
/// interval that led to it, in whole nanoseconds (saturating at 584 years,
/// far past [`MAX_TIMER`]): 24 bytes rather than 32 in every machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Retransmit {
    pub(crate) at: Instant,
    interval: u64,
}

/// `duration` in whole nanoseconds, saturated.
fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

impl Retransmit {
    /// Starts a retransmission timer of T1 at `now`, or none on a reliable
    /// transport.
    pub(crate) fn start(
        now: Instant,
        config: &TimerConfig,
        reliability: Reliability,
    ) -> Option<Self> {
        (!reliability.is_reliable()).then(|| Self::reset(now, config.t1))
    }

    /// The timer after it fired at `now`: the interval doubles, capped at
    /// `cap` when given (Timer A has no cap; E and G are capped at T2).
    ///
    /// The next deadline counts from `now`, not from the missed deadline, so
    /// a late driver never causes a burst of catch-up retransmissions.
    pub(crate) fn next(self, now: Instant, cap: Option<Duration>) -> Self {
        let doubled = self.interval.saturating_mul(2);
        let interval = cap.map_or(doubled, |cap| doubled.min(nanos(cap)));
        Self {
            at: after(now, Duration::from_nanos(interval)),
            interval,
        }
    }

    /// The timer reset to a fixed interval (Timer E in "Proceeding" is
    /// reset to T2, RFC 3261 §17.1.2.2).
    pub(crate) fn reset(now: Instant, interval: Duration) -> Self {
        Self {
            at: after(now, interval),
            interval: nanos(interval),
        }
    }
}
