//! One suite, run against SQLite and against Postgres (when RAMPART_TEST_DATABASE_URL is set).

mod support;

mod consumers;
mod keys;
mod shared_state;
mod tokens_and_audit;
