//! The webhook endpoints over real HTTP, on both backends: Meta's handshake, signed posts
//! committed to the inbox before the 200, every refusal storing nothing, Whapi's bearer
//! secret, provider retries stored once, and group commit under concurrency.

mod common;

use common::TestApp;
use frontdesk::bench::meta_text_webhook;
use frontdesk_domain::{Actor, ChannelId, UserId};
use frontdesk_server::ServerSettings;
use frontdesk_store::testing::TestDb;
use frontdesk_store::{ChannelUpdate, InboxStatus, NewChannel, Provider, TenantCtx, both_backends};
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use std::time::Duration;

const APP_SECRET: &str = "cloud-app-secret-canary";
const VERIFY_TOKEN: &str = "verify-token-canary";
const WHAPI_SECRET: &str = "whapi-webhook-secret-canary";

struct Channel {
    ctx: TenantCtx,
    id: ChannelId,
    key: String,
}

async fn org(app: &TestApp, slug: &str) -> TenantCtx {
    app.db
        .store
        .create_organisation(&format!("Clinic {slug}"), slug, Actor::User(UserId::new()))
        .await
        .unwrap()
        .1
}

async fn channel(app: &TestApp, ctx: &TenantCtx, provider: Provider, tag: &str) -> Channel {
    let (app_secret, verify_token) = match provider {
        Provider::Cloud => (
            format!("{tag}-{APP_SECRET}"),
            Some(format!("{tag}-{VERIFY_TOKEN}")),
        ),
        Provider::Whapi => (format!("{tag}-{WHAPI_SECRET}"), None),
    };
    let mut tx = app.db.store.begin(ctx).await.unwrap();
    let (view, key) = tx
        .create_channel(NewChannel {
            name: format!("Reception {tag}"),
            provider,
            phone_number_id: format!("10654035224{tag}"),
            waba_id: "102290129340398".into(),
            display_number: "+15550783881".into(),
            api_base_url: "https://graph.facebook.com".into(),
            api_version: "v23.0".into(),
            simulated: false,
            access_token: SecretString::from(format!("EAAG-{tag}-access-token")),
            app_secret: Some(SecretString::from(app_secret)),
            verify_token: verify_token.map(SecretString::from),
            throughput_mps: 80,
        })
        .await
        .unwrap();
    tx.commit().await.unwrap();
    Channel {
        ctx: ctx.clone(),
        id: view.id,
        key: key.expose_secret().to_owned(),
    }
}

fn secret_of(tag: &str) -> String {
    format!("{tag}-{APP_SECRET}")
}

fn text_body(n: usize) -> Vec<u8> {
    meta_text_webhook(
        "106540352242922",
        &format!("wamid.HBgLNDQ3NzAwOTAwMTIzFQIAEhgUM0E{n:08}"),
        "447700900123",
        "Ada Lovelace",
        &format!("Hello number {n}"),
        1_750_000_000,
    )
}

fn sign(secret: &str, body: &[u8]) -> String {
    frontdesk_whatsapp::sign_meta(secret.as_bytes(), body)
}

impl TestApp {
    async fn post_webhook(
        &self,
        key: &str,
        body: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut req = self
            .client
            .post(self.url(&format!("/webhooks/{key}")))
            .header("content-type", "application/json")
            .body(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send().await.unwrap()
    }

    async fn post_signed(&self, c: &Channel, tag: &str, body: Vec<u8>) -> reqwest::Response {
        let sig = sign(&secret_of(tag), &body);
        self.post_webhook(&c.key, body, &[("x-hub-signature-256", &sig)])
            .await
    }

    async fn inbox(&self, c: &Channel) -> Vec<frontdesk_store::InboxItem> {
        self.db
            .store
            .inbox_where(&c.ctx, None, 1000)
            .await
            .unwrap()
            .into_iter()
            .filter(|i| i.channel == c.id)
            .collect()
    }

    async fn metric(&self, reason: &str) -> u64 {
        let text = self.get("/metrics").await.text().await.unwrap();
        let prefix = format!("frontdesk_webhook_rejected_total{{reason=\"{reason}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .map_or(0, |n| n.parse().unwrap())
    }
}

/// Posts a signed body over a raw connection, reading the answer while the body is still
/// being written: a server that refuses a 10 MB body answers early and closes, which an
/// HTTP client would report as a broken pipe instead of the answer.
async fn post_huge(app: &TestApp, c: &Channel, tag: &str, body: Vec<u8>) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let sig = sign(&secret_of(tag), &body);
    let stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let (mut rd, mut wr) = stream.into_split();
    let head = format!(
        "POST /webhooks/{} HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nx-hub-signature-256: {sig}\r\nconnection: close\r\n\r\n",
        c.key,
        app.addr,
        body.len()
    );
    let writer = tokio::spawn(async move {
        if wr.write_all(head.as_bytes()).await.is_ok() {
            let _ = wr.write_all(&body).await;
        }
    });
    let mut answer = Vec::new();
    let mut buf = [0u8; 8192];
    // Until the server closes (or resets) the connection.
    while let Ok(n) = rd.read(&mut buf).await {
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
    }
    writer.abort();
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status: u16 = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer: {text:?}"));
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// An error envelope with this status and code.
async fn assert_error(r: reqwest::Response, status: u16, code: &str, what: &str) {
    assert_eq!(r.status().as_u16(), status, "{what}");
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json"),
        "{what}"
    );
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], code, "{what}: {v}");
    let text = v.to_string();
    assert!(
        !text.contains("canary"),
        "{what}: a secret in the answer: {text}"
    );
}

