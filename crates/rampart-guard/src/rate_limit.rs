//! Rate limits as GCRA decisions in the shared state.

use std::sync::Arc;

use http::header::HeaderValue;
use parking_lot::Mutex;
use rampart_config::{LimitKey, RateLimitRule};
use rampart_proxy::phase::{
    Guard, GuardCheck, RequestContext, ResponseFilter, ResponseView, Verdict,
};
use rampart_proxy::{ErrorKind, ProxyError};
use rampart_resilience::{Admission, CircuitBreaker};
use rampart_store::{LocalState, RateDecision, RateSpec, SharedState, StoreError};
use rampart_telemetry::Metrics;
use std::time::Instant;

/// Enforces a route's rate limits; a request must conform to all of them.
pub struct RateLimitGuard {
    /// Route name (keys and metrics).
    route: Arc<str>,
    /// The limits, each with the start of its limiter keys (`<route>:<i>:`) and its
    /// numbers worked out.
    rules: Vec<(RateLimitRule, String, RateSpec)>,
    /// The shared limiter (in-process or Redis).
    limiter: Arc<dyn SharedState>,
    /// The local limiter used while the shared one is unreachable.
    fallback: Arc<LocalState>,
    /// Stops asking an unreachable shared limiter on every request; probes it again
    /// after a second.
    breaker: Arc<Mutex<CircuitBreaker>>,
    /// Where decisions are counted.
    metrics: Arc<Metrics>,
    /// Allowed responses carry the `RateLimit` headers too (so the state is kept).
    headers_always: bool,
}

/// Appends `ip` in its usual text form (IPv4 without the formatting machinery).
fn push_ip(out: &mut String, ip: std::net::IpAddr) {
    match ip {
        std::net::IpAddr::V4(v4) => {
            let mut digits = itoa::Buffer::new();
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                out.push_str(digits.format(octet));
            }
        }
        std::net::IpAddr::V6(v6) => {
            use std::fmt::Write;
            let _ = write!(out, "{v6}");
        }
    }
}

/// The tightest limit's state, for the `RateLimit` response headers.
#[derive(Debug, Clone)]
pub struct RateLimitState {
    limit: u32,
    window_secs: u64,
    remaining: u32,
    reset_secs: u64,
}

fn ceil_secs(d: std::time::Duration) -> u64 {
    d.as_millis().div_ceil(1000) as u64
}

impl RateLimitGuard {
    /// Enforces `rules` on route `route`; `headers_always`: allowed responses carry
    /// the `RateLimit` headers too (refusals always do).
    pub fn new(
        route: Arc<str>,
        rules: Vec<RateLimitRule>,
        limiter: Arc<dyn SharedState>,
        fallback: Arc<LocalState>,
        breaker: Arc<Mutex<CircuitBreaker>>,
        metrics: Arc<Metrics>,
        headers_always: bool,
    ) -> Self {
        let rules = rules
            .into_iter()
            .enumerate()
            .map(|(i, rule)| {
                let spec = RateSpec::new(rule.requests, rule.per, rule.burst);
                (rule, format!("{route}:{i}:"), spec)
            })
            .collect();
        Self {
            route,
            rules,
            limiter,
            fallback,
            breaker,
            metrics,
            headers_always,
        }
    }

    /// Writes the limiter key of a rule for this request, `<route>:<i>:<subject>`, into
    /// `key` (cleared first; one buffer serves every rule of a request).
    fn key(
        key: &mut String,
        prefix: &str,
        rule: &RateLimitRule,
        head: &http::request::Parts,
        ctx: &RequestContext,
    ) {
        key.clear();
        key.push_str(prefix);
        let principal = ctx.principal.as_deref();
        let mut subject = |kind: &str, value: &str| {
            key.push_str(kind);
            key.push_str(value);
            true
        };
        let written = match &rule.key {
            LimitKey::ClientIp => false,
            LimitKey::Route => subject("route", ""),
            LimitKey::Consumer => principal.is_some_and(|p| subject("consumer:", &p.consumer_id)),
            LimitKey::ApiKey => principal.is_some_and(|p| subject("key:", &p.key_id)),
            // A field an earlier guard set (the principal's) counts as the request's.
            LimitKey::Header(name) => head
                .headers
                .get(name)
                .or_else(|| ctx.added.get(name))
                .is_some_and(|v| subject("h:", &String::from_utf8_lossy(v.as_bytes()))),
            LimitKey::Claim(claim) => principal
                .and_then(|p| p.claims.iter().find(|(name, _)| name == claim))
                .is_some_and(|(_, value)| subject("c:", value)),
        };
        if !written {
            key.push_str("ip:");
            match ctx.client_ip_text() {
                Some(text) => key.push_str(text),
                None => push_ip(key, ctx.client_ip),
            }
        }
    }

