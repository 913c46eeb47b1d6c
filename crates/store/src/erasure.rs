//! Erasure on request. A request is recorded (`erasure_requests`: who asked, when, due by =
//! asked + the organisation's window) and executed at once (the default) or after the
//! organisation's delay, which leaves time to cancel it; the worker executes the due ones.
//! Every step is audited.
//!
//! Executing erases, in one transaction: the contact row stays as a tombstone so
//! conversations and messages stay linked and counted (values cleared, user id replaced by
//! `erased.<contact id>` because a contact needs a number or a user id; custom field values
//! and tags removed); its messages keep a tombstone (`{"erased": true}`, preview
//! `[erased]`); notes on its conversations are replaced; its media rows lose file name,
//! provider id and bytes reference; the raw webhook bodies that name it lose every part
//! that does (its messages, statuses and profile); sends still queued to it are dropped;
//! queue tokens lose a walk-in name. The media bytes themselves go with the blob store's
//! garbage collector (the worker's), which sees every organisation through
//! [`crate::Store::blobs_in_use`], because a blob may be shared.
//!
//! Kept on purpose: the consent ledger (append-only; the proof that someone opted out) and
//! the audit log (which never holds personal data).

use crate::StoreError;
use crate::audience::FieldProblem;
use crate::audit::AuditRecord;
use crate::orgs::now_micros;
use crate::tenant::{
    ROWS_PER_STATEMENT, TenantCtx, TenantTx, Tx, push_in, with_builder, with_conn,
};
use frontdesk_domain::{ContactId, ErasureRequestId};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashSet;
use time::OffsetDateTime;
use uuid::Uuid;

/// What an erasure removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErasureReport {
    pub contact_id: ContactId,
    pub messages: i64,
    pub media: i64,
    pub notes: i64,
    /// Raw webhook bodies that named the contact and were redacted.
    #[serde(default)]
    pub webhook_bodies: i64,
    /// Sends and downloads still queued for the contact, dropped.
    #[serde(default)]
    pub outbox: i64,
    /// The blobs (SHA-256) the contact's media pointed at: the garbage collector deletes
    /// each one no organisation still references. Not shown.
    #[serde(skip)]
    #[schema(ignore)]
    pub blobs: Vec<String>,
}

/// How long an organisation has to carry out an erasure request, and how long it waits
/// before doing so (0: at once).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErasureSettings {
    /// A request is due by this many days after it was made (1–90; default 30).
    pub window_days: i32,
    /// Hours a request waits (and can be cancelled) before it is executed; 0 executes at
    /// once (the default). At most the window.
    pub delay_hours: i32,
}

impl Default for ErasureSettings {
    fn default() -> Self {
        Self {
            window_days: 30,
            delay_hours: 0,
        }
    }
}

impl ErasureSettings {
    /// Every problem at once, by field.
    pub fn check(&self) -> Result<(), StoreError> {
        let mut problems = Vec::new();
        if !(1..=90).contains(&self.window_days) {
            problems.push(FieldProblem::new(
                "window_days",
                "the window is 1 to 90 days",
            ));
        }
        if self.delay_hours < 0 {
            problems.push(FieldProblem::new(
                "delay_hours",
                "the delay cannot be negative",
            ));
        } else if (1..=90).contains(&self.window_days) && self.delay_hours > self.window_days * 24 {
            problems.push(FieldProblem::new(
                "delay_hours",
                "the delay must end within the window",
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(StoreError::InvalidFields(problems))
        }
    }
}

/// A recorded erasure request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ErasureRequest {
    pub id: ErasureRequestId,
    pub contact_id: ContactId,
    /// `user:<id>`, `api_key:<id>` or `system:<component>`.
    pub requested_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub requested_at: OffsetDateTime,
    /// When it is (or was to be) executed.
    #[serde(with = "time::serde::rfc3339")]
    pub execute_at: OffsetDateTime,
    /// The end of the organisation's window.
    #[serde(with = "time::serde::rfc3339")]
    pub due_by: OffsetDateTime,
    /// `pending`, `done` or `cancelled`.
    pub state: String,
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
    pub cancelled_by: Option<String>,
    /// What was erased (when done).
    pub report: Option<ErasureReport>,
}

type RequestRow = (
    Uuid,
    Uuid,
    String,
    OffsetDateTime,
    OffsetDateTime,
    OffsetDateTime,
    String,
    Option<OffsetDateTime>,
    Option<String>,
    Option<String>,
);

fn request(r: RequestRow) -> Result<ErasureRequest, StoreError> {
    let report = match r.9 {
        Some(s) => Some(
            serde_json::from_str(&s)
                .map_err(|_| StoreError::Corrupt("an erasure report is not JSON".into()))?,
        ),
        None => None,
    };
    Ok(ErasureRequest {
        id: ErasureRequestId::from_uuid(r.0),
        contact_id: ContactId::from_uuid(r.1),
        requested_by: r.2,
        requested_at: r.3,
        execute_at: r.4,
        due_by: r.5,
        state: r.6,
        finished_at: r.7,
        cancelled_by: r.8,
        report,
    })
}

/// Keys whose value says which customer a webhook list element (a message, a status, a
/// profile) belongs to: Cloud's `from`, `wa_id`, `recipient_id` and their user-id twins,
/// Whapi's `chat_id`.
const OWNER_KEYS: [&str; 7] = [
    "from",
    "from_user_id",
    "wa_id",
    "user_id",
    "recipient_id",
    "recipient_user_id",
    "chat_id",
];
/// Owner keys that name a person (not a group chat): an element a contact owns links the
/// other identifiers it carries to the contact, for the rest of that body.
const PERSON_KEYS: [&str; 7] = [
    "from",
    "from_user_id",
    "wa_id",
    "user_id",
    "recipient_id",
    "recipient_user_id",
    "parent_user_id",
];
/// The lists of Meta's webhook envelope: a batch's entries and changes are never removed
/// as a whole, only cleaned.
const ENVELOPE_KEYS: [&str; 2] = ["entry", "changes"];
/// Keys holding a person's name beside an identifier (a flow answer, a contact card).
const NAME_KEYS: [&str; 6] = [
    "name",
    "formatted_name",
    "first_name",
    "last_name",
    "middle_name",
    "from_name",
];

/// The digits of a string that is a phone number and nothing else (`+91 98765-43210`,
/// `919876543210`, `(415) 555-0100`), 7 to 15 of them; `None` for anything else (a text
/// that contains a number is not a number).
fn phone_digits(s: &str) -> Option<String> {
    let s = s.trim();
    if s.is_empty()
        || !s
            .chars()
            .all(|c| c.is_ascii_digit() || " +-().".contains(c))
    {
        return None;
    }
    let digits: String = s.chars().filter(char::is_ascii_digit).collect();
    (7..=15).contains(&digits.len()).then_some(digits)
}

/// What a raw webhook body names a contact by. Identifiers are compared as what they are,
/// not as strings: a number with or without `+`, spaces or dashes, a WhatsApp-Web id
/// (`…@s.whatsapp.net`, `…@lid`), a user id, a username in any case.
#[derive(Clone)]
struct Needles {
    /// Number digits, without `+` or separators.
    phones: HashSet<String>,
    /// Business-scoped user ids (and parent ids), compared exactly.
    user_ids: HashSet<String>,
    /// Usernames, lower-cased.
    usernames: HashSet<String>,
    /// The contact's messages' provider ids (statuses name them).
    message_ids: HashSet<String>,
}

impl Needles {
    fn new(
        phones: impl IntoIterator<Item = String>,
        user_ids: impl IntoIterator<Item = String>,
        usernames: impl IntoIterator<Item = String>,
        message_ids: impl IntoIterator<Item = String>,
    ) -> Self {
        Self {
            phones: phones
                .into_iter()
                .filter_map(|p| phone_digits(&p))
                .collect(),
            user_ids: user_ids.into_iter().filter(|u| !u.is_empty()).collect(),
            usernames: usernames
                .into_iter()
                .map(|u| u.trim().trim_start_matches('@').to_lowercase())
                .filter(|u| !u.is_empty())
                .collect(),
            message_ids: message_ids.into_iter().collect(),
        }
    }

