//! Contact exports under two-person control: a member with `contacts.export` asks for one
//! (all contacts, or a segment's), another person with `contacts.approve_export` approves or
//! refuses it (never the requester), and only the requester downloads it, as CSV, with
//! numbers masked as the requester's role sees them. Request, decision and every download
//! are audited.

use crate::StoreError;
use crate::audit::AuditRecord;
use crate::orgs::now_micros;
use crate::segments::{Bind, Piece};
use crate::tenant::{TenantTx, Tx, with_conn};
use frontdesk_domain::audience::Rule;
use frontdesk_domain::{ContactId, ExportId, SegmentId};
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

/// Most contacts one export holds.
pub const MAX_EXPORT_ROWS: i64 = 100_000;

/// An export request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ExportView {
    pub id: ExportId,
    /// `user:<id>` or `api_key:<id>`.
    pub requested_by: String,
    /// Only this segment's contacts; absent: every contact.
    pub segment_id: Option<SegmentId>,
    /// `requested`, `approved` or `refused`.
    pub status: String,
    pub decided_by: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub decided_at: Option<OffsetDateTime>,
    pub downloads: i32,
}

type ExportRow = (
    Uuid,
    String,
    Option<Uuid>,
    String,
    Option<String>,
    OffsetDateTime,
    Option<OffsetDateTime>,
    i32,
);

fn view(r: ExportRow) -> ExportView {
    ExportView {
        id: ExportId::from_uuid(r.0),
        requested_by: r.1,
        segment_id: r.2.map(SegmentId::from_uuid),
        status: r.3,
        decided_by: r.4,
        created_at: r.5,
        decided_at: r.6,
        downloads: r.7,
    }
}

/// A CSV cell: quoted when needed; text a spreadsheet would run as a formula is prefixed
/// with `'` (numbers are E.164 or masked and keep their `+`).
fn cell(s: &str, formula_guard: bool) -> String {
    let mut s = s.to_owned();
    if formula_guard && s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        s.insert(0, '\'');
    }
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

impl TenantTx {
    fn actor_text(&self) -> String {
        let a = self.ctx().actor();
        format!("{}:{}", a.kind(), a.id_text())
    }

    /// One export request.
    pub async fn contact_export(&mut self, id: ExportId) -> Result<ExportView, StoreError> {
        let org = self.org();
        let r: Option<ExportRow> = with_conn!(self.tx, c => {
            sqlx::query_as("SELECT id, requested_by, segment_id, status, decided_by, created_at, decided_at, downloads FROM contact_exports WHERE org_id = $1 AND id = $2")
                .bind(org).bind(id.as_uuid()).fetch_optional(c).await?
        });
        r.map(view).ok_or(StoreError::NotFound)
    }

    /// The organisation's export requests, newest first (at most 100).
    pub async fn contact_exports(&mut self) -> Result<Vec<ExportView>, StoreError> {
        let org = self.org();
        let rows: Vec<ExportRow> = with_conn!(self.tx, c => {
            sqlx::query_as("SELECT id, requested_by, segment_id, status, decided_by, created_at, decided_at, downloads FROM contact_exports WHERE org_id = $1 ORDER BY created_at DESC, id DESC LIMIT 100")
                .bind(org).fetch_all(c).await?
        });
        Ok(rows.into_iter().map(view).collect())
    }

    /// Asks for an export of every contact, or of a segment's.
    pub async fn request_export(
        &mut self,
        segment: Option<SegmentId>,
    ) -> Result<ExportView, StoreError> {
        if let Some(s) = segment {
            self.segment(s).await?;
        }
        let org = self.org();
        let id = ExportId::new();
        let actor = self.actor_text();
        with_conn!(self.tx, c => {
            sqlx::query("INSERT INTO contact_exports (org_id, id, requested_by, segment_id, status, created_at) VALUES ($1, $2, $3, $4, 'requested', $5)")
                .bind(org).bind(id.as_uuid()).bind(&actor).bind(segment.map(|s| s.as_uuid())).bind(now_micros())
                .execute(c).await?;
        });
        self.audit(AuditRecord::new(
            "contact_export.requested",
            "contact_export",
            id.to_string(),
            serde_json::json!({ "segment_id": segment }),
        ))
        .await?;
        self.contact_export(id).await
    }

    /// Approves or refuses a request: once, by a person other than the requester.
    pub async fn decide_export(
        &mut self,
        id: ExportId,
        approve: bool,
    ) -> Result<ExportView, StoreError> {
        let e = self.contact_export(id).await?;
        if self.ctx().user_id().is_none() {
            return Err(StoreError::Conflict("export_needs_a_person"));
        }
        let me = self.actor_text();
        if e.requested_by == me {
            return Err(StoreError::Conflict("own_export"));
        }
        if e.status != "requested" {
            return Err(StoreError::Conflict("export_decided"));
        }
        let org = self.org();
        let status = if approve { "approved" } else { "refused" };
        with_conn!(self.tx, c => {
            sqlx::query("UPDATE contact_exports SET status = $3, decided_by = $4, decided_at = $5 WHERE org_id = $1 AND id = $2 AND status = 'requested'")
                .bind(org).bind(id.as_uuid()).bind(status).bind(&me).bind(now_micros()).execute(c).await?;
        });
        self.audit(AuditRecord::new(
            if approve {
                "contact_export.approved"
            } else {
                "contact_export.refused"
            },
            "contact_export",
            id.to_string(),
            serde_json::json!({ "requested_by": e.requested_by }),
        ))
        .await?;
        self.contact_export(id).await
    }

