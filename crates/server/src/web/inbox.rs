//! The team inbox pages: filters with unread counts and search on the left, the
//! conversation list (cursor "load more") in the middle, and the open conversation on the
//! right with its whole history (every message kind, ticks, failures with a retry), notes
//! interleaved, the triage controls and the composer. Everything goes through the same
//! store calls as the JSON API, so visibility (404 for a conversation one may not see) and
//! number masking are the store's, not the page's. `app.js` keeps the open page current
//! from `GET /api/v1/events` (or by polling the JSON API while the stream is not open).

use super::{PageCtx, PageError, PageForm, local_when, see_other, when};
use crate::AppState;
use crate::auth::{Access, Authed, Tenant};
use crate::error::ApiError;
use crate::routes::RouteTableBuilder;
use axum::extract::{Path, Query, RawForm, State};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use axum::routing::{get, post};
use frontdesk_domain::mention::{MAX_MENTIONS, NotePart};
use frontdesk_domain::template::{FillInput, TrackedLink};
use frontdesk_domain::{
    ChannelId, ConversationId, E164, LabelId, MessageId, Permission, QuickReplyId, TeamId,
    TemplateId, UserId,
};
use frontdesk_store::inbox::{
    ConversationDetail, ConversationItem, ConversationPage, Cursor, InboxMessage, Label, ListQuery,
    ListView, Mentionable, Note, StatusChange, Viewer, render_quick_reply,
};
use frontdesk_store::{
    CustomerIdentity, Member, NewOutbound, StoreError, Team, TemplateRecord, TenantCtx,
};
use frontdesk_whatsapp::Outbound;
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;

const NAV_PATH: &str = "/inbox";

/// The emoji the composer offers (a small built-in set).
const EMOJI: &[&str] = &[
    "😀", "😊", "😂", "🙏", "👍", "👋", "🎉", "❤️", "✅", "⏰", "📅", "📍", "📞", "💊", "🩺", "🙂",
];

pub(crate) fn routes(b: RouteTableBuilder) -> RouteTableBuilder {
    use Permission::*;
    b.page(
        Method::GET,
        "/inbox",
        get(inbox_page),
        Access::Perm(InboxRead),
    )
    .page(
        Method::GET,
        "/inbox/new",
        get(new_chat_page),
        Access::Perm(InboxReply),
    )
    .page(
        Method::POST,
        "/inbox/new",
        post(new_chat),
        Access::Perm(InboxReply),
    )
    .page(
        Method::GET,
        "/inbox/{conversation_id}",
        get(conversation_page),
        Access::Perm(InboxRead),
    )
    .page(
        Method::POST,
        "/inbox/{conversation_id}/reply",
        post(reply),
        Access::Perm(InboxReply),
    )
    .page(
        Method::POST,
        "/inbox/{conversation_id}/template",
        post(send_template),
        Access::Perm(InboxReply),
    )
    .page(
        Method::POST,
        "/inbox/{conversation_id}/notes",
        post(add_note),
        Access::Perm(InboxReply),
    )
    .page(
        Method::POST,
        "/inbox/{conversation_id}/assign",
        post(assign),
        Access::Perm(InboxAssign),
    )
    .page(
        Method::POST,
        "/inbox/{conversation_id}/status",
        post(change_status),
        Access::Perm(InboxAssign),
    )
    .page(
        Method::POST,
        "/inbox/{conversation_id}/labels",
        post(set_label),
        Access::Perm(InboxAssign),
    )
    .page(
        Method::POST,
        "/inbox/{conversation_id}/messages/{message_id}/retry",
        post(retry),
        Access::Perm(InboxReply),
    )
}

fn not_found<T>(_: T) -> PageError {
    PageError(ApiError::NotFound)
}

fn invalid(m: impl Into<String>) -> PageError {
    PageError(ApiError::unprocessable("invalid_form", m.into()))
}

/// The list's filters, as query parameters (the same names as the JSON API's).
#[derive(Deserialize, Default, Clone)]
struct ListParams {
    view: Option<String>,
    team_id: Option<String>,
    channel_id: Option<String>,
    status: Option<String>,
    label_id: Option<String>,
    q: Option<String>,
    cursor: Option<String>,
}

fn blank(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

impl ListParams {
    fn query(&self) -> Result<ListQuery, PageError> {
        let view = match blank(&self.view).unwrap_or("all") {
            "mine" => ListView::Mine,
            "unassigned" => ListView::Unassigned,
            "all" => ListView::All,
            _ => return Err(invalid("view is mine, unassigned or all")),
        };
        let status = blank(&self.status).unwrap_or("active").to_owned();
        if !["open", "pending", "snoozed", "resolved", "active", "any"].contains(&status.as_str()) {
            return Err(invalid("unknown status filter"));
        }
        let id_of = |s: &Option<String>| -> Result<Option<uuid::Uuid>, PageError> {
            blank(s)
                .map(|v| uuid::Uuid::parse_str(v).map_err(|_| invalid("a filter is not an id")))
                .transpose()
        };
        let after = blank(&self.cursor)
            .map(|c| Cursor::decode(c).ok_or_else(|| invalid("cursor is not one we gave")))
            .transpose()?;
        Ok(ListQuery {
            view,
            team: id_of(&self.team_id)?.map(TeamId::from_uuid),
            channel: id_of(&self.channel_id)?.map(ChannelId::from_uuid),
            status,
            label: id_of(&self.label_id)?.map(LabelId::from_uuid),
            search: blank(&self.q).map(str::to_owned),
            after,
            limit: 50,
        })
    }

    /// The query string of these filters (without the cursor), for links.
    fn encode(&self, cursor: Option<&str>) -> String {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("view", &self.view),
            ("team_id", &self.team_id),
            ("channel_id", &self.channel_id),
            ("status", &self.status),
            ("label_id", &self.label_id),
            ("q", &self.q),
        ] {
            if let Some(v) = blank(v) {
                s.append_pair(k, v);
            }
        }
        if let Some(c) = cursor {
            s.append_pair("cursor", c);
        }
        s.finish()
    }

    fn with(&self, f: impl FnOnce(&mut Self)) -> String {
        let mut p = ListParams {
            cursor: None,
            ..self.clone()
        };
        f(&mut p);
        p.encode(None)
    }
}

