//! A table of transactions keyed by [`TxnKey`], with one timer queue for
//! all of them.

use std::cmp::Reverse;
use std::collections::hash_map::Entry as MapEntry;
use std::collections::{BinaryHeap, HashMap};
use std::time::Instant;

use super::{Transaction, TxnKey};

/// Transactions by key, plus a timer queue so that a driver arms a single
/// timer for the whole table.
///
/// The queue is a binary heap of `(deadline, key)` with lazy deletion: an
/// entry is acted on only if the transaction still exists and its
/// scheduled deadline is still that one. Every change of a transaction
/// must go through [`update`](Self::update) (or be followed by
/// [`reschedule`](Self::reschedule)) so that its new deadline is queued.
///
/// Driver loop: `insert`/`update` on input, then drain the touched
/// transaction's `poll_transmit` and `poll_event`, and remove it once it
/// is terminated; arm one timer at [`poll_timeout`](Self::poll_timeout);
/// when it expires call [`handle_timeout`](Self::handle_timeout) until it
/// returns `None`, draining each returned transaction the same way.
#[derive(Debug)]
pub struct TxnTable<T> {
    entries: HashMap<TxnKey, Entry<T>>,
    timers: BinaryHeap<Reverse<(Instant, TxnKey)>>,
}

#[derive(Debug)]
struct Entry<T> {
    txn: T,
    scheduled: Option<Instant>,
}

impl<T: Transaction> Default for TxnTable<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Transaction> TxnTable<T> {
    /// An empty table.
    pub fn new() -> Self {
        Self {
            entries: HashMap::new(),
            timers: BinaryHeap::new(),
        }
    }

    /// Adds `txn` under `key` and queues its timer. Refused (and `txn`
    /// given back) when the key is taken: a request that matches an
    /// existing transaction is a retransmission, not a new transaction.
    pub fn insert(&mut self, key: TxnKey, txn: T) -> Result<(), T> {
        match self.entries.entry(key.clone()) {
            MapEntry::Occupied(_) => Err(txn),
            MapEntry::Vacant(vacant) => {
                let scheduled = txn.poll_timeout();
                vacant.insert(Entry { txn, scheduled });
                if let Some(at) = scheduled {
                    self.timers.push(Reverse((at, key)));
                }
                Ok(())
            }
        }
    }

    /// Runs `f` on the transaction under `key`, then queues its new
    /// deadline. `None` when there is no such transaction.
    pub fn update<R>(&mut self, key: &TxnKey, f: impl FnOnce(&mut T) -> R) -> Option<R> {
        let entry = self.entries.get_mut(key)?;
        let result = f(&mut entry.txn);
        self.reschedule(key);
        Some(result)
    }

    /// Queues the current deadline of the transaction under `key`, after a
    /// change made through [`get_mut`](Self::get_mut).
    pub fn reschedule(&mut self, key: &TxnKey) {
        if let Some(entry) = self.entries.get_mut(key) {
            let at = entry.txn.poll_timeout();
            if at != entry.scheduled {
                entry.scheduled = at;
                if let Some(at) = at {
                    self.timers.push(Reverse((at, key.clone())));
                }
            }
        }
    }

    /// The transaction under `key`.
    pub fn get(&self, key: &TxnKey) -> Option<&T> {
        self.entries.get(key).map(|entry| &entry.txn)
    }

    /// The transaction under `key`, for changes; call
    /// [`reschedule`](Self::reschedule) afterwards.
    pub fn get_mut(&mut self, key: &TxnKey) -> Option<&mut T> {
        self.entries.get_mut(key).map(|entry| &mut entry.txn)
    }

    /// Removes the transaction under `key` (its queued timer is dropped
    /// lazily).
    pub fn remove(&mut self, key: &TxnKey) -> Option<T> {
        self.entries.remove(key).map(|entry| entry.txn)
    }

    /// The number of transactions.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the table holds no transaction.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The keys and transactions, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&TxnKey, &T)> {
        self.entries.iter().map(|(key, entry)| (key, &entry.txn))
    }

    /// The earliest deadline of any transaction in the table. Drops stale
    /// queue entries on the way, hence `&mut self`.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        self.discard_stale();
        self.timers.peek().map(|Reverse((at, _))| *at)
    }

    /// Fires the earliest expired timer at `now`: calls `handle_timeout` on
    /// its transaction, queues that transaction's next deadline and returns
    /// its key so the driver can drain its outputs. `None` when no timer
    /// expired by `now`; call it until then.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<TxnKey> {
        self.discard_stale();
        let Reverse((at, _)) = self.timers.peek()?;
        if *at > now {
            return None;
        }
        let Reverse((_, key)) = self.timers.pop()?;
        if let Some(entry) = self.entries.get_mut(&key) {
            entry.scheduled = None;
            entry.txn.handle_timeout(now);
        }
        self.reschedule(&key);
        Some(key)
    }

    fn discard_stale(&mut self) {
        while let Some(Reverse((at, key))) = self.timers.peek() {
            let live = self
                .entries
                .get(key)
                .is_some_and(|entry| entry.scheduled == Some(*at));
            if live {
                break;
            }
            self.timers.pop();
        }
    }
}
