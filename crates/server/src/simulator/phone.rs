//! The customer "phone": pages where a member of the organisation plays a fake customer of
//! one of its simulated numbers. Everything the customer does becomes a signed Meta
//! webhook posted to the channel's webhook URL; the business's messages (sent through the
//! fake Graph API) show up here, and showing them posts their `read` status.
//!
//! Bubbles are named from the phone's side, as on a real phone: `.sim-msg.out` is what the
//! customer sent (an inbound message for the business), `.sim-msg.in` what the business
//! sent. Each carries `data-wamid`, `data-type` and `data-status`.

use super::graph::{Upload, check_upload, store_upload};
use super::webhooks::{self, StatusEvent};
use super::{digits, new_wamid, now_ms, provision, random_digits};
use crate::AppState;
use crate::auth::{Access, Authed, Tenant};
use crate::error::{ApiError, ErrorEnvelope};
use crate::routes::RouteTableBuilder;
use crate::web::{PageCtx, PageError, PageForm, see_other};
use axum::Json;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use axum::routing::{get, post};
use frontdesk_domain::{ChannelId, Permission};
use frontdesk_store::{
    SimCustomer, SimCustomerId, SimDirection, SimMessage, SimNumber, StoreError, TenantCtx,
};
use maud::html;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

pub(crate) fn routes(b: RouteTableBuilder) -> RouteTableBuilder {
    b.page(Method::GET, "/simulator", get(index), Access::Member)
        .page(
            Method::POST,
            "/simulator/numbers",
            post(connect_number),
            Access::Perm(Permission::ChannelsManage),
        )
        .page(
            Method::POST,
            "/simulator/numbers/{channel_id}/customers",
            post(create_customer),
            Access::Member,
        )
        .page(
            Method::GET,
            "/simulator/customers/{customer_id}",
            get(chat),
            Access::Member,
        )
        .page(
            Method::POST,
            "/simulator/customers/{customer_id}/messages",
            post(customer_sends),
            Access::Member,
        )
        .page(
            Method::POST,
            "/simulator/customers/{customer_id}/image",
            post(customer_sends_image),
            Access::Member,
        )
        .json(utoipa_axum::routes!(chat_json), Access::Member)
        .json(utoipa_axum::routes!(seen), Access::Member)
}

fn customer_id(s: &str) -> Result<SimCustomerId, ApiError> {
    SimCustomerId::parse(s).map_err(|_| ApiError::NotFound)
}

#[derive(Deserialize, Default)]
struct Notice {
    ok: Option<String>,
}

async fn index(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Tenant(ctx): Tenant,
    headers: HeaderMap,
    Query(q): Query<Notice>,
) -> Result<Response, PageError> {
    let mut tx = state.store().begin_read(&ctx).await?;
    let numbers = tx.sim_numbers().await?;
    let customers = tx.sim_customers(None).await?;
    tx.commit().await?;
    let can_connect = ctx.can(Permission::ChannelsManage);
    let page = PageCtx::new(&state, Some(caller), &headers, "/simulator").await;
    Ok(page.render("WhatsApp simulator", html! {
        @if q.ok.as_deref() == Some("connected") { p.notice role="status" data-testid="notice" { "Simulated number connected." } }
        p.muted { "Chat with your own WhatsApp numbers as a fake customer. Frontdesk plays Meta: what you send here arrives as a signed webhook, and what the business sends shows up here." }
        @if numbers.is_empty() { p data-testid="sim-empty" { "No simulated number yet." } }
        @for n in &numbers {
            section.sim-number data-channel-id=(n.channel_id) data-phone-number-id=(n.phone_number_id) {
                h2 { (n.verified_name) " " span.muted { (n.display_number) } }
                p.muted {
                    "Phone number id " code { (n.phone_number_id) } ", business account " code { (n.waba_id) } ". "
                    @match n.send_rate_limit { Some(r) => { "Accepts " (r) " message(s) per second." } None => { "No send rate limit." } }
                }
                ul.sim-customers {
                    @for c in customers.iter().filter(|c| c.channel_id == n.channel_id) {
                        li { a href={ "/simulator/customers/" (c.id) } data-customer-id=(c.id) { (c.name) } " " span.muted { (identity(c)) } }
                    }
                }
                form.sim-new-customer method="post" action={ "/simulator/numbers/" (n.channel_id) "/customers" } {
                    (page.csrf_field())
                    h3 { "Add a fake customer" }
                    label { "Name" input type="text" name="name" required maxlength="100"; }
                    label { "Phone number (with country code; leave empty for a username-only customer)" input type="tel" name="phone" placeholder="+91 98765 43210"; }
                    label { "WhatsApp username (optional; required without a phone number)" input type="text" name="username" maxlength="35"; }
                    button type="submit" data-testid="sim-add-customer" { "Add customer" }
                }
            }
        }
        @if can_connect {
            h2 { "Connect a simulated number" }
            form #sim-connect method="post" action="/simulator/numbers" {
                (page.csrf_field())
                label { "Name" input type="text" name="name" required maxlength="100" value="Simulated number"; }
                label { "Send rate limit (messages per second; empty: none)" input type="number" name="send_rate_limit" min="1" max="1000"; }
                button type="submit" data-testid="sim-connect" { "Connect a simulated number" }
            }
        }
    }))
}

