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