    /// The byte strings a body that names the contact must contain (to find candidates
    /// without reading every body): the number's digits, user ids and usernames.
    fn search_terms(&self) -> Vec<Vec<u8>> {
        self.phones
            .iter()
            .chain(&self.user_ids)
            .chain(&self.usernames)
            .map(|s| s.as_bytes().to_vec())
            .collect()
    }

    /// Whether the whole string `s` is one of the contact's identifiers.
    fn names(&self, s: &str) -> bool {
        if self.message_ids.contains(s) {
            return true;
        }
        // A WhatsApp-Web id: the part before `@` is the number or the user id.
        let base = s.split('@').next().unwrap_or_default().trim();
        if let Some(d) = phone_digits(base) {
            return self.phones.contains(&d);
        }
        self.user_ids.contains(base)
            || (!base.is_empty() && self.usernames.contains(&base.to_lowercase()))
    }

    /// Whether a list element (a message, a status, a profile) is the contact's: one of
    /// its owner keys names the contact, or it is one of the contact's messages.
    fn owns(&self, el: &Value) -> bool {
        let Value::Object(map) = el else {
            return false;
        };
        OWNER_KEYS
            .iter()
            .filter_map(|k| map.get(*k).and_then(Value::as_str))
            .any(|s| self.names(s))
            || map
                .get("id")
                .and_then(Value::as_str)
                .is_some_and(|id| self.message_ids.contains(id))
            || map
                .get("profile")
                .and_then(|p| p.get("username"))
                .and_then(Value::as_str)
                .is_some_and(|u| self.names(u))
    }

    /// Whether any string inside `v` names the contact.
    fn mentioned_in(&self, v: &Value) -> bool {
        match v {
            Value::String(s) => self.names(s),
            Value::Array(items) => items.iter().any(|i| self.mentioned_in(i)),
            Value::Object(map) => map.values().any(|x| self.mentioned_in(x)),
            _ => false,
        }
    }

    /// Adds the identifiers the contact's own elements in `v` carry beside the one that
    /// matched (a message `from` the number also gives its `from_user_id`); answers
    /// whether any was new.
    fn link(&mut self, v: &Value) -> bool {
        let mut new = false;
        match v {
            Value::Array(items) => {
                for i in items {
                    if self.owns(i)
                        && let Value::Object(map) = i
                    {
                        for k in PERSON_KEYS {
                            let Some(s) = map.get(k).and_then(Value::as_str) else {
                                continue;
                            };
                            let base = s.split('@').next().unwrap_or_default().trim();
                            new |= match phone_digits(base) {
                                Some(d) => self.phones.insert(d),
                                None if !base.is_empty() => self.user_ids.insert(base.to_owned()),
                                None => false,
                            };
                        }
                    }
                    new |= self.link(i);
                }
            }
            Value::Object(map) => {
                for x in map.values() {
                    new |= self.link(x);
                }
            }
            _ => {}
        }
        new
    }

    /// Removes what is the contact's from `v`: list elements it owns (its messages,
    /// statuses and profile, with everything they carry), entries of other lists that name
    /// it anywhere (a contact card of it inside someone else's message), and, left in
    /// others' elements, each identifier of it with the names beside that identifier (a
    /// flow answer, a quoted `context.from`); JSON carried inside a string (a flow's
    /// `response_json`) is redacted the same way. The envelope (`entry`, `changes`) and
    /// another customer's own parts stay. Returns whether anything changed.
    fn redact(&self, v: &mut Value) -> bool {
        self.redact_at(v, false)
    }

