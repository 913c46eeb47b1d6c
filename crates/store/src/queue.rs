//! Clinic queues: configuration, tokens and their life, the board, reports.
//!
//! The database enforces what races could break: one live token per patient and queue (a
//! partial unique index), token numbers issued under the lock of the queue's day row, and
//! "call next" as one conditional UPDATE (on PostgreSQL its candidate is picked `FOR UPDATE
//! SKIP LOCKED`, so two callers at the same instant take two different patients; on SQLite
//! writers take turns). Every change writes its audit event in the same transaction; a
//! token's history is its audit events.
//!
//! Callers who may call patients but not manage queues (doctors) see only the queues they
//! are assigned to: every read and write here checks it, so no handler can forget.

use crate::StoreError;
use crate::audit::{AuditEvent, AuditRecord, EventRow, RawEvent};
use crate::orgs::now_micros;
use crate::tenant::{TenantTx, Tx, with_conn};
use crate::zone::{local_time, valid_time_zone};
use frontdesk_domain::queue::{
    QueueText, QueueTexts, TokenState, WeeklyHours, normalize_keyword, token_label, valid_prefix,
};
use frontdesk_domain::{ChannelId, ContactId, E164, Permission, QueueId, QueueTokenId, UserId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use time::{Date, OffsetDateTime, Time};

/// An approved template to use for a text outside the 24-hour window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateRef {
    pub name: String,
    pub language: String,
}

/// Templates per text.
pub type QueueTemplates = BTreeMap<QueueText, TemplateRef>;

/// A queue's configuration, as created or replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSettings {
    pub channel_id: ChannelId,
    pub name: String,
    pub keywords: Vec<String>,
    pub token_prefix: String,
    pub daily_cap: i32,
    pub position_step: i32,
    pub hours: Option<WeeklyHours>,
    pub holidays: Vec<Date>,
    pub texts: QueueTexts,
    pub templates: QueueTemplates,
    pub doctors: Vec<UserId>,
}

/// A queue as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct QueueView {
    pub id: QueueId,
    pub channel_id: ChannelId,
    pub name: String,
    pub keywords: Vec<String>,
    pub token_prefix: String,
    pub daily_cap: i32,
    pub position_step: i32,
    pub hours: Option<WeeklyHours>,
    #[schema(value_type = Vec<String>)]
    pub holidays: Vec<Date>,
    #[schema(value_type = Object)]
    pub texts: QueueTexts,
    #[schema(value_type = Object)]
    pub templates: QueueTemplates,
    pub paused: bool,
    pub pause_message: String,
    pub doctors: Vec<UserId>,
}

/// A token with where it stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TokenView {
    pub id: QueueTokenId,
    pub queue_id: QueueId,
    pub label: String,
    pub number: i32,
    /// The local day it was issued for (`YYYY-MM-DD`).
    pub day: String,
    pub state: TokenState,
    pub contact_id: Option<ContactId>,
    pub walk_in_name: Option<String>,
    pub language: String,
    /// Place in the waiting line (1 is next), while waiting.
    pub position: Option<i64>,
    #[serde(with = "time::serde::rfc3339")]
    pub joined_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub called_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub served_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub ended_at: Option<OffsetDateTime>,
    pub called_by: Option<UserId>,
    pub recalls: i32,
    #[serde(skip)]
    pub told_position: Option<i32>,
    #[serde(skip)]
    pub told_next: bool,
}

/// Who takes a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Patient {
    /// A WhatsApp contact joining by keyword.
    Contact(ContactId),
    /// Checked in at the desk: a name, and a phone number when they have one.
    WalkIn {
        name: String,
        contact: Option<ContactId>,
    },
}

/// What a join did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinOutcome {
    Joined(TokenView),
    /// The patient already holds this live token in the queue.
    AlreadyIn(TokenView),
    Paused(String),
    /// Closed now; opens at this local date and time (if within two weeks).
    Closed(Option<(Date, Time)>),
    CapReached,
}

/// The board: everything a queue's staff page shows, in one read.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Board {
    pub queue: QueueView,
    /// The local day.
    pub day: String,
    /// Called or being seen, oldest call first.
    pub current: Vec<TokenView>,
    /// The waiting line, next first.
    pub waiting: Vec<TokenView>,
    /// Skipped, no-show, complete or cancelled today, latest first (at most 100).
    pub done: Vec<TokenView>,
    pub served_today: i64,
    /// Rolling average of recent consultations, seconds.
    pub avg_consult_secs: i64,
}

/// What a waiting-room screen shows: token labels and counts only, no names or numbers.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Screen {
    pub queue_name: String,
    pub paused: bool,
    /// Tokens called or being seen, latest call first.
    pub now_serving: Vec<String>,
    /// The next few waiting.
    pub up_next: Vec<String>,
    pub waiting: i64,
}

/// One day of one queue, for reports.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DayReport {
    pub day: String,
    pub queue_id: QueueId,
    pub queue_name: String,
    pub joined: i64,
    pub served: i64,
    pub no_show: i64,
    pub cancelled: i64,
    /// Still live when the day ended (ended by the worker, not by staff).
    pub expired: i64,
    /// Called at least once (the patients the average wait is over).
    pub called: i64,
    /// No-shows ÷ (served + no-shows); 0 when nobody was seen or missed.
    pub no_show_rate: f64,
    /// Average minutes from joining to being called, of those called.
    pub avg_wait_minutes: f64,
    /// Average minutes from call to completion.
    pub avg_consult_minutes: f64,
}

/// Consultations averaged for the estimate.
const ROLLING: i64 = 20;
/// The estimate before any consultation was recorded.
pub const DEFAULT_CONSULT_SECS: i64 = 300;
/// Spacing of the line positions: a join lands at `day * 2^36 + number * 2^20`, so every
/// day's joins come after the previous day's and a reorder finds room between two tokens.
const NUMBER_GAP: i64 = 1 << 20;
const DAY_GAP: i64 = 1 << 36;

fn day_text(d: Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

fn join_position(day: Date, number: i64) -> i64 {
    i64::from(day.to_julian_day()) * DAY_GAP + number * NUMBER_GAP
}

#[derive(sqlx::FromRow)]
struct QueueRow {
    id: uuid::Uuid,
    channel_id: uuid::Uuid,
    name: String,
    token_prefix: String,
    daily_cap: i32,
    position_step: i32,
    hours: Option<String>,
    holidays: String,
    texts: String,
    templates: String,
    paused: bool,
    pause_message: String,
}

macro_rules! queue_cols {
    () => {
        "id, channel_id, name, token_prefix, daily_cap, position_step, hours, holidays, texts, templates, paused, pause_message"
    };
}

#[derive(sqlx::FromRow)]
struct TokenRow {
    id: uuid::Uuid,
    queue_id: uuid::Uuid,
    day: String,
    number: i32,
    label: String,
    contact_id: Option<uuid::Uuid>,
    walk_in_name: Option<String>,
    language: String,
    state: String,
    position: i64,
    joined_at: OffsetDateTime,
    called_at: Option<OffsetDateTime>,
    served_at: Option<OffsetDateTime>,
    ended_at: Option<OffsetDateTime>,
    called_by: Option<uuid::Uuid>,
    recalls: i32,
    told_position: Option<i32>,
    told_next: bool,
}

macro_rules! token_cols {
    () => {
        "id, queue_id, day, number, label, contact_id, walk_in_name, language, state, position, joined_at, called_at, served_at, ended_at, called_by, recalls, told_position, told_next"
    };
}

fn corrupt(what: &str) -> impl Fn(serde_json::Error) -> StoreError + '_ {
    move |e| StoreError::Corrupt(format!("queue {what}: {e}"))
}

