//! Rampart's data plane: listeners, TLS, routing, upstream pools, the phase
//! pipeline and forwarding with resilience.
//!
//! The request path is a sequence of named phases (see [`phase`]):
//! accept → route → guards → upstream select → forward → response filters → log.

mod body;
pub mod canonical;
mod clock;
mod echo;
mod error;
mod forward;
mod gateway;
mod grpc;
pub mod h1;
pub mod headers;
mod listener;
pub mod phase;
mod pool;
mod runtime;
mod service;
mod tcp;
mod tls;

pub use body::{collect_limited, empty, full, BoxError, CollectError, ProxyBody};
pub use error::{problem_response, ErrorKind, Malformation, ProxyError, Side};
pub use gateway::{Gateway, Readiness, ReloadError, StartError};
pub use tls::TlsError;
