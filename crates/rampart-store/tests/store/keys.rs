use rampart_store::{ApiKeyStore, ConsumerStore, NewApiKey, NewConsumer, Store, StoreError};

use crate::both_backends;

async fn consumer(store: &Store) -> String {
    store
        .create_consumer(NewConsumer {
            name: "partner".into(),
            ..Default::default()
        })
        .await
        .expect("consumer")
        .id
}

async fn keys_are_shown_once_verified_and_revoked(store: Store) {
    let owner = consumer(&store).await;
    let (key, secret) = store
        .create_key(NewApiKey {
            consumer_id: owner.clone(),
            name: Some("ci".into()),
            scopes: vec!["orders:read".into()],
            expires_at: None,
        })
        .await
        .expect("create");
    assert!(secret.starts_with(&format!("rk_{}_", key.id)));
    let verified = store
        .verify_key(&secret)
        .await
        .expect("verify")
        .expect("valid");
    assert_eq!(verified.scopes, ["orders:read"]);
    assert!(store
        .key(&key.id)
        .await
        .expect("read")
        .last_used_at
        .is_some());
    // A wrong secret with the right id, garbage, and another kind of secret all fail.
    let forged = format!("rk_{}_{}", key.id, "0".repeat(64));
    assert!(store.verify_key(&forged).await.expect("verify").is_none());
    assert!(store.verify_key("garbage").await.expect("verify").is_none());
    store.revoke_key(&key.id).await.expect("revoke");
    assert!(store.verify_key(&secret).await.expect("verify").is_none());
    let listed = store.list_keys(&owner, None, None).await.expect("list");
    assert_eq!(listed.items.len(), 1);
    assert!(listed.items[0].revoked_at.is_some());
}
both_backends!(keys_are_shown_once_verified_and_revoked);

async fn keys_need_an_existing_consumer(store: Store) {
    let missing = store
        .create_key(NewApiKey {
            consumer_id: "ghost".into(),
            ..Default::default()
        })
        .await;
    assert!(matches!(missing, Err(StoreError::NotFound(_))));
}
both_backends!(keys_need_an_existing_consumer);

async fn rotation_keeps_both_keys_working_during_the_overlap(store: Store) {
    let owner = consumer(&store).await;
    let (old, old_secret) = store
        .create_key(NewApiKey {
            consumer_id: owner,
            scopes: vec!["a".into()],
            ..Default::default()
        })
        .await
        .expect("create");
    let (new, new_secret) = store.rotate_key(&old.id, 60_000).await.expect("rotate");
    assert_eq!(new.scopes, ["a"]);
    assert!(
        store
            .verify_key(&old_secret)
            .await
            .expect("verify")
            .is_some(),
        "old key in its overlap"
    );
    assert!(store
        .verify_key(&new_secret)
        .await
        .expect("verify")
        .is_some());
    assert_eq!(
        store
            .key(&old.id)
            .await
            .expect("read")
            .replaced_by
            .as_deref(),
        Some(new.id.as_str())
    );
    assert!(
        matches!(
            store.rotate_key(&old.id, 0).await,
            Err(StoreError::Invalid(_))
        ),
        "rotated once only"
    );

    let (_, short_secret) = store
        .rotate_key(&new.id, 0)
        .await
        .expect("rotate with no overlap");
    assert!(
        store
            .verify_key(&new_secret)
            .await
            .expect("verify")
            .is_none(),
        "no overlap: expired at once"
    );
    assert!(store
        .verify_key(&short_secret)
        .await
        .expect("verify")
        .is_some());
}
both_backends!(rotation_keeps_both_keys_working_during_the_overlap);