fn identity(c: &SimCustomer) -> String {
    match (&c.phone, &c.username) {
        (Some(p), _) => format!("+{p}"),
        (None, Some(u)) => format!("@{u} ({})", c.bsuid),
        (None, None) => c.bsuid.clone(),
    }
}

#[derive(Deserialize)]
struct ConnectForm {
    name: String,
    #[serde(default)]
    send_rate_limit: String,
}

async fn connect_number(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    PageForm(f): PageForm<ConnectForm>,
) -> Result<Response, PageError> {
    let rate = match f.send_rate_limit.trim() {
        "" => None,
        r => Some(r.parse::<i32>().map_err(|_| {
            ApiError::unprocessable("invalid", "the send rate limit is a whole number")
        })?),
    };
    provision::connect(&state, &ctx, &f.name, rate).await?;
    Ok(see_other("/simulator?ok=connected", &[]))
}

#[derive(Deserialize)]
struct CustomerForm {
    name: String,
    #[serde(default)]
    phone: String,
    #[serde(default)]
    username: String,
}

/// A BSUID like Meta's: a country prefix and 20 digits.
fn new_bsuid(phone: Option<&str>) -> String {
    let prefix = match phone {
        Some(p) if p.starts_with("91") => "IN",
        Some(p) if p.starts_with("44") => "GB",
        Some(p) if p.starts_with("49") => "DE",
        _ => "US",
    };
    format!("{prefix}.{}", random_digits(20))
}

async fn create_customer(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(channel): Path<String>,
    PageForm(f): PageForm<CustomerForm>,
) -> Result<Response, PageError> {
    let channel = ChannelId::parse(&channel).map_err(|_| ApiError::NotFound)?;
    let phone = match f.phone.trim() {
        "" => None,
        p => {
            let e = frontdesk_domain::E164::parse(p).map_err(|_| {
                ApiError::unprocessable(
                    "invalid",
                    "the phone number needs its country code, e.g. +91 98765 43210",
                )
            })?;
            Some(e.digits().to_owned())
        }
    };
    let username =
        Some(f.username.trim().trim_start_matches('@').to_owned()).filter(|u| !u.is_empty());
    if phone.is_none() && username.is_none() {
        return Err(ApiError::unprocessable(
            "invalid",
            "give a phone number, or a username for a username-only customer",
        )
        .into());
    }
    if username.as_deref().is_some_and(|u| {
        !u.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_')
    }) {
        return Err(ApiError::unprocessable(
            "invalid",
            "a username is letters, digits, '.' and '_'",
        )
        .into());
    }
    let now = now_ms(&state);
    let mut tx = state.store().begin(&ctx).await?;
    let c = tx
        .create_sim_customer(&SimCustomer {
            id: SimCustomerId::new(),
            channel_id: channel,
            name: f.name,
            bsuid: new_bsuid(phone.as_deref()),
            phone,
            username,
            last_inbound_ms: None,
            created_ms: now,
        })
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => ApiError::conflict(
                "sim_customer_exists",
                "this number already has a customer with this phone number",
            ),
            other => other.into(),
        })?;
    tx.commit().await?;
    Ok(see_other(&format!("/simulator/customers/{}", c.id), &[]))
}

