//! The compiled, validated config the gateway runs on.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http::header::{HeaderName, HeaderValue};
use http::uri::{Authority, Scheme};
use http::Method;
use ipnet::IpNet;
use rampart_resilience::{Backoff, BreakerSettings, OutlierSettings, RetryBudgetSettings};
use regex::Regex;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// A complete, valid config.
#[derive(Debug, Clone)]
pub struct Config {
    /// Directory for Rampart's own data.
    pub data_dir: PathBuf,
    /// Admin listener address.
    pub admin_listen: SocketAddr,
    /// Postgres URL when the store is shared; `None` for SQLite in `data_dir`.
    pub database_url: Option<String>,
    /// Redis URL for shared ephemeral state; `None` for in-process state.
    pub redis_url: Option<String>,
    /// Prefix of Rampart's Redis keys and channels.
    pub redis_key_prefix: String,
    /// Where access-log lines go.
    pub access_log: AccessLogTarget,
    /// Client-facing connection settings.
    pub server: ServerSettings,
    /// OTLP trace export, if configured.
    pub tracing: Option<TracingSettings>,
    /// Honeypot paths and the ban they trigger.
    pub honeypots: Option<Honeypots>,
    /// The audit log's settings.
    pub audit: AuditSettings,
    /// Public listeners.
    pub listeners: Vec<Listener>,
    /// Upstream pools by name.
    pub upstreams: BTreeMap<String, Arc<Upstream>>,
    /// Routes, most specific first.
    pub routes: Vec<Route>,
}

/// Audit log settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditSettings {
    /// Checkpoint publication interval.
    pub checkpoint_interval: Duration,
    /// Detail keys holding personal data.
    pub sensitive_fields: Vec<String>,
    /// Syslog forwarding, if configured.
    pub syslog: Option<SyslogTarget>,
}

/// A syslog collector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogTarget {
    /// `true` for TCP (octet-counted framing, RFC 6587), `false` for UDP.
    pub tcp: bool,
    /// `host:port`.
    pub address: String,
}

/// Honeypots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Honeypots {
    /// Path prefixes (segment boundaries).
    pub paths: Vec<PathMatch>,
    /// Ban length.
    pub ban_for: Duration,
}

/// Access log destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLogTarget {
    /// No access log.
    Off,
    /// Standard output.
    Stdout,
    /// Appended to a file.
    File(PathBuf),
}

/// OTLP trace export settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TracingSettings {
    /// OTLP/HTTP traces endpoint.
    pub otlp_endpoint: String,
    /// `service.name`.
    pub service_name: String,
    /// Per-export timeout.
    pub export_timeout: Duration,
}

/// Client-facing connection settings.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Largest request head in bytes.
    pub max_header_bytes: usize,
    /// Idle client connections are closed after this long.
    pub idle_timeout: Duration,
    /// Drain deadline on shutdown.
    pub shutdown_grace: Duration,
    /// Peers whose forwarding headers are trusted.
    pub trusted_proxies: Vec<IpNet>,
}

/// A public listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// Its name.
    pub name: String,
    /// Where it listens.
    pub address: SocketAddr,
    /// TLS, if any.
    pub tls: Option<Tls>,
    /// How requests arriving here are turned into their canonical form.
    pub requests: RequestNormalization,
}

/// How a listener turns a request into the one canonical request that routing,
/// guards, the WAF, the access log and forwarding all see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestNormalization {
    /// Repeated slashes in a path are merged into one.
    pub merge_slashes: bool,
    /// What an encoded slash or backslash (`%2F`, `%5C`) in a path means.
    pub encoded_slashes: EncodedSlashes,
    /// What a header name containing `_` means.
    pub underscores_in_headers: UnderscoresInHeaders,
    /// What `;` parameters on path segments mean.
    pub path_parameters: PathParameters,
}

impl RequestNormalization {
    /// The safe defaults: slashes merged, encoded slashes refused, `_` names dropped.
    pub const DEFAULT: Self = Self {
        merge_slashes: true,
        encoded_slashes: EncodedSlashes::Reject,
        underscores_in_headers: UnderscoresInHeaders::Drop,
        path_parameters: PathParameters::Reject,
    };
}

impl Default for RequestNormalization {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// What an encoded slash or backslash (`%2F`, `%5C`) in a request path means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum EncodedSlashes {
    /// The request is refused (400): backends disagree on whether it separates segments.
    #[default]
    Reject,
    /// Decoded to `/`, so that it separates segments for routing and upstream alike.
    Decode,
    /// Kept encoded (upper-case hex): routes see one segment; a backend that decodes
    /// it sees two. Unsafe with path-based rules.
    Keep,
}

