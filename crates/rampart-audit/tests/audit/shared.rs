//! The shared log: two instances appending to one log in the database (SQLite here,
//! and Postgres when RAMPART_TEST_DATABASE_URL is set) agree on one tree, and each
//! verifies the other's checkpoints and proofs.

use std::sync::Arc;

use rampart_audit::merkle::{leaf_hash, verify_consistency, verify_inclusion};
use rampart_audit::note::{self, Checkpoint, Verifier};
use rampart_audit::{Ledger, SharedAuditLog};
use rampart_store::Store;

use crate::support::*;

async fn two_instances_agree(store: Store) {
    let a: Arc<dyn Ledger> = Arc::new(
        SharedAuditLog::open(store.clone(), &temp_dir("shared-a"), vec![])
            .await
            .expect("a"),
    );
    let b: Arc<dyn Ledger> = Arc::new(
        SharedAuditLog::open(store.clone(), &temp_dir("shared-b"), vec![])
            .await
            .expect("b"),
    );
    assert_eq!(a.origin(), b.origin());
    let before = a.size().await.expect("size");
    let checkpoint_before = a.publish_checkpoint().await.expect("checkpoint");
    let tasks: Vec<_> = (0..60u64)
        .map(|i| {
            let log = Arc::clone(if i % 2 == 0 { &a } else { &b });
            tokio::spawn(async move { log.append(entry(1_000_000 + i)).await.expect("append") })
        })
        .collect();
    let mut mine = Vec::new();
    for t in tasks {
        mine.push(t.await.expect("join"));
    }
    mine.sort_unstable();
    mine.dedup();
    assert_eq!(mine.len(), 60, "every append got its own index");
    assert!(mine[0] >= before);

    let size = b.size().await.expect("size");
    assert_eq!(
        a.root(size).await.expect("root"),
        b.root(size).await.expect("root")
    );
    // B signs; A's keys (which include B's) verify it.
    let signed = b.publish_checkpoint().await.expect("checkpoint");
    let verifiers: Vec<Verifier> = a
        .verifier_keys()
        .await
        .expect("keys")
        .iter()
        .map(|k| Verifier::parse(k).expect("key"))
        .collect();
    let checkpoint =
        Checkpoint::parse(note::open(&signed, &verifiers).expect("verifies")).expect("parse");
    assert!(checkpoint.size >= size);
    // An entry written through B is provably in the tree A computes.
    let index = mine[mine.len() - 1];
    let bytes = a
        .entries(index, index + 1)
        .await
        .expect("entries")
        .remove(0)
        .bytes;
    let proof = a
        .inclusion_proof(index, checkpoint.size)
        .await
        .expect("proof");
    verify_inclusion(
        index,
        checkpoint.size,
        &leaf_hash(&bytes),
        &proof,
        &checkpoint.root,
    )
    .expect("included");
    // And the log only grew since the earlier checkpoint.
    let old = Checkpoint::parse(note::open(&checkpoint_before, &verifiers).expect("verifies"))
        .expect("parse");
    if old.size > 0 {
        let proof = b
            .consistency_proof(old.size, checkpoint.size)
            .await
            .expect("proof");
        verify_consistency(
            old.size,
            checkpoint.size,
            &proof,
            &old.root,
            &checkpoint.root,
        )
        .expect("consistent");
    }
    assert!(a.entries(0, size + 1).await.is_err());
    // The whole shared log verifies offline with the registered keys.
    let report = rampart_audit::verify::verify_database(&store, None, |_, _| {})
        .await
        .expect("verify");
    assert_eq!(report.problem, None);
    assert!(
        report.entries >= size && report.checkpoints >= 1,
        "{report:?}"
    );
}

#[tokio::test]
async fn sqlite() {
    let store = Store::open_sqlite(&temp_dir("shared-sqlite"))
        .await
        .expect("sqlite");
    two_instances_agree(store).await;
}

#[tokio::test]
async fn postgres() {
    let Ok(url) = std::env::var("RAMPART_TEST_DATABASE_URL") else {
        eprintln!("SKIPPED (Postgres): RAMPART_TEST_DATABASE_URL is not set");
        return;
    };
    two_instances_agree(Store::open_postgres(&url).await.expect("postgres")).await;
}
