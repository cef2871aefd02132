//! In-process shared state, for one instance.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use moka::sync::Cache;
use moka::Expiry;
use tokio::sync::broadcast;

use super::gcra::{RateDecision, RateSpec};
use super::gcra_table::GcraTable;
use super::{Channels, Flag, FlagList, SharedState};
use crate::StoreError;

/// An entry with its own time to live.
#[derive(Clone)]
struct Entry {
    value: i64,
    /// A stored value (see [`SharedState::put`]).
    bytes: Option<std::sync::Arc<[u8]>>,
    ttl: Duration,
    /// For a flag: when it expires (milliseconds since the Unix epoch).
    flag_expires_at: Option<i64>,
    /// Whether an update restarts the time to live (rate-limit state) or keeps the
    /// expiry set at creation (counters).
    restart_ttl_on_update: bool,
}

struct PerEntryTtl;

impl Expiry<String, Entry> for PerEntryTtl {
    fn expire_after_create(&self, _key: &String, value: &Entry, _now: Instant) -> Option<Duration> {
        Some(value.ttl)
    }

    fn expire_after_update(
        &self,
        _key: &String,
        value: &Entry,
        _now: Instant,
        remaining: Option<Duration>,
    ) -> Option<Duration> {
        if value.restart_ttl_on_update {
            Some(value.ttl)
        } else {
            remaining
        }
    }
}

/// In-process shared state (one instance only).
pub struct LocalState {
    entries: Cache<String, Entry>,
    /// GCRA state (theoretical arrival times), apart from the other entries so that
    /// its keys need no prefix, in plain sharded maps: a decision is on every request.
    gcra: GcraTable,
    /// The clock GCRA times are measured on.
    epoch: Instant,
    channels: Channels,
}

impl LocalState {
    /// Holds at most `capacity` counters and flags, a stored value counting one per 128
    /// bytes (least recently used go first).
    pub fn new(capacity: u64) -> Self {
        Self {
            entries: Cache::builder()
                .max_capacity(capacity)
                // A stored value weighs one unit per 128 bytes besides its entry.
                .weigher(|_key, entry: &Entry| {
                    let len = entry.bytes.as_ref().map_or(0, |b| b.len());
                    u32::try_from(1 + len / 128).unwrap_or(u32::MAX)
                })
                .expire_after(PerEntryTtl)
                .build(),
            gcra: GcraTable::new(capacity),
            epoch: Instant::now(),
            channels: Default::default(),
        }
    }
}

impl Default for LocalState {
    fn default() -> Self {
        Self::new(1_000_000)
    }
}

impl LocalState {
    /// One GCRA rate-limit decision for `key` at `now`, counted when allowed
    /// (in-process, at once).
    pub fn decide_now(&self, key: &str, spec: &RateSpec, cost: u32, now: Instant) -> RateDecision {
        let now = now.saturating_duration_since(self.epoch).as_nanos() as u64;
        self.gcra.decide(key, now, spec, cost)
    }
}

#[async_trait]
impl SharedState for LocalState {
    async fn incr(&self, key: &str, delta: i64, ttl: Duration) -> Result<i64, StoreError> {
        let entry =
            self.entries
                .entry(key.to_string())
                .and_upsert_with(|existing| match existing {
                    Some(e) => {
                        let e = e.into_value();
                        Entry {
                            value: e.value + delta,
                            bytes: None,
                            ttl: e.ttl,
                            flag_expires_at: None,
                            restart_ttl_on_update: false,
                        }
                    }
                    None => Entry {
                        value: delta,
                        bytes: None,
                        ttl,
                        flag_expires_at: None,
                        restart_ttl_on_update: false,
                    },
                });
        Ok(entry.into_value().value)
    }

    async fn set_flag(&self, key: &str, ttl: Duration) -> Result<(), StoreError> {
        // A new flag replaces an old one, with the new time to live.
        self.entries.invalidate(key);
        self.entries.insert(
            key.to_string(),
            Entry {
                value: 1,
                bytes: None,
                ttl,
                flag_expires_at: Some(
                    crate::now_ms()
                        .saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX)),
                ),
                restart_ttl_on_update: false,
            },
        );
        Ok(())
    }

    async fn flag(&self, key: &str) -> Result<bool, StoreError> {
        Ok(self.entries.contains_key(key))
    }

    async fn flags(&self, prefix: &str, limit: usize) -> Result<FlagList, StoreError> {
        let mut list = FlagList::default();
        // Expired entries are not yielded; counters and values have no flag expiry.
        for (key, entry) in self.entries.iter() {
            let Some(expires_at) = entry.flag_expires_at else {
                continue;
            };
            if !key.starts_with(prefix) {
                continue;
            }
            if list.items.len() == limit {
                list.truncated = true;
                break;
            }
            list.items.push(Flag {
                key: key.to_string(),
                expires_at: Some(expires_at),
            });
        }
        Ok(list)
    }

    async fn clear_flag(&self, key: &str) -> Result<bool, StoreError> {
        Ok(self.entries.remove(key).is_some())
    }

    async fn publish(&self, channel: &str, message: &str) -> Result<(), StoreError> {
        // No subscriber is not an error.
        let _ = self.channels.sender(channel).send(message.to_string());
        Ok(())
    }

    async fn subscribe(&self, channel: &str) -> Result<broadcast::Receiver<String>, StoreError> {
        Ok(self.channels.sender(channel).subscribe())
    }

    fn rate_limit_now(
        &self,
        key: &str,
        spec: &RateSpec,
        cost: u32,
        now: Instant,
    ) -> Option<RateDecision> {
        Some(self.decide_now(key, spec, cost, now))
    }

    async fn rate_limit(
        &self,
        key: &str,
        spec: &RateSpec,
        cost: u32,
    ) -> Result<RateDecision, StoreError> {
        Ok(self.decide_now(key, spec, cost, Instant::now()))
    }

    async fn put(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
        only_if_absent: bool,
    ) -> Result<bool, StoreError> {
        let entry = Entry {
            value: 0,
            bytes: Some(value.into()),
            ttl,
            flag_expires_at: None,
            restart_ttl_on_update: true,
        };
        if only_if_absent {
            return Ok(self
                .entries
                .entry(key.to_string())
                .or_insert_with(|| entry)
                .is_fresh());
        }
        self.entries.insert(key.to_string(), entry);
        Ok(true)
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .entries
            .get(key)
            .and_then(|e| e.bytes.map(|b| b.to_vec())))
    }

    async fn remove(&self, key: &str) -> Result<(), StoreError> {
        self.entries.invalidate(key);
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
