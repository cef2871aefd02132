//! The request path as named phases, and the extension points later features plug into.
//!
//! ```text
//! accept → route → guards → upstream select → forward (with resilience) → response filters → log
//! ```
//!
//! Each route compiles its own list of [`Guard`]s and [`ResponseFilter`]s from the
//! config; the core (routing and forwarding) does not change when a phase is added.

use std::any::Any;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use http::HeaderValue;
use rampart_telemetry::PhaseTimes;

use crate::error::{ErrorKind, ProxyError};
use crate::headers::TraceContext;

/// What a request carries through the phases.
pub struct RequestContext {
    /// Request id (kept from the client or generated); echoed in responses and errors.
    pub request_id: HeaderValue,
    /// The request's trace: Rampart's span in it when spans are exported, else the
    /// caller's trace as read (none when the caller sent no valid `traceparent`).
    pub trace: Option<TraceContext>,
    /// The TCP peer.
    pub peer: SocketAddr,
    /// The client's IP, derived through trusted proxies.
    pub client_ip: IpAddr,
    /// Whether the peer is a trusted proxy.
    pub trusted_peer: bool,
    /// `http` or `https`.
    pub scheme: &'static str,
    /// The requested host, lower case, without port.
    pub host: Arc<str>,
    /// When the request arrived.
    pub received: Instant,
    /// Values a phase keeps alive for the rest of the request (permits, leases).
    pub held: Vec<Box<dyn Any + Send>>,
    /// Attempts sent upstream.
    pub attempts: u32,
    /// The last target tried.
    pub target: Option<Arc<str>>,
    /// Time spent per phase.
    pub phases: PhaseTimes,
    /// Upstream attempts, recorded for tracing when the trace is exported.
    pub attempt_spans: Option<Vec<AttemptSpan>>,
    /// Who the request is from, once an authentication guard has established it.
    pub principal: Option<Arc<Principal>>,
    /// Fields a phase sets on the upstream request (the principal's), sent after the
    /// client's fields with the proxy's own; each replaces a client field of its name.
    pub added: crate::headers::AddedFields,
    /// The connection the request came on (its listener, peer, `Forwarded` cache).
    pub(crate) conn: Arc<crate::service::ConnectionInfo>,
    /// When forwarding began (the upstream phase's start), once it has.
    pub(crate) upstream_started: Option<Instant>,
    /// When the last upstream attempt ended, once one has.
    pub(crate) upstream_finished: Option<Instant>,
    /// The fields of the last attempt's response as the upstream sent them, when they
    /// pass through untouched (the response's own map then being empty); cleared as
    /// each attempt begins.
    pub(crate) passed: Option<Box<crate::h1::codec::PassedFields>>,
    /// The deadline a gRPC call set (`grpc-timeout`), as an instant: forwarding ends
    /// by it when it comes before the route's total timeout.
    pub(crate) grpc_deadline: Option<Instant>,
}

impl RequestContext {
    /// The name of the listener the request came on.
    pub fn listener(&self) -> &str {
        &self.conn.listener
    }

    /// The client IP as text (its usual form, IPv4-mapped addresses as IPv4) when the
    /// client is the connection's peer: the connection's copy, formatted once. `None`
    /// when trusted proxies named another client (format `client_ip` then).
    pub fn client_ip_text(&self) -> Option<&str> {
        if self.client_ip != crate::headers::canonical(self.peer.ip()) {
            return None;
        }
        self.conn.peer_ip_value.to_str().ok()
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The consumer.
    pub consumer_id: String,
    /// The credential used (an API key id).
    pub key_id: String,
    /// Scopes granted.
    pub scopes: Vec<String>,
    /// JWT claims a route asked for (forwarded upstream or used as rate-limit keys),
    /// lower-case name and value.
    pub claims: Vec<(String, String)>,
    /// The consumer's own limits, overriding the route's.
    pub plan: Option<Arc<Plan>>,
}

/// A consumer's plan: limits that replace a route's for this consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Plan {
    /// Replaces the numbers of the route's `consumer` rate limits: requests per period.
    pub rate: Option<PlanRate>,
    /// Replaces the route's daily budget.
    pub daily_quota: Option<u64>,
    /// Replaces the route's monthly budget.
    pub monthly_quota: Option<u64>,
}

/// A plan's rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanRate {
    /// Requests per period.
    pub requests: u32,
    /// The period.
    pub per: std::time::Duration,
    /// Requests at once.
    pub burst: u32,
}

/// Builds the guards a route's config asks for beyond the core ones (authentication,
/// rate limits, later the WAF). The gateway calls it for every route on start and reload.
pub trait GuardFactory: Send + Sync {
    /// Guards for `route`, in the order they run (after fault injection and the route bulkhead).
    fn guards(
        &self,
        config: &rampart_config::Config,
        route: &rampart_config::Route,
    ) -> Vec<Box<dyn Guard>>;

