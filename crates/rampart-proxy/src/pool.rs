//! Upstream pools: targets, load balancing, health, and the resilience state
//! (breaker, outlier detection, bulkhead, retry budget) of one upstream.

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use http::header::HOST;
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderValue, Method, Request, Response, Version};
use http_body_util::BodyExt;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use parking_lot::Mutex;
use rampart_config::{Balance, Endpoint, Protocol, Upstream, UpstreamTls};
use rampart_resilience::{
    Admission, AttemptOutcome, BreakerState, Bulkhead, CircuitBreaker, OutlierDetector, RetryBudget,
};
use rampart_telemetry::{Metrics, TargetLabels};
use rustls_pki_types::ServerName;

use crate::body::{empty, BoxError, ProxyBody};
pub use crate::h1::client::Outbound;
use crate::h1::client::{ConnectTo, SendError, TargetClient};
use crate::tls::upstream_client_config;

/// hyper's client for one HTTP/2 target.
type Http2Client = Client<TargetConnector, ProxyBody>;

/// How requests reach a pool's targets.
enum Transport {
    /// HTTP/1.1, plain or TLS: Rampart's own client, one connection pool per target
    /// (`None` for the built-in echo target).
    Http1(Vec<Option<Arc<TargetClient>>>),
    /// HTTP/2 by ALPN or h2c: hyper's multiplexing client, one per target (`None` for
    /// the built-in echo target).
    Http2(Vec<Option<Http2Client>>),
}

/// Connects every request of one target's HTTP/2 client to that target, whatever
/// authority the request's URI names: over HTTP/2 the URI's authority is the
/// `:authority` the upstream sees (the pool's host policy), not where to connect.
/// The client keeps its connections by that authority, within the one target.
#[derive(Clone)]
struct TargetConnector {
    inner: HttpsConnector<HttpConnector>,
    /// `scheme://authority` of the target: the TLS server name comes from it too.
    target: http::Uri,
}

impl tower_service::Service<http::Uri> for TargetConnector {
    type Response = <HttpsConnector<HttpConnector> as tower_service::Service<http::Uri>>::Response;
    type Error = <HttpsConnector<HttpConnector> as tower_service::Service<http::Uri>>::Error;
    type Future = <HttpsConnector<HttpConnector> as tower_service::Service<http::Uri>>::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, _authority: http::Uri) -> Self::Future {
        self.inner.call(self.target.clone())
    }
}

/// Virtual nodes per unit of weight on the consistent-hash ring.
const RING_POINTS_PER_WEIGHT: u32 = 64;

/// One target of a pool and its live state.
#[derive(Debug)]
pub struct TargetSlot {
    /// Where it is.
    pub endpoint: Endpoint,
    /// `scheme://authority` (or `builtin:echo`), for logs and metrics.
    pub label: Arc<str>,
    /// Host header value for `host_header = "target"`.
    pub authority_header: Option<HeaderValue>,
    weight: u32,
    /// Attempts in flight (for least-connections), without atomic read-modify-writes.
    in_flight: rampart_telemetry::StripedGauge,
    healthy: AtomicBool,
    /// Nanoseconds after the pool's epoch until which the target is ejected.
    ejected_until: AtomicU64,
}

/// Marks a target busy (for least-connections) while held.
#[derive(Debug)]
pub struct InFlight<'a> {
    pool: &'a Pool,
    index: usize,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.pool.targets[self.index].in_flight.dec();
    }
}

/// Stops a background task when dropped.
#[derive(Debug)]
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What an attempt's outcome feeds: outlier detection and the circuit breaker.
struct PoolHealth {
    outlier: OutlierDetector,
    breaker: Option<CircuitBreaker>,
}

