//! Message templates: written here as drafts, submitted to the provider for review, their
//! status, quality and category kept up to date by webhooks (see the worker) and by sync,
//! and clicks on their tracked URL buttons counted behind `/r/{code}`.

use super::{ApiJson, path_id};
use crate::AppState;
use crate::auth::{Access, Tenant};
use crate::error::{ApiError, ErrorEnvelope};
use crate::routes::RouteTableBuilder;
use axum::Json;
use axum::extract::Multipart;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use frontdesk_domain::template::{
    Category, FieldError, FieldErrors, Header, MediaKind, TemplateInput, TemplateSpec, sample_rule,
};
use frontdesk_domain::{ChannelId, MediaId, MessageId, Permission, TemplateId};
use frontdesk_store::{
    LinkClicks, SyncReport, SyncedTemplate, TemplateFilter, TemplateRecord, TenantCtx,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::routes;

pub(crate) fn routes(b: RouteTableBuilder) -> RouteTableBuilder {
    use Permission::*;
    b.json(routes!(list_templates), Access::Perm(InboxRead))
        .json(routes!(create_template), Access::Perm(TemplatesManage))
        .json_sized(
            routes!(upload_sample),
            Access::Perm(TemplatesManage),
            Some(MAX_SAMPLE_BODY),
        )
        .json(routes!(get_template), Access::Perm(InboxRead))
        .json(routes!(update_template), Access::Perm(TemplatesManage))
        .json(routes!(delete_template), Access::Perm(TemplatesManage))
        .json(routes!(submit_template), Access::Perm(TemplatesManage))
        .json(routes!(template_clicks), Access::Perm(TemplatesManage))
        .json(routes!(message_clicks), Access::Perm(InboxRead))
        .json(routes!(sync_templates), Access::Perm(TemplatesManage))
        .other(Method::GET, "/r/{code}", get(follow_link), Access::Public)
}

/// Filters for the template list, combined with AND.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct TemplateQuery {
    /// `DRAFT`, `PENDING`, `APPROVED`, `REJECTED`, `PAUSED`, `DISABLED`…
    pub status: Option<String>,
    /// `MARKETING`, `UTILITY` or `AUTHENTICATION`.
    pub category: Option<String>,
    /// e.g. `en_US`.
    pub language: Option<String>,
    pub channel_id: Option<String>,
}

impl TemplateQuery {
    pub(crate) fn to_filter(&self) -> Result<TemplateFilter, ApiError> {
        let bad = |m: &str| ApiError::bad_request("invalid_query", m.to_owned());
        let short = |v: &Option<String>, name: &str| -> Result<Option<String>, ApiError> {
            match v.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
                Some(s) if s.len() > 40 => Err(bad(&format!("`{name}` is at most 40 characters"))),
                other => Ok(other.map(str::to_owned)),
            }
        };
        Ok(TemplateFilter {
            status: short(&self.status, "status")?.map(|s| s.to_ascii_uppercase()),
            category: match short(&self.category, "category")? {
                Some(c) => Some(
                    Category::parse(&c)
                        .ok_or_else(|| bad("`category` is MARKETING, UTILITY or AUTHENTICATION"))?,
                ),
                None => None,
            },
            language: short(&self.language, "language")?,
            channel: match short(&self.channel_id, "channel_id")? {
                Some(c) => Some(ChannelId::parse(&c).map_err(|_| bad("`channel_id` is an id"))?),
                None => None,
            },
        })
    }
}

/// What a send must give for a template (the composer draws one input per field).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FillField {
    /// Where the value goes: `header`, `body[0]`, `buttons[1]`, `cards[0].header`…
    pub field: String,
    /// What to ask for: the variable (`{{1}}`, `{{first_name}}`), `image link`, `URL ending`…
    pub label: String,
    /// The template's example for it.
    pub example: Option<String>,
}

