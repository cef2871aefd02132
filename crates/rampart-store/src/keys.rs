//! API keys: shown once, stored as digests, with scopes, expiry, revocation and rotation.

use async_trait::async_trait;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::secret::{Secret, SecretKind};
use crate::{into_page, new_id, now_ms, page_limit, Page, Store, StoreError};

/// An API key (never its secret).
#[derive(utoipa::ToSchema, Debug, Clone, PartialEq, Serialize)]
pub struct ApiKey {
    /// Public id (also inside the secret: `rk_<id>_…`).
    pub id: String,
    /// Owner.
    pub consumer_id: String,
    /// Optional label.
    pub name: Option<String>,
    /// Scopes granted.
    pub scopes: Vec<String>,
    /// Expiry, milliseconds since the epoch.
    pub expires_at: Option<i64>,
    /// Last successful use.
    pub last_used_at: Option<i64>,
    /// When revoked.
    pub revoked_at: Option<i64>,
    /// The key that replaced this one in a rotation.
    pub replaced_by: Option<String>,
    /// Created, milliseconds since the epoch.
    pub created_at: i64,
}

impl ApiKey {
    /// Whether the key works at `now`.
    pub fn is_usable(&self, now: i64) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|t| now < t)
    }
}

/// Fields of a new key.
#[derive(Debug, Clone, Default)]
pub struct NewApiKey {
    /// Owner.
    pub consumer_id: String,
    /// Label.
    pub name: Option<String>,
    /// Scopes.
    pub scopes: Vec<String>,
    /// Expiry.
    pub expires_at: Option<i64>,
}

/// API key storage.
#[async_trait]
pub trait ApiKeyStore: Send + Sync {
    /// Creates a key; returns it with its secret (shown once).
    async fn create_key(&self, new: NewApiKey) -> Result<(ApiKey, String), StoreError>;
    /// One key.
    async fn key(&self, id: &str) -> Result<ApiKey, StoreError>;
    /// A page of a consumer's keys.
    async fn list_keys(
        &self,
        consumer_id: &str,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Page<ApiKey>, StoreError>;
    /// Revokes a key now.
    async fn revoke_key(&self, id: &str) -> Result<ApiKey, StoreError>;
    /// Issues a replacement with the same owner and scopes; the old key keeps working
    /// for `overlap_ms`, then expires.
    async fn rotate_key(&self, id: &str, overlap_ms: i64) -> Result<(ApiKey, String), StoreError>;
    /// The key a presented secret belongs to, if it is valid and usable now (records its use).
    async fn verify_key(&self, presented: &str) -> Result<Option<ApiKey>, StoreError>;
}

fn key_from(row: &AnyRow) -> Result<ApiKey, StoreError> {
    let scopes: String = row.try_get("scopes")?;
    Ok(ApiKey {
        id: row.try_get("id")?,
        consumer_id: row.try_get("consumer_id")?,
        name: row.try_get("name")?,
        scopes: serde_json::from_str(&scopes).unwrap_or_default(),
        expires_at: row.try_get("expires_at")?,
        last_used_at: row.try_get("last_used_at")?,
        revoked_at: row.try_get("revoked_at")?,
        replaced_by: row.try_get("replaced_by")?,
        created_at: row.try_get("created_at")?,
    })
}

const COLUMNS: &str =
    "id, consumer_id, name, scopes, expires_at, last_used_at, revoked_at, replaced_by, created_at";

impl Store {
    async fn insert_key(
        &self,
        executor: impl sqlx::Executor<'_, Database = sqlx::Any>,
        new: &NewApiKey,
    ) -> Result<(String, String), StoreError> {
        let id = new_id();
        let secret = Secret::generate(SecretKind::ApiKey, &id);
        sqlx::query(
            "INSERT INTO api_keys (id, consumer_id, name, secret_hash, scopes, expires_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&id)
        .bind(&new.consumer_id)
        .bind(&new.name)
        .bind(&secret.digest)
        .bind(serde_json::to_string(&new.scopes).unwrap_or_else(|_| "[]".into()))
        .bind(new.expires_at)
        .bind(now_ms())
        .execute(executor)
        .await?;
        Ok((id, secret.value))
    }
}

#[async_trait]
impl ApiKeyStore for Store {
    async fn create_key(&self, new: NewApiKey) -> Result<(ApiKey, String), StoreError> {
        // The consumer must exist (checked here too, so the error names it).
        crate::ConsumerStore::consumer(self, &new.consumer_id).await?;
        let (id, secret) = self.insert_key(self.pool(), &new).await?;
        Ok((self.key(&id).await?, secret))
    }

