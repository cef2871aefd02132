use rampart_store::{AdminTokenStore, AuditEvent, AuditSink, AuditStore, Role, Store, StoreError};

use crate::both_backends;

async fn admin_tokens_verify_by_role_and_revoke(store: Store) {
    assert_eq!(store.active_admin_token_count().await.expect("count"), 0);
    let (token, secret) = store
        .create_token("bootstrap", Role::Admin)
        .await
        .expect("create");
    assert!(secret.starts_with("rat_"));
    assert_eq!(
        store
            .verify_token(&secret)
            .await
            .expect("verify")
            .map(|t| t.role),
        Some(Role::Admin)
    );
    assert_eq!(store.active_admin_token_count().await.expect("count"), 1);
    // The last admin token cannot be revoked, whatever other tokens exist.
    let (operator, _) = store
        .create_token("ops", Role::Operator)
        .await
        .expect("create");
    assert!(matches!(
        store.revoke_token(&token.id).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(store.verify_token(&secret).await.expect("verify").is_some());
    store
        .revoke_token(&operator.id)
        .await
        .expect("an operator token");
    let (second, second_secret) = store
        .create_token("second", Role::Admin)
        .await
        .expect("create");
    store.revoke_token(&token.id).await.expect("revoke");
    assert!(store.verify_token(&secret).await.expect("verify").is_none());
    assert_eq!(store.active_admin_token_count().await.expect("count"), 1);
    assert!(matches!(
        store.revoke_token(&second.id).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(store
        .verify_token(&second_secret)
        .await
        .expect("verify")
        .is_some());
    // Revoking a revoked token changes nothing and is no conflict.
    assert!(store
        .revoke_token(&token.id)
        .await
        .expect("again")
        .revoked_at
        .is_some());
    assert!(matches!(
        store.revoke_token("nope").await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(store.list_tokens().await.expect("list").len(), 3);
}
both_backends!(admin_tokens_verify_by_role_and_revoke);

async fn audit_events_are_kept_in_order(store: Store) {
    for i in 0..3 {
        store
            .record(&AuditEvent {
                time: 1000 + i,
                actor: "token:x".into(),
                action: "consumer.create".into(),
                resource: format!("consumer:{i}"),
                outcome: "success".into(),
                summary: serde_json::json!({ "after": { "name": i } }),
                request_id: Some("r".into()),
                source_ip: Some("127.0.0.1".into()),
            })
            .await
            .expect("record");
    }
    let page = store.audit_events(None, Some(2)).await.expect("read");
    assert_eq!(page.items.len(), 2);
    assert_eq!(page.items[0].event.resource, "consumer:0");
    let rest = store
        .audit_events(
            page.next_cursor.as_deref().and_then(|c| c.parse().ok()),
            None,
        )
        .await
        .expect("read");
    assert_eq!(rest.items.len(), 1);
    assert_eq!(rest.items[0].event.summary["after"]["name"], 2);
}
both_backends!(audit_events_are_kept_in_order);
