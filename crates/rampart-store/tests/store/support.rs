//! Fresh stores for each test: a temporary SQLite file, or a new Postgres schema.

use rampart_store::Store;

pub async fn sqlite() -> Store {
    let dir = tempfile::Builder::new()
        .prefix("rampart-store-")
        .tempdir()
        .expect("temp dir")
        .keep();
    Store::open_sqlite(&dir).await.expect("sqlite store")
}

/// A store in a fresh schema of the test database, or `None` (with a message) when
/// RAMPART_TEST_DATABASE_URL is not set.
pub async fn postgres() -> Option<Store> {
    let Ok(url) = std::env::var("RAMPART_TEST_DATABASE_URL") else {
        eprintln!("SKIPPED (Postgres): RAMPART_TEST_DATABASE_URL is not set");
        return None;
    };
    let schema = format!("rampart_test_{}", unique_suffix().replace('-', "_"));
    sqlx::any::install_default_drivers();
    let admin = sqlx::AnyPool::connect(&url)
        .await
        .expect("connect to the test database");
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&admin)
        .await
        .expect("create schema");
    admin.close().await;
    let separator = if url.contains('?') { '&' } else { '?' };
    let scoped = format!("{url}{separator}options=-c%20search_path%3D{schema}");
    Some(Store::open_postgres(&scoped).await.expect("postgres store"))
}

/// A suffix no other call in this process returns, for names in shared services
/// (schemas, Redis keys) that must not meet another test's or another run's.
pub fn unique_suffix() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}-{nanos}-{n}", std::process::id())
}

/// Runs an async test body against both backends.
#[macro_export]
macro_rules! both_backends {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                super::$name($crate::support::sqlite().await).await;
            }

            #[tokio::test]
            async fn postgres() {
                if let Some(store) = $crate::support::postgres().await {
                    super::$name(store).await;
                }
            }
        }
    };
}
