//! Message templates as a product: drafts written here (their components stored in the
//! written form of [`TemplateInput`], re-parsed on every read), their submission to the
//! provider, the provider's status, quality and category, templates synced from the
//! provider, and tracked URL buttons (links behind `/r/{code}` that count clicks).
//!
//! One row per business account, name and language, the same row the provider's status
//! webhooks update (see [`TenantTx::set_template_status`]). Changes are audited in their
//! transaction.

use crate::audit::AuditRecord;
use crate::orgs::now_micros;
use crate::tenant::{Scope, TenantCtx, TenantTx, with_conn};
use crate::tokens::token_hash;
use crate::{Store, StoreError};
use frontdesk_domain::template::{
    Category, FieldError, FillInput, MediaKind, TemplateInput, TemplateSpec, TrackedLink,
    sample_rule,
};
use frontdesk_domain::{
    ChannelId, ContactId, MediaId, MessageId, OrgId, TemplateId, TrackedLinkId,
};
use serde::Serialize;
use time::OffsetDateTime;

/// Templates one list returns at most.
const MAX_LIST: i64 = 500;
/// Templates one organisation may keep.
const MAX_TEMPLATES: i64 = 5000;
/// The prefix of a tracked link's code (`/r/fdl_…`).
pub const LINK_CODE_PREFIX: &str = "fdl";

/// Statuses in which a template may be edited: drafts, refused ones (fix and resubmit) and
/// approved ones (an edit is resubmitted for review).
const EDITABLE: [&str; 3] = ["DRAFT", "REJECTED", "APPROVED"];

/// A template as stored and shown.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct TemplateRecord {
    pub id: TemplateId,
    /// The number it was written for; `None` for a template only the provider reported.
    pub channel_id: Option<ChannelId>,
    pub waba_id: String,
    pub name: String,
    pub language: String,
    pub category: Option<String>,
    /// `DRAFT`, then the provider's: `PENDING`, `APPROVED`, `REJECTED`, `PAUSED`, `DISABLED`…
    pub status: String,
    /// Why it was rejected, paused or disabled (the provider's words), or why submitting failed.
    pub reason: Option<String>,
    /// `GREEN`, `YELLOW`, `RED` or `UNKNOWN`, once the provider rates it.
    pub quality: Option<String>,
    pub provider_template_id: Option<String>,
    /// The components as written; `None` when the provider's could not be read.
    pub content: Option<TemplateInput>,
    /// Clicks on its tracked buttons, all messages together (every click counts).
    pub clicks: i64,
    /// Recipients who clicked at least one of its tracked buttons (each person once,
    /// however often and on however many messages they clicked).
    pub unique_clicks: i64,
    #[serde(with = "time::serde::rfc3339::option")]
    pub created_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub submitted_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl TemplateRecord {
    /// The parsed template, when it has readable components.
    pub fn spec(&self) -> Option<TemplateSpec> {
        self.content
            .as_ref()
            .and_then(|c| TemplateSpec::parse(c).ok())
    }
}

/// Which templates to list.
#[derive(Debug, Clone, Default)]
pub struct TemplateFilter {
    pub status: Option<String>,
    pub category: Option<Category>,
    pub language: Option<String>,
    pub channel: Option<ChannelId>,
}

/// One tracked link's clicks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct LinkClicks {
    pub id: TrackedLinkId,
    pub message_id: Option<MessageId>,
    pub contact_id: Option<ContactId>,
    pub card_index: Option<i32>,
    pub button_index: i32,
    pub destination: String,
    /// Every click on this link (one recipient's link: repeated clicks count each time).
    pub clicks: i64,
    /// When the recipient first clicked: the link counts once among unique clicks.
    #[serde(with = "time::serde::rfc3339::option")]
    pub first_clicked_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_clicked_at: Option<OffsetDateTime>,
}

