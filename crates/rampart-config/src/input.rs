//! The config file as written: serde input types. Every field is documented;
//! unknown keys are errors. [`crate::compile`] turns these into [`crate::Config`].

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

/// A duration written as a string: `"250ms"`, `"5s"`, `"2m"`, `"1h 30m"`.
pub type DurationText = String;

/// The whole config file.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigInput {
    /// Directory for Rampart's own data (SQLite store, tokens, keys), relative to this
    /// file. Default `./data` in the working directory; `--data-dir` and
    /// `RAMPART_DATA_DIR` override it.
    pub data_dir: Option<String>,
    /// The admin listener (health, readiness, metrics, admin API).
    pub admin: Option<AdminInput>,
    /// Shared Postgres storage for several instances. Without it, Rampart keeps its data
    /// in SQLite in `data_dir`. Changes take effect on restart.
    pub database: Option<DatabaseInput>,
    /// Redis for shared ephemeral state (counters, bans, cache invalidation) between
    /// instances. Without it, that state is in-process. Changes take effect on restart.
    pub redis: Option<RedisInput>,
    /// Logging: the JSON access log. The log level comes from `RUST_LOG`.
    pub log: Option<LogInput>,
    /// Client-facing connection settings shared by every listener.
    pub server: Option<ServerInput>,
    /// OpenTelemetry traces: a span per request and a child span per upstream attempt,
    /// exported over OTLP/HTTP. Off unless set; changes take effect on restart.
    pub tracing: Option<TracingInput>,
    /// Honeypot paths: a client that requests one is banned from every route for a
    /// while (shared by all instances through Redis when configured).
    pub honeypots: Option<HoneypotsInput>,
    /// The tamper-evident audit log (kept in `<data_dir>/audit`). Changes take effect on restart.
    pub audit: Option<AuditInput>,
    /// Public listeners. At least one is required.
    #[serde(default)]
    pub listeners: Vec<ListenerInput>,
    /// Upstream pools by name.
    #[serde(default)]
    pub upstreams: BTreeMap<String, UpstreamInput>,
    /// Routes. The most specific matching route wins (see the config reference).
    #[serde(default)]
    pub routes: Vec<RouteInput>,
}

/// The audit log.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditInput {
    /// How often a signed checkpoint is published while the log grows. Default `"10s"`.
    pub checkpoint_interval: Option<DurationText>,
    /// Keys of event details holding personal data: their values are stored only
    /// encrypted with the data subject's own key. Default `["email", "phone", "address"]`.
    pub sensitive_fields: Option<Vec<String>>,
    /// Also send each entry to a syslog collector (SIEM), RFC 5424, such as
    /// `"udp://10.0.0.5:514"` or `"tcp://siem.internal:601"`.
    pub syslog: Option<String>,
}

/// Honeypots.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HoneypotsInput {
    /// Paths no legitimate client asks for, such as `/wp-admin` or `/.env` (prefixes on
    /// segment boundaries).
    pub paths: Vec<String>,
    /// How long a client stays banned. Default `"1h"`.
    pub ban_for: Option<DurationText>,
}

/// The admin listener.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminInput {
    /// Address to listen on, such as `127.0.0.1:9090`. Default `127.0.0.1:9090`.
    pub listen: Option<String>,
}

/// The shared database.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DatabaseInput {
    /// Postgres URL such as `postgres://rampart@db:5432/rampart` (use `${env:RAMPART_…}`
    /// or `${file:…}` for the password). `RAMPART_DATABASE_URL` overrides it.
    pub url: String,
}

/// The shared Redis.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RedisInput {
    /// Redis URL such as `redis://127.0.0.1:6379` (`rediss://` for TLS is not supported
    /// yet). `RAMPART_REDIS_URL` overrides it.
    pub url: String,
    /// Prefix of every key and channel Rampart uses. Default `rampart:`.
    pub key_prefix: Option<String>,
}

