//! The body type used throughout the data plane.

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};

/// Any error a body may produce.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A streamed body of any origin (client, upstream, or Rampart itself).
pub type ProxyBody = BoxBody<Bytes, BoxError>;

/// A body holding `bytes`.
pub fn full(bytes: impl Into<Bytes>) -> ProxyBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// An empty body.
pub fn empty() -> ProxyBody {
    Empty::new().map_err(|never| match never {}).boxed()
}

/// Whether `body` is known to carry no bytes (ended, or declared zero-length).
pub fn is_known_empty(body: &impl http_body::Body) -> bool {
    body.is_end_stream() || body.size_hint().exact() == Some(0)
}

/// Why a body could not be collected.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    /// The body is longer than the limit.
    #[error("body longer than {0} bytes")]
    TooLarge(usize),
    /// Reading the body failed.
    #[error("reading the body failed: {0}")]
    Read(BoxError),
}

/// Reads a whole body, refusing more than `limit` bytes.
pub async fn collect_limited(mut body: ProxyBody, limit: usize) -> Result<Bytes, CollectError> {
    let mut buffer = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(CollectError::Read)?;
        if let Ok(data) = frame.into_data() {
            if buffer.len() + data.len() > limit {
                return Err(CollectError::TooLarge(limit));
            }
            buffer.extend_from_slice(&data);
        }
    }
    Ok(buffer.freeze())
}

/// The error of a response body whose upstream sent nothing for longer than the
/// route's `timeouts.upstream_body_idle`.
#[derive(Debug, thiserror::Error)]
#[error("the upstream sent nothing of the response body for {0:?}")]
pub struct BodyIdleTimeout(pub std::time::Duration);

/// A response body that fails with [`BodyIdleTimeout`] when its source yields nothing
/// for `idle` (for upstreams whose bodies come through hyper; Rampart's HTTP/1.1
/// client keeps its own watch with the connection's timer). The timer is made on the
/// first wait only and moved lazily after that.
pub(crate) struct IdleBody<B> {
    inner: B,
    idle: std::time::Duration,
    deadline: Option<tokio::time::Instant>,
    timer: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
    waker: crate::h1::LastWaker,
}

impl<B> IdleBody<B> {
    /// Watches `inner` for pauses longer than `idle`.
    pub(crate) fn new(inner: B, idle: std::time::Duration) -> Self {
        Self {
            inner,
            idle,
            deadline: None,
            timer: None,
            waker: crate::h1::LastWaker::default(),
        }
    }
}

impl<B> http_body::Body for IdleBody<B>
where
    B: http_body::Body<Data = Bytes, Error = BoxError> + Unpin,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        use std::task::Poll;
        let this = &mut *self;
        match std::pin::Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Pending => {
                let idle = this.idle;
                let deadline = *this
                    .deadline
                    .get_or_insert_with(|| tokio::time::Instant::now() + idle);
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if crate::h1::poll_lazy(timer.as_mut(), &mut this.waker, cx, deadline).is_ready() {
                    return Poll::Ready(Some(Err(Box::new(BodyIdleTimeout(idle)))));
                }
                Poll::Pending
            }
            ready => {
                this.deadline = None;
                ready
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
