//! CSV imports of contacts: upload (parsed and bounded at once, its rows kept one per table
//! row), a column mapping, a dry run that reports every row it would reject and why, then
//! the import itself, run by the worker a chunk of rows per transaction (progress, the keys
//! seen and the rejections saved with each chunk, so a crash resumes where it stopped)
//! until the report is final. Reports show the first [`REPORT_ROWS`] rejected rows and the
//! counts; [`TenantTx::import_rejections`] gives every one.
//!
//! A row with a number or user id another row of the file already had is a duplicate. An
//! existing contact (same number or user id) is updated: empty cells leave values as they
//! are. A consent column records ledger events with source `import` and the import's
//! evidence; an import never opts back in a contact whose latest event is an opt-out (the
//! row is rejected), so a customer's STOP cannot be undone by a spreadsheet.

use crate::audience::{ContactInput, FieldDef, describe_problems, input_problems};
use crate::audit::AuditRecord;
use crate::messaging::CustomerIdentity;
use crate::orgs::now_micros;
use crate::tenant::{ROWS_PER_STATEMENT, TenantCtx, TenantTx, push_in, with_builder, with_conn};
use crate::{Store, StoreError};
use frontdesk_domain::audience::{ConsentSource, ConsentState, parse_csv, parse_text};
use frontdesk_domain::{Bsuid, ContactId, E164, ImportId, OrgId, TagId};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use time::OffsetDateTime;
use uuid::Uuid;

/// Rows the worker imports per transaction.
pub const IMPORT_CHUNK: usize = 200;
/// Rejected rows a report shows (all of them: [`TenantTx::import_rejections`]).
pub const REPORT_ROWS: usize = 1000;
/// Rows a dry run reads and checks at a time.
const DRY_RUN_BATCH: usize = 1000;

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
    /// The first rejected rows, by line (at most 1,000; all of them as CSV from
    /// `/rejections.csv`).
    pub rejected: Vec<RejectedRow>,
    /// Rows rejected in all.
    #[serde(default)]
    pub rejected_count: i64,
    /// Of those, duplicates of an earlier row's number or user id.
    #[serde(default)]
    pub duplicate_count: i64,
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
    /// The first rejected rows, by line (at most 1,000; all of them as CSV from
    /// `/rejections.csv`).
    pub rejected: Vec<RejectedRow>,
    /// Rows rejected in all.
    pub rejected_count: i64,
    /// Of those, duplicates of an earlier row's number or user id.
    pub duplicate_count: i64,
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

