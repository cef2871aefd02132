//! The admin API's resources: consumers, API keys, admin tokens, the audit trail and
//! read-only views of the running config.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use rampart_store::{
    AdminToken, AdminTokenStore, ApiKey, ApiKeyStore, AuditEvent, AuditStore, Consumer,
    ConsumerPatch, ConsumerPlan, ConsumerStatus, ConsumerStore, NewApiKey, NewConsumer,
    QuotaPeriod, Role, StoreError, StoredAuditEvent, UsageStore,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::{Caller, JsonBody, QueryParams};
use crate::problem::{ApiError, FieldError, Problem};
use crate::AdminState;

type Result<T> = std::result::Result<T, ApiError>;

/// A page of consumers.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConsumerPage {
    /// The consumers.
    pub items: Vec<Consumer>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// A page of API keys.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyPage {
    /// The keys.
    pub items: Vec<ApiKey>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// A page of audit events.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    /// The events.
    pub items: Vec<StoredAuditEvent>,
    /// Pass as `after` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// A key and its secret, shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedKey {
    /// The key.
    pub key: ApiKey,
    /// The secret (`rk_…`); it cannot be read again.
    pub secret: String,
}

/// An admin token and its secret, shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedToken {
    /// The token.
    pub token: AdminToken,
    /// The secret (`rat_…`); it cannot be read again.
    pub secret: String,
}

/// All admin tokens.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenList {
    /// The tokens.
    pub items: Vec<AdminToken>,
}

/// A route as the running config has it.
#[derive(Debug, Serialize, ToSchema)]
pub struct RouteView {
    /// Route name.
    pub name: String,
    /// Upstream pool.
    pub upstream: String,
    /// Host conditions.
    pub hosts: Vec<String>,
    /// Path condition.
    pub path: String,
    /// Method conditions.
    pub methods: Vec<String>,
    /// Per-try timeout in milliseconds.
    pub per_try_timeout_ms: u64,
    /// Total timeout in milliseconds.
    pub total_timeout_ms: u64,
    /// Retries after the first attempt.
    pub retry_attempts: u32,
}

/// The routes of the running config, most specific first.
#[derive(Debug, Serialize, ToSchema)]
pub struct RouteList {
    /// The routes.
    pub items: Vec<RouteView>,
}
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

