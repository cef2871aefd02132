//! Rampart's telemetry: the Prometheus metrics registry, the JSON access log and
//! the tracing subscriber setup.

mod access_log;
mod metrics;
mod striped;
mod tracing_export;

pub use access_log::{AccessLog, AccessLogError, AccessRecord, PhaseTimes};
pub use metrics::{
    status_class, BreakerLabels, GuardLabels, Method, Metrics, RefusalLabels, RequestSeries,
    RouteLabels, RouteMetrics, TargetLabels, UpstreamLabels, WafRuleLabels,
};
pub use opentelemetry::KeyValue;
pub use striped::{StripedCounter, StripedGauge, StripedHistogram};
pub use tracing_export::{SpanRecord, SpanRole, TraceExporter, TracingError};

/// rustls warns on every handshake whose client puts an IP address in SNI, which
/// OpenSSL-based clients do (RFC 6066 forbids it; rustls ignores the name and goes on):
/// one line per connection about the client, nothing the operator can act on. Kept at
/// `error` unless `RUST_LOG` names rustls itself.
const RUSTLS_HANDSHAKE_NOISE: &str = "rustls::msgs::handshake=error";

/// Installs the global `tracing` subscriber: human-readable logs on stderr, level from
/// `RUST_LOG` (default `info`). Calling it twice is harmless.
pub fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(log_filter(std::env::var("RUST_LOG").ok().as_deref()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// The log filter for a `RUST_LOG` value (`info` when unset or invalid), with rustls's
/// per-handshake warnings quieted unless the value names rustls.
fn log_filter(rust_log: Option<&str>) -> tracing_subscriber::EnvFilter {
    let filter = rust_log
        .and_then(|value| tracing_subscriber::EnvFilter::try_new(value).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new("info"));
    if rust_log.is_some_and(|value| value.contains("rustls")) {
        return filter;
    }
    match RUSTLS_HANDSHAKE_NOISE.parse() {
        Ok(directive) => filter.add_directive(directive),
        Err(_) => filter,
    }
}

#[cfg(test)]
mod tests {
    use super::log_filter;
    use std::sync::{Arc, Mutex};

    /// The lines a subscriber with `log_filter(rust_log)` writes for a warning from
    /// rustls's handshake code and one from Rampart.
    fn logged(rust_log: Option<&str>) -> String {
        let out = Arc::new(Mutex::new(Vec::new()));
        let writer = {
            let out = Arc::clone(&out);
            move || SharedBuffer(Arc::clone(&out))
        };
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(log_filter(rust_log))
            .with_writer(writer)
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(target: "rustls::msgs::handshake", "Illegal SNI extension");
            tracing::warn!(target: "rampart_proxy::listener", "certificate reload failed");
        });
        let bytes = out.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    struct SharedBuffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for SharedBuffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if let Ok(mut out) = self.0.lock() {
                out.extend_from_slice(buf);
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn rustls_handshake_warnings_are_quiet_unless_asked_for() {
        for rust_log in [
            None,
            Some("warn"),
            Some("info,rampart=debug"),
            Some("not a filter["),
        ] {
            let lines = logged(rust_log);
            assert!(!lines.contains("Illegal SNI"), "{rust_log:?}: {lines}");
            assert!(
                lines.contains("certificate reload failed"),
                "{rust_log:?}: {lines}"
            );
        }
        let lines = logged(Some("warn,rustls=warn"));
        assert!(lines.contains("Illegal SNI"), "{lines}");
        assert!(logged(Some("error")).is_empty());
    }
}
