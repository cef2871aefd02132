//! Forwarding with resilience: target selection, per-try and total timeouts,
//! retries with backoff and a budget, the circuit breaker and its fallback,
//! bulkheads, outlier detection, and WebSocket pass-through.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE, HOST};
use http::uri::PathAndQuery;
use http::{HeaderMap, Method, Request, Response, Uri, Version};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use rampart_config::{Endpoint, Fallback, HashKey, HostHeader, RetryPolicy};
use rampart_resilience::{Admission, AttemptOutcome};
use rampart_telemetry::{BreakerLabels, Metrics, UpstreamLabels};

use crate::body::{collect_limited, empty, full, BoxError, ProxyBody};
use crate::canonical::RawTarget;
use crate::echo;
use crate::error::{ErrorKind, ProxyError};
use crate::h1::client::SendError;
use crate::h1::codec::ResponseFields;
use crate::h1::upgrade::{OnUpgrade, Upgraded, UpstreamUpgraded};
use crate::headers::{self, AddedFields, TRACEPARENT, X_REQUEST_ID};
use crate::phase::{AttemptSpan, RequestContext};
use crate::pool::{hash_bytes, Pool};
use crate::runtime::RouteRuntime;

/// The request as it will be sent upstream, minus the body and the target.
struct Outgoing {
    method: Method,
    version: Version,
    path_and_query: PathAndQuery,
    /// The client's fields that go on (hop-by-hop ones and those `added` replaces removed).
    headers: HeaderMap,
    /// The fields the proxy sets, written after `headers`.
    added: AddedFields,
    client_host: Option<HeaderValue>,
    /// The client sent `TE: trailers` (sent on to HTTP/2 targets).
    te_trailers: bool,
    upgrade: bool,
    /// How the response's fields come back from an HTTP/1.1 upstream.
    response_fields: ResponseFields,
}

/// Marks a response that came from a route's fallback (`static` or `upstream`).
static X_RAMPART_FALLBACK: http::HeaderName = http::HeaderName::from_static("x-rampart-fallback");

/// How the request body is sent: once as a stream, or replayable from a buffer.
enum OutgoingBody {
    Stream {
        body: Option<ProxyBody>,
        failed: Arc<AtomicBool>,
        too_large: Arc<AtomicBool>,
    },
    Buffered(Bytes),
}

impl OutgoingBody {
    fn take(&mut self) -> Option<ProxyBody> {
        match self {
            OutgoingBody::Stream { body, .. } => body.take(),
            // An empty body is a zero-sized box: no allocation per attempt.
            OutgoingBody::Buffered(bytes) if bytes.is_empty() => Some(empty()),
            OutgoingBody::Buffered(bytes) => Some(full(bytes.clone())),
        }
    }

    /// The client-side failure behind a failed send, if there was one.
    fn client_failure(&self) -> Option<ErrorKind> {
        match self {
            OutgoingBody::Stream { too_large, .. } if too_large.load(Ordering::Relaxed) => {
                Some(ErrorKind::BodyTooLarge)
            }
            OutgoingBody::Stream { failed, .. } if failed.load(Ordering::Relaxed) => {
                Some(ErrorKind::ClientBody)
            }
            _ => None,
        }
    }
}

/// A client body that remembers whether reading it failed (or went over the route's
/// body limit), so a failed upstream request can be blamed on the right side.
struct WatchedBody {
    inner: ProxyBody,
    failed: Arc<AtomicBool>,
    limit: Option<u64>,
    seen: u64,
    too_large: Arc<AtomicBool>,
    /// The route forwards the client's trailers (the allowed ones); else they are dropped.
    forward_trailers: bool,
}

/// The error a body reports when it goes over its route's limit.
#[derive(Debug, thiserror::Error)]
#[error("the request body is larger than the route allows")]
struct BodyLimitExceeded;

