//! The team inbox: inbox settings per number, agents' availability, the conversation list
//! (filters, search, per-user unread, cursor pages), the conversation view, and the actions
//! agents take (assign, resolve, snooze, label, note, retry), plus quick replies and
//! notifications.
//!
//! Visibility is part of every query's SQL ([`visible!`]): a viewer without
//! `inbox.read_all` sees a conversation only when it is assigned to them, assigned to one
//! of their teams, or on a number one of their teams serves. A conversation one may not see
//! is `NotFound`, whatever the action.
//!
//! Every change is audited in its transaction and announced on the event bus after commit.

use crate::audit::AuditRecord;
use crate::events::{Event, EventKind};
use crate::messaging::{MessageStatus, OutboxAction, SERVICE_WINDOW};
use crate::orgs::now_micros;
use crate::tenant::{TenantCtx, TenantTx, Tx, with_conn};
use crate::{Store, StoreError};
use frontdesk_domain::mention::{
    MAX_MENTIONS, NotePart, find_mentions, mention_token, note_parts, rewrite_mentions,
};
use frontdesk_domain::{
    ChannelId, ContactId, ConversationId, E164, LabelId, MediaId, MessageId, NoteId,
    NotificationId, Permission, QuickReplyId, TeamId, UserId,
};
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

/// "Online" lasts this long after the agent was last seen (a request, the event stream).
pub const PRESENCE_TTL: time::Duration = time::Duration::minutes(10);

/// The most rows one list or messages page returns.
pub const MAX_PAGE: i64 = 100;

/// Who is looking, and what they may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Viewer {
    pub user: Option<UserId>,
    pub read_all: bool,
    pub view_phone: bool,
}

impl Viewer {
    pub fn of(ctx: &TenantCtx) -> Self {
        Self {
            user: ctx.user_id(),
            read_all: ctx.can(Permission::InboxReadAll),
            view_phone: ctx.can(Permission::ContactsViewPhone),
        }
    }

    fn me(&self) -> Option<Uuid> {
        self.user.map(|u| u.as_uuid())
    }
}

/// The visibility rule, with `$1` the organisation, `$2` the viewer's user id (or NULL) and
/// `$3` whether they hold `inbox.read_all`; `c` is the conversation.
macro_rules! visible {
    () => {
        "($3 OR c.assignee_id = $2 \
          OR c.team_id IN (SELECT tm.team_id FROM team_members tm WHERE tm.org_id = $1 AND tm.user_id = $2) \
          OR c.channel_id IN (SELECT it.channel_id FROM inbox_teams it JOIN team_members tm ON tm.org_id = it.org_id AND tm.team_id = it.team_id WHERE it.org_id = $1 AND tm.user_id = $2))"
    };
}

/// An agent's availability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Availability {
    Online,
    Away,
    Offline,
}

impl Availability {
    pub fn as_str(self) -> &'static str {
        match self {
            Availability::Online => "online",
            Availability::Away => "away",
            Availability::Offline => "offline",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        Ok(match s {
            "online" => Availability::Online,
            "away" => Availability::Away,
            "offline" => Availability::Offline,
            _ => return Err(StoreError::Corrupt(format!("availability {s:?}"))),
        })
    }
}

/// How new conversations of an inbox find an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AutoAssign {
    Off,
    /// In turn among the online members of the inbox's assignment team.
    RoundRobin,
}

impl AutoAssign {
    fn as_str(self) -> &'static str {
        match self {
            AutoAssign::Off => "off",
            AutoAssign::RoundRobin => "round_robin",
        }
    }
}

/// A number's inbox settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct InboxSettings {
    pub channel_id: ChannelId,
    /// The teams that serve the inbox: their members see its conversations.
    pub team_ids: Vec<TeamId>,
    pub auto_assign: AutoAssign,
    /// The team whose online members round-robin assignment draws from.
    pub assign_team_id: Option<TeamId>,
}

/// A contact as the inbox shows it; the number is masked for viewers without
/// `contacts.view_phone`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ContactSummary {
    pub id: ContactId,
    pub name: Option<String>,
    pub username: Option<String>,
    /// E.164, or masked (`+91 98•••••210`).
    pub phone: Option<String>,
    pub phone_masked: bool,
    pub user_id: Option<String>,
}

fn contact_summary(
    v: &Viewer,
    id: Uuid,
    phone: Option<String>,
    bsuid: Option<String>,
    username: Option<String>,
    name: Option<String>,
) -> ContactSummary {
    let (phone, phone_masked) = match phone {
        Some(p) if !v.view_phone => (Some(mask_phone(&p)), true),
        p => (p, false),
    };
    ContactSummary {
        id: ContactId::from_uuid(id),
        name,
        username,
        phone,
        phone_masked,
        user_id: bsuid,
    }
}

/// A stored number, masked; anything that does not parse is hidden entirely.
pub fn mask_phone(p: &str) -> String {
    E164::parse(p)
        .map(|e| e.masked())
        .unwrap_or_else(|_| "•••".into())
}

/// Masks phone numbers inside a provider's JSON (a message's content): the values of the
/// keys that carry numbers (`from`, `to`, `wa_id`, `phone`, `recipient_id`, …), wherever they
/// are, when they look like numbers.
pub fn mask_phones_in_json(v: &mut serde_json::Value) {
    const KEYS: &[&str] = &[
        "from",
        "to",
        "wa_id",
        "phone",
        "recipient_id",
        "display_phone_number",
        "chat_id",
        "from_phone",
    ];
    match v {
        serde_json::Value::Object(map) => {
            for (k, val) in map.iter_mut() {
                if KEYS.contains(&k.as_str())
                    && let serde_json::Value::String(s) = val
                {
                    let digits: String = s.chars().filter(|c| c.is_ascii_digit()).collect();
                    if digits.len() >= 7 {
                        *s = mask_phone(&format!("+{digits}"));
                    }
                } else {
                    mask_phones_in_json(val);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(mask_phones_in_json),
        _ => {}
    }
}

/// A label of the catalogue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Label {
    pub id: LabelId,
    pub name: String,
    /// `#rrggbb`.
    pub color: String,
}

/// One row of the conversation list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ConversationItem {
    pub id: ConversationId,
    pub channel_id: ChannelId,
    pub contact: ContactSummary,
    /// `open`, `pending`, `snoozed` or `resolved`.
    pub status: String,
    #[serde(with = "time::serde::rfc3339::option")]
    pub snoozed_until: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub last_message_at: OffsetDateTime,
    pub last_preview: String,
    pub assignee_id: Option<UserId>,
    pub team_id: Option<TeamId>,
    /// Customer messages this viewer has not read.
    pub unread: i32,
    pub labels: Vec<Label>,
}

/// Which conversations a list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListView {
    Mine,
    Unassigned,
    All,
}

/// A list request. `status`: `open`, `pending`, `snoozed`, `resolved`, `active` (not
/// resolved) or `any`.
#[derive(Debug, Clone)]
pub struct ListQuery {
    pub view: ListView,
    pub team: Option<TeamId>,
    pub channel: Option<ChannelId>,
    pub status: String,
    pub label: Option<LabelId>,
    /// At least 3 characters (trigram search).
    pub search: Option<String>,
    pub after: Option<Cursor>,
    pub limit: i64,
}

/// A position in a list ordered by (time, id), newest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub at: OffsetDateTime,
    pub id: Uuid,
}

impl Cursor {
    /// Cuts a page fetched with one row more than `limit` down to `limit`, and returns the
    /// cursor of its last row when that extra row showed there is more.
    pub(crate) fn page<R>(
        rows: &mut Vec<R>,
        limit: i64,
        key: impl Fn(&R) -> (OffsetDateTime, Uuid),
    ) -> Option<String> {
        let more = rows.len() as i64 > limit;
        rows.truncate(limit.max(0) as usize);
        if !more {
            return None;
        }
        rows.last().map(|r| {
            let (at, id) = key(r);
            Cursor { at, id }.encode()
        })
    }

    /// Opaque text: base64url of the time (unix microseconds) and the id.
    pub fn encode(&self) -> String {
        use base64::Engine;
        let micros = (self.at.unix_timestamp_nanos() / 1000) as i64;
        let mut raw = micros.to_be_bytes().to_vec();
        raw.extend_from_slice(self.id.as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    }

    pub fn decode(s: &str) -> Option<Self> {
        use base64::Engine;
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s.as_bytes())
            .ok()?;
        if raw.len() != 24 {
            return None;
        }
        let micros = i64::from_be_bytes(raw[..8].try_into().ok()?);
        let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000).ok()?;
        Some(Self {
            at,
            id: Uuid::from_slice(&raw[8..]).ok()?,
        })
    }
}

/// Conversations with unread customer messages, per sidebar entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct UnreadCounts {
    pub mine: i64,
    pub unassigned: i64,
    pub all: i64,
}

/// A page of the list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ConversationPage {
    pub items: Vec<ConversationItem>,
    /// Pass as `cursor` for the next page; absent on the last.
    pub next_cursor: Option<String>,
    pub unread: UnreadCounts,
}

/// The message a reply quotes (or a reaction targets).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct QuotedMessage {
    pub id: MessageId,
    pub direction: String,
    pub kind: String,
    pub preview: String,
}

/// A message as the conversation view renders it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct InboxMessage {
    pub id: MessageId,
    /// `in` or `out`.
    pub direction: String,
    /// `text`, `image`, `reaction`, `location`, `contacts`, `interactive`, `template`, …
    pub kind: String,
    /// The message as JSON (phone numbers masked for viewers who may not see them).
    #[schema(value_type = Object)]
    pub content: serde_json::Value,
    pub preview: String,
    pub provider_message_id: Option<String>,
    /// The provider id of the message this one replies or reacts to.
    pub reply_to: Option<String>,
    /// That message, when we have it.
    pub quoted: Option<QuotedMessage>,
    pub media_id: Option<MediaId>,
    /// Where the file is served (`GET`), once downloaded.
    pub media_url: Option<String>,
    /// Delivery ticks: queued, accepted, sent, delivered, read; or failed.
    pub status: MessageStatus,
    pub error_code: Option<i64>,
    pub error_title: Option<String>,
    /// The agent who sent it (outbound).
    pub author_id: Option<UserId>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// An internal note.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Note {
    pub id: NoteId,
    pub conversation_id: ConversationId,
    pub author_id: Option<UserId>,
    /// The text as written, with each mention as a token `@[Name](user:<id>)`.
    pub body: String,
    pub mentions: Vec<UserId>,
    /// The text split for display: plain text and mentions (shown as `@Name`).
    pub parts: Vec<NotePart>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// A member who may be mentioned in a conversation's notes (one who may read it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Mentionable {
    pub user_id: UserId,
    pub name: String,
    /// The token that mentions them in a note's text.
    pub token: String,
}