    /// The phases wrapped around forwarding on `route`, outermost first (WAF,
    /// idempotency keys).
    fn exchanges(
        &self,
        _config: &rampart_config::Config,
        _route: &rampart_config::Route,
    ) -> Vec<Box<dyn Exchange>> {
        Vec::new()
    }

    /// Response filters that go with those guards.
    fn response_filters(
        &self,
        _config: &rampart_config::Config,
        _route: &rampart_config::Route,
    ) -> Vec<Box<dyn ResponseFilter>> {
        Vec::new()
    }
}

/// A factory that adds nothing.
pub struct NoExtraGuards;

impl GuardFactory for NoExtraGuards {
    fn guards(
        &self,
        _config: &rampart_config::Config,
        _route: &rampart_config::Route,
    ) -> Vec<Box<dyn Guard>> {
        Vec::new()
    }
}

/// One upstream attempt, for its trace span.
#[derive(Debug, Clone)]
pub struct AttemptSpan {
    /// The span id sent upstream in `traceparent`.
    pub span_id: [u8; 8],
    /// The target tried.
    pub target: String,
    /// When the attempt started.
    pub start: std::time::SystemTime,
    /// When its response headers (or its failure) arrived.
    pub end: std::time::SystemTime,
    /// The upstream's status, if it answered.
    pub status: Option<u16>,
    /// The failure, if it did not.
    pub error: Option<&'static str>,
}

/// What a guard decided when it let the request go on or answered it itself.
pub enum Verdict {
    /// Go on to the next phase.
    Continue,
    /// Answer with this response now (such as a CORS preflight answer).
    Answer(http::Response<crate::ProxyBody>),
}

/// A guard's verdict to wait for; an error is answered at once as problem+json.
pub type GuardFuture<'a> = Pin<Box<dyn Future<Output = Result<Verdict, ProxyError>> + Send + 'a>>;

/// What a guard's check gives: the verdict at once, or a future of it when the guard
/// must wait (a store, Redis, a delay). Deciding at once costs no allocation.
pub enum GuardCheck<'a> {
    /// Decided without waiting.
    Now(Result<Verdict, ProxyError>),
    /// Decided after waiting.
    Later(GuardFuture<'a>),
}

impl GuardCheck<'_> {
    /// The verdict, waiting for it if it is not there yet.
    pub async fn verdict(self) -> Result<Verdict, ProxyError> {
        match self {
            GuardCheck::Now(verdict) => verdict,
            GuardCheck::Later(future) => future.await,
        }
    }
}

/// A request phase that may stop a request before it reaches the upstream
/// (fault injection, bulkheads; later authentication, WAF, rate limits).
pub trait Guard: Send + Sync {
    /// Name for logs.
    fn name(&self) -> &'static str;
    /// Inspects (and may change) the request head.
    fn check<'a>(
        &'a self,
        head: &'a mut http::request::Parts,
        ctx: &'a mut RequestContext,
    ) -> GuardCheck<'a>;
}

/// The response future of an [`Exchange`].
pub type ExchangeFuture<'a> =
    Pin<Box<dyn Future<Output = Result<http::Response<crate::ProxyBody>, ProxyError>> + Send + 'a>>;

/// A phase wrapped around forwarding: it sees the whole request, body included, and
/// the upstream's response, and decides whether to forward at all.
pub trait Exchange: Send + Sync {
    /// Answers `request`, calling `next.forward` to send it upstream (at most once).
    fn around<'a>(
        &'a self,
        request: http::Request<crate::ProxyBody>,
        ctx: &'a mut RequestContext,
        next: Next<'a>,
    ) -> ExchangeFuture<'a>;
}

/// The rest of the request path, as handed to an [`Exchange`]: the inner exchanges,
/// then forwarding.
pub struct Next<'a> {
    pub(crate) route: &'a crate::runtime::RouteRuntime,
    pub(crate) hash: Option<u64>,
    pub(crate) metrics: &'a rampart_telemetry::Metrics,
    pub(crate) inner: &'a [Box<dyn Exchange>],
}

impl<'a> Next<'a> {
    /// Passes the request on: to the next exchange, or upstream with the route's
    /// retries, timeouts and breaker.
    pub fn forward(
        self,
        request: http::Request<crate::ProxyBody>,
        ctx: &'a mut RequestContext,
    ) -> ExchangeFuture<'a> {
        match self.inner.split_first() {
            Some((exchange, rest)) => {
                let next = Next {
                    inner: rest,
                    ..self
                };
                exchange.around(request, ctx, next)
            }
            None => Box::pin(crate::forward::forward(
                self.route,
                ctx,
                request,
                self.hash,
                self.metrics,
                std::time::Instant::now(),
            )),
        }
    }
}

