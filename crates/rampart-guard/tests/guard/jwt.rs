//! JWT bearer tokens against a real JWKS endpoint and a PEM key.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use parking_lot::Mutex;
use rampart_store::LocalState;
use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_ED25519};

use crate::support::*;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A signing key and its public JWK.
struct Signer {
    kid: String,
    alg: Algorithm,
    encoding: EncodingKey,
    jwk: serde_json::Value,
}

fn ec_signer(kid: &str) -> Signer {
    let pair = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key");
    let point = pair.public_key_raw(); // 0x04 || x || y
    Signer {
        kid: kid.into(),
        alg: Algorithm::ES256,
        encoding: EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).expect("pem"),
        jwk: serde_json::json!({ "kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256", "use": "sig",
            "x": b64(&point[1..33]), "y": b64(&point[33..65]) }),
    }
}

fn ed_signer(kid: &str) -> Signer {
    let pair = KeyPair::generate_for(&PKCS_ED25519).expect("key");
    Signer {
        kid: kid.into(),
        alg: Algorithm::EdDSA,
        encoding: EncodingKey::from_ed_pem(pair.serialize_pem().as_bytes()).expect("pem"),
        jwk: serde_json::json!({ "kty": "OKP", "crv": "Ed25519", "kid": kid, "alg": "EdDSA", "use": "sig",
            "x": b64(pair.public_key_raw()) }),
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn token(signer: &Signer, claims: serde_json::Value) -> String {
    let mut header = Header::new(signer.alg);
    header.kid = Some(signer.kid.clone());
    encode(&header, &claims, &signer.encoding).expect("sign")
}

fn claims(extra: serde_json::Value) -> serde_json::Value {
    let mut base = serde_json::json!({ "iss": "https://issuer.test", "aud": "orders-api", "sub": "user-42",
        "exp": now() + 300, "scope": "orders:read profile" });
    if let (Some(base), Some(extra)) = (base.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            base.insert(k.clone(), v.clone());
        }
    }
    base
}

/// A JWKS endpoint serving whatever keys the test puts in, counting fetches.
async fn jwks_server(
    keys: Arc<Mutex<Vec<serde_json::Value>>>,
    fetches: Arc<AtomicUsize>,
) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let keys = Arc::clone(&keys);
            let fetches = Arc::clone(&fetches);
            tokio::spawn(async move {
                let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let keys = Arc::clone(&keys);
                    let fetches = Arc::clone(&fetches);
                    async move {
                        fetches.fetch_add(1, Ordering::SeqCst);
                        let body = if req.uri().path() == "/garbage" {
                            "{ not json".to_string()
                        } else {
                            serde_json::json!({ "keys": *keys.lock() }).to_string()
                        };
                        Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from(body))))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn jwks_tokens_are_checked_and_keys_rotate() {
    let first = ec_signer("k1");
    let keys = Arc::new(Mutex::new(vec![first.jwk.clone()]));
    let fetches = Arc::new(AtomicUsize::new(0));
    let jwks = jwks_server(Arc::clone(&keys), Arc::clone(&fetches)).await;
    let up = mirror().await;
    let routes = format!(
        r#"
[[routes]]
name = "orders"
upstream = "app"
auth = {{ methods = ["jwt", "api_key"], scopes = ["orders:read"], jwt = {{ jwks_url = "http://{jwks}/jwks", issuer = "https://issuer.test", audience = ["orders-api"], algorithms = ["ES256", "EdDSA"], leeway = "5s", required_claims = ["sub"] }} }}
"#
    );
    let setup = gateway(store().await, Arc::new(LocalState::default()), up, &routes).await;
    let bearer = |t: &str| format!("Bearer {t}");

    let ok = get(
        setup.addr,
        "/",
        &[(
            "authorization",
            &bearer(&token(&first, claims(serde_json::json!({})))),
        )],
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.body["x-rampart-consumer"], "user-42");
    assert_eq!(ok.body["x-rampart-scopes"], "orders:read profile");
    assert!(
        ok.body.get("authorization").is_none(),
        "the token does not travel upstream"
    );

    for (case, bad) in [
        ("expired", claims(serde_json::json!({ "exp": now() - 60 }))),
        (
            "not yet valid",
            claims(serde_json::json!({ "nbf": now() + 60 })),
        ),
        (
            "wrong issuer",
            claims(serde_json::json!({ "iss": "https://evil.test" })),
        ),
        (
            "wrong audience",
            claims(serde_json::json!({ "aud": "other-api" })),
        ),
        (
            "missing scope",
            claims(serde_json::json!({ "scope": "profile" })),
        ),
    ] {
        let status = get(
            setup.addr,
            "/",
            &[("authorization", &bearer(&token(&first, bad)))],
        )
        .await
        .status;
        assert!(status == 401 || status == 403, "{case}: {status}");
    }
    let mut no_sub = claims(serde_json::json!({}));
    no_sub.as_object_mut().map(|m| m.remove("sub"));
    assert_eq!(
        get(
            setup.addr,
            "/",
            &[("authorization", &bearer(&token(&first, no_sub)))]
        )
        .await
        .status,
        401
    );
    // Within the leeway an expired token still passes.
    let skewed = token(&first, claims(serde_json::json!({ "exp": now() - 2 })));
    assert_eq!(
        get(setup.addr, "/", &[("authorization", &bearer(&skewed))])
            .await
            .status,
        200
    );
    // A token signed by an unknown key.
    let stranger = ec_signer("k1");
    assert_eq!(
        get(
            setup.addr,
            "/",
            &[(
                "authorization",
                &bearer(&token(&stranger, claims(serde_json::json!({}))))
            )]
        )
        .await
        .status,
        401
    );
    assert_eq!(
        get(setup.addr, "/", &[("authorization", "Bearer not.a.jwt")])
            .await
            .status,
        401
    );

    // The issuer rotates to a new key: an unknown kid triggers one refetch.
    let second = ed_signer("k2");
    keys.lock().push(second.jwk.clone());
    tokio::time::sleep(std::time::Duration::from_millis(10_100)).await; // past the refresh interval
    let before = fetches.load(Ordering::SeqCst);
    let rotated = token(&second, claims(serde_json::json!({})));
    assert_eq!(
        get(setup.addr, "/", &[("authorization", &bearer(&rotated))])
            .await
            .status,
        200
    );
    assert_eq!(fetches.load(Ordering::SeqCst), before + 1);
    // Unknown kids do not hammer the JWKS endpoint.
    let unknown = ed_signer("k9");
    for _ in 0..5 {
        assert_eq!(
            get(
                setup.addr,
                "/",
                &[(
                    "authorization",
                    &bearer(&token(&unknown, claims(serde_json::json!({}))))
                )]
            )
            .await
            .status,
            401
        );
    }
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        before + 1,
        "refetches are rate limited"
    );
}

