//! Daily and monthly quotas per consumer, counted in the store.

use std::sync::Arc;

use rampart_store::{
    ConsumerPatch, ConsumerPlan, ConsumerStore, LocalState, QuotaPeriod, UsageStore,
};

use crate::support::*;

const ROUTES: &str = r#"
[[routes]]
name = "metered"
upstream = "app"
auth = { methods = ["api_key"] }
quota = { daily = 3, monthly = 100 }
"#;

#[tokio::test]
async fn budgets_are_enforced_per_consumer_persisted_and_survive_a_restart() {
    let up = mirror().await;
    let store = store().await;
    let (a_id, _, a) = key(&store, "quota-a", &[]).await;
    let (b_id, _, b) = key(&store, "quota-b", &[]).await;
    // b's plan has a larger daily budget.
    store
        .update_consumer(
            &b_id,
            None,
            ConsumerPatch {
                plan: Some(Some(ConsumerPlan {
                    daily_quota: Some(5),
                    ..Default::default()
                })),
                ..Default::default()
            },
        )
        .await
        .expect("plan");
    let setup = gateway(store.clone(), Arc::new(LocalState::default()), up, ROUTES).await;
    let statuses = |secret: String, n: usize| {
        let addr = setup.addr;
        async move {
            let mut out = Vec::new();
            for _ in 0..n {
                out.push(get(addr, "/", &[("x-api-key", &secret)]).await.status);
            }
            out
        }
    };
    assert_eq!(statuses(a.clone(), 4).await, [200, 200, 200, 429]);
    assert_eq!(statuses(b.clone(), 6).await, [200, 200, 200, 200, 200, 429]);
    let refused = get(setup.addr, "/", &[("x-api-key", &a)]).await;
    assert_eq!(refused.body["type"], "urn:rampart:problem:quota-exceeded");
    let now = rampart_store::now_ms() / 1000;
    let retry: i64 = refused.headers["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    let until_midnight = QuotaPeriod::Day.seconds_left(now);
    assert!(
        (until_midnight - 5..=until_midnight + 5).contains(&retry),
        "{retry} vs {until_midnight}"
    );
    let metrics = setup.metrics.encode_prometheus();
    assert!(
        metrics
            .contains("rampart_guard_denials_total{route=\"metered\",reason=\"quota_exceeded\"} 3"),
        "{metrics}"
    );

    // The counts reach the store (refused requests are not counted).
    setup.guards.flush_usage().await.expect("flush");
    let day = QuotaPeriod::Day.key(now);
    let month = QuotaPeriod::Month.key(now);
    assert_eq!(store.usage(&a_id, &day).await.expect("usage"), 3);
    assert_eq!(store.usage(&b_id, &day).await.expect("usage"), 5);
    assert_eq!(store.usage(&b_id, &month).await.expect("usage"), 5);

    // A restarted gateway on the same store still refuses a.
    drop(setup);
    let again = gateway(store.clone(), Arc::new(LocalState::default()), up, ROUTES).await;
    assert_eq!(get(again.addr, "/", &[("x-api-key", &a)]).await.status, 429);
    // Usage written by another instance is seen within the sync interval.
    let (c_id, _, c) = key(&store, "quota-c", &[]).await;
    assert_eq!(get(again.addr, "/", &[("x-api-key", &c)]).await.status, 200);
    store.add_usage(&c_id, &day, 2).await.expect("add");
    tokio::time::sleep(rampart_guard::USAGE_SYNC_INTERVAL * 2).await;
    assert_eq!(get(again.addr, "/", &[("x-api-key", &c)]).await.status, 429);
}

#[tokio::test]
async fn requests_a_rate_limit_refuses_do_not_spend_the_budget() {
    let up = mirror().await;
    let store = store().await;
    let (id, _, secret) = key(&store, "quota-limited", &[]).await;
    let routes = r#"
[[routes]]
name = "metered"
upstream = "app"
auth = { methods = ["api_key"] }
quota = { daily = 3 }
rate_limits = [{ requests = 1, per = "1s", key = "consumer" }]
"#;
    let setup = gateway(store.clone(), Arc::new(LocalState::default()), up, routes).await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(get(setup.addr, "/", &[("x-api-key", &secret)]).await.status);
    }
    assert_eq!(statuses, [200, 429, 429, 429, 429]);
    let refused = get(setup.addr, "/", &[("x-api-key", &secret)]).await;
    assert_eq!(refused.body["type"], "urn:rampart:problem:rate-limited");
    setup.guards.flush_usage().await.expect("flush");
    let day = QuotaPeriod::Day.key(rampart_store::now_ms() / 1000);
    assert_eq!(
        store.usage(&id, &day).await.expect("usage"),
        1,
        "only the admitted request is counted"
    );
}