/// What `;` parameters on a path segment (`/a;x=1/b`) mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PathParameters {
    /// The request is refused (400): Servlet containers (Tomcat, Jetty) remove them
    /// before mapping a path and other servers keep them, so `/admin;x=1` is `/admin`
    /// to some backends only.
    #[default]
    Reject,
    /// Removed from every segment, so that routes and every backend see `/admin`.
    Strip,
    /// Kept as part of the segment. Unsafe in front of a Servlet container.
    Keep,
}

/// What a header name containing `_` means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum UnderscoresInHeaders {
    /// Such fields are removed (some servers map `_` onto `-`, so `x_api_key` could
    /// stand for `x-api-key`).
    #[default]
    Drop,
    /// Such fields are kept, except those that stand for a protected field once `_`
    /// reads as `-` (`Host`, framing and forwarding fields, `x-rampart-*`).
    Keep,
}

/// TLS certificates of a listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    /// Certificates; the first is the default.
    pub certificates: Vec<Certificate>,
}

/// A certificate and key file pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
    /// SNI names (lower case; `*.x` wildcards allowed).
    pub server_names: Vec<String>,
}

/// An upstream pool.
#[derive(Debug, Clone, PartialEq)]
pub struct Upstream {
    /// Its name.
    pub name: String,
    /// Its targets.
    pub targets: Vec<Target>,
    /// Balancing algorithm.
    pub balance: Balance,
    /// Protocol to targets.
    pub protocol: Protocol,
    /// Host header policy.
    pub host_header: HostHeader,
    /// Most idle pooled connections per target.
    pub pool_max_idle_per_target: usize,
    /// Pooled connection idle timeout.
    pub pool_idle_timeout: Duration,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Active health checks.
    pub health_check: Option<HealthCheck>,
    /// Passive outlier ejection.
    pub outlier: OutlierSettings,
    /// Circuit breaker, if enabled.
    pub breaker: Option<BreakerSettings>,
    /// Bulkhead size.
    pub max_concurrent_requests: usize,
    /// Retry budget.
    pub retry_budget: RetryBudgetSettings,
    /// TLS to the `https` targets.
    pub tls: UpstreamTls,
}

/// TLS to an upstream's `https` targets, with the files' contents (read when the
/// config was compiled, so a reload with changed files compares unequal).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpstreamTls {
    /// The only roots trusted (from `ca_file`); `None`: the web PKI roots.
    pub roots: Option<Vec<CertificateDer<'static>>>,
    /// The name verified and sent as SNI; `None`: each target's host.
    pub server_name: Option<ServerName<'static>>,
    /// The client certificate presented to targets asking for one.
    pub client_auth: Option<ClientAuth>,
}

/// A client certificate chain and its private key (checked to belong together).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAuth {
    /// The chain, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The leaf's private key (its `Debug` shows no key material).
    pub key: Arc<PrivateKeyDer<'static>>,
}

/// One target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Where it is.
    pub endpoint: Endpoint,
    /// Relative weight.
    pub weight: u32,
}

/// A target's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A network HTTP(S) server.
    Http {
        /// `http` or `https`.
        scheme: Scheme,
        /// Host and port.
        authority: Authority,
    },
    /// The built-in echo server.
    Echo,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Http { scheme, authority } => write!(f, "{scheme}://{authority}"),
            Endpoint::Echo => f.write_str("builtin:echo"),
        }
    }
}

/// Balancing algorithm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Balance {
    /// Smooth weighted round robin.
    RoundRobin,
    /// Fewest in-flight requests per weight.
    LeastConnections,
    /// Hash ring on a key.
    ConsistentHash(HashKey),
}

/// What consistent hashing hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashKey {
    /// The client's IP.
    ClientIp,
    /// A request header's value.
    Header(HeaderName),
    /// A cookie's value.
    Cookie(String),
}

/// Protocol to a pool's targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.1.
    Http1,
    /// HTTP/2 over TLS by ALPN.
    Http2,
    /// Cleartext HTTP/2.
    H2c,
}

/// Host header policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostHeader {
    /// Pass the client's.
    Preserve,
    /// The target's authority.
    Target,
    /// A fixed value.
    Literal(HeaderValue),
}

/// Active health check settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    /// Path requested.
    pub path: String,
    /// Time between checks.
    pub interval: Duration,
    /// Time allowed per check.
    pub timeout: Duration,
    /// Passes to become healthy.
    pub healthy_threshold: u32,
    /// Failures to become unhealthy.
    pub unhealthy_threshold: u32,
}

