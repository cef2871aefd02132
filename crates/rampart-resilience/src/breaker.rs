//! A circuit breaker: closed → open → half-open → closed.

use std::time::{Duration, Instant};

use crate::RollingWindow;

/// When a breaker opens and how it recovers.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerSettings {
    /// Open after this many consecutive failures (0 disables this trigger).
    pub consecutive_failures: u32,
    /// Open when failures / requests over `window` reach this ratio (0 disables this trigger).
    pub failure_ratio: f64,
    /// Length of the rolling window for `failure_ratio`.
    pub window: Duration,
    /// The ratio trigger needs at least this many requests in the window.
    pub min_requests: u32,
    /// How long the breaker stays open before letting probes through.
    pub open_for: Duration,
    /// How many probe requests half-open admits; all must succeed to close.
    pub half_open_probes: u32,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            consecutive_failures: 5,
            failure_ratio: 0.5,
            window: Duration::from_secs(10),
            min_requests: 20,
            open_for: Duration::from_secs(5),
            half_open_probes: 1,
        }
    }
}

/// The externally visible state of a breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Requests flow.
    Closed,
    /// Requests are refused until the open period ends.
    Open,
    /// A limited number of probes are admitted.
    HalfOpen,
}

impl BreakerState {
    /// 0 closed, 1 half-open, 2 open: the value exported as a metric.
    pub fn as_gauge(self) -> i64 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::HalfOpen => 1,
            BreakerState::Open => 2,
        }
    }
}

/// Whether a request may go to the protected upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Go ahead; report the result with `probe = false`.
    Allowed,
    /// Go ahead as a half-open probe; report the result with `probe = true`.
    Probe,
    /// Refused: the breaker is open (or all probes are taken).
    Rejected,
}

#[derive(Debug, Clone)]
enum Inner {
    Closed {
        consecutive_failures: u32,
    },
    Open {
        until: Instant,
    },
    HalfOpen {
        probes_in_flight: u32,
        successes: u32,
    },
}