fn token_view(r: TokenRow, position: Option<i64>) -> Result<TokenView, StoreError> {
    Ok(TokenView {
        id: QueueTokenId::from_uuid(r.id),
        queue_id: QueueId::from_uuid(r.queue_id),
        label: r.label,
        number: r.number,
        day: r.day,
        state: TokenState::parse(&r.state)
            .ok_or_else(|| StoreError::Corrupt(format!("token state {:?}", r.state)))?,
        contact_id: r.contact_id.map(ContactId::from_uuid),
        walk_in_name: r.walk_in_name,
        language: r.language,
        position,
        joined_at: r.joined_at,
        called_at: r.called_at,
        served_at: r.served_at,
        ended_at: r.ended_at,
        called_by: r.called_by.map(UserId::from_uuid),
        recalls: r.recalls,
        told_position: r.told_position,
        told_next: r.told_next,
    })
}

/// A queue setting the store refuses: the field it is about (named as in the API body and
/// the settings form) and a message that is safe to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsProblem {
    pub field: &'static str,
    pub message: String,
}

impl From<SettingsProblem> for StoreError {
    fn from(p: SettingsProblem) -> Self {
        StoreError::Invalid(p.message)
    }
}

fn validate(s: &QueueSettings) -> Result<Vec<String>, StoreError> {
    Ok(check_queue_settings(s)?)
}

/// Checks a queue's settings without touching the database (what `create_queue` and
/// `update_queue` refuse first), naming the field at fault; returns the normalised
/// keywords.
pub fn check_queue_settings(s: &QueueSettings) -> Result<Vec<String>, SettingsProblem> {
    let problem = |field: &'static str, m: String| SettingsProblem { field, message: m };
    let name = s.name.trim();
    if name.is_empty() || name.chars().count() > 80 {
        return Err(problem("name", "name must be 1–80 characters".into()));
    }
    if !valid_prefix(&s.token_prefix) {
        return Err(problem(
            "token_prefix",
            "token_prefix must be 1–4 capital letters".into(),
        ));
    }
    if !(1..=9999).contains(&s.daily_cap) {
        return Err(problem("daily_cap", "daily_cap must be 1–9999".into()));
    }
    if !(0..=100).contains(&s.position_step) {
        return Err(problem(
            "position_step",
            "position_step must be 0–100 (0: no position updates)".into(),
        ));
    }
    if s.keywords.is_empty() || s.keywords.len() > 10 {
        return Err(problem("keywords", "a queue has 1–10 join keywords".into()));
    }
    let mut keywords = Vec::new();
    for k in &s.keywords {
        let Some(n) = normalize_keyword(k) else {
            return Err(problem(
                "keywords",
                format!("keyword {k:?} must be 1–40 letters, digits, spaces or '-'"),
            ));
        };
        if frontdesk_domain::queue::RESERVED_KEYWORDS.contains(&n.as_str()) {
            return Err(problem(
                "keywords",
                format!("{n} is what patients send for their token; choose another keyword"),
            ));
        }
        if !keywords.contains(&n) {
            keywords.push(n);
        }
    }
    if let Some(h) = &s.hours {
        h.validate().map_err(|m| problem("hours", m))?;
    }
    if s.holidays.len() > 366 {
        return Err(problem("holidays", "at most 366 holidays".into()));
    }
    if s.texts.len() > 20 {
        return Err(problem("texts", "texts in at most 20 languages".into()));
    }
    for (lang, texts) in &s.texts {
        if !(2..=10).contains(&lang.len())
            || !lang
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(problem(
                "texts",
                format!("language code {lang:?}: 2–10 letters, digits, '_' or '-'"),
            ));
        }
        if texts
            .values()
            .any(|t| t.is_empty() || t.chars().count() > 1000)
        {
            return Err(problem(
                "texts",
                "each text must be 1–1000 characters".into(),
            ));
        }
    }
    for t in s.templates.values() {
        if t.name.is_empty()
            || t.name.len() > 512
            || !t
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            || !(2..=15).contains(&t.language.len())
        {
            return Err(problem(
                "templates",
                "a template has a name of lower-case letters, digits and '_' and a language code"
                    .into(),
            ));
        }
    }
    if s.doctors.len() > 50 {
        return Err(problem("doctors", "at most 50 doctors per queue".into()));
    }
    Ok(keywords)
}

fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("queue settings serialise")
}

impl TenantTx {
    fn org_uuid(&self) -> uuid::Uuid {
        self.ctx().org_id().as_uuid()
    }

    /// The user a caller is restricted to, when they may call patients but not manage
    /// queues (doctors): they see only queues they are assigned to. `Some(None)` is such a
    /// caller who is not a person (an API key): it sees no queue.
    fn doctor_scope(&self) -> Option<Option<UserId>> {
        let c = self.ctx();
        (c.can(Permission::QueueCallNext) && !c.can(Permission::QueueManage)).then(|| c.user_id())
    }

    /// The organisation's time zone (IANA name).
    pub async fn time_zone(&mut self) -> Result<String, StoreError> {
        let org = self.org_uuid();
        Ok(with_conn!(self.tx, c => {
            sqlx::query_scalar("SELECT time_zone FROM organisations WHERE id = $1").bind(org).fetch_one(c).await?
        }))
    }

    /// Sets the organisation's time zone, which queue hours are read in.
    pub async fn set_time_zone(&mut self, tz: &str) -> Result<(), StoreError> {
        if !valid_time_zone(tz) {
            return Err(StoreError::Invalid(format!("unknown time zone {tz:?}")));
        }
        let org = self.org_uuid();
        with_conn!(self.tx, c => {
            sqlx::query("UPDATE organisations SET time_zone = $2 WHERE id = $1").bind(org).bind(tz).execute(c).await?;
        });
        self.audit(AuditRecord::new(
            "organisation.time_zone_set",
            "organisation",
            self.ctx().org_id().to_string(),
            serde_json::json!({ "time_zone": tz }),
        ))
        .await?;
        Ok(())
    }

    /// The local date and time of the organisation.
    pub async fn local_now(&mut self, now: OffsetDateTime) -> Result<(Date, Time), StoreError> {
        let tz = self.time_zone().await?;
        local_time(now, &tz)
    }

