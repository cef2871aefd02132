#![allow(dead_code)]

use std::path::PathBuf;

use rampart_audit::{AuditLog, AuditLogSettings};

/// A fresh directory under the system temp dir.
pub fn temp_dir(name: &str) -> PathBuf {
    tempfile::Builder::new()
        .prefix(&format!("rampart-audit-{name}-"))
        .tempdir()
        .expect("temp dir")
        .keep()
}

pub fn open(dir: &std::path::Path) -> AuditLog {
    AuditLog::open(AuditLogSettings::new(dir)).expect("open")
}

pub fn entry(i: u64) -> Vec<u8> {
    format!(r#"{{"action":"test","n":{i}}}"#).into_bytes()
}
