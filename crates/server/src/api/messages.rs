//! Sending messages and reading them back: a send is checked (WhatsApp's limits, the
//! customer-service window, the template's approval) and queued in one transaction with its
//! outbox row; the dispatcher sends it at the number's rate.

use super::{ApiJson, path_id};
use crate::AppState;
use crate::auth::{Access, Tenant};
use crate::error::{ApiError, ErrorEnvelope};
use crate::routes::RouteTableBuilder;
use axum::Json;
use axum::extract::multipart::{MultipartError, MultipartRejection};
use axum::extract::{Multipart, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use frontdesk_domain::template::{FillInput, TrackedLink};
use frontdesk_domain::{
    Bsuid, ChannelId, ContactId, E164, MediaId, MessageId, Permission, TemplateId,
};
use frontdesk_store::{CustomerIdentity, MessageView, NewOutbound, UploadedFile};
use frontdesk_whatsapp::Outbound;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::routes;

pub(crate) fn routes(b: RouteTableBuilder) -> RouteTableBuilder {
    use Permission::*;
    b.json(routes!(send_message), Access::Perm(InboxReply))
        .json(routes!(get_message), Access::Perm(InboxRead))
        .json(routes!(mark_read), Access::Perm(InboxReply))
        .json(routes!(get_media), Access::Perm(InboxRead))
        .json_sized(
            routes!(upload_media),
            Access::Perm(InboxReply),
            Some(crate::MAX_UPLOAD_BODY),
        )
}

/// Uploads held in memory at once (each up to WhatsApp's 100 MiB); others wait their turn.
pub(crate) static UPLOADS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

/// A file uploaded to send, as stored.
#[derive(Serialize, ToSchema)]
pub struct UploadedMedia {
    pub id: String,
    pub channel_id: String,
    /// The message kind it goes out as (`image`, `audio`, `video`, `document`, `sticker`).
    pub kind: &'static str,
    pub mime_type: String,
    pub size_bytes: i64,
    pub sha256: String,
    pub filename: Option<String>,
}

/// Uploads a file to send (multipart: `channel_id`, and `file` with its content type).
/// WhatsApp's types and sizes apply (images 5 MiB, audio and video 16 MiB, stickers 500 KiB,
/// documents 100 MiB). Send it with `{"type": "image", "media_type": "image", "source":
/// {"upload": "<id>"}}`; the dispatcher uploads it to the provider.
#[utoipa::path(post, path = "/api/v1/media", tag = "messages",
    request_body(content_type = "multipart/form-data", description = "`channel_id` and `file`"),
    responses((status = 201, description = "Stored", body = UploadedMedia),
        (status = 404, description = "No such channel here", body = ErrorEnvelope),
        (status = 413, description = "Larger than WhatsApp takes for its type", body = ErrorEnvelope),
        (status = 415, description = "A type WhatsApp does not carry", body = ErrorEnvelope),
        (status = 422, description = "Missing or unreadable fields", body = ErrorEnvelope)))]
async fn upload_media(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<(StatusCode, Json<UploadedMedia>), ApiError> {
    let _turn = UPLOADS.acquire().await.map_err(ApiError::internal)?;
    let form = read_upload_form(multipart, &["channel_id"]).await?;
    let channel = path_id(form.field("channel_id")?, ChannelId::parse)?;
    let (mime, filename, bytes) = form.file()?;
    let Some((kind, max)) = frontdesk_whatsapp::media_limit(&mime) else {
        return Err(ApiError::UnsupportedMediaType);
    };
    if bytes.len() > max {
        return Err(ApiError::PayloadTooLarge);
    }
    // The channel first: nothing is written for another organisation's channel.
    let mut tx = state.store().begin_read(&ctx).await?;
    tx.channel(channel).await?;
    tx.commit().await?;
    let file = store_blob(&state, bytes, mime, filename).await?;
    let mut tx = state.store().begin(&ctx).await?;
    let id = tx.insert_upload(channel, &file).await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(UploadedMedia {
            id: id.to_string(),
            channel_id: channel.to_string(),
            kind,
            mime_type: file.mime_type,
            size_bytes: file.size_bytes,
            sha256: file.blob_sha256,
            filename: file.filename,
        }),
    ))
}