    async fn write_queue_parts(
        &mut self,
        id: QueueId,
        s: &QueueSettings,
        keywords: &[String],
    ) -> Result<(), StoreError> {
        let org = self.org_uuid();
        for d in &s.doctors {
            self.require_member(*d).await.map_err(|e| match e {
                StoreError::NotFound => {
                    StoreError::Invalid(format!("doctor {d} is not a member here"))
                }
                e => e,
            })?;
        }
        with_conn!(self.tx, c => {
            sqlx::query("DELETE FROM queue_keywords WHERE org_id = $1 AND queue_id = $2").bind(org).bind(id.as_uuid()).execute(&mut *c).await?;
            sqlx::query("DELETE FROM queue_doctors WHERE org_id = $1 AND queue_id = $2").bind(org).bind(id.as_uuid()).execute(&mut *c).await?;
        });
        for k in keywords {
            let taken: Option<uuid::Uuid> = with_conn!(self.tx, c => {
                sqlx::query_scalar("SELECT queue_id FROM queue_keywords WHERE org_id = $1 AND channel_id = $2 AND keyword = $3")
                    .bind(org).bind(s.channel_id.as_uuid()).bind(k).fetch_optional(c).await?
            });
            if taken.is_some() {
                return Err(StoreError::Conflict("keyword_taken"));
            }
            with_conn!(self.tx, c => {
                sqlx::query("INSERT INTO queue_keywords (org_id, channel_id, keyword, queue_id) VALUES ($1, $2, $3, $4)")
                    .bind(org).bind(s.channel_id.as_uuid()).bind(k).bind(id.as_uuid()).execute(c).await?;
            });
        }
        for d in &s.doctors {
            with_conn!(self.tx, c => {
                sqlx::query("INSERT INTO queue_doctors (org_id, queue_id, user_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
                    .bind(org).bind(id.as_uuid()).bind(d.as_uuid()).execute(c).await?;
            });
        }
        Ok(())
    }

    /// Creates a queue on a number.
    pub async fn create_queue(&mut self, s: &QueueSettings) -> Result<QueueView, StoreError> {
        let keywords = validate(s)?;
        self.channel(s.channel_id).await?;
        let org = self.org_uuid();
        let id = QueueId::new();
        let now = now_micros();
        let r = with_conn!(self.tx, c => {
            sqlx::query("INSERT INTO queues (org_id, id, channel_id, name, token_prefix, daily_cap, position_step, hours, holidays, texts, templates, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12) ON CONFLICT (org_id, name) DO NOTHING")
                .bind(org).bind(id.as_uuid()).bind(s.channel_id.as_uuid()).bind(s.name.trim()).bind(&s.token_prefix)
                .bind(s.daily_cap).bind(s.position_step).bind(s.hours.as_ref().map(json)).bind(json(&s.holidays.iter().map(|d| day_text(*d)).collect::<Vec<_>>()))
                .bind(json(&s.texts)).bind(json(&s.templates)).bind(now)
                .execute(c).await?.rows_affected()
        });
        if r == 0 {
            return Err(StoreError::Conflict("queue_name_taken"));
        }
        self.write_queue_parts(id, s, &keywords).await?;
        self.audit(AuditRecord::new(
            "queue.created",
            "queue",
            id.to_string(),
            serde_json::json!({ "name": s.name.trim(), "keywords": keywords, "channel": s.channel_id.to_string() }),
        ))
        .await?;
        self.queue(id).await
    }

    /// Replaces a queue's configuration (not its paused state).
    pub async fn update_queue(
        &mut self,
        id: QueueId,
        s: &QueueSettings,
    ) -> Result<QueueView, StoreError> {
        let keywords = validate(s)?;
        self.queue(id).await?;
        self.channel(s.channel_id).await?;
        let org = self.org_uuid();
        let now = now_micros();
        let dup: Option<uuid::Uuid> = with_conn!(self.tx, c => {
            sqlx::query_scalar("SELECT id FROM queues WHERE org_id = $1 AND name = $2 AND id <> $3")
                .bind(org).bind(s.name.trim()).bind(id.as_uuid()).fetch_optional(c).await?
        });
        if dup.is_some() {
            return Err(StoreError::Conflict("queue_name_taken"));
        }
        with_conn!(self.tx, c => {
            sqlx::query("UPDATE queues SET channel_id = $3, name = $4, token_prefix = $5, daily_cap = $6, position_step = $7, hours = $8, holidays = $9, texts = $10, templates = $11, updated_at = $12 WHERE org_id = $1 AND id = $2")
                .bind(org).bind(id.as_uuid()).bind(s.channel_id.as_uuid()).bind(s.name.trim()).bind(&s.token_prefix)
                .bind(s.daily_cap).bind(s.position_step).bind(s.hours.as_ref().map(json)).bind(json(&s.holidays.iter().map(|d| day_text(*d)).collect::<Vec<_>>()))
                .bind(json(&s.texts)).bind(json(&s.templates)).bind(now)
                .execute(c).await?;
        });
        self.write_queue_parts(id, s, &keywords).await?;
        self.audit(AuditRecord::new(
            "queue.updated",
            "queue",
            id.to_string(),
            serde_json::json!({ "name": s.name.trim(), "keywords": keywords }),
        ))
        .await?;
        self.queue(id).await
    }

    async fn queue_visible(&mut self, id: QueueId) -> Result<bool, StoreError> {
        let Some(scope) = self.doctor_scope() else {
            return Ok(true);
        };
        let Some(user) = scope else {
            return Ok(false);
        };
        let org = self.org_uuid();
        let n: i64 = with_conn!(self.tx, c => {
            sqlx::query_scalar("SELECT count(*) FROM queue_doctors WHERE org_id = $1 AND queue_id = $2 AND user_id = $3")
                .bind(org).bind(id.as_uuid()).bind(user.as_uuid()).fetch_one(c).await?
        });
        Ok(n > 0)
    }

    /// One queue (not found for a doctor not assigned to it).
    pub async fn queue(&mut self, id: QueueId) -> Result<QueueView, StoreError> {
        let org = self.org_uuid();
        let r: Option<QueueRow> = with_conn!(self.tx, c => {
            sqlx::query_as(concat!("SELECT ", queue_cols!(), " FROM queues WHERE org_id = $1 AND id = $2"))
                .bind(org).bind(id.as_uuid()).fetch_optional(c).await?
        });
        let r = r.ok_or(StoreError::NotFound)?;
        if !self.queue_visible(id).await? {
            return Err(StoreError::NotFound);
        }
        self.queue_view(r).await
    }

    async fn queue_view(&mut self, r: QueueRow) -> Result<QueueView, StoreError> {
        let org = self.org_uuid();
        let (keywords, doctors): (Vec<String>, Vec<uuid::Uuid>) = with_conn!(self.tx, c => {
            (sqlx::query_scalar("SELECT keyword FROM queue_keywords WHERE org_id = $1 AND queue_id = $2 ORDER BY keyword").bind(org).bind(r.id).fetch_all(&mut *c).await?,
             sqlx::query_scalar("SELECT user_id FROM queue_doctors WHERE org_id = $1 AND queue_id = $2 ORDER BY user_id").bind(org).bind(r.id).fetch_all(&mut *c).await?)
        });
        let holidays: Vec<String> =
            serde_json::from_str(&r.holidays).map_err(corrupt("holidays"))?;
        let fmt = time::macros::format_description!("[year]-[month]-[day]");
        Ok(QueueView {
            id: QueueId::from_uuid(r.id),
            channel_id: ChannelId::from_uuid(r.channel_id),
            name: r.name,
            keywords,
            token_prefix: r.token_prefix,
            daily_cap: r.daily_cap,
            position_step: r.position_step,
            hours: r
                .hours
                .as_deref()
                .map(serde_json::from_str)
                .transpose()
                .map_err(corrupt("hours"))?,
            holidays: holidays
                .iter()
                .map(|d| {
                    Date::parse(d, &fmt).map_err(|_| StoreError::Corrupt("queue holiday".into()))
                })
                .collect::<Result<_, _>>()?,
            texts: serde_json::from_str(&r.texts).map_err(corrupt("texts"))?,
            templates: serde_json::from_str(&r.templates).map_err(corrupt("templates"))?,
            paused: r.paused,
            pause_message: r.pause_message,
            doctors: doctors.into_iter().map(UserId::from_uuid).collect(),
        })
    }

    /// The queues the caller may see, by name.
    pub async fn queues(&mut self) -> Result<Vec<QueueView>, StoreError> {
        let org = self.org_uuid();
        let rows: Vec<QueueRow> = with_conn!(self.tx, c => {
            sqlx::query_as(concat!("SELECT ", queue_cols!(), " FROM queues WHERE org_id = $1 ORDER BY name"))
                .bind(org).fetch_all(c).await?
        });
        let mut out = Vec::new();
        for r in rows {
            if self.queue_visible(QueueId::from_uuid(r.id)).await? {
                out.push(self.queue_view(r).await?);
            }
        }
        Ok(out)
    }

    /// Deletes a queue with its tokens (their audit events stay).
    pub async fn delete_queue(&mut self, id: QueueId) -> Result<(), StoreError> {
        let q = self.queue(id).await?;
        let org = self.org_uuid();
        with_conn!(self.tx, c => {
            sqlx::query("DELETE FROM queue_tokens WHERE org_id = $1 AND queue_id = $2").bind(org).bind(id.as_uuid()).execute(&mut *c).await?;
            sqlx::query("DELETE FROM queues WHERE org_id = $1 AND id = $2").bind(org).bind(id.as_uuid()).execute(&mut *c).await?;
        });
        self.audit(AuditRecord::new(
            "queue.deleted",
            "queue",
            id.to_string(),
            serde_json::json!({ "name": q.name }),
        ))
        .await?;
        Ok(())
    }

    /// The queue a keyword joins on a number.
    pub async fn queue_for_keyword(
        &mut self,
        channel: ChannelId,
        keyword: &str,
    ) -> Result<Option<QueueId>, StoreError> {
        let Some(k) = normalize_keyword(keyword) else {
            return Ok(None);
        };
        let org = self.org_uuid();
        let id: Option<uuid::Uuid> = with_conn!(self.tx, c => {
            sqlx::query_scalar("SELECT queue_id FROM queue_keywords WHERE org_id = $1 AND channel_id = $2 AND keyword = $3")
                .bind(org).bind(channel.as_uuid()).bind(k).fetch_optional(c).await?
        });
        Ok(id.map(QueueId::from_uuid))
    }

    /// Pauses (with a message for patients) or resumes a queue.
    pub async fn set_queue_paused(
        &mut self,
        id: QueueId,
        paused: bool,
        message: &str,
    ) -> Result<QueueView, StoreError> {
        self.queue(id).await?;
        self.lock_queues(&[id]).await?;
        if message.chars().count() > 500 {
            return Err(StoreError::Invalid(
                "the pause message is at most 500 characters".into(),
            ));
        }
        let org = self.org_uuid();
        with_conn!(self.tx, c => {
            sqlx::query("UPDATE queues SET paused = $3, pause_message = $4, updated_at = $5 WHERE org_id = $1 AND id = $2")
                .bind(org).bind(id.as_uuid()).bind(paused).bind(if paused { message } else { "" }).bind(now_micros()).execute(c).await?;
        });
        self.audit(AuditRecord::new(
            if paused {
                "queue.paused"
            } else {
                "queue.resumed"
            },
            "queue",
            id.to_string(),
            serde_json::json!({ "message": if paused { message } else { "" } }),
        ))
        .await?;
        self.queue(id).await
    }

    async fn token_row(&mut self, id: QueueTokenId) -> Result<TokenRow, StoreError> {
        let org = self.org_uuid();
        let r: Option<TokenRow> = with_conn!(self.tx, c => {
            sqlx::query_as(concat!("SELECT ", token_cols!(), " FROM queue_tokens WHERE org_id = $1 AND id = $2"))
                .bind(org).bind(id.as_uuid()).fetch_optional(c).await?
        });
        let r = r.ok_or(StoreError::NotFound)?;
        if !self.queue_visible(QueueId::from_uuid(r.queue_id)).await? {
            return Err(StoreError::NotFound);
        }
        Ok(r)
    }

    /// A token's row read after its queue is locked (see [`TenantTx::lock_queues`]); a
    /// token moved to another queue meanwhile is `409 token_changed`.
    async fn locked_token_row(&mut self, id: QueueTokenId) -> Result<TokenRow, StoreError> {
        let first = self.token_row(id).await?;
        self.lock_queues(&[QueueId::from_uuid(first.queue_id)])
            .await?;
        let r = self.token_row(id).await?;
        if r.queue_id != first.queue_id {
            return Err(StoreError::Conflict("token_changed"));
        }
        Ok(r)
    }

    /// Place in the waiting line (1 is next) of a waiting token.
    async fn line_position(&mut self, r: &TokenRow) -> Result<Option<i64>, StoreError> {
        if r.state != "waiting" {
            return Ok(None);
        }
        let org = self.org_uuid();
        let ahead: i64 = with_conn!(self.tx, c => {
            sqlx::query_scalar("SELECT count(*) FROM queue_tokens WHERE org_id = $1 AND queue_id = $2 AND state = 'waiting' AND (position < $3 OR (position = $3 AND id < $4))")
                .bind(org).bind(r.queue_id).bind(r.position).bind(r.id).fetch_one(c).await?
        });
        Ok(Some(ahead + 1))
    }

    /// One token, with its place in line.
    pub async fn token(&mut self, id: QueueTokenId) -> Result<TokenView, StoreError> {
        let r = self.token_row(id).await?;
        let p = self.line_position(&r).await?;
        token_view(r, p)
    }

    /// The contact's live tokens, in every queue.
    pub async fn live_tokens_of(
        &mut self,
        contact: ContactId,
    ) -> Result<Vec<TokenView>, StoreError> {
        let org = self.org_uuid();
        let rows: Vec<TokenRow> = with_conn!(self.tx, c => {
            sqlx::query_as(concat!("SELECT ", token_cols!(), " FROM queue_tokens WHERE org_id = $1 AND contact_id = $2 AND state IN ('waiting', 'called', 'serving') ORDER BY joined_at"))
                .bind(org).bind(contact.as_uuid()).fetch_all(c).await?
        });
        let mut out = Vec::new();
        for r in rows {
            let p = self.line_position(&r).await?;
            out.push(token_view(r, p)?);
        }
        Ok(out)
    }

    /// Rolling average consultation time of the queue (seconds), from its most recent
    /// completed consultations; a default before there are any.
    pub async fn avg_consult_secs(&mut self, queue: QueueId) -> Result<i64, StoreError> {
        let org = self.org_uuid();
        let rows: Vec<(OffsetDateTime, OffsetDateTime)> = with_conn!(self.tx, c => {
            sqlx::query_as("SELECT called_at, ended_at FROM queue_tokens WHERE org_id = $1 AND queue_id = $2 AND state = 'complete' AND called_at IS NOT NULL AND ended_at IS NOT NULL ORDER BY ended_at DESC LIMIT $3")
                .bind(org).bind(queue.as_uuid()).bind(ROLLING).fetch_all(c).await?
        });
        if rows.is_empty() {
            return Ok(DEFAULT_CONSULT_SECS);
        }
        let total: i64 = rows
            .iter()
            .map(|(a, b)| (*b - *a).whole_seconds().max(0))
            .sum();
        Ok(total / rows.len() as i64)
    }

    /// Holds the queues' rows until commit, in id order (PostgreSQL; SQLite's writers take
    /// turns anyway). Every change to a queue's line takes it first, so such changes — and
    /// the patient messages each computes from the line it then reads — happen one after
    /// another: a patient is told each position, "you are next" and "please come in" once,
    /// in order, however many staff act at once, and two actions never wait on each other
    /// in a cycle.
    pub async fn lock_queues(&mut self, ids: &[QueueId]) -> Result<(), StoreError> {
        let mut ids: Vec<uuid::Uuid> = ids.iter().map(|q| q.as_uuid()).collect();
        ids.sort();
        ids.dedup();
        let org = self.org_uuid();
        if let Tx::Postgres(c) = &mut self.tx {
            for id in ids {
                sqlx::query("SELECT id FROM queues WHERE org_id = $1 AND id = $2 FOR UPDATE")
                    .bind(org)
                    .bind(id)
                    .execute(&mut **c)
                    .await?;
            }
        }
        Ok(())
    }

    /// Takes a token for a patient: refused while paused, outside hours (unless the desk
    /// checks someone in: `enforce_hours` false), above the daily cap, or when the patient
    /// already holds a live token in the queue (answered with that token).
    pub async fn join_queue(
        &mut self,
        queue: QueueId,
        patient: &Patient,
        language: &str,
        enforce_hours: bool,
        now: OffsetDateTime,
    ) -> Result<JoinOutcome, StoreError> {
        self.queue(queue).await?;
        self.lock_queues(&[queue]).await?;
        let q = self.queue(queue).await?;
        if q.paused {
            return Ok(JoinOutcome::Paused(q.pause_message));
        }
        let (date, time) = self.local_now(now).await?;
        if enforce_hours
            && let frontdesk_domain::queue::Openness::Closed { opens } =
                frontdesk_domain::queue::openness(q.hours.as_ref(), &q.holidays, date, time)
        {
            return Ok(JoinOutcome::Closed(opens));
        }
        let org = self.org_uuid();
        let day = day_text(date);
        // Lock the queue's day row first: joins of one queue take turns from here, so the
        // live-token check, the cap and the number cannot race.
        let last: i32 = with_conn!(self.tx, c => {
            sqlx::query_scalar("INSERT INTO queue_days (org_id, queue_id, day, last_number) VALUES ($1, $2, $3, 0) ON CONFLICT (org_id, queue_id, day) DO UPDATE SET last_number = queue_days.last_number RETURNING last_number")
                .bind(org).bind(queue.as_uuid()).bind(&day).fetch_one(c).await?
        });
        // Yesterday's leftovers end here too, should the worker's sweep not have run yet,
        // so a patient whose token lapsed overnight can join again.
        self.expire_past_tokens(Some(queue), now).await?;
        let contact = match patient {
            Patient::Contact(c) => Some(*c),
            Patient::WalkIn { contact, .. } => *contact,
        };
        if let Some(contact) = contact {
            let live: Option<uuid::Uuid> = with_conn!(self.tx, c => {
                sqlx::query_scalar("SELECT id FROM queue_tokens WHERE org_id = $1 AND queue_id = $2 AND contact_id = $3 AND state IN ('waiting', 'called', 'serving')")
                    .bind(org).bind(queue.as_uuid()).bind(contact.as_uuid()).fetch_optional(c).await?
            });
            if let Some(t) = live {
                return Ok(JoinOutcome::AlreadyIn(
                    self.token(QueueTokenId::from_uuid(t)).await?,
                ));
            }
        }
        if last >= q.daily_cap {
            return Ok(JoinOutcome::CapReached);
        }
        let number = last + 1;
        with_conn!(self.tx, c => {
            sqlx::query("UPDATE queue_days SET last_number = $4 WHERE org_id = $1 AND queue_id = $2 AND day = $3")
                .bind(org).bind(queue.as_uuid()).bind(&day).bind(number).execute(c).await?;
        });
        let id = QueueTokenId::new();
        let label = token_label(&q.token_prefix, i64::from(number));
        let walk_in = match patient {
            Patient::WalkIn { name, .. } => Some(name.trim().chars().take(80).collect::<String>()),
            Patient::Contact(_) => None,
        };
        let lang: String = language
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
            .take(10)
            .collect();
        let lang = if lang.is_empty() {
            "en".to_owned()
        } else {
            lang
        };
        let stamp = now_micros();
        with_conn!(self.tx, c => {
            sqlx::query("INSERT INTO queue_tokens (org_id, id, queue_id, day, number, label, contact_id, walk_in_name, language, state, position, joined_at, told_position) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'waiting', $10, $11, NULL)")
                .bind(org).bind(id.as_uuid()).bind(queue.as_uuid()).bind(&day).bind(number).bind(&label)
                .bind(contact.map(|c| c.as_uuid())).bind(&walk_in).bind(&lang).bind(join_position(date, i64::from(number))).bind(stamp)
                .execute(c).await?;
        });
        let action = if walk_in.is_some() {
            "queue.checked_in"
        } else {
            "queue.joined"
        };
        self.audit(AuditRecord::new(
            action,
            "queue_token",
            id.to_string(),
            serde_json::json!({ "queue": queue.to_string(), "label": label, "walk_in": walk_in.is_some(), "with_phone": contact.is_some() }),
        ))
        .await?;
        Ok(JoinOutcome::Joined(self.token(id).await?))
    }

    /// Ends the tokens still live (waiting, called or with the doctor) from local days
    /// before today, in the organisation's time zone, as `expired`, each with a
    /// `queue.expired` audit event; one queue or all of them. Patients are not told (this
    /// runs around midnight). Returns the queues whose line changed (announced on commit).
    pub async fn expire_past_tokens(
        &mut self,
        queue: Option<QueueId>,
        now: OffsetDateTime,
    ) -> Result<Vec<QueueId>, StoreError> {
        let (date, _) = self.local_now(now).await?;
        let today = day_text(date);
        let org = self.org_uuid();
        // Bounded per run; the next run takes the rest.
        let stale: Vec<(uuid::Uuid, uuid::Uuid, String, String, String)> = with_conn!(self.tx, c => {
            sqlx::query_as("SELECT id, queue_id, state, label, day FROM queue_tokens WHERE org_id = $1 AND state IN ('waiting', 'called', 'serving') AND day < $2 AND ($3 IS NULL OR queue_id = $3) ORDER BY queue_id, id LIMIT 1000")
                .bind(org).bind(&today).bind(queue.map(|q| q.as_uuid())).fetch_all(c).await?
        });
        let mut touched: Vec<QueueId> = Vec::new();
        let mut locked: Option<uuid::Uuid> = None;
        for (id, queue_id, state, label, day) in stale {
            // Each queue's line is changed under its lock, queues in id order like
            // `lock_queues` (a join holds its own queue's already).
            if locked != Some(queue_id) && queue.is_none() {
                self.lock_queues(&[QueueId::from_uuid(queue_id)]).await?;
            }
            locked = Some(queue_id);
            // Conditional on the state read: a desk action at the same moment wins.
            let n = with_conn!(self.tx, c => {
                sqlx::query("UPDATE queue_tokens SET state = 'expired', ended_at = $4 WHERE org_id = $1 AND id = $2 AND state = $3")
                    .bind(org).bind(id).bind(&state).bind(now).execute(c).await?.rows_affected()
            });
            if n == 0 {
                continue;
            }
            let q = QueueId::from_uuid(queue_id);
            self.audit(AuditRecord::new(
                "queue.expired",
                "queue_token",
                QueueTokenId::from_uuid(id).to_string(),
                serde_json::json!({ "queue": q.to_string(), "label": label, "from": state, "day": day }),
            ))
            .await?;
            if !touched.contains(&q) {
                touched.push(q);
                self.announce_queue_changed(q);
            }
        }
        Ok(touched)
    }

    /// Checks a walk-in in at the desk: a name, and a phone number when they have one (then
    /// they get the WhatsApp messages too). Hours do not apply; pause and cap do.
    pub async fn check_in(
        &mut self,
        queue: QueueId,
        name: &str,
        phone: Option<&E164>,
        language: &str,
        now: OffsetDateTime,
    ) -> Result<JoinOutcome, StoreError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 80 {
            return Err(StoreError::Invalid("name must be 1–80 characters".into()));
        }
        let contact = match phone {
            Some(p) => Some(
                self.upsert_contact(&crate::CustomerIdentity {
                    phone: Some(p.clone()),
                    ..Default::default()
                })
                .await?,
            ),
            None => None,
        };
        self.join_queue(
            queue,
            &Patient::WalkIn {
                name: name.to_owned(),
                contact,
            },
            language,
            false,
            now,
        )
        .await
    }

