//! API-key authentication.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use http::header::{HeaderName, HeaderValue, AUTHORIZATION};
use moka::future::Cache;
use rampart_config::AuthPolicy;
use rampart_crypto::SigningKey;
use rampart_proxy::phase::{Guard, GuardCheck, Plan, PlanRate, Principal, RequestContext, Verdict};
use rampart_proxy::{ErrorKind, ProxyError};
use rampart_store::{ApiKeyStore, ConsumerStatus, ConsumerStore, SharedState, Store, StoreError};
use rampart_telemetry::Metrics;
use tokio::sync::broadcast::error::RecvError;

/// Headers carrying the principal upstream; copies sent by clients are removed.
static CONSUMER: HeaderName = HeaderName::from_static("x-rampart-consumer");
static KEY_ID: HeaderName = HeaderName::from_static("x-rampart-key-id");
static SCOPES: HeaderName = HeaderName::from_static("x-rampart-scopes");

/// Finds who an API key belongs to.
#[async_trait]
pub trait KeyLookup: Send + Sync {
    /// The principal of a usable key whose consumer is active, or `None`.
    async fn principal(&self, presented: &str) -> Result<Option<Principal>, StoreError>;
}

#[async_trait]
impl KeyLookup for Store {
    async fn principal(&self, presented: &str) -> Result<Option<Principal>, StoreError> {
        let Some(key) = self.verify_key(presented).await? else {
            return Ok(None);
        };
        let consumer = self.consumer(&key.consumer_id).await?;
        if consumer.status != ConsumerStatus::Active {
            return Ok(None);
        }
        Ok(Some(Principal {
            consumer_id: key.consumer_id,
            key_id: key.id,
            scopes: key.scopes,
            claims: Vec::new(),
            plan: consumer.plan.map(|p| Arc::new(plan_from(p))),
        }))
    }
}

/// The data plane's view of a stored plan.
fn plan_from(p: rampart_store::ConsumerPlan) -> Plan {
    Plan {
        rate: p.rate_limit.map(|r| PlanRate {
            requests: r.requests.max(1),
            per: Duration::from_secs(r.per_seconds.max(1)),
            burst: r.burst.unwrap_or(r.requests).max(1),
        }),
        daily_quota: p.daily_quota,
        monthly_quota: p.monthly_quota,
    }
}

/// A verified principal with the headers that name it upstream, built once.
#[derive(Debug)]
pub struct Admitted {
    /// Who.
    pub principal: Arc<Principal>,
    /// `x-rampart-consumer`, `-key-id` and `-scopes`, as sent upstream.
    headers: Vec<(&'static HeaderName, HeaderValue)>,
}

impl Admitted {
    /// Wraps `principal`, building its headers.
    pub fn new(principal: Principal) -> Self {
        let scopes = principal.scopes.join(" ");
        let headers = [
            (&CONSUMER, principal.consumer_id.as_str()),
            (&KEY_ID, principal.key_id.as_str()),
            (&SCOPES, scopes.as_str()),
        ]
        .into_iter()
        .filter_map(|(name, value)| HeaderValue::from_str(value).ok().map(|v| (name, v)))
        .collect();
        Self {
            principal: Arc::new(principal),
            headers,
        }
    }
}

/// A cached answer about a key: its principal (`None`: refused) and until when it
/// is trusted.
#[derive(Debug, Clone)]
struct Answer {
    admitted: Option<Arc<Admitted>>,
    expires: Instant,
}

/// Most answers one worker thread keeps in its own copy ([`NearAnswers`]).
const NEAR_CAPACITY: usize = 4096;

/// One worker thread's copy of the answers it used last, in front of the shared
/// cache: a hit costs a hash lookup on the thread's own memory, no lock, no atomic
/// read-modify-write and no cache upkeep. Entries keep the shared answer's expiry, and
/// a [`KeyCache::clear`] voids them all (their generation is then past).
#[derive(Default)]
struct NearAnswers {
    /// The cache ([`KeyCache::id`]) and its generation the entries were copied from.
    source: (u64, u64),
    entries: HashMap<Box<[u8]>, Answer, foldhash::fast::RandomState>,
}

impl NearAnswers {
    /// The answer for `presented` copied from `source`, while it is trusted at `now`.
    fn get(&self, source: (u64, u64), presented: &[u8], now: Instant) -> Option<&Answer> {
        if self.source != source {
            return None;
        }
        self.entries.get(presented).filter(|a| a.expires > now)
    }

