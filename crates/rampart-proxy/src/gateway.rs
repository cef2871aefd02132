//! The gateway: binds listeners, owns the current runtime, reloads it, reports
//! readiness, and shuts down gracefully.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use rampart_config::{AccessLogTarget, Config};
use rampart_telemetry::{AccessLog, AccessLogError, Metrics};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::phase::GuardFactory;
use crate::runtime::Runtime;
use crate::service::Shared;
use crate::tls::{CertStore, TlsError};

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener's address could not be bound.
    #[error("listener {listener}: cannot listen on {address}: {source}")]
    Bind {
        /// Listener name.
        listener: String,
        /// Address.
        address: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A listener's certificate could not be loaded.
    #[error("listener {listener}: {source}")]
    Tls {
        /// Listener name.
        listener: String,
        /// Why.
        source: TlsError,
    },
    /// The access log could not be opened.
    #[error(transparent)]
    AccessLog(#[from] AccessLogError),
    /// The trace exporter could not be set up.
    #[error(transparent)]
    Tracing(#[from] rampart_telemetry::TracingError),
}

/// Why a reload was refused (the running config keeps serving).
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// A listener's new certificate could not be loaded.
    #[error("listener {listener}: {source}")]
    Tls {
        /// Listener name.
        listener: String,
        /// Why.
        source: TlsError,
    },
}

/// Whether the gateway should receive traffic, and why not.
#[derive(Debug, Clone, Serialize)]
pub struct Readiness {
    /// True when every route has a healthy upstream target.
    pub ready: bool,
    /// What is missing, one line per problem.
    pub reasons: Vec<String>,
}

struct BoundListener {
    name: String,
    address: SocketAddr,
    certs: Option<Arc<CertStore>>,
}

/// A running gateway.
pub struct Gateway {
    shared: Arc<Shared>,
    listeners: Vec<BoundListener>,
    stop: watch::Sender<bool>,
    tasks: parking_lot::Mutex<Vec<JoinHandle<()>>>,
    cert_watch: JoinHandle<()>,
    factory: Arc<dyn GuardFactory>,
}

impl Gateway {
    /// Binds every listener and starts serving `config`.
    pub async fn start(config: Config, metrics: Arc<Metrics>) -> Result<Self, StartError> {
        Self::start_with(config, metrics, Arc::new(crate::phase::NoExtraGuards)).await
    }

    /// Starts with `factory` adding guards (authentication, rate limits) to routes.
    pub async fn start_with(
        config: Config,
        metrics: Arc<Metrics>,
        factory: Arc<dyn GuardFactory>,
    ) -> Result<Self, StartError> {
        let access_log = match &config.access_log {
            AccessLogTarget::Off => AccessLog::off(),
            AccessLogTarget::Stdout => AccessLog::stdout(metrics.access_log_dropped.clone()),
            AccessLogTarget::File(path) => {
                AccessLog::file(path, metrics.access_log_dropped.clone())?
            }
        };
        let traces = match &config.tracing {
            Some(t) => Some(Arc::new(rampart_telemetry::TraceExporter::new(
                &t.otlp_endpoint,
                &t.service_name,
                t.export_timeout,
            )?)),
            None => None,
        };
        let config = Arc::new(config);
        let runtime = Runtime::build(Arc::clone(&config), None, &metrics, &*factory);
        let shared = Arc::new(Shared {
            runtime: ArcSwap::from_pointee(runtime),
            metrics,
            access_log,
            unrouted: rampart_telemetry::RouteMetrics::new("none"),
            traces,
        });
        let (stop, stop_rx) = watch::channel(false);
        let mut listeners = Vec::new();
        let mut tasks = Vec::new();
        for l in &config.listeners {
            let certs = match &l.tls {
                Some(tls) => Some(Arc::new(CertStore::new(tls).map_err(|source| {
                    StartError::Tls {
                        listener: l.name.clone(),
                        source,
                    }
                })?)),
                None => None,
            };
            let socket = TcpListener::bind(l.address)
                .await
                .map_err(|source| StartError::Bind {
                    listener: l.name.clone(),
                    address: l.address,
                    source,
                })?;
            let address = socket.local_addr().unwrap_or(l.address);
            let acceptor = certs.as_ref().map(|c| TlsAcceptor::from(c.server_config()));
            let task = tokio::spawn(crate::listener::serve(
                socket,
                Arc::from(l.name.as_str()),
                acceptor,
                Arc::clone(&shared),
                stop_rx.clone(),
            ));
            tracing::info!(listener = %l.name, %address, tls = certs.is_some(), "listening");
            tasks.push(task);
            listeners.push(BoundListener {
                name: l.name.clone(),
                address,
                certs,
            });
        }
        let stores: Vec<(String, Arc<CertStore>)> = listeners
            .iter()
            .filter_map(|l| l.certs.clone().map(|c| (l.name.clone(), c)))
            .collect();
        let cert_watch = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(Duration::from_secs(1));
            loop {
                ticker.tick().await;
                for (listener, store) in &stores {
                    match store.reload_if_changed() {
                        Ok(true) => tracing::info!(%listener, "certificates reloaded"),
                        Ok(false) => {}
                        Err(e) => {
                            tracing::error!(%listener, "certificate change not applied, keeping the old ones: {e}")
                        }
                    }
                }
            }
        });
        Ok(Self {
            shared,
            listeners,
            stop,
            tasks: parking_lot::Mutex::new(tasks),
            cert_watch,
            factory,
        })
    }

    /// The bound address of a listener (useful with port 0).
    pub fn local_addr(&self, listener: &str) -> Option<SocketAddr> {
        self.listeners
            .iter()
            .find(|l| l.name == listener)
            .map(|l| l.address)
    }

    /// The config being served.
    pub fn config(&self) -> Arc<Config> {
        Arc::clone(&self.shared.runtime.load().config)
    }

    /// The metrics registry.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.shared.metrics
    }

    /// Swaps in a new config. Requests in flight finish on the old one. Listener
    /// addresses do not change until restart (a warning says so).
    pub fn reload(&self, config: Config) -> Result<(), ReloadError> {
        let current = self.shared.runtime.load_full();
        for l in &config.listeners {
            let Some(bound) = self.listeners.iter().find(|b| b.name == l.name) else {
                tracing::warn!(listener = %l.name, "new listeners start on restart");
                continue;
            };
            if let (Some(store), Some(tls)) = (&bound.certs, &l.tls) {
                if store.tls() != *tls {
                    store.replace(tls).map_err(|source| ReloadError::Tls {
                        listener: l.name.clone(),
                        source,
                    })?;
                }
            }
            let old = current.config.listeners.iter().find(|o| o.name == l.name);
            if old.map(|o| (o.address, o.tls.is_some())) != Some((l.address, l.tls.is_some())) {
                tracing::warn!(listener = %l.name, "listener address or TLS on/off changes take effect on restart");
            }
        }
        let runtime = Runtime::build(
            Arc::new(config),
            Some(&current),
            &self.shared.metrics,
            &*self.factory,
        );
        self.shared.runtime.store(Arc::new(runtime));
        self.shared.metrics.reloads_ok.inc();
        Ok(())
    }

    /// Counts a refused reload (the caller logs why).
    pub fn reload_refused(&self) {
        self.shared.metrics.reloads_failed.inc();
    }

    /// Ready when the gateway is not shutting down and every route has at least one
    /// healthy target that is not ejected, behind a circuit breaker that is not open.
    pub fn readiness(&self) -> Readiness {
        let runtime = self.shared.runtime.load();
        let mut reasons = Vec::new();
        if *self.stop.borrow() {
            reasons.push("shutting down: requests in flight are draining".to_string());
        }
        let now = std::time::Instant::now();
        for route in &runtime.routes {
            if !route.pool.has_available_target() {
                reasons.push(format!(
                    "route {:?}: upstream {:?} has no healthy target",
                    route.config.name, route.pool.config.name
                ));
            } else if route.pool.breaker_state(now) == Some(rampart_resilience::BreakerState::Open)
            {
                reasons.push(format!(
                    "route {:?}: the circuit breaker of upstream {:?} is open",
                    route.config.name, route.pool.config.name
                ));
            }
        }
        Readiness {
            ready: reasons.is_empty(),
            reasons,
        }
    }

    /// Per-upstream state for operators: targets with health, breaker state.
    pub fn upstream_status(&self) -> BTreeMap<String, serde_json::Value> {
        let runtime = self.shared.runtime.load();
        let now = std::time::Instant::now();
        runtime
            .pools
            .iter()
            .map(|(name, pool)| {
                let targets: Vec<serde_json::Value> = pool
                    .targets
                    .iter()
                    .enumerate()
                    .map(|(i, t)| serde_json::json!({ "target": &*t.label, "available": pool.is_available(i, now) }))
                    .collect();
                let breaker = pool.breaker_state(now).map(|state| format!("{state:?}"));
                (name.clone(), serde_json::json!({ "targets": targets, "circuit_breaker": breaker }))
            })
            .collect()
    }

    /// Brings scrape-time gauges up to date.
    pub fn refresh_gauges(&self) {
        for pool in self.shared.runtime.load().pools.values() {
            pool.refresh_gauges();
        }
    }

    /// Stops accepting, lets requests in flight finish (up to the config's
    /// `shutdown_grace`), then returns.
    pub async fn shutdown(&self) {
        let _ = self.stop.send(true);
        let tasks = std::mem::take(&mut *self.tasks.lock());
        for task in tasks {
            let _ = task.await;
        }
        self.cert_watch.abort();
        let log = self.shared.access_log.clone();
        let traces = self.shared.traces.clone();
        let _ = tokio::task::spawn_blocking(move || {
            log.close();
            if let Some(traces) = traces {
                traces.shutdown();
            }
        })
        .await;
    }
}
