//! Metrics written on every request, without atomic read-modify-writes.
//!
//! An atomic increment (`lock xadd`) costs several nanoseconds even when no other
//! thread touches the value, and a request used to make six of them for its metrics
//! alone. Here each value is split into stripes, one per thread: a thread owns its
//! stripe, so it adds with a plain load and store (no other thread writes there), and
//! a scrape sums the stripes. Threads past the first [`OWNED_STRIPES`] share one last
//! stripe, written with atomic read-modify-writes as before: still exact, only not
//! cheaper. Stripes sit on cache lines of their own, so threads do not share lines.
//!
//! Used for the metrics the request path writes (request count and duration,
//! requests in flight, upstream attempts) and for the upstream pools' attempts in
//! flight per target; the other metrics stay prometheus-client's types.

use std::cell::Cell;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};

/// Stripes a thread can own; the stripe after them is shared.
const OWNED_STRIPES: usize = 8;
/// Every stripe, the shared one last.
const STRIPES: usize = OWNED_STRIPES + 1;

/// Hands out stripes to threads, in the order they first write a metric.
static NEXT_STRIPE: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's stripe (`usize::MAX`: not assigned yet).
    static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// The calling thread's stripe: its own, or the shared one once all are taken.
fn stripe() -> usize {
    STRIPE.with(|cell| {
        let index = cell.get();
        if index != usize::MAX {
            return index;
        }
        let index = NEXT_STRIPE.fetch_add(1, Relaxed).min(OWNED_STRIPES);
        cell.set(index);
        index
    })
}

/// A value on a cache line of its own.
#[derive(Default)]
#[repr(align(64))]
struct Line<T>(T);

/// Adds `delta` to `cell`, which is stripe `index`: a plain load and store in an owned
/// stripe (only this thread writes it), an atomic add in the shared one.
fn add_u64(cell: &AtomicU64, index: usize, delta: u64) {
    if index < OWNED_STRIPES {
        cell.store(cell.load(Relaxed).wrapping_add(delta), Relaxed);
    } else {
        cell.fetch_add(delta, Relaxed);
    }
}

/// [`add_u64`] for a signed value.
fn add_i64(cell: &AtomicI64, index: usize, delta: i64) {
    if index < OWNED_STRIPES {
        cell.store(cell.load(Relaxed).wrapping_add(delta), Relaxed);
    } else {
        cell.fetch_add(delta, Relaxed);
    }
}

/// A monotonic counter (exported as an OpenMetrics counter).
#[derive(Clone, Default)]
pub struct StripedCounter {
    stripes: Arc<[Line<AtomicU64>; STRIPES]>,
}

impl StripedCounter {
    /// Adds one.
    pub fn inc(&self) {
        self.inc_by(1);
    }

    /// Adds `delta`.
    pub fn inc_by(&self, delta: u64) {
        let index = stripe();
        add_u64(&self.stripes[index].0, index, delta);
    }

    /// The count so far.
    pub fn get(&self) -> u64 {
        self.stripes
            .iter()
            .fold(0u64, |sum, s| sum.wrapping_add(s.0.load(Relaxed)))
    }
}

impl std::fmt::Debug for StripedCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("StripedCounter").field(&self.get()).finish()
    }
}

impl TypedMetric for StripedCounter {
    const TYPE: MetricType = MetricType::Counter;
}

impl EncodeMetric for StripedCounter {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_counter::<NoLabelSet, _, u64>(&self.get(), None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// A gauge that goes up and down by steps (exported as an OpenMetrics gauge). A step
/// up on one thread and down on another leaves the stripes uneven and their sum right.
#[derive(Clone, Default)]
pub struct StripedGauge {
    stripes: Arc<[Line<AtomicI64>; STRIPES]>,
}

impl StripedGauge {
    /// Adds one.
    pub fn inc(&self) {
        let index = stripe();
        add_i64(&self.stripes[index].0, index, 1);
    }

    /// Takes one away.
    pub fn dec(&self) {
        let index = stripe();
        add_i64(&self.stripes[index].0, index, -1);
    }

    /// The value now.
    pub fn get(&self) -> i64 {
        self.stripes
            .iter()
            .fold(0i64, |sum, s| sum.wrapping_add(s.0.load(Relaxed)))
    }
}

impl std::fmt::Debug for StripedGauge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("StripedGauge").field(&self.get()).finish()
    }
}

impl TypedMetric for StripedGauge {
    const TYPE: MetricType = MetricType::Gauge;
}

