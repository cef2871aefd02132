//! Idempotency keys: replay, conflicts, key reuse, and concurrent duplicates (also
//! across two gateways sharing Redis).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rampart_store::{LocalState, RedisState, SharedState};

use crate::support::*;

/// An upstream that takes 300 ms per request and answers 201 with how many requests it
/// has processed.
async fn slow_counter() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let processed = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&processed);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let count = Arc::clone(&count);
            tokio::spawn(async move {
                let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let count = Arc::clone(&count);
                    async move {
                        let body = req
                            .into_body()
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        let n = count.fetch_add(1, Ordering::SeqCst) + 1;
                        let mut response = http::Response::new(Full::new(Bytes::from(
                            serde_json::json!({ "order": n, "received": body.len() }).to_string(),
                        )));
                        *response.status_mut() = http::StatusCode::CREATED;
                        response
                            .headers_mut()
                            .insert("x-order", http::HeaderValue::from(n));
                        Ok::<_, Infallible>(response)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, processed)
}

async fn post(addr: SocketAddr, key: Option<&str>, body: &str) -> Answer {
    let headers: Vec<(&str, &str)> = key.map(|k| ("idempotency-key", k)).into_iter().collect();
    send(addr, "POST", "/orders", &headers, body).await
}

const ROUTES: &str = r#"
[[routes]]
name = "orders"
match = { path = "/orders" }
upstream = "app"
idempotency = { max_body_bytes = 1024 }
[[routes]]
name = "strict"
match = { path = "/strict" }
upstream = "app"
idempotency = { required = true }
[[routes]]
name = "broken"
match = { path = "/broken" }
upstream = "dead"
idempotency = {}
[upstreams.dead]
targets = ["http://127.0.0.1:1"]
"#;

#[tokio::test]
async fn the_first_response_is_replayed_and_a_reused_key_refused() {
    let (up, processed) = slow_counter().await;
    let setup = gateway(store().await, Arc::new(LocalState::default()), up, ROUTES).await;
    let first = post(setup.addr, Some("k-1"), r#"{"amount":10}"#).await;
    assert_eq!(first.status, 201);
    assert_eq!(first.body["order"], 1);
    assert!(!first.headers.contains_key("idempotency-replayed"));
    // The record is written when the body has gone out; give it a moment.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let again = post(setup.addr, Some("k-1"), r#"{"amount":10}"#).await;
    assert_eq!(again.status, 201);
    assert_eq!(again.body, first.body);
    assert_eq!(again.headers["x-order"], "1");
    assert_eq!(again.headers["idempotency-replayed"], "true");
    assert_eq!(processed.load(Ordering::SeqCst), 1);
    // The same key with another body is a client error, not a new order.
    let reused = post(setup.addr, Some("k-1"), r#"{"amount":99}"#).await;
    assert_eq!(reused.status, 422);
    assert_eq!(
        reused.body["type"],
        "urn:rampart:problem:idempotency-key-reused"
    );
    // Without a key the route works as usual; a body over the limit is refused.
    assert_eq!(post(setup.addr, None, "{}").await.body["order"], 2);
    let big = "x".repeat(2048);
    assert_eq!(post(setup.addr, Some("k-2"), &big).await.status, 413);
    assert_eq!(processed.load(Ordering::SeqCst), 2);
    // Keys are bounded.
    let long = "k".repeat(300);
    let invalid = post(setup.addr, Some(&long), "{}").await;
    assert_eq!(invalid.status, 400);
    assert_eq!(
        invalid.body["type"],
        "urn:rampart:problem:idempotency-key-invalid"
    );
    // A route that requires a key refuses requests without one.
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let strict = client
        .request(
            http::Request::post(format!("http://{}/strict", setup.addr))
                .body(Full::new(Bytes::from_static(b"{}")))
                .expect("request"),
        )
        .await
        .expect("response");
    assert_eq!(strict.status(), 400);
    let strict: serde_json::Value =
        serde_json::from_slice(&strict.into_body().collect().await.expect("body").to_bytes())
            .expect("problem+json");
    assert_eq!(
        strict["type"],
        "urn:rampart:problem:idempotency-key-missing"
    );
    assert_eq!(strict["title"], "This request requires an idempotency key");
    // When Rampart answers itself (no upstream), the key stays free for a retry.
    for _ in 0..2 {
        let response = client
            .request(
                http::Request::post(format!("http://{}/broken", setup.addr))
                    .header("idempotency-key", "k-3")
                    .body(Full::new(Bytes::from_static(b"{}")))
                    .expect("request"),
            )
            .await
            .expect("response");
        assert_eq!(response.status(), 502);
    }
}

/// Concurrent duplicates: one is processed, the others get 409 while it runs.
async fn concurrent_duplicates(gateways: &[SocketAddr], processed: &AtomicUsize) {
    let before = processed.load(Ordering::SeqCst);
    let tasks: Vec<_> = (0..6)
        .map(|i| {
            let addr = gateways[i % gateways.len()];
            tokio::spawn(async move { post(addr, Some("dup-1"), r#"{"amount":5}"#).await.status })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.expect("join"));
    }
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 409, 409, 409, 409, 409]);
    assert_eq!(processed.load(Ordering::SeqCst), before + 1);
    // Afterwards every instance replays the one response.
    tokio::time::sleep(Duration::from_millis(50)).await;
    for addr in gateways {
        let replay = post(*addr, Some("dup-1"), r#"{"amount":5}"#).await;
        assert_eq!(replay.status, 201);
        assert_eq!(replay.headers["idempotency-replayed"], "true");
    }
    assert_eq!(processed.load(Ordering::SeqCst), before + 1);
}

#[tokio::test]
async fn concurrent_duplicates_on_one_gateway() {
    let (up, processed) = slow_counter().await;
    let setup = gateway(store().await, Arc::new(LocalState::default()), up, ROUTES).await;
    concurrent_duplicates(&[setup.addr], &processed).await;
}

#[tokio::test]
async fn concurrent_duplicates_across_gateways_sharing_redis() {
    let Ok(url) = std::env::var("RAMPART_TEST_REDIS_URL") else {
        eprintln!("SKIPPED (Redis): RAMPART_TEST_REDIS_URL is not set");
        return;
    };
    let prefix = format!("rampart-idem-test:{}:", unique_suffix());
    let (up, processed) = slow_counter().await;
    let mut setups = Vec::new();
    for _ in 0..2 {
        let shared: Arc<dyn SharedState> = RedisState::connect(&url, &prefix).await.expect("redis");
        setups.push(gateway(store().await, shared, up, ROUTES).await);
    }
    let addrs: Vec<SocketAddr> = setups.iter().map(|s| s.addr).collect();
    concurrent_duplicates(&addrs, &processed).await;
}