    /// Calls the next waiting patient of a queue, or `None` when nobody waits. Two callers
    /// at the same instant get two different patients: the database picks and flips the
    /// token in one statement (PostgreSQL skips a row another caller has locked).
    pub async fn call_next(
        &mut self,
        queue: QueueId,
        now: OffsetDateTime,
    ) -> Result<Option<TokenView>, StoreError> {
        self.queue(queue).await?;
        self.lock_queues(&[queue]).await?;
        let org = self.org_uuid();
        let by = self.ctx().user_id().map(|u| u.as_uuid());
        let picked: Option<uuid::Uuid> = match &mut self.tx {
            Tx::Postgres(c) => sqlx::query_scalar("UPDATE queue_tokens SET state = 'called', called_at = $3, called_by = $4 WHERE org_id = $1 AND state = 'waiting' AND id = (SELECT id FROM queue_tokens WHERE org_id = $1 AND queue_id = $2 AND state = 'waiting' ORDER BY position, id LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING id")
                .bind(org).bind(queue.as_uuid()).bind(now).bind(by).fetch_optional(&mut **c).await?,
            Tx::Sqlite(c) => sqlx::query_scalar("UPDATE queue_tokens SET state = 'called', called_at = $3, called_by = $4 WHERE org_id = $1 AND state = 'waiting' AND id = (SELECT id FROM queue_tokens WHERE org_id = $1 AND queue_id = $2 AND state = 'waiting' ORDER BY position, id LIMIT 1) RETURNING id")
                .bind(org).bind(queue.as_uuid()).bind(now).bind(by).fetch_optional(&mut **c).await?,
        };
        let Some(id) = picked else {
            return Ok(None);
        };
        let t = self.token(QueueTokenId::from_uuid(id)).await?;
        self.audit(AuditRecord::new(
            "queue.called",
            "queue_token",
            id.to_string(),
            serde_json::json!({ "queue": queue.to_string(), "label": t.label }),
        ))
        .await?;
        Ok(Some(t))
    }

