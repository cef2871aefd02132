//! Routing precedence, rewriting, header operations and load balancing.

use std::collections::HashMap;

use http_body_util::Full;

use crate::support::*;

/// Method, host, path, extra headers, expected route.
type RoutingCase = (
    &'static str,
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static str,
);

#[tokio::test]
async fn the_most_specific_route_wins() {
    let (_gw, addr) = gateway(
        r#"
[upstreams.echo]
targets = ["builtin:echo"]

[[routes]]
name = "any"
upstream = "echo"
response_headers = { set = { x-route = "any" } }

[[routes]]
name = "prefix-api"
match = { path_prefix = "/api" }
upstream = "echo"
response_headers = { set = { x-route = "prefix-api" } }

[[routes]]
name = "prefix-api-v2"
match = { path_prefix = "/api/v2" }
upstream = "echo"
response_headers = { set = { x-route = "prefix-api-v2" } }

[[routes]]
name = "regex"
match = { path_regex = "/api/items/[0-9]+" }
upstream = "echo"
response_headers = { set = { x-route = "regex" } }

[[routes]]
name = "exact"
match = { path = "/api/v2/status" }
upstream = "echo"
response_headers = { set = { x-route = "exact" } }

[[routes]]
name = "post-only"
match = { path_prefix = "/api", methods = ["POST"] }
upstream = "echo"
response_headers = { set = { x-route = "post-only" } }

[[routes]]
name = "wildcard-host"
match = { hosts = ["*.example.com"] }
upstream = "echo"
response_headers = { set = { x-route = "wildcard-host" } }

[[routes]]
name = "exact-host"
match = { hosts = ["api.example.com"] }
upstream = "echo"
response_headers = { set = { x-route = "exact-host" } }

[[routes]]
name = "header"
match = { path_prefix = "/api", headers = { x-canary = "1" } }
upstream = "echo"
response_headers = { set = { x-route = "header" } }
"#,
    )
    .await;
    let c = client();
    let cases: &[RoutingCase] = &[
        ("GET", "localhost", "/", &[], "any"),
        ("GET", "localhost", "/apiary", &[], "any"),
        ("GET", "localhost", "/api", &[], "prefix-api"),
        ("GET", "localhost", "/api/users", &[], "prefix-api"),
        ("GET", "localhost", "/api/v2/users", &[], "prefix-api-v2"),
        ("GET", "localhost", "/api/items/42", &[], "regex"),
        ("GET", "localhost", "/api/items/x", &[], "prefix-api"),
        ("GET", "localhost", "/api/v2/status", &[], "exact"),
        ("POST", "localhost", "/api/users", &[], "post-only"),
        (
            "GET",
            "localhost",
            "/api/users",
            &[("x-canary", "1")],
            "header",
        ),
        (
            "GET",
            "www.example.com",
            "/api/v2/status",
            &[],
            "wildcard-host",
        ),
        ("GET", "API.example.com:8080", "/", &[], "exact-host"),
        ("GET", "example.com", "/", &[], "any"),
    ];
    for (method, host, path, headers, expected) in cases {
        let mut builder = request(method, format!("http://{addr}{path}")).header("host", *host);
        for (k, v) in *headers {
            builder = builder.header(*k, *v);
        }
        let answer = send(&c, builder.body(Full::default()).expect("request")).await;
        assert_eq!(
            answer
                .headers
                .get("x-route")
                .map(|v| v.to_str().unwrap_or("")),
            Some(*expected),
            "{method} {host}{path} {headers:?}"
        );
    }
}

#[tokio::test]
async fn no_matching_route_is_a_404_problem() {
    let (_gw, addr) = gateway(
        r#"
[upstreams.echo]
targets = ["builtin:echo"]
[[routes]]
match = { path = "/only" }
upstream = "echo"
"#,
    )
    .await;
    let answer = get(addr, "/elsewhere").await;
    assert_eq!(answer.status, 404);
    assert_eq!(answer.headers["content-type"], "application/problem+json");
    let json = answer.json();
    assert_eq!(json["status"], 404);
    assert_eq!(
        json["request_id"],
        answer.headers["x-request-id"].to_str().expect("ascii")
    );
}

