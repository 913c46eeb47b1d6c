//! Webhook processing: pending inbox rows become contacts, conversations, messages, statuses
//! and template/number updates. Idempotent: a row applied twice (a retry, a crash between
//! applying and marking) changes nothing the second time.

use crate::Worker;
use frontdesk_domain::{ChannelId, InboxId};
use frontdesk_store::{
    CustomerIdentity, Inbound, InboundRecord, InboxItem, NewMedia, Provider, StatusRecord,
    StoreError, TenantCtx, TenantTx,
};
use frontdesk_whatsapp::webhook::{CustomerRef, Event, InboundMessage, MessageKind, StatusUpdate};
use time::OffsetDateTime;

/// Why a row could not be applied.
#[derive(Debug, thiserror::Error)]
enum ApplyError {
    /// The payload is wrong for this release: the row is marked failed with the reason
    /// (kept, and reprocessable after an upgrade).
    #[error("{0}")]
    Payload(String),
    /// The database failed: nothing is marked, the row is tried again.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Webhook rows applied per transaction.
const APPLY_CHUNK: usize = 20;

fn identity(c: &CustomerRef) -> CustomerIdentity {
    CustomerIdentity {
        phone: c.phone.clone(),
        bsuid: c.bsuid.clone(),
        parent_bsuid: c.parent_bsuid.clone(),
        username: c.username.clone(),
        name: c.name.clone(),
    }
}

fn at(unix: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(unix).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

impl Worker {
    /// Processes queued webhook rows until none is left (or `max` rows were handled).
    /// Returns how many rows were handled.
    pub async fn process_inbox(&self, max: usize) -> Result<usize, StoreError> {
        let mut done = 0;
        while done < max {
            let batch = self
                .store
                .claim_inbox(self.now(), time::Duration::seconds(60), 200)
                .await?;
            if batch.is_empty() {
                break;
            }
            // Short transactions: on SQLite each one holds the only write lock, and webhook
            // acknowledgements wait behind it.
            for (ctx, ids) in batch {
                for chunk in ids.chunks(APPLY_CHUNK) {
                    done += self.process_org_batch(&ctx, chunk).await?;
                    tokio::task::yield_now().await;
                }
            }
        }
        Ok(done)
    }

    /// One organisation's claimed rows in one transaction; if the database refuses the
    /// batch, each row is tried in its own so one bad row cannot hold the others back.
    async fn process_org_batch(
        &self,
        ctx: &TenantCtx,
        ids: &[InboxId],
    ) -> Result<usize, StoreError> {
        let now = self.now();
        let mut tx = self.store.begin_background(ctx).await?;
        let items = tx.pending_inbox_items(ids).await?;
        let mut ok = true;
        for item in &items {
            if let Err(e) = apply_row(&mut tx, item, now).await {
                tracing::warn!(error = %e, "webhook batch failed; retrying row by row");
                ok = false;
                break;
            }
        }
        if ok {
            tx.commit().await?;
            return Ok(items.len());
        }
        drop(tx);
        for id in ids {
            let mut tx = self.store.begin_background(ctx).await?;
            let items = tx.pending_inbox_items(std::slice::from_ref(id)).await?;
            if let Some(item) = items.first() {
                match apply_row(&mut tx, item, now).await {
                    Ok(()) => tx.commit().await?,
                    Err(e) => {
                        // Left queued: its lease runs out and it is tried again.
                        tracing::error!(inbox = %id, error = %e, "webhook row could not be applied");
                    }
                }
            } else {
                tx.commit().await?;
            }
        }
        Ok(ids.len())
    }
}

/// Applies one row and marks it processed, or failed with the parse error.
async fn apply_row(
    tx: &mut TenantTx,
    item: &InboxItem,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    match apply_body(tx, item, now).await {
        Ok(()) => tx.finish_inbox(item.id, None).await,
        Err(ApplyError::Payload(reason)) => {
            tracing::warn!(inbox = %item.id, %reason, "webhook payload not applied; kept as failed");
            tx.finish_inbox(item.id, Some(&reason)).await
        }
        Err(ApplyError::Store(e)) => Err(e),
    }
}

async fn apply_body(
    tx: &mut TenantTx,
    item: &InboxItem,
    now: OffsetDateTime,
) -> Result<(), ApplyError> {
    let channel = tx.channel(item.channel).await?;
    let events = match channel.provider {
        Provider::Cloud => frontdesk_whatsapp::parse_meta(&item.body)
            .map_err(|e| ApplyError::Payload(e.to_string()))?,
        Provider::Whapi => frontdesk_whatsapp::parse_whapi(&item.body)
            .map_err(|e| ApplyError::Payload(e.to_string()))?,
    };
    for event in events {
        apply_event(tx, &channel, event, now).await?;
    }
    Ok(())
}

/// The channel an event names: its phone number id within the organisation, else the
/// channel whose URL received it.
async fn channel_for(
    tx: &mut TenantTx,
    receiving: &frontdesk_store::ChannelView,
    phone_number_id: &str,
) -> Result<ChannelId, StoreError> {
    if phone_number_id.is_empty() || phone_number_id == receiving.phone_number_id {
        return Ok(receiving.id);
    }
    Ok(tx
        .channel_by_number(receiving.provider, phone_number_id)
        .await?
        .unwrap_or(receiving.id))
}

async fn apply_event(
    tx: &mut TenantTx,
    receiving: &frontdesk_store::ChannelView,
    event: Event,
    now: OffsetDateTime,
) -> Result<(), ApplyError> {
    match event {
        Event::Message(m) => {
            let channel = channel_for(tx, receiving, &m.number.phone_number_id).await?;
            apply_message(tx, channel, &m, now).await
        }
        Event::Status(s) => {
            let channel = channel_for(tx, receiving, &s.number.phone_number_id).await?;
            apply_status(tx, channel, &s).await
        }
        Event::TemplateStatus(t) => {
            use frontdesk_domain::template::{StatusEvent, status_event};
            match status_event(&t.event) {
                StatusEvent::Status(status) => {
                    tx.set_template_status(&frontdesk_store::TemplateStatus {
                        waba_id: &t.waba_id,
                        name: &t.name,
                        language: &t.language,
                        provider_template_id: Some(&t.template_id),
                        status,
                        reason: t.reason.as_deref(),
                        category: t.category.as_deref(),
                    })
                    .await?;
                }
                StatusEvent::Quality(q) => {
                    tx.set_template_quality(&t.waba_id, &t.template_id, q)
                        .await?;
                }
            }
            Ok(())
        }
        Event::TemplateQuality(q) => {
            if !q.quality.is_empty() && !q.template_id.is_empty() {
                tx.set_template_quality(&q.waba_id, &q.template_id, &q.quality)
                    .await?;
            }
            Ok(())
        }
        Event::TemplateCategory(c) => {
            if !c.new_category.is_empty() && !c.template_id.is_empty() {
                tx.set_template_category(&c.waba_id, &c.template_id, &c.new_category)
                    .await?;
            }
            Ok(())
        }
        Event::PhoneQuality(q) => {
            let quality = match q.event.as_str() {
                "FLAGGED" => Some("RED"),
                "UNFLAGGED" => Some("GREEN"),
                _ => None,
            };
            for channel in tx
                .channels_by_display_number(&q.waba_id, &q.display_phone_number)
                .await?
            {
                tx.set_channel_health(channel, quality, q.current_limit.as_deref(), None)
                    .await?;
            }
            Ok(())
        }
        Event::NumberErrors { number, errors } => {
            for e in errors {
                tracing::warn!(phone_number_id = %number.phone_number_id, code = e.code, title = ?e.title, "provider reported an error for the number");
            }
            Ok(())
        }
        Event::Other { field, .. } => {
            tracing::debug!(%field, "webhook field not acted on");
            Ok(())
        }
    }
}

async fn apply_message(
    tx: &mut TenantTx,
    channel: ChannelId,
    m: &InboundMessage,
    now: OffsetDateTime,
) -> Result<(), ApplyError> {
    if m.from.phone.is_none() && m.from.bsuid.is_none() {
        return Err(ApplyError::Payload(format!(
            "message {} names no sender (no phone number, no user id)",
            m.id
        )));
    }
    let contact = tx.upsert_contact(&identity(&m.from)).await?;
    let (reply_to, media) = match &m.kind {
        MessageKind::Reaction { message_id, .. } => (Some(message_id.clone()), None),
        MessageKind::Media { media, .. } => (
            m.context.as_ref().and_then(|c| c.message_id.clone()),
            Some(NewMedia {
                provider_media_id: media.media_id.clone(),
                mime_type: media.mime_type.clone(),
                sha256: media.sha256.clone(),
                filename: media.filename.clone(),
            }),
        ),
        _ => (m.context.as_ref().and_then(|c| c.message_id.clone()), None),
    };
    let media = media.filter(|x| !x.provider_media_id.is_empty());
    let stored = tx
        .record_inbound(
            channel,
            contact,
            &InboundRecord {
                provider_message_id: m.id.clone(),
                kind: m.kind.type_name().to_owned(),
                content: m.raw.to_string(),
                preview: m.kind.preview(),
                reply_to,
                provider_at: at(m.timestamp),
                media,
            },
        )
        .await?;
    // A new text may be a consent keyword, a queue keyword, STATUS or CANCEL: answered in
    // this transaction, so a webhook applied twice answers once.
    // A consent keyword (STOP, START, the organisation's own) is acted on first and is
    // not also a queue command.
    if let (Inbound::New { .. }, MessageKind::Text { body }) = (stored, &m.kind)
        && !crate::consent::handle_consent_text(tx, channel, contact, body, &m.id, now).await?
    {
        crate::queue::handle_patient_text(tx, channel, contact, body, now).await?;
    }
    Ok(())
}

async fn apply_status(
    tx: &mut TenantTx,
    channel: ChannelId,
    s: &StatusUpdate,
) -> Result<(), ApplyError> {
    // A status that names both ids links them (the contact learns its user id or number).
    if s.recipient.phone.is_some() && s.recipient.bsuid.is_some() {
        tx.upsert_contact(&identity(&s.recipient)).await?;
    }
    let error = s.errors.first();
    tx.apply_status(
        channel,
        &StatusRecord {
            provider_message_id: s.id.clone(),
            status: s.status.as_str().to_owned(),
            provider_at: at(s.timestamp),
            error_code: error.map(|e| e.code),
            error_title: error.and_then(|e| e.title.clone().or_else(|| e.message.clone())),
            pricing_category: s.category.clone(),
            pricing_model: s.pricing_model.clone(),
            billable: s.billable,
        },
    )
    .await?;
    Ok(())
}
