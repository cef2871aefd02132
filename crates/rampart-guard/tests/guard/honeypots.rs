use std::sync::Arc;

use rampart_store::{AuditStore, LocalState, RedisState, SharedState};

use crate::support::*;

const TOP: &str = r#"honeypots = { paths = ["/wp-admin", "/.env"], ban_for = "1h" }"#;
const ROUTES: &str = r#"
[[routes]]
name = "site"
upstream = "app"
"#;

#[tokio::test]
async fn a_honeypot_hit_bans_the_client_everywhere_and_is_audited() {
    let up = mirror().await;
    let store = store().await;
    let setup = gateway_with(
        store.clone(),
        Arc::new(LocalState::default()),
        up,
        TOP,
        ROUTES,
    )
    .await;
    assert_eq!(get(setup.addr, "/", &[]).await.status, 200);
    assert_eq!(
        get(setup.addr, "/wp-administrator", &[]).await.status,
        200,
        "prefixes match on segment boundaries"
    );
    let hit = get(setup.addr, "/.env", &[]).await;
    assert_eq!(hit.status, 403);
    assert_eq!(hit.body["type"], "urn:rampart:problem:banned");
    let again = get(setup.addr, "/", &[]).await;
    assert_eq!(again.status, 403, "banned from every path");
    assert_eq!(again.body["type"], "urn:rampart:problem:banned");
    assert_eq!(again.body["title"], "This client is temporarily banned");
    let events = store.audit_events(None, None).await.expect("audit");
    let ban = &events.items[0].event;
    assert_eq!(ban.action, "client.ban");
    assert_eq!(ban.resource, "ip:127.0.0.1");
    assert_eq!(ban.summary["path"], "/.env");
    let metrics = setup.metrics.encode_prometheus();
    assert!(
        metrics.contains("rampart_guard_denials_total{route=\"site\",reason=\"honeypot\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("rampart_guard_denials_total{route=\"site\",reason=\"banned\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_ban_is_shared_through_redis() {
    let Ok(url) = std::env::var("RAMPART_TEST_REDIS_URL") else {
        eprintln!("SKIPPED (Redis): RAMPART_TEST_REDIS_URL is not set");
        return;
    };
    let prefix = format!("rampart-ban-test:{}:", unique_suffix());
    let up = mirror().await;
    let a: Arc<dyn SharedState> = RedisState::connect(&url, &prefix).await.expect("redis");
    let b: Arc<dyn SharedState> = RedisState::connect(&url, &prefix).await.expect("redis");
    let first = gateway_with(store().await, a, up, TOP, ROUTES).await;
    let second = gateway_with(store().await, b, up, TOP, ROUTES).await;
    assert_eq!(get(second.addr, "/", &[]).await.status, 200);
    assert_eq!(
        get(first.addr, "/wp-admin/setup.php", &[]).await.status,
        403
    );
    // The second instance's cached "not banned" lasts at most a second.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(get(second.addr, "/", &[]).await.status, 403);
}

#[tokio::test]
async fn a_lifted_ban_ends_at_once_on_every_instance() {
    let Ok(url) = std::env::var("RAMPART_TEST_REDIS_URL") else {
        eprintln!("SKIPPED (Redis): RAMPART_TEST_REDIS_URL is not set");
        return;
    };
    let prefix = format!("rampart-unban-test:{}:", unique_suffix());
    let up = mirror().await;
    let a: Arc<dyn SharedState> = RedisState::connect(&url, &prefix).await.expect("redis");
    let b: Arc<dyn SharedState> = RedisState::connect(&url, &prefix).await.expect("redis");
    let first = gateway_with(store().await, Arc::clone(&a), up, TOP, ROUTES).await;
    let second = gateway_with(store().await, b, up, TOP, ROUTES).await;
    assert_eq!(get(first.addr, "/.env", &[]).await.status, 403);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    // Both instances now hold "banned" in their caches for a second.
    assert_eq!(get(first.addr, "/", &[]).await.status, 403);
    assert_eq!(get(second.addr, "/", &[]).await.status, 403);
    let lifted_at = std::time::Instant::now();
    assert!(a.clear_flag("ban:127.0.0.1").await.expect("clear"));
    a.publish(rampart_store::INVALIDATION_CHANNEL, "ban:127.0.0.1")
        .await
        .expect("publish");
    for setup in [&first, &second] {
        loop {
            if get(setup.addr, "/", &[]).await.status == 200 {
                break;
            }
            assert!(
                lifted_at.elapsed() < std::time::Duration::from_millis(700),
                "the cached ban outlived the announcement"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}