    /// Keeps `answer`, copied from `source`; a full table first drops what expired,
    /// and everything if that is not enough.
    fn insert(&mut self, source: (u64, u64), presented: &[u8], answer: Answer, now: Instant) {
        if self.source != source {
            self.entries.clear();
            self.source = source;
        }
        if self.entries.len() >= NEAR_CAPACITY {
            self.entries.retain(|_, a| a.expires > now);
            if self.entries.len() >= NEAR_CAPACITY / 2 {
                self.entries.clear();
            }
        }
        self.entries.insert(presented.into(), answer);
    }
}

/// A presented key as text: visible ASCII (as every key Rampart issues is), else `None`.
fn key_text(presented: &[u8]) -> Option<&str> {
    if !presented.iter().all(u8::is_ascii_graphic) {
        return None;
    }
    std::str::from_utf8(presented).ok()
}

thread_local! {
    static NEAR: RefCell<NearAnswers> = RefCell::new(NearAnswers::default());
}

/// Verified (and refused) keys, kept briefly: in a cache shared by the process, and
/// each worker thread's latest answers in a copy of its own.
pub struct KeyCache {
    lookup: Arc<dyn KeyLookup>,
    /// Hashed with a fast, per-process seeded hasher.
    entries: Cache<String, Answer, foldhash::fast::RandomState>,
    /// How long an answer is trusted.
    ttl: Duration,
    /// Tells this cache's per-thread copies from another cache's (tests and tools run
    /// several in one process).
    id: u64,
    /// Bumped by every [`Self::clear`]: per-thread copies made before it are void.
    generation: AtomicU64,
}

impl KeyCache {
    /// A cache keeping answers for `ttl`.
    pub fn new(lookup: Arc<dyn KeyLookup>, ttl: Duration) -> Self {
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        Self {
            lookup,
            entries: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(ttl)
                .build_with_hasher(foldhash::fast::RandomState::default()),
            ttl,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            generation: AtomicU64::new(0),
        }
    }

    /// The principal for a presented key (cached, including refusals). Concurrent
    /// misses for one key share one lookup: when an entry expires, every connection
    /// presenting that key would otherwise ask the store (and record the key's use) at
    /// once.
    pub async fn principal(&self, presented: &str) -> Result<Option<Arc<Admitted>>, StoreError> {
        if let Some(cached) = self.entries.get(presented).await {
            return Ok(cached.admitted);
        }
        self.entries
            .try_get_with(presented.to_string(), async {
                let admitted = self
                    .lookup
                    .principal(presented)
                    .await?
                    .map(|p| Arc::new(Admitted::new(p)));
                Ok(Answer {
                    admitted,
                    expires: Instant::now() + self.ttl,
                })
            })
            .await
            .map(|answer| answer.admitted)
            .map_err(|shared: Arc<StoreError>| {
                // Every waiter holds the one error; the last can take it whole.
                Arc::try_unwrap(shared).unwrap_or_else(|e| StoreError::Unavailable(e.to_string()))
            })
    }

