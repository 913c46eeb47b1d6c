//! CSV imports of contacts: upload (parsed and bounded at once), a column mapping, a dry run
//! that reports every row it would reject and why, then the import itself, run by the
//! worker a chunk of rows per transaction (progress and rejections saved with each chunk,
//! so a crash resumes where it stopped) until the report is final.
//!
//! A row with a number or user id another row of the file already had is a duplicate. An
//! existing contact (same number or user id) is updated: empty cells leave values as they
//! are. A consent column records ledger events with source `import` and the import's
//! evidence; an import never opts back in a contact whose latest event is an opt-out (the
//! row is rejected), so a customer's STOP cannot be undone by a spreadsheet.

use crate::audience::{ContactInput, FieldDef, describe_problems};
use crate::audit::AuditRecord;
use crate::messaging::CustomerIdentity;
use crate::orgs::now_micros;
use crate::tenant::{TenantCtx, TenantTx, with_conn};
use crate::{Store, StoreError};
use frontdesk_domain::audience::{ConsentSource, ConsentState, parse_csv, parse_text};
use frontdesk_domain::{Bsuid, E164, ImportId, OrgId, TagId};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use time::OffsetDateTime;
use uuid::Uuid;

/// Rows the worker imports per transaction.
pub const IMPORT_CHUNK: usize = 200;

/// How the report starts the reason of a row whose number or user id an earlier row had.
pub const DUPLICATE_ROW: &str = "duplicate of line";

/// Where a column goes: `name`, `phone`, `user_id`, `username`, `email`, `language`,
/// `company`, `tags` (names separated by `;` or `,`), `consent` (yes/no, opt_in/opt_out),
/// `field:<key>`, or `ignore`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ImportMapping {
    /// Column name (as in the file's first row) → target.
    pub columns: BTreeMap<String, String>,
    /// Required when a column is mapped to `consent`: what shows these customers' choice.
    #[serde(default)]
    pub consent_evidence: Option<String>,
}

/// A row the import rejects, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RejectedRow {
    /// The line in the file (the header is line 1).
    pub line: usize,
    pub reason: String,
}

/// Rejected rows split into the rest (invalid: no valid number, a bad value, a refused
/// consent change…) and duplicates (of an earlier row's number or user id).
pub fn count_rejected(rows: &[RejectedRow]) -> (i64, i64) {
    let duplicates = rows
        .iter()
        .filter(|r| r.reason.starts_with(DUPLICATE_ROW))
        .count() as i64;
    (rows.len() as i64 - duplicates, duplicates)
}

/// What a dry run found, or what the import did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ImportReport {
    pub total_rows: i64,
    /// Contacts created (dry run: that would be).
    pub created: i64,
    /// Existing contacts updated (dry run: that would be).
    pub updated: i64,
    pub rejected: Vec<RejectedRow>,
}

/// An import as the API and pages show it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ImportView {
    pub id: ImportId,
    /// `uploaded`, `queued`, `running`, `done` or `failed`.
    pub status: String,
    pub filename: String,
    /// The file's column names.
    pub columns: Vec<String>,
    pub mapping: Option<ImportMapping>,
    pub total_rows: i64,
    pub processed_rows: i64,
    pub created: i64,
    pub updated: i64,
    pub rejected: Vec<RejectedRow>,
    /// The last dry run's report.
    pub dry_run: Option<ImportReport>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
}

#[derive(sqlx::FromRow)]
struct ImportRow {
    id: Uuid,
    status: String,
    filename: String,
    columns: String,
    mapping: Option<String>,
    total_rows: i32,
    processed_rows: i32,
    created_count: i32,
    updated_count: i32,
    rejected: String,
    dry_run: Option<String>,
    created_at: OffsetDateTime,
    finished_at: Option<OffsetDateTime>,
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("import {what} does not parse"))
}

