use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rampart_store::LocalState;

use crate::support::*;

async fn send(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    body: Vec<u8>,
) -> (u16, http::HeaderMap) {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let request = http::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"))
        .body(Full::new(Bytes::from(body)))
        .expect("request");
    let response = client.request(request).await.expect("response");
    (response.status().as_u16(), response.headers().clone())
}

#[tokio::test]
async fn method_url_header_and_body_limits() {
    let up = mirror().await;
    let setup = gateway(
        store().await,
        Arc::new(LocalState::default()),
        up,
        r#"
[[routes]]
name = "strict"
upstream = "app"
limits = { methods = ["GET", "POST"], max_url_bytes = 64, max_headers = 20, max_header_bytes = 2000, max_body_bytes = 1000 }
"#,
    )
    .await;
    assert_eq!(send(setup.addr, "GET", "/", vec![]).await.0, 200);
    let (status, headers) = send(setup.addr, "DELETE", "/", vec![]).await;
    assert_eq!(status, 405);
    assert_eq!(headers["allow"], "GET, POST");
    assert_eq!(
        send(setup.addr, "GET", &format!("/{}", "a".repeat(100)), vec![])
            .await
            .0,
        414
    );
    let many: Vec<(String, String)> = (0..30)
        .map(|i| (format!("x-h{i}"), "v".to_string()))
        .collect();
    let pairs: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(get(setup.addr, "/", &pairs).await.status, 431);
    let big = "z".repeat(3000);
    assert_eq!(get(setup.addr, "/", &[("x-big", &big)]).await.status, 431);
    assert_eq!(send(setup.addr, "POST", "/", vec![b'x'; 999]).await.0, 200);
    assert_eq!(send(setup.addr, "POST", "/", vec![b'x'; 1001]).await.0, 413);

    // A chunked body with no declared length is cut off at the limit while it streams.
    let chunks: Vec<Result<hyper::body::Frame<Bytes>, std::convert::Infallible>> = (0..20)
        .map(|_| Ok(hyper::body::Frame::data(Bytes::from(vec![b'y'; 100]))))
        .collect();
    let body = StreamBody::new(futures_util::stream::iter(chunks)).boxed();
    let client: Client<
        HttpConnector,
        http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>,
    > = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let response = client
        .request(
            http::Request::post(format!("http://{}/", setup.addr))
                .body(body)
                .expect("request"),
        )
        .await
        .expect("response");
    assert_eq!(response.status(), 413);
}

#[tokio::test]
async fn ip_rules_deny_then_allow() {
    let up = mirror().await;
    let setup = gateway(
        store().await,
        Arc::new(LocalState::default()),
        up,
        r#"
[[routes]]
name = "denied"
match = { path = "/denied" }
upstream = "app"
ip = { deny = ["127.0.0.0/8"] }
[[routes]]
name = "allowed"
match = { path = "/allowed" }
upstream = "app"
ip = { allow = ["127.0.0.1/32", "::1"] }
[[routes]]
name = "elsewhere"
match = { path = "/elsewhere" }
upstream = "app"
ip = { allow = ["10.0.0.0/8"] }
"#,
    )
    .await;
    let denied = get(setup.addr, "/denied", &[]).await;
    assert_eq!(denied.status, 403);
    assert_eq!(denied.body["type"], "urn:rampart:problem:ip-denied");
    assert_eq!(
        denied.body["title"],
        "Requests from this address are not allowed here"
    );
    assert_eq!(get(setup.addr, "/allowed", &[]).await.status, 200);
    assert_eq!(get(setup.addr, "/elsewhere", &[]).await.status, 403);
    let metrics = setup.metrics.encode_prometheus();
    assert!(
        metrics.contains("rampart_guard_denials_total{route=\"denied\",reason=\"ip_denied\"} 1"),
        "{metrics}"
    );
}

/// IP lists from files apply, follow edits within a couple of seconds, and keep the
/// previous list while a file does not parse.
#[tokio::test]
async fn ip_lists_from_files_reload_on_change() {
    let dir = temp_dir("ip-lists");
    let deny = dir.join("deny.txt");
    std::fs::write(
        &deny,
        "# scanners\n203.0.113.0/24\n127.0.0.1  # this host\n",
    )
    .expect("write");
    let up = mirror().await;
    let setup = gateway(
        store().await,
        Arc::new(LocalState::default()),
        up,
        &format!(
            r#"
[[routes]]
name = "listed"
upstream = "app"
ip = {{ deny_files = ["{}"] }}
"#,
            deny.display()
        ),
    )
    .await;
    assert_eq!(get(setup.addr, "/", &[]).await.status, 403);

    let wait_for = |want: u16| async move {
        let started = std::time::Instant::now();
        loop {
            let status = get(setup.addr, "/", &[]).await.status;
            if status == want {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(5),
                "still {status}, want {want}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    };
    std::fs::write(&deny, "203.0.113.0/24\n").expect("write");
    wait_for(200).await;
    // A broken file keeps the previous list (which lets this host in).
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    std::fs::write(&deny, "127.0.0.1\nnot-an-address\n").expect("write");
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert_eq!(get(setup.addr, "/", &[]).await.status, 200);
    std::fs::write(&deny, "::1\n127.0.0.0/8\n").expect("write");
    wait_for(403).await;
}
