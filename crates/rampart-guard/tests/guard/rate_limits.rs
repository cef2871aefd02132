use std::sync::Arc;

use rampart_store::{
    ConsumerPatch, ConsumerPlan, ConsumerStore, LocalState, PlanRateLimit, RedisState, SharedState,
};

use crate::support::*;

#[tokio::test]
async fn limits_answer_429_with_retry_after_and_ratelimit_headers() {
    let up = mirror().await;
    let setup = gateway(
        store().await,
        Arc::new(LocalState::default()),
        up,
        r#"
[[routes]]
name = "quiet"
match = { path = "/quiet" }
upstream = "app"
rate_limits = [{ requests = 1, per = "10s" }]
[[routes]]
name = "limited"
upstream = "app"
rate_limit_headers = true
rate_limits = [{ requests = 3, per = "10s", burst = 3 }, { requests = 100, per = "1h" }]
"#,
    )
    .await;
    for remaining in [2, 1, 0] {
        let ok = get(setup.addr, "/", &[]).await;
        assert_eq!(ok.status, 200);
        assert_eq!(ok.headers["ratelimit-policy"], "\"default\";q=3;w=10");
        assert_eq!(
            ok.headers["ratelimit"]
                .to_str()
                .expect("ascii")
                .split(';')
                .nth(1),
            Some(format!("r={remaining}").as_str())
        );
    }
    let limited = get(setup.addr, "/", &[]).await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.body["type"], "urn:rampart:problem:rate-limited");
    let retry: u64 = limited.headers["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=4).contains(&retry), "{retry}");
    assert!(limited.headers.contains_key("ratelimit"));
    // Without `rate_limit_headers`, only the 429 carries them.
    let quiet = get(setup.addr, "/quiet", &[]).await;
    assert_eq!(quiet.status, 200);
    assert!(
        !quiet.headers.contains_key("ratelimit"),
        "{:?}",
        quiet.headers
    );
    let quiet = get(setup.addr, "/quiet", &[]).await;
    assert_eq!(quiet.status, 429);
    assert_eq!(quiet.headers["ratelimit-policy"], "\"default\";q=1;w=10");
    let metrics = setup.metrics.encode_prometheus();
    assert!(
        metrics
            .contains("rampart_guard_denials_total{route=\"limited\",reason=\"rate_limited\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn consumer_limits_count_each_consumer_separately() {
    let up = mirror().await;
    let store = store().await;
    let (_, _, a) = key(&store, "a", &[]).await;
    let (b_id, _, b) = key(&store, "b", &[]).await;
    // b's plan allows 3 per minute instead of the route's 2.
    store
        .update_consumer(
            &b_id,
            None,
            ConsumerPatch {
                plan: Some(Some(ConsumerPlan {
                    rate_limit: Some(PlanRateLimit {
                        requests: 3,
                        per_seconds: 60,
                        burst: None,
                    }),
                    ..Default::default()
                })),
                ..Default::default()
            },
        )
        .await
        .expect("plan");
    let setup = gateway(
        store,
        Arc::new(LocalState::default()),
        up,
        r#"
[[routes]]
name = "api"
upstream = "app"
auth = { methods = ["api_key"] }
rate_limits = [{ requests = 2, per = "1m", key = "consumer" }]
"#,
    )
    .await;
    let mut seen = Vec::new();
    for secret in [&a, &a, &a, &b, &b, &b, &b] {
        seen.push(get(setup.addr, "/", &[("x-api-key", secret)]).await.status);
    }
    assert_eq!(seen, [200, 200, 429, 200, 200, 200, 429]);
}

/// Two gateways sharing Redis enforce one limit; with Redis gone, `on_error = "open"`
/// falls back to a local limit and `"closed"` refuses with 503; both recover by themselves.
#[tokio::test]
async fn a_redis_limit_is_shared_and_survives_redis_going_away() {
    let Ok(url) = std::env::var("RAMPART_TEST_REDIS_URL") else {
        eprintln!("SKIPPED (Redis): RAMPART_TEST_REDIS_URL is not set");
        return;
    };
    // A relay in front of Redis that the test can cut and restore.
    let target = url
        .trim_start_matches("redis://")
        .trim_end_matches('/')
        .to_string();
    let relay = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let relay_addr = relay.local_addr().expect("addr");
    let relay_task = tokio::spawn(relay_to(relay, target.clone()));
    let prefix = format!(
        "rampart-guard-test:{}:{}:",
        std::process::id(),
        relay_addr.port()
    );
    let redis_a: Arc<dyn SharedState> =
        RedisState::connect(&format!("redis://{relay_addr}"), &prefix)
            .await
            .expect("redis");
    let redis_b: Arc<dyn SharedState> = RedisState::connect(&url, &prefix).await.expect("redis");
    let routes = r#"
[[routes]]
name = "open"
match = { path = "/open" }
upstream = "app"
rate_limits = [{ requests = 5, per = "1m", key = "route", on_error = "open" }]
[[routes]]
name = "closed"
match = { path = "/closed" }
upstream = "app"
rate_limits = [{ requests = 5, per = "1m", key = "route", on_error = "closed" }]
"#;
    let up = mirror().await;
    let a = gateway(store().await, redis_a, up, routes).await;
    let b = gateway(store().await, redis_b, up, routes).await;
    // One shared budget of 5 across both gateways.
    let mut allowed = 0;
    for i in 0..10 {
        let addr = if i % 2 == 0 { a.addr } else { b.addr };
        if get(addr, "/open", &[]).await.status == 200 {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 5);

    // Cut gateway A's Redis: fail-open enforces a local limit, fail-closed refuses.
    relay_task.abort();
    let _ = relay_task.await;
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let open: Vec<u16> = futures_statuses(a.addr, "/open", 7).await;
    assert_eq!(
        open.iter().filter(|s| **s == 200).count(),
        5,
        "a local limit of 5 meanwhile: {open:?}"
    );
    assert_eq!(open.iter().filter(|s| **s == 429).count(), 2, "{open:?}");
    let closed = get(a.addr, "/closed", &[]).await;
    assert_eq!(closed.status, 503);
    assert_eq!(closed.body["type"], "urn:rampart:problem:guard-unavailable");
    let metrics = a.metrics.encode_prometheus();
    assert!(
        metrics
            .contains("rampart_guard_backend_errors_total{route=\"open\",reason=\"rate_limiter\"}"),
        "{metrics}"
    );
    // Gateway B still has Redis.
    assert_eq!(get(b.addr, "/closed", &[]).await.status, 200);

    // Redis comes back: gateway A recovers by itself.
    let relay = tokio::net::TcpListener::bind(relay_addr)
        .await
        .expect("rebind the relay");
    let _relay_task = tokio::spawn(relay_to(relay, target));
    let started = std::time::Instant::now();
    loop {
        if get(a.addr, "/closed", &[]).await.status == 200 {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "A never recovered"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Three gateways sharing Redis hold one global limit within 1%.
#[tokio::test]
async fn three_gateways_hold_one_global_limit() {
    let Ok(url) = std::env::var("RAMPART_TEST_REDIS_URL") else {
        eprintln!("SKIPPED (Redis): RAMPART_TEST_REDIS_URL is not set");
        return;
    };
    let prefix = format!("rampart-guard-test:{}:", unique_suffix());
    let routes = r#"
[[routes]]
name = "global"
upstream = "app"
rate_limits = [{ requests = 500, per = "1h", key = "route" }]
"#;
    let up = mirror().await;
    let mut gateways = Vec::new();
    for _ in 0..3 {
        let shared: Arc<dyn SharedState> = RedisState::connect(&url, &prefix).await.expect("redis");
        gateways.push(gateway(store().await, shared, up, routes).await);
    }
    // 1,200 requests, 400 per gateway, 16 at a time per gateway.
    let mut tasks = Vec::new();
    for g in &gateways {
        for _ in 0..16 {
            let addr = g.addr;
            tasks.push(tokio::spawn(async move {
                let mut allowed = 0u32;
                for _ in 0..25 {
                    if get(addr, "/", &[]).await.status == 200 {
                        allowed += 1;
                    }
                }
                allowed
            }));
        }
    }
    let mut allowed = 0;
    for task in tasks {
        allowed += task.await.expect("join");
    }
    // The budget refills 500 per hour (one per 7.2 s): the run may earn a few more.
    assert!(
        (495..=505).contains(&allowed),
        "{allowed} allowed across three gateways; the limit is 500"
    );
    let per_gateway: Vec<u32> = gateways
        .iter()
        .map(|g| {
            let text = g.metrics.encode_prometheus();
            text.lines()
                .find(|l| {
                    l.starts_with(
                        "rampart_guard_denials_total{route=\"global\",reason=\"rate_limited\"}",
                    )
                })
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|n| n.parse::<f64>().ok())
                .map_or(0, |n| n as u32)
        })
        .collect();
    assert_eq!(
        per_gateway.iter().sum::<u32>(),
        1200 - allowed,
        "{per_gateway:?}"
    );
}

/// Relays connections to `target` until aborted (aborting drops every relayed connection).
async fn relay_to(listener: tokio::net::TcpListener, target: String) {
    let mut connections = tokio::task::JoinSet::new();
    while let Ok((mut inbound, _)) = listener.accept().await {
        let target = target.clone();
        connections.spawn(async move {
            if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            }
        });
    }
}

async fn futures_statuses(addr: std::net::SocketAddr, path: &str, n: usize) -> Vec<u16> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(get(addr, path, &[]).await.status);
    }
    out
}

#[tokio::test]
async fn client_ip_limits_key_the_peer_or_the_client_trusted_proxies_name() {
    let up = mirror().await;
    let limiter = Arc::new(LocalState::default());
    let setup = gateway_with(
        store().await,
        Arc::clone(&limiter) as Arc<dyn SharedState>,
        up,
        r#"server = { trusted_proxies = ["127.0.0.0/8"] }"#,
        r#"
[[routes]]
name = "limited"
upstream = "app"
rate_limits = [{ requests = 1, per = "10s" }]
"#,
    )
    .await;
    let forwarded = |ip: &'static str| [("x-forwarded-for", ip)];
    assert_eq!(
        get(setup.addr, "/", &forwarded("203.0.113.7")).await.status,
        200
    );
    assert_eq!(
        get(setup.addr, "/", &forwarded("203.0.113.7")).await.status,
        429
    );
    assert_eq!(
        get(setup.addr, "/", &forwarded("203.0.113.8")).await.status,
        200
    );
    // The peer itself (no forwarding field) has a budget of its own.
    assert_eq!(get(setup.addr, "/", &[]).await.status, 200);
    assert_eq!(get(setup.addr, "/", &[]).await.status, 429);
    // The limiter keys carry the client's address in its usual text form.
    let spec = rampart_store::RateSpec::new(1, std::time::Duration::from_secs(10), 1);
    let now = std::time::Instant::now();
    for key in [
        "limited:0:ip:127.0.0.1",
        "limited:0:ip:203.0.113.7",
        "limited:0:ip:203.0.113.8",
    ] {
        let decision = limiter
            .rate_limit_now(key, &spec, 1, now)
            .expect("in-process");
        assert!(!decision.allowed, "{key} should have no budget left");
    }
    let unused = limiter.rate_limit_now("limited:0:ip:203.0.113.9", &spec, 1, now);
    assert!(unused.expect("in-process").allowed);
}
