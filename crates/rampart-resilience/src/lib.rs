//! Resilience primitives for the Rampart data plane, as pure logic.
//!
//! Nothing here performs I/O or reads a clock: every decision takes the current
//! [`std::time::Instant`] (and, for jitter, a random unit value) as an argument, so
//! the behaviour is deterministic and fully unit-tested. The proxy owns the clock,
//! the locks and the randomness.

mod backoff;
mod breaker;
mod bulkhead;
mod outlier;
mod retry_budget;
mod window;

pub use backoff::Backoff;
pub use breaker::{Admission, BreakerSettings, BreakerState, CircuitBreaker};
pub use bulkhead::{Bulkhead, BulkheadPermit, OwnedBulkheadPermit};
pub use outlier::{AttemptOutcome, OutlierDetector, OutlierSettings};
pub use retry_budget::{RetryBudget, RetryBudgetSettings, RetryPermit};
pub use window::RollingWindow;
