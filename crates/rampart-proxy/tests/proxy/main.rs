//! Integration tests of the data plane on real listeners and real upstream servers.

mod support;

mod canonical;
mod edge;
mod grpc;
mod headers;
mod http1;
mod lifecycle;
mod protocols;
mod resilience;
mod routing;
mod stalls;
mod tracing;
mod upstream_tls;
