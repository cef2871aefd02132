//! The differential edge suite: requests that a backend might read differently from
//! the route that admitted them, sent through a gateway to three kinds of backend —
//! a recording backend (raw TCP, every byte it received, read the permissive way),
//! nginx with name-based virtual hosts, and Flask (Werkzeug) served by Hypercorn —
//! over HTTP/1.1 and HTTP/2.
//!
//! The "controls" are routes that tag the request they admit (`x-test-route`): one
//! route per combination of an `admin.test` host, an `/admin` path prefix and the
//! DELETE method, so the tag names exactly the controls that applied. Each case then
//! holds either of two outcomes: Rampart refused it (problem+json with a request id,
//! counted in `rampart_requests_refused_total`, the connection closed), or it reached
//! the backend and what the backend understood (its decoded, normalized path, its
//! virtual host, its method) needs exactly the controls the tag names.
//!
//! nginx and Python are optional: `RAMPART_TEST_NGINX` (the nginx binary) and
//! `RAMPART_TEST_PYTHON` (a Python with `flask` and `hypercorn`) name them; without
//! them those tests say SKIPPED, unless `RAMPART_REQUIRE_EDGE_PEERS` is set (as
//! `.ci/run` does), which makes a missing peer a failure.

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request, Uri};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rampart_proxy::Gateway;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::gateway_from;

/// How long any one read from Rampart may take.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// A request pipelined after one that must be refused: it must never be answered or
/// reach a backend, since the connection closes after a refused message.
const AFTER_REFUSAL: &str = "GET /admin/after-refusal HTTP/1.1\r\nHost: admin.test\r\n\r\n";

/// A request hidden after a body whose framing some parsers read otherwise.
const SMUGGLED: &str = "/admin/smuggled";

// ---------------------------------------------------------------------------------
// The gateway: one route per combination of controls, each tagging what it applied.
// ---------------------------------------------------------------------------------

/// The controls, in the order tags name them.
const CONTROLS: [&str; 3] = ["admin-host", "admin", "delete"];

/// The tag of a set of controls: their names joined by commas, `public` for none.
fn tag_of(controls: &BTreeSet<&str>) -> String {
    let names: Vec<&str> = CONTROLS
        .iter()
        .copied()
        .filter(|c| controls.contains(c))
        .collect();
    if names.is_empty() {
        "public".to_string()
    } else {
        names.join(",")
    }
}

/// The controls a tag names (`None` for a value no route sets).
fn controls_of(tag: &str) -> Option<BTreeSet<&'static str>> {
    if tag == "public" {
        return Some(BTreeSet::new());
    }
    tag.split(',')
        .map(|name| CONTROLS.iter().copied().find(|c| *c == name))
        .collect()
}

