//! The team inbox API: the conversation list (one request per screen: rows, next cursor
//! and the sidebar's unread counts), the conversation view (conversation, contact,
//! messages newest first, notes, labels; opening it marks it read for the caller), and the
//! actions agents take. Visibility is enforced in the store's SQL: a conversation the
//! caller may not see is 404, whatever the action. Numbers are masked for callers without
//! `contacts.view_phone`.

use super::{ApiJson, path_id};
use crate::AppState;
use crate::auth::{Access, Authed, Tenant};
use crate::error::{ApiError, ErrorEnvelope};
use crate::routes::RouteTableBuilder;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use frontdesk_domain::{
    ChannelId, ConversationId, LabelId, MessageId, NotificationId, Permission, QuickReplyId,
    TeamId, UserId,
};
use frontdesk_store::inbox::{
    AutoAssign, Availability, ConversationDetail, ConversationPage, Cursor, InboxSettings, Label,
    ListQuery, ListView, Mentionable, Note, Notification, QuickReply, StatusChange, Viewer,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::routes;

pub(crate) fn routes(b: RouteTableBuilder) -> RouteTableBuilder {
    use Permission::*;
    b.json(routes!(list_conversations), Access::Perm(InboxRead))
        .json(routes!(get_conversation), Access::Perm(InboxRead))
        .json(routes!(assign_conversation), Access::Perm(InboxAssign))
        .json(routes!(change_status), Access::Perm(InboxAssign))
        .json(routes!(add_note), Access::Perm(InboxReply))
        .json(routes!(list_mentionable), Access::Perm(InboxReply))
        .json(routes!(list_labels), Access::Perm(InboxRead))
        .json(routes!(create_label), Access::Perm(InboxConfigure))
        .json(routes!(update_label), Access::Perm(InboxConfigure))
        .json(routes!(delete_label), Access::Perm(InboxConfigure))
        .json(routes!(add_conversation_label), Access::Perm(InboxAssign))
        .json(
            routes!(remove_conversation_label),
            Access::Perm(InboxAssign),
        )
        .json(routes!(list_quick_replies), Access::Perm(InboxReply))
        .json(routes!(create_quick_reply), Access::Perm(InboxConfigure))
        .json(routes!(update_quick_reply), Access::Perm(InboxConfigure))
        .json(routes!(delete_quick_reply), Access::Perm(InboxConfigure))
        .json(routes!(render_quick_reply), Access::Perm(InboxReply))
        .json(routes!(list_notifications), Access::Member)
        .json(routes!(mark_notifications_read), Access::Member)
        .json(routes!(set_availability), Access::Member)
        .json(routes!(get_inbox_settings), Access::Perm(InboxConfigure))
        .json(routes!(put_inbox_settings), Access::Perm(InboxConfigure))
        .json(routes!(retry_message), Access::Perm(InboxReply))
}

fn cursor(s: Option<&str>) -> Result<Option<Cursor>, ApiError> {
    s.map(|c| {
        Cursor::decode(c)
            .ok_or_else(|| ApiError::unprocessable("invalid_cursor", "cursor is not one we gave"))
    })
    .transpose()
}

fn opt_id<T>(
    s: Option<&str>,
    what: &str,
    parse: impl Fn(&str) -> Result<T, uuid::Error>,
) -> Result<Option<T>, ApiError> {
    s.map(|v| {
        parse(v)
            .map_err(|_| ApiError::unprocessable("invalid_filter", format!("{what} is not an id")))
    })
    .transpose()
}

/// The list's filters.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// `mine`, `unassigned` or `all` (default).
    pub view: Option<String>,
    pub team_id: Option<String>,
    pub channel_id: Option<String>,
    /// `open`, `pending`, `snoozed`, `resolved`, `active` (default: not resolved) or `any`.
    pub status: Option<String>,
    pub label_id: Option<String>,
    /// 3 to 100 characters: message text, contact name or username (and number, for those
    /// who may see numbers).
    pub q: Option<String>,
    pub cursor: Option<String>,
    /// 1 to 100 (default 50).
    pub limit: Option<i64>,
}

