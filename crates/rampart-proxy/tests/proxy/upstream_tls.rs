//! TLS to upstreams with a private CA: the CA file replaces the web PKI roots, the
//! server name verified can be set, and a client certificate is presented to
//! upstreams that require one, for HTTP/1.1 and HTTP/2 targets alike.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use parking_lot::Mutex;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
use rustls::server::WebPkiClientVerifier;
use tokio::net::TcpListener;

use crate::support::*;

/// The common name of the gateway's client certificate.
const CLIENT_NAME: &str = "rampart-gateway.internal";

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    fn new(name: &str) -> Self {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).expect("ca");
        Self { cert, key }
    }

    /// A leaf signed by this CA for `names` (and 127.0.0.1 when `ip`), with its key.
    fn leaf(&self, common_name: &str, names: &[&str], ip: bool) -> (rcgen::Certificate, KeyPair) {
        let key = KeyPair::generate().expect("key");
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .expect("params");
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        if ip {
            params
                .subject_alt_names
                .push(SanType::IpAddress([127, 0, 0, 1].into()));
        }
        let cert = params.signed_by(&key, &self.cert, &self.key).expect("leaf");
        (cert, key)
    }
}

fn temp_dir() -> PathBuf {
    tempfile::Builder::new()
        .prefix("rampart-upstream-tls-")
        .tempdir()
        .expect("temp dir")
        .keep()
}

/// What a TLS upstream saw of a request: the protocol and the client certificate.
#[derive(Default)]
struct Seen {
    requests: usize,
    /// The DER of the client certificate presented, if any.
    client_cert: Option<Vec<u8>>,
}

/// A TLS upstream with a certificate from `ca`, valid for `upstream.internal` and
/// 127.0.0.1, offering `alpn`; with `client_ca`, it requires a client certificate
/// from that CA. It answers 200 with the HTTP version and whether the client
/// certificate's subject names `CLIENT_NAME`.
async fn tls_upstream(
    ca: &Ca,
    alpn: &[&[u8]],
    client_ca: Option<&Ca>,
) -> (SocketAddr, Arc<Mutex<Seen>>, tokio::task::JoinHandle<()>) {
    let (cert, key) = ca.leaf("upstream.internal", &["upstream.internal"], true);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .expect("versions");
    let builder = match client_ca {
        Some(client_ca) => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(client_ca.cert.der().clone()).expect("root");
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .expect("verifier");
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(
            vec![cert.der().clone()],
            rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .expect("server config");
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = Arc::new(Mutex::new(Seen::default()));
    let record = Arc::clone(&seen);
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let record = Arc::clone(&record);
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let client_cert = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .map(|c| c.to_vec());
                let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let mut seen = record.lock();
                    seen.requests += 1;
                    seen.client_cert.clone_from(&client_cert);
                    let subject = match &client_cert {
                        Some(der) if contains(der, CLIENT_NAME.as_bytes()) => CLIENT_NAME,
                        Some(_) => "another",
                        None => "none",
                    };
                    let body = format!("{:?} client={subject}", req.version());
                    async move { Ok::<_, Infallible>(reply(200, body)) }
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (addr, seen, task)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The warnings and errors logged by every test of this binary (a process-wide
/// subscriber, installed once: the tests run in parallel on their own threads).
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<String>>);

impl Captured {
    fn text(&self) -> String {
        self.0.lock().clone()
    }
}

fn warnings() -> &'static Captured {
    static LOG: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
    LOG.get_or_init(|| {
        let log = Captured::default();
        ::tracing::subscriber::set_global_default(log.clone()).expect("the only subscriber");
        log
    })
}

struct Fields<'a>(&'a mut String);

impl ::tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &::tracing::field::Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write;
        let _ = write!(self.0, " {}={value:?}", field.name());
    }
}

