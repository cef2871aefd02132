//! A retry budget: retries in flight stay under a share of requests in flight.

use std::sync::atomic::{AtomicU64, Ordering};

/// How many retries may be in flight.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryBudgetSettings {
    /// Retries in flight may be at most this share of active requests (0.2 = 20%).
    pub ratio: f64,
    /// ... but at least this many concurrent retries are always allowed.
    pub min_concurrent: u64,
}

impl Default for RetryBudgetSettings {
    fn default() -> Self {
        Self {
            ratio: 0.2,
            min_concurrent: 3,
        }
    }
}

impl RetryBudgetSettings {
    /// Whether one more retry fits with `active_requests` requests and `active_retries` retries in flight.
    pub fn allows(&self, active_requests: u64, active_retries: u64) -> bool {
        let cap = ((active_requests as f64) * self.ratio).floor() as u64;
        active_retries < cap.max(self.min_concurrent)
    }
}

/// Live counters for one budget (one per upstream), shared between requests.
#[derive(Debug)]
pub struct RetryBudget {
    settings: RetryBudgetSettings,
    active_requests: AtomicU64,
    active_retries: AtomicU64,
}

/// Counts a request (or a retry) as active while held; it borrows its budget, so
/// taking and dropping one costs one atomic operation each.
#[derive(Debug)]
pub struct RetryPermit<'a> {
    counter: &'a AtomicU64,
}

impl Drop for RetryPermit<'_> {
    fn drop(&mut self) {
        self.counter.fetch_sub(1, Ordering::AcqRel);
    }
}

impl RetryBudget {
    /// A budget with no traffic.
    pub fn new(settings: RetryBudgetSettings) -> Self {
        Self {
            settings,
            active_requests: AtomicU64::new(0),
            active_retries: AtomicU64::new(0),
        }
    }

    /// Marks a request active until the permit drops.
    pub fn start_request(&self) -> RetryPermit<'_> {
        self.active_requests.fetch_add(1, Ordering::AcqRel);
        RetryPermit {
            counter: &self.active_requests,
        }
    }

    /// Takes a retry slot if the budget allows it.
    pub fn try_retry(&self) -> Option<RetryPermit<'_>> {
        let requests = self.active_requests.load(Ordering::Acquire);
        let mut retries = self.active_retries.load(Ordering::Acquire);
        loop {
            if !self.settings.allows(requests, retries) {
                return None;
            }
            match self.active_retries.compare_exchange_weak(
                retries,
                retries + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    return Some(RetryPermit {
                        counter: &self.active_retries,
                    })
                }
                Err(seen) => retries = seen,
            }
        }
    }

    /// `(active requests, active retries)`.
    pub fn load(&self) -> (u64, u64) {
        (
            self.active_requests.load(Ordering::Relaxed),
            self.active_retries.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimum_concurrency_applies_at_low_traffic() {
        let s = RetryBudgetSettings::default();
        assert!(s.allows(1, 0));
        assert!(s.allows(1, 2));
        assert!(!s.allows(1, 3));
    }

    #[test]
    fn ratio_applies_at_high_traffic() {
        let s = RetryBudgetSettings::default();
        assert!(s.allows(100, 19));
        assert!(!s.allows(100, 20));
    }

    #[test]
    fn permits_are_counted_and_released() {
        let b = RetryBudget::new(RetryBudgetSettings {
            ratio: 0.2,
            min_concurrent: 1,
        });
        let _requests: Vec<_> = (0..10).map(|_| b.start_request()).collect();
        let r1 = b.try_retry().expect("first retry");
        let _r2 = b.try_retry().expect("second retry: 20% of 10");
        assert!(b.try_retry().is_none());
        assert_eq!(b.load(), (10, 2));
        drop(r1);
        assert!(b.try_retry().is_some());
    }
}