/// A message's text for the chat bubble.
fn preview(m: &SimMessage) -> String {
    let p = &m.payload;
    let s = |path: &[&str]| {
        let mut cur = p;
        for k in path {
            cur = &cur[*k];
        }
        cur.as_str().map(str::to_owned)
    };
    match m.msg_type.as_str() {
        "text" => s(&["text", "body"]).unwrap_or_default(),
        "location" => format!(
            "📍 {} ({}, {})",
            s(&["location", "name"]).unwrap_or_default(),
            p["location"]["latitude"],
            p["location"]["longitude"]
        ),
        "reaction" => format!("reacted {}", s(&["reaction", "emoji"]).unwrap_or_default()),
        "interactive" => match s(&["interactive", "type"]).as_deref() {
            Some("button_reply") => {
                s(&["interactive", "button_reply", "title"]).unwrap_or_default()
            }
            Some("list_reply") => s(&["interactive", "list_reply", "title"]).unwrap_or_default(),
            _ => s(&["interactive", "body", "text"]).unwrap_or_default(),
        },
        "template" => s(&["sim_rendered"]).unwrap_or_else(|| {
            format!(
                "[template {}]",
                s(&["template", "name"]).unwrap_or_default()
            )
        }),
        t => {
            let caption = s(&[t, "caption"]);
            match caption {
                Some(c) => format!("[{t}] {c}"),
                None => format!("[{t}]"),
            }
        }
    }
}

fn ticks(m: &SimMessage) -> &'static str {
    match m.status.as_str() {
        "accepted" => "🕓",
        "sent" => "✓",
        "delivered" | "received" => "✓✓",
        "read" => "✓✓",
        "failed" => "⚠",
        _ => "",
    }
}

fn time_of(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!("[hour]:[minute]"))
                .ok()
        })
        .unwrap_or_default()
}

/// The tap targets of an interactive message the business sent: buttons, or list rows.
fn interactive_choices(m: &SimMessage) -> Vec<(String, String, Option<String>, &'static str)> {
    let i = &m.payload["interactive"];
    let mut out = Vec::new();
    match i["type"].as_str() {
        Some("button") => {
            for b in i["action"]["buttons"].as_array().into_iter().flatten() {
                if let (Some(id), Some(t)) =
                    (b["reply"]["id"].as_str(), b["reply"]["title"].as_str())
                {
                    out.push((id.to_owned(), t.to_owned(), None, "button_reply"));
                }
            }
        }
        Some("list") => {
            for s in i["action"]["sections"].as_array().into_iter().flatten() {
                for r in s["rows"].as_array().into_iter().flatten() {
                    if let (Some(id), Some(t)) = (r["id"].as_str(), r["title"].as_str()) {
                        out.push((
                            id.to_owned(),
                            t.to_owned(),
                            r["description"].as_str().map(str::to_owned),
                            "list_reply",
                        ));
                    }
                }
            }
        }
        _ => {}
    }
    out
}

async fn load_chat(
    state: &AppState,
    ctx: &TenantCtx,
    id: SimCustomerId,
) -> Result<(SimCustomer, SimNumber, Vec<SimMessage>), ApiError> {
    let mut tx = state.store().begin_read(ctx).await?;
    let c = tx.sim_customer(id).await?;
    let n = tx.sim_number(c.channel_id).await?;
    let msgs = tx.sim_chat(id, 200).await?;
    tx.commit().await?;
    Ok((c, n, msgs))
}

