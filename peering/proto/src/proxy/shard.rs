//! A hash map split into shards that grow one at a time, so that no insert
//! pays for rehashing the whole table and no burst of inserts pays for
//! rehashing every shard.
//!
//! The proxy's transaction and context tables hold hundreds of thousands of
//! entries on a busy node (every finished call lingers up to 32 s). A
//! hash table grows by rehashing everything into a table twice the size,
//! and under steady churn it also rehashes in place from time to time to
//! clear the tombstones that removals leave: either way one insert touches
//! every entry, a pause of tens of milliseconds in the one task that runs
//! the proxy, long enough for the UDP receive queue to stand and for the
//! node to start shedding calls. Split into [`SHARDS`] tables, each rehash
//! moves a sixteenth of the entries.
//!
//! That alone is not enough: keys spread evenly, so the shards fill at the
//! same pace and would all cross the hash table's growth threshold within a
//! few hundred inserts of each other, the same pause in sixteen pieces
//! (measured: the node shed calls about 25 s into a run at 9,000-10,000
//! calls per second, when the four tables' 64 shards all grew together).
//! So a shard does not wait for the table's own threshold: it rebuilds
//! itself, at twice its live entries, as soon as its free room falls under
//! a fraction of its capacity that differs for every shard of every table
//! ([`Sharded::new`] takes the table's lane). Growing from empty, the
//! shards rebuild one after another over the last quarter of the time it
//! takes to fill them; under churn, each clears its tombstones on its own cycle.
//! Since the room is never used up, the table never rehashes on its own.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};

/// How many tables a map is split into (a power of two).
const SHARDS: usize = 16;

/// How many maps with distinct thresholds (the proxy has four tables).
pub(super) const LANES: usize = 4;

/// Capacity of a shard's first table.
const MIN_CAPACITY: usize = 16;

/// The hasher of the shards and of the choice between them (independent
/// random seeds: a shard's keys share the top bits of the choosing hash,
/// not of their own).
type State = foldhash::fast::RandomState;

/// A hash map in [`SHARDS`] tables, with the few operations the proxy uses.
#[derive(Debug)]
pub(super) struct Sharded<K, V> {
    shards: Box<[HashMap<K, V, State>]>,
    /// Per shard: it rebuilds when its free room is at most
    /// `capacity * level / 256`.
    levels: [u16; SHARDS],
    choose: State,
}

impl<K, V> Sharded<K, V> {
    /// An empty map whose shards' thresholds belong to `lane` (taken modulo
    /// [`LANES`]): maps on different lanes never share a threshold.
    pub(super) fn new(lane: usize) -> Self {
        let lane = lane % LANES;
        // 64 levels, 8/256 (rebuild at 97 % full) to 71/256 (at 72 %),
        // spread over the shards and interleaved between the lanes.
        let levels = std::array::from_fn(|shard| (8 + shard * LANES + lane) as u16);
        Self {
            shards: (0..SHARDS).map(|_| HashMap::default()).collect(),
            levels,
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
        self.make_room(shard);
        self.shards[shard].insert(key, value)
    }

    /// Rebuilds a shard whose free room has fallen to its threshold, before
    /// an insert could make the table rehash on its own.
    fn make_room(&mut self, shard: usize) {
        let table = &mut self.shards[shard];
        // `capacity` is the live entries plus the room left: the slots
        // that tombstones took are in neither.
        let capacity = table.capacity();
        let room = capacity - table.len();
        if room * 256 > capacity * usize::from(self.levels[shard]) {
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
        // Memory follows the live entries: no shard holds more than four
        // slots per entry (plus the first table's).
        assert_eq!(map.len(), 20_000);
        for table in map.shards.iter() {
            assert!(
                table.capacity() <= 4 * table.len() + MIN_CAPACITY,
                "capacity {} for {} entries",
                table.capacity(),
                table.len()
            );
        }
    }

    #[test]
    fn shards_grow_one_at_a_time() {
        // Four tables filled together, as the proxy's are: record at which
        // insert each of their 64 shards outgrows its table.
        let mut maps: Vec<Sharded<u64, ()>> = (0..LANES).map(Sharded::new).collect();
        let mut growths: Vec<(u64, usize)> = Vec::new();
        for i in 0..300_000u64 {
            for map in &mut maps {
                let shard = map.shard(&i);
                let before = map.shards[shard].capacity();
                map.insert(i, ());
                let after = map.shards[shard].capacity();
                if after > before + 1 {
                    growths.push((i, after));
                }
            }
        }
        // The last generation: every shard grew to (about) the same size.
        let top = growths.iter().map(|&(_, c)| c).max().expect("grew");
        let last: Vec<u64> = growths
            .iter()
            .filter(|&&(_, c)| c == top)
            .map(|&(i, _)| i)
            .collect();
        assert!(
            last.len() >= 3 * SHARDS * LANES / 4,
            "{} shards",
            last.len()
        );
        let (first, end) = (last[0], last[last.len() - 1]);
        // Spread over many thousands of inserts, not bunched in a few
        // hundred; and never more than a few in any thousand.
        assert!(end - first > 20_000, "all grew between {first} and {end}");
        for (k, &at) in last.iter().enumerate() {
            let close = last[k..].iter().take_while(|&&j| j < at + 1000).count();
            assert!(
                close <= 4,
                "{close} shards grew within 1,000 inserts of {at}"
            );
        }
    }
}