/// A multipart upload form: its text fields and its `file` (type, name, bytes).
pub(crate) struct UploadForm {
    fields: Vec<(String, String)>,
    file: Option<(String, Option<String>, axum::body::Bytes)>,
}

impl UploadForm {
    /// A text field the form must have.
    pub(crate) fn field(&self, name: &str) -> Result<&str, ApiError> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.trim())
            .ok_or_else(|| {
                ApiError::unprocessable("invalid_upload", format!("the {name} field is required"))
            })
    }

    /// The file: its content type (lower-cased), its name (without control characters, at
    /// most 240 characters) and its bytes (not empty).
    pub(crate) fn file(self) -> Result<(String, Option<String>, axum::body::Bytes), ApiError> {
        let invalid = |m: &str| ApiError::unprocessable("invalid_upload", m.to_owned());
        let (mime, filename, bytes) = self
            .file
            .ok_or_else(|| invalid("the file field is required"))?;
        if bytes.is_empty() {
            return Err(invalid("the file is empty"));
        }
        let filename = filename
            .map(|f| f.chars().filter(|c| !c.is_control()).collect::<String>())
            .filter(|f| !f.trim().is_empty());
        if filename.as_ref().is_some_and(|f| f.chars().count() > 240) {
            return Err(invalid("the file name is at most 240 characters"));
        }
        Ok((mime, filename, bytes))
    }
}

/// Reads a multipart upload: the text fields named in `names` and the `file` part.
pub(crate) async fn read_upload_form(
    multipart: Result<Multipart, MultipartRejection>,
    names: &[&str],
) -> Result<UploadForm, ApiError> {
    let mut multipart = multipart.map_err(|e| {
        ApiError::unprocessable(
            "invalid_upload",
            format!("a multipart/form-data body is required: {e}"),
        )
    })?;
    let mut form = UploadForm {
        fields: Vec::new(),
        file: None,
    };
    while let Some(field) = multipart.next_field().await.map_err(upload_error)? {
        match field.name() {
            Some("file") => {
                let mime = field
                    .content_type()
                    .map(|m| m.trim().to_ascii_lowercase())
                    .unwrap_or_default();
                let name = field.file_name().map(str::to_owned);
                let bytes = field.bytes().await.map_err(upload_error)?;
                form.file = Some((mime, name, bytes));
            }
            Some(n) if names.contains(&n) => {
                let n = n.to_owned();
                let v = field.text().await.map_err(upload_error)?;
                form.fields.push((n, v));
            }
            _ => {}
        }
    }
    Ok(form)
}

/// Puts checked bytes in the blob store (off the async threads): the file as a media row
/// records it.
pub(crate) async fn store_blob(
    state: &AppState,
    bytes: axum::body::Bytes,
    mime: String,
    filename: Option<String>,
) -> Result<UploadedFile, ApiError> {
    let blobs = state.blobs().clone();
    let size = bytes.len() as i64;
    let sha = tokio::task::spawn_blocking(move || blobs.put(&bytes))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    Ok(UploadedFile {
        blob_sha256: sha,
        size_bytes: size,
        mime_type: mime,
        filename,
    })
}

/// A multipart body that could not be read: too large, or malformed.
fn upload_error(e: MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge
    } else {
        ApiError::unprocessable("invalid_upload", format!("unreadable multipart body: {e}"))
    }
}

/// Whom to write to: a known contact, or a phone number or WhatsApp user id (the contact is
/// created when new).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendTo {
    pub contact_id: Option<String>,
    /// E.164, e.g. `+919876543210` (spaces and dashes are ignored).
    pub phone: Option<String>,
    /// A business-scoped user id, e.g. `US.13491208655302741918`.
    pub user_id: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendMessage {
    pub channel_id: String,
    pub to: SendTo,
    /// The message: `{"type": "text", "body": "…"}`, media, location, reaction, buttons,
    /// list or template.
    #[schema(value_type = Object)]
    pub message: Outbound,
    /// The provider id of a message to quote.
    pub reply_to: Option<String>,
    /// Templates: values for the stored template's variables, media and button endings,
    /// turned into the send's `components` (leave `message.components` empty). Tracked
    /// buttons get their per-message link here.
    #[schema(value_type = Option<Object>)]
    pub fill: Option<FillInput>,
}

