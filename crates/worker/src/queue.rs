//! The patients' side of the clinic queue over WhatsApp: a keyword joins, STATUS and CANCEL
//! answer, and staff actions tell patients where they stand. Every message goes through
//! the outbox in the caller's transaction: free-form inside the 24-hour window, the queue's
//! approved template outside it (and nothing, logged, when the queue has none).
//!
//! The functions here run inside the transaction of the change they report, so a message
//! is queued exactly when its change commits. A change to a queue's line also announces
//! `queue.changed` on the same transaction, published to the boards' SSE when it commits.

use frontdesk_domain::queue::{
    PatientCommand, QueueText, estimated_wait_minutes, position_update_due, render, text_for,
};
use frontdesk_domain::{ChannelId, ContactId, QueueId, QueueTokenId};
use frontdesk_store::{
    AuditRecord, JoinOutcome, NewOutbound, Patient, QueueView, StoreError, TenantTx, TokenView,
};
use frontdesk_whatsapp::Outbound;
use time::{Date, OffsetDateTime, Time};

/// Values a text may name, and the token it is about (for its history).
#[derive(Default)]
struct Values {
    token_id: Option<QueueTokenId>,
    token: String,
    position: String,
    wait: String,
    opens: String,
    message: String,
}

impl Values {
    fn of(t: &TokenView, avg_secs: i64) -> Self {
        let pos = t.position.unwrap_or(0);
        Values {
            token_id: Some(t.id),
            token: t.label.clone(),
            position: pos.to_string(),
            wait: estimated_wait_minutes(avg_secs, (pos - 1).max(0)).to_string(),
            ..Default::default()
        }
    }

    fn get(&self, name: &str) -> &str {
        match name {
            "token" => &self.token,
            "position" => &self.position,
            "wait" => &self.wait,
            "opens" => &self.opens,
            "message" => &self.message,
            _ => "",
        }
    }
}

/// "today at 09:00", "tomorrow at 09:00" or "Mon 30 Nov at 09:00".
fn opening_text(today: Date, opens: Option<(Date, Time)>) -> String {
    let Some((d, t)) = opens else {
        return "later".into();
    };
    let at = format!("{:02}:{:02}", t.hour(), t.minute());
    if d == today {
        format!("today at {at}")
    } else if Some(d) == today.next_day() {
        format!("tomorrow at {at}")
    } else {
        let wd = &d.weekday().to_string()[..3];
        let mon = &d.month().to_string()[..3];
        format!("{wd} {} {mon} at {at}", d.day())
    }
}

/// Queues one queue text to a contact: free-form in the window, else the queue's template
/// for it. Returns whether something was queued.
async fn send(
    tx: &mut TenantTx,
    q: &QueueView,
    contact: ContactId,
    key: QueueText,
    lang: &str,
    v: &Values,
    now: OffsetDateTime,
) -> Result<bool, StoreError> {
    send_on(tx, q.channel_id, Some(q), contact, key, lang, v, now).await
}

