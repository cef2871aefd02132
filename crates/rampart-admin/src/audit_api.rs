//! The tamper-evident audit log over HTTP: the latest signed checkpoint, the verifier
//! keys, entries with their exact bytes, and inclusion and consistency proofs.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rampart_audit::{AuditLogError, Ledger};
use rampart_store::Role;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::{Caller, QueryParams};
use crate::problem::ApiError;
use crate::AdminState;

type Result<T> = std::result::Result<T, ApiError>;

fn log(state: &AdminState) -> Result<&Arc<dyn Ledger>> {
    state.audit_log.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "audit-log-unavailable",
            "this instance has no audit log",
        )
    })
}

fn log_error(e: AuditLogError) -> ApiError {
    match e {
        AuditLogError::OutOfRange(detail) => {
            ApiError::new(StatusCode::BAD_REQUEST, "out-of-range", detail)
        }
        AuditLogError::Corrupt { .. } => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "audit-log-corrupt",
            e.to_string(),
        ),
        other => {
            tracing::error!("audit log: {other}");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the audit log failed; see the server log",
            )
        }
    }
}

fn text(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

/// `audit_checkpoint` handler: the latest signed checkpoint (one is published first if
/// none exists yet).
#[utoipa::path(get, path = "/audit/checkpoint", tag = "audit", responses((status = 200, description = "The latest checkpoint, a C2SP signed note", body = String, content_type = "text/plain"), (status = 401, description = "Missing or invalid admin token", body = crate::problem::Problem, content_type = "application/problem+json"), (status = 403, description = "The token's role is not enough", body = crate::problem::Problem, content_type = "application/problem+json"), (status = 503, description = "No audit log, or it is corrupt", body = crate::problem::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn checkpoint(State(state): State<Arc<AdminState>>, caller: Caller) -> Result<Response> {
    caller.require(Role::Auditor)?;
    let log = log(&state)?;
    let note = match log.latest_checkpoint().await.map_err(log_error)? {
        Some(note) => note,
        None => log.publish_checkpoint().await.map_err(log_error)?,
    };
    Ok(text(note))
}

/// `publish_checkpoint` handler: signs a checkpoint of the log as it is now.
#[utoipa::path(post, path = "/audit/checkpoint", tag = "audit", responses((status = 200, description = "The new (or unchanged latest) checkpoint", body = String, content_type = "text/plain"), (status = 401, description = "Missing or invalid admin token", body = crate::problem::Problem, content_type = "application/problem+json"), (status = 403, description = "The token's role is not enough", body = crate::problem::Problem, content_type = "application/problem+json"), (status = 503, description = "No audit log, or it is corrupt", body = crate::problem::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn publish_checkpoint(
    State(state): State<Arc<AdminState>>,
    caller: Caller,
) -> Result<Response> {
    caller.require(Role::Admin)?;
    let note = log(&state)?.publish_checkpoint().await.map_err(log_error)?;
    Ok(text(note))
}

/// `audit_key` handler: the verifier keys (note verifier-key format), current first.
#[utoipa::path(get, path = "/audit/key", tag = "audit", responses((status = 200, description = "Verifier keys, one per line, the current one first", body = String, content_type = "text/plain"), (status = 401, description = "Missing or invalid admin token", body = crate::problem::Problem, content_type = "application/problem+json"), (status = 403, description = "The token's role is not enough", body = crate::problem::Problem, content_type = "application/problem+json"), (status = 503, description = "No audit log", body = crate::problem::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn key(State(state): State<Arc<AdminState>>, caller: Caller) -> Result<Response> {
    caller.require(Role::Auditor)?;
    let keys = log(&state)?.verifier_keys().await.map_err(log_error)?;
    Ok(text(keys.join("\n") + "\n"))
}

/// A range of entries.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EntriesQuery {
    /// First index.
    #[param(minimum = 0)]
    start: u64,
    /// One past the last index (at most 1000 after `start`; default: up to 1000 or the end).
    #[param(minimum = 0)]
    end: Option<u64>,
}

/// One entry as served.
#[derive(Debug, Serialize, ToSchema)]
pub struct EntryView {
    /// Its index.
    pub index: u64,
    /// The exact bytes that were hashed, base64.
    pub entry: String,
    /// Its leaf hash, base64.
    pub leaf_hash: String,
}

