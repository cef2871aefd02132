//! gRPC over HTTP/2 as the proxy meets it (the protocol is described in grpc/grpc's
//! `doc/PROTOCOL-HTTP2.md`): which requests are gRPC calls, the deadline a call sets
//! (`grpc-timeout`), and Rampart's own refusals answered as gRPC errors.
//!
//! Everything else about gRPC is plain HTTP/2 to the proxy: its messages are the
//! body's bytes, `grpc-status` and the other trailers pass through as trailers, and
//! `TE: trailers` is forwarded to HTTP/2 upstreams (`headers::remove_hop_by_hop`).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use http::{Response, StatusCode};
use http_body::{Body, Frame};

use crate::body::{empty, BoxError, ProxyBody};
use crate::error::ErrorKind;

static GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");
static GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
static GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");

/// Whether a request with `headers` is a gRPC call: its content type is
/// `application/grpc`, alone or with a subtype (`application/grpc+proto`) or
/// parameters ("Requests": `Content-Type → "content-type" "application/grpc"
/// [("+proto" / "+json" / {custom})]`). gRPC-Web (`application/grpc-web`) is another
/// protocol and is not one.
pub(crate) fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .is_some_and(|v| is_grpc_content_type(v.as_bytes()))
}

fn is_grpc_content_type(value: &[u8]) -> bool {
    const GRPC: &[u8] = b"application/grpc";
    value.len() >= GRPC.len()
        && value[..GRPC.len()].eq_ignore_ascii_case(GRPC)
        && matches!(value.get(GRPC.len()), None | Some(b'+' | b';' | b' '))
}

/// The deadline a gRPC call's `grpc-timeout` sets, from the request's arrival.
pub(crate) fn timeout(headers: &HeaderMap) -> Option<Duration> {
    parse_timeout(headers.get(&GRPC_TIMEOUT)?.as_bytes())
}

