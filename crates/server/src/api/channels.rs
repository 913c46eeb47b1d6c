//! Connecting WhatsApp numbers (channels) over the API, and the webhook inbox admins
//! look at when a payload could not be processed.
//!
//! Secrets go in and never come out: answers carry a [`ChannelView`], whose secrets are
//! `configured` flags and at most the access token's last four characters. A Cloud API
//! channel must be given its webhook verify token: the admin types the same value into
//! Meta's app dashboard, so a token we generated and never showed would be useless, and
//! showing one would break the rule. The callback URL carries a random key (a capability:
//! whoever has it can post webhooks, still signed with the app secret); it is shown only to
//! `channels.manage`, each showing is audited, and it is never logged.

use super::{ApiJson, path_id};
use crate::AppState;
use crate::auth::{Access, Tenant};
use crate::error::{ApiError, ErrorEnvelope};
use crate::routes::RouteTableBuilder;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use frontdesk_domain::{ChannelId, InboxId, Permission};
use frontdesk_store::{
    AuditRecord, ChannelUpdate, ChannelView, InboxItem, InboxStatus, NewChannel, Provider,
    TenantCtx,
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::routes;

pub(crate) fn routes(b: RouteTableBuilder) -> RouteTableBuilder {
    use Permission::ChannelsManage;
    b.json(routes!(list_channels), Access::Perm(ChannelsManage))
        .json(routes!(create_channel), Access::Perm(ChannelsManage))
        .json(routes!(get_channel), Access::Perm(ChannelsManage))
        .json(routes!(update_channel), Access::Perm(ChannelsManage))
        .json(routes!(delete_channel), Access::Perm(ChannelsManage))
        .json(routes!(get_channel_webhook), Access::Perm(ChannelsManage))
        .json(
            routes!(refresh_channel_health),
            Access::Perm(ChannelsManage),
        )
        .json(routes!(list_webhook_inbox), Access::Perm(ChannelsManage))
        .json(routes!(retry_webhook_inbox), Access::Perm(ChannelsManage))
}

/// Meta's Graph API.
pub(crate) const CLOUD_DEFAULT_BASE_URL: &str = "https://graph.facebook.com";
/// The Graph API version new Cloud channels use unless told otherwise.
pub(crate) const CLOUD_DEFAULT_API_VERSION: &str = "v23.0";
/// Meta's default throughput per registered number.
pub(crate) const CLOUD_DEFAULT_THROUGHPUT: i32 = 80;
/// Whapi.Cloud's gateway.
pub(crate) const WHAPI_DEFAULT_BASE_URL: &str = "https://gate.whapi.cloud";
/// Whapi drives a WhatsApp Web session; sending fast risks the number, so start slow.
pub(crate) const WHAPI_DEFAULT_THROUGHPUT: i32 = 10;
/// Longest secret accepted (Meta's system-user tokens are a few hundred characters).
const SECRET_MAX: usize = 4096;
/// How much of a webhook body the inbox view shows.
pub(crate) const INBOX_BODY_PREVIEW: usize = 4096;

/// A new channel: which provider, and its settings and secrets.
#[derive(Deserialize, ToSchema)]
#[serde(tag = "provider", rename_all = "snake_case")]
pub enum NewChannelInput {
    /// Meta's WhatsApp Cloud API.
    Cloud(NewCloudChannel),
    /// Whapi.Cloud.
    Whapi(NewWhapiChannel),
}

/// A Cloud API number, as Meta's app dashboard and WhatsApp Manager show it.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCloudChannel {
    pub name: String,
    /// The phone number id (not the phone number).
    pub phone_number_id: String,
    /// The WhatsApp Business Account id (templates live there).
    #[serde(default)]
    pub waba_id: String,
    /// The number as people dial it, e.g. `+1 555 010 0000`.
    #[serde(default)]
    pub display_number: String,
    /// A system-user access token with `whatsapp_business_messaging`.
    pub access_token: String,
    /// The Meta app's secret (webhook signatures are checked with it).
    pub app_secret: String,
    /// The verify token you also type into the app dashboard's webhook settings. Required:
    /// it is never shown back, so Frontdesk cannot make one up for you.
    pub verify_token: String,
    /// Default `https://graph.facebook.com`.
    pub api_base_url: Option<String>,
    /// Default `v23.0`.
    pub api_version: Option<String>,
    /// Messages per second this number may send (1–1000, default 80).
    pub throughput_mps: Option<i32>,
    /// The Meta app's id (digits, App Dashboard → App settings). Not a secret; needed to
    /// upload template header samples (`POST /{app-id}/uploads`).
    pub app_id: Option<String>,
}

