//! Rampart's control plane: the admin listener. It serves liveness, readiness,
//! Prometheus metrics and read-only views of the running gateway.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use rampart_proxy::Gateway;
use tokio::net::TcpListener;

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
}

/// The admin API's routes.
pub fn router(gateway: Arc<Gateway>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/upstreams", get(upstreams))
        .with_state(gateway)
}

/// Binds `address`; returns the bound address and a future that serves until `shutdown` completes.
pub async fn bind(
    address: SocketAddr,
    gateway: Arc<Gateway>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), AdminError> {
    let listener = TcpListener::bind(address)
        .await
        .map_err(|source| AdminError::Bind { address, source })?;
    let bound = listener.local_addr().unwrap_or(address);
    let app = router(gateway);
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

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(gateway): State<Arc<Gateway>>) -> Response {
    let readiness = gateway.readiness();
    let status = if readiness.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(readiness)).into_response()
}

/// Prometheus text by default; OpenMetrics when the scraper asks for it.
async fn metrics(State(gateway): State<Arc<Gateway>>, headers: HeaderMap) -> Response {
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

async fn upstreams(State(gateway): State<Arc<Gateway>>) -> Response {
    Json(gateway.upstream_status()).into_response()
}
