use std::sync::Arc;

use rampart_store::LocalState;

use crate::support::*;

const ROUTES: &str = r#"
[[routes]]
name = "web"
upstream = "app"
security_headers = { csp = "default-src 'self'" }
cors = { allow_origins = ["https://app.example.com"], allow_methods = ["GET", "PUT"], allow_headers = ["content-type", "x-api-key"], expose_headers = ["x-request-id"], max_age = "5m" }
"#;

#[tokio::test]
async fn security_headers_are_added() {
    let up = mirror().await;
    let setup = gateway(store().await, Arc::new(LocalState::default()), up, ROUTES).await;
    let answer = get(setup.addr, "/", &[]).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.headers["x-content-type-options"], "nosniff");
    assert_eq!(answer.headers["x-frame-options"], "DENY");
    assert_eq!(
        answer.headers["content-security-policy"],
        "default-src 'self'; frame-ancestors 'none'"
    );
    assert_eq!(answer.headers["referrer-policy"], "no-referrer");
    assert!(
        !answer.headers.contains_key("strict-transport-security"),
        "HSTS is for HTTPS only"
    );
}

#[tokio::test]
async fn cors_preflights_are_answered_and_origins_checked() {
    let up = mirror().await;
    let setup = gateway(store().await, Arc::new(LocalState::default()), up, ROUTES).await;
    let client: hyper_util::client::legacy::Client<_, http_body_util::Full<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let preflight = |origin: &'static str, method: &'static str, headers: &'static str| {
        let client = client.clone();
        let addr = setup.addr;
        async move {
            let request = http::Request::builder()
                .method("OPTIONS")
                .uri(format!("http://{addr}/items"))
                .header("origin", origin)
                .header("access-control-request-method", method)
                .header("access-control-request-headers", headers)
                .body(http_body_util::Full::default())
                .expect("request");
            client.request(request).await.expect("response")
        }
    };
    let ok = preflight("https://app.example.com", "PUT", "Content-Type, X-API-Key").await;
    assert_eq!(ok.status(), 204);
    let h = ok.headers();
    assert_eq!(h["access-control-allow-origin"], "https://app.example.com");
    assert_eq!(h["access-control-allow-methods"], "GET, PUT");
    assert_eq!(h["access-control-allow-headers"], "content-type, x-api-key");
    assert_eq!(h["access-control-max-age"], "300");
    let refused = preflight("https://evil.example", "PUT", "").await;
    assert_eq!(refused.status(), 403);
    let refused: serde_json::Value = serde_json::from_slice(
        &http_body_util::BodyExt::collect(refused.into_body())
            .await
            .expect("body")
            .to_bytes(),
    )
    .expect("problem+json");
    assert_eq!(refused["type"], "urn:rampart:problem:cors-refused");
    assert_eq!(
        preflight("https://app.example.com", "DELETE", "")
            .await
            .status(),
        403
    );
    assert_eq!(
        preflight("https://app.example.com", "GET", "x-secret")
            .await
            .status(),
        403
    );

    let actual = get(
        setup.addr,
        "/items",
        &[("origin", "https://app.example.com")],
    )
    .await;
    assert_eq!(actual.status, 200);
    assert_eq!(
        actual.headers["access-control-allow-origin"],
        "https://app.example.com"
    );
    assert_eq!(
        actual.headers["access-control-expose-headers"],
        "x-request-id"
    );
    assert_eq!(actual.headers["vary"], "Origin");
    let foreign = get(setup.addr, "/items", &[("origin", "https://evil.example")]).await;
    assert!(!foreign.headers.contains_key("access-control-allow-origin"));
}
