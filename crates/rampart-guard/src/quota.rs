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
use rampart_proxy::phase::{Guard, GuardFuture, RequestContext, Verdict};
use rampart_proxy::{ErrorKind, ProxyError};
use rampart_store::{QuotaPeriod, StoreError, UsageStore};
use rampart_telemetry::Metrics;

/// How often counts are written to the store, and how old a read count may be.
pub const USAGE_SYNC_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
struct Count {
    /// The store's count when last read or written.
    stored: i64,
    /// Counted here and not yet written.
    pending: i64,
    /// When `stored` was last read or written.
    synced: Option<Instant>,
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
        let counter = Arc::new(Self {
            store,
            counts: Mutex::new(HashMap::new()),
        });
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

    /// Writes every pending count to the store. Counts that fail are kept for the next try.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let pending: Vec<((String, String), i64)> = {
            let mut counts = self.counts.lock();
            let stale = Instant::now() - 60 * USAGE_SYNC_INTERVAL;
            counts.retain(|_, c| c.pending > 0 || c.synced.is_some_and(|t| t > stale));
            counts
                .iter_mut()
                .filter(|(_, c)| c.pending > 0)
                .map(|(k, c)| (k.clone(), std::mem::take(&mut c.pending)))
                .collect()
        };
        let mut first_error = None;
        for ((consumer, period), delta) in pending {
            let result = self.store.add_usage(&consumer, &period, delta).await;
            let mut counts = self.counts.lock();
            let count = counts.entry((consumer, period)).or_default();
            match result {
                Ok(total) => {
                    count.stored = total;
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
        count.stored = stored;
        count.synced = Some(Instant::now());
        Ok(())
    }

    /// Counts one request against every `(period key, budget)` if none is spent;
    /// otherwise returns the index of the first spent one and counts nothing.
    fn take(&self, consumer: &str, budgets: &[(String, i64)]) -> Result<(), usize> {
        let mut counts = self.counts.lock();
        for (i, (period, limit)) in budgets.iter().enumerate() {
            let used = counts
                .get(&(consumer.to_string(), period.clone()))
                .map_or(0, |c| c.stored + c.pending);
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
            if let Err(e) = self.usage.refresh(&principal.consumer_id, key).await {
                // Budgets are not a security boundary: keep serving on the last known count.
                crate::backend_error(&self.metrics, &self.route, "quota_store");
                tracing::warn!(route = %self.route, "quota usage unavailable ({e}); using the last known count");
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
    ) -> GuardFuture<'a> {
        Box::pin(async move { self.check_inner(ctx).await.map(|()| Verdict::Continue) })
    }
}