    /// The contacts a rule selects, in id order after `after` (no consent exclusion: this is
    /// for exports, not sends).
    async fn rule_contacts(
        &mut self,
        rule: &Rule,
        after: Option<ContactId>,
        limit: i64,
        now: OffsetDateTime,
    ) -> Result<Vec<ContactId>, StoreError> {
        let compiled = self.compile_rule(rule, now).await?;
        let mut q = vec![
            Piece::Sql("SELECT k.id FROM contacts k WHERE k.org_id = "),
            Piece::Bind(Bind::Uuid(self.org())),
            Piece::Sql(" AND k.erased_at IS NULL AND ("),
        ];
        q.extend(compiled);
        q.push(Piece::Sql(")"));
        if let Some(a) = after {
            q.push(Piece::Sql(" AND k.id > "));
            q.push(Piece::Bind(Bind::Uuid(a.as_uuid())));
        }
        q.push(Piece::Sql(" ORDER BY k.id LIMIT "));
        q.push(Piece::Bind(Bind::Int(limit)));
        let ids: Vec<Uuid> =
            crate::segments::run_pieces!(self.tx, &q, build_query_scalar, Uuid, fetch_all);
        Ok(ids.into_iter().map(ContactId::from_uuid).collect())
    }

    /// The approved export as CSV, for its requester only (anyone else: not found); numbers
    /// masked as the requester's role sees them. Audited with the row count.
    pub async fn download_export(
        &mut self,
        id: ExportId,
        now: OffsetDateTime,
    ) -> Result<String, StoreError> {
        let e = self.contact_export(id).await?;
        if e.requested_by != self.actor_text() {
            return Err(StoreError::NotFound);
        }
        if e.status != "approved" {
            return Err(StoreError::Conflict("export_not_approved"));
        }
        let rule = match e.segment_id {
            Some(s) => self.segment(s).await?.rule,
            None => Rule::all(),
        };
        let fields = self.fields().await?;
        let mut out = String::from(
            "id,name,whatsapp_name,phone,user_id,username,email,language,company,tags,consent",
        );
        for f in &fields {
            out.push(',');
            out.push_str(&cell(&f.key, true));
        }
        out.push_str("\r\n");
        let mut after = None;
        let mut rows = 0i64;
        loop {
            let ids = self.rule_contacts(&rule, after, 500, now).await?;
            if ids.is_empty() || rows >= MAX_EXPORT_ROWS {
                break;
            }
            after = ids.last().copied();
            for id in ids {
                let c = self.contact_record(id).await?;
                let opt = |v: &Option<String>| cell(v.as_deref().unwrap_or(""), true);
                let tags: Vec<&str> = c.tags.iter().map(|t| t.name.as_str()).collect();
                let mut line = vec![
                    c.id.to_string(),
                    opt(&c.name),
                    opt(&c.profile_name),
                    cell(c.phone.as_deref().unwrap_or(""), false),
                    opt(&c.user_id),
                    opt(&c.username),
                    opt(&c.email),
                    opt(&c.language),
                    opt(&c.company),
                    cell(&tags.join(";"), true),
                    c.consent.map(|s| s.as_str()).unwrap_or("").to_owned(),
                ];
                for f in &fields {
                    let v = match c.fields.get(&f.key) {
                        Some(serde_json::Value::String(s)) => s.clone(),
                        Some(serde_json::Value::Null) | None => String::new(),
                        Some(other) => other.to_string(),
                    };
                    line.push(cell(&v, true));
                }
                out.push_str(&line.join(","));
                out.push_str("\r\n");
                rows += 1;
            }
        }
        let org = self.org();
        with_conn!(self.tx, c => {
            sqlx::query("UPDATE contact_exports SET downloads = downloads + 1 WHERE org_id = $1 AND id = $2")
                .bind(org).bind(id.as_uuid()).execute(c).await?;
        });
        self.audit(AuditRecord::new(
            "contact_export.downloaded",
            "contact_export",
            id.to_string(),
            serde_json::json!({ "rows": rows, "masked_numbers": !self.ctx().can(frontdesk_domain::Permission::ContactsViewPhone) }),
        ))
        .await?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::cell;

    #[test]
    fn cells_are_quoted_and_formulas_defused() {
        assert_eq!(cell("Rao, Asha", true), "\"Rao, Asha\"");
        assert_eq!(cell("say \"hi\"", true), "\"say \"\"hi\"\"\"");
        assert_eq!(
            cell("=HYPERLINK(\"x\")", true),
            "\"'=HYPERLINK(\"\"x\"\")\""
        );
        assert_eq!(cell("+14155550100", false), "+14155550100");
        assert_eq!(cell("@sum", true), "'@sum");
    }
}