impl ::tracing::Subscriber for Captured {
    fn enabled(&self, metadata: &::tracing::Metadata<'_>) -> bool {
        *metadata.level() <= ::tracing::Level::WARN
    }
    fn new_span(&self, _: &::tracing::span::Attributes<'_>) -> ::tracing::span::Id {
        ::tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &::tracing::span::Id, _: &::tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &::tracing::span::Id, _: &::tracing::span::Id) {}
    fn event(&self, event: &::tracing::Event<'_>) {
        let mut line = event.metadata().level().to_string();
        event.record(&mut Fields(&mut line));
        line.push('\n');
        self.0.lock().push_str(&line);
    }
    fn enter(&self, _: &::tracing::span::Id) {}
    fn exit(&self, _: &::tracing::span::Id) {}
}

/// Starts a gateway whose config (relative files resolved against `dir`) routes
/// everything to one upstream with `upstream` as its settings.
async fn gateway_in(dir: &Path, upstream: &str) -> (rampart_proxy::Gateway, SocketAddr) {
    let config =
        rampart_config::compile_str(&config_text(upstream), dir).unwrap_or_else(|e| panic!("{e}"));
    let gateway =
        rampart_proxy::Gateway::start(config, Arc::new(rampart_telemetry::Metrics::new()))
            .await
            .expect("start");
    let addr = gateway.local_addr("public").expect("listener");
    (gateway, addr)
}

fn config_text(upstream: &str) -> String {
    format!(
        r#"
log = {{ access_log = "off" }}
listeners = [{{ name = "public", address = "127.0.0.1:0" }}]
[upstreams.app]
connect_timeout = "2s"
{upstream}
[[routes]]
name = "all"
upstream = "app"
retry = {{ attempts = 1 }}
"#
    )
}

/// A refused upstream: 502 with nothing of the TLS failure in the body, and the reason
/// (one of `expected`, as the HTTP/1.1 and HTTP/2 clients word it) in the warning
/// logged about the request to `upstream`.
async fn assert_refused(addr: SocketAddr, upstream: SocketAddr, expected: &[&str]) {
    let answer = get(addr, "/").await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY, "{}", answer.text());
    let body = answer.text();
    assert!(
        expected.iter().all(|e| !body.contains(e)) && !body.to_lowercase().contains("certificate"),
        "the reason stays out of the body: {body}"
    );
    let target = format!("https://{upstream}");
    let logged = eventually(Duration::from_secs(5), || {
        warnings()
            .text()
            .lines()
            .any(|l| l.contains(&target) && expected.iter().any(|e| l.contains(e)))
    })
    .await;
    assert!(logged, "{expected:?} is logged: {}", warnings().text());
}

#[tokio::test]
async fn a_private_ca_is_trusted_only_when_configured_with_the_name_verified() {
    warnings();
    let ca = Ca::new("Rampart Test CA");
    let dir = temp_dir();
    std::fs::write(dir.join("ca.pem"), ca.cert.pem()).expect("ca file");
    for (protocol, alpn, version) in [
        ("http1", &[b"http/1.1".as_slice()][..], "HTTP/1.1"),
        (
            "http2",
            &[b"h2".as_slice(), b"http/1.1".as_slice()][..],
            "HTTP/2.0",
        ),
    ] {
        let (up, seen, task) = tls_upstream(&ca, alpn, None).await;
        let target = format!("targets = [\"https://{up}\"]\nprotocol = \"{protocol}\"");

        // Only the web PKI roots: the private CA is unknown.
        let (gw, addr) = gateway_in(&dir, &target).await;
        assert_refused(addr, up, &["UnknownIssuer"]).await;
        gw.shutdown().await;

        // Its CA file (relative to the config file): the target's IP address SAN verifies.
        let (gw, addr) =
            gateway_in(&dir, &format!("{target}\ntls = {{ ca_file = \"ca.pem\" }}")).await;
        let answer = get(addr, "/").await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "{protocol}: {}",
            answer.text()
        );
        assert_eq!(answer.text(), format!("{version} client=none"));
        gw.shutdown().await;

        // The name in its certificate, verified and sent instead of the target's host.
        let (gw, addr) = gateway_in(
            &dir,
            &format!(
                "{target}\ntls = {{ ca_file = \"ca.pem\", server_name = \"upstream.internal\" }}"
            ),
        )
        .await;
        let answer = get(addr, "/").await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "{protocol}: {}",
            answer.text()
        );
        gw.shutdown().await;

        // A name the certificate is not for.
        let (gw, addr) = gateway_in(
            &dir,
            &format!(
                "{target}\ntls = {{ ca_file = \"ca.pem\", server_name = \"other.internal\" }}"
            ),
        )
        .await;
        assert_refused(
            addr,
            up,
            &["not valid for name \"other.internal\"", "NotValidForName"],
        )
        .await;
        gw.shutdown().await;

        assert_eq!(
            seen.lock().requests,
            2,
            "{protocol}: only the verified exchanges"
        );
        task.abort();
    }
}

