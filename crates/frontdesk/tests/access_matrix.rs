//! The access matrix: every route the router serves, what it requires of its caller, and
//! proof, route by route and on both backends, that the requirement holds.
//!
//! The table in [`matrix`] is the source of truth. It is compared with the router's own
//! route table first: a route missing from the matrix, an entry without a route, or a route
//! registered with another [`Access`] than the matrix expects fails the test, so a new route
//! without an entry cannot be merged. `docs/access-matrix.md` must list exactly the same
//! routes with the same access; the test fails otherwise (its message carries the table to
//! paste), so the document cannot rot.
//!
//! Then, for every route, in this order:
//!
//! 1. **anonymous** → 401 with the JSON error envelope (pages: 303 to `/login`, with
//!    `?next=` for GET); a signed-out token or cookie is answered the same. Public routes
//!    instead must serve an anonymous caller.
//! 2. **without the permission** → 403 `forbidden` for an API key holding every permission
//!    but the route's, and for a member whose custom role has every permission but the
//!    route's (pages: the 403 HTML page). Routes for a person's own account refuse API
//!    keys with 403 `not_for_api_keys`. Also: a person who belongs to no organisation is
//!    sent to choose one (403 `no_organisation`, pages 303 `/orgs`), a member of an
//!    organisation that requires two-factor sign-in is sent to set it up (403
//!    `two_factor_required`, pages 303 `/settings/security`), and a session still waiting
//!    for its second factor is refused (403 `mfa_pending`, pages 303 `/login/2fa`).
//! 3. **another tenant** → org B's admin addressing org A's object ids (in the path, and in
//!    bodies: a role id, a team, an organisation) gets 404 (pages: the 404 HTML page), and
//!    neither organisation changed (a snapshot of both is compared).
//! 4. **allowed** → org A's admin (bearer token for JSON, cookie session with the CSRF field
//!    for pages) gets the route's success answer, and its effect is checked. Routes that
//!    consume something (delete, revoke, sign out, change a password) get fresh objects or
//!    a throw-away person from their fixture, so the order of routes does not matter.

mod common;

use common::TestApp;
use common::smtp::SmtpSink;
use common::users::{ApiUser, PASSWORD, WebSession};
use frontdesk_domain::Permission;
use frontdesk_server::auth::Access;
use frontdesk_server::{RouteInfo, RouteKind};
use frontdesk_store::both_backends;
use frontdesk_store::testing::TestDb;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A password that passes the policy and differs from [`PASSWORD`].
const NEW_PASSWORD: &str = "quince harbour at dawn 7781";

type Fut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
/// Builds a valid request of org A's for the route.
type Fixture = for<'a> fn(&'a World, Purpose) -> Fut<'a, Case>;
/// Extra cross-tenant requests: org A's ids in places other than the path.
type CrossFixture = for<'a> fn(&'a World) -> Fut<'a, Vec<Case>>;
/// Checks the effect of the allowed call.
type Then = Box<dyn for<'a> FnOnce(&'a World, &'a Answer) -> Fut<'a, ()> + Send + Sync>;

/// What a fixture's request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    /// A refusal (anonymous, without the permission, another tenant): the request names
    /// org A's standing objects, and must not reach them.
    Guard,
    /// The allowed call: fresh objects and throw-away people where the call consumes them.
    Allowed,
}

/// One row of the matrix.
#[derive(Clone)]
struct Entry {
    method: Method,
    path: &'static str,
    access: Access,
    fixture: Fixture,
    cross: Option<CrossFixture>,
}

fn route(method: Method, path: &'static str, access: Access, fixture: Fixture) -> Entry {
    Entry {
        method,
        path,
        access,
        fixture,
        cross: None,
    }
}

impl Entry {
    fn cross(mut self, f: CrossFixture) -> Self {
        self.cross = Some(f);
        self
    }
}

enum Body {
    Empty,
    Json(Value),
    Form(Vec<(String, String)>),
    /// Exact bytes with headers of their own (a signed webhook).
    Signed {
        bytes: Vec<u8>,
        headers: Vec<(String, String)>,
    },
    /// A body of its own content type (multipart uploads); a browser session adds its
    /// CSRF token as the `x-csrf-token` header.
    Raw(String, Vec<u8>),
}

/// Who makes the allowed call.
enum Who {
    /// Org A's admin: bearer token for JSON, cookie session for pages.
    Admin,
    Bearer(String),
    Web(WebSession),
}

enum Expect {
    Status(u16),
    /// 303 to exactly this location.
    SeeOther(String),
    /// 303 to a location that starts with this (it names an object the call created).
    SeeOtherStarting(String),
}

/// A concrete request for a route, and what its allowed call must answer.
struct Case {
    path: String,
    body: Body,
    who: Who,
    expect: Expect,
    then: Option<Then>,
    /// Extra request headers (the simulator's Graph API takes Meta's Bearer token).
    headers: Vec<(String, String)>,
}

impl Case {
    fn bare(path: impl Into<String>) -> Self {
        Case {
            path: path.into(),
            body: Body::Empty,
            who: Who::Admin,
            expect: Expect::Status(200),
            then: None,
            headers: Vec::new(),
        }
    }

    fn json(path: impl Into<String>, v: Value) -> Self {
        Case {
            body: Body::Json(v),
            ..Case::bare(path)
        }
    }

    fn form(path: impl Into<String>, fields: &[(&str, &str)]) -> Self {
        Case {
            body: Body::Form(
                fields
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ),
            ..Case::bare(path)
        }
    }

    fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    fn raw(path: impl Into<String>, content_type: String, body: Vec<u8>) -> Self {
        Case {
            body: Body::Raw(content_type, body),
            ..Case::bare(path)
        }
    }

    fn see_other_starting(mut self, to: impl Into<String>) -> Self {
        self.expect = Expect::SeeOtherStarting(to.into());
        self
    }

    fn status(mut self, s: u16) -> Self {
        self.expect = Expect::Status(s);
        self
    }

    fn see_other(mut self, to: impl Into<String>) -> Self {
        self.expect = Expect::SeeOther(to.into());
        self
    }

    fn by(mut self, who: Who) -> Self {
        self.who = who;
        self
    }

    fn then<F>(mut self, f: F) -> Self
    where
        F: for<'a> FnOnce(&'a World, &'a Answer) -> Fut<'a, ()> + Send + Sync + 'static,
    {
        self.then = Some(Box::new(f));
        self
    }

    fn describe(&self) -> String {
        match &self.body {
            Body::Empty => self.path.clone(),
            Body::Json(v) => format!("{} {v}", self.path),
            Body::Form(f) => format!("{} {f:?}", self.path),
            Body::Raw(t, b) => format!("{} {t} ({} bytes)", self.path, b.len()),
            Body::Signed { bytes, .. } => format!("{} ({} raw bytes)", self.path, bytes.len()),
        }
    }
}

/// A response, read whole.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    text: String,
}

impl Answer {
    async fn read(mut r: reqwest::Response) -> Self {
        let status = r.status();
        let headers = r.headers().clone();
        let streaming = headers
            .get("content-type")
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
        let text = if streaming {
            // An event stream never ends: its first frame is the answer.
            let mut buf = Vec::new();
            while !buf.windows(2).any(|w| w == b"\n\n") {
                match tokio::time::timeout(Duration::from_secs(10), r.chunk()).await {
                    Ok(Ok(Some(c))) => buf.extend_from_slice(&c),
                    other => panic!("event stream ended before its first frame: {other:?}"),
                }
            }
            String::from_utf8(buf).unwrap()
        } else {
            r.text().await.unwrap()
        };
        Answer {
            status,
            headers,
            text,
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }

    /// A cookie the response sets.
    fn cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| {
                v.strip_prefix(&format!("{name}="))
                    .map(|rest| rest.split(';').next().unwrap_or_default().to_owned())
            })
            .filter(|v| !v.is_empty())
    }

    fn short(&self) -> String {
        let body: String = self.text.chars().take(400).collect();
        format!(
            "{} (location {:?}) {}",
            self.status,
            self.header("location"),
            body
        )
    }
}

