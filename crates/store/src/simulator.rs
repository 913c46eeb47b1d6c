//! The built-in WhatsApp simulator's own records: the numbers it plays Meta for, their fake
//! customers, messages both ways, uploaded media and submitted templates.
//!
//! These are tenant tables: a simulated number belongs to the organisation that connected
//! it. The fake Graph API knows its caller only by the Bearer access token, so
//! [`Store::sim_number_by_token`] looks the token's SHA-256 up in token scope (a narrow,
//! read-only policy on PostgreSQL) and then works in that organisation's tenant context.
//! Times are unix milliseconds, which compare the same on both backends.

use crate::tenant::{Scope, TenantCtx, TenantTx, with_conn};
use crate::tokens::token_hash;
use crate::{Store, StoreError};
use frontdesk_domain::{ChannelId, OrgId};
use serde::Serialize;

/// A fake customer of the simulator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(transparent)]
#[schema(value_type = String, format = Uuid)]
pub struct SimCustomerId(uuid::Uuid);

impl SimCustomerId {
    pub fn new() -> Self {
        Self(uuid::Uuid::now_v7())
    }

    pub fn parse(s: &str) -> Result<Self, uuid::Error> {
        uuid::Uuid::parse_str(s).map(Self)
    }

    pub fn as_uuid(&self) -> uuid::Uuid {
        self.0
    }
}

impl Default for SimCustomerId {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Display for SimCustomerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A number the simulator plays Meta for (its channel holds the secrets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimNumber {
    pub channel_id: ChannelId,
    pub phone_number_id: String,
    pub waba_id: String,
    pub display_number: String,
    pub verified_name: String,
    /// Sends per second accepted before 130429; `None`: no limit.
    pub send_rate_limit: Option<i32>,
    pub created_ms: i64,
}

/// What a new simulated number needs; the access token arrives as its hash only.
#[derive(Debug, Clone)]
pub struct NewSimNumber {
    pub channel_id: ChannelId,
    pub phone_number_id: String,
    pub waba_id: String,
    pub display_number: String,
    pub verified_name: String,
    pub access_token_hash: [u8; 32],
    pub send_rate_limit: Option<i32>,
    pub created_ms: i64,
}

/// A fake customer: a phone number and a BSUID, or (username users) a BSUID only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimCustomer {
    pub id: SimCustomerId,
    pub channel_id: ChannelId,
    pub name: String,
    /// Digits without `+`, as Meta's `wa_id`.
    pub phone: Option<String>,
    pub bsuid: String,
    pub username: Option<String>,
    pub last_inbound_ms: Option<i64>,
    pub created_ms: i64,
}

/// Which way a message went, seen from the business.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SimDirection {
    /// From the customer's phone to the business (a webhook).
    In,
    /// From the business to the customer (a Graph API send).
    Out,
}

impl SimDirection {
    fn as_str(self) -> &'static str {
        match self {
            SimDirection::In => "in",
            SimDirection::Out => "out",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "in" => Ok(SimDirection::In),
            "out" => Ok(SimDirection::Out),
            _ => Err(StoreError::Corrupt(format!("sim direction {s:?}"))),
        }
    }
}

/// A message of a simulated chat.
#[derive(Debug, Clone, PartialEq)]
pub struct SimMessage {
    pub id: uuid::Uuid,
    pub channel_id: ChannelId,
    pub customer_id: Option<SimCustomerId>,
    pub wamid: String,
    pub direction: SimDirection,
    pub msg_type: String,
    /// The message object as sent (out) or as posted (in).
    pub payload: serde_json::Value,
    /// `received` (in); `accepted`, `sent`, `delivered`, `read` or `failed` (out).
    pub status: String,
    pub error_code: Option<i32>,
    pub created_ms: i64,
    pub updated_ms: i64,
}

/// An uploaded file of the fake media endpoint.
#[derive(Clone)]
pub struct SimMedia {
    pub id: String,
    pub channel_id: ChannelId,
    pub mime_type: String,
    /// Base64 SHA-256 of the bytes.
    pub sha256: String,
    pub file_size: i64,
    pub filename: Option<String>,
    pub bytes: Vec<u8>,
    pub created_ms: i64,
}

