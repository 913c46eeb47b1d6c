//! The provider clients against a fake Graph API (and a fake Whapi) served over real HTTP on
//! 127.0.0.1. The fake speaks Meta's wire format: its paths, its JSON answers, its error
//! envelope `{"error": {message, type, code, error_data: {details}, fbtrace_id}}`, its
//! multipart media upload. Each recipient number picks one of Meta's documented answers.

use axum::{
    Json, Router,
    body::{Body, Bytes},
    extract::{Multipart, Path, Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use base64::Engine as _;
use frontdesk_domain::E164;
use frontdesk_whatsapp::{
    ClientConfig, ErrorClass, MediaInfo, Outbound, ProviderClient, ProviderError, ProviderKind,
    Recipient, http_client, http_client_with_timeouts,
    send::{Button, MediaSource},
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TOKEN: &str = "EAAG-test-token-SECRET-5f2c9";
const PNID: &str = "106540352242922";
const VERSION: &str = "v23.0";
const GOOD_FILE: &[u8] = b"\xff\xd8\xff\xe0 a small jpeg, honestly";
const BIG: usize = 2 * 1024 * 1024;

/// A multipart field as the fake received it: file name, content type, bytes.
type Field = (Option<String>, Option<String>, Vec<u8>);

#[derive(Default)]
struct Seen {
    /// Every JSON body posted to `/messages`, in order.
    sends: Vec<Value>,
    /// The multipart fields of the last upload, by name.
    upload: HashMap<String, Field>,
    /// Requests to file URLs, and whether they carried our token.
    file_hits: Vec<(String, bool)>,
    whapi: Vec<(String, Value)>,
    /// Template submissions and edits, as (path id, body).
    templates: Vec<(String, Value)>,
}

#[derive(Clone)]
struct Fake {
    base: String,
    seen: Arc<Mutex<Seen>>,
}

fn authorised(h: &HeaderMap) -> bool {
    h.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {TOKEN}"))
}

/// Meta's error envelope.
fn graph_error(status: StatusCode, code: i64, message: &str, details: &str) -> Response {
    (
        status,
        Json(json!({ "error": {
            "message": message,
            "type": "OAuthException",
            "code": code,
            "error_data": { "messaging_product": "whatsapp", "details": details },
            "fbtrace_id": "AazLh0Zk3Yq1dkqJ5h6bMmu"
        } })),
    )
        .into_response()
}

/// What Meta answers a wrong or expired token. (Meta does not echo the token; this fake
/// does, so the test proves our errors scrub it should any hop ever echo it.)
fn bad_token(h: &HeaderMap) -> Response {
    let got = h
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    graph_error(
        StatusCode::UNAUTHORIZED,
        190,
        &format!("Error validating access token: Session has expired ({got})"),
        &format!("token {got} expired"),
    )
}

async fn messages(
    State(f): State<Fake>,
    Path((version, pnid)): Path<(String, String)>,
    h: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if !authorised(&h) {
        return bad_token(&h);
    }
    assert_eq!((version.as_str(), pnid.as_str()), (VERSION, PNID));
    f.seen.lock().unwrap().sends.push(body.clone());
    if body["status"] == "read" {
        return Json(json!({ "success": true })).into_response();
    }
    let to = body["to"].as_str().unwrap_or_default().to_owned();
    match to.as_str() {
        "911111131047" => graph_error(
            StatusCode::BAD_REQUEST,
            131047,
            "(#131047) Re-engagement message",
            "Message failed to send because more than 24 hours have passed since the customer last replied to this number.",
        ),
        "911111130429" => {
            let mut r = graph_error(
                StatusCode::BAD_REQUEST,
                130429,
                "(#130429) Rate limit hit",
                "Cloud API message throughput has been reached.",
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, "7".parse().unwrap());
            r
        }
        "911111131026" => graph_error(
            StatusCode::BAD_REQUEST,
            131026,
            "(#131026) Message undeliverable",
            "Unable to deliver message.",
        ),
        "911111100100" => graph_error(
            StatusCode::BAD_REQUEST,
            100,
            "(#100) Invalid parameter",
            "Parameter 'text.body' is invalid",
        ),
        "911111100500" => (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error").into_response(),
        "911111100429" => (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, "3")],
            "slow down",
        )
            .into_response(),
        "911111100200" => Json(json!({ "messaging_product": "whatsapp" })).into_response(),
        "911111100999" => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            Json(json!({ "messaging_product": "whatsapp", "messages": [{ "id": "wamid.LATE" }] }))
                .into_response()
        }
        _ => Json(json!({
            "messaging_product": "whatsapp",
            "contacts": [{ "input": to, "wa_id": to }],
            "messages": [{ "id": "wamid.HBgMOTE5ODc2NTQzMjEwFQIAERgSQjQ2QkVBRkE2RjM5MkM0QTdFAA==", "message_status": "accepted" }]
        }))
        .into_response(),
    }
}

fn sha_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// `GET /{version}/{id}`: media info for a media id, number info for our phone number id.
async fn node(
    State(f): State<Fake>,
    Path((_v, id)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    h: HeaderMap,
) -> Response {
    if !authorised(&h) {
        return bad_token(&h);
    }
    if id == PNID {
        assert_eq!(
            q.get("fields").map(String::as_str),
            Some(
                "display_phone_number,verified_name,quality_rating,messaging_limit_tier,throughput"
            )
        );
        return Json(json!({
            "verified_name": "Sunrise Clinic",
            "display_phone_number": "+1 555-078-3881",
            "quality_rating": "GREEN",
            "messaging_limit_tier": "TIER_1K",
            "throughput": { "level": "STANDARD" },
            "id": PNID
        }))
        .into_response();
    }
    let file = |name: &str| format!("{}/files/{name}", f.base);
    let info = |url: String, sha: Option<String>, size: Option<usize>| {
        let mut v = json!({ "messaging_product": "whatsapp", "url": url, "mime_type": "image/jpeg", "id": id });
        if let Some(s) = sha {
            v["sha256"] = json!(s);
        }
        if let Some(s) = size {
            v["file_size"] = json!(s);
        }
        Json(v).into_response()
    };
    match id.as_str() {
        "media-good" => info(
            file("good"),
            Some(sha_hex(GOOD_FILE)),
            Some(GOOD_FILE.len()),
        ),
        "media-bad-sha" => info(
            file("good"),
            Some(base64::engine::general_purpose::STANDARD.encode(Sha256::digest(b"other bytes"))),
            Some(GOOD_FILE.len()),
        ),
        "media-big" => info(file("big"), None, None),
        "media-big-chunked" => info(file("big-chunked"), None, None),
        "media-declared-big" => info(file("good"), None, Some(BIG)),
        "media-redirect" => info(file("redirect"), None, None),
        _ => graph_error(
            StatusCode::BAD_REQUEST,
            100,
            "Unsupported get request. Object with ID does not exist",
            "",
        ),
    }
}

async fn files(State(f): State<Fake>, Path(name): Path<String>, h: HeaderMap) -> Response {
    f.seen
        .lock()
        .unwrap()
        .file_hits
        .push((name.clone(), authorised(&h)));
    if !authorised(&h) {
        return bad_token(&h);
    }
    match name.as_str() {
        "good" => ([(header::CONTENT_TYPE, "image/jpeg")], GOOD_FILE).into_response(),
        "big" => vec![0u8; BIG].into_response(),
        "big-chunked" => {
            let chunks =
                (0..BIG / 65536).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![1u8; 65536])));
            Body::from_stream(futures_util::stream::iter(chunks)).into_response()
        }
        // Somewhere else: same port, another host name.
        "redirect" => (
            StatusCode::FOUND,
            [(
                header::LOCATION,
                f.base.replace("127.0.0.1", "localhost") + "/files/good",
            )],
        )
            .into_response(),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

/// `POST /{version}/{phone-number-id}/media`, multipart as Meta takes it.
async fn upload(State(f): State<Fake>, h: HeaderMap, mut mp: Multipart) -> Response {
    if !authorised(&h) {
        return bad_token(&h);
    }
    let mut fields = HashMap::new();
    while let Some(field) = mp.next_field().await.unwrap() {
        let name = field.name().unwrap_or_default().to_owned();
        let file_name = field.file_name().map(str::to_owned);
        let ctype = field.content_type().map(str::to_owned);
        let bytes = field.bytes().await.unwrap().to_vec();
        fields.insert(name, (file_name, ctype, bytes));
    }
    let ok = fields.get("messaging_product").map(|f| f.2.as_slice()) == Some(b"whatsapp")
        && fields.contains_key("type")
        && fields.get("file").is_some_and(|f| f.0.is_some());
    f.seen.lock().unwrap().upload = fields;
    if !ok {
        return graph_error(
            StatusCode::BAD_REQUEST,
            100,
            "(#100) The parameter messaging_product is required.",
            "",
        );
    }
    Json(json!({ "id": "1037543291543636" })).into_response()
}

/// A stand-in for Whapi's gate, with its paths and answers.
async fn whapi_send(
    State(f): State<Fake>,
    Path(kind): Path<String>,
    h: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if !authorised(&h) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({ "error": { "code": 401, "message": "Unauthorized", "details": "Invalid token" } })),
        )
            .into_response();
    }
    f.seen
        .lock()
        .unwrap()
        .whapi
        .push((kind.clone(), body.clone()));
    if body["to"] == "911111100429" {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            Json(json!({ "error": { "code": 429, "message": "Too many requests" } })),
        )
            .into_response();
    }
    Json(json!({ "sent": true, "message": { "id": "PsqXn5SAD5v7HRA-wHqB9tMeGQ", "from_me": true, "type": kind, "chat_id": format!("{}@s.whatsapp.net", body["to"].as_str().unwrap()), "timestamp": 1712995245, "status": "pending" } }))
        .into_response()
}

