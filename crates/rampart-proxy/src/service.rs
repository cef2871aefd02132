//! The request path for one request, phase by phase, and its access-log line.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::HOST;
use http::{Request, Response, Version};
use http_body::{Body, Frame, SizeHint};
use rampart_config::Balance;
use rampart_telemetry::{
    AccessLog, AccessRecord, KeyValue, Metrics, PhaseTimes, RefusalLabels, RouteMetrics,
    SpanRecord, SpanRole, TraceExporter,
};

use crate::body::{BoxError, ProxyBody};
use crate::canonical::{self, Malformation};
use crate::error::{ErrorKind, ProxyError, Side};
use crate::forward;
use crate::h1::codec::HeadError;
use crate::h1::codec::PassedFields;
use crate::h1::server::{AmbiguousFraming, CheckFieldNames, CloseConnection, UnreadableHead};
use crate::h1::upgrade::OnUpgrade;
use crate::headers::{self, X_REQUEST_ID};
use crate::listener::ConnectionActivity;
use crate::phase::{AttemptSpan, Next, RequestContext, Verdict};
use crate::runtime::Runtime;

/// State shared by every connection of a gateway.
pub(crate) struct Shared {
    pub runtime: ArcSwap<Runtime>,
    pub metrics: Arc<Metrics>,
    pub access_log: AccessLog,
    /// Request metrics of requests no route matched.
    pub unrouted: RouteMetrics,
    /// The OTLP exporter, when tracing is configured.
    pub traces: Option<Arc<TraceExporter>>,
}

/// What a connection knows about itself.
pub(crate) struct ConnectionInfo {
    pub listener: Arc<str>,
    pub peer: SocketAddr,
    /// The peer's IP as a header value (canonical IPv4 for mapped addresses), for
    /// forwarding headers.
    pub peer_ip_value: http::HeaderValue,
    /// The peer's address as text, for the access log.
    pub peer_text: Arc<str>,
    pub scheme: &'static str,
    /// Idle tracking of HTTP/2 connections (HTTP/1.1 connections track their own); a
    /// request counts as activity until its response body ends.
    pub activity: Option<Arc<ConnectionActivity>>,
    /// The `Forwarded` value built for this connection's first host.
    pub forwarded: Arc<headers::ForwardedCache>,
    /// The host (lower case, without port) of the first authority requested on this
    /// connection.
    pub host: headers::FirstKeyCache<Box<str>, Arc<str>>,
}

impl ConnectionInfo {
    /// The port a client may leave out of the authority on this connection.
    fn default_port(&self) -> u16 {
        if self.scheme == "https" {
            443
        } else {
            80
        }
    }

    /// The host of `authority`, reused when it is the connection's first.
    fn host_of(&self, authority: &str) -> Arc<str> {
        self.host.get_or_build(
            |first| **first == *authority,
            || (authority.into(), host_without_port(authority).into()),
        )
    }
}

