//! The data plane's one error type, and its RFC 9457 problem+json rendering.

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use http::{Response, StatusCode};

use crate::body::{full, ProxyBody};
pub use crate::canonical::Malformation;

/// Which side of the proxy a failure belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The client sent something wrong.
    Client,
    /// The upstream failed or was unreachable.
    Upstream,
    /// Rampart itself (or its policy) answered.
    Internal,
}

/// What went wrong, with the status it maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is malformed (400).
    BadRequest,
    /// The request cannot be interpreted one way only (400, or 405 for CONNECT).
    Malformed(Malformation),
    /// The request body could not be read from the client (400).
    ClientBody,
    /// No route matches (404).
    NoRoute,
    /// The upstream could not be connected to (502).
    UpstreamConnect,
    /// The upstream broke the exchange (502).
    UpstreamProtocol,
    /// An attempt timed out waiting for response headers (504).
    UpstreamTimeout,
    /// The whole request ran out of time (504).
    TotalTimeout,
    /// The upstream's circuit breaker is open (503).
    BreakerOpen,
    /// A concurrency limit was reached (503).
    BulkheadFull,
    /// Every target is unhealthy or ejected (503).
    NoHealthyTarget,
    /// Fault injection aborted the request (configured status).
    FaultAbort(StatusCode),
    /// No valid credentials (401).
    Unauthenticated,
    /// Valid credentials without the rights this route needs (403).
    Forbidden,
    /// The web application firewall refused the request (403).
    WafBlocked,
    /// The body does not parse as its declared type within the WAF's limits, so it
    /// could not be inspected (400).
    WafBodyUnparsed,
    /// More arguments (query, body, multipart parts) than the WAF inspects (400).
    WafTooManyArguments,
    /// A rate limit was reached (429); retry after this many seconds.
    RateLimited(u32),
    /// A consumer's daily or monthly budget is spent (429); retry after this many seconds.
    QuotaExceeded(u32),
    /// A request with the same idempotency key is still being processed (409).
    IdempotencyInFlight,
    /// The idempotency key was used before with a different request (422).
    IdempotencyKeyReused,
    /// The route requires an idempotency key and the request has none (400).
    IdempotencyKeyMissing,
    /// The idempotency key is empty, too long or not visible text (400).
    IdempotencyKeyInvalid,
    /// The route's IP rules refuse the client's address (403).
    IpDenied,
    /// The client is banned (it asked for a honeypot path) (403).
    Banned,
    /// A CORS preflight asks for an origin, method or header the route does not allow (403).
    CorsRefused,
    /// A guard's backing service is unreachable and the guard fails closed (503).
    GuardUnavailable,
    /// The method is not allowed on this route (405).
    MethodNotAllowed,
    /// The request target is too long (414).
    UriTooLong,
    /// Too many or too large request headers (431).
    HeadersTooLarge,
    /// The request body is larger than allowed (413).
    BodyTooLarge,
    /// A bug or resource failure inside Rampart (500).
    Internal,
}

