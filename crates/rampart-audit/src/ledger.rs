//! One interface over the two ways the log is kept: segment files in the data dir
//! ([`AuditLog`], one instance) or the shared database ([`SharedAuditLog`], several
//! instances appending to one log sequenced there). Both give the same entries, the
//! same tree and the same proofs.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rampart_crypto::{SigningKey, SubjectKeys};
use rampart_store::{AuditEvent, AuditLogStore, Store};
use tokio::sync::{mpsc, oneshot, Mutex as AsyncMutex};

use crate::log::{AuditLogError, Entry, Health, MAX_ENTRY_BYTES};
use crate::merkle::{leaf_hash, Hash, Tree};
use crate::note::{self, Checkpoint};
use crate::AuditLog;

/// The audit log as the rest of Rampart uses it.
#[async_trait]
pub trait Ledger: Send + Sync {
    /// The log's origin (its checkpoints' first line).
    fn origin(&self) -> String;
    /// Whether appends are accepted.
    fn health(&self) -> Health;
    /// Keys of event details that are sealed per data subject.
    fn sensitive_fields(&self) -> &[String];
    /// The per-subject keys they are sealed with.
    fn subject_keys(&self) -> &SubjectKeys;
    /// Appends `entry`; returns its index once it is durable.
    async fn append(&self, entry: Vec<u8>) -> Result<u64, AuditLogError>;
    /// Number of entries.
    async fn size(&self) -> Result<u64, AuditLogError>;
    /// Entries `start..end` (at most 1000).
    async fn entries(&self, start: u64, end: u64) -> Result<Vec<Entry>, AuditLogError>;
    /// The root of the first `size` entries.
    async fn root(&self, size: u64) -> Result<Hash, AuditLogError>;
    /// The leaf hash of entry `index`.
    async fn leaf_hash(&self, index: u64) -> Result<Option<Hash>, AuditLogError>;
    /// The inclusion proof of entry `index` in the tree of `size` entries.
    async fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, AuditLogError>;
    /// The consistency proof between the trees of `from` and `to` entries.
    async fn consistency_proof(&self, from: u64, to: u64) -> Result<Vec<Hash>, AuditLogError>;
    /// Verifier keys of every signing key, current first.
    async fn verifier_keys(&self) -> Result<Vec<String>, AuditLogError>;
    /// The latest signed checkpoint.
    async fn latest_checkpoint(&self) -> Result<Option<String>, AuditLogError>;
    /// Signs and stores a checkpoint of the log as it is now.
    async fn publish_checkpoint(&self) -> Result<String, AuditLogError>;

    /// Seals an event's sensitive details, encodes it and appends it; returns its index
    /// and the sealed event (the only form in which it may be stored elsewhere).
    async fn append_event(&self, event: &AuditEvent) -> Result<(u64, AuditEvent), AuditLogError> {
        let sealed = crate::event::seal(event, self.sensitive_fields(), Some(self.subject_keys()));
        let index = self.append(crate::event::encode(&sealed)).await?;
        Ok((index, sealed))
    }
}

/// Publishes a checkpoint every `interval` while `ledger` lives.
pub fn publish_every(ledger: &Arc<dyn Ledger>, interval: Duration) {
    let weak = Arc::downgrade(ledger);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(ledger) = weak.upgrade() else { return };
            if ledger.health() == Health::Ok {
                if let Err(e) = ledger.publish_checkpoint().await {
                    tracing::error!("audit checkpoint not published: {e}");
                }
            }
        }
    });
}

