//! Logging a shared backend's outage as it changes, not once per request: a WARN when
//! it starts failing, a summary at most every [`SUMMARY_EVERY`] while it keeps failing,
//! and an INFO when it answers again. (Every failure is still counted in
//! `rampart_guard_backend_errors_total`.)

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often a continuing outage is summarised.
pub const SUMMARY_EVERY: Duration = Duration::from_secs(10);

/// The log state of one backend (such as the shared rate limiter).
pub struct OutageLog {
    /// What failed, as the log names it.
    name: &'static str,
    failing: AtomicBool,
    /// Failures since the outage began or since the last summary.
    failures: AtomicU64,
    /// When the outage began or was last summarised.
    since: Mutex<Option<Instant>>,
}

/// What a call to [`OutageLog::failed`] logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logged {
    /// The first failure: the outage began.
    Began,
    /// A summary of the failures since the last line.
    Summary(u64),
    /// Nothing: counted toward the next summary.
    Nothing,
}

impl OutageLog {
    /// A backend that is answering.
    pub const fn new(name: &'static str) -> Self {
        Self {
            name,
            failing: AtomicBool::new(false),
            failures: AtomicU64::new(0),
            since: Mutex::new(None),
        }
    }

    /// Notes a failure; `then` says what the guard does instead.
    pub fn failed(&self, error: &dyn std::fmt::Display, then: &str) -> Logged {
        self.failed_at(Instant::now(), error, then)
    }

    fn failed_at(&self, now: Instant, error: &dyn std::fmt::Display, then: &str) -> Logged {
        if !self.failing.swap(true, Ordering::AcqRel) {
            if let Ok(mut since) = self.since.lock() {
                *since = Some(now);
            }
            self.failures.store(0, Ordering::Relaxed);
            tracing::warn!(
                backend = self.name,
                "{} unavailable ({error}); {then}",
                self.name
            );
            return Logged::Began;
        }
        self.failures.fetch_add(1, Ordering::Relaxed);
        // One request at a time writes the summary; the others only count.
        let Ok(mut since) = self.since.try_lock() else {
            return Logged::Nothing;
        };
        if since.is_some_and(|s| now.duration_since(s) < SUMMARY_EVERY) {
            return Logged::Nothing;
        }
        let seconds = since.map_or(0, |s| now.duration_since(s).as_secs());
        *since = Some(now);
        let failures = self.failures.swap(0, Ordering::Relaxed);
        tracing::warn!(
            backend = self.name,
            failures,
            "{} still unavailable: {failures} more failed calls in the last {seconds}s (last: {error}); {then}",
            self.name
        );
        Logged::Summary(failures)
    }

    /// Notes a success: logs the end of an outage once.
    pub fn succeeded(&self) -> bool {
        if self.failing.load(Ordering::Relaxed) && self.failing.swap(false, Ordering::AcqRel) {
            let failures = self.failures.swap(0, Ordering::Relaxed);
            tracing::info!(
                backend = self.name,
                "{} available again ({failures} failed calls since the last report)",
                self.name
            );
            return true;
        }
        false
    }
}

/// The shared rate limiter (Redis).
pub static RATE_LIMITER: OutageLog = OutageLog::new("shared rate limiter");
/// The ban list (Redis).
pub static BAN_LIST: OutageLog = OutageLog::new("ban list");
/// Quota usage in the store.
pub static QUOTA_STORE: OutageLog = OutageLog::new("quota usage store");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_is_logged_when_it_begins_then_summarised_then_ended() {
        let log = OutageLog::new("test backend");
        let start = Instant::now();
        assert_eq!(log.failed_at(start, &"down", "refusing"), Logged::Began);
        for i in 1..100 {
            let at = start + Duration::from_millis(i * 10);
            assert_eq!(log.failed_at(at, &"down", "refusing"), Logged::Nothing);
        }
        // The next failure after the interval writes one summary of what it counted.
        let later = start + SUMMARY_EVERY + Duration::from_millis(1);
        assert_eq!(
            log.failed_at(later, &"down", "refusing"),
            Logged::Summary(100)
        );
        assert_eq!(
            log.failed_at(later + Duration::from_millis(5), &"down", "refusing"),
            Logged::Nothing
        );
        assert!(log.succeeded());
        assert!(!log.succeeded(), "the end is logged once");
        // A new outage begins afresh.
        assert_eq!(
            log.failed_at(later, &"down again", "refusing"),
            Logged::Began
        );
    }
}
