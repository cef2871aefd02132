//! The public RFC 6962 inclusion and consistency vectors (transparency-dev/merkle
//! testdata, in ../shared/merkle-vectors): every case must verify or fail as it says.

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rampart_audit::merkle::{verify_consistency, verify_inclusion, Hash};

/// The vectors' directory: `$RAMPART_SHARED_DIR/merkle-vectors/testdata`, else a
/// `shared/` directory beside the checkout (or any of its parents).
fn vector_dir(kind: &str) -> Option<PathBuf> {
    let from_env = std::env::var_os("RAMPART_SHARED_DIR").map(PathBuf::from);
    let beside = Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|a| a.join("shared"))
        .find(|d| d.join("merkle-vectors").is_dir());
    let dir = from_env
        .or(beside)?
        .join("merkle-vectors/testdata")
        .join(kind);
    dir.is_dir().then_some(dir)
}

/// Every JSON file under the kind's directory, at any depth; `None` (after saying so)
/// when the shared test data is not on this machine.
fn files(kind: &str) -> Option<Vec<PathBuf>> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "json") {
                out.push(path);
            }
        }
    }
    let Some(dir) = vector_dir(kind) else {
        assert!(
            std::env::var_os("RAMPART_REQUIRE_SHARED").is_none(),
            "the RFC 6962 vectors are required here but not found (set RAMPART_SHARED_DIR)"
        );
        eprintln!("SKIPPED (shared data): merkle-vectors not found; set RAMPART_SHARED_DIR");
        return None;
    };
    let mut out = Vec::new();
    walk(&dir, &mut out);
    out.sort();
    Some(out)
}

/// Raw base64 bytes (roots may be any bytes in the consistency vectors).
fn bytes(value: &serde_json::Value) -> Option<Vec<u8>> {
    STANDARD.decode(value.as_str()?).ok()
}

/// A hash, or `None` when the text is not 32 bytes of base64 (which must fail).
fn hash(value: &serde_json::Value) -> Option<Hash> {
    STANDARD
        .decode(value.as_str()?)
        .ok()
        .and_then(|b| Hash::try_from(b.as_slice()).ok())
}

/// The proof's hashes (`null` is the empty proof).
fn proof(value: &serde_json::Value) -> Option<Vec<Hash>> {
    if value.is_null() {
        return Some(Vec::new());
    }
    value.as_array()?.iter().map(hash).collect()
}

#[test]
fn inclusion_vectors() {
    let Some(files) = files("inclusion") else {
        return;
    };
    assert!(files.len() > 50, "only {} inclusion vectors", files.len());
    let mut happy = 0;
    for file in &files {
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(file).expect("read")).expect("json");
        let want_err = v["wantErr"].as_bool().expect("wantErr");
        let result = match (hash(&v["leafHash"]), hash(&v["root"]), proof(&v["proof"])) {
            (Some(leaf), Some(root), Some(proof)) => verify_inclusion(
                v["leafIdx"].as_u64().expect("leafIdx"),
                v["treeSize"].as_u64().expect("treeSize"),
                &leaf,
                &proof,
                &root,
            )
            .map_err(|e| e.to_string()),
            _ => Err("malformed hash".to_string()),
        };
        assert_eq!(result.is_err(), want_err, "{}: {result:?}", file.display());
        if !want_err {
            happy += 1;
        }
    }
    assert!(happy > 5, "only {happy} happy paths");
}

#[test]
fn consistency_vectors() {
    let Some(files) = files("consistency") else {
        return;
    };
    assert!(files.len() > 50, "only {} consistency vectors", files.len());
    for file in &files {
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(file).expect("read")).expect("json");
        let want_err = v["wantErr"].as_bool().expect("wantErr");
        let result = match (bytes(&v["root1"]), bytes(&v["root2"]), proof(&v["proof"])) {
            (Some(r1), Some(r2), Some(proof)) => verify_consistency(
                v["size1"].as_u64().expect("size1"),
                v["size2"].as_u64().expect("size2"),
                &proof,
                &r1,
                &r2,
            )
            .map_err(|e| e.to_string()),
            _ => Err("malformed hash".to_string()),
        };
        assert_eq!(result.is_err(), want_err, "{}: {result:?}", file.display());
    }
}
