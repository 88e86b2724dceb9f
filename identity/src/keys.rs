//! The bounded set of ES256 signing keys that get a table of multiples
//! ([`crate::p256::Es256Key`]) for fast verification.
//!
//! A table costs about 150 KB and a millisecond or two to make, and pays off
//! for a key that signs many calls. So a key gets one on its second
//! signature, at most [`KEY_TABLES`] keys hold one, and a table is given up
//! only for a key unused for [`IDLE_SECS`]. A key that finds no room is
//! verified by ring, as every key was before: more active signers than
//! tables costs speed, never tables made over and over.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::p256::Es256Key;

/// How many signing keys hold a table (about 150 KB each).
pub const KEY_TABLES: usize = 64;
/// How long a key must have been unused before its slot can go to another.
pub const IDLE_SECS: u64 = 60;

#[derive(Debug)]
struct Slot {
    /// The table, once the key was seen twice (`None` if the point was not
    /// on the curve, which ring will refuse too).
    table: Option<Arc<Es256Key>>,
    /// Whether the table was tried (the key's second signature).
    made: bool,
    last_used: u64,
}

/// Signing keys by their uncompressed point, with their tables.
#[derive(Debug, Default)]
pub(crate) struct KeyTables {
    slots: Mutex<HashMap<Box<[u8]>, Slot>>,
}

impl KeyTables {
    /// The table for `point` at `now` (UNIX seconds), made on the key's
    /// second use if there is room; `None` means "verify with ring".
    pub(crate) fn get(&self, point: &[u8], now: u64) -> Option<Arc<Es256Key>> {
        {
            let mut slots = self.slots.lock();
            if let Some(slot) = slots.get_mut(point) {
                slot.last_used = now;
                if slot.made {
                    return slot.table.clone();
                }
                // Second use: make the table below, outside the lock.
                slot.made = true;
            } else {
                if slots.len() >= KEY_TABLES {
                    let idle = slots
                        .iter()
                        .filter(|(_, s)| now.saturating_sub(s.last_used) >= IDLE_SECS)
                        .min_by_key(|(_, s)| s.last_used)
                        .map(|(k, _)| k.clone());
                    match idle {
                        Some(k) => {
                            slots.remove(&k);
                        }
                        None => return None,
                    }
                }
                slots.insert(
                    point.into(),
                    Slot {
                        table: None,
                        made: false,
                        last_used: now,
                    },
                );
                return None;
            }
        }
        let table = Es256Key::new(point).map(Arc::new);
        if let Some(slot) = self.slots.lock().get_mut(point) {
            slot.table = table.clone();
        }
        table
    }

    /// How many keys hold a table.
    #[cfg(test)]
    pub(crate) fn tables(&self) -> usize {
        self.slots
            .lock()
            .values()
            .filter(|s| s.table.is_some())
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::KeyPair as _;

    fn point(rng: &SystemRandom) -> Vec<u8> {
        crate::p256::tests::key_pair(rng)
            .public_key()
            .as_ref()
            .to_vec()
    }

    #[test]
    fn a_key_gets_its_table_on_its_second_use() {
        let rng = SystemRandom::new();
        let keys = KeyTables::default();
        let p = point(&rng);
        assert!(keys.get(&p, 100).is_none());
        let first = keys.get(&p, 101).expect("made on the second use");
        let again = keys.get(&p, 102).unwrap();
        assert!(Arc::ptr_eq(&first, &again), "made once");
        // Not a point of the curve: remembered as such, never a table.
        let mut bad = p.clone();
        bad[64] ^= 1;
        assert!(keys.get(&bad, 100).is_none());
        assert!(keys.get(&bad, 101).is_none());
        assert!(keys.get(&bad, 102).is_none());
        assert_eq!(keys.tables(), 1);
    }

    #[test]
    fn slots_are_bounded_and_only_idle_keys_give_theirs_up() {
        let rng = SystemRandom::new();
        let keys = KeyTables::default();
        let points: Vec<Vec<u8>> = (0..KEY_TABLES).map(|_| point(&rng)).collect();
        for p in &points {
            assert!(keys.get(p, 1000).is_none());
        }
        // Full, and every key was used just now: a new key gets no slot,
        // however often it signs.
        let newcomer = point(&rng);
        for t in 0..3 {
            assert!(keys.get(&newcomer, 1001 + t).is_none());
        }
        // The first key is used again; the others go idle.
        assert!(keys.get(&points[0], 1000 + IDLE_SECS).is_some());
        let later = 1000 + IDLE_SECS + 1;
        assert!(keys.get(&newcomer, later).is_none(), "takes an idle slot");
        assert!(keys.get(&newcomer, later + 1).is_some());
        // The busy key kept its table.
        assert!(keys.get(&points[0], later + 2).is_some());
        assert_eq!(keys.slots.lock().len(), KEY_TABLES);
    }
}
