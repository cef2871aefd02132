//! The admin API's resources: consumers, API keys, admin tokens, the audit trail and
//! read-only views of the running config.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use rampart_store::{
    AdminTokenStore, ApiKeyStore, AuditEvent, AuditStore, ConsumerPatch, ConsumerStatus,
    ConsumerStore, NewApiKey, NewConsumer, Role,
};
use serde::Deserialize;

use crate::auth::{Caller, JsonBody};
use crate::problem::{ApiError, FieldError};
use crate::AdminState;

type Result<T> = std::result::Result<T, ApiError>;
type AppState = State<Arc<AdminState>>;

/// Most scopes on one key.
const MAX_SCOPES: usize = 32;
/// Largest metadata object, serialized.
const MAX_METADATA_BYTES: usize = 16 * 1024;

fn check_name(field: &str, value: &str, errors: &mut Vec<FieldError>) {
    let ok = !value.is_empty()
        && value.len() <= 128
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if !ok {
        errors.push(FieldError {
            field: field.into(),
            message: "1 to 128 characters: letters, digits, '.', '_' or '-'".into(),
        });
    }
}

fn check_metadata(value: &serde_json::Value, errors: &mut Vec<FieldError>) {
    if !value.is_object() {
        errors.push(FieldError {
            field: "metadata".into(),
            message: "must be a JSON object".into(),
        });
    } else if value.to_string().len() > MAX_METADATA_BYTES {
        errors.push(FieldError {
            field: "metadata".into(),
            message: format!("larger than {MAX_METADATA_BYTES} bytes"),
        });
    }
}

fn check_scopes(scopes: &[String], errors: &mut Vec<FieldError>) {
    if scopes.len() > MAX_SCOPES {
        errors.push(FieldError {
            field: "scopes".into(),
            message: format!("at most {MAX_SCOPES} scopes"),
        });
    }
    for (i, s) in scopes.iter().enumerate() {
        if s.is_empty() || s.len() > 64 || !s.bytes().all(|b| b.is_ascii_graphic()) {
            errors.push(FieldError {
                field: format!("scopes[{i}]"),
                message: "1 to 64 visible characters, no spaces".into(),
            });
        }
    }
}

fn validated(errors: Vec<FieldError>) -> Result<()> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(errors))
    }
}

fn etag(version: i64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"v{version}\""))
        .unwrap_or_else(|_| HeaderValue::from_static("\"v0\""))
}

/// The version an `If-Match` header asks for (`None` when absent; `*` matches any).
fn if_match(headers: &HeaderMap) -> Result<Option<i64>> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or("").trim();
    if text == "*" {
        return Ok(None);
    }
    text.trim_start_matches("W/")
        .trim_matches('"')
        .strip_prefix('v')
        .and_then(|v| v.parse().ok())
        .map(Some)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::PRECONDITION_FAILED,
                "precondition-failed",
                "If-Match must be an ETag from a read",
            )
        })
}

/// Records an audit event; a failure to record is logged and fails the request.
async fn audit(
    state: &AdminState,
    caller: &Caller,
    action: &str,
    resource: String,
    outcome: &str,
    summary: serde_json::Value,
) -> Result<()> {
    let event = AuditEvent {
        time: rampart_store::now_ms(),
        actor: caller.actor(),
        action: action.to_string(),
        resource,
        outcome: outcome.to_string(),
        summary,
        request_id: Some(caller.request_id.clone()),
        source_ip: caller.source_ip.clone(),
    };
    state.audit.record(&event).await.map_err(ApiError::from)
}

/// Runs a mutation and audits its outcome, success or failure.
async fn audited<T>(
    state: &AdminState,
    caller: &Caller,
    action: &str,
    resource: String,
    run: impl std::future::Future<Output = Result<(T, serde_json::Value)>>,
) -> Result<T> {
    match run.await {
        Ok((value, summary)) => {
            audit(state, caller, action, resource, "success", summary).await?;
            Ok(value)
        }
        Err(e) => {
            let summary = serde_json::json!({ "error": e.kind, "status": e.status.as_u16() });
            // The original error matters more than a failure to record the failure.
            let _ = audit(state, caller, action, resource, "failure", summary).await;
            Err(e)
        }
    }
}

/// Filters and cursor of a consumer list.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumerQuery {
    tenant: Option<String>,
    status: Option<ConsumerStatus>,
    cursor: Option<String>,
    limit: Option<u32>,
}

pub async fn list_consumers(
    State(state): AppState,
    caller: Caller,
    Query(q): Query<ConsumerQuery>,
) -> Result<Response> {
    caller.require(Role::Auditor)?;
    let page = state
        .store
        .list_consumers(q.tenant.as_deref(), q.status, q.cursor.as_deref(), q.limit)
        .await?;
    Ok(Json(page).into_response())
}

/// A new consumer.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateConsumer {
    name: String,
    tenant: Option<String>,
    #[serde(default)]
    metadata: Option<serde_json::Value>,
}

