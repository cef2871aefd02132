//! Traffic guards: request phases that authenticate callers and enforce rate limits.
//!
//! [`Guards`] is the [`GuardFactory`] the gateway asks for each route's guards. API
//! keys are verified through a short-lived cache in front of the store (so the request
//! path rarely waits on the database), and every instance drops its cache when a
//! credential changes, announced on the shared-state invalidation channel. Rate limits
//! are GCRA decisions in the shared state (in-process, or Redis for one limit across
//! instances), with a local fallback while Redis is unreachable.

mod api_key;
mod browser;
mod honeypot;
mod idempotency;
mod jwt;
mod outage;
mod quota;
mod rate_limit;
mod request;
mod waf;

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rampart_config::LimitKey;
use rampart_crypto::SigningKey;
use rampart_proxy::phase::{Exchange, Guard, GuardFactory, ResponseFilter};
use rampart_resilience::{BreakerSettings, CircuitBreaker};
use rampart_store::{AuditSink, LocalState, SharedState, Store};
use rampart_telemetry::{GuardLabels, Metrics};

pub use api_key::{Admitted, AuthGuard, KeyCache, KeyLookup};
pub use browser::{CorsFilter, CorsGuard, SecurityHeadersFilter};
pub use honeypot::{BanCache, HoneypotGuard};
pub use idempotency::IdempotencyExchange;
pub use jwt::JwtVerifier;
pub use quota::{QuotaGuard, UsageCounter, USAGE_SYNC_INTERVAL};
pub use rate_limit::{RateLimitGuard, RateLimitHeaders};
pub use request::{AllowHeader, IpGuard, RequestLimitGuard};
pub use waf::WafExchange;

/// How long a verified (or refused) API key is trusted without asking the store again;
/// this bounds how late an instance that missed an invalidation notices a revocation.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(1);

/// Builds the guards routes ask for.
pub struct Guards {
    keys: Arc<KeyCache>,
    limiter: Arc<dyn SharedState>,
    fallback: Arc<LocalState>,
    breaker: Arc<Mutex<CircuitBreaker>>,
    bans: Arc<BanCache>,
    usage: Arc<UsageCounter>,
    assertion_key: Arc<SigningKey>,
    audit: Option<Arc<dyn AuditSink>>,
    metrics: Arc<Metrics>,
}

impl Guards {
    /// Guards verifying keys and counting quotas in `store`, and counting rate limits
    /// and keeping idempotent responses in `shared`. Principal assertions are signed
    /// with a key made for this process unless [`Guards::with_assertion_key`] gives one.
    ///
    /// # Errors
    /// When no signing key can be generated.
    pub fn new(
        store: Store,
        shared: Arc<dyn SharedState>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, rampart_crypto::CryptoError> {
        let keys = Arc::new(KeyCache::new(Arc::new(store.clone()), KEY_CACHE_TTL));
        keys.listen_for_invalidations(Arc::clone(&shared));
        let bans = Arc::new(BanCache::new());
        bans.listen_for_invalidations(Arc::clone(&shared));
        Ok(Self {
            keys,
            limiter: shared,
            fallback: Arc::new(LocalState::default()),
            breaker: Arc::new(Mutex::new(CircuitBreaker::new(BreakerSettings {
                consecutive_failures: 1,
                failure_ratio: 0.0,
                window: Duration::from_secs(10),
                min_requests: 1,
                open_for: Duration::from_secs(1),
                half_open_probes: 1,
            }))),
            bans,
            usage: UsageCounter::start(Arc::new(store)),
            assertion_key: Arc::new(SigningKey::generate()?),
            audit: None,
            metrics,
        })
    }

    /// Principal assertions are signed with `key`.
    pub fn with_assertion_key(mut self, key: Arc<SigningKey>) -> Self {
        self.assertion_key = key;
        self
    }

    /// The assertion key's public half as a JWKS document, for upstreams to verify with.
    pub fn assertion_jwks(&self) -> serde_json::Value {
        serde_json::json!({ "keys": [self.assertion_key.jwk()] })
    }

    /// Writes quota counts not yet in the store (call on shutdown).
    pub async fn flush_usage(&self) -> Result<(), rampart_store::StoreError> {
        self.usage.flush().await
    }

    /// Bans (honeypot hits) are recorded through `audit`.
    pub fn with_audit(mut self, audit: Arc<dyn AuditSink>) -> Self {
        self.audit = Some(audit);
        self
    }
}

impl GuardFactory for Guards {
    fn guards(
        &self,
        config: &rampart_config::Config,
        route: &rampart_config::Route,
    ) -> Vec<Box<dyn Guard>> {
        let mut guards: Vec<Box<dyn Guard>> = Vec::new();
        if let Some(honeypots) = &config.honeypots {
            guards.push(Box::new(HoneypotGuard {
                route: route.name.clone(),
                honeypots: honeypots.clone(),
                shared: Arc::clone(&self.limiter),
                bans: Arc::clone(&self.bans),
                audit: self.audit.clone(),
                metrics: Arc::clone(&self.metrics),
            }));
        }
        // Cheapest refusals first: IP rules, then the request's shape, then CORS
        // preflights (which carry no credentials), then credentials.
        if let Some(rules) = &route.ip {
            guards.push(Box::new(IpGuard::new(
                route.name.clone(),
                rules.clone(),
                Arc::clone(&self.metrics),
            )));
        }
        if let Some(limits) = &route.limits {
            guards.push(Box::new(RequestLimitGuard {
                route: route.name.clone(),
                limits: limits.clone(),
                metrics: Arc::clone(&self.metrics),
            }));
        }
        if let Some(cors) = &route.cors {
            guards.push(Box::new(CorsGuard(cors.clone())));
        }
        if let Some(policy) = &route.auth {
            // Claims the principal carries: forwarded ones and rate-limit keys.
            let mut wanted = policy.forward_claims.clone();
            for rule in &route.rate_limits {
                if let LimitKey::Claim(claim) = &rule.key {
                    wanted.push(claim.to_ascii_lowercase());
                }
            }
            let claim_headers = policy
                .forward_claims
                .iter()
                .filter_map(|claim| {
                    http::HeaderName::from_bytes(format!("x-rampart-claim-{claim}").as_bytes())
                        .ok()
                        .map(|h| (claim.clone(), h))
                })
                .collect();
            guards.push(Box::new(AuthGuard {
                route: route.name.clone(),
                policy: policy.clone(),
                keys: Arc::clone(&self.keys),
                jwt: policy
                    .jwt
                    .clone()
                    .map(|jwt| JwtVerifier::new(jwt, wanted.clone())),
                claim_headers,
                assertion_key: policy
                    .assertion
                    .as_ref()
                    .map(|_| Arc::clone(&self.assertion_key)),
                metrics: Arc::clone(&self.metrics),
            }));
        }
        if !route.rate_limits.is_empty() {
            guards.push(Box::new(RateLimitGuard::new(
                route.name.clone(),
                route.rate_limits.clone(),
                Arc::clone(&self.limiter),
                Arc::clone(&self.fallback),
                Arc::clone(&self.breaker),
                Arc::clone(&self.metrics),
                route.rate_limit_headers,
            )));
        }
        // Last: a budget counts only requests every other guard admitted.
        if let Some(quota) = route.quota {
            guards.push(Box::new(QuotaGuard {
                route: route.name.clone(),
                quota,
                usage: Arc::clone(&self.usage),
                metrics: Arc::clone(&self.metrics),
            }));
        }
        guards
    }