/// A Whapi.Cloud channel.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWhapiChannel {
    pub name: String,
    /// Whapi's channel id (or the number's id there).
    pub phone_number_id: String,
    #[serde(default)]
    pub display_number: String,
    /// The channel's API token.
    pub token: String,
    /// The secret Whapi's webhooks are checked with.
    pub webhook_secret: String,
    /// Default `https://gate.whapi.cloud`.
    pub api_base_url: Option<String>,
    /// Messages per second (1–1000, default 10).
    pub throughput_mps: Option<i32>,
}

/// Changes to a channel. Absent or blank fields keep their value; a secret is replaced
/// only when a new one is given. For Whapi channels `token` and `webhook_secret` name the
/// access token and app secret.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ChannelPatch {
    pub name: Option<String>,
    pub display_number: Option<String>,
    pub api_base_url: Option<String>,
    pub api_version: Option<String>,
    pub throughput_mps: Option<i32>,
    /// Cloud only: the Meta app's id (digits); an empty string clears it.
    pub app_id: Option<String>,
    #[serde(alias = "token")]
    pub access_token: Option<String>,
    #[serde(alias = "webhook_secret")]
    pub app_secret: Option<String>,
    pub verify_token: Option<String>,
}

/// Where the provider must send this channel's webhooks.
#[derive(Serialize, ToSchema)]
pub struct WebhookInfo {
    /// `<base URL>/webhooks/<key>`: paste it into Meta's app dashboard (or Whapi's
    /// channel settings). The key in it is a capability; keep it like a password.
    pub callback_url: String,
    /// Whether the handshake can succeed (Cloud API only).
    pub verify_token_configured: bool,
    pub provider: Provider,
}

/// A channel just connected, and where its webhooks go.
#[derive(Serialize, ToSchema)]
pub struct CreatedChannel {
    pub channel: ChannelView,
    pub webhook: WebhookInfo,
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::unprocessable("invalid", message)
}

/// A secret as typed or pasted: surrounding whitespace dropped (a pasted newline is not
/// part of a token); `None` when nothing is left.
fn secret_input(field: &str, v: Option<&str>) -> Result<Option<SecretString>, ApiError> {
    let Some(v) = v.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if v.len() > SECRET_MAX || v.chars().any(char::is_control) {
        return Err(invalid(format!(
            "`{field}` is at most {SECRET_MAX} characters, without control characters"
        )));
    }
    Ok(Some(SecretString::from(v.to_owned())))
}

fn required_secret(field: &str, v: &str) -> Result<SecretString, ApiError> {
    secret_input(field, Some(v))?.ok_or_else(|| invalid(format!("`{field}` is required")))
}

fn check_display_number(v: &str) -> Result<String, ApiError> {
    let v = v.trim();
    if v.len() > 32 || !v.chars().all(|c| c.is_ascii_digit() || " +-()".contains(c)) {
        return Err(invalid(
            "the display number is at most 32 digits, spaces, '+', '-' or parentheses",
        ));
    }
    Ok(v.to_owned())
}

fn check_waba_id(v: &str) -> Result<String, ApiError> {
    let v = v.trim();
    if v.len() > 64 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid("the business account id is at most 64 digits"));
    }
    Ok(v.to_owned())
}

/// `v<major>.<minor>`, as the Graph API's paths spell it.
fn check_api_version(v: &str) -> Result<String, ApiError> {
    let v = v.trim();
    let ok = v.len() <= 16
        && v.strip_prefix('v').is_some_and(|rest| {
            let mut parts = rest.split('.');
            let digits = |p: Option<&str>| {
                p.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            };
            digits(parts.next()) && digits(parts.next()) && parts.next().is_none()
        });
    if !ok {
        return Err(invalid("the API version looks like `v23.0`"));
    }
    Ok(v.to_owned())
}

fn base_url_or(v: Option<&str>, default: &str) -> String {
    v.map(str::trim)
        .filter(|v| !v.is_empty())
        .unwrap_or(default)
        .to_owned()
}

