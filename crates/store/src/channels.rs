//! WhatsApp channels (connected numbers) and the durable webhook inbox.
//!
//! A channel's secrets (access token, app secret, webhook verify token) are sealed with the
//! organisation's data key in their own columns; no read path returns them to a client, only
//! [`ChannelView`]'s `configured`/`last4`. A webhook reaches its channel by the random key in
//! its URL: the store looks the key's hash up in token scope, opens the app secret, and the
//! raw body is committed to the inbox before the webhook is answered.

use crate::audit::AuditRecord;
use crate::orgs::now_micros;
use crate::secrets::{Place, last4_of};
use crate::tenant::{Scope, TenantCtx, TenantTx, with_conn};
use crate::tokens::{new_token, token_hash};
use crate::{Store, StoreError};
use frontdesk_domain::{ChannelId, InboxId, OrgId};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

/// Which API a channel speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    /// Meta's WhatsApp Cloud API (or Frontdesk's simulator of it).
    Cloud,
    /// Whapi.Cloud.
    Whapi,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Cloud => "cloud",
            Provider::Whapi => "whapi",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "cloud" => Some(Provider::Cloud),
            "whapi" => Some(Provider::Whapi),
            _ => None,
        }
    }
}

/// A new channel's settings and secrets.
pub struct NewChannel {
    pub name: String,
    pub provider: Provider,
    pub phone_number_id: String,
    pub waba_id: String,
    pub display_number: String,
    pub api_base_url: String,
    pub api_version: String,
    pub simulated: bool,
    pub access_token: SecretString,
    pub app_secret: Option<SecretString>,
    pub verify_token: Option<SecretString>,
    pub throughput_mps: i32,
}

impl std::fmt::Debug for NewChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewChannel")
            .field("name", &self.name)
            .field("provider", &self.provider)
            .field("phone_number_id", &self.phone_number_id)
            .field("secrets", &"[redacted]")
            .finish_non_exhaustive()
    }
}

/// Changes to a channel; `None` leaves a value as it is (a secret is replaced only when given).
#[derive(Default)]
pub struct ChannelUpdate {
    pub name: Option<String>,
    pub display_number: Option<String>,
    pub api_base_url: Option<String>,
    pub api_version: Option<String>,
    pub throughput_mps: Option<i32>,
    /// The Meta app's id (digits; uploads of template samples need it). `Some("")` clears it.
    pub app_id: Option<String>,
    pub access_token: Option<SecretString>,
    pub app_secret: Option<SecretString>,
    pub verify_token: Option<SecretString>,
}

/// That a secret is set, and its last four characters when long enough to show them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SecretState {
    pub configured: bool,
    pub last4: Option<String>,
}

/// A channel as admins see it: never a secret's value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ChannelView {
    pub id: ChannelId,
    pub name: String,
    pub provider: Provider,
    pub phone_number_id: String,
    pub waba_id: String,
    pub display_number: String,
    pub api_base_url: String,
    pub api_version: String,
    pub simulated: bool,
    /// The Meta app the number is used through (Cloud only; not a secret). Template
    /// samples are uploaded through it (`POST /{app-id}/uploads`).
    pub app_id: Option<String>,
    pub access_token: SecretState,
    pub app_secret: SecretState,
    pub verify_token: SecretState,
    pub quality_rating: Option<String>,
    pub messaging_limit: Option<String>,
    pub throughput_mps: i32,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// What the code that talks to the provider needs (never serialised, redacted in Debug).
#[derive(Clone)]
pub struct ChannelCredentials {
    pub view: ChannelView,
    pub access_token: SecretString,
    pub app_secret: Option<SecretString>,
    pub verify_token: Option<SecretString>,
}

impl std::fmt::Debug for ChannelCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelCredentials")
            .field("channel", &self.view.id)
            .field("secrets", &"[redacted]")
            .finish()
    }
}

/// What a webhook needs to be checked and stored: its channel, tenant and secrets.
#[derive(Clone)]
pub struct WebhookTarget {
    pub ctx: TenantCtx,
    pub channel: ChannelId,
    pub provider: Provider,
    pub app_secret: Option<SecretString>,
    pub verify_token: Option<SecretString>,
}

impl std::fmt::Debug for WebhookTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookTarget")
            .field("org", &self.ctx.org_id())
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}

