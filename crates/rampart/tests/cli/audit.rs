//! The audit log end to end: admin actions of a served instance, then the offline
//! `rampart audit` tools on its data dir, including a tampered segment.

use std::process::Command;
use std::time::Duration;

use crate::admin::{cli, config};
use crate::support::*;

fn audit(dir: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(binary())
        .arg("audit")
        .args(args)
        .args(["--data-dir", "data"])
        .current_dir(dir)
        .output()
        .expect("run");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn served_actions_are_verifiable_offline_and_tampering_is_named() {
    let dir = temp_dir("audit");
    let (public, admin) = (free_port(), free_port());
    std::fs::write(dir.join("rampart.toml"), config(public, admin)).expect("write");
    let mut process = Running::start(&["serve", "--config", "rampart.toml"], &dir);
    wait_until_up(&format!("http://127.0.0.1:{admin}/healthz"), &process).await;
    for name in ["alpha", "beta", "gamma"] {
        let (code, _, err) = cli(&dir, admin, &["consumers", "create", "--name", name], &[]);
        assert_eq!(code, 0, "{err}");
    }
    process.signal("TERM");
    assert_eq!(
        process.wait(Duration::from_secs(15)),
        Some(0),
        "{}",
        process.log()
    );

    let (code, out, err) = audit(&dir, &["verify", "--quiet"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("ok: 3 entries, "), "{out}");
    let (code, out, _) = audit(&dir, &["tail", "-n", "1"]);
    assert_eq!(code, 0);
    let last: serde_json::Value = serde_json::from_str(out.trim()).expect("json line");
    assert_eq!(last["index"], 2);
    assert_eq!(last["entry"]["action"], "consumer.create");
    let (code, out, _) = audit(&dir, &["export", "--format", "cef"]);
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 3);
    assert!(
        out.lines().all(|l| l.starts_with("CEF:0|Rampart|Rampart|")),
        "{out}"
    );

    // Flip one byte inside entry 1: verify names it, the server refuses to add to the
    // log, and repair will not cut signed history.
    let segment = std::fs::read_dir(dir.join("data/audit"))
        .expect("audit dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("seg-"))
        })
        .expect("segment");
    let mut bytes = std::fs::read(&segment).expect("segment");
    let first_len = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    let second_entry = 36 + first_len + 36;
    bytes[second_entry + 10] ^= 0x01;
    std::fs::write(&segment, &bytes).expect("tamper");
    let (code, _, err) = audit(&dir, &["verify", "--quiet"]);
    assert_eq!(code, 1);
    assert!(err.contains("bad entry at index 1"), "{err}");
    let (code, _, err) = audit(&dir, &["repair"]);
    assert_eq!(code, 1);
    assert!(err.contains("rewrite history"), "{err}");

    let process = Running::start(&["serve", "--config", "rampart.toml"], &dir);
    wait_until_up(&format!("http://127.0.0.1:{admin}/healthz"), &process).await;
    let (code, _, err) = cli(
        &dir,
        admin,
        &["consumers", "create", "--name", "delta"],
        &[],
    );
    assert_ne!(code, 0, "an unauditable action must fail");
    assert!(
        err.contains("503") || err.to_lowercase().contains("unavailable"),
        "{err}"
    );
    assert!(
        process.log().contains("audit log is corrupt"),
        "{}",
        process.log()
    );
}

#[tokio::test]
async fn the_audit_tools_read_the_shared_log_in_postgres() {
    let Some(scoped) = scoped_postgres("audit tools on Postgres").await else {
        return;
    };
    let dir = temp_dir("audit-pg");
    let (public, admin) = (free_port(), free_port());
    std::fs::write(dir.join("rampart.toml"), config(public, admin)).expect("write");
    let stderr = dir.join("stderr.log");
    let child = Command::new(binary())
        .args(["serve", "--config", "rampart.toml"])
        .current_dir(&dir)
        .env("RAMPART_DATABASE_URL", &scoped)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&stderr).expect("stderr"))
        .spawn()
        .expect("spawn");
    let mut process = Running { child, stderr };
    wait_until_up(&format!("http://127.0.0.1:{admin}/healthz"), &process).await;
    for name in ["alpha", "beta"] {
        let (code, _, err) = cli(&dir, admin, &["consumers", "create", "--name", name], &[]);
        assert_eq!(code, 0, "{err}");
    }
    process.signal("TERM");
    assert_eq!(
        process.wait(Duration::from_secs(15)),
        Some(0),
        "{}",
        process.log()
    );

    // The data dir holds no log of its own: without the database the tools see nothing.
    let (_, out, _) = audit(&dir, &["tail"]);
    assert_eq!(out, "", "no entries in the data dir");
    let (code, out, err) = audit(&dir, &["tail", "-n", "1", "--database-url", &scoped]);
    assert_eq!(code, 0, "{err}");
    let last: serde_json::Value = serde_json::from_str(out.trim()).expect("json line");
    assert_eq!(last["index"], 1);
    assert_eq!(last["entry"]["action"], "consumer.create");
    // RAMPART_DATABASE_URL works like the flag.
    let out = Command::new(binary())
        .args(["audit", "export", "--format", "jsonl", "--start", "1"])
        .env("RAMPART_DATABASE_URL", &scoped)
        .current_dir(&dir)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.starts_with("{\"index\":1,"), "{text}");
    let (code, out, err) = audit(&dir, &["verify", "--quiet", "--database-url", &scoped]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("ok: 2 entries"), "{out}");
}