fn check_plan(plan: Option<&ConsumerPlan>, errors: &mut Vec<FieldError>) {
    if let Some(Err(e)) = plan.map(ConsumerPlan::validate) {
        errors.push(FieldError {
            field: "plan".into(),
            message: e.to_string(),
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

/// A strong ETag for a resource without a version: a digest of its JSON form.
fn content_etag<T: Serialize>(value: &T) -> HeaderValue {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    serde_json::to_string(value)
        .unwrap_or_default()
        .hash(&mut hasher);
    HeaderValue::from_str(&format!("\"h{:016x}\"", hasher.finish()))
        .unwrap_or_else(|_| HeaderValue::from_static("\"h0\""))
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

/// Tells every instance to drop cached credentials (after a key or consumer change) or
/// its cached answer for a client whose ban was lifted (`ban:<ip>`).
async fn invalidate(state: &AdminState, what: String) {
    if let Err(e) = state
        .shared
        .publish(rampart_store::INVALIDATION_CHANNEL, &what)
        .await
    {
        // Caches still expire within a second; the change is not lost.
        tracing::warn!("could not announce the change of {what}: {e}");
    }
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
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ConsumerQuery {
    /// Only the consumer with this name (names are unique: at most one item).
    name: Option<String>,
    /// Only consumers of this tenant.
    tenant: Option<String>,
    /// Only consumers with this status.
    status: Option<ConsumerStatus>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
}

/// `list_consumers` handler.
#[utoipa::path(get, path = "/consumers", tag = "consumers", params(ConsumerQuery), responses((status = 200, description = "A page of consumers", body = ConsumerPage), (status = 400, description = "Malformed request", body = Problem, content_type = "application/problem+json"), (status = 401, description = "Missing or invalid admin token", body = Problem, content_type = "application/problem+json"), (status = 403, description = "The token's role is not enough", body = Problem, content_type = "application/problem+json"), (status = 503, description = "Store unavailable", body = Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn list_consumers(
    State(state): AppState,
    caller: Caller,
    QueryParams(q): QueryParams<ConsumerQuery>,
) -> Result<Response> {
    caller.require(Role::Auditor)?;
    if let Some(name) = &q.name {
        let found = match state.store.consumer_by_name(name).await {
            Ok(c) => Some(c),
            Err(StoreError::NotFound(_)) => None,
            Err(e) => return Err(e.into()),
        };
        let items = found
            .filter(|c| q.tenant.is_none() || c.tenant == q.tenant)
            .filter(|c| q.status.is_none_or(|s| c.status == s))
            .filter(|c| {
                q.cursor
                    .as_deref()
                    .is_none_or(|cursor| c.id.as_str() > cursor)
            })
            .into_iter()
            .collect();
        return Ok(Json(ConsumerPage {
            items,
            next_cursor: None,
        })
        .into_response());
    }
    let page = state
        .store
        .list_consumers(q.tenant.as_deref(), q.status, q.cursor.as_deref(), q.limit)
        .await?;
    Ok(Json(ConsumerPage {
        items: page.items,
        next_cursor: page.next_cursor,
    })
    .into_response())
}

/// A new consumer.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateConsumer {
    /// Unique name: 1 to 128 letters, digits, '.', '_' or '-'.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,128}$", min_length = 1, max_length = 128)]
    name: String,
    /// Tenant (same characters as a name).
    #[schema(pattern = "^[A-Za-z0-9._-]{1,128}$", min_length = 1, max_length = 128)]
    tenant: Option<String>,
    /// A JSON object of at most 16 KiB.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    metadata: Option<serde_json::Value>,
    /// Limits replacing the routes' for this consumer.
    plan: Option<ConsumerPlan>,
}

/// `create_consumer` handler.
#[utoipa::path(post, path = "/consumers", tag = "consumers", request_body = CreateConsumer, responses((status = 201, description = "Created", body = Consumer, headers(("etag" = String, description = "Version tag"))), (status = 400, description = "Malformed request", body = Problem, content_type = "application/problem+json"), (status = 401, description = "Missing or invalid admin token", body = Problem, content_type = "application/problem+json"), (status = 403, description = "The token's role is not enough", body = Problem, content_type = "application/problem+json"), (status = 409, description = "Conflict", body = Problem, content_type = "application/problem+json"), (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"), (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"), (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"), (status = 503, description = "Store unavailable", body = Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
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
    check_plan(body.plan.as_ref(), &mut errors);
    validated(errors)?;
    let consumer = audited(&state, &caller, "consumer.create", format!("consumer-name:{}", body.name), async {
        let c = state
            .store
            .create_consumer(NewConsumer { name: body.name.clone(), tenant: body.tenant.clone(), metadata, plan: body.plan })
            .await?;
        let summary = serde_json::json!({ "after": { "id": c.id, "name": c.name, "tenant": c.tenant, "status": c.status, "plan": c.plan } });
        Ok((c, summary))
    })
    .await?;
    let tag = etag(consumer.version);
    Ok((StatusCode::CREATED, [(header::ETAG, tag)], Json(consumer)).into_response())
}

/// `get_consumer` handler.
#[utoipa::path(get, path = "/consumers/{id}", tag = "consumers", params(("id" = String, Path, description = "Consumer id")), responses((status = 200, description = "The consumer", body = Consumer, headers(("etag" = String, description = "Version tag"))), (status = 400, description = "Malformed request", body = Problem, content_type = "application/problem+json"), (status = 401, description = "Missing or invalid admin token", body = Problem, content_type = "application/problem+json"), (status = 403, description = "The token's role is not enough", body = Problem, content_type = "application/problem+json"), (status = 404, description = "Not found", body = Problem, content_type = "application/problem+json"), (status = 503, description = "Store unavailable", body = Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
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

/// Changes to a consumer; absent fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateConsumer {
    /// New unique name.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,128}$", min_length = 1, max_length = 128)]
    name: Option<String>,
    /// New tenant; `null` clears it.
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<String>, pattern = "^[A-Za-z0-9._-]{1,128}$", min_length = 1, max_length = 128)]
    tenant: Option<Option<String>>,
    /// New metadata object.
    #[schema(value_type = Option<Object>)]
    metadata: Option<serde_json::Value>,
    /// New status.
    status: Option<ConsumerStatus>,
    /// New plan; `null` clears it.
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<ConsumerPlan>)]
    plan: Option<Option<ConsumerPlan>>,
}