    /// The rule's numbers (`spec`, worked out with the rule), or the consumer's plan's
    /// for a `consumer` limit: the spec, the limit and its window in seconds.
    fn spec(rule: &RateLimitRule, spec: &RateSpec, ctx: &RequestContext) -> (RateSpec, u32, u64) {
        let plan_rate = match rule.key {
            LimitKey::Consumer => ctx
                .principal
                .as_ref()
                .and_then(|p| p.plan.as_ref())
                .and_then(|plan| plan.rate),
            _ => None,
        };
        match plan_rate {
            Some(p) => (
                RateSpec::new(p.requests, p.per, p.burst),
                p.requests,
                p.per.as_secs().max(1),
            ),
            None => (*spec, rule.requests, rule.per.as_secs().max(1)),
        }
    }

    /// The decision of the shared limiter for `key`, which must be asked (Redis): past
    /// a breaker that stops asking while it fails, with the local fallback when the
    /// rule fails open.
    async fn decide_shared(
        &self,
        key: &str,
        spec: &RateSpec,
        fail_open: bool,
        now: Instant,
    ) -> Result<RateDecision, ProxyError> {
        let admission = self.breaker.lock().try_acquire(now);
        let shared = match admission {
            Admission::Rejected => Err(StoreError::Unavailable(
                "shared limiter skipped while it is failing".into(),
            )),
            _ => {
                let result = self.limiter.rate_limit(key, spec, 1).await;
                let ok = !matches!(result, Err(StoreError::Unavailable(_)));
                self.breaker
                    .lock()
                    .on_result(Instant::now(), ok, admission == Admission::Probe);
                result
            }
        };
        match shared {
            Ok(decision) => {
                crate::outage::RATE_LIMITER.succeeded();
                Ok(decision)
            }
            Err(e) => {
                crate::backend_error(&self.metrics, &self.route, "rate_limiter");
                crate::outage::RATE_LIMITER.failed(
                    &e,
                    if fail_open {
                        "routes with on_error = \"open\" use a local limit"
                    } else {
                        "routes with on_error = \"closed\" refuse (503)"
                    },
                );
                if !fail_open {
                    return Err(ProxyError::new(
                        ErrorKind::GuardUnavailable,
                        format!("rate limiter: {e}"),
                    ));
                }
                Ok(self.fallback.decide_now(key, spec, 1, Instant::now()))
            }
        }
    }

    /// Takes in one rule's decision: keeps the tightest state, and refuses the request
    /// when the rule does (the state then kept for the `RateLimit` headers).
    fn take_decision(
        &self,
        ctx: &mut RequestContext,
        tightest: &mut Option<RateLimitState>,
        decision: &RateDecision,
        (limit, window_secs): (u32, u64),
    ) -> Result<(), ProxyError> {
        if tightest
            .as_ref()
            .is_none_or(|t| decision.remaining < t.remaining)
        {
            *tightest = Some(RateLimitState {
                limit,
                window_secs,
                remaining: decision.remaining,
                reset_secs: ceil_secs(decision.reset_after),
            });
        }
        if decision.allowed {
            return Ok(());
        }
        if let Some(t) = tightest.take() {
            ctx.held.push(Box::new(t));
        }
        crate::deny(&self.metrics, &self.route, "rate_limited");
        let retry = u32::try_from(ceil_secs(decision.retry_after)).unwrap_or(u32::MAX);
        Err(ProxyError::new(
            ErrorKind::RateLimited(retry),
            "rate limit reached",
        ))
    }

    /// Keeps the tightest state of an allowed request when its response carries the
    /// `RateLimit` headers.
    fn allowed(&self, ctx: &mut RequestContext, tightest: Option<RateLimitState>) {
        if let Some(t) = tightest.filter(|_| self.headers_always) {
            ctx.held.push(Box::new(t));
        }
    }

