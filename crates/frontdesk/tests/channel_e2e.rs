//! The whole channel through the simulator over real HTTP, on both backends: a customer
//! writes on the simulator's phone, the signed webhook reaches our endpoint, the worker
//! stores it; an agent answers through the API, the dispatcher sends it to the simulator's
//! Graph API, and the statuses the simulator posts back move the message to delivered and
//! read. Media, username-only customers, provider refusals, rate limits and a dispatcher that
//! died mid-send are covered the same way.

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

async fn world(db: TestDb, rate: Option<i32>) -> World {
    let app = TestApp::spawn(db).await;
    let admin = app.signup("E2E clinic", "admin@e2e.example").await;
    let web = app.web_login(&admin.email, common::users::PASSWORD).await;
    let ch = app.provision_sim(&admin, "Front desk", rate).await;
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
    async fn customer(&self, name: &str, phone: &str, username: &str) -> String {
        self.app
            .sim_customer(&self.web, &self.ch.id, name, phone, username)
            .await
    }

    async fn customer_says(&self, customer: &str, text: &str) {
        self.app
            .sim_customer_sends(&self.web, customer, &[("kind", "text"), ("body", text)])
            .await
    }

    async fn customer_sees(&self, customer: &str) {
        let r = self
            .app
            .client
            .post(
                self.app
                    .url(&format!("/api/v1/simulator/customers/{customer}/seen")),
            )
            .header(
                "cookie",
                format!("{}={}", self.web.cookie_name, self.web.cookie),
            )
            .header("x-csrf-token", &self.web.csrf)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }

    /// Runs the worker until `check` holds (webhooks arrive over HTTP, asynchronously).
    async fn until<T>(&self, what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
        // Up to 30 s: webhooks travel over HTTP and CI machines are slow.
        for _ in 0..600 {
            self.app.drain().await;
            if let Some(v) = check().await {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("timed out waiting for {what}");
    }

    async fn send(&self, to: Value, message: Value) -> (StatusCode, Value) {
        self.app
            .api(
                Method::POST,
                "/api/v1/messages",
                Some(&self.admin.access),
                Some(json!({ "channel_id": self.ch.id, "to": to, "message": message })),
            )
            .await
    }

    async fn message(&self, id: &str) -> Value {
        let (s, v) = self
            .app
            .api(
                Method::GET,
                &format!("/api/v1/messages/{id}"),
                Some(&self.admin.access),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v
    }

    async fn status_of(&self, id: &str) -> String {
        self.message(id).await["status"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Uploads a file to send through `POST /api/v1/media`.
    async fn upload(
        &self,
        channel: &str,
        mime: &str,
        name: &str,
        bytes: &[u8],
    ) -> (StatusCode, Value) {
        let (ctype, body) = common::simulator::multipart(&[
            ("channel_id", None, None, channel.as_bytes()),
            ("file", Some(name), Some(mime), bytes),
        ]);
        let r = self
            .app
            .client
            .post(self.app.url("/api/v1/media"))
            .bearer_auth(&self.admin.access)
            .header("content-type", ctype)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// The contact the store knows by this phone number or user id, and its conversation's
    /// messages.
    async fn thread(
        &self,
        phone: Option<&str>,
        user: Option<&str>,
    ) -> Option<(frontdesk_store::Contact, Vec<frontdesk_store::MessageView>)> {
        let mut tx = self.app.db.store.begin_read(&self.ctx).await.unwrap();
        let who = frontdesk_store::CustomerIdentity {
            phone: phone.map(|p| frontdesk_domain::E164::parse(p).unwrap()),
            bsuid: user.map(|u| frontdesk_domain::Bsuid::parse(u).unwrap()),
            ..Default::default()
        };
        let id = tx.find_contact(&who).await.unwrap()?;
        let channel = frontdesk_domain::ChannelId::parse(&self.ch.id).unwrap();
        let conv = tx.find_conversation(channel, id).await.unwrap()?;
        let contact = tx.contact(id).await.unwrap();
        let msgs = tx.conversation_messages(conv.id, 100).await.unwrap();
        Some((contact, msgs))
    }
}

both_backends! {
    async fn a_customer_writes_an_agent_answers_and_the_ticks_come_back(db) {
        let w = world(db, None).await;
        let customer = w.customer("Asha", "+14155550100", "").await;
        w.customer_says(&customer, "Do you have a slot today?").await;
        let (contact, msgs) = w.until("the customer's message", async || {
            w.thread(Some("+14155550100"), None).await.filter(|(_, m)| !m.is_empty())
        }).await;
        assert_eq!(contact.profile_name.as_deref(), Some("Asha"));
        assert_eq!((msgs[0].direction.as_str(), msgs[0].preview.as_str()), ("in", "Do you have a slot today?"));

        // The agent answers, quoting the question.
        let (s, sent) = w.send(json!({ "contact_id": contact.id.to_string() }),
            json!({ "type": "text", "body": "Yes, at 4 pm." })).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{sent}");
        let id = sent["id"].as_str().unwrap().to_owned();
        assert_eq!(sent["status"], "queued");
        w.until("delivered", async || (w.status_of(&id).await == "delivered").then_some(())).await;
        let m = w.message(&id).await;
        assert!(m["provider_message_id"].as_str().unwrap().starts_with("wamid."), "{m}");
        assert_eq!(m["pricing_category"], "service");

        // The phone shows our answer: read.
        let page = w.app.web_get(&w.web, &format!("/simulator/customers/{customer}")).await.text().await.unwrap();
        assert!(page.contains("Yes, at 4 pm."), "the customer got it");
        w.customer_sees(&customer).await;
        w.until("read", async || (w.status_of(&id).await == "read").then_some(())).await;

        // The agent marks the customer's message read: the phone shows blue ticks.
        let inbound = msgs[0].id.to_string();
        let (s, _) = w.app.api(Method::POST, &format!("/api/v1/messages/{inbound}/read"), Some(&w.admin.access), None).await;
        assert_eq!(s, StatusCode::ACCEPTED);
        w.until("the customer's message shown read on the phone", async || {
            let chat: Value = w.app.client.get(w.app.url(&format!("/api/v1/simulator/customers/{customer}/messages")))
                .bearer_auth(&w.admin.access).send().await.unwrap().json().await.unwrap();
            chat["messages"].as_array().unwrap().iter().any(|m| m["direction"] == "from_customer" && m["status"] == "read").then_some(())
        }).await;
    }

    async fn a_username_only_customer_is_answered_by_user_id_and_photos_are_downloaded(db) {
        let w = world(db, None).await;
        let customer = w.customer("Sam", "", "sam.w").await;
        w.customer_says(&customer, "hi, no number").await;
        // The webhook names the customer by user id only; the store keys the contact by it.
        let user = w.until("the username customer's message", async || {
            w.app.db.store.inbox_where(&w.ctx, Some(frontdesk_store::InboxStatus::Processed), 10).await.unwrap()
                .into_iter().find_map(|i| {
                    let v: Value = serde_json::from_slice(&i.body).ok()?;
                    let value = &v["entry"][0]["changes"][0]["value"];
                    assert!(value["contacts"][0].get("wa_id").is_none(), "no phone in a username customer's webhook");
                    value["contacts"][0]["user_id"].as_str().map(str::to_owned)
                })
        }).await;
        let (contact, msgs) = w.thread(None, Some(&user)).await.unwrap();
        assert_eq!(msgs[0].preview, "hi, no number");
        assert_eq!((contact.phone.as_deref(), contact.username.as_deref()), (None, Some("sam.w")));

        let (s, sent) = w.send(json!({ "contact_id": contact.id.to_string() }), json!({ "type": "text", "body": "Hello Sam" })).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{sent}");
        let id = sent["id"].as_str().unwrap().to_owned();
        w.until("delivered to a user id", async || (w.status_of(&id).await == "delivered").then_some(())).await;

        // A photo from the phone: fetched from the simulator's media endpoint, checked against
        // its sha256, stored, and served to the organisation.
        let png: Vec<u8> = b"\x89PNG\r\n\x1a\n-e2e-image-".iter().copied().cycle().take(2000).collect();
        w.app.sim_customer_sends_photo(&w.web, &customer, &png, "my prescription").await;
        let media = w.until("the photo stored", async || {
            let (_, msgs) = w.thread(None, contact.bsuid.as_deref()).await?;
            let m = msgs.iter().find(|m| m.kind == "image")?;
            let id = m.media_id?;
            let r = w.app.client.get(w.app.url(&format!("/api/v1/media/{id}"))).bearer_auth(&w.admin.access).send().await.unwrap();
            (r.status() == StatusCode::OK).then_some(r)
        }).await;
        assert_eq!(media.headers()["content-type"], "image/png");
        assert!(media.headers()["content-disposition"].to_str().unwrap().starts_with("attachment"));
        assert_eq!(media.bytes().await.unwrap().as_ref(), png.as_slice());
    }

    async fn an_uploaded_file_reaches_the_phone_and_its_provider_copy_is_reused(db) {
        let w = world(db, None).await;
        let customer = w.customer("Uma", "+919876500001", "").await;
        w.customer_says(&customer, "please send the form").await;
        let (contact, _) = w.until("the customer's message", async || w.thread(Some("+919876500001"), None).await).await;

        // 1.5 MB: above the server's default body limit, which the upload route lifts.
        let pdf: Vec<u8> = b"%PDF-1.4 frontdesk upload ".iter().copied().cycle().take(1_500_000).collect();
        let (s, up) = w.upload(&w.ch.id, "application/pdf", "intake form.pdf", &pdf).await;
        assert_eq!(s, StatusCode::CREATED, "{up}");
        assert_eq!((up["kind"].as_str(), up["size_bytes"].as_i64()), (Some("document"), Some(1_500_000)));
        use sha2::Digest;
        assert_eq!(up["sha256"].as_str().unwrap(), hex_sha(&sha2::Sha256::digest(&pdf)));
        let file = up["id"].as_str().unwrap().to_owned();

        let doc = json!({ "type": "media", "media_type": "document", "source": { "upload": file }, "filename": "intake form.pdf", "caption": "Your form" });
        let to = json!({ "contact_id": contact.id.to_string() });
        let (s, sent) = w.send(to.clone(), doc.clone()).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{sent}");
        let first = sent["id"].as_str().unwrap().to_owned();
        w.until("the document delivered", async || (w.status_of(&first).await == "delivered").then_some(())).await;
        // The provider got our bytes: the simulator holds the upload the message named.
        let media_id = frontdesk_domain::MediaId::parse(&file).unwrap();
        let provider_id = {
            let mut tx = w.app.db.store.begin_read(&w.ctx).await.unwrap();
            let row = tx.media(media_id).await.unwrap();
            let pid = row.provider_media_id.expect("uploaded to the provider");
            let copy = tx.sim_media(&pid).await.unwrap().expect("the simulator holds the file");
            assert_eq!(copy.bytes, pdf);
            assert_eq!((copy.mime_type.as_str(), copy.filename.as_deref()), ("application/pdf", Some("intake form.pdf")));
            pid
        };
        // A second send of the same file names the provider's copy instead of uploading again.
        let (s, again) = w.send(to.clone(), doc).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{again}");
        let second = again["id"].as_str().unwrap().to_owned();
        w.until("the second document delivered", async || (w.status_of(&second).await == "delivered").then_some(())).await;
        let mut tx = w.app.db.store.begin_read(&w.ctx).await.unwrap();
        assert_eq!(tx.media(media_id).await.unwrap().provider_media_id.as_deref(), Some(provider_id.as_str()));
        tx.commit().await.unwrap();

        // Refusals: a type WhatsApp does not carry, a file over its type's limit, an unknown
        // channel, a file sent as a kind it is not, and nothing stored for any of them.
        let (s, v) = w.upload(&w.ch.id, "text/html", "x.html", b"<script>alert(1)</script>").await;
        assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::UNSUPPORTED_MEDIA_TYPE, Some("unsupported_media_type")), "{v}");
        let big_png = vec![0u8; 5 * 1024 * 1024 + 1];
        let (s, v) = w.upload(&w.ch.id, "image/png", "big.png", &big_png).await;
        assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
        let (s, _) = w.upload(&uuid::Uuid::new_v4().to_string(), "application/pdf", "a.pdf", b"%PDF").await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let (s, v) = w.send(to, json!({ "type": "media", "media_type": "image", "source": { "upload": file } })).await;
        assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_message")), "{v}");
        let q = frontdesk_store::AuditQuery { action: Some("media.uploaded".into()), limit: 10, ..Default::default() };
        let uploads = w.app.db.store.audit_events(&w.ctx, &q).await.unwrap().events;
        assert_eq!(uploads.len(), 1, "only the accepted file was recorded");
        assert_eq!(uploads[0].target_id, file);
    }

    async fn provider_refusals_fail_with_the_code_and_rate_limits_are_retried(db) {
        let w = world(db, Some(1)).await;
        let customer = w.customer("Asha", "+14155550100", "").await;
        w.customer_says(&customer, "hello").await;
        w.until("the message", async || w.thread(Some("+14155550100"), None).await.filter(|(_, m)| !m.is_empty())).await;

        // A template approved here (as if synced) that the provider does not have:
        // 132001, permanent, with the reason.
        let mut tx = w.app.db.store.begin(&w.ctx).await.unwrap();
        tx.set_template_status(&frontdesk_store::TemplateStatus { waba_id: &w.ch.waba_id, name: "never_submitted", language: "en", provider_template_id: None, status: "APPROVED", reason: None, category: None }).await.unwrap();
        tx.commit().await.unwrap();
        let (s, t) = w.send(json!({ "phone": "+14155550100" }), json!({ "type": "template", "name": "never_submitted", "language": "en" })).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{t}");
        let tid = t["id"].as_str().unwrap().to_owned();
        let failed = w.until("the template failure", async || {
            let m = w.message(&tid).await;
            (m["status"] == "failed").then_some(m)
        }).await;
        assert_eq!(failed["error_code"], 132001, "{failed}");
        assert!(failed["error_title"].as_str().unwrap().len() > 3);

        // Three texts to a number that takes one per second: 130429 for the rest, retried
        // with backoff (the clock moves instead of the test sleeping), all sent in the end.
        let mut ids = Vec::new();
        for i in 0..3 {
            let (s, v) = w.send(json!({ "phone": "+14155550100" }), json!({ "type": "text", "body": format!("reminder {i}") })).await;
            assert_eq!(s, StatusCode::ACCEPTED, "{v}");
            ids.push(v["id"].as_str().unwrap().to_owned());
        }
        // Each is either taken by the provider or waiting for its retry with the reason shown.
        let throttled = w.until("every send tried once", async || {
            let mut throttled = 0;
            for id in &ids {
                let m = w.message(id).await;
                match m["status"].as_str() {
                    Some("queued") if m["error_title"].is_string() => {
                        assert_eq!(m["attempts"], 1, "{m}");
                        throttled += 1;
                    }
                    Some("queued") => return None,
                    _ => {}
                }
            }
            Some(throttled)
        }).await;
        assert!(throttled >= 1, "a number limited to 1/s refused some of three sends");
        for _ in 0..12 {
            w.app.advance(60);
            w.app.drain().await;
        }
        for id in &ids {
            w.until("sent after the backoff", async || {
                let st = w.status_of(id).await;
                ["accepted", "sent", "delivered"].contains(&st.as_str()).then_some(())
            }).await;
        }
        let chat: Value = w.app.client.get(w.app.url(&format!("/api/v1/simulator/customers/{customer}/messages")))
            .bearer_auth(&w.admin.access).send().await.unwrap().json().await.unwrap();
        let reminders = chat["messages"].as_array().unwrap().iter()
            .filter(|m| m["direction"] == "to_customer" && m["text"].as_str().is_some_and(|b| b.starts_with("reminder"))).count();
        assert_eq!(reminders, 3, "each reminder reached the phone exactly once: {chat}");
    }

    async fn a_dispatcher_that_died_holding_a_send_leaves_it_to_the_next_after_its_lease(db) {
        let w = world(db, None).await;
        let customer = w.customer("Asha", "+14155550100", "").await;
        w.customer_says(&customer, "hello").await;
        w.until("the message", async || w.thread(Some("+14155550100"), None).await.filter(|(_, m)| !m.is_empty())).await;
        // Stop the running worker's loops from grabbing the row: claim it as a dispatcher
        // that then dies before calling the provider.
        let (s, v) = w.send(json!({ "phone": "+14155550100" }), json!({ "type": "text", "body": "only once" })).await;
        assert_eq!(s, StatusCode::ACCEPTED);
        let id = v["id"].as_str().unwrap().to_owned();
        let now = time::OffsetDateTime::now_utc() + time::Duration::seconds(w.app.clock_offset.load(std::sync::atomic::Ordering::SeqCst));
        let claimed = w.app.db.store.claim_outbox(now + time::Duration::seconds(1), time::Duration::seconds(120), 10).await.unwrap();
        if claimed.is_empty() {
            // The running worker was faster: then it has sent it, once.
            w.until("sent", async || (w.status_of(&id).await != "queued").then_some(())).await;
        } else {
            w.app.drain().await;
            assert_eq!(w.status_of(&id).await, "queued", "held by the dead dispatcher's lease");
            w.app.advance(180);
            w.until("sent after the lease", async || (w.status_of(&id).await != "queued").then_some(())).await;
            assert_eq!(w.message(&id).await["attempts"], 2, "the dead attempt counts");
        }
        let chat: Value = w.app.client.get(w.app.url(&format!("/api/v1/simulator/customers/{customer}/messages")))
            .bearer_auth(&w.admin.access).send().await.unwrap().json().await.unwrap();
        let copies = chat.to_string().matches("only once").count();
        assert_eq!(copies, 1, "sent exactly once: {chat}");
    }
}

fn hex_sha(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}