/// Serves one request: the response, with its fields as the upstream sent them when
/// they pass through untouched (the response's map then holds only what the proxy set
/// in it; [`PassedFields::fold_into`] joins the two).
pub(crate) async fn handle(
    shared: Arc<Shared>,
    conn: Arc<ConnectionInfo>,
    request: Request<ProxyBody>,
) -> (Response<LoggedBody>, Option<Box<PassedFields>>) {
    let received = Instant::now();
    let wall = crate::clock::wall_time(received);
    shared.metrics.in_flight.inc();
    if let Some(activity) = &conn.activity {
        activity
            .in_flight
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    let runtime = shared.runtime.load_full();
    let server = &runtime.config.server;
    let (mut parts, body) = request.into_parts();
    // A gRPC call (HTTP/2 only) is refused in gRPC's terms, and its deadline kept.
    let grpc = parts.version == Version::HTTP_2 && crate::grpc::is_grpc(&parts.headers);
    let grpc_deadline = grpc
        .then(|| crate::grpc::timeout(&parts.headers))
        .flatten()
        .and_then(|timeout| received.checked_add(timeout));
    // The one canonical request every phase below sees.
    let canonical = if let Some(UnreadableHead(error)) = parts.extensions.get() {
        Err(match error {
            HeadError::TooLarge => Malformation::HeadTooLarge,
            HeadError::Malformed(_) => Malformation::Head,
            HeadError::UnencodedTarget => Malformation::UnencodedTarget,
        })
    } else if parts.extensions.get::<AmbiguousFraming>().is_some() {
        Err(Malformation::Framing)
    } else {
        // Every HTTP/1.x request comes from Rampart's codec, which marks those whose
        // field names need the full check; HTTP/2 heads get it always.
        let names = if parts.version <= Version::HTTP_11
            && parts.extensions.get::<CheckFieldNames>().is_none()
        {
            canonical::FieldNames::Plain
        } else {
            canonical::FieldNames::Unchecked
        };
        canonical::canonicalize(
            &mut parts,
            runtime.normalization(&conn.listener),
            conn.default_port(),
            conn.host.first_key().map(|key| key.as_bytes()),
            names,
        )
    };
    let authority = canonical
        .is_ok()
        .then(|| parts.headers.get(HOST).and_then(|h| h.to_str().ok()))
        .flatten();
    let host = conn.host_of(authority.unwrap_or_default());
    let (request_id, trace) = headers::identify(&parts.headers, shared.traces.is_some());
    let mut ctx = RequestContext {
        request_id,
        trace,
        peer: conn.peer,
        client_ip: headers::client_ip(conn.peer.ip(), &parts.headers, &server.trusted_proxies),
        trusted_peer: headers::is_trusted(conn.peer.ip(), &server.trusted_proxies),
        scheme: conn.scheme,
        host,
        received,
        held: Vec::new(),
        attempts: 0,
        target: None,
        phases: PhaseTimes::default(),
        attempt_spans: None,
        principal: None,
        added: headers::AddedFields::default(),
        conn,
        upstream_started: None,
        upstream_finished: None,
        passed: None,
        grpc_deadline,
    };
    if shared.traces.is_some() && ctx.trace.as_ref().is_some_and(|t| t.sampled) {
        ctx.attempt_spans = Some(Vec::new());
    }
    let method = parts.method.clone();
    let path_and_query = parts.uri.path_and_query().cloned();
    let version = parts.version;
    // The route, as its index in the runtime's routes: borrowed from the runtime
    // snapshot this request holds, not counted as another owner.
    let mut route_index: Option<usize> = None;
    let result = match canonical {
        Err(malformation) => {
            shared
                .metrics
                .requests_refused
                .get_or_create(&RefusalLabels {
                    reason: malformation.slug(),
                })
                .inc();
            Err(ProxyError::new(
                ErrorKind::Malformed(malformation),
                malformation.title(),
            ))
        }
        Ok(()) => {
            run_phases(
                &runtime,
                &shared.metrics,
                &mut ctx,
                &mut route_index,
                parts,
                body,
            )
            .await
        }
    };
    let route_used = route_index
        .and_then(|i| runtime.routes.get(i))
        .map(|r| &**r);
    // One reading ends the upstream phase and times the response head: the last
    // attempt's end when nothing ran after it (a route without exchanges).
    let answered = match ctx.upstream_finished {
        Some(finished) if route_used.is_some_and(|r| r.exchanges.is_empty()) => finished,
        _ => Instant::now(),
    };
    if let Some(started) = ctx.upstream_started {
        ctx.phases.upstream = answered - started;
    }

    let request_id = ctx.request_id.to_str().unwrap_or("-");
    // The response's fields, when they pass through, are those of the last attempt.
    let (response, error, mut passed) = match result {
        // A gRPC call's answer ends by its deadline too.
        Ok(response) => match ctx.grpc_deadline {
            Some(deadline) => (
                response.map(|body| {
                    http_body_util::BodyExt::boxed(crate::grpc::DeadlineBody::new(body, deadline))
                }),
                None,
                ctx.passed.take(),
            ),
            None => (response, None, ctx.passed.take()),
        },
        Err(e) => {
            match e.side {
                Side::Client => tracing::debug!(request_id, error = %e, "request refused"),
                _ => tracing::warn!(request_id, error = %e, "request failed"),
            }
            let mut response = if grpc {
                crate::grpc::trailers_only(e.kind)
            } else {
                e.to_response(request_id)
            };
            if matches!(e.kind, ErrorKind::Malformed(_) | ErrorKind::BadRequest) {
                // What follows a message read one way by us may be read another way by
                // the client: the connection is not reused.
                response.extensions_mut().insert(CloseConnection);
            }
            (response, Some(e.kind.slug()), None)
        }
    };
    let (mut head, body) = response.into_parts();
    if let Some(route) = route_used {
        if !route.response_filters.is_empty() {
            let mut view = crate::phase::ResponseView::new(&mut head, &mut passed);
            for filter in &route.response_filters {
                filter.filter(&ctx, &mut view);
            }
        }
    }
    crate::h1::codec::set_response_field(
        &mut head,
        passed.as_deref_mut(),
        &X_REQUEST_ID,
        ctx.request_id.clone(),
    );
    // Permits a phase holds (bulkheads) last until the response head is ready.
    ctx.held.clear();

    let status = head.status.as_u16();
    let route_metrics = route_used.map_or(&shared.unrouted, |r| &r.metrics);
    let write_timeout = route_used.map_or(rampart_config::DEFAULT_CLIENT_WRITE_TIMEOUT, |r| {
        r.config.client_write_timeout
    });
    let (requests, duration) = route_metrics.series(
        &shared.metrics,
        rampart_telemetry::Method::from(&method),
        status,
    );
    requests.inc();
    duration.observe((answered - received).as_secs_f64());

    let trace = shared
        .traces
        .as_ref()
        .zip(ctx.attempt_spans.take())
        .zip(ctx.trace.as_ref())
        .map(|((exporter, attempts), trace)| {
            let route_name = route_used.map(|r| Arc::clone(&r.config.name));
            Box::new(PendingTrace {
                exporter: Arc::clone(exporter),
                trace_id: trace.trace_id_bytes,
                span_id: trace.span_id,
                parent: trace.parent_span_id,
                start: wall,
                name: format!("{method} {}", route_name.as_deref().unwrap_or("unrouted")),
                method: method.to_string(),
                path: path_and_query.as_ref().map_or("", |p| p.path()).to_string(),
                host: ctx.host.to_string(),
                route: route_name,
                request_id: request_id.to_string(),
                status,
                attempts,
            })
        });
    // What the line needs is moved out of the context, not cloned.
    let record = shared.access_log.enabled().then(|| {
        Box::new(PendingRecord {
            time: wall,
            request_id: ctx.request_id,
            trace_id: ctx.trace.as_ref().map(|t| t.trace_id_hex),
            method,
            host: ctx.host,
            path_and_query,
            protocol: version,
            route: route_index,
            runtime,
            target: ctx.target.take(),
            status,
            attempts: ctx.attempts,
            error,
            phases: ctx.phases,
            received,
        })
    });
    let response = Response::from_parts(
        head,
        LoggedBody {
            inner: body,
            bytes: 0,
            record,
            shared,
            conn: ctx.conn,
            trace,
            write_timeout,
        },
    );
    (response, passed)
}

fn host_without_port(authority: &str) -> String {
    let host = if authority.starts_with('[') {
        authority
            .split(']')
            .next()
            .map(|h| format!("{h}]"))
            .unwrap_or_default()
    } else {
        authority
            .rsplit_once(':')
            .map_or(authority, |(h, _)| h)
            .to_string()
    };
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        host.to_ascii_lowercase()
    } else {
        host
    }
}

