//! A bounded DNS answer cache with RFC 2308 negative caching, and a
//! single-flight gate so that one name has at most one query in flight.
//!
//! The cache is pure: the caller passes `now`. Positive answers live for
//! their TTL; negative answers (NXDOMAIN, NODATA) for the SOA's
//! `min(TTL, MINIMUM)` (RFC 2308 §5); both are capped. When full, the entry
//! that expires first is evicted.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use parking_lot::Mutex;

/// What kind of negative answer was cached (RFC 2308 §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Negative {
    /// The name does not exist (RCODE 3).
    NxDomain,
    /// The name exists, with no records of the type asked for.
    NoData,
}

/// A cached answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cached<V> {
    /// Records.
    Positive(V),
    /// A negative answer.
    Negative(Negative),
}

/// The TTL to cache a negative answer for (RFC 2308 §5): the smaller of the
/// SOA record's own TTL and its MINIMUM field, capped at `cap`.
pub fn negative_ttl(soa_ttl: u32, soa_minimum: u32, cap: Duration) -> Duration {
    Duration::from_secs(u64::from(soa_ttl.min(soa_minimum))).min(cap)
}

#[derive(Debug)]
struct Slot<V> {
    value: Cached<V>,
    expires: Instant,
    seq: u64,
}

/// A bounded map from a question to its answer, with expiry.
#[derive(Debug)]
pub struct DnsCache<K, V> {
    capacity: usize,
    slots: HashMap<K, Slot<V>>,
    by_expiry: BTreeSet<(Instant, u64, K)>,
    seq: u64,
}

impl<K: Hash + Eq + Ord + Clone, V: Clone> DnsCache<K, V> {
    /// An empty cache holding at most `capacity` answers (at least 1).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            slots: HashMap::new(),
            by_expiry: BTreeSet::new(),
            seq: 0,
        }
    }

    /// The answer for `key` if it has not expired at `now`.
    pub fn get(&mut self, key: &K, now: Instant) -> Option<Cached<V>> {
        let slot = self.slots.get(key)?;
        if slot.expires > now {
            return Some(slot.value.clone());
        }
        self.remove(key);
        None
    }

    /// Stores `value` for `ttl` from `now`. A zero TTL is not stored
    /// (RFC 1035 §3.2.1: use only for the transaction in progress).
    pub fn insert(&mut self, key: K, value: Cached<V>, ttl: Duration, now: Instant) {
        self.remove(&key);
        if ttl.is_zero() {
            return;
        }
        while self.slots.len() >= self.capacity {
            let Some((_, _, victim)) = self.by_expiry.pop_first() else {
                break;
            };
            self.slots.remove(&victim);
        }
        let expires = now + ttl;
        self.seq += 1;
        self.by_expiry.insert((expires, self.seq, key.clone()));
        self.slots.insert(
            key,
            Slot {
                value,
                expires,
                seq: self.seq,
            },
        );
    }

    /// Drops `key`.
    pub fn remove(&mut self, key: &K) {
        if let Some(slot) = self.slots.remove(key) {
            self.by_expiry
                .remove(&(slot.expires, slot.seq, key.clone()));
        }
    }

    /// Drops every expired answer.
    pub fn purge(&mut self, now: Instant) {
        while let Some((expires, _, _)) = self.by_expiry.first() {
            if *expires > now {
                break;
            }
            if let Some((_, _, key)) = self.by_expiry.pop_first() {
                self.slots.remove(&key);
            }
        }
    }

    /// Drops everything.
    pub fn clear(&mut self) {
        self.slots.clear();
        self.by_expiry.clear();
    }

    /// How many answers are held (expired ones included until touched).
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

type Flight<V> = Shared<BoxFuture<'static, V>>;

/// One query in flight per key: callers that ask while a query for the same
/// key runs wait for it and share its result.
pub struct SingleFlight<K, V: Clone> {
    flights: Mutex<HashMap<K, Flight<V>>>,
}

impl<K, V: Clone> std::fmt::Debug for SingleFlight<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SingleFlight")
            .field("in_flight", &self.flights.lock().len())
            .finish()
    }
}

impl<K, V: Clone> Default for SingleFlight<K, V> {
    fn default() -> Self {
        Self {
            flights: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Hash + Eq + Clone, V: Clone + Send + Sync + 'static> SingleFlight<K, V> {
    /// Runs `make()` for `key` unless a run for `key` is already in flight,
    /// in which case its result is shared. The future keeps running while
    /// any caller still waits on it.
    pub async fn run<F, Fut>(&self, key: K, make: F) -> V
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = V> + Send + 'static,
    {
        let flight = {
            let mut flights = self.flights.lock();
            flights
                .entry(key.clone())
                .or_insert_with(|| make().boxed().shared())
                .clone()
        };
        let value = flight.clone().await;
        let mut flights = self.flights.lock();
        if flights.get(&key).is_some_and(|f| f.ptr_eq(&flight)) {
            flights.remove(&key);
        }
        value
    }

    /// How many keys have a query in flight.
    pub fn in_flight(&self) -> usize {
        self.flights.lock().len()
    }
}

type FetchResult<V> = Arc<Result<(Cached<V>, Duration), crate::Error>>;

/// A cache and a single-flight gate together, shareable between tasks.
#[derive(Debug)]
pub struct SharedCache<K, V: Clone> {
    cache: Mutex<DnsCache<K, V>>,
    flights: SingleFlight<K, FetchResult<V>>,
}

impl<K, V> SharedCache<K, V>
where
    K: Hash + Eq + Ord + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// An empty cache of `capacity` answers.
    pub fn new(capacity: usize) -> Self {
        Self {
            cache: Mutex::new(DnsCache::new(capacity)),
            flights: SingleFlight::default(),
        }
    }

    /// The cached answer for `key` at `now`, or the result of `fetch`
    /// (the answer and how long to keep it, counted from `now`). Concurrent
    /// misses for one key run `fetch` once and share its result; errors are
    /// not cached.
    pub async fn get_or_fetch<F, Fut>(
        &self,
        key: K,
        now: Instant,
        fetch: F,
    ) -> crate::Result<Cached<V>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = crate::Result<(Cached<V>, Duration)>> + Send + 'static,
    {
        if let Some(hit) = self.cache.lock().get(&key, now) {
            return Ok(hit);
        }
        let shared = self
            .flights
            .run(key.clone(), move || {
                let fut = fetch();
                async move { Arc::new(fut.await) }
            })
            .await;
        match shared.as_ref() {
            Ok((value, ttl)) => {
                self.cache.lock().insert(key, value.clone(), *ttl, now);
                Ok(value.clone())
            }
            Err(e) => Err(e.duplicate()),
        }
    }

    /// Drops everything cached.
    pub fn clear(&self) {
        self.cache.lock().clear();
    }

    /// How many answers are held.
    pub fn len(&self) -> usize {
        self.cache.lock().len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.cache.lock().is_empty()
    }

    /// How many keys have a query in flight.
    pub fn in_flight(&self) -> usize {
        self.flights.in_flight()
    }
}

#[cfg(test)]
mod tests;