/// A template with what a phone would show and the values a send needs.
#[derive(Debug, Serialize, ToSchema)]
pub struct TemplateDetail {
    #[serde(flatten)]
    pub template: TemplateRecord,
    /// The message with the examples filled in; `None` when the components are unknown.
    pub preview: Option<String>,
    pub fill_fields: Vec<FillField>,
}

/// The values a send of this template needs, in order.
pub(crate) fn fill_fields(spec: &TemplateSpec) -> Vec<FillField> {
    use frontdesk_domain::template::Button;
    let mut out = Vec::new();
    match &spec.header {
        Some(Header::Text(t)) if !t.vars.is_empty() => out.push(FillField {
            field: "header".into(),
            label: format!("header {{{{{}}}}}", t.vars[0]),
            example: t.examples.first().cloned(),
        }),
        Some(Header::Media { kind, sample }) => out.push(FillField {
            field: "header".into(),
            label: format!("{} link (https)", kind.as_str()),
            example: link_example(sample),
        }),
        Some(Header::Location) => {
            for (field, label, example) in [
                ("latitude", "place: latitude", "18.5204"),
                ("longitude", "place: longitude", "73.8567"),
                ("name", "place: name (optional)", "Sunrise Clinic"),
                ("address", "place: address (optional)", "12 FC Road, Pune"),
            ] {
                out.push(FillField {
                    field: format!("location.{field}"),
                    label: label.into(),
                    example: Some(example.into()),
                });
            }
        }
        _ => {}
    }
    for (i, (k, e)) in spec.body.vars.iter().zip(&spec.body.examples).enumerate() {
        out.push(FillField {
            field: format!("body[{i}]"),
            label: format!("{{{{{k}}}}}"),
            example: Some(e.clone()),
        });
    }
    let buttons = |out: &mut Vec<FillField>, prefix: &str, buttons: &[Button]| {
        for (i, b) in buttons.iter().enumerate() {
            match b {
                Button::Url {
                    url, example, text, ..
                } if url.ends_with("{{1}}") => out.push(FillField {
                    field: format!("{prefix}buttons[{i}]"),
                    label: format!("end of the \"{text}\" link"),
                    example: example.as_ref().map(|e| e[url.len() - 5..].to_owned()),
                }),
                Button::CopyCode { example } => out.push(FillField {
                    field: format!("{prefix}buttons[{i}]"),
                    label: "code to copy".into(),
                    example: Some(example.clone()),
                }),
                _ => {}
            }
        }
    };
    buttons(&mut out, "", &spec.buttons);
    for (c, card) in spec.cards.iter().enumerate() {
        out.push(FillField {
            field: format!("cards[{c}].header"),
            label: format!("card {} {} link (https)", c + 1, card.media.as_str()),
            example: link_example(&card.sample),
        });
        for (i, (k, e)) in card.body.vars.iter().zip(&card.body.examples).enumerate() {
            out.push(FillField {
                field: format!("cards[{c}].body[{i}]"),
                label: format!("card {} {{{{{k}}}}}", c + 1),
                example: Some(e.clone()),
            });
        }
        buttons(&mut out, &format!("cards[{c}]."), &card.buttons);
    }
    out
}

/// A media sample given as an https link doubles as the example of a send's link.
fn link_example(sample: &frontdesk_domain::template::MediaSample) -> Option<String> {
    sample
        .given()
        .filter(|g| g.starts_with("https://"))
        .map(str::to_owned)
}

pub(crate) fn detail(t: TemplateRecord) -> TemplateDetail {
    let spec = t.spec();
    TemplateDetail {
        preview: spec.as_ref().map(TemplateSpec::preview),
        fill_fields: spec.as_ref().map(fill_fields).unwrap_or_default(),
        template: t,
    }
}

/// A written template, parsed; its refusals name their fields.
pub(crate) fn parse_template(input: &TemplateInput) -> Result<TemplateSpec, ApiError> {
    TemplateSpec::parse(input)
        .map_err(|e| ApiError::unprocessable("invalid_template", e.to_string()))
}

