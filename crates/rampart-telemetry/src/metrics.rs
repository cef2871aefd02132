//! The metrics every Rampart instance exports, in one registry.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::striped::{StripedCounter, StripedGauge, StripedHistogram};

/// Labels of per-route request metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// Route name (`none` when no route matched).
    pub route: String,
    /// Request method (standard methods, else `OTHER`).
    pub method: Method,
    /// `1xx` … `5xx`.
    pub status: &'static str,
}

/// Request method as a bounded label.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(clippy::upper_case_acronyms, missing_docs)]
pub enum Method {
    GET,
    HEAD,
    POST,
    PUT,
    PATCH,
    DELETE,
    OPTIONS,
    CONNECT,
    TRACE,
    OTHER,
}

impl From<&http::Method> for Method {
    fn from(m: &http::Method) -> Self {
        match m.as_str() {
            "GET" => Method::GET,
            "HEAD" => Method::HEAD,
            "POST" => Method::POST,
            "PUT" => Method::PUT,
            "PATCH" => Method::PATCH,
            "DELETE" => Method::DELETE,
            "OPTIONS" => Method::OPTIONS,
            "CONNECT" => Method::CONNECT,
            "TRACE" => Method::TRACE,
            _ => Method::OTHER,
        }
    }
}

impl Method {
    const COUNT: usize = 10;

    fn index(self) -> usize {
        self as usize
    }
}

/// Index of a status class (`1xx` = 0 … `5xx` = 4).
fn status_index(status: u16) -> usize {
    usize::from(status.clamp(100, 599) / 100 - 1)
}

/// The request counter and duration histogram of one route, method and status class.
pub type RequestSeries = (StripedCounter, StripedHistogram);

/// Per-route handles into the request metric families, created on first use, so
/// the request path skips the label hashing and allocation of a family lookup.
pub struct RouteMetrics {
    route: String,
    series: [std::sync::OnceLock<RequestSeries>; Method::COUNT * 5],
}

impl RouteMetrics {
    /// Handles for `route` (`none` for requests that matched no route).
    pub fn new(route: &str) -> Self {
        Self {
            route: route.to_string(),
            series: std::array::from_fn(|_| std::sync::OnceLock::new()),
        }
    }

    /// The series for one method and status.
    pub fn series(&self, metrics: &Metrics, method: Method, status: u16) -> &RequestSeries {
        self.series[method.index() * 5 + status_index(status)].get_or_init(|| {
            let labels = RouteLabels {
                route: self.route.clone(),
                method,
                status: status_class(status),
            };
            (
                metrics.requests.get_or_create(&labels).clone(),
                metrics.request_duration.get_or_create(&labels).clone(),
            )
        })
    }
}

/// Labels of per-upstream metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamLabels {
    /// Upstream pool name.
    pub upstream: String,
}

/// Labels of per-target metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TargetLabels {
    /// Upstream pool name.
    pub upstream: String,
    /// Target URL.
    pub target: String,
}

/// Labels of breaker and bulkhead metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BreakerLabels {
    /// `route` or `upstream`.
    pub scope: &'static str,
    /// Route or upstream name.
    pub name: String,
}

/// `1xx` … `5xx` for a status code.
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// Every metric Rampart exports.
pub struct Metrics {
    registry: Registry,
    /// Requests answered, by route, method and status class.
    pub requests: Family<RouteLabels, StripedCounter>,
    /// Request duration until response headers, by route, method and status class.
    pub request_duration: Family<RouteLabels, StripedHistogram>,
    /// Requests in flight.
    pub in_flight: StripedGauge,
    /// Upstream attempts by upstream (first tries and retries).
    pub upstream_attempts: Family<UpstreamLabels, StripedCounter>,
    /// Retries sent, by upstream.
    pub retries: Family<UpstreamLabels, Counter>,
    /// Retries refused by the retry budget, by upstream.
    pub retry_budget_exhausted: Family<UpstreamLabels, Counter>,
    /// Target health (1 healthy, 0 unhealthy or ejected).
    pub target_healthy: Family<TargetLabels, Gauge>,
    /// Outlier ejections, by target.
    pub ejections: Family<TargetLabels, Counter>,
    /// Breaker state by upstream (0 closed, 1 half-open, 2 open).
    pub breaker_state: Family<UpstreamLabels, Gauge>,
    /// Requests refused by an open breaker, by upstream.
    pub breaker_rejections: Family<UpstreamLabels, Counter>,
    /// Requests refused by a full bulkhead, by scope.
    pub bulkhead_rejections: Family<BreakerLabels, Counter>,
    /// Config reloads that were applied.
    pub reloads_ok: Counter,
    /// Config reloads that were refused.
    pub reloads_failed: Counter,
    /// Access-log lines dropped because the writer fell behind.
    pub access_log_dropped: Counter,
    /// Requests a guard refused, by route and reason.
    pub guard_denials: Family<GuardLabels, Counter>,
    /// Times a guard's shared backend (Redis, the store) failed, by guard.
    pub guard_backend_errors: Family<GuardLabels, Counter>,
    /// WAF rule matches, by route and rule id.
    pub waf_rule_matches: Family<WafRuleLabels, Counter>,
    /// Requests refused before routing because Rampart could not interpret them
    /// safely (path, host, method, target form, framing), by reason.
    pub requests_refused: Family<RefusalLabels, Counter>,
}