/// The conversation view: everything the screen needs in one answer.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ConversationDetail {
    #[serde(flatten)]
    pub conversation: ConversationItem,
    /// Whether a free-form reply may go out now (else: a template).
    pub window_open: bool,
    #[serde(with = "time::serde::rfc3339::option")]
    pub window_closes_at: Option<OffsetDateTime>,
    /// Newest first; `next_cursor` pages back in time.
    pub messages: Vec<InboxMessage>,
    pub next_cursor: Option<String>,
    /// Every note, oldest first (the UI interleaves them with messages by time).
    pub notes: Vec<Note>,
}

/// A notification for the current user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Notification {
    pub id: NotificationId,
    /// `mention`.
    pub kind: String,
    pub conversation_id: ConversationId,
    pub note_id: Option<NoteId>,
    pub actor_id: Option<UserId>,
    /// The actor's name, while they are a member.
    pub actor_name: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    pub read: bool,
}

/// A canned answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct QuickReply {
    pub id: QuickReplyId,
    /// `[a-z0-9_-]{1,32}`, typed after `/` in the composer.
    pub shortcut: String,
    /// Text with `{{contact.first_name}}`, `{{contact.name}}`, `{{agent.name}}`.
    pub body: String,
}

/// A conversation change the actions make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusChange {
    Resolve,
    Reopen,
    Snooze(OffsetDateTime),
}

/// The variables a quick reply may use.
pub const QUICK_REPLY_VARIABLES: &[&str] = &["contact.first_name", "contact.name", "agent.name"];

/// Fills a quick reply's variables; an unknown variable is left as written, a missing value
/// becomes empty.
pub fn render_quick_reply(body: &str, contact_name: Option<&str>, agent_name: &str) -> String {
    let name = contact_name.unwrap_or("").trim();
    let first = name.split_whitespace().next().unwrap_or("");
    let mut out = String::with_capacity(body.len());
    let mut rest = body;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        match after[..end].trim() {
            "contact.first_name" => out.push_str(first),
            "contact.name" => out.push_str(name),
            "agent.name" => out.push_str(agent_name),
            _ => out.push_str(&rest[start..start + 2 + end + 2]),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

/// A conversation's routing facts, for visibility and events.
#[derive(Debug, Clone, Copy)]
struct Core {
    id: ConversationId,
    channel: ChannelId,
    assignee: Option<UserId>,
    team: Option<TeamId>,
    status_is_counted: bool,
}

/// A member and whether they may read one conversation.
struct Reader {
    user: UserId,
    name: String,
    can_read: bool,
}

#[derive(sqlx::FromRow)]
struct ItemRow {
    id: Uuid,
    channel_id: Uuid,
    contact_id: Uuid,
    status: String,
    snoozed_until: Option<OffsetDateTime>,
    last_message_at: OffsetDateTime,
    last_preview: String,
    assignee_id: Option<Uuid>,
    team_id: Option<Uuid>,
    unread: i32,
    phone: Option<String>,
    bsuid: Option<String>,
    username: Option<String>,
    profile_name: Option<String>,
    labels: Option<String>,
    last_inbound_at: Option<OffsetDateTime>,
}

/// The list's SQL around the backend's label aggregation and search clause. Parameters:
/// `$1..$3` visibility, `$4` view, `$5` team, `$6` channel, `$7` status, `$8` label,
/// `$9`/`$10` search (message / contact), `$11`/`$12` cursor, `$13` limit. The viewer's read
/// mark is looked up per row, not joined: PostgreSQL, guessing one read per user, otherwise
/// materialised all of a user's reads and compared every row of the page with each.
macro_rules! list_sql {
    ($labels:expr, $search:literal) => {
        concat!(
            "SELECT c.id, c.channel_id, c.contact_id, c.status, c.snoozed_until, c.last_message_at, c.last_preview, c.assignee_id, c.team_id, \
             CAST(c.inbound_count - coalesce((SELECT r.read_count FROM conversation_reads r WHERE r.org_id = c.org_id AND r.user_id = $2 AND r.conversation_id = c.id), 0) AS INTEGER) AS unread, k.phone, k.bsuid, k.username, k.profile_name, ",
            $labels,
            " AS labels, c.last_inbound_at FROM conversations c JOIN contacts k ON k.org_id = c.org_id AND k.id = c.contact_id \
             WHERE c.org_id = $1 AND ",
            visible!(),
            " AND ($4 = 'all' OR ($4 = 'mine' AND c.assignee_id = $2) OR ($4 = 'unassigned' AND c.assignee_id IS NULL)) \
             AND ($5 IS NULL OR c.team_id = $5) AND ($6 IS NULL OR c.channel_id = $6) \
             AND ($7 = 'any' OR ($7 = 'active' AND c.status <> 'resolved') OR c.status = $7) \
             AND ($8 IS NULL OR EXISTS (SELECT 1 FROM conversation_labels cl WHERE cl.org_id = c.org_id AND cl.conversation_id = c.id AND cl.label_id = $8)) \
             AND ($9 IS NULL OR ",
            $search,
            ") AND ($11 IS NULL OR (c.last_message_at, c.id) < ($11, $12)) \
             ORDER BY c.last_message_at DESC, c.id DESC LIMIT $13"
        )
    };
}

/// A conversation's label ids, comma-separated (PostgreSQL).
macro_rules! labels_postgres {
    () => {
        "(SELECT string_agg(cl.label_id::text, ',') FROM conversation_labels cl WHERE cl.org_id = c.org_id AND cl.conversation_id = c.id)"
    };
}

/// A conversation's label ids, comma-separated, in hex (SQLite).
macro_rules! labels_sqlite {
    () => {
        "(SELECT group_concat(hex(cl.label_id), ',') FROM conversation_labels cl WHERE cl.org_id = c.org_id AND cl.conversation_id = c.id)"
    };
}

const LIST_SQL_POSTGRES: &str = list_sql!(
    labels_postgres!(),
    "c.id IN (SELECT m.conversation_id FROM messages m WHERE m.org_id = $1 AND m.preview ILIKE $9) \
     OR c.contact_id IN (SELECT k2.id FROM contacts k2 WHERE k2.org_id = $1 AND (k2.profile_name ILIKE $9 OR k2.username ILIKE $9 OR k2.phone ILIKE $10))"
);

const LIST_SQL_SQLITE: &str = list_sql!(
    labels_sqlite!(),
    "c.id IN (SELECT m.conversation_id FROM messages_fts f JOIN messages m ON m.rowid = f.rowid WHERE messages_fts MATCH $9 AND m.org_id = $1) \
     OR c.contact_id IN (SELECT k2.id FROM contacts_fts g JOIN contacts k2 ON k2.rowid = g.rowid WHERE contacts_fts MATCH $10 AND k2.org_id = $1)"
);

/// One conversation as a list row, with its labels and last customer message time.
/// Parameters: `$1..$3` visibility, `$4` the conversation.
macro_rules! one_sql {
    ($labels:expr) => {
        concat!(
            "SELECT c.id, c.channel_id, c.contact_id, c.status, c.snoozed_until, c.last_message_at, c.last_preview, c.assignee_id, c.team_id, \
             CAST(c.inbound_count - coalesce((SELECT r.read_count FROM conversation_reads r WHERE r.org_id = c.org_id AND r.user_id = $2 AND r.conversation_id = c.id), 0) AS INTEGER) AS unread, k.phone, k.bsuid, k.username, k.profile_name, ",
            $labels,
            " AS labels, c.last_inbound_at \
             FROM conversations c JOIN contacts k ON k.org_id = c.org_id AND k.id = c.contact_id \
             WHERE c.org_id = $1 AND c.id = $4 AND ",
            visible!()
        )
    };
}

const ONE_SQL_POSTGRES: &str = one_sql!(labels_postgres!());
const ONE_SQL_SQLITE: &str = one_sql!(labels_sqlite!());

/// Escapes `%`, `_` and `\` for a LIKE pattern (PostgreSQL's default escape is `\`).
fn like_pattern(q: &str) -> String {
    let mut s = String::from("%");
    for ch in q.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            s.push('\\');
        }
        s.push(ch);
    }
    s.push('%');
    s
}

/// An FTS5 phrase: the text quoted, quotes doubled, so no query syntax gets through.
fn fts_phrase(q: &str) -> String {
    format!("\"{}\"", q.replace('"', "\"\""))
}

/// The search text: trimmed, 3 to 100 characters (trigram search finds nothing shorter).
pub fn normalise_search(q: &str) -> Result<String, StoreError> {
    let q = q.trim();
    let n = q.chars().count();
    if !(3..=100).contains(&n) {
        return Err(StoreError::Invalid(
            "search needs 3 to 100 characters".into(),
        ));
    }
    Ok(q.to_owned())
}

fn parse_label_ids(s: Option<&str>) -> Vec<Uuid> {
    s.unwrap_or("")
        .split(',')
        .filter_map(|x| Uuid::try_parse(x.trim()).ok())
        .collect()
}

impl ItemRow {
    /// Whether the row carries label ids (only then is the label catalogue read).
    fn has_labels(&self) -> bool {
        self.labels.as_deref().is_some_and(|l| !l.is_empty())
    }
}