/// Logging settings.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogInput {
    /// Where the JSON access log goes: `"stdout"` (default), `"off"`, or a file path.
    pub access_log: Option<String>,
}

/// OTLP trace export. With it, each request is a span of the caller's trace (or of a
/// new one) and `traceparent` names Rampart's span upstream; without it, Rampart takes
/// no part in tracing: a caller's `traceparent` passes through unchanged (the access log
/// still shows its trace id) and none is added.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TracingInput {
    /// OTLP/HTTP (protobuf) traces endpoint, such as `http://127.0.0.1:4318/v1/traces`.
    pub otlp_endpoint: String,
    /// `service.name` of the exported spans. Default `rampart`.
    pub service_name: Option<String>,
    /// Time allowed for one export request. Default `"10s"`.
    pub export_timeout: Option<DurationText>,
}

/// Client-facing connection settings.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerInput {
    /// Largest request head (request line and headers) in bytes; larger gets 431. Default 65536.
    pub max_header_bytes: Option<usize>,
    /// Close a client connection that has sent nothing for this long. Default `"60s"`.
    pub idle_timeout: Option<DurationText>,
    /// On shutdown, how long in-flight requests may take to finish. Default `"30s"`.
    pub shutdown_grace: Option<DurationText>,
    /// Peers (IPs or CIDRs) whose `X-Forwarded-*` and `Forwarded` headers are trusted and
    /// extended; from anyone else those headers are replaced. Default: none.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
}

/// One public listener.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListenerInput {
    /// Name used by routes' `listeners` and in logs. Default `listener-<index>`.
    pub name: Option<String>,
    /// Address to listen on, such as `0.0.0.0:8443`.
    pub address: String,
    /// TLS settings; without them the listener speaks plain HTTP (HTTP/1.1 and h2c prior knowledge).
    pub tls: Option<TlsInput>,
    /// Merge repeated slashes in request paths (`/a//b` is `/a/b`) before routing and
    /// forwarding. Default true.
    pub merge_slashes: Option<bool>,
    /// An encoded slash or backslash (`%2F`, `%5C`) in a request path: `"reject"`
    /// (400, default), `"decode"` (read as `/`), or `"keep"` (left encoded; unsafe with
    /// path-based rules, since a backend that decodes it sees other segments).
    pub encoded_slashes: Option<crate::types::EncodedSlashes>,
    /// Header names containing `_`: `"drop"` (removed, default, like nginx's
    /// `underscores_in_headers off`) or `"keep"` (kept, except those that read as a
    /// protected field with `_` as `-`: `Host`, framing, forwarding, `x-rampart-*`).
    pub underscores_in_headers: Option<crate::types::UnderscoresInHeaders>,
    /// `;` parameters on path segments (`/admin;x=1`): `"reject"` (400, default: Servlet
    /// containers remove them before mapping, other servers keep them), `"strip"` (removed
    /// from every segment before routing and forwarding), or `"keep"` (part of the segment;
    /// unsafe in front of a Servlet container).
    pub path_parameters: Option<crate::types::PathParameters>,
}

/// TLS for a listener (TLS 1.2 and 1.3 only; HTTP/2 and HTTP/1.1 offered by ALPN).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsInput {
    /// Certificates; the one whose `server_names` match the client's SNI is used, else the first.
    pub certificates: Vec<CertificateInput>,
}

/// One certificate and its key, reloaded when either file changes.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CertificateInput {
    /// PEM file with the certificate chain, leaf first.
    pub cert: String,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: String,
    /// SNI names this certificate answers for (exact or `*.example.com`). Default: the
    /// names in the certificate are not read, so list them here to select by SNI.
    #[serde(default)]
    pub server_names: Vec<String>,
}

