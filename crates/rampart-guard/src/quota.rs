//! Quotas: daily and monthly request budgets per consumer, counted in the store.
//!
//! Counting in the database on every request would put it on the request path, so each
//! instance counts in memory and adds its counts to the store every second; the count
//! each decision sees is the store's (re-read at most every second) plus what this
//! instance has not written yet. With several instances a budget can therefore be
//! overrun by what the others counted in the last second or two.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rampart_config::Quota;
use rampart_proxy::phase::{Guard, GuardCheck, RequestContext, Verdict};
use rampart_proxy::{ErrorKind, ProxyError};
use rampart_store::{QuotaPeriod, StoreError, UsageStore};
use rampart_telemetry::Metrics;

/// How often counts are written to the store, and how old a read count may be.
pub const USAGE_SYNC_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
struct Count {
    /// The store's count when last read or written (counts only grow within a period).
    stored: i64,
    /// Counted here and not yet written.
    pending: i64,
    /// Taken from `pending` by a write that has not finished: still counted by every
    /// decision until the write's result lands in `stored`.
    writing: i64,
    /// When `stored` was last read or written.
    synced: Option<Instant>,
}

impl Count {
    /// What this consumer has used in the period, as far as this instance knows.
    fn used(&self) -> i64 {
        self.stored + self.writing + self.pending
    }
}

/// Per-consumer request counts, synced with the store.
pub struct UsageCounter {
    store: Arc<dyn UsageStore>,
    counts: Mutex<HashMap<(String, String), Count>>,
}