impl Body for WatchedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut polled = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        while let Poll::Ready(Some(Ok(frame))) = &mut polled {
            let Some(trailers) = frame.trailers_mut() else {
                break;
            };
            if self.forward_trailers {
                let refused: Vec<http::HeaderName> = trailers
                    .keys()
                    .filter(|name| !crate::canonical::trailer_allowed(name))
                    .cloned()
                    .collect();
                for name in refused {
                    trailers.remove(&name);
                }
                if !trailers.is_empty() {
                    break;
                }
            }
            // Dropped: the body goes on as if the client had sent no trailers.
            polled = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        }
        match &polled {
            Poll::Ready(Some(Err(_))) => self.failed.store(true, Ordering::Relaxed),
            Poll::Ready(Some(Ok(frame))) => {
                self.seen += frame.data_ref().map_or(0, |d| d.len() as u64);
                if self.limit.is_some_and(|limit| self.seen > limit) {
                    self.failed.store(true, Ordering::Relaxed);
                    self.too_large.store(true, Ordering::Relaxed);
                    return Poll::Ready(Some(Err(Box::new(BodyLimitExceeded))));
                }
            }
            _ => {}
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

fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

/// The error for a request whose total timeout ran out.
fn total_timeout(total: Duration) -> ProxyError {
    ProxyError::new(
        ErrorKind::TotalTimeout,
        format!("no response within {total:?}"),
    )
}

/// Forwards a request through `route`, honouring the route's total timeout, which
/// runs from `started` (the caller's reading of the clock as forwarding began). The
/// total deadline bounds every wait (body buffering, each attempt, each backoff)
/// rather than wrapping them in a timer of its own: one timer per wait.
pub async fn forward(
    route: &RouteRuntime,
    ctx: &mut RequestContext,
    request: Request<ProxyBody>,
    hash: Option<u64>,
    metrics: &Metrics,
    started: Instant,
) -> Result<Response<ProxyBody>, ProxyError> {
    let (mut parts, body) = request.into_parts();
    forward_parts(route, ctx, &mut parts, body, hash, metrics, started).await
}

/// [`forward`] of a request given as its head, which is left without its fields, and
/// its body: the request path's own way in, which keeps the head where it is.
pub(crate) async fn forward_parts(
    route: &RouteRuntime,
    ctx: &mut RequestContext,
    parts: &mut http::request::Parts,
    body: ProxyBody,
    hash: Option<u64>,
    metrics: &Metrics,
    started: Instant,
) -> Result<Response<ProxyBody>, ProxyError> {
    let mut deadline = tokio::time::Instant::from_std(started) + route.config.total_timeout;
    // A gRPC call's own deadline, when it comes first (its expiry is a total timeout,
    // DEADLINE_EXCEEDED to the caller).
    if let Some(grpc) = ctx.grpc_deadline {
        deadline = deadline.min(tokio::time::Instant::from_std(grpc));
    }
    // The HTTP/1.1 server gives a request that asks for an upgrade (as its codec
    // decided: HTTP/1.1, `Connection: upgrade` and `Upgrade`) the means to take over
    // the connection; nothing else has one.
    let client_upgrade = parts.extensions.remove::<OnUpgrade>();
    let upgrade = client_upgrade.is_some();
    let config = &route.config;

    let mut outgoing = prepare(route, ctx, parts, upgrade)?;
    let retry = &config.retry;
    let may_retry =
        !upgrade && retry.attempts > 0 && (retry.non_idempotent || is_idempotent(&outgoing.method));
    let max_body = config.limits.as_ref().and_then(|l| l.max_body_bytes);
    // Without a body to wait for, the first attempt begins at `started`.
    let bodiless = crate::body::is_known_empty(&body);
    // A body known to be empty is not waited for: no timer for it.
    let mut body = if bodiless {
        OutgoingBody::Buffered(Bytes::new())
    } else {
        let chosen = choose_body(
            body,
            may_retry,
            config.retry_body_limit,
            max_body,
            config.forward_trailers,
        );
        tokio::time::timeout_at(deadline, chosen)
            .await
            .map_err(|_| total_timeout(config.total_timeout))??
    };
    let plan = AttemptPlan {
        retries: if matches!(body, OutgoingBody::Buffered(_)) {
            retry.attempts
        } else {
            0
        },
        repeatable: retry.non_idempotent || is_idempotent(&outgoing.method),
        body_idle: config.upstream_body_idle,
        retry,
        per_try: config.per_try_timeout,
        deadline,
        total: config.total_timeout,
        hash,
    };

    // Breaker admission happens per attempt; an open breaker before the first attempt
    // sends the request to the fallback.
    let pool = &route.pool;
    let first_attempt = if bodiless { started } else { Instant::now() };
    match attempt_pool(
        pool,
        ctx,
        &mut outgoing,
        &mut body,
        &plan,
        metrics,
        first_attempt,
    )
    .await
    {
        Err(e) if e.kind == ErrorKind::BreakerOpen && ctx.attempts == 0 => match &config.fallback {
            Some(Fallback::Static {
                status,
                body: text,
                content_type,
            }) => {
                let mut response = Response::new(full(Bytes::from(text.as_bytes().to_vec())));
                *response.status_mut() = *status;
                response
                    .headers_mut()
                    .insert(CONTENT_TYPE, content_type.clone());
                response.headers_mut().insert(
                    X_RAMPART_FALLBACK.clone(),
                    HeaderValue::from_static("static"),
                );
                Ok(response)
            }
            Some(Fallback::Upstream(_)) => match &route.fallback_pool {
                Some(fallback) => {
                    let response = attempt_pool(
                        fallback,
                        ctx,
                        &mut outgoing,
                        &mut body,
                        &plan,
                        metrics,
                        Instant::now(),
                    )
                    .await?;
                    let (mut head, body) = response.into_parts();
                    crate::h1::codec::set_response_field(
                        &mut head,
                        ctx.passed.as_deref_mut(),
                        &X_RAMPART_FALLBACK,
                        HeaderValue::from_static("upstream"),
                    );
                    Ok(Response::from_parts(head, body))
                }
                None => Err(e),
            },
            None => Err(e),
        },
        Ok(mut response) => {
            if let Some(client_upgrade) = client_upgrade {
                if response.status() == http::StatusCode::SWITCHING_PROTOCOLS {
                    if let Some(upstream) = response
                        .extensions_mut()
                        .remove::<UpstreamUpgraded>()
                        .and_then(|u| u.take())
                    {
                        splice_upgrade(client_upgrade, upstream);
                    }
                }
            }
            Ok(response)
        }
        Err(e) => Err(e),
    }
}

/// Builds the upstream request head: hop-by-hop removal, forwarding headers, ids,
/// trace context, header operations and path rewriting. The fields are taken out of
/// `parts`.
fn prepare(
    route: &RouteRuntime,
    ctx: &mut RequestContext,
    parts: &mut http::request::Parts,
    upgrade: bool,
) -> Result<Outgoing, ProxyError> {
    let config = &route.config;
    let mut headers = std::mem::take(&mut parts.headers);
    let te_trailers = headers::remove_hop_by_hop(&mut headers, upgrade);
    // `Host` stays in the map (every sender writes or replaces it from `host`).
    let client_host = headers.get(HOST).cloned().or_else(|| {
        let authority = parts.uri.authority()?;
        HeaderValue::from_str(authority.as_str()).ok()
    });
    let mut added = std::mem::take(&mut ctx.added);
    headers::set_forwarding(
        &headers,
        &mut added,
        ctx.peer.ip(),
        &ctx.conn.peer_ip_value,
        ctx.trusted_peer,
        ctx.scheme,
        client_host.as_ref(),
        &ctx.conn.forwarded,
    );
    added.push(&X_REQUEST_ID, ctx.request_id.clone());
    if let Some(traceparent) = ctx.trace.as_ref().and_then(|t| t.traceparent.clone()) {
        added.push(&TRACEPARENT, traceparent);
    }
    added.remove_replaced(&mut headers);
    if !config.request_headers.is_empty() {
        // The route's operations see, and may change, the fields the proxy sets.
        std::mem::take(&mut added).merge_into(&mut headers);
        config.request_headers.apply(&mut headers);
    }
    // Names with `_` are here only where the listener keeps them.
    if parts
        .extensions
        .get::<crate::canonical::KeptUnderscoreNames>()
        .is_some()
    {
        crate::canonical::drop_underscore_aliases(&mut headers, &added);
    }

    let strips = config.strip_prefix
        && matches!(&config.matcher.path, rampart_config::PathMatch::Prefix(p) if p != "/");
    // The canonical target, or on a route that asks for it, the client's own.
    let raw = config
        .forward_raw_path
        .then(|| parts.extensions.get::<RawTarget>())
        .flatten();
    let target = raw
        .map(|raw| &raw.0)
        .or(parts.uri.path_and_query())
        .ok_or_else(|| ProxyError::new(ErrorKind::BadRequest, "request without a target"))?;
    let path_and_query = match (&config.add_prefix, strips) {
        // OPTIONS * (the only request whose target is not a path) goes on as it is.
        _ if target.as_str() == "*" => target.clone(),
        // Nothing to rewrite: the target goes on as it is.
        (None, false) => target.clone(),
        _ => rewritten_target(config, target)?,
    };
    Ok(Outgoing {
        method: parts.method.clone(),
        version: parts.version,
        path_and_query,
        headers,
        added,
        client_host,
        te_trailers,
        upgrade,
        // The fields pass through as sent unless an exchange (which sees the whole
        // response) is on the route, or the client is served by HTTP/2 (which needs a
        // map); response filters get them as a map when they ask (`ResponseView`).
        response_fields: if route.exchanges.is_empty()
            && parts.version <= Version::HTTP_11
            && !upgrade
        {
            ResponseFields::PassThrough
        } else {
            ResponseFields::Map
        },
    })
}

/// The upstream target after the route's prefix strip and added prefix.
fn rewritten_target(
    config: &rampart_config::Route,
    target: &PathAndQuery,
) -> Result<PathAndQuery, ProxyError> {
    let path = target.path();
    let mut new_path = String::with_capacity(path.len() + 8);
    if let Some(prefix) = &config.add_prefix {
        new_path.push_str(prefix.trim_end_matches('/'));
    }
    let rest = match (&config.matcher.path, config.strip_prefix) {
        (rampart_config::PathMatch::Prefix(prefix), true) if prefix != "/" => {
            &path[prefix.len().min(path.len())..]
        }
        _ => path,
    };
    if !rest.starts_with('/') {
        new_path.push('/');
    }
    new_path.push_str(rest);
    if let Some(query) = target.query() {
        new_path.push('?');
        new_path.push_str(query);
    }
    PathAndQuery::try_from(new_path)
        .map_err(|e| ProxyError::new(ErrorKind::BadRequest, format!("rewritten path: {e}")))
}

/// Buffers a small body so it can be replayed on retry; streams anything else once.
/// (A body known to be empty never comes here.)
async fn choose_body(
    body: ProxyBody,
    may_retry: bool,
    limit: usize,
    max_body: Option<u64>,
    forward_trailers: bool,
) -> Result<OutgoingBody, ProxyError> {
    let hint = body.size_hint();
    if max_body.is_some_and(|max| hint.lower() > max) {
        return Err(ProxyError::new(
            ErrorKind::BodyTooLarge,
            "declared body over the route limit",
        ));
    }
    if may_retry && hint.upper().is_some_and(|n| n <= limit as u64) {
        let bytes = collect_limited(body, limit)
            .await
            .map_err(|e| ProxyError::new(ErrorKind::ClientBody, e.to_string()))?;
        return Ok(OutgoingBody::Buffered(bytes));
    }
    let failed = Arc::new(AtomicBool::new(false));
    let too_large = Arc::new(AtomicBool::new(false));
    let watched = WatchedBody {
        inner: body,
        failed: Arc::clone(&failed),
        limit: max_body,
        seen: 0,
        too_large: Arc::clone(&too_large),
        forward_trailers,
    };
    Ok(OutgoingBody::Stream {
        body: Some(watched.boxed()),
        failed,
        too_large,
    })
}

/// How many attempts a request gets and how each is bounded.
struct AttemptPlan<'a> {
    /// Retries allowed after the first attempt.
    retries: u32,
    /// The route may send this request again after it may have reached the upstream:
    /// its method is idempotent, or the route retries non-idempotent ones too.
    /// Otherwise it goes again only when it certainly never reached the upstream.
    repeatable: bool,
    /// Longest pause of the upstream within a response body.
    body_idle: Duration,
    retry: &'a RetryPolicy,
    per_try: Duration,
    /// When the route's total timeout runs out.
    deadline: tokio::time::Instant,
    total: Duration,
    hash: Option<u64>,
}

