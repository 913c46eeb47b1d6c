//! The audience over HTTP, on both backends, through the simulator: a customer's "STOP"
//! opts them out at once with a confirmation on their phone, "START" opts them back in,
//! an organisation's own keyword works too, and every step is in the ledger and the audit
//! log; agents see masked numbers in contact answers; an import runs as a background job to
//! its report; an export needs a second admin and only its requester downloads it.

mod common;

use common::TestApp;
use common::simulator::SimChannel;
use common::users::{ApiUser, WebSession};
use frontdesk_store::both_backends;
use frontdesk_store::testing::TestDb;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;

const PHONE: &str = "+14155550123";

struct World {
    app: TestApp,
    admin: ApiUser,
    web: WebSession,
    ch: SimChannel,
}

async fn world(db: TestDb) -> World {
    let app = TestApp::spawn(db).await;
    let admin = app.signup("Audience shop", "admin@audience.example").await;
    let web = app.web_login(&admin.email, common::users::PASSWORD).await;
    let ch = app.provision_sim(&admin, "Shop number", None).await;
    World {
        app,
        admin,
        web,
        ch,
    }
}

impl World {
    async fn ok(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let (s, v) = self
            .app
            .api(method.clone(), path, Some(&self.admin.access), body)
            .await;
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

    /// The contact with the test's number.
    async fn contact(&self) -> Option<Value> {
        let page = self
            .ok(Method::GET, "/api/v1/contacts?q=4155550123", None)
            .await;
        page["items"].as_array().unwrap().first().cloned()
    }

    /// Texts the simulated phone received.
    async fn phone_texts(&self, customer: &str) -> Vec<String> {
        let chat = self
            .ok(
                Method::GET,
                &format!("/api/v1/simulator/customers/{customer}/messages"),
                None,
            )
            .await;
        chat["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["direction"] == "to_customer")
            .map(|m| m["text"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    async fn consent_of(&self, contact: &str) -> Value {
        self.ok(
            Method::GET,
            &format!("/api/v1/contacts/{contact}/consent"),
            None,
        )
        .await
    }
}

both_backends! {
    async fn stop_opts_out_at_once_with_a_confirmation_and_start_opts_back_in(db) {
        let w = world(db).await;
        let customer = w.app.sim_customer(&w.web, &w.ch.id, "Asha Rao", PHONE, "").await;
        w.app.sim_customer_sends(&w.web, &customer, &[("kind", "text"), ("body", "hello there")]).await;
        let contact = w.until("the contact", async || w.contact().await).await;
        let id = contact["id"].as_str().unwrap().to_owned();
        assert_eq!(contact["consent"], Value::Null, "no event yet: unknown");

        // Any case, surrounding spaces: the whole message is the keyword.
        w.app.sim_customer_sends(&w.web, &customer, &[("kind", "text"), ("body", "  stop ")]).await;
        w.until("the opt-out", async || (w.consent_of(&id).await["state"] == "opt_out").then_some(())).await;
        let texts = w.until("the confirmation on the phone", async || {
            let t = w.phone_texts(&customer).await;
            t.iter().any(|x| x.contains("no longer receive")).then_some(t)
        }).await;
        assert_eq!(texts.len(), 1, "one confirmation: {texts:?}");
        let v = w.consent_of(&id).await;
        assert_eq!(v["events"][0]["source"], "keyword");
        assert!(v["events"][0]["evidence"].as_str().unwrap().contains("stop"), "{v}");

        // A message that merely contains the word is a conversation, not a keyword.
        w.app.sim_customer_sends(&w.web, &customer, &[("kind", "text"), ("body", "please stop the noise")]).await;
        w.app.sim_customer_sends(&w.web, &customer, &[("kind", "text"), ("body", "START")]).await;
        w.until("the opt-in", async || (w.consent_of(&id).await["state"] == "opt_in").then_some(())).await;
        assert_eq!(w.consent_of(&id).await["events"].as_array().unwrap().len(), 2, "the sentence with stop changed nothing");
        w.until("the opt-in confirmation", async || {
            w.phone_texts(&customer).await.iter().any(|x| x.contains("subscribed")).then_some(())
        }).await;

        // The organisation's own keyword.
        let s = w.ok(Method::PUT, "/api/v1/audience/settings", Some(json!({
            "opt_out_keywords": ["stop", "Unsubscribe"], "opt_in_keywords": ["START"],
            "opt_out_reply": "Done, no more offers.", "opt_in_reply": "Welcome back."
        }))).await;
        assert_eq!(s["opt_out_keywords"], json!(["STOP", "UNSUBSCRIBE"]));
        w.app.sim_customer_sends(&w.web, &customer, &[("kind", "text"), ("body", "unsubscribe")]).await;
        w.until("the second opt-out", async || (w.consent_of(&id).await["state"] == "opt_out").then_some(())).await;
        w.until("the custom confirmation", async || {
            w.phone_texts(&customer).await.iter().any(|x| x == "Done, no more offers.").then_some(())
        }).await;

        let audit = w.ok(Method::GET, "/api/v1/audit-events?action=consent.opt_out", None).await;
        let events = audit["events"].as_array().unwrap();
        assert_eq!(events.len(), 2, "{audit}");
        assert!(events.iter().all(|e| e["data"]["source"] == "keyword" && e["target_id"] == id.as_str()));
        assert!(!audit.to_string().contains("4155550123"), "no number in the audit log");
    }

    async fn consent_recorded_by_hand_needs_evidence_and_a_person_source(db) {
        let w = world(db).await;
        let c = w.ok(Method::POST, "/api/v1/contacts", Some(json!({ "phone": PHONE, "name": "Ravi" }))).await;
        let id = c["id"].as_str().unwrap();
        let (s, v) = w.app.api(Method::POST, &format!("/api/v1/contacts/{id}/consent"), Some(&w.admin.access),
            Some(json!({ "state": "opt_in", "source": "keyword", "evidence": "x" }))).await;
        assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_source")));
        let (s, v) = w.app.api(Method::POST, &format!("/api/v1/contacts/{id}/consent"), Some(&w.admin.access),
            Some(json!({ "state": "opt_in", "source": "form", "evidence": "  " }))).await;
        assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("evidence_required")));
        w.ok(Method::POST, &format!("/api/v1/contacts/{id}/consent"), Some(json!({ "state": "opt_in", "source": "form", "evidence": "Signed the shop's paper form" }))).await;
        let c = w.ok(Method::GET, &format!("/api/v1/contacts/{id}"), None).await;
        assert_eq!(c["consent"], "opt_in");
        let (s, v) = w.app.api(Method::PUT, "/api/v1/audience/settings", Some(&w.admin.access),
            Some(json!({ "opt_out_keywords": [], "opt_in_keywords": ["START"], "opt_out_reply": "x", "opt_in_reply": "y" }))).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    }

    async fn agents_get_masked_numbers_from_the_contacts_api(db) {
        let w = world(db).await;
        let agent = w.app.add_member(&w.admin, "agent@audience.example", "agent").await;
        let c = w.ok(Method::POST, "/api/v1/contacts", Some(json!({ "phone": PHONE, "name": "Ravi" }))).await;
        let id = c["id"].as_str().unwrap();
        let (s, v) = w.app.api(Method::GET, &format!("/api/v1/contacts/{id}"), Some(&agent.access), None).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v["phone_masked"], true);
        assert!(!v.to_string().contains("4155550123"), "{v}");
        let (_, page) = w.app.api(Method::GET, "/api/v1/contacts", Some(&agent.access), None).await;
        assert!(!page.to_string().contains("4155550123"), "{page}");
        assert_eq!(page["items"][0]["phone_masked"], true);
    }

    async fn an_import_runs_in_the_background_and_reports_every_rejected_row(db) {
        let w = world(db).await;
        w.ok(Method::POST, "/api/v1/tags", Some(json!({ "name": "vip" }))).await;
        let csv = "name,phone,tags,consent\nAsha,+14155550100,vip,yes\nBad,999,,\nAsha again,+1 415 555 0100,,\n";
        let up = w.ok(Method::POST, "/api/v1/contact-imports", Some(json!({ "filename": "p.csv", "csv": csv }))).await;
        let id = up["id"].as_str().unwrap();
        let mapping = json!({ "mapping": { "columns": { "name": "name", "phone": "phone", "tags": "tags", "consent": "consent" }, "consent_evidence": "Counter sign-up sheet" } });
        let dry = w.ok(Method::POST, &format!("/api/v1/contact-imports/{id}/dry-run"), Some(mapping.clone())).await;
        assert_eq!(dry["created"], 1);
        let lines: Vec<i64> = dry["rejected"].as_array().unwrap().iter().map(|r| r["line"].as_i64().unwrap()).collect();
        assert_eq!(lines, [3, 4], "{dry}");
        let (s, v) = w.app.api(Method::POST, &format!("/api/v1/contact-imports/{id}/run"), Some(&w.admin.access), Some(mapping.clone())).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{v}");
        let done = w.until("the import", async || {
            let v = w.ok(Method::GET, &format!("/api/v1/contact-imports/{id}"), None).await;
            (v["status"] == "done").then_some(v)
        }).await;
        assert_eq!((done["processed_rows"].as_i64(), done["created"].as_i64()), (Some(3), Some(1)));
        assert_eq!(done["rejected"].as_array().unwrap().len(), 2);
        assert_eq!((done["rejected_count"].as_i64(), done["duplicate_count"].as_i64()), (Some(2), Some(1)), "{done}");
        // Every rejected row as CSV, the import's and the dry run's; a phase that is not one is refused.
        for phase in ["import", "dry_run"] {
            let r = w.app.client.get(w.app.url(&format!("/api/v1/contact-imports/{id}/rejections.csv?phase={phase}")))
                .bearer_auth(&w.admin.access).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            let csv = r.text().await.unwrap();
            assert!(csv.starts_with("line,reason\n3,phone"), "{csv}");
            assert!(csv.contains("\n4,duplicate of line 2"), "{csv}");
        }
        let (s, v) = w.app.api(Method::GET, &format!("/api/v1/contact-imports/{id}/rejections.csv?phase=later"), Some(&w.admin.access), None).await;
        assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid")), "{v}");
        let page = w.ok(Method::GET, "/api/v1/contacts?q=4155550100", None).await;
        let c = &page["items"][0];
        assert_eq!((c["consent"].as_str(), c["tags"][0]["name"].as_str()), (Some("opt_in"), Some("vip")));
        let (s, v) = w.app.api(Method::POST, &format!("/api/v1/contact-imports/{id}/run"), Some(&w.admin.access), Some(mapping)).await;
        assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("import_started")));
    }

