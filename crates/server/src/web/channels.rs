//! Pages for connecting WhatsApp numbers: the list with each number's health, the forms to
//! connect a Cloud API or Whapi number, a channel's page (settings, secrets shown only as
//! "configured ••••1234", the callback URL to copy, disconnect), and the webhook inbox where
//! payloads that failed to process can be queued again. Same rules as the API.

use super::{PageCtx, PageError, PageForm, see_other, when};
use crate::AppState;
use crate::api::channels::{
    CLOUD_DEFAULT_API_VERSION, CLOUD_DEFAULT_BASE_URL, CLOUD_DEFAULT_THROUGHPUT, ChannelPatch,
    INBOX_BODY_PREVIEW, InboxEntry, InboxFilter, NewChannelInput, NewCloudChannel, NewWhapiChannel,
    WHAPI_DEFAULT_BASE_URL, WHAPI_DEFAULT_THROUGHPUT, change_channel, connect_channel,
    disconnect_channel, requeue_failed, webhook_info,
};
use crate::auth::{Access, Authed, Tenant};
use crate::error::ApiError;
use crate::routes::RouteTableBuilder;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use axum::routing::{get, post};
use frontdesk_domain::{ChannelId, Permission};
use frontdesk_store::{ChannelView, InboxStatus, Provider, SecretState};
use maud::{Markup, html};
use serde::Deserialize;

/// The navigation entry the channel pages sit under.
const NAV_PATH: &str = "/settings/channels";

pub(crate) fn routes(b: RouteTableBuilder) -> RouteTableBuilder {
    use Permission::ChannelsManage;
    b.page(
        Method::GET,
        "/settings/channels",
        get(channels_page),
        Access::Perm(ChannelsManage),
    )
    .page(
        Method::POST,
        "/settings/channels",
        post(channel_connect),
        Access::Perm(ChannelsManage),
    )
    .page(
        Method::GET,
        "/settings/channels/{channel_id}",
        get(channel_page),
        Access::Perm(ChannelsManage),
    )
    .page(
        Method::POST,
        "/settings/channels/{channel_id}",
        post(channel_update),
        Access::Perm(ChannelsManage),
    )
    .page(
        Method::POST,
        "/settings/channels/{channel_id}/delete",
        post(channel_delete),
        Access::Perm(ChannelsManage),
    )
    .page(
        Method::GET,
        "/settings/webhook-inbox",
        get(inbox_page),
        Access::Perm(ChannelsManage),
    )
    .page(
        Method::POST,
        "/settings/webhook-inbox/retry",
        post(inbox_retry),
        Access::Perm(ChannelsManage),
    )
}

fn channel_id(s: &str) -> Result<ChannelId, PageError> {
    ChannelId::parse(s).map_err(|_| PageError(ApiError::NotFound))
}

#[derive(Deserialize, Default)]
struct Notice {
    ok: Option<String>,
}

fn notice(code: &Option<String>) -> Markup {
    let text = match code.as_deref() {
        Some("saved") => Some("Saved."),
        Some("removed") => Some("Channel disconnected."),
        Some("requeued") => Some("Failed webhooks are queued to be processed again."),
        _ => None,
    };
    html! { @if let Some(t) = text { p.notice role="status" data-testid="notice" { (t) } } }
}

fn provider_label(p: Provider) -> &'static str {
    match p {
        Provider::Cloud => "Cloud API",
        Provider::Whapi => "Whapi",
    }
}

/// "configured ••••1234", "configured" or "not set": never the value.
fn secret_state(s: &SecretState) -> Markup {
    html! {
        @if s.configured {
            span.badge data-testid="secret-configured" {
                "configured"
                @if let Some(l) = &s.last4 { " ••••" (l) }
            }
        } @else {
            span.muted { "not set" }
        }
    }
}

