//! The fake Resumable Upload API, and the check that a template's media header names a
//! file uploaded through it.
//!
//! Meta's wire format: `POST /{app-id}/uploads?file_name=…&file_length=…&file_type=…` opens
//! a session and answers `{"id": "upload:<session>?sig=<signature>"}`; `POST
//! /upload:<session>?sig=…` with `Authorization: OAuth <token>` and a `file_offset` header
//! carries bytes from that offset, and once every declared byte has arrived answers
//! `{"h": "<file handle>"}`; `GET /upload:<session>?sig=…` answers `{"id", "file_offset"}`,
//! where an interrupted upload resumes. A chunk that does not complete the file is answered
//! like that `GET` (Meta does not document this case). A template whose IMAGE, VIDEO or
//! DOCUMENT header has no handle of a completed upload of a fitting type is refused with
//! Meta's `(#100) Invalid parameter`.

use super::graph::{GraphResult, MetaError, check_version};
use super::{now_ms, random_secret};
use crate::AppState;
use axum::Json;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use frontdesk_store::{SimNumber, SimUpload, TenantCtx};
use serde::Deserialize;
use serde_json::{Value, json};

/// The file types Meta's Resumable Upload API takes.
const UPLOAD_TYPES: [&str; 5] = [
    "application/pdf",
    "image/jpeg",
    "image/jpg",
    "image/png",
    "video/mp4",
];

fn invalid(details: impl Into<String>) -> MetaError {
    MetaError::new(StatusCode::BAD_REQUEST, 100, "(#100) Invalid parameter").details(details)
}

/// The query of `POST /{app-id}/uploads`.
#[derive(Deserialize)]
pub(crate) struct StartUpload {
    file_name: Option<String>,
    file_length: Option<String>,
    file_type: Option<String>,
}

/// The `sig` of a session URL.
#[derive(Deserialize)]
pub(crate) struct SessionQuery {
    pub(crate) sig: Option<String>,
}

/// The channel's Meta app id must be the path's: uploads belong to an app.
async fn check_app(
    state: &AppState,
    ctx: &TenantCtx,
    number: &SimNumber,
    app_id: &str,
) -> GraphResult<()> {
    let mut tx = state.store().begin_read(ctx).await?;
    let channel = tx.channel(number.channel_id).await?;
    tx.commit().await?;
    if channel.app_id.as_deref() == Some(app_id) {
        Ok(())
    } else {
        Err(MetaError::no_such_object(app_id))
    }
}

/// `POST /{app-id}/uploads`: opens an upload session for a declared file.
pub(crate) async fn start(
    state: &AppState,
    ctx: TenantCtx,
    number: SimNumber,
    version: &str,
    app_id: &str,
    q: StartUpload,
) -> GraphResult<Json<Value>> {
    check_version(version)?;
    check_app(state, &ctx, &number, app_id).await?;
    let file_name = q
        .file_name
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| MetaError::required("file_name"))?;
    if file_name.chars().count() > 255 || file_name.contains(['/', '\\']) {
        return Err(invalid(
            "file_name is a file name of at most 255 characters",
        ));
    }
    let file_type = q
        .file_type
        .map(|t| t.trim().to_ascii_lowercase())
        .ok_or_else(|| MetaError::required("file_type"))?;
    if !UPLOAD_TYPES.contains(&file_type.as_str()) {
        return Err(invalid(format!(
            "file_type must be one of {}",
            UPLOAD_TYPES.join(", ")
        )));
    }
    let file_length: i64 = q
        .file_length
        .ok_or_else(|| MetaError::required("file_length"))?
        .trim()
        .parse()
        .map_err(|_| invalid("file_length is the file's size in bytes"))?;
    let canonical = if file_type == "image/jpg" {
        "image/jpeg"
    } else {
        file_type.as_str()
    };
    let (_, max) = frontdesk_whatsapp::media_limit(canonical).ok_or_else(MetaError::internal)?;
    if file_length <= 0 || file_length as u64 > max as u64 {
        return Err(invalid(format!(
            "file_length is 1 to {max} bytes for {file_type}"
        )));
    }
    let session = SimUpload {
        id: format!("upload:{}", random_secret(24)),
        channel_id: number.channel_id,
        sig: random_secret(12),
        file_name,
        file_type,
        file_length,
        file_offset: 0,
        bytes: Vec::new(),
        handle: None,
        created_ms: now_ms(state),
    };
    let mut tx = state.store().begin(&ctx).await?;
    tx.insert_sim_upload(&session).await?;
    tx.commit().await?;
    Ok(Json(
        json!({ "id": format!("{}?sig={}", session.id, session.sig) }),
    ))
}

