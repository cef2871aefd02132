//! The one compile step: config text → [`Config`], reporting every error at once.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http::header::{HeaderName, HeaderValue};
use http::uri::{Scheme, Uri};
use http::{Method, StatusCode};
use ipnet::IpNet;
use rampart_resilience::{Backoff, BreakerSettings, OutlierSettings, RetryBudgetSettings};
use serde::de::DeserializeOwned;
use toml_edit::ImDocument;

use crate::error::{ConfigError, ConfigErrors};
use crate::input::*;
use crate::locate::{line_column, locate, render, Segment};
use crate::types::*;

/// Largest config file accepted, in bytes.
pub const MAX_CONFIG_BYTES: usize = 4 * 1024 * 1024;

/// Reads and compiles a config file. Relative paths in it are relative to its directory.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let fail = |message: String| ConfigErrors {
        file: Some(path.to_path_buf()),
        errors: vec![ConfigError {
            path: String::new(),
            position: None,
            message,
        }],
    };
    let metadata =
        std::fs::metadata(path).map_err(|e| fail(format!("cannot read the file: {e}")))?;
    if metadata.len() > MAX_CONFIG_BYTES as u64 {
        return Err(fail(format!(
            "the file is larger than {MAX_CONFIG_BYTES} bytes"
        )));
    }
    let source =
        std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read the file: {e}")))?;
    let base = path.parent().unwrap_or(Path::new("."));
    compile_str(&source, base).map_err(|mut e| {
        e.file = Some(path.to_path_buf());
        e
    })
}

/// Compiles config text; relative paths resolve against `base_dir`.
pub fn compile_str(source: &str, base_dir: &Path) -> Result<Config, ConfigErrors> {
    let doc = match ImDocument::parse(source) {
        Ok(doc) => doc,
        Err(e) => {
            return Err(ConfigErrors {
                file: None,
                errors: vec![ConfigError {
                    path: String::new(),
                    position: e.span().map(|s| line_column(source, s.start)),
                    message: e.message().trim().to_string(),
                }],
            })
        }
    };
    let mut cx = Compiler {
        errors: Vec::new(),
        path: Vec::new(),
        base_dir: base_dir.to_path_buf(),
        broken: Broken::default(),
    };
    let config = match toml::from_str::<toml::Table>(source) {
        Ok(mut table) => {
            expand_references(&mut table, &mut cx);
            let input = cx.read_input(table);
            cx.compile(input)
        }
        Err(e) => {
            cx.error(e.message().to_string());
            None
        }
    };
    match config {
        Some(config) if cx.errors.is_empty() => Ok(config),
        _ => {
            let mut errors: Vec<ConfigError> = cx
                .errors
                .into_iter()
                .map(|(path, message)| ConfigError {
                    position: locate(&doc, source, &path),
                    path: render(&path),
                    message,
                })
                .collect();
            errors.sort_by_key(|e| e.position);
            Err(ConfigErrors { file: None, errors })
        }
    }
}

/// Environment variables that `${env:NAME}` may read must start with this.
pub const ENV_PREFIX: &str = "RAMPART_";

/// Replaces `${env:RAMPART_NAME}` and `${file:PATH}` in every string value.
fn expand_references(table: &mut toml::Table, cx: &mut Compiler) {
    fn walk(value: &mut toml::Value, cx: &mut Compiler) {
        match value {
            toml::Value::String(s) if s.contains("${") => match expand(s, &cx.base_dir) {
                Ok(expanded) => *s = expanded,
                Err(message) => cx.error(message),
            },
            toml::Value::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    cx.path.push(Segment::Index(i));
                    walk(item, cx);
                    cx.path.pop();
                }
            }
            toml::Value::Table(t) => {
                for (k, v) in t.iter_mut() {
                    cx.path.push(Segment::Key(k.clone()));
                    walk(v, cx);
                    cx.path.pop();
                }
            }
            _ => {}
        }
    }
    for (k, v) in table.iter_mut() {
        cx.path.push(Segment::Key(k.clone()));
        walk(v, cx);
        cx.path.pop();
    }
}