async fn whapi_put(
    State(f): State<Fake>,
    Path(path): Path<String>,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    if !authorised(&h) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    f.seen
        .lock()
        .unwrap()
        .whapi
        .push((format!("PUT {path}"), v));
    Json(json!({ "success": true })).into_response()
}

async fn whapi_media_get(Path(id): Path<String>, h: HeaderMap) -> Response {
    if !authorised(&h) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    assert_eq!(id, "jpeg-4c6f2e1a");
    ([(header::CONTENT_TYPE, "image/jpeg")], GOOD_FILE).into_response()
}

async fn whapi_media_post(State(f): State<Fake>, h: HeaderMap, body: Bytes) -> Response {
    if !authorised(&h) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let ctype = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    f.seen
        .lock()
        .unwrap()
        .whapi
        .push((format!("upload {ctype}"), json!(body.len())));
    Json(json!({ "media": [{ "id": "pdf-7d1ae0c2" }] })).into_response()
}

async fn whapi_health(h: HeaderMap) -> Response {
    if !authorised(&h) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    Json(json!({ "start_at": 1712990000, "uptime": 5245, "status": { "code": 4, "text": "AUTH" }, "user": { "id": "919800011122", "name": "Sunrise Clinic" } }))
        .into_response()
}

/// `POST /{waba-id}/message_templates`: Meta answers the new id, `PENDING` and the category.
async fn create_template(
    State(f): State<Fake>,
    Path((_v, waba)): Path<(String, String)>,
    h: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if !authorised(&h) {
        return bad_token(&h);
    }
    if body["name"] == "taken_name" {
        return graph_error(
            StatusCode::BAD_REQUEST,
            100,
            "Invalid parameter",
            "Message template \"taken_name\" already exists in en",
        );
    }
    f.seen.lock().unwrap().templates.push((waba, body.clone()));
    Json(json!({ "id": "594425479261596", "status": "PENDING", "category": body["category"] }))
        .into_response()
}

