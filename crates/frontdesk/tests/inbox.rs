//! The team inbox over HTTP, on both backends, through the simulator: live events on
//! `GET /api/v1/events` reach exactly the agents who may see the conversation, masked
//! numbers stay masked in streams and answers, actions are announced and audited, a
//! conversation outside one's teams is 404 on every action, and a failed send is retried.

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
/// The number's digits as they could appear anywhere, unmasked.
const DIGITS: &str = "4155550100";

struct World {
    app: TestApp,
    admin: ApiUser,
    web: WebSession,
    ch: SimChannel,
}

async fn world(db: TestDb) -> World {
    let app = TestApp::spawn(db).await;
    let admin = app.signup("Inbox clinic", "admin@inbox.example").await;
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
    async fn call(
        &self,
        who: &ApiUser,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.app.api(method, path, Some(&who.access), body).await
    }

    async fn ok(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let (s, v) = self.call(&self.admin, method.clone(), path, body).await;
        assert!(s.is_success(), "{method} {path}: {s} {v}");
        v
    }

    /// A team with one new agent in it.
    async fn team_with_agent(&self, name: &str, email: &str) -> (String, ApiUser) {
        let team = self
            .ok(Method::POST, "/api/v1/teams", Some(json!({ "name": name })))
            .await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let agent = self.app.add_member(&self.admin, email, "agent").await;
        self.ok(
            Method::PUT,
            &format!("/api/v1/teams/{team}/members/{}", agent.user_id),
            None,
        )
        .await;
        (team, agent)
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

    async fn conversation_of_customer(&self) -> String {
        self.until("the conversation", async || {
            let (_, v) = self
                .call(
                    &self.admin,
                    Method::GET,
                    "/api/v1/conversations?status=any",
                    None,
                )
                .await;
            v["items"][0]["id"].as_str().map(str::to_owned)
        })
        .await
    }

    async fn audit_actions(&self) -> Vec<String> {
        let v = self
            .ok(Method::GET, "/api/v1/audit-events?limit=100", None)
            .await;
        v["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["action"].as_str().unwrap().to_owned())
            .collect()
    }
}

/// An open event stream, read as a client would: lines, frames, `event:` and `data:`.
struct Stream {
    resp: reqwest::Response,
    pending: String,
    /// Everything received, to check what never appeared.
    raw: String,
}

impl Stream {
    async fn open(app: &TestApp, who: &ApiUser) -> Self {
        let resp = app
            .client
            .get(app.url("/api/v1/events"))
            .bearer_auth(&who.access)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        let mut s = Stream {
            resp,
            pending: String::new(),
            raw: String::new(),
        };
        // The first frame is the reconnection hint.
        let first = s
            .frame(Duration::from_secs(10))
            .await
            .expect("the retry hint");
        assert!(first.starts_with("retry: "), "{first:?}");
        s
    }

    /// The next frame (up to the blank line), or None after `wait`.
    async fn frame(&mut self, wait: Duration) -> Option<String> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(end) = self.pending.find("\n\n") {
                let f = self.pending[..end].to_owned();
                self.pending.drain(..end + 2);
                return Some(f);
            }
            let chunk = tokio::time::timeout_at(deadline, self.resp.chunk())
                .await
                .ok()?
                .unwrap()?;
            let text = String::from_utf8(chunk.to_vec()).unwrap();
            self.raw.push_str(&text);
            self.pending.push_str(&text);
        }
    }

    /// The next event (comments and hints skipped): its type and data.
    async fn event(&mut self, wait: Duration) -> Option<(String, Value)> {
        loop {
            let f = self.frame(wait).await?;
            let kind = f.lines().find_map(|l| l.strip_prefix("event: "));
            let data = f.lines().find_map(|l| l.strip_prefix("data: "));
            if let (Some(k), Some(d)) = (kind, data) {
                let v: Value = serde_json::from_str(d).unwrap();
                assert_eq!(v["type"], k, "the data names its type");
                return Some((k.to_owned(), v));
            }
        }
    }

    /// Events until one of `kind` matching `pred`; the ones before it are returned too.
    async fn until(&mut self, kind: &str, pred: impl Fn(&Value) -> bool) -> Vec<(String, Value)> {
        let mut seen = Vec::new();
        loop {
            let e = self
                .event(Duration::from_secs(30))
                .await
                .unwrap_or_else(|| panic!("no {kind} event; got {seen:?}"));
            let done = e.0 == kind && pred(&e.1);
            seen.push(e);
            if done {
                return seen;
            }
        }
    }
}

