//! Campaigns: one approved template sent to a segment's marketing audience.
//!
//! At launch the segment's rule is copied into the campaign; the worker then snapshots the
//! audience into `campaign_recipients` in batches (from [`TenantTx::marketing_audience`],
//! so nobody who opted out is ever among them), each with the language and values of its
//! send, and moves pending recipients into the outbox a second's worth of the number's
//! throughput at a time, never above the messaging-limit tier's unique recipients in a
//! moving 24 hours. A recipient is moved to the outbox in the transaction that queues its
//! message, and only from `pending`, so a crash can never send anyone twice. Figures are
//! read from the recipients' messages, the replies after them and their tracked links.

use crate::audience::consent_state_sql;
use crate::audit::AuditRecord;
use crate::inbox::Cursor;
use crate::orgs::now_micros;
use crate::segments::ConsentRequirement;
use crate::templates::TemplateRefusal;
use crate::tenant::{TenantCtx, TenantTx, with_conn};
use crate::{NewOutbound, Store, StoreError};
use frontdesk_domain::audience::{ConsentFilter, Rule};
use frontdesk_domain::campaign::{
    CampaignAction, CampaignStatus, ContactValues, Mapping, daily_limit, pick_language,
};
use frontdesk_domain::template::FillInput;
use frontdesk_domain::{CampaignId, ChannelId, ContactId, MessageId, OrgId, SegmentId};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use time::OffsetDateTime;
use uuid::Uuid;

/// Contacts snapshotted per worker step.
const BUILD_BATCH: i64 = 1000;
/// Recipients moved to the outbox per step at most (a second at 1,000 messages/s).
const ENQUEUE_BATCH: i64 = 1000;
/// Campaigns one organisation may keep.
const MAX_CAMPAIGNS: i64 = 10_000;
/// The moving window of the messaging limit.
const LIMIT_WINDOW: time::Duration = time::Duration::hours(24);
/// Why a withdrawn message failed.
const CANCELLED: &str = "cancelled with its campaign";

/// A campaign to create (a draft).
#[derive(Debug, Clone)]
pub struct NewCampaign {
    pub name: String,
    pub channel: ChannelId,
    pub segment: SegmentId,
    pub template_name: String,
    /// The language recipients get when theirs is not approved.
    pub template_language: String,
    pub mapping: Mapping,
    pub consent: ConsentRequirement,
}

/// A campaign as stored and shown.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Campaign {
    pub id: CampaignId,
    pub name: String,
    pub channel_id: ChannelId,
    pub segment_id: SegmentId,
    pub template_name: String,
    pub template_language: String,
    pub mapping: Mapping,
    /// `opt_in` (only contacts who opted in) or `not_opted_out` (unknown consent too).
    pub consent: String,
    pub status: CampaignStatus,
    #[serde(with = "time::serde::rfc3339::option")]
    pub scheduled_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub started_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
    /// Whether the audience snapshot is complete.
    pub audience_built: bool,
    /// Contacts the segment selected who opted out (never sent to).
    pub excluded_opted_out: i64,
    /// Contacts left out because the campaign needs an opt-in and they have none.
    pub excluded_no_opt_in: i64,
    /// Why a running campaign waits: `daily_limit` (the tier's unique recipients are used).
    pub waiting: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub waiting_until: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// A page of campaigns, newest first.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CampaignPage {
    pub items: Vec<Campaign>,
    pub next_cursor: Option<String>,
}

/// A count with its reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ReasonCount {
    pub reason: String,
    pub count: i64,
}

/// A campaign's figures.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CampaignFigures {
    /// Recipients snapshotted (excluded ones included).
    pub recipients: i64,
    /// Waiting to be queued.
    pub pending: i64,
    /// Handed to the outbox (each one message).
    pub queued: i64,
    pub sent: i64,
    pub delivered: i64,
    pub read: i64,
    /// Recipients who wrote back after their message.
    pub replied: i64,
    /// Recipients who clicked a tracked button, and all clicks together.
    pub clicked: i64,
    pub clicks: i64,
    pub failed: i64,
    pub cancelled: i64,
    pub failed_by_reason: Vec<ReasonCount>,
    /// Left out at the snapshot, by reason (`opted_out`, `no_opt_in`, `missing_value`…).
    pub excluded: Vec<ReasonCount>,
}

/// One language's share of the audience and what its phones will show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct LanguagePreview {
    pub language: String,
    pub recipients: i64,
    /// The text for the first recipient in that language (their own values).
    pub preview: Option<String>,
    /// Why it cannot be sent in that language, when it cannot.
    pub problem: Option<String>,
}

/// What a launch would do now: the audience after exclusions and per language.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CampaignReview {
    /// Contacts the segment selects now.
    pub matched: i64,
    pub opted_out: i64,
    pub no_opt_in: i64,
    /// Contacts without a value the mapping needs (and no fallback).
    pub missing_value: i64,
    /// Contacts the campaign will message.
    pub sendable: i64,
    /// The number's unique recipients in a moving 24 hours (`None`: unlimited).
    pub daily_limit: Option<i64>,
    /// Unique recipients of templates in the last 24 hours on the business account.
    pub used_last_24h: i64,
    /// Of the sendable ones, those over today's room: they go when the window frees up.
    pub over_daily_limit: i64,
    pub languages: Vec<LanguagePreview>,
}

/// One recipient as listed.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Recipient {
    pub contact_id: ContactId,
    pub contact_name: Option<String>,
    pub language: String,
    /// `pending`, `excluded`, `queued`, `failed` or `cancelled`.
    pub state: String,
    pub reason: Option<String>,
    pub message_id: Option<MessageId>,
    /// The message's delivery status once queued.
    pub message_status: Option<String>,
    pub error_code: Option<i64>,
    pub error_title: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub queued_at: Option<OffsetDateTime>,
    pub clicks: i64,
}

/// A page of recipients in contact id order.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RecipientPage {
    pub items: Vec<Recipient>,
    pub next_cursor: Option<String>,
}

/// What one worker step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StepReport {
    /// Contacts snapshotted.
    pub snapshotted: usize,
    /// Messages queued.
    pub queued: usize,
    /// When to look again; `None`: the campaign needs the worker no more.
    pub next_run: Option<OffsetDateTime>,
}