/// Stored samples that are not this number's files of a fitting type: `422
/// invalid_template`, named by field like WhatsApp's rules.
fn refuse_sample_problems(problems: Vec<FieldError>) -> Result<(), ApiError> {
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ApiError::unprocessable(
            "invalid_template",
            FieldErrors(problems).to_string(),
        ))
    }
}

/// The largest sample upload body: the largest sample (16 MiB) and the form around it.
const MAX_SAMPLE_BODY: usize = 16 * 1024 * 1024 + 64 * 1024;

/// A sample file stored for a template's media header.
#[derive(Serialize, ToSchema)]
pub struct TemplateSample {
    /// Put it in the template as `header.sample` (or a card's `header.sample`).
    pub id: String,
    pub channel_id: String,
    /// `image`, `video` or `document`.
    pub format: &'static str,
    pub mime_type: String,
    pub size_bytes: i64,
    pub sha256: String,
    pub filename: Option<String>,
}

/// Uploads a sample file for a media header (multipart: `channel_id`, `format` = `image`,
/// `video` or `document`, and `file`). Images are JPEG or PNG up to 5 MiB, videos MP4 and
/// documents PDF up to 16 MiB. It is stored here (the editor shows it) and sent through
/// Meta's Resumable Upload API each time the template is submitted, for a fresh
/// `header_handle`. Audited `template.sample_uploaded`.
#[utoipa::path(post, path = "/api/v1/templates/samples", tag = "templates",
    request_body(content_type = "multipart/form-data", description = "`channel_id`, `format` and `file`"),
    responses((status = 201, description = "Stored", body = TemplateSample),
        (status = 404, description = "No such channel here", body = ErrorEnvelope),
        (status = 413, description = "Larger than a sample of its kind may be", body = ErrorEnvelope),
        (status = 415, description = "A type this kind of header does not take", body = ErrorEnvelope),
        (status = 422, description = "Missing or unreadable fields", body = ErrorEnvelope)))]
async fn upload_sample(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<(StatusCode, Json<TemplateSample>), ApiError> {
    use super::messages::{UPLOADS, read_upload_form, store_blob};
    let _turn = UPLOADS.acquire().await.map_err(ApiError::internal)?;
    let form = read_upload_form(multipart, &["channel_id", "format"]).await?;
    let channel = path_id(form.field("channel_id")?, ChannelId::parse)?;
    let kind = match form.field("format")? {
        "image" => MediaKind::Image,
        "video" => MediaKind::Video,
        "document" => MediaKind::Document,
        _ => {
            return Err(ApiError::unprocessable(
                "invalid_upload",
                "format is image, video or document",
            ));
        }
    };
    let (mime, filename, bytes) = form.file()?;
    let (types, max) = sample_rule(kind);
    if !types.contains(&mime.as_str()) {
        return Err(ApiError::UnsupportedMediaType);
    }
    if bytes.len() > max {
        return Err(ApiError::PayloadTooLarge);
    }
    // The channel first: nothing is written for another organisation's channel.
    let mut tx = state.store().begin_read(&ctx).await?;
    tx.channel(channel).await?;
    tx.commit().await?;
    let file = store_blob(&state, bytes, mime, filename).await?;
    let mut tx = state.store().begin(&ctx).await?;
    let id = tx.insert_template_sample(channel, kind, &file).await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(TemplateSample {
            id: id.to_string(),
            channel_id: channel.to_string(),
            format: kind.as_str(),
            mime_type: file.mime_type,
            size_bytes: file.size_bytes,
            sha256: file.blob_sha256,
            filename: file.filename,
        }),
    ))
}

/// Templates matching the filters (at most 500), by name and language.
#[utoipa::path(get, path = "/api/v1/templates", tag = "templates", params(TemplateQuery),
    responses((status = 200, description = "Templates", body = Vec<TemplateRecord>),
        (status = 400, description = "A filter is not valid", body = ErrorEnvelope)))]