/// Distinguishes an absent field from an explicit `null`.
mod double_option {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
        d: D,
    ) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(d).map(Some)
    }
}

/// `update_consumer` handler.
#[utoipa::path(patch, path = "/consumers/{id}", tag = "consumers", params(("id" = String, Path, description = "Consumer id"), ("if-match" = Option<String>, Header, description = "ETag from a read")), request_body = UpdateConsumer, responses((status = 200, description = "Updated", body = Consumer, headers(("etag" = String, description = "Version tag"))), (status = 400, description = "Malformed request", body = Problem, content_type = "application/problem+json"), (status = 401, description = "Missing or invalid admin token", body = Problem, content_type = "application/problem+json"), (status = 403, description = "The token's role is not enough", body = Problem, content_type = "application/problem+json"), (status = 404, description = "Not found", body = Problem, content_type = "application/problem+json"), (status = 409, description = "Conflict", body = Problem, content_type = "application/problem+json"), (status = 412, description = "If-Match does not match", body = Problem, content_type = "application/problem+json"), (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"), (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"), (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"), (status = 503, description = "Store unavailable", body = Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
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
    if let Some(plan) = &body.plan {
        check_plan(plan.as_ref(), &mut errors);
    }
    validated(errors)?;
    let patch = ConsumerPatch {
        name: body.name,
        tenant: body.tenant,
        metadata: body.metadata,
        status: body.status,
        plan: body.plan,
    };
    let consumer = audited(&state, &caller, "consumer.update", format!("consumer:{id}"), async {
        // Without `If-Match` the caller asked for no precondition: a write that raced
        // ours is read again and the patch applied on top of it (a bounded number of
        // times), instead of answering that the record changed since it was read.
        let mut attempts = 0;
        let (before, after) = loop {
            let before = state.store.consumer(&id).await?;
            let version = expected.unwrap_or(before.version);
            match state.store.update_consumer(&id, Some(version), patch.clone()).await {
                Err(StoreError::VersionMismatch) if expected.is_none() && attempts < 16 => {
                    attempts += 1;
                }
                result => break (before, result?),
            }
        };
        let summary = serde_json::json!({
            "before": { "name": before.name, "tenant": before.tenant, "status": before.status, "plan": before.plan, "version": before.version },
            "after": { "name": after.name, "tenant": after.tenant, "status": after.status, "plan": after.plan, "version": after.version },
        });
        Ok((after, summary))
    })
    .await?;
    invalidate(&state, format!("consumer:{id}")).await;
    let tag = etag(consumer.version);
    Ok(([(header::ETAG, tag)], Json(consumer)).into_response())
}

/// `delete_consumer` handler.
#[utoipa::path(delete, path = "/consumers/{id}", tag = "consumers", params(("id" = String, Path, description = "Consumer id"), ("if-match" = Option<String>, Header, description = "ETag from a read")), responses((status = 204, description = "Deleted, with its API keys (they stop working on every instance) and quota counts"), (status = 400, description = "Malformed request", body = Problem, content_type = "application/problem+json"), (status = 401, description = "Missing or invalid admin token", body = Problem, content_type = "application/problem+json"), (status = 403, description = "The token's role is not enough", body = Problem, content_type = "application/problem+json"), (status = 404, description = "Not found", body = Problem, content_type = "application/problem+json"), (status = 412, description = "If-Match does not match", body = Problem, content_type = "application/problem+json"), (status = 503, description = "Store unavailable", body = Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn delete_consumer(
    State(state): AppState,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response> {
    caller.require(Role::Operator)?;
    let expected = if_match(&headers)?;
    audited(&state, &caller, "consumer.delete", format!("consumer:{id}"), async {
        let (before, keys) = state.store.delete_consumer(&id, expected).await?;
        let summary = serde_json::json!({
            "before": { "name": before.name, "tenant": before.tenant, "status": before.status, "plan": before.plan, "version": before.version },
            "keys_deleted": keys,
        });
        Ok(((), summary))
    })
    .await?;
    invalidate(&state, format!("consumer:{id}")).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Requests counted against one quota period.
#[derive(Debug, Serialize, ToSchema)]
pub struct PeriodUsage {
    /// The period (`d:YYYY-MM-DD` or `m:YYYY-MM`, UTC).
    pub period: String,
    /// Requests counted so far (instances flush their counts every second).
    pub used: i64,
    /// The consumer's own budget for the period, from its plan (routes' budgets apply otherwise).
    pub plan_limit: Option<u64>,
    /// Seconds until the period ends.
    pub resets_in: i64,
}

/// A consumer's quota usage in the current periods.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConsumerUsage {
    /// The consumer.
    pub consumer_id: String,
    /// This UTC day.
    pub daily: PeriodUsage,
    /// This UTC month.
    pub monthly: PeriodUsage,
}