/// `POST /{template-id}`: an edit.
async fn edit_template(
    State(f): State<Fake>,
    Path((_v, id)): Path<(String, String)>,
    h: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if !authorised(&h) {
        return bad_token(&h);
    }
    f.seen.lock().unwrap().templates.push((id, body));
    Json(json!({ "success": true })).into_response()
}

/// `GET /{waba-id}/message_templates`: 250 templates, in pages of `limit` with Meta's
/// cursors; `paging.next` only while more follow.
async fn list_templates(
    Path((_v, _waba)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    h: HeaderMap,
) -> Response {
    if !authorised(&h) {
        return bad_token(&h);
    }
    assert!(q["fields"].contains("components") && q["fields"].contains("quality_score"));
    let limit: usize = q["limit"].parse().unwrap();
    let from: usize = q
        .get("after")
        .map_or(0, |a| a.strip_prefix("c").unwrap().parse().unwrap());
    let to = (from + limit).min(250);
    let data: Vec<Value> = (from..to)
        .map(|i| json!({ "id": i.to_string(), "name": format!("t{i}"), "language": "en", "status": "APPROVED", "category": "UTILITY",
            "components": [{ "type": "BODY", "text": "Hello." }], "quality_score": { "score": "GREEN" } }))
        .collect();
    let mut paging =
        json!({ "cursors": { "before": format!("c{from}"), "after": format!("c{to}") } });
    if to < 250 {
        paging["next"] = json!("https://graph.facebook.com/next-page");
    }
    Json(json!({ "data": data, "paging": paging })).into_response()
}

async fn spawn_fake() -> Fake {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let fake = Fake {
        base: format!("http://{}", listener.local_addr().unwrap()),
        seen: Arc::default(),
    };
    let app = Router::new()
        .route("/{version}/{pnid}/messages", post(messages))
        .route("/{version}/{pnid}/media", post(upload))
        .route("/{version}/{id}", get(node).post(edit_template))
        .route(
            "/{version}/{waba}/message_templates",
            post(create_template).get(list_templates),
        )
        .route("/files/{name}", get(files))
        .route("/whapi/messages/{*path}", post(whapi_send).put(whapi_put))
        .route("/whapi/media/{id}", get(whapi_media_get))
        .route("/whapi/media", post(whapi_media_post))
        .route("/whapi/health", get(whapi_health))
        .with_state(fake.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    fake
}

fn config(fake: &Fake, kind: ProviderKind, token: &str) -> ClientConfig {
    ClientConfig {
        kind,
        base_url: match kind {
            ProviderKind::Cloud => fake.base.clone(),
            ProviderKind::Whapi => format!("{}/whapi/", fake.base),
        },
        api_version: VERSION.into(),
        phone_number_id: PNID.into(),
        waba_id: "102290129340398".into(),
        access_token: token.into(),
    }
}

fn cloud(fake: &Fake) -> ProviderClient {
    ProviderClient::new(http_client(), config(fake, ProviderKind::Cloud, TOKEN))
}

fn to(digits: &str) -> Recipient {
    Recipient::Phone(E164::parse(digits).unwrap())
}

fn text(body: &str) -> Outbound {
    Outbound::Text {
        body: body.into(),
        preview_url: false,
    }
}

async fn send_err(c: &ProviderClient, digits: &str) -> ProviderError {
    c.send(&to(digits), &text("Hello"), None, None)
        .await
        .expect_err("the fake answers an error for this number")
}

#[tokio::test]
async fn a_send_carries_the_bearer_token_and_answers_the_wamid() {
    let fake = spawn_fake().await;
    let c = cloud(&fake);
    let id = c
        .send(
            &to("919876543210"),
            &text("Your appointment is at 10:00"),
            Some("wamid.IN1"),
            Some("outbox-42"),
        )
        .await
        .unwrap();
    assert_eq!(
        id,
        "wamid.HBgMOTE5ODc2NTQzMjEwFQIAERgSQjQ2QkVBRkE2RjM5MkM0QTdFAA=="
    );
    let sent = fake.seen.lock().unwrap().sends.pop().unwrap();
    assert_eq!(sent["messaging_product"], "whatsapp");
    assert_eq!(sent["to"], "919876543210");
    assert_eq!(sent["text"]["body"], "Your appointment is at 10:00");
    assert_eq!(sent["context"]["message_id"], "wamid.IN1");
    assert_eq!(sent["biz_opaque_callback_data"], "outbox-42");

    c.mark_read("wamid.IN1").await.unwrap();
    let read = fake.seen.lock().unwrap().sends.pop().unwrap();
    assert_eq!(
        read,
        json!({ "messaging_product": "whatsapp", "status": "read", "message_id": "wamid.IN1" })
    );
}

#[tokio::test]
async fn graph_error_envelopes_are_classified_by_code() {
    let fake = spawn_fake().await;
    let c = cloud(&fake);

    let e = send_err(&c, "911111131047").await;
    assert_eq!(e.class, ErrorClass::OutsideWindow);
    assert_eq!((e.code, e.http_status), (Some(131047), Some(400)));
    assert!(e.details.as_deref().unwrap().contains("24 hours"));
    assert!(!e.class.retryable());

    let e = send_err(&c, "911111130429").await;
    assert_eq!(e.class, ErrorClass::Throttled);
    assert_eq!(e.code, Some(130429));
    assert_eq!(e.retry_after, Some(Duration::from_secs(7)));
    assert_eq!(e.min_delay(), Duration::from_secs(7));

    let e = send_err(&c, "911111131026").await;
    assert_eq!((e.class, e.code), (ErrorClass::Permanent, Some(131026)));
    assert!(e.to_string().contains("Message undeliverable"), "{e}");

    let e = send_err(&c, "911111100100").await;
    assert_eq!((e.class, e.code), (ErrorClass::Permanent, Some(100)));
    assert_eq!(
        e.details.as_deref(),
        Some("Parameter 'text.body' is invalid")
    );
}

#[tokio::test]
async fn answers_without_an_envelope_are_classified_by_status() {
    let fake = spawn_fake().await;
    let c = cloud(&fake);

    let e = send_err(&c, "911111100500").await;
    assert_eq!(
        (e.class, e.code, e.http_status),
        (ErrorClass::Retry, None, Some(500))
    );

    let e = send_err(&c, "911111100429").await;
    assert_eq!(e.class, ErrorClass::Throttled);
    assert_eq!(e.retry_after, Some(Duration::from_secs(3)));

    // Accepted or not, we cannot tell; a retry could send twice, so it is not retried.
    let e = send_err(&c, "911111100200").await;
    assert_eq!((e.class, e.http_status), (ErrorClass::Permanent, None));
}

#[tokio::test]
async fn a_slow_answer_is_a_timeout_to_retry() {
    let fake = spawn_fake().await;
    let c = ProviderClient::new(
        http_client_with_timeouts(Duration::from_secs(1), Duration::from_millis(300)),
        config(&fake, ProviderKind::Cloud, TOKEN),
    );
    let started = Instant::now();
    let e = send_err(&c, "911111100999").await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        (e.class, e.http_status, e.code),
        (ErrorClass::Retry, None, None)
    );
    assert!(e.to_string().contains("in time"), "{e}");
}

#[tokio::test]
async fn a_refused_connection_is_retried() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let c = ProviderClient::new(
        http_client(),
        ClientConfig {
            kind: ProviderKind::Cloud,
            base_url: base,
            api_version: VERSION.into(),
            phone_number_id: PNID.into(),
            waba_id: String::new(),
            access_token: TOKEN.into(),
        },
    );
    let e = send_err(&c, "919876543210").await;
    assert_eq!((e.class, e.http_status), (ErrorClass::Retry, None));
}

