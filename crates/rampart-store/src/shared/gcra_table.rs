//! In-process GCRA state: theoretical arrival times in sharded hash tables. One
//! decision is one hash of the key and one short lock of one shard; expired entries
//! are swept as shards fill.

use std::hash::BuildHasher;

use hashbrown::HashTable;
use parking_lot::Mutex;

use super::gcra::{self, RateDecision, RateSpec};

/// A fast hasher seeded per table: decided on every request.
type RandomState = foldhash::fast::RandomState;

const SHARDS: usize = 64;

/// A key's state: its TAT and when it stops mattering (both in ns on the caller's clock).
#[derive(Clone, Copy)]
struct State {
    tat: u64,
    expires: u64,
}

/// GCRA state for many keys, bounded in size.
pub(super) struct GcraTable {
    /// Keys with their state. One hash per key picks the shard (from bits the table
    /// does not use for its buckets or tags) and the place in it.
    shards: Vec<Mutex<HashTable<(String, State)>>>,
    hasher: RandomState,
    per_shard: usize,
}

/// The shard of a key with `hash`: bits 32 and up, clear of the low bits that pick
/// a bucket and the top seven that tag it.
fn shard_of(hash: u64) -> usize {
    (hash >> 32) as usize % SHARDS
}

impl GcraTable {
    /// Holds at most about `capacity` keys.
    pub(super) fn new(capacity: u64) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashTable::new())).collect(),
            hasher: RandomState::default(),
            per_shard: usize::try_from(capacity / SHARDS as u64)
                .unwrap_or(usize::MAX)
                .max(16),
        }
    }

    /// One decision for `key` at `now` (ns).
    pub(super) fn decide(&self, key: &str, now: u64, spec: &RateSpec, cost: u32) -> RateDecision {
        let hash = self.hasher.hash_one(key);
        let mut table = self.shards[shard_of(hash)].lock();
        let slot = table.find_mut(hash, |(k, _)| k == key);
        let current = slot
            .as_deref()
            .filter(|(_, s)| s.expires > now)
            .map(|(_, s)| s.tat);
        let (decision, next) = gcra::step(current, now, spec, cost);
        if let Some(tat) = next {
            let state = State {
                tat,
                expires: now.saturating_add(decision.reset_after.as_nanos() as u64),
            };
            match slot {
                Some((_, slot)) => *slot = state,
                None => {
                    if table.len() >= self.per_shard {
                        table.retain(|(_, s)| s.expires > now);
                        if table.len() >= self.per_shard {
                            // Still full of live keys: forget one (it gets a fresh budget).
                            let mut forgot = false;
                            table.retain(|_| std::mem::replace(&mut forgot, true));
                        }
                    }
                    let rehash = |(k, _): &(String, State)| self.hasher.hash_one(k.as_str());
                    table.insert_unique(hash, (key.to_string(), state), rehash);
                }
            }
        }
        decision
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn limits_hold_expire_and_stay_bounded() {
        let table = GcraTable::new(64 * 16);
        let spec = RateSpec::new(2, Duration::from_secs(1), 2);
        let now = 1_000_000_000;
        assert!(table.decide("a", now, &spec, 1).allowed);
        assert!(table.decide("a", now, &spec, 1).allowed);
        assert!(!table.decide("a", now, &spec, 1).allowed);
        assert!(table.decide("b", now, &spec, 1).allowed);
        // A second later the budget is back.
        assert!(table.decide("a", now + 1_000_000_000, &spec, 1).allowed);
        // Far more keys than capacity: memory stays bounded.
        for i in 0..100_000u64 {
            table.decide(&format!("k{i}"), now + 2_000_000_000 + i, &spec, 1);
        }
        let total: usize = table.shards.iter().map(|s| s.lock().len()).sum();
        assert!(total <= 64 * 16, "{total}");
    }
}