/// The conversations the caller may see, newest activity first, with the sidebar's unread
/// counts.
#[utoipa::path(get, path = "/api/v1/conversations", tag = "inbox", params(ListParams),
    responses((status = 200, description = "A page", body = ConversationPage),
        (status = 422, description = "Invalid filter, search or cursor", body = ErrorEnvelope)))]
async fn list_conversations(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Query(p): Query<ListParams>,
) -> Result<Json<ConversationPage>, ApiError> {
    let view = match p.view.as_deref().unwrap_or("all") {
        "mine" => ListView::Mine,
        "unassigned" => ListView::Unassigned,
        "all" => ListView::All,
        _ => {
            return Err(ApiError::unprocessable(
                "invalid_filter",
                "view is mine, unassigned or all",
            ));
        }
    };
    let q = ListQuery {
        view,
        team: opt_id(p.team_id.as_deref(), "team_id", TeamId::parse)?,
        channel: opt_id(p.channel_id.as_deref(), "channel_id", ChannelId::parse)?,
        status: p.status.unwrap_or_else(|| "active".into()),
        label: opt_id(p.label_id.as_deref(), "label_id", LabelId::parse)?,
        search: p.q.filter(|s| !s.trim().is_empty()),
        after: cursor(p.cursor.as_deref())?,
        limit: p.limit.unwrap_or(50).clamp(1, 100),
    };
    let mut tx = state.store().begin_read(&ctx).await?;
    let page = tx.list_conversations(&Viewer::of(&ctx), &q).await?;
    tx.commit().await?;
    Ok(Json(page))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ViewParams {
    /// Older messages: the `next_cursor` of the previous answer.
    pub cursor: Option<String>,
    /// 1 to 100 (default 50).
    pub limit: Option<i64>,
}

/// A conversation with its contact, a page of messages (newest first), notes and labels.
/// Opening it marks the customer's messages read for the caller.
#[utoipa::path(get, path = "/api/v1/conversations/{conversation_id}", tag = "inbox",
    params(("conversation_id" = String, Path, description = "Conversation id"), ViewParams),
    responses((status = 200, description = "The conversation", body = ConversationDetail),
        (status = 404, description = "No such conversation, or not one the caller may see", body = ErrorEnvelope)))]
async fn get_conversation(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
    Query(p): Query<ViewParams>,
) -> Result<Json<ConversationDetail>, ApiError> {
    let id = path_id(&id, ConversationId::parse)?;
    let before = cursor(p.cursor.as_deref())?;
    let v = Viewer::of(&ctx);
    let mut tx = state.store().begin_read(&ctx).await?;
    let mut detail = tx
        .conversation_detail(&v, id, before, p.limit.unwrap_or(50), state.now())
        .await?;
    tx.commit().await?;
    // Only a write when something was unread, and that write shares its commit with other
    // views' (SQLite has one writer).
    if detail.conversation.unread > 0 && v.user.is_some() {
        state
            .read_marks()
            .mark(&ctx, id)
            .await
            .map_err(ApiError::internal)?;
        detail.conversation.unread = 0;
    }
    Ok(Json(detail))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Assign {
    /// A member of the organisation, or null.
    pub assignee_id: Option<String>,
    /// A team, or null. Both null: unassigned.
    pub team_id: Option<String>,
}

/// Assigns a conversation to an agent and/or a team, or unassigns it (both null).
#[utoipa::path(post, path = "/api/v1/conversations/{conversation_id}/assign", tag = "inbox",
    params(("conversation_id" = String, Path, description = "Conversation id")), request_body = Assign,
    responses((status = 204, description = "Assigned"),
        (status = 404, description = "No such conversation here", body = ErrorEnvelope),
        (status = 422, description = "No such member or team", body = ErrorEnvelope)))]