    /// The cached answer for a presented key (as the request carries it) at `now` when
    /// it is at hand without waiting (`None`: not cached, expired at `now`, or the cache
    /// is busy with its upkeep; ask [`Self::principal`]). Looks in this thread's copy
    /// first, which holds only keys checked to be text; a presented value that is not
    /// visible ASCII text is no key and refused at once.
    pub fn cached_now(&self, presented: &[u8], now: Instant) -> Option<Option<Arc<Admitted>>> {
        // Read before the shared cache: a clear after this voids what is copied below.
        let source = (self.id, self.generation.load(Ordering::Acquire));
        let near = NEAR.with_borrow(|near| {
            near.get(source, presented, now)
                .map(|answer| answer.admitted.clone())
        });
        if near.is_some() {
            return near;
        }
        let Some(text) = key_text(presented) else {
            return Some(None);
        };
        let lookup = std::pin::pin!(self.entries.get(text));
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        let answer = match std::future::Future::poll(lookup, &mut cx) {
            std::task::Poll::Ready(answer) => answer?,
            std::task::Poll::Pending => return None,
        };
        if answer.expires <= now {
            return None;
        }
        let admitted = answer.admitted.clone();
        NEAR.with_borrow_mut(|near| near.insert(source, presented, answer, now));
        Some(admitted)
    }