/// What the sidebar and the controls need besides the list.
struct Catalogue {
    members: Vec<Member>,
    teams: Vec<Team>,
    labels: Vec<Label>,
    channels: Vec<frontdesk_store::ChannelView>,
    /// The organisation's time zone: snoozes are typed and shown in it.
    time_zone: String,
}

async fn catalogue(state: &AppState, ctx: &TenantCtx) -> Result<Catalogue, PageError> {
    let members = state.store().list_members(ctx).await?;
    let teams = state.store().list_teams(ctx).await?;
    let channels = state.store().list_channels(ctx).await?;
    let mut tx = state.store().begin_read(ctx).await?;
    let labels = tx.labels().await?;
    let time_zone = tx.time_zone().await?;
    tx.commit().await?;
    Ok(Catalogue {
        members,
        teams,
        labels,
        channels,
        time_zone,
    })
}

impl Catalogue {
    fn member_name(&self, id: Option<UserId>) -> Option<&str> {
        let id = id?;
        self.members
            .iter()
            .find(|m| m.user_id == id)
            .map(|m| m.name.as_str())
    }

    fn team_name(&self, id: Option<TeamId>) -> Option<&str> {
        let id = id?;
        self.teams
            .iter()
            .find(|t| t.id == id)
            .map(|t| t.name.as_str())
    }
}

/// Who the customer is, as this viewer may see them (the number comes masked from the
/// store for viewers without `contacts.view_phone`).
fn contact_title(c: &ConversationItem) -> String {
    c.contact
        .name
        .clone()
        .or_else(|| c.contact.username.clone())
        .or_else(|| c.contact.phone.clone())
        .unwrap_or_else(|| "Customer".into())
}

async fn list_page(
    state: &AppState,
    ctx: &TenantCtx,
    p: &ListParams,
) -> Result<ConversationPage, PageError> {
    let q = p.query()?;
    let mut tx = state.store().begin_read(ctx).await?;
    let page = tx.list_conversations(&Viewer::of(ctx), &q).await?;
    tx.commit().await?;
    Ok(page)
}

async fn inbox_page(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Tenant(ctx): Tenant,
    headers: HeaderMap,
    Query(p): Query<ListParams>,
) -> Result<Response, PageError> {
    let page = list_page(&state, &ctx, &p).await?;
    let cat = catalogue(&state, &ctx).await?;
    let pc = PageCtx::new(&state, Some(caller), &headers, NAV_PATH).await;
    Ok(pc.render(
        "Inbox",
        layout(
            &pc,
            &p,
            &page,
            &cat,
            None,
            html! {
                p.muted data-testid="no-conversation" { "Choose a conversation." }
            },
        ),
    ))
}

/// The three panes; `open` is the conversation shown on the right.
fn layout(
    pc: &PageCtx,
    p: &ListParams,
    page: &ConversationPage,
    cat: &Catalogue,
    open: Option<ConversationId>,
    right: Markup,
) -> Markup {
    let view = blank(&p.view).unwrap_or("all");
    let base = |c: Option<ConversationId>| match c {
        Some(c) => format!("/inbox/{c}"),
        None => "/inbox".to_owned(),
    };
    html! {
        div #inbox.inbox data-open=[open.map(|c| c.to_string())] data-list-query=(p.encode(None)) data-csrf=(pc.csrf) {
            aside.inbox-filters data-testid="inbox-filters" {
                form method="get" action=(base(open)) data-testid="inbox-search" {
                    input type="hidden" name="view" value=(view);
                    input type="search" name="q" value=[blank(&p.q)] placeholder="Search messages, names" minlength="3" maxlength="100" aria-label="Search";
                }
                nav.views {
                    @for (key, label, count) in [("mine", "Mine", page.unread.mine), ("unassigned", "Unassigned", page.unread.unassigned), ("all", "All", page.unread.all)] {
                        a href={ (base(open)) "?" (p.with(|x| { x.view = Some(key.into()); x.q = None; })) }
                            class=[(view == key).then_some("active")] data-testid={ "view-" (key) } {
                            (label)
                            span.badge.unread data-unread=(key) hidden[count == 0] { (count) }
                        }
                    }
                }
                form method="get" action=(base(open)) data-testid="inbox-filter-form" {
                    input type="hidden" name="view" value=(view);
                    label { "Status"
                        select name="status" {
                            @for (v, l) in [("active", "Open and pending"), ("open", "Open"), ("pending", "Pending"), ("snoozed", "Snoozed"), ("resolved", "Resolved"), ("any", "Any")] {
                                option value=(v) selected[blank(&p.status).unwrap_or("active") == v] { (l) }
                            }
                        }
                    }
                    (filter_select("Team", "team_id", "Any team", blank(&p.team_id), cat.teams.iter().map(|t| (t.id.to_string(), t.name.as_str())).collect()))
                    (filter_select("Number", "channel_id", "Any number", blank(&p.channel_id), cat.channels.iter().map(|c| (c.id.to_string(), c.name.as_str())).collect()))
                    (filter_select("Label", "label_id", "Any label", blank(&p.label_id), cat.labels.iter().map(|l| (l.id.to_string(), l.name.as_str())).collect()))
                    button type="submit" { "Filter" }
                }
                @if pc.can(Permission::InboxReply) {
                    p { a href="/inbox/new" data-testid="new-chat" { "New chat" } }
                }
            }
            section.inbox-list {
                ul #conv-list data-testid="conversation-list" {
                    @for c in &page.items {
                        (list_row(c, open == Some(c.id), &p.encode(None)))
                    }
                }
                @if page.items.is_empty() {
                    p.muted data-testid="no-conversations" { "No conversations here." }
                }
                @if let Some(next) = &page.next_cursor {
                    a.more href={ (base(open)) "?" (p.encode(Some(next))) } data-testid="load-more" { "Load more" }
                }
            }
            section.inbox-main { (right) }
        }
    }
}