async fn handshake(app: &TestApp, key: &str, query: &[(&str, &str)]) -> reqwest::Response {
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(query)
        .finish();
    app.client
        .get(app.url(&format!("/webhooks/{key}?{query}")))
        .send()
        .await
        .unwrap()
}

async fn handshake_answers_the_challenge_only_to_the_right_token(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let a = org(&app, "alpha").await;
    let c = channel(&app, &a, Provider::Cloud, "a").await;
    let w = channel(&app, &a, Provider::Whapi, "w").await;
    let token = format!("a-{VERIFY_TOKEN}");

    let r = handshake(
        &app,
        &c.key,
        &[
            ("hub.mode", "subscribe"),
            ("hub.verify_token", &token),
            ("hub.challenge", "1158201444"),
        ],
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert_eq!(r.text().await.unwrap(), "1158201444");

    let refusals: [(&str, Vec<(&str, &str)>); 5] = [
        (
            "wrong token",
            vec![
                ("hub.mode", "subscribe"),
                ("hub.verify_token", "b-verify-token-canary"),
                ("hub.challenge", "1"),
            ],
        ),
        (
            "token with a suffix",
            vec![
                ("hub.mode", "subscribe"),
                ("hub.verify_token", "a-verify-token-canaryX"),
                ("hub.challenge", "1"),
            ],
        ),
        (
            "wrong mode",
            vec![
                ("hub.mode", "unsubscribe"),
                ("hub.verify_token", &token),
                ("hub.challenge", "1"),
            ],
        ),
        (
            "no mode",
            vec![("hub.verify_token", &token), ("hub.challenge", "1")],
        ),
        (
            "no token",
            vec![("hub.mode", "subscribe"), ("hub.challenge", "1")],
        ),
    ];
    for (what, q) in &refusals {
        assert_error(
            handshake(&app, &c.key, q).await,
            403,
            "handshake_refused",
            what,
        )
        .await;
    }
    // A Whapi channel has no verify token: no handshake can succeed for it.
    assert_error(
        handshake(
            &app,
            &w.key,
            &[
                ("hub.mode", "subscribe"),
                ("hub.verify_token", ""),
                ("hub.challenge", "1"),
            ],
        )
        .await,
        403,
        "handshake_refused",
        "channel without verify token",
    )
    .await;
    for key in ["fdw_unknown0000000000000000", "not-a-key", &"x".repeat(300)] {
        assert_error(
            handshake(
                &app,
                key,
                &[
                    ("hub.mode", "subscribe"),
                    ("hub.verify_token", &token),
                    ("hub.challenge", "1"),
                ],
            )
            .await,
            404,
            "not_found",
            "unknown key",
        )
        .await;
    }
    assert!(app.metric("handshake_refused").await >= 6);
}

async fn signed_post_is_committed_before_200_and_refusals_store_nothing(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let a = org(&app, "alpha").await;
    let c = channel(&app, &a, Provider::Cloud, "a").await;
    let other = channel(&app, &a, Provider::Cloud, "b").await;

    let body = text_body(1);
    let r = app.post_signed(&c, "a", body.clone()).await;
    assert_eq!(r.status(), StatusCode::OK);
    let rows = app.inbox(&c).await;
    assert_eq!(rows.len(), 1, "stored when the 200 arrived");
    assert_eq!(rows[0].body, body, "the exact raw bytes");
    // The worker runs beside the server and may already have applied it.
    assert!(
        [InboxStatus::Pending, InboxStatus::Processed].contains(&rows[0].status),
        "{:?}",
        rows[0].status
    );

    let body = text_body(2);
    let good = sign(&secret_of("a"), &body);
    let for_other_body = sign(&secret_of("a"), &text_body(3));
    let other_secret = sign(&secret_of("b"), &body);
    let flipped = {
        let mut s = good.clone().into_bytes();
        let last = s.len() - 1;
        s[last] = if s[last] == b'0' { b'1' } else { b'0' };
        String::from_utf8(s).unwrap()
    };
    let before = (
        app.metric("signature_missing").await,
        app.metric("signature_mismatch").await,
        app.metric("signature_malformed").await,
    );
    let cases: [(&str, Vec<(&str, &str)>); 6] = [
        ("no signature header", vec![]),
        (
            "signature of another body",
            vec![("x-hub-signature-256", &for_other_body)],
        ),
        (
            "another channel's secret",
            vec![("x-hub-signature-256", &other_secret)],
        ),
        (
            "one hex digit changed",
            vec![("x-hub-signature-256", &flipped)],
        ),
        ("not sha256=", vec![("x-hub-signature-256", "sha1=abcdef")]),
        (
            "Whapi's bearer on a Cloud channel",
            vec![("authorization", "Bearer a-cloud-app-secret-canary")],
        ),
    ];
    for (what, headers) in &cases {
        let r = app.post_webhook(&c.key, body.clone(), headers).await;
        assert_error(r, 401, "invalid_signature", what).await;
    }
    // Signed for this channel, posted to the other one.
    let r = app
        .post_webhook(&other.key, body.clone(), &[("x-hub-signature-256", &good)])
        .await;
    assert_error(
        r,
        401,
        "invalid_signature",
        "posted to another channel's URL",
    )
    .await;
    assert_eq!(app.inbox(&c).await.len(), 1, "nothing stored for a refusal");
    assert!(app.inbox(&other).await.is_empty());
    let after = (
        app.metric("signature_missing").await,
        app.metric("signature_mismatch").await,
        app.metric("signature_malformed").await,
    );
    assert_eq!(
        after.0 - before.0,
        2,
        "missing: none, and the bearer-only post"
    );
    assert_eq!(after.1 - before.1, 4, "mismatches");
    assert_eq!(after.2 - before.2, 1, "malformed");

    // Unknown key: 404, counted, nothing stored.
    let r = app
        .post_webhook(
            "fdw_nosuchchannel00000000",
            body.clone(),
            &[("x-hub-signature-256", &good)],
        )
        .await;
    assert_error(r, 404, "not_found", "unknown key").await;
    assert_eq!(app.metric("unknown_key").await, 1);

    // The right signature still works after all that.
    let r = app
        .post_webhook(&c.key, body, &[("x-hub-signature-256", &good)])
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(app.inbox(&c).await.len(), 2);
}

async fn bad_bodies_get_their_answer_and_nothing_is_stored(db: TestDb) {
    // The server-wide limit raised above the webhook's own, so the webhook limit is what
    // answers the 10 MB body.
    let settings = ServerSettings {
        body_limit_bytes: 32 * 1024 * 1024,
        ..ServerSettings::default()
    };
    let app = TestApp::spawn_with(db, settings, None, Duration::from_secs(10)).await;
    let a = org(&app, "alpha").await;
    let c = channel(&app, &a, Provider::Cloud, "a").await;

    let full = text_body(1);
    let truncated = full[..full.len() / 2].to_vec();
    assert_error(
        app.post_signed(&c, "a", truncated).await,
        400,
        "invalid_json",
        "truncated JSON, correctly signed",
    )
    .await;
    assert_error(
        app.post_signed(&c, "a", b"object=whatsapp_business_account".to_vec())
            .await,
        400,
        "invalid_json",
        "a form, correctly signed",
    )
    .await;
    assert_eq!(app.metric("invalid_json").await, 2);

    let mut huge = br#"{"object":"whatsapp_business_account","pad":""#.to_vec();
    huge.resize(10 * 1024 * 1024, b'a');
    huge.extend_from_slice(br#""}"#);
    let (status, v) = post_huge(&app, &c, "a", huge).await;
    assert_eq!(
        (status, &v["error"]["code"]),
        (413, &json!("payload_too_large")),
        "10 MB, correctly signed: {v}"
    );
    assert_eq!(app.metric("too_large").await, 1);
    assert!(app.inbox(&c).await.is_empty(), "nothing stored");

    // Unknown fields and an unknown message type are the worker's business: stored.
    let mut v: Value = serde_json::from_slice(&text_body(7)).unwrap();
    v["entry"][0]["changes"][0]["value"]["messages"][0]["type"] = json!("hologram");
    v["entry"][0]["changes"][0]["value"]["messages"][0]["hologram"] = json!({ "frames": 3 });
    v["entry"][0]["brand_new_field"] = json!({ "nested": [1, 2, 3] });
    let odd = serde_json::to_vec(&v).unwrap();
    let r = app.post_signed(&c, "a", odd.clone()).await;
    assert_eq!(r.status(), StatusCode::OK);
    let rows = app.inbox(&c).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].body, odd);
}

