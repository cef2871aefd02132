//! Exponential backoff with full jitter.

use std::time::Duration;

/// Exponential backoff: attempt `n` waits a uniformly random time in
/// `[0, min(max, base * 2^n))` ("full jitter").
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// The ceiling for the first retry.
    pub base: Duration,
    /// The largest ceiling.
    pub max: Duration,
}

impl Backoff {
    /// The ceiling for retry number `attempt` (0 for the first retry).
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// The delay before retry number `attempt`, given `unit` drawn uniformly from `[0, 1)`.
    pub fn delay(&self, attempt: u32, unit: f64) -> Duration {
        self.ceiling(attempt).mul_f64(unit.clamp(0.0, 1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceiling_doubles_up_to_the_cap() {
        let b = Backoff {
            base: Duration::from_millis(25),
            max: Duration::from_millis(250),
        };
        assert_eq!(b.ceiling(0), Duration::from_millis(25));
        assert_eq!(b.ceiling(1), Duration::from_millis(50));
        assert_eq!(b.ceiling(3), Duration::from_millis(200));
        assert_eq!(b.ceiling(4), Duration::from_millis(250));
        assert_eq!(b.ceiling(200), Duration::from_millis(250));
    }

    #[test]
    fn delay_is_jittered_within_the_ceiling() {
        let b = Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        assert_eq!(b.delay(1, 0.0), Duration::ZERO);
        assert_eq!(b.delay(1, 0.5), Duration::from_millis(100));
        assert!(b.delay(1, 0.999) < Duration::from_millis(200));
        assert_eq!(
            b.delay(1, 7.0),
            Duration::from_millis(200),
            "unit is clamped"
        );
    }
}
