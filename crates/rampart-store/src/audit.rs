//! Audit events: who changed what, with what outcome. The `AuditSink` interface is
//! what the admin API writes to; the tamper-evident log will implement it later.

use async_trait::async_trait;
use serde::Serialize;
use sqlx::Row;

use crate::{into_page, page_limit, Page, Store, StoreError};

/// One audited action.
#[derive(utoipa::ToSchema, Debug, Clone, PartialEq, Serialize)]
pub struct AuditEvent {
    /// Milliseconds since the epoch.
    pub time: i64,
    /// Who acted (such as `token:<id>`).
    pub actor: String,
    /// What they did (such as `consumer.create`).
    pub action: String,
    /// What it was done to (such as `consumer:<id>`).
    pub resource: String,
    /// `success` or `failure`.
    pub outcome: String,
    /// Before/after summary.
    pub summary: serde_json::Value,
    /// The request that did it.
    pub request_id: Option<String>,
    /// Where it came from.
    pub source_ip: Option<String>,
}

/// An audit event as stored, with its sequence number.
#[derive(utoipa::ToSchema, Debug, Clone, PartialEq, Serialize)]
pub struct StoredAuditEvent {
    /// Position in the trail.
    pub seq: i64,
    /// The event.
    #[serde(flatten)]
    pub event: AuditEvent,
}

/// Where audit events go.
#[async_trait]
pub trait AuditSink: Send + Sync {
    /// Records one event durably.
    async fn record(&self, event: &AuditEvent) -> Result<(), StoreError>;
}

/// Reading the stored trail.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// A page of events in order, after sequence number `after`.
    async fn audit_events(
        &self,
        after: Option<i64>,
        limit: Option<u32>,
    ) -> Result<Page<StoredAuditEvent>, StoreError>;
}

#[async_trait]
impl AuditSink for Store {
    async fn record(&self, e: &AuditEvent) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_events (time, actor, action, resource, outcome, summary, request_id, source_ip) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(e.time)
        .bind(&e.actor)
        .bind(&e.action)
        .bind(&e.resource)
        .bind(&e.outcome)
        .bind(e.summary.to_string())
        .bind(&e.request_id)
        .bind(&e.source_ip)
        .execute(self.pool())
        .await?;
        Ok(())
    }
}

#[async_trait]
impl AuditStore for Store {
    async fn audit_events(
        &self,
        after: Option<i64>,
        limit: Option<u32>,
    ) -> Result<Page<StoredAuditEvent>, StoreError> {
        let limit = page_limit(limit);
        let rows = sqlx::query(
            "SELECT seq, time, actor, action, resource, outcome, summary, request_id, source_ip \
             FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(after.unwrap_or(0))
        .bind(limit + 1)
        .fetch_all(self.pool())
        .await?;
        let events = rows
            .iter()
            .map(|row| {
                let summary: String = row.try_get("summary")?;
                Ok(StoredAuditEvent {
                    seq: row.try_get("seq")?,
                    event: AuditEvent {
                        time: row.try_get("time")?,
                        actor: row.try_get("actor")?,
                        action: row.try_get("action")?,
                        resource: row.try_get("resource")?,
                        outcome: row.try_get("outcome")?,
                        summary: serde_json::from_str(&summary).unwrap_or(serde_json::Value::Null),
                        request_id: row.try_get("request_id")?,
                        source_ip: row.try_get("source_ip")?,
                    },
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(into_page(events, limit, |e| e.seq.to_string()))
    }
}
