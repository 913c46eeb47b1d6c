//! The audience API: contacts (list with search, tag filter and cursor; get, create,
//! update), their tags, the organisation's custom fields and tag catalogue. Numbers are
//! masked by the store for callers without `contacts.view_phone`; bad values are answered
//! 422 `invalid_fields` naming every field that is wrong.

use super::{ApiJson, path_id};
use crate::AppState;
use crate::auth::{Access, Tenant};
use crate::error::{ApiError, ErrorEnvelope};
use crate::routes::RouteTableBuilder;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use frontdesk_domain::audience::FieldKind;
use frontdesk_domain::audience::{ConsentSource, ConsentState};
use frontdesk_domain::{ContactId, ErasureRequestId, FieldId, Permission, TagId};
use frontdesk_store::audience::{
    ContactInput, ContactPage, ContactQuery, ContactRecord, FieldDef, Tag,
};
use frontdesk_store::consent::{AudienceSettings, ConsentEvent, ConsentView};
use frontdesk_store::erasure::{ErasureRequest, ErasureSettings};
use frontdesk_store::inbox::Cursor;
use serde::Deserialize;
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::routes;

pub(crate) fn routes(b: RouteTableBuilder) -> RouteTableBuilder {
    use Permission::*;
    b.json(routes!(list_contacts), Access::Perm(ContactsRead))
        .json(routes!(create_contact), Access::Perm(ContactsWrite))
        .json(routes!(get_contact), Access::Perm(ContactsRead))
        .json(routes!(update_contact), Access::Perm(ContactsWrite))
        .json(routes!(tag_contact), Access::Perm(ContactsWrite))
        .json(routes!(untag_contact), Access::Perm(ContactsWrite))
        .json(routes!(list_fields), Access::Perm(ContactsRead))
        .json(routes!(create_field), Access::Perm(ContactsConfigure))
        .json(routes!(update_field), Access::Perm(ContactsConfigure))
        .json(routes!(delete_field), Access::Perm(ContactsConfigure))
        .json(routes!(list_tags), Access::Perm(ContactsRead))
        .json(routes!(create_tag), Access::Perm(ContactsConfigure))
        .json(routes!(rename_tag), Access::Perm(ContactsConfigure))
        .json(routes!(delete_tag), Access::Perm(ContactsConfigure))
        .json(routes!(erase_contact), Access::Perm(ContactsErase))
        .json(routes!(list_erasure_requests), Access::Perm(ContactsErase))
        .json(routes!(cancel_erasure_request), Access::Perm(ContactsErase))
        .json(
            routes!(get_erasure_settings),
            Access::Perm(ContactsConfigure),
        )
        .json(
            routes!(put_erasure_settings),
            Access::Perm(ContactsConfigure),
        )
        .json(routes!(get_consent), Access::Perm(ContactsRead))
        .json(routes!(record_consent), Access::Perm(ContactsWrite))
        .json(
            routes!(get_audience_settings),
            Access::Perm(ContactsConfigure),
        )
        .json(
            routes!(put_audience_settings),
            Access::Perm(ContactsConfigure),
        )
}

/// The list's filters.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ContactListParams {
    /// Up to 100 characters, matched anywhere in the name, profile name, username, email
    /// and company (and the number, for callers who may see numbers).
    pub q: Option<String>,
    /// Only contacts carrying this tag.
    pub tag_id: Option<String>,
    pub cursor: Option<String>,
    /// 1 to 100 (default 50).
    pub limit: Option<i64>,
}

/// Contacts, newest first.
#[utoipa::path(get, path = "/api/v1/contacts", tag = "audience", params(ContactListParams),
    responses((status = 200, description = "A page", body = ContactPage),
        (status = 422, description = "Invalid filter or cursor", body = ErrorEnvelope)))]
async fn list_contacts(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Query(p): Query<ContactListParams>,
) -> Result<Json<ContactPage>, ApiError> {
    let q = contact_query(&p)?;
    let mut tx = state.store().begin_read(&ctx).await?;
    let page = tx.list_contacts(&q).await?;
    tx.commit().await?;
    Ok(Json(page))
}

