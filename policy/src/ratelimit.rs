//! Rate and concurrency limits per member (federation-wide) and per source
//! address, as one node's state machine.
//!
//! The design is in `docs/rate-limits.md`. In short: every node keeps a
//! local token bucket per member whose rate is the node's *share* of the
//! member's federation-wide limit. Each node reports its recent demand and
//! its calls in progress to a shared table (through the store, every
//! 100-200 ms) and reads back everybody's rows; [`share`] then splits the
//! limit between the nodes in proportion to their demand, so the sum of the
//! shares is the limit. Concurrent calls work the same way: a node may run
//! `limit - (calls in progress on the other nodes)`.
//!
//! Per-source-address limits are local (an address talks to one node at a
//! time) and use governor's keyed GCRA limiter, driven by the `now` given
//! to each call (a fake relative clock), so the whole type stays sans-IO.
//!
//! Polling order for the node:
//!
//! ```text
//! new call:        try_admit(member, source, now) -> Ok(Slot) | Err(Rejection)
//! call ended:      release(slot)
//! registry reload: set_limits(&registry)
//! every ~150 ms:   usage(now) -> store.report_usage(..) -> apply_global(rows, now)
//! every ~10 s:     retain_recent(now)
//! ```

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use governor::clock::{Clock, FakeRelativeClock};
use governor::state::keyed::HashMapStateStore;
use governor::{Quota, RateLimiter};

use crate::registry::{Limits, Registry};
use crate::rules::{LimitScope, Rejection};

/// The share of a federation-wide `limit` that a node with demand `mine`
/// may use, when the other nodes report demands `others` (all in attempts
/// per second).
///
/// Proportional to demand, with a floor of 2% of the limit per node so an
/// idle node can start taking calls before its demand is known:
///
/// ```text
/// share_i = limit * (d_i + e) / (sum_j d_j + n * e),  e = 0.02 * limit
/// ```
///
/// The shares of all nodes sum to `limit`.
pub fn share(limit: f64, mine: f64, others: &[f64]) -> f64 {
    if limit <= 0.0 {
        return 0.0;
    }
    let e = 0.02 * limit;
    let n = others.len() as f64 + 1.0;
    let total: f64 = mine.max(0.0) + others.iter().map(|d| d.max(0.0)).sum::<f64>();
    limit * (mine.max(0.0) + e) / (total + n * e)
}

/// A token bucket with a rate that can change while it runs.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Option<Instant>,
}

impl TokenBucket {
    /// A full bucket refilling at `rate` tokens per second up to `burst`.
    /// A rate of zero admits nothing.
    pub fn new(rate: f64, burst: f64) -> Self {
        let burst = burst.max(1.0);
        let rate = rate.max(0.0);
        Self {
            rate,
            burst,
            tokens: if rate > 0.0 { burst } else { 0.0 },
            last: None,
        }
    }

    fn refill(&mut self, now: Instant) {
        if let Some(last) = self.last {
            let dt = now.saturating_duration_since(last).as_secs_f64();
            self.tokens = (self.tokens + dt * self.rate).min(self.burst);
        }
        self.last = Some(self.last.map_or(now, |l| l.max(now)));
    }

    /// Changes the rate and burst from `now` on; tokens above the new burst
    /// are dropped.
    pub fn set_rate(&mut self, rate: f64, burst: f64, now: Instant) {
        self.refill(now);
        self.rate = rate.max(0.0);
        self.burst = burst.max(1.0);
        self.tokens = if self.rate > 0.0 {
            self.tokens.min(self.burst)
        } else {
            0.0
        };
    }

    /// The refill rate (tokens per second).
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// Takes one token, or says how long until one is available.
    pub fn try_take(&mut self, now: Instant) -> Result<(), Duration> {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else if self.rate > 0.0 {
            Err(Duration::from_secs_f64(
                ((1.0 - self.tokens) / self.rate).min(3600.0),
            ))
        } else {
            Err(Duration::from_secs(1))
        }
    }
}

/// An exponentially decaying event rate (events per second), time
/// constant one second.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DecayingRate {
    value: f64,
    last: Option<Instant>,
}

const TAU: f64 = 1.0;

impl DecayingRate {
    fn decayed(&self, now: Instant) -> f64 {
        self.last.map_or(0.0, |l| {
            self.value * (-now.saturating_duration_since(l).as_secs_f64() / TAU).exp()
        })
    }

    /// Records one event at `now`.
    pub fn record(&mut self, now: Instant) {
        self.value = self.decayed(now) + 1.0 / TAU;
        self.last = Some(self.last.map_or(now, |l| l.max(now)));
    }

