//! Getting entries out: CEF lines for SIEMs, RFC 5424 syslog forwarding, and the
//! [`AuditTrail`] sink that puts every audit event through the log.

use std::sync::Arc;

use async_trait::async_trait;
use rampart_store::{AuditEvent, AuditSink, StoreError};
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use crate::Ledger;

/// Escapes a CEF header field (`\` and `|`).
fn cef_header(text: &str) -> String {
    text.replace('\\', "\\\\").replace('|', "\\|")
}

/// Escapes a CEF extension value (`\`, `=` and line breaks).
fn cef_value(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('=', "\\=")
        .replace('\r', "\\r")
        .replace('\n', "\\n")
}

/// One entry as an ArcSight Common Event Format line. The entry's canonical JSON is
/// kept whole in `msg`, so nothing is lost.
pub fn cef_line(index: u64, entry: &[u8]) -> String {
    let parsed: Value = serde_json::from_slice(entry).unwrap_or(Value::Null);
    let field = |name: &str| parsed.get(name).and_then(Value::as_str).unwrap_or("");
    let action = field("action");
    let severity = if field("outcome") == "success" { 3 } else { 6 };
    let mut ext = vec![
        format!("externalId={index}"),
        format!("act={}", cef_value(action)),
        format!("suser={}", cef_value(field("actor"))),
        format!("outcome={}", cef_value(field("outcome"))),
        format!("cs1Label=resource cs1={}", cef_value(field("resource"))),
    ];
    if let Some(time) = parsed
        .get("time")
        .and_then(Value::as_str)
        .and_then(|t| humantime::parse_rfc3339(t).ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
    {
        ext.push(format!("rt={}", time.as_millis()));
    }
    if !field("source_ip").is_empty() {
        ext.push(format!("src={}", cef_value(field("source_ip"))));
    }
    if !field("request_id").is_empty() {
        ext.push(format!(
            "cs2Label=request_id cs2={}",
            cef_value(field("request_id"))
        ));
    }
    ext.push(format!(
        "msg={}",
        cef_value(&String::from_utf8_lossy(entry))
    ));
    format!(
        "CEF:0|Rampart|Rampart|{}|{}|{}|{severity}|{}",
        env!("CARGO_PKG_VERSION"),
        cef_header(action),
        cef_header(action),
        ext.join(" ")
    )
}

/// One entry as an RFC 5424 syslog message (facility "log audit", 13): severity
/// informational for successes, warning otherwise; the message is
/// `{"index":…,"entry":…}` with the entry's canonical JSON.
pub fn syslog_message(index: u64, entry: &[u8], hostname: &str) -> String {
    let parsed: Value = serde_json::from_slice(entry).unwrap_or(Value::Null);
    let success = parsed.get("outcome").and_then(Value::as_str) == Some("success");
    let priority = 13 * 8 + if success { 6 } else { 4 };
    let time = parsed
        .get("time")
        .and_then(Value::as_str)
        .unwrap_or("-")
        .to_string();
    format!(
        "<{priority}>1 {time} {hostname} rampart {} audit - {{\"index\":{index},\"entry\":{}}}",
        std::process::id(),
        String::from_utf8_lossy(entry)
    )
}

/// The machine's host name for syslog, or `-`.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty() && h.is_ascii() && !h.contains(' '))
        .unwrap_or_else(|| "-".into())
}

/// Sends entries to a syslog collector from a background task. Best effort: the
/// durable copy is the log; messages that cannot be sent are counted and dropped.
pub struct SyslogForwarder {
    queue: mpsc::Sender<String>,
    dropped: Arc<std::sync::atomic::AtomicU64>,
    hostname: String,
}

