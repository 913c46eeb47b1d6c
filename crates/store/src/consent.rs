//! The marketing consent ledger: opt-in and opt-out events with their source and evidence,
//! appended and never changed (a trigger refuses updates on both backends; PostgreSQL's
//! application role may only read and insert). A contact's current state is its latest
//! event; no event means unknown. The organisation's keywords ("STOP", "START", and its
//! own) and the confirmations sent back live in `audience_settings`.

use crate::StoreError;
use crate::audit::AuditRecord;
use crate::orgs::now_micros;
use crate::tenant::{TenantTx, with_conn};
use frontdesk_domain::audience::{
    ConsentSource, ConsentState, normalise_keyword, parse_keyword, parse_text,
};
use frontdesk_domain::{ConsentEventId, ContactId};
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

/// Most keywords of each kind.
pub const MAX_KEYWORDS: usize = 20;

/// One ledger event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ConsentEvent {
    pub id: ConsentEventId,
    pub state: ConsentState,
    pub source: ConsentSource,
    /// What shows the customer's choice (the message, the form, the call).
    pub evidence: String,
    /// Who recorded it (`user:<id>`, `api_key:<id>`, `system:worker`).
    pub actor: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// A contact's consent: the current state (none: unknown) and the ledger, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ConsentView {
    pub state: Option<ConsentState>,
    pub events: Vec<ConsentEvent>,
}

/// The organisation's consent keywords and confirmations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct AudienceSettings {
    /// Whole-message keywords that opt a customer out (case and spacing do not matter).
    pub opt_out_keywords: Vec<String>,
    /// Whole-message keywords that opt a customer back in.
    pub opt_in_keywords: Vec<String>,
    /// Sent back when a keyword opts the customer out.
    pub opt_out_reply: String,
    /// Sent back when a keyword opts the customer in.
    pub opt_in_reply: String,
}

impl Default for AudienceSettings {
    fn default() -> Self {
        Self {
            opt_out_keywords: vec!["STOP".into()],
            opt_in_keywords: vec!["START".into()],
            opt_out_reply:
                "You will no longer receive marketing messages from us. Reply START to subscribe again."
                    .into(),
            opt_in_reply: "You are subscribed to our updates again. Reply STOP to unsubscribe."
                .into(),
        }
    }
}

impl AudienceSettings {
    /// Normalises keywords and checks sizes; a keyword may not be both opt-out and opt-in.
    pub fn checked(self) -> Result<Self, StoreError> {
        let kw = |list: &[String], what: &str| -> Result<Vec<String>, StoreError> {
            if list.len() > MAX_KEYWORDS {
                return Err(StoreError::Invalid(format!(
                    "{what}: at most {MAX_KEYWORDS} keywords"
                )));
            }
            let mut out: Vec<String> = Vec::new();
            for k in list {
                let k =
                    parse_keyword(k).map_err(|m| StoreError::Invalid(format!("{what}: {m}")))?;
                if !out.contains(&k) {
                    out.push(k);
                }
            }
            Ok(out)
        };
        let out_kw = kw(&self.opt_out_keywords, "opt_out_keywords")?;
        let in_kw = kw(&self.opt_in_keywords, "opt_in_keywords")?;
        if out_kw.is_empty() {
            return Err(StoreError::Invalid(
                "opt_out_keywords: customers need at least one way to opt out".into(),
            ));
        }
        if let Some(k) = out_kw.iter().find(|k| in_kw.contains(k)) {
            return Err(StoreError::Invalid(format!(
                "{k:?} cannot both opt out and opt in"
            )));
        }
        let reply = |s: &str, what: &str| -> Result<String, StoreError> {
            match parse_text(s, 1000) {
                Ok(Some(t)) => Ok(t),
                _ => Err(StoreError::Invalid(format!("{what}: 1 to 1000 characters"))),
            }
        };
        Ok(Self {
            opt_out_reply: reply(&self.opt_out_reply, "opt_out_reply")?,
            opt_in_reply: reply(&self.opt_in_reply, "opt_in_reply")?,
            opt_out_keywords: out_kw,
            opt_in_keywords: in_kw,
        })
    }
}