    /// Moves a token to another state, if its state allows it and nobody changed it since
    /// it was read (`409 token_changed` otherwise, `409 invalid_transition`).
    async fn transition(
        &mut self,
        id: QueueTokenId,
        to: TokenState,
        action: &str,
        now: OffsetDateTime,
    ) -> Result<TokenView, StoreError> {
        let r = self.locked_token_row(id).await?;
        let from =
            TokenState::parse(&r.state).ok_or_else(|| StoreError::Corrupt("token state".into()))?;
        if !from.can_become(to) {
            return Err(StoreError::Conflict("invalid_transition"));
        }
        let org = self.org_uuid();
        let by = self.ctx().user_id().map(|u| u.as_uuid());
        let n = with_conn!(self.tx, c => {
            match to {
                TokenState::Called => sqlx::query("UPDATE queue_tokens SET state = 'called', called_at = $4, called_by = $5, recalls = recalls + 1 WHERE org_id = $1 AND id = $2 AND state = $3")
                    .bind(org).bind(id.as_uuid()).bind(from.as_str()).bind(now).bind(by).execute(c).await?,
                TokenState::Serving => sqlx::query("UPDATE queue_tokens SET state = 'serving', served_at = $4 WHERE org_id = $1 AND id = $2 AND state = $3")
                    .bind(org).bind(id.as_uuid()).bind(from.as_str()).bind(now).execute(c).await?,
                _ => sqlx::query("UPDATE queue_tokens SET state = $4, ended_at = $5 WHERE org_id = $1 AND id = $2 AND state = $3")
                    .bind(org).bind(id.as_uuid()).bind(from.as_str()).bind(to.as_str()).bind(now).execute(c).await?,
            }.rows_affected()
        });
        if n == 0 {
            return Err(StoreError::Conflict("token_changed"));
        }
        self.audit(AuditRecord::new(
            action,
            "queue_token",
            id.to_string(),
            serde_json::json!({ "queue": QueueId::from_uuid(r.queue_id).to_string(), "label": r.label, "from": from.as_str(), "to": to.as_str() }),
        ))
        .await?;
        self.token(id).await
    }