    fn redact_at(&self, v: &mut Value, envelope: bool) -> bool {
        match v {
            Value::String(s) if self.names(s) => {
                *v = Value::String("[erased]".into());
                true
            }
            Value::String(s) if s.trim_start().starts_with('{') => {
                let Ok(mut inner) = serde_json::from_str::<Value>(s) else {
                    return false;
                };
                if !self.redact(&mut inner) {
                    return false;
                }
                *v = Value::String(inner.to_string());
                true
            }
            Value::Array(items) => {
                let before = items.len();
                if !envelope {
                    // Elements with an owner go by their owner; ownerless entries (cards,
                    // phone lists) go when they name the contact anywhere.
                    items.retain(|i| {
                        let has_owner = matches!(i, Value::Object(m) if OWNER_KEYS.iter().any(|k| m.contains_key(*k)));
                        if has_owner {
                            !self.owns(i)
                        } else {
                            !self.mentioned_in(i)
                        }
                    });
                }
                let mut changed = items.len() != before;
                for i in items.iter_mut() {
                    changed |= self.redact(i);
                }
                changed
            }
            Value::Object(map) => {
                let identifies = map
                    .values()
                    .any(|x| x.as_str().is_some_and(|s| self.names(s)));
                let mut changed = false;
                for (k, x) in map.iter_mut() {
                    if identifies && NAME_KEYS.contains(&k.as_str()) && x.is_string() {
                        *x = Value::String("[erased]".into());
                        changed = true;
                    } else {
                        changed |= self.redact_at(x, ENVELOPE_KEYS.contains(&k.as_str()));
                    }
                }
                changed
            }
            _ => false,
        }
    }

    /// The body with the contact's parts removed, or `None` when it does not name them.
    /// A body that is not JSON but contains a needle is replaced whole.
    fn redact_body(&self, body: &[u8]) -> Option<Vec<u8>> {
        match serde_json::from_slice::<Value>(body) {
            Ok(mut v) => {
                // Identifiers linked in this body (a user id beside the number) count too.
                let mut needles = self.clone();
                for _ in 0..4 {
                    if !needles.link(&v) {
                        break;
                    }
                }
                needles
                    .redact(&mut v)
                    .then(|| serde_json::to_vec(&v).expect("JSON serialises"))
            }
            Err(_) => Some(br#"{"erased":true}"#.to_vec()),
        }
    }
}

impl TenantTx {
    fn acting(&self) -> String {
        let a = self.ctx().actor();
        format!("{}:{}", a.kind(), a.id_text())
    }

    /// The organisation's erasure window and delay (defaults until changed).
    pub async fn erasure_settings(&mut self) -> Result<ErasureSettings, StoreError> {
        let org = self.org();
        let row: Option<(i32, i32)> = with_conn!(self.tx, c => {
            sqlx::query_as("SELECT window_days, delay_hours FROM erasure_settings WHERE org_id = $1")
                .bind(org).fetch_optional(c).await?
        });
        Ok(row
            .map(|(window_days, delay_hours)| ErasureSettings {
                window_days,
                delay_hours,
            })
            .unwrap_or_default())
    }

    /// Changes the erasure window and delay (audited). Requests already made keep theirs.
    pub async fn set_erasure_settings(
        &mut self,
        s: ErasureSettings,
    ) -> Result<ErasureSettings, StoreError> {
        s.check()?;
        let org = self.org();
        with_conn!(self.tx, c => {
            sqlx::query("INSERT INTO erasure_settings (org_id, window_days, delay_hours, updated_at) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (org_id) DO UPDATE SET window_days = excluded.window_days, delay_hours = excluded.delay_hours, updated_at = excluded.updated_at")
                .bind(org).bind(s.window_days).bind(s.delay_hours).bind(now_micros())
                .execute(c).await?;
        });
        self.audit(AuditRecord::new(
            "erasure.settings_changed",
            "organisation",
            org.to_string(),
            serde_json::json!({ "window_days": s.window_days, "delay_hours": s.delay_hours }),
        ))
        .await?;
        Ok(s)
    }

    /// One erasure request.
    pub async fn erasure_request(
        &mut self,
        id: ErasureRequestId,
    ) -> Result<ErasureRequest, StoreError> {
        let org = self.org();
        let r: Option<RequestRow> = with_conn!(self.tx, c => {
            sqlx::query_as("SELECT id, contact_id, requested_by, requested_at, execute_at, due_by, state, finished_at, cancelled_by, report FROM erasure_requests WHERE org_id = $1 AND id = $2")
                .bind(org).bind(id.as_uuid()).fetch_optional(c).await?
        });
        r.map(request).transpose()?.ok_or(StoreError::NotFound)
    }

    /// Erasure requests, newest first (at most 100): one contact's, or the organisation's;
    /// optionally only the pending ones.
    pub async fn erasure_requests(
        &mut self,
        contact: Option<ContactId>,
        pending_only: bool,
    ) -> Result<Vec<ErasureRequest>, StoreError> {
        let org = self.org();
        let contact = contact.map(|c| c.as_uuid());
        let rows: Vec<RequestRow> = with_conn!(self.tx, c => {
            sqlx::query_as("SELECT id, contact_id, requested_by, requested_at, execute_at, due_by, state, finished_at, cancelled_by, report FROM erasure_requests \
                            WHERE org_id = $1 AND ($2 IS NULL OR contact_id = $2) AND ($3 = FALSE OR state = 'pending') ORDER BY requested_at DESC, id DESC LIMIT 100")
                .bind(org).bind(contact).bind(pending_only).fetch_all(c).await?
        });
        rows.into_iter().map(request).collect()
    }

