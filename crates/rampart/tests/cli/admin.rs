//! The control plane end to end: bootstrap token, the admin CLI, restarts, and two
//! instances sharing Postgres.

use std::process::Command;
use std::time::Duration;

use crate::support::*;

pub fn config(public: u16, admin: u16) -> String {
    format!(
        r#"
admin = {{ listen = "127.0.0.1:{admin}" }}
log = {{ access_log = "off" }}
[[listeners]]
name = "public"
address = "127.0.0.1:{public}"
[upstreams.echo]
targets = ["builtin:echo"]
[[routes]]
upstream = "echo"
"#
    )
}

/// Runs the CLI in `dir` against `admin`; returns (exit code, stdout, stderr).
pub fn cli(
    dir: &std::path::Path,
    admin: u16,
    args: &[&str],
    env: &[(&str, &str)],
) -> (i32, String, String) {
    let mut command = Command::new(binary());
    command.args(args);
    if !args.contains(&"--admin-url") {
        command.args(["--admin-url", &format!("http://127.0.0.1:{admin}")]);
    }
    command
        .current_dir(dir)
        .env_remove("RAMPART_ADMIN_TOKEN")
        .env_remove("RAMPART_ADMIN_URL");
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command.output().expect("run cli");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn a_new_user_creates_a_consumer_and_key_with_the_cli_and_they_survive_a_restart() {
    let dir = temp_dir("quickstart-admin");
    let (public, admin) = (free_port(), free_port());
    std::fs::write(dir.join("rampart.toml"), config(public, admin)).expect("write");
    let mut process = Running::start(&["serve", "--config", "rampart.toml"], &dir);
    wait_until_up(&format!("http://127.0.0.1:{admin}/healthz"), &process).await;
    assert!(
        dir.join("data/admin-token").is_file(),
        "log:\n{}",
        process.log()
    );
    assert!(
        process.log().contains("data/admin-token"),
        "the log names the file"
    );
    let token = std::fs::read_to_string(dir.join("data/admin-token")).expect("token");
    assert!(
        !process.log().contains(token.trim()),
        "the token itself is never logged"
    );

    // The CLI finds the token in ./data/admin-token.
    let (code, out, err) = cli(
        &dir,
        admin,
        &[
            "consumers",
            "create",
            "--name",
            "billing",
            "--tenant",
            "acme",
            "--json",
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let consumer: serde_json::Value = serde_json::from_str(&out).expect("json");
    let id = consumer["id"].as_str().expect("id").to_string();
    let (code, out, err) = cli(
        &dir,
        admin,
        &[
            "keys",
            "create",
            "--consumer",
            &id,
            "--scope",
            "orders:read",
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("secret (shown once): rk_"), "{out}");
    let (code, out, _) = cli(&dir, admin, &["consumers", "list"], &[]);
    assert_eq!(code, 0);
    assert!(out.starts_with("ID"), "a table: {out}");
    assert!(out.contains("billing") && out.contains("acme"), "{out}");

    // Errors are clear and exit 1.
    let (code, _, err) = cli(
        &dir,
        admin,
        &["consumers", "create", "--name", "bad name"],
        &[],
    );
    assert_eq!(code, 1);
    assert!(err.contains("422") && err.contains("name:"), "{err}");
    let (code, _, err) = cli(
        &dir,
        admin,
        &["consumers", "list", "--token", "rat_0_0"],
        &[],
    );
    assert_eq!(code, 1);
    assert!(err.contains("401"), "{err}");
    let (code, _, err) = cli(
        &dir,
        admin,
        &["consumers", "list", "--admin-url", "http://127.0.0.1:1"],
        &[],
    );
    assert_eq!(code, 1);
    assert!(err.contains("cannot reach the admin API"), "{err}");

    process.signal("TERM");
    let exited = tokio::task::spawn_blocking(move || process.wait(Duration::from_secs(10)))
        .await
        .expect("join");
    assert_eq!(exited, Some(0));

    let process = Running::start(&["serve", "--config", "rampart.toml"], &dir);
    wait_until_up(&format!("http://127.0.0.1:{admin}/healthz"), &process).await;
    let (code, out, err) = cli(
        &dir,
        admin,
        &["keys", "list", "--consumer", &id, "--json"],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let keys: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(
        keys["items"][0]["scopes"][0], "orders:read",
        "still there after a restart"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("data/admin-token")).expect("token"),
        token,
        "no second bootstrap token"
    );
}

#[tokio::test]
async fn two_instances_on_one_postgres_share_consumers_and_keys() {
    let Some(scoped) = scoped_postgres("two instances").await else {
        return;
    };

    let dir_a = temp_dir("pg-a");
    let dir_b = temp_dir("pg-b");
    let (public_a, admin_a, public_b, admin_b) =
        (free_port(), free_port(), free_port(), free_port());
    std::fs::write(dir_a.join("rampart.toml"), config(public_a, admin_a)).expect("write");
    std::fs::write(dir_b.join("rampart.toml"), config(public_b, admin_b)).expect("write");
    let start = |dir: &std::path::Path| {
        let stderr = dir.join("stderr.log");
        let child = Command::new(binary())
            .args(["serve", "--config", "rampart.toml"])
            .current_dir(dir)
            .env("RAMPART_DATABASE_URL", &scoped)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&stderr).expect("stderr"))
            .spawn()
            .expect("spawn");
        Running { child, stderr }
    };
    let a = start(&dir_a);
    wait_until_up(&format!("http://127.0.0.1:{admin_a}/readyz"), &a).await;
    let b = start(&dir_b);
    wait_until_up(&format!("http://127.0.0.1:{admin_b}/readyz"), &b).await;
    // One shared store: A wrote the bootstrap token; B found a token and wrote none.
    assert!(dir_a.join("data/admin-token").is_file(), "{}", a.log());
    assert!(!dir_b.join("data/admin-token").exists(), "{}", b.log());
    let token = std::fs::read_to_string(dir_a.join("data/admin-token")).expect("token");
    let env = [("RAMPART_ADMIN_TOKEN", token.trim())];

    let (code, out, err) = cli(
        &dir_a,
        admin_a,
        &["consumers", "create", "--name", "shared", "--json"],
        &env,
    );
    assert_eq!(code, 0, "{err}");
    let id = serde_json::from_str::<serde_json::Value>(&out).expect("json")["id"]
        .as_str()
        .expect("id")
        .to_string();
    let (code, out, err) = cli(
        &dir_a,
        admin_a,
        &["keys", "create", "--consumer", &id, "--json"],
        &env,
    );
    assert_eq!(code, 0, "{err}");
    let key_id = serde_json::from_str::<serde_json::Value>(&out).expect("json")["key"]["id"]
        .as_str()
        .expect("id")
        .to_string();

    let (code, out, err) = cli(
        &dir_b,
        admin_b,
        &["keys", "list", "--consumer", &id, "--json"],
        &env,
    );
    assert_eq!(code, 0, "{err}");
    let listed: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(
        listed["items"][0]["id"],
        key_id.as_str(),
        "B lists the key A created"
    );
}

/// Schemathesis (PyPI) fuzzes the admin API from its own OpenAPI document: no 5xx and
/// no response that violates the schema. `.ci/run` installs it and sets
/// RAMPART_REQUIRE_SCHEMATHESIS so that CI cannot skip it silently.
#[tokio::test]
async fn schemathesis_finds_no_server_error_and_no_schema_violation() {
    if Command::new("st").arg("--version").output().is_err() {
        assert!(
            std::env::var_os("RAMPART_REQUIRE_SCHEMATHESIS").is_none(),
            "schemathesis is required here but `st` is not installed"
        );
        eprintln!("SKIPPED schemathesis: `st` is not installed (pip install schemathesis)");
        return;
    }
    let dir = temp_dir("schemathesis");
    let (public, admin) = (free_port(), free_port());
    std::fs::write(dir.join("rampart.toml"), config(public, admin)).expect("write");
    let process = Running::start(&["serve", "--config", "rampart.toml"], &dir);
    let spec = wait_until_up(&format!("http://127.0.0.1:{admin}/openapi.json"), &process).await;
    let document: serde_json::Value = serde_json::from_slice(&spec.body).expect("OpenAPI JSON");
    assert_eq!(document["openapi"], "3.1.0");
    assert!(document["paths"]["/consumers"]["post"].is_object());
    let token = std::fs::read_to_string(dir.join("data/admin-token")).expect("token");
    let st_dir = dir.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("st")
            // Its example cache goes to the working directory: keep it out of the tree.
            .current_dir(&st_dir)
            .args([
                "run",
                &format!("http://127.0.0.1:{admin}/openapi.json"),
                "-H",
                &format!("Authorization: Bearer {}", token.trim()),
                "--checks",
                "not_a_server_error,response_schema_conformance",
                // Revoking the token the fuzzer itself uses would end the run early.
                "--exclude-path",
                "/admin/tokens/{id}/revoke",
                "--max-examples",
                "25",
                "--seed",
                "20261123",
                "--no-color",
            ])
            .output()
            .expect("run schemathesis")
    })
    .await
    .expect("join");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "schemathesis failed:\n{report}\nrampart log:\n{}",
        process.log()
    );
    assert!(report.contains("passed"), "{report}");
}