/// Reads a `grpc-timeout` value: `Timeout → "grpc-timeout" TimeoutValue TimeoutUnit`,
/// a positive integer of at most 8 digits followed by `H`, `M`, `S`, `m`, `u` or `n`
/// ("Requests"). Anything else is no timeout (the spec's default: none).
fn parse_timeout(value: &[u8]) -> Option<Duration> {
    let (&unit, digits) = value.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = digits
        .iter()
        .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
    Some(match unit {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

/// gRPC status codes (grpc/grpc `doc/statuscodes.md`).
mod code {
    pub const UNKNOWN: u8 = 2;
    pub const INVALID_ARGUMENT: u8 = 3;
    pub const DEADLINE_EXCEEDED: u8 = 4;
    pub const PERMISSION_DENIED: u8 = 7;
    pub const RESOURCE_EXHAUSTED: u8 = 8;
    pub const ABORTED: u8 = 10;
    pub const UNIMPLEMENTED: u8 = 12;
    pub const INTERNAL: u8 = 13;
    pub const UNAVAILABLE: u8 = 14;
    pub const UNAUTHENTICATED: u8 = 16;
}

/// The gRPC status a refusal of `kind` is answered with: what the refusal means
/// (`doc/statuscodes.md`: a limit reached is `RESOURCE_EXHAUSTED`, a request that
/// cannot be served now `UNAVAILABLE`, a deadline `DEADLINE_EXCEEDED`).
pub(crate) fn status_code(kind: ErrorKind) -> u8 {
    match kind {
        ErrorKind::Unauthenticated => code::UNAUTHENTICATED,
        ErrorKind::Forbidden | ErrorKind::WafBlocked => code::PERMISSION_DENIED,
        ErrorKind::RateLimited(_)
        | ErrorKind::QuotaExceeded(_)
        | ErrorKind::BodyTooLarge
        | ErrorKind::HeadersTooLarge
        | ErrorKind::UriTooLong => code::RESOURCE_EXHAUSTED,
        ErrorKind::UpstreamTimeout | ErrorKind::TotalTimeout => code::DEADLINE_EXCEEDED,
        ErrorKind::BreakerOpen
        | ErrorKind::BulkheadFull
        | ErrorKind::NoHealthyTarget
        | ErrorKind::GuardUnavailable
        | ErrorKind::UpstreamConnect
        | ErrorKind::UpstreamProtocol => code::UNAVAILABLE,
        ErrorKind::NoRoute | ErrorKind::MethodNotAllowed => code::UNIMPLEMENTED,
        ErrorKind::BadRequest | ErrorKind::ClientBody | ErrorKind::IdempotencyKeyReused => {
            code::INVALID_ARGUMENT
        }
        ErrorKind::IdempotencyInFlight => code::ABORTED,
        ErrorKind::Internal => code::INTERNAL,
        // The others (malformed requests, injected faults, the WAF's refusals of what it
        // cannot inspect) by the HTTP status they would have had.
        _ => status_code_of(kind.status()),
    }
}

/// The gRPC status for an HTTP status Rampart would have answered.
fn status_code_of(status: StatusCode) -> u8 {
    match status.as_u16() {
        400 | 422 => code::INVALID_ARGUMENT,
        401 => code::UNAUTHENTICATED,
        403 => code::PERMISSION_DENIED,
        404 | 405 | 501 => code::UNIMPLEMENTED,
        409 => code::ABORTED,
        408 | 504 => code::DEADLINE_EXCEEDED,
        413 | 414 | 429 | 431 => code::RESOURCE_EXHAUSTED,
        500 => code::INTERNAL,
        502 | 503 => code::UNAVAILABLE,
        _ => code::UNKNOWN,
    }
}

/// Rampart's refusal of a gRPC call as a gRPC error: a "Trailers-Only" response
/// ("Responses": `Trailers-Only → HTTP-Status Content-Type Trailers`), that is status
/// 200, `content-type: application/grpc`, `grpc-status` and `grpc-message` in the
/// head and no body, which HTTP/2 sends as one HEADERS frame ending the stream.
pub(crate) fn trailers_only(kind: ErrorKind) -> Response<ProxyBody> {
    let mut response = Response::new(empty());
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers.insert(
        GRPC_STATUS.clone(),
        HeaderValue::from(u16::from(status_code(kind))),
    );
    if let Ok(message) = HeaderValue::from_str(&percent_encode(kind.title())) {
        headers.insert(GRPC_MESSAGE.clone(), message);
    }
    response
}

/// A gRPC call's response body, cut at the call's deadline: the caller is owed no
/// message after it ("Client Cancellation": past the deadline the call has failed
/// with DEADLINE_EXCEEDED), so the upstream's stream is dropped (reset) and the body
/// ends with `grpc-status: 4` in its trailers.
pub(crate) struct DeadlineBody {
    inner: ProxyBody,
    deadline: Pin<Box<tokio::time::Sleep>>,
    ended: bool,
}

impl DeadlineBody {
    /// `inner`, cut at `deadline`.
    pub(crate) fn new(inner: ProxyBody, deadline: std::time::Instant) -> Self {
        Self {
            inner,
            deadline: Box::pin(tokio::time::sleep_until(tokio::time::Instant::from_std(
                deadline,
            ))),
            ended: false,
        }
    }
}

impl Body for DeadlineBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.ended {
            return Poll::Ready(None);
        }
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            if frame.is_none() {
                self.ended = true;
            }
            return Poll::Ready(frame);
        }
        if self.deadline.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        self.ended = true;
        // The upstream's stream goes with its body.
        self.inner = empty();
        let mut trailers = HeaderMap::new();
        trailers.insert(
            GRPC_STATUS.clone(),
            HeaderValue::from(u16::from(code::DEADLINE_EXCEEDED)),
        );
        if let Ok(message) = HeaderValue::from_str(ErrorKind::TotalTimeout.title()) {
            trailers.insert(GRPC_MESSAGE.clone(), message);
        }
        Poll::Ready(Some(Ok(Frame::trailers(trailers))))
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.inner.is_end_stream()
    }
}

