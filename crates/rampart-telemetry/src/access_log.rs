//! The JSON access log: one line per request, written by a background thread so
//! that the request path never waits on a disk or a pipe.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use prometheus_client::metrics::counter::Counter;

/// One access-log line.
#[derive(Debug)]
pub struct AccessRecord<'a> {
    /// When the request arrived (written as RFC 3339 UTC with milliseconds).
    pub time: std::time::SystemTime,
    /// Request id (kept from the client or generated).
    pub request_id: &'a str,
    /// W3C trace id (hex digits: written without escaping); `None` (written as `null`)
    /// when the request belongs to no trace.
    pub trace_id: Option<&'a str>,
    /// Listener name.
    pub listener: &'a str,
    /// Client socket address as text (written without escaping).
    pub client: &'a str,
    /// Method, an HTTP token (written without escaping).
    pub method: &'a str,
    /// Host the client asked for.
    pub host: &'a str,
    /// Path (without query).
    pub path: &'a str,
    /// HTTP version, such as `HTTP/1.1` (written without escaping).
    pub protocol: &'a str,
    /// Route name, if one matched.
    pub route: Option<&'a str>,
    /// Upstream pool, if one was chosen.
    pub upstream: Option<&'a str>,
    /// The last target tried.
    pub target: Option<&'a str>,
    /// Response status.
    pub status: u16,
    /// Attempts sent upstream (0 when answered by Rampart itself).
    pub attempts: u32,
    /// Response body bytes sent to the client.
    pub bytes_sent: u64,
    /// Why Rampart answered itself, if it did (problem type).
    pub error: Option<&'a str>,
    /// Time spent per phase (written in milliseconds).
    pub phases: PhaseTimes,
    /// From request received to last response byte (written in milliseconds).
    pub duration: Duration,
}

impl AccessRecord<'_> {
    /// Appends the record as one JSON object (no newline). Written by hand: this runs
    /// once per request, and a generic serialiser costs several times more.
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"time\":\"");
        push_time(out, self.time);
        out.extend_from_slice(b"\",\"request_id\":");
        push_str(out, self.request_id);
        out.extend_from_slice(b",\"trace_id\":");
        match self.trace_id {
            Some(id) => push_plain(out, id),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"listener\":");
        push_str(out, self.listener);
        out.extend_from_slice(b",\"client\":");
        push_plain(out, self.client);
        out.extend_from_slice(b",\"method\":");
        push_plain(out, self.method);
        out.extend_from_slice(b",\"host\":");
        push_str(out, self.host);
        out.extend_from_slice(b",\"path\":");
        push_str(out, self.path);
        out.extend_from_slice(b",\"protocol\":");
        push_plain(out, self.protocol);
        out.extend_from_slice(b",\"route\":");
        push_opt(out, self.route);
        out.extend_from_slice(b",\"upstream\":");
        push_opt(out, self.upstream);
        out.extend_from_slice(b",\"target\":");
        push_opt(out, self.target);
        out.extend_from_slice(b",\"status\":");
        push_u64(out, u64::from(self.status));
        out.extend_from_slice(b",\"attempts\":");
        push_u64(out, u64::from(self.attempts));
        out.extend_from_slice(b",\"bytes_sent\":");
        push_u64(out, self.bytes_sent);
        out.extend_from_slice(b",\"error\":");
        push_opt(out, self.error);
        out.extend_from_slice(b",\"phases_ms\":{\"route\":");
        push_ms(out, self.phases.route);
        out.extend_from_slice(b",\"guards\":");
        push_ms(out, self.phases.guards);
        out.extend_from_slice(b",\"upstream\":");
        push_ms(out, self.phases.upstream);
        out.extend_from_slice(b"},\"duration_ms\":");
        push_ms(out, self.duration);
        out.push(b'}');
    }
}

