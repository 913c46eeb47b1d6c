//! The fake Graph API: Meta's paths and JSON under `/simulator/graph/{version}/…`.
//!
//! A caller is known by its Bearer access token (only the token's SHA-256 is stored); a
//! wrong or missing token is Meta's 401 with code 190. Every refusal is Meta's error
//! envelope `{"error": {message, type, code, error_subcode?, error_data?, fbtrace_id}}`,
//! so Frontdesk's provider client is exercised exactly as Meta would exercise it.

use super::webhooks::{self, Pricing, StatusEvent};
use super::{digits, new_wamid, now_ms, now_us, random_digits, sha256_b64};
use crate::AppState;
use crate::auth::Access;
use crate::routes::RouteTableBuilder;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use frontdesk_store::{
    SimCustomer, SimDirection, SimMedia, SimMessage, SimNumber, SimTemplate, TenantCtx,
};
use serde::Deserialize;
use serde_json::{Value, json};

pub(crate) fn routes(b: RouteTableBuilder) -> RouteTableBuilder {
    // Public in the route table: these authenticate by Meta's Bearer access token, which
    // is not a Frontdesk credential.
    b.other(
        Method::POST,
        "/simulator/graph/{version}/{node}/messages",
        post(send_message),
        Access::Public,
    )
    .other_sized(
        Method::POST,
        "/simulator/graph/{version}/{node}/media",
        post(upload_media),
        Access::Public,
        Some(crate::MAX_UPLOAD_BODY),
    )
    .other(
        Method::GET,
        "/simulator/graph/{version}/{node}",
        get(get_node),
        Access::Public,
    )
    .other(
        Method::POST,
        "/simulator/graph/{version}/{node}/message_templates",
        post(create_template),
        Access::Public,
    )
    .other(
        Method::GET,
        "/simulator/graph/{version}/{node}/message_templates",
        get(list_templates),
        Access::Public,
    )
    .other(
        Method::DELETE,
        "/simulator/graph/{version}/{node}/message_templates",
        delete(delete_templates),
        Access::Public,
    )
    .other_sized(
        Method::POST,
        "/simulator/graph/{version}/{node}/uploads",
        post(start_upload),
        Access::Public,
        None,
    )
    .other_sized(
        Method::POST,
        "/simulator/graph/{version}/{node}",
        post(post_node),
        Access::Public,
        // Upload chunks (`POST /upload:…`) carry files; template edits are checked smaller.
        Some(crate::MAX_UPLOAD_BODY),
    )
    .other(
        Method::GET,
        "/simulator/media/{media_id}",
        get(download_media),
        Access::Public,
    )
}

/// One day: the customer-service window.
const WINDOW_MS: i64 = 24 * 60 * 60 * 1000;

/// Meta's error answer.
#[derive(Debug)]
pub(crate) struct MetaError {
    http: StatusCode,
    code: i64,
    subcode: Option<i64>,
    kind: &'static str,
    message: String,
    details: Option<String>,
}

impl MetaError {
    pub(super) fn new(http: StatusCode, code: i64, message: impl Into<String>) -> Self {
        Self {
            http,
            code,
            subcode: None,
            kind: "OAuthException",
            message: message.into(),
            details: None,
        }
    }

    pub(super) fn details(mut self, d: impl Into<String>) -> Self {
        self.details = Some(d.into());
        self
    }

    fn subcode(mut self, s: i64) -> Self {
        self.subcode = Some(s);
        self
    }

    /// A missing parameter (code 100).
    pub(super) fn required(param: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            100,
            format!("(#100) The parameter {param} is required."),
        )
    }

    /// A parameter with a value WhatsApp does not accept (131009).
    fn invalid(details: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            131009,
            "(#131009) Parameter value is not valid",
        )
        .details(details)
    }

    /// An id this token cannot see (Meta does not say which of the two).
    pub(super) fn no_such_object(id: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            100,
            format!("Unsupported request - method type: post. Object with ID '{id}' does not exist, cannot be loaded due to missing permissions, or does not support this operation."),
        )
        .subcode(33)
    }

    pub(super) fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            1,
            "An unknown error occurred",
        )
    }
}

impl From<frontdesk_store::StoreError> for MetaError {
    fn from(e: frontdesk_store::StoreError) -> Self {
        tracing::error!(error = %e, "simulator: store error");
        MetaError::internal()
    }
}

impl IntoResponse for MetaError {
    fn into_response(self) -> Response {
        let mut e = json!({
            "message": self.message,
            "type": self.kind,
            "code": self.code,
            "fbtrace_id": format!("Sim{}", super::random_secret(12)),
        });
        if let Some(s) = self.subcode {
            e["error_subcode"] = json!(s);
        }
        if let Some(d) = self.details {
            e["error_data"] = json!({ "messaging_product": "whatsapp", "details": d });
        }
        let mut r = (self.http, Json(json!({ "error": e }))).into_response();
        if self.http == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static(
                    "OAuth \"Facebook Platform\" \"invalid_token\" \"Invalid OAuth access token\"",
                ),
            );
        }
        r
    }
}

pub(super) type GraphResult<T> = Result<T, MetaError>;

/// The number a Bearer token belongs to, and its organisation.
async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
) -> GraphResult<(TenantCtx, SimNumber)> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("OAuth "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let Some(token) = token else {
        return Err(MetaError::new(
            StatusCode::UNAUTHORIZED,
            190,
            "An active access token must be used to query information about the current user.",
        ));
    };
    state
        .store()
        .sim_number_by_token(token)
        .await?
        .ok_or_else(|| {
            MetaError::new(
                StatusCode::UNAUTHORIZED,
                190,
                "Invalid OAuth access token - Cannot parse access token",
            )
        })
}

/// `v23.0`-style versions only, as Meta's router.
pub(super) fn check_version(v: &str) -> GraphResult<()> {
    let ok = v
        .strip_prefix('v')
        .and_then(|r| r.split_once('.'))
        .is_some_and(|(a, b)| {
            (1..=2).contains(&a.len())
                && b.len() == 1
                && a.bytes().chain(b.bytes()).all(|c| c.is_ascii_digit())
        });
    if ok {
        Ok(())
    } else {
        Err(MetaError::new(
            StatusCode::BAD_REQUEST,
            2500,
            format!("Unknown path components: /{v}"),
        ))
    }
}

fn unix_secs(ms: i64) -> i64 {
    ms.div_euclid(1000)
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str()
}

fn chars(s: &str) -> usize {
    s.chars().count()
}

/// Whom a send addresses.
#[derive(Debug, Clone)]
enum Address {
    /// `to`: phone digits.
    Phone(String),
    /// `recipient`: a BSUID.
    Bsuid(String),
}

