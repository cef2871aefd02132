//! The CRS regression suite (go-ftw YAML tests) run in-process against the engine, in
//! the configuration the CRS documents for its own suite (rule 900005: detection only,
//! blocking paranoia level 4, the suite's argument limits). The suite's backend, which
//! reflects a JSON-described response for `/reflect`, is emulated here.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_norway::Value;

use crate::engine::{Engine, Request, Response, Transaction};
use crate::seclang::{self, ParseErrors};

/// The setup the CRS test suite prescribes (testing/README.md, rule 900005).
pub const TEST_SETUP: &str = r#"SecAction "id:900005,phase:1,nolog,pass,ctl:ruleEngine=DetectionOnly,ctl:ruleRemoveById=910000,setvar:tx.blocking_paranoia_level=4,setvar:tx.crs_validate_utf8_encoding=1,setvar:tx.arg_name_length=100,setvar:tx.arg_length=400,setvar:tx.total_arg_length=64000,setvar:tx.max_num_args=255,setvar:tx.max_file_size=64100,setvar:tx.combined_file_sizes=65535""#;

/// How one test case went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// All its expectations held.
    Passed,
    /// One did not.
    Failed(String),
    /// It checks something this in-process engine cannot produce (a web server's own
    /// status for a malformed request, a client-side error, log text).
    Skipped(String),
}

/// One test case's result.
#[derive(Debug, Clone)]
pub struct CaseResult {
    /// `<rule id>-<test id>`.
    pub name: String,
    /// The verdict.
    pub verdict: Verdict,
}

/// Why the suite could not run.
#[derive(Debug, thiserror::Error)]
pub enum ConformanceError {
    /// The rules do not parse.
    #[error("{0}")]
    Parse(#[from] ParseErrors),
    /// The rules do not compile.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Compile(Vec<crate::engine::CompileError>),
    /// The tests cannot be read.
    #[error("{0}")]
    Tests(String),
}

/// The entry file for a CRS checkout at `crs`: its setup (`crs-setup.conf`, else the
/// shipped `crs-setup.conf.example`), then every rule file.
pub fn crs_entry(crs: &Path) -> String {
    let setup = if crs.join("crs-setup.conf").is_file() {
        "crs-setup.conf"
    } else {
        "crs-setup.conf.example"
    };
    format!(
        "Include {}\nInclude {}/rules/*.conf\n",
        crs.join(setup).display(),
        crs.display()
    )
}

/// Loads `entry` (which includes the CRS setup and rules) with the suite's setup first.
pub fn engine_for_tests(entry: &Path) -> Result<Engine, ConformanceError> {
    let mut set = seclang::parse_str(TEST_SETUP, Path::new("test-setup.conf"))?;
    set.directives.extend(seclang::load(entry)?.directives);
    Engine::compile(&set).map_err(ConformanceError::Compile)
}

/// Every `.yaml` file under `dir`, sorted.
fn test_files(dir: &Path) -> Result<Vec<PathBuf>, ConformanceError> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.is_dir() {
                walk(&path, out)?;
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                out.push(path);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, &mut out).map_err(|e| ConformanceError::Tests(format!("{}: {e}", dir.display())))?;
    out.sort();
    Ok(out)
}

/// Runs every test under `tests` against `engine`.
pub fn run(engine: &Engine, tests: &Path) -> Result<Vec<CaseResult>, ConformanceError> {
    let mut results = Vec::new();
    for file in test_files(tests)? {
        let text = std::fs::read_to_string(&file)
            .map_err(|e| ConformanceError::Tests(format!("{}: {e}", file.display())))?;
        let doc: Value = serde_norway::from_str(&text)
            .map_err(|e| ConformanceError::Tests(format!("{}: {e}", file.display())))?;
        let rule_id = doc.get("rule_id").and_then(Value::as_u64).unwrap_or(0);
        let Some(tests) = doc.get("tests").and_then(Value::as_sequence) else {
            continue;
        };
        for (n, test) in tests.iter().enumerate() {
            let test_id = test
                .get("test_id")
                .and_then(Value::as_u64)
                .unwrap_or(n as u64 + 1);
            results.push(CaseResult {
                name: format!("{rule_id}-{test_id}"),
                verdict: run_case(engine, test),
            });
        }
    }
    Ok(results)
}

