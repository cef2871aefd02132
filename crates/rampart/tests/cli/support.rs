//! Spawning the binary, free ports, a small HTTP client.

#![allow(dead_code)]

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_rampart")
}

/// A free port on 127.0.0.1 (bound and released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

pub fn temp_dir(name: &str) -> PathBuf {
    tempfile::Builder::new()
        .prefix(&format!("rampart-cli-{name}-"))
        .tempdir()
        .expect("temp dir")
        .keep()
}

/// A running `rampart` process, killed on drop; its stderr goes to a file.
pub struct Running {
    pub child: Child,
    pub stderr: PathBuf,
}

impl Running {
    pub fn start(args: &[&str], dir: &Path) -> Self {
        let stderr = dir.join("stderr.log");
        let child = Command::new(binary())
            .args(args)
            .current_dir(dir)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("spawn rampart");
        Self { child, stderr }
    }

    pub fn log(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.stderr) {
            let _ = f.read_to_string(&mut text);
        }
        text
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Waits for exit; returns the exit code.
    pub fn wait(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Answer {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub async fn get(url: &str) -> Result<Answer, String> {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let request = http::Request::get(url)
        .body(Full::default())
        .map_err(|e| e.to_string())?;
    let response = tokio::time::timeout(Duration::from_secs(10), client.request(request))
        .await
        .map_err(|_| "timed out".to_string())?
        .map_err(|e| format!("{e:?}"))?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok(Answer {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    })
}

/// Polls `url` until it answers.
pub async fn wait_until_up(url: &str, process: &Running) -> Answer {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match get(url).await {
            Ok(answer) => return answer,
            Err(e) if Instant::now() > deadline => {
                panic!("{url} never answered ({e}); log:\n{}", process.log())
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

pub fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A Postgres URL whose connections use a fresh schema of their own, or `None` (after
/// saying SKIPPED) when `RAMPART_TEST_DATABASE_URL` is not set.
pub async fn scoped_postgres(what: &str) -> Option<String> {
    let Ok(url) = std::env::var("RAMPART_TEST_DATABASE_URL") else {
        eprintln!("SKIPPED (Postgres): {what}: RAMPART_TEST_DATABASE_URL is not set");
        return None;
    };
    let schema = format!("rampart_cli_{}_{}", std::process::id(), free_port());
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&url).await.expect("connect");
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&pool)
        .await
        .expect("schema");
    pool.close().await;
    let separator = if url.contains('?') { '&' } else { '?' };
    Some(format!(
        "{url}{separator}options=-c%20search_path%3D{schema}"
    ))
}