/// One upstream pool.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpstreamInput {
    /// Targets: URLs such as `http://10.0.0.5:3000`, `https://api.internal`, or `builtin:echo`.
    pub targets: Vec<TargetInput>,
    /// How a target is chosen: `round_robin` (default, weighted), `least_connections`, or
    /// `consistent_hash` (see `hash_on`).
    pub balance: Option<BalanceInput>,
    /// With `consistent_hash`: `"client_ip"`, `"header:<name>"` or `"cookie:<name>"`. Default `client_ip`.
    pub hash_on: Option<String>,
    /// Protocol to the targets: `http1` (default), `http2` (over TLS, negotiated) or `h2c`
    /// (HTTP/2 without TLS, for gRPC).
    pub protocol: Option<ProtocolInput>,
    /// Host header sent upstream: `"preserve"` (default, the client's), `"target"` (the
    /// target's host and port), or a literal host name.
    pub host_header: Option<String>,
    /// Keep-alive connection pooling.
    pub pool: Option<PoolInput>,
    /// Connect timeout for new connections. Default `"2s"`.
    pub connect_timeout: Option<DurationText>,
    /// Active HTTP health checks. Default: none (targets are presumed healthy).
    pub health_check: Option<HealthCheckInput>,
    /// Passive outlier ejection from live traffic.
    pub outlier_detection: Option<OutlierInput>,
    /// The circuit breaker protecting this pool.
    pub circuit_breaker: Option<BreakerInput>,
    /// Bulkhead: most concurrent requests to this pool; the excess gets 503 at once. Default 1024.
    pub max_concurrent_requests: Option<usize>,
    /// Retry budget for retries sent to this pool.
    pub retry_budget: Option<RetryBudgetInput>,
    /// TLS to this pool's `https` targets (HTTP/1.1 and HTTP/2 alike, health checks
    /// included): a private CA, the name to verify, a client certificate. Without it
    /// the web PKI roots are trusted and each target's host is verified. Verification
    /// cannot be turned off. The files are read when the config is loaded (and again on
    /// each reload, which rebuilds the pool's connections when they changed).
    pub tls: Option<UpstreamTlsInput>,
}

/// TLS settings for an upstream's `https` targets (TLS 1.2 and 1.3 only).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTlsInput {
    /// PEM file with the CA certificates to trust, relative to this file. When given,
    /// these are the only roots trusted for this pool (the web PKI roots are not), so a
    /// private CA cannot be bypassed by a public one. Default: the web PKI roots.
    pub ca_file: Option<String>,
    /// The name verified in the target's certificate and sent as SNI, for every target
    /// of the pool: a DNS name or an IP address (then an IP address SAN is verified).
    /// Default: each target's own host.
    pub server_name: Option<String>,
    /// PEM file with the client certificate chain (leaf first) presented to targets
    /// that ask for one (mutual TLS), relative to this file. Needs `client_key`.
    pub client_cert: Option<String>,
    /// PEM file with the client certificate's private key (PKCS#8, PKCS#1 or SEC1),
    /// relative to this file. Needs `client_cert`.
    pub client_key: Option<String>,
}

/// A target in a pool: a URL string, or a table with a weight.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum TargetInput {
    /// Just the URL, weight 1.
    Url(String),
    /// URL with a weight.
    Weighted(WeightedTargetInput),
}

/// A weighted target.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WeightedTargetInput {
    /// The target's URL.
    pub url: String,
    /// Relative share of traffic, 1 to 1000. Default 1.
    pub weight: Option<u32>,
}

/// Load-balancing algorithm.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum BalanceInput {
    /// Smooth weighted round robin.
    RoundRobin,
    /// Fewest in-flight requests relative to weight.
    LeastConnections,
    /// A hash ring on `hash_on`, so the same key keeps reaching the same target.
    ConsistentHash,
}

/// Upstream protocol.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ProtocolInput {
    /// HTTP/1.1.
    Http1,
    /// HTTP/2 over TLS (falls back to HTTP/1.1 when the target does not offer h2).
    Http2,
    /// HTTP/2 over cleartext with prior knowledge.
    H2c,
}