async fn assign_conversation(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<Assign>,
) -> Result<StatusCode, ApiError> {
    let id = path_id(&id, ConversationId::parse)?;
    let assignee = opt_id(req.assignee_id.as_deref(), "assignee_id", UserId::parse)?;
    let team = opt_id(req.team_id.as_deref(), "team_id", TeamId::parse)?;
    let mut tx = state.store().begin(&ctx).await?;
    tx.assign_conversation(&Viewer::of(&ctx), id, assignee, team)
        .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeStatus {
    /// `resolve`, `reopen` or `snooze`.
    pub action: String,
    /// For `snooze`: RFC 3339, within the next year.
    pub until: Option<String>,
}

/// Resolves, reopens or snoozes a conversation (a snoozed one reopens at its time or when
/// the customer writes).
#[utoipa::path(post, path = "/api/v1/conversations/{conversation_id}/status", tag = "inbox",
    params(("conversation_id" = String, Path, description = "Conversation id")), request_body = ChangeStatus,
    responses((status = 204, description = "Changed"),
        (status = 404, description = "No such conversation here", body = ErrorEnvelope),
        (status = 422, description = "Unknown action or bad time", body = ErrorEnvelope)))]
async fn change_status(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<ChangeStatus>,
) -> Result<StatusCode, ApiError> {
    let id = path_id(&id, ConversationId::parse)?;
    let invalid = |m: &str| ApiError::unprocessable("invalid_status", m.to_owned());
    let change = match (req.action.as_str(), req.until.as_deref()) {
        ("resolve", None) => StatusChange::Resolve,
        ("reopen", None) => StatusChange::Reopen,
        ("snooze", Some(t)) => StatusChange::Snooze(
            time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                .map_err(|_| invalid("until is an RFC 3339 time"))?,
        ),
        ("snooze", None) => return Err(invalid("snooze needs until")),
        _ => {
            return Err(invalid(
                "action is resolve, reopen or snooze (until only with snooze)",
            ));
        }
    };
    let mut tx = state.store().begin(&ctx).await?;
    tx.change_status(&Viewer::of(&ctx), id, change, state.now())
        .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewNote {
    /// 1 to 4096 characters. A mention is the token `@[Name](user:<user id>)` (see
    /// `GET …/mentionable`); the id decides who is mentioned, and the note stores the
    /// member's current name in it.
    pub body: String,
    /// More members to notify (user ids), at most 20; merged with the text's mentions
    /// without repeats (at most 20 people in all).
    #[serde(default)]
    pub mentions: Vec<String>,
}

/// Writes an internal note (never sent to the customer); each mentioned member (from the
/// text's tokens and `mentions`) is notified once. Only members who may read the
/// conversation can be mentioned.
#[utoipa::path(post, path = "/api/v1/conversations/{conversation_id}/notes", tag = "inbox",
    params(("conversation_id" = String, Path, description = "Conversation id")), request_body = NewNote,
    responses((status = 201, description = "Written", body = Note),
        (status = 404, description = "No such conversation here", body = ErrorEnvelope),
        (status = 422, description = "Empty or too long, more than 20 people, or a mention of someone who is not a member or may not read the conversation (named)", body = ErrorEnvelope)))]
async fn add_note(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<NewNote>,
) -> Result<(StatusCode, Json<Note>), ApiError> {
    let id = path_id(&id, ConversationId::parse)?;
    if req.mentions.len() > 20 {
        return Err(ApiError::unprocessable(
            "invalid_note",
            "at most 20 mentions",
        ));
    }
    let mentions = req
        .mentions
        .iter()
        .map(|m| {
            UserId::parse(m)
                .map_err(|_| ApiError::unprocessable("invalid_note", "a mention is a user id"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut tx = state.store().begin(&ctx).await?;
    let note = tx
        .add_note(&Viewer::of(&ctx), id, &req.body, &mentions)
        .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(note)))
}

/// The members who may be mentioned in the conversation's notes (those who may read it),
/// each with the token that mentions them.
#[utoipa::path(get, path = "/api/v1/conversations/{conversation_id}/mentionable", tag = "inbox",
    params(("conversation_id" = String, Path, description = "Conversation id")),
    responses((status = 200, description = "Members, by name", body = Vec<Mentionable>),
        (status = 404, description = "No such conversation here", body = ErrorEnvelope)))]
