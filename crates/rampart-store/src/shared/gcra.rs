//! GCRA (the generic cell rate algorithm): a rate limit kept as one number per key,
//! the theoretical arrival time (TAT) of the next conforming request.
//!
//! With an emission interval `T = period / rate` and a burst of `B` requests, a request
//! of cost `c` at time `now` conforms when `max(TAT, now) + c·T − now ≤ B·T`; if it does,
//! the TAT moves to `max(TAT, now) + c·T`. The Redis backend runs the same arithmetic in
//! one Lua script (with the server's clock), so every instance shares one limit.

use std::time::Duration;

/// A rate limit: `rate` requests per `period`, bursts of up to `burst`, with its
/// emission interval and burst slack worked out once (a decision then divides only
/// to count what remains).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateSpec {
    /// Nanoseconds between conforming requests at the sustained rate (at least 1).
    emission_ns: u64,
    /// Nanoseconds of slack the burst allows.
    limit_ns: u64,
}

impl RateSpec {
    /// `rate` requests per `period`, bursts of up to `burst` (a rate or burst of 0
    /// counts as 1).
    pub fn new(rate: u32, period: Duration, burst: u32) -> Self {
        let emission_ns =
            (period.as_nanos() / u128::from(rate.max(1))).clamp(1, u128::from(u64::MAX)) as u64;
        Self {
            emission_ns,
            limit_ns: emission_ns.saturating_mul(u64::from(burst.max(1))),
        }
    }

    /// Nanoseconds between conforming requests at the sustained rate.
    pub fn emission_ns(&self) -> u64 {
        self.emission_ns
    }

    /// Nanoseconds of slack the burst allows.
    pub fn limit_ns(&self) -> u64 {
        self.limit_ns
    }
}

/// The outcome of one rate-limit decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDecision {
    /// Whether the request conforms (and was counted).
    pub allowed: bool,
    /// Requests that would still conform right now.
    pub remaining: u32,
    /// When denied: how long until this request would conform.
    pub retry_after: Duration,
    /// How long until the limit is fully replenished.
    pub reset_after: Duration,
}

/// One GCRA step: given the stored TAT (`None` for a new key) and `now` (both in
/// nanoseconds on one clock), returns the decision and the TAT to store (`None` when
/// denied: nothing changes).
pub fn step(tat: Option<u64>, now: u64, spec: &RateSpec, cost: u32) -> (RateDecision, Option<u64>) {
    let (emission, limit) = (spec.emission_ns, spec.limit_ns);
    let tat = tat.unwrap_or(now).max(now);
    let new_tat = tat.saturating_add(emission.saturating_mul(u64::from(cost)));
    let ahead = new_tat - now;
    if ahead > limit {
        let retry_after = Duration::from_nanos(ahead - limit);
        let reset_after = Duration::from_nanos(tat - now);
        let remaining = ((limit.saturating_sub(tat - now)) / emission) as u32;
        return (
            RateDecision {
                allowed: false,
                remaining,
                retry_after,
                reset_after,
            },
            None,
        );
    }
    let remaining = ((limit - ahead) / emission) as u32;
    (
        RateDecision {
            allowed: true,
            remaining,
            retry_after: Duration::ZERO,
            reset_after: Duration::from_nanos(ahead),
        },
        Some(new_tat),
    )
}

/// The same step in Lua, for Redis. KEYS[1] = the key; ARGV = emission_ns, limit_ns, cost.
/// Uses the Redis server's clock so that instances with skewed clocks agree. Returns
/// `{allowed, remaining, retry_after_ns, reset_after_ns}`.
pub(crate) const GCRA_SCRIPT: &str = r"
local emission = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000000 + tonumber(t[2]) * 1000
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + emission * cost
local ahead = new_tat - now
if ahead > limit then
  local slack = limit - (tat - now)
  if slack < 0 then slack = 0 end
  return {0, math.floor(slack / emission), ahead - limit, tat - now}
end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil(ahead / 1000000) + 1)
return {1, math.floor((limit - ahead) / emission), 0, ahead}";

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;

    fn spec(rate: u32, burst: u32) -> RateSpec {
        RateSpec::new(rate, Duration::from_secs(1), burst)
    }

    #[test]
    fn a_spec_works_out_its_interval_and_slack_once() {
        let s = spec(10, 5);
        assert_eq!((s.emission_ns(), s.limit_ns()), (SECOND / 10, SECOND / 2));
        // A rate or burst of 0 counts as 1; an interval is never 0 nor wraps.
        assert_eq!(spec(0, 0).emission_ns(), SECOND);
        assert_eq!(spec(0, 0).limit_ns(), SECOND);
        let fast = RateSpec::new(u32::MAX, Duration::from_nanos(1), 3);
        assert_eq!((fast.emission_ns(), fast.limit_ns()), (1, 3));
        let slow = RateSpec::new(1, Duration::MAX, u32::MAX);
        assert_eq!((slow.emission_ns(), slow.limit_ns()), (u64::MAX, u64::MAX));
    }

    #[test]
    fn allows_the_burst_then_the_sustained_rate() {
        let s = spec(10, 5);
        let mut tat = None;
        let now = 1_000 * SECOND;
        for i in 0..5 {
            let (d, next) = step(tat, now, &s, 1);
            assert!(d.allowed, "request {i} of the burst");
            assert_eq!(d.remaining, 4 - i);
            tat = next;
        }
        let (d, next) = step(tat, now, &s, 1);
        assert!(!d.allowed);
        assert_eq!(next, None);
        assert_eq!(d.retry_after, Duration::from_millis(100));
        // 100 ms later exactly one more conforms.
        let later = now + SECOND / 10;
        let (d, next) = step(tat, later, &s, 1);
        assert!(d.allowed);
        tat = next;
        assert!(!step(tat, later, &s, 1).0.allowed);
    }

    #[test]
    fn an_idle_key_is_fully_replenished() {
        let s = spec(2, 2);
        let now = 50 * SECOND;
        let (_, tat) = step(None, now, &s, 1);
        let (_, tat) = step(tat, now, &s, 1);
        assert!(!step(tat, now, &s, 1).0.allowed);
        let (d, _) = step(tat, now + 10 * SECOND, &s, 1);
        assert!(d.allowed);
        assert_eq!(d.remaining, 1);
    }

    #[test]
    fn costs_larger_than_the_burst_never_conform() {
        let (d, tat) = step(None, SECOND, &spec(10, 3), 4);
        assert!(!d.allowed);
        assert_eq!(tat, None);
    }

    #[test]
    fn over_a_long_run_the_rate_holds() {
        let s = spec(100, 10);
        let mut tat = None;
        let mut allowed = 0;
        // One attempt every millisecond for 10 s: 10 000 attempts.
        for ms in 0..10_000u64 {
            let (d, next) = step(tat, SECOND + ms * 1_000_000, &s, 1);
            if d.allowed {
                allowed += 1;
                tat = next;
            }
        }
        assert!((1000..=1010).contains(&allowed), "{allowed}");
    }
}