#[allow(clippy::too_many_arguments)]
async fn send_on(
    tx: &mut TenantTx,
    channel: ChannelId,
    q: Option<&QueueView>,
    contact: ContactId,
    key: QueueText,
    lang: &str,
    v: &Values,
    now: OffsetDateTime,
) -> Result<bool, StoreError> {
    let window = tx
        .find_conversation(channel, contact)
        .await?
        .is_some_and(|c| frontdesk_store::messaging::window_open(c.last_inbound_at, now));
    let empty = Default::default();
    let texts = q.map_or(&empty, |q| &q.texts);
    let mut prepared = None;
    let message = if window {
        let queue = q.map_or("", |q| q.name.as_str());
        let body = render(
            text_for(texts, lang, key),
            &[
                ("queue", queue),
                ("token", v.get("token")),
                ("position", v.get("position")),
                ("wait", v.get("wait")),
                ("opens", v.get("opens")),
                ("message", v.get("message")),
            ],
        );
        Outbound::Text {
            body: body.chars().take(4096).collect(),
            preview_url: false,
        }
    } else if let Some(t) = q.and_then(|q| q.templates.get(&key)) {
        let values: Vec<String> = key
            .template_params()
            .iter()
            .map(|p| v.get(p).to_owned())
            .collect();
        let waba = tx.channel(channel).await?.waba_id;
        // The same template in the patient's language, when it is approved; else the one
        // configured.
        let language = match tx.template_named(&waba, &t.name, lang).await? {
            Some(r) if lang != t.language && r.status == "APPROVED" => lang.to_owned(),
            _ => t.language.clone(),
        };
        // A template written here is filled (and checked) like any send; one known only by
        // its status gets the values as body parameters.
        let known = tx
            .template_named(&waba, &t.name, &language)
            .await?
            .is_some_and(|r| r.spec().is_some());
        let mut components = if known || values.is_empty() {
            vec![]
        } else {
            let params: Vec<serde_json::Value> = values
                .iter()
                .map(|v| serde_json::json!({ "type": "text", "text": v }))
                .collect();
            vec![serde_json::json!({ "type": "body", "parameters": params })]
        };
        let fill = known.then(|| frontdesk_domain::template::FillInput {
            body: values,
            ..Default::default()
        });
        match tx
            .prepare_template_send(&waba, &t.name, &language, &mut components, fill)
            .await
        {
            Ok(p) => prepared = p,
            Err(frontdesk_store::TemplateRefusal::Store(e)) => return Err(e),
            Err(refusal) => {
                tracing::warn!(text = key.as_str(), template = %t.name, %refusal, "queue message not sent: its template cannot be used");
                return Ok(false);
            }
        }
        Outbound::Template {
            name: t.name.clone(),
            language,
            components,
        }
    } else {
        tracing::info!(
            text = key.as_str(),
            "queue message not sent: outside the window and no template set"
        );
        // Staff see it in the token's history: the patient was not told, and why. (The
        // action itself stands: the screen still shows the token.)
        if let Some(id) = v.token_id {
            tx.audit(AuditRecord::new(
                "queue.message_not_sent",
                "queue_token",
                id.to_string(),
                serde_json::json!({ "text": key.as_str(), "reason": "outside_window_without_template" }),
            ))
            .await?;
        }
        return Ok(false);
    };
    let content =
        serde_json::to_string(&message).map_err(|e| StoreError::Invalid(e.to_string()))?;
    let queued = tx
        .queue_message(
            &NewOutbound {
                channel,
                contact,
                kind: message.type_name().to_owned(),
                preview: prepared.as_ref().map_or_else(
                    || message.preview(),
                    |p: &frontdesk_store::PreparedTemplate| p.text.chars().take(300).collect(),
                ),
                content,
                reply_to: None,
                needs_window: message.needs_service_window(),
                author: None,
            },
            now,
        )
        .await?;
    if let Some(p) = prepared
        && !p.links.is_empty()
    {
        tx.create_tracked_links(p.template, queued.id, contact, &p.links)
            .await?;
    }
    Ok(true)
}

/// Acts on a patient's text if it is a queue command or a join keyword on this number.
/// Returns whether it was one (then the answer is queued).
pub async fn handle_patient_text(
    tx: &mut TenantTx,
    channel: ChannelId,
    contact: ContactId,
    text: &str,
    now: OffsetDateTime,
) -> Result<bool, StoreError> {
    let Some(cmd) = PatientCommand::parse(text) else {
        return Ok(false);
    };
    match cmd {
        PatientCommand::Keyword(k) => {
            let Some(queue) = tx.queue_for_keyword(channel, &k).await? else {
                return Ok(false);
            };
            join_by_whatsapp(tx, queue, contact, now).await?;
            Ok(true)
        }
        PatientCommand::Status | PatientCommand::Cancel => {
            let tokens: Vec<TokenView> = tx.live_tokens_of(contact).await?;
            let mut any = false;
            for t in tokens {
                let q = tx.queue(t.queue_id).await?;
                if q.channel_id != channel {
                    continue;
                }
                any = true;
                let avg = tx.avg_consult_secs(q.id).await?;
                if cmd == PatientCommand::Cancel {
                    let t = tx.cancel_token(t.id, now).await?;
                    tx.announce_queue_changed(q.id);
                    send(
                        tx,
                        &q,
                        contact,
                        QueueText::Cancelled,
                        &t.language,
                        &Values::of(&t, avg),
                        now,
                    )
                    .await?;
                    notify_line(tx, q.id, now).await?;
                } else {
                    send(
                        tx,
                        &q,
                        contact,
                        QueueText::Status,
                        &t.language,
                        &Values::of(&t, avg),
                        now,
                    )
                    .await?;
                }
            }
            if !any {
                let lang = patient_language(tx, contact).await?;
                send_on(
                    tx,
                    channel,
                    None,
                    contact,
                    QueueText::NotInQueue,
                    &lang,
                    &Values::default(),
                    now,
                )
                .await?;
            }
            Ok(true)
        }
    }
}

/// The language the patient's messages are written in: their contact's, else English.
async fn patient_language(tx: &mut TenantTx, contact: ContactId) -> Result<String, StoreError> {
    Ok(tx
        .contact_language(contact)
        .await?
        .unwrap_or_else(|| "en".into()))
}