async fn list_mentionable(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
) -> Result<Json<Vec<Mentionable>>, ApiError> {
    let id = path_id(&id, ConversationId::parse)?;
    let mut tx = state.store().begin_read(&ctx).await?;
    let members = tx.mentionable(&Viewer::of(&ctx), id).await?;
    tx.commit().await?;
    Ok(Json(members))
}

// ---- labels ----

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LabelBody {
    /// 1 to 50 characters, unique in the organisation.
    pub name: String,
    /// `#rrggbb`, lowercase hex.
    pub color: String,
}

/// The organisation's label catalogue, by name.
#[utoipa::path(get, path = "/api/v1/labels", tag = "inbox",
    responses((status = 200, description = "Labels", body = Vec<Label>)))]
async fn list_labels(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
) -> Result<Json<Vec<Label>>, ApiError> {
    let mut tx = state.store().begin_read(&ctx).await?;
    let labels = tx.labels().await?;
    tx.commit().await?;
    Ok(Json(labels))
}

/// Adds a label to the catalogue.
#[utoipa::path(post, path = "/api/v1/labels", tag = "inbox", request_body = LabelBody,
    responses((status = 201, description = "Created", body = Label),
        (status = 409, description = "Name taken", body = ErrorEnvelope),
        (status = 422, description = "Invalid name or color", body = ErrorEnvelope)))]
async fn create_label(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    ApiJson(req): ApiJson<LabelBody>,
) -> Result<(StatusCode, Json<Label>), ApiError> {
    let mut tx = state.store().begin(&ctx).await?;
    let label = tx.create_label(&req.name, &req.color).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(label)))
}

/// Renames or recolours a label.
#[utoipa::path(patch, path = "/api/v1/labels/{label_id}", tag = "inbox", request_body = LabelBody,
    params(("label_id" = String, Path, description = "Label id")),
    responses((status = 200, description = "Updated", body = Label),
        (status = 404, description = "No such label here", body = ErrorEnvelope),
        (status = 409, description = "Name taken", body = ErrorEnvelope),
        (status = 422, description = "Invalid name or color", body = ErrorEnvelope)))]
async fn update_label(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<LabelBody>,
) -> Result<Json<Label>, ApiError> {
    let id = path_id(&id, LabelId::parse)?;
    let mut tx = state.store().begin(&ctx).await?;
    let label = tx.update_label(id, &req.name, &req.color).await?;
    tx.commit().await?;
    Ok(Json(label))
}

/// Deletes a label (it comes off every conversation).
#[utoipa::path(delete, path = "/api/v1/labels/{label_id}", tag = "inbox",
    params(("label_id" = String, Path, description = "Label id")),
    responses((status = 204, description = "Deleted"),
        (status = 404, description = "No such label here", body = ErrorEnvelope)))]
async fn delete_label(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = path_id(&id, LabelId::parse)?;
    let mut tx = state.store().begin(&ctx).await?;
    tx.delete_label(id).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn set_label(
    state: &AppState,
    ctx: &frontdesk_store::TenantCtx,
    conversation: &str,
    label: &str,
    on: bool,
) -> Result<StatusCode, ApiError> {
    let conversation = path_id(conversation, ConversationId::parse)?;
    let label = path_id(label, LabelId::parse)?;
    let mut tx = state.store().begin(ctx).await?;
    tx.set_conversation_label(&Viewer::of(ctx), conversation, label, on)
        .await
        .map_err(|e| match e {
            // A label of the path that does not exist here is not found, like the conversation.
            frontdesk_store::StoreError::Invalid(_) => ApiError::NotFound,
            e => e.into(),
        })?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Puts a label on a conversation (no change if it is there).
#[utoipa::path(put, path = "/api/v1/conversations/{conversation_id}/labels/{label_id}", tag = "inbox",
    params(("conversation_id" = String, Path, description = "Conversation id"),
        ("label_id" = String, Path, description = "Label id")),
    responses((status = 204, description = "Labelled"),
        (status = 404, description = "No such conversation or label here", body = ErrorEnvelope)))]