/// `consumer_usage` handler.
#[utoipa::path(get, path = "/consumers/{id}/usage", tag = "consumers", params(("id" = String, Path, description = "Consumer id")), responses((status = 200, description = "Usage in the current day and month", body = ConsumerUsage), (status = 400, description = "Malformed request", body = Problem, content_type = "application/problem+json"), (status = 401, description = "Missing or invalid admin token", body = Problem, content_type = "application/problem+json"), (status = 403, description = "The token's role is not enough", body = Problem, content_type = "application/problem+json"), (status = 404, description = "Not found", body = Problem, content_type = "application/problem+json"), (status = 503, description = "Store unavailable", body = Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn consumer_usage(
    State(state): AppState,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ConsumerUsage>> {
    caller.require(Role::Auditor)?;
    let consumer = state.store.consumer(&id).await?;
    let now = rampart_store::now_ms() / 1000;
    let usage = |period: QuotaPeriod, plan_limit: Option<u64>| {
        let key = period.key(now);
        let store = state.store.clone();
        let id = id.clone();
        async move {
            Ok::<_, ApiError>(PeriodUsage {
                used: store.usage(&id, &key).await?,
                period: key,
                plan_limit,
                resets_in: period.seconds_left(now),
            })
        }
    };
    let plan = consumer.plan.unwrap_or_default();
    Ok(Json(ConsumerUsage {
        daily: usage(QuotaPeriod::Day, plan.daily_quota).await?,
        monthly: usage(QuotaPeriod::Month, plan.monthly_quota).await?,
        consumer_id: consumer.id,
    }))
}

/// Cursor paging.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
}

/// `list_keys` handler.
#[utoipa::path(get, path = "/consumers/{id}/keys", tag = "keys", params(("id" = String, Path, description = "Consumer id"), PageQuery), responses((status = 200, description = "A page of keys", body = KeyPage), (status = 400, description = "Malformed request", body = Problem, content_type = "application/problem+json"), (status = 401, description = "Missing or invalid admin token", body = Problem, content_type = "application/problem+json"), (status = 403, description = "The token's role is not enough", body = Problem, content_type = "application/problem+json"), (status = 404, description = "Not found", body = Problem, content_type = "application/problem+json"), (status = 503, description = "Store unavailable", body = Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn list_keys(
    State(state): AppState,
    caller: Caller,
    Path(id): Path<String>,
    QueryParams(q): QueryParams<PageQuery>,
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
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// Label.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,128}$", min_length = 1, max_length = 128)]
    name: Option<String>,
    /// Scopes (at most 32, each 1 to 64 visible characters).
    #[serde(default)]
    #[schema(max_items = 32, pattern = "^[!-~]{1,64}$")]
    scopes: Vec<String>,
    /// Seconds from now until the key expires (up to ten years).
    #[schema(minimum = 1, maximum = 315360000)]
    expires_in: Option<u64>,
}