/// A checked send body.
#[derive(Debug)]
enum SendRequest {
    MarkRead {
        message_id: String,
    },
    Message {
        to: Address,
        input: String,
        msg_type: String,
        template: Option<(String, String)>,
        media_id: Option<String>,
        body: Value,
    },
}

const MEDIA_TYPES: [&str; 5] = ["image", "audio", "video", "document", "sticker"];

/// Checks a send body as Meta does: the product, the addressee, the type and its fields.
fn check_send(v: &Value) -> GraphResult<SendRequest> {
    if !v.is_object() {
        return Err(MetaError::invalid("the request body must be a JSON object"));
    }
    match v.get("messaging_product").and_then(Value::as_str) {
        Some("whatsapp") => {}
        Some(_) => return Err(MetaError::invalid("messaging_product must be \"whatsapp\"")),
        None => return Err(MetaError::required("messaging_product")),
    }
    if let Some(st) = v.get("status") {
        if st.as_str() != Some("read") {
            return Err(MetaError::invalid("status must be \"read\""));
        }
        let id = v
            .get("message_id")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| MetaError::required("message_id"))?;
        return Ok(SendRequest::MarkRead {
            message_id: id.to_owned(),
        });
    }
    if let Some(rt) = v.get("recipient_type")
        && rt.as_str() != Some("individual")
    {
        return Err(MetaError::invalid(
            "recipient_type must be \"individual\" (groups are not simulated)",
        ));
    }
    let (to, input) = match (
        v.get("to").and_then(Value::as_str),
        v.get("recipient").and_then(Value::as_str),
    ) {
        (Some(t), _) => {
            let d = digits(t);
            if !(7..=15).contains(&d.len())
                || !t.chars().all(|c| c.is_ascii_digit() || "+ -()".contains(c))
            {
                return Err(MetaError::invalid(format!(
                    "`to` is not a valid phone number: {t}"
                )));
            }
            (Address::Phone(d), t.to_owned())
        }
        (None, Some(r)) => {
            if frontdesk_domain::Bsuid::parse(r).is_err() {
                return Err(MetaError::invalid(format!(
                    "`recipient` is not a valid business-scoped user id: {r}"
                )));
            }
            (Address::Bsuid(r.trim().to_owned()), r.to_owned())
        }
        (None, None) => return Err(MetaError::required("to")),
    };
    let msg_type = v
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("text")
        .to_owned();
    let obj = v.get(&msg_type);
    let need = |name: &str| -> GraphResult<&Value> {
        obj.filter(|o| o.is_object())
            .ok_or_else(|| MetaError::required(name))
    };
    let mut template = None;
    let mut media_id = None;
    match msg_type.as_str() {
        "text" => {
            let body = str_at(need("text")?, &["body"])
                .ok_or_else(|| MetaError::required("text['body']"))?;
            if body.trim().is_empty() || chars(body) > 4096 {
                return Err(MetaError::invalid("text.body must be 1–4096 characters"));
            }
        }
        t if MEDIA_TYPES.contains(&t) => {
            let m = need(t)?;
            match (str_at(m, &["id"]), str_at(m, &["link"])) {
                (Some(id), _) if !id.is_empty() => media_id = Some(id.to_owned()),
                (_, Some(l)) if l.starts_with("https://") && l.len() <= 2000 => {}
                (_, Some(_)) => {
                    return Err(MetaError::invalid(format!(
                        "{t}.link must be an https:// URL"
                    )));
                }
                _ => return Err(MetaError::required(&format!("{t}['id'] or {t}['link']"))),
            }
            if let Some(c) = m.get("caption") {
                if !matches!(t, "image" | "video" | "document") {
                    return Err(MetaError::invalid(format!("{t} messages take no caption")));
                }
                if c.as_str().is_none_or(|c| chars(c) > 1024) {
                    return Err(MetaError::invalid("a caption is at most 1024 characters"));
                }
            }
        }
        "location" => {
            let l = need("location")?;
            let lat = l.get("latitude").and_then(Value::as_f64);
            let lon = l.get("longitude").and_then(Value::as_f64);
            match (lat, lon) {
                (Some(a), Some(o))
                    if (-90.0..=90.0).contains(&a) && (-180.0..=180.0).contains(&o) => {}
                (None, _) => return Err(MetaError::required("location['latitude']")),
                (_, None) => return Err(MetaError::required("location['longitude']")),
                _ => return Err(MetaError::invalid("latitude/longitude out of range")),
            }
        }
        "reaction" => {
            let r = need("reaction")?;
            if str_at(r, &["message_id"]).is_none_or(str::is_empty) {
                return Err(MetaError::required("reaction['message_id']"));
            }
            if str_at(r, &["emoji"]).is_none_or(|e| chars(e) > 8) {
                return Err(MetaError::invalid(
                    "reaction.emoji must be one emoji (empty removes it)",
                ));
            }
        }
        "interactive" => check_interactive(need("interactive")?)?,
        "template" => {
            let t = need("template")?;
            let name = str_at(t, &["name"])
                .filter(|n| !n.is_empty())
                .ok_or_else(|| MetaError::required("template['name']"))?;
            let lang = str_at(t, &["language", "code"])
                .filter(|n| !n.is_empty())
                .ok_or_else(|| MetaError::required("template['language']['code']"))?;
            template = Some((name.to_owned(), lang.to_owned()));
        }
        "contacts" => {
            if obj.and_then(Value::as_array).is_none_or(|a| a.is_empty()) {
                return Err(MetaError::required("contacts"));
            }
        }
        other => {
            return Err(MetaError::invalid(format!(
                "type `{other}` must be one of text, image, audio, video, document, sticker, location, reaction, interactive, template, contacts"
            )));
        }
    }
    if let Some(c) = v.get("context")
        && str_at(c, &["message_id"]).is_none_or(str::is_empty)
    {
        return Err(MetaError::required("context['message_id']"));
    }
    Ok(SendRequest::Message {
        to,
        input,
        msg_type,
        template,
        media_id,
        body: v.clone(),
    })
}