/// Where an inbox row stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InboxStatus {
    Pending,
    Processed,
    Failed,
}

impl InboxStatus {
    fn parse(s: &str) -> Result<Self, StoreError> {
        Ok(match s {
            "pending" => InboxStatus::Pending,
            "processed" => InboxStatus::Processed,
            "failed" => InboxStatus::Failed,
            _ => return Err(StoreError::Corrupt(format!("inbox status {s:?}"))),
        })
    }
}

/// Inbox rows of an organisation by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InboxCounts {
    pub pending: u64,
    pub processed: u64,
    pub failed: u64,
}

impl InboxCounts {
    pub fn total(&self) -> u64 {
        self.pending + self.processed + self.failed
    }
}

/// A stored webhook body.
#[derive(Debug, Clone)]
pub struct InboxItem {
    pub id: InboxId,
    pub channel: ChannelId,
    pub received_at: OffsetDateTime,
    pub body: Vec<u8>,
    pub status: InboxStatus,
    pub attempts: i32,
    pub error: Option<String>,
}

/// The result of storing a webhook body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    New(InboxId),
    /// The same body was stored before (a provider retry); nothing new.
    Duplicate,
}

/// The columns of a [`ChannelView`], as a literal so queries stay `'static` SQL.
macro_rules! view_cols {
    () => {
        "id, name, provider, phone_number_id, waba_id, display_number, api_base_url, api_version, simulated, access_token_last4, app_secret IS NOT NULL AS has_app_secret, verify_token IS NOT NULL AS has_verify_token, quality_rating, messaging_limit, throughput_mps, created_at, app_id"
    };
}
#[derive(sqlx::FromRow)]
struct ViewRow {
    id: uuid::Uuid,
    name: String,
    provider: String,
    phone_number_id: String,
    waba_id: String,
    display_number: String,
    api_base_url: String,
    api_version: String,
    simulated: bool,
    access_token_last4: Option<String>,
    has_app_secret: bool,
    has_verify_token: bool,
    quality_rating: Option<String>,
    messaging_limit: Option<String>,
    throughput_mps: i32,
    created_at: OffsetDateTime,
    app_id: Option<String>,
}

fn view(r: ViewRow) -> Result<ChannelView, StoreError> {
    Ok(ChannelView {
        id: ChannelId::from_uuid(r.id),
        name: r.name,
        provider: Provider::parse(&r.provider)
            .ok_or_else(|| StoreError::Corrupt(format!("provider {:?}", r.provider)))?,
        phone_number_id: r.phone_number_id,
        waba_id: r.waba_id,
        display_number: r.display_number,
        api_base_url: r.api_base_url,
        api_version: r.api_version,
        simulated: r.simulated,
        app_id: r.app_id,
        access_token: SecretState {
            configured: true,
            last4: r.access_token_last4,
        },
        app_secret: SecretState {
            configured: r.has_app_secret,
            last4: None,
        },
        verify_token: SecretState {
            configured: r.has_verify_token,
            last4: None,
        },
        quality_rating: r.quality_rating,
        messaging_limit: r.messaging_limit,
        throughput_mps: r.throughput_mps,
        created_at: r.created_at,
    })
}

fn place<'a>(column: &'static str, row: &'a str) -> Place<'a> {
    Place {
        table: "channels",
        column,
        row_id: row,
    }
}

fn check_new(c: &NewChannel) -> Result<(), StoreError> {
    let bad = |m: &str| Err(StoreError::Invalid(m.to_owned()));
    crate::members::valid_label(&c.name, 100, "channel name")?;
    if c.phone_number_id.is_empty()
        || c.phone_number_id.len() > 64
        || !c
            .phone_number_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return bad("the phone number id is 1–64 letters, digits, '-' or '_'");
    }
    check_url(&c.api_base_url)?;
    if !(1..=1000).contains(&c.throughput_mps) {
        return bad("throughput is 1–1000 messages per second");
    }
    if c.access_token.expose_secret().is_empty() || c.access_token.expose_secret().len() > 4096 {
        return bad("an access token is required (at most 4096 characters)");
    }
    if c.provider == Provider::Cloud
        && c.app_secret
            .as_ref()
            .is_none_or(|s| s.expose_secret().is_empty())
    {
        return bad("a Cloud API channel needs its app secret (to check webhook signatures)");
    }
    Ok(())
}