impl ErrorKind {
    /// The HTTP status answered to the client.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorKind::BadRequest
            | ErrorKind::ClientBody
            | ErrorKind::WafBodyUnparsed
            | ErrorKind::WafTooManyArguments
            | ErrorKind::IdempotencyKeyMissing
            | ErrorKind::IdempotencyKeyInvalid => StatusCode::BAD_REQUEST,
            ErrorKind::Malformed(malformation) => malformation.status(),
            ErrorKind::NoRoute => StatusCode::NOT_FOUND,
            ErrorKind::UpstreamConnect | ErrorKind::UpstreamProtocol => StatusCode::BAD_GATEWAY,
            ErrorKind::UpstreamTimeout | ErrorKind::TotalTimeout => StatusCode::GATEWAY_TIMEOUT,
            ErrorKind::BreakerOpen | ErrorKind::BulkheadFull | ErrorKind::NoHealthyTarget => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ErrorKind::FaultAbort(status) => status,
            ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
            ErrorKind::Forbidden
            | ErrorKind::WafBlocked
            | ErrorKind::IpDenied
            | ErrorKind::Banned
            | ErrorKind::CorsRefused => StatusCode::FORBIDDEN,
            ErrorKind::RateLimited(_) | ErrorKind::QuotaExceeded(_) => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ErrorKind::IdempotencyInFlight => StatusCode::CONFLICT,
            ErrorKind::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::GuardUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorKind::UriTooLong => StatusCode::URI_TOO_LONG,
            ErrorKind::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ErrorKind::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Short machine-readable name, used in the problem type, logs and metrics.
    pub fn slug(self) -> &'static str {
        match self {
            ErrorKind::BadRequest => "bad-request",
            ErrorKind::Malformed(malformation) => malformation.slug(),
            ErrorKind::ClientBody => "client-body",
            ErrorKind::NoRoute => "no-route",
            ErrorKind::UpstreamConnect => "upstream-connect",
            ErrorKind::UpstreamProtocol => "upstream-protocol",
            ErrorKind::UpstreamTimeout => "upstream-timeout",
            ErrorKind::TotalTimeout => "request-timeout",
            ErrorKind::BreakerOpen => "circuit-open",
            ErrorKind::BulkheadFull => "concurrency-limit",
            ErrorKind::NoHealthyTarget => "no-healthy-upstream",
            ErrorKind::FaultAbort(_) => "fault-injected",
            ErrorKind::Unauthenticated => "unauthenticated",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::WafBlocked => "waf-blocked",
            ErrorKind::WafBodyUnparsed => "waf-body-unparsed",
            ErrorKind::WafTooManyArguments => "waf-too-many-arguments",
            ErrorKind::RateLimited(_) => "rate-limited",
            ErrorKind::QuotaExceeded(_) => "quota-exceeded",
            ErrorKind::IdempotencyInFlight => "idempotency-in-flight",
            ErrorKind::IdempotencyKeyReused => "idempotency-key-reused",
            ErrorKind::IdempotencyKeyMissing => "idempotency-key-missing",
            ErrorKind::IdempotencyKeyInvalid => "idempotency-key-invalid",
            ErrorKind::IpDenied => "ip-denied",
            ErrorKind::Banned => "banned",
            ErrorKind::CorsRefused => "cors-refused",
            ErrorKind::GuardUnavailable => "guard-unavailable",
            ErrorKind::MethodNotAllowed => "method-not-allowed",
            ErrorKind::UriTooLong => "uri-too-long",
            ErrorKind::HeadersTooLarge => "headers-too-large",
            ErrorKind::BodyTooLarge => "body-too-large",
            ErrorKind::Internal => "internal",
        }
    }

    /// A short human-readable title.
    pub(crate) fn title(self) -> &'static str {
        match self {
            ErrorKind::BadRequest => "Malformed request",
            ErrorKind::Malformed(malformation) => malformation.title(),
            ErrorKind::ClientBody => "The request body could not be read",
            ErrorKind::NoRoute => "No route matches this request",
            ErrorKind::UpstreamConnect => "The upstream service could not be reached",
            ErrorKind::UpstreamProtocol => "The upstream service sent an invalid response",
            ErrorKind::UpstreamTimeout => "The upstream service did not answer in time",
            ErrorKind::TotalTimeout => "The request took too long",
            ErrorKind::BreakerOpen => "The upstream service is temporarily unavailable",
            ErrorKind::BulkheadFull => "Too many concurrent requests",
            ErrorKind::NoHealthyTarget => "No healthy upstream is available",
            ErrorKind::FaultAbort(_) => "Aborted by fault injection",
            ErrorKind::Unauthenticated => "Valid credentials are required",
            ErrorKind::Forbidden => "The credentials do not allow this request",
            ErrorKind::WafBlocked => "The request was refused by the web application firewall",
            ErrorKind::WafBodyUnparsed => {
                "The request body could not be parsed for inspection as its declared type"
            }
            ErrorKind::WafTooManyArguments => {
                "The request has more arguments than the web application firewall inspects"
            }
            ErrorKind::RateLimited(_) => "Too many requests",
            ErrorKind::QuotaExceeded(_) => "The request budget for this period is spent",
            ErrorKind::IdempotencyInFlight => {
                "A request with this idempotency key is still being processed"
            }
            ErrorKind::IdempotencyKeyReused => {
                "This idempotency key was used with a different request"
            }
            ErrorKind::IdempotencyKeyMissing => "This request requires an idempotency key",
            ErrorKind::IdempotencyKeyInvalid => "The idempotency key is malformed",
            ErrorKind::IpDenied => "Requests from this address are not allowed here",
            ErrorKind::Banned => "This client is temporarily banned",
            ErrorKind::CorsRefused => "This cross-origin request is not allowed",
            ErrorKind::GuardUnavailable => "A security check is temporarily unavailable",
            ErrorKind::MethodNotAllowed => "The method is not allowed here",
            ErrorKind::UriTooLong => "The request target is too long",
            ErrorKind::HeadersTooLarge => "The request headers are too large",
            ErrorKind::BodyTooLarge => "The request body is too large",
            ErrorKind::Internal => "Internal error",
        }
    }

    fn retry_after(self) -> Option<u32> {
        match self {
            ErrorKind::BreakerOpen
            | ErrorKind::BulkheadFull
            | ErrorKind::NoHealthyTarget
            | ErrorKind::GuardUnavailable => Some(1),
            ErrorKind::RateLimited(seconds) | ErrorKind::QuotaExceeded(seconds) => {
                Some(seconds.max(1))
            }
            _ => None,
        }
    }
}

