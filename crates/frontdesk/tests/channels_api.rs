//! Channel administration end to end over HTTP, on both backends: connecting Cloud API and
//! Whapi numbers, validation, duplicates, editing with secrets kept unless replaced, the
//! callback URL, disconnecting, another organisation's ids, the audit trail, the webhook
//! inbox and its reprocessing, and the pages. Every answer is scanned for the secrets sent.

mod common;

use common::TestApp;
use common::users::{ApiUser, PASSWORD};
use frontdesk_store::both_backends;
use frontdesk_store::{InboxStatus, Stored, WebhookTarget};
use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use std::sync::Mutex;

/// Calls the API and keeps every answer's raw text, to scan for secrets at the end.
struct Recorder<'a> {
    app: &'a TestApp,
    answers: Mutex<Vec<String>>,
}

impl<'a> Recorder<'a> {
    fn new(app: &'a TestApp) -> Self {
        Self {
            app,
            answers: Mutex::new(Vec::new()),
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .app
            .client
            .request(method, self.app.url(path))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        self.answers.lock().unwrap().push(text.clone());
        let v = serde_json::from_str(&text).unwrap_or(Value::Null);
        (status, v)
    }

    fn record(&self, text: &str) {
        self.answers.lock().unwrap().push(text.to_owned());
    }

    /// No recorded answer carries any of `secrets`.
    fn assert_no_secrets(&self, secrets: &[&str]) {
        let answers = self.answers.lock().unwrap();
        assert!(answers.len() > 5, "answers were recorded");
        for s in secrets {
            for a in answers.iter() {
                assert!(!a.contains(s), "secret {s:?} in an answer: {a}");
            }
        }
    }
}

/// The callback URL a page shows.
fn callback_on(html: &str) -> String {
    let at = html
        .find("data-testid=\"callback-url\"")
        .expect("a callback URL");
    let input = &html[html[..at].rfind('<').unwrap()..];
    let from = input.find("value=\"").unwrap() + "value=\"".len();
    input[from..].split('"').next().unwrap().to_owned()
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or_default()
}

const TOKEN: &str = "EAAGm0PX4ZCpsBAcloudtoken0123456789wxyz";
const APP_SECRET: &str = "appsecret-5f2d9c0e7a1b4c3d";
const VERIFY: &str = "verify-me-please-81730";
const TOKEN2: &str = "EAAGsecondtoken-replaced-99887766";
const WHAPI_TOKEN: &str = "whapi-token-Qw3rTy-0011223344";
const WHAPI_SECRET: &str = "whapi-hook-secret-aa55bb66";

fn cloud_body(phone_number_id: &str) -> Value {
    json!({
        "provider": "cloud",
        "name": "Reception",
        "phone_number_id": phone_number_id,
        "waba_id": "102290129340398",
        "display_number": "+1 555 010 0000",
        "access_token": TOKEN,
        "app_secret": APP_SECRET,
        "verify_token": VERIFY,
    })
}

/// The key in a callback URL, and the webhook target it names.
async fn target_of(app: &TestApp, callback_url: &str) -> WebhookTarget {
    let prefix = app.url("/webhooks/");
    let key = callback_url
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{callback_url} is under {prefix}"));
    app.db
        .store
        .webhook_target(key)
        .await
        .unwrap()
        .expect("the callback URL's key names the channel")
}

async fn audit_actions(app: &TestApp, token: &str) -> Vec<Value> {
    let (s, v) = app
        .api(
            Method::GET,
            "/api/v1/audit-events?limit=500",
            Some(token),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["events"].as_array().unwrap().clone()
}

fn has_event(events: &[Value], action: &str, target: &str) -> bool {
    events
        .iter()
        .any(|e| e["action"] == action && e["target_id"] == target)
}

both_backends! {
    async fn channels_connect_list_edit_and_disconnect_without_returning_secrets(db) {
        let app = TestApp::spawn(db).await;
        let admin = app.signup("Sunrise Clinic", "asha@sunrise.example").await;
        let r = Recorder::new(&app);
        let t = admin.access.as_str();

        // Connect a Cloud API number: defaults filled in, secrets only as flags.
        let (s, v) = r.call(Method::POST, "/api/v1/channels", t, Some(cloud_body("106540352242922"))).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let ch = &v["channel"];
        let id = ch["id"].as_str().unwrap().to_owned();
        assert_eq!(ch["provider"], "cloud");
        assert_eq!(ch["api_base_url"], "https://graph.facebook.com");
        assert_eq!(ch["api_version"], "v23.0");
        assert_eq!(ch["throughput_mps"], 80);
        assert_eq!(ch["simulated"], false);
        assert_eq!(ch["access_token"], json!({ "configured": true, "last4": "wxyz" }));
        assert_eq!(ch["app_secret"]["configured"], true);
        assert_eq!(ch["verify_token"]["configured"], true);
        assert_eq!(v["webhook"]["verify_token_configured"], true);
        let callback = v["webhook"]["callback_url"].as_str().unwrap().to_owned();
        let target = target_of(&app, &callback).await;
        assert_eq!(target.channel.to_string(), id);

        // The callback URL can be shown again.
        let (s, w) = r.call(Method::GET, &format!("/api/v1/channels/{id}/webhook"), t, None).await;
        assert_eq!(s, StatusCode::OK, "{w}");
        assert_eq!(w["callback_url"], callback.as_str());
        assert_eq!(w["provider"], "cloud");

        // Whapi: its own defaults, no verify token.
        let (s, v) = r.call(Method::POST, "/api/v1/channels", t, Some(json!({
            "provider": "whapi", "name": "Shop", "phone_number_id": "MANTIS-Q1W2E",
            "token": WHAPI_TOKEN, "webhook_secret": WHAPI_SECRET,
        }))).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let whapi_id = v["channel"]["id"].as_str().unwrap().to_owned();
        assert_eq!(v["channel"]["api_base_url"], "https://gate.whapi.cloud");
        assert_eq!(v["channel"]["throughput_mps"], 10);
        assert_eq!(v["channel"]["verify_token"]["configured"], false);
        assert_eq!(v["webhook"]["verify_token_configured"], false);

        let (s, list) = r.call(Method::GET, "/api/v1/channels", t, None).await;
        assert_eq!(s, StatusCode::OK);
        let names: Vec<&str> = list.as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["Reception", "Shop"]);
        let (s, one) = r.call(Method::GET, &format!("/api/v1/channels/{id}"), t, None).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(one["phone_number_id"], "106540352242922");

        // Settings change; blank and absent secrets stay, a given one is replaced.
        let (s, v) = r.call(Method::PATCH, &format!("/api/v1/channels/{id}"), t, Some(json!({
            "name": "Front desk", "throughput_mps": 20, "api_version": "v24.0",
            "access_token": TOKEN2, "app_secret": "  ",
        }))).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["name"], "Front desk");
        assert_eq!(v["throughput_mps"], 20);
        assert_eq!(v["api_version"], "v24.0");
        assert_eq!(v["display_number"], "+1 555 010 0000", "absent fields stay");
        assert_eq!(v["access_token"]["last4"], "7766");
        let mut tx = app.db.store.begin(&target.ctx).await.unwrap();
        let creds = tx.channel_credentials(target.channel).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(creds.access_token.expose_secret(), TOKEN2);
        assert_eq!(creds.app_secret.as_ref().unwrap().expose_secret(), APP_SECRET);
        assert_eq!(creds.verify_token.as_ref().unwrap().expose_secret(), VERIFY);

        // Whapi's names for its secrets work in a change too.
        let (s, v) = r.call(Method::PATCH, &format!("/api/v1/channels/{whapi_id}"), t, Some(json!({ "token": "whapi-token-rotated-000111" }))).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["access_token"]["last4"], "0111");
        let (s, v) = r.call(Method::PATCH, &format!("/api/v1/channels/{whapi_id}"), t, Some(json!({ "verify_token": "x" }))).await;
        assert_eq!((s, code(&v)), (StatusCode::UNPROCESSABLE_ENTITY, "invalid"), "{v}");

