//! The providers' webhook endpoints: `GET /webhooks/{key}` (Meta's subscription handshake)
//! and `POST /webhooks/{key}` (events).
//!
//! A post is answered 200 only after its raw body is committed to the durable inbox; every
//! refusal stores nothing. The order of checks: the key names a channel (404), the body fits
//! (413), the caller proves it holds the channel's secret (401: Meta's
//! `X-Hub-Signature-256`, or for Whapi the webhook secret as a bearer token), the body is
//! JSON at all (400). Unknown fields and event types are stored: the inbox worker keeps
//! them. See `docs/webhooks.md`.

pub(crate) mod ingest;
pub(crate) mod targets;

use crate::AppState;
use crate::auth::Access;
use crate::error::ApiError;
use crate::routes::RouteTableBuilder;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use frontdesk_store::{Provider, Stored, WebhookTarget};
use ingest::IngestError;
use secrecy::ExposeSecret;
use serde::Deserialize;
use subtle::ConstantTimeEq;
use targets::Cached;

/// Largest webhook body accepted. Meta's payloads are a few kilobytes; a batch of events
/// stays far below this.
pub const WEBHOOK_BODY_LIMIT: usize = 1024 * 1024;
/// Longest `hub.challenge` echoed back (Meta sends a short number).
const MAX_CHALLENGE: usize = 256;
/// Seconds a provider is asked to wait before retrying after a 503.
const RETRY_AFTER_SECS: &str = "5";

pub(crate) fn routes(b: RouteTableBuilder) -> RouteTableBuilder {
    // Public: the provider proves itself with the channel's secret, checked in the handler.
    b.other(
        Method::GET,
        "/webhooks/{key}",
        get(handshake),
        Access::Public,
    )
    .other(
        Method::POST,
        "/webhooks/{key}",
        post(receive),
        Access::Public,
    )
}

/// Meta's handshake query (`hub.mode=subscribe&hub.verify_token=…&hub.challenge=…`).
#[derive(Deserialize)]
struct Handshake {
    #[serde(rename = "hub.mode")]
    mode: Option<String>,
    #[serde(rename = "hub.verify_token")]
    verify_token: Option<String>,
    #[serde(rename = "hub.challenge")]
    challenge: Option<String>,
}

/// A 503 the provider should retry (Meta redelivers for days).
fn retry_later(code: &'static str, message: &str) -> Response {
    let mut r = ApiError::Unavailable {
        code,
        message: message.to_owned(),
    }
    .into_response();
    r.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from_static(RETRY_AFTER_SECS),
    );
    r
}

/// The channel the key names, from the cache or the store.
async fn target(state: &AppState, key: &str) -> Result<Option<WebhookTarget>, Response> {
    let generation = match state.webhook_targets().get(key) {
        Cached::Known(t) => return Ok(Some(t)),
        Cached::Unknown => return Ok(None),
        Cached::Miss(g) => g,
    };
    match state.store().webhook_target(key).await {
        Ok(found) => {
            // Malformed keys are refused without a query; caching them would only let
            // junk crowd the map.
            if found.is_some() || (key.starts_with("fdw_") && key.len() <= 100) {
                state.webhook_targets().put(key, generation, found.as_ref());
            }
            Ok(found)
        }
        Err(e) => {
            tracing::error!(error = %crate::error::error_chain(&e), "webhook channel lookup failed");
            Err(retry_later(
                "database_unavailable",
                "the channel could not be looked up; retry later",
            ))
        }
    }
}

fn ct_eq(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// Answers Meta's verification request with the challenge when the verify token matches.
async fn handshake(
    State(state): State<AppState>,
    Path(key): Path<String>,
    query: Result<Query<Handshake>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let t = match target(&state, &key).await {
        Ok(Some(t)) => t,
        Ok(None) => return ApiError::NotFound.into_response(),
        Err(r) => return r,
    };
    let Ok(Query(q)) = query else {
        return ApiError::forbidden("handshake_refused", "not a valid subscription request")
            .into_response();
    };
    let token_ok = match (&t.verify_token, &q.verify_token) {
        (Some(expected), Some(given)) => ct_eq(given, expected.expose_secret()),
        _ => false,
    };
    if q.mode.as_deref() != Some("subscribe") || !token_ok {
        state.metrics().record_webhook_rejected("handshake_refused");
        tracing::info!(channel = %t.channel, "webhook handshake refused");
        return ApiError::forbidden(
            "handshake_refused",
            "the mode is not `subscribe` or the verify token does not match",
        )
        .into_response();
    }
    let challenge = q.challenge.unwrap_or_default();
    if challenge.is_empty()
        || challenge.len() > MAX_CHALLENGE
        || challenge.chars().any(char::is_control)
    {
        return ApiError::bad_request(
            "invalid_challenge",
            format!("hub.challenge must be 1–{MAX_CHALLENGE} printable characters"),
        )
        .into_response();
    }
    tracing::info!(channel = %t.channel, "webhook subscription verified");
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        challenge,
    )
        .into_response()
}