/// An upstream pool.
pub struct Pool {
    /// The pool's config.
    pub config: Arc<Upstream>,
    /// Targets, in config order.
    pub targets: Vec<TargetSlot>,
    schedule: Vec<usize>,
    cursor: AtomicUsize,
    ring: Vec<(u64, usize)>,
    transport: Transport,
    /// Outlier detection and the circuit breaker, under one lock: an attempt's
    /// outcome updates both at once.
    health: Mutex<PoolHealth>,
    /// Whether the breaker (if any) is closed, as it was last left under `health`'s
    /// lock: a closed breaker admits without the lock.
    breaker_closed: AtomicBool,
    /// Concurrency limit.
    pub bulkhead: Bulkhead,
    /// Retry budget.
    pub retry_budget: RetryBudget,
    epoch: Instant,
    /// Attempts sent to this pool (a handle into the metric family).
    pub attempts_counter: rampart_telemetry::StripedCounter,
    metrics: Arc<Metrics>,
    health_task: Mutex<Option<AbortOnDrop>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("name", &self.config.name)
            .finish()
    }
}

/// TLS settings for a pool's HTTP/1.1 targets: its [`UpstreamTls`], ALPN `http/1.1`.
fn http1_tls(tls: &UpstreamTls) -> Result<tokio_rustls::TlsConnector, rustls::Error> {
    let config = upstream_client_config(tls, &[b"http/1.1"])?;
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// Logs TLS settings that could not be made into a client config: the pool's `https`
/// targets then fail to connect. The config step checks the same settings, so this
/// takes a change in what the TLS library accepts.
fn unusable_tls(config: &Upstream, error: &rustls::Error) {
    tracing::error!(upstream = %config.name, %error, "the upstream's TLS settings are unusable; its https targets cannot be reached");
}

/// The name a target's certificate is verified against and sent as SNI: the pool's
/// `server_name`, else the target's host (an IP address verifies an IP SAN).
fn server_name(tls: &UpstreamTls, host: &str) -> Option<ServerName<'static>> {
    match &tls.server_name {
        Some(name) => Some(name.clone()),
        None => ServerName::try_from(
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
        )
        .ok(),
    }
}

/// Builds the transport for a pool's protocol, targets and timeouts.
fn build_transport(config: &Upstream, targets: &[TargetSlot]) -> Transport {
    if config.protocol == Protocol::Http1 {
        let tls = targets
            .iter()
            .any(|t| matches!(&t.endpoint, Endpoint::Http { scheme, .. } if scheme == &http::uri::Scheme::HTTPS))
            .then(|| http1_tls(&config.tls).inspect_err(|e| unusable_tls(config, e)).ok())
            .flatten();
        let clients = targets
            .iter()
            .map(|t| {
                let Endpoint::Http { scheme, authority } = &t.endpoint else {
                    return None;
                };
                let https = scheme == &http::uri::Scheme::HTTPS;
                let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
                let host = authority.host();
                let connect = ConnectTo {
                    authority: format!("{host}:{port}"),
                    tls: if https {
                        Some((tls.clone()?, server_name(&config.tls, host)?))
                    } else {
                        None
                    },
                    connect_timeout: config.connect_timeout,
                };
                Some(Arc::new(TargetClient::new(
                    connect,
                    config.pool_max_idle_per_target,
                    config.pool_idle_timeout,
                )))
            })
            .collect();
        return Transport::Http1(clients);
    }
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(config.connect_timeout));
    http.set_keepalive(Some(Duration::from_secs(60)));
    let tls = match upstream_client_config(&config.tls, &[]) {
        Ok(tls) => tls,
        Err(e) => {
            unusable_tls(config, &e);
            return Transport::Http2(targets.iter().map(|_| None).collect());
        }
    };
    // hyper-rustls sets the ALPN protocols (h2, http/1.1) itself.
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http();
    let builder = match &config.tls.server_name {
        Some(name) => builder
            .with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name.clone())),
        None => builder,
    };
    let builder = builder.enable_all_versions().wrap_connector(http);
    let mut client = Client::builder(TokioExecutor::new());
    client
        .pool_idle_timeout(config.pool_idle_timeout)
        .pool_max_idle_per_host(config.pool_max_idle_per_target)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new());
    if config.protocol == Protocol::H2c {
        client.http2_only(true);
    }
    let clients = targets
        .iter()
        .map(|t| {
            let Endpoint::Http { scheme, authority } = &t.endpoint else {
                return None;
            };
            let target = http::Uri::builder()
                .scheme(scheme.clone())
                .authority(authority.clone())
                .path_and_query("/")
                .build()
                .ok()?;
            Some(client.build(TargetConnector {
                inner: builder.clone(),
                target,
            }))
        })
        .collect();
    Transport::Http2(clients)
}

