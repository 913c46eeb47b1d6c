//! The WhatsApp simulator over real HTTP on both backends: provisioning, the fake Graph
//! API (tokens, validation, window, rate, media, templates) and the customer phone pages,
//! with every webhook captured by a small server, its signature checked with
//! `verify_meta` and its body parsed with `parse_meta`.

mod common;

use common::TestApp;
use common::simulator::{Capture, SimChannel, first_message, first_status, multipart};
use common::users::{ApiUser, WebSession};
use frontdesk_server::ServerSettings;
use frontdesk_store::both_backends;
use frontdesk_store::testing::TestDb;
use frontdesk_whatsapp::webhook::{Event, MessageKind};
use frontdesk_whatsapp::{DeliveryStatus, parse_meta, verify_meta};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;

struct Sim {
    app: TestApp,
    capture: Capture,
    admin: ApiUser,
    web: WebSession,
}

async fn sim(db: TestDb) -> Sim {
    let capture = Capture::start().await;
    let mut settings = ServerSettings::default();
    settings.simulator.webhook_base_url = Some(capture.url.clone());
    settings.simulator.retry_initial = Duration::from_millis(50);
    let app = TestApp::spawn_with(db, settings, None, Duration::from_secs(10)).await;
    let admin = app.signup("Sim clinic", "admin@sim.example").await;
    let web = app.web_login(&admin.email, common::users::PASSWORD).await;
    Sim {
        app,
        capture,
        admin,
        web,
    }
}

impl Sim {
    /// Adds a fake customer on the phone page; returns its id.
    async fn customer(&self, ch: &SimChannel, name: &str, phone: &str, username: &str) -> String {
        self.app
            .sim_customer(&self.web, &ch.id, name, phone, username)
            .await
    }

    /// The customer sends a form from the phone page.
    async fn customer_sends(&self, customer: &str, fields: &[(&str, &str)]) {
        self.app
            .sim_customer_sends(&self.web, customer, fields)
            .await
    }

    /// Waits for a webhook, checks its signature and path, and parses it.
    async fn webhook(
        &self,
        ch: &SimChannel,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> (Value, Vec<Event>) {
        let r = self.capture.wait_for(what, pred).await;
        assert_eq!(r.path, format!("/webhooks/{}", ch.webhook_key));
        verify_meta(ch.app_secret.as_bytes(), &r.body, r.signature.as_deref())
            .unwrap_or_else(|e| panic!("{what}: signature {e}"));
        let events = parse_meta(&r.body).unwrap();
        (r.json(), events)
    }

    async fn send(&self, ch: &SimChannel, body: Value) -> (StatusCode, Value) {
        self.app
            .graph_call(
                Method::POST,
                &format!("/{}/messages", ch.phone_number_id),
                Some(&ch.access_token),
                Some(body),
            )
            .await
    }
}

fn text_to(to: &str, body: &str) -> Value {
    json!({ "messaging_product": "whatsapp", "recipient_type": "individual", "to": to, "type": "text", "text": { "body": body } })
}

fn assert_meta_error(s: StatusCode, v: &Value, status: u16, code: i64) {
    assert_eq!(
        (s.as_u16(), v["error"]["code"].as_i64()),
        (status, Some(code)),
        "{v}"
    );
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{v}"
    );
    assert!(
        v["error"]["type"].is_string() && v["error"]["fbtrace_id"].is_string(),
        "{v}"
    );
}

fn has_text(body: &'static str) -> impl Fn(&Value) -> bool {
    move |v| first_message(v)["text"]["body"] == body
}

fn has_status(wamid: String, status: &'static str) -> impl Fn(&Value) -> bool {
    move |v| first_status(v)["id"] == wamid.as_str() && first_status(v)["status"] == status
}

