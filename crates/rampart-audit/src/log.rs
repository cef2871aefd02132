//! The log's storage: append-only segment files, group commit, recovery, checkpoints.
//!
//! A segment `seg-<first index>.log` holds records `u32 length (LE) ‖ leaf hash (32
//! bytes) ‖ entry bytes`. One writer thread takes every append waiting at the moment,
//! writes them in one `write` and one `fdatasync`, and only then acknowledges them.
//! A crash can therefore leave at most an incomplete record at the very end, which
//! recovery cuts (it was never acknowledged). A complete record whose hash does not
//! match its bytes is corruption: the log reports its index and refuses to append
//! until an operator acts.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use rampart_crypto::{SigningKey, SubjectKeys};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::merkle::{leaf_hash, Hash, ProofError, Tree};
use crate::note::{self, Checkpoint};

/// Largest entry accepted.
pub const MAX_ENTRY_BYTES: usize = 1 << 20;
/// Bytes before a record's entry: length and leaf hash.
const RECORD_HEADER: usize = 4 + 32;
/// Most appends written per group commit.
const MAX_BATCH: usize = 4096;

/// Where and how the log is kept.
#[derive(Debug, Clone)]
pub struct AuditLogSettings {
    /// Its directory (`<data_dir>/audit`).
    pub dir: PathBuf,
    /// A new segment starts once the current one is this large.
    pub segment_bytes: u64,
    /// Keys of event details whose values are sealed per data subject.
    pub sensitive_fields: Vec<String>,
}

impl AuditLogSettings {
    /// Defaults for `dir`: 64 MiB segments, no sensitive fields.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            segment_bytes: 64 << 20,
            sensitive_fields: Vec::new(),
        }
    }
}

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum AuditLogError {
    /// Reading or writing a file failed.
    #[error("audit log I/O: {0}")]
    Io(String),
    /// The log is corrupt at `index`; it appends nothing until an operator acts.
    #[error("audit log corrupt at entry {index}: {reason}")]
    Corrupt {
        /// The first bad entry.
        index: u64,
        /// What is wrong.
        reason: String,
    },
    /// A request names entries or sizes the log does not have.
    #[error("{0}")]
    OutOfRange(String),
    /// The entry is larger than [`MAX_ENTRY_BYTES`].
    #[error("entry of {0} bytes is too large")]
    TooLarge(usize),
    /// A key could not be loaded or used.
    #[error("audit key: {0}")]
    Key(String),
    /// The writer has stopped.
    #[error("the audit log is closed")]
    Closed,
    /// Another process (a running gateway) has the log in this directory open.
    #[error("the audit log in {0} is open in another process (a running gateway): stop it first")]
    InUse(String),
}

/// Takes the exclusive lock on `<dir>/lock` that an open log holds. A holder that
/// does not let go within two seconds (a log just closed hands it over as its writer
/// thread ends) is another process, a running gateway: an error, not a wait.
fn lock_dir(dir: &Path) -> Result<File, AuditLogError> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("lock"))?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(AuditLogError::InUse(dir.display().to_string()))
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(e.into()),
        }
    }
}

impl From<std::io::Error> for AuditLogError {
    fn from(e: std::io::Error) -> Self {
        AuditLogError::Io(e.to_string())
    }
}

impl From<ProofError> for AuditLogError {
    fn from(e: ProofError) -> Self {
        AuditLogError::OutOfRange(e.to_string())
    }
}

/// Whether the log accepts appends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// It does.
    Ok,
    /// It is corrupt at `index` and refuses appends.
    Corrupt {
        /// The first bad entry.
        index: u64,
        /// What is wrong.
        reason: String,
    },
}

/// One entry with its index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its position in the log.
    pub index: u64,
    /// The exact bytes that were hashed.
    pub bytes: Vec<u8>,
}

