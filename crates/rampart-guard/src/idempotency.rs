//! `Idempotency-Key` (IETF httpapi draft "The Idempotency-Key HTTP Header Field"): the
//! first response to a key is kept per caller and replayed to repeats with
//! `Idempotency-Replayed: true`; a repeat while the first is in flight gets 409, and a
//! key reused with a different request gets 422.
//!
//! Records live in the shared state (Redis when configured, so every instance sees
//! them). When the shared state is unreachable the request is refused with 503 rather
//! than risk processing it twice.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{HeaderName, HeaderValue};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, SizeHint};
use rampart_config::Idempotency;
use rampart_proxy::phase::{Exchange, ExchangeFuture, Next, RequestContext};
use rampart_proxy::{BoxError, CollectError, ErrorKind, ProxyBody, ProxyError};
use rampart_store::SharedState;
use rampart_telemetry::Metrics;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Set on replayed responses.
static REPLAYED: HeaderName = HeaderName::from_static("idempotency-replayed");
/// Longest key accepted.
const MAX_KEY_BYTES: usize = 255;

/// What is stored under a key.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
enum Record {
    /// The first request is being processed.
    Pending { fingerprint: String },
    /// Its response, kept for replay.
    Done {
        fingerprint: String,
        status: u16,
        headers: Vec<(String, Vec<u8>)>,
        #[serde(with = "body_bytes")]
        body: Vec<u8>,
    },
}

/// Bodies as base64 text in the record.
mod body_bytes {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

/// Keeps and replays responses per idempotency key on one route.
pub struct IdempotencyExchange {
    /// Route name (keys and metrics).
    pub route: Arc<str>,
    /// Settings.
    pub settings: Idempotency,
    /// How long a key stays locked by a request in flight (the route's total timeout and a margin).
    pub pending_ttl: Duration,
    /// Where records live.
    pub shared: Arc<dyn SharedState>,
    /// Where decisions are counted.
    pub metrics: Arc<Metrics>,
}

fn unavailable(e: rampart_store::StoreError) -> ProxyError {
    ProxyError::new(
        ErrorKind::GuardUnavailable,
        format!("idempotency store: {e}"),
    )
}

impl IdempotencyExchange {
    async fn run(
        &self,
        request: http::Request<ProxyBody>,
        ctx: &mut RequestContext,
        next: Next<'_>,
    ) -> Result<http::Response<ProxyBody>, ProxyError> {
        if !self.settings.methods.contains(request.method()) {
            return next.forward(request, ctx).await;
        }
        let key = match request.headers().get(&self.settings.header) {
            None if self.settings.required => {
                crate::deny(&self.metrics, &self.route, "idempotency_key_missing");
                return Err(ProxyError::new(
                    ErrorKind::IdempotencyKeyMissing,
                    "this route requires an idempotency key",
                ));
            }
            None => return next.forward(request, ctx).await,
            Some(value) => match value.to_str() {
                Ok(k) if !k.is_empty() && k.len() <= MAX_KEY_BYTES => k.to_string(),
                _ => {
                    crate::deny(&self.metrics, &self.route, "idempotency_key_invalid");
                    return Err(ProxyError::new(
                        ErrorKind::IdempotencyKeyInvalid,
                        "malformed idempotency key",
                    ));
                }
            },
        };
        let (parts, body) = request.into_parts();
        let body = rampart_proxy::collect_limited(body, self.settings.max_body_bytes)
            .await
            .map_err(|e| match e {
                CollectError::TooLarge(_) => {
                    crate::deny(&self.metrics, &self.route, "too_large");
                    ProxyError::new(ErrorKind::BodyTooLarge, e.to_string())
                }
                CollectError::Read(e) => ProxyError::new(ErrorKind::ClientBody, e.to_string()),
            })?;
        let fingerprint = {
            let mut hash = Sha256::new();
            hash.update(parts.method.as_str().as_bytes());
            hash.update([0]);
            hash.update(
                parts
                    .uri
                    .path_and_query()
                    .map_or("", |p| p.as_str())
                    .as_bytes(),
            );
            hash.update([0]);
            hash.update(&body);
            hex(&hash.finalize())
        };
        let caller = ctx.principal.as_ref().map_or_else(
            || format!("ip:{}", ctx.client_ip),
            |p| format!("c:{}", p.consumer_id),
        );
        let record_key = format!("idem:{}:{caller}:{key}", self.route);
        let pending = serde_json::to_vec(&Record::Pending {
            fingerprint: fingerprint.clone(),
        })
        .map_err(|e| ProxyError::new(ErrorKind::Internal, e.to_string()))?;
        // Claim the key, or answer from what is there. A record that expires between the
        // two steps is claimed on the second round.
        let mut claimed = false;
        for _ in 0..2 {
            if self
                .shared
                .put(&record_key, &pending, self.pending_ttl, true)
                .await
                .map_err(unavailable)?
            {
                claimed = true;
                break;
            }
            let Some(stored) = self.shared.get(&record_key).await.map_err(unavailable)? else {
                continue;
            };
            return match serde_json::from_slice::<Record>(&stored) {
                Ok(Record::Pending { fingerprint: f }) if f == fingerprint => {
                    crate::deny(&self.metrics, &self.route, "idempotency_in_flight");
                    Err(ProxyError::new(
                        ErrorKind::IdempotencyInFlight,
                        "first request still in flight",
                    ))
                }
                Ok(Record::Done {
                    fingerprint: f,
                    status,
                    headers,
                    body,
                }) if f == fingerprint => {
                    crate::deny(&self.metrics, &self.route, "idempotency_replayed");
                    Ok(replay(status, headers, body))
                }
                Ok(_) => {
                    crate::deny(&self.metrics, &self.route, "idempotency_key_reused");
                    Err(ProxyError::new(
                        ErrorKind::IdempotencyKeyReused,
                        "key used before with a different request",
                    ))
                }
                Err(e) => Err(ProxyError::new(
                    ErrorKind::Internal,
                    format!("unreadable idempotency record: {e}"),
                )),
            };
        }
        if !claimed {
            return Err(ProxyError::new(
                ErrorKind::IdempotencyInFlight,
                "the key changed hands twice",
            ));
        }
        let request = http::Request::from_parts(parts, rampart_proxy::full(body));
        match next.forward(request, ctx).await {
            Ok(response) => {
                let (head, body) = response.into_parts();
                let keeper = Keeper {
                    shared: Arc::clone(&self.shared),
                    record_key,
                    fingerprint,
                    status: head.status.as_u16(),
                    headers: head
                        .headers
                        .iter()
                        .map(|(k, v)| (k.as_str().to_string(), v.as_bytes().to_vec()))
                        .collect(),
                    ttl: self.settings.ttl,
                };
                let body = RecordingBody {
                    inner: body,
                    kept: Some(BytesMut::new()),
                    limit: self.settings.max_response_bytes,
                    keeper: Some(keeper),
                };
                Ok(http::Response::from_parts(head, body.boxed()))
            }
            Err(e) => {
                // Rampart answered (no upstream response): the key is free for a retry.
                if let Err(e) = self.shared.remove(&record_key).await {
                    tracing::warn!(route = %self.route, "cannot release an idempotency key: {e}");
                }
                Err(e)
            }
        }
    }
}

impl Exchange for IdempotencyExchange {
    fn around<'a>(
        &'a self,
        request: http::Request<ProxyBody>,
        ctx: &'a mut RequestContext,
        next: Next<'a>,
    ) -> ExchangeFuture<'a> {
        Box::pin(self.run(request, ctx, next))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn replay(
    status: u16,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
) -> http::Response<ProxyBody> {
    let mut response = http::Response::new(rampart_proxy::full(body));
    *response.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(&value),
        ) {
            response.headers_mut().append(name, value);
        }
    }
    response
        .headers_mut()
        .insert(REPLAYED.clone(), HeaderValue::from_static("true"));
    response
}

