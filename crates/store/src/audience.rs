//! The audience: contacts as the business manages them (name, number and/or WhatsApp user
//! id, email, language, company), the organisation's custom fields and their values, and
//! tags.
//!
//! Numbers are masked here, by the transaction's own context: a caller without
//! `contacts.view_phone` never receives a full number from these functions, and may not
//! search by number either (a search could otherwise confirm a number digit by digit).
//! Every change is audited in its transaction, with ids and field names only (never values).

use crate::StoreError;
use crate::audit::AuditRecord;
use crate::inbox::{Cursor, MAX_PAGE, mask_phone};
use crate::orgs::now_micros;
use crate::tenant::{TenantTx, Tx, with_conn};
use frontdesk_domain::audience::{
    ConsentState, FieldKind, MAX_FIELDS, MAX_TAGS, MAX_TEXT, StoredValue, parse_field_key,
    parse_field_value, parse_language, parse_options, parse_tag_name, parse_text,
};
use frontdesk_domain::{Bsuid, ContactId, E164, Email, FieldId, Permission, TagId};
use serde::Serialize;
use std::collections::BTreeMap;
use time::OffsetDateTime;
use uuid::Uuid;

/// One field of an input that is not valid, and why (shown beside the field on pages).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldProblem {
    /// `name`, `phone`, `email`, …, or `fields.<key>` for a custom field.
    pub field: String,
    pub message: String,
}

impl FieldProblem {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Problems as one sentence, for API messages.
pub fn describe_problems(ps: &[FieldProblem]) -> String {
    ps.iter()
        .map(|p| format!("{}: {}", p.field, p.message))
        .collect::<Vec<_>>()
        .join("; ")
}

/// A tag as contacts carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TagRef {
    pub id: TagId,
    pub name: String,
}

/// A tag of the catalogue, with how many contacts carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Tag {
    pub id: TagId,
    pub name: String,
    pub contacts: i64,
}

/// A custom field's definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldDef {
    pub id: FieldId,
    pub key: String,
    pub label: String,
    pub kind: FieldKind,
    /// A choice field's options, in order; empty for other types.
    pub options: Vec<String>,
}

/// A contact as the audience pages and API show it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ContactRecord {
    pub id: ContactId,
    /// The business's name for the contact.
    pub name: Option<String>,
    /// The name the customer set on WhatsApp.
    pub profile_name: Option<String>,
    /// E.164, or masked (`+91 98•••••210`) for callers without `contacts.view_phone`.
    pub phone: Option<String>,
    pub phone_masked: bool,
    /// The WhatsApp business-scoped user id.
    pub user_id: Option<String>,
    pub username: Option<String>,
    pub email: Option<String>,
    pub language: Option<String>,
    pub company: Option<String>,
    pub tags: Vec<TagRef>,
    /// Custom field values by key: numbers as JSON numbers, booleans as JSON booleans,
    /// the rest as strings.
    #[schema(value_type = Object)]
    pub fields: BTreeMap<String, serde_json::Value>,
    /// When the customer last wrote, on any number.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_inbound_at: Option<OffsetDateTime>,
    /// When the contact's personal data was erased (a tombstone); absent for live contacts.
    #[serde(with = "time::serde::rfc3339::option")]
    pub erased_at: Option<OffsetDateTime>,
    /// Marketing consent from the ledger's latest event; absent: unknown.
    pub consent: Option<ConsentState>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// A page of contacts, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ContactPage {
    pub items: Vec<ContactRecord>,
    /// Pass as `cursor` for the next page; absent on the last.
    pub next_cursor: Option<String>,
}

/// A contact list request.
#[derive(Debug, Clone, Default)]
pub struct ContactQuery {
    /// 1 to 100 characters, matched anywhere in the name, profile name, username, email,
    /// company (and number, for those who may see numbers).
    pub search: Option<String>,
    pub tag: Option<TagId>,
    pub after: Option<Cursor>,
    pub limit: i64,
}

/// What a create or an update sets. On update, `None` leaves a value as it is and an empty
/// string clears it; custom fields listed with `null` are cleared.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContactInput {
    pub name: Option<String>,
    pub phone: Option<String>,
    pub user_id: Option<String>,
    pub username: Option<String>,
    pub email: Option<String>,
    pub language: Option<String>,
    pub company: Option<String>,
    pub fields: BTreeMap<String, serde_json::Value>,
}

/// A checked value: unchanged, cleared, or set.
#[derive(Debug, Clone, PartialEq)]
enum Change<T> {
    Keep,
    Clear,
    Set(T),
}

