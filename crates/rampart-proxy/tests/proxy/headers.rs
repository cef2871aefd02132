//! Proxy header semantics, request ids, trace context, smuggling and bad input.

use http_body_util::Full;

use crate::support::*;

/// An upstream that answers with the headers it received, as JSON.
async fn header_mirror() -> TestUpstream {
    upstream(|req| async move {
        let mut map = serde_json::Map::new();
        for (k, v) in req.headers() {
            map.insert(k.to_string(), v.to_str().unwrap_or("").into());
        }
        reply(200, serde_json::Value::Object(map).to_string())
    })
    .await
}

#[tokio::test]
async fn hop_by_hop_headers_are_removed_and_forwarding_headers_set() {
    let up = header_mirror().await;
    let (_gw, addr) = gateway(&format!(
        r#"
[upstreams.app]
targets = ["{}"]
[[routes]]
upstream = "app"
"#,
        up.url()
    ))
    .await;
    let answer = send(
        &client(),
        request("GET", format!("http://{addr}/"))
            .header("host", "shop.test")
            .header("connection", "x-private")
            .header("x-private", "1")
            .header("proxy-authorization", "secret")
            .header("te", "trailers")
            .header("x-forwarded-for", "6.6.6.6")
            .header("forwarded", "for=6.6.6.6")
            .body(Full::default())
            .expect("request"),
    )
    .await;
    let seen = answer.json();
    assert!(seen.get("x-private").is_none(), "{seen}");
    assert!(seen.get("proxy-authorization").is_none());
    assert!(seen.get("te").is_none());
    assert_eq!(
        seen["x-forwarded-for"], "127.0.0.1",
        "untrusted peer: replaced"
    );
    assert_eq!(seen["x-forwarded-proto"], "http");
    assert_eq!(seen["x-forwarded-host"], "shop.test");
    assert_eq!(seen["forwarded"], "for=127.0.0.1;proto=http;host=shop.test");
    assert_eq!(seen["host"], "shop.test", "host preserved by default");
}