/// A smooth weighted round-robin schedule (nginx's algorithm), precomputed.
fn schedule(weights: &[u32]) -> Vec<usize> {
    let total: i64 = weights.iter().map(|w| i64::from(*w)).sum();
    let mut current = vec![0i64; weights.len()];
    let mut out = Vec::with_capacity(total as usize);
    for _ in 0..total {
        for (c, w) in current.iter_mut().zip(weights) {
            *c += i64::from(*w);
        }
        let (best, _) = current
            .iter()
            .enumerate()
            .max_by_key(|(i, c)| (**c, std::cmp::Reverse(*i)))
            .unwrap_or((0, &0));
        current[best] -= total;
        out.push(best);
    }
    out
}

/// A stable 64-bit hash.
pub fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    bytes.hash(&mut hasher);
    hasher.finish()
}

fn ring(targets: &[TargetSlot]) -> Vec<(u64, usize)> {
    let mut ring = Vec::new();
    for (i, t) in targets.iter().enumerate() {
        for point in 0..t.weight * RING_POINTS_PER_WEIGHT {
            ring.push((hash_bytes(format!("{}#{point}", t.label).as_bytes()), i));
        }
    }
    ring.sort_unstable();
    ring
}

/// Makes `host` the request's `Host` (none: the field is left out).
pub(crate) fn set_host(headers: &mut HeaderMap, host: Option<&HeaderValue>) {
    match host {
        Some(host) => {
            headers.insert(HOST, host.clone());
        }
        None => {
            headers.remove(HOST);
        }
    }
}

impl Pool {
    /// A pool for `config`; call [`Pool::start_health_checks`] once it is in an `Arc`.
    pub fn new(config: Arc<Upstream>, metrics: Arc<Metrics>) -> Self {
        let targets: Vec<TargetSlot> = config
            .targets
            .iter()
            .map(|t| TargetSlot {
                label: t.endpoint.to_string().into(),
                authority_header: match &t.endpoint {
                    Endpoint::Http { authority, .. } => {
                        HeaderValue::from_str(authority.as_str()).ok()
                    }
                    Endpoint::Echo => None,
                },
                endpoint: t.endpoint.clone(),
                weight: t.weight,
                in_flight: Default::default(),
                healthy: AtomicBool::new(true),
                ejected_until: AtomicU64::new(0),
            })
            .collect();
        let weights: Vec<u32> = targets.iter().map(|t| t.weight).collect();
        for t in &targets {
            metrics
                .target_healthy
                .get_or_create(&target_labels(&config.name, t))
                .set(1);
        }
        let attempts_counter = metrics
            .upstream_attempts
            .get_or_create(&rampart_telemetry::UpstreamLabels {
                upstream: config.name.clone(),
            })
            .clone();
        Self {
            schedule: schedule(&weights),
            cursor: AtomicUsize::new(0),
            ring: ring(&targets),
            transport: build_transport(&config, &targets),
            breaker_closed: AtomicBool::new(true),
            health: Mutex::new(PoolHealth {
                outlier: OutlierDetector::new(config.outlier.clone(), targets.len()),
                breaker: config.breaker.clone().map(CircuitBreaker::new),
            }),
            bulkhead: Bulkhead::new(config.max_concurrent_requests),
            retry_budget: RetryBudget::new(config.retry_budget),
            epoch: Instant::now(),
            attempts_counter,
            metrics,
            health_task: Mutex::new(None),
            targets,
            config,
        }
    }