impl NewChannelInput {
    /// The Meta app id given with a Cloud channel, checked (blank is none).
    pub(crate) fn app_id(&self) -> Result<Option<String>, ApiError> {
        let NewChannelInput::Cloud(c) = self else {
            return Ok(None);
        };
        match c.app_id.as_deref().map(str::trim).filter(|a| !a.is_empty()) {
            None => Ok(None),
            Some(a) => {
                frontdesk_store::check_app_id(a).map_err(|e| invalid(e.to_string()))?;
                Ok(Some(a.to_owned()))
            }
        }
    }

    /// Checks the input and turns it into the store's value (shared with the pages).
    pub(crate) fn into_new_channel(self) -> Result<NewChannel, ApiError> {
        Ok(match self {
            NewChannelInput::Cloud(c) => NewChannel {
                name: c.name,
                provider: Provider::Cloud,
                phone_number_id: c.phone_number_id.trim().to_owned(),
                waba_id: check_waba_id(&c.waba_id)?,
                display_number: check_display_number(&c.display_number)?,
                api_base_url: base_url_or(c.api_base_url.as_deref(), CLOUD_DEFAULT_BASE_URL),
                api_version: check_api_version(
                    c.api_version
                        .as_deref()
                        .filter(|v| !v.trim().is_empty())
                        .unwrap_or(CLOUD_DEFAULT_API_VERSION),
                )?,
                simulated: false,
                access_token: required_secret("access_token", &c.access_token)?,
                app_secret: Some(required_secret("app_secret", &c.app_secret)?),
                verify_token: Some(required_secret("verify_token", &c.verify_token)?),
                throughput_mps: c.throughput_mps.unwrap_or(CLOUD_DEFAULT_THROUGHPUT),
            },
            NewChannelInput::Whapi(w) => NewChannel {
                name: w.name,
                provider: Provider::Whapi,
                phone_number_id: w.phone_number_id.trim().to_owned(),
                waba_id: String::new(),
                display_number: check_display_number(&w.display_number)?,
                api_base_url: base_url_or(w.api_base_url.as_deref(), WHAPI_DEFAULT_BASE_URL),
                api_version: String::new(),
                simulated: false,
                access_token: required_secret("token", &w.token)?,
                app_secret: Some(required_secret("webhook_secret", &w.webhook_secret)?),
                verify_token: None,
                throughput_mps: w.throughput_mps.unwrap_or(WHAPI_DEFAULT_THROUGHPUT),
            },
        })
    }
}

impl ChannelPatch {
    /// Checks the changes for a channel of `provider` (shared with the pages).
    pub(crate) fn into_update(self, provider: Provider) -> Result<ChannelUpdate, ApiError> {
        let blank_is_none = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
        let verify_token = secret_input("verify_token", self.verify_token.as_deref())?;
        if provider == Provider::Whapi && verify_token.is_some() {
            return Err(invalid("Whapi channels have no webhook verify token"));
        }
        let api_version = match blank_is_none(self.api_version) {
            Some(_) if provider == Provider::Whapi => {
                return Err(invalid("Whapi channels have no API version"));
            }
            Some(v) => Some(check_api_version(&v)?),
            None => None,
        };
        if provider == Provider::Whapi
            && self.app_id.as_deref().is_some_and(|a| !a.trim().is_empty())
        {
            return Err(invalid("Whapi channels have no Meta app id"));
        }
        Ok(ChannelUpdate {
            app_id: self.app_id.map(|a| a.trim().to_owned()),
            name: blank_is_none(self.name),
            // A display number may be cleared, so an empty one is a change.
            display_number: self
                .display_number
                .as_deref()
                .map(check_display_number)
                .transpose()?,
            api_base_url: blank_is_none(self.api_base_url).map(|s| s.trim().to_owned()),
            api_version,
            throughput_mps: self.throughput_mps,
            access_token: secret_input("access_token", self.access_token.as_deref())?,
            app_secret: secret_input("app_secret", self.app_secret.as_deref())?,
            verify_token,
        })
    }
}

/// The callback URL for a webhook key.
pub(crate) fn callback_url(state: &AppState, key: &SecretString) -> Result<String, ApiError> {
    state
        .auth()
        .base_url
        .join(&format!("/webhooks/{}", key.expose_secret()))
        .map(String::from)
        .map_err(ApiError::internal)
}

