//! Contacts, conversations and messages: what webhooks turn into, and what sends start from.
//!
//! Every write is idempotent on the provider's ids: a message is unique per number on its
//! provider message id (`wamid`), a status once per message and status, so a webhook applied
//! twice changes nothing. Statuses are kept as history in `message_statuses`, and a message's
//! status is derived from that history by rank, so statuses applied in any order end in the
//! same place and never move backwards (read never becomes delivered).

use crate::audit::AuditRecord;
use crate::orgs::now_micros;
use crate::tenant::{TenantCtx, TenantTx, with_conn};
use crate::{Store, StoreError};
use frontdesk_domain::{
    Bsuid, ChannelId, ContactId, ConversationId, E164, MediaId, MessageId, OutboxId, UserId,
};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use time::OffsetDateTime;

/// Who a customer is, as a payload or a send names them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CustomerIdentity {
    pub phone: Option<E164>,
    pub bsuid: Option<Bsuid>,
    pub parent_bsuid: Option<Bsuid>,
    pub username: Option<String>,
    pub name: Option<String>,
}

/// A contact as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Contact {
    pub id: ContactId,
    pub phone: Option<String>,
    pub bsuid: Option<String>,
    pub username: Option<String>,
    pub profile_name: Option<String>,
}

/// Where a message stands. Outbound messages move up this order only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    /// Inbound: stored.
    Received,
    /// Outbound: waiting in the outbox.
    Queued,
    /// The provider took it and gave it an id.
    Accepted,
    Sent,
    /// Failed after the provider took it (or instead); beats `sent`, loses to delivery.
    Failed,
    Delivered,
    Read,
}

impl MessageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Received => "received",
            MessageStatus::Queued => "queued",
            MessageStatus::Accepted => "accepted",
            MessageStatus::Sent => "sent",
            MessageStatus::Failed => "failed",
            MessageStatus::Delivered => "delivered",
            MessageStatus::Read => "read",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "received" => MessageStatus::Received,
            "queued" => MessageStatus::Queued,
            "accepted" => MessageStatus::Accepted,
            "sent" => MessageStatus::Sent,
            "failed" => MessageStatus::Failed,
            "delivered" => MessageStatus::Delivered,
            // a played voice note has been listened to: at least read
            "read" | "played" => MessageStatus::Read,
            _ => return None,
        })
    }
}

/// A message a customer sent, ready to store.
#[derive(Debug, Clone)]
pub struct InboundRecord {
    pub provider_message_id: String,
    /// The type name (`text`, `image`, `button_reply`, …).
    pub kind: String,
    /// The message as JSON (the provider's object), kept whole.
    pub content: String,
    pub preview: String,
    /// The provider id of the message this one replies to or reacts to.
    pub reply_to: Option<String>,
    pub provider_at: OffsetDateTime,
    pub media: Option<NewMedia>,
}

/// A media file named by a message, to be fetched from the provider.
#[derive(Debug, Clone)]
pub struct NewMedia {
    pub provider_media_id: String,
    pub mime_type: Option<String>,
    pub sha256: Option<String>,
    pub filename: Option<String>,
}

/// A template's state as the provider reports it.
#[derive(Debug, Clone, Copy)]
pub struct TemplateStatus<'a> {
    pub waba_id: &'a str,
    pub name: &'a str,
    pub language: &'a str,
    pub provider_template_id: Option<&'a str>,
    /// `APPROVED`, `REJECTED`, `PAUSED`, …
    pub status: &'a str,
    pub reason: Option<&'a str>,
    pub category: Option<&'a str>,
}

/// A status the provider reported for one of our messages.
#[derive(Debug, Clone)]
pub struct StatusRecord {
    pub provider_message_id: String,
    /// `sent`, `delivered`, `read`, `failed`, `played` or `deleted`.
    pub status: String,
    pub provider_at: OffsetDateTime,
    pub error_code: Option<i64>,
    pub error_title: Option<String>,
    pub pricing_category: Option<String>,
    pub pricing_model: Option<String>,
    pub billable: Option<bool>,
}

/// The result of storing an inbound message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inbound {
    New {
        conversation: ConversationId,
        message: MessageId,
        media: Option<MediaId>,
    },
    /// Seen before (a provider retry or a duplicate): nothing changed.
    Duplicate,
}

/// A message as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct MessageView {
    pub id: MessageId,
    pub conversation_id: ConversationId,
    pub channel_id: ChannelId,
    pub contact_id: ContactId,
    /// `in` or `out`.
    pub direction: String,
    pub provider_message_id: Option<String>,
    pub kind: String,
    /// The message as JSON (inbound: the provider's object; outbound: what we send).
    #[schema(value_type = Object)]
    pub content: serde_json::Value,
    pub preview: String,
    pub reply_to: Option<String>,
    pub media_id: Option<MediaId>,
    pub status: MessageStatus,
    pub error_code: Option<i64>,
    pub error_title: Option<String>,
    pub pricing_category: Option<String>,
    pub attempts: i32,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// A conversation's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ConversationView {
    pub id: ConversationId,
    pub channel_id: ChannelId,
    pub contact_id: ContactId,
    pub status: String,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_inbound_at: Option<OffsetDateTime>,
    pub last_preview: String,
    pub unread: i32,
}

/// What the outbox asks the provider to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxAction {
    Send,
    MarkRead,
    FetchMedia,
}

impl OutboxAction {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            OutboxAction::Send => "send",
            OutboxAction::MarkRead => "mark_read",
            OutboxAction::FetchMedia => "fetch_media",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        Ok(match s {
            "send" => OutboxAction::Send,
            "mark_read" => OutboxAction::MarkRead,
            "fetch_media" => OutboxAction::FetchMedia,
            _ => return Err(StoreError::Corrupt(format!("outbox action {s:?}"))),
        })
    }
}

/// A claimed outbox row: the dispatcher holds its lease until it finishes, retries or
/// releases it.
#[derive(Debug, Clone)]
pub struct OutboxJob {
    pub ctx: TenantCtx,
    pub id: OutboxId,
    pub channel: ChannelId,
    /// The message (send, mark_read) or the media (fetch_media).
    pub target: uuid::Uuid,
    pub action: OutboxAction,
    /// Attempts including this one.
    pub attempts: i32,
}

/// What the dispatcher needs to send a message.
#[derive(Debug, Clone)]
pub struct OutboundRow {
    pub message: MessageId,
    pub phone: Option<String>,
    pub bsuid: Option<String>,
    pub content: String,
    pub reply_to: Option<String>,
    pub status: MessageStatus,
    /// For mark_read: the inbound message's provider id.
    pub provider_message_id: Option<String>,
}

/// What the media fetcher needs.
#[derive(Debug, Clone)]
pub struct MediaRow {
    pub id: MediaId,
    pub channel: ChannelId,
    pub filename: Option<String>,
    pub provider_media_id: Option<String>,
    /// When the provider's id was obtained by uploading our copy (an uploaded file's).
    pub provider_uploaded_at: Option<OffsetDateTime>,
    pub mime_type: Option<String>,
    pub expected_sha256: Option<String>,
    pub blob_sha256: Option<String>,
    pub size_bytes: Option<i64>,
    pub status: String,
}

/// A file an agent uploaded, already in the blob store.
#[derive(Debug, Clone)]
pub struct UploadedFile {
    pub blob_sha256: String,
    pub size_bytes: i64,
    pub mime_type: String,
    pub filename: Option<String>,
}

/// A queued send.
#[derive(Debug, Clone)]
pub struct NewOutbound {
    pub channel: ChannelId,
    pub contact: ContactId,
    pub kind: String,
    pub content: String,
    pub preview: String,
    pub reply_to: Option<String>,
    /// Free-form messages need the customer-service window open; templates do not.
    pub needs_window: bool,
    pub author: Option<UserId>,
}

/// The customer-service window: free-form messages may go out this long after the
/// customer's last message.
pub const SERVICE_WINDOW: time::Duration = time::Duration::hours(24);

/// Whether the customer-service window is open at `now`.
pub fn window_open(last_inbound_at: Option<OffsetDateTime>, now: OffsetDateTime) -> bool {
    last_inbound_at.is_some_and(|t| now - t < SERVICE_WINDOW)
}