/// A failure on the request path.
#[derive(Debug, thiserror::Error)]
#[error("{} ({:?} side): {detail}", kind.slug(), side)]
pub struct ProxyError {
    /// What went wrong.
    pub kind: ErrorKind,
    /// Which side failed.
    pub side: Side,
    /// Whether another attempt may succeed (subject to the route's retry policy).
    pub retryable: bool,
    /// Detail for the log; never sent to the client.
    pub detail: String,
}

impl ProxyError {
    /// A new error; side and retryability follow from the kind.
    pub fn new(kind: ErrorKind, detail: impl Into<String>) -> Self {
        let side = match kind {
            ErrorKind::BadRequest
            | ErrorKind::Malformed(_)
            | ErrorKind::ClientBody
            | ErrorKind::NoRoute
            | ErrorKind::BodyTooLarge
            | ErrorKind::Unauthenticated
            | ErrorKind::Forbidden
            | ErrorKind::WafBlocked
            | ErrorKind::WafBodyUnparsed
            | ErrorKind::WafTooManyArguments
            | ErrorKind::RateLimited(_)
            | ErrorKind::QuotaExceeded(_)
            | ErrorKind::IdempotencyInFlight
            | ErrorKind::IdempotencyKeyReused
            | ErrorKind::IdempotencyKeyMissing
            | ErrorKind::IdempotencyKeyInvalid
            | ErrorKind::IpDenied
            | ErrorKind::Banned
            | ErrorKind::CorsRefused
            | ErrorKind::MethodNotAllowed
            | ErrorKind::UriTooLong
            | ErrorKind::HeadersTooLarge => Side::Client,
            ErrorKind::UpstreamConnect
            | ErrorKind::UpstreamProtocol
            | ErrorKind::UpstreamTimeout => Side::Upstream,
            _ => Side::Internal,
        };
        let retryable = matches!(
            kind,
            ErrorKind::UpstreamConnect | ErrorKind::UpstreamProtocol | ErrorKind::UpstreamTimeout
        );
        Self {
            kind,
            side,
            retryable,
            detail: detail.into(),
        }
    }

    /// The problem+json response, carrying the request id.
    pub fn to_response(&self, request_id: &str) -> Response<ProxyBody> {
        problem_response(self.kind, request_id)
    }
}

/// An RFC 9457 problem+json response for `kind`.
pub fn problem_response(kind: ErrorKind, request_id: &str) -> Response<ProxyBody> {
    let status = kind.status();
    let body = serde_json::json!({
        "type": format!("urn:rampart:problem:{}", kind.slug()),
        "title": kind.title(),
        "status": status.as_u16(),
        "request_id": request_id,
    });
    let mut response = Response::new(full(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    if let Some(seconds) = kind.retry_after() {
        headers.insert(RETRY_AFTER, HeaderValue::from(seconds));
    }
    if kind == ErrorKind::Unauthenticated {
        headers.insert(
            http::header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"rampart\""),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn problem_json_carries_status_type_and_request_id() {
        let response =
            ProxyError::new(ErrorKind::BreakerOpen, "secret detail").to_response("req-1");
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()[RETRY_AFTER], "1");
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(json["type"], "urn:rampart:problem:circuit-open");
        assert_eq!(json["request_id"], "req-1");
        assert!(!String::from_utf8_lossy(&body).contains("secret"));
    }

    #[test]
    fn sides_and_retryability_follow_the_kind() {
        let e = ProxyError::new(ErrorKind::UpstreamConnect, "");
        assert_eq!((e.side, e.retryable), (Side::Upstream, true));
        let e = ProxyError::new(ErrorKind::BadRequest, "");
        assert_eq!((e.side, e.retryable), (Side::Client, false));
        let e = ProxyError::new(ErrorKind::BreakerOpen, "");
        assert_eq!((e.side, e.retryable), (Side::Internal, false));
    }
}
