//! Streams that stall once the response head is out (an upstream that stops
//! mid-body, a client that stops reading), and who decides that a request goes
//! again after a kept-alive upstream connection turns out to be closed.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::*;

/// A gateway logging to a fresh file, with `body` as the rest of its config.
async fn logged_gateway(body: &str) -> (rampart_proxy::Gateway, std::net::SocketAddr, PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix("rampart-stalls-")
        .tempdir()
        .expect("tempdir")
        .keep();
    let log = dir.join("access.log");
    let source = format!(
        "log = {{ access_log = \"{}\" }}\nlisteners = [{{ name = \"public\", address = \"127.0.0.1:0\" }}]\n{body}",
        log.display()
    );
    let (gateway, addr) = gateway_from(&source).await;
    (gateway, addr, log)
}

/// Waits until the access log holds a line with `needle`, and returns the log.
async fn log_line_with(log: &PathBuf, needle: &str) -> String {
    let mut text = String::new();
    let found = eventually(Duration::from_secs(5), || {
        text = std::fs::read_to_string(log).unwrap_or_default();
        text.contains(needle)
    })
    .await;
    assert!(found, "no access-log line with {needle:?}: {text}");
    text
}

/// Reads the request head off `stream` (what came after it is dropped).
async fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut chunk).await {
            Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return None,
        }
    }
    Some(String::from_utf8_lossy(&buf).into_owned())
}