/// Whether `bytes` holds a byte JSON text must escape (a control character, `"` or
/// `\\`; DEL too, for the reader's sake). Eight bytes at a time: for each byte of a
/// word, `(x - 0x01…) & !x & 0x80…` is set where `x` is zero and `(x - n…) & !x & 0x80…`
/// where it is below `n`, exact as a yes-or-no answer.
fn needs_escape(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero_byte = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let word_needs_escape = |word: &[u8]| {
        let x = u64::from_le_bytes(<[u8; 8]>::try_from(word).unwrap_or_default());
        let below_space = x.wrapping_sub(ONES * 0x20) & !x & HIGH;
        let special = zero_byte(x ^ (ONES * u64::from(b'"')))
            | zero_byte(x ^ (ONES * u64::from(b'\\')))
            | zero_byte(x ^ (ONES * 0x7f));
        below_space | special != 0
    };
    if bytes.len() < 8 {
        return bytes.iter().copied().any(byte_needs_escape);
    }
    let mut words = bytes.chunks_exact(8);
    if words.any(word_needs_escape) {
        return true;
    }
    // The last bytes as one word, overlapping the words already checked.
    !words.remainder().is_empty() && word_needs_escape(&bytes[bytes.len() - 8..])
}

/// Whether JSON text must escape `b` (see [`needs_escape`]).
fn byte_needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\' || b == 0x7f
}

