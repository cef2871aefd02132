//! OpenTelemetry traces over OTLP/HTTP (protobuf).
//!
//! Rampart assigns its own W3C trace and span ids on the request path (they go into
//! `traceparent` upstream and into the access log), so finished spans are handed to
//! the SDK's batch processor as complete span records with those ids; the SDK does
//! the batching and the OTLP export on its own thread.

use std::borrow::Cow;
use std::time::{Duration, SystemTime};

use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::{
    BatchSpanProcessor, SpanData, SpanEvents, SpanLinks, SpanProcessor,
};
use opentelemetry_sdk::Resource;

/// The exporter could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("OTLP trace exporter for {endpoint}: {reason}")]
pub struct TracingError {
    /// The endpoint.
    pub endpoint: String,
    /// Why.
    pub reason: String,
}

/// The kind of a span Rampart records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanRole {
    /// The request as Rampart served it.
    Server,
    /// One attempt sent upstream.
    Client,
}

/// A finished span.
#[derive(Debug, Clone)]
pub struct SpanRecord {
    /// Trace id (16 bytes).
    pub trace_id: [u8; 16],
    /// This span's id.
    pub span_id: [u8; 8],
    /// The parent's id, if any.
    pub parent_span_id: Option<[u8; 8]>,
    /// Whether the parent came from another process.
    pub parent_is_remote: bool,
    /// Span name.
    pub name: Cow<'static, str>,
    /// Server or client.
    pub role: SpanRole,
    /// Start.
    pub start: SystemTime,
    /// End.
    pub end: SystemTime,
    /// Attributes.
    pub attributes: Vec<KeyValue>,
    /// Whether the span describes a failure.
    pub error: bool,
}

/// Exports spans to an OTLP collector.
pub struct TraceExporter {
    processor: BatchSpanProcessor,
    scope: InstrumentationScope,
}

impl std::fmt::Debug for TraceExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TraceExporter").finish_non_exhaustive()
    }
}

impl TraceExporter {
    /// An exporter posting OTLP/HTTP protobuf to `endpoint` (such as
    /// `http://127.0.0.1:4318/v1/traces`), naming the service `service_name`.
    pub fn new(
        endpoint: &str,
        service_name: &str,
        timeout: Duration,
    ) -> Result<Self, TracingError> {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(endpoint)
            .with_timeout(timeout)
            .with_headers(Default::default())
            .build()
            .map_err(|e| TracingError {
                endpoint: endpoint.to_string(),
                reason: e.to_string(),
            })?;
        let mut processor = BatchSpanProcessor::builder(exporter).build();
        processor.set_resource(
            &Resource::builder()
                .with_service_name(service_name.to_string())
                .build(),
        );
        Ok(Self {
            processor,
            scope: InstrumentationScope::builder("rampart")
                .with_version(env!("CARGO_PKG_VERSION"))
                .build(),
        })
    }

    /// Queues a finished span for export (dropped, not blocked on, when the queue is full).
    pub fn record(&self, span: SpanRecord) {
        let context = SpanContext::new(
            TraceId::from_bytes(span.trace_id),
            SpanId::from_bytes(span.span_id),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        );
        self.processor.on_end(SpanData {
            span_context: context,
            parent_span_id: span
                .parent_span_id
                .map_or(SpanId::INVALID, SpanId::from_bytes),
            parent_span_is_remote: span.parent_is_remote,
            span_kind: match span.role {
                SpanRole::Server => SpanKind::Server,
                SpanRole::Client => SpanKind::Client,
            },
            name: span.name,
            start_time: span.start,
            end_time: span.end,
            attributes: span.attributes,
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: if span.error {
                Status::error("")
            } else {
                Status::Unset
            },
            instrumentation_scope: self.scope.clone(),
        });
    }

    /// Exports what is queued and stops.
    pub fn shutdown(&self) {
        let _ = self.processor.force_flush();
        let _ = self.processor.shutdown();
    }
}
