//! Health checks, outlier ejection, circuit breaker, retries and their budget,
//! bulkheads, timeouts and fault injection, against real upstream servers.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::Full;

use crate::support::*;

/// An upstream whose answers (and /health) fail while `failing` is set.
async fn switchable(name: &'static str, failing: Arc<AtomicBool>) -> TestUpstream {
    upstream(move |req| {
        let failing = Arc::clone(&failing);
        async move {
            if failing.load(Ordering::SeqCst) {
                reply(503, format!("{name} failing"))
            } else if req.uri().path() == "/health" {
                reply(200, "healthy")
            } else {
                reply(200, name)
            }
        }
    })
    .await
}

#[tokio::test]
async fn health_checks_take_a_target_out_and_bring_it_back() {
    let a_down = Arc::new(AtomicBool::new(false));
    let a = switchable("a", Arc::clone(&a_down)).await;
    let b = switchable("b", Arc::new(AtomicBool::new(false))).await;
    let (gw, addr) = gateway(&format!(
        r#"
[upstreams.app]
targets = ["{}", "{}"]
health_check = {{ path = "/health", interval = "30ms", timeout = "200ms", healthy_threshold = 2, unhealthy_threshold = 2 }}
outlier_detection = {{ consecutive_5xx = 0, consecutive_connect_failures = 0 }}
circuit_breaker = {{ disabled = true }}
[[routes]]
upstream = "app"
retry = {{ attempts = 0 }}
"#,
        a.url(),
        b.url()
    ))
    .await;
    a_down.store(true, Ordering::SeqCst);
    let gw_ref = &gw;
    assert!(
        eventually(Duration::from_secs(3), || gw_ref.upstream_status()["app"]
            ["targets"][0]["available"]
            == false)
        .await,
        "a should be marked unhealthy"
    );
    for _ in 0..10 {
        assert_eq!(get(addr, "/").await.text(), "b");
    }
    assert!(gw.readiness().ready, "b still serves the route");

    a_down.store(false, Ordering::SeqCst);
    assert!(
        eventually(Duration::from_secs(3), || gw_ref.upstream_status()["app"]
            ["targets"][0]["available"]
            == true)
        .await,
        "a should come back"
    );
    let mut seen_a = false;
    for _ in 0..10 {
        seen_a |= get(addr, "/").await.text() == "a";
    }
    assert!(seen_a, "traffic returns to a");
}

#[tokio::test]
async fn readiness_names_routes_without_a_healthy_upstream() {
    let down = Arc::new(AtomicBool::new(true));
    let a = switchable("a", Arc::clone(&down)).await;
    let (gw, _addr) = gateway(&format!(
        r#"
[upstreams.app]
targets = ["{}"]
health_check = {{ path = "/health", interval = "20ms", unhealthy_threshold = 1 }}
[[routes]]
name = "main"
upstream = "app"
"#,
        a.url()
    ))
    .await;
    let gw_ref = &gw;
    assert!(eventually(Duration::from_secs(3), || !gw_ref.readiness().ready).await);
    let reasons = gw.readiness().reasons;
    assert_eq!(
        reasons,
        vec!["route \"main\": upstream \"app\" has no healthy target".to_string()]
    );
}