/// Connects a channel; the answer carries its callback URL (shared with the pages).
pub(crate) async fn connect_channel(
    state: &AppState,
    ctx: &TenantCtx,
    new: NewChannel,
    app_id: Option<String>,
) -> Result<CreatedChannel, ApiError> {
    let mut tx = state.store().begin(ctx).await?;
    let (mut channel, key) = tx.create_channel(new).await?;
    if let Some(a) = app_id {
        let set = ChannelUpdate {
            app_id: Some(a),
            ..Default::default()
        };
        channel = tx.update_channel(channel.id, set).await?;
    }
    tx.commit().await?;
    let webhook = WebhookInfo {
        callback_url: callback_url(state, &key)?,
        verify_token_configured: channel.verify_token.configured,
        provider: channel.provider,
    };
    Ok(CreatedChannel { channel, webhook })
}

/// The channel's callback URL; each showing is audited (shared with the pages).
pub(crate) async fn webhook_info(
    state: &AppState,
    ctx: &TenantCtx,
    id: ChannelId,
) -> Result<WebhookInfo, ApiError> {
    let mut tx = state.store().begin(ctx).await?;
    let channel = tx.channel(id).await?;
    let key = tx.channel_webhook_key(id).await?;
    tx.audit(AuditRecord::new(
        "channel.webhook_url_viewed",
        "channel",
        id.to_string(),
        serde_json::json!({}),
    ))
    .await?;
    tx.commit().await?;
    Ok(WebhookInfo {
        callback_url: callback_url(state, &key)?,
        verify_token_configured: channel.verify_token.configured,
        provider: channel.provider,
    })
}

/// Applies checked changes to a channel (shared with the pages).
pub(crate) async fn change_channel(
    state: &AppState,
    ctx: &TenantCtx,
    id: ChannelId,
    patch: ChannelPatch,
) -> Result<ChannelView, ApiError> {
    let mut tx = state.store().begin(ctx).await?;
    let provider = tx.channel(id).await?.provider;
    let view = tx.update_channel(id, patch.into_update(provider)?).await?;
    tx.commit().await?;
    // Cached webhook targets hold the old app secret and verify token.
    state.forget_webhook_targets();
    Ok(view)
}

/// Disconnects a channel and its inbox (shared with the pages).
pub(crate) async fn disconnect_channel(
    state: &AppState,
    ctx: &TenantCtx,
    id: ChannelId,
) -> Result<(), ApiError> {
    let mut tx = state.store().begin(ctx).await?;
    tx.delete_channel(id).await?;
    tx.commit().await?;
    // A cached target would keep accepting webhooks for the deleted channel.
    state.forget_webhook_targets();
    Ok(())
}

/// The organisation's channels (never a secret).
#[utoipa::path(get, path = "/api/v1/channels", tag = "channels",
    responses((status = 200, description = "Channels", body = Vec<ChannelView>)))]
async fn list_channels(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
) -> Result<Json<Vec<ChannelView>>, ApiError> {
    Ok(Json(state.store().list_channels(&ctx).await?))
}

/// Connects a WhatsApp number. The answer has its callback URL for the provider's
/// dashboard; the secrets sent are never answered back.
#[utoipa::path(post, path = "/api/v1/channels", tag = "channels", request_body = NewChannelInput,
    responses(
        (status = 201, description = "Connected", body = CreatedChannel),
        (status = 400, description = "Malformed body, unknown field or missing field", body = ErrorEnvelope),
        (status = 409, description = "This phone number id is already connected", body = ErrorEnvelope),
        (status = 422, description = "Invalid value", body = ErrorEnvelope),
    ))]
async fn create_channel(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    ApiJson(req): ApiJson<NewChannelInput>,
) -> Result<(StatusCode, Json<CreatedChannel>), ApiError> {
    let app_id = req.app_id()?;
    let created = connect_channel(&state, &ctx, req.into_new_channel()?, app_id).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// One channel.
#[utoipa::path(get, path = "/api/v1/channels/{channel_id}", tag = "channels",
    params(("channel_id" = String, Path, description = "Channel id")),
    responses((status = 200, description = "The channel", body = ChannelView), (status = 404, description = "No such channel here", body = ErrorEnvelope)))]
async fn get_channel(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
) -> Result<Json<ChannelView>, ApiError> {
    let id = path_id(&id, ChannelId::parse)?;
    let mut tx = state.store().begin_read(&ctx).await?;
    let view = tx.channel(id).await?;
    tx.commit().await?;
    Ok(Json(view))
}