fn check_interactive(i: &Value) -> GraphResult<()> {
    let body = str_at(i, &["body", "text"]);
    match str_at(i, &["type"]) {
        Some("button") => {
            if body.is_none_or(|b| b.trim().is_empty() || chars(b) > 1024) {
                return Err(MetaError::invalid(
                    "interactive.body.text must be 1–1024 characters",
                ));
            }
            let buttons = i
                .get("action")
                .and_then(|a| a.get("buttons"))
                .and_then(Value::as_array)
                .ok_or_else(|| MetaError::required("interactive['action']['buttons']"))?;
            if !(1..=3).contains(&buttons.len()) {
                return Err(MetaError::invalid(
                    "an interactive message has 1 to 3 buttons",
                ));
            }
            let mut ids = Vec::new();
            for b in buttons {
                let id = str_at(b, &["reply", "id"]).unwrap_or_default();
                let title = str_at(b, &["reply", "title"]).unwrap_or_default();
                if id.is_empty() || id.len() > 256 || title.trim().is_empty() || chars(title) > 20 {
                    return Err(MetaError::invalid(
                        "each button has a reply id (≤256) and a title of 1–20 characters",
                    ));
                }
                if ids.contains(&id) {
                    return Err(MetaError::invalid("button ids must be unique"));
                }
                ids.push(id);
            }
        }
        Some("list") => {
            if body.is_none_or(|b| b.trim().is_empty() || chars(b) > 4096) {
                return Err(MetaError::invalid(
                    "interactive.body.text must be 1–4096 characters",
                ));
            }
            let action = i
                .get("action")
                .ok_or_else(|| MetaError::required("interactive['action']"))?;
            if str_at(action, &["button"]).is_none_or(|b| b.trim().is_empty() || chars(b) > 20) {
                return Err(MetaError::invalid(
                    "the list button label is 1–20 characters",
                ));
            }
            let sections = action
                .get("sections")
                .and_then(Value::as_array)
                .ok_or_else(|| MetaError::required("interactive['action']['sections']"))?;
            let rows: Vec<&Value> = sections
                .iter()
                .flat_map(|s| {
                    s.get("rows")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                })
                .collect();
            if !(1..=10).contains(&sections.len()) || !(1..=10).contains(&rows.len()) {
                return Err(MetaError::invalid(
                    "a list has 1–10 sections and 1–10 rows in all",
                ));
            }
            for r in rows {
                let ok = str_at(r, &["id"]).is_some_and(|id| !id.is_empty() && id.len() <= 200)
                    && str_at(r, &["title"])
                        .is_some_and(|t| !t.trim().is_empty() && chars(t) <= 24)
                    && str_at(r, &["description"]).is_none_or(|d| chars(d) <= 72);
                if !ok {
                    return Err(MetaError::invalid(
                        "a row has an id, a title of 1–24 and a description of at most 72 characters",
                    ));
                }
            }
        }
        Some("cta_url" | "flow" | "location_request_message" | "product" | "product_list") => {
            if body.is_none_or(|b| b.trim().is_empty()) {
                return Err(MetaError::required("interactive['body']['text']"));
            }
        }
        Some(other) => {
            return Err(MetaError::invalid(format!(
                "unknown interactive type `{other}`"
            )));
        }
        None => return Err(MetaError::required("interactive['type']")),
    }
    Ok(())
}

/// `POST /{phone-number-id}/messages`: a send, or marking a customer's message read.
async fn send_message(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((version, node)): Path<(String, String)>,
    body: Bytes,
) -> GraphResult<Json<Value>> {
    check_version(&version)?;
    let (ctx, number) = authenticate(&state, &headers).await?;
    if node != number.phone_number_id {
        return Err(MetaError::no_such_object(&node));
    }
    let v: Value = serde_json::from_slice(&body)
        .map_err(|e| MetaError::invalid(format!("the body is not JSON: {e}")))?;
    let now = now_ms(&state);
    match check_send(&v)? {
        SendRequest::MarkRead { message_id } => {
            let mut tx = state.store().begin_relaxed(&ctx).await?;
            let m = tx
                .sim_message(&message_id)
                .await?
                .filter(|m| m.direction == SimDirection::In && m.channel_id == number.channel_id)
                .ok_or_else(|| {
                    MetaError::invalid(format!("no inbound message with id {message_id}"))
                })?;
            if let Some(c) = m.customer_id {
                tx.mark_sim_inbound_read(c, m.created_ms, now).await?;
            }
            tx.commit().await?;
            Ok(Json(json!({ "success": true })))
        }
        SendRequest::Message {
            to,
            input,
            msg_type,
            template,
            media_id,
            body,
        } => {
            // The simulator's records stand in for Meta's, which are not ours to keep
            // durable: they commit without a disk sync (as read marks do), so carrying a
            // message costs our database no fsync of its own.
            let mut tx = state.store().begin_relaxed(&ctx).await?;
            let now = now_ms(&state);
            if let Some(id) = &media_id {
                let found = tx.sim_media(id).await?;
                if found.is_none_or(|m| m.channel_id != number.channel_id) {
                    return Err(MetaError::invalid(format!(
                        "media id {id} was not uploaded to this number"
                    )));
                }
            }
            let (phone, bsuid) = match &to {
                Address::Phone(p) => (Some(p.as_str()), None),
                Address::Bsuid(b) => (None, Some(b.as_str())),
            };
            let customer = tx
                .sim_customer_by_address(number.channel_id, phone, bsuid)
                .await?;
            let mut category = "service".to_owned();
            let mut rendered = None;
            if let Some(c) = &customer {
                match &template {
                    Some((name, lang)) => {
                        let t = tx.sim_template(number.channel_id, name, lang).await?;
                        match t {
                            Some(t) if t.status == "APPROVED" => {
                                category = t.category.to_lowercase();
                                let text = render_template(&t.components, &body["template"])?;
                                rendered = Some(text);
                            }
                            _ => {
                                return Err(MetaError::new(
                                    StatusCode::NOT_FOUND,
                                    132001,
                                    "(#132001) Template name does not exist in the translation",
                                )
                                .details(format!(
                                    "template name ({name}) does not exist in {lang}"
                                )));
                            }
                        }
                    }
                    None => {
                        let open = c.last_inbound_ms.is_some_and(|t| now - t < WINDOW_MS);
                        if !open {
                            return Err(MetaError::new(
                                StatusCode::BAD_REQUEST,
                                131047,
                                "(#131047) Re-engagement message",
                            )
                            .details("Message failed to send because more than 24 hours have passed since the customer last replied to this number."));
                        }
                    }
                }
            }
            // The number's throughput, once the send is known to be valid: one conditional
            // UPDATE of the number's row, which concurrent sends to the number then hold
            // only to this commit.
            if let Some(limit) = number.send_rate_limit
                && !tx
                    .take_sim_send_slot(number.channel_id, now_us(&state), limit)
                    .await?
            {
                return Err(MetaError::new(
                    StatusCode::BAD_REQUEST,
                    130429,
                    "(#130429) Rate limit hit",
                )
                .details(format!(
                    "Cloud API message throughput has been reached: this simulated number accepts {limit} message(s) per second."
                )));
            }
            let wamid = new_wamid();
            let failed = customer.is_none();
            // The phone shows a template filled in, as WhatsApp draws it.
            let mut body = body;
            if let Some(text) = rendered {
                body["sim_rendered"] = json!(text);
            }
            tx.insert_sim_message(&SimMessage {
                id: uuid::Uuid::now_v7(),
                channel_id: number.channel_id,
                customer_id: customer.as_ref().map(|c| c.id),
                wamid: wamid.clone(),
                direction: SimDirection::Out,
                msg_type: msg_type.clone(),
                payload: body,
                status: if failed { "failed" } else { "accepted" }.into(),
                error_code: failed.then_some(131026),
                created_ms: now,
                updated_ms: now,
            })
            .await?;
            tx.commit().await?;

            let mut contact = json!({ "input": input });
            match &customer {
                Some(c) => {
                    if let Some(p) = &c.phone {
                        contact["wa_id"] = json!(p);
                    }
                    contact["user_id"] = json!(c.bsuid);
                }
                None => {
                    if let Address::Phone(p) = &to {
                        contact["wa_id"] = json!(p);
                    }
                }
            }
            let answer = json!({
                "messaging_product": "whatsapp",
                "contacts": [contact],
                "messages": [{ "id": wamid, "message_status": "accepted" }],
            });
            let pricing = Pricing {
                billable: template.is_some(),
                category,
            };
            spawn_statuses(&state, ctx, number, customer, wamid, input, pricing);
            Ok(Json(answer))
        }
    }
}