/// Why a post is refused before storage; each is a metrics label.
#[derive(Debug, Clone, Copy)]
enum Refusal {
    SignatureMissing,
    SignatureMalformed,
    SignatureMismatch,
    BearerMissing,
    BearerMismatch,
    /// The channel has no secret to check against: nothing can be accepted for it.
    NoSecret,
}

impl Refusal {
    fn label(self) -> &'static str {
        match self {
            Refusal::SignatureMissing => "signature_missing",
            Refusal::SignatureMalformed => "signature_malformed",
            Refusal::SignatureMismatch => "signature_mismatch",
            Refusal::BearerMissing => "bearer_missing",
            Refusal::BearerMismatch => "bearer_mismatch",
            Refusal::NoSecret => "no_secret",
        }
    }
}

/// Checks that the post comes from the channel's provider.
fn authenticate(t: &WebhookTarget, headers: &HeaderMap, body: &[u8]) -> Result<(), Refusal> {
    let secret = t.app_secret.as_ref().ok_or(Refusal::NoSecret)?;
    match t.provider {
        Provider::Cloud => {
            let sig = headers
                .get("x-hub-signature-256")
                .map(|v| v.to_str().map_err(|_| Refusal::SignatureMalformed))
                .transpose()?;
            frontdesk_whatsapp::verify_meta(secret.expose_secret().as_bytes(), body, sig).map_err(
                |e| match e {
                    frontdesk_whatsapp::SignatureError::Missing => Refusal::SignatureMissing,
                    frontdesk_whatsapp::SignatureError::Malformed => Refusal::SignatureMalformed,
                    frontdesk_whatsapp::SignatureError::Mismatch => Refusal::SignatureMismatch,
                },
            )
        }
        // Whapi signs nothing; the admin sets the channel's webhook secret as a custom
        // `Authorization: Bearer` header in Whapi's webhook settings.
        Provider::Whapi => {
            let given = headers
                .get(header::AUTHORIZATION)
                .ok_or(Refusal::BearerMissing)?
                .to_str()
                .ok()
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::trim)
                .ok_or(Refusal::BearerMismatch)?;
            if ct_eq(given, secret.expose_secret()) {
                Ok(())
            } else {
                Err(Refusal::BearerMismatch)
            }
        }
    }
}

/// Reads the raw body, at most [`WEBHOOK_BODY_LIMIT`] bytes.
async fn read_body(body: Body) -> Result<bytes::Bytes, ApiError> {
    match axum::body::to_bytes(body, WEBHOOK_BODY_LIMIT).await {
        Ok(b) => Ok(b),
        Err(e) => {
            let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
            while let Some(s) = source {
                if s.is::<http_body_util::LengthLimitError>() {
                    return Err(ApiError::PayloadTooLarge);
                }
                source = s.source();
            }
            Err(ApiError::bad_request(
                "unreadable_body",
                "the request body could not be read",
            ))
        }
    }
}

/// Stores a provider's event after checking who sent it; 200 only once it is committed.
async fn receive(
    State(state): State<AppState>,
    Path(key): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let t = match target(&state, &key).await {
        Ok(Some(t)) => t,
        Ok(None) => {
            state.metrics().record_webhook_rejected("unknown_key");
            return ApiError::NotFound.into_response();
        }
        Err(r) => return r,
    };
    let body = match read_body(body).await {
        Ok(b) => b,
        Err(e) => {
            state
                .metrics()
                .record_webhook_rejected(if matches!(e, ApiError::PayloadTooLarge) {
                    "too_large"
                } else {
                    "unreadable"
                });
            tracing::info!(channel = %t.channel, "webhook body refused");
            return e.into_response();
        }
    };
    if let Err(refusal) = authenticate(&t, &headers, &body) {
        state.metrics().record_webhook_rejected(refusal.label());
        tracing::warn!(channel = %t.channel, reason = refusal.label(), "webhook refused: not from the channel's provider");
        return ApiError::UnauthorizedBecause {
            code: "invalid_signature",
            message: "the webhook is not signed with this channel's secret".into(),
        }
        .into_response();
    }
    // A cheap syntax check: a truncated or non-JSON body is the sender's bug, and storing
    // it would only park a row the worker must fail. Contents are the worker's business.
    if serde_json::from_slice::<serde::de::IgnoredAny>(&body).is_err() {
        state.metrics().record_webhook_rejected("invalid_json");
        tracing::warn!(channel = %t.channel, bytes = body.len(), "webhook refused: body is not JSON");
        return ApiError::bad_request("invalid_json", "the webhook body is not valid JSON")
            .into_response();
    }
    let bytes = body.len();
    match state.ingest().submit(t.ctx, t.channel, body).await {
        Ok(stored) => {
            tracing::debug!(channel = %t.channel, bytes, duplicate = matches!(stored, Stored::Duplicate), "webhook stored");
            StatusCode::OK.into_response()
        }
        Err(IngestError::Busy) => {
            tracing::warn!(channel = %t.channel, "webhook inbox queue full");
            retry_later("inbox_busy", "the webhook inbox is busy; retry later")
        }
        Err(IngestError::Database) => retry_later(
            "inbox_unavailable",
            "the webhook could not be stored; retry later",
        ),
    }
}