/// Asks the provider for the number's health (quality rating, messaging-limit tier,
/// throughput level), stores it and answers the channel. A throughput level the provider
/// names (`STANDARD` 80/s, `HIGH` 1,000/s) becomes the rate the dispatcher holds.
#[utoipa::path(post, path = "/api/v1/channels/{channel_id}/health", tag = "channels",
    params(("channel_id" = String, Path, description = "Channel id")),
    responses((status = 200, description = "The channel with its refreshed health", body = ChannelView),
        (status = 404, description = "No such channel here", body = ErrorEnvelope),
        (status = 502, description = "The provider refused or did not answer", body = ErrorEnvelope)))]
async fn refresh_channel_health(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
) -> Result<Json<ChannelView>, ApiError> {
    let id = path_id(&id, ChannelId::parse)?;
    let mut tx = state.store().begin_read(&ctx).await?;
    let creds = tx.channel_credentials(id).await?;
    tx.commit().await?;
    let client =
        frontdesk_worker::provider_client(frontdesk_whatsapp::client::http_client(), &creds);
    let info = client
        .number_info()
        .await
        .map_err(|e| ApiError::BadGateway {
            message: format!("the provider did not report the number's health: {e}"),
        })?;
    let mut tx = state.store().begin(&ctx).await?;
    tx.set_channel_health(
        id,
        info.quality_rating.as_deref(),
        info.messaging_limit_tier.as_deref(),
        info.throughput_level
            .as_deref()
            .and_then(frontdesk_worker::throughput_of_level),
    )
    .await?;
    let view = tx.channel(id).await?;
    tx.commit().await?;
    Ok(Json(view))
}

/// Changes a channel's settings; secrets that are given replace the stored ones, the
/// others stay.
#[utoipa::path(patch, path = "/api/v1/channels/{channel_id}", tag = "channels", request_body = ChannelPatch,
    params(("channel_id" = String, Path, description = "Channel id")),
    responses(
        (status = 200, description = "Updated", body = ChannelView),
        (status = 404, description = "No such channel here", body = ErrorEnvelope),
        (status = 422, description = "Invalid value", body = ErrorEnvelope),
    ))]
async fn update_channel(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<ChannelPatch>,
) -> Result<Json<ChannelView>, ApiError> {
    let id = path_id(&id, ChannelId::parse)?;
    Ok(Json(change_channel(&state, &ctx, id, req).await?))
}

/// Disconnects a channel; its stored webhooks go with it.
#[utoipa::path(delete, path = "/api/v1/channels/{channel_id}", tag = "channels",
    params(("channel_id" = String, Path, description = "Channel id")),
    responses((status = 204, description = "Disconnected"), (status = 404, description = "No such channel here", body = ErrorEnvelope)))]
async fn delete_channel(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = path_id(&id, ChannelId::parse)?;
    disconnect_channel(&state, &ctx, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The callback URL to give the provider (each request is audited).
#[utoipa::path(get, path = "/api/v1/channels/{channel_id}/webhook", tag = "channels",
    params(("channel_id" = String, Path, description = "Channel id")),
    responses((status = 200, description = "Callback URL", body = WebhookInfo), (status = 404, description = "No such channel here", body = ErrorEnvelope)))]
async fn get_channel_webhook(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
) -> Result<Json<WebhookInfo>, ApiError> {
    let id = path_id(&id, ChannelId::parse)?;
    Ok(Json(webhook_info(&state, &ctx, id).await?))
}

/// Which inbox rows to show.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct InboxFilter {
    /// `failed` (default), `pending` or `processed`.
    pub status: Option<String>,
    /// 1–200, default 50.
    pub limit: Option<u32>,
}

impl InboxFilter {
    pub(crate) fn parse(&self) -> Result<(InboxStatus, i64), ApiError> {
        let status = match self.status.as_deref().unwrap_or("failed") {
            "failed" => InboxStatus::Failed,
            "pending" => InboxStatus::Pending,
            "processed" => InboxStatus::Processed,
            _ => {
                return Err(ApiError::bad_request(
                    "invalid_query",
                    "`status` is failed, pending or processed",
                ));
            }
        };
        let limit = self.limit.unwrap_or(50);
        if !(1..=200).contains(&limit) {
            return Err(ApiError::bad_request(
                "invalid_query",
                "`limit` must be 1–200",
            ));
        }
        Ok((status, i64::from(limit)))
    }
}