/// The view of an import row, with the rejected rows the import stored so far (the first
/// ones and the counts).
fn view(
    r: ImportRow,
    mut rejected: Vec<RejectedRow>,
    (stored, stored_duplicates): (i64, i64),
) -> Result<ImportView, StoreError> {
    // Imports uploaded before the rejections table, and a failed import's reason, keep a
    // list in the row.
    let listed: Vec<RejectedRow> =
        serde_json::from_str(&r.rejected).map_err(|_| corrupt("report"))?;
    let (invalid, duplicates) = count_rejected(&listed);
    rejected.extend(listed);
    rejected.sort_by_key(|x| x.line);
    rejected.truncate(REPORT_ROWS);
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
        rejected,
        rejected_count: stored + invalid + duplicates,
        duplicate_count: stored_duplicates + duplicates,
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
        let row = self.import_row(id).await?;
        let first = self
            .rejection_page(id, Phase::Import, Some(REPORT_ROWS))
            .await?;
        let counts = self.rejection_counts(id, Phase::Import).await?;
        view(row, first, counts)
    }

    /// Every row the last dry run (`Phase::DryRun`) or the import rejected, by line.
    pub async fn import_rejections(
        &mut self,
        id: ImportId,
        phase: Phase,
    ) -> Result<Vec<RejectedRow>, StoreError> {
        let row = self.import_row(id).await?;
        let mut all = self.rejection_page(id, phase, None).await?;
        let listed: Vec<RejectedRow> = match phase {
            Phase::Import => serde_json::from_str(&row.rejected).map_err(|_| corrupt("report"))?,
            Phase::DryRun => Vec::new(),
        };
        if all.is_empty()
            && phase == Phase::DryRun
            && let Some(d) = &row.dry_run
        {
            // A dry run from before the rejections table kept its whole list in its report.
            let r: ImportReport = serde_json::from_str(d).map_err(|_| corrupt("dry run"))?;
            all = r.rejected;
        }
        all.extend(listed);
        all.sort_by_key(|x| x.line);
        Ok(all)
    }

    async fn rejection_page(
        &mut self,
        id: ImportId,
        phase: Phase,
        limit: Option<usize>,
    ) -> Result<Vec<RejectedRow>, StoreError> {
        let org = self.org();
        let limit = limit.map_or(i64::MAX, |l| l as i64);
        let rows: Vec<(i32, String)> = with_conn!(self.tx, c => {
            sqlx::query_as("SELECT line, reason FROM contact_import_rejections WHERE org_id = $1 AND import_id = $2 AND phase = $3 ORDER BY line LIMIT $4")
                .bind(org).bind(id.as_uuid()).bind(phase.as_str()).bind(limit).fetch_all(c).await?
        });
        Ok(rows
            .into_iter()
            .map(|(line, reason)| RejectedRow {
                line: line.max(0) as usize,
                reason,
            })
            .collect())
    }

    /// Rows rejected in a phase, and how many of them were duplicates.
    async fn rejection_counts(
        &mut self,
        id: ImportId,
        phase: Phase,
    ) -> Result<(i64, i64), StoreError> {
        let org = self.org();
        let (all, duplicates): (i64, Option<i64>) = with_conn!(self.tx, c => {
            sqlx::query_as("SELECT count(*), sum(CASE WHEN reason LIKE $4 THEN 1 ELSE 0 END) FROM contact_import_rejections WHERE org_id = $1 AND import_id = $2 AND phase = $3")
                .bind(org).bind(id.as_uuid()).bind(phase.as_str()).bind(format!("{DUPLICATE_ROW}%")).fetch_one(c).await?
        });
        Ok((all, duplicates.unwrap_or(0)))
    }

    async fn add_rejections(
        &mut self,
        id: ImportId,
        phase: Phase,
        rows: &[RejectedRow],
    ) -> Result<(), StoreError> {
        let org = self.org();
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            with_builder!(self.tx, qb => {
                qb.push("INSERT INTO contact_import_rejections (org_id, import_id, phase, line, reason) ");
                qb.push_values(chunk, |mut b, r| {
                    b.push_bind(org).push_bind(id.as_uuid()).push_bind(phase.as_str()).push_bind(r.line as i32).push_bind(&r.reason);
                });
                qb.push(" ON CONFLICT DO NOTHING");
            }, execute);
        }
        Ok(())
    }

    /// Stores an uploaded CSV file (parsed now: a file that is not CSV, too large, or with
    /// too many rows is refused before anything is stored); its rows are kept one per table
    /// row, as JSON arrays.
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
            sqlx::query("INSERT INTO contact_imports (org_id, id, status, filename, csv, columns, total_rows, created_by, created_at) VALUES ($1, $2, 'uploaded', $3, '', $4, $5, $6, $7)")
                .bind(org).bind(id.as_uuid()).bind(&filename).bind(&cols).bind(rows.len() as i32).bind(&actor).bind(now_micros())
                .execute(c).await?;
        });
        self.store_import_rows(id, &rows).await?;
        self.audit(AuditRecord::new(
            "contact_import.uploaded",
            "contact_import",
            id.to_string(),
            serde_json::json!({ "rows": rows.len(), "columns": columns.len() }),
        ))
        .await?;
        self.contact_import(id).await
    }

    /// Keeps a file's rows, one table row each from line 2, as JSON arrays.
    async fn store_import_rows(
        &mut self,
        id: ImportId,
        rows: &[Vec<String>],
    ) -> Result<(), StoreError> {
        let org = self.org();
        let mut line = 2usize;
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let cells: Vec<(i32, String)> = chunk
                .iter()
                .map(|r| {
                    let l = line as i32;
                    line += 1;
                    (l, serde_json::to_string(r).expect("strings serialise"))
                })
                .collect();
            with_builder!(self.tx, qb => {
                qb.push("INSERT INTO contact_import_rows (org_id, import_id, line, cells) ");
                qb.push_values(&cells, |mut b, (l, c)| {
                    b.push_bind(org).push_bind(id.as_uuid()).push_bind(*l).push_bind(c);
                });
            }, execute);
        }
        Ok(())
    }

    /// Moves the file of an import uploaded before rows were kept apart into
    /// `contact_import_rows` (so one row of it can be cleared); returns the rejected rows its
    /// record lists. Nothing for any later import.
    pub(crate) async fn keep_legacy_rows(
        &mut self,
        id: ImportId,
    ) -> Result<Vec<RejectedRow>, StoreError> {
        let org = self.org();
        let (csv, rejected): (String, String) = with_conn!(self.tx, c => {
            sqlx::query_as("SELECT csv, rejected FROM contact_imports WHERE org_id = $1 AND id = $2").bind(org).bind(id.as_uuid()).fetch_one(c).await?
        });
        let rejected = serde_json::from_str(&rejected).map_err(|_| corrupt("report"))?;
        if csv.is_empty() {
            return Ok(rejected);
        }
        let (_, rows) = parse_csv(&csv).map_err(|_| corrupt("file"))?;
        self.store_import_rows(id, &rows).await?;
        with_conn!(self.tx, c => {
            sqlx::query("UPDATE contact_imports SET csv = '' WHERE org_id = $1 AND id = $2").bind(org).bind(id.as_uuid()).execute(c).await?;
        });
        Ok(rejected)
    }

    async fn import_plan(
        &mut self,
        columns: &[String],
        mapping: &ImportMapping,
    ) -> Result<(Plan, Vec<FieldDef>), StoreError> {
        let defs = self.fields().await?;
        let tags = self
            .tags()
            .await?
            .into_iter()
            .map(|t| (t.name, t.id))
            .collect();
        Ok((plan(columns, mapping, &defs, tags)?, defs))
    }

    /// The import's column names, and its rows when it was uploaded before rows were kept
    /// in their own table (its file is parsed then; `None` for every later import).
    pub(crate) async fn import_file(
        &mut self,
        id: ImportId,
    ) -> Result<(Vec<String>, Option<Vec<Vec<String>>>), StoreError> {
        let org = self.org();
        let (columns, csv): (String, String) = with_conn!(self.tx, c => {
            sqlx::query_as("SELECT columns, csv FROM contact_imports WHERE org_id = $1 AND id = $2").bind(org).bind(id.as_uuid()).fetch_one(c).await?
        });
        let columns: Vec<String> =
            serde_json::from_str(&columns).map_err(|_| corrupt("columns"))?;
        if csv.is_empty() {
            return Ok((columns, None));
        }
        let (_, rows) = parse_csv(&csv).map_err(|_| corrupt("file"))?;
        Ok((columns, Some(rows)))
    }

    /// Up to `limit` rows of the file after line `after` (line 2 is the first row below the
    /// header), with their lines.
    async fn import_rows(
        &mut self,
        id: ImportId,
        legacy: Option<&[Vec<String>]>,
        after: usize,
        limit: usize,
    ) -> Result<Vec<(usize, Vec<String>)>, StoreError> {
        if let Some(rows) = legacy {
            return Ok(rows
                .iter()
                .enumerate()
                .map(|(i, r)| (i + 2, r.clone()))
                .skip_while(|(line, _)| *line <= after)
                .take(limit)
                .collect());
        }
        let org = self.org();
        let rows: Vec<(i32, String)> = with_conn!(self.tx, c => {
            sqlx::query_as("SELECT line, cells FROM contact_import_rows WHERE org_id = $1 AND import_id = $2 AND line > $3 ORDER BY line LIMIT $4")
                .bind(org).bind(id.as_uuid()).bind(after as i32).bind(limit as i64).fetch_all(c).await?
        });
        rows.into_iter()
            .map(|(line, cells)| {
                Ok((
                    line.max(0) as usize,
                    serde_json::from_str(&cells).map_err(|_| corrupt("row"))?,
                ))
            })
            .collect()
    }

    /// The stored cells of an import's rows from line `after` + 1 on (tests look at what
    /// erasure left).
    #[cfg(feature = "testing")]
    pub async fn import_file_rows(
        &mut self,
        id: ImportId,
        after: usize,
        limit: usize,
    ) -> Result<Vec<(usize, Vec<String>)>, StoreError> {
        self.import_rows(id, None, after, limit).await
    }

    /// The numbers and user ids an import keeps as seen (tests look at what erasure left).
    #[cfg(feature = "testing")]
    pub async fn import_keys(&mut self, id: ImportId) -> Result<Vec<String>, StoreError> {
        let org = self.org();
        Ok(with_conn!(self.tx, c => {
            sqlx::query_scalar("SELECT key FROM contact_import_keys WHERE org_id = $1 AND import_id = $2 ORDER BY key")
                .bind(org).bind(id.as_uuid()).fetch_all(c).await?
        }))
    }

    /// Checks planned rows against the store without writing: for each, the contact it
    /// would update (`None`: it would create one), or why not. The contacts their numbers
    /// and user ids name, and those contacts' consent, are read in a few statements for the
    /// whole batch (a dry run reads a whole file in its request).
    async fn check_rows(
        &mut self,
        rows: &[&RowPlan],
        defs: &[FieldDef],
    ) -> Result<Vec<Result<Option<ContactId>, String>>, StoreError> {
        let org = self.org();
        let phones: Vec<&str> = rows
            .iter()
            .filter_map(|r| r.identity.phone.as_ref().map(E164::as_str))
            .collect();
        let bsuids: Vec<&str> = rows
            .iter()
            .filter_map(|r| r.identity.bsuid.as_ref().map(Bsuid::as_str))
            .collect();
        let (mut by_phone, mut by_bsuid) = (HashMap::new(), HashMap::new());
        for (values, col, map) in [
            (&phones, "phone", &mut by_phone),
            (&bsuids, "bsuid", &mut by_bsuid),
        ] {
            for chunk in values.chunks(ROWS_PER_STATEMENT) {
                let found: Vec<(String, Uuid)> = with_builder!(self.tx, qb => {
                    qb.push("SELECT ");
                    qb.push(col);
                    qb.push(", id FROM contacts WHERE org_id = ");
                    qb.push_bind(org);
                    qb.push(" AND ");
                    qb.push(col);
                    push_in(&mut qb, chunk.iter().copied());
                }, fetch_all as (String, Uuid));
                map.extend(found);
            }
        }
        // As `find_contact`: by user id first, then by number.
        let existing: Vec<Option<Uuid>> = rows
            .iter()
            .map(|r| {
                r.identity
                    .bsuid
                    .as_ref()
                    .and_then(|b| by_bsuid.get(b.as_str()).copied())
                    .or_else(|| {
                        r.identity
                            .phone
                            .as_ref()
                            .and_then(|p| by_phone.get(p.as_str()).copied())
                    })
            })
            .collect();
        let opting_in: Vec<Uuid> = rows
            .iter()
            .zip(&existing)
            .filter(|(r, _)| r.consent == Some(ConsentState::OptIn))
            .filter_map(|(_, e)| *e)
            .collect();
        let mut opted_out: HashSet<Uuid> = HashSet::new();
        for chunk in opting_in.chunks(ROWS_PER_STATEMENT) {
            // Each contact's latest ledger event, as `consent` reads it.
            let events: Vec<(Uuid, String)> = with_builder!(self.tx, qb => {
                qb.push("SELECT contact_id, state FROM consent_events WHERE org_id = ");
                qb.push_bind(org);
                qb.push(" AND contact_id");
                push_in(&mut qb, chunk.iter().copied());
                qb.push(" ORDER BY contact_id, created_at DESC, id DESC");
            }, fetch_all as (Uuid, String));
            let mut seen = HashSet::new();
            for (contact, state) in events {
                if seen.insert(contact) && state == ConsentState::OptOut.as_str() {
                    opted_out.insert(contact);
                }
            }
        }
        Ok(rows
            .iter()
            .zip(existing)
            .map(|(r, e)| {
                let problems = input_problems(&r.input, defs);
                if !problems.is_empty() {
                    return Err(describe_problems(&problems));
                }
                match e {
                    Some(c) if r.consent == Some(ConsentState::OptIn) && opted_out.contains(&c) => {
                        Err(OPTED_OUT.into())
                    }
                    e => Ok(e.map(ContactId::from_uuid)),
                }
            })
            .collect())
    }

    /// Every row the mapping would reject and why, and what the rest would do; nothing is
    /// written but the report (its first rejected rows and counts; every rejected row is
    /// kept for [`Self::import_rejections`]) and the mapping. The file is read and checked
    /// [`DRY_RUN_BATCH`] rows at a time.
    pub async fn dry_run_import(
        &mut self,
        id: ImportId,
        mapping: &ImportMapping,
    ) -> Result<ImportReport, StoreError> {
        let row = self.import_row(id).await?;
        if row.status != "uploaded" {
            return Err(StoreError::Conflict("import_started"));
        }
        let (columns, legacy) = self.import_file(id).await?;
        let (plan, defs) = self.import_plan(&columns, mapping).await?;
        let mut report = ImportReport {
            total_rows: i64::from(row.total_rows),
            created: 0,
            updated: 0,
            rejected: Vec::new(),
            rejected_count: 0,
            duplicate_count: 0,
        };
        let org = self.org();
        with_conn!(self.tx, c => {
            sqlx::query("DELETE FROM contact_import_rejections WHERE org_id = $1 AND import_id = $2 AND phase = 'dry_run'")
                .bind(org).bind(id.as_uuid()).execute(c).await?;
        });
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut after = 0;
        loop {
            let rows = self
                .import_rows(id, legacy.as_deref(), after, DRY_RUN_BATCH)
                .await?;
            let Some((last, _)) = rows.last() else {
                break;
            };
            after = *last;
            let mut rejected = Vec::new();
            let mut checking: Vec<(usize, RowPlan)> = Vec::new();
            for (line, r) in &rows {
                match plan_row(&plan, r) {
                    Err(reason) => rejected.push(RejectedRow {
                        line: *line,
                        reason,
                    }),
                    Ok(p) => match seen.get(&p.key) {
                        Some(first) => rejected.push(RejectedRow {
                            line: *line,
                            reason: duplicate_of(*first),
                        }),
                        None => {
                            seen.insert(p.key.clone(), *line);
                            checking.push((*line, p));
                        }
                    },
                }
            }
            let plans: Vec<&RowPlan> = checking.iter().map(|(_, p)| p).collect();
            let outcomes = self.check_rows(&plans, &defs).await?;
            for ((line, _), outcome) in checking.iter().zip(outcomes) {
                match outcome {
                    Ok(None) => report.created += 1,
                    Ok(Some(_)) => report.updated += 1,
                    Err(reason) => rejected.push(RejectedRow {
                        line: *line,
                        reason,
                    }),
                }
            }
            rejected.sort_by_key(|r| r.line);
            report.rejected_count += rejected.len() as i64;
            report.duplicate_count += count_rejected(&rejected).1;
            let room = REPORT_ROWS.saturating_sub(report.rejected.len());
            report.rejected.extend(rejected.iter().take(room).cloned());
            self.add_rejections(id, Phase::DryRun, &rejected).await?;
        }
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

    /// Whether any row of the import has been keyed yet.
    async fn has_keys(&mut self, id: ImportId) -> Result<bool, StoreError> {
        let org = self.org();
        Ok(with_conn!(self.tx, c => {
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM contact_import_keys WHERE org_id = $1 AND import_id = $2)")
                .bind(org).bind(id.as_uuid()).fetch_one(c).await?
        }))
    }

    /// The first line among `keys` (number or user id → line) that an earlier chunk of the
    /// import already had; records the rest as seen.
    async fn seen_keys(
        &mut self,
        id: ImportId,
        keys: &[(String, usize)],
    ) -> Result<HashMap<String, usize>, StoreError> {
        let org = self.org();
        let mut seen = HashMap::new();
        for chunk in keys.chunks(ROWS_PER_STATEMENT) {
            let found: Vec<(String, i32)> = with_builder!(self.tx, qb => {
                qb.push("SELECT key, line FROM contact_import_keys WHERE org_id = ");
                qb.push_bind(org);
                qb.push(" AND import_id = ");
                qb.push_bind(id.as_uuid());
                qb.push(" AND key");
                push_in(&mut qb, chunk.iter().map(|(k, _)| k));
            }, fetch_all as (String, i32));
            seen.extend(found.into_iter().map(|(k, l)| (k, l.max(0) as usize)));
            with_builder!(self.tx, qb => {
                qb.push("INSERT INTO contact_import_keys (org_id, import_id, key, line) ");
                qb.push_values(chunk, |mut b, (k, l)| {
                    b.push_bind(org).push_bind(id.as_uuid()).push_bind(k).push_bind(*l as i32);
                });
                qb.push(" ON CONFLICT DO NOTHING");
            }, execute);
        }
        Ok(seen)
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
        let (columns, legacy) = self.import_file(id).await?;
        let org = self.org();
        let (plan, defs) = match self.import_plan(&columns, &mapping).await {
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
        // Rows are numbered from line 2, one line each.
        let rows = self
            .import_rows(id, legacy.as_deref(), start + 1, IMPORT_CHUNK)
            .await?;
        if start > 0 && legacy.is_some() && !self.has_keys(id).await? {
            // An import uploaded before keys were kept, resumed: the rows before this
            // chunk are keyed once (a later chunk finds them in the table).
            let earlier: Vec<(String, usize)> = legacy
                .iter()
                .flatten()
                .take(start)
                .enumerate()
                .filter_map(|(i, r)| plan_row(&plan, r).ok().map(|p| (p.key, i + 2)))
                .collect();
            self.seen_keys(id, &earlier).await?;
        }
        let mut rejected: Vec<RejectedRow> = Vec::new();
        let (mut created, mut updated) =
            (i64::from(row.created_count), i64::from(row.updated_count));
        let evidence = plan.evidence.clone().unwrap_or_default();
        let mut planned = Vec::new();
        for (line, r) in &rows {
            match plan_row(&plan, r) {
                Ok(p) => planned.push((*line, p)),
                Err(reason) => rejected.push(RejectedRow {
                    line: *line,
                    reason,
                }),
            }
        }
        // Duplicates are judged against every earlier row of the file: the keys of earlier
        // chunks are in the table, this chunk's in `first`.
        let keys: Vec<(String, usize)> = planned.iter().map(|(l, p)| (p.key.clone(), *l)).collect();
        let earlier = self.seen_keys(id, &keys).await?;
        let mut first: HashMap<String, usize> = HashMap::new();
        for (line, p) in &planned {
            let before = earlier
                .get(&p.key)
                .or(first.get(&p.key))
                .copied()
                .filter(|l| l < line);
            if let Some(f) = before {
                rejected.push(RejectedRow {
                    line: *line,
                    reason: duplicate_of(f),
                });
                continue;
            }
            first.insert(p.key.clone(), *line);
            // One row at a time: an earlier row of this chunk may have made the contact.
            let checked = self.check_rows(&[p], &defs).await?.pop();
            let existing = match checked.expect("one row checked") {
                Ok(e) => e,
                Err(reason) => {
                    rejected.push(RejectedRow {
                        line: *line,
                        reason,
                    });
                    continue;
                }
            };
            let contact = match existing {
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
                    .bind(org).bind(id.as_uuid()).bind(contact.as_uuid()).bind(*line as i32).execute(c).await?;
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
        rejected.sort_by_key(|r| r.line);
        self.add_rejections(id, Phase::Import, &rejected).await?;
        let end = start + rows.len();
        if statistics_level(start) != statistics_level(end) {
            // The contacts have doubled since the planner last looked: without fresh
            // statistics a connection keeps the plans it made for a nearly empty table (a
            // scan of every contact per lookup by number), and on PostgreSQL with autovacuum
            // behind, an import of 100,000 rows slowed to about 20 rows a second.
            self.refresh_statistics_here(crate::BulkTable::CONTACT_IMPORT)
                .await?;
        }
        let done = rows.len() < IMPORT_CHUNK || end >= row.total_rows.max(0) as usize;
        let now = now_micros();
        with_conn!(self.tx, c => {
            sqlx::query("UPDATE contact_imports SET status = CASE WHEN $7 THEN 'done' ELSE 'running' END, processed_rows = $3, created_count = $4, updated_count = $5, finished_at = CASE WHEN $7 THEN $6 ELSE NULL END WHERE org_id = $1 AND id = $2")
                .bind(org).bind(id.as_uuid()).bind(end as i32).bind(created as i32).bind(updated as i32).bind(now).bind(done)
                .execute(&mut *c).await?;
            if done {
                sqlx::query("DELETE FROM import_queue WHERE import_id = $1").bind(id.as_uuid()).execute(&mut *c).await?;
            } else {
                sqlx::query("UPDATE import_queue SET lease_until = NULL WHERE import_id = $1").bind(id.as_uuid()).execute(&mut *c).await?;
            }
        });
        if done {
            let (rejected, _) = self.rejection_counts(id, Phase::Import).await?;
            self.audit(AuditRecord::new(
                "contact_import.finished",
                "contact_import",
                id.to_string(),
                serde_json::json!({ "created": created, "updated": updated, "rejected": rejected }),
            ))
            .await?;
        }
        Ok(!done)
    }
}

/// Which rejected rows: the last dry run's, or the import's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    DryRun,
    Import,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::DryRun => "dry_run",
            Phase::Import => "import",
        }
    }
}

/// Which doubling of an import's rows past the first 1,000 `rows` is in: planner statistics
/// are refreshed when a chunk moves to the next one.
fn statistics_level(rows: usize) -> Option<u32> {
    (rows / 1000).checked_ilog2()
}

/// Why a row that would opt an opted-out contact back in is rejected.
const OPTED_OUT: &str = "consent: this contact opted out; an import cannot opt them back in";

fn duplicate_of(first: usize) -> String {
    format!("{DUPLICATE_ROW} {first} (same number or user id)")
}

/// The line a rejected row's reason says it repeats (see [`duplicate_of`]).
pub(crate) fn repeated_line(reason: &str) -> Option<usize> {
    reason
        .strip_prefix(DUPLICATE_ROW)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
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