/// What a provider's list says about one template (for sync).
#[derive(Debug, Clone)]
pub struct SyncedTemplate {
    pub provider_template_id: Option<String>,
    pub name: String,
    pub language: String,
    pub status: String,
    pub category: Option<String>,
    pub quality: Option<String>,
    pub reason: Option<String>,
    /// The components, when they parse as a template Frontdesk can fill.
    pub spec: Option<TemplateSpec>,
}

/// How a sync went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SyncReport {
    /// Templates the provider listed.
    pub listed: usize,
    /// New here.
    pub created: usize,
    /// Known here, brought up to date.
    pub updated: usize,
    /// Listed, but with components Frontdesk cannot fill (status kept; sending refused).
    pub unreadable: usize,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: uuid::Uuid,
    channel_id: Option<uuid::Uuid>,
    waba_id: String,
    name: String,
    language: String,
    category: Option<String>,
    status: String,
    reason: Option<String>,
    quality: Option<String>,
    provider_template_id: Option<String>,
    content: Option<String>,
    clicks: i64,
    unique_clicks: i64,
    created_at: Option<OffsetDateTime>,
    submitted_at: Option<OffsetDateTime>,
    updated_at: OffsetDateTime,
}

macro_rules! template_select {
    () => {
        "SELECT t.id, t.channel_id, t.waba_id, t.name, t.language, t.category, t.status, t.reason, t.quality, t.provider_template_id, t.content,
                CAST(coalesce((SELECT sum(l.clicks) FROM template_links l WHERE l.org_id = t.org_id AND l.template_id = t.id), 0) AS BIGINT) AS clicks,
                CAST((SELECT count(DISTINCT coalesce(l.contact_id, l.message_id, l.id)) FROM template_links l WHERE l.org_id = t.org_id AND l.template_id = t.id AND l.clicks > 0) AS BIGINT) AS unique_clicks,
                t.created_at, t.submitted_at, t.updated_at FROM templates t "
    };
}

fn record(r: Row) -> Result<TemplateRecord, StoreError> {
    let content = match r.content {
        Some(c) => Some(
            serde_json::from_str::<TemplateInput>(&c)
                .map_err(|_| StoreError::Corrupt("template content is not a template".into()))?,
        ),
        None => None,
    };
    Ok(TemplateRecord {
        id: TemplateId::from_uuid(r.id),
        channel_id: r.channel_id.map(ChannelId::from_uuid),
        waba_id: r.waba_id,
        name: r.name,
        language: r.language,
        category: r.category,
        status: r.status,
        reason: r.reason,
        quality: r.quality,
        provider_template_id: r.provider_template_id,
        content,
        clicks: r.clicks,
        unique_clicks: r.unique_clicks,
        created_at: r.created_at,
        submitted_at: r.submitted_at,
        updated_at: r.updated_at,
    })
}

fn unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.is_unique_violation())
}

fn content_json(spec: &TemplateSpec) -> String {
    serde_json::to_string(&spec.to_input()).expect("a template serialises")
}