#[tokio::test]
async fn a_bad_token_is_unauthorized_and_no_token_is_ever_shown() {
    let fake = spawn_fake().await;
    let wrong = "EAAG-expired-token-LEAKME-77";
    let c = ProviderClient::new(http_client(), config(&fake, ProviderKind::Cloud, wrong));
    let e = send_err(&c, "919876543210").await;
    assert_eq!(
        (e.class, e.code, e.http_status),
        (ErrorClass::Unauthorized, Some(190), Some(401))
    );
    // The fake echoed the token it got; our error must not carry it.
    for shown in [e.to_string(), format!("{e:?}"), format!("{c:?}")] {
        assert!(!shown.contains(wrong), "token leaked: {shown}");
        assert!(!shown.contains("LEAKME"), "token leaked: {shown}");
    }
    assert!(e.to_string().contains("[redacted]"), "{e}");

    let good = cloud(&fake);
    let debug = format!("{good:?}");
    assert!(
        !debug.contains(TOKEN) && !debug.contains("SECRET"),
        "{debug}"
    );
    assert!(
        debug.contains("[redacted]") && debug.contains(PNID),
        "{debug}"
    );
    let cfg = format!("{:?}", config(&fake, ProviderKind::Cloud, TOKEN));
    assert!(!cfg.contains("SECRET"), "{cfg}");
}

