//! A hash map split into shards that grow one at a time, so that no insert
//! pays for rehashing more than a small piece of the table.
//!
//! The proxy's transaction and context tables hold hundreds of thousands of
//! entries on a busy node (every finished call lingers up to 32 s). A
//! hash table grows by rehashing everything into a table twice the size,
//! and under steady churn it also rehashes in place from time to time to
//! clear the tombstones that removals leave: either way one insert touches
//! every entry, and the proxy runs in one task, so the node stops reading
//! its sockets meanwhile. Rehashing costs about 500 ns per entry here (the
//! keys' text is read to hash it again and the new table is faulted in):
//! measured, 16-24 ms for a table of 40,000 entries, enough for the UDP
//! receive queue to stand 20 ms and the node to shed calls. Split into
//! [`SHARDS`] tables, a rehash moves 1/256 of the entries, about 1 ms at a
//! million transactions.
//!
//! That alone is not enough: keys spread evenly, so the shards fill at the
//! same pace and would all cross the hash table's growth threshold within a
//! few hundred inserts of each other, the same pause in pieces. So a shard
//! does not wait for the table's own threshold: it rebuilds itself, at twice
//! its live entries, as soon as its free room falls under a fraction of its
//! capacity that differs for every shard of every table ([`Sharded::new`]
//! takes the table's lane): from 3 % to 28 % in [`SHARDS`] × [`LANES`]
//! steps. Growing from empty, the shards rebuild one after another over the
//! last quarter of the time it takes to fill them; under churn, each clears
//! its tombstones on its own cycle, at a size that follows its live entries.
//! Since the room is never used up, the table never rehashes on its own.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};

/// How many tables a map is split into (a power of two).
const SHARDS: usize = 256;

/// How many maps with distinct thresholds (the proxy has four tables).
const LANES: usize = 4;

/// The least capacity a shard is rebuilt with (its first table's).
const MIN_CAPACITY: usize = 16;

/// The denominator of a shard's threshold (see `Sharded::level`).
const LEVEL_SCALE: usize = 4096;

/// The hasher of the shards and of the choice between them (independent
/// random seeds: a shard's keys share the top bits of the choosing hash,
/// not of their own).
type State = foldhash::fast::RandomState;

/// A hash map in [`SHARDS`] tables, with the few operations the proxy uses.
#[derive(Debug)]
pub(super) struct Sharded<K, V> {
    shards: Box<[HashMap<K, V, State>]>,
    /// Which thresholds the shards have (see [`Sharded::level`]).
    lane: usize,
    choose: State,
}

impl<K, V> Sharded<K, V> {
    /// An empty map whose shards' thresholds belong to `lane` (taken modulo
    /// [`LANES`]): maps on different lanes never share a threshold.
    pub(super) fn new(lane: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| HashMap::default()).collect(),
            lane: lane % LANES,
            choose: State::default(),
        }
    }
}

impl<K: Hash + Eq, V> Sharded<K, V> {
    /// A shard rebuilds when its free room is at most `capacity * level /
    /// LEVEL_SCALE`: levels from 128 (rebuild when 97 % full) to just under
    /// 1152 (at 72 %), one per shard and lane, the lanes interleaved.
    fn level(&self, shard: usize) -> usize {
        128 + (shard * LANES + self.lane) * 1024 / (SHARDS * LANES)
    }

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
        self.make_room(shard);
        self.shards[shard].insert(key, value)
    }

    /// Rebuilds a shard whose free room has fallen to its threshold, before
    /// an insert could make the table rehash on its own.
    fn make_room(&mut self, shard: usize) {
        let level = self.level(shard);
        let table = &mut self.shards[shard];
        // `capacity` is the live entries plus the room left: the slots
        // that tombstones took are in neither.
        let capacity = table.capacity();
        let room = capacity - table.len();
        if room * LEVEL_SCALE > capacity * level {
            return;
        }
        let wanted = (table.len() * 2).max(MIN_CAPACITY);
        let hasher = table.hasher().clone();
        let old = std::mem::replace(table, HashMap::with_capacity_and_hasher(wanted, hasher));
        table.extend(old);
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
        let mut map: Sharded<String, u32> = Sharded::new(0);
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
        let mut map: Sharded<u64, ()> = Sharded::new(0);
        for i in 0..(SHARDS as u64 * 1000) {
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

    #[test]
    fn a_shard_never_rehashes_on_its_own() {
        // Churn as on a node: each key lives for 20,000 inserts.
        let mut map: Sharded<u64, u64> = Sharded::new(1);
        for i in 0..200_000u64 {
            let shard = map.shard(&i);
            map.make_room(shard);
            let table = &mut map.shards[shard];
            let (capacity, len) = (table.capacity(), table.len());
            assert!(capacity > len, "shard {shard} has no room left");
            table.insert(i, i);
            // Taking a free slot keeps the capacity, reusing a tombstone
            // raises it by one; a rehash would have changed it more.
            assert!(
                (capacity..=capacity + 1).contains(&table.capacity()),
                "shard {shard} rehashed: capacity {capacity} -> {}",
                table.capacity()
            );
            if let Some(old) = i.checked_sub(20_000) {
                assert_eq!(map.remove(&old), Some(old));
            }
        }
        // Memory follows the live entries: the shards hold no more than
        // four slots per entry (plus their first tables'). Counted over the
        // map, not per shard: the choosing hash is seeded at random, and
        // one seed in many leaves a shard with few of the last keys, in a
        // table sized for the ones it had before (a shard shrinks only when
        // it next rebuilds).
        assert_eq!(map.len(), 20_000);
        let capacity: usize = map.shards.iter().map(HashMap::capacity).sum();
        assert!(
            capacity <= 4 * map.len() + SHARDS * MIN_CAPACITY,
            "capacity {capacity} for {} entries",
            map.len()
        );
    }

    #[test]
    fn shards_grow_one_at_a_time() {
        // Four tables filled together, as the proxy's are: how many entries
        // their rebuilds move within any 1,000 consecutive inserts (into
        // each table), against how many the tables hold then.
        const WINDOW: usize = 1000;
        let mut maps: Vec<Sharded<u64, ()>> = (0..LANES).map(Sharded::new).collect();
        let mut moved = vec![0usize; 1_000_000];
        for (i, moved) in moved.iter_mut().enumerate() {
            let key = i as u64;
            for map in &mut maps {
                let shard = map.shard(&key);
                let (before, len) = (map.shards[shard].capacity(), map.shards[shard].len());
                map.insert(key, ());
                if map.shards[shard].capacity() > before + 1 {
                    *moved += len;
                }
            }
        }
        let mut worst: f64 = 0.0;
        let mut in_window: usize = moved[..WINDOW].iter().sum();
        for end in WINDOW..moved.len() {
            in_window = in_window + moved[end] - moved[end - WINDOW];
            // From 100,000 entries per table on: before, every rebuild is a
            // large share of a small table.
            if end >= 100_000 {
                let held = (end + 1) * LANES;
                worst = worst.max(in_window as f64 / held as f64);
            }
        }
        // Growing together (one threshold for all), half the entries moved
        // within one window (53 %); one shard at a time, under 5 % do.
        assert!(
            worst < 0.1,
            "{:.1} % of the entries moved within {WINDOW} inserts",
            worst * 100.0
        );
    }
}
