//! An admin listener on an ephemeral port, in front of a gateway and a fresh store.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rampart_proxy::Gateway;
use rampart_store::Store;

pub struct Admin {
    pub addr: SocketAddr,
    pub audit_log: Arc<rampart_audit::AuditLog>,
    pub gateway_addr: SocketAddr,
    pub store: Store,
    pub data_dir: PathBuf,
    /// The shared state the admin API lifts bans in and announces changes on.
    pub shared: Arc<rampart_store::LocalState>,
    /// The bootstrap (admin role) token.
    pub token: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

pub struct Answer {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub json: serde_json::Value,
}

pub async fn start() -> Admin {
    let data_dir = tempfile::Builder::new()
        .prefix("rampart-admin-")
        .tempdir()
        .expect("temp dir")
        .keep();
    let config = rampart_config::compile_str(
        r#"
log = { access_log = "off" }
listeners = [{ name = "public", address = "127.0.0.1:0" }]
[upstreams.echo]
targets = ["builtin:echo"]
[[routes]]
name = "all"
upstream = "echo"
"#,
        Path::new("."),
    )
    .expect("config");
    let store = Store::open_sqlite(&data_dir).await.expect("store");
    let token_file = rampart_admin::bootstrap_token(&store, &data_dir)
        .await
        .expect("bootstrap")
        .expect("a token on first start");
    let token = std::fs::read_to_string(&token_file)
        .expect("token file")
        .trim()
        .to_string();
    let gateway = Arc::new(
        Gateway::start(config, Arc::new(rampart_telemetry::Metrics::new()))
            .await
            .expect("gateway"),
    );
    let gateway_addr = gateway.local_addr("public").expect("listener");
    let mut audit_settings = rampart_audit::AuditLogSettings::new(data_dir.join("audit"));
    audit_settings.sensitive_fields = vec!["tenant".into()];
    let audit_log = Arc::new(rampart_audit::AuditLog::open(audit_settings).expect("audit log"));
    let trail = Arc::new(rampart_audit::AuditTrail {
        log: Arc::clone(&audit_log) as _,
        index: Arc::new(store.clone()),
        syslog: None,
    });
    let shared = Arc::new(rampart_store::LocalState::default());
    let state = Arc::new(
        rampart_admin::AdminState::new(gateway, store.clone(), Arc::clone(&shared) as _)
            .with_audit_log(Arc::clone(&audit_log) as _, trail),
    );
    let (addr, _task) = rampart_admin::bind(
        "127.0.0.1:0".parse().expect("addr"),
        state,
        std::future::pending(),
    )
    .await
    .expect("admin");
    Admin {
        addr,
        audit_log,
        gateway_addr,
        store,
        data_dir,
        shared,
        token,
        client: Client::builder(TokioExecutor::new()).build(HttpConnector::new()),
    }
}

impl Admin {
    pub async fn call(
        &self,
        token: Option<&str>,
        method: &str,
        path: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut request = http::Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr));
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let typed = headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"));
        if body.is_some() && !typed {
            request = request.header("content-type", "application/json");
        }
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or("").to_string())))
            .expect("request");
        let response = tokio::time::timeout(Duration::from_secs(10), self.client.request(request))
            .await
            .expect("in time")
            .expect("response");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        Answer {
            status,
            headers,
            json: serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        }
    }

    /// As the bootstrap admin.
    pub async fn admin(&self, method: &str, path: &str, body: Option<&str>) -> Answer {
        self.call(Some(&self.token), method, path, body, &[]).await
    }

    /// Creates a token with `role` and returns its secret.
    pub async fn token_with_role(&self, role: &str) -> String {
        let created = self
            .admin(
                "POST",
                "/admin/tokens",
                Some(&format!(r#"{{"name":"{role}-token","role":"{role}"}}"#)),
            )
            .await;
        assert_eq!(created.status, 201, "{}", created.json);
        created.json["secret"].as_str().expect("secret").to_string()
    }
}
