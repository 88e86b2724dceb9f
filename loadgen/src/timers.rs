//! The cores' timer queue: a hashed timing wheel of 1 ms ticks.
//!
//! Every call re-arms its timer several times (retransmission, hold,
//! timeout), and a binary heap of all of them, stale ones included, was
//! the UAC's largest single cost after the system calls at 30,000 calls per
//! second (`BinaryHeap::pop`, 4 % of its samples). Here an entry goes into
//! the bucket of its tick in O(1); deadlines more than [`HORIZON`] ahead
//! wait in a small heap until the wheel comes near them.
//!
//! Ticks count from the first `now` a push gives, so a core needs no clock
//! to be built.
//!
//! An entry is `(slot, seq)`: the core checks when it fires whether the
//! slot's timer is still that one, as it did with the heap. Deadlines are
//! rounded up to the next millisecond, so an entry never fires early; it
//! may fire up to a millisecond late.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

/// Ticks (milliseconds) held by the wheel itself.
pub(crate) const HORIZON: u64 = 8192;

/// Timers by millisecond tick since `origin`.
#[derive(Debug)]
pub(crate) struct Timers {
    /// Tick 0: the time of the first push.
    origin: Option<Instant>,
    /// The first tick whose bucket has not been drained yet.
    cursor: u64,
    /// Bucket `t % HORIZON` holds the entries of tick `t`, for `t` in
    /// `cursor..cursor + HORIZON`.
    buckets: Vec<Vec<(u32, u32)>>,
    /// Entries in `buckets`.
    in_wheel: usize,
    /// Entries due further ahead: `(tick, slot, seq)`.
    far: BinaryHeap<Reverse<(u64, u32, u32)>>,
    /// Entries of drained ticks, not handed out yet.
    due: Vec<(u32, u32)>,
}

impl Timers {
    /// An empty queue.
    pub(crate) fn new() -> Self {
        Self {
            origin: None,
            cursor: 0,
            buckets: (0..HORIZON).map(|_| Vec::new()).collect(),
            in_wheel: 0,
            far: BinaryHeap::new(),
            due: Vec::new(),
        }
    }