/// Queues a message. Free-form messages need the customer to have written in the last 24
/// hours (`409 outside_service_window`); templates do not, but must be approved here
/// (`409 template_not_approved`, also for a template not known here). A template's values
/// go in `fill` (checked against the stored template: `422 invalid_fill`).
#[utoipa::path(post, path = "/api/v1/messages", tag = "messages", request_body = SendMessage,
    responses((status = 202, description = "Queued", body = MessageView),
        (status = 404, description = "No such channel or contact here", body = ErrorEnvelope),
        (status = 409, description = "Outside the service window, or the template is not approved", body = ErrorEnvelope),
        (status = 422, description = "Invalid message or recipient", body = ErrorEnvelope)))]
async fn send_message(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    ApiJson(req): ApiJson<SendMessage>,
) -> Result<(StatusCode, Json<MessageView>), ApiError> {
    let invalid = |m: String| ApiError::unprocessable("invalid_message", m);
    req.message.validate().map_err(|e| invalid(e.to_string()))?;
    if req
        .reply_to
        .as_ref()
        .is_some_and(|r| r.is_empty() || r.len() > 200)
    {
        return Err(invalid(
            "reply_to is a message id of at most 200 characters".into(),
        ));
    }
    // Another organisation's channel or contact is not there at all: 404, as in a path.
    let channel = path_id(&req.channel_id, ChannelId::parse)?;
    let mut tx = state.store().begin(&ctx).await?;
    let view = tx.channel(channel).await?;
    let contact =
        match (&req.to.contact_id, &req.to.phone, &req.to.user_id) {
            (Some(id), None, None) => tx.contact(path_id(id, ContactId::parse)?).await?.id,
            (None, phone, user) if phone.is_some() || user.is_some() => {
                let who =
                    CustomerIdentity {
                        phone: phone.as_deref().map(E164::parse).transpose().map_err(|e| {
                            ApiError::unprocessable("invalid_recipient", e.to_string())
                        })?,
                        bsuid: user.as_deref().map(Bsuid::parse).transpose().map_err(|e| {
                            ApiError::unprocessable("invalid_recipient", e.to_string())
                        })?,
                        ..Default::default()
                    };
                tx.upsert_contact(&who).await?
            }
            _ => {
                return Err(ApiError::unprocessable(
                    "invalid_recipient",
                    "name the recipient by contact_id, or by phone and/or user_id",
                ));
            }
        };
    if let (Some(upload), Outbound::Media { media_type, .. }) =
        (req.message.pending_upload(), &req.message)
    {
        let media = tx.media(path_id(upload, MediaId::parse)?).await?;
        let mime = media.mime_type.as_deref().unwrap_or_default();
        if media.channel != channel || media.status != "stored" {
            return Err(invalid(
                "the uploaded file belongs to another channel, or is not an upload".into(),
            ));
        }
        if !frontdesk_whatsapp::media_fits_kind(mime, media_type) {
            return Err(invalid(format!(
                "a {mime} file cannot be sent as {media_type}"
            )));
        }
    }
    let mut message = req.message;
    let mut preview = message.preview();
    let mut tracked = None;
    if let Outbound::Template {
        name,
        language,
        components,
    } = &mut message
    {
        let filled =
            fill_template(&mut tx, &view.waba_id, name, language, components, req.fill).await?;
        if let Some((template, text, links)) = filled {
            preview = text.chars().take(300).collect();
            tracked = Some((template, links));
        }
    } else if req.fill.is_some() {
        return Err(invalid("`fill` is for template messages".into()));
    }
    let content = serde_json::to_string(&message).map_err(ApiError::internal)?;
    let queued = tx
        .queue_message(
            &NewOutbound {
                channel,
                contact,
                kind: message.type_name().to_owned(),
                content,
                preview,
                reply_to: req.reply_to,
                needs_window: message.needs_service_window(),
                author: ctx.user_id(),
            },
            state.now(),
        )
        .await?;
    if let Some((template, links)) = tracked
        && !links.is_empty()
    {
        tx.create_tracked_links(template, queued.id, contact, &links)
            .await?;
    }
    tx.commit().await?;
    Ok((StatusCode::ACCEPTED, Json(queued)))
}