both_backends! {
    async fn a_snooze_typed_on_the_page_is_the_organisations_wall_clock_time(db) {
        let w = world(db).await;
        w.ok(Method::PUT, "/api/v1/queue-time-zone", Some(json!({ "time_zone": "Asia/Kolkata" }))).await;
        let customer = w.app.sim_customer(&w.web, &w.ch.id, "Asha Rao", PHONE, "").await;
        w.app.sim_customer_sends(&w.web, &customer, &[("kind", "text"), ("body", "later please")]).await;
        let conv = w.conversation_of_customer().await;
        let page = w.app.web_get(&w.web, &format!("/inbox/{conv}")).await.text().await.unwrap();
        assert!(page.contains("Snooze until (Asia/Kolkata time)"), "the field names its zone");
        // A month ahead, 18:30 in India, which is 13:00 UTC.
        let day = time::OffsetDateTime::now_utc().date() + time::Duration::days(30);
        let typed = format!("{day}T18:30");
        let r = w.app.web_post(&w.web, &format!("/inbox/{conv}/status"), &[("action", "snooze"), ("until", &typed)]).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{}", r.text().await.unwrap());
        let v = w.ok(Method::GET, &format!("/api/v1/conversations/{conv}"), None).await;
        assert_eq!(v["snoozed_until"], format!("{day}T13:00:00Z"), "{v}");
        let page = w.app.web_get(&w.web, &format!("/inbox/{conv}")).await.text().await.unwrap();
        assert!(page.contains(&format!("{day} 18:30 Asia/Kolkata")), "shown as typed");
        // 02:30 on the coming second Sunday of March does not exist in New York (clocks go
        // forward): refused, nothing changed.
        w.ok(Method::PUT, "/api/v1/queue-time-zone", Some(json!({ "time_zone": "America/New_York" }))).await;
        let today = time::OffsetDateTime::now_utc().date();
        let spring_forward = [today.year(), today.year() + 1].into_iter().map(|y| {
            let first = time::Date::from_calendar_date(y, time::Month::March, 1).unwrap();
            let to_sunday = (7 - first.weekday().number_days_from_sunday()) % 7;
            first + time::Duration::days(i64::from(to_sunday) + 7)
        }).find(|d| *d > today + time::Duration::days(1) && *d < today + time::Duration::days(360)).unwrap();
        let skipped = format!("{spring_forward}T02:30");
        let r = w.app.web_post(&w.web, &format!("/inbox/{conv}/status"), &[("action", "snooze"), ("until", &skipped)]).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let v = w.ok(Method::GET, &format!("/api/v1/conversations/{conv}"), None).await;
        assert_eq!(v["snoozed_until"], format!("{day}T13:00:00Z"));
    }

    async fn live_events_reach_only_agents_who_may_see_the_conversation_and_numbers_stay_masked(db) {
        let w = world(db).await;
        let (front, alice) = w.team_with_agent("Front", "alice@inbox.example").await;
        let (_back, bob) = w.team_with_agent("Back", "bob@inbox.example").await;
        w.ok(Method::PUT, &format!("/api/v1/channels/{}/inbox", w.ch.id), Some(json!({ "team_ids": [front], "auto_assign": "off" }))).await;

        let mut alice_events = Stream::open(&w.app, &alice).await;
        let mut bob_events = Stream::open(&w.app, &bob).await;
        let mut admin_events = Stream::open(&w.app, &w.admin).await;

        let customer = w.app.sim_customer(&w.web, &w.ch.id, "Asha Rao", PHONE, "").await;
        w.app.sim_customer_sends(&w.web, &customer, &[("kind", "text"), ("body", "my tooth hurts")]).await;
        let conv = w.conversation_of_customer().await;

        // Alice's team serves the number: the message arrives live, its number masked.
        let got = alice_events.until("message.new", |d| d["message"]["preview"] == "my tooth hurts").await;
        let (_, new) = got.last().unwrap();
        assert_eq!(new["conversation_id"], conv.as_str());
        // The admin sees numbers: the provider's `from` is whole there.
        let got = admin_events.until("message.new", |d| d["conversation_id"] == conv.as_str()).await;
        assert!(got.last().unwrap().1["message"]["content"]["from"].as_str().unwrap().contains(DIGITS), "{got:?}");

        // Actions are announced to who may see them, and audited.
        w.ok(Method::POST, &format!("/api/v1/conversations/{conv}/assign"), Some(json!({ "assignee_id": alice.user_id, "team_id": front }))).await;
        alice_events.until("conversation.updated", |d| d["change"] == "assigned" && d["conversation"]["assignee_id"] == alice.user_id.as_str()).await;
        let label = w.ok(Method::POST, "/api/v1/labels", Some(json!({ "name": "urgent", "color": "#ff0000" }))).await["id"].as_str().unwrap().to_owned();
        w.ok(Method::PUT, &format!("/api/v1/conversations/{conv}/labels/{label}"), None).await;
        alice_events.until("conversation.updated", |d| d["change"] == "label_added" && d["conversation"]["label_ids"][0] == label.as_str()).await;
        // A note may not mention Bob: he may not read the conversation (refused, naming
        // him). One mentioning Alice notifies her.
        let notes_path = format!("/api/v1/conversations/{conv}/notes");
        let (s, v) = w.call(&w.admin, Method::POST, &notes_path, Some(json!({ "body": "call her back", "mentions": [bob.user_id] }))).await;
        assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid")), "{v}");
        assert!(v["error"]["message"].as_str().unwrap().contains("Member bob@inbox.example"), "{v}");
        let (s, note) = w.call(&w.admin, Method::POST, &notes_path, Some(json!({ "body": "call her back", "mentions": [alice.user_id] }))).await;
        assert_eq!(s, StatusCode::CREATED, "{note}");
        alice_events.until("note.new", |d| d["note"]["body"] == "call her back").await;
        let alice_got = alice_events.until("notification", |d| d["note_id"] == note["id"]).await;
        assert_eq!(alice_got.len(), 1, "{alice_got:?}");
        let actions = w.audit_actions().await;
        for a in ["conversation.assigned", "label.created", "conversation.labelled", "note.created", "inbox.updated"] {
            assert!(actions.iter().any(|x| x == a), "{a} audited: {actions:?}");
        }
        let (_, notes) = w.call(&alice, Method::GET, "/api/v1/notifications", None).await;
        assert_eq!((notes["unread"].as_i64(), notes["items"][0]["note_id"].clone()), (Some(1), note["id"].clone()), "{notes}");
        assert_eq!(notes["items"][0]["actor_name"], "Admin of Inbox clinic", "{notes}");
        let (s, v) = w.call(&alice, Method::POST, "/api/v1/notifications/read", Some(json!({}))).await;
        assert_eq!((s, v["marked"].as_u64()), (StatusCode::OK, Some(1)), "{v}");
        let (_, notes) = w.call(&bob, Method::GET, "/api/v1/notifications", None).await;
        assert_eq!(notes["unread"].as_i64(), Some(0), "{notes}");

        // Alice's answers mask the number too; her stream never carried it.
        let (s, view) = w.call(&alice, Method::GET, &format!("/api/v1/conversations/{conv}"), None).await;
        assert_eq!(s, StatusCode::OK, "{view}");
        assert_eq!(view["contact"]["phone_masked"], true);
        let (_, list) = w.call(&alice, Method::GET, "/api/v1/conversations", None).await;
        for text in [view.to_string(), list.to_string(), alice_events.raw.clone()] {
            assert!(!text.contains(DIGITS), "the number leaked to a masked agent: {text}");
        }
        assert!(alice_events.raw.contains("•"), "the number is shown masked");

        // Bob's team does not serve the number: every action on the conversation is 404.
        let qr = w.ok(Method::POST, "/api/v1/quick-replies", Some(json!({ "shortcut": "hi", "body": "Hi {{contact.first_name}}, {{agent.name}} here" }))).await["id"].as_str().unwrap().to_owned();
        let c = format!("/api/v1/conversations/{conv}");
        let tries: Vec<(Method, String, Option<Value>)> = vec![
            (Method::GET, c.clone(), None),
            (Method::POST, format!("{c}/assign"), Some(json!({ "assignee_id": bob.user_id }))),
            (Method::POST, format!("{c}/status"), Some(json!({ "action": "resolve" }))),
            (Method::POST, format!("{c}/notes"), Some(json!({ "body": "x" }))),
            (Method::PUT, format!("{c}/labels/{label}"), None),
            (Method::DELETE, format!("{c}/labels/{label}"), None),
            (Method::GET, format!("{c}/quick-replies/{qr}"), None),
            (Method::POST, format!("/api/v1/messages/{}/retry", new["message"]["id"].as_str().unwrap()), None),
        ];
        for (m, path, body) in tries {
            let (s, v) = w.call(&bob, m.clone(), &path, body).await;
            assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")), "{m} {path}: {v}");
        }
        // Alice may: the quick reply is filled in for her.
        let (s, r) = w.call(&alice, Method::GET, &format!("{c}/quick-replies/{qr}"), None).await;
        assert_eq!((s, r["text"].as_str()), (StatusCode::OK, Some("Hi Asha, Member alice@inbox.example here")), "{r}");

        // Nothing about the conversation ever reached Bob: another customer's
        // conversation, given to him, and a mention of him there come first on his stream.
        let other = w.app.sim_customer(&w.web, &w.ch.id, "Ravi Das", "+14155550199", "").await;
        w.app.sim_customer_sends(&w.web, &other, &[("kind", "text"), ("body", "a question")]).await;
        let conv2 = w.until("the second conversation", async || {
            let (_, v) = w.call(&w.admin, Method::GET, "/api/v1/conversations?status=any", None).await;
            v["items"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap().to_owned()).find(|id| *id != conv)
        }).await;
        w.ok(Method::POST, &format!("/api/v1/conversations/{conv2}/assign"), Some(json!({ "assignee_id": bob.user_id }))).await;
        w.ok(Method::POST, &format!("/api/v1/conversations/{conv2}/notes"), Some(json!({ "body": "yours", "mentions": [bob.user_id] }))).await;
        let later = bob_events.until("notification", |_| true).await;
        assert!(later.iter().all(|(_, d)| !d.to_string().contains(conv.as_str())), "{later:?}");
        assert!(!bob_events.raw.contains("my tooth hurts") && !bob_events.raw.contains(conv.as_str()), "{}", bob_events.raw);
    }

    async fn mentions_come_from_the_note_text_reach_readers_once_and_render_escaped(db) {
        let w = world(db).await;
        let (front, alice) = w.team_with_agent("Front", "alice@inbox.example").await;
        let (_back, bob) = w.team_with_agent("Back", "bob@inbox.example").await;
        w.ok(Method::PUT, &format!("/api/v1/channels/{}/inbox", w.ch.id), Some(json!({ "team_ids": [front], "auto_assign": "off" }))).await;
        // Alice's display name tries to inject markup and to break out of a token.
        let (s, v) = w.call(&alice, Method::PATCH, "/api/v1/me", Some(json!({ "name": "Alice <img src=x onerror=alert(1)>](user:x)" }))).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let customer = w.app.sim_customer(&w.web, &w.ch.id, "Asha Rao", PHONE, "").await;
        w.app.sim_customer_sends(&w.web, &customer, &[("kind", "text"), ("body", "hello")]).await;
        let conv = w.conversation_of_customer().await;
        let c = format!("/api/v1/conversations/{conv}");

        // Who may be mentioned: the readers (the admin, Alice), each with their token.
        let (s, who) = w.call(&alice, Method::GET, &format!("{c}/mentionable"), None).await;
        assert_eq!(s, StatusCode::OK, "{who}");
        let ids: Vec<&str> = who.as_array().unwrap().iter().map(|m| m["user_id"].as_str().unwrap()).collect();
        assert!(ids.contains(&alice.user_id.as_str()) && ids.contains(&w.admin.user_id.as_str()) && !ids.contains(&bob.user_id.as_str()), "{who}");
        let alice_token = who.as_array().unwrap().iter().find(|m| m["user_id"] == alice.user_id.as_str()).unwrap()["token"].as_str().unwrap().to_owned();
        assert_eq!(alice_token, format!("@[Alice <img src=x onerror=alert(1)>)(user:x)](user:{})", alice.user_id));
        let (s, v) = w.call(&bob, Method::GET, &format!("{c}/mentionable"), None).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{v}");

        // Tokens in the text and explicit ids merge; Alice, named three times, gets one
        // notification; the admin mentioning themself gets none.
        let admin_token = who.as_array().unwrap().iter().find(|m| m["user_id"] == w.admin.user_id.as_str()).unwrap()["token"].as_str().unwrap().to_owned();
        let body = format!("<script>alert(1)</script> {alice_token} and {alice_token}, cc {admin_token}");
        let (s, note) = w.call(&w.admin, Method::POST, &format!("{c}/notes"), Some(json!({ "body": body, "mentions": [alice.user_id] }))).await;
        assert_eq!(s, StatusCode::CREATED, "{note}");
        assert_eq!(note["mentions"], json!([alice.user_id, w.admin.user_id]), "{note}");
        assert_eq!(note["parts"][1], json!({ "kind": "mention", "user_id": alice.user_id, "name": "Alice <img src=x onerror=alert(1)>)(user:x)" }), "{note}");
        let (_, n) = w.call(&alice, Method::GET, "/api/v1/notifications", None).await;
        assert_eq!(n["unread"].as_i64(), Some(1), "{n}");
        let (_, n) = w.call(&w.admin, Method::GET, "/api/v1/notifications", None).await;
        assert_eq!(n["unread"].as_i64(), Some(0), "{n}");

        // Bob may not read it: a token of his is refused with his name, over the API and
        // on the page (where the note comes back with the reason beside it).
        let bob_token = format!("@[Bob](user:{})", bob.user_id);
        let (s, v) = w.call(&w.admin, Method::POST, &format!("{c}/notes"), Some(json!({ "body": format!("ask {bob_token}") }))).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        assert!(v["error"]["message"].as_str().unwrap().starts_with("Member bob@inbox.example may not see this conversation"), "{v}");
        let (s, v) = w.call(&w.admin, Method::POST, &format!("{c}/notes"), Some(json!({ "body": "x", "mentions": (0..21).map(|_| uuid::Uuid::now_v7().to_string()).collect::<Vec<_>>() }))).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        let typed = format!("<b>ask</b> {bob_token}");
        let r = w.app.web_post(&w.web, &format!("/inbox/{conv}/notes"), &[("body", &typed)]).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let page = r.text().await.unwrap();
        assert!(page.contains("data-testid=\"note-error\""), "{page}");
        assert!(page.contains("Member bob@inbox.example may not see this conversation"), "{page}");
        assert!(page.contains(&format!("&lt;b&gt;ask&lt;/b&gt; @[Bob](user:{})</textarea>", bob.user_id)), "the input is kept: {page}");

        // The page: the note form's picker lists the readers; the note shows mentions
        // highlighted, and names and text escaped.
        let r = w.app.web_post(&w.web, &format!("/inbox/{conv}/notes"), &[("body", &format!("thanks {alice_token}"))]).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let page = w.app.web_get(&w.web, &format!("/inbox/{conv}")).await.text().await.unwrap();
        assert!(page.contains(&format!("data-user-id=\"{}\"", alice.user_id)), "{page}");
        assert!(!page.contains(&format!("data-user-id=\"{}\"", bob.user_id)), "Bob is not offered");
        assert!(page.contains(&format!("<span class=\"mention\" data-user-id=\"{}\" data-testid=\"mention\">@Alice &lt;img src=x onerror=alert(1)&gt;)(user:x)</span>", alice.user_id)), "{page}");
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(!page.contains("<script>alert(1)") && !page.contains("<img src=x"), "no markup from names or text");
        let (_, n) = w.call(&alice, Method::GET, "/api/v1/notifications", None).await;
        assert_eq!(n["unread"].as_i64(), Some(2), "{n}");
    }

    async fn a_failed_send_is_retried_through_the_outbox_and_delivered(db) {
        let w = world(db).await;
        let customer = w.app.sim_customer(&w.web, &w.ch.id, "Asha Rao", PHONE, "").await;
        w.app.sim_customer_sends(&w.web, &customer, &[("kind", "text"), ("body", "hello")]).await;
        let conv = w.conversation_of_customer().await;
        let mut events = Stream::open(&w.app, &w.admin).await;

        // A template approved here (as if synced) that the simulator does not know yet:
        // refused with 132001, failed.
        let ctx = w.app.db.store.webhook_target(&w.ch.webhook_key).await.unwrap().unwrap().ctx;
        let mut tx = w.app.db.store.begin(&ctx).await.unwrap();
        tx.set_template_status(&frontdesk_store::TemplateStatus { waba_id: &w.ch.waba_id, name: "visit_reminder", language: "en", provider_template_id: None, status: "APPROVED", reason: None, category: None }).await.unwrap();
        tx.commit().await.unwrap();
        let (s, m) = w.call(&w.admin, Method::POST, "/api/v1/messages", Some(json!({ "channel_id": w.ch.id, "to": { "phone": PHONE },
            "message": { "type": "template", "name": "visit_reminder", "language": "en" } }))).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{m}");
        let id = m["id"].as_str().unwrap().to_owned();
        let status = async |w: &World| w.ok(Method::GET, &format!("/api/v1/messages/{id}"), None).await;
        w.until("the failure", async || (status(&w).await["status"] == "failed").then_some(())).await;
        events.until("message.status", |d| d["message_id"] == id.as_str() && d["status"] == "failed").await;
        let (s, v) = w.call(&w.admin, Method::POST, "/api/v1/messages/not-an-id/retry", None).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{v}");

        // The template gets approved; the retry queues the same message again and it goes out.
        let (s, t) = w.app.graph_call(Method::POST, &format!("/{}/message_templates", w.ch.waba_id), Some(&w.ch.access_token),
            Some(json!({ "name": "visit_reminder", "language": "en", "category": "UTILITY", "components": [{ "type": "BODY", "text": "See you tomorrow." }] }))).await;
        assert!(s.is_success(), "{t}");
        // The simulator reviews in the background, as Meta does: a retry before the
        // approval would be refused with 132001 again.
        w.until("the simulator's approval", async || {
            let (_, v) = w.app.graph_call(Method::GET, &format!("/{}/message_templates?name=visit_reminder", w.ch.waba_id), Some(&w.ch.access_token), None).await;
            (v["data"][0]["status"] == "APPROVED").then_some(())
        }).await;
        let (s, v) = w.call(&w.admin, Method::POST, &format!("/api/v1/messages/{id}/retry"), None).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{v}");
        events.until("message.status", |d| d["message_id"] == id.as_str() && d["status"] == "queued").await;
        let sent = w.until("the retried send", async || {
            let m = status(&w).await;
            ["sent", "delivered", "read"].contains(&m["status"].as_str().unwrap()).then_some(m)
        }).await;
        assert_eq!(sent["error_code"], Value::Null, "{sent}");
        // Retrying what did not fail is a conflict; the retry was audited.
        let (s, v) = w.call(&w.admin, Method::POST, &format!("/api/v1/messages/{id}/retry"), None).await;
        assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("not_failed")), "{v}");
        assert!(w.audit_actions().await.iter().any(|a| a == "message.retried"));
        let view = w.ok(Method::GET, &format!("/api/v1/conversations/{conv}"), None).await;
        assert!(view["messages"].as_array().unwrap().iter().any(|m| m["id"] == id.as_str()));
    }
    async fn queue_boards_hear_queue_changed_from_the_desk_and_from_whatsapp(db) {
        let w = world(db).await;
        w.ok(Method::POST, "/api/v1/roles", Some(json!({ "name": "reader", "permissions": ["inbox.read", "inbox.read_all"] }))).await;
        let reader = w.app.add_member(&w.admin, "reader@inbox.example", "reader").await;
        let desk = w.app.add_member(&w.admin, "desk@inbox.example", "agent").await;
        let mut desk_events = Stream::open(&w.app, &desk).await;
        let mut reader_events = Stream::open(&w.app, &reader).await;

        // The desk configures a queue: its boards hear it.
        let (s, q) = w.call(&w.admin, Method::POST, "/api/v1/queues", Some(json!({
            "channel_id": w.ch.id, "name": "OPD", "keywords": ["JOIN"], "token_prefix": "A",
            "daily_cap": 50, "position_step": 1 }))).await;
        assert_eq!(s, StatusCode::CREATED, "{q}");
        let queue = q["id"].as_str().unwrap().to_owned();
        desk_events.until("queue.changed", |d| d["queue_id"] == queue.as_str()).await;

        // A patient joins over WhatsApp: the worker's join announces it when it commits.
        let customer = w.app.sim_customer(&w.web, &w.ch.id, "Asha Rao", PHONE, "").await;
        w.app.sim_customer_sends(&w.web, &customer, &[("kind", "text"), ("body", "JOIN")]).await;
        w.until("the token", async || {
            let (_, b) = w.call(&w.admin, Method::GET, &format!("/api/v1/queues/{queue}/board"), None).await;
            (b.to_string().contains("A-001")).then_some(())
        }).await;
        desk_events.until("queue.changed", |d| d["queue_id"] == queue.as_str()).await;
        w.ok(Method::POST, &format!("/api/v1/queues/{queue}/call-next"), None).await;
        desk_events.until("queue.changed", |d| d["queue_id"] == queue.as_str()).await;

        // Without queue.read, nothing about queues arrives, though the inbox's events do.
        let conv = w.conversation_of_customer().await;
        w.ok(Method::POST, &format!("/api/v1/conversations/{conv}/notes"), Some(json!({ "body": "seen at the desk" }))).await;
        let got = reader_events.until("note.new", |d| d["note"]["body"] == "seen at the desk").await;
        assert!(got.iter().all(|(k, _)| k != "queue.changed"), "{got:?}");
        assert!(got.iter().any(|(k, _)| k == "message.new"), "{got:?}");
    }
}