fn health(c: &ChannelView) -> Markup {
    html! {
        (c.quality_rating.as_deref().unwrap_or("unknown")) " · "
        (c.messaging_limit.as_deref().unwrap_or("limit unknown")) " · "
        (c.throughput_mps) " msg/s"
    }
}

async fn channels_page(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Tenant(ctx): Tenant,
    headers: HeaderMap,
    Query(q): Query<Notice>,
) -> Result<Response, PageError> {
    let channels = state.store().list_channels(&ctx).await?;
    let page = PageCtx::new(&state, Some(caller), &headers, NAV_PATH).await;
    Ok(page.render("Channels", html! {
        (notice(&q.ok))
        @if channels.is_empty() {
            p.muted data-testid="no-channels" { "No WhatsApp number is connected yet." }
        } @else {
            table data-testid="channels" {
                thead { tr { th { "Name" } th { "Number" } th { "Provider" } th { "Quality · limit · throughput" } } }
                tbody {
                    @for c in &channels {
                        tr data-channel-id=(c.id) {
                            td {
                                a href={ "/settings/channels/" (c.id) } { (c.name) }
                                @if c.simulated { " " span.badge data-testid="simulated" { "simulated" } }
                            }
                            td { (c.display_number) " " span.muted { "(" (c.phone_number_id) ")" } }
                            td { (provider_label(c.provider)) }
                            td { (health(c)) }
                        }
                    }
                }
            }
        }
        p { a href="/settings/webhook-inbox" { "Webhook inbox: payloads that failed to process" } }
        h2 { "Connect a Cloud API number" }
        form method="post" action="/settings/channels" data-testid="connect-cloud" {
            (page.csrf_field())
            input type="hidden" name="provider" value="cloud";
            label { "Name" input type="text" name="name" required maxlength="100" placeholder="Reception"; }
            label { "Phone number id" input type="text" name="phone_number_id" required maxlength="64"; }
            label { "WhatsApp Business Account id" input type="text" name="waba_id" maxlength="64" inputmode="numeric"; }
            label { "Display number" input type="text" name="display_number" maxlength="32" placeholder="+1 555 010 0000"; }
            label { "Access token" input type="password" name="access_token" required autocomplete="off"; }
            label { "App secret" input type="password" name="app_secret" required autocomplete="off"; }
            label { "Webhook verify token (type the same in Meta's app dashboard)" input type="password" name="verify_token" required autocomplete="off"; }
            label { "Graph API base URL" input type="url" name="api_base_url" value=(CLOUD_DEFAULT_BASE_URL) maxlength="500"; }
            label { "Graph API version" input type="text" name="api_version" value=(CLOUD_DEFAULT_API_VERSION) maxlength="16"; }
            label { "Meta app id (for template media samples; optional)" input type="text" name="app_id" maxlength="32" inputmode="numeric" data-testid="channel-app-id"; }
            label { "Throughput (messages per second)" input type="number" name="throughput_mps" value=(CLOUD_DEFAULT_THROUGHPUT) min="1" max="1000"; }
            button type="submit" data-testid="connect-cloud-submit" { "Connect" }
        }
        h2 { "Connect a Whapi channel" }
        form method="post" action="/settings/channels" data-testid="connect-whapi" {
            (page.csrf_field())
            input type="hidden" name="provider" value="whapi";
            label { "Name" input type="text" name="name" required maxlength="100"; }
            label { "Whapi channel id" input type="text" name="phone_number_id" required maxlength="64"; }
            label { "Display number" input type="text" name="display_number" maxlength="32"; }
            label { "Token" input type="password" name="token" required autocomplete="off"; }
            label { "Webhook secret" input type="password" name="webhook_secret" required autocomplete="off"; }
            label { "API base URL" input type="url" name="api_base_url" value=(WHAPI_DEFAULT_BASE_URL) maxlength="500"; }
            label { "Throughput (messages per second)" input type="number" name="throughput_mps" value=(WHAPI_DEFAULT_THROUGHPUT) min="1" max="1000"; }
            button type="submit" data-testid="connect-whapi-submit" { "Connect" }
        }
    }))
}

