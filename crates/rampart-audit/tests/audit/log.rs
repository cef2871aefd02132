//! Appends, reopening, proofs, checkpoints, tampering, repair and key rotation.

use std::sync::Arc;

use rampart_audit::merkle::{leaf_hash, verify_consistency, verify_inclusion};
use rampart_audit::note::{self, Checkpoint, Verifier};
use rampart_audit::{verify, AuditLogError, Health};

use crate::support::*;

fn verifiers(log: &rampart_audit::AuditLog) -> Vec<Verifier> {
    log.verifier_keys()
        .iter()
        .map(|k| Verifier::parse(k).expect("verifier key"))
        .collect()
}

#[tokio::test]
async fn appends_survive_a_restart_with_proofs_and_signed_checkpoints() {
    let dir = temp_dir("reopen");
    let log = Arc::new(open(&dir));
    // Concurrent appends get distinct, contiguous indices.
    let tasks: Vec<_> = (0..200u64)
        .map(|i| {
            let log = Arc::clone(&log);
            tokio::spawn(async move { log.append(entry(i)).await.expect("append") })
        })
        .collect();
    let mut indices = Vec::new();
    for task in tasks {
        indices.push(task.await.expect("join"));
    }
    indices.sort_unstable();
    assert_eq!(indices, (0..200).collect::<Vec<u64>>());
    let first = log.publish_checkpoint().expect("checkpoint");
    for i in 200..300 {
        log.append(entry(i)).await.expect("append");
    }
    let second = log.publish_checkpoint().expect("checkpoint");
    let keys = log.verifier_keys();
    drop(log);

    let log = open(&dir);
    assert_eq!(log.size(), 300);
    assert_eq!(log.health(), Health::Ok);
    assert_eq!(log.verifier_keys(), keys);
    let v = verifiers(&log);
    let c1 = Checkpoint::parse(note::open(&first, &v).expect("signed")).expect("checkpoint");
    let c2 = Checkpoint::parse(note::open(&second, &v).expect("signed")).expect("checkpoint");
    assert_eq!((c1.size, c2.size), (200, 300));
    assert_eq!(c1.origin, log.origin());
    // Every entry's bytes are what was appended, and provably in the checkpoint.
    let entries = log.entries(0, 300).expect("entries");
    for e in &entries {
        let proof = log.inclusion_proof(e.index, 300).expect("proof");
        verify_inclusion(e.index, 300, &leaf_hash(&e.bytes), &proof, &c2.root).expect("included");
    }
    let mut seen: Vec<Vec<u8>> = entries.into_iter().map(|e| e.bytes).collect();
    seen.sort();
    let mut want: Vec<Vec<u8>> = (0..300).map(entry).collect();
    want.sort();
    assert_eq!(seen, want);
    let proof = log.consistency_proof(200, 300).expect("proof");
    verify_consistency(200, 300, &proof, &c1.root, &c2.root).expect("consistent");
    assert_eq!(log.latest_checkpoint().as_deref(), Some(second.as_str()));
    // Bad ranges are errors, not panics.
    assert!(matches!(
        log.entries(290, 301),
        Err(AuditLogError::OutOfRange(_))
    ));
    assert!(matches!(
        log.entries(0, 2000),
        Err(AuditLogError::OutOfRange(_))
    ));
    assert!(log.inclusion_proof(300, 300).is_err());
    assert!(log.consistency_proof(301, 300).is_err());
    assert!(matches!(
        log.append(vec![b'x'; rampart_audit::MAX_ENTRY_BYTES + 1])
            .await,
        Err(AuditLogError::TooLarge(_))
    ));
    let report = verify::verify(&dir, None, |_, _| {}).expect("verify");
    assert_eq!(report.problem, None);
    assert_eq!((report.entries, report.checkpoints), (300, 2));
}

#[tokio::test]
async fn segments_roll_over_and_read_back() {
    let dir = temp_dir("segments");
    let mut settings = rampart_audit::AuditLogSettings::new(&dir);
    settings.segment_bytes = 2048;
    let log = rampart_audit::AuditLog::open(settings.clone()).expect("open");
    for i in 0..100 {
        assert_eq!(log.append(entry(i)).await.expect("append"), i);
    }
    drop(log);
    let segments = std::fs::read_dir(&dir)
        .expect("dir")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().starts_with("seg-"))
        })
        .count();
    assert!(segments >= 3, "{segments} segments");
    let log = rampart_audit::AuditLog::open(settings).expect("reopen");
    assert_eq!(log.size(), 100);
    let read = log.entries(40, 60).expect("entries");
    assert_eq!(read[0].bytes, entry(40));
    assert_eq!(read[19].bytes, entry(59));
    assert_eq!(
        verify::verify(&dir, None, |_, _| {})
            .expect("verify")
            .problem,
        None
    );
}

