//! In-process shared state, for one instance.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use moka::sync::Cache;
use moka::Expiry;
use tokio::sync::broadcast;

use super::{Channels, SharedState};
use crate::StoreError;

/// An entry with its own time to live.
#[derive(Clone)]
struct Entry {
    value: i64,
    ttl: Duration,
}

struct PerEntryTtl;

impl Expiry<String, Entry> for PerEntryTtl {
    fn expire_after_create(&self, _key: &String, value: &Entry, _now: Instant) -> Option<Duration> {
        Some(value.ttl)
    }

    fn expire_after_update(
        &self,
        _key: &String,
        _value: &Entry,
        _now: Instant,
        remaining: Option<Duration>,
    ) -> Option<Duration> {
        // An update keeps the expiry the entry was created with.
        remaining
    }
}

/// In-process shared state (one instance only).
pub struct LocalState {
    entries: Cache<String, Entry>,
    channels: Channels,
}

impl LocalState {
    /// Holds at most `capacity` counters and flags (least recently used go first).
    pub fn new(capacity: u64) -> Self {
        Self {
            entries: Cache::builder()
                .max_capacity(capacity)
                .expire_after(PerEntryTtl)
                .build(),
            channels: Default::default(),
        }
    }
}

impl Default for LocalState {
    fn default() -> Self {
        Self::new(1_000_000)
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
                            ttl: e.ttl,
                        }
                    }
                    None => Entry { value: delta, ttl },
                });
        Ok(entry.into_value().value)
    }

    async fn set_flag(&self, key: &str, ttl: Duration) -> Result<(), StoreError> {
        // A new flag replaces an old one, with the new time to live.
        self.entries.invalidate(key);
        self.entries
            .insert(key.to_string(), Entry { value: 1, ttl });
        Ok(())
    }

    async fn flag(&self, key: &str) -> Result<bool, StoreError> {
        Ok(self.entries.contains_key(key))
    }

    async fn publish(&self, channel: &str, message: &str) -> Result<(), StoreError> {
        // No subscriber is not an error.
        let _ = self.channels.sender(channel).send(message.to_string());
        Ok(())
    }

    async fn subscribe(&self, channel: &str) -> Result<broadcast::Receiver<String>, StoreError> {
        Ok(self.channels.sender(channel).subscribe())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