impl<T> Change<T> {
    fn apply(self, old: Option<T>) -> Option<T> {
        match self {
            Change::Keep => old,
            Change::Clear => None,
            Change::Set(v) => Some(v),
        }
    }
}

/// An input that passed every check.
struct Checked {
    name: Change<String>,
    phone: Change<String>,
    bsuid: Change<String>,
    username: Change<String>,
    email: Change<String>,
    language: Change<String>,
    company: Change<String>,
    /// Field id, and its value (None: clear).
    fields: Vec<(FieldId, String, Option<StoredValue>)>,
}

fn check_one<T>(
    v: &Option<String>,
    field: &str,
    problems: &mut Vec<FieldProblem>,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Change<T> {
    match v.as_deref().map(str::trim) {
        None => Change::Keep,
        Some("") => Change::Clear,
        Some(s) => match parse(s) {
            Ok(t) => Change::Set(t),
            Err(m) => {
                problems.push(FieldProblem::new(field, m));
                Change::Keep
            }
        },
    }
}

/// What is wrong with a contact's values against the organisation's field definitions
/// (nothing: empty).
pub(crate) fn input_problems(input: &ContactInput, defs: &[FieldDef]) -> Vec<FieldProblem> {
    check_input(input, defs).err().unwrap_or_default()
}

fn check_input(input: &ContactInput, defs: &[FieldDef]) -> Result<Checked, Vec<FieldProblem>> {
    let mut p = Vec::new();
    let text = |s: &str| -> Result<String, String> {
        parse_text(s, MAX_TEXT).map(|t| t.unwrap_or_default())
    };
    let name = check_one(&input.name, "name", &mut p, text);
    let phone = check_one(&input.phone, "phone", &mut p, |s| {
        E164::parse(s)
            .map(|e| e.as_str().to_owned())
            .map_err(|e| e.to_string())
    });
    let bsuid = check_one(&input.user_id, "user_id", &mut p, |s| {
        Bsuid::parse(s)
            .map(|b| b.as_str().to_owned())
            .map_err(|e| e.to_string())
    });
    let username = check_one(&input.username, "username", &mut p, |s| {
        parse_text(s, 100).map(|t| t.unwrap_or_default())
    });
    let email = check_one(&input.email, "email", &mut p, |s| {
        Email::parse(s)
            .map(|e| e.as_str().to_owned())
            .map_err(|e| e.to_string())
    });
    let language = check_one(&input.language, "language", &mut p, |s| {
        parse_language(s).map_err(str::to_owned)
    });
    let company = check_one(&input.company, "company", &mut p, text);
    let mut fields = Vec::new();
    if input.fields.len() > MAX_FIELDS as usize {
        // Unknown keys are reported one by one below; this bounds that list.
        return Err(vec![FieldProblem::new(
            "fields",
            format!("at most {MAX_FIELDS} custom field values"),
        )]);
    }
    for (key, value) in &input.fields {
        let Some(def) = defs.iter().find(|d| &d.key == key) else {
            p.push(FieldProblem::new(
                format!("fields.{}", key.chars().take(40).collect::<String>()),
                "no such field",
            ));
            continue;
        };
        let blank = value.is_null() || value.as_str().is_some_and(|s| s.trim().is_empty());
        if blank {
            fields.push((def.id, def.key.clone(), None));
            continue;
        }
        match parse_field_value(def.kind, &def.options, value) {
            Ok(v) => fields.push((def.id, def.key.clone(), Some(v))),
            Err(m) => p.push(FieldProblem::new(format!("fields.{key}"), m)),
        }
    }
    if p.is_empty() {
        Ok(Checked {
            name,
            phone,
            bsuid,
            username,
            email,
            language,
            company,
            fields,
        })
    } else {
        Err(p)
    }
}

/// Escapes `%`, `_` and `\` for `LIKE … ESCAPE '\'`, lower-cased.
fn like_pattern(q: &str) -> String {
    let mut s = String::from("%");
    for ch in q.to_lowercase().chars() {
        if matches!(ch, '%' | '_' | '\\') {
            s.push('\\');
        }
        s.push(ch);
    }
    s.push('%');
    s
}

#[derive(sqlx::FromRow)]
pub(crate) struct ContactRow {
    id: Uuid,
    phone: Option<String>,
    bsuid: Option<String>,
    username: Option<String>,
    profile_name: Option<String>,
    name: Option<String>,
    email: Option<String>,
    language: Option<String>,
    company: Option<String>,
    last_inbound_at: Option<OffsetDateTime>,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
    consent: Option<String>,
    erased_at: Option<OffsetDateTime>,
}

/// The latest consent event's state of contact `k` (SQL), for lists and segments.
macro_rules! consent_state_sql {
    () => {
        "(SELECT e.state FROM consent_events e WHERE e.org_id = k.org_id AND e.contact_id = k.id ORDER BY e.created_at DESC, e.id DESC LIMIT 1)"
    };
}
pub(crate) use consent_state_sql;

macro_rules! contact_cols {
    () => {
        concat!(
            "k.id, k.phone, k.bsuid, k.username, k.profile_name, k.name, k.email, k.language, k.company, \
             (SELECT max(c.last_inbound_at) FROM conversations c WHERE c.org_id = k.org_id AND c.contact_id = k.id) AS last_inbound_at, \
             k.created_at, k.updated_at, ",
            consent_state_sql!(),
            " AS consent, k.erased_at"
        )
    };
}
pub(crate) use contact_cols;

/// The list: `$1` org, `$2` search pattern (or NULL), `$3` whether numbers are searched,
/// `$4` tag (or NULL), `$5`/`$6` cursor (or NULL), `$7` limit.
macro_rules! list_sql {
    ($like:literal) => {
        concat!(
            "SELECT ", contact_cols!(), " FROM contacts k WHERE k.org_id = $1 AND k.erased_at IS NULL \
             AND ($2 IS NULL OR coalesce(k.name, '') ", $like, " $2 ESCAPE '\\' OR coalesce(k.profile_name, '') ", $like, " $2 ESCAPE '\\' \
                  OR coalesce(k.username, '') ", $like, " $2 ESCAPE '\\' OR coalesce(k.email, '') ", $like, " $2 ESCAPE '\\' \
                  OR coalesce(k.company, '') ", $like, " $2 ESCAPE '\\' OR ($3 AND coalesce(k.phone, '') LIKE $2 ESCAPE '\\')) \
             AND ($4 IS NULL OR EXISTS (SELECT 1 FROM contact_tags t WHERE t.org_id = k.org_id AND t.contact_id = k.id AND t.tag_id = $4)) \
             AND ($5 IS NULL OR k.created_at < $5 OR (k.created_at = $5 AND k.id < $6)) \
             ORDER BY k.created_at DESC, k.id DESC LIMIT $7"
        )
    };
}
// SQLite's LIKE ignores ASCII case already; PostgreSQL needs ILIKE (served by trigram indexes).
const LIST_SQL_SQLITE: &str = list_sql!("LIKE");
const LIST_SQL_POSTGRES: &str = list_sql!("ILIKE");

/// A field's label: 1 to 80 characters.
fn field_label(label: &str) -> Result<String, FieldProblem> {
    match parse_text(label, 80) {
        Ok(Some(l)) => Ok(l),
        _ => Err(FieldProblem::new("label", "1 to 80 characters")),
    }
}

fn field_json(kind: &str, text: Option<String>, number: Option<f64>) -> serde_json::Value {
    match (kind, text, number) {
        (_, _, Some(n)) => serde_json::Number::from_f64(n)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null),
        ("boolean", Some(t), _) => serde_json::Value::Bool(t == "true"),
        (_, Some(t), _) => serde_json::Value::String(t),
        _ => serde_json::Value::Null,
    }
}

