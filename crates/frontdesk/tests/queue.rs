//! The clinic queue end to end, on both backends: patients join, ask STATUS and CANCEL over
//! WhatsApp through the simulator and get their messages through the outbox; staff run the
//! queue through the API; receptionist and doctor are custom roles, and a doctor sees and
//! calls only their own queue.

mod common;

use common::TestApp;
use common::simulator::SimChannel;
use common::users::{ApiUser, WebSession};
use frontdesk_store::testing::TestDb;
use frontdesk_store::{TenantCtx, both_backends};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;

struct World {
    app: TestApp,
    admin: ApiUser,
    web: WebSession,
    ch: SimChannel,
    ctx: TenantCtx,
}

async fn world(db: TestDb) -> World {
    let app = TestApp::spawn(db).await;
    let admin = app.signup("Queue clinic", "admin@queue.example").await;
    let web = app.web_login(&admin.email, common::users::PASSWORD).await;
    let ch = app.provision_sim(&admin, "Front desk", None).await;
    let ctx = app
        .db
        .store
        .webhook_target(&ch.webhook_key)
        .await
        .unwrap()
        .unwrap()
        .ctx;
    World {
        app,
        admin,
        web,
        ch,
        ctx,
    }
}

impl World {
    async fn call(
        &self,
        who: &ApiUser,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.app.api(method, path, Some(&who.access), body).await
    }