/// A route's `timeouts.upstream_body_idle` when it sets none: nginx's
/// `proxy_read_timeout`. Long enough for a backend that streams slowly or sends a
/// heartbeat every 15 to 30 s, short enough that a stalled one does not hold a client
/// (and a pooled connection) for minutes.
pub const DEFAULT_UPSTREAM_BODY_IDLE: Duration = Duration::from_secs(60);

/// A route's `timeouts.client_write` when it sets none: nginx's `send_timeout`. A
/// client on a poor mobile link stalls for seconds, not a minute; one that reads
/// nothing for 60 s has gone or is holding the connection on purpose.
pub const DEFAULT_CLIENT_WRITE_TIMEOUT: Duration = Duration::from_secs(60);

/// A route.
#[derive(Debug, Clone)]
pub struct Route {
    /// Its name.
    pub name: Arc<str>,
    /// Listeners it serves (`None`: all).
    pub listeners: Option<Vec<String>>,
    /// Match conditions.
    pub matcher: RouteMatch,
    /// Upstream pool name (validated to exist).
    pub upstream: String,
    /// Remove the matched prefix.
    pub strip_prefix: bool,
    /// Prefix to add.
    pub add_prefix: Option<String>,
    /// Request header operations.
    pub request_headers: HeaderOps,
    /// Response header operations.
    pub response_headers: HeaderOps,
    /// Per-attempt timeout.
    pub per_try_timeout: Duration,
    /// Whole-request timeout.
    pub total_timeout: Duration,
    /// Longest pause of the upstream within a response body.
    pub upstream_body_idle: Duration,
    /// Longest a write to the client may make no progress.
    pub client_write_timeout: Duration,
    /// Retry policy.
    pub retry: RetryPolicy,
    /// What to answer while the breaker is open.
    pub fallback: Option<Fallback>,
    /// Route bulkhead.
    pub max_concurrent_requests: Option<usize>,
    /// Fault injection.
    pub fault: Option<Fault>,
    /// Largest body buffered for retries.
    pub retry_body_limit: usize,
    /// Forward the request target as the client sent it, not its canonical form.
    pub forward_raw_path: bool,
    /// Protocols a client may switch to with `Upgrade` (lower case; never `h2c`).
    pub upgrades: Vec<String>,
    /// Forward the client's trailer fields (less framing, hop-by-hop, `Host` and
    /// `x-rampart-*`).
    pub forward_trailers: bool,
    /// Authentication, if required.
    pub auth: Option<AuthPolicy>,
    /// Rate limits.
    pub rate_limits: Vec<RateLimitRule>,
    /// Request limits, if any.
    pub limits: Option<RequestLimits>,
    /// IP rules, if any.
    pub ip: Option<IpRules>,
    /// Security response headers, if any.
    pub security_headers: Option<SecurityHeaders>,
    /// CORS, if any.
    pub cors: Option<Cors>,
    /// Send rate-limit headers on allowed responses too.
    pub rate_limit_headers: bool,
    /// Per-consumer request budgets.
    pub quota: Option<Quota>,
    /// Idempotency-key handling.
    pub idempotency: Option<Idempotency>,
    /// The WAF.
    pub waf: Option<Waf>,
}

/// A route's WAF: its compiled rules and how requests meet them.
#[derive(Debug, Clone)]
pub struct Waf {
    /// How the engine was built.
    pub settings: rampart_waf::WafSettings,
    /// The compiled rules (shared by requests, rebuilt on reload).
    pub engine: Arc<rampart_waf::engine::Engine>,
    /// Largest body inspected.
    pub body_limit: usize,
    /// Refuse larger bodies (413) rather than pass them uninspected.
    pub reject_large_bodies: bool,
    /// Refuse bodies the WAF could not interpret in full (400) rather than pass them with
    /// only their raw bytes inspected.
    pub reject_unparsed_bodies: bool,
}

/// Request budgets per consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Requests per UTC day.
    pub daily: Option<u64>,
    /// Requests per UTC month.
    pub monthly: Option<u64>,
}

/// Idempotency-key handling on a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idempotency {
    /// The key's header.
    pub header: HeaderName,
    /// Methods it applies to.
    pub methods: Vec<Method>,
    /// Requests without a key are refused.
    pub required: bool,
    /// How long responses are kept.
    pub ttl: Duration,
    /// Largest request body fingerprinted.
    pub max_body_bytes: usize,
    /// Largest response body kept.
    pub max_response_bytes: usize,
}

