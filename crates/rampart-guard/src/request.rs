//! Request shape limits (methods, target length, header count, declared body size) and
//! client IP rules.

use std::sync::Arc;

use http::header::{HeaderValue, ALLOW, CONTENT_LENGTH};
use rampart_config::{IpRules, RequestLimits};
use rampart_proxy::phase::{Guard, GuardFuture, RequestContext, ResponseFilter, Verdict};
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
    ) -> GuardFuture<'a> {
        Box::pin(std::future::ready(
            self.verdict(head).map(|()| Verdict::Continue),
        ))
    }
}

/// Adds `Allow` to 405 answers of a route with a method list.
pub struct AllowHeader(pub HeaderValue);

impl ResponseFilter for AllowHeader {
    fn filter(&self, _ctx: &RequestContext, head: &mut http::response::Parts) {
        if head.status == http::StatusCode::METHOD_NOT_ALLOWED {
            head.headers.insert(ALLOW, self.0.clone());
        }
    }
}

/// Refuses clients outside a route's IP rules (deny first, then allow).
pub struct IpGuard {
    /// Route name (metrics).
    pub route: Arc<str>,
    /// The rules.
    pub rules: IpRules,
    /// Where refusals are counted.
    pub metrics: Arc<Metrics>,
}

impl Guard for IpGuard {
    fn name(&self) -> &'static str {
        "ip_rules"
    }

    fn check<'a>(
        &'a self,
        _head: &'a mut http::request::Parts,
        ctx: &'a mut RequestContext,
    ) -> GuardFuture<'a> {
        let ip = match ctx.client_ip {
            std::net::IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .map_or(ctx.client_ip, std::net::IpAddr::V4),
            v4 => v4,
        };
        let denied = self.rules.deny.iter().any(|n| n.contains(&ip))
            || (!self.rules.allow.is_empty() && !self.rules.allow.iter().any(|n| n.contains(&ip)));
        let verdict = if denied {
            crate::deny(&self.metrics, &self.route, "ip_denied");
            Err(ProxyError::new(
                ErrorKind::Forbidden,
                format!("client {ip} refused by the route's IP rules"),
            ))
        } else {
            Ok(Verdict::Continue)
        };
        Box::pin(std::future::ready(verdict))
    }
}