both_backends! {
    async fn provisioning_answers_the_channel_and_never_a_secret(db) {
        let s = sim(db).await;
        let ch = s.app.provision_sim(&s.admin, "Front desk (simulated)", None).await;
        let a = &ch.answer;
        assert_eq!(a["simulated"], true);
        assert_eq!(a["provider"], "cloud");
        assert_eq!(a["api_version"], "v23.0");
        assert_eq!(a["api_base_url"].as_str().unwrap(), s.app.url("/simulator/graph"));
        assert_eq!(a["throughput_mps"], 80);
        assert!(ch.phone_number_id.len() == 15 && ch.phone_number_id.bytes().all(|b| b.is_ascii_digit()));
        assert!(a["display_number"].as_str().unwrap().starts_with("+1 555 01"), "{a}");
        let text = a.to_string();
        for secret in [&ch.access_token, &ch.app_secret, &ch.webhook_key] {
            assert!(!text.contains(secret.as_str()), "a secret in the answer: {text}");
        }
        assert_eq!(a["app_secret"]["configured"], true);
        // The phone number's info, through the fake Graph API with the stored token.
        let (st, info) = s.app.graph_call(Method::GET, &format!("/{}", ch.phone_number_id), Some(&ch.access_token), None).await;
        assert_eq!(st, StatusCode::OK, "{info}");
        assert_eq!(info["verified_name"], "Front desk (simulated)");
        assert_eq!(info["display_phone_number"], a["display_number"]);
        assert_eq!(info["throughput"]["level"], "HIGH");
        let (_, some) = s.app.graph_call(Method::GET, &format!("/{}?fields=quality_rating", ch.phone_number_id), Some(&ch.access_token), None).await;
        assert_eq!(some, json!({ "id": ch.phone_number_id, "quality_rating": "GREEN" }));
        // The page lists it.
        let page = s.app.web_get(&s.web, "/simulator").await.text().await.unwrap();
        assert!(page.contains(&ch.phone_number_id), "the simulator page lists the number");
        // An agent may not connect numbers.
        let agent = s.app.add_member(&s.admin, "agent@sim.example", "agent").await;
        let (st, _) = s.app.api(Method::POST, "/api/v1/channels/simulator", Some(&agent.access), Some(json!({ "name": "x" }))).await;
        assert_eq!(st, StatusCode::FORBIDDEN);
    }
}

both_backends! {
    async fn the_graph_api_wants_the_numbers_own_token(db) {
        let s = sim(db).await;
        let ch = s.app.provision_sim(&s.admin, "A", None).await;
        let other_org = s.app.signup("Other clinic", "admin@other.example").await;
        let other = s.app.provision_sim(&other_org, "B", None).await;
        let path = format!("/{}/messages", ch.phone_number_id);
        let body = text_to("15550001111", "hi");
        let (st, v) = s.app.graph_call(Method::POST, &path, None, Some(body.clone())).await;
        assert_meta_error(st, &v, 401, 190);
        let (st, v) = s.app.graph_call(Method::POST, &path, Some("EAASnot-a-real-token"), Some(body.clone())).await;
        assert_meta_error(st, &v, 401, 190);
        // Another organisation's valid token cannot reach this number.
        let (st, v) = s.app.graph_call(Method::POST, &path, Some(&other.access_token), Some(body.clone())).await;
        assert_meta_error(st, &v, 400, 100);
        assert_eq!(v["error"]["error_subcode"], 33);
        let (st, v) = s.app.graph_call(Method::GET, &format!("/{}", ch.phone_number_id), Some(&other.access_token), None).await;
        assert_meta_error(st, &v, 400, 100);
        // The right token is accepted (an unknown number: accepted, then failed async).
        let (st, v) = s.app.graph_call(Method::POST, &path, Some(&ch.access_token), Some(body)).await;
        assert_eq!(st, StatusCode::OK, "{v}");
    }
}