#[async_trait]
impl Ledger for AuditLog {
    fn origin(&self) -> String {
        AuditLog::origin(self).to_string()
    }
    fn health(&self) -> Health {
        AuditLog::health(self)
    }
    fn sensitive_fields(&self) -> &[String] {
        AuditLog::sensitive_fields(self)
    }
    fn subject_keys(&self) -> &SubjectKeys {
        AuditLog::subject_keys(self)
    }
    async fn append(&self, entry: Vec<u8>) -> Result<u64, AuditLogError> {
        AuditLog::append(self, entry).await
    }
    async fn size(&self) -> Result<u64, AuditLogError> {
        Ok(AuditLog::size(self))
    }
    async fn entries(&self, start: u64, end: u64) -> Result<Vec<Entry>, AuditLogError> {
        AuditLog::entries(self, start, end)
    }
    async fn root(&self, size: u64) -> Result<Hash, AuditLogError> {
        AuditLog::root(self, size)
    }
    async fn leaf_hash(&self, index: u64) -> Result<Option<Hash>, AuditLogError> {
        Ok(AuditLog::leaf_hash(self, index))
    }
    async fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, AuditLogError> {
        AuditLog::inclusion_proof(self, index, size)
    }
    async fn consistency_proof(&self, from: u64, to: u64) -> Result<Vec<Hash>, AuditLogError> {
        AuditLog::consistency_proof(self, from, to)
    }
    async fn verifier_keys(&self) -> Result<Vec<String>, AuditLogError> {
        Ok(AuditLog::verifier_keys(self))
    }
    async fn latest_checkpoint(&self) -> Result<Option<String>, AuditLogError> {
        Ok(AuditLog::latest_checkpoint(self))
    }
    async fn publish_checkpoint(&self) -> Result<String, AuditLogError> {
        // A small write and one fsync: brief enough to run in place.
        AuditLog::publish_checkpoint(self)
    }
}

type Ack = oneshot::Sender<Result<u64, AuditLogError>>;

/// The audit log kept in the shared database: appends from every instance are
/// sequenced there (group-committed per instance), each instance follows the table to
/// keep its own copy of the tree for proofs, and signs checkpoints with its own key,
/// whose verifier key it registers for everyone to see.
pub struct SharedAuditLog {
    store: Store,
    origin: String,
    key: Arc<SigningKey>,
    sensitive: Vec<String>,
    subjects: SubjectKeys,
    tree: AsyncMutex<Tree>,
    appends: mpsc::Sender<(Vec<u8>, Ack)>,
    health: parking_lot::RwLock<Health>,
}

fn db(e: rampart_store::StoreError) -> AuditLogError {
    AuditLogError::Io(format!("audit database: {e}"))
}

impl SharedAuditLog {
    /// Joins the log in `store`: agrees on its origin, registers this instance's
    /// verifier key (its signing key and subject keys stay in `dir`), and starts the
    /// appender.
    pub async fn open(
        store: Store,
        dir: &std::path::Path,
        sensitive: Vec<String>,
    ) -> Result<Self, AuditLogError> {
        std::fs::create_dir_all(dir)?;
        let key = SigningKey::load_or_create(&dir.join("shared-signing-key.p8"))
            .map_err(|e| AuditLogError::Key(e.to_string()))?;
        let proposed = crate::log::origin_for(&key);
        let origin = store.audit_origin(&proposed).await.map_err(db)?;
        store
            .audit_register_key(&note::verifier_key(&origin, key.public_key()))
            .await
            .map_err(db)?;
        let subjects = SubjectKeys::open(&dir.join("subjects"))
            .map_err(|e| AuditLogError::Key(e.to_string()))?;
        let (appends, mut receiver) = mpsc::channel::<(Vec<u8>, Ack)>(65_536);
        let writer = store.clone();
        tokio::spawn(async move {
            while let Some(first) = receiver.recv().await {
                let mut batch = vec![first];
                while batch.len() < 1024 {
                    match receiver.try_recv() {
                        Ok(next) => batch.push(next),
                        Err(_) => break,
                    }
                }
                let rows: Vec<(Vec<u8>, [u8; 32])> = batch
                    .iter()
                    .map(|(entry, _)| (entry.clone(), leaf_hash(entry)))
                    .collect();
                match writer.audit_append(&rows).await {
                    Ok(first_index) => {
                        for (i, (_, ack)) in batch.into_iter().enumerate() {
                            let _ = ack.send(Ok(first_index + i as u64));
                        }
                    }
                    Err(e) => {
                        tracing::error!("audit append failed: {e}");
                        for (_, ack) in batch {
                            let _ = ack.send(Err(db(rampart_store::StoreError::Unavailable(
                                e.to_string(),
                            ))));
                        }
                    }
                }
            }
        });
        let log = Self {
            store,
            origin,
            key: Arc::new(key),
            sensitive,
            subjects,
            tree: AsyncMutex::new(Tree::new()),
            appends,
            health: parking_lot::RwLock::new(Health::Ok),
        };
        drop(log.catch_up().await?);
        Ok(log)
    }

