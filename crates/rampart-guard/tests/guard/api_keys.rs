use std::sync::Arc;
use std::time::{Duration, Instant};

use rampart_store::{
    ApiKeyStore, ConsumerPatch, ConsumerStatus, ConsumerStore, LocalState, SharedState,
};

use crate::support::*;

const ROUTES: &str = r#"
[[routes]]
name = "orders"
match = { path_prefix = "/orders" }
upstream = "app"
auth = { methods = ["api_key"], scopes = ["orders:read"] }
[[routes]]
name = "open"
upstream = "app"
"#;

#[tokio::test]
async fn a_valid_key_reaches_the_upstream_as_a_principal_and_others_are_refused() {
    let up = mirror().await;
    let store = store().await;
    let (consumer, key_id, secret) = key(&store, "partner", &["orders:read", "orders:write"]).await;
    let (_, _, weak_secret) = key(&store, "reader", &["profile:read"]).await;
    let setup = gateway(store, Arc::new(LocalState::default()), up, ROUTES).await;

    let none = get(setup.addr, "/orders", &[]).await;
    assert_eq!(none.status, 401);
    assert_eq!(none.headers["www-authenticate"], "Bearer realm=\"rampart\"");
    assert_eq!(none.body["type"], "urn:rampart:problem:unauthenticated");
    assert_eq!(
        get(setup.addr, "/orders", &[("x-api-key", "rk_bogus")])
            .await
            .status,
        401
    );
    let forged = format!("rk_{key_id}_{}", "0".repeat(64));
    assert_eq!(
        get(setup.addr, "/orders", &[("x-api-key", &forged)])
            .await
            .status,
        401
    );

    let ok = get(
        setup.addr,
        "/orders/1",
        &[
            ("authorization", &format!("Bearer {secret}")),
            ("x-rampart-consumer", "spoofed"),
        ],
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.body["x-rampart-consumer"], consumer.as_str());
    assert_eq!(ok.body["x-rampart-key-id"], key_id.as_str());
    assert_eq!(ok.body["x-rampart-scopes"], "orders:read orders:write");
    assert!(
        ok.body.get("authorization").is_none(),
        "the key does not travel upstream"
    );
    // The key is cached now: this one is decided without waiting, to the same effect.
    let via_header = get(setup.addr, "/orders", &[("x-api-key", &secret)]).await;
    assert_eq!(via_header.status, 200);
    assert!(via_header.body.get("x-api-key").is_none());
    assert_eq!(via_header.body["x-rampart-consumer"], consumer.as_str());
    assert_eq!(
        via_header.body["x-rampart-scopes"],
        "orders:read orders:write"
    );
    // A refused key is cached too, and still refused.
    assert_eq!(
        get(setup.addr, "/orders", &[("x-api-key", &forged)])
            .await
            .status,
        401
    );

    // Keys in the query are refused unless the route allows them.
    assert_eq!(
        get(setup.addr, &format!("/orders?api_key={secret}"), &[])
            .await
            .status,
        401
    );

    let forbidden = get(setup.addr, "/orders", &[("x-api-key", &weak_secret)]).await;
    assert_eq!(forbidden.status, 403);
    assert_eq!(forbidden.body["type"], "urn:rampart:problem:forbidden");

    // Routes without auth still strip spoofed principal headers.
    let open = get(setup.addr, "/", &[("x-rampart-consumer", "spoofed")]).await;
    assert_eq!(open.status, 200);
    assert!(open.body.get("x-rampart-consumer").is_none());

    let metrics = setup.metrics.encode_prometheus();
    assert!(
        metrics.contains("rampart_guard_denials_total{route=\"orders\",reason=\"auth_failed\"} 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("rampart_guard_denials_total{route=\"orders\",reason=\"forbidden\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_route_may_accept_keys_in_the_query_and_strips_them() {
    let up = mirror().await;
    let store = store().await;
    let (_, _, secret) = key(&store, "partner", &[]).await;
    let setup = gateway(
        store,
        Arc::new(LocalState::default()),
        up,
        r#"
[[routes]]
name = "legacy"
upstream = "app"
auth = { methods = ["api_key"], api_key_query = "api_key" }
"#,
    )
    .await;
    let ok = get(
        setup.addr,
        &format!("/items?page=2&api_key={secret}&sort=asc"),
        &[],
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.body["uri"], "/items?page=2&sort=asc");
    let only = get(setup.addr, &format!("/items?api_key={secret}"), &[]).await;
    assert_eq!(only.body["uri"], "/items");
    assert_eq!(
        get(setup.addr, "/items?api_key=rk_nope", &[]).await.status,
        401
    );
}

#[tokio::test]
async fn revocation_and_disabling_take_effect_within_a_second_even_without_an_announcement() {
    let up = mirror().await;
    let store = store().await;
    let (consumer, key_id, secret) = key(&store, "partner", &["orders:read"]).await;
    let (_, _, other_secret) = key(&store, "other", &["orders:read"]).await;
    let setup = gateway(store.clone(), Arc::new(LocalState::default()), up, ROUTES).await;
    let auth = [("x-api-key", secret.as_str())];
    assert_eq!(get(setup.addr, "/orders", &auth).await.status, 200);

    // Revoked directly in the store, as another instance would: no invalidation message.
    store.revoke_key(&key_id).await.expect("revoke");
    let revoked_at = Instant::now();
    loop {
        if get(setup.addr, "/orders", &auth).await.status == 401 {
            break;
        }
        assert!(
            revoked_at.elapsed() < Duration::from_millis(1500),
            "still accepted after the cache lifetime"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let other = [("x-api-key", other_secret.as_str())];
    assert_eq!(get(setup.addr, "/orders", &other).await.status, 200);
    let other_consumer = store
        .list_consumers(None, None, None, None)
        .await
        .expect("list")
        .items
        .into_iter()
        .find(|c| c.id != consumer)
        .expect("other consumer");
    store
        .update_consumer(
            &other_consumer.id,
            None,
            ConsumerPatch {
                status: Some(ConsumerStatus::Disabled),
                ..Default::default()
            },
        )
        .await
        .expect("disable");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        get(setup.addr, "/orders", &other).await.status,
        401,
        "a disabled consumer's keys stop working"
    );
}

#[tokio::test]
async fn an_announced_revocation_is_seen_at_once() {
    let up = mirror().await;
    let store = store().await;
    let shared: Arc<dyn SharedState> = Arc::new(LocalState::default());
    let (_, key_id, secret) = key(&store, "partner", &["orders:read"]).await;
    let setup = gateway(store.clone(), Arc::clone(&shared), up, ROUTES).await;
    let auth = [("x-api-key", secret.as_str())];
    assert_eq!(get(setup.addr, "/orders", &auth).await.status, 200);
    tokio::time::sleep(Duration::from_millis(50)).await; // the listener subscribes
    store.revoke_key(&key_id).await.expect("revoke");
    shared
        .publish(
            rampart_store::INVALIDATION_CHANNEL,
            &format!("api_key:{key_id}"),
        )
        .await
        .expect("publish");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(get(setup.addr, "/orders", &auth).await.status, 401);
}

#[tokio::test]
async fn a_store_outage_never_lets_a_key_in() {
    let up = mirror().await;
    let store = store().await;
    let (_, _, secret) = key(&store, "partner", &["orders:read"]).await;
    let setup = gateway(store.clone(), Arc::new(LocalState::default()), up, ROUTES).await;
    store.close().await;
    let answer = get(setup.addr, "/orders", &[("x-api-key", &secret)]).await;
    assert_eq!(answer.status, 503);
    assert_eq!(answer.body["type"], "urn:rampart:problem:guard-unavailable");
    assert_eq!(
        get(setup.addr, "/", &[]).await.status,
        200,
        "routes without auth keep working"
    );
}

/// The real store, counting how often it is asked.
struct CountingLookup {
    store: rampart_store::Store,
    calls: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl rampart_guard::KeyLookup for CountingLookup {
    async fn principal(
        &self,
        presented: &str,
    ) -> Result<Option<rampart_proxy::phase::Principal>, rampart_store::StoreError> {
        self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        // Long enough for every concurrent caller to arrive while it is in progress.
        tokio::time::sleep(Duration::from_millis(50)).await;
        rampart_guard::KeyLookup::principal(&self.store, presented).await
    }
}

#[tokio::test]
async fn concurrent_misses_for_one_key_share_one_store_lookup() {
    let store = store().await;
    let (consumer, _, secret) = key(&store, "partner", &["orders:read"]).await;
    let lookup = Arc::new(CountingLookup {
        store,
        calls: Default::default(),
    });
    let cache = Arc::new(rampart_guard::KeyCache::new(
        lookup.clone(),
        Duration::from_secs(60),
    ));
    let mut callers = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let (cache, secret) = (Arc::clone(&cache), secret.clone());
        callers.spawn(async move { cache.principal(&secret).await });
    }
    let mut answered = 0;
    while let Some(answer) = callers.join_next().await {
        let admitted = answer.expect("task").expect("lookup").expect("a valid key");
        assert_eq!(admitted.principal.consumer_id, consumer);
        answered += 1;
    }
    assert_eq!(answered, 50);
    assert_eq!(lookup.calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    // Served from the cache afterwards.
    assert!(cache.principal(&secret).await.expect("lookup").is_some());
    assert_eq!(lookup.calls.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_limit_keyed_on_a_principal_header_counts_each_consumer_apart() {
    // The principal's headers are set by the authentication guard; a later rate
    // limit keyed on one of them sees the value the upstream will see.
    let up = mirror().await;
    let store = store().await;
    let (_, _, first) = key(&store, "first", &[]).await;
    let (_, _, second) = key(&store, "second", &[]).await;
    let routes = r#"
[[routes]]
name = "metered"
upstream = "app"
auth = { methods = ["api_key"] }
rate_limits = [{ requests = 1, per = "1h", key = "header:x-rampart-consumer" }]
"#;
    let setup = gateway(store, Arc::new(LocalState::default()), up, routes).await;
    let status = |secret: String| async move {
        get(setup.addr, "/", &[("x-api-key", &secret)]).await.status
    };
    assert_eq!(status(first.clone()).await, 200);
    assert_eq!(
        status(first).await,
        429,
        "the first consumer's one request is spent"
    );
    assert_eq!(status(second).await, 200, "the second consumer has its own");
}

#[tokio::test]
async fn consistent_hashing_on_a_principal_header_spreads_consumers() {
    // Every request comes from one client IP: only the consumer header the
    // authentication guard set can spread them over the two targets. Each target is
    // told its own address as `Host`, which the mirror sends back.
    let (a, b) = (mirror().await, mirror().await);
    let store = store().await;
    let mut secrets = Vec::new();
    for i in 0..16 {
        secrets.push(key(&store, &format!("consumer-{i}"), &[]).await.2);
    }
    let routes = format!(
        r#"
[upstreams.pair]
targets = ["http://{a}", "http://{b}"]
balance = "consistent_hash"
hash_on = "header:x-rampart-consumer"
host_header = "target"
[[routes]]
name = "hashed"
upstream = "pair"
auth = {{ methods = ["api_key"] }}
"#
    );
    let setup = gateway(
        store,
        Arc::new(LocalState::default()),
        mirror().await,
        &routes,
    )
    .await;
    let mut seen = std::collections::BTreeSet::new();
    for secret in &secrets {
        let first = send(setup.addr, "GET", "/", &[("x-api-key", secret)], "").await;
        let again = send(setup.addr, "GET", "/", &[("x-api-key", secret)], "").await;
        assert_eq!(first.status, 200);
        let target = first.body["host"].as_str().unwrap_or_default().to_string();
        assert!(
            target == a.to_string() || target == b.to_string(),
            "{target}"
        );
        assert_eq!(
            again.body["host"],
            target.as_str(),
            "a consumer stays on its target"
        );
        seen.insert(target);
    }
    assert_eq!(
        seen.len(),
        2,
        "sixteen consumers all on one target: {seen:?}"
    );
}

#[tokio::test]
async fn a_threads_copy_of_an_answer_is_voided_by_a_clear_and_ends_with_the_answer() {
    let store = store().await;
    let (consumer, key_id, secret) = key(&store, "partner", &[]).await;
    let cache = rampart_guard::KeyCache::new(Arc::new(store.clone()), Duration::from_secs(1));
    assert!(
        cache
            .cached_now(secret.as_bytes(), Instant::now())
            .is_none(),
        "nothing cached yet"
    );
    assert!(cache.principal(&secret).await.expect("lookup").is_some());
    // The first answer at hand is copied to this thread; the second comes from the copy.
    for _ in 0..2 {
        let answer = cache
            .cached_now(secret.as_bytes(), Instant::now())
            .expect("cached");
        assert_eq!(answer.expect("admitted").principal.consumer_id, consumer);
    }

    // Revoked in the store: the cached answer stands until a clear or its expiry.
    store.revoke_key(&key_id).await.expect("revoke");
    assert!(matches!(
        cache.cached_now(secret.as_bytes(), Instant::now()),
        Some(Some(_))
    ));
    cache.clear();
    assert!(
        cache
            .cached_now(secret.as_bytes(), Instant::now())
            .is_none(),
        "a clear voids the thread's copy"
    );
    assert!(cache.principal(&secret).await.expect("lookup").is_none());
    assert!(matches!(
        cache.cached_now(secret.as_bytes(), Instant::now()),
        Some(None)
    ));

    // A copy lives no longer than the answer it was copied from.
    let (_, _, other) = key(&store, "other", &[]).await;
    assert!(cache.principal(&other).await.expect("lookup").is_some());
    let copied_at = Instant::now();
    assert!(matches!(
        cache.cached_now(other.as_bytes(), copied_at),
        Some(Some(_))
    ));
    assert!(
        cache
            .cached_now(other.as_bytes(), copied_at + Duration::from_millis(1100))
            .is_none(),
        "not trusted past the answer's expiry"
    );
    tokio::time::sleep(Duration::from_millis(1050)).await;
    assert!(
        cache.cached_now(other.as_bytes(), Instant::now()).is_none(),
        "expired with the shared answer"
    );
}

#[tokio::test]
async fn caches_on_one_thread_keep_their_answers_apart() {
    let known = store().await;
    let (_, _, secret) = key(&known, "partner", &[]).await;
    let knows = rampart_guard::KeyCache::new(Arc::new(known), Duration::from_secs(60));
    let unaware = rampart_guard::KeyCache::new(Arc::new(store().await), Duration::from_secs(60));
    assert!(knows.principal(&secret).await.expect("lookup").is_some());
    assert!(unaware.principal(&secret).await.expect("lookup").is_none());
    for _ in 0..2 {
        assert!(matches!(
            knows.cached_now(secret.as_bytes(), Instant::now()),
            Some(Some(_))
        ));
        assert!(matches!(
            unaware.cached_now(secret.as_bytes(), Instant::now()),
            Some(None)
        ));
    }
}

#[tokio::test]
async fn a_presented_value_that_is_not_text_is_refused_as_no_key() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let up = mirror().await;
    let store = store().await;
    let (_, _, secret) = key(&store, "partner", &["orders:read"]).await;
    let setup = gateway(store, Arc::new(LocalState::default()), up, ROUTES).await;
    // Raw bytes (obs-text, a control character): no HTTP client library sends these.
    let mut with_tab = secret.clone().into_bytes();
    with_tab.insert(10, b'\t');
    for value in [b"rk_\xff\xfe".to_vec(), with_tab, secret.into_bytes()] {
        let mut request =
            b"GET /orders HTTP/1.1\r\nhost: guard.test\r\nconnection: close\r\nx-api-key: "
                .to_vec();
        request.extend_from_slice(&value);
        request.extend_from_slice(b"\r\n\r\n");
        let mut conn = tokio::net::TcpStream::connect(setup.addr)
            .await
            .expect("connect");
        conn.write_all(&request).await.expect("send");
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut answer))
            .await
            .expect("in time")
            .expect("read");
        let status = String::from_utf8_lossy(&answer[..answer.len().min(12)]).into_owned();
        let expected = if value.is_ascii() && !value.contains(&b'\t') {
            "HTTP/1.1 200"
        } else {
            "HTTP/1.1 401"
        };
        assert_eq!(status, expected, "{}", String::from_utf8_lossy(&answer));
    }
}

#[tokio::test]
async fn no_credential_field_travels_upstream_whichever_carried_the_key() {
    let up = mirror().await;
    let store = store().await;
    let (_, _, secret) = key(&store, "partner", &["orders:read"]).await;
    let setup = gateway(store, Arc::new(LocalState::default()), up, ROUTES).await;
    let bearer = format!("Bearer {secret}");
    // Twice each: the first through the store, the second from the cache.
    for _ in 0..2 {
        for headers in [
            vec![
                ("authorization", bearer.as_str()),
                ("x-api-key", "rk_other"),
            ],
            vec![
                ("authorization", "Basic dXNlcjpwYXNz"),
                ("x-api-key", secret.as_str()),
            ],
            vec![("x-api-key", secret.as_str())],
        ] {
            let answer = get(setup.addr, "/orders", &headers).await;
            assert_eq!(answer.status, 200, "{headers:?}: {}", answer.body);
            for field in ["authorization", "x-api-key"] {
                assert!(
                    answer.body.get(field).is_none(),
                    "{field} forwarded: {headers:?}"
                );
            }
        }
    }
    // A field too long to be a key is no key, and is not forwarded either.
    let long = format!("rk_{}", "a".repeat(300));
    assert_eq!(
        get(setup.addr, "/orders", &[("x-api-key", &long)])
            .await
            .status,
        401
    );
}