fn expand(text: &str, base_dir: &Path) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| "unterminated `${` reference".to_string())?;
        let reference = &after[..end];
        if let Some(name) = reference.strip_prefix("env:") {
            if !name.starts_with(ENV_PREFIX) {
                return Err(format!(
                    "`${{env:{name}}}`: only variables starting with {ENV_PREFIX} may be read"
                ));
            }
            let value = std::env::var(name)
                .map_err(|_| format!("environment variable {name} is not set"))?;
            out.push_str(&value);
        } else if let Some(file) = reference.strip_prefix("file:") {
            let path = base_dir.join(file);
            let value = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            out.push_str(value.trim_end_matches(['\n', '\r']));
        } else {
            return Err(format!(
                "unknown reference `${{{reference}}}`: use ${{env:{ENV_PREFIX}NAME}} or ${{file:PATH}}"
            ));
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

struct Compiler {
    errors: Vec<(Vec<Segment>, String)>,
    path: Vec<Segment>,
    base_dir: PathBuf,
    /// What the file declares but could not be read or compiled: its own errors are
    /// reported, and nothing that refers to it adds a follow-on error.
    broken: Broken,
}

/// Entries with errors of their own.
#[derive(Default)]
struct Broken {
    /// Names of upstream pools and listeners.
    upstreams: HashSet<String>,
    listeners: HashSet<String>,
    /// `[[listeners]]` and `[[routes]]` entries that could not be read.
    listener_entries: usize,
    route_entries: usize,
}

const TOP_LEVEL_KEYS: &[&str] = &[
    "data_dir",
    "admin",
    "database",
    "redis",
    "log",
    "server",
    "tracing",
    "honeypots",
    "audit",
    "listeners",
    "upstreams",
    "routes",
];

impl Compiler {
    fn error(&mut self, message: impl Into<String>) {
        self.errors.push((self.path.clone(), message.into()));
    }

    fn error_at(&mut self, key: &str, message: impl Into<String>) {
        let mut path = self.path.clone();
        path.push(Segment::Key(key.to_string()));
        self.errors.push((path, message.into()));
    }

    fn within<T>(&mut self, segment: Segment, f: impl FnOnce(&mut Self) -> T) -> T {
        self.path.push(segment);
        let out = f(self);
        self.path.pop();
        out
    }

    fn key<T>(&mut self, key: &str, f: impl FnOnce(&mut Self) -> T) -> T {
        self.within(Segment::Key(key.to_string()), f)
    }

    /// Deserializes one value, recording the error (with its inner path) on failure.
    fn deserialize<T: DeserializeOwned>(&mut self, value: toml::Value) -> Option<T> {
        match serde_path_to_error::deserialize::<_, T>(value) {
            Ok(v) => Some(v),
            Err(e) => {
                let mut path = self.path.clone();
                for segment in e.path().iter() {
                    match segment {
                        serde_path_to_error::Segment::Seq { index } => {
                            path.push(Segment::Index(*index))
                        }
                        serde_path_to_error::Segment::Map { key } => {
                            path.push(Segment::Key(key.clone()))
                        }
                        _ => {}
                    }
                }
                self.errors
                    .push((path, e.into_inner().to_string().trim().to_string()));
                None
            }
        }
    }

    /// Reads the input section by section, so that one bad route does not hide another.
    fn read_input(&mut self, table: toml::Table) -> ConfigInput {
        let mut input = ConfigInput::default();
        for (key, value) in table {
            self.path.push(Segment::Key(key.clone()));
            match key.as_str() {
                "data_dir" => input.data_dir = self.deserialize(value),
                "admin" => input.admin = self.deserialize(value),
                "database" => input.database = self.deserialize(value),
                "redis" => input.redis = self.deserialize(value),
                "log" => input.log = self.deserialize(value),
                "server" => input.server = self.deserialize(value),
                "tracing" => input.tracing = self.deserialize(value),
                "honeypots" => input.honeypots = self.deserialize(value),
                "audit" => input.audit = self.deserialize(value),
                "listeners" => {
                    // A listener that cannot be read is still known by its name.
                    if let toml::Value::Array(items) = &value {
                        for (i, item) in items.iter().enumerate() {
                            let name = item.get("name").and_then(toml::Value::as_str);
                            let name = name.map_or_else(|| format!("listener-{i}"), str::to_string);
                            self.broken.listeners.insert(name);
                        }
                    }
                    let entries = array_len(&value);
                    input.listeners = self.each_in_array(value);
                    self.broken.listener_entries = entries - input.listeners.len();
                    for listener in &input.listeners {
                        let name = listener.name.clone();
                        self.broken
                            .listeners
                            .remove(name.as_deref().unwrap_or_default());
                    }
                }
                "routes" => {
                    let entries = array_len(&value);
                    input.routes = self.each_in_array(value);
                    self.broken.route_entries = entries - input.routes.len();
                }
                "upstreams" => match value {
                    toml::Value::Table(t) => {
                        for (name, v) in t {
                            let parsed =
                                self.within(Segment::Key(name.clone()), |cx| cx.deserialize(v));
                            match parsed {
                                Some(parsed) => {
                                    input.upstreams.insert(name, parsed);
                                }
                                None => {
                                    self.broken.upstreams.insert(name);
                                }
                            }
                        }
                    }
                    _ => self.error("expected a table of upstream pools"),
                },
                other => self.error(format!(
                    "unknown key `{other}`, expected one of {}",
                    TOP_LEVEL_KEYS.join(", ")
                )),
            }
            self.path.pop();
        }
        input
    }

    fn each_in_array<T: DeserializeOwned>(&mut self, value: toml::Value) -> Vec<T> {
        match value {
            toml::Value::Array(items) => items
                .into_iter()
                .enumerate()
                .filter_map(|(i, v)| self.within(Segment::Index(i), |cx| cx.deserialize(v)))
                .collect(),
            _ => {
                self.error("expected an array of tables");
                Vec::new()
            }
        }
    }

    fn duration(&mut self, key: &str, text: Option<&str>, default: Duration) -> Duration {
        let Some(text) = text else { return default };
        match humantime::parse_duration(text) {
            Ok(d) => d,
            Err(e) => {
                self.error_at(
                    key,
                    format!(
                        "invalid duration {text:?} ({e}); write e.g. \"250ms\", \"5s\", \"2m\""
                    ),
                );
                default
            }
        }
    }

    fn file(&self, path: &str) -> PathBuf {
        self.base_dir.join(path)
    }

    fn compile(&mut self, input: ConfigInput) -> Option<Config> {
        // An explicit data_dir is relative to the config file; the default is ./data in
        // the working directory, where the CLI also looks for the admin token.
        let data_dir = input
            .data_dir
            .as_deref()
            .map_or_else(|| PathBuf::from("data"), |d| self.file(d));
        let admin_listen = self.key("admin", |cx| {
            let text = input
                .admin
                .as_ref()
                .and_then(|a| a.listen.as_deref())
                .unwrap_or("127.0.0.1:9090");
            cx.socket_addr("listen", text)
        });
        let database_url = input.database.as_ref().map(|d| d.url.clone());
        if let Some(url) = &database_url {
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                self.key("database", |cx| {
                    cx.error_at("url", "must be a postgres:// URL")
                });
            }
        }
        let redis_url = input.redis.as_ref().map(|r| r.url.clone());
        if let Some(url) = &redis_url {
            if !url.starts_with("redis://") {
                self.key("redis", |cx| cx.error_at("url", "must be a redis:// URL"));
            }
        }
        let redis_key_prefix = input
            .redis
            .as_ref()
            .and_then(|r| r.key_prefix.clone())
            .unwrap_or_else(|| "rampart:".to_string());
        let access_log = match input.log.as_ref().and_then(|l| l.access_log.as_deref()) {
            None | Some("stdout") => AccessLogTarget::Stdout,
            Some("off") => AccessLogTarget::Off,
            Some(path) => AccessLogTarget::File(self.file(path)),
        };
        let server = self.key("server", |cx| cx.server(input.server.as_ref()));
        let tracing = input
            .tracing
            .as_ref()
            .map(|t| self.key("tracing", |cx| cx.tracing(t)));
        let listeners = self.key("listeners", |cx| cx.listeners(&input.listeners));
        let honeypots = input.honeypots.as_ref().map(|h| {
            self.key("honeypots", |cx| {
                let paths = cx.key("paths", |cx| {
                    h.paths
                        .iter()
                        .enumerate()
                        .map(|(i, p)| {
                            cx.within(Segment::Index(i), |cx| {
                                if !p.starts_with('/') || p.contains('?') {
                                    cx.error(format!("{p:?} is not an absolute path"));
                                }
                            });
                            let trimmed = p.trim_end_matches('/');
                            PathMatch::Prefix(if trimmed.is_empty() {
                                "/".into()
                            } else {
                                trimmed.into()
                            })
                        })
                        .collect()
                });
                Honeypots {
                    paths,
                    ban_for: cx.duration(
                        "ban_for",
                        h.ban_for.as_deref(),
                        Duration::from_secs(3600),
                    ),
                }
            })
        });
        let audit = self.key("audit", |cx| cx.audit(input.audit.as_ref()));
        let upstreams = self.key("upstreams", |cx| {
            input
                .upstreams
                .iter()
                .filter_map(|(name, u)| {
                    let compiled = cx.key(name, |cx| cx.upstream(name, u));
                    if compiled.is_none() {
                        cx.broken.upstreams.insert(name.clone());
                    }
                    compiled.map(|u| (name.clone(), Arc::new(u)))
                })
                .collect::<BTreeMap<_, _>>()
        });
        let listener_names: HashSet<&str> = listeners.iter().map(|l| l.name.as_str()).collect();
        let mut routes = self.key("routes", |cx| {
            let mut seen = HashSet::new();
            input
                .routes
                .iter()
                .enumerate()
                .filter_map(|(i, r)| {
                    cx.within(Segment::Index(i), |cx| {
                        let route = cx.route(i, r, &upstreams, &listener_names)?;
                        if !seen.insert(route.name.clone()) {
                            cx.error_at("name", format!("duplicate route name {:?}", route.name));
                        }
                        Some(route)
                    })
                })
                .collect::<Vec<_>>()
        });
        if input.routes.is_empty() && self.broken.route_entries == 0 {
            self.error("no routes: add at least one [[routes]] entry");
        }
        // Most specific first; the sort is stable, so config order breaks ties.
        routes.sort_by_key(|r| std::cmp::Reverse(specificity(&r.matcher)));
        Some(Config {
            data_dir,
            admin_listen: admin_listen?,
            database_url,
            redis_url,
            redis_key_prefix,
            access_log,
            server,
            tracing,
            honeypots,
            audit,
            listeners,
            upstreams,
            routes,
        })
    }

    fn audit(&mut self, a: Option<&AuditInput>) -> AuditSettings {
        let a = a.cloned().unwrap_or_default();
        let syslog = a.syslog.as_deref().and_then(|text| {
            let parsed = text
                .strip_prefix("udp://")
                .map(|rest| (false, rest))
                .or_else(|| text.strip_prefix("tcp://").map(|rest| (true, rest)))
                .filter(|(_, rest)| {
                    rest.rsplit_once(':')
                        .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
                });
            match parsed {
                Some((tcp, address)) => Some(SyslogTarget {
                    tcp,
                    address: address.to_string(),
                }),
                None => {
                    self.error_at(
                        "syslog",
                        format!("{text:?}: expected udp://host:port or tcp://host:port"),
                    );
                    None
                }
            }
        });
        let interval = self.duration(
            "checkpoint_interval",
            a.checkpoint_interval.as_deref(),
            Duration::from_secs(10),
        );
        if interval < Duration::from_millis(100) {
            self.error_at("checkpoint_interval", "must be at least 100ms");
        }
        AuditSettings {
            checkpoint_interval: interval.max(Duration::from_millis(100)),
            sensitive_fields: a
                .sensitive_fields
                .unwrap_or_else(|| ["email", "phone", "address"].map(String::from).to_vec()),
            syslog,
        }
    }

    fn socket_addr(&mut self, key: &str, text: &str) -> Option<SocketAddr> {
        match text.parse() {
            Ok(a) => Some(a),
            Err(_) => {
                self.error_at(
                    key,
                    format!("{text:?} is not an address like 127.0.0.1:8080 or [::1]:8080"),
                );
                None
            }
        }
    }

    fn tracing(&mut self, t: &TracingInput) -> TracingSettings {
        let endpoint_ok = t.otlp_endpoint.parse::<Uri>().ok().is_some_and(|u| {
            matches!(u.scheme_str(), Some("http" | "https")) && u.authority().is_some()
        });
        if !endpoint_ok {
            self.error_at(
                "otlp_endpoint",
                format!(
                    "{:?} is not an http(s) URL such as http://127.0.0.1:4318/v1/traces",
                    t.otlp_endpoint
                ),
            );
        }
        TracingSettings {
            otlp_endpoint: t.otlp_endpoint.clone(),
            service_name: t
                .service_name
                .clone()
                .unwrap_or_else(|| "rampart".to_string()),
            export_timeout: self.duration(
                "export_timeout",
                t.export_timeout.as_deref(),
                Duration::from_secs(10),
            ),
        }
    }

    fn server(&mut self, input: Option<&ServerInput>) -> ServerSettings {
        let max_header_bytes = input.and_then(|s| s.max_header_bytes).unwrap_or(65536);
        if !(8192..=1 << 20).contains(&max_header_bytes) {
            self.error_at("max_header_bytes", "must be between 8192 and 1048576");
        }
        let idle_timeout = self.duration(
            "idle_timeout",
            input.and_then(|s| s.idle_timeout.as_deref()),
            Duration::from_secs(60),
        );
        let shutdown_grace = self.duration(
            "shutdown_grace",
            input.and_then(|s| s.shutdown_grace.as_deref()),
            Duration::from_secs(30),
        );
        let trusted_proxies = self.key("trusted_proxies", |cx| {
            cx.networks(
                input
                    .map(|s| s.trusted_proxies.as_slice())
                    .unwrap_or_default(),
            )
        });
        ServerSettings {
            max_header_bytes: max_header_bytes.clamp(8192, 1 << 20),
            idle_timeout,
            shutdown_grace,
            trusted_proxies,
        }
    }

    fn listeners(&mut self, inputs: &[ListenerInput]) -> Vec<Listener> {
        if inputs.is_empty() && self.broken.listener_entries == 0 {
            self.error("no listeners: add at least one [[listeners]] entry");
        }
        let mut names = HashSet::new();
        let mut addresses = HashSet::new();
        inputs
            .iter()
            .enumerate()
            .filter_map(|(i, l)| {
                self.within(Segment::Index(i), |cx| {
                    let name = l.name.clone().unwrap_or_else(|| format!("listener-{i}"));
                    if !names.insert(name.clone()) {
                        cx.error_at("name", format!("duplicate listener name {name:?}"));
                    }
                    let address = cx.socket_addr("address", &l.address)?;
                    if !addresses.insert(address) {
                        cx.error_at("address", format!("{address} is used by another listener"));
                    }
                    let tls = l.tls.as_ref().map(|t| cx.key("tls", |cx| cx.tls(t)));
                    let requests = RequestNormalization {
                        merge_slashes: l.merge_slashes.unwrap_or(true),
                        encoded_slashes: l.encoded_slashes.unwrap_or_default(),
                        underscores_in_headers: l.underscores_in_headers.unwrap_or_default(),
                        path_parameters: l.path_parameters.unwrap_or_default(),
                    };
                    Some(Listener {
                        name,
                        address,
                        tls,
                        requests,
                    })
                })
            })
            .collect()
    }

    fn tls(&mut self, input: &TlsInput) -> Tls {
        if input.certificates.is_empty() {
            self.error_at("certificates", "at least one certificate is required");
        }
        let certificates = input
            .certificates
            .iter()
            .map(|c| Certificate {
                cert: self.file(&c.cert),
                key: self.file(&c.key),
                server_names: c
                    .server_names
                    .iter()
                    .map(|n| n.to_ascii_lowercase())
                    .collect(),
            })
            .collect();
        Tls { certificates }
    }

    fn upstream(&mut self, name: &str, u: &UpstreamInput) -> Option<Upstream> {
        if u.targets.is_empty() {
            self.error_at("targets", "at least one target is required");
        }
        let targets: Vec<Target> = self.key("targets", |cx| {
            u.targets
                .iter()
                .enumerate()
                .filter_map(|(i, t)| cx.within(Segment::Index(i), |cx| cx.target(t)))
                .collect()
        });
        let protocol = match u.protocol {
            None | Some(ProtocolInput::Http1) => Protocol::Http1,
            Some(ProtocolInput::Http2) => Protocol::Http2,
            Some(ProtocolInput::H2c) => Protocol::H2c,
        };
        let balance = match u.balance {
            None | Some(BalanceInput::RoundRobin) => Balance::RoundRobin,
            Some(BalanceInput::LeastConnections) => Balance::LeastConnections,
            Some(BalanceInput::ConsistentHash) => {
                Balance::ConsistentHash(self.hash_key(u.hash_on.as_deref().unwrap_or("client_ip")))
            }
        };
        if u.hash_on.is_some() && u.balance != Some(BalanceInput::ConsistentHash) {
            self.error_at("hash_on", "only used with balance = \"consistent_hash\"");
        }
        let host_header = match u.host_header.as_deref() {
            None | Some("preserve") => HostHeader::Preserve,
            Some("target") => HostHeader::Target,
            Some(literal) => match HeaderValue::from_str(literal) {
                Ok(v) if literal.parse::<http::uri::Authority>().is_ok() => HostHeader::Literal(v),
                _ => {
                    self.error_at("host_header", format!("{literal:?} is not a host name"));
                    HostHeader::Preserve
                }
            },
        };
        let pool = u.pool.as_ref();
        let pool_idle_timeout = self.key("pool", |cx| {
            cx.duration(
                "idle_timeout",
                pool.and_then(|p| p.idle_timeout.as_deref()),
                Duration::from_secs(90),
            )
        });
        let connect_timeout = self.duration(
            "connect_timeout",
            u.connect_timeout.as_deref(),
            Duration::from_secs(2),
        );
        let health_check = u
            .health_check
            .as_ref()
            .map(|h| self.key("health_check", |cx| cx.health_check(h)));
        let outlier = self.key("outlier_detection", |cx| {
            cx.outlier(u.outlier_detection.as_ref())
        });
        let breaker = self.key("circuit_breaker", |cx| {
            cx.breaker(u.circuit_breaker.as_ref())
        });
        let retry_budget = self.key("retry_budget", |cx| {
            let ratio = u.retry_budget.as_ref().and_then(|r| r.ratio).unwrap_or(0.2);
            if !(0.0..=1.0).contains(&ratio) {
                cx.error_at("ratio", "must be between 0 and 1");
            }
            RetryBudgetSettings {
                ratio,
                min_concurrent: u
                    .retry_budget
                    .as_ref()
                    .and_then(|r| r.min_concurrent)
                    .unwrap_or(3),
            }
        });
        let max_concurrent_requests = u.max_concurrent_requests.unwrap_or(1024);
        if max_concurrent_requests == 0 {
            self.error_at("max_concurrent_requests", "must be at least 1");
        }
        if targets.iter().any(|t| t.endpoint == Endpoint::Echo) && protocol != Protocol::Http1 {
            self.error_at(
                "protocol",
                "builtin:echo targets only take protocol = \"http1\"",
            );
        }
        let tls = match &u.tls {
            Some(t) => self.key("tls", |cx| cx.upstream_tls(t, &targets)),
            None => UpstreamTls::default(),
        };
        Some(Upstream {
            name: name.to_string(),
            targets,
            balance,
            protocol,
            host_header,
            pool_max_idle_per_target: pool.and_then(|p| p.max_idle_per_target).unwrap_or(128),
            pool_idle_timeout,
            connect_timeout,
            health_check,
            outlier,
            breaker,
            max_concurrent_requests,
            retry_budget,
            tls,
        })
    }

    /// An upstream's TLS settings, with its files read and checked: the CA file must
    /// hold certificates, the client key must load and belong to the client certificate.
    fn upstream_tls(&mut self, t: &UpstreamTlsInput, targets: &[Target]) -> UpstreamTls {
        let https = targets.iter().any(|target| {
            matches!(&target.endpoint, Endpoint::Http { scheme, .. } if *scheme == Scheme::HTTPS)
        });
        if !https && !targets.is_empty() {
            self.error("only used with https targets, and none of this pool's targets is https");
        }
        let roots = t.ca_file.as_deref().and_then(|file| {
            self.key("ca_file", |cx| {
                let certs = cx.pem_certificates(file)?;
                let path = cx.file(file);
                let mut store = rustls::RootCertStore::empty();
                for (i, cert) in certs.iter().enumerate() {
                    if let Err(e) = store.add(cert.clone()) {
                        cx.error(format!(
                            "{}: certificate {} cannot be a trusted root ({e})",
                            path.display(),
                            i + 1
                        ));
                        return None;
                    }
                }
                Some(certs)
            })
        });
        let server_name = t.server_name.as_deref().and_then(|name| {
            let bare = name
                .strip_prefix('[')
                .and_then(|n| n.strip_suffix(']'))
                .unwrap_or(name);
            match rustls_pki_types::ServerName::try_from(bare.to_ascii_lowercase()) {
                Ok(name) => Some(name),
                Err(e) => {
                    self.error_at(
                        "server_name",
                        format!("{name:?} is not a DNS name or an IP address ({e})"),
                    );
                    None
                }
            }
        });
        let client_auth = match (t.client_cert.as_deref(), t.client_key.as_deref()) {
            (None, None) => None,
            (Some(_), None) => {
                self.error_at(
                    "client_cert",
                    "client_cert needs client_key, the file with its private key",
                );
                None
            }
            (None, Some(_)) => {
                self.error_at(
                    "client_key",
                    "client_key needs client_cert, the file with the certificate it belongs to",
                );
                None
            }
            (Some(cert), Some(key)) => {
                let chain = self.key("client_cert", |cx| cx.pem_certificates(cert));
                let key = self.key("client_key", |cx| cx.pem_private_key(key));
                match (chain, key) {
                    (Some(chain), Some(key)) => self.key("client_key", |cx| {
                        let provider = rustls::crypto::ring::default_provider();
                        match rustls::sign::CertifiedKey::from_der(
                            chain.clone(),
                            key.clone_key(),
                            &provider,
                        ) {
                            Ok(_) => Some(ClientAuth {
                                chain,
                                key: Arc::new(key),
                            }),
                            Err(e) => {
                                cx.error(format!(
                                    "{}: not a usable key for client_cert ({e})",
                                    cx.file(t.client_key.as_deref().unwrap_or_default())
                                        .display()
                                ));
                                None
                            }
                        }
                    }),
                    _ => None,
                }
            }
        };
        UpstreamTls {
            roots,
            server_name,
            client_auth,
        }
    }

    /// Reads the certificates of a PEM file (relative to the config file); an error at
    /// the current key names the file when it cannot be read or holds none.
    fn pem_certificates(
        &mut self,
        file: &str,
    ) -> Option<Vec<rustls_pki_types::CertificateDer<'static>>> {
        use rustls_pki_types::pem::PemObject;
        let path = self.file(file);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) => {
                self.error(format!("cannot read {}: {e}", path.display()));
                return None;
            }
        };
        let certs: Result<Vec<_>, _> =
            rustls_pki_types::CertificateDer::pem_slice_iter(&bytes).collect();
        match certs {
            Ok(certs) if !certs.is_empty() => Some(certs),
            Ok(_) => {
                self.error(format!("{}: no PEM certificate found", path.display()));
                None
            }
            Err(e) => {
                self.error(format!("{}: invalid PEM ({e})", path.display()));
                None
            }
        }
    }

    /// Reads the private key of a PEM file (relative to the config file); an error at
    /// the current key names the file when it cannot be read or holds none.
    fn pem_private_key(&mut self, file: &str) -> Option<rustls_pki_types::PrivateKeyDer<'static>> {
        use rustls_pki_types::pem::PemObject;
        let path = self.file(file);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) => {
                self.error(format!("cannot read {}: {e}", path.display()));
                return None;
            }
        };
        match rustls_pki_types::PrivateKeyDer::from_pem_slice(&bytes) {
            Ok(key) => Some(key),
            Err(e) => {
                self.error(format!(
                    "{}: no usable PEM private key found ({e})",
                    path.display()
                ));
                None
            }
        }
    }

    fn target(&mut self, t: &TargetInput) -> Option<Target> {
        let (url, weight) = match t {
            TargetInput::Url(url) => (url.as_str(), 1),
            TargetInput::Weighted(w) => (w.url.as_str(), w.weight.unwrap_or(1)),
        };
        if !(1..=1000).contains(&weight) {
            self.error_at("weight", "must be between 1 and 1000");
        }
        if url == "builtin:echo" {
            return Some(Target {
                endpoint: Endpoint::Echo,
                weight,
            });
        }
        let uri: Uri = match url.parse() {
            Ok(u) => u,
            Err(e) => {
                self.error(format!("{url:?} is not a URL ({e})"));
                return None;
            }
        };
        let scheme = match uri.scheme_str() {
            Some("http") => Scheme::HTTP,
            Some("https") => Scheme::HTTPS,
            _ => {
                self.error(format!(
                    "{url:?}: the scheme must be http or https (or use builtin:echo)"
                ));
                return None;
            }
        };
        let Some(authority) = uri.authority().cloned() else {
            self.error(format!("{url:?} has no host"));
            return None;
        };
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            self.error(format!("{url:?}: a target is a scheme, host and port only; use a route's rewrite for paths"));
        }
        Some(Target {
            endpoint: Endpoint::Http { scheme, authority },
            weight,
        })
    }

    fn hash_key(&mut self, text: &str) -> HashKey {
        if text == "client_ip" {
            return HashKey::ClientIp;
        }
        if let Some(name) = text.strip_prefix("header:") {
            if let Ok(name) = HeaderName::from_bytes(name.as_bytes()) {
                return HashKey::Header(name);
            }
        }
        if let Some(name) = text.strip_prefix("cookie:") {
            if !name.is_empty() {
                return HashKey::Cookie(name.to_string());
            }
        }
        self.error_at(
            "hash_on",
            format!("{text:?}: expected client_ip, header:<name> or cookie:<name>"),
        );
        HashKey::ClientIp
    }

    fn health_check(&mut self, h: &HealthCheckInput) -> HealthCheck {
        if !h.path.starts_with('/') || h.path.parse::<http::uri::PathAndQuery>().is_err() {
            self.error_at("path", format!("{:?} is not an absolute path", h.path));
        }
        let interval = self.duration("interval", h.interval.as_deref(), Duration::from_secs(5));
        let timeout = self.duration("timeout", h.timeout.as_deref(), Duration::from_secs(1));
        if interval < Duration::from_millis(10) {
            self.error_at("interval", "must be at least 10ms");
        }
        HealthCheck {
            path: h.path.clone(),
            interval: interval.max(Duration::from_millis(10)),
            timeout,
            healthy_threshold: h.healthy_threshold.unwrap_or(2).max(1),
            unhealthy_threshold: h.unhealthy_threshold.unwrap_or(3).max(1),
        }
    }

    fn outlier(&mut self, o: Option<&OutlierInput>) -> OutlierSettings {
        let d = OutlierSettings::default();
        let Some(o) = o else { return d };
        let percent = o.max_ejection_percent.unwrap_or(d.max_ejection_percent);
        if percent > 100 {
            self.error_at("max_ejection_percent", "must be between 0 and 100");
        }
        OutlierSettings {
            consecutive_5xx: o.consecutive_5xx.unwrap_or(d.consecutive_5xx),
            consecutive_connect_failures: o
                .consecutive_connect_failures
                .unwrap_or(d.consecutive_connect_failures),
            base_ejection: self.duration(
                "base_ejection",
                o.base_ejection.as_deref(),
                d.base_ejection,
            ),
            max_ejection: self.duration("max_ejection", o.max_ejection.as_deref(), d.max_ejection),
            max_ejection_percent: percent.min(100),
        }
    }

    fn breaker(&mut self, b: Option<&BreakerInput>) -> Option<BreakerSettings> {
        let d = BreakerSettings::default();
        let Some(b) = b else { return Some(d) };
        if b.disabled == Some(true) {
            return None;
        }
        let failure_ratio = b.failure_ratio.unwrap_or(d.failure_ratio);
        if !(0.0..=1.0).contains(&failure_ratio) {
            self.error_at("failure_ratio", "must be between 0 and 1");
        }
        Some(BreakerSettings {
            consecutive_failures: b.consecutive_failures.unwrap_or(d.consecutive_failures),
            failure_ratio,
            window: self.duration("window", b.window.as_deref(), d.window),
            min_requests: b.min_requests.unwrap_or(d.min_requests),
            open_for: self.duration("open_for", b.open_for.as_deref(), d.open_for),
            half_open_probes: b.half_open_probes.unwrap_or(d.half_open_probes).max(1),
        })
    }

    fn route(
        &mut self,
        index: usize,
        r: &RouteInput,
        upstreams: &BTreeMap<String, Arc<Upstream>>,
        listener_names: &HashSet<&str>,
    ) -> Option<Route> {
        let name: Arc<str> = r
            .name
            .clone()
            .unwrap_or_else(|| format!("route-{index}"))
            .into();
        if !upstreams.contains_key(&r.upstream) && !self.broken.upstreams.contains(&r.upstream) {
            self.error_at("upstream", format!("unknown upstream {:?}", r.upstream));
        }
        if let Some(listeners) = &r.listeners {
            self.key("listeners", |cx| {
                for (i, l) in listeners.iter().enumerate() {
                    if !listener_names.contains(l.as_str()) && !cx.broken.listeners.contains(l) {
                        cx.within(Segment::Index(i), |cx| {
                            cx.error(format!("unknown listener {l:?}"))
                        });
                    }
                }
            });
        }
        let matcher = self.key("match", |cx| cx.matcher(r.matcher.as_ref()));
        let strip_prefix = r.rewrite.as_ref().is_some_and(|w| w.strip_prefix);
        if strip_prefix && !matches!(matcher.path, PathMatch::Prefix(_)) {
            self.key("rewrite", |cx| {
                cx.error_at("strip_prefix", "needs match.path_prefix")
            });
        }
        let add_prefix = r.rewrite.as_ref().and_then(|w| w.add_prefix.clone());
        if let Some(prefix) = &add_prefix {
            if !prefix.starts_with('/')
                || prefix.parse::<http::uri::PathAndQuery>().is_err()
                || prefix.contains('?')
            {
                self.key("rewrite", |cx| {
                    cx.error_at("add_prefix", format!("{prefix:?} is not a path"))
                });
            }
        }
        let request_headers = self.key("request_headers", |cx| {
            cx.header_ops(r.request_headers.as_ref())
        });
        let response_headers = self.key("response_headers", |cx| {
            cx.header_ops(r.response_headers.as_ref())
        });
        let (per_try_timeout, total_timeout, upstream_body_idle, client_write_timeout) =
            self.key("timeouts", |cx| {
                let t = r.timeouts.as_ref();
                let per_try = cx.duration(
                    "per_try",
                    t.and_then(|t| t.per_try.as_deref()),
                    Duration::from_secs(15),
                );
                let total = cx.duration(
                    "total",
                    t.and_then(|t| t.total.as_deref()),
                    Duration::from_secs(30),
                );
                if per_try > total {
                    cx.error_at("per_try", "is longer than `total`");
                }
                let body_idle = cx.duration(
                    "upstream_body_idle",
                    t.and_then(|t| t.upstream_body_idle.as_deref()),
                    DEFAULT_UPSTREAM_BODY_IDLE,
                );
                let client_write = cx.duration(
                    "client_write",
                    t.and_then(|t| t.client_write.as_deref()),
                    DEFAULT_CLIENT_WRITE_TIMEOUT,
                );
                for (key, value) in [
                    ("upstream_body_idle", body_idle),
                    ("client_write", client_write),
                ] {
                    if value.is_zero() {
                        cx.error_at(key, "must be longer than 0");
                    }
                }
                (per_try, total, body_idle, client_write)
            });
        let retry = self.key("retry", |cx| cx.retry(r.retry.as_ref()));
        let fallback = r
            .fallback
            .as_ref()
            .and_then(|f| self.key("fallback", |cx| cx.fallback(f, &r.upstream, upstreams)));
        if r.max_concurrent_requests == Some(0) {
            self.error_at("max_concurrent_requests", "must be at least 1");
        }
        let fault = r
            .fault
            .as_ref()
            .and_then(|f| self.key("fault", |cx| cx.fault(f)));
        let forward_raw_path = r.forward_raw_path.unwrap_or(false);
        if forward_raw_path && strip_prefix {
            self.error_at(
                "forward_raw_path",
                "cannot be combined with rewrite.strip_prefix (the prefix is matched on the canonical path)",
            );
        }
        let upgrades = self.key("upgrades", |cx| cx.upgrades(r.upgrades.as_deref()));
        Some(Route {
            name,
            listeners: r.listeners.clone(),
            matcher,
            upstream: r.upstream.clone(),
            strip_prefix,
            add_prefix,
            request_headers,
            response_headers,
            per_try_timeout,
            total_timeout,
            upstream_body_idle,
            client_write_timeout,
            retry,
            fallback,
            max_concurrent_requests: r.max_concurrent_requests,
            fault,
            retry_body_limit: r.retry_body_limit.unwrap_or(65536).min(16 << 20),
            forward_raw_path,
            upgrades,
            forward_trailers: r.forward_trailers.unwrap_or(false),
            auth: r
                .auth
                .as_ref()
                .map(|a| self.key("auth", |cx| cx.auth(a, &r.upstream))),
            limits: r
                .limits
                .as_ref()
                .map(|l| self.key("limits", |cx| cx.request_limits(l))),
            security_headers: r
                .security_headers
                .as_ref()
                .map(|h| self.key("security_headers", |cx| cx.security_headers(h))),
            cors: r.cors.as_ref().map(|c| self.key("cors", |cx| cx.cors(c))),
            ip: r.ip.as_ref().map(|i| self.key("ip", |cx| cx.ip_rules(i))),
            rate_limit_headers: r.rate_limit_headers.unwrap_or(false),
            quota: r
                .quota
                .as_ref()
                .map(|q| self.key("quota", |cx| cx.quota(q))),
            idempotency: r
                .idempotency
                .as_ref()
                .map(|i| self.key("idempotency", |cx| cx.idempotency(i))),
            waf: r.waf.as_ref().and_then(|w| self.key("waf", |cx| cx.waf(w))),
            rate_limits: self.key("rate_limits", |cx| {
                r.rate_limits
                    .iter()
                    .enumerate()
                    .map(|(i, l)| cx.within(Segment::Index(i), |cx| cx.rate_limit(l)))
                    .collect()
            }),
        })
    }

    /// A route's upgrade protocols: tokens, lower-cased, never `h2c`.
    fn upgrades(&mut self, names: Option<&[String]>) -> Vec<String> {
        let Some(names) = names else {
            return vec!["websocket".to_string()];
        };
        let mut upgrades = Vec::with_capacity(names.len());
        for (i, name) in names.iter().enumerate() {
            let lower = name.to_ascii_lowercase();
            let is_token = !lower.is_empty()
                && lower
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            if lower == "h2c" {
                self.within(Segment::Index(i), |cx| {
                    cx.error("h2c is never forwarded: Rampart speaks HTTP/2 to clients itself")
                });
            } else if !is_token {
                self.within(Segment::Index(i), |cx| {
                    cx.error(format!("{name:?} is not a protocol name"))
                });
            } else {
                upgrades.push(lower);
            }
        }
        upgrades
    }

    fn jwt(&mut self, j: &JwtInput) -> JwtPolicy {
        let keys = match (&j.jwks_url, &j.public_key_pem) {
            (Some(url), None) => {
                let ok = url.parse::<Uri>().ok().is_some_and(|u| {
                    matches!(u.scheme_str(), Some("http" | "https")) && u.authority().is_some()
                });
                if !ok {
                    self.error_at("jwks_url", format!("{url:?} is not an http(s) URL"));
                }
                JwtKeys::Jwks(url.clone())
            }
            (None, Some(path)) => JwtKeys::Pem(self.file(path)),
            _ => {
                self.error("give exactly one of jwks_url and public_key_pem");
                JwtKeys::Jwks(String::new())
            }
        };
        let algorithms = j
            .algorithms
            .clone()
            .unwrap_or_else(|| vec!["RS256".into(), "ES256".into(), "EdDSA".into()]);
        for (i, alg) in algorithms.iter().enumerate() {
            if !matches!(
                alg.as_str(),
                "RS256" | "RS384" | "RS512" | "PS256" | "ES256" | "ES384" | "EdDSA"
            ) {
                self.key("algorithms", |cx| {
                    cx.within(Segment::Index(i), |cx| {
                        cx.error(format!(
                            "{alg:?}: use RS256, RS384, RS512, PS256, ES256, ES384 or EdDSA"
                        ))
                    })
                });
            }
        }
        JwtPolicy {
            keys,
            issuer: j.issuer.clone(),
            audience: j.audience.clone(),
            algorithms,
            leeway: self.duration("leeway", j.leeway.as_deref(), Duration::from_secs(30)),
            required_claims: j.required_claims.clone(),
        }
    }

    fn request_limits(&mut self, l: &RequestLimitsInput) -> RequestLimits {
        let methods = self.key("methods", |cx| {
            cx.methods(l.methods.as_deref().unwrap_or_default())
        });
        RequestLimits {
            max_body_bytes: l.max_body_bytes,
            max_headers: l.max_headers,
            max_header_bytes: l.max_header_bytes,
            max_url_bytes: l.max_url_bytes,
            methods,
        }
    }

    fn methods(&mut self, names: &[String]) -> Vec<Method> {
        names
            .iter()
            .enumerate()
            .filter_map(|(i, name)| {
                match Method::from_bytes(name.to_ascii_uppercase().as_bytes()) {
                    Ok(m) => Some(m),
                    Err(_) => {
                        self.within(Segment::Index(i), |cx| {
                            cx.error(format!("{name:?} is not a method"))
                        });
                        None
                    }
                }
            })
            .collect()
    }

    fn header_name(&mut self, key: &str, text: Option<&str>, default: &'static str) -> HeaderName {
        let text = text.unwrap_or(default);
        HeaderName::from_bytes(text.as_bytes()).unwrap_or_else(|_| {
            self.error_at(key, format!("{text:?} is not a header name"));
            HeaderName::from_static(default)
        })
    }

    fn ip_rules(&mut self, i: &IpRulesInput) -> IpRules {
        let files = |cx: &mut Self, key: &str, paths: &[String]| -> Vec<PathBuf> {
            cx.key(key, |cx| {
                paths
                    .iter()
                    .enumerate()
                    .map(|(n, p)| {
                        let path = cx.file(p);
                        let checked = std::fs::read_to_string(&path)
                            .map_err(|e| format!("cannot read {}: {e}", path.display()))
                            .and_then(|text| {
                                parse_ip_list(&text).map_err(|e| format!("{}: {e}", path.display()))
                            });
                        if let Err(e) = checked {
                            cx.within(Segment::Index(n), |cx| cx.error(e));
                        }
                        path
                    })
                    .collect()
            })
        };
        IpRules {
            allow: self.key("allow", |cx| cx.networks(&i.allow)),
            deny: self.key("deny", |cx| cx.networks(&i.deny)),
            allow_files: files(self, "allow_files", &i.allow_files),
            deny_files: files(self, "deny_files", &i.deny_files),
        }
    }

    fn quota(&mut self, q: &QuotaInput) -> Quota {
        if q.daily.is_none() && q.monthly.is_none() {
            self.error("give daily, monthly or both");
        }
        if q.daily == Some(0) || q.monthly == Some(0) {
            self.error("a budget must be at least 1");
        }
        Quota {
            daily: q.daily,
            monthly: q.monthly,
        }
    }

    fn waf(&mut self, w: &WafInput) -> Option<Waf> {
        let block = match w.mode.as_deref() {
            None | Some("block") => true,
            Some("detect") => false,
            Some(other) => {
                self.error_at(
                    "mode",
                    format!("{other:?}: expected \"block\" or \"detect\""),
                );
                true
            }
        };
        let paranoia = w.paranoia.unwrap_or(1);
        if !(1..=4).contains(&paranoia) {
            self.error_at("paranoia", "must be 1 to 4");
        }
        let reject_large_bodies = match w.on_large_body.as_deref() {
            None | Some("reject") => true,
            Some("pass") => false,
            Some(other) => {
                self.error_at(
                    "on_large_body",
                    format!("{other:?}: expected \"reject\" or \"pass\""),
                );
                true
            }
        };
        let reject_unparsed_bodies = match w.on_unparsed_body.as_deref() {
            None | Some("reject") => true,
            Some("pass") => false,
            Some(other) => {
                self.error_at(
                    "on_unparsed_body",
                    format!("{other:?}: expected \"reject\" or \"pass\""),
                );
                true
            }
        };
        let body_limit = w.body_limit.unwrap_or(128 * 1024);
        if body_limit == 0 || body_limit > 64 << 20 {
            self.error_at("body_limit", "must be between 1 and 67108864");
        }
        if w.rules.is_some() && w.crs.is_some() {
            self.error_at("crs", "give `rules` or `crs`, not both");
        }
        let crs = w.crs.as_deref().map(|dir| self.file(dir));
        if let Some(dir) = &crs {
            if !dir.join("rules").is_dir() {
                self.error_at(
                    "crs",
                    format!(
                        "{} is not an OWASP CRS directory (no rules/ in it)",
                        dir.display()
                    ),
                );
                return None;
            }
        }
        let settings = rampart_waf::WafSettings {
            rules: crs.or_else(|| w.rules.as_deref().map(|r| self.file(r))),
            block,
            paranoia: paranoia.clamp(1, 4),
            anomaly_threshold: w.anomaly_threshold.unwrap_or(5),
            exclusions: w.exclusions.clone(),
        };
        match rampart_waf::build(&settings) {
            Ok(engine) => Some(Waf {
                settings,
                engine: Arc::new(engine),
                body_limit: body_limit.clamp(1, 64 << 20),
                reject_large_bodies,
                reject_unparsed_bodies,
            }),
            Err(e) => {
                // One error per rule problem, each naming its file, line and directive.
                for line in e.to_string().lines() {
                    self.error_at("rules", line);
                }
                None
            }
        }
    }

    fn idempotency(&mut self, i: &IdempotencyInput) -> Idempotency {
        let methods = match &i.methods {
            Some(names) => self.key("methods", |cx| cx.methods(names)),
            None => vec![Method::POST, Method::PATCH],
        };
        let limit = |cx: &mut Self, key: &str, value: Option<usize>| -> usize {
            let value = value.unwrap_or(1 << 20);
            if value == 0 || value > 64 << 20 {
                cx.error_at(key, "must be between 1 and 67108864");
            }
            value.clamp(1, 64 << 20)
        };
        Idempotency {
            header: self.header_name("header", i.header.as_deref(), "idempotency-key"),
            methods,
            required: i.required.unwrap_or(false),
            ttl: self.duration("ttl", i.ttl.as_deref(), Duration::from_secs(24 * 3600)),
            max_body_bytes: limit(self, "max_body_bytes", i.max_body_bytes),
            max_response_bytes: limit(self, "max_response_bytes", i.max_response_bytes),
        }
    }

    fn header_value(&mut self, key: &str, text: &str) -> Option<HeaderValue> {
        match HeaderValue::from_str(text) {
            Ok(v) => Some(v),
            Err(_) => {
                self.error_at(key, "has characters a header cannot carry");
                None
            }
        }
    }

    fn security_headers(&mut self, h: &SecurityHeadersInput) -> SecurityHeaders {
        let non_empty = |v: Option<&str>, default: &'static str| -> Option<String> {
            let v = v.unwrap_or(default).trim();
            (!v.is_empty()).then(|| v.to_string())
        };
        let hsts = non_empty(h.hsts.as_deref(), "max-age=31536000; includeSubDomains");
        let frame_ancestors = non_empty(h.frame_ancestors.as_deref(), "'none'");
        let referrer = non_empty(h.referrer_policy.as_deref(), "no-referrer");
        let mut csp = h.csp.clone().filter(|c| !c.trim().is_empty());
        if let Some(fa) = &frame_ancestors {
            if !csp
                .as_deref()
                .is_some_and(|c| c.contains("frame-ancestors"))
            {
                csp = Some(match csp {
                    Some(c) => format!("{}; frame-ancestors {fa}", c.trim_end_matches([';', ' '])),
                    None => format!("frame-ancestors {fa}"),
                });
            }
        }
        SecurityHeaders {
            hsts: hsts.and_then(|v| self.header_value("hsts", &v)),
            nosniff: h.nosniff.unwrap_or(true),
            deny_framing: frame_ancestors.as_deref() == Some("'none'"),
            csp: csp.and_then(|v| self.header_value("csp", &v)),
            referrer_policy: referrer.and_then(|v| self.header_value("referrer_policy", &v)),
        }
    }

    fn cors(&mut self, c: &CorsInput) -> Cors {
        let any_origin = c.allow_origins.iter().any(|o| o == "*");
        let origins: Vec<String> = c
            .allow_origins
            .iter()
            .filter(|o| *o != "*")
            .map(|o| o.trim_end_matches('/').to_ascii_lowercase())
            .collect();
        if c.allow_origins.is_empty() {
            self.error_at("allow_origins", "name at least one origin, or \"*\"");
        }
        for (i, o) in origins.iter().enumerate() {
            let ok = (o.starts_with("https://") || o.starts_with("http://"))
                && o.parse::<http::Uri>().is_ok();
            if !ok {
                self.key("allow_origins", |cx| {
                    cx.within(Segment::Index(i), |cx| {
                        cx.error(format!(
                            "{o:?} is not an origin such as https://app.example.com"
                        ))
                    })
                });
            }
        }
        let credentials = c.allow_credentials.unwrap_or(false);
        if credentials && any_origin {
            self.error_at("allow_credentials", "cannot be used with \"*\" origins");
        }
        let methods = c
            .allow_methods
            .clone()
            .unwrap_or_else(|| vec!["GET".into(), "HEAD".into(), "POST".into()])
            .iter()
            .filter_map(|m| Method::from_bytes(m.to_ascii_uppercase().as_bytes()).ok())
            .collect();
        let mut headers = Vec::new();
        for (i, h) in c.allow_headers.iter().enumerate() {
            match HeaderName::from_bytes(h.as_bytes()) {
                Ok(name) => headers.push(name.as_str().to_string()),
                Err(_) => self.key("allow_headers", |cx| {
                    cx.within(Segment::Index(i), |cx| {
                        cx.error(format!("{h:?} is not a header name"))
                    })
                }),
            }
        }
        let expose = (!c.expose_headers.is_empty())
            .then(|| c.expose_headers.join(", "))
            .and_then(|v| self.header_value("expose_headers", &v));
        let max_age = self.duration("max_age", c.max_age.as_deref(), Duration::from_secs(600));
        Cors {
            origins,
            any_origin,
            methods,
            headers,
            expose,
            credentials,
            max_age_secs: max_age.as_secs(),
        }
    }

    fn networks(&mut self, texts: &[String]) -> Vec<IpNet> {
        texts
            .iter()
            .enumerate()
            .filter_map(|(i, text)| {
                let parsed = text
                    .parse::<IpNet>()
                    .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from));
                match parsed {
                    Ok(net) => Some(net),
                    Err(_) => {
                        self.within(Segment::Index(i), |cx| {
                            cx.error(format!("{text:?} is not an IP address or CIDR"))
                        });
                        None
                    }
                }
            })
            .collect()
    }

    fn auth(&mut self, a: &AuthInput, upstream: &str) -> AuthPolicy {
        if a.methods.is_empty() {
            self.error_at("methods", "name at least one method, such as \"api_key\"");
        }
        let api_key_header =
            self.header_name("api_key_header", a.api_key_header.as_deref(), "x-api-key");
        for (i, scope) in a.scopes.iter().enumerate() {
            if scope.is_empty() || scope.len() > 64 || !scope.bytes().all(|b| b.is_ascii_graphic())
            {
                self.key("scopes", |cx| {
                    cx.within(Segment::Index(i), |cx| {
                        cx.error("1 to 64 visible characters")
                    })
                });
            }
        }
        let wants_jwt = a.methods.contains(&AuthMethodInput::Jwt);
        let jwt = match (&a.jwt, wants_jwt) {
            (Some(j), true) => Some(self.key("jwt", |cx| cx.jwt(j))),
            (None, true) => {
                self.error_at(
                    "jwt",
                    "the \"jwt\" method needs jwt = { jwks_url = … } or { public_key_pem = … }",
                );
                None
            }
            (Some(_), false) => {
                self.error_at("jwt", "only used when methods include \"jwt\"");
                None
            }
            (None, false) => None,
        };
        AuthPolicy {
            jwt,
            api_key: a.methods.contains(&AuthMethodInput::ApiKey),
            api_key_query: a.api_key_query.clone().filter(|q| {
                let ok = !q.is_empty()
                    && q.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
                if !ok {
                    self.error_at(
                        "api_key_query",
                        format!("{q:?} is not a query parameter name"),
                    );
                }
                ok
            }),
            api_key_header,
            scopes: a.scopes.clone(),
            forward_claims: self.key("forward_claims", |cx| {
                a.forward_claims
                    .iter()
                    .enumerate()
                    .filter(|(i, claim)| {
                        let ok =
                            HeaderName::from_bytes(format!("x-rampart-claim-{claim}").as_bytes())
                                .is_ok();
                        if !ok {
                            cx.within(Segment::Index(*i), |cx| {
                                cx.error(format!("{claim:?} cannot be part of a header name"))
                            });
                        }
                        ok
                    })
                    .map(|(_, claim)| claim.to_ascii_lowercase())
                    .collect()
            }),
            assertion: a.assertion.as_ref().map(|s| {
                self.key("assertion", |cx| Assertion {
                    header: cx.header_name("header", s.header.as_deref(), "x-rampart-assertion"),
                    ttl: cx.duration("ttl", s.ttl.as_deref(), Duration::from_secs(60)),
                    audience: s.audience.clone().unwrap_or_else(|| upstream.to_string()),
                    issuer: s.issuer.clone().unwrap_or_else(|| "rampart".to_string()),
                })
            }),
        }
    }

    fn rate_limit(&mut self, l: &RateLimitInput) -> RateLimitRule {
        if l.requests == 0 {
            self.error_at("requests", "must be at least 1");
        }
        let per = self.duration("per", Some(&l.per), Duration::from_secs(1));
        if per < Duration::from_millis(1) {
            self.error_at("per", "must be at least 1ms");
        }
        let burst = l.burst.unwrap_or(l.requests).max(1);
        let key = match l.key.as_deref().unwrap_or("client_ip") {
            "client_ip" => LimitKey::ClientIp,
            "consumer" => LimitKey::Consumer,
            "api_key" => LimitKey::ApiKey,
            "route" => LimitKey::Route,
            other => match (
                other
                    .strip_prefix("header:")
                    .map(|h| HeaderName::from_bytes(h.as_bytes())),
                other.strip_prefix("claim:").filter(|c| !c.is_empty()),
            ) {
                (Some(Ok(name)), _) => LimitKey::Header(name),
                (_, Some(claim)) => LimitKey::Claim(claim.to_string()),
                _ => {
                    self.error_at(
                        "key",
                        format!("{other:?}: expected client_ip, consumer, api_key, route, header:<name> or claim:<name>"),
                    );
                    LimitKey::ClientIp
                }
            },
        };
        let fail_open = match l.on_error.as_deref() {
            None | Some("open") => true,
            Some("closed") => false,
            Some(other) => {
                self.error_at(
                    "on_error",
                    format!("{other:?}: expected \"open\" or \"closed\""),
                );
                true
            }
        };
        RateLimitRule {
            requests: l.requests.max(1),
            per: per.max(Duration::from_millis(1)),
            burst,
            key,
            fail_open,
        }
    }

    fn matcher(&mut self, m: Option<&MatchInput>) -> RouteMatch {
        let Some(m) = m else {
            return RouteMatch::default();
        };
        let hosts = self.key("hosts", |cx| {
            m.hosts
                .iter()
                .enumerate()
                .filter_map(|(i, h)| {
                    let h = h.to_ascii_lowercase();
                    let pattern = match h.strip_prefix("*.") {
                        Some(rest) => HostPattern::Wildcard(format!(".{rest}")),
                        None => HostPattern::Exact(h.clone()),
                    };
                    let bare = h.trim_start_matches("*.");
                    if bare.is_empty() || bare.contains(['*', '/', ':', ' ']) {
                        cx.within(Segment::Index(i), |cx| {
                            cx.error(format!(
                                "{h:?}: write a host like api.example.com or *.example.com"
                            ))
                        });
                        return None;
                    }
                    Some(pattern)
                })
                .collect()
        });
        let given = [
            m.path.is_some(),
            m.path_prefix.is_some(),
            m.path_regex.is_some(),
        ]
        .iter()
        .filter(|x| **x)
        .count();
        if given > 1 {
            self.error("give at most one of path, path_prefix and path_regex");
        }
        let path = if let Some(p) = &m.path {
            self.check_path("path", p);
            PathMatch::Exact(p.clone())
        } else if let Some(p) = &m.path_prefix {
            self.check_path("path_prefix", p);
            let trimmed = p.trim_end_matches('/');
            PathMatch::Prefix(if trimmed.is_empty() {
                "/".into()
            } else {
                trimmed.into()
            })
        } else if let Some(r) = &m.path_regex {
            let flags = if m.path_ignore_case == Some(true) {
                "(?i)"
            } else {
                ""
            };
            match regex::Regex::new(&format!("{flags}^(?:{r})$")) {
                Ok(re) => PathMatch::Regex(re),
                Err(e) => {
                    self.error_at("path_regex", format!("invalid regex: {e}"));
                    PathMatch::Any
                }
            }
        } else {
            PathMatch::Any
        };
        let methods = self.key("methods", |cx| {
            m.methods
                .iter()
                .enumerate()
                .filter_map(|(i, name)| {
                    match Method::from_bytes(name.to_ascii_uppercase().as_bytes()) {
                        Ok(method) => Some(method),
                        Err(_) => {
                            cx.within(Segment::Index(i), |cx| {
                                cx.error(format!("{name:?} is not a method"))
                            });
                            None
                        }
                    }
                })
                .collect()
        });
        let headers = self.key("headers", |cx| cx.header_pairs(&m.headers));
        RouteMatch {
            hosts,
            path,
            path_ignore_case: m.path_ignore_case.unwrap_or(false),
            methods,
            headers,
        }
    }

    fn check_path(&mut self, key: &str, p: &str) {
        if !p.starts_with('/') || p.contains('?') || p.parse::<http::uri::PathAndQuery>().is_err() {
            self.error_at(
                key,
                format!("{p:?} is not an absolute path without a query"),
            );
        } else if let Some(problem) = non_canonical_path(p) {
            // Requests are matched in their canonical form, which this path never has.
            self.error_at(key, format!("{p:?} would never match: it {problem}"));
        }
    }

    fn header_pairs(&mut self, map: &BTreeMap<String, String>) -> Vec<(HeaderName, HeaderValue)> {
        map.iter()
            .filter_map(|(name, value)| {
                let parsed_name = HeaderName::from_bytes(name.as_bytes());
                let parsed_value = HeaderValue::from_str(value);
                match (parsed_name, parsed_value) {
                    (Ok(n), Ok(v)) => Some((n, v)),
                    (Err(_), _) => {
                        self.error_at(name, format!("{name:?} is not a header name"));
                        None
                    }
                    (_, Err(_)) => {
                        self.error_at(name, "the value has characters a header cannot carry");
                        None
                    }
                }
            })
            .collect()
    }

    fn header_ops(&mut self, ops: Option<&HeaderOpsInput>) -> HeaderOps {
        let Some(ops) = ops else {
            return HeaderOps::default();
        };
        let remove = self.key("remove", |cx| {
            ops.remove
                .iter()
                .enumerate()
                .filter_map(|(i, n)| match HeaderName::from_bytes(n.as_bytes()) {
                    Ok(n) => Some(n),
                    Err(_) => {
                        cx.within(Segment::Index(i), |cx| {
                            cx.error(format!("{n:?} is not a header name"))
                        });
                        None
                    }
                })
                .collect()
        });
        HeaderOps {
            remove,
            set: self.key("set", |cx| cx.header_pairs(&ops.set)),
            add: self.key("add", |cx| cx.header_pairs(&ops.add)),
        }
    }

    fn retry(&mut self, r: Option<&RetryInput>) -> RetryPolicy {
        let on_status = r
            .and_then(|r| r.on_status.clone())
            .unwrap_or_else(|| vec![502, 503, 504]);
        for (i, status) in on_status.iter().enumerate() {
            if !(100..=599).contains(status) {
                self.key("on_status", |cx| {
                    cx.within(Segment::Index(i), |cx| {
                        cx.error(format!("{status} is not an HTTP status"))
                    })
                });
            }
        }
        let backoff = Backoff {
            base: self.duration(
                "backoff_base",
                r.and_then(|r| r.backoff_base.as_deref()),
                Duration::from_millis(25),
            ),
            max: self.duration(
                "backoff_max",
                r.and_then(|r| r.backoff_max.as_deref()),
                Duration::from_millis(250),
            ),
        };
        let attempts = r.and_then(|r| r.attempts).unwrap_or(2);
        if attempts > 10 {
            self.error_at("attempts", "at most 10 retries");
        }
        RetryPolicy {
            attempts: attempts.min(10),
            on_status,
            on_connect_failure: r.and_then(|r| r.on_connect_failure).unwrap_or(true),
            on_timeout: r.and_then(|r| r.on_timeout).unwrap_or(false),
            non_idempotent: r.and_then(|r| r.non_idempotent).unwrap_or(false),
            backoff,
        }
    }

    fn status(&mut self, key: &str, code: u16) -> Option<StatusCode> {
        match StatusCode::from_u16(code) {
            Ok(s) if (200..=599).contains(&code) => Some(s),
            _ => {
                self.error_at(key, format!("{code} is not a status between 200 and 599"));
                None
            }
        }
    }

    fn fallback(
        &mut self,
        f: &FallbackInput,
        own_upstream: &str,
        upstreams: &BTreeMap<String, Arc<Upstream>>,
    ) -> Option<Fallback> {
        match (&f.upstream, f.status) {
            (Some(upstream), None) => {
                if f.body.is_some() || f.content_type.is_some() {
                    self.error("`body` and `content_type` go with `status`, not `upstream`");
                }
                if !upstreams.contains_key(upstream) && !self.broken.upstreams.contains(upstream) {
                    self.error_at("upstream", format!("unknown upstream {upstream:?}"));
                } else if upstream == own_upstream {
                    self.error_at(
                        "upstream",
                        "the fallback must be another upstream than the route's",
                    );
                }
                Some(Fallback::Upstream(upstream.clone()))
            }
            (None, Some(status)) => {
                let status = self.status("status", status)?;
                let content_type = f
                    .content_type
                    .as_deref()
                    .unwrap_or("text/plain; charset=utf-8");
                let content_type = match HeaderValue::from_str(content_type) {
                    Ok(v) => v,
                    Err(_) => {
                        self.error_at("content_type", "not a valid header value");
                        return None;
                    }
                };
                Some(Fallback::Static {
                    status,
                    body: f.body.clone().unwrap_or_default().into(),
                    content_type,
                })
            }
            _ => {
                self.error("give either `status` (with `body`) or `upstream`");
                None
            }
        }
    }

    fn fault(&mut self, f: &FaultInput) -> Option<Fault> {
        let share = |cx: &mut Self, key: &str, percent: Option<f64>| -> f64 {
            let p = percent.unwrap_or(100.0);
            if !(0.0..=100.0).contains(&p) {
                cx.error_at(key, "must be between 0 and 100");
            }
            p.clamp(0.0, 100.0) / 100.0
        };
        let delay = match &f.delay {
            Some(d) => {
                let d = self.duration("delay", Some(d), Duration::ZERO);
                Some((d, share(self, "delay_percent", f.delay_percent)))
            }
            None => None,
        };
        let abort = match f.abort_percent {
            Some(p) => {
                let status = self.status("abort_status", f.abort_status.unwrap_or(503))?;
                Some((status, share(self, "abort_percent", Some(p))))
            }
            None => None,
        };
        Some(Fault { delay, abort })
    }
}