async fn run_phases(
    runtime: &Runtime,
    metrics: &Metrics,
    ctx: &mut RequestContext,
    route_index: &mut Option<usize>,
    mut parts: http::request::Parts,
    body: ProxyBody,
) -> Result<Response<ProxyBody>, ProxyError> {
    // route (timed from arrival: one clock read per phase boundary)
    let (index, route) = runtime
        .select(
            ctx.listener(),
            &ctx.host,
            &parts.method,
            parts.uri.path(),
            &parts.headers,
        )
        .ok_or_else(|| ProxyError::new(ErrorKind::NoRoute, "no route matched"))?;
    *route_index = Some(index);
    if parts.extensions.get::<OnUpgrade>().is_some()
        && !canonical::upgrade_allowed(&parts.headers, &route.config.upgrades)
    {
        // A protocol the route does not allow: the request goes on as plain HTTP/1.1
        // (forwarding drops `Upgrade` with the other hop-by-hop fields).
        parts.extensions.remove::<OnUpgrade>();
    }
    let routed = Instant::now();
    ctx.phases.route = routed - ctx.received;
    // guards
    for guard in &route.guards {
        if let Verdict::Answer(response) = guard.check(&mut parts, ctx).verdict().await? {
            ctx.phases.guards = routed.elapsed();
            return Ok(response);
        }
    }
    let started = if route.guards.is_empty() {
        routed
    } else {
        let guarded = Instant::now();
        ctx.phases.guards = guarded - routed;
        guarded
    };
    // upstream select + forward
    let hash = match &route.pool.config.balance {
        Balance::ConsistentHash(key) => Some(forward::hash_key(key, ctx, &parts.headers)),
        _ => None,
    };
    ctx.upstream_started = Some(started);
    if route.exchanges.is_empty() {
        // Straight to forwarding, without boxing a future for the exchange chain or
        // moving the head into a request.
        forward::forward_parts(route, ctx, &mut parts, body, hash, metrics, started).await
    } else {
        let next = Next {
            route,
            hash,
            metrics,
            inner: &route.exchanges,
        };
        next.forward(Request::from_parts(parts, body), ctx).await
    }
}