async fn chat(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Tenant(ctx): Tenant,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let id = customer_id(&id)?;
    let (c, n, msgs) = load_chat(&state, &ctx, id).await?;
    let page = PageCtx::new(&state, Some(caller), &headers, "/simulator").await;
    let base = format!("/simulator/customers/{}", c.id);
    let quotable: Vec<&SimMessage> = msgs
        .iter()
        .rev()
        .filter(|m| m.msg_type != "reaction")
        .take(20)
        .collect();
    let reply_select = |name: &'static str, label: &'static str, optional: bool| {
        html! {
            label { (label)
                select name=(name) {
                    @if optional { option value="" { "(none)" } }
                    @for m in &quotable { option value=(m.wamid) { (if m.direction == SimDirection::In { "You: " } else { "Business: " }) (preview(m).chars().take(40).collect::<String>()) } }
                }
            }
        }
    };
    Ok(page.render(&format!("{} — phone", c.name), html! {
        p.muted {
            "Chatting with " strong { (n.verified_name) } " (" (n.display_number) ") as " strong { (c.name) } " " span data-testid="sim-identity" { (identity(&c)) } ". "
            a href="/simulator" { "All simulated customers" }
        }
        div #sim-phone data-customer-id=(c.id) data-poll=(format!("/api/v1/simulator/customers/{}/messages", c.id)) data-seen=(format!("/api/v1/simulator/customers/{}/seen", c.id)) data-csrf=(page.csrf) {
            ol #sim-chat data-count=(msgs.len()) {
                @for m in &msgs {
                    @let side = if m.direction == SimDirection::In { "out" } else { "in" };
                    li class={ "sim-msg " (side) } data-wamid=(m.wamid) data-type=(m.msg_type) data-status=(m.status) data-direction=(if side == "out" { "from-customer" } else { "to-customer" }) {
                        @if let Some(ctx_id) = m.payload["context"]["id"].as_str().or(m.payload["context"]["message_id"].as_str()) {
                            @if let Some(q) = msgs.iter().find(|x| x.wamid == ctx_id) { blockquote.sim-quote { (preview(q)) } }
                        }
                        span.sim-text { (preview(m)) }
                        @let choices = if side == "in" { interactive_choices(m) } else { Vec::new() };
                        @if !choices.is_empty() {
                            div.sim-choices {
                                @for (cid, title, desc, kind) in &choices {
                                    form.inline method="post" action={ (base) "/messages" } {
                                        (page.csrf_field())
                                        input type="hidden" name="kind" value=(kind);
                                        input type="hidden" name="reply_id" value=(cid);
                                        input type="hidden" name="reply_title" value=(title);
                                        @if let Some(d) = desc { input type="hidden" name="reply_description" value=(d); }
                                        input type="hidden" name="context" value=(m.wamid);
                                        button.sim-tap type="submit" data-reply-id=(cid) { (title) }
                                    }
                                }
                            }
                        }
                        span.sim-meta { (time_of(m.created_ms)) " " span.sim-ticks.read[m.status == "read"] { (ticks(m)) } }
                    }
                }
            }
        }
        form #sim-compose method="post" action={ (base) "/messages" } {
            (page.csrf_field())
            input type="hidden" name="kind" value="text";
            label { "Message" input #sim-text type="text" name="body" required maxlength="4096" autocomplete="off"; }
            (reply_select("context", "Reply to", true))
            button type="submit" data-testid="sim-send" { "Send" }
        }
        details.sim-more {
            summary { "Location, photo, reaction" }
            form #sim-location method="post" action={ (base) "/messages" } {
                (page.csrf_field())
                input type="hidden" name="kind" value="location";
                label { "Latitude" input type="number" name="latitude" step="any" min="-90" max="90" required value="52.5200"; }
                label { "Longitude" input type="number" name="longitude" step="any" min="-180" max="180" required value="13.4050"; }
                label { "Place name" input type="text" name="loc_name" maxlength="100"; }
                label { "Address" input type="text" name="address" maxlength="200"; }
                button type="submit" { "Share location" }
            }
            form #sim-image method="post" action={ (base) "/image" } enctype="multipart/form-data" {
                (page.csrf_field())
                label { "Photo (JPEG or PNG)" input type="file" name="file" accept="image/jpeg,image/png" required; }
                label { "Caption" input type="text" name="caption" maxlength="1024"; }
                button type="submit" { "Send photo" }
            }
            @if !quotable.is_empty() {
                form #sim-reaction method="post" action={ (base) "/messages" } {
                    (page.csrf_field())
                    input type="hidden" name="kind" value="reaction";
                    (reply_select("message_id", "React to", false))
                    label { "Emoji (empty removes your reaction)" input type="text" name="emoji" maxlength="8" value="👍"; }
                    button type="submit" { "React" }
                }
            }
        }
    }))
}