/// A Meta app id: 1–32 digits.
pub fn check_app_id(v: &str) -> Result<(), StoreError> {
    if (1..=32).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(StoreError::Invalid(
            "the Meta app id is 1–32 digits (App Dashboard, App settings)".into(),
        ))
    }
}

fn check_url(u: &str) -> Result<(), StoreError> {
    if (u.starts_with("https://") || u.starts_with("http://"))
        && u.len() <= 500
        && !u.contains(char::is_whitespace)
    {
        Ok(())
    } else {
        Err(StoreError::Invalid(
            "the API base URL must be an http(s) URL".into(),
        ))
    }
}

impl TenantTx {
    /// Connects a number. Returns the channel and its webhook key (for the callback URL).
    pub async fn create_channel(
        &mut self,
        c: NewChannel,
    ) -> Result<(ChannelView, SecretString), StoreError> {
        check_new(&c)?;
        let id = ChannelId::new();
        let row = id.to_string();
        let (key, key_hash) = new_token("fdw");
        let sealed_key = self
            .seal(place("webhook_key", &row), key.expose_secret().as_bytes())
            .await?;
        let token = self
            .seal(
                place("access_token", &row),
                c.access_token.expose_secret().as_bytes(),
            )
            .await?;
        let app_secret = match &c.app_secret {
            Some(s) => Some(
                self.seal(place("app_secret", &row), s.expose_secret().as_bytes())
                    .await?,
            ),
            None => None,
        };
        let verify = match &c.verify_token {
            Some(s) => Some(
                self.seal(place("verify_token", &row), s.expose_secret().as_bytes())
                    .await?,
            ),
            None => None,
        };
        let org = self.ctx().org_id().as_uuid();
        let now = now_micros();
        let r = with_conn!(self.tx, conn => {
            sqlx::query("INSERT INTO channels (org_id, id, name, provider, phone_number_id, waba_id, display_number, api_base_url, api_version, simulated, access_token, access_token_last4, app_secret, verify_token, webhook_key, webhook_key_hash, throughput_mps, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $18)")
                .bind(org).bind(id.as_uuid()).bind(c.name.trim()).bind(c.provider.as_str()).bind(&c.phone_number_id)
                .bind(&c.waba_id).bind(&c.display_number).bind(c.api_base_url.trim_end_matches('/')).bind(&c.api_version).bind(c.simulated)
                .bind(&token).bind(last4_of(c.access_token.expose_secret())).bind(app_secret).bind(verify)
                .bind(&sealed_key).bind(&key_hash[..]).bind(c.throughput_mps).bind(now)
                .execute(conn).await.map(drop)
        });
        if let Err(e) = r {
            if e.as_database_error()
                .is_some_and(|d| d.is_unique_violation())
            {
                return Err(StoreError::Conflict("channel_exists"));
            }
            return Err(e.into());
        }
        self.audit(AuditRecord::new(
            "channel.created",
            "channel",
            id.to_string(),
            serde_json::json!({ "provider": c.provider.as_str(), "phone_number_id": c.phone_number_id, "simulated": c.simulated }),
        ))
        .await?;
        let view = self.channel(id).await?;
        Ok((view, key))
    }

    /// One channel of the organisation.
    pub async fn channel(&mut self, id: ChannelId) -> Result<ChannelView, StoreError> {
        let org = self.ctx().org_id().as_uuid();
        let row: Option<ViewRow> = with_conn!(self.tx, c => {
            sqlx::query_as(concat!("SELECT ", view_cols!(), " FROM channels WHERE org_id = $1 AND id = $2"))
                .bind(org).bind(id.as_uuid()).fetch_optional(c).await?
        });
        view(row.ok_or(StoreError::NotFound)?)
    }

    /// The organisation's channel with this provider number id, if any.
    pub async fn channel_by_number(
        &mut self,
        provider: Provider,
        phone_number_id: &str,
    ) -> Result<Option<ChannelId>, StoreError> {
        let org = self.ctx().org_id().as_uuid();
        let id: Option<uuid::Uuid> = with_conn!(self.tx, c => {
            sqlx::query_scalar("SELECT id FROM channels WHERE org_id = $1 AND provider = $2 AND phone_number_id = $3")
                .bind(org).bind(provider.as_str()).bind(phone_number_id).fetch_optional(c).await?
        });
        Ok(id.map(ChannelId::from_uuid))
    }