    /// Records a request to erase a contact (audited `erasure.requested`), due by now plus
    /// the organisation's window. With no delay configured it is executed in this same
    /// transaction; otherwise it waits for the worker and can be cancelled meanwhile. A
    /// contact has at most one pending request (409 `erasure_pending`).
    pub async fn request_erasure(
        &mut self,
        contact: ContactId,
        now: OffsetDateTime,
    ) -> Result<ErasureRequest, StoreError> {
        self.contact(contact).await?;
        let settings = self.erasure_settings().await?;
        let org = self.org();
        let id = ErasureRequestId::new();
        let now = now
            .replace_nanosecond(now.nanosecond() / 1000 * 1000)
            .unwrap_or(now);
        let execute_at = now + time::Duration::hours(settings.delay_hours.into());
        let due_by = now + time::Duration::days(settings.window_days.into());
        let by = self.acting();
        let pending: Option<Uuid> = with_conn!(self.tx, c => {
            sqlx::query_scalar("SELECT id FROM erasure_requests WHERE org_id = $1 AND contact_id = $2 AND state = 'pending'")
                .bind(org).bind(contact.as_uuid()).fetch_optional(c).await?
        });
        if pending.is_some() {
            return Err(StoreError::Conflict("erasure_pending"));
        }
        with_conn!(self.tx, c => {
            sqlx::query("INSERT INTO erasure_requests (org_id, id, contact_id, requested_by, requested_at, execute_at, due_by, state) VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending')")
                .bind(org).bind(id.as_uuid()).bind(contact.as_uuid()).bind(&by).bind(now).bind(execute_at).bind(due_by)
                .execute(c).await?;
        });
        self.audit(AuditRecord::new(
            "erasure.requested",
            "contact",
            contact.to_string(),
            serde_json::json!({
                "request": id.to_string(),
                "execute_at": execute_at.unix_timestamp(),
                "due_by": due_by.unix_timestamp(),
            }),
        ))
        .await?;
        let report = if settings.delay_hours == 0 {
            self.execute_erasure(id, now).await?
        } else {
            None
        };
        let mut r = self.erasure_request(id).await?;
        // The executed report as made, with the blobs to collect (not stored).
        if report.is_some() {
            r.report = report;
        }
        Ok(r)
    }

    /// Cancels a pending request (audited `erasure.cancelled`); 409 `erasure_not_pending`
    /// once it was executed or cancelled.
    pub async fn cancel_erasure(
        &mut self,
        id: ErasureRequestId,
    ) -> Result<ErasureRequest, StoreError> {
        let r = self.erasure_request(id).await?;
        if r.state != "pending" {
            return Err(StoreError::Conflict("erasure_not_pending"));
        }
        let org = self.org();
        let by = self.acting();
        with_conn!(self.tx, c => {
            sqlx::query("UPDATE erasure_requests SET state = 'cancelled', cancelled_by = $3, finished_at = $4 WHERE org_id = $1 AND id = $2 AND state = 'pending'")
                .bind(org).bind(id.as_uuid()).bind(&by).bind(now_micros()).execute(c).await?;
        });
        self.audit(AuditRecord::new(
            "erasure.cancelled",
            "contact",
            r.contact_id.to_string(),
            serde_json::json!({ "request": id.to_string() }),
        ))
        .await?;
        self.erasure_request(id).await
    }

    /// Executes one pending request: erases the contact and records the outcome (audited
    /// `erasure.executed`). `None` when the request is no longer pending (cancelled, or
    /// executed by someone else first).
    async fn execute_erasure(
        &mut self,
        id: ErasureRequestId,
        now: OffsetDateTime,
    ) -> Result<Option<ErasureReport>, StoreError> {
        let org = self.org();
        // Claims the request first: a concurrent executor waits on this row, then finds
        // nothing pending.
        let claimed: Option<Uuid> = with_conn!(self.tx, c => {
            sqlx::query_scalar("UPDATE erasure_requests SET state = 'done', finished_at = $3 WHERE org_id = $1 AND id = $2 AND state = 'pending' RETURNING contact_id")
                .bind(org).bind(id.as_uuid()).bind(now).fetch_optional(c).await?
        });
        let Some(contact) = claimed else {
            return Ok(None);
        };
        let report = self.erase_contact(ContactId::from_uuid(contact)).await?;
        let stored = serde_json::to_string(&report).expect("a report serialises");
        with_conn!(self.tx, c => {
            sqlx::query("UPDATE erasure_requests SET report = $3 WHERE org_id = $1 AND id = $2")
                .bind(org).bind(id.as_uuid()).bind(&stored).execute(c).await?;
        });
        self.audit(AuditRecord::new(
            "erasure.executed",
            "contact",
            contact.to_string(),
            serde_json::json!({ "request": id.to_string() }),
        ))
        .await?;
        Ok(Some(report))
    }

    /// Carries a contact's erasure requests to the contact it is being merged into, before
    /// the merged-away row is deleted (which would otherwise take them with it): both rows
    /// are the same person, so a pending request still holds and now erases the merged
    /// contact, history included. When both were pending, one survives with the earlier
    /// execution time and the earlier deadline, and the other is closed as cancelled by
    /// `system:contact_merge` (it is carried out by the survivor). Audited
    /// `erasure.carried_over` (and `erasure.folded`), with ids only.
    pub(crate) async fn carry_erasure_requests(
        &mut self,
        from: ContactId,
        to: ContactId,
    ) -> Result<(), StoreError> {
        let org = self.org();
        let pending: Vec<(Uuid, Uuid, OffsetDateTime)> = with_conn!(self.tx, c => {
            sqlx::query_as("SELECT id, contact_id, due_by FROM erasure_requests WHERE org_id = $1 AND contact_id IN ($2, $3) AND state = 'pending' ORDER BY execute_at, requested_at, id")
                .bind(org).bind(from.as_uuid()).bind(to.as_uuid()).fetch_all(c).await?
        });
        if let [survivor, folded] = pending.as_slice() {
            let due_by = survivor.2.min(folded.2);
            with_conn!(self.tx, c => {
                sqlx::query("UPDATE erasure_requests SET state = 'cancelled', cancelled_by = 'system:contact_merge', finished_at = $3 WHERE org_id = $1 AND id = $2")
                    .bind(org).bind(folded.0).bind(now_micros()).execute(&mut *c).await?;
                sqlx::query("UPDATE erasure_requests SET due_by = $3 WHERE org_id = $1 AND id = $2")
                    .bind(org).bind(survivor.0).bind(due_by).execute(&mut *c).await?;
            });
            self.audit(AuditRecord::new(
                "erasure.folded",
                "contact",
                to.to_string(),
                serde_json::json!({ "request": folded.0.to_string(), "into": survivor.0.to_string() }),
            ))
            .await?;
        }
        let moved = with_conn!(self.tx, c => {
            sqlx::query("UPDATE erasure_requests SET contact_id = $3 WHERE org_id = $1 AND contact_id = $2")
                .bind(org).bind(from.as_uuid()).bind(to.as_uuid()).execute(c).await?.rows_affected()
        });
        if moved > 0 {
            let carried: Vec<String> = pending
                .iter()
                .filter(|p| p.1 == from.as_uuid())
                .map(|p| p.0.to_string())
                .collect();
            self.audit(AuditRecord::new(
                "erasure.carried_over",
                "contact",
                to.to_string(),
                serde_json::json!({ "from_contact": from.to_string(), "requests": moved, "pending": carried }),
            ))
            .await?;
        }
        Ok(())
    }