fn gateway_source(peer: SocketAddr) -> String {
    let mut source = format!(
        r#"
log = {{ access_log = "off" }}
[[listeners]]
name = "public"
address = "127.0.0.1:0"
[[listeners]]
name = "keep"
address = "127.0.0.2:0"
underscores_in_headers = "keep"

[upstreams.peer]
targets = ["http://{peer}"]
circuit_breaker = {{ disabled = true }}
"#
    );
    let common = r#"upstream = "peer"
retry = { attempts = 0 }
timeouts = { per_try = "5s", total = "5s" }
"#;
    // Every subset of the controls: the most specific matching route is the one whose
    // conditions are exactly the controls that fit (host, then path, then methods).
    for mask in 0..8u8 {
        let mut controls = BTreeSet::new();
        let mut conditions = Vec::new();
        if mask & 1 != 0 {
            controls.insert("admin-host");
            conditions.push(r#"hosts = ["admin.test"]"#);
        }
        if mask & 2 != 0 {
            controls.insert("admin");
            conditions.push(r#"path_prefix = "/admin""#);
        }
        if mask & 4 != 0 {
            controls.insert("delete");
            conditions.push(r#"methods = ["DELETE"]"#);
        }
        let tag = tag_of(&controls);
        let matcher = if conditions.is_empty() {
            String::new()
        } else {
            format!("match = {{ {} }}\n", conditions.join(", "))
        };
        source.push_str(&format!(
            "\n[[routes]]\nname = \"{}\"\n{matcher}{common}request_headers = {{ set = {{ x-test-route = \"{tag}\" }} }}\n",
            tag.replace(',', "+"),
        ));
    }
    // Public routes with other settings, for the trailer, upgrade and logging cases.
    for (name, matcher, extra) in [
        (
            "forwards-trailers",
            r#"path_prefix = "/forwards-trailers""#,
            "forward_trailers = true\n",
        ),
        (
            "no-upgrades",
            r#"path_prefix = "/no-upgrades""#,
            "upgrades = []\n",
        ),
        ("after-h2c", r#"path = "/after-h2c""#, ""),
    ] {
        source.push_str(&format!(
            "\n[[routes]]\nname = \"{name}\"\nmatch = {{ {matcher} }}\n{extra}{common}request_headers = {{ set = {{ x-test-route = \"public\" }} }}\n"
        ));
    }
    source
}

struct Edge {
    gateway: Gateway,
    /// The listener with the default normalization (names with `_` dropped).
    public: SocketAddr,
    /// The listener that keeps names with `_` (less the protected ones).
    keep: SocketAddr,
}

async fn edge_gateway(peer: SocketAddr) -> Edge {
    let (gateway, public) = gateway_from(&gateway_source(peer)).await;
    let keep = gateway.local_addr("keep").expect("keep listener");
    Edge {
        gateway,
        public,
        keep,
    }
}

// ---------------------------------------------------------------------------------
// What a backend understood.
// ---------------------------------------------------------------------------------

/// A backend's reading of one request.
#[derive(Debug, Clone, Default)]
struct Seen {
    path: String,
    host: String,
    method: String,
    /// The `x-test-route` the backend got (several values joined by commas).
    route: String,
    /// `X-Rampart-Consumer` as the application reads it.
    consumer: Option<String>,
    upgrade: Option<String>,
    /// The backend's path reading falls under `/admin`.
    admin_path: bool,
    /// The backend's virtual host is `admin.test`.
    admin_host: bool,
    /// The recording backend's record of the message.
    record: Option<usize>,
}

impl Seen {
    /// The controls that what the backend understood calls for.
    fn needs(&self) -> BTreeSet<&'static str> {
        let mut needs = BTreeSet::new();
        if self.admin_host {
            needs.insert("admin-host");
        }
        if self.admin_path {
            needs.insert("admin");
        }
        if self.method == "DELETE" {
            needs.insert("delete");
        }
        needs
    }

    fn summary(&self) -> String {
        format!(
            "{} {} host={} route={}{}",
            self.method,
            self.path,
            self.host,
            self.route,
            self.consumer
                .as_ref()
                .map(|c| format!(" consumer={c}"))
                .unwrap_or_default()
        )
    }
}

/// Whether `path` is `/admin` or below it (segment boundary, as the routes match).
fn under_admin(path: &str) -> bool {
    path == "/admin" || path.starts_with("/admin/")
}

/// Percent-decodes once; a broken escape stays as it is.
fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push(u8::try_from(h * 16 + l).expect("byte"));
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// A permissive backend's reading of a request-target's path: decoded once, `\` read
/// as `/`, path parameters cut off each segment (Servlet containers such as Tomcat
/// remove `;name=value` before mapping, per the Servlet specification's path-matching
/// rules), repeated slashes merged, dot segments resolved (clamped at the root).
fn permissive_path(target: &str) -> String {
    let path = match target.split_once("://") {
        Some((scheme, rest)) if scheme.bytes().all(|b| b.is_ascii_alphabetic()) => {
            rest.find('/').map_or("/", |i| &rest[i..])
        }
        _ => target,
    };
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let decoded = String::from_utf8_lossy(&percent_decode(path)).into_owned();
    let mut segments: Vec<&str> = Vec::new();
    for segment in decoded.split(['/', '\\']) {
        match segment.split(';').next().unwrap_or_default() {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            segment => segments.push(segment),
        }
    }
    format!("/{}", segments.join("/"))
}

/// A permissive backend's reading of an authority: userinfo, port and a trailing dot
/// dropped, lower case.
fn permissive_host(raw: &str) -> String {
    let host = raw.trim();
    let host = host.rsplit('@').next().unwrap_or_default();
    let host = if host.starts_with('[') {
        host.split_inclusive(']').next().unwrap_or_default()
    } else {
        host.split(':').next().unwrap_or_default()
    };
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// A decoded path with its dot segments resolved and repeated slashes merged (and
/// nothing else), for an application that got the path decoded but not normalized
/// (Werkzeug keeps `..`), as a file lookup or a redirect built from it would read it.
fn resolved(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            segment => segments.push(segment),
        }
    }
    format!("/{}", segments.join("/"))
}

// ---------------------------------------------------------------------------------
// The recording backend.
// ---------------------------------------------------------------------------------

/// One HTTP/1.1 message as a permissive server parses it (bare LF ends a line).
#[derive(Debug, Clone, Default)]
struct Message {
    request_line: String,
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    trailers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Message {
    /// The values of every field whose name reads as `name` once `_` is `-` (as
    /// CGI-style servers map them), from the header and, when asked, the trailers.
    fn folded(&self, name: &str, with_trailers: bool) -> Vec<&str> {
        let trailers = if with_trailers {
            &self.trailers[..]
        } else {
            &[]
        };
        self.headers
            .iter()
            .chain(trailers)
            .filter(|(n, _)| n.to_ascii_lowercase().replace('_', "-") == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn exact(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// What a permissive backend understood: every reading it might act on.
    fn seen(&self, record: usize) -> Seen {
        let path = permissive_path(&self.target);
        let mut hosts: Vec<String> = self
            .folded("host", true)
            .into_iter()
            .map(permissive_host)
            .collect();
        if let Some((_, rest)) = self.target.split_once("://") {
            let authority = rest.split('/').next().unwrap_or_default();
            hosts.insert(0, permissive_host(authority));
        }
        let consumer = self.folded("x-rampart-consumer", true);
        Seen {
            admin_path: under_admin(&path),
            admin_host: hosts.iter().any(|h| h == "admin.test"),
            path,
            host: hosts.join(","),
            method: self.method.to_ascii_uppercase(),
            route: self.folded("x-test-route", false).join(","),
            consumer: (!consumer.is_empty()).then(|| consumer.join(",")),
            upgrade: self.exact("upgrade").first().map(|v| v.to_string()),
            record: Some(record),
        }
    }
}

/// The next line of `buf` from `pos`: its text without CR/LF and the offset after it.
fn line_at(buf: &[u8], pos: usize) -> Option<(&[u8], usize)> {
    let end = buf[pos..].iter().position(|b| *b == b'\n')? + pos;
    let line = &buf[pos..end];
    Some((line.strip_suffix(b"\r").unwrap_or(line), end + 1))
}

fn field(line: &[u8]) -> Option<(String, String)> {
    let colon = line.iter().position(|b| *b == b':')?;
    Some((
        String::from_utf8_lossy(&line[..colon]).trim().to_string(),
        String::from_utf8_lossy(&line[colon + 1..])
            .trim()
            .to_string(),
    ))
}

/// Parses one message at the start of `buf`, permissively: `None` until complete.
fn parse_message(buf: &[u8]) -> Option<(usize, Message)> {
    let mut pos = 0;
    let mut lines: Vec<&[u8]> = Vec::new();
    loop {
        let (line, next) = line_at(buf, pos)?;
        pos = next;
        if line.is_empty() {
            if lines.is_empty() {
                continue;
            }
            break;
        }
        lines.push(line);
    }
    let request_line = String::from_utf8_lossy(lines[0]).into_owned();
    let mut words = request_line.split(' ');
    let mut message = Message {
        request_line: request_line.clone(),
        method: words.next().unwrap_or_default().to_string(),
        target: words.next().unwrap_or_default().to_string(),
        ..Message::default()
    };
    message.headers = lines[1..].iter().filter_map(|l| field(l)).collect();
    let chunked = message
        .exact("transfer-encoding")
        .iter()
        .any(|v| v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        loop {
            let (line, next) = line_at(buf, pos)?;
            let text = String::from_utf8_lossy(line);
            let size_text = text.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size_text, 16).ok()?;
            pos = next;
            if size == 0 {
                loop {
                    let (line, next) = line_at(buf, pos)?;
                    pos = next;
                    if line.is_empty() {
                        break;
                    }
                    message.trailers.extend(field(line));
                }
                break;
            }
            let data = buf.get(pos..pos + size)?;
            message.body.extend_from_slice(data);
            let (_, next) = line_at(buf, pos + size)?;
            pos = next;
        }
    } else if let Some(length) = message
        .exact("content-length")
        .first()
        .and_then(|v| v.parse::<usize>().ok())
    {
        message.body = buf.get(pos..pos + length)?.to_vec();
        pos += length;
    }
    Some((pos, message))
}

/// One message the recording backend received, byte for byte.
#[derive(Debug, Clone)]
struct Record {
    /// Which backend connection it came on (counted from 0).
    conn: usize,
    bytes: Vec<u8>,
    /// `None` when the connection closed before the message was complete.
    message: Option<Message>,
}

/// A raw-TCP backend that keeps the exact bytes of every message and answers 200
/// with `{"record": N}`, 101 to an upgrade (echoing what follows a WebSocket one).
struct Recorder {
    addr: SocketAddr,
    records: Arc<Mutex<Vec<Record>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Recorder {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let records = Arc::new(Mutex::new(Vec::new()));
        let shared = Arc::clone(&records);
        let task = tokio::spawn(async move {
            let mut conn = 0;
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(record_connection(stream, conn, Arc::clone(&shared)));
                conn += 1;
            }
        });
        Self {
            addr,
            records,
            task,
        }
    }

    fn records(&self) -> Vec<Record> {
        self.records.lock().expect("records").clone()
    }
}

async fn record_connection(mut stream: TcpStream, conn: usize, records: Arc<Mutex<Vec<Record>>>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some((length, message)) = parse_message(&buf) {
            let bytes: Vec<u8> = buf.drain(..length).collect();
            let upgrade = message
                .exact("upgrade")
                .first()
                .map(|v| v.to_ascii_lowercase());
            let index = {
                let mut records = records.lock().expect("records");
                records.push(Record {
                    conn,
                    bytes,
                    message: Some(message),
                });
                records.len() - 1
            };
            match upgrade.as_deref() {
                Some("websocket") => {
                    let head = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n\
                                Upgrade: websocket\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
                    if stream.write_all(head.as_bytes()).await.is_err()
                        || stream.write_all(&buf).await.is_err()
                    {
                        return;
                    }
                    while let Ok(n) = stream.read(&mut chunk).await {
                        if n == 0 || stream.write_all(&chunk[..n]).await.is_err() {
                            return;
                        }
                    }
                    return;
                }
                // What Hypercorn does (hypercorn/protocol/h11.py, `_check_protocol`):
                // switch, then speak HTTP/2. Here the switch is enough to be seen.
                Some("h2c") => {
                    let head =
                        "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n";
                    let _ = stream.write_all(head.as_bytes()).await;
                    return;
                }
                _ => {}
            }
            let body = serde_json::json!({ "record": index }).to_string();
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            if stream.write_all(response.as_bytes()).await.is_err() {
                return;
            }
            continue;
        }
        match stream.read(&mut chunk).await {
            Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => {
                if !buf.is_empty() {
                    records.lock().expect("records").push(Record {
                        conn,
                        bytes: std::mem::take(&mut buf),
                        message: None,
                    });
                }
                return;
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// nginx and Flask on Hypercorn, as child processes.
// ---------------------------------------------------------------------------------

/// A child process, killed (it is ours, by its handle) when dropped.
struct ChildProcess {
    child: std::process::Child,
    log: PathBuf,
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ChildProcess {
    fn spawn(command: &mut std::process::Command, log: PathBuf) -> Self {
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = command
            .stdin(std::process::Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {command:?}: {e}"));
        Self { child, log }
    }

    /// Waits until `addr` accepts connections; `Err` with the log if the process ended.
    async fn ready(&mut self, addr: SocketAddr) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                return Err(format!("exited with {status}: {log}"));
            }
            if TcpStream::connect(addr).await.is_ok() {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                return Err(format!("not listening on {addr} within 20 s: {log}"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A port free at the moment (the process started on it may still lose a race for
/// it: the caller retries).
fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
}

fn temp_dir(name: &str) -> PathBuf {
    tempfile::Builder::new()
        .prefix(&format!("rampart-{name}-"))
        .tempdir()
        .expect("temp dir")
        .keep()
}

/// Says SKIPPED, or fails when the peers are required.
fn skip(reason: &str) {
    assert!(
        std::env::var_os("RAMPART_REQUIRE_EDGE_PEERS").is_none(),
        "RAMPART_REQUIRE_EDGE_PEERS is set but {reason}"
    );
    eprintln!("SKIPPED (edge peers): {reason}");
}

/// nginx with two name-based virtual hosts, each answering with what nginx made of
/// the request: `$server_name` (the virtual host it chose), `$uri` (the decoded,
/// normalized path), the method and the fields the test looks at. Runs in the
/// foreground without a master process, so the child is nginx itself.
async fn start_nginx(binary: &str) -> (ChildProcess, SocketAddr) {
    let dir = temp_dir("edge-nginx");
    std::fs::create_dir_all(dir.join("logs")).expect("logs dir");
    let report = r#"return 200 "server=$server_name\nmethod=$request_method\nroute=$http_x_test_route\nconsumer=$http_x_rampart_consumer\nupgrade=$http_upgrade\nhost=$host\nrequest_uri=$request_uri\nuri=$uri";"#;
    let mut last = String::new();
    for _ in 0..3 {
        let addr = free_port();
        let conf = format!(
            r#"
events {{ worker_connections 256; }}
http {{
  access_log off;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  default_type text/plain;
  server {{
    listen {addr} default_server;
    server_name public.test;
    location / {{ {report} }}
  }}
  server {{
    listen {addr};
    server_name admin.test;
    location / {{ {report} }}
  }}
}}
"#,
            d = dir.display()
        );
        std::fs::write(dir.join("nginx.conf"), conf).expect("nginx.conf");
        let globals = format!(
            "daemon off; master_process off; worker_processes 1; pid {d}/nginx.pid; error_log {d}/logs/error.log;",
            d = dir.display()
        );
        let mut process = ChildProcess::spawn(
            std::process::Command::new(binary)
                .arg("-p")
                .arg(format!("{}/", dir.display()))
                .arg("-c")
                .arg(dir.join("nginx.conf"))
                .arg("-g")
                .arg(globals),
            dir.join("nginx.out"),
        );
        match process.ready(addr).await {
            Ok(()) => return (process, addr),
            Err(e) => last = e,
        }
    }
    panic!("nginx did not start: {last}");
}

/// The Flask app beside this file on Hypercorn (`wsgi:` names the WSGI mode, see
/// `load_application` in hypercorn/utils.py), one worker.
async fn start_hypercorn(python: &str) -> (ChildProcess, SocketAddr) {
    let dir = temp_dir("edge-hypercorn");
    let app_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/proxy");
    let mut last = String::new();
    for _ in 0..3 {
        let addr = free_port();
        let mut process = ChildProcess::spawn(
            std::process::Command::new(python)
                .args(["-m", "hypercorn", "--workers", "1", "--bind"])
                .arg(addr.to_string())
                .arg("wsgi:edge_app:app")
                .current_dir(&app_dir)
                .env("PYTHONDONTWRITEBYTECODE", "1"),
            dir.join("hypercorn.out"),
        );
        match process.ready(addr).await {
            Ok(()) => return (process, addr),
            Err(e) => last = e,
        }
    }
    panic!("Hypercorn did not start: {last}");
}

// ---------------------------------------------------------------------------------
// Peers and what their answers say.
// ---------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Recording,
    Nginx,
    Flask,
}

struct Peer {
    kind: Kind,
    recorder: Option<Recorder>,
}

/// An answer as the client got it.
#[derive(Debug, Clone)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Who answered, and what they said.
#[derive(Debug)]
enum Reply {
    /// Rampart answered itself with a problem.
    Rampart {
        status: u16,
        slug: String,
        request_id: String,
    },
    /// The backend answered with its reading of the request.
    Peer(Seen),
    /// The backend answered without a reading (it refused the request itself).
    PeerRefused { status: u16, body: String },
}

impl Reply {
    fn summary(&self) -> String {
        match self {
            Reply::Rampart { status, slug, .. } => format!("rampart {status} {slug}"),
            Reply::Peer(seen) => format!("peer: {}", seen.summary()),
            Reply::PeerRefused { status, .. } => format!("peer refused {status}"),
        }
    }
}

impl Peer {
    fn name(&self) -> &'static str {
        match self.kind {
            Kind::Recording => "recording backend",
            Kind::Nginx => "nginx",
            Kind::Flask => "Flask on Hypercorn",
        }
    }

    fn record(&self, index: usize) -> Option<Record> {
        self.recorder
            .as_ref()
            .and_then(|r| r.records().get(index).cloned())
    }

    fn reply(&self, answer: &Answer) -> Reply {
        let content_type = answer.header("content-type").unwrap_or_default();
        if content_type == "application/problem+json" {
            let problem: serde_json::Value =
                serde_json::from_slice(&answer.body).unwrap_or_default();
            let slug = problem["type"]
                .as_str()
                .unwrap_or_default()
                .trim_start_matches("urn:rampart:problem:")
                .to_string();
            let request_id = problem["request_id"].as_str().unwrap_or_default();
            let header_id = answer.header("x-request-id").unwrap_or(request_id);
            return Reply::Rampart {
                status: answer.status,
                slug,
                // Both must be there and agree; an empty id fails the case.
                request_id: if header_id == request_id {
                    request_id.to_string()
                } else {
                    String::new()
                },
            };
        }
        let seen = match self.kind {
            Kind::Recording => self.recorded_seen(answer),
            Kind::Nginx => nginx_seen(answer),
            Kind::Flask => flask_seen(answer),
        };
        match seen {
            Some(seen) if answer.status < 400 => Reply::Peer(seen),
            _ => Reply::PeerRefused {
                status: answer.status,
                body: String::from_utf8_lossy(&answer.body).into_owned(),
            },
        }
    }

    fn recorded_seen(&self, answer: &Answer) -> Option<Seen> {
        let json: serde_json::Value = serde_json::from_slice(&answer.body).ok()?;
        let index = usize::try_from(json["record"].as_u64()?).ok()?;
        let message = self.record(index)?.message?;
        Some(message.seen(index))
    }
}

/// nginx's `key=value` lines; `uri` comes last and takes the rest of the body.
fn nginx_seen(answer: &Answer) -> Option<Seen> {
    let text = String::from_utf8_lossy(&answer.body).into_owned();
    let (head, uri) = text.split_once("\nuri=")?;
    let fields: BTreeMap<&str, &str> = head.lines().filter_map(|l| l.split_once('=')).collect();
    let server = *fields.get("server")?;
    let non_empty = |key: &str| {
        fields
            .get(key)
            .filter(|v| !v.is_empty())
            .map(|v| v.to_string())
    };
    Some(Seen {
        admin_path: under_admin(uri),
        admin_host: server == "admin.test",
        path: uri.to_string(),
        host: format!("{} (server {server})", fields.get("host").unwrap_or(&"")),
        method: fields.get("method")?.to_string(),
        route: fields.get("route").unwrap_or(&"").to_string(),
        consumer: non_empty("consumer"),
        upgrade: non_empty("upgrade"),
        record: None,
    })
}

/// The Flask app's JSON: its view (`admin` or `public`) and virtual host are
/// Werkzeug's own routing; the path also counts once its dot segments are resolved.
fn flask_seen(answer: &Answer) -> Option<Seen> {
    let json: serde_json::Value = serde_json::from_slice(&answer.body).ok()?;
    let text = |key: &str| json[key].as_str().map(str::to_string);
    let path = text("path")?;
    Some(Seen {
        admin_path: json["view"] == "admin" || under_admin(&resolved(&path)),
        admin_host: json["vhost"] == "admin.test",
        host: format!(
            "{} (vhost {})",
            text("host").unwrap_or_default(),
            text("vhost").unwrap_or_default()
        ),
        path,
        method: text("method")?,
        route: text("route").unwrap_or_default(),
        consumer: text("consumer"),
        upgrade: text("upgrade"),
        record: None,
    })
}

// ---------------------------------------------------------------------------------
// Clients: raw HTTP/1.1 bytes, and HTTP/2 with prior knowledge.
// ---------------------------------------------------------------------------------

/// One client connection speaking raw bytes.
struct Raw {
    stream: TcpStream,
    buf: Vec<u8>,
    eof: bool,
}

impl Raw {
    async fn open(addr: SocketAddr) -> Self {
        let stream = tokio::time::timeout(READ_TIMEOUT, TcpStream::connect(addr))
            .await
            .expect("connect in time")
            .expect("connect");
        Self {
            stream,
            buf: Vec::new(),
            eof: false,
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        // The peer may close early (after a refusal): what it read is what counts.
        let _ = self.stream.write_all(bytes).await;
    }

    /// Reads more; `Err` when nothing arrives in time.
    async fn fill(&mut self) -> Result<(), String> {
        let mut chunk = [0u8; 8192];
        match tokio::time::timeout(READ_TIMEOUT, self.stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                self.eof = true;
                Ok(())
            }
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
            Err(_) => Err(format!(
                "no answer within {READ_TIMEOUT:?} (read so far: {:?})",
                String::from_utf8_lossy(&self.buf)
            )),
        }
    }

    /// The next response; `Ok(None)` when the connection closed before one began.
    async fn response(&mut self) -> Result<Option<Answer>, String> {
        let (status, headers, head_len) = loop {
            let mut fields = [httparse::EMPTY_HEADER; 64];
            let mut parsed = httparse::Response::new(&mut fields);
            match parsed.parse(&self.buf) {
                Ok(httparse::Status::Complete(len)) => {
                    let headers: Vec<(String, String)> = parsed
                        .headers
                        .iter()
                        .map(|h| {
                            (
                                h.name.to_ascii_lowercase(),
                                String::from_utf8_lossy(h.value).into_owned(),
                            )
                        })
                        .collect();
                    break (parsed.code.unwrap_or_default(), headers, len);
                }
                Ok(httparse::Status::Partial) if self.eof => {
                    return if self.buf.is_empty() {
                        Ok(None)
                    } else {
                        Err(format!(
                            "connection closed mid-response: {:?}",
                            String::from_utf8_lossy(&self.buf)
                        ))
                    };
                }
                Ok(httparse::Status::Partial) => self.fill().await?,
                Err(e) => {
                    return Err(format!(
                        "unparsable response ({e}): {:?}",
                        String::from_utf8_lossy(&self.buf)
                    ))
                }
            }
        };
        self.buf.drain(..head_len);
        let mut answer = Answer {
            status,
            headers,
            body: Vec::new(),
        };
        let chunked = answer
            .header("transfer-encoding")
            .is_some_and(|v| v.contains("chunked"));
        let length = answer
            .header("content-length")
            .and_then(|v| v.parse::<usize>().ok());
        if status == 101 || status == 204 || status == 304 {
            return Ok(Some(answer));
        }
        if chunked {
            loop {
                let Some((line, next)) = line_at(&self.buf, 0) else {
                    if self.eof {
                        return Err("closed inside a chunked body".into());
                    }
                    self.fill().await?;
                    continue;
                };
                let size = usize::from_str_radix(
                    String::from_utf8_lossy(line)
                        .split(';')
                        .next()
                        .unwrap_or_default()
                        .trim(),
                    16,
                )
                .map_err(|e| format!("bad chunk size: {e}"))?;
                if size == 0 {
                    // Skip the trailer section up to its blank line.
                    let mut pos = next;
                    loop {
                        match line_at(&self.buf, pos) {
                            Some((b"", n)) => {
                                self.buf.drain(..n);
                                return Ok(Some(answer));
                            }
                            Some((_, n)) => pos = n,
                            None if self.eof => return Err("closed inside trailers".into()),
                            None => self.fill().await?,
                        }
                    }
                }
                if self.buf.len() < next + size + 2 {
                    if self.eof {
                        return Err("closed inside a chunk".into());
                    }
                    self.fill().await?;
                    continue;
                }
                answer.body.extend_from_slice(&self.buf[next..next + size]);
                self.buf.drain(..next + size + 2);
            }
        }
        let length = match length {
            Some(length) => length,
            None => {
                while !self.eof {
                    self.fill().await?;
                }
                self.buf.len()
            }
        };
        while self.buf.len() < length {
            if self.eof {
                return Err("closed inside the body".into());
            }
            self.fill().await?;
        }
        answer.body = self.buf.drain(..length).collect();
        Ok(Some(answer))
    }

    /// Whether the server closes the connection without sending anything more.
    async fn closes_without_more(&mut self) -> Result<(), String> {
        loop {
            if !self.buf.is_empty() {
                return Err(format!(
                    "more was answered on the connection: {:?}",
                    String::from_utf8_lossy(&self.buf)
                ));
            }
            if self.eof {
                return Ok(());
            }
            self.fill()
                .await
                .map_err(|_| format!("the connection stayed open for {READ_TIMEOUT:?}"))?;
        }
    }
}

type H2Body = BoxBody<Bytes, Infallible>;

/// Sends one request over a new h2c (prior knowledge) connection.
async fn h2_send(addr: SocketAddr, request: Request<H2Body>) -> Result<Answer, String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .map_err(|e| format!("h2 handshake: {e}"))?;
    tokio::spawn(conn);
    let response = tokio::time::timeout(READ_TIMEOUT, sender.send_request(request))
        .await
        .map_err(|_| "no answer in time".to_string())?
        .map_err(|e| format!("h2 request: {e}"))?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = tokio::time::timeout(READ_TIMEOUT, response.into_body().collect())
        .await
        .map_err(|_| "body not in time".to_string())?
        .map_err(|e| format!("h2 body: {e}"))?
        .to_bytes()
        .to_vec();
    Ok(Answer {
        status,
        headers,
        body,
    })
}

// ---------------------------------------------------------------------------------
// The cases.
// ---------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Expect {
    /// Rampart refuses it with this problem type (and counts the refusal).
    Refused(&'static str),
    /// It reaches the backend tagged with exactly this route's controls.
    Routed(&'static str),
}

/// What else is checked of a case that reaches the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    Nothing,
    /// The application reads no `X-Rampart-Consumer`, and (recording backend) no
    /// field name with `_` arrived.
    NoConsumer,
    /// (recording backend) Exactly these trailer fields arrived, in this order.
    Trailers(&'static [&'static str]),
    /// The backend saw no `Upgrade` (nor `HTTP2-Settings`).
    NoUpgrade,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum On {
    Public,
    Keep,
}

/// A case that must reach the backend (a positive control: the suite cannot pass
/// by refusing everything or routing everything to `public`).
fn control(name: &str) -> bool {
    name.contains("control:")
}

struct H1Case {
    name: String,
    bytes: Vec<u8>,
    expect: Expect,
    check: Check,
    on: On,
}

fn h1(name: &str, bytes: impl Into<Vec<u8>>, expect: Expect) -> H1Case {
    H1Case {
        name: name.to_string(),
        bytes: bytes.into(),
        expect,
        check: Check::Nothing,
        on: On::Public,
    }
}

fn get(target: &str, host: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n").into_bytes()
}

fn h1_cases() -> Vec<H1Case> {
    use Expect::{Refused, Routed};
    let public = |target: &str| get(target, "public.test");
    let mut cases = vec![
        // Positive controls.
        h1("control: /admin", public("/admin"), Routed("admin")),
        h1("control: /public", public("/public"), Routed("public")),
        h1("control: Host admin.test", get("/", "admin.test"), Routed("admin-host")),
        h1(
            "control: DELETE /",
            "DELETE / HTTP/1.1\r\nHost: public.test\r\n\r\n",
            Routed("delete"),
        ),
        h1(
            "control: DELETE /admin/x on admin.test",
            "DELETE /admin/x HTTP/1.1\r\nHost: admin.test\r\n\r\n",
            Routed("admin-host,admin,delete"),
        ),
        // Path spellings.
        h1("/%61dmin", public("/%61dmin"), Routed("admin")),
        h1("/%61%64%6D%69%6E/x", public("/%61%64%6D%69%6E/x"), Routed("admin")),
        h1("/admin/", public("/admin/"), Routed("admin")),
        h1("/public/../admin", public("/public/../admin"), Routed("admin")),
        h1("/public/%2e%2e/admin", public("/public/%2e%2e/admin"), Routed("admin")),
        h1("/public/%2E%2E/admin", public("/public/%2E%2E/admin"), Routed("admin")),
        h1("/public/.%2e/admin", public("/public/.%2e/admin"), Routed("admin")),
        h1("/public/%2e./admin", public("/public/%2e./admin"), Routed("admin")),
        h1("/public/./../admin/x", public("/public/./../admin/x"), Routed("admin")),
        h1("/admin/x/..", public("/admin/x/.."), Routed("admin")),
        h1("/admin/..", public("/admin/.."), Routed("public")),
        h1("//admin", public("//admin"), Routed("admin")),
        h1("///admin//x", public("///admin//x"), Routed("admin")),
        h1("/public//../admin", public("/public//../admin"), Routed("admin")),
        h1("/admin?x=/../public", public("/admin?x=/../public"), Routed("admin")),
        h1("/public?/../admin", public("/public?/../admin"), Routed("public")),
        h1("/public%2f..%2fadmin", public("/public%2f..%2fadmin"), Refused("encoded-slash")),
        h1("/public/..%2Fadmin", public("/public/..%2Fadmin"), Refused("encoded-slash")),
        h1("/public/..%5cadmin", public("/public/..%5cadmin"), Refused("encoded-slash")),
        h1("/public/..\\admin", public("/public/..\\admin"), Refused("invalid-path-encoding")),
        h1("/public\\..\\admin", public("/public\\..\\admin"), Refused("invalid-path-encoding")),
        h1("/admin%00", public("/admin%00"), Refused("invalid-path-encoding")),
        h1("/public%00/../admin", public("/public%00/../admin"), Refused("invalid-path-encoding")),
        h1("/public/%zz/../admin", public("/public/%zz/../admin"), Refused("invalid-path-encoding")),
        h1("/public/..;/admin", public("/public/..;/admin"), Refused("path-traversal")),
        h1("/public/..;x=1/admin", public("/public/..;x=1/admin"), Refused("path-traversal")),
        h1("/../admin", public("/../admin"), Refused("path-traversal")),
        h1("/%2e%2e/admin", public("/%2e%2e/admin"), Refused("path-traversal")),
        // Path parameters: Servlet containers (Tomcat, Jetty) remove `;params` from every
        // segment before mapping (the Servlet specification's request mapping), so
        // `/admin;x=1` is `/admin` to them and `/admin;x=1` to others: refused.
        h1("/admin;x=1", public("/admin;x=1"), Refused("path-parameters")),
        h1("/admin;/x", public("/admin;/x"), Refused("path-parameters")),
        h1("/public/%252e%252e/admin", public("/public/%252e%252e/admin"), Routed("public")),
        h1("/%2561dmin", public("/%2561dmin"), Routed("public")),
        h1("/admin\\xff", b"GET /admin\xff HTTP/1.1\r\nHost: public.test\r\n\r\n".to_vec(), Refused("unencoded-target")),
        h1(
            "absolute-form http://public.test/public/../admin",
            "GET http://public.test/public/../admin HTTP/1.1\r\nHost: public.test\r\n\r\n",
            Routed("admin"),
        ),
        // Authority.
        h1(
            "absolute-form http://admin.test/ with Host public.test",
            "GET http://admin.test/ HTTP/1.1\r\nHost: public.test\r\n\r\n",
            Routed("admin-host"),
        ),
        h1(
            "absolute-form http://public.test/ with Host admin.test",
            "GET http://public.test/ HTTP/1.1\r\nHost: admin.test\r\n\r\n",
            Routed("public"),
        ),
        h1(
            "absolute-form http://Admin.Test:80/admin",
            "GET http://Admin.Test:80/admin HTTP/1.1\r\nHost: public.test\r\n\r\n",
            Routed("admin-host,admin"),
        ),
        h1(
            "absolute-form http://public.test@admin.test/",
            "GET http://public.test@admin.test/ HTTP/1.1\r\nHost: public.test\r\n\r\n",
            Refused("invalid-host"),
        ),
        h1("Host Admin.Test", get("/", "Admin.Test"), Routed("admin-host")),
        h1("Host ADMIN.TEST.", get("/", "ADMIN.TEST."), Routed("admin-host")),
        h1("Host admin.test:80", get("/", "admin.test:80"), Routed("admin-host")),
        h1("Host admin.test:", get("/", "admin.test:"), Routed("admin-host")),
        h1("Host admin.test:0080", get("/", "admin.test:0080"), Routed("admin-host")),
        h1("Host admin.test:8080", get("/", "admin.test:8080"), Routed("admin-host")),
        h1(
            "two Host fields",
            "GET / HTTP/1.1\r\nHost: public.test\r\nHost: admin.test\r\n\r\n",
            Refused("duplicate-host"),
        ),
        h1("Host a:80:80", get("/", "admin.test:80:80"), Refused("invalid-host")),
        h1("Host public.test@admin.test", get("/", "public.test@admin.test"), Refused("invalid-host")),
        h1("Host admin.test/x", get("/", "admin.test/x"), Refused("invalid-host")),
        h1("Host admin..test", get("/", "admin..test"), Refused("invalid-host")),
        h1("no Host (HTTP/1.1)", "GET / HTTP/1.1\r\n\r\n", Refused("missing-host")),
        // An HTTP/1.0 request without Host goes upstream as HTTP/1.1 with the target's
        // authority as Host (RFC 9112 section 3.2 requires one).
        h1("no Host (HTTP/1.0) /admin", "GET /admin HTTP/1.0\r\n\r\n", Routed("admin")),
        // Methods.
        h1("get /admin", "get /admin HTTP/1.1\r\nHost: public.test\r\n\r\n", Refused("method-case")),
        h1("Delete /", "Delete / HTTP/1.1\r\nHost: public.test\r\n\r\n", Refused("method-case")),
        h1("dElEtE /", "dElEtE / HTTP/1.1\r\nHost: public.test\r\n\r\n", Refused("method-case")),
        h1("PURGE /admin", "PURGE /admin HTTP/1.1\r\nHost: public.test\r\n\r\n", Routed("admin")),
        // Request-target forms.
        h1("GET *", "GET * HTTP/1.1\r\nHost: public.test\r\n\r\n", Refused("invalid-target-form")),
        h1("OPTIONS *", "OPTIONS * HTTP/1.1\r\nHost: public.test\r\n\r\n", Routed("public")),
        h1(
            "authority-form GET admin.test:80",
            "GET admin.test:80 HTTP/1.1\r\nHost: public.test\r\n\r\n",
            Refused("invalid-target-form"),
        ),
        h1(
            "CONNECT admin.test:80",
            "CONNECT admin.test:80 HTTP/1.1\r\nHost: admin.test:80\r\n\r\n",
            Refused("connect-not-allowed"),
        ),
        h1(
            "GET ftp://admin.test/",
            "GET ftp://admin.test/ HTTP/1.1\r\nHost: public.test\r\n\r\n",
            Refused("invalid-target-form"),
        ),
        h1("GET admin (no slash)", "GET admin HTTP/1.1\r\nHost: public.test\r\n\r\n", Refused("invalid-target-form")),
        // Connection naming protected fields.
        h1(
            "Connection: close, Host",
            "GET / HTTP/1.1\r\nHost: admin.test\r\nConnection: close, Host\r\n\r\n",
            Refused("protected-connection-option"),
        ),
        h1(
            "Connection: X-Test-Route is not protected, and the route still sets it",
            "GET / HTTP/1.1\r\nHost: public.test\r\nConnection: X-Test-Route\r\n\r\n",
            Routed("public"),
        ),
        // Framing read two ways.
        h1(
            "Content-Length with Transfer-Encoding, then a pipelined request",
            format!(
                "POST /public HTTP/1.1\r\nHost: public.test\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET {SMUGGLED} HTTP/1.1\r\nHost: public.test\r\n\r\n"
            ),
            Refused("invalid-framing"),
        ),
        h1(
            "two Content-Length values",
            "POST /public HTTP/1.1\r\nHost: public.test\r\nContent-Length: 0\r\nContent-Length: 5\r\n\r\nhello",
            Refused("invalid-framing"),
        ),
    ];
    // Header names with `_`, on both listeners.
    for on in [On::Public, On::Keep] {
        let listener = if on == On::Public { "drop" } else { "keep" };
        cases.push(H1Case {
            name: format!("X_Rampart_Consumer: admin (underscores {listener})"),
            bytes: b"GET /public HTTP/1.1\r\nHost: public.test\r\nX_Rampart_Consumer: admin\r\nX-Rampart_Consumer: admin\r\n\r\n".to_vec(),
            expect: Routed("public"),
            check: Check::NoConsumer,
            on,
        });
        cases.push(H1Case {
            name: format!("X-Rampart-Consumer: admin (underscores {listener})"),
            bytes:
                b"GET /public HTTP/1.1\r\nHost: public.test\r\nX-Rampart-Consumer: admin\r\n\r\n"
                    .to_vec(),
            expect: Routed("public"),
            check: Check::NoConsumer,
            on,
        });
        cases.push(H1Case {
            name: format!("X_Forwarded_Host / Content_Length (underscores {listener})"),
            bytes: b"GET /public HTTP/1.1\r\nHost: public.test\r\nX_Forwarded_Host: admin.test\r\nContent_Length: 5\r\n\r\n".to_vec(),
            expect: Routed("public"),
            check: Check::Nothing,
            on,
        });
    }
    // On a listener that keeps `_` names, a field the route sets (`request_headers.set`)
    // is still protected from its `_` spelling: a backend that maps `_` onto `-`
    // (Hypercorn's WSGI environ, hypercorn/app_wrappers.py `_build_environ`) would join
    // the client's `X_Test_Route: admin` to the route's `x-test-route: public`.
    cases.push(H1Case {
        name: "X_Test_Route: admin (underscores keep)".to_string(),
        bytes: b"GET /public HTTP/1.1\r\nHost: public.test\r\nX_Test_Route: admin\r\n\r\n".to_vec(),
        expect: Routed("public"),
        check: Check::Nothing,
        on: On::Keep,
    });
    cases.push(H1Case {
        name: "X_Test_Route: admin (underscores drop)".to_string(),
        bytes: b"GET /public HTTP/1.1\r\nHost: public.test\r\nX_Test_Route: admin\r\n\r\n".to_vec(),
        expect: Routed("public"),
        check: Check::Nothing,
        on: On::Public,
    });
    // Client trailers.
    cases.push(H1Case {
        name: "chunked body with trailers X-Rampart-Consumer, Host, X-Test-Route".to_string(),
        bytes: b"POST /public HTTP/1.1\r\nHost: public.test\r\nTransfer-Encoding: chunked\r\n\r\n\
                 5\r\nhello\r\n0\r\nX-Rampart-Consumer: admin\r\nHost: admin.test\r\nX-Test-Route: admin\r\n\r\n"
            .to_vec(),
        expect: Routed("public"),
        check: Check::Trailers(&[]),
        on: On::Public,
    });
    cases.push(H1Case {
        name: "trailers on a route that forwards them".to_string(),
        bytes: b"POST /forwards-trailers HTTP/1.1\r\nHost: public.test\r\nTransfer-Encoding: chunked\r\n\r\n\
                 5\r\nhello\r\n0\r\nX-Checksum: abc\r\nX-Rampart-Consumer: admin\r\nHost: admin.test\r\n\
                 X_Rampart_Consumer: admin\r\nContent-Length: 5\r\n\r\n"
            .to_vec(),
        expect: Routed("public"),
        check: Check::Trailers(&["x-checksum"]),
        on: On::Public,
    });
    // Upgrades other than WebSocket: not forwarded; the request goes on as HTTP/1.1.
    cases.push(H1Case {
        name: "Upgrade: h2c with HTTP2-Settings".to_string(),
        bytes:
            b"GET /public HTTP/1.1\r\nHost: public.test\r\nConnection: Upgrade, HTTP2-Settings\r\n\
                 Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n"
                .to_vec(),
        expect: Routed("public"),
        check: Check::NoUpgrade,
        on: On::Public,
    });
    cases.push(H1Case {
        name: "Upgrade: websocket, h2c".to_string(),
        bytes: b"GET /public HTTP/1.1\r\nHost: public.test\r\nConnection: Upgrade\r\n\
                 Upgrade: websocket, h2c\r\n\r\n"
            .to_vec(),
        expect: Routed("public"),
        check: Check::NoUpgrade,
        on: On::Public,
    });
    cases
}

struct H2Case {
    name: String,
    method: &'static str,
    /// The `:authority` (and scheme http).
    authority: &'static str,
    path: &'static str,
    headers: Vec<(&'static str, &'static str)>,
    trailers: Vec<(&'static str, &'static str)>,
    expect: Expect,
    check: Check,
}

fn h2(
    name: &str,
    method: &'static str,
    authority: &'static str,
    path: &'static str,
    expect: Expect,
) -> H2Case {
    H2Case {
        name: name.to_string(),
        method,
        authority,
        path,
        headers: Vec::new(),
        trailers: Vec::new(),
        expect,
        check: Check::Nothing,
    }
}

fn h2_cases() -> Vec<H2Case> {
    use Expect::{Refused, Routed};
    let p = "public.test";
    let mut cases = vec![
        h2("control: /admin", "GET", p, "/admin", Routed("admin")),
        h2("control: /public", "GET", p, "/public", Routed("public")),
        h2(
            "control: :authority admin.test",
            "GET",
            "admin.test",
            "/",
            Routed("admin-host"),
        ),
        h2("control: DELETE /", "DELETE", p, "/", Routed("delete")),
        h2("/%61dmin", "GET", p, "/%61dmin", Routed("admin")),
        h2(
            "/public/../admin",
            "GET",
            p,
            "/public/../admin",
            Routed("admin"),
        ),
        h2(
            "/public/%2e%2e/admin",
            "GET",
            p,
            "/public/%2e%2e/admin",
            Routed("admin"),
        ),
        h2(
            "/public/.%2e/admin",
            "GET",
            p,
            "/public/.%2e/admin",
            Routed("admin"),
        ),
        h2("//admin", "GET", p, "//admin", Routed("admin")),
        h2(
            "/public%2f..%2fadmin",
            "GET",
            p,
            "/public%2f..%2fadmin",
            Refused("encoded-slash"),
        ),
        h2(
            "/public/..%5cadmin",
            "GET",
            p,
            "/public/..%5cadmin",
            Refused("encoded-slash"),
        ),
        h2(
            "/admin%00",
            "GET",
            p,
            "/admin%00",
            Refused("invalid-path-encoding"),
        ),
        h2(
            "/public/..;/admin",
            "GET",
            p,
            "/public/..;/admin",
            Refused("path-traversal"),
        ),
        // See the HTTP/1.1 case `/admin;x=1`.
        h2(
            "/admin;x=1",
            "GET",
            p,
            "/admin;x=1",
            Refused("path-parameters"),
        ),
        h2(
            "/public/%252e%252e/admin",
            "GET",
            p,
            "/public/%252e%252e/admin",
            Routed("public"),
        ),
        h2(
            ":authority Admin.Test",
            "GET",
            "Admin.Test",
            "/",
            Routed("admin-host"),
        ),
        h2(
            ":authority admin.test.",
            "GET",
            "admin.test.",
            "/",
            Routed("admin-host"),
        ),
        h2(
            ":authority admin.test:80",
            "GET",
            "admin.test:80",
            "/",
            Routed("admin-host"),
        ),
        h2(
            ":authority public.test@admin.test",
            "GET",
            "public.test@admin.test",
            "/",
            Refused("invalid-host"),
        ),
        h2("method get", "get", p, "/admin", Refused("method-case")),
        h2("method Delete", "Delete", p, "/", Refused("method-case")),
        h2("PURGE /admin", "PURGE", p, "/admin", Routed("admin")),
    ];
    let mut with_host = h2(
        ":authority admin.test, host public.test",
        "GET",
        "admin.test",
        "/",
        Routed("admin-host"),
    );
    with_host.headers.push(("host", "public.test"));
    cases.push(with_host);
    let mut with_host = h2(
        ":authority public.test, host admin.test",
        "GET",
        p,
        "/",
        Routed("public"),
    );
    with_host.headers.push(("host", "admin.test"));
    cases.push(with_host);
    let mut two_hosts = h2("two host fields", "GET", p, "/", Refused("duplicate-host"));
    two_hosts.headers.push(("host", "public.test"));
    two_hosts.headers.push(("host", "admin.test"));
    cases.push(two_hosts);
    let mut underscore = h2(
        "x_rampart_consumer: admin",
        "GET",
        p,
        "/public",
        Routed("public"),
    );
    underscore.headers.push(("x_rampart_consumer", "admin"));
    underscore.check = Check::NoConsumer;
    cases.push(underscore);
    let mut trailers = h2(
        "body with trailers x-rampart-consumer, host",
        "POST",
        p,
        "/public",
        Routed("public"),
    );
    trailers.trailers = vec![
        ("x-rampart-consumer", "admin"),
        ("host", "admin.test"),
        ("x-test-route", "admin"),
    ];
    trailers.check = Check::Trailers(&[]);
    cases.push(trailers);
    let mut forwarded = h2(
        "trailers on a route that forwards them",
        "POST",
        p,
        "/forwards-trailers",
        Routed("public"),
    );
    forwarded.trailers = vec![
        ("x-checksum", "abc"),
        ("x-rampart-consumer", "admin"),
        ("host", "admin.test"),
    ];
    forwarded.check = Check::Trailers(&["x-checksum"]);
    cases.push(forwarded);
    cases
}

fn h2_request(case: &H2Case) -> Result<Request<H2Body>, String> {
    let uri = Uri::try_from(format!("http://{}{}", case.authority, case.path))
        .map_err(|e| format!("not expressible as an HTTP/2 request: {e}"))?;
    let method = Method::from_bytes(case.method.as_bytes()).map_err(|e| e.to_string())?;
    let mut builder = Request::builder().method(method).uri(uri);
    for (name, value) in &case.headers {
        builder = builder.header(*name, *value);
    }
    let body: H2Body = if case.trailers.is_empty() {
        Full::new(Bytes::new()).boxed()
    } else {
        let mut trailers = http::HeaderMap::new();
        for (name, value) in &case.trailers {
            trailers.append(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        let frames = vec![
            Ok::<_, Infallible>(Frame::data(Bytes::from_static(b"hello"))),
            Ok(Frame::trailers(trailers)),
        ];
        StreamBody::new(futures_util::stream::iter(frames)).boxed()
    };
    builder.body(body).map_err(|e| e.to_string())
}

// ---------------------------------------------------------------------------------
// Verdicts.
// ---------------------------------------------------------------------------------

struct Report {
    peer: &'static str,
    rows: Vec<(String, String, String, Option<String>)>,
    /// Refusals expected, by reason.
    refusals: BTreeMap<String, u64>,
}

impl Report {
    fn new(peer: &'static str) -> Self {
        Self {
            peer,
            rows: Vec::new(),
            refusals: BTreeMap::new(),
        }
    }

    /// Counts the refusal a case expects, to compare with Rampart's refusal counter at
    /// the end.
    fn count_refusal(&mut self, expect: Expect, _reply: &Reply) {
        let Expect::Refused(reason) = expect else {
            return;
        };
        let reason = reason.to_string();
        *self.refusals.entry(reason).or_default() += 1;
    }

    fn row(&mut self, case: String, expected: String, got: String, violation: Option<String>) {
        self.rows.push((case, expected, got, violation));
    }

    /// Prints every case and its outcome; fails listing the violations.
    fn finish(self) {
        let mut out = format!("edge cases against {}:\n", self.peer);
        let mut violations = Vec::new();
        for (case, expected, got, violation) in &self.rows {
            let verdict = match violation {
                None => "ok".to_string(),
                Some(v) => {
                    violations.push(format!("{case}: {v}"));
                    format!("VIOLATION: {v}")
                }
            };
            out.push_str(&format!(
                "  {case:<72} expect {expected:<38} got {got} -- {verdict}\n"
            ));
        }
        eprintln!("{out}");
        assert!(
            violations.is_empty(),
            "{} of {} edge cases against {} failed:\n{}",
            violations.len(),
            self.rows.len(),
            self.peer,
            violations.join("\n")
        );
    }
}

/// The verdict on one reply: `None` when it holds.
fn judge(peer: &Peer, case: &str, expect: Expect, check: Check, reply: &Reply) -> Option<String> {
    match (expect, reply) {
        (
            Expect::Refused(reason),
            Reply::Rampart {
                status,
                slug,
                request_id,
            },
        ) => {
            if slug != reason {
                Some(format!("refused as {slug}, expected {reason}"))
            } else if !(400..500).contains(status) {
                Some(format!("refused with status {status}"))
            } else if request_id.is_empty() {
                Some("the problem has no request_id (or x-request-id disagrees)".into())
            } else {
                None
            }
        }
        (Expect::Refused(reason), other) => Some(format!(
            "expected Rampart to refuse it ({reason}), got {}",
            other.summary()
        )),
        (Expect::Routed(_), Reply::Rampart { status, slug, .. }) => {
            Some(format!("Rampart answered {status} {slug}"))
        }
        (Expect::Routed(_), Reply::PeerRefused { status, body }) => {
            // The backend served nothing: safe, but a positive control must arrive.
            control(case).then(|| format!("the backend refused a control ({status}): {body}"))
        }
        (Expect::Routed(_), Reply::Peer(seen)) => {
            let Some(applied) = controls_of(&seen.route) else {
                return Some(format!(
                    "the backend got x-test-route {:?}, which no route sets: a client's value reached it",
                    seen.route
                ));
            };
            let needs = seen.needs();
            if !needs.is_subset(&applied) {
                return Some(format!(
                    "BYPASS: the backend understood {} (needs {}), Rampart applied {}",
                    seen.summary(),
                    tag_of(&needs),
                    seen.route
                ));
            }
            if let Expect::Routed(tag) = expect {
                if seen.route != tag {
                    return Some(format!("routed as {}, expected {tag}", seen.route));
                }
            }
            check_seen(peer, check, seen)
        }
    }
}

/// A note for a reply whose route applies more controls than the backend's reading
/// calls for (safe: stricter, as when a backend keeps a non-default port in its host).
fn stricter(reply: &Reply) -> &'static str {
    match reply {
        Reply::Peer(seen)
            if controls_of(&seen.route).is_some_and(|applied| {
                let needs = seen.needs();
                applied.is_superset(&needs) && applied != needs
            }) =>
        {
            " [stricter than this backend's reading needs]"
        }
        _ => "",
    }
}

fn check_seen(peer: &Peer, check: Check, seen: &Seen) -> Option<String> {
    let message = seen
        .record
        .and_then(|i| peer.record(i))
        .and_then(|r| r.message);
    if let Some(message) = &message {
        // Every request Rampart sends is HTTP/1.1, which needs exactly one Host
        // (RFC 9112, section 3.2).
        let hosts = message.exact("host").len();
        if hosts != 1 {
            return Some(format!(
                "the backend got {hosts} Host fields in {:?} (an HTTP/1.1 request has exactly one)",
                message.request_line
            ));
        }
    }
    match check {
        Check::Nothing => None,
        Check::NoConsumer => {
            if let Some(consumer) = &seen.consumer {
                return Some(format!(
                    "the application read X-Rampart-Consumer {consumer:?}"
                ));
            }
            let underscored = message
                .iter()
                .flat_map(|m| m.headers.iter().chain(&m.trailers))
                .find(|(name, _)| name.contains('_'));
            underscored.map(|(name, _)| format!("{name} reached the backend"))
        }
        Check::Trailers(expected) => {
            if let Some(consumer) = &seen.consumer {
                return Some(format!(
                    "the application read X-Rampart-Consumer {consumer:?}"
                ));
            }
            let message = message?;
            let names: Vec<String> = message
                .trailers
                .iter()
                .map(|(n, _)| n.to_ascii_lowercase())
                .collect();
            (names != expected)
                .then(|| format!("the backend got trailers {names:?}, expected {expected:?}"))
        }
        Check::NoUpgrade => {
            if let Some(upgrade) = &seen.upgrade {
                return Some(format!("the backend got Upgrade: {upgrade}"));
            }
            let forwarded = message
                .iter()
                .any(|m| !m.exact("upgrade").is_empty() || !m.exact("http2-settings").is_empty());
            forwarded.then(|| "Upgrade or HTTP2-Settings reached the backend".to_string())
        }
    }
}

// ---------------------------------------------------------------------------------
// Running the suite against one peer.
// ---------------------------------------------------------------------------------

async fn run_h1_case(peer: &Peer, edge: &Edge, case: &H1Case, report: &mut Report) {
    let addr = match case.on {
        On::Public => edge.public,
        On::Keep => edge.keep,
    };
    let mut raw = Raw::open(addr).await;
    let refused = matches!(case.expect, Expect::Refused(_));
    let mut bytes = case.bytes.clone();
    if refused {
        bytes.extend_from_slice(AFTER_REFUSAL.as_bytes());
    }
    raw.send(&bytes).await;
    let name = format!("h1 {}", case.name);
    let expected = expectation(case.expect);
    let answer = match raw.response().await {
        Ok(Some(answer)) => answer,
        Ok(None) => {
            report.row(name, expected, "closed".into(), Some("no answer".into()));
            return;
        }
        Err(e) => {
            report.row(name, expected, "error".into(), Some(e));
            return;
        }
    };
    if answer.status == 101 {
        report.row(
            name,
            expected,
            "101".into(),
            Some("the connection was switched to another protocol".into()),
        );
        return;
    }
    let reply = peer.reply(&answer);
    report.count_refusal(case.expect, &reply);
    let mut violation = judge(peer, &name, case.expect, case.check, &reply);
    if matches!(reply, Reply::Rampart { .. }) && violation.is_none() {
        // A refused message ends its connection: the request pipelined after it is
        // neither answered nor forwarded.
        if answer
            .header("connection")
            .is_none_or(|v| !v.eq_ignore_ascii_case("close"))
        {
            violation = Some("the refusal does not say Connection: close".into());
        } else if let Err(e) = raw.closes_without_more().await {
            violation = Some(format!("connection reused after a refused message: {e}"));
        }
    }
    let got = format!("{}{}", reply.summary(), stricter(&reply));
    report.row(name, expected, got, violation);
}

fn expectation(expect: Expect) -> String {
    match expect {
        Expect::Refused(reason) => format!("refused {reason}"),
        Expect::Routed(tag) => format!("routed {tag}"),
    }
}

async fn run_h2_case(peer: &Peer, edge: &Edge, case: &H2Case, report: &mut Report) {
    let name = format!("h2 {}", case.name);
    let expected = expectation(case.expect);
    let request = match h2_request(case) {
        Ok(request) => request,
        Err(e) => {
            report.row(name, expected, format!("not sent: {e}"), None);
            return;
        }
    };
    match h2_send(edge.public, request).await {
        Ok(answer) => {
            let reply = peer.reply(&answer);
            report.count_refusal(case.expect, &reply);
            let violation = judge(peer, &name, case.expect, case.check, &reply);
            let got = format!("{}{}", reply.summary(), stricter(&reply));
            report.row(name, expected, got, violation);
        }
        Err(e) => report.row(name, expected, "error".into(), Some(e)),
    }
}

/// `Upgrade: h2c` must not turn the connection into a tunnel to the backend: the
/// answer is not 101, and the requests after it on that connection are still routed
/// (and counted) by Rampart.
async fn h2c_upgrade_then_more(peer: &Peer, edge: &Edge, report: &mut Report) {
    let name = "h1 Upgrade: h2c, then GET /admin and GET /after-h2c on that connection".to_string();
    let mut raw = Raw::open(edge.public).await;
    raw.send(
        b"GET /public HTTP/1.1\r\nHost: public.test\r\nConnection: Upgrade, HTTP2-Settings\r\n\
          Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n",
    )
    .await;
    let mut got = Vec::new();
    let mut violation = None;
    for (path, tag) in [
        ("/public", "public"),
        ("/admin", "admin"),
        ("/after-h2c", "public"),
    ] {
        if path != "/public" {
            raw.send(&get(path, "public.test")).await;
        }
        match raw.response().await {
            Ok(Some(answer)) if answer.status == 101 => {
                violation = Some(format!("{path}: answered 101: the connection switched"));
                got.push("101".to_string());
                break;
            }
            Ok(Some(answer)) => {
                let reply = peer.reply(&answer);
                got.push(reply.summary());
                let check = if path == "/public" {
                    Check::NoUpgrade
                } else {
                    Check::Nothing
                };
                if let Some(v) = judge(peer, "control:", Expect::Routed(tag), check, &reply) {
                    violation = Some(format!("{path}: {v}"));
                    break;
                }
                if let Reply::Peer(seen) = &reply {
                    if seen.path != path {
                        violation = Some(format!("{path}: the backend read {}", seen.path));
                        break;
                    }
                }
            }
            Ok(None) => {
                violation = Some(format!("{path}: the connection closed"));
                break;
            }
            Err(e) => {
                violation = Some(format!("{path}: {e}"));
                break;
            }
        }
    }
    let metrics = edge.gateway.metrics().encode_prometheus();
    let logged = r#"rampart_requests_total{route="after-h2c",method="GET",status="2xx"} 1"#;
    if violation.is_none() && !metrics.contains(logged) {
        violation = Some(format!(
            "Rampart did not count the request after the upgrade: no `{logged}`"
        ));
    }
    report.row(
        name,
        "not switched, all routed".into(),
        got.join(" | "),
        violation,
    );
}

/// A chunked body whose last lines end with a bare LF, followed by a pipelined
/// request: a parser that takes bare LF would see the request; the backend must
/// never get it, and the connection that carried the broken body is not reused.
async fn broken_chunked_bodies(peer: &Peer, edge: &Edge, report: &mut Report) {
    let variants: [(&str, String); 4] = [
        (
            "trailer ends with a bare LF",
            format!(
                "5\r\nhello\r\n0\r\nX: 1\n\nGET {SMUGGLED} HTTP/1.1\r\nHost: public.test\r\n\r\n"
            ),
        ),
        (
            "last chunk ends with bare LFs",
            format!("5\r\nhello\r\n0\n\nGET {SMUGGLED} HTTP/1.1\r\nHost: public.test\r\n\r\n"),
        ),
        (
            "chunk size line with a bare LF",
            format!("5\nhello\r\n0\r\n\r\nGET {SMUGGLED} HTTP/1.1\r\nHost: public.test\r\n\r\n"),
        ),
        (
            "chunk data ends with a bare LF",
            format!("5\r\nhello\n0\r\n\r\nGET {SMUGGLED} HTTP/1.1\r\nHost: public.test\r\n\r\n"),
        ),
    ];
    for (variant, body) in variants {
        let name = format!("h1 chunked body: {variant}, then GET {SMUGGLED}");
        let before = peer.recorder.as_ref().map_or(0, |r| r.records().len());
        let mut raw = Raw::open(edge.public).await;
        raw.send(
            format!("POST /public HTTP/1.1\r\nHost: public.test\r\nTransfer-Encoding: chunked\r\n\r\n{body}")
                .as_bytes(),
        )
        .await;
        let (got, mut violation) = match raw.response().await {
            Ok(Some(answer)) => match peer.reply(&answer) {
                Reply::Rampart {
                    status,
                    slug,
                    request_id,
                } => {
                    let got = format!("rampart {status} {slug}");
                    if !(400..500).contains(&status) || request_id.is_empty() {
                        (
                            got,
                            Some("not a client error problem with a request id".to_string()),
                        )
                    } else {
                        (got, raw.closes_without_more().await.err())
                    }
                }
                other => (
                    other.summary(),
                    Some("the broken body was answered by the backend".to_string()),
                ),
            },
            Ok(None) => ("closed".to_string(), None),
            Err(e) => ("error".to_string(), Some(e)),
        };
        // The next request through Rampart arrives, on a backend connection other than
        // the one the broken body may have begun on.
        let mut next = Raw::open(edge.public).await;
        next.send(&get("/admin/next", "public.test")).await;
        match next.response().await {
            Ok(Some(answer)) => {
                let reply = peer.reply(&answer);
                if let Some(v) = judge(
                    peer,
                    "control:",
                    Expect::Routed("admin"),
                    Check::Nothing,
                    &reply,
                ) {
                    violation.get_or_insert(format!("the next request: {v}"));
                }
                if let (Some(recorder), Reply::Peer(seen)) = (&peer.recorder, &reply) {
                    let records = recorder.records();
                    let next_conn = seen.record.map(|i| records[i].conn);
                    let broken = records[before..]
                        .iter()
                        .find(|r| r.message.as_ref().is_none_or(|m| m.target == "/public"));
                    if let Some(broken) = broken {
                        if Some(broken.conn) == next_conn {
                            violation.get_or_insert(format!(
                                "the backend connection that carried the broken body was reused: {:?}",
                                String::from_utf8_lossy(&broken.bytes)
                            ));
                        }
                    }
                }
            }
            Ok(None) => {
                violation.get_or_insert("the next request got no answer".into());
            }
            Err(e) => {
                violation.get_or_insert(format!("the next request: {e}"));
            }
        }
        report.row(
            name,
            "refused, closed, nothing smuggled".into(),
            got,
            violation,
        );
    }
}

/// WebSocket still switches on a route that allows it (the default), and not on one
/// that allows no upgrade. Recording backend only: it is the one that answers 101.
async fn websocket_upgrades(peer: &Peer, edge: &Edge, report: &mut Report) {
    let handshake = |path: &str| {
        format!(
            "GET {path} HTTP/1.1\r\nHost: public.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
    };
    let mut raw = Raw::open(edge.public).await;
    raw.send(handshake("/ws").as_bytes()).await;
    let violation = match raw.response().await {
        Ok(Some(answer)) if answer.status == 101 => {
            raw.send(b"ping frame").await;
            let mut echoed = std::mem::take(&mut raw.buf);
            while echoed.len() < 10 && !raw.eof {
                match raw.fill().await {
                    Ok(()) => echoed.append(&mut raw.buf),
                    Err(_) => break,
                }
            }
            (echoed != b"ping frame").then(|| {
                format!(
                    "no echo through the tunnel: {:?}",
                    String::from_utf8_lossy(&echoed)
                )
            })
        }
        Ok(Some(answer)) => Some(format!("answered {} instead of 101", answer.status)),
        Ok(None) => Some("closed".into()),
        Err(e) => Some(e),
    };
    report.row(
        "h1 Upgrade: websocket on a default route".into(),
        "101, then a tunnel".into(),
        if violation.is_none() {
            "101, echoed"
        } else {
            "-"
        }
        .into(),
        violation,
    );

    let mut raw = Raw::open(edge.public).await;
    raw.send(handshake("/no-upgrades/ws").as_bytes()).await;
    let (got, violation) = match raw.response().await {
        Ok(Some(answer)) if answer.status == 101 => ("101".into(), Some("switched".into())),
        Ok(Some(answer)) => {
            let reply = peer.reply(&answer);
            (
                reply.summary(),
                judge(
                    peer,
                    "control:",
                    Expect::Routed("public"),
                    Check::NoUpgrade,
                    &reply,
                ),
            )
        }
        Ok(None) => ("closed".into(), Some("closed".into())),
        Err(e) => ("error".into(), Some(e)),
    };
    report.row(
        "h1 Upgrade: websocket on a route with upgrades = []".into(),
        "200 without Upgrade".into(),
        got,
        violation,
    );
}

/// Every refusal was counted under its reason.
fn check_refusal_counts(edge: &Edge, report: &mut Report) {
    let metrics = edge.gateway.metrics().encode_prometheus();
    let refusals = std::mem::take(&mut report.refusals);
    for (reason, count) in refusals {
        let series = format!("rampart_requests_refused_total{{reason=\"{reason}\"}} {count}");
        let found = metrics
            .lines()
            .find(|l| {
                l.starts_with(&format!(
                    "rampart_requests_refused_total{{reason=\"{reason}\"}}"
                ))
            })
            .unwrap_or("none")
            .to_string();
        let violation =
            (!metrics.lines().any(|l| l == series)).then(|| format!("expected `{series}`"));
        report.row(
            format!("metric: refusals for {reason}"),
            count.to_string(),
            found,
            violation,
        );
    }
}

async fn run_suite(peer: Peer, peer_addr: SocketAddr) {
    let edge = edge_gateway(peer_addr).await;
    let mut report = Report::new(peer.name());
    for case in h1_cases() {
        run_h1_case(&peer, &edge, &case, &mut report).await;
    }
    for case in h2_cases() {
        run_h2_case(&peer, &edge, &case, &mut report).await;
    }
    h2c_upgrade_then_more(&peer, &edge, &mut report).await;
    broken_chunked_bodies(&peer, &edge, &mut report).await;
    if peer.kind == Kind::Recording {
        websocket_upgrades(&peer, &edge, &mut report).await;
    }
    check_refusal_counts(&edge, &mut report);
    if let Some(recorder) = &peer.recorder {
        // Nothing that followed a refused or broken message reached the backend.
        let leaked: Vec<String> = recorder
            .records()
            .iter()
            .filter(|r| {
                let text = String::from_utf8_lossy(&r.bytes);
                text.contains("/admin/after-refusal") || text.contains(SMUGGLED)
            })
            .map(|r| format!("{:?}", String::from_utf8_lossy(&r.bytes)))
            .collect();
        report.row(
            "backend: nothing pipelined after a refused message arrived".into(),
            "none".into(),
            format!("{}", leaked.len()),
            (!leaked.is_empty()).then(|| leaked.join(", ")),
        );
    }
    report.finish();
}

#[tokio::test]
async fn edge_cases_against_a_recording_backend() {
    let recorder = Recorder::start().await;
    let addr = recorder.addr;
    run_suite(
        Peer {
            kind: Kind::Recording,
            recorder: Some(recorder),
        },
        addr,
    )
    .await;
}

#[tokio::test]
async fn edge_cases_against_nginx_virtual_hosts() {
    let Some(nginx) = std::env::var_os("RAMPART_TEST_NGINX") else {
        skip("RAMPART_TEST_NGINX (the nginx binary) is not set");
        return;
    };
    let nginx = nginx.to_string_lossy().into_owned();
    if !Path::new(&nginx).exists() {
        skip(&format!("RAMPART_TEST_NGINX={nginx} does not exist"));
        return;
    }
    let (_process, addr) = start_nginx(&nginx).await;
    run_suite(
        Peer {
            kind: Kind::Nginx,
            recorder: None,
        },
        addr,
    )
    .await;
}

#[tokio::test]
async fn edge_cases_against_flask_on_hypercorn() {
    let Some(python) = std::env::var_os("RAMPART_TEST_PYTHON") else {
        skip("RAMPART_TEST_PYTHON (a Python with flask and hypercorn) is not set");
        return;
    };
    let python = python.to_string_lossy().into_owned();
    let importable = std::process::Command::new(&python)
        .args(["-c", "import flask, hypercorn"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !importable {
        skip(&format!("{python} cannot import flask and hypercorn"));
        return;
    }
    let (_process, addr) = start_hypercorn(&python).await;
    run_suite(
        Peer {
            kind: Kind::Flask,
            recorder: None,
        },
        addr,
    )
    .await;
}
