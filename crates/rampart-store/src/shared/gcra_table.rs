//! In-process GCRA state: theoretical arrival times in sharded hash maps. One decision
//! is one short lock of one shard; expired entries are swept as shards fill.

use std::collections::HashMap;
use std::hash::BuildHasher;

/// A fast hasher seeded per table (and per shard, so that a shard's keys, which share
/// their shard bits, still spread over its buckets): decided on every request.
type RandomState = foldhash::fast::RandomState;

use parking_lot::Mutex;

use super::gcra::{self, RateDecision, RateSpec};

const SHARDS: usize = 64;

/// A key's state: its TAT and when it stops mattering (both in ns on the caller's clock).
#[derive(Clone, Copy)]
struct State {
    tat: u64,
    expires: u64,
}

/// GCRA state for many keys, bounded in size.
pub(super) struct GcraTable {
    shards: Vec<Mutex<HashMap<String, State, RandomState>>>,
    hasher: RandomState,
    per_shard: usize,
}

impl GcraTable {
    /// Holds at most about `capacity` keys.
    pub(super) fn new(capacity: u64) -> Self {
        Self {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(HashMap::with_hasher(RandomState::default())))
                .collect(),
            hasher: RandomState::default(),
            per_shard: usize::try_from(capacity / SHARDS as u64)
                .unwrap_or(usize::MAX)
                .max(16),
        }
    }

    /// One decision for `key` at `now` (ns).
    pub(super) fn decide(&self, key: &str, now: u64, spec: &RateSpec, cost: u32) -> RateDecision {
        let shard = (self.hasher.hash_one(key) as usize) % SHARDS;
        let mut map = self.shards[shard].lock();
        // One lookup for a known key; a new one is hashed again only to be inserted.
        let slot = map.get_mut(key);
        let current = slot.as_deref().filter(|s| s.expires > now).map(|s| s.tat);
        let (decision, next) = gcra::step(current, now, spec, cost);
        if let Some(tat) = next {
            let state = State {
                tat,
                expires: now.saturating_add(decision.reset_after.as_nanos() as u64),
            };
            match slot {
                Some(slot) => *slot = state,
                None => {
                    if map.len() >= self.per_shard {
                        map.retain(|_, s| s.expires > now);
                        if map.len() >= self.per_shard {
                            // Still full of live keys: forget one (it gets a fresh budget).
                            if let Some(victim) = map.keys().next().cloned() {
                                map.remove(&victim);
                            }
                        }
                    }
                    map.insert(key.to_string(), state);
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
        let spec = RateSpec {
            rate: 2,
            period: Duration::from_secs(1),
            burst: 2,
        };
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