type EventRow = (Uuid, String, String, String, String, OffsetDateTime);

fn event(r: EventRow) -> Result<ConsentEvent, StoreError> {
    Ok(ConsentEvent {
        id: ConsentEventId::from_uuid(r.0),
        state: ConsentState::parse(&r.1)
            .ok_or_else(|| StoreError::Corrupt(format!("consent state {:?}", r.1)))?,
        source: ConsentSource::parse(&r.2)
            .ok_or_else(|| StoreError::Corrupt(format!("consent source {:?}", r.2)))?,
        evidence: r.3,
        actor: r.4,
        created_at: r.5,
    })
}

impl TenantTx {
    /// Appends an event to a contact's ledger (audited, without the evidence text).
    pub async fn record_consent(
        &mut self,
        contact: ContactId,
        state: ConsentState,
        source: ConsentSource,
        evidence: &str,
    ) -> Result<ConsentEvent, StoreError> {
        let evidence = parse_text(evidence, 1000)
            .map_err(|m| StoreError::Invalid(format!("evidence: {m}")))?
            .unwrap_or_default();
        self.contact(contact).await?;
        let org = self.org();
        let id = ConsentEventId::new();
        let actor = {
            let a = self.ctx().actor();
            format!("{}:{}", a.kind(), a.id_text())
        };
        let now = now_micros();
        with_conn!(self.tx, c => {
            sqlx::query("INSERT INTO consent_events (org_id, contact_id, id, state, source, evidence, actor, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
                .bind(org).bind(contact.as_uuid()).bind(id.as_uuid()).bind(state.as_str()).bind(source.as_str())
                .bind(&evidence).bind(&actor).bind(now)
                .execute(c).await?;
        });
        self.audit(AuditRecord::new(
            match state {
                ConsentState::OptIn => "consent.opt_in",
                ConsentState::OptOut => "consent.opt_out",
            },
            "contact",
            contact.to_string(),
            serde_json::json!({ "source": source.as_str(), "event_id": id }),
        ))
        .await?;
        Ok(ConsentEvent {
            id,
            state,
            source,
            evidence,
            actor,
            created_at: now,
        })
    }

    /// A contact's current state and ledger (newest first, at most 200 events).
    pub async fn consent(&mut self, contact: ContactId) -> Result<ConsentView, StoreError> {
        self.contact(contact).await?;
        let org = self.org();
        let rows: Vec<EventRow> = with_conn!(self.tx, c => {
            sqlx::query_as("SELECT id, state, source, evidence, actor, created_at FROM consent_events WHERE org_id = $1 AND contact_id = $2 ORDER BY created_at DESC, id DESC LIMIT 200")
                .bind(org).bind(contact.as_uuid()).fetch_all(c).await?
        });
        let events = rows.into_iter().map(event).collect::<Result<Vec<_>, _>>()?;
        Ok(ConsentView {
            state: events.first().map(|e| e.state),
            events,
        })
    }

    /// The organisation's keywords and confirmations (defaults until changed).
    pub async fn audience_settings(&mut self) -> Result<AudienceSettings, StoreError> {
        let org = self.org();
        let row: Option<(String, String, String, String)> = with_conn!(self.tx, c => {
            sqlx::query_as("SELECT opt_out_keywords, opt_in_keywords, opt_out_reply, opt_in_reply FROM audience_settings WHERE org_id = $1")
                .bind(org).fetch_optional(c).await?
        });
        let Some((out_kw, in_kw, out_reply, in_reply)) = row else {
            return Ok(AudienceSettings::default());
        };
        let list = |s: &str| -> Result<Vec<String>, StoreError> {
            serde_json::from_str(s)
                .map_err(|_| StoreError::Corrupt("consent keywords are not a JSON list".into()))
        };
        Ok(AudienceSettings {
            opt_out_keywords: list(&out_kw)?,
            opt_in_keywords: list(&in_kw)?,
            opt_out_reply: out_reply,
            opt_in_reply: in_reply,
        })
    }

    /// Replaces the organisation's keywords and confirmations (audited).
    pub async fn set_audience_settings(
        &mut self,
        s: AudienceSettings,
    ) -> Result<AudienceSettings, StoreError> {
        let s = s.checked()?;
        let org = self.org();
        let out_kw = serde_json::to_string(&s.opt_out_keywords).expect("strings serialise");
        let in_kw = serde_json::to_string(&s.opt_in_keywords).expect("strings serialise");
        with_conn!(self.tx, c => {
            sqlx::query("INSERT INTO audience_settings (org_id, opt_out_keywords, opt_in_keywords, opt_out_reply, opt_in_reply, updated_at) VALUES ($1, $2, $3, $4, $5, $6) \
                         ON CONFLICT (org_id) DO UPDATE SET opt_out_keywords = excluded.opt_out_keywords, opt_in_keywords = excluded.opt_in_keywords, opt_out_reply = excluded.opt_out_reply, opt_in_reply = excluded.opt_in_reply, updated_at = excluded.updated_at")
                .bind(org).bind(&out_kw).bind(&in_kw).bind(&s.opt_out_reply).bind(&s.opt_in_reply).bind(now_micros())
                .execute(c).await?;
        });
        self.audit(AuditRecord::new(
            "audience.settings_changed",
            "organisation",
            org.to_string(),
            serde_json::json!({ "opt_out_keywords": s.opt_out_keywords, "opt_in_keywords": s.opt_in_keywords }),
        ))
        .await?;
        Ok(s)
    }

    /// Whether a customer's whole message is a consent keyword here, and which way.
    pub async fn consent_keyword(
        &mut self,
        text: &str,
    ) -> Result<Option<ConsentState>, StoreError> {
        // Keywords are short; anything long is a conversation, not a keyword.
        if text.chars().count() > 40 {
            return Ok(None);
        }
        let k = normalise_keyword(text);
        let s = self.audience_settings().await?;
        Ok(if s.opt_out_keywords.contains(&k) {
            Some(ConsentState::OptOut)
        } else if s.opt_in_keywords.contains(&k) {
            Some(ConsentState::OptIn)
        } else {
            None
        })
    }

    /// Merging contacts: the kept contact takes the other's consent ledger, tags and the
    /// field values it lacks, before the other is deleted.
    pub(crate) async fn carry_audience(
        &mut self,
        from: ContactId,
        to: ContactId,
    ) -> Result<(), StoreError> {
        let org = self.org();
        with_conn!(self.tx, c => {
            sqlx::query("INSERT INTO consent_events (org_id, contact_id, id, state, source, evidence, actor, created_at) SELECT org_id, $3, id, state, source, evidence, actor, created_at FROM consent_events WHERE org_id = $1 AND contact_id = $2")
                .bind(org).bind(from.as_uuid()).bind(to.as_uuid()).execute(&mut *c).await?;
            sqlx::query("INSERT INTO contact_tags (org_id, contact_id, tag_id, created_at) SELECT org_id, $3, tag_id, created_at FROM contact_tags WHERE org_id = $1 AND contact_id = $2 ON CONFLICT DO NOTHING")
                .bind(org).bind(from.as_uuid()).bind(to.as_uuid()).execute(&mut *c).await?;
            sqlx::query("INSERT INTO contact_field_values (org_id, contact_id, field_id, value_text, value_number, updated_at) SELECT org_id, $3, field_id, value_text, value_number, updated_at FROM contact_field_values WHERE org_id = $1 AND contact_id = $2 ON CONFLICT DO NOTHING")
                .bind(org).bind(from.as_uuid()).bind(to.as_uuid()).execute(&mut *c).await?;
        });
        Ok(())
    }
}