async fn list_templates(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Query(q): Query<TemplateQuery>,
) -> Result<Json<Vec<TemplateRecord>>, ApiError> {
    let f = q.to_filter()?;
    let mut tx = state.store().begin_read(&ctx).await?;
    let list = tx.templates(&f).await?;
    tx.commit().await?;
    Ok(Json(list))
}

/// A new template for a number: a draft until submitted.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTemplate {
    pub channel_id: String,
    pub template: TemplateInput,
}

/// Creates a draft. WhatsApp's rules are checked here (`422 invalid_template` names each
/// field that breaks one); a name already used in that language is `409 template_exists`.
#[utoipa::path(post, path = "/api/v1/templates", tag = "templates", request_body = NewTemplate,
    responses((status = 201, description = "Created", body = TemplateDetail),
        (status = 404, description = "No such channel here", body = ErrorEnvelope),
        (status = 409, description = "This name exists in this language", body = ErrorEnvelope),
        (status = 422, description = "The template breaks a rule", body = ErrorEnvelope)))]
async fn create_template(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    ApiJson(body): ApiJson<NewTemplate>,
) -> Result<(StatusCode, Json<TemplateDetail>), ApiError> {
    let channel = path_id(&body.channel_id, ChannelId::parse)?;
    let t = create(&state, &ctx, channel, &body.template).await?;
    Ok((StatusCode::CREATED, Json(detail(t))))
}

pub(crate) async fn create(
    state: &AppState,
    ctx: &TenantCtx,
    channel: ChannelId,
    input: &TemplateInput,
) -> Result<TemplateRecord, ApiError> {
    let mut tx = state.store().begin(ctx).await?;
    // The channel first: another organisation's is not there at all (404).
    tx.channel(channel).await?;
    let spec = parse_template(input)?;
    refuse_sample_problems(tx.template_sample_problems(channel, &spec).await?)?;
    let t = tx.create_template(channel, &spec).await?;
    tx.commit().await?;
    Ok(t)
}

/// One template, its preview and the values a send needs.
#[utoipa::path(get, path = "/api/v1/templates/{template_id}", tag = "templates",
    params(("template_id" = String, Path, description = "Template id")),
    responses((status = 200, description = "The template", body = TemplateDetail),
        (status = 404, description = "No such template here", body = ErrorEnvelope)))]
async fn get_template(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
) -> Result<Json<TemplateDetail>, ApiError> {
    let id = path_id(&id, TemplateId::parse)?;
    let mut tx = state.store().begin_read(&ctx).await?;
    let t = tx.template(id).await?;
    tx.commit().await?;
    Ok(Json(detail(t)))
}

/// Replaces a template's components. Drafts and rejected templates are edited here (submit
/// them again); an approved template's edit is submitted to the provider at once and goes
/// back to review. Name and language are fixed once submitted.
#[utoipa::path(put, path = "/api/v1/templates/{template_id}", tag = "templates", request_body = TemplateInput,
    params(("template_id" = String, Path, description = "Template id")),
    responses((status = 200, description = "Updated", body = TemplateDetail),
        (status = 404, description = "No such template here", body = ErrorEnvelope),
        (status = 409, description = "Not editable in its status, or name/language changed after submission", body = ErrorEnvelope),
        (status = 422, description = "The template breaks a rule", body = ErrorEnvelope),
        (status = 502, description = "The provider refused the edit", body = ErrorEnvelope)))]
async fn update_template(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<TemplateInput>,
) -> Result<Json<TemplateDetail>, ApiError> {
    let id = path_id(&id, TemplateId::parse)?;
    Ok(Json(detail(update(&state, &ctx, id, &input).await?)))
}