pub async fn create_consumer(
    State(state): AppState,
    caller: Caller,
    JsonBody(body): JsonBody<CreateConsumer>,
) -> Result<Response> {
    caller.require(Role::Operator)?;
    let mut errors = Vec::new();
    check_name("name", &body.name, &mut errors);
    if let Some(t) = &body.tenant {
        check_name("tenant", t, &mut errors);
    }
    let metadata = body.metadata.unwrap_or_else(|| serde_json::json!({}));
    check_metadata(&metadata, &mut errors);
    validated(errors)?;
    let consumer = audited(&state, &caller, "consumer.create", format!("consumer-name:{}", body.name), async {
        let c = state
            .store
            .create_consumer(NewConsumer { name: body.name.clone(), tenant: body.tenant.clone(), metadata })
            .await?;
        let summary = serde_json::json!({ "after": { "id": c.id, "name": c.name, "tenant": c.tenant, "status": c.status } });
        Ok((c, summary))
    })
    .await?;
    let tag = etag(consumer.version);
    Ok((StatusCode::CREATED, [(header::ETAG, tag)], Json(consumer)).into_response())
}

pub async fn get_consumer(
    State(state): AppState,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response> {
    caller.require(Role::Auditor)?;
    let consumer = state.store.consumer(&id).await?;
    let tag = etag(consumer.version);
    Ok(([(header::ETAG, tag)], Json(consumer)).into_response())
}

/// Changes to a consumer.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateConsumer {
    name: Option<String>,
    #[serde(default, with = "double_option")]
    tenant: Option<Option<String>>,
    metadata: Option<serde_json::Value>,
    status: Option<ConsumerStatus>,
}

/// Distinguishes an absent field from an explicit `null`.
mod double_option {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<String>>, D::Error> {
        Option::<String>::deserialize(d).map(Some)
    }
}

pub async fn update_consumer(
    State(state): AppState,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<UpdateConsumer>,
) -> Result<Response> {
    caller.require(Role::Operator)?;
    let expected = if_match(&headers)?;
    let mut errors = Vec::new();
    if let Some(n) = &body.name {
        check_name("name", n, &mut errors);
    }
    if let Some(Some(t)) = &body.tenant {
        check_name("tenant", t, &mut errors);
    }
    if let Some(m) = &body.metadata {
        check_metadata(m, &mut errors);
    }
    validated(errors)?;
    let consumer = audited(&state, &caller, "consumer.update", format!("consumer:{id}"), async {
        let before = state.store.consumer(&id).await?;
        let after = state
            .store
            .update_consumer(
                &id,
                expected,
                ConsumerPatch { name: body.name, tenant: body.tenant, metadata: body.metadata, status: body.status },
            )
            .await?;
        let summary = serde_json::json!({
            "before": { "name": before.name, "tenant": before.tenant, "status": before.status, "version": before.version },
            "after": { "name": after.name, "tenant": after.tenant, "status": after.status, "version": after.version },
        });
        Ok((after, summary))
    })
    .await?;
    let tag = etag(consumer.version);
    Ok(([(header::ETAG, tag)], Json(consumer)).into_response())
}

/// Cursor paging.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    cursor: Option<String>,
    limit: Option<u32>,
}

pub async fn list_keys(
    State(state): AppState,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> Result<Response> {
    caller.require(Role::Auditor)?;
    state.store.consumer(&id).await?;
    Ok(Json(
        state
            .store
            .list_keys(&id, q.cursor.as_deref(), q.limit)
            .await?,
    )
    .into_response())
}

/// A new API key.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    name: Option<String>,
    #[serde(default)]
    scopes: Vec<String>,
    /// Seconds from now until the key expires.
    expires_in: Option<u64>,
}

pub async fn create_key(
    State(state): AppState,
    caller: Caller,
    Path(consumer_id): Path<String>,
    JsonBody(body): JsonBody<CreateKey>,
) -> Result<Response> {
    caller.require(Role::Operator)?;
    let mut errors = Vec::new();
    if let Some(n) = &body.name {
        check_name("name", n, &mut errors);
    }
    check_scopes(&body.scopes, &mut errors);
    if body.expires_in == Some(0) || body.expires_in.is_some_and(|s| s > 10 * 365 * 86_400) {
        errors.push(FieldError {
            field: "expires_in".into(),
            message: "between 1 second and 10 years".into(),
        });
    }
    validated(errors)?;
    let expires_at = body
        .expires_in
        .map(|s| rampart_store::now_ms() + (s as i64) * 1000);
    let (key, secret) = audited(&state, &caller, "api_key.create", format!("consumer:{consumer_id}"), async {
        let (key, secret) = state
            .store
            .create_key(NewApiKey { consumer_id: consumer_id.clone(), name: body.name, scopes: body.scopes, expires_at })
            .await?;
        let summary = serde_json::json!({ "after": { "key_id": key.id, "scopes": key.scopes, "expires_at": key.expires_at } });
        Ok(((key, secret), summary))
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "key": key, "secret": secret })),
    )
        .into_response())
}

