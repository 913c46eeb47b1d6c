//! Consent keywords from customers: a whole message that is an opt-out keyword ("STOP" and
//! the organisation's own) opts the customer out at once, an opt-in keyword ("START") back
//! in; the ledger event (source `keyword`, the message as evidence) and the confirmation
//! (through the outbox) are part of the transaction that stores the message, so a webhook
//! applied twice records and answers once.

use frontdesk_domain::audience::{ConsentSource, ConsentState};
use frontdesk_domain::{ChannelId, ContactId};
use frontdesk_store::{NewOutbound, StoreError, TenantTx};
use frontdesk_whatsapp::Outbound;
use time::OffsetDateTime;

/// Acts on a customer's text if it is a consent keyword. Returns whether it was one.
pub async fn handle_consent_text(
    tx: &mut TenantTx,
    channel: ChannelId,
    contact: ContactId,
    text: &str,
    wamid: &str,
    now: OffsetDateTime,
) -> Result<bool, StoreError> {
    let Some(state) = tx.consent_keyword(text).await? else {
        return Ok(false);
    };
    let keyword: String = text.trim().chars().take(40).collect();
    let evidence = format!(
        "WhatsApp message {} said {keyword:?}",
        wamid.chars().take(200).collect::<String>()
    );
    tx.record_consent(contact, state, ConsentSource::Keyword, &evidence)
        .await?;
    let settings = tx.audience_settings().await?;
    let body = match state {
        ConsentState::OptOut => settings.opt_out_reply,
        ConsentState::OptIn => settings.opt_in_reply,
    };
    let message = Outbound::Text {
        body,
        preview_url: false,
    };
    let content =
        serde_json::to_string(&message).map_err(|e| StoreError::Invalid(e.to_string()))?;
    // The customer has just written, so the service window is open for the confirmation.
    tx.queue_message(
        &NewOutbound {
            channel,
            contact,
            kind: message.type_name().to_owned(),
            preview: message.preview(),
            content,
            reply_to: None,
            needs_window: message.needs_service_window(),
            author: None,
        },
        now,
    )
    .await?;
    Ok(true)
}