    /// Sends a request to HTTP target `index` and waits for the response head.
    pub async fn send(
        &self,
        index: usize,
        request: Outbound<'_>,
    ) -> Result<Response<ProxyBody>, SendError> {
        let target = &self.targets[index];
        match &self.transport {
            Transport::Http1(clients) => match clients.get(index).and_then(Option::as_ref) {
                Some(client) => client.send(request).await,
                None => Err(SendError::Connect(format!(
                    "{} is not an HTTP target",
                    target.label
                ))),
            },
            Transport::Http2(clients) => {
                let Outbound {
                    method,
                    path_and_query,
                    host,
                    headers,
                    added,
                    te_trailers,
                    upgrade: _,
                    body,
                    response_fields: _,
                    now: _,
                    deadline,
                    body_idle,
                    fresh: _,
                    passed: _,
                } = request;
                let (Endpoint::Http { scheme, authority }, Some(client)) = (
                    &target.endpoint,
                    clients.get(index).and_then(Option::as_ref),
                ) else {
                    return Err(SendError::Connect(format!(
                        "{} is not an HTTP target",
                        target.label
                    )));
                };
                // The host the pool's policy chose is the request's `:authority`, and
                // no `host` field is sent beside it (RFC 9113 §8.3.1: a `host` must
                // equal `:authority`; gRPC servers refuse one that does not). A host
                // that is not an authority leaves the target's own.
                let authority = host
                    .and_then(|h| http::uri::Authority::try_from(h.as_bytes()).ok())
                    .unwrap_or_else(|| authority.clone());
                let uri = http::Uri::builder()
                    .scheme(scheme.clone())
                    .authority(authority)
                    .path_and_query(path_and_query.clone())
                    .build()
                    .map_err(|e| SendError::Connect(e.to_string()))?;
                let mut request = Request::new(body);
                *request.method_mut() = method.clone();
                *request.uri_mut() = uri;
                *request.headers_mut() = headers.clone();
                added.clone().merge_into(request.headers_mut());
                set_host(request.headers_mut(), None);
                if te_trailers {
                    request
                        .headers_mut()
                        .insert(http::header::TE, HeaderValue::from_static("trailers"));
                }
                if self.config.protocol == Protocol::H2c {
                    *request.version_mut() = Version::HTTP_2;
                }
                let Ok(answer) = tokio::time::timeout_at(deadline, client.request(request)).await
                else {
                    return Err(SendError::Timeout);
                };
                match answer {
                    Ok(response) => {
                        // A body the upstream stops sending fails after `body_idle`
                        // (the client's stream is reset, the upstream's too).
                        Ok(response.map(|b| {
                            crate::body::IdleBody::new(
                                b.map_err(|e| -> BoxError { Box::new(e) }),
                                body_idle,
                            )
                            .boxed()
                        }))
                    }
                    Err(e) if e.is_connect() => Err(SendError::Connect(format!("{e:?}"))),
                    Err(e) => Err(SendError::Protocol {
                        detail: format!("{e:?}"),
                        retryable: true,
                    }),
                }
            }
        }
    }

    /// Whether target `i` may receive traffic now.
    pub fn is_available(&self, i: usize, now: Instant) -> bool {
        let t = &self.targets[i];
        t.healthy.load(Ordering::Relaxed)
            && self.nanos_since_epoch(now) >= t.ejected_until.load(Ordering::Relaxed)
    }

    /// Whether at least one target may receive traffic.
    pub fn has_available_target(&self) -> bool {
        let now = Instant::now();
        (0..self.targets.len()).any(|i| self.is_available(i, now))
    }

    fn nanos_since_epoch(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_nanos() as u64
    }