/// Keep-alive pooling to the targets.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PoolInput {
    /// Most idle connections kept per target. Default 128.
    pub max_idle_per_target: Option<usize>,
    /// Close pooled connections idle for this long, counted from when the last request
    /// on the connection began (a long response counts as idle time). Default `"90s"`.
    pub idle_timeout: Option<DurationText>,
}

/// Active health checks.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckInput {
    /// Path requested with GET, such as `/healthz`.
    pub path: String,
    /// Time between checks. Default `"5s"`.
    pub interval: Option<DurationText>,
    /// Time allowed for one check. Default `"1s"`.
    pub timeout: Option<DurationText>,
    /// Consecutive passes that mark an unhealthy target healthy. Default 2.
    pub healthy_threshold: Option<u32>,
    /// Consecutive failures that mark a healthy target unhealthy. Default 3.
    pub unhealthy_threshold: Option<u32>,
}

/// Passive outlier ejection.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OutlierInput {
    /// Eject after this many consecutive 5xx responses; 0 disables. Default 5.
    pub consecutive_5xx: Option<u32>,
    /// Eject after this many consecutive connect failures; 0 disables. Default 3.
    pub consecutive_connect_failures: Option<u32>,
    /// First ejection time; the n-th ejection lasts n times this. Default `"30s"`.
    pub base_ejection: Option<DurationText>,
    /// Longest ejection. Default `"5m"`.
    pub max_ejection: Option<DurationText>,
    /// Never eject more than this percentage of targets. Default 50.
    pub max_ejection_percent: Option<u8>,
}

/// Circuit breaker settings.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BreakerInput {
    /// Open after this many consecutive failures (connect errors, timeouts, 5xx); 0 disables. Default 5.
    pub consecutive_failures: Option<u32>,
    /// Open when the failure ratio over `window` reaches this (0 to 1); 0 disables. Default 0.5.
    pub failure_ratio: Option<f64>,
    /// Rolling window for `failure_ratio`. Default `"10s"`.
    pub window: Option<DurationText>,
    /// Minimum requests in the window before the ratio counts. Default 20.
    pub min_requests: Option<u32>,
    /// Time spent open before probing. Default `"5s"`.
    pub open_for: Option<DurationText>,
    /// Probes admitted while half-open; all must succeed to close. Default 1.
    pub half_open_probes: Option<u32>,
    /// Turn the breaker off. Default false.
    pub disabled: Option<bool>,
}

/// Retry budget.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryBudgetInput {
    /// Retries in flight may be at most this share of requests in flight. Default 0.2.
    pub ratio: Option<f64>,
    /// Concurrent retries always allowed, whatever the ratio. Default 3.
    pub min_concurrent: Option<u64>,
}