/// Stores the finished response, or frees the key when it cannot be kept.
struct Keeper {
    shared: Arc<dyn SharedState>,
    record_key: String,
    fingerprint: String,
    status: u16,
    headers: Vec<(String, Vec<u8>)>,
    ttl: Duration,
}

impl Keeper {
    fn finish(self, body: Option<Bytes>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            let result = match body {
                Some(body) => {
                    let record = Record::Done {
                        fingerprint: self.fingerprint,
                        status: self.status,
                        headers: self.headers,
                        body: body.to_vec(),
                    };
                    match serde_json::to_vec(&record) {
                        Ok(bytes) => self
                            .shared
                            .put(&self.record_key, &bytes, self.ttl, false)
                            .await
                            .map(|_| ()),
                        Err(e) => Err(rampart_store::StoreError::Invalid(e.to_string())),
                    }
                }
                None => self.shared.remove(&self.record_key).await,
            };
            if let Err(e) = result {
                tracing::warn!(key = %self.record_key, "cannot keep the idempotent response: {e}");
            }
        });
    }
}

/// The response body on its way to the client, copied (up to a limit) for replay.
struct RecordingBody {
    inner: ProxyBody,
    /// The copy so far; `None` once the body outgrew the limit.
    kept: Option<BytesMut>,
    limit: usize,
    keeper: Option<Keeper>,
}

impl Body for RecordingBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let fits = this
                        .kept
                        .as_ref()
                        .is_some_and(|k| k.len() + data.len() <= this.limit);
                    match (&mut this.kept, fits) {
                        (Some(kept), true) => kept.extend_from_slice(data),
                        _ => this.kept = None,
                    }
                }
                // The server may stop polling once the body says it has ended.
                if this.inner.is_end_stream() {
                    this.finish(true);
                }
            }
            Poll::Ready(None) => this.finish(true),
            Poll::Ready(Some(Err(_))) => this.finish(false),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl RecordingBody {
    /// Keeps the response (when `whole` and within the limit) or frees the key; once.
    fn finish(&mut self, whole: bool) {
        if let Some(keeper) = self.keeper.take() {
            let kept = self.kept.take().filter(|_| whole).map(BytesMut::freeze);
            keeper.finish(kept);
        }
    }
}

impl Drop for RecordingBody {
    fn drop(&mut self) {
        // Dropped at its end (an empty body is never polled) it is whole; dropped
        // earlier, the client went away and the response was not delivered.
        let whole = self.inner.is_end_stream();
        self.finish(whole);
    }
}