/// After an accepted send: `sent` then `delivered` (or `failed` with 131026 for a number
/// that is no customer), each posted once the previous one was acknowledged or given up.
fn spawn_statuses(
    state: &AppState,
    ctx: TenantCtx,
    number: SimNumber,
    customer: Option<SimCustomer>,
    wamid: String,
    input: String,
    pricing: Pricing,
) {
    let state = state.clone();
    tokio::spawn(async move {
        let steps: &[&str] = if customer.is_some() {
            &["sent", "delivered"]
        } else {
            &["failed"]
        };
        for step in steps {
            let now = now_ms(&state);
            if customer.is_some() {
                let advanced = async {
                    let mut tx = state.store().begin_relaxed(&ctx).await?;
                    let moved = tx.advance_sim_message(&wamid, step, now).await?;
                    tx.commit().await?;
                    Ok::<_, frontdesk_store::StoreError>(moved)
                }
                .await;
                match advanced {
                    Ok(true) => {}
                    // Already further along (the phone showed it as read): nothing to say.
                    Ok(false) => continue,
                    Err(e) => {
                        tracing::error!(error = %e, "simulator: status not recorded");
                        return;
                    }
                }
            }
            let payload = webhooks::status(
                &number,
                &StatusEvent {
                    wamid: &wamid,
                    status: step,
                    unix_secs: unix_secs(now),
                    to: customer.as_ref(),
                    input: &input,
                    pricing: (*step != "failed").then_some(&pricing),
                    error: (*step == "failed").then_some((
                        131026,
                        "Message undeliverable",
                        "The recipient is not a WhatsApp user of this simulator (no fake customer has this number).",
                    )),
                },
            );
            webhooks::deliver(&state, &ctx, number.channel_id, &payload).await;
        }
    });
}

/// A file accepted by the media rules: its bytes, type and name.
pub(crate) struct Upload {
    pub bytes: Vec<u8>,
    pub mime: String,
    pub filename: Option<String>,
}

/// Checks a file against the media rules (also used for the phone page's uploads).
pub(crate) fn check_upload(u: &Upload) -> GraphResult<()> {
    let upload_error = |d: String| {
        MetaError::new(
            StatusCode::BAD_REQUEST,
            131053,
            "(#131053) Media upload error",
        )
        .details(d)
    };
    let Some((_, max)) = frontdesk_whatsapp::media_limit(&u.mime) else {
        return Err(upload_error(format!("Unsupported file type: {}", u.mime)));
    };
    if u.bytes.is_empty() {
        return Err(upload_error("the file is empty".into()));
    }
    if u.bytes.len() > max {
        return Err(upload_error(format!(
            "{} files are at most {max} bytes",
            u.mime
        )));
    }
    if u.filename.as_deref().is_some_and(|f| f.len() > 240) {
        return Err(upload_error(
            "the file name is at most 240 characters".into(),
        ));
    }
    Ok(())
}

/// Stores a checked upload for a number; returns its media id.
pub(crate) async fn store_upload(
    state: &AppState,
    ctx: &TenantCtx,
    number: &SimNumber,
    u: Upload,
) -> GraphResult<SimMedia> {
    check_upload(&u)?;
    let m = SimMedia {
        id: random_digits(16),
        channel_id: number.channel_id,
        sha256: sha256_b64(&u.bytes),
        file_size: u.bytes.len() as i64,
        mime_type: u.mime,
        filename: u.filename,
        bytes: u.bytes,
        created_ms: now_ms(state),
    };
    let mut tx = state.store().begin(ctx).await?;
    tx.insert_sim_media(&m).await?;
    tx.commit().await?;
    Ok(m)
}

/// `POST /{phone-number-id}/media`: multipart `messaging_product`, `type`, `file`.
async fn upload_media(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((version, node)): Path<(String, String)>,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> GraphResult<Json<Value>> {
    check_version(&version)?;
    let (ctx, number) = authenticate(&state, &headers).await?;
    if node != number.phone_number_id {
        return Err(MetaError::no_such_object(&node));
    }
    let mut multipart = multipart
        .map_err(|e| MetaError::invalid(format!("a multipart/form-data body is required: {e}")))?;
    let (mut product, mut declared, mut file) = (None, None, None);
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| MetaError::invalid(format!("unreadable multipart body: {e}")))?
    {
        match field.name() {
            Some("messaging_product") => product = field.text().await.ok(),
            Some("type") => declared = field.text().await.ok(),
            Some("file") => {
                let mime = field.content_type().map(str::to_owned);
                let name = field.file_name().map(str::to_owned);
                let bytes = field
                    .bytes()
                    .await
                    .map_err(|e| MetaError::invalid(format!("unreadable file: {e}")))?;
                file = Some((mime, name, bytes.to_vec()));
            }
            _ => {}
        }
    }
    if product.as_deref() != Some("whatsapp") {
        return Err(MetaError::required("messaging_product"));
    }
    let (file_mime, filename, bytes) = file.ok_or_else(|| MetaError::required("file"))?;
    let mime = declared
        .or(file_mime)
        .ok_or_else(|| MetaError::required("type"))?;
    let m = store_upload(
        &state,
        &ctx,
        &number,
        Upload {
            bytes,
            mime: mime.trim().to_ascii_lowercase(),
            filename,
        },
    )
    .await?;
    Ok(Json(json!({ "id": m.id })))
}

#[derive(Deserialize)]
struct Fields {
    fields: Option<String>,
    /// An upload session's signature (`GET /upload:…?sig=…`).
    sig: Option<String>,
}