#[derive(Deserialize)]
struct SendForm {
    kind: String,
    #[serde(default)]
    body: String,
    #[serde(default)]
    context: String,
    #[serde(default)]
    latitude: String,
    #[serde(default)]
    longitude: String,
    #[serde(default)]
    loc_name: String,
    #[serde(default)]
    address: String,
    #[serde(default)]
    message_id: String,
    #[serde(default)]
    emoji: String,
    #[serde(default)]
    reply_id: String,
    #[serde(default)]
    reply_title: String,
    #[serde(default)]
    reply_description: String,
}

fn bad(message: &str) -> ApiError {
    ApiError::unprocessable("invalid", message)
}

/// Sends `message` (its `type` and object, and `context`) as the customer: stored, and
/// posted to the channel's webhook URL in the background.
async fn send_as_customer(
    state: &AppState,
    ctx: &TenantCtx,
    id: SimCustomerId,
    context: Option<&str>,
    build: impl FnOnce(&[SimMessage]) -> Result<Value, ApiError>,
) -> Result<(), ApiError> {
    let now = now_ms(state);
    let mut tx = state.store().begin(ctx).await?;
    let c = tx.sim_customer(id).await?;
    let n = tx.sim_number(c.channel_id).await?;
    let chat = tx.sim_chat(id, 200).await?;
    let mut message = build(&chat)?;
    if let Some(wamid) = context.filter(|w| !w.is_empty()) {
        let quoted = chat
            .iter()
            .find(|m| m.wamid == wamid)
            .ok_or_else(|| bad("the message replied to is not in this chat"))?;
        let from = match quoted.direction {
            SimDirection::Out => digits(&n.display_number),
            SimDirection::In => c.phone.clone().unwrap_or_else(|| c.bsuid.clone()),
        };
        message["context"] = json!({ "from": from, "id": wamid });
    }
    let msg_type = message["type"].as_str().unwrap_or("text").to_owned();
    let wamid = new_wamid();
    let (payload, stored) =
        webhooks::inbound_message(&n, &c, &wamid, now.div_euclid(1000), message);
    tx.insert_sim_message(&SimMessage {
        id: uuid::Uuid::now_v7(),
        channel_id: n.channel_id,
        customer_id: Some(c.id),
        wamid,
        direction: SimDirection::In,
        msg_type,
        payload: stored,
        status: "received".into(),
        error_code: None,
        created_ms: now,
        updated_ms: now,
    })
    .await?;
    tx.touch_sim_inbound(c.id, now).await?;
    tx.commit().await?;
    webhooks::spawn_deliver(state, ctx, n.channel_id, payload);
    Ok(())
}

