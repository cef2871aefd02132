//! HTTP/1.1, Rampart's own: the message codec, the server side of client
//! connections, and the client side of upstream connections.
//!
//! The proxy's hot path is HTTP/1.1 in and out. Doing it here rather than through a
//! general-purpose HTTP library lets one connection task parse a head in place,
//! run the phases, write the upstream request in one system call, and read the
//! upstream response body directly from its pooled connection as the client side
//! writes it out, with no intermediate task or channel. HTTP/2 stays with hyper.

pub(crate) mod client;
pub mod codec;
pub(crate) mod server;
pub(crate) mod upgrade;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The waker a future was last polled with, known by identity (its data and vtable
/// addresses, compared and never used). Futures that keep their waker between polls,
/// a timer or a notification, swap it under an atomic exchange or a lock on every
/// poll; with this they are polled again only for another waker.
#[derive(Default)]
pub(crate) struct LastWaker(Option<(usize, usize)>);

impl LastWaker {
    fn of(cx: &Context<'_>) -> (usize, usize) {
        let waker = cx.waker();
        (
            waker.data() as usize,
            std::ptr::from_ref(waker.vtable()) as usize,
        )
    }

    /// Whether `cx` carries another waker than the one recorded.
    pub(crate) fn differs(&self, cx: &Context<'_>) -> bool {
        self.0 != Some(Self::of(cx))
    }

    /// Records `cx`'s waker as the one the future holds.
    pub(crate) fn record(&mut self, cx: &Context<'_>) {
        self.0 = Some(Self::of(cx));
    }

    /// Forgets the waker (the future gave it up, by completing).
    pub(crate) fn forget(&mut self) {
        self.0 = None;
    }
}

/// A timer kept across waits and polled only when it may have fired or the waiting
/// task's waker is not the one it holds.
pub(crate) struct LazyTimer<'a> {
    sleep: Pin<&'a mut tokio::time::Sleep>,
    waker: LastWaker,
}

impl<'a> LazyTimer<'a> {
    /// Wraps `sleep`.
    pub(crate) fn new(sleep: Pin<&'a mut tokio::time::Sleep>) -> Self {
        Self {
            sleep,
            waker: LastWaker::default(),
        }
    }

    /// Ready once `deadline` has passed. The timer is moved only when `deadline` is
    /// earlier than where it stands, or when it fires before `deadline` (then to
    /// `deadline`): waits whose deadlines only grow cost one timer update per period.
    pub(crate) fn poll_until(
        &mut self,
        cx: &mut Context<'_>,
        deadline: tokio::time::Instant,
    ) -> Poll<()> {
        poll_lazy(self.sleep.as_mut(), &mut self.waker, cx, deadline)
    }
}

/// [`LazyTimer::poll_until`] for a timer owned elsewhere (a pooled connection's) and
/// the record of the waker it holds, kept by the one waiting on it across polls.
pub(crate) fn poll_lazy(
    mut sleep: Pin<&mut tokio::time::Sleep>,
    waker: &mut LastWaker,
    cx: &mut Context<'_>,
    deadline: tokio::time::Instant,
) -> Poll<()> {
    if sleep.deadline() > deadline {
        sleep.as_mut().reset(deadline);
        waker.forget();
    }
    while poll_fired(sleep.as_mut(), waker, cx).is_ready() {
        if tokio::time::Instant::now() >= deadline {
            return Poll::Ready(());
        }
        sleep.as_mut().reset(deadline);
    }
    Poll::Pending
}

/// Ready when the timer has fired.
fn poll_fired(
    mut sleep: Pin<&mut tokio::time::Sleep>,
    waker: &mut LastWaker,
    cx: &mut Context<'_>,
) -> Poll<()> {
    if !waker.differs(cx) && !sleep.is_elapsed() {
        return Poll::Pending;
    }
    match sleep.as_mut().poll(cx) {
        Poll::Ready(()) => {
            // A fired timer may have given up its waker: the next wait polls.
            waker.forget();
            Poll::Ready(())
        }
        Poll::Pending => {
            waker.record(cx);
            Poll::Pending
        }
    }
}