#[tokio::test]
async fn media_is_fetched_with_the_token_and_checked_against_its_sha256() {
    let fake = spawn_fake().await;
    let c = cloud(&fake);

    let info = c.media_info("media-good").await.unwrap();
    assert_eq!(info.mime_type, "image/jpeg");
    assert_eq!(info.file_size, Some(GOOD_FILE.len() as u64));
    assert_eq!(info.sha256.as_deref(), Some(sha_hex(GOOD_FILE).as_str()));
    let bytes = c.download_media(&info, 1024 * 1024).await.unwrap();
    assert_eq!(bytes, GOOD_FILE);
    assert_eq!(
        fake.seen.lock().unwrap().file_hits.last(),
        Some(&("good".to_owned(), true))
    );

    let bad = c.media_info("media-bad-sha").await.unwrap();
    let e = c.download_media(&bad, 1024 * 1024).await.unwrap_err();
    assert_eq!(e.class, ErrorClass::Permanent);
    assert!(e.title.contains("sha256"), "{e}");

    let e = c.media_info("no-such-media").await.unwrap_err();
    assert_eq!((e.class, e.code), (ErrorClass::Permanent, Some(100)));
}

#[tokio::test]
async fn oversize_media_is_refused() {
    let fake = spawn_fake().await;
    let c = cloud(&fake);
    let max = 1024 * 1024;

    // Declared too large by the media info: no download at all.
    let declared = c.media_info("media-declared-big").await.unwrap();
    let hits_before = fake.seen.lock().unwrap().file_hits.len();
    let e = c.download_media(&declared, max).await.unwrap_err();
    assert_eq!(e.class, ErrorClass::Permanent);
    assert_eq!(fake.seen.lock().unwrap().file_hits.len(), hits_before);

    // Declared too large by Content-Length.
    let big = c.media_info("media-big").await.unwrap();
    let e = c.download_media(&big, max).await.unwrap_err();
    assert_eq!(e.class, ErrorClass::Permanent);
    assert!(e.title.contains("larger than"), "{e}");

    // No length announced: stopped while streaming.
    let chunked = c.media_info("media-big-chunked").await.unwrap();
    let e = c.download_media(&chunked, max).await.unwrap_err();
    assert_eq!(e.class, ErrorClass::Permanent);
    assert!(e.title.contains("larger than"), "{e}");
    // The same file fits a larger limit, so the limit (not the fake) stopped it.
    assert_eq!(
        c.download_media(&chunked, BIG as u64).await.unwrap().len(),
        BIG
    );
}