/// A JSON string literal.
fn push_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    // Nearly every value needs no escaping.
    if !needs_escape(bytes) {
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f | 0x7f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// A JSON string literal of text that never needs escaping (hex ids, socket
/// addresses, HTTP method tokens, protocol names), written without checking.
fn push_plain(out: &mut Vec<u8>, s: &str) {
    debug_assert!(!needs_escape(s.as_bytes()));
    out.push(b'"');
    out.extend_from_slice(s.as_bytes());
    out.push(b'"');
}

fn push_opt(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => push_str(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

fn push_u64(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// Milliseconds with microsecond precision (`12.345`); under ten milliseconds (nearly
/// every phase) in one append.
fn push_ms(out: &mut Vec<u8>, time: Duration) {
    // Rounded to the nearest microsecond, in integers; an absurd duration saturates.
    let micros = time
        .as_secs()
        .saturating_mul(1_000_000)
        .saturating_add(u64::from((time.subsec_nanos() + 500) / 1000));
    let (whole, frac) = (micros / 1000, micros % 1000);
    let mut text = *b"0.000";
    text[2] = b'0' + (frac / 100) as u8;
    text[3] = b'0' + (frac / 10 % 10) as u8;
    text[4] = b'0' + (frac % 10) as u8;
    if whole < 10 {
        text[0] = b'0' + whole as u8;
        out.extend_from_slice(&text);
    } else {
        push_u64(out, whole);
        out.extend_from_slice(&text[1..]);
    }
}

/// RFC 3339 UTC with milliseconds; the part up to the second is formatted once per
/// second per thread.
fn push_time(out: &mut Vec<u8>, time: std::time::SystemTime) {
    thread_local! {
        static SECOND: std::cell::RefCell<(u64, String)> = const { std::cell::RefCell::new((u64::MAX, String::new())) };
    }
    let since = time
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let second = since.as_secs();
    SECOND.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.0 != second {
            let whole = std::time::UNIX_EPOCH + Duration::from_secs(second);
            let text = humantime::format_rfc3339_seconds(whole).to_string();
            // `2026-01-01T00:00:00Z` without the `Z`.
            *cached = (second, text.trim_end_matches('Z').to_string());
        }
        out.extend_from_slice(cached.1.as_bytes());
    });
    let millis = since.subsec_millis();
    out.push(b'.');
    out.push(b'0' + (millis / 100) as u8);
    out.push(b'0' + (millis / 10 % 10) as u8);
    out.push(b'0' + (millis % 10) as u8);
    out.push(b'Z');
}

/// Time spent in each phase of the request path.
#[derive(Debug, Default, Clone, Copy)]
pub struct PhaseTimes {
    /// From arrival to the route chosen (accept checks and route selection).
    pub route: Duration,
    /// Guards (fault injection, bulkheads, and later authentication, WAF, limits).
    pub guards: Duration,
    /// Upstream attempts until response headers, including retries and backoff.
    pub upstream: Duration,
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
/// Room kept for one line when deciding whether the buffer is full.
const MAX_LINE_GUESS: usize = 64 << 10;
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
        let mut buffer = pending.buffer.lock();
        // A line is far shorter than this margin, so a full buffer is known up front.
        if buffer.len() + MAX_LINE_GUESS > MAX_PENDING_BYTES {
            drop(buffer);
            self.dropped.inc();
            return;
        }
        // Encoded straight into the shared buffer.
        record.encode(&mut buffer);
        buffer.push(b'\n');
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
    fn escaping_is_found_at_every_position_and_byte() {
        let naive = |bytes: &[u8]| {
            bytes
                .iter()
                .any(|&b| b < 0x20 || b == b'"' || b == b'\\' || b == 0x7f)
        };
        for len in [0, 1, 7, 8, 9, 16, 23] {
            for at in 0..len {
                for byte in 0..=255u8 {
                    let mut text = vec![b'a'; len];
                    text[at] = byte;
                    assert_eq!(
                        needs_escape(&text),
                        naive(&text),
                        "{byte:#x} at {at} of {len}"
                    );
                }
            }
        }
        assert!(!needs_escape("héllo wörld, ünïcode".as_bytes()));
    }

    #[test]
    fn milliseconds_have_three_decimals() {
        let text = |time: Duration| {
            let mut out = Vec::new();
            push_ms(&mut out, time);
            String::from_utf8(out).expect("ascii")
        };
        assert_eq!(text(Duration::ZERO), "0.000");
        assert_eq!(text(Duration::from_nanos(499)), "0.000");
        assert_eq!(text(Duration::from_nanos(500)), "0.001");
        assert_eq!(text(Duration::from_micros(13)), "0.013");
        assert_eq!(text(Duration::from_micros(1500)), "1.500");
        assert_eq!(text(Duration::from_nanos(12_345_600)), "12.346");
        assert_eq!(text(Duration::from_nanos(999_999_999)), "1000.000");
        assert_eq!(text(Duration::from_secs(1234)), "1234000.000");
        assert_eq!(text(Duration::MAX), "18446744073709551.615");
    }

    #[test]
    fn writes_one_json_line_per_record_to_a_file() {
        let path = tempfile::Builder::new()
            .prefix("rampart-access-")
            .tempdir()
            .expect("temp dir")
            .keep()
            .join("access.log");
        let log = AccessLog::file(&path, Counter::default()).expect("open");
        for (status, trace_id) in [(200, Some("0af7651916cd43dd8448eb211c80319c")), (502, None)] {
            log.write(&AccessRecord {
                time: std::time::UNIX_EPOCH + Duration::from_millis(1_767_225_600_042),
                request_id: "a\"b\\c\u{1}",
                trace_id,
                listener: "public",
                client: "127.0.0.1:1",
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
                phases: PhaseTimes::default(),
                duration: Duration::from_micros(1500),
            });
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            if text.lines().count() == 2 {
                let first: serde_json::Value =
                    serde_json::from_str(text.lines().next().unwrap_or("")).expect("json");
                assert_eq!(first["trace_id"], "0af7651916cd43dd8448eb211c80319c");
                let second: serde_json::Value =
                    serde_json::from_str(text.lines().nth(1).unwrap_or("")).expect("json");
                assert_eq!(second["status"], 502);
                assert_eq!(second["request_id"], "a\"b\\c\u{1}");
                assert_eq!(second["time"], "2026-01-01T00:00:00.042Z");
                assert_eq!(second["duration_ms"], 1.5);
                assert_eq!(second["route"], "r");
                assert!(second["upstream"].is_null());
                assert!(second["trace_id"].is_null());
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