impl UsageCounter {
    /// Counts in `store`; a background task writes counts every [`USAGE_SYNC_INTERVAL`]
    /// until the counter is dropped.
    pub fn start(store: Arc<dyn UsageStore>) -> Arc<Self> {
        let counter = Self::without_sync_task(store);
        let weak: Weak<Self> = Arc::downgrade(&counter);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(USAGE_SYNC_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(counter) = weak.upgrade() else {
                    return;
                };
                if let Err(e) = counter.flush().await {
                    tracing::warn!("cannot write quota usage (kept for the next try): {e}");
                }
            }
        });
        counter
    }

    /// Counts in `store`, written only when [`UsageCounter::flush`] is called.
    fn without_sync_task(store: Arc<dyn UsageStore>) -> Arc<Self> {
        Arc::new(Self {
            store,
            counts: Mutex::new(HashMap::new()),
        })
    }

    /// Writes every pending count to the store. Counts that fail are kept for the next try.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let pending: Vec<((String, String), i64)> = {
            let mut counts = self.counts.lock();
            let stale = Instant::now() - 60 * USAGE_SYNC_INTERVAL;
            counts.retain(|_, c| {
                c.pending > 0 || c.writing > 0 || c.synced.is_some_and(|t| t > stale)
            });
            counts
                .iter_mut()
                .filter(|(_, c)| c.pending > 0)
                .map(|(k, c)| {
                    let delta = std::mem::take(&mut c.pending);
                    c.writing += delta;
                    (k.clone(), delta)
                })
                .collect()
        };
        let mut first_error = None;
        for ((consumer, period), delta) in pending {
            let result = self.store.add_usage(&consumer, &period, delta).await;
            let mut counts = self.counts.lock();
            let count = counts.entry((consumer, period)).or_default();
            count.writing -= delta;
            match result {
                Ok(total) => {
                    // Another write of this key may have finished first with a larger total.
                    count.stored = count.stored.max(total);
                    count.synced = Some(Instant::now());
                }
                Err(e) => {
                    count.pending += delta;
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// The store's count for `(consumer, period)`, re-read when older than the sync interval.
    ///
    /// Counts only grow within a period, so an answer older than a write that finished
    /// meanwhile never lowers `stored`. An answer that lands while a write of this
    /// instance is in flight is dropped: it may already include that write's delta,
    /// which `writing` still counts.
    async fn refresh(&self, consumer: &str, period: &str) -> Result<(), StoreError> {
        let fresh = self
            .counts
            .lock()
            .get(&(consumer.to_string(), period.to_string()))
            .and_then(|c| c.synced)
            .is_some_and(|t| t.elapsed() < USAGE_SYNC_INTERVAL);
        if fresh {
            return Ok(());
        }
        let stored = self.store.usage(consumer, period).await?;
        let mut counts = self.counts.lock();
        let count = counts
            .entry((consumer.to_string(), period.to_string()))
            .or_default();
        if count.writing == 0 {
            count.stored = count.stored.max(stored);
            count.synced = Some(Instant::now());
        }
        Ok(())
    }

    /// Counts one request against every `(period key, budget)` if none is spent;
    /// otherwise returns the index of the first spent one and counts nothing.
    fn take(&self, consumer: &str, budgets: &[(String, i64)]) -> Result<(), usize> {
        let mut counts = self.counts.lock();
        for (i, (period, limit)) in budgets.iter().enumerate() {
            let used = counts
                .get(&(consumer.to_string(), period.clone()))
                .map_or(0, Count::used);
            if used >= *limit {
                return Err(i);
            }
        }
        for (period, _) in budgets {
            counts
                .entry((consumer.to_string(), period.clone()))
                .or_default()
                .pending += 1;
        }
        Ok(())
    }
}

/// Refuses requests of consumers whose daily or monthly budget is spent (429 with
/// `Retry-After` until the period ends). Requests without a consumer are not counted.
pub struct QuotaGuard {
    /// Route name (metrics).
    pub route: Arc<str>,
    /// The route's budgets (a consumer's plan replaces them).
    pub quota: Quota,
    /// The counts.
    pub usage: Arc<UsageCounter>,
    /// Where decisions are counted.
    pub metrics: Arc<Metrics>,
}

impl QuotaGuard {
    async fn check_inner(&self, ctx: &mut RequestContext) -> Result<(), ProxyError> {
        let Some(principal) = &ctx.principal else {
            return Ok(());
        };
        let plan = principal.plan.as_deref();
        let now = rampart_store::now_ms() / 1000;
        let budgets: Vec<(QuotaPeriod, String, i64)> = [
            (
                QuotaPeriod::Day,
                plan.and_then(|p| p.daily_quota).or(self.quota.daily),
            ),
            (
                QuotaPeriod::Month,
                plan.and_then(|p| p.monthly_quota).or(self.quota.monthly),
            ),
        ]
        .into_iter()
        .filter_map(|(period, limit)| {
            let limit = i64::try_from(limit?).unwrap_or(i64::MAX);
            Some((period, period.key(now), limit))
        })
        .collect();
        for (_, key, _) in &budgets {
            match self.usage.refresh(&principal.consumer_id, key).await {
                Ok(_) => {
                    crate::outage::QUOTA_STORE.succeeded();
                }
                Err(e) => {
                    // Budgets are not a security boundary: keep serving on the last known count.
                    crate::backend_error(&self.metrics, &self.route, "quota_store");
                    crate::outage::QUOTA_STORE.failed(&e, "budgets use the last known counts");
                }
            }
        }
        let keyed: Vec<(String, i64)> = budgets.iter().map(|(_, k, l)| (k.clone(), *l)).collect();
        match self.usage.take(&principal.consumer_id, &keyed) {
            Ok(()) => Ok(()),
            Err(spent) => {
                crate::deny(&self.metrics, &self.route, "quota_exceeded");
                let period = budgets[spent].0;
                let retry = u32::try_from(period.seconds_left(now)).unwrap_or(u32::MAX);
                Err(ProxyError::new(
                    ErrorKind::QuotaExceeded(retry),
                    format!(
                        "{period:?} quota of consumer {} spent",
                        principal.consumer_id
                    ),
                ))
            }
        }
    }
}

impl Guard for QuotaGuard {
    fn name(&self) -> &'static str {
        "quota"
    }

    fn check<'a>(
        &'a self,
        _head: &'a mut http::request::Parts,
        ctx: &'a mut RequestContext,
    ) -> GuardCheck<'a> {
        GuardCheck::Later(Box::pin(async move {
            self.check_inner(ctx).await.map(|()| Verdict::Continue)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use rampart_store::{ConsumerStore, Store};
    use tokio::sync::Semaphore;

    /// The real SQLite store, whose writes, once made, wait for a permit before they
    /// answer, and whose reads answer only while `read_gate` is free: a test decides
    /// when a write or read that started ends.
    struct HeldWrites {
        store: Store,
        permits: Semaphore,
        read_gate: tokio::sync::Mutex<()>,
        /// Told each time a read has its answer from the store.
        read_answered: tokio::sync::Notify,
    }

    #[async_trait]
    impl UsageStore for HeldWrites {
        async fn add_usage(
            &self,
            consumer_id: &str,
            period: &str,
            delta: i64,
        ) -> Result<i64, StoreError> {
            let total = self.store.add_usage(consumer_id, period, delta).await;
            self.permits.acquire().await.expect("open").forget();
            total
        }

        async fn usage(&self, consumer_id: &str, period: &str) -> Result<i64, StoreError> {
            let used = self.store.usage(consumer_id, period).await;
            self.read_answered.notify_one();
            drop(self.read_gate.lock().await);
            used
        }
    }

    /// A held store with one consumer, and that consumer's id.
    async fn held_store() -> (Arc<HeldWrites>, String) {
        let dir = tempfile::Builder::new()
            .prefix("rampart-quota-")
            .tempdir()
            .expect("temp dir")
            .keep();
        let store = Store::open_sqlite(&dir).await.expect("store");
        let consumer = store
            .create_consumer(rampart_store::NewConsumer {
                name: "metered".into(),
                ..Default::default()
            })
            .await
            .expect("consumer");
        let held = Arc::new(HeldWrites {
            store,
            permits: Semaphore::new(0),
            read_gate: tokio::sync::Mutex::new(()),
            read_answered: tokio::sync::Notify::new(),
        });
        (held, consumer.id)
    }

    /// The period the tests count in.
    const DAY: &str = "d:2026-12-04";

    /// A daily budget of three requests.
    fn budget() -> Vec<(String, i64)> {
        vec![(DAY.to_string(), 3)]
    }

    /// Waits until a flush has taken the pending counts and is writing them.
    async fn until_writing(counter: &UsageCounter) {
        for _ in 0..1000 {
            if counter.counts.lock().values().any(|c| c.writing > 0) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        panic!("the flush never started writing");
    }

    #[tokio::test]
    async fn counts_being_written_still_count() {
        let (store, c) = held_store().await;
        let counter = UsageCounter::without_sync_task(store.clone());
        for _ in 0..3 {
            counter.refresh(&c, DAY).await.expect("read");
            assert_eq!(counter.take(&c, &budget()), Ok(()));
        }
        let flushing = tokio::spawn({
            let counter = counter.clone();
            async move { counter.flush().await }
        });
        until_writing(&counter).await;
        // The three requests are neither pending nor stored yet: the budget is still spent.
        assert_eq!(counter.take(&c, &budget()), Err(0));
        // A read made now may already see the write in the store: it is not taken, or
        // the three would count twice.
        counter
            .counts
            .lock()
            .values_mut()
            .for_each(|count| count.synced = None);
        counter.refresh(&c, DAY).await.expect("read");
        let used = |counter: &UsageCounter| {
            counter
                .counts
                .lock()
                .get(&(c.clone(), DAY.to_string()))
                .map(Count::used)
        };
        assert_eq!(used(&counter), Some(3));
        store.permits.add_permits(1);
        flushing.await.expect("join").expect("flush");
        assert_eq!(store.store.usage(&c, DAY).await.expect("usage"), 3);
        assert_eq!(used(&counter), Some(3));
        assert_eq!(counter.take(&c, &budget()), Err(0));
    }

    #[tokio::test]
    async fn a_read_that_overlaps_a_write_does_not_lower_the_count() {
        let (store, c) = held_store().await;
        let counter = UsageCounter::without_sync_task(store.clone());
        for _ in 0..2 {
            assert_eq!(counter.take(&c, &budget()), Ok(()));
        }
        // A read of the store starts (it will see 0) and is held before it answers.
        let gate = store.read_gate.lock().await;
        let reading = tokio::spawn({
            let (counter, c) = (counter.clone(), c.clone());
            async move { counter.refresh(&c, DAY).await }
        });
        store.read_answered.notified().await;
        // Meanwhile the two requests are written.
        store.permits.add_permits(1);
        counter.flush().await.expect("flush");
        assert_eq!(store.store.usage(&c, DAY).await.expect("usage"), 2);
        // The old read answers last: it must not undo the write.
        drop(gate);
        reading.await.expect("join").expect("read");
        assert_eq!(counter.take(&c, &budget()), Ok(()));
        assert_eq!(counter.take(&c, &budget()), Err(0));
    }
}