#[tokio::test]
async fn readiness_fails_while_every_target_is_ejected_or_the_breaker_is_open() {
    let broken = upstream(|_req| async { reply(500, "broken") }).await;
    let (gw, addr) = gateway(&format!(
        r#"
[upstreams.ejecting]
targets = ["{0}"]
outlier_detection = {{ consecutive_5xx = 2, base_ejection = "10s", max_ejection_percent = 100 }}
circuit_breaker = {{ disabled = true }}
[upstreams.breaking]
targets = ["{0}"]
outlier_detection = {{ consecutive_5xx = 0, consecutive_connect_failures = 0 }}
circuit_breaker = {{ consecutive_failures = 2, failure_ratio = 0, open_for = "10s" }}
[[routes]]
name = "ejected"
upstream = "ejecting"
match = {{ path_prefix = "/e" }}
retry = {{ attempts = 0 }}
[[routes]]
name = "broken"
upstream = "breaking"
match = {{ path_prefix = "/b" }}
retry = {{ attempts = 0 }}
"#,
        broken.url()
    ))
    .await;
    assert!(gw.readiness().ready, "{:?}", gw.readiness().reasons);
    for path in ["/e", "/e", "/b", "/b"] {
        get(addr, path).await;
    }
    assert_eq!(
        gw.readiness().reasons,
        vec![
            "route \"ejected\": upstream \"ejecting\" has no healthy target".to_string(),
            "route \"broken\": the circuit breaker of upstream \"breaking\" is open".to_string(),
        ]
    );
    assert!(!gw.readiness().ready);
}

#[tokio::test]
async fn readiness_fails_while_the_gateway_drains() {
    let release = Arc::new(tokio::sync::Notify::new());
    let held = Arc::clone(&release);
    let slow = upstream(move |_req| {
        let held = Arc::clone(&held);
        async move {
            held.notified().await;
            reply(200, "late")
        }
    })
    .await;
    let (gw, addr) = gateway(&format!(
        "[upstreams.app]\ntargets = [\"{}\"]\n[[routes]]\nupstream = \"app\"\n",
        slow.url()
    ))
    .await;
    let in_flight = tokio::spawn(async move { get(addr, "/").await.text() });
    assert!(eventually(Duration::from_secs(3), || slow.hits() == 1).await);
    assert!(gw.readiness().ready);
    let gw = Arc::new(gw);
    let stopping = {
        let gw = Arc::clone(&gw);
        tokio::spawn(async move { gw.shutdown().await })
    };
    let gw_ref = &gw;
    assert!(eventually(Duration::from_secs(3), || !gw_ref.readiness().ready).await);
    assert_eq!(
        gw.readiness().reasons,
        vec!["shutting down: requests in flight are draining".to_string()]
    );
    release.notify_one();
    assert_eq!(in_flight.await.expect("join"), "late");
    stopping.await.expect("shutdown");
}

#[tokio::test]
async fn outlier_detection_ejects_a_failing_target() {
    let a = upstream(|_req| async { reply(500, "a broken") }).await;
    let b = fixed("b").await;
    let (gw, addr) = gateway(&format!(
        r#"
[upstreams.app]
targets = ["{}", "{}"]
outlier_detection = {{ consecutive_5xx = 2, base_ejection = "10s", max_ejection_percent = 50 }}
circuit_breaker = {{ disabled = true }}
[[routes]]
upstream = "app"
retry = {{ attempts = 0 }}
"#,
        a.url(),
        b.url()
    ))
    .await;
    for _ in 0..6 {
        get(addr, "/").await;
    }
    assert_eq!(a.hits(), 2, "a is ejected after two consecutive 5xx");
    for _ in 0..10 {
        assert_eq!(get(addr, "/").await.text(), "b");
    }
    assert_eq!(
        gw.upstream_status()["app"]["targets"][0]["available"],
        false
    );
    let metrics = gw.metrics().encode_prometheus();
    assert!(
        metrics.contains("rampart_upstream_ejections_total{upstream=\"app\""),
        "{metrics}"
    );
}