#[tokio::test]
async fn prefix_strip_rewrite_and_header_operations() {
    let up = upstream(|req| async move {
        let seen = format!(
            "{}|{}|{}|{}",
            req.uri(),
            req.headers()
                .get("x-added")
                .map_or("", |v| v.to_str().unwrap_or("")),
            req.headers()
                .get("x-set")
                .map_or("", |v| v.to_str().unwrap_or("")),
            req.headers().contains_key("x-drop")
        );
        let mut r = reply(200, seen);
        r.headers_mut()
            .insert("x-internal", "secret".parse().expect("value"));
        r
    })
    .await;
    let (_gw, addr) = gateway(&format!(
        r#"
[upstreams.app]
targets = ["{}"]
[[routes]]
match = {{ path_prefix = "/public/" }}
upstream = "app"
rewrite = {{ strip_prefix = true, add_prefix = "/v2" }}
request_headers = {{ remove = ["x-drop"], set = {{ x-set = "fixed" }}, add = {{ x-added = "yes" }} }}
response_headers = {{ remove = ["x-internal"], add = {{ x-served-by = "rampart" }} }}
"#,
        up.url()
    ))
    .await;
    let answer = send(
        &client(),
        request("GET", format!("http://{addr}/public/items?q=1"))
            .header("x-drop", "1")
            .header("x-set", "client")
            .body(Full::default())
            .expect("request"),
    )
    .await;
    assert_eq!(answer.text(), "/v2/items?q=1|yes|fixed|false");
    assert!(!answer.headers.contains_key("x-internal"));
    assert_eq!(answer.headers["x-served-by"], "rampart");
    assert_eq!(get(addr, "/public").await.text(), "/v2/|yes|fixed|false");
}

async fn target_counts(
    addr: std::net::SocketAddr,
    n: usize,
    header: Option<(&str, String)>,
) -> HashMap<String, usize> {
    let c = client();
    let mut counts = HashMap::new();
    for i in 0..n {
        let mut b = request("GET", format!("http://{addr}/"));
        if let Some((k, v)) = &header {
            b = b.header(
                *k,
                format!(
                    "{v}{}",
                    if v.is_empty() {
                        i.to_string()
                    } else {
                        String::new()
                    }
                ),
            );
        }
        let answer = send(&c, b.body(Full::default()).expect("request")).await;
        *counts.entry(answer.text()).or_default() += 1;
    }
    counts
}

#[tokio::test]
async fn weighted_round_robin_follows_weights() {
    let a = fixed("a").await;
    let b = fixed("b").await;
    let (_gw, addr) = gateway(&format!(
        r#"
[upstreams.app]
targets = [{{ url = "{}", weight = 3 }}, "{}"]
[[routes]]
upstream = "app"
"#,
        a.url(),
        b.url()
    ))
    .await;
    let counts = target_counts(addr, 40, None).await;
    assert_eq!(counts.get("a"), Some(&30), "{counts:?}");
    assert_eq!(counts.get("b"), Some(&10), "{counts:?}");
}

#[tokio::test]
async fn consistent_hash_keeps_a_key_on_one_target() {
    let a = fixed("a").await;
    let b = fixed("b").await;
    let c = fixed("c").await;
    let (_gw, addr) = gateway(&format!(
        r#"
[upstreams.app]
targets = ["{}", "{}", "{}"]
balance = "consistent_hash"
hash_on = "header:x-user"
[[routes]]
upstream = "app"
"#,
        a.url(),
        b.url(),
        c.url()
    ))
    .await;
    for user in ["alice", "bob", "carol", "dave"] {
        let counts = target_counts(addr, 10, Some(("x-user", user.to_string()))).await;
        assert_eq!(counts.len(), 1, "{user} spread over {counts:?}");
    }
    // Different keys do spread over the targets.
    let spread = target_counts(addr, 60, Some(("x-user", String::new()))).await;
    assert_eq!(spread.len(), 3, "{spread:?}");
}

#[tokio::test]
async fn least_connections_avoids_the_busy_target() {
    let slow = upstream(|_req| async {
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
        reply(200, "slow")
    })
    .await;
    let quick = fixed("quick").await;
    let (_gw, addr) = gateway(&format!(
        r#"
[upstreams.app]
targets = ["{}", "{}"]
balance = "least_connections"
[[routes]]
upstream = "app"
"#,
        slow.url(),
        quick.url()
    ))
    .await;
    // The first request (cursor at the first target) occupies the slow target; while it
    // is busy every other request must go to the idle one.
    let busy = tokio::spawn(async move { get(addr, "/").await });
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let counts = target_counts(addr, 10, None).await;
    assert_eq!(counts.get("quick"), Some(&10), "{counts:?}");
    assert_eq!(busy.await.expect("join").text(), "slow");
}