    /// Brings this instance's tree up to the table, checking every entry's hash.
    async fn catch_up(&self) -> Result<tokio::sync::MutexGuard<'_, Tree>, AuditLogError> {
        let mut tree = self.tree.lock().await;
        loop {
            let rows = self.store.audit_read(tree.size(), 5000).await.map_err(db)?;
            if rows.is_empty() {
                return Ok(tree);
            }
            for row in rows {
                let hash = leaf_hash(&row.entry);
                if row.index != tree.size() || row.leaf_hash != hash {
                    let reason = if row.index != tree.size() {
                        format!("entry {} is missing", tree.size())
                    } else {
                        "the entry's bytes do not match its hash".to_string()
                    };
                    let index = tree.size();
                    *self.health.write() = Health::Corrupt {
                        index,
                        reason: reason.clone(),
                    };
                    return Err(AuditLogError::Corrupt { index, reason });
                }
                tree.push(hash);
            }
        }
    }
}

#[async_trait]
impl Ledger for SharedAuditLog {
    fn origin(&self) -> String {
        self.origin.clone()
    }
    fn health(&self) -> Health {
        self.health.read().clone()
    }
    fn sensitive_fields(&self) -> &[String] {
        &self.sensitive
    }
    fn subject_keys(&self) -> &SubjectKeys {
        &self.subjects
    }
    async fn append(&self, entry: Vec<u8>) -> Result<u64, AuditLogError> {
        if entry.len() > MAX_ENTRY_BYTES {
            return Err(AuditLogError::TooLarge(entry.len()));
        }
        if let Health::Corrupt { index, reason } = self.health() {
            return Err(AuditLogError::Corrupt { index, reason });
        }
        let (ack, done) = oneshot::channel();
        self.appends
            .send((entry, ack))
            .await
            .map_err(|_| AuditLogError::Closed)?;
        done.await.map_err(|_| AuditLogError::Closed)?
    }
    async fn size(&self) -> Result<u64, AuditLogError> {
        Ok(self.catch_up().await?.size())
    }
    async fn entries(&self, start: u64, end: u64) -> Result<Vec<Entry>, AuditLogError> {
        let size = self.size().await?;
        if start > end || end > size || end - start > 1000 {
            return Err(AuditLogError::OutOfRange(format!(
                "entries {start}..{end}: the log has {size}; at most 1000 at once"
            )));
        }
        let rows = self
            .store
            .audit_read(start, u32::try_from(end - start).unwrap_or(1000))
            .await
            .map_err(db)?;
        Ok(rows
            .into_iter()
            .map(|r| Entry {
                index: r.index,
                bytes: r.entry,
            })
            .collect())
    }
    async fn root(&self, size: u64) -> Result<Hash, AuditLogError> {
        Ok(self.catch_up().await?.root(size)?)
    }
    async fn leaf_hash(&self, index: u64) -> Result<Option<Hash>, AuditLogError> {
        Ok(self.catch_up().await?.leaf(index))
    }
    async fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, AuditLogError> {
        Ok(self.catch_up().await?.inclusion_proof(index, size)?)
    }
    async fn consistency_proof(&self, from: u64, to: u64) -> Result<Vec<Hash>, AuditLogError> {
        Ok(self.catch_up().await?.consistency_proof(from, to)?)
    }
    async fn verifier_keys(&self) -> Result<Vec<String>, AuditLogError> {
        let mine = note::verifier_key(&self.origin, self.key.public_key());
        let mut keys = vec![mine.clone()];
        keys.extend(
            self.store
                .audit_keys()
                .await
                .map_err(db)?
                .into_iter()
                .filter(|k| *k != mine),
        );
        Ok(keys)
    }
    async fn latest_checkpoint(&self) -> Result<Option<String>, AuditLogError> {
        Ok(self
            .store
            .audit_checkpoints()
            .await
            .map_err(db)?
            .pop()
            .map(|(_, note)| note))
    }
    async fn publish_checkpoint(&self) -> Result<String, AuditLogError> {
        let (size, root) = {
            let tree = self.catch_up().await?;
            (tree.size(), tree.root(tree.size())?)
        };
        let checkpoints = self.store.audit_checkpoints().await.map_err(db)?;
        if let Some((latest, note)) = checkpoints.last() {
            if *latest >= size {
                return Ok(note.clone());
            }
        }
        let body = Checkpoint {
            origin: self.origin.clone(),
            size,
            root,
        }
        .body();
        let signed = note::sign(&body, &self.origin, &self.key);
        self.store
            .audit_add_checkpoint(size, &signed)
            .await
            .map_err(db)?;
        Ok(signed)
    }
}
