//! Guards on a real gateway, with a real SQLite store, real upstreams and (when
//! RAMPART_TEST_REDIS_URL is set) a real Redis.

mod support;

mod api_keys;
mod browser;
mod grpc;
mod honeypots;
mod idempotency;
mod jwt;
mod quotas;
mod rate_limits;
mod request_rules;
mod waf;
