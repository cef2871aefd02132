//! Rampart's control plane: the admin listener. It serves liveness, readiness and
//! Prometheus metrics without a token, and the token-protected admin API: consumers,
//! API keys, admin tokens, the audit trail and read-only views of the running config.

mod api;
mod audit_api;
mod auth;
mod openapi;
mod problem;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use audit_sink::LogAndStore;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rampart_proxy::Gateway;
use rampart_store::{AdminTokenStore, AuditSink, Role, SharedState, Store, StoreError};
use tokio::net::TcpListener;

pub use problem::{ApiError, FieldError};

/// Failure to start the admin listener.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The address could not be bound.
    #[error("admin listener: cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The bootstrap token could not be created or written.
    #[error("bootstrap admin token: {0}")]
    Bootstrap(String),
}

/// What the admin handlers share.
pub struct AdminState {
    /// The running gateway.
    pub gateway: Arc<Gateway>,
    /// The store.
    pub store: Store,
    /// Where audit events go.
    pub audit: Arc<dyn AuditSink>,
    /// Shared ephemeral state (in-process or Redis).
    pub shared: Arc<dyn SharedState>,
    /// The JWKS upstreams verify principal assertions with.
    pub assertion_jwks: serde_json::Value,
    /// The tamper-evident audit log, when the binary opened one.
    pub audit_log: Option<Arc<dyn rampart_audit::Ledger>>,
}

mod audit_sink {
    //! The audit sink used until the tamper-evident log exists: the store's audit
    //! table, and a structured log line.

    use async_trait::async_trait;
    use rampart_store::{AuditEvent, AuditSink, Store, StoreError};

    /// Writes each event to the store and to the log.
    pub struct LogAndStore(pub Store);

    #[async_trait]
    impl AuditSink for LogAndStore {
        async fn record(&self, event: &AuditEvent) -> Result<(), StoreError> {
            tracing::info!(
                target: "rampart::audit",
                actor = %event.actor,
                action = %event.action,
                resource = %event.resource,
                outcome = %event.outcome,
                request_id = event.request_id.as_deref().unwrap_or("-"),
                "audit"
            );
            self.0.record(event).await
        }
    }
}

/// The admin API's routes.
pub fn router(state: Arc<AdminState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi_json))
        .route("/.well-known/jwks.json", get(assertion_jwks))
        .route("/upstreams", get(api::upstreams))
        .route("/config/routes", get(api::config_routes))
        .route(
            "/consumers",
            get(api::list_consumers).post(api::create_consumer),
        )
        .route(
            "/consumers/{id}",
            get(api::get_consumer)
                .patch(api::update_consumer)
                .delete(api::delete_consumer),
        )
        .route("/consumers/{id}/usage", get(api::consumer_usage))
        .route(
            "/consumers/{id}/keys",
            get(api::list_keys).post(api::create_key),
        )
        .route("/keys/{id}", get(api::get_key))
        .route("/keys/{id}/revoke", post(api::revoke_key))
        .route("/keys/{id}/rotate", post(api::rotate_key))
        .route(
            "/admin/tokens",
            get(api::list_tokens).post(api::create_token),
        )
        .route("/admin/tokens/{id}/revoke", post(api::revoke_token))
        .route("/bans", get(api::list_bans))
        .route("/bans/{ip}", axum::routing::delete(api::lift_ban))
        .route("/audit/events", get(api::audit_events))
        .route(
            "/audit/checkpoint",
            get(audit_api::checkpoint).post(audit_api::publish_checkpoint),
        )
        .route("/audit/key", get(audit_api::key))
        .route("/audit/entries", get(audit_api::entries))
        .route("/audit/proof/inclusion", get(audit_api::inclusion_proof))
        .route(
            "/audit/proof/consistency",
            get(audit_api::consistency_proof),
        )
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(auth::MAX_BODY))
        .layer(axum::middleware::from_fn(auth::request_id))
        .with_state(state)
}

impl AdminState {
    /// The state for `gateway`, `store` and `shared`, auditing to the store's table and
    /// the log, without an assertion JWKS or audit log until they are given.
    pub fn new(gateway: Arc<Gateway>, store: Store, shared: Arc<dyn SharedState>) -> Self {
        Self {
            gateway,
            audit: Arc::new(LogAndStore(store.clone())),
            store,
            shared,
            assertion_jwks: serde_json::json!({ "keys": [] }),
            audit_log: None,
        }
    }