/// Both connect forms; absent fields are empty (the provider's own checks name what is
/// missing).
#[derive(Deserialize)]
struct ConnectForm {
    provider: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    phone_number_id: String,
    #[serde(default)]
    waba_id: String,
    #[serde(default)]
    display_number: String,
    #[serde(default)]
    access_token: String,
    #[serde(default)]
    app_secret: String,
    #[serde(default)]
    verify_token: String,
    #[serde(default)]
    token: String,
    #[serde(default)]
    webhook_secret: String,
    api_base_url: Option<String>,
    api_version: Option<String>,
    throughput_mps: Option<String>,
    app_id: Option<String>,
}

/// A number field: blank is "not given".
fn throughput(v: Option<&str>) -> Result<Option<i32>, PageError> {
    match v.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| {
            PageError(ApiError::unprocessable(
                "invalid",
                "throughput is a whole number of messages per second",
            ))
        }),
    }
}

async fn channel_connect(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Tenant(ctx): Tenant,
    headers: HeaderMap,
    PageForm(f): PageForm<ConnectForm>,
) -> Result<Response, PageError> {
    let throughput_mps = throughput(f.throughput_mps.as_deref())?;
    let input = match f.provider.as_str() {
        "cloud" => NewChannelInput::Cloud(NewCloudChannel {
            name: f.name,
            phone_number_id: f.phone_number_id,
            waba_id: f.waba_id,
            display_number: f.display_number,
            access_token: f.access_token,
            app_secret: f.app_secret,
            verify_token: f.verify_token,
            api_base_url: f.api_base_url,
            api_version: f.api_version,
            throughput_mps,
            app_id: f.app_id,
        }),
        "whapi" => NewChannelInput::Whapi(NewWhapiChannel {
            name: f.name,
            phone_number_id: f.phone_number_id,
            display_number: f.display_number,
            token: f.token,
            webhook_secret: f.webhook_secret,
            api_base_url: f.api_base_url,
            throughput_mps,
        }),
        _ => {
            return Err(PageError(ApiError::bad_request(
                "invalid_form",
                "choose Cloud API or Whapi",
            )));
        }
    };
    let app_id = input.app_id()?;
    let created = connect_channel(&state, &ctx, input.into_new_channel()?, app_id).await?;
    let c = &created.channel;
    // Shown right away (not after a redirect) so the admin can copy it at once; the
    // channel's page shows it again.
    let page = PageCtx::new(&state, Some(caller), &headers, NAV_PATH).await;
    Ok(page.render("Channel connected", html! {
        p { strong { (c.name) } " (" (provider_label(c.provider)) ") is connected." }
        p { (webhook_instructions(c.provider)) }
        p { input.copy type="text" readonly value=(created.webhook.callback_url) data-testid="callback-url"; }
        p.muted { (CAPABILITY_NOTE) }
        p { a href={ "/settings/channels/" (c.id) } data-testid="channel-link" { "Go to the channel" } }
    }))
}

/// What to do with the callback URL, per provider.
fn webhook_instructions(p: Provider) -> Markup {
    html! {
        @if p == Provider::Cloud {
            "In Meta's app dashboard (WhatsApp › Configuration), set the callback URL to this address and the verify token to the one you gave here, then subscribe to the "
            code { "messages" } " field."
        } @else {
            "In Whapi's channel settings, set the webhook URL to this address."
        }
    }
}

const CAPABILITY_NOTE: &str = "Treat this URL like a password: anyone who has it can send webhooks to this channel (they still need a valid signature).";

