//! Overload detection on the UDP receive path.
//!
//! A node past its capacity does not see its backlog in its own queues when
//! the receive and core tasks share a core: the datagrams wait in the
//! kernel's socket buffer, and the kernel drops what does not fit. The
//! receive loop therefore asks the kernel when each datagram arrived
//! (`SO_TIMESTAMPNS`) and how many it dropped (`SO_RXQ_OVFL`), and feeds
//! both to a [`QueueMonitor`]: a standing queue is one whose *smallest*
//! waiting time over an interval stays above a target (the CoDel rule: a
//! burst drains within the interval, a standing queue does not), or one
//! that lost datagrams in two intervals running (a short pause of the node
//! can overflow the buffer once; the senders' retransmissions recover
//! those datagrams, while refusing calls would lose them for good). While
//! the queue stands, [`ShedSignal`] tells the core to refuse new calls
//! with 503, which costs the node far less than relaying them, so the
//! queue drains instead of every call timing out.
//!
//! [`QueueMonitor`] is sans-IO (times and counters in, verdicts out); the
//! socket options and clocks are in `transport.rs`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The measuring interval: a queue that drains within it is not overload.
/// Half a second (SIP's T1): long enough that the backlog of a short stall
/// of the node (a large table growing, say) drains within it even at 80 %
/// load, short enough to act before the retransmissions of a real overload
/// pile up.
pub const INTERVAL: Duration = Duration::from_millis(500);

/// Lost datagrams, per this many received in an interval, that make the
/// interval lossy (1 %): a single loss in a retransmission burst does not,
/// a socket buffer overflowing does. Two lossy intervals running make the
/// queue count as standing.
///
/// One is not enough: a short pause of the node can overflow even a 4 MiB
/// buffer at these rates (measured: 2 s into a benchmark window at 9,000
/// cps, 539 of 34,698 datagrams lost in one interval, whose shortest wait
/// was 1 µs, so the queue was empty again within it). Refusing a fifth of
/// the new calls for a second after that failed 1,373 calls, while the
/// callers had already retransmitted what was lost. A node that does not
/// keep up loses datagrams in every interval, so it is still seen, one
/// interval later; with a buffer large enough to stand for the delay
/// target, at once.
const LOSS_RATIO: u64 = 100;

/// What one interval of a receive queue looked like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// The shortest time a datagram waited in the kernel during the
    /// interval (`None`: no datagram carried a timestamp).
    pub min_delay: Option<Duration>,
    /// Datagrams received in the interval.
    pub received: u64,
    /// Datagrams the kernel dropped in the interval (socket buffer full).
    pub dropped: u64,
    /// Whether the queue stood: the node is not keeping up (the shortest
    /// wait reached the target, or this interval and the one before both
    /// lost at least one datagram in [`LOSS_RATIO`]).
    pub standing: bool,
}

/// Tracks one receive queue over [`INTERVAL`]s.
#[derive(Debug)]
pub struct QueueMonitor {
    target: Duration,
    interval: Duration,
    start: Option<Instant>,
    min_delay: Option<Duration>,
    received: u64,
    /// The socket's drop counter at the start of the window and now.
    drops_at_start: u32,
    last_drops: u32,
    /// Whether the last finished interval lost at least one datagram in
    /// [`LOSS_RATIO`].
    lossy: bool,
}

impl QueueMonitor {
    /// A monitor that calls a queue standing when its smallest waiting time
    /// over `interval` is at least `target`.
    pub fn new(target: Duration, interval: Duration) -> Self {
        Self {
            target,
            interval,
            start: None,
            min_delay: None,
            received: 0,
            drops_at_start: 0,
            last_drops: 0,
            lossy: false,
        }
    }

    /// One received datagram: how long it waited in the kernel (if known)
    /// and the socket's drop counter when it was taken (the kernel's counter
    /// is cumulative from the socket's creation, wraps, and is only reported
    /// once it is not zero: `None` leaves it as it was). Returns the finished
    /// window when this datagram ends an interval.
    pub fn observe(
        &mut self,
        now: Instant,
        delay: Option<Duration>,
        drops: Option<u32>,
    ) -> Option<Window> {
        if let Some(d) = delay {
            self.min_delay = Some(self.min_delay.map_or(d, |m| m.min(d)));
        }
        if let Some(count) = drops {
            self.last_drops = count;
        }
        self.received += 1;
        let start = *self.start.get_or_insert(now);
        if now.saturating_duration_since(start) < self.interval {
            return None;
        }
        let dropped = u64::from(self.last_drops.wrapping_sub(self.drops_at_start));
        let lossy = dropped > 0 && dropped * LOSS_RATIO >= self.received;
        let standing = self.min_delay.is_some_and(|d| d >= self.target) || (lossy && self.lossy);
        self.lossy = lossy;
        let window = Window {
            min_delay: self.min_delay,
            received: self.received,
            dropped,
            standing,
        };
        self.start = Some(now);
        self.min_delay = None;
        self.received = 0;
        self.drops_at_start = self.last_drops;
        Some(window)
    }
}