    /// Calls a called, skipped or no-show patient again.
    pub async fn recall(
        &mut self,
        id: QueueTokenId,
        now: OffsetDateTime,
    ) -> Result<TokenView, StoreError> {
        self.transition(id, TokenState::Called, "queue.recalled", now)
            .await
    }

    /// The called patient came in.
    pub async fn start_serving(
        &mut self,
        id: QueueTokenId,
        now: OffsetDateTime,
    ) -> Result<TokenView, StoreError> {
        self.transition(id, TokenState::Serving, "queue.serving", now)
            .await
    }

    pub async fn complete(
        &mut self,
        id: QueueTokenId,
        now: OffsetDateTime,
    ) -> Result<TokenView, StoreError> {
        self.transition(id, TokenState::Complete, "queue.completed", now)
            .await
    }

    pub async fn skip(
        &mut self,
        id: QueueTokenId,
        now: OffsetDateTime,
    ) -> Result<TokenView, StoreError> {
        self.transition(id, TokenState::Skipped, "queue.skipped", now)
            .await
    }

    pub async fn mark_no_show(
        &mut self,
        id: QueueTokenId,
        now: OffsetDateTime,
    ) -> Result<TokenView, StoreError> {
        self.transition(id, TokenState::NoShow, "queue.no_show", now)
            .await
    }

    /// Cancels a live token (by the desk, or by the patient's CANCEL).
    pub async fn cancel_token(
        &mut self,
        id: QueueTokenId,
        now: OffsetDateTime,
    ) -> Result<TokenView, StoreError> {
        self.transition(id, TokenState::Cancelled, "queue.cancelled", now)
            .await
    }