    fn exchanges(
        &self,
        _config: &rampart_config::Config,
        route: &rampart_config::Route,
    ) -> Vec<Box<dyn Exchange>> {
        let mut exchanges: Vec<Box<dyn Exchange>> = Vec::new();
        // The WAF sees every request first; idempotency keys only what it lets through.
        if let Some(waf) = route.waf.clone() {
            exchanges.push(Box::new(WafExchange {
                route: route.name.clone(),
                waf,
                metrics: Arc::clone(&self.metrics),
            }));
        }
        if let Some(settings) = route.idempotency.clone() {
            exchanges.push(Box::new(IdempotencyExchange {
                route: route.name.clone(),
                settings,
                pending_ttl: route.total_timeout + std::time::Duration::from_secs(5),
                shared: Arc::clone(&self.limiter),
                metrics: Arc::clone(&self.metrics),
            }));
        }
        exchanges
    }

    fn response_filters(
        &self,
        _config: &rampart_config::Config,
        route: &rampart_config::Route,
    ) -> Vec<Box<dyn ResponseFilter>> {
        let mut filters: Vec<Box<dyn ResponseFilter>> = Vec::new();
        if let Some(headers) = &route.security_headers {
            filters.push(Box::new(SecurityHeadersFilter(headers.clone())));
        }
        if let Some(cors) = &route.cors {
            filters.push(Box::new(CorsFilter(cors.clone())));
        }
        if !route.rate_limits.is_empty() {
            filters.push(Box::new(RateLimitHeaders {
                always: route.rate_limit_headers,
            }));
        }
        let methods = route
            .limits
            .as_ref()
            .map(|l| &l.methods)
            .filter(|m| !m.is_empty());
        if let Some(methods) = methods {
            let allow = methods
                .iter()
                .map(|m| m.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            if let Ok(value) = http::HeaderValue::from_str(&allow) {
                filters.push(Box::new(AllowHeader(value)));
            }
        }
        filters
    }
}

/// Counts a failure of a guard's backend (store, Redis).
fn backend_error(metrics: &Metrics, route: &str, backend: &'static str) {
    metrics
        .guard_backend_errors
        .get_or_create(&GuardLabels {
            route: route.to_string(),
            reason: backend,
        })
        .inc();
}

/// Counts a refusal.
fn deny(metrics: &Metrics, route: &str, reason: &'static str) {
    metrics
        .guard_denials
        .get_or_create(&GuardLabels {
            route: route.to_string(),
            reason,
        })
        .inc();
}