pub async fn get_key(
    State(state): AppState,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response> {
    caller.require(Role::Auditor)?;
    Ok(Json(state.store.key(&id).await?).into_response())
}

pub async fn revoke_key(
    State(state): AppState,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response> {
    caller.require(Role::Operator)?;
    let key = audited(
        &state,
        &caller,
        "api_key.revoke",
        format!("api_key:{id}"),
        async {
            let key = state.store.revoke_key(&id).await?;
            Ok((
                key.clone(),
                serde_json::json!({ "after": { "revoked_at": key.revoked_at } }),
            ))
        },
    )
    .await?;
    Ok(Json(key).into_response())
}

/// Rotation settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateKey {
    /// Seconds the old key keeps working. Default 3600.
    overlap_seconds: Option<u64>,
}

pub async fn rotate_key(
    State(state): AppState,
    caller: Caller,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response> {
    caller.require(Role::Operator)?;
    // The body is optional: empty means the defaults.
    let settings: RotateKey = if body.is_empty() {
        RotateKey::default()
    } else {
        crate::auth::parse_json(&body)?
    };
    let overlap = settings.overlap_seconds.unwrap_or(3600);
    if overlap > 30 * 86_400 {
        return Err(ApiError::invalid(vec![FieldError {
            field: "overlap_seconds".into(),
            message: "at most 30 days".into(),
        }]));
    }
    let (key, secret) = audited(&state, &caller, "api_key.rotate", format!("api_key:{id}"), async {
        let (key, secret) = state.store.rotate_key(&id, (overlap as i64) * 1000).await?;
        Ok(((key.clone(), secret), serde_json::json!({ "before": { "key_id": id }, "after": { "key_id": key.id, "overlap_seconds": overlap } })))
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "key": key, "secret": secret })),
    )
        .into_response())
}

pub async fn list_tokens(State(state): AppState, caller: Caller) -> Result<Response> {
    caller.require(Role::Admin)?;
    Ok(Json(serde_json::json!({ "items": state.store.list_tokens().await? })).into_response())
}

/// A new admin token.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    name: String,
    role: Role,
}

pub async fn create_token(
    State(state): AppState,
    caller: Caller,
    JsonBody(body): JsonBody<CreateToken>,
) -> Result<Response> {
    caller.require(Role::Admin)?;
    let mut errors = Vec::new();
    check_name("name", &body.name, &mut errors);
    validated(errors)?;
    let (token, secret) = audited(
        &state,
        &caller,
        "admin_token.create",
        format!("admin-token-name:{}", body.name),
        async {
            let (token, secret) = state.store.create_token(&body.name, body.role).await?;
            let summary =
                serde_json::json!({ "after": { "token_id": token.id, "role": token.role } });
            Ok(((token, secret), summary))
        },
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "token": token, "secret": secret })),
    )
        .into_response())
}

pub async fn revoke_token(
    State(state): AppState,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response> {
    caller.require(Role::Admin)?;
    let token = audited(
        &state,
        &caller,
        "admin_token.revoke",
        format!("admin_token:{id}"),
        async {
            let token = state.store.revoke_token(&id).await?;
            Ok((
                token.clone(),
                serde_json::json!({ "after": { "revoked_at": token.revoked_at } }),
            ))
        },
    )
    .await?;
    Ok(Json(token).into_response())
}

/// Audit trail paging.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    after: Option<i64>,
    limit: Option<u32>,
}

pub async fn audit_events(
    State(state): AppState,
    caller: Caller,
    Query(q): Query<AuditQuery>,
) -> Result<Response> {
    caller.require(Role::Auditor)?;
    Ok(Json(state.store.audit_events(q.after, q.limit).await?).into_response())
}

pub async fn config_routes(State(state): AppState, caller: Caller) -> Result<Response> {
    caller.require(Role::Auditor)?;
    let config = state.gateway.config();
    let routes: Vec<serde_json::Value> = config
        .routes
        .iter()
        .map(|r| {
            serde_json::json!({
                "name": &*r.name,
                "upstream": r.upstream,
                "hosts": r.matcher.hosts.iter().map(|h| format!("{h:?}")).collect::<Vec<_>>(),
                "path": format!("{:?}", r.matcher.path),
                "methods": r.matcher.methods.iter().map(|m| m.as_str()).collect::<Vec<_>>(),
                "timeouts": { "per_try_ms": r.per_try_timeout.as_millis() as u64, "total_ms": r.total_timeout.as_millis() as u64 },
                "retry_attempts": r.retry.attempts,
            })
        })
        .collect();
    Ok(Json(serde_json::json!({ "items": routes })).into_response())
}

pub async fn upstreams(State(state): AppState, caller: Caller) -> Result<Response> {
    caller.require(Role::Auditor)?;
    Ok(Json(state.gateway.upstream_status()).into_response())
}
