//! The compile step end to end: valid configs, every error at once, references, precedence.

use std::path::Path;

use rampart_config::{compile_str, Endpoint, PathMatch};

const VALID: &str = r#"
[[listeners]]
name = "public"
address = "127.0.0.1:8080"

[upstreams.app]
targets = ["http://127.0.0.1:3000", { url = "http://127.0.0.1:3001", weight = 3 }]
balance = "least_connections"
health_check = { path = "/healthz", interval = "1s" }

[upstreams.echo]
targets = ["builtin:echo"]

[[routes]]
name = "catch-all"
upstream = "echo"

[[routes]]
name = "api"
match = { path_prefix = "/api/" }
upstream = "app"
rewrite = { strip_prefix = true, add_prefix = "/v2" }
timeouts = { per_try = "2s", total = "5s" }
retry = { attempts = 3, on_status = [503] }
fallback = { status = 503, body = "down" }

[[routes]]
name = "exact"
match = { path = "/api/status", methods = ["get"] }
upstream = "app"
"#;

#[test]
fn a_valid_config_compiles_with_defaults_and_precedence() {
    let config = compile_str(VALID, Path::new("/etc/rampart")).expect("valid");
    assert_eq!(config.admin_listen.to_string(), "127.0.0.1:9090");
    assert_eq!(
        config.data_dir,
        Path::new("data"),
        "default: ./data in the working directory"
    );
    let names: Vec<&str> = config.routes.iter().map(|r| &*r.name).collect();
    assert_eq!(names, ["exact", "api", "catch-all"]);
    let api = &config.routes[1];
    assert!(matches!(&api.matcher.path, PathMatch::Prefix(p) if p == "/api"));
    assert_eq!(api.retry.attempts, 3);
    assert_eq!(api.per_try_timeout.as_secs(), 2);
    let app = &config.upstreams["app"];
    assert_eq!(app.targets[1].weight, 3);
    assert_eq!(config.upstreams["echo"].targets[0].endpoint, Endpoint::Echo);
    assert_eq!(
        app.health_check.as_ref().map(|h| h.healthy_threshold),
        Some(2)
    );
}

#[test]
fn every_error_is_reported_with_its_line_and_path() {
    let source = r#"
[[listeners]]
address = "nowhere"

[upstreams.app]
targets = ["ftp://x"]
connect_timeout = "soon"

[[routes]]
upstream = "missing"

[[routes]]
upstream = "app"
match = { path_regex = "(" }
typo = 1
"#;
    let errors = compile_str(source, Path::new("."))
        .expect_err("invalid")
        .errors;
    let rendered: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    let expect = [
        "3:1: listeners[0].address: \"nowhere\" is not an address",
        "6:12: upstreams.app.targets[0]: \"ftp://x\": the scheme must be http or https",
        "7:1: upstreams.app.connect_timeout: invalid duration \"soon\"",
        "10:1: routes[0].upstream: unknown upstream \"missing\"",
        "15:1: routes[1].typo: unknown field `typo`",
    ];
    for e in expect {
        assert!(
            rendered.iter().any(|r| r.starts_with(e)),
            "missing {e:?} in {rendered:#?}"
        );
    }
    assert_eq!(rendered.len(), expect.len(), "{rendered:#?}");
}

#[test]
fn semantic_errors_in_a_parsed_route_are_all_reported() {
    let source = r#"
[[listeners]]
address = "127.0.0.1:1"
[upstreams.a]
targets = ["builtin:echo"]
[[routes]]
upstream = "a"
match = { path_regex = "(", methods = ["BAD METHOD"] }
retry = { on_status = [42] }
fault = { abort_percent = 120 }
"#;
    let errors = compile_str(source, Path::new("."))
        .expect_err("invalid")
        .errors;
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "routes[0].match.path_regex",
            "routes[0].match.methods[0]",
            "routes[0].retry.on_status[0]",
            "routes[0].fault.abort_percent"
        ]
    );
}

#[test]
fn a_syntax_error_has_a_position() {
    let errors = compile_str("[[listeners]\naddress = 1", Path::new("."))
        .expect_err("bad")
        .errors;
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].position.map(|p| p.0), Some(1));
}

