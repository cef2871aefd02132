//! Offline verification of a log directory: recompute the tree from the entries and
//! check every stored checkpoint against it, using only public keys.

use std::path::Path;

use crate::log::{read_checkpoints, scan, segments, ScanEnd};
use crate::merkle::{verify_consistency, Tree};
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
    let verifiers: Vec<Verifier> = key_lines
        .iter()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| Verifier::parse(l).ok())
        .collect();
    let checkpoints = read_checkpoints(dir)?;
    let mut previous: Option<Checkpoint> = None;
    for stored in &checkpoints {
        if problem.is_some() {
            break;
        }
        let checkpoint = match note::open(&stored.note, &verifiers).map(Checkpoint::parse) {
            Ok(Ok(c)) => c,
            Ok(Err(e)) | Err(e) => {
                problem = Some((
                    stored.size,
                    format!("checkpoint of size {}: {e}", stored.size),
                ));
                break;
            }
        };
        if checkpoint.size > tree.size() {
            problem = Some((
                tree.size(),
                format!(
                    "a signed checkpoint covers {} entries but the log has {}: entries were removed",
                    checkpoint.size,
                    tree.size()
                ),
            ));
            break;
        }
        let root = tree.root(checkpoint.size)?;
        if root != checkpoint.root {
            problem = Some((
                previous.as_ref().map_or(0, |p| p.size),
                format!(
                    "entries before {} do not match the signed checkpoint of that size",
                    checkpoint.size
                ),
            ));
            break;
        }
        if let Some(p) = previous.as_ref().filter(|p| p.size > 0) {
            let proof = tree.consistency_proof(p.size, checkpoint.size)?;
            if verify_consistency(p.size, checkpoint.size, &proof, &p.root, &checkpoint.root)
                .is_err()
            {
                problem = Some((p.size, "checkpoints are not consistent".into()));
                break;
            }
        }
        previous = Some(checkpoint);
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