impl EncodeMetric for StripedGauge {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_gauge(&self.get())
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// One thread's share of a histogram: the sum of its observations (as `f64` bits)
/// and a count per bucket (the last bucket is `+Inf`).
struct HistogramStripe {
    sum_bits: AtomicU64,
    buckets: Box<[AtomicU64]>,
}

/// A histogram with fixed bucket bounds (exported as an OpenMetrics histogram). Its
/// count is the sum of its buckets, so the two always agree in a scrape.
#[derive(Clone)]
pub struct StripedHistogram {
    inner: Arc<HistogramInner>,
}

struct HistogramInner {
    /// Upper bounds, ascending, ending with `f64::MAX` (`+Inf`).
    bounds: Box<[f64]>,
    stripes: Box<[Line<HistogramStripe>]>,
}

impl StripedHistogram {
    /// A histogram with these upper bounds (ascending); a `+Inf` bucket is added.
    pub fn new(bounds: impl IntoIterator<Item = f64>) -> Self {
        let bounds: Box<[f64]> = bounds
            .into_iter()
            .chain(std::iter::once(f64::MAX))
            .collect();
        let stripes = (0..STRIPES)
            .map(|_| {
                Line(HistogramStripe {
                    sum_bits: AtomicU64::new(0f64.to_bits()),
                    buckets: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
                })
            })
            .collect();
        Self {
            inner: Arc::new(HistogramInner { bounds, stripes }),
        }
    }

    /// Records one observation.
    pub fn observe(&self, value: f64) {
        let index = stripe();
        let stripe = &self.inner.stripes[index].0;
        // NaN belongs in no finite bucket: it lands in `+Inf`.
        let bucket = self
            .inner
            .bounds
            .iter()
            .position(|bound| value <= *bound)
            .unwrap_or(self.inner.bounds.len() - 1);
        add_u64(&stripe.buckets[bucket], index, 1);
        if index < OWNED_STRIPES {
            let sum = f64::from_bits(stripe.sum_bits.load(Relaxed)) + value;
            stripe.sum_bits.store(sum.to_bits(), Relaxed);
        } else {
            // Shared stripe: add under compare-and-swap. The closure always returns
            // `Some`, so this cannot fail.
            let _ = stripe.sum_bits.fetch_update(Relaxed, Relaxed, |bits| {
                Some((f64::from_bits(bits) + value).to_bits())
            });
        }
    }

    /// The sum of the observations, their count, and each bucket's upper bound and
    /// count (not cumulative).
    pub fn get(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let mut buckets: Vec<(f64, u64)> = self.inner.bounds.iter().map(|b| (*b, 0)).collect();
        let mut sum = 0.0;
        for stripe in self.inner.stripes.iter() {
            sum += f64::from_bits(stripe.0.sum_bits.load(Relaxed));
            for (total, count) in buckets.iter_mut().zip(stripe.0.buckets.iter()) {
                total.1 = total.1.wrapping_add(count.load(Relaxed));
            }
        }
        let count = buckets.iter().map(|(_, c)| *c).sum();
        (sum, count, buckets)
    }
}

impl std::fmt::Debug for StripedHistogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (sum, count, _) = self.get();
        f.debug_struct("StripedHistogram")
            .field("sum", &sum)
            .field("count", &count)
            .finish()
    }
}

impl TypedMetric for StripedHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for StripedHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let (sum, count, buckets) = self.get();
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// More threads than owned stripes, so the shared stripe is written too.
    const THREADS: usize = OWNED_STRIPES + 4;
    const PER_THREAD: u64 = 20_000;

    #[test]
    fn counts_from_many_threads_add_up_exactly() {
        let counter = StripedCounter::default();
        let gauge = StripedGauge::default();
        let histogram = StripedHistogram::new([1.0, 10.0]);
        std::thread::scope(|scope| {
            for t in 0..THREADS {
                let (counter, gauge, histogram) = (&counter, &gauge, &histogram);
                scope.spawn(move || {
                    for i in 0..PER_THREAD {
                        counter.inc();
                        gauge.inc();
                        histogram.observe(if i % 2 == 0 { 0.5 } else { 5.0 });
                        // Even threads step back down themselves; odd threads' steps
                        // are taken back by the threads below.
                        if t % 2 == 0 {
                            gauge.dec();
                        }
                    }
                });
            }
            // Steps down taken on threads other than the ones that stepped up: the
            // stripes end uneven, their sum at zero.
            for _ in 0..THREADS / 2 {
                let gauge = &gauge;
                scope.spawn(move || (0..PER_THREAD).for_each(|_| gauge.dec()));
            }
        });
        let total = THREADS as u64 * PER_THREAD;
        assert_eq!(counter.get(), total);
        assert_eq!(gauge.get(), 0);
        let (sum, count, buckets) = histogram.get();
        assert_eq!(count, total);
        assert_eq!(
            buckets,
            vec![(1.0, total / 2), (10.0, total / 2), (f64::MAX, 0)]
        );
        assert!((sum - total as f64 / 2.0 * 5.5).abs() < 1e-6 * sum);
    }

    #[test]
    fn observations_land_in_the_first_bucket_that_holds_them() {
        let histogram = StripedHistogram::new([0.1, 1.0]);
        for v in [0.0, 0.1, 0.10001, 1.0, 7.0, f64::NAN, f64::INFINITY] {
            histogram.observe(v);
        }
        let (_, count, buckets) = histogram.get();
        assert_eq!(count, 7);
        assert_eq!(buckets, vec![(0.1, 2), (1.0, 2), (f64::MAX, 3)]);
    }
}