        // Disconnect: gone, and its webhook key names nothing any more.
        let (s, _) = r.call(Method::DELETE, &format!("/api/v1/channels/{id}"), t, None).await;
        assert_eq!(s, StatusCode::NO_CONTENT);
        let (s, v) = r.call(Method::GET, &format!("/api/v1/channels/{id}"), t, None).await;
        assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "not_found"));
        let key = callback.rsplit('/').next().unwrap();
        assert!(app.db.store.webhook_target(key).await.unwrap().is_none());
        let (s, _) = r.call(Method::DELETE, &format!("/api/v1/channels/{id}"), t, None).await;
        assert_eq!(s, StatusCode::NOT_FOUND);

        // Each change is in the audit log, with no secret in it.
        let events = audit_actions(&app, t).await;
        r.record(&serde_json::to_string(&events).unwrap());
        for action in ["channel.created", "channel.webhook_url_viewed", "channel.updated", "channel.deleted"] {
            assert!(has_event(&events, action, &id), "{action} for {id}");
        }
        assert!(has_event(&events, "channel.created", &whapi_id));
        let updated = events.iter().find(|e| e["action"] == "channel.updated" && e["target_id"] == id.as_str()).unwrap();
        assert_eq!(updated["data"]["secrets_replaced"], json!(["access_token"]));

        r.assert_no_secrets(&[TOKEN, APP_SECRET, VERIFY, TOKEN2, WHAPI_TOKEN, WHAPI_SECRET, "whapi-token-rotated-000111"]);
    }

    async fn invalid_channels_are_refused_with_typed_errors(db) {
        let app = TestApp::spawn(db).await;
        let admin = app.signup("Sunrise Clinic", "asha@sunrise.example").await;
        let r = Recorder::new(&app);
        let t = admin.access.as_str();
        let with = |k: &str, v: Value| {
            let mut b = cloud_body("1065");
            b[k] = v;
            b
        };
        let without = |k: &str| {
            let mut b = cloud_body("1065");
            b.as_object_mut().unwrap().remove(k);
            b
        };
        let cases: Vec<(Value, StatusCode, &str)> = vec![
            (without("verify_token"), StatusCode::BAD_REQUEST, "invalid_body"),
            (without("app_secret"), StatusCode::BAD_REQUEST, "invalid_body"),
            (with("provider", json!("telegram")), StatusCode::BAD_REQUEST, "invalid_body"),
            (with("unknown_field", json!(1)), StatusCode::BAD_REQUEST, "invalid_body"),
            (with("verify_token", json!("   ")), StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            (with("access_token", json!("")), StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            (with("access_token", json!("x".repeat(4097))), StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            (with("name", json!("")), StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            (with("name", json!("n".repeat(101))), StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            (with("phone_number_id", json!("12 34")), StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            (with("phone_number_id", json!("9".repeat(65))), StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            (with("waba_id", json!("abc")), StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            (with("display_number", json!("<script>")), StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            (with("api_base_url", json!("ftp://graph.example")), StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            (with("api_version", json!("23")), StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            (with("throughput_mps", json!(0)), StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            (with("throughput_mps", json!(1001)), StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
        ];
        for (body, status, want) in cases {
            let (s, v) = r.call(Method::POST, "/api/v1/channels", t, Some(body.clone())).await;
            assert_eq!((s, code(&v)), (status, want), "{body}: {v}");
        }
        let (s, v) = r.call(Method::GET, "/api/v1/channels", t, None).await;
        assert_eq!((s, v), (StatusCode::OK, json!([])), "nothing was stored");

        // The same number twice: 409.
        let (s, v) = r.call(Method::POST, "/api/v1/channels", t, Some(cloud_body("1065"))).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let id = v["channel"]["id"].as_str().unwrap().to_owned();
        let (s, v) = r.call(Method::POST, "/api/v1/channels", t, Some(cloud_body("1065"))).await;
        assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "channel_exists"), "{v}");

        // Changes are checked too, and a refused change changes nothing.
        for (body, status, want) in [
            (json!({ "throughput_mps": 5000 }), StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            (json!({ "api_version": "latest" }), StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            (json!({ "api_base_url": "javascript:alert(1)" }), StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            (json!({ "access_token": "t".repeat(5000) }), StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            (json!({ "provider": "whapi" }), StatusCode::BAD_REQUEST, "invalid_body"),
        ] {
            let (s, v) = r.call(Method::PATCH, &format!("/api/v1/channels/{id}"), t, Some(body.clone())).await;
            assert_eq!((s, code(&v)), (status, want), "{body}: {v}");
        }
        let (_, v) = r.call(Method::GET, &format!("/api/v1/channels/{id}"), t, None).await;
        assert_eq!(v["throughput_mps"], 80);
        assert_eq!(v["api_version"], "v23.0");

        // Ids that are not ids name nothing.
        for path in ["/api/v1/channels/not-an-id", "/api/v1/channels/not-an-id/webhook"] {
            let (s, v) = r.call(Method::GET, path, t, None).await;
            assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "not_found"), "{path}");
        }
        // The inbox filter is checked.
        for q in ["status=lost", "limit=0", "limit=201", "limit=abc", "colour=red"] {
            let (s, v) = r.call(Method::GET, &format!("/api/v1/webhook-inbox?{q}"), t, None).await;
            assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "invalid_query"), "{q}: {v}");
        }
        r.assert_no_secrets(&[TOKEN, APP_SECRET, VERIFY]);
    }

    async fn another_organisations_channels_are_not_found(db) {
        let app = TestApp::spawn(db).await;
        let a = app.signup("Aardvark clinic", "admin@a.example").await;
        let b = app.signup("Bramble dental", "admin@b.example").await;
        let r = Recorder::new(&app);
        let (s, v) = r.call(Method::POST, "/api/v1/channels", &a.access, Some(cloud_body("2001"))).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let id = v["channel"]["id"].as_str().unwrap().to_owned();
        let before = r.call(Method::GET, &format!("/api/v1/channels/{id}"), &a.access, None).await.1;
        let a_events = audit_actions(&app, &a.access).await.len();

        for (m, path, body) in [
            (Method::GET, format!("/api/v1/channels/{id}"), None),
            (Method::GET, format!("/api/v1/channels/{id}/webhook"), None),
            (Method::PATCH, format!("/api/v1/channels/{id}"), Some(json!({ "name": "Taken over", "access_token": "stolen-token-0000000000" }))),
            (Method::DELETE, format!("/api/v1/channels/{id}"), None),
        ] {
            let (s, v) = r.call(m.clone(), &path, &b.access, body).await;
            assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "not_found"), "{m} {path}: {v}");
        }
        let (_, list) = r.call(Method::GET, "/api/v1/channels", &b.access, None).await;
        assert_eq!(list, json!([]));
        // B may use the same phone number id in its own organisation.
        let (s, v) = r.call(Method::POST, "/api/v1/channels", &b.access, Some(cloud_body("2001"))).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");

        let after = r.call(Method::GET, &format!("/api/v1/channels/{id}"), &a.access, None).await.1;
        assert_eq!(before, after, "org A's channel is unchanged");
        assert_eq!(audit_actions(&app, &a.access).await.len(), a_events, "nothing was written to org A's log");
        r.assert_no_secrets(&[TOKEN, APP_SECRET, VERIFY, "stolen-token-0000000000"]);
    }

    async fn failed_webhooks_are_listed_with_their_error_and_can_be_reprocessed(db) {
        let app = TestApp::spawn(db).await;
        let admin = app.signup("Sunrise Clinic", "asha@sunrise.example").await;
        let r = Recorder::new(&app);
        let t = admin.access.as_str();
        let (s, v) = r.call(Method::POST, "/api/v1/channels", t, Some(cloud_body("3001"))).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let target = target_of(&app, v["webhook"]["callback_url"].as_str().unwrap()).await;

        // Three stored bodies: one fails, one is processed, one (large, not UTF-8) fails.
        let big: Vec<u8> = [b"\xff{\"entry\":\"".as_slice(), &[b'x'; 9000]].concat();
        let bodies: [&[u8]; 3] = [b"{\"object\":\"whatsapp_business_account\",\"entry\":7}", b"{\"ok\":true}", &big];
        let items: Vec<_> = bodies.iter().map(|b| (&target.ctx, target.channel, *b)).collect();
        let stored = app.db.store.store_webhooks(&items).await.unwrap();
        let ids: Vec<_> = stored.iter().map(|s| match s { Stored::New(id) => *id, Stored::Duplicate => panic!("new") }).collect();
        let mut tx = app.db.store.begin(&target.ctx).await.unwrap();
        tx.finish_inbox(ids[0], Some("entry: invalid type: integer `7`, expected a sequence")).await.unwrap();
        tx.finish_inbox(ids[1], None).await.unwrap();
        tx.finish_inbox(ids[2], Some("not UTF-8")).await.unwrap();
        tx.commit().await.unwrap();

        let (s, v) = r.call(Method::GET, "/api/v1/webhook-inbox", t, None).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let rows = v.as_array().unwrap();
        assert_eq!(rows.len(), 2, "failed rows by default: {v}");
        let first = rows.iter().find(|x| x["id"] == ids[0].to_string().as_str()).unwrap();
        assert_eq!(first["status"], "failed");
        assert_eq!(first["channel_id"], target.channel.to_string().as_str());
        assert_eq!(first["attempts"], 1);
        assert!(first["error"].as_str().unwrap().contains("expected a sequence"));
        assert_eq!(first["body"], "{\"object\":\"whatsapp_business_account\",\"entry\":7}");
        let large = rows.iter().find(|x| x["id"] == ids[2].to_string().as_str()).unwrap();
        assert_eq!(large["body_bytes"], big.len());
        assert_eq!(large["body_truncated"], true);
        assert!(large["body"].as_str().unwrap().starts_with("\u{fffd}{\"entry\""));
        let (_, v) = r.call(Method::GET, "/api/v1/webhook-inbox?status=processed&limit=10", t, None).await;
        assert_eq!(v.as_array().unwrap().len(), 1);
        assert_eq!(v[0]["id"], ids[1].to_string().as_str());

        // Reprocess: the failed rows are pending again, without their error; audited.
        let (s, v) = r.call(Method::POST, "/api/v1/webhook-inbox/retry", t, None).await;
        assert_eq!((s, &v), (StatusCode::OK, &json!({ "requeued": 2 })));
        let (_, v) = r.call(Method::GET, "/api/v1/webhook-inbox?status=failed", t, None).await;
        assert_eq!(v, json!([]));
        let pending = app.db.store.inbox_where(&target.ctx, Some(InboxStatus::Pending), 10).await.unwrap();
        assert_eq!(pending.len(), 2);
        assert!(pending.iter().all(|p| p.error.is_none()));
        let events = audit_actions(&app, t).await;
        let e = events.iter().find(|e| e["action"] == "webhook_inbox.requeued").expect("audited");
        assert_eq!(e["data"]["count"], 2);
        // Nothing left to requeue: nothing happens.
        let (_, v) = r.call(Method::POST, "/api/v1/webhook-inbox/retry", t, None).await;
        assert_eq!(v, json!({ "requeued": 0 }));
    }

    async fn agents_cannot_see_channels_or_the_inbox(db) {
        let app = TestApp::spawn(db).await;
        let admin = app.signup("Sunrise Clinic", "asha@sunrise.example").await;
        let agent: ApiUser = app.add_member(&admin, "ravi@sunrise.example", "agent").await;
        for (m, path) in [
            (Method::GET, "/api/v1/channels"),
            (Method::GET, "/api/v1/webhook-inbox"),
            (Method::POST, "/api/v1/webhook-inbox/retry"),
        ] {
            let (s, v) = app.api(m, path, Some(&agent.access), None).await;
            assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "forbidden"), "{path}");
        }
        let web = app.web_login(&agent.email, PASSWORD).await;
        let html = app.web_get(&web, "/").await.text().await.unwrap();
        assert!(!html.contains("href=\"/settings/channels\""), "no navigation entry for agents");
        assert_eq!(app.web_get(&web, "/settings/channels").await.status(), StatusCode::FORBIDDEN);
    }

    async fn channel_pages_connect_edit_and_disconnect(db) {
        let app = TestApp::spawn(db).await;
        let admin = app.signup("Sunrise Clinic", "asha@sunrise.example").await;
        let web = app.web_login(&admin.email, PASSWORD).await;
        let r = Recorder::new(&app);

        let html = app.web_get(&web, "/").await.text().await.unwrap();
        assert!(html.contains("href=\"/settings/channels\""), "navigation links the channels");
        let html = app.web_get(&web, "/settings/channels").await.text().await.unwrap();
        r.record(&html);
        assert!(html.contains("data-testid=\"no-channels\""));
        assert!(html.contains("data-testid=\"connect-cloud\"") && html.contains("data-testid=\"connect-whapi\""));

        // Without the CSRF field, nothing is connected.
        let resp = app.client.post(app.url("/settings/channels"))
            .header("cookie", format!("{}={}", web.cookie_name, web.cookie))
            .header("accept", "text/html")
            .form(&[("provider", "cloud"), ("name", "x")])
            .send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);

        // Connect over the form: the answer shows the callback URL, and so does the
        // channel's page.
        let resp = app.web_post(&web, "/settings/channels", &[
            ("provider", "cloud"), ("name", "Reception"), ("phone_number_id", "4001"),
            ("waba_id", "1022"), ("display_number", "+1 555 010 0000"),
            ("access_token", TOKEN), ("app_secret", APP_SECRET), ("verify_token", VERIFY),
            ("api_base_url", "https://graph.facebook.com"), ("api_version", "v23.0"), ("throughput_mps", "40"),
        ]).await;
        assert_eq!(resp.status(), StatusCode::OK);
        let connected = resp.text().await.unwrap();
        r.record(&connected);
        let callback = callback_on(&connected);
        let target = target_of(&app, &callback).await;
        let id = target.channel.to_string();
        assert!(connected.contains(&format!("href=\"/settings/channels/{id}\"")));
        let page = app.web_get(&web, &format!("/settings/channels/{id}")).await.text().await.unwrap();
        r.record(&page);
        assert!(page.contains("configured ••••wxyz"), "the token's last four only");
        assert_eq!(callback_on(&page), callback);

        // A form with a bad value: the error page, and nothing changed.
        let resp = app.web_post(&web, &format!("/settings/channels/{id}"), &[("name", "Reception"), ("throughput_mps", "many")]).await;
        assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(resp.text().await.unwrap().contains("data-testid=\"error-message\""));

        // Edit: blank secrets are kept.
        let resp = app.web_post(&web, &format!("/settings/channels/{id}"), &[
            ("name", "Front desk"), ("display_number", "+1 555 010 0001"), ("api_base_url", "https://graph.facebook.com"),
            ("api_version", "v23.0"), ("throughput_mps", "30"), ("access_token", ""), ("app_secret", ""), ("verify_token", ""),
        ]).await;
        assert_eq!(resp.status(), StatusCode::SEE_OTHER);
        assert_eq!(resp.headers()["location"], format!("/settings/channels/{id}?ok=saved").as_str());
        let mut tx = app.db.store.begin(&target.ctx).await.unwrap();
        let creds = tx.channel_credentials(target.channel).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(creds.view.name, "Front desk");
        assert_eq!(creds.view.throughput_mps, 30);
        assert_eq!(creds.access_token.expose_secret(), TOKEN);
        assert_eq!(creds.app_secret.as_ref().unwrap().expose_secret(), APP_SECRET);
        assert_eq!(creds.verify_token.as_ref().unwrap().expose_secret(), VERIFY);

        // Whapi over its form, listed with its health.
        let resp = app.web_post(&web, "/settings/channels", &[
            ("provider", "whapi"), ("name", "Shop"), ("phone_number_id", "MANTIS-1"),
            ("token", WHAPI_TOKEN), ("webhook_secret", WHAPI_SECRET), ("api_base_url", ""), ("throughput_mps", ""),
        ]).await;
        assert_eq!(resp.status(), StatusCode::OK);
        let connected = resp.text().await.unwrap();
        r.record(&connected);
        assert!(connected.contains("Whapi's channel settings"), "Whapi's instructions");
        let mut tx = app.db.store.begin(&target.ctx).await.unwrap();
        tx.set_channel_health(target.channel, Some("GREEN"), Some("TIER_1K"), None).await.unwrap();
        tx.commit().await.unwrap();
        let list = app.web_get(&web, "/settings/channels").await.text().await.unwrap();
        r.record(&list);
        assert!(list.contains("data-testid=\"channels\""));
        assert!(list.contains("GREEN · TIER_1K · 30 msg/s"), "{list}");
        assert!(list.contains("Shop") && list.contains("Whapi"));
        assert!(!list.contains("data-testid=\"simulated\""), "no simulated channel here");

        // A failed webhook shows on the inbox page and is reprocessed from there.
        let stored = app.db.store.store_webhooks(&[(&target.ctx, target.channel, b"{\"entry\":<b>1</b>}".as_slice())]).await.unwrap();
        let Stored::New(inbox_id) = stored[0] else { panic!("new") };
        let mut tx = app.db.store.begin(&target.ctx).await.unwrap();
        tx.finish_inbox(inbox_id, Some("expected value at line 1 column 10")).await.unwrap();
        tx.commit().await.unwrap();
        let inbox = app.web_get(&web, "/settings/webhook-inbox").await.text().await.unwrap();
        r.record(&inbox);
        assert!(inbox.contains("expected value at line 1 column 10"));
        assert!(inbox.contains("{&quot;entry&quot;:&lt;b&gt;1&lt;/b&gt;}"), "the payload is shown escaped: {inbox}");
        assert!(inbox.contains("Front desk"), "with its channel's name");
        let resp = app.web_post(&web, "/settings/webhook-inbox/retry", &[]).await;
        assert_eq!(resp.headers()["location"], "/settings/webhook-inbox?ok=requeued");
        let inbox = app.web_get(&web, "/settings/webhook-inbox").await.text().await.unwrap();
        assert!(inbox.contains("data-testid=\"inbox-empty\""));
        let pending = app.web_get(&web, "/settings/webhook-inbox?status=pending").await.text().await.unwrap();
        r.record(&pending);
        assert!(pending.contains(&inbox_id.to_string()));

        // Disconnect, with a confirmation on the form.
        let page = app.web_get(&web, &format!("/settings/channels/{id}")).await.text().await.unwrap();
        r.record(&page);
        assert!(page.contains("data-confirm=\"Disconnect this number?"));
        let resp = app.web_post(&web, &format!("/settings/channels/{id}/delete"), &[]).await;
        assert_eq!(resp.headers()["location"], "/settings/channels?ok=removed");
        assert_eq!(app.web_get(&web, &format!("/settings/channels/{id}")).await.status(), StatusCode::NOT_FOUND);

        r.assert_no_secrets(&[TOKEN, APP_SECRET, VERIFY, WHAPI_TOKEN, WHAPI_SECRET]);
    }
}