both_backends! {
    async fn invalid_bodies_get_metas_errors(db) {
        let s = sim(db).await;
        let ch = s.app.provision_sim(&s.admin, "A", None).await;
        let (st, v) = s.send(&ch, json!({ "to": "15550001111", "type": "text", "text": { "body": "x" } })).await;
        assert_meta_error(st, &v, 400, 100);
        assert!(v["error"]["message"].as_str().unwrap().contains("messaging_product"), "{v}");
        let (st, v) = s.send(&ch, text_to("15550001111", &"x".repeat(4097))).await;
        assert_meta_error(st, &v, 400, 131009);
        assert_eq!(v["error"]["error_data"]["messaging_product"], "whatsapp");
        assert!(v["error"]["error_data"]["details"].as_str().unwrap().contains("4096"), "{v}");
        let (st, v) = s.send(&ch, json!({ "messaging_product": "whatsapp", "to": "15550001111", "type": "interactive", "interactive": { "type": "button", "body": { "text": "Pick" }, "action": { "buttons": [1, 2, 3, 4] } } })).await;
        assert_meta_error(st, &v, 400, 131009);
        let (st, v) = s.send(&ch, json!({ "messaging_product": "whatsapp", "type": "text", "text": { "body": "x" } })).await;
        assert_meta_error(st, &v, 400, 100);
        let r = s.app.client.post(s.app.graph(&format!("/{}/messages", ch.phone_number_id)))
            .bearer_auth(&ch.access_token).header("content-type", "application/json").body("{not json").send().await.unwrap();
        let st = r.status();
        assert_meta_error(st, &r.json().await.unwrap(), 400, 131009);
        let (st, v) = s.app.graph_call(Method::POST, "/123/messages", Some(&ch.access_token), Some(text_to("15550001111", "x"))).await;
        assert_meta_error(st, &v, 400, 100);
        let r = s.app.client.post(s.app.url(&format!("/simulator/graph/latest/{}/messages", ch.phone_number_id)))
            .bearer_auth(&ch.access_token).json(&text_to("15550001111", "x")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    }
}

both_backends! {
    async fn a_phone_customer_chats_and_every_status_is_signed(db) {
        let s = sim(db).await;
        let ch = s.app.provision_sim(&s.admin, "A", None).await;
        let customer = s.customer(&ch, "Asha", "+91 98765 43210", "").await;
        // Outside the window before the customer ever wrote.
        let (st, v) = s.send(&ch, text_to("919876543210", "hello?")).await;
        assert_meta_error(st, &v, 400, 131047);

        s.customer_sends(&customer, &[("kind", "text"), ("body", "Is the clinic open today?")]).await;
        let (raw, events) = s.webhook(&ch, "the customer's text", has_text("Is the clinic open today?")).await;
        let Event::Message(m) = &events[0] else { panic!("{events:?}") };
        assert_eq!(m.kind, MessageKind::Text { body: "Is the clinic open today?".into() });
        assert_eq!(m.from.phone.as_ref().unwrap().as_str(), "+919876543210");
        assert!(m.from.bsuid.as_ref().unwrap().as_str().starts_with("IN."));
        assert_eq!(m.from.name.as_deref(), Some("Asha"));
        assert_eq!(m.number.phone_number_id, ch.phone_number_id);
        assert_eq!(m.number.waba_id, ch.waba_id);
        let inbound_wamid = m.id.clone();
        assert_eq!(first_message(&raw)["from"], "919876543210");

        // Mark as read.
        let (st, v) = s.send(&ch, json!({ "messaging_product": "whatsapp", "status": "read", "message_id": inbound_wamid })).await;
        assert_eq!((st, v.clone()), (StatusCode::OK, json!({ "success": true })), "{v}");

        // The business answers inside the window, quoting the customer.
        let mut body = text_to("+91 98765 43210", "Yes, until 6 pm.");
        body["context"] = json!({ "message_id": inbound_wamid });
        let (st, v) = s.send(&ch, body).await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(v["messaging_product"], "whatsapp");
        assert_eq!(v["contacts"][0]["input"], "+91 98765 43210");
        assert_eq!(v["contacts"][0]["wa_id"], "919876543210");
        let wamid = v["messages"][0]["id"].as_str().unwrap().to_owned();
        assert!(wamid.starts_with("wamid."));
        for status in ["sent", "delivered"] {
            let (raw, events) = s.webhook(&ch, status, has_status(wamid.clone(), status)).await;
            let Event::Status(st) = &events[0] else { panic!("{events:?}") };
            assert_eq!(st.id, wamid);
            assert_eq!(st.recipient.phone.as_ref().unwrap().as_str(), "+919876543210");
            assert_eq!(st.category.as_deref(), Some("service"));
            assert_eq!(st.pricing_model.as_deref(), Some("PMP"));
            assert_eq!(raw["entry"][0]["changes"][0]["value"]["contacts"][0]["wa_id"], "919876543210");
        }
        // The phone shows it: ticks on the page, and `read` once shown.
        let page = s.app.web_get(&s.web, &format!("/simulator/customers/{customer}")).await.text().await.unwrap();
        assert!(page.contains(&format!("data-wamid=\"{wamid}\"")), "the business's message is on the phone");
        assert!(page.contains("class=\"sim-msg in\""), "{page}");
        assert!(page.contains("class=\"sim-msg out\""));
        let r = s.app.client.post(s.app.url(&format!("/api/v1/simulator/customers/{customer}/seen")))
            .header("cookie", format!("{}={}", s.web.cookie_name, s.web.cookie))
            .header("x-csrf-token", &s.web.csrf).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.json::<Value>().await.unwrap()["read"], 1);
        let (_, events) = s.webhook(&ch, "read", has_status(wamid.clone(), "read")).await;
        let Event::Status(st) = &events[0] else { panic!() };
        assert_eq!(st.status, DeliveryStatus::Read);
        let chat: Value = s.app.client.get(s.app.url(&format!("/api/v1/simulator/customers/{customer}/messages")))
            .header("cookie", format!("{}={}", s.web.cookie_name, s.web.cookie)).send().await.unwrap().json().await.unwrap();
        let statuses: Vec<&str> = chat["messages"].as_array().unwrap().iter().map(|m| m["status"].as_str().unwrap()).collect();
        assert_eq!(statuses, ["read", "read"], "the customer's message was marked read, ours was read: {chat}");

        // 25 hours later the window is closed again.
        s.app.advance(25 * 3600);
        let (st, v) = s.send(&ch, text_to("919876543210", "Still there?")).await;
        assert_meta_error(st, &v, 400, 131047);
        assert!(v["error"]["error_data"]["details"].as_str().unwrap().contains("24 hours"));
    }
}