fn trunc(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

type ContactRow = (
    uuid::Uuid,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

fn contact(r: ContactRow) -> Contact {
    Contact {
        id: ContactId::from_uuid(r.0),
        phone: r.1,
        bsuid: r.2,
        username: r.3,
        profile_name: r.4,
    }
}

#[derive(sqlx::FromRow)]
struct MessageRow {
    id: uuid::Uuid,
    conversation_id: uuid::Uuid,
    channel_id: uuid::Uuid,
    contact_id: uuid::Uuid,
    direction: String,
    provider_message_id: Option<String>,
    kind: String,
    content: String,
    preview: String,
    reply_to: Option<String>,
    media_id: Option<uuid::Uuid>,
    status: String,
    error_code: Option<i64>,
    error_title: Option<String>,
    pricing_category: Option<String>,
    attempts: i32,
    created_at: OffsetDateTime,
}

macro_rules! message_cols {
    () => {
        "id, conversation_id, channel_id, contact_id, direction, provider_message_id, kind, content, preview, reply_to, media_id, status, error_code, error_title, pricing_category, attempts, created_at"
    };
}

fn message_view(r: MessageRow) -> Result<MessageView, StoreError> {
    Ok(MessageView {
        id: MessageId::from_uuid(r.id),
        conversation_id: ConversationId::from_uuid(r.conversation_id),
        channel_id: ChannelId::from_uuid(r.channel_id),
        contact_id: ContactId::from_uuid(r.contact_id),
        direction: r.direction,
        provider_message_id: r.provider_message_id,
        kind: r.kind,
        content: serde_json::from_str(&r.content)
            .map_err(|_| StoreError::Corrupt("message content is not JSON".into()))?,
        preview: r.preview,
        reply_to: r.reply_to,
        media_id: r.media_id.map(MediaId::from_uuid),
        status: MessageStatus::parse(&r.status)
            .ok_or_else(|| StoreError::Corrupt(format!("message status {:?}", r.status)))?,
        error_code: r.error_code,
        error_title: r.error_title,
        pricing_category: r.pricing_category,
        attempts: r.attempts,
        created_at: r.created_at,
    })
}

impl TenantTx {
    async fn contact_where_phone(&mut self, phone: &str) -> Result<Option<Contact>, StoreError> {
        let org = self.ctx().org_id().as_uuid();
        let r: Option<ContactRow> = with_conn!(self.tx, c => {
            sqlx::query_as("SELECT id, phone, bsuid, username, profile_name FROM contacts WHERE org_id = $1 AND phone = $2")
                .bind(org).bind(phone).fetch_optional(c).await?
        });
        Ok(r.map(contact))
    }

    async fn contact_where_bsuid(&mut self, bsuid: &str) -> Result<Option<Contact>, StoreError> {
        let org = self.ctx().org_id().as_uuid();
        let r: Option<ContactRow> = with_conn!(self.tx, c => {
            sqlx::query_as("SELECT id, phone, bsuid, username, profile_name FROM contacts WHERE org_id = $1 AND bsuid = $2")
                .bind(org).bind(bsuid).fetch_optional(c).await?
        });
        Ok(r.map(contact))
    }

    /// One contact of the organisation.
    pub async fn contact(&mut self, id: ContactId) -> Result<Contact, StoreError> {
        let org = self.ctx().org_id().as_uuid();
        let r: Option<ContactRow> = with_conn!(self.tx, c => {
            sqlx::query_as("SELECT id, phone, bsuid, username, profile_name FROM contacts WHERE org_id = $1 AND id = $2")
                .bind(org).bind(id.as_uuid()).fetch_optional(c).await?
        });
        r.map(contact).ok_or(StoreError::NotFound)
    }

    pub async fn upsert_contact(
        &mut self,
        who: &CustomerIdentity,
    ) -> Result<ContactId, StoreError> {
        // Another transaction may create the same contact at the same moment: its insert
        // wins, ours does nothing and finds it on the next round.
        for _ in 0..3 {
            if let Some(id) = self.upsert_contact_once(who).await? {
                return Ok(id);
            }
        }
        Err(StoreError::Conflict("contact_contended"))
    }

    /// The contact a phone number or user id names, without creating one.
    pub async fn find_contact(
        &mut self,
        who: &CustomerIdentity,
    ) -> Result<Option<ContactId>, StoreError> {
        if let Some(b) = &who.bsuid
            && let Some(c) = self.contact_where_bsuid(b.as_str()).await?
        {
            return Ok(Some(c.id));
        }
        Ok(match &who.phone {
            Some(p) => self.contact_where_phone(p.as_str()).await?.map(|c| c.id),
            None => None,
        })
    }

    /// Finds or creates the contact a payload names, keyed by BSUID when it has one and by
    /// phone otherwise; when the payload links a BSUID-only contact and a phone-only one,
    /// they become one contact (the older keeps its id). Profile details are refreshed.
    async fn upsert_contact_once(
        &mut self,
        who: &CustomerIdentity,
    ) -> Result<Option<ContactId>, StoreError> {
        let phone = who.phone.as_ref().map(|p| p.as_str().to_owned());
        let bsuid = who.bsuid.as_ref().map(|b| b.as_str().to_owned());
        if phone.is_none() && bsuid.is_none() {
            return Err(StoreError::Invalid(
                "a customer needs a phone number or a user id".into(),
            ));
        }
        let by_bsuid = match &bsuid {
            Some(b) => self.contact_where_bsuid(b).await?,
            None => None,
        };
        let by_phone = match &phone {
            Some(p) => self.contact_where_phone(p).await?,
            None => None,
        };
        let org = self.ctx().org_id().as_uuid();
        let now = now_micros();
        let id = match (by_bsuid, by_phone) {
            (None, None) => {
                let id = ContactId::new();
                let n = with_conn!(self.tx, c => {
                    sqlx::query("INSERT INTO contacts (org_id, id, phone, bsuid, parent_bsuid, username, profile_name, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) ON CONFLICT DO NOTHING")
                        .bind(org).bind(id.as_uuid()).bind(&phone).bind(&bsuid)
                        .bind(who.parent_bsuid.as_ref().map(|b| b.as_str()))
                        .bind(who.username.as_deref().map(|u| trunc(u, 100)))
                        .bind(who.name.as_deref().map(|n| trunc(n, 200)))
                        .bind(now).execute(c).await?.rows_affected()
                });
                return Ok((n == 1).then_some(id));
            }
            (Some(a), None) => {
                // Known by user id; a phone number it now shows is its own.
                if a.phone.is_none() {
                    self.set_contact_phone(a.id, phone.as_deref()).await?;
                }
                a.id
            }
            (None, Some(p)) => match (&p.bsuid, &bsuid) {
                (None, Some(b)) => {
                    self.set_contact_bsuid(p.id, b).await?;
                    p.id
                }
                (Some(old), Some(new)) if old != new => {
                    // The number now belongs to someone else (numbers get reassigned): it
                    // moves to a new contact for this user id; the old one keeps its history.
                    self.set_contact_phone(p.id, None).await?;
                    let id = ContactId::new();
                    with_conn!(self.tx, c => {
                        sqlx::query("INSERT INTO contacts (org_id, id, phone, bsuid, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)")
                            .bind(org).bind(id.as_uuid()).bind(&phone).bind(&bsuid).bind(now).execute(c).await?;
                    });
                    id
                }
                _ => p.id,
            },
            (Some(a), Some(p)) if a.id == p.id => a.id,
            (Some(a), Some(p)) => self.merge_contacts(a, p).await?,
        };
        with_conn!(self.tx, c => {
            sqlx::query("UPDATE contacts SET profile_name = coalesce($3, profile_name), username = coalesce($4, username), parent_bsuid = coalesce($5, parent_bsuid), updated_at = $6 WHERE org_id = $1 AND id = $2")
                .bind(org).bind(id.as_uuid())
                .bind(who.name.as_deref().map(|n| trunc(n, 200)))
                .bind(who.username.as_deref().map(|u| trunc(u, 100)))
                .bind(who.parent_bsuid.as_ref().map(|b| b.as_str()))
                .bind(now).execute(c).await?;
        });
        Ok(Some(id))
    }

    async fn set_contact_phone(
        &mut self,
        id: ContactId,
        phone: Option<&str>,
    ) -> Result<(), StoreError> {
        let org = self.ctx().org_id().as_uuid();
        with_conn!(self.tx, c => {
            sqlx::query("UPDATE contacts SET phone = $3 WHERE org_id = $1 AND id = $2").bind(org).bind(id.as_uuid()).bind(phone).execute(c).await?;
        });
        Ok(())
    }

    async fn set_contact_bsuid(&mut self, id: ContactId, bsuid: &str) -> Result<(), StoreError> {
        let org = self.ctx().org_id().as_uuid();
        with_conn!(self.tx, c => {
            sqlx::query("UPDATE contacts SET bsuid = $3 WHERE org_id = $1 AND id = $2").bind(org).bind(id.as_uuid()).bind(bsuid).execute(c).await?;
        });
        Ok(())
    }

    /// Makes two contacts one: the older keeps its id and takes the other's identifiers,
    /// conversations and messages (a conversation on the same number is folded in).
    async fn merge_contacts(&mut self, a: Contact, b: Contact) -> Result<ContactId, StoreError> {
        let org = self.ctx().org_id().as_uuid();
        let created: Vec<(uuid::Uuid, OffsetDateTime)> = with_conn!(self.tx, c => {
            sqlx::query_as("SELECT id, created_at FROM contacts WHERE org_id = $1 AND id IN ($2, $3)")
                .bind(org).bind(a.id.as_uuid()).bind(b.id.as_uuid()).fetch_all(c).await?
        });
        let a_first = created
            .iter()
            .find(|(id, _)| *id == a.id.as_uuid())
            .map(|x| x.1)
            <= created
                .iter()
                .find(|(id, _)| *id == b.id.as_uuid())
                .map(|x| x.1);
        let (keep, gone) = if a_first { (a, b) } else { (b, a) };
        let convs: Vec<(uuid::Uuid, uuid::Uuid)> = with_conn!(self.tx, c => {
            sqlx::query_as("SELECT id, channel_id FROM conversations WHERE org_id = $1 AND contact_id = $2")
                .bind(org).bind(gone.id.as_uuid()).fetch_all(c).await?
        });
        for (conv, channel) in convs {
            let existing: Option<uuid::Uuid> = with_conn!(self.tx, c => {
                sqlx::query_scalar("SELECT id FROM conversations WHERE org_id = $1 AND contact_id = $2 AND channel_id = $3")
                    .bind(org).bind(keep.id.as_uuid()).bind(channel).fetch_optional(c).await?
            });
            with_conn!(self.tx, c => {
                match existing {
                    Some(target) => {
                        sqlx::query("UPDATE messages SET conversation_id = $3, contact_id = $4 WHERE org_id = $1 AND conversation_id = $2")
                            .bind(org).bind(conv).bind(target).bind(keep.id.as_uuid()).execute(&mut *c).await?;
                        sqlx::query("UPDATE conversations SET unread = unread + (SELECT unread FROM conversations WHERE org_id = $1 AND id = $2), last_inbound_at = CASE WHEN last_inbound_at IS NULL OR last_inbound_at < (SELECT last_inbound_at FROM conversations WHERE org_id = $1 AND id = $2) THEN (SELECT last_inbound_at FROM conversations WHERE org_id = $1 AND id = $2) ELSE last_inbound_at END WHERE org_id = $1 AND id = $3")
                            .bind(org).bind(conv).bind(target).execute(&mut *c).await?;
                        sqlx::query("DELETE FROM conversations WHERE org_id = $1 AND id = $2").bind(org).bind(conv).execute(&mut *c).await?;
                    }
                    None => {
                        sqlx::query("UPDATE conversations SET contact_id = $3 WHERE org_id = $1 AND id = $2").bind(org).bind(conv).bind(keep.id.as_uuid()).execute(&mut *c).await?;
                        sqlx::query("UPDATE messages SET contact_id = $3 WHERE org_id = $1 AND conversation_id = $2").bind(org).bind(conv).bind(keep.id.as_uuid()).execute(&mut *c).await?;
                    }
                }
            });
        }
        // Queue tokens follow the kept contact; where both hold a live token in one queue,
        // the merged-away one is cancelled first (one live token per patient and queue).
        with_conn!(self.tx, c => {
            sqlx::query("UPDATE queue_tokens SET state = 'cancelled', ended_at = $4 WHERE org_id = $1 AND contact_id = $2 AND state IN ('waiting', 'called', 'serving') AND queue_id IN (SELECT queue_id FROM queue_tokens WHERE org_id = $1 AND contact_id = $3 AND state IN ('waiting', 'called', 'serving'))")
                .bind(org).bind(gone.id.as_uuid()).bind(keep.id.as_uuid()).bind(now_micros()).execute(&mut *c).await?;
            sqlx::query("UPDATE queue_tokens SET contact_id = $3 WHERE org_id = $1 AND contact_id = $2")
                .bind(org).bind(gone.id.as_uuid()).bind(keep.id.as_uuid()).execute(&mut *c).await?;
        });
        // Consent (an opt-out above all), tags and field values survive the merge.
        self.carry_audience(gone.id, keep.id).await?;
        // An erasure request of either is honoured on the merged contact.
        self.carry_erasure_requests(gone.id, keep.id).await?;
        with_conn!(self.tx, c => {
            sqlx::query("DELETE FROM contacts WHERE org_id = $1 AND id = $2").bind(org).bind(gone.id.as_uuid()).execute(&mut *c).await?;
            sqlx::query("UPDATE contacts SET phone = coalesce(phone, $3), bsuid = coalesce(bsuid, $4), username = coalesce(username, $5), profile_name = coalesce(profile_name, $6) WHERE org_id = $1 AND id = $2")
                .bind(org).bind(keep.id.as_uuid()).bind(&gone.phone).bind(&gone.bsuid).bind(&gone.username).bind(&gone.profile_name)
                .execute(&mut *c).await?;
        });
        self.audit(AuditRecord::new(
            "contact.merged",
            "contact",
            keep.id.to_string(),
            serde_json::json!({ "merged": gone.id.to_string() }),
        ))
        .await?;
        Ok(keep.id)
    }

    /// The conversation of a contact on a number, created (open) when there is none.
    pub async fn conversation_for(
        &mut self,
        channel: ChannelId,
        contact: ContactId,
        at: OffsetDateTime,
    ) -> Result<ConversationId, StoreError> {
        let org = self.ctx().org_id().as_uuid();
        let found: Option<uuid::Uuid> = with_conn!(self.tx, c => {
            sqlx::query_scalar("SELECT id FROM conversations WHERE org_id = $1 AND channel_id = $2 AND contact_id = $3")
                .bind(org).bind(channel.as_uuid()).bind(contact.as_uuid()).fetch_optional(c).await?
        });
        if let Some(id) = found {
            return Ok(ConversationId::from_uuid(id));
        }
        let id = ConversationId::new();
        with_conn!(self.tx, c => {
            sqlx::query("INSERT INTO conversations (org_id, id, channel_id, contact_id, status, last_message_at, created_at, updated_at) VALUES ($1, $2, $3, $4, 'open', $5, $6, $6) ON CONFLICT (org_id, channel_id, contact_id) DO NOTHING")
                .bind(org).bind(id.as_uuid()).bind(channel.as_uuid()).bind(contact.as_uuid()).bind(at).bind(now_micros()).execute(c).await?;
        });
        let id: uuid::Uuid = with_conn!(self.tx, c => {
            sqlx::query_scalar("SELECT id FROM conversations WHERE org_id = $1 AND channel_id = $2 AND contact_id = $3")
                .bind(org).bind(channel.as_uuid()).bind(contact.as_uuid()).fetch_one(c).await?
        });
        Ok(ConversationId::from_uuid(id))
    }

    /// Stores a customer's message once: the conversation is opened (or reopened), its
    /// window moves to the message's time, and media is queued for download.
    pub async fn record_inbound(
        &mut self,
        channel: ChannelId,
        contact: ContactId,
        m: &InboundRecord,
    ) -> Result<Inbound, StoreError> {
        let org = self.ctx().org_id().as_uuid();
        let seen: Option<uuid::Uuid> = with_conn!(self.tx, c => {
            sqlx::query_scalar("SELECT id FROM messages WHERE org_id = $1 AND channel_id = $2 AND provider_message_id = $3")
                .bind(org).bind(channel.as_uuid()).bind(&m.provider_message_id).fetch_optional(c).await?
        });
        if seen.is_some() {
            return Ok(Inbound::Duplicate);
        }
        let conversation = self
            .conversation_for(channel, contact, m.provider_at)
            .await?;
        let now = now_micros();
        let media = match &m.media {
            Some(media) => Some(self.queue_media_fetch(channel, media).await?),
            None => None,
        };
        let id = MessageId::new();
        let preview = trunc(&m.preview, 300);
        let inserted = with_conn!(self.tx, c => {
            sqlx::query("INSERT INTO messages (org_id, id, conversation_id, channel_id, contact_id, direction, provider_message_id, kind, content, preview, reply_to, media_id, status, provider_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, 'in', $6, $7, $8, $9, $10, $11, 'received', $12, $13, $13) ON CONFLICT (org_id, channel_id, provider_message_id) WHERE provider_message_id IS NOT NULL DO NOTHING")
                .bind(org).bind(id.as_uuid()).bind(conversation.as_uuid()).bind(channel.as_uuid()).bind(contact.as_uuid())
                .bind(&m.provider_message_id).bind(trunc(&m.kind, 40)).bind(&m.content).bind(&preview).bind(&m.reply_to)
                .bind(media.map(|x| x.as_uuid())).bind(m.provider_at).bind(now)
                .execute(c).await?.rows_affected()
        });
        if inserted == 0 {
            return Ok(Inbound::Duplicate);
        }
        // Reactions do not reopen a conversation nor count as unread, but they do open the window.
        let counts = m.kind != "reaction";
        with_conn!(self.tx, c => {
            sqlx::query("UPDATE conversations SET status = CASE WHEN $7 THEN 'open' ELSE status END, snoozed_until = CASE WHEN $7 THEN NULL ELSE snoozed_until END, last_message_at = CASE WHEN last_message_at < $3 THEN $3 ELSE last_message_at END, last_inbound_at = CASE WHEN last_inbound_at IS NULL OR last_inbound_at < $3 THEN $3 ELSE last_inbound_at END, last_preview = CASE WHEN $7 THEN $4 ELSE last_preview END, unread = unread + $5, inbound_count = inbound_count + $5, updated_at = $6 WHERE org_id = $1 AND id = $2")
                .bind(org).bind(conversation.as_uuid()).bind(m.provider_at).bind(&preview).bind(i32::from(counts)).bind(now).bind(counts)
                .execute(c).await?;
        });
        self.emit_message(crate::events::EventKind::MessageNew, id)
            .await?;
        if counts {
            // A customer writing to an unassigned conversation of a round-robin inbox.
            self.auto_assign(conversation, now).await?;
        }
        Ok(Inbound::New {
            conversation,
            message: id,
            media,
        })
    }

    async fn queue_media_fetch(
        &mut self,
        channel: ChannelId,
        m: &NewMedia,
    ) -> Result<MediaId, StoreError> {
        let org = self.ctx().org_id().as_uuid();
        let id = MediaId::new();
        let now = now_micros();
        with_conn!(self.tx, c => {
            sqlx::query("INSERT INTO media (org_id, id, channel_id, provider_media_id, mime_type, filename, expected_sha256, status, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8)")
                .bind(org).bind(id.as_uuid()).bind(channel.as_uuid()).bind(trunc(&m.provider_media_id, 200))
                .bind(m.mime_type.as_deref().map(|s| trunc(s, 200))).bind(m.filename.as_deref().map(|s| trunc(s, 255)))
                .bind(m.sha256.as_deref().map(|s| trunc(s, 100))).bind(now)
                .execute(c).await?;
        });
        self.insert_outbox(channel, id.as_uuid(), OutboxAction::FetchMedia, now)
            .await?;
        Ok(id)
    }

    pub(crate) async fn insert_outbox(
        &mut self,
        channel: ChannelId,
        target: uuid::Uuid,
        action: OutboxAction,
        at: OffsetDateTime,
    ) -> Result<OutboxId, StoreError> {
        let org = self.ctx().org_id().as_uuid();
        let id = OutboxId::new();
        with_conn!(self.tx, c => {
            sqlx::query("INSERT INTO outbox (id, org_id, channel_id, target_id, action, next_attempt_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $6)")
                .bind(id.as_uuid()).bind(org).bind(channel.as_uuid()).bind(target).bind(action.as_str()).bind(at)
                .execute(c).await?;
        });
        self.queued_outbox_work();
        Ok(id)
    }

    /// Records a status the provider reported (once), and moves the message forward if the
    /// history now ranks higher than where it stands. Returns the message's status when the
    /// message is known (statuses for messages not yet known wait in the history).
    pub async fn apply_status(
        &mut self,
        channel: ChannelId,
        s: &StatusRecord,
    ) -> Result<Option<MessageStatus>, StoreError> {
        let org = self.ctx().org_id().as_uuid();
        let status = match s.status.as_str() {
            st @ ("sent" | "delivered" | "read" | "failed" | "played" | "deleted") => st,
            other => {
                return Err(StoreError::Invalid(format!(
                    "unknown status {:?}",
                    trunc(other, 40)
                )));
            }
        };
        with_conn!(self.tx, c => {
            sqlx::query("INSERT INTO message_statuses (org_id, channel_id, provider_message_id, status, provider_at, error_code, error_title, pricing_category, pricing_model, billable, received_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (org_id, channel_id, provider_message_id, status) DO NOTHING")
                .bind(org).bind(channel.as_uuid()).bind(trunc(&s.provider_message_id, 200)).bind(status).bind(s.provider_at)
                .bind(s.error_code).bind(s.error_title.as_deref().map(|t| trunc(t, 500)))
                .bind(s.pricing_category.as_deref().map(|t| trunc(t, 60))).bind(s.pricing_model.as_deref().map(|t| trunc(t, 60))).bind(s.billable)
                .bind(now_micros()).execute(c).await?;
        });
        self.settle_status(channel, &s.provider_message_id).await
    }

    /// The outbound message the provider knows by this id on this channel: its id and status.
    async fn sent_message(
        &mut self,
        channel: ChannelId,
        provider_message_id: &str,
    ) -> Result<Option<(uuid::Uuid, String)>, StoreError> {
        let org = self.ctx().org_id().as_uuid();
        // The direction is checked here, not in SQL: with it, PostgreSQL may pick the
        // outbound-by-time index and scan a number's every send when its statistics are
        // older than the number's traffic (the provider id's unique index is the only one
        // left without it).
        let row: Option<(uuid::Uuid, String, String)> = with_conn!(self.tx, c => {
            sqlx::query_as("SELECT id, status, direction FROM messages WHERE org_id = $1 AND channel_id = $2 AND provider_message_id = $3")
                .bind(org).bind(channel.as_uuid()).bind(provider_message_id).fetch_optional(c).await?
        });
        Ok(row
            .filter(|r| r.2 == "out")
            .map(|(id, status, _)| (id, status)))
    }

    /// Derives an outbound message's status from its recorded history.
    async fn settle_status(
        &mut self,
        channel: ChannelId,
        provider_message_id: &str,
    ) -> Result<Option<MessageStatus>, StoreError> {
        Ok(self.settle_seen(channel, provider_message_id).await?.0)
    }

    /// [`Self::settle_status`], also answering how many statuses of the message it saw.
    /// A status whose message is not found is looked at again after the commit: its send
    /// may be being recorded by a transaction this one cannot see (see [`Recheck`]).
    async fn settle_seen(
        &mut self,
        channel: ChannelId,
        provider_message_id: &str,
    ) -> Result<(Option<MessageStatus>, usize), StoreError> {
        let org = self.ctx().org_id().as_uuid();
        let Some((message, current)) = self.sent_message(channel, provider_message_id).await?
        else {
            self.recheck_after_commit(Recheck::Status {
                channel,
                provider_message_id: provider_message_id.to_owned(),
            });
            return Ok((None, 0));
        };
        type HistoryRow = (
            String,
            Option<i64>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<bool>,
        );
        let history: Vec<HistoryRow> = with_conn!(self.tx, c => {
            sqlx::query_as("SELECT status, error_code, error_title, pricing_category, pricing_model, billable FROM message_statuses WHERE org_id = $1 AND channel_id = $2 AND provider_message_id = $3 ORDER BY provider_at")
                .bind(org).bind(channel.as_uuid()).bind(provider_message_id).fetch_all(c).await?
        });
        let current = MessageStatus::parse(&current)
            .ok_or_else(|| StoreError::Corrupt(format!("message status {current:?}")))?;
        let best = history
            .iter()
            .filter_map(|h| MessageStatus::parse(&h.0))
            .fold(current, Ord::max);
        let failure = history.iter().find(|h| h.0 == "failed");
        let pricing = history.iter().rev().find(|h| h.3.is_some());
        with_conn!(self.tx, c => {
            sqlx::query("UPDATE messages SET status = $3, error_code = coalesce($4, error_code), error_title = coalesce($5, error_title), pricing_category = coalesce($6, pricing_category), pricing_model = coalesce($7, pricing_model), billable = coalesce($8, billable), updated_at = $9 WHERE org_id = $1 AND id = $2")
                .bind(org).bind(message).bind(best.as_str())
                .bind(failure.and_then(|f| f.1)).bind(failure.and_then(|f| f.2.clone()))
                .bind(pricing.and_then(|p| p.3.clone())).bind(pricing.and_then(|p| p.4.clone())).bind(pricing.and_then(|p| p.5))
                .bind(now_micros()).execute(c).await?;
        });
        if best != current {
            self.emit_message(
                crate::events::EventKind::MessageStatus,
                MessageId::from_uuid(message),
            )
            .await?;
        }
        Ok((Some(best), history.len()))
    }

    /// Records what the provider says about a template (from its status webhook).
    pub async fn set_template_status(&mut self, t: &TemplateStatus<'_>) -> Result<(), StoreError> {
        let org = self.ctx().org_id().as_uuid();
        let now = now_micros();
        with_conn!(self.tx, c => {
            sqlx::query("INSERT INTO templates (org_id, id, waba_id, name, language, category, provider_template_id, status, reason, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                         ON CONFLICT (org_id, waba_id, name, language) DO UPDATE SET status = excluded.status, reason = excluded.reason, category = coalesce(excluded.category, templates.category), provider_template_id = coalesce(excluded.provider_template_id, templates.provider_template_id), updated_at = excluded.updated_at")
                .bind(org).bind(uuid::Uuid::now_v7()).bind(trunc(t.waba_id, 64)).bind(trunc(t.name, 512)).bind(trunc(t.language, 20))
                .bind(t.category.map(|s| trunc(s, 40))).bind(t.provider_template_id.map(|s| trunc(s, 64))).bind(trunc(t.status, 40)).bind(t.reason.map(|s| trunc(s, 500))).bind(now)
                .execute(c).await?;
        });
        Ok(())
    }

    /// The approved templates of a business account, as (name, language), by name.
    pub async fn approved_templates(
        &mut self,
        waba_id: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let org = self.ctx().org_id().as_uuid();
        Ok(with_conn!(self.tx, c => {
            sqlx::query_as("SELECT name, language FROM templates WHERE org_id = $1 AND waba_id = $2 AND status = 'APPROVED' ORDER BY name, language LIMIT 500")
                .bind(org).bind(waba_id).fetch_all(c).await?
        }))
    }

    /// A template's provider status (`APPROVED`, `REJECTED`, …), if known.
    pub async fn template_status(
        &mut self,
        waba_id: &str,
        name: &str,
        language: &str,
    ) -> Result<Option<String>, StoreError> {
        let org = self.ctx().org_id().as_uuid();
        Ok(with_conn!(self.tx, c => {
            sqlx::query_scalar("SELECT status FROM templates WHERE org_id = $1 AND waba_id = $2 AND name = $3 AND language = $4")
                .bind(org).bind(waba_id).bind(name).bind(language).fetch_optional(c).await?
        }))
    }

    /// The conversation of a contact on a number, if any.
    pub async fn find_conversation(
        &mut self,
        channel: ChannelId,
        contact: ContactId,
    ) -> Result<Option<ConversationView>, StoreError> {
        let org = self.ctx().org_id().as_uuid();
        type Row = (
            uuid::Uuid,
            uuid::Uuid,
            uuid::Uuid,
            String,
            Option<OffsetDateTime>,
            String,
            i32,
        );
        let r: Option<Row> = with_conn!(self.tx, c => {
            sqlx::query_as("SELECT id, channel_id, contact_id, status, last_inbound_at, last_preview, unread FROM conversations WHERE org_id = $1 AND channel_id = $2 AND contact_id = $3")
                .bind(org).bind(channel.as_uuid()).bind(contact.as_uuid()).fetch_optional(c).await?
        });
        Ok(r.map(|r| ConversationView {
            id: ConversationId::from_uuid(r.0),
            channel_id: ChannelId::from_uuid(r.1),
            contact_id: ContactId::from_uuid(r.2),
            status: r.3,
            last_inbound_at: r.4,
            last_preview: r.5,
            unread: r.6,
        }))
    }

    /// Queues a message: the message row and its outbox row in this one transaction.
    /// A free-form message outside the customer-service window is refused before anything
    /// is stored (`outside_service_window`).
    pub async fn queue_message(
        &mut self,
        m: &NewOutbound,
        now: OffsetDateTime,
    ) -> Result<MessageView, StoreError> {
        let org = self.ctx().org_id().as_uuid();
        self.contact(m.contact).await?;
        let existing = self.find_conversation(m.channel, m.contact).await?;
        if m.needs_window && !window_open(existing.as_ref().and_then(|c| c.last_inbound_at), now) {
            return Err(StoreError::Conflict("outside_service_window"));
        }
        let conversation = match existing {
            Some(c) => c.id,
            None => self.conversation_for(m.channel, m.contact, now).await?,
        };
        let id = MessageId::new();
        let preview = trunc(&m.preview, 300);
        let stamp = now_micros();
        with_conn!(self.tx, c => {
            sqlx::query("INSERT INTO messages (org_id, id, conversation_id, channel_id, contact_id, direction, kind, content, preview, reply_to, status, author_id, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, 'out', $6, $7, $8, $9, 'queued', $10, $11, $11)")
                .bind(org).bind(id.as_uuid()).bind(conversation.as_uuid()).bind(m.channel.as_uuid()).bind(m.contact.as_uuid())
                .bind(trunc(&m.kind, 40)).bind(&m.content).bind(&preview).bind(&m.reply_to).bind(m.author.map(|u| u.as_uuid())).bind(stamp)
                .execute(&mut *c).await?;
            sqlx::query("UPDATE conversations SET last_message_at = $3, last_preview = $4, updated_at = $3 WHERE org_id = $1 AND id = $2")
                .bind(org).bind(conversation.as_uuid()).bind(stamp).bind(&preview).execute(&mut *c).await?;
        });
        self.insert_outbox(m.channel, id.as_uuid(), OutboxAction::Send, now)
            .await?;
        self.emit_message(crate::events::EventKind::MessageNew, id)
            .await?;
        self.message(id).await
    }

    /// Queues a message event: the message as the inbox shows it (no phone numbers beyond
    /// the provider's JSON, which subscribers mask by role).
    pub(crate) async fn emit_message(
        &mut self,
        kind: crate::events::EventKind,
        id: MessageId,
    ) -> Result<(), StoreError> {
        let m = self.message(id).await?;
        let data = match kind {
            crate::events::EventKind::MessageNew => serde_json::json!({
                "conversation_id": m.conversation_id,
                "message": m,
            }),
            _ => serde_json::json!({
                "conversation_id": m.conversation_id,
                "message_id": m.id,
                "status": m.status,
                "error_code": m.error_code,
                "error_title": m.error_title,
            }),
        };
        self.emit_conversation(kind, m.conversation_id, data).await
    }

    /// Queues a read receipt for an inbound message (blue ticks on the customer's phone).
    pub async fn queue_mark_read(&mut self, message: MessageId) -> Result<(), StoreError> {
        let m = self.message(message).await?;
        if m.direction != "in" {
            return Err(StoreError::Invalid(
                "only a customer's message can be marked read".into(),
            ));
        }
        let org = self.ctx().org_id().as_uuid();
        with_conn!(self.tx, c => {
            sqlx::query("UPDATE conversations SET unread = 0 WHERE org_id = $1 AND id = $2").bind(org).bind(m.conversation_id.as_uuid()).execute(c).await?;
        });
        self.insert_outbox(
            m.channel_id,
            message.as_uuid(),
            OutboxAction::MarkRead,
            now_micros(),
        )
        .await?;
        Ok(())
    }

    /// One message of the organisation.
    pub async fn message(&mut self, id: MessageId) -> Result<MessageView, StoreError> {
        let org = self.ctx().org_id().as_uuid();
        let r: Option<MessageRow> = with_conn!(self.tx, c => {
            sqlx::query_as(concat!("SELECT ", message_cols!(), " FROM messages WHERE org_id = $1 AND id = $2"))
                .bind(org).bind(id.as_uuid()).fetch_optional(c).await?
        });
        message_view(r.ok_or(StoreError::NotFound)?)
    }

    /// A conversation's messages, oldest first.
    pub async fn conversation_messages(
        &mut self,
        conversation: ConversationId,
        limit: i64,
    ) -> Result<Vec<MessageView>, StoreError> {
        let org = self.ctx().org_id().as_uuid();
        let rows: Vec<MessageRow> = with_conn!(self.tx, c => {
            sqlx::query_as(concat!("SELECT ", message_cols!(), " FROM messages WHERE org_id = $1 AND conversation_id = $2 ORDER BY created_at, id LIMIT $3"))
                .bind(org).bind(conversation.as_uuid()).bind(limit.clamp(1, 1000)).fetch_all(c).await?
        });
        rows.into_iter().map(message_view).collect()
    }

    /// The message a job sends (or marks read), with its recipient.
    pub async fn outbound_row(&mut self, message: MessageId) -> Result<OutboundRow, StoreError> {
        let org = self.ctx().org_id().as_uuid();
        type Row = (
            String,
            Option<String>,
            Option<String>,
            Option<String>,
            String,
            Option<String>,
        );
        let r: Option<Row> = with_conn!(self.tx, c => {
            sqlx::query_as("SELECT m.status, c.phone, c.bsuid, m.reply_to, m.content, m.provider_message_id FROM messages m JOIN contacts c ON c.org_id = m.org_id AND c.id = m.contact_id WHERE m.org_id = $1 AND m.id = $2")
                .bind(org).bind(message.as_uuid()).fetch_optional(c).await?
        });
        let r = r.ok_or(StoreError::NotFound)?;
        Ok(OutboundRow {
            message,
            status: MessageStatus::parse(&r.0)
                .ok_or_else(|| StoreError::Corrupt(format!("message status {:?}", r.0)))?,
            phone: r.1,
            bsuid: r.2,
            reply_to: r.3,
            content: r.4,
            provider_message_id: r.5,
        })
    }

    /// The provider took the message: record its id, apply statuses that came first, and
    /// drop the outbox row.
    pub async fn finish_send(
        &mut self,
        job: OutboxId,
        message: MessageId,
        provider_message_id: &str,
    ) -> Result<Option<MessageStatus>, StoreError> {
        let org = self.ctx().org_id().as_uuid();
        let m = self.message(message).await?;
        with_conn!(self.tx, c => {
            // Attempts as the outbox counted them (a claim that died counts too).
            let attempts: Option<i32> = sqlx::query_scalar("SELECT attempts FROM outbox WHERE id = $1 AND org_id = $2")
                .bind(job.as_uuid()).bind(org).fetch_optional(&mut *c).await?;
            sqlx::query("UPDATE messages SET provider_message_id = $3, status = CASE WHEN status = 'queued' THEN 'accepted' ELSE status END, sent_at = $4, attempts = coalesce($5, attempts + 1), error_code = NULL, error_title = NULL, updated_at = $4 WHERE org_id = $1 AND id = $2")
                .bind(org).bind(message.as_uuid()).bind(trunc(provider_message_id, 200)).bind(now_micros()).bind(attempts).execute(&mut *c).await?;
            sqlx::query("DELETE FROM outbox WHERE id = $1 AND org_id = $2").bind(job.as_uuid()).bind(org).execute(&mut *c).await?;
        });
        let (settled, seen) = self.settle_seen(m.channel_id, provider_message_id).await?;
        // Statuses that arrive while this record is uncommitted do not see it: look at
        // the history again once it is committed (see `Recheck`).
        self.recheck_after_commit(Recheck::Send {
            channel: m.channel_id,
            provider_message_id: provider_message_id.to_owned(),
            seen,
        });
        if m.status == MessageStatus::Queued && settled == Some(MessageStatus::Accepted) {
            self.emit_message(crate::events::EventKind::MessageStatus, message)
                .await?;
        }
        Ok(settled)
    }

    /// Removes a finished outbox row (a read receipt sent, a media file stored).
    pub async fn finish_job(&mut self, job: OutboxId) -> Result<(), StoreError> {
        let org = self.ctx().org_id().as_uuid();
        with_conn!(self.tx, c => {
            sqlx::query("DELETE FROM outbox WHERE id = $1 AND org_id = $2").bind(job.as_uuid()).bind(org).execute(c).await?;
        });
        Ok(())
    }

    /// A transient failure: try again at `next_at`; the message shows the last error.
    pub async fn retry_job(
        &mut self,
        job: &OutboxJob,
        next_at: OffsetDateTime,
        error: &str,
    ) -> Result<(), StoreError> {
        let org = self.ctx().org_id().as_uuid();
        with_conn!(self.tx, c => {
            sqlx::query("UPDATE outbox SET next_attempt_at = $3, lease_until = NULL WHERE id = $1 AND org_id = $2")
                .bind(job.id.as_uuid()).bind(org).bind(next_at).execute(&mut *c).await?;
            match job.action {
                OutboxAction::Send => {
                    sqlx::query("UPDATE messages SET attempts = $3, error_title = $4, updated_at = $5 WHERE org_id = $1 AND id = $2")
                        .bind(org).bind(job.target).bind(job.attempts).bind(trunc(error, 500)).bind(now_micros()).execute(&mut *c).await?;
                }
                OutboxAction::FetchMedia => {
                    sqlx::query("UPDATE media SET attempts = $3, error = $4 WHERE org_id = $1 AND id = $2")
                        .bind(org).bind(job.target).bind(job.attempts).bind(trunc(error, 500)).execute(&mut *c).await?;
                }
                // A read receipt has no row of its own to annotate.
                OutboxAction::MarkRead => {}
            }
        });
        Ok(())
    }

    /// A permanent failure: the message (or media) is failed with the provider's reason and
    /// the outbox row goes.
    pub async fn fail_job(
        &mut self,
        job: &OutboxJob,
        code: Option<i64>,
        title: &str,
    ) -> Result<(), StoreError> {
        let org = self.ctx().org_id().as_uuid();
        let now = now_micros();
        with_conn!(self.tx, c => {
            sqlx::query("DELETE FROM outbox WHERE id = $1 AND org_id = $2").bind(job.id.as_uuid()).bind(org).execute(&mut *c).await?;
            match job.action {
                OutboxAction::Send => {
                    sqlx::query("UPDATE messages SET status = 'failed', attempts = $3, error_code = $4, error_title = $5, updated_at = $6 WHERE org_id = $1 AND id = $2 AND status IN ('queued', 'accepted')")
                        .bind(org).bind(job.target).bind(job.attempts).bind(code).bind(trunc(title, 500)).bind(now).execute(&mut *c).await?;
                }
                OutboxAction::FetchMedia => {
                    sqlx::query("UPDATE media SET status = 'failed', attempts = $3, error = $4 WHERE org_id = $1 AND id = $2")
                        .bind(org).bind(job.target).bind(job.attempts).bind(trunc(title, 500)).execute(&mut *c).await?;
                }
                OutboxAction::MarkRead => {}
            }
        });
        if job.action == OutboxAction::Send {
            self.emit_message(
                crate::events::EventKind::MessageStatus,
                MessageId::from_uuid(job.target),
            )
            .await?;
        }
        Ok(())
    }

    /// The media row a fetch job names.
    pub async fn media(&mut self, id: MediaId) -> Result<MediaRow, StoreError> {
        let org = self.ctx().org_id().as_uuid();
        type Row = (
            uuid::Uuid,
            Option<String>,
            Option<String>,
            Option<OffsetDateTime>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<i64>,
            String,
        );
        let r: Option<Row> = with_conn!(self.tx, c => {
            sqlx::query_as("SELECT channel_id, filename, provider_media_id, provider_uploaded_at, mime_type, expected_sha256, blob_sha256, size_bytes, status FROM media WHERE org_id = $1 AND id = $2")
                .bind(org).bind(id.as_uuid()).fetch_optional(c).await?
        });
        let r = r.ok_or(StoreError::NotFound)?;
        Ok(MediaRow {
            id,
            channel: ChannelId::from_uuid(r.0),
            filename: r.1,
            provider_media_id: r.2,
            provider_uploaded_at: r.3,
            mime_type: r.4,
            expected_sha256: r.5,
            blob_sha256: r.6,
            size_bytes: r.7,
            status: r.8,
        })
    }

    /// Records a file an agent uploaded to send: already in the blob store, so stored.
    pub async fn insert_upload(
        &mut self,
        channel: ChannelId,
        file: &UploadedFile,
    ) -> Result<MediaId, StoreError> {
        let id = self.insert_stored_file(channel, file).await?;
        self.audit(AuditRecord::new(
            "media.uploaded",
            "media",
            id.to_string(),
            serde_json::json!({ "channel": channel.to_string(), "mime_type": file.mime_type, "size_bytes": file.size_bytes, "sha256": file.blob_sha256 }),
        ))
        .await?;
        Ok(id)
    }

    /// A media row for a file already in the blob store (the caller audits what it is for).
    pub(crate) async fn insert_stored_file(
        &mut self,
        channel: ChannelId,
        file: &UploadedFile,
    ) -> Result<MediaId, StoreError> {
        let org = self.ctx().org_id().as_uuid();
        let id = MediaId::new();
        let uploader = self.ctx().user_id().map(|u| u.as_uuid());
        with_conn!(self.tx, c => {
            sqlx::query("INSERT INTO media (org_id, id, channel_id, mime_type, filename, blob_sha256, size_bytes, status, uploaded_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 'stored', $8, $9)")
                .bind(org).bind(id.as_uuid()).bind(channel.as_uuid()).bind(trunc(&file.mime_type, 200))
                .bind(file.filename.as_deref().map(|s| trunc(s, 255))).bind(&file.blob_sha256).bind(file.size_bytes)
                .bind(uploader).bind(now_micros())
                .execute(c).await?;
        });
        Ok(id)
    }

    /// Records the provider's id for our copy of a file, uploaded at `at`.
    pub async fn media_uploaded(
        &mut self,
        id: MediaId,
        provider_media_id: &str,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let org = self.ctx().org_id().as_uuid();
        with_conn!(self.tx, c => {
            sqlx::query("UPDATE media SET provider_media_id = $3, provider_uploaded_at = $4 WHERE org_id = $1 AND id = $2")
                .bind(org).bind(id.as_uuid()).bind(trunc(provider_media_id, 200)).bind(at).execute(c).await?;
        });
        Ok(())
    }

    pub async fn media_stored(
        &mut self,
        id: MediaId,
        blob_sha256: &str,
        size: i64,
        mime_type: &str,
    ) -> Result<(), StoreError> {
        let org = self.ctx().org_id().as_uuid();
        with_conn!(self.tx, c => {
            sqlx::query("UPDATE media SET status = 'stored', blob_sha256 = $3, size_bytes = $4, mime_type = $5, error = NULL WHERE org_id = $1 AND id = $2")
                .bind(org).bind(id.as_uuid()).bind(blob_sha256).bind(size).bind(trunc(mime_type, 200)).execute(c).await?;
        });
        Ok(())
    }
}

/// The SQL of a leased claim, written once: `$update ($pick) $returning`, where PostgreSQL's
/// `$pick` skips rows other workers have locked and SQLite (one writer) needs no lock.
macro_rules! leased_claim {
    ($update:literal, $pick:literal, $returning:literal) => {
        (
            concat!(
                $update,
                " (",
                $pick,
                " FOR UPDATE SKIP LOCKED) ",
                $returning
            ),
            concat!($update, " (", $pick, ") ", $returning),
        )
    };
}
pub(crate) use leased_claim;

/// Runs a leased claim (`(postgres, sqlite)` SQL) with `$1` now, `$2` the lease's end and
/// `$3` the limit.
pub(crate) async fn claim<R>(
    g: &mut crate::tenant::GlobalTx,
    (postgres, sqlite): (&'static str, &'static str),
    (now, until, limit): (OffsetDateTime, OffsetDateTime, i64),
) -> Result<Vec<R>, StoreError>
where
    R: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
        + for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
        + Send
        + Unpin,
{
    Ok(match &mut g.tx {
        crate::tenant::Tx::Postgres(t) => {
            sqlx::query_as(postgres)
                .bind(now)
                .bind(until)
                .bind(limit)
                .fetch_all(&mut **t)
                .await?
        }
        crate::tenant::Tx::Sqlite(t) => {
            sqlx::query_as(sqlite)
                .bind(now)
                .bind(until)
                .bind(limit)
                .fetch_all(&mut **t)
                .await?
        }
    })
}

impl Store {
    /// When each of a channel's outbound messages was taken by the provider, in order, and
    /// after how many attempts (the dispatch benchmark reads its figures from them).
    pub async fn send_times(
        &self,
        ctx: &TenantCtx,
        channel: ChannelId,
    ) -> Result<Vec<(OffsetDateTime, i32)>, StoreError> {
        let mut tx = self.begin_read(ctx).await?;
        let org = ctx.org_id().as_uuid();
        let times: Vec<(OffsetDateTime, i32)> = with_conn!(tx.tx, c => {
            sqlx::query_as("SELECT sent_at, attempts FROM messages WHERE org_id = $1 AND channel_id = $2 AND direction = 'out' AND sent_at IS NOT NULL ORDER BY sent_at")
                .bind(org).bind(channel.as_uuid()).fetch_all(c).await?
        });
        tx.commit().await?;
        Ok(times)
    }

    /// Claims due outbox rows across organisations: each gets a lease (and one attempt is
    /// counted) before any provider call, so a crash mid-send retries it after the lease,
    /// never twice within one attempt. PostgreSQL skips rows other dispatchers hold.
    pub async fn claim_outbox(
        &self,
        now: OffsetDateTime,
        lease: time::Duration,
        limit: i64,
    ) -> Result<Vec<OutboxJob>, StoreError> {
        type Row = (uuid::Uuid, uuid::Uuid, uuid::Uuid, uuid::Uuid, String, i32);
        let mut g = self.begin_global(true).await?;
        let until = now + lease;
        let rows: Vec<Row> = claim(
            &mut g,
            leased_claim!(
                "UPDATE outbox SET lease_until = $2, attempts = attempts + 1 WHERE id IN",
                "SELECT id FROM outbox WHERE next_attempt_at <= $1 AND (lease_until IS NULL OR lease_until < $1) ORDER BY next_attempt_at LIMIT $3",
                "RETURNING id, org_id, channel_id, target_id, action, attempts"
            ),
            (now, until, limit),
        )
        .await?;
        g.commit().await?;
        rows.into_iter()
            .map(|(id, org, channel, target, action, attempts)| {
                Ok(OutboxJob {
                    ctx: TenantCtx::system(frontdesk_domain::OrgId::from_uuid(org), "dispatcher"),
                    id: OutboxId::from_uuid(id),
                    channel: ChannelId::from_uuid(channel),
                    target,
                    action: OutboxAction::parse(&action)?,
                    attempts,
                })
            })
            .collect()
    }

    /// Gives a claimed row back without spending its attempt (the number's rate had no room).
    pub async fn release_outbox(
        &self,
        job: &OutboxJob,
        next_at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mut g = self.begin_global(true).await?;
        with_conn!(g.tx, c => {
            sqlx::query("UPDATE outbox SET lease_until = NULL, next_attempt_at = $2, attempts = attempts - 1 WHERE id = $1")
                .bind(job.id.as_uuid()).bind(next_at).execute(c).await?;
        });
        g.commit().await
    }

    /// How many outbox rows wait (due or not).
    pub async fn outbox_len(&self) -> Result<i64, StoreError> {
        let mut g = self.begin_global(false).await?;
        let n: i64 = with_conn!(g.tx, c => {
            sqlx::query_scalar("SELECT count(*) FROM outbox").fetch_one(c).await?
        });
        g.commit().await?;
        Ok(n)
    }

    /// Claims queued webhook bodies across organisations (oldest first), with a lease.
    pub async fn claim_inbox(
        &self,
        now: OffsetDateTime,
        lease: time::Duration,
        limit: i64,
    ) -> Result<Vec<(TenantCtx, Vec<frontdesk_domain::InboxId>)>, StoreError> {
        let mut g = self.begin_global_background().await?;
        let until = now + lease;
        let rows: Vec<(uuid::Uuid, uuid::Uuid)> = claim(
            &mut g,
            leased_claim!(
                "UPDATE inbox_queue SET lease_until = $2 WHERE inbox_id IN",
                "SELECT inbox_id FROM inbox_queue WHERE lease_until IS NULL OR lease_until < $1 ORDER BY received_at LIMIT $3",
                "RETURNING org_id, inbox_id"
            ),
            (now, until, limit),
        )
        .await?;
        g.commit().await?;
        let mut by_org: std::collections::BTreeMap<uuid::Uuid, Vec<frontdesk_domain::InboxId>> =
            std::collections::BTreeMap::new();
        for (org, id) in rows {
            by_org
                .entry(org)
                .or_default()
                .push(frontdesk_domain::InboxId::from_uuid(id));
        }
        Ok(by_org
            .into_iter()
            .map(|(org, mut ids)| {
                ids.sort_by_key(|i| i.as_uuid());
                (
                    TenantCtx::system(frontdesk_domain::OrgId::from_uuid(org), "worker"),
                    ids,
                )
            })
            .collect())
    }
}

/// A send the provider took, to record (see [`Store::finish_sends`]).
#[derive(Debug, Clone)]
pub struct FinishedSend {
    pub ctx: TenantCtx,
    pub job: OutboxId,
    pub message: MessageId,
    pub provider_message_id: String,
}

impl Store {
    /// Records many sends the provider took, one durable transaction per organisation
    /// (the dispatcher's group commit: at a number's full throughput, one commit per send
    /// was most of the cost on SQLite), each as [`TenantTx::finish_send`] records one. An
    /// organisation whose transaction fails has none of its sends recorded: the answer is
    /// the first error and the positions (in `sends`) not recorded, for the caller to
    /// record one by one.
    pub async fn finish_sends(
        &self,
        sends: &[FinishedSend],
    ) -> Result<(), (StoreError, Vec<usize>)> {
        let mut order: Vec<usize> = (0..sends.len()).collect();
        order.sort_by_key(|i| sends[*i].ctx.org_id());
        let mut failed = Vec::new();
        let mut first_error = None;
        for group in order.chunk_by(|a, b| sends[*a].ctx.org_id() == sends[*b].ctx.org_id()) {
            let recorded = async {
                let mut tx = self.begin(&sends[group[0]].ctx).await?;
                for i in group {
                    let s = &sends[*i];
                    tx.finish_send(s.job, s.message, &s.provider_message_id)
                        .await?;
                }
                tx.commit().await
            }
            .await;
            if let Err(e) = recorded {
                failed.extend_from_slice(group);
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            None => Ok(()),
            Some(e) => Err((e, failed)),
        }
    }
}

/// What a PostgreSQL write transaction looks at again in a transaction of its own once it
/// has committed.
///
/// A status webhook can arrive while the send it names is being recorded. Under
/// read-committed isolation neither transaction sees the other's uncommitted rows: the
/// status finds no message with its id (and waits in the history), the record reads a
/// history without the status, and the message would stay behind for good. Each side
/// therefore looks again after its own commit: the status for its message, the record for
/// statuses it did not see. Whichever commits second sees the other's rows then, so one of
/// the two settles the message (settling twice changes nothing). No lock is held: at a
/// number's full throughput nearly every `sent` status arrives before its send's record,
/// and a lock between the two made them take turns (PostgreSQL dispatch fell to 250
/// messages/s). SQLite's writers take turns anyway and see each other's commits.
#[derive(Debug, Clone)]
pub(crate) enum Recheck {
    /// A status whose message the transaction did not find.
    Status {
        channel: ChannelId,
        provider_message_id: String,
    },
    /// A recorded send, and how many of its statuses the transaction saw.
    Send {
        channel: ChannelId,
        provider_message_id: String,
        seen: usize,
    },
}

/// Runs a committed transaction's [`Recheck`]s (a few tries; the commit itself stands, so
/// a failure here is logged, not returned).
pub(crate) async fn recheck(store: &Store, ctx: &TenantCtx, list: Vec<Recheck>) {
    let mut last = None;
    for _ in 0..3 {
        match recheck_once(store, ctx, &list).await {
            Ok(()) => return,
            Err(e) => last = Some(e),
        }
    }
    if let Some(e) = last {
        tracing::error!(error = %e, items = list.len(), "statuses could not be checked again after a commit");
    }
}

async fn recheck_once(store: &Store, ctx: &TenantCtx, list: &[Recheck]) -> Result<(), StoreError> {
    let mut tx = store.begin_background(ctx).await?;
    let mut by_channel: BTreeMap<ChannelId, (Vec<&str>, HashMap<&str, usize>)> = BTreeMap::new();
    for r in list {
        match r {
            Recheck::Status {
                channel,
                provider_message_id,
            } => {
                by_channel
                    .entry(*channel)
                    .or_default()
                    .0
                    .push(provider_message_id);
            }
            Recheck::Send {
                channel,
                provider_message_id,
                seen,
            } => {
                by_channel
                    .entry(*channel)
                    .or_default()
                    .1
                    .insert(provider_message_id, *seen);
            }
        }
    }
    let org = ctx.org_id().as_uuid();
    let mut due: Vec<(ChannelId, String)> = Vec::new();
    for (channel, (statuses, sends)) in by_channel {
        let crate::tenant::Tx::Postgres(t) = &mut tx.tx else {
            return Ok(());
        };
        if !statuses.is_empty() {
            // Statuses whose message is now recorded.
            let found: Vec<(String, String)> = sqlx::query_as("SELECT provider_message_id, direction FROM messages WHERE org_id = $1 AND channel_id = $2 AND provider_message_id = ANY($3)")
                .bind(org).bind(channel.as_uuid()).bind(&statuses).fetch_all(&mut **t).await?;
            due.extend(
                found
                    .into_iter()
                    .filter(|f| f.1 == "out")
                    .map(|f| (channel, f.0)),
            );
        }
        if !sends.is_empty() {
            // Sends with statuses their record did not see.
            let ids: Vec<&str> = sends.keys().copied().collect();
            let counts: Vec<(String, i64)> = sqlx::query_as("SELECT provider_message_id, count(*) FROM message_statuses WHERE org_id = $1 AND channel_id = $2 AND provider_message_id = ANY($3) GROUP BY provider_message_id")
                .bind(org).bind(channel.as_uuid()).bind(&ids).fetch_all(&mut **t).await?;
            due.extend(
                counts
                    .into_iter()
                    .filter(|(id, n)| {
                        sends
                            .get(id.as_str())
                            .is_some_and(|seen| *n as usize > *seen)
                    })
                    .map(|(id, _)| (channel, id)),
            );
        }
    }
    for (channel, id) in &due {
        tx.settle_status(*channel, id).await?;
    }
    // What this transaction found is settled: nothing to look at after it.
    tx.commit_alone().await
}
