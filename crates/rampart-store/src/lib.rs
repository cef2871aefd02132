//! Rampart's store: the living data operators change while the gateway runs —
//! consumers and their plans, API keys, admin tokens, quota usage — and the audit
//! events of every change.
//!
//! SQLite in the data dir by default (WAL mode), Postgres when a database URL is set.
//! Both run the same SQL through sqlx's `Any` driver (only the migrations differ), so
//! there is one implementation of each concern and one test suite for both backends.
//! Only this crate writes SQL.

mod audit;
mod audit_log;
mod consumers;
mod error;
mod keys;
mod secret;
mod shared;
mod tokens;
mod usage;

use std::path::Path;
use std::time::Duration;

use sqlx::any::{install_default_drivers, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

pub use audit::{AuditEvent, AuditSink, AuditStore, StoredAuditEvent};
pub use audit_log::{AuditLogStore, StoredEntry};
pub use consumers::{
    Consumer, ConsumerPatch, ConsumerPlan, ConsumerStatus, ConsumerStore, NewConsumer,
    PlanRateLimit,
};
pub use error::StoreError;
pub use keys::{ApiKey, ApiKeyStore, NewApiKey};
pub use secret::{Secret, SecretKind};
pub use shared::{Flag, FlagList, LocalState, RateDecision, RateSpec, RedisState, SharedState};
pub use tokens::{AdminToken, AdminTokenStore, Role};
pub use usage::{QuotaPeriod, UsageStore};

/// The shared-state channel on which credential changes are announced, so that every
/// instance drops its cached credentials at once.
pub const INVALIDATION_CHANNEL: &str = "invalidate";

/// The shared-state flag key of a client ban is this prefix and the client's IP
/// address (`ban:203.0.113.7`); a lifted ban is announced on [`INVALIDATION_CHANNEL`]
/// with the same key, so that every instance forgets its cached answer.
pub const BAN_PREFIX: &str = "ban:";

/// Which database backs the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The embedded default.
    Sqlite,
    /// Shared by several instances.
    Postgres,
}

/// A page of results and the cursor for the next one.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Most items one page returns.
pub const MAX_PAGE: u32 = 200;

/// The store: a connection pool and its backend.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

impl Store {
    /// Opens (creating if needed) `<data_dir>/rampart.db` and applies migrations.
    pub async fn open_sqlite(data_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            StoreError::Unavailable(format!("cannot create {}: {e}", data_dir.display()))
        })?;
        let path = data_dir.join("rampart.db");
        let url = format!("sqlite://{}?mode=rwc", path.display());
        install_default_drivers();
        let pool = AnyPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(5))
            .after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    conn.execute("PRAGMA busy_timeout = 5000").await?;
                    conn.execute("PRAGMA foreign_keys = ON").await?;
                    conn.execute("PRAGMA synchronous = NORMAL").await?;
                    Ok(())
                })
            })
            .connect(&url)
            .await?;
        SQLITE_MIGRATIONS
            .run(&pool)
            .await
            .map_err(|e| StoreError::Migration(e.to_string()))?;
        Ok(Self {
            pool,
            backend: Backend::Sqlite,
        })
    }

    /// Connects to Postgres at `url` and applies migrations (safe to run from several
    /// instances at once: sqlx takes an advisory lock).
    pub async fn open_postgres(url: &str) -> Result<Self, StoreError> {
        install_default_drivers();
        let pool = AnyPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(5))
            .connect(url)
            .await?;
        POSTGRES_MIGRATIONS
            .run(&pool)
            .await
            .map_err(|e| StoreError::Migration(e.to_string()))?;
        Ok(Self {
            pool,
            backend: Backend::Postgres,
        })
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Closes every connection; later calls fail as unavailable.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A new id that sorts by creation time: 16 hex digits of milliseconds and a
/// per-process sequence (strictly increasing within a process), then 6 random hex
/// digits so that instances sharing a database never collide.
pub(crate) fn new_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST: AtomicU64 = AtomicU64::new(0);
    let floor = (now_ms().max(0) as u64) << 16;
    let mut last = LAST.load(Ordering::Relaxed);
    let next = loop {
        let candidate = floor.max(last + 1);
        match LAST.compare_exchange_weak(last, candidate, Ordering::AcqRel, Ordering::Relaxed) {
            Ok(_) => break candidate,
            Err(seen) => last = seen,
        }
    };
    format!("{next:016x}{:06x}", rand::random::<u32>() & 0xff_ffff)
}

/// Clamps a requested page size.
pub(crate) fn page_limit(limit: Option<u32>) -> i64 {
    i64::from(limit.unwrap_or(50).clamp(1, MAX_PAGE))
}

/// Splits `limit + 1` fetched rows into a page.
pub(crate) fn into_page<T>(mut rows: Vec<T>, limit: i64, id: impl Fn(&T) -> String) -> Page<T> {
    let next_cursor = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(id)
    } else {
        None
    };
    Page {
        items: rows,
        next_cursor,
    }
}