/// A phase that changes the response head before it goes to the client.
pub trait ResponseFilter: Send + Sync {
    /// Changes the response head.
    fn filter(&self, ctx: &RequestContext, head: &mut ResponseView<'_>);
}

/// A response head as response filters see it. The upstream's fields may still be
/// the ones passed through as received (see `h1::codec::ResponseFields`); they
/// become a header map the first time a filter asks for them, so a filter that
/// leaves a response alone costs nothing.
pub struct ResponseView<'a> {
    parts: &'a mut http::response::Parts,
    passed: &'a mut Option<Box<crate::h1::codec::PassedFields>>,
}

impl<'a> ResponseView<'a> {
    /// A view of `parts`, whose fields are in `passed` when they pass through.
    pub fn new(
        parts: &'a mut http::response::Parts,
        passed: &'a mut Option<Box<crate::h1::codec::PassedFields>>,
    ) -> Self {
        Self { parts, passed }
    }

    /// The status.
    pub fn status(&self) -> http::StatusCode {
        self.parts.status
    }

    /// The fields, all of them in the map.
    pub fn headers(&mut self) -> &mut http::HeaderMap {
        if let Some(passed) = self.passed.take() {
            // What was set in the map itself (nothing, on the proxy's own path) follows.
            passed.fold_into(self.parts);
        }
        &mut self.parts.headers
    }
}

/// Fault injection: delays and/or aborts a share of requests.
pub struct FaultGuard(pub rampart_config::Fault);

impl Guard for FaultGuard {
    fn name(&self) -> &'static str {
        "fault"
    }

    fn check<'a>(
        &'a self,
        _head: &'a mut http::request::Parts,
        _ctx: &'a mut RequestContext,
    ) -> GuardCheck<'a> {
        GuardCheck::Later(Box::pin(async move {
            if let Some((delay, share)) = self.0.delay {
                if rand::random::<f64>() < share {
                    tokio::time::sleep(delay).await;
                }
            }
            if let Some((status, share)) = self.0.abort {
                if rand::random::<f64>() < share {
                    return Err(ProxyError::new(
                        ErrorKind::FaultAbort(status),
                        "fault injection",
                    ));
                }
            }
            Ok(Verdict::Continue)
        }))
    }
}

/// A route's bulkhead: the excess gets 503 at once.
pub struct RouteBulkheadGuard {
    /// The route's name (for metrics).
    pub route: Arc<str>,
    /// The limit.
    pub bulkhead: Arc<rampart_resilience::Bulkhead>,
    /// Where rejections are counted.
    pub metrics: Arc<rampart_telemetry::Metrics>,
}

impl Guard for RouteBulkheadGuard {
    fn name(&self) -> &'static str {
        "route_bulkhead"
    }

    fn check<'a>(
        &'a self,
        _head: &'a mut http::request::Parts,
        ctx: &'a mut RequestContext,
    ) -> GuardCheck<'a> {
        let verdict = match self.bulkhead.try_acquire_owned() {
            Some(permit) => {
                ctx.held.push(Box::new(permit));
                Ok(Verdict::Continue)
            }
            None => {
                self.metrics
                    .bulkhead_rejections
                    .get_or_create(&rampart_telemetry::BreakerLabels {
                        scope: "route",
                        name: self.route.to_string(),
                    })
                    .inc();
                Err(ProxyError::new(
                    ErrorKind::BulkheadFull,
                    "route concurrency limit",
                ))
            }
        };
        GuardCheck::Now(verdict)
    }
}

/// Applies a route's response header operations.
pub struct ResponseHeaders(pub rampart_config::HeaderOps);

impl ResponseFilter for ResponseHeaders {
    fn filter(&self, _ctx: &RequestContext, head: &mut ResponseView<'_>) {
        if !self.0.is_empty() {
            self.0.apply(head.headers());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h1::codec::{parse_response, ResponseFields};

    #[test]
    fn a_view_hands_out_passed_fields_as_a_map_only_when_asked() {
        let mut head = parse_response(
            &mut bytes::BytesMut::from(
                "HTTP/1.1 404 Not Found\r\nServer: up\r\nContent-Length: 0\r\n\r\n",
            ),
            &http::Method::GET,
            8192,
            ResponseFields::PassThrough,
        )
        .expect("valid")
        .expect("complete");
        head.parts
            .headers
            .insert("x-set-before", HeaderValue::from_static("1"));
        head.parts
            .headers
            .append("x-set-before", HeaderValue::from_static("2"));
        assert_eq!(
            ResponseView::new(&mut head.parts, &mut head.passed).status(),
            http::StatusCode::NOT_FOUND
        );
        assert!(
            head.passed.is_some(),
            "reading the status keeps the fields as they came"
        );
        let mut view = ResponseView::new(&mut head.parts, &mut head.passed);
        let names: Vec<String> = view.headers().keys().map(|n| n.to_string()).collect();
        assert_eq!(names, ["server", "content-length", "x-set-before"]);
        let values: Vec<_> = view.headers().get_all("x-set-before").iter().collect();
        assert_eq!(values, ["1", "2"], "every value of a name set before");
        assert!(head.passed.is_none());
    }
}