both_backends! {
    async fn a_username_only_customer_has_no_phone_anywhere(db) {
        let s = sim(db).await;
        let ch = s.app.provision_sim(&s.admin, "A", None).await;
        let customer = s.customer(&ch, "Sam", "", "@sam.w").await;
        s.customer_sends(&customer, &[("kind", "text"), ("body", "hi from a username")]).await;
        let (raw, events) = s.webhook(&ch, "the username customer's text", has_text("hi from a username")).await;
        let value = &raw["entry"][0]["changes"][0]["value"];
        assert!(value["contacts"][0].get("wa_id").is_none(), "{raw}");
        assert!(first_message(&raw).get("from").is_none(), "{raw}");
        assert_eq!(value["contacts"][0]["profile"]["username"], "sam.w");
        let Event::Message(m) = &events[0] else { panic!() };
        assert_eq!(m.from.phone, None);
        let bsuid = m.from.bsuid.as_ref().unwrap().as_str().to_owned();
        assert_eq!(first_message(&raw)["from_user_id"], bsuid.as_str());
        assert_eq!(m.from.username.as_deref(), Some("sam.w"));
        // The business answers by BSUID.
        let (st, v) = s.send(&ch, json!({ "messaging_product": "whatsapp", "recipient": bsuid, "type": "text", "text": { "body": "Hello Sam" } })).await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(v["contacts"][0]["user_id"], bsuid.as_str());
        assert!(v["contacts"][0].get("wa_id").is_none(), "{v}");
        let wamid = v["messages"][0]["id"].as_str().unwrap().to_owned();
        let (raw, events) = s.webhook(&ch, "delivered", has_status(wamid, "delivered")).await;
        assert!(first_status(&raw).get("recipient_id").is_none(), "{raw}");
        let Event::Status(st) = &events[0] else { panic!() };
        assert_eq!(st.recipient.phone, None);
        assert_eq!(st.recipient.bsuid.as_ref().unwrap().as_str(), bsuid);
    }
}

both_backends! {
    async fn over_the_configured_rate_is_130429(db) {
        let s = sim(db).await;
        let ch = s.app.provision_sim(&s.admin, "A", Some(2)).await;
        let customer = s.customer(&ch, "Asha", "+14155550100", "").await;
        s.customer_sends(&customer, &[("kind", "text"), ("body", "hi")]).await;
        let mut codes = Vec::new();
        for i in 0..3 {
            let (st, v) = s.send(&ch, text_to("14155550100", &format!("reply {i}"))).await;
            codes.push(if st == StatusCode::OK { 0 } else { v["error"]["code"].as_i64().unwrap() });
        }
        assert_eq!(codes, [0, 0, 130429], "two per second are accepted, the third is refused");
        // A second later the number accepts again.
        s.app.advance(2);
        let (st, v) = s.send(&ch, text_to("14155550100", "later")).await;
        assert_eq!(st, StatusCode::OK, "{v}");
    }
}