async fn channel_page(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Tenant(ctx): Tenant,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<Notice>,
) -> Result<Response, PageError> {
    let id = channel_id(&id)?;
    let mut tx = state.store().begin_read(&ctx).await?;
    let c = tx.channel(id).await?;
    tx.commit().await?;
    let webhook = webhook_info(&state, &ctx, id).await?;
    let cloud = c.provider == Provider::Cloud;
    let (token_label, secret_label) = if cloud {
        ("Access token", "App secret")
    } else {
        ("Token", "Webhook secret")
    };
    let page = PageCtx::new(&state, Some(caller), &headers, NAV_PATH).await;
    Ok(page.render(&c.name, html! {
        (notice(&q.ok))
        p {
            (provider_label(c.provider)) " · " (c.display_number) " · id " code { (c.phone_number_id) }
            @if cloud && !c.waba_id.is_empty() { " · business account " code { (c.waba_id) } }
            @if c.simulated { " " span.badge data-testid="simulated" { "simulated" } }
        }
        h2 { "Health" }
        table data-testid="health" {
            tbody {
                tr { th { "Quality rating" } td { (c.quality_rating.as_deref().unwrap_or("unknown")) } }
                tr { th { "Messaging limit" } td { (c.messaging_limit.as_deref().unwrap_or("unknown")) } }
                tr { th { "Throughput" } td { (c.throughput_mps) " messages per second" } }
            }
        }
        p.muted { "Quality and limit are updated from the provider's webhooks." }
        h2 { "Webhook" }
        p { (webhook_instructions(c.provider)) }
        p { input.copy type="text" readonly value=(webhook.callback_url) data-testid="callback-url"; }
        p.muted { (CAPABILITY_NOTE) }
        h2 { "Settings" }
        form method="post" action={ "/settings/channels/" (c.id) } data-testid="channel-edit" {
            (page.csrf_field())
            label { "Name" input type="text" name="name" value=(c.name) required maxlength="100"; }
            label { "Display number" input type="text" name="display_number" value=(c.display_number) maxlength="32"; }
            label { "API base URL" input type="url" name="api_base_url" value=(c.api_base_url) required maxlength="500"; }
            @if cloud {
                label { "Graph API version" input type="text" name="api_version" value=(c.api_version) required maxlength="16"; }
                label { "Meta app id (for template media samples)" input type="text" name="app_id" value=(c.app_id.as_deref().unwrap_or("")) maxlength="32" inputmode="numeric" data-testid="channel-app-id"; }
            }
            label { "Throughput (messages per second)" input type="number" name="throughput_mps" value=(c.throughput_mps) min="1" max="1000"; }
            p.muted { "Secrets are never shown. Leave a secret blank to keep it." }
            label { (token_label) " " (secret_state(&c.access_token)) input type="password" name="access_token" autocomplete="off"; }
            label { (secret_label) " " (secret_state(&c.app_secret)) input type="password" name="app_secret" autocomplete="off"; }
            @if cloud {
                label { "Webhook verify token " (secret_state(&c.verify_token)) input type="password" name="verify_token" autocomplete="off"; }
            }
            button type="submit" data-testid="channel-save" { "Save" }
        }
        h2 { "Disconnect" }
        form method="post" action={ "/settings/channels/" (c.id) "/delete" } data-confirm="Disconnect this number? Its stored webhooks are deleted and messages stop arriving." {
            (page.csrf_field())
            button.danger type="submit" data-testid="channel-delete" { "Disconnect" }
        }
        p { a href="/settings/channels" { "All channels" } " · connected " (when(c.created_at)) }
    }))
}

#[derive(Deserialize)]
struct EditForm {
    name: Option<String>,
    display_number: Option<String>,
    api_base_url: Option<String>,
    api_version: Option<String>,
    throughput_mps: Option<String>,
    app_id: Option<String>,
    access_token: Option<String>,
    app_secret: Option<String>,
    verify_token: Option<String>,
}