async fn default_limit_refuses_10_mb_before_reading_it(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let a = org(&app, "alpha").await;
    let c = channel(&app, &a, Provider::Cloud, "a").await;
    let mut huge = br#"{"pad":""#.to_vec();
    huge.resize(10 * 1024 * 1024, b'a');
    huge.extend_from_slice(br#""}"#);
    let (status, v) = post_huge(&app, &c, "a", huge).await;
    assert_eq!(
        (status, &v["error"]["code"]),
        (413, &json!("payload_too_large")),
        "10 MB under the default limits: {v}"
    );
    assert!(app.inbox(&c).await.is_empty());
}

async fn a_provider_retry_is_acknowledged_and_stored_once(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let a = org(&app, "alpha").await;
    let c = channel(&app, &a, Provider::Cloud, "a").await;
    let body = text_body(9);
    for attempt in 0..3 {
        let r = app.post_signed(&c, "a", body.clone()).await;
        assert_eq!(r.status(), StatusCode::OK, "attempt {attempt}");
    }
    assert_eq!(app.inbox(&c).await.len(), 1);
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("frontdesk_webhook_stored_total{outcome=\"duplicate\"} 2"),
        "{metrics}"
    );
}

async fn whapi_posts_need_the_channel_secret_as_bearer(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let a = org(&app, "alpha").await;
    let w = channel(&app, &a, Provider::Whapi, "w").await;
    let body = serde_json::to_vec(&json!({
        "messages": [{ "id": "PsqXn5SAD5v7HRA-wHqB9g", "type": "text", "chat_id": "447700900123@s.whatsapp.net",
                       "from": "447700900123", "from_me": false, "from_name": "Ada", "timestamp": 1750000000,
                       "text": { "body": "hi" } }],
        "event": { "type": "messages", "event": "post" },
        "channel_id": "MANTIS-M72HC"
    }))
    .unwrap();
    let right = format!("Bearer w-{WHAPI_SECRET}");
    let signed_as_meta = sign(&format!("w-{WHAPI_SECRET}"), &body);
    type Headers<'a> = Vec<(&'a str, &'a str)>;
    let cases: [(&str, Headers, &str); 5] = [
        ("no header", vec![], "bearer_missing"),
        (
            "wrong secret",
            vec![("authorization", "Bearer w-whapi-webhook-secret-canarx")],
            "bearer_mismatch",
        ),
        (
            "secret with a suffix",
            vec![("authorization", "Bearer w-whapi-webhook-secret-canary2")],
            "bearer_mismatch",
        ),
        (
            "not a bearer",
            vec![("authorization", "Basic dzp3")],
            "bearer_mismatch",
        ),
        (
            "a Meta signature instead",
            vec![("x-hub-signature-256", &signed_as_meta)],
            "bearer_missing",
        ),
    ];
    for (what, headers, reason) in &cases {
        let before = app.metric(reason).await;
        let r = app.post_webhook(&w.key, body.clone(), headers).await;
        assert_error(r, 401, "invalid_signature", what).await;
        assert_eq!(
            app.metric(reason).await,
            before + 1,
            "{what} counted as {reason}"
        );
    }
    assert!(app.inbox(&w).await.is_empty());
    let r = app
        .post_webhook(&w.key, body.clone(), &[("authorization", &right)])
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let rows = app.inbox(&w).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].body, body);
}