#[derive(sqlx::FromRow)]
struct CampaignRow {
    id: Uuid,
    name: String,
    channel_id: Uuid,
    segment_id: Uuid,
    template_name: String,
    template_language: String,
    mapping: String,
    consent: String,
    status: String,
    scheduled_at: Option<OffsetDateTime>,
    started_at: Option<OffsetDateTime>,
    finished_at: Option<OffsetDateTime>,
    audience_built: bool,
    excluded_opted_out: i64,
    excluded_no_opt_in: i64,
    waiting: Option<String>,
    waiting_until: Option<OffsetDateTime>,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

macro_rules! campaign_cols {
    () => {
        "id, name, channel_id, segment_id, template_name, template_language, mapping, consent, status, scheduled_at, started_at, finished_at, audience_built, CAST(excluded_opted_out AS BIGINT) AS excluded_opted_out, CAST(excluded_no_opt_in AS BIGINT) AS excluded_no_opt_in, waiting, waiting_until, created_at, updated_at"
    };
}

fn campaign(r: CampaignRow) -> Result<Campaign, StoreError> {
    Ok(Campaign {
        id: CampaignId::from_uuid(r.id),
        name: r.name,
        channel_id: ChannelId::from_uuid(r.channel_id),
        segment_id: SegmentId::from_uuid(r.segment_id),
        template_name: r.template_name,
        template_language: r.template_language,
        mapping: serde_json::from_str(&r.mapping)
            .map_err(|_| StoreError::Corrupt("a campaign's mapping does not parse".into()))?,
        consent: r.consent,
        status: CampaignStatus::parse(&r.status)
            .ok_or_else(|| StoreError::Corrupt(format!("campaign status {:?}", r.status)))?,
        scheduled_at: r.scheduled_at,
        started_at: r.started_at,
        finished_at: r.finished_at,
        audience_built: r.audience_built,
        excluded_opted_out: r.excluded_opted_out,
        excluded_no_opt_in: r.excluded_no_opt_in,
        waiting: r.waiting,
        waiting_until: r.waiting_until,
        created_at: r.created_at,
        updated_at: r.updated_at,
    })
}

fn consent_str(c: ConsentRequirement) -> &'static str {
    match c {
        ConsentRequirement::OptedIn => "opt_in",
        ConsentRequirement::NotOptedOut => "not_opted_out",
    }
}

fn consent_of(s: &str) -> ConsentRequirement {
    if s == "opt_in" {
        ConsentRequirement::OptedIn
    } else {
        ConsentRequirement::NotOptedOut
    }
}

