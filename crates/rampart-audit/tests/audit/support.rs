#![allow(dead_code)]

use std::path::PathBuf;

use rampart_audit::{AuditLog, AuditLogSettings};

/// A fresh directory under the system temp dir.
pub fn temp_dir(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!(
        "rampart-audit-{name}-{}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

pub fn open(dir: &std::path::Path) -> AuditLog {
    AuditLog::open(AuditLogSettings::new(dir)).expect("open")
}

pub fn entry(i: u64) -> Vec<u8> {
    format!(r#"{{"action":"test","n":{i}}}"#).into_bytes()
}
