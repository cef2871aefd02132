//! Offline verification of a log directory (or of the shared log in the database):
//! recompute the tree from the entries and check every stored checkpoint against it,
//! using only public keys.

use std::path::Path;

use crate::log::{read_checkpoints, scan, segments, ScanEnd};
use crate::merkle::{leaf_hash, verify_consistency, Tree};
use crate::note::{self, Checkpoint, Verifier};

/// What verification found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Entries whose bytes match their hashes, in order from 0.
    pub entries: u64,
    /// Checkpoints checked.
    pub checkpoints: usize,
    /// The first problem, if any, with the index it concerns.
    pub problem: Option<(u64, String)>,
}

/// Verifies the log in `dir` against the verifier keys in `dir/verifier-keys` (or
/// `keys`, when given). `progress` is told (bytes read, total bytes).
pub fn verify(
    dir: &Path,
    keys: Option<&[String]>,
    mut progress: impl FnMut(u64, u64),
) -> Result<Report, crate::AuditLogError> {
    let segs = segments(dir)?;
    let total: u64 = segs
        .iter()
        .map(|s| std::fs::metadata(&s.path).map_or(0, |m| m.len()))
        .sum();
    let mut tree = Tree::new();
    let end = scan(
        &segs,
        |r| tree.push(r.stored_hash),
        |done| progress(done, total),
    )?;
    let mut problem = match end {
        ScanEnd::Clean => None,
        ScanEnd::TornTail { .. } => Some((
            tree.size(),
            "an incomplete record ends the log (a crash during an append; the next start or `rampart audit repair` cuts it)".to_string(),
        )),
        ScanEnd::Corrupt { index, reason } => Some((index, reason)),
    };
    let key_lines: Vec<String> = match keys {
        Some(k) => k.to_vec(),
        None => std::fs::read_to_string(dir.join("verifier-keys"))?
            .lines()
            .map(str::to_string)
            .collect(),
    };
    let verifiers = parse_keys(&key_lines);
    let checkpoints: Vec<(u64, String)> = read_checkpoints(dir)?
        .into_iter()
        .map(|c| (c.size, c.note))
        .collect();
    if problem.is_none() {
        problem = check_checkpoints(&tree, &checkpoints, &verifiers)?;
    }
    Ok(Report {
        entries: tree.size(),
        checkpoints: checkpoints.len(),
        problem,
    })
}

fn parse_keys(lines: &[String]) -> Vec<Verifier> {
    lines
        .iter()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| Verifier::parse(l).ok())
        .collect()
}

/// Checks each checkpoint's signature, that the tree has its entries with its root,
/// and that consecutive checkpoints are consistent; returns the first problem.
fn check_checkpoints(
    tree: &Tree,
    checkpoints: &[(u64, String)],
    verifiers: &[Verifier],
) -> Result<Option<(u64, String)>, crate::AuditLogError> {
    let mut previous: Option<Checkpoint> = None;
    for (size, signed) in checkpoints {
        let checkpoint = match note::open(signed, verifiers).map(Checkpoint::parse) {
            Ok(Ok(c)) => c,
            Ok(Err(e)) | Err(e) => {
                return Ok(Some((*size, format!("checkpoint of size {size}: {e}"))));
            }
        };
        if checkpoint.size > tree.size() {
            return Ok(Some((
                tree.size(),
                format!(
                    "a signed checkpoint covers {} entries but the log has {}: entries were removed",
                    checkpoint.size,
                    tree.size()
                ),
            )));
        }
        if tree.root(checkpoint.size)? != checkpoint.root {
            return Ok(Some((
                previous.as_ref().map_or(0, |p| p.size),
                format!(
                    "entries before {} do not match the signed checkpoint of that size",
                    checkpoint.size
                ),
            )));
        }
        if let Some(p) = previous.as_ref().filter(|p| p.size > 0) {
            let proof = tree.consistency_proof(p.size, checkpoint.size)?;
            if verify_consistency(p.size, checkpoint.size, &proof, &p.root, &checkpoint.root)
                .is_err()
            {
                return Ok(Some((p.size, "checkpoints are not consistent".into())));
            }
        }
        previous = Some(checkpoint);
    }
    Ok(None)
}

/// Verifies the shared log in `store` like [`verify`]: every entry against its hash,
/// every checkpoint against the tree, with the registered verifier keys (or `keys`).
/// `progress` is told (entries read, entries so far known).
pub async fn verify_database(
    store: &rampart_store::Store,
    keys: Option<&[String]>,
    mut progress: impl FnMut(u64, u64),
) -> Result<Report, crate::AuditLogError> {
    use rampart_store::AuditLogStore;
    let db = |e: rampart_store::StoreError| crate::AuditLogError::Io(e.to_string());
    let mut tree = Tree::new();
    let mut problem = None;
    'read: loop {
        let rows = store.audit_read(tree.size(), 5000).await.map_err(db)?;
        if rows.is_empty() {
            break;
        }
        for row in rows {
            let index = tree.size();
            if row.index != index {
                problem = Some((index, format!("entry {index} is missing")));
                break 'read;
            }
            let hash = leaf_hash(&row.entry);
            if row.leaf_hash != hash {
                problem = Some((index, "the entry's bytes do not match its hash".into()));
                break 'read;
            }
            tree.push(hash);
        }
        progress(tree.size(), tree.size());
    }
    let key_lines = match keys {
        Some(k) => k.to_vec(),
        None => store.audit_keys().await.map_err(db)?,
    };
    let checkpoints = store.audit_checkpoints().await.map_err(db)?;
    if problem.is_none() {
        problem = check_checkpoints(&tree, &checkpoints, &parse_keys(&key_lines))?;
    }
    Ok(Report {
        entries: tree.size(),
        checkpoints: checkpoints.len(),
        problem,
    })
}

/// Calls `each` with every whole entry of the log in `dir`, in order, without opening
/// it for writing; returns how many there were. Stops at the first bad record.
pub fn read_entries(
    dir: &Path,
    mut each: impl FnMut(u64, &[u8]),
) -> Result<u64, crate::AuditLogError> {
    let mut index = 0;
    scan(
        &segments(dir)?,
        |r| {
            each(index, r.bytes);
            index += 1;
        },
        |_| {},
    )?;
    Ok(index)
}

/// Calls `each` with every entry of the shared log in `store` from index `start`, in
/// order; returns the index after the last one read. Stops with an error at a missing
/// entry or one whose bytes do not match its hash.
pub async fn read_entries_database(
    store: &rampart_store::Store,
    start: u64,
    mut each: impl FnMut(u64, &[u8]),
) -> Result<u64, crate::AuditLogError> {
    use rampart_store::AuditLogStore;
    let db = |e: rampart_store::StoreError| crate::AuditLogError::Io(e.to_string());
    let mut next = start;
    loop {
        let rows = store.audit_read(next, 5000).await.map_err(db)?;
        if rows.is_empty() {
            return Ok(next);
        }
        for row in rows {
            if row.index != next {
                return Err(crate::AuditLogError::Io(format!("entry {next} is missing")));
            }
            if row.leaf_hash != leaf_hash(&row.entry) {
                return Err(crate::AuditLogError::Io(format!(
                    "entry {next}: its bytes do not match its hash"
                )));
            }
            each(next, &row.entry);
            next += 1;
        }
    }
}
