use rampart_store::{
    ConsumerPatch, ConsumerPlan, ConsumerStatus, ConsumerStore, NewConsumer, PlanRateLimit,
    QuotaPeriod, Store, StoreError, UsageStore,
};

use crate::both_backends;

fn named(name: &str) -> NewConsumer {
    NewConsumer {
        name: name.into(),
        tenant: Some("acme".into()),
        metadata: serde_json::json!({ "plan": "gold" }),
        plan: None,
    }
}

async fn create_read_and_conflict(store: Store) {
    let c = store
        .create_consumer(named("billing"))
        .await
        .expect("create");
    assert_eq!(c.name, "billing");
    assert_eq!(c.status, ConsumerStatus::Active);
    assert_eq!(c.version, 1);
    assert_eq!(c.metadata["plan"], "gold");
    assert_eq!(store.consumer(&c.id).await.expect("read"), c);
    assert_eq!(store.consumer_by_name("billing").await.expect("by name"), c);
    assert!(matches!(
        store.consumer_by_name("Billing").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.create_consumer(named("billing")).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.consumer("nope").await,
        Err(StoreError::NotFound(_))
    ));
}
both_backends!(create_read_and_conflict);

async fn list_pages_and_filters(store: Store) {
    for i in 0..5 {
        let mut c = named(&format!("c{i}"));
        if i % 2 == 1 {
            c.tenant = Some("other".into());
        }
        store.create_consumer(c).await.expect("create");
    }
    let first = store
        .list_consumers(None, None, None, Some(2))
        .await
        .expect("page 1");
    assert_eq!(
        first
            .items
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>(),
        ["c0", "c1"]
    );
    let second = store
        .list_consumers(None, None, first.next_cursor.as_deref(), Some(2))
        .await
        .expect("page 2");
    assert_eq!(
        second
            .items
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>(),
        ["c2", "c3"]
    );
    let last = store
        .list_consumers(None, None, second.next_cursor.as_deref(), Some(2))
        .await
        .expect("page 3");
    assert_eq!(last.items.len(), 1);
    assert!(last.next_cursor.is_none());
    let other = store
        .list_consumers(Some("other"), None, None, None)
        .await
        .expect("filter");
    assert_eq!(other.items.len(), 2);
}
both_backends!(list_pages_and_filters);

async fn updates_check_the_version(store: Store) {
    let c = store.create_consumer(named("api")).await.expect("create");
    let disabled = store
        .update_consumer(
            &c.id,
            Some(1),
            ConsumerPatch {
                status: Some(ConsumerStatus::Disabled),
                ..Default::default()
            },
        )
        .await
        .expect("update");
    assert_eq!(disabled.status, ConsumerStatus::Disabled);
    assert_eq!(disabled.version, 2);
    let stale = store
        .update_consumer(
            &c.id,
            Some(1),
            ConsumerPatch {
                name: Some("x".into()),
                ..Default::default()
            },
        )
        .await;
    assert!(matches!(stale, Err(StoreError::VersionMismatch)));
    assert_eq!(
        store.consumer(&c.id).await.expect("read").name,
        "api",
        "nothing half-written"
    );
    let disabled_only = store
        .list_consumers(None, Some(ConsumerStatus::Disabled), None, None)
        .await
        .expect("list");
    assert_eq!(disabled_only.items.len(), 1);
}
both_backends!(updates_check_the_version);