    /// Chooses a target: `hash` for consistent hashing, avoiding `exclude` when another is available.
    pub fn pick(&self, hash: Option<u64>, exclude: Option<usize>, now: Instant) -> Option<usize> {
        let n = self.targets.len();
        let usable = |i: usize| self.is_available(i, now) && Some(i) != exclude;
        let chosen = match &self.config.balance {
            // One target: nothing to rotate, compare or hash.
            _ if n == 1 => Some(0).filter(|&i| usable(i)),
            Balance::RoundRobin => {
                let start = self.cursor.fetch_add(1, Ordering::Relaxed);
                (0..self.schedule.len())
                    .map(|k| self.schedule[(start + k) % self.schedule.len()])
                    .find(|&i| usable(i))
            }
            Balance::LeastConnections => {
                let start = self.cursor.fetch_add(1, Ordering::Relaxed);
                (0..n)
                    .map(|k| (start + k) % n)
                    .filter(|&i| usable(i))
                    .min_by(|&a, &b| {
                        let load = |i: usize| {
                            let t = &self.targets[i];
                            (t.in_flight.get().max(0) as u64 * 1000) / u64::from(t.weight.max(1))
                        };
                        load(a).cmp(&load(b))
                    })
            }
            Balance::ConsistentHash(_) => {
                let key = hash.unwrap_or(0);
                let start = self.ring.partition_point(|(h, _)| *h < key);
                (0..self.ring.len())
                    .map(|k| self.ring[(start + k) % self.ring.len()].1)
                    .find(|&i| usable(i))
            }
        };
        // With every other target unusable, the excluded one is still better than nothing.
        chosen.or_else(|| exclude.filter(|&i| self.is_available(i, now)))
    }

    /// Marks target `index` busy until the guard drops.
    pub fn start(&self, index: usize) -> InFlight<'_> {
        self.targets[index].in_flight.inc();
        InFlight { pool: self, index }
    }

    /// Whether the circuit breaker (if any) admits an attempt at `now`.
    pub fn admit(&self, now: Instant) -> Admission {
        // Without a breaker, or with it closed, nothing to lock.
        if self.config.breaker.is_none() || self.breaker_closed.load(Ordering::Acquire) {
            return Admission::Allowed;
        }
        self.health
            .lock()
            .breaker
            .as_mut()
            .map_or(Admission::Allowed, |b| b.try_acquire(now))
    }

    /// The circuit breaker's state at `now`, if the pool has one.
    pub fn breaker_state(&self, now: Instant) -> Option<BreakerState> {
        self.health.lock().breaker.as_ref().map(|b| b.state(now))
    }

    /// Feeds an attempt's outcome to outlier detection and, with whether it counts as
    /// a success and was a half-open probe, to the circuit breaker.
    pub fn record(
        &self,
        index: usize,
        now: Instant,
        outcome: AttemptOutcome,
        success: bool,
        probe: bool,
    ) {
        let ejected = {
            let mut health = self.health.lock();
            if let Some(breaker) = &mut health.breaker {
                breaker.on_result(now, success, probe);
                self.breaker_closed.store(
                    breaker.state(now) == BreakerState::Closed,
                    Ordering::Release,
                );
            }
            health.outlier.record(index, now, outcome)
        };
        if let Some(duration) = ejected {
            let t = &self.targets[index];
            t.ejected_until
                .store(self.nanos_since_epoch(now + duration), Ordering::Relaxed);
            let labels = target_labels(&self.config.name, t);
            self.metrics.ejections.get_or_create(&labels).inc();
            tracing::warn!(upstream = %self.config.name, target = %t.label, ?duration, "target ejected after repeated failures");
        }
    }

    /// Updates the health and breaker gauges.
    pub fn refresh_gauges(&self) {
        let now = Instant::now();
        for (i, t) in self.targets.iter().enumerate() {
            let value = i64::from(self.is_available(i, now));
            self.metrics
                .target_healthy
                .get_or_create(&target_labels(&self.config.name, t))
                .set(value);
        }
        if let Some(state) = self.breaker_state(now) {
            let state = state.as_gauge();
            self.metrics
                .breaker_state
                .get_or_create(&rampart_telemetry::UpstreamLabels {
                    upstream: self.config.name.clone(),
                })
                .set(state);
        }
    }

    /// Starts active health checks, if configured. The task ends with the pool.
    pub fn start_health_checks(self: &Arc<Self>) {
        let Some(check) = self.config.health_check.clone() else {
            return;
        };
        let weak: Weak<Pool> = Arc::downgrade(self);
        let task = tokio::spawn(async move {
            let mut passes: Vec<u32> = Vec::new();
            let mut failures: Vec<u32> = Vec::new();
            let mut ticker = tokio::time::interval(check.interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                let Some(pool) = weak.upgrade() else { return };
                passes.resize(pool.targets.len(), 0);
                failures.resize(pool.targets.len(), 0);
                let probes = pool
                    .targets
                    .iter()
                    .enumerate()
                    .map(|(i, t)| probe(&pool, i, t, &check.path, check.timeout));
                let results = futures_util::future::join_all(probes).await;
                for (i, ok) in results.into_iter().enumerate() {
                    let t = &pool.targets[i];
                    let was_healthy = t.healthy.load(Ordering::Relaxed);
                    if ok {
                        passes[i] += 1;
                        failures[i] = 0;
                        if !was_healthy && passes[i] >= check.healthy_threshold {
                            t.healthy.store(true, Ordering::Relaxed);
                            tracing::info!(upstream = %pool.config.name, target = %t.label, "target healthy again");
                        }
                    } else {
                        failures[i] += 1;
                        passes[i] = 0;
                        if was_healthy && failures[i] >= check.unhealthy_threshold {
                            t.healthy.store(false, Ordering::Relaxed);
                            tracing::warn!(upstream = %pool.config.name, target = %t.label, "target failed its health checks");
                        }
                    }
                }
                pool.refresh_gauges();
            }
        });
        *self.health_task.lock() = Some(AbortOnDrop(task.abort_handle()));
    }
}