/// One of the list's id filters: a labelled select of `(id, name)` choices after "any",
/// with the current one selected; nothing when there is nothing to choose from.
fn filter_select(
    label: &str,
    name: &str,
    any: &str,
    current: Option<&str>,
    choices: Vec<(String, &str)>,
) -> Markup {
    html! {
        @if !choices.is_empty() {
            label { (label)
                select name=(name) {
                    option value="" { (any) }
                    @for (id, text) in choices {
                        option value=(id) selected[current == Some(id.as_str())] { (text) }
                    }
                }
            }
        }
    }
}

fn list_row(c: &ConversationItem, active: bool, query: &str) -> Markup {
    html! {
        li class={ "conv" @if active { " active" } } data-conversation-id=(c.id) {
            a href={ "/inbox/" (c.id) "?" (query) } {
                span.conv-name { (contact_title(c)) }
                @if c.unread > 0 { span.badge.unread data-testid="conv-unread" { (c.unread) } }
                span.conv-preview { (c.last_preview) }
                span.conv-meta { (c.status) " · " (when(c.last_message_at)) }
            }
        }
    }
}

async fn conversation_page(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Tenant(ctx): Tenant,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(p): Query<ListParams>,
) -> Result<Response, PageError> {
    let id = ConversationId::parse(&id).map_err(not_found)?;
    render_conversation(&state, caller, &ctx, &headers, id, &p, None).await
}

/// A note the store refused, shown again in the composer with the reason beside it.
struct NoteDraft {
    body: String,
    mentions: Vec<UserId>,
    error: String,
}

/// What the note composer needs: who may be mentioned, and a refused note to show again.
struct NoteComposer {
    mentionable: Vec<Mentionable>,
    draft: Option<NoteDraft>,
}

/// The inbox with one conversation open (`draft`: a refused note, answered with 422).
async fn render_conversation(
    state: &AppState,
    caller: crate::auth::Caller,
    ctx: &TenantCtx,
    headers: &HeaderMap,
    id: ConversationId,
    p: &ListParams,
    draft: Option<NoteDraft>,
) -> Result<Response, PageError> {
    let v = Viewer::of(ctx);
    let mut tx = state.store().begin_read(ctx).await?;
    let detail = tx
        .conversation_detail(&v, id, None, 100, state.now())
        .await?;
    let (quick, mentionable) = if ctx.can(Permission::InboxReply) {
        (tx.quick_replies().await?, tx.mentionable(&v, id).await?)
    } else {
        (Vec::new(), Vec::new())
    };
    tx.commit().await?;
    let refused = draft.is_some();
    let notes = NoteComposer { mentionable, draft };
    if detail.conversation.unread > 0 && v.user.is_some() {
        state
            .read_marks()
            .mark(ctx, id)
            .await
            .map_err(ApiError::internal)?;
    }
    let templates = if ctx.can(Permission::InboxReply) && !detail.window_open {
        let channel = state
            .store()
            .list_channels(ctx)
            .await?
            .into_iter()
            .find(|c| c.id == detail.conversation.channel_id);
        match channel {
            Some(c) => {
                let mut tx = state.store().begin_read(ctx).await?;
                let t = tx.approved_templates_of(&c.waba_id).await?;
                tx.commit().await?;
                t
            }
            None => Vec::new(),
        }
    } else {
        Vec::new()
    };
    let page = list_page(state, ctx, p).await?;
    let cat = catalogue(state, ctx).await?;
    let agent = caller
        .principal
        .user
        .as_ref()
        .map(|u| u.name.clone())
        .unwrap_or_default();
    let quick: Vec<(QuickReplyId, String, String)> = quick
        .into_iter()
        .map(|q| {
            let text =
                render_quick_reply(&q.body, detail.conversation.contact.name.as_deref(), &agent);
            (q.id, q.shortcut, text)
        })
        .collect();
    let title = contact_title(&detail.conversation);
    let pc = PageCtx::new(state, Some(caller), headers, NAV_PATH).await;
    let right = conversation_pane(&pc, &detail, &cat, &quick, &templates, &notes);
    let mut r = pc.render(
        &format!("Inbox · {title}"),
        layout(&pc, p, &page, &cat, Some(id), right),
    );
    if refused {
        *r.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
    }
    Ok(r)
}