    async fn an_export_needs_a_second_admin_and_only_the_requester_downloads_it(db) {
        let w = world(db).await;
        w.ok(Method::POST, "/api/v1/contacts", Some(json!({ "phone": PHONE, "name": "Ravi" }))).await;
        let manager = w.app.add_member(&w.admin, "manager@audience.example", "manager").await;
        let (s, req) = w.app.api(Method::POST, "/api/v1/contact-exports", Some(&manager.access), Some(json!({}))).await;
        assert_eq!(s, StatusCode::CREATED, "{req}");
        let id = req["id"].as_str().unwrap();
        let (s, _) = w.app.api(Method::POST, &format!("/api/v1/contact-exports/{id}/decision"), Some(&manager.access), Some(json!({ "approve": true }))).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "a manager may not approve");
        let (s, v) = w.app.api(Method::GET, &format!("/api/v1/contact-exports/{id}/download"), Some(&manager.access), None).await;
        assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("export_not_approved")));
        w.ok(Method::POST, &format!("/api/v1/contact-exports/{id}/decision"), Some(json!({ "approve": true }))).await;
        let (s, _) = w.app.api(Method::GET, &format!("/api/v1/contact-exports/{id}/download"), Some(&w.admin.access), None).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "only the requester downloads");
        let r = w.app.client.get(w.app.url(&format!("/api/v1/contact-exports/{id}/download"))).bearer_auth(&manager.access).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let csv = r.text().await.unwrap();
        assert!(csv.contains("+14155550123") && csv.contains("Ravi"), "a manager sees numbers: {csv}");
        let audit = w.ok(Method::GET, "/api/v1/audit-events?target_type=contact_export", None).await;
        let actions: Vec<&str> = audit["events"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
        assert_eq!(actions, ["contact_export.downloaded", "contact_export.approved", "contact_export.requested"]);
    }
}
