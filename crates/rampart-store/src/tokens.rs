//! Admin API tokens and their roles.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::secret::{Secret, SecretKind};
use crate::{new_id, now_ms, Store, StoreError};

/// What an admin token may do.
#[derive(
    utoipa::ToSchema, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read-only, including the audit trail.
    Auditor,
    /// Read, and manage consumers and keys.
    Operator,
    /// Everything, including admin tokens.
    Admin,
}

impl Role {
    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Auditor => "auditor",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    /// Parses a role name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "auditor" => Some(Role::Auditor),
            "operator" => Some(Role::Operator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// An admin token (never its secret).
#[derive(utoipa::ToSchema, Debug, Clone, PartialEq, Serialize)]
pub struct AdminToken {
    /// Public id (inside the secret: `rat_<id>_…`).
    pub id: String,
    /// Label.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Last use.
    pub last_used_at: Option<i64>,
    /// When revoked.
    pub revoked_at: Option<i64>,
    /// Created.
    pub created_at: i64,
}

/// Admin token storage.
#[async_trait]
pub trait AdminTokenStore: Send + Sync {
    /// Creates a token; returns it with its secret (shown once).
    async fn create_token(
        &self,
        name: &str,
        role: Role,
    ) -> Result<(AdminToken, String), StoreError>;
    /// All tokens, newest last.
    async fn list_tokens(&self) -> Result<Vec<AdminToken>, StoreError>;
    /// Revokes a token. The last active `admin` token cannot be revoked (a conflict):
    /// without it nobody could manage tokens any more.
    async fn revoke_token(&self, id: &str) -> Result<AdminToken, StoreError>;
    /// The token a presented secret belongs to, if valid and not revoked.
    async fn verify_token(&self, presented: &str) -> Result<Option<AdminToken>, StoreError>;
    /// How many tokens with the `admin` role are not revoked.
    async fn active_admin_token_count(&self) -> Result<i64, StoreError>;
}

fn token_from(row: &AnyRow) -> Result<AdminToken, StoreError> {
    Ok(AdminToken {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        role: Role::parse(&row.try_get::<String, _>("role")?).unwrap_or(Role::Auditor),
        last_used_at: row.try_get("last_used_at")?,
        revoked_at: row.try_get("revoked_at")?,
        created_at: row.try_get("created_at")?,
    })
}

const COLUMNS: &str = "id, name, role, last_used_at, revoked_at, created_at";

fn last_admin() -> StoreError {
    StoreError::Conflict(
        "the last active admin token cannot be revoked: create another admin token first".into(),
    )
}

#[async_trait]
impl AdminTokenStore for Store {
    async fn create_token(
        &self,
        name: &str,
        role: Role,
    ) -> Result<(AdminToken, String), StoreError> {
        let id = new_id();
        let secret = Secret::generate(SecretKind::AdminToken, &id);
        sqlx::query("INSERT INTO admin_tokens (id, name, role, secret_hash, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&id)
            .bind(name)
            .bind(role.as_str())
            .bind(&secret.digest)
            .bind(now_ms())
            .execute(self.pool())
            .await?;
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM admin_tokens WHERE id = $1"))
            .bind(&id)
            .fetch_one(self.pool())
            .await?;
        Ok((token_from(&row)?, secret.value))
    }

    async fn list_tokens(&self) -> Result<Vec<AdminToken>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM admin_tokens ORDER BY id"))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(token_from).collect()
    }

    async fn revoke_token(&self, id: &str) -> Result<AdminToken, StoreError> {
        // Guarded in SQL: an admin token is revoked only while another one stays active.
        let revoked = sqlx::query(
            "UPDATE admin_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL \
             AND (role <> 'admin' OR EXISTS (SELECT 1 FROM admin_tokens other \
             WHERE other.role = 'admin' AND other.revoked_at IS NULL AND other.id <> $2))",
        )
        .bind(now_ms())
        .bind(id)
        .execute(self.pool())
        .await?
        .rows_affected();
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM admin_tokens WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or(StoreError::NotFound("admin token"))?;
        let token = token_from(&row)?;
        if revoked == 0 && token.revoked_at.is_none() {
            return Err(last_admin());
        }
        if revoked == 1 && token.role == Role::Admin && self.active_admin_token_count().await? == 0
        {
            // Two instances revoked the last two admin tokens at once (each saw the
            // other's still active): this one takes its revocation back.
            sqlx::query("UPDATE admin_tokens SET revoked_at = NULL WHERE id = $1")
                .bind(id)
                .execute(self.pool())
                .await?;
            return Err(last_admin());
        }
        Ok(token)
    }

    async fn verify_token(&self, presented: &str) -> Result<Option<AdminToken>, StoreError> {
        let Some(row) = self
            .row_for_secret(SecretKind::AdminToken, "admin_tokens", COLUMNS, presented)
            .await?
        else {
            return Ok(None);
        };
        let token = token_from(&row)?;
        if token.revoked_at.is_some() {
            return Ok(None);
        }
        let now = now_ms();
        self.record_use("admin_tokens", &token.id, now).await?;
        Ok(Some(AdminToken {
            last_used_at: Some(now),
            ..token
        }))
    }

    async fn active_admin_token_count(&self) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM admin_tokens WHERE revoked_at IS NULL AND role = 'admin'",
        )
        .fetch_one(self.pool())
        .await?;
        Ok(row.try_get("n")?)
    }
}