/// One route.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteInput {
    /// Name used in metrics and logs. Default `route-<index>`.
    pub name: Option<String>,
    /// Listeners this route serves, by name. Default: all.
    pub listeners: Option<Vec<String>>,
    /// What the route matches. Default: everything.
    #[serde(rename = "match")]
    pub matcher: Option<MatchInput>,
    /// The upstream pool that serves this route.
    pub upstream: String,
    /// Path rewriting before forwarding.
    pub rewrite: Option<RewriteInput>,
    /// Header changes on the request sent upstream.
    pub request_headers: Option<HeaderOpsInput>,
    /// Header changes on the response sent to the client.
    pub response_headers: Option<HeaderOpsInput>,
    /// Timeouts.
    pub timeouts: Option<TimeoutsInput>,
    /// Retries.
    pub retry: Option<RetryInput>,
    /// What to answer while the upstream's circuit breaker is open.
    pub fallback: Option<FallbackInput>,
    /// Bulkhead for this route: most concurrent requests; the excess gets 503. Default: no limit.
    pub max_concurrent_requests: Option<usize>,
    /// Fault injection for chaos tests.
    pub fault: Option<FaultInput>,
    /// Largest request body buffered so that a request with a body can be retried. Default 65536.
    pub retry_body_limit: Option<usize>,
    /// Forward the request target exactly as the client sent it instead of its
    /// canonical form (normalized path, dot segments removed). Unsafe with path-based
    /// rules: the backend may read a path that another route governs. Default false.
    pub forward_raw_path: Option<bool>,
    /// Protocols a client may switch to with `Upgrade` on this route; a request asking
    /// for another has its `Upgrade` removed and proceeds as plain HTTP/1.1. `h2c` is
    /// never allowed. Default `["websocket"]`.
    pub upgrades: Option<Vec<String>>,
    /// Forward trailer fields a client sends after a chunked or HTTP/2 body (never
    /// framing, hop-by-hop, `Host` or `x-rampart-*` fields). Default false: dropped.
    pub forward_trailers: Option<bool>,
    /// Authentication required on this route. Default: none.
    pub auth: Option<AuthInput>,
    /// Rate limits; a request must conform to every one.
    #[serde(default)]
    pub rate_limits: Vec<RateLimitInput>,
    /// Size and method limits on requests.
    pub limits: Option<RequestLimitsInput>,
    /// Client IP allow and deny lists (CIDR), applied to the client IP derived through
    /// trusted proxies.
    pub ip: Option<IpRulesInput>,
    /// Security headers added to every response (`{}` for the defaults).
    pub security_headers: Option<SecurityHeadersInput>,
    /// Cross-origin resource sharing, including preflight answers.
    pub cors: Option<CorsInput>,
    /// Send the `RateLimit` and `RateLimit-Policy` headers on allowed responses too
    /// (429 answers always carry them). Default false.
    pub rate_limit_headers: Option<bool>,
    /// Daily and monthly request budgets per consumer on this route; a consumer's plan
    /// (set through the admin API) overrides them. Requests without a consumer are not counted.
    pub quota: Option<QuotaInput>,
    /// `Idempotency-Key` handling: the first response to a key is kept and replayed.
    pub idempotency: Option<IdempotencyInput>,
    /// Web application firewall (`{}` for the built-in baseline rules).
    pub waf: Option<WafInput>,
}

/// The WAF on a route.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WafInput {
    /// The rules' entry file (SecLang, such as `examples/crs.conf`, which includes a CRS
    /// checkout's `crs-setup.conf` and `rules/*.conf`), relative to this file. Default:
    /// Rampart's built-in baseline rules.
    pub rules: Option<String>,
    /// An OWASP Core Rule Set directory (a release or checkout, relative to this file):
    /// Rampart reads its `crs-setup.conf` (else `crs-setup.conf.example`) and then
    /// `rules/*.conf`, with no entry file to write. Instead of `rules`.
    pub crs: Option<String>,
    /// `"block"` (default: refuse with 403) or `"detect"` (log and count only).
    pub mode: Option<String>,
    /// CRS paranoia level, 1 to 4. Default 1.
    pub paranoia: Option<u8>,
    /// CRS inbound anomaly score at which a request is blocked. Default 5.
    pub anomaly_threshold: Option<u32>,
    /// Rule ids not run on this route (false positives).
    #[serde(default)]
    pub exclusions: Vec<u64>,
    /// Largest request body inspected. Default 131072.
    pub body_limit: Option<usize>,
    /// Bodies larger than `body_limit`: `"reject"` (413, default) or `"pass"`
    /// (forwarded; the rules see the headers only).
    pub on_large_body: Option<String>,
    /// Bodies within `body_limit` that the WAF cannot read in full as their declared type
    /// (JSON, form, multipart, XML: malformed, open to more than one reading, nested past
    /// 64 levels, or in a charset that is not ASCII-compatible): `"reject"` (400
    /// `waf-body-unparsed`, default, in `detect` mode too) or `"pass"` (forwarded; the
    /// rules see the raw body as `REQUEST_BODY`, with `REQBODY_ERROR` set). Bodies of other
    /// types are inspected as `REQUEST_BODY`. More arguments than the WAF inspects (4096
    /// from the query or the body, 1024 multipart parts) are always refused (400
    /// `waf-too-many-arguments`).
    pub on_unparsed_body: Option<String>,
}