#[tokio::test]
async fn upstreams_requiring_a_client_certificate_get_the_configured_one() {
    warnings();
    let ca = Ca::new("Rampart Test CA");
    let client_ca = Ca::new("Rampart Client CA");
    let dir = temp_dir();
    std::fs::write(dir.join("ca.pem"), ca.cert.pem()).expect("ca file");
    let (client, client_key) = client_ca.leaf(CLIENT_NAME, &[CLIENT_NAME], false);
    std::fs::write(dir.join("client.pem"), client.pem()).expect("cert");
    std::fs::write(dir.join("client.key"), client_key.serialize_pem()).expect("key");
    for (protocol, alpn, version) in [
        ("http1", &[b"http/1.1".as_slice()][..], "HTTP/1.1"),
        (
            "http2",
            &[b"h2".as_slice(), b"http/1.1".as_slice()][..],
            "HTTP/2.0",
        ),
    ] {
        let (up, seen, task) = tls_upstream(&ca, alpn, Some(&client_ca)).await;
        let target = format!("targets = [\"https://{up}\"]\nprotocol = \"{protocol}\"");

        // Without a client certificate the upstream refuses the connection.
        let (gw, addr) =
            gateway_in(&dir, &format!("{target}\ntls = {{ ca_file = \"ca.pem\" }}")).await;
        let answer = get(addr, "/").await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_GATEWAY,
            "{protocol}: {}",
            answer.text()
        );
        assert_eq!(seen.lock().requests, 0, "{protocol}");
        gw.shutdown().await;

        // With it, the upstream sees the gateway's certificate.
        let (gw, addr) = gateway_in(
            &dir,
            &format!(
                "{target}\ntls = {{ ca_file = \"ca.pem\", client_cert = \"client.pem\", client_key = \"client.key\" }}"
            ),
        )
        .await;
        let answer = get(addr, "/").await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "{protocol}: {}",
            answer.text()
        );
        assert_eq!(answer.text(), format!("{version} client={CLIENT_NAME}"));
        assert_eq!(
            seen.lock().client_cert.as_deref(),
            Some(client.der().as_ref()),
            "{protocol}: the configured certificate reached the upstream"
        );
        gw.shutdown().await;
        task.abort();
    }
}

#[tokio::test]
async fn a_reload_with_changed_tls_settings_rebuilds_the_connections() {
    let ca = Ca::new("Rampart Test CA");
    let dir = temp_dir();
    std::fs::write(dir.join("ca.pem"), ca.cert.pem()).expect("ca file");
    let (up, _seen, task) = tls_upstream(&ca, &[b"http/1.1"], None).await;
    let target = format!("targets = [\"https://{up}\"]");
    let (gw, addr) = gateway_in(&dir, &target).await;
    assert_eq!(get(addr, "/").await.status, StatusCode::BAD_GATEWAY);

    let with_ca = format!("{target}\ntls = {{ ca_file = \"ca.pem\" }}");
    let config =
        rampart_config::compile_str(&config_text(&with_ca), &dir).unwrap_or_else(|e| panic!("{e}"));
    gw.reload(config).expect("reload");
    assert_eq!(get(addr, "/").await.status, StatusCode::OK);

    // The same file names with another CA's certificate: a reload reads them again.
    let other = Ca::new("Another CA");
    std::fs::write(dir.join("ca.pem"), other.cert.pem()).expect("ca file");
    let config =
        rampart_config::compile_str(&config_text(&with_ca), &dir).unwrap_or_else(|e| panic!("{e}"));
    gw.reload(config).expect("reload");
    assert_eq!(get(addr, "/").await.status, StatusCode::BAD_GATEWAY);
    gw.shutdown().await;
    task.abort();
}