    /// Executes this organisation's pending requests whose time has come (the worker's).
    pub async fn execute_due_erasures(
        &mut self,
        now: OffsetDateTime,
    ) -> Result<Vec<ErasureReport>, StoreError> {
        let org = self.org();
        let due: Vec<Uuid> = with_conn!(self.tx, c => {
            sqlx::query_scalar("SELECT id FROM erasure_requests WHERE org_id = $1 AND state = 'pending' AND execute_at <= $2 ORDER BY execute_at, id LIMIT 100")
                .bind(org).bind(now).fetch_all(c).await?
        });
        let mut reports = Vec::new();
        for id in due {
            if let Some(r) = self
                .execute_erasure(ErasureRequestId::from_uuid(id), now)
                .await?
            {
                reports.push(r);
            }
        }
        Ok(reports)
    }

    /// Erases a contact's personal data now (audited with counts only). Erasing twice is
    /// harmless. Requests ([`Self::request_erasure`]) call this; it leaves no request row.
    pub async fn erase_contact(&mut self, id: ContactId) -> Result<ErasureReport, StoreError> {
        self.contact(id).await?;
        let org = self.org();
        let c = id.as_uuid();
        let now = now_micros();
        let tombstone = format!("erased.{id}");
        // What names the contact in raw webhook bodies, read before it is cleared (and
        // unmasked: this is the store's own reading, never shown).
        type Ids = (
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
        );
        let (ids, wamids, blobs): (Ids, Vec<String>, Vec<String>) = with_conn!(self.tx, k => {
            let ids: Ids = sqlx::query_as("SELECT phone, bsuid, parent_bsuid, username FROM contacts WHERE org_id = $1 AND id = $2")
                .bind(org).bind(c).fetch_one(&mut *k).await?;
            let wamids: Vec<String> = sqlx::query_scalar("SELECT provider_message_id FROM messages WHERE org_id = $1 AND contact_id = $2 AND provider_message_id IS NOT NULL")
                .bind(org).bind(c).fetch_all(&mut *k).await?;
            let blobs: Vec<String> = sqlx::query_scalar("SELECT DISTINCT blob_sha256 FROM media WHERE org_id = $1 AND blob_sha256 IS NOT NULL AND id IN (SELECT media_id FROM messages WHERE org_id = $1 AND contact_id = $2 AND media_id IS NOT NULL)")
                .bind(org).bind(c).fetch_all(&mut *k).await?;
            (ids, wamids, blobs)
        });
        // A tombstone's own user id names nobody.
        let live = |s: &Option<String>| {
            s.clone()
                .filter(|s| !s.is_empty() && !s.starts_with("erased."))
        };
        let needles = Needles::new(
            ids.0.clone(),
            [live(&ids.1), live(&ids.2)].into_iter().flatten(),
            live(&ids.3),
            wamids,
        );
        let webhook_bodies = self.redact_webhook_bodies(&needles).await?;
        let keys: Vec<String> = [ids.0.clone(), live(&ids.1)]
            .into_iter()
            .flatten()
            .collect();
        self.clear_import_rows(c, &keys).await?;
        let (messages, media, notes, outbox) = with_conn!(self.tx, k => {
            // Work still queued for the contact: sends of its messages (they would carry
            // nothing now) and downloads of its media.
            let outbox = sqlx::query("DELETE FROM outbox WHERE org_id = $1 AND ((action IN ('send', 'mark_read') AND target_id IN (SELECT id FROM messages WHERE org_id = $1 AND contact_id = $2)) OR (action = 'fetch_media' AND target_id IN (SELECT media_id FROM messages WHERE org_id = $1 AND contact_id = $2 AND media_id IS NOT NULL)))")
                .bind(org).bind(c).execute(&mut *k).await?.rows_affected();
            sqlx::query("UPDATE messages SET status = 'failed', error_title = NULL WHERE org_id = $1 AND contact_id = $2 AND status = 'queued'")
                .bind(org).bind(c).execute(&mut *k).await?;
            let media = sqlx::query("UPDATE media SET filename = NULL, blob_sha256 = NULL, expected_sha256 = NULL, provider_media_id = NULL, status = 'failed', error = 'erased' WHERE org_id = $1 AND id IN (SELECT media_id FROM messages WHERE org_id = $1 AND contact_id = $2 AND media_id IS NOT NULL)")
                .bind(org).bind(c).execute(&mut *k).await?.rows_affected();
            let messages = sqlx::query("UPDATE messages SET content = '{\"erased\":true}', preview = '[erased]', reply_to = NULL, error_title = NULL, updated_at = $3 WHERE org_id = $1 AND contact_id = $2")
                .bind(org).bind(c).bind(now).execute(&mut *k).await?.rows_affected();
            sqlx::query("UPDATE conversations SET last_preview = '[erased]', updated_at = $3 WHERE org_id = $1 AND contact_id = $2")
                .bind(org).bind(c).bind(now).execute(&mut *k).await?;
            let notes = sqlx::query("UPDATE notes SET body = '[erased]', mentions = '[]' WHERE org_id = $1 AND conversation_id IN (SELECT id FROM conversations WHERE org_id = $1 AND contact_id = $2)")
                .bind(org).bind(c).execute(&mut *k).await?.rows_affected();
            sqlx::query("UPDATE queue_tokens SET walk_in_name = NULL WHERE org_id = $1 AND contact_id = $2")
                .bind(org).bind(c).execute(&mut *k).await?;
            sqlx::query("DELETE FROM contact_field_values WHERE org_id = $1 AND contact_id = $2").bind(org).bind(c).execute(&mut *k).await?;
            sqlx::query("DELETE FROM contact_tags WHERE org_id = $1 AND contact_id = $2").bind(org).bind(c).execute(&mut *k).await?;
            // A campaign's values for them (their CSV row's included) and the link to that row.
            sqlx::query("UPDATE campaign_recipients SET fill = '{}' WHERE org_id = $1 AND contact_id = $2").bind(org).bind(c).execute(&mut *k).await?;
            sqlx::query("DELETE FROM contact_import_contacts WHERE org_id = $1 AND contact_id = $2").bind(org).bind(c).execute(&mut *k).await?;
            sqlx::query("UPDATE contacts SET phone = NULL, bsuid = $3, parent_bsuid = NULL, username = NULL, profile_name = NULL, name = NULL, email = NULL, language = NULL, company = NULL, erased_at = coalesce(erased_at, $4), updated_at = $4 WHERE org_id = $1 AND id = $2")
                .bind(org).bind(c).bind(&tombstone).bind(now).execute(&mut *k).await?;
            (messages as i64, media as i64, notes as i64, outbox as i64)
        });
        self.audit(AuditRecord::new(
            "contact.erased",
            "contact",
            id.to_string(),
            serde_json::json!({
                "messages": messages, "media": media, "notes": notes,
                "webhook_bodies": webhook_bodies, "outbox": outbox,
            }),
        ))
        .await?;
        Ok(ErasureReport {
            contact_id: id,
            messages,
            media,
            notes,
            webhook_bodies,
            outbox,
            blobs,
        })
    }