fn view(r: ImportRow) -> Result<ImportView, StoreError> {
    Ok(ImportView {
        id: ImportId::from_uuid(r.id),
        status: r.status,
        filename: r.filename,
        columns: serde_json::from_str(&r.columns).map_err(|_| corrupt("columns"))?,
        mapping: r
            .mapping
            .map(|m| serde_json::from_str(&m).map_err(|_| corrupt("mapping")))
            .transpose()?,
        total_rows: r.total_rows.into(),
        processed_rows: r.processed_rows.into(),
        created: r.created_count.into(),
        updated: r.updated_count.into(),
        rejected: serde_json::from_str(&r.rejected).map_err(|_| corrupt("report"))?,
        dry_run: r
            .dry_run
            .map(|m| serde_json::from_str(&m).map_err(|_| corrupt("dry run")))
            .transpose()?,
        created_at: r.created_at,
        finished_at: r.finished_at,
    })
}

/// A mapping checked against the file and the organisation: column index → target.
#[derive(Debug)]
struct Plan {
    targets: Vec<(usize, Target)>,
    evidence: Option<String>,
    tags: HashMap<String, TagId>,
}

#[derive(Debug, Clone, PartialEq)]
enum Target {
    Name,
    Phone,
    UserId,
    Username,
    Email,
    Language,
    Company,
    Tags,
    Consent,
    Field(String),
}

fn plan(
    columns: &[String],
    m: &ImportMapping,
    defs: &[FieldDef],
    tags: HashMap<String, TagId>,
) -> Result<Plan, StoreError> {
    let bad = |msg: String| StoreError::Invalid(format!("mapping: {msg}"));
    let mut targets: Vec<(usize, Target)> = Vec::new();
    for (col, target) in &m.columns {
        let idx = columns
            .iter()
            .position(|c| c == col)
            .ok_or_else(|| bad(format!("the file has no column {col:?}")))?;
        let t = match target.as_str() {
            "ignore" => continue,
            "name" => Target::Name,
            "phone" => Target::Phone,
            "user_id" => Target::UserId,
            "username" => Target::Username,
            "email" => Target::Email,
            "language" => Target::Language,
            "company" => Target::Company,
            "tags" => Target::Tags,
            "consent" => Target::Consent,
            other => match other.strip_prefix("field:") {
                Some(key) if defs.iter().any(|d| d.key == key) => Target::Field(key.to_owned()),
                _ => {
                    return Err(bad(format!(
                        "{other:?} is not a contact value or a custom field"
                    )));
                }
            },
        };
        if targets.iter().any(|(_, x)| *x == t) {
            return Err(bad(format!("two columns go to {target}")));
        }
        targets.push((idx, t));
    }
    if !targets
        .iter()
        .any(|(_, t)| matches!(t, Target::Phone | Target::UserId))
    {
        return Err(bad(
            "map a column to phone (or user_id): contacts are keyed by it".into(),
        ));
    }
    let evidence = match &m.consent_evidence {
        Some(e) => parse_text(e, 1000).map_err(|e| bad(format!("consent_evidence: {e}")))?,
        None => None,
    };
    if targets.iter().any(|(_, t)| *t == Target::Consent) && evidence.is_none() {
        return Err(bad(
            "a consent column needs consent_evidence (what shows these customers agreed)".into(),
        ));
    }
    Ok(Plan {
        targets,
        evidence,
        tags,
    })
}

/// One row, ready to import.
#[derive(Debug)]
struct RowPlan {
    input: ContactInput,
    identity: CustomerIdentity,
    /// The number or user id that keys the row (for duplicates in the file).
    key: String,
    tags: Vec<TagId>,
    consent: Option<ConsentState>,
}