    /// The organisation's channels of a business account whose display number matches
    /// (digits compared, as Meta formats numbers in several ways).
    pub async fn channels_by_display_number(
        &mut self,
        waba_id: &str,
        display_number: &str,
    ) -> Result<Vec<ChannelId>, StoreError> {
        let org = self.ctx().org_id().as_uuid();
        let rows: Vec<(uuid::Uuid, String)> = with_conn!(self.tx, c => {
            sqlx::query_as("SELECT id, display_number FROM channels WHERE org_id = $1 AND waba_id = $2")
                .bind(org).bind(waba_id).fetch_all(c).await?
        });
        let digits = |s: &str| s.chars().filter(char::is_ascii_digit).collect::<String>();
        let wanted = digits(display_number);
        Ok(rows
            .into_iter()
            .filter(|(_, d)| !wanted.is_empty() && digits(d) == wanted)
            .map(|(id, _)| ChannelId::from_uuid(id))
            .collect())
    }

    /// Changes settings and replaces the secrets that are given.
    pub async fn update_channel(
        &mut self,
        id: ChannelId,
        u: ChannelUpdate,
    ) -> Result<ChannelView, StoreError> {
        let current = self.channel(id).await?;
        let row = id.to_string();
        let org = self.ctx().org_id().as_uuid();
        if let Some(url) = &u.api_base_url {
            check_url(url)?;
        }
        if let Some(n) = &u.name {
            crate::members::valid_label(n, 100, "channel name")?;
        }
        if u.throughput_mps.is_some_and(|t| !(1..=1000).contains(&t)) {
            return Err(StoreError::Invalid(
                "throughput is 1–1000 messages per second".into(),
            ));
        }
        let app_id = match u.app_id.as_deref().map(str::trim) {
            None => current.app_id.clone(),
            Some("") => None,
            Some(a) => {
                check_app_id(a)?;
                if current.provider != Provider::Cloud {
                    return Err(StoreError::Invalid(
                        "only Cloud API numbers have a Meta app id".into(),
                    ));
                }
                Some(a.to_owned())
            }
        };
        let mut changed_secrets = Vec::new();
        for (column, value) in [
            ("access_token", &u.access_token),
            ("app_secret", &u.app_secret),
            ("verify_token", &u.verify_token),
        ] {
            let Some(v) = value else { continue };
            if v.expose_secret().is_empty() || v.expose_secret().len() > 4096 {
                return Err(StoreError::Invalid(format!(
                    "{column} is 1–4096 characters"
                )));
            }
            let sealed = self
                .seal(place(column, &row), v.expose_secret().as_bytes())
                .await?;
            let last4 = last4_of(v.expose_secret());
            with_conn!(self.tx, c => {
                match column {
                    "access_token" => sqlx::query("UPDATE channels SET access_token = $3, access_token_last4 = $4 WHERE org_id = $1 AND id = $2").bind(org).bind(id.as_uuid()).bind(&sealed).bind(last4).execute(c).await?,
                    "app_secret" => sqlx::query("UPDATE channels SET app_secret = $3 WHERE org_id = $1 AND id = $2").bind(org).bind(id.as_uuid()).bind(&sealed).execute(c).await?,
                    _ => sqlx::query("UPDATE channels SET verify_token = $3 WHERE org_id = $1 AND id = $2").bind(org).bind(id.as_uuid()).bind(&sealed).execute(c).await?,
                };
            });
            changed_secrets.push(column);
        }
        with_conn!(self.tx, c => {
            sqlx::query("UPDATE channels SET name = $3, display_number = $4, api_base_url = $5, api_version = $6, throughput_mps = $7, updated_at = $8, app_id = $9 WHERE org_id = $1 AND id = $2")
                .bind(org).bind(id.as_uuid())
                .bind(u.name.as_deref().map(str::trim).unwrap_or(&current.name))
                .bind(u.display_number.as_deref().unwrap_or(&current.display_number))
                .bind(u.api_base_url.as_deref().map(|s| s.trim_end_matches('/')).unwrap_or(&current.api_base_url))
                .bind(u.api_version.as_deref().unwrap_or(&current.api_version))
                .bind(u.throughput_mps.unwrap_or(current.throughput_mps))
                .bind(now_micros())
                .bind(&app_id)
                .execute(c).await?;
        });
        self.audit(AuditRecord::new(
            "channel.updated",
            "channel",
            id.to_string(),
            serde_json::json!({ "secrets_replaced": changed_secrets, "app_id": (app_id != current.app_id).then_some(&app_id) }),
        ))
        .await?;
        self.channel(id).await
    }