/// Labels of WAF rule matches.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WafRuleLabels {
    /// Route name.
    pub route: String,
    /// The rule's id.
    pub rule: String,
}

/// Labels of requests refused before routing.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusalLabels {
    /// Why (`encoded-slash`, `invalid-host`, …: the problem type's last part).
    pub reason: &'static str,
}

/// Labels of guard decisions.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GuardLabels {
    /// Route name.
    pub route: String,
    /// Why (`auth_failed`, `forbidden`, `rate_limited`, …) or which backend.
    pub reason: &'static str,
}

fn latency_histogram() -> StripedHistogram {
    StripedHistogram::new([
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ])
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every metric registered.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("rampart");
        let requests = Family::<RouteLabels, StripedCounter>::default();
        registry.register("requests", "Requests answered", requests.clone());
        let request_duration = Family::<RouteLabels, StripedHistogram>::new_with_constructor(
            latency_histogram as fn() -> StripedHistogram,
        );
        registry.register_with_unit(
            "request_duration",
            "Time from request received to response headers sent",
            prometheus_client::registry::Unit::Seconds,
            request_duration.clone(),
        );
        let in_flight = StripedGauge::default();
        registry.register(
            "requests_in_flight",
            "Requests being served",
            in_flight.clone(),
        );
        let upstream_attempts = Family::<UpstreamLabels, StripedCounter>::default();
        registry.register(
            "upstream_attempts",
            "Attempts sent to upstream targets",
            upstream_attempts.clone(),
        );
        let retries = Family::<UpstreamLabels, Counter>::default();
        registry.register(
            "retries",
            "Retries sent to upstream targets",
            retries.clone(),
        );
        let retry_budget_exhausted = Family::<UpstreamLabels, Counter>::default();
        registry.register(
            "retry_budget_exhausted",
            "Retries not sent because the retry budget was spent",
            retry_budget_exhausted.clone(),
        );
        let target_healthy = Family::<TargetLabels, Gauge>::default();
        registry.register(
            "upstream_target_healthy",
            "1 if the target receives traffic, 0 if unhealthy or ejected",
            target_healthy.clone(),
        );
        let ejections = Family::<TargetLabels, Counter>::default();
        registry.register(
            "upstream_ejections",
            "Outlier ejections of targets",
            ejections.clone(),
        );
        let breaker_state = Family::<UpstreamLabels, Gauge>::default();
        registry.register(
            "circuit_breaker_state",
            "Circuit breaker state: 0 closed, 1 half-open, 2 open",
            breaker_state.clone(),
        );
        let breaker_rejections = Family::<UpstreamLabels, Counter>::default();
        registry.register(
            "circuit_breaker_rejections",
            "Requests refused because the circuit breaker was open",
            breaker_rejections.clone(),
        );
        let bulkhead_rejections = Family::<BreakerLabels, Counter>::default();
        registry.register(
            "bulkhead_rejections",
            "Requests refused because a concurrency limit was reached",
            bulkhead_rejections.clone(),
        );
        let reloads_ok = Counter::default();
        registry.register(
            "config_reloads",
            "Config reloads applied",
            reloads_ok.clone(),
        );
        let reloads_failed = Counter::default();
        registry.register(
            "config_reload_failures",
            "Config reloads refused",
            reloads_failed.clone(),
        );
        let access_log_dropped = Counter::default();
        registry.register(
            "access_log_dropped",
            "Access-log lines dropped because the writer fell behind",
            access_log_dropped.clone(),
        );
        let guard_denials = Family::<GuardLabels, Counter>::default();
        registry.register(
            "guard_denials",
            "Requests refused by a guard, by route and reason",
            guard_denials.clone(),
        );
        let guard_backend_errors = Family::<GuardLabels, Counter>::default();
        registry.register(
            "guard_backend_errors",
            "Failures of a guard's shared backend (the request then follows the guard's on_error policy)",
            guard_backend_errors.clone(),
        );
        let waf_rule_matches = Family::<WafRuleLabels, Counter>::default();
        registry.register(
            "waf_rule_matches",
            "WAF rules that matched (and log), by route and rule id",
            waf_rule_matches.clone(),
        );
        let requests_refused = Family::<RefusalLabels, Counter>::default();
        registry.register(
            "requests_refused",
            "Requests refused before routing because they could not be interpreted safely, by reason",
            requests_refused.clone(),
        );
        Self {
            requests_refused,
            guard_denials,
            guard_backend_errors,
            waf_rule_matches,
            registry,
            requests,
            request_duration,
            in_flight,
            upstream_attempts,
            retries,
            retry_budget_exhausted,
            target_healthy,
            ejections,
            breaker_state,
            breaker_rejections,
            bulkhead_rejections,
            reloads_ok,
            reloads_failed,
            access_log_dropped,
        }
    }

    /// The registry in OpenMetrics text format.
    pub fn encode_openmetrics(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// The registry in the Prometheus text format (0.0.4), which plain Prometheus
    /// scrapers and `promtool check metrics` read.
    pub fn encode_prometheus(&self) -> String {
        openmetrics_to_prometheus(&self.encode_openmetrics())
    }
}

