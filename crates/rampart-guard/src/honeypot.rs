//! Honeypot paths: a client that asks for one is banned from every route.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use moka::sync::Cache;
use rampart_config::Honeypots;
use rampart_proxy::phase::{Guard, GuardCheck, RequestContext, Verdict};
use rampart_proxy::{ErrorKind, ProxyError};
use rampart_store::{AuditEvent, AuditSink, SharedState};
use rampart_telemetry::Metrics;
use tokio::sync::broadcast::error::RecvError;

/// How long this instance trusts its own answer to "is this client banned?" before
/// asking the shared state again (bounds how late a ban from another instance applies).
const BAN_CACHE_TTL: Duration = Duration::from_secs(1);

/// Recent answers to "is this client banned?".
pub struct BanCache(Cache<IpAddr, bool>);

impl BanCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self(
            Cache::builder()
                .max_capacity(100_000)
                .time_to_live(BAN_CACHE_TTL)
                .build(),
        )
    }
}

impl BanCache {
    /// Forgets the cached answer for a client whenever the lifting of its ban is
    /// announced (by any instance): `ban:<ip>` on the invalidation channel.
    pub fn listen_for_invalidations(self: &Arc<Self>, shared: Arc<dyn SharedState>) {
        let cache = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let mut messages = match shared.subscribe(rampart_store::INVALIDATION_CHANNEL).await
                {
                    Ok(rx) => rx,
                    Err(e) => {
                        tracing::warn!("cannot subscribe to ban invalidations (retrying): {e}");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                };
                loop {
                    let message = messages.recv().await;
                    let Some(cache) = cache.upgrade() else {
                        return;
                    };
                    match message {
                        Ok(text) => {
                            let ip = text
                                .strip_prefix(rampart_store::BAN_PREFIX)
                                .and_then(|ip| ip.parse::<IpAddr>().ok());
                            if let Some(ip) = ip {
                                cache.0.invalidate(&ip);
                            }
                        }
                        // A missed message may have been a lifted ban: forget them all.
                        Err(RecvError::Lagged(_)) => cache.0.invalidate_all(),
                        Err(RecvError::Closed) => break,
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
    }
}

impl Default for BanCache {
    fn default() -> Self {
        Self::new()
    }
}

/// Refuses banned clients, and bans clients that ask for a honeypot path.
pub struct HoneypotGuard {
    /// Route name (metrics).
    pub route: Arc<str>,
    /// The honeypots.
    pub honeypots: Honeypots,
    /// Where bans are kept (shared by instances with Redis).
    pub shared: Arc<dyn SharedState>,
    /// This instance's cache of ban lookups.
    pub bans: Arc<BanCache>,
    /// Where bans are audited.
    pub audit: Option<Arc<dyn AuditSink>>,
    /// Where refusals are counted.
    pub metrics: Arc<Metrics>,
}

impl HoneypotGuard {
    async fn check_inner(
        &self,
        head: &http::request::Parts,
        ctx: &mut RequestContext,
    ) -> Result<(), ProxyError> {
        let ip = ctx.client_ip;
        let key = format!("{}{ip}", rampart_store::BAN_PREFIX);
        let banned = match self.bans.0.get(&ip) {
            Some(banned) => banned,
            None => match self.shared.flag(&key).await {
                Ok(banned) => {
                    crate::outage::BAN_LIST.succeeded();
                    self.bans.0.insert(ip, banned);
                    banned
                }
                Err(e) => {
                    // A ban list that cannot be read does not stop traffic.
                    crate::backend_error(&self.metrics, &self.route, "ban_list");
                    crate::outage::BAN_LIST
                        .failed(&e, "requests are let through unchecked for bans");
                    false
                }
            },
        };
        if banned {
            crate::deny(&self.metrics, &self.route, "banned");
            return Err(ProxyError::new(
                ErrorKind::Banned,
                format!("{ip} is banned"),
            ));
        }
        let path = head.uri.path();
        if !self.honeypots.paths.iter().any(|p| p.matches(path, false)) {
            return Ok(());
        }
        if let Err(e) = self.shared.set_flag(&key, self.honeypots.ban_for).await {
            tracing::warn!("could not record the ban of {ip}: {e}");
        }
        self.bans.0.insert(ip, true);
        crate::deny(&self.metrics, &self.route, "honeypot");
        tracing::warn!(%ip, path, request_id = ctx.request_id.to_str().unwrap_or("-"), ban_for = ?self.honeypots.ban_for, "honeypot hit: client banned");
        if let Some(audit) = &self.audit {
            let event = AuditEvent {
                time: rampart_store::now_ms(),
                actor: "rampart".into(),
                action: "client.ban".into(),
                resource: format!("ip:{ip}"),
                outcome: "success".into(),
                summary: serde_json::json!({ "reason": "honeypot", "path": path, "ban_seconds": self.honeypots.ban_for.as_secs() }),
                request_id: ctx.request_id.to_str().ok().map(str::to_string),
                source_ip: Some(ip.to_string()),
            };
            if let Err(e) = audit.record(&event).await {
                tracing::error!("could not audit the ban of {ip}: {e}");
            }
        }
        Err(ProxyError::new(ErrorKind::Banned, "honeypot"))
    }
}

impl Guard for HoneypotGuard {
    fn name(&self) -> &'static str {
        "honeypot"
    }

    fn check<'a>(
        &'a self,
        head: &'a mut http::request::Parts,
        ctx: &'a mut RequestContext,
    ) -> GuardCheck<'a> {
        GuardCheck::Later(Box::pin(async move {
            self.check_inner(head, ctx)
                .await
                .map(|()| Verdict::Continue)
        }))
    }
}