both_backends! {
    async fn an_unknown_number_fails_with_131026(db) {
        let s = sim(db).await;
        let ch = s.app.provision_sim(&s.admin, "A", None).await;
        let (st, v) = s.send(&ch, text_to("4915112345678", "anyone?")).await;
        assert_eq!(st, StatusCode::OK, "accepted first, as Meta does: {v}");
        let wamid = v["messages"][0]["id"].as_str().unwrap().to_owned();
        let (_, events) = s.webhook(&ch, "failed", has_status(wamid, "failed")).await;
        let Event::Status(st) = &events[0] else { panic!() };
        assert_eq!(st.status, DeliveryStatus::Failed);
        assert_eq!(st.errors[0].code, 131026);
        assert_eq!(st.recipient.phone.as_ref().unwrap().as_str(), "+4915112345678");
    }
}

both_backends! {
    async fn media_uploads_download_with_the_same_sha256(db) {
        use base64::Engine;
        use sha2::Digest;
        let s = sim(db).await;
        let ch = s.app.provision_sim(&s.admin, "A", None).await;
        let png: Vec<u8> = b"\x89PNG\r\n\x1a\n-simulated-image-bytes-".iter().copied().cycle().take(3000).collect();
        let (ctype, body) = multipart(&[
            ("messaging_product", None, None, b"whatsapp"),
            ("type", None, None, b"image/png"),
            ("file", Some("scan.png"), Some("image/png"), &png),
        ]);
        let upload = |token: Option<String>, ctype: String, body: Vec<u8>| {
            let mut r = s.app.client.post(s.app.graph(&format!("/{}/media", ch.phone_number_id))).header("content-type", ctype).body(body);
            if let Some(t) = token { r = r.bearer_auth(t); }
            r.send()
        };
        let r = upload(None, ctype.clone(), body.clone()).await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let r = upload(Some(ch.access_token.clone()), ctype, body).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
        let (st, info) = s.app.graph_call(Method::GET, &format!("/{id}"), Some(&ch.access_token), None).await;
        assert_eq!(st, StatusCode::OK, "{info}");
        let expected = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(&png));
        assert_eq!(info["sha256"], expected.as_str());
        assert_eq!(info["file_size"], png.len());
        assert_eq!(info["mime_type"], "image/png");
        assert_eq!(info["messaging_product"], "whatsapp");
        let url = info["url"].as_str().unwrap();
        let r = s.app.client.get(url).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "the URL needs the token");
        let r = s.app.client.get(url).bearer_auth(&ch.access_token).send().await.unwrap();
        assert_eq!(r.headers()["content-type"], "image/png");
        let bytes = r.bytes().await.unwrap();
        assert_eq!(base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(&bytes)), expected);
        // Types and sizes are limited.
        let (ctype, body) = multipart(&[
            ("messaging_product", None, None, b"whatsapp"),
            ("file", Some("x.exe"), Some("application/x-msdownload"), b"MZ"),
        ]);
        let r = upload(Some(ch.access_token.clone()), ctype, body).await.unwrap();
        let st = r.status();
        assert_meta_error(st, &r.json().await.unwrap(), 400, 131053);

        // A photo from the phone arrives as Meta sends media: id and sha256, downloadable.
        let customer = s.customer(&ch, "Asha", "+14155550100", "").await;
        s.app.sim_customer_sends_photo(&s.web, &customer, &png, "my prescription").await;
        let (_, events) = s.webhook(&ch, "the photo", |v| first_message(v)["type"] == "image").await;
        let Event::Message(m) = &events[0] else { panic!() };
        let MessageKind::Media { media, .. } = &m.kind else { panic!("{:?}", m.kind) };
        assert_eq!(media.sha256.as_deref(), Some(expected.as_str()));
        assert_eq!(media.caption.as_deref(), Some("my prescription"));
        let (_, info) = s.app.graph_call(Method::GET, &format!("/{}", media.media_id), Some(&ch.access_token), None).await;
        assert_eq!(info["sha256"], expected.as_str());
    }
}