    /// Records what the provider says about the number's health (from its webhooks or
    /// its API); `None` leaves a value as it is.
    pub async fn set_channel_health(
        &mut self,
        id: ChannelId,
        quality: Option<&str>,
        limit: Option<&str>,
        throughput_mps: Option<i32>,
    ) -> Result<(), StoreError> {
        let org = self.ctx().org_id().as_uuid();
        with_conn!(self.tx, c => {
            sqlx::query("UPDATE channels SET quality_rating = coalesce($3, quality_rating), messaging_limit = coalesce($4, messaging_limit), throughput_mps = coalesce($6, throughput_mps), updated_at = $5 WHERE org_id = $1 AND id = $2")
                .bind(org).bind(id.as_uuid()).bind(quality).bind(limit).bind(now_micros()).bind(throughput_mps).execute(c).await?;
        });
        Ok(())
    }

    /// The channel's secrets, opened, for the code that calls the provider.
    pub async fn channel_credentials(
        &mut self,
        id: ChannelId,
    ) -> Result<ChannelCredentials, StoreError> {
        let view = self.channel(id).await?;
        let org = self.ctx().org_id().as_uuid();
        let (token, app, verify): (Vec<u8>, Option<Vec<u8>>, Option<Vec<u8>>) = with_conn!(self.tx, c => {
            sqlx::query_as("SELECT access_token, app_secret, verify_token FROM channels WHERE org_id = $1 AND id = $2")
                .bind(org).bind(id.as_uuid()).fetch_one(c).await?
        });
        let row = id.to_string();
        let open = |b: zeroize::Zeroizing<Vec<u8>>| -> Result<SecretString, StoreError> {
            Ok(SecretString::from(String::from_utf8(b.to_vec()).map_err(
                |_| StoreError::Corrupt("a channel secret is not UTF-8".into()),
            )?))
        };
        let access_token = open(self.open(place("access_token", &row), &token).await?)?;
        let app_secret = match app {
            Some(b) => Some(open(self.open(place("app_secret", &row), &b).await?)?),
            None => None,
        };
        let verify_token = match verify {
            Some(b) => Some(open(self.open(place("verify_token", &row), &b).await?)?),
            None => None,
        };
        Ok(ChannelCredentials {
            view,
            access_token,
            app_secret,
            verify_token,
        })
    }

    /// The channel's webhook key, to show its callback URL again.
    pub async fn channel_webhook_key(&mut self, id: ChannelId) -> Result<SecretString, StoreError> {
        let org = self.ctx().org_id().as_uuid();
        let sealed: Option<Vec<u8>> = with_conn!(self.tx, c => {
            sqlx::query_scalar("SELECT webhook_key FROM channels WHERE org_id = $1 AND id = $2").bind(org).bind(id.as_uuid()).fetch_optional(c).await?
        });
        let row = id.to_string();
        let plain = self
            .open(
                place("webhook_key", &row),
                &sealed.ok_or(StoreError::NotFound)?,
            )
            .await?;
        Ok(SecretString::from(
            String::from_utf8(plain.to_vec())
                .map_err(|_| StoreError::Corrupt("webhook key".into()))?,
        ))
    }

    /// Disconnects a channel (its inbox goes with it).
    pub async fn delete_channel(&mut self, id: ChannelId) -> Result<(), StoreError> {
        let org = self.ctx().org_id().as_uuid();
        let n = with_conn!(self.tx, c => {
            sqlx::query("DELETE FROM channels WHERE org_id = $1 AND id = $2").bind(org).bind(id.as_uuid()).execute(c).await?.rows_affected()
        });
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        self.audit(AuditRecord::new(
            "channel.deleted",
            "channel",
            id.to_string(),
            serde_json::json!({}),
        ))
        .await?;
        Ok(())
    }
}