#[tokio::test]
async fn circuit_breaker_opens_serves_the_fallback_probes_and_closes() {
    let failing = Arc::new(AtomicBool::new(true));
    let up = switchable("app", Arc::clone(&failing)).await;
    let (gw, addr) = gateway(&format!(
        r#"
[upstreams.app]
targets = ["{}"]
circuit_breaker = {{ consecutive_failures = 3, failure_ratio = 0, open_for = "300ms", half_open_probes = 1 }}
outlier_detection = {{ consecutive_5xx = 0 }}
[[routes]]
upstream = "app"
retry = {{ attempts = 0 }}
fallback = {{ status = 503, body = "degraded", content_type = "text/plain" }}
"#,
        up.url()
    ))
    .await;
    for _ in 0..3 {
        assert_eq!(get(addr, "/").await.text(), "app failing");
    }
    assert_eq!(gw.upstream_status()["app"]["circuit_breaker"], "Open");
    let started = Instant::now();
    let answer = get(addr, "/").await;
    assert_eq!(answer.text(), "degraded");
    assert_eq!(answer.headers["x-rampart-fallback"], "static");
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "answered at once"
    );
    assert_eq!(up.hits(), 3, "the open breaker does not touch the upstream");

    // Still failing when the probe goes: the breaker opens again.
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(gw.upstream_status()["app"]["circuit_breaker"], "HalfOpen");
    assert_eq!(get(addr, "/").await.text(), "app failing");
    assert_eq!(up.hits(), 4);
    assert_eq!(get(addr, "/").await.text(), "degraded");

    // Recovered: one successful probe closes it.
    failing.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(get(addr, "/").await.text(), "app");
    assert_eq!(gw.upstream_status()["app"]["circuit_breaker"], "Closed");
    for _ in 0..5 {
        assert_eq!(get(addr, "/").await.text(), "app");
    }
}

#[tokio::test]
async fn an_open_breaker_can_fall_back_to_another_upstream() {
    let broken = upstream(|_req| async { reply(502, "broken") }).await;
    let backup = fixed("backup").await;
    let (_gw, addr) = gateway(&format!(
        r#"
[upstreams.main]
targets = ["{}"]
circuit_breaker = {{ consecutive_failures = 1, failure_ratio = 0, open_for = "10s" }}
[upstreams.backup]
targets = ["{}"]
[[routes]]
upstream = "main"
retry = {{ attempts = 0 }}
fallback = {{ upstream = "backup" }}
"#,
        broken.url(),
        backup.url()
    ))
    .await;
    assert_eq!(get(addr, "/").await.text(), "broken");
    let answer = get(addr, "/").await;
    assert_eq!(answer.text(), "backup");
    assert_eq!(answer.headers["x-rampart-fallback"], "upstream");
}

#[tokio::test]
async fn retries_go_to_another_target_on_connect_failure_and_chosen_statuses() {
    // A closed port: connect is refused.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead = closed.local_addr().expect("addr");
    drop(closed);
    let good = fixed("good").await;
    let (_gw, addr) = gateway(&format!(
        r#"
[upstreams.app]
targets = ["http://{dead}", "{}"]
outlier_detection = {{ consecutive_connect_failures = 0 }}
[[routes]]
upstream = "app"
retry = {{ attempts = 1, backoff_base = "1ms" }}
"#,
        good.url()
    ))
    .await;
    for _ in 0..6 {
        assert_eq!(get(addr, "/").await.text(), "good");
    }

    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let flaky = upstream(move |_req| {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        async move {
            let (status, body, attempt) = if n.is_multiple_of(2) {
                (503, "try again", "first")
            } else {
                (200, "second time", "second")
            };
            let mut r = reply(status, body);
            r.headers_mut()
                .insert("x-attempt", attempt.parse().expect("value"));
            r
        }
    })
    .await;
    let (_gw2, addr2) = gateway(&format!(
        r#"
[upstreams.app]
targets = ["{}"]
outlier_detection = {{ consecutive_5xx = 0 }}
[[routes]]
upstream = "app"
retry = {{ attempts = 2, on_status = [503], backoff_base = "1ms" }}
"#,
        flaky.url()
    ))
    .await;
    let retried = get(addr2, "/").await;
    assert_eq!(retried.text(), "second time");
    // The answer carries the fields of the attempt that gave it, not an earlier one's.
    let attempts: Vec<_> = retried.headers.get_all("x-attempt").iter().collect();
    assert_eq!(attempts, ["second"]);
    // POST is not idempotent: no retry.
    let answer = send(
        &client(),
        request("POST", format!("http://{addr2}/"))
            .body(Full::from("x"))
            .expect("r"),
    )
    .await;
    assert_eq!(answer.status, 503);
    assert_eq!(flaky.hits(), 3);
}