async fn add_conversation_label(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path((conversation, label)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    set_label(&state, &ctx, &conversation, &label, true).await
}

/// Takes a label off a conversation (no change if it is not there).
#[utoipa::path(delete, path = "/api/v1/conversations/{conversation_id}/labels/{label_id}", tag = "inbox",
    params(("conversation_id" = String, Path, description = "Conversation id"),
        ("label_id" = String, Path, description = "Label id")),
    responses((status = 204, description = "Unlabelled"),
        (status = 404, description = "No such conversation or label here", body = ErrorEnvelope)))]
async fn remove_conversation_label(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path((conversation, label)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    set_label(&state, &ctx, &conversation, &label, false).await
}

// ---- quick replies ----

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuickReplyBody {
    /// `[a-z0-9_-]{1,32}`, unique in the organisation.
    pub shortcut: String,
    /// 1 to 4096 characters; may use `{{contact.first_name}}`, `{{contact.name}}`,
    /// `{{agent.name}}`.
    pub body: String,
}

/// The organisation's quick replies, by shortcut.
#[utoipa::path(get, path = "/api/v1/quick-replies", tag = "inbox",
    responses((status = 200, description = "Quick replies", body = Vec<QuickReply>)))]
async fn list_quick_replies(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
) -> Result<Json<Vec<QuickReply>>, ApiError> {
    let mut tx = state.store().begin_read(&ctx).await?;
    let all = tx.quick_replies().await?;
    tx.commit().await?;
    Ok(Json(all))
}

/// Adds a quick reply.
#[utoipa::path(post, path = "/api/v1/quick-replies", tag = "inbox", request_body = QuickReplyBody,
    responses((status = 201, description = "Created", body = QuickReply),
        (status = 409, description = "Shortcut taken", body = ErrorEnvelope),
        (status = 422, description = "Invalid shortcut or body", body = ErrorEnvelope)))]
async fn create_quick_reply(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    ApiJson(req): ApiJson<QuickReplyBody>,
) -> Result<(StatusCode, Json<QuickReply>), ApiError> {
    let mut tx = state.store().begin(&ctx).await?;
    let qr = tx.save_quick_reply(None, &req.shortcut, &req.body).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(qr)))
}

/// Replaces a quick reply's shortcut and text.
#[utoipa::path(put, path = "/api/v1/quick-replies/{quick_reply_id}", tag = "inbox", request_body = QuickReplyBody,
    params(("quick_reply_id" = String, Path, description = "Quick reply id")),
    responses((status = 200, description = "Replaced", body = QuickReply),
        (status = 404, description = "No such quick reply here", body = ErrorEnvelope),
        (status = 409, description = "Shortcut taken", body = ErrorEnvelope),
        (status = 422, description = "Invalid shortcut or body", body = ErrorEnvelope)))]
async fn update_quick_reply(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<QuickReplyBody>,
) -> Result<Json<QuickReply>, ApiError> {
    let id = path_id(&id, QuickReplyId::parse)?;
    let mut tx = state.store().begin(&ctx).await?;
    let qr = tx
        .save_quick_reply(Some(id), &req.shortcut, &req.body)
        .await?;
    tx.commit().await?;
    Ok(Json(qr))
}

/// Deletes a quick reply.
#[utoipa::path(delete, path = "/api/v1/quick-replies/{quick_reply_id}", tag = "inbox",
    params(("quick_reply_id" = String, Path, description = "Quick reply id")),
    responses((status = 204, description = "Deleted"),
        (status = 404, description = "No such quick reply here", body = ErrorEnvelope)))]
