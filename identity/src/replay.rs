//! A bounded replay cache for signed identities.

use std::collections::{HashMap, VecDeque};

use parking_lot::Mutex;

/// Remembers signatures seen within the freshness window.
///
/// Keys are the signature bytes (a full-form PASSporT's signature is unique
/// per claims set; for RFC 4474 it is the whole Identity value). Entries
/// expire `ttl` seconds after the signed time; when the cache is full the
/// oldest entry is dropped, so memory stays bounded under a flood.
#[derive(Debug)]
pub struct ReplayCache {
    inner: Mutex<Inner>,
    capacity: usize,
}

#[derive(Debug, Default)]
struct Inner {
    seen: HashMap<Vec<u8>, u64>,
    order: VecDeque<(u64, Vec<u8>)>,
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
        if let Some(&exp) = inner.seen.get(key)
            && exp > now
        {
            return false;
        }
        inner.seen.insert(key.to_vec(), expires);
        inner.order.push_back((expires, key.to_vec()));
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