pub(crate) async fn update(
    state: &AppState,
    ctx: &TenantCtx,
    id: TemplateId,
    input: &TemplateInput,
) -> Result<TemplateRecord, ApiError> {
    let mut tx = state.store().begin(ctx).await?;
    let before = tx.template(id).await?;
    let spec = parse_template(input)?;
    if let Some(channel) = before.channel_id {
        refuse_sample_problems(tx.template_sample_problems(channel, &spec).await?)?;
    }
    let (t, was) = tx.update_template(id, &spec).await?;
    tx.commit().await?;
    if was == "APPROVED" {
        let submitted = submit(state, ctx, id).await;
        if submitted.is_err()
            && let Some(approved) = before.spec()
        {
            // The provider kept the approved version: so do we, or sends would fill
            // components it never approved.
            let mut tx = state.store().begin(ctx).await?;
            tx.update_template(id, &approved).await?;
            tx.commit().await?;
        }
        return submitted;
    }
    Ok(t)
}

/// Where a template is deleted.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteTemplateParams {
    /// `true`: delete it here only, leaving the provider's copy (for a template the
    /// provider no longer has; a sync brings back one it still has).
    pub local_only: Option<bool>,
}

/// Deletes a template: first at the provider (`DELETE /{waba-id}/message_templates` with
/// its name and id, so only this language goes), then here with its tracked links. A
/// template never submitted is only here. A provider refusal keeps it (502). Sends of it
/// are refused afterwards, here and at the provider.
#[utoipa::path(delete, path = "/api/v1/templates/{template_id}", tag = "templates",
    params(("template_id" = String, Path, description = "Template id"), DeleteTemplateParams),
    responses((status = 204, description = "Deleted"),
        (status = 404, description = "No such template here", body = ErrorEnvelope),
        (status = 502, description = "The provider refused the deletion; kept here", body = ErrorEnvelope)))]
