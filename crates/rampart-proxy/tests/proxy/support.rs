//! Shared helpers: real upstream servers, a gateway on an ephemeral port, a client.

#![allow(dead_code)]

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rampart_proxy::Gateway;
use rampart_telemetry::Metrics;
use tokio::net::TcpListener;

/// A real HTTP server on 127.0.0.1 (HTTP/1.1 and h2c), counting its requests.
pub struct TestUpstream {
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl TestUpstream {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for TestUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub type Reply = Response<Full<Bytes>>;

pub fn reply(status: u16, body: impl Into<Bytes>) -> Reply {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = StatusCode::from_u16(status).expect("status");
    r
}

/// Starts an upstream answering with `handler`.
pub async fn upstream<F, Fut>(handler: F) -> TestUpstream
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Reply> + Send + 'static,
{
    upstream_on(
        TcpListener::bind("127.0.0.1:0").await.expect("bind"),
        handler,
    )
}

pub fn upstream_on<F, Fut>(listener: TcpListener, handler: F) -> TestUpstream
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Reply> + Send + 'static,
{
    let addr = listener.local_addr().expect("addr");
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&hits);
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let handler = handler.clone();
            let counter = Arc::clone(&counter);
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    let fut = handler(req);
                    async move { Ok::<_, Infallible>(fut.await) }
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection_with_upgrades(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    TestUpstream { addr, hits, task }
}

/// An upstream answering 200 with a fixed body.
pub async fn fixed(body: &'static str) -> TestUpstream {
    upstream(move |_req| async move { reply(200, body) }).await
}

/// Compiles `body` (listener and access log are added) and starts a gateway.
pub async fn gateway(body: &str) -> (Gateway, SocketAddr) {
    let source = format!(
        "log = {{ access_log = \"off\" }}\nlisteners = [{{ name = \"public\", address = \"127.0.0.1:0\" }}]\n{body}"
    );
    gateway_from(&source).await
}

pub async fn gateway_from(source: &str) -> (Gateway, SocketAddr) {
    let config =
        rampart_config::compile_str(source, Path::new(".")).unwrap_or_else(|e| panic!("{e}"));
    let gateway = Gateway::start(config, Arc::new(Metrics::new()))
        .await
        .expect("start");
    let addr = gateway.local_addr("public").expect("public listener");
    (gateway, addr)
}

pub fn compile(body: &str) -> rampart_config::Config {
    let source = format!(
        "log = {{ access_log = \"off\" }}\nlisteners = [{{ name = \"public\", address = \"127.0.0.1:0\" }}]\n{body}"
    );
    rampart_config::compile_str(&source, Path::new(".")).unwrap_or_else(|e| panic!("{e}"))
}

pub type TestClient = Client<HttpConnector, Full<Bytes>>;

pub fn client() -> TestClient {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

pub fn h2c_client() -> TestClient {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build(HttpConnector::new())
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub async fn send(client: &TestClient, request: Request<Full<Bytes>>) -> Answer {
    let response = tokio::time::timeout(Duration::from_secs(20), client.request(request))
        .await
        .expect("answer in time")
        .expect("response");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

pub fn request(method: &str, url: String) -> http::request::Builder {
    Request::builder().method(method).uri(url)
}

pub async fn get(addr: SocketAddr, path: &str) -> Answer {
    send(
        &client(),
        request("GET", format!("http://{addr}{path}"))
            .body(Full::default())
            .expect("request"),
    )
    .await
}

/// Sends raw bytes and returns what the server wrote back until it closed or paused.
pub async fn raw(addr: SocketAddr, bytes: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let _ = stream.write_all(bytes).await;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_millis(500), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Polls `check` until it holds or `within` passes.
pub async fn eventually(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    check()
}
