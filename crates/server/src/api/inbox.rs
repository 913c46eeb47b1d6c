//! The team inbox API: the conversation list (one request per screen: rows, next cursor
//! and the sidebar's unread counts), the conversation view (conversation, contact,
//! messages newest first, notes, labels; opening it marks it read for the caller), and the
//! actions agents take. Visibility is enforced in the store's SQL: a conversation the
//! caller may not see is 404, whatever the action. Numbers are masked for callers without
//! `contacts.view_phone`.

use super::{ApiJson, path_id};
use crate::AppState;
use crate::auth::{Access, Tenant};
use crate::error::{ApiError, ErrorEnvelope};
use crate::routes::RouteTableBuilder;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use frontdesk_domain::{ChannelId, ConversationId, LabelId, Permission, TeamId, UserId};
use frontdesk_store::inbox::{
    ConversationDetail, ConversationPage, Cursor, ListQuery, ListView, Note, StatusChange, Viewer,
};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::routes;

pub(crate) fn routes(b: RouteTableBuilder) -> RouteTableBuilder {
    use Permission::*;
    b.json(routes!(list_conversations), Access::Perm(InboxRead))
        .json(routes!(get_conversation), Access::Perm(InboxRead))
        .json(routes!(assign_conversation), Access::Perm(InboxAssign))
        .json(routes!(change_status), Access::Perm(InboxAssign))
        .json(routes!(add_note), Access::Perm(InboxReply))
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
    // Only a write when something was unread (SQLite has one writer).
    if detail.conversation.unread > 0 && v.user.is_some() {
        let mut tx = state.store().begin(&ctx).await?;
        tx.mark_conversation_read(&v, id).await?;
        tx.commit().await?;
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
    /// 1 to 4096 characters.
    pub body: String,
    /// Members to notify (user ids), at most 20.
    #[serde(default)]
    pub mentions: Vec<String>,
}

/// Writes an internal note (never sent to the customer); each mentioned member is notified.
#[utoipa::path(post, path = "/api/v1/conversations/{conversation_id}/notes", tag = "inbox",
    params(("conversation_id" = String, Path, description = "Conversation id")), request_body = NewNote,
    responses((status = 201, description = "Written", body = Note),
        (status = 404, description = "No such conversation here", body = ErrorEnvelope),
        (status = 422, description = "Empty or too long, or a mention of a non-member", body = ErrorEnvelope)))]
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
