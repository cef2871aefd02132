//! TLS with SNI and certificate reload, HTTP/2 over TLS, h2c both ways with
//! trailers (gRPC-style), and WebSocket pass-through.

use std::convert::Infallible;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    fn new() -> Self {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).expect("ca");
        Self { cert, key }
    }

    /// Writes a leaf for `name` to `dir/<file>.pem` and `.key`; returns its DER.
    fn leaf(&self, name: &str, dir: &Path, file: &str) -> Vec<u8> {
        let key = KeyPair::generate().expect("key");
        let cert = CertificateParams::new(vec![name.to_string()])
            .expect("params")
            .signed_by(&key, &self.cert, &self.key)
            .expect("leaf");
        // Write the key first and the cert last, then rename, so a watcher never sees half a pair.
        std::fs::write(dir.join(format!("{file}.key.tmp")), key.serialize_pem()).expect("key");
        std::fs::write(dir.join(format!("{file}.pem.tmp")), cert.pem()).expect("cert");
        std::fs::rename(
            dir.join(format!("{file}.key.tmp")),
            dir.join(format!("{file}.key")),
        )
        .expect("mv");
        std::fs::rename(
            dir.join(format!("{file}.pem.tmp")),
            dir.join(format!("{file}.pem")),
        )
        .expect("mv");
        cert.der().to_vec()
    }

    fn connector(&self) -> tokio_rustls::TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.cert.der().clone()).expect("root");
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    tempfile::Builder::new()
        .prefix(&format!("rampart-{name}-"))
        .tempdir()
        .expect("temp dir")
        .keep()
}

async fn handshake(
    connector: &tokio_rustls::TlsConnector,
    addr: std::net::SocketAddr,
    sni: &str,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    connector
        .connect(ServerName::try_from(sni.to_string()).expect("name"), tcp)
        .await
        .expect("handshake")
}

fn presented(tls: &tokio_rustls::client::TlsStream<tokio::net::TcpStream>) -> Vec<u8> {
    let certs: &[CertificateDer<'_>] = tls.get_ref().1.peer_certificates().expect("certs");
    certs[0].to_vec()
}

#[tokio::test]
async fn tls_picks_certificates_by_sni_speaks_h2_and_reloads_changed_files() {
    let ca = Ca::new();
    let dir = temp_dir("tls");
    let a = ca.leaf("a.test", &dir, "a");
    let b = ca.leaf("b.test", &dir, "b");
    let (gw, addr) = gateway_from(&format!(
        r#"
log = {{ access_log = "off" }}
[[listeners]]
name = "public"
address = "127.0.0.1:0"
tls = {{ certificates = [
  {{ cert = "{d}/a.pem", key = "{d}/a.key", server_names = ["a.test"] }},
  {{ cert = "{d}/b.pem", key = "{d}/b.key", server_names = ["*.b.test", "b.test"] }},
] }}
[upstreams.echo]
targets = ["builtin:echo"]
[[routes]]
upstream = "echo"
"#,
        d = dir.display()
    ))
    .await;
    let connector = ca.connector();
    assert_eq!(presented(&handshake(&connector, addr, "a.test").await), a);
    assert_eq!(presented(&handshake(&connector, addr, "b.test").await), b);

    // HTTP/2 negotiated by ALPN, request served over it.
    let tls = handshake(&connector, addr, "a.test").await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    let response = sender
        .send_request(
            Request::builder()
                .uri("https://a.test/over-h2")
                .body(Full::<Bytes>::default())
                .expect("request"),
        )
        .await
        .expect("response");
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(json["path"], "/over-h2");
    assert_eq!(json["version"], "HTTP/2.0");
    assert_eq!(json["headers"]["x-forwarded-proto"], "https");

    // Replace a.test's certificate on disk: the listener picks it up without a restart.
    tokio::time::sleep(Duration::from_millis(1100)).await; // a distinct mtime
    let renewed = ca.leaf("a.test", &dir, "a");
    let mut seen = Vec::new();
    for _ in 0..50 {
        seen = presented(&handshake(&connector, addr, "a.test").await);
        if seen == renewed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen, renewed, "the renewed certificate is served");

    // A broken certificate file is refused; the last good one keeps serving.
    std::fs::write(dir.join("a.pem"), "not a certificate").expect("write");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        presented(&handshake(&connector, addr, "a.test").await),
        renewed
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn a_missing_certificate_is_a_startup_error_naming_the_file() {
    let config = rampart_config::compile_str(
        r#"
[[listeners]]
name = "secure"
address = "127.0.0.1:0"
tls = { certificates = [{ cert = "/nonexistent/site.pem", key = "/nonexistent/site.key" }] }
[upstreams.echo]
targets = ["builtin:echo"]
[[routes]]
upstream = "echo"
"#,
        Path::new("."),
    )
    .expect("config");
    let error =
        match rampart_proxy::Gateway::start(config, Arc::new(rampart_telemetry::Metrics::new()))
            .await
        {
            Ok(_) => panic!("started without a certificate"),
            Err(e) => e.to_string(),
        };
    assert!(error.contains("/nonexistent/site.pem"), "{error}");
    assert!(error.contains("secure"), "{error}");
}

/// An h2c-capable upstream that reports its protocol and sends gRPC-style trailers.
async fn grpc_like_upstream() -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let service = service_fn(|req: Request<hyper::body::Incoming>| async move {
                    let version = format!("{:?}", req.version());
                    let mut trailers = http::HeaderMap::new();
                    trailers.insert("grpc-status", "0".parse().expect("value"));
                    let body = Full::new(Bytes::from(version))
                        .with_trailers(async move { Some(Ok::<_, Infallible>(trailers)) });
                    Ok::<_, Infallible>(Response::new(body))
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, task)
}

#[tokio::test]
async fn h2c_from_clients_and_to_upstreams_with_trailers() {
    let (up, _task) = grpc_like_upstream().await;
    let (_gw, addr) = gateway(&format!(
        r#"
[upstreams.grpc]
targets = ["http://{up}"]
protocol = "h2c"
[[routes]]
upstream = "grpc"
"#
    ))
    .await;
    let response = h2c_client()
        .request(
            Request::builder()
                .method("POST")
                .uri(format!("http://{addr}/pkg.Service/Method"))
                .header("content-type", "application/grpc")
                .body(Full::from("msg"))
                .expect("request"),
        )
        .await
        .expect("response");
    assert_eq!(
        response.version(),
        http::Version::HTTP_2,
        "client side is h2c"
    );
    let collected = response.into_body().collect().await.expect("body");
    let trailers = collected
        .trailers()
        .cloned()
        .expect("trailers pass through");
    assert_eq!(trailers["grpc-status"], "0");
    assert_eq!(collected.to_bytes(), "HTTP/2.0", "upstream side is h2c");
}

#[tokio::test]
async fn websocket_upgrades_pass_through() {
    let up = upstream(|mut req| async move {
        let upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            if let Ok(upgraded) = upgrade.await {
                let mut io = TokioIo::new(upgraded);
                let mut buf = [0u8; 64];
                while let Ok(n) = io.read(&mut buf).await {
                    if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        });
        let mut r = reply(101, "");
        r.headers_mut()
            .insert("upgrade", "websocket".parse().expect("v"));
        r.headers_mut()
            .insert("connection", "upgrade".parse().expect("v"));
        r.headers_mut().insert(
            "sec-websocket-accept",
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".parse().expect("v"),
        );
        r
    })
    .await;
    let (_gw, addr) = gateway(&format!(
        r#"
[upstreams.ws]
targets = ["{}"]
[[routes]]
upstream = "ws"
"#,
        up.url()
    ))
    .await;
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(
            b"GET /socket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        .await
        .expect("write");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut byte))
            .await
            .expect("in time")
            .expect("read");
        assert_eq!(
            n,
            1,
            "connection closed early: {:?}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket"), "{head}");
    assert!(
        head.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
        "{head}"
    );
    for message in [&b"hello"[..], b"second frame"] {
        stream.write_all(message).await.expect("write");
        let mut buf = vec![0u8; message.len()];
        tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut buf))
            .await
            .expect("in time")
            .expect("read");
        assert_eq!(buf, message);
    }
}

