//! Meta's webhook payloads, and their delivery: signed with the channel's app secret
//! (`X-Hub-Signature-256`) and POSTed over HTTP to the channel's webhook URL. A delivery
//! that is not answered 200 is posted again after a growing wait, as Meta does (Meta keeps
//! trying for days; the simulator gives up after `max_attempts`, logging it).

use super::digits;
use crate::AppState;
use frontdesk_domain::ChannelId;
use frontdesk_store::{SimCustomer, SimNumber, TenantCtx};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

/// The envelope every Cloud API webhook comes in.
pub(crate) fn envelope(waba_id: &str, field: &str, value: Value, time: Option<i64>) -> Value {
    let mut entry = json!({ "id": waba_id, "changes": [{ "value": value, "field": field }] });
    if let Some(t) = time {
        entry["time"] = json!(t);
    }
    json!({ "object": "whatsapp_business_account", "entry": [entry] })
}

fn metadata(n: &SimNumber) -> Value {
    json!({ "display_phone_number": digits(&n.display_number), "phone_number_id": n.phone_number_id })
}

/// A `contacts[]` entry: 2026 payloads always carry the BSUID (`user_id`); the phone
/// (`wa_id`) only for customers without a username-only identity.
pub(crate) fn contact(c: &SimCustomer) -> Value {
    let mut profile = json!({ "name": c.name });
    if let Some(u) = &c.username {
        profile["username"] = json!(u);
    }
    let mut v = json!({ "profile": profile, "user_id": c.bsuid });
    if let Some(p) = &c.phone {
        v["wa_id"] = json!(p);
    }
    v
}

/// A `messages` change with one message from `c`; `message` holds `type` and its object
/// (and `context` when replying). `from`/`from_user_id`, `id` and `timestamp` are added.
pub(crate) fn inbound_message(
    n: &SimNumber,
    c: &SimCustomer,
    wamid: &str,
    unix_secs: i64,
    message: Value,
) -> (Value, Value) {
    let mut m = json!({ "from_user_id": c.bsuid, "id": wamid, "timestamp": unix_secs.to_string() });
    if let Some(p) = &c.phone {
        m["from"] = json!(p);
    }
    if let (Value::Object(dst), Value::Object(src)) = (&mut m, message) {
        dst.extend(src);
    }
    let value = json!({
        "messaging_product": "whatsapp",
        "metadata": metadata(n),
        "contacts": [contact(c)],
        "messages": [m.clone()],
    });
    (envelope(&n.waba_id, "messages", value, None), m)
}

/// How a delivered message is priced (per-message pricing, since July 2025).
#[derive(Debug, Clone)]
pub(crate) struct Pricing {
    pub category: String,
    pub billable: bool,
}

/// A status change of an outbound message.
#[derive(Clone, Copy)]
pub(crate) struct StatusEvent<'a> {
    pub wamid: &'a str,
    /// `sent`, `delivered`, `read` or `failed`.
    pub status: &'a str,
    pub unix_secs: i64,
    /// The customer, when the simulator knows them.
    pub to: Option<&'a SimCustomer>,
    /// What the send addressed (reported for an undeliverable number).
    pub input: &'a str,
    pub pricing: Option<&'a Pricing>,
    /// `(code, title, details)` of a failure.
    pub error: Option<(i64, &'a str, &'a str)>,
}

/// The `messages` change carrying one status.
pub(crate) fn status(n: &SimNumber, e: &StatusEvent<'_>) -> Value {
    let StatusEvent {
        wamid,
        status,
        unix_secs,
        to,
        input,
        pricing,
        error,
    } = *e;
    let mut st = json!({ "id": wamid, "status": status, "timestamp": unix_secs.to_string() });
    match to {
        Some(c) => {
            st["recipient_user_id"] = json!(c.bsuid);
            if let Some(p) = &c.phone {
                st["recipient_id"] = json!(p);
            }
        }
        None => st["recipient_id"] = json!(input),
    }
    if let Some(p) = pricing {
        st["pricing"] = json!({
            "billable": p.billable,
            "pricing_model": "PMP",
            "category": p.category,
            "type": if p.billable { "regular" } else { "free_customer_service" },
        });
    }
    if let Some((code, title, details)) = error {
        st["errors"] = json!([{
            "code": code,
            "title": title,
            "message": title,
            "error_data": { "details": details },
            "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/",
        }]);
    }
    let mut value =
        json!({ "messaging_product": "whatsapp", "metadata": metadata(n), "statuses": [st] });
    if let Some(c) = to {
        value["contacts"] = json!([contact(c)]);
    }
    envelope(&n.waba_id, "messages", value, None)
}