/// `Status-Message`'s percent-encoding of UTF-8 text ("Responses": bytes other than
/// space and VCHAR, and `%` itself, as `%` and two hex digits).
fn percent_encode(text: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Malformation;

    #[test]
    fn grpc_content_types() {
        for yes in [
            "application/grpc",
            "application/grpc+proto",
            "Application/GRPC+json",
            "application/grpc; charset=utf-8",
        ] {
            assert!(is_grpc_content_type(yes.as_bytes()), "{yes}");
        }
        for no in [
            "application/grpc-web",
            "application/grpc-web+proto",
            "application/grpcx",
            "application/json",
            "application/grp",
            "",
        ] {
            assert!(!is_grpc_content_type(no.as_bytes()), "{no}");
        }
    }

    #[test]
    fn grpc_timeouts_in_every_unit() {
        let cases = [
            ("1H", Some(Duration::from_secs(3600))),
            ("2M", Some(Duration::from_secs(120))),
            ("3S", Some(Duration::from_secs(3))),
            ("100m", Some(Duration::from_millis(100))),
            ("250u", Some(Duration::from_micros(250))),
            ("99999999n", Some(Duration::from_nanos(99_999_999))),
            ("0m", Some(Duration::ZERO)),
            // Nine digits, no unit, an unknown unit, a sign, no digits.
            ("123456789m", None),
            ("100", None),
            ("100s", None),
            ("-1S", None),
            ("+1S", None),
            ("S", None),
            ("", None),
            ("1.5S", None),
        ];
        for (text, wanted) in cases {
            assert_eq!(parse_timeout(text.as_bytes()), wanted, "{text}");
        }
    }

    #[test]
    fn refusals_map_to_grpc_codes() {
        assert_eq!(status_code(ErrorKind::Unauthenticated), 16);
        assert_eq!(status_code(ErrorKind::Forbidden), 7);
        assert_eq!(status_code(ErrorKind::RateLimited(3)), 8);
        assert_eq!(status_code(ErrorKind::BreakerOpen), 14);
        assert_eq!(status_code(ErrorKind::UpstreamConnect), 14);
        assert_eq!(status_code(ErrorKind::TotalTimeout), 4);
        assert_eq!(status_code(ErrorKind::NoRoute), 12);
        assert_eq!(status_code(ErrorKind::BadRequest), 3);
        assert_eq!(status_code(ErrorKind::BodyTooLarge), 8);
        assert_eq!(status_code(ErrorKind::HeadersTooLarge), 8);
        assert_eq!(status_code(ErrorKind::Internal), 13);
        assert_eq!(status_code(ErrorKind::Malformed(Malformation::Head)), 3);
        for (status, code) in [
            (503, 14),
            (401, 16),
            (403, 7),
            (429, 8),
            (500, 13),
            (418, 2),
        ] {
            let status = StatusCode::from_u16(status).expect("status");
            assert_eq!(status_code(ErrorKind::FaultAbort(status)), code, "{status}");
        }
    }

    #[test]
    fn a_refusal_is_a_trailers_only_response() {
        let response = trailers_only(ErrorKind::RateLimited(1));
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()[CONTENT_TYPE], "application/grpc");
        assert_eq!(response.headers()["grpc-status"], "8");
        assert_eq!(response.headers()["grpc-message"], "Too many requests");
        assert!(
            response.body().is_end_stream(),
            "no body: one HEADERS frame"
        );
    }

    #[test]
    fn status_messages_are_percent_encoded() {
        assert_eq!(percent_encode("plain text ~!"), "plain text ~!");
        assert_eq!(percent_encode("100% sure"), "100%25 sure");
        assert_eq!(percent_encode("tab\there"), "tab%09here");
        assert_eq!(percent_encode("d\u{e9}j\u{e0}"), "d%C3%A9j%C3%A0");
    }
}