/// Attempts one pool up to `1 + plan.retries` times, the first attempt beginning at
/// `first_attempt` (the caller's reading of the clock). Each attempt's end is noted
/// in `ctx.upstream_finished`.
async fn attempt_pool(
    pool: &Arc<Pool>,
    ctx: &mut RequestContext,
    outgoing: &mut Outgoing,
    body: &mut OutgoingBody,
    plan: &AttemptPlan<'_>,
    metrics: &Metrics,
    first_attempt: Instant,
) -> Result<Response<ProxyBody>, ProxyError> {
    let retry = plan.retry;
    // Metric labels are built only on the paths that count something.
    let labels = || UpstreamLabels {
        upstream: pool.config.name.clone(),
    };
    let Some(_bulkhead) = pool.bulkhead.try_acquire() else {
        metrics
            .bulkhead_rejections
            .get_or_create(&BreakerLabels {
                scope: "upstream",
                name: pool.config.name.clone(),
            })
            .inc();
        return Err(ProxyError::new(
            ErrorKind::BulkheadFull,
            "upstream concurrency limit",
        ));
    };
    let _active = pool.retry_budget.start_request();
    let mut last_target = None;
    let mut retry_permit = None;
    let mut attempt = 0u32;
    loop {
        let now = if attempt == 0 {
            first_attempt
        } else {
            Instant::now()
        };
        let admission = pool.admit(now);
        if admission == Admission::Rejected {
            metrics.breaker_rejections.get_or_create(&labels()).inc();
            return Err(ProxyError::new(
                ErrorKind::BreakerOpen,
                "circuit breaker open",
            ));
        }
        let Some(target) = pool.pick(plan.hash, last_target, now) else {
            return Err(ProxyError::new(
                ErrorKind::NoHealthyTarget,
                "every target unhealthy or ejected",
            ));
        };
        last_target = Some(target);
        ctx.attempts += 1;
        ctx.target = Some(pool.targets[target].label.clone());
        pool.attempts_counter.inc();

        // A traced request gets a span per attempt, named in the traceparent sent
        // upstream; otherwise every attempt sends the prepared headers as they are.
        let span = ctx
            .attempt_spans
            .as_ref()
            .zip(ctx.trace.as_ref())
            .map(|(_, trace)| {
                let span_id = headers::new_span_id();
                let traceparent = trace.traceparent_for(span_id);
                (span_id, std::time::SystemTime::now(), traceparent)
            });
        let (traced_headers, traced_added);
        let (headers, added) = match &span {
            Some((_, _, traceparent)) => {
                let value = traceparent.clone();
                if outgoing.headers.contains_key(&TRACEPARENT) {
                    // The route's operations took the proxy's fields into the map.
                    let mut copy = outgoing.headers.clone();
                    copy.insert(TRACEPARENT.clone(), value);
                    traced_headers = copy;
                    (&traced_headers, &outgoing.added)
                } else {
                    let mut copy = outgoing.added.clone();
                    copy.set(&TRACEPARENT, value);
                    traced_added = copy;
                    (&outgoing.headers, &traced_added)
                }
            }
            None => (&outgoing.headers, &outgoing.added),
        };
        let result = send(
            pool,
            (target, now),
            outgoing,
            (headers, added),
            body,
            plan,
            &mut ctx.passed,
        )
        .await;
        if let (Some((span_id, start, _)), Some(spans)) = (span, ctx.attempt_spans.as_mut()) {
            spans.push(AttemptSpan {
                span_id,
                target: pool.targets[target].label.to_string(),
                start,
                end: std::time::SystemTime::now(),
                status: result.as_ref().ok().map(|r| r.status().as_u16()),
                error: result.as_ref().err().map(|e| e.kind.slug()),
            });
        }
        let finished = Instant::now();
        ctx.upstream_finished = Some(finished);
        let (outcome, success) = match &result {
            Ok(response) if response.status().is_server_error() => {
                (AttemptOutcome::ServerError, false)
            }
            Ok(_) => (AttemptOutcome::Success, true),
            Err(e) if e.kind == ErrorKind::UpstreamConnect => {
                (AttemptOutcome::ConnectFailure, false)
            }
            Err(e)
                if e.side == crate::error::Side::Upstream || e.kind == ErrorKind::TotalTimeout =>
            {
                (AttemptOutcome::ServerError, false)
            }
            // A client-side failure says nothing about the upstream.
            Err(_) => (AttemptOutcome::Success, true),
        };
        pool.record(
            target,
            finished,
            outcome,
            success,
            admission == Admission::Probe,
        );
        drop(retry_permit.take());

        // A request that reached the upstream goes again only when the route may
        // repeat it; one that never did (a failed connect) whatever its method.
        let wants_retry = match &result {
            Ok(response) => {
                plan.repeatable && retry.on_status.contains(&response.status().as_u16())
            }
            Err(e) => match e.kind {
                ErrorKind::UpstreamConnect => retry.on_connect_failure,
                ErrorKind::UpstreamTimeout => plan.repeatable && retry.on_timeout,
                ErrorKind::UpstreamProtocol => e.retryable,
                _ => false,
            },
        };
        if !wants_retry || attempt >= plan.retries {
            return result;
        }
        match pool.retry_budget.try_retry() {
            Some(permit) => retry_permit = Some(permit),
            None => {
                metrics
                    .retry_budget_exhausted
                    .get_or_create(&labels())
                    .inc();
                return result;
            }
        }
        metrics.retries.get_or_create(&labels()).inc();
        let delay = retry.backoff.delay(attempt, rand::random::<f64>());
        attempt += 1;
        drop(result);
        if tokio::time::Instant::now() + delay >= plan.deadline {
            tokio::time::sleep_until(plan.deadline).await;
            return Err(total_timeout(plan.total));
        }
        tokio::time::sleep(delay).await;
    }
}