    /// Decides with an in-process limiter, at once (the key built in a per-thread
    /// buffer). From rule `i` on the limiter must be asked (`Err(i)`) when it is shared.
    fn check_now(
        &self,
        head: &http::request::Parts,
        ctx: &mut RequestContext,
        now: Instant,
        tightest: &mut Option<RateLimitState>,
    ) -> Result<Result<(), ProxyError>, usize> {
        thread_local! {
            static KEY: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
        }
        for (i, (rule, prefix, spec)) in self.rules.iter().enumerate() {
            let (spec, limit, window_secs) = Self::spec(rule, spec, ctx);
            let decision = KEY.with_borrow_mut(|key| {
                Self::key(key, prefix, rule, head, ctx);
                self.limiter.rate_limit_now(key, &spec, 1, now)
            });
            let Some(decision) = decision else {
                return Err(i);
            };
            if let Err(refused) = self.take_decision(ctx, tightest, &decision, (limit, window_secs))
            {
                return Ok(Err(refused));
            }
        }
        Ok(Ok(()))
    }

    /// Decides rules `from..` with the shared limiter, after `check_now` decided the
    /// ones before.
    async fn check_shared(
        &self,
        head: &http::request::Parts,
        ctx: &mut RequestContext,
        now: Instant,
        mut tightest: Option<RateLimitState>,
        from: usize,
    ) -> Result<(), ProxyError> {
        let mut key = String::with_capacity(128);
        for (rule, prefix, spec) in &self.rules[from..] {
            let (spec, limit, window_secs) = Self::spec(rule, spec, ctx);
            Self::key(&mut key, prefix, rule, head, ctx);
            let decision = self.decide_shared(&key, &spec, rule.fail_open, now).await?;
            self.take_decision(ctx, &mut tightest, &decision, (limit, window_secs))?;
        }
        self.allowed(ctx, tightest);
        Ok(())
    }
}

impl Guard for RateLimitGuard {
    fn name(&self) -> &'static str {
        "rate_limit"
    }

    /// An in-process limiter decides at once; a shared one is waited for.
    fn check<'a>(
        &'a self,
        head: &'a mut http::request::Parts,
        ctx: &'a mut RequestContext,
    ) -> GuardCheck<'a> {
        // Decided as of the request's arrival: one clock read serves every phase.
        let now = ctx.received;
        let mut tightest = None;
        match self.check_now(head, ctx, now, &mut tightest) {
            Ok(Ok(())) => {
                self.allowed(ctx, tightest);
                GuardCheck::Now(Ok(Verdict::Continue))
            }
            Ok(Err(refused)) => GuardCheck::Now(Err(refused)),
            Err(from) => GuardCheck::Later(Box::pin(async move {
                self.check_shared(head, ctx, now, tightest, from)
                    .await
                    .map(|()| Verdict::Continue)
            })),
        }
    }
}

/// Adds the IETF `RateLimit-Policy` and `RateLimit` headers (draft-ietf-httpapi-ratelimit-headers)
/// for the tightest limit to 429 answers, and to every response when `always`.
pub struct RateLimitHeaders {
    /// Also on allowed responses.
    pub always: bool,
}

impl ResponseFilter for RateLimitHeaders {
    fn filter(&self, ctx: &RequestContext, head: &mut ResponseView<'_>) {
        if !self.always && head.status() != http::StatusCode::TOO_MANY_REQUESTS {
            return;
        }
        let Some(state) = ctx
            .held
            .iter()
            .find_map(|h| h.downcast_ref::<RateLimitState>())
        else {
            return;
        };
        let policy = format!("\"default\";q={};w={}", state.limit, state.window_secs);
        let current = format!("\"default\";r={};t={}", state.remaining, state.reset_secs);
        if let (Ok(p), Ok(c)) = (
            HeaderValue::from_str(&policy),
            HeaderValue::from_str(&current),
        ) {
            head.headers().insert("ratelimit-policy", p);
            head.headers().insert("ratelimit", c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_written_as_their_display_form() {
        for ip in [
            "0.0.0.0",
            "203.0.113.9",
            "255.255.255.255",
            "::1",
            "2001:db8::7",
        ] {
            let ip: std::net::IpAddr = ip.parse().expect("address");
            let mut out = String::from("ip:");
            push_ip(&mut out, ip);
            assert_eq!(out, format!("ip:{ip}"));
        }
    }
}