/// Everything the access-log line needs, captured when the response head is ready.
pub(crate) struct PendingRecord {
    time: SystemTime,
    request_id: http::HeaderValue,
    trace_id: Option<[u8; 32]>,
    method: http::Method,
    host: Arc<str>,
    path_and_query: Option<http::uri::PathAndQuery>,
    protocol: Version,
    /// The route's index in `runtime`'s routes.
    route: Option<usize>,
    /// The runtime snapshot the request was served with.
    runtime: Arc<Runtime>,
    target: Option<Arc<str>>,
    status: u16,
    attempts: u32,
    error: Option<&'static str>,
    phases: PhaseTimes,
    received: Instant,
}

/// The response body sent to the client; counts bytes and writes the access-log
/// line when the body ends (or the client goes away).
pub(crate) struct LoggedBody {
    inner: ProxyBody,
    bytes: u64,
    record: Option<Box<PendingRecord>>,
    /// The gateway's shared state (metrics, access log) and the request's connection,
    /// handed over by the request rather than cloned for it.
    shared: Arc<Shared>,
    conn: Arc<ConnectionInfo>,
    trace: Option<Box<PendingTrace>>,
    /// The route's `timeouts.client_write`.
    write_timeout: std::time::Duration,
}

impl LoggedBody {
    /// Notes why the response did not reach its end (the first reason counts).
    fn note_error(&mut self, reason: &'static str) {
        if let Some(record) = self.record.as_mut() {
            record.error.get_or_insert(reason);
        }
    }
}

impl crate::h1::server::SendLimits for LoggedBody {
    fn write_timeout(&self) -> std::time::Duration {
        self.write_timeout
    }

    fn abandoned(&mut self, reason: &'static str) {
        self.note_error(reason);
    }
}

/// The spans of one request, exported when its response body ends.
pub(crate) struct PendingTrace {
    exporter: Arc<TraceExporter>,
    trace_id: [u8; 16],
    span_id: [u8; 8],
    parent: Option<[u8; 8]>,
    start: SystemTime,
    name: String,
    method: String,
    path: String,
    host: String,
    route: Option<Arc<str>>,
    request_id: String,
    status: u16,
    attempts: Vec<AttemptSpan>,
}

impl PendingTrace {
    fn export(self) {
        let end = SystemTime::now();
        let mut attributes = vec![
            KeyValue::new("http.request.method", self.method),
            KeyValue::new("url.path", self.path),
            KeyValue::new("server.address", self.host),
            KeyValue::new("http.response.status_code", i64::from(self.status)),
            KeyValue::new("rampart.request_id", self.request_id),
        ];
        if let Some(route) = &self.route {
            attributes.push(KeyValue::new("http.route", route.to_string()));
        }
        self.exporter.record(SpanRecord {
            trace_id: self.trace_id,
            span_id: self.span_id,
            parent_span_id: self.parent,
            parent_is_remote: true,
            name: self.name.into(),
            role: SpanRole::Server,
            start: self.start,
            end,
            attributes,
            error: self.status >= 500,
        });
        for attempt in self.attempts {
            let mut attributes = vec![KeyValue::new("server.address", attempt.target)];
            if let Some(status) = attempt.status {
                attributes.push(KeyValue::new(
                    "http.response.status_code",
                    i64::from(status),
                ));
            }
            if let Some(error) = attempt.error {
                attributes.push(KeyValue::new("error.type", error));
            }
            self.exporter.record(SpanRecord {
                trace_id: self.trace_id,
                span_id: attempt.span_id,
                parent_span_id: Some(self.span_id),
                parent_is_remote: false,
                name: "upstream attempt".into(),
                role: SpanRole::Client,
                start: attempt.start,
                end: attempt.end,
                attributes,
                error: attempt.error.is_some() || attempt.status.is_some_and(|s| s >= 500),
            });
        }
    }
}