/// The credential a request carries.
#[derive(Clone, Copy)]
enum Cred<'a> {
    None,
    Bearer(&'a str),
    Web(&'a WebSession),
}

/// An organisation of the world and its standing objects.
struct Org {
    id: String,
    admin: ApiUser,
    web: WebSession,
    /// An agent: the member routes about members point at.
    member: ApiUser,
    manager_role: String,
    agent_role: String,
    team: String,
    /// A live API session of the admin's (what session routes point at).
    spare_session: String,
    /// A connected WhatsApp number.
    channel: String,
    /// Its callback URL (whose key opens the organisation's context to the store).
    channel_url: String,
    /// A customer's image message on it, and the image (downloaded).
    message: String,
    media: String,
    /// A queue on the channel, and a walk-in's waiting token in it.
    queue: String,
    token: String,
}

/// Someone with both kinds of credentials.
struct Person {
    api: ApiUser,
    web: WebSession,
}

/// TOTP codes, each time step used at most once per secret (the server refuses replays).
#[derive(Default)]
struct Totp {
    last_step: Mutex<HashMap<Vec<u8>, i64>>,
}

struct World {
    app: TestApp,
    mail: SmtpSink,
    /// A pre-session CSRF token (double-submit cookie) for anonymous forms.
    presession: String,
    a: Org,
    b: Org,
    /// A second organisation of org A's admin (to switch to).
    a2_id: String,
    a2_name: String,
    /// Keys of org A holding every permission but one.
    key_without: HashMap<Permission, String>,
    /// A key of org A holding every permission.
    key_full: String,
    /// Members of org A whose custom role has every permission but one.
    person_without: HashMap<Permission, Person>,
    /// Signed in, member of no organisation.
    no_org: Person,
    /// The admin of an organisation that requires two-factor sign-in, without it set up.
    no_2fa: Person,
    /// An access token and a browser session that were signed out.
    dead_token: String,
    dead_web: WebSession,
    /// A person with two-factor sign-in on, and their secret.
    totp_user: ApiUser,
    totp_secret: Vec<u8>,
    /// A browser session of theirs that gave the password but not yet the code.
    pending: WebSession,
    totp: Totp,
    seq: AtomicUsize,
}

/// The conversation of org A's seeded customer message.
/// A new label of org A's: its id.
async fn fresh_label(w: &World) -> String {
    let name = w.uniq("label");
    w.ok(
        Method::POST,
        "/api/v1/labels",
        Some(json!({ "name": name, "color": "#123456" })),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A new quick reply of org A's: its id.
async fn fresh_quick_reply(w: &World) -> String {
    let shortcut = format!("q{}", w.uniq_digits());
    w.ok(
        Method::POST,
        "/api/v1/quick-replies",
        Some(json!({ "shortcut": shortcut, "body": "Hello {{contact.first_name}}" })),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn a_conversation(w: &World) -> String {
    w.get_a(&format!("/api/v1/messages/{}", w.a.message)).await["conversation_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// RFC 6238 (HMAC-SHA1, 30-second steps, 6 digits), computed here rather than by the server.
fn totp_at(secret: &[u8], step: i64) -> String {
    use hmac::{Hmac, KeyInit, Mac};
    let mut mac = <Hmac<sha1::Sha1> as KeyInit>::new_from_slice(secret).unwrap();
    mac.update(&step.to_be_bytes());
    let d = mac.finalize().into_bytes();
    let off = (d[d.len() - 1] & 0x0f) as usize;
    let bin = u32::from_be_bytes([d[off], d[off + 1], d[off + 2], d[off + 3]]) & 0x7fff_ffff;
    format!("{:06}", bin % 1_000_000)
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

impl Totp {
    /// A code the server accepts now and has not seen: the current step, or the one after
    /// the last used (waiting if that is too far ahead).
    async fn code(&self, secret: &[u8]) -> String {
        loop {
            let now = unix_now().div_euclid(30);
            {
                let mut last = self.last_step.lock().unwrap();
                let step = last.get(secret).map_or(now, |l| (l + 1).max(now));
                if step <= now + 1 {
                    last.insert(secret.to_vec(), step);
                    return totp_at(secret, step);
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

// ---------------------------------------------------------------------------------------
// The matrix.
// ---------------------------------------------------------------------------------------

/// A new contact of org A's: its id.
async fn fresh_contact(w: &World) -> String {
    let phone = w.uniq_phone("+1415");
    w.ok(
        Method::POST,
        "/api/v1/contacts",
        Some(json!({ "name": w.uniq("Contact"), "phone": phone })),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A pending erasure request of org A's for a new contact: (contact id, request id). The
/// organisation's delay is set for the request and put back to 0 at once, so the other
/// routes' erasures still run immediately.
async fn fresh_pending_erasure(w: &World) -> (String, String) {
    let c = fresh_contact(w).await;
    w.ok(
        Method::PUT,
        "/api/v1/audience/erasure-settings",
        Some(json!({ "window_days": 30, "delay_hours": 48 })),
    )
    .await;
    let r = w
        .ok(Method::POST, &format!("/api/v1/contacts/{c}/erase"), None)
        .await;
    w.ok(
        Method::PUT,
        "/api/v1/audience/erasure-settings",
        Some(json!({ "window_days": 30, "delay_hours": 0 })),
    )
    .await;
    assert_eq!(r["state"], "pending", "{r}");
    (c, r["id"].as_str().unwrap().to_owned())
}

/// A new tag of org A's: its id.
async fn fresh_tag(w: &World) -> String {
    w.ok(
        Method::POST,
        "/api/v1/tags",
        Some(json!({ "name": w.uniq("tag") })),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A new custom field of org A's: its id.
async fn fresh_field(w: &World) -> String {
    w.ok(
        Method::POST,
        "/api/v1/contact-fields",
        Some(json!({ "key": format!("f{}", w.uniq_digits()), "label": "Field", "kind": "text" })),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A new segment of org A's: its id.
async fn fresh_segment(w: &World) -> String {
    w.ok(
        Method::POST,
        "/api/v1/segments",
        Some(json!({ "name": w.uniq("segment"), "rule": { "and": [] } })),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A campaign's creation body (the approved template of [`approve_template`]).
fn campaign_body(name: &str, channel: &str, segment: &str) -> Value {
    json!({ "name": name, "channel_id": channel, "segment_id": segment,
        "template_name": "appointment_reminder", "template_language": "en", "consent": "opt_in" })
}

/// A new draft campaign of org A's (to a new segment): its id.
async fn fresh_campaign(w: &World) -> String {
    approve_template(w).await;
    let s = fresh_segment(w).await;
    w.ok(
        Method::POST,
        "/api/v1/campaigns",
        Some(campaign_body(&w.uniq("campaign"), &w.a.channel, &s)),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A new campaign of org A's scheduled far ahead (it stays scheduled): its id.
async fn scheduled_campaign(w: &World) -> String {
    let c = fresh_campaign(w).await;
    w.ok(
        Method::POST,
        &format!("/api/v1/campaigns/{c}/launch"),
        Some(json!({ "send_at": "2099-01-01T09:00" })),
    )
    .await;
    c
}

/// A new CSV import of org A's (one row, not started): its id.
async fn fresh_import(w: &World) -> String {
    let csv = format!("name,phone\nImported,{}\n", w.uniq_phone("+1415"));
    w.ok(
        Method::POST,
        "/api/v1/contact-imports",
        Some(json!({ "filename": "people.csv", "csv": csv })),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A new export request of org A's, made with `token`: its id.
async fn fresh_export(w: &World, token: &str) -> String {
    let (s, v) = w
        .app
        .api(
            Method::POST,
            "/api/v1/contact-exports",
            Some(token),
            Some(json!({})),
        )
        .await;
    assert!(s.is_success(), "{v}");
    v["id"].as_str().unwrap().to_owned()
}

fn matrix() -> Vec<Entry> {
    use Access::{Member, Public, Session, Signed};
    use Permission::*;
    vec![
        // -- probes, documents, assets -----------------------------------------------------
        route(Method::GET, "/healthz", Public, |_, _| {
            Box::pin(async move {
                Case::bare("/healthz")
                    .then(|_, a| Box::pin(async move { assert_eq!(a.json()["status"], "ok") }))
            })
        }),
        route(Method::GET, "/readyz", Public, |_, _| {
            Box::pin(async move {
                Case::bare("/readyz")
                    .then(|_, a| Box::pin(async move { assert_eq!(a.json()["status"], "ready") }))
            })
        }),
        route(Method::GET, "/metrics", Public, |_, _| {
            Box::pin(async move {
                Case::bare("/metrics").then(|_, a| {
                    Box::pin(async move {
                        assert!(
                            a.text.contains("frontdesk_http_requests_total"),
                            "{}",
                            a.short()
                        )
                    })
                })
            })
        }),
        route(Method::GET, "/api/openapi.json", Public, |_, _| {
            Box::pin(async move {
                Case::bare("/api/openapi.json").then(|_, a| {
                    Box::pin(async move {
                        assert!(
                            a.json()["paths"]["/api/v1/roles"].is_object(),
                            "{}",
                            a.short()
                        )
                    })
                })
            })
        }),
        route(Method::GET, "/static/app.css", Public, |_, _| {
            Box::pin(async move {
                Case::bare("/static/app.css").then(|_, a| {
                    Box::pin(async move {
                        assert!(a.header("content-type").unwrap().starts_with("text/css"))
                    })
                })
            })
        }),
        route(Method::GET, "/static/app.js", Public, |_, _| {
            Box::pin(async move {
                Case::bare("/static/app.js").then(|_, a| {
                    Box::pin(async move {
                        assert!(
                            a.header("content-type")
                                .unwrap()
                                .starts_with("text/javascript")
                        )
                    })
                })
            })
        }),
        // -- provider webhooks: public to the guard, the channel's secret checked inside ------
        route(Method::GET, "/webhooks/{key}", Public, |w, _| {
            Box::pin(async move {
                let hook = w.webhook_channel().await;
                Case::bare(format!(
                    "/webhooks/{}?hub.mode=subscribe&hub.verify_token={}&hub.challenge=8093",
                    hook.key,
                    enc(&hook.verify_token)
                ))
                .then(|_, a| Box::pin(async move { assert_eq!(a.text, "8093", "{}", a.short()) }))
            })
        }),
        route(Method::POST, "/webhooks/{key}", Public, |w, _| {
            Box::pin(async move {
                let hook = w.webhook_channel().await;
                let body = br#"{"object":"whatsapp_business_account","entry":[]}"#.to_vec();
                let sig = frontdesk_whatsapp::sign_meta(hook.app_secret.as_bytes(), &body);
                Case {
                    body: Body::Signed {
                        bytes: body.clone(),
                        headers: vec![("x-hub-signature-256".into(), sig)],
                    },
                    ..Case::bare(format!("/webhooks/{}", hook.key))
                }
                .then(move |w, _| {
                    Box::pin(async move {
                        let rows = w
                            .app
                            .db
                            .store
                            .inbox_where(&hook.ctx, None, 10)
                            .await
                            .unwrap();
                        assert_eq!(rows.len(), 1);
                        assert_eq!(rows[0].body, body, "the raw body is in the inbox");
                    })
                })
            })
        }),
        // -- signing up, in and out over the API --------------------------------------------
        route(Method::POST, "/api/v1/auth/signup", Public, |w, _| {
            Box::pin(async move {
                let email = w.email("founder", "signup");
                Case::json(
                    "/api/v1/auth/signup",
                    json!({ "organisation_name": w.uniq("Zed signup"), "name": "Founder", "email": email, "password": PASSWORD }),
                )
                .status(201)
                .then(move |w, a| {
                    Box::pin(async move {
                        let me = w.get_as(a.json()["access_token"].as_str().unwrap(), "/api/v1/me").await;
                        assert_eq!(me["user"]["email"], email.as_str());
                    })
                })
            })
        }),
        route(Method::POST, "/api/v1/auth/login", Public, |w, _| {
            Box::pin(async move {
                Case::json(
                    "/api/v1/auth/login",
                    json!({ "email": w.a.admin.email, "password": PASSWORD, "org_id": w.a.id }),
                )
                .then(|w, a| {
                    Box::pin(async move {
                        let org = w
                            .get_as(a.json()["access_token"].as_str().unwrap(), "/api/v1/org")
                            .await;
                        assert_eq!(org["id"], w.a.id.as_str());
                    })
                })
            })
        })
        .cross(|w| {
            Box::pin(async move {
                // Org B's admin signs in asking to act in org A.
                vec![Case::json(
                    "/api/v1/auth/login",
                    json!({ "email": w.b.admin.email, "password": PASSWORD, "org_id": w.a.id }),
                )]
            })
        }),
        route(Method::POST, "/api/v1/auth/refresh", Public, |w, _| {
            Box::pin(async move {
                let user = w.app.login(&w.a.admin.email, PASSWORD).await;
                Case::json(
                    "/api/v1/auth/refresh",
                    json!({ "refresh_token": user.refresh }),
                )
                .then(|w, a| {
                    Box::pin(async move {
                        let v = a.json();
                        w.get_as(v["access_token"].as_str().unwrap(), "/api/v1/me")
                            .await;
                        assert!(v["refresh_token"].as_str().is_some_and(|t| !t.is_empty()));
                    })
                })
            })
        }),
        route(Method::POST, "/api/v1/auth/logout", Session, |w, p| {
            Box::pin(async move {
                let case = Case::bare("/api/v1/auth/logout").status(204);
                if p == Purpose::Guard {
                    return case;
                }
                let (token, _) = w.api_session(&w.a.admin.email, PASSWORD, &w.a.id).await;
                case.by(Who::Bearer(token.clone()))
                    .then(move |w, _| Box::pin(async move { w.assert_token_dead(&token).await }))
            })
        }),
        route(Method::POST, "/api/v1/auth/switch-org", Signed, |w, p| {
            Box::pin(async move {
                let case = Case::json("/api/v1/auth/switch-org", json!({ "org_id": w.a2_id }));
                if p == Purpose::Guard {
                    return case;
                }
                let (token, _) = w.api_session(&w.a.admin.email, PASSWORD, &w.a.id).await;
                case.by(Who::Bearer(token)).then(|w, a| {
                    Box::pin(async move {
                        let org = w
                            .get_as(a.json()["access_token"].as_str().unwrap(), "/api/v1/org")
                            .await;
                        assert_eq!(org["id"], w.a2_id.as_str());
                    })
                })
            })
        })
        .cross(|w| {
            Box::pin(async move {
                // Org B's admin asks to act in org A.
                vec![Case::json(
                    "/api/v1/auth/switch-org",
                    json!({ "org_id": w.a.id }),
                )]
            })
        }),
        route(Method::POST, "/api/v1/auth/magic-link", Public, |w, _| {
            Box::pin(async move {
                let m = w.fresh_member().await;
                Case::json("/api/v1/auth/magic-link", json!({ "email": m.email }))
                    .status(202)
                    .then(move |w, _| {
                        Box::pin(async move {
                            w.mail_token(&m.email, "sign-in link", "/auth/magic").await;
                        })
                    })
            })
        }),
        route(
            Method::POST,
            "/api/v1/auth/password-reset",
            Public,
            |w, _| {
                Box::pin(async move {
                    let m = w.fresh_member().await;
                    Case::json("/api/v1/auth/password-reset", json!({ "email": m.email }))
                        .status(202)
                        .then(move |w, _| {
                            Box::pin(async move {
                                w.mail_token(&m.email, "Reset your", "/password/reset")
                                    .await;
                            })
                        })
                })
            },
        ),
        route(
            Method::POST,
            "/api/v1/auth/password-reset/complete",
            Public,
            |w, _| {
                Box::pin(async move {
                    let m = w.fresh_member().await;
                    let token = w.reset_token(&m.email).await;
                    Case::json(
                        "/api/v1/auth/password-reset/complete",
                        json!({ "token": token, "new_password": NEW_PASSWORD }),
                    )
                    .status(204)
                    .then(move |w, _| {
                        Box::pin(async move {
                            w.app.login(&m.email, NEW_PASSWORD).await;
                        })
                    })
                })
            },
        ),
        // -- a person's own account over the API ---------------------------------------------
        route(Method::GET, "/api/v1/me", Signed, |_, _| {
            Box::pin(async move {
                Case::bare("/api/v1/me").then(|w, a| {
                    Box::pin(async move {
                        assert_eq!(a.json()["user"]["id"], w.a.admin.user_id.as_str())
                    })
                })
            })
        }),
        route(Method::PATCH, "/api/v1/me", Signed, |w, _| {
            Box::pin(async move {
                let name = w.uniq("Admin A renamed");
                Case::json("/api/v1/me", json!({ "name": name })).then(move |w, _| {
                    Box::pin(async move {
                        let me = w.get_as(&w.a.admin.access, "/api/v1/me").await;
                        assert_eq!(me["user"]["name"], name.as_str());
                    })
                })
            })
        }),
        route(Method::POST, "/api/v1/me/password", Signed, |w, p| {
            Box::pin(async move {
                let case = Case::json(
                    "/api/v1/me/password",
                    json!({ "current_password": PASSWORD, "new_password": NEW_PASSWORD }),
                )
                .status(204);
                if p == Purpose::Guard {
                    return case;
                }
                let m = w.fresh_member().await;
                case.by(Who::Bearer(m.access.clone())).then(move |w, _| {
                    Box::pin(async move {
                        w.app.login(&m.email, NEW_PASSWORD).await;
                    })
                })
            })
        }),
        route(Method::POST, "/api/v1/me/totp/setup", Signed, |_, _| {
            Box::pin(async move {
                Case::bare("/api/v1/me/totp/setup").then(|_, a| {
                    Box::pin(async move {
                        let v = a.json();
                        assert!(v["secret"].as_str().is_some_and(|s| s.len() >= 32), "{v}");
                        assert!(
                            v["otpauth_uri"]
                                .as_str()
                                .unwrap()
                                .starts_with("otpauth://totp/")
                        );
                    })
                })
            })
        }),
        route(Method::POST, "/api/v1/me/totp/enable", Signed, |w, p| {
            Box::pin(async move {
                if p == Purpose::Guard {
                    return Case::json("/api/v1/me/totp/enable", json!({ "code": "000000" }));
                }
                let m = w.fresh_member().await;
                let (s, v) = w
                    .app
                    .api(Method::POST, "/api/v1/me/totp/setup", Some(&m.access), None)
                    .await;
                assert_eq!(s, StatusCode::OK, "{v}");
                let secret = base32(v["secret"].as_str().unwrap());
                let code = w.totp.code(&secret).await;
                Case::json("/api/v1/me/totp/enable", json!({ "code": code }))
                    .status(204)
                    .by(Who::Bearer(m.access.clone()))
                    .then(move |w, _| {
                        Box::pin(async move {
                            let me = w.get_as(&m.access, "/api/v1/me").await;
                            assert_eq!(me["user"]["totp_enabled"], true);
                        })
                    })
            })
        }),
        route(Method::POST, "/api/v1/me/totp/disable", Signed, |w, p| {
            Box::pin(async move {
                if p == Purpose::Guard {
                    return Case::json(
                        "/api/v1/me/totp/disable",
                        json!({ "password": PASSWORD, "code": "000000" }),
                    );
                }
                let m = w.fresh_member().await;
                let secret = w.enable_totp(&m).await;
                let code = w.totp.code(&secret).await;
                Case::json(
                    "/api/v1/me/totp/disable",
                    json!({ "password": PASSWORD, "code": code }),
                )
                .status(204)
                .by(Who::Bearer(m.access.clone()))
                .then(move |w, _| {
                    Box::pin(async move {
                        let me = w.get_as(&m.access, "/api/v1/me").await;
                        assert_eq!(me["user"]["totp_enabled"], false);
                    })
                })
            })
        }),
        route(Method::GET, "/api/v1/me/sessions", Signed, |_, _| {
            Box::pin(async move {
                Case::bare("/api/v1/me/sessions").then(|_, a| {
                    Box::pin(async move {
                        let v = a.json();
                        assert!(
                            v.as_array().unwrap().iter().any(|s| s["current"] == true),
                            "{v}"
                        );
                    })
                })
            })
        }),
        route(
            Method::DELETE,
            "/api/v1/me/sessions/{session_id}",
            Signed,
            |w, p| {
                Box::pin(async move {
                    if p == Purpose::Guard {
                        return Case::bare(format!("/api/v1/me/sessions/{}", w.a.spare_session));
                    }
                    let (token, id) = w.api_session(&w.a.admin.email, PASSWORD, &w.a.id).await;
                    Case::bare(format!("/api/v1/me/sessions/{id}"))
                        .status(204)
                        .then(move |w, _| {
                            Box::pin(async move { w.assert_token_dead(&token).await })
                        })
                })
            },
        ),
        route(
            Method::POST,
            "/api/v1/me/sessions/revoke-others",
            Signed,
            |w, p| {
                Box::pin(async move {
                    let case = Case::bare("/api/v1/me/sessions/revoke-others");
                    if p == Purpose::Guard {
                        return case;
                    }
                    let m = w.fresh_member().await;
                    let (other, _) = w.api_session(&m.email, PASSWORD, &w.a.id).await;
                    case.by(Who::Bearer(m.access.clone())).then(move |w, a| {
                        Box::pin(async move {
                            assert!(a.json()["revoked"].as_u64().unwrap() >= 1, "{}", a.short());
                            w.assert_token_dead(&other).await;
                            w.get_as(&m.access, "/api/v1/me").await;
                        })
                    })
                })
            },
        ),
        route(Method::POST, "/api/v1/organisations", Signed, |w, _| {
            Box::pin(async move {
                Case::json(
                    "/api/v1/organisations",
                    json!({ "name": w.uniq("Zed api org") }),
                )
                .status(201)
                .then(|w, a| {
                    Box::pin(async move {
                        let id = a.json()["id"].as_str().unwrap().to_owned();
                        let me = w.get_as(&w.a.admin.access, "/api/v1/me").await;
                        assert!(
                            me["organisations"]
                                .as_array()
                                .unwrap()
                                .iter()
                                .any(|o| o["org_id"] == id.as_str()),
                            "{me}"
                        );
                    })
                })
            })
        }),
        route(
            Method::POST,
            "/api/v1/me/invitations/accept",
            Signed,
            |w, p| {
                Box::pin(async move {
                    if p == Purpose::Guard {
                        let email = w.email("guest", "guest");
                        let (_, token) = w.fresh_invitation(&email).await;
                        return Case::json(
                            "/api/v1/me/invitations/accept",
                            json!({ "token": token }),
                        );
                    }
                    // Someone with an account (the founder of another organisation) joins org A.
                    let email = w.email("guest", "guest");
                    let guest = w.app.signup(&w.uniq("Zed guest org"), &email).await;
                    let (_, token) = w.fresh_invitation(&email).await;
                    Case::json("/api/v1/me/invitations/accept", json!({ "token": token }))
                        .by(Who::Bearer(guest.access.clone()))
                        .then(move |w, a| {
                            Box::pin(async move {
                                assert_eq!(a.json()["org_id"], w.a.id.as_str());
                                assert!(w.member_of_a(&guest.user_id).await.is_some());
                            })
                        })
                })
            },
        ),
        route(
            Method::POST,
            "/api/v1/invitations/preview",
            Public,
            |w, _| {
                Box::pin(async move {
                    let email = w.email("guest", "guest");
                    let (_, token) = w.fresh_invitation(&email).await;
                    Case::json("/api/v1/invitations/preview", json!({ "token": token })).then(
                        move |w, a| {
                            Box::pin(async move {
                                let v = a.json();
                                assert_eq!(v["org_id"], w.a.id.as_str());
                                assert_eq!(v["email"], email.as_str());
                            })
                        },
                    )
                })
            },
        ),
        route(
            Method::POST,
            "/api/v1/invitations/accept",
            Public,
            |w, _| {
                Box::pin(async move {
                    let email = w.email("guest", "guest");
                    let (_, token) = w.fresh_invitation(&email).await;
                    Case::json(
                        "/api/v1/invitations/accept",
                        json!({ "token": token, "name": "Invited Person", "password": PASSWORD }),
                    )
                    .status(201)
                    .then(|w, a| {
                        Box::pin(async move {
                            let org = w
                                .get_as(a.json()["access_token"].as_str().unwrap(), "/api/v1/org")
                                .await;
                            assert_eq!(org["id"], w.a.id.as_str());
                        })
                    })
                })
            },
        ),
        // -- running an organisation over the API -------------------------------------------
        route(Method::GET, "/api/v1/org", Member, |_, _| {
            Box::pin(async move {
                Case::bare("/api/v1/org").then(|w, a| {
                    Box::pin(async move { assert_eq!(a.json()["id"], w.a.id.as_str()) })
                })
            })
        }),
        route(
            Method::PATCH,
            "/api/v1/org",
            Access::Perm(SettingsManage),
            |w, _| {
                Box::pin(async move {
                    let name = w.uniq("Aardvark clinic");
                    Case::json("/api/v1/org", json!({ "name": name, "require_2fa": false })).then(
                        move |w, _| {
                            Box::pin(async move {
                                assert_eq!(w.get_a("/api/v1/org").await["name"], name.as_str())
                            })
                        },
                    )
                })
            },
        ),
        route(Method::GET, "/api/v1/permissions", Member, |_, _| {
            Box::pin(async move {
                Case::bare("/api/v1/permissions").then(|_, a| {
                    Box::pin(async move {
                        assert_eq!(a.json().as_array().unwrap().len(), Permission::ALL.len())
                    })
                })
            })
        }),
        route(Method::GET, "/api/v1/roles", Access::Member, |_, _| {
            Box::pin(async move {
                Case::bare("/api/v1/roles").then(|w, a| {
                    Box::pin(async move {
                        let v = a.json();
                        let ids: Vec<&str> = v
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|r| r["id"].as_str().unwrap())
                            .collect();
                        assert!(ids.contains(&w.a.manager_role.as_str()), "{v}");
                    })
                })
            })
        }),
        route(
            Method::POST,
            "/api/v1/roles",
            Access::Perm(RolesManage),
            |w, _| {
                Box::pin(async move {
                    let name = w.uniq("receptionist");
                    Case::json(
                        "/api/v1/roles",
                        json!({ "name": name, "permissions": ["inbox.read", "queue.read"] }),
                    )
                    .status(201)
                    .then(move |w, _| {
                        Box::pin(async move { assert!(w.role_named(&name).await.is_some()) })
                    })
                })
            },
        ),
        route(
            Method::PATCH,
            "/api/v1/roles/{role_id}",
            Access::Perm(RolesManage),
            |w, _| {
                Box::pin(async move {
                    let id = w.fresh_role().await;
                    let name = w.uniq("doctor");
                    Case::json(
                        format!("/api/v1/roles/{id}"),
                        json!({ "name": name, "permissions": ["inbox.read"] }),
                    )
                    .then(move |w, _| {
                        Box::pin(async move {
                            assert_eq!(w.role_named(&name).await.unwrap()["id"], id.as_str())
                        })
                    })
                })
            },
        ),
        route(
            Method::DELETE,
            "/api/v1/roles/{role_id}",
            Access::Perm(RolesManage),
            |w, _| {
                Box::pin(async move {
                    let id = w.fresh_role().await;
                    Case::bare(format!("/api/v1/roles/{id}"))
                        .status(204)
                        .then(move |w, _| {
                            Box::pin(async move {
                                let roles = w.get_a("/api/v1/roles").await;
                                assert!(
                                    !roles
                                        .as_array()
                                        .unwrap()
                                        .iter()
                                        .any(|r| r["id"] == id.as_str())
                                );
                            })
                        })
                })
            },
        ),
        route(
            Method::GET,
            "/api/v1/members",
            Access::Perm(TeamManage),
            |_, _| {
                Box::pin(async move {
                    Case::bare("/api/v1/members").then(|w, a| {
                        Box::pin(async move {
                            let v = a.json();
                            assert!(
                                v.as_array()
                                    .unwrap()
                                    .iter()
                                    .any(|m| m["user_id"] == w.a.admin.user_id.as_str()),
                                "{v}"
                            );
                        })
                    })
                })
            },
        ),
        route(
            Method::PATCH,
            "/api/v1/members/{user_id}",
            Access::Perm(RolesManage),
            |w, _| {
                Box::pin(async move {
                    Case::json(
                        format!("/api/v1/members/{}", w.a.member.user_id),
                        json!({ "role_id": w.a.manager_role }),
                    )
                    .status(204)
                    .then(|w, _| {
                        Box::pin(async move {
                            let m = w.member_of_a(&w.a.member.user_id).await.unwrap();
                            assert_eq!(m["role_id"], w.a.manager_role.as_str());
                        })
                    })
                })
            },
        )
        .cross(|w| {
            Box::pin(async move {
                vec![
                    // B's own member, A's role.
                    Case::json(
                        format!("/api/v1/members/{}", w.b.member.user_id),
                        json!({ "role_id": w.a.manager_role }),
                    ),
                    // A's member, B's role.
                    Case::json(
                        format!("/api/v1/members/{}", w.a.member.user_id),
                        json!({ "role_id": w.b.manager_role }),
                    ),
                ]
            })
        }),
        route(
            Method::DELETE,
            "/api/v1/members/{user_id}",
            Access::Perm(TeamManage),
            |w, p| {
                Box::pin(async move {
                    if p == Purpose::Guard {
                        return Case::bare(format!("/api/v1/members/{}", w.a.member.user_id));
                    }
                    let m = w.fresh_member().await;
                    Case::bare(format!("/api/v1/members/{}", m.user_id))
                        .status(204)
                        .then(move |w, _| {
                            Box::pin(
                                async move { assert!(w.member_of_a(&m.user_id).await.is_none()) },
                            )
                        })
                })
            },
        ),
        route(
            Method::POST,
            "/api/v1/members/{user_id}/revoke-sessions",
            Access::Perm(TeamManage),
            |w, p| {
                Box::pin(async move {
                    let case = Case::bare(format!(
                        "/api/v1/members/{}/revoke-sessions",
                        w.a.member.user_id
                    ));
                    if p == Purpose::Guard {
                        return case;
                    }
                    let (token, _) = w.api_session(&w.a.member.email, PASSWORD, &w.a.id).await;
                    case.then(move |w, a| {
                        Box::pin(async move {
                            assert!(a.json()["revoked"].as_u64().unwrap() >= 1, "{}", a.short());
                            w.assert_token_dead(&token).await;
                        })
                    })
                })
            },
        ),
        route(
            Method::GET,
            "/api/v1/teams",
            Access::Perm(TeamManage),
            |_, _| {
                Box::pin(async move {
                    Case::bare("/api/v1/teams").then(|w, a| {
                        Box::pin(async move {
                            let v = a.json();
                            assert!(
                                v.as_array()
                                    .unwrap()
                                    .iter()
                                    .any(|t| t["id"] == w.a.team.as_str()),
                                "{v}"
                            );
                        })
                    })
                })
            },
        ),
        route(
            Method::POST,
            "/api/v1/teams",
            Access::Perm(TeamManage),
            |w, _| {
                Box::pin(async move {
                    let name = w.uniq("Night shift");
                    Case::json("/api/v1/teams", json!({ "name": name }))
                        .status(201)
                        .then(move |w, a| {
                            Box::pin(async move {
                                let id = a.json()["id"].as_str().unwrap().to_owned();
                                assert_eq!(w.team_of_a(&id).await.unwrap()["name"], name.as_str());
                            })
                        })
                })
            },
        ),
        route(
            Method::PATCH,
            "/api/v1/teams/{team_id}",
            Access::Perm(TeamManage),
            |w, _| {
                Box::pin(async move {
                    let id = w.fresh_team().await;
                    let name = w.uniq("Renamed team");
                    Case::json(format!("/api/v1/teams/{id}"), json!({ "name": name }))
                        .status(204)
                        .then(move |w, _| {
                            Box::pin(async move {
                                assert_eq!(w.team_of_a(&id).await.unwrap()["name"], name.as_str())
                            })
                        })
                })
            },
        ),
        route(
            Method::DELETE,
            "/api/v1/teams/{team_id}",
            Access::Perm(TeamManage),
            |w, _| {
                Box::pin(async move {
                    let id = w.fresh_team().await;
                    Case::bare(format!("/api/v1/teams/{id}"))
                        .status(204)
                        .then(move |w, _| {
                            Box::pin(async move { assert!(w.team_of_a(&id).await.is_none()) })
                        })
                })
            },
        ),
        route(
            Method::PUT,
            "/api/v1/teams/{team_id}/members/{user_id}",
            Access::Perm(TeamManage),
            |w, _| {
                Box::pin(async move {
                    let id = w.fresh_team().await;
                    Case::bare(format!("/api/v1/teams/{id}/members/{}", w.a.member.user_id))
                        .status(204)
                        .then(move |w, _| {
                            Box::pin(async move {
                                let t = w.team_of_a(&id).await.unwrap();
                                assert_eq!(t["members"], json!([w.a.member.user_id]));
                            })
                        })
                })
            },
        )
        .cross(|w| Box::pin(async move { w.team_member_cross_paths() })),
        route(
            Method::DELETE,
            "/api/v1/teams/{team_id}/members/{user_id}",
            Access::Perm(TeamManage),
            |w, _| {
                Box::pin(async move {
                    let id = w.fresh_team().await;
                    w.ok(
                        Method::PUT,
                        &format!("/api/v1/teams/{id}/members/{}", w.a.member.user_id),
                        None,
                    )
                    .await;
                    Case::bare(format!("/api/v1/teams/{id}/members/{}", w.a.member.user_id))
                        .status(204)
                        .then(move |w, _| {
                            Box::pin(async move {
                                assert_eq!(w.team_of_a(&id).await.unwrap()["members"], json!([]))
                            })
                        })
                })
            },
        )
        .cross(|w| Box::pin(async move { w.team_member_cross_paths() })),
        route(
            Method::GET,
            "/api/v1/invitations",
            Access::Perm(TeamManage),
            |_, _| {
                Box::pin(async move {
                    Case::bare("/api/v1/invitations").then(|_, a| {
                        Box::pin(async move { assert!(a.json().is_array(), "{}", a.short()) })
                    })
                })
            },
        ),
        route(
            Method::POST,
            "/api/v1/invitations",
            Access::Perm(TeamManage),
            |w, _| {
                Box::pin(async move {
                    let email = w.email("invitee", "guest");
                    Case::json(
                        "/api/v1/invitations",
                        json!({ "email": email, "role_id": w.a.agent_role }),
                    )
                    .status(201)
                    .then(move |w, a| {
                        Box::pin(async move {
                            let id = a.json()["invitation"]["id"].as_str().unwrap().to_owned();
                            let inv = w.invitation_of_a(&id).await.unwrap();
                            assert_eq!(inv["email"], email.as_str());
                            assert_eq!(inv["state"], "pending");
                        })
                    })
                })
            },
        )
        .cross(|w| {
            Box::pin(async move {
                let email = w.email("invitee", "guest");
                // Org B invites with a role of org A's.
                vec![Case::json(
                    "/api/v1/invitations",
                    json!({ "email": email, "role_id": w.a.agent_role }),
                )]
            })
        }),
        route(
            Method::DELETE,
            "/api/v1/invitations/{invitation_id}",
            Access::Perm(TeamManage),
            |w, _| {
                Box::pin(async move {
                    let email = w.email("invitee", "guest");
                    let (id, _) = w.fresh_invitation(&email).await;
                    Case::bare(format!("/api/v1/invitations/{id}"))
                        .status(204)
                        .then(move |w, _| {
                            Box::pin(async move {
                                assert_eq!(
                                    w.invitation_of_a(&id).await.unwrap()["state"],
                                    "revoked"
                                )
                            })
                        })
                })
            },
        ),
        route(
            Method::GET,
            "/api/v1/api-keys",
            Access::Perm(ApiKeysManage),
            |_, _| {
                Box::pin(async move {
                    Case::bare("/api/v1/api-keys").then(|_, a| {
                        Box::pin(async move {
                            let v = a.json();
                            let keys = v.as_array().unwrap();
                            assert!(!keys.is_empty(), "{v}");
                            assert!(
                                keys.iter().all(|k| k.get("key").is_none()),
                                "keys are shown once only"
                            );
                        })
                    })
                })
            },
        ),
        route(
            Method::POST,
            "/api/v1/api-keys",
            Access::Perm(ApiKeysManage),
            |w, _| {
                Box::pin(async move {
                    Case::json(
                        "/api/v1/api-keys",
                        json!({ "name": w.uniq("crm sync"), "scopes": ["contacts.read"] }),
                    )
                    .status(201)
                    .then(|w, a| {
                        Box::pin(async move {
                            let key = a.json()["key"].as_str().unwrap().to_owned();
                            assert_eq!(w.get_as(&key, "/api/v1/org").await["id"], w.a.id.as_str());
                        })
                    })
                })
            },
        ),
        route(
            Method::DELETE,
            "/api/v1/api-keys/{key_id}",
            Access::Perm(ApiKeysManage),
            |w, _| {
                Box::pin(async move {
                    let (id, key) = w.fresh_key().await;
                    Case::bare(format!("/api/v1/api-keys/{id}"))
                        .status(204)
                        .then(move |w, _| Box::pin(async move { w.assert_token_dead(&key).await }))
                })
            },
        ),
        route(
            Method::GET,
            "/api/v1/audit-events",
            Access::Perm(AuditRead),
            |_, _| {
                Box::pin(async move {
                    Case::bare("/api/v1/audit-events?limit=5").then(|_, a| {
                        Box::pin(async move {
                            let v = a.json();
                            assert!(!v["events"].as_array().unwrap().is_empty(), "{v}");
                        })
                    })
                })
            },
        ),
        // -- channels and the webhook inbox -----------------------------------------------------
        route(
            Method::GET,
            "/api/v1/channels",
            Access::Perm(ChannelsManage),
            |_, _| {
                Box::pin(async move {
                    Case::bare("/api/v1/channels").then(|w, a| {
                        Box::pin(async move {
                            let v = a.json();
                            assert!(
                                v.as_array()
                                    .unwrap()
                                    .iter()
                                    .any(|c| c["id"] == w.a.channel.as_str()),
                                "{v}"
                            );
                            assert!(!a.text.contains(CHANNEL_SECRET), "no secret in the list");
                        })
                    })
                })
            },
        ),
        route(
            Method::POST,
            "/api/v1/channels",
            Access::Perm(ChannelsManage),
            |w, _| {
                Box::pin(async move {
                    Case::json("/api/v1/channels", channel_body(&w.uniq_digits()))
                        .status(201)
                        .then(|w, a| {
                            Box::pin(async move {
                                assert!(
                                    !a.text.contains(CHANNEL_SECRET),
                                    "no secret in the answer"
                                );
                                let id = a.json()["channel"]["id"].as_str().unwrap().to_owned();
                                w.get_a(&format!("/api/v1/channels/{id}")).await;
                            })
                        })
                })
            },
        ),
        route(
            Method::GET,
            "/api/v1/channels/{channel_id}",
            Access::Perm(ChannelsManage),
            |w, _| {
                Box::pin(async move {
                    Case::bare(format!("/api/v1/channels/{}", w.a.channel)).then(|w, a| {
                        Box::pin(async move {
                            assert_eq!(a.json()["id"], w.a.channel.as_str());
                            assert!(!a.text.contains(CHANNEL_SECRET));
                        })
                    })
                })
            },
        ),
        route(
            Method::PATCH,
            "/api/v1/channels/{channel_id}",
            Access::Perm(ChannelsManage),
            |w, p| {
                Box::pin(async move {
                    let id = match p {
                        Purpose::Guard => w.a.channel.clone(),
                        Purpose::Allowed => w.fresh_channel().await.0,
                    };
                    let name = w.uniq("Renamed number");
                    Case::json(format!("/api/v1/channels/{id}"), json!({ "name": name })).then(
                        move |w, _| {
                            Box::pin(async move {
                                let v = w.get_a(&format!("/api/v1/channels/{id}")).await;
                                assert_eq!(v["name"], name.as_str());
                            })
                        },
                    )
                })
            },
        ),
        route(
            Method::DELETE,
            "/api/v1/channels/{channel_id}",
            Access::Perm(ChannelsManage),
            |w, p| {
                Box::pin(async move {
                    let id = match p {
                        Purpose::Guard => w.a.channel.clone(),
                        Purpose::Allowed => w.fresh_channel().await.0,
                    };
                    Case::bare(format!("/api/v1/channels/{id}"))
                        .status(204)
                        .then(move |w, _| Box::pin(async move { w.assert_channel_gone(&id).await }))
                })
            },
        ),
        route(
            Method::GET,
            "/api/v1/channels/{channel_id}/webhook",
            Access::Perm(ChannelsManage),
            |w, _| {
                Box::pin(async move {
                    Case::bare(format!("/api/v1/channels/{}/webhook", w.a.channel)).then(|w, a| {
                        Box::pin(async move {
                            let url = a.json()["callback_url"].as_str().unwrap().to_owned();
                            assert_eq!(w.channel_of_callback(&url).await, w.a.channel);
                        })
                    })
                })
            },
        ),
        // -- clinic queues -------------------------------------------------------------------
        route(Method::GET, "/api/v1/queues", Access::Perm(QueueRead), |_, _| {
            Box::pin(async move {
                Case::bare("/api/v1/queues").then(|w, a| {
                    Box::pin(async move {
                        let v = a.json();
                        let ids: Vec<&str> = v.as_array().unwrap().iter().map(|q| q["id"].as_str().unwrap()).collect();
                        assert!(ids.contains(&w.a.queue.as_str()) && !ids.contains(&w.b.queue.as_str()), "{ids:?}");
                    })
                })
            })
        }),
        route(Method::POST, "/api/v1/queues", Access::Perm(QueueConfigure), |w, _| {
            Box::pin(async move {
                let name = format!("Dr New {}", w.uniq_digits());
                Case::json(
                    "/api/v1/queues",
                    json!({ "channel_id": w.a.channel, "name": name, "keywords": [name],
                            "token_prefix": "B", "daily_cap": 20, "position_step": 2 }),
                )
                .status(201)
                .then(|w, a| {
                    Box::pin(async move {
                        let id = a.json()["id"].as_str().unwrap().to_owned();
                        let b = w.get_a(&format!("/api/v1/queues/{id}/board")).await;
                        assert_eq!(b["queue"]["token_prefix"], "B");
                    })
                })
            })
        })
        .cross(|w| {
            Box::pin(async move {
                vec![Case::json(
                    "/api/v1/queues",
                    json!({ "channel_id": w.a.channel, "name": "Cross", "keywords": ["CROSS"],
                            "token_prefix": "C", "daily_cap": 20, "position_step": 2 }),
                )]
            })
        }),
        route(Method::PUT, "/api/v1/queues/{queue_id}", Access::Perm(QueueConfigure), |w, p| {
            Box::pin(async move {
                let id = match p {
                    Purpose::Guard => w.a.queue.clone(),
                    Purpose::Allowed => create_queue(&w.app, &w.a.admin, &w.a.channel, &format!("Dr Upd {}", w.uniq_digits())).await.0,
                };
                let name = format!("Dr Renamed {}", w.uniq_digits());
                Case::json(
                    format!("/api/v1/queues/{id}"),
                    json!({ "channel_id": w.a.channel, "name": name, "keywords": [name],
                            "token_prefix": "R", "daily_cap": 30, "position_step": 3 }),
                )
                .then(|w, a| {
                    Box::pin(async move {
                        let id = a.json()["id"].as_str().unwrap().to_owned();
                        let b = w.get_a(&format!("/api/v1/queues/{id}/board")).await;
                        assert_eq!((b["queue"]["token_prefix"].as_str(), b["queue"]["daily_cap"].as_i64()), (Some("R"), Some(30)));
                    })
                })
            })
        }),
        route(Method::GET, "/api/v1/queues/{queue_id}/board", Access::Perm(QueueRead), |w, _| {
            Box::pin(async move {
                Case::bare(format!("/api/v1/queues/{}/board", w.a.queue)).then(|w, a| {
                    Box::pin(async move {
                        assert_eq!(a.json()["queue"]["id"], w.a.queue.as_str());
                        assert!(a.json()["waiting"].is_array());
                    })
                })
            })
        }),
        route(Method::GET, "/api/v1/queues/{queue_id}/screen", Access::Perm(QueueRead), |w, _| {
            Box::pin(async move {
                Case::bare(format!("/api/v1/queues/{}/screen", w.a.queue)).then(|_, a| {
                    Box::pin(async move {
                        assert_eq!(a.json()["queue_name"], "Dr Matrix");
                        assert!(!a.text.contains("Walk-in"), "no names on the screen: {}", a.text);
                    })
                })
            })
        }),
        route(Method::GET, "/api/v1/queues/{queue_id}/qr", Access::Perm(QueueRead), |w, _| {
            Box::pin(async move {
                Case::bare(format!("/api/v1/queues/{}/qr", w.a.queue)).then(|_, a| {
                    Box::pin(async move {
                        assert!(a.json()["link"].as_str().unwrap().starts_with("https://wa.me/"), "{}", a.text);
                        assert!(a.json()["svg"].as_str().unwrap().contains("<svg"));
                    })
                })
            })
        }),
        route(Method::POST, "/api/v1/queues/{queue_id}/pause", Access::Perm(QueueManage), |w, p| {
            Box::pin(async move {
                let id = match p {
                    Purpose::Guard => w.a.queue.clone(),
                    Purpose::Allowed => create_queue(&w.app, &w.a.admin, &w.a.channel, &format!("Dr Pause {}", w.uniq_digits())).await.0,
                };
                Case::json(format!("/api/v1/queues/{id}/pause"), json!({ "paused": true, "message": "back at 11" })).then(|_, a| {
                    Box::pin(async move {
                        assert_eq!((a.json()["paused"].as_bool(), a.json()["pause_message"].as_str()), (Some(true), Some("back at 11")));
                    })
                })
            })
        }),
        route(Method::POST, "/api/v1/queues/{queue_id}/check-in", Access::Perm(QueueManage), |w, _| {
            Box::pin(async move {
                Case::json(format!("/api/v1/queues/{}/check-in", w.a.queue), json!({ "name": "Ravi" }))
                    .status(201)
                    .then(|w, a| {
                        Box::pin(async move {
                            assert_eq!(a.json()["token"]["queue_id"], w.a.queue.as_str());
                            assert_eq!(a.json()["token"]["state"], "waiting");
                        })
                    })
            })
        }),
        route(Method::POST, "/api/v1/queues/{queue_id}/call-next", Access::Perm(QueueCallNext), |w, p| {
            Box::pin(async move {
                let id = match p {
                    Purpose::Guard => w.a.queue.clone(),
                    Purpose::Allowed => create_queue(&w.app, &w.a.admin, &w.a.channel, &format!("Dr Call {}", w.uniq_digits())).await.0,
                };
                Case::bare(format!("/api/v1/queues/{id}/call-next")).then(|_, a| {
                    Box::pin(async move {
                        assert_eq!(a.json()["state"], "called", "{}", a.text);
                    })
                })
            })
        }),
        route(Method::GET, "/api/v1/queue-tokens/{token_id}", Access::Perm(QueueRead), |w, _| {
            Box::pin(async move {
                Case::bare(format!("/api/v1/queue-tokens/{}", w.a.token)).then(|w, a| {
                    Box::pin(async move {
                        assert_eq!(a.json()["token"]["id"], w.a.token.as_str());
                        assert_eq!(a.json()["history"][0]["action"], "queue.checked_in");
                    })
                })
            })
        }),
        route(Method::POST, "/api/v1/queue-tokens/{token_id}/consult", Access::Perm(QueueCallNext), |w, p| {
            Box::pin(async move {
                let id = match p {
                    Purpose::Guard => w.a.token.clone(),
                    Purpose::Allowed => {
                        let (q, t) = create_queue(&w.app, &w.a.admin, &w.a.channel, &format!("Dr Consult {}", w.uniq_digits())).await;
                        w.ok(Method::POST, &format!("/api/v1/queues/{q}/call-next"), None).await;
                        t
                    }
                };
                Case::json(format!("/api/v1/queue-tokens/{id}/consult"), json!({ "action": "complete" })).then(|_, a| {
                    Box::pin(async move {
                        assert_eq!(a.json()["state"], "complete", "{}", a.text);
                    })
                })
            })
        }),
        route(Method::POST, "/api/v1/queue-tokens/{token_id}/manage", Access::Perm(QueueManage), |w, p| {
            Box::pin(async move {
                let id = match p {
                    Purpose::Guard => w.a.token.clone(),
                    Purpose::Allowed => check_in_walk_in(&w.app, &w.a.admin, &w.a.queue).await,
                };
                Case::json(format!("/api/v1/queue-tokens/{id}/manage"), json!({ "action": "cancel" })).then(|_, a| {
                    Box::pin(async move {
                        assert_eq!(a.json()["state"], "cancelled", "{}", a.text);
                    })
                })
            })
        })
        .cross(|w| {
            Box::pin(async move {
                // Org B's token moved into org A's queue: A's queue is not there for B.
                vec![Case::json(format!("/api/v1/queue-tokens/{}/manage", w.b.token), json!({ "action": "move", "queue_id": w.a.queue }))]
            })
        }),
        route(Method::GET, "/api/v1/queue-reports", Access::Perm(QueueRead), |_, _| {
            Box::pin(async move {
                let today = time::OffsetDateTime::now_utc().date();
                let (from, to) = (today - time::Duration::days(1), today + time::Duration::days(1));
                Case::bare(format!("/api/v1/queue-reports?from={from}&to={to}")).then(|_, a| {
                    Box::pin(async move {
                        let days = a.json();
                        assert!(days.as_array().unwrap().iter().any(|d| d["queue_name"] == "Dr Matrix"), "{days}");
                    })
                })
            })
        }),
        route(Method::GET, "/api/v1/queue-reports/export", Access::Perm(QueueExport), |_, _| {
            Box::pin(async move {
                let today = time::OffsetDateTime::now_utc().date();
                let (from, to) = (today - time::Duration::days(1), today + time::Duration::days(1));
                Case::bare(format!("/api/v1/queue-reports/export?from={from}&to={to}")).then(|_, a| {
                    Box::pin(async move {
                        assert!(a.header("content-type").unwrap().starts_with("text/csv"));
                        assert!(a.text.starts_with("day,queue,joined") && a.text.contains("\"Dr Matrix\""), "{}", a.text);
                    })
                })
            })
        }),
        route(Method::PUT, "/api/v1/queue-time-zone", Access::Perm(QueueConfigure), |_, _| {
            Box::pin(async move {
                Case::json("/api/v1/queue-time-zone", json!({ "time_zone": "UTC" })).then(|_, a| {
                    Box::pin(async move {
                        assert_eq!(a.json()["time_zone"], "UTC");
                    })
                })
            })
        }),
        route(Method::POST, "/api/v1/messages", Access::Perm(InboxReply), |w, _| {
            Box::pin(async move {
                // An approved template to a new number: no service window needed.
                approve_template(w).await;
                let phone = format!("+9198{}", 10_000_000 + w.seq.fetch_add(1, Ordering::Relaxed));
                Case::json(
                    "/api/v1/messages",
                    json!({ "channel_id": w.a.channel, "to": { "phone": phone },
                            "message": { "type": "template", "name": "appointment_reminder", "language": "en" } }),
                )
                .status(202)
                .then(|w, a| {
                    Box::pin(async move {
                        let id = a.json()["id"].as_str().unwrap().to_owned();
                        let m = w.get_a(&format!("/api/v1/messages/{id}")).await;
                        assert_eq!((m["direction"].as_str(), m["kind"].as_str()), (Some("out"), Some("template")));
                        assert!(["queued", "failed"].contains(&m["status"].as_str().unwrap()), "{m}");
                    })
                })
            })
        })
        .cross(|w| {
            Box::pin(async move {
                let a_contact = w.get_a(&format!("/api/v1/messages/{}", w.a.message)).await["contact_id"]
                    .as_str()
                    .unwrap()
                    .to_owned();
                vec![
                    Case::json(
                        "/api/v1/messages",
                        json!({ "channel_id": w.a.channel, "to": { "phone": "+919812300000" },
                                "message": { "type": "template", "name": "x", "language": "en" } }),
                    ),
                    Case::json(
                        "/api/v1/messages",
                        json!({ "channel_id": w.b.channel, "to": { "contact_id": a_contact },
                                "message": { "type": "template", "name": "x", "language": "en" } }),
                    ),
                ]
            })
        }),
        route(
            Method::GET,
            "/api/v1/messages/{message_id}",
            Access::Perm(InboxRead),
            |w, _| {
                Box::pin(async move {
                    Case::bare(format!("/api/v1/messages/{}", w.a.message)).then(|w, a| {
                        Box::pin(async move {
                            assert_eq!(a.json()["id"], w.a.message.as_str());
                            assert_eq!(a.json()["media_id"], w.a.media.as_str());
                        })
                    })
                })
            },
        ),
        route(
            Method::POST,
            "/api/v1/messages/{message_id}/read",
            Access::Perm(InboxReply),
            |w, p| {
                Box::pin(async move {
                    let id = match p {
                        Purpose::Guard => w.a.message.clone(),
                        Purpose::Allowed => seed_inbound_image(&w.app, &w.a.channel_url).await.0,
                    };
                    Case::bare(format!("/api/v1/messages/{id}/read"))
                        .status(202)
                        .then(move |w, _| {
                            Box::pin(async move {
                                let key = w.a.channel_url.rsplit('/').next().unwrap();
                                let t = w.app.db.store.webhook_target(key).await.unwrap().unwrap();
                                let mut tx = w.app.db.store.begin_read(&t.ctx).await.unwrap();
                                let m = tx.message(frontdesk_domain::MessageId::parse(&id).unwrap()).await.unwrap();
                                let conv = tx.find_conversation(m.channel_id, m.contact_id).await.unwrap().unwrap();
                                assert_eq!(conv.unread, 0, "read: nothing unread");
                            })
                        })
                })
            },
        ),
        route(Method::GET, "/api/v1/events", Access::Member, |_, _| {
            Box::pin(async move {
                Case::bare("/api/v1/events").then(|_, a| {
                    Box::pin(async move {
                        assert_eq!(a.header("content-type"), Some("text/event-stream"));
                        assert!(a.text.starts_with("retry: "), "{:?}", a.text);
                    })
                })
            })
        }),
        route(Method::GET, "/api/v1/conversations", Access::Perm(InboxRead), |_, _| {
            Box::pin(async move {
                Case::bare("/api/v1/conversations?view=all&status=any").then(|w, a| {
                    Box::pin(async move {
                        let conv = a_conversation(w).await;
                        let items = a.json()["items"].as_array().unwrap().clone();
                        assert!(items.iter().any(|i| i["id"] == conv.as_str()), "{items:?}");
                        assert!(a.json()["unread"]["all"].is_i64());
                    })
                })
            })
        }),
        route(
            Method::GET,
            "/api/v1/conversations/{conversation_id}",
            Access::Perm(InboxRead),
            |w, _| {
                Box::pin(async move {
                    let conv = a_conversation(w).await;
                    Case::bare(format!("/api/v1/conversations/{conv}")).then(|w, a| {
                        Box::pin(async move {
                            assert_eq!(a.json()["id"], a_conversation(w).await.as_str());
                            assert!(a.json()["messages"].as_array().unwrap().iter().any(|m| m["id"] == w.a.message.as_str()));
                        })
                    })
                })
            },
        ),
        route(
            Method::POST,
            "/api/v1/conversations/{conversation_id}/assign",
            Access::Perm(InboxAssign),
            |w, _| {
                Box::pin(async move {
                    let conv = a_conversation(w).await;
                    Case::json(format!("/api/v1/conversations/{conv}/assign"), json!({ "team_id": w.a.team }))
                        .status(204)
                        .then(|w, _| {
                            Box::pin(async move {
                                let conv = a_conversation(w).await;
                                let v = w.get_a(&format!("/api/v1/conversations/{conv}")).await;
                                assert_eq!(v["team_id"], w.a.team.as_str());
                            })
                        })
                })
            },
        )
        .cross(|w| {
            Box::pin(async move {
                // Org B's conversation, assigned to org A's team: the conversation is not found.
                let conv = a_conversation(w).await;
                vec![Case::json(format!("/api/v1/conversations/{conv}/assign"), json!({ "team_id": w.b.team }))]
            })
        }),
        route(
            Method::POST,
            "/api/v1/conversations/{conversation_id}/status",
            Access::Perm(InboxAssign),
            |w, _| {
                Box::pin(async move {
                    let conv = a_conversation(w).await;
                    Case::json(format!("/api/v1/conversations/{conv}/status"), json!({ "action": "reopen" }))
                        .status(204)
                        .then(|w, _| {
                            Box::pin(async move {
                                let conv = a_conversation(w).await;
                                let v = w.get_a(&format!("/api/v1/conversations/{conv}")).await;
                                assert_eq!(v["status"], "open");
                            })
                        })
                })
            },
        ),
        route(
            Method::POST,
            "/api/v1/conversations/{conversation_id}/notes",
            Access::Perm(InboxReply),
            |w, _| {
                Box::pin(async move {
                    let conv = a_conversation(w).await;
                    let body = w.uniq("note");
                    Case::json(format!("/api/v1/conversations/{conv}/notes"), json!({ "body": body }))
                        .status(201)
                        .then(move |w, a| {
                            Box::pin(async move {
                                let conv = a_conversation(w).await;
                                let v = w.get_a(&format!("/api/v1/conversations/{conv}")).await;
                                let id = a.json()["id"].clone();
                                assert!(v["notes"].as_array().unwrap().iter().any(|n| n["id"] == id && n["body"] == body.as_str()));
                            })
                        })
                })
            },
        ),
        route(
            Method::GET,
            "/api/v1/conversations/{conversation_id}/mentionable",
            Access::Perm(InboxReply),
            |w, _| {
                Box::pin(async move {
                    let conv = a_conversation(w).await;
                    Case::bare(format!("/api/v1/conversations/{conv}/mentionable")).then(|w, a| {
                        Box::pin(async move {
                            // Org A's admin reads every conversation, so may be mentioned.
                            let me = w.a.admin.user_id.as_str();
                            let m = a.json().as_array().unwrap().iter().find(|m| m["user_id"] == me).cloned().unwrap_or_else(|| panic!("{}", a.text));
                            assert!(m["token"].as_str().unwrap().ends_with(&format!("](user:{me})")), "{m}");
                        })
                    })
                })
            },
        ),
        route(Method::GET, "/api/v1/labels", Access::Perm(InboxRead), |w, _| {
            Box::pin(async move {
                let label = fresh_label(w).await;
                Case::bare("/api/v1/labels").then(move |_, a| {
                    Box::pin(async move {
                        assert!(a.json().as_array().unwrap().iter().any(|l| l["id"] == label.as_str()), "{}", a.text);
                    })
                })
            })
        }),
        route(Method::POST, "/api/v1/labels", Access::Perm(InboxConfigure), |w, _| {
            Box::pin(async move {
                let name = w.uniq("label");
                Case::json("/api/v1/labels", json!({ "name": name, "color": "#aa3300" }))
                    .status(201)
                    .then(move |w, a| {
                        Box::pin(async move {
                            let all = w.get_a("/api/v1/labels").await;
                            assert!(all.as_array().unwrap().iter().any(|l| l["id"] == a.json()["id"] && l["name"] == name.as_str()));
                        })
                    })
            })
        }),
        route(Method::PATCH, "/api/v1/labels/{label_id}", Access::Perm(InboxConfigure), |w, _| {
            Box::pin(async move {
                let label = fresh_label(w).await;
                let name = w.uniq("renamed");
                Case::json(format!("/api/v1/labels/{label}"), json!({ "name": name, "color": "#00ff00" })).then(move |w, _| {
                    Box::pin(async move {
                        let all = w.get_a("/api/v1/labels").await;
                        assert!(all.as_array().unwrap().iter().any(|l| l["id"] == label.as_str() && l["name"] == name.as_str() && l["color"] == "#00ff00"));
                    })
                })
            })
        }),
        route(Method::DELETE, "/api/v1/labels/{label_id}", Access::Perm(InboxConfigure), |w, _| {
            Box::pin(async move {
                let label = fresh_label(w).await;
                Case::bare(format!("/api/v1/labels/{label}")).status(204).then(move |w, _| {
                    Box::pin(async move {
                        let all = w.get_a("/api/v1/labels").await;
                        assert!(!all.as_array().unwrap().iter().any(|l| l["id"] == label.as_str()));
                    })
                })
            })
        }),
        route(
            Method::PUT,
            "/api/v1/conversations/{conversation_id}/labels/{label_id}",
            Access::Perm(InboxAssign),
            |w, _| {
                Box::pin(async move {
                    let conv = a_conversation(w).await;
                    let label = fresh_label(w).await;
                    Case::bare(format!("/api/v1/conversations/{conv}/labels/{label}")).status(204).then(move |w, _| {
                        Box::pin(async move {
                            let v = w.get_a(&format!("/api/v1/conversations/{}", a_conversation(w).await)).await;
                            assert!(v["labels"].as_array().unwrap().iter().any(|l| l["id"] == label.as_str()), "{v}");
                        })
                    })
                })
            },
        ),
        route(
            Method::DELETE,
            "/api/v1/conversations/{conversation_id}/labels/{label_id}",
            Access::Perm(InboxAssign),
            |w, _| {
                Box::pin(async move {
                    let conv = a_conversation(w).await;
                    let label = fresh_label(w).await;
                    w.ok(Method::PUT, &format!("/api/v1/conversations/{conv}/labels/{label}"), None).await;
                    Case::bare(format!("/api/v1/conversations/{conv}/labels/{label}")).status(204).then(move |w, _| {
                        Box::pin(async move {
                            let v = w.get_a(&format!("/api/v1/conversations/{}", a_conversation(w).await)).await;
                            assert!(!v["labels"].as_array().unwrap().iter().any(|l| l["id"] == label.as_str()), "{v}");
                        })
                    })
                })
            },
        ),
        route(Method::GET, "/api/v1/quick-replies", Access::Perm(InboxReply), |w, _| {
            Box::pin(async move {
                let qr = fresh_quick_reply(w).await;
                Case::bare("/api/v1/quick-replies").then(move |_, a| {
                    Box::pin(async move {
                        assert!(a.json().as_array().unwrap().iter().any(|q| q["id"] == qr.as_str()), "{}", a.text);
                    })
                })
            })
        }),
        route(Method::POST, "/api/v1/quick-replies", Access::Perm(InboxConfigure), |w, _| {
            Box::pin(async move {
                let shortcut = format!("qr{}", w.uniq_digits());
                Case::json("/api/v1/quick-replies", json!({ "shortcut": shortcut, "body": "Hello {{contact.first_name}}" }))
                    .status(201)
                    .then(move |w, a| {
                        Box::pin(async move {
                            let all = w.get_a("/api/v1/quick-replies").await;
                            assert!(all.as_array().unwrap().iter().any(|q| q["id"] == a.json()["id"] && q["shortcut"] == shortcut.as_str()));
                        })
                    })
            })
        }),
        route(
            Method::PUT,
            "/api/v1/quick-replies/{quick_reply_id}",
            Access::Perm(InboxConfigure),
            |w, _| {
                Box::pin(async move {
                    let qr = fresh_quick_reply(w).await;
                    let shortcut = format!("re{}", w.uniq_digits());
                    Case::json(format!("/api/v1/quick-replies/{qr}"), json!({ "shortcut": shortcut, "body": "Changed" })).then(move |w, _| {
                        Box::pin(async move {
                            let all = w.get_a("/api/v1/quick-replies").await;
                            assert!(all.as_array().unwrap().iter().any(|q| q["id"] == qr.as_str() && q["shortcut"] == shortcut.as_str() && q["body"] == "Changed"));
                        })
                    })
                })
            },
        ),
        route(
            Method::DELETE,
            "/api/v1/quick-replies/{quick_reply_id}",
            Access::Perm(InboxConfigure),
            |w, _| {
                Box::pin(async move {
                    let qr = fresh_quick_reply(w).await;
                    Case::bare(format!("/api/v1/quick-replies/{qr}")).status(204).then(move |w, _| {
                        Box::pin(async move {
                            let all = w.get_a("/api/v1/quick-replies").await;
                            assert!(!all.as_array().unwrap().iter().any(|q| q["id"] == qr.as_str()));
                        })
                    })
                })
            },
        ),
        route(
            Method::GET,
            "/api/v1/conversations/{conversation_id}/quick-replies/{quick_reply_id}",
            Access::Perm(InboxReply),
            |w, _| {
                Box::pin(async move {
                    let conv = a_conversation(w).await;
                    let qr = fresh_quick_reply(w).await;
                    Case::bare(format!("/api/v1/conversations/{conv}/quick-replies/{qr}")).then(|_, a| {
                        Box::pin(async move {
                            let text = a.json()["text"].as_str().unwrap().to_owned();
                            assert!(text.starts_with("Hello ") && !text.contains("{{"), "{text}");
                        })
                    })
                })
            },
        ),
        route(Method::GET, "/api/v1/notifications", Access::Member, |_, _| {
            Box::pin(async move {
                Case::bare("/api/v1/notifications").then(|_, a| {
                    Box::pin(async move {
                        assert!(a.json()["items"].is_array() && a.json()["unread"].is_i64(), "{}", a.text);
                    })
                })
            })
        }),
        route(Method::POST, "/api/v1/notifications/read", Access::Member, |_, _| {
            Box::pin(async move {
                Case::json("/api/v1/notifications/read", json!({})).then(|w, a| {
                    Box::pin(async move {
                        assert!(a.json()["marked"].is_u64(), "{}", a.text);
                        assert_eq!(w.get_a("/api/v1/notifications").await["unread"], 0);
                    })
                })
            })
        }),
        route(Method::PUT, "/api/v1/me/availability", Access::Member, |_, _| {
            Box::pin(async move {
                Case::json("/api/v1/me/availability", json!({ "availability": "online" })).then(|w, _| {
                    Box::pin(async move {
                        let key = w.a.channel_url.rsplit('/').next().unwrap();
                        let t = w.app.db.store.webhook_target(key).await.unwrap().unwrap();
                        let mut tx = w.app.db.store.begin_read(&t.ctx).await.unwrap();
                        let me = frontdesk_domain::UserId::parse(&w.a.admin.user_id).unwrap();
                        let a = tx.availability(me, time::OffsetDateTime::now_utc()).await.unwrap();
                        assert_eq!(a, frontdesk_store::inbox::Availability::Online);
                    })
                })
            })
        }),
        route(
            Method::GET,
            "/api/v1/channels/{channel_id}/inbox",
            Access::Perm(InboxConfigure),
            |w, _| {
                Box::pin(async move {
                    Case::bare(format!("/api/v1/channels/{}/inbox", w.a.channel)).then(|w, a| {
                        Box::pin(async move {
                            assert_eq!(a.json()["channel_id"], w.a.channel.as_str());
                            assert!(a.json()["team_ids"].is_array());
                        })
                    })
                })
            },
        ),
        route(
            Method::PUT,
            "/api/v1/channels/{channel_id}/inbox",
            Access::Perm(InboxConfigure),
            |w, _| {
                Box::pin(async move {
                    let (channel, _) = w.fresh_channel().await;
                    Case::json(
                        format!("/api/v1/channels/{channel}/inbox"),
                        json!({ "team_ids": [w.a.team], "auto_assign": "round_robin", "assign_team_id": w.a.team }),
                    )
                    .then(move |w, _| {
                        Box::pin(async move {
                            let v = w.get_a(&format!("/api/v1/channels/{channel}/inbox")).await;
                            assert_eq!((v["auto_assign"].as_str(), v["team_ids"][0].as_str()), (Some("round_robin"), Some(w.a.team.as_str())), "{v}");
                        })
                    })
                })
            },
        )
        .cross(|w| {
            Box::pin(async move {
                // Org A's team named in org B's own inbox settings: not found, nothing set.
                vec![Case::json(
                    format!("/api/v1/channels/{}/inbox", w.b.channel),
                    json!({ "team_ids": [w.a.team], "auto_assign": "off" }),
                )]
            })
        }),
        route(
            Method::POST,
            "/api/v1/messages/{message_id}/retry",
            Access::Perm(InboxReply),
            |w, _| {
                Box::pin(async move {
                    // The guard lets the admin through to the store's rule: an inbound message
                    // is not a failed send (retries that send are in tests/inbox.rs).
                    Case::bare(format!("/api/v1/messages/{}/retry", w.a.message)).status(409).then(|_, a| {
                        Box::pin(async move {
                            assert_eq!(a.json()["error"]["code"], "not_failed", "{}", a.text);
                        })
                    })
                })
            },
        ),
        route(
            Method::GET,
            "/api/v1/media/{media_id}",
            Access::Perm(InboxRead),
            |w, _| {
                Box::pin(async move {
                    Case::bare(format!("/api/v1/media/{}", w.a.media)).then(|_, a| {
                        Box::pin(async move {
                            assert_eq!(a.text.as_bytes(), SEEDED_IMAGE);
                        })
                    })
                })
            },
        ),
        route(Method::POST, "/api/v1/media", Access::Perm(InboxReply), |w, _| {
            Box::pin(async move {
                let (ctype, body) = common::simulator::multipart(&[
                    ("channel_id", None, None, w.a.channel.as_bytes()),
                    ("file", Some("card.png"), Some("image/png"), b"\x89PNG\r\n\x1a\nmatrix upload"),
                ]);
                Case::raw("/api/v1/media", ctype, body)
                    .status(201)
                    .then(|_, a| {
                        Box::pin(async move {
                            let v = a.json();
                            assert_eq!((v["kind"].as_str(), v["size_bytes"].as_i64()), (Some("image"), Some(21)), "{v}");
                        })
                    })
            })
        })
        .cross(|w| {
            Box::pin(async move {
                // Org A's channel: not found for org B, nothing stored.
                let (ctype, body) = common::simulator::multipart(&[
                    ("channel_id", None, None, w.a.channel.as_bytes()),
                    ("file", Some("card.png"), Some("image/png"), b"\x89PNG\r\n\x1a\ncross"),
                ]);
                vec![Case::raw("/api/v1/media", ctype, body)]
            })
        }),
        route(
            Method::POST,
            "/api/v1/channels/{channel_id}/health",
            Access::Perm(ChannelsManage),
            |w, p| {
                Box::pin(async move {
                    let id = match p {
                        Purpose::Guard => w.a.channel.clone(),
                        // A simulated number: the simulator answers as Meta's API does.
                        Purpose::Allowed => {
                            let name = w.uniq("Health line");
                            let (s, v) = w.app.api(Method::POST, "/api/v1/channels/simulator", Some(&w.a.admin.access), Some(json!({ "name": name }))).await;
                            assert_eq!(s, StatusCode::CREATED, "{v}");
                            v["id"].as_str().unwrap().to_owned()
                        }
                    };
                    Case::bare(format!("/api/v1/channels/{id}/health")).then(|_, a| {
                        Box::pin(async move {
                            let v = a.json();
                            assert_eq!(v["quality_rating"], "GREEN", "{v}");
                            assert!(v["messaging_limit"].is_string(), "{v}");
                            // An unlimited simulated number reports the HIGH level: 1,000/s.
                            assert_eq!(v["throughput_mps"], 1000, "{v}");
                        })
                    })
                })
            },
        ),
        route(
            Method::GET,
            "/api/v1/webhook-inbox",
            Access::Perm(ChannelsManage),
            |w, p| {
                Box::pin(async move {
                    if p == Purpose::Guard {
                        return Case::bare("/api/v1/webhook-inbox");
                    }
                    let (_, id) = w.fresh_failed_webhook().await;
                    Case::bare("/api/v1/webhook-inbox?status=failed").then(move |_, a| {
                        Box::pin(async move {
                            let v = a.json();
                            let row = v
                                .as_array()
                                .unwrap()
                                .iter()
                                .find(|r| r["id"] == id.as_str())
                                .cloned();
                            assert_eq!(
                                row.expect("the failed webhook is listed")["error"],
                                "matrix: unparseable"
                            );
                        })
                    })
                })
            },
        ),
        route(
            Method::POST,
            "/api/v1/webhook-inbox/retry",
            Access::Perm(ChannelsManage),
            |w, p| {
                Box::pin(async move {
                    if p == Purpose::Guard {
                        return Case::bare("/api/v1/webhook-inbox/retry");
                    }
                    let (target, id) = w.fresh_failed_webhook().await;
                    Case::bare("/api/v1/webhook-inbox/retry").then(move |w, a| {
                        Box::pin(async move {
                            assert!(a.json()["requeued"].as_u64().unwrap() >= 1);
                            assert!(w.is_pending(&target, &id).await);
                        })
                    })
                })
            },
        ),
        // -- sign-in pages -----------------------------------------------------------------
        route(Method::GET, "/login", Public, |_, _| {
            Box::pin(async move {
                Case::bare("/login").then(|_, a| {
                    Box::pin(async move {
                        assert!(a.cookie("fd_csrf").is_some(), "a pre-session CSRF cookie");
                        assert!(a.text.contains("action=\"/login\""));
                    })
                })
            })
        }),
        route(Method::POST, "/login", Public, |w, _| {
            Box::pin(async move {
                Case::form(
                    "/login",
                    &[
                        ("email", &w.a.admin.email),
                        ("password", PASSWORD),
                        ("next", "/team"),
                    ],
                )
                .see_other("/team")
                .then(|w, a| {
                    Box::pin(async move {
                        let s = w.web_session(a);
                        assert_eq!(w.app.web_get(&s, "/team").await.status(), StatusCode::OK);
                    })
                })
            })
        }),
        route(Method::GET, "/login/2fa", Session, |w, p| {
            Box::pin(async move {
                let case = Case::bare("/login/2fa");
                if p == Purpose::Guard {
                    return case;
                }
                let s = w.app.web_login(&w.totp_user.email, PASSWORD).await;
                case.by(Who::Web(s)).then(|_, a| {
                    Box::pin(async move {
                        assert!(a.text.contains("action=\"/login/2fa\""), "{}", a.short())
                    })
                })
            })
        }),
        route(Method::POST, "/login/2fa", Session, |w, p| {
            Box::pin(async move {
                if p == Purpose::Guard {
                    return Case::form(
                        "/login/2fa",
                        &[("code", "000000"), ("next", "/settings/profile")],
                    );
                }
                let s = w.app.web_login(&w.totp_user.email, PASSWORD).await;
                let code = w.totp.code(&w.totp_secret).await;
                Case::form(
                    "/login/2fa",
                    &[("code", &code), ("next", "/settings/profile")],
                )
                .see_other("/settings/profile")
                .by(Who::Web(s.clone()))
                .then(move |w, a| {
                    Box::pin(async move {
                        let full = w.web_session(a);
                        assert_eq!(w.app.web_get(&full, "/").await.status(), StatusCode::OK);
                        // The pending session ended: a new id once both factors are in.
                        let r = w.app.web_get(&s, "/login/2fa").await;
                        assert_eq!(r.status(), StatusCode::SEE_OTHER);
                    })
                })
            })
        }),
        route(Method::POST, "/logout", Session, |w, p| {
            Box::pin(async move {
                let case = Case::form("/logout", &[]).see_other("/login?ok=signed_out");
                if p == Purpose::Guard {
                    return case;
                }
                let s = w.app.web_login(&w.a.admin.email, PASSWORD).await;
                case.by(Who::Web(s.clone())).then(move |w, _| {
                    Box::pin(async move {
                        let r = w.app.web_get(&s, "/settings/profile").await;
                        assert_eq!(r.status(), StatusCode::SEE_OTHER);
                        assert!(
                            r.headers()["location"]
                                .to_str()
                                .unwrap()
                                .starts_with("/login")
                        );
                    })
                })
            })
        }),
        route(Method::GET, "/signup", Public, |_, _| {
            Box::pin(async move {
                Case::bare("/signup").then(|_, a| {
                    Box::pin(async move { assert!(a.text.contains("action=\"/signup\"")) })
                })
            })
        }),
        route(Method::POST, "/signup", Public, |w, _| {
            Box::pin(async move {
                let email = w.email("founder", "signup");
                let org = w.uniq("Zed web signup");
                Case::form(
                    "/signup",
                    &[
                        ("organisation_name", &org),
                        ("name", "Web Founder"),
                        ("email", &email),
                        ("password", PASSWORD),
                    ],
                )
                .see_other("/")
                .then(move |w, a| {
                    Box::pin(async move {
                        let s = w.web_session(a);
                        let r = w.app.web_get(&s, "/").await;
                        assert_eq!(r.status(), StatusCode::OK);
                        assert!(r.text().await.unwrap().contains(&org));
                    })
                })
            })
        }),
        route(Method::GET, "/login/magic", Public, |_, _| {
            Box::pin(async move {
                Case::bare("/login/magic").then(|_, a| {
                    Box::pin(async move { assert!(a.text.contains("action=\"/login/magic\"")) })
                })
            })
        }),
        route(Method::POST, "/login/magic", Public, |w, _| {
            Box::pin(async move {
                let m = w.fresh_member().await;
                Case::form("/login/magic", &[("email", &m.email)]).then(move |w, a| {
                    Box::pin(async move {
                        assert!(a.text.contains("data-testid=\"check-mail\""));
                        w.mail_token(&m.email, "sign-in link", "/auth/magic").await;
                    })
                })
            })
        }),
        route(Method::GET, "/auth/magic", Public, |_, _| {
            Box::pin(async move {
                Case::bare("/auth/magic?token=fdm_not_spent_by_a_get").then(|_, a| {
                    Box::pin(async move { assert!(a.text.contains("action=\"/auth/magic\"")) })
                })
            })
        }),
        route(Method::POST, "/auth/magic", Public, |w, _| {
            Box::pin(async move {
                let m = w.fresh_member().await;
                w.ok(
                    Method::POST,
                    "/api/v1/auth/magic-link",
                    Some(json!({ "email": m.email })),
                )
                .await;
                let token = w.mail_token(&m.email, "sign-in link", "/auth/magic").await;
                Case::form("/auth/magic", &[("token", &token)])
                    .see_other("/")
                    .then(|w, a| {
                        Box::pin(async move {
                            let s = w.web_session(a);
                            assert_eq!(w.app.web_get(&s, "/").await.status(), StatusCode::OK);
                        })
                    })
            })
        }),
        route(Method::GET, "/password/forgot", Public, |_, _| {
            Box::pin(async move {
                Case::bare("/password/forgot").then(|_, a| {
                    Box::pin(async move { assert!(a.text.contains("action=\"/password/forgot\"")) })
                })
            })
        }),
        route(Method::POST, "/password/forgot", Public, |w, _| {
            Box::pin(async move {
                let m = w.fresh_member().await;
                Case::form("/password/forgot", &[("email", &m.email)]).then(move |w, a| {
                    Box::pin(async move {
                        assert!(a.text.contains("data-testid=\"check-mail\""));
                        w.mail_token(&m.email, "Reset your", "/password/reset")
                            .await;
                    })
                })
            })
        }),
        route(Method::GET, "/password/reset", Public, |_, _| {
            Box::pin(async move {
                Case::bare("/password/reset?token=fdr_not_spent_by_a_get").then(|_, a| {
                    Box::pin(async move { assert!(a.text.contains("action=\"/password/reset\"")) })
                })
            })
        }),
        route(Method::POST, "/password/reset", Public, |w, _| {
            Box::pin(async move {
                let m = w.fresh_member().await;
                let token = w.reset_token(&m.email).await;
                Case::form(
                    "/password/reset",
                    &[("token", &token), ("new_password", NEW_PASSWORD)],
                )
                .see_other("/login?ok=password_reset")
                .then(move |w, _| {
                    Box::pin(async move {
                        w.app.login(&m.email, NEW_PASSWORD).await;
                    })
                })
            })
        }),
        route(Method::GET, "/invitations/accept", Public, |w, _| {
            Box::pin(async move {
                let email = w.email("guest", "guest");
                let (_, token) = w.fresh_invitation(&email).await;
                Case::bare(format!("/invitations/accept?token={}", enc(&token))).then(
                    move |_, a| {
                        Box::pin(async move {
                            assert!(a.text.contains(&email), "{}", a.short());
                            assert!(a.text.contains("data-testid=\"invitation-accept\""));
                        })
                    },
                )
            })
        }),
        route(Method::POST, "/invitations/accept", Public, |w, _| {
            Box::pin(async move {
                let email = w.email("guest", "guest");
                let (_, token) = w.fresh_invitation(&email).await;
                Case::form(
                    "/invitations/accept",
                    &[
                        ("token", &token),
                        ("name", "Web Invitee"),
                        ("password", PASSWORD),
                    ],
                )
                .see_other("/")
                .then(|w, a| {
                    Box::pin(async move {
                        let s = w.web_session(a);
                        assert_eq!(w.app.web_get(&s, "/").await.status(), StatusCode::OK);
                    })
                })
            })
        }),
        // -- a person's own pages ----------------------------------------------------------
        route(Method::GET, "/settings/profile", Signed, |_, _| {
            Box::pin(async move {
                Case::bare("/settings/profile").then(|w, a| {
                    Box::pin(async move { assert!(a.text.contains(&w.a.admin.email)) })
                })
            })
        }),
        route(Method::POST, "/settings/profile", Signed, |w, _| {
            Box::pin(async move {
                let name = w.uniq("Admin A from the web");
                Case::form("/settings/profile", &[("name", &name)])
                    .see_other("/settings/profile?ok=saved")
                    .then(move |w, _| {
                        Box::pin(async move {
                            let me = w.get_as(&w.a.admin.access, "/api/v1/me").await;
                            assert_eq!(me["user"]["name"], name.as_str());
                        })
                    })
            })
        }),
        route(Method::GET, "/settings/password", Signed, |_, _| {
            Box::pin(async move {
                Case::bare("/settings/password").then(|_, a| {
                    Box::pin(
                        async move { assert!(a.text.contains("action=\"/settings/password\"")) },
                    )
                })
            })
        }),
        route(Method::POST, "/settings/password", Signed, |w, p| {
            Box::pin(async move {
                let case = Case::form(
                    "/settings/password",
                    &[
                        ("current_password", PASSWORD),
                        ("new_password", NEW_PASSWORD),
                    ],
                )
                .see_other("/settings/password?ok=password_changed");
                if p == Purpose::Guard {
                    return case;
                }
                let m = w.fresh_member().await;
                let s = w.app.web_login(&m.email, PASSWORD).await;
                case.by(Who::Web(s)).then(move |w, _| {
                    Box::pin(async move {
                        w.app.login(&m.email, NEW_PASSWORD).await;
                    })
                })
            })
        }),
        route(Method::GET, "/settings/security", Signed, |_, _| {
            Box::pin(async move {
                Case::bare("/settings/security").then(|_, a| {
                    Box::pin(async move { assert!(a.text.contains("data-testid=\"totp-status\"")) })
                })
            })
        }),
        route(
            Method::POST,
            "/settings/security/totp/setup",
            Signed,
            |_, _| {
                Box::pin(async move {
                    Case::form("/settings/security/totp/setup", &[])
                        .see_other("/settings/security")
                        .then(|w, _| {
                            Box::pin(async move {
                                let r = w.app.web_get(&w.a.web, "/settings/security").await;
                                assert!(
                                    r.text()
                                        .await
                                        .unwrap()
                                        .contains("data-testid=\"totp-secret\"")
                                );
                            })
                        })
                })
            },
        ),
        route(
            Method::POST,
            "/settings/security/totp/enable",
            Signed,
            |w, p| {
                Box::pin(async move {
                    if p == Purpose::Guard {
                        return Case::form("/settings/security/totp/enable", &[("code", "000000")]);
                    }
                    let m = w.fresh_member().await;
                    let s = w.app.web_login(&m.email, PASSWORD).await;
                    let (st, v) = w
                        .app
                        .api(Method::POST, "/api/v1/me/totp/setup", Some(&m.access), None)
                        .await;
                    assert_eq!(st, StatusCode::OK, "{v}");
                    let code = w.totp.code(&base32(v["secret"].as_str().unwrap())).await;
                    Case::form("/settings/security/totp/enable", &[("code", &code)])
                        .see_other("/settings/security?ok=totp_enabled")
                        .by(Who::Web(s))
                        .then(move |w, _| {
                            Box::pin(async move {
                                assert_eq!(
                                    w.get_as(&m.access, "/api/v1/me").await["user"]["totp_enabled"],
                                    true
                                )
                            })
                        })
                })
            },
        ),
        route(
            Method::POST,
            "/settings/security/totp/disable",
            Signed,
            |w, p| {
                Box::pin(async move {
                    if p == Purpose::Guard {
                        return Case::form(
                            "/settings/security/totp/disable",
                            &[("password", PASSWORD), ("code", "000000")],
                        );
                    }
                    let m = w.fresh_member().await;
                    // Signed in fully first; then two-factor goes on.
                    let s = w.app.web_login(&m.email, PASSWORD).await;
                    let secret = w.enable_totp(&m).await;
                    let code = w.totp.code(&secret).await;
                    Case::form(
                        "/settings/security/totp/disable",
                        &[("password", PASSWORD), ("code", &code)],
                    )
                    .see_other("/settings/security?ok=totp_disabled")
                    .by(Who::Web(s))
                    .then(move |w, _| {
                        Box::pin(async move {
                            assert_eq!(
                                w.get_as(&m.access, "/api/v1/me").await["user"]["totp_enabled"],
                                false
                            )
                        })
                    })
                })
            },
        ),
        route(Method::GET, "/settings/sessions", Signed, |_, _| {
            Box::pin(async move {
                Case::bare("/settings/sessions").then(|_, a| {
                    Box::pin(async move { assert!(a.text.contains("data-testid=\"sessions\"")) })
                })
            })
        }),
        route(
            Method::POST,
            "/settings/sessions/{session_id}/revoke",
            Signed,
            |w, p| {
                Box::pin(async move {
                    if p == Purpose::Guard {
                        return Case::form(
                            format!("/settings/sessions/{}/revoke", w.a.spare_session),
                            &[],
                        );
                    }
                    let (token, id) = w.api_session(&w.a.admin.email, PASSWORD, &w.a.id).await;
                    Case::form(format!("/settings/sessions/{id}/revoke"), &[])
                        .see_other("/settings/sessions?ok=revoked")
                        .then(move |w, _| {
                            Box::pin(async move { w.assert_token_dead(&token).await })
                        })
                })
            },
        ),
        route(
            Method::POST,
            "/settings/sessions/revoke-others",
            Signed,
            |w, p| {
                Box::pin(async move {
                    let case = Case::form("/settings/sessions/revoke-others", &[])
                        .see_other("/settings/sessions?ok=revoked_others");
                    if p == Purpose::Guard {
                        return case;
                    }
                    let m = w.fresh_member().await;
                    let s = w.app.web_login(&m.email, PASSWORD).await;
                    case.by(Who::Web(s.clone())).then(move |w, _| {
                        Box::pin(async move {
                            w.assert_token_dead(&m.access).await;
                            assert_eq!(
                                w.app.web_get(&s, "/settings/profile").await.status(),
                                StatusCode::OK
                            );
                        })
                    })
                })
            },
        ),
        route(Method::GET, "/orgs", Signed, |_, _| {
            Box::pin(async move {
                Case::bare("/orgs").then(|w, a| {
                    Box::pin(async move { assert!(a.text.contains(&w.a2_name), "{}", a.short()) })
                })
            })
        }),
        route(Method::POST, "/orgs", Signed, |w, p| {
            Box::pin(async move {
                let name = w.uniq("Zed web org");
                let case = Case::form("/orgs", &[("name", &name)]).see_other("/");
                if p == Purpose::Guard {
                    return case;
                }
                // Creating an organisation moves the session into it: a throw-away session.
                let s = w.app.web_login(&w.a.admin.email, PASSWORD).await;
                case.by(Who::Web(s.clone())).then(move |w, _| {
                    Box::pin(async move {
                        let r = w.app.web_get(&s, "/").await;
                        assert!(r.text().await.unwrap().contains(&name));
                    })
                })
            })
        }),
        route(Method::POST, "/orgs/switch", Signed, |w, p| {
            Box::pin(async move {
                let case = Case::form("/orgs/switch", &[("org_id", &w.a2_id)]).see_other("/");
                if p == Purpose::Guard {
                    return case;
                }
                let s = w.app.web_login(&w.a.admin.email, PASSWORD).await;
                case.by(Who::Web(s.clone())).then(move |w, _| {
                    Box::pin(async move {
                        let r = w.app.web_get(&s, "/").await;
                        assert!(r.text().await.unwrap().contains(&w.a2_name));
                    })
                })
            })
        })
        .cross(|w| {
            Box::pin(async move { vec![Case::form("/orgs/switch", &[("org_id", &w.a.id)])] })
        }),
        // -- running an organisation in the browser -------------------------------------------
        route(Method::GET, "/", Member, |_, _| {
            Box::pin(async move {
                Case::bare("/").then(|_, a| {
                    Box::pin(async move { assert!(a.text.contains("data-testid=\"home-role\"")) })
                })
            })
        }),
        route(Method::GET, "/team", Access::Perm(TeamManage), |_, _| {
            Box::pin(async move {
                Case::bare("/team").then(|w, a| {
                    Box::pin(async move { assert!(a.text.contains(&w.a.member.email)) })
                })
            })
        }),
        route(
            Method::POST,
            "/team/invitations",
            Access::Perm(TeamManage),
            |w, _| {
                Box::pin(async move {
                    let email = w.email("invitee", "guest");
                    Case::form(
                        "/team/invitations",
                        &[("email", &email), ("role_id", &w.a.agent_role)],
                    )
                    .then(move |w, a| {
                        Box::pin(async move {
                            assert!(
                                a.text.contains("data-testid=\"invite-url\""),
                                "{}",
                                a.short()
                            );
                            let list = w.get_a("/api/v1/invitations").await;
                            assert!(
                                list.as_array()
                                    .unwrap()
                                    .iter()
                                    .any(|i| i["email"] == email.as_str())
                            );
                        })
                    })
                })
            },
        )
        .cross(|w| {
            Box::pin(async move {
                let email = w.email("invitee", "guest");
                vec![Case::form(
                    "/team/invitations",
                    &[("email", &email), ("role_id", &w.a.agent_role)],
                )]
            })
        }),
        route(
            Method::POST,
            "/team/invitations/{invitation_id}/revoke",
            Access::Perm(TeamManage),
            |w, _| {
                Box::pin(async move {
                    let email = w.email("invitee", "guest");
                    let (id, _) = w.fresh_invitation(&email).await;
                    Case::form(format!("/team/invitations/{id}/revoke"), &[])
                        .see_other("/team?ok=revoked")
                        .then(move |w, _| {
                            Box::pin(async move {
                                assert_eq!(
                                    w.invitation_of_a(&id).await.unwrap()["state"],
                                    "revoked"
                                )
                            })
                        })
                })
            },
        ),
        route(
            Method::POST,
            "/team/members/{user_id}/role",
            Access::Perm(RolesManage),
            |w, _| {
                Box::pin(async move {
                    Case::form(
                        format!("/team/members/{}/role", w.a.member.user_id),
                        &[("role_id", &w.a.manager_role)],
                    )
                    .see_other("/team?ok=saved")
                    .then(|w, _| {
                        Box::pin(async move {
                            let m = w.member_of_a(&w.a.member.user_id).await.unwrap();
                            assert_eq!(m["role_id"], w.a.manager_role.as_str());
                        })
                    })
                })
            },
        )
        .cross(|w| {
            Box::pin(async move {
                vec![
                    Case::form(
                        format!("/team/members/{}/role", w.b.member.user_id),
                        &[("role_id", &w.a.manager_role)],
                    ),
                    Case::form(
                        format!("/team/members/{}/role", w.a.member.user_id),
                        &[("role_id", &w.b.manager_role)],
                    ),
                ]
            })
        }),
        route(
            Method::POST,
            "/team/members/{user_id}/remove",
            Access::Perm(TeamManage),
            |w, p| {
                Box::pin(async move {
                    if p == Purpose::Guard {
                        return Case::form(
                            format!("/team/members/{}/remove", w.a.member.user_id),
                            &[],
                        );
                    }
                    let m = w.fresh_member().await;
                    Case::form(format!("/team/members/{}/remove", m.user_id), &[])
                        .see_other("/team?ok=removed")
                        .then(move |w, _| {
                            Box::pin(
                                async move { assert!(w.member_of_a(&m.user_id).await.is_none()) },
                            )
                        })
                })
            },
        ),
        route(
            Method::POST,
            "/team/members/{user_id}/revoke-sessions",
            Access::Perm(TeamManage),
            |w, p| {
                Box::pin(async move {
                    let case = Case::form(
                        format!("/team/members/{}/revoke-sessions", w.a.member.user_id),
                        &[],
                    )
                    .see_other("/team?ok=sessions_revoked");
                    if p == Purpose::Guard {
                        return case;
                    }
                    let (token, _) = w.api_session(&w.a.member.email, PASSWORD, &w.a.id).await;
                    case.then(move |w, _| {
                        Box::pin(async move { w.assert_token_dead(&token).await })
                    })
                })
            },
        ),
        route(
            Method::POST,
            "/team/teams",
            Access::Perm(TeamManage),
            |w, _| {
                Box::pin(async move {
                    let name = w.uniq("Weekend team");
                    Case::form("/team/teams", &[("name", &name)])
                        .see_other("/team?ok=saved")
                        .then(move |w, _| {
                            Box::pin(async move {
                                let teams = w.get_a("/api/v1/teams").await;
                                assert!(
                                    teams
                                        .as_array()
                                        .unwrap()
                                        .iter()
                                        .any(|t| t["name"] == name.as_str())
                                );
                            })
                        })
                })
            },
        ),
        route(
            Method::POST,
            "/team/teams/{team_id}/delete",
            Access::Perm(TeamManage),
            |w, _| {
                Box::pin(async move {
                    let id = w.fresh_team().await;
                    Case::form(format!("/team/teams/{id}/delete"), &[])
                        .see_other("/team?ok=removed")
                        .then(move |w, _| {
                            Box::pin(async move { assert!(w.team_of_a(&id).await.is_none()) })
                        })
                })
            },
        ),
        route(
            Method::POST,
            "/team/teams/{team_id}/members",
            Access::Perm(TeamManage),
            |w, _| {
                Box::pin(async move {
                    let id = w.fresh_team().await;
                    Case::form(
                        format!("/team/teams/{id}/members"),
                        &[("user_id", &w.a.member.user_id), ("action", "add")],
                    )
                    .see_other("/team?ok=saved")
                    .then(move |w, _| {
                        Box::pin(async move {
                            assert_eq!(
                                w.team_of_a(&id).await.unwrap()["members"],
                                json!([w.a.member.user_id])
                            )
                        })
                    })
                })
            },
        )
        .cross(|w| {
            Box::pin(async move {
                vec![
                    // A's team, B's own member.
                    Case::form(
                        format!("/team/teams/{}/members", w.a.team),
                        &[("user_id", &w.b.member.user_id), ("action", "add")],
                    ),
                    // B's team, A's member.
                    Case::form(
                        format!("/team/teams/{}/members", w.b.team),
                        &[("user_id", &w.a.member.user_id), ("action", "add")],
                    ),
                ]
            })
        }),
        route(Method::GET, "/roles", Access::Perm(RolesManage), |_, _| {
            Box::pin(async move {
                Case::bare("/roles").then(|w, a| {
                    Box::pin(async move { assert!(a.text.contains(&w.a.manager_role)) })
                })
            })
        }),
        route(Method::POST, "/roles", Access::Perm(RolesManage), |w, _| {
            Box::pin(async move {
                let name = w.uniq("front desk");
                Case::form(
                    "/roles",
                    &[
                        ("name", &name),
                        ("description", "Checks people in"),
                        ("permission", "queue.read"),
                        ("permission", "queue.manage"),
                    ],
                )
                .see_other("/roles?ok=saved")
                .then(move |w, _| {
                    Box::pin(async move {
                        let r = w.role_named(&name).await.unwrap();
                        assert_eq!(r["permissions"], json!(["queue.read", "queue.manage"]));
                    })
                })
            })
        }),
        route(
            Method::POST,
            "/roles/{role_id}",
            Access::Perm(RolesManage),
            |w, _| {
                Box::pin(async move {
                    let id = w.fresh_role().await;
                    let name = w.uniq("nurse");
                    Case::form(
                        format!("/roles/{id}"),
                        &[
                            ("name", &name),
                            ("description", ""),
                            ("permission", "inbox.read"),
                        ],
                    )
                    .see_other("/roles?ok=saved")
                    .then(move |w, _| {
                        Box::pin(async move {
                            assert_eq!(w.role_named(&name).await.unwrap()["id"], id.as_str())
                        })
                    })
                })
            },
        ),
        route(
            Method::POST,
            "/roles/{role_id}/delete",
            Access::Perm(RolesManage),
            |w, _| {
                Box::pin(async move {
                    let id = w.fresh_role().await;
                    Case::form(format!("/roles/{id}/delete"), &[])
                        .see_other("/roles?ok=removed")
                        .then(move |w, _| {
                            Box::pin(async move {
                                let roles = w.get_a("/api/v1/roles").await;
                                assert!(
                                    !roles
                                        .as_array()
                                        .unwrap()
                                        .iter()
                                        .any(|r| r["id"] == id.as_str())
                                );
                            })
                        })
                })
            },
        ),
        route(
            Method::GET,
            "/api-keys",
            Access::Perm(ApiKeysManage),
            |_, _| {
                Box::pin(async move {
                    Case::bare("/api-keys").then(|_, a| {
                        Box::pin(
                            async move { assert!(a.text.contains("data-testid=\"api-keys\"")) },
                        )
                    })
                })
            },
        ),
        route(
            Method::POST,
            "/api-keys",
            Access::Perm(ApiKeysManage),
            |w, _| {
                Box::pin(async move {
                    Case::form(
                        "/api-keys",
                        &[
                            ("name", &w.uniq("booking site")),
                            ("permission", "contacts.read"),
                        ],
                    )
                    .then(|w, a| {
                        Box::pin(async move {
                            let at = a
                                .text
                                .find("value=\"fdk_")
                                .expect("the new key on the page")
                                + "value=\"".len();
                            let key = a.text[at..].split('"').next().unwrap();
                            assert_eq!(w.get_as(key, "/api/v1/org").await["id"], w.a.id.as_str());
                        })
                    })
                })
            },
        ),
        route(
            Method::POST,
            "/api-keys/{key_id}/revoke",
            Access::Perm(ApiKeysManage),
            |w, _| {
                Box::pin(async move {
                    let (id, key) = w.fresh_key().await;
                    Case::form(format!("/api-keys/{id}/revoke"), &[])
                        .see_other("/api-keys?ok=revoked")
                        .then(move |w, _| Box::pin(async move { w.assert_token_dead(&key).await }))
                })
            },
        ),
        route(Method::GET, "/audit", Access::Perm(AuditRead), |_, _| {
            Box::pin(async move {
                Case::bare("/audit").then(|_, a| {
                    Box::pin(async move { assert!(a.text.contains("data-testid=\"audit\"")) })
                })
            })
        }),
        route(
            Method::GET,
            "/settings/organisation",
            Access::Perm(SettingsManage),
            |_, _| {
                Box::pin(async move {
                    Case::bare("/settings/organisation").then(|_, a| {
                        Box::pin(async move {
                            assert!(a.text.contains("action=\"/settings/organisation\""))
                        })
                    })
                })
            },
        ),
        route(
            Method::POST,
            "/settings/organisation",
            Access::Perm(SettingsManage),
            |w, _| {
                Box::pin(async move {
                    let name = w.uniq("Aardvark clinic (web)");
                    Case::form("/settings/organisation", &[("name", &name)])
                        .see_other("/settings/organisation?ok=saved")
                        .then(move |w, _| {
                            Box::pin(async move {
                                let org = w.get_a("/api/v1/org").await;
                                assert_eq!(org["name"], name.as_str());
                                assert_eq!(org["require_2fa"], false);
                            })
                        })
                })
            },
        ),
        route(
            Method::GET,
            "/settings/channels",
            Access::Perm(ChannelsManage),
            |_, _| {
                Box::pin(async move {
                    Case::bare("/settings/channels").then(|w, a| {
                        Box::pin(async move {
                            assert!(
                                a.text
                                    .contains(&format!("data-channel-id=\"{}\"", w.a.channel))
                            );
                        })
                    })
                })
            },
        ),
        route(
            Method::POST,
            "/settings/channels",
            Access::Perm(ChannelsManage),
            |w, _| {
                Box::pin(async move {
                    let phone = w.uniq_digits();
                    let name = w.uniq("Web number");
                    Case::form(
                        "/settings/channels",
                        &[
                            ("provider", "cloud"),
                            ("name", &name),
                            ("phone_number_id", &phone),
                            ("access_token", CHANNEL_SECRET),
                            ("app_secret", CHANNEL_SECRET),
                            ("verify_token", CHANNEL_SECRET),
                        ],
                    )
                    .then(|w, a| {
                        Box::pin(async move {
                            assert!(!a.text.contains(CHANNEL_SECRET), "no secret on the page");
                            let at = a
                                .text
                                .find("data-testid=\"callback-url\"")
                                .expect("the callback URL");
                            let input = &a.text[a.text[..at].rfind('<').unwrap()..];
                            let from = input.find("value=\"").unwrap() + "value=\"".len();
                            let url = input[from..].split('"').next().unwrap();
                            let id = w.channel_of_callback(url).await;
                            w.get_a(&format!("/api/v1/channels/{id}")).await;
                        })
                    })
                })
            },
        ),
        route(
            Method::GET,
            "/settings/channels/{channel_id}",
            Access::Perm(ChannelsManage),
            |w, _| {
                Box::pin(async move {
                    Case::bare(format!("/settings/channels/{}", w.a.channel)).then(|_, a| {
                        Box::pin(async move {
                            assert!(a.text.contains("data-testid=\"callback-url\""));
                            assert!(!a.text.contains(CHANNEL_SECRET));
                        })
                    })
                })
            },
        ),
        route(
            Method::POST,
            "/settings/channels/{channel_id}",
            Access::Perm(ChannelsManage),
            |w, p| {
                Box::pin(async move {
                    let id = match p {
                        Purpose::Guard => w.a.channel.clone(),
                        Purpose::Allowed => w.fresh_channel().await.0,
                    };
                    let name = w.uniq("Renamed on the web");
                    Case::form(format!("/settings/channels/{id}"), &[("name", &name)])
                        .see_other(format!("/settings/channels/{id}?ok=saved"))
                        .then(move |w, _| {
                            Box::pin(async move {
                                let v = w.get_a(&format!("/api/v1/channels/{id}")).await;
                                assert_eq!(v["name"], name.as_str());
                            })
                        })
                })
            },
        ),
        route(
            Method::POST,
            "/settings/channels/{channel_id}/delete",
            Access::Perm(ChannelsManage),
            |w, p| {
                Box::pin(async move {
                    let id = match p {
                        Purpose::Guard => w.a.channel.clone(),
                        Purpose::Allowed => w.fresh_channel().await.0,
                    };
                    Case::form(format!("/settings/channels/{id}/delete"), &[])
                        .see_other("/settings/channels?ok=removed")
                        .then(move |w, _| Box::pin(async move { w.assert_channel_gone(&id).await }))
                })
            },
        ),
        route(
            Method::GET,
            "/settings/webhook-inbox",
            Access::Perm(ChannelsManage),
            |w, p| {
                Box::pin(async move {
                    if p == Purpose::Guard {
                        return Case::bare("/settings/webhook-inbox");
                    }
                    let (_, id) = w.fresh_failed_webhook().await;
                    Case::bare("/settings/webhook-inbox").then(move |_, a| {
                        Box::pin(async move {
                            assert!(a.text.contains(&format!("data-inbox-id=\"{id}\"")));
                            assert!(a.text.contains("matrix: unparseable"));
                        })
                    })
                })
            },
        ),
        route(
            Method::POST,
            "/settings/webhook-inbox/retry",
            Access::Perm(ChannelsManage),
            |w, p| {
                Box::pin(async move {
                    let case = Case::form("/settings/webhook-inbox/retry", &[])
                        .see_other("/settings/webhook-inbox?ok=requeued");
                    if p == Purpose::Guard {
                        return case;
                    }
                    let (target, id) = w.fresh_failed_webhook().await;
                    case.then(move |w, _| {
                        Box::pin(async move { assert!(w.is_pending(&target, &id).await) })
                    })
                })
            },
        ),
        // -- the team inbox pages ----------------------------------------------------------
        route(Method::GET, "/inbox", Access::Perm(InboxRead), |_, _| {
            Box::pin(async move {
                Case::bare("/inbox?status=any").then(|w, a| {
                    Box::pin(async move {
                        let conv = a_conversation(w).await;
                        assert!(a.text.contains(&format!("data-conversation-id=\"{conv}\"")));
                        assert!(a.text.contains("data-testid=\"inbox-filters\""));
                    })
                })
            })
        }),
        route(Method::GET, "/inbox/new", Access::Perm(InboxReply), |_, _| {
            Box::pin(async move {
                Case::bare("/inbox/new").then(|w, a| {
                    Box::pin(async move {
                        assert!(a.text.contains("data-testid=\"new-chat-form\""));
                        assert!(a.text.contains(&format!("value=\"{}\"", w.a.channel)));
                    })
                })
            })
        }),
        route(Method::POST, "/inbox/new", Access::Perm(InboxReply), |w, _| {
            Box::pin(async move {
                let template = approve_template(w).await;
                let phone = format!("+4477009{:05}", w.seq.fetch_add(1, Ordering::Relaxed));
                Case::form(
                    "/inbox/new",
                    &[
                        ("channel_id", &w.a.channel),
                        ("phone", &phone),
                        ("template", &template),
                        ("variables", "Ada\n10:30"),
                    ],
                )
                .see_other_starting("/inbox/")
                .then(move |w, a| {
                    Box::pin(async move {
                        let to = a.header("location").unwrap().to_owned();
                        let conv = to.strip_prefix("/inbox/").unwrap();
                        let v = w.get_a(&format!("/api/v1/conversations/{conv}")).await;
                        assert_eq!(v["contact"]["phone"], phone.as_str(), "{v}");
                        assert_eq!(v["messages"][0]["kind"], "template", "{v}");
                    })
                })
            })
        })
        .cross(|w| {
            Box::pin(async move {
                // Org A's number, named by org B: not found, nothing queued.
                vec![Case::form(
                    "/inbox/new",
                    &[("channel_id", &w.a.channel), ("phone", "+447700900999"), ("template", "x|en")],
                )]
            })
        }),
        route(Method::GET, "/inbox/{conversation_id}", Access::Perm(InboxRead), |w, _| {
            Box::pin(async move {
                let conv = a_conversation(w).await;
                Case::bare(format!("/inbox/{conv}")).then(|w, a| {
                    Box::pin(async move {
                        assert!(a.text.contains(&format!("data-message-id=\"{}\"", w.a.message)));
                        assert!(a.text.contains(&format!("src=\"/api/v1/media/{}\"", w.a.media)), "the image is inline");
                    })
                })
            })
        }),
        route(
            Method::POST,
            "/inbox/{conversation_id}/reply",
            Access::Perm(InboxReply),
            |w, _| {
                Box::pin(async move {
                    let conv = a_conversation(w).await;
                    let body = w.uniq("Reply from the inbox");
                    Case::form(format!("/inbox/{conv}/reply"), &[("body", &body)])
                        .see_other(format!("/inbox/{conv}"))
                        .then(move |w, _| {
                            Box::pin(async move {
                                let conv = a_conversation(w).await;
                                let v = w.get_a(&format!("/api/v1/conversations/{conv}")).await;
                                assert!(v["messages"].as_array().unwrap().iter().any(|m| m["preview"] == body.as_str()), "{v}");
                            })
                        })
                })
            },
        ),
        route(
            Method::POST,
            "/inbox/{conversation_id}/template",
            Access::Perm(InboxReply),
            |w, _| {
                Box::pin(async move {
                    let conv = a_conversation(w).await;
                    let template = approve_template(w).await;
                    Case::form(format!("/inbox/{conv}/template"), &[("template", &template), ("variables", "Ada")])
                        .see_other(format!("/inbox/{conv}"))
                        .then(move |w, _| {
                            Box::pin(async move {
                                let conv = a_conversation(w).await;
                                let v = w.get_a(&format!("/api/v1/conversations/{conv}")).await;
                                assert_eq!(v["messages"][0]["kind"], "template", "{v}");
                            })
                        })
                })
            },
        ),
        route(
            Method::POST,
            "/inbox/{conversation_id}/notes",
            Access::Perm(InboxReply),
            |w, _| {
                Box::pin(async move {
                    let conv = a_conversation(w).await;
                    let body = w.uniq("Page note");
                    Case::form(format!("/inbox/{conv}/notes"), &[("body", &body), ("mention", "")])
                        .see_other(format!("/inbox/{conv}"))
                        .then(move |w, _| {
                            Box::pin(async move {
                                let conv = a_conversation(w).await;
                                let v = w.get_a(&format!("/api/v1/conversations/{conv}")).await;
                                assert!(v["notes"].as_array().unwrap().iter().any(|n| n["body"] == body.as_str()), "{v}");
                            })
                        })
                })
            },
        ),
        route(
            Method::POST,
            "/inbox/{conversation_id}/assign",
            Access::Perm(InboxAssign),
            |w, _| {
                Box::pin(async move {
                    let conv = a_conversation(w).await;
                    let to = format!("team:{}", w.a.team);
                    Case::form(format!("/inbox/{conv}/assign"), &[("to", &to)])
                        .see_other(format!("/inbox/{conv}"))
                        .then(|w, _| {
                            Box::pin(async move {
                                let conv = a_conversation(w).await;
                                let v = w.get_a(&format!("/api/v1/conversations/{conv}")).await;
                                assert_eq!(v["team_id"], w.a.team.as_str());
                            })
                        })
                })
            },
        )
        .cross(|w| {
            Box::pin(async move {
                let conv = a_conversation(w).await;
                vec![Case::form(format!("/inbox/{conv}/assign"), &[("to", &format!("team:{}", w.b.team))])]
            })
        }),
        route(
            Method::POST,
            "/inbox/{conversation_id}/status",
            Access::Perm(InboxAssign),
            |w, _| {
                Box::pin(async move {
                    let conv = a_conversation(w).await;
                    Case::form(format!("/inbox/{conv}/status"), &[("action", "reopen")])
                        .see_other(format!("/inbox/{conv}"))
                        .then(|w, _| {
                            Box::pin(async move {
                                let conv = a_conversation(w).await;
                                let v = w.get_a(&format!("/api/v1/conversations/{conv}")).await;
                                assert_eq!(v["status"], "open");
                            })
                        })
                })
            },
        ),
        route(
            Method::POST,
            "/inbox/{conversation_id}/labels",
            Access::Perm(InboxAssign),
            |w, _| {
                Box::pin(async move {
                    let conv = a_conversation(w).await;
                    let label = a_label(w).await;
                    Case::form(format!("/inbox/{conv}/labels"), &[("label_id", &label), ("on", "true")])
                        .see_other(format!("/inbox/{conv}"))
                        .then(move |w, _| {
                            Box::pin(async move {
                                let conv = a_conversation(w).await;
                                let v = w.get_a(&format!("/api/v1/conversations/{conv}")).await;
                                assert!(v["labels"].as_array().unwrap().iter().any(|l| l["id"] == label.as_str()), "{v}");
                            })
                        })
                })
            },
        ),
        route(
            Method::POST,
            "/inbox/{conversation_id}/messages/{message_id}/retry",
            Access::Perm(InboxReply),
            |w, _| {
                Box::pin(async move {
                    // The seeded message is the customer's: the page reaches the store, which
                    // refuses to resend a message that did not fail (409), and nothing changes.
                    let conv = a_conversation(w).await;
                    Case::form(format!("/inbox/{conv}/messages/{}/retry", w.a.message), &[])
                        .status(409)
                        .then(|w, a| {
                            Box::pin(async move {
                                assert!(a.text.contains("data-testid=\"error-message\""));
                                let m = w.get_a(&format!("/api/v1/messages/{}", w.a.message)).await;
                                assert_eq!(m["direction"], "in");
                            })
                        })
                })
            },
        ),
        // -- clinic queue pages --------------------------------------------------------------
        route(Method::GET, "/queues", Access::Perm(QueueRead), |_, _| {
            Box::pin(async move {
                Case::bare("/queues").then(|w, a| {
                    Box::pin(async move {
                        assert!(a.text.contains(&format!("data-queue-id=\"{}\"", w.a.queue)), "{}", a.text);
                        assert!(!a.text.contains(&format!("data-queue-id=\"{}\"", w.b.queue)));
                    })
                })
            })
        }),
        route(Method::GET, "/queues/reports", Access::Perm(QueueRead), |_, _| {
            Box::pin(async move {
                Case::bare("/queues/reports").then(|_, a| {
                    Box::pin(async move {
                        assert!(a.text.contains("data-testid=\"served-chart\"") && a.text.contains("Dr Matrix"), "{}", a.text);
                    })
                })
            })
        }),
        route(Method::GET, "/queues/new", Access::Perm(QueueConfigure), |_, _| {
            Box::pin(async move {
                Case::bare("/queues/new").then(|w, a| {
                    Box::pin(async move {
                        assert!(a.text.contains("data-testid=\"queue-form\""), "{}", a.text);
                        assert!(a.text.contains(&format!("value=\"{}\"", w.a.channel)), "the channel to choose");
                    })
                })
            })
        }),
        route(Method::POST, "/queues", Access::Perm(QueueConfigure), |w, _| {
            Box::pin(async move {
                let name = format!("Dr Web {}", w.uniq_digits());
                Case::form(
                    "/queues",
                    &[("name", &name), ("channel_id", &w.a.channel), ("keywords", &name), ("token_prefix", "W"),
                      ("daily_cap", "20"), ("position_step", "1"), ("hours_mon", "09:00-13:00")],
                )
                .see_other_starting("/queues/")
                .then(move |w, a| {
                    Box::pin(async move {
                        let to = a.header("location").unwrap();
                        let id = to.strip_prefix("/queues/").unwrap().split('/').next().unwrap();
                        let b = w.get_a(&format!("/api/v1/queues/{id}/board")).await;
                        assert_eq!((b["queue"]["name"].as_str(), b["queue"]["token_prefix"].as_str()), (Some(name.as_str()), Some("W")), "{b}");
                        assert_eq!(b["queue"]["hours"]["mon"][0]["open"], "09:00", "{b}");
                    })
                })
            })
        })
        .cross(|w| {
            Box::pin(async move {
                vec![Case::form(
                    "/queues",
                    &[("name", "Cross web"), ("channel_id", &w.a.channel), ("keywords", "CROSS WEB"), ("token_prefix", "C"),
                      ("daily_cap", "20"), ("position_step", "1")],
                )]
            })
        }),
        route(Method::GET, "/queues/{queue_id}/edit", Access::Perm(QueueConfigure), |w, _| {
            Box::pin(async move {
                Case::bare(format!("/queues/{}/edit", w.a.queue)).then(|_, a| {
                    Box::pin(async move {
                        assert!(a.text.contains("value=\"Dr Matrix\""), "{}", a.text);
                    })
                })
            })
        }),
        route(Method::POST, "/queues/{queue_id}", Access::Perm(QueueConfigure), |w, p| {
            Box::pin(async move {
                let id = match p {
                    Purpose::Guard => w.a.queue.clone(),
                    Purpose::Allowed => create_queue(&w.app, &w.a.admin, &w.a.channel, &format!("Dr Web Upd {}", w.uniq_digits())).await.0,
                };
                let name = format!("Dr Renamed {}", w.uniq_digits());
                Case::form(
                    format!("/queues/{id}"),
                    &[("name", &name), ("channel_id", &w.a.channel), ("keywords", &name), ("token_prefix", "R"),
                      ("daily_cap", "30"), ("position_step", "1")],
                )
                .see_other(format!("/queues/{id}/edit?ok=saved"))
                .then(move |w, _| {
                    Box::pin(async move {
                        let b = w.get_a(&format!("/api/v1/queues/{id}/board")).await;
                        assert_eq!((b["queue"]["token_prefix"].as_str(), b["queue"]["daily_cap"].as_i64()), (Some("R"), Some(30)));
                    })
                })
            })
        }),
        route(Method::GET, "/queues/{queue_id}/qr", Access::Perm(QueueRead), |w, _| {
            Box::pin(async move {
                Case::bare(format!("/queues/{}/qr", w.a.queue)).then(|_, a| {
                    Box::pin(async move {
                        assert!(a.text.contains("<svg") && a.text.contains("https://wa.me/"), "{}", a.text);
                    })
                })
            })
        }),
        route(Method::GET, "/queues/{queue_id}/board", Access::Perm(QueueRead), |w, _| {
            Box::pin(async move {
                Case::bare(format!("/queues/{}/board", w.a.queue)).then(|w, a| {
                    Box::pin(async move {
                        assert!(a.text.contains(&format!("data-token-id=\"{}\"", w.a.token)), "{}", a.text);
                        assert!(a.text.contains("Walk-in"));
                    })
                })
            })
        }),
        route(Method::GET, "/queues/{queue_id}/screen", Access::Perm(QueueRead), |w, _| {
            Box::pin(async move {
                Case::bare(format!("/queues/{}/screen", w.a.queue)).then(|_, a| {
                    Box::pin(async move {
                        assert!(a.text.contains("Dr Matrix") && a.text.contains("data-testid=\"screen-now\""), "{}", a.text);
                        assert!(!a.text.contains("Walk-in"), "no names on the screen");
                    })
                })
            })
        }),
        route(Method::POST, "/queues/{queue_id}/check-in", Access::Perm(QueueManage), |w, _| {
            Box::pin(async move {
                let name = format!("Ravi {}", w.uniq_digits());
                Case::form(format!("/queues/{}/check-in", w.a.queue), &[("name", &name), ("phone", "")])
                    .see_other_starting(format!("/queues/{}/board?ok=checked_in&token=A-", w.a.queue))
                    .then(move |w, _| {
                        Box::pin(async move {
                            let b = w.get_a(&format!("/api/v1/queues/{}/board", w.a.queue)).await;
                            assert!(b["waiting"].as_array().unwrap().iter().any(|t| t["walk_in_name"] == name.as_str()), "{b}");
                        })
                    })
            })
        }),
        route(Method::POST, "/queues/{queue_id}/pause", Access::Perm(QueueManage), |w, p| {
            Box::pin(async move {
                let id = match p {
                    Purpose::Guard => w.a.queue.clone(),
                    Purpose::Allowed => create_queue(&w.app, &w.a.admin, &w.a.channel, &format!("Dr Web Pause {}", w.uniq_digits())).await.0,
                };
                Case::form(format!("/queues/{id}/pause"), &[("paused", "true"), ("message", "back at 11")])
                    .see_other(format!("/queues/{id}/board?ok=queue_paused"))
                    .then(move |w, _| {
                        Box::pin(async move {
                            let b = w.get_a(&format!("/api/v1/queues/{id}/board")).await;
                            assert_eq!((b["queue"]["paused"].as_bool(), b["queue"]["pause_message"].as_str()), (Some(true), Some("back at 11")));
                        })
                    })
            })
        }),
        route(Method::POST, "/queues/{queue_id}/call-next", Access::Perm(QueueCallNext), |w, p| {
            Box::pin(async move {
                let id = match p {
                    Purpose::Guard => w.a.queue.clone(),
                    Purpose::Allowed => create_queue(&w.app, &w.a.admin, &w.a.channel, &format!("Dr Web Call {}", w.uniq_digits())).await.0,
                };
                Case::form(format!("/queues/{id}/call-next"), &[])
                    .see_other(format!("/queues/{id}/board?ok=called&token=A-001"))
                    .then(move |w, _| {
                        Box::pin(async move {
                            let b = w.get_a(&format!("/api/v1/queues/{id}/board")).await;
                            assert_eq!(b["current"][0]["label"], "A-001", "{b}");
                        })
                    })
            })
        }),
        route(Method::POST, "/queues/{queue_id}/screen-links", Access::Perm(QueueManage), |w, _| {
            Box::pin(async move {
                Case::form(format!("/queues/{}/screen-links", w.a.queue), &[("name", "Lobby TV")]).then(|w, a| {
                    Box::pin(async move {
                        let (_, token) = screen_link_in(&a.text);
                        let r = w.app.get(&format!("/screen/{token}")).await;
                        assert_eq!(r.status(), StatusCode::OK);
                        assert!(r.text().await.unwrap().contains("Dr Matrix"));
                    })
                })
            })
        }),
        route(Method::POST, "/queue-screen-links/{link_id}/revoke", Access::Perm(QueueManage), |w, _| {
            Box::pin(async move {
                let (id, token) = fresh_screen_link(w).await;
                Case::form(format!("/queue-screen-links/{id}/revoke"), &[])
                    .see_other(format!("/queues/{}/board?ok=link_revoked", w.a.queue))
                    .then(move |w, _| {
                        Box::pin(async move {
                            let r = w.app.get(&format!("/screen/{token}")).await;
                            assert_eq!(r.status(), StatusCode::NOT_FOUND, "a revoked link shows nothing");
                        })
                    })
            })
        }),
        route(Method::GET, "/screen/{token}", Access::Public, |w, _| {
            Box::pin(async move {
                let (_, token) = fresh_screen_link(w).await;
                Case::bare(format!("/screen/{token}")).then(|w, a| {
                    Box::pin(async move {
                        assert!(a.text.contains("Dr Matrix") && !a.text.contains("Walk-in"), "{}", a.text);
                        assert_eq!(a.header("referrer-policy"), Some("same-origin"), "the link does not leave the site");
                        assert_eq!(w.app.get("/screen/fdscr_made_up").await.status(), StatusCode::NOT_FOUND);
                    })
                })
            })
        }),
        route(Method::GET, "/screen/{token}/data", Access::Public, |w, _| {
            Box::pin(async move {
                let (_, token) = fresh_screen_link(w).await;
                Case::bare(format!("/screen/{token}/data")).then(|w, a| {
                    Box::pin(async move {
                        assert_eq!(a.json()["queue_name"], "Dr Matrix", "{}", a.text);
                        assert!(!a.text.contains("Walk-in"));
                        assert_eq!(w.app.get("/screen/fdscr_made_up/data").await.status(), StatusCode::NOT_FOUND);
                    })
                })
            })
        }),
        route(Method::GET, "/queue-tokens/{token_id}", Access::Perm(QueueRead), |w, _| {
            Box::pin(async move {
                Case::bare(format!("/queue-tokens/{}", w.a.token)).then(|_, a| {
                    Box::pin(async move {
                        assert!(a.text.contains("queue.checked_in"), "{}", a.text);
                    })
                })
            })
        }),
        route(Method::POST, "/queue-tokens/{token_id}/consult", Access::Perm(QueueCallNext), |w, p| {
            Box::pin(async move {
                let (q, id) = match p {
                    Purpose::Guard => (w.a.queue.clone(), w.a.token.clone()),
                    Purpose::Allowed => {
                        let (q, t) = create_queue(&w.app, &w.a.admin, &w.a.channel, &format!("Dr Web Consult {}", w.uniq_digits())).await;
                        w.ok(Method::POST, &format!("/api/v1/queues/{q}/call-next"), None).await;
                        (q, t)
                    }
                };
                Case::form(format!("/queue-tokens/{id}/consult"), &[("action", "complete")])
                    .see_other(format!("/queues/{q}/board?ok=done&token=A-001"))
                    .then(move |w, _| {
                        Box::pin(async move {
                            let t = w.get_a(&format!("/api/v1/queue-tokens/{id}")).await;
                            assert_eq!(t["token"]["state"], "complete", "{t}");
                        })
                    })
            })
        }),
        route(Method::POST, "/queue-tokens/{token_id}/manage", Access::Perm(QueueManage), |w, p| {
            Box::pin(async move {
                let id = match p {
                    Purpose::Guard => w.a.token.clone(),
                    Purpose::Allowed => check_in_walk_in(&w.app, &w.a.admin, &w.a.queue).await,
                };
                Case::form(format!("/queue-tokens/{id}/manage"), &[("action", "cancel")])
                    .see_other_starting(format!("/queues/{}/board?ok=done&token=A-", w.a.queue))
                    .then(move |w, _| {
                        Box::pin(async move {
                            let t = w.get_a(&format!("/api/v1/queue-tokens/{id}")).await;
                            assert_eq!(t["token"]["state"], "cancelled", "{t}");
                        })
                    })
            })
        })
        .cross(|w| {
            Box::pin(async move {
                vec![Case::form(format!("/queue-tokens/{}/manage", w.b.token), &[("action", "move"), ("queue_id", &w.a.queue)])]
            })
        }),
        // -- the WhatsApp simulator --------------------------------------------------------
        route(
            Method::POST,
            "/api/v1/channels/simulator",
            Access::Perm(ChannelsManage),
            |w, _| {
                Box::pin(async move {
                    let name = w.uniq("Simulated line");
                    Case::json("/api/v1/channels/simulator", json!({ "name": name }))
                        .status(201)
                        .then(move |w, a| {
                            Box::pin(async move {
                                let v = a.json();
                                assert_eq!(v["simulated"], true, "{v}");
                                let page = w.sim_page().await;
                                assert!(page.contains(v["phone_number_id"].as_str().unwrap()));
                                assert!(page.contains(&name));
                            })
                        })
                })
            },
        ),
        route(Method::GET, "/simulator", Member, |_, _| {
            Box::pin(async move {
                Case::bare("/simulator").then(|_, a| {
                    Box::pin(async move { assert!(a.text.contains("WhatsApp simulator")) })
                })
            })
        }),
        route(
            Method::POST,
            "/simulator/numbers",
            Access::Perm(ChannelsManage),
            |w, _| {
                Box::pin(async move {
                    let name = w.uniq("Simulated desk");
                    Case::form(
                        "/simulator/numbers",
                        &[("name", &name), ("send_rate_limit", "")],
                    )
                    .see_other("/simulator?ok=connected")
                    .then(move |w, _| {
                        Box::pin(async move { assert!(w.sim_page().await.contains(&name)) })
                    })
                })
            },
        ),
        route(
            Method::POST,
            "/simulator/numbers/{channel_id}/customers",
            Member,
            |w, _| {
                Box::pin(async move {
                    let ch = w.sim_a().await;
                    let name = w.uniq("Customer");
                    Case::form(
                        format!("/simulator/numbers/{}/customers", ch.id),
                        &[("name", &name), ("phone", "+14155550100"), ("username", "")],
                    )
                    .see_other_starting("/simulator/customers/")
                    .then(move |w, _| {
                        Box::pin(async move { assert!(w.sim_page().await.contains(&name)) })
                    })
                })
            },
        ),
        route(
            Method::GET,
            "/simulator/customers/{customer_id}",
            Member,
            |w, _| {
                Box::pin(async move {
                    let c = w.sim_customer_a().await;
                    Case::bare(format!("/simulator/customers/{c}")).then(|_, a| {
                        Box::pin(async move { assert!(a.text.contains("id=\"sim-compose\"")) })
                    })
                })
            },
        ),
        route(
            Method::POST,
            "/simulator/customers/{customer_id}/messages",
            Member,
            |w, _| {
                Box::pin(async move {
                    let c = w.sim_customer_a().await;
                    let text = w.uniq("hello from the phone");
                    Case::form(
                        format!("/simulator/customers/{c}/messages"),
                        &[("kind", "text"), ("body", &text)],
                    )
                    .see_other(format!("/simulator/customers/{c}"))
                    .then(move |w, _| {
                        Box::pin(async move {
                            let chat = w.sim_chat(&c).await;
                            assert_eq!(chat["messages"][0]["text"], text.as_str(), "{chat}");
                        })
                    })
                })
            },
        ),
        route(
            Method::POST,
            "/simulator/customers/{customer_id}/image",
            Member,
            |w, _| {
                Box::pin(async move {
                    let c = w.sim_customer_a().await;
                    let (ctype, body) = common::simulator::multipart(&[
                        (
                            "file",
                            Some("p.png"),
                            Some("image/png"),
                            b"\x89PNG\r\n\x1a\nmatrix",
                        ),
                        ("caption", None, None, b"a photo"),
                    ]);
                    Case::raw(format!("/simulator/customers/{c}/image"), ctype, body)
                        .see_other(format!("/simulator/customers/{c}"))
                        .then(move |w, _| {
                            Box::pin(async move {
                                let chat = w.sim_chat(&c).await;
                                assert_eq!(chat["messages"][0]["type"], "image", "{chat}");
                            })
                        })
                })
            },
        ),
        route(
            Method::GET,
            "/api/v1/simulator/customers/{customer_id}/messages",
            Member,
            |w, _| {
                Box::pin(async move {
                    let c = w.sim_customer_a().await;
                    Case::bare(format!("/api/v1/simulator/customers/{c}/messages")).then(
                        move |_, a| {
                            Box::pin(async move {
                                assert_eq!(a.json()["customer_id"], c.as_str(), "{}", a.short())
                            })
                        },
                    )
                })
            },
        ),
        route(
            Method::POST,
            "/api/v1/simulator/customers/{customer_id}/seen",
            Member,
            |w, _| {
                Box::pin(async move {
                    let c = w.sim_customer_a().await;
                    Case::bare(format!("/api/v1/simulator/customers/{c}/seen")).then(|_, a| {
                        Box::pin(async move { assert_eq!(a.json()["read"], 0, "{}", a.short()) })
                    })
                })
            },
        ),
        route(
            Method::POST,
            "/simulator/graph/{version}/{node}/messages",
            Public,
            |w, _| {
                Box::pin(async move {
                    let ch = w.sim_a().await;
                    Case::json(
                        format!("/simulator/graph/v23.0/{}/messages", ch.phone_number_id),
                        json!({ "messaging_product": "whatsapp", "to": "15550001111", "type": "text", "text": { "body": "hi" } }),
                    )
                    .header("authorization", &format!("Bearer {}", ch.access_token))
                    .then(|_, a| {
                        Box::pin(async move {
                            let v = a.json();
                            assert!(v["messages"][0]["id"].as_str().unwrap().starts_with("wamid."), "{v}");
                        })
                    })
                })
            },
        ),
        route(
            Method::POST,
            "/simulator/graph/{version}/{node}/media",
            Public,
            |w, _| {
                Box::pin(async move {
                    let ch = w.sim_a().await;
                    let (ctype, body) = common::simulator::multipart(&[
                        ("messaging_product", None, None, b"whatsapp"),
                        ("file", Some("n.txt"), Some("text/plain"), b"a note"),
                    ]);
                    Case::raw(
                        format!("/simulator/graph/v23.0/{}/media", ch.phone_number_id),
                        ctype,
                        body,
                    )
                    .header("authorization", &format!("Bearer {}", ch.access_token))
                    .then(move |w, a| {
                        Box::pin(async move {
                            let id = a.json()["id"].as_str().unwrap().to_owned();
                            let (s, info) = w
                                .app
                                .graph_call(
                                    Method::GET,
                                    &format!("/{id}"),
                                    Some(&ch.access_token),
                                    None,
                                )
                                .await;
                            assert_eq!(
                                (s, info["file_size"].as_i64()),
                                (StatusCode::OK, Some(6)),
                                "{info}"
                            );
                        })
                    })
                })
            },
        ),
        route(
            Method::GET,
            "/simulator/graph/{version}/{node}",
            Public,
            |w, _| {
                Box::pin(async move {
                    let ch = w.sim_a().await;
                    Case::bare(format!("/simulator/graph/v23.0/{}", ch.phone_number_id))
                        .header("authorization", &format!("Bearer {}", ch.access_token))
                        .then(|_, a| {
                            Box::pin(async move {
                                assert_eq!(a.json()["quality_rating"], "GREEN", "{}", a.short())
                            })
                        })
                })
            },
        ),
        route(
            Method::POST,
            "/simulator/graph/{version}/{node}/message_templates",
            Public,
            |w, _| {
                Box::pin(async move {
                    let ch = w.sim_a().await;
                    Case::json(
                        format!("/simulator/graph/v23.0/{}/message_templates", ch.waba_id),
                        json!({ "name": "matrix_notice", "language": "en", "category": "UTILITY", "components": [{ "type": "BODY", "text": "Your visit is confirmed." }] }),
                    )
                    .header("authorization", &format!("Bearer {}", ch.access_token))
                    .then(|_, a| {
                        Box::pin(async move { assert_eq!(a.json()["status"], "PENDING", "{}", a.short()) })
                    })
                })
            },
        ),
        route(
            Method::GET,
            "/simulator/graph/{version}/{node}/message_templates",
            Public,
            |w, _| {
                Box::pin(async move {
                    let ch = w.sim_a().await;
                    Case::bare(format!(
                        "/simulator/graph/v23.0/{}/message_templates",
                        ch.waba_id
                    ))
                    .header("authorization", &format!("Bearer {}", ch.access_token))
                    .then(|_, a| {
                        Box::pin(
                            async move { assert!(a.json()["data"].is_array(), "{}", a.short()) },
                        )
                    })
                })
            },
        ),
        route(
            Method::DELETE,
            "/simulator/graph/{version}/{node}/message_templates",
            Public,
            |w, _| {
                Box::pin(async move {
                    let ch = w.sim_a().await;
                    let name = format!("matrix_gone_{}", w.uniq_digits());
                    let (s, v) = w.app.api(
                        Method::POST,
                        &format!("/simulator/graph/v23.0/{}/message_templates", ch.waba_id),
                        Some(&ch.access_token),
                        Some(json!({ "name": name, "language": "en", "category": "UTILITY", "components": [{ "type": "BODY", "text": "Soon gone." }] })),
                    ).await;
                    assert!(s.is_success(), "{v}");
                    Case::bare(format!("/simulator/graph/v23.0/{}/message_templates?name={name}", ch.waba_id))
                        .header("authorization", &format!("Bearer {}", ch.access_token))
                        .then(|_, a| {
                            Box::pin(async move { assert_eq!(a.json()["success"], true, "{}", a.short()) })
                        })
                })
            },
        ),
        route(
            Method::GET,
            "/simulator/media/{media_id}",
            Public,
            |w, _| {
                Box::pin(async move {
                    let ch = w.sim_a().await;
                    let (ctype, body) = common::simulator::multipart(&[
                        ("messaging_product", None, None, b"whatsapp"),
                        (
                            "file",
                            Some("n.txt"),
                            Some("text/plain"),
                            b"downloaded note",
                        ),
                    ]);
                    let r = w
                        .app
                        .client
                        .post(w.app.graph(&format!("/{}/media", ch.phone_number_id)))
                        .bearer_auth(&ch.access_token)
                        .header("content-type", ctype)
                        .body(body)
                        .send()
                        .await
                        .unwrap();
                    let id = r.json::<Value>().await.unwrap()["id"]
                        .as_str()
                        .unwrap()
                        .to_owned();
                    Case::bare(format!("/simulator/media/{id}"))
                        .header("authorization", &format!("Bearer {}", ch.access_token))
                        .then(|_, a| Box::pin(async move { assert_eq!(a.text, "downloaded note") }))
                })
            },
        ),
        // -- the audience: contacts, custom fields, tags ------------------------------------
        route(Method::GET, "/api/v1/contacts", Access::Perm(ContactsRead), |w, _| {
            Box::pin(async move {
                let c = fresh_contact(w).await;
                Case::bare("/api/v1/contacts?limit=100").then(move |_, a| {
                    Box::pin(async move {
                        assert!(a.json()["items"].as_array().unwrap().iter().any(|x| x["id"] == c.as_str()), "{}", a.short());
                    })
                })
            })
        }),
        route(Method::POST, "/api/v1/contacts", Access::Perm(ContactsWrite), |w, _| {
            Box::pin(async move {
                let phone = w.uniq_phone("+1415");
                Case::json("/api/v1/contacts", json!({ "name": "Matrix contact", "phone": phone, "language": "pt-br" }))
                    .status(201)
                    .then(move |w, a| {
                        Box::pin(async move {
                            let id = a.json()["id"].as_str().unwrap().to_owned();
                            let c = w.get_a(&format!("/api/v1/contacts/{id}")).await;
                            assert_eq!((c["phone"].as_str(), c["language"].as_str()), (Some(phone.as_str()), Some("pt_BR")), "{c}");
                        })
                    })
            })
        }),
        route(Method::GET, "/api/v1/contacts/{contact_id}", Access::Perm(ContactsRead), |w, _| {
            Box::pin(async move {
                let c = fresh_contact(w).await;
                Case::bare(format!("/api/v1/contacts/{c}")).then(move |_, a| {
                    Box::pin(async move { assert_eq!(a.json()["id"], c.as_str(), "{}", a.short()) })
                })
            })
        }),
        route(Method::PATCH, "/api/v1/contacts/{contact_id}", Access::Perm(ContactsWrite), |w, _| {
            Box::pin(async move {
                let c = fresh_contact(w).await;
                Case::json(format!("/api/v1/contacts/{c}"), json!({ "company": "Renamed Ltd" })).then(move |w, _| {
                    Box::pin(async move {
                        assert_eq!(w.get_a(&format!("/api/v1/contacts/{c}")).await["company"], "Renamed Ltd");
                    })
                })
            })
        }),
        route(Method::PUT, "/api/v1/contacts/{contact_id}/tags/{tag_id}", Access::Perm(ContactsWrite), |w, _| {
            Box::pin(async move {
                let c = fresh_contact(w).await;
                let t = fresh_tag(w).await;
                Case::bare(format!("/api/v1/contacts/{c}/tags/{t}")).status(204).then(move |w, _| {
                    Box::pin(async move {
                        let v = w.get_a(&format!("/api/v1/contacts/{c}")).await;
                        assert!(v["tags"].as_array().unwrap().iter().any(|x| x["id"] == t.as_str()), "{v}");
                    })
                })
            })
        }),
        route(Method::DELETE, "/api/v1/contacts/{contact_id}/tags/{tag_id}", Access::Perm(ContactsWrite), |w, _| {
            Box::pin(async move {
                let c = fresh_contact(w).await;
                let t = fresh_tag(w).await;
                w.ok(Method::PUT, &format!("/api/v1/contacts/{c}/tags/{t}"), None).await;
                Case::bare(format!("/api/v1/contacts/{c}/tags/{t}")).status(204).then(move |w, _| {
                    Box::pin(async move {
                        let v = w.get_a(&format!("/api/v1/contacts/{c}")).await;
                        assert!(v["tags"].as_array().unwrap().is_empty(), "{v}");
                    })
                })
            })
        }),
        route(Method::GET, "/api/v1/contact-fields", Access::Perm(ContactsRead), |w, _| {
            Box::pin(async move {
                let f = fresh_field(w).await;
                Case::bare("/api/v1/contact-fields").then(move |_, a| {
                    Box::pin(async move {
                        assert!(a.json().as_array().unwrap().iter().any(|x| x["id"] == f.as_str()), "{}", a.short());
                    })
                })
            })
        }),
        route(Method::POST, "/api/v1/contact-fields", Access::Perm(ContactsConfigure), |w, _| {
            Box::pin(async move {
                let key = format!("k{}", w.uniq_digits());
                Case::json("/api/v1/contact-fields", json!({ "key": key, "label": "City", "kind": "choice", "options": ["Pune", "Goa"] }))
                    .status(201)
                    .then(move |w, _| {
                        Box::pin(async move {
                            let all = w.get_a("/api/v1/contact-fields").await;
                            assert!(all.as_array().unwrap().iter().any(|x| x["key"] == key.as_str() && x["options"] == json!(["Pune", "Goa"])), "{all}");
                        })
                    })
            })
        }),
        route(Method::PATCH, "/api/v1/contact-fields/{field_id}", Access::Perm(ContactsConfigure), |w, _| {
            Box::pin(async move {
                let f = fresh_field(w).await;
                Case::json(format!("/api/v1/contact-fields/{f}"), json!({ "label": "Renamed" })).then(move |w, _| {
                    Box::pin(async move {
                        let all = w.get_a("/api/v1/contact-fields").await;
                        assert!(all.as_array().unwrap().iter().any(|x| x["id"] == f.as_str() && x["label"] == "Renamed"), "{all}");
                    })
                })
            })
        }),
        route(Method::DELETE, "/api/v1/contact-fields/{field_id}", Access::Perm(ContactsConfigure), |w, _| {
            Box::pin(async move {
                let f = fresh_field(w).await;
                Case::bare(format!("/api/v1/contact-fields/{f}")).status(204).then(move |w, _| {
                    Box::pin(async move {
                        let all = w.get_a("/api/v1/contact-fields").await;
                        assert!(!all.as_array().unwrap().iter().any(|x| x["id"] == f.as_str()), "{all}");
                    })
                })
            })
        }),
        route(Method::GET, "/api/v1/tags", Access::Perm(ContactsRead), |w, _| {
            Box::pin(async move {
                let t = fresh_tag(w).await;
                Case::bare("/api/v1/tags").then(move |_, a| {
                    Box::pin(async move {
                        assert!(a.json().as_array().unwrap().iter().any(|x| x["id"] == t.as_str()), "{}", a.short());
                    })
                })
            })
        }),
        route(Method::POST, "/api/v1/tags", Access::Perm(ContactsConfigure), |w, _| {
            Box::pin(async move {
                let name = w.uniq("tag");
                Case::json("/api/v1/tags", json!({ "name": name })).status(201).then(move |w, _| {
                    Box::pin(async move {
                        let all = w.get_a("/api/v1/tags").await;
                        assert!(all.as_array().unwrap().iter().any(|x| x["name"] == name.as_str()), "{all}");
                    })
                })
            })
        }),
        route(Method::PATCH, "/api/v1/tags/{tag_id}", Access::Perm(ContactsConfigure), |w, _| {
            Box::pin(async move {
                let t = fresh_tag(w).await;
                let name = w.uniq("renamed tag");
                Case::json(format!("/api/v1/tags/{t}"), json!({ "name": name })).then(move |w, _| {
                    Box::pin(async move {
                        let all = w.get_a("/api/v1/tags").await;
                        assert!(all.as_array().unwrap().iter().any(|x| x["id"] == t.as_str() && x["name"] == name.as_str()), "{all}");
                    })
                })
            })
        }),
        route(Method::DELETE, "/api/v1/tags/{tag_id}", Access::Perm(ContactsConfigure), |w, _| {
            Box::pin(async move {
                let t = fresh_tag(w).await;
                Case::bare(format!("/api/v1/tags/{t}")).status(204).then(move |w, _| {
                    Box::pin(async move {
                        let all = w.get_a("/api/v1/tags").await;
                        assert!(!all.as_array().unwrap().iter().any(|x| x["id"] == t.as_str()), "{all}");
                    })
                })
            })
        }),
        route(Method::GET, "/api/v1/contacts/{contact_id}/consent", Access::Perm(ContactsRead), |w, _| {
            Box::pin(async move {
                let c = fresh_contact(w).await;
                Case::bare(format!("/api/v1/contacts/{c}/consent")).then(|_, a| {
                    Box::pin(async move { assert!(a.json()["events"].is_array(), "{}", a.short()) })
                })
            })
        }),
        route(Method::POST, "/api/v1/contacts/{contact_id}/consent", Access::Perm(ContactsWrite), |w, _| {
            Box::pin(async move {
                let c = fresh_contact(w).await;
                Case::json(format!("/api/v1/contacts/{c}/consent"), json!({ "state": "opt_in", "source": "form", "evidence": "Signed up at the counter" }))
                    .status(201)
                    .then(move |w, _| {
                        Box::pin(async move {
                            assert_eq!(w.get_a(&format!("/api/v1/contacts/{c}")).await["consent"], "opt_in");
                        })
                    })
            })
        }),
        route(Method::GET, "/api/v1/audience/settings", Access::Perm(ContactsConfigure), |_, _| {
            Box::pin(async move {
                Case::bare("/api/v1/audience/settings").then(|_, a| {
                    Box::pin(async move { assert!(a.json()["opt_out_keywords"].as_array().is_some_and(|k| !k.is_empty()), "{}", a.short()) })
                })
            })
        }),
        route(Method::PUT, "/api/v1/audience/settings", Access::Perm(ContactsConfigure), |_, _| {
            Box::pin(async move {
                Case::json("/api/v1/audience/settings", json!({ "opt_out_keywords": ["STOP", "unsubscribe"], "opt_in_keywords": ["START"], "opt_out_reply": "Bye.", "opt_in_reply": "Hello again." }))
                    .then(|w, _| {
                        Box::pin(async move {
                            assert_eq!(w.get_a("/api/v1/audience/settings").await["opt_out_keywords"], json!(["STOP", "UNSUBSCRIBE"]));
                        })
                    })
            })
        }),
        route(Method::POST, "/contacts/{contact_id}/consent", Access::Perm(ContactsWrite), |w, _| {
            Box::pin(async move {
                let c = fresh_contact(w).await;
                Case::form(format!("/contacts/{c}/consent"), &[("state", "opt_out"), ("source", "agent"), ("evidence", "Asked on the phone")])
                    .see_other(format!("/contacts/{c}?ok=consent"))
                    .then(move |w, _| {
                        Box::pin(async move {
                            assert_eq!(w.get_a(&format!("/api/v1/contacts/{c}")).await["consent"], "opt_out");
                        })
                    })
            })
        }),
        route(Method::GET, "/api/v1/segments", Access::Perm(ContactsRead), |w, _| {
            Box::pin(async move {
                let s = fresh_segment(w).await;
                Case::bare("/api/v1/segments").then(move |_, a| {
                    Box::pin(async move { assert!(a.json().as_array().unwrap().iter().any(|x| x["id"] == s.as_str()), "{}", a.short()) })
                })
            })
        }),
        route(Method::POST, "/api/v1/segments", Access::Perm(ContactsWrite), |w, _| {
            Box::pin(async move {
                let name = w.uniq("segment");
                Case::json("/api/v1/segments", json!({ "name": name, "rule": { "consent": "opt_in" } })).status(201).then(move |w, a| {
                    Box::pin(async move {
                        let id = a.json()["id"].as_str().unwrap().to_owned();
                        assert_eq!(w.get_a(&format!("/api/v1/segments/{id}")).await["name"], name.as_str());
                    })
                })
            })
        }),
        route(Method::POST, "/api/v1/segments/preview", Access::Perm(ContactsRead), |w, _| {
            Box::pin(async move {
                let c = fresh_contact(w).await;
                let t = fresh_tag(w).await;
                w.ok(Method::PUT, &format!("/api/v1/contacts/{c}/tags/{t}"), None).await;
                Case::json("/api/v1/segments/preview", json!({ "rule": { "has_tag": t } })).then(move |_, a| {
                    Box::pin(async move {
                        assert_eq!(a.json()["count"], 1, "{}", a.short());
                        assert_eq!(a.json()["contacts"][0]["id"], c.as_str());
                    })
                })
            })
        })
        .cross(|w| {
            Box::pin(async move {
                // Org A's tag in org B's rule is not a tag there.
                let t = fresh_tag(w).await;
                vec![Case::json("/api/v1/segments/preview", json!({ "rule": { "has_tag": t } }))]
            })
        }),
        route(Method::GET, "/api/v1/segments/{segment_id}", Access::Perm(ContactsRead), |w, _| {
            Box::pin(async move {
                let s = fresh_segment(w).await;
                Case::bare(format!("/api/v1/segments/{s}")).then(|_, a| {
                    Box::pin(async move { assert!(a.json()["count"].is_i64(), "{}", a.short()) })
                })
            })
        }),
        route(Method::PUT, "/api/v1/segments/{segment_id}", Access::Perm(ContactsWrite), |w, _| {
            Box::pin(async move {
                let s = fresh_segment(w).await;
                let name = w.uniq("renamed segment");
                Case::json(format!("/api/v1/segments/{s}"), json!({ "name": name, "rule": { "open_conversation": true } })).then(move |w, _| {
                    Box::pin(async move {
                        let v = w.get_a(&format!("/api/v1/segments/{s}")).await;
                        assert_eq!((v["name"].as_str(), &v["rule"]), (Some(name.as_str()), &json!({ "open_conversation": true })), "{v}");
                    })
                })
            })
        }),
        route(Method::DELETE, "/api/v1/segments/{segment_id}", Access::Perm(ContactsWrite), |w, _| {
            Box::pin(async move {
                let s = fresh_segment(w).await;
                Case::bare(format!("/api/v1/segments/{s}")).status(204).then(move |w, _| {
                    Box::pin(async move {
                        let all = w.get_a("/api/v1/segments").await;
                        assert!(!all.as_array().unwrap().iter().any(|x| x["id"] == s.as_str()));
                    })
                })
            })
        }),
        route(Method::GET, "/api/v1/campaigns", Access::Perm(CampaignsManage), |w, _| {
            Box::pin(async move {
                let c = fresh_campaign(w).await;
                Case::bare("/api/v1/campaigns").then(move |_, a| {
                    Box::pin(async move {
                        assert!(a.json()["items"].as_array().unwrap().iter().any(|x| x["id"] == c.as_str()), "{}", a.short())
                    })
                })
            })
        }),
        route(Method::POST, "/api/v1/campaigns", Access::Perm(CampaignsManage), |w, _| {
            Box::pin(async move {
                approve_template(w).await;
                let s = fresh_segment(w).await;
                let name = w.uniq("campaign");
                Case::json("/api/v1/campaigns", campaign_body(&name, &w.a.channel, &s)).status(201).then(move |w, a| {
                    Box::pin(async move {
                        let id = a.json()["id"].as_str().unwrap().to_owned();
                        let v = w.get_a(&format!("/api/v1/campaigns/{id}")).await;
                        assert_eq!((v["campaign"]["name"].as_str(), v["campaign"]["status"].as_str()), (Some(name.as_str()), Some("draft")), "{v}");
                    })
                })
            })
        })
        .cross(|w| {
            Box::pin(async move {
                // Org A's number and segment in org B's campaign are not there.
                approve_template(w).await;
                let s = fresh_segment(w).await;
                vec![Case::json("/api/v1/campaigns", campaign_body("Cross", &w.a.channel, &s))]
            })
        }),
        route(Method::GET, "/api/v1/campaigns/{campaign_id}", Access::Perm(CampaignsManage), |w, _| {
            Box::pin(async move {
                let c = fresh_campaign(w).await;
                Case::bare(format!("/api/v1/campaigns/{c}")).then(move |_, a| {
                    Box::pin(async move {
                        assert_eq!(a.json()["campaign"]["id"], c.as_str(), "{}", a.short());
                        assert!(a.json()["figures"]["queued"].is_i64(), "{}", a.short());
                    })
                })
            })
        }),
        route(Method::PATCH, "/api/v1/campaigns/{campaign_id}", Access::Perm(CampaignsManage), |w, _| {
            Box::pin(async move {
                let c = fresh_campaign(w).await;
                let name = w.uniq("renamed campaign");
                Case::json(format!("/api/v1/campaigns/{c}"), json!({ "name": name, "consent": "not_opted_out" })).then(move |w, a| {
                    Box::pin(async move {
                        assert_eq!(a.json()["name"], name.as_str(), "{}", a.short());
                        let v = w.get_a(&format!("/api/v1/campaigns/{c}")).await;
                        assert_eq!((v["campaign"]["name"].as_str(), v["campaign"]["consent"].as_str()), (Some(name.as_str()), Some("not_opted_out")), "{v}");
                    })
                })
            })
        }),
        route(Method::GET, "/api/v1/campaigns/{campaign_id}/review", Access::Perm(CampaignsManage), |w, _| {
            Box::pin(async move {
                let c = fresh_campaign(w).await;
                Case::bare(format!("/api/v1/campaigns/{c}/review")).then(|_, a| {
                    Box::pin(async move { assert!(a.json()["sendable"].is_i64() && a.json()["matched"].is_i64(), "{}", a.short()) })
                })
            })
        }),
        route(Method::POST, "/api/v1/campaigns/{campaign_id}/launch", Access::Perm(CampaignsManage), |w, _| {
            Box::pin(async move {
                let c = fresh_campaign(w).await;
                Case::json(format!("/api/v1/campaigns/{c}/launch"), json!({})).then(move |w, a| {
                    Box::pin(async move {
                        assert_eq!(a.json()["status"], "running", "{}", a.short());
                        // The worker finishes it in the background (and audits that): wait,
                        // so no later route's snapshot of org A sees it happen.
                        for _ in 0..200 {
                            let v = w.get_a(&format!("/api/v1/campaigns/{c}")).await;
                            if v["campaign"]["status"] == "completed" {
                                return;
                            }
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        panic!("the launched campaign never completed");
                    })
                })
            })
        }),
        route(Method::POST, "/api/v1/campaigns/{campaign_id}/pause", Access::Perm(CampaignsManage), |w, _| {
            Box::pin(async move {
                let c = scheduled_campaign(w).await;
                Case::bare(format!("/api/v1/campaigns/{c}/pause")).then(|_, a| {
                    Box::pin(async move { assert_eq!(a.json()["status"], "paused", "{}", a.short()) })
                })
            })
        }),
        route(Method::POST, "/api/v1/campaigns/{campaign_id}/resume", Access::Perm(CampaignsManage), |w, _| {
            Box::pin(async move {
                let c = scheduled_campaign(w).await;
                w.ok(Method::POST, &format!("/api/v1/campaigns/{c}/pause"), None).await;
                Case::bare(format!("/api/v1/campaigns/{c}/resume")).then(|_, a| {
                    // Paused before its time: it waits for that time again.
                    Box::pin(async move { assert_eq!(a.json()["status"], "scheduled", "{}", a.short()) })
                })
            })
        }),
        route(Method::POST, "/api/v1/campaigns/{campaign_id}/cancel", Access::Perm(CampaignsManage), |w, _| {
            Box::pin(async move {
                let c = scheduled_campaign(w).await;
                Case::bare(format!("/api/v1/campaigns/{c}/cancel")).then(|_, a| {
                    Box::pin(async move { assert_eq!(a.json()["status"], "cancelled", "{}", a.short()) })
                })
            })
        }),
        route(Method::GET, "/api/v1/campaigns/{campaign_id}/recipients", Access::Perm(CampaignsManage), |w, _| {
            Box::pin(async move {
                let c = fresh_campaign(w).await;
                Case::bare(format!("/api/v1/campaigns/{c}/recipients?state=queued&limit=10")).then(|_, a| {
                    Box::pin(async move { assert!(a.json()["items"].is_array(), "{}", a.short()) })
                })
            })
        }),
        route(Method::GET, "/api/v1/campaigns/{campaign_id}/report.csv", Access::Perm(CampaignsManage), |w, _| {
            Box::pin(async move {
                let c = fresh_campaign(w).await;
                Case::bare(format!("/api/v1/campaigns/{c}/report.csv")).then(|_, a| {
                    Box::pin(async move {
                        assert!(a.header("content-type").unwrap().starts_with("text/csv"));
                        assert!(a.text.starts_with("figure,count"), "{}", a.short());
                    })
                })
            })
        }),
        route(Method::GET, "/campaigns", Access::Perm(CampaignsManage), |w, _| {
            Box::pin(async move {
                let c = fresh_campaign(w).await;
                Case::bare("/campaigns").then(move |_, a| {
                    Box::pin(async move { assert!(a.text.contains(&format!("data-campaign-id=\"{c}\"")), "{}", a.short()) })
                })
            })
        }),
        route(Method::GET, "/campaigns/new", Access::Perm(CampaignsManage), |_, _| {
            Box::pin(async move {
                Case::bare("/campaigns/new").then(|_, a| {
                    Box::pin(async move { assert!(a.text.contains("data-testid=\"campaign-form\""), "{}", a.short()) })
                })
            })
        }),
        route(Method::POST, "/campaigns", Access::Perm(CampaignsManage), |w, _| {
            Box::pin(async move {
                approve_template(w).await;
                let s = fresh_segment(w).await;
                let name = w.uniq("paged campaign");
                Case::form("/campaigns", &[("name", &name), ("channel_id", &w.a.channel), ("segment_id", &s),
                    ("template", "appointment_reminder|en"), ("consent", "opt_in"), ("values", "")])
                    .see_other_starting("/campaigns/")
                    .then(move |w, _| {
                        Box::pin(async move {
                            let all = w.get_a("/api/v1/campaigns").await;
                            assert!(all["items"].as_array().unwrap().iter().any(|x| x["name"] == name.as_str()), "{all}");
                        })
                    })
            })
        })
        .cross(|w| {
            Box::pin(async move {
                approve_template(w).await;
                let s = fresh_segment(w).await;
                vec![Case::form("/campaigns", &[("name", "Cross"), ("channel_id", &w.a.channel), ("segment_id", &s),
                    ("template", "appointment_reminder|en"), ("consent", "opt_in"), ("values", "")])]
            })
        }),
        route(Method::GET, "/campaigns/{campaign_id}/edit", Access::Perm(CampaignsManage), |w, _| {
            Box::pin(async move {
                let c = fresh_campaign(w).await;
                Case::bare(format!("/campaigns/{c}/edit")).then(move |_, a| {
                    Box::pin(async move {
                        assert!(a.text.contains(&format!("action=\"/campaigns/{c}/edit\"")) && a.text.contains("data-testid=\"save-campaign\""), "{}", a.short())
                    })
                })
            })
        }),
        route(Method::POST, "/campaigns/{campaign_id}/edit", Access::Perm(CampaignsManage), |w, _| {
            Box::pin(async move {
                let c = fresh_campaign(w).await;
                let s = fresh_segment(w).await;
                let name = w.uniq("edited campaign");
                Case::form(format!("/campaigns/{c}/edit"), &[("name", &name), ("channel_id", &w.a.channel), ("segment_id", &s),
                    ("template", "appointment_reminder|en"), ("consent", "opt_in"), ("values", "")])
                    .see_other(format!("/campaigns/{c}"))
                    .then(move |w, _| {
                        Box::pin(async move {
                            let v = w.get_a(&format!("/api/v1/campaigns/{c}")).await;
                            assert_eq!((v["campaign"]["name"].as_str(), v["campaign"]["segment_id"].as_str()), (Some(name.as_str()), Some(s.as_str())), "{v}");
                        })
                    })
            })
        }),
        route(Method::GET, "/campaigns/{campaign_id}", Access::Perm(CampaignsManage), |w, _| {
            Box::pin(async move {
                let c = fresh_campaign(w).await;
                Case::bare(format!("/campaigns/{c}")).then(|_, a| {
                    Box::pin(async move { assert!(a.text.contains("data-testid=\"campaign-figures\""), "{}", a.short()) })
                })
            })
        }),
        route(Method::POST, "/campaigns/{campaign_id}", Access::Perm(CampaignsManage), |w, _| {
            Box::pin(async move {
                let c = scheduled_campaign(w).await;
                Case::form(format!("/campaigns/{c}"), &[("action", "pause")])
                    .see_other(format!("/campaigns/{c}"))
                    .then(move |w, _| {
                        Box::pin(async move {
                            let v = w.get_a(&format!("/api/v1/campaigns/{c}")).await;
                            assert_eq!(v["campaign"]["status"], "paused", "{v}");
                        })
                    })
            })
        }),
        route(Method::GET, "/segments", Access::Perm(ContactsRead), |w, _| {
            Box::pin(async move {
                let s = fresh_segment(w).await;
                Case::bare("/segments").then(move |_, a| {
                    Box::pin(async move { assert!(a.text.contains(&format!("data-segment-id=\"{s}\"")), "{}", a.short()) })
                })
            })
        }),
        route(Method::GET, "/segments/new", Access::Perm(ContactsWrite), |_, _| {
            Box::pin(async move {
                Case::bare("/segments/new").then(|_, a| {
                    Box::pin(async move { assert!(a.text.contains("id=\"segment-builder\""), "{}", a.short()) })
                })
            })
        }),
        route(Method::POST, "/segments", Access::Perm(ContactsWrite), |w, _| {
            Box::pin(async move {
                let name = w.uniq("paged segment");
                Case::form("/segments", &[("name", &name), ("rule", r#"{"consent":"unknown"}"#)])
                    .see_other_starting("/segments/")
                    .then(move |w, _| {
                        Box::pin(async move {
                            let all = w.get_a("/api/v1/segments").await;
                            assert!(all.as_array().unwrap().iter().any(|x| x["name"] == name.as_str()), "{all}");
                        })
                    })
            })
        }),
        route(Method::GET, "/segments/{segment_id}", Access::Perm(ContactsRead), |w, _| {
            Box::pin(async move {
                let s = fresh_segment(w).await;
                Case::bare(format!("/segments/{s}")).then(|_, a| {
                    Box::pin(async move { assert!(a.text.contains("data-testid=\"segment-count\""), "{}", a.short()) })
                })
            })
        }),
        route(Method::POST, "/segments/{segment_id}", Access::Perm(ContactsWrite), |w, _| {
            Box::pin(async move {
                let s = fresh_segment(w).await;
                let name = w.uniq("edited segment");
                Case::form(format!("/segments/{s}"), &[("name", &name), ("rule", r#"{"open_conversation":false}"#)])
                    .see_other(format!("/segments/{s}"))
                    .then(move |w, _| {
                        Box::pin(async move {
                            assert_eq!(w.get_a(&format!("/api/v1/segments/{s}")).await["name"], name.as_str());
                        })
                    })
            })
        }),
        route(Method::POST, "/api/v1/contact-imports", Access::Perm(ContactsWrite), |w, _| {
            Box::pin(async move {
                let csv = format!("name,phone\nMatrix,{}\n", w.uniq_phone("+1415"));
                Case::json("/api/v1/contact-imports", json!({ "filename": "m.csv", "csv": csv })).status(201).then(|w, a| {
                    Box::pin(async move {
                        let id = a.json()["id"].as_str().unwrap().to_owned();
                        let v = w.get_a(&format!("/api/v1/contact-imports/{id}")).await;
                        assert_eq!((v["status"].as_str(), v["total_rows"].as_i64()), (Some("uploaded"), Some(1)), "{v}");
                    })
                })
            })
        }),
        route(Method::GET, "/api/v1/contact-imports/{import_id}", Access::Perm(ContactsWrite), |w, _| {
            Box::pin(async move {
                let i = fresh_import(w).await;
                Case::bare(format!("/api/v1/contact-imports/{i}")).then(|_, a| {
                    Box::pin(async move { assert_eq!(a.json()["columns"], json!(["name", "phone"]), "{}", a.short()) })
                })
            })
        }),
        route(Method::POST, "/api/v1/contact-imports/{import_id}/dry-run", Access::Perm(ContactsWrite), |w, _| {
            Box::pin(async move {
                let i = fresh_import(w).await;
                Case::json(format!("/api/v1/contact-imports/{i}/dry-run"), json!({ "mapping": { "columns": { "name": "name", "phone": "phone" } } })).then(|_, a| {
                    Box::pin(async move { assert_eq!(a.json()["created"], 1, "{}", a.short()) })
                })
            })
        }),
        route(Method::POST, "/api/v1/contact-imports/{import_id}/run", Access::Perm(ContactsWrite), |w, _| {
            Box::pin(async move {
                let i = fresh_import(w).await;
                Case::json(format!("/api/v1/contact-imports/{i}/run"), json!({ "mapping": { "columns": { "name": "name", "phone": "phone" } } }))
                    .status(202)
                    .then(move |w, _| {
                        Box::pin(async move {
                            w.app.drain().await;
                            let v = w.get_a(&format!("/api/v1/contact-imports/{i}")).await;
                            assert_eq!((v["status"].as_str(), v["created"].as_i64()), (Some("done"), Some(1)), "{v}");
                        })
                    })
            })
        }),
        route(Method::GET, "/api/v1/contact-imports/{import_id}/rejections.csv", Access::Perm(ContactsWrite), |w, _| {
            Box::pin(async move {
                let up = w.ok(Method::POST, "/api/v1/contact-imports", Some(json!({ "filename": "bad.csv", "csv": "name,phone\nNo number,12345\n" }))).await;
                let i = up["id"].as_str().unwrap().to_owned();
                w.ok(Method::POST, &format!("/api/v1/contact-imports/{i}/dry-run"), Some(json!({ "mapping": { "columns": { "name": "name", "phone": "phone" } } }))).await;
                Case::bare(format!("/api/v1/contact-imports/{i}/rejections.csv?phase=dry_run")).then(|_, a| {
                    Box::pin(async move {
                        assert!(a.header("content-type").unwrap().starts_with("text/csv"));
                        assert!(a.text.starts_with("line,reason\n2,phone"), "{}", a.short());
                    })
                })
            })
        }),
        route(Method::GET, "/contacts/import", Access::Perm(ContactsWrite), |_, _| {
            Box::pin(async move {
                Case::bare("/contacts/import").then(|_, a| {
                    Box::pin(async move { assert!(a.text.contains("data-testid=\"import-upload\""), "{}", a.short()) })
                })
            })
        }),
        route(Method::POST, "/contacts/import", Access::Perm(ContactsWrite), |w, _| {
            Box::pin(async move {
                let csv = format!("Name,Mobile\nPaged,{}\n", w.uniq_phone("+1415"));
                Case::form("/contacts/import", &[("csv", &csv), ("filename", "paged.csv")])
                    .see_other_starting("/contacts/import/")
                    .then(|w, a| {
                        Box::pin(async move {
                            let id = a.header("location").unwrap().trim_start_matches("/contacts/import/").to_owned();
                            let v = w.get_a(&format!("/api/v1/contact-imports/{id}")).await;
                            assert_eq!(v["columns"], json!(["Name", "Mobile"]), "{v}");
                        })
                    })
            })
        }),
        route(Method::GET, "/contacts/import/{import_id}", Access::Perm(ContactsWrite), |w, _| {
            Box::pin(async move {
                let i = fresh_import(w).await;
                Case::bare(format!("/contacts/import/{i}")).then(|_, a| {
                    Box::pin(async move { assert!(a.text.contains("data-testid=\"import-mapping\""), "{}", a.short()) })
                })
            })
        }),
        route(Method::POST, "/contacts/import/{import_id}", Access::Perm(ContactsWrite), |w, _| {
            Box::pin(async move {
                let i = fresh_import(w).await;
                Case::form(format!("/contacts/import/{i}"), &[("col.0", "name"), ("col.1", "phone"), ("action", "dry_run")]).then(move |w, a| {
                    Box::pin(async move {
                        assert!(a.text.contains("data-testid=\"dry-run-report\""), "{}", a.short());
                        let v = w.get_a(&format!("/api/v1/contact-imports/{i}")).await;
                        assert_eq!(v["dry_run"]["created"], 1, "{v}");
                    })
                })
            })
        }),
        route(Method::GET, "/api/v1/contact-exports", Access::Perm(ContactsExport), |w, _| {
            Box::pin(async move {
                let e = fresh_export(w, &w.a.admin.access).await;
                Case::bare("/api/v1/contact-exports").then(move |_, a| {
                    Box::pin(async move { assert!(a.json().as_array().unwrap().iter().any(|x| x["id"] == e.as_str()), "{}", a.short()) })
                })
            })
        }),
        route(Method::POST, "/api/v1/contact-exports", Access::Perm(ContactsExport), |w, _| {
            Box::pin(async move {
                let s = fresh_segment(w).await;
                Case::json("/api/v1/contact-exports", json!({ "segment_id": s })).status(201).then(move |_, a| {
                    Box::pin(async move {
                        assert_eq!((a.json()["status"].as_str(), a.json()["segment_id"].as_str()), (Some("requested"), Some(s.as_str())), "{}", a.short());
                    })
                })
            })
        })
        .cross(|w| {
            Box::pin(async move {
                let s = fresh_segment(w).await;
                vec![Case::json("/api/v1/contact-exports", json!({ "segment_id": s }))]
            })
        }),
        route(Method::POST, "/api/v1/contact-exports/{export_id}/decision", Access::Perm(ContactsApproveExport), |w, _| {
            Box::pin(async move {
                // Requested by another member of org A: the admin may decide it.
                let other = &w.person_without[&Permission::AuditRead].api.access;
                let e = fresh_export(w, other).await;
                Case::json(format!("/api/v1/contact-exports/{e}/decision"), json!({ "approve": true })).then(|_, a| {
                    Box::pin(async move { assert_eq!(a.json()["status"], "approved", "{}", a.short()) })
                })
            })
        }),
        route(Method::GET, "/api/v1/contact-exports/{export_id}/download", Access::Perm(ContactsExport), |w, _| {
            Box::pin(async move {
                fresh_contact(w).await;
                let e = fresh_export(w, &w.a.admin.access).await;
                let other = &w.person_without[&Permission::AuditRead].api.access;
                let (s, v) = w.app.api(Method::POST, &format!("/api/v1/contact-exports/{e}/decision"), Some(other), Some(json!({ "approve": true }))).await;
                assert!(s.is_success(), "{v}");
                Case::bare(format!("/api/v1/contact-exports/{e}/download")).then(|_, a| {
                    Box::pin(async move {
                        assert!(a.header("content-type").unwrap().starts_with("text/csv"));
                        assert!(a.text.starts_with("id,name,"), "{}", a.short());
                    })
                })
            })
        }),
        route(Method::POST, "/api/v1/contacts/{contact_id}/erase", Access::Perm(ContactsErase), |w, _| {
            Box::pin(async move {
                let c = fresh_contact(w).await;
                Case::bare(format!("/api/v1/contacts/{c}/erase")).then(move |w, _| {
                    Box::pin(async move {
                        let v = w.get_a(&format!("/api/v1/contacts/{c}")).await;
                        assert!(v["erased_at"].is_string() && v["phone"].is_null() && v["name"].is_null(), "{v}");
                    })
                })
            })
        }),
        route(Method::GET, "/api/v1/erasure-requests", Access::Perm(ContactsErase), |w, _| {
            Box::pin(async move {
                let (c, r) = fresh_pending_erasure(w).await;
                Case::bare(format!("/api/v1/erasure-requests?pending=true&contact_id={c}")).then(move |_, a| {
                    Box::pin(async move {
                        let list = a.json();
                        assert!(list.as_array().unwrap().iter().any(|x| x["id"] == r.as_str() && x["state"] == "pending"), "{}", a.short());
                    })
                })
            })
        }),
        route(Method::POST, "/api/v1/erasure-requests/{request_id}/cancel", Access::Perm(ContactsErase), |w, _| {
            Box::pin(async move {
                let (c, r) = fresh_pending_erasure(w).await;
                Case::bare(format!("/api/v1/erasure-requests/{r}/cancel")).then(move |w, a| {
                    Box::pin(async move {
                        assert_eq!(a.json()["state"], "cancelled", "{}", a.short());
                        assert!(w.get_a(&format!("/api/v1/contacts/{c}")).await["erased_at"].is_null());
                    })
                })
            })
        }),
        route(Method::GET, "/api/v1/audience/erasure-settings", Access::Perm(ContactsConfigure), |_, _| {
            Box::pin(async move {
                Case::bare("/api/v1/audience/erasure-settings").then(|_, a| {
                    Box::pin(async move { assert!(a.json()["window_days"].as_i64().is_some_and(|d| (1..=90).contains(&d)), "{}", a.short()) })
                })
            })
        }),
        route(Method::PUT, "/api/v1/audience/erasure-settings", Access::Perm(ContactsConfigure), |_, _| {
            Box::pin(async move {
                // The delay stays 0, so the other routes' erasures still run at once.
                Case::json("/api/v1/audience/erasure-settings", json!({ "window_days": 14, "delay_hours": 0 })).then(|w, _| {
                    Box::pin(async move {
                        assert_eq!(w.get_a("/api/v1/audience/erasure-settings").await["window_days"], 14);
                    })
                })
            })
        }),
        route(Method::POST, "/contacts/{contact_id}/erasure/{request_id}/cancel", Access::Perm(ContactsErase), |w, _| {
            Box::pin(async move {
                let (c, r) = fresh_pending_erasure(w).await;
                Case::form(format!("/contacts/{c}/erasure/{r}/cancel"), &[])
                    .see_other(format!("/contacts/{c}?ok=erasure_cancelled"))
                    .then(move |w, _| {
                        Box::pin(async move {
                            let list = w.get_a(&format!("/api/v1/erasure-requests?contact_id={c}")).await;
                            assert_eq!(list[0]["state"], "cancelled", "{list}");
                        })
                    })
            })
        }),
        route(Method::POST, "/contacts/settings/erasure", Access::Perm(ContactsConfigure), |_, _| {
            Box::pin(async move {
                Case::form("/contacts/settings/erasure", &[("window_days", "21"), ("delay_hours", "0")])
                    .see_other("/contacts/settings?ok=erasure")
                    .then(|w, _| {
                        Box::pin(async move {
                            assert_eq!(w.get_a("/api/v1/audience/erasure-settings").await["window_days"], 21);
                        })
                    })
            })
        }),
        route(Method::POST, "/contacts/{contact_id}/erase", Access::Perm(ContactsErase), |w, _| {
            Box::pin(async move {
                let c = fresh_contact(w).await;
                Case::form(format!("/contacts/{c}/erase"), &[])
                    .see_other(format!("/contacts/{c}?ok=erased"))
                    .then(move |w, _| {
                        Box::pin(async move {
                            assert!(w.get_a(&format!("/api/v1/contacts/{c}")).await["erased_at"].is_string());
                        })
                    })
            })
        }),
        route(Method::GET, "/contacts/settings", Access::Perm(ContactsConfigure), |w, _| {
            Box::pin(async move {
                let f = fresh_field(w).await;
                Case::bare("/contacts/settings").then(move |_, a| {
                    Box::pin(async move { assert!(a.text.contains(&format!("data-field-id=\"{f}\"")), "{}", a.short()) })
                })
            })
        }),
        route(Method::POST, "/contacts/settings/fields", Access::Perm(ContactsConfigure), |w, _| {
            Box::pin(async move {
                let key = format!("p{}", w.uniq_digits());
                Case::form("/contacts/settings/fields", &[("key", &key), ("label", "Paged"), ("kind", "choice"), ("options", "a, b")])
                    .see_other("/contacts/settings?ok=fields")
                    .then(move |w, _| {
                        Box::pin(async move {
                            let all = w.get_a("/api/v1/contact-fields").await;
                            assert!(all.as_array().unwrap().iter().any(|x| x["key"] == key.as_str() && x["options"] == json!(["a", "b"])), "{all}");
                        })
                    })
            })
        })
        .cross(|w| {
            Box::pin(async move {
                let f = fresh_field(w).await;
                vec![Case::form("/contacts/settings/fields", &[("delete", &f)])]
            })
        }),
        route(Method::POST, "/contacts/settings/tags", Access::Perm(ContactsConfigure), |w, _| {
            Box::pin(async move {
                let name = w.uniq("paged tag");
                Case::form("/contacts/settings/tags", &[("name", &name)])
                    .see_other("/contacts/settings?ok=tags")
                    .then(move |w, _| {
                        Box::pin(async move {
                            let all = w.get_a("/api/v1/tags").await;
                            assert!(all.as_array().unwrap().iter().any(|x| x["name"] == name.as_str()), "{all}");
                        })
                    })
            })
        })
        .cross(|w| {
            Box::pin(async move {
                let t = fresh_tag(w).await;
                vec![Case::form("/contacts/settings/tags", &[("delete", &t)])]
            })
        }),
        route(Method::POST, "/contacts/settings/keywords", Access::Perm(ContactsConfigure), |_, _| {
            Box::pin(async move {
                Case::form("/contacts/settings/keywords", &[("opt_out_keywords", "stop, halt"), ("opt_in_keywords", "start"), ("opt_out_reply", "Bye."), ("opt_in_reply", "Hi.")])
                    .see_other("/contacts/settings?ok=keywords")
                    .then(|w, _| {
                        Box::pin(async move {
                            assert_eq!(w.get_a("/api/v1/audience/settings").await["opt_out_keywords"], json!(["STOP", "HALT"]));
                        })
                    })
            })
        }),
        route(Method::GET, "/contacts/exports", Access::Perm(ContactsExport), |w, _| {
            Box::pin(async move {
                let e = fresh_export(w, &w.a.admin.access).await;
                Case::bare("/contacts/exports").then(move |_, a| {
                    Box::pin(async move { assert!(a.text.contains(&format!("data-export-id=\"{e}\"")), "{}", a.short()) })
                })
            })
        }),
        route(Method::POST, "/contacts/exports", Access::Perm(ContactsExport), |w, _| {
            Box::pin(async move {
                let s = fresh_segment(w).await;
                Case::form("/contacts/exports", &[("segment_id", &s)])
                    .see_other("/contacts/exports?ok=requested")
                    .then(move |w, _| {
                        Box::pin(async move {
                            let all = w.get_a("/api/v1/contact-exports").await;
                            assert!(all.as_array().unwrap().iter().any(|x| x["segment_id"] == s.as_str()), "{all}");
                        })
                    })
            })
        })
        .cross(|w| {
            Box::pin(async move {
                let s = fresh_segment(w).await;
                vec![Case::form("/contacts/exports", &[("segment_id", &s)])]
            })
        }),
        route(Method::POST, "/contacts/exports/{export_id}/decision", Access::Perm(ContactsApproveExport), |w, _| {
            Box::pin(async move {
                let other = &w.person_without[&Permission::AuditRead].api.access;
                let e = fresh_export(w, other).await;
                Case::form(format!("/contacts/exports/{e}/decision"), &[("approve", "false")])
                    .see_other("/contacts/exports?ok=decided")
                    .then(move |w, _| {
                        Box::pin(async move {
                            let all = w.get_a("/api/v1/contact-exports").await;
                            assert!(all.as_array().unwrap().iter().any(|x| x["id"] == e.as_str() && x["status"] == "refused"), "{all}");
                        })
                    })
            })
        }),
        route(Method::GET, "/contacts", Access::Perm(ContactsRead), |w, _| {
            Box::pin(async move {
                let c = fresh_contact(w).await;
                Case::bare("/contacts?limit=100").then(move |_, a| {
                    Box::pin(async move {
                        assert!(a.text.contains(&format!("data-contact-id=\"{c}\"")), "{}", a.short());
                    })
                })
            })
        }),
        route(Method::GET, "/contacts/new", Access::Perm(ContactsWrite), |_, _| {
            Box::pin(async move {
                Case::bare("/contacts/new").then(|_, a| {
                    Box::pin(async move { assert!(a.text.contains("data-testid=\"contact-form\""), "{}", a.short()) })
                })
            })
        }),
        route(Method::POST, "/contacts", Access::Perm(ContactsWrite), |w, _| {
            Box::pin(async move {
                let phone = w.uniq_phone("+1415");
                let name = w.uniq("Paged contact");
                Case::form("/contacts", &[("name", &name), ("phone", &phone), ("email", "")])
                    .see_other_starting("/contacts/")
                    .then(move |w, a| {
                        Box::pin(async move {
                            let to = a.header("location").unwrap().trim_start_matches("/contacts/");
                            let id = to.split('?').next().unwrap();
                            let c = w.get_a(&format!("/api/v1/contacts/{id}")).await;
                            assert_eq!(c["name"], name.as_str(), "{c}");
                        })
                    })
            })
        }),
        route(Method::GET, "/contacts/{contact_id}", Access::Perm(ContactsRead), |w, _| {
            Box::pin(async move {
                let c = fresh_contact(w).await;
                Case::bare(format!("/contacts/{c}")).then(|_, a| {
                    Box::pin(async move { assert!(a.text.contains("data-testid=\"contact-summary\""), "{}", a.short()) })
                })
            })
        }),
        route(Method::POST, "/contacts/{contact_id}", Access::Perm(ContactsWrite), |w, _| {
            Box::pin(async move {
                let c = fresh_contact(w).await;
                Case::form(format!("/contacts/{c}"), &[("name", "Edited on the page"), ("company", "Paged Ltd")])
                    .see_other(format!("/contacts/{c}?ok=saved"))
                    .then(move |w, _| {
                        Box::pin(async move {
                            let v = w.get_a(&format!("/api/v1/contacts/{c}")).await;
                            assert_eq!((v["name"].as_str(), v["company"].as_str()), (Some("Edited on the page"), Some("Paged Ltd")), "{v}");
                        })
                    })
            })
        }),
        route(Method::POST, "/contacts/{contact_id}/tags", Access::Perm(ContactsWrite), |w, _| {
            Box::pin(async move {
                let c = fresh_contact(w).await;
                let t = fresh_tag(w).await;
                Case::form(format!("/contacts/{c}/tags"), &[("tag_id", &t), ("action", "add")])
                    .see_other(format!("/contacts/{c}?ok=tagged"))
                    .then(move |w, _| {
                        Box::pin(async move {
                            let v = w.get_a(&format!("/api/v1/contacts/{c}")).await;
                            assert!(v["tags"].as_array().unwrap().iter().any(|x| x["id"] == t.as_str()), "{v}");
                        })
                    })
            })
        })
        .cross(|w| {
            Box::pin(async move {
                // Org B's own contact with org A's tag: the tag is not found there.
                let b_contact = w
                    .app
                    .api(Method::POST, "/api/v1/contacts", Some(&w.b.admin.access), Some(json!({ "phone": w.uniq_phone("+1416") })))
                    .await
                    .1["id"]
                    .as_str()
                    .unwrap()
                    .to_owned();
                let t = fresh_tag(w).await;
                vec![Case::form(format!("/contacts/{b_contact}/tags"), &[("tag_id", &t), ("action", "add")])]
            })
        }),
        // -- message templates (API) --------------------------------------------------------
        route(Method::GET, "/api/v1/templates", Access::Perm(InboxRead), |w, _| {
            Box::pin(async move {
                fresh_template(w, &w.a.channel).await;
                Case::bare("/api/v1/templates?channel_id=".to_owned() + &w.a.channel).then(|_, a| {
                    Box::pin(async move {
                        assert!(a.json().as_array().is_some_and(|l| !l.is_empty()), "{}", a.short());
                    })
                })
            })
        }),
        route(Method::POST, "/api/v1/templates", Access::Perm(TemplatesManage), |w, _| {
            Box::pin(async move {
                let name = format!("matrix_new_{}", w.uniq_digits());
                Case::json("/api/v1/templates", json!({ "channel_id": w.a.channel, "template": template_body(&name) }))
                    .status(201)
                    .then(move |w, a| {
                        Box::pin(async move {
                            let id = a.json()["id"].as_str().unwrap().to_owned();
                            let t = w.get_a(&format!("/api/v1/templates/{id}")).await;
                            assert_eq!((t["name"].as_str(), t["status"].as_str()), (Some(name.as_str()), Some("DRAFT")));
                        })
                    })
            })
        })
        .cross(|w| {
            Box::pin(async move {
                vec![Case::json("/api/v1/templates", json!({ "channel_id": w.a.channel, "template": template_body("matrix_cross") }))]
            })
        }),
        route(Method::POST, "/api/v1/templates/samples", Access::Perm(TemplatesManage), |w, _| {
            Box::pin(async move {
                let (ctype, body) = common::simulator::multipart(&[
                    ("channel_id", None, None, w.a.channel.as_bytes()),
                    ("format", None, None, b"image"),
                    ("file", Some("sample.png"), Some("image/png"), b"\x89PNG\r\n\x1a\nmatrix sample"),
                ]);
                Case::raw("/api/v1/templates/samples", ctype, body)
                    .status(201)
                    .then(|_, a| {
                        Box::pin(async move {
                            let v = a.json();
                            assert_eq!((v["format"].as_str(), v["mime_type"].as_str(), v["size_bytes"].as_i64()), (Some("image"), Some("image/png"), Some(21)), "{v}");
                        })
                    })
            })
        })
        .cross(|w| {
            Box::pin(async move {
                // Org A's channel: not found for org B, nothing stored.
                let (ctype, body) = common::simulator::multipart(&[
                    ("channel_id", None, None, w.a.channel.as_bytes()),
                    ("format", None, None, b"image"),
                    ("file", Some("sample.png"), Some("image/png"), b"\x89PNG\r\n\x1a\ncross"),
                ]);
                vec![Case::raw("/api/v1/templates/samples", ctype, body)]
            })
        }),
        route(Method::GET, "/api/v1/templates/{template_id}", Access::Perm(InboxRead), |w, _| {
            Box::pin(async move {
                let id = fresh_template(w, &w.a.channel).await;
                Case::bare(format!("/api/v1/templates/{id}")).then(|_, a| {
                    Box::pin(async move {
                        assert!(a.json()["preview"].as_str().unwrap().contains("Your visit is at 10:30 today."), "{}", a.short());
                    })
                })
            })
        }),
        route(Method::PUT, "/api/v1/templates/{template_id}", Access::Perm(TemplatesManage), |w, _| {
            Box::pin(async move {
                let id = fresh_template(w, &w.a.channel).await;
                let name = w.get_a(&format!("/api/v1/templates/{id}")).await["name"].as_str().unwrap().to_owned();
                let mut body = template_body(&name);
                body["footer"] = json!("Edited by the matrix");
                Case::json(format!("/api/v1/templates/{id}"), body).then(|_, a| {
                    Box::pin(async move {
                        assert_eq!(a.json()["content"]["footer"], "Edited by the matrix", "{}", a.short());
                    })
                })
            })
        }),
        route(Method::DELETE, "/api/v1/templates/{template_id}", Access::Perm(TemplatesManage), |w, _| {
            Box::pin(async move {
                let id = fresh_template(w, &w.a.channel).await;
                Case::bare(format!("/api/v1/templates/{id}")).status(204).then(move |w, _| {
                    Box::pin(async move {
                        let (s, _) = w.app.api(Method::GET, &format!("/api/v1/templates/{id}"), Some(&w.a.admin.access), None).await;
                        assert_eq!(s, StatusCode::NOT_FOUND);
                    })
                })
            })
        }),
        route(Method::POST, "/api/v1/templates/{template_id}/submit", Access::Perm(TemplatesManage), |w, p| {
            Box::pin(async move {
                let channel = match p {
                    Purpose::Guard => w.a.channel.clone(),
                    Purpose::Allowed => w.sim_a().await.id,
                };
                let id = fresh_template(w, &channel).await;
                Case::bare(format!("/api/v1/templates/{id}/submit")).status(202).then(|_, a| {
                    Box::pin(async move {
                        assert_eq!(a.json()["status"], "PENDING", "{}", a.short());
                        assert!(a.json()["provider_template_id"].as_str().is_some());
                    })
                })
            })
        }),
        route(Method::GET, "/api/v1/templates/{template_id}/clicks", Access::Perm(TemplatesManage), |w, _| {
            Box::pin(async move {
                let (id, _) = tracked_link(w).await;
                Case::bare(format!("/api/v1/templates/{id}/clicks")).then(|_, a| {
                    Box::pin(async move {
                        assert_eq!(a.json()[0]["clicks"], 0, "{}", a.short());
                    })
                })
            })
        }),
        route(Method::GET, "/api/v1/messages/{message_id}/clicks", Access::Perm(InboxRead), |w, _| {
            Box::pin(async move {
                Case::bare(format!("/api/v1/messages/{}/clicks", w.a.message)).then(|_, a| {
                    Box::pin(async move { assert!(a.json().is_array(), "{}", a.short()) })
                })
            })
        }),
        route(Method::POST, "/api/v1/channels/{channel_id}/templates/sync", Access::Perm(TemplatesManage), |w, p| {
            Box::pin(async move {
                let channel = match p {
                    Purpose::Guard => w.a.channel.clone(),
                    Purpose::Allowed => w.sim_a().await.id,
                };
                Case::bare(format!("/api/v1/channels/{channel}/templates/sync")).then(|_, a| {
                    Box::pin(async move { assert_eq!(a.json()["listed"], 0, "{}", a.short()) })
                })
            })
        }),
        route(Method::GET, "/r/{code}", Access::Public, |w, _| {
            Box::pin(async move {
                let (_, code) = tracked_link(w).await;
                Case::bare(format!("/r/{code}")).status(302).then(move |w, a| {
                    Box::pin(async move {
                        assert_eq!(a.header("location"), Some("https://maps.example/clinic"));
                        assert_eq!(w.app.get("/r/fdl_made_up_code").await.status(), StatusCode::NOT_FOUND);
                    })
                })
            })
        }),
        route(Method::POST, "/simulator/graph/{version}/{node}/uploads", Access::Public, |w, _| {
            Box::pin(async move {
                let ch = w.sim_a().await;
                let app = ch.answer["app_id"].as_str().unwrap().to_owned();
                Case::bare(format!("/simulator/graph/v23.0/{app}/uploads?file_name=a.png&file_length=12&file_type=image/png"))
                    .header("authorization", &format!("OAuth {}", ch.access_token))
                    .then(|_, a| {
                        Box::pin(async move {
                            let id = a.json()["id"].as_str().unwrap_or_default().to_owned();
                            assert!(id.starts_with("upload:") && id.contains("?sig="), "{}", a.short());
                        })
                    })
            })
        }),
        route(Method::POST, "/simulator/graph/{version}/{node}", Access::Public, |w, _| {
            Box::pin(async move {
                let ch = w.sim_a().await;
                let (_, v) = w.app.graph_call(Method::POST, &format!("/{}/message_templates", ch.waba_id), Some(&ch.access_token),
                    Some(json!({ "name": "matrix_edit", "language": "en", "category": "UTILITY", "components": [{ "type": "BODY", "text": "Your visit is confirmed." }] }))).await;
                let id = v["id"].as_str().unwrap().to_owned();
                Case::json(format!("/simulator/graph/v23.0/{id}"), json!({ "components": [{ "type": "BODY", "text": "Your visit is confirmed again." }] }))
                    .header("authorization", &format!("Bearer {}", ch.access_token))
                    .then(|_, a| Box::pin(async move { assert_eq!(a.json()["success"], true, "{}", a.short()) }))
            })
        }),
        // -- message templates (pages) ------------------------------------------------------
        route(Method::GET, "/templates", Access::Perm(TemplatesManage), |w, _| {
            Box::pin(async move {
                fresh_template(w, &w.a.channel).await;
                Case::bare("/templates").then(|_, a| {
                    Box::pin(async move { assert!(a.text.contains("data-testid=\"templates\""), "{}", a.short()) })
                })
            })
        }),
        route(Method::GET, "/templates/new", Access::Perm(TemplatesManage), |_, _| {
            Box::pin(async move {
                Case::bare("/templates/new").then(|_, a| {
                    Box::pin(async move { assert!(a.text.contains("template-preview"), "{}", a.short()) })
                })
            })
        }),
        route(Method::POST, "/templates", Access::Perm(TemplatesManage), |w, _| {
            Box::pin(async move {
                let name = format!("matrix_web_{}", w.uniq_digits());
                form_case("/templates", template_form(&w.a.channel, &name))
                    .see_other_starting("/templates/")
                    .then(move |w, a| {
                        Box::pin(async move {
                            let id = a.header("location").unwrap().strip_prefix("/templates/").unwrap().split('?').next().unwrap().to_owned();
                            assert_eq!(w.get_a(&format!("/api/v1/templates/{id}")).await["name"], name.as_str());
                        })
                    })
            })
        })
        .cross(|w| {
            Box::pin(async move { vec![form_case("/templates", template_form(&w.a.channel, "matrix_cross_web"))] })
        }),
        route(Method::GET, "/templates/{template_id}", Access::Perm(TemplatesManage), |w, _| {
            Box::pin(async move {
                let id = fresh_template(w, &w.a.channel).await;
                Case::bare(format!("/templates/{id}")).then(|_, a| {
                    Box::pin(async move { assert!(a.text.contains("Your visit is at 10:30 today."), "{}", a.short()) })
                })
            })
        }),
        route(Method::POST, "/templates/{template_id}", Access::Perm(TemplatesManage), |w, _| {
            Box::pin(async move {
                let id = fresh_template(w, &w.a.channel).await;
                let name = w.get_a(&format!("/api/v1/templates/{id}")).await["name"].as_str().unwrap().to_owned();
                let mut form = template_form(&w.a.channel, &name);
                form.push(("footer".into(), "Saved on the page".into()));
                form_case(format!("/templates/{id}"), form)
                    .see_other(format!("/templates/{id}?ok=saved"))
                    .then(move |w, _| {
                        Box::pin(async move {
                            assert_eq!(w.get_a(&format!("/api/v1/templates/{id}")).await["content"]["footer"], "Saved on the page");
                        })
                    })
            })
        }),
        route(Method::POST, "/templates/{template_id}/submit", Access::Perm(TemplatesManage), |w, p| {
            Box::pin(async move {
                let channel = match p {
                    Purpose::Guard => w.a.channel.clone(),
                    Purpose::Allowed => w.sim_a().await.id,
                };
                let id = fresh_template(w, &channel).await;
                Case::form(format!("/templates/{id}/submit"), &[]).see_other(format!("/templates/{id}?ok=submitted"))
            })
        }),
        route(Method::POST, "/templates/{template_id}/delete", Access::Perm(TemplatesManage), |w, _| {
            Box::pin(async move {
                let id = fresh_template(w, &w.a.channel).await;
                Case::form(format!("/templates/{id}/delete"), &[]).see_other("/templates?ok=deleted").then(move |w, _| {
                    Box::pin(async move {
                        let (s, _) = w.app.api(Method::GET, &format!("/api/v1/templates/{id}"), Some(&w.a.admin.access), None).await;
                        assert_eq!(s, StatusCode::NOT_FOUND);
                    })
                })
            })
        }),
        route(Method::POST, "/templates/sync", Access::Perm(TemplatesManage), |w, p| {
            Box::pin(async move {
                let channel = match p {
                    Purpose::Guard => w.a.channel.clone(),
                    Purpose::Allowed => w.sim_a().await.id,
                };
                Case::form("/templates/sync", &[("channel_id", &channel)]).see_other("/templates?ok=synced")
            })
        })
        .cross(|w| Box::pin(async move { vec![Case::form("/templates/sync", &[("channel_id", &w.a.channel)])] })),
    ]
}

/// A written template's body (a tracked link button, one variable).
fn template_body(name: &str) -> Value {
    json!({ "name": name, "language": "en", "category": "UTILITY",
        "body": { "text": "Your visit is at {{1}} today.", "examples": ["10:30"] },
        "buttons": [{ "type": "url", "text": "Map", "url": "https://maps.example/clinic", "track": true }] })
}

/// The editor form for the same template.
fn template_form(channel: &str, name: &str) -> Vec<(String, String)> {
    [
        ("channel_id", channel),
        ("name", name),
        ("language", "en"),
        ("category", "UTILITY"),
        ("header_format", "none"),
        ("body_text", "Your visit is at {{1}} today."),
        ("body_examples", "10:30"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect()
}

/// A form post of owned fields.
fn form_case(path: impl Into<String>, fields: Vec<(String, String)>) -> Case {
    Case {
        body: Body::Form(fields),
        ..Case::bare(path)
    }
}

/// A new draft template of org A's on `channel`: its id.
async fn fresh_template(w: &World, channel: &str) -> String {
    let name = format!("matrix_tpl_{}", w.uniq_digits());
    w.ok(
        Method::POST,
        "/api/v1/templates",
        Some(json!({ "channel_id": channel, "template": template_body(&name) })),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A template of org A's with one tracked link sent (to a new contact): its id and the code.
async fn tracked_link(w: &World) -> (String, String) {
    let id = fresh_template(w, &w.a.channel).await;
    let key = w.a.channel_url.rsplit('/').next().unwrap();
    let t = w.app.db.store.webhook_target(key).await.unwrap().unwrap();
    let mut tx = w.app.db.store.begin(&t.ctx).await.unwrap();
    let phone = format!(
        "+1415555{:04}",
        w.seq.fetch_add(1, Ordering::Relaxed) % 10_000
    );
    let contact = tx
        .upsert_contact(&frontdesk_store::CustomerIdentity {
            phone: Some(frontdesk_domain::E164::parse(&phone).unwrap()),
            ..Default::default()
        })
        .await
        .unwrap();
    let code = frontdesk_store::new_link_code();
    tx.create_tracked_links(
        frontdesk_domain::TemplateId::parse(&id).unwrap(),
        frontdesk_domain::MessageId::new(),
        contact,
        &[frontdesk_domain::template::TrackedLink {
            card: None,
            button: 0,
            code: code.clone(),
            destination: "https://maps.example/clinic".into(),
        }],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    (id, code)
}

/// The value of every secret the matrix's channels are given; no answer may carry it.
const CHANNEL_SECRET: &str = "matrix-channel-secret-7b1e0c44";

/// A Cloud API channel's creation body.
fn channel_body(phone_number_id: &str) -> Value {
    json!({
        "provider": "cloud", "name": format!("Number {phone_number_id}"), "phone_number_id": phone_number_id,
        "access_token": CHANNEL_SECRET, "app_secret": CHANNEL_SECRET, "verify_token": CHANNEL_SECRET,
        // Nothing listens there: sends queued by the matrix never leave the machine.
        "api_base_url": "http://127.0.0.1:9",
    })
}

/// Connects a channel for `admin`'s organisation: its id and callback URL.
async fn create_channel(app: &TestApp, admin: &ApiUser, phone_number_id: &str) -> (String, String) {
    let (s, v) = app
        .api(
            Method::POST,
            "/api/v1/channels",
            Some(&admin.access),
            Some(channel_body(phone_number_id)),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    (
        v["channel"]["id"].as_str().unwrap().to_owned(),
        v["webhook"]["callback_url"].as_str().unwrap().to_owned(),
    )
}

/// An approved template on org A's number (`name|language`, as the inbox form sends it).
async fn approve_template(w: &World) -> String {
    let key = w.a.channel_url.rsplit('/').next().unwrap();
    let t = w.app.db.store.webhook_target(key).await.unwrap().unwrap();
    let mut tx = w.app.db.store.begin(&t.ctx).await.unwrap();
    let channel = tx.channel(t.channel).await.unwrap();
    tx.set_template_status(&frontdesk_store::TemplateStatus {
        waba_id: &channel.waba_id,
        name: "appointment_reminder",
        language: "en",
        provider_template_id: None,
        status: "APPROVED",
        reason: None,
        category: Some("UTILITY"),
    })
    .await
    .unwrap();
    tx.commit().await.unwrap();
    "appointment_reminder|en".into()
}

/// A label of org A's (created once).
async fn a_label(w: &World) -> String {
    let key = w.a.channel_url.rsplit('/').next().unwrap();
    let t = w.app.db.store.webhook_target(key).await.unwrap().unwrap();
    let mut tx = w.app.db.store.begin(&t.ctx).await.unwrap();
    let label = match tx
        .labels()
        .await
        .unwrap()
        .into_iter()
        .find(|l| l.name == "Matrix")
    {
        Some(l) => l,
        None => tx.create_label("Matrix", "#0e7c66").await.unwrap(),
    };
    tx.commit().await.unwrap();
    label.id.to_string()
}

/// The bytes of the image every seeded message carries.
const SEEDED_IMAGE: &[u8] = b"JFIF: a tiny test image";

/// A customer's image message on the channel of `callback_url`, its image stored: the
/// message and media ids.
async fn seed_inbound_image(app: &TestApp, callback_url: &str) -> (String, String) {
    let key = callback_url.rsplit('/').next().unwrap();
    let t = app.db.store.webhook_target(key).await.unwrap().unwrap();
    let mut tx = app.db.store.begin(&t.ctx).await.unwrap();
    let contact = tx
        .upsert_contact(&frontdesk_store::CustomerIdentity {
            phone: Some(frontdesk_domain::E164::parse("+919876500000").unwrap()),
            ..Default::default()
        })
        .await
        .unwrap();
    let wamid = format!("wamid.{}", uuid::Uuid::new_v4());
    let frontdesk_store::Inbound::New { message, media, .. } = tx
        .record_inbound(
            t.channel,
            contact,
            &frontdesk_store::InboundRecord {
                provider_message_id: wamid,
                kind: "image".into(),
                content: "{\"type\":\"image\"}".into(),
                preview: "[image]".into(),
                reply_to: None,
                provider_at: frontdesk_store::now_micros(),
                media: Some(frontdesk_store::NewMedia {
                    provider_media_id: "1234".into(),
                    mime_type: Some("image/jpeg".into()),
                    sha256: None,
                    filename: None,
                }),
            },
        )
        .await
        .unwrap()
    else {
        panic!("a new message")
    };
    let media = media.unwrap();
    let sha = app.state.blobs().put(SEEDED_IMAGE).unwrap();
    tx.media_stored(media, &sha, SEEDED_IMAGE.len() as i64, "image/jpeg")
        .await
        .unwrap();
    // The media is here already: no download job for the worker.
    tx.commit().await.unwrap();
    (message.to_string(), media.to_string())
}

fn base32(s: &str) -> Vec<u8> {
    data_encoding::BASE32_NOPAD.decode(s.as_bytes()).unwrap()
}

// ---------------------------------------------------------------------------------------
// The world: two organisations and the people the checks need.
// ---------------------------------------------------------------------------------------

/// A Cloud API channel made for one webhook call, in an organisation of its own.
struct Hook {
    ctx: frontdesk_store::TenantCtx,
    key: String,
    app_secret: String,
    verify_token: String,
}

impl World {
    /// A fresh channel (through the store: its admin API is not what is checked here).
    async fn webhook_channel(&self) -> Hook {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let (_, ctx) = self
            .app
            .db
            .store
            .create_organisation(
                &format!("Webhook clinic {n}"),
                &format!("webhook-clinic-{n}"),
                frontdesk_domain::Actor::System("matrix".into()),
            )
            .await
            .unwrap();
        let (app_secret, verify_token) = (
            format!("matrix-app-secret-{n}"),
            format!("matrix verify {n}"),
        );
        let mut tx = self.app.db.store.begin(&ctx).await.unwrap();
        let (_, key) = tx
            .create_channel(frontdesk_store::NewChannel {
                name: format!("Reception {n}"),
                provider: frontdesk_store::Provider::Cloud,
                phone_number_id: format!("10654035{n}"),
                waba_id: "102290129340398".into(),
                display_number: "+15550783881".into(),
                api_base_url: "https://graph.facebook.com".into(),
                api_version: "v23.0".into(),
                simulated: false,
                access_token: secrecy::SecretString::from(format!("EAAG-matrix-{n}")),
                app_secret: Some(secrecy::SecretString::from(app_secret.clone())),
                verify_token: Some(secrecy::SecretString::from(verify_token.clone())),
                throughput_mps: 80,
            })
            .await
            .unwrap();
        tx.commit().await.unwrap();
        Hook {
            ctx,
            key: secrecy::ExposeSecret::expose_secret(&key).to_owned(),
            app_secret,
            verify_token,
        }
    }

    /// A name nothing else in the world has.
    fn uniq(&self, prefix: &str) -> String {
        format!("{prefix} {}", self.seq.fetch_add(1, Ordering::Relaxed))
    }

    /// An email address nothing else in the world has, at `<domain>.matrix.example`.
    fn email(&self, local: &str, domain: &str) -> String {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        format!("{local}-{n}@{domain}.matrix.example")
    }

    /// GET as the holder of `token`; must answer 200.
    async fn get_as(&self, token: &str, path: &str) -> Value {
        let (s, v) = self.app.api(Method::GET, path, Some(token), None).await;
        assert_eq!(s, StatusCode::OK, "GET {path}: {v}");
        v
    }

    /// GET as org A's admin.
    async fn get_a(&self, path: &str) -> Value {
        self.get_as(&self.a.admin.access, path).await
    }

    /// A call as org A's admin that must succeed.
    async fn ok(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let (s, v) = self
            .app
            .api(method.clone(), path, Some(&self.a.admin.access), body)
            .await;
        assert!(s.is_success(), "{method} {path}: {s} {v}");
        v
    }

    /// A phone number nothing else in the world has, after `prefix` (`+1415`).
    fn uniq_phone(&self, prefix: &str) -> String {
        format!("{prefix}{:07}", self.seq.fetch_add(1, Ordering::Relaxed))
    }

    /// Digits nothing else in the world has (a phone number id).
    fn uniq_digits(&self) -> String {
        format!("9000{}", self.seq.fetch_add(1, Ordering::Relaxed))
    }

    /// A new channel of org A's: its id and callback URL.
    async fn fresh_channel(&self) -> (String, String) {
        create_channel(&self.app, &self.a.admin, &self.uniq_digits()).await
    }

    /// The id of the channel a callback URL names (its key works).
    async fn channel_of_callback(&self, url: &str) -> String {
        self.webhook_target(url).await.channel.to_string()
    }

    async fn webhook_target(&self, callback_url: &str) -> frontdesk_store::WebhookTarget {
        let key = callback_url
            .strip_prefix(&self.app.url("/webhooks/"))
            .unwrap_or_else(|| panic!("{callback_url} is a callback URL of this server"));
        self.app
            .db
            .store
            .webhook_target(key)
            .await
            .unwrap()
            .expect("the key names a channel")
    }

    /// A webhook of a new channel of org A's, stored and failed: the channel's target and
    /// the inbox row's id.
    async fn fresh_failed_webhook(&self) -> (frontdesk_store::WebhookTarget, String) {
        let (_, url) = self.fresh_channel().await;
        let t = self.webhook_target(&url).await;
        let body = format!(
            "{{\"matrix\":{}}}",
            self.seq.fetch_add(1, Ordering::Relaxed)
        );
        let stored = self
            .app
            .db
            .store
            .store_webhooks(&[(&t.ctx, t.channel, body.as_bytes())])
            .await
            .unwrap();
        let frontdesk_store::Stored::New(id) = stored[0] else {
            panic!("a new body")
        };
        let mut tx = self.app.db.store.begin(&t.ctx).await.unwrap();
        tx.finish_inbox(id, Some("matrix: unparseable"))
            .await
            .unwrap();
        tx.commit().await.unwrap();
        (t, id.to_string())
    }

    /// Whether an inbox row is queued to be processed (again).
    async fn is_pending(&self, t: &frontdesk_store::WebhookTarget, id: &str) -> bool {
        self.app
            .db
            .store
            .inbox_where(&t.ctx, Some(frontdesk_store::InboxStatus::Pending), 1000)
            .await
            .unwrap()
            .iter()
            .any(|r| r.id.to_string() == id)
    }

    async fn assert_channel_gone(&self, id: &str) {
        let (s, v) = self
            .app
            .api(
                Method::GET,
                &format!("/api/v1/channels/{id}"),
                Some(&self.a.admin.access),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND, "the channel is still there: {v}");
    }

    async fn assert_token_dead(&self, token: &str) {
        let (s, v) = self
            .app
            .api(Method::GET, "/api/v1/me", Some(token), None)
            .await;
        assert_eq!(
            s,
            StatusCode::UNAUTHORIZED,
            "the credential still works: {v}"
        );
    }

    async fn fresh_role(&self) -> String {
        let v = self
            .ok(
                Method::POST,
                "/api/v1/roles",
                Some(json!({ "name": self.uniq("temp role"), "permissions": ["inbox.read"] })),
            )
            .await;
        v["id"].as_str().unwrap().to_owned()
    }

    async fn fresh_team(&self) -> String {
        let v = self
            .ok(
                Method::POST,
                "/api/v1/teams",
                Some(json!({ "name": self.uniq("temp team") })),
            )
            .await;
        v["id"].as_str().unwrap().to_owned()
    }

    /// An invitation of org A's (agent role): its id and token.
    async fn fresh_invitation(&self, email: &str) -> (String, String) {
        let v = self
            .ok(
                Method::POST,
                "/api/v1/invitations",
                Some(json!({ "email": email, "role_id": self.a.agent_role })),
            )
            .await;
        let url = url::Url::parse(v["invite_url"].as_str().unwrap()).unwrap();
        let token = url
            .query_pairs()
            .find(|(k, _)| k == "token")
            .unwrap()
            .1
            .into_owned();
        (v["invitation"]["id"].as_str().unwrap().to_owned(), token)
    }

    /// An API key of org A's: its id and the key.
    async fn fresh_key(&self) -> (String, String) {
        let v = self
            .ok(
                Method::POST,
                "/api/v1/api-keys",
                Some(json!({ "name": self.uniq("temp key"), "scopes": ["contacts.read"] })),
            )
            .await;
        (
            v["api_key"]["id"].as_str().unwrap().to_owned(),
            v["key"].as_str().unwrap().to_owned(),
        )
    }

    /// A new simulated number of org A's, with its secrets.
    async fn sim_a(&self) -> common::simulator::SimChannel {
        let name = self.uniq("Matrix number");
        self.app.provision_sim(&self.a.admin, &name, None).await
    }

    /// A fake customer of a new simulated number of org A's; its id.
    async fn sim_customer_a(&self) -> String {
        let ch = self.sim_a().await;
        let name = self.uniq("Matrix customer");
        let r = self
            .app
            .web_post(
                &self.a.web,
                &format!("/simulator/numbers/{}/customers", ch.id),
                &[("name", &name), ("phone", "+14155550100"), ("username", "")],
            )
            .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let to = r.headers()["location"].to_str().unwrap();
        to.strip_prefix("/simulator/customers/").unwrap().to_owned()
    }

    /// The simulator page as org A's admin sees it.
    async fn sim_page(&self) -> String {
        self.app
            .web_get(&self.a.web, "/simulator")
            .await
            .text()
            .await
            .unwrap()
    }

    /// A customer's chat as JSON, newest message first.
    async fn sim_chat(&self, customer: &str) -> Value {
        let mut v = self
            .get_a(&format!("/api/v1/simulator/customers/{customer}/messages"))
            .await;
        if let Some(a) = v["messages"].as_array_mut() {
            a.reverse();
        }
        v
    }

    /// A new agent of org A (a throw-away person).
    async fn fresh_member(&self) -> ApiUser {
        let email = self.email("member", "a");
        self.app.add_member(&self.a.admin, &email, "agent").await
    }

    /// A new API session acting in `org`: its access token and session id.
    async fn api_session(&self, email: &str, password: &str, org: &str) -> (String, String) {
        api_session(&self.app, email, password, org).await
    }

    async fn member_of_a(&self, user_id: &str) -> Option<Value> {
        let v = self.get_a("/api/v1/members").await;
        v.as_array()
            .unwrap()
            .iter()
            .find(|m| m["user_id"] == user_id)
            .cloned()
    }

    async fn team_of_a(&self, id: &str) -> Option<Value> {
        let v = self.get_a("/api/v1/teams").await;
        v.as_array()
            .unwrap()
            .iter()
            .find(|t| t["id"] == id)
            .cloned()
    }

    async fn invitation_of_a(&self, id: &str) -> Option<Value> {
        let v = self.get_a("/api/v1/invitations").await;
        v.as_array()
            .unwrap()
            .iter()
            .find(|i| i["id"] == id)
            .cloned()
    }

    async fn role_named(&self, name: &str) -> Option<Value> {
        let v = self.get_a("/api/v1/roles").await;
        v.as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .cloned()
    }

    /// Team membership by org B's admin: A's team with B's member, B's team with A's member.
    fn team_member_cross_paths(&self) -> Vec<Case> {
        vec![
            Case::bare(format!(
                "/api/v1/teams/{}/members/{}",
                self.a.team, self.b.member.user_id
            )),
            Case::bare(format!(
                "/api/v1/teams/{}/members/{}",
                self.b.team, self.a.member.user_id
            )),
        ]
    }

    /// Turns two-factor sign-in on for `u` over the API; returns the secret.
    async fn enable_totp(&self, u: &ApiUser) -> Vec<u8> {
        enable_totp(&self.app, &self.totp, u).await
    }

    /// The token of the first link in the mail to `to` whose subject has `subject`.
    async fn mail_token(&self, to: &str, subject: &str, path: &str) -> String {
        let mail = self.mail.wait_for(to, subject, 0).await;
        let link = mail
            .link(&self.app.url(path))
            .unwrap_or_else(|| panic!("no {path} link in {:?}", mail.text()));
        let url = url::Url::parse(&link).unwrap();
        url.query_pairs()
            .find(|(k, _)| k == "token")
            .unwrap()
            .1
            .into_owned()
    }

    /// Asks for a password reset for `email` and returns the token from the mail.
    async fn reset_token(&self, email: &str) -> String {
        let (s, _) = self
            .app
            .api(
                Method::POST,
                "/api/v1/auth/password-reset",
                None,
                Some(json!({ "email": email })),
            )
            .await;
        assert_eq!(s, StatusCode::ACCEPTED);
        self.mail_token(email, "Reset your", "/password/reset")
            .await
    }

    /// The browser session a response started: its cookie, enough for GETs.
    fn web_session(&self, a: &Answer) -> WebSession {
        WebSession {
            cookie_name: "fd_session".into(),
            cookie: a.cookie("fd_session").expect("a session cookie"),
            csrf: String::new(),
        }
    }

    /// Everything of both organisations a cross-tenant request could touch, as their
    /// admins see it (last-used times left out), including the head of each audit chain:
    /// a refused request writes nothing anywhere.
    async fn snapshot(&self) -> BTreeMap<String, Value> {
        let mut out = BTreeMap::new();
        for (name, org) in [("A", &self.a), ("B", &self.b)] {
            for path in [
                "/api/v1/org",
                "/api/v1/roles",
                "/api/v1/members",
                "/api/v1/teams",
                "/api/v1/invitations",
                "/api/v1/api-keys",
                "/api/v1/channels",
                "/api/v1/me/sessions",
                "/api/v1/audit-events?limit=1",
            ] {
                let mut v = self.get_as(&org.admin.access, path).await;
                strip(&mut v, &["last_used_at", "last_seen_at", "current"]);
                out.insert(format!("{name} {path}"), v);
            }
        }
        out
    }

    /// Sends `case` for `method` with `cred`: the JSON body, or the form with the
    /// session's CSRF field (anonymous forms get a double-submit pair).
    async fn send(&self, method: &Method, case: &Case, cred: Cred<'_>) -> Answer {
        let mut req = self
            .app
            .client
            .request(method.clone(), self.app.url(&case.path));
        let mut cookies = Vec::new();
        let mut csrf = None;
        match cred {
            Cred::None => {}
            Cred::Bearer(t) => req = req.bearer_auth(t),
            Cred::Web(s) => {
                cookies.push(format!("{}={}", s.cookie_name, s.cookie));
                csrf = Some(s.csrf.clone());
                req = req.header("accept", "text/html");
            }
        }
        match &case.body {
            Body::Empty => {}
            Body::Json(v) => req = req.json(v),
            Body::Signed { bytes, headers } => {
                for (k, v) in headers {
                    req = req.header(k.as_str(), v.as_str());
                }
                req = req.body(bytes.clone());
            }
            Body::Raw(content_type, bytes) => {
                if let Some(t) = &csrf {
                    req = req.header("x-csrf-token", t);
                }
                req = req.header("content-type", content_type).body(bytes.clone());
            }
            Body::Form(fields) => {
                if matches!(cred, Cred::None) {
                    cookies.push(format!("fd_csrf={}", self.presession));
                    csrf = Some(self.presession.clone());
                }
                let mut all: Vec<(String, String)> = Vec::new();
                if let Some(t) = csrf {
                    all.push(("_csrf".into(), t));
                }
                all.extend(fields.iter().cloned());
                req = req.form(&all);
            }
        }
        if !cookies.is_empty() {
            req = req.header("cookie", cookies.join("; "));
        }
        for (k, v) in &case.headers {
            req = req.header(k, v);
        }
        Answer::read(req.send().await.unwrap()).await
    }
}

fn strip(v: &mut Value, keys: &[&str]) {
    match v {
        Value::Object(m) => {
            for k in keys {
                m.remove(*k);
            }
            for x in m.values_mut() {
                strip(x, keys);
            }
        }
        Value::Array(a) => {
            for x in a {
                strip(x, keys);
            }
        }
        _ => {}
    }
}

async fn api_session(app: &TestApp, email: &str, password: &str, org: &str) -> (String, String) {
    let (s, v) = app
        .api(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({ "email": email, "password": password, "org_id": org })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let token = v["access_token"].as_str().unwrap().to_owned();
    let (s, sessions) = app
        .api(Method::GET, "/api/v1/me/sessions", Some(&token), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{sessions}");
    let id = sessions
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == true)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    (token, id)
}

async fn enable_totp(app: &TestApp, totp: &Totp, u: &ApiUser) -> Vec<u8> {
    let (s, v) = app
        .api(Method::POST, "/api/v1/me/totp/setup", Some(&u.access), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let secret = base32(v["secret"].as_str().unwrap());
    let code = totp.code(&secret).await;
    let (s, v) = app
        .api(
            Method::POST,
            "/api/v1/me/totp/enable",
            Some(&u.access),
            Some(json!({ "code": code })),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    secret
}

/// The screen link a "link created" page shows: its id and token.
fn screen_link_in(html: &str) -> (String, String) {
    let at = html
        .find("data-testid=\"screen-link-url\"")
        .expect("the screen link");
    let start = html[..at].rfind('<').unwrap();
    let tag = &html[start..start + html[start..].find('>').unwrap()];
    let attr = |name: &str| {
        let from = tag.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
        tag[from..].split('"').next().unwrap().to_owned()
    };
    let url = attr("value");
    let token = url.rsplit('/').next().unwrap().to_owned();
    assert!(token.starts_with("fdscr_"), "{url}");
    (attr("data-link-id"), token)
}

/// A fresh screen link to org A's standing queue, made on the board as its admin.
async fn fresh_screen_link(w: &World) -> (String, String) {
    let r = w
        .app
        .web_post(
            &w.a.web,
            &format!("/queues/{}/screen-links", w.a.queue),
            &[("name", "Matrix TV")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    screen_link_in(&r.text().await.unwrap())
}

/// A queue of the admin's organisation on a channel, with one walk-in waiting: their ids.
async fn create_queue(
    app: &TestApp,
    admin: &ApiUser,
    channel: &str,
    name: &str,
) -> (String, String) {
    let (s, q) = app
        .api(
            Method::POST,
            "/api/v1/queues",
            Some(&admin.access),
            Some(
                json!({ "channel_id": channel, "name": name, "keywords": [name],
                        "token_prefix": "A", "daily_cap": 500, "position_step": 1 }),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{q}");
    let id = q["id"].as_str().unwrap().to_owned();
    let token = check_in_walk_in(app, admin, &id).await;
    (id, token)
}

async fn check_in_walk_in(app: &TestApp, admin: &ApiUser, queue: &str) -> String {
    let (s, t) = app
        .api(
            Method::POST,
            &format!("/api/v1/queues/{queue}/check-in"),
            Some(&admin.access),
            Some(json!({ "name": "Walk-in" })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{t}");
    t["token"]["id"].as_str().unwrap().to_owned()
}

async fn org(app: &TestApp, name: &str, domain: &str) -> Org {
    let admin = app.signup(name, &format!("admin@{domain}")).await;
    let id = admin.org_id.clone().unwrap();
    let web = app.web_login(&admin.email, PASSWORD).await;
    let member = app
        .add_member(&admin, &format!("agent@{domain}"), "agent")
        .await;
    let (_, roles) = app
        .api(Method::GET, "/api/v1/roles", Some(&admin.access), None)
        .await;
    let role = |builtin: &str| {
        roles
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["builtin"] == builtin)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (s, team) = app
        .api(
            Method::POST,
            "/api/v1/teams",
            Some(&admin.access),
            Some(json!({ "name": "Front desk" })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{team}");
    let (_, spare_session) = api_session(app, &admin.email, PASSWORD, &id).await;
    let (channel, channel_url) = create_channel(app, &admin, "1000").await;
    let (message, media) = seed_inbound_image(app, &channel_url).await;
    let (queue, token) = create_queue(app, &admin, &channel, "Dr Matrix").await;
    Org {
        queue,
        token,
        channel,
        channel_url,
        message,
        media,
        manager_role: role("manager"),
        agent_role: role("agent"),
        team: team["id"].as_str().unwrap().to_owned(),
        id,
        admin,
        web,
        member,
        spare_session,
    }
}

async fn build_world(app: TestApp, needed: &BTreeSet<Permission>) -> World {
    let mail = SmtpSink::start().await;
    mail.configure(&app.db.store).await;
    let r = app.get("/login").await;
    let presession = common::users::set_cookie_value(&r, "fd_csrf").expect("pre-session cookie");

    // Names sort: org A first among its admin's organisations, whatever else gets created.
    let a = org(&app, "Aardvark clinic", "a.matrix.example").await;
    let b = org(&app, "Bramble dental", "b.matrix.example").await;
    let a2_name = "Zed second organisation".to_owned();
    let (s, a2) = app
        .api(
            Method::POST,
            "/api/v1/organisations",
            Some(&a.admin.access),
            Some(json!({ "name": a2_name })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{a2}");

    let all: Vec<&str> = Permission::ALL.iter().map(|p| p.as_str()).collect();
    let mut key_without = HashMap::new();
    for p in Permission::ALL {
        let scopes: Vec<&str> = all.iter().copied().filter(|n| *n != p.as_str()).collect();
        let (s, v) = app
            .api(
                Method::POST,
                "/api/v1/api-keys",
                Some(&a.admin.access),
                Some(json!({ "name": format!("all but {p}"), "scopes": scopes })),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        key_without.insert(*p, v["key"].as_str().unwrap().to_owned());
    }
    let (s, v) = app
        .api(
            Method::POST,
            "/api/v1/api-keys",
            Some(&a.admin.access),
            Some(json!({ "name": "everything", "scopes": all })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let key_full = v["key"].as_str().unwrap().to_owned();

    let mut person_without = HashMap::new();
    for p in needed {
        let role = format!("all but {p}");
        let scopes: Vec<&str> = all.iter().copied().filter(|n| *n != p.as_str()).collect();
        let (s, v) = app
            .api(
                Method::POST,
                "/api/v1/roles",
                Some(&a.admin.access),
                Some(json!({ "name": role, "permissions": scopes })),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let email = format!("without-{}@a.matrix.example", p.as_str().replace('.', "-"));
        let api = app.add_member(&a.admin, &email, &role).await;
        let web = app.web_login(&email, PASSWORD).await;
        person_without.insert(*p, Person { api, web });
    }

    // Someone whose only membership ended: signed in, in no organisation.
    let gone = app
        .add_member(&a.admin, "former@a.matrix.example", "agent")
        .await;
    let (s, v) = app
        .api(
            Method::DELETE,
            &format!("/api/v1/members/{}", gone.user_id),
            Some(&a.admin.access),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    let api = app.login(&gone.email, PASSWORD).await;
    assert!(api.org_id.is_none());
    let web = app.web_login(&gone.email, PASSWORD).await;
    let no_org = Person { api, web };

    // The admin of an organisation that requires two-factor sign-in, not set up.
    let c = app.signup("Cormorant vets", "admin@c.matrix.example").await;
    let (s, v) = app
        .api(
            Method::PATCH,
            "/api/v1/org",
            Some(&c.access),
            Some(json!({ "name": "Cormorant vets", "require_2fa": true })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let c_web = app.web_login(&c.email, PASSWORD).await;
    let no_2fa = Person { api: c, web: c_web };

    // Credentials that were valid once.
    let (dead_token, _) = api_session(&app, &a.admin.email, PASSWORD, &a.id).await;
    let (s, v) = app
        .api(Method::POST, "/api/v1/auth/logout", Some(&dead_token), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    let dead_web = app.web_login(&a.admin.email, PASSWORD).await;
    let r = app.web_post(&dead_web, "/logout", &[]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);

    let totp = Totp::default();
    let totp_user = app
        .add_member(&a.admin, "two-factor@a.matrix.example", "agent")
        .await;
    let totp_secret = enable_totp(&app, &totp, &totp_user).await;
    let pending = app.web_login(&totp_user.email, PASSWORD).await;

    World {
        app,
        mail,
        presession,
        a,
        b,
        a2_id: a2["id"].as_str().unwrap().to_owned(),
        a2_name,
        key_without,
        key_full,
        person_without,
        no_org,
        no_2fa,
        dead_token,
        dead_web,
        totp_user,
        totp_secret,
        pending,
        totp,
        seq: AtomicUsize::new(0),
    }
}

// ---------------------------------------------------------------------------------------
// The checks.
// ---------------------------------------------------------------------------------------

fn assert_envelope(a: &Answer, status: u16, code: &str, what: &str) {
    assert_eq!(
        a.status.as_u16(),
        status,
        "{what}: expected {status} `{code}`, got {}",
        a.short()
    );
    assert!(
        a.header("content-type")
            .is_some_and(|c| c.starts_with("application/json")),
        "{what}: not the JSON envelope: {}",
        a.short()
    );
    let v = a.json();
    assert_eq!(v["error"]["code"], code, "{what}: {}", a.short());
    assert_eq!(
        v["error"]["request_id"].as_str(),
        a.header("x-request-id"),
        "{what}: the envelope carries the request id"
    );
}

fn assert_html(a: &Answer, status: u16, what: &str) {
    assert_eq!(a.status.as_u16(), status, "{what}: {}", a.short());
    assert!(
        a.header("content-type")
            .is_some_and(|c| c.starts_with("text/html")),
        "{what}: not an HTML page: {}",
        a.short()
    );
}

fn assert_error_page(a: &Answer, status: u16, what: &str) {
    assert_html(a, status, what);
    assert!(
        a.text.contains("data-testid=\"error-message\""),
        "{what}: not the error page: {}",
        a.short()
    );
}

fn assert_see_other(a: &Answer, to: &str, what: &str) {
    assert_eq!(
        (a.status, a.header("location")),
        (StatusCode::SEE_OTHER, Some(to)),
        "{what}: expected 303 to {to}, got {}",
        a.short()
    );
}

/// A refusal: the JSON envelope with `code`, or the 403 page.
fn assert_refused(a: &Answer, page: bool, code: &str, what: &str) {
    if page {
        assert_error_page(a, 403, what);
    } else {
        assert_envelope(a, 403, code, what);
    }
}

/// The allowed call answered as the case expects, and did its job.
async fn assert_allowed(w: &World, case: Case, a: Answer, page: bool, what: &str) {
    match &case.expect {
        Expect::Status(s) => {
            assert_eq!(a.status.as_u16(), *s, "{what}: {}", a.short());
            if page {
                assert_html(&a, *s, what);
            }
        }
        Expect::SeeOther(to) => assert_see_other(&a, to, what),
        Expect::SeeOtherStarting(to) => assert!(
            a.status == StatusCode::SEE_OTHER
                && a.header("location")
                    .is_some_and(|l| l.starts_with(to.as_str())),
            "{what}: expected 303 to {to}…, got {}",
            a.short()
        ),
    }
    if let Some(then) = case.then {
        then(w, &a).await;
    }
}

/// Org B's admin sends each case (org A's ids): 404, and neither organisation changed.
async fn check_cross(w: &World, m: &Method, cross: &[Case], page: bool) {
    if cross.is_empty() {
        return;
    }
    let mut before = w.snapshot().await;
    for c in cross {
        let what = format!("org B's admin with org A's ids: {}", c.describe());
        let cred = if page {
            Cred::Web(&w.b.web)
        } else {
            Cred::Bearer(&w.b.admin.access)
        };
        let a = w.send(m, c, cred).await;
        if page {
            assert_error_page(&a, 404, &what);
        } else {
            assert_envelope(&a, 404, "not_found", &what);
        }
        let after = w.snapshot().await;
        let changed: Vec<&String> = after
            .iter()
            .filter(|(k, v)| before.get(*k) != Some(*v))
            .map(|(k, _)| k)
            .collect();
        assert!(changed.is_empty(), "{what}: changed {changed:?}");
        before = after;
    }
}

async fn check_route(w: &World, e: &Entry, kind: RouteKind) {
    let page = kind == RouteKind::Page;
    let m = &e.method;
    if e.access == Access::Public {
        if let Some(f) = e.cross {
            check_cross(w, m, &f(w).await, page).await;
        }
        let case = (e.fixture)(w, Purpose::Allowed).await;
        let a = w.send(m, &case, Cred::None).await;
        assert_ne!(
            a.status,
            StatusCode::UNAUTHORIZED,
            "public route refused an anonymous caller"
        );
        assert_allowed(w, case, a, page, "anonymous caller of a public route").await;
        return;
    }

    let case = (e.fixture)(w, Purpose::Guard).await;

    // a. Anonymous; a credential that was signed out counts as none.
    let a = w.send(m, &case, Cred::None).await;
    let to_login = if *m == Method::GET {
        format!("/login?next={}", enc(&case.path))
    } else {
        "/login".to_owned()
    };
    if page {
        assert_see_other(&a, &to_login, "anonymous");
        let a = w.send(m, &case, Cred::Web(&w.dead_web)).await;
        assert_see_other(&a, &to_login, "signed-out browser session");
    } else {
        assert_envelope(&a, 401, "unauthorized", "anonymous");
        assert_eq!(a.header("www-authenticate"), Some("Bearer"), "anonymous");
        let a = w.send(m, &case, Cred::Bearer(&w.dead_token)).await;
        assert_envelope(&a, 401, "unauthorized", "signed-out access token");
    }

    // b. Without the permission; API keys on a person's own routes.
    match e.access {
        Access::Perm(p) => {
            let what = format!("API key with every permission but `{p}`");
            let a = w.send(m, &case, Cred::Bearer(&w.key_without[&p])).await;
            assert_refused(&a, page, "forbidden", &what);
            let person = &w.person_without[&p];
            let cred = if page {
                Cred::Web(&person.web)
            } else {
                Cred::Bearer(&person.api.access)
            };
            let what = format!("member whose role has every permission but `{p}`");
            let a = w.send(m, &case, cred).await;
            assert_refused(&a, page, "forbidden", &what);
        }
        Access::Session | Access::Signed => {
            let a = w.send(m, &case, Cred::Bearer(&w.key_full)).await;
            assert_refused(
                &a,
                page,
                "not_for_api_keys",
                "API key holding every permission",
            );
        }
        Access::Member | Access::Public => {}
    }
    if matches!(e.access, Access::Member | Access::Perm(_)) {
        let what = "signed in without an organisation";
        if page {
            let a = w.send(m, &case, Cred::Web(&w.no_org.web)).await;
            assert_see_other(&a, "/orgs", what);
        } else {
            let a = w.send(m, &case, Cred::Bearer(&w.no_org.api.access)).await;
            assert_envelope(&a, 403, "no_organisation", what);
        }
        let what = "member of an organisation that requires two-factor, not set up";
        if page {
            let a = w.send(m, &case, Cred::Web(&w.no_2fa.web)).await;
            assert_see_other(&a, "/settings/security", what);
        } else {
            let a = w.send(m, &case, Cred::Bearer(&w.no_2fa.api.access)).await;
            assert_envelope(&a, 403, "two_factor_required", what);
        }
    }
    if matches!(e.access, Access::Signed | Access::Member | Access::Perm(_)) {
        let what = "session waiting for its second factor";
        let a = w.send(m, &case, Cred::Web(&w.pending)).await;
        if page {
            assert_see_other(&a, "/login/2fa", what);
        } else {
            assert_envelope(&a, 403, "mfa_pending", what);
        }
    }

    // c. Another tenant's ids.
    let mut cross = Vec::new();
    if e.path.contains('{') {
        cross.push(case);
    }
    if let Some(f) = e.cross {
        cross.extend(f(w).await);
    }
    check_cross(w, m, &cross, page).await;

    // d. Allowed.
    let case = (e.fixture)(w, Purpose::Allowed).await;
    let a = {
        let cred = match &case.who {
            Who::Admin if page => Cred::Web(&w.a.web),
            Who::Admin => Cred::Bearer(&w.a.admin.access),
            Who::Bearer(t) => Cred::Bearer(t),
            Who::Web(s) => Cred::Web(s),
        };
        w.send(m, &case, cred).await
    };
    assert_allowed(w, case, a, page, "allowed caller").await;
}

// ---------------------------------------------------------------------------------------
// The matrix against the router and the document.
// ---------------------------------------------------------------------------------------

fn access_text(a: Access) -> String {
    match a {
        Access::Public => "public".into(),
        Access::Session => "session".into(),
        Access::Signed => "signed".into(),
        Access::Member => "member".into(),
        Access::Perm(p) => p.as_str().into(),
    }
}

fn kind_text(k: RouteKind) -> &'static str {
    match k {
        RouteKind::Json => "JSON",
        RouteKind::Page => "page",
        RouteKind::Other => "other",
    }
}

/// Routes missing from the matrix, entries without a route, and disagreeing access.
fn table_failures(routes: &[RouteInfo], matrix: &[Entry]) -> Vec<String> {
    let mut failures = Vec::new();
    let mut expected: BTreeMap<(String, String), Access> = BTreeMap::new();
    for e in matrix {
        if expected
            .insert((e.method.to_string(), e.path.to_owned()), e.access)
            .is_some()
        {
            failures.push(format!("{} {}: twice in the matrix", e.method, e.path));
        }
    }
    let mut served = BTreeSet::new();
    for r in routes {
        let key = (r.method.to_string(), r.path.clone());
        served.insert(key.clone());
        match expected.get(&key) {
            None => failures.push(format!(
                "{} {}: served but not in the access matrix (declared {:?})",
                r.method, r.path, r.access
            )),
            Some(want) if *want != r.access => failures.push(format!(
                "{} {}: declared {:?}, the matrix expects {:?}",
                r.method, r.path, r.access, want
            )),
            Some(_) => {}
        }
    }
    for (method, path) in expected.keys() {
        if !served.contains(&(method.clone(), path.clone())) {
            failures.push(format!(
                "{method} {path}: in the access matrix but not served"
            ));
        }
    }
    failures
}

const DOC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/access-matrix.md");

/// The table rows of the document, as it should read for `routes`.
fn doc_rows(routes: &[RouteInfo]) -> String {
    let mut out = String::from("| Method | Path | Kind | Access |\n|---|---|---|---|\n");
    for r in routes {
        let access = match r.access {
            Access::Perm(p) => format!("`{p}`"),
            other => access_text(other),
        };
        out.push_str(&format!(
            "| {} | `{}` | {} | {} |\n",
            r.method,
            r.path,
            kind_text(r.kind),
            access
        ));
    }
    out
}

/// What `docs/access-matrix.md` says that the router does not.
fn doc_failures(routes: &[RouteInfo]) -> Vec<String> {
    let text = std::fs::read_to_string(DOC).unwrap_or_default();
    let mut listed = BTreeSet::new();
    for line in text.lines() {
        let cells: Vec<String> = line
            .trim()
            .trim_matches('|')
            .split('|')
            .map(|c| c.trim().trim_matches('`').to_owned())
            .collect();
        if cells.len() == 4
            && ["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&cells[0].as_str())
        {
            listed.insert((
                cells[0].clone(),
                cells[1].clone(),
                cells[2].clone(),
                cells[3].clone(),
            ));
        }
    }
    let served: BTreeSet<(String, String, String, String)> = routes
        .iter()
        .map(|r| {
            (
                r.method.to_string(),
                r.path.clone(),
                kind_text(r.kind).to_owned(),
                access_text(r.access),
            )
        })
        .collect();
    let mut failures = Vec::new();
    for row in served.difference(&listed) {
        failures.push(format!("docs/access-matrix.md lacks {row:?}"));
    }
    for row in listed.difference(&served) {
        failures.push(format!("docs/access-matrix.md lists {row:?}, not served"));
    }
    if !failures.is_empty() {
        failures.push(format!(
            "the table docs/access-matrix.md should carry:\n{}",
            doc_rows(routes)
        ));
    }
    failures
}

fn panic_text(e: tokio::task::JoinError) -> String {
    if !e.is_panic() {
        return e.to_string();
    }
    let p = e.into_panic();
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "panicked".into())
}

async fn run_matrix(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let matrix = matrix();
    let mut failures = table_failures(&app.routes, &matrix);
    failures.extend(doc_failures(&app.routes));
    assert!(
        failures.is_empty(),
        "the access matrix does not match the router:\n{}",
        failures.join("\n")
    );

    let kinds: HashMap<(String, String), RouteKind> = app
        .routes
        .iter()
        .map(|r| ((r.method.to_string(), r.path.clone()), r.kind))
        .collect();
    let needed: BTreeSet<Permission> = matrix
        .iter()
        .filter_map(|e| e.access.permission())
        .collect();
    let world = Arc::new(build_world(app, &needed).await);

    let mut failures = Vec::new();
    for e in &matrix {
        let kind = kinds[&(e.method.to_string(), e.path.to_owned())];
        let (w, entry) = (world.clone(), e.clone());
        // Each route runs as its own task, so one failing route does not hide the others.
        let result = tokio::spawn(async move { check_route(&w, &entry, kind).await }).await;
        if let Err(err) = result {
            failures.push(format!("{} {}: {}", e.method, e.path, panic_text(err)));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} routes fail the access matrix:\n{}",
        failures.len(),
        matrix.len(),
        failures.join("\n")
    );
}

both_backends! {
    async fn every_route_enforces_its_access(db) {
        run_matrix(db).await;
    }
}

/// The test's own TOTP against RFC 6238 appendix B (SHA-1 rows, low 6 digits).
#[test]
fn totp_of_the_test_matches_rfc6238() {
    let secret = b"12345678901234567890";
    for (t, eight) in [
        (59i64, "94287082"),
        (1111111109, "07081804"),
        (1234567890, "89005924"),
        (2000000000, "69279037"),
    ] {
        assert_eq!(totp_at(secret, t / 30), eight[2..], "t={t}");
    }
}
