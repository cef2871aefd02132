//! A bulkhead: a cap on concurrent requests.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Admits at most `max` concurrent holders of a permit.
#[derive(Debug)]
pub struct Bulkhead {
    max: usize,
    in_use: AtomicUsize,
}

/// Held while a request runs; dropping it frees the slot. It borrows its bulkhead,
/// so taking and dropping one costs one atomic operation each.
#[derive(Debug)]
pub struct BulkheadPermit<'a> {
    bulkhead: &'a Bulkhead,
}

/// A permit that owns a reference to its bulkhead, for holders that must be `'static`.
#[derive(Debug)]
pub struct OwnedBulkheadPermit {
    bulkhead: Arc<Bulkhead>,
}

impl Bulkhead {
    /// A bulkhead admitting `max` concurrent requests (`usize::MAX` for no limit).
    pub fn new(max: usize) -> Self {
        Self {
            max,
            in_use: AtomicUsize::new(0),
        }
    }

    /// Takes a slot, or `None` when all are taken.
    pub fn try_acquire(&self) -> Option<BulkheadPermit<'_>> {
        // Built only once the slot is taken: dropping a permit frees one.
        self.take_slot().then(|| BulkheadPermit { bulkhead: self })
    }

    /// Takes a slot for a holder that outlives the borrow, or `None` when all are taken.
    pub fn try_acquire_owned(self: &Arc<Self>) -> Option<OwnedBulkheadPermit> {
        self.take_slot().then(|| OwnedBulkheadPermit {
            bulkhead: Arc::clone(self),
        })
    }

    fn take_slot(&self) -> bool {
        let mut current = self.in_use.load(Ordering::Relaxed);
        loop {
            if current >= self.max {
                return false;
            }
            match self.in_use.compare_exchange_weak(
                current,
                current + 1,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(seen) => current = seen,
            }
        }
    }

    fn release(&self) {
        self.in_use.fetch_sub(1, Ordering::AcqRel);
    }

    /// How many slots are taken.
    pub fn in_use(&self) -> usize {
        self.in_use.load(Ordering::Relaxed)
    }

    /// The limit.
    pub fn max(&self) -> usize {
        self.max
    }
}

impl Drop for BulkheadPermit<'_> {
    fn drop(&mut self) {
        self.bulkhead.release();
    }
}

impl Drop for OwnedBulkheadPermit {
    fn drop(&mut self) {
        self.bulkhead.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_up_to_the_limit_and_frees_on_drop() {
        let b = Bulkhead::new(2);
        let p1 = b.try_acquire().expect("first");
        let _p2 = b.try_acquire().expect("second");
        assert!(b.try_acquire().is_none());
        assert!(b.try_acquire().is_none(), "a refusal frees nothing");
        assert_eq!(b.in_use(), 2);
        drop(p1);
        assert!(b.try_acquire().is_some());
    }

    #[test]
    fn concurrent_acquires_never_exceed_the_limit() {
        let b = Arc::new(Bulkhead::new(3));
        let held: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..16)
                .map(|_| {
                    let b = Arc::clone(&b);
                    s.spawn(move || b.try_acquire_owned())
                })
                .collect();
            handles
                .into_iter()
                .filter_map(|h| h.join().ok().flatten())
                .collect()
        });
        assert_eq!(held.len(), 3);
    }

    #[test]
    fn owned_permits_share_the_slots() {
        let b = Arc::new(Bulkhead::new(2));
        let owned = b.try_acquire_owned().expect("first");
        let _borrowed = b.try_acquire().expect("second");
        assert!(b.try_acquire_owned().is_none());
        assert!(b.try_acquire().is_none());
        drop(owned);
        assert_eq!(b.in_use(), 1);
        assert!(b.try_acquire_owned().is_some());
    }
}
