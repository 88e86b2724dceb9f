//! A bounded replay cache for signed identities.

use std::collections::{HashMap, VecDeque};

use parking_lot::Mutex;

/// What the cache keeps of a signed identity: 32 bytes that identify it.
pub(crate) type ReplayKey = [u8; 32];

/// Remembers signatures seen within the freshness window.
///
/// Entries are fixed-size keys, so recording one allocates nothing (beyond
/// the map's and the queue's own growth up to the capacity): a SHA-256 of
/// the bytes given to [`ReplayCache::check_and_insert`] (for RFC 4474 the
/// whole Identity value), or for ES256 PASSporTs the signature's `r` half
/// (unique per signing nonce, and shared by the `(r, n - s)` re-encoding of
/// the same signature, which verifies too). Entries expire `ttl` seconds
/// after the signed time; when the cache is full the oldest entry is
/// dropped, so memory stays bounded under a flood.
#[derive(Debug)]
pub struct ReplayCache {
    inner: Mutex<Inner>,
    capacity: usize,
}

#[derive(Debug, Default)]
struct Inner {
    seen: HashMap<ReplayKey, u64>,
    order: VecDeque<(u64, ReplayKey)>,
}

impl ReplayCache {
    /// A cache holding at most `capacity` entries.
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            capacity: capacity.max(1),
        }
    }

    /// Records `key`, valid until `expires` (UNIX seconds); returns `false`
    /// if it was already present and unexpired at `now` (a replay).
    pub fn check_and_insert(&self, key: &[u8], expires: u64, now: u64) -> bool {
        let mut digest = [0u8; 32];
        digest.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, key).as_ref());
        self.check_and_insert_key(digest, expires, now)
    }

    /// [`ReplayCache::check_and_insert`] with the key already reduced to 32
    /// bytes that identify the signed identity.
    pub(crate) fn check_and_insert_key(&self, key: ReplayKey, expires: u64, now: u64) -> bool {
        let mut inner = self.inner.lock();
        // Drop expired entries from the front (insertion order is close to expiry order).
        while let Some((exp, _)) = inner.order.front() {
            if *exp > now && inner.order.len() < self.capacity {
                break;
            }
            let Some((exp, k)) = inner.order.pop_front() else {
                break;
            };
            if inner.seen.get(&k) == Some(&exp) {
                inner.seen.remove(&k);
            }
        }
        if let Some(&exp) = inner.seen.get(&key)
            && exp > now
        {
            return false;
        }
        inner.seen.insert(key, expires);
        inner.order.push_back((expires, key));
        true
    }

    /// How many entries are held.
    pub fn len(&self) -> usize {
        self.inner.lock().seen.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
