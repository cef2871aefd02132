//! OTLP trace export to a real HTTP collector endpoint.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use parking_lot::Mutex;
use prost::Message;

use crate::support::*;

/// A caller's trace context, continued by the spans Rampart exports.
const CALLER: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[tokio::test]
async fn a_span_per_request_and_a_child_span_per_attempt_reach_the_collector() {
    spans_reach_the_collector("", Some(CALLER)).await;
}

#[tokio::test]
async fn a_request_without_trace_context_starts_a_trace_when_spans_are_exported() {
    spans_reach_the_collector("", None).await;
}

#[tokio::test]
async fn attempt_spans_are_named_upstream_when_the_route_changes_request_fields() {
    // The route's operations see the proxy's fields in the request's map; each attempt
    // still sends exactly one traceparent, its own.
    spans_reach_the_collector(
        r#"request_headers = { set = { "x-edge" = "1" } }"#,
        Some(CALLER),
    )
    .await;
}

/// Sends a request (with the caller's `traceparent`, if any) that is retried once on a
/// route with `route_options`, and checks the spans exported and the traceparent the
/// upstream saw.
async fn spans_reach_the_collector(route_options: &str, caller: Option<&str>) {
    // The collector: records every OTLP/HTTP protobuf export it receives.
    let received: Arc<Mutex<Vec<ExportTraceServiceRequest>>> = Arc::default();
    let sink = Arc::clone(&received);
    let collector = upstream(move |req| {
        let sink = Arc::clone(&sink);
        async move {
            assert_eq!(req.uri().path(), "/v1/traces");
            let body = req
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let decoded = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
            sink.lock().push(decoded);
            reply(200, Bytes::new())
        }
    })
    .await;
    // The app: fails once, then answers with the traceparent it received.
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let app = upstream(move |req| {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        let parents: Vec<String> = req
            .headers()
            .get_all("traceparent")
            .iter()
            .map(|v| v.to_str().unwrap_or("").to_string())
            .collect();
        let parent = parents.join(" & ");
        async move {
            if n == 0 {
                reply(503, "retry me")
            } else {
                reply(200, parent)
            }
        }
    })
    .await;
    let (gw, addr) = gateway(&format!(
        r#"
tracing = {{ otlp_endpoint = "{}/v1/traces", service_name = "edge" }}
[upstreams.app]
targets = ["{}"]
[[routes]]
name = "api"
upstream = "app"
retry = {{ attempts = 1, backoff_base = "1ms" }}
{}
"#,
        collector.url(),
        app.url(),
        route_options
    ))
    .await;
    let mut traced = request("GET", format!("http://{addr}/orders"));
    if let Some(caller) = caller {
        traced = traced.header("traceparent", caller);
    }
    let answer = send(&client(), traced.body(Full::default()).expect("request")).await;
    let upstream_parent = answer.text();
    gw.shutdown().await; // flushes the exporter

    let exports = received.lock().clone();
    let spans: Vec<_> = exports
        .iter()
        .flat_map(|e| e.resource_spans.iter())
        .flat_map(|r| r.scope_spans.iter())
        .flat_map(|s| s.spans.iter())
        .cloned()
        .collect();
    let service = exports[0].resource_spans[0]
        .resource
        .as_ref()
        .and_then(|r| r.attributes.iter().find(|a| a.key == "service.name"))
        .and_then(|a| a.value.clone())
        .map(|v| format!("{v:?}"));
    assert!(service.is_some_and(|s| s.contains("edge")));
    assert_eq!(spans.len(), 3, "{spans:#?}");
    let trace_id = hex(&spans[0].trace_id);
    assert!(
        spans.iter().all(|s| hex(&s.trace_id) == trace_id),
        "{spans:#?}"
    );
    let server = spans
        .iter()
        .find(|s| s.kind == SpanKind::Server as i32)
        .expect("server span");
    match caller {
        Some(_) => {
            assert_eq!(trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
            assert_eq!(hex(&server.parent_span_id), "00f067aa0ba902b7");
        }
        None => {
            assert_eq!(trace_id.len(), 32);
            assert!(trace_id.bytes().any(|b| b != b'0'), "a new, valid trace id");
            assert!(server.parent_span_id.is_empty(), "a new trace's root span");
        }
    }
    assert_eq!(server.name, "GET api");
    let attempts: Vec<_> = spans
        .iter()
        .filter(|s| s.kind == SpanKind::Client as i32)
        .collect();
    assert_eq!(attempts.len(), 2);
    assert!(attempts.iter().all(|a| a.parent_span_id == server.span_id));
    // The upstream saw the second attempt's span as its parent.
    assert_eq!(
        upstream_parent,
        format!("00-{trace_id}-{}-01", hex(&attempts[1].span_id))
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
