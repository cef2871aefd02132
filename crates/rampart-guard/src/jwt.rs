//! JWT bearer tokens: signature (RS256, ES256, EdDSA, …) against keys from a JWKS URL or
//! a PEM file, and the `iss`/`aud`/`exp`/`nbf` checks with clock skew.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{decode, decode_header, DecodingKey, Validation};
use parking_lot::{Mutex, RwLock};
use rampart_config::{JwtKeys, JwtPolicy};
use rampart_proxy::phase::Principal;

/// JWKS documents are refetched for an unknown `kid` at most this often.
const REFRESH_INTERVAL: Duration = Duration::from_secs(10);
/// Largest JWKS document read.
const MAX_JWKS_BYTES: usize = 256 * 1024;
/// Longest claim value copied into a principal (longer ones are left out).
const MAX_CLAIM_BYTES: usize = 256;
/// Time allowed for one JWKS fetch.
const FETCH_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Default)]
struct KeySet {
    by_kid: HashMap<String, DecodingKey>,
    without_kid: Vec<DecodingKey>,
}

/// Checks JWTs for one route's policy.
pub struct JwtVerifier {
    policy: JwtPolicy,
    /// Claims copied into the principal (lower-case names).
    wanted_claims: Vec<String>,
    keys: RwLock<KeySet>,
    last_fetch: Mutex<Option<Instant>>,
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

/// Why a token was not accepted (for the log; the client sees 401).
#[derive(Debug)]
pub struct Rejected(pub String);

fn pem_key(pem: &[u8]) -> Option<DecodingKey> {
    DecodingKey::from_rsa_pem(pem)
        .or_else(|_| DecodingKey::from_ec_pem(pem))
        .or_else(|_| DecodingKey::from_ed_pem(pem))
        .ok()
}

impl JwtVerifier {
    /// A verifier for `policy`, copying `wanted_claims` into principals. A PEM key is
    /// read now; a JWKS on the first token.
    pub fn new(policy: JwtPolicy, wanted_claims: Vec<String>) -> Self {
        let mut keys = KeySet::default();
        if let JwtKeys::Pem(path) = &policy.keys {
            match std::fs::read(path).ok().and_then(|pem| pem_key(&pem)) {
                Some(key) => keys.without_kid.push(key),
                // Every token will be refused; the operator sees why.
                None => {
                    tracing::error!(file = %path.display(), "cannot load the JWT public key; JWTs will be refused")
                }
            }
        }
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
            .unwrap_or_else(|_| unreachable!("ring supports the default TLS versions"))
            .https_or_http()
            .enable_http1()
            .build();
        Self {
            policy,
            wanted_claims,
            keys: RwLock::new(keys),
            last_fetch: Mutex::new(None),
            client: Client::builder(TokioExecutor::new()).build(https),
        }
    }

    fn key_for(&self, kid: Option<&str>) -> Option<DecodingKey> {
        let keys = self.keys.read();
        match kid {
            Some(kid) => keys
                .by_kid
                .get(kid)
                .cloned()
                .or_else(|| keys.without_kid.first().cloned()),
            None => keys
                .without_kid
                .first()
                .cloned()
                .or_else(|| keys.by_kid.values().next().cloned()),
        }
    }

    /// Fetches the JWKS again unless that happened less than [`REFRESH_INTERVAL`] ago.
    async fn refresh(&self) {
        let JwtKeys::Jwks(url) = &self.policy.keys else {
            return;
        };
        {
            let mut last = self.last_fetch.lock();
            if last.is_some_and(|t| t.elapsed() < REFRESH_INTERVAL) {
                return;
            }
            *last = Some(Instant::now());
        }
        match self.fetch(url).await {
            Ok(set) => *self.keys.write() = set,
            Err(e) => tracing::warn!(
                url,
                "JWKS fetch failed, keeping the keys already known: {e}"
            ),
        }
    }

