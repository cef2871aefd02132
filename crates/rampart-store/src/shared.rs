//! Shared ephemeral state: counters, flags (bans), and invalidation messages.
//!
//! In-process by default; in Redis when `redis.url` is set, so that several instances
//! see the same counters and flags and hear each other's invalidations. This is state
//! that may be lost (on restart, or with Redis): durable data lives in [`crate::Store`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures_util::StreamExt;
use moka::sync::Cache;
use moka::Expiry;
use tokio::sync::broadcast;

use crate::StoreError;

/// Messages buffered per subscriber before the slowest one starts missing some.
const CHANNEL_CAPACITY: usize = 1024;

/// Shared ephemeral state.
#[async_trait]
pub trait SharedState: Send + Sync {
    /// Adds `delta` to the counter `key`, which expires `ttl` after it was created;
    /// returns the new value.
    async fn incr(&self, key: &str, delta: i64, ttl: Duration) -> Result<i64, StoreError>;
    /// Sets the flag `key` (such as a ban) for `ttl`.
    async fn set_flag(&self, key: &str, ttl: Duration) -> Result<(), StoreError>;
    /// Whether the flag `key` is set.
    async fn flag(&self, key: &str) -> Result<bool, StoreError>;
    /// Sends `message` to every subscriber of `channel` (in every instance, with Redis).
    async fn publish(&self, channel: &str, message: &str) -> Result<(), StoreError>;
    /// Messages published on `channel` from now on.
    async fn subscribe(&self, channel: &str) -> Result<broadcast::Receiver<String>, StoreError>;
    /// Checks that the backing service answers.
    async fn ping(&self) -> Result<(), StoreError>;
}

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
    channels: channels::Channels,
}

mod channels {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use tokio::sync::broadcast;

    /// Broadcast channels by name.
    #[derive(Default)]
    pub struct Channels(Mutex<HashMap<String, broadcast::Sender<String>>>);

    impl Channels {
        pub fn sender(&self, name: &str) -> broadcast::Sender<String> {
            let mut map = self
                .0
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            map.entry(name.to_string())
                .or_insert_with(|| broadcast::channel(super::CHANNEL_CAPACITY).0)
                .clone()
        }
    }
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

/// Shared state in Redis.
pub struct RedisState {
    client: redis::Client,
    connection: redis::aio::ConnectionManager,
    prefix: String,
    channels: channels::Channels,
}

fn unavailable(e: redis::RedisError) -> StoreError {
    StoreError::Unavailable(format!("redis: {e}"))
}

/// INCRBY that sets the expiry only when it creates the key, in one atomic step.
const INCR_SCRIPT: &str = r"
local value = redis.call('INCRBY', KEYS[1], ARGV[1])
if value == tonumber(ARGV[1]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return value";

impl RedisState {
    /// Connects to `url`; every key and channel gets `prefix` in front.
    pub async fn connect(url: &str, prefix: &str) -> Result<Arc<Self>, StoreError> {
        let client = redis::Client::open(url)
            .map_err(|e| StoreError::Unavailable(format!("redis URL: {e}")))?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Duration::from_secs(2))
            .set_response_timeout(Duration::from_secs(2))
            .set_number_of_retries(1);
        let connection = tokio::time::timeout(
            Duration::from_secs(5),
            redis::aio::ConnectionManager::new_with_config(client.clone(), config),
        )
        .await
        .map_err(|_| StoreError::Unavailable("redis: no answer within 5s".into()))?
        .map_err(unavailable)?;
        Ok(Arc::new(Self {
            client,
            connection,
            prefix: prefix.to_string(),
            channels: Default::default(),
        }))
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }
}

#[async_trait]
impl SharedState for RedisState {
    async fn incr(&self, key: &str, delta: i64, ttl: Duration) -> Result<i64, StoreError> {
        let mut connection = self.connection.clone();
        redis::Script::new(INCR_SCRIPT)
            .key(self.key(key))
            .arg(delta)
            .arg(ttl.as_millis().max(1) as u64)
            .invoke_async(&mut connection)
            .await
            .map_err(unavailable)
    }

    async fn set_flag(&self, key: &str, ttl: Duration) -> Result<(), StoreError> {
        let mut connection = self.connection.clone();
        redis::cmd("SET")
            .arg(self.key(key))
            .arg(1)
            .arg("PX")
            .arg(ttl.as_millis().max(1) as u64)
            .query_async::<()>(&mut connection)
            .await
            .map_err(unavailable)
    }

    async fn flag(&self, key: &str) -> Result<bool, StoreError> {
        let mut connection = self.connection.clone();
        redis::cmd("EXISTS")
            .arg(self.key(key))
            .query_async::<i64>(&mut connection)
            .await
            .map(|n| n > 0)
            .map_err(unavailable)
    }

    async fn publish(&self, channel: &str, message: &str) -> Result<(), StoreError> {
        let mut connection = self.connection.clone();
        redis::cmd("PUBLISH")
            .arg(self.key(channel))
            .arg(message)
            .query_async::<i64>(&mut connection)
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    async fn subscribe(&self, channel: &str) -> Result<broadcast::Receiver<String>, StoreError> {
        let sender = self.channels.sender(channel);
        let receiver = sender.subscribe();
        if sender.receiver_count() > 1 {
            return Ok(receiver); // a forwarding task already runs for this channel
        }
        let mut pubsub = self.client.get_async_pubsub().await.map_err(unavailable)?;
        pubsub
            .subscribe(self.key(channel))
            .await
            .map_err(unavailable)?;
        tokio::spawn(async move {
            let mut messages = pubsub.into_on_message();
            while let Some(message) = messages.next().await {
                if let Ok(text) = message.get_payload::<String>() {
                    if sender.send(text).is_err() {
                        break; // every subscriber is gone
                    }
                }
            }
            tracing::warn!("redis subscription ended");
        });
        Ok(receiver)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let mut connection = self.connection.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut connection)
            .await
            .map(|_| ())
            .map_err(unavailable)
    }
}
