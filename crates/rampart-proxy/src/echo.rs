//! The built-in echo upstream (`builtin:echo`): answers with the request it received
//! as JSON, so a new user sees Rampart work before wiring their app.

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Request, Response, StatusCode};

use crate::body::{collect_limited, full, CollectError, ProxyBody};
use crate::error::{ErrorKind, ProxyError};

/// Largest request body the echo upstream reads.
pub const ECHO_BODY_LIMIT: usize = 1 << 20;

/// Answers `request` with a JSON description of it.
pub async fn respond(request: Request<ProxyBody>) -> Result<Response<ProxyBody>, ProxyError> {
    let (parts, body) = request.into_parts();
    let body = collect_limited(body, ECHO_BODY_LIMIT)
        .await
        .map_err(|e| match e {
            CollectError::TooLarge(_) => {
                ProxyError::new(ErrorKind::BodyTooLarge, "echo body over 1 MiB")
            }
            CollectError::Read(e) => ProxyError::new(ErrorKind::ClientBody, e.to_string()),
        })?;
    let mut headers = serde_json::Map::new();
    for (name, value) in &parts.headers {
        let value =
            serde_json::Value::String(String::from_utf8_lossy(value.as_bytes()).into_owned());
        match headers.get_mut(name.as_str()) {
            Some(serde_json::Value::Array(values)) => values.push(value),
            Some(existing) => *existing = serde_json::Value::Array(vec![existing.take(), value]),
            None => {
                headers.insert(name.as_str().to_string(), value);
            }
        }
    }
    let json = serde_json::json!({
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query(),
        "version": format!("{:?}", parts.version),
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
    });
    let mut response = Response::new(full(Bytes::from(json.to_string())));
    *response.status_mut() = StatusCode::OK;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(response)
}