    /// Clears the contact's rows of every import file (kept per row since imports of
    /// 100,000 rows): the row each import made them from, the first row with their number
    /// or user id, and the rows rejected as repeats of those; and forgets their number and
    /// user id as import keys. The file of an import uploaded before rows were kept apart is
    /// moved into rows first.
    async fn clear_import_rows(
        &mut self,
        contact: Uuid,
        keys: &[String],
    ) -> Result<(), StoreError> {
        let org = self.org();
        let mut lines: Vec<(Uuid, i32)> = with_conn!(self.tx, k => {
            sqlx::query_as("SELECT import_id, line FROM contact_import_contacts WHERE org_id = $1 AND contact_id = $2")
                .bind(org).bind(contact).fetch_all(k).await?
        });
        if !keys.is_empty() {
            let keyed: Vec<(Uuid, i32)> = with_builder!(self.tx, qb => {
                qb.push("SELECT import_id, line FROM contact_import_keys WHERE org_id = ");
                qb.push_bind(org);
                qb.push(" AND key");
                push_in(&mut qb, keys.iter());
            }, fetch_all as (Uuid, i32));
            lines.extend(keyed);
            with_builder!(self.tx, qb => {
                qb.push("DELETE FROM contact_import_keys WHERE org_id = ");
                qb.push_bind(org);
                qb.push(" AND key");
                push_in(&mut qb, keys.iter());
            }, execute);
        }
        let imports: HashSet<Uuid> = lines.iter().map(|(i, _)| *i).collect();
        for import in imports {
            let mine: HashSet<i32> = lines
                .iter()
                .filter(|(i, _)| *i == import)
                .map(|(_, l)| *l)
                .collect();
            // An import from before rows were kept apart has its file moved into rows first.
            let listed = self
                .keep_legacy_rows(frontdesk_domain::ImportId::from_uuid(import))
                .await?;
            // Repeats name the line they repeat in their reason ("duplicate of line N …").
            let mut repeats: Vec<(i32, String)> = with_conn!(self.tx, k => {
                sqlx::query_as("SELECT line, reason FROM contact_import_rejections WHERE org_id = $1 AND import_id = $2 AND reason LIKE $3")
                    .bind(org).bind(import).bind(format!("{}%", crate::imports::DUPLICATE_ROW)).fetch_all(k).await?
            });
            repeats.extend(listed.into_iter().map(|r| (r.line as i32, r.reason)));
            let mut clear: HashSet<i32> = mine.clone();
            for (line, reason) in repeats {
                let first = crate::imports::repeated_line(&reason);
                if first.is_some_and(|f| mine.contains(&(f as i32))) {
                    clear.insert(line);
                }
            }
            let clear: Vec<i32> = clear.into_iter().collect();
            for chunk in clear.chunks(ROWS_PER_STATEMENT) {
                with_builder!(self.tx, qb => {
                    qb.push("UPDATE contact_import_rows SET cells = '[]' WHERE org_id = ");
                    qb.push_bind(org);
                    qb.push(" AND import_id = ");
                    qb.push_bind(import);
                    qb.push(" AND line");
                    push_in(&mut qb, chunk.iter().copied());
                }, execute);
            }
        }
        Ok(())
    }

