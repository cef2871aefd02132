//! Durable appends per second (1 and 16 concurrent writers) and inclusion-proof
//! latency of the audit log, with the same appends into a Postgres table (one
//! committed INSERT each, `synchronous_commit = on`) as the peer when
//! `RAMPART_BENCH_DATABASE_URL` is set. Run by `bench/audit.sh`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rampart_audit::{AuditLog, AuditLogSettings};

const ENTRY: &[u8] = br#"{"action":"consumer.update","actor":"token:0123456789abcdef","details":{"after":{"status":"disabled"}},"outcome":"success","request_id":"0f9e8d7c6b5a4f3e","resource":"consumer:0123456789abcdef","source_ip":"10.0.0.1","time":"2026-11-23T19:00:00.000Z"}"#;

async fn rampart_rate(log: &Arc<AuditLog>, writers: usize, duration: Duration) -> f64 {
    let deadline = Instant::now() + duration;
    let tasks: Vec<_> = (0..writers)
        .map(|_| {
            let log = Arc::clone(log);
            tokio::spawn(async move {
                let mut n = 0u64;
                while Instant::now() < deadline {
                    log.append(ENTRY.to_vec()).await.expect("append");
                    n += 1;
                }
                n
            })
        })
        .collect();
    let started = Instant::now();
    let mut total = 0;
    for t in tasks {
        total += t.await.expect("join");
    }
    total as f64 / started.elapsed().as_secs_f64()
}

async fn postgres_rate(url: &str, writers: usize, duration: Duration) -> Option<f64> {
    use sqlx::postgres::PgPoolOptions;
    let pool = PgPoolOptions::new()
        .max_connections(writers as u32)
        .connect(url)
        .await
        .ok()?;
    sqlx::query("CREATE TABLE IF NOT EXISTS rampart_bench_audit (id BIGSERIAL PRIMARY KEY, entry BYTEA NOT NULL)")
        .execute(&pool)
        .await
        .ok()?;
    let deadline = Instant::now() + duration;
    let tasks: Vec<_> = (0..writers)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let mut n = 0u64;
                while Instant::now() < deadline {
                    sqlx::query("INSERT INTO rampart_bench_audit (entry) VALUES ($1)")
                        .bind(ENTRY)
                        .execute(&pool)
                        .await
                        .expect("insert");
                    n += 1;
                }
                n
            })
        })
        .collect();
    let started = Instant::now();
    let mut total = 0;
    for t in tasks {
        total += t.await.expect("join");
    }
    let _ = sqlx::query("DROP TABLE rampart_bench_audit")
        .execute(&pool)
        .await;
    Some(total as f64 / started.elapsed().as_secs_f64())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let seconds: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let duration = Duration::from_secs(seconds);
    let dir = std::env::temp_dir().join(format!("rampart-audit-bench-{}", std::process::id()));
    let log = Arc::new(AuditLog::open(AuditLogSettings::new(&dir)).expect("open"));
    let peer_url = std::env::var("RAMPART_BENCH_DATABASE_URL").ok();
    for writers in [1usize, 16] {
        let ours = rampart_rate(&log, writers, duration).await;
        let peer = match &peer_url {
            Some(url) => postgres_rate(url, writers, duration).await,
            None => None,
        };
        match peer {
            Some(p) => println!(
                "durable appends/s, {writers:>2} writer(s): rampart {ours:>9.0}   postgres {p:>9.0}   ratio {:.2}",
                ours / p
            ),
            None => println!("durable appends/s, {writers:>2} writer(s): rampart {ours:>9.0}"),
        }
    }
    // Inclusion proofs against the grown tree.
    let size = log.size();
    let rounds = 100_000u64;
    let started = Instant::now();
    let mut checksum = 0u8;
    for i in 0..rounds {
        let index = (i * 7919) % size;
        let proof = log.inclusion_proof(index, size).expect("proof");
        checksum ^= proof.first().map_or(0, |h| h[0]);
    }
    let per = started.elapsed() / rounds as u32;
    println!(
        "inclusion proof at size {size}: {:.1} us each (checksum {checksum})",
        per.as_secs_f64() * 1e6
    );
    drop(log);
    let _ = std::fs::remove_dir_all(&dir);
}