fn plan_row(p: &Plan, row: &[String]) -> Result<RowPlan, String> {
    let mut input = ContactInput::default();
    let mut tags = Vec::new();
    let mut consent = None;
    for (idx, t) in &p.targets {
        let v = row.get(*idx).map(|s| s.trim()).unwrap_or("");
        if v.is_empty() {
            continue;
        }
        let v = v.to_owned();
        match t {
            Target::Name => input.name = Some(v),
            Target::Phone => input.phone = Some(v),
            Target::UserId => input.user_id = Some(v),
            Target::Username => input.username = Some(v),
            Target::Email => input.email = Some(v),
            Target::Language => input.language = Some(v),
            Target::Company => input.company = Some(v),
            Target::Field(k) => {
                input.fields.insert(k.clone(), serde_json::Value::String(v));
            }
            Target::Tags => {
                for name in v.split([';', ',']).map(str::trim).filter(|s| !s.is_empty()) {
                    let id = p
                        .tags
                        .get(name)
                        .ok_or_else(|| format!("tags: no tag {name:?} in the catalogue"))?;
                    if !tags.contains(id) {
                        tags.push(*id);
                    }
                }
            }
            Target::Consent => {
                consent = Some(match v.to_ascii_lowercase().as_str() {
                    "yes" | "y" | "true" | "1" | "opt_in" | "opted in" | "in" => {
                        ConsentState::OptIn
                    }
                    "no" | "n" | "false" | "0" | "opt_out" | "opted out" | "out" => {
                        ConsentState::OptOut
                    }
                    _ => return Err(format!("consent: {v:?} is not yes or no")),
                })
            }
        }
    }
    let phone = match &input.phone {
        Some(s) => Some(E164::parse(s).map_err(|e| format!("phone: {e}"))?),
        None => None,
    };
    let bsuid = match &input.user_id {
        Some(s) => Some(Bsuid::parse(s).map_err(|e| format!("user_id: {e}"))?),
        None => None,
    };
    let key = match (&phone, &bsuid) {
        (Some(p), _) => p.as_str().to_owned(),
        (None, Some(b)) => b.as_str().to_owned(),
        (None, None) => return Err("no phone number or user id".into()),
    };
    Ok(RowPlan {
        input,
        identity: CustomerIdentity {
            phone,
            bsuid,
            ..Default::default()
        },
        key,
        tags,
        consent,
    })
}

/// The outcome of one row.
enum RowOutcome {
    Created,
    Updated,
}

impl TenantTx {
    async fn import_row(&mut self, id: ImportId) -> Result<ImportRow, StoreError> {
        let org = self.org();
        let r: Option<ImportRow> = with_conn!(self.tx, c => {
            sqlx::query_as("SELECT id, status, filename, columns, mapping, total_rows, processed_rows, created_count, updated_count, rejected, dry_run, created_at, finished_at FROM contact_imports WHERE org_id = $1 AND id = $2")
                .bind(org).bind(id.as_uuid()).fetch_optional(c).await?
        });
        r.ok_or(StoreError::NotFound)
    }

    /// One import.
    pub async fn contact_import(&mut self, id: ImportId) -> Result<ImportView, StoreError> {
        view(self.import_row(id).await?)
    }

    /// Stores an uploaded CSV file (parsed now: a file that is not CSV, too large, or with
    /// too many rows is refused before anything is stored).
    pub async fn upload_import(
        &mut self,
        filename: &str,
        csv: &str,
    ) -> Result<ImportView, StoreError> {
        let (columns, rows) =
            parse_csv(csv).map_err(|m| StoreError::Invalid(format!("file: {m}")))?;
        if rows.is_empty() {
            return Err(StoreError::Invalid("file: no rows below the header".into()));
        }
        let filename: String = filename.trim().chars().take(200).collect();
        let org = self.org();
        let id = ImportId::new();
        let actor = {
            let a = self.ctx().actor();
            format!("{}:{}", a.kind(), a.id_text())
        };
        let cols = serde_json::to_string(&columns).expect("strings serialise");
        with_conn!(self.tx, c => {
            sqlx::query("INSERT INTO contact_imports (org_id, id, status, filename, csv, columns, total_rows, created_by, created_at) VALUES ($1, $2, 'uploaded', $3, $4, $5, $6, $7, $8)")
                .bind(org).bind(id.as_uuid()).bind(&filename).bind(csv).bind(&cols).bind(rows.len() as i32).bind(&actor).bind(now_micros())
                .execute(c).await?;
        });
        self.audit(AuditRecord::new(
            "contact_import.uploaded",
            "contact_import",
            id.to_string(),
            serde_json::json!({ "rows": rows.len(), "columns": columns.len() }),
        ))
        .await?;
        self.contact_import(id).await
    }