both_backends! {
    async fn templates_are_reviewed_and_reported_by_webhook(db) {
        let s = sim(db).await;
        let ch = s.app.provision_sim(&s.admin, "A", None).await;
        let path = format!("/{}/message_templates", ch.waba_id);
        let good = json!({ "name": "appointment_reminder", "language": "en_US", "category": "UTILITY", "components": [
            { "type": "BODY", "text": "Hello {{1}}, your appointment is at {{2}} today.", "example": { "body_text": [["Ana", "10:30"]] } }
        ] });
        let (st, v) = s.app.graph_call(Method::POST, &path, Some(&ch.access_token), Some(good.clone())).await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!((v["status"].as_str(), v["category"].as_str()), (Some("PENDING"), Some("UTILITY")));
        let id = v["id"].as_str().unwrap().to_owned();
        let (_, events) = s.webhook(&ch, "the approval", |v| v["entry"][0]["changes"][0]["field"] == "message_template_status_update").await;
        let Event::TemplateStatus(t) = &events[0] else { panic!("{events:?}") };
        assert_eq!((t.event.as_str(), t.template_id.as_str(), t.name.as_str()), ("APPROVED", id.as_str(), "appointment_reminder"));
        assert_eq!(t.waba_id, ch.waba_id);
        // The same name and language again is refused.
        let (st, v) = s.app.graph_call(Method::POST, &path, Some(&ch.access_token), Some(good)).await;
        assert_meta_error(st, &v, 400, 100);
        // A body ending in a variable is rejected.
        let bad = json!({ "name": "bad_reminder", "language": "en_US", "category": "MARKETING", "components": [{ "type": "BODY", "text": "Hi {{1}}", "example": { "body_text": [["Ana"]] } }] });
        let (st, _) = s.app.graph_call(Method::POST, &path, Some(&ch.access_token), Some(bad)).await;
        assert_eq!(st, StatusCode::OK);
        let (_, events) = s.webhook(&ch, "the rejection", |v| v["entry"][0]["changes"][0]["value"]["message_template_name"] == "bad_reminder").await;
        let Event::TemplateStatus(t) = &events[0] else { panic!() };
        assert_eq!((t.event.as_str(), t.reason.as_deref()), ("REJECTED", Some("INVALID_FORMAT")));
        let (_, list) = s.app.graph_call(Method::GET, &format!("{path}?status=APPROVED"), Some(&ch.access_token), None).await;
        assert_eq!(list["data"].as_array().unwrap().len(), 1, "{list}");
        assert_eq!(list["data"][0]["name"], "appointment_reminder");

        // An approved template reaches a customer who never wrote; a rejected one does not.
        s.customer(&ch, "Asha", "+14155550100", "").await;
        let template = |name: &str| json!({ "messaging_product": "whatsapp", "to": "14155550100", "type": "template", "template": { "name": name, "language": { "code": "en_US" },
            "components": [{ "type": "body", "parameters": [{ "type": "text", "text": "Asha" }, { "type": "text", "text": "11:15" }] }] } });
        let (st, v) = s.send(&ch, template("appointment_reminder")).await;
        assert_eq!(st, StatusCode::OK, "{v}");
        let wamid = v["messages"][0]["id"].as_str().unwrap().to_owned();
        let (_, events) = s.webhook(&ch, "the template's delivery", has_status(wamid, "delivered")).await;
        let Event::Status(st) = &events[0] else { panic!() };
        assert_eq!((st.category.as_deref(), st.billable), (Some("utility"), Some(true)));
        let (st, v) = s.send(&ch, template("bad_reminder")).await;
        assert_meta_error(st, &v, 404, 132001);
    }
}