/// `create_key` handler.
#[utoipa::path(post, path = "/consumers/{id}/keys", tag = "keys", params(("id" = String, Path, description = "Consumer id")), request_body = CreateKey, responses((status = 201, description = "Created; the secret is shown once", body = CreatedKey), (status = 400, description = "Malformed request", body = Problem, content_type = "application/problem+json"), (status = 401, description = "Missing or invalid admin token", body = Problem, content_type = "application/problem+json"), (status = 403, description = "The token's role is not enough", body = Problem, content_type = "application/problem+json"), (status = 404, description = "Not found", body = Problem, content_type = "application/problem+json"), (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"), (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"), (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"), (status = 503, description = "Store unavailable", body = Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
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
    Ok((StatusCode::CREATED, Json(CreatedKey { key, secret })).into_response())
}

/// `get_key` handler.
#[utoipa::path(get, path = "/keys/{id}", tag = "keys", params(("id" = String, Path, description = "Key id")),  responses((status = 200, description = "The key", body = ApiKey, headers(("etag" = String, description = "Content tag"))), (status = 400, description = "Malformed request", body = Problem, content_type = "application/problem+json"), (status = 401, description = "Missing or invalid admin token", body = Problem, content_type = "application/problem+json"), (status = 403, description = "The token's role is not enough", body = Problem, content_type = "application/problem+json"), (status = 404, description = "Not found", body = Problem, content_type = "application/problem+json"), (status = 503, description = "Store unavailable", body = Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn get_key(
    State(state): AppState,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response> {
    caller.require(Role::Auditor)?;
    let key = state.store.key(&id).await?;
    Ok(([(header::ETAG, content_etag(&key))], Json(key)).into_response())
}

/// `revoke_key` handler.
#[utoipa::path(post, path = "/keys/{id}/revoke", tag = "keys", params(("id" = String, Path, description = "Key id")), responses((status = 200, description = "Revoked", body = ApiKey), (status = 400, description = "Malformed request", body = Problem, content_type = "application/problem+json"), (status = 401, description = "Missing or invalid admin token", body = Problem, content_type = "application/problem+json"), (status = 403, description = "The token's role is not enough", body = Problem, content_type = "application/problem+json"), (status = 404, description = "Not found", body = Problem, content_type = "application/problem+json"), (status = 503, description = "Store unavailable", body = Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
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
    invalidate(&state, format!("api_key:{id}")).await;
    Ok(Json(key).into_response())
}

/// Rotation settings.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateKey {
    /// Seconds the old key keeps working. Default 3600; at most 30 days.
    #[schema(maximum = 2592000)]
    overlap_seconds: Option<u64>,
}

/// `rotate_key` handler.
#[utoipa::path(post, path = "/keys/{id}/rotate", tag = "keys", params(("id" = String, Path, description = "Key id")), request_body(content = Option<RotateKey>, description = "Optional; default overlap 3600 s"), responses((status = 201, description = "The replacement; the secret is shown once", body = CreatedKey), (status = 400, description = "Malformed request", body = Problem, content_type = "application/problem+json"), (status = 401, description = "Missing or invalid admin token", body = Problem, content_type = "application/problem+json"), (status = 403, description = "The token's role is not enough", body = Problem, content_type = "application/problem+json"), (status = 404, description = "Not found", body = Problem, content_type = "application/problem+json"), (status = 409, description = "Conflict", body = Problem, content_type = "application/problem+json"), (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"), (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"), (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"), (status = 503, description = "Store unavailable", body = Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn rotate_key(
    State(state): AppState,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response> {
    caller.require(Role::Operator)?;
    // The body is optional: empty means the defaults.
    let settings: RotateKey = if body.is_empty() {
        RotateKey::default()
    } else {
        crate::auth::require_json(&headers)?;
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
    invalidate(&state, format!("api_key:{id}")).await;
    Ok((StatusCode::CREATED, Json(CreatedKey { key, secret })).into_response())
}

/// A client ban (set when the client asked for a honeypot path).
#[derive(Debug, Serialize, ToSchema)]
pub struct Ban {
    /// The client's IP address.
    pub ip: String,
    /// When the ban ends, milliseconds since the epoch; null when unknown.
    pub expires_at: Option<i64>,
}

/// The bans in force.
#[derive(Debug, Serialize, ToSchema)]
pub struct BanList {
    /// The bans, in no particular order.
    pub items: Vec<Ban>,
    /// True when the list stopped at `limit` (or at the bound of one search) and more
    /// bans may exist.
    pub truncated: bool,
}

/// Bound of a ban list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct BanQuery {
    /// Most bans to list, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// `list_bans` handler.
#[utoipa::path(get, path = "/bans", tag = "bans", params(BanQuery), responses((status = 200, description = "The bans in force (in the shared state: every instance's, with Redis)", body = BanList), (status = 400, description = "Malformed request", body = Problem, content_type = "application/problem+json"), (status = 401, description = "Missing or invalid admin token", body = Problem, content_type = "application/problem+json"), (status = 403, description = "The token's role is not enough", body = Problem, content_type = "application/problem+json"), (status = 503, description = "Shared state unavailable", body = Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn list_bans(
    State(state): AppState,
    caller: Caller,
    QueryParams(q): QueryParams<BanQuery>,
) -> Result<Response> {
    caller.require(Role::Auditor)?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed-query",
            "limit must be between 1 and 1000",
        ));
    }
    let flags = state
        .shared
        .flags(rampart_store::BAN_PREFIX, limit as usize)
        .await?;
    let items = flags
        .items
        .into_iter()
        .filter_map(|flag| {
            let ip = flag.key.strip_prefix(rampart_store::BAN_PREFIX)?;
            Some(Ban {
                ip: ip.to_string(),
                expires_at: flag.expires_at,
            })
        })
        .collect();
    Ok(Json(BanList {
        items,
        truncated: flags.truncated,
    })
    .into_response())
}

