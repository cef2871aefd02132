#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rampart_guard::Guards;
use rampart_proxy::Gateway;
use rampart_store::{ApiKeyStore, ConsumerStore, NewApiKey, NewConsumer, SharedState, Store};
use rampart_telemetry::Metrics;

/// An upstream answering with the request headers it received, as JSON.
pub async fn mirror() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = service_fn(|req: http::Request<hyper::body::Incoming>| async move {
                    let mut map = serde_json::Map::new();
                    map.insert("uri".into(), req.uri().to_string().into());
                    for (k, v) in req.headers() {
                        map.insert(k.to_string(), v.to_str().unwrap_or("").into());
                    }
                    let mut response = http::Response::new(Full::new(Bytes::from(
                        serde_json::Value::Object(map).to_string(),
                    )));
                    response.headers_mut().insert(
                        http::header::CONTENT_TYPE,
                        http::HeaderValue::from_static("application/json"),
                    );
                    Ok::<_, Infallible>(response)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

pub struct Setup {
    pub gateway: Gateway,
    pub addr: SocketAddr,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub guards: Arc<Guards>,
}

pub async fn store() -> Store {
    Store::open_sqlite(&temp_dir("guard")).await.expect("store")
}

/// A new empty directory of its own under the system's temporary directory (kept after
/// the test, for a look at what it left).
pub fn temp_dir(name: &str) -> std::path::PathBuf {
    tempfile::Builder::new()
        .prefix(&format!("rampart-{name}-"))
        .tempdir()
        .expect("temp dir")
        .keep()
}

/// A suffix no other call in this process returns, for names in shared services
/// (Redis keys) that must not meet another test's or another run's.
pub fn unique_suffix() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}-{nanos}-{n}", std::process::id())
}

/// A gateway whose routes are `routes` (TOML), in front of `upstream`.
pub async fn gateway(
    store: Store,
    shared: Arc<dyn SharedState>,
    upstream: SocketAddr,
    routes: &str,
) -> Setup {
    gateway_with(store, shared, upstream, "", routes).await
}

/// Like [`gateway`], with top-level settings `top` (written before any table).
pub async fn gateway_with(
    store: Store,
    shared: Arc<dyn SharedState>,
    upstream: SocketAddr,
    top: &str,
    routes: &str,
) -> Setup {
    let source = format!(
        "log = {{ access_log = \"off\" }}\n{top}\nlisteners = [{{ name = \"public\", address = \"127.0.0.1:0\" }}]\n\
         [upstreams.app]\ntargets = [\"http://{upstream}\"]\n{routes}"
    );
    let config =
        rampart_config::compile_str(&source, Path::new(".")).unwrap_or_else(|e| panic!("{e}"));
    let metrics = Arc::new(Metrics::new());
    let guards = Arc::new(
        Guards::new(store.clone(), shared, Arc::clone(&metrics))
            .expect("guards")
            .with_audit(Arc::new(store.clone())),
    );
    let gateway = Gateway::start_with(config, Arc::clone(&metrics), Arc::clone(&guards) as _)
        .await
        .expect("gateway");
    let addr = gateway.local_addr("public").expect("addr");
    Setup {
        gateway,
        addr,
        store,
        metrics,
        guards,
    }
}

/// A consumer with one key carrying `scopes`; returns (consumer id, key id, secret).
pub async fn key(store: &Store, name: &str, scopes: &[&str]) -> (String, String, String) {
    let consumer = store
        .create_consumer(NewConsumer {
            name: name.into(),
            ..Default::default()
        })
        .await
        .expect("consumer");
    let (key, secret) = store
        .create_key(NewApiKey {
            consumer_id: consumer.id.clone(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        })
        .await
        .expect("key");
    (consumer.id, key.id, secret)
}

pub struct Answer {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: serde_json::Value,
}

pub async fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Answer {
    send(addr, "GET", path, headers, "").await
}

/// Sends one request and reads the whole answer (JSON bodies parsed, others `Null`).
pub async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Answer {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let mut request = http::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = tokio::time::timeout(
        Duration::from_secs(10),
        client.request(
            request
                .body(Full::new(Bytes::from(body.to_string())))
                .expect("request"),
        ),
    )
    .await
    .expect("in time")
    .expect("response");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    Answer {
        status,
        headers,
        body: serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    }
}