both_backends! {
    async fn interactive_taps_come_back_as_replies_with_context(db) {
        let s = sim(db).await;
        let ch = s.app.provision_sim(&s.admin, "A", None).await;
        let customer = s.customer(&ch, "Asha", "+14155550100", "").await;
        s.customer_sends(&customer, &[("kind", "text"), ("body", "book me in")]).await;
        let (st, v) = s.send(&ch, json!({ "messaging_product": "whatsapp", "to": "14155550100", "type": "interactive", "interactive": {
            "type": "button", "body": { "text": "Which day?" }, "action": { "buttons": [
                { "type": "reply", "reply": { "id": "mon", "title": "Monday" } },
                { "type": "reply", "reply": { "id": "tue", "title": "Tuesday" } } ] } } })).await;
        assert_eq!(st, StatusCode::OK, "{v}");
        let wamid = v["messages"][0]["id"].as_str().unwrap().to_owned();
        let page = s.app.web_get(&s.web, &format!("/simulator/customers/{customer}")).await.text().await.unwrap();
        assert!(page.contains("data-reply-id=\"tue\""), "the buttons are tappable on the phone");
        // A made-up button is refused; the real one is sent with the message as context.
        let r = s.app.web_post(&s.web, &format!("/simulator/customers/{customer}/messages"),
            &[("kind", "button_reply"), ("reply_id", "wed"), ("reply_title", "Wednesday"), ("context", &wamid)]).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        s.customer_sends(&customer, &[("kind", "button_reply"), ("reply_id", "tue"), ("reply_title", "Tuesday"), ("context", &wamid)]).await;
        let (_, events) = s.webhook(&ch, "the tap", |v| first_message(v)["type"] == "interactive").await;
        let Event::Message(m) = &events[0] else { panic!() };
        assert_eq!(m.kind, MessageKind::ButtonReply { id: "tue".into(), title: "Tuesday".into() });
        assert_eq!(m.context.as_ref().unwrap().message_id.as_deref(), Some(wamid.as_str()));
        // Location and reaction.
        s.customer_sends(&customer, &[("kind", "location"), ("latitude", "52.52"), ("longitude", "13.405"), ("loc_name", "Home"), ("address", "")]).await;
        let (_, events) = s.webhook(&ch, "the location", |v| first_message(v)["type"] == "location").await;
        let Event::Message(m) = &events[0] else { panic!() };
        assert!(matches!(&m.kind, MessageKind::Location { latitude, name, .. } if (*latitude - 52.52).abs() < 1e-9 && name.as_deref() == Some("Home")));
        s.customer_sends(&customer, &[("kind", "reaction"), ("message_id", &wamid), ("emoji", "👍")]).await;
        let (_, events) = s.webhook(&ch, "the reaction", |v| first_message(v)["type"] == "reaction").await;
        let Event::Message(m) = &events[0] else { panic!() };
        assert_eq!(m.kind, MessageKind::Reaction { message_id: wamid.clone(), emoji: Some("👍".into()) });
    }
}

both_backends! {
    async fn an_unacknowledged_webhook_is_posted_again(db) {
        let s = sim(db).await;
        let ch = s.app.provision_sim(&s.admin, "A", None).await;
        let customer = s.customer(&ch, "Asha", "+14155550100", "").await;
        s.capture.fail_next(2);
        s.customer_sends(&customer, &[("kind", "text"), ("body", "are you there")]).await;
        s.webhook(&ch, "the retried text", has_text("are you there")).await;
        assert_eq!(s.capture.attempts(), 3, "two refusals, then the acknowledged one");
        assert_eq!(s.capture.all().len(), 1);
    }
}

both_backends! {
    async fn turned_off_the_simulator_answers_404(db) {
        let mut settings = ServerSettings::default();
        settings.simulator.enabled = false;
        let app = TestApp::spawn_with(db, settings, None, Duration::from_secs(10)).await;
        assert!(!app.routes.iter().any(|r| r.path.contains("simulator")));
        let admin = app.signup("Sim clinic", "admin@sim.example").await;
        // `/api/v1/channels/{channel_id}` still exists for other methods: POST is not allowed there.
        let (st, _) = app.api(Method::POST, "/api/v1/channels/simulator", Some(&admin.access), Some(json!({ "name": "x" }))).await;
        assert!([StatusCode::NOT_FOUND, StatusCode::METHOD_NOT_ALLOWED].contains(&st), "{st}");
        let (_, channels) = app.api(Method::GET, "/api/v1/channels", Some(&admin.access), None).await;
        assert_eq!(channels.as_array().map(Vec::len), Some(0), "no channel was connected: {channels}");
        let (st, _) = app.graph_call(Method::GET, "/123", Some("EAASx"), None).await;
        assert_eq!(st, StatusCode::NOT_FOUND);
        let web = app.web_login(&admin.email, common::users::PASSWORD).await;
        assert_eq!(app.web_get(&web, "/simulator").await.status(), StatusCode::NOT_FOUND);
    }
}