#[test]
fn references_read_rampart_env_and_files_only() {
    let dir = tempfile::Builder::new()
        .prefix("rampart-config-")
        .tempdir()
        .expect("temp dir")
        .keep();
    std::fs::write(dir.join("host.txt"), "from-file.example\n").expect("write");
    std::env::set_var("RAMPART_TEST_ADMIN", "127.0.0.1:9555");
    let source = r#"
admin = { listen = "${env:RAMPART_TEST_ADMIN}" }
[[listeners]]
address = "127.0.0.1:1"
[upstreams.a]
targets = ["builtin:echo"]
[[routes]]
upstream = "a"
match = { hosts = ["${file:host.txt}"] }
"#;
    let config = compile_str(source, &dir).expect("valid");
    assert_eq!(config.admin_listen.to_string(), "127.0.0.1:9555");
    assert!(config.routes[0].matcher.hosts[0].matches("from-file.example"));

    let bad = source.replace("RAMPART_TEST_ADMIN", "HOME");
    let errors = compile_str(&bad, &dir)
        .expect_err("HOME is not readable")
        .errors;
    assert_eq!(errors[0].path, "admin.listen");
    assert!(errors[0]
        .message
        .contains("only variables starting with RAMPART_"));
}

#[test]
fn the_checked_in_reference_matches_the_schema() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/config.md");
    let on_disk = std::fs::read_to_string(&path).expect("docs/config.md exists");
    assert!(
        on_disk == rampart_config::reference::markdown(),
        "docs/config.md is stale: run `cargo run -- config reference > docs/config.md`"
    );
}

#[test]
fn the_examples_compile() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).expect("examples/") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "toml") {
            rampart_config::load(&path).unwrap_or_else(|e| panic!("{e}"));
            seen += 1;
        }
    }
    assert!(seen >= 1);
}

#[test]
fn request_normalization_settings_compile_and_unsafe_ones_are_errors() {
    let source = r#"
[[listeners]]
address = "127.0.0.1:1"
merge_slashes = false
encoded_slashes = "decode"
underscores_in_headers = "keep"
path_parameters = "strip"
[upstreams.a]
targets = ["builtin:echo"]
[[routes]]
upstream = "a"
forward_raw_path = true
upgrades = ["WebSocket", "foo"]
forward_trailers = true
[[routes]]
upstream = "a"
match = { path_prefix = "/api" }
"#;
    let config = compile_str(source, Path::new(".")).unwrap_or_else(|e| panic!("{e}"));
    let requests = config.listeners[0].requests;
    assert!(!requests.merge_slashes);
    assert_eq!(
        requests.encoded_slashes,
        rampart_config::EncodedSlashes::Decode
    );
    assert_eq!(
        requests.underscores_in_headers,
        rampart_config::UnderscoresInHeaders::Keep
    );
    assert_eq!(
        requests.path_parameters,
        rampart_config::PathParameters::Strip
    );
    let route = config
        .routes
        .iter()
        .find(|r| r.forward_raw_path)
        .expect("raw route");
    assert_eq!(route.upgrades, ["websocket", "foo"]);
    assert!(route.forward_trailers);
    let other = config
        .routes
        .iter()
        .find(|r| !r.forward_raw_path)
        .expect("other route");
    assert_eq!(other.upgrades, ["websocket"], "the default");
    assert!(!other.forward_trailers);
    assert_eq!(
        rampart_config::RequestNormalization::default(),
        rampart_config::RequestNormalization {
            merge_slashes: true,
            encoded_slashes: rampart_config::EncodedSlashes::Reject,
            underscores_in_headers: rampart_config::UnderscoresInHeaders::Drop,
            path_parameters: rampart_config::PathParameters::Reject,
        }
    );

    let source = r#"
[[listeners]]
address = "127.0.0.1:1"
encoded_slashes = "sometimes"
[upstreams.a]
targets = ["builtin:echo"]
[[routes]]
upstream = "a"
match = { path_prefix = "/api" }
rewrite = { strip_prefix = true }
forward_raw_path = true
upgrades = ["h2c", "a b"]
[[routes]]
upstream = "a"
match = { path_prefix = "/a//b" }
[[routes]]
upstream = "a"
match = { path = "/a/../b" }
[[routes]]
upstream = "a"
match = { path_prefix = "/%61dmin" }
[[routes]]
upstream = "a"
match = { path_prefix = "/a%2fb" }
"#;
    let errors = compile_str(source, Path::new("."))
        .expect_err("invalid")
        .errors;
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "listeners[0].encoded_slashes",
            "routes[0].forward_raw_path",
            "routes[0].upgrades[0]",
            "routes[0].upgrades[1]",
            "routes[1].match.path_prefix",
            "routes[2].match.path",
            "routes[3].match.path_prefix",
            "routes[4].match.path_prefix",
        ],
        "{errors:?}"
    );
    let message = |path: &str| {
        errors
            .iter()
            .find(|e| e.path == path)
            .map(|e| e.message.clone())
            .unwrap_or_default()
    };
    assert!(message("routes[0].upgrades[0]").contains("h2c"));
    assert!(message("routes[1].match.path_prefix").contains("never match"));
}

