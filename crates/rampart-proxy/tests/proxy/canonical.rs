//! The canonical request's options: what each listener and route setting changes in
//! what the upstream receives. (The differential suite in `edge` covers the attacks.)

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

/// An upstream that answers with its request's target, `Host` and the other fields
/// it received, and keeps the trailers of the last request body it read.
async fn target_mirror(trailers: Arc<Mutex<Option<http::HeaderMap>>>) -> TestUpstream {
    upstream(move |req| {
        let trailers = Arc::clone(&trailers);
        async move {
            let target = req.uri().to_string();
            let mut fields = serde_json::Map::new();
            for (k, v) in req.headers() {
                fields.insert(k.to_string(), v.to_str().unwrap_or("").into());
            }
            let collected = req.into_body().collect().await.ok();
            *trailers.lock().expect("lock") = collected.and_then(|c| c.trailers().cloned());
            reply(
                200,
                serde_json::json!({ "target": target, "fields": fields }).to_string(),
            )
        }
    })
    .await
}

fn route_config(upstream: &TestUpstream, listener_options: &str, route_options: &str) -> String {
    format!(
        r#"
log = {{ access_log = "off" }}
listeners = [{{ name = "public", address = "127.0.0.1:0" {listener_options} }}]
[upstreams.app]
targets = ["{}"]
[[routes]]
upstream = "app"
{route_options}
"#,
        upstream.url()
    )
}