fn item(v: &Viewer, r: ItemRow, catalogue: &[Label]) -> ConversationItem {
    let mut labels: Vec<Label> = parse_label_ids(r.labels.as_deref())
        .into_iter()
        .filter_map(|id| catalogue.iter().find(|l| l.id.as_uuid() == id).cloned())
        .collect();
    labels.sort_by(|a, b| a.name.cmp(&b.name));
    ConversationItem {
        id: ConversationId::from_uuid(r.id),
        channel_id: ChannelId::from_uuid(r.channel_id),
        contact: contact_summary(
            v,
            r.contact_id,
            r.phone,
            r.bsuid,
            r.username,
            r.profile_name,
        ),
        status: r.status,
        snoozed_until: r.snoozed_until,
        last_message_at: r.last_message_at,
        last_preview: r.last_preview,
        assignee_id: r.assignee_id.map(UserId::from_uuid),
        team_id: r.team_id.map(TeamId::from_uuid),
        unread: r.unread.max(0),
        labels,
    }
}

#[derive(sqlx::FromRow)]
struct MsgRow {
    id: Uuid,
    direction: String,
    kind: String,
    content: String,
    preview: String,
    provider_message_id: Option<String>,
    reply_to: Option<String>,
    media_id: Option<Uuid>,
    media_status: Option<String>,
    status: String,
    error_code: Option<i64>,
    error_title: Option<String>,
    author_id: Option<Uuid>,
    created_at: OffsetDateTime,
    q_id: Option<Uuid>,
    q_direction: Option<String>,
    q_kind: Option<String>,
    q_preview: Option<String>,
}

fn inbox_message(v: &Viewer, r: MsgRow) -> Result<InboxMessage, StoreError> {
    let mut content: serde_json::Value = serde_json::from_str(&r.content)
        .map_err(|_| StoreError::Corrupt("message content is not JSON".into()))?;
    if !v.view_phone {
        mask_phones_in_json(&mut content);
    }
    let quoted = match (r.q_id, r.q_direction, r.q_kind, r.q_preview) {
        (Some(id), Some(direction), Some(kind), Some(preview)) => Some(QuotedMessage {
            id: MessageId::from_uuid(id),
            direction,
            kind,
            preview,
        }),
        _ => None,
    };
    Ok(InboxMessage {
        id: MessageId::from_uuid(r.id),
        direction: r.direction,
        kind: r.kind,
        content,
        preview: r.preview,
        provider_message_id: r.provider_message_id,
        reply_to: r.reply_to,
        quoted,
        media_url: match (r.media_id, r.media_status.as_deref()) {
            (Some(id), Some("stored")) => Some(format!("/api/v1/media/{id}")),
            _ => None,
        },
        media_id: r.media_id.map(MediaId::from_uuid),
        status: MessageStatus::parse(&r.status)
            .ok_or_else(|| StoreError::Corrupt(format!("message status {:?}", r.status)))?,
        error_code: r.error_code,
        error_title: r.error_title,
        author_id: r.author_id.map(UserId::from_uuid),
        created_at: r.created_at,
    })
}

fn note(r: (Uuid, Uuid, Option<Uuid>, String, String, OffsetDateTime)) -> Note {
    let mentions: Vec<Uuid> = serde_json::from_str(&r.4).unwrap_or_default();
    let mentions: Vec<UserId> = mentions.into_iter().map(UserId::from_uuid).collect();
    Note {
        id: NoteId::from_uuid(r.0),
        conversation_id: ConversationId::from_uuid(r.1),
        author_id: r.2.map(UserId::from_uuid),
        parts: note_parts(&r.3, &mentions),
        body: r.3,
        mentions,
        created_at: r.5,
    }
}

fn validate_label(name: &str, color: &str) -> Result<(), StoreError> {
    let n = name.trim().chars().count();
    if !(1..=50).contains(&n) {
        return Err(StoreError::Invalid(
            "a label name has 1 to 50 characters".into(),
        ));
    }
    let ok = color.len() == 7
        && color.starts_with('#')
        && color[1..]
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c));
    if !ok {
        return Err(StoreError::Invalid(
            "a label color is #rrggbb in lowercase hex".into(),
        ));
    }
    Ok(())
}

fn validate_quick_reply(shortcut: &str, body: &str) -> Result<(), StoreError> {
    let ok = (1..=32).contains(&shortcut.len())
        && shortcut
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if !ok {
        return Err(StoreError::Invalid(
            "a shortcut is 1 to 32 of a-z, 0-9, _ and -".into(),
        ));
    }
    if body.trim().is_empty() || body.chars().count() > 4096 {
        return Err(StoreError::Invalid(
            "a quick reply has 1 to 4096 characters".into(),
        ));
    }
    Ok(())
}

impl TenantTx {
    /// A conversation's routing facts if the viewer may see it; `NotFound` otherwise.
    async fn visible_core(&mut self, v: &Viewer, id: ConversationId) -> Result<Core, StoreError> {
        let org = self.org();
        type Row = (Uuid, Uuid, Option<Uuid>, Option<Uuid>, String);
        let r: Option<Row> = with_conn!(self.tx, c => {
            sqlx::query_as(concat!("SELECT c.id, c.channel_id, c.assignee_id, c.team_id, c.status FROM conversations c WHERE c.org_id = $1 AND c.id = $4 AND ", visible!()))
                .bind(org).bind(v.me()).bind(v.read_all).bind(id.as_uuid()).fetch_optional(c).await?
        });
        let r = r.ok_or(StoreError::NotFound)?;
        Ok(Core {
            id: ConversationId::from_uuid(r.0),
            channel: ChannelId::from_uuid(r.1),
            assignee: r.2.map(UserId::from_uuid),
            team: r.3.map(TeamId::from_uuid),
            status_is_counted: r.4 != "resolved",
        })
    }

    /// The conversation's routing facts, whoever looks (store-internal work).
    async fn core(&mut self, id: ConversationId) -> Result<Core, StoreError> {
        let all = Viewer {
            user: None,
            read_all: true,
            view_phone: false,
        };
        self.visible_core(&all, id).await
    }

    /// Queues an event about a conversation, addressed by its current routing facts.
    pub(crate) async fn emit_conversation(
        &mut self,
        kind: EventKind,
        conversation: ConversationId,
        data: serde_json::Value,
    ) -> Result<(), StoreError> {
        let core = self.core(conversation).await?;
        let org_id = self.ctx().org_id();
        self.emit(Event {
            org_id,
            kind,
            conversation_id: Some(core.id),
            channel_id: Some(core.channel),
            assignee_id: core.assignee,
            team_id: core.team,
            for_user: None,
            data,
        });
        Ok(())
    }

    async fn emit_updated(
        &mut self,
        conversation: ConversationId,
        change: &str,
    ) -> Result<(), StoreError> {
        let summary = self.conversation_state(conversation).await?;
        self.emit_conversation(
            EventKind::ConversationUpdated,
            conversation,
            serde_json::json!({ "conversation_id": conversation, "change": change, "conversation": summary }),
        )
        .await
    }