/// Shared between the receive loops and the core: how many per mille of
/// new calls to refuse, adjusted at every finished window (AIMD on the
/// share of calls admitted: a standing queue takes a fifth of the admitted
/// share away, a drained one gives back 10 % of all calls), plus the figures
/// behind it.
#[derive(Debug)]
pub struct ShedSignal {
    epoch: Instant,
    /// Per mille of new calls to refuse.
    permille: AtomicU64,
    /// When the last window finished, in microseconds after `epoch`.
    at_us: AtomicU64,
    /// The last window's smallest kernel queueing delay, in microseconds.
    delay_us: AtomicU64,
    /// Datagrams the kernel dropped on the node's UDP sockets (as seen by
    /// the monitors).
    dropped: AtomicU64,
}

/// Per mille given back to new calls by each window without a standing
/// queue.
const RECOVERY_STEP: u64 = 100;

impl ShedSignal {
    /// A signal that is not shedding.
    pub fn new(epoch: Instant) -> Self {
        Self {
            epoch,
            permille: AtomicU64::new(0),
            at_us: AtomicU64::new(0),
            delay_us: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        }
    }

    /// Records a finished window seen at `now` and adjusts the share of
    /// new calls refused.
    pub fn record(&self, now: Instant, window: &Window) {
        if let Some(d) = window.min_delay {
            self.delay_us.store(micros(d), Ordering::Relaxed);
        }
        if window.dropped > 0 {
            self.dropped.fetch_add(window.dropped, Ordering::Relaxed);
        }
        let at = micros(now.saturating_duration_since(self.epoch));
        let current = if self.is_stale(at) {
            0
        } else {
            self.permille.load(Ordering::Relaxed)
        };
        let next = if window.standing {
            current + (1000 - current).div_ceil(5)
        } else {
            current.saturating_sub(RECOVERY_STEP)
        };
        self.permille.store(next, Ordering::Relaxed);
        self.at_us.store(at, Ordering::Relaxed);
    }

    /// Per mille of new calls to refuse at `now` (0 once no window has
    /// finished for two intervals: the traffic stopped, so did the queue).
    pub fn shed_permille(&self, now: Instant) -> u16 {
        let now = micros(now.saturating_duration_since(self.epoch));
        if self.is_stale(now) {
            return 0;
        }
        u16::try_from(self.permille.load(Ordering::Relaxed).min(1000)).unwrap_or(1000)
    }

    fn is_stale(&self, now_us: u64) -> bool {
        let at = self.at_us.load(Ordering::Relaxed);
        now_us.saturating_sub(at) > micros(2 * INTERVAL)
    }

    /// The last window's smallest kernel queueing delay.
    pub fn queue_delay(&self) -> Duration {
        Duration::from_micros(self.delay_us.load(Ordering::Relaxed))
    }

    /// Datagrams the kernel dropped on the node's UDP sockets so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);
    /// The monitor tests' interval (the monitor takes any).
    const IV: Duration = Duration::from_millis(100);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn run(
        m: &mut QueueMonitor,
        t0: Instant,
        samples: &[(u64, Option<u64>, Option<u32>)],
    ) -> Vec<Window> {
        samples
            .iter()
            .filter_map(|&(at, delay, drops)| m.observe(t0 + ms(at), delay.map(ms), drops))
            .collect()
    }