#[tokio::test]
async fn media_links_do_not_take_the_token_elsewhere() {
    let fake = spawn_fake().await;
    let c = cloud(&fake);

    // A redirect to another host is not followed.
    let info = c.media_info("media-redirect").await.unwrap();
    let e = c.download_media(&info, 1024 * 1024).await.unwrap_err();
    assert_eq!(e.http_status, Some(302));
    assert!(!e.class.retryable());
    assert_eq!(
        fake.seen.lock().unwrap().file_hits.last(),
        Some(&("redirect".to_owned(), true)),
        "the redirect target was never requested"
    );

    // A plain-http link to another host is refused before any request.
    let elsewhere = MediaInfo {
        url: fake.base.replace("127.0.0.1", "localhost") + "/files/good",
        mime_type: "image/jpeg".into(),
        sha256: None,
        file_size: None,
    };
    let hits = fake.seen.lock().unwrap().file_hits.len();
    let e = c.download_media(&elsewhere, 1024).await.unwrap_err();
    assert_eq!(e.class, ErrorClass::Permanent);
    assert_eq!(fake.seen.lock().unwrap().file_hits.len(), hits);
}

#[tokio::test]
async fn upload_is_multipart_as_meta_takes_it() {
    let fake = spawn_fake().await;
    let c = cloud(&fake);
    let id = c
        .upload_media(GOOD_FILE.to_vec(), "image/jpeg", "../scans/x-ray.jpg")
        .await
        .unwrap();
    assert_eq!(id, "1037543291543636");
    let seen = fake.seen.lock().unwrap();
    let up = &seen.upload;
    assert_eq!(up["messaging_product"].2, b"whatsapp");
    assert_eq!(up["type"].2, b"image/jpeg");
    let (name, ctype, bytes) = &up["file"];
    assert_eq!(name.as_deref(), Some("x-ray.jpg"));
    assert_eq!(ctype.as_deref(), Some("image/jpeg"));
    assert_eq!(bytes, GOOD_FILE);
}

#[tokio::test]
async fn number_info_reads_health_fields() {
    let fake = spawn_fake().await;
    let n = cloud(&fake).number_info().await.unwrap();
    assert_eq!(n.display_phone_number.as_deref(), Some("+1 555-078-3881"));
    assert_eq!(n.verified_name.as_deref(), Some("Sunrise Clinic"));
    assert_eq!(n.quality_rating.as_deref(), Some("GREEN"));
    assert_eq!(n.messaging_limit_tier.as_deref(), Some("TIER_1K"));
    assert_eq!(n.throughput_level.as_deref(), Some("STANDARD"));
}

