//! The one error type every handler returns, and its JSON shape.
//!
//! A handler's error becomes `{"error": {"code", "message", "request_id"}}`. The
//! request id is filled in by the request-context middleware, which also gives the same
//! shape to errors raised outside handlers (unknown route, body too large, timeout, panic).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// The error envelope of every non-2xx JSON answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorEnvelope {
    pub error: ErrorBody,
}

/// What went wrong, in words safe to show a client.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable machine-readable code, e.g. `not_found`.
    pub code: String,
    /// Human-readable explanation; never carries SQL, paths or stack traces.
    pub message: String,
    /// The id of the request, also sent in `x-request-id` and present in the server's logs.
    pub request_id: String,
}

/// Attached to error responses so the middleware can render them with the request id.
#[derive(Debug, Clone)]
pub(crate) struct ErrorPayload {
    pub code: &'static str,
    pub message: String,
}

/// An error answered to the client. Client variants carry a safe message; `Internal`
/// carries the cause, which is logged and never sent.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("authentication required")]
    Unauthorized,
    #[error("not allowed")]
    Forbidden,
    #[error("not found")]
    NotFound,
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("{message}")]
    Unprocessable { code: &'static str, message: String },
    #[error("{message}")]
    Unavailable { code: &'static str, message: String },
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    /// Wraps any failure the client cannot act on.
    pub fn internal(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        ApiError::Internal(e.into())
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            code,
            message: message.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn payload(&self) -> ErrorPayload {
        let (code, message): (&'static str, String) = match self {
            ApiError::BadRequest { code, message }
            | ApiError::Conflict { code, message }
            | ApiError::Unprocessable { code, message }
            | ApiError::Unavailable { code, message } => (code, message.clone()),
            ApiError::Unauthorized => ("unauthorized", self.to_string()),
            ApiError::Forbidden => ("forbidden", self.to_string()),
            ApiError::NotFound => ("not_found", self.to_string()),
            ApiError::Internal(_) => ("internal", "an internal error occurred".into()),
        };
        ErrorPayload { code, message }
    }
}

impl From<frontdesk_store::StoreError> for ApiError {
    fn from(e: frontdesk_store::StoreError) -> Self {
        ApiError::internal(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(cause) = &self {
            tracing::error!(error = %error_chain(cause.as_ref()), "internal error");
        }
        let mut response = self.status().into_response();
        response.extensions_mut().insert(self.payload());
        response
    }
}

/// The generic answer for an error status that no handler described.
pub(crate) fn payload_for_status(status: StatusCode) -> ErrorPayload {
    let (code, message) = match status {
        StatusCode::NOT_FOUND => ("not_found", "no such resource"),
        StatusCode::METHOD_NOT_ALLOWED => ("method_not_allowed", "method not allowed on this path"),
        StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", "the request body is too large"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "unsupported_media_type",
            "the request body must be application/json",
        ),
        StatusCode::REQUEST_TIMEOUT => ("request_timeout", "the request took too long"),
        StatusCode::SERVICE_UNAVAILABLE => ("unavailable", "the service is unavailable"),
        StatusCode::UNAUTHORIZED => ("unauthorized", "authentication required"),
        StatusCode::FORBIDDEN => ("forbidden", "not allowed"),
        StatusCode::TOO_MANY_REQUESTS => ("rate_limited", "too many requests"),
        s if s.is_server_error() => ("internal", "an internal error occurred"),
        _ => ("bad_request", "the request is not valid"),
    };
    ErrorPayload {
        code,
        message: message.into(),
    }
}

/// "outer: middle: inner", for logs.
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}