impl std::fmt::Debug for SimMedia {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimMedia")
            .field("id", &self.id)
            .field("mime_type", &self.mime_type)
            .field("file_size", &self.file_size)
            .finish_non_exhaustive()
    }
}

/// An upload session of the fake Resumable Upload API (`POST /{app-id}/uploads`), with the
/// bytes received so far; `handle` once every declared byte has arrived.
#[derive(Clone)]
pub struct SimUpload {
    /// `upload:…`, as answered (without the `?sig=` part).
    pub id: String,
    pub channel_id: ChannelId,
    /// The session's signature (`?sig=…`), checked on every later call.
    pub sig: String,
    pub file_name: String,
    pub file_type: String,
    pub file_length: i64,
    pub file_offset: i64,
    pub bytes: Vec<u8>,
    pub handle: Option<String>,
    pub created_ms: i64,
}

impl std::fmt::Debug for SimUpload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimUpload")
            .field("id", &self.id)
            .field("file_type", &self.file_type)
            .field("file_length", &self.file_length)
            .field("file_offset", &self.file_offset)
            .finish_non_exhaustive()
    }
}

type UploadRow = (
    String,
    uuid::Uuid,
    String,
    String,
    String,
    i64,
    i64,
    Vec<u8>,
    Option<String>,
    i64,
);

fn upload(r: UploadRow) -> SimUpload {
    SimUpload {
        id: r.0,
        channel_id: ChannelId::from_uuid(r.1),
        sig: r.2,
        file_name: r.3,
        file_type: r.4,
        file_length: r.5,
        file_offset: r.6,
        bytes: r.7,
        handle: r.8,
        created_ms: r.9,
    }
}

macro_rules! upload_cols {
    () => {
        "id, channel_id, sig, file_name, file_type, file_length, file_offset, bytes, handle, created_ms"
    };
}

/// A template submitted to the fake WABA.
#[derive(Debug, Clone, PartialEq)]
pub struct SimTemplate {
    pub id: String,
    pub channel_id: ChannelId,
    pub name: String,
    pub language: String,
    pub category: String,
    /// `PENDING`, `APPROVED` or `REJECTED`.
    pub status: String,
    pub reason: Option<String>,
    pub components: serde_json::Value,
    pub created_ms: i64,
}

type NumberRow = (uuid::Uuid, String, String, String, String, Option<i32>, i64);

fn number(r: NumberRow) -> SimNumber {
    SimNumber {
        channel_id: ChannelId::from_uuid(r.0),
        phone_number_id: r.1,
        waba_id: r.2,
        display_number: r.3,
        verified_name: r.4,
        send_rate_limit: r.5,
        created_ms: r.6,
    }
}

type CustomerRow = (
    uuid::Uuid,
    uuid::Uuid,
    String,
    Option<String>,
    String,
    Option<String>,
    Option<i64>,
    i64,
);

fn customer(r: CustomerRow) -> SimCustomer {
    SimCustomer {
        id: SimCustomerId(r.0),
        channel_id: ChannelId::from_uuid(r.1),
        name: r.2,
        phone: r.3,
        bsuid: r.4,
        username: r.5,
        last_inbound_ms: r.6,
        created_ms: r.7,
    }
}

type MessageRow = (
    uuid::Uuid,
    uuid::Uuid,
    Option<uuid::Uuid>,
    String,
    String,
    String,
    String,
    String,
    Option<i32>,
    i64,
    i64,
);

fn message(r: MessageRow) -> Result<SimMessage, StoreError> {
    Ok(SimMessage {
        id: r.0,
        channel_id: ChannelId::from_uuid(r.1),
        customer_id: r.2.map(SimCustomerId),
        wamid: r.3,
        direction: SimDirection::parse(&r.4)?,
        msg_type: r.5,
        payload: serde_json::from_str(&r.6)
            .map_err(|e| StoreError::Corrupt(format!("sim message payload: {e}")))?,
        status: r.7,
        error_code: r.8,
        created_ms: r.9,
        updated_ms: r.10,
    })
}