#[tokio::test]
async fn a_put_body_is_replayed_on_retry() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let up = upstream(move |req| {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        async move {
            use http_body_util::BodyExt;
            let body = req
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            if n == 0 {
                reply(503, "no")
            } else {
                reply(200, body)
            }
        }
    })
    .await;
    let (_gw, addr) = gateway(&format!(
        r#"
[upstreams.app]
targets = ["{}"]
[[routes]]
upstream = "app"
retry = {{ attempts = 1, backoff_base = "1ms" }}
"#,
        up.url()
    ))
    .await;
    let answer = send(
        &client(),
        request("PUT", format!("http://{addr}/"))
            .body(Full::from("payload"))
            .expect("r"),
    )
    .await;
    assert_eq!(answer.text(), "payload");
    assert_eq!(up.hits(), 2);
}

#[tokio::test]
async fn the_retry_budget_caps_retries_during_an_outage() {
    let up = upstream(|_req| async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        reply(503, "down")
    })
    .await;
    let (gw, addr) = gateway(&format!(
        r#"
[upstreams.app]
targets = ["{}"]
retry_budget = {{ ratio = 0.1, min_concurrent = 2 }}
outlier_detection = {{ consecutive_5xx = 0 }}
circuit_breaker = {{ disabled = true }}
[[routes]]
upstream = "app"
retry = {{ attempts = 3, on_status = [503], backoff_base = "1ms" }}
"#,
        up.url()
    ))
    .await;
    let requests: Vec<_> = (0..20)
        .map(|_| tokio::spawn(async move { get(addr, "/").await.status }))
        .collect();
    for r in requests {
        assert_eq!(r.await.expect("join"), 503);
    }
    // Without a budget: 20 × 4 = 80 attempts. With it, at most 2 retries are in flight.
    let hits = up.hits();
    assert!((20..=30).contains(&hits), "{hits} attempts");
    let metrics = gw.metrics().encode_prometheus();
    assert!(
        metrics.contains("rampart_retry_budget_exhausted_total{upstream=\"app\"}"),
        "{metrics}"
    );
}

#[tokio::test]
async fn bulkheads_reject_the_excess_at_once() {
    let up = upstream(|_req| async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        reply(200, "slow")
    })
    .await;
    let (_gw, addr) = gateway(&format!(
        r#"
[upstreams.app]
targets = ["{0}"]
max_concurrent_requests = 2
[upstreams.other]
targets = ["{0}"]
[[routes]]
match = {{ path = "/pool" }}
upstream = "app"
[[routes]]
match = {{ path = "/route" }}
upstream = "other"
max_concurrent_requests = 1
"#,
        up.url()
    ))
    .await;
    for (path, allowed) in [("/pool", 2), ("/route", 1)] {
        let started = Instant::now();
        let requests: Vec<_> = (0..5)
            .map(|_| tokio::spawn(async move { get(addr, path).await }))
            .collect();
        let mut ok = 0;
        let mut rejected = 0;
        for r in requests {
            let answer = r.await.expect("join");
            match answer.status.as_u16() {
                200 => ok += 1,
                503 => {
                    assert_eq!(answer.headers["retry-after"], "1");
                    assert_eq!(
                        answer.json()["type"],
                        "urn:rampart:problem:concurrency-limit"
                    );
                    rejected += 1;
                }
                other => panic!("unexpected {other}"),
            }
        }
        assert_eq!((ok, rejected), (allowed, 5 - allowed), "{path}");
        assert!(started.elapsed() < Duration::from_millis(1000));
    }
}