/// Bodies per multi-row insert of [`Store::store_webhooks`].
const INBOX_CHUNK: usize = 16;
/// [`INBOX_CHUNK`] rows in one statement: `$1` organisation, `$2` time, then per row id,
/// channel, body, hash. Rows skipped as duplicates are absent from `RETURNING`.
const INSERT_INBOX_CHUNK: &str = "INSERT INTO webhook_inbox (org_id, id, channel_id, received_at, body, body_sha256, status) VALUES ($1, $3, $4, $2, $5, $6, 'pending'), ($1, $7, $8, $2, $9, $10, 'pending'), ($1, $11, $12, $2, $13, $14, 'pending'), ($1, $15, $16, $2, $17, $18, 'pending'), ($1, $19, $20, $2, $21, $22, 'pending'), ($1, $23, $24, $2, $25, $26, 'pending'), ($1, $27, $28, $2, $29, $30, 'pending'), ($1, $31, $32, $2, $33, $34, 'pending'), ($1, $35, $36, $2, $37, $38, 'pending'), ($1, $39, $40, $2, $41, $42, 'pending'), ($1, $43, $44, $2, $45, $46, 'pending'), ($1, $47, $48, $2, $49, $50, 'pending'), ($1, $51, $52, $2, $53, $54, 'pending'), ($1, $55, $56, $2, $57, $58, 'pending'), ($1, $59, $60, $2, $61, $62, 'pending'), ($1, $63, $64, $2, $65, $66, 'pending') ON CONFLICT (org_id, channel_id, body_sha256) DO NOTHING RETURNING id";

/// The SHA-256 a body is deduplicated by.
pub fn body_sha256(body: &[u8]) -> [u8; 32] {
    Sha256::digest(body).into()
}

impl Store {
    pub async fn list_channels(&self, ctx: &TenantCtx) -> Result<Vec<ChannelView>, StoreError> {
        let mut tx = self.begin_read(ctx).await?;
        let org = ctx.org_id().as_uuid();
        let rows: Vec<ViewRow> = with_conn!(tx.tx, c => {
            sqlx::query_as(concat!("SELECT ", view_cols!(), " FROM channels WHERE org_id = $1 ORDER BY name")).bind(org).fetch_all(c).await?
        });
        tx.commit().await?;
        rows.into_iter().map(view).collect()
    }

    /// The channel a webhook URL's key names, with its secrets opened; `None` for an
    /// unknown key.
    pub async fn webhook_target(&self, key: &str) -> Result<Option<WebhookTarget>, StoreError> {
        if !key.starts_with("fdw_") || key.len() > 100 {
            return Ok(None);
        }
        let hash = token_hash(key);
        let mut g = self.begin_global(false).await?;
        g.scope(Scope::Token(&hash)).await?;
        let found: Option<(uuid::Uuid, uuid::Uuid)> = with_conn!(g.tx, c => {
            sqlx::query_as("SELECT org_id, id FROM channels WHERE webhook_key_hash = $1").bind(&hash[..]).fetch_optional(c).await?
        });
        let Some((org, id)) = found else {
            g.commit().await?;
            return Ok(None);
        };
        let ctx = TenantCtx::system(OrgId::from_uuid(org), "webhook");
        let mut tx = g.into_tenant(ctx.clone()).await?;
        let creds = tx.channel_credentials(ChannelId::from_uuid(id)).await?;
        tx.commit().await?;
        Ok(Some(WebhookTarget {
            ctx,
            channel: creds.view.id,
            provider: creds.view.provider,
            app_secret: creds.app_secret,
            verify_token: creds.verify_token,
        }))
    }