    /// Removes the contact's parts from the organisation's raw webhook bodies. The body's
    /// hash stays, so a provider retry of the original is still recognised as a duplicate
    /// (and cannot bring the data back); a pending body is still processed, without them.
    async fn redact_webhook_bodies(&mut self, needles: &Needles) -> Result<i64, StoreError> {
        let org = self.org();
        let mut candidates: Vec<Uuid> = Vec::new();
        for bytes in needles.search_terms() {
            let ids: Vec<Uuid> = match &mut self.tx {
                Tx::Postgres(t) => {
                    sqlx::query_scalar(
                        "SELECT id FROM webhook_inbox WHERE org_id = $1 AND position($2::bytea in body) > 0",
                    )
                    .bind(org)
                    .bind(bytes)
                    .fetch_all(&mut **t)
                    .await?
                }
                Tx::Sqlite(t) => {
                    sqlx::query_scalar(
                        "SELECT id FROM webhook_inbox WHERE org_id = $1 AND instr(body, $2) > 0",
                    )
                    .bind(org)
                    .bind(bytes)
                    .fetch_all(&mut **t)
                    .await?
                }
            };
            for id in ids {
                if !candidates.contains(&id) {
                    candidates.push(id);
                }
            }
        }
        let mut redacted = 0;
        for id in candidates {
            let body: Vec<u8> = with_conn!(self.tx, c => {
                sqlx::query_scalar("SELECT body FROM webhook_inbox WHERE org_id = $1 AND id = $2")
                    .bind(org).bind(id).fetch_one(c).await?
            });
            let Some(new_body) = needles.redact_body(&body) else {
                continue;
            };
            with_conn!(self.tx, c => {
                sqlx::query("UPDATE webhook_inbox SET body = $3 WHERE org_id = $1 AND id = $2")
                    .bind(org).bind(id).bind(new_body).execute(c).await?;
            });
            redacted += 1;
        }
        Ok(redacted)
    }
}

impl crate::Store {
    /// Executes every organisation's due erasure requests (the worker's); answers what
    /// each erased, so the caller can collect the blobs no longer referenced.
    pub async fn execute_due_erasures(
        &self,
        now: OffsetDateTime,
    ) -> Result<Vec<ErasureReport>, StoreError> {
        let mut reports = Vec::new();
        for org in self.all_org_ids().await? {
            let ctx = TenantCtx::system(org, "erasure");
            let mut tx = self.begin_background(&ctx).await?;
            let mut done = tx.execute_due_erasures(now).await?;
            tx.commit().await?;
            reports.append(&mut done);
        }
        Ok(reports)
    }

    /// Which of `candidates` (blob SHA-256s) a media row of any organisation still names.
    /// On PostgreSQL the application role sees one organisation at a time; the
    /// `frontdesk_blobs_in_use` function (the schema owner's, SECURITY DEFINER) answers
    /// for all of them and tells nothing but this.
    pub async fn blobs_in_use(&self, candidates: &[String]) -> Result<HashSet<String>, StoreError> {
        let mut used = HashSet::new();
        for chunk in candidates.chunks(500) {
            let mut g = self.begin_global(false).await?;
            let found: Vec<String> = match &mut g.tx {
                Tx::Postgres(t) => {
                    sqlx::query_scalar("SELECT frontdesk_blobs_in_use($1)")
                        .bind(chunk.to_vec())
                        .fetch_all(&mut **t)
                        .await?
                }
                Tx::Sqlite(t) => {
                    let list = serde_json::to_string(chunk).expect("strings serialise");
                    sqlx::query_scalar("SELECT DISTINCT blob_sha256 FROM media WHERE blob_sha256 IN (SELECT value FROM json_each($1))")
                        .bind(list)
                        .fetch_all(&mut **t)
                        .await?
                }
            };
            g.commit().await?;
            used.extend(found);
        }
        Ok(used)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn needles() -> Needles {
        Needles::new(
            ["+919876543210".to_owned()],
            ["IN.1234567890".to_owned()],
            [],
            ["wamid.OUT1".to_owned()],
        )
    }

    fn redacted(n: &Needles, body: &Value) -> String {
        let out = n
            .redact_body(&serde_json::to_vec(body).unwrap())
            .expect("the body names the contact");
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn numbers_are_compared_as_numbers_and_web_ids_by_their_user_part() {
        let n = needles();
        for yes in [
            "919876543210",
            "+919876543210",
            "+91 98765-43210",
            "919876543210@s.whatsapp.net",
            "IN.1234567890@lid",
            "wamid.OUT1",
        ] {
            assert!(n.names(yes), "{yes}");
        }
        for no in [
            "9198765432100",
            "19876543210",
            "call 919876543210",
            "IN.12345678900",
            "Asha",
        ] {
            assert!(!n.names(no), "{no}");
        }
        let sam = Needles::new([], [], ["Sam.W".to_owned()], []);
        assert!(sam.names("sam.w") && sam.names("SAM.W") && !sam.names("sam"));
    }

    #[test]
    fn a_user_id_beside_the_number_is_the_contacts_for_the_whole_body() {
        // Known here by number only; the body links the number to a user id, and a status
        // later in the batch names the user id alone.
        let n = Needles::new(["+14155550100".to_owned()], [], [], []);
        let body = json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [{"field": "messages", "value": {
            "contacts": [
                {"wa_id": "14155550100", "user_id": "US.1234567890123", "profile": {"name": "Lee Park", "username": "lee.p"}},
                {"user_id": "US.7777777777777", "profile": {"name": "Mo Diaz"}}
            ],
            "messages": [
                {"from": "+1 415 555 0100", "from_user_id": "US.1234567890123", "id": "wamid.L1", "timestamp": "1", "type": "text", "text": {"body": "Lee's secret"}},
                {"from_user_id": "US.7777777777777", "id": "wamid.M1", "timestamp": "1", "type": "text", "text": {"body": "Mo says hi"}}
            ],
            "statuses": [{"id": "wamid.OUT9", "status": "read", "recipient_user_id": "US.1234567890123"}]
        }}]}]});
        let text = redacted(&n, &body);
        for gone in [
            "14155550100",
            "US.1234567890123",
            "Lee Park",
            "lee.p",
            "Lee's secret",
            "wamid.L1",
            "wamid.OUT9",
        ] {
            assert!(!text.contains(gone), "{gone} left in {text}");
        }
        for kept in [
            "US.7777777777777",
            "Mo Diaz",
            "Mo says hi",
            "wamid.M1",
            "WABA",
        ] {
            assert!(text.contains(kept), "{kept} lost from {text}");
        }
    }

