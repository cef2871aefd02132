//! A rolling window of success and failure counts, kept in fixed time buckets.

use std::time::{Duration, Instant};

const BUCKETS: usize = 10;

/// Counts successes and failures over the last `window`, in ten buckets.
#[derive(Debug, Clone)]
pub struct RollingWindow {
    bucket_width: Duration,
    buckets: [(u64, u64); BUCKETS],
    /// Index of the bucket that holds `head_start`.
    head: usize,
    head_start: Option<Instant>,
}

impl RollingWindow {
    /// A window covering `window` (at least ten milliseconds).
    pub fn new(window: Duration) -> Self {
        let window = window.max(Duration::from_millis(10));
        Self {
            bucket_width: window / BUCKETS as u32,
            buckets: [(0, 0); BUCKETS],
            head: 0,
            head_start: None,
        }
    }

    fn advance(&mut self, now: Instant) {
        let Some(start) = self.head_start else {
            self.head_start = Some(now);
            return;
        };
        let elapsed = now.saturating_duration_since(start);
        if elapsed < self.bucket_width {
            // Still in the head bucket (nearly every call): no division.
            return;
        }
        let steps = (elapsed.as_nanos() / self.bucket_width.as_nanos().max(1)) as usize;
        if steps == 0 {
            return;
        }
        for step in 1..=steps.min(BUCKETS) {
            self.buckets[(self.head + step) % BUCKETS] = (0, 0);
        }
        self.head = (self.head + steps) % BUCKETS;
        self.head_start = Some(start + self.bucket_width * steps as u32);
    }

    /// Records one outcome at `now`.
    pub fn record(&mut self, now: Instant, success: bool) {
        self.advance(now);
        let bucket = &mut self.buckets[self.head];
        if success {
            bucket.0 += 1;
        } else {
            bucket.1 += 1;
        }
    }

    /// `(successes, failures)` within the window ending at `now`.
    pub fn totals(&mut self, now: Instant) -> (u64, u64) {
        self.advance(now);
        self.buckets
            .iter()
            .fold((0, 0), |(s, f), (bs, bf)| (s + bs, f + bf))
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.buckets = [(0, 0); BUCKETS];
        self.head_start = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_expire_after_the_window() {
        let t0 = Instant::now();
        let mut w = RollingWindow::new(Duration::from_secs(10));
        w.record(t0, true);
        w.record(t0 + Duration::from_secs(5), false);
        assert_eq!(w.totals(t0 + Duration::from_secs(6)), (1, 1));
        assert_eq!(w.totals(t0 + Duration::from_millis(10_500)), (0, 1));
        assert_eq!(w.totals(t0 + Duration::from_secs(16)), (0, 0));
    }

    #[test]
    fn a_long_gap_clears_every_bucket() {
        let t0 = Instant::now();
        let mut w = RollingWindow::new(Duration::from_secs(1));
        for i in 0..10 {
            w.record(t0 + Duration::from_millis(i * 100), false);
        }
        assert_eq!(w.totals(t0 + Duration::from_millis(950)), (0, 10));
        assert_eq!(w.totals(t0 + Duration::from_secs(100)), (0, 0));
    }
}
