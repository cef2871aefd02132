//! The WAF as a phase around forwarding: the request (body included, up to a limit) is
//! evaluated before it goes upstream; the response's status, headers and (when the rules
//! enable `SecResponseBodyAccess`) text body after.
//!
//! A request the engine could not inspect in full is not forwarded: more arguments than
//! it inspects is always a 400 (`waf-too-many-arguments`), and a body that does not parse
//! as its declared type is a 400 (`waf-body-unparsed`) unless the route passes such
//! bodies on (`on_unparsed_body = "pass"`), inspected only as their raw bytes.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, SizeHint};
use rampart_config::Waf;
use rampart_proxy::phase::{Exchange, ExchangeFuture, Next, RequestContext};
use rampart_proxy::{BoxError, ErrorKind, ProxyBody, ProxyError};
use rampart_telemetry::{Metrics, WafRuleLabels};
use rampart_waf::engine::{BodyError, Matched, Request, Response, Transaction};

/// A route's WAF.
pub struct WafExchange {
    /// Route name (metrics, logs).
    pub route: Arc<str>,
    /// The compiled rules and their settings.
    pub waf: Waf,
    /// Where matches are counted.
    pub metrics: Arc<Metrics>,
}

/// The request body as inspected, and the body that goes upstream.
enum ReadBody {
    /// The whole body fit the limit.
    Whole(Bytes),
    /// It did not: what was read, and the rest still streaming.
    Partial(Bytes, ProxyBody),
}

/// Reads up to `limit` bytes of `body`.
async fn read_up_to(mut body: ProxyBody, limit: usize) -> Result<ReadBody, BoxError> {
    let mut buffer = BytesMut::new();
    loop {
        match body.frame().await {
            None => return Ok(ReadBody::Whole(buffer.freeze())),
            Some(frame) => {
                if let Ok(data) = frame?.into_data() {
                    buffer.extend_from_slice(&data);
                    if buffer.len() > limit {
                        return Ok(ReadBody::Partial(buffer.freeze(), body));
                    }
                }
            }
        }
    }
}

/// A body that yields `prefix` and then the rest of a stream.
struct Prefixed {
    prefix: Option<Bytes>,
    rest: ProxyBody,
}

impl Body for Prefixed {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(prefix) = self.prefix.take() {
            return Poll::Ready(Some(Ok(Frame::data(prefix))));
        }
        Pin::new(&mut self.rest).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.prefix.is_none() && self.rest.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let mut hint = self.rest.size_hint();
        if let Some(p) = &self.prefix {
            let n = p.len() as u64;
            hint.set_lower(hint.lower() + n);
            if let Some(upper) = hint.upper() {
                hint.set_upper(upper + n);
            }
        }
        hint
    }
}

/// Why the WAF refused a request it could not inspect in full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Uninspected {
    /// The body does not parse as its declared type within the WAF's limits.
    BodyUnparsed,
    /// More arguments (query, body, multipart parts) than the WAF inspects.
    TooManyArguments,
}

impl Uninspected {
    /// The refusal's kind (its problem type and title).
    fn kind(self) -> ErrorKind {
        match self {
            Uninspected::BodyUnparsed => ErrorKind::WafBodyUnparsed,
            Uninspected::TooManyArguments => ErrorKind::WafTooManyArguments,
        }
    }

    /// The label of `rampart_guard_denials_total`.
    fn reason(self) -> &'static str {
        match self {
            Uninspected::BodyUnparsed => "waf_body_unparsed",
            Uninspected::TooManyArguments => "waf_too_many_arguments",
        }
    }
}