/// A CA, a client certificate it signed and its key, and a second key, written to a
/// fresh directory with some broken files beside them.
fn tls_files() -> std::path::PathBuf {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let dir = tempfile::Builder::new()
        .prefix("rampart-config-tls-")
        .tempdir()
        .expect("temp dir")
        .keep();
    let ca_key = KeyPair::generate().expect("key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca.self_signed(&ca_key).expect("ca");
    let client_key = KeyPair::generate().expect("key");
    let client = CertificateParams::new(vec!["gateway.internal".to_string()])
        .expect("params")
        .signed_by(&client_key, &ca, &ca_key)
        .expect("leaf");
    let write = |name: &str, text: &str| std::fs::write(dir.join(name), text).expect("write");
    write("ca.pem", &ca.pem());
    write("client.pem", &client.pem());
    write("client.key", &client_key.serialize_pem());
    write(
        "other.key",
        &KeyPair::generate().expect("key").serialize_pem(),
    );
    write("empty.pem", "no PEM here\n");
    write(
        "garbled.pem",
        "-----BEGIN CERTIFICATE-----\n@@@ not base64 @@@\n-----END CERTIFICATE-----\n",
    );
    dir
}

fn with_upstreams(upstreams: &str) -> String {
    format!("[[listeners]]\naddress = \"127.0.0.1:1\"\n{upstreams}\n[[routes]]\nupstream = \"a\"\n")
}

#[test]
fn upstream_tls_files_are_read_relative_to_the_config_file() {
    let dir = tls_files();
    let source = with_upstreams(
        r#"
[upstreams.a]
targets = ["https://10.0.0.1:8443", "http://10.0.0.2:8080"]
tls = { ca_file = "ca.pem", server_name = "api.internal", client_cert = "client.pem", client_key = "client.key" }
[upstreams.b]
targets = ["https://[::1]:8443"]
protocol = "http2"
tls = { server_name = "[::1]" }
"#,
    );
    let config = compile_str(&source, &dir).unwrap_or_else(|e| panic!("{e}"));
    let a = &config.upstreams["a"].tls;
    assert_eq!(a.roots.as_ref().map(Vec::len), Some(1));
    assert_eq!(
        a.server_name.as_ref().map(|n| n.to_str().into_owned()),
        Some("api.internal".to_string())
    );
    assert_eq!(a.client_auth.as_ref().map(|c| c.chain.len()), Some(1));
    let b = &config.upstreams["b"].tls;
    assert!(b.roots.is_none(), "without ca_file: the web PKI roots");
    assert_eq!(
        b.server_name.as_ref().map(|n| n.to_str().into_owned()),
        Some("::1".to_string())
    );
    assert!(b.client_auth.is_none());
    assert!(
        !format!("{a:?}")
            .contains(&std::fs::read_to_string(dir.join("client.key")).expect("key")[40..80]),
        "the key is not printed"
    );

    // The files' contents take part in the pool's equality, so a reload with a new
    // CA in the same file builds new connections.
    let again = compile_str(&source, &dir).expect("valid");
    assert_eq!(config.upstreams["a"], again.upstreams["a"]);
    std::fs::copy(dir.join("client.pem"), dir.join("ca.pem")).expect("copy");
    let changed = compile_str(&source, &dir).expect("valid");
    assert_ne!(config.upstreams["a"], changed.upstreams["a"]);
    assert_eq!(config.upstreams["b"], changed.upstreams["b"]);
}

#[test]
fn upstream_tls_errors_name_the_key_and_the_file() {
    let dir = tls_files();
    let source = with_upstreams(
        r#"
[upstreams.a]
targets = ["https://10.0.0.1"]
tls = { ca_file = "missing.pem" }
[upstreams.b]
targets = ["https://10.0.0.1"]
tls = { client_key = "client.key" }
[upstreams.c]
targets = ["https://10.0.0.1"]
tls = { client_cert = "client.pem" }
[upstreams.d]
targets = ["https://10.0.0.1"]
tls = { ca_file = "garbled.pem", client_cert = "empty.pem", client_key = "ca.pem" }
[upstreams.e]
targets = ["https://10.0.0.1"]
tls = { client_cert = "client.pem", client_key = "other.key", server_name = "not a name" }
[upstreams.f]
targets = ["http://10.0.0.1"]
tls = { ca_file = "ca.pem" }
[upstreams.g]
targets = ["https://10.0.0.1"]
tls = { ca_file = "ca.pem", verify = false }
"#,
    );
    let errors = compile_str(&source, &dir).expect_err("invalid").errors;
    let found: Vec<(String, String)> = errors
        .iter()
        .map(|e| (e.path.clone(), e.message.clone()))
        .collect();
    let expect = [
        ("upstreams.a.tls.ca_file", "cannot read "),
        ("upstreams.a.tls.ca_file", "missing.pem"),
        ("upstreams.b.tls.client_key", "needs client_cert"),
        ("upstreams.c.tls.client_cert", "needs client_key"),
        ("upstreams.d.tls.ca_file", "garbled.pem: invalid PEM"),
        (
            "upstreams.d.tls.client_cert",
            "empty.pem: no PEM certificate found",
        ),
        (
            "upstreams.d.tls.client_key",
            "ca.pem: no usable PEM private key",
        ),
        (
            "upstreams.e.tls.client_key",
            "other.key: not a usable key for client_cert",
        ),
        (
            "upstreams.e.tls.server_name",
            "not a DNS name or an IP address",
        ),
        ("upstreams.f.tls", "only used with https targets"),
        ("upstreams.g.tls.verify", "unknown field `verify`"),
    ];
    for (path, message) in expect {
        assert!(
            found.iter().any(|(p, m)| p == path && m.contains(message)),
            "missing {path}: {message} in {found:#?}"
        );
    }
    assert_eq!(found.len(), expect.len() - 1, "{found:#?}");
    assert!(
        errors.iter().all(|e| e.position.is_some()),
        "every error has a line: {errors:#?}"
    );
}

#[test]
fn a_broken_entry_is_reported_once_without_follow_on_errors() {
    let source = r#"
[[listeners]]
name = "public"
address = "127.0.0.1:1"
typo = true
[upstreams.app]
targets = ["not a url"]
[upstreams.other]
targets = ["builtin:echo"]
retries = 3
[[routes]]
upstream = "app"
listeners = ["public"]
[[routes]]
upstream = "other"
fallback = { upstream = "app" }
[[routes]]
upstream = "missing"
"#;
    let errors = compile_str(source, Path::new("."))
        .expect_err("invalid")
        .errors;
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    // No "no listeners", no "unknown upstream app/other", no "unknown listener public":
    // only the entries' own errors, and the one real unknown upstream.
    assert_eq!(
        paths,
        [
            "listeners[0].typo",
            "upstreams.app.targets[0]",
            "upstreams.other.retries",
            "routes[2].upstream"
        ],
        "{errors:?}"
    );
    assert!(errors[3].message.contains("\"missing\""), "{errors:?}");
}

#[test]
fn stream_timeouts_have_defaults_and_must_be_positive() {
    let config = compile_str(VALID, Path::new("/etc/rampart")).expect("valid");
    let api = &config.routes[1];
    assert_eq!(
        api.upstream_body_idle,
        rampart_config::DEFAULT_UPSTREAM_BODY_IDLE
    );
    assert_eq!(
        api.client_write_timeout,
        rampart_config::DEFAULT_CLIENT_WRITE_TIMEOUT
    );
    let set = VALID.replace(
        r#"timeouts = { per_try = "2s", total = "5s" }"#,
        r#"timeouts = { per_try = "2s", total = "5s", upstream_body_idle = "5m", client_write = "10s" }"#,
    );
    let config = compile_str(&set, Path::new("/etc/rampart")).expect("valid");
    assert_eq!(config.routes[1].upstream_body_idle.as_secs(), 300);
    assert_eq!(config.routes[1].client_write_timeout.as_secs(), 10);
    let zero = VALID.replace(
        r#"timeouts = { per_try = "2s", total = "5s" }"#,
        r#"timeouts = { upstream_body_idle = "0s", client_write = "0s" }"#,
    );
    let errors = compile_str(&zero, Path::new("/etc/rampart"))
        .expect_err("zero refused")
        .to_string();
    assert!(
        errors.contains("upstream_body_idle") && errors.contains("client_write"),
        "{errors}"
    );
}