impl Body for LoggedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.bytes += data.len() as u64;
                }
            }
            // The client's response is cut off (HTTP/1.1: closed before its end;
            // HTTP/2: reset).
            Poll::Ready(Some(Err(e))) => {
                let reason = if e.is::<crate::body::BodyIdleTimeout>() {
                    "upstream-body-timeout"
                } else {
                    "response-body"
                };
                tracing::debug!("response body failed: {e}");
                self.note_error(reason);
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

impl Drop for LoggedBody {
    fn drop(&mut self) {
        self.shared.metrics.in_flight.dec();
        if let Some(activity) = &self.conn.activity {
            activity
                .in_flight
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        }
        if let Some(trace) = self.trace.take() {
            trace.export();
        }
        let Some(r) = self.record.take() else { return };
        let route = r.route.and_then(|i| r.runtime.routes.get(i));
        let protocol = match r.protocol {
            Version::HTTP_09 => "HTTP/0.9",
            Version::HTTP_10 => "HTTP/1.0",
            Version::HTTP_11 => "HTTP/1.1",
            Version::HTTP_2 => "HTTP/2",
            Version::HTTP_3 => "HTTP/3",
            _ => "HTTP",
        };
        self.shared.access_log.write(&AccessRecord {
            time: r.time,
            request_id: r.request_id.to_str().unwrap_or("-"),
            trace_id: r
                .trace_id
                .as_ref()
                .map(|t| std::str::from_utf8(t).unwrap_or_default()),
            listener: &self.conn.listener,
            client: &self.conn.peer_text,
            method: r.method.as_str(),
            host: &r.host,
            path: r.path_and_query.as_ref().map_or("", |p| p.path()),
            protocol,
            route: route.map(|route| &*route.config.name),
            upstream: route.map(|route| route.config.upstream.as_str()),
            target: r.target.as_deref(),
            status: r.status,
            attempts: r.attempts,
            bytes_sent: self.bytes,
            error: r.error,
            phases: r.phases,
            duration: r.received.elapsed(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::{host_without_port, ConnectionInfo};
    use std::sync::Arc;

    #[test]
    fn a_connections_host_follows_its_authority() {
        let peer: std::net::SocketAddr = "10.0.0.1:5000".parse().expect("address");
        let conn = ConnectionInfo {
            listener: "public".into(),
            peer,
            peer_ip_value: http::HeaderValue::from_static("10.0.0.1"),
            peer_text: "10.0.0.1:5000".into(),
            scheme: "http",
            activity: None,
            forwarded: Arc::default(),
            host: Default::default(),
        };
        let first = conn.host_of("A.test:8080");
        assert_eq!(&*first, "a.test");
        // The first authority's host is kept and handed out again, not rebuilt.
        assert!(Arc::ptr_eq(&first, &conn.host_of("A.test:8080")));
        // Another authority gets its own host, every time, and does not displace it.
        assert_eq!(&*conn.host_of("b.test"), "b.test");
        assert_eq!(&*conn.host_of("[::1]:80"), "[::1]");
        assert!(Arc::ptr_eq(&first, &conn.host_of("A.test:8080")));
        // The cache is keyed by the authority as sent, port included.
        assert_eq!(&*conn.host_of("a.test:9090"), "a.test");
        assert!(!Arc::ptr_eq(&first, &conn.host_of("a.test:9090")));
    }

    #[test]
    fn strips_ports_from_hosts() {
        assert_eq!(host_without_port("Example.COM:8080"), "example.com");
        assert_eq!(host_without_port("example.com"), "example.com");
        assert_eq!(host_without_port("[::1]:80"), "[::1]");
    }
}