fn headers_of(map: &http::HeaderMap) -> Vec<(String, String)> {
    map.iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

impl WafExchange {
    /// Counts and logs `matches`; counts a block.
    fn record(&self, matches: &[Matched], ctx: &RequestContext, blocked: bool) {
        let request_id = ctx.request_id.to_str().unwrap_or("-");
        for m in matches {
            self.metrics
                .waf_rule_matches
                .get_or_create(&WafRuleLabels {
                    route: self.route.to_string(),
                    rule: m.id.to_string(),
                })
                .inc();
            tracing::info!(target: "rampart::waf", route = %self.route, request_id, rule = m.id, msg = %m.msg, blocked, "WAF rule matched");
        }
        if blocked {
            crate::deny(&self.metrics, &self.route, "waf_blocked");
        }
    }

    async fn run(
        &self,
        request: http::Request<ProxyBody>,
        ctx: &mut RequestContext,
        next: Next<'_>,
    ) -> Result<http::Response<ProxyBody>, ProxyError> {
        let (parts, body) = request.into_parts();
        let declared = parts
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let too_large = || {
            crate::deny(&self.metrics, &self.route, "waf_body_too_large");
            ProxyError::new(
                ErrorKind::BodyTooLarge,
                "body over the WAF's inspection limit",
            )
        };
        let limit = self.waf.body_limit;
        let (inspected, upstream_body): (Bytes, ProxyBody) = if declared
            .is_some_and(|n| n > limit as u64)
        {
            if self.waf.reject_large_bodies {
                return Err(too_large());
            }
            (Bytes::new(), body)
        } else {
            match read_up_to(body, limit)
                .await
                .map_err(|e| ProxyError::new(ErrorKind::ClientBody, e.to_string()))?
            {
                ReadBody::Whole(bytes) => (bytes.clone(), rampart_proxy::full(bytes)),
                ReadBody::Partial(_, _) if self.waf.reject_large_bodies => return Err(too_large()),
                ReadBody::Partial(prefix, rest) => (
                    Bytes::new(),
                    Prefixed {
                        prefix: Some(prefix),
                        rest,
                    }
                    .boxed(),
                ),
            }
        };
        let waf_request = Request {
            method: parts.method.as_str().to_string(),
            uri: parts
                .uri
                .path_and_query()
                .map_or_else(|| "/".to_string(), |p| p.as_str().to_string()),
            protocol: format!("{:?}", parts.version),
            headers: headers_of(&parts.headers),
            body: inspected.to_vec(),
            remote_addr: ctx.client_ip.to_string(),
        };
        let mut tx = Transaction::new(&self.waf.engine, &waf_request);
        tx.run_request_phases();
        let blocked = tx.interruption.is_some();
        self.record(&tx.matched, ctx, blocked);
        if blocked {
            return Err(ProxyError::new(
                ErrorKind::WafBlocked,
                format!(
                    "WAF rules {:?}",
                    tx.matched.iter().map(|m| m.id).collect::<Vec<_>>()
                ),
            ));
        }
        // What the rules could not see in full is not forwarded (unless the route lets
        // unparsed bodies pass, inspected as their raw bytes).
        let refusal = match tx.inspection_error() {
            Some(BodyError::TooManyArguments { .. }) => Some(Uninspected::TooManyArguments),
            Some(BodyError::Unparsed(_)) if self.waf.reject_unparsed_bodies => {
                Some(Uninspected::BodyUnparsed)
            }
            _ => None,
        };
        if let Some(refusal) = refusal {
            let request_id = ctx.request_id.to_str().unwrap_or("-");
            let detail = tx
                .inspection_error()
                .map(ToString::to_string)
                .unwrap_or_default();
            tracing::debug!(target: "rampart::waf", route = %self.route, request_id, problem = refusal.kind().slug(), detail, "request refused");
            crate::deny(&self.metrics, &self.route, refusal.reason());
            return Err(ProxyError::new(refusal.kind(), detail));
        }
        let already = tx.matched.len();
        let response = next
            .forward(http::Request::from_parts(parts, upstream_body), ctx)
            .await?;
        let (head, body) = response.into_parts();
        // Text responses are read (up to the limit) when the rules ask for response bodies.
        let textual = head
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| {
                let ct = ct.to_ascii_lowercase();
                (ct.starts_with("text/") && !ct.starts_with("text/event-stream"))
                    || ct.contains("json")
                    || ct.contains("xml")
                    || ct.contains("javascript")
            });
        let engine = &self.waf.engine;
        let (inspected, body) = if engine.response_body_access && textual {
            match read_up_to(body, engine.response_body_limit)
                .await
                .map_err(|e| ProxyError::new(ErrorKind::UpstreamProtocol, e.to_string()))?
            {
                ReadBody::Whole(bytes) => (bytes.to_vec(), rampart_proxy::full(bytes)),
                // Too large to inspect: it streams on as it is.
                ReadBody::Partial(prefix, rest) => (
                    Vec::new(),
                    Prefixed {
                        prefix: Some(prefix),
                        rest,
                    }
                    .boxed(),
                ),
            }
        } else {
            (Vec::new(), body)
        };
        tx.set_response(&Response {
            status: head.status.as_u16(),
            protocol: format!("{:?}", head.version),
            headers: headers_of(&head.headers),
            body: inspected,
        });
        tx.run_response_phases();
        if tx.matched.len() > already {
            let blocked = tx.interruption.is_some();
            self.record(&tx.matched[already..], ctx, blocked);
            if blocked {
                return Err(ProxyError::new(ErrorKind::WafBlocked, "WAF response rules"));
            }
        }
        Ok(http::Response::from_parts(head, body))
    }
}

impl Exchange for WafExchange {
    fn around<'a>(
        &'a self,
        request: http::Request<ProxyBody>,
        ctx: &'a mut RequestContext,
        next: Next<'a>,
    ) -> ExchangeFuture<'a> {
        Box::pin(self.run(request, ctx, next))
    }
}
