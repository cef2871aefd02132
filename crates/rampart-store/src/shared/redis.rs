//! Shared state in Redis, for several instances.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use tokio::sync::broadcast;

use super::gcra::{RateDecision, RateSpec, GCRA_SCRIPT};
use super::{Channels, Flag, FlagList, SharedState};
use crate::StoreError;

/// Shared state in Redis.
pub struct RedisState {
    client: redis::Client,
    connection: redis::aio::ConnectionManager,
    prefix: String,
    channels: Channels,
    gcra: redis::Script,
}

fn unavailable(e: redis::RedisError) -> StoreError {
    StoreError::Unavailable(format!("redis: {e}"))
}

/// Keys asked for per `SCAN` step when listing flags.
const SCAN_COUNT: usize = 500;
/// Most `SCAN` steps one listing of flags takes (bounds the work on a large keyspace).
const MAX_SCAN_STEPS: usize = 200;

/// `text` with the glob characters of a `SCAN … MATCH` pattern escaped.
fn glob_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
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
            gcra: redis::Script::new(GCRA_SCRIPT),
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

    async fn flags(&self, prefix: &str, limit: usize) -> Result<FlagList, StoreError> {
        let mut connection = self.connection.clone();
        let pattern = format!("{}*", glob_escape(&self.key(prefix)));
        let mut keys: Vec<String> = Vec::new();
        let mut truncated = false;
        let mut cursor: u64 = 0;
        let mut steps = 0;
        loop {
            let (next, found): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(SCAN_COUNT)
                .query_async(&mut connection)
                .await
                .map_err(unavailable)?;
            for key in found {
                if !keys.contains(&key) {
                    keys.push(key);
                }
            }
            steps += 1;
            cursor = next;
            if keys.len() > limit {
                keys.truncate(limit);
                truncated = true;
                break;
            }
            if cursor == 0 {
                break;
            }
            if steps == MAX_SCAN_STEPS {
                truncated = true;
                break;
            }
        }
        if keys.is_empty() {
            return Ok(FlagList {
                items: Vec::new(),
                truncated,
            });
        }
        // One round trip for every key's remaining time and its server-side clock.
        let mut pipe = redis::pipe();
        pipe.cmd("TIME");
        for key in &keys {
            pipe.cmd("PTTL").arg(key);
        }
        let (time, ttls): ((i64, i64), Vec<i64>) = {
            let mut replies: Vec<redis::Value> = pipe
                .query_async(&mut connection)
                .await
                .map_err(unavailable)?;
            if replies.is_empty() {
                return Err(StoreError::Unavailable(
                    "redis: empty pipeline reply".into(),
                ));
            }
            let time =
                redis::from_redis_value::<(i64, i64)>(&replies.remove(0)).map_err(unavailable)?;
            let ttls = replies
                .iter()
                .map(redis::from_redis_value::<i64>)
                .collect::<Result<Vec<_>, _>>()
                .map_err(unavailable)?;
            (time, ttls)
        };
        let now_ms = time.0 * 1000 + time.1 / 1000;
        let items = keys
            .into_iter()
            .zip(ttls)
            .filter_map(|(key, ttl)| {
                let key = key.strip_prefix(&self.prefix)?.to_string();
                match ttl {
                    -2 => None, // expired since the scan
                    -1 => Some(Flag {
                        key,
                        expires_at: None,
                    }),
                    ms => Some(Flag {
                        key,
                        expires_at: Some(now_ms + ms),
                    }),
                }
            })
            .collect();
        Ok(FlagList { items, truncated })
    }

    async fn clear_flag(&self, key: &str) -> Result<bool, StoreError> {
        let mut connection = self.connection.clone();
        redis::cmd("DEL")
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

    async fn rate_limit(
        &self,
        key: &str,
        spec: &RateSpec,
        cost: u32,
    ) -> Result<RateDecision, StoreError> {
        let mut connection = self.connection.clone();
        let (allowed, remaining, retry_after, reset_after): (i64, i64, i64, i64) = self
            .gcra
            .key(format!("{}gcra:{key}", self.prefix))
            .arg(spec.emission_ns())
            .arg(spec.limit_ns())
            .arg(cost)
            .invoke_async(&mut connection)
            .await
            .map_err(unavailable)?;
        Ok(RateDecision {
            allowed: allowed == 1,
            remaining: remaining.clamp(0, i64::from(u32::MAX)) as u32,
            retry_after: Duration::from_nanos(retry_after.max(0) as u64),
            reset_after: Duration::from_nanos(reset_after.max(0) as u64),
        })
    }

    async fn put(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
        only_if_absent: bool,
    ) -> Result<bool, StoreError> {
        let mut connection = self.connection.clone();
        let mut command = redis::cmd("SET");
        command
            .arg(self.key(key))
            .arg(value)
            .arg("PX")
            .arg(ttl.as_millis().max(1) as u64);
        if only_if_absent {
            command.arg("NX");
        }
        command
            .query_async::<Option<String>>(&mut connection)
            .await
            .map(|reply| reply.is_some())
            .map_err(unavailable)
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut connection = self.connection.clone();
        redis::cmd("GET")
            .arg(self.key(key))
            .query_async::<Option<Vec<u8>>>(&mut connection)
            .await
            .map_err(unavailable)
    }

    async fn remove(&self, key: &str) -> Result<(), StoreError> {
        let mut connection = self.connection.clone();
        redis::cmd("DEL")
            .arg(self.key(key))
            .query_async::<i64>(&mut connection)
            .await
            .map(|_| ())
            .map_err(unavailable)
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
