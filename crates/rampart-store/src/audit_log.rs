//! Storage of the shared audit log: entries sequenced by the database (one writer at a
//! time, under a transaction-scoped advisory lock on Postgres), checkpoints, verifier
//! keys and the log's origin. The Merkle tree itself lives in `rampart-audit`.

use async_trait::async_trait;
use sqlx::Row;

use crate::{now_ms, Backend, Store, StoreError};

/// The advisory lock that serializes appends (an arbitrary constant).
const APPEND_LOCK: i64 = 0x7261_6d70_6175_6474; // "rampaudt"

/// One stored entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEntry {
    /// Its index.
    pub index: u64,
    /// The entry's bytes.
    pub entry: Vec<u8>,
    /// Its leaf hash as written.
    pub leaf_hash: Vec<u8>,
}

/// Shared audit log storage.
#[async_trait]
pub trait AuditLogStore: Send + Sync {
    /// Appends `entries` (bytes and leaf hash) at the end, in one transaction; returns
    /// the index of the first.
    async fn audit_append(&self, entries: &[(Vec<u8>, [u8; 32])]) -> Result<u64, StoreError>;
    /// Up to `limit` entries from index `from` on, in order.
    async fn audit_read(&self, from: u64, limit: u32) -> Result<Vec<StoredEntry>, StoreError>;
    /// Stores a signed checkpoint (a second one of the same size is ignored).
    async fn audit_add_checkpoint(&self, size: u64, note: &str) -> Result<(), StoreError>;
    /// Every checkpoint, by size.
    async fn audit_checkpoints(&self) -> Result<Vec<(u64, String)>, StoreError>;
    /// Registers a verifier key (idempotent).
    async fn audit_register_key(&self, verifier_key: &str) -> Result<(), StoreError>;
    /// Every registered verifier key, newest first.
    async fn audit_keys(&self) -> Result<Vec<String>, StoreError>;
    /// The log's origin: `proposed` if none was set yet, else the one set first.
    async fn audit_origin(&self, proposed: &str) -> Result<String, StoreError>;
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

#[async_trait]
impl AuditLogStore for Store {
    async fn audit_append(&self, entries: &[(Vec<u8>, [u8; 32])]) -> Result<u64, StoreError> {
        let mut tx = self.pool().begin().await?;
        if self.backend() == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(APPEND_LOCK)
                .execute(&mut *tx)
                .await?;
        }
        // Each row takes the next index in the same statement, so the transaction's
        // first statement is a write (SQLite then takes its write lock at once).
        let mut first = None;
        for (entry, hash) in entries {
            let index: i64 = sqlx::query(
                "INSERT INTO audit_log (idx, entry, leaf_hash) \
                 SELECT COALESCE(MAX(idx) + 1, 0), $1, $2 FROM audit_log RETURNING idx",
            )
            .bind(entry.as_slice())
            .bind(hash.as_slice())
            .fetch_one(&mut *tx)
            .await?
            .try_get("idx")?;
            first.get_or_insert(index);
        }
        tx.commit().await?;
        Ok(first.map_or(0, to_u64))
    }

    async fn audit_read(&self, from: u64, limit: u32) -> Result<Vec<StoredEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT idx, entry, leaf_hash FROM audit_log WHERE idx >= $1 ORDER BY idx LIMIT $2",
        )
        .bind(i64::try_from(from).unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(StoredEntry {
                    index: to_u64(row.try_get("idx")?),
                    entry: row.try_get("entry")?,
                    leaf_hash: row.try_get("leaf_hash")?,
                })
            })
            .collect()
    }

    async fn audit_add_checkpoint(&self, size: u64, note: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_checkpoints (size, note) VALUES ($1, $2) ON CONFLICT (size) DO NOTHING",
        )
        .bind(i64::try_from(size).unwrap_or(i64::MAX))
        .bind(note)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn audit_checkpoints(&self) -> Result<Vec<(u64, String)>, StoreError> {
        let rows = sqlx::query("SELECT size, note FROM audit_checkpoints ORDER BY size")
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|row| Ok((to_u64(row.try_get("size")?), row.try_get("note")?)))
            .collect()
    }

    async fn audit_register_key(&self, verifier_key: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_verifier_keys (verifier_key, created_at) VALUES ($1, $2) \
             ON CONFLICT (verifier_key) DO NOTHING",
        )
        .bind(verifier_key)
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn audit_keys(&self) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT verifier_key FROM audit_verifier_keys ORDER BY created_at DESC, verifier_key",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| Ok(row.try_get("verifier_key")?))
            .collect()
    }

    async fn audit_origin(&self, proposed: &str) -> Result<String, StoreError> {
        sqlx::query(
            "INSERT INTO audit_meta (name, value) VALUES ('origin', $1) ON CONFLICT (name) DO NOTHING",
        )
        .bind(proposed)
        .execute(self.pool())
        .await?;
        Ok(
            sqlx::query("SELECT value FROM audit_meta WHERE name = 'origin'")
                .fetch_one(self.pool())
                .await?
                .try_get("value")?,
        )
    }
}