/// `lift_ban` handler.
#[utoipa::path(delete, path = "/bans/{ip}", tag = "bans", params(("ip" = String, Path, description = "The banned client's IP address")), responses((status = 204, description = "Lifted on every instance"), (status = 400, description = "Malformed request", body = Problem, content_type = "application/problem+json"), (status = 401, description = "Missing or invalid admin token", body = Problem, content_type = "application/problem+json"), (status = 403, description = "The token's role is not enough", body = Problem, content_type = "application/problem+json"), (status = 404, description = "No such ban", body = Problem, content_type = "application/problem+json"), (status = 503, description = "Shared state unavailable", body = Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn lift_ban(
    State(state): AppState,
    caller: Caller,
    Path(ip): Path<String>,
) -> Result<Response> {
    caller.require(Role::Operator)?;
    let key = audited(&state, &caller, "client.unban", format!("ip:{ip}"), async {
        let parsed: std::net::IpAddr = ip.parse().map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "malformed-path",
                "not an IP address",
            )
        })?;
        // The guard's key is the address as it prints (IPv6 compressed).
        let key = format!("{}{parsed}", rampart_store::BAN_PREFIX);
        if !state.shared.clear_flag(&key).await? {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not-found",
                format!("{parsed} is not banned"),
            ));
        }
        Ok((
            key,
            serde_json::json!({ "before": { "banned": true }, "after": { "banned": false } }),
        ))
    })
    .await?;
    invalidate(&state, key).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `list_tokens` handler.
#[utoipa::path(get, path = "/admin/tokens", tag = "admin tokens", responses((status = 200, description = "All admin tokens", body = TokenList), (status = 400, description = "Malformed request", body = Problem, content_type = "application/problem+json"), (status = 401, description = "Missing or invalid admin token", body = Problem, content_type = "application/problem+json"), (status = 403, description = "The token's role is not enough", body = Problem, content_type = "application/problem+json"), (status = 503, description = "Store unavailable", body = Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn list_tokens(State(state): AppState, caller: Caller) -> Result<Response> {
    caller.require(Role::Admin)?;
    Ok(Json(TokenList {
        items: state.store.list_tokens().await?,
    })
    .into_response())
}

/// A new admin token.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// Label (same characters as a consumer name).
    #[schema(pattern = "^[A-Za-z0-9._-]{1,128}$", min_length = 1, max_length = 128)]
    name: String,
    /// Role.
    role: Role,
}