/// `GET /{id}`: the phone number's info, the business account, or an uploaded file's URL.
async fn get_node(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((version, node)): Path<(String, String)>,
    Query(q): Query<Fields>,
) -> GraphResult<Json<Value>> {
    check_version(&version)?;
    let (ctx, number) = authenticate(&state, &headers).await?;
    if node.starts_with("upload:") {
        let q = super::uploads::SessionQuery { sig: q.sig };
        return super::uploads::status(&state, ctx, number, &node, q).await;
    }
    let full = if node == number.phone_number_id {
        let throughput = if number.send_rate_limit.is_some_and(|r| r < 80) {
            "STANDARD"
        } else {
            "HIGH"
        };
        json!({
            "id": number.phone_number_id,
            "verified_name": number.verified_name,
            "display_phone_number": number.display_number,
            "quality_rating": "GREEN",
            "code_verification_status": "VERIFIED",
            "name_status": "APPROVED",
            "platform_type": "CLOUD_API",
            "throughput": { "level": throughput },
            "messaging_limit_tier": "TIER_1K",
            "is_official_business_account": false,
            "account_mode": "SANDBOX",
        })
    } else if node == number.waba_id {
        json!({
            "id": number.waba_id,
            "name": number.verified_name,
            "currency": "USD",
            "timezone_id": "1",
            "message_template_namespace": format!("sim_{}", number.waba_id),
        })
    } else {
        let mut tx = state.store().begin_read(&ctx).await?;
        let media = tx.sim_media(&node).await?;
        tx.commit().await?;
        let m = media
            .filter(|m| m.channel_id == number.channel_id)
            .ok_or_else(|| MetaError::no_such_object(&node))?;
        let url = state
            .auth()
            .base_url
            .join(&format!("simulator/media/{}", m.id))
            .map_err(|_| MetaError::internal())?;
        return Ok(Json(json!({
            "messaging_product": "whatsapp",
            "url": url.as_str(),
            "mime_type": m.mime_type,
            "sha256": m.sha256,
            "file_size": m.file_size,
            "id": m.id,
        })));
    };
    // `?fields=a,b` answers those fields (and the id) only, as the Graph API does.
    let out = match q.fields {
        Some(f) => {
            let mut o = serde_json::Map::new();
            o.insert("id".into(), full["id"].clone());
            for name in f.split(',').map(str::trim) {
                if let Some(v) = full.get(name) {
                    o.insert(name.to_owned(), v.clone());
                }
            }
            Value::Object(o)
        }
        None => full,
    };
    Ok(Json(out))
}

/// `GET /simulator/media/{id}`: the bytes, for the same Bearer token (Meta's lookaside URL).
async fn download_media(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> GraphResult<Response> {
    let (ctx, number) = authenticate(&state, &headers).await?;
    let mut tx = state.store().begin_read(&ctx).await?;
    let media = tx.sim_media(&id).await?;
    tx.commit().await?;
    let m = media
        .filter(|m| m.channel_id == number.channel_id)
        .ok_or_else(|| MetaError::new(StatusCode::NOT_FOUND, 100, "(#100) Media not found"))?;
    Ok((
        [
            (header::CONTENT_TYPE, m.mime_type.clone()),
            (header::CONTENT_DISPOSITION, "attachment".to_owned()),
        ],
        m.bytes,
    )
        .into_response())
}

/// The review rule of the fake WABA: a template is approved when its body is 1–1024
/// characters and its variables are `{{1}}`…`{{n}}` in order (or all named, `{{first_name}}`,
/// each in `body_text_named_params`), each with an example, and neither first nor last in
/// the body (otherwise rejected as `INVALID_FORMAT`), and when a
/// template that is not MARKETING has no promotional words (offer, discount, sale, coupon,
/// "% off", "free gift"; otherwise `INCORRECT_CATEGORY`).
pub(crate) fn review(category: &str, components: &Value) -> Result<(), &'static str> {
    review_format(components)?;
    // Meta's reviewers refuse a utility or authentication template that advertises.
    let promotional = ["offer", "discount", "% off", "sale", "coupon", "free gift"];
    let text = components.to_string().to_lowercase();
    if category != "MARKETING" && promotional.iter().any(|w| text.contains(w)) {
        return Err("INCORRECT_CATEGORY");
    }
    Ok(())
}

/// Whether the components are Meta's preset authentication format (an OTP button; the body
/// and footer are WhatsApp's own text).
fn is_otp(components: &Value) -> bool {
    components.as_array().into_iter().flatten().any(|c| {
        c.get("buttons")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|b| str_at(b, &["type"]) == Some("OTP"))
    })
}

fn review_format(components: &Value) -> Result<(), &'static str> {
    if is_otp(components) {
        return Ok(());
    }
    let body = components
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| str_at(c, &["type"]).is_some_and(|t| t.eq_ignore_ascii_case("body")))
        .ok_or("INVALID_FORMAT")?;
    let text = str_at(body, &["text"]).ok_or("INVALID_FORMAT")?;
    if text.trim().is_empty() || chars(text) > 1024 {
        return Err("INVALID_FORMAT");
    }
    let mut vars = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or("INVALID_FORMAT")?;
        vars.push(after[..end].trim().to_owned());
        rest = &after[end + 2..];
    }
    let named = !vars.is_empty()
        && vars.iter().all(|v| {
            v.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
                && v.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        });
    if !vars.is_empty() {
        let t = text.trim();
        if t.starts_with("{{") || t.ends_with("}}") {
            return Err("INVALID_FORMAT");
        }
    }
    if named {
        // Named parameters (`parameter_format: NAMED`): each name needs its example.
        let examples: Vec<&str> = body
            .get("example")
            .and_then(|e| e.get("body_text_named_params"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|p| str_at(p, &["param_name"]))
            .collect();
        return if vars.iter().all(|v| examples.contains(&v.as_str())) {
            Ok(())
        } else {
            Err("INVALID_FORMAT")
        };
    }
    let mut distinct: Vec<&String> = Vec::new();
    for v in &vars {
        if !distinct.contains(&v) {
            distinct.push(v);
        }
    }
    for (i, v) in distinct.iter().enumerate() {
        if v.parse::<usize>().ok() != Some(i + 1) {
            return Err("INVALID_FORMAT");
        }
    }
    let vars = distinct;
    if !vars.is_empty() {
        let examples = body
            .get("example")
            .and_then(|e| e.get("body_text"))
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        if examples < vars.len() {
            return Err("INVALID_FORMAT");
        }
    }
    Ok(())
}

