//! Consumers: the partner apps and customers that call the APIs behind Rampart.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::{into_page, new_id, now_ms, page_limit, Page, Store, StoreError};

/// Whether a consumer may call.
#[derive(utoipa::ToSchema, Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConsumerStatus {
    /// May call.
    Active,
    /// Refused everywhere; its keys stop working.
    Disabled,
}

impl ConsumerStatus {
    fn as_str(self) -> &'static str {
        match self {
            ConsumerStatus::Active => "active",
            ConsumerStatus::Disabled => "disabled",
        }
    }

    fn parse(s: &str) -> Self {
        if s == "disabled" {
            ConsumerStatus::Disabled
        } else {
            ConsumerStatus::Active
        }
    }
}

/// A consumer.
#[derive(utoipa::ToSchema, Debug, Clone, PartialEq, Serialize)]
pub struct Consumer {
    /// Id.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// Tenant, for multi-tenant deployments.
    pub tenant: Option<String>,
    /// Free-form JSON object.
    pub metadata: serde_json::Value,
    /// Status.
    pub status: ConsumerStatus,
    /// Limits replacing the routes' for this consumer.
    pub plan: Option<ConsumerPlan>,
    /// Incremented on every change (the ETag).
    pub version: i64,
    /// Milliseconds since the epoch.
    pub created_at: i64,
    /// Milliseconds since the epoch.
    pub updated_at: i64,
}

/// A consumer's own limits; each given one replaces the route's.
#[derive(utoipa::ToSchema, Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumerPlan {
    /// Replaces the numbers of routes' `consumer` rate limits.
    pub rate_limit: Option<PlanRateLimit>,
    /// Requests per UTC day, replacing routes' daily quota.
    pub daily_quota: Option<u64>,
    /// Requests per UTC month, replacing routes' monthly quota.
    pub monthly_quota: Option<u64>,
}

/// A plan's rate limit.
#[derive(utoipa::ToSchema, Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanRateLimit {
    /// Requests per period (at least 1).
    pub requests: u32,
    /// The period in seconds (at least 1).
    pub per_seconds: u64,
    /// Requests at once. Default: `requests`.
    pub burst: Option<u32>,
}

impl ConsumerPlan {
    /// Checks the numbers; the error says which one is wrong.
    pub fn validate(&self) -> Result<(), StoreError> {
        let bad = |what: &str| Err(StoreError::Invalid(format!("plan: {what}")));
        if let Some(rate) = &self.rate_limit {
            if rate.requests == 0 {
                return bad("rate_limit.requests must be at least 1");
            }
            if rate.per_seconds == 0 || rate.per_seconds > 366 * 86_400 {
                return bad("rate_limit.per_seconds must be between 1 and 31622400");
            }
            if rate.burst == Some(0) {
                return bad("rate_limit.burst must be at least 1");
            }
        }
        if self.daily_quota == Some(0) || self.monthly_quota == Some(0) {
            return bad("a quota must be at least 1");
        }
        Ok(())
    }
}

/// Fields of a new consumer.
#[derive(Debug, Clone, Default)]
pub struct NewConsumer {
    /// Unique name.
    pub name: String,
    /// Tenant.
    pub tenant: Option<String>,
    /// JSON object.
    pub metadata: serde_json::Value,
    /// Its plan.
    pub plan: Option<ConsumerPlan>,
}

/// Changes to a consumer; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct ConsumerPatch {
    /// New name.
    pub name: Option<String>,
    /// New tenant (`Some(None)` clears it).
    pub tenant: Option<Option<String>>,
    /// New metadata.
    pub metadata: Option<serde_json::Value>,
    /// New status.
    pub status: Option<ConsumerStatus>,
    /// New plan (`Some(None)` clears it).
    pub plan: Option<Option<ConsumerPlan>>,
}