/// A segment file.
#[derive(Debug, Clone)]
pub(crate) struct Segment {
    pub(crate) start: u64,
    pub(crate) path: PathBuf,
}

/// A record found while scanning segments.
pub(crate) struct Record<'a> {
    pub(crate) segment: usize,
    /// Offset of the entry bytes in the segment.
    pub(crate) offset: u64,
    pub(crate) stored_hash: Hash,
    pub(crate) bytes: &'a [u8],
}

/// How a scan ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ScanEnd {
    /// Every record is whole.
    Clean,
    /// The last segment ends in an incomplete record starting at this offset.
    TornTail { segment: usize, offset: u64 },
    /// A record is bad.
    Corrupt { index: u64, reason: String },
}

/// Lists the segments in `dir`, in order.
pub(crate) fn segments(dir: &Path) -> Result<Vec<Segment>, AuditLogError> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(start) = name
            .to_str()
            .and_then(|n| n.strip_prefix("seg-"))
            .and_then(|n| n.strip_suffix(".log"))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        found.push(Segment {
            start,
            path: entry.path(),
        });
    }
    found.sort_by_key(|s| s.start);
    Ok(found)
}

/// Reads every record of `segments` in order, calling `each`; `progress` gets the
/// bytes read so far. Checks that records are contiguous and whole; a record whose
/// stored hash differs from its bytes' hash is reported as corrupt.
pub(crate) fn scan(
    segments: &[Segment],
    mut each: impl FnMut(&Record<'_>),
    mut progress: impl FnMut(u64),
) -> Result<ScanEnd, AuditLogError> {
    let mut index = 0u64;
    let mut read = 0u64;
    for (n, segment) in segments.iter().enumerate() {
        let last = n + 1 == segments.len();
        if segment.start != index {
            return Ok(ScanEnd::Corrupt {
                index,
                reason: format!(
                    "{} starts at entry {} where {index} was expected",
                    segment.path.display(),
                    segment.start
                ),
            });
        }
        let data = std::fs::read(&segment.path)?;
        let path = segment.path.display().to_string();
        let parsed = parse_records(&data, last, index, &path, |offset, stored_hash, bytes| {
            each(&Record {
                segment: n,
                offset,
                stored_hash,
                bytes,
            });
        });
        index += parsed.records;
        read += parsed.bytes;
        progress(read);
        match parsed.end {
            None => {}
            Some(ScanEnd::TornTail { offset, .. }) => {
                return Ok(ScanEnd::TornTail { segment: n, offset })
            }
            Some(end) => return Ok(end),
        }
    }
    Ok(ScanEnd::Clean)
}

/// What [`parse_records`] found in one segment's bytes.
pub struct Parsed {
    /// Whole records.
    pub records: u64,
    /// Bytes they take.
    pub bytes: u64,
    /// How the segment ended when it did not end cleanly.
    pub(crate) end: Option<ScanEnd>,
}

impl Parsed {
    /// Whether the bytes ended in a bad or incomplete record.
    pub fn is_clean(&self) -> bool {
        self.end.is_none()
    }
}

/// Parses the records of one segment's bytes, calling `each(offset of the entry,
/// stored hash, entry)` for every whole record whose hash matches; `first_index` is the
/// segment's first entry, `last` says whether it is the log's last segment (where an
/// incomplete record is a torn tail rather than corruption).
pub fn parse_records(
    data: &[u8],
    last: bool,
    first_index: u64,
    name: &str,
    mut each: impl FnMut(u64, Hash, &[u8]),
) -> Parsed {
    let mut at = 0usize;
    let mut index = first_index;
    let end = |at: usize, index: u64, end: ScanEnd| Parsed {
        records: index - first_index,
        bytes: at as u64,
        end: Some(end),
    };
    while at < data.len() {
        let rest = &data[at..];
        let incomplete = |why: &str| {
            if last {
                ScanEnd::TornTail {
                    segment: 0,
                    offset: at as u64,
                }
            } else {
                ScanEnd::Corrupt {
                    index,
                    reason: format!("{why} in {name}"),
                }
            }
        };
        if rest.len() < RECORD_HEADER {
            return end(at, index, incomplete("a truncated record header"));
        }
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        if len > MAX_ENTRY_BYTES {
            return end(
                at,
                index,
                ScanEnd::Corrupt {
                    index,
                    reason: format!("record length {len} is impossible"),
                },
            );
        }
        if rest.len() < RECORD_HEADER + len {
            return end(at, index, incomplete("a truncated record"));
        }
        let mut stored_hash = [0u8; 32];
        stored_hash.copy_from_slice(&rest[4..36]);
        let bytes = &rest[RECORD_HEADER..RECORD_HEADER + len];
        if leaf_hash(bytes) != stored_hash {
            return end(
                at,
                index,
                ScanEnd::Corrupt {
                    index,
                    reason: "the entry's bytes do not match its hash".into(),
                },
            );
        }
        each((at + RECORD_HEADER) as u64, stored_hash, bytes);
        index += 1;
        at += RECORD_HEADER + len;
    }
    Parsed {
        records: index - first_index,
        bytes: at as u64,
        end: None,
    }
}

/// A checkpoint as kept in `checkpoints.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredCheckpoint {
    pub(crate) size: u64,
    pub(crate) note: String,
}