/// The session a URL names, for this number, with its signature checked.
async fn session(
    state: &AppState,
    ctx: &TenantCtx,
    number: &SimNumber,
    id: &str,
    sig: Option<&str>,
) -> GraphResult<SimUpload> {
    let mut tx = state.store().begin_read(ctx).await?;
    let found = tx.sim_upload(id).await?;
    tx.commit().await?;
    let s = found
        .filter(|s| s.channel_id == number.channel_id)
        .ok_or_else(|| MetaError::no_such_object(id))?;
    let sig_ok =
        sig.is_some_and(|g| subtle::ConstantTimeEq::ct_eq(g.as_bytes(), s.sig.as_bytes()).into());
    if !sig_ok {
        return Err(invalid(
            "the upload session's signature (sig) is missing or wrong",
        ));
    }
    Ok(s)
}

/// `GET /upload:<session>`: where the upload stands.
pub(crate) async fn status(
    state: &AppState,
    ctx: TenantCtx,
    number: SimNumber,
    id: &str,
    q: SessionQuery,
) -> GraphResult<Json<Value>> {
    let s = session(state, &ctx, &number, id, q.sig.as_deref()).await?;
    Ok(Json(
        json!({ "id": format!("{}?sig={}", s.id, s.sig), "file_offset": s.file_offset }),
    ))
}

/// `POST /upload:<session>`: bytes from `file_offset` on.
pub(crate) async fn chunk(
    state: &AppState,
    ctx: TenantCtx,
    number: SimNumber,
    id: &str,
    q: SessionQuery,
    headers: &HeaderMap,
    body: Bytes,
) -> GraphResult<Json<Value>> {
    let s = session(state, &ctx, &number, id, q.sig.as_deref()).await?;
    let offset: i64 = headers
        .get("file_offset")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| MetaError::required("file_offset"))?
        .trim()
        .parse()
        .map_err(|_| invalid("file_offset is a byte offset"))?;
    if let Some(h) = &s.handle {
        // Complete already: the same answer again (a retried last chunk).
        return Ok(Json(json!({ "h": h })));
    }
    if offset != s.file_offset {
        return Err(invalid(format!(
            "file_offset {offset} is not where the upload stands ({})",
            s.file_offset
        )));
    }
    if body.is_empty() || offset + body.len() as i64 > s.file_length {
        return Err(invalid(format!(
            "the chunk must carry 1 to {} bytes (file_length {})",
            s.file_length - offset,
            s.file_length
        )));
    }
    let mut bytes = s.bytes;
    bytes.extend_from_slice(&body);
    let complete = bytes.len() as i64 == s.file_length;
    if complete && !looks_like(&s.file_type, &bytes) {
        return Err(invalid(format!(
            "the file is not a valid {} file",
            s.file_type
        )));
    }
    let handle = complete.then(|| new_handle(state, &s.file_type));
    let mut tx = state.store().begin(&ctx).await?;
    let recorded = tx
        .advance_sim_upload(&s.id, offset, &bytes, handle.as_deref())
        .await?;
    tx.commit().await?;
    if !recorded {
        return Err(invalid(
            "file_offset is not where the upload stands (another chunk arrived first)",
        ));
    }
    Ok(Json(match handle {
        Some(h) => json!({ "h": h }),
        None => json!({ "id": format!("{}?sig={}", s.id, s.sig), "file_offset": bytes.len() }),
    }))
}