/// A stored webhook body, as admins see it.
#[derive(Serialize, ToSchema)]
pub struct InboxEntry {
    pub id: InboxId,
    pub channel_id: ChannelId,
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
    pub status: InboxStatus,
    pub attempts: i32,
    /// Why processing failed.
    pub error: Option<String>,
    /// The body as text (invalid UTF-8 replaced), at most 4096 bytes of it.
    pub body: String,
    pub body_bytes: usize,
    pub body_truncated: bool,
}

impl From<InboxItem> for InboxEntry {
    fn from(i: InboxItem) -> Self {
        let shown = &i.body[..i.body.len().min(INBOX_BODY_PREVIEW)];
        InboxEntry {
            id: i.id,
            channel_id: i.channel,
            received_at: i.received_at,
            status: i.status,
            attempts: i.attempts,
            error: i.error,
            body: String::from_utf8_lossy(shown).into_owned(),
            body_bytes: i.body.len(),
            body_truncated: i.body.len() > INBOX_BODY_PREVIEW,
        }
    }
}

/// Stored webhooks, newest first (pending ones oldest first): by default those that
/// failed to process, with the error.
#[utoipa::path(get, path = "/api/v1/webhook-inbox", tag = "channels", params(InboxFilter),
    responses((status = 200, description = "Inbox rows", body = Vec<InboxEntry>), (status = 400, description = "Invalid filter", body = ErrorEnvelope)))]
async fn list_webhook_inbox(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    filter: Result<Query<InboxFilter>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<InboxEntry>>, ApiError> {
    let Query(filter) =
        filter.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let (status, limit) = filter.parse()?;
    let items = state.store().inbox_where(&ctx, Some(status), limit).await?;
    Ok(Json(items.into_iter().map(InboxEntry::from).collect()))
}

/// How many failed webhooks were queued again.
#[derive(Serialize, ToSchema)]
pub struct Requeued {
    pub requeued: u64,
}

/// Queues every failed webhook again (after an upgrade that can process them); audited.
#[utoipa::path(post, path = "/api/v1/webhook-inbox/retry", tag = "channels",
    responses((status = 200, description = "Queued again", body = Requeued)))]
async fn retry_webhook_inbox(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
) -> Result<Json<Requeued>, ApiError> {
    Ok(Json(Requeued {
        requeued: requeue_failed(&state, &ctx).await?,
    }))
}

/// Puts failed inbox rows back in the queue (shared with the pages).
pub(crate) async fn requeue_failed(state: &AppState, ctx: &TenantCtx) -> Result<u64, ApiError> {
    let mut tx = state.store().begin(ctx).await?;
    let n = tx.retry_failed_inbox().await?;
    tx.commit().await?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_versions_look_like_the_graph_paths() {
        for ok in ["v23.0", "v9.1", "v100.25"] {
            assert_eq!(check_api_version(ok).unwrap(), ok);
        }
        for bad in ["23.0", "v23", "v23.0.1", "v.0", "va.b", "v23.0/../x", ""] {
            assert!(check_api_version(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn secrets_are_trimmed_and_blank_means_none() {
        assert!(secret_input("x", Some("  \n")).unwrap().is_none());
        assert!(secret_input("x", None).unwrap().is_none());
        let s = secret_input("x", Some(" abc\n")).unwrap().unwrap();
        assert_eq!(s.expose_secret(), "abc");
        assert!(secret_input("x", Some("a\u{0}b")).is_err());
        assert!(secret_input("x", Some(&"a".repeat(SECRET_MAX + 1))).is_err());
    }

    #[test]
    fn inbox_bodies_are_shown_bounded() {
        let item = |body: Vec<u8>| InboxItem {
            id: InboxId::new(),
            channel: ChannelId::new(),
            received_at: OffsetDateTime::UNIX_EPOCH,
            body,
            status: InboxStatus::Failed,
            attempts: 1,
            error: Some("x".into()),
        };
        let e = InboxEntry::from(item(vec![b'a'; INBOX_BODY_PREVIEW + 10]));
        assert_eq!(e.body.len(), INBOX_BODY_PREVIEW);
        assert!(e.body_truncated);
        assert_eq!(e.body_bytes, INBOX_BODY_PREVIEW + 10);
        let e = InboxEntry::from(item(vec![0xff, b'{']));
        assert_eq!(e.body, "\u{fffd}{");
        assert!(!e.body_truncated);
    }
}