/// Loads every signing key (`signing-key-<n>.p8`, oldest first), creating the first.
fn load_keys(dir: &Path) -> Result<Vec<Arc<SigningKey>>, AuditLogError> {
    let mut numbered = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if let Some(n) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.strip_prefix("signing-key-"))
            .and_then(|n| n.strip_suffix(".p8"))
            .and_then(|n| n.parse::<u32>().ok())
        {
            numbered.push((n, entry.path()));
        }
    }
    numbered.sort();
    if numbered.is_empty() {
        numbered.push((1, dir.join("signing-key-1.p8")));
    }
    numbered
        .iter()
        .map(|(_, path)| {
            SigningKey::load_or_create(path)
                .map(Arc::new)
                .map_err(|e| AuditLogError::Key(e.to_string()))
        })
        .collect()
}

/// The origin line (and key name) of a log whose first signing key is `key`.
pub(crate) fn origin_for(key: &SigningKey) -> String {
    let id: String = key
        .key_id()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(16)
        .collect();
    format!("rampart.audit/{id}")
}

/// The log's origin, fixed in `dir/origin` when the log is made.
fn origin(dir: &Path, first_key: &SigningKey) -> Result<String, AuditLogError> {
    let path = dir.join("origin");
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => Ok(text.trim().to_string()),
        _ => {
            let origin = origin_for(first_key);
            write_synced(&path, format!("{origin}\n").as_bytes())?;
            Ok(origin)
        }
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Reads the stored checkpoints.
pub(crate) fn read_checkpoints(dir: &Path) -> Result<Vec<StoredCheckpoint>, AuditLogError> {
    let text = match std::fs::read_to_string(dir.join("checkpoints.jsonl")) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        // A torn last line is a checkpoint that was never published.
        match serde_json::from_str::<StoredCheckpoint>(line) {
            Ok(c) => out.push(c),
            Err(_) if n + 1 == text.lines().count() => break,
            Err(e) => {
                return Err(AuditLogError::Io(format!(
                    "checkpoints.jsonl line {}: {e}",
                    n + 1
                )))
            }
        }
    }
    Ok(out)
}

/// The verifier keys of every signing key, current first.
pub(crate) fn verifier_keys(origin: &str, keys: &[Arc<SigningKey>]) -> Vec<String> {
    keys.iter()
        .rev()
        .map(|k| note::verifier_key(origin, k.public_key()))
        .collect()
}

