//! The simulator in tests: a small HTTP server that captures the webhooks the simulator
//! posts (standing in for Frontdesk's webhook endpoint), and simulated numbers with the
//! secrets a provider client would read from the store.

use super::TestApp;
use super::users::{ApiUser, WebSession};
use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A webhook POST as it arrived.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub signature: Option<String>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

#[derive(Clone, Default)]
struct Shared {
    received: Arc<Mutex<Vec<Received>>>,
    notify: Arc<tokio::sync::Notify>,
    /// Answer this many more POSTs with 500 (to make the simulator retry).
    fail_next: Arc<AtomicUsize>,
    attempts: Arc<AtomicUsize>,
}

/// A capturing webhook endpoint on 127.0.0.1.
pub struct Capture {
    pub url: url::Url,
    shared: Shared,
}

async fn capture(
    axum::extract::State(s): axum::extract::State<Shared>,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> axum::http::StatusCode {
    s.attempts.fetch_add(1, Ordering::SeqCst);
    let failing = s
        .fail_next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if failing {
        return axum::http::StatusCode::INTERNAL_SERVER_ERROR;
    }
    s.received.lock().unwrap().push(Received {
        path: uri.path().to_owned(),
        signature: headers
            .get("x-hub-signature-256")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body: body.to_vec(),
    });
    s.notify.notify_waiters();
    axum::http::StatusCode::OK
}

impl Capture {
    pub async fn start() -> Self {
        let shared = Shared::default();
        let router = axum::Router::new()
            .route("/webhooks/{key}", axum::routing::post(capture))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self {
            url: url::Url::parse(&format!("http://{addr}/")).unwrap(),
            shared,
        }
    }

    /// The next `n` POSTs are answered 500.
    pub fn fail_next(&self, n: usize) {
        self.shared.fail_next.store(n, Ordering::SeqCst);
    }

    /// POSTs received, failed ones included.
    pub fn attempts(&self) -> usize {
        self.shared.attempts.load(Ordering::SeqCst)
    }

    pub fn all(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    /// Waits (at most 15 s) for a webhook that `pred` accepts.
    pub async fn wait_for(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Received {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let notified = self.shared.notify.notified();
            if let Some(r) = self.all().into_iter().find(|r| pred(&r.json())) {
                return r;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!(
                    "no webhook with {what} arrived; got: {:#?}",
                    self.all().iter().map(Received::json).collect::<Vec<_>>()
                );
            }
        }
    }
}

/// A simulated number and the secrets Frontdesk keeps for it.
#[derive(Debug, Clone)]
pub struct SimChannel {
    pub id: String,
    pub phone_number_id: String,
    pub waba_id: String,
    pub access_token: String,
    pub app_secret: String,
    pub webhook_key: String,
    /// The provisioning answer.
    pub answer: Value,
}

/// The first message of a `messages` webhook.
pub fn first_message(v: &Value) -> &Value {
    &v["entry"][0]["changes"][0]["value"]["messages"][0]
}

/// The first status of a `messages` webhook.
pub fn first_status(v: &Value) -> &Value {
    &v["entry"][0]["changes"][0]["value"]["statuses"][0]
}

/// What a person does on the simulator's phone pages, signed in as `web`.
impl TestApp {
    /// Adds a fake customer to a simulated number; returns the customer's id.
    pub async fn sim_customer(
        &self,
        web: &WebSession,
        channel_id: &str,
        name: &str,
        phone: &str,
        username: &str,
    ) -> String {
        let r = self
            .web_post(
                web,
                &format!("/simulator/numbers/{channel_id}/customers"),
                &[("name", name), ("phone", phone), ("username", username)],
            )
            .await;
        assert_eq!(
            r.status(),
            StatusCode::SEE_OTHER,
            "{}",
            r.text().await.unwrap()
        );
        let to = r.headers()["location"].to_str().unwrap().to_owned();
        to.strip_prefix("/simulator/customers/").unwrap().to_owned()
    }

    /// The customer sends a form from their phone page.
    pub async fn sim_customer_sends(
        &self,
        web: &WebSession,
        customer: &str,
        fields: &[(&str, &str)],
    ) {
        let r = self
            .web_post(
                web,
                &format!("/simulator/customers/{customer}/messages"),
                fields,
            )
            .await;
        assert_eq!(
            r.status(),
            StatusCode::SEE_OTHER,
            "{}",
            r.text().await.unwrap()
        );
    }

    /// The customer sends a PNG photo with a caption from their phone page.
    pub async fn sim_customer_sends_photo(
        &self,
        web: &WebSession,
        customer: &str,
        png: &[u8],
        caption: &str,
    ) {
        let (ctype, body) = multipart(&[
            ("_csrf", None, None, web.csrf.as_bytes()),
            ("file", Some("photo.png"), Some("image/png"), png),
            ("caption", None, None, caption.as_bytes()),
        ]);
        let r = self
            .client
            .post(self.url(&format!("/simulator/customers/{customer}/image")))
            .header("cookie", format!("{}={}", web.cookie_name, web.cookie))
            .header("x-csrf-token", &web.csrf)
            .header("content-type", ctype)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
    }
}

impl TestApp {
    /// A Graph API URL of the simulator (`/simulator/graph/v23.0` + `path`).
    pub fn graph(&self, path: &str) -> String {
        self.url(&format!("/simulator/graph/v23.0{path}"))
    }

    /// Connects a simulated number over the API, then reads its secrets from the store as
    /// Frontdesk's provider client would (through an API key's tenant context).
    pub async fn provision_sim(
        &self,
        admin: &ApiUser,
        name: &str,
        rate: Option<i32>,
    ) -> SimChannel {
        let mut body = json!({ "name": name });
        if let Some(r) = rate {
            body["send_rate_limit"] = json!(r);
        }
        let (s, answer) = self
            .api(
                Method::POST,
                "/api/v1/channels/simulator",
                Some(&admin.access),
                Some(body),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{answer}");
        let id = answer["id"].as_str().unwrap().to_owned();
        let (s, key) = self
            .api(
                Method::POST,
                "/api/v1/api-keys",
                Some(&admin.access),
                Some(json!({ "name": format!("reader {id}"), "scopes": ["channels.manage"] })),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{key}");
        let principal = self
            .db
            .store
            .authenticate_api_key(key["key"].as_str().unwrap(), frontdesk_store::now_micros())
            .await
            .unwrap()
            .unwrap();
        let ctx = principal.ctx.unwrap();
        let mut tx = self.db.store.begin_read(&ctx).await.unwrap();
        let channel = frontdesk_domain::ChannelId::parse(&id).unwrap();
        let creds = tx.channel_credentials(channel).await.unwrap();
        let webhook_key = tx.channel_webhook_key(channel).await.unwrap();
        tx.commit().await.unwrap();
        SimChannel {
            phone_number_id: answer["phone_number_id"].as_str().unwrap().to_owned(),
            waba_id: answer["waba_id"].as_str().unwrap().to_owned(),
            access_token: creds.access_token.expose_secret().to_owned(),
            app_secret: creds.app_secret.unwrap().expose_secret().to_owned(),
            webhook_key: webhook_key.expose_secret().to_owned(),
            id,
            answer,
        }
    }

    /// A call to the fake Graph API with a Bearer token; the status and the JSON answer.
    pub async fn graph_call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.client.request(method, self.graph(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
}

/// One part of a multipart body: name, file name, content type, bytes.
pub type Part<'a> = (&'a str, Option<&'a str>, Option<&'a str>, &'a [u8]);

/// A multipart body by hand; returns the content type and the body.
pub fn multipart(parts: &[Part<'_>]) -> (String, Vec<u8>) {
    let boundary = "simtestboundary7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    for (name, filename, ctype, bytes) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        let mut disp = format!("Content-Disposition: form-data; name=\"{name}\"");
        if let Some(f) = filename {
            disp.push_str(&format!("; filename=\"{f}\""));
        }
        body.extend_from_slice(disp.as_bytes());
        body.extend_from_slice(b"\r\n");
        if let Some(c) = ctype {
            body.extend_from_slice(format!("Content-Type: {c}\r\n").as_bytes());
        }
        body.extend_from_slice(b"\r\n");
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}