/// Milliseconds since the epoch, for ordering items on the page.
fn millis(t: time::OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// A message or a note, for interleaving by time.
enum Entry<'a> {
    Message(&'a InboxMessage),
    Note(&'a Note),
}

fn conversation_pane(
    pc: &PageCtx,
    d: &ConversationDetail,
    cat: &Catalogue,
    quick: &[(QuickReplyId, String, String)],
    templates: &[TemplateRecord],
    notes: &NoteComposer,
) -> Markup {
    let c = &d.conversation;
    let mut entries: Vec<(time::OffsetDateTime, Entry<'_>)> = d
        .messages
        .iter()
        .map(|m| (m.created_at, Entry::Message(m)))
        .chain(d.notes.iter().map(|n| (n.created_at, Entry::Note(n))))
        .collect();
    entries.sort_by_key(|(t, _)| *t);
    let action = |what: &str| format!("/inbox/{}/{what}", c.id);
    html! {
        header.conv-head data-testid="conversation-head" {
            h2 data-testid="contact-name" { (contact_title(c)) }
            p.muted {
                @if let Some(p) = &c.contact.phone { span data-testid="contact-phone" { (p) } " · " }
                @if let Some(u) = &c.contact.username { "@" (u) " · " }
                span data-testid="conversation-status" { (c.status) }
                @if let Some(t) = c.snoozed_until {
                    " until " span data-testid="snoozed-until" { (local_when(t, &cat.time_zone)) }
                }
                " · "
                span data-testid="conversation-assignee" {
                    @match (cat.member_name(c.assignee_id), cat.team_name(c.team_id)) {
                        (Some(m), Some(t)) => { (m) " (" (t) ")" }
                        (Some(m), None) => { (m) }
                        (None, Some(t)) => { "team " (t) }
                        (None, None) => { "unassigned" }
                    }
                }
            }
            p.labels data-testid="conversation-labels" {
                @for l in &c.labels { span.badge.label { (l.name) } " " }
            }
        }
        @if pc.can(Permission::InboxAssign) {
            div.conv-actions data-testid="conversation-actions" {
                form.inline method="post" action=(action("assign")) data-testid="assign-form" {
                    (pc.csrf_field())
                    select name="to" aria-label="Assign to" {
                        option value="" { "Unassigned" }
                        @for m in &cat.members {
                            option value={ "user:" (m.user_id) } selected[c.assignee_id == Some(m.user_id)] { (m.name) }
                        }
                        @for t in &cat.teams {
                            option value={ "team:" (t.id) } selected[c.assignee_id.is_none() && c.team_id == Some(t.id)] { "Team " (t.name) }
                        }
                    }
                    button type="submit" data-testid="assign-submit" { "Assign" }
                }
                @if c.status == "resolved" {
                    form.inline method="post" action=(action("status")) {
                        (pc.csrf_field())
                        input type="hidden" name="action" value="reopen";
                        button type="submit" data-testid="reopen" { "Reopen" }
                    }
                } @else {
                    form.inline method="post" action=(action("status")) {
                        (pc.csrf_field())
                        input type="hidden" name="action" value="resolve";
                        button type="submit" data-testid="resolve" { "Resolve" }
                    }
                }
                form.inline method="post" action=(action("status")) data-testid="snooze-form" {
                    (pc.csrf_field())
                    input type="hidden" name="action" value="snooze";
                    input type="datetime-local" name="until" required aria-label={ "Snooze until (" (cat.time_zone) " time)" };
                    button type="submit" { "Snooze" }
                }
                @if !cat.labels.is_empty() {
                    form.inline method="post" action=(action("labels")) data-testid="label-form" {
                        (pc.csrf_field())
                        select name="label_id" aria-label="Label" {
                            @for l in &cat.labels {
                                option value=(l.id) { (l.name) }
                            }
                        }
                        select name="on" aria-label="Add or remove" {
                            option value="true" { "add" }
                            option value="false" { "remove" }
                        }
                        button type="submit" { "Label" }
                    }
                }
            }
        }
        @if let Some(cursor) = &d.next_cursor {
            button.older type="button" data-testid="older-messages" data-cursor=(cursor) { "Older messages" }
        }
        ol #conv-history.history data-testid="history" data-conversation-id=(c.id) {
            @for (_, e) in &entries {
                @match e {
                    Entry::Message(m) => (message_item(pc, c.id, m)),
                    Entry::Note(n) => (note_item(cat, n)),
                }
            }
        }
        @if d.next_cursor.is_some() {
            p.muted { "Older messages are available through the API." }
        }
        @if pc.can(Permission::InboxReply) {
            (composer(pc, d, quick, templates, notes))
        }
    }
}

fn ticks(status: &str) -> &'static str {
    match status {
        "queued" | "accepted" => "🕓",
        "sent" => "✓",
        "delivered" | "read" => "✓✓",
        "failed" => "⚠",
        _ => "",
    }
}

/// The object of a kind inside a message's content: the provider's `{"location": {…}}`
/// inbound, or the flat outbound shape.
fn part<'a>(content: &'a Value, key: &str) -> &'a Value {
    match content.get(key) {
        Some(v) if v.is_object() || v.is_array() => v,
        _ => content,
    }
}

fn message_item(pc: &PageCtx, conv: ConversationId, m: &InboxMessage) -> Markup {
    let status = m.status.as_str();
    let dir = if m.direction == "in" { "in" } else { "out" };
    html! {
        li class={ "msg " (dir) } data-message-id=(m.id) data-kind=(m.kind) data-status=(status) data-at=(millis(m.created_at)) {
            @if let Some(q) = &m.quoted {
                blockquote.quote data-testid="quoted" { (q.preview) }
            }
            (message_body(m))
            span.msg-meta {
                (when(m.created_at))
                @if dir == "out" {
                    " " span class={ "ticks" @if status == "read" { " read" } } data-testid="ticks" title=(status) { (ticks(status)) }
                }
            }
            @if status == "failed" {
                p.error.msg-failed data-testid="failed-reason" {
                    "Not delivered"
                    @if let Some(code) = m.error_code { " (" (code) ")" }
                    @if let Some(t) = &m.error_title { ": " (t) }
                }
                @if pc.can(Permission::InboxReply) {
                    form.inline method="post" action={ "/inbox/" (conv) "/messages/" (m.id) "/retry" } {
                        (pc.csrf_field())
                        button type="submit" data-testid="retry" { "Retry" }
                    }
                }
            }
        }
    }
}

