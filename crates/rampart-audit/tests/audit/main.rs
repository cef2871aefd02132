//! The audit log on real files: RFC 6962 vectors, proofs at random sizes, recovery
//! after kill -9, tamper detection, repair and key rotation.

mod support;

mod crash;
mod log;
mod proofs;
mod shared;
mod vectors;
