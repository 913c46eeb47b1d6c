//! The worker on both backends: stored webhook bodies become contacts, conversations,
//! messages, statuses, template and number records, idempotently; bodies it cannot read stay
//! in the inbox, failed, with the reason.

mod common;

use common::TestApp;
use frontdesk_store::testing::TestDb;
use frontdesk_store::{InboxStatus, MessageStatus, WebhookTarget, both_backends};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const PHONE_NUMBER_ID: &str = "106540352242922";
const WABA: &str = "102290129340398";

/// An organisation with a Cloud channel (nothing listens at its Graph URL).
async fn setup(db: TestDb) -> (TestApp, WebhookTarget, String) {
    let app = TestApp::spawn(db).await;
    let admin = app.signup("Worker Clinic", "admin@worker.example").await;
    let (s, v) = app
        .api(
            Method::POST,
            "/api/v1/channels",
            Some(&admin.access),
            Some(json!({
                "provider": "cloud", "name": "Front desk", "phone_number_id": PHONE_NUMBER_ID,
                "waba_id": WABA, "display_number": "+1 555-078-3881",
                "access_token": "EAAG-worker-token", "app_secret": "worker-app-secret", "verify_token": "worker-verify",
                "api_base_url": "http://127.0.0.1:9",
            })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let url = v["webhook"]["callback_url"].as_str().unwrap();
    let key = url.rsplit('/').next().unwrap();
    let target = app.db.store.webhook_target(key).await.unwrap().unwrap();
    (app, target, admin.access)
}

fn envelope(field: &str, value: Value) -> Value {
    json!({ "object": "whatsapp_business_account", "entry": [{ "id": WABA, "changes": [{ "field": field, "value": value }] }] })
}

fn messages(contacts: Value, messages: Value) -> Value {
    envelope(
        "messages",
        json!({ "messaging_product": "whatsapp",
                "metadata": { "display_phone_number": "15550783881", "phone_number_id": PHONE_NUMBER_ID },
                "contacts": contacts, "messages": messages }),
    )
}

fn statuses(list: Value) -> Value {
    envelope(
        "messages",
        json!({ "messaging_product": "whatsapp",
                "metadata": { "display_phone_number": "15550783881", "phone_number_id": PHONE_NUMBER_ID },
                "statuses": list }),
    )
}

async fn store(app: &TestApp, t: &WebhookTarget, body: &Value) {
    let bytes = serde_json::to_vec(body).unwrap();
    app.db
        .store
        .store_webhooks(&[(&t.ctx, t.channel, &bytes)])
        .await
        .unwrap();
}

fn now_secs() -> String {
    time::OffsetDateTime::now_utc().unix_timestamp().to_string()
}

/// Every inbound type Meta documents, in one body from one customer.
fn every_type(ts: &str) -> Value {
    let kinds = vec![
        json!({ "type": "text", "text": { "body": "Do you open on Sunday?" } }),
        json!({ "type": "image", "image": { "id": "m1", "mime_type": "image/jpeg", "sha256": "abc=", "caption": "rash" } }),
        json!({ "type": "audio", "audio": { "id": "m2", "mime_type": "audio/ogg", "voice": true } }),
        json!({ "type": "video", "video": { "id": "m3", "mime_type": "video/mp4" } }),
        json!({ "type": "document", "document": { "id": "m4", "filename": "report.pdf", "mime_type": "application/pdf" } }),
        json!({ "type": "sticker", "sticker": { "id": "m5", "animated": false, "mime_type": "image/webp" } }),
        json!({ "type": "location", "location": { "latitude": 19.07, "longitude": 72.87, "name": "Clinic" } }),
        json!({ "type": "contacts", "contacts": [{ "name": { "formatted_name": "Dr X" }, "phones": [{ "phone": "+91 99" }] }] }),
        json!({ "type": "interactive", "interactive": { "type": "button_reply", "button_reply": { "id": "yes", "title": "Yes" } } }),
        json!({ "type": "interactive", "interactive": { "type": "list_reply", "list_reply": { "id": "r1", "title": "Tue", "description": "10:00" } } }),
        json!({ "type": "interactive", "interactive": { "type": "nfm_reply", "nfm_reply": { "name": "flow", "body": "Sent", "response_json": "{\"a\":1}" } } }),
        json!({ "type": "button", "button": { "payload": "CONFIRM", "text": "Confirm" } }),
        json!({ "type": "reaction", "reaction": { "message_id": "wamid.T0", "emoji": "👍" } }),
        json!({ "type": "order", "order": { "catalog_id": "c1", "text": "for me", "product_items": [{ "product_retailer_id": "p1", "quantity": 1, "item_price": 10, "currency": "INR" }] } }),
        json!({ "type": "system", "system": { "type": "user_changed_number", "body": "changed", "new_wa_id": "919800000000" } }),
        json!({ "type": "unsupported", "errors": [{ "code": 131051, "title": "Message type unknown" }] }),
        json!({ "type": "text", "text": { "body": "about this" }, "context": { "from": "15550783881", "id": "wamid.T0" } }),
        json!({ "type": "text", "text": { "body": "from an ad" }, "referral": { "source_url": "https://fb.me/x", "source_type": "ad", "source_id": "1" } }),
        json!({ "type": "hologram", "hologram": { "x": 1 } }),
    ];
    let msgs: Vec<Value> = kinds
        .into_iter()
        .enumerate()
        .map(|(i, mut m)| {
            m["from"] = json!("919876543210");
            m["id"] = json!(format!("wamid.T{i}"));
            m["timestamp"] = json!(ts);
            m
        })
        .collect();
    messages(
        json!([{ "wa_id": "919876543210", "profile": { "name": "Asha" } }]),
        Value::Array(msgs),
    )
}

both_backends! {
    async fn every_inbound_type_is_stored_once_whatever_the_retries(db) {
        let (app, t, _) = setup(db).await;
        let ts = now_secs();
        store(&app, &t, &every_type(&ts)).await;
        // Meta retries with the same body (stored once) and may send the same messages again
        // in another body: nothing changes the second time.
        store(&app, &t, &every_type(&ts)).await;
        let mut again = every_type(&ts);
        again["entry"][0]["id"] = json!("  ");
        store(&app, &t, &again).await;
        app.drain().await;

        let mut tx = app.db.store.begin_read(&t.ctx).await.unwrap();
        let contact = tx.find_contact(&frontdesk_store::CustomerIdentity { phone: Some(frontdesk_domain::E164::parse("+919876543210").unwrap()), ..Default::default() }).await.unwrap().expect("the contact");
        let conv = tx.find_conversation(t.channel, contact).await.unwrap().expect("a conversation");
        let msgs = tx.conversation_messages(conv.id, 100).await.unwrap();
        let kinds: Vec<&str> = msgs.iter().map(|m| m.kind.as_str()).collect();
        assert_eq!(kinds, ["text", "image", "audio", "video", "document", "sticker", "location", "contacts", "button_reply", "list_reply", "flow_reply", "template_button", "reaction", "order", "system", "unsupported", "text", "text", "hologram"]);
        assert!(msgs.iter().all(|m| m.status == MessageStatus::Received && m.direction == "in"));
        assert_eq!(msgs[16].reply_to.as_deref(), Some("wamid.T0"), "a reply keeps what it quotes");
        assert_eq!(msgs[12].reply_to.as_deref(), Some("wamid.T0"), "a reaction names its message");
        assert_eq!(msgs[17].content["referral"]["source_type"], "ad", "the whole message is kept");
        assert_eq!(msgs[1].preview, "rash");
        assert_eq!(conv.unread, 18, "reactions are not unread messages");
        assert!(conv.last_inbound_at.is_some());
        let c = tx.contact(contact).await.unwrap();
        assert_eq!(c.profile_name.as_deref(), Some("Asha"));
        // Five media files wait for download (nothing listens at the Graph URL: they retry).
        let media = tx.media(msgs[1].media_id.unwrap()).await.unwrap();
        assert_eq!((media.provider_media_id.as_deref(), media.mime_type.as_deref()), (Some("m1"), Some("image/jpeg")));
        assert_eq!(media.status, "pending");
        tx.commit().await.unwrap();
        let processed = app.db.store.inbox_where(&t.ctx, Some(InboxStatus::Processed), 10).await.unwrap();
        assert_eq!(processed.len(), 2, "two distinct bodies, both processed");
    }

    async fn a_username_customer_is_merged_with_their_number_when_a_payload_links_them(db) {
        let (app, t, _) = setup(db).await;
        let ts = now_secs();
        store(&app, &t, &messages(
            json!([{ "user_id": "US.13491208655302741918", "profile": { "name": "Sam", "username": "sam.w" } }]),
            json!([{ "from_user_id": "US.13491208655302741918", "id": "wamid.U1", "timestamp": ts, "type": "text", "text": { "body": "hi, no number shown" } }]),
        )).await;
        store(&app, &t, &messages(
            json!([{ "wa_id": "14155550100", "profile": { "name": "Sam W" } }]),
            json!([{ "from": "14155550100", "id": "wamid.P1", "timestamp": ts, "type": "text", "text": { "body": "from my number" } }]),
        )).await;
        app.drain().await;
        // A status names both ids of the same person: the two contacts become one.
        store(&app, &t, &statuses(json!([{ "id": "wamid.none", "status": "sent", "timestamp": ts,
            "recipient_id": "14155550100", "recipient_user_id": "US.13491208655302741918" }]))).await;
        app.drain().await;
        let mut tx = app.db.store.begin(&t.ctx).await.unwrap();
        let by_id = tx.upsert_contact(&frontdesk_store::CustomerIdentity { bsuid: Some(frontdesk_domain::Bsuid::parse("US.13491208655302741918").unwrap()), ..Default::default() }).await.unwrap();
        let c = tx.contact(by_id).await.unwrap();
        assert_eq!(c.phone.as_deref(), Some("+14155550100"), "{c:?}");
        assert_eq!(c.username.as_deref(), Some("sam.w"));
        let conv = tx.find_conversation(t.channel, by_id).await.unwrap().unwrap();
        assert_eq!(tx.conversation_messages(conv.id, 10).await.unwrap().len(), 2);
        tx.commit().await.unwrap();
    }

    async fn statuses_applied_in_any_order_end_at_the_highest_and_keep_the_failure_reason(db) {
        let (app, t, admin) = setup(db).await;
        let ts = now_secs();
        store(&app, &t, &messages(
            json!([{ "wa_id": "919876543210", "profile": { "name": "Asha" } }]),
            json!([{ "from": "919876543210", "id": "wamid.IN", "timestamp": ts, "type": "text", "text": { "body": "hello" } }]),
        )).await;
        app.drain().await;
        let (s, sent) = app.api(Method::POST, "/api/v1/messages", Some(&admin), Some(json!({
            "channel_id": t.channel.to_string(), "to": { "phone": "+919876543210" }, "message": { "type": "text", "body": "Yes, 9 to 1." } }))).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{sent}");
        let id = frontdesk_domain::MessageId::parse(sent["id"].as_str().unwrap()).unwrap();
        // Pretend the provider took it (the dispatcher is tested against the simulator).
        let mut tx = app.db.store.begin(&t.ctx).await.unwrap();
        tx.finish_send(frontdesk_domain::OutboxId::new(), id, "wamid.OUT").await.unwrap();
        tx.commit().await.unwrap();
        store(&app, &t, &statuses(json!([
            { "id": "wamid.OUT", "status": "read", "timestamp": ts, "recipient_id": "919876543210" },
            { "id": "wamid.OUT", "status": "delivered", "timestamp": ts, "recipient_id": "919876543210" },
            { "id": "wamid.OUT", "status": "sent", "timestamp": ts, "recipient_id": "919876543210",
              "pricing": { "billable": false, "pricing_model": "PMP", "category": "service" } },
        ]))).await;
        app.drain().await;
        let (_, m) = app.api(Method::GET, &format!("/api/v1/messages/{id}"), Some(&admin), None).await;
        assert_eq!((m["status"].as_str(), m["pricing_category"].as_str()), (Some("read"), Some("service")), "{m}");
    }

    async fn unreadable_payloads_stay_failed_with_the_reason_and_template_and_quality_updates_apply(db) {
        let (app, t, admin) = setup(db).await;
        store(&app, &t, &json!({ "object": "whatsapp_business_account", "entry": "not a list" })).await;
        store(&app, &t, &envelope("message_template_status_update", json!({
            "event": "APPROVED", "message_template_id": 594425479261596_i64, "message_template_name": "appointment_reminder",
            "message_template_language": "en_US", "reason": "NONE", "message_template_category": "UTILITY" }))).await;
        store(&app, &t, &envelope("phone_number_quality_update", json!({
            "display_phone_number": "15550783881", "event": "FLAGGED", "current_limit": "TIER_10K" }))).await;
        app.drain().await;
        let failed = app.db.store.inbox_where(&t.ctx, Some(InboxStatus::Failed), 10).await.unwrap();
        assert_eq!(failed.len(), 1);
        assert!(failed[0].error.as_deref().is_some_and(|e| !e.is_empty()), "{failed:?}");
        let (_, listed) = app.api(Method::GET, "/api/v1/webhook-inbox?status=failed", Some(&admin), None).await;
        assert!(listed.to_string().contains("not a list"), "admins see the payload: {listed}");
        // Reprocessing after an "upgrade" that still cannot read it: failed again, nothing lost.
        let (s, _) = app.api(Method::POST, "/api/v1/webhook-inbox/retry", Some(&admin), None).await;
        assert!(s.is_success());
        app.drain().await;
        let failed = app.db.store.inbox_where(&t.ctx, Some(InboxStatus::Failed), 10).await.unwrap();
        assert_eq!((failed.len(), failed[0].attempts), (1, 2));

        let mut tx = app.db.store.begin_read(&t.ctx).await.unwrap();
        assert_eq!(tx.template_status(WABA, "appointment_reminder", "en_US").await.unwrap().as_deref(), Some("APPROVED"));
        let ch = tx.channel(t.channel).await.unwrap();
        assert_eq!((ch.quality_rating.as_deref(), ch.messaging_limit.as_deref()), (Some("RED"), Some("TIER_10K")));
        tx.commit().await.unwrap();
        // An approved template may be sent outside the window; a rejected one may not.
        let mut tx = app.db.store.begin(&t.ctx).await.unwrap();
        tx.set_template_status(&frontdesk_store::TemplateStatus { waba_id: WABA, name: "promo", language: "en", provider_template_id: None, status: "REJECTED", reason: Some("PROMOTIONAL"), category: None }).await.unwrap();
        tx.commit().await.unwrap();
        let send = |name: &str| json!({ "channel_id": t.channel.to_string(), "to": { "phone": "+919800000001" }, "message": { "type": "template", "name": name, "language": if name == "promo" { "en" } else { "en_US" } } });
        let (s, v) = app.api(Method::POST, "/api/v1/messages", Some(&admin), Some(send("appointment_reminder"))).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{v}");
        let (s, v) = app.api(Method::POST, "/api/v1/messages", Some(&admin), Some(send("promo"))).await;
        assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("template_not_approved")), "{v}");
        // Free-form text to someone who never wrote: refused before queuing.
        let (s, v) = app.api(Method::POST, "/api/v1/messages", Some(&admin), Some(json!({ "channel_id": t.channel.to_string(), "to": { "phone": "+919800000001" }, "message": { "type": "text", "body": "hi" } }))).await;
        assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("outside_service_window")), "{v}");
    }
}