/// The store's query from the request's parameters (shared with the pages).
pub(crate) fn contact_query(p: &ContactListParams) -> Result<ContactQuery, ApiError> {
    let tag = p
        .tag_id
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(|s| {
            TagId::parse(s)
                .map_err(|_| ApiError::unprocessable("invalid_filter", "tag_id is not an id"))
        })
        .transpose()?;
    let after = p
        .cursor
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(|c| {
            Cursor::decode(c).ok_or_else(|| {
                ApiError::unprocessable("invalid_cursor", "cursor is not one we gave")
            })
        })
        .transpose()?;
    Ok(ContactQuery {
        search: p.q.clone().filter(|s| !s.trim().is_empty()),
        tag,
        after,
        limit: p.limit.unwrap_or(50).clamp(1, 100),
    })
}

/// A contact's values. On create, a number (`phone`, E.164) or a WhatsApp user id is
/// required. On update, an absent value is kept and an empty string clears it.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ContactBody {
    /// Up to 200 characters.
    pub name: Option<String>,
    /// A number in international form (`+919876543210`; spaces and dashes are fine).
    pub phone: Option<String>,
    /// The WhatsApp business-scoped user id.
    pub user_id: Option<String>,
    pub username: Option<String>,
    pub email: Option<String>,
    /// A code like `en`, `pt_BR`, `es_419`.
    pub language: Option<String>,
    pub company: Option<String>,
    /// Custom field values by key; `null` (or an empty string) clears one.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub fields: BTreeMap<String, serde_json::Value>,
}

impl From<ContactBody> for ContactInput {
    fn from(b: ContactBody) -> Self {
        ContactInput {
            name: b.name,
            phone: b.phone,
            user_id: b.user_id,
            username: b.username,
            email: b.email,
            language: b.language,
            company: b.company,
            fields: b.fields,
        }
    }
}

/// Creates a contact.
#[utoipa::path(post, path = "/api/v1/contacts", tag = "audience", request_body = ContactBody,
    responses((status = 201, description = "Created", body = ContactRecord),
        (status = 409, description = "Another contact has this number or user id", body = ErrorEnvelope),
        (status = 422, description = "Invalid values, each named", body = ErrorEnvelope)))]
async fn create_contact(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    ApiJson(req): ApiJson<ContactBody>,
) -> Result<(StatusCode, Json<ContactRecord>), ApiError> {
    let mut tx = state.store().begin(&ctx).await?;
    let c = tx.create_contact(&req.into()).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(c)))
}

/// One contact.
#[utoipa::path(get, path = "/api/v1/contacts/{contact_id}", tag = "audience",
    params(("contact_id" = String, Path, description = "Contact id")),
    responses((status = 200, description = "The contact", body = ContactRecord),
        (status = 404, description = "No such contact here", body = ErrorEnvelope)))]
async fn get_contact(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
) -> Result<Json<ContactRecord>, ApiError> {
    let id = path_id(&id, ContactId::parse)?;
    let mut tx = state.store().begin_read(&ctx).await?;
    let c = tx.contact_record(id).await?;
    tx.commit().await?;
    Ok(Json(c))
}

/// Changes a contact: listed values are set (an empty string clears), others kept.
#[utoipa::path(patch, path = "/api/v1/contacts/{contact_id}", tag = "audience",
    params(("contact_id" = String, Path, description = "Contact id")), request_body = ContactBody,
    responses((status = 200, description = "The contact", body = ContactRecord),
        (status = 404, description = "No such contact here", body = ErrorEnvelope),
        (status = 409, description = "Another contact has this number or user id", body = ErrorEnvelope),
        (status = 422, description = "Invalid values, each named", body = ErrorEnvelope)))]
async fn update_contact(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<ContactBody>,
) -> Result<Json<ContactRecord>, ApiError> {
    let id = path_id(&id, ContactId::parse)?;
    let mut tx = state.store().begin(&ctx).await?;
    let c = tx.update_contact(id, &req.into()).await?;
    tx.commit().await?;
    Ok(Json(c))
}