    async fn import_plan(
        &mut self,
        columns: &[String],
        mapping: &ImportMapping,
    ) -> Result<Plan, StoreError> {
        let defs = self.fields().await?;
        let tags = self
            .tags()
            .await?
            .into_iter()
            .map(|t| (t.name, t.id))
            .collect();
        plan(columns, mapping, &defs, tags)
    }

    /// The import's file, parsed: its column names and rows.
    pub(crate) async fn import_csv(
        &mut self,
        id: ImportId,
    ) -> Result<(Vec<String>, Vec<Vec<String>>), StoreError> {
        let org = self.org();
        let csv: String = with_conn!(self.tx, c => {
            sqlx::query_scalar("SELECT csv FROM contact_imports WHERE org_id = $1 AND id = $2").bind(org).bind(id.as_uuid()).fetch_one(c).await?
        });
        parse_csv(&csv).map_err(|_| corrupt("file"))
    }

    /// Checks one planned row against the store without writing: what it would do, or why not.
    async fn check_row(&mut self, r: &RowPlan) -> Result<Result<RowOutcome, String>, StoreError> {
        let problems = self.check_contact_input(&r.input).await?;
        if !problems.is_empty() {
            return Ok(Err(describe_problems(&problems)));
        }
        let existing = self.find_contact(&r.identity).await?;
        if let (Some(c), Some(ConsentState::OptIn)) = (existing, r.consent)
            && self.consent(c).await?.state == Some(ConsentState::OptOut)
        {
            return Ok(Err(
                "consent: this contact opted out; an import cannot opt them back in".into(),
            ));
        }
        Ok(Ok(if existing.is_some() {
            RowOutcome::Updated
        } else {
            RowOutcome::Created
        }))
    }

    /// Every row the mapping would reject and why, and what the rest would do; nothing is
    /// written but the report and the mapping.
    pub async fn dry_run_import(
        &mut self,
        id: ImportId,
        mapping: &ImportMapping,
    ) -> Result<ImportReport, StoreError> {
        let row = self.import_row(id).await?;
        if row.status != "uploaded" {
            return Err(StoreError::Conflict("import_started"));
        }
        let (columns, rows) = self.import_csv(id).await?;
        let plan = self.import_plan(&columns, mapping).await?;
        let mut report = ImportReport {
            total_rows: rows.len() as i64,
            created: 0,
            updated: 0,
            rejected: Vec::new(),
        };
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (i, r) in rows.iter().enumerate() {
            let line = i + 2;
            let outcome = match plan_row(&plan, r) {
                Err(reason) => Err(reason),
                Ok(p) => match seen.get(&p.key) {
                    Some(first) => Err(format!("{DUPLICATE_ROW} {first} (same number or user id)")),
                    None => {
                        seen.insert(p.key.clone(), line);
                        self.check_row(&p).await?
                    }
                },
            };
            match outcome {
                Ok(RowOutcome::Created) => report.created += 1,
                Ok(RowOutcome::Updated) => report.updated += 1,
                Err(reason) => report.rejected.push(RejectedRow { line, reason }),
            }
        }
        let org = self.org();
        let m = serde_json::to_string(mapping).expect("mappings serialise");
        let r = serde_json::to_string(&report).expect("reports serialise");
        with_conn!(self.tx, c => {
            sqlx::query("UPDATE contact_imports SET mapping = $3, dry_run = $4 WHERE org_id = $1 AND id = $2")
                .bind(org).bind(id.as_uuid()).bind(&m).bind(&r).execute(c).await?;
        });
        Ok(report)
    }

    /// Queues the import with this mapping for the worker (once: `import_started` after).
    pub async fn start_import(
        &mut self,
        id: ImportId,
        mapping: &ImportMapping,
    ) -> Result<ImportView, StoreError> {
        let row = self.import_row(id).await?;
        if row.status != "uploaded" {
            return Err(StoreError::Conflict("import_started"));
        }
        let columns: Vec<String> =
            serde_json::from_str(&row.columns).map_err(|_| corrupt("columns"))?;
        self.import_plan(&columns, mapping).await?;
        let org = self.org();
        let m = serde_json::to_string(mapping).expect("mappings serialise");
        let now = now_micros();
        with_conn!(self.tx, c => {
            sqlx::query("UPDATE contact_imports SET mapping = $3, status = 'queued' WHERE org_id = $1 AND id = $2")
                .bind(org).bind(id.as_uuid()).bind(&m).execute(&mut *c).await?;
            sqlx::query("INSERT INTO import_queue (import_id, org_id, queued_at) VALUES ($1, $2, $3)")
                .bind(id.as_uuid()).bind(org).bind(now).execute(&mut *c).await?;
        });
        self.audit(AuditRecord::new(
            "contact_import.started",
            "contact_import",
            id.to_string(),
            serde_json::json!({ "mapping": mapping.columns }),
        ))
        .await?;
        self.contact_import(id).await
    }

