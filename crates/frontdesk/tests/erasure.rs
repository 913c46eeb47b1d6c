//! Erasure on request, end to end on both backends: requests with the organisation's window
//! and delay (recorded, cancelled, executed by the worker when due), the raw webhook bodies
//! that named the contact redacted (other customers' parts kept), and the media bytes
//! deleted from disk unless another organisation still references the same blob.

mod common;

use common::TestApp;
use frontdesk_store::{InboxStatus, TenantCtx, WebhookTarget, both_backends};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const WABA: &str = "102290129340398";

/// An organisation with a Cloud channel (nothing listens at its Graph URL).
async fn org(app: &TestApp, slug: &str, pnid: &str) -> (WebhookTarget, String, String) {
    let admin = app
        .signup(&format!("Clinic {slug}"), &format!("admin@{slug}.example"))
        .await;
    let (s, v) = app
        .api(
            Method::POST,
            "/api/v1/channels",
            Some(&admin.access),
            Some(json!({
                "provider": "cloud", "name": "Front desk", "phone_number_id": pnid,
                "waba_id": WABA, "display_number": "+1 555-078-3881",
                "access_token": "EAAG-erasure-token", "app_secret": "erasure-app-secret", "verify_token": "erasure-verify",
                "api_base_url": "http://127.0.0.1:9",
            })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let url = v["webhook"]["callback_url"].as_str().unwrap();
    let key = url.rsplit('/').next().unwrap();
    let target = app.db.store.webhook_target(key).await.unwrap().unwrap();
    (target, admin.access, admin.email)
}

/// A fresh access token after the clock moved past the old one's life.
async fn relogin(app: &TestApp, email: &str) -> String {
    app.login(email, common::users::PASSWORD).await.access
}

/// One webhook body: Asha (with a photo) and Ben write in the same batch.
fn batch(pnid: &str, ts: &str) -> Value {
    json!({ "object": "whatsapp_business_account", "entry": [{ "id": WABA, "changes": [{ "field": "messages", "value": {
        "messaging_product": "whatsapp",
        "metadata": { "display_phone_number": "15550783881", "phone_number_id": pnid },
        "contacts": [
            { "wa_id": "919876543210", "profile": { "name": "Asha Rao" } },
            { "wa_id": "447700900123", "profile": { "name": "Ben Hale" } }
        ],
        "messages": [
            { "from": "919876543210", "id": "wamid.ASHA1", "timestamp": ts, "type": "text", "text": { "body": "my address is 5 Elm Street" } },
            { "from": "919876543210", "id": "wamid.ASHA2", "timestamp": ts, "type": "image", "image": { "id": "m-asha", "mime_type": "image/png" } },
            { "from": "447700900123", "id": "wamid.BEN1", "timestamp": ts, "type": "text", "text": { "body": "see you at ten" } }
        ]
    }}]}]})
}

async fn store_body(app: &TestApp, t: &WebhookTarget, body: &Value) {
    let bytes = serde_json::to_vec(body).unwrap();
    app.db
        .store
        .store_webhooks(&[(&t.ctx, t.channel, &bytes)])
        .await
        .unwrap();
}

/// The contact for a number, and the media of its messages on the channel.
async fn contact_by_phone(
    app: &TestApp,
    t: &WebhookTarget,
    phone: &str,
) -> (frontdesk_domain::ContactId, Vec<frontdesk_domain::MediaId>) {
    let mut tx = app.db.store.begin_read(&t.ctx).await.unwrap();
    let id = tx
        .find_contact(&frontdesk_store::CustomerIdentity {
            phone: Some(frontdesk_domain::E164::parse(phone).unwrap()),
            ..Default::default()
        })
        .await
        .unwrap()
        .expect("the contact");
    let conv = tx
        .find_conversation(t.channel, id)
        .await
        .unwrap()
        .expect("a conversation");
    let media = tx
        .conversation_messages(conv.id, 50)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|m| m.media_id)
        .collect();
    (id, media)
}

/// Stores `bytes` in the blob store and points the media row at them (as a download would).
async fn stored(
    app: &TestApp,
    ctx: &TenantCtx,
    media: frontdesk_domain::MediaId,
    bytes: &[u8],
) -> String {
    let sha = app.worker.blobs().put(bytes).unwrap();
    let mut tx = app.db.store.begin(ctx).await.unwrap();
    tx.media_stored(media, &sha, bytes.len() as i64, "image/png")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    sha
}

fn blob_path(app: &TestApp, sha: &str) -> std::path::PathBuf {
    app.worker.blobs().root().join(&sha[..2]).join(&sha[2..])
}

/// Makes a blob look written an hour ago (older than the collector's grace time).
fn age(app: &TestApp, sha: &str) {
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(blob_path(app, sha))
        .unwrap()
        .set_modified(old)
        .unwrap();
}

both_backends! {
    async fn a_delayed_request_waits_can_be_cancelled_and_then_erases_bodies_and_unshared_bytes(db) {
        let app = TestApp::spawn(db).await;
        let (a, mut a_token, a_email) = org(&app, "erase-a", "106540352242922").await;
        let (b, _, _) = org(&app, "erase-b", "106540352242933").await;
        let ts = time::OffsetDateTime::now_utc().unix_timestamp().to_string();
        store_body(&app, &a, &batch("106540352242922", &ts)).await;
        app.drain().await;
        let (asha, asha_media) = contact_by_phone(&app, &a, "+919876543210").await;
        assert_eq!(asha_media.len(), 1, "Asha's photo has a media row");
        let (ben, _) = contact_by_phone(&app, &a, "+447700900123").await;

        // Asha's photo, bytes of hers alone; a second file of hers whose bytes org B also
        // holds (content-addressed: one blob on disk for both).
        let own = stored(&app, &a.ctx, asha_media[0], b"\x89PNG asha's own rash photo").await;
        let shared_bytes: &[u8] = b"%PDF clinic leaflet everyone gets";
        let shared = app.worker.blobs().put(shared_bytes).unwrap();
        let mut tx = app.db.store.begin(&a.ctx).await.unwrap();
        let inbound = tx.record_inbound(a.channel, asha, &frontdesk_store::InboundRecord {
            provider_message_id: "wamid.ASHA3".into(), kind: "document".into(), content: "{}".into(),
            preview: "leaflet".into(), reply_to: None, provider_at: frontdesk_store::now_micros(),
            media: Some(frontdesk_store::NewMedia { provider_media_id: "m-leaflet".into(), mime_type: Some("application/pdf".into()), sha256: None, filename: Some("leaflet.pdf".into()) }),
        }).await.unwrap();
        tx.commit().await.unwrap();
        let frontdesk_store::Inbound::New { media: Some(leaflet), .. } = inbound else { panic!("a new message with media") };
        let mut tx = app.db.store.begin(&a.ctx).await.unwrap();
        tx.media_stored(leaflet, &shared, shared_bytes.len() as i64, "application/pdf").await.unwrap();
        tx.commit().await.unwrap();
        let mut tx = app.db.store.begin(&b.ctx).await.unwrap();
        tx.insert_upload(b.channel, &frontdesk_store::UploadedFile {
            blob_sha256: shared.clone(), size_bytes: shared_bytes.len() as i64,
            mime_type: "application/pdf".into(), filename: Some("leaflet.pdf".into()),
        }).await.unwrap();
        tx.commit().await.unwrap();
        age(&app, &own);
        age(&app, &shared);

        // The organisation waits two hours before erasing (a window of 7 days).
        let (s, v) = app.api(Method::PUT, "/api/v1/audience/erasure-settings", Some(&a_token), Some(json!({ "window_days": 7, "delay_hours": 2 }))).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let (s, v) = app.api(Method::PUT, "/api/v1/audience/erasure-settings", Some(&a_token), Some(json!({ "window_days": 1, "delay_hours": 25 }))).await;
        assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_fields")), "{v}");
        assert!(v["error"]["message"].as_str().unwrap().contains("delay_hours"), "{v}");

        // Requested, then cancelled while pending: nothing erased.
        let (s, first) = app.api(Method::POST, &format!("/api/v1/contacts/{asha}/erase"), Some(&a_token), None).await;
        assert_eq!((s, first["state"].as_str()), (StatusCode::ACCEPTED, Some("pending")), "{first}");
        let requested = time::OffsetDateTime::parse(first["requested_at"].as_str().unwrap(), &time::format_description::well_known::Rfc3339).unwrap();
        let due = time::OffsetDateTime::parse(first["due_by"].as_str().unwrap(), &time::format_description::well_known::Rfc3339).unwrap();
        let runs = time::OffsetDateTime::parse(first["execute_at"].as_str().unwrap(), &time::format_description::well_known::Rfc3339).unwrap();
        assert_eq!((due - requested, runs - requested), (time::Duration::days(7), time::Duration::hours(2)));
        let (s, v) = app.api(Method::POST, &format!("/api/v1/contacts/{asha}/erase"), Some(&a_token), None).await;
        assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("erasure_pending")), "{v}");
        let (_, pending) = app.api(Method::GET, &format!("/api/v1/erasure-requests?pending=true&contact_id={asha}"), Some(&a_token), None).await;
        assert_eq!(pending.as_array().unwrap().len(), 1, "{pending}");
        let id = first["id"].as_str().unwrap();
        let (s, v) = app.api(Method::POST, &format!("/api/v1/erasure-requests/{id}/cancel"), Some(&a_token), None).await;
        assert_eq!((s, v["state"].as_str()), (StatusCode::OK, Some("cancelled")), "{v}");
        let (s, v) = app.api(Method::POST, &format!("/api/v1/erasure-requests/{id}/cancel"), Some(&a_token), None).await;
        assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("erasure_not_pending")), "{v}");
        app.advance(3 * 3600);
        app.drain().await;
        a_token = relogin(&app, &a_email).await;
        let (_, c) = app.api(Method::GET, &format!("/api/v1/contacts/{asha}"), Some(&a_token), None).await;
        assert!(c["erased_at"].is_null() && c["phone"] == "+919876543210", "a cancelled request erases nothing: {c}");

        // Requested again: pending until its time, then the worker executes it.
        let (s, second) = app.api(Method::POST, &format!("/api/v1/contacts/{asha}/erase"), Some(&a_token), None).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{second}");
        app.advance(3600);
        app.drain().await;
        a_token = relogin(&app, &a_email).await;
        let (_, c) = app.api(Method::GET, &format!("/api/v1/contacts/{asha}"), Some(&a_token), None).await;
        assert!(c["erased_at"].is_null(), "not yet due: {c}");
        app.advance(3600 + 60);
        app.drain().await;
        a_token = relogin(&app, &a_email).await;
        let (_, c) = app.api(Method::GET, &format!("/api/v1/contacts/{asha}"), Some(&a_token), None).await;
        assert!(c["erased_at"].is_string() && c["phone"].is_null(), "{c}");
        let (_, all) = app.api(Method::GET, &format!("/api/v1/erasure-requests?contact_id={asha}"), Some(&a_token), None).await;
        let done = all.as_array().unwrap().iter().find(|r| r["id"] == second["id"]).unwrap();
        assert_eq!(done["state"], "done", "{all}");
        assert_eq!((done["report"]["messages"].as_i64(), done["report"]["media"].as_i64(), done["report"]["webhook_bodies"].as_i64()), (Some(3), Some(2), Some(1)), "{done}");
        assert!(done["report"].get("blobs").is_none(), "blob names are not shown");

        // The raw body keeps Ben's message and loses Asha's parts.
        let bodies = app.db.store.inbox_where(&a.ctx, Some(InboxStatus::Processed), 10).await.unwrap();
        assert_eq!(bodies.len(), 1);
        let text = String::from_utf8(bodies[0].body.clone()).unwrap();
        for gone in ["919876543210", "Asha", "5 Elm Street", "wamid.ASHA1", "m-asha"] {
            assert!(!text.contains(gone), "{gone} still in {text}");
        }
        for kept in ["447700900123", "Ben Hale", "see you at ten"] {
            assert!(text.contains(kept), "{kept} lost from {text}");
        }
        // A provider retry of the original body is still a duplicate: it brings nothing back.
        store_body(&app, &a, &batch("106540352242922", &ts)).await;
        app.drain().await;
        assert_eq!(app.db.store.inbox_where(&a.ctx, None, 10).await.unwrap().len(), 1);

        // Asha's own bytes are gone from disk; the leaflet org B still references stays.
        assert!(!blob_path(&app, &own).exists(), "the erased contact's photo is deleted");
        assert_eq!(app.worker.blobs().get(&shared).unwrap().as_deref(), Some(shared_bytes), "a blob another organisation references survives");
        let (_, ben_view) = app.api(Method::GET, &format!("/api/v1/contacts/{ben}"), Some(&a_token), None).await;
        assert_eq!(ben_view["phone"], "+447700900123", "{ben_view}");

        let (_, audit) = app.api(Method::GET, "/api/v1/audit-events?limit=100", Some(&a_token), None).await;
        let actions: Vec<&str> = audit["events"].as_array().unwrap().iter().filter_map(|e| e["action"].as_str()).collect();
        for a in ["erasure.settings_changed", "erasure.requested", "erasure.cancelled", "erasure.executed", "contact.erased"] {
            assert!(actions.contains(&a), "{a} in {actions:?}");
        }
        assert!(!audit.to_string().contains("Asha"), "the audit log holds no personal data");
    }

    async fn the_pages_show_pending_requests_cancel_them_and_keep_refused_settings(db) {
        let app = TestApp::spawn(db).await;
        let (a, _, email) = org(&app, "erase-pages", "106540352242955").await;
        let ts = time::OffsetDateTime::now_utc().unix_timestamp().to_string();
        store_body(&app, &a, &batch("106540352242955", &ts)).await;
        app.drain().await;
        let (asha, _) = contact_by_phone(&app, &a, "+919876543210").await;
        let web = app.web_login(&email, common::users::PASSWORD).await;

        // A refused setting comes back with the message and what was typed.
        let r = app.web_post(&web, "/contacts/settings/erasure", &[("window_days", "2"), ("delay_hours", "49")]).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let page = r.text().await.unwrap();
        assert!(page.contains("data-testid=\"error-erasure\"") && page.contains("the delay must end within the window"), "{page}");
        assert!(page.contains("value=\"49\""), "the typed delay is kept");
        let r = app.web_post(&web, "/contacts/settings/erasure", &[("window_days", "30"), ("delay_hours", "24")]).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);

        // The button records a request; the contact page shows it with a cancel button.
        let r = app.web_post(&web, &format!("/contacts/{asha}/erase"), &[]).await;
        assert_eq!(r.headers()["location"], format!("/contacts/{asha}?ok=erasure_requested"));
        let page = app.web_get(&web, &format!("/contacts/{asha}")).await.text().await.unwrap();
        assert!(page.contains("data-testid=\"erasure-pending\"") && page.contains("data-testid=\"erasure-cancel\""), "{page}");
        assert!(!page.contains("data-testid=\"erase-form\""), "no second request while one is pending");
        let cancel = page.split("data-testid=\"erasure-cancel\"").next().unwrap();
        let action = cancel.rsplit("action=\"").next().unwrap().split('"').next().unwrap().to_owned();
        let r = app.web_post(&web, &action, &[]).await;
        assert_eq!(r.headers()["location"], format!("/contacts/{asha}?ok=erasure_cancelled"));
        let page = app.web_get(&web, &format!("/contacts/{asha}")).await.text().await.unwrap();
        assert!(page.contains("data-testid=\"erase-form\"") && page.contains(">cancelled<"), "{page}");
    }

    async fn by_default_erasure_runs_at_once_and_the_sweep_deletes_only_unreferenced_blobs(db) {
        let app = TestApp::spawn(db).await;
        let (a, a_token, _) = org(&app, "sweep-a", "106540352242944").await;
        let ts = time::OffsetDateTime::now_utc().unix_timestamp().to_string();
        store_body(&app, &a, &batch("106540352242944", &ts)).await;
        app.drain().await;
        let (asha, media) = contact_by_phone(&app, &a, "+919876543210").await;
        let (ben, ben_media) = contact_by_phone(&app, &a, "+447700900123").await;
        assert!(ben_media.is_empty());
        let own = stored(&app, &a.ctx, media[0], b"\x89PNG only asha").await;
        let orphan = app.worker.blobs().put(b"an upload whose row never committed").unwrap();
        let fresh_orphan = app.worker.blobs().put(b"an upload still in flight").unwrap();
        age(&app, &own);
        age(&app, &orphan);

        let (_, settings) = app.api(Method::GET, "/api/v1/audience/erasure-settings", Some(&a_token), None).await;
        assert_eq!(settings, json!({ "window_days": 30, "delay_hours": 0 }));
        let (s, r) = app.api(Method::POST, &format!("/api/v1/contacts/{asha}/erase"), Some(&a_token), None).await;
        assert_eq!((s, r["state"].as_str()), (StatusCode::OK, Some("done")), "{r}");
        assert_eq!(r["report"]["media"], 1, "{r}");
        let (_, c) = app.api(Method::GET, &format!("/api/v1/contacts/{asha}"), Some(&a_token), None).await;
        assert!(c["erased_at"].is_string(), "{c}");

        // The erasure's own blob (written an hour ago) is collected right after it ran.
        for _ in 0..100 {
            if !blob_path(&app, &own).exists() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(!blob_path(&app, &own).exists(), "the erased contact's photo is deleted");
        // The hourly sweep: every other unreferenced blob older than the grace time goes.
        let swept = frontdesk_worker::blob::collect_garbage(&app.db.store, app.worker.blobs(), None, frontdesk_worker::BLOB_GRACE).await.unwrap();
        assert_eq!((swept.checked, swept.deleted, swept.recent), (2, 1, 1), "{swept:?}");
        assert!(!blob_path(&app, &orphan).exists());
        assert!(blob_path(&app, &fresh_orphan).exists(), "a blob written within the grace time stays");
        let (_, ben_view) = app.api(Method::GET, &format!("/api/v1/contacts/{ben}"), Some(&a_token), None).await;
        assert!(ben_view["erased_at"].is_null());
    }
    async fn a_pending_request_survives_a_merge_and_erases_the_merged_contact_and_its_linked_ids(db) {
        let app = TestApp::spawn(db).await;
        let (a, mut token, email) = org(&app, "erase-merge", "106540352242966").await;
        let (s, v) = app.api(Method::PUT, "/api/v1/audience/erasure-settings", Some(&token), Some(json!({ "window_days": 7, "delay_hours": 2 }))).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let ts = time::OffsetDateTime::now_utc().unix_timestamp().to_string();
        let value = |contacts: Value, messages: Value| json!({ "object": "whatsapp_business_account", "entry": [{ "id": WABA, "changes": [{ "field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": { "display_phone_number": "15550783881", "phone_number_id": "106540352242966" },
            "contacts": contacts, "messages": messages }}]}]});
        // Lee writes first by number; later a message known only by Lee's user id makes a
        // second contact (WhatsApp hid the number).
        store_body(&app, &a, &value(json!([{ "wa_id": "14155550100", "profile": { "name": "Lee Park" } }]),
            json!([{ "from": "14155550100", "id": "wamid.LEE1", "timestamp": ts, "type": "text", "text": { "body": "my first visit" } }]))).await;
        app.drain().await;
        store_body(&app, &a, &value(json!([{ "user_id": "US.1234567890123", "profile": { "name": "Lee Park" } }]),
            json!([{ "from_user_id": "US.1234567890123", "id": "wamid.LEE2", "timestamp": ts, "type": "text", "text": { "body": "the rash again" } }]))).await;
        app.drain().await;
        let (by_phone, _) = contact_by_phone(&app, &a, "+14155550100").await;
        let mut tx = app.db.store.begin_read(&a.ctx).await.unwrap();
        let by_id = tx.find_contact(&frontdesk_store::CustomerIdentity {
            bsuid: Some(frontdesk_domain::Bsuid::parse("US.1234567890123").unwrap()), ..Default::default()
        }).await.unwrap().expect("the user-id contact");
        tx.commit().await.unwrap();
        assert_ne!(by_phone, by_id, "two contacts before the merge");

        // Lee asks to be erased, through the user-id contact; it waits two hours.
        let (s, req) = app.api(Method::POST, &format!("/api/v1/contacts/{by_id}/erase"), Some(&token), None).await;
        assert_eq!((s, req["state"].as_str()), (StatusCode::ACCEPTED, Some("pending")), "{req}");
        // Meanwhile a message carries both the number and the user id: the contacts merge
        // into the older one (by number), and the request goes with them.
        store_body(&app, &a, &value(json!([{ "wa_id": "14155550100", "user_id": "US.1234567890123", "profile": { "name": "Lee Park" } }]),
            json!([{ "from": "14155550100", "from_user_id": "US.1234567890123", "id": "wamid.LEE3", "timestamp": ts, "type": "text", "text": { "body": "both ids now" } }]))).await;
        app.drain().await;
        let (s, _) = app.api(Method::GET, &format!("/api/v1/contacts/{by_id}"), Some(&token), None).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "the user-id contact was merged away");
        let (_, pending) = app.api(Method::GET, &format!("/api/v1/erasure-requests?pending=true&contact_id={by_phone}"), Some(&token), None).await;
        let pending = pending.as_array().unwrap();
        assert_eq!(pending.len(), 1, "{pending:?}");
        assert_eq!((pending[0]["id"].as_str(), pending[0]["execute_at"].as_str()), (req["id"].as_str(), req["execute_at"].as_str()), "the same request, same time");
        let (s, v) = app.api(Method::POST, &format!("/api/v1/contacts/{by_phone}/erase"), Some(&token), None).await;
        assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("erasure_pending")), "{v}");

        // Once due, the merged contact is erased: the number, the user id and every body.
        app.advance(2 * 3600 + 60);
        app.drain().await;
        token = relogin(&app, &email).await;
        let (_, c) = app.api(Method::GET, &format!("/api/v1/contacts/{by_phone}"), Some(&token), None).await;
        assert!(c["erased_at"].is_string() && c["phone"].is_null(), "{c}");
        let (_, done) = app.api(Method::GET, &format!("/api/v1/erasure-requests?contact_id={by_phone}"), Some(&token), None).await;
        assert_eq!(done[0]["state"], "done", "{done}");
        assert_eq!(done[0]["report"]["messages"], 3, "the messages of both contacts: {done}");
        for b in app.db.store.inbox_where(&a.ctx, None, 10).await.unwrap() {
            let text = String::from_utf8(b.body).unwrap();
            for gone in ["14155550100", "US.1234567890123", "Lee Park", "rash", "first visit", "both ids"] {
                assert!(!text.contains(gone), "{gone} still in {text}");
            }
        }
        let (_, audit) = app.api(Method::GET, "/api/v1/audit-events?limit=100", Some(&token), None).await;
        let actions: Vec<&str> = audit["events"].as_array().unwrap().iter().filter_map(|e| e["action"].as_str()).collect();
        assert!(actions.contains(&"contact.merged") && actions.contains(&"erasure.carried_over") && actions.contains(&"erasure.executed"), "{actions:?}");
    }

    async fn two_pending_requests_of_merged_contacts_become_one_that_runs_at_the_earlier_time(db) {
        let app = TestApp::spawn(db).await;
        let (a, token, _) = org(&app, "erase-fold", "106540352242977").await;
        let ts = time::OffsetDateTime::now_utc().unix_timestamp().to_string();
        let value = |contacts: Value, messages: Value| json!({ "object": "whatsapp_business_account", "entry": [{ "id": WABA, "changes": [{ "field": "messages", "value": {
            "metadata": { "display_phone_number": "15550783881", "phone_number_id": "106540352242977" },
            "contacts": contacts, "messages": messages }}]}]});
        store_body(&app, &a, &value(json!([{ "wa_id": "14155550100" }]),
            json!([{ "from": "14155550100", "id": "wamid.F1", "timestamp": ts, "type": "text", "text": { "body": "one" } }]))).await;
        app.drain().await;
        store_body(&app, &a, &value(json!([{ "user_id": "US.1234567890123" }]),
            json!([{ "from_user_id": "US.1234567890123", "id": "wamid.F2", "timestamp": ts, "type": "text", "text": { "body": "two" } }]))).await;
        app.drain().await;
        let (by_phone, _) = contact_by_phone(&app, &a, "+14155550100").await;
        let mut tx = app.db.store.begin_read(&a.ctx).await.unwrap();
        let by_id = tx.find_contact(&frontdesk_store::CustomerIdentity {
            bsuid: Some(frontdesk_domain::Bsuid::parse("US.1234567890123").unwrap()), ..Default::default()
        }).await.unwrap().unwrap();
        tx.commit().await.unwrap();
        // The user-id contact's request runs in 1 hour, the number's in 5.
        app.api(Method::PUT, "/api/v1/audience/erasure-settings", Some(&token), Some(json!({ "window_days": 7, "delay_hours": 1 }))).await;
        let (_, early) = app.api(Method::POST, &format!("/api/v1/contacts/{by_id}/erase"), Some(&token), None).await;
        app.api(Method::PUT, "/api/v1/audience/erasure-settings", Some(&token), Some(json!({ "window_days": 2, "delay_hours": 5 }))).await;
        let (_, late) = app.api(Method::POST, &format!("/api/v1/contacts/{by_phone}/erase"), Some(&token), None).await;
        assert_eq!((early["state"].as_str(), late["state"].as_str()), (Some("pending"), Some("pending")));
        store_body(&app, &a, &value(json!([{ "wa_id": "14155550100", "user_id": "US.1234567890123" }]),
            json!([{ "from": "14155550100", "from_user_id": "US.1234567890123", "id": "wamid.F3", "timestamp": ts, "type": "text", "text": { "body": "three" } }]))).await;
        app.drain().await;
        let (_, all) = app.api(Method::GET, &format!("/api/v1/erasure-requests?contact_id={by_phone}"), Some(&token), None).await;
        let all = all.as_array().unwrap();
        assert_eq!(all.len(), 2, "both requests are kept on the merged contact: {all:?}");
        let pending: Vec<&Value> = all.iter().filter(|r| r["state"] == "pending").collect();
        assert_eq!(pending.len(), 1, "{all:?}");
        assert_eq!(pending[0]["id"], early["id"], "the earlier one survives");
        assert_eq!(pending[0]["due_by"], late["due_by"], "with the earlier deadline");
        let folded = all.iter().find(|r| r["id"] == late["id"]).unwrap();
        assert_eq!((folded["state"].as_str(), folded["cancelled_by"].as_str()), (Some("cancelled"), Some("system:contact_merge")), "{folded}");
    }
}