struct State {
    tree: Tree,
    /// (segment, offset of the entry bytes, length) per entry.
    locations: Vec<(u32, u64, u32)>,
    segments: Vec<Segment>,
    health: Health,
}

struct Shared {
    settings: AuditLogSettings,
    origin: String,
    state: RwLock<State>,
    keys: RwLock<Vec<Arc<SigningKey>>>,
    checkpoints: Mutex<Vec<StoredCheckpoint>>,
    subjects: SubjectKeys,
    /// Held (an exclusive lock on `<dir>/lock`) while the log is open: one process
    /// at a time appends to the segment files.
    _lock: File,
}

type Ack = oneshot::Sender<Result<u64, AuditLogError>>;

/// The tamper-evident audit log of one data dir.
pub struct AuditLog {
    shared: Arc<Shared>,
    appends: mpsc::Sender<(Vec<u8>, Ack)>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("origin", &self.shared.origin)
            .field("size", &self.size())
            .finish()
    }
}

impl AuditLog {
    /// Opens (creating if needed) the log in `settings.dir`: loads keys, replays the
    /// segments into the tree, cuts a torn tail, checks the latest checkpoint, and
    /// starts the writer thread.
    pub fn open(settings: AuditLogSettings) -> Result<Self, AuditLogError> {
        let dir = settings.dir.clone();
        std::fs::create_dir_all(&dir)?;
        let lock = lock_dir(&dir)?;
        let keys = load_keys(&dir)?;
        let origin = origin(&dir, &keys[0])?;
        write_synced(
            &dir.join("verifier-keys"),
            (verifier_keys(&origin, &keys).join("\n") + "\n").as_bytes(),
        )?;
        let subjects = SubjectKeys::open(&dir.join("subjects"))
            .map_err(|e| AuditLogError::Key(e.to_string()))?;

        let mut segs = segments(&dir)?;
        let mut tree = Tree::new();
        let mut locations = Vec::new();
        let end = scan(
            &segs,
            |r| {
                tree.push(r.stored_hash);
                locations.push((r.segment as u32, r.offset, r.bytes.len() as u32));
            },
            |_| {},
        )?;
        let mut health = Health::Ok;
        match end {
            ScanEnd::Clean => {}
            ScanEnd::TornTail { segment, offset } => {
                let path = &segs[segment].path;
                tracing::warn!(file = %path.display(), offset, "audit log: cutting an incomplete (never acknowledged) record at the end");
                let file = OpenOptions::new().write(true).open(path)?;
                file.set_len(offset)?;
                file.sync_all()?;
            }
            ScanEnd::Corrupt { index, reason } => {
                tracing::error!(index, "audit log corrupt: {reason}; appends are refused until an operator acts (`rampart audit verify`, `rampart audit repair`)");
                health = Health::Corrupt { index, reason };
            }
        }
        let checkpoints = read_checkpoints(&dir)?;
        if let (Health::Ok, Some(latest)) = (&health, checkpoints.last()) {
            let body_root = note::open(&latest.note, &verifiers(&origin, &keys))
                .ok()
                .and_then(|b| Checkpoint::parse(b).ok());
            let problem = match body_root {
                None => Some("the latest checkpoint's signature does not verify".to_string()),
                Some(c) if c.size > tree.size() => Some(format!(
                    "the latest checkpoint covers {} entries but only {} are here: entries were lost",
                    c.size,
                    tree.size()
                )),
                Some(c) if tree.root(c.size).ok() != Some(c.root) => Some(format!(
                    "the entries before {} do not match the latest checkpoint",
                    c.size
                )),
                Some(_) => None,
            };
            if let Some(reason) = problem {
                tracing::error!("audit log: {reason}; appends are refused until an operator acts");
                health = Health::Corrupt {
                    index: tree.size(),
                    reason,
                };
            }
        }
        if segs.is_empty() {
            let path = dir.join(format!("seg-{:020}.log", 0));
            File::create(&path)?.sync_all()?;
            sync_dir(&dir)?;
            segs.push(Segment { start: 0, path });
        }
        let current = segs.last().map(|s| s.path.clone()).unwrap_or_default();
        let file = OpenOptions::new().append(true).open(&current)?;
        let shared = Arc::new(Shared {
            settings,
            origin,
            state: RwLock::new(State {
                tree,
                locations,
                segments: segs,
                health,
            }),
            keys: RwLock::new(keys),
            checkpoints: Mutex::new(checkpoints),
            subjects,
            _lock: lock,
        });
        let (appends, receiver) = mpsc::channel(65_536);
        let writer = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("rampart-audit-writer".into())
            .spawn(move || write_loop(&writer, file, receiver))?;
        Ok(Self { shared, appends })
    }