/// `POST /{waba-id}/message_templates`: stored as `PENDING`, reviewed at once in the
/// background, and the outcome posted as a `message_template_status_update` webhook.
async fn create_template(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((version, node)): Path<(String, String)>,
    body: Bytes,
) -> GraphResult<Json<Value>> {
    check_version(&version)?;
    let (ctx, number) = authenticate(&state, &headers).await?;
    if node != number.waba_id {
        return Err(MetaError::no_such_object(&node));
    }
    let v: Value = serde_json::from_slice(&body)
        .map_err(|e| MetaError::invalid(format!("the body is not JSON: {e}")))?;
    let name = v
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| MetaError::required("name"))?;
    if name.is_empty()
        || name.len() > 512
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(
            MetaError::new(StatusCode::BAD_REQUEST, 100, "(#100) Invalid parameter").details(
                "name may contain only lower-case letters, digits and underscores (at most 512)",
            ),
        );
    }
    let language = v
        .get("language")
        .and_then(Value::as_str)
        .filter(|l| (2..=15).contains(&l.len()))
        .ok_or_else(|| MetaError::required("language"))?;
    let category = v
        .get("category")
        .and_then(Value::as_str)
        .map(str::to_ascii_uppercase)
        .ok_or_else(|| MetaError::required("category"))?;
    if !["MARKETING", "UTILITY", "AUTHENTICATION"].contains(&category.as_str()) {
        return Err(
            MetaError::new(StatusCode::BAD_REQUEST, 100, "(#100) Invalid parameter")
                .details("category must be MARKETING, UTILITY or AUTHENTICATION"),
        );
    }
    let components = v
        .get("components")
        .filter(|c| c.as_array().is_some_and(|a| !a.is_empty() && a.len() <= 10))
        .cloned()
        .ok_or_else(|| MetaError::required("components"))?;
    if components.to_string().len() > 32 * 1024 {
        return Err(MetaError::invalid("components are at most 32 KiB"));
    }
    super::uploads::check_media_headers(&state, &ctx, &number, &components).await?;
    let t = SimTemplate {
        id: random_digits(16),
        channel_id: number.channel_id,
        name: name.to_owned(),
        language: language.to_owned(),
        category: category.clone(),
        status: "PENDING".into(),
        reason: None,
        components,
        created_ms: now_ms(&state),
    };
    let mut tx = state.store().begin(&ctx).await?;
    match tx.insert_sim_template(&t).await {
        Err(frontdesk_store::StoreError::Conflict(_)) => {
            return Err(
                MetaError::new(StatusCode::BAD_REQUEST, 100, "(#100) Invalid parameter")
                    .subcode(2388024)
                    .details(format!(
                        "Message template \"{name}\" already exists in {language}"
                    )),
            );
        }
        other => other?,
    }
    tx.commit().await?;
    let answer = json!({ "id": t.id, "status": "PENDING", "category": category });
    spawn_review(&state, ctx, number, t, false);
    Ok(Json(answer))
}

/// Reviews a template by the rule, records the outcome and posts it as a
/// `message_template_status_update` webhook, in the background (as Meta answers first).
fn spawn_review(state: &AppState, ctx: TenantCtx, number: SimNumber, t: SimTemplate, edit: bool) {
    let state2 = state.clone();
    tokio::spawn(async move {
        if edit {
            // An edit's outcome may equal the first review's webhook byte for byte (Meta's
            // `time` is in seconds), and identical bodies are deduplicated on receipt: the
            // outcome is posted in the next second, as it would be in reality.
            let ms = now_ms(&state2).rem_euclid(1000);
            tokio::time::sleep(std::time::Duration::from_millis((1000 - ms + 5) as u64)).await;
        }
        let (status, reason) = match review(&t.category, &t.components) {
            Ok(()) => ("APPROVED", None),
            Err(r) => ("REJECTED", Some(r)),
        };
        let recorded = async {
            let mut tx = state2.store().begin(&ctx).await?;
            tx.set_sim_template_status(&t.id, status, reason).await?;
            tx.commit().await
        }
        .await;
        if let Err(e) = recorded {
            tracing::error!(error = %e, "simulator: template review not recorded");
            return;
        }
        let value = json!({
            "event": status,
            "message_template_id": t.id.parse::<i64>().unwrap_or_default(),
            "message_template_name": t.name,
            "message_template_language": t.language,
            "message_template_category": t.category,
            "reason": reason.unwrap_or("NONE"),
        });
        let payload = webhooks::envelope(
            &number.waba_id,
            "message_template_status_update",
            value,
            Some(unix_secs(now_ms(&state2))),
        );
        webhooks::deliver(&state2, &ctx, number.channel_id, &payload).await;
    });
}

/// `POST /{app-id}/uploads`: opens a Resumable Upload session (see `uploads`).
async fn start_upload(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((version, node)): Path<(String, String)>,
    Query(q): Query<super::uploads::StartUpload>,
) -> GraphResult<Json<Value>> {
    let (ctx, number) = authenticate(&state, &headers).await?;
    super::uploads::start(&state, ctx, number, &version, &node, q).await
}

/// `POST /{id}`: a chunk of an upload session (`upload:…`), or a template edit.
async fn post_node(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((version, node)): Path<(String, String)>,
    Query(q): Query<super::uploads::SessionQuery>,
    body: Bytes,
) -> GraphResult<Json<Value>> {
    check_version(&version)?;
    let (ctx, number) = authenticate(&state, &headers).await?;
    if node.starts_with("upload:") {
        return super::uploads::chunk(&state, ctx, number, &node, q, &headers, body).await;
    }
    edit_template(&state, ctx, number, &node, &body).await
}

/// `POST /{template-id}`: new components (and category) for a template of this number's
/// business account; it goes back to review like a new one.
async fn edit_template(
    state: &AppState,
    ctx: TenantCtx,
    number: SimNumber,
    node: &str,
    body: &[u8],
) -> GraphResult<Json<Value>> {
    if body.len() > 64 * 1024 {
        return Err(MetaError::invalid("the body is at most 64 KiB"));
    }
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| MetaError::invalid(format!("the body is not JSON: {e}")))?;
    let mut tx = state.store().begin(&ctx).await?;
    let Some(mut t) = tx
        .sim_templates(number.channel_id)
        .await?
        .into_iter()
        .find(|t| t.id == node)
    else {
        return Err(MetaError::no_such_object(node));
    };
    let components = v
        .get("components")
        .filter(|c| c.as_array().is_some_and(|a| !a.is_empty() && a.len() <= 10))
        .cloned()
        .ok_or_else(|| MetaError::required("components"))?;
    if components.to_string().len() > 32 * 1024 {
        return Err(MetaError::invalid("components are at most 32 KiB"));
    }
    let category = v
        .get("category")
        .and_then(Value::as_str)
        .map(str::to_ascii_uppercase)
        .filter(|c| ["MARKETING", "UTILITY", "AUTHENTICATION"].contains(&c.as_str()));
    tx.commit().await?;
    super::uploads::check_media_headers(state, &ctx, &number, &components).await?;
    let mut tx = state.store().begin(&ctx).await?;
    tx.edit_sim_template(&t.id, &components, category.as_deref())
        .await?;
    tx.commit().await?;
    t.components = components;
    if let Some(c) = category {
        t.category = c;
    }
    spawn_review(state, ctx, number, t, true);
    Ok(Json(json!({ "success": true })))
}