/// Converts OpenMetrics text to Prometheus 0.0.4 text: counter families take their
/// `_total` sample name, `# UNIT` and `# EOF` lines go.
fn openmetrics_to_prometheus(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut pending_help: Option<(&str, &str)> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            if let Some((name, help)) = rest.split_once(' ') {
                pending_help = Some((name, help));
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let family = if kind == "counter" && !name.ends_with("_total") {
                format!("{name}_total")
            } else {
                name.to_string()
            };
            if let Some((help_name, help)) = pending_help.take() {
                if help_name == name {
                    out.push_str(&format!("# HELP {family} {help}\n"));
                }
            }
            out.push_str(&format!("# TYPE {family} {kind}\n"));
            continue;
        }
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_counters_with_labels() {
        let m = Metrics::new();
        m.requests
            .get_or_create(&RouteLabels {
                route: "api".into(),
                method: Method::GET,
                status: status_class(204),
            })
            .inc();
        let text = m.encode_openmetrics();
        assert!(
            text.contains(r#"rampart_requests_total{route="api",method="GET",status="2xx"} 1"#),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn cached_route_series_feed_the_registry() {
        let m = Metrics::new();
        let cache = RouteMetrics::new("api");
        cache.series(&m, Method::POST, 503).0.inc();
        cache.series(&m, Method::POST, 599).0.inc();
        cache.series(&m, Method::GET, 200).1.observe(0.001);
        let text = m.encode_prometheus();
        assert!(
            text.contains(r#"rampart_requests_total{route="api",method="POST",status="5xx"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"rampart_request_duration_seconds_count{route="api",method="GET",status="2xx"} 1"#
            ),
            "{text}"
        );
    }

    #[test]
    fn request_path_metrics_encode_as_their_openmetrics_types() {
        let m = Metrics::new();
        let cache = RouteMetrics::new("api");
        let (_, duration) = cache.series(&m, Method::GET, 200);
        duration.observe(0.0007);
        duration.observe(0.003);
        duration.observe(60.0);
        m.in_flight.inc();
        m.in_flight.inc();
        m.in_flight.dec();
        let text = m.encode_openmetrics();
        let series = r#"route="api",method="GET",status="2xx""#;
        for line in [
            "# TYPE rampart_request_duration_seconds histogram".to_string(),
            format!("rampart_request_duration_seconds_bucket{{le=\"0.0005\",{series}}} 0"),
            format!("rampart_request_duration_seconds_bucket{{le=\"0.001\",{series}}} 1"),
            format!("rampart_request_duration_seconds_bucket{{le=\"0.005\",{series}}} 2"),
            format!("rampart_request_duration_seconds_bucket{{le=\"10.0\",{series}}} 2"),
            format!("rampart_request_duration_seconds_bucket{{le=\"+Inf\",{series}}} 3"),
            format!("rampart_request_duration_seconds_count{{{series}}} 3"),
            "# TYPE rampart_requests_in_flight gauge".to_string(),
            "rampart_requests_in_flight 1".to_string(),
        ] {
            assert!(text.contains(&line), "{line} missing from\n{text}");
        }
        assert!(
            text.contains(&format!(
                "rampart_request_duration_seconds_sum{{{series}}} 60.0037"
            )),
            "{text}"
        );
    }

    #[test]
    fn prometheus_text_names_counter_families_with_total() {
        let m = Metrics::new();
        m.reloads_ok.inc();
        let text = m.encode_prometheus();
        assert!(text.contains("# HELP rampart_config_reloads_total Config reloads applied.\n# TYPE rampart_config_reloads_total counter\nrampart_config_reloads_total 1\n"), "{text}");
        assert!(!text.contains("# EOF"));
        assert!(!text.contains("# UNIT"));
    }
}