    #[test]
    fn a_burst_that_drains_is_not_standing() {
        let t0 = Instant::now();
        let mut m = QueueMonitor::new(20 * MS, IV);
        // Delays of 50 ms during a burst, then the queue empties.
        let w = run(
            &mut m,
            t0,
            &[
                (0, Some(50), None),
                (30, Some(60), None),
                (60, Some(0), None),
                (100, Some(1), None),
            ],
        );
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].min_delay, Some(Duration::ZERO));
        assert_eq!(w[0].received, 4);
        assert!(!w[0].standing);
    }

    #[test]
    fn a_queue_that_never_drains_is_standing() {
        let t0 = Instant::now();
        let mut m = QueueMonitor::new(20 * MS, IV);
        let w = run(
            &mut m,
            t0,
            &[
                (0, Some(30), None),
                (50, Some(25), None),
                (100, Some(40), None),
            ],
        );
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].min_delay, Some(25 * MS));
        assert!(w[0].standing);
        // The next window starts afresh: a drained queue ends the verdict.
        let w = run(&mut m, t0, &[(150, Some(0), None), (200, Some(0), None)]);
        assert_eq!(w.len(), 1);
        assert!(!w[0].standing);
        assert_eq!(w[0].received, 2);
    }

    #[test]
    fn losses_count_against_the_datagrams_of_the_window() {
        let t0 = Instant::now();
        let mut m = QueueMonitor::new(20 * MS, IV);
        // No count until the kernel drops something, then 1.
        let mut samples: Vec<_> = (0..200).map(|i| (i / 2, Some(0), None)).collect();
        samples.push((100, Some(0), Some(1)));
        let w = run(&mut m, t0, &samples);
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].dropped, 1);
        assert!(!w[0].standing, "one loss in 201 datagrams is a burst");
        // 5 losses in 100 datagrams: the buffer overflowed, but the queue
        // drained (every datagram found it empty): a pause, not overload.
        let mut samples: Vec<_> = (0..99).map(|i| (101 + i, Some(0), Some(1))).collect();
        samples.push((200, Some(0), Some(6)));
        let w = run(&mut m, t0, &samples);
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].dropped, 5);
        assert_eq!(w[0].received, 100);
        assert!(!w[0].standing, "one lossy interval is a pause");
        // Losses again in the next interval: the node is not keeping up.
        let mut samples: Vec<_> = (0..99).map(|i| (201 + i, Some(0), Some(6))).collect();
        samples.push((300, Some(0), Some(8)));
        let w = run(&mut m, t0, &samples);
        assert_eq!(w[0].dropped, 2);
        assert!(w[0].standing, "losses in two intervals running");
        // An interval without losses ends it, and the next lossy one is
        // again a pause.
        let w = run(&mut m, t0, &[(350, Some(0), None), (400, Some(0), None)]);
        assert!(!w[0].standing);
        let w = run(&mut m, t0, &[(450, Some(0), None), (500, Some(0), Some(9))]);
        assert_eq!(w[0].dropped, 1);
        assert!(!w[0].standing);
    }

    #[test]
    fn a_standing_delay_needs_no_losses() {
        let t0 = Instant::now();
        let mut m = QueueMonitor::new(20 * MS, IV);
        // A lossy interval, then one whose queue stood without losses.
        let w = run(&mut m, t0, &[(0, Some(0), None), (100, Some(0), Some(5))]);
        assert!(!w[0].standing);
        let w = run(
            &mut m,
            t0,
            &[(150, Some(30), Some(5)), (200, Some(25), Some(5))],
        );
        assert_eq!(w[0].dropped, 0);
        assert!(w[0].standing);
    }

    #[test]
    fn the_drop_counter_wraps() {
        let t0 = Instant::now();
        let mut m = QueueMonitor::new(20 * MS, IV);
        let w = run(
            &mut m,
            t0,
            &[(0, None, None), (100, None, Some(u32::MAX - 1))],
        );
        assert_eq!(w[0].dropped, u64::from(u32::MAX - 1));
        assert!(!w[0].standing);
        let w = run(&mut m, t0, &[(150, None, None), (200, None, Some(3))]);
        assert_eq!(w[0].dropped, 5);
        assert_eq!(w[0].min_delay, None);
        assert!(w[0].standing);
    }

    fn window(standing: bool) -> Window {
        Window {
            min_delay: Some(if standing { 30 * MS } else { MS }),
            received: 10,
            dropped: u64::from(standing),
            standing,
        }
    }

    #[test]
    fn the_share_refused_grows_while_the_queue_stands_and_shrinks_after() {
        let t0 = Instant::now();
        let signal = ShedSignal::new(t0);
        assert_eq!(signal.shed_permille(t0), 0);
        let mut seen = Vec::new();
        let mut at = t0;
        for standing in [true, true, true, false, false, true] {
            at += INTERVAL;
            signal.record(at, &window(standing));
            seen.push(signal.shed_permille(at));
        }
        // A fifth of the admitted share goes at each standing window; 10 %
        // comes back at each drained one.
        assert_eq!(seen, vec![200, 360, 488, 388, 288, 431]);
        assert_eq!(signal.queue_delay(), 30 * MS);
        assert_eq!(signal.dropped(), 4);
        // Sustained overload converges on refusing (nearly) everything.
        for _ in 0..40 {
            at += INTERVAL;
            signal.record(at, &window(true));
        }
        assert_eq!(signal.shed_permille(at), 1000);
    }

    #[test]
    fn shedding_ends_when_the_traffic_stops() {
        let t0 = Instant::now();
        let signal = ShedSignal::new(t0);
        let at = t0 + INTERVAL;
        signal.record(at, &window(true));
        assert_eq!(signal.shed_permille(at + 2 * INTERVAL - MS), 200);
        // No window for two intervals: nothing is waiting any more.
        assert_eq!(signal.shed_permille(at + 2 * INTERVAL + MS), 0);
        // Traffic that comes back starts from nothing refused.
        let later = at + 10 * INTERVAL;
        signal.record(later, &window(false));
        assert_eq!(signal.shed_permille(later), 0);
        signal.record(later + INTERVAL, &window(true));
        assert_eq!(signal.shed_permille(later + INTERVAL), 200);
    }
}