/// Checks and fills a template send (see [`frontdesk_store::TenantTx::prepare_template_send`]),
/// with the store's refusals as API errors.
pub(crate) async fn fill_template(
    tx: &mut frontdesk_store::TenantTx,
    waba_id: &str,
    name: &str,
    language: &str,
    components: &mut Vec<serde_json::Value>,
    fill: Option<FillInput>,
) -> Result<Option<(TemplateId, String, Vec<TrackedLink>)>, ApiError> {
    use frontdesk_store::TemplateRefusal as R;
    match tx
        .prepare_template_send(waba_id, name, language, components, fill)
        .await
    {
        Ok(p) => Ok(p.map(|p| (p.template, p.text, p.links))),
        Err(R::NotApproved(m)) => Err(ApiError::conflict("template_not_approved", m)),
        Err(R::InvalidFill(m)) => Err(ApiError::unprocessable("invalid_fill", m)),
        Err(R::Store(e)) => Err(e.into()),
    }
}

/// One message, with its delivery status and, when it failed, the provider's reason.
#[utoipa::path(get, path = "/api/v1/messages/{message_id}", tag = "messages",
    params(("message_id" = String, Path, description = "Message id")),
    responses((status = 200, description = "The message", body = MessageView), (status = 404, description = "No such message here", body = ErrorEnvelope)))]
async fn get_message(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
) -> Result<Json<MessageView>, ApiError> {
    let id = path_id(&id, MessageId::parse)?;
    let mut tx = state.store().begin_read(&ctx).await?;
    let m = tx.message(id).await?;
    tx.commit().await?;
    Ok(Json(m))
}

/// Tells the customer their message was read (blue ticks), through the outbox.
#[utoipa::path(post, path = "/api/v1/messages/{message_id}/read", tag = "messages",
    params(("message_id" = String, Path, description = "An inbound message's id")),
    responses((status = 202, description = "Queued"), (status = 404, description = "No such message here", body = ErrorEnvelope), (status = 422, description = "Not a customer's message", body = ErrorEnvelope)))]
async fn mark_read(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = path_id(&id, MessageId::parse)?;
    let mut tx = state.store().begin(&ctx).await?;
    tx.queue_mark_read(id).await?;
    tx.commit().await?;
    Ok(StatusCode::ACCEPTED)
}

/// A message's media file, once downloaded from the provider (`409 media_pending` before).
/// Served as an attachment that the browser may not interpret as a page.
#[utoipa::path(get, path = "/api/v1/media/{media_id}", tag = "messages",
    params(("media_id" = String, Path, description = "Media id")),
    responses((status = 200, description = "The file", content_type = "application/octet-stream"),
        (status = 404, description = "No such media here", body = ErrorEnvelope),
        (status = 409, description = "Not downloaded yet, or the download failed", body = ErrorEnvelope)))]
async fn get_media(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = path_id(&id, MediaId::parse)?;
    let mut tx = state.store().begin_read(&ctx).await?;
    let media = tx.media(id).await?;
    tx.commit().await?;
    let (Some(sha), "stored") = (media.blob_sha256.as_deref(), media.status.as_str()) else {
        return Err(ApiError::Conflict {
            code: "media_pending",
            message: format!("the file is not available ({})", media.status),
        });
    };
    let blobs = state.blobs().clone();
    let sha = sha.to_owned();
    let bytes = tokio::task::spawn_blocking(move || blobs.get(&sha))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::internal("a stored media file is missing from the blob store"))?;
    let mime = media
        .mime_type
        .filter(|m| frontdesk_whatsapp::media_type_allowed(m))
        .unwrap_or_else(|| "application/octet-stream".into());
    Ok((
        [
            (header::CONTENT_TYPE, mime),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{id}\""),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                "sandbox; default-src 'none'".into(),
            ),
            (header::CACHE_CONTROL, "private, max-age=3600".into()),
        ],
        bytes,
    )
        .into_response())
}