async fn customer_sends(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
    PageForm(f): PageForm<SendForm>,
) -> Result<Response, PageError> {
    let id = customer_id(&id)?;
    let context = Some(f.context.as_str());
    send_as_customer(&state, &ctx, id, context, |chat| {
        Ok(match f.kind.as_str() {
            "text" => {
                let body = f.body.trim();
                if body.is_empty() || body.chars().count() > 4096 {
                    return Err(bad("a message is 1–4096 characters"));
                }
                json!({ "type": "text", "text": { "body": body } })
            }
            "location" => {
                let lat: f64 = f.latitude.trim().parse().map_err(|_| bad("latitude is a number"))?;
                let lon: f64 = f.longitude.trim().parse().map_err(|_| bad("longitude is a number"))?;
                if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon) {
                    return Err(bad("latitude/longitude out of range"));
                }
                let mut l = json!({ "latitude": lat, "longitude": lon });
                if !f.loc_name.trim().is_empty() {
                    l["name"] = json!(f.loc_name.trim().chars().take(100).collect::<String>());
                }
                if !f.address.trim().is_empty() {
                    l["address"] = json!(f.address.trim().chars().take(200).collect::<String>());
                }
                json!({ "type": "location", "location": l })
            }
            "reaction" => {
                if !chat.iter().any(|m| m.wamid == f.message_id) {
                    return Err(bad("react to a message of this chat"));
                }
                if f.emoji.chars().count() > 8 {
                    return Err(bad("one emoji"));
                }
                json!({ "type": "reaction", "reaction": { "message_id": f.message_id, "emoji": f.emoji.trim() } })
            }
            kind @ ("button_reply" | "list_reply") => {
                let tapped = chat
                    .iter()
                    .filter(|m| m.wamid == f.context && m.direction == SimDirection::Out)
                    .flat_map(interactive_choices)
                    .find(|(cid, title, _, k)| *cid == f.reply_id && *title == f.reply_title && *k == kind)
                    .ok_or_else(|| bad("tap a button or row of an interactive message of this chat"))?;
                let mut reply = json!({ "id": tapped.0, "title": tapped.1 });
                if let Some(d) = tapped.2.filter(|_| !f.reply_description.is_empty()) {
                    reply["description"] = json!(d);
                }
                json!({ "type": "interactive", "interactive": { "type": kind, kind: reply } })
            }
            _ => return Err(bad("unknown kind of message")),
        })
    })
    .await?;
    Ok(see_other(&format!("/simulator/customers/{id}"), &[]))
}

/// A photo from the phone: stored as the simulator's media (Frontdesk downloads it through
/// the fake Graph API) and announced with its id and SHA-256, as Meta does.
async fn customer_sends_image(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<Response, PageError> {
    let id = customer_id(&id)?;
    let mut multipart = multipart.map_err(|_| bad("send the photo as a form upload"))?;
    let (mut file, mut caption, mut context) = (None, String::new(), String::new());
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|_| bad("the upload could not be read"))?
    {
        match field.name() {
            Some("file") => {
                let mime = field
                    .content_type()
                    .unwrap_or_default()
                    .to_ascii_lowercase();
                let name = field.file_name().map(str::to_owned);
                let bytes = field
                    .bytes()
                    .await
                    .map_err(|_| bad("the upload could not be read"))?;
                file = Some(Upload {
                    bytes: bytes.to_vec(),
                    mime,
                    filename: name,
                });
            }
            Some("caption") => caption = field.text().await.unwrap_or_default(),
            Some("context") => context = field.text().await.unwrap_or_default(),
            _ => {}
        }
    }
    let file = file.ok_or_else(|| bad("choose a photo"))?;
    if !matches!(file.mime.as_str(), "image/jpeg" | "image/png") {
        return Err(bad("a photo is JPEG or PNG").into());
    }
    check_upload(&file).map_err(|_| bad("the photo is too large or empty"))?;
    if caption.chars().count() > 1024 {
        return Err(bad("a caption is at most 1024 characters").into());
    }
    let mut tx = state.store().begin_read(&ctx).await?;
    let c = tx.sim_customer(id).await?;
    let n = tx.sim_number(c.channel_id).await?;
    tx.commit().await?;
    let media = store_upload(&state, &ctx, &n, file)
        .await
        .map_err(|_| ApiError::internal(std::io::Error::other("storing the photo failed")))?;
    send_as_customer(&state, &ctx, id, Some(&context), |_| {
        let mut image =
            json!({ "id": media.id, "mime_type": media.mime_type, "sha256": media.sha256 });
        if !caption.trim().is_empty() {
            image["caption"] = json!(caption.trim());
        }
        Ok(json!({ "type": "image", "image": image }))
    })
    .await?;
    Ok(see_other(&format!("/simulator/customers/{id}"), &[]))
}