#[tokio::test]
async fn trusted_proxies_keep_and_extend_forwarding_headers() {
    let up = header_mirror().await;
    let (_gw, addr) = gateway(&format!(
        r#"
server = {{ trusted_proxies = ["127.0.0.0/8"] }}
[upstreams.app]
targets = ["{}"]
host_header = "target"
[[routes]]
upstream = "app"
"#,
        up.url()
    ))
    .await;
    let answer = send(
        &client(),
        request("GET", format!("http://{addr}/"))
            .header("host", "shop.test")
            .header("x-forwarded-for", "203.0.113.9")
            .header("x-forwarded-proto", "https")
            .body(Full::default())
            .expect("request"),
    )
    .await;
    let seen = answer.json();
    assert_eq!(seen["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
    assert_eq!(seen["x-forwarded-proto"], "https");
    assert_eq!(
        seen["host"],
        up.addr.to_string(),
        "host rewritten to the target"
    );
}

#[tokio::test]
async fn request_ids_and_trace_context_are_propagated() {
    let up = header_mirror().await;
    let (_gw, addr) = gateway(&format!(
        r#"
[upstreams.app]
targets = ["{}"]
host_header = "internal.test"
[[routes]]
upstream = "app"
"#,
        up.url()
    ))
    .await;
    let c = client();
    let answer = send(
        &c,
        request("GET", format!("http://{addr}/"))
            .header("x-request-id", "client-id-1")
            .header(
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            )
            .body(Full::default())
            .expect("request"),
    )
    .await;
    let seen = answer.json();
    assert_eq!(seen["x-request-id"], "client-id-1");
    assert_eq!(answer.headers["x-request-id"], "client-id-1");
    // No spans are exported here: Rampart takes no part in the trace, and the caller's
    // context passes through as it came.
    assert_eq!(
        seen["traceparent"],
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    );
    assert_eq!(seen["host"], "internal.test");

    let fresh = send(
        &c,
        request("GET", format!("http://{addr}/"))
            .body(Full::default())
            .expect("r"),
    )
    .await;
    let generated = fresh.headers["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert_eq!(generated.len(), 32);
    assert_eq!(fresh.json()["x-request-id"], generated.as_str());
    assert!(
        fresh.json().get("traceparent").is_none(),
        "no trace is started when no spans are exported"
    );
}

#[tokio::test]
async fn request_smuggling_inputs_get_400_without_an_upstream_call() {
    let up = fixed("ok").await;
    let (_gw, addr) = gateway(&format!(
        r#"
[upstreams.app]
targets = ["{}"]
[[routes]]
upstream = "app"
"#,
        up.url()
    ))
    .await;
    let cases: &[&[u8]] = &[
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",
        b"NOT-HTTP\r\n\r\n",
    ];
    for case in cases {
        let answer = raw(addr, case).await;
        assert!(
            answer.starts_with("HTTP/1.1 400"),
            "{:?} -> {answer:?}",
            String::from_utf8_lossy(case)
        );
    }
    assert_eq!(up.hits(), 0, "no malformed request reached the upstream");
    // A smuggling attempt later on a keep-alive connection is caught too; the clean
    // request before it is served.
    let answer = raw(
        addr,
        b"GET /first HTTP/1.1\r\nHost: x\r\n\r\nPOST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    assert!(answer.contains("HTTP/1.1 400"), "{answer:?}");
    assert_eq!(up.hits(), 1);
    // Bad chunking: the upstream may have been reached with the head, but the client gets 400.
    let answer = raw(
        addr,
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer:?}");
}

#[tokio::test]
async fn oversized_headers_get_431() {
    let (_gw, addr) = gateway(
        r#"
server = { max_header_bytes = 16384 }
[upstreams.echo]
targets = ["builtin:echo"]
[[routes]]
upstream = "echo"
"#,
    )
    .await;
    let mut head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    head.extend(std::iter::repeat_n(b'a', 20_000));
    head.extend_from_slice(b"\r\n\r\n");
    let answer = raw(addr, &head).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:?}");
}

/// An upstream written by hand that answers every request with `response`.
async fn canned_upstream(response: &'static str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut chunk).await {
                            Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                            _ => return,
                        }
                    }
                    let end = buf
                        .windows(4)
                        .position(|w| w == b"\r\n\r\n")
                        .map_or(0, |i| i + 4);
                    buf.drain(..end);
                    if stream.write_all(response.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    format!("http://{address}")
}

#[tokio::test]
async fn response_fields_pass_through_less_hop_by_hop_ones_with_or_without_filters() {
    let upstream = canned_upstream(
        "HTTP/1.1 200 OK\r\nServer: canned\r\nDate: Tue, 01 Dec 2026 00:00:00 GMT\r\n\
         Connection: keep-alive, X-Private\r\nX-Private: 1\r\nKeep-Alive: timeout=5\r\n\
         X-Request-Id: upstream-id\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\
         Trailer: x\r\nContent-Length: 2\r\n\r\nok",
    )
    .await;
    // `/plain` has nothing that reads response fields, so they pass through as sent;
    // `/filtered` changes them, so they go through a header map: both answer alike.
    let (_gw, addr) = gateway(&format!(
        r#"
[upstreams.app]
targets = ["{upstream}"]
[[routes]]
name = "plain"
upstream = "app"
match = {{ path_prefix = "/plain" }}
[[routes]]
name = "filtered"
upstream = "app"
match = {{ path_prefix = "/filtered" }}
response_headers = {{ set = {{ "x-filtered" = "yes" }} }}
"#
    ))
    .await;
    for path in ["/plain", "/filtered"] {
        let answer = raw(
            addr,
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nX-Request-Id: client-id\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await;
        let (head, body) = answer.split_once("\r\n\r\n").expect("a head");
        assert_eq!(body, "ok", "{path}");
        let lines: Vec<String> = head.lines().map(str::to_ascii_lowercase).collect();
        let count = |prefix: &str| lines.iter().filter(|l| l.starts_with(prefix)).count();
        assert!(lines[0].starts_with("http/1.1 200"), "{path}: {head}");
        assert_eq!(count("server: canned"), 1, "{path}: {head}");
        assert_eq!(
            count("date: tue, 01 dec 2026"),
            1,
            "{path}: upstream's date kept: {head}"
        );
        assert_eq!(count("date:"), 1, "{path}: no second date: {head}");
        assert_eq!(count("set-cookie:"), 2, "{path}: {head}");
        assert_eq!(count("x-request-id: client-id"), 1, "{path}: {head}");
        assert_eq!(
            count("x-request-id:"),
            1,
            "{path}: upstream's id replaced: {head}"
        );
        assert_eq!(count("content-length: 2"), 1, "{path}: {head}");
        assert_eq!(count("connection: close"), 1, "{path}: {head}");
        for hop in [
            "x-private",
            "keep-alive",
            "trailer",
            "connection: keep-alive",
        ] {
            assert_eq!(count(hop), 0, "{path}: {hop} left in: {head}");
        }
        assert_eq!(
            count("x-filtered: yes"),
            usize::from(path == "/filtered"),
            "{head}"
        );
    }
}