    /// The rate at `now`.
    pub fn get(&self, now: Instant) -> f64 {
        self.decayed(now)
    }
}

/// A calls-in-progress slot; give it back with [`Limiter::release`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[must_use = "a slot must be released when the call ends"]
pub struct Slot {
    /// The member.
    pub member: String,
    /// The source address.
    pub source: IpAddr,
}

/// This node's usage of one federation-wide limit, for the shared table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalUsage {
    /// `member:<name>`.
    pub key: String,
    /// Demand in attempts per second, times 1000.
    pub demand_milli: i64,
    /// Calls in progress on this node.
    pub concurrent: i64,
}

/// Another node's (or this node's) row from the shared table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerUsage {
    /// The node.
    pub node: String,
    /// Its usage.
    pub usage: LocalUsage,
}

type SourceLimiter = RateLimiter<
    IpAddr,
    HashMapStateStore<IpAddr>,
    FakeRelativeClock,
    governor::middleware::NoOpMiddleware<governor::nanos::Nanos>,
>;

struct MemberState {
    limits: Limits,
    bucket: Option<TokenBucket>,
    demand: DecayingRate,
    concurrent: u32,
    /// Calls in progress on other nodes (from the shared table).
    others_concurrent: u32,
    sources: HashMap<IpAddr, u32>,
    source_rate: Option<SourceLimiter>,
}

impl std::fmt::Debug for MemberState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemberState")
            .field("limits", &self.limits)
            .field("bucket", &self.bucket)
            .field("concurrent", &self.concurrent)
            .field("others_concurrent", &self.others_concurrent)
            .finish_non_exhaustive()
    }
}

/// Burst allowed on top of a rate: a tenth of a second's worth, at least
/// two calls. A burst of one loses tokens whenever calls arrive just before
/// a token is complete (at 30 offered calls per second, a 10 cps bucket
/// with a burst of one admits only 7.5); two keeps the admitted rate at the
/// limit while the overshoot over 10 s stays at `burst / (10 * rate)`.
fn burst_for(rate: f64) -> f64 {
    (rate / 10.0).max(2.0)
}

/// One node's limit state for every member.
#[derive(Debug)]
pub struct Limiter {
    base: Instant,
    clock: FakeRelativeClock,
    members: HashMap<String, MemberState>,
}

impl Limiter {
    /// An empty limiter; `now` anchors its clock.
    pub fn new(now: Instant) -> Self {
        Self {
            base: now,
            clock: FakeRelativeClock::default(),
            members: HashMap::new(),
        }
    }

    fn tick(&self, now: Instant) {
        let target = now.saturating_duration_since(self.base);
        let current: Duration = self.clock.now().into();
        if target > current {
            self.clock.advance(target - current);
        }
    }

    fn source_limiter(&self, cps: Option<u32>) -> Option<SourceLimiter> {
        let cps = NonZeroU32::new(cps?)?;
        let burst = NonZeroU32::new((cps.get() / 10).max(2)).unwrap_or(NonZeroU32::MIN);
        Some(RateLimiter::hashmap_with_clock(
            Quota::per_second(cps).allow_burst(burst),
            self.clock.clone(),
        ))
    }

    /// Takes the members' limits from a (re)loaded registry. Counters of
    /// calls in progress survive; members that disappeared are dropped once
    /// their calls end.
    pub fn set_limits(&mut self, registry: &Registry, now: Instant) {
        for m in registry.members() {
            let limits = m.limits;
            let name = m.name().to_owned();
            let fresh_source = self.source_limiter(limits.source_cps);
            let state = self.members.entry(name).or_insert_with(|| MemberState {
                limits: Limits::default(),
                bucket: None,
                demand: DecayingRate::default(),
                concurrent: 0,
                others_concurrent: 0,
                sources: HashMap::new(),
                source_rate: None,
            });
            if state.limits.source_cps != limits.source_cps {
                state.source_rate = fresh_source;
            }
            match (limits.cps, &mut state.bucket) {
                (None, b) => *b = None,
                (Some(cps), Some(b)) if state.limits.cps != Some(cps) => {
                    let rate = f64::from(cps);
                    b.set_rate(rate, burst_for(rate), now);
                }
                (Some(_), Some(_)) => {}
                (Some(cps), b @ None) => {
                    let rate = f64::from(cps);
                    *b = Some(TokenBucket::new(rate, burst_for(rate)));
                }
            }
            state.limits = limits;
        }
        self.members
            .retain(|name, s| registry.member_index(name).is_some() || s.concurrent > 0);
    }