    /// The log's origin (also its key name).
    pub fn origin(&self) -> &str {
        &self.shared.origin
    }

    /// Number of entries.
    pub fn size(&self) -> u64 {
        self.shared.state.read().tree.size()
    }

    /// Whether appends are accepted.
    pub fn health(&self) -> Health {
        self.shared.state.read().health.clone()
    }

    /// Appends `entry`; returns its index once it is on disk.
    pub async fn append(&self, entry: Vec<u8>) -> Result<u64, AuditLogError> {
        if entry.len() > MAX_ENTRY_BYTES {
            return Err(AuditLogError::TooLarge(entry.len()));
        }
        let (ack, done) = oneshot::channel();
        self.appends
            .send((entry, ack))
            .await
            .map_err(|_| AuditLogError::Closed)?;
        done.await.map_err(|_| AuditLogError::Closed)?
    }

    /// The per-subject keys sensitive details are sealed with.
    pub fn subject_keys(&self) -> &SubjectKeys {
        &self.shared.subjects
    }

    /// Keys of event details that are sealed.
    pub fn sensitive_fields(&self) -> &[String] {
        &self.shared.settings.sensitive_fields
    }

    /// Entries `start..end` (at most 1000).
    pub fn entries(&self, start: u64, end: u64) -> Result<Vec<Entry>, AuditLogError> {
        let (locations, paths) = {
            let state = self.shared.state.read();
            let size = state.tree.size();
            if start > end || end > size || end - start > 1000 {
                return Err(AuditLogError::OutOfRange(format!(
                    "entries {start}..{end}: the log has {size}; at most 1000 at once"
                )));
            }
            let locations: Vec<(u32, u64, u32)> =
                state.locations[start as usize..end as usize].to_vec();
            let paths: Vec<PathBuf> = state.segments.iter().map(|s| s.path.clone()).collect();
            (locations, paths)
        };
        let mut files: Vec<Option<File>> = Vec::new();
        files.resize_with(paths.len(), || None);
        let mut out = Vec::with_capacity(locations.len());
        for (i, (segment, offset, len)) in locations.into_iter().enumerate() {
            let file = match &mut files[segment as usize] {
                Some(f) => f,
                slot => slot.insert(File::open(&paths[segment as usize])?),
            };
            let mut bytes = vec![0u8; len as usize];
            std::os::unix::fs::FileExt::read_exact_at(&*file, &mut bytes, offset)?;
            out.push(Entry {
                index: start + i as u64,
                bytes,
            });
        }
        Ok(out)
    }

    /// The root hash of the first `size` entries.
    pub fn root(&self, size: u64) -> Result<Hash, AuditLogError> {
        Ok(self.shared.state.read().tree.root(size)?)
    }

    /// The leaf hash of entry `index`.
    pub fn leaf_hash(&self, index: u64) -> Option<Hash> {
        self.shared.state.read().tree.leaf(index)
    }