/// The text of one template variable's value in a send's parameters.
fn param_text(p: &Value) -> String {
    match str_at(p, &["type"]) {
        Some("text") => str_at(p, &["text"]).unwrap_or_default().to_owned(),
        Some("coupon_code") => str_at(p, &["coupon_code"]).unwrap_or_default().to_owned(),
        Some(t) => format!("[{t}]"),
        None => String::new(),
    }
}

/// Counts the variables of a template text.
fn var_names(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("{{") {
        let after = &rest[i + 2..];
        let Some(end) = after.find("}}") else { break };
        let v = after[..end].trim().to_owned();
        if !out.contains(&v) {
            out.push(v);
        }
        rest = &after[end + 2..];
    }
    out
}

/// Fills a text's variables from a component's parameters, by name when they carry one,
/// else in order; a count that does not match is Meta's 132000.
fn fill_text(text: &str, params: &[Value]) -> GraphResult<String> {
    let vars = var_names(text);
    if vars.len() != params.len() {
        return Err(MetaError::new(
            StatusCode::BAD_REQUEST,
            132000,
            "(#132000) Number of parameters does not match the expected number of params",
        )
        .details(format!(
            "expected {} parameter(s), got {}",
            vars.len(),
            params.len()
        )));
    }
    let mut out = text.to_owned();
    for (i, var) in vars.iter().enumerate() {
        let p = params
            .iter()
            .find(|p| str_at(p, &["parameter_name"]) == Some(var.as_str()))
            .or_else(|| params.get(i))
            .map(param_text)
            .unwrap_or_default();
        out = out.replace(&format!("{{{{{var}}}}}"), &p);
    }
    Ok(out)
}