#[tokio::test]
async fn consistent_hash_on_a_cookie_or_the_client_ip() {
    let a = fixed("a").await;
    let b = fixed("b").await;
    let c = fixed("c").await;
    let (_gw, addr) = gateway(&format!(
        r#"
[upstreams.by_cookie]
targets = ["{0}", "{1}", "{2}"]
balance = "consistent_hash"
hash_on = "cookie:session"
[upstreams.by_ip]
targets = ["{0}", "{1}", "{2}"]
balance = "consistent_hash"
[[routes]]
match = {{ path = "/cookie" }}
upstream = "by_cookie"
[[routes]]
match = {{ path = "/ip" }}
upstream = "by_ip"
"#,
        a.url(),
        b.url(),
        c.url()
    ))
    .await;
    let client = client();
    let mut seen = std::collections::HashSet::new();
    for session in ["s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8"] {
        let mut targets = std::collections::HashSet::new();
        for _ in 0..5 {
            let answer = send(
                &client,
                request("GET", format!("http://{addr}/cookie"))
                    .header("cookie", format!("theme=dark; session={session}"))
                    .body(Full::default())
                    .expect("request"),
            )
            .await;
            targets.insert(answer.text());
        }
        assert_eq!(targets.len(), 1, "session {session} stuck to one target");
        seen.extend(targets);
    }
    assert!(seen.len() >= 2, "sessions spread over targets: {seen:?}");
    // Every request here comes from 127.0.0.1: one target.
    let by_ip = target_counts_path(addr, "/ip", 10).await;
    assert_eq!(by_ip.len(), 1, "{by_ip:?}");
}

async fn target_counts_path(
    addr: std::net::SocketAddr,
    path: &str,
    n: usize,
) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for _ in 0..n {
        *counts.entry(get(addr, path).await.text()).or_default() += 1;
    }
    counts
}

/// A gateway whose one route goes to an upstream answering "ok" behind a relay that
/// counts the TCP connections made to it; the pool keeps idle connections `idle_timeout`.
async fn gateway_counting_upstream_connections(
    idle_timeout: &str,
) -> (
    rampart_proxy::Gateway,
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = std::sync::Arc::clone(&accepted);
    let inner = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let inner_addr = inner.local_addr().expect("addr");
    let up = upstream_on(inner, |_req| async { reply(200, "ok") });
    let front = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _up = up;
        while let Ok((mut client_side, _)) = listener.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                if let Ok(mut server_side) = tokio::net::TcpStream::connect(inner_addr).await {
                    let _ = tokio::io::copy_bidirectional(&mut client_side, &mut server_side).await;
                }
            });
        }
    });
    let (gw, addr) = gateway(&format!(
        r#"
[upstreams.app]
targets = ["http://{front}"]
pool = {{ max_idle_per_target = 4, idle_timeout = "{idle_timeout}" }}
[[routes]]
upstream = "app"
"#
    ))
    .await;
    (gw, addr, accepted)
}

#[tokio::test]
async fn upstream_connections_are_kept_alive_and_reused() {
    let (_gw, addr, accepted) = gateway_counting_upstream_connections("30s").await;
    for _ in 0..20 {
        assert_eq!(get(addr, "/").await.text(), "ok");
    }
    assert_eq!(
        accepted.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "20 sequential requests, one upstream connection"
    );
}

#[tokio::test]
async fn an_upstream_connection_idle_past_the_pool_timeout_is_not_reused() {
    let (_gw, addr, accepted) = gateway_counting_upstream_connections("300ms").await;
    let connections = || accepted.load(std::sync::atomic::Ordering::SeqCst);
    for _ in 0..3 {
        assert_eq!(get(addr, "/").await.text(), "ok");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        connections(),
        1,
        "requests well within the timeout share one"
    );
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(get(addr, "/").await.text(), "ok");
    assert_eq!(connections(), 2, "after idling past it, a new connection");
}

#[tokio::test]
async fn each_request_on_a_connection_is_routed_by_its_own_host() {
    let (_gw, addr) = gateway(
        r#"
[upstreams.echo]
targets = ["builtin:echo"]
[[routes]]
name = "shop"
match = { hosts = ["shop.test"] }
upstream = "echo"
response_headers = { set = { x-route = "shop" } }
[[routes]]
name = "any"
upstream = "echo"
response_headers = { set = { x-route = "any" } }
"#,
    )
    .await;
    // One connection, the host changing from request to request (and its case and
    // port with it): the connection's remembered host must follow.
    let answer = raw(
        addr,
        b"GET /1 HTTP/1.1\r\nHost: shop.test\r\n\r\n\
          GET /2 HTTP/1.1\r\nHost: other.test\r\n\r\n\
          GET /3 HTTP/1.1\r\nHost: SHOP.test:8080\r\n\r\n\
          GET /4 HTTP/1.1\r\nHost: other.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    let routes: Vec<&str> = answer
        .lines()
        .filter_map(|line| line.strip_prefix("x-route: "))
        .collect();
    assert_eq!(routes, ["shop", "any", "shop", "any"], "{answer}");
}