/// Request budgets per consumer, counted in the store.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QuotaInput {
    /// Requests per UTC day. Default: no daily budget.
    pub daily: Option<u64>,
    /// Requests per UTC calendar month. Default: no monthly budget.
    pub monthly: Option<u64>,
}

/// Idempotency keys (IETF httpapi `Idempotency-Key` draft).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IdempotencyInput {
    /// Request header carrying the key. Default `Idempotency-Key`.
    pub header: Option<String>,
    /// Methods the key applies to. Default `["POST", "PATCH"]`.
    pub methods: Option<Vec<String>>,
    /// Refuse such requests without a key (400). Default false.
    pub required: Option<bool>,
    /// How long a response is kept for replay. Default `"24h"`.
    pub ttl: Option<DurationText>,
    /// Largest request body fingerprinted; larger gets 413. Default 1048576.
    pub max_body_bytes: Option<usize>,
    /// Largest response body kept; a larger response is passed on but not kept, so a
    /// repeat is processed again. Default 1048576.
    pub max_response_bytes: Option<usize>,
}

/// Security response headers; unset fields take the default, `""` turns one off.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecurityHeadersInput {
    /// `Strict-Transport-Security`, sent on HTTPS only. Default `max-age=31536000; includeSubDomains`.
    pub hsts: Option<String>,
    /// Send `X-Content-Type-Options: nosniff`. Default true.
    pub nosniff: Option<bool>,
    /// CSP `frame-ancestors` (and `X-Frame-Options: DENY` when `'none'`). Default `'none'`.
    pub frame_ancestors: Option<String>,
    /// `Referrer-Policy`. Default `no-referrer`.
    pub referrer_policy: Option<String>,
    /// `Content-Security-Policy`. Default: none (only `frame-ancestors`).
    pub csp: Option<String>,
}

/// CORS settings.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CorsInput {
    /// Allowed origins such as `https://app.example.com`, or `"*"`.
    pub allow_origins: Vec<String>,
    /// Allowed methods. Default `GET, HEAD, POST`.
    pub allow_methods: Option<Vec<String>>,
    /// Allowed request headers. Default: none beyond the CORS-safelisted ones.
    #[serde(default)]
    pub allow_headers: Vec<String>,
    /// Response headers scripts may read.
    #[serde(default)]
    pub expose_headers: Vec<String>,
    /// Allow credentials (cookies); not with `"*"`. Default false.
    pub allow_credentials: Option<bool>,
    /// How long browsers may cache a preflight answer. Default `"10m"`.
    pub max_age: Option<DurationText>,
}

/// Request limits on a route.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestLimitsInput {
    /// Largest request body; larger gets 413. Default: no limit beyond the server's.
    pub max_body_bytes: Option<u64>,
    /// Most request headers; more gets 431.
    pub max_headers: Option<usize>,
    /// Largest total size of request header names and values; more gets 431.
    pub max_header_bytes: Option<usize>,
    /// Largest request target (path and query); longer gets 414.
    pub max_url_bytes: Option<usize>,
    /// Allowed methods; others get 405 with `Allow`.
    pub methods: Option<Vec<String>>,
}

/// IP rules on a route.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IpRulesInput {
    /// When set, only these addresses or CIDRs may call; others get 403.
    #[serde(default)]
    pub allow: Vec<String>,
    /// These addresses or CIDRs get 403 (checked before `allow`).
    #[serde(default)]
    pub deny: Vec<String>,
    /// Files adding to `allow`: one address or CIDR per line, `#` starts a comment.
    /// Reloaded within a second when they change; a file that no longer parses keeps
    /// the previous list.
    #[serde(default)]
    pub allow_files: Vec<String>,
    /// Files adding to `deny`, in the same format.
    #[serde(default)]
    pub deny_files: Vec<String>,
}