fn trunc(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

impl TenantTx {
    /// One template of the organisation.
    pub async fn template(&mut self, id: TemplateId) -> Result<TemplateRecord, StoreError> {
        let org = self.ctx().org_id().as_uuid();
        let r: Option<Row> = with_conn!(self.tx, c => {
            sqlx::query_as(concat!(template_select!(), "WHERE t.org_id = $1 AND t.id = $2"))
                .bind(org).bind(id.as_uuid()).fetch_optional(c).await?
        });
        record(r.ok_or(StoreError::NotFound)?)
    }

    /// A business account's template by name and language, if known.
    pub async fn template_named(
        &mut self,
        waba_id: &str,
        name: &str,
        language: &str,
    ) -> Result<Option<TemplateRecord>, StoreError> {
        let org = self.ctx().org_id().as_uuid();
        let r: Option<Row> = with_conn!(self.tx, c => {
            sqlx::query_as(concat!(template_select!(), "WHERE t.org_id = $1 AND t.waba_id = $2 AND t.name = $3 AND t.language = $4"))
                .bind(org).bind(waba_id).bind(name).bind(language).fetch_optional(c).await?
        });
        r.map(record).transpose()
    }

    /// The approved templates of a business account, by name then language (at most 500).
    pub async fn approved_templates_of(
        &mut self,
        waba_id: &str,
    ) -> Result<Vec<TemplateRecord>, StoreError> {
        let org = self.ctx().org_id().as_uuid();
        let rows: Vec<Row> = with_conn!(self.tx, c => {
            sqlx::query_as(concat!(template_select!(), "WHERE t.org_id = $1 AND t.waba_id = $2 AND t.status = 'APPROVED' ORDER BY t.name, t.language LIMIT $3"))
                .bind(org).bind(waba_id).bind(MAX_LIST).fetch_all(c).await?
        });
        rows.into_iter().map(record).collect()
    }

    /// Templates matching the filter, by name then language (at most 500).
    pub async fn templates(
        &mut self,
        f: &TemplateFilter,
    ) -> Result<Vec<TemplateRecord>, StoreError> {
        let org = self.ctx().org_id().as_uuid();
        let rows: Vec<Row> = with_conn!(self.tx, c => {
            sqlx::query_as(concat!(template_select!(),
                "WHERE t.org_id = $1 AND ($2 IS NULL OR t.status = $2) AND ($3 IS NULL OR t.category = $3)
                   AND ($4 IS NULL OR t.language = $4) AND ($5 IS NULL OR t.channel_id = $5)
                 ORDER BY t.name, t.language LIMIT $6"))
                .bind(org).bind(f.status.as_deref()).bind(f.category.map(Category::as_str))
                .bind(f.language.as_deref()).bind(f.channel.map(|c| c.as_uuid())).bind(MAX_LIST)
                .fetch_all(c).await?
        });
        rows.into_iter().map(record).collect()
    }

    /// Stores a new draft for a number's business account.
    pub async fn create_template(
        &mut self,
        channel: ChannelId,
        spec: &TemplateSpec,
    ) -> Result<TemplateRecord, StoreError> {
        let view = self.channel(channel).await?;
        if view.provider != crate::Provider::Cloud {
            return Err(StoreError::Invalid(
                "templates exist on Cloud API numbers only (Whapi has none)".into(),
            ));
        }
        let org = self.ctx().org_id().as_uuid();
        let count: i64 = with_conn!(self.tx, c => {
            sqlx::query_scalar("SELECT count(*) FROM templates WHERE org_id = $1").bind(org).fetch_one(c).await?
        });
        if count >= MAX_TEMPLATES {
            return Err(StoreError::Invalid(format!(
                "at most {MAX_TEMPLATES} templates per organisation; delete some first"
            )));
        }
        // Checked first: on PostgreSQL a failed insert would abort the whole transaction.
        if self
            .template_named(&view.waba_id, spec.name.as_str(), spec.language.as_str())
            .await?
            .is_some()
        {
            return Err(StoreError::Conflict("template_exists"));
        }
        let id = TemplateId::new();
        let now = now_micros();
        let r = with_conn!(self.tx, c => {
            sqlx::query("INSERT INTO templates (org_id, id, waba_id, name, language, category, status, channel_id, content, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, 'DRAFT', $7, $8, $9, $9)")
                .bind(org).bind(id.as_uuid()).bind(&view.waba_id).bind(spec.name.as_str()).bind(spec.language.as_str())
                .bind(spec.category.as_str()).bind(channel.as_uuid()).bind(content_json(spec)).bind(now)
                .execute(c).await.map(drop)
        });
        if let Err(e) = r {
            if unique_violation(&e) {
                return Err(StoreError::Conflict("template_exists"));
            }
            return Err(e.into());
        }
        self.audit(AuditRecord::new(
            "template.created",
            "template",
            id.to_string(),
            serde_json::json!({ "name": spec.name.as_str(), "language": spec.language.as_str(), "channel_id": channel }),
        ))
        .await?;
        self.template(id).await
    }

    /// Records a sample file for a media header (already in the blob store) on a Cloud
    /// number, audited `template.sample_uploaded`. It is a media row like any upload, so
    /// the blob store keeps its bytes and the editor shows it.
    pub async fn insert_template_sample(
        &mut self,
        channel: ChannelId,
        kind: MediaKind,
        file: &crate::UploadedFile,
    ) -> Result<MediaId, StoreError> {
        let view = self.channel(channel).await?;
        if view.provider != crate::Provider::Cloud {
            return Err(StoreError::Invalid(
                "templates exist on Cloud API numbers only (Whapi has none)".into(),
            ));
        }
        let id = self.insert_stored_file(channel, file).await?;
        self.audit(AuditRecord::new(
            "template.sample_uploaded",
            "media",
            id.to_string(),
            serde_json::json!({ "channel_id": channel, "format": kind.as_str(), "mime_type": file.mime_type, "size_bytes": file.size_bytes, "sha256": file.blob_sha256 }),
        ))
        .await?;
        Ok(id)
    }

    /// Where a template's stored samples are wrong, by field: each must be a stored file
    /// of the template's number, of a type its header kind takes.
    pub async fn template_sample_problems(
        &mut self,
        channel: ChannelId,
        spec: &TemplateSpec,
    ) -> Result<Vec<FieldError>, StoreError> {
        let mut out = Vec::new();
        for (field, kind, id) in spec.stored_samples() {
            let row = match self.media(id).await {
                Ok(r) => Some(r),
                Err(StoreError::NotFound) => None,
                Err(e) => return Err(e),
            };
            let (types, _) = sample_rule(kind);
            let message = match row {
                Some(r)
                    if r.channel == channel && r.status == "stored" && r.blob_sha256.is_some() =>
                {
                    if r.mime_type.as_deref().is_some_and(|m| types.contains(&m)) {
                        continue;
                    }
                    format!("a {} sample is {}", kind.as_str(), types.join(" or "))
                }
                _ => "no such sample file on this number: upload it again".to_owned(),
            };
            out.push(FieldError { field, message });
        }
        Ok(out)
    }

    /// Replaces a template's components. Drafts may also change name and language; a
    /// template the provider knows keeps them (Meta identifies it by them). Answers the
    /// status it had, so the caller can resubmit an approved one.
    pub async fn update_template(
        &mut self,
        id: TemplateId,
        spec: &TemplateSpec,
    ) -> Result<(TemplateRecord, String), StoreError> {
        let before = self.template(id).await?;
        if !EDITABLE.contains(&before.status.as_str()) || before.channel_id.is_none() {
            return Err(StoreError::Conflict("template_not_editable"));
        }
        if before.status != "DRAFT"
            && (before.name != spec.name.as_str() || before.language != spec.language.as_str())
        {
            return Err(StoreError::Conflict("template_identity_fixed"));
        }
        if self
            .template_named(&before.waba_id, spec.name.as_str(), spec.language.as_str())
            .await?
            .is_some_and(|other| other.id != id)
        {
            return Err(StoreError::Conflict("template_exists"));
        }
        let org = self.ctx().org_id().as_uuid();
        let r = with_conn!(self.tx, c => {
            sqlx::query("UPDATE templates SET name = $3, language = $4, category = $5, content = $6, updated_at = $7 WHERE org_id = $1 AND id = $2")
                .bind(org).bind(id.as_uuid()).bind(spec.name.as_str()).bind(spec.language.as_str())
                .bind(spec.category.as_str()).bind(content_json(spec)).bind(now_micros())
                .execute(c).await.map(drop)
        });
        if let Err(e) = r {
            if unique_violation(&e) {
                return Err(StoreError::Conflict("template_exists"));
            }
            return Err(e.into());
        }
        self.audit(AuditRecord::new(
            "template.updated",
            "template",
            id.to_string(),
            serde_json::json!({ "name": spec.name.as_str(), "language": spec.language.as_str(), "status": before.status }),
        ))
        .await?;
        Ok((self.template(id).await?, before.status))
    }

    /// Deletes a template here (its tracked links go with it; sent messages stay).
    pub async fn delete_template(&mut self, id: TemplateId) -> Result<(), StoreError> {
        let t = self.template(id).await?;
        let org = self.ctx().org_id().as_uuid();
        with_conn!(self.tx, c => {
            sqlx::query("DELETE FROM templates WHERE org_id = $1 AND id = $2")
                .bind(org).bind(id.as_uuid()).execute(c).await?;
        });
        self.audit(AuditRecord::new(
            "template.deleted",
            "template",
            id.to_string(),
            serde_json::json!({ "name": t.name, "language": t.language, "status": t.status }),
        ))
        .await?;
        Ok(())
    }

    /// Marks a template as submitted (`PENDING`) before the provider is called, so a
    /// review webhook that arrives before the provider's answer is not overwritten.
    /// Answers the status it had.
    pub async fn mark_template_submitted(&mut self, id: TemplateId) -> Result<String, StoreError> {
        let t = self.template(id).await?;
        if !EDITABLE.contains(&t.status.as_str()) || t.content.is_none() || t.channel_id.is_none() {
            return Err(StoreError::Conflict("template_not_submittable"));
        }
        let org = self.ctx().org_id().as_uuid();
        let now = now_micros();
        with_conn!(self.tx, c => {
            sqlx::query("UPDATE templates SET status = 'PENDING', reason = NULL, submitted_at = $3, updated_at = $3 WHERE org_id = $1 AND id = $2")
                .bind(org).bind(id.as_uuid()).bind(now).execute(c).await?;
        });
        self.audit(AuditRecord::new(
            "template.submitted",
            "template",
            id.to_string(),
            serde_json::json!({ "name": t.name, "language": t.language, "previous_status": t.status }),
        ))
        .await?;
        Ok(t.status)
    }

    /// Records the provider's answer to a submission: its id, or the refusal (the status
    /// goes back to what it was, unless a webhook moved it meanwhile).
    pub async fn finish_template_submission(
        &mut self,
        id: TemplateId,
        provider_template_id: Option<&str>,
        refused: Option<(&str, &str)>,
    ) -> Result<(), StoreError> {
        let org = self.ctx().org_id().as_uuid();
        let now = now_micros();
        match refused {
            None => with_conn!(self.tx, c => {
                sqlx::query("UPDATE templates SET provider_template_id = coalesce($3, provider_template_id), updated_at = $4 WHERE org_id = $1 AND id = $2")
                    .bind(org).bind(id.as_uuid()).bind(provider_template_id.map(|s| trunc(s, 64))).bind(now).execute(c).await?;
            }),
            Some((previous, reason)) => with_conn!(self.tx, c => {
                sqlx::query("UPDATE templates SET status = $3, reason = $4, updated_at = $5 WHERE org_id = $1 AND id = $2 AND status = 'PENDING'")
                    .bind(org).bind(id.as_uuid()).bind(previous).bind(trunc(reason, 500)).bind(now).execute(c).await?;
            }),
        }
        Ok(())
    }

    /// The provider rated a template's quality (`message_template_quality_update`).
    pub async fn set_template_quality(
        &mut self,
        waba_id: &str,
        provider_template_id: &str,
        quality: &str,
    ) -> Result<bool, StoreError> {
        const SQL: &str = "UPDATE templates SET quality = $4, updated_at = $5 WHERE org_id = $1 AND waba_id = $2 AND provider_template_id = $3";
        self.set_provider_fact(SQL, waba_id, provider_template_id, trunc(quality, 20))
            .await
    }

    /// The provider moved a template to another category (`template_category_update`).
    pub async fn set_template_category(
        &mut self,
        waba_id: &str,
        provider_template_id: &str,
        category: &str,
    ) -> Result<bool, StoreError> {
        const SQL: &str = "UPDATE templates SET category = $4, updated_at = $5 WHERE org_id = $1 AND waba_id = $2 AND provider_template_id = $3";
        self.set_provider_fact(SQL, waba_id, provider_template_id, trunc(category, 40))
            .await
    }

    /// Runs one of the updates above (`$4` the new value); whether a template matched.
    async fn set_provider_fact(
        &mut self,
        sql: &'static str,
        waba_id: &str,
        provider_template_id: &str,
        value: String,
    ) -> Result<bool, StoreError> {
        let org = self.ctx().org_id().as_uuid();
        let n = with_conn!(self.tx, c => {
            sqlx::query(sql)
                .bind(org).bind(waba_id).bind(provider_template_id).bind(value).bind(now_micros())
                .execute(c).await?.rows_affected()
        });
        Ok(n > 0)
    }

    /// Brings the templates of a number's business account up to date with the provider's
    /// list: new ones are added, known ones take the provider's status, category, quality
    /// and (unless still a draft here) components.
    pub async fn sync_templates(
        &mut self,
        channel: ChannelId,
        listed: &[SyncedTemplate],
    ) -> Result<SyncReport, StoreError> {
        let view = self.channel(channel).await?;
        let org = self.ctx().org_id().as_uuid();
        let mut report = SyncReport {
            listed: listed.len(),
            ..Default::default()
        };
        let now = now_micros();
        for t in listed {
            if frontdesk_domain::template::TemplateName::parse(&t.name).is_err()
                || t.language.is_empty()
                || t.language.len() > 20
            {
                report.unreadable += 1;
                continue;
            }
            if t.spec.is_none() {
                report.unreadable += 1;
            }
            let content = t.spec.as_ref().map(content_json);
            let existing = self
                .template_named(&view.waba_id, &t.name, &t.language)
                .await?;
            match existing {
                Some(e) if e.status == "DRAFT" && e.provider_template_id.is_none() => {
                    // A draft written here that the provider also has under this name: the
                    // provider's copy wins, it is what sends will use.
                    with_conn!(self.tx, c => {
                        sqlx::query("UPDATE templates SET status = $3, category = coalesce($4, category), quality = $5, reason = $6, provider_template_id = $7, content = coalesce($8, content), updated_at = $9 WHERE org_id = $1 AND id = $2")
                            .bind(org).bind(e.id.as_uuid()).bind(trunc(&t.status, 40)).bind(t.category.as_deref()).bind(t.quality.as_deref())
                            .bind(t.reason.as_deref().map(|r| trunc(r, 500))).bind(t.provider_template_id.as_deref()).bind(content).bind(now)
                            .execute(c).await?;
                    });
                    report.updated += 1;
                }
                Some(e) => {
                    with_conn!(self.tx, c => {
                        sqlx::query("UPDATE templates SET status = $3, category = coalesce($4, category), quality = coalesce($5, quality), reason = $6, provider_template_id = coalesce($7, provider_template_id), content = coalesce($8, content), channel_id = coalesce(channel_id, $9), updated_at = $10 WHERE org_id = $1 AND id = $2")
                            .bind(org).bind(e.id.as_uuid()).bind(trunc(&t.status, 40)).bind(t.category.as_deref()).bind(t.quality.as_deref())
                            .bind(t.reason.as_deref().map(|r| trunc(r, 500))).bind(t.provider_template_id.as_deref()).bind(content).bind(channel.as_uuid()).bind(now)
                            .execute(c).await?;
                    });
                    report.updated += 1;
                }
                None => {
                    with_conn!(self.tx, c => {
                        sqlx::query("INSERT INTO templates (org_id, id, waba_id, name, language, category, provider_template_id, status, reason, quality, channel_id, content, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13)")
                            .bind(org).bind(uuid::Uuid::now_v7()).bind(&view.waba_id).bind(&t.name).bind(trunc(&t.language, 20))
                            .bind(t.category.as_deref()).bind(t.provider_template_id.as_deref()).bind(trunc(&t.status, 40))
                            .bind(t.reason.as_deref().map(|r| trunc(r, 500))).bind(t.quality.as_deref()).bind(channel.as_uuid()).bind(content).bind(now)
                            .execute(c).await?;
                    });
                    report.created += 1;
                }
            }
        }
        self.audit(AuditRecord::new(
            "template.synced",
            "channel",
            channel.to_string(),
            serde_json::to_value(report).expect("a report serialises"),
        ))
        .await?;
        Ok(report)
    }

    /// Stores the tracked links of one queued message (codes are hashed here).
    pub async fn create_tracked_links(
        &mut self,
        template: TemplateId,
        message: MessageId,
        contact: ContactId,
        links: &[TrackedLink],
    ) -> Result<(), StoreError> {
        let org = self.ctx().org_id().as_uuid();
        let now = now_micros();
        for l in links {
            let hash = token_hash(&l.code);
            with_conn!(self.tx, c => {
                sqlx::query("INSERT INTO template_links (org_id, id, template_id, message_id, contact_id, card_index, button_index, code_hash, destination, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)")
                    .bind(org).bind(uuid::Uuid::now_v7()).bind(template.as_uuid()).bind(message.as_uuid()).bind(contact.as_uuid())
                    .bind(l.card.map(|c| c as i32)).bind(l.button as i32).bind(&hash[..]).bind(&l.destination).bind(now)
                    .execute(c).await?;
            });
        }
        Ok(())
    }

    /// The tracked links of a template (or of one message), most clicked first.
    pub async fn link_clicks(
        &mut self,
        template: Option<TemplateId>,
        message: Option<MessageId>,
    ) -> Result<Vec<LinkClicks>, StoreError> {
        let org = self.ctx().org_id().as_uuid();
        type R = (
            uuid::Uuid,
            Option<uuid::Uuid>,
            Option<uuid::Uuid>,
            Option<i32>,
            i32,
            String,
            i64,
            Option<OffsetDateTime>,
            Option<OffsetDateTime>,
        );
        let rows: Vec<R> = with_conn!(self.tx, c => {
            sqlx::query_as("SELECT id, message_id, contact_id, card_index, button_index, destination, CAST(clicks AS BIGINT), first_clicked_at, last_clicked_at FROM template_links
                            WHERE org_id = $1 AND ($2 IS NULL OR template_id = $2) AND ($3 IS NULL OR message_id = $3)
                            ORDER BY clicks DESC, created_at DESC LIMIT 500")
                .bind(org).bind(template.map(|t| t.as_uuid())).bind(message.map(|m| m.as_uuid())).fetch_all(c).await?
        });
        Ok(rows
            .into_iter()
            .map(|r| LinkClicks {
                id: TrackedLinkId::from_uuid(r.0),
                message_id: r.1.map(MessageId::from_uuid),
                contact_id: r.2.map(ContactId::from_uuid),
                card_index: r.3,
                button_index: r.4,
                destination: r.5,
                clicks: r.6,
                first_clicked_at: r.7,
                last_clicked_at: r.8,
            })
            .collect())
    }
}

/// Why a template send was refused before anything was queued.
#[derive(Debug, thiserror::Error)]
pub enum TemplateRefusal {
    /// Not approved here (or not known here at all).
    #[error("{0}")]
    NotApproved(String),
    /// The values do not fit the stored template.
    #[error("{0}")]
    InvalidFill(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A template send checked and filled: what to store with the queued message.
#[derive(Debug, Clone)]
pub struct PreparedTemplate {
    pub template: TemplateId,
    /// The text a phone shows (the message's preview).
    pub text: String,
    /// Tracked links to store once the message has its id ([`TenantTx::create_tracked_links`]).
    pub links: Vec<TrackedLink>,
}

/// An approved template, read and parsed once: a campaign fills it for every recipient of a
/// batch without reading it again.
#[derive(Debug, Clone)]
pub struct ApprovedTemplate {
    pub id: TemplateId,
    /// The parsed components; `None` when the provider's could not be read.
    pub spec: Option<TemplateSpec>,
}

impl ApprovedTemplate {
    /// Fills the template's variables into `components` when values are given (or none are
    /// needed). Answers what to store with the message when it filled; `None` when the
    /// caller's own `components` go out as given (nothing is checked then).
    pub fn prepare(
        &self,
        components: &mut Vec<serde_json::Value>,
        fill: Option<FillInput>,
    ) -> Result<Option<PreparedTemplate>, TemplateRefusal> {
        match (&self.spec, fill, components.is_empty()) {
            (_, Some(_), false) => Err(TemplateRefusal::InvalidFill(
                "give either `fill` or the message's `components`, not both".into(),
            )),
            (None, Some(_), _) => Err(TemplateRefusal::InvalidFill(
                "this template's components are not known here (sync the number's templates), so pass `components`".into(),
            )),
            (Some(spec), fill, true) => {
                let filled = spec
                    .fill(&fill.unwrap_or_default(), new_link_code)
                    .map_err(|e| TemplateRefusal::InvalidFill(e.to_string()))?;
                *components = filled.components;
                Ok(Some(PreparedTemplate {
                    template: self.id,
                    text: filled.text,
                    links: filled.links,
                }))
            }
            // Components written by the caller go out as given.
            _ => Ok(None),
        }
    }
}

impl TenantTx {
    /// The template if it is approved here; unknown ones are refused too (submit or sync
    /// them first).
    pub async fn approved_template(
        &mut self,
        waba_id: &str,
        name: &str,
        language: &str,
    ) -> Result<ApprovedTemplate, TemplateRefusal> {
        match self.template_named(waba_id, name, language).await? {
            Some(t) if t.status == "APPROVED" => Ok(ApprovedTemplate {
                id: t.id,
                spec: t.spec(),
            }),
            Some(t) => Err(TemplateRefusal::NotApproved(format!(
                "template {name} ({language}) is {}, not approved",
                t.status
            ))),
            None => Err(TemplateRefusal::NotApproved(format!(
                "template {name} ({language}) is not known here: submit it for review, or sync the number's templates"
            ))),
        }
    }

    /// Refuses a template that is not approved here and fills it
    /// ([`ApprovedTemplate::prepare`]). The API and the inbox send templates through this;
    /// campaigns read the template once per batch and fill it per recipient.
    pub async fn prepare_template_send(
        &mut self,
        waba_id: &str,
        name: &str,
        language: &str,
        components: &mut Vec<serde_json::Value>,
        fill: Option<FillInput>,
    ) -> Result<Option<PreparedTemplate>, TemplateRefusal> {
        self.approved_template(waba_id, name, language)
            .await?
            .prepare(components, fill)
    }
}

/// A fresh tracked-link code: 128 random bits behind the prefix (`fdl_…`, 26 characters).
pub fn new_link_code() -> String {
    format!("{LINK_CODE_PREFIX}_{}", crate::tokens::random_urlsafe(16))
}

impl Store {
    /// Counts a click on a tracked link and answers where it leads; `None` for a code no
    /// link has. Only the code's hash is compared, in token scope, and the destination is
    /// the one stored with the link (never anything from the request).
    pub async fn follow_tracked_link(&self, code: &str) -> Result<Option<String>, StoreError> {
        if !code.starts_with(LINK_CODE_PREFIX) || code.len() > 64 {
            return Ok(None);
        }
        let hash = token_hash(code);
        let mut g = self.begin_global(true).await?;
        g.scope(Scope::Token(&hash)).await?;
        let found: Option<(uuid::Uuid, uuid::Uuid, String)> = with_conn!(g.tx, c => {
            sqlx::query_as("SELECT org_id, id, destination FROM template_links WHERE code_hash = $1")
                .bind(&hash[..]).fetch_optional(c).await?
        });
        let Some((org, id, destination)) = found else {
            g.commit().await?;
            return Ok(None);
        };
        let ctx = TenantCtx::system(OrgId::from_uuid(org), "tracked_link");
        let mut tx = g.into_tenant(ctx).await?;
        let now = now_micros();
        with_conn!(tx.tx, c => {
            sqlx::query("UPDATE template_links SET clicks = clicks + 1, first_clicked_at = coalesce(first_clicked_at, $3), last_clicked_at = $3 WHERE org_id = $1 AND id = $2")
                .bind(org).bind(id).bind(now).execute(c).await?;
        });
        tx.commit().await?;
        Ok(Some(destination))
    }
}
