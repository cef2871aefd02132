//! `rampart check` and `rampart config`.

use std::process::Command;

use crate::support::*;

#[test]
fn check_accepts_the_quickstart() {
    let config = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/quickstart.toml"
    );
    let out = Command::new(binary())
        .args(["check", "--config", config])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("ok (1 listeners, 1 upstreams, 1 routes)")
    );
}

#[test]
fn check_reports_every_error_with_its_location_and_exits_1() {
    let dir = temp_dir("check");
    let file = dir.join("bad.toml");
    std::fs::write(
        &file,
        "[[listeners]]\naddress = \"nope\"\n\n[upstreams.app]\ntargets = []\n\n[[routes]]\nupstream = \"ghost\"\n",
    )
    .expect("write");
    let out = Command::new(binary())
        .args(["check", "--config", file.to_str().expect("utf-8")])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("3 config errors"), "{stderr}");
    for expected in [
        format!("{}:2:1: listeners[0].address", file.display()),
        format!(
            "{}:5:1: upstreams.app.targets: at least one target is required",
            file.display()
        ),
        format!(
            "{}:8:1: routes[0].upstream: unknown upstream \"ghost\"",
            file.display()
        ),
    ] {
        assert!(
            stderr.contains(&expected),
            "missing {expected:?} in\n{stderr}"
        );
    }
}

#[test]
fn config_schema_is_json_schema_of_the_file() {
    let out = Command::new(binary())
        .args(["config", "schema"])
        .output()
        .expect("run");
    assert!(out.status.success());
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    for key in ["listeners", "upstreams", "routes", "server", "admin"] {
        assert!(schema["properties"].get(key).is_some(), "{key} missing");
    }
    assert_eq!(
        schema["additionalProperties"], false,
        "unknown keys are errors"
    );
}