async fn channel_update(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
    PageForm(f): PageForm<EditForm>,
) -> Result<Response, PageError> {
    let id = channel_id(&id)?;
    let patch = ChannelPatch {
        name: f.name,
        display_number: f.display_number,
        api_base_url: f.api_base_url,
        api_version: f.api_version,
        throughput_mps: throughput(f.throughput_mps.as_deref())?,
        app_id: f.app_id,
        access_token: f.access_token,
        app_secret: f.app_secret,
        verify_token: f.verify_token,
    };
    change_channel(&state, &ctx, id, patch).await?;
    Ok(see_other(&format!("/settings/channels/{id}?ok=saved"), &[]))
}

async fn channel_delete(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let id = channel_id(&id)?;
    disconnect_channel(&state, &ctx, id).await?;
    Ok(see_other("/settings/channels?ok=removed", &[]))
}

#[derive(Deserialize, Default)]
struct InboxPageQuery {
    status: Option<String>,
    ok: Option<String>,
}

async fn inbox_page(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Tenant(ctx): Tenant,
    headers: HeaderMap,
    Query(q): Query<InboxPageQuery>,
) -> Result<Response, PageError> {
    let (status, limit) = InboxFilter {
        status: q.status.clone(),
        limit: None,
    }
    .parse()?;
    let channels = state.store().list_channels(&ctx).await?;
    let rows: Vec<InboxEntry> = state
        .store()
        .inbox_where(&ctx, Some(status), limit)
        .await?
        .into_iter()
        .map(InboxEntry::from)
        .collect();
    let channel_name = |id: ChannelId| {
        channels
            .iter()
            .find(|c| c.id == id)
            .map_or_else(|| id.to_string(), |c| c.name.clone())
    };
    let tab = |s: InboxStatus, label: &str| {
        let key = match s {
            InboxStatus::Failed => "failed",
            InboxStatus::Pending => "pending",
            InboxStatus::Processed => "processed",
        };
        html! {
            @if s == status { strong { (label) } } @else { a href={ "/settings/webhook-inbox?status=" (key) } { (label) } }
        }
    };
    let page = PageCtx::new(&state, Some(caller), &headers, NAV_PATH).await;
    Ok(page.render("Webhook inbox", html! {
        (notice(&q.ok))
        p {
            (tab(InboxStatus::Failed, "Failed")) " · "
            (tab(InboxStatus::Pending, "Pending")) " · "
            (tab(InboxStatus::Processed, "Processed"))
        }
        @if status == InboxStatus::Failed {
            p.muted { "Payloads that could not be processed stay here with the error. After an upgrade that can read them, queue them again." }
            form method="post" action="/settings/webhook-inbox/retry" data-confirm="Process every failed webhook again?" {
                (page.csrf_field())
                button type="submit" data-testid="inbox-retry" disabled[rows.is_empty()] { "Reprocess failed webhooks" }
            }
        }
        @if rows.is_empty() {
            p.muted data-testid="inbox-empty" { "Nothing here." }
        } @else {
            table data-testid="inbox" {
                thead { tr { th { "Received" } th { "Channel" } th { "Attempts" } th { "Error" } th { "Payload" } } }
                tbody {
                    @for r in &rows {
                        tr data-inbox-id=(r.id) {
                            td { (when(r.received_at)) }
                            td { (channel_name(r.channel_id)) }
                            td { (r.attempts) }
                            td { @if let Some(e) = &r.error { code data-testid="inbox-error" { (e) } } }
                            td {
                                details {
                                    summary { (r.body_bytes) " bytes" @if r.body_truncated { ", first " (INBOX_BODY_PREVIEW) " shown" } }
                                    pre.payload { (r.body) }
                                }
                            }
                        }
                    }
                }
            }
        }
        p { a href="/settings/channels" { "Channels" } }
    }))
}

async fn inbox_retry(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
) -> Result<Response, PageError> {
    requeue_failed(&state, &ctx).await?;
    Ok(see_other("/settings/webhook-inbox?ok=requeued", &[]))
}