fn message_body(m: &InboxMessage) -> Markup {
    let c = &m.content;
    let media_kind = match m.kind.as_str() {
        "image" | "sticker" | "audio" | "video" | "document" => Some(m.kind.as_str()),
        _ => None,
    };
    html! {
        @match m.kind.as_str() {
            "location" => {
                @let l = part(c, "location");
                div.msg-location data-testid="location" {
                    "📍 "
                    @if let Some(n) = l.get("name").and_then(Value::as_str) { strong { (n) } " " }
                    @if let Some(a) = l.get("address").and_then(Value::as_str) { (a) " " }
                    @if let (Some(lat), Some(lon)) = (l.get("latitude").and_then(Value::as_f64), l.get("longitude").and_then(Value::as_f64)) {
                        a href={ "https://www.openstreetmap.org/?mlat=" (lat) "&mlon=" (lon) } rel="noopener noreferrer" target="_blank" { (lat) ", " (lon) }
                    }
                }
            }
            "contacts" => {
                ul.msg-contacts data-testid="contacts" {
                    @for card in c.get("contacts").and_then(Value::as_array).into_iter().flatten() {
                        li {
                            "👤 " (card.pointer("/name/formatted_name").and_then(Value::as_str).unwrap_or("Contact"))
                            @for ph in card.get("phones").and_then(Value::as_array).into_iter().flatten() {
                                " · " (ph.get("phone").and_then(Value::as_str).unwrap_or(""))
                            }
                        }
                    }
                }
            }
            "reaction" => {
                span.msg-reaction data-testid="reaction" {
                    (part(c, "reaction").get("emoji").and_then(Value::as_str).unwrap_or(""))
                    @if let Some(q) = &m.quoted { span.muted { " to “" (q.preview) "”" } }
                }
            }
            "interactive" | "button" => {
                span.msg-interactive data-testid="interactive" { "↩ " (m.preview) }
            }
            _ => {
                @if let (Some(kind), Some(url)) = (media_kind, &m.media_url) {
                    @match kind {
                        "image" | "sticker" => { img.msg-image src=(url) alt="image" loading="lazy"; }
                        "audio" => { audio controls src=(url) {} }
                        "video" => { video controls src=(url) {} }
                        _ => { a href=(url) data-testid="document" { "📄 " (part(c, "document").get("filename").and_then(Value::as_str).unwrap_or("document")) } }
                    }
                } @else if let Some(kind) = media_kind {
                    span.muted { "(" (kind) ", not downloaded yet)" }
                }
                @if media_kind.is_none() || !m.preview.is_empty() {
                    p.msg-text data-testid="message-text" { (m.preview) }
                }
            }
        }
    }
}

fn note_item(cat: &Catalogue, n: &Note) -> Markup {
    html! {
        li.note data-note-id=(n.id) data-testid="note" data-at=(millis(n.created_at)) {
            span.note-author { "Note by " (cat.member_name(n.author_id).unwrap_or("someone")) }
            p.note-text data-testid="note-text" {
                @for part in &n.parts {
                    @match part {
                        NotePart::Text { text } => (text),
                        NotePart::Mention { user_id, name } => {
                            span.mention data-user-id=(user_id) data-testid="mention" { "@" (name) }
                        }
                    }
                }
            }
            span.msg-meta { (when(n.created_at)) }
        }
    }
}

fn composer(
    pc: &PageCtx,
    d: &ConversationDetail,
    quick: &[(QuickReplyId, String, String)],
    templates: &[TemplateRecord],
    notes: &NoteComposer,
) -> Markup {
    let draft = notes.draft.as_ref();
    let c = &d.conversation;
    html! {
        div #composer.composer data-channel=(c.channel_id) data-contact=(c.contact.id) data-conversation=(c.id) {
            @if d.window_open {
                form method="post" action={ "/inbox/" (c.id) "/reply" } data-testid="reply-form" #reply-form {
                    (pc.csrf_field())
                    textarea #reply-body name="body" rows="3" maxlength="4096" aria-label="Message" placeholder="Write a reply" {}
                    div.composer-tools {
                        @if !quick.is_empty() {
                            select #quick-replies name="quick_reply_id" aria-label="Quick reply" data-testid="quick-replies" {
                                option value="" { "Quick replies…" }
                                @for (id, shortcut, text) in quick {
                                    option value=(id) data-text=(text) { "/" (shortcut) }
                                }
                            }
                        }
                        details.emoji {
                            summary { "😀" }
                            @for e in EMOJI { button.emoji-pick type="button" data-emoji=(e) { (e) } }
                        }
                        button type="submit" data-testid="reply-submit" { "Send" }
                    }
                }
                form #upload-form.upload method="post" action="/api/v1/media" enctype="multipart/form-data" data-testid="upload-form" {
                    input type="hidden" name="channel_id" value=(c.channel_id);
                    input type="file" name="file" required aria-label="File";
                    input type="text" name="caption" maxlength="1024" placeholder="Caption" aria-label="Caption";
                    button type="submit" { "Send file" }
                }
            } @else {
                p.notice data-testid="window-closed" { "The customer has not written in the last 24 hours: only an approved template can be sent." }
                form method="post" action={ "/inbox/" (c.id) "/template" } data-testid="template-form" {
                    (template_form(pc, &format!("/inbox/{}/template", c.id), templates))
                }
            }
            form method="post" action={ "/inbox/" (c.id) "/notes" } data-testid="note-form" #note-form {
                (pc.csrf_field())
                // Typing "@" opens the list of members who may read this conversation
                // (app.js); the chosen one goes into the text as a mention token.
                div.mention-box {
                    textarea #note-body name="body" rows="2" maxlength="4096" required
                        aria-label="Internal note" data-testid="note-body"
                        placeholder="Internal note (never sent to the customer). Type @ to mention someone."
                        aria-autocomplete="list" aria-controls="mention-list"
                        aria-describedby=[draft.map(|_| "note-error")] aria-invalid=[draft.map(|_| "true")] {
                        @if let Some(d) = draft { (d.body) }
                    }
                    ul #mention-list.mention-list role="listbox" aria-label="Members to mention" data-testid="mention-list" hidden {}
                    span #mention-status.sr-only aria-live="polite" {}
                }
                @if let Some(d) = draft {
                    p #note-error.error role="alert" data-testid="note-error" { (d.error) }
                }
                ul #mention-candidates hidden {
                    @for m in &notes.mentionable {
                        li data-user-id=(m.user_id) data-name=(m.name) data-token=(m.token) { (m.name) }
                    }
                }
                noscript {
                    select name="mention" multiple aria-label="Mention" {
                        @for m in &notes.mentionable {
                            option value=(m.user_id) selected[draft.is_some_and(|d| d.mentions.contains(&m.user_id))] { "@" (m.name) }
                        }
                    }
                }
                button type="submit" data-testid="note-submit" { "Add note" }
            }
        }
    }
}