    async fn fetch(&self, url: &str) -> Result<KeySet, String> {
        let uri: http::Uri = url.parse().map_err(|e| format!("{e}"))?;
        let response = tokio::time::timeout(FETCH_TIMEOUT, self.client.get(uri))
            .await
            .map_err(|_| "timed out".to_string())?
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("status {}", response.status()));
        }
        let body = Limited::new(response.into_body(), MAX_JWKS_BYTES)
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        let set: JwkSet = serde_json::from_slice(&body).map_err(|e| format!("not a JWKS: {e}"))?;
        let mut keys = KeySet::default();
        for jwk in &set.keys {
            let Ok(key) = DecodingKey::from_jwk(jwk) else {
                continue;
            };
            match &jwk.common.key_id {
                Some(kid) => {
                    keys.by_kid.insert(kid.clone(), key);
                }
                None => keys.without_kid.push(key),
            }
        }
        Ok(keys)
    }

    /// The principal a valid token names.
    pub async fn verify(&self, token: &str) -> Result<Principal, Rejected> {
        let header = decode_header(token).map_err(|e| Rejected(format!("malformed token: {e}")))?;
        let alg_name = format!("{:?}", header.alg);
        if !self.policy.algorithms.contains(&alg_name) {
            return Err(Rejected(format!("algorithm {alg_name} not accepted")));
        }
        let kid = header.kid.as_deref();
        let key = match self.key_for(kid) {
            Some(key) => key,
            None => {
                self.refresh().await;
                self.key_for(kid)
                    .ok_or_else(|| Rejected("no key for this token".into()))?
            }
        };
        let mut validation = Validation::new(header.alg);
        validation.leeway = self.policy.leeway.as_secs();
        validation.validate_nbf = true;
        if let Some(issuer) = &self.policy.issuer {
            validation.set_issuer(&[issuer]);
        }
        if self.policy.audience.is_empty() {
            validation.validate_aud = false;
        } else {
            validation.set_audience(&self.policy.audience);
        }
        let claims =
            match decode::<serde_json::Map<String, serde_json::Value>>(token, &key, &validation) {
                Ok(data) => data.claims,
                Err(e)
                    if kid.is_some()
                        && matches!(
                            e.kind(),
                            jsonwebtoken::errors::ErrorKind::InvalidSignature
                        ) =>
                {
                    // The issuer may have rotated this kid: refresh once and retry.
                    self.refresh().await;
                    let key = self
                        .key_for(kid)
                        .ok_or_else(|| Rejected("no key for this token".into()))?;
                    decode::<serde_json::Map<String, serde_json::Value>>(token, &key, &validation)
                        .map_err(|e| Rejected(e.to_string()))?
                        .claims
                }
                Err(e) => return Err(Rejected(e.to_string())),
            };
        if let Some(missing) = self
            .policy
            .required_claims
            .iter()
            .find(|c| !claims.contains_key(c.as_str()))
        {
            return Err(Rejected(format!("claim {missing} missing")));
        }
        let subject = claims
            .get("sub")
            .and_then(|s| s.as_str())
            .unwrap_or("")
            .to_string();
        let scopes = match (claims.get("scope"), claims.get("scp")) {
            (Some(serde_json::Value::String(s)), _) => {
                s.split_whitespace().map(str::to_string).collect()
            }
            (_, Some(serde_json::Value::Array(items))) => items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            (_, Some(serde_json::Value::String(s))) => {
                s.split_whitespace().map(str::to_string).collect()
            }
            _ => Vec::new(),
        };
        let claims = self
            .wanted_claims
            .iter()
            .filter_map(|name| {
                let value = claims
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v)?;
                let text = match value {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Number(n) => n.to_string(),
                    serde_json::Value::Bool(b) => b.to_string(),
                    _ => return None,
                };
                (text.len() <= MAX_CLAIM_BYTES).then(|| (name.clone(), text))
            })
            .collect();
        Ok(Principal {
            consumer_id: subject,
            key_id: format!("jwt:{}", kid.unwrap_or("-")),
            scopes,
            claims,
            plan: None,
        })
    }
}