async fn delete_quick_reply(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = path_id(&id, QuickReplyId::parse)?;
    let mut tx = state.store().begin(&ctx).await?;
    tx.delete_quick_reply(id).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A quick reply filled in for a conversation.
#[derive(Serialize, ToSchema)]
pub struct RenderedReply {
    pub text: String,
}

/// A quick reply with its variables filled in for a conversation (the contact's name, the
/// caller's name), for the composer.
#[utoipa::path(get, path = "/api/v1/conversations/{conversation_id}/quick-replies/{quick_reply_id}", tag = "inbox",
    params(("conversation_id" = String, Path, description = "Conversation id"),
        ("quick_reply_id" = String, Path, description = "Quick reply id")),
    responses((status = 200, description = "The text", body = RenderedReply),
        (status = 404, description = "No such conversation or quick reply here", body = ErrorEnvelope)))]
async fn render_quick_reply(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Tenant(ctx): Tenant,
    Path((conversation, id)): Path<(String, String)>,
) -> Result<Json<RenderedReply>, ApiError> {
    let conversation = path_id(&conversation, ConversationId::parse)?;
    let id = path_id(&id, QuickReplyId::parse)?;
    let agent = caller
        .principal
        .user
        .as_ref()
        .map(|u| u.name.clone())
        .unwrap_or_default();
    let mut tx = state.store().begin_read(&ctx).await?;
    let text = tx
        .render_quick_reply_for(&Viewer::of(&ctx), id, conversation, &agent)
        .await?;
    tx.commit().await?;
    Ok(Json(RenderedReply { text }))
}

// ---- notifications and availability ----

fn person(ctx: &frontdesk_store::TenantCtx) -> Result<UserId, ApiError> {
    ctx.user_id().ok_or_else(|| {
        ApiError::forbidden(
            "not_for_api_keys",
            "notifications and availability belong to people, not API keys",
        )
    })
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NotificationParams {
    /// 1 to 100 (default 50).
    pub limit: Option<i64>,
}

/// The caller's notifications and how many are unread.
#[derive(Serialize, ToSchema)]
pub struct NotificationList {
    pub items: Vec<Notification>,
    pub unread: i64,
}

/// The caller's notifications (mentions), newest first.
#[utoipa::path(get, path = "/api/v1/notifications", tag = "inbox", params(NotificationParams),
    responses((status = 200, description = "Notifications", body = NotificationList),
        (status = 403, description = "An API key has no notifications", body = ErrorEnvelope)))]
async fn list_notifications(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Query(p): Query<NotificationParams>,
) -> Result<Json<NotificationList>, ApiError> {
    let user = person(&ctx)?;
    let mut tx = state.store().begin_read(&ctx).await?;
    let (items, unread) = tx
        .notifications(user, p.limit.unwrap_or(50).clamp(1, 100))
        .await?;
    tx.commit().await?;
    Ok(Json(NotificationList { items, unread }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MarkRead {
    /// One notification; absent: all of the caller's.
    pub id: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Marked {
    /// How many were unread and are now read.
    pub marked: u64,
}

/// Marks one of the caller's notifications read, or all of them.
#[utoipa::path(post, path = "/api/v1/notifications/read", tag = "inbox", request_body = MarkRead,
    responses((status = 200, description = "Marked", body = Marked),
        (status = 404, description = "No such notification of the caller's", body = ErrorEnvelope)))]
async fn mark_notifications_read(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    ApiJson(req): ApiJson<MarkRead>,
) -> Result<Json<Marked>, ApiError> {
    let user = person(&ctx)?;
    let id = req
        .id
        .as_deref()
        .map(|s| path_id(s, NotificationId::parse))
        .transpose()?;
    let mut tx = state.store().begin(&ctx).await?;
    let marked = tx.mark_notifications_read(user, id).await?;
    tx.commit().await?;
    Ok(Json(Marked { marked }))
}

#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AvailabilityBody {
    pub availability: Availability,
}

/// Sets the caller's availability: round-robin assignment picks among `online` agents seen
/// in the last ten minutes (an open event stream keeps them seen).
#[utoipa::path(put, path = "/api/v1/me/availability", tag = "inbox", request_body = AvailabilityBody,
    responses((status = 200, description = "Set", body = AvailabilityBody),
        (status = 403, description = "API keys have no availability", body = ErrorEnvelope)))]