/// Sends one attempt to target `target` with the client's fields and the proxy's; the
/// attempt's time runs from `now`. The response's fields go to `passed` when they pass
/// through untouched.
async fn send(
    pool: &Arc<Pool>,
    (target, now): (usize, Instant),
    outgoing: &Outgoing,
    (headers, added): (&HeaderMap, &AddedFields),
    body: &mut OutgoingBody,
    plan: &AttemptPlan<'_>,
    passed: &mut Option<Box<crate::h1::codec::PassedFields>>,
) -> Result<Response<ProxyBody>, ProxyError> {
    *passed = None;
    let slot = &pool.targets[target];
    let per_try = plan.per_try;
    let try_deadline = tokio::time::Instant::from_std(now) + per_try;
    let deadline = try_deadline.min(plan.deadline);
    let timed_out = || {
        if try_deadline <= plan.deadline {
            ProxyError::new(
                ErrorKind::UpstreamTimeout,
                format!("{} gave no response headers within {per_try:?}", slot.label),
            )
        } else {
            total_timeout(plan.total)
        }
    };
    let Some(mut request_body) = body.take() else {
        return Err(ProxyError::new(
            ErrorKind::Internal,
            "streamed body already sent",
        ));
    };
    let _in_flight = pool.start(target);
    let host = match &pool.config.host_header {
        // An HTTP/1.0 request may come without a host; HTTP/1.1 needs one upstream.
        HostHeader::Preserve => outgoing
            .client_host
            .as_ref()
            .or(slot.authority_header.as_ref()),
        HostHeader::Target => slot.authority_header.as_ref(),
        HostHeader::Literal(v) => Some(v),
    };
    match &slot.endpoint {
        Endpoint::Echo => {
            let mut request = Request::new(request_body);
            *request.method_mut() = outgoing.method.clone();
            *request.headers_mut() = headers.clone();
            added.clone().merge_into(request.headers_mut());
            crate::pool::set_host(request.headers_mut(), host);
            *request.uri_mut() = Uri::from(outgoing.path_and_query.clone());
            *request.version_mut() = outgoing.version;
            match tokio::time::timeout_at(plan.deadline, echo::respond(request)).await {
                Err(_) => Err(total_timeout(plan.total)),
                Ok(answer) => answer.map_err(|e| match body.client_failure() {
                    Some(kind) => ProxyError::new(kind, e.detail),
                    None => e,
                }),
            }
        }
        Endpoint::Http { .. } => {
            let mut fresh = false;
            let sent = loop {
                let sent = pool
                    .send(
                        target,
                        crate::pool::Outbound {
                            method: &outgoing.method,
                            path_and_query: &outgoing.path_and_query,
                            host,
                            headers,
                            added,
                            te_trailers: outgoing.te_trailers,
                            upgrade: outgoing.upgrade,
                            body: request_body,
                            response_fields: outgoing.response_fields,
                            now,
                            deadline,
                            body_idle: plan.body_idle,
                            fresh,
                            passed: &mut *passed,
                        },
                    )
                    // The client enforces the deadline (a timer per connection, not
                    // per request).
                    .await;
                // A kept-alive connection the target had closed: the request goes
                // again, once, on a new connection to the same target (neither a
                // retry nor a failure of the target), when it never reached the
                // target or the route may repeat it. A POST that was written is
                // not sent twice unless the route says it may be
                // (`retry.non_idempotent`): the target may have processed it.
                if let Err(SendError::Stale { written, .. }) = &sent {
                    if !fresh && (!*written || plan.repeatable) {
                        if let Some(again) = body.take() {
                            request_body = again;
                            fresh = true;
                            continue;
                        }
                    }
                }
                break sent;
            };
            match sent {
                Err(SendError::Timeout) => Err(timed_out()),
                Err(e) if body.client_failure().is_some() => Err(ProxyError::new(
                    body.client_failure().unwrap_or(ErrorKind::ClientBody),
                    e.to_string(),
                )),
                Err(SendError::Body(e)) => {
                    Err(ProxyError::new(ErrorKind::ClientBody, e.to_string()))
                }
                Err(SendError::Connect(e)) => Err(ProxyError::new(
                    ErrorKind::UpstreamConnect,
                    format!("{}: {e}", slot.label),
                )),
                Err(SendError::Protocol { detail, retryable }) => {
                    let mut error = ProxyError::new(
                        ErrorKind::UpstreamProtocol,
                        format!("{}: {detail}", slot.label),
                    );
                    error.retryable = retryable && plan.repeatable;
                    Err(error)
                }
                // Not sent again: it was written and the route may not repeat it (or
                // it already went out on a new connection).
                Err(SendError::Stale { detail, .. }) => {
                    let mut error = ProxyError::new(
                        ErrorKind::UpstreamProtocol,
                        format!("{}: {detail}", slot.label),
                    );
                    error.retryable = false;
                    Err(error)
                }
                Ok(response) => {
                    let switching = response.status() == http::StatusCode::SWITCHING_PROTOCOLS;
                    let (mut parts, incoming) = response.into_parts();
                    headers::remove_hop_by_hop(&mut parts.headers, switching && outgoing.upgrade);
                    Ok(Response::from_parts(parts, incoming))
                }
            }
        }
    }
}

/// Copies bytes both ways between the upgraded client and upstream connections,
/// once the `101` has reached the client.
fn splice_upgrade(client: OnUpgrade, mut upstream: Upgraded) {
    tokio::spawn(async move {
        let Some(mut client) = client.connection().await else {
            tracing::debug!("upgrade failed: the client connection was not handed over");
            return;
        };
        if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
            tracing::debug!("upgraded connection ended: {e}");
        }
    });
}

/// The consistent-hash key of a request, per the pool's `hash_on`.
pub fn hash_key(key: &HashKey, ctx: &RequestContext, headers: &HeaderMap) -> u64 {
    // A field a phase set (the principal's) counts as the request's.
    let from_header = |name: &http::HeaderName| {
        headers
            .get(name)
            .or_else(|| ctx.added.get(name))
            .map(|v| hash_bytes(v.as_bytes()))
    };
    let value = match key {
        HashKey::ClientIp => None,
        HashKey::Header(name) => from_header(name),
        HashKey::Cookie(cookie) => headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| name == cookie)
            .map(|(_, value)| hash_bytes(value.as_bytes())),
    };
    value.unwrap_or_else(|| hash_bytes(ctx.client_ip.to_string().as_bytes()))
}
