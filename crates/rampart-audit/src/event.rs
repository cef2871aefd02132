//! Audit entries: the canonical JSON encoding of an event, with personal data sealed.

use rampart_store::AuditEvent;
use serde_json::Value;

/// Encodes `event` canonically: an object with sorted keys at every depth, no
/// whitespace, times in RFC 3339 UTC with milliseconds. These bytes are what the tree
/// hashes; they never change once written.
pub fn encode(event: &AuditEvent) -> Vec<u8> {
    let time = std::time::UNIX_EPOCH
        + std::time::Duration::from_millis(u64::try_from(event.time).unwrap_or(0));
    let value = serde_json::json!({
        "time": humantime::format_rfc3339_millis(time).to_string(),
        "actor": event.actor,
        "action": event.action,
        "resource": event.resource,
        "outcome": event.outcome,
        "request_id": event.request_id,
        "source_ip": event.source_ip,
        "details": event.summary,
    });
    let mut out = Vec::with_capacity(256);
    write_canonical(&value, &mut out);
    out
}

/// `event` with the values under keys named in `sensitive` (at any depth of its
/// details) replaced by `{"sealed": …}`, encrypted with the data subject's own key
/// (see [`rampart_crypto::SubjectKeys`]); the subject is `details.subject` when
/// present, else the event's resource. Destroying that key later makes them
/// unreadable while the entry's bytes, and so the tree, stay as they are. Without a
/// key store the values are dropped: they are never kept in clear.
pub fn seal(
    event: &AuditEvent,
    sensitive: &[String],
    subjects: Option<&rampart_crypto::SubjectKeys>,
) -> AuditEvent {
    let mut sealed = event.clone();
    if !sensitive.is_empty() {
        let subject = event
            .summary
            .get("subject")
            .and_then(Value::as_str)
            .unwrap_or(&event.resource)
            .to_string();
        seal_values(&mut sealed.summary, sensitive, &subject, subjects);
    }
    sealed
}

fn seal_values(
    value: &mut Value,
    sensitive: &[String],
    subject: &str,
    subjects: Option<&rampart_crypto::SubjectKeys>,
) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if sensitive.iter().any(|s| s == key) {
                    let clear = v.to_string();
                    *v = match subjects.and_then(|s| s.seal(subject, clear.as_bytes()).ok()) {
                        Some(sealed) => serde_json::json!({ "sealed": sealed }),
                        // Never store it in clear: without a key store, drop it.
                        None => serde_json::json!({ "redacted": true }),
                    };
                } else {
                    seal_values(v, sensitive, subject, subjects);
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                seal_values(item, sensitive, subject, subjects);
            }
        }
        _ => {}
    }
}

/// Writes `value` with object keys sorted (by UTF-8 bytes) and no whitespace.
pub fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                // Serializing a string cannot fail.
                out.extend_from_slice(serde_json::to_string(key).unwrap_or_default().as_bytes());
                out.push(b':');
                write_canonical(&map[key], out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        scalar => out.extend_from_slice(scalar.to_string().as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(summary: Value) -> AuditEvent {
        AuditEvent {
            time: 1_795_460_400_123,
            actor: "token:1".into(),
            action: "consumer.update".into(),
            resource: "consumer:42".into(),
            outcome: "success".into(),
            summary,
            request_id: Some("req-1".into()),
            source_ip: Some("10.0.0.1".into()),
        }
    }

    #[test]
    fn the_encoding_is_canonical() {
        let a = encode(&event(
            serde_json::json!({ "b": 1, "a": { "y": 2, "x": [3, { "q": 1, "p": 0 }] } }),
        ));
        let b = encode(&event(
            serde_json::json!({ "a": { "x": [3, { "p": 0, "q": 1 }], "y": 2 }, "b": 1 }),
        ));
        assert_eq!(a, b);
        let text = String::from_utf8(a).expect("utf8");
        assert!(text.starts_with(r#"{"action":"consumer.update","actor":"token:1","details":{"a":{"x":[3,{"p":0,"q":1}],"y":2},"b":1}"#), "{text}");
        assert!(
            text.contains(r#""time":"2026-11-23T19:00:00.123Z""#),
            "{text}"
        );
        assert!(!text.contains(' '));
    }

    #[test]
    fn sensitive_values_are_sealed_and_unreadable_once_the_key_is_gone() {
        let dir = tempfile::Builder::new()
            .prefix("rampart-audit-subjects-")
            .tempdir()
            .expect("temp dir")
            .keep();
        let keys = rampart_crypto::SubjectKeys::open(&dir).expect("keys");
        let bytes = encode(&seal(
            &event(
                serde_json::json!({ "subject": "user-7", "after": { "email": "ann@example.com" } }),
            ),
            &["email".to_string()],
            Some(&keys),
        ));
        let text = String::from_utf8(bytes).expect("utf8");
        assert!(!text.contains("ann@example.com"), "{text}");
        let entry: Value = serde_json::from_str(&text).expect("json");
        let sealed = entry["details"]["after"]["email"]["sealed"]
            .as_str()
            .expect("sealed");
        assert_eq!(
            keys.open_sealed("user-7", sealed).expect("readable"),
            br#""ann@example.com""#
        );
        keys.forget("user-7").expect("forget");
        assert!(keys.open_sealed("user-7", sealed).is_none());
        // Without a key store the value is dropped, never kept in clear.
        let text = String::from_utf8(encode(&seal(
            &event(serde_json::json!({ "email": "ann@example.com" })),
            &["email".to_string()],
            None,
        )))
        .expect("utf8");
        assert!(!text.contains("ann@"), "{text}");
    }
}