    /// The inclusion proof of entry `index` in the tree of `size` entries.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, AuditLogError> {
        Ok(self.shared.state.read().tree.inclusion_proof(index, size)?)
    }

    /// The consistency proof between the trees of `from` and `to` entries.
    pub fn consistency_proof(&self, from: u64, to: u64) -> Result<Vec<Hash>, AuditLogError> {
        Ok(self.shared.state.read().tree.consistency_proof(from, to)?)
    }

    /// The verifier keys of every signing key, current first.
    pub fn verifier_keys(&self) -> Vec<String> {
        verifier_keys(&self.shared.origin, &self.shared.keys.read())
    }

    /// The latest signed checkpoint, if one was published.
    pub fn latest_checkpoint(&self) -> Option<String> {
        self.shared
            .checkpoints
            .lock()
            .last()
            .map(|c| c.note.clone())
    }

    /// Signs and stores a checkpoint of the current tree (unless the latest already
    /// covers it); returns the latest note.
    pub fn publish_checkpoint(&self) -> Result<String, AuditLogError> {
        let (size, root) = {
            let state = self.shared.state.read();
            if let Health::Corrupt { index, reason } = &state.health {
                return Err(AuditLogError::Corrupt {
                    index: *index,
                    reason: reason.clone(),
                });
            }
            (state.tree.size(), state.tree.root(state.tree.size())?)
        };
        let mut checkpoints = self.shared.checkpoints.lock();
        if let Some(latest) = checkpoints.last() {
            if latest.size == size {
                return Ok(latest.note.clone());
            }
        }
        let key = self
            .shared
            .keys
            .read()
            .last()
            .cloned()
            .ok_or_else(|| AuditLogError::Key("no signing key".into()))?;
        let body = Checkpoint {
            origin: self.shared.origin.clone(),
            size,
            root,
        }
        .body();
        let signed = note::sign(&body, &self.shared.origin, &key);
        let stored = StoredCheckpoint {
            size,
            note: signed.clone(),
        };
        let mut line = serde_json::to_vec(&stored).map_err(|e| AuditLogError::Io(e.to_string()))?;
        line.push(b'\n');
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.shared.settings.dir.join("checkpoints.jsonl"))?;
        file.write_all(&line)?;
        file.sync_data()?;
        checkpoints.push(stored);
        Ok(signed)
    }
}

/// The parsed verifier keys of `keys`.
fn verifiers(origin: &str, keys: &[Arc<SigningKey>]) -> Vec<note::Verifier> {
    verifier_keys(origin, keys)
        .iter()
        .filter_map(|k| note::Verifier::parse(k).ok())
        .collect()
}

/// Adds a new signing key; later checkpoints are signed with it, and the old keys stay
/// published so that earlier checkpoints still verify. Run while the log is closed.
pub fn rotate_key(dir: &Path) -> Result<String, AuditLogError> {
    let keys = load_keys(dir)?;
    let next = dir.join(format!("signing-key-{}.p8", keys.len() + 1));
    let key = SigningKey::load_or_create(&next).map_err(|e| AuditLogError::Key(e.to_string()))?;
    let origin = origin(dir, &keys[0])?;
    let mut all = keys;
    all.push(Arc::new(key));
    let published = verifier_keys(&origin, &all);
    write_synced(
        &dir.join("verifier-keys"),
        (published.join("\n") + "\n").as_bytes(),
    )?;
    Ok(published[0].clone())
}