fn template_form(pc: &PageCtx, action: &str, templates: &[TemplateRecord]) -> Markup {
    html! {
        (pc.csrf_field())
        @if templates.is_empty() {
            p.muted data-testid="no-templates" { "No approved template is known for this number yet." }
        } @else {
            label { "Template"
                select name="template" data-testid="template-select" .template-choice {
                    @for t in templates { option value={ (t.name) "|" (t.language) } { (t.name) " (" (t.language) ")" } }
                }
            }
            // One set of inputs per template, named after it, so the form works without
            // the script; app.js shows only the chosen template's.
            @for t in templates {
                @let key = format!("{}|{}", t.name, t.language);
                fieldset.template-fill data-template=(key) data-testid="template-fill" {
                    @match t.spec() {
                        Some(spec) => {
                            @let fields = crate::api::templates::fill_fields(&spec);
                            div.bubble.template-preview { (spec.preview()) }
                            @if fields.is_empty() { p.muted { "No values needed." } }
                            @for f in &fields {
                                label { (f.label)
                                    input type="text" name={ "fill:" (key) ":" (f.field) } maxlength="1024" placeholder=[f.example.as_deref()] data-field=(f.field);
                                }
                            }
                        }
                        None => {
                            label { "Body values, one per line ({{1}}, {{2}}, …)"
                                textarea name={ "fill:" (key) ":lines" } rows="3" maxlength="4096" {}
                            }
                        }
                    }
                }
            }
            button type="submit" formaction=(action) data-testid="template-submit" { "Send template" }
        }
    }
}

fn conversation_id(s: &str) -> Result<ConversationId, PageError> {
    ConversationId::parse(s).map_err(not_found)
}

fn back(id: ConversationId) -> Response {
    see_other(&format!("/inbox/{id}"), &[])
}

#[derive(Deserialize)]
struct ReplyForm {
    #[serde(default)]
    body: String,
    quick_reply_id: Option<String>,
}

/// A text reply (or a quick reply, filled in with the conversation's variables).
async fn reply(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
    PageForm(f): PageForm<ReplyForm>,
) -> Result<Response, PageError> {
    let id = conversation_id(&id)?;
    let v = Viewer::of(&ctx);
    let mut tx = state.store().begin(&ctx).await?;
    let item = tx.conversation_item(&v, id).await?;
    let body = match (f.body.trim(), blank(&f.quick_reply_id)) {
        ("", Some(q)) => {
            let q = QuickReplyId::parse(q).map_err(|_| invalid("no such quick reply"))?;
            let agent = caller
                .principal
                .user
                .as_ref()
                .map(|u| u.name.clone())
                .unwrap_or_default();
            tx.render_quick_reply_for(&v, q, id, &agent).await?
        }
        ("", None) => return Err(invalid("write a message")),
        _ => f.body,
    };
    let message = Outbound::Text {
        body,
        preview_url: false,
    };
    message
        .validate()
        .map_err(|e| PageError(ApiError::unprocessable("invalid_message", e.to_string())))?;
    queue(
        &state,
        &ctx,
        &mut tx,
        item.channel_id,
        item.contact.id,
        &message,
    )
    .await?;
    tx.commit().await?;
    Ok(back(id))
}

async fn queue(
    state: &AppState,
    ctx: &TenantCtx,
    tx: &mut frontdesk_store::TenantTx,
    channel: ChannelId,
    contact: frontdesk_domain::ContactId,
    message: &Outbound,
) -> Result<frontdesk_store::MessageView, PageError> {
    let content = serde_json::to_string(message).map_err(ApiError::internal)?;
    Ok(tx
        .queue_message(
            &NewOutbound {
                channel,
                contact,
                kind: message.type_name().to_owned(),
                content,
                preview: message.preview(),
                reply_to: None,
                needs_window: message.needs_service_window(),
                author: ctx.user_id(),
            },
            state.now(),
        )
        .await?)
}

/// The composer's template form: the chosen `name|language` and the values typed for it
/// (inputs named `fill:<name|language>:<field>`; the other templates' inputs are ignored).
struct TemplateForm {
    template: String,
    values: Vec<(String, String)>,
}

const MAX_TEMPLATE_FORM_FIELDS: usize = 400;

fn template_form_of(pairs: &[(String, String)]) -> Result<TemplateForm, PageError> {
    if pairs.len() > MAX_TEMPLATE_FORM_FIELDS {
        return Err(invalid("the form has too many fields"));
    }
    let template = pairs
        .iter()
        .find(|(k, _)| k == "template")
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_default();
    let prefix = format!("fill:{template}:");
    let mut values: Vec<(String, String)> = pairs
        .iter()
        .filter_map(|(k, v)| k.strip_prefix(&prefix).map(|f| (f.to_owned(), v.clone())))
        .collect();
    // The plain `variables` field (body values, one per line) as API clients post it.
    if let Some((_, v)) = pairs
        .iter()
        .find(|(k, v)| k == "variables" && !v.trim().is_empty())
    {
        values.retain(|(k, _)| k != "lines");
        values.push(("lines".into(), v.clone()));
    }
    Ok(TemplateForm { template, values })
}