async fn concurrent_updates_with_the_same_version_let_one_win(store: Store) {
    let c = store.create_consumer(named("race")).await.expect("create");
    let attempts: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            let id = c.id.clone();
            tokio::spawn(async move {
                store
                    .update_consumer(
                        &id,
                        Some(1),
                        ConsumerPatch {
                            tenant: Some(Some(format!("t{i}"))),
                            ..Default::default()
                        },
                    )
                    .await
            })
        })
        .collect();
    let mut won = 0;
    for a in attempts {
        match a.await.expect("join") {
            Ok(_) => won += 1,
            Err(StoreError::VersionMismatch) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(won, 1);
    assert_eq!(store.consumer(&c.id).await.expect("read").version, 2);
}
both_backends!(concurrent_updates_with_the_same_version_let_one_win);

async fn plans_are_kept_validated_and_cleared(store: Store) {
    let plan = ConsumerPlan {
        rate_limit: Some(PlanRateLimit {
            requests: 100,
            per_seconds: 60,
            burst: None,
        }),
        daily_quota: Some(1000),
        monthly_quota: None,
    };
    let mut new = named("planned");
    new.plan = Some(plan);
    let c = store.create_consumer(new).await.expect("create");
    assert_eq!(store.consumer(&c.id).await.expect("read").plan, Some(plan));
    let bad = ConsumerPlan {
        daily_quota: Some(0),
        ..plan
    };
    let refused = store
        .update_consumer(
            &c.id,
            None,
            ConsumerPatch {
                plan: Some(Some(bad)),
                ..Default::default()
            },
        )
        .await;
    assert!(
        matches!(refused, Err(StoreError::Invalid(_))),
        "{refused:?}"
    );
    let cleared = store
        .update_consumer(
            &c.id,
            None,
            ConsumerPatch {
                plan: Some(None),
                ..Default::default()
            },
        )
        .await
        .expect("clear");
    assert_eq!(cleared.plan, None);
}
both_backends!(plans_are_kept_validated_and_cleared);

async fn usage_accumulates_per_consumer_and_period(store: Store) {
    let a = store.create_consumer(named("usage-a")).await.expect("a");
    let b = store.create_consumer(named("usage-b")).await.expect("b");
    let day = QuotaPeriod::Day.key(1_795_460_400);
    assert_eq!(store.usage(&a.id, &day).await.expect("usage"), 0);
    assert_eq!(store.add_usage(&a.id, &day, 3).await.expect("add"), 3);
    // Concurrent additions are all counted.
    let adds = (0..10).map(|_| store.add_usage(&a.id, &day, 2));
    for result in futures_util::future::join_all(adds).await {
        result.expect("add");
    }
    assert_eq!(store.usage(&a.id, &day).await.expect("usage"), 23);
    assert_eq!(store.usage(&b.id, &day).await.expect("usage"), 0);
    assert_eq!(store.usage(&a.id, "d:2000-01-01").await.expect("usage"), 0);
}
both_backends!(usage_accumulates_per_consumer_and_period);

async fn delete_takes_keys_and_usage_with_it(store: Store) {
    use rampart_store::{ApiKeyStore, NewApiKey};
    let c = store
        .create_consumer(named("leaving"))
        .await
        .expect("create");
    let (key, secret) = store
        .create_key(NewApiKey {
            consumer_id: c.id.clone(),
            ..Default::default()
        })
        .await
        .expect("key");
    assert!(store.verify_key(&secret).await.expect("verify").is_some());
    store
        .add_usage(&c.id, "d:2026-01-01", 3)
        .await
        .expect("usage");
    assert!(matches!(
        store.delete_consumer(&c.id, Some(c.version + 1)).await,
        Err(StoreError::VersionMismatch)
    ));
    let (before, keys) = store
        .delete_consumer(&c.id, Some(c.version))
        .await
        .expect("delete");
    assert_eq!(before, c);
    assert_eq!(keys, 1);
    assert!(matches!(
        store.consumer(&c.id).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.key(&key.id).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(store.verify_key(&secret).await.expect("verify").is_none());
    assert!(matches!(
        store.delete_consumer(&c.id, None).await,
        Err(StoreError::NotFound(_))
    ));
    // Counts flushed after the deletion are dropped, not an error retried forever.
    assert_eq!(
        store
            .add_usage(&c.id, "d:2026-01-01", 1)
            .await
            .expect("usage"),
        0
    );
    assert_eq!(store.usage(&c.id, "d:2026-01-01").await.expect("usage"), 0);
    // The name is free again.
    store
        .create_consumer(named("leaving"))
        .await
        .expect("again");
}
both_backends!(delete_takes_keys_and_usage_with_it);
