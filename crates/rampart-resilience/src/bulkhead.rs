//! A bulkhead: a cap on concurrent requests.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Admits at most `max` concurrent holders of a [`BulkheadPermit`].
#[derive(Debug)]
pub struct Bulkhead {
    max: usize,
    in_use: Arc<AtomicUsize>,
}

/// Held while a request runs; dropping it frees the slot.
#[derive(Debug)]
pub struct BulkheadPermit {
    in_use: Arc<AtomicUsize>,
}

impl Bulkhead {
    /// A bulkhead admitting `max` concurrent requests (`usize::MAX` for no limit).
    pub fn new(max: usize) -> Self {
        Self {
            max,
            in_use: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Takes a slot, or `None` when all are taken.
    pub fn try_acquire(&self) -> Option<BulkheadPermit> {
        let mut current = self.in_use.load(Ordering::Relaxed);
        loop {
            if current >= self.max {
                return None;
            }
            match self.in_use.compare_exchange_weak(
                current,
                current + 1,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    return Some(BulkheadPermit {
                        in_use: Arc::clone(&self.in_use),
                    })
                }
                Err(seen) => current = seen,
            }
        }
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

impl Drop for BulkheadPermit {
    fn drop(&mut self) {
        self.in_use.fetch_sub(1, Ordering::AcqRel);
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
                    s.spawn(move || b.try_acquire())
                })
                .collect();
            handles
                .into_iter()
                .filter_map(|h| h.join().ok().flatten())
                .collect()
        });
        assert_eq!(held.len(), 3);
    }
}