/// A file handle in Meta's shape: `4::<base64 type>:<opaque>:e:<expiry>:<opaque>`.
fn new_handle(state: &AppState, file_type: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(file_type);
    let expires = now_ms(state) / 1000 + 30 * 24 * 3600;
    format!(
        "4::{b64}:{}:e:{expires}:{}",
        random_secret(24),
        random_secret(12)
    )
}

/// Whether the bytes start as a file of this type does (Meta processes what it receives).
fn looks_like(file_type: &str, b: &[u8]) -> bool {
    match file_type {
        "image/jpeg" | "image/jpg" => b.starts_with(&[0xFF, 0xD8, 0xFF]),
        "image/png" => b.starts_with(b"\x89PNG\r\n\x1a\n"),
        "application/pdf" => b.starts_with(b"%PDF-"),
        "video/mp4" => b.len() >= 12 && &b[4..8] == b"ftyp",
        _ => false,
    }
}

/// The upload types a header format's sample may be.
fn fits(format: &str, file_type: &str) -> bool {
    match format {
        "IMAGE" => matches!(file_type, "image/jpeg" | "image/jpg" | "image/png"),
        "VIDEO" => file_type == "video/mp4",
        "DOCUMENT" => file_type == "application/pdf",
        _ => false,
    }
}

/// Every IMAGE, VIDEO or DOCUMENT header (the template's and each carousel card's) must
/// name, in `example.header_handle`, the handle of a completed upload of this number's app
/// whose type fits the format; otherwise Meta's `(#100) Invalid parameter`.
pub(crate) async fn check_media_headers(
    state: &AppState,
    ctx: &TenantCtx,
    number: &SimNumber,
    components: &Value,
) -> GraphResult<()> {
    let mut headers: Vec<&Value> = Vec::new();
    for c in components.as_array().into_iter().flatten() {
        let kind = c.get("type").and_then(Value::as_str).unwrap_or_default();
        if kind.eq_ignore_ascii_case("header") {
            headers.push(c);
        } else if kind.eq_ignore_ascii_case("carousel") {
            let cards = c
                .get("cards")
                .and_then(Value::as_array)
                .into_iter()
                .flatten();
            for card in cards {
                let parts = card.get("components").and_then(Value::as_array);
                headers.extend(parts.into_iter().flatten().filter(|p| {
                    p.get("type")
                        .and_then(Value::as_str)
                        .is_some_and(|t| t.eq_ignore_ascii_case("header"))
                }));
            }
        }
    }
    for h in headers {
        let format = h
            .get("format")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_ascii_uppercase();
        if !matches!(format.as_str(), "IMAGE" | "VIDEO" | "DOCUMENT") {
            continue;
        }
        let refuse = || {
            invalid(format!(
                "a {format} header needs example.header_handle: the handle of a {} file uploaded with the Resumable Upload API (POST /{{app-id}}/uploads)",
                format.to_ascii_lowercase()
            ))
        };
        let handles = h
            .get("example")
            .and_then(|e| e.get("header_handle"))
            .and_then(Value::as_array)
            .ok_or_else(refuse)?;
        let [Value::String(handle)] = handles.as_slice() else {
            return Err(refuse());
        };
        let mut tx = state.store().begin_read(ctx).await?;
        let upload = tx.sim_upload_by_handle(handle).await?;
        tx.commit().await?;
        match upload {
            Some(u) if u.channel_id == number.channel_id && fits(&format, &u.file_type) => {}
            _ => return Err(refuse()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_recognised_by_their_first_bytes() {
        assert!(looks_like("image/png", b"\x89PNG\r\n\x1a\n...."));
        assert!(looks_like("image/jpeg", &[0xFF, 0xD8, 0xFF, 0xE0]));
        assert!(looks_like("application/pdf", b"%PDF-1.7"));
        assert!(looks_like("video/mp4", b"\0\0\0\x18ftypmp42...."));
        assert!(!looks_like("image/png", b"GIF89a"));
        assert!(!looks_like("application/pdf", b"<html>"));
        assert!(fits("IMAGE", "image/png") && !fits("IMAGE", "video/mp4"));
        assert!(fits("DOCUMENT", "application/pdf") && !fits("VIDEO", "image/jpeg"));
    }
}