/// How specific a route is; larger wins. See docs/config.md, "Route precedence".
/// Why `path` is not in the canonical form requests are routed in, if it is not:
/// repeated slashes, dot segments, escapes of unreserved characters or in lower case.
fn non_canonical_path(path: &str) -> Option<&'static str> {
    if path.contains("//") {
        return Some("has repeated slashes");
    }
    if path
        .split('/')
        .any(|segment| segment == "." || segment == "..")
    {
        return Some("has dot segments");
    }
    let bytes = path.as_bytes();
    for (i, byte) in bytes.iter().enumerate() {
        if *byte == b'\\' {
            return Some("has a backslash");
        }
        if *byte != b'%' {
            continue;
        }
        let hex = bytes.get(i + 1..i + 3).unwrap_or_default();
        let value = std::str::from_utf8(hex)
            .ok()
            .filter(|h| h.len() == 2)
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match value {
            None => return Some("has an invalid percent escape"),
            Some(v) if v.is_ascii_alphanumeric() || b"-._~".contains(&v) => {
                return Some("escapes an unreserved character (write it plainly)")
            }
            Some(_) if hex.iter().any(u8::is_ascii_lowercase) => {
                return Some("has a lower-case percent escape (write it in upper case)")
            }
            Some(_) => {}
        }
    }
    None
}

/// How many entries an array value has (0 for anything else).
fn array_len(value: &toml::Value) -> usize {
    value.as_array().map_or(0, Vec::len)
}

fn specificity(m: &RouteMatch) -> (u8, usize, u8, usize, usize) {
    let host = if m.hosts.iter().any(|h| matches!(h, HostPattern::Exact(_))) {
        2
    } else if m.hosts.is_empty() {
        0
    } else {
        1
    };
    let wildcard_len = m
        .hosts
        .iter()
        .map(|h| match h {
            HostPattern::Exact(_) => usize::MAX,
            HostPattern::Wildcard(s) => s.len(),
        })
        .min()
        .unwrap_or(0);
    let (path_rank, path_len) = match &m.path {
        PathMatch::Exact(p) => (3, p.len()),
        PathMatch::Regex(_) => (2, 0),
        PathMatch::Prefix(p) => (1, p.len()),
        PathMatch::Any => (0, 0),
    };
    (
        host,
        wildcard_len,
        path_rank,
        path_len,
        usize::from(!m.methods.is_empty()) + m.headers.len(),
    )
}
