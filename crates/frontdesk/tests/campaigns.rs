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
}