async fn delete_template(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
    Query(q): Query<DeleteTemplateParams>,
) -> Result<StatusCode, ApiError> {
    let id = path_id(&id, TemplateId::parse)?;
    delete_everywhere(&state, &ctx, id, q.local_only.unwrap_or(false)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes a template at the provider (when it has one there and `local_only` is not
/// asked), then here.
pub(crate) async fn delete_everywhere(
    state: &AppState,
    ctx: &TenantCtx,
    id: TemplateId,
    local_only: bool,
) -> Result<(), ApiError> {
    let mut tx = state.store().begin_read(ctx).await?;
    let t = tx.template(id).await?;
    let creds = match (&t.provider_template_id, t.channel_id, local_only) {
        (Some(_), Some(channel), false) => Some(tx.channel_credentials(channel).await?),
        _ => None,
    };
    tx.commit().await?;
    if let (Some(creds), Some(pid)) = (creds, &t.provider_template_id) {
        let client =
            frontdesk_worker::provider_client(frontdesk_whatsapp::client::http_client(), &creds);
        client
            .delete_template(&t.name, Some(pid))
            .await
            .map_err(|e| ApiError::BadGateway {
                message: format!("the provider refused the deletion: {e}"),
            })?;
    }
    let mut tx = state.store().begin(ctx).await?;
    tx.delete_template(id).await?;
    tx.commit().await?;
    Ok(())
}

/// Submits a draft or rejected template for review (`POST /{waba-id}/message_templates`).
/// It is `PENDING` until the provider's review webhook says `APPROVED` or `REJECTED`.
#[utoipa::path(post, path = "/api/v1/templates/{template_id}/submit", tag = "templates",
    params(("template_id" = String, Path, description = "Template id")),
    responses((status = 202, description = "Submitted: pending review", body = TemplateDetail),
        (status = 404, description = "No such template here", body = ErrorEnvelope),
        (status = 409, description = "Pending already, or not written here", body = ErrorEnvelope),
        (status = 502, description = "The provider refused it; the reason is kept", body = ErrorEnvelope)))]
async fn submit_template(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<TemplateDetail>), ApiError> {
    let id = path_id(&id, TemplateId::parse)?;
    let t = submit(&state, &ctx, id).await?;
    Ok((StatusCode::ACCEPTED, Json(detail(t))))
}

/// Marks the template pending, then calls the provider (new templates are created, ones
/// the provider has are edited); a refusal puts the status back, with the reason.
pub(crate) async fn submit(
    state: &AppState,
    ctx: &TenantCtx,
    id: TemplateId,
) -> Result<TemplateRecord, ApiError> {
    let mut tx = state.store().begin(ctx).await?;
    let t = tx.template(id).await?;
    let spec = t.spec().ok_or_else(|| {
        ApiError::conflict(
            "template_not_submittable",
            "this template's components were not written here",
        )
    })?;
    let channel = t.channel_id.ok_or_else(|| {
        ApiError::conflict("template_not_submittable", "this template has no number")
    })?;
    let creds = tx.channel_credentials(channel).await?;
    // Stored samples go to Meta's Resumable Upload API, which belongs to the number's app.
    let mut samples = Vec::new();
    for (field, _, media) in spec.stored_samples() {
        let app_id = creds.view.app_id.clone().ok_or_else(|| {
            ApiError::conflict(
                "app_id_required",
                "this number has no Meta app id: set it on the channel to upload the header's sample",
            )
        })?;
        let row = tx.media(media).await?;
        let (Some(sha), Some(mime)) = (row.blob_sha256, row.mime_type) else {
            return Err(ApiError::unprocessable(
                "invalid_template",
                format!("{field}: the sample file is gone; upload it again"),
            ));
        };
        samples.push((media, app_id, sha, mime, row.filename));
    }
    let previous = tx.mark_template_submitted(id).await?;
    tx.commit().await?;
    let client =
        frontdesk_worker::provider_client(frontdesk_whatsapp::client::http_client(), &creds);
    let answer = async {
        let handles = upload_samples(state, &client, samples).await?;
        let submission = spec.to_meta_submission(state.auth().base_url.as_str(), &handles);
        match &t.provider_template_id {
            Some(pid) => client.edit_template(pid, &submission).await.map(|()| None),
            None => client.create_template(&submission).await.map(Some),
        }
    }
    .await;
    let mut tx = state.store().begin(ctx).await?;
    let result = match &answer {
        Ok(pid) => {
            tx.finish_template_submission(id, pid.as_deref(), None)
                .await?;
            Ok(())
        }
        Err(e) => {
            let reason = format!("the provider refused the submission: {e}");
            tx.finish_template_submission(id, None, Some((&previous, &reason)))
                .await?;
            Err(ApiError::BadGateway { message: reason })
        }
    };
    let t = tx.template(id).await?;
    tx.commit().await?;
    result.map(|()| t)
}

/// Sends each stored sample through the provider's Resumable Upload API; the handles, by
/// file. A file missing from the blob store is refused like a provider error would be.
async fn upload_samples(
    state: &AppState,
    client: &frontdesk_whatsapp::client::ProviderClient,
    samples: Vec<(MediaId, String, String, String, Option<String>)>,
) -> Result<BTreeMap<MediaId, String>, frontdesk_whatsapp::client::ProviderError> {
    use frontdesk_whatsapp::client::ProviderError;
    use frontdesk_whatsapp::errors::ErrorClass;
    let mut handles = BTreeMap::new();
    for (media, app_id, sha, mime, filename) in samples {
        if handles.contains_key(&media) {
            continue;
        }
        let blobs = state.blobs().clone();
        let bytes = tokio::task::spawn_blocking(move || blobs.get(&sha))
            .await
            .ok()
            .and_then(Result::ok)
            .flatten()
            .ok_or_else(|| {
                ProviderError::local(ErrorClass::Permanent, "a sample file is missing here")
            })?;
        let name = filename.unwrap_or_else(|| format!("sample-{media}"));
        let h = client
            .upload_template_sample(&app_id, &name, &mime, &bytes)
            .await?;
        handles.insert(media, h);
    }
    Ok(handles)
}

/// Clicks on a template's tracked buttons, per message (most clicked first, at most 500).
#[utoipa::path(get, path = "/api/v1/templates/{template_id}/clicks", tag = "templates",
    params(("template_id" = String, Path, description = "Template id")),
    responses((status = 200, description = "Links and their clicks", body = Vec<LinkClicks>),
        (status = 404, description = "No such template here", body = ErrorEnvelope)))]