/// `body[3]` → 3.
fn index_of(field: &str, name: &str) -> Option<usize> {
    field
        .strip_prefix(name)?
        .strip_prefix('[')?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// A template message from the form, filled and checked against the stored template, with
/// the text a phone shows and the tracked links to store. Refused unless approved here.
async fn template_message(
    tx: &mut frontdesk_store::TenantTx,
    waba_id: &str,
    f: &TemplateForm,
) -> Result<
    (
        Outbound,
        Option<String>,
        Option<(TemplateId, Vec<TrackedLink>)>,
    ),
    PageError,
> {
    let (name, language) = f
        .template
        .split_once('|')
        .ok_or_else(|| invalid("choose a template"))?;
    let mut components = Vec::new();
    let lines: Option<&String> = f.values.iter().find(|(k, _)| k == "lines").map(|(_, v)| v);
    let fill = match lines {
        // A template whose components are not known here: body values, one per line.
        Some(lines) => {
            let vars: Vec<&str> = lines
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect();
            if vars.len() > 20 {
                return Err(invalid("at most 20 variables"));
            }
            if !vars.is_empty() {
                components.push(serde_json::json!({
                    "type": "body",
                    "parameters": vars.iter().map(|v| serde_json::json!({ "type": "text", "text": v })).collect::<Vec<_>>(),
                }));
            }
            None
        }
        None if f.values.is_empty() => None,
        None => {
            let mut fill = FillInput::default();
            let mut body: std::collections::BTreeMap<usize, String> = Default::default();
            for (field, v) in &f.values {
                if field == "header" {
                    fill.header = Some(v.clone());
                } else if let Some(part) = field.strip_prefix("location.") {
                    let place = fill.location.get_or_insert_with(Default::default);
                    let number = |v: &str| {
                        v.trim()
                            .parse::<f64>()
                            .map_err(|_| invalid("the place's latitude and longitude are numbers"))
                    };
                    let text = (!v.trim().is_empty()).then(|| v.clone());
                    match part {
                        "latitude" => place.latitude = number(v)?,
                        "longitude" => place.longitude = number(v)?,
                        "name" => place.name = text,
                        "address" => place.address = text,
                        _ => return Err(invalid("no such value of a place")),
                    }
                } else if let Some(i) = index_of(field, "body") {
                    body.insert(i, v.clone());
                } else if let Some(i) = index_of(field, "buttons") {
                    fill.buttons.insert(i, v.clone());
                } else {
                    return Err(invalid("carousel templates are sent through the API"));
                }
            }
            fill.body = body.into_values().collect();
            Some(fill)
        }
    };
    let filled =
        crate::api::messages::fill_template(tx, waba_id, name, language, &mut components, fill)
            .await
            .map_err(|e| match e {
                ApiError::Conflict { message, .. } => invalid(message),
                other => PageError(other),
            })?;
    let m = Outbound::Template {
        name: name.to_owned(),
        language: language.to_owned(),
        components,
    };
    m.validate()
        .map_err(|e| PageError(ApiError::unprocessable("invalid_message", e.to_string())))?;
    Ok(match filled {
        Some((t, text, links)) => (m, Some(text.chars().take(300).collect()), Some((t, links))),
        None => (m, None, None),
    })
}

/// Queues a template message and stores its tracked links with it.
#[allow(clippy::too_many_arguments)]
async fn queue_template(
    state: &AppState,
    ctx: &TenantCtx,
    tx: &mut frontdesk_store::TenantTx,
    channel: ChannelId,
    contact: frontdesk_domain::ContactId,
    message: &Outbound,
    preview: Option<String>,
    tracked: Option<(TemplateId, Vec<TrackedLink>)>,
) -> Result<frontdesk_store::MessageView, PageError> {
    let content = serde_json::to_string(message).map_err(ApiError::internal)?;
    let queued = tx
        .queue_message(
            &NewOutbound {
                channel,
                contact,
                kind: message.type_name().to_owned(),
                content,
                preview: preview.unwrap_or_else(|| message.preview()),
                reply_to: None,
                needs_window: message.needs_service_window(),
                author: ctx.user_id(),
            },
            state.now(),
        )
        .await?;
    if let Some((t, links)) = tracked
        && !links.is_empty()
    {
        tx.create_tracked_links(t, queued.id, contact, &links)
            .await?;
    }
    Ok(queued)
}

async fn send_template(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
    RawForm(raw): RawForm,
) -> Result<Response, PageError> {
    let id = conversation_id(&id)?;
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(&raw).into_owned().collect();
    let f = template_form_of(&pairs)?;
    let mut tx = state.store().begin(&ctx).await?;
    let item = tx.conversation_item(&Viewer::of(&ctx), id).await?;
    let channel = tx.channel(item.channel_id).await?;
    let (m, preview, tracked) = template_message(&mut tx, &channel.waba_id, &f).await?;
    queue_template(
        &state,
        &ctx,
        &mut tx,
        item.channel_id,
        item.contact.id,
        &m,
        preview,
        tracked,
    )
    .await?;
    tx.commit().await?;
    Ok(back(id))
}

async fn new_chat_page(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Tenant(ctx): Tenant,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let channels = state.store().list_channels(&ctx).await?;
    let mut options = Vec::new();
    let mut tx = state.store().begin_read(&ctx).await?;
    for c in &channels {
        for t in tx.approved_templates_of(&c.waba_id).await? {
            if !options
                .iter()
                .any(|o: &TemplateRecord| o.name == t.name && o.language == t.language)
            {
                options.push(t);
            }
        }
    }
    tx.commit().await?;
    options.sort_by(|a, b| (&a.name, &a.language).cmp(&(&b.name, &b.language)));
    let pc = PageCtx::new(&state, Some(caller), &headers, NAV_PATH).await;
    Ok(pc.render(
        "New chat",
        html! {
            p.muted { "A new conversation starts with an approved template; the customer's reply opens the 24-hour window." }
            form method="post" action="/inbox/new" data-testid="new-chat-form" {
                label { "Number"
                    select name="channel_id" {
                        @for c in &channels { option value=(c.id) { (c.name) " · " (c.display_number) } }
                    }
                }
                label { "Customer's number (with country code, e.g. +91 98765 43210)"
                    input type="tel" name="phone" required maxlength="32";
                }
                (template_form(&pc, "/inbox/new", &options))
            }
        },
    ))
}

async fn new_chat(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    RawForm(raw): RawForm,
) -> Result<Response, PageError> {
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(&raw).into_owned().collect();
    let one = |k: &str| {
        pairs
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_default()
    };
    let channel = ChannelId::parse(&one("channel_id")).map_err(not_found)?;
    let phone = E164::parse(&one("phone")).map_err(|e| invalid(e.to_string()))?;
    let f = template_form_of(&pairs)?;
    let mut tx = state.store().begin(&ctx).await?;
    let view = tx.channel(channel).await?;
    let (m, preview, tracked) = template_message(&mut tx, &view.waba_id, &f).await?;
    let contact = tx
        .upsert_contact(&CustomerIdentity {
            phone: Some(phone),
            ..Default::default()
        })
        .await?;
    let queued = queue_template(
        &state, &ctx, &mut tx, channel, contact, &m, preview, tracked,
    )
    .await?;
    tx.commit().await?;
    Ok(back(queued.conversation_id))
}

/// A note form: `body` (mentions as tokens in it) and any number of `mention` fields
/// (the no-script picker), merged by the store.
async fn add_note(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Tenant(ctx): Tenant,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawForm(raw): RawForm,
) -> Result<Response, PageError> {
    let id = conversation_id(&id)?;
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(&raw).into_owned().collect();
    if pairs.len() > 2 + MAX_MENTIONS {
        return Err(invalid("the form has too many fields"));
    }
    let body = pairs
        .iter()
        .find(|(k, _)| k == "body")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let mentions = pairs
        .iter()
        .filter(|(k, v)| k == "mention" && !v.trim().is_empty())
        .map(|(_, v)| UserId::parse(v.trim()).map_err(|_| invalid("a mention is a member")))
        .collect::<Result<Vec<_>, _>>()?;
    let written = async {
        let mut tx = state.store().begin(&ctx).await?;
        tx.add_note(&Viewer::of(&ctx), id, &body, &mentions).await?;
        tx.commit().await
    }
    .await;
    match written {
        Ok(()) => Ok(back(id)),
        Err(StoreError::Invalid(error)) => {
            let draft = NoteDraft {
                body,
                mentions,
                error,
            };
            let p = ListParams::default();
            render_conversation(&state, caller, &ctx, &headers, id, &p, Some(draft)).await
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
struct AssignForm {
    #[serde(default)]
    to: String,
}

async fn assign(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
    PageForm(f): PageForm<AssignForm>,
) -> Result<Response, PageError> {
    let id = conversation_id(&id)?;
    let bad = |_| invalid("choose a member or a team");
    let (user, team) = match f.to.trim().split_once(':') {
        None if f.to.trim().is_empty() => (None, None),
        Some(("user", u)) => (Some(UserId::parse(u).map_err(bad)?), None),
        Some(("team", t)) => (None, Some(TeamId::parse(t).map_err(bad)?)),
        _ => return Err(invalid("choose a member or a team")),
    };
    let mut tx = state.store().begin(&ctx).await?;
    tx.assign_conversation(&Viewer::of(&ctx), id, user, team)
        .await?;
    tx.commit().await?;
    Ok(back(id))
}

#[derive(Deserialize)]
struct StatusForm {
    #[serde(default)]
    action: String,
    until: Option<String>,
}

async fn change_status(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
    PageForm(f): PageForm<StatusForm>,
) -> Result<Response, PageError> {
    let id = conversation_id(&id)?;
    let mut tx = state.store().begin(&ctx).await?;
    let change = match f.action.as_str() {
        "resolve" => StatusChange::Resolve,
        "reopen" => StatusChange::Reopen,
        "snooze" => {
            let t = blank(&f.until).ok_or_else(|| invalid("snooze needs a time"))?;
            // `datetime-local` sends minutes (and sometimes seconds), meant in the
            // organisation's time zone (the field says which).
            let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]");
            let local = time::PrimitiveDateTime::parse(t.get(..16).unwrap_or(t), &fmt)
                .map_err(|_| invalid("snooze until a date and time"))?;
            let tz = tx.time_zone().await?;
            let t = frontdesk_store::zone::utc_of_local(local, &tz).map_err(|_| {
                invalid("snooze until a time that exists in the organisation's time zone")
            })?;
            StatusChange::Snooze(t)
        }
        _ => return Err(invalid("resolve, reopen or snooze")),
    };
    tx.change_status(&Viewer::of(&ctx), id, change, state.now())
        .await?;
    tx.commit().await?;
    Ok(back(id))
}

#[derive(Deserialize)]
struct LabelForm {
    #[serde(default)]
    label_id: String,
    #[serde(default)]
    on: String,
}

async fn set_label(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
    PageForm(f): PageForm<LabelForm>,
) -> Result<Response, PageError> {
    let id = conversation_id(&id)?;
    let label = LabelId::parse(f.label_id.trim()).map_err(|_| invalid("choose a label"))?;
    let on = match f.on.as_str() {
        "true" | "" => true,
        "false" => false,
        _ => return Err(invalid("add or remove")),
    };
    let mut tx = state.store().begin(&ctx).await?;
    tx.set_conversation_label(&Viewer::of(&ctx), id, label, on)
        .await?;
    tx.commit().await?;
    Ok(back(id))
}

async fn retry(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path((id, message)): Path<(String, String)>,
) -> Result<Response, PageError> {
    let id = conversation_id(&id)?;
    let message = MessageId::parse(&message).map_err(not_found)?;
    let mut tx = state.store().begin(&ctx).await?;
    tx.retry_message(&Viewer::of(&ctx), message, state.now())
        .await?;
    tx.commit().await?;
    Ok(back(id))
}