/// Puts a catalogue tag on a contact (idempotent).
#[utoipa::path(put, path = "/api/v1/contacts/{contact_id}/tags/{tag_id}", tag = "audience",
    params(("contact_id" = String, Path, description = "Contact id"), ("tag_id" = String, Path, description = "Tag id")),
    responses((status = 204, description = "Tagged"),
        (status = 404, description = "No such contact or tag here", body = ErrorEnvelope)))]
async fn tag_contact(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path((contact, tag)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    set_tag(state, ctx, contact, tag, true).await
}

/// Takes a tag off a contact (idempotent).
#[utoipa::path(delete, path = "/api/v1/contacts/{contact_id}/tags/{tag_id}", tag = "audience",
    params(("contact_id" = String, Path, description = "Contact id"), ("tag_id" = String, Path, description = "Tag id")),
    responses((status = 204, description = "Untagged"),
        (status = 404, description = "No such contact or tag here", body = ErrorEnvelope)))]
async fn untag_contact(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path((contact, tag)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    set_tag(state, ctx, contact, tag, false).await
}

async fn set_tag(
    state: AppState,
    ctx: frontdesk_store::TenantCtx,
    contact: String,
    tag: String,
    on: bool,
) -> Result<StatusCode, ApiError> {
    let contact = path_id(&contact, ContactId::parse)?;
    let tag = path_id(&tag, TagId::parse)?;
    let mut tx = state.store().begin(&ctx).await?;
    tx.set_contact_tag(contact, tag, on).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The organisation's custom fields, by key.
#[utoipa::path(get, path = "/api/v1/contact-fields", tag = "audience",
    responses((status = 200, description = "Fields", body = Vec<FieldDef>)))]
async fn list_fields(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
) -> Result<Json<Vec<FieldDef>>, ApiError> {
    let mut tx = state.store().begin_read(&ctx).await?;
    let f = tx.fields().await?;
    tx.commit().await?;
    Ok(Json(f))
}

/// A new custom field.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewFieldBody {
    /// Lower-case letters, digits and `_`, starting with a letter; fixed once created.
    pub key: String,
    pub label: String,
    /// Fixed once created.
    pub kind: FieldKind,
    /// A choice field's options (1 to 100); none for other types.
    #[serde(default)]
    pub options: Vec<String>,
}

/// Defines a custom field.
#[utoipa::path(post, path = "/api/v1/contact-fields", tag = "audience", request_body = NewFieldBody,
    responses((status = 201, description = "Created", body = FieldDef),
        (status = 409, description = "Key taken, or too many fields", body = ErrorEnvelope),
        (status = 422, description = "Invalid values, each named", body = ErrorEnvelope)))]
async fn create_field(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    ApiJson(req): ApiJson<NewFieldBody>,
) -> Result<(StatusCode, Json<FieldDef>), ApiError> {
    let mut tx = state.store().begin(&ctx).await?;
    let f = tx
        .create_field(&req.key, &req.label, req.kind, &req.options)
        .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(f)))
}

/// A field's label and (choice fields) options.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldChangeBody {
    pub label: String,
    #[serde(default)]
    pub options: Vec<String>,
}

/// Renames a field or changes a choice field's options (an option in use cannot be removed).
#[utoipa::path(patch, path = "/api/v1/contact-fields/{field_id}", tag = "audience",
    params(("field_id" = String, Path, description = "Field id")), request_body = FieldChangeBody,
    responses((status = 200, description = "The field", body = FieldDef),
        (status = 404, description = "No such field here", body = ErrorEnvelope),
        (status = 409, description = "An option in use would be removed", body = ErrorEnvelope),
        (status = 422, description = "Invalid values, each named", body = ErrorEnvelope)))]
async fn update_field(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<FieldChangeBody>,
) -> Result<Json<FieldDef>, ApiError> {
    let id = path_id(&id, FieldId::parse)?;
    let mut tx = state.store().begin(&ctx).await?;
    let f = tx.update_field(id, &req.label, &req.options).await?;
    tx.commit().await?;
    Ok(Json(f))
}