async fn template_clicks(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
) -> Result<Json<Vec<LinkClicks>>, ApiError> {
    let id = path_id(&id, TemplateId::parse)?;
    let mut tx = state.store().begin_read(&ctx).await?;
    tx.template(id).await?;
    let clicks = tx.link_clicks(Some(id), None).await?;
    tx.commit().await?;
    Ok(Json(clicks))
}

/// Clicks on the tracked buttons of one sent message.
#[utoipa::path(get, path = "/api/v1/messages/{message_id}/clicks", tag = "templates",
    params(("message_id" = String, Path, description = "Message id")),
    responses((status = 200, description = "Links and their clicks", body = Vec<LinkClicks>),
        (status = 404, description = "No such message here", body = ErrorEnvelope)))]
async fn message_clicks(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
) -> Result<Json<Vec<LinkClicks>>, ApiError> {
    let id = path_id(&id, MessageId::parse)?;
    let mut tx = state.store().begin_read(&ctx).await?;
    tx.message(id).await?;
    let clicks = tx.link_clicks(None, Some(id)).await?;
    tx.commit().await?;
    Ok(Json(clicks))
}

/// Pulls the provider's template list for a number's business account: templates made in
/// Meta's manager appear, known ones take the provider's status, category and quality.
#[utoipa::path(post, path = "/api/v1/channels/{channel_id}/templates/sync", tag = "templates",
    params(("channel_id" = String, Path, description = "Channel id")),
    responses((status = 200, description = "What changed", body = SyncReport),
        (status = 404, description = "No such channel here", body = ErrorEnvelope),
        (status = 502, description = "The provider did not answer", body = ErrorEnvelope)))]
async fn sync_templates(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
) -> Result<Json<SyncReport>, ApiError> {
    let id = path_id(&id, ChannelId::parse)?;
    Ok(Json(sync(&state, &ctx, id).await?))
}

pub(crate) async fn sync(
    state: &AppState,
    ctx: &TenantCtx,
    channel: ChannelId,
) -> Result<SyncReport, ApiError> {
    let mut tx = state.store().begin_read(ctx).await?;
    let creds = tx.channel_credentials(channel).await?;
    tx.commit().await?;
    let client =
        frontdesk_worker::provider_client(frontdesk_whatsapp::client::http_client(), &creds);
    let listed = client
        .list_templates()
        .await
        .map_err(|e| ApiError::BadGateway {
            message: format!("the provider did not list its templates: {e}"),
        })?;
    let s = |v: &serde_json::Value, k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_owned);
    let synced: Vec<SyncedTemplate> = listed
        .iter()
        .map(|t| SyncedTemplate {
            provider_template_id: s(t, "id"),
            name: s(t, "name").unwrap_or_default(),
            language: s(t, "language").unwrap_or_default(),
            status: s(t, "status").unwrap_or_else(|| "UNKNOWN".into()),
            category: s(t, "category"),
            quality: t.get("quality_score").and_then(|q| s(q, "score")),
            reason: s(t, "rejected_reason").filter(|r| r != "NONE"),
            spec: TemplateSpec::from_meta(t).ok(),
        })
        .collect();
    let mut tx = state.store().begin(ctx).await?;
    let report = tx.sync_templates(channel, &synced).await?;
    tx.commit().await?;
    Ok(report)
}

/// A tracked button's link: counts the click and answers 302 to the URL stored with the
/// link when the message was sent (never to anything the request names). Unknown codes
/// are 404.
async fn follow_link(State(state): State<AppState>, Path(code): Path<String>) -> Response {
    match state.store().follow_tracked_link(&code).await {
        Ok(Some(to)) => (
            StatusCode::FOUND,
            [
                (header::LOCATION, to),
                (header::CACHE_CONTROL, "no-store".into()),
                (header::REFERRER_POLICY, "no-referrer".into()),
            ],
        )
            .into_response(),
        Ok(None) => ApiError::NotFound.into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}