#[tokio::test]
async fn a_jwks_that_is_down_or_garbage_lets_nothing_in() {
    let signer = ec_signer("k1");
    let fetches = Arc::new(AtomicUsize::new(0));
    let jwks = jwks_server(Arc::new(Mutex::new(vec![signer.jwk.clone()])), fetches).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead = closed.local_addr().expect("addr");
    drop(closed);
    let up = mirror().await;
    let routes = format!(
        r#"
[[routes]]
name = "garbage"
match = {{ path = "/garbage" }}
upstream = "app"
auth = {{ methods = ["jwt"], jwt = {{ jwks_url = "http://{jwks}/garbage" }} }}
[[routes]]
name = "down"
match = {{ path = "/down" }}
upstream = "app"
auth = {{ methods = ["jwt"], jwt = {{ jwks_url = "http://{dead}/jwks" }} }}
"#
    );
    let setup = gateway(store().await, Arc::new(LocalState::default()), up, &routes).await;
    let good = format!("Bearer {}", token(&signer, claims(serde_json::json!({}))));
    assert_eq!(
        get(setup.addr, "/garbage", &[("authorization", &good)])
            .await
            .status,
        401
    );
    let started = std::time::Instant::now();
    assert_eq!(
        get(setup.addr, "/down", &[("authorization", &good)])
            .await
            .status,
        401
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[tokio::test]
async fn rs256_with_a_pem_key() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/guard/fixtures");
    let private = std::fs::read(dir.join("rsa-test-private.pem")).expect("fixture");
    let signer = Signer {
        kid: "rsa".into(),
        alg: Algorithm::RS256,
        encoding: EncodingKey::from_rsa_pem(&private).expect("pem"),
        jwk: serde_json::Value::Null,
    };
    let up = mirror().await;
    let routes = format!(
        r#"
[[routes]]
name = "pem"
upstream = "app"
auth = {{ methods = ["jwt"], jwt = {{ public_key_pem = "{}", algorithms = ["RS256"] }} }}
"#,
        dir.join("rsa-test-public.pem").display()
    );
    let setup = gateway(store().await, Arc::new(LocalState::default()), up, &routes).await;
    let good = format!("Bearer {}", token(&signer, claims(serde_json::json!({}))));
    assert_eq!(
        get(setup.addr, "/", &[("authorization", &good)])
            .await
            .status,
        200
    );
    // An ES256 token is refused on an RS256-only route.
    let es = format!(
        "Bearer {}",
        token(&ec_signer("x"), claims(serde_json::json!({})))
    );
    assert_eq!(
        get(setup.addr, "/", &[("authorization", &es)]).await.status,
        401
    );
}

/// Chosen claims reach the upstream (spoofed copies do not), a claim can key a rate
/// limit, and the upstream gets an assertion it can verify with the published JWKS.
#[tokio::test]
async fn claims_are_forwarded_limited_on_and_asserted() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/guard/fixtures");
    let private = std::fs::read(dir.join("rsa-test-private.pem")).expect("fixture");
    let signer = Signer {
        kid: "rsa".into(),
        alg: Algorithm::RS256,
        encoding: EncodingKey::from_rsa_pem(&private).expect("pem"),
        jwk: serde_json::Value::Null,
    };
    let up = mirror().await;
    let routes = format!(
        r#"
[[routes]]
name = "claims"
upstream = "app"
auth = {{ methods = ["jwt"], forward_claims = ["tenant", "level"], jwt = {{ public_key_pem = "{}", algorithms = ["RS256"] }}, assertion = {{ ttl = "30s", audience = "orders" }} }}
rate_limits = [{{ requests = 2, per = "1m", key = "claim:tenant" }}]
"#,
        dir.join("rsa-test-public.pem").display()
    );
    let setup = gateway(store().await, Arc::new(LocalState::default()), up, &routes).await;
    let bearer = |sub: &str, tenant: &str| {
        format!(
            "Bearer {}",
            token(
                &signer,
                claims(serde_json::json!({ "sub": sub, "tenant": tenant, "level": 3 }))
            )
        )
    };
    let first = get(
        setup.addr,
        "/",
        &[
            ("authorization", &bearer("alice", "acme")),
            ("x-rampart-claim-tenant", "spoofed"),
        ],
    )
    .await;
    assert_eq!(first.status, 200);
    assert_eq!(first.body["x-rampart-claim-tenant"], "acme");
    assert_eq!(first.body["x-rampart-claim-level"], "3");
    assert_eq!(first.body["x-rampart-consumer"], "alice");

    // The assertion verifies with the published key and names the principal.
    let assertion = first.body["x-rampart-assertion"]
        .as_str()
        .expect("assertion sent");
    let jwks: jsonwebtoken::jwk::JwkSet =
        serde_json::from_value(setup.guards.assertion_jwks()).expect("jwks");
    let kid = jsonwebtoken::decode_header(assertion)
        .expect("header")
        .kid
        .expect("kid");
    let jwk = jwks.find(&kid).expect("published key");
    let mut validation = jsonwebtoken::Validation::new(Algorithm::EdDSA);
    validation.set_audience(&["orders"]);
    validation.set_issuer(&["rampart"]);
    let verified = jsonwebtoken::decode::<serde_json::Value>(
        assertion,
        &jsonwebtoken::DecodingKey::from_jwk(jwk).expect("key"),
        &validation,
    )
    .expect("the assertion verifies");
    assert_eq!(verified.claims["sub"], "alice");
    assert_eq!(verified.claims["claims"]["tenant"], "acme");
    let lifetime = verified.claims["exp"].as_i64().expect("exp")
        - verified.claims["iat"].as_i64().expect("iat");
    assert_eq!(lifetime, 30);
    // A tampered assertion does not verify.
    let mut tampered = assertion.to_string();
    tampered.pop();
    tampered.push(if assertion.ends_with('A') { 'B' } else { 'A' });
    assert!(jsonwebtoken::decode::<serde_json::Value>(
        &tampered,
        &jsonwebtoken::DecodingKey::from_jwk(jwk).expect("key"),
        &validation,
    )
    .is_err());

    // The tenant's limit is shared by its users; another tenant has its own.
    for (sub, tenant, want) in [
        ("bob", "acme", 200),
        ("carol", "acme", 429),
        ("dave", "globex", 200),
    ] {
        let auth = bearer(sub, tenant);
        let status = get(setup.addr, "/", &[("authorization", &auth)])
            .await
            .status;
        assert_eq!(status, want, "{sub} of {tenant}");
    }
}