async fn concurrent_posts_are_group_committed_each_exactly_once(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let a = org(&app, "alpha").await;
    let b = org(&app, "beta").await;
    let ca = channel(&app, &a, Provider::Cloud, "a").await;
    let cb = channel(&app, &b, Provider::Cloud, "b").await;
    let wakeup = app.state.inbox_wakeup();
    let woken = wakeup.notified();
    tokio::pin!(woken);
    woken.as_mut().enable();

    let mut tasks = Vec::new();
    for t in 0..20 {
        let client = app.client.clone();
        // Two tenants in the same batches.
        let (key, tag) = if t % 2 == 0 {
            (ca.key.clone(), "a")
        } else {
            (cb.key.clone(), "b")
        };
        let url = app.url(&format!("/webhooks/{key}"));
        tasks.push(tokio::spawn(async move {
            for i in 0..10 {
                let body = text_body(t * 100 + i);
                let sig = sign(&secret_of(tag), &body);
                let r = client
                    .post(&url)
                    .header("x-hub-signature-256", sig)
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), StatusCode::OK);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    tokio::time::timeout(Duration::from_secs(5), woken)
        .await
        .expect("the inbox worker's wake-up was notified");
    let (ra, rb) = (app.inbox(&ca).await, app.inbox(&cb).await);
    assert_eq!((ra.len(), rb.len()), (100, 100));
    let mut bodies: Vec<&[u8]> = ra.iter().chain(&rb).map(|r| r.body.as_slice()).collect();
    bodies.sort();
    bodies.dedup();
    assert_eq!(bodies.len(), 200, "each body exactly once");

    let metrics = app.get("/metrics").await.text().await.unwrap();
    let value = |name: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap()
            .parse()
            .unwrap()
    };
    assert_eq!(value("frontdesk_webhook_committed_bodies_total"), 200);
    let commits = value("frontdesk_webhook_commits_total");
    assert!(
        commits < 200,
        "20 concurrent clients should share commits, got {commits} commits for 200 bodies"
    );
}

async fn a_changed_secret_takes_effect_once_targets_are_forgotten(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let a = org(&app, "alpha").await;
    let c = channel(&app, &a, Provider::Cloud, "a").await;
    assert_eq!(
        app.post_signed(&c, "a", text_body(1)).await.status(),
        StatusCode::OK
    );
    let mut tx = app.db.store.begin(&a).await.unwrap();
    tx.update_channel(
        c.id,
        ChannelUpdate {
            app_secret: Some(SecretString::from("rotated-app-secret".to_owned())),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    // The cached target still holds the old secret until the admin code says otherwise.
    assert_eq!(
        app.post_signed(&c, "a", text_body(2)).await.status(),
        StatusCode::OK,
        "served from the cache"
    );
    app.state.forget_webhook_targets();
    assert_error(
        app.post_signed(&c, "a", text_body(3)).await,
        401,
        "invalid_signature",
        "old secret after forgetting",
    )
    .await;
    let body = text_body(4);
    let sig = sign("rotated-app-secret", &body);
    let r = app
        .post_webhook(&c.key, body, &[("x-hub-signature-256", &sig)])
        .await;
    assert_eq!(r.status(), StatusCode::OK);

    // A deleted channel's URL stops answering.
    let mut tx = app.db.store.begin(&a).await.unwrap();
    tx.delete_channel(c.id).await.unwrap();
    tx.commit().await.unwrap();
    app.state.forget_webhook_targets();
    assert_error(
        app.post_signed(&c, "a", text_body(5)).await,
        404,
        "not_found",
        "deleted channel",
    )
    .await;
}

both_backends! {
    async fn handshake_answers_the_challenge_only_to_the_right_token(db) {
        handshake_answers_the_challenge_only_to_the_right_token(db).await;
    }
    async fn signed_post_is_committed_before_200_and_refusals_store_nothing(db) {
        signed_post_is_committed_before_200_and_refusals_store_nothing(db).await;
    }
    async fn bad_bodies_get_their_answer_and_nothing_is_stored(db) {
        bad_bodies_get_their_answer_and_nothing_is_stored(db).await;
    }
    async fn default_limit_refuses_10_mb_before_reading_it(db) {
        default_limit_refuses_10_mb_before_reading_it(db).await;
    }
    async fn a_provider_retry_is_acknowledged_and_stored_once(db) {
        a_provider_retry_is_acknowledged_and_stored_once(db).await;
    }
    async fn whapi_posts_need_the_channel_secret_as_bearer(db) {
        whapi_posts_need_the_channel_secret_as_bearer(db).await;
    }
    async fn concurrent_posts_are_group_committed_each_exactly_once(db) {
        concurrent_posts_are_group_committed_each_exactly_once(db).await;
    }
    async fn a_changed_secret_takes_effect_once_targets_are_forgotten(db) {
        a_changed_secret_takes_effect_once_targets_are_forgotten(db).await;
    }
}