    /// Commits webhook bodies to the inbox, all in one transaction (group commit: many
    /// concurrent webhooks share one durable write). Identical bodies already stored are
    /// not stored again.
    pub async fn store_webhooks(
        &self,
        items: &[(&TenantCtx, ChannelId, &[u8])],
    ) -> Result<Vec<Stored>, StoreError> {
        let Some((first, _, _)) = items.first() else {
            return Ok(Vec::new());
        };
        let now = now_micros();
        let mut tx = self.begin_urgent(first).await?;
        let mut out = Vec::with_capacity(items.len());
        let mut current = first.org_id();
        let mut rest = items;
        while let Some((ctx, _, _)) = rest.first() {
            if ctx.org_id() != current {
                tx = tx.into_global().await?.into_tenant((*ctx).clone()).await?;
                current = ctx.org_id();
            }
            // The run of this organisation's bodies, stored INBOX_CHUNK rows per statement:
            // one round trip to the database per chunk instead of per body.
            let run = rest
                .iter()
                .take_while(|(c, _, _)| c.org_id() == current)
                .count();
            let (same_org, next) = rest.split_at(run);
            rest = next;
            let org = current.as_uuid();
            let mut chunks = same_org.chunks_exact(INBOX_CHUNK);
            for chunk in chunks.by_ref() {
                let ids: Vec<InboxId> = chunk.iter().map(|_| InboxId::new()).collect();
                let shas: Vec<[u8; 32]> = chunk.iter().map(|(_, _, b)| body_sha256(b)).collect();
                let inserted: Vec<uuid::Uuid> = with_conn!(tx.tx, c => {
                    let mut q = sqlx::query_scalar(INSERT_INBOX_CHUNK).bind(org).bind(now);
                    for (((_, channel, body), id), sha) in chunk.iter().zip(&ids).zip(&shas) {
                        q = q.bind(id.as_uuid()).bind(channel.as_uuid()).bind(*body).bind(&sha[..]);
                    }
                    q.fetch_all(c).await?
                });
                out.extend(ids.iter().map(|id| {
                    if inserted.contains(&id.as_uuid()) {
                        Stored::New(*id)
                    } else {
                        Stored::Duplicate
                    }
                }));
            }
            for (_, channel, body) in chunks.remainder() {
                let id = InboxId::new();
                let sha = body_sha256(body);
                let n = with_conn!(tx.tx, c => {
                    sqlx::query("INSERT INTO webhook_inbox (org_id, id, channel_id, received_at, body, body_sha256, status) VALUES ($1, $2, $3, $4, $5, $6, 'pending') ON CONFLICT (org_id, channel_id, body_sha256) DO NOTHING")
                        .bind(org).bind(id.as_uuid()).bind(channel.as_uuid()).bind(now).bind(*body).bind(&sha[..])
                        .execute(c).await?.rows_affected()
                });
                out.push(if n == 1 {
                    Stored::New(id)
                } else {
                    Stored::Duplicate
                });
            }
        }
        // Raw bodies only: the conversations change when the worker processes them.
        tx.keeps_unread_counts();
        tx.commit().await?;
        Ok(out)
    }

    /// How many inbox rows of an organisation are in each status (for the ingest
    /// benchmark and health pages).
    pub async fn inbox_counts(&self, ctx: &TenantCtx) -> Result<InboxCounts, StoreError> {
        let mut tx = self.begin_read(ctx).await?;
        let org = ctx.org_id().as_uuid();
        let rows: Vec<(String, i64)> = with_conn!(tx.tx, c => {
            sqlx::query_as("SELECT status, COUNT(*) FROM webhook_inbox WHERE org_id = $1 GROUP BY status").bind(org).fetch_all(c).await?
        });
        tx.commit().await?;
        let mut counts = InboxCounts::default();
        for (status, n) in rows {
            let n = u64::try_from(n).unwrap_or(0);
            match InboxStatus::parse(&status)? {
                InboxStatus::Pending => counts.pending = n,
                InboxStatus::Processed => counts.processed = n,
                InboxStatus::Failed => counts.failed = n,
            }
        }
        Ok(counts)
    }

    /// Pending inbox rows of an organisation, oldest first.
    pub async fn pending_inbox(
        &self,
        ctx: &TenantCtx,
        limit: i64,
    ) -> Result<Vec<InboxItem>, StoreError> {
        self.inbox_where(ctx, Some(InboxStatus::Pending), limit)
            .await
    }