fn field_def(r: (Uuid, String, String, String, String)) -> Result<FieldDef, StoreError> {
    Ok(FieldDef {
        id: FieldId::from_uuid(r.0),
        key: r.1,
        label: r.2,
        kind: FieldKind::parse(&r.3)
            .ok_or_else(|| StoreError::Corrupt(format!("field kind {:?}", r.3)))?,
        options: serde_json::from_str(&r.4)
            .map_err(|_| StoreError::Corrupt("field options are not a JSON list".into()))?,
    })
}

impl TenantTx {
    fn view_phone(&self) -> bool {
        self.ctx().can(Permission::ContactsViewPhone)
    }

    pub(crate) async fn record_of(&mut self, r: ContactRow) -> Result<ContactRecord, StoreError> {
        let org = self.org();
        let tags: Vec<(Uuid, String)> = with_conn!(self.tx, c => {
            sqlx::query_as("SELECT t.id, t.name FROM contact_tags ct JOIN tags t ON t.org_id = ct.org_id AND t.id = ct.tag_id WHERE ct.org_id = $1 AND ct.contact_id = $2 ORDER BY t.name")
                .bind(org).bind(r.id).fetch_all(c).await?
        });
        let values: Vec<(String, String, Option<String>, Option<f64>)> = with_conn!(self.tx, c => {
            sqlx::query_as("SELECT f.key, f.kind, v.value_text, v.value_number FROM contact_field_values v JOIN contact_fields f ON f.org_id = v.org_id AND f.id = v.field_id WHERE v.org_id = $1 AND v.contact_id = $2")
                .bind(org).bind(r.id).fetch_all(c).await?
        });
        let (phone, phone_masked) = match r.phone {
            Some(p) if !self.view_phone() => (Some(mask_phone(&p)), true),
            p => (p, false),
        };
        Ok(ContactRecord {
            id: ContactId::from_uuid(r.id),
            name: r.name,
            profile_name: r.profile_name,
            phone,
            phone_masked,
            user_id: r.bsuid,
            username: r.username,
            email: r.email,
            language: r.language,
            company: r.company,
            tags: tags
                .into_iter()
                .map(|(id, name)| TagRef {
                    id: TagId::from_uuid(id),
                    name,
                })
                .collect(),
            fields: values
                .into_iter()
                .map(|(k, kind, t, n)| (k, field_json(&kind, t, n)))
                .collect(),
            last_inbound_at: r.last_inbound_at,
            consent: r.consent.as_deref().and_then(ConsentState::parse),
            erased_at: r.erased_at,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }

    /// The language recorded for a contact (e.g. `pt_BR`), if any: what automated replies
    /// (the clinic queue's) are written in when they have a text for it.
    pub async fn contact_language(&mut self, id: ContactId) -> Result<Option<String>, StoreError> {
        let org = self.org();
        let lang: Option<Option<String>> = with_conn!(self.tx, c => {
            sqlx::query_scalar("SELECT language FROM contacts WHERE org_id = $1 AND id = $2")
                .bind(org).bind(id.as_uuid()).fetch_optional(c).await?
        });
        Ok(lang.flatten().filter(|l| !l.is_empty()))
    }

    /// One contact, as the caller may see it.
    pub async fn contact_record(&mut self, id: ContactId) -> Result<ContactRecord, StoreError> {
        let org = self.org();
        let r: Option<ContactRow> = with_conn!(self.tx, c => {
            sqlx::query_as(concat!("SELECT ", contact_cols!(), " FROM contacts k WHERE k.org_id = $1 AND k.id = $2"))
                .bind(org).bind(id.as_uuid()).fetch_optional(c).await?
        });
        let r = r.ok_or(StoreError::NotFound)?;
        self.record_of(r).await
    }

    /// A page of contacts, newest first, optionally searched and filtered by a tag.
    pub async fn list_contacts(&mut self, q: &ContactQuery) -> Result<ContactPage, StoreError> {
        let org = self.org();
        let limit = q.limit.clamp(1, MAX_PAGE);
        let pattern = match q.search.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(s) if s.chars().count() > 100 => {
                return Err(StoreError::Invalid(
                    "search is at most 100 characters".into(),
                ));
            }
            Some(s) => Some(like_pattern(s)),
        };
        let view_phone = self.view_phone();
        let (cur_at, cur_id) = match q.after {
            Some(c) => (Some(c.at), Some(c.id)),
            None => (None, None),
        };
        macro_rules! run {
            ($c:expr, $sql:expr) => {
                sqlx::query_as::<_, ContactRow>($sql)
                    .bind(org)
                    .bind(&pattern)
                    .bind(view_phone)
                    .bind(q.tag.map(|t| t.as_uuid()))
                    .bind(cur_at)
                    .bind(cur_id)
                    .bind(limit + 1)
                    .fetch_all($c)
                    .await?
            };
        }
        let mut rows: Vec<ContactRow> = match &mut self.tx {
            Tx::Sqlite(t) => run!(&mut **t, LIST_SQL_SQLITE),
            Tx::Postgres(t) => run!(&mut **t, LIST_SQL_POSTGRES),
        };
        let next_cursor = Cursor::page(&mut rows, limit, |r| (r.created_at, r.id));
        let mut items = Vec::with_capacity(rows.len());
        for r in rows {
            items.push(self.record_of(r).await?);
        }
        Ok(ContactPage { items, next_cursor })
    }

    /// Checks an input without storing anything: every problem, each with its field.
    pub async fn check_contact_input(
        &mut self,
        input: &ContactInput,
    ) -> Result<Vec<FieldProblem>, StoreError> {
        let defs = self.fields().await?;
        Ok(check_input(input, &defs).err().unwrap_or_default())
    }

    async fn contact_by(
        &mut self,
        col_phone: bool,
        value: &str,
    ) -> Result<Option<Uuid>, StoreError> {
        let org = self.org();
        Ok(with_conn!(self.tx, c => {
            if col_phone {
                sqlx::query_scalar("SELECT id FROM contacts WHERE org_id = $1 AND phone = $2").bind(org).bind(value).fetch_optional(c).await?
            } else {
                sqlx::query_scalar("SELECT id FROM contacts WHERE org_id = $1 AND bsuid = $2").bind(org).bind(value).fetch_optional(c).await?
            }
        }))
    }

    /// Refuses a number or user id another contact already has (`contact_exists`).
    async fn check_unique(
        &mut self,
        me: Option<Uuid>,
        phone: Option<&str>,
        bsuid: Option<&str>,
    ) -> Result<(), StoreError> {
        for (is_phone, v) in [(true, phone), (false, bsuid)] {
            if let Some(v) = v
                && let Some(other) = self.contact_by(is_phone, v).await?
                && Some(other) != me
            {
                return Err(StoreError::Conflict("contact_exists"));
            }
        }
        Ok(())
    }

    /// Creates a contact; it needs a number or a WhatsApp user id.
    pub async fn create_contact(
        &mut self,
        input: &ContactInput,
    ) -> Result<ContactRecord, StoreError> {
        let defs = self.fields().await?;
        let ch = check_input(input, &defs).map_err(StoreError::InvalidFields)?;
        let phone = ch.phone.clone().apply(None);
        let bsuid = ch.bsuid.clone().apply(None);
        if phone.is_none() && bsuid.is_none() {
            return Err(StoreError::InvalidFields(vec![FieldProblem::new(
                "phone",
                "a contact needs a phone number or a WhatsApp user id",
            )]));
        }
        self.check_unique(None, phone.as_deref(), bsuid.as_deref())
            .await?;
        let org = self.org();
        let id = ContactId::new();
        let now = now_micros();
        let (name, username, email, language, company) = (
            ch.name.apply(None),
            ch.username.apply(None),
            ch.email.apply(None),
            ch.language.apply(None),
            ch.company.apply(None),
        );
        with_conn!(self.tx, c => {
            sqlx::query("INSERT INTO contacts (org_id, id, phone, bsuid, username, name, email, language, company, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)")
                .bind(org).bind(id.as_uuid()).bind(&phone).bind(&bsuid).bind(&username).bind(&name)
                .bind(&email).bind(&language).bind(&company).bind(now)
                .execute(c).await?;
        });
        let keys = self.write_field_values(id, &ch.fields, now).await?;
        self.audit(AuditRecord::new(
            "contact.created",
            "contact",
            id.to_string(),
            serde_json::json!({ "fields": keys }),
        ))
        .await?;
        self.contact_record(id).await
    }

    /// Changes a contact: listed values are set or (empty) cleared, the rest kept.
    pub async fn update_contact(
        &mut self,
        id: ContactId,
        input: &ContactInput,
    ) -> Result<ContactRecord, StoreError> {
        let defs = self.fields().await?;
        let ch = check_input(input, &defs).map_err(StoreError::InvalidFields)?;
        let org = self.org();
        let old: Option<ContactRow> = with_conn!(self.tx, c => {
            sqlx::query_as(concat!("SELECT ", contact_cols!(), " FROM contacts k WHERE k.org_id = $1 AND k.id = $2"))
                .bind(org).bind(id.as_uuid()).fetch_optional(c).await?
        });
        let old = old.ok_or(StoreError::NotFound)?;
        let mut changed: Vec<&str> = Vec::new();
        for (name, keep) in [
            ("name", ch.name == Change::Keep),
            ("phone", ch.phone == Change::Keep),
            ("user_id", ch.bsuid == Change::Keep),
            ("username", ch.username == Change::Keep),
            ("email", ch.email == Change::Keep),
            ("language", ch.language == Change::Keep),
            ("company", ch.company == Change::Keep),
        ] {
            if !keep {
                changed.push(name);
            }
        }
        let phone = ch.phone.apply(old.phone);
        let bsuid = ch.bsuid.apply(old.bsuid);
        if phone.is_none() && bsuid.is_none() {
            return Err(StoreError::InvalidFields(vec![FieldProblem::new(
                "phone",
                "a contact needs a phone number or a WhatsApp user id",
            )]));
        }
        self.check_unique(Some(id.as_uuid()), phone.as_deref(), bsuid.as_deref())
            .await?;
        let (name, username, email, language, company) = (
            ch.name.apply(old.name),
            ch.username.apply(old.username),
            ch.email.apply(old.email),
            ch.language.apply(old.language),
            ch.company.apply(old.company),
        );
        let now = now_micros();
        with_conn!(self.tx, c => {
            sqlx::query("UPDATE contacts SET phone = $3, bsuid = $4, username = $5, name = $6, email = $7, language = $8, company = $9, updated_at = $10 WHERE org_id = $1 AND id = $2")
                .bind(org).bind(id.as_uuid()).bind(&phone).bind(&bsuid).bind(&username).bind(&name)
                .bind(&email).bind(&language).bind(&company).bind(now)
                .execute(c).await?;
        });
        let keys = self.write_field_values(id, &ch.fields, now).await?;
        self.audit(AuditRecord::new(
            "contact.updated",
            "contact",
            id.to_string(),
            serde_json::json!({ "changed": changed, "fields": keys }),
        ))
        .await?;
        self.contact_record(id).await
    }

    /// Sets or clears custom field values; returns the keys touched.
    async fn write_field_values(
        &mut self,
        contact: ContactId,
        values: &[(FieldId, String, Option<StoredValue>)],
        now: OffsetDateTime,
    ) -> Result<Vec<String>, StoreError> {
        let org = self.org();
        for (field, _, v) in values {
            with_conn!(self.tx, c => {
                match v {
                    Some(v) => {
                        sqlx::query("INSERT INTO contact_field_values (org_id, contact_id, field_id, value_text, value_number, updated_at) VALUES ($1, $2, $3, $4, $5, $6) \
                                     ON CONFLICT (org_id, contact_id, field_id) DO UPDATE SET value_text = excluded.value_text, value_number = excluded.value_number, updated_at = excluded.updated_at")
                            .bind(org).bind(contact.as_uuid()).bind(field.as_uuid()).bind(&v.text).bind(v.number).bind(now)
                            .execute(c).await?;
                    }
                    None => {
                        sqlx::query("DELETE FROM contact_field_values WHERE org_id = $1 AND contact_id = $2 AND field_id = $3")
                            .bind(org).bind(contact.as_uuid()).bind(field.as_uuid()).execute(c).await?;
                    }
                }
            });
        }
        Ok(values.iter().map(|(_, k, _)| k.clone()).collect())
    }

    // ---- custom fields ----

    /// The organisation's custom fields, by key.
    pub async fn fields(&mut self) -> Result<Vec<FieldDef>, StoreError> {
        let org = self.org();
        let rows: Vec<(Uuid, String, String, String, String)> = with_conn!(self.tx, c => {
            sqlx::query_as("SELECT id, key, label, kind, options FROM contact_fields WHERE org_id = $1 ORDER BY key")
                .bind(org).fetch_all(c).await?
        });
        rows.into_iter().map(field_def).collect()
    }

    /// One custom field.
    pub async fn field(&mut self, id: FieldId) -> Result<FieldDef, StoreError> {
        self.fields()
            .await?
            .into_iter()
            .find(|f| f.id == id)
            .ok_or(StoreError::NotFound)
    }

    /// Defines a custom field. Its key and type are fixed once created (values depend on them).
    pub async fn create_field(
        &mut self,
        key: &str,
        label: &str,
        kind: FieldKind,
        options: &[String],
    ) -> Result<FieldDef, StoreError> {
        let key = parse_field_key(key).map_err(|m| FieldProblem::new("key", m));
        let label = field_label(label);
        let options = parse_options(kind, options).map_err(|m| FieldProblem::new("options", m));
        let (key, label, options) = match (key, label, options) {
            (Ok(k), Ok(l), Ok(o)) => (k, l, o),
            (k, l, o) => {
                let p = [k.err(), l.err(), o.err()].into_iter().flatten().collect();
                return Err(StoreError::InvalidFields(p));
            }
        };
        let org = self.org();
        let count: i64 = with_conn!(self.tx, c => {
            sqlx::query_scalar("SELECT count(*) FROM contact_fields WHERE org_id = $1").bind(org).fetch_one(c).await?
        });
        if count >= MAX_FIELDS {
            return Err(StoreError::Conflict("too_many_fields"));
        }
        let taken: Option<Uuid> = with_conn!(self.tx, c => {
            sqlx::query_scalar("SELECT id FROM contact_fields WHERE org_id = $1 AND key = $2").bind(org).bind(&key).fetch_optional(c).await?
        });
        if taken.is_some() {
            return Err(StoreError::Conflict("field_key_taken"));
        }
        let id = FieldId::new();
        let now = now_micros();
        let opts = serde_json::to_string(&options).expect("strings serialise");
        with_conn!(self.tx, c => {
            sqlx::query("INSERT INTO contact_fields (org_id, id, key, label, kind, options, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)")
                .bind(org).bind(id.as_uuid()).bind(&key).bind(&label).bind(kind.as_str()).bind(&opts).bind(now)
                .execute(c).await?;
        });
        self.audit(AuditRecord::new(
            "contact_field.created",
            "contact_field",
            id.to_string(),
            serde_json::json!({ "key": key, "kind": kind.as_str() }),
        ))
        .await?;
        self.field(id).await
    }

    /// Renames a field or changes a choice field's options. An option some contact holds
    /// cannot be removed (`option_in_use`).
    pub async fn update_field(
        &mut self,
        id: FieldId,
        label: &str,
        options: &[String],
    ) -> Result<FieldDef, StoreError> {
        let old = self.field(id).await?;
        let label = field_label(label);
        let options = parse_options(old.kind, options).map_err(|m| FieldProblem::new("options", m));
        let (label, options) = match (label, options) {
            (Ok(l), Ok(o)) => (l, o),
            (l, o) => {
                let p = [l.err(), o.err()].into_iter().flatten().collect();
                return Err(StoreError::InvalidFields(p));
            }
        };
        let org = self.org();
        for gone in old.options.iter().filter(|o| !options.contains(o)) {
            let used: i64 = with_conn!(self.tx, c => {
                sqlx::query_scalar("SELECT count(*) FROM contact_field_values WHERE org_id = $1 AND field_id = $2 AND value_text = $3")
                    .bind(org).bind(id.as_uuid()).bind(gone).fetch_one(c).await?
            });
            if used > 0 {
                return Err(StoreError::Conflict("option_in_use"));
            }
        }
        let opts = serde_json::to_string(&options).expect("strings serialise");
        with_conn!(self.tx, c => {
            sqlx::query("UPDATE contact_fields SET label = $3, options = $4, updated_at = $5 WHERE org_id = $1 AND id = $2")
                .bind(org).bind(id.as_uuid()).bind(&label).bind(&opts).bind(now_micros())
                .execute(c).await?;
        });
        self.audit(AuditRecord::new(
            "contact_field.updated",
            "contact_field",
            id.to_string(),
            serde_json::json!({ "key": old.key }),
        ))
        .await?;
        self.field(id).await
    }

    /// Deletes a field and every contact's value of it.
    pub async fn delete_field(&mut self, id: FieldId) -> Result<(), StoreError> {
        let old = self.field(id).await?;
        let org = self.org();
        with_conn!(self.tx, c => {
            sqlx::query("DELETE FROM contact_fields WHERE org_id = $1 AND id = $2").bind(org).bind(id.as_uuid()).execute(c).await?;
        });
        self.audit(AuditRecord::new(
            "contact_field.deleted",
            "contact_field",
            id.to_string(),
            serde_json::json!({ "key": old.key }),
        ))
        .await?;
        Ok(())
    }

    // ---- tags ----

    /// The tag catalogue, by name, with how many contacts carry each tag.
    pub async fn tags(&mut self) -> Result<Vec<Tag>, StoreError> {
        let org = self.org();
        let rows: Vec<(Uuid, String, i64)> = with_conn!(self.tx, c => {
            sqlx::query_as("SELECT t.id, t.name, (SELECT count(*) FROM contact_tags ct WHERE ct.org_id = t.org_id AND ct.tag_id = t.id) FROM tags t WHERE t.org_id = $1 ORDER BY t.name")
                .bind(org).fetch_all(c).await?
        });
        Ok(rows
            .into_iter()
            .map(|(id, name, contacts)| Tag {
                id: TagId::from_uuid(id),
                name,
                contacts,
            })
            .collect())
    }

    /// The tag with this name, if the catalogue has it.
    pub async fn tag_by_name(&mut self, name: &str) -> Result<Option<TagId>, StoreError> {
        let org = self.org();
        let id: Option<Uuid> = with_conn!(self.tx, c => {
            sqlx::query_scalar("SELECT id FROM tags WHERE org_id = $1 AND name = $2").bind(org).bind(name.trim()).fetch_optional(c).await?
        });
        Ok(id.map(TagId::from_uuid))
    }

    /// Adds a tag to the catalogue (`tag_exists` when the name is taken).
    pub async fn create_tag(&mut self, name: &str) -> Result<Tag, StoreError> {
        let name = parse_tag_name(name)
            .map_err(|m| StoreError::InvalidFields(vec![FieldProblem::new("name", m)]))?;
        if self.tag_by_name(&name).await?.is_some() {
            return Err(StoreError::Conflict("tag_exists"));
        }
        let org = self.org();
        let count: i64 = with_conn!(self.tx, c => {
            sqlx::query_scalar("SELECT count(*) FROM tags WHERE org_id = $1").bind(org).fetch_one(c).await?
        });
        if count >= MAX_TAGS {
            return Err(StoreError::Conflict("too_many_tags"));
        }
        let id = TagId::new();
        with_conn!(self.tx, c => {
            sqlx::query("INSERT INTO tags (org_id, id, name, created_at) VALUES ($1, $2, $3, $4)")
                .bind(org).bind(id.as_uuid()).bind(&name).bind(now_micros()).execute(c).await?;
        });
        self.audit(AuditRecord::new(
            "tag.created",
            "tag",
            id.to_string(),
            serde_json::json!({ "name": name }),
        ))
        .await?;
        Ok(Tag {
            id,
            name,
            contacts: 0,
        })
    }

    /// Renames a tag.
    pub async fn rename_tag(&mut self, id: TagId, name: &str) -> Result<Tag, StoreError> {
        let name = parse_tag_name(name)
            .map_err(|m| StoreError::InvalidFields(vec![FieldProblem::new("name", m)]))?;
        if let Some(other) = self.tag_by_name(&name).await?
            && other != id
        {
            return Err(StoreError::Conflict("tag_exists"));
        }
        let org = self.org();
        let n = with_conn!(self.tx, c => {
            sqlx::query("UPDATE tags SET name = $3 WHERE org_id = $1 AND id = $2").bind(org).bind(id.as_uuid()).bind(&name).execute(c).await?.rows_affected()
        });
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        self.audit(AuditRecord::new(
            "tag.renamed",
            "tag",
            id.to_string(),
            serde_json::json!({ "name": name }),
        ))
        .await?;
        self.tags()
            .await?
            .into_iter()
            .find(|t| t.id == id)
            .ok_or(StoreError::NotFound)
    }

    /// Removes a tag from the catalogue and from every contact.
    pub async fn delete_tag(&mut self, id: TagId) -> Result<(), StoreError> {
        let org = self.org();
        let n = with_conn!(self.tx, c => {
            sqlx::query("DELETE FROM tags WHERE org_id = $1 AND id = $2").bind(org).bind(id.as_uuid()).execute(c).await?.rows_affected()
        });
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        self.audit(AuditRecord::new(
            "tag.deleted",
            "tag",
            id.to_string(),
            serde_json::json!({}),
        ))
        .await?;
        Ok(())
    }

    /// Puts a catalogue tag on a contact, or takes it off. Idempotent.
    pub async fn set_contact_tag(
        &mut self,
        contact: ContactId,
        tag: TagId,
        on: bool,
    ) -> Result<(), StoreError> {
        let org = self.org();
        let known: Option<Uuid> = with_conn!(self.tx, c => {
            sqlx::query_scalar("SELECT id FROM tags WHERE org_id = $1 AND id = $2").bind(org).bind(tag.as_uuid()).fetch_optional(c).await?
        });
        if known.is_none() {
            return Err(StoreError::NotFound);
        }
        self.contact(contact).await?;
        let n = with_conn!(self.tx, c => {
            if on {
                sqlx::query("INSERT INTO contact_tags (org_id, contact_id, tag_id, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING")
                    .bind(org).bind(contact.as_uuid()).bind(tag.as_uuid()).bind(now_micros()).execute(c).await?.rows_affected()
            } else {
                sqlx::query("DELETE FROM contact_tags WHERE org_id = $1 AND contact_id = $2 AND tag_id = $3")
                    .bind(org).bind(contact.as_uuid()).bind(tag.as_uuid()).execute(c).await?.rows_affected()
            }
        });
        if n > 0 {
            self.audit(AuditRecord::new(
                if on {
                    "contact.tagged"
                } else {
                    "contact.untagged"
                },
                "contact",
                contact.to_string(),
                serde_json::json!({ "tag_id": tag }),
            ))
            .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_patterns_escape_like_syntax() {
        assert_eq!(like_pattern("50%_a\\B"), "%50\\%\\_a\\\\b%");
    }

    #[test]
    fn inputs_report_every_bad_field_at_once() {
        let defs = vec![FieldDef {
            id: FieldId::new(),
            key: "city".into(),
            label: "City".into(),
            kind: FieldKind::Choice,
            options: vec!["Pune".into()],
        }];
        let input = ContactInput {
            phone: Some("12".into()),
            email: Some("not-an-email".into()),
            language: Some("english".into()),
            fields: [
                ("city".to_string(), serde_json::json!("Delhi")),
                ("shoe".to_string(), serde_json::json!("42")),
            ]
            .into(),
            ..Default::default()
        };
        let problems = check_input(&input, &defs).err().unwrap();
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            ["phone", "email", "language", "fields.city", "fields.shoe"]
        );
    }
}