    /// Imports the next chunk of an import's rows; returns whether rows remain.
    pub async fn import_next_chunk(&mut self, id: ImportId) -> Result<bool, StoreError> {
        let row = self.import_row(id).await?;
        if !matches!(row.status.as_str(), "queued" | "running") {
            return Ok(false);
        }
        let mapping: ImportMapping = row
            .mapping
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(|_| corrupt("mapping"))?
            .unwrap_or_default();
        let (columns, rows) = self.import_csv(id).await?;
        let org = self.org();
        let plan = match self.import_plan(&columns, &mapping).await {
            Ok(p) => p,
            Err(StoreError::Invalid(m)) => {
                // A field or tag the mapping named was deleted meanwhile.
                with_conn!(self.tx, c => {
                    sqlx::query("UPDATE contact_imports SET status = 'failed', rejected = $3, finished_at = $4 WHERE org_id = $1 AND id = $2")
                        .bind(org).bind(id.as_uuid()).bind(serde_json::to_string(&[RejectedRow { line: 0, reason: m }]).expect("serialises")).bind(now_micros()).execute(&mut *c).await?;
                    sqlx::query("DELETE FROM import_queue WHERE import_id = $1").bind(id.as_uuid()).execute(&mut *c).await?;
                });
                return Ok(false);
            }
            Err(e) => return Err(e),
        };
        let start = row.processed_rows.max(0) as usize;
        let end = (start + IMPORT_CHUNK).min(rows.len());
        // Duplicates are judged against every earlier row of the file.
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (i, r) in rows[..start].iter().enumerate() {
            if let Ok(p) = plan_row(&plan, r) {
                seen.entry(p.key).or_insert(i + 2);
            }
        }
        let mut rejected: Vec<RejectedRow> =
            serde_json::from_str(&row.rejected).map_err(|_| corrupt("report"))?;
        let (mut created, mut updated) =
            (i64::from(row.created_count), i64::from(row.updated_count));
        let evidence = plan.evidence.clone().unwrap_or_default();
        for (i, r) in rows[start..end].iter().enumerate() {
            let line = start + i + 2;
            let p = match plan_row(&plan, r) {
                Ok(p) => p,
                Err(reason) => {
                    rejected.push(RejectedRow { line, reason });
                    continue;
                }
            };
            if let Some(first) = seen.get(&p.key) {
                rejected.push(RejectedRow {
                    line,
                    reason: format!("{DUPLICATE_ROW} {first} (same number or user id)"),
                });
                continue;
            }
            seen.insert(p.key.clone(), line);
            if let Err(reason) = self.check_row(&p).await? {
                rejected.push(RejectedRow { line, reason });
                continue;
            }
            let contact = match self.find_contact(&p.identity).await? {
                Some(c) => {
                    self.update_contact(c, &p.input).await?;
                    updated += 1;
                    c
                }
                None => {
                    created += 1;
                    self.create_contact(&p.input).await?.id
                }
            };
            // The import's contacts, each with its row (a campaign's CSV audience).
            with_conn!(self.tx, c => {
                sqlx::query("INSERT INTO contact_import_contacts (org_id, import_id, contact_id, line) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING")
                    .bind(org).bind(id.as_uuid()).bind(contact.as_uuid()).bind(line as i32).execute(c).await?;
            });
            for t in &p.tags {
                self.set_contact_tag(contact, *t, true).await?;
            }
            if let Some(state) = p.consent
                && self.consent(contact).await?.state != Some(state)
            {
                self.record_consent(contact, state, ConsentSource::Import, &evidence)
                    .await?;
            }
        }
        let done = end >= rows.len();
        let rej = serde_json::to_string(&rejected).expect("serialises");
        let now = now_micros();
        with_conn!(self.tx, c => {
            sqlx::query("UPDATE contact_imports SET status = CASE WHEN $8 THEN 'done' ELSE 'running' END, processed_rows = $3, created_count = $4, updated_count = $5, rejected = $6, finished_at = CASE WHEN $8 THEN $7 ELSE NULL END WHERE org_id = $1 AND id = $2")
                .bind(org).bind(id.as_uuid()).bind(end as i32).bind(created as i32).bind(updated as i32).bind(&rej).bind(now).bind(done)
                .execute(&mut *c).await?;
            if done {
                sqlx::query("DELETE FROM import_queue WHERE import_id = $1").bind(id.as_uuid()).execute(&mut *c).await?;
            } else {
                sqlx::query("UPDATE import_queue SET lease_until = NULL WHERE import_id = $1").bind(id.as_uuid()).execute(&mut *c).await?;
            }
        });
        if done {
            self.audit(AuditRecord::new(
                "contact_import.finished",
                "contact_import",
                id.to_string(),
                serde_json::json!({ "created": created, "updated": updated, "rejected": rejected.len() }),
            ))
            .await?;
        }
        Ok(!done)
    }
}