fn run_case(engine: &Engine, test: &Value) -> Verdict {
    let Some(stages) = test.get("stages").and_then(Value::as_sequence) else {
        return Verdict::Skipped("no stages".into());
    };
    for stage in stages {
        let stage = stage.get("stage").unwrap_or(stage);
        let (Some(input), Some(output)) = (stage.get("input"), stage.get("output")) else {
            return Verdict::Skipped("a stage without input or output".into());
        };
        if output.get("expect_error").and_then(Value::as_bool) == Some(true) {
            return Verdict::Skipped(
                "expects a client-side error (a malformed request no HTTP server accepts)".into(),
            );
        }
        if let Some(status) = output.get("status") {
            let wants_200 = match status {
                Value::Number(n) => n.as_u64() == Some(200),
                Value::Sequence(list) => list.iter().any(|s| s.as_u64() == Some(200)),
                _ => false,
            };
            if !wants_200 {
                return Verdict::Skipped(
                    "expects the web server's own status for the request".into(),
                );
            }
        }
        let log = output.get("log");
        if log.is_some_and(|l| l.get("match_regex").is_some() || l.get("no_match_regex").is_some())
        {
            return Verdict::Skipped("checks the text of another engine's log".into());
        }
        let request = match request_from(input) {
            Ok(r) => r,
            Err(e) => return Verdict::Skipped(e),
        };
        let mut tx = Transaction::new(engine, &request);
        tx.run_request_phases();
        tx.set_response(&reflect(&request));
        tx.run_response_phases();
        let matched: Vec<u64> = tx.matched.iter().map(|m| m.id).collect();
        let ids = |key: &str| -> Vec<u64> {
            log.and_then(|l| l.get(key))
                .and_then(Value::as_sequence)
                .map(|s| s.iter().filter_map(Value::as_u64).collect())
                .unwrap_or_default()
        };
        for id in ids("expect_ids") {
            if !matched.contains(&id) {
                return Verdict::Failed(format!("expected {id}; matched {matched:?}"));
            }
        }
        for id in ids("no_expect_ids") {
            if matched.contains(&id) {
                return Verdict::Failed(format!("did not expect {id}"));
            }
        }
    }
    Verdict::Passed
}

/// The suite's backend: `/reflect` answers with the JSON-described response in the
/// request body; everything else gets an empty 200.
fn reflect(request: &Request) -> Response {
    let mut response = Response {
        status: 200,
        protocol: "HTTP/1.1".into(),
        headers: vec![("Content-Type".into(), "text/plain".into())],
        body: Vec::new(),
    };
    if request.uri.starts_with("/reflect") {
        if let Ok(spec) = serde_json::from_slice::<serde_json::Value>(&request.body) {
            if let Some(status) = spec.get("status").and_then(serde_json::Value::as_u64) {
                response.status = u16::try_from(status).unwrap_or(200);
            }
            if let Some(headers) = spec.get("headers").and_then(serde_json::Value::as_object) {
                response.headers = headers
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                    .collect();
            }
            if let Some(body) = spec.get("body").and_then(serde_json::Value::as_str) {
                response.body = body.as_bytes().to_vec();
            }
        }
    }
    response
}

fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Builds the request a stage describes (fields, or a base64 raw request).
fn request_from(input: &Value) -> Result<Request, String> {
    if let Some(encoded) = text(input.get("encoded_request")) {
        // The suite wraps long encodings over several lines.
        let compact: String = encoded.chars().filter(|c| !c.is_whitespace()).collect();
        let raw = base64::engine::general_purpose::STANDARD
            .decode(compact)
            .map_err(|_| "encoded_request is not base64".to_string())?;
        return parse_raw(&raw);
    }
    let mut headers: Vec<(String, String)> = Vec::new();
    if let Some(map) = input.get("headers").and_then(Value::as_mapping) {
        for (k, v) in map {
            if let (Some(k), Some(v)) = (text(Some(k)), text(Some(v))) {
                headers.push((k, v));
            }
        }
    }
    let body = text(input.get("data")).unwrap_or_default().into_bytes();
    let autocomplete = input.get("autocomplete_headers").and_then(Value::as_bool) != Some(false);
    // go-ftw completes requests that carry data: a length and a form content type.
    let has = |headers: &[(String, String)], name: &str| {
        headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name))
    };
    if autocomplete && !body.is_empty() {
        if !has(&headers, "content-length") {
            headers.push(("Content-Length".into(), body.len().to_string()));
        }
        if !has(&headers, "content-type") {
            headers.push((
                "Content-Type".into(),
                "application/x-www-form-urlencoded".into(),
            ));
        }
    }
    Ok(Request {
        method: text(input.get("method")).unwrap_or_else(|| "GET".into()),
        uri: text(input.get("uri")).unwrap_or_else(|| "/".into()),
        protocol: text(input.get("version")).unwrap_or_else(|| "HTTP/1.1".into()),
        headers,
        body,
        remote_addr: text(input.get("dest_addr")).unwrap_or_else(|| "127.0.0.1".into()),
    })
}

fn parse_raw(raw: &[u8]) -> Result<Request, String> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| raw.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)))
        .unwrap_or((raw.len(), 0));
    let head = String::from_utf8_lossy(&raw[..split.0]);
    let body = raw.get(split.0 + split.1..).unwrap_or_default().to_vec();
    let mut lines = head.lines();
    let line = lines.next().ok_or("empty raw request")?;
    let mut parts = line.split(' ');
    let method = parts.next().unwrap_or("GET").to_string();
    let uri = parts.next().unwrap_or("/").to_string();
    let protocol = parts.next().unwrap_or("HTTP/1.1").trim().to_string();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Ok(Request {
        method,
        uri,
        protocol,
        headers,
        body,
        remote_addr: "127.0.0.1".into(),
    })
}

/// Counts of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    /// Passed.
    pub passed: usize,
    /// Failed.
    pub failed: usize,
    /// Skipped.
    pub skipped: usize,
}

/// Counts the verdicts.
pub fn summarize(results: &[CaseResult]) -> Summary {
    let mut s = Summary::default();
    for r in results {
        match r.verdict {
            Verdict::Passed => s.passed += 1,
            Verdict::Failed(_) => s.failed += 1,
            Verdict::Skipped(_) => s.skipped += 1,
        }
    }
    s
}