/// Consumer storage.
#[async_trait]
pub trait ConsumerStore: Send + Sync {
    /// Creates a consumer; a duplicate name is a conflict.
    async fn create_consumer(&self, new: NewConsumer) -> Result<Consumer, StoreError>;
    /// One consumer.
    async fn consumer(&self, id: &str) -> Result<Consumer, StoreError>;
    /// The consumer named `name` (names are unique).
    async fn consumer_by_name(&self, name: &str) -> Result<Consumer, StoreError>;
    /// A page of consumers in creation order, optionally of one tenant or status.
    async fn list_consumers(
        &self,
        tenant: Option<&str>,
        status: Option<ConsumerStatus>,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Page<Consumer>, StoreError>;
    /// Applies `patch`; with `expected_version`, only if the consumer has not changed since.
    async fn update_consumer(
        &self,
        id: &str,
        expected_version: Option<i64>,
        patch: ConsumerPatch,
    ) -> Result<Consumer, StoreError>;
    /// Deletes a consumer with its API keys and quota counts, in one transaction; with
    /// `expected_version`, only if the consumer has not changed since. Returns the
    /// consumer as it was and how many keys went with it.
    async fn delete_consumer(
        &self,
        id: &str,
        expected_version: Option<i64>,
    ) -> Result<(Consumer, u64), StoreError>;
}

fn consumer_from(row: &AnyRow) -> Result<Consumer, StoreError> {
    let metadata: String = row.try_get("metadata")?;
    Ok(Consumer {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        tenant: row.try_get("tenant")?,
        metadata: serde_json::from_str(&metadata).unwrap_or(serde_json::Value::Null),
        status: ConsumerStatus::parse(&row.try_get::<String, _>("status")?),
        plan: row
            .try_get::<Option<String>, _>("plan")?
            .and_then(|p| serde_json::from_str(&p).ok()),
        version: row.try_get("version")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

const COLUMNS: &str = "id, name, tenant, metadata, status, plan, version, created_at, updated_at";

fn plan_text(plan: Option<&ConsumerPlan>) -> Result<Option<String>, StoreError> {
    plan.map(|p| {
        p.validate()?;
        serde_json::to_string(p).map_err(|e| StoreError::Invalid(e.to_string()))
    })
    .transpose()
}

#[async_trait]
impl ConsumerStore for Store {
    async fn create_consumer(&self, new: NewConsumer) -> Result<Consumer, StoreError> {
        let id = new_id();
        let now = now_ms();
        let metadata = if new.metadata.is_null() {
            serde_json::json!({})
        } else {
            new.metadata
        };
        sqlx::query(
            "INSERT INTO consumers (id, name, tenant, metadata, status, plan, version, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, 'active', $6, 1, $5, $5)",
        )
        .bind(&id)
        .bind(&new.name)
        .bind(&new.tenant)
        .bind(metadata.to_string())
        .bind(now)
        .bind(plan_text(new.plan.as_ref())?)
        .execute(self.pool())
        .await
        .map_err(|e| match StoreError::from(e) {
            StoreError::Conflict(_) => StoreError::Conflict(format!("a consumer named {:?} exists", new.name)),
            other => other,
        })?;
        self.consumer(&id).await
    }

    async fn consumer(&self, id: &str) -> Result<Consumer, StoreError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM consumers WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or(StoreError::NotFound("consumer"))?;
        consumer_from(&row)
    }

    async fn consumer_by_name(&self, name: &str) -> Result<Consumer, StoreError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM consumers WHERE name = $1"))
            .bind(name)
            .fetch_optional(self.pool())
            .await?
            .ok_or(StoreError::NotFound("consumer"))?;
        consumer_from(&row)
    }

    async fn list_consumers(
        &self,
        tenant: Option<&str>,
        status: Option<ConsumerStatus>,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Page<Consumer>, StoreError> {
        let limit = page_limit(limit);
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM consumers \
             WHERE id > $1 AND ($2 = '' OR tenant = $2) AND ($3 = '' OR status = $3) \
             ORDER BY id LIMIT $4"
        ))
        .bind(cursor.unwrap_or(""))
        .bind(tenant.unwrap_or(""))
        .bind(status.map_or("", ConsumerStatus::as_str))
        .bind(limit + 1)
        .fetch_all(self.pool())
        .await?;
        let consumers = rows
            .iter()
            .map(consumer_from)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(into_page(consumers, limit, |c| c.id.clone()))
    }

    async fn update_consumer(
        &self,
        id: &str,
        expected_version: Option<i64>,
        patch: ConsumerPatch,
    ) -> Result<Consumer, StoreError> {
        let current = self.consumer(id).await?;
        let version = expected_version.unwrap_or(current.version);
        if version != current.version {
            return Err(StoreError::VersionMismatch);
        }
        let name = patch.name.unwrap_or(current.name);
        let tenant = patch.tenant.unwrap_or(current.tenant);
        let metadata = patch.metadata.unwrap_or(current.metadata);
        let status = patch.status.unwrap_or(current.status);
        let plan = plan_text(patch.plan.unwrap_or(current.plan).as_ref())?;
        // The version check is part of the UPDATE: a concurrent change makes it match nothing.
        let updated = sqlx::query(
            "UPDATE consumers SET name = $1, tenant = $2, metadata = $3, status = $4, \
             plan = $8, version = version + 1, updated_at = $5 WHERE id = $6 AND version = $7",
        )
        .bind(&name)
        .bind(&tenant)
        .bind(metadata.to_string())
        .bind(status.as_str())
        .bind(now_ms())
        .bind(id)
        .bind(version)
        .bind(plan)
        .execute(self.pool())
        .await
        .map_err(|e| match StoreError::from(e) {
            StoreError::Conflict(_) => {
                StoreError::Conflict(format!("a consumer named {name:?} exists"))
            }
            other => other,
        })?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::VersionMismatch);
        }
        self.consumer(id).await
    }

    async fn delete_consumer(
        &self,
        id: &str,
        expected_version: Option<i64>,
    ) -> Result<(Consumer, u64), StoreError> {
        let current = self.consumer(id).await?;
        let version = expected_version.unwrap_or(current.version);
        if version != current.version {
            return Err(StoreError::VersionMismatch);
        }
        let mut tx = self.pool().begin().await?;
        let keys = sqlx::query("DELETE FROM api_keys WHERE consumer_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query("DELETE FROM quota_usage WHERE consumer_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        // The version check is part of the DELETE: a concurrent change makes it match nothing.
        let deleted = sqlx::query("DELETE FROM consumers WHERE id = $1 AND version = $2")
            .bind(id)
            .bind(version)
            .execute(&mut *tx)
            .await?;
        if deleted.rows_affected() == 0 {
            tx.rollback().await?;
            return Err(match self.consumer(id).await {
                Ok(_) => StoreError::VersionMismatch,
                Err(e) => e,
            });
        }
        tx.commit().await?;
        Ok((current, keys))
    }
}