/// Sends one raw HTTP/1.1 request and returns the status and body.
async fn exchange(addr: std::net::SocketAddr, head: &str) -> (u16, String) {
    let answer = raw(addr, head.as_bytes()).await;
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn seen(body: &str) -> serde_json::Value {
    let start = body.find('{').unwrap_or(0);
    let end = body.rfind('}').map_or(body.len(), |e| e + 1);
    serde_json::from_str(&body[start..end]).unwrap_or_else(|e| panic!("{e}: {body:?}"))
}

#[tokio::test]
async fn the_upstream_receives_the_canonical_target_and_host() {
    let up = target_mirror(Arc::default()).await;
    let (_gw, addr) = gateway_from(&route_config(&up, "", "")).await;
    let (status, body) = exchange(
        addr,
        "GET http://Shop.Test.:80/a/./b/%7e%61//c/../d?q=%2f HTTP/1.1\r\nHost: other.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let seen = seen(&body);
    assert_eq!(
        seen["target"], "/a/b/~a/d?q=%2f",
        "the query is left as sent"
    );
    assert_eq!(seen["fields"]["host"], "shop.test");
    assert_eq!(seen["fields"]["x-forwarded-host"], "shop.test");
}

#[tokio::test]
async fn a_route_may_forward_the_raw_target() {
    let up = target_mirror(Arc::default()).await;
    let (_gw, addr) = gateway_from(&route_config(
        &up,
        "",
        "match = { path_prefix = \"/files\" }\nforward_raw_path = true",
    ))
    .await;
    let (status, body) = exchange(
        addr,
        "GET /files/%61//b/./c HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(seen(&body)["target"], "/files/%61//b/./c");
    // Routing still used the canonical path: a raw path outside the prefix is not
    // admitted by a canonical one inside it.
    let (status, _) = exchange(
        addr,
        "GET /other/../files/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = exchange(
        addr,
        "GET /files/../other HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 404, "/other matches no route");
}

#[tokio::test]
async fn encoded_slashes_and_repeated_slashes_follow_the_listener() {
    let up = target_mirror(Arc::default()).await;
    let request = "GET /a%2Fb//c%5cd HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";

    let (_gw, addr) = gateway_from(&route_config(&up, "", "")).await;
    let (status, body) = exchange(addr, request).await;
    assert_eq!(status, 400);
    assert!(body.contains("urn:rampart:problem:encoded-slash"), "{body}");

    let (_gw, addr) = gateway_from(&route_config(&up, ", encoded_slashes = \"decode\"", "")).await;
    assert_eq!(seen(&exchange(addr, request).await.1)["target"], "/a/b/c/d");

    let (_gw, addr) = gateway_from(&route_config(
        &up,
        ", encoded_slashes = \"keep\", merge_slashes = false",
        "",
    ))
    .await;
    assert_eq!(
        seen(&exchange(addr, request).await.1)["target"],
        "/a%2Fb//c%5Cd"
    );
}

#[tokio::test]
async fn underscored_fields_are_dropped_unless_the_listener_keeps_them() {
    let up = target_mirror(Arc::default()).await;
    let request = "GET / HTTP/1.1\r\nHost: a\r\nX_Custom: 1\r\nX_Rampart_Consumer: admin\r\nX_Forwarded_For: 6.6.6.6\r\nConnection: close\r\n\r\n";
    let (_gw, addr) = gateway_from(&route_config(&up, "", "")).await;
    let fields = seen(&exchange(addr, request).await.1)["fields"].clone();
    assert!(fields.get("x_custom").is_none(), "{fields}");
    assert!(fields.get("x_rampart_consumer").is_none(), "{fields}");

    let (_gw, addr) = gateway_from(&route_config(
        &up,
        ", underscores_in_headers = \"keep\"",
        "",
    ))
    .await;
    let fields = seen(&exchange(addr, request).await.1)["fields"].clone();
    assert_eq!(fields["x_custom"], "1", "{fields}");
    assert!(fields.get("x_rampart_consumer").is_none(), "{fields}");
    assert!(fields.get("x_forwarded_for").is_none(), "{fields}");
}

#[tokio::test]
async fn client_trailers_go_upstream_only_where_the_route_allows() {
    let chunked = "POST /t HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
                   3\r\nabc\r\n0\r\nX-Checksum: 7\r\nX-Rampart-Consumer: admin\r\nHost: evil.test\r\n\r\n";
    for forward in [false, true] {
        let trailers = Arc::new(Mutex::new(None));
        let up = target_mirror(Arc::clone(&trailers)).await;
        let options = format!("forward_trailers = {forward}");
        let (_gw, addr) = gateway_from(&route_config(&up, "", &options)).await;
        let (status, body) = exchange(addr, chunked).await;
        assert_eq!(status, 200, "{body}");
        let received = trailers.lock().expect("lock").take().unwrap_or_default();
        if forward {
            assert_eq!(
                received.get("x-checksum").map(|v| v.as_bytes()),
                Some(&b"7"[..])
            );
        } else {
            assert!(received.get("x-checksum").is_none(), "{received:?}");
        }
        assert!(received.get("x-rampart-consumer").is_none(), "{received:?}");
        assert!(received.get("host").is_none(), "{received:?}");
    }
}

#[tokio::test]
async fn http2_trailers_are_dropped_by_default() {
    let trailers = Arc::new(Mutex::new(None));
    let up = target_mirror(Arc::clone(&trailers)).await;
    let (_gw, addr) = gateway_from(&route_config(&up, "", "")).await;
    let mut fields = http::HeaderMap::new();
    fields.insert("x-checksum", "7".parse().expect("value"));
    let frames: Vec<Result<Frame<Bytes>, Infallible>> = vec![
        Ok(Frame::data(Bytes::from_static(b"abc"))),
        Ok(Frame::trailers(fields)),
    ];
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<StreamBody<futures_util::stream::Iter<std::vec::IntoIter<_>>>>();
    let response = client
        .request(
            http::Request::post(format!("http://{addr}/t"))
                .body(StreamBody::new(futures_util::stream::iter(frames)))
                .expect("request"),
        )
        .await
        .expect("response");
    assert_eq!(response.status(), 200);
    let received = trailers.lock().expect("lock").take().unwrap_or_default();
    assert!(received.get("x-checksum").is_none(), "{received:?}");
}

#[tokio::test]
async fn upgrades_pass_only_for_the_protocols_a_route_lists() {
    // The upstream answers 101 to any upgrade it is asked for, and reports the fields.
    let up = upstream(|req| async move {
        match req.headers().get("upgrade") {
            Some(protocol) => {
                let mut r = reply(101, "");
                r.headers_mut().insert("upgrade", protocol.clone());
                r.headers_mut()
                    .insert("connection", "upgrade".parse().expect("v"));
                r
            }
            None => reply(200, "plain"),
        }
    })
    .await;
    let ask = |protocol: &str| {
        format!("GET /s HTTP/1.1\r\nHost: a\r\nUpgrade: {protocol}\r\nConnection: Upgrade\r\n\r\n")
    };
    let (_gw, addr) = gateway_from(&route_config(&up, "", "")).await;
    assert!(first_line(addr, &ask("websocket")).await.contains(" 101 "));
    // h2c and unlisted protocols are removed: the request goes on as plain HTTP/1.1.
    for protocol in ["h2c", "websocket, h2c", "foo"] {
        let line = first_line(addr, &ask(protocol)).await;
        assert!(line.contains(" 200 "), "{protocol}: {line}");
    }
    let (_gw, addr) = gateway_from(&route_config(&up, "", "upgrades = []")).await;
    assert!(first_line(addr, &ask("websocket")).await.contains(" 200 "));
    let (_gw, addr) = gateway_from(&route_config(&up, "", "upgrades = [\"foo\"]")).await;
    assert!(first_line(addr, &ask("Foo/2")).await.contains(" 101 "));
}

/// The status line of the answer to `request`.
async fn first_line(addr: std::net::SocketAddr, request: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut buf))
        .await
        .expect("in time")
        .expect("read");
    String::from_utf8_lossy(&buf[..n])
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn options_asterisk_goes_upstream_as_asterisk() {
    let up = target_mirror(Arc::default()).await;
    let (_gw, addr) = gateway_from(&route_config(&up, "", "")).await;
    let (status, body) = exchange(
        addr,
        "OPTIONS * HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(seen(&body)["target"], "*");
}

/// A gateway in front of `upstream` writing its access log to a file, with the metrics
/// it counts into: (gateway, address, metrics, access-log path).
async fn logged_gateway(
    upstream: &TestUpstream,
) -> (
    rampart_proxy::Gateway,
    std::net::SocketAddr,
    Arc<rampart_telemetry::Metrics>,
    std::path::PathBuf,
) {
    let dir = tempfile::Builder::new()
        .prefix("rampart-canonical-")
        .tempdir()
        .expect("tempdir")
        .keep();
    let log = dir.join("access.log");
    let source = format!(
        r#"
log = {{ access_log = "{}" }}
server = {{ max_header_bytes = 8192 }}
listeners = [{{ name = "public", address = "127.0.0.1:0" }}]
[upstreams.app]
targets = ["{}"]
[[routes]]
upstream = "app"
"#,
        log.display(),
        upstream.url()
    );
    let config = rampart_config::compile_str(&source, std::path::Path::new("."))
        .unwrap_or_else(|e| panic!("{e}"));
    let metrics = Arc::new(rampart_telemetry::Metrics::new());
    let gateway = rampart_proxy::Gateway::start(config, Arc::clone(&metrics))
        .await
        .expect("start");
    let addr = gateway.local_addr("public").expect("listener");
    (gateway, addr, metrics, log)
}

#[tokio::test]
async fn refusals_are_problems_counted_logged_and_close_the_connection() {
    let up = target_mirror(Arc::default()).await;
    let (_gateway, addr, metrics, log) = logged_gateway(&up).await;
    // A refused request, then a pipelined one on the same connection: the second is
    // never answered, because the connection closes after the refusal.
    let answer = raw(
        addr,
        b"get /x HTTP/1.1\r\nHost: a\r\n\r\nGET /second HTTP/1.1\r\nHost: a\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    assert!(answer.contains("application/problem+json"), "{answer}");
    assert!(
        answer.contains("urn:rampart:problem:method-case"),
        "{answer}"
    );
    assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "{answer}");
    assert_eq!(up.hits(), 0);
    let request_id = answer
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("x-request-id: ")
                .map(str::to_string)
        })
        .expect("request id");
    assert!(
        answer.contains(&format!("\"request_id\":\"{request_id}\"")),
        "{answer}"
    );

    let exposition = metrics.encode_prometheus();
    assert!(
        exposition.contains("rampart_requests_refused_total{reason=\"method-case\"} 1"),
        "{exposition}"
    );
    let logged = eventually(std::time::Duration::from_secs(5), || {
        std::fs::read_to_string(&log).is_ok_and(|text| text.contains(&request_id))
    })
    .await;
    assert!(logged, "the refusal is in the access log");
    let line = std::fs::read_to_string(&log)
        .expect("log")
        .lines()
        .find(|l| l.contains(&request_id))
        .map(str::to_string)
        .expect("line");
    let record: serde_json::Value = serde_json::from_str(&line).expect("json line");
    assert_eq!(record["status"], 400);
    assert!(
        record["route"].is_null() || record["route"] == "",
        "{record}"
    );
    assert_eq!(record["error"], "method-case", "{record}");
}

#[tokio::test]
async fn unreadable_heads_are_answered_counted_and_logged_like_other_refusals() {
    let up = target_mirror(Arc::default()).await;
    let (_gateway, addr, metrics, log) = logged_gateway(&up).await;
    let oversized = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n",
        "b".repeat(9000)
    );
    let cases = [
        (
            "GET / HTTP/9.9\r\nHost: a\r\n\r\n".to_string(),
            400,
            "invalid-request-head",
        ),
        (
            "G\x01T / HTTP/1.1\r\nHost: a\r\n\r\n".to_string(),
            400,
            "invalid-request-head",
        ),
        (oversized, 431, "headers-too-large"),
        (
            "CONNECT a.test:443 HTTP/1.1\r\nHost: a.test:443\r\n\r\n".to_string(),
            405,
            "connect-not-allowed",
        ),
    ];
    let mut ids = Vec::new();
    for (request, status, reason) in &cases {
        let answer = raw(addr, request.as_bytes()).await;
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status} ")),
            "{reason}: {answer}"
        );
        assert!(
            answer.contains(&format!("urn:rampart:problem:{reason}")),
            "{answer}"
        );
        assert!(
            answer.to_ascii_lowercase().contains("connection: close"),
            "{answer}"
        );
        let id = answer
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("x-request-id: ")
                    .map(str::to_string)
            })
            .expect("request id");
        ids.push(id);
    }
    assert_eq!(up.hits(), 0);
    let exposition = metrics.encode_prometheus();
    for (count, reason) in [
        (2, "invalid-request-head"),
        (1, "headers-too-large"),
        (1, "connect-not-allowed"),
    ] {
        assert!(
            exposition.contains(&format!(
                "rampart_requests_refused_total{{reason=\"{reason}\"}} {count}"
            )),
            "{reason}: {exposition}"
        );
    }
    let logged = eventually(std::time::Duration::from_secs(5), || {
        std::fs::read_to_string(&log).is_ok_and(|text| ids.iter().all(|id| text.contains(id)))
    })
    .await;
    assert!(logged, "every refusal is in the access log");
}

