//! Graceful shutdown and hot reload.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::support::*;

#[tokio::test]
async fn shutdown_finishes_requests_in_flight_and_stops_accepting() {
    let up = upstream(|_req| async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        reply(200, "finished")
    })
    .await;
    let (gw, addr) = gateway(&format!(
        r#"
server = {{ shutdown_grace = "5s" }}
[upstreams.app]
targets = ["{}"]
[[routes]]
upstream = "app"
"#,
        up.url()
    ))
    .await;
    let in_flight: Vec<_> = (0..3)
        .map(|_| tokio::spawn(async move { get(addr, "/").await }))
        .collect();
    // A kept-alive HTTP/1.1 connection with a request in flight: its response says
    // the connection closes, and it does, instead of waiting out the grace period.
    let kept_alive = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n")
            .await
            .expect("write");
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(3), stream.read_to_end(&mut out))
            .await
            .expect("the connection ends after its response")
            .expect("read");
        String::from_utf8_lossy(&out).to_ascii_lowercase()
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    let started = std::time::Instant::now();
    gw.shutdown().await;
    let took = started.elapsed();
    for r in in_flight {
        let answer = r.await.expect("join");
        assert_eq!(answer.status, 200);
        assert_eq!(answer.text(), "finished");
    }
    let answer = kept_alive.await.expect("join");
    assert!(answer.starts_with("http/1.1 200"), "{answer}");
    assert!(answer.contains("\r\nconnection: close\r\n"), "{answer}");
    assert!(answer.ends_with("finished"), "{answer}");
    assert!(
        took >= Duration::from_millis(250),
        "shutdown waited for the requests: {took:?}"
    );
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "no longer accepting"
    );
}

#[tokio::test]
async fn shutdown_closes_idle_kept_alive_connections_at_once() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let up = fixed("answered").await;
    let (gw, addr) = gateway(&format!(
        r#"
server = {{ shutdown_grace = "5s" }}
[upstreams.app]
targets = ["{}"]
[[routes]]
upstream = "app"
"#,
        up.url()
    ))
    .await;
    // Two kept-alive connections, idle after two answered requests each (so their
    // tasks have waited for a request before, and wait again now).
    let mut idle = Vec::new();
    for _ in 0..2 {
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        for _ in 0..2 {
            stream
                .write_all(b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n")
                .await
                .expect("write");
            let mut answer = Vec::new();
            while !answer.ends_with(b"answered") {
                let mut chunk = [0u8; 1024];
                let n = stream.read(&mut chunk).await.expect("read");
                assert!(
                    n > 0,
                    "closed early: {:?}",
                    String::from_utf8_lossy(&answer)
                );
                answer.extend_from_slice(&chunk[..n]);
            }
        }
        idle.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = std::time::Instant::now();
    gw.shutdown().await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "idle connections held the shutdown: {took:?}"
    );
    for mut stream in idle {
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(1), stream.read_to_end(&mut rest))
            .await
            .expect("the idle connection is closed");
        assert!(read.is_ok() && rest.is_empty(), "{read:?} {rest:?}");
    }
}

#[tokio::test]
async fn reload_under_load_loses_no_request_and_applies_the_new_config() {
    let up = fixed("ok").await;
    let body = |version: &str| {
        format!(
            r#"
[upstreams.app]
targets = ["{}"]
[[routes]]
upstream = "app"
response_headers = {{ set = {{ x-config = "{version}" }} }}
"#,
            up.url()
        )
    };
    let (gw, addr) = gateway(&body("v0")).await;
    let failures = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let failures = Arc::clone(&failures);
            let done = Arc::clone(&done);
            tokio::spawn(async move {
                let c = client();
                for _ in 0..150 {
                    let answer = send(
                        &c,
                        request("GET", format!("http://{addr}/"))
                            .body(http_body_util::Full::default())
                            .expect("r"),
                    )
                    .await;
                    if answer.status != 200 || answer.text() != "ok" {
                        failures.fetch_add(1, Ordering::SeqCst);
                    }
                    done.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    for i in 1..=20 {
        gw.reload(compile(&body(&format!("v{i}")))).expect("reload");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for w in workers {
        w.await.expect("join");
    }
    assert_eq!(done.load(Ordering::SeqCst), 600);
    assert_eq!(failures.load(Ordering::SeqCst), 0);
    assert_eq!(get(addr, "/").await.headers["x-config"], "v20");
    let metrics = gw.metrics().encode_prometheus();
    assert!(
        metrics.contains("rampart_config_reloads_total 20"),
        "{metrics}"
    );
}