#[tokio::test]
async fn bodies_stream_both_ways_without_buffering() {
    // The upstream sends "first", then waits until the client has seen it before it
    // sends "second": a proxy that buffered the response would never deliver it.
    let seen_first = Arc::new(tokio::sync::Notify::new());
    let gate = Arc::clone(&seen_first);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let up = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let gate = Arc::clone(&gate);
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let gate = Arc::clone(&gate);
                    async move {
                        if req.uri().path() == "/upload" {
                            // Count the uploaded bytes as they stream in.
                            let mut body = req.into_body();
                            let mut total = 0usize;
                            while let Some(Ok(frame)) = body.frame().await {
                                total += frame.data_ref().map_or(0, |d| d.len());
                            }
                            let body = Full::new(Bytes::from(total.to_string()))
                                .map_err(|never| match never {})
                                .boxed();
                            return Ok::<_, Infallible>(Response::new(body));
                        }
                        let (tx, rx) = tokio::sync::mpsc::channel::<
                            Result<hyper::body::Frame<Bytes>, Infallible>,
                        >(2);
                        tokio::spawn(async move {
                            let _ = tx
                                .send(Ok(hyper::body::Frame::data(Bytes::from_static(b"first"))))
                                .await;
                            gate.notified().await;
                            let _ = tx
                                .send(Ok(hyper::body::Frame::data(Bytes::from_static(b"second"))))
                                .await;
                        });
                        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
                            rx.recv().await.map(|item| (item, rx))
                        });
                        Ok(Response::new(
                            http_body_util::StreamBody::new(stream).boxed(),
                        ))
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    let (_gw, addr) = gateway(&format!(
        r#"
[upstreams.app]
targets = ["http://{up}"]
[[routes]]
upstream = "app"
"#
    ))
    .await;
    let response = client()
        .request(
            request("GET", format!("http://{addr}/stream"))
                .body(Full::default())
                .expect("r"),
        )
        .await
        .expect("response");
    let mut body = response.into_body();
    let first = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .expect("first chunk arrives while the upstream still holds the rest")
        .expect("frame")
        .expect("ok");
    assert_eq!(first.into_data().expect("data"), "first");
    seen_first.notify_one();
    let second = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .expect("second chunk")
        .expect("frame")
        .expect("ok");
    assert_eq!(second.into_data().expect("data"), "second");

    // A 20 MiB upload streams through (larger than any buffer Rampart keeps).
    let big = Bytes::from(vec![b'x'; 20 << 20]);
    let answer = send(
        &client(),
        request("POST", format!("http://{addr}/upload"))
            .body(Full::new(big))
            .expect("r"),
    )
    .await;
    assert_eq!(answer.text(), (20 << 20).to_string());
}