    #[test]
    fn another_customers_message_keeps_its_text_and_loses_only_the_contacts_card_reply_and_answer()
    {
        // Ben's messages: a quoted reply to Asha (context.from), Asha's contact card, a
        // flow answer naming her, and an ad referral. Ben's own words stay; Asha goes.
        let body = json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [{"field": "messages", "value": {
            "metadata": {"display_phone_number": "15550001111", "phone_number_id": "PN1"},
            "contacts": [{"wa_id": "447700900123", "profile": {"name": "Ben Hale"}}],
            "messages": [
                {"from": "447700900123", "id": "wamid.B1", "timestamp": "1", "type": "text", "text": {"body": "as she said"},
                 "context": {"from": "919876543210", "id": "wamid.A0"}},
                {"from": "447700900123", "id": "wamid.B2", "timestamp": "1", "type": "contacts", "contacts": [
                    {"name": {"formatted_name": "Asha Rao", "first_name": "Asha"}, "phones": [{"phone": "+91 98765 43210", "type": "CELL"}]},
                    {"name": {"formatted_name": "Dr Iyer"}, "phones": [{"phone": "+91 80 4000 1234", "type": "WORK"}]}
                ]},
                {"from": "447700900123", "id": "wamid.B3", "timestamp": "1", "type": "interactive", "interactive": {"type": "nfm_reply",
                    "nfm_reply": {"name": "flow", "body": "Sent", "response_json": "{\"friend_name\":\"x\",\"name\":\"Asha Rao\",\"phone\":\"+919876543210\",\"flow_token\":\"T1\"}"}}},
                {"from": "447700900123", "id": "wamid.B4", "timestamp": "1", "type": "text", "text": {"body": "from the ad"},
                 "referral": {"source_url": "https://fb.me/ad", "source_type": "ad", "headline": "Spring checkup"}}
            ]
        }}]}]});
        let text = redacted(&needles(), &body);
        for gone in ["919876543210", "98765 43210", "Asha Rao"] {
            assert!(!text.contains(gone), "{gone} left in {text}");
        }
        for kept in [
            "as she said",
            "wamid.B1",
            "wamid.B2",
            "Dr Iyer",
            "+91 80 4000 1234",
            "flow_token",
            "T1",
            "Spring checkup",
            "Ben Hale",
            "PN1",
        ] {
            assert!(text.contains(kept), "{kept} lost from {text}");
        }
    }

    #[test]
    fn whapi_bodies_lose_the_contacts_messages_by_their_web_id() {
        let body = json!({"messages": [
            {"id": "W1", "from_me": false, "type": "text", "chat_id": "919876543210@s.whatsapp.net", "from": "919876543210", "from_name": "Asha", "text": {"body": "hi"}},
            {"id": "W2", "from_me": false, "type": "text", "chat_id": "447700900123@s.whatsapp.net", "from": "447700900123", "from_name": "Ben", "text": {"body": "yo"}}
        ], "event": {"type": "messages", "event": "post"}, "channel_id": "CH"});
        let text = redacted(&needles(), &body);
        assert!(!text.contains("Asha") && !text.contains("W1"), "{text}");
        assert!(
            text.contains("Ben") && text.contains("W2") && text.contains("CH"),
            "{text}"
        );
    }

    #[test]
    fn a_batch_loses_the_contacts_parts_and_keeps_everyone_elses() {
        let body = json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [{"field": "messages", "value": {
            "metadata": {"display_phone_number": "15550001111", "phone_number_id": "PN1"},
            "contacts": [
                {"profile": {"name": "Asha"}, "wa_id": "919876543210"},
                {"profile": {"name": "Ben"}, "wa_id": "447700900123"}
            ],
            "messages": [
                {"from": "919876543210", "id": "wamid.A", "type": "text", "text": {"body": "my address is 5 Elm St"}},
                {"from": "447700900123", "id": "wamid.B", "type": "text", "text": {"body": "hello"}}
            ],
            "statuses": [{"id": "wamid.OUT1", "status": "read", "recipient_id": "IN.1234567890@lid"}]
        }}]}]});
        let out = needles()
            .redact_body(&serde_json::to_vec(&body).unwrap())
            .expect("the body names the contact");
        let text = String::from_utf8(out).unwrap();
        for gone in ["919876543210", "Asha", "5 Elm St", "wamid.A", "wamid.OUT1"] {
            assert!(!text.contains(gone), "{gone} left in {text}");
        }
        for kept in ["447700900123", "Ben", "wamid.B", "PN1"] {
            assert!(text.contains(kept), "{kept} lost from {text}");
        }
    }

    #[test]
    fn a_body_that_does_not_name_the_contact_is_left_alone() {
        let body = br#"{"entry":[{"changes":[{"value":{"messages":[{"from":"9198765432100","text":{"body":"919876543210 is my friend's"}}]}}]}]}"#;
        // The digits inside a longer number or a text are not the contact's identifier
        // (the text is another customer's message, not the contact's).
        assert_eq!(needles().redact_body(body), None);
        assert_eq!(
            needles().redact_body(b"not json 919876543210"),
            Some(br#"{"erased":true}"#.to_vec())
        );
    }

    #[test]
    fn settings_are_bounded_by_the_window() {
        assert!(ErasureSettings::default().check().is_ok());
        let bad = |w, d| {
            matches!(
                ErasureSettings {
                    window_days: w,
                    delay_hours: d
                }
                .check(),
                Err(StoreError::InvalidFields(_))
            )
        };
        assert!(bad(0, 0));
        assert!(bad(91, 0));
        assert!(bad(30, -1));
        assert!(bad(1, 25));
        assert!(!bad(1, 24));
    }
}
