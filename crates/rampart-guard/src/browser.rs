//! Browser-facing protections: security response headers and CORS.

use http::header::{self, HeaderValue};
use http::{Method, StatusCode};
use rampart_config::{Cors, SecurityHeaders};
use rampart_proxy::phase::{
    Guard, GuardCheck, RequestContext, ResponseFilter, ResponseView, Verdict,
};
use rampart_proxy::{empty, ErrorKind, ProxyError};

/// Adds the configured security headers to every response.
pub struct SecurityHeadersFilter(pub SecurityHeaders);

impl ResponseFilter for SecurityHeadersFilter {
    fn filter(&self, ctx: &RequestContext, head: &mut ResponseView<'_>) {
        let h = head.headers();
        if let (Some(hsts), "https") = (&self.0.hsts, ctx.scheme) {
            h.insert(header::STRICT_TRANSPORT_SECURITY, hsts.clone());
        }
        if self.0.nosniff {
            h.insert(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
        }
        if self.0.deny_framing {
            h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        }
        if let Some(csp) = &self.0.csp {
            h.insert(header::CONTENT_SECURITY_POLICY, csp.clone());
        }
        if let Some(referrer) = &self.0.referrer_policy {
            h.insert(header::REFERRER_POLICY, referrer.clone());
        }
    }
}

/// The allowed `Origin` of a request, kept for the response filter.
struct AllowedOrigin(HeaderValue);

/// Answers CORS preflights and remembers allowed origins for [`CorsFilter`].
pub struct CorsGuard(pub Cors);

impl CorsGuard {
    fn allows(&self, origin: &str) -> bool {
        self.0.any_origin
            || self
                .0
                .origins
                .iter()
                .any(|o| o.eq_ignore_ascii_case(origin))
    }

    fn origin_value(&self, origin: &HeaderValue) -> HeaderValue {
        if self.0.any_origin && !self.0.credentials {
            HeaderValue::from_static("*")
        } else {
            origin.clone()
        }
    }

    fn verdict(
        &self,
        head: &http::request::Parts,
        ctx: &mut RequestContext,
    ) -> Result<Verdict, ProxyError> {
        let Some(origin) = head.headers.get(header::ORIGIN).cloned() else {
            return Ok(Verdict::Continue);
        };
        let allowed = origin.to_str().is_ok_and(|o| self.allows(o));
        let preflight = head.method == Method::OPTIONS
            && head
                .headers
                .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
        if !preflight {
            if allowed {
                ctx.held
                    .push(Box::new(AllowedOrigin(self.origin_value(&origin))));
            }
            return Ok(Verdict::Continue);
        }
        let method_ok = head
            .headers
            .get(header::ACCESS_CONTROL_REQUEST_METHOD)
            .and_then(|m| Method::from_bytes(m.as_bytes()).ok())
            .is_some_and(|m| self.0.methods.contains(&m));
        let headers_ok = head
            .headers
            .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
            .and_then(|v| v.to_str().ok())
            .is_none_or(|list| {
                list.split(',')
                    .map(|h| h.trim().to_ascii_lowercase())
                    .filter(|h| !h.is_empty())
                    .all(|h| self.0.headers.contains(&h))
            });
        if !(allowed && method_ok && headers_ok) {
            return Err(ProxyError::new(
                ErrorKind::CorsRefused,
                "CORS preflight refused",
            ));
        }
        let mut response = http::Response::new(empty());
        *response.status_mut() = StatusCode::NO_CONTENT;
        let h = response.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            self.origin_value(&origin),
        );
        let methods = self
            .0
            .methods
            .iter()
            .map(Method::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        if let Ok(v) = HeaderValue::from_str(&methods) {
            h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, v);
        }
        if !self.0.headers.is_empty() {
            if let Ok(v) = HeaderValue::from_str(&self.0.headers.join(", ")) {
                h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v);
            }
        }
        if self.0.credentials {
            h.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from(self.0.max_age_secs),
        );
        h.insert(header::VARY, HeaderValue::from_static("Origin"));
        Ok(Verdict::Answer(response))
    }
}

impl Guard for CorsGuard {
    fn name(&self) -> &'static str {
        "cors"
    }

    fn check<'a>(
        &'a self,
        head: &'a mut http::request::Parts,
        ctx: &'a mut RequestContext,
    ) -> GuardCheck<'a> {
        GuardCheck::Now(self.verdict(head, ctx))
    }
}

/// Adds CORS headers to responses of requests from allowed origins.
pub struct CorsFilter(pub Cors);

impl ResponseFilter for CorsFilter {
    fn filter(&self, ctx: &RequestContext, head: &mut ResponseView<'_>) {
        let Some(AllowedOrigin(origin)) = ctx
            .held
            .iter()
            .find_map(|h| h.downcast_ref::<AllowedOrigin>())
        else {
            return;
        };
        let h = head.headers();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        h.append(header::VARY, HeaderValue::from_static("Origin"));
        if self.0.credentials {
            h.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        if let Some(expose) = &self.0.expose {
            h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, expose.clone());
        }
    }
}