/// `create_token` handler.
#[utoipa::path(post, path = "/admin/tokens", tag = "admin tokens", request_body = CreateToken, responses((status = 201, description = "Created; the secret is shown once", body = CreatedToken), (status = 400, description = "Malformed request", body = Problem, content_type = "application/problem+json"), (status = 401, description = "Missing or invalid admin token", body = Problem, content_type = "application/problem+json"), (status = 403, description = "The token's role is not enough", body = Problem, content_type = "application/problem+json"), (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"), (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"), (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"), (status = 503, description = "Store unavailable", body = Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
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
    Ok((StatusCode::CREATED, Json(CreatedToken { token, secret })).into_response())
}

/// `revoke_token` handler.
#[utoipa::path(post, path = "/admin/tokens/{id}/revoke", tag = "admin tokens", params(("id" = String, Path, description = "Token id")), responses((status = 200, description = "Revoked", body = AdminToken), (status = 400, description = "Malformed request", body = Problem, content_type = "application/problem+json"), (status = 401, description = "Missing or invalid admin token", body = Problem, content_type = "application/problem+json"), (status = 403, description = "The token's role is not enough", body = Problem, content_type = "application/problem+json"), (status = 404, description = "Not found", body = Problem, content_type = "application/problem+json"), (status = 503, description = "Store unavailable", body = Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
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
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Sequence number to continue after.
    after: Option<i64>,
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
}

/// `audit_events` handler.
#[utoipa::path(get, path = "/audit/events", tag = "audit", params(AuditQuery), responses((status = 200, description = "A page of audit events", body = AuditPage), (status = 400, description = "Malformed request", body = Problem, content_type = "application/problem+json"), (status = 401, description = "Missing or invalid admin token", body = Problem, content_type = "application/problem+json"), (status = 403, description = "The token's role is not enough", body = Problem, content_type = "application/problem+json"), (status = 503, description = "Store unavailable", body = Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn audit_events(
    State(state): AppState,
    caller: Caller,
    QueryParams(q): QueryParams<AuditQuery>,
) -> Result<Response> {
    caller.require(Role::Auditor)?;
    let page = state.store.audit_events(q.after, q.limit).await?;
    Ok(Json(AuditPage {
        items: page.items,
        next_cursor: page.next_cursor,
    })
    .into_response())
}

/// `config_routes` handler.
#[utoipa::path(get, path = "/config/routes", tag = "config", responses((status = 200, description = "Routes of the running config", body = RouteList), (status = 400, description = "Malformed request", body = Problem, content_type = "application/problem+json"), (status = 401, description = "Missing or invalid admin token", body = Problem, content_type = "application/problem+json"), (status = 403, description = "The token's role is not enough", body = Problem, content_type = "application/problem+json"), (status = 503, description = "Store unavailable", body = Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn config_routes(State(state): AppState, caller: Caller) -> Result<Response> {
    caller.require(Role::Auditor)?;
    let config = state.gateway.config();
    let items = config
        .routes
        .iter()
        .map(|r| RouteView {
            name: r.name.to_string(),
            upstream: r.upstream.clone(),
            hosts: r.matcher.hosts.iter().map(|h| format!("{h:?}")).collect(),
            path: format!("{:?}", r.matcher.path),
            methods: r
                .matcher
                .methods
                .iter()
                .map(|m| m.as_str().to_string())
                .collect(),
            per_try_timeout_ms: r.per_try_timeout.as_millis() as u64,
            total_timeout_ms: r.total_timeout.as_millis() as u64,
            retry_attempts: r.retry.attempts,
        })
        .collect();
    Ok(Json(RouteList { items }).into_response())
}

/// `upstreams` handler.
#[utoipa::path(get, path = "/upstreams", tag = "config", responses((status = 200, description = "Upstream pools with target health and breaker state", body = Object), (status = 400, description = "Malformed request", body = Problem, content_type = "application/problem+json"), (status = 401, description = "Missing or invalid admin token", body = Problem, content_type = "application/problem+json"), (status = 403, description = "The token's role is not enough", body = Problem, content_type = "application/problem+json"), (status = 503, description = "Store unavailable", body = Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn upstreams(State(state): AppState, caller: Caller) -> Result<Response> {
    caller.require(Role::Auditor)?;
    Ok(Json(state.gateway.upstream_status()).into_response())
}
