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
    /// 401 with a code the client can act on (e.g. `totp_required`).
    #[error("{message}")]
    UnauthorizedBecause { code: &'static str, message: String },
    #[error("the request body must be application/json")]
    UnsupportedMediaType,
    #[error("not allowed")]
    Forbidden,
    /// Refused for a reason the caller can act on.
    #[error("{message}")]
    Denied { code: &'static str, message: String },
    #[error("the request body is too large")]
    PayloadTooLarge,
    #[error("too many attempts; try again later")]
    TooManyRequests { retry_after_secs: u64 },
    #[error("not found")]
    NotFound,
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("{message}")]
    Unprocessable { code: &'static str, message: String },
    #[error("{message}")]
    Unavailable { code: &'static str, message: String },
    /// An upstream provider (Meta, Whapi) refused or did not answer.
    #[error("{message}")]
    BadGateway { message: String },
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    /// Wraps any failure the client cannot act on.
    pub fn internal(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        ApiError::Internal(e.into())
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Denied {
            code,
            message: message.into(),
        }
    }

    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Unprocessable {
            code,
            message: message.into(),
        }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Conflict {
            code,
            message: message.into(),
        }
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
            ApiError::Unauthorized | ApiError::UnauthorizedBecause { .. } => {
                StatusCode::UNAUTHORIZED
            }
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Forbidden | ApiError::Denied { .. } => StatusCode::FORBIDDEN,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::BadGateway { .. } => StatusCode::BAD_GATEWAY,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn payload(&self) -> ErrorPayload {
        let (code, message): (&'static str, String) = match self {
            ApiError::BadRequest { code, message }
            | ApiError::Conflict { code, message }
            | ApiError::Unprocessable { code, message }
            | ApiError::Unavailable { code, message }
            | ApiError::Denied { code, message }
            | ApiError::UnauthorizedBecause { code, message } => (code, message.clone()),
            ApiError::UnsupportedMediaType => ("unsupported_media_type", self.to_string()),
            ApiError::PayloadTooLarge => ("payload_too_large", self.to_string()),
            ApiError::TooManyRequests { .. } => ("rate_limited", self.to_string()),
            ApiError::Unauthorized => ("unauthorized", self.to_string()),
            ApiError::Forbidden => ("forbidden", self.to_string()),
            ApiError::NotFound => ("not_found", self.to_string()),
            ApiError::BadGateway { message } => ("provider_error", message.clone()),
            ApiError::Internal(_) => ("internal", "an internal error occurred".into()),
        };
        ErrorPayload { code, message }
    }
}

impl From<frontdesk_store::StoreError> for ApiError {
    fn from(e: frontdesk_store::StoreError) -> Self {
        use frontdesk_store::StoreError;
        match e {
            StoreError::NotFound => ApiError::NotFound,
            StoreError::Conflict(code) => ApiError::Conflict {
                code,
                message: conflict_message(code).into(),
            },
            StoreError::Invalid(message) => ApiError::Unprocessable {
                code: "invalid",
                message,
            },
            StoreError::InvalidFields(problems) => ApiError::Unprocessable {
                code: "invalid_fields",
                message: frontdesk_store::audience::describe_problems(&problems),
            },
            other => ApiError::internal(other),
        }
    }
}

/// Words for the store's conflict codes.
fn conflict_message(code: &str) -> &'static str {
    match code {
        "outside_service_window" => {
            "the customer has not written in the last 24 hours: send an approved template instead"
        }
        "email_taken" => "an account with this email already exists; sign in instead",
        "slug_taken" => "this organisation address is taken",
        "last_admin" => "the organisation must keep at least one admin",
        "builtin_role" => "built-in roles cannot be changed or deleted",
        "role_in_use" => "members still hold this role",
        "role_name_taken" => "a role with this name exists",
        "team_name_taken" => "a team with this name exists",
        "already_a_member" => "this person is already a member",
        "invitation_for_another_email" => "this invitation was sent to another email address",
        "scope_exceeds_own_permissions" => "a key cannot have permissions you do not have",
        "totp_already_enabled" => "two-factor sign-in is already on; turn it off first",
        "channel_exists" => "a channel with this phone number id is already connected",
        "keyword_taken" => "another queue on this number has this keyword",
        "queue_name_taken" => "a queue with this name exists",
        "invalid_transition" => "the token's state does not allow this",
        "token_changed" => "the token changed meanwhile; reload and try again",
        "already_in_queue" => "the patient already holds a token in that queue",
        "reorder_no_room" => "no room at that place in the line; move a neighbour first",
        "label_exists" => "a label with this name exists",
        "shortcut_taken" => "a quick reply with this shortcut exists",
        "not_failed" => "only a failed outgoing message can be retried",
        "contact_exists" => "another contact has this phone number or WhatsApp user id",
        "field_key_taken" => "a field with this key exists",
        "too_many_fields" => "the organisation has the most custom fields allowed",
        "option_in_use" => {
            "contacts hold an option that would be removed; change their values first"
        }
        "tag_exists" => "a tag with this name exists",
        "too_many_tags" => "the tag catalogue is full",
        "own_export" => "a second person must approve an export; the requester cannot",
        "export_decided" => "this export request has already been decided",
        "export_needs_a_person" => "an export is approved by a person, not an API key",
        "export_not_approved" => "this export has not been approved",
        "import_started" => "this import has already been started",
        "erasure_pending" => "an erasure request for this contact is already pending",
        "erasure_not_pending" => "this erasure request was already executed or cancelled",
        "segment_name_taken" => "a segment with this name exists",
        "too_many_segments" => "the organisation has the most segments allowed",
        "campaign_state" => {
            "the campaign's state does not allow this (reload: it may have changed)"
        }
        "template_not_approved" => {
            "the campaign's template is not approved in its default language"
        }
        "too_many_campaigns" => "the organisation has the most campaigns allowed",
        "audience_importing" => {
            "the campaign's CSV file is still being imported; launch it once the review shows every row"
        }
        _ => "the request conflicts with the current state",
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(cause) = &self {
            tracing::error!(error = %error_chain(cause.as_ref()), "internal error");
        }
        let mut response = self.status().into_response();
        if let ApiError::TooManyRequests { retry_after_secs } = &self
            && let Ok(v) = axum::http::HeaderValue::from_str(&retry_after_secs.to_string())
        {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, v);
        }
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