#[tokio::test]
async fn a_route_may_match_its_path_in_any_case() {
    let up = target_mirror(Arc::default()).await;
    let source = format!(
        r#"
log = {{ access_log = "off" }}
listeners = [{{ name = "public", address = "127.0.0.1:0" }}]
[upstreams.app]
targets = ["{}"]
[[routes]]
name = "admin"
upstream = "app"
match = {{ path_prefix = "/admin", path_ignore_case = true }}
request_headers = {{ set = {{ x-test-route = "admin" }} }}
[[routes]]
name = "exact"
upstream = "app"
match = {{ path = "/Exact" }}
request_headers = {{ set = {{ x-test-route = "exact" }} }}
[[routes]]
upstream = "app"
request_headers = {{ set = {{ x-test-route = "public" }} }}
"#,
        up.url()
    );
    let (_gw, addr) = gateway_from(&source).await;
    for (path, route) in [
        ("/admin/x", "admin"),
        ("/ADMIN/x", "admin"),
        ("/aDmIn", "admin"),
        ("/administrator", "public"),
        ("/Exact", "exact"),
        ("/exact", "public"),
    ] {
        let request = format!("GET {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
        let (status, body) = exchange(addr, &request).await;
        assert_eq!(status, 200, "{body}");
        let seen = seen(&body);
        assert_eq!(seen["fields"]["x-test-route"], route, "{path}");
        assert_eq!(seen["target"], path, "the path goes upstream as sent");
    }
}
