use std::sync::Arc;
use std::time::Duration;

use rampart_store::{RedisState, SharedState};

async fn redis() -> Option<Arc<RedisState>> {
    let Ok(url) = std::env::var("RAMPART_TEST_REDIS_URL") else {
        eprintln!("SKIPPED (Redis): RAMPART_TEST_REDIS_URL is not set");
        return None;
    };
    let prefix = format!("rampart-test:{}:", crate::support::unique_suffix());
    Some(RedisState::connect(&url, &prefix).await.expect("redis"))
}

macro_rules! both_states {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn local() {
                super::$name(std::sync::Arc::new(rampart_store::LocalState::default())).await;
            }

            #[tokio::test]
            async fn redis() {
                if let Some(state) = super::redis().await {
                    super::$name(state).await;
                }
            }
        }
    };
}

async fn counters_add_up_and_expire<S: SharedState + 'static>(state: Arc<S>) {
    assert_eq!(
        state
            .incr("hits", 1, Duration::from_millis(300))
            .await
            .expect("incr"),
        1
    );
    assert_eq!(
        state
            .incr("hits", 4, Duration::from_secs(60))
            .await
            .expect("incr"),
        5
    );
    // Concurrent increments are all counted.
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let state = Arc::clone(&state);
            tokio::spawn(async move { state.incr("hits", 1, Duration::from_secs(60)).await })
        })
        .collect();
    for t in tasks {
        t.await.expect("join").expect("incr");
    }
    assert_eq!(
        state
            .incr("hits", 0, Duration::from_secs(60))
            .await
            .expect("read"),
        25
    );
    // The first increment's expiry holds: later ones do not extend it.
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(
        state
            .incr("hits", 1, Duration::from_secs(60))
            .await
            .expect("incr"),
        1
    );
}
both_states!(counters_add_up_and_expire);

async fn flags_are_set_and_expire<S: SharedState>(state: Arc<S>) {
    assert!(!state.flag("ban:1.2.3.4").await.expect("flag"));
    state
        .set_flag("ban:1.2.3.4", Duration::from_millis(200))
        .await
        .expect("set");
    assert!(state.flag("ban:1.2.3.4").await.expect("flag"));
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(!state.flag("ban:1.2.3.4").await.expect("flag"));
    state.ping().await.expect("ping");
}
both_states!(flags_are_set_and_expire);

async fn flags_are_listed_by_prefix_and_cleared<S: SharedState>(state: Arc<S>) {
    assert_eq!(state.flags("ban:", 10).await.expect("list").items, vec![]);
    let before = rampart_store::now_ms();
    for ip in ["10.0.0.1", "10.0.0.2", "2001:db8::1"] {
        state
            .set_flag(&format!("ban:{ip}"), Duration::from_secs(60))
            .await
            .expect("set");
    }
    state
        .set_flag("other:10.0.0.1", Duration::from_secs(60))
        .await
        .expect("set");
    state
        .incr("ban-counter", 1, Duration::from_secs(60))
        .await
        .expect("incr");
    let list = state.flags("ban:", 10).await.expect("list");
    assert!(!list.truncated);
    let mut keys: Vec<_> = list.items.iter().map(|f| f.key.clone()).collect();
    keys.sort();
    assert_eq!(keys, ["ban:10.0.0.1", "ban:10.0.0.2", "ban:2001:db8::1"]);
    for flag in &list.items {
        let expires_at = flag.expires_at.expect("expiry");
        assert!(
            expires_at >= before + 59_000 && expires_at <= rampart_store::now_ms() + 61_000,
            "{flag:?}"
        );
    }
    // Bounded: at most `limit`, and the list says so.
    let bounded = state.flags("ban:", 2).await.expect("list");
    assert_eq!(bounded.items.len(), 2);
    assert!(bounded.truncated);
    // Glob characters in a prefix are literal.
    assert!(state
        .flags("ban*", 10)
        .await
        .expect("list")
        .items
        .is_empty());
    // Clearing says whether the flag was set.
    assert!(state.clear_flag("ban:10.0.0.1").await.expect("clear"));
    assert!(!state.clear_flag("ban:10.0.0.1").await.expect("clear"));
    assert!(!state.flag("ban:10.0.0.1").await.expect("flag"));
    assert_eq!(state.flags("ban:", 10).await.expect("list").items.len(), 2);
    // An expired flag is not listed.
    state
        .set_flag("ban:10.0.0.9", Duration::from_millis(100))
        .await
        .expect("set");
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(state.flags("ban:", 10).await.expect("list").items.len(), 2);
}
both_states!(flags_are_listed_by_prefix_and_cleared);

async fn published_messages_reach_subscribers<S: SharedState>(state: Arc<S>) {
    let mut first = state.subscribe("invalidate").await.expect("subscribe");
    let mut second = state.subscribe("invalidate").await.expect("subscribe");
    // Redis subscriptions take a moment to be registered server-side.
    tokio::time::sleep(Duration::from_millis(100)).await;
    state
        .publish("invalidate", "api_key:abc")
        .await
        .expect("publish");
    for rx in [&mut first, &mut second] {
        let got = tokio::time::timeout(Duration::from_secs(2), rx.recv())
            .await
            .expect("in time")
            .expect("message");
        assert_eq!(got, "api_key:abc");
    }
}
both_states!(published_messages_reach_subscribers);

