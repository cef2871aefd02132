//! gRPC through the gateway: a real gRPC server and client (grpcio, gRPC's C core)
//! over h2c and TLS with ALPN, a Rust client speaking gRPC's framing over HTTP/2,
//! `TE: trailers` and `:authority` towards HTTP/2 upstreams, `grpc-timeout` as the
//! call's deadline, and Rampart's own refusals as gRPC errors.
//!
//! The grpcio tests need a Python with `grpcio` and `grpcio-tools`, named by
//! `RAMPART_TEST_PYTHON`; without it they say SKIPPED, unless `RAMPART_REQUIRE_GRPC`
//! is set (as CI does), when they fail.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

use crate::support::*;

// ---------------------------------------------------------------------------
// gRPC framing by hand: a `Note { string text = 1; }` in 5-byte length-prefixed
// messages (gRPC over HTTP/2, "Length-Prefixed-Message").

/// One length-prefixed message holding a `Note` with `text`.
fn note_frame(text: &str) -> Bytes {
    let mut message = BytesMut::new();
    if !text.is_empty() {
        message.put_u8(0x0a); // field 1, length-delimited
        let mut n = text.len();
        while n >= 0x80 {
            message.put_u8((n as u8 & 0x7f) | 0x80);
            n >>= 7;
        }
        message.put_u8(n as u8);
        message.put_slice(text.as_bytes());
    }
    let mut frame = BytesMut::with_capacity(5 + message.len());
    frame.put_u8(0); // not compressed
    frame.put_u32(message.len() as u32);
    frame.put_slice(&message);
    frame.freeze()
}

/// The text of an encoded `Note`.
fn note_text(mut message: &[u8]) -> String {
    let mut text = String::new();
    while message.has_remaining() {
        let tag = message.get_u8();
        let mut len = 0usize;
        let mut shift = 0;
        loop {
            let b = message.get_u8();
            len |= usize::from(b & 0x7f) << shift;
            shift += 7;
            if b & 0x80 == 0 {
                break;
            }
        }
        if tag == 0x0a {
            text = String::from_utf8_lossy(&message[..len]).into_owned();
        }
        message.advance(len);
    }
    text
}

/// Reads length-prefixed messages from a response body as they arrive.
struct Messages {
    body: Incoming,
    buffer: BytesMut,
    trailers: Option<HeaderMap>,
}

impl Messages {
    fn new(body: Incoming) -> Self {
        Self {
            body,
            buffer: BytesMut::new(),
            trailers: None,
        }
    }

    /// The next message's `Note` text, or `None` once the body has ended.
    async fn next(&mut self) -> Option<String> {
        loop {
            if self.buffer.len() >= 5 {
                let len = u32::from_be_bytes([
                    self.buffer[1],
                    self.buffer[2],
                    self.buffer[3],
                    self.buffer[4],
                ]) as usize;
                if self.buffer.len() >= 5 + len {
                    let frame = self.buffer.split_to(5 + len);
                    return Some(note_text(&frame[5..]));
                }
            }
            let frame = self.body.frame().await?.expect("response body");
            match frame.into_data() {
                Ok(data) => self.buffer.extend_from_slice(&data),
                Err(frame) => self.trailers = frame.into_trailers().ok(),
            }
        }
    }

    /// Every message left, then the trailers.
    async fn rest(mut self) -> (Vec<String>, HeaderMap) {
        let mut notes = Vec::new();
        while let Some(note) = self.next().await {
            notes.push(note);
        }
        (notes, self.trailers.unwrap_or_default())
    }
}

/// A request body fed message by message from the test.
struct Feed(tokio::sync::mpsc::UnboundedReceiver<Bytes>);

impl Body for Feed {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|m| m.map(|bytes| Ok(Frame::data(bytes))))
    }
}

type BoxedBody = http_body_util::combinators::UnsyncBoxBody<Bytes, std::convert::Infallible>;

