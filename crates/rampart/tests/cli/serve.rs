//! `rampart serve` and `rampart proxy` as real processes.

use std::time::Duration;

use crate::support::*;

fn config(public: u16, admin: u16, version: &str, extra_route: &str) -> String {
    format!(
        r#"
admin = {{ listen = "127.0.0.1:{admin}" }}
log = {{ access_log = "access.log" }}
server = {{ shutdown_grace = "10s" }}
[[listeners]]
name = "public"
address = "127.0.0.1:{public}"
[upstreams.echo]
targets = ["builtin:echo"]
[[routes]]
upstream = "echo"
response_headers = {{ set = {{ x-config = "{version}" }} }}
{extra_route}
"#
    )
}

#[tokio::test]
async fn serve_answers_exports_metrics_and_writes_the_access_log() {
    let dir = temp_dir("serve");
    let (public, admin) = (free_port(), free_port());
    std::fs::write(dir.join("rampart.toml"), config(public, admin, "v1", "")).expect("write");
    let process = Running::start(&["serve", "--config", "rampart.toml"], &dir);
    let answer = wait_until_up(&format!("http://127.0.0.1:{public}/hello"), &process).await;
    assert_eq!(answer.status, 200);
    let json: serde_json::Value = serde_json::from_slice(&answer.body).expect("echo JSON");
    assert_eq!(json["path"], "/hello");

    assert_eq!(
        get(&format!("http://127.0.0.1:{admin}/healthz"))
            .await
            .expect("healthz")
            .status,
        200
    );
    let ready = get(&format!("http://127.0.0.1:{admin}/readyz"))
        .await
        .expect("readyz");
    assert_eq!(ready.status, 200, "{}", ready.text());
    let metrics = get(&format!("http://127.0.0.1:{admin}/metrics"))
        .await
        .expect("metrics");
    let text = metrics.text();
    assert!(
        text.contains("rampart_requests_total{route=\"route-0\",method=\"GET\",status=\"2xx\"} 1"),
        "{text}"
    );
    assert!(
        text.contains(
            "rampart_upstream_target_healthy{upstream=\"echo\",target=\"builtin:echo\"} 1"
        ),
        "{text}"
    );
    promtool_check(&text);

    let access_log = dir.join("access.log");
    let mut line = String::new();
    for _ in 0..100 {
        line = std::fs::read_to_string(&access_log).unwrap_or_default();
        if !line.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let record: serde_json::Value =
        serde_json::from_str(line.lines().next().unwrap_or("")).expect("JSON line");
    assert_eq!(record["path"], "/hello");
    assert_eq!(record["status"], 200);
    assert_eq!(record["route"], "route-0");
    assert_eq!(
        record["request_id"],
        answer.headers["x-request-id"].to_str().expect("ascii")
    );
    assert!(record["phases_ms"]["upstream"].as_f64().is_some());
    assert!(dir.join("data").is_dir(), "the data dir is created");
}

/// Runs promtool when it is installed; `.ci/run` sets RAMPART_REQUIRE_PROMTOOL so
/// that CI cannot skip this check silently.
fn promtool_check(text: &str) {
    use std::io::Write;
    let child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(_) if std::env::var_os("RAMPART_REQUIRE_PROMTOOL").is_none() => {
            eprintln!(
                "SKIPPED promtool check: promtool is not installed (Debian package `prometheus`)"
            );
            return;
        }
        Err(e) => panic!("promtool required but not runnable: {e}"),
    };
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn reload_on_sighup_and_file_change_keeps_the_old_config_when_the_new_one_is_bad() {
    let dir = temp_dir("reload");
    let (public, admin) = (free_port(), free_port());
    let file = dir.join("rampart.toml");
    std::fs::write(&file, config(public, admin, "v1", "")).expect("write");
    let process = Running::start(&["serve", "--config", "rampart.toml"], &dir);
    let url = format!("http://127.0.0.1:{public}/");
    assert_eq!(
        wait_until_up(&url, &process).await.headers["x-config"],
        "v1"
    );

    std::fs::write(&file, "this is = not [valid").expect("write");
    process.signal("HUP");
    let mut refused = false;
    for _ in 0..100 {
        if process.log().contains("config reload refused") {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(refused, "log:\n{}", process.log());
    assert_eq!(
        get(&url).await.expect("still serving").headers["x-config"],
        "v1"
    );

    // A valid file is picked up on change, without a signal.
    std::fs::write(&file, config(public, admin, "v2", "")).expect("write");
    let mut version = String::new();
    for _ in 0..100 {
        version = get(&url).await.expect("serving").headers["x-config"]
            .to_str()
            .unwrap_or("")
            .to_string();
        if version == "v2" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(version, "v2", "log:\n{}", process.log());
    let metrics = get(&format!("http://127.0.0.1:{admin}/metrics"))
        .await
        .expect("metrics")
        .text();
    // The bad file was refused at least once (on the signal, and maybe on the file change too).
    let failures: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("rampart_config_reload_failures_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    assert!(failures >= 1, "{metrics}");
}

#[tokio::test]
async fn sigterm_drains_requests_in_flight_and_exits_0() {
    let dir = temp_dir("sigterm");
    let (public, admin) = (free_port(), free_port());
    let slow = r#"
[[routes]]
match = { path = "/slow" }
upstream = "echo"
fault = { delay = "700ms", delay_percent = 100 }
"#;
    std::fs::write(dir.join("rampart.toml"), config(public, admin, "v1", slow)).expect("write");
    let mut process = Running::start(&["serve", "--config", "rampart.toml"], &dir);
    wait_until_up(&format!("http://127.0.0.1:{public}/"), &process).await;
    let in_flight =
        tokio::spawn(async move { get(&format!("http://127.0.0.1:{public}/slow")).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    process.signal("TERM");
    let answer = in_flight
        .await
        .expect("join")
        .expect("the request in flight completes");
    assert_eq!(answer.status, 200);
    let code = tokio::task::spawn_blocking(move || {
        let code = process.wait(Duration::from_secs(10));
        (code, process.log())
    })
    .await
    .expect("join");
    assert_eq!(code.0, Some(0), "log:\n{}", code.1);
    assert!(code.1.contains("shutting down"), "{}", code.1);
}

#[tokio::test]
async fn proxy_mode_needs_no_config_file() {
    let dir = temp_dir("proxy");
    let (public, admin) = (free_port(), free_port());
    let process = Running::start(
        &[
            "proxy",
            "--from",
            &addr(public).to_string(),
            "--to",
            "builtin:echo",
            "--admin",
            &addr(admin).to_string(),
            "--workers",
            "1",
            "--access-log",
            "off",
        ],
        &dir,
    );
    let answer = wait_until_up(&format!("http://127.0.0.1:{public}/zero-config"), &process).await;
    assert_eq!(answer.status, 200);
    assert!(answer.text().contains("/zero-config"));
    assert_eq!(
        get(&format!("http://127.0.0.1:{admin}/readyz"))
            .await
            .expect("readyz")
            .status,
        200
    );
    assert!(
        dir.join("data/admin-token").is_file(),
        "the default data dir"
    );
}

#[tokio::test]
async fn proxy_mode_keeps_its_data_where_it_is_told() {
    let dir = temp_dir("proxy-data");
    let (public, admin) = (free_port(), free_port());
    let mut command = std::process::Command::new(binary());
    command
        .args([
            "proxy",
            "--from",
            &addr(public).to_string(),
            "--to",
            "builtin:echo",
        ])
        .args(["--admin", &addr(admin).to_string(), "--access-log", "off"])
        .current_dir(&dir)
        .env("RAMPART_DATA_DIR", "from-env");
    let stderr = dir.join("stderr.log");
    let child = command
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&stderr).expect("stderr"))
        .spawn()
        .expect("spawn");
    let process = Running { child, stderr };
    wait_until_up(&format!("http://127.0.0.1:{public}/"), &process).await;
    assert!(
        dir.join("from-env/admin-token").is_file(),
        "{}",
        process.log()
    );
    assert!(!dir.join("data").exists(), "nothing in ./data");
    drop(process);
    let (public, admin) = (free_port(), free_port());
    let process = Running::start(
        &[
            "proxy",
            "--from",
            &addr(public).to_string(),
            "--to",
            "builtin:echo",
            "--admin",
            &addr(admin).to_string(),
            "--access-log",
            "off",
            "--data-dir",
            "flagged",
        ],
        &dir,
    );
    wait_until_up(&format!("http://127.0.0.1:{public}/"), &process).await;
    assert!(
        dir.join("flagged/admin-token").is_file(),
        "{}",
        process.log()
    );
}

#[tokio::test]
async fn a_missing_certificate_stops_startup_with_the_file_named() {
    let dir = temp_dir("badcert");
    let (public, admin) = (free_port(), free_port());
    std::fs::write(
        dir.join("rampart.toml"),
        format!(
            r#"
admin = {{ listen = "127.0.0.1:{admin}" }}
[[listeners]]
name = "secure"
address = "127.0.0.1:{public}"
tls = {{ certificates = [{{ cert = "missing.pem", key = "missing.key" }}] }}
[upstreams.echo]
targets = ["builtin:echo"]
[[routes]]
upstream = "echo"
"#
        ),
    )
    .expect("write");
    let mut process = Running::start(&["serve", "--config", "rampart.toml"], &dir);
    let code =
        tokio::task::spawn_blocking(move || (process.wait(Duration::from_secs(10)), process.log()))
            .await
            .expect("join");
    assert_eq!(code.0, Some(1));
    assert!(code.1.contains("missing.pem"), "{}", code.1);
    assert!(code.1.contains("listener secure"), "{}", code.1);
}