#[tokio::test]
async fn two_redis_clients_share_counters_flags_and_messages() {
    let Ok(url) = std::env::var("RAMPART_TEST_REDIS_URL") else {
        eprintln!("SKIPPED (Redis): RAMPART_TEST_REDIS_URL is not set");
        return;
    };
    let prefix = format!("rampart-test-shared:{}:", crate::support::unique_suffix());
    let a = RedisState::connect(&url, &prefix).await.expect("a");
    let b = RedisState::connect(&url, &prefix).await.expect("b");
    a.incr("n", 2, Duration::from_secs(10)).await.expect("incr");
    assert_eq!(
        b.incr("n", 3, Duration::from_secs(10)).await.expect("incr"),
        5
    );
    a.set_flag("ban", Duration::from_secs(10))
        .await
        .expect("flag");
    assert!(b.flag("ban").await.expect("flag"));
    let mut rx = b.subscribe("events").await.expect("subscribe");
    tokio::time::sleep(Duration::from_millis(100)).await;
    a.publish("events", "hello").await.expect("publish");
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(2), rx.recv())
            .await
            .expect("in time")
            .expect("msg"),
        "hello"
    );
}

#[tokio::test]
async fn an_unreachable_redis_is_a_clear_error() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let error = match RedisState::connect(&format!("redis://127.0.0.1:{port}"), "x:").await {
        Ok(_) => panic!("connected to nothing"),
        Err(e) => e.to_string(),
    };
    assert!(error.contains("unavailable"), "{error}");
}

async fn rate_limits_allow_the_burst_then_refuse<S: SharedState>(state: Arc<S>) {
    let spec = rampart_store::RateSpec::new(10, Duration::from_secs(1), 5);
    let mut allowed = 0;
    for _ in 0..8 {
        let d = state
            .rate_limit("client:1", &spec, 1)
            .await
            .expect("decision");
        if d.allowed {
            allowed += 1;
        } else {
            assert!(
                d.retry_after > Duration::ZERO && d.retry_after <= Duration::from_millis(100),
                "{d:?}"
            );
        }
    }
    assert_eq!(allowed, 5);
    // Another key has its own budget.
    assert!(
        state
            .rate_limit("client:2", &spec, 1)
            .await
            .expect("decision")
            .allowed
    );
    // After the emission interval one more conforms.
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert!(
        state
            .rate_limit("client:1", &spec, 1)
            .await
            .expect("decision")
            .allowed
    );
}
both_states!(rate_limits_allow_the_burst_then_refuse);

/// Three Redis clients (as three instances would) share one global limit: 200/s with a
/// burst of 20, hammered for 2 s, admits 20 + 400 requests give or take 1%.
#[tokio::test]
async fn three_redis_clients_hold_one_global_limit_within_one_percent() {
    let Ok(url) = std::env::var("RAMPART_TEST_REDIS_URL") else {
        eprintln!("SKIPPED (Redis): RAMPART_TEST_REDIS_URL is not set");
        return;
    };
    let prefix = format!("rampart-test-gcra:{}:", crate::support::unique_suffix());
    let spec = rampart_store::RateSpec::new(200, Duration::from_secs(1), 20);
    let mut instances = Vec::new();
    for _ in 0..3 {
        instances.push(RedisState::connect(&url, &prefix).await.expect("connect"));
    }
    let started = std::time::Instant::now();
    let run = Duration::from_secs(2);
    let workers: Vec<_> = instances
        .into_iter()
        .flat_map(|state| (0..4).map(move |_| Arc::clone(&state)))
        .map(|state| {
            tokio::spawn(async move {
                let mut allowed = 0u64;
                while started.elapsed() < run {
                    if state
                        .rate_limit("global", &spec, 1)
                        .await
                        .expect("decision")
                        .allowed
                    {
                        allowed += 1;
                    }
                }
                allowed
            })
        })
        .collect();
    let mut total = 0;
    for w in workers {
        total += w.await.expect("join");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let expected = 20.0 + 200.0 * elapsed;
    let error = (total as f64 - expected).abs() / expected;
    assert!(
        error <= 0.01,
        "admitted {total}, expected {expected:.0} ({:.2}% off)",
        error * 100.0
    );
}

async fn values_are_stored_once_read_and_removed<S: SharedState + 'static>(state: Arc<S>) {
    let ttl = Duration::from_secs(60);
    assert!(state.put("v", b"first", ttl, true).await.expect("put"));
    assert!(!state.put("v", b"second", ttl, true).await.expect("put"));
    assert_eq!(
        state.get("v").await.expect("get").as_deref(),
        Some(&b"first"[..])
    );
    assert!(state.put("v", b"third", ttl, false).await.expect("put"));
    assert_eq!(
        state.get("v").await.expect("get").as_deref(),
        Some(&b"third"[..])
    );
    state.remove("v").await.expect("remove");
    assert_eq!(state.get("v").await.expect("get"), None);
    // Of concurrent conditional puts exactly one wins.
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let state = Arc::clone(&state);
            tokio::spawn(async move { state.put("once", &[i], ttl, true).await })
        })
        .collect();
    let mut winners = 0;
    for task in tasks {
        if task.await.expect("join").expect("put") {
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
    // Values expire.
    state
        .put("short", b"x", Duration::from_millis(200), false)
        .await
        .expect("put");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(state.get("short").await.expect("get"), None);
}
both_states!(values_are_stored_once_read_and_removed);
