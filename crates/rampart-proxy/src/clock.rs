//! Wall-clock times derived from monotonic readings, so that a request reads the
//! clock once for both its timings and its timestamp.

use std::cell::Cell;
use std::time::{Duration, Instant, SystemTime};

/// How long one pairing of the two clocks is used before both are read again: a step
/// of the system clock (or NTP slewing it) shows in timestamps within this long.
const REANCHOR_AFTER: Duration = Duration::from_secs(1);

thread_local! {
    /// This thread's last pairing of the monotonic and the system clock.
    static ANCHOR: Cell<Option<(Instant, SystemTime)>> = const { Cell::new(None) };
}

/// The system time at monotonic instant `at` (a reading just taken).
pub(crate) fn wall_time(at: Instant) -> SystemTime {
    ANCHOR.with(|anchor| {
        if let Some((mono, wall)) = anchor.get() {
            if let Some(after) = at.checked_duration_since(mono) {
                if after < REANCHOR_AFTER {
                    return wall + after;
                }
            }
        }
        let (mono, wall) = (Instant::now(), SystemTime::now());
        anchor.set(Some((mono, wall)));
        match at.checked_duration_since(mono) {
            Some(after) => wall + after,
            None => wall
                .checked_sub(mono.saturating_duration_since(at))
                .unwrap_or(wall),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wall_times_follow_the_system_clock_and_each_other() {
        let first = Instant::now();
        let system = SystemTime::now();
        let derived = wall_time(first);
        let gap = |a: SystemTime, b: SystemTime| {
            a.duration_since(b)
                .unwrap_or_else(|e| e.duration())
                .as_millis()
        };
        assert!(gap(derived, system) < 50, "{derived:?} vs {system:?}");
        // Within one pairing, later instants give later times, by as much.
        let later = first + Duration::from_millis(250);
        assert_eq!(
            wall_time(later)
                .duration_since(derived)
                .expect("later")
                .as_millis(),
            250
        );
        // An instant from before the pairing is placed before it.
        let earlier = first.checked_sub(Duration::from_millis(5)).unwrap_or(first);
        assert!(wall_time(earlier) <= derived);
        // Past the pairing's lifetime both clocks are read again.
        let much_later = first + REANCHOR_AFTER * 3;
        let expected = system + REANCHOR_AFTER * 3;
        assert!(gap(wall_time(much_later), expected) < 50);
    }
}