/// `audit_entries` handler: entries `start..end` as JSON lines.
#[utoipa::path(get, path = "/audit/entries", tag = "audit", params(EntriesQuery), responses((status = 200, description = "One JSON object per line (EntryView)", body = String, content_type = "application/x-ndjson"), (status = 400, description = "Out of range or malformed", body = crate::problem::Problem, content_type = "application/problem+json"), (status = 401, description = "Missing or invalid admin token", body = crate::problem::Problem, content_type = "application/problem+json"), (status = 403, description = "The token's role is not enough", body = crate::problem::Problem, content_type = "application/problem+json"), (status = 503, description = "No audit log", body = crate::problem::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn entries(
    State(state): State<Arc<AdminState>>,
    caller: Caller,
    QueryParams(q): QueryParams<EntriesQuery>,
) -> Result<Response> {
    caller.require(Role::Auditor)?;
    let log = log(&state)?;
    let size = log.size().await.map_err(log_error)?;
    let end = q
        .end
        .unwrap_or_else(|| size.min(q.start.saturating_add(1000)).max(q.start));
    let entries = log.entries(q.start, end).await.map_err(log_error)?;
    let mut body = String::new();
    for e in entries {
        let view = EntryView {
            index: e.index,
            entry: STANDARD.encode(&e.bytes),
            leaf_hash: STANDARD.encode(rampart_audit::merkle::leaf_hash(&e.bytes)),
        };
        body.push_str(&serde_json::to_string(&view).unwrap_or_default());
        body.push('\n');
    }
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response())
}

/// An inclusion proof request.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct InclusionQuery {
    /// The entry's index.
    #[param(minimum = 0)]
    index: u64,
    /// The tree size (such as a checkpoint's).
    #[param(minimum = 1)]
    size: u64,
}

/// An inclusion proof.
#[derive(Debug, Serialize, ToSchema)]
pub struct InclusionProof {
    /// The entry's index.
    pub index: u64,
    /// The tree size.
    pub size: u64,
    /// The entry's leaf hash, base64.
    pub leaf_hash: String,
    /// The root of the tree of `size` entries, base64.
    pub root: String,
    /// The proof's hashes in RFC 9162 order, base64.
    pub hashes: Vec<String>,
}

/// `inclusion_proof` handler.
#[utoipa::path(get, path = "/audit/proof/inclusion", tag = "audit", params(InclusionQuery), responses((status = 200, description = "The proof", body = InclusionProof), (status = 400, description = "Out of range or malformed", body = crate::problem::Problem, content_type = "application/problem+json"), (status = 401, description = "Missing or invalid admin token", body = crate::problem::Problem, content_type = "application/problem+json"), (status = 403, description = "The token's role is not enough", body = crate::problem::Problem, content_type = "application/problem+json"), (status = 503, description = "No audit log", body = crate::problem::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn inclusion_proof(
    State(state): State<Arc<AdminState>>,
    caller: Caller,
    QueryParams(q): QueryParams<InclusionQuery>,
) -> Result<Json<InclusionProof>> {
    caller.require(Role::Auditor)?;
    let log = log(&state)?;
    let hashes = log
        .inclusion_proof(q.index, q.size)
        .await
        .map_err(log_error)?;
    let root = log.root(q.size).await.map_err(log_error)?;
    let leaf = log.leaf_hash(q.index).await.map_err(log_error)?;
    Ok(Json(InclusionProof {
        index: q.index,
        size: q.size,
        leaf_hash: STANDARD.encode(leaf.unwrap_or_default()),
        root: STANDARD.encode(root),
        hashes: hashes.iter().map(|h| STANDARD.encode(h)).collect(),
    }))
}

/// A consistency proof request.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyQuery {
    /// The older tree size.
    #[param(minimum = 1)]
    from: u64,
    /// The newer tree size.
    #[param(minimum = 1)]
    to: u64,
}

/// A consistency proof.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConsistencyProof {
    /// The older size.
    pub from: u64,
    /// The newer size.
    pub to: u64,
    /// The older root, base64.
    pub from_root: String,
    /// The newer root, base64.
    pub to_root: String,
    /// The proof's hashes in RFC 9162 order, base64.
    pub hashes: Vec<String>,
}

/// `consistency_proof` handler.
#[utoipa::path(get, path = "/audit/proof/consistency", tag = "audit", params(ConsistencyQuery), responses((status = 200, description = "The proof", body = ConsistencyProof), (status = 400, description = "Out of range or malformed", body = crate::problem::Problem, content_type = "application/problem+json"), (status = 401, description = "Missing or invalid admin token", body = crate::problem::Problem, content_type = "application/problem+json"), (status = 403, description = "The token's role is not enough", body = crate::problem::Problem, content_type = "application/problem+json"), (status = 503, description = "No audit log", body = crate::problem::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn consistency_proof(
    State(state): State<Arc<AdminState>>,
    caller: Caller,
    QueryParams(q): QueryParams<ConsistencyQuery>,
) -> Result<Json<ConsistencyProof>> {
    caller.require(Role::Auditor)?;
    let log = log(&state)?;
    if q.from == 0 {
        return Err(log_error(AuditLogError::OutOfRange(
            "from must be at least 1".into(),
        )));
    }
    let hashes = log
        .consistency_proof(q.from, q.to)
        .await
        .map_err(log_error)?;
    Ok(Json(ConsistencyProof {
        from: q.from,
        to: q.to,
        from_root: STANDARD.encode(log.root(q.from).await.map_err(log_error)?),
        to_root: STANDARD.encode(log.root(q.to).await.map_err(log_error)?),
        hashes: hashes.iter().map(|h| STANDARD.encode(h)).collect(),
    }))
}