    /// Publishes `jwks` at `/.well-known/jwks.json`.
    pub fn with_assertion_jwks(mut self, jwks: serde_json::Value) -> Self {
        self.assertion_jwks = jwks;
        self
    }

    /// Records audit events through `sink` and serves `log` under `/audit/`.
    pub fn with_audit_log(
        mut self,
        log: Arc<dyn rampart_audit::Ledger>,
        sink: Arc<dyn AuditSink>,
    ) -> Self {
        self.audit_log = Some(log);
        self.audit = sink;
        self
    }
}

/// When no token with the `admin` role is active (a first start; operator and auditor
/// tokens do not count), creates an admin token and writes it to
/// `<data_dir>/admin-token` (mode 0600). Returns the file's path when it did.
pub async fn bootstrap_token(
    store: &Store,
    data_dir: &Path,
) -> Result<Option<PathBuf>, AdminError> {
    let active = store
        .active_admin_token_count()
        .await
        .map_err(|e| AdminError::Bootstrap(e.to_string()))?;
    if active > 0 {
        return Ok(None);
    }
    let (_, secret) = store
        .create_token("bootstrap", Role::Admin)
        .await
        .map_err(|e| AdminError::Bootstrap(e.to_string()))?;
    let path = data_dir.join("admin-token");
    write_private(&path, &format!("{secret}\n"))
        .map_err(|e| AdminError::Bootstrap(format!("{}: {e}", path.display())))?;
    Ok(Some(path))
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

/// Binds `address`; returns the bound address and the task serving until `shutdown` completes.
pub async fn bind(
    address: SocketAddr,
    state: Arc<AdminState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), AdminError> {
    let listener = TcpListener::bind(address)
        .await
        .map_err(|source| AdminError::Bind { address, source })?;
    let bound = listener.local_addr().unwrap_or(address);
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!("admin listener failed: {e}");
        }
    });
    tracing::info!(address = %bound, "admin listening");
    Ok((bound, task))
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not-found", "no such admin endpoint")
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "health", responses((status = 200, description = "The OpenAPI 3.1 document", body = Object)))]
async fn openapi_json() -> Response {
    Json(openapi::document()).into_response()
}

pub use openapi::document as openapi_document;

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, description = "Alive", body = String, content_type = "text/plain")))]
async fn healthz() -> &'static str {
    "ok\n"
}

/// The public keys of principal assertions (no token needed: they are public).
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "health", responses((status = 200, description = "JWKS (RFC 7517) of the keys that sign principal assertions sent upstream", body = Object)))]
async fn assertion_jwks(State(state): State<Arc<AdminState>>) -> Json<serde_json::Value> {
    Json(state.assertion_jwks.clone())
}

/// Readiness and why not.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ReadinessView {
    /// True when the store answers and every route has a healthy upstream.
    pub ready: bool,
    /// What is missing, one line per problem.
    pub reasons: Vec<String>,
}

/// Ready when the store answers and every route has a healthy upstream.
#[utoipa::path(get, path = "/readyz", tag = "health", responses(
    (status = 200, description = "Ready", body = ReadinessView),
    (status = 503, description = "Not ready; the reasons say why", body = ReadinessView),
))]
async fn readyz(State(state): State<Arc<AdminState>>) -> Response {
    let mut readiness = state.gateway.readiness();
    let ping = tokio::time::timeout(Duration::from_secs(1), state.store.ping()).await;
    let store_problem = match ping {
        Ok(Ok(())) => None,
        Ok(Err(StoreError::Unavailable(e))) | Ok(Err(StoreError::Database(e))) => Some(e),
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some("no answer within 1s".to_string()),
    };
    if let Some(problem) = store_problem {
        readiness.ready = false;
        readiness
            .reasons
            .push(format!("store unreachable: {problem}"));
    }
    let status = if readiness.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let view = ReadinessView {
        ready: readiness.ready,
        reasons: readiness.reasons,
    };
    (status, Json(view)).into_response()
}

/// Prometheus text by default; OpenMetrics when the scraper asks for it.
#[utoipa::path(get, path = "/metrics", tag = "health", responses((status = 200, description = "Metrics in the Prometheus text format", body = String, content_type = "text/plain")))]
async fn metrics(State(state): State<Arc<AdminState>>, headers: HeaderMap) -> Response {
    let gateway = &state.gateway;
    gateway.refresh_gauges();
    let wants_openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/openmetrics-text"));
    if wants_openmetrics {
        (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            gateway.metrics().encode_openmetrics(),
        )
            .into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            gateway.metrics().encode_prometheus(),
        )
            .into_response()
    }
}