    async fn waiting_rows(&mut self, queue: QueueId) -> Result<Vec<TokenRow>, StoreError> {
        let org = self.org_uuid();
        Ok(with_conn!(self.tx, c => {
            sqlx::query_as(concat!("SELECT ", token_cols!(), " FROM queue_tokens WHERE org_id = $1 AND queue_id = $2 AND state = 'waiting' ORDER BY position, id"))
                .bind(org).bind(queue.as_uuid()).fetch_all(c).await?
        }))
    }

    /// The waiting line, next first, with positions.
    pub async fn waiting_line(&mut self, queue: QueueId) -> Result<Vec<TokenView>, StoreError> {
        self.queue(queue).await?;
        self.waiting_rows(queue)
            .await?
            .into_iter()
            .enumerate()
            .map(|(i, r)| token_view(r, Some(i as i64 + 1)))
            .collect()
    }

    /// Puts a waiting token at `position` (1 is next) of its line. Joins only ever append,
    /// so a reorder and concurrent joins do not disturb each other.
    pub async fn reorder(
        &mut self,
        id: QueueTokenId,
        position: i64,
    ) -> Result<TokenView, StoreError> {
        let r = self.locked_token_row(id).await?;
        if r.state != "waiting" {
            return Err(StoreError::Conflict("invalid_transition"));
        }
        let queue = QueueId::from_uuid(r.queue_id);
        let org = self.org_uuid();
        let mut line: Vec<(uuid::Uuid, i64)> = self
            .waiting_rows(queue)
            .await?
            .into_iter()
            .filter(|t| t.id != r.id)
            .map(|t| (t.id, t.position))
            .collect();
        let index = (position.max(1) - 1).min(line.len() as i64) as usize;
        let mut renumbered = false;
        let new = loop {
            let before = index.checked_sub(1).map(|i| line[i].1);
            let after = line.get(index).map(|t| t.1);
            match (before, after) {
                (None, None) => break r.position,
                (None, Some(a)) => break a - NUMBER_GAP,
                (Some(b), None) => break b + 1,
                (Some(b), Some(a)) if a - b >= 2 => break b + (a - b) / 2,
                // Midpoints ran out (about 20 reorders into one gap): spread the line out
                // again, in this transaction, and place the token in the new gap.
                (Some(_), Some(_)) if !renumbered => {
                    let tail = r.position.max(line.last().map_or(r.position, |t| t.1));
                    line = self.renumber_line(&line, tail).await?;
                    renumbered = true;
                }
                (Some(_), Some(_)) => return Err(StoreError::Conflict("reorder_no_room")),
            }
        };
        with_conn!(self.tx, c => {
            sqlx::query("UPDATE queue_tokens SET position = $3 WHERE org_id = $1 AND id = $2")
                .bind(org).bind(r.id).bind(new).execute(c).await?;
        });
        self.audit(AuditRecord::new(
            "queue.reordered",
            "queue_token",
            id.to_string(),
            serde_json::json!({ "queue": queue.to_string(), "label": r.label, "position": index + 1, "renumbered": renumbered }),
        ))
        .await?;
        self.token(id).await
    }

    /// Gives a waiting line (in order) positions `NUMBER_GAP` apart again, the last one a
    /// gap before `tail` (the line's old last position), so every gap has room for about 20
    /// midpoints and the next join, which lands after `tail`, still appends. Only the
    /// order of the line matters, so moving the front down changes nothing anyone sees.
    async fn renumber_line(
        &mut self,
        line: &[(uuid::Uuid, i64)],
        tail: i64,
    ) -> Result<Vec<(uuid::Uuid, i64)>, StoreError> {
        let org = self.org_uuid();
        let n = line.len() as i64;
        let mut out = Vec::with_capacity(line.len());
        for (i, (id, _)) in line.iter().enumerate() {
            let p = tail - (n - i as i64) * NUMBER_GAP;
            with_conn!(self.tx, c => {
                sqlx::query("UPDATE queue_tokens SET position = $3 WHERE org_id = $1 AND id = $2 AND state = 'waiting'")
                    .bind(org).bind(*id).bind(p).execute(c).await?;
            });
            out.push((*id, p));
        }
        Ok(out)
    }

    /// Moves a waiting token to the end of another queue's line, with that queue's next
    /// number (the day's cap does not apply to the desk's moves).
    pub async fn move_token(
        &mut self,
        id: QueueTokenId,
        to: QueueId,
        now: OffsetDateTime,
    ) -> Result<TokenView, StoreError> {
        let first = self.token_row(id).await?;
        self.queue(to).await?;
        self.lock_queues(&[QueueId::from_uuid(first.queue_id), to])
            .await?;
        let r = self.token_row(id).await?;
        if r.queue_id != first.queue_id {
            return Err(StoreError::Conflict("token_changed"));
        }
        if r.state != "waiting" {
            return Err(StoreError::Conflict("invalid_transition"));
        }
        if r.queue_id == to.as_uuid() {
            return Err(StoreError::Invalid(
                "the token is in that queue already".into(),
            ));
        }
        let target = self.queue(to).await?;
        let org = self.org_uuid();
        let (date, _) = self.local_now(now).await?;
        let day = day_text(date);
        let number: i32 = with_conn!(self.tx, c => {
            sqlx::query_scalar("INSERT INTO queue_days (org_id, queue_id, day, last_number) VALUES ($1, $2, $3, 1) ON CONFLICT (org_id, queue_id, day) DO UPDATE SET last_number = queue_days.last_number + 1 RETURNING last_number")
                .bind(org).bind(to.as_uuid()).bind(&day).fetch_one(c).await?
        });
        if let Some(contact) = r.contact_id {
            let live: i64 = with_conn!(self.tx, c => {
                sqlx::query_scalar("SELECT count(*) FROM queue_tokens WHERE org_id = $1 AND queue_id = $2 AND contact_id = $3 AND state IN ('waiting', 'called', 'serving')")
                    .bind(org).bind(to.as_uuid()).bind(contact).fetch_one(c).await?
            });
            if live > 0 {
                return Err(StoreError::Conflict("already_in_queue"));
            }
        }
        let label = token_label(&target.token_prefix, i64::from(number));
        with_conn!(self.tx, c => {
            sqlx::query("UPDATE queue_tokens SET queue_id = $3, day = $4, number = $5, label = $6, position = $7, told_position = NULL, told_next = FALSE WHERE org_id = $1 AND id = $2 AND state = 'waiting'")
                .bind(org).bind(r.id).bind(to.as_uuid()).bind(&day).bind(number).bind(&label).bind(join_position(date, i64::from(number))).execute(c).await?;
        });
        self.audit(AuditRecord::new(
            "queue.moved",
            "queue_token",
            id.to_string(),
            serde_json::json!({ "from_queue": QueueId::from_uuid(r.queue_id).to_string(), "from_label": r.label, "queue": to.to_string(), "label": label }),
        ))
        .await?;
        self.token(id).await
    }

    /// Records what a patient was last told (their position, and whether "you are next").
    pub async fn mark_told(
        &mut self,
        id: QueueTokenId,
        position: Option<i64>,
        next: bool,
    ) -> Result<(), StoreError> {
        let org = self.org_uuid();
        let position = position.map(|p| p.clamp(0, i64::from(i32::MAX)) as i32);
        with_conn!(self.tx, c => {
            sqlx::query("UPDATE queue_tokens SET told_position = $3, told_next = $4 WHERE org_id = $1 AND id = $2")
                .bind(org).bind(id.as_uuid()).bind(position).bind(next).execute(c).await?;
        });
        Ok(())
    }

