//! Admin API errors as RFC 9457 problem+json, with field-level details.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use rampart_store::StoreError;
use serde::Serialize;

/// One invalid field.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// JSON pointer-ish path of the field, such as `name` or `scopes[2]`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// The RFC 9457 problem document every admin error answers with.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// `urn:rampart:problem:<kind>`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary (the HTTP reason phrase).
    pub title: String,
    /// HTTP status.
    pub status: u16,
    /// What went wrong, safe to show.
    pub detail: String,
    /// The request id (also in `x-request-id`).
    pub request_id: String,
    /// Invalid fields, for validation failures.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

/// An admin API error.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Problem type slug.
    pub kind: &'static str,
    /// Human-readable detail (safe to show).
    pub detail: String,
    /// Field errors, for validation failures.
    pub errors: Vec<FieldError>,
}

impl ApiError {
    /// A new error.
    pub fn new(status: StatusCode, kind: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            detail: detail.into(),
            errors: Vec::new(),
        }
    }

    /// 401.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid admin token is required (Authorization: Bearer rat_…)",
        )
    }

    /// 403.
    pub fn forbidden(needed: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("this action needs the {needed} role"),
        )
    }

    /// 422 with field errors.
    pub fn invalid(errors: Vec<FieldError>) -> Self {
        Self {
            errors,
            ..Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation",
                "the request has invalid fields",
            )
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => Self::new(
                StatusCode::NOT_FOUND,
                "not-found",
                format!("{what} not found"),
            ),
            StoreError::Conflict(detail) => Self::new(StatusCode::CONFLICT, "conflict", detail),
            StoreError::VersionMismatch => Self::new(
                StatusCode::PRECONDITION_FAILED,
                "precondition-failed",
                "the resource changed since it was read (If-Match)",
            ),
            StoreError::Invalid(detail) => Self::new(StatusCode::CONFLICT, "invalid-state", detail),
            StoreError::Unavailable(detail) => {
                tracing::error!("store unavailable: {detail}");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store-unavailable",
                    "the store cannot be reached; try again",
                )
            }
            StoreError::Database(detail) | StoreError::Migration(detail) => {
                tracing::error!("store failure: {detail}");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Problem {
            kind: format!("urn:rampart:problem:{}", self.kind),
            title: self
                .status
                .canonical_reason()
                .unwrap_or("Error")
                .to_string(),
            status: self.status.as_u16(),
            detail: self.detail,
            // Filled in by the request-id middleware, which knows it for every response.
            request_id: String::new(),
            errors: self.errors,
        };
        let mut response = (
            self.status,
            serde_json::to_string(&body).unwrap_or_default(),
        )
            .into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"rampart-admin\""),
            );
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}