#[tokio::test]
async fn redis_shared_state_is_part_of_readiness() {
    let Ok(url) = std::env::var("RAMPART_TEST_REDIS_URL") else {
        eprintln!("SKIPPED (Redis): RAMPART_TEST_REDIS_URL is not set");
        return;
    };
    let dir = temp_dir("redis");
    let (public, admin) = (free_port(), free_port());
    let body = config(public, admin).replacen(
        "[[listeners]]",
        &format!(
            "redis = {{ url = \"{url}\", key_prefix = \"rampart-cli-test:\" }}\n[[listeners]]"
        ),
        1,
    );
    std::fs::write(dir.join("rampart.toml"), body).expect("write");
    let process = Running::start(&["serve", "--config", "rampart.toml"], &dir);
    let ready = wait_until_up(&format!("http://127.0.0.1:{admin}/readyz"), &process).await;
    assert_eq!(ready.status, 200, "{}", ready.text());
    assert!(
        process.log().contains("shared state in Redis"),
        "{}",
        process.log()
    );

    // A Redis that cannot be reached is a clear startup error.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead = closed.local_addr().expect("addr");
    drop(closed);
    let dir = temp_dir("redis-down");
    let (public, admin) = (free_port(), free_port());
    let body = config(public, admin).replacen(
        "[[listeners]]",
        &format!("redis = {{ url = \"redis://{dead}\" }}\n[[listeners]]"),
        1,
    );
    std::fs::write(dir.join("rampart.toml"), body).expect("write");
    let mut down = Running::start(&["serve", "--config", "rampart.toml"], &dir);
    let (code, log) =
        tokio::task::spawn_blocking(move || (down.wait(Duration::from_secs(15)), down.log()))
            .await
            .expect("join");
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("cannot connect to Redis"), "{log}");
}

