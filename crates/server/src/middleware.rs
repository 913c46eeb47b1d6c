//! Middleware every response passes through: request ids, logging, metrics, the error
//! envelope, and security headers.

use crate::AppState;
use crate::error::{ErrorBody, ErrorEnvelope, ErrorPayload, payload_for_status};
use crate::settings::HstsPolicy;
use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use std::time::Instant;
use tracing::Instrument;

pub(crate) static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The id of the current request, available to handlers as an extension.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Accepts a caller's request id only if it is short and plain, so it cannot forge log
/// lines; otherwise makes a new one.
fn request_id_for(headers: &HeaderMap) -> String {
    headers
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        })
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string())
}

fn method_label(m: &axum::http::Method) -> &'static str {
    match m.as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        _ => "OTHER",
    }
}

/// Gives each request an id and a span (so every log line carries the id), records
/// metrics, and renders every error as the JSON envelope with that id.
pub(crate) async fn request_context(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let id = request_id_for(req.headers());
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = method_label(req.method());
    req.extensions_mut().insert(RequestId(id.clone()));
    // A browser asking for a page gets errors as a page; the API always gets JSON.
    let wants_html = !req.uri().path().starts_with("/api/")
        && req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/html"));

    let span = tracing::info_span!("request", request_id = %id, method, route = %route);
    async move {
        let response = next.run(req).await;
        let response = render_error(response, &id, wants_html);
        let status = response.status();
        let took = started.elapsed();
        if status.is_server_error() {
            tracing::error!(
                status = status.as_u16(),
                latency_ms = took.as_millis() as u64,
                "request failed"
            );
        } else {
            tracing::info!(
                status = status.as_u16(),
                latency_ms = took.as_millis() as u64,
                "request finished"
            );
        }
        state
            .metrics()
            .record_request(&route, method, status.as_u16(), took);
        let mut response = response;
        if let Ok(v) = HeaderValue::from_str(&id) {
            response.headers_mut().insert(X_REQUEST_ID.clone(), v);
        }
        response
    }
    .instrument(span)
    .await
}

/// Replaces the body of an error response with the JSON envelope, unless a handler
/// already produced a JSON body of its own.
fn render_error(response: Response, request_id: &str, wants_html: bool) -> Response {
    let status = response.status();
    let is_html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
    if is_html {
        return response;
    }
    let payload = response.extensions().get::<ErrorPayload>().cloned();
    let payload = match payload {
        Some(p) => p,
        None if status.is_client_error() || status.is_server_error() => {
            let is_json = response
                .headers()
                .get(header::CONTENT_TYPE)
                .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
            if is_json {
                return response;
            }
            payload_for_status(status)
        }
        None => return response,
    };
    if wants_html {
        let (mut parts, _old_body) = response.into_parts();
        let page = crate::web::error_page_html(status, &payload.message, request_id);
        parts.headers.remove(header::CONTENT_LENGTH);
        parts.headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        return Response::from_parts(parts, Body::from(page));
    }
    let envelope = ErrorEnvelope {
        error: ErrorBody {
            code: payload.code.to_owned(),
            message: payload.message,
            request_id: request_id.to_owned(),
        },
    };
    let body = serde_json::to_vec(&envelope).unwrap_or_default();
    let (mut parts, _old_body) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, Body::from(body))
}

const CSP: &str = "default-src 'self'; frame-ancestors 'none'; object-src 'none'; base-uri 'none'; form-action 'self'";

/// Security headers on every response, errors included.
pub(crate) async fn security_headers(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let forwarded_https = req
        .headers()
        .get("x-forwarded-proto")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
    let hsts = match state.settings().hsts {
        HstsPolicy::Never => false,
        HstsPolicy::Always => true,
        HstsPolicy::WhenForwardedHttps => forwarded_https,
    };
    let mut response = next.run(req).await;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Not `no-referrer`: under it browsers send `Origin: null` with our own form posts,
    // which the CSRF guard must refuse. `same-origin` still tells other sites nothing.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        HeaderName::from_static("permissions-policy"),
        HeaderValue::from_static("camera=(), microphone=(), geolocation=()"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if hsts {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
    response
}
