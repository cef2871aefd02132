//! Request ids, the admin-token check, and JSON bodies with field-level errors.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::{to_bytes, Body, Bytes};
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use rampart_store::{AdminToken, AdminTokenStore, Role};
use serde::de::DeserializeOwned;

use crate::problem::{ApiError, FieldError};
use crate::AdminState;

/// Largest admin request body.
pub const MAX_BODY: usize = 64 * 1024;

/// The request id of an admin request.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Gives every admin request an id (kept from `x-request-id` when sane), echoes it in
/// the response, and writes it into problem+json bodies.
pub async fn request_id(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(|| format!("{:032x}", rand::random::<u128>()));
    request.extensions_mut().insert(RequestId(id.clone()));
    let mut response = next.run(request).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    if !is_problem {
        return response;
    }
    let (parts, body) = response.into_parts();
    let bytes = to_bytes(body, MAX_BODY).await.unwrap_or_default();
    let mut json: serde_json::Value =
        serde_json::from_slice(&bytes).unwrap_or_else(|_| serde_json::json!({}));
    json["request_id"] = serde_json::Value::String(id);
    let mut parts = parts;
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(json.to_string()))
}

/// The authenticated caller of an admin endpoint.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The token used.
    pub token: AdminToken,
    /// The request id.
    pub request_id: String,
    /// The client's address.
    pub source_ip: Option<String>,
}

impl Caller {
    /// Refuses with 403 unless the caller has at least `role`
    /// (auditor < operator < admin).
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.token.role >= role {
            Ok(())
        } else {
            Err(ApiError::forbidden(role.as_str()))
        }
    }

    /// The actor name in audit events.
    pub fn actor(&self) -> String {
        format!("token:{} ({})", self.token.id, self.token.name)
    }
}

impl FromRequestParts<Arc<AdminState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AdminState>,
    ) -> Result<Self, ApiError> {
        let request_id = parts
            .extensions
            .get::<RequestId>()
            .map(|r| r.0.clone())
            .unwrap_or_default();
        let source_ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip().to_string());
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(ApiError::unauthorized)?;
        let token = state
            .store
            .verify_token(presented)
            .await?
            .ok_or_else(ApiError::unauthorized)?;
        Ok(Caller {
            token,
            request_id,
            source_ip,
        })
    }
}

/// A JSON request body; errors name the offending field.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        require_json(request.headers())?;
        let bytes = Bytes::from_request(request, state).await.map_err(|e| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body-too-large",
                format!("the body could not be read: {e}"),
            )
        })?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// Refuses (415) a body whose `Content-Type` is not `application/json`. Parameters
/// may follow (`; charset=utf-8`), but a charset other than UTF-8 is refused; other
/// JSON media types (`+json` suffixes such as `application/merge-patch+json`) are not
/// accepted: the API defines none.
pub fn require_json(headers: &axum::http::HeaderMap) -> Result<(), ApiError> {
    let refused = || {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "send the body as application/json (UTF-8)",
        )
    };
    let value = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(refused)?;
    let mut parts = value.split(';');
    let essence = parts.next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return Err(refused());
    }
    for parameter in parts {
        let Some((name, value)) = parameter.split_once('=') else {
            return Err(refused());
        };
        let value = value.trim().trim_matches('"');
        if name.trim().eq_ignore_ascii_case("charset") && !value.eq_ignore_ascii_case("utf-8") {
            return Err(refused());
        }
    }
    Ok(())
}

/// Parses a JSON body: exactly one JSON value, with nothing but whitespace after it;
/// the error names the offending field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize::<_, T>(&mut deserializer).map_err(|e| {
        let field = e.path().to_string();
        let message = e.into_inner().to_string();
        ApiError {
            errors: vec![FieldError {
                field: if field == "." { String::new() } else { field },
                message: message.clone(),
            }],
            ..ApiError::new(StatusCode::BAD_REQUEST, "malformed-body", message)
        }
    })?;
    deserializer.end().map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed-body",
            format!("only one JSON value is allowed: {e}"),
        )
    })?;
    Ok(value)
}

/// Query parameters; a malformed query is a 400 problem naming the parameter.
pub struct QueryParams<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> axum::extract::FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or("");
        let deserializer =
            serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize::<_, T>(deserializer)
            .map(QueryParams)
            .map_err(|e| {
                let field = e.path().to_string();
                let message = e.into_inner().to_string();
                ApiError {
                    errors: vec![FieldError {
                        field: if field == "." { String::new() } else { field },
                        message: message.clone(),
                    }],
                    ..ApiError::new(StatusCode::BAD_REQUEST, "malformed-query", message)
                }
            })
    }
}