#[tokio::test]
async fn the_last_admin_token_stays_and_an_offline_token_recovers_a_lost_one() {
    let dir = temp_dir("admin-recovery");
    let (public, admin) = (free_port(), free_port());
    std::fs::write(dir.join("rampart.toml"), config(public, admin)).expect("write");
    let mut process = Running::start(&["serve", "--config", "rampart.toml"], &dir);
    wait_until_up(&format!("http://127.0.0.1:{admin}/healthz"), &process).await;
    let (code, out, err) = cli(&dir, admin, &["admin", "token", "list", "--json"], &[]);
    assert_eq!(code, 0, "{err}");
    let listed: serde_json::Value = serde_json::from_str(&out).expect("json");
    let bootstrap = listed["items"][0]["id"].as_str().expect("id").to_string();

    // The only admin token cannot revoke itself, even beside an operator token.
    let (code, _, err) = cli(
        &dir,
        admin,
        &[
            "admin", "token", "create", "--name", "ops", "--role", "operator",
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = cli(&dir, admin, &["admin", "token", "revoke", &bootstrap], &[]);
    assert_eq!(code, 1);
    assert!(
        err.contains("409") && err.contains("last active admin token"),
        "{err}"
    );

    // While the gateway runs, its SQLite data dir's audit log is its own.
    let (code, _, err) = cli(
        &dir,
        admin,
        &[
            "admin",
            "token",
            "create",
            "--offline",
            "--name",
            "rescue",
            "--role",
            "admin",
        ],
        &[],
    );
    assert_eq!(code, 1);
    assert!(err.contains("stop it first"), "{err}");

    // The admin token is lost: with the gateway stopped, an offline token replaces it.
    process.signal("TERM");
    let exited = tokio::task::spawn_blocking(move || process.wait(Duration::from_secs(10)))
        .await
        .expect("join");
    assert_eq!(exited, Some(0));
    std::fs::remove_file(dir.join("data/admin-token")).expect("lose the token");
    let (code, out, err) = cli(
        &dir,
        admin,
        &[
            "admin",
            "token",
            "create",
            "--offline",
            "--name",
            "rescue",
            "--role",
            "admin",
        ],
        &[("RAMPART_DATA_DIR", "data")],
    );
    assert_eq!(code, 0, "{err}");
    let secret = out
        .lines()
        .find_map(|l| l.strip_prefix("secret (shown once): "))
        .expect("secret")
        .to_string();
    let (code, out, err) = cli(
        &dir,
        admin,
        &[
            "admin",
            "token",
            "create",
            "--offline",
            "--name",
            "x",
            "--role",
            "admin",
            "--data-dir",
            "elsewhere",
        ],
        &[],
    );
    assert_eq!(code, 1, "{out}");
    assert!(err.contains("not a Rampart data dir"), "{err}");

    let process = Running::start(&["serve", "--config", "rampart.toml"], &dir);
    wait_until_up(&format!("http://127.0.0.1:{admin}/healthz"), &process).await;
    assert!(
        !dir.join("data/admin-token").exists(),
        "an admin token is active: no new bootstrap token"
    );
    let (code, out, err) = cli(
        &dir,
        admin,
        &["admin", "token", "revoke", &bootstrap, "--json"],
        &[("RAMPART_ADMIN_TOKEN", &secret)],
    );
    assert_eq!(code, 0, "the offline token works: {err}");
    assert!(out.contains("revoked_at"), "{out}");
    drop(process);

    // The offline creation is in the audit log, and the log verifies.
    let out = std::process::Command::new(binary())
        .args(["audit", "tail", "--data-dir", "data"])
        .current_dir(&dir)
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    let offline = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json"))
        .find(|l| {
            l["entry"]["action"] == "admin_token.create"
                && l["entry"]["actor"]
                    .as_str()
                    .is_some_and(|a| a.starts_with("offline:"))
        })
        .unwrap_or_else(|| panic!("no offline entry in {text}"));
    assert_eq!(offline["entry"]["outcome"], "success");
    let out = std::process::Command::new(binary())
        .args(["audit", "verify", "--quiet", "--data-dir", "data"])
        .current_dir(&dir)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Sends `GET path` to the public listener with `headers`; returns the status.
async fn public_status(public: u16, path: &str, headers: &[(&str, &str)]) -> u16 {
    let client: hyper_util::client::legacy::Client<_, http_body_util::Full<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let mut request = http::Request::get(format!("http://127.0.0.1:{public}{path}"));
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let request = request
        .body(http_body_util::Full::default())
        .expect("request");
    client
        .request(request)
        .await
        .expect("response")
        .status()
        .as_u16()
}

/// Polls until `path` answers `want` (at most `within`); returns whether it did.
async fn answers(
    public: u16,
    path: &str,
    headers: &[(&str, &str)],
    want: u16,
    within: Duration,
) -> bool {
    let deadline = std::time::Instant::now() + within;
    loop {
        if public_status(public, path, headers).await == want {
            return true;
        }
        if std::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn consumers_by_name_key_states_deletion_and_bans_from_the_cli() {
    let dir = temp_dir("cli-bans-consumers");
    let (public, admin) = (free_port(), free_port());
    let config = format!(
        r#"
admin = {{ listen = "127.0.0.1:{admin}" }}
log = {{ access_log = "off" }}
honeypots = {{ paths = ["/.env"], ban_for = "1h" }}
[[listeners]]
name = "public"
address = "127.0.0.1:{public}"
[upstreams.echo]
targets = ["builtin:echo"]
[[routes]]
name = "api"
match = {{ path = "/api" }}
upstream = "echo"
auth = {{ methods = ["api_key"] }}
[[routes]]
name = "site"
upstream = "echo"
"#
    );
    std::fs::write(dir.join("rampart.toml"), config).expect("write");
    let process = Running::start(&["serve", "--config", "rampart.toml"], &dir);
    wait_until_up(&format!("http://127.0.0.1:{admin}/healthz"), &process).await;
    let run = |args: &[&str]| {
        let (code, out, err) = cli(&dir, admin, args, &[]);
        assert_eq!(code, 0, "{args:?}: {err}");
        out
    };

    // Every --consumer takes a name as well as an id.
    run(&["consumers", "create", "--name", "billing"]);
    let created = run(&["keys", "create", "--consumer", "billing", "--json"]);
    let created: serde_json::Value = serde_json::from_str(&created).expect("json");
    let key_id = created["key"]["id"].as_str().expect("key id").to_string();
    let secret = created["secret"].as_str().expect("secret").to_string();
    let consumer_id = created["key"]["consumer_id"]
        .as_str()
        .expect("id")
        .to_string();
    let by_id = run(&["keys", "list", "--consumer", &consumer_id]);
    assert_eq!(run(&["keys", "list", "--consumer", "billing"]), by_id);
    assert!(run(&["consumers", "show", "billing"]).contains(&consumer_id));
    let (code, _, err) = cli(&dir, admin, &["keys", "list", "--consumer", "nobody"], &[]);
    assert_eq!(code, 1);
    assert!(
        err.contains("no consumer has the id or name \"nobody\""),
        "{err}"
    );

    // A rotated key is "rotating" during its overlap and "expired" after it.
    let rotated = run(&["keys", "rotate", &key_id, "--overlap", "1", "--json"]);
    let rotated: serde_json::Value = serde_json::from_str(&rotated).expect("json");
    let new_secret = rotated["secret"].as_str().expect("secret").to_string();
    let state_of = |table: &str, id: &str| -> String {
        table
            .lines()
            .find(|l| l.starts_with(id))
            .and_then(|l| l.split_whitespace().nth(2))
            .unwrap_or("")
            .to_string()
    };
    let listed = run(&["keys", "list", "--consumer", "billing"]);
    assert_eq!(state_of(&listed, &key_id), "rotating", "{listed}");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let listed = run(&["keys", "list", "--consumer", "billing"]);
    assert_eq!(state_of(&listed, &key_id), "expired", "{listed}");

    // Deleting the consumer (by name) stops its keys at once.
    let auth = [("x-api-key", new_secret.as_str())];
    assert_eq!(public_status(public, "/api", &auth).await, 200);
    let out = run(&["consumers", "delete", "billing"]);
    assert!(out.contains(&consumer_id), "{out}");
    assert!(
        answers(public, "/api", &auth, 401, Duration::from_millis(900)).await,
        "the deleted consumer's key still works"
    );
    assert_eq!(
        public_status(public, "/api", &[("x-api-key", secret.as_str())]).await,
        401
    );
    let (code, _, err) = cli(&dir, admin, &["consumers", "show", "billing"], &[]);
    assert_eq!(code, 1, "{err}");

    // A honeypot hit bans the client; the ban is listed and lifted.
    assert_eq!(public_status(public, "/.env", &[]).await, 403);
    assert_eq!(public_status(public, "/", &[]).await, 403);
    let listed = run(&["bans", "list"]);
    assert!(listed.starts_with("IP"), "{listed}");
    assert!(listed.contains("127.0.0.1"), "{listed}");
    let listed: serde_json::Value =
        serde_json::from_str(&run(&["bans", "list", "--json"])).expect("json");
    assert_eq!(listed["items"][0]["ip"], "127.0.0.1");
    assert!(listed["items"][0]["expires_at"].as_i64().is_some());
    run(&["bans", "lift", "127.0.0.1"]);
    assert!(
        answers(public, "/", &[], 200, Duration::from_millis(900)).await,
        "still banned after the lift"
    );
    let (code, _, err) = cli(&dir, admin, &["bans", "lift", "127.0.0.1"], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("404"), "{err}");
    let listed = run(&["bans", "list"]);
    assert!(!listed.contains("127.0.0.1"), "{listed}");
}