#[tokio::test]
async fn whapi_sends_reads_and_moves_media() {
    let fake = spawn_fake().await;
    let c = ProviderClient::new(http_client(), config(&fake, ProviderKind::Whapi, TOKEN));

    let id = c
        .send(
            &to("919876543210"),
            &text("Hello from Whapi"),
            Some("in-1"),
            Some("ignored"),
        )
        .await
        .unwrap();
    assert_eq!(id, "PsqXn5SAD5v7HRA-wHqB9tMeGQ");
    let buttons = Outbound::Buttons {
        body: "Confirm?".into(),
        header: None,
        footer: None,
        buttons: vec![Button {
            id: "y".into(),
            title: "Yes".into(),
        }],
    };
    c.send(&to("919876543210"), &buttons, None, None)
        .await
        .unwrap();
    let image = Outbound::Media {
        media_type: "image".into(),
        source: MediaSource::Link("https://cdn.example/a.jpg".into()),
        caption: Some("map".into()),
        filename: None,
    };
    c.send(&to("919876543210"), &image, None, None)
        .await
        .unwrap();
    let reaction = Outbound::Reaction {
        message_id: "in-1".into(),
        emoji: "👍".into(),
    };
    let rid = c
        .send(&to("919876543210"), &reaction, None, None)
        .await
        .unwrap();
    assert!(rid.starts_with("whapi-reaction.in-1."), "{rid}");
    c.mark_read("in-1").await.unwrap();
    {
        let seen = fake.seen.lock().unwrap();
        let w = &seen.whapi;
        assert_eq!(w[0].0, "text");
        assert_eq!(
            w[0].1,
            json!({ "to": "919876543210", "body": "Hello from Whapi", "no_link_preview": true, "quoted": "in-1" })
        );
        assert_eq!(w[1].0, "interactive");
        assert_eq!(w[1].1["action"]["buttons"][0]["type"], "quick_reply");
        assert_eq!(
            (w[2].0.as_str(), &w[2].1["media"]),
            ("image", &json!("https://cdn.example/a.jpg"))
        );
        assert_eq!(
            w[3],
            ("PUT in-1/reaction".to_owned(), json!({ "emoji": "👍" }))
        );
        assert_eq!(w[4].0, "PUT in-1");
    }

    let template = Outbound::Template {
        name: "reminder".into(),
        language: "en".into(),
        components: vec![],
    };
    let before = fake.seen.lock().unwrap().whapi.len();
    let e = c
        .send(&to("919876543210"), &template, None, None)
        .await
        .unwrap_err();
    assert_eq!(e.class, ErrorClass::Permanent);
    assert!(e.title.contains("templates"), "{e}");
    assert_eq!(
        fake.seen.lock().unwrap().whapi.len(),
        before,
        "nothing was sent"
    );

    let e = send_err(&c, "911111100429").await;
    assert_eq!(
        (e.class, e.code, e.http_status),
        (ErrorClass::Throttled, Some(429), Some(429))
    );

    let info = c.media_info("jpeg-4c6f2e1a").await.unwrap();
    assert_eq!(c.download_media(&info, 1024).await.unwrap(), GOOD_FILE);
    let up = c
        .upload_media(b"%PDF-1.7".to_vec(), "application/pdf", "report.pdf")
        .await
        .unwrap();
    assert_eq!(up, "pdf-7d1ae0c2");
    assert_eq!(
        fake.seen.lock().unwrap().whapi.last().unwrap(),
        &("upload application/pdf".to_owned(), json!(8))
    );

    let n = c.number_info().await.unwrap();
    assert_eq!(n.display_phone_number.as_deref(), Some("+919800011122"));
    assert_eq!(n.quality_rating, None);

    let wrong = ProviderClient::new(
        http_client(),
        config(&fake, ProviderKind::Whapi, "nope-token"),
    );
    let e = send_err(&wrong, "919876543210").await;
    assert_eq!(
        (e.class, e.code, e.http_status),
        (ErrorClass::Unauthorized, Some(401), Some(401))
    );
    assert_eq!(e.details.as_deref(), Some("Invalid token"));
}

#[tokio::test]
async fn templates_are_submitted_edited_and_listed_across_pages_in_metas_format() {
    let fake = spawn_fake().await;
    let c = cloud(&fake);
    let submission = json!({ "name": "visit_reminder", "language": "en_US", "category": "UTILITY", "parameter_format": "POSITIONAL",
        "components": [{ "type": "BODY", "text": "See you at {{1}}.", "example": { "body_text": [["10:30"]] } }] });
    assert_eq!(
        c.create_template(&submission).await.unwrap(),
        "594425479261596"
    );
    c.edit_template("594425479261596", &submission)
        .await
        .unwrap();
    {
        let seen = fake.seen.lock().unwrap();
        assert_eq!(
            seen.templates[0],
            ("102290129340398".to_owned(), submission.clone()),
            "posted to the business account as given"
        );
        assert_eq!(seen.templates[1].0, "594425479261596");
        assert_eq!(
            seen.templates[1].1,
            json!({ "category": "UTILITY", "components": submission["components"] }),
            "an edit sends only what Meta lets change"
        );
    }
    let refused = c
        .create_template(&json!({ "name": "taken_name" }))
        .await
        .unwrap_err();
    assert_eq!((refused.code, refused.http_status), (Some(100), Some(400)));
    let all = c.list_templates().await.unwrap();
    assert_eq!(all.len(), 250, "every page is read");
    assert_eq!(all[249]["name"], "t249");
    let whapi = ProviderClient::new(http_client(), config(&fake, ProviderKind::Whapi, TOKEN));
    assert!(
        whapi
            .list_templates()
            .await
            .unwrap_err()
            .title
            .contains("Cloud API")
    );
}

