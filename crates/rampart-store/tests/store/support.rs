//! Fresh stores for each test: a temporary SQLite file, or a new Postgres schema.

use rampart_store::Store;

pub async fn sqlite() -> Store {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("rampart-store-{}-{nanos}", std::process::id()));
    Store::open_sqlite(&dir).await.expect("sqlite store")
}

/// A store in a fresh schema of the test database, or `None` (with a message) when
/// RAMPART_TEST_DATABASE_URL is not set.
pub async fn postgres() -> Option<Store> {
    let Ok(url) = std::env::var("RAMPART_TEST_DATABASE_URL") else {
        eprintln!("SKIPPED (Postgres): RAMPART_TEST_DATABASE_URL is not set");
        return None;
    };
    let schema = format!("rampart_test_{}_{}", std::process::id(), rand_suffix());
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

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0)
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
