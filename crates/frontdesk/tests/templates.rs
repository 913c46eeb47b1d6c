//! Message templates over HTTP, on both backends, through the simulator: written here,
//! submitted, reviewed by the simulator's rule, approved or rejected by its webhook, sent
//! with variables to a phone that shows them filled in, tracked buttons counting clicks
//! behind our redirect, sync of templates made elsewhere, and the provider's quality and
//! category updates.

mod common;

use common::TestApp;
use common::simulator::SimChannel;
use common::users::{ApiUser, WebSession};
use frontdesk_store::both_backends;
use frontdesk_store::testing::TestDb;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;

const PHONE: &str = "+14155550100";
/// The first bytes of a PNG file, then some content: enough for the simulator's check.
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR sample pixels";

struct World {
    app: TestApp,
    admin: ApiUser,
    web: WebSession,
    ch: SimChannel,
}

async fn world(db: TestDb) -> World {
    let app = TestApp::spawn(db).await;
    let admin = app
        .signup("Template clinic", "admin@templates.example")
        .await;
    let web = app.web_login(&admin.email, common::users::PASSWORD).await;
    let ch = app.provision_sim(&admin, "Front desk", None).await;
    World {
        app,
        admin,
        web,
        ch,
    }
}

impl World {
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.app
            .api(method, path, Some(&self.admin.access), body)
            .await
    }

    async fn ok(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let (s, v) = self.call(method.clone(), path, body).await;
        assert!(s.is_success(), "{method} {path}: {s} {v}");
        v
    }

    /// Runs the worker until `check` holds (webhooks arrive over HTTP, asynchronously).
    async fn until<T>(&self, what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
        for _ in 0..600 {
            self.app.drain().await;
            if let Some(v) = check().await {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("timed out waiting for {what}");
    }

    async fn status_becomes(&self, id: &str, want: &str) -> Value {
        self.until(&format!("template {id} {want}"), async || {
            let t = self
                .ok(Method::GET, &format!("/api/v1/templates/{id}"), None)
                .await;
            (t["status"] == want).then_some(t)
        })
        .await
    }

    async fn create(&self, template: Value) -> (StatusCode, Value) {
        self.call(
            Method::POST,
            "/api/v1/templates",
            Some(json!({ "channel_id": self.ch.id, "template": template })),
        )
        .await
    }

    async fn send(&self, name: &str, fill: Option<Value>) -> (StatusCode, Value) {
        let mut body = json!({ "channel_id": self.ch.id, "to": { "phone": PHONE },
            "message": { "type": "template", "name": name, "language": "en_US" } });
        if let Some(f) = fill {
            body["fill"] = f;
        }
        self.call(Method::POST, "/api/v1/messages", Some(body))
            .await
    }

    /// The business's messages as the customer's phone shows them.
    async fn phone_texts(&self, customer: &str) -> Vec<String> {
        let v = self
            .app
            .api(
                Method::GET,
                &format!("/api/v1/simulator/customers/{customer}/messages"),
                Some(&self.admin.access),
                None,
            )
            .await
            .1;
        v["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["direction"] == "to_customer")
            .map(|m| m["text"].as_str().unwrap().to_owned())
            .collect()
    }

    /// Uploads a sample file for a media header (`POST /api/v1/templates/samples`).
    async fn upload_sample(
        &self,
        format: &str,
        mime: &str,
        name: &str,
        bytes: &[u8],
    ) -> (StatusCode, Value) {
        let (ctype, body) = common::simulator::multipart(&[
            ("channel_id", None, None, self.ch.id.as_bytes()),
            ("format", None, None, format.as_bytes()),
            ("file", Some(name), Some(mime), bytes),
        ]);
        let r = self
            .app
            .client
            .post(self.app.url("/api/v1/templates/samples"))
            .bearer_auth(&self.admin.access)
            .header("content-type", ctype)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// A Graph API call as Meta's Resumable Upload API takes it (`Authorization: OAuth`).
    async fn upload_call(
        &self,
        method: Method,
        path: &str,
        offset: Option<usize>,
        body: Vec<u8>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .app
            .client
            .request(method, self.app.graph(path))
            .header("authorization", format!("OAuth {}", self.ch.access_token));
        if let Some(o) = offset {
            req = req.header("file_offset", o.to_string());
        }
        let r = req.body(body).send().await.unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn post_webhook(&self, field: &str, value: Value) {
        let body = serde_json::to_vec(&json!({ "object": "whatsapp_business_account",
            "entry": [{ "id": self.ch.waba_id, "time": 1_750_000_000, "changes": [{ "field": field, "value": value }] }] }))
        .unwrap();
        let sig = frontdesk_whatsapp::sign_meta(self.ch.app_secret.as_bytes(), &body);
        let r = self
            .app
            .client
            .post(self.app.url(&format!("/webhooks/{}", self.ch.webhook_key)))
            .header("x-hub-signature-256", sig)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        self.app.drain().await;
    }
}

fn reminder() -> Value {
    json!({
        "name": "visit_reminder", "language": "en_US", "category": "UTILITY",
        "header": { "format": "text", "text": "Hi {{1}}", "example": "Ana" },
        "body": { "text": "Your visit is on {{1}} at {{2}}. Reply to change it.", "examples": ["Monday", "10:30"] },
        "footer": "Sunrise Clinic",
        "buttons": [
            { "type": "quick_reply", "text": "Confirm" },
            { "type": "url", "text": "Directions", "url": "https://maps.example/sunrise", "track": true }
        ]
    })
}

both_backends! {
    async fn an_approved_template_reaches_the_phone_filled_in_and_its_tracked_button_counts_clicks(db) {
        let w = world(db).await;
        let customer = w.app.sim_customer(&w.web, &w.ch.id, "Asha Rao", PHONE, "").await;

        // Rules are checked before anything is stored, field by field.
        let mut bad = reminder();
        bad["body"]["text"] = json!("{{1}} is your day, at {{3}}");
        bad["footer"] = json!("x".repeat(61));
        let (s, v) = w.create(bad).await;
        assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_template")), "{v}");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(msg.contains("body.text") && msg.contains("footer"), "{msg}");
        assert!(w.ok(Method::GET, "/api/v1/templates", None).await.as_array().unwrap().is_empty(), "nothing stored");

        let (s, t) = w.create(reminder()).await;
        assert_eq!(s, StatusCode::CREATED, "{t}");
        let id = t["id"].as_str().unwrap().to_owned();
        assert_eq!(t["status"], "DRAFT");
        assert_eq!(t["preview"], "Hi Ana\nYour visit is on Monday at 10:30. Reply to change it.\nSunrise Clinic\n[Confirm] [Directions]");
        assert_eq!(t["fill_fields"].as_array().unwrap().len(), 3, "{t}");
        let (s, v) = w.create(reminder()).await;
        assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("template_exists")));

        // A draft is not sendable.
        let (s, v) = w.send("visit_reminder", Some(json!({ "header": "Asha", "body": ["Tuesday", "9:00"] }))).await;
        assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("template_not_approved")), "{v}");

        // Submitted, reviewed by the simulator, approved by its webhook.
        let (s, v) = w.call(Method::POST, &format!("/api/v1/templates/{id}/submit"), None).await;
        assert_eq!((s, v["status"].as_str()), (StatusCode::ACCEPTED, Some("PENDING")), "{v}");
        let approved = w.status_becomes(&id, "APPROVED").await;
        assert!(approved["provider_template_id"].as_str().is_some_and(|p| !p.is_empty()), "{approved}");
        let listed = w.ok(Method::GET, "/api/v1/templates?status=APPROVED&category=UTILITY&language=en_US", None).await;
        assert_eq!(listed.as_array().unwrap().len(), 1);
        assert!(w.ok(Method::GET, "/api/v1/templates?status=REJECTED", None).await.as_array().unwrap().is_empty());

        // Values are checked against the template.
        let (s, v) = w.send("visit_reminder", Some(json!({ "header": "Asha", "body": ["Tuesday"] }))).await;
        assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_fill")), "{v}");

        let (s, m) = w.send("visit_reminder", Some(json!({ "header": "Asha", "body": ["Tuesday", "9:00"] }))).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{m}");
        assert!(m["preview"].as_str().unwrap().contains("Your visit is on Tuesday at 9:00."), "{m}");
        let message = m["id"].as_str().unwrap().to_owned();
        let text = w.until("the template on the phone", async || w.phone_texts(&customer).await.into_iter().find(|t| t.contains("Tuesday"))).await;
        assert!(text.starts_with("Hi Asha\nYour visit is on Tuesday at 9:00. Reply to change it.\nSunrise Clinic\n[Confirm] [Directions → "), "{text}");

        // The phone's button leads to our redirect, which counts the click and leads on.
        let link = text.split("[Directions → ").nth(1).unwrap().trim_end_matches(']').to_owned();
        let base = w.app.url("/r/");
        assert!(link.starts_with(&base) && link.len() > base.len() + 20, "{link}");
        for _ in 0..2 {
            let r = w.app.client.get(&link).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::FOUND);
            assert_eq!(r.headers()["location"], "https://maps.example/sunrise");
        }
        let r = w.app.client.get(format!("{link}x")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "a made-up code leads nowhere");
        let r = w.app.client.get(w.app.url("/r/https%3A%2F%2Fevil.example")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "no open redirect");
        let clicks = w.ok(Method::GET, &format!("/api/v1/messages/{message}/clicks"), None).await;
        assert_eq!((clicks[0]["clicks"].as_i64(), clicks[0]["button_index"].as_i64()), (Some(2), Some(1)), "{clicks}");
        let per_template = w.ok(Method::GET, &format!("/api/v1/templates/{id}/clicks"), None).await;
        assert_eq!(per_template.as_array().unwrap().len(), 1);
        let counted = w.ok(Method::GET, &format!("/api/v1/templates/{id}"), None).await;
        assert_eq!((counted["clicks"].as_i64(), counted["unique_clicks"].as_i64()), (Some(2), Some(1)), "two clicks by one recipient: {counted}");
        assert!(clicks[0]["first_clicked_at"].is_string(), "{clicks}");
        // The template's page shows the total and the clicks per message.
        let page = w.app.web_get(&w.web, &format!("/templates/{id}")).await.text().await.unwrap();
        assert!(page.contains(&message) && page.contains("data-testid=\"link-clicks\">2<"), "{page}");
        let list = w.app.web_get(&w.web, "/templates").await.text().await.unwrap();
        assert!(list.contains("data-testid=\"template-clicks\">2<"), "{list}");

        // An approved template's edit goes back to review and comes back approved.
        let mut edited = reminder();
        edited["footer"] = json!("Sunrise Clinic, Pune");
        let (s, v) = w.call(Method::PUT, &format!("/api/v1/templates/{id}"), Some(edited)).await;
        assert_eq!((s, v["status"].as_str()), (StatusCode::OK, Some("PENDING")), "{v}");
        let again = w.status_becomes(&id, "APPROVED").await;
        assert_eq!(again["content"]["footer"], "Sunrise Clinic, Pune");
        let mut renamed = reminder();
        renamed["name"] = json!("other_name");
        let (s, v) = w.call(Method::PUT, &format!("/api/v1/templates/{id}"), Some(renamed)).await;
        assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("template_identity_fixed")), "{v}");
    }

    async fn a_rejected_template_refuses_to_send_until_fixed_and_resubmitted(db) {
        let w = world(db).await;
        w.app.sim_customer(&w.web, &w.ch.id, "Asha Rao", PHONE, "").await;
        let mut promo = reminder();
        promo["name"] = json!("spring_offer");
        promo["body"]["text"] = json!("Our spring offer starts on {{1}} at {{2}}. Come early!");
        let id = w.create(promo.clone()).await.1["id"].as_str().unwrap().to_owned();
        w.ok(Method::POST, &format!("/api/v1/templates/{id}/submit"), None).await;
        let rejected = w.status_becomes(&id, "REJECTED").await;
        assert_eq!(rejected["reason"], "INCORRECT_CATEGORY", "{rejected}");
        let (s, v) = w.send("spring_offer", Some(json!({ "header": "Asha", "body": ["May 1", "9:00"] }))).await;
        assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("template_not_approved")), "{v}");
        assert!(v["error"]["message"].as_str().unwrap().contains("REJECTED"));
        // Unknown templates are refused as well: nothing is queued for them.
        let (s, v) = w.send("never_written", None).await;
        assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("template_not_approved")), "{v}");

        // Fixed (it is marketing) and submitted again: approved.
        promo["category"] = json!("MARKETING");
        let fixed = w.ok(Method::PUT, &format!("/api/v1/templates/{id}"), Some(promo.clone())).await;
        assert_eq!(fixed["status"], "REJECTED", "a rejected template's edit waits for submit");
        w.ok(Method::POST, &format!("/api/v1/templates/{id}/submit"), None).await;
        let approved = w.status_becomes(&id, "APPROVED").await;
        assert_eq!((approved["category"].as_str(), approved["reason"].as_str()), (Some("MARKETING"), None));
        let (s, v) = w.send("spring_offer", Some(json!({ "header": "Asha", "body": ["May 1", "9:00"] }))).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{v}");

        // Deleting it deletes it at the provider too (this language only), and makes it
        // unknown here: refused again.
        let mut other_language = promo.clone();
        other_language["language"] = json!("pt_BR");
        let pt = w.create(other_language).await.1["id"].as_str().unwrap().to_owned();
        w.ok(Method::POST, &format!("/api/v1/templates/{pt}/submit"), None).await;
        w.status_becomes(&pt, "APPROVED").await;
        let (s, _) = w.call(Method::DELETE, &format!("/api/v1/templates/{id}"), None).await;
        assert_eq!(s, StatusCode::NO_CONTENT);
        let (s, v) = w.send("spring_offer", Some(json!({ "header": "Asha", "body": ["May 1", "9:00"] }))).await;
        assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("template_not_approved")), "{v}");
        let target = w.app.db.store.webhook_target(&w.ch.webhook_key).await.unwrap().unwrap();
        let mut tx = w.app.db.store.begin_read(&target.ctx).await.unwrap();
        let channel = frontdesk_domain::ChannelId::parse(&w.ch.id).unwrap();
        assert!(tx.sim_template(channel, "spring_offer", "en_US").await.unwrap().is_none(), "gone at the provider");
        assert!(tx.sim_template(channel, "spring_offer", "pt_BR").await.unwrap().is_some(), "the other language stays");
        drop(tx);
        // A sync does not bring it back.
        let synced = w.ok(Method::POST, &format!("/api/v1/channels/{}/templates/sync", w.ch.id), None).await;
        assert_eq!(synced["created"], 0, "{synced}");
        // A template the provider no longer has is deleted here only when asked.
        let mut tx = w.app.db.store.begin(&target.ctx).await.unwrap();
        tx.delete_sim_templates(channel, "spring_offer", None).await.unwrap();
        tx.commit().await.unwrap();
        let (s, v) = w.call(Method::DELETE, &format!("/api/v1/templates/{pt}"), None).await;
        assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::BAD_GATEWAY, Some("provider_error")), "{v}");
        let (s, _) = w.call(Method::DELETE, &format!("/api/v1/templates/{pt}?local_only=true"), None).await;
        assert_eq!(s, StatusCode::NO_CONTENT);
    }

    async fn a_location_header_is_sent_with_the_place_and_the_phone_shows_the_pin(db) {
        let w = world(db).await;
        let customer = w.app.sim_customer(&w.web, &w.ch.id, "Asha Rao", PHONE, "").await;
        let (s, t) = w.create(json!({ "name": "find_us", "language": "en_US", "category": "UTILITY",
            "header": { "format": "location" },
            "body": { "text": "Your visit is on {{1}}. Tap the map for directions.", "examples": ["Monday"] } })).await;
        assert_eq!(s, StatusCode::CREATED, "{t}");
        let id = t["id"].as_str().unwrap().to_owned();
        let fields: Vec<&str> = t["fill_fields"].as_array().unwrap().iter().map(|f| f["field"].as_str().unwrap()).collect();
        assert_eq!(fields, ["location.latitude", "location.longitude", "location.name", "location.address", "body[0]"]);
        w.ok(Method::POST, &format!("/api/v1/templates/{id}/submit"), None).await;
        w.status_becomes(&id, "APPROVED").await;
        let sims = {
            let target = w.app.db.store.webhook_target(&w.ch.webhook_key).await.unwrap().unwrap();
            let mut tx = w.app.db.store.begin_read(&target.ctx).await.unwrap();
            tx.sim_template(frontdesk_domain::ChannelId::parse(&w.ch.id).unwrap(), "find_us", "en_US").await.unwrap().unwrap()
        };
        assert_eq!(sims.components[0], json!({ "type": "HEADER", "format": "LOCATION" }), "submitted as Meta expects");

        // The place is required and checked.
        let (s, v) = w.send("find_us", Some(json!({ "body": ["Tuesday"] }))).await;
        assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_fill")), "{v}");
        let (s, v) = w.send("find_us", Some(json!({ "body": ["Tuesday"], "location": { "latitude": 95.0, "longitude": 73.8 } }))).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        assert!(v["error"]["message"].as_str().unwrap().contains("location.latitude"), "{v}");

        let (s, m) = w.send("find_us", Some(json!({ "body": ["Tuesday"],
            "location": { "latitude": 18.5204, "longitude": 73.8567, "name": "Sunrise Clinic", "address": "12 FC Road, Pune" } }))).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{m}");
        assert!(m["preview"].as_str().unwrap().starts_with("[location: Sunrise Clinic, 12 FC Road, Pune]"), "{m}");
        let text = w.until("the pin on the phone", async || w.phone_texts(&customer).await.into_iter().find(|t| t.contains("Tuesday"))).await;
        assert_eq!(text, "[location: Sunrise Clinic, 12 FC Road, Pune]\nYour visit is on Tuesday. Tap the map for directions.");
    }

    async fn an_otp_template_is_submitted_in_metas_preset_format_and_delivers_the_code(db) {
        let w = world(db).await;
        let customer = w.app.sim_customer(&w.web, &w.ch.id, "Asha Rao", PHONE, "").await;
        let otp = json!({ "name": "login_otp", "language": "en_US", "category": "AUTHENTICATION",
            "otp": { "otp_type": "one_tap", "button_text": "Copy code", "autofill_text": "Autofill",
                     "supported_apps": [{ "package_name": "com.example.clinic", "signature_hash": "K8a/AINcGX7" }],
                     "add_security_recommendation": true, "code_expiration_minutes": 10 } });
        let mut bad = otp.clone();
        bad["otp"]["supported_apps"] = json!([]);
        bad["otp"]["code_expiration_minutes"] = json!(120);
        let (s, v) = w.create(bad).await;
        assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_template")), "{v}");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(msg.contains("otp.supported_apps") && msg.contains("otp.code_expiration_minutes"), "{msg}");

        let (s, t) = w.create(otp).await;
        assert_eq!(s, StatusCode::CREATED, "{t}");
        assert_eq!(t["preview"], "123456 is your verification code. For your security, do not share this code.\nThis code expires in 10 minutes.\n[Copy code]");
        let id = t["id"].as_str().unwrap().to_owned();
        w.ok(Method::POST, &format!("/api/v1/templates/{id}/submit"), None).await;
        w.status_becomes(&id, "APPROVED").await;
        let submitted = {
            let target = w.app.db.store.webhook_target(&w.ch.webhook_key).await.unwrap().unwrap();
            let mut tx = w.app.db.store.begin_read(&target.ctx).await.unwrap();
            tx.sim_template(frontdesk_domain::ChannelId::parse(&w.ch.id).unwrap(), "login_otp", "en_US").await.unwrap().unwrap()
        };
        assert_eq!(submitted.components[2]["buttons"][0]["otp_type"], "ONE_TAP", "{}", submitted.components);
        assert_eq!(submitted.components[2]["buttons"][0]["supported_apps"][0]["package_name"], "com.example.clinic");

        let (s, v) = w.send("login_otp", Some(json!({ "body": ["48 15"] }))).await;
        assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_fill")), "{v}");
        let (s, m) = w.send("login_otp", Some(json!({ "body": ["481516"] }))).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{m}");
        let text = w.until("the code on the phone", async || w.phone_texts(&customer).await.into_iter().find(|t| t.contains("481516"))).await;
        assert_eq!(text, "481516 is your verification code. For your security, do not share this code.\nThis code expires in 10 minutes.\n[Copy code]");
        // A sync reads it back as the same preset template.
        w.ok(Method::POST, &format!("/api/v1/channels/{}/templates/sync", w.ch.id), None).await;
        let again = w.ok(Method::GET, &format!("/api/v1/templates/{id}"), None).await;
        assert_eq!(again["content"]["otp"]["otp_type"], "one_tap", "{again}");
    }

    async fn named_variables_are_submitted_and_sent_by_name(db) {
        let w = world(db).await;
        let customer = w.app.sim_customer(&w.web, &w.ch.id, "Asha Rao", PHONE, "").await;
        let (s, t) = w.create(json!({ "name": "login_code", "language": "en_US", "category": "AUTHENTICATION",
            "body": { "text": "Hello {{first_name}}, your code is {{code}}. It expires soon.", "examples": ["Ana", "481516"] },
            "buttons": [{ "type": "copy_code", "example": "481516" }] })).await;
        assert_eq!(s, StatusCode::CREATED, "{t}");
        let id = t["id"].as_str().unwrap().to_owned();
        assert_eq!(t["fill_fields"][0]["label"], "{{first_name}}");
        w.ok(Method::POST, &format!("/api/v1/templates/{id}/submit"), None).await;
        w.status_becomes(&id, "APPROVED").await;
        let (s, v) = w.send("login_code", Some(json!({ "body": ["Ravi", "271828"], "buttons": { "0": "271828" } }))).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{v}");
        let sent = w.ok(Method::GET, &format!("/api/v1/messages/{}", v["id"].as_str().unwrap()), None).await;
        assert_eq!(sent["content"]["components"][0]["parameters"][1], json!({ "type": "text", "parameter_name": "code", "text": "271828" }), "{sent}");
        let text = w.until("the code on the phone", async || w.phone_texts(&customer).await.into_iter().next()).await;
        assert_eq!(text, "Hello Ravi, your code is 271828. It expires soon.\n[Copy code]");
    }

    async fn a_carousel_goes_out_card_by_card_with_a_tracked_link_per_card(db) {
        let w = world(db).await;
        let customer = w.app.sim_customer(&w.web, &w.ch.id, "Asha Rao", PHONE, "").await;
        let (s, sample) = w.upload_sample("image", "image/png", "kit.png", PNG).await;
        assert_eq!(s, StatusCode::CREATED, "{sample}");
        let sample = sample["id"].as_str().unwrap().to_owned();
        let card = |n: &str| json!({
            "header": { "format": "image", "sample": sample },
            "body": { "text": format!("The {n} kit, for {{{{1}}}} only."), "examples": ["10 dollars"] },
            "buttons": [{ "type": "url", "text": "Buy", "url": "https://shop.example/p/{{1}}", "example": "https://shop.example/p/1", "track": true }]
        });
        let (s, t) = w.create(json!({ "name": "spring_picks", "language": "en_US", "category": "MARKETING",
            "body": { "text": "Our spring picks for you, {{1}}:", "examples": ["Ana"] },
            "cards": [card("garden"), card("kitchen")] })).await;
        assert_eq!(s, StatusCode::CREATED, "{t}");
        let id = t["id"].as_str().unwrap().to_owned();
        w.ok(Method::POST, &format!("/api/v1/templates/{id}/submit"), None).await;
        w.status_becomes(&id, "APPROVED").await;
        let fill = json!({ "body": ["Asha"], "cards": [
            { "header": "https://img.example/g1.jpg", "body": ["12 dollars"], "buttons": { "0": "garden-kit" } },
            { "header": "https://img.example/k1.jpg", "body": ["15 dollars"], "buttons": { "0": "kitchen-kit" } } ] });
        let (s, v) = w.send("spring_picks", Some(fill)).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{v}");
        let text = w.until("the carousel on the phone", async || w.phone_texts(&customer).await.into_iter().next()).await;
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "Our spring picks for you, Asha:", "{text}");
        assert!(lines[1].starts_with("[card 1] [image] The garden kit, for 12 dollars only. [Buy → "), "{text}");
        assert!(lines[2].starts_with("[card 2] [image] The kitchen kit, for 15 dollars only. [Buy → "), "{text}");
        let link = lines[2].split("[Buy → ").nth(1).unwrap().trim_end_matches(']');
        let r = w.app.client.get(link).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::FOUND);
        assert_eq!(r.headers()["location"], "https://shop.example/p/kitchen-kit", "each card leads to its own ending");
        let clicks = w.ok(Method::GET, &format!("/api/v1/templates/{id}/clicks"), None).await;
        let by_card: Vec<(i64, i64)> = clicks.as_array().unwrap().iter().map(|l| (l["card_index"].as_i64().unwrap(), l["clicks"].as_i64().unwrap())).collect();
        assert!(by_card.contains(&(1, 1)) && by_card.contains(&(0, 0)), "{clicks}");
    }

    async fn a_queue_outside_the_window_sends_its_approved_template_filled_and_never_an_unapproved_one(db) {
        let mut w = world(db).await;
        let asha = w.app.sim_customer(&w.web, &w.ch.id, "Asha Rao", PHONE, "").await;
        let ravi = w.app.sim_customer(&w.web, &w.ch.id, "Ravi Das", "+14155550101", "").await;
        let come_in = w.create(json!({ "name": "queue_come_in", "language": "en", "category": "UTILITY",
            "body": { "text": "Token {{1}}, please come in now.", "examples": ["A-001"] } })).await.1;
        let id = come_in["id"].as_str().unwrap().to_owned();
        w.ok(Method::POST, &format!("/api/v1/templates/{id}/submit"), None).await;
        w.status_becomes(&id, "APPROVED").await;
        // Written but never submitted: a draft the queue must not send.
        w.create(json!({ "name": "queue_next", "language": "en", "category": "UTILITY",
            "body": { "text": "Token {{1}}, you are next.", "examples": ["A-002"] } })).await;
        let q = w.ok(Method::POST, "/api/v1/queues", Some(json!({ "channel_id": w.ch.id, "name": "Dr Rao", "keywords": ["JOIN"],
            "token_prefix": "A", "daily_cap": 50, "position_step": 0,
            "templates": { "come_in": { "name": "queue_come_in", "language": "en" }, "you_are_next": { "name": "queue_next", "language": "en" } } }))).await;
        let q = q["id"].as_str().unwrap().to_owned();
        for c in [&asha, &ravi] {
            w.app.sim_customer_sends(&w.web, c, &[("kind", "text"), ("body", "JOIN")]).await;
            w.until("the token", async || (w.phone_texts(c).await.len() == 1).then_some(())).await;
        }
        // A day later nobody's window is open: the queue's texts must be templates.
        w.app.advance(25 * 3600);
        w.admin = w.app.login(&w.admin.email, common::users::PASSWORD).await;
        w.ok(Method::POST, &format!("/api/v1/queues/{q}/call-next"), None).await;
        let texts = w.until("the come-in template", async || {
            let t = w.phone_texts(&asha).await;
            (t.len() == 2).then_some(t)
        }).await;
        assert_eq!(texts[1], "Token A-001, please come in now.");
        w.app.drain().await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        w.app.drain().await;
        assert_eq!(w.phone_texts(&ravi).await.len(), 1, "the draft template was not sent");
        // Refused before the outbox: Ravi's conversation has his JOIN and our answer only.
        let list = w.ok(Method::GET, "/api/v1/conversations?status=any&q=Ravi", None).await;
        let conv = list["items"][0]["id"].as_str().unwrap().to_owned();
        let view = w.ok(Method::GET, &format!("/api/v1/conversations/{conv}"), None).await;
        let kinds: Vec<&str> = view["messages"].as_array().unwrap().iter().map(|m| m["kind"].as_str().unwrap()).collect();
        assert!(kinds.len() >= 2 && !kinds.contains(&"template"), "{kinds:?}");
    }

    async fn an_edit_the_provider_refuses_keeps_the_approved_version(db) {
        let w = world(db).await;
        // A Cloud number whose provider does not answer (nothing listens there).
        let ch = w.ok(Method::POST, "/api/v1/channels", Some(json!({ "provider": "cloud", "name": "Dead line", "phone_number_id": "109999999999999",
            "access_token": "EAAG-dead-line-token", "app_secret": "dead-line-secret", "verify_token": "dead-line-verify",
            "api_base_url": "http://127.0.0.1:9" }))).await;
        let channel = ch["channel"]["id"].as_str().unwrap().to_owned();
        let key = ch["webhook"]["callback_url"].as_str().unwrap().rsplit('/').next().unwrap().to_owned();
        let (s, t) = w.call(Method::POST, "/api/v1/templates", Some(json!({ "channel_id": channel, "template": reminder() }))).await;
        assert_eq!(s, StatusCode::CREATED, "{t}");
        let id = t["id"].as_str().unwrap().to_owned();
        // Submitting fails: the draft stays a draft, with the reason.
        let (s, v) = w.call(Method::POST, &format!("/api/v1/templates/{id}/submit"), None).await;
        assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::BAD_GATEWAY, Some("provider_error")), "{v}");
        let t = w.ok(Method::GET, &format!("/api/v1/templates/{id}"), None).await;
        assert_eq!(t["status"], "DRAFT");
        assert!(t["reason"].as_str().unwrap().contains("refused the submission"), "{t}");
        // Approved (as if Meta had approved it earlier), then an edit the provider never gets.
        let target = w.app.db.store.webhook_target(&key).await.unwrap().unwrap();
        let mut tx = w.app.db.store.begin(&target.ctx).await.unwrap();
        tx.set_template_status(&frontdesk_store::TemplateStatus { waba_id: ch["channel"]["waba_id"].as_str().unwrap(), name: "visit_reminder", language: "en_US",
            provider_template_id: Some("777"), status: "APPROVED", reason: None, category: None }).await.unwrap();
        tx.commit().await.unwrap();
        let mut edited = reminder();
        edited["footer"] = json!("Never approved footer");
        let (s, _) = w.call(Method::PUT, &format!("/api/v1/templates/{id}"), Some(edited)).await;
        assert_eq!(s, StatusCode::BAD_GATEWAY);
        let t = w.ok(Method::GET, &format!("/api/v1/templates/{id}"), None).await;
        assert_eq!((t["status"].as_str(), t["content"]["footer"].as_str()), (Some("APPROVED"), Some("Sunrise Clinic")), "{t}");
    }

    async fn sync_brings_templates_made_elsewhere_and_quality_and_category_webhooks_update_them(db) {
        let w = world(db).await;
        // Made in Meta's manager, not here: the status webhook makes a bare row.
        let (s, made) = w.app.graph_call(Method::POST, &format!("/{}/message_templates", w.ch.waba_id), Some(&w.ch.access_token),
            Some(json!({ "name": "lab_results", "language": "en_US", "category": "UTILITY", "components": [
                { "type": "BODY", "text": "Hello {{1}}, your results are ready.", "example": { "body_text": [["Ana"]] } },
                { "type": "BUTTONS", "buttons": [{ "type": "PHONE_NUMBER", "text": "Call us", "phone_number": "+14155550199" }] }
            ] }))).await;
        assert!(s.is_success(), "{made}");
        let provider_id = made["id"].as_str().unwrap().to_owned();
        let bare = w.until("the status webhook", async || {
            let list = w.ok(Method::GET, "/api/v1/templates", None).await;
            list.as_array().unwrap().iter().find(|t| t["name"] == "lab_results" && t["status"] == "APPROVED").cloned()
        }).await;
        assert_eq!(bare["content"], Value::Null, "{bare}");

        let report = w.ok(Method::POST, &format!("/api/v1/channels/{}/templates/sync", w.ch.id), None).await;
        assert_eq!((report["listed"].as_i64(), report["updated"].as_i64(), report["unreadable"].as_i64()), (Some(1), Some(1), Some(0)), "{report}");
        let id = bare["id"].as_str().unwrap().to_owned();
        let t = w.ok(Method::GET, &format!("/api/v1/templates/{id}"), None).await;
        assert_eq!((t["quality"].as_str(), t["channel_id"].as_str()), (Some("GREEN"), Some(w.ch.id.as_str())), "{t}");
        assert_eq!(t["content"]["buttons"][0]["phone_number"], "+14155550199");
        assert_eq!(t["fill_fields"][0]["label"], "{{1}}");

        // The provider rates it and moves it to marketing.
        w.post_webhook("message_template_quality_update", json!({ "previous_quality_score": "GREEN", "new_quality_score": "YELLOW",
            "message_template_id": provider_id.parse::<i64>().unwrap(), "message_template_name": "lab_results", "message_template_language": "en_US" })).await;
        w.post_webhook("template_category_update", json!({ "message_template_id": provider_id.parse::<i64>().unwrap(),
            "message_template_name": "lab_results", "message_template_language": "en_US", "previous_category": "UTILITY", "new_category": "MARKETING" })).await;
        let t = w.until("quality and category", async || {
            let t = w.ok(Method::GET, &format!("/api/v1/templates/{id}"), None).await;
            (t["quality"] == "YELLOW" && t["category"] == "MARKETING").then_some(t)
        }).await;
        assert_eq!(t["status"], "APPROVED");
        assert_eq!(w.ok(Method::GET, "/api/v1/templates?category=MARKETING", None).await.as_array().unwrap().len(), 1);

        // Paused for low quality: sends are refused until Meta reinstates it; a flag only rates it.
        let status = |event: &str| json!({ "event": event, "message_template_id": provider_id.parse::<i64>().unwrap(),
            "message_template_name": "lab_results", "message_template_language": "en_US", "reason": "NONE" });
        w.post_webhook("message_template_status_update", status("PAUSED")).await;
        w.status_becomes(&id, "PAUSED").await;
        let (s, v) = w.send("lab_results", Some(json!({ "body": ["Asha"] }))).await;
        assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("template_not_approved")), "{v}");
        w.post_webhook("message_template_status_update", status("REINSTATED")).await;
        w.status_becomes(&id, "APPROVED").await;
        let (s, v) = w.send("lab_results", Some(json!({ "body": ["Asha"] }))).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{v}");
        w.post_webhook("message_template_status_update", status("FLAGGED")).await;
        let t = w.until("the flag", async || {
            let t = w.ok(Method::GET, &format!("/api/v1/templates/{id}"), None).await;
            (t["quality"] == "RED").then_some(t)
        }).await;
        assert_eq!(t["status"], "APPROVED", "a flagged template can still be sent");
        let (s, v) = w.call(Method::GET, "/api/v1/templates?category=PROMO", None).await;
        assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_query")));
        let actions: Vec<String> = w.ok(Method::GET, "/api/v1/audit-events?limit=50", None).await["events"].as_array().unwrap()
            .iter().map(|e| e["action"].as_str().unwrap().to_owned()).collect();
        assert!(actions.iter().any(|a| a == "template.synced"), "{actions:?}");
    }
    async fn a_media_header_sample_goes_through_the_resumable_upload_and_the_template_is_approved(db) {
        let w = world(db).await;
        let app_id = w.ch.answer["app_id"].as_str().expect("a simulated number has a Meta app id").to_owned();
        // Refused samples: a type the kind does not take, too large, an unknown kind.
        let (s, v) = w.upload_sample("image", "application/pdf", "x.pdf", b"%PDF-1.7").await;
        assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{v}");
        let big = [PNG, &vec![0u8; 5 * 1024 * 1024]].concat();
        let (s, _) = w.upload_sample("image", "image/png", "big.png", &big).await;
        assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
        let (s, v) = w.upload_sample("sticker", "image/png", "x.png", PNG).await;
        assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_upload")), "{v}");

        let (s, sample) = w.upload_sample("image", "image/png", "clinic.png", PNG).await;
        assert_eq!(s, StatusCode::CREATED, "{sample}");
        assert_eq!((sample["format"].as_str(), sample["size_bytes"].as_u64()), (Some("image"), Some(PNG.len() as u64)), "{sample}");
        let id = sample["id"].as_str().unwrap().to_owned();
        // Stored like any media: the editor shows it from the media route.
        let r = w.app.client.get(w.app.url(&format!("/api/v1/media/{id}"))).bearer_auth(&w.admin.access).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.bytes().await.unwrap().as_ref(), PNG);

        // A video header cannot take an image sample; the image header can.
        let mut t = json!({ "name": "clinic_photo", "language": "en_US", "category": "MARKETING",
            "header": { "format": "video", "sample": id },
            "body": { "text": "Our new clinic opens on {{1}}. Come and see!", "examples": ["Monday"] } });
        let (s, v) = w.create(t.clone()).await;
        assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_template")), "{v}");
        assert!(v["error"]["message"].as_str().unwrap().contains("header.sample"), "{v}");
        t["header"]["format"] = json!("image");
        let (s, created) = w.create(t).await;
        assert_eq!(s, StatusCode::CREATED, "{created}");
        assert_eq!(created["content"]["header"]["sample"], id.as_str(), "{created}");
        let tid = created["id"].as_str().unwrap().to_owned();
        w.ok(Method::POST, &format!("/api/v1/templates/{tid}/submit"), None).await;
        w.status_becomes(&tid, "APPROVED").await;

        // What the simulator received: Meta's format, with the handle of a finished upload.
        let (_, listed) = w.app.graph_call(Method::GET, &format!("/{}/message_templates?name=clinic_photo", w.ch.waba_id), Some(&w.ch.access_token), None).await;
        let header = &listed["data"][0]["components"][0];
        assert_eq!((header["type"].as_str(), header["format"].as_str()), (Some("HEADER"), Some("IMAGE")), "{listed}");
        let handle = header["example"]["header_handle"][0].as_str().unwrap();
        assert!(handle.starts_with("4::") && handle.contains(":e:"), "{handle}");

        // Sent with a link per send, as before.
        let customer = w.app.sim_customer(&w.web, &w.ch.id, "Asha Rao", PHONE, "").await;
        let (s, v) = w.send("clinic_photo", Some(json!({ "header": "https://img.example/opening.jpg", "body": ["Monday"] }))).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{v}");
        let text = w.until("the photo template on the phone", async || w.phone_texts(&customer).await.into_iter().next()).await;
        assert!(text.starts_with("[image]"), "{text}");

        // Without a Meta app id on the number, a sample cannot be uploaded: refused before
        // anything changes.
        w.ok(Method::PATCH, &format!("/api/v1/channels/{}", w.ch.id), Some(json!({ "app_id": "" }))).await;
        let (_, second) = w.create(json!({ "name": "clinic_photo_two", "language": "en_US", "category": "MARKETING",
            "header": { "format": "image", "sample": id },
            "body": { "text": "Our new clinic opens on {{1}}. Come and see!", "examples": ["Monday"] } })).await;
        let sid = second["id"].as_str().unwrap().to_owned();
        let (s, v) = w.call(Method::POST, &format!("/api/v1/templates/{sid}/submit"), None).await;
        assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("app_id_required")), "{v}");
        assert_eq!(w.ok(Method::GET, &format!("/api/v1/templates/{sid}"), None).await["status"], "DRAFT");
        let (s, v) = w.call(Method::PATCH, &format!("/api/v1/channels/{}", w.ch.id), Some(json!({ "app_id": "12ab" }))).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        let ch = w.ok(Method::PATCH, &format!("/api/v1/channels/{}", w.ch.id), Some(json!({ "app_id": app_id }))).await;
        assert_eq!(ch["app_id"], app_id.as_str());
        // A Cloud channel is given its app id when connected; a malformed one connects nothing.
        let cloud = |pnid: &str, app: &str| json!({ "provider": "cloud", "name": "Second desk", "phone_number_id": pnid,
            "waba_id": "102290129340398", "access_token": "EAAG-second", "app_secret": "second-secret", "verify_token": "second-verify",
            "api_base_url": "http://127.0.0.1:9", "app_id": app });
        let (s, v) = w.call(Method::POST, "/api/v1/channels", Some(cloud("106540352240001", "12 34"))).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        let (s, v) = w.call(Method::POST, "/api/v1/channels", Some(cloud("106540352240002", "584544743160774"))).await;
        assert_eq!((s, v["channel"]["app_id"].as_str()), (StatusCode::CREATED, Some("584544743160774")), "{v}");

        // A link given as the example is not a handle: the simulator refuses as Meta does,
        // and the draft keeps the reason.
        let (_, linked) = w.create(json!({ "name": "clinic_link", "language": "en_US", "category": "MARKETING",
            "header": { "format": "image", "example": "https://img.example/clinic.jpg" },
            "body": { "text": "Our new clinic opens on {{1}}. Come and see!", "examples": ["Monday"] } })).await;
        let lid = linked["id"].as_str().unwrap().to_owned();
        let (s, v) = w.call(Method::POST, &format!("/api/v1/templates/{lid}/submit"), None).await;
        assert_eq!(s, StatusCode::BAD_GATEWAY, "{v}");
        let after = w.ok(Method::GET, &format!("/api/v1/templates/{lid}"), None).await;
        assert_eq!(after["status"], "DRAFT");
        assert!(after["reason"].as_str().unwrap().contains("header_handle"), "{after}");

        let (_, audit) = w.call(Method::GET, "/api/v1/audit-events?limit=100", None).await;
        let actions: Vec<&str> = audit["events"].as_array().unwrap().iter().filter_map(|e| e["action"].as_str()).collect();
        assert!(actions.contains(&"template.sample_uploaded") && actions.contains(&"template.submitted"), "{actions:?}");
    }

    async fn the_simulated_upload_api_speaks_metas_wire_format_and_checks_type_size_and_offset(db) {
        let w = world(db).await;
        let app_id = w.ch.answer["app_id"].as_str().unwrap().to_owned();
        let start = |q: &str| format!("/{app_id}/uploads?{q}");
        // Step 1 checks the declared file.
        let (s, v) = w.upload_call(Method::POST, &start("file_name=a.gif&file_length=10&file_type=image/gif"), None, vec![]).await;
        assert_eq!((s, v["error"]["code"].as_i64(), v["error"]["type"].as_str()), (StatusCode::BAD_REQUEST, Some(100), Some("OAuthException")), "{v}");
        let (s, v) = w.upload_call(Method::POST, &start("file_name=a.png&file_length=6000000&file_type=image/png"), None, vec![]).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "an image is at most 5 MiB: {v}");
        let (s, v) = w.upload_call(Method::POST, &start("file_length=10&file_type=image/png"), None, vec![]).await;
        assert!(s == StatusCode::BAD_REQUEST && v["error"]["message"].as_str().unwrap().contains("file_name"), "{v}");
        let (s, v) = w.upload_call(Method::POST, &format!("/999/uploads?file_name=a.png&file_length={}&file_type=image/png", PNG.len()), None, vec![]).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "another app's uploads: {v}");
        let (s, v) = w.app.graph_call(Method::POST, &start("file_name=a.png&file_length=10&file_type=image/png"), None, None).await;
        assert_eq!((s, v["error"]["code"].as_i64()), (StatusCode::UNAUTHORIZED, Some(190)), "{v}");
        let (s, v) = w.upload_call(Method::POST, &start(&format!("file_name=a.png&file_length={}&file_type=image/png", PNG.len())), None, vec![]).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let session = v["id"].as_str().unwrap().to_owned();
        assert!(session.starts_with("upload:") && session.contains("?sig="), "{session}");
        let path = format!("/{session}");
        let unsigned = format!("/{}", session.split('?').next().unwrap());

        // Step 2 checks the offset, the signature, the length and, at the end, the bytes.
        let (s, v) = w.upload_call(Method::POST, &unsigned, Some(0), PNG[..10].to_vec()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "without its signature: {v}");
        let (s, v) = w.upload_call(Method::POST, &path, Some(3), PNG[..10].to_vec()).await;
        assert!(s == StatusCode::BAD_REQUEST && v["error"]["error_data"]["details"].as_str().unwrap().contains("file_offset"), "{v}");
        let (s, v) = w.upload_call(Method::POST, &path, None, PNG.to_vec()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "file_offset is required: {v}");
        // Interrupted after 10 bytes: the session says where to resume.
        let (s, v) = w.upload_call(Method::POST, &path, Some(0), PNG[..10].to_vec()).await;
        assert_eq!((s, v["file_offset"].as_u64()), (StatusCode::OK, Some(10)), "{v}");
        let (s, v) = w.upload_call(Method::GET, &path, None, vec![]).await;
        assert_eq!((s, v["file_offset"].as_u64(), v["id"].as_str()), (StatusCode::OK, Some(10), Some(session.as_str())), "{v}");
        let (s, v) = w.upload_call(Method::POST, &path, Some(10), [&PNG[10..], b"extra"].concat()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "more than file_length: {v}");
        let (s, v) = w.upload_call(Method::POST, &path, Some(10), PNG[10..].to_vec()).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let handle = v["h"].as_str().unwrap().to_owned();
        assert!(handle.starts_with("4::"), "{handle}");

        // A PDF declared as a PNG is refused once complete.
        let pdf = b"%PDF-1.7 leaflet";
        let (_, v) = w.upload_call(Method::POST, &start(&format!("file_name=x.png&file_length={}&file_type=image/png", pdf.len())), None, vec![]).await;
        let (s, v) = w.upload_call(Method::POST, &format!("/{}", v["id"].as_str().unwrap()), Some(0), pdf.to_vec()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");

        // Templates: a media header needs a finished upload's handle, of a fitting type.
        let create = |format: &str, handle: Value| json!({ "name": format!("sim_{}", format.to_lowercase()), "language": "en", "category": "MARKETING",
            "components": [{ "type": "HEADER", "format": format, "example": { "header_handle": handle } },
                           { "type": "BODY", "text": "Our new clinic is open. Come and see!" }] });
        let tpl = format!("/{}/message_templates", w.ch.waba_id);
        for (format, h) in [("IMAGE", json!(["4::made-up"])), ("IMAGE", json!([])), ("VIDEO", json!([handle.clone()]))] {
            let (s, v) = w.app.graph_call(Method::POST, &tpl, Some(&w.ch.access_token), Some(create(format, h))).await;
            assert_eq!((s, v["error"]["code"].as_i64(), v["error"]["message"].as_str()), (StatusCode::BAD_REQUEST, Some(100), Some("(#100) Invalid parameter")), "{format}: {v}");
        }
        let mut no_example = create("DOCUMENT", json!([]));
        no_example["components"][0].as_object_mut().unwrap().remove("example");
        let (s, _) = w.app.graph_call(Method::POST, &tpl, Some(&w.ch.access_token), Some(no_example)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        let (s, v) = w.app.graph_call(Method::POST, &tpl, Some(&w.ch.access_token), Some(create("IMAGE", json!([handle])))).await;
        assert_eq!((s, v["status"].as_str()), (StatusCode::OK, Some("PENDING")), "{v}");
    }
}