/// Flips one byte of entry `index`'s stored bytes.
fn flip_byte_of_entry(dir: &std::path::Path, index: u64) {
    let segment = dir.join(format!("seg-{:020}.log", 0));
    let mut data = std::fs::read(&segment).expect("segment");
    let mut at = 0usize;
    for _ in 0..index {
        let len = u32::from_le_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]) as usize;
        at += 36 + len;
    }
    data[at + 36 + 3] ^= 0x20;
    std::fs::write(&segment, data).expect("write");
}

#[tokio::test]
async fn a_flipped_byte_is_named_and_stops_appends_until_repaired() {
    let dir = temp_dir("tamper");
    let log = open(&dir);
    for i in 0..50 {
        log.append(entry(i)).await.expect("append");
    }
    log.publish_checkpoint().expect("checkpoint");
    for i in 50..60 {
        log.append(entry(i)).await.expect("append");
    }
    drop(log);

    // Inside the signed history: named, refused, and repair will not cut it.
    flip_byte_of_entry(&dir, 17);
    let report = verify::verify(&dir, None, |_, _| {}).expect("verify");
    assert_eq!(report.problem.as_ref().map(|p| p.0), Some(17), "{report:?}");
    let log = open(&dir);
    assert!(matches!(log.health(), Health::Corrupt { index: 17, .. }));
    assert!(matches!(
        log.append(entry(99)).await,
        Err(AuditLogError::Corrupt { index: 17, .. })
    ));
    drop(log);
    assert!(matches!(
        rampart_audit::repair(&dir),
        Err(AuditLogError::Corrupt { index: 17, .. })
    ));
    flip_byte_of_entry(&dir, 17); // undo

    // After the last checkpoint: repair may cut it (and what follows), nothing earlier.
    flip_byte_of_entry(&dir, 55);
    assert_eq!(
        verify::verify(&dir, None, |_, _| {})
            .expect("verify")
            .problem
            .map(|p| p.0),
        Some(55)
    );
    assert!(rampart_audit::repair(&dir).expect("repair") > 0);
    let log = open(&dir);
    assert_eq!(log.size(), 55);
    assert_eq!(log.health(), Health::Ok);
    assert_eq!(log.append(entry(55)).await.expect("append"), 55);
}

#[tokio::test]
async fn a_removed_tail_under_a_checkpoint_is_detected() {
    let dir = temp_dir("truncate");
    let log = open(&dir);
    for i in 0..20 {
        log.append(entry(i)).await.expect("append");
    }
    log.publish_checkpoint().expect("checkpoint");
    drop(log);
    let segment = dir.join(format!("seg-{:020}.log", 0));
    let len = std::fs::metadata(&segment).expect("meta").len();
    // Cut exactly at a record boundary: three whole records.
    let record = 36 + entry(19).len() as u64;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .expect("open")
        .set_len(len - 3 * record)
        .expect("truncate");
    let report = verify::verify(&dir, None, |_, _| {}).expect("verify");
    assert_eq!(report.problem.map(|p| p.0), Some(17));
    let log = open(&dir);
    assert!(matches!(log.health(), Health::Corrupt { .. }));
}

#[tokio::test]
async fn rotated_keys_keep_old_checkpoints_verifiable() {
    let dir = temp_dir("rotate");
    let log = open(&dir);
    log.append(entry(0)).await.expect("append");
    let old_note = log.publish_checkpoint().expect("checkpoint");
    drop(log);
    let new_key = rampart_audit::rotate_key(&dir).expect("rotate");
    let log = open(&dir);
    let keys = log.verifier_keys();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0], new_key, "the current key comes first");
    log.append(entry(1)).await.expect("append");
    let new_note = log.publish_checkpoint().expect("checkpoint");
    let only_new = [Verifier::parse(&keys[0]).expect("key")];
    let only_old = [Verifier::parse(&keys[1]).expect("key")];
    assert!(note::open(&new_note, &only_new).is_ok());
    assert!(note::open(&new_note, &only_old).is_err());
    assert!(note::open(&old_note, &only_old).is_ok());
    assert_eq!(
        verify::verify(&dir, None, |_, _| {})
            .expect("verify")
            .problem,
        None
    );
}

#[tokio::test]
async fn one_process_at_a_time_has_the_log_open() {
    let dir = temp_dir("lock");
    let first = open(&dir);
    first.append(entry(0)).await.expect("append");
    match rampart_audit::AuditLog::open(rampart_audit::AuditLogSettings::new(&dir)) {
        Err(rampart_audit::AuditLogError::InUse(held)) => {
            assert!(held.contains("rampart-audit-lock"), "{held}")
        }
        other => panic!("a second writer was let in: {other:?}"),
    }
    drop(first);
    // Closed, the log is handed over (its writer thread ends, then the lock is free).
    let again = open(&dir);
    assert_eq!(again.size(), 1);
}