async fn join_by_whatsapp(
    tx: &mut TenantTx,
    queue: QueueId,
    contact: ContactId,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    let q = tx.queue(queue).await?;
    let lang = patient_language(tx, contact).await?;
    let out = tx
        .join_queue(queue, &Patient::Contact(contact), &lang, true, now)
        .await?;
    let avg = tx.avg_consult_secs(queue).await?;
    let (key, v, lang) = match &out {
        JoinOutcome::Joined(t) => (QueueText::Joined, Values::of(t, avg), t.language.clone()),
        JoinOutcome::AlreadyIn(t) => (
            QueueText::AlreadyInQueue,
            Values::of(t, avg),
            t.language.clone(),
        ),
        JoinOutcome::Paused(m) => (
            QueueText::Paused,
            Values {
                message: m.clone(),
                ..Default::default()
            },
            lang.clone(),
        ),
        JoinOutcome::Closed(opens) => {
            let (today, _) = tx.local_now(now).await?;
            (
                QueueText::Closed,
                Values {
                    opens: opening_text(today, *opens),
                    ..Default::default()
                },
                lang.clone(),
            )
        }
        JoinOutcome::CapReached => (QueueText::CapReached, Values::default(), lang.clone()),
    };
    send(tx, &q, contact, key, &lang, &v, now).await?;
    if let JoinOutcome::Joined(t) = out {
        tx.mark_told(t.id, t.position, t.position == Some(1))
            .await?;
        tx.announce_queue_changed(queue);
    }
    Ok(())
}

/// Tells waiting patients what changed for them: "you are next" to the first, a position
/// update to those who moved by the queue's step since they were last told.
pub async fn notify_line(
    tx: &mut TenantTx,
    queue: QueueId,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    let q = tx.queue(queue).await?;
    let line = tx.waiting_line(queue).await?;
    let avg = tx.avg_consult_secs(queue).await?;
    for t in line {
        let (Some(contact), Some(pos)) = (t.contact_id, t.position) else {
            continue;
        };
        let v = Values::of(&t, avg);
        if pos == 1 && !t.told_next {
            send(tx, &q, contact, QueueText::YouAreNext, &t.language, &v, now).await?;
            tx.mark_told(t.id, Some(pos), true).await?;
        } else if position_update_due(
            t.told_position.map(i64::from),
            pos,
            i64::from(q.position_step),
        ) {
            send(
                tx,
                &q,
                contact,
                QueueText::PositionUpdate,
                &t.language,
                &v,
                now,
            )
            .await?;
            tx.mark_told(t.id, Some(pos), t.told_next).await?;
        }
    }
    Ok(())
}

/// Tells a called patient to come in, then updates the line behind them. Returns false
/// when the patient has a number but could not be told (window closed, no `come_in`
/// template), so the desk knows to call them by name.
pub async fn notify_called(
    tx: &mut TenantTx,
    token: &TokenView,
    now: OffsetDateTime,
) -> Result<bool, StoreError> {
    let q = tx.queue(token.queue_id).await?;
    let mut told = true;
    if let Some(contact) = token.contact_id {
        let v = Values {
            token_id: Some(token.id),
            token: token.label.clone(),
            ..Default::default()
        };
        told = send(tx, &q, contact, QueueText::ComeIn, &token.language, &v, now).await?;
    }
    notify_line(tx, token.queue_id, now).await?;
    Ok(told)
}

/// Tells every waiting patient that the queue is paused, with the desk's message.
pub async fn notify_paused(
    tx: &mut TenantTx,
    queue: QueueId,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    let q = tx.queue(queue).await?;
    let v = Values {
        message: q.pause_message.clone(),
        ..Default::default()
    };
    for t in tx.waiting_line(queue).await? {
        if let Some(contact) = t.contact_id {
            let v = Values {
                token_id: Some(t.id),
                message: v.message.clone(),
                ..Default::default()
            };
            send(tx, &q, contact, QueueText::Paused, &t.language, &v, now).await?;
        }
    }
    Ok(())
}

/// Tells a cancelled patient (by the desk) that their token is cancelled.
pub async fn notify_cancelled(
    tx: &mut TenantTx,
    token: &TokenView,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    let q = tx.queue(token.queue_id).await?;
    if let Some(contact) = token.contact_id {
        let v = Values {
            token_id: Some(token.id),
            token: token.label.clone(),
            ..Default::default()
        };
        send(
            tx,
            &q,
            contact,
            QueueText::Cancelled,
            &token.language,
            &v,
            now,
        )
        .await?;
    }
    notify_line(tx, token.queue_id, now).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, time};

    #[test]
    fn opening_times_read_naturally() {
        let mon = date!(2026 - 11 - 23);
        assert_eq!(
            opening_text(mon, Some((mon, time!(9:00)))),
            "today at 09:00"
        );
        assert_eq!(
            opening_text(mon, Some((date!(2026 - 11 - 24), time!(14:30)))),
            "tomorrow at 14:30"
        );
        assert_eq!(
            opening_text(mon, Some((date!(2026 - 11 - 30), time!(9:00)))),
            "Mon 30 Nov at 09:00"
        );
        assert_eq!(opening_text(mon, None), "later");
    }
}
