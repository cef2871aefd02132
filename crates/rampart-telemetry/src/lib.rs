//! Rampart's telemetry: the Prometheus metrics registry, the JSON access log and
//! the tracing subscriber setup.

mod access_log;
mod metrics;
mod tracing_export;

pub use access_log::{AccessLog, AccessLogError, AccessRecord, PhaseTimes};
pub use metrics::{
    status_class, BreakerLabels, GuardLabels, Method, Metrics, RequestSeries, RouteLabels,
    RouteMetrics, TargetLabels, UpstreamLabels, WafRuleLabels,
};
pub use opentelemetry::KeyValue;
pub use tracing_export::{SpanRecord, SpanRole, TraceExporter, TracingError};

/// A monotonic counter handle (shared with its metric family).
pub use prometheus_client::metrics::counter::Counter;

/// Installs the global `tracing` subscriber: human-readable logs on stderr, level from
/// `RUST_LOG` (default `info`). Calling it twice is harmless.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