/// The text a phone shows for a template send: the approved template's components with
/// the send's parameters in place (header, body, footer, buttons with their URLs).
pub(crate) fn render_template(template: &Value, send: &Value) -> GraphResult<String> {
    let params_of = |kind: &str| -> Vec<Value> {
        send.get("components")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|c| str_at(c, &["type"]).is_some_and(|t| t.eq_ignore_ascii_case(kind)))
            .and_then(|c| c.get("parameters"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let button_param = |index: usize| -> Option<String> {
        send.get("components")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|c| {
                str_at(c, &["type"]) == Some("button")
                    && str_at(c, &["index"]).and_then(|i| i.parse::<usize>().ok()) == Some(index)
            })
            .and_then(|c| c.get("parameters")?.get(0).map(param_text))
    };
    let mut parts = Vec::new();
    for c in template.as_array().into_iter().flatten() {
        match str_at(c, &["type"]).map(str::to_ascii_uppercase).as_deref() {
            Some("HEADER") => match str_at(c, &["format"]) {
                Some(f) if f.eq_ignore_ascii_case("text") => parts.push(fill_text(
                    str_at(c, &["text"]).unwrap_or_default(),
                    &params_of("header"),
                )?),
                Some(f) if f.eq_ignore_ascii_case("location") => {
                    let p = params_of("header");
                    let place = p
                        .first()
                        .filter(|p| str_at(p, &["type"]) == Some("location"))
                        .and_then(|p| p.get("location"))
                        .filter(|l| str_at(l, &["latitude"]).is_some() && str_at(l, &["longitude"]).is_some())
                        .ok_or_else(|| {
                            MetaError::new(
                                StatusCode::BAD_REQUEST,
                                132000,
                                "(#132000) Number of parameters does not match the expected number of params",
                            )
                            .details("the location header needs a location parameter with latitude and longitude")
                        })?;
                    let words: Vec<&str> = [str_at(place, &["name"]), str_at(place, &["address"])]
                        .into_iter()
                        .flatten()
                        .collect();
                    // The phone draws a map pin with the place's name and address.
                    parts.push(if words.is_empty() {
                        "[location]".to_owned()
                    } else {
                        format!("[location: {}]", words.join(", "))
                    });
                }
                Some(f) => parts.push(format!("[{}]", f.to_ascii_lowercase())),
                None => {}
            },
            Some("BODY") if str_at(c, &["text"]).is_none() && is_otp(template) => {
                // WhatsApp writes an authentication template's text around the code.
                use frontdesk_domain::template::{OTP_BODY, OTP_SECURITY};
                let mut text = fill_text(OTP_BODY, &params_of("body"))?;
                if c.get("add_security_recommendation")
                    .and_then(Value::as_bool)
                    == Some(true)
                {
                    text = format!("{text} {OTP_SECURITY}");
                }
                parts.push(text);
            }
            Some("BODY") => parts.push(fill_text(
                str_at(c, &["text"]).unwrap_or_default(),
                &params_of("body"),
            )?),
            Some("FOOTER") => match (
                str_at(c, &["text"]),
                c.get("code_expiration_minutes").and_then(Value::as_u64),
            ) {
                (None, Some(m)) => parts.push(format!("This code expires in {m} minutes.")),
                (text, _) => parts.push(text.unwrap_or_default().to_owned()),
            },
            Some("BUTTONS") => {
                let mut labels = Vec::new();
                for (i, b) in c
                    .get("buttons")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .enumerate()
                {
                    let text = str_at(b, &["text"]).unwrap_or("Copy code");
                    match str_at(b, &["type"]) {
                        Some("URL") => {
                            let url = str_at(b, &["url"]).unwrap_or_default();
                            let url = match (url.contains("{{"), button_param(i)) {
                                (true, Some(v)) => url.replace("{{1}}", &v),
                                (true, None) => {
                                    return Err(MetaError::new(
                                        StatusCode::BAD_REQUEST,
                                        132000,
                                        "(#132000) Number of parameters does not match the expected number of params",
                                    )
                                    .details(format!("button {i} needs its URL parameter")));
                                }
                                (false, _) => url.to_owned(),
                            };
                            labels.push(format!("[{text} → {url}]"));
                        }
                        _ => labels.push(format!("[{text}]")),
                    }
                }
                parts.push(labels.join(" "));
            }
            Some("CAROUSEL") => {
                let sent_cards: Vec<Value> = send
                    .get("components")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .find(|c| str_at(c, &["type"]) == Some("carousel"))
                    .and_then(|c| c.get("cards"))
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                for (i, card) in c
                    .get("cards")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .enumerate()
                {
                    let sent = sent_cards
                        .iter()
                        .find(|s| s.get("card_index").and_then(Value::as_u64) == Some(i as u64))
                        .ok_or_else(|| {
                            MetaError::new(
                                StatusCode::BAD_REQUEST,
                                132000,
                                "(#132000) Number of parameters does not match the expected number of params",
                            )
                            .details(format!("card {i} has no parameters"))
                        })?;
                    let inner = card.get("components").cloned().unwrap_or(Value::Null);
                    let text = render_template(&inner, sent)?;
                    parts.push(format!("[card {}] {}", i + 1, text.replace('\n', " ")));
                }
            }
            _ => {}
        }
    }
    Ok(parts.join("\n"))
}

#[derive(Deserialize)]
struct DeleteTemplate {
    name: Option<String>,
    hsm_id: Option<String>,
}

/// `DELETE /{waba-id}/message_templates?name=…[&hsm_id=…]`: with `hsm_id`, only that
/// template (one language); without, every language of the name. A send naming a deleted
/// template is refused like any unknown template.
async fn delete_templates(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((version, node)): Path<(String, String)>,
    Query(q): Query<DeleteTemplate>,
) -> GraphResult<Json<Value>> {
    check_version(&version)?;
    let (ctx, number) = authenticate(&state, &headers).await?;
    if node != number.waba_id {
        return Err(MetaError::no_such_object(&node));
    }
    let name = q
        .name
        .as_deref()
        .filter(|n| !n.is_empty() && n.len() <= 512)
        .ok_or_else(|| MetaError::required("name"))?;
    let hsm_id = q.hsm_id.as_deref().filter(|h| !h.is_empty());
    let mut tx = state.store().begin(&ctx).await?;
    let n = tx
        .delete_sim_templates(number.channel_id, name, hsm_id)
        .await?;
    if n == 0 {
        return Err(
            MetaError::new(StatusCode::BAD_REQUEST, 100, "(#100) Invalid parameter")
                .details(format!("Message template \"{name}\" was not found")),
        );
    }
    tx.commit().await?;
    Ok(Json(json!({ "success": true })))
}

#[derive(Deserialize)]
struct TemplateFilter {
    name: Option<String>,
    status: Option<String>,
}

/// `GET /{waba-id}/message_templates`, optionally filtered by `name` and `status`.
async fn list_templates(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((version, node)): Path<(String, String)>,
    Query(q): Query<TemplateFilter>,
) -> GraphResult<Json<Value>> {
    check_version(&version)?;
    let (ctx, number) = authenticate(&state, &headers).await?;
    if node != number.waba_id {
        return Err(MetaError::no_such_object(&node));
    }
    let mut tx = state.store().begin_read(&ctx).await?;
    let all = tx.sim_templates(number.channel_id).await?;
    tx.commit().await?;
    let data: Vec<Value> = all
        .into_iter()
        .filter(|t| q.name.as_deref().is_none_or(|n| t.name == n))
        .filter(|t| {
            q.status
                .as_deref()
                .is_none_or(|s| t.status.eq_ignore_ascii_case(s))
        })
        .map(|t| {
            json!({
                "name": t.name,
                "components": t.components,
                "language": t.language,
                "status": t.status,
                "category": t.category,
                "id": t.id,
                "quality_score": { "score": if t.status == "APPROVED" { "GREEN" } else { "UNKNOWN" } },
                "rejected_reason": t.reason.clone().unwrap_or_else(|| "NONE".into()),
            })
        })
        .collect();
    Ok(Json(
        json!({ "data": data, "paging": { "cursors": { "before": "QVFI", "after": "QVFI" } } }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn review_rule() {
        let body = |text: &str, ex: Value| json!([{ "type": "BODY", "text": text, "example": { "body_text": [ex] } }]);
        assert_eq!(
            review(
                "UTILITY",
                &body("Hello {{1}}, see you at {{2}}.", json!(["Ana", "10:30"]))
            ),
            Ok(())
        );
        assert_eq!(
            review(
                "UTILITY",
                &json!([{ "type": "BODY", "text": "No variables at all." }])
            ),
            Ok(())
        );
        assert!(
            review("UTILITY", &body("Hello {{1}}", json!(["Ana"]))).is_err(),
            "variable last"
        );
        assert!(
            review("UTILITY", &body("Hi {{2}} there", json!(["x", "y"]))).is_err(),
            "not numbered from 1"
        );
        assert!(
            review("UTILITY", &body("Hi {{1}} and {{2}} ok", json!(["x"]))).is_err(),
            "missing example"
        );
        assert!(
            review(
                "UTILITY",
                &json!([{ "type": "HEADER", "format": "TEXT", "text": "x" }])
            )
            .is_err(),
            "no body"
        );
        let named = json!([{ "type": "BODY", "text": "Hi {{first_name}}, code {{code}} works.",
            "example": { "body_text_named_params": [{ "param_name": "first_name", "example": "Ana" }, { "param_name": "code", "example": "X1" }] } }]);
        assert_eq!(review("UTILITY", &named), Ok(()));
        let unnamed_example = json!([{ "type": "BODY", "text": "Hi {{first_name}}, welcome.",
            "example": { "body_text_named_params": [{ "param_name": "name", "example": "Ana" }] } }]);
        assert!(
            review("UTILITY", &unnamed_example).is_err(),
            "example for another name"
        );
        let promo = json!([{ "type": "BODY", "text": "A 20% OFF offer for you." }]);
        assert_eq!(review("UTILITY", &promo), Err("INCORRECT_CATEGORY"));
        assert_eq!(review("MARKETING", &promo), Ok(()));
    }

    #[test]
    fn send_bodies_are_checked_like_meta() {
        let ok = json!({ "messaging_product": "whatsapp", "to": "+91 98765 43210", "type": "text", "text": { "body": "hi" } });
        assert!(matches!(check_send(&ok), Ok(SendRequest::Message { .. })));
        let code = |v: Value| check_send(&v).unwrap_err().code;
        assert_eq!(
            code(json!({ "to": "919876543210", "type": "text", "text": { "body": "hi" } })),
            100
        );
        assert_eq!(
            code(
                json!({ "messaging_product": "whatsapp", "type": "text", "text": { "body": "hi" } })
            ),
            100
        );
        assert_eq!(
            code(
                json!({ "messaging_product": "whatsapp", "to": "919876543210", "type": "text", "text": { "body": "x".repeat(4097) } })
            ),
            131009
        );
        assert_eq!(
            code(json!({ "messaging_product": "whatsapp", "to": "919876543210", "type": "text" })),
            100
        );
        assert_eq!(
            code(
                json!({ "messaging_product": "whatsapp", "recipient": "not a bsuid", "type": "text", "text": { "body": "x" } })
            ),
            131009
        );
        assert_eq!(
            code(
                json!({ "messaging_product": "whatsapp", "to": "919876543210", "type": "interactive", "interactive": { "type": "button", "body": { "text": "x" }, "action": { "buttons": [] } } })
            ),
            131009
        );
        assert_eq!(
            code(
                json!({ "messaging_product": "whatsapp", "to": "919876543210", "type": "hologram", "hologram": {} })
            ),
            131009
        );
        assert!(matches!(
            check_send(
                &json!({ "messaging_product": "whatsapp", "status": "read", "message_id": "wamid.X" })
            ),
            Ok(SendRequest::MarkRead { .. })
        ));
    }
}
