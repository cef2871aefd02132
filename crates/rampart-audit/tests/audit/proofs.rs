//! Proofs from the log at random sizes verify; altered ones do not.

use proptest::prelude::*;
use rampart_audit::merkle::{leaf_hash, verify_consistency, verify_inclusion, Tree};

fn tree(n: u64) -> Tree {
    let mut t = Tree::new();
    for i in 0..n {
        t.push(leaf_hash(&i.to_be_bytes()));
    }
    t
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn inclusion_proofs_verify(size in 1u64..3000, pick in any::<u64>(), flip in any::<(usize, u8)>()) {
        let t = tree(size);
        let index = pick % size;
        let root = t.root(size).expect("root");
        let leaf = t.leaf(index).expect("leaf");
        let proof = t.inclusion_proof(index, size).expect("proof");
        prop_assert!(verify_inclusion(index, size, &leaf, &proof, &root).is_ok());
        if !proof.is_empty() {
            let mut bad = proof.clone();
            let at = flip.0 % bad.len();
            bad[at][usize::from(flip.1) % 32] ^= 1;
            prop_assert!(verify_inclusion(index, size, &leaf, &bad, &root).is_err());
        }
        let wrong_leaf = leaf_hash(b"not in the tree");
        prop_assert!(verify_inclusion(index, size, &wrong_leaf, &proof, &root).is_err());
    }

    #[test]
    fn consistency_proofs_verify(new in 1u64..3000, pick in any::<u64>(), flip in any::<(usize, u8)>()) {
        let t = tree(new);
        let old = 1 + pick % new;
        let proof = t.consistency_proof(old, new).expect("proof");
        let old_root = t.root(old).expect("root");
        let new_root = t.root(new).expect("root");
        prop_assert!(verify_consistency(old, new, &proof, &old_root, &new_root).is_ok());
        if !proof.is_empty() {
            let mut bad = proof.clone();
            let at = flip.0 % bad.len();
            bad[at][usize::from(flip.1) % 32] ^= 1;
            prop_assert!(verify_consistency(old, new, &bad, &old_root, &new_root).is_err());
        }
        if old > 0 && old < new {
            // A tree that is not a prefix: another history of the same size.
            let mut other = Tree::new();
            for i in 0..new {
                other.push(leaf_hash(&(i + 1).to_be_bytes()));
            }
            let other_root = other.root(new).expect("root");
            prop_assert!(verify_consistency(old, new, &proof, &old_root, &other_root).is_err());
        }
    }
}