/// An HTTP/2 connection (h2c, prior knowledge) to `addr`.
async fn h2c(addr: SocketAddr) -> hyper::client::conn::http2::SendRequest<BoxedBody> {
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    sender
}

/// A gRPC call's request head for `method` on authority `authority`.
fn call(authority: &str, method: &str) -> http::request::Builder {
    Request::builder()
        .method("POST")
        .uri(format!("http://{authority}{method}"))
        .version(http::Version::HTTP_2)
        .header("content-type", "application/grpc")
        .header("te", "trailers")
}

/// A unary call: `text` as the one request message.
async fn unary(
    sender: &mut hyper::client::conn::http2::SendRequest<BoxedBody>,
    request: http::request::Builder,
    text: &str,
) -> Response<Incoming> {
    let body = Full::new(note_frame(text)).boxed_unsync();
    tokio::time::timeout(
        Duration::from_secs(20),
        sender.send_request(request.body(body).expect("request")),
    )
    .await
    .expect("answered in time")
    .expect("response")
}

/// The gRPC status of a response that is a trailers-only error (checked: status 200,
/// gRPC content type, no body), with its message.
async fn trailers_only(response: Response<Incoming>) -> (String, String) {
    assert_eq!(response.status(), StatusCode::OK, "a gRPC error is a 200");
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "application/grpc", "{headers:?}");
    assert!(headers.contains_key("x-request-id"), "{headers:?}");
    assert!(
        response.body().is_end_stream(),
        "the head ends the stream (Trailers-Only): {headers:?}"
    );
    let collected = response.into_body().collect().await.expect("body");
    assert!(collected.trailers().is_none());
    assert!(collected.to_bytes().is_empty());
    let text = |name: &str| {
        headers
            .get(name)
            .map(|v| v.to_str().expect("ascii").to_string())
            .unwrap_or_default()
    };
    (text("grpc-status"), text("grpc-message"))
}

// ---------------------------------------------------------------------------
// Without Python: hyper upstreams.

/// An h2c upstream reporting what it received: the `:authority`, any `host` and `te`
/// fields, as a gRPC answer (one message, `grpc-status: 0` in the trailers). It waits
/// as long as the request's `x-delay-ms` says first.
async fn reporting_upstream() -> TestUpstream {
    upstream(|req| async move {
        let delay = req
            .headers()
            .get("x-delay-ms")
            .and_then(|v| v.to_str().ok()?.parse().ok())
            .unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        let field = |name: &str| {
            req.headers()
                .get(name)
                .map_or("-".to_string(), |v| v.to_str().unwrap_or("?").to_string())
        };
        let report = format!(
            "version={:?} authority={} host={} te={}",
            req.version(),
            req.uri().authority().map_or("-", |a| a.as_str()),
            field("host"),
            field("te"),
        );
        let mut response = reply(200, note_frame(&report));
        response
            .headers_mut()
            .insert("content-type", "application/grpc".parse().expect("value"));
        response
    })
    .await
}

