//! Passive outlier detection: eject targets that keep failing.

use std::time::{Duration, Instant};

/// When a target is ejected and for how long.
#[derive(Debug, Clone, PartialEq)]
pub struct OutlierSettings {
    /// Eject after this many consecutive 5xx responses (0 disables).
    pub consecutive_5xx: u32,
    /// Eject after this many consecutive connect failures (0 disables).
    pub consecutive_connect_failures: u32,
    /// The first ejection lasts this long; the n-th lasts n times as long.
    pub base_ejection: Duration,
    /// No ejection lasts longer than this.
    pub max_ejection: Duration,
    /// Never eject more than this percentage of the pool's targets.
    pub max_ejection_percent: u8,
}

impl Default for OutlierSettings {
    fn default() -> Self {
        Self {
            consecutive_5xx: 5,
            consecutive_connect_failures: 3,
            base_ejection: Duration::from_secs(30),
            max_ejection: Duration::from_secs(300),
            max_ejection_percent: 50,
        }
    }
}

/// What one attempt against a target produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// Any response below 500.
    Success,
    /// A 5xx response.
    ServerError,
    /// The connection could not be made.
    ConnectFailure,
}

#[derive(Debug, Clone, Default)]
struct TargetState {
    consecutive_5xx: u32,
    consecutive_connect: u32,
    ejections: u32,
    ejected_until: Option<Instant>,
}

/// Outlier state for every target of one pool. Not thread-safe by itself.
#[derive(Debug, Clone)]
pub struct OutlierDetector {
    settings: OutlierSettings,
    targets: Vec<TargetState>,
}

impl OutlierDetector {
    /// A detector for `targets` targets, none ejected.
    pub fn new(settings: OutlierSettings, targets: usize) -> Self {
        Self {
            settings,
            targets: vec![TargetState::default(); targets],
        }
    }

    /// Whether `target` is ejected at `now`.
    pub fn is_ejected(&self, target: usize, now: Instant) -> bool {
        self.targets
            .get(target)
            .and_then(|t| t.ejected_until)
            .is_some_and(|until| now < until)
    }

    fn ejected_count(&self, now: Instant) -> usize {
        (0..self.targets.len())
            .filter(|&i| self.is_ejected(i, now))
            .count()
    }

    /// Records an attempt; returns the ejection time if this attempt ejected the target.
    pub fn record(
        &mut self,
        target: usize,
        now: Instant,
        outcome: AttemptOutcome,
    ) -> Option<Duration> {
        let settings = &self.settings;
        let state = self.targets.get_mut(target)?;
        let tripped = match outcome {
            AttemptOutcome::Success => {
                state.consecutive_5xx = 0;
                state.consecutive_connect = 0;
                false
            }
            AttemptOutcome::ServerError => {
                state.consecutive_5xx += 1;
                settings.consecutive_5xx > 0 && state.consecutive_5xx >= settings.consecutive_5xx
            }
            AttemptOutcome::ConnectFailure => {
                state.consecutive_connect += 1;
                settings.consecutive_connect_failures > 0
                    && state.consecutive_connect >= settings.consecutive_connect_failures
            }
        };
        if !tripped || self.is_ejected(target, now) {
            return None;
        }
        let allowed = self.targets.len() * usize::from(self.settings.max_ejection_percent) / 100;
        if self.ejected_count(now) + 1 > allowed {
            return None;
        }
        let state = &mut self.targets[target];
        state.ejections += 1;
        state.consecutive_5xx = 0;
        state.consecutive_connect = 0;
        let duration = self
            .settings
            .base_ejection
            .saturating_mul(state.ejections)
            .min(self.settings.max_ejection);
        state.ejected_until = Some(now + duration);
        Some(duration)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> OutlierSettings {
        OutlierSettings {
            consecutive_5xx: 3,
            consecutive_connect_failures: 2,
            base_ejection: Duration::from_secs(10),
            max_ejection: Duration::from_secs(25),
            max_ejection_percent: 50,
        }
    }

    #[test]
    fn ejection_grows_with_repeats_and_is_capped() {
        let t0 = Instant::now();
        let mut d = OutlierDetector::new(settings(), 4);
        assert_eq!(d.record(0, t0, AttemptOutcome::ConnectFailure), None);
        assert_eq!(
            d.record(0, t0, AttemptOutcome::ConnectFailure),
            Some(Duration::from_secs(10))
        );
        assert!(d.is_ejected(0, t0 + Duration::from_secs(9)));
        let t1 = t0 + Duration::from_secs(10);
        assert!(!d.is_ejected(0, t1));
        for _ in 0..2 {
            d.record(0, t1, AttemptOutcome::ServerError);
        }
        assert_eq!(
            d.record(0, t1, AttemptOutcome::ServerError),
            Some(Duration::from_secs(20))
        );
        let t2 = t1 + Duration::from_secs(20);
        d.record(0, t2, AttemptOutcome::ConnectFailure);
        assert_eq!(
            d.record(0, t2, AttemptOutcome::ConnectFailure),
            Some(Duration::from_secs(25))
        );
    }

    #[test]
    fn success_resets_the_counters() {
        let t0 = Instant::now();
        let mut d = OutlierDetector::new(settings(), 2);
        for _ in 0..10 {
            d.record(1, t0, AttemptOutcome::ServerError);
            d.record(1, t0, AttemptOutcome::ServerError);
            d.record(1, t0, AttemptOutcome::Success);
        }
        assert!(!d.is_ejected(1, t0));
    }

    #[test]
    fn never_ejects_more_than_the_percentage() {
        let t0 = Instant::now();
        let mut d = OutlierDetector::new(settings(), 4);
        for target in 0..4 {
            d.record(target, t0, AttemptOutcome::ConnectFailure);
            d.record(target, t0, AttemptOutcome::ConnectFailure);
        }
        let ejected = (0..4).filter(|&t| d.is_ejected(t, t0)).count();
        assert_eq!(ejected, 2);
    }

    #[test]
    fn a_single_target_pool_at_fifty_percent_is_never_ejected() {
        let t0 = Instant::now();
        let mut d = OutlierDetector::new(settings(), 1);
        for _ in 0..5 {
            d.record(0, t0, AttemptOutcome::ConnectFailure);
        }
        assert!(!d.is_ejected(0, t0));
    }
}