type TemplateRow = (
    String,
    uuid::Uuid,
    String,
    String,
    String,
    String,
    Option<String>,
    String,
    i64,
);

fn template(r: TemplateRow) -> Result<SimTemplate, StoreError> {
    Ok(SimTemplate {
        id: r.0,
        channel_id: ChannelId::from_uuid(r.1),
        name: r.2,
        language: r.3,
        category: r.4,
        status: r.5,
        reason: r.6,
        components: serde_json::from_str(&r.7)
            .map_err(|e| StoreError::Corrupt(format!("sim template components: {e}")))?,
        created_ms: r.8,
    })
}

macro_rules! number_cols {
    () => {
        "channel_id, phone_number_id, waba_id, display_number, verified_name, send_rate_limit, created_ms"
    };
}
macro_rules! customer_cols {
    () => {
        "id, channel_id, name, phone, bsuid, username, last_inbound_ms, created_ms"
    };
}
macro_rules! message_cols {
    () => {
        "id, channel_id, customer_id, wamid, direction, msg_type, payload, status, error_code, created_ms, updated_ms"
    };
}
macro_rules! template_cols {
    () => {
        "id, channel_id, name, language, category, status, reason, components, created_ms"
    };
}

fn unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.is_unique_violation())
}

impl TenantTx {
    /// Registers a simulated number for a channel created in the same transaction.
    pub async fn create_sim_number(&mut self, n: NewSimNumber) -> Result<SimNumber, StoreError> {
        if n.send_rate_limit.is_some_and(|r| !(1..=1000).contains(&r)) {
            return Err(StoreError::Invalid(
                "the send rate limit is 1–1000 messages per second".into(),
            ));
        }
        let org = self.ctx().org_id().as_uuid();
        let r = with_conn!(self.tx, c => {
            sqlx::query("INSERT INTO sim_numbers (org_id, channel_id, phone_number_id, waba_id, display_number, verified_name, access_token_hash, send_rate_limit, created_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
                .bind(org).bind(n.channel_id.as_uuid()).bind(&n.phone_number_id).bind(&n.waba_id)
                .bind(&n.display_number).bind(&n.verified_name).bind(&n.access_token_hash[..])
                .bind(n.send_rate_limit).bind(n.created_ms)
                .execute(c).await.map(drop)
        });
        if let Err(e) = r {
            if unique_violation(&e) {
                return Err(StoreError::Conflict("channel_exists"));
            }
            return Err(e.into());
        }
        self.sim_number(n.channel_id).await
    }

    /// One simulated number of the organisation.
    pub async fn sim_number(&mut self, channel: ChannelId) -> Result<SimNumber, StoreError> {
        let org = self.ctx().org_id().as_uuid();
        let row: Option<NumberRow> = with_conn!(self.tx, c => {
            sqlx::query_as(concat!("SELECT ", number_cols!(), " FROM sim_numbers WHERE org_id = $1 AND channel_id = $2"))
                .bind(org).bind(channel.as_uuid()).fetch_optional(c).await?
        });
        row.map(number).ok_or(StoreError::NotFound)
    }

    /// Every simulated number of the organisation, oldest first.
    pub async fn sim_numbers(&mut self) -> Result<Vec<SimNumber>, StoreError> {
        let org = self.ctx().org_id().as_uuid();
        let rows: Vec<NumberRow> = with_conn!(self.tx, c => {
            sqlx::query_as(concat!("SELECT ", number_cols!(), " FROM sim_numbers WHERE org_id = $1 ORDER BY created_ms, channel_id"))
                .bind(org).fetch_all(c).await?
        });
        Ok(rows.into_iter().map(number).collect())
    }

    /// Adds a fake customer to a simulated number.
    pub async fn create_sim_customer(
        &mut self,
        c: &SimCustomer,
    ) -> Result<SimCustomer, StoreError> {
        crate::members::valid_label(&c.name, 100, "customer name")?;
        if c.phone
            .as_deref()
            .is_some_and(|p| !(7..=15).contains(&p.len()) || !p.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(StoreError::Invalid(
                "a phone number is 7–15 digits with the country code".into(),
            ));
        }
        if c.username
            .as_deref()
            .is_some_and(|u| u.is_empty() || u.len() > 35)
        {
            return Err(StoreError::Invalid("a username is 1–35 characters".into()));
        }
        self.sim_number(c.channel_id).await?;
        let org = self.ctx().org_id().as_uuid();
        let r = with_conn!(self.tx, conn => {
            sqlx::query("INSERT INTO sim_customers (org_id, id, channel_id, name, phone, bsuid, username, last_inbound_ms, created_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
                .bind(org).bind(c.id.as_uuid()).bind(c.channel_id.as_uuid()).bind(c.name.trim())
                .bind(&c.phone).bind(&c.bsuid).bind(&c.username).bind(c.last_inbound_ms).bind(c.created_ms)
                .execute(conn).await.map(drop)
        });
        if let Err(e) = r {
            if unique_violation(&e) {
                return Err(StoreError::Conflict("sim_customer_exists"));
            }
            return Err(e.into());
        }
        self.sim_customer(c.id).await
    }

    /// One fake customer of the organisation.
    pub async fn sim_customer(&mut self, id: SimCustomerId) -> Result<SimCustomer, StoreError> {
        let org = self.ctx().org_id().as_uuid();
        let row: Option<CustomerRow> = with_conn!(self.tx, c => {
            sqlx::query_as(concat!("SELECT ", customer_cols!(), " FROM sim_customers WHERE org_id = $1 AND id = $2"))
                .bind(org).bind(id.as_uuid()).fetch_optional(c).await?
        });
        row.map(customer).ok_or(StoreError::NotFound)
    }

    /// The fake customers of a number (or of every number), by name.
    pub async fn sim_customers(
        &mut self,
        channel: Option<ChannelId>,
    ) -> Result<Vec<SimCustomer>, StoreError> {
        let org = self.ctx().org_id().as_uuid();
        let rows: Vec<CustomerRow> = with_conn!(self.tx, c => {
            match channel {
                Some(ch) => sqlx::query_as(concat!("SELECT ", customer_cols!(), " FROM sim_customers WHERE org_id = $1 AND channel_id = $2 ORDER BY name, id"))
                    .bind(org).bind(ch.as_uuid()).fetch_all(c).await?,
                None => sqlx::query_as(concat!("SELECT ", customer_cols!(), " FROM sim_customers WHERE org_id = $1 ORDER BY name, id"))
                    .bind(org).fetch_all(c).await?,
            }
        });
        Ok(rows.into_iter().map(customer).collect())
    }

    /// The customer a send is addressed to: by phone digits (`to`) or by BSUID (`recipient`).
    pub async fn sim_customer_by_address(
        &mut self,
        channel: ChannelId,
        phone: Option<&str>,
        bsuid: Option<&str>,
    ) -> Result<Option<SimCustomer>, StoreError> {
        let org = self.ctx().org_id().as_uuid();
        let row: Option<CustomerRow> = with_conn!(self.tx, c => {
            match (phone, bsuid) {
                (Some(p), _) => sqlx::query_as(concat!("SELECT ", customer_cols!(), " FROM sim_customers WHERE org_id = $1 AND channel_id = $2 AND phone = $3"))
                    .bind(org).bind(channel.as_uuid()).bind(p).fetch_optional(c).await?,
                (None, Some(b)) => sqlx::query_as(concat!("SELECT ", customer_cols!(), " FROM sim_customers WHERE org_id = $1 AND channel_id = $2 AND bsuid = $3"))
                    .bind(org).bind(channel.as_uuid()).bind(b).fetch_optional(c).await?,
                (None, None) => None,
            }
        });
        Ok(row.map(customer))
    }

    /// Records that the customer wrote now (opens the 24-hour window).
    pub async fn touch_sim_inbound(
        &mut self,
        id: SimCustomerId,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let org = self.ctx().org_id().as_uuid();
        with_conn!(self.tx, c => {
            sqlx::query("UPDATE sim_customers SET last_inbound_ms = $3 WHERE org_id = $1 AND id = $2")
                .bind(org).bind(id.as_uuid()).bind(now_ms).execute(c).await?;
        });
        Ok(())
    }

    /// Takes one of a simulated number's sends, as Meta's throughput limit allows them: each
    /// send moves the number's next free time on by 1/`limit` s, and a send is refused while
    /// that time is a second or more ahead of `now_us` (a generic cell rate), so `limit` may
    /// go at once and `limit` per second after. One conditional UPDATE of the number's row
    /// (which orders concurrent sends to the number), in place of a count of up to a
    /// second's worth of its sends under the same lock. Answers whether the send may go.
    pub async fn take_sim_send_slot(
        &mut self,
        channel: ChannelId,
        now_us: i64,
        limit: i32,
    ) -> Result<bool, StoreError> {
        const SECOND_US: i64 = 1_000_000;
        let org = self.ctx().org_id().as_uuid();
        let interval = SECOND_US / i64::from(limit.clamp(1, 1000));
        let taken = with_conn!(self.tx, c => {
            sqlx::query("UPDATE sim_numbers SET send_tat_us = (CASE WHEN send_tat_us > $3 THEN send_tat_us ELSE $3 END) + $4 WHERE org_id = $1 AND channel_id = $2 AND send_tat_us - $3 <= $5")
                .bind(org).bind(channel.as_uuid()).bind(now_us).bind(interval).bind(SECOND_US - interval)
                .execute(c).await?.rows_affected()
        });
        Ok(taken == 1)
    }

    /// Stores a message of a simulated chat.
    pub async fn insert_sim_message(&mut self, m: &SimMessage) -> Result<(), StoreError> {
        let org = self.ctx().org_id().as_uuid();
        let payload = m.payload.to_string();
        with_conn!(self.tx, c => {
            sqlx::query("INSERT INTO sim_messages (org_id, id, channel_id, customer_id, wamid, direction, msg_type, payload, status, error_code, created_ms, updated_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)")
                .bind(org).bind(m.id).bind(m.channel_id.as_uuid()).bind(m.customer_id.map(|c| c.as_uuid()))
                .bind(&m.wamid).bind(m.direction.as_str()).bind(&m.msg_type).bind(&payload)
                .bind(&m.status).bind(m.error_code).bind(m.created_ms).bind(m.updated_ms)
                .execute(c).await?;
        });
        Ok(())
    }

    /// Moves an outbound message to a delivery status.
    pub async fn set_sim_message_status(
        &mut self,
        wamid: &str,
        status: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let org = self.ctx().org_id().as_uuid();
        with_conn!(self.tx, c => {
            sqlx::query("UPDATE sim_messages SET status = $3, updated_ms = $4 WHERE org_id = $1 AND wamid = $2")
                .bind(org).bind(wamid).bind(status).bind(now_ms).execute(c).await?;
        });
        Ok(())
    }

    /// Moves an outbound message forward to `status` (`sent`, `delivered` or `read`);
    /// never backwards. Returns whether it moved.
    pub async fn advance_sim_message(
        &mut self,
        wamid: &str,
        status: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let org = self.ctx().org_id().as_uuid();
        let sql = match status {
            "sent" => {
                "UPDATE sim_messages SET status = 'sent', updated_ms = $3 WHERE org_id = $1 AND wamid = $2 AND direction = 'out' AND status = 'accepted'"
            }
            "delivered" => {
                "UPDATE sim_messages SET status = 'delivered', updated_ms = $3 WHERE org_id = $1 AND wamid = $2 AND direction = 'out' AND status IN ('accepted', 'sent')"
            }
            "read" => {
                "UPDATE sim_messages SET status = 'read', updated_ms = $3 WHERE org_id = $1 AND wamid = $2 AND direction = 'out' AND status IN ('accepted', 'sent', 'delivered')"
            }
            other => {
                return Err(StoreError::Invalid(format!(
                    "no status {other:?} to advance to"
                )));
            }
        };
        let n = with_conn!(self.tx, c => {
            sqlx::query(sql).bind(org).bind(wamid).bind(now_ms).execute(c).await?.rows_affected()
        });
        Ok(n == 1)
    }

    /// The business marked a customer's message read: it and every earlier message of
    /// theirs show as read on the phone.
    pub async fn mark_sim_inbound_read(
        &mut self,
        customer: SimCustomerId,
        upto_ms: i64,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        let org = self.ctx().org_id().as_uuid();
        let n = with_conn!(self.tx, c => {
            sqlx::query("UPDATE sim_messages SET status = 'read', updated_ms = $4 WHERE org_id = $1 AND customer_id = $2 AND direction = 'in' AND status = 'received' AND created_ms <= $3")
                .bind(org).bind(customer.as_uuid()).bind(upto_ms).bind(now_ms).execute(c).await?.rows_affected()
        });
        Ok(n)
    }

    /// The business's messages to a customer the phone has not shown yet.
    pub async fn sim_unread_outbound(
        &mut self,
        customer: SimCustomerId,
    ) -> Result<Vec<SimMessage>, StoreError> {
        let org = self.ctx().org_id().as_uuid();
        let rows: Vec<MessageRow> = with_conn!(self.tx, c => {
            sqlx::query_as(concat!("SELECT ", message_cols!(), " FROM sim_messages WHERE org_id = $1 AND customer_id = $2 AND direction = 'out' AND status IN ('accepted', 'sent', 'delivered') ORDER BY created_ms, id LIMIT 1000"))
                .bind(org).bind(customer.as_uuid()).fetch_all(c).await?
        });
        rows.into_iter().map(message).collect()
    }

    /// A message by its wamid.
    pub async fn sim_message(&mut self, wamid: &str) -> Result<Option<SimMessage>, StoreError> {
        let org = self.ctx().org_id().as_uuid();
        let row: Option<MessageRow> = with_conn!(self.tx, c => {
            sqlx::query_as(concat!("SELECT ", message_cols!(), " FROM sim_messages WHERE org_id = $1 AND wamid = $2"))
                .bind(org).bind(wamid).fetch_optional(c).await?
        });
        row.map(message).transpose()
    }

    /// The last `limit` messages of a customer's chat, oldest first.
    pub async fn sim_chat(
        &mut self,
        customer: SimCustomerId,
        limit: i64,
    ) -> Result<Vec<SimMessage>, StoreError> {
        let org = self.ctx().org_id().as_uuid();
        let rows: Vec<MessageRow> = with_conn!(self.tx, c => {
            sqlx::query_as(concat!("SELECT ", message_cols!(), " FROM sim_messages WHERE org_id = $1 AND customer_id = $2 ORDER BY created_ms DESC, id DESC LIMIT $3"))
                .bind(org).bind(customer.as_uuid()).bind(limit.clamp(1, 1000)).fetch_all(c).await?
        });
        let mut out = rows
            .into_iter()
            .map(message)
            .collect::<Result<Vec<_>, _>>()?;
        out.reverse();
        Ok(out)
    }

    /// Stores an uploaded file.
    pub async fn insert_sim_media(&mut self, m: &SimMedia) -> Result<(), StoreError> {
        let org = self.ctx().org_id().as_uuid();
        with_conn!(self.tx, c => {
            sqlx::query("INSERT INTO sim_media (org_id, id, channel_id, mime_type, sha256, file_size, filename, bytes, created_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
                .bind(org).bind(&m.id).bind(m.channel_id.as_uuid()).bind(&m.mime_type).bind(&m.sha256)
                .bind(m.file_size).bind(&m.filename).bind(&m.bytes).bind(m.created_ms)
                .execute(c).await?;
        });
        Ok(())
    }

    /// An uploaded file of one of the organisation's simulated numbers.
    pub async fn sim_media(&mut self, id: &str) -> Result<Option<SimMedia>, StoreError> {
        type Row = (
            String,
            uuid::Uuid,
            String,
            String,
            i64,
            Option<String>,
            Vec<u8>,
            i64,
        );
        let org = self.ctx().org_id().as_uuid();
        let row: Option<Row> = with_conn!(self.tx, c => {
            sqlx::query_as("SELECT id, channel_id, mime_type, sha256, file_size, filename, bytes, created_ms FROM sim_media WHERE org_id = $1 AND id = $2")
                .bind(org).bind(id).fetch_optional(c).await?
        });
        Ok(row.map(|r| SimMedia {
            id: r.0,
            channel_id: ChannelId::from_uuid(r.1),
            mime_type: r.2,
            sha256: r.3,
            file_size: r.4,
            filename: r.5,
            bytes: r.6,
            created_ms: r.7,
        }))
    }

    /// Opens an upload session.
    pub async fn insert_sim_upload(&mut self, u: &SimUpload) -> Result<(), StoreError> {
        let org = self.ctx().org_id().as_uuid();
        with_conn!(self.tx, c => {
            sqlx::query("INSERT INTO sim_uploads (org_id, id, channel_id, sig, file_name, file_type, file_length, file_offset, bytes, handle, created_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)")
                .bind(org).bind(&u.id).bind(u.channel_id.as_uuid()).bind(&u.sig).bind(&u.file_name).bind(&u.file_type)
                .bind(u.file_length).bind(u.file_offset).bind(&u.bytes).bind(&u.handle).bind(u.created_ms)
                .execute(c).await?;
        });
        Ok(())
    }

    /// An upload session of one of the organisation's simulated numbers.
    pub async fn sim_upload(&mut self, id: &str) -> Result<Option<SimUpload>, StoreError> {
        let org = self.ctx().org_id().as_uuid();
        let row: Option<UploadRow> = with_conn!(self.tx, c => {
            sqlx::query_as(concat!("SELECT ", upload_cols!(), " FROM sim_uploads WHERE org_id = $1 AND id = $2"))
                .bind(org).bind(id).fetch_optional(c).await?
        });
        Ok(row.map(upload))
    }

    /// The completed upload a handle names.
    pub async fn sim_upload_by_handle(
        &mut self,
        handle: &str,
    ) -> Result<Option<SimUpload>, StoreError> {
        let org = self.ctx().org_id().as_uuid();
        let row: Option<UploadRow> = with_conn!(self.tx, c => {
            sqlx::query_as(concat!("SELECT ", upload_cols!(), " FROM sim_uploads WHERE org_id = $1 AND handle = $2"))
                .bind(org).bind(handle).fetch_optional(c).await?
        });
        Ok(row.map(upload))
    }

    /// Records a chunk: the bytes so far, the new offset, and the handle once complete. Only
    /// when the session is still at `from_offset` (a concurrent chunk for the same offset
    /// loses); answers whether it was recorded.
    pub async fn advance_sim_upload(
        &mut self,
        id: &str,
        from_offset: i64,
        bytes: &[u8],
        handle: Option<&str>,
    ) -> Result<bool, StoreError> {
        let org = self.ctx().org_id().as_uuid();
        let n = with_conn!(self.tx, c => {
            sqlx::query("UPDATE sim_uploads SET bytes = $4, file_offset = $5, handle = $6 WHERE org_id = $1 AND id = $2 AND file_offset = $3")
                .bind(org).bind(id).bind(from_offset).bind(bytes).bind(bytes.len() as i64).bind(handle)
                .execute(c).await?.rows_affected()
        });
        Ok(n == 1)
    }

    /// Stores a submitted template; a name and language already submitted is a conflict.
    pub async fn insert_sim_template(&mut self, t: &SimTemplate) -> Result<(), StoreError> {
        let org = self.ctx().org_id().as_uuid();
        let components = t.components.to_string();
        let r = with_conn!(self.tx, c => {
            sqlx::query("INSERT INTO sim_templates (org_id, id, channel_id, name, language, category, status, reason, components, created_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)")
                .bind(org).bind(&t.id).bind(t.channel_id.as_uuid()).bind(&t.name).bind(&t.language)
                .bind(&t.category).bind(&t.status).bind(&t.reason).bind(&components).bind(t.created_ms)
                .execute(c).await.map(drop)
        });
        if let Err(e) = r {
            if unique_violation(&e) {
                return Err(StoreError::Conflict("sim_template_exists"));
            }
            return Err(e.into());
        }
        Ok(())
    }

    /// Takes new components for a template (an edit): it goes back to review.
    pub async fn edit_sim_template(
        &mut self,
        id: &str,
        components: &serde_json::Value,
        category: Option<&str>,
    ) -> Result<(), StoreError> {
        let org = self.ctx().org_id().as_uuid();
        let components = components.to_string();
        with_conn!(self.tx, c => {
            sqlx::query("UPDATE sim_templates SET components = $3, category = coalesce($4, category), status = 'PENDING', reason = NULL WHERE org_id = $1 AND id = $2")
                .bind(org).bind(id).bind(components).bind(category).execute(c).await?;
        });
        Ok(())
    }

    /// Records a template's review outcome.
    pub async fn set_sim_template_status(
        &mut self,
        id: &str,
        status: &str,
        reason: Option<&str>,
    ) -> Result<(), StoreError> {
        let org = self.ctx().org_id().as_uuid();
        with_conn!(self.tx, c => {
            sqlx::query("UPDATE sim_templates SET status = $3, reason = $4 WHERE org_id = $1 AND id = $2")
                .bind(org).bind(id).bind(status).bind(reason).execute(c).await?;
        });
        Ok(())
    }

    /// Deletes a number's templates of a name: only the one with `id` when given, else
    /// every language of it. Answers how many went.
    pub async fn delete_sim_templates(
        &mut self,
        channel: ChannelId,
        name: &str,
        id: Option<&str>,
    ) -> Result<u64, StoreError> {
        let org = self.ctx().org_id().as_uuid();
        let n = with_conn!(self.tx, c => {
            sqlx::query("DELETE FROM sim_templates WHERE org_id = $1 AND channel_id = $2 AND name = $3 AND ($4 IS NULL OR id = $4)")
                .bind(org).bind(channel.as_uuid()).bind(name).bind(id).execute(c).await?.rows_affected()
        });
        Ok(n)
    }

    /// The templates of a number, newest first.
    pub async fn sim_templates(
        &mut self,
        channel: ChannelId,
    ) -> Result<Vec<SimTemplate>, StoreError> {
        let org = self.ctx().org_id().as_uuid();
        let rows: Vec<TemplateRow> = with_conn!(self.tx, c => {
            sqlx::query_as(concat!("SELECT ", template_cols!(), " FROM sim_templates WHERE org_id = $1 AND channel_id = $2 ORDER BY created_ms DESC, id"))
                .bind(org).bind(channel.as_uuid()).fetch_all(c).await?
        });
        rows.into_iter().map(template).collect()
    }

    /// A template by name and language.
    pub async fn sim_template(
        &mut self,
        channel: ChannelId,
        name: &str,
        language: &str,
    ) -> Result<Option<SimTemplate>, StoreError> {
        let org = self.ctx().org_id().as_uuid();
        let row: Option<TemplateRow> = with_conn!(self.tx, c => {
            sqlx::query_as(concat!("SELECT ", template_cols!(), " FROM sim_templates WHERE org_id = $1 AND channel_id = $2 AND name = $3 AND language = $4"))
                .bind(org).bind(channel.as_uuid()).bind(name).bind(language).fetch_optional(c).await?
        });
        row.map(template).transpose()
    }
}

impl Store {
    /// The simulated number an access token belongs to, with a context for its
    /// organisation; `None` for a token no number has. Only the token's hash is compared,
    /// in token scope: nothing else is readable before the organisation is known.
    pub async fn sim_number_by_token(
        &self,
        token: &str,
    ) -> Result<Option<(TenantCtx, SimNumber)>, StoreError> {
        if token.is_empty() || token.len() > 512 {
            return Ok(None);
        }
        let hash = token_hash(token);
        let mut g = self.begin_global(false).await?;
        g.scope(Scope::Token(&hash)).await?;
        let found: Option<(uuid::Uuid, uuid::Uuid)> = with_conn!(g.tx, c => {
            sqlx::query_as("SELECT org_id, channel_id FROM sim_numbers WHERE access_token_hash = $1").bind(&hash[..]).fetch_optional(c).await?
        });
        let Some((org, channel)) = found else {
            g.commit().await?;
            return Ok(None);
        };
        let ctx = TenantCtx::system(OrgId::from_uuid(org), "simulator");
        let mut tx = g.into_tenant(ctx.clone()).await?;
        let n = tx.sim_number(ChannelId::from_uuid(channel)).await?;
        tx.commit().await?;
        Ok(Some((ctx, n)))
    }
}