/// Cuts a torn or corrupt tail if, and only if, no published checkpoint covers it;
/// returns the number of bytes removed. Refuses (and changes nothing) when the bad
/// entry is covered by a checkpoint or is not in the last segment: that would rewrite
/// history. Run while the log is closed.
pub fn repair(dir: &Path) -> Result<u64, AuditLogError> {
    let segs = segments(dir)?;
    let mut last_good_end: Option<(usize, u64)> = None;
    let end = scan(
        &segs,
        |r| last_good_end = Some((r.segment, r.offset + r.bytes.len() as u64)),
        |_| {},
    )?;
    let (segment, offset) = match end {
        ScanEnd::Clean => return Ok(0),
        ScanEnd::TornTail { segment, offset } => (segment, offset),
        ScanEnd::Corrupt { index, reason } => {
            let covered = read_checkpoints(dir)?.last().map_or(0, |c| c.size);
            if index < covered {
                return Err(AuditLogError::Corrupt {
                    index,
                    reason: format!("{reason}; a signed checkpoint (size {covered}) covers it, so cutting it would rewrite history"),
                });
            }
            let last = segs.len().saturating_sub(1);
            let cut = match last_good_end {
                _ if segs.get(last).is_some_and(|s| s.start == index) => 0,
                Some((seg, end)) if seg == last => end,
                _ => {
                    return Err(AuditLogError::Corrupt {
                        index,
                        reason: format!("{reason}; the bad entry is not in the last segment"),
                    })
                }
            };
            (last, cut)
        }
    };
    let path = &segs[segment].path;
    let before = std::fs::metadata(path)?.len();
    let file = OpenOptions::new().write(true).open(path)?;
    file.set_len(offset)?;
    file.sync_all()?;
    Ok(before - offset)
}

/// The writer thread: group commits until every sender is gone.
fn write_loop(shared: &Shared, mut file: File, mut receiver: mpsc::Receiver<(Vec<u8>, Ack)>) {
    let mut written = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut buffer = Vec::new();
    while let Some(first) = receiver.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        if let Health::Corrupt { index, reason } = shared.state.read().health.clone() {
            for (_, ack) in batch {
                let _ = ack.send(Err(AuditLogError::Corrupt {
                    index,
                    reason: reason.clone(),
                }));
            }
            continue;
        }
        // A new segment once the current one is full.
        if written >= shared.settings.segment_bytes {
            let start = shared.state.read().tree.size();
            let path = shared.settings.dir.join(format!("seg-{start:020}.log"));
            let opened = File::create(&path)
                .and_then(|f| f.sync_all().map(|()| f))
                .and_then(|f| sync_dir(&shared.settings.dir).map(|()| f));
            match opened {
                Ok(f) => {
                    file = f;
                    written = 0;
                    shared.state.write().segments.push(Segment { start, path });
                }
                Err(e) => {
                    fail(batch, &e);
                    continue;
                }
            }
        }
        buffer.clear();
        let mut hashes = Vec::with_capacity(batch.len());
        for (entry, _) in &batch {
            let hash = leaf_hash(entry);
            buffer.extend_from_slice(&(entry.len() as u32).to_le_bytes());
            buffer.extend_from_slice(&hash);
            buffer.extend_from_slice(entry);
            hashes.push(hash);
        }
        if let Err(e) = file.write_all(&buffer).and_then(|()| file.sync_data()) {
            // Take back whatever part of the batch reached the file.
            if file
                .set_len(written)
                .and_then(|()| file.sync_all())
                .is_err()
            {
                let index = shared.state.read().tree.size();
                shared.state.write().health = Health::Corrupt {
                    index,
                    reason: format!("a failed write could not be undone: {e}"),
                };
            }
            fail(batch, &e);
            continue;
        }
        let mut state = shared.state.write();
        let segment = (state.segments.len() - 1) as u32;
        let mut offset = written;
        for ((entry, ack), hash) in batch.into_iter().zip(hashes) {
            let index = state.tree.size();
            state.tree.push(hash);
            state
                .locations
                .push((segment, offset + RECORD_HEADER as u64, entry.len() as u32));
            offset += (RECORD_HEADER + entry.len()) as u64;
            let _ = ack.send(Ok(index));
        }
        written = offset;
    }
}

fn fail(batch: Vec<(Vec<u8>, Ack)>, e: &std::io::Error) {
    tracing::error!("audit log write failed: {e}");
    for (_, ack) in batch {
        let _ = ack.send(Err(AuditLogError::Io(e.to_string())));
    }
}