    async fn key(&self, id: &str) -> Result<ApiKey, StoreError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM api_keys WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or(StoreError::NotFound("API key"))?;
        key_from(&row)
    }

    async fn list_keys(
        &self,
        consumer_id: &str,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Page<ApiKey>, StoreError> {
        let limit = page_limit(limit);
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM api_keys WHERE consumer_id = $1 AND id > $2 ORDER BY id LIMIT $3"
        ))
        .bind(consumer_id)
        .bind(cursor.unwrap_or(""))
        .bind(limit + 1)
        .fetch_all(self.pool())
        .await?;
        let keys = rows.iter().map(key_from).collect::<Result<Vec<_>, _>>()?;
        Ok(into_page(keys, limit, |k| k.id.clone()))
    }

    async fn revoke_key(&self, id: &str) -> Result<ApiKey, StoreError> {
        let updated =
            sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(now_ms())
                .bind(id)
                .execute(self.pool())
                .await?;
        let key = self.key(id).await?;
        if updated.rows_affected() == 0 && key.revoked_at.is_none() {
            return Err(StoreError::NotFound("API key"));
        }
        Ok(key)
    }

    async fn rotate_key(&self, id: &str, overlap_ms: i64) -> Result<(ApiKey, String), StoreError> {
        let old = self.key(id).await?;
        let now = now_ms();
        if !old.is_usable(now) {
            return Err(StoreError::Invalid(
                "only a usable key can be rotated".into(),
            ));
        }
        if old.replaced_by.is_some() {
            return Err(StoreError::Invalid("this key was already rotated".into()));
        }
        let overlap_end = now + overlap_ms.max(0);
        let mut tx = self.pool().begin().await?;
        let (new_id, secret) = self
            .insert_key(
                &mut *tx,
                &NewApiKey {
                    consumer_id: old.consumer_id.clone(),
                    name: old.name.clone(),
                    scopes: old.scopes.clone(),
                    expires_at: old.expires_at,
                },
            )
            .await?;
        // Guarded by replaced_by IS NULL: of two concurrent rotations only one wins.
        let updated = sqlx::query(
            "UPDATE api_keys SET replaced_by = $1, expires_at = $2 \
             WHERE id = $3 AND replaced_by IS NULL AND revoked_at IS NULL",
        )
        .bind(&new_id)
        .bind(old.expires_at.map_or(overlap_end, |e| e.min(overlap_end)))
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            tx.rollback().await?;
            return Err(StoreError::Invalid(
                "this key was already rotated or revoked".into(),
            ));
        }
        tx.commit().await?;
        Ok((self.key(&new_id).await?, secret))
    }

    async fn verify_key(&self, presented: &str) -> Result<Option<ApiKey>, StoreError> {
        let Some(row) = self
            .row_for_secret(SecretKind::ApiKey, "api_keys", COLUMNS, presented)
            .await?
        else {
            return Ok(None);
        };
        let key = key_from(&row)?;
        let now = now_ms();
        if !key.is_usable(now) {
            return Ok(None);
        }
        self.record_use("api_keys", &key.id, now).await?;
        Ok(Some(ApiKey {
            last_used_at: Some(now),
            ..key
        }))
    }
}