/// Route authentication.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthInput {
    /// Accepted credentials, any of them: `"api_key"`, `"jwt"`.
    pub methods: Vec<AuthMethodInput>,
    /// How JWT bearer tokens are checked (required with `"jwt"`).
    pub jwt: Option<JwtInput>,
    /// Scopes the credential must carry, all of them. Default: none.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Header carrying the API key (besides `Authorization: Bearer rk_…`). Default `x-api-key`.
    pub api_key_header: Option<String>,
    /// Query parameter that may carry the API key (removed before forwarding). Default:
    /// keys in the query are not accepted (they end up in logs and browser history).
    pub api_key_query: Option<String>,
    /// JWT claims forwarded upstream as `x-rampart-claim-<name>` headers (string, number
    /// or boolean claims). Default: none.
    #[serde(default)]
    pub forward_claims: Vec<String>,
    /// Also send the upstream a short-lived JWT, signed by Rampart (EdDSA), stating the
    /// principal; its verification key is published at the admin listener's
    /// `/.well-known/jwks.json`.
    pub assertion: Option<AssertionInput>,
}

/// The signed principal assertion sent upstream.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AssertionInput {
    /// Header carrying it. Default `x-rampart-assertion`.
    pub header: Option<String>,
    /// Lifetime of each assertion. Default `"60s"`.
    pub ttl: Option<DurationText>,
    /// Its `aud` claim. Default: the upstream's name.
    pub audience: Option<String>,
    /// Its `iss` claim. Default `rampart`.
    pub issuer: Option<String>,
}

/// An authentication method.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethodInput {
    /// A consumer's API key (`rk_…`).
    ApiKey,
    /// A JWT bearer token from a trusted issuer.
    Jwt,
}

/// JWT validation.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JwtInput {
    /// JWKS URL of the issuer (cached; refetched on an unknown `kid`, at most every 10 s).
    pub jwks_url: Option<String>,
    /// Or a PEM public key file (RSA, EC P-256 or Ed25519).
    pub public_key_pem: Option<String>,
    /// Required `iss`.
    pub issuer: Option<String>,
    /// Accepted `aud` values (any). Default: `aud` not checked.
    #[serde(default)]
    pub audience: Vec<String>,
    /// Accepted algorithms. Default `["RS256", "ES256", "EdDSA"]`.
    pub algorithms: Option<Vec<String>>,
    /// Clock skew allowed on `exp` and `nbf`. Default `"30s"`.
    pub leeway: Option<DurationText>,
    /// Claims that must be present (besides `exp`).
    #[serde(default)]
    pub required_claims: Vec<String>,
}

/// One rate limit (GCRA).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimitInput {
    /// Requests allowed per `per`.
    pub requests: u32,
    /// The period, such as `"1s"` or `"1h"`.
    pub per: DurationText,
    /// Requests allowed at once. Default: `requests`.
    pub burst: Option<u32>,
    /// What is limited: `client_ip` (default), `consumer`, `api_key`, `route`,
    /// `header:<name>` or `claim:<name>` (a JWT claim). A consumer's plan replaces the
    /// numbers of `consumer` limits.
    pub key: Option<String>,
    /// When the shared limiter (Redis) is unreachable: `"open"` (default: enforce a local
    /// limit meanwhile) or `"closed"` (refuse with 503).
    pub on_error: Option<String>,
}

