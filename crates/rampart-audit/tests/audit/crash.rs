//! kill -9 during appends, over and over: no acknowledged entry is lost and the tree
//! always verifies.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use rampart_audit::verify;

use crate::support::*;

const CHILD_DIR: &str = "RAMPART_AUDIT_CRASH_DIR";

/// The appending process the crash test kills. It appends from 32 tasks and prints each
/// acknowledged index.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by `acknowledged_entries_survive_kill_9` in a child process"]
async fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    let log = std::sync::Arc::new(open(std::path::Path::new(&dir)));
    let start = log.size();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
    for t in 0..32u64 {
        let log = std::sync::Arc::clone(&log);
        let tx = tx.clone();
        tokio::spawn(async move {
            for i in 0.. {
                let n = start * 1000 + t * 1_000_000 + i;
                match log.append(entry(n)).await {
                    Ok(index) => {
                        if tx.send(index).is_err() {
                            return;
                        }
                    }
                    Err(_) => return,
                }
            }
        });
    }
    drop(tx);
    let mut out = std::io::stdout().lock();
    while let Some(index) = rx.recv().await {
        let _ = writeln!(out, "acked {index}");
        let _ = out.flush();
    }
}

#[test]
fn acknowledged_entries_survive_kill_9() {
    let dir = temp_dir("crash");
    let exe = std::env::current_exe().expect("test binary");
    let mut acknowledged_max: Option<u64> = None;
    for round in 0..6u64 {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crash::crash_child",
                "--ignored",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(CHILD_DIR, &dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("child");
        let stdout = child.stdout.take().expect("stdout");
        let reader = std::thread::spawn(move || {
            let mut max: Option<u64> = None;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(n) = line
                    .strip_prefix("acked ")
                    .and_then(|n| n.trim().parse::<u64>().ok())
                {
                    max = Some(max.map_or(n, |m: u64| m.max(n)));
                }
            }
            max
        });
        std::thread::sleep(Duration::from_millis(300 + 97 * round));
        child.kill().expect("kill -9");
        let _ = child.wait();
        let seen = reader.join().expect("reader");
        if let Some(n) = seen {
            acknowledged_max = Some(acknowledged_max.map_or(n, |m| m.max(n)));
        }
        // Reopening cuts a torn tail; every acknowledged entry is there.
        let log = open(&dir);
        assert_eq!(log.health(), rampart_audit::Health::Ok, "round {round}");
        if let Some(max) = acknowledged_max {
            assert!(
                log.size() > max,
                "round {round}: size {} but {max} was acknowledged",
                log.size()
            );
        }
        log.publish_checkpoint().expect("checkpoint");
        drop(log);
        let report = verify::verify(&dir, None, |_, _| {}).expect("verify");
        assert_eq!(report.problem, None, "round {round}");
    }
    assert!(
        acknowledged_max.unwrap_or(0) > 100,
        "the child appended too little: {acknowledged_max:?}"
    );
}
