//! A hash map split into shards, so that no single insert pays for
//! rehashing the whole table.
//!
//! The proxy's transaction and context tables hold hundreds of thousands of
//! entries on a busy node (every finished call lingers up to 32 s). A
//! hash table grows by rehashing everything into a table twice the size,
//! and under steady churn it also rehashes in place from time to time to
//! clear the tombstones that removals leave: either way one insert touches
//! every entry, a pause of tens of milliseconds in the one task that runs
//! the proxy, long enough for the UDP receive queue to stand and for the
//! node to start shedding calls. Split into [`SHARDS`] tables, each rehash
//! moves a sixteenth of the entries, and the shards reach their thresholds
//! at different inserts, so the same work comes in small steps between
//! messages.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};

/// How many tables a map is split into (a power of two).
const SHARDS: usize = 16;

/// The hasher of the shards and of the choice between them (independent
/// random seeds: a shard's keys share the top bits of the choosing hash,
/// not of their own).
type State = foldhash::fast::RandomState;

/// A hash map in [`SHARDS`] tables, with the few operations the proxy uses.
#[derive(Debug)]
pub(super) struct Sharded<K, V> {
    shards: Box<[HashMap<K, V, State>]>,
    choose: State,
}

impl<K, V> Default for Sharded<K, V> {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| HashMap::default()).collect(),
            choose: State::default(),
        }
    }
}

impl<K: Hash + Eq, V> Sharded<K, V> {
    /// The shard a key lives in: the top bits of its choosing hash.
    fn shard<Q: Hash + ?Sized>(&self, key: &Q) -> usize {
        (self.choose.hash_one(key) >> (u64::BITS - SHARDS.trailing_zeros())) as usize
    }

    pub(super) fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.shards[self.shard(key)].get(key)
    }

    pub(super) fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let shard = self.shard(key);
        self.shards[shard].get_mut(key)
    }

    pub(super) fn get_key_value<Q>(&self, key: &Q) -> Option<(&K, &V)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.shards[self.shard(key)].get_key_value(key)
    }

    pub(super) fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.shards[self.shard(key)].contains_key(key)
    }

    pub(super) fn insert(&mut self, key: K, value: V) -> Option<V> {
        let shard = self.shard(&key);
        self.shards[shard].insert(key, value)
    }

    pub(super) fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let shard = self.shard(key);
        self.shards[shard].remove(key)
    }

    /// Entries in all shards.
    pub(super) fn len(&self) -> usize {
        self.shards.iter().map(HashMap::len).sum()
    }

    pub(super) fn values(&self) -> impl Iterator<Item = &V> {
        self.shards.iter().flat_map(HashMap::values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaves_as_one_map() {
        let mut map: Sharded<String, u32> = Sharded::default();
        let mut reference: HashMap<String, u32> = HashMap::new();
        for i in 0..5000u32 {
            let key = format!("z9hG4bK{i:x}");
            assert_eq!(map.insert(key.clone(), i), reference.insert(key, i));
        }
        // Replace some, remove others, borrowing `&str` for lookups.
        for i in (0..5000u32).step_by(3) {
            let key = format!("z9hG4bK{i:x}");
            assert_eq!(map.insert(key.clone(), i + 1), reference.insert(key, i + 1));
        }
        for i in (0..5000u32).step_by(7) {
            let key = format!("z9hG4bK{i:x}");
            assert_eq!(map.remove(key.as_str()), reference.remove(key.as_str()));
        }
        assert_eq!(map.len(), reference.len());
        for i in 0..5000u32 {
            let key = format!("z9hG4bK{i:x}");
            assert_eq!(map.get(key.as_str()), reference.get(key.as_str()));
            assert_eq!(map.contains_key(key.as_str()), reference.contains_key(&key));
            assert_eq!(
                map.get_key_value(key.as_str()),
                reference.get_key_value(key.as_str())
            );
        }
        for map_value in [map.get_mut("z9hG4bK1"), reference.get_mut("z9hG4bK1")] {
            *map_value.expect("kept") = 99;
        }
        assert_eq!(map.get("z9hG4bK1"), Some(&99));
        let mut values: Vec<u32> = map.values().copied().collect();
        let mut expected: Vec<u32> = reference.values().copied().collect();
        values.sort_unstable();
        expected.sort_unstable();
        assert_eq!(values, expected);
    }

    #[test]
    fn keys_spread_over_every_shard() {
        let mut map: Sharded<u64, ()> = Sharded::default();
        for i in 0..16_000u64 {
            map.insert(i, ());
        }
        for shard in map.shards.iter() {
            // 1,000 expected in each; far from it would mean a bad choice.
            assert!(
                (700..1300).contains(&shard.len()),
                "shard sizes {:?}",
                map.shards.iter().map(HashMap::len).collect::<Vec<_>>()
            );
        }
    }
}