/// Route match conditions; all given conditions must hold.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MatchInput {
    /// Host names: exact (`api.example.com`) or wildcard (`*.example.com`). Any of them matches.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Exact path.
    pub path: Option<String>,
    /// Path prefix, on segment boundaries: `/api` matches `/api` and `/api/x`, not `/apix`.
    pub path_prefix: Option<String>,
    /// Regular expression that must match the whole path.
    pub path_regex: Option<String>,
    /// Match the path condition in any letter case (`/admin` also matches `/ADMIN/x`).
    /// Set it when the backend routes without regard to case (Express by default, IIS):
    /// otherwise `/ADMIN` escapes a route that governs `/admin`. Default false.
    pub path_ignore_case: Option<bool>,
    /// Allowed methods. Default: any.
    #[serde(default)]
    pub methods: Vec<String>,
    /// Headers that must be present with exactly these values.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// Path rewriting.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RewriteInput {
    /// Remove the route's `path_prefix` from the path before forwarding.
    #[serde(default)]
    pub strip_prefix: bool,
    /// Put this in front of the (possibly stripped) path.
    pub add_prefix: Option<String>,
}

/// Header operations, applied in the order remove, set, add.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HeaderOpsInput {
    /// Headers to remove.
    #[serde(default)]
    pub remove: Vec<String>,
    /// Headers to set, replacing any existing values.
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    /// Headers to add beside existing values.
    #[serde(default)]
    pub add: BTreeMap<String, String>,
}

/// Per-route timeouts.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TimeoutsInput {
    /// Time for one attempt to get response headers. Default `"15s"`.
    pub per_try: Option<DurationText>,
    /// Time for the whole request across attempts and backoff. Default `"30s"`.
    pub total: Option<DurationText>,
    /// Once the response head has arrived, the longest the upstream may send nothing
    /// of the body (measured between two reads, not over the whole body, like nginx's
    /// `proxy_read_timeout`). Past it the client's response is cut off as incomplete
    /// (HTTP/1.1: the connection closes before the body's end; HTTP/2: the stream is
    /// reset), the upstream connection is closed, not reused, and the access log's
    /// `error` is `upstream-body-timeout`. A stream that may pause longer (server-sent
    /// events without heartbeats) needs a longer value. Default `"60s"`.
    pub upstream_body_idle: Option<DurationText>,
    /// The longest a write of the response to the client may make no progress
    /// (measured between two writes that moved bytes, like nginx's `send_timeout`).
    /// Past it the client connection is closed and the upstream exchange dropped (its
    /// connection is not reused); the access log's `error` is `client-write-timeout`.
    /// Applies to HTTP/1.1 clients (an HTTP/2 response waits on the client's
    /// flow-control window, which it does not bound). Default `"60s"`.
    pub client_write: Option<DurationText>,
}

/// Retry policy.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryInput {
    /// Retries after the first attempt; 0 disables. Default 2.
    pub attempts: Option<u32>,
    /// Response statuses that are retried. Default `[502, 503, 504]`.
    pub on_status: Option<Vec<u16>>,
    /// Retry connect failures. Default true.
    pub on_connect_failure: Option<bool>,
    /// Retry a per-try timeout. Default false (the upstream may still be working).
    pub on_timeout: Option<bool>,
    /// Retry non-idempotent methods (POST, PATCH) too. Default false.
    pub non_idempotent: Option<bool>,
    /// Backoff ceiling for the first retry (full jitter, doubling). Default `"25ms"`.
    pub backoff_base: Option<DurationText>,
    /// Largest backoff ceiling. Default `"250ms"`.
    pub backoff_max: Option<DurationText>,
}

/// Fallback while the breaker is open.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FallbackInput {
    /// Answer with this status (with `body`).
    pub status: Option<u16>,
    /// Body of the static answer.
    pub body: Option<String>,
    /// Content-Type of the static answer. Default `text/plain; charset=utf-8`.
    pub content_type: Option<String>,
    /// Or send the request to this other upstream pool instead.
    pub upstream: Option<String>,
}

/// Fault injection.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FaultInput {
    /// Delay added to affected requests.
    pub delay: Option<DurationText>,
    /// Percentage (0-100) of requests delayed.
    pub delay_percent: Option<f64>,
    /// Status answered to aborted requests. Default 503.
    pub abort_status: Option<u16>,
    /// Percentage (0-100) of requests aborted without reaching the upstream.
    pub abort_percent: Option<f64>,
}