    async fn create_queue(&self, name: &str, keyword: &str, doctors: &[&str]) -> String {
        let (s, q) = self
            .call(
                &self.admin,
                Method::POST,
                "/api/v1/queues",
                Some(json!({
                "channel_id": self.ch.id, "name": name, "keywords": [keyword], "token_prefix": "A",
                "daily_cap": 50, "position_step": 1, "doctors": doctors })),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{q}");
        q["id"].as_str().unwrap().to_owned()
    }

    async fn customer(&self, name: &str, phone: &str) -> String {
        self.app
            .sim_customer(&self.web, &self.ch.id, name, phone, "")
            .await
    }

    async fn says(&self, customer: &str, text: &str) {
        self.app
            .sim_customer_sends(&self.web, customer, &[("kind", "text"), ("body", text)])
            .await
    }

    /// The texts we sent a phone number, oldest first.
    async fn texts_to(&self, phone: &str) -> Vec<String> {
        let mut tx = self.app.db.store.begin_read(&self.ctx).await.unwrap();
        let who = frontdesk_store::CustomerIdentity {
            phone: Some(frontdesk_domain::E164::parse(phone).unwrap()),
            ..Default::default()
        };
        let Some(id) = tx.find_contact(&who).await.unwrap() else {
            return vec![];
        };
        let channel = frontdesk_domain::ChannelId::parse(&self.ch.id).unwrap();
        let Some(conv) = tx.find_conversation(channel, id).await.unwrap() else {
            return vec![];
        };
        tx.conversation_messages(conv.id, 200)
            .await
            .unwrap()
            .into_iter()
            .filter(|m| m.direction == "out")
            .map(|m| m.content["body"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// Everything we queued for a phone number, oldest first: (content, status).
    async fn sent_to(&self, phone: &str) -> Vec<(Value, String)> {
        let mut tx = self.app.db.store.begin_read(&self.ctx).await.unwrap();
        let who = frontdesk_store::CustomerIdentity {
            phone: Some(frontdesk_domain::E164::parse(phone).unwrap()),
            ..Default::default()
        };
        let Some(id) = tx.find_contact(&who).await.unwrap() else {
            return vec![];
        };
        let channel = frontdesk_domain::ChannelId::parse(&self.ch.id).unwrap();
        let Some(conv) = tx.find_conversation(channel, id).await.unwrap() else {
            return vec![];
        };
        tx.conversation_messages(conv.id, 200)
            .await
            .unwrap()
            .into_iter()
            .filter(|m| m.direction == "out")
            .map(|m| {
                (
                    m.content,
                    serde_json::to_value(m.status)
                        .unwrap()
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                )
            })
            .collect()
    }

    /// New sessions after the test clock jumped past the old ones' lifetime.
    async fn sign_in_again(&mut self) {
        self.admin = self
            .app
            .login(&self.admin.email, common::users::PASSWORD)
            .await;
        self.web = self
            .app
            .web_login(&self.admin.email, common::users::PASSWORD)
            .await;
    }

    async fn create_queue_with(&self, body: Value) -> String {
        let mut b = json!({ "channel_id": self.ch.id, "token_prefix": "A", "daily_cap": 50, "position_step": 1 });
        for (k, v) in body.as_object().unwrap() {
            b[k] = v.clone();
        }
        let (s, q) = self
            .call(&self.admin, Method::POST, "/api/v1/queues", Some(b))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{q}");
        q["id"].as_str().unwrap().to_owned()
    }

    /// The actions in a token's history.
    async fn history(&self, token: &str) -> Vec<Value> {
        let (s, d) = self
            .call(
                &self.admin,
                Method::GET,
                &format!("/api/v1/queue-tokens/{token}"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{d}");
        d["history"].as_array().unwrap().clone()
    }

    /// Runs the worker until `phone` has received `n` texts (webhooks arrive over HTTP).
    async fn until_texts(&self, phone: &str, n: usize) -> Vec<String> {
        for _ in 0..600 {
            self.app.drain().await;
            let t = self.texts_to(phone).await;
            if t.len() >= n {
                return t;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "{phone} never got {n} texts: {:?}",
            self.texts_to(phone).await
        );
    }
}

both_backends! {
    async fn patients_join_check_and_leave_by_whatsapp_and_hear_when_called(db) {
        let w = world(db).await;
        let q = w.create_queue("Dr Mehta", "Dr Mehta", &[]).await;
        let (asha, ravi) = ("+919800000001", "+919800000002");
        let c1 = w.customer("Asha", asha).await;
        let c2 = w.customer("Ravi", ravi).await;

        w.says(&c1, "  dr   MEHTA ").await;
        let t = w.until_texts(asha, 1).await;
        assert!(t[0].contains("Your token is A-001") && t[0].contains("number 1"), "{t:?}");
        w.says(&c1, "DR MEHTA").await;
        let t = w.until_texts(asha, 2).await;
        assert!(t[1].contains("already in Dr Mehta with token A-001"), "{t:?}");

        w.says(&c2, "dr mehta").await;
        let t = w.until_texts(ravi, 1).await;
        assert!(t[0].contains("A-002") && t[0].contains("number 2"), "{t:?}");
        w.says(&c2, "status").await;
        let t = w.until_texts(ravi, 2).await;
        assert!(t[1].contains("token A-002, you are number 2"), "{t:?}");
        // Anything else is left to the inbox.
        w.says(&c2, "hello doctor").await;
        w.app.drain().await;

        // The doctor calls: Asha is told to come in, Ravi that he is next.
        let (s, called) = w.call(&w.admin, Method::POST, &format!("/api/v1/queues/{q}/call-next"), None).await;
        assert_eq!((s, called["label"].as_str()), (StatusCode::OK, Some("A-001")), "{called}");
        let t = w.until_texts(asha, 3).await;
        assert!(t[2].contains("A-001, please come in"), "{t:?}");
        let t = w.until_texts(ravi, 3).await;
        assert!(t[2].contains("A-002, you are next"), "{t:?}");
        assert_eq!(t.len(), 3, "no reply to a text that is not a command: {t:?}");

        // Ravi leaves; the board shows nobody waiting and Asha with the doctor.
        w.says(&c2, "Cancel").await;
        let t = w.until_texts(ravi, 4).await;
        assert!(t[3].contains("A-002") && t[3].contains("cancelled"), "{t:?}");
        let board = w.app.api(Method::GET, &format!("/api/v1/queues/{q}/board"), Some(&w.admin.access), None).await.1;
        assert_eq!(board["waiting"].as_array().unwrap().len(), 0, "{board}");
        assert_eq!(board["current"][0]["label"], "A-001");
        let (s, done) = w.call(&w.admin, Method::POST, &format!("/api/v1/queue-tokens/{}/consult", called["id"].as_str().unwrap()), Some(json!({ "action": "complete" }))).await;
        assert_eq!((s, done["state"].as_str()), (StatusCode::OK, Some("complete")), "{done}");

        // The token's history is its audit trail, written with each change.
        let (_, detail) = w.call(&w.admin, Method::GET, &format!("/api/v1/queue-tokens/{}", called["id"].as_str().unwrap()), None).await;
        let actions: Vec<&str> = detail["history"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
        assert_eq!(actions, ["queue.joined", "queue.called", "queue.completed"]);
        // The screen shows labels only.
        let (_, screen) = w.call(&w.admin, Method::GET, &format!("/api/v1/queues/{q}/screen"), None).await;
        let text = screen.to_string();
        assert!(!text.contains("Asha") && !text.contains("9800000001"), "{text}");

        // Reports: one joined and served, one cancelled.
        let today = time::OffsetDateTime::now_utc().date();
        let (s, r) = w.call(&w.admin, Method::GET, &format!("/api/v1/queue-reports?from={today}&to={today}"), None).await;
        assert_eq!(s, StatusCode::OK, "{r}");
        assert_eq!((r[0]["joined"].as_i64(), r[0]["served"].as_i64(), r[0]["cancelled"].as_i64()), (Some(2), Some(1), Some(1)), "{r}");
    }

    async fn receptionist_and_doctor_roles_get_what_they_need_and_doctors_only_their_queue(db) {
        let w = world(db).await;
        for (name, perms) in [("Receptionist", json!(["queue.read", "queue.manage"])), ("Doctor", json!(["queue.read", "queue.call_next"]))] {
            let (s, v) = w.call(&w.admin, Method::POST, "/api/v1/roles", Some(json!({ "name": name, "permissions": perms }))).await;
            assert_eq!(s, StatusCode::CREATED, "{v}");
        }
        let desk = w.app.add_member(&w.admin, "desk@queue.example", "Receptionist").await;
        let doc = w.app.add_member(&w.admin, "doc@queue.example", "Doctor").await;
        let mine = w.create_queue("Dr Own", "OWN", &[&doc.user_id]).await;
        let other = w.create_queue("Dr Other", "OTHER", &[]).await;

        // The receptionist checks walk-ins in (one without a phone), but cannot call or export.
        for q in [&mine, &other] {
            let (s, v) = w.call(&desk, Method::POST, &format!("/api/v1/queues/{q}/check-in"), Some(json!({ "name": "Walk-in" }))).await;
            assert_eq!(s, StatusCode::CREATED, "{v}");
        }
        let (s, _) = w.call(&desk, Method::POST, &format!("/api/v1/queues/{mine}/call-next"), None).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let today = time::OffsetDateTime::now_utc().date();
        let (s, _) = w.call(&desk, Method::GET, &format!("/api/v1/queue-reports/export?from={today}&to={today}"), None).await;
        assert_eq!(s, StatusCode::FORBIDDEN);

        // The doctor sees and calls only their own queue; the other does not exist for them.
        let (_, list) = w.call(&doc, Method::GET, "/api/v1/queues", None).await;
        let names: Vec<&str> = list.as_array().unwrap().iter().map(|q| q["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["Dr Own"]);
        let (s, _) = w.call(&doc, Method::GET, &format!("/api/v1/queues/{other}/board"), None).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let (s, _) = w.call(&doc, Method::POST, &format!("/api/v1/queues/{other}/call-next"), None).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let (s, t) = w.call(&doc, Method::POST, &format!("/api/v1/queues/{mine}/call-next"), None).await;
        assert_eq!((s, t["label"].as_str()), (StatusCode::OK, Some("A-001")), "{t}");
        assert_eq!(t["called_by"], doc.user_id.as_str());
        let (s, _) = w.call(&doc, Method::POST, &format!("/api/v1/queues/{mine}/call-next"), None).await;
        assert_eq!(s, StatusCode::NO_CONTENT, "nobody else waits");
        let (s, _) = w.call(&doc, Method::POST, &format!("/api/v1/queues/{mine}/check-in"), Some(json!({ "name": "X" }))).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "checking in is the desk's");

        // The admin exports the report as CSV.
        let r = w.app.client.get(w.app.url(&format!("/api/v1/queue-reports/export?from={today}&to={today}")))
            .bearer_auth(&w.admin.access).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let csv = r.text().await.unwrap();
        assert!(csv.contains("\"Dr Own\",1,0,0,0") && csv.contains("\"Dr Other\",1,0,0,0"), "{csv}");
    }

    async fn reports_page_shows_served_waits_and_no_shows_with_csv_only_for_exporters(db) {
        let w = world(db).await;
        let q = w.create_queue("Dr Report", "REPORT", &[]).await;
        let mut ids = Vec::new();
        for name in ["Asha", "Ravi", "Sita"] {
            let (s, v) = w.call(&w.admin, Method::POST, &format!("/api/v1/queues/{q}/check-in"), Some(json!({ "name": name }))).await;
            assert_eq!(s, StatusCode::CREATED, "{v}");
            ids.push(v["token"]["id"].as_str().unwrap().to_owned());
        }
        // Asha is seen for ten minutes, Ravi does not come, Sita is still waiting.
        w.call(&w.admin, Method::POST, &format!("/api/v1/queues/{q}/call-next"), None).await;
        w.app.advance(600);
        let (s, _) = w.call(&w.admin, Method::POST, &format!("/api/v1/queue-tokens/{}/consult", ids[0]), Some(json!({ "action": "complete" }))).await;
        assert_eq!(s, StatusCode::OK);
        w.call(&w.admin, Method::POST, &format!("/api/v1/queues/{q}/call-next"), None).await;
        let (s, _) = w.call(&w.admin, Method::POST, &format!("/api/v1/queue-tokens/{}/manage", ids[1]), Some(json!({ "action": "no_show" }))).await;
        assert_eq!(s, StatusCode::OK);

        // The tokens' local day (not the test's clock, which may have crossed midnight).
        let (_, t) = w.call(&w.admin, Method::GET, &format!("/api/v1/queue-tokens/{}", ids[0]), None).await;
        let day = t["token"]["day"].as_str().unwrap().to_owned();
        let r = w.app.web_get(&w.web, &format!("/queues/reports?from={day}&to={day}&queue_id={q}")).await;
        assert_eq!(r.status(), StatusCode::OK);
        let html = r.text().await.unwrap();
        assert!(html.contains(">1 served<"), "{html}");
        assert!(html.contains("average consultation 10 min"), "{html}");
        assert!(html.contains("no-shows 50.0 %"), "{html}");
        assert!(html.contains(&format!("data-day=\"{day}\" data-served=\"1\"")), "one bar for the day: {html}");
        let csv = format!("/api/v1/queue-reports/export?from={day}&amp;to={day}&amp;queue_id={q}");
        assert!(html.contains(&csv), "the CSV link keeps the filter: {html}");
        // The link works with the page's session.
        let r = w.app.web_get(&w.web, &csv.replace("&amp;", "&")).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert!(r.text().await.unwrap().contains("\"Dr Report\",3,1,1,0"));

        // A receptionist reads reports but may not export: no CSV link.
        let (s, v) = w.call(&w.admin, Method::POST, "/api/v1/roles", Some(json!({ "name": "Receptionist", "permissions": ["queue.read", "queue.manage"] }))).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let desk = w.app.add_member(&w.admin, "desk@report.example", "Receptionist").await;
        let desk_web = w.app.web_login(&desk.email, common::users::PASSWORD).await;
        let html = w.app.web_get(&desk_web, "/queues/reports").await.text().await.unwrap();
        assert!(html.contains("data-testid=\"served-chart\"") && !html.contains("report-csv"), "{html}");

        // A bad date is shown again beside its field, as typed.
        let r = w.app.web_get(&w.web, "/queues/reports?from=last+week&to=2026-01-01").await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let html = r.text().await.unwrap();
        assert!(html.contains("data-testid=\"error-from\"") && html.contains("value=\"last week\"") && html.contains("value=\"2026-01-01\""), "{html}");
        assert!(!html.contains("served-chart"), "no report for a bad filter");
    }

    async fn refused_settings_and_board_forms_come_back_with_the_error_beside_the_field_and_the_input_kept(db) {
        let w = world(db).await;
        let q = w.create_queue("Dr Forms", "FORMS", &[]).await;
        w.create_queue("Dr Taken", "TAKEN", &[]).await;
        let form = |name: &'static str, keywords: &'static str, mon: &'static str| {
            vec![("name", name), ("channel_id", w.ch.id.as_str()), ("keywords", keywords), ("token_prefix", "F"),
                 ("daily_cap", "40"), ("position_step", "2"), ("hours_mon", mon), ("holidays", "2026-12-25"),
                 ("text:en:joined", "Welcome {token}")]
        };
        // Bad hours: Monday's field carries the error; everything typed is still there.
        let r = w.app.web_post(&w.web, &format!("/queues/{q}"), &form("Dr Forms Renamed", "FORMS", "nine to five")).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let html = r.text().await.unwrap();
        assert!(html.contains("data-testid=\"error-hours_mon\""), "{html}");
        for kept in ["value=\"Dr Forms Renamed\"", "value=\"nine to five\"", "value=\"2026-12-25\"", "Welcome {token}", "value=\"40\""] {
            assert!(html.contains(kept), "{kept} kept: {html}");
        }
        // Close before open is Monday's error too (the store's rule, named by day).
        let r = w.app.web_post(&w.web, &format!("/queues/{q}"), &form("Dr Forms", "FORMS", "14:00-09:00")).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(r.text().await.unwrap().contains("data-testid=\"error-hours_mon\""));
        // A keyword another queue has: beside the keywords; a reserved one too.
        for kw in ["TAKEN", "status"] {
            let r = w.app.web_post(&w.web, &format!("/queues/{q}"), &form("Dr Forms", kw, "")).await;
            assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{kw}");
            let html = r.text().await.unwrap();
            assert!(html.contains("data-testid=\"error-keywords\"") && html.contains(&format!("value=\"{kw}\"")), "{kw}: {html}");
        }
        // A new queue with a taken name: beside the name, nothing created.
        let r = w.app.web_post(&w.web, "/queues", &form("Dr Taken", "NEWKW", "")).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(r.text().await.unwrap().contains("data-testid=\"error-name\""));
        let (_, list) = w.call(&w.admin, Method::GET, "/api/v1/queues", None).await;
        assert_eq!(list.as_array().unwrap().len(), 2);
        let (_, board) = w.call(&w.admin, Method::GET, &format!("/api/v1/queues/{q}/board"), None).await;
        assert_eq!(board["queue"]["name"], "Dr Forms", "nothing was saved");
        // And a good form still saves.
        let r = w.app.web_post(&w.web, &format!("/queues/{q}"), &form("Dr Forms", "FORMS", "09:00-13:00")).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);

        // The board: a check-in with a bad number, the name kept.
        let r = w.app.web_post(&w.web, &format!("/queues/{q}/check-in"), &[("name", "Ravi Kumar"), ("phone", "12")]).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let html = r.text().await.unwrap();
        assert!(html.contains("data-testid=\"error-phone\"") && html.contains("value=\"Ravi Kumar\"") && html.contains("value=\"12\""), "{html}");
        assert!(html.contains("data-testid=\"board\""), "the board itself is shown again");
        let (_, board) = w.call(&w.admin, Method::GET, &format!("/api/v1/queues/{q}/board"), None).await;
        assert_eq!(board["waiting"].as_array().unwrap().len(), 0, "nobody was checked in");
        // A blank name.
        let r = w.app.web_post(&w.web, &format!("/queues/{q}/check-in"), &[("name", "  "), ("phone", "+919800000009")]).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let html = r.text().await.unwrap();
        assert!(html.contains("data-testid=\"error-name\"") && html.contains("value=\"+919800000009\""), "{html}");
        // A pause message that is too long.
        let long = "x".repeat(501);
        let r = w.app.web_post(&w.web, &format!("/queues/{q}/pause"), &[("paused", "true"), ("message", &long)]).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let html = r.text().await.unwrap();
        assert!(html.contains("data-testid=\"board\"") && html.contains("data-testid=\"error-message\"") && html.contains(&long), "{html}");
        let (_, board) = w.call(&w.admin, Method::GET, &format!("/api/v1/queues/{q}/board"), None).await;
        assert_eq!(board["queue"]["paused"], false);
        // A place in line that is not a number, beside that token's "Move to" only.
        let (_, a) = w.call(&w.admin, Method::POST, &format!("/api/v1/queues/{q}/check-in"), Some(json!({ "name": "Asha" }))).await;
        w.call(&w.admin, Method::POST, &format!("/api/v1/queues/{q}/check-in"), Some(json!({ "name": "Sita" }))).await;
        let asha = a["token"]["id"].as_str().unwrap();
        let r = w.app.web_post(&w.web, &format!("/queue-tokens/{asha}/manage"), &[("action", "reorder"), ("position", "first")]).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let html = r.text().await.unwrap();
        assert_eq!(html.matches("data-testid=\"error-position\"").count(), 1, "{html}");
        assert!(html.contains("value=\"first\""));
        // A screen link without a name.
        let r = w.app.web_post(&w.web, &format!("/queues/{q}/screen-links"), &[("name", " ")]).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(r.text().await.unwrap().contains("data-testid=\"error-name\""));
    }

    async fn joining_outside_hours_gets_the_next_opening_time_with_holidays_skipped(db) {
        let w = world(db).await;
        // Open every weekday 09:00–17:00 (UTC, the default zone), but today and tomorrow
        // are holidays: whatever the time now, the next opening is the day after tomorrow.
        let today = w.app.state.now().date();
        let span = json!([{ "open": "09:00", "close": "17:00" }]);
        let hours = json!({ "mon": span, "tue": span, "wed": span, "thu": span, "fri": span, "sat": span, "sun": span });
        let q = w.create_queue_with(json!({ "name": "Dr Hours", "keywords": ["HOURS"], "hours": hours,
            "holidays": [today.to_string(), (today + time::Duration::days(1)).to_string()] })).await;
        let phone = "+919800000021";
        let c = w.customer("Asha", phone).await;
        w.says(&c, "hours").await;
        let t = w.until_texts(phone, 1).await;
        let opens = today + time::Duration::days(2);
        let want = format!("Dr Hours is closed now. It opens {} {} {} at 09:00.",
            &opens.weekday().to_string()[..3], opens.day(), &opens.month().to_string()[..3]);
        assert_eq!(t, [want]);
        let (_, board) = w.call(&w.admin, Method::GET, &format!("/api/v1/queues/{q}/board"), None).await;
        assert!(board["waiting"].as_array().unwrap().is_empty(), "no token outside hours: {board}");
        // The desk is not bound by hours.
        let (s, v) = w.call(&w.admin, Method::POST, &format!("/api/v1/queues/{q}/check-in"), Some(json!({ "name": "Walk-in" }))).await;
        assert_eq!((s, v["outcome"].as_str()), (StatusCode::CREATED, Some("joined")), "{v}");
    }

    async fn the_daily_cap_and_a_second_join_are_answered_without_a_second_token(db) {
        let w = world(db).await;
        let q = w.create_queue_with(json!({ "name": "Dr Cap", "keywords": ["CAP"], "daily_cap": 2 })).await;
        let phones = ["+919800000031", "+919800000032", "+919800000033"];
        let mut customers = Vec::new();
        for (i, p) in phones.iter().enumerate() {
            customers.push(w.customer(&format!("Patient {i}"), p).await);
        }
        w.says(&customers[0], "CAP").await;
        assert!(w.until_texts(phones[0], 1).await[0].contains("Your token is A-001"));
        // The same patient again: their token, not a second one (and it does not count).
        w.says(&customers[0], "cap").await;
        let t = w.until_texts(phones[0], 2).await;
        assert!(t[1].contains("already in Dr Cap with token A-001, number 1"), "{t:?}");
        w.says(&customers[1], "CAP").await;
        assert!(w.until_texts(phones[1], 1).await[0].contains("Your token is A-002"));
        w.says(&customers[2], "CAP").await;
        let t = w.until_texts(phones[2], 1).await;
        assert_eq!(t, ["Dr Cap is full for today. Please try again tomorrow."]);
        let (_, board) = w.call(&w.admin, Method::GET, &format!("/api/v1/queues/{q}/board"), None).await;
        let labels: Vec<&str> = board["waiting"].as_array().unwrap().iter().map(|t| t["label"].as_str().unwrap()).collect();
        assert_eq!(labels, ["A-001", "A-002"]);
        // Cancelling does not free a number: the cap counts the day's tokens.
        w.says(&customers[1], "CANCEL").await;
        w.until_texts(phones[1], 2).await;
        w.says(&customers[2], "CAP").await;
        assert_eq!(w.until_texts(phones[2], 2).await[1], "Dr Cap is full for today. Please try again tomorrow.");
    }

    async fn a_paused_queue_tells_waiting_and_joining_patients_and_takes_joins_again_when_resumed(db) {
        let w = world(db).await;
        let q = w.create_queue_with(json!({ "name": "Dr Pause", "keywords": ["PAUSE"] })).await;
        let (asha, ravi) = ("+919800000041", "+919800000042");
        let (ca, cr) = (w.customer("Asha", asha).await, w.customer("Ravi", ravi).await);
        w.says(&ca, "pause").await;
        w.until_texts(asha, 1).await;
        let (s, v) = w.call(&w.admin, Method::POST, &format!("/api/v1/queues/{q}/pause"), Some(json!({ "paused": true, "message": "the doctor is delayed, back at 11" }))).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let t = w.until_texts(asha, 2).await;
        assert_eq!(t[1], "Dr Pause is paused: the doctor is delayed, back at 11");
        w.says(&cr, "pause").await;
        let t = w.until_texts(ravi, 1).await;
        assert_eq!(t, ["Dr Pause is paused: the doctor is delayed, back at 11"]);
        let (_, board) = w.call(&w.admin, Method::GET, &format!("/api/v1/queues/{q}/board"), None).await;
        assert_eq!(board["waiting"].as_array().unwrap().len(), 1, "no token while paused: {board}");
        w.call(&w.admin, Method::POST, &format!("/api/v1/queues/{q}/pause"), Some(json!({ "paused": false }))).await;
        w.says(&cr, "pause").await;
        let t = w.until_texts(ravi, 2).await;
        assert!(t[1].contains("Your token is A-002") && t[1].contains("number 2"), "{t:?}");
        assert_eq!(w.texts_to(asha).await.len(), 2, "resuming sends nothing");
    }

    async fn a_patient_is_answered_in_their_contacts_language_when_the_queue_has_it(db) {
        let w = world(db).await;
        w.create_queue_with(json!({ "name": "Dr Mehta", "keywords": ["JOIN"],
            "texts": { "hi": { "joined": "आपका टोकन {token} है, नंबर {position}" } } })).await;
        let (asha, ravi) = ("+919800000061", "+919800000062");
        let (ca, cr) = (w.customer("Asha", asha).await, w.customer("Ravi", ravi).await);
        w.says(&ca, "hello").await;
        // Her contact says Hindi (India); the queue has texts in Hindi.
        let who = frontdesk_store::CustomerIdentity { phone: Some(frontdesk_domain::E164::parse(asha).unwrap()), ..Default::default() };
        let mut contact = None;
        for _ in 0..600 {
            w.app.drain().await;
            let mut tx = w.app.db.store.begin_read(&w.ctx).await.unwrap();
            contact = tx.find_contact(&who).await.unwrap();
            tx.commit().await.unwrap();
            if contact.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let contact = contact.expect("her contact");
        let (s, v) = w.call(&w.admin, Method::PATCH, &format!("/api/v1/contacts/{contact}"), Some(json!({ "language": "hi_IN" }))).await;
        assert!(s.is_success(), "{v}");
        w.says(&ca, "JOIN").await;
        let t = w.until_texts(asha, 1).await;
        assert_eq!(t.last().unwrap(), "आपका टोकन A-001 है, नंबर 1", "{t:?}");
        // Ravi has no language: English.
        w.says(&cr, "JOIN").await;
        let t = w.until_texts(ravi, 1).await;
        assert!(t[0].starts_with("You joined Dr Mehta. Your token is A-002."), "{t:?}");
        // Checked in at the desk by number, a patient keeps their contact's language.
        let q2 = w.create_queue_with(json!({ "name": "Dr Rao", "keywords": ["RAO"], "token_prefix": "R" })).await;
        let (s, v) = w.call(&w.admin, Method::POST, &format!("/api/v1/queues/{q2}/check-in"), Some(json!({ "name": "Asha", "phone": asha }))).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        assert_eq!(v["token"]["language"], "hi_IN", "{v}");
    }

    async fn come_in_goes_out_as_the_approved_template_outside_the_window_and_is_recorded_as_not_sent_without_one(db) {
        let mut w = world(db).await;
        // The clinic's approved template for "please come in".
        let (s, t) = w.app.graph_call(Method::POST, &format!("/{}/message_templates", w.ch.waba_id), Some(&w.ch.access_token),
            Some(json!({ "name": "queue_come_in", "language": "en", "category": "UTILITY",
                "components": [{ "type": "BODY", "text": "Token {{1}}, please come in now.", "example": { "body_text": [["A-001"]] } }] }))).await;
        assert!(s.is_success(), "{t}");
        for _ in 0..200 {
            let (_, list) = w.app.graph_call(Method::GET, &format!("/{}/message_templates", w.ch.waba_id), Some(&w.ch.access_token), None).await;
            if list["data"].as_array().is_some_and(|d| d.iter().any(|t| t["name"] == "queue_come_in" && t["status"] == "APPROVED")) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let with = w.create_queue_with(json!({ "name": "Dr Window", "keywords": ["WINDOW"],
            "templates": { "come_in": { "name": "queue_come_in", "language": "en" } } })).await;
        let without = w.create_queue_with(json!({ "name": "Dr Bare", "keywords": ["BARE"], "token_prefix": "B" })).await;
        let (asha, ravi) = ("+919800000051", "+919800000052");
        let (ca, cr) = (w.customer("Asha", asha).await, w.customer("Ravi", ravi).await);
        w.says(&ca, "hello").await;
        w.says(&cr, "hello").await;
        w.app.drain().await;
        // A day and an hour later their windows are closed; the desk checks both in by phone.
        w.app.advance(25 * 3600);
        w.sign_in_again().await;
        let check_in = async |q: &str, name: &str, phone: &str| {
            let (s, v) = w.call(&w.admin, Method::POST, &format!("/api/v1/queues/{q}/check-in"), Some(json!({ "name": name, "phone": phone }))).await;
            assert_eq!(s, StatusCode::CREATED, "{v}");
            v["token"]["id"].as_str().unwrap().to_owned()
        };
        let asha_token = check_in(&with, "Asha", asha).await;
        let (s, called) = w.call(&w.admin, Method::POST, &format!("/api/v1/queues/{with}/call-next"), None).await;
        assert_eq!((s, called["id"].as_str()), (StatusCode::OK, Some(asha_token.as_str())));
        // "Please come in" went out as the template, with the token as its parameter, and
        // reached the phone; "you are next" (no template for it) did not go out at all.
        let mut tries = 0;
        let sent = loop {
            tries += 1;
            assert!(tries < 600, "the come-in template never left: {:?}", w.sent_to(asha).await);
            w.app.drain().await;
            let sent = w.sent_to(asha).await;
            // Accepted by the Graph API first; sent (or failed) once its status webhook is in.
            if sent.iter().any(|(_, st)| !["queued", "accepted"].contains(&st.as_str())) {
                break sent;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(sent.len(), 1, "{sent:?}");
        let (content, status) = &sent[0];
        assert_eq!((content["type"].as_str(), content["name"].as_str()), (Some("template"), Some("queue_come_in")), "{content}");
        assert_eq!(content["components"][0]["parameters"][0]["text"], "A-001", "{content}");
        assert!(["sent", "delivered", "read"].contains(&status.as_str()), "{status}");
        let phone = w.app.api(Method::GET, &format!("/api/v1/simulator/customers/{ca}/messages"), Some(&w.admin.access), None).await.1;
        assert!(phone["messages"].as_array().unwrap().iter().any(|m| m["direction"] == "to_customer" && m["type"] == "template" && m["text"] == "Token A-001, please come in now."), "{phone}");
        let not_sent: Vec<String> = w.history(&asha_token).await.into_iter()
            .filter(|e| e["action"] == "queue.message_not_sent").map(|e| e["data"]["text"].as_str().unwrap().to_owned()).collect();
        assert_eq!(not_sent, ["you_are_next"]);

        // A queue without templates: the call stands, nothing is queued to fail at Meta, and
        // the token's history says the patient was not told.
        let ravi_token = check_in(&without, "Ravi", ravi).await;
        let (s, _) = w.call(&w.admin, Method::POST, &format!("/api/v1/queues/{without}/call-next"), None).await;
        assert_eq!(s, StatusCode::OK);
        w.app.drain().await;
        assert!(w.sent_to(ravi).await.is_empty(), "{:?}", w.sent_to(ravi).await);
        let h = w.history(&ravi_token).await;
        let last = h.last().unwrap();
        assert_eq!((last["action"].as_str(), last["data"]["text"].as_str(), last["data"]["reason"].as_str()),
            (Some("queue.message_not_sent"), Some("come_in"), Some("outside_window_without_template")), "{h:?}");
        // Called from the board, the desk is told the patient was not reached.
        check_in(&without, "Asha", asha).await;
        let r = w.app.web_post(&w.web, &format!("/queues/{without}/call-next"), &[]).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let to = r.headers()["location"].to_str().unwrap().to_owned();
        assert_eq!(to, format!("/queues/{without}/board?ok=called_untold&token=B-002"));
        let html = w.app.web_get(&w.web, &to).await.text().await.unwrap();
        assert!(html.contains("WhatsApp could not tell them"), "{html}");
        let (_, board) = w.call(&w.admin, Method::GET, &format!("/api/v1/queues/{without}/board"), None).await;
        assert_eq!(board["current"].as_array().unwrap().len(), 2, "both called: {board}");

        // The next day: the worker ends both live tokens without a word to the patients, and
        // a patient who writes the keyword gets the new day's first token.
        w.app.advance(24 * 3600);
        w.app.drain().await;
        w.sign_in_again().await;
        for t in [&asha_token, &ravi_token] {
            let (_, d) = w.call(&w.admin, Method::GET, &format!("/api/v1/queue-tokens/{t}"), None).await;
            assert_eq!(d["token"]["state"], "expired", "{d}");
            assert_eq!(d["history"].as_array().unwrap().last().unwrap()["action"], "queue.expired");
        }
        assert_eq!(w.sent_to(asha).await.len(), 1, "nothing sent at the day's end");
        assert!(w.sent_to(ravi).await.is_empty());
        w.says(&ca, "window").await;
        let t = w.until_texts(asha, 2).await;
        assert!(t[1].contains("Your token is A-001") && t[1].contains("number 1"), "{t:?}");
    }

    async fn under_concurrent_staff_actions_each_patient_hears_each_message_once_and_in_order(db) {
        let w = world(db).await;
        let q = w.create_queue_with(json!({ "name": "Dr Busy", "keywords": ["BUSY"], "position_step": 1 })).await;
        let mut patients = Vec::new();
        for i in 0..12 {
            let phone = format!("+9198000001{i:02}");
            let c = w.customer(&format!("Patient {i}"), &phone).await;
            w.says(&c, "busy").await;
            w.until_texts(&phone, 1).await;
            patients.push(phone);
        }
        let (_, board) = w.call(&w.admin, Method::GET, &format!("/api/v1/queues/{q}/board"), None).await;
        let tokens: Vec<String> = board["waiting"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap().to_owned()).collect();
        assert_eq!(tokens.len(), 12);
        let call = format!("/api/v1/queues/{q}/call-next");
        let manage = |t: &str| format!("/api/v1/queue-tokens/{t}/manage");
        // Three doctors press "call next" at the same instant while the desk cancels a
        // patient at the back, then the desk moves the last one to the front; then once
        // more, and a last round of calls alone.
        for (round, cancel) in [(0, Some(11)), (1, Some(9)), (2, None)] {
            let cancel_path = cancel.map(|i: usize| manage(&tokens[i]));
            let cancel_it = async {
                match &cancel_path {
                    Some(p) => w.call(&w.admin, Method::POST, p, Some(json!({ "action": "cancel" }))).await,
                    None => (StatusCode::OK, Value::Null),
                }
            };
            let (a, b, c, d) = tokio::join!(
                w.call(&w.admin, Method::POST, &call, None),
                w.call(&w.admin, Method::POST, &call, None),
                w.call(&w.admin, Method::POST, &call, None),
                cancel_it,
            );
            for (s, v) in [a, b, c, d] {
                assert_eq!(s, StatusCode::OK, "round {round}: {v}");
            }
            if round == 0 {
                let (_, board) = w.call(&w.admin, Method::GET, &format!("/api/v1/queues/{q}/board"), None).await;
                let back = board["waiting"].as_array().unwrap().last().unwrap()["id"].as_str().unwrap().to_owned();
                let (s, v) = w.call(&w.admin, Method::POST, &manage(&back), Some(json!({ "action": "reorder", "position": 1 }))).await;
                assert_eq!(s, StatusCode::OK, "{v}");
            }
        }
        w.app.drain().await;
        let mut come_ins = 0;
        for (i, phone) in patients.iter().enumerate() {
            let texts = w.texts_to(phone).await;
            assert!(texts[0].contains("You joined Dr Busy"), "{phone}: {texts:?}");
            let mut told: Vec<i64> = Vec::new();
            let (mut next, mut come_in, mut cancelled) = (0, 0, 0);
            for t in &texts[1..] {
                assert_eq!(come_in + cancelled, 0, "{phone}: nothing after 'come in' or 'cancelled': {texts:?}");
                if let Some(rest) = t.strip_prefix("Dr Busy: token ").and_then(|r| r.split_once(", you are now number ")) {
                    let n: i64 = rest.1.split(';').next().unwrap().parse().unwrap();
                    told.push(n);
                    assert_eq!(next, 0, "{phone}: no position update after 'you are next': {texts:?}");
                } else if t.ends_with("you are next. Please be ready.") {
                    next += 1;
                } else if t.ends_with("please come in now.") {
                    come_in += 1;
                } else if t.contains("is cancelled") {
                    cancelled += 1;
                } else {
                    panic!("{phone}: unexpected {t:?} in {texts:?}");
                }
            }
            assert!(told.windows(2).all(|p| p[0] > p[1]), "{phone}: positions told strictly decrease, each once: {told:?} in {texts:?}");
            assert!(told.iter().all(|p| *p >= 2), "{phone}: {told:?}");
            assert!(next <= 1, "{phone}: 'you are next' at most once: {texts:?}");
            if come_in == 1 && i > 0 {
                assert_eq!(next, 1, "{phone}: told they were next before being called: {texts:?}");
            }
            come_ins += come_in;
        }
        assert_eq!(come_ins, 9, "nine calls, each patient called told once");
    }
}