/// Deletes a field and every contact's value of it.
#[utoipa::path(delete, path = "/api/v1/contact-fields/{field_id}", tag = "audience",
    params(("field_id" = String, Path, description = "Field id")),
    responses((status = 204, description = "Deleted"),
        (status = 404, description = "No such field here", body = ErrorEnvelope)))]
async fn delete_field(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = path_id(&id, FieldId::parse)?;
    let mut tx = state.store().begin(&ctx).await?;
    tx.delete_field(id).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The tag catalogue, by name, with how many contacts carry each tag.
#[utoipa::path(get, path = "/api/v1/tags", tag = "audience",
    responses((status = 200, description = "Tags", body = Vec<Tag>)))]
async fn list_tags(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
) -> Result<Json<Vec<Tag>>, ApiError> {
    let mut tx = state.store().begin_read(&ctx).await?;
    let t = tx.tags().await?;
    tx.commit().await?;
    Ok(Json(t))
}

/// A tag's name.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TagBody {
    /// 1 to 50 characters, unique in the organisation.
    pub name: String,
}

/// Adds a tag to the catalogue.
#[utoipa::path(post, path = "/api/v1/tags", tag = "audience", request_body = TagBody,
    responses((status = 201, description = "Created", body = Tag),
        (status = 409, description = "Name taken, or the catalogue is full", body = ErrorEnvelope),
        (status = 422, description = "Invalid name", body = ErrorEnvelope)))]
async fn create_tag(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    ApiJson(req): ApiJson<TagBody>,
) -> Result<(StatusCode, Json<Tag>), ApiError> {
    let mut tx = state.store().begin(&ctx).await?;
    let t = tx.create_tag(&req.name).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(t)))
}

/// Renames a tag.
#[utoipa::path(patch, path = "/api/v1/tags/{tag_id}", tag = "audience",
    params(("tag_id" = String, Path, description = "Tag id")), request_body = TagBody,
    responses((status = 200, description = "The tag", body = Tag),
        (status = 404, description = "No such tag here", body = ErrorEnvelope),
        (status = 409, description = "Name taken", body = ErrorEnvelope)))]
async fn rename_tag(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<TagBody>,
) -> Result<Json<Tag>, ApiError> {
    let id = path_id(&id, TagId::parse)?;
    let mut tx = state.store().begin(&ctx).await?;
    let t = tx.rename_tag(id, &req.name).await?;
    tx.commit().await?;
    Ok(Json(t))
}

/// Removes a tag from the catalogue and from every contact.
#[utoipa::path(delete, path = "/api/v1/tags/{tag_id}", tag = "audience",
    params(("tag_id" = String, Path, description = "Tag id")),
    responses((status = 204, description = "Deleted"),
        (status = 404, description = "No such tag here", body = ErrorEnvelope)))]
async fn delete_tag(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = path_id(&id, TagId::parse)?;
    let mut tx = state.store().begin(&ctx).await?;
    tx.delete_tag(id).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A contact's marketing consent: the current state (absent: unknown) and the ledger.
#[utoipa::path(get, path = "/api/v1/contacts/{contact_id}/consent", tag = "audience",
    params(("contact_id" = String, Path, description = "Contact id")),
    responses((status = 200, description = "State and ledger, newest first", body = ConsentView),
        (status = 404, description = "No such contact here", body = ErrorEnvelope)))]
async fn get_consent(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
) -> Result<Json<ConsentView>, ApiError> {
    let id = path_id(&id, ContactId::parse)?;
    let mut tx = state.store().begin_read(&ctx).await?;
    let v = tx.consent(id).await?;
    tx.commit().await?;
    Ok(Json(v))
}

/// A consent event to record.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentBody {
    pub state: ConsentState,
    /// `form`, `agent` or `api` (keywords and imports are recorded by Frontdesk itself).
    pub source: ConsentSource,
    /// What shows the customer's choice, up to 1000 characters.
    pub evidence: String,
}

