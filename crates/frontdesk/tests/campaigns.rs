//! Campaigns over HTTP, on both backends, through the simulator: an approved template sent
//! to a segment (an opted-out contact left out), reaching the customers' phones filled in
//! with each one's values, a number that is on no phone failing with its reason, a reply and
//! a click counted, the figures and the CSV report; the pages show the same.

mod common;

use common::TestApp;
use common::simulator::SimChannel;
use common::users::{ApiUser, WebSession};
use frontdesk_store::both_backends;
use frontdesk_store::testing::TestDb;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;

struct World {
    app: TestApp,
    admin: ApiUser,
    web: WebSession,
    ch: SimChannel,
}

async fn world(db: TestDb) -> World {
    let app = TestApp::spawn(db).await;
    let admin = app.signup("Spring shop", "admin@campaigns.example").await;
    let web = app.web_login(&admin.email, common::users::PASSWORD).await;
    let ch = app.provision_sim(&admin, "Shop", None).await;
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

    async fn until<T>(&self, what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
        for _ in 0..400 {
            self.app.drain().await;
            if let Some(v) = check().await {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("timed out waiting for {what}");
    }

    async fn phone_texts(&self, customer: &str) -> Vec<String> {
        let v = self
            .ok(
                Method::GET,
                &format!("/api/v1/simulator/customers/{customer}/messages"),
                None,
            )
            .await;
        v["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["direction"] == "to_customer")
            .map(|m| m["text"].as_str().unwrap().to_owned())
            .collect()
    }

    /// An approved template of this shop (created, submitted, approved by the simulator).
    async fn approved(&self, template: Value) -> String {
        let t = self
            .ok(
                Method::POST,
                "/api/v1/templates",
                Some(json!({ "channel_id": self.ch.id, "template": template })),
            )
            .await;
        let tid = t["id"].as_str().unwrap().to_owned();
        self.ok(
            Method::POST,
            &format!("/api/v1/templates/{tid}/submit"),
            None,
        )
        .await;
        self.until("the template approved", async || {
            let t = self
                .ok(Method::GET, &format!("/api/v1/templates/{tid}"), None)
                .await;
            (t["status"] == "APPROVED").then_some(())
        })
        .await;
        tid
    }

    /// Waits until the campaign completed, then its figures.
    async fn completed(&self, id: &str) -> Value {
        self.until("the campaign completed", async || {
            let d = self
                .ok(Method::GET, &format!("/api/v1/campaigns/{id}"), None)
                .await;
            (d["campaign"]["status"] == "completed").then_some(d["figures"].clone())
        })
        .await
    }

    async fn contact(&self, name: &str, phone: &str, tag: &str) -> String {
        let c = self
            .ok(
                Method::POST,
                "/api/v1/contacts",
                Some(json!({ "name": name, "phone": phone })),
            )
            .await;
        let id = c["id"].as_str().unwrap().to_owned();
        self.ok(
            Method::PUT,
            &format!("/api/v1/contacts/{id}/tags/{tag}"),
            None,
        )
        .await;
        id
    }
}

both_backends! {
    async fn a_campaign_reaches_the_segment_through_the_simulator_and_its_figures_rise(db) {
        let w = world(db).await;
        // An approved template with a tracked button.
        let t = w.ok(Method::POST, "/api/v1/templates", Some(json!({ "channel_id": w.ch.id, "template": {
            "name": "spring_offer", "language": "en_US", "category": "UTILITY",
            "body": { "text": "Hi {{1}}, your {{2}} order is ready for pickup.", "examples": ["Ana", "spring"] },
            "buttons": [{ "type": "url", "text": "Track it", "url": "https://shop.example/orders", "track": true }]
        } }))).await;
        let tid = t["id"].as_str().unwrap().to_owned();
        w.ok(Method::POST, &format!("/api/v1/templates/{tid}/submit"), None).await;
        w.until("the template approved", async || {
            let t = w.ok(Method::GET, &format!("/api/v1/templates/{tid}"), None).await;
            (t["status"] == "APPROVED").then_some(())
        }).await;

        // Three customers with phones, one number on no phone, one who opted out.
        let asha = w.app.sim_customer(&w.web, &w.ch.id, "Asha Rao", "+14155550100", "").await;
        let ben = w.app.sim_customer(&w.web, &w.ch.id, "Ben Okafor", "+14155550101", "").await;
        let tag = w.ok(Method::POST, "/api/v1/tags", Some(json!({ "name": "spring" }))).await["id"].as_str().unwrap().to_owned();
        w.contact("Asha Rao", "+14155550100", &tag).await;
        w.contact("Ben Okafor", "+14155550101", &tag).await;
        w.contact("Nobody Home", "+14155550109", &tag).await;
        let dan = w.contact("Dan Stop", "+14155550102", &tag).await;
        w.ok(Method::POST, &format!("/api/v1/contacts/{dan}/consent"),
            Some(json!({ "state": "opt_out", "source": "agent", "evidence": "asked by phone" }))).await;
        let seg = w.ok(Method::POST, "/api/v1/segments", Some(json!({ "name": "Spring", "rule": { "has_tag": tag } }))).await["id"].as_str().unwrap().to_owned();

        // A bad mapping is refused before anything is stored.
        let (s, v) = w.call(Method::POST, "/api/v1/campaigns", Some(json!({ "name": "Spring", "channel_id": w.ch.id, "segment_id": seg,
            "template_name": "spring_offer", "template_language": "en_US", "mapping": { "body": [{ "source": "password" }] } }))).await;
        assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid")), "{v}");
        let c = w.ok(Method::POST, "/api/v1/campaigns", Some(json!({ "name": "Spring", "channel_id": w.ch.id, "segment_id": seg,
            "template_name": "spring_offer", "template_language": "en_US", "consent": "not_opted_out",
            "mapping": { "body": [{ "source": "first_name", "fallback": "there" }, { "source": "text", "fallback": "spring" }] } }))).await;
        let id = c["id"].as_str().unwrap().to_owned();
        assert_eq!(c["status"], "draft");

        let r = w.ok(Method::GET, &format!("/api/v1/campaigns/{id}/review"), None).await;
        assert_eq!((r["matched"].as_i64(), r["opted_out"].as_i64(), r["sendable"].as_i64()), (Some(4), Some(1), Some(3)), "{r}");
        assert_eq!(r["languages"][0]["language"], "en_US");
        assert!(r["languages"][0]["preview"].as_str().unwrap().starts_with("Hi Asha, your spring order is ready"), "{r}");

        // Launched: the phones show it, each with their own name.
        let l = w.ok(Method::POST, &format!("/api/v1/campaigns/{id}/launch"), Some(json!({}))).await;
        assert_eq!(l["status"], "running");
        let text = w.until("Asha's phone", async || w.phone_texts(&asha).await.into_iter().find(|t| t.contains("spring order"))).await;
        assert!(text.starts_with("Hi Asha, your spring order is ready for pickup."), "{text}");
        w.until("Ben's phone", async || w.phone_texts(&ben).await.into_iter().find(|t| t.starts_with("Hi Ben,"))).await;

        // Ben replies; Asha follows the tracked button.
        w.app.sim_customer_sends(&w.web, &ben, &[("kind", "text"), ("body", "Can I come at 5?")]).await;
        let link = text.split("[Track it → ").nth(1).unwrap().trim_end_matches(']').to_owned();
        let r = w.app.client.get(&link).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::FOUND);

        // Statuses come back by webhook one after another: allow a loaded machine time.
        let mut detail = Value::Null;
        for _ in 0..1200 {
            w.app.drain().await;
            detail = w.ok(Method::GET, &format!("/api/v1/campaigns/{id}"), None).await;
            let f = &detail["figures"];
            if detail["campaign"]["status"] == "completed" && f["delivered"] == 2 && f["failed"] == 1 && f["replied"] == 1 && f["clicked"] == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let f = &detail["figures"];
        assert_eq!((f["delivered"].as_i64(), f["failed"].as_i64(), f["replied"].as_i64(), f["clicked"].as_i64()), (Some(2), Some(1), Some(1), Some(1)), "{detail}");
        assert_eq!((f["recipients"].as_i64(), f["queued"].as_i64(), f["sent"].as_i64()), (Some(3), Some(3), Some(2)), "{f}");
        assert!(f["failed_by_reason"][0]["reason"].as_str().unwrap().starts_with("131026"), "{f}");
        assert_eq!(f["excluded"], json!([{ "reason": "opted_out", "count": 1 }]));

        // Recipients in pages, and the CSV report.
        let p = w.ok(Method::GET, &format!("/api/v1/campaigns/{id}/recipients?limit=2"), None).await;
        assert_eq!(p["items"].as_array().unwrap().len(), 2);
        let cursor = p["next_cursor"].as_str().unwrap();
        let p2 = w.ok(Method::GET, &format!("/api/v1/campaigns/{id}/recipients?limit=2&cursor={cursor}"), None).await;
        assert_eq!((p2["items"].as_array().unwrap().len(), &p2["next_cursor"]), (1, &Value::Null));
        let r = w.app.client.get(w.app.url(&format!("/api/v1/campaigns/{id}/report.csv")))
            .bearer_auth(&w.admin.access).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let csv = r.text().await.unwrap();
        assert!(csv.starts_with("figure,count\nrecipients,3\nqueued,3\nsent,2\ndelivered,2\n"), "{csv}");
        assert!(csv.contains("Asha Rao,en_US,queued,,read") || csv.contains("Asha Rao,en_US,queued,,delivered"), "{csv}");
        assert!(csv.contains("Nobody Home,en_US,queued,,failed,131026"), "{csv}");

        // A finished campaign cannot be paused; the page shows the same figures.
        let (s, v) = w.call(Method::POST, &format!("/api/v1/campaigns/{id}/pause"), None).await;
        assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("campaign_state")), "{v}");
        let page = w.app.web_get(&w.web, &format!("/campaigns/{id}")).await.text().await.unwrap();
        assert!(page.contains("data-testid=\"figure-replied\">1<") && page.contains("data-testid=\"campaign-chart\""), "{page}");
        let audit = w.ok(Method::GET, "/api/v1/audit-events?limit=100", None).await;
        let actions: Vec<&str> = audit["events"].as_array().unwrap().iter().filter_map(|e| e["action"].as_str()).collect();
        for want in ["campaign.created", "campaign.launched", "campaign.completed", "campaign.report_downloaded"] {
            assert!(actions.contains(&want), "{want} not in {actions:?}");
        }
    }

    async fn a_csv_campaign_reaches_the_files_customers_with_their_own_values_and_only_a_draft_is_edited(db) {
        let w = world(db).await;
        w.approved(json!({ "name": "pickup_code", "language": "en_US", "category": "UTILITY",
            "body": { "text": "Hi {{1}}, your pickup code is {{2}}.", "examples": ["Ana", "A1"] } })).await;
        let asha = w.app.sim_customer(&w.web, &w.ch.id, "Asha Rao", "+14155550100", "").await;
        let ben = w.app.sim_customer(&w.web, &w.ch.id, "Ben Okafor", "+14155550101", "").await;
        let csv = "Phone,First,Code\n+1 415 555 0100,Asha,A1\n+14155550101,Ben,B2\nnot a number,Nobody,C3\n+14155550100,Asha,D4\n";
        let body = |extra: Value| {
            let mut b = json!({ "name": "Pickup codes", "channel_id": w.ch.id, "template_name": "pickup_code", "template_language": "en_US",
                "consent": "not_opted_out", "mapping": { "body": [{ "source": "column:First", "fallback": "there" }, { "source": "column:Code" }] } });
            b.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            b
        };

        // One audience, a file with a phone column, and a mapping that reads its columns.
        let seg = w.ok(Method::POST, "/api/v1/segments", Some(json!({ "name": "All", "rule": { "and": [] } }))).await["id"].as_str().unwrap().to_owned();
        let (s, v) = w.call(Method::POST, "/api/v1/campaigns", Some(body(json!({ "segment_id": seg, "audience_csv": { "filename": "a.csv", "csv": csv } })))).await;
        assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid")), "{v}");
        let (s, v) = w.call(Method::POST, "/api/v1/campaigns", Some(body(json!({ "audience_csv": { "filename": "a.csv", "csv": "Name,Code\nAsha,A1\n" } })))).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        assert!(v["error"]["message"].as_str().unwrap().contains("phone"), "{v}");
        let (s, v) = w.call(Method::POST, "/api/v1/campaigns", Some(body(json!({ "audience_csv": { "filename": "a.csv", "csv": "Phone,Name\n+14155550100,Asha\n" } })))).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "a mapping reading columns the file lacks: {v}");
        // A file's rows become contacts: a campaign manager without contacts.write may not.
        w.ok(Method::POST, "/api/v1/roles", Some(json!({ "name": "Campaigner", "permissions": ["campaigns.manage"] }))).await;
        let campaigner = w.app.add_member(&w.admin, "campaigner@campaigns.example", "Campaigner").await;
        let (s, v) = w.app.api(Method::POST, "/api/v1/campaigns", Some(&campaigner.access), Some(body(json!({ "audience_csv": { "filename": "a.csv", "csv": csv } })))).await;
        assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")), "{v}");
        let listed = w.ok(Method::GET, "/api/v1/campaigns", None).await;
        assert!(listed["items"].as_array().unwrap().is_empty(), "nothing was stored: {listed}");

        let c = w.ok(Method::POST, "/api/v1/campaigns", Some(body(json!({ "audience_csv": { "filename": "pickups.csv", "csv": csv } })))).await;
        let id = c["id"].as_str().unwrap().to_owned();
        assert!(c["import_id"].is_string() && c["segment_id"].is_null(), "{c}");

        // The review, once the worker imported the file: the invalid and duplicate rows.
        let r = w.until("the file imported", async || {
            let r = w.ok(Method::GET, &format!("/api/v1/campaigns/{id}/review"), None).await;
            (r["file"]["status"] == "done").then_some(r)
        }).await;
        assert_eq!((r["file"]["total_rows"].as_i64(), r["file"]["invalid_rows"].as_i64(), r["file"]["duplicate_rows"].as_i64()), (Some(4), Some(1), Some(1)), "{r}");
        assert_eq!((r["matched"].as_i64(), r["sendable"].as_i64()), (Some(2), Some(2)), "{r}");
        assert_eq!(r["languages"][0]["preview"], "Hi Asha, your pickup code is A1.", "{r}");

        // The same file can be another campaign's audience; a file never imported cannot.
        let again = w.ok(Method::POST, "/api/v1/campaigns", Some(body(json!({ "import_id": c["import_id"] })))).await;
        let r = w.ok(Method::GET, &format!("/api/v1/campaigns/{}/review", again["id"].as_str().unwrap()), None).await;
        assert_eq!((r["matched"].as_i64(), r["file"]["duplicate_rows"].as_i64()), (Some(2), Some(1)), "{r}");
        let idle = w.ok(Method::POST, "/api/v1/contact-imports", Some(json!({ "filename": "idle.csv", "csv": csv }))).await;
        let (s, v) = w.call(Method::POST, "/api/v1/campaigns", Some(body(json!({ "import_id": idle["id"] })))).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        assert!(v["error"]["message"].as_str().unwrap().starts_with("audience:"), "{v}");

        // The draft is edited (audited); an invalid edit changes nothing.
        let (s, v) = w.call(Method::PATCH, &format!("/api/v1/campaigns/{id}"), Some(json!({ "template_name": "no_such_template" }))).await;
        assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid")), "{v}");
        let (s, v) = w.call(Method::PATCH, &format!("/api/v1/campaigns/{id}"), Some(json!({ "send_at": "2020-01-01T09:00" }))).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "a planned time in the past: {v}");
        let e = w.ok(Method::PATCH, &format!("/api/v1/campaigns/{id}"), Some(json!({ "name": "Pickup codes (today)", "send_at": "2099-01-01T09:00",
            "mapping": { "body": [{ "source": "column:First" }, { "source": "column:Code" }] } }))).await;
        assert_eq!((e["name"].as_str(), e["status"].as_str()), (Some("Pickup codes (today)"), Some("draft")), "{e}");
        assert!(e["scheduled_at"].as_str().unwrap().starts_with("2099-01-01"), "{e}");
        assert_eq!(e["import_id"], c["import_id"], "the audience is kept when not given");
        let e = w.ok(Method::PATCH, &format!("/api/v1/campaigns/{id}"), Some(json!({ "send_at": null }))).await;
        assert!(e["scheduled_at"].is_null(), "{e}");

        // Sent: each phone shows its own row's values.
        let l = w.ok(Method::POST, &format!("/api/v1/campaigns/{id}/launch"), Some(json!({}))).await;
        assert_eq!(l["status"], "running");
        let text = w.until("Asha's phone", async || w.phone_texts(&asha).await.into_iter().find(|t| t.contains("pickup code"))).await;
        assert_eq!(text, "Hi Asha, your pickup code is A1.");
        let text = w.until("Ben's phone", async || w.phone_texts(&ben).await.into_iter().find(|t| t.contains("pickup code"))).await;
        assert_eq!(text, "Hi Ben, your pickup code is B2.");
        let f = w.completed(&id).await;
        assert_eq!((f["recipients"].as_i64(), f["queued"].as_i64()), (Some(2), Some(2)), "{f}");

        // Launched: no more edits.
        let (s, v) = w.call(Method::PATCH, &format!("/api/v1/campaigns/{id}"), Some(json!({ "name": "Too late" }))).await;
        assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("campaign_state")), "{v}");
        let r = w.app.web_get(&w.web, &format!("/campaigns/{id}/edit")).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "the edit page of a sent campaign goes back to it");
        let audit = w.ok(Method::GET, "/api/v1/audit-events?limit=100", None).await;
        let actions: Vec<&str> = audit["events"].as_array().unwrap().iter().filter_map(|e| e["action"].as_str()).collect();
        for want in ["campaign.created", "campaign.updated", "contact_import.started", "contact_import.finished", "campaign.launched"] {
            assert!(actions.contains(&want), "{want} not in {actions:?}");
        }
    }

    async fn a_location_header_campaign_shows_the_place_on_the_phone(db) {
        let w = world(db).await;
        w.approved(json!({ "name": "find_us", "language": "en_US", "category": "UTILITY", "header": { "format": "location" },
            "body": { "text": "Hi {{1}}, our new shop is open.", "examples": ["Ana"] } })).await;
        let asha = w.app.sim_customer(&w.web, &w.ch.id, "Asha Rao", "+14155550100", "").await;
        let tag = w.ok(Method::POST, "/api/v1/tags", Some(json!({ "name": "locals" }))).await["id"].as_str().unwrap().to_owned();
        w.contact("Asha Rao", "+14155550100", &tag).await;
        let seg = w.ok(Method::POST, "/api/v1/segments", Some(json!({ "name": "Locals", "rule": { "has_tag": tag } }))).await["id"].as_str().unwrap().to_owned();
        let body = |location: Value| json!({ "name": "Find us", "channel_id": w.ch.id, "segment_id": seg, "template_name": "find_us",
            "template_language": "en_US", "consent": "not_opted_out",
            "mapping": { "body": [{ "source": "first_name", "fallback": "there" }], "location": location } });
        let (s, v) = w.call(Method::POST, "/api/v1/campaigns", Some(body(json!({ "latitude": 18.5, "longitude": 200.0 })))).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        assert!(v["error"]["message"].as_str().unwrap().contains("location.longitude"), "{v}");
        let c = w.ok(Method::POST, "/api/v1/campaigns", Some(body(json!({ "latitude": 18.5204, "longitude": 73.8567, "name": "Sunrise Store", "address": "12 FC Road, Pune" })))).await;
        let id = c["id"].as_str().unwrap().to_owned();
        let r = w.ok(Method::GET, &format!("/api/v1/campaigns/{id}/review"), None).await;
        assert_eq!(r["sendable"], 1, "{r}");
        assert!(r["languages"][0]["problem"].is_null(), "{r}");
        w.ok(Method::POST, &format!("/api/v1/campaigns/{id}/launch"), Some(json!({}))).await;
        let text = w.until("the pin on the phone", async || w.phone_texts(&asha).await.into_iter().find(|t| t.contains("new shop"))).await;
        assert_eq!(text, "[location: Sunrise Store, 12 FC Road, Pune]\nHi Asha, our new shop is open.");
    }
}