/// The `Note` an upstream answered with, over a gRPC call to `authority`.
async fn report(addr: SocketAddr, authority: &str) -> String {
    let mut sender = h2c(addr).await;
    let response = unary(
        &mut sender,
        call(authority, "/rampart.test.Notes/Echo"),
        "hi",
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let (notes, _) = Messages::new(response.into_body()).rest().await;
    notes.concat()
}

#[tokio::test]
async fn http2_upstreams_get_te_trailers_and_the_host_policy_as_authority() {
    let up = reporting_upstream().await;
    let (_gw, addr) = gateway(&format!(
        r#"
[upstreams.preserve]
targets = ["http://{a}"]
protocol = "h2c"
[upstreams.target]
targets = ["http://{a}"]
protocol = "h2c"
host_header = "target"
[upstreams.literal]
targets = ["http://{a}"]
protocol = "h2c"
host_header = "backend.internal"
[[routes]]
match = {{ hosts = ["preserve.test"] }}
upstream = "preserve"
[[routes]]
match = {{ hosts = ["target.test"] }}
upstream = "target"
[[routes]]
match = {{ hosts = ["literal.test"] }}
upstream = "literal"
"#,
        a = up.addr
    ))
    .await;
    // The client's authority (canonical: lower case), the target's, or the literal one
    // is `:authority`, never contradicted by a `host` field; `TE: trailers` goes on.
    assert_eq!(
        report(addr, "Preserve.test:8443").await,
        "version=HTTP/2.0 authority=preserve.test:8443 host=- te=trailers"
    );
    assert_eq!(
        report(addr, "target.test").await,
        format!("version=HTTP/2.0 authority={} host=- te=trailers", up.addr)
    );
    assert_eq!(
        report(addr, "literal.test").await,
        "version=HTTP/2.0 authority=backend.internal host=- te=trailers"
    );

    // Over HTTP/1.1 a client's `TE: trailers` (with `Connection: TE`) reaches an
    // HTTP/2 upstream too; other `TE` values do not.
    for (te, seen) in [("trailers", "te=trailers"), ("gzip", "te=-")] {
        let answer = send(
            &client(),
            request("POST", format!("http://{addr}/rampart.test.Notes/Echo"))
                .header("host", "preserve.test")
                .header("connection", "TE")
                .header("te", te)
                .body(Full::new(note_frame("hi")))
                .expect("request"),
        )
        .await;
        let text = note_text(&answer.body[5..]);
        assert!(text.ends_with(seen), "{te}: {text}");
        assert!(text.contains("authority=preserve.test host=-"), "{text}");
    }
}

#[tokio::test]
async fn refusals_of_grpc_calls_are_trailers_only_grpc_errors() {
    let up = reporting_upstream().await;
    let mut routes = String::new();
    for status in [401, 403, 429, 503, 504, 413] {
        routes.push_str(&format!(
            r#"
[[routes]]
match = {{ hosts = ["grpc.test"], headers = {{ "x-scenario" = "abort-{status}" }} }}
upstream = "grpc"
fault = {{ abort_percent = 100, abort_status = {status} }}
"#
        ));
    }
    let (_gw, addr) = gateway(&format!(
        r#"
[upstreams.grpc]
targets = ["http://{a}"]
protocol = "h2c"
[upstreams.down]
targets = ["http://127.0.0.1:1"]
protocol = "h2c"
[[routes]]
match = {{ hosts = ["grpc.test"] }}
upstream = "grpc"
[[routes]]
match = {{ hosts = ["down.test"] }}
upstream = "down"
{routes}"#,
        a = up.addr
    ))
    .await;
    let mut sender = h2c(addr).await;
    for (scenario, code, message) in [
        ("abort-401", "16", "Aborted by fault injection"),
        ("abort-403", "7", "Aborted by fault injection"),
        ("abort-429", "8", "Aborted by fault injection"),
        ("abort-503", "14", "Aborted by fault injection"),
        ("abort-504", "4", "Aborted by fault injection"),
        ("abort-413", "8", "Aborted by fault injection"),
    ] {
        let response = unary(
            &mut sender,
            call("grpc.test", "/rampart.test.Notes/Echo").header("x-scenario", scenario),
            "refused",
        )
        .await;
        assert_eq!(
            trailers_only(response).await,
            (code.to_string(), message.to_string()),
            "{scenario}"
        );
    }
    // No route: UNIMPLEMENTED; an unreachable upstream: UNAVAILABLE; a path the
    // canonical request refuses: INVALID_ARGUMENT. Every `+subtype` is gRPC too.
    for (authority, path, content_type, code) in [
        (
            "nowhere.test",
            "/rampart.test.Notes/Echo",
            "application/grpc",
            "12",
        ),
        (
            "down.test",
            "/rampart.test.Notes/Echo",
            "application/grpc+proto",
            "14",
        ),
        (
            "grpc.test",
            "/rampart.test.Notes/%2e%2e/%2e%2e/x",
            "application/grpc",
            "3",
        ),
    ] {
        let response = unary(
            &mut sender,
            call(authority, path).header("content-type", content_type),
            "refused",
        )
        .await;
        assert_eq!(trailers_only(response).await.0, code, "{authority}{path}");
    }

    // The same refusal of a request that is not gRPC stays a problem+json.
    let response = unary(
        &mut sender,
        Request::builder()
            .method("POST")
            .uri("http://grpc.test/x")
            .header("content-type", "application/grpc-web")
            .header("x-scenario", "abort-429"),
        "refused",
    )
    .await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    assert!(!response.headers().contains_key("grpc-status"));
}

#[tokio::test]
async fn grpc_timeout_is_the_calls_deadline() {
    let up = reporting_upstream().await;
    let (_gw, addr) = gateway(&format!(
        r#"
[upstreams.grpc]
targets = ["http://{a}"]
protocol = "h2c"
[[routes]]
upstream = "grpc"
timeouts = {{ total = "20s", per_try = "20s" }}
"#,
        a = up.addr
    ))
    .await;
    let mut sender = h2c(addr).await;
    // The upstream takes 3 s; the call allows 300 ms (the route 20 s): Rampart gives
    // up at the call's deadline with DEADLINE_EXCEEDED.
    for (timeout, allowed) in [("300m", 300), ("300000u", 300), ("99999999n", 100)] {
        let started = Instant::now();
        let response = unary(
            &mut sender,
            call("grpc.test", "/rampart.test.Notes/Slow")
                .header("grpc-timeout", timeout)
                .header("x-delay-ms", "3000"),
            "slow",
        )
        .await;
        let elapsed = started.elapsed();
        let (code, message) = trailers_only(response).await;
        assert_eq!(
            (code.as_str(), message.as_str()),
            ("4", "The request took too long")
        );
        assert!(
            elapsed >= Duration::from_millis(allowed - 20) && elapsed < Duration::from_millis(2000),
            "{timeout}: answered after {elapsed:?}"
        );
    }
    // A deadline the upstream meets changes nothing; a route's shorter total timeout
    // still bounds a call with a longer deadline.
    let response = unary(
        &mut sender,
        call("grpc.test", "/rampart.test.Notes/Slow")
            .header("grpc-timeout", "5S")
            .header("x-delay-ms", "100"),
        "slow",
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(!response.headers().contains_key("grpc-status"));
    let (notes, _) = Messages::new(response.into_body()).rest().await;
    assert!(notes.concat().starts_with("version=HTTP/2.0"), "{notes:?}");
}

/// An h2c upstream answering every call with a stream of 30 messages, one each
/// 100 ms, then `grpc-status: 0`, whatever deadline the call set.
async fn streaming_upstream() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|_req: Request<Incoming>| async move {
                    let frames = futures_util::stream::unfold(0u32, |n| async move {
                        if n > 30 {
                            return None;
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        let frame = if n == 30 {
                            let mut trailers = HeaderMap::new();
                            trailers.insert("grpc-status", "0".parse().expect("value"));
                            Frame::trailers(trailers)
                        } else {
                            Frame::data(note_frame(&n.to_string()))
                        };
                        Some((Ok::<_, std::convert::Infallible>(frame), n + 1))
                    });
                    let mut response = Response::new(http_body_util::StreamBody::new(frames));
                    response
                        .headers_mut()
                        .insert("content-type", "application/grpc".parse().expect("value"));
                    Ok::<_, std::convert::Infallible>(response)
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
async fn a_streaming_answer_ends_at_the_calls_deadline() {
    let (up, _task) = streaming_upstream().await;
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
    let mut sender = h2c(addr).await;
    let started = Instant::now();
    let response = unary(
        &mut sender,
        call("grpc.test", "/rampart.test.Notes/Split").header("grpc-timeout", "550m"),
        "stream",
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    // The messages sent before the deadline arrive, then DEADLINE_EXCEEDED in the
    // trailers instead of the rest of the stream.
    let (notes, trailers) = Messages::new(response.into_body()).rest().await;
    let elapsed = started.elapsed();
    assert!(
        (3..=6).contains(&notes.len()),
        "{notes:?} after {elapsed:?}"
    );
    assert_eq!(notes[..3], ["0", "1", "2"]);
    assert_eq!(trailers["grpc-status"], "4", "{trailers:?}");
    assert_eq!(trailers["grpc-message"], "The request took too long");
    assert!(elapsed < Duration::from_millis(1500), "{elapsed:?}");

    // Without a deadline the whole stream comes through.
    let response = unary(
        &mut sender,
        call("grpc.test", "/rampart.test.Notes/Split"),
        "stream",
    )
    .await;
    let (notes, trailers) = Messages::new(response.into_body()).rest().await;
    assert_eq!(notes.len(), 30);
    assert_eq!(trailers["grpc-status"], "0", "{trailers:?}");
}

// ---------------------------------------------------------------------------
// With grpcio.

/// Says SKIPPED, or fails when grpcio is required.
fn skip(reason: &str) {
    assert!(
        std::env::var_os("RAMPART_REQUIRE_GRPC").is_none(),
        "RAMPART_REQUIRE_GRPC is set but {reason}"
    );
    eprintln!("SKIPPED (grpcio): {reason}");
}

/// The Python to run grpcio with, if there is one.
fn python() -> Option<String> {
    let Some(python) = std::env::var_os("RAMPART_TEST_PYTHON") else {
        skip("RAMPART_TEST_PYTHON (a Python with grpcio and grpcio-tools) is not set");
        return None;
    };
    let python = python.to_string_lossy().into_owned();
    let importable = Command::new(&python)
        .args(["-c", "import grpc, grpc_tools"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !importable {
        skip(&format!("{python} cannot import grpc and grpc_tools"));
        return None;
    }
    Some(python)
}

fn peer_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/proxy/grpc_peer.py")
}

fn temp_dir(name: &str) -> PathBuf {
    tempfile::Builder::new()
        .prefix(&format!("rampart-{name}-"))
        .tempdir()
        .expect("temp dir")
        .keep()
}

/// A grpcio server in a child process, ended when dropped.
struct GrpcServer {
    child: Child,
    addr: SocketAddr,
}

impl Drop for GrpcServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the grpcio server (TLS with `tls`'s certificate and key files when given).
fn grpc_server(python: &str, dir: &Path, tls: Option<(&Path, &Path)>) -> GrpcServer {
    let mut command = Command::new(python);
    command.arg(peer_script()).arg(dir).arg("server");
    if let Some((cert, key)) = tls {
        command.arg(cert).arg(key);
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the grpcio server");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("read");
    let port: u16 = line
        .strip_prefix("PORT ")
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("no port from the grpcio server: {line:?}"));
    GrpcServer {
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
    }
}

/// Runs the grpcio client through `addr` (TLS trusting `tls`'s CA file for the
/// server name, when given) and returns its report.
async fn grpc_client(
    python: &str,
    dir: &Path,
    addr: SocketAddr,
    tls: Option<(&Path, &str)>,
) -> serde_json::Value {
    let mut command = Command::new(python);
    command
        .arg(peer_script())
        .arg(dir)
        .arg("client")
        .arg(addr.to_string());
    if let Some((ca, name)) = tls {
        command.arg(ca).arg(name);
    }
    command.stdin(Stdio::null());
    // Every call the client makes has a deadline of its own (10 s at most).
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("the grpcio client's thread")
        .expect("run the grpcio client");
    assert!(
        output.status.success(),
        "grpcio client failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// Routes for the grpcio client's calls: `grpc.test` to `upstream`, and one route per
/// refusal it tries (chosen by its `x-scenario` metadata).
fn grpc_routes(upstream: &str) -> String {
    let mut routes = format!(
        r#"
[[routes]]
match = {{ hosts = ["grpc.test"] }}
upstream = "{upstream}"
"#
    );
    for status in [401, 403, 429, 503] {
        routes.push_str(&format!(
            r#"
[[routes]]
match = {{ hosts = ["grpc.test"], headers = {{ "x-scenario" = "abort-{status}" }} }}
upstream = "{upstream}"
fault = {{ abort_percent = 100, abort_status = {status} }}
"#
        ));
    }
    routes
}

/// What the grpcio client must have seen on every call.
fn assert_grpc_report(report: &serde_json::Value) {
    let ok = |name: &str| report[name]["ok"].clone();
    assert_eq!(ok("unary"), "hello|te=", "{report}");
    assert_eq!(
        ok("server_streaming"),
        serde_json::json!(["one", "two", "three"]),
        "{report}"
    );
    assert_eq!(ok("client_streaming"), "x y z", "{report}");
    assert_eq!(
        ok("bidi"),
        serde_json::json!(["PING", "PONG", "DONE"]),
        "{report}"
    );
    // The server's status, message and trailing metadata pass through as trailers.
    let status = &report["status"];
    assert_eq!(status["code"], "INVALID_ARGUMENT", "{report}");
    assert_eq!(status["details"], "bad 100% \u{e9}t\u{e9}", "{report}");
    assert_eq!(status["trailers"]["x-detail"], "kept", "{report}");
    let deadline = &report["deadline"];
    assert_eq!(deadline["code"], "DEADLINE_EXCEEDED", "{report}");
    assert!(
        deadline["seconds"].as_f64().is_some_and(|s| s < 3.0),
        "{report}"
    );
    // Rampart's refusals, as Rampart's gRPC errors (its message, its request id).
    for (scenario, code) in [
        ("abort-401", "UNAUTHENTICATED"),
        ("abort-403", "PERMISSION_DENIED"),
        ("abort-429", "RESOURCE_EXHAUSTED"),
        ("abort-503", "UNAVAILABLE"),
    ] {
        let refusal = &report[scenario];
        assert_eq!(refusal["code"], code, "{scenario}: {report}");
        assert_eq!(refusal["details"], "Aborted by fault injection", "{report}");
        assert!(
            refusal["trailers"]["x-request-id"].is_string(),
            "{scenario}: {report}"
        );
    }
    assert_eq!(report["no-route"]["code"], "UNIMPLEMENTED", "{report}");
    assert_eq!(
        report["no-route"]["details"], "No route matches this request",
        "{report}"
    );
}

#[tokio::test]
async fn grpcio_calls_of_every_kind_through_h2c() {
    let Some(python) = python() else { return };
    let dir = temp_dir("grpc");
    let server = grpc_server(&python, &dir, None);
    let (_gw, addr) = gateway(&format!(
        r#"
[upstreams.grpc]
targets = ["http://{a}"]
protocol = "h2c"
{routes}"#,
        a = server.addr,
        routes = grpc_routes("grpc")
    ))
    .await;
    let report = grpc_client(&python, &dir, addr, None).await;
    assert_grpc_report(&report);
}

/// A CA and a leaf for `grpc.test` signed by it, written to `dir` as `ca.pem`,
/// `grpc.pem` and `grpc.key`.
fn certificates(dir: &Path) {
    let ca_key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    // Names of their own: a leaf whose subject were its issuer's would read as
    // self-signed to BoringSSL.
    params
        .distinguished_name
        .push(DnType::CommonName, "Rampart test CA");
    let ca = params.self_signed(&ca_key).expect("ca");
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(vec!["grpc.test".to_string()]).expect("params");
    params
        .distinguished_name
        .push(DnType::CommonName, "grpc.test");
    let leaf = params.signed_by(&key, &ca, &ca_key).expect("leaf");
    std::fs::write(dir.join("ca.pem"), ca.pem()).expect("write");
    std::fs::write(dir.join("grpc.pem"), leaf.pem()).expect("write");
    std::fs::write(dir.join("grpc.key"), key.serialize_pem()).expect("write");
}

#[tokio::test]
async fn grpcio_calls_over_tls_with_alpn() {
    let Some(python) = python() else { return };
    let dir = temp_dir("grpc-tls");
    certificates(&dir);
    let server = grpc_server(&python, &dir, None);
    // grpcio reaches Rampart over TLS (ALPN h2, a certificate for grpc.test); Rampart
    // reaches grpcio over h2c.
    let (_gw, addr) = gateway_from(&format!(
        r#"
log = {{ access_log = "off" }}
[[listeners]]
name = "public"
address = "127.0.0.1:0"
tls = {{ certificates = [{{ cert = "{d}/grpc.pem", key = "{d}/grpc.key" }}] }}
[upstreams.grpc]
targets = ["http://{a}"]
protocol = "h2c"
{routes}"#,
        d = dir.display(),
        a = server.addr,
        routes = grpc_routes("grpc")
    ))
    .await;
    let report = grpc_client(
        &python,
        &dir,
        addr,
        Some((&dir.join("ca.pem"), "grpc.test")),
    )
    .await;
    assert_grpc_report(&report);
}

#[tokio::test]
async fn a_rust_grpc_client_through_rampart_to_grpcio() {
    let Some(python) = python() else { return };
    let dir = temp_dir("grpc-rust");
    let server = grpc_server(&python, &dir, None);
    let (_gw, addr) = gateway(&format!(
        r#"
[upstreams.grpc]
targets = ["http://{a}"]
protocol = "h2c"
[[routes]]
upstream = "grpc"
"#,
        a = server.addr
    ))
    .await;
    let mut sender = h2c(addr).await;

    // Unary: one message each way, `grpc-status: 0` in the trailers.
    let response = unary(
        &mut sender,
        call("grpc.test", "/rampart.test.Notes/Echo"),
        "hi",
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let (notes, trailers) = Messages::new(response.into_body()).rest().await;
    assert_eq!(notes, ["hi|te="]);
    assert_eq!(trailers["grpc-status"], "0", "{trailers:?}");

    // Bidirectional streaming: each message is sent only after the answer to the one
    // before has arrived, so both directions stream through the gateway.
    let (feed, rx) = tokio::sync::mpsc::unbounded_channel();
    let request = call("grpc.test", "/rampart.test.Notes/Chat")
        .body(Feed(rx).boxed_unsync())
        .expect("request");
    let response = tokio::time::timeout(Duration::from_secs(20), sender.send_request(request));
    feed.send(note_frame("first")).expect("send");
    let response = response.await.expect("in time").expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    let mut messages = Messages::new(response.into_body());
    assert_eq!(next(&mut messages).await.as_deref(), Some("FIRST"));
    feed.send(note_frame("second")).expect("send");
    assert_eq!(next(&mut messages).await.as_deref(), Some("SECOND"));
    drop(feed);
    let (rest, trailers) = messages.rest().await;
    assert!(rest.is_empty(), "{rest:?}");
    assert_eq!(trailers["grpc-status"], "0", "{trailers:?}");

    // The server's error status and message pass through as sent (grpcio answers an
    // error before any message Trailers-Only: the fields come in the head).
    let response = unary(
        &mut sender,
        call("grpc.test", "/rampart.test.Notes/Fail"),
        "no such note: 100%",
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let head = response.headers().clone();
    let (notes, trailers) = Messages::new(response.into_body()).rest().await;
    assert!(notes.is_empty(), "{notes:?}");
    let fields = if trailers.contains_key("grpc-status") {
        trailers
    } else {
        head
    };
    assert_eq!(fields["grpc-status"], "3", "{fields:?}");
    assert_eq!(fields["grpc-message"], "no such note: 100%25", "{fields:?}");
}

/// The next message, within 10 s.
async fn next(messages: &mut Messages) -> Option<String> {
    tokio::time::timeout(Duration::from_secs(10), messages.next())
        .await
        .expect("a message in time")
}