/// A message of a simulated chat, as the phone page's script reads it.
#[derive(Serialize, ToSchema)]
pub struct SimChatMessage {
    pub wamid: String,
    /// `from_customer` (an inbound message for the business) or `to_customer`.
    pub direction: &'static str,
    pub r#type: String,
    /// A line of text for the bubble.
    pub text: String,
    /// `received` or `read` (from the customer); `accepted`, `sent`, `delivered`, `read`
    /// or `failed` (to the customer).
    pub status: String,
    pub error_code: Option<i32>,
    /// Unix milliseconds.
    pub created_ms: i64,
}

/// A simulated chat, oldest message first.
#[derive(Serialize, ToSchema)]
pub struct SimChat {
    pub customer_id: SimCustomerId,
    pub messages: Vec<SimChatMessage>,
}

/// A fake customer's chat (the simulator phone page polls it for live updates).
#[utoipa::path(get, path = "/api/v1/simulator/customers/{customer_id}/messages", tag = "simulator",
    params(("customer_id" = String, Path, description = "Fake customer id")),
    responses((status = 200, description = "The chat", body = SimChat), (status = 404, description = "No such customer here", body = ErrorEnvelope)))]
async fn chat_json(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
) -> Result<Json<SimChat>, ApiError> {
    let id = customer_id(&id)?;
    let (c, _n, msgs) = load_chat(&state, &ctx, id).await?;
    let messages = msgs
        .iter()
        .map(|m| SimChatMessage {
            wamid: m.wamid.clone(),
            direction: if m.direction == SimDirection::In {
                "from_customer"
            } else {
                "to_customer"
            },
            r#type: m.msg_type.clone(),
            text: preview(m),
            status: m.status.clone(),
            error_code: m.error_code,
            created_ms: m.created_ms,
        })
        .collect();
    Ok(Json(SimChat {
        customer_id: c.id,
        messages,
    }))
}

/// How many of the business's messages the phone just showed.
#[derive(Serialize, ToSchema)]
pub struct Seen {
    pub read: usize,
}

/// The phone showed the business's messages: each moves to `read`, and its `read` status
/// is posted to the channel's webhook URL.
#[utoipa::path(post, path = "/api/v1/simulator/customers/{customer_id}/seen", tag = "simulator",
    params(("customer_id" = String, Path, description = "Fake customer id")),
    responses((status = 200, description = "Marked read", body = Seen), (status = 404, description = "No such customer here", body = ErrorEnvelope)))]
async fn seen(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
) -> Result<Json<Seen>, ApiError> {
    let id = customer_id(&id)?;
    let now = now_ms(&state);
    let mut tx = state.store().begin(&ctx).await?;
    let c = tx.sim_customer(id).await?;
    let n = tx.sim_number(c.channel_id).await?;
    let unread = tx.sim_unread_outbound(id).await?;
    let mut read = Vec::new();
    for m in unread {
        if tx.advance_sim_message(&m.wamid, "read", now).await? {
            read.push(m);
        }
    }
    tx.commit().await?;
    let count = read.len();
    if !read.is_empty() {
        let (state2, ctx2) = (state.clone(), ctx.clone());
        tokio::spawn(async move {
            for m in read {
                let payload = webhooks::status(
                    &n,
                    &StatusEvent {
                        wamid: &m.wamid,
                        status: "read",
                        unix_secs: now.div_euclid(1000),
                        to: Some(&c),
                        input: c.phone.as_deref().unwrap_or(&c.bsuid),
                        pricing: None,
                        error: None,
                    },
                );
                webhooks::deliver(&state2, &ctx2, n.channel_id, &payload).await;
            }
        });
    }
    Ok(Json(Seen { read: count }))
}
