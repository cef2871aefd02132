//! Shared ephemeral state: counters, flags (bans), and invalidation messages.
//!
//! In-process by default; in Redis when `redis.url` is set, so that several instances
//! see the same counters and flags and hear each other's invalidations. This is state
//! that may be lost (on restart, or with Redis): durable data lives in [`crate::Store`].

mod gcra;
mod gcra_table;
mod local;
mod redis;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::broadcast;

pub use self::redis::RedisState;
pub use gcra::{RateDecision, RateSpec};
pub use local::LocalState;

use crate::StoreError;

/// Messages buffered per subscriber before the slowest one starts missing some.
const CHANNEL_CAPACITY: usize = 1024;

/// A flag that is set, as [`SharedState::flags`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flag {
    /// Its key, as given to [`SharedState::set_flag`].
    pub key: String,
    /// When it expires (milliseconds since the Unix epoch), when known.
    pub expires_at: Option<i64>,
}

/// Flags found by [`SharedState::flags`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlagList {
    /// The flags, in no particular order.
    pub items: Vec<Flag>,
    /// Whether the search stopped at its bound with flags perhaps left out.
    pub truncated: bool,
}

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
    /// The flags that are set whose keys start with `prefix`: at most `limit` of them,
    /// and the search itself is bounded (with Redis, a bounded number of `SCAN` steps).
    async fn flags(&self, prefix: &str, limit: usize) -> Result<FlagList, StoreError>;
    /// Clears the flag `key`; returns whether it was set.
    async fn clear_flag(&self, key: &str) -> Result<bool, StoreError>;
    /// Sends `message` to every subscriber of `channel` (in every instance, with Redis).
    async fn publish(&self, channel: &str, message: &str) -> Result<(), StoreError>;
    /// Messages published on `channel` from now on.
    async fn subscribe(&self, channel: &str) -> Result<broadcast::Receiver<String>, StoreError>;
    /// The decision `rate_limit` would give, made at once at `now` by a backend that
    /// decides in-process (no future to allocate and poll); `None` from one that must
    /// ask a service, whose callers then await `rate_limit`.
    fn rate_limit_now(
        &self,
        _key: &str,
        _spec: &RateSpec,
        _cost: u32,
        _now: std::time::Instant,
    ) -> Option<RateDecision> {
        None
    }
    /// One GCRA rate-limit decision for `key` (see [`RateSpec`]), counted when allowed.
    async fn rate_limit(
        &self,
        key: &str,
        spec: &RateSpec,
        cost: u32,
    ) -> Result<RateDecision, StoreError>;
    /// Stores `value` under `key` for `ttl`; with `only_if_absent`, only when no value
    /// is there (atomically). Returns whether it was stored.
    async fn put(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
        only_if_absent: bool,
    ) -> Result<bool, StoreError>;
    /// The value stored under `key`.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Removes the value under `key`.
    async fn remove(&self, key: &str) -> Result<(), StoreError>;
    /// Checks that the backing service answers.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// Broadcast channels by name, shared by both implementations.
#[derive(Default)]
struct Channels(Mutex<HashMap<String, broadcast::Sender<String>>>);

impl Channels {
    fn sender(&self, name: &str) -> broadcast::Sender<String> {
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        map.entry(name.to_string())
            .or_insert_with(|| broadcast::channel(CHANNEL_CAPACITY).0)
            .clone()
    }
}