    /// Admits a new call from `member` at `source`, or says which limit it
    /// hit. On success the call holds a [`Slot`] until [`Self::release`].
    pub fn try_admit(
        &mut self,
        member: &str,
        source: IpAddr,
        now: Instant,
    ) -> Result<Slot, Rejection> {
        self.tick(now);
        let clock_now = self.clock.now();
        let Some(state) = self.members.get_mut(member) else {
            // Unknown to the limiter: no limits configured.
            return Ok(Slot {
                member: member.to_owned(),
                source,
            });
        };
        state.demand.record(now);
        let at_source = state.sources.get(&source).copied().unwrap_or(0);
        if let Some(max) = state.limits.source_concurrent
            && at_source >= max
        {
            return Err(Rejection::ConcurrencyLimited {
                scope: LimitScope::Source,
            });
        }
        if let Some(max) = state.limits.concurrent
            && state.concurrent + state.others_concurrent >= max
        {
            return Err(Rejection::ConcurrencyLimited {
                scope: LimitScope::Member,
            });
        }
        if let Some(limiter) = &state.source_rate
            && let Err(not_until) = limiter.check_key(&source)
        {
            return Err(Rejection::RateLimited {
                scope: LimitScope::Source,
                retry_after: not_until.wait_time_from(clock_now),
            });
        }
        if let Some(bucket) = &mut state.bucket
            && let Err(retry_after) = bucket.try_take(now)
        {
            return Err(Rejection::RateLimited {
                scope: LimitScope::Member,
                retry_after,
            });
        }
        state.concurrent += 1;
        *state.sources.entry(source).or_insert(0) += 1;
        Ok(Slot {
            member: member.to_owned(),
            source,
        })
    }

    /// Ends a call admitted by [`Self::try_admit`].
    pub fn release(&mut self, slot: Slot) {
        if let Some(state) = self.members.get_mut(&slot.member) {
            state.concurrent = state.concurrent.saturating_sub(1);
            if let Some(n) = state.sources.get_mut(&slot.source) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    state.sources.remove(&slot.source);
                }
            }
        }
    }

    /// Calls in progress for `member` on this node.
    pub fn concurrent(&self, member: &str) -> u32 {
        self.members.get(member).map_or(0, |s| s.concurrent)
    }

    /// The member's current local CPS budget (its share), if limited.
    pub fn local_rate(&self, member: &str) -> Option<f64> {
        self.members
            .get(member)
            .and_then(|s| s.bucket.as_ref().map(TokenBucket::rate))
    }

    /// This node's usage of every member limit with a federation-wide
    /// component, to report to the shared table.
    pub fn usage(&self, now: Instant) -> Vec<LocalUsage> {
        let mut out: Vec<LocalUsage> = self
            .members
            .iter()
            .filter(|(_, s)| s.limits.cps.is_some() || s.limits.concurrent.is_some())
            .map(|(name, s)| LocalUsage {
                key: format!("member:{name}"),
                demand_milli: (s.demand.get(now) * 1000.0) as i64,
                concurrent: i64::from(s.concurrent),
            })
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out
    }

    /// Re-divides every member's limits from the shared table's rows
    /// (`rows` may include this node's own, which are ignored in favour of
    /// the live local values).
    pub fn apply_global(&mut self, me: &str, rows: &[PeerUsage], now: Instant) {
        for (name, state) in &mut self.members {
            let key = format!("member:{name}");
            let others = rows.iter().filter(|r| r.node != me && r.usage.key == key);
            let demands: Vec<f64> = others
                .clone()
                .map(|r| r.usage.demand_milli as f64 / 1000.0)
                .collect();
            state.others_concurrent = others
                .map(|r| u32::try_from(r.usage.concurrent.max(0)).unwrap_or(u32::MAX))
                .fold(0u32, u32::saturating_add);
            if let (Some(cps), Some(bucket)) = (state.limits.cps, &mut state.bucket) {
                let rate = share(f64::from(cps), state.demand.get(now), &demands);
                bucket.set_rate(rate, burst_for(rate), now);
            }
        }
    }

    /// Forgets per-source rate state that has fully recovered (bounded
    /// memory under many source addresses).
    pub fn retain_recent(&mut self, now: Instant) {
        self.tick(now);
        for state in self.members.values_mut() {
            if let Some(l) = &state.source_rate {
                l.retain_recent();
                l.shrink_to_fit();
            }
        }
    }
}