/// One breaker, guarding one upstream. Not thread-safe by itself: wrap it in a lock.
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    settings: BreakerSettings,
    inner: Inner,
    window: RollingWindow,
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(settings: BreakerSettings) -> Self {
        let window = RollingWindow::new(settings.window);
        Self {
            settings,
            inner: Inner::Closed {
                consecutive_failures: 0,
            },
            window,
        }
    }

    /// The settings this breaker runs with.
    pub fn settings(&self) -> &BreakerSettings {
        &self.settings
    }

    /// The state at `now` (an open breaker whose time is up reports half-open).
    pub fn state(&self, now: Instant) -> BreakerState {
        match self.inner {
            Inner::Closed { .. } => BreakerState::Closed,
            Inner::Open { until } if now >= until => BreakerState::HalfOpen,
            Inner::Open { .. } => BreakerState::Open,
            Inner::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// Asks to send one request at `now`.
    pub fn try_acquire(&mut self, now: Instant) -> Admission {
        if let Inner::Open { until } = self.inner {
            if now < until {
                return Admission::Rejected;
            }
            self.inner = Inner::HalfOpen {
                probes_in_flight: 0,
                successes: 0,
            };
        }
        match &mut self.inner {
            Inner::Closed { .. } => Admission::Allowed,
            Inner::HalfOpen {
                probes_in_flight,
                successes,
            } => {
                if *probes_in_flight + *successes < self.settings.half_open_probes.max(1) {
                    *probes_in_flight += 1;
                    Admission::Probe
                } else {
                    Admission::Rejected
                }
            }
            Inner::Open { .. } => Admission::Rejected,
        }
    }

    /// Reports the result of a request admitted at an earlier `try_acquire`.
    pub fn on_result(&mut self, now: Instant, success: bool, probe: bool) {
        match &mut self.inner {
            Inner::Closed {
                consecutive_failures,
            } => {
                if probe {
                    return; // a stale probe from an earlier half-open period
                }
                self.window.record(now, success);
                if success {
                    *consecutive_failures = 0;
                    return;
                }
                *consecutive_failures += 1;
                let consecutive = self.settings.consecutive_failures > 0
                    && *consecutive_failures >= self.settings.consecutive_failures;
                if consecutive || self.ratio_tripped(now) {
                    self.open(now);
                }
            }
            Inner::HalfOpen {
                probes_in_flight,
                successes,
            } => {
                if !probe {
                    return; // admitted before the breaker opened; says nothing about now
                }
                *probes_in_flight = probes_in_flight.saturating_sub(1);
                if !success {
                    self.open(now);
                    return;
                }
                *successes += 1;
                if *successes >= self.settings.half_open_probes.max(1) {
                    self.window.clear();
                    self.inner = Inner::Closed {
                        consecutive_failures: 0,
                    };
                }
            }
            Inner::Open { .. } => {}
        }
    }

    fn ratio_tripped(&mut self, now: Instant) -> bool {
        if self.settings.failure_ratio <= 0.0 {
            return false;
        }
        let (ok, failed) = self.window.totals(now);
        let total = ok + failed;
        total >= u64::from(self.settings.min_requests.max(1))
            && failed as f64 / total as f64 >= self.settings.failure_ratio
    }

    fn open(&mut self, now: Instant) {
        self.inner = Inner::Open {
            until: now + self.settings.open_for,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> BreakerSettings {
        BreakerSettings {
            consecutive_failures: 3,
            failure_ratio: 0.0,
            window: Duration::from_secs(10),
            min_requests: 10,
            open_for: Duration::from_secs(5),
            half_open_probes: 2,
        }
    }

    fn fail(b: &mut CircuitBreaker, now: Instant) {
        assert_eq!(b.try_acquire(now), Admission::Allowed);
        b.on_result(now, false, false);
    }

    #[test]
    fn opens_after_consecutive_failures_and_recovers_through_half_open() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(settings());
        fail(&mut b, t0);
        fail(&mut b, t0);
        assert_eq!(b.state(t0), BreakerState::Closed);
        fail(&mut b, t0);
        assert_eq!(b.state(t0), BreakerState::Open);
        assert_eq!(
            b.try_acquire(t0 + Duration::from_secs(4)),
            Admission::Rejected
        );

        let t1 = t0 + Duration::from_secs(5);
        assert_eq!(b.state(t1), BreakerState::HalfOpen);
        assert_eq!(b.try_acquire(t1), Admission::Probe);
        assert_eq!(b.try_acquire(t1), Admission::Probe);
        assert_eq!(b.try_acquire(t1), Admission::Rejected, "only two probes");
        b.on_result(t1, true, true);
        assert_eq!(b.state(t1), BreakerState::HalfOpen);
        b.on_result(t1, true, true);
        assert_eq!(b.state(t1), BreakerState::Closed);
        assert_eq!(b.try_acquire(t1), Admission::Allowed);
    }

    #[test]
    fn a_failed_probe_reopens() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(settings());
        for _ in 0..3 {
            fail(&mut b, t0);
        }
        let t1 = t0 + Duration::from_secs(6);
        assert_eq!(b.try_acquire(t1), Admission::Probe);
        b.on_result(t1, false, true);
        assert_eq!(b.state(t1), BreakerState::Open);
        assert_eq!(
            b.try_acquire(t1 + Duration::from_secs(1)),
            Admission::Rejected
        );
        assert_eq!(b.try_acquire(t1 + Duration::from_secs(5)), Admission::Probe);
    }

    #[test]
    fn success_resets_the_consecutive_count() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(settings());
        for _ in 0..10 {
            fail(&mut b, t0);
            fail(&mut b, t0);
            assert_eq!(b.try_acquire(t0), Admission::Allowed);
            b.on_result(t0, true, false);
        }
        assert_eq!(b.state(t0), BreakerState::Closed);
    }

    #[test]
    fn opens_on_error_ratio_only_with_enough_requests() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(BreakerSettings {
            consecutive_failures: 0,
            failure_ratio: 0.5,
            min_requests: 10,
            ..settings()
        });
        // 4 failures out of 8: ratio met but not enough requests.
        for i in 0..8 {
            assert_eq!(b.try_acquire(t0), Admission::Allowed);
            b.on_result(t0, i % 2 == 0, false);
        }
        assert_eq!(b.state(t0), BreakerState::Closed);
        assert_eq!(b.try_acquire(t0), Admission::Allowed);
        b.on_result(t0, true, false);
        assert_eq!(b.state(t0), BreakerState::Closed, "4/9 failed");
        assert_eq!(b.try_acquire(t0), Admission::Allowed);
        b.on_result(t0, false, false);
        assert_eq!(b.state(t0), BreakerState::Open, "5/10 failed");
    }

    #[test]
    fn old_failures_leave_the_window() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(BreakerSettings {
            consecutive_failures: 0,
            failure_ratio: 0.5,
            min_requests: 4,
            ..settings()
        });
        for _ in 0..3 {
            fail(&mut b, t0);
        }
        let later = t0 + Duration::from_secs(11);
        fail(&mut b, later);
        assert_eq!(
            b.state(later),
            BreakerState::Closed,
            "only one failure remains in the window"
        );
    }

    #[test]
    fn results_from_an_earlier_state_are_ignored() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(settings());
        for _ in 0..3 {
            fail(&mut b, t0);
        }
        let t1 = t0 + Duration::from_secs(5);
        assert_eq!(b.try_acquire(t1), Admission::Probe);
        b.on_result(t1, false, false); // a straggler admitted while closed
        assert_eq!(b.state(t1), BreakerState::HalfOpen);
    }
}