    /// Everything the board shows for a queue, in one read.
    pub async fn board(
        &mut self,
        queue: QueueId,
        now: OffsetDateTime,
    ) -> Result<Board, StoreError> {
        let q = self.queue(queue).await?;
        let (date, _) = self.local_now(now).await?;
        let day = day_text(date);
        let org = self.org_uuid();
        let current: Vec<TokenRow> = with_conn!(self.tx, c => {
            sqlx::query_as(concat!("SELECT ", token_cols!(), " FROM queue_tokens WHERE org_id = $1 AND queue_id = $2 AND state IN ('called', 'serving') ORDER BY called_at, id"))
                .bind(org).bind(queue.as_uuid()).fetch_all(c).await?
        });
        let done: Vec<TokenRow> = with_conn!(self.tx, c => {
            sqlx::query_as(concat!("SELECT ", token_cols!(), " FROM queue_tokens WHERE org_id = $1 AND queue_id = $2 AND day = $3 AND state IN ('complete', 'no_show', 'cancelled', 'skipped') ORDER BY ended_at DESC, id LIMIT 100"))
                .bind(org).bind(queue.as_uuid()).bind(&day).fetch_all(c).await?
        });
        let served_today: i64 = with_conn!(self.tx, c => {
            sqlx::query_scalar("SELECT count(*) FROM queue_tokens WHERE org_id = $1 AND queue_id = $2 AND day = $3 AND state = 'complete'")
                .bind(org).bind(queue.as_uuid()).bind(&day).fetch_one(c).await?
        });
        Ok(Board {
            queue: q,
            day,
            current: current
                .into_iter()
                .map(|r| token_view(r, None))
                .collect::<Result<_, _>>()?,
            waiting: self.waiting_line(queue).await?,
            done: done
                .into_iter()
                .map(|r| token_view(r, None))
                .collect::<Result<_, _>>()?,
            served_today,
            avg_consult_secs: self.avg_consult_secs(queue).await?,
        })
    }

    /// What a waiting-room screen shows: labels and counts only.
    pub async fn screen(&mut self, queue: QueueId) -> Result<Screen, StoreError> {
        let q = self.queue(queue).await?;
        let org = self.org_uuid();
        let now_serving: Vec<String> = with_conn!(self.tx, c => {
            sqlx::query_scalar("SELECT label FROM queue_tokens WHERE org_id = $1 AND queue_id = $2 AND state IN ('called', 'serving') ORDER BY called_at DESC, id LIMIT 5")
                .bind(org).bind(queue.as_uuid()).fetch_all(c).await?
        });
        let waiting = self.waiting_rows(queue).await?;
        Ok(Screen {
            queue_name: q.name,
            paused: q.paused,
            now_serving,
            up_next: waiting.iter().take(5).map(|t| t.label.clone()).collect(),
            waiting: waiting.len() as i64,
        })
    }

    /// A token's history: its audit events, oldest first.
    pub async fn token_history(&mut self, id: QueueTokenId) -> Result<Vec<AuditEvent>, StoreError> {
        self.token_row(id).await?;
        let org = self.org_uuid();
        let rows: Vec<EventRow> = with_conn!(self.tx, c => {
            sqlx::query_as("SELECT org_id, seq, occurred_at, actor_type, actor_id, action, target_type, target_id, data, prev_hash, hash FROM audit_events WHERE org_id = $1 AND target_type = 'queue_token' AND target_id = $2 ORDER BY seq LIMIT 500")
                .bind(org).bind(id.to_string()).fetch_all(c).await?
        });
        rows.into_iter()
            .map(|r| RawEvent::from(r).into_event())
            .collect()
    }

    /// Per day and queue between two local days (inclusive, at most 366 days): joined,
    /// served, no-shows, cancellations, average wait and consultation.
    pub async fn queue_report(
        &mut self,
        queue: Option<QueueId>,
        from: Date,
        to: Date,
    ) -> Result<Vec<DayReport>, StoreError> {
        if to < from || (to - from).whole_days() > 366 {
            return Err(StoreError::Invalid(
                "a report covers 1–366 days, from ≤ to".into(),
            ));
        }
        let queues: Vec<QueueView> = match queue {
            Some(q) => vec![self.queue(q).await?],
            None => self.queues().await?,
        };
        let org = self.org_uuid();
        let (from, to) = (day_text(from), day_text(to));
        type Row = (
            String,
            String,
            OffsetDateTime,
            Option<OffsetDateTime>,
            Option<OffsetDateTime>,
        );
        let mut out = Vec::new();
        for q in queues {
            let rows: Vec<Row> = with_conn!(self.tx, c => {
                sqlx::query_as("SELECT day, state, joined_at, called_at, ended_at FROM queue_tokens WHERE org_id = $1 AND queue_id = $2 AND day >= $3 AND day <= $4 ORDER BY day")
                    .bind(org).bind(q.id.as_uuid()).bind(&from).bind(&to).fetch_all(c).await?
            });
            let mut days: BTreeMap<String, Vec<Row>> = BTreeMap::new();
            for r in rows {
                days.entry(r.0.clone()).or_default().push(r);
            }
            for (day, rows) in days {
                let count = |s: &str| rows.iter().filter(|r| r.1 == s).count() as i64;
                let (served, no_show) = (count("complete"), count("no_show"));
                let waits: Vec<f64> = rows
                    .iter()
                    .filter_map(|r| r.3.map(|c| (c - r.2).as_seconds_f64() / 60.0))
                    .collect();
                let consults: Vec<f64> = rows
                    .iter()
                    .filter(|r| r.1 == "complete")
                    .filter_map(|r| Some((r.4? - r.3?).as_seconds_f64() / 60.0))
                    .collect();
                let avg = |v: &[f64]| {
                    if v.is_empty() {
                        0.0
                    } else {
                        (v.iter().sum::<f64>() / v.len() as f64 * 10.0).round() / 10.0
                    }
                };
                out.push(DayReport {
                    day,
                    queue_id: q.id,
                    queue_name: q.name.clone(),
                    joined: rows.len() as i64,
                    served,
                    no_show,
                    cancelled: count("cancelled"),
                    expired: count("expired"),
                    called: waits.len() as i64,
                    no_show_rate: if served + no_show == 0 {
                        0.0
                    } else {
                        ((no_show as f64 / (served + no_show) as f64) * 1000.0).round() / 1000.0
                    },
                    avg_wait_minutes: avg(&waits),
                    avg_consult_minutes: avg(&consults),
                });
            }
        }
        out.sort_by(|a, b| (&a.day, &a.queue_name).cmp(&(&b.day, &b.queue_name)));
        Ok(out)
    }
}

impl crate::Store {
    /// The day's-end sweep of every organisation: tokens still live from a past local day
    /// become `expired` (see [`TenantTx::expire_past_tokens`]). Returns how many queues
    /// changed.
    pub async fn expire_past_queue_tokens(&self, now: OffsetDateTime) -> Result<usize, StoreError> {
        let mut n = 0;
        for org in self.all_org_ids().await? {
            let ctx = crate::TenantCtx::system(org, "queue-day-end");
            let mut tx = self.begin(&ctx).await?;
            n += tx.expire_past_tokens(None, now).await?.len();
            tx.commit().await?;
        }
        Ok(n)
    }
}