fn target_labels(upstream: &str, t: &TargetSlot) -> TargetLabels {
    TargetLabels {
        upstream: upstream.to_string(),
        target: t.label.to_string(),
    }
}

/// One health check: GET `path` must answer 2xx or 3xx within `timeout`.
async fn probe(
    pool: &Pool,
    index: usize,
    target: &TargetSlot,
    path: &str,
    timeout: Duration,
) -> bool {
    if !matches!(target.endpoint, Endpoint::Http { .. }) {
        return true;
    }
    let Ok(path) = PathAndQuery::try_from(path) else {
        return false;
    };
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::USER_AGENT,
        HeaderValue::from_static("rampart-health-check"),
    );
    let check = async {
        let response = pool
            .send(
                index,
                Outbound {
                    method: &Method::GET,
                    path_and_query: &path,
                    host: target.authority_header.as_ref(),
                    headers: &headers,
                    added: &crate::headers::AddedFields::default(),
                    te_trailers: false,
                    upgrade: false,
                    body: empty(),
                    response_fields: crate::h1::codec::ResponseFields::PassThrough,
                    now: Instant::now(),
                    deadline: tokio::time::Instant::now() + timeout,
                    body_idle: timeout,
                    fresh: false,
                    passed: &mut None,
                },
            )
            .await
            .ok()?;
        let status = response.status();
        // Read the body so the connection can be kept.
        let _ = crate::body::collect_limited(response.into_body(), 64 * 1024).await;
        Some(status.is_success() || status.is_redirection())
    };
    matches!(tokio::time::timeout(timeout, check).await, Ok(Some(true)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smooth_weighted_schedule_interleaves() {
        assert_eq!(schedule(&[5, 1, 1]), vec![0, 0, 1, 0, 2, 0, 0]);
        assert_eq!(schedule(&[1, 1]), vec![0, 1]);
    }
}