/// Where the channel's webhooks go: `<base>/webhooks/{key}`.
async fn target(
    state: &AppState,
    ctx: &TenantCtx,
    channel: ChannelId,
) -> anyhow_lite::Result<(url::Url, secrecy::SecretString)> {
    let mut tx = state.store().begin_read(ctx).await?;
    let creds = tx.channel_credentials(channel).await?;
    let key = tx.channel_webhook_key(channel).await?;
    tx.commit().await?;
    let secret = creds
        .app_secret
        .ok_or_else(|| anyhow_lite::msg("the channel has no app secret"))?;
    let base = state
        .settings()
        .simulator
        .webhook_base_url
        .clone()
        .unwrap_or_else(|| state.auth().base_url.clone());
    let url = base.join(&format!("webhooks/{}", key.expose_secret()))?;
    Ok((url, secret))
}

/// Posts one webhook body and waits until it is acknowledged (200) or the attempts are
/// used up. Returns whether it was acknowledged.
pub(crate) async fn deliver(
    state: &AppState,
    ctx: &TenantCtx,
    channel: ChannelId,
    payload: &Value,
) -> bool {
    let body = payload.to_string().into_bytes();
    let (url, secret) = match target(state, ctx, channel).await {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, channel = %channel, "simulator: no webhook target");
            return false;
        }
    };
    let signature = frontdesk_whatsapp::sign_meta(secret.expose_secret().as_bytes(), &body);
    let settings = &state.settings().simulator;
    let mut wait = settings.retry_initial;
    for attempt in 1..=settings.max_attempts.max(1) {
        let r = state
            .sim_http()
            .post(url.clone())
            .header("content-type", "application/json")
            .header("x-hub-signature-256", &signature)
            .body(body.clone())
            .send()
            .await;
        match r {
            Ok(resp) if resp.status() == reqwest::StatusCode::OK => return true,
            Ok(resp) => {
                tracing::info!(attempt, status = resp.status().as_u16(), channel = %channel, "simulator: webhook not acknowledged; will retry")
            }
            Err(e) => {
                tracing::info!(attempt, error = %e.without_url(), channel = %channel, "simulator: webhook not delivered; will retry")
            }
        }
        if attempt < settings.max_attempts {
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(std::time::Duration::from_secs(300));
        }
    }
    tracing::warn!(channel = %channel, attempts = settings.max_attempts, "simulator: gave up on a webhook");
    false
}

/// Delivers in the background (the caller answers at once, as Meta does).
pub(crate) fn spawn_deliver(state: &AppState, ctx: &TenantCtx, channel: ChannelId, payload: Value) {
    let (state, ctx) = (state.clone(), ctx.clone());
    tokio::spawn(async move {
        deliver(&state, &ctx, channel, &payload).await;
    });
}

/// A small error type for the background work above: a message, logged, never answered.
mod anyhow_lite {
    pub(crate) type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

    pub(crate) fn msg(m: &str) -> Box<dyn std::error::Error + Send + Sync> {
        m.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use frontdesk_store::{SimCustomerId, SimNumber};
    use frontdesk_whatsapp::{Event, MessageKind, parse_meta};

    fn number() -> SimNumber {
        SimNumber {
            channel_id: ChannelId::new(),
            phone_number_id: "123456789012345".into(),
            waba_id: "987654321098765".into(),
            display_number: "+1 555 0134 5678".into(),
            verified_name: "Clinic".into(),
            send_rate_limit: None,
            created_ms: 0,
        }
    }

    fn customer(phone: Option<&str>) -> SimCustomer {
        SimCustomer {
            id: SimCustomerId::new(),
            channel_id: ChannelId::new(),
            name: "Asha".into(),
            phone: phone.map(str::to_owned),
            bsuid: "US.13491208655302741918".into(),
            username: phone.is_none().then(|| "asha.k".to_owned()),
            last_inbound_ms: None,
            created_ms: 0,
        }
    }

    #[test]
    fn inbound_payloads_round_trip_through_the_parser() {
        let n = number();
        for c in [customer(Some("919876543210")), customer(None)] {
            let (payload, _) = inbound_message(
                &n,
                &c,
                "wamid.X",
                1_750_000_000,
                json!({ "type": "text", "text": { "body": "hi" } }),
            );
            let text = payload.to_string();
            assert_eq!(text.contains("\"wa_id\""), c.phone.is_some());
            assert_eq!(text.contains("\"from\""), c.phone.is_some());
            let events = parse_meta(text.as_bytes()).unwrap();
            let Event::Message(m) = &events[0] else {
                panic!("{events:?}")
            };
            assert_eq!(m.kind, MessageKind::Text { body: "hi".into() });
            assert_eq!(m.from.bsuid.as_ref().unwrap().as_str(), c.bsuid);
            assert_eq!(m.from.phone.is_some(), c.phone.is_some());
            assert_eq!(m.number.phone_number_id, n.phone_number_id);
        }
    }
}
