//! HTTP/1.1 connection behaviour on both sides of the proxy: interim responses,
//! HTTP/1.0 clients, pipelining, chunked bodies with trailers, and reuse (and
//! replacement) of upstream connections.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::*;

fn one_upstream(url: &str) -> String {
    format!(
        r#"
[upstreams.app]
targets = ["{url}"]
[[routes]]
upstream = "app"
"#
    )
}

/// Reads from `stream` until `needle` has arrived (or two seconds pass).
async fn read_until(stream: &mut TcpStream, needle: &str) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while !String::from_utf8_lossy(&out).contains(needle) {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => out.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn expect_100_continue_is_answered_before_the_body_is_sent() {
    let (_gw, addr) = gateway(&one_upstream("builtin:echo")).await;
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(
            b"PUT /up HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
        )
        .await
        .expect("write head");
    let interim = read_until(&mut stream, "\r\n\r\n").await;
    assert!(interim.starts_with("HTTP/1.1 100 Continue"), "{interim:?}");
    stream.write_all(b"hello").await.expect("write body");
    let answer = read_until(&mut stream, "hello").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    assert!(
        answer.contains("hello"),
        "the echo saw the body: {answer:?}"
    );
}

#[tokio::test]
async fn http10_clients_and_pipelined_requests_are_answered_in_order() {
    let up = upstream(|req| async move { reply(200, req.uri().path().to_string()) }).await;
    let (_gw, addr) = gateway(&one_upstream(&up.url())).await;
    // HTTP/1.0 without keep-alive: one answer, then the connection closes.
    let answer = raw(addr, b"GET /old HTTP/1.0\r\nHost: x\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    assert!(answer.ends_with("/old"), "{answer:?}");
    // HTTP/1.0 asking for keep-alive keeps it.
    let answer = raw(
        addr,
        b"GET /a HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\nGET /b HTTP/1.0\r\nHost: x\r\n\r\n",
    )
    .await;
    assert!(answer.contains("connection: keep-alive"), "{answer:?}");
    assert!(
        answer
            .find("/a")
            .zip(answer.find("/b"))
            .is_some_and(|(a, b)| a < b),
        "{answer:?}"
    );
    // Three pipelined requests in one write come back in order.
    let answer = raw(
        addr,
        b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\nGET /3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(answer.matches("HTTP/1.1 200").count(), 3, "{answer:?}");
    let (one, two, three) = (
        answer.find("\r\n\r\n/1").expect("/1"),
        answer.find("\r\n\r\n/2").expect("/2"),
        answer.find("\r\n\r\n/3").expect("/3"),
    );
    assert!(one < two && two < three, "{answer:?}");
    assert!(answer.contains("connection: close"), "{answer:?}");
}

#[tokio::test]
async fn chunked_request_bodies_and_trailers_pass_through() {
    let (_gw, addr) = gateway(&one_upstream("builtin:echo")).await;
    let answer = raw(
        addr,
        b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Check: 1\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    assert!(answer.contains("hello world"), "{answer:?}");
    // A body cut short by the client (it stops sending) is the client's error.
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(b"POST /c HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nshort")
        .await
        .expect("write");
    stream.shutdown().await.expect("half-close");
    let answer = read_until(&mut stream, "request_id").await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer:?}");
}

#[tokio::test]
async fn upstream_connections_are_kept_and_a_closed_one_is_replaced() {
    // An HTTP/1.1 upstream written by hand: counts connections, answers each request
    // with the connection's number, and (for odd connections) closes after one
    // answer without saying so, as a server whose keep-alive timer fired would.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let upstream_addr = listener.local_addr().expect("addr");
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&connections);
    let close_after_one = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let closing = Arc::clone(&close_after_one);
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let number = counter.fetch_add(1, Ordering::SeqCst) + 1;
            let closing = Arc::clone(&closing);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    while !String::from_utf8_lossy(&buf).contains("\r\n\r\n") {
                        match stream.read(&mut chunk).await {
                            Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                            _ => return,
                        }
                    }
                    let end = String::from_utf8_lossy(&buf)
                        .find("\r\n\r\n")
                        .map_or(0, |i| i + 4);
                    buf.drain(..end);
                    let body = format!("conn {number}");
                    let response = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if stream.write_all(response.as_bytes()).await.is_err() {
                        return;
                    }
                    if closing.load(Ordering::SeqCst) {
                        // Give the proxy time to put the connection back, then go.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        return;
                    }
                }
            });
        }
    });
    let (_gw, addr) = gateway(&one_upstream(&format!("http://{upstream_addr}"))).await;
    for _ in 0..5 {
        let answer = get(addr, "/").await;
        assert_eq!(answer.text(), "conn 1");
    }
    assert_eq!(
        connections.load(Ordering::SeqCst),
        1,
        "one kept-alive connection"
    );

    // Now the upstream closes each connection after one more answer, without
    // saying so: every next request finds its pooled connection closed and goes out
    // on a fresh one, and none fails. A POST with a body (the upstream answers without
    // reading it) is not sent twice: its closed connection has to be found before the
    // request goes out on it.
    close_after_one.store(true, Ordering::SeqCst);
    for round in 0..4 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let answer = send(
            &client(),
            request("POST", format!("http://{addr}/"))
                .body(http_body_util::Full::new(bytes::Bytes::from_static(b"x")))
                .expect("request"),
        )
        .await;
        assert_eq!(answer.status, 200, "{}", answer.text());
        assert_eq!(answer.text(), format!("conn {}", round + 1));
    }
    assert_eq!(connections.load(Ordering::SeqCst), 4);
}
