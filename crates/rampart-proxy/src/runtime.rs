//! The compiled runtime of one config: routes with their phases, and pools.
//! Swapped atomically on reload; requests keep the runtime they started with.

use std::collections::BTreeMap;
use std::sync::Arc;

use http::{HeaderMap, Method};
use rampart_config::{Config, RequestNormalization, Route};
use rampart_resilience::Bulkhead;
use rampart_telemetry::Metrics;

use crate::phase::{
    Exchange, FaultGuard, Guard, GuardFactory, ResponseFilter, ResponseHeaders, RouteBulkheadGuard,
};
use crate::pool::Pool;

/// One route with its compiled phases.
pub struct RouteRuntime {
    /// The route's config.
    pub config: Route,
    /// The pool serving it.
    pub pool: Arc<Pool>,
    /// The fallback pool while the breaker is open, if any.
    pub fallback_pool: Option<Arc<Pool>>,
    /// Guards, in order.
    pub guards: Vec<Box<dyn Guard>>,
    /// The phases wrapped around forwarding, outermost first.
    pub exchanges: Vec<Box<dyn Exchange>>,
    /// Response filters, in order.
    pub response_filters: Vec<Box<dyn ResponseFilter>>,
    /// This route's request metrics.
    pub metrics: rampart_telemetry::RouteMetrics,
}

/// Everything compiled from one config.
pub struct Runtime {
    /// The config.
    pub config: Arc<Config>,
    /// Routes, most specific first.
    pub routes: Vec<Arc<RouteRuntime>>,
    /// Pools by upstream name.
    pub pools: BTreeMap<String, Arc<Pool>>,
}

impl Runtime {
    /// Builds a runtime; pools whose config did not change are carried over from
    /// `previous` with their health, breaker and connections.
    pub fn build(
        config: Arc<Config>,
        previous: Option<&Runtime>,
        metrics: &Arc<Metrics>,
        factory: &dyn GuardFactory,
    ) -> Self {
        let pools: BTreeMap<String, Arc<Pool>> = config
            .upstreams
            .iter()
            .map(|(name, upstream)| {
                let reused = previous
                    .and_then(|p| p.pools.get(name))
                    .filter(|p| *p.config == **upstream)
                    .cloned();
                let pool = reused.unwrap_or_else(|| {
                    let pool = Arc::new(Pool::new(Arc::clone(upstream), Arc::clone(metrics)));
                    pool.start_health_checks();
                    pool
                });
                (name.clone(), pool)
            })
            .collect();
        let routes = config
            .routes
            .iter()
            .filter_map(|route| {
                // The compile step guarantees the pool exists.
                let pool = pools.get(&route.upstream)?.clone();
                let fallback_pool = match &route.fallback {
                    Some(rampart_config::Fallback::Upstream(name)) => pools.get(name).cloned(),
                    _ => None,
                };
                let mut guards: Vec<Box<dyn Guard>> = Vec::new();
                if let Some(fault) = &route.fault {
                    guards.push(Box::new(FaultGuard(fault.clone())));
                }
                if let Some(max) = route.max_concurrent_requests {
                    guards.push(Box::new(RouteBulkheadGuard {
                        route: route.name.clone(),
                        bulkhead: Arc::new(Bulkhead::new(max)),
                        metrics: Arc::clone(metrics),
                    }));
                }
                guards.extend(factory.guards(&config, route));
                let mut response_filters: Vec<Box<dyn ResponseFilter>> = Vec::new();
                response_filters.extend(factory.response_filters(&config, route));
                if !route.response_headers.is_empty() {
                    response_filters
                        .push(Box::new(ResponseHeaders(route.response_headers.clone())));
                }
                Some(Arc::new(RouteRuntime {
                    config: route.clone(),
                    pool,
                    fallback_pool,
                    guards,
                    exchanges: factory.exchanges(&config, route),
                    response_filters,
                    metrics: rampart_telemetry::RouteMetrics::new(&route.name),
                }))
            })
            .collect();
        Self {
            config,
            routes,
            pools,
        }
    }

    /// How requests arriving on `listener` are made canonical (the defaults for a
    /// listener this config no longer has).
    pub fn normalization(&self, listener: &str) -> &RequestNormalization {
        self.config
            .listeners
            .iter()
            .find(|l| l.name == listener)
            .map_or(&RequestNormalization::DEFAULT, |l| &l.requests)
    }

    /// The most specific route for a request, if any, with its index in `routes`.
    pub fn select(
        &self,
        listener: &str,
        host: &str,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
    ) -> Option<(usize, &RouteRuntime)> {
        let found = self.routes.iter().enumerate().find(|(_, r)| {
            let c = &r.config;
            let m = &c.matcher;
            c.listeners
                .as_ref()
                .is_none_or(|ls| ls.iter().any(|l| l == listener))
                && (m.hosts.is_empty() || m.hosts.iter().any(|h| h.matches(host)))
                && (m.methods.is_empty() || m.methods.contains(method))
                && m.path.matches(path, m.path_ignore_case)
                && m.headers
                    .iter()
                    .all(|(name, value)| headers.get_all(name).iter().any(|v| v == value))
        });
        found.map(|(index, route)| (index, &**route))
    }
}