/// Security response headers to add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityHeaders {
    /// `Strict-Transport-Security` (HTTPS only).
    pub hsts: Option<HeaderValue>,
    /// `X-Content-Type-Options: nosniff`.
    pub nosniff: bool,
    /// `X-Frame-Options: DENY`.
    pub deny_framing: bool,
    /// The full `Content-Security-Policy`, if any.
    pub csp: Option<HeaderValue>,
    /// `Referrer-Policy`.
    pub referrer_policy: Option<HeaderValue>,
}

/// CORS policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cors {
    /// Allowed origins (lower case); empty with `any_origin`.
    pub origins: Vec<String>,
    /// `"*"` was given.
    pub any_origin: bool,
    /// `Access-Control-Allow-Methods`.
    pub methods: Vec<Method>,
    /// `Access-Control-Allow-Headers` (lower case).
    pub headers: Vec<String>,
    /// `Access-Control-Expose-Headers`.
    pub expose: Option<HeaderValue>,
    /// `Access-Control-Allow-Credentials: true`.
    pub credentials: bool,
    /// `Access-Control-Max-Age` in seconds.
    pub max_age_secs: u64,
}

/// Request limits.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RequestLimits {
    /// Largest body.
    pub max_body_bytes: Option<u64>,
    /// Most headers.
    pub max_headers: Option<usize>,
    /// Largest total header size.
    pub max_header_bytes: Option<usize>,
    /// Longest request target.
    pub max_url_bytes: Option<usize>,
    /// Allowed methods (empty: any).
    pub methods: Vec<Method>,
}

/// Client IP rules.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IpRules {
    /// Allowed networks (empty: everyone not denied).
    pub allow: Vec<IpNet>,
    /// Denied networks.
    pub deny: Vec<IpNet>,
    /// Files of allowed networks.
    pub allow_files: Vec<PathBuf>,
    /// Files of denied networks.
    pub deny_files: Vec<PathBuf>,
}

/// Parses an IP list file: one address or CIDR per line; `#` starts a comment.
/// The error names the first bad line.
pub fn parse_ip_list(text: &str) -> Result<Vec<IpNet>, String> {
    let mut nets = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let entry = line.split('#').next().unwrap_or("").trim();
        if entry.is_empty() {
            continue;
        }
        let net = entry
            .parse::<IpNet>()
            .or_else(|_| entry.parse::<std::net::IpAddr>().map(IpNet::from))
            .map_err(|_| format!("line {}: {entry:?} is not an IP address or CIDR", i + 1))?;
        nets.push(net);
    }
    Ok(nets)
}

/// Route authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthPolicy {
    /// API keys are accepted.
    pub api_key: bool,
    /// JWT bearer tokens are accepted, checked this way.
    pub jwt: Option<JwtPolicy>,
    /// The header carrying an API key (besides `Authorization: Bearer`).
    pub api_key_header: HeaderName,
    /// The query parameter that may carry an API key.
    pub api_key_query: Option<String>,
    /// Scopes required.
    pub scopes: Vec<String>,
    /// JWT claims forwarded upstream.
    pub forward_claims: Vec<String>,
    /// The signed assertion sent upstream.
    pub assertion: Option<Assertion>,
}

/// How the principal assertion is sent upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assertion {
    /// Its header.
    pub header: HeaderName,
    /// Its lifetime.
    pub ttl: Duration,
    /// Its audience (default: the upstream's name).
    pub audience: String,
    /// Its issuer.
    pub issuer: String,
}

/// How JWTs are validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtPolicy {
    /// Where the verification keys come from.
    pub keys: JwtKeys,
    /// Required issuer.
    pub issuer: Option<String>,
    /// Accepted audiences (empty: not checked).
    pub audience: Vec<String>,
    /// Accepted algorithms (`RS256`, `ES256`, `EdDSA`).
    pub algorithms: Vec<String>,
    /// Clock skew allowed.
    pub leeway: Duration,
    /// Claims that must be present.
    pub required_claims: Vec<String>,
}

/// JWT verification keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwtKeys {
    /// A JWKS document at this URL.
    Jwks(String),
    /// A PEM public key file.
    Pem(PathBuf),
}

/// One rate limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitRule {
    /// Requests per period.
    pub requests: u32,
    /// The period.
    pub per: Duration,
    /// Requests at once.
    pub burst: u32,
    /// What is limited.
    pub key: LimitKey,
    /// Enforce a local limit (true) or refuse (false) while the shared limiter is down.
    pub fail_open: bool,
}

/// What a rate limit counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitKey {
    /// The client's IP.
    ClientIp,
    /// The authenticated consumer (the client IP when unauthenticated).
    Consumer,
    /// The API key (the client IP when unauthenticated).
    ApiKey,
    /// The route as a whole.
    Route,
    /// A request header's value (the client IP when absent).
    Header(HeaderName),
    /// A JWT claim's value (the client IP when absent).
    Claim(String),
}