impl SyslogForwarder {
    /// Forwards to `address` (`host:port`) over TCP (octet counting, RFC 6587) or UDP.
    pub fn start(address: String, tcp: bool) -> Self {
        let (queue, mut rx) = mpsc::channel::<String>(10_000);
        let dropped = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let lost = Arc::clone(&dropped);
        tokio::spawn(async move {
            let mut stream: Option<tokio::net::TcpStream> = None;
            let udp = if tcp {
                None
            } else {
                tokio::net::UdpSocket::bind("0.0.0.0:0").await.ok()
            };
            while let Some(message) = rx.recv().await {
                let sent = if tcp {
                    if stream.is_none() {
                        stream = tokio::net::TcpStream::connect(&address).await.ok();
                    }
                    match &mut stream {
                        Some(s) => {
                            let framed = format!("{} {message}", message.len());
                            let ok = s.write_all(framed.as_bytes()).await.is_ok();
                            if !ok {
                                stream = None;
                            }
                            ok
                        }
                        None => false,
                    }
                } else {
                    match &udp {
                        Some(socket) => socket.send_to(message.as_bytes(), &address).await.is_ok(),
                        None => false,
                    }
                };
                if !sent {
                    lost.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        });
        Self {
            queue,
            dropped,
            hostname: hostname(),
        }
    }

    /// Queues entry `index`.
    pub fn send(&self, index: u64, entry: &[u8]) {
        let message = syslog_message(index, entry, &self.hostname);
        if self.queue.try_send(message).is_err() {
            self.dropped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Messages that could not be sent.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// The audit sink: every event is sealed, appended durably to the log, then copied
/// (sealed) to `index` for the admin API's queries, and forwarded to syslog when
/// configured. An event counts as recorded only once the log has it.
pub struct AuditTrail {
    /// The log.
    pub log: Arc<dyn Ledger>,
    /// Where the queryable copy goes (the store's audit table).
    pub index: Arc<dyn AuditSink>,
    /// Syslog forwarding.
    pub syslog: Option<SyslogForwarder>,
}

#[async_trait]
impl AuditSink for AuditTrail {
    async fn record(&self, event: &AuditEvent) -> Result<(), StoreError> {
        let (index, sealed) = self
            .log
            .append_event(event)
            .await
            .map_err(|e| StoreError::Unavailable(format!("audit log: {e}")))?;
        tracing::info!(
            target: "rampart::audit",
            index,
            actor = %sealed.actor,
            action = %sealed.action,
            resource = %sealed.resource,
            outcome = %sealed.outcome,
            request_id = sealed.request_id.as_deref().unwrap_or("-"),
            "audit"
        );
        if let Some(syslog) = &self.syslog {
            syslog.send(index, &crate::event::encode(&sealed));
        }
        self.index.record(&sealed).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cef_and_syslog_lines_escape_and_carry_the_entry() {
        let entry = br#"{"action":"key|revoke","actor":"token:a=b","details":{},"outcome":"failure","request_id":"r1","resource":"key:1","source_ip":"10.0.0.1","time":"2026-11-23T19:00:00.000Z"}"#;
        let cef = cef_line(7, entry);
        assert!(cef.starts_with("CEF:0|Rampart|Rampart|"), "{cef}");
        assert!(cef.contains("|key\\|revoke|key\\|revoke|6|"), "{cef}");
        assert!(cef.contains("suser=token:a\\=b"), "{cef}");
        assert!(cef.contains("externalId=7"), "{cef}");
        assert!(cef.contains("rt=1795460400000"), "{cef}");
        assert!(cef.contains("src=10.0.0.1"), "{cef}");
        let line = syslog_message(7, entry, "host1");
        assert!(
            line.starts_with("<108>1 2026-11-23T19:00:00.000Z host1 rampart "),
            "{line}"
        );
        let json = line.split_once(" audit - ").expect("msg").1;
        let parsed: Value = serde_json::from_str(json).expect("json");
        assert_eq!(parsed["index"], 7);
        assert_eq!(parsed["entry"]["resource"], "key:1");
    }

    #[tokio::test]
    async fn syslog_messages_reach_a_udp_collector() {
        let collector = tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = collector.local_addr().expect("addr").to_string();
        let forwarder = SyslogForwarder::start(address, false);
        forwarder.send(
            3,
            br#"{"outcome":"success","time":"2026-11-23T19:00:00.000Z"}"#,
        );
        let mut buf = vec![0u8; 2048];
        let (n, _) = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            collector.recv_from(&mut buf),
        )
        .await
        .expect("in time")
        .expect("recv");
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(
            text.starts_with("<110>1 2026-11-23T19:00:00.000Z "),
            "{text}"
        );
        assert!(
            text.ends_with(
                r#"{"index":3,"entry":{"outcome":"success","time":"2026-11-23T19:00:00.000Z"}}"#
            ),
            "{text}"
        );
    }

    #[tokio::test]
    async fn syslog_over_tcp_uses_octet_counting() {
        use tokio::io::AsyncReadExt;
        let collector = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = collector.local_addr().expect("addr").to_string();
        let forwarder = SyslogForwarder::start(address, true);
        forwarder.send(1, br#"{"outcome":"success"}"#);
        forwarder.send(2, br#"{"outcome":"failure"}"#);
        let (mut stream, _) =
            tokio::time::timeout(std::time::Duration::from_secs(5), collector.accept())
                .await
                .expect("in time")
                .expect("accept");
        let mut received = Vec::new();
        let mut buf = [0u8; 1024];
        while !String::from_utf8_lossy(&received).contains(r#""index":2"#) {
            let n = tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut buf))
                .await
                .expect("in time")
                .expect("read");
            assert!(n > 0, "connection closed early");
            received.extend_from_slice(&buf[..n]);
        }
        // Each frame is "<length> <message>", the length counting the message's bytes.
        let text = String::from_utf8(received).expect("utf8");
        let (len, rest) = text.split_once(' ').expect("frame");
        let len: usize = len.parse().expect("length");
        let first = &rest[..len];
        assert!(first.starts_with("<110>1 "), "{first}");
        assert!(
            first.ends_with(r#"{"index":1,"entry":{"outcome":"success"}}"#),
            "{first}"
        );
        let (len2, second) = rest[len..].split_once(' ').expect("second frame");
        assert_eq!(len2.parse::<usize>().expect("length"), second.len());
        assert!(second.starts_with("<108>1 "), "{second}");
    }
}