/// An upstream that answers every request with a head declaring 100 bytes and sends
/// 50 of them, then goes silent with the connection open. `closed` is set when the
/// proxy closes the connection.
async fn half_body_upstream(closed: Arc<AtomicBool>) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let closed = Arc::clone(&closed);
            tokio::spawn(async move {
                if read_head(&mut stream).await.is_none() {
                    return;
                }
                let half = [b'x'; 50];
                let mut answer = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n".to_vec();
                answer.extend_from_slice(&half);
                if stream.write_all(&answer).await.is_err() {
                    return;
                }
                // Silent from here; notice when the proxy gives up on us.
                let mut rest = [0u8; 64];
                let gone = tokio::time::timeout(Duration::from_secs(30), stream.read(&mut rest));
                if matches!(gone.await, Ok(Ok(0) | Err(_))) {
                    closed.store(true, Ordering::SeqCst);
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn an_upstream_that_stops_mid_body_ends_the_clients_response() {
    let closed = Arc::new(AtomicBool::new(false));
    let upstream = half_body_upstream(Arc::clone(&closed)).await;
    let (_gw, addr, log) = logged_gateway(&format!(
        r#"
[upstreams.app]
targets = ["http://{upstream}"]
[[routes]]
upstream = "app"
timeouts = {{ upstream_body_idle = "400ms" }}
"#
    ))
    .await;

    // HTTP/1.1: the head and the 50 bytes arrive, then the connection closes before
    // the declared end: never a body that looks complete.
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(b"GET /half HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut got)).await;
    let took = started.elapsed();
    let got = String::from_utf8_lossy(&got).into_owned();
    assert!(read.is_ok(), "the response never ended: {got:?}");
    assert!(got.starts_with("HTTP/1.1 200"), "{got:?}");
    assert!(
        got.to_ascii_lowercase().contains("content-length: 100"),
        "{got:?}"
    );
    let body = got.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    assert_eq!(body.len(), 50, "only what the upstream sent: {got:?}");
    assert!(
        took >= Duration::from_millis(350) && took < Duration::from_secs(3),
        "cut after {took:?}"
    );
    // The upstream connection is closed, not kept for another request.
    assert!(
        eventually(Duration::from_secs(2), || closed.load(Ordering::SeqCst)).await,
        "the upstream connection stayed open"
    );
    log_line_with(&log, "upstream-body-timeout").await;

    // HTTP/2: the stream is reset (the body fails) instead of ending.
    let started = Instant::now();
    let response = tokio::time::timeout(
        Duration::from_secs(5),
        h2c_client().request(
            request("GET", format!("http://{addr}/half2"))
                .body(http_body_util::Full::default())
                .expect("request"),
        ),
    )
    .await
    .expect("head in time")
    .expect("head");
    assert_eq!(response.status(), 200);
    let body = tokio::time::timeout(Duration::from_secs(10), response.into_body().collect())
        .await
        .expect("the stream never ended");
    assert!(body.is_err(), "an HTTP/2 body cut short must fail, not end");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn a_client_that_stops_reading_is_cut_off_and_the_upstream_exchange_dropped() {
    // An upstream streaming a large body for as long as it is taken; `ended` is set
    // when its connection breaks.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let upstream = listener.local_addr().expect("addr");
    let ended = Arc::new(AtomicBool::new(false));
    let ended_flag = Arc::clone(&ended);
    const LENGTH: u64 = 1 << 30;
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let ended = Arc::clone(&ended_flag);
            tokio::spawn(async move {
                if read_head(&mut stream).await.is_none() {
                    return;
                }
                let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {LENGTH}\r\n\r\n");
                if stream.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = vec![b'z'; 64 * 1024];
                let mut sent = 0u64;
                while sent < LENGTH {
                    if stream.write_all(&chunk).await.is_err() {
                        ended.store(true, Ordering::SeqCst);
                        return;
                    }
                    sent += chunk.len() as u64;
                }
            });
        }
    });
    let (_gw, addr, log) = logged_gateway(&format!(
        r#"
[upstreams.app]
targets = ["http://{upstream}"]
[[routes]]
upstream = "app"
timeouts = {{ client_write = "500ms" }}
"#
    ))
    .await;

    // A client with a small receive window that sends its request and reads nothing.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let mut stream = socket.connect(addr).await.expect("connect");
    stream
        .write_all(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let stalled = Instant::now();
    // The upstream exchange is dropped once the write timeout passes.
    assert!(
        eventually(Duration::from_secs(5), || ended.load(Ordering::SeqCst)).await,
        "the upstream kept streaming to a client that reads nothing"
    );
    assert!(
        stalled.elapsed() < Duration::from_secs(3),
        "{:?}",
        stalled.elapsed()
    );
    log_line_with(&log, "client-write-timeout").await;
    // Reading now finds the connection closed long before the declared length.
    let mut got = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got += n as u64,
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the connection stayed open");
    assert!(got < LENGTH / 4, "{got} bytes");
}

/// An upstream written by hand that records the requests it receives (method and
/// path) and, while `drop_next` is set, reads the next request that comes on a
/// kept-alive connection and closes without answering (as a server whose idle timer
/// fired just as the request crossed). Each connection's first request is answered.
struct Dropping {
    addr: std::net::SocketAddr,
    received: Arc<Mutex<Vec<String>>>,
    drop_next: Arc<AtomicBool>,
    connections: Arc<AtomicUsize>,
}

async fn dropping_upstream() -> Dropping {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let received = Arc::new(Mutex::new(Vec::new()));
    let drop_next = Arc::new(AtomicBool::new(false));
    let connections = Arc::new(AtomicUsize::new(0));
    let (log, dropping, count) = (
        Arc::clone(&received),
        Arc::clone(&drop_next),
        Arc::clone(&connections),
    );
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let (log, dropping) = (Arc::clone(&log), Arc::clone(&dropping));
            tokio::spawn(async move {
                let mut served = 0;
                // Bodiless requests only (Content-Length: 0 or none).
                while let Some(head) = read_head(&mut stream).await {
                    let line = head.lines().next().unwrap_or_default();
                    let what = line.rsplit_once(' ').map_or(line, |(w, _)| w).to_string();
                    log.lock().push(what);
                    if served > 0 && dropping.swap(false, Ordering::SeqCst) {
                        return;
                    }
                    served += 1;
                    let answer = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                    if stream.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    Dropping {
        addr,
        received,
        drop_next,
        connections,
    }
}

/// Sends `request` on a new connection and returns the status line.
async fn status_of(addr: std::net::SocketAddr, request: &str) -> String {
    let answer = raw(addr, request.as_bytes()).await;
    answer.lines().next().unwrap_or_default().to_string()
}

#[tokio::test]
async fn a_request_written_on_a_connection_the_upstream_closed_goes_again_only_if_the_route_may_repeat_it(
) {
    let up = dropping_upstream().await;
    let (_gw, addr) = gateway(&format!(
        r#"
[upstreams.app]
targets = ["http://{}"]
[[routes]]
upstream = "app"
match = {{ path_prefix = "/" }}
[[routes]]
upstream = "app"
match = {{ path_prefix = "/again" }}
retry = {{ non_idempotent = true }}
"#,
        up.addr
    ))
    .await;
    let count = |what: &str| up.received.lock().iter().filter(|w| *w == what).count();

    // A kept-alive connection, then a POST with `Content-Length: 0` written on it as
    // the upstream closes it: the upstream may have processed it, and the route does
    // not repeat POSTs, so it is not sent twice.
    let first = status_of(
        addr,
        "GET /warm HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(first.contains("200"), "{first}");
    up.drop_next.store(true, Ordering::SeqCst);
    let post = status_of(
        addr,
        "POST /once HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(count("POST /once"), 1, "{:?}", up.received.lock());
    assert!(post.contains("502"), "{post}");

    // A GET in the same place goes again on a new connection, and is answered.
    let warm = status_of(
        addr,
        "GET /warm HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(warm.contains("200"), "{warm}");
    up.drop_next.store(true, Ordering::SeqCst);
    let get = status_of(
        addr,
        "GET /get HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(get.contains("200"), "{get}");
    assert_eq!(count("GET /get"), 2, "{:?}", up.received.lock());

    // So does a POST on a route that repeats non-idempotent requests.
    let warm = status_of(
        addr,
        "GET /warm HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(warm.contains("200"), "{warm}");
    up.drop_next.store(true, Ordering::SeqCst);
    let post = status_of(
        addr,
        "POST /again HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(post.contains("200"), "{post}");
    assert_eq!(count("POST /again"), 2, "{:?}", up.received.lock());
    assert!(up.connections.load(Ordering::SeqCst) >= 3);
}