impl Store {
    /// Leases one queued import for a while (the worker's claim), across organisations.
    pub async fn claim_import(
        &self,
        now: OffsetDateTime,
        lease: time::Duration,
    ) -> Result<Option<(TenantCtx, ImportId)>, StoreError> {
        let mut g = self.begin_global_background().await?;
        let rows: Vec<(Uuid, Uuid)> = crate::messaging::claim(
            &mut g,
            crate::messaging::leased_claim!(
                "UPDATE import_queue SET lease_until = $2 WHERE import_id IN",
                "SELECT import_id FROM import_queue WHERE lease_until IS NULL OR lease_until < $1 ORDER BY queued_at LIMIT $3",
                "RETURNING org_id, import_id"
            ),
            (now, now + lease, 1),
        )
        .await?;
        g.commit().await?;
        Ok(rows.into_iter().next().map(|(org, id)| {
            (
                TenantCtx::system(OrgId::from_uuid(org), "worker"),
                ImportId::from_uuid(id),
            )
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mapping_needs_a_key_column_and_evidence_for_consent() {
        let cols: Vec<String> = ["Name", "Mobile", "Opt in"].map(String::from).to_vec();
        let m = |pairs: &[(&str, &str)], ev: Option<&str>| ImportMapping {
            columns: pairs
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            consent_evidence: ev.map(String::from),
        };
        assert!(plan(&cols, &m(&[("Name", "name")], None), &[], HashMap::new()).is_err());
        assert!(
            plan(
                &cols,
                &m(&[("Mobile", "phone"), ("Opt in", "consent")], None),
                &[],
                HashMap::new()
            )
            .is_err()
        );
        assert!(
            plan(
                &cols,
                &m(&[("Mobile", "phone"), ("Name", "phone")], None),
                &[],
                HashMap::new()
            )
            .is_err()
        );
        assert!(
            plan(
                &cols,
                &m(&[("Mobile", "phone"), ("Name", "field:city")], None),
                &[],
                HashMap::new()
            )
            .is_err()
        );
        let p = plan(
            &cols,
            &m(
                &[("Mobile", "phone"), ("Opt in", "consent")],
                Some("shop form"),
            ),
            &[],
            HashMap::new(),
        )
        .unwrap();
        let row = plan_row(&p, &["".into(), "+91 98765 43210".into(), "Yes".into()]).unwrap();
        assert_eq!(
            (row.key.as_str(), row.consent),
            ("+919876543210", Some(ConsentState::OptIn))
        );
        assert!(
            plan_row(&p, &["".into(), "12345".into(), "".into()])
                .unwrap_err()
                .starts_with("phone")
        );
        assert!(plan_row(&p, &["".into(), "+919876543210".into(), "maybe".into()]).is_err());
    }
}