    /// Drops every cached answer.
    pub fn clear(&self) {
        // The shared entries first: a thread that reads the new generation finds them
        // gone, and one that read the old one made a copy the new one voids.
        self.entries.invalidate_all();
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Clears the cache whenever a credential change is announced (by any instance).
    pub fn listen_for_invalidations(self: &Arc<Self>, shared: Arc<dyn SharedState>) {
        let cache = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let mut messages = match shared.subscribe(rampart_store::INVALIDATION_CHANNEL).await
                {
                    Ok(rx) => rx,
                    Err(e) => {
                        tracing::warn!(
                            "cannot subscribe to credential invalidations (retrying): {e}"
                        );
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                };
                // A missed message (lag) is treated like a message: clear.
                while let Ok(_) | Err(RecvError::Lagged(_)) = messages.recv().await {
                    match cache.upgrade() {
                        Some(cache) => cache.clear(),
                        None => return,
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
    }
}

/// The longest API key looked up (Rampart's are 90 bytes).
const MAX_KEY_LEN: usize = 256;

/// An API key as presented, taken out of the request: it never goes upstream.
enum Presented {
    /// `Authorization: Bearer rk_…`.
    Bearer(HeaderValue),
    /// The configured key field.
    Field(HeaderValue),
    /// The configured query parameter.
    Query(Vec<u8>),
}

impl Presented {
    /// The key's bytes, without surrounding whitespace.
    fn bytes(&self) -> &[u8] {
        match self {
            Presented::Bearer(value) => bearer_key(value).unwrap_or_default(),
            Presented::Field(value) => value.as_bytes().trim_ascii(),
            Presented::Query(key) => key,
        }
    }
}

/// The API key of an `Authorization: Bearer rk_…` field.
fn bearer_key(value: &HeaderValue) -> Option<&[u8]> {
    value
        .as_bytes()
        .strip_prefix(b"Bearer ")
        .map(<[u8]>::trim_ascii)
        .filter(|v| v.starts_with(b"rk_") && v.len() <= MAX_KEY_LEN)
}

/// Credential fields the request may still carry, removed when it is admitted.
#[derive(Debug, Clone, Copy)]
struct Carried {
    authorization: bool,
    api_key_field: bool,
}

/// Requires a valid credential (API key or JWT, as the route allows) with the route's scopes.
pub struct AuthGuard {
    /// Route name (metrics).
    pub route: Arc<str>,
    /// What the route requires.
    pub policy: AuthPolicy,
    /// Key verification.
    pub keys: Arc<KeyCache>,
    /// JWT verification, when the route accepts JWTs.
    pub jwt: Option<crate::jwt::JwtVerifier>,
    /// Forwarded JWT claims and their headers.
    pub claim_headers: Vec<(String, HeaderName)>,
    /// Signs the principal assertion, when the route sends one.
    pub assertion_key: Option<Arc<SigningKey>>,
    /// Where decisions are counted.
    pub metrics: Arc<Metrics>,
}

impl AuthGuard {
    /// A bearer token that is not an API key (a JWT candidate).
    fn bearer_token(headers: &http::HeaderMap) -> Option<String> {
        headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|v| !v.starts_with("rk_") && !v.is_empty() && v.len() <= 8192)
            .map(str::to_string)
    }

    /// The presented key, taken out of the request: `Authorization: Bearer rk_…`, the
    /// configured field, or (when allowed) the configured query parameter; with the
    /// credential fields the request still carries. The value is taken as sent: it is
    /// checked to be text only when the cache does not know it ([`KeyCache::cached_now`]).
    fn presented(&self, head: &mut http::request::Parts) -> Option<(Presented, Carried)> {
        let has_authorization = match head.headers.get(AUTHORIZATION) {
            Some(value) if bearer_key(value).is_some() => {
                let value = head.headers.remove(AUTHORIZATION)?;
                let carried = Carried {
                    authorization: false,
                    api_key_field: true,
                };
                return Some((Presented::Bearer(value), carried));
            }
            found => found.is_some(),
        };
        let carried = Carried {
            authorization: has_authorization,
            api_key_field: false,
        };
        if let Some(value) = head.headers.remove(&self.policy.api_key_header) {
            let key = value.as_bytes().trim_ascii();
            if !key.is_empty() && key.len() <= MAX_KEY_LEN {
                return Some((Presented::Field(value), carried));
            }
        }
        let name = self.policy.api_key_query.as_deref()?;
        let query = head.uri.query()?;
        let mut found = None;
        let kept: Vec<&str> = query
            .split('&')
            .filter(|pair| match pair.split_once('=') {
                Some((k, v)) if k == name => {
                    found.get_or_insert_with(|| v.to_string());
                    false
                }
                _ => true,
            })
            .collect();
        let found = found.filter(|v| !v.is_empty() && v.len() <= MAX_KEY_LEN)?;
        // The key does not travel upstream.
        let path = head.uri.path();
        let rebuilt = if kept.is_empty() {
            path.to_string()
        } else {
            format!("{path}?{}", kept.join("&"))
        };
        let mut parts = head.uri.clone().into_parts();
        parts.path_and_query = rebuilt.parse().ok();
        if let Ok(uri) = http::Uri::from_parts(parts) {
            head.uri = uri;
        }
        Some((Presented::Query(found.into_bytes()), carried))
    }

    /// Decides on a request that presents no API key: a JWT, when the route takes them.
    async fn check_without_api_key(
        &self,
        head: &mut http::request::Parts,
        ctx: &mut RequestContext,
    ) -> Result<(), ProxyError> {
        let principal = match &self.jwt {
            Some(verifier) => match Self::bearer_token(&head.headers) {
                Some(token) => match verifier.verify(&token).await {
                    Ok(p) => Arc::new(Admitted::new(p)),
                    Err(crate::jwt::Rejected(why)) => {
                        crate::deny(&self.metrics, &self.route, "auth_failed");
                        return Err(ProxyError::new(
                            ErrorKind::Unauthenticated,
                            format!("JWT refused: {why}"),
                        ));
                    }
                },
                None => {
                    crate::deny(&self.metrics, &self.route, "auth_missing");
                    return Err(ProxyError::new(
                        ErrorKind::Unauthenticated,
                        "no credentials",
                    ));
                }
            },
            None => {
                crate::deny(&self.metrics, &self.route, "auth_missing");
                return Err(ProxyError::new(ErrorKind::Unauthenticated, "no API key"));
            }
        };
        // The token came in `Authorization`; a key field may be there too.
        let carried = Carried {
            authorization: true,
            api_key_field: true,
        };
        self.admit(head, ctx, principal, carried)
    }

    async fn api_key_principal(&self, presented: &str) -> Result<Arc<Admitted>, ProxyError> {
        match self.keys.principal(presented).await {
            Ok(answer) => self.known_key(answer),
            Err(e) => {
                crate::backend_error(&self.metrics, &self.route, "api_key_store");
                // Never let an unverified key in.
                Err(ProxyError::new(
                    ErrorKind::GuardUnavailable,
                    format!("API key lookup: {e}"),
                ))
            }
        }
    }

    /// The principal of a key the store (or the cache) answered for.
    fn known_key(&self, answer: Option<Arc<Admitted>>) -> Result<Arc<Admitted>, ProxyError> {
        answer.ok_or_else(|| {
            crate::deny(&self.metrics, &self.route, "auth_failed");
            ProxyError::new(
                ErrorKind::Unauthenticated,
                "unknown, revoked or expired API key",
            )
        })
    }

    /// Checks scopes, hides the credential from the upstream and names the principal.
    fn admit(
        &self,
        head: &mut http::request::Parts,
        ctx: &mut RequestContext,
        admitted: Arc<Admitted>,
        carried: Carried,
    ) -> Result<(), ProxyError> {
        let principal = &admitted.principal;
        if !self
            .policy
            .scopes
            .iter()
            .all(|s| principal.scopes.contains(s))
        {
            crate::deny(&self.metrics, &self.route, "forbidden");
            return Err(ProxyError::new(
                ErrorKind::Forbidden,
                "the credential lacks a required scope",
            ));
        }
        // The credential stays here; the upstream learns who called.
        if carried.api_key_field {
            head.headers.remove(&self.policy.api_key_header);
        }
        if carried.authorization {
            head.headers.remove(AUTHORIZATION);
        }
        // One authentication guard a route: the principal's fields are not set yet.
        for (name, value) in &admitted.headers {
            ctx.added.push(name, value.clone());
        }
        for (claim, header) in &self.claim_headers {
            let value = principal
                .claims
                .iter()
                .find(|(name, _)| name == claim)
                .and_then(|(_, v)| HeaderValue::from_str(v).ok());
            if let Some(value) = value {
                head.headers.insert(header.clone(), value);
            }
        }
        if let (Some(settings), Some(key)) = (&self.policy.assertion, &self.assertion_key) {
            head.headers.remove(&settings.header);
            let now = rampart_store::now_ms() / 1000;
            let claims: serde_json::Map<String, serde_json::Value> = principal
                .claims
                .iter()
                .filter(|(name, _)| self.claim_headers.iter().any(|(c, _)| c == name))
                .map(|(name, value)| (name.clone(), value.clone().into()))
                .collect();
            let assertion = serde_json::json!({
                "iss": settings.issuer,
                "aud": settings.audience,
                "sub": principal.consumer_id,
                "iat": now,
                "exp": now + settings.ttl.as_secs().max(1) as i64,
                "jti": ctx.request_id.to_str().unwrap_or(""),
                "key_id": principal.key_id,
                "scope": principal.scopes.join(" "),
                "claims": claims,
            });
            match key.sign_jwt(&assertion) {
                Ok(token) => {
                    if let Ok(value) = HeaderValue::from_str(&token) {
                        head.headers.insert(settings.header.clone(), value);
                    }
                }
                Err(e) => {
                    return Err(ProxyError::new(
                        ErrorKind::Internal,
                        format!("cannot sign the principal assertion: {e}"),
                    ))
                }
            }
        }
        ctx.principal = Some(Arc::clone(principal));
        Ok(())
    }
}

impl Guard for AuthGuard {
    fn name(&self) -> &'static str {
        "auth"
    }

    fn check<'a>(
        &'a self,
        head: &'a mut http::request::Parts,
        ctx: &'a mut RequestContext,
    ) -> GuardCheck<'a> {
        let presented = if self.policy.api_key {
            self.presented(head)
        } else {
            None
        };
        let Some((presented, carried)) = presented else {
            return GuardCheck::Later(Box::pin(async move {
                self.check_without_api_key(head, ctx)
                    .await
                    .map(|()| Verdict::Continue)
            }));
        };
        // A key the cache knows is decided at once, without a boxed future.
        if let Some(answer) = self.keys.cached_now(presented.bytes(), ctx.received) {
            return GuardCheck::Now(
                self.known_key(answer)
                    .and_then(|principal| self.admit(head, ctx, principal, carried))
                    .map(|()| Verdict::Continue),
            );
        }
        // Text: `cached_now` refuses anything else.
        let presented = String::from_utf8_lossy(presented.bytes()).into_owned();
        GuardCheck::Later(Box::pin(async move {
            let principal = self.api_key_principal(&presented).await?;
            self.admit(head, ctx, principal, carried)
                .map(|()| Verdict::Continue)
        }))
    }
}