#[tokio::test]
async fn per_try_and_total_timeouts_answer_504() {
    let up = upstream(|_req| async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        reply(200, "late")
    })
    .await;
    let (_gw, addr) = gateway(&format!(
        r#"
[upstreams.app]
targets = ["{}"]
[[routes]]
match = {{ path = "/try" }}
upstream = "app"
timeouts = {{ per_try = "100ms", total = "5s" }}
retry = {{ attempts = 0 }}
[[routes]]
match = {{ path = "/total" }}
upstream = "app"
timeouts = {{ per_try = "150ms", total = "400ms" }}
retry = {{ attempts = 5, on_timeout = true, backoff_base = "1ms" }}
"#,
        up.url()
    ))
    .await;
    let started = Instant::now();
    let answer = get(addr, "/try").await;
    assert_eq!(answer.status, 504);
    assert_eq!(
        answer.json()["type"],
        "urn:rampart:problem:upstream-timeout"
    );
    assert!(started.elapsed() < Duration::from_millis(1000));

    let started = Instant::now();
    let answer = get(addr, "/total").await;
    assert_eq!(answer.status, 504);
    assert_eq!(answer.json()["type"], "urn:rampart:problem:request-timeout");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_millis(1200),
        "{took:?}"
    );
}

/// An HTTP/1.1 upstream that counts its connections: `/fast` answers at once, any
/// other path after two seconds.
async fn counting_upstream() -> (SocketAddr, Arc<AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&connections);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        let mut chunk = [0u8; 4096];
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    };
                    let fast = buf.starts_with(b"GET /fast ");
                    buf.drain(..end + 4);
                    if !fast {
                        tokio::time::sleep(Duration::from_secs(2)).await;
                    }
                    let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                    if stream.write_all(answer).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, connections)
}

#[tokio::test]
async fn per_try_timeout_holds_on_a_reused_connection_whatever_its_timer_did_before() {
    let (upstream_addr, connections) = counting_upstream().await;
    let (_gw, addr) = gateway(&format!(
        r#"
[upstreams.app]
targets = ["http://{upstream_addr}"]
[[routes]]
match = {{ path_prefix = "/" }}
upstream = "app"
timeouts = {{ per_try = "300ms", total = "5s" }}
retry = {{ attempts = 0 }}
"#
    ))
    .await;
    let slow_times_out_on_its_own_deadline = |took: Duration| {
        assert!(
            took >= Duration::from_millis(290) && took < Duration::from_millis(1500),
            "{took:?}"
        );
    };
    // A slow request on the connection a fast one used 150 ms before: the timer the
    // fast one armed would fire 150 ms into the slow one, which must still get its
    // full 300 ms.
    assert_eq!(get(addr, "/fast").await.status, 200);
    tokio::time::sleep(Duration::from_millis(150)).await;
    let started = Instant::now();
    let answer = get(addr, "/slow").await;
    assert_eq!(answer.status, 504);
    assert_eq!(
        answer.json()["type"],
        "urn:rampart:problem:upstream-timeout"
    );
    slow_times_out_on_its_own_deadline(started.elapsed());
    assert_eq!(
        connections.load(Ordering::SeqCst),
        1,
        "the connection was reused"
    );

    // The timed-out connection is gone; a new one's timer fires while it idles in the
    // pool, and the next slow request on it still waits its own 300 ms.
    assert_eq!(get(addr, "/fast").await.status, 200);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    assert_eq!(get(addr, "/slow").await.status, 504);
    slow_times_out_on_its_own_deadline(started.elapsed());
    assert_eq!(
        connections.load(Ordering::SeqCst),
        2,
        "the connection was reused"
    );

    // And a fast request after all that is answered.
    assert_eq!(get(addr, "/fast").await.status, 200);
}