/// Checks a consent body from a person or a client: evidence required, no system sources.
pub(crate) fn check_consent_body(b: &ConsentBody) -> Result<(), ApiError> {
    if matches!(b.source, ConsentSource::Keyword | ConsentSource::Import) {
        return Err(ApiError::unprocessable(
            "invalid_source",
            "keyword and import events are recorded by Frontdesk itself; use form, agent or api",
        ));
    }
    if b.evidence.trim().is_empty() {
        return Err(ApiError::unprocessable(
            "evidence_required",
            "say what shows the customer's choice (the form, the call, the message)",
        ));
    }
    Ok(())
}

/// Appends an opt-in or opt-out event to a contact's ledger; the latest event decides.
#[utoipa::path(post, path = "/api/v1/contacts/{contact_id}/consent", tag = "audience",
    params(("contact_id" = String, Path, description = "Contact id")), request_body = ConsentBody,
    responses((status = 201, description = "Recorded", body = ConsentEvent),
        (status = 404, description = "No such contact here", body = ErrorEnvelope),
        (status = 422, description = "Source or evidence not accepted", body = ErrorEnvelope)))]
async fn record_consent(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<ConsentBody>,
) -> Result<(StatusCode, Json<ConsentEvent>), ApiError> {
    let id = path_id(&id, ContactId::parse)?;
    check_consent_body(&req)?;
    let mut tx = state.store().begin(&ctx).await?;
    let e = tx
        .record_consent(id, req.state, req.source, &req.evidence)
        .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(e)))
}

/// The consent keywords (whole message, any case) and the confirmations sent back.
#[utoipa::path(get, path = "/api/v1/audience/settings", tag = "audience",
    responses((status = 200, description = "Settings", body = AudienceSettings)))]
async fn get_audience_settings(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
) -> Result<Json<AudienceSettings>, ApiError> {
    let mut tx = state.store().begin_read(&ctx).await?;
    let s = tx.audience_settings().await?;
    tx.commit().await?;
    Ok(Json(s))
}

/// Replaces the consent keywords and confirmations (at least one opt-out keyword).
#[utoipa::path(put, path = "/api/v1/audience/settings", tag = "audience", request_body = AudienceSettings,
    responses((status = 200, description = "Settings", body = AudienceSettings),
        (status = 422, description = "Invalid keyword or text", body = ErrorEnvelope)))]
async fn put_audience_settings(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    ApiJson(req): ApiJson<AudienceSettings>,
) -> Result<Json<AudienceSettings>, ApiError> {
    let mut tx = state.store().begin(&ctx).await?;
    let s = tx.set_audience_settings(req).await?;
    tx.commit().await?;
    Ok(Json(s))
}

/// Records a request to erase a contact's personal data: values, custom fields, tags,
/// message contents (tombstones stay), notes on its conversations, media and their bytes,
/// the raw webhook bodies that name it. With the organisation's default (no delay) it is
/// executed at once (200, `state: done`, with what was erased); with a delay it waits,
/// cancellable, and the worker executes it (202, `state: pending`). The consent ledger and
/// the audit log stay. Audited.
#[utoipa::path(post, path = "/api/v1/contacts/{contact_id}/erase", tag = "audience",
    params(("contact_id" = String, Path, description = "Contact id")),
    responses((status = 200, description = "Erased", body = ErasureRequest),
        (status = 202, description = "Recorded; executed after the organisation's delay", body = ErasureRequest),
        (status = 404, description = "No such contact here", body = ErrorEnvelope),
        (status = 409, description = "A request for this contact is already pending (`erasure_pending`)", body = ErrorEnvelope)))]
async fn erase_contact(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<ErasureRequest>), ApiError> {
    let id = path_id(&id, ContactId::parse)?;
    let r = request_erasure(&state, &ctx, id).await?;
    let status = if r.state == "pending" {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(r)))
}