    /// The state an update event carries (no contact details).
    async fn conversation_state(
        &mut self,
        id: ConversationId,
    ) -> Result<serde_json::Value, StoreError> {
        let org = self.org();
        type Row = (
            String,
            Option<OffsetDateTime>,
            Option<Uuid>,
            Option<Uuid>,
            OffsetDateTime,
            String,
        );
        let r: Row = with_conn!(self.tx, c => {
            sqlx::query_as("SELECT status, snoozed_until, assignee_id, team_id, last_message_at, last_preview FROM conversations WHERE org_id = $1 AND id = $2")
                .bind(org).bind(id.as_uuid()).fetch_one(c).await?
        });
        let labels: Vec<Uuid> = with_conn!(self.tx, c => {
            sqlx::query_scalar("SELECT label_id FROM conversation_labels WHERE org_id = $1 AND conversation_id = $2 ORDER BY label_id")
                .bind(org).bind(id.as_uuid()).fetch_all(c).await?
        });
        let fmt = |t: OffsetDateTime| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        };
        Ok(serde_json::json!({
            "id": id,
            "status": r.0,
            "snoozed_until": r.1.and_then(fmt),
            "assignee_id": r.2,
            "team_id": r.3,
            "last_message_at": fmt(r.4),
            "last_preview": r.5,
            "label_ids": labels,
        }))
    }

    // ---- inbox settings and presence ----

    /// A number's inbox settings (defaults when never set).
    pub async fn inbox_settings(
        &mut self,
        channel: ChannelId,
    ) -> Result<InboxSettings, StoreError> {
        self.channel(channel).await?;
        let org = self.org();
        let r: Option<(String, Option<Uuid>)> = with_conn!(self.tx, c => {
            sqlx::query_as("SELECT auto_assign, assign_team_id FROM inboxes WHERE org_id = $1 AND channel_id = $2")
                .bind(org).bind(channel.as_uuid()).fetch_optional(c).await?
        });
        let teams: Vec<Uuid> = with_conn!(self.tx, c => {
            sqlx::query_scalar("SELECT team_id FROM inbox_teams WHERE org_id = $1 AND channel_id = $2 ORDER BY team_id")
                .bind(org).bind(channel.as_uuid()).fetch_all(c).await?
        });
        let (auto, team) = r.unwrap_or_else(|| ("off".into(), None));
        Ok(InboxSettings {
            channel_id: channel,
            team_ids: teams.into_iter().map(TeamId::from_uuid).collect(),
            auto_assign: if auto == "round_robin" {
                AutoAssign::RoundRobin
            } else {
                AutoAssign::Off
            },
            assign_team_id: team.map(TeamId::from_uuid),
        })
    }

    async fn require_team(&mut self, team: TeamId) -> Result<(), StoreError> {
        let org = self.org();
        let found: Option<Uuid> = with_conn!(self.tx, c => {
            sqlx::query_scalar("SELECT id FROM teams WHERE org_id = $1 AND id = $2").bind(org).bind(team.as_uuid()).fetch_optional(c).await?
        });
        found
            .map(|_| ())
            .ok_or(StoreError::Invalid(format!("no team {team} here")))
    }

    /// Sets which teams serve a number's inbox and how it assigns; audited.
    pub async fn set_inbox_settings(
        &mut self,
        channel: ChannelId,
        teams: &[TeamId],
        auto: AutoAssign,
        assign_team: Option<TeamId>,
    ) -> Result<InboxSettings, StoreError> {
        self.channel(channel).await?;
        if teams.len() > 50 {
            return Err(StoreError::Invalid(
                "at most 50 teams serve an inbox".into(),
            ));
        }
        for t in teams.iter().chain(assign_team.iter()) {
            self.require_team(*t).await?;
        }
        if auto == AutoAssign::RoundRobin && assign_team.is_none() {
            return Err(StoreError::Invalid(
                "round-robin assignment needs assign_team_id".into(),
            ));
        }
        let org = self.org();
        let now = now_micros();
        with_conn!(self.tx, c => {
            sqlx::query("INSERT INTO inboxes (org_id, channel_id, auto_assign, assign_team_id, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5) \
                         ON CONFLICT (org_id, channel_id) DO UPDATE SET auto_assign = excluded.auto_assign, assign_team_id = excluded.assign_team_id, updated_at = excluded.updated_at")
                .bind(org).bind(channel.as_uuid()).bind(auto.as_str()).bind(assign_team.map(|t| t.as_uuid())).bind(now).execute(&mut *c).await?;
            sqlx::query("DELETE FROM inbox_teams WHERE org_id = $1 AND channel_id = $2").bind(org).bind(channel.as_uuid()).execute(&mut *c).await?;
            for t in teams {
                sqlx::query("INSERT INTO inbox_teams (org_id, channel_id, team_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
                    .bind(org).bind(channel.as_uuid()).bind(t.as_uuid()).execute(&mut *c).await?;
            }
        });
        let settings = self.inbox_settings(channel).await?;
        self.audit(AuditRecord::new(
            "inbox.updated",
            "channel",
            channel.to_string(),
            serde_json::json!({ "team_ids": settings.team_ids, "auto_assign": auto.as_str(), "assign_team_id": assign_team }),
        ))
        .await?;
        Ok(settings)
    }

    /// Sets a member's availability (and marks them seen now).
    pub async fn set_availability(
        &mut self,
        user: UserId,
        a: Availability,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.require_member(user).await?;
        let org = self.org();
        with_conn!(self.tx, c => {
            sqlx::query("INSERT INTO agent_presence (org_id, user_id, availability, last_seen_at, updated_at) VALUES ($1, $2, $3, $4, $4) \
                         ON CONFLICT (org_id, user_id) DO UPDATE SET availability = excluded.availability, last_seen_at = excluded.last_seen_at, updated_at = excluded.updated_at")
                .bind(org).bind(user.as_uuid()).bind(a.as_str()).bind(now).execute(c).await?;
        });
        self.audit(AuditRecord::new(
            "agent.availability",
            "user",
            user.to_string(),
            serde_json::json!({ "availability": a.as_str() }),
        ))
        .await?;
        Ok(())
    }

    /// Marks a member seen (keeps "online" from expiring); no row, no change.
    pub async fn touch_presence(
        &mut self,
        user: UserId,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let org = self.org();
        with_conn!(self.tx, c => {
            sqlx::query("UPDATE agent_presence SET last_seen_at = $3 WHERE org_id = $1 AND user_id = $2 AND last_seen_at < $3")
                .bind(org).bind(user.as_uuid()).bind(now).execute(c).await?;
        });
        Ok(())
    }

    /// A member's availability as others see it: "online" turns "away" once they have not
    /// been seen for [`PRESENCE_TTL`].
    pub async fn availability(
        &mut self,
        user: UserId,
        now: OffsetDateTime,
    ) -> Result<Availability, StoreError> {
        let org = self.org();
        let r: Option<(String, OffsetDateTime)> = with_conn!(self.tx, c => {
            sqlx::query_as("SELECT availability, last_seen_at FROM agent_presence WHERE org_id = $1 AND user_id = $2")
                .bind(org).bind(user.as_uuid()).fetch_optional(c).await?
        });
        Ok(match r {
            None => Availability::Offline,
            Some((a, seen)) => match Availability::parse(&a)? {
                Availability::Online if seen + PRESENCE_TTL < now => Availability::Away,
                a => a,
            },
        })
    }

    /// Assigns an unassigned, open conversation of a round-robin inbox to the next online
    /// member of the inbox's team after the one who got the last. The inbox row is locked
    /// first (an UPDATE: a row lock on PostgreSQL; SQLite has one writer), so two
    /// concurrent assignments never pick from the same pointer.
    pub async fn auto_assign(
        &mut self,
        conversation: ConversationId,
        now: OffsetDateTime,
    ) -> Result<Option<UserId>, StoreError> {
        let core = self.core(conversation).await?;
        if core.assignee.is_some() || !core.status_is_counted {
            return Ok(None);
        }
        let org = self.org();
        let inbox: Option<(String, Option<Uuid>, Option<Uuid>)> = with_conn!(self.tx, c => {
            sqlx::query_as("UPDATE inboxes SET rr_last_user_id = rr_last_user_id WHERE org_id = $1 AND channel_id = $2 RETURNING auto_assign, assign_team_id, rr_last_user_id")
                .bind(org).bind(core.channel.as_uuid()).fetch_optional(c).await?
        });
        let Some(("round_robin", Some(team), last)) =
            inbox.as_ref().map(|(a, t, l)| (a.as_str(), *t, *l))
        else {
            return Ok(None);
        };
        let mut online: Vec<Uuid> = with_conn!(self.tx, c => {
            sqlx::query_scalar("SELECT tm.user_id FROM team_members tm JOIN agent_presence p ON p.org_id = tm.org_id AND p.user_id = tm.user_id \
                                WHERE tm.org_id = $1 AND tm.team_id = $2 AND p.availability = 'online' AND p.last_seen_at >= $3")
                .bind(org).bind(team).bind(now - PRESENCE_TTL).fetch_all(c).await?
        });
        online.sort();
        let Some(next) = last
            .and_then(|l| online.iter().find(|u| **u > l))
            .or(online.first())
            .copied()
        else {
            return Ok(None);
        };
        with_conn!(self.tx, c => {
            sqlx::query("UPDATE inboxes SET rr_last_user_id = $3 WHERE org_id = $1 AND channel_id = $2")
                .bind(org).bind(core.channel.as_uuid()).bind(next).execute(&mut *c).await?;
            sqlx::query("UPDATE conversations SET assignee_id = $3, team_id = coalesce(team_id, $4), updated_at = $5 WHERE org_id = $1 AND id = $2")
                .bind(org).bind(conversation.as_uuid()).bind(next).bind(team).bind(now_micros()).execute(&mut *c).await?;
        });
        let user = UserId::from_uuid(next);
        self.audit(AuditRecord::new(
            "conversation.auto_assigned",
            "conversation",
            conversation.to_string(),
            serde_json::json!({ "assignee_id": user, "team_id": team }),
        ))
        .await?;
        self.emit_updated(conversation, "assigned").await?;
        Ok(Some(user))
    }

    // ---- labels ----

    /// The organisation's labels, by name.
    pub async fn labels(&mut self) -> Result<Vec<Label>, StoreError> {
        let org = self.org();
        let rows: Vec<(Uuid, String, String)> = with_conn!(self.tx, c => {
            sqlx::query_as("SELECT id, name, color FROM labels WHERE org_id = $1 ORDER BY name")
                .bind(org).fetch_all(c).await?
        });
        Ok(rows
            .into_iter()
            .map(|(id, name, color)| Label {
                id: LabelId::from_uuid(id),
                name,
                color,
            })
            .collect())
    }

    pub async fn create_label(&mut self, name: &str, color: &str) -> Result<Label, StoreError> {
        validate_label(name, color)?;
        let org = self.org();
        let id = LabelId::new();
        let name = name.trim().to_owned();
        let n = with_conn!(self.tx, c => {
            sqlx::query("INSERT INTO labels (org_id, id, name, color, created_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (org_id, name) DO NOTHING")
                .bind(org).bind(id.as_uuid()).bind(&name).bind(color).bind(now_micros()).execute(c).await?.rows_affected()
        });
        if n == 0 {
            return Err(StoreError::Conflict("label_exists"));
        }
        self.audit(AuditRecord::new(
            "label.created",
            "label",
            id.to_string(),
            serde_json::json!({ "name": name, "color": color }),
        ))
        .await?;
        Ok(Label {
            id,
            name,
            color: color.to_owned(),
        })
    }

    /// Renames or recolours a label; audited.
    pub async fn update_label(
        &mut self,
        id: LabelId,
        name: &str,
        color: &str,
    ) -> Result<Label, StoreError> {
        validate_label(name, color)?;
        let org = self.org();
        let name = name.trim().to_owned();
        let exists: Option<Uuid> = with_conn!(self.tx, c => {
            sqlx::query_scalar("SELECT id FROM labels WHERE org_id = $1 AND id = $2").bind(org).bind(id.as_uuid()).fetch_optional(c).await?
        });
        if exists.is_none() {
            return Err(StoreError::NotFound);
        }
        let taken: Option<Uuid> = with_conn!(self.tx, c => {
            sqlx::query_scalar("SELECT id FROM labels WHERE org_id = $1 AND name = $2 AND id <> $3").bind(org).bind(&name).bind(id.as_uuid()).fetch_optional(c).await?
        });
        if taken.is_some() {
            return Err(StoreError::Conflict("label_exists"));
        }
        with_conn!(self.tx, c => {
            sqlx::query("UPDATE labels SET name = $3, color = $4 WHERE org_id = $1 AND id = $2")
                .bind(org).bind(id.as_uuid()).bind(&name).bind(color).execute(c).await?;
        });
        self.audit(AuditRecord::new(
            "label.updated",
            "label",
            id.to_string(),
            serde_json::json!({ "name": name, "color": color }),
        ))
        .await?;
        Ok(Label {
            id,
            name,
            color: color.to_owned(),
        })
    }

    pub async fn delete_label(&mut self, id: LabelId) -> Result<(), StoreError> {
        let org = self.org();
        let n = with_conn!(self.tx, c => {
            sqlx::query("DELETE FROM labels WHERE org_id = $1 AND id = $2").bind(org).bind(id.as_uuid()).execute(c).await?.rows_affected()
        });
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        self.audit(AuditRecord::new(
            "label.deleted",
            "label",
            id.to_string(),
            serde_json::json!({}),
        ))
        .await?;
        Ok(())
    }

    /// Puts a label on (or takes it off) a conversation the viewer may see.
    pub async fn set_conversation_label(
        &mut self,
        v: &Viewer,
        conversation: ConversationId,
        label: LabelId,
        on: bool,
    ) -> Result<(), StoreError> {
        self.visible_core(v, conversation).await?;
        let org = self.org();
        let exists: Option<Uuid> = with_conn!(self.tx, c => {
            sqlx::query_scalar("SELECT id FROM labels WHERE org_id = $1 AND id = $2").bind(org).bind(label.as_uuid()).fetch_optional(c).await?
        });
        if exists.is_none() {
            return Err(StoreError::Invalid(format!("no label {label} here")));
        }
        let n = with_conn!(self.tx, c => {
            if on {
                sqlx::query("INSERT INTO conversation_labels (org_id, conversation_id, label_id, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING")
                    .bind(org).bind(conversation.as_uuid()).bind(label.as_uuid()).bind(now_micros()).execute(c).await?.rows_affected()
            } else {
                sqlx::query("DELETE FROM conversation_labels WHERE org_id = $1 AND conversation_id = $2 AND label_id = $3")
                    .bind(org).bind(conversation.as_uuid()).bind(label.as_uuid()).execute(c).await?.rows_affected()
            }
        });
        if n == 0 {
            return Ok(());
        }
        let action = if on {
            "conversation.labelled"
        } else {
            "conversation.unlabelled"
        };
        self.audit(AuditRecord::new(
            action,
            "conversation",
            conversation.to_string(),
            serde_json::json!({ "label_id": label }),
        ))
        .await?;
        self.emit_updated(
            conversation,
            if on { "label_added" } else { "label_removed" },
        )
        .await
    }

    // ---- list and view ----

    /// One page of the conversation list, with the sidebar's unread counts.
    pub async fn list_conversations(
        &mut self,
        v: &Viewer,
        q: &ListQuery,
    ) -> Result<ConversationPage, StoreError> {
        let org = self.org();
        let limit = q.limit.clamp(1, MAX_PAGE);
        let view = match q.view {
            ListView::Mine => "mine",
            ListView::Unassigned => "unassigned",
            ListView::All => "all",
        };
        if !matches!(
            q.status.as_str(),
            "open" | "pending" | "snoozed" | "resolved" | "active" | "any"
        ) {
            return Err(StoreError::Invalid(
                "status is open, pending, snoozed, resolved, active or any".into(),
            ));
        }
        let search = q.search.as_deref().map(normalise_search).transpose()?;
        let sqlite = matches!(self.tx, Tx::Sqlite(_));
        // A viewer who sees masked numbers may not search by number: the number is simply
        // not a searched field for them (else a search could confirm a number digit by digit).
        let (msg_pat, contact_pat): (Option<String>, Option<String>) = match &search {
            None => (None, None),
            Some(s) if sqlite => (
                Some(fts_phrase(s)),
                Some(if v.view_phone {
                    format!("{{profile_name username phone}} : {}", fts_phrase(s))
                } else {
                    format!("{{profile_name username}} : {}", fts_phrase(s))
                }),
            ),
            Some(s) => (Some(like_pattern(s)), v.view_phone.then(|| like_pattern(s))),
        };
        let (cur_at, cur_id) = match q.after {
            Some(c) => (Some(c.at), Some(c.id)),
            None => (None, None),
        };
        macro_rules! run {
            ($c:expr, $sql:expr) => {
                sqlx::query_as::<_, ItemRow>($sql)
                    .bind(org)
                    .bind(v.me())
                    .bind(v.read_all)
                    .bind(view)
                    .bind(q.team.map(|t| t.as_uuid()))
                    .bind(q.channel.map(|t| t.as_uuid()))
                    .bind(q.status.as_str())
                    .bind(q.label.map(|t| t.as_uuid()))
                    .bind(&msg_pat)
                    .bind(&contact_pat)
                    .bind(cur_at)
                    .bind(cur_id)
                    .bind(limit + 1)
                    .fetch_all($c)
                    .await?
            };
        }
        let mut rows: Vec<ItemRow> = match &mut self.tx {
            Tx::Sqlite(t) => run!(&mut **t, LIST_SQL_SQLITE),
            Tx::Postgres(t) => run!(&mut **t, LIST_SQL_POSTGRES),
        };
        let next_cursor = Cursor::page(&mut rows, limit, |r| (r.last_message_at, r.id));
        let catalogue = if rows.iter().any(ItemRow::has_labels) {
            self.labels().await?
        } else {
            Vec::new()
        };
        let items = rows.into_iter().map(|r| item(v, r, &catalogue)).collect();
        let unread = self.unread_counts(v).await?;
        Ok(ConversationPage {
            items,
            next_cursor,
            unread,
        })
    }

    /// Conversations (not resolved) with customer messages the viewer has not read. In a
    /// read transaction the counts come from (and go to) the cache in [`crate::unread`].
    pub async fn unread_counts(&mut self, v: &Viewer) -> Result<UnreadCounts, StoreError> {
        let org_id = self.ctx().org_id();
        let key = crate::unread::ViewerKey {
            user: v.user,
            read_all: v.read_all,
        };
        if self.ticket.is_some()
            && let Some(counts) = self.unread_cache().get(org_id, key)
        {
            return Ok(counts);
        }
        let org = self.org();
        // One statement, so the read-mark number is of the same snapshot as the counts.
        let (mine, unassigned, all, read_seq): (i64, i64, i64, i64) = with_conn!(self.tx, c => {
            sqlx::query_as(concat!(
                "SELECT coalesce(sum(CASE WHEN c.assignee_id = $2 THEN 1 ELSE 0 END), 0), coalesce(sum(CASE WHEN c.assignee_id IS NULL THEN 1 ELSE 0 END), 0), count(*), \
                 coalesce((SELECT s.seq FROM conversation_read_seq s WHERE s.org_id = $1 AND s.user_id = $2), 0) \
                 FROM conversations c LEFT JOIN conversation_reads r ON r.org_id = c.org_id AND r.user_id = $2 AND r.conversation_id = c.id \
                 WHERE c.org_id = $1 AND c.status <> 'resolved' AND c.inbound_count > coalesce(r.read_count, 0) AND ", visible!()))
                .bind(org).bind(v.me()).bind(v.read_all).fetch_one(c).await?
        });
        let counts = UnreadCounts {
            mine,
            unassigned,
            all,
        };
        if let Some(ticket) = self.ticket {
            self.unread_cache()
                .put(org_id, ticket, key, read_seq, counts);
        }
        Ok(counts)
    }

    /// One conversation as a list row, if the viewer may see it.
    pub async fn conversation_item(
        &mut self,
        v: &Viewer,
        id: ConversationId,
    ) -> Result<ConversationItem, StoreError> {
        Ok(self.item_row(v, id).await?.0)
    }

    /// One conversation as a list row with its last customer message time, in one
    /// statement (plus the label catalogue when it has labels).
    async fn item_row(
        &mut self,
        v: &Viewer,
        id: ConversationId,
    ) -> Result<(ConversationItem, Option<OffsetDateTime>), StoreError> {
        let org = self.org();
        let sql = match self.tx {
            Tx::Sqlite(_) => ONE_SQL_SQLITE,
            Tx::Postgres(_) => ONE_SQL_POSTGRES,
        };
        let r: Option<ItemRow> = with_conn!(self.tx, c => {
            sqlx::query_as(sql).bind(org).bind(v.me()).bind(v.read_all).bind(id.as_uuid()).fetch_optional(c).await?
        });
        let r = r.ok_or(StoreError::NotFound)?;
        let last_inbound = r.last_inbound_at;
        let catalogue = if r.has_labels() {
            self.labels().await?
        } else {
            Vec::new()
        };
        Ok((item(v, r, &catalogue), last_inbound))
    }

    /// A page of a conversation's messages, newest first, before `before`.
    pub async fn inbox_messages(
        &mut self,
        v: &Viewer,
        conversation: ConversationId,
        before: Option<Cursor>,
        limit: i64,
    ) -> Result<(Vec<InboxMessage>, Option<String>), StoreError> {
        self.visible_core(v, conversation).await?;
        self.messages_page(v, conversation, before, limit).await
    }

    /// [`Self::inbox_messages`] once visibility has been checked in this transaction.
    async fn messages_page(
        &mut self,
        v: &Viewer,
        conversation: ConversationId,
        before: Option<Cursor>,
        limit: i64,
    ) -> Result<(Vec<InboxMessage>, Option<String>), StoreError> {
        let org = self.org();
        let limit = limit.clamp(1, MAX_PAGE);
        let (at, id) = match before {
            Some(c) => (Some(c.at), Some(c.id)),
            None => (None, None),
        };
        let mut rows: Vec<MsgRow> = with_conn!(self.tx, c => {
            sqlx::query_as("SELECT m.id, m.direction, m.kind, m.content, m.preview, m.provider_message_id, m.reply_to, m.media_id, md.status AS media_status, m.status, m.error_code, m.error_title, m.author_id, m.created_at, \
                            q.id AS q_id, q.direction AS q_direction, q.kind AS q_kind, q.preview AS q_preview \
                            FROM messages m \
                            LEFT JOIN media md ON md.org_id = m.org_id AND md.id = m.media_id \
                            LEFT JOIN messages q ON q.org_id = m.org_id AND q.channel_id = m.channel_id AND q.provider_message_id = m.reply_to \
                            WHERE m.org_id = $1 AND m.conversation_id = $2 AND ($3 IS NULL OR (m.created_at, m.id) < ($3, $4)) \
                            ORDER BY m.created_at DESC, m.id DESC LIMIT $5")
                .bind(org).bind(conversation.as_uuid()).bind(at).bind(id).bind(limit + 1).fetch_all(c).await?
        });
        let next = Cursor::page(&mut rows, limit, |r| (r.created_at, r.id));
        let msgs = rows
            .into_iter()
            .map(|r| inbox_message(v, r))
            .collect::<Result<_, _>>()?;
        Ok((msgs, next))
    }

    /// A conversation's notes, oldest first (at most 500).
    pub async fn notes(
        &mut self,
        v: &Viewer,
        conversation: ConversationId,
    ) -> Result<Vec<Note>, StoreError> {
        self.visible_core(v, conversation).await?;
        self.notes_of(conversation).await
    }

    /// [`Self::notes`] once visibility has been checked in this transaction.
    async fn notes_of(&mut self, conversation: ConversationId) -> Result<Vec<Note>, StoreError> {
        let org = self.org();
        let rows: Vec<(Uuid, Uuid, Option<Uuid>, String, String, OffsetDateTime)> = with_conn!(self.tx, c => {
            sqlx::query_as("SELECT id, conversation_id, author_id, body, mentions, created_at FROM notes WHERE org_id = $1 AND conversation_id = $2 ORDER BY created_at, id LIMIT 500")
                .bind(org).bind(conversation.as_uuid()).fetch_all(c).await?
        });
        Ok(rows.into_iter().map(note).collect())
    }

    /// The conversation view: the conversation, its contact, a page of messages (newest
    /// first), its notes and labels.
    pub async fn conversation_detail(
        &mut self,
        v: &Viewer,
        id: ConversationId,
        before: Option<Cursor>,
        limit: i64,
        now: OffsetDateTime,
    ) -> Result<ConversationDetail, StoreError> {
        // Three statements: the row checks visibility, so the pages need not.
        let (conversation, last_inbound) = self.item_row(v, id).await?;
        let (messages, next_cursor) = self.messages_page(v, id, before, limit).await?;
        let notes = self.notes_of(id).await?;
        Ok(ConversationDetail {
            conversation,
            window_open: crate::messaging::window_open(last_inbound, now),
            window_closes_at: last_inbound.map(|t| t + SERVICE_WINDOW),
            messages,
            next_cursor,
            notes,
        })
    }

    /// Marks everything the customer wrote so far as read by this user. Returns whether
    /// anything changed.
    pub async fn mark_conversation_read(
        &mut self,
        v: &Viewer,
        id: ConversationId,
    ) -> Result<bool, StoreError> {
        let (changed, _) = self.mark_read(v, &[id]).await?;
        Ok(changed.first().copied().unwrap_or(false))
    }

    /// Marks conversations read by the viewer (each one they may see): which marks changed
    /// something, and, when any did, the user's new read-mark number with what the marks
    /// took off their unread counts. Raising the number tells cached counts which reads
    /// they reflect (see [`crate::unread`]).
    pub(crate) async fn mark_read(
        &mut self,
        v: &Viewer,
        ids: &[ConversationId],
    ) -> Result<(Vec<bool>, Option<(i64, crate::unread::ReadDelta)>), StoreError> {
        let Some(user) = v.user else {
            return Ok((vec![false; ids.len()], None));
        };
        let org = self.org();
        let now = now_micros();
        let mut changed = Vec::with_capacity(ids.len());
        let mut delta = crate::unread::ReadDelta::default();
        for id in ids {
            let core = match self.visible_core(v, *id).await {
                Ok(core) => core,
                Err(StoreError::NotFound) => {
                    changed.push(false);
                    continue;
                }
                Err(e) => return Err(e),
            };
            // read_count only ever rises to inbound_count, so a change means it was unread.
            let n = with_conn!(self.tx, c => {
                sqlx::query("INSERT INTO conversation_reads (org_id, conversation_id, user_id, read_count, read_at) \
                             SELECT org_id, id, $3, inbound_count, $4 FROM conversations WHERE org_id = $1 AND id = $2 \
                             ON CONFLICT (org_id, user_id, conversation_id) DO UPDATE SET read_count = excluded.read_count, read_at = excluded.read_at \
                             WHERE conversation_reads.read_count <> excluded.read_count")
                    .bind(org).bind(id.as_uuid()).bind(user.as_uuid()).bind(now).execute(c).await?.rows_affected()
            });
            changed.push(n > 0);
            if n > 0 && core.status_is_counted {
                delta.all += 1;
                match core.assignee {
                    Some(a) if a == user => delta.mine += 1,
                    None => delta.unassigned += 1,
                    Some(_) => {}
                }
            }
        }
        if !changed.contains(&true) {
            return Ok((changed, None));
        }
        let seq: i64 = with_conn!(self.tx, c => {
            sqlx::query_scalar("INSERT INTO conversation_read_seq (org_id, user_id, seq) VALUES ($1, $2, 1) \
                                ON CONFLICT (org_id, user_id) DO UPDATE SET seq = conversation_read_seq.seq + 1 RETURNING seq")
                .bind(org).bind(user.as_uuid()).fetch_one(c).await?
        });
        Ok((changed, Some((seq, delta))))
    }

    // ---- actions ----

    /// Assigns a conversation to an agent and/or a team (`None`, `None` unassigns).
    pub async fn assign_conversation(
        &mut self,
        v: &Viewer,
        id: ConversationId,
        assignee: Option<UserId>,
        team: Option<TeamId>,
    ) -> Result<(), StoreError> {
        self.visible_core(v, id).await?;
        if let Some(u) = assignee {
            self.require_member(u)
                .await
                .map_err(|_| StoreError::Invalid(format!("no member {u} here")))?;
        }
        if let Some(t) = team {
            self.require_team(t).await?;
        }
        let org = self.org();
        with_conn!(self.tx, c => {
            sqlx::query("UPDATE conversations SET assignee_id = $3, team_id = $4, updated_at = $5 WHERE org_id = $1 AND id = $2")
                .bind(org).bind(id.as_uuid()).bind(assignee.map(|u| u.as_uuid())).bind(team.map(|t| t.as_uuid())).bind(now_micros()).execute(c).await?;
        });
        let (action, change) = if assignee.is_none() && team.is_none() {
            ("conversation.unassigned", "unassigned")
        } else {
            ("conversation.assigned", "assigned")
        };
        self.audit(AuditRecord::new(
            action,
            "conversation",
            id.to_string(),
            serde_json::json!({ "assignee_id": assignee, "team_id": team }),
        ))
        .await?;
        self.emit_updated(id, change).await
    }

    /// Resolves, reopens or snoozes a conversation.
    pub async fn change_status(
        &mut self,
        v: &Viewer,
        id: ConversationId,
        change: StatusChange,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.visible_core(v, id).await?;
        let (status, until, action) = match change {
            StatusChange::Resolve => ("resolved", None, "conversation.resolved"),
            StatusChange::Reopen => ("open", None, "conversation.reopened"),
            StatusChange::Snooze(t) => {
                if t <= now || t > now + time::Duration::days(366) {
                    return Err(StoreError::Invalid(
                        "snooze until a time in the next year".into(),
                    ));
                }
                ("snoozed", Some(t), "conversation.snoozed")
            }
        };
        let org = self.org();
        with_conn!(self.tx, c => {
            sqlx::query("UPDATE conversations SET status = $3, snoozed_until = $4, updated_at = $5 WHERE org_id = $1 AND id = $2")
                .bind(org).bind(id.as_uuid()).bind(status).bind(until).bind(now_micros()).execute(c).await?;
        });
        self.audit(AuditRecord::new(action, "conversation", id.to_string(), serde_json::json!({ "status": status, "snoozed_until": until.map(|t| t.unix_timestamp()) })))
            .await?;
        self.emit_updated(id, status).await
    }

    /// Reopens this organisation's snoozed conversations whose time has come.
    pub async fn wake_snoozed(
        &mut self,
        now: OffsetDateTime,
    ) -> Result<Vec<ConversationId>, StoreError> {
        let org = self.org();
        let ids: Vec<Uuid> = with_conn!(self.tx, c => {
            sqlx::query_scalar("UPDATE conversations SET status = 'open', snoozed_until = NULL, updated_at = $3 WHERE org_id = $1 AND status = 'snoozed' AND snoozed_until <= $2 RETURNING id")
                .bind(org).bind(now).bind(now_micros()).fetch_all(c).await?
        });
        let ids: Vec<ConversationId> = ids.into_iter().map(ConversationId::from_uuid).collect();
        for id in &ids {
            self.audit(AuditRecord::new(
                "conversation.woken",
                "conversation",
                id.to_string(),
                serde_json::json!({}),
            ))
            .await?;
            self.emit_updated(*id, "woken").await?;
        }
        Ok(ids)
    }

    /// Writes an internal note; each mentioned member is notified once. Notes never reach
    /// WhatsApp. Mentions are the tokens in `body` (see [`frontdesk_domain::mention`]) and
    /// the `explicit` ids, merged without repeats (at most [`MAX_MENTIONS`]); each must be
    /// a member who may read the conversation, or nothing is written. Tokens are stored
    /// with the members' current names.
    pub async fn add_note(
        &mut self,
        v: &Viewer,
        id: ConversationId,
        body: &str,
        explicit: &[UserId],
    ) -> Result<Note, StoreError> {
        let core = self.visible_core(v, id).await?;
        let n = body.trim().chars().count();
        if n == 0 || body.chars().count() > 4096 {
            return Err(StoreError::Invalid(
                "a note has 1 to 4096 characters".into(),
            ));
        }
        if explicit.len() > MAX_MENTIONS {
            return Err(StoreError::Invalid(format!(
                "at most {MAX_MENTIONS} mentions in a note"
            )));
        }
        let mut mentioned: Vec<UserId> = Vec::new();
        for u in find_mentions(body)
            .iter()
            .map(|t| t.user)
            .chain(explicit.iter().copied())
        {
            if !mentioned.contains(&u) {
                mentioned.push(u);
            }
        }
        if mentioned.len() > MAX_MENTIONS {
            return Err(StoreError::Invalid(format!(
                "at most {MAX_MENTIONS} different members can be mentioned in a note"
            )));
        }
        let body = if mentioned.is_empty() {
            body.to_owned()
        } else {
            let members = self.readers_of(&core).await?;
            let unknown = mentioned
                .iter()
                .filter(|u| !members.iter().any(|m| m.user == **u))
                .count();
            if unknown > 0 {
                return Err(StoreError::Invalid(if unknown == 1 {
                    "a mention names someone who is not a member of this organisation".into()
                } else {
                    format!(
                        "{unknown} mentions name people who are not members of this organisation"
                    )
                }));
            }
            let blind: Vec<&str> = members
                .iter()
                .filter(|m| mentioned.contains(&m.user) && !m.can_read)
                .map(|m| m.name.as_str())
                .collect();
            if !blind.is_empty() {
                return Err(StoreError::Invalid(format!(
                    "{} may not see this conversation, so cannot be mentioned in its notes",
                    blind.join(", ")
                )));
            }
            let canonical = rewrite_mentions(body, |u| {
                members.iter().find(|m| m.user == u).map(|m| m.name.clone())
            });
            if canonical.chars().count() > 4096 {
                return Err(StoreError::Invalid(
                    "the note is too long once its mentions are written out (4096 characters)"
                        .into(),
                ));
            }
            canonical
        };
        let org = self.org();
        let note_id = NoteId::new();
        let now = now_micros();
        let mentions_json =
            serde_json::to_string(&mentioned).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let author = v.user.map(|u| u.as_uuid());
        with_conn!(self.tx, c => {
            sqlx::query("INSERT INTO notes (org_id, id, conversation_id, author_id, body, mentions, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
                .bind(org).bind(note_id.as_uuid()).bind(id.as_uuid()).bind(author).bind(&body).bind(&mentions_json).bind(now).execute(c).await?;
        });
        let note = Note {
            id: note_id,
            conversation_id: id,
            author_id: v.user,
            parts: note_parts(&body, &mentioned),
            body,
            mentions: mentioned.clone(),
            created_at: now,
        };
        self.audit(AuditRecord::new(
            "note.created",
            "conversation",
            id.to_string(),
            serde_json::json!({ "note_id": note_id, "mentions": mentioned }),
        ))
        .await?;
        self.emit_conversation(
            EventKind::NoteNew,
            id,
            serde_json::json!({ "conversation_id": id, "note": note }),
        )
        .await?;
        for u in mentioned.iter().filter(|u| Some(**u) != v.user) {
            let nid = NotificationId::new();
            with_conn!(self.tx, c => {
                sqlx::query("INSERT INTO notifications (org_id, id, user_id, kind, conversation_id, note_id, actor_id, created_at) VALUES ($1, $2, $3, 'mention', $4, $5, $6, $7)")
                    .bind(org).bind(nid.as_uuid()).bind(u.as_uuid()).bind(id.as_uuid()).bind(note_id.as_uuid()).bind(author).bind(now).execute(c).await?;
            });
            let org_id = self.ctx().org_id();
            self.emit(Event {
                org_id,
                kind: EventKind::Notification,
                conversation_id: Some(id),
                channel_id: None,
                assignee_id: None,
                team_id: None,
                for_user: Some(*u),
                data: serde_json::json!({ "id": nid, "kind": "mention", "conversation_id": id, "note_id": note_id, "actor_id": v.user }),
            });
        }
        Ok(note)
    }

    /// The members who may be mentioned in the conversation's notes: those who may read
    /// it, by name. `NotFound` when the viewer may not see it.
    pub async fn mentionable(
        &mut self,
        v: &Viewer,
        id: ConversationId,
    ) -> Result<Vec<Mentionable>, StoreError> {
        let core = self.visible_core(v, id).await?;
        Ok(self
            .readers_of(&core)
            .await?
            .into_iter()
            .filter(|m| m.can_read)
            .map(|m| Mentionable {
                token: mention_token(m.user, &m.name),
                user_id: m.user,
                name: m.name,
            })
            .collect())
    }

    /// Every member of the organisation and whether they may read the conversation: the
    /// visibility rule of [`visible!`], applied per member with their role's permissions.
    async fn readers_of(&mut self, core: &Core) -> Result<Vec<Reader>, StoreError> {
        let org = self.org();
        type Row = (Uuid, String, String, Option<String>, String);
        // Users are a global table: the join reaches only users who are members here.
        let rows: Vec<Row> = with_conn!(self.tx, c => {
            sqlx::query_as("SELECT m.user_id, u.name, r.name, r.builtin, r.permissions FROM memberships m JOIN users u ON u.id = m.user_id JOIN roles r ON r.org_id = m.org_id AND r.id = m.role_id WHERE m.org_id = $1 ORDER BY u.name, u.id")
                .bind(org).fetch_all(c).await?
        });
        let links: Vec<(Uuid, Uuid)> = with_conn!(self.tx, c => {
            sqlx::query_as("SELECT user_id, team_id FROM team_members WHERE org_id = $1")
                .bind(org).fetch_all(c).await?
        });
        let serving: Vec<Uuid> = with_conn!(self.tx, c => {
            sqlx::query_scalar("SELECT team_id FROM inbox_teams WHERE org_id = $1 AND channel_id = $2")
                .bind(org).bind(core.channel.as_uuid()).fetch_all(c).await?
        });
        rows.into_iter()
            .map(|(user, name, role_name, builtin, perms)| {
                let role = crate::members::role_from_row(role_name, builtin.as_deref(), &perms)?;
                let p = role.permissions;
                let user = UserId::from_uuid(user);
                let teams = links
                    .iter()
                    .filter(|(u, _)| *u == user.as_uuid())
                    .map(|(_, t)| *t);
                let mut in_team = false;
                let mut serves = false;
                for t in teams {
                    in_team |= core.team.is_some_and(|ct| ct.as_uuid() == t);
                    serves |= serving.contains(&t);
                }
                let can_read = p.contains(Permission::InboxRead)
                    && (p.contains(Permission::InboxReadAll)
                        || core.assignee == Some(user)
                        || in_team
                        || serves);
                Ok(Reader {
                    user,
                    name,
                    can_read,
                })
            })
            .collect()
    }

    /// The user's notifications, newest first (at most `limit`, ≤ 100), and how many are unread.
    pub async fn notifications(
        &mut self,
        user: UserId,
        limit: i64,
    ) -> Result<(Vec<Notification>, i64), StoreError> {
        let org = self.org();
        type Row = (
            Uuid,
            String,
            Uuid,
            Option<Uuid>,
            Option<Uuid>,
            OffsetDateTime,
            Option<OffsetDateTime>,
            Option<String>,
        );
        let rows: Vec<Row> = with_conn!(self.tx, c => {
            sqlx::query_as("SELECT n.id, n.kind, n.conversation_id, n.note_id, n.actor_id, n.created_at, n.read_at, (SELECT u.name FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.org_id = n.org_id AND m.user_id = n.actor_id) FROM notifications n WHERE n.org_id = $1 AND n.user_id = $2 ORDER BY n.created_at DESC, n.id DESC LIMIT $3")
                .bind(org).bind(user.as_uuid()).bind(limit.clamp(1, MAX_PAGE)).fetch_all(c).await?
        });
        let unread: i64 = with_conn!(self.tx, c => {
            sqlx::query_scalar("SELECT count(*) FROM notifications WHERE org_id = $1 AND user_id = $2 AND read_at IS NULL")
                .bind(org).bind(user.as_uuid()).fetch_one(c).await?
        });
        Ok((
            rows.into_iter()
                .map(|r| Notification {
                    id: NotificationId::from_uuid(r.0),
                    kind: r.1,
                    conversation_id: ConversationId::from_uuid(r.2),
                    note_id: r.3.map(NoteId::from_uuid),
                    actor_id: r.4.map(UserId::from_uuid),
                    actor_name: r.7,
                    created_at: r.5,
                    read: r.6.is_some(),
                })
                .collect(),
            unread,
        ))
    }

    /// Marks one of the user's notifications read (or all, with `None`). Returns how many.
    pub async fn mark_notifications_read(
        &mut self,
        user: UserId,
        id: Option<NotificationId>,
    ) -> Result<u64, StoreError> {
        let org = self.org();
        let now = now_micros();
        let n = with_conn!(self.tx, c => {
            sqlx::query("UPDATE notifications SET read_at = $4 WHERE org_id = $1 AND user_id = $2 AND ($3 IS NULL OR id = $3) AND read_at IS NULL")
                .bind(org).bind(user.as_uuid()).bind(id.map(|i| i.as_uuid())).bind(now).execute(c).await?.rows_affected()
        });
        if n == 0 && id.is_some() {
            // Another user's notification, or none: not there.
            let mine: Option<Uuid> = with_conn!(self.tx, c => {
                sqlx::query_scalar("SELECT id FROM notifications WHERE org_id = $1 AND user_id = $2 AND id = $3")
                    .bind(org).bind(user.as_uuid()).bind(id.map(|i| i.as_uuid())).fetch_optional(c).await?
            });
            if mine.is_none() {
                return Err(StoreError::NotFound);
            }
        }
        Ok(n)
    }

    /// Queues a failed outbound message again (same message, new outbox row). A free-form
    /// message needs the service window open, as any send does.
    pub async fn retry_message(
        &mut self,
        v: &Viewer,
        message: MessageId,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let org = self.org();
        let r: Option<(Uuid, Uuid, String, String, String)> = with_conn!(self.tx, c => {
            sqlx::query_as("SELECT conversation_id, channel_id, direction, status, kind FROM messages WHERE org_id = $1 AND id = $2")
                .bind(org).bind(message.as_uuid()).fetch_optional(c).await?
        });
        let (conv, channel, direction, status, kind) = r.ok_or(StoreError::NotFound)?;
        let conv = ConversationId::from_uuid(conv);
        self.visible_core(v, conv).await?;
        if direction != "out" || status != "failed" {
            return Err(StoreError::Conflict("not_failed"));
        }
        if kind != "template" {
            let last: Option<OffsetDateTime> = with_conn!(self.tx, c => {
                sqlx::query_scalar("SELECT last_inbound_at FROM conversations WHERE org_id = $1 AND id = $2").bind(org).bind(conv.as_uuid()).fetch_one(c).await?
            });
            if !crate::messaging::window_open(last, now) {
                return Err(StoreError::Conflict("outside_service_window"));
            }
        }
        let stamp = now_micros();
        with_conn!(self.tx, c => {
            sqlx::query("UPDATE messages SET status = 'queued', error_code = NULL, error_title = NULL, provider_message_id = NULL, updated_at = $3 WHERE org_id = $1 AND id = $2")
                .bind(org).bind(message.as_uuid()).bind(stamp).execute(&mut *c).await?;
        });
        self.insert_outbox(
            ChannelId::from_uuid(channel),
            message.as_uuid(),
            OutboxAction::Send,
            now,
        )
        .await?;
        self.audit(AuditRecord::new(
            "message.retried",
            "message",
            message.to_string(),
            serde_json::json!({ "conversation_id": conv }),
        ))
        .await?;
        self.emit_conversation(
            EventKind::MessageStatus,
            conv,
            serde_json::json!({ "conversation_id": conv, "message_id": message, "status": "queued" }),
        )
        .await
    }

    // ---- quick replies ----

    pub async fn quick_replies(&mut self) -> Result<Vec<QuickReply>, StoreError> {
        let org = self.org();
        let rows: Vec<(Uuid, String, String)> = with_conn!(self.tx, c => {
            sqlx::query_as("SELECT id, shortcut, body FROM quick_replies WHERE org_id = $1 ORDER BY shortcut LIMIT 1000")
                .bind(org).fetch_all(c).await?
        });
        Ok(rows
            .into_iter()
            .map(|(id, shortcut, body)| QuickReply {
                id: QuickReplyId::from_uuid(id),
                shortcut,
                body,
            })
            .collect())
    }

    pub async fn quick_reply(&mut self, id: QuickReplyId) -> Result<QuickReply, StoreError> {
        let org = self.org();
        let r: Option<(String, String)> = with_conn!(self.tx, c => {
            sqlx::query_as("SELECT shortcut, body FROM quick_replies WHERE org_id = $1 AND id = $2").bind(org).bind(id.as_uuid()).fetch_optional(c).await?
        });
        let (shortcut, body) = r.ok_or(StoreError::NotFound)?;
        Ok(QuickReply { id, shortcut, body })
    }

    /// Creates (`id` None) or replaces a quick reply; audited.
    pub async fn save_quick_reply(
        &mut self,
        id: Option<QuickReplyId>,
        shortcut: &str,
        body: &str,
    ) -> Result<QuickReply, StoreError> {
        validate_quick_reply(shortcut, body)?;
        let org = self.org();
        let now = now_micros();
        let (id, n) = match id {
            None => {
                let id = QuickReplyId::new();
                let n = with_conn!(self.tx, c => {
                    sqlx::query("INSERT INTO quick_replies (org_id, id, shortcut, body, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (org_id, shortcut) DO NOTHING")
                        .bind(org).bind(id.as_uuid()).bind(shortcut).bind(body).bind(now).execute(c).await?.rows_affected()
                });
                (id, n)
            }
            Some(id) => {
                self.quick_reply(id).await?;
                let taken: Option<Uuid> = with_conn!(self.tx, c => {
                    sqlx::query_scalar("SELECT id FROM quick_replies WHERE org_id = $1 AND shortcut = $2 AND id <> $3").bind(org).bind(shortcut).bind(id.as_uuid()).fetch_optional(c).await?
                });
                if taken.is_some() {
                    (id, 0)
                } else {
                    let n = with_conn!(self.tx, c => {
                        sqlx::query("UPDATE quick_replies SET shortcut = $3, body = $4, updated_at = $5 WHERE org_id = $1 AND id = $2")
                            .bind(org).bind(id.as_uuid()).bind(shortcut).bind(body).bind(now).execute(c).await?.rows_affected()
                    });
                    (id, n)
                }
            }
        };
        if n == 0 {
            return Err(StoreError::Conflict("shortcut_taken"));
        }
        self.audit(AuditRecord::new(
            "quick_reply.saved",
            "quick_reply",
            id.to_string(),
            serde_json::json!({ "shortcut": shortcut }),
        ))
        .await?;
        Ok(QuickReply {
            id,
            shortcut: shortcut.to_owned(),
            body: body.to_owned(),
        })
    }

    pub async fn delete_quick_reply(&mut self, id: QuickReplyId) -> Result<(), StoreError> {
        let org = self.org();
        let n = with_conn!(self.tx, c => {
            sqlx::query("DELETE FROM quick_replies WHERE org_id = $1 AND id = $2").bind(org).bind(id.as_uuid()).execute(c).await?.rows_affected()
        });
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        self.audit(AuditRecord::new(
            "quick_reply.deleted",
            "quick_reply",
            id.to_string(),
            serde_json::json!({}),
        ))
        .await?;
        Ok(())
    }

    /// A quick reply filled in for a conversation the viewer may see.
    pub async fn render_quick_reply_for(
        &mut self,
        v: &Viewer,
        id: QuickReplyId,
        conversation: ConversationId,
        agent_name: &str,
    ) -> Result<String, StoreError> {
        let qr = self.quick_reply(id).await?;
        let item = self.conversation_item(v, conversation).await?;
        Ok(render_quick_reply(
            &qr.body,
            item.contact.name.as_deref(),
            agent_name,
        ))
    }

    // ---- visibility for live events ----

    /// What a subscriber may see: the numbers its teams serve and its teams.
    pub async fn visibility_of(
        &mut self,
        user: UserId,
    ) -> Result<(Vec<ChannelId>, Vec<TeamId>), StoreError> {
        let org = self.org();
        let teams: Vec<Uuid> = with_conn!(self.tx, c => {
            sqlx::query_scalar("SELECT team_id FROM team_members WHERE org_id = $1 AND user_id = $2").bind(org).bind(user.as_uuid()).fetch_all(c).await?
        });
        let channels: Vec<Uuid> = with_conn!(self.tx, c => {
            sqlx::query_scalar("SELECT DISTINCT it.channel_id FROM inbox_teams it JOIN team_members tm ON tm.org_id = it.org_id AND tm.team_id = it.team_id WHERE it.org_id = $1 AND tm.user_id = $2")
                .bind(org).bind(user.as_uuid()).fetch_all(c).await?
        });
        Ok((
            channels.into_iter().map(ChannelId::from_uuid).collect(),
            teams.into_iter().map(TeamId::from_uuid).collect(),
        ))
    }
}

/// A conversation a user opened, to mark read for them (see [`Store::mark_read_batch`]).
#[derive(Debug, Clone)]
pub struct ReadMark {
    pub ctx: TenantCtx,
    pub conversation: ConversationId,
}

impl Store {
    /// Marks many users' opened conversations read in one transaction (group commit: the
    /// conversation view's writes share one durable write). Returns, in order, whether
    /// each mark changed anything. Cached unread counts are adjusted, not dropped.
    pub async fn mark_read_batch(&self, marks: &[ReadMark]) -> Result<Vec<bool>, StoreError> {
        let mut order: Vec<usize> = (0..marks.len()).collect();
        let viewer_of = |i: &usize| {
            let v = Viewer::of(&marks[*i].ctx);
            (marks[*i].ctx.org_id(), v.user, v.read_all)
        };
        order.sort_by_key(viewer_of);
        let Some(first) = order.first() else {
            return Ok(Vec::new());
        };
        // Read marks are cheap to lose and asked for on every view: not synced before the
        // answer (visible at once all the same).
        let mut tx = self.begin_relaxed(&marks[*first].ctx).await?;
        let mut out = vec![false; marks.len()];
        let mut adjust = Vec::new();
        for group in order.chunk_by(|a, b| viewer_of(a) == viewer_of(b)) {
            let ctx = &marks[group[0]].ctx;
            if ctx.org_id() != tx.ctx().org_id() {
                tx = tx.into_global().await?.into_tenant(ctx.clone()).await?;
            }
            let ids: Vec<ConversationId> = group.iter().map(|i| marks[*i].conversation).collect();
            let v = Viewer::of(ctx);
            let (changed, seq) = tx.mark_read(&v, &ids).await?;
            for (i, c) in group.iter().zip(changed) {
                out[*i] = c;
            }
            if let (Some((seq, delta)), Some(user)) = (seq, v.user) {
                adjust.push((ctx.org_id(), user, seq, delta));
            }
        }
        // Only read marks were written: the counts are adjusted below, not dropped.
        tx.keeps_unread_counts();
        tx.commit().await?;
        for (org, user, seq, delta) in adjust {
            self.events.unread().read_marked(org, user, seq, delta);
        }
        Ok(out)
    }
}

impl Store {
    /// Reopens every organisation's snoozed conversations whose time has come (the
    /// worker's timer). Returns how many woke.
    pub async fn wake_snoozed(&self, now: OffsetDateTime) -> Result<usize, StoreError> {
        let mut n = 0;
        for org in self.all_org_ids().await? {
            let ctx = TenantCtx::system(org, "snooze");
            let mut tx = self.begin(&ctx).await?;
            n += tx.wake_snoozed(now).await?.len();
            tx.commit().await?;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_replies_fill_known_variables_only() {
        assert_eq!(
            render_quick_reply(
                "Hi {{contact.first_name}}, {{ agent.name }} here. {{contact.name}} {{order.id}} {{",
                Some("Asha Kumar"),
                "Ravi"
            ),
            "Hi Asha, Ravi here. Asha Kumar {{order.id}} {{"
        );
        assert_eq!(
            render_quick_reply("Hi {{contact.first_name}}!", None, "R"),
            "Hi !"
        );
    }

    #[test]
    fn cursors_round_trip_and_refuse_junk() {
        let c = Cursor {
            at: OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_123_456_000).unwrap(),
            id: Uuid::now_v7(),
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        assert_eq!(Cursor::decode("not a cursor"), None);
        assert_eq!(Cursor::decode(""), None);
    }

    #[test]
    fn phones_in_provider_json_are_masked() {
        let mut v = serde_json::json!({
            "from": "919876543210",
            "text": { "body": "call me on 919876543210" },
            "contacts": [{ "phones": [{ "phone": "+1 415 555 0100", "wa_id": "14155550100" }] }],
            "id": "wamid.123"
        });
        mask_phones_in_json(&mut v);
        assert_eq!(v["from"], "+91 98•••••210");
        assert_eq!(v["contacts"][0]["phones"][0]["wa_id"], "+1 41•••••100");
        assert_eq!(v["id"], "wamid.123");
        // free text is the customer's own words, shown as written
        assert_eq!(v["text"]["body"], "call me on 919876543210");
    }

    #[test]
    fn search_text_is_bounded_and_quoted() {
        assert!(normalise_search("ab").is_err());
        assert_eq!(normalise_search("  asha ").unwrap(), "asha");
        assert_eq!(fts_phrase("a\"b OR c"), "\"a\"\"b OR c\"");
        assert_eq!(like_pattern("50%_\\"), "%50\\%\\_\\\\%");
    }
}
