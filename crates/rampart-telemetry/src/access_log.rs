//! The JSON access log: one line per request, written by a background thread so
//! that the request path never waits on a disk or a pipe.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use prometheus_client::metrics::counter::Counter;
use serde::Serialize;

/// One access-log line.
#[derive(Debug, Serialize)]
pub struct AccessRecord<'a> {
    /// RFC 3339 time the request arrived.
    pub time: String,
    /// Request id (kept from the client or generated).
    pub request_id: &'a str,
    /// W3C trace id.
    pub trace_id: &'a str,
    /// Listener name.
    pub listener: &'a str,
    /// Client address.
    pub client: String,
    /// Method.
    pub method: &'a str,
    /// Host the client asked for.
    pub host: &'a str,
    /// Path (without query).
    pub path: &'a str,
    /// HTTP version.
    pub protocol: &'a str,
    /// Route name, if one matched.
    pub route: Option<&'a str>,
    /// Upstream pool, if one was chosen.
    pub upstream: Option<&'a str>,
    /// The last target tried.
    pub target: Option<String>,
    /// Response status.
    pub status: u16,
    /// Attempts sent upstream (0 when answered by Rampart itself).
    pub attempts: u32,
    /// Response body bytes sent to the client.
    pub bytes_sent: u64,
    /// Why Rampart answered itself, if it did (problem type).
    pub error: Option<&'a str>,
    /// Milliseconds spent per phase.
    pub phases_ms: PhaseTimes,
    /// Milliseconds from request received to last response byte.
    pub duration_ms: f64,
}

/// Milliseconds spent in each phase of the request path.
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct PhaseTimes {
    /// Route selection.
    pub route: f64,
    /// Guards (fault injection, bulkheads, and later authentication, WAF, limits).
    pub guards: f64,
    /// Upstream attempts until response headers, including retries and backoff.
    pub upstream: f64,
}

/// Failure to open the access log.
#[derive(Debug, thiserror::Error)]
pub enum AccessLogError {
    /// The file could not be opened for appending.
    #[error("cannot open access log {path}: {source}")]
    Open {
        /// The path.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Bytes of pending lines kept before new lines are dropped (and counted).
const MAX_PENDING_BYTES: usize = 16 << 20;
/// Pending bytes that wake the writer early.
const WAKE_AT_BYTES: usize = 256 << 10;
/// How often the writer flushes when traffic is light.
const FLUSH_INTERVAL: Duration = Duration::from_millis(100);

struct Pending {
    buffer: Mutex<Vec<u8>>,
    wake: Condvar,
    closed: AtomicBool,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// Handle for writing access-log lines; cheap to clone.
///
/// Lines are appended to a shared buffer under a short lock; a writer thread swaps
/// the buffer out every 100 ms (or sooner when it grows) and writes it, so the
/// request path neither blocks on I/O nor wakes a thread per request.
#[derive(Clone)]
pub struct AccessLog {
    pending: Option<Arc<Pending>>,
    dropped: Counter,
}

impl AccessLog {
    /// A log that writes nothing.
    pub fn off() -> Self {
        Self {
            pending: None,
            dropped: Counter::default(),
        }
    }

    /// A log writing to standard output.
    pub fn stdout(dropped: Counter) -> Self {
        Self::spawn(Box::new(std::io::stdout()), dropped)
    }

    /// A log appending to `path`.
    pub fn file(path: &Path, dropped: Counter) -> Result<Self, AccessLogError> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| AccessLogError::Open {
                path: path.display().to_string(),
                source,
            })?;
        Ok(Self::spawn(Box::new(file), dropped))
    }

    fn spawn(mut out: Box<dyn Write + Send>, dropped: Counter) -> Self {
        let pending = Arc::new(Pending {
            buffer: Mutex::new(Vec::with_capacity(WAKE_AT_BYTES)),
            wake: Condvar::new(),
            closed: AtomicBool::new(false),
            writer: Mutex::new(None),
        });
        let shared = Arc::clone(&pending);
        let spawned = std::thread::Builder::new()
            .name("rampart-access-log".into())
            .spawn(move || {
                let mut spare = Vec::with_capacity(WAKE_AT_BYTES);
                loop {
                    {
                        let mut buffer = shared.buffer.lock();
                        if buffer.len() < WAKE_AT_BYTES {
                            shared.wake.wait_for(&mut buffer, FLUSH_INTERVAL);
                        }
                        std::mem::swap(&mut *buffer, &mut spare);
                    }
                    if !spare.is_empty() {
                        if out.write_all(&spare).and_then(|()| out.flush()).is_err() {
                            tracing::error!("access log write failed; lines are being dropped");
                        }
                        spare.clear();
                    }
                    if shared.closed.load(Ordering::Acquire) && shared.buffer.lock().is_empty() {
                        return;
                    }
                }
            });
        match spawned {
            Ok(handle) => {
                *pending.writer.lock() = Some(handle);
                Self {
                    pending: Some(pending),
                    dropped,
                }
            }
            Err(e) => {
                tracing::error!("cannot start the access-log writer: {e}; access log is off");
                Self::off()
            }
        }
    }

    /// Whether lines are written at all (so callers can skip building records).
    pub fn enabled(&self) -> bool {
        self.pending.is_some()
    }

    /// Queues one record; drops it (and counts the drop) if the writer is far behind.
    pub fn write(&self, record: &AccessRecord<'_>) {
        let Some(pending) = &self.pending else { return };
        let mut line = Vec::with_capacity(512);
        if serde_json::to_writer(&mut line, record).is_err() {
            return;
        }
        line.push(b'\n');
        let mut buffer = pending.buffer.lock();
        if buffer.len() + line.len() > MAX_PENDING_BYTES {
            drop(buffer);
            self.dropped.inc();
            return;
        }
        buffer.extend_from_slice(&line);
        if buffer.len() >= WAKE_AT_BYTES {
            pending.wake.notify_one();
        }
    }

    /// Writes what is pending and stops the writer (on shutdown); later lines are dropped.
    pub fn close(&self) {
        if let Some(pending) = &self.pending {
            pending.closed.store(true, Ordering::Release);
            pending.wake.notify_one();
            if let Some(handle) = pending.writer.lock().take() {
                let _ = handle.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_one_json_line_per_record_to_a_file() {
        let path = std::env::temp_dir().join(format!("rampart-access-{}.log", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let log = AccessLog::file(&path, Counter::default()).expect("open");
        for status in [200, 502] {
            log.write(&AccessRecord {
                time: "2026-01-01T00:00:00Z".into(),
                request_id: "abc",
                trace_id: "t",
                listener: "public",
                client: "127.0.0.1:1".into(),
                method: "GET",
                host: "h",
                path: "/x",
                protocol: "HTTP/1.1",
                route: Some("r"),
                upstream: None,
                target: None,
                status,
                attempts: 1,
                bytes_sent: 10,
                error: None,
                phases_ms: PhaseTimes::default(),
                duration_ms: 1.5,
            });
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            if text.lines().count() == 2 {
                let second: serde_json::Value =
                    serde_json::from_str(text.lines().nth(1).unwrap_or("")).expect("json");
                assert_eq!(second["status"], 502);
                assert_eq!(second["request_id"], "abc");
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "lines not written: {text:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