    /// The inbox of an organisation (admins look at failed rows), newest first.
    pub async fn inbox_where(
        &self,
        ctx: &TenantCtx,
        status: Option<InboxStatus>,
        limit: i64,
    ) -> Result<Vec<InboxItem>, StoreError> {
        type Row = (
            uuid::Uuid,
            uuid::Uuid,
            OffsetDateTime,
            Vec<u8>,
            String,
            i32,
            Option<String>,
        );
        let status_text = status.map(|s| match s {
            InboxStatus::Pending => "pending",
            InboxStatus::Processed => "processed",
            InboxStatus::Failed => "failed",
        });
        let oldest_first = status == Some(InboxStatus::Pending);
        let mut tx = self.begin_read(ctx).await?;
        let org = ctx.org_id().as_uuid();
        let limit = limit.clamp(1, 1000);
        let rows: Vec<Row> = with_conn!(tx.tx, c => {
            match (status_text, oldest_first) {
                (Some(st), true) => sqlx::query_as("SELECT id, channel_id, received_at, body, status, attempts, error FROM webhook_inbox WHERE org_id = $1 AND status = $2 ORDER BY received_at, id LIMIT $3")
                    .bind(org).bind(st).bind(limit).fetch_all(c).await?,
                (Some(st), false) => sqlx::query_as("SELECT id, channel_id, received_at, body, status, attempts, error FROM webhook_inbox WHERE org_id = $1 AND status = $2 ORDER BY received_at DESC, id DESC LIMIT $3")
                    .bind(org).bind(st).bind(limit).fetch_all(c).await?,
                (None, _) => sqlx::query_as("SELECT id, channel_id, received_at, body, status, attempts, error FROM webhook_inbox WHERE org_id = $1 ORDER BY received_at DESC, id DESC LIMIT $2")
                    .bind(org).bind(limit).fetch_all(c).await?,
            }
        });
        tx.commit().await?;
        rows.into_iter()
            .map(|(id, ch, at, body, status, attempts, error)| {
                Ok(InboxItem {
                    id: InboxId::from_uuid(id),
                    channel: ChannelId::from_uuid(ch),
                    received_at: at,
                    body,
                    status: InboxStatus::parse(&status)?,
                    attempts,
                    error,
                })
            })
            .collect()
    }
}

impl TenantTx {
    /// Marks an inbox row processed (or failed, with the error), in the transaction that
    /// applied it.
    pub async fn finish_inbox(
        &mut self,
        id: InboxId,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let org = self.ctx().org_id().as_uuid();
        let status = if error.is_some() {
            "failed"
        } else {
            "processed"
        };
        with_conn!(self.tx, c => {
            sqlx::query("UPDATE webhook_inbox SET status = $3, error = $4, attempts = attempts + 1, processed_at = $5 WHERE org_id = $1 AND id = $2")
                .bind(org).bind(id.as_uuid()).bind(status).bind(error.map(|e| e.chars().take(1000).collect::<String>())).bind(now_micros()).execute(&mut *c).await?;
            sqlx::query("DELETE FROM inbox_queue WHERE inbox_id = $1 AND org_id = $2").bind(id.as_uuid()).bind(org).execute(&mut *c).await?;
        });
        Ok(())
    }

    /// Puts failed rows back in the queue (after an upgrade that can parse them).
    pub async fn retry_failed_inbox(&mut self) -> Result<u64, StoreError> {
        let org = self.ctx().org_id().as_uuid();
        let n = with_conn!(self.tx, c => {
            sqlx::query("UPDATE webhook_inbox SET status = 'pending', error = NULL WHERE org_id = $1 AND status = 'failed'").bind(org).execute(&mut *c).await?.rows_affected()
        });
        if n > 0 {
            self.audit(AuditRecord::new(
                "webhook_inbox.requeued",
                "webhook_inbox",
                "failed",
                serde_json::json!({ "count": n }),
            ))
            .await?;
        }
        Ok(n)
    }
}

impl TenantTx {
    /// The inbox rows with these ids that are still pending (a claimed batch).
    pub async fn pending_inbox_items(
        &mut self,
        ids: &[InboxId],
    ) -> Result<Vec<InboxItem>, StoreError> {
        let org = self.ctx().org_id().as_uuid();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let r: Option<(uuid::Uuid, OffsetDateTime, Vec<u8>, i32)> = with_conn!(self.tx, c => {
                sqlx::query_as("SELECT channel_id, received_at, body, attempts FROM webhook_inbox WHERE org_id = $1 AND id = $2 AND status = 'pending'")
                    .bind(org).bind(id.as_uuid()).fetch_optional(c).await?
            });
            match r {
                Some((ch, at, body, attempts)) => out.push(InboxItem {
                    id: *id,
                    channel: ChannelId::from_uuid(ch),
                    received_at: at,
                    body,
                    status: InboxStatus::Pending,
                    attempts,
                    error: None,
                }),
                // Processed meanwhile (another worker) or gone with its channel: drop the queue entry.
                None => {
                    with_conn!(self.tx, c => {
                        sqlx::query("DELETE FROM inbox_queue WHERE inbox_id = $1 AND org_id = $2").bind(id.as_uuid()).bind(org).execute(c).await?;
                    });
                }
            }
        }
        Ok(out)
    }
}