/// Records (and, without a delay, executes) an erasure request; an executed one's media
/// bytes are collected once no organisation references them.
pub(crate) async fn request_erasure(
    state: &AppState,
    ctx: &frontdesk_store::TenantCtx,
    id: ContactId,
) -> Result<ErasureRequest, ApiError> {
    let mut tx = state.store().begin(ctx).await?;
    let r = tx.request_erasure(id, state.now()).await?;
    tx.commit().await?;
    if let Some(blobs) = r.report.as_ref().map(|rep| rep.blobs.clone())
        && !blobs.is_empty()
    {
        let (store, files) = (state.store().clone(), state.blobs().clone());
        tokio::spawn(async move {
            let grace = frontdesk_worker::BLOB_GRACE;
            if let Err(e) =
                frontdesk_worker::blob::collect_garbage(&store, &files, Some(blobs), grace).await
            {
                // The worker's sweep retries.
                tracing::error!(error = %e, "collecting an erased contact's blobs failed");
            }
        });
    }
    Ok(r)
}

/// The list's filters.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ErasureListParams {
    /// Only this contact's requests.
    pub contact_id: Option<String>,
    /// Only pending requests (`true`).
    pub pending: Option<bool>,
}

/// Erasure requests, newest first (at most 100): who asked, when, when they are executed
/// and due by, their state and what was erased.
#[utoipa::path(get, path = "/api/v1/erasure-requests", tag = "audience", params(ErasureListParams),
    responses((status = 200, description = "Requests", body = [ErasureRequest]),
        (status = 404, description = "No such contact here", body = ErrorEnvelope)))]
async fn list_erasure_requests(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Query(q): Query<ErasureListParams>,
) -> Result<Json<Vec<ErasureRequest>>, ApiError> {
    let contact = q
        .contact_id
        .as_deref()
        .map(|c| path_id(c, ContactId::parse))
        .transpose()?;
    let mut tx = state.store().begin_read(&ctx).await?;
    if let Some(c) = contact {
        tx.contact(c).await?;
    }
    let list = tx
        .erasure_requests(contact, q.pending.unwrap_or(false))
        .await?;
    tx.commit().await?;
    Ok(Json(list))
}

/// Cancels a pending erasure request (audited); 409 `erasure_not_pending` once executed
/// or cancelled.
#[utoipa::path(post, path = "/api/v1/erasure-requests/{request_id}/cancel", tag = "audience",
    params(("request_id" = String, Path, description = "Erasure request id")),
    responses((status = 200, description = "Cancelled", body = ErasureRequest),
        (status = 404, description = "No such request here", body = ErrorEnvelope),
        (status = 409, description = "Not pending", body = ErrorEnvelope)))]
async fn cancel_erasure_request(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
) -> Result<Json<ErasureRequest>, ApiError> {
    let id = path_id(&id, ErasureRequestId::parse)?;
    let mut tx = state.store().begin(&ctx).await?;
    let r = tx.cancel_erasure(id).await?;
    tx.commit().await?;
    Ok(Json(r))
}

/// The erasure window (days a request is due by) and delay (hours it waits, cancellable).
#[utoipa::path(get, path = "/api/v1/audience/erasure-settings", tag = "audience",
    responses((status = 200, description = "Settings", body = ErasureSettings)))]
async fn get_erasure_settings(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
) -> Result<Json<ErasureSettings>, ApiError> {
    let mut tx = state.store().begin_read(&ctx).await?;
    let s = tx.erasure_settings().await?;
    tx.commit().await?;
    Ok(Json(s))
}

/// Changes the erasure window (1–90 days) and delay (0 up to the window, in hours).
/// Requests already made keep their times. Audited.
#[utoipa::path(put, path = "/api/v1/audience/erasure-settings", tag = "audience", request_body = ErasureSettings,
    responses((status = 200, description = "Settings", body = ErasureSettings),
        (status = 422, description = "Out of bounds (`invalid_fields`)", body = ErrorEnvelope)))]
async fn put_erasure_settings(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    ApiJson(req): ApiJson<ErasureSettings>,
) -> Result<Json<ErasureSettings>, ApiError> {
    let mut tx = state.store().begin(&ctx).await?;
    let s = tx.set_erasure_settings(req).await?;
    tx.commit().await?;
    Ok(Json(s))
}