fn trunc(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

fn invalid(m: impl Into<String>) -> StoreError {
    StoreError::Invalid(m.into())
}

/// A contact's values as the mapping reads them, and whether it can be addressed.
struct Values {
    values: ContactValues,
    addressable: bool,
}

impl TenantTx {
    fn org_uuid_c(&self) -> Uuid {
        self.ctx().org_id().as_uuid()
    }

    /// Creates a draft. The number, the segment and the template (in the default
    /// language, any status) must be this organisation's; the mapping is checked.
    pub async fn create_campaign(&mut self, n: &NewCampaign) -> Result<Campaign, StoreError> {
        let org = self.org_uuid_c();
        let name = n.name.trim();
        if name.is_empty() || name.chars().count() > 120 {
            return Err(invalid("name: 1 to 120 characters"));
        }
        n.mapping.check().map_err(invalid)?;
        let channel = self.channel(n.channel).await?;
        self.segment(n.segment).await?;
        if self
            .template_named(&channel.waba_id, &n.template_name, &n.template_language)
            .await?
            .is_none()
        {
            return Err(invalid(format!(
                "template: {} ({}) is not known on this number's business account",
                n.template_name, n.template_language
            )));
        }
        let count: i64 = with_conn!(self.tx, c => {
            sqlx::query_scalar("SELECT count(*) FROM campaigns WHERE org_id = $1").bind(org).fetch_one(c).await?
        });
        if count >= MAX_CAMPAIGNS {
            return Err(StoreError::Conflict("too_many_campaigns"));
        }
        let id = CampaignId::new();
        let now = now_micros();
        let mapping = serde_json::to_string(&n.mapping).expect("a mapping serialises");
        let by = self.ctx().actor().to_string();
        with_conn!(self.tx, c => {
            sqlx::query("INSERT INTO campaigns (org_id, id, name, channel_id, segment_id, template_name, template_language, mapping, consent, status, created_by, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'draft', $10, $11, $11)")
                .bind(org).bind(id.as_uuid()).bind(name).bind(n.channel.as_uuid()).bind(n.segment.as_uuid())
                .bind(&n.template_name).bind(&n.template_language).bind(&mapping).bind(consent_str(n.consent))
                .bind(&by).bind(now).execute(c).await?;
        });
        self.audit(AuditRecord::new(
            "campaign.created",
            "campaign",
            id.to_string(),
            serde_json::json!({ "name": name, "segment_id": n.segment, "channel_id": n.channel,
                "template": n.template_name, "language": n.template_language, "consent": consent_str(n.consent) }),
        ))
        .await?;
        self.campaign(id).await
    }

    /// One campaign of the organisation.
    pub async fn campaign(&mut self, id: CampaignId) -> Result<Campaign, StoreError> {
        let org = self.org_uuid_c();
        let r: Option<CampaignRow> = with_conn!(self.tx, c => {
            sqlx::query_as(concat!("SELECT ", campaign_cols!(), " FROM campaigns WHERE org_id = $1 AND id = $2"))
                .bind(org).bind(id.as_uuid()).fetch_optional(c).await?
        });
        campaign(r.ok_or(StoreError::NotFound)?)
    }

    /// The organisation's campaigns, newest first, `limit` (1–100) after the cursor.
    pub async fn campaigns(
        &mut self,
        after: Option<&str>,
        limit: i64,
    ) -> Result<CampaignPage, StoreError> {
        let org = self.org_uuid_c();
        let limit = limit.clamp(1, 100);
        let cursor = match after {
            Some(s) => Some(Cursor::decode(s).ok_or_else(|| invalid("cursor: not one of ours"))?),
            None => None,
        };
        let (at, cid) = (cursor.map(|c| c.at), cursor.map(|c| c.id));
        let mut rows: Vec<CampaignRow> = with_conn!(self.tx, c => {
            sqlx::query_as(concat!("SELECT ", campaign_cols!(), " FROM campaigns WHERE org_id = $1
                AND ($2 IS NULL OR created_at < $2 OR (created_at = $2 AND id < $3))
                ORDER BY created_at DESC, id DESC LIMIT $4"))
                .bind(org).bind(at).bind(cid).bind(limit + 1).fetch_all(c).await?
        });
        let next_cursor = Cursor::page(&mut rows, limit, |r| (r.created_at, r.id));
        let items = rows.into_iter().map(campaign).collect::<Result<_, _>>()?;
        Ok(CampaignPage { items, next_cursor })
    }

    /// Values of the contacts with ids in `[first, last]` (the caller keeps the ones it
    /// asked for), with the custom fields `keys`.
    async fn contact_values(
        &mut self,
        first: Uuid,
        last: Uuid,
        keys: &[String],
    ) -> Result<HashMap<Uuid, Values>, StoreError> {
        let org = self.org_uuid_c();
        type Row = (
            Uuid,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            bool,
        );
        let rows: Vec<Row> = with_conn!(self.tx, c => {
            sqlx::query_as("SELECT id, name, profile_name, email, company, language, (phone IS NOT NULL OR bsuid IS NOT NULL) FROM contacts WHERE org_id = $1 AND id >= $2 AND id <= $3")
                .bind(org).bind(first).bind(last).fetch_all(c).await?
        });
        let mut out: HashMap<Uuid, Values> = rows
            .into_iter()
            .map(|r| {
                (
                    r.0,
                    Values {
                        values: ContactValues {
                            name: r.1,
                            profile_name: r.2,
                            email: r.3,
                            company: r.4,
                            language: r.5,
                            fields: BTreeMap::new(),
                        },
                        addressable: r.6,
                    },
                )
            })
            .collect();
        for key in keys {
            let vals: Vec<(Uuid, Option<String>, Option<f64>)> = with_conn!(self.tx, c => {
                sqlx::query_as("SELECT v.contact_id, v.value_text, v.value_number FROM contact_field_values v JOIN contact_fields f ON f.org_id = v.org_id AND f.id = v.field_id
                                WHERE v.org_id = $1 AND f.key = $2 AND v.contact_id >= $3 AND v.contact_id <= $4")
                    .bind(org).bind(key).bind(first).bind(last).fetch_all(c).await?
            });
            for (id, text, number) in vals {
                let v = match (text, number) {
                    (Some(t), _) => t,
                    (None, Some(n)) if n.fract() == 0.0 && n.abs() < 1e15 => {
                        format!("{}", n as i64)
                    }
                    (None, Some(n)) => n.to_string(),
                    (None, None) => continue,
                };
                if let Some(e) = out.get_mut(&id) {
                    e.values.fields.insert(key.clone(), v);
                }
            }
        }
        Ok(out)
    }

    /// The approved languages of the campaign's template on its business account.
    async fn approved_languages(
        &mut self,
        waba: &str,
        name: &str,
    ) -> Result<Vec<String>, StoreError> {
        Ok(self
            .approved_templates_of(waba)
            .await?
            .into_iter()
            .filter(|t| t.name == name)
            .map(|t| t.language)
            .collect())
    }

    /// Unique recipients of templates on the business account's numbers since `since`, and
    /// when the oldest of those messages was queued.
    async fn recent_unique_recipients(
        &mut self,
        waba: &str,
        since: OffsetDateTime,
    ) -> Result<(i64, Option<OffsetDateTime>), StoreError> {
        let org = self.org_uuid_c();
        Ok(with_conn!(self.tx, c => {
            sqlx::query_as("SELECT count(DISTINCT m.contact_id), min(m.created_at) FROM messages m JOIN channels ch ON ch.org_id = m.org_id AND ch.id = m.channel_id
                            WHERE m.org_id = $1 AND ch.waba_id = $2 AND m.direction = 'out' AND m.kind = 'template' AND m.created_at > $3 AND m.status <> 'failed'")
                .bind(org).bind(waba).bind(since).fetch_one(c).await?
        }))
    }

    /// What a launch would do now (nothing is written): the segment's contacts, those left
    /// out and why, the tier's room today, and a preview per language.
    pub async fn review_campaign(
        &mut self,
        id: CampaignId,
        now: OffsetDateTime,
    ) -> Result<CampaignReview, StoreError> {
        let c = self.campaign(id).await?;
        let rule = match c.status {
            CampaignStatus::Draft | CampaignStatus::Scheduled => {
                self.segment(c.segment_id).await?.rule
            }
            _ => self.campaign_rule(id).await?,
        };
        let consent = consent_of(&c.consent);
        let channel = self.channel(c.channel_id).await?;
        let (matched, opted_out, no_opt_in) = self.exclusion_counts(&rule, consent, now).await?;
        let approved = self
            .approved_languages(&channel.waba_id, &c.template_name)
            .await?;
        let keys = c.mapping.field_keys();
        let mut after = None;
        let (mut sendable, mut missing) = (0i64, 0i64);
        let mut by_lang: BTreeMap<String, (i64, Option<FillInput>)> = BTreeMap::new();
        loop {
            let ids = self
                .marketing_audience(&rule, consent, after, BUILD_BATCH, now)
                .await?;
            let (Some(first), Some(last)) = (ids.first(), ids.last()) else {
                break;
            };
            let values = self
                .contact_values(first.as_uuid(), last.as_uuid(), &keys)
                .await?;
            for cid in &ids {
                let Some(v) = values.get(&cid.as_uuid()) else {
                    continue;
                };
                match c.mapping.fill_for(&v.values) {
                    Ok(fill) if v.addressable => {
                        sendable += 1;
                        let lang = pick_language(
                            v.values.language.as_deref(),
                            &approved,
                            &c.template_language,
                        );
                        let e = by_lang.entry(lang).or_insert((0, None));
                        e.0 += 1;
                        if e.1.is_none() {
                            e.1 = Some(fill);
                        }
                    }
                    _ => missing += 1,
                }
            }
            after = ids.last().copied();
            if (ids.len() as i64) < BUILD_BATCH {
                break;
            }
        }
        let mut languages = Vec::new();
        for (language, (n, fill)) in by_lang {
            let mut components = Vec::new();
            let (preview, problem) = match self
                .prepare_template_send(
                    &channel.waba_id,
                    &c.template_name,
                    &language,
                    &mut components,
                    fill,
                )
                .await
            {
                Ok(p) => (p.map(|p| p.text), None),
                Err(TemplateRefusal::Store(e)) => return Err(e),
                Err(e) => (None, Some(e.to_string())),
            };
            languages.push(LanguagePreview {
                language,
                recipients: n,
                preview,
                problem,
            });
        }
        let limit = daily_limit(channel.messaging_limit.as_deref());
        let (used, _) = self
            .recent_unique_recipients(&channel.waba_id, now - LIMIT_WINDOW)
            .await?;
        let over = limit.map_or(0, |l| (sendable - (l - used).max(0)).max(0));
        Ok(CampaignReview {
            matched,
            opted_out,
            no_opt_in,
            missing_value: missing,
            sendable,
            daily_limit: limit,
            used_last_24h: used,
            over_daily_limit: over,
            languages,
        })
    }

    /// The rule's contacts, those of them who opted out, and (when an opt-in is needed)
    /// those without one.
    async fn exclusion_counts(
        &mut self,
        rule: &Rule,
        consent: ConsentRequirement,
        now: OffsetDateTime,
    ) -> Result<(i64, i64, i64), StoreError> {
        let matched = self.preview_rule(rule, now).await?.count;
        let with = |f| Rule::And(vec![rule.clone(), Rule::Consent(f)]);
        let opted_out = self
            .preview_rule(&with(ConsentFilter::OptOut), now)
            .await?
            .count;
        let no_opt_in = match consent {
            ConsentRequirement::OptedIn => {
                self.preview_rule(&with(ConsentFilter::Unknown), now)
                    .await?
                    .count
            }
            ConsentRequirement::NotOptedOut => 0,
        };
        Ok((matched, opted_out, no_opt_in))
    }

    async fn campaign_rule(&mut self, id: CampaignId) -> Result<Rule, StoreError> {
        let org = self.org_uuid_c();
        let rule: Option<String> = with_conn!(self.tx, c => {
            sqlx::query_scalar("SELECT rule FROM campaigns WHERE org_id = $1 AND id = $2")
                .bind(org).bind(id.as_uuid()).fetch_one(c).await?
        });
        serde_json::from_str(rule.as_deref().unwrap_or("{\"and\":[]}"))
            .map_err(|_| StoreError::Corrupt("a campaign's rule does not parse".into()))
    }

    async fn set_status(
        &mut self,
        id: CampaignId,
        from: CampaignStatus,
        to: CampaignStatus,
    ) -> Result<(), StoreError> {
        let org = self.org_uuid_c();
        let now = now_micros();
        let n = with_conn!(self.tx, c => {
            sqlx::query("UPDATE campaigns SET status = $4, updated_at = $5,
                    finished_at = CASE WHEN $4 IN ('completed', 'cancelled') THEN $5 ELSE finished_at END,
                    started_at = CASE WHEN $4 = 'running' THEN coalesce(started_at, $5) ELSE started_at END,
                    waiting = CASE WHEN $4 = 'running' THEN waiting ELSE NULL END,
                    waiting_until = CASE WHEN $4 = 'running' THEN waiting_until ELSE NULL END
                WHERE org_id = $1 AND id = $2 AND status = $3")
                .bind(org).bind(id.as_uuid()).bind(from.as_str()).bind(to.as_str()).bind(now).execute(c).await?.rows_affected()
        });
        if n != 1 {
            // Another change got there first.
            return Err(StoreError::Conflict("campaign_state"));
        }
        Ok(())
    }

    async fn queue_campaign(
        &mut self,
        id: CampaignId,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let org = self.org_uuid_c();
        with_conn!(self.tx, c => {
            sqlx::query("INSERT INTO campaign_queue (campaign_id, org_id, next_run_at) VALUES ($1, $2, $3)
                         ON CONFLICT (campaign_id) DO UPDATE SET next_run_at = excluded.next_run_at, lease_until = NULL")
                .bind(id.as_uuid()).bind(org).bind(at).execute(c).await?;
        });
        Ok(())
    }

    async fn unqueue_campaign(&mut self, id: CampaignId) -> Result<(), StoreError> {
        let org = self.org_uuid_c();
        with_conn!(self.tx, c => {
            sqlx::query("DELETE FROM campaign_queue WHERE campaign_id = $1 AND org_id = $2")
                .bind(id.as_uuid()).bind(org).execute(c).await?;
        });
        Ok(())
    }

    /// Launches a draft now (`at` = `None`) or schedules it for `at`; a scheduled one can be
    /// launched now or moved. The template must be approved in the default language and
    /// the segment still there; its rule is copied into the campaign.
    pub async fn launch_campaign(
        &mut self,
        id: CampaignId,
        at: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> Result<Campaign, StoreError> {
        let c = self.campaign(id).await?;
        let action = if at.is_some() {
            CampaignAction::Schedule
        } else {
            CampaignAction::Launch
        };
        let to = c
            .status
            .after(action)
            .ok_or(StoreError::Conflict("campaign_state"))?;
        if at.is_some_and(|t| t <= now) {
            return Err(invalid("send_at: a time in the future"));
        }
        let channel = self.channel(c.channel_id).await?;
        match self
            .template_named(&channel.waba_id, &c.template_name, &c.template_language)
            .await?
        {
            Some(t) if t.status == "APPROVED" => {}
            _ => return Err(StoreError::Conflict("template_not_approved")),
        }
        let segment = self.segment(c.segment_id).await?;
        let rule = serde_json::to_string(&segment.rule).expect("a rule serialises");
        let org = self.org_uuid_c();
        self.set_status(id, c.status, to).await?;
        with_conn!(self.tx, cn => {
            sqlx::query("UPDATE campaigns SET rule = $3, scheduled_at = $4 WHERE org_id = $1 AND id = $2")
                .bind(org).bind(id.as_uuid()).bind(&rule).bind(at).execute(cn).await?;
        });
        self.queue_campaign(id, at.unwrap_or(now)).await?;
        let (action, data) = match at {
            Some(t) => (
                "campaign.scheduled",
                serde_json::json!({ "send_at": t.format(&time::format_description::well_known::Rfc3339).ok() }),
            ),
            None => ("campaign.launched", serde_json::json!({})),
        };
        self.audit(AuditRecord::new(action, "campaign", id.to_string(), data))
            .await?;
        self.campaign(id).await
    }

    /// Pauses (stops moving recipients to the outbox), resumes, or cancels a campaign.
    /// Cancelling also withdraws its messages still waiting in the outbox (those a
    /// dispatcher holds at this moment go out) and the recipients not yet queued.
    pub async fn change_campaign(
        &mut self,
        id: CampaignId,
        action: CampaignAction,
        now: OffsetDateTime,
    ) -> Result<Campaign, StoreError> {
        let c = self.campaign(id).await?;
        let mut to = c
            .status
            .after(action)
            .ok_or(StoreError::Conflict("campaign_state"))?;
        if matches!(action, CampaignAction::Launch | CampaignAction::Schedule) {
            return self.launch_campaign(id, None, now).await;
        }
        // Paused before its time: it goes back to waiting for that time.
        let scheduled = c
            .scheduled_at
            .filter(|t| c.started_at.is_none() && *t > now);
        if action == CampaignAction::Resume && scheduled.is_some() {
            to = CampaignStatus::Scheduled;
        }
        self.set_status(id, c.status, to).await?;
        let mut data = serde_json::json!({ "from": c.status.as_str() });
        match action {
            CampaignAction::Pause => self.unqueue_campaign(id).await?,
            CampaignAction::Resume => self.queue_campaign(id, scheduled.unwrap_or(now)).await?,
            CampaignAction::Cancel => {
                self.unqueue_campaign(id).await?;
                data["withdrawn"] = serde_json::json!(self.withdraw_campaign(id, now).await?);
            }
            _ => {}
        }
        let name = match action {
            CampaignAction::Pause => "campaign.paused",
            CampaignAction::Resume => "campaign.resumed",
            _ => "campaign.cancelled",
        };
        self.audit(AuditRecord::new(name, "campaign", id.to_string(), data))
            .await?;
        self.campaign(id).await
    }

    /// Withdraws the campaign's queued messages that no dispatcher holds, and the
    /// recipients not yet queued. Returns how many messages were withdrawn.
    async fn withdraw_campaign(
        &mut self,
        id: CampaignId,
        now: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        let org = self.org_uuid_c();
        let stamp = now_micros();
        Ok(with_conn!(self.tx, c => {
            sqlx::query("UPDATE campaign_recipients SET state = 'cancelled', reason = $4 WHERE org_id = $1 AND campaign_id = $2 AND (state = 'pending'
                    OR (state = 'queued' AND message_id IN (SELECT o.target_id FROM outbox o WHERE o.org_id = $1 AND o.action = 'send' AND (o.lease_until IS NULL OR o.lease_until < $3))))")
                .bind(org).bind(id.as_uuid()).bind(now).bind(CANCELLED).execute(&mut *c).await?;
            sqlx::query("UPDATE messages SET status = 'failed', error_title = $4, updated_at = $5 WHERE org_id = $1 AND status = 'queued' AND id IN
                    (SELECT o.target_id FROM outbox o JOIN campaign_recipients r ON r.org_id = o.org_id AND r.message_id = o.target_id
                     WHERE o.org_id = $1 AND r.campaign_id = $2 AND o.action = 'send' AND (o.lease_until IS NULL OR o.lease_until < $3))")
                .bind(org).bind(id.as_uuid()).bind(now).bind(CANCELLED).bind(stamp).execute(&mut *c).await?;
            sqlx::query("DELETE FROM outbox WHERE org_id = $1 AND action = 'send' AND (lease_until IS NULL OR lease_until < $3) AND target_id IN
                    (SELECT message_id FROM campaign_recipients WHERE org_id = $1 AND campaign_id = $2 AND message_id IS NOT NULL)")
                .bind(org).bind(id.as_uuid()).bind(now).execute(&mut *c).await?.rows_affected()
        }))
    }

    /// One step of the worker for a campaign it claimed: start a scheduled one whose time
    /// has come, snapshot a batch of the audience, or move a batch of recipients to the
    /// outbox (within the number's throughput for a second and the tier's room).
    pub async fn campaign_step(
        &mut self,
        id: CampaignId,
        now: OffsetDateTime,
    ) -> Result<StepReport, StoreError> {
        let c = match self.campaign(id).await {
            Ok(c) => c,
            Err(StoreError::NotFound) => {
                self.unqueue_campaign(id).await?;
                return Ok(StepReport::default());
            }
            Err(e) => return Err(e),
        };
        match c.status {
            CampaignStatus::Scheduled => {
                if c.scheduled_at.is_some_and(|t| t > now) {
                    let next = c.scheduled_at;
                    self.queue_campaign(id, next.unwrap_or(now)).await?;
                    return Ok(StepReport {
                        next_run: next,
                        ..Default::default()
                    });
                }
                self.set_status(id, CampaignStatus::Scheduled, CampaignStatus::Running)
                    .await?;
                self.audit(AuditRecord::new(
                    "campaign.started",
                    "campaign",
                    id.to_string(),
                    serde_json::json!({}),
                ))
                .await?;
            }
            CampaignStatus::Running => {}
            _ => {
                self.unqueue_campaign(id).await?;
                return Ok(StepReport::default());
            }
        }
        let channel = self.channel(c.channel_id).await?;
        if !c.audience_built {
            let n = self.snapshot_batch(&c, &channel.waba_id, now).await?;
            self.queue_campaign(id, now).await?;
            return Ok(StepReport {
                snapshotted: n,
                queued: 0,
                next_run: Some(now),
            });
        }
        let org = self.org_uuid_c();
        let limit = daily_limit(channel.messaging_limit.as_deref());
        let (used, oldest) = self
            .recent_unique_recipients(&channel.waba_id, now - LIMIT_WINDOW)
            .await?;
        let room = limit.map(|l| (l - used).max(0));
        if room == Some(0) {
            // The tier is used up: wait until its oldest send leaves the 24-hour window.
            let until = oldest.map_or(now + time::Duration::minutes(5), |o| o + LIMIT_WINDOW)
                + time::Duration::seconds(1);
            with_conn!(self.tx, cn => {
                sqlx::query("UPDATE campaigns SET waiting = 'daily_limit', waiting_until = $3, updated_at = $4 WHERE org_id = $1 AND id = $2")
                    .bind(org).bind(id.as_uuid()).bind(until).bind(now_micros()).execute(cn).await?;
            });
            self.queue_campaign(id, until).await?;
            return Ok(StepReport {
                next_run: Some(until),
                ..Default::default()
            });
        }
        let mps = i64::from(channel.throughput_mps.max(1));
        let batch = mps.min(room.unwrap_or(i64::MAX)).min(ENQUEUE_BATCH);
        type Pending = (Uuid, String, String, bool, String);
        let pending: Vec<Pending> = with_conn!(self.tx, cn => {
            sqlx::query_as(concat!("SELECT r.contact_id, r.language, r.fill, k.erased_at IS NULL, coalesce(", consent_state_sql!(), ", '')
                FROM campaign_recipients r JOIN contacts k ON k.org_id = r.org_id AND k.id = r.contact_id
                WHERE r.org_id = $1 AND r.campaign_id = $2 AND r.state = 'pending' ORDER BY r.contact_id LIMIT $3"))
                .bind(org).bind(id.as_uuid()).bind(batch + 1).fetch_all(cn).await?
        });
        let more = pending.len() as i64 > batch;
        let need_opt_in = consent_of(&c.consent) == ConsentRequirement::OptedIn;
        let mut queued = 0;
        for (contact, language, fill, live, consent) in pending.into_iter().take(batch as usize) {
            // Consent and erasure are checked again at the send: an opt-out since the
            // snapshot is never sent to.
            let left_out = if !live {
                Some("erased")
            } else if consent == "opt_out" {
                Some("opted_out")
            } else if need_opt_in && consent != "opt_in" {
                Some("no_opt_in")
            } else {
                None
            };
            if let Some(reason) = left_out {
                with_conn!(self.tx, cn => {
                    sqlx::query("UPDATE campaign_recipients SET state = 'excluded', reason = $4 WHERE org_id = $1 AND campaign_id = $2 AND contact_id = $3 AND state = 'pending'")
                        .bind(org).bind(id.as_uuid()).bind(contact).bind(reason).execute(cn).await?;
                });
                continue;
            }
            if self
                .enqueue_recipient(&c, &channel.waba_id, contact, &language, &fill, now)
                .await?
            {
                queued += 1;
            }
        }
        with_conn!(self.tx, cn => {
            sqlx::query("UPDATE campaigns SET waiting = NULL, waiting_until = NULL WHERE org_id = $1 AND id = $2 AND waiting IS NOT NULL")
                .bind(org).bind(id.as_uuid()).execute(cn).await?;
        });
        if !more {
            self.set_status(id, CampaignStatus::Running, CampaignStatus::Completed)
                .await?;
            self.unqueue_campaign(id).await?;
            let figures = self.campaign_figures(id).await?;
            self.audit(AuditRecord::new(
                "campaign.completed",
                "campaign",
                id.to_string(),
                serde_json::json!({ "queued": figures.queued, "failed": figures.failed, "recipients": figures.recipients }),
            ))
            .await?;
            return Ok(StepReport {
                snapshotted: 0,
                queued,
                next_run: None,
            });
        }
        // The next batch when this one's second at the number's throughput is over.
        let next = now + time::Duration::milliseconds((batch * 1000 / mps).max(1));
        self.queue_campaign(id, next).await?;
        Ok(StepReport {
            snapshotted: 0,
            queued,
            next_run: Some(next),
        })
    }

    /// Snapshots the next batch of the audience; the first batch also records how many the
    /// segment selected who are left out for consent.
    async fn snapshot_batch(
        &mut self,
        c: &Campaign,
        waba: &str,
        now: OffsetDateTime,
    ) -> Result<usize, StoreError> {
        let org = self.org_uuid_c();
        let rule = self.campaign_rule(c.id).await?;
        let consent = consent_of(&c.consent);
        let after: Option<Uuid> = with_conn!(self.tx, cn => {
            sqlx::query_scalar("SELECT build_after FROM campaigns WHERE org_id = $1 AND id = $2")
                .bind(org).bind(c.id.as_uuid()).fetch_one(cn).await?
        });
        if after.is_none() {
            let (_, opted_out, no_opt_in) = self.exclusion_counts(&rule, consent, now).await?;
            with_conn!(self.tx, cn => {
                sqlx::query("UPDATE campaigns SET excluded_opted_out = $3, excluded_no_opt_in = $4 WHERE org_id = $1 AND id = $2")
                    .bind(org).bind(c.id.as_uuid()).bind(opted_out).bind(no_opt_in).execute(cn).await?;
            });
        }
        let ids = self
            .marketing_audience(
                &rule,
                consent,
                after.map(ContactId::from_uuid),
                BUILD_BATCH,
                now,
            )
            .await?;
        let approved = self.approved_languages(waba, &c.template_name).await?;
        if let (Some(first), Some(last)) = (ids.first(), ids.last()) {
            let values = self
                .contact_values(first.as_uuid(), last.as_uuid(), &c.mapping.field_keys())
                .await?;
            for cid in &ids {
                let Some(v) = values.get(&cid.as_uuid()) else {
                    continue;
                };
                let language = pick_language(
                    v.values.language.as_deref(),
                    &approved,
                    &c.template_language,
                );
                let (state, fill, reason) = if !v.addressable {
                    (
                        "excluded",
                        String::from("{}"),
                        Some("no_address".to_owned()),
                    )
                } else {
                    match c.mapping.fill_for(&v.values) {
                        Ok(f) => (
                            "pending",
                            serde_json::to_string(&f).expect("a fill serialises"),
                            None,
                        ),
                        Err(m) => (
                            "excluded",
                            String::from("{}"),
                            Some(format!("missing_value: {m}")),
                        ),
                    }
                };
                with_conn!(self.tx, cn => {
                    sqlx::query("INSERT INTO campaign_recipients (org_id, campaign_id, contact_id, language, fill, state, reason) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING")
                        .bind(org).bind(c.id.as_uuid()).bind(cid.as_uuid()).bind(&language).bind(&fill).bind(state).bind(reason.map(|r| trunc(&r, 500)))
                        .execute(cn).await?;
                });
            }
        }
        let built = (ids.len() as i64) < BUILD_BATCH;
        let last = ids.last().map(|i| i.as_uuid()).or(after);
        with_conn!(self.tx, cn => {
            sqlx::query("UPDATE campaigns SET build_after = $3, audience_built = $4, updated_at = $5 WHERE org_id = $1 AND id = $2")
                .bind(org).bind(c.id.as_uuid()).bind(last).bind(built).bind(now_micros()).execute(cn).await?;
        });
        Ok(ids.len())
    }

    /// Queues one pending recipient's message (filled and checked as every template send
    /// is) and marks the recipient queued, in this transaction. A recipient the template
    /// cannot be sent to is marked failed with the reason. Returns whether it was queued.
    async fn enqueue_recipient(
        &mut self,
        c: &Campaign,
        waba: &str,
        contact: Uuid,
        language: &str,
        fill: &str,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let org = self.org_uuid_c();
        let fill: FillInput = serde_json::from_str(fill)
            .map_err(|_| StoreError::Corrupt("a recipient's values do not parse".into()))?;
        let mut components = Vec::new();
        let prepared = match self
            .prepare_template_send(
                waba,
                &c.template_name,
                language,
                &mut components,
                Some(fill),
            )
            .await
        {
            Ok(p) => p,
            Err(TemplateRefusal::Store(e)) => return Err(e),
            Err(e) => {
                let reason = trunc(&e.to_string(), 500);
                with_conn!(self.tx, cn => {
                    sqlx::query("UPDATE campaign_recipients SET state = 'failed', reason = $4 WHERE org_id = $1 AND campaign_id = $2 AND contact_id = $3 AND state = 'pending'")
                        .bind(org).bind(c.id.as_uuid()).bind(contact).bind(&reason).execute(cn).await?;
                });
                return Ok(false);
            }
        };
        let content = serde_json::json!({ "type": "template", "name": c.template_name,
            "language": language, "components": components })
        .to_string();
        let preview = prepared
            .as_ref()
            .map(|p| p.text.clone())
            .unwrap_or_else(|| format!("[template {}]", c.template_name));
        let message = self
            .queue_message(
                &NewOutbound {
                    channel: c.channel_id,
                    contact: ContactId::from_uuid(contact),
                    kind: "template".into(),
                    content,
                    preview,
                    reply_to: None,
                    needs_window: false,
                    author: None,
                },
                now,
            )
            .await?;
        if let Some(p) = prepared
            && !p.links.is_empty()
        {
            self.create_tracked_links(
                p.template,
                message.id,
                ContactId::from_uuid(contact),
                &p.links,
            )
            .await?;
        }
        let n = with_conn!(self.tx, cn => {
            sqlx::query("UPDATE campaign_recipients SET state = 'queued', message_id = $4, queued_at = $5 WHERE org_id = $1 AND campaign_id = $2 AND contact_id = $3 AND state = 'pending'")
                .bind(org).bind(c.id.as_uuid()).bind(contact).bind(message.id.as_uuid()).bind(now_micros()).execute(cn).await?.rows_affected()
        });
        if n != 1 {
            // Someone else moved this recipient meanwhile: undo by failing the whole step.
            return Err(StoreError::Conflict("campaign_state"));
        }
        Ok(true)
    }

    /// The campaign's figures now.
    pub async fn campaign_figures(
        &mut self,
        id: CampaignId,
    ) -> Result<CampaignFigures, StoreError> {
        let c = self.campaign(id).await?;
        let org = self.org_uuid_c();
        type Row = (
            String,
            Option<String>,
            Option<String>,
            Option<i64>,
            Option<String>,
            i64,
        );
        let rows: Vec<Row> = with_conn!(self.tx, cn => {
            sqlx::query_as("SELECT r.state, r.reason, m.status, m.error_code, m.error_title, count(*) FROM campaign_recipients r
                            LEFT JOIN messages m ON m.org_id = r.org_id AND m.id = r.message_id
                            WHERE r.org_id = $1 AND r.campaign_id = $2
                            GROUP BY r.state, r.reason, m.status, m.error_code, m.error_title")
                .bind(org).bind(id.as_uuid()).fetch_all(cn).await?
        });
        let mut f = CampaignFigures::default();
        let mut failed: BTreeMap<String, i64> = BTreeMap::new();
        let mut excluded: BTreeMap<String, i64> = BTreeMap::new();
        if c.excluded_opted_out > 0 {
            excluded.insert("opted_out".into(), c.excluded_opted_out);
        }
        if c.excluded_no_opt_in > 0 {
            excluded.insert("no_opt_in".into(), c.excluded_no_opt_in);
        }
        for (state, reason, status, code, title, n) in rows {
            f.recipients += n;
            match state.as_str() {
                "pending" => f.pending += n,
                "excluded" => {
                    let r = reason.unwrap_or_default();
                    let key = r.split(':').next().unwrap_or("excluded").to_owned();
                    *excluded.entry(key).or_default() += n;
                }
                "cancelled" => f.cancelled += n,
                "failed" => {
                    f.failed += n;
                    *failed
                        .entry(reason.unwrap_or_else(|| "not sent".into()))
                        .or_default() += n;
                }
                _ => {
                    f.queued += n;
                    match status.as_deref() {
                        Some("sent") => f.sent += n,
                        Some("delivered") => {
                            f.sent += n;
                            f.delivered += n;
                        }
                        Some("read") => {
                            f.sent += n;
                            f.delivered += n;
                            f.read += n;
                        }
                        Some("failed") => {
                            f.failed += n;
                            let reason = match (code, title) {
                                (Some(c), Some(t)) => format!("{c} {t}"),
                                (Some(c), None) => c.to_string(),
                                (None, Some(t)) => t,
                                (None, None) => "failed".into(),
                            };
                            *failed.entry(reason).or_default() += n;
                        }
                        _ => {}
                    }
                }
            }
        }
        let (replied, clicked, clicks): (i64, i64, i64) = with_conn!(self.tx, cn => {
            let replied: i64 = sqlx::query_scalar("SELECT count(*) FROM campaign_recipients r WHERE r.org_id = $1 AND r.campaign_id = $2 AND r.state = 'queued'
                    AND EXISTS (SELECT 1 FROM conversations cv JOIN messages i ON i.org_id = cv.org_id AND i.conversation_id = cv.id
                                WHERE cv.org_id = r.org_id AND cv.channel_id = $3 AND cv.contact_id = r.contact_id AND i.direction = 'in' AND i.created_at > r.queued_at)")
                .bind(org).bind(id.as_uuid()).bind(c.channel_id.as_uuid()).fetch_one(&mut *cn).await?;
            let (clicked, clicks): (i64, Option<i64>) = sqlx::query_as("SELECT count(DISTINCT r.contact_id), CAST(sum(l.clicks) AS BIGINT) FROM campaign_recipients r
                    JOIN template_links l ON l.org_id = r.org_id AND l.message_id = r.message_id
                    WHERE r.org_id = $1 AND r.campaign_id = $2 AND l.clicks > 0")
                .bind(org).bind(id.as_uuid()).fetch_one(&mut *cn).await?;
            (replied, clicked, clicks.unwrap_or(0))
        });
        f.replied = replied;
        f.clicked = clicked;
        f.clicks = clicks;
        let by = |m: BTreeMap<String, i64>| {
            let mut v: Vec<ReasonCount> = m
                .into_iter()
                .map(|(reason, count)| ReasonCount { reason, count })
                .collect();
            v.sort_by(|a, b| b.count.cmp(&a.count).then(a.reason.cmp(&b.reason)));
            v
        };
        f.failed_by_reason = by(failed);
        f.excluded = by(excluded);
        Ok(f)
    }

    /// The campaign's recipients in contact id order after the cursor (a contact id),
    /// optionally in one state; `limit` 1–1000.
    pub async fn campaign_recipients(
        &mut self,
        id: CampaignId,
        state: Option<&str>,
        after: Option<&str>,
        limit: i64,
    ) -> Result<RecipientPage, StoreError> {
        self.campaign(id).await?;
        let org = self.org_uuid_c();
        let limit = limit.clamp(1, 1000);
        if state
            .is_some_and(|s| !["pending", "excluded", "queued", "failed", "cancelled"].contains(&s))
        {
            return Err(invalid(
                "state: pending, excluded, queued, failed or cancelled",
            ));
        }
        let after = match after {
            Some(a) => Some(Uuid::parse_str(a).map_err(|_| invalid("cursor: not one of ours"))?),
            None => None,
        };
        type Row = (
            Uuid,
            Option<String>,
            String,
            String,
            Option<String>,
            Option<Uuid>,
            Option<String>,
            Option<i64>,
            Option<String>,
            Option<OffsetDateTime>,
            Option<i64>,
        );
        let mut rows: Vec<Row> = with_conn!(self.tx, cn => {
            sqlx::query_as("SELECT r.contact_id, coalesce(k.name, k.profile_name), r.language, r.state, r.reason, r.message_id, m.status, m.error_code, m.error_title, r.queued_at,
                    (SELECT CAST(sum(l.clicks) AS BIGINT) FROM template_links l WHERE l.org_id = r.org_id AND l.message_id = r.message_id)
                FROM campaign_recipients r
                JOIN contacts k ON k.org_id = r.org_id AND k.id = r.contact_id
                LEFT JOIN messages m ON m.org_id = r.org_id AND m.id = r.message_id
                WHERE r.org_id = $1 AND r.campaign_id = $2 AND ($3 IS NULL OR r.state = $3) AND ($4 IS NULL OR r.contact_id > $4)
                ORDER BY r.contact_id LIMIT $5")
                .bind(org).bind(id.as_uuid()).bind(state).bind(after).bind(limit + 1).fetch_all(cn).await?
        });
        let more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        let next_cursor = if more {
            rows.last().map(|r| r.0.to_string())
        } else {
            None
        };
        Ok(RecipientPage {
            items: rows
                .into_iter()
                .map(|r| Recipient {
                    contact_id: ContactId::from_uuid(r.0),
                    contact_name: r.1,
                    language: r.2,
                    state: r.3,
                    reason: r.4,
                    message_id: r.5.map(MessageId::from_uuid),
                    message_status: r.6,
                    error_code: r.7,
                    error_title: r.8,
                    queued_at: r.9,
                    clicks: r.10.unwrap_or(0),
                })
                .collect(),
            next_cursor,
        })
    }
}

impl Store {
    /// Claims campaigns due for a worker step across organisations, with a lease.
    pub async fn claim_campaigns(
        &self,
        now: OffsetDateTime,
        lease: time::Duration,
        limit: i64,
    ) -> Result<Vec<(TenantCtx, CampaignId)>, StoreError> {
        let mut g = self.begin_global_background().await?;
        let rows: Vec<(Uuid, Uuid)> = crate::messaging::claim(
            &mut g,
            crate::messaging::leased_claim!(
                "UPDATE campaign_queue SET lease_until = $2 WHERE campaign_id IN",
                "SELECT campaign_id FROM campaign_queue WHERE next_run_at <= $1 AND (lease_until IS NULL OR lease_until < $1) ORDER BY next_run_at LIMIT $3",
                "RETURNING org_id, campaign_id"
            ),
            (now, now + lease, limit),
        )
        .await?;
        g.commit().await?;
        Ok(rows
            .into_iter()
            .map(|(org, id)| {
                (
                    TenantCtx::system(OrgId::from_uuid(org), "campaigns"),
                    CampaignId::from_uuid(id),
                )
            })
            .collect())
    }
}