/// Route match conditions.
#[derive(Debug, Clone, Default)]
pub struct RouteMatch {
    /// Host patterns (any matches; empty = any host).
    pub hosts: Vec<HostPattern>,
    /// Path condition.
    pub path: PathMatch,
    /// The path condition matches in any ASCII letter case.
    pub path_ignore_case: bool,
    /// Allowed methods (empty = any).
    pub methods: Vec<Method>,
    /// Required header values.
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

/// A host condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// Exact, lower case.
    Exact(String),
    /// `*.suffix`: stores `.suffix`, lower case.
    Wildcard(String),
}

impl HostPattern {
    /// Whether `host` (lower case, without port) matches.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Exact(h) => h == host,
            HostPattern::Wildcard(suffix) => {
                host.len() > suffix.len() && host.ends_with(suffix.as_str())
            }
        }
    }
}

/// A path condition.
#[derive(Debug, Clone, Default)]
pub enum PathMatch {
    /// Any path.
    #[default]
    Any,
    /// Exactly this path.
    Exact(String),
    /// This prefix on a segment boundary (stored without a trailing slash, except `/`).
    Prefix(String),
    /// A regex anchored on both ends.
    Regex(Regex),
}

impl PartialEq for PathMatch {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (PathMatch::Any, PathMatch::Any) => true,
            (PathMatch::Exact(a), PathMatch::Exact(b))
            | (PathMatch::Prefix(a), PathMatch::Prefix(b)) => a == b,
            (PathMatch::Regex(a), PathMatch::Regex(b)) => a.as_str() == b.as_str(),
            _ => false,
        }
    }
}

impl Eq for PathMatch {}

impl PathMatch {
    /// Whether `path` matches (with `ignore_case`, in any ASCII letter case; a regex
    /// is then compiled case-insensitive).
    pub fn matches(&self, path: &str, ignore_case: bool) -> bool {
        let same = |a: &[u8], b: &[u8]| {
            if ignore_case {
                a.eq_ignore_ascii_case(b)
            } else {
                a == b
            }
        };
        match self {
            PathMatch::Any => true,
            PathMatch::Exact(p) => same(p.as_bytes(), path.as_bytes()),
            PathMatch::Prefix(p) => {
                p == "/"
                    || (path
                        .as_bytes()
                        .get(..p.len())
                        .is_some_and(|start| same(start, p.as_bytes()))
                        && matches!(path.as_bytes().get(p.len()), None | Some(b'/')))
            }
            PathMatch::Regex(r) => r.is_match(path),
        }
    }
}

/// Header operations.
#[derive(Debug, Clone, Default)]
pub struct HeaderOps {
    /// Removed first.
    pub remove: Vec<HeaderName>,
    /// Then set (replacing).
    pub set: Vec<(HeaderName, HeaderValue)>,
    /// Then added.
    pub add: Vec<(HeaderName, HeaderValue)>,
}

impl HeaderOps {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.set.is_empty() && self.add.is_empty()
    }

    /// Applies the operations to `headers`.
    pub fn apply(&self, headers: &mut http::HeaderMap) {
        for name in &self.remove {
            headers.remove(name);
        }
        for (name, value) in &self.set {
            headers.insert(name.clone(), value.clone());
        }
        for (name, value) in &self.add {
            headers.append(name.clone(), value.clone());
        }
    }
}

/// Retry policy.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub attempts: u32,
    /// Statuses retried.
    pub on_status: Vec<u16>,
    /// Retry connect failures.
    pub on_connect_failure: bool,
    /// Retry per-try timeouts.
    pub on_timeout: bool,
    /// Retry non-idempotent methods.
    pub non_idempotent: bool,
    /// Backoff between attempts.
    pub backoff: Backoff,
}

/// Fallback while the breaker is open.
#[derive(Debug, Clone)]
pub enum Fallback {
    /// A fixed response.
    Static {
        /// Status code.
        status: http::StatusCode,
        /// Body.
        body: Arc<str>,
        /// Content type.
        content_type: HeaderValue,
    },
    /// Another pool.
    Upstream(String),
}

/// Fault injection.
#[derive(Debug, Clone)]
pub struct Fault {
    /// Delay, with the share of requests (0..=1) it applies to.
    pub delay: Option<(Duration, f64)>,
    /// Abort status, with the share of requests (0..=1) aborted.
    pub abort: Option<(http::StatusCode, f64)>,
}