    /// The tick of `at`, rounded up.
    fn tick_of(origin: Instant, at: Instant) -> u64 {
        let d = at.saturating_duration_since(origin);
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX - HORIZON);
        if d.subsec_nanos().is_multiple_of(1_000_000) {
            ms
        } else {
            ms + 1
        }
    }

    /// The tick `now` is in, rounded down; `None` before tick 0.
    fn tick_now(origin: Instant, now: Instant) -> Option<u64> {
        let ms = now.checked_duration_since(origin)?.as_millis();
        Some(u64::try_from(ms).unwrap_or(u64::MAX - HORIZON))
    }

    fn instant(origin: Instant, tick: u64) -> Instant {
        origin + Duration::from_millis(tick)
    }

    fn place(&mut self, tick: u64, slot: u32, seq: u32) {
        let tick = tick.max(self.cursor);
        if tick - self.cursor < HORIZON {
            self.buckets[(tick % HORIZON) as usize].push((slot, seq));
            self.in_wheel += 1;
        } else {
            self.far.push(Reverse((tick, slot, seq)));
        }
    }

    /// Queues `(slot, seq)` to fire at `at`, pushed at `now` (a deadline
    /// already passed fires at the next call of [`pop_due`](Self::pop_due)).
    pub(crate) fn push(&mut self, now: Instant, at: Instant, slot: u32, seq: u32) {
        let origin = *self.origin.get_or_insert(now);
        let tick = Self::tick_of(origin, at);
        self.place(tick, slot, seq);
    }

    /// The next entry due at `now`, if any; call it until `None`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(u32, u32)> {
        let Some(now_tick) = self.origin.and_then(|o| Self::tick_now(o, now)) else {
            return self.due.pop();
        };
        loop {
            if let Some(entry) = self.due.pop() {
                return Some(entry);
            }
            if self.cursor > now_tick {
                return None;
            }
            if self.in_wheel == 0 {
                // Nothing in the wheel: skip the empty buckets, up to `now`
                // or to where the next far entry comes within reach (it
                // then joins the wheel at its own tick, below).
                let next_far = self.far.peek().map_or(u64::MAX, |Reverse((t, _, _))| *t);
                let jump = next_far.saturating_sub(HORIZON).min(now_tick);
                if jump > self.cursor {
                    self.cursor = jump;
                }
            } else {
                let bucket = &mut self.buckets[(self.cursor % HORIZON) as usize];
                if !bucket.is_empty() {
                    std::mem::swap(&mut self.due, bucket);
                    self.in_wheel -= self.due.len();
                }
            }
            self.cursor += 1;
            // The wheel moved on by a tick: far entries now within reach
            // join it.
            while let Some(Reverse((tick, slot, seq))) = self.far.peek().copied() {
                if tick >= self.cursor + HORIZON {
                    break;
                }
                self.far.pop();
                self.place(tick, slot, seq);
            }
        }
    }

    /// When the earliest entry is due (a time already passed when an entry
    /// is waiting to be handed out).
    pub(crate) fn next(&self) -> Option<Instant> {
        let origin = self.origin?;
        if !self.due.is_empty() {
            return Some(Self::instant(origin, self.cursor.saturating_sub(1)));
        }
        if self.in_wheel > 0 {
            let found = (self.cursor..self.cursor + HORIZON)
                .find(|t| !self.buckets[(t % HORIZON) as usize].is_empty());
            if let Some(tick) = found {
                return Some(Self::instant(origin, tick));
            }
        }
        self.far
            .peek()
            .map(|Reverse((tick, _, _))| Self::instant(origin, *tick))
    }

    /// Drops every entry.
    pub(crate) fn clear(&mut self) {
        for bucket in &mut self.buckets {
            bucket.clear();
        }
        self.in_wheel = 0;
        self.far.clear();
        self.due.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator (no dependency needed).
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self, bound: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 33) % bound
        }
    }

    #[test]
    fn entries_fire_once_never_early_and_at_most_a_tick_late() {
        let origin = Instant::now();
        let mut t = Timers::new();
        let mut rng = Lcg(7);
        // Deadlines of the entries not fired yet, by (deadline, slot).
        let mut pending = std::collections::BTreeSet::new();
        let mut fired = Vec::new();
        let mut deadline = Vec::new();
        let mut now = origin;
        // 20 s of 0.25 ms steps; deadlines up to 30 s ahead (past the
        // wheel's horizon), some already due.
        for step in 0..80_000u32 {
            now += Duration::from_micros(250);
            for _ in 0..rng.next(3) {
                let ahead = match rng.next(10) {
                    0 => Duration::from_micros(rng.next(30_000_000)),
                    1 => Duration::ZERO,
                    _ => Duration::from_micros(rng.next(2_000_000)),
                };
                let slot = u32::try_from(fired.len()).expect("few entries");
                fired.push(false);
                deadline.push(now + ahead);
                pending.insert((now + ahead, slot));
                t.push(now, now + ahead, slot, step);
            }
            if let Some(&(earliest, _)) = pending.first() {
                let next = t.next().expect("an entry is pending");
                assert!(next >= earliest, "next() before the earliest deadline");
                assert!(
                    next <= earliest + Duration::from_millis(1),
                    "next() more than a tick after the earliest deadline"
                );
            } else {
                assert_eq!(t.next(), None);
            }
            while let Some((slot, _)) = t.pop_due(now) {
                assert!(!fired[slot as usize], "entry {slot} fired twice");
                fired[slot as usize] = true;
                let at = deadline[slot as usize];
                assert!(at <= now, "entry {slot} fired early");
                assert!(pending.remove(&(at, slot)));
            }
            if let Some(&(at, slot)) = pending.first() {
                assert!(
                    at + Duration::from_millis(1) > now,
                    "entry {slot} due at {:?} still waits at {:?}",
                    at - origin,
                    now - origin
                );
            }
        }
        // Everything left fires once its time has come.
        now += Duration::from_secs(31);
        while let Some((slot, _)) = t.pop_due(now) {
            assert!(!fired[slot as usize], "entry {slot} fired twice");
            fired[slot as usize] = true;
        }
        assert!(fired.iter().all(|f| *f));
        assert_eq!(t.next(), None);
        assert!(fired.len() > 50_000, "the test pushed {}", fired.len());
    }

    #[test]
    fn a_far_deadline_after_an_idle_gap() {
        let origin = Instant::now();
        let mut t = Timers::new();
        assert_eq!(t.pop_due(origin), None);
        // The first push is tick 0; a deadline already passed is due then.
        let start = origin - Duration::from_millis(3);
        t.push(start, origin, 4, 1);
        t.push(start, start - Duration::from_millis(1), 5, 1);
        assert_eq!(t.pop_due(start - Duration::from_millis(1)), None);
        assert_eq!(t.pop_due(start), Some((5, 1)));
        assert_eq!(t.pop_due(origin - Duration::from_millis(1)), None);
        assert_eq!(t.pop_due(origin), Some((4, 1)));
        t.push(origin, origin + Duration::from_secs(60), 1, 1);
        t.push(origin, origin + Duration::from_millis(5), 2, 1);
        assert_eq!(t.next(), Some(origin + Duration::from_millis(5)));
        assert_eq!(t.pop_due(origin + Duration::from_millis(4)), None);
        assert_eq!(t.pop_due(origin + Duration::from_millis(5)), Some((2, 1)));
        assert_eq!(t.next(), Some(origin + Duration::from_secs(60)));
        assert_eq!(t.pop_due(origin + Duration::from_secs(59)), None);
        assert_eq!(t.pop_due(origin + Duration::from_secs(61)), Some((1, 1)));
        assert_eq!(t.pop_due(origin + Duration::from_secs(61)), None);
        t.push(origin, origin + Duration::from_secs(62), 3, 1);
        t.clear();
        assert_eq!(t.next(), None);
    }
}