#[tokio::test]
async fn connect_failures_answer_502_and_connect_timeouts_504_or_502() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead = closed.local_addr().expect("addr");
    drop(closed);
    // A listener that never accepts, with its queue filled: new connects hang.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind("127.0.0.1:0".parse().expect("addr"))
        .expect("bind");
    let stuck = socket.listen(1).expect("listen");
    let stuck_addr = stuck.local_addr().expect("addr");
    let mut fillers = Vec::new();
    for _ in 0..4 {
        if let Ok(Ok(s)) = tokio::time::timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(stuck_addr),
        )
        .await
        {
            fillers.push(s);
        }
    }
    let (_gw, addr) = gateway(&format!(
        r#"
[upstreams.dead]
targets = ["http://{dead}"]
[upstreams.stuck]
targets = ["http://{stuck_addr}"]
connect_timeout = "200ms"
[[routes]]
match = {{ path = "/dead" }}
upstream = "dead"
retry = {{ attempts = 0 }}
[[routes]]
match = {{ path = "/stuck" }}
upstream = "stuck"
retry = {{ attempts = 0 }}
"#
    ))
    .await;
    let answer = get(addr, "/dead").await;
    assert_eq!(answer.status, 502);
    let json = answer.json();
    assert_eq!(json["type"], "urn:rampart:problem:upstream-connect");
    assert!(json["request_id"].as_str().is_some_and(|id| !id.is_empty()));
    assert!(
        !answer.text().contains(&dead.to_string()),
        "internal details are not sent"
    );

    let started = Instant::now();
    let answer = get(addr, "/stuck").await;
    assert_eq!(answer.status, 502);
    assert_eq!(
        answer.json()["type"],
        "urn:rampart:problem:upstream-connect"
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(190) && took < Duration::from_millis(1500),
        "{took:?}"
    );
    drop(fillers);
}

#[tokio::test]
async fn idle_client_connections_are_closed() {
    let (_gw, addr) = gateway(
        r#"
server = { idle_timeout = "300ms" }
[upstreams.echo]
targets = ["builtin:echo"]
[[routes]]
upstream = "echo"
"#,
    )
    .await;
    use tokio::io::AsyncReadExt;
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let started = Instant::now();
    let mut buf = [0u8; 256];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await;
    let took = started.elapsed();
    assert!(
        matches!(read, Ok(Ok(_)) | Ok(Err(_))),
        "the server closed the connection"
    );
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(3),
        "{took:?}"
    );
}

#[tokio::test]
async fn the_idle_timeout_counts_from_the_last_request() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (_gw, addr) = gateway(
        r#"
server = { idle_timeout = "400ms" }
[upstreams.echo]
targets = ["builtin:echo"]
[[routes]]
upstream = "echo"
"#,
    )
    .await;
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut buf = vec![0u8; 64 * 1024];
    // Requests 250 ms apart keep the connection: the timer armed for the first wait
    // fires during the second and is moved, not obeyed.
    let mut last = Instant::now();
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n")
            .await
            .expect("write");
        let n = stream.read(&mut buf).await.expect("read");
        assert!(
            String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
            "the connection is kept while requests come"
        );
        last = Instant::now();
    }
    // Then idle: closed 400 ms after the last request, by a timer that fired early
    // and was moved at least once.
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await;
    let took = last.elapsed();
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "the server closed the connection: {read:?}"
    );
    assert!(
        took >= Duration::from_millis(350) && took < Duration::from_secs(2),
        "{took:?}"
    );
}

#[tokio::test]
async fn fault_injection_delays_and_aborts() {
    let up = fixed("ok").await;
    let (_gw, addr) = gateway(&format!(
        r#"
[upstreams.app]
targets = ["{}"]
[[routes]]
match = {{ path = "/abort" }}
upstream = "app"
fault = {{ abort_percent = 100, abort_status = 418 }}
[[routes]]
match = {{ path = "/delay" }}
upstream = "app"
fault = {{ delay = "200ms", delay_percent = 100 }}
[[routes]]
match = {{ path = "/never" }}
upstream = "app"
fault = {{ abort_percent = 0 }}
"#,
        up.url()
    ))
    .await;
    let answer = get(addr, "/abort").await;
    assert_eq!(answer.status, 418);
    assert_eq!(up.hits(), 0);
    let started = Instant::now();
    assert_eq!(get(addr, "/delay").await.text(), "ok");
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(get(addr, "/never").await.text(), "ok");
}
