//! Request shape limits (methods, target length, header count, declared body size) and
//! client IP rules (inline, and from files reloaded when they change).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use http::header::{HeaderValue, ALLOW, CONTENT_LENGTH};
use ipnet::IpNet;
use rampart_config::{parse_ip_list, IpRules, RequestLimits};
use rampart_proxy::phase::{
    Guard, GuardCheck, RequestContext, ResponseFilter, ResponseView, Verdict,
};
use rampart_proxy::{ErrorKind, ProxyError};
use rampart_telemetry::Metrics;

/// Refuses requests outside a route's limits. A body without a declared length is
/// limited while it streams, by the proxy core.
pub struct RequestLimitGuard {
    /// Route name (metrics).
    pub route: Arc<str>,
    /// The limits.
    pub limits: RequestLimits,
    /// Where refusals are counted.
    pub metrics: Arc<Metrics>,
}

impl RequestLimitGuard {
    fn verdict(&self, head: &http::request::Parts) -> Result<(), ProxyError> {
        let l = &self.limits;
        let refuse = |reason: &'static str, kind: ErrorKind, detail: &str| {
            crate::deny(&self.metrics, &self.route, reason);
            Err(ProxyError::new(kind, detail))
        };
        if !l.methods.is_empty() && !l.methods.contains(&head.method) {
            return refuse(
                "method_not_allowed",
                ErrorKind::MethodNotAllowed,
                "method not allowed on this route",
            );
        }
        let target = head.uri.path_and_query().map_or(0, |p| p.as_str().len());
        if l.max_url_bytes.is_some_and(|max| target > max) {
            return refuse(
                "uri_too_long",
                ErrorKind::UriTooLong,
                "request target over the route limit",
            );
        }
        if l.max_headers.is_some_and(|max| head.headers.len() > max) {
            return refuse(
                "too_many_headers",
                ErrorKind::HeadersTooLarge,
                "header count over the route limit",
            );
        }
        if let Some(max) = l.max_header_bytes {
            let size: usize = head
                .headers
                .iter()
                .map(|(n, v)| n.as_str().len() + v.len())
                .sum();
            if size > max {
                return refuse(
                    "headers_too_large",
                    ErrorKind::HeadersTooLarge,
                    "header size over the route limit",
                );
            }
        }
        let declared = head
            .headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if let (Some(max), Some(len)) = (l.max_body_bytes, declared) {
            if len > max {
                return refuse(
                    "too_large",
                    ErrorKind::BodyTooLarge,
                    "declared body over the route limit",
                );
            }
        }
        Ok(())
    }
}

impl Guard for RequestLimitGuard {
    fn name(&self) -> &'static str {
        "request_limits"
    }

    fn check<'a>(
        &'a self,
        head: &'a mut http::request::Parts,
        _ctx: &'a mut RequestContext,
    ) -> GuardCheck<'a> {
        GuardCheck::Now(self.verdict(head).map(|()| Verdict::Continue))
    }
}

/// Adds `Allow` to 405 answers of a route with a method list.
pub struct AllowHeader(pub HeaderValue);

impl ResponseFilter for AllowHeader {
    fn filter(&self, _ctx: &RequestContext, head: &mut ResponseView<'_>) {
        if head.status() == http::StatusCode::METHOD_NOT_ALLOWED {
            head.headers().insert(ALLOW, self.0.clone());
        }
    }
}

/// The networks an [`IpGuard`] checks: inline ones plus the files' current contents.
#[derive(Debug, Default)]
struct IpLists {
    allow: Vec<IpNet>,
    deny: Vec<IpNet>,
    /// Whether an allow list is configured (then everyone else is refused).
    allow_only: bool,
}

/// The files of an [`IpGuard`] and when each last changed.
type FileStamps = Vec<(PathBuf, Option<SystemTime>)>;

fn stamps(rules: &IpRules) -> FileStamps {
    rules
        .allow_files
        .iter()
        .chain(&rules.deny_files)
        .map(|p| {
            (
                p.clone(),
                std::fs::metadata(p).and_then(|m| m.modified()).ok(),
            )
        })
        .collect()
}

fn load(rules: &IpRules) -> Result<IpLists, String> {
    let read = |paths: &[PathBuf]| -> Result<Vec<IpNet>, String> {
        let mut nets = Vec::new();
        for path in paths {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            nets.extend(parse_ip_list(&text).map_err(|e| format!("{}: {e}", path.display()))?);
        }
        Ok(nets)
    };
    let mut allow = rules.allow.clone();
    allow.extend(read(&rules.allow_files)?);
    let mut deny = rules.deny.clone();
    deny.extend(read(&rules.deny_files)?);
    Ok(IpLists {
        allow,
        deny,
        allow_only: !rules.allow.is_empty() || !rules.allow_files.is_empty(),
    })
}

/// Refuses clients outside a route's IP rules (deny first, then allow). Lists from
/// files are re-read within a second of a change; a file that no longer parses keeps
/// the previous lists (and says why in the log).
pub struct IpGuard {
    route: Arc<str>,
    lists: Arc<ArcSwap<IpLists>>,
    metrics: Arc<Metrics>,
}

impl IpGuard {
    /// A guard for `rules`; watches their files while it lives.
    pub fn new(route: Arc<str>, rules: IpRules, metrics: Arc<Metrics>) -> Self {
        let initial = load(&rules).unwrap_or_else(|e| {
            // The compile step checked the files; if one broke since, the inline rules
            // hold until it is mended.
            tracing::error!(route = %route, "IP list: {e}; using the inline rules only");
            IpLists {
                allow: rules.allow.clone(),
                deny: rules.deny.clone(),
                allow_only: !rules.allow.is_empty() || !rules.allow_files.is_empty(),
            }
        });
        let lists = Arc::new(ArcSwap::from_pointee(initial));
        if !rules.allow_files.is_empty() || !rules.deny_files.is_empty() {
            let weak = Arc::downgrade(&lists);
            let route = Arc::clone(&route);
            tokio::spawn(async move {
                let mut seen = stamps(&rules);
                loop {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    let Some(lists) = weak.upgrade() else { return };
                    let now = stamps(&rules);
                    if now == seen {
                        continue;
                    }
                    seen = now;
                    match load(&rules) {
                        Ok(fresh) => {
                            tracing::info!(route = %route, allow = fresh.allow.len(), deny = fresh.deny.len(), "IP lists reloaded");
                            lists.store(Arc::new(fresh));
                        }
                        Err(e) => {
                            tracing::error!(route = %route, "IP list not reloaded, the previous one stays: {e}")
                        }
                    }
                }
            });
        }
        Self {
            route,
            lists,
            metrics,
        }
    }
}

impl Guard for IpGuard {
    fn name(&self) -> &'static str {
        "ip_rules"
    }

    fn check<'a>(
        &'a self,
        _head: &'a mut http::request::Parts,
        ctx: &'a mut RequestContext,
    ) -> GuardCheck<'a> {
        let ip = match ctx.client_ip {
            std::net::IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .map_or(ctx.client_ip, std::net::IpAddr::V4),
            v4 => v4,
        };
        let lists = self.lists.load();
        let denied = lists.deny.iter().any(|n| n.contains(&ip))
            || (lists.allow_only && !lists.allow.iter().any(|n| n.contains(&ip)));
        let verdict = if denied {
            crate::deny(&self.metrics, &self.route, "ip_denied");
            Err(ProxyError::new(
                ErrorKind::IpDenied,
                format!("client {ip} refused by the route's IP rules"),
            ))
        } else {
            Ok(Verdict::Continue)
        };
        GuardCheck::Now(verdict)
    }
}