/// What the fake Resumable Upload API received: each chunk's `file_offset`, the
/// `Authorization` it came with, and its bytes.
type Chunks = Arc<Mutex<Vec<(String, String, Vec<u8>)>>>;

#[tokio::test]
async fn a_template_sample_goes_through_both_upload_steps_and_resumes_where_the_provider_stopped() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let chunks: Chunks = Arc::default();
    let start = |Path((v, app)): Path<(String, String)>,
                 Query(q): Query<HashMap<String, String>>,
                 h: HeaderMap| async move {
        assert_eq!((v.as_str(), app.as_str()), (VERSION, "584544743160774"));
        if !authorised(&h) {
            return bad_token(&h);
        }
        assert_eq!(q["file_name"], "clinic.png", "the name without its path");
        assert_eq!(
            (q["file_length"].as_str(), q["file_type"].as_str()),
            ("12", "image/png")
        );
        // Meta's session ids carry a signature in a query string.
        Json(json!({ "id": "upload:MTphdHRh-Y2h_tZW50=?sig=ARZqkGCA_uQMxC8" })).into_response()
    };
    let seen = chunks.clone();
    let chunk = move |Path((_v, session)): Path<(String, String)>,
                      Query(q): Query<HashMap<String, String>>,
                      h: HeaderMap,
                      body: Bytes| {
        let seen = seen.clone();
        async move {
            assert_eq!(session, "upload:MTphdHRh-Y2h_tZW50=");
            assert_eq!(q.get("sig").map(String::as_str), Some("ARZqkGCA_uQMxC8"));
            let auth = h[header::AUTHORIZATION].to_str().unwrap().to_owned();
            let offset = h["file_offset"].to_str().unwrap().to_owned();
            let mut seen = seen.lock().unwrap();
            seen.push((offset.clone(), auth, body.to_vec()));
            if offset == "0" {
                // Interrupted: only five bytes arrived.
                Json(json!({ "id": "upload:MTphdHRh-Y2h_tZW50=?sig=ARZqkGCA_uQMxC8", "file_offset": 5 }))
                    .into_response()
            } else {
                Json(json!({ "h": "4::aW1hZ2UvcG5n:ARb1:e:1767225600:ARZ2" })).into_response()
            }
        }
    };
    let app = Router::new()
        .route("/{version}/{app}/uploads", post(start))
        .route("/{version}/{session}", post(chunk));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let fake = Fake {
        base,
        seen: Arc::default(),
    };
    let client = cloud(&fake);
    let file = b"\x89PNG\r\n\x1a\nPIXL";
    let h = client
        .upload_template_sample("584544743160774", "../tmp/clinic.png", "image/png", file)
        .await
        .unwrap();
    assert_eq!(h, "4::aW1hZ2UvcG5n:ARb1:e:1767225600:ARZ2");
    let seen = chunks.lock().unwrap().clone();
    assert_eq!(
        seen.len(),
        2,
        "the rest was sent from where the provider stopped"
    );
    assert_eq!((seen[0].0.as_str(), seen[0].2.as_slice()), ("0", &file[..]));
    assert_eq!(
        (seen[1].0.as_str(), seen[1].2.as_slice()),
        ("5", &file[5..])
    );
    for (_, auth, _) in &seen {
        assert_eq!(
            auth,
            &format!("OAuth {TOKEN}"),
            "step two takes the token as OAuth"
        );
    }

    // Refused before any call: an app id that is not digits, an empty file.
    let e = client
        .upload_template_sample("58/../x", "a.png", "image/png", file)
        .await
        .unwrap_err();
    assert_eq!((e.class, e.http_status), (ErrorClass::Permanent, None));
    let e = client
        .upload_template_sample("584544743160774", "a.png", "image/png", b"")
        .await
        .unwrap_err();
    assert_eq!(e.http_status, None);
}