async fn set_availability(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    ApiJson(req): ApiJson<AvailabilityBody>,
) -> Result<Json<AvailabilityBody>, ApiError> {
    let user = person(&ctx)?;
    let mut tx = state.store().begin(&ctx).await?;
    tx.set_availability(user, req.availability, state.now())
        .await?;
    tx.commit().await?;
    Ok(Json(req))
}

// ---- inbox settings ----

/// A number's inbox settings.
#[utoipa::path(get, path = "/api/v1/channels/{channel_id}/inbox", tag = "inbox",
    params(("channel_id" = String, Path, description = "Channel id")),
    responses((status = 200, description = "The settings", body = InboxSettings),
        (status = 404, description = "No such channel here", body = ErrorEnvelope)))]
async fn get_inbox_settings(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
) -> Result<Json<InboxSettings>, ApiError> {
    let id = path_id(&id, ChannelId::parse)?;
    let mut tx = state.store().begin_read(&ctx).await?;
    let s = tx.inbox_settings(id).await?;
    tx.commit().await?;
    Ok(Json(s))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InboxSettingsBody {
    /// The teams that serve the number (their members see its conversations), at most 50.
    pub team_ids: Vec<String>,
    pub auto_assign: AutoAssign,
    /// Needed for `round_robin`: whose online members take turns.
    pub assign_team_id: Option<String>,
}

/// Sets which teams serve a number and how its new conversations are assigned.
#[utoipa::path(put, path = "/api/v1/channels/{channel_id}/inbox", tag = "inbox", request_body = InboxSettingsBody,
    params(("channel_id" = String, Path, description = "Channel id")),
    responses((status = 200, description = "Set", body = InboxSettings),
        (status = 404, description = "No such channel here", body = ErrorEnvelope),
        (status = 422, description = "Unknown team, too many teams, or round-robin without a team", body = ErrorEnvelope)))]
async fn put_inbox_settings(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<InboxSettingsBody>,
) -> Result<Json<InboxSettings>, ApiError> {
    let id = path_id(&id, ChannelId::parse)?;
    if req.team_ids.len() > 50 {
        return Err(ApiError::unprocessable(
            "invalid",
            "at most 50 teams serve an inbox",
        ));
    }
    let teams = req
        .team_ids
        .iter()
        .map(|t| {
            TeamId::parse(t).map_err(|_| ApiError::unprocessable("invalid", "a team id is an id"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let assign_team = opt_id(
        req.assign_team_id.as_deref(),
        "assign_team_id",
        TeamId::parse,
    )?;
    let mut tx = state.store().begin(&ctx).await?;
    let s = tx
        .set_inbox_settings(id, &teams, req.auto_assign, assign_team)
        .await
        .map_err(|e| match e {
            // Another organisation's team named in the body is not found, as in a path.
            frontdesk_store::StoreError::Invalid(m) if m.starts_with("no team") => {
                ApiError::NotFound
            }
            e => e.into(),
        })?;
    tx.commit().await?;
    Ok(Json(s))
}

// ---- retry ----

/// Sends a failed outgoing message again (the same message, queued anew). A free-form
/// message needs the customer's 24-hour window open.
#[utoipa::path(post, path = "/api/v1/messages/{message_id}/retry", tag = "inbox",
    params(("message_id" = String, Path, description = "Message id")),
    responses((status = 202, description = "Queued again"),
        (status = 404, description = "No such message here, or in a conversation the caller may not see", body = ErrorEnvelope),
        (status = 409, description = "Not a failed outgoing message, or the window is closed", body = ErrorEnvelope)))]
async fn retry_message(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = path_id(&id, MessageId::parse)?;
    let mut tx = state.store().begin(&ctx).await?;
    tx.retry_message(&Viewer::of(&ctx), id, state.now()).await?;
    tx.commit().await?;
    Ok(StatusCode::ACCEPTED)
}
