//! Import pages: paste or choose a CSV file, map its columns (guessed from their names),
//! dry-run it to see every row that would be rejected and why, then import it; the page
//! follows the background job's progress (app.js reloads it every 2 s while it runs) and
//! shows the final report.

use super::{PageCtx, PageError, PageForm, see_other, when};
use crate::AppState;
use crate::api::imports::{IMPORT_BODY_LIMIT, start};
use crate::auth::{Access, Authed, Tenant};
use crate::error::ApiError;
use crate::routes::RouteTableBuilder;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use frontdesk_domain::{ImportId, Permission};
use frontdesk_store::StoreError;
use frontdesk_store::audience::FieldDef;
use frontdesk_store::imports::{ImportMapping, ImportReport, ImportView, RejectedRow};
use maud::{Markup, html};
use serde::Deserialize;
use std::collections::BTreeMap;

const NAV_PATH: &str = "/contacts";

pub(crate) fn routes(b: RouteTableBuilder) -> RouteTableBuilder {
    use Permission::*;
    b.page(
        Method::GET,
        "/contacts/import",
        get(upload_page),
        Access::Perm(ContactsWrite),
    )
    .page_sized(
        Method::POST,
        "/contacts/import",
        post(upload),
        Access::Perm(ContactsWrite),
        Some(IMPORT_BODY_LIMIT),
    )
    .page(
        Method::GET,
        "/contacts/import/{import_id}",
        get(import_page),
        Access::Perm(ContactsWrite),
    )
    .page(
        Method::POST,
        "/contacts/import/{import_id}",
        post(import_action),
        Access::Perm(ContactsWrite),
    )
}

fn import_id(s: &str) -> Result<ImportId, PageError> {
    ImportId::parse(s).map_err(|_| PageError(ApiError::NotFound))
}

fn upload_form(page: &PageCtx, error: Option<&str>, csv: &str) -> Markup {
    html! {
        form method="post" action="/contacts/import" data-testid="import-upload" {
            (page.csrf_field())
            p.muted { "The first row names the columns. At most 16 MB and 100,000 rows." }
            label { "CSV file" input type="file" accept=".csv,text/csv" data-csv-into="csv"; }
            label class=[error.map(|_| "invalid")] {
                "…or paste it here"
                textarea name="csv" id="csv" rows="10" data-testid="import-csv" { (csv) }
                @if let Some(m) = error { span.field-error data-testid="error-csv" { (m) } }
            }
            input type="hidden" name="filename" value="pasted.csv" data-filename-for="csv";
            button type="submit" data-testid="import-upload-submit" { "Upload" }
        }
    }
}

async fn upload_page(
    State(state): State<AppState>,
    Authed(caller): Authed,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let page = PageCtx::new(&state, Some(caller), &headers, NAV_PATH).await;
    let body = upload_form(&page, None, "");
    Ok(page.render("Import contacts", body))
}

#[derive(Deserialize)]
struct UploadForm {
    csv: String,
    #[serde(default)]
    filename: String,
}

async fn upload(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Tenant(ctx): Tenant,
    headers: HeaderMap,
    PageForm(form): PageForm<UploadForm>,
) -> Result<Response, PageError> {
    let mut tx = state.store().begin(&ctx).await?;
    match tx.upload_import(&form.filename, &form.csv).await {
        Ok(v) => {
            tx.commit().await?;
            Ok(see_other(&format!("/contacts/import/{}", v.id), &[]))
        }
        Err(StoreError::Invalid(m)) => {
            drop(tx);
            let page = PageCtx::new(&state, Some(caller), &headers, NAV_PATH).await;
            // A file too large to show again is not put back.
            let keep = if form.csv.len() <= 200_000 {
                form.csv.as_str()
            } else {
                ""
            };
            let mut r = page.render("Import contacts", upload_form(&page, Some(&m), keep));
            *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            Ok(r)
        }
        Err(e) => Err(e.into()),
    }
}

/// The targets a column may go to, with labels.
fn targets(defs: &[FieldDef]) -> Vec<(String, String)> {
    let mut t: Vec<(String, String)> = [
        ("ignore", "— ignore —"),
        ("name", "Name"),
        ("phone", "Phone number"),
        ("user_id", "WhatsApp user id"),
        ("username", "WhatsApp username"),
        ("email", "Email"),
        ("language", "Language"),
        ("company", "Company"),
        ("tags", "Tags (separated by ; or ,)"),
        ("consent", "Marketing consent (yes/no)"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_owned(), b.to_owned()))
    .collect();
    for d in defs {
        t.push((format!("field:{}", d.key), format!("Field: {}", d.label)));
    }
    t
}

/// A first guess of where a column goes, from its name.
fn guess(column: &str, defs: &[FieldDef]) -> String {
    let c = column.trim().to_lowercase();
    let g = match c.as_str() {
        "name" | "full name" | "contact" | "customer" => "name",
        "phone" | "mobile" | "number" | "whatsapp" | "phone number" | "mobile number" => "phone",
        "email" | "e-mail" | "mail" => "email",
        "language" | "lang" | "locale" => "language",
        "company" | "organisation" | "organization" => "company",
        "tags" | "tag" | "labels" => "tags",
        "consent" | "opt in" | "opt-in" | "opted in" | "marketing" => "consent",
        "user id" | "user_id" | "bsuid" => "user_id",
        "username" => "username",
        _ => {
            return defs
                .iter()
                .find(|d| d.key == c.replace(' ', "_") || d.label.to_lowercase() == c)
                .map_or_else(|| "ignore".to_owned(), |d| format!("field:{}", d.key));
        }
    };
    g.to_owned()
}

/// The rejected rows a report shows, and a link to all of them when there are more.
fn report_table(id: ImportId, phase: &str, rejected: &[RejectedRow], count: i64) -> Markup {
    html! {
        @if count > rejected.len() as i64 {
            p data-testid="rejected-more" { "The first " (rejected.len()) " of " (count) " rejected rows: "
                a href={ "/api/v1/contact-imports/" (id) "/rejections.csv?phase=" (phase) } download data-testid="rejected-csv" { "download all of them (CSV)" } "." }
        }
        @if !rejected.is_empty() {
            table data-testid="rejected-rows" {
                thead { tr { th { "Line" } th { "Why it is rejected" } } }
                tbody {
                    @for r in rejected {
                        tr data-testid="rejected-row" data-line=(r.line) { td { (r.line) } td { (r.reason) } }
                    }
                }
            }
        }
    }
}

fn dry_run_section(id: ImportId, r: &ImportReport) -> Markup {
    // A report from before the counts were kept lists every rejected row.
    let count = r.rejected_count.max(r.rejected.len() as i64);
    html! {
        section data-testid="dry-run-report" {
            h2 { "Dry run" }
            p { (r.total_rows) " rows: " strong data-testid="dry-run-created" { (r.created) } " would be created, "
                strong data-testid="dry-run-updated" { (r.updated) } " updated, "
                strong data-testid="dry-run-rejected" { (count) } " rejected." }
            (report_table(id, "dry_run", &r.rejected, count))
        }
    }
}

fn import_body(
    page: &PageCtx,
    v: &ImportView,
    defs: &[FieldDef],
    mapping_error: Option<&str>,
    evidence: &str,
) -> Markup {
    let options = targets(defs);
    let mapped = |col: &str| -> String {
        v.mapping
            .as_ref()
            .and_then(|m| m.columns.get(col).cloned())
            .unwrap_or_else(|| guess(col, defs))
    };
    let running = matches!(v.status.as_str(), "queued" | "running");
    html! {
        p { "File " strong { (v.filename) } ", " (v.total_rows) " rows, uploaded " (when(v.created_at)) "." }
        p { "Status: " strong data-testid="import-status" { (v.status) } }
        @if v.status == "uploaded" {
            form method="post" action={ "/contacts/import/" (v.id) } data-testid="import-mapping" {
                (page.csrf_field())
                @if let Some(m) = mapping_error { p.error data-testid="mapping-error" { (m) } }
                table {
                    thead { tr { th { "Column in the file" } th { "Goes to" } } }
                    tbody {
                        @for (i, col) in v.columns.iter().enumerate() {
                            @let current = mapped(col);
                            tr {
                                td { (col) }
                                td {
                                    select name={ "col." (i) } data-testid={ "map-" (col) } {
                                        @for (value, label) in &options {
                                            option value=(value) selected[*value == current] { (label) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                label { "Consent evidence (when a column says who agreed: the form, the date)"
                    input type="text" name="consent_evidence" maxlength="1000" value=(evidence) data-testid="consent-evidence";
                }
                button type="submit" name="action" value="dry_run" data-testid="dry-run" { "Dry run" }
                " "
                button type="submit" name="action" value="run" data-testid="run-import" { "Import" }
            }
            @if let Some(r) = &v.dry_run { (dry_run_section(v.id, r)) }
        } @else {
            @if running {
                p data-reload-every="2" data-testid="import-progress" {
                    "Imported " (v.processed_rows) " of " (v.total_rows) " rows…"
                }
            } @else {
                section data-testid="import-report" {
                    h2 { "Report" }
                    p { strong data-testid="import-created" { (v.created) } " created, "
                        strong data-testid="import-updated" { (v.updated) } " updated, "
                        strong data-testid="import-rejected" { (v.rejected_count) } " rejected"
                        @if let Some(f) = v.finished_at { ", finished " (when(f)) } "." }
                    (report_table(v.id, "import", &v.rejected, v.rejected_count))
                    p { a href="/contacts" { "See the contacts" } }
                }
            }
        }
    }
}

async fn render(
    state: &AppState,
    ctx: &frontdesk_store::TenantCtx,
    page: &PageCtx,
    id: ImportId,
    mapping_error: Option<&str>,
    evidence: &str,
) -> Result<Response, PageError> {
    let mut tx = state.store().begin_read(ctx).await?;
    let v = tx.contact_import(id).await?;
    let defs = tx.fields().await?;
    tx.commit().await?;
    let evidence = if evidence.is_empty() {
        v.mapping
            .as_ref()
            .and_then(|m| m.consent_evidence.clone())
            .unwrap_or_default()
    } else {
        evidence.to_owned()
    };
    Ok(page.render(
        "Import contacts",
        import_body(page, &v, &defs, mapping_error, &evidence),
    ))
}

async fn import_page(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Tenant(ctx): Tenant,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let id = import_id(&id)?;
    let page = PageCtx::new(&state, Some(caller), &headers, NAV_PATH).await;
    render(&state, &ctx, &page, id, None, "").await
}

/// The mapping the form chose: `col.<index>` → target.
fn mapping_of(v: &ImportView, form: &BTreeMap<String, String>) -> ImportMapping {
    let mut columns = BTreeMap::new();
    for (i, col) in v.columns.iter().enumerate() {
        if let Some(t) = form.get(&format!("col.{i}"))
            && t != "ignore"
        {
            columns.insert(col.clone(), t.clone());
        }
    }
    ImportMapping {
        columns,
        consent_evidence: form
            .get("consent_evidence")
            .filter(|s| !s.trim().is_empty())
            .cloned(),
    }
}

async fn import_action(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Tenant(ctx): Tenant,
    headers: HeaderMap,
    Path(id): Path<String>,
    PageForm(form): PageForm<BTreeMap<String, String>>,
) -> Result<Response, PageError> {
    let id = import_id(&id)?;
    if form.len() > 200 {
        return Err(PageError(ApiError::bad_request(
            "invalid_form",
            "the form has too many fields",
        )));
    }
    let mut tx = state.store().begin_read(&ctx).await?;
    let v = tx.contact_import(id).await?;
    tx.commit().await?;
    let mapping = mapping_of(&v, &form);
    let evidence = form.get("consent_evidence").cloned().unwrap_or_default();
    let page = PageCtx::new(&state, Some(caller), &headers, NAV_PATH).await;
    let outcome = match form.get("action").map(String::as_str) {
        Some("dry_run") => {
            let mut tx = state.store().begin(&ctx).await?;
            match tx.dry_run_import(id, &mapping).await {
                Ok(_) => {
                    tx.commit().await?;
                    Ok(())
                }
                Err(e) => Err(e),
            }
        }
        Some("run") => match start(&state, &ctx, id, &mapping).await {
            Ok(_) => return Ok(see_other(&format!("/contacts/import/{id}"), &[])),
            Err(ApiError::Unprocessable { message, .. }) => Err(StoreError::Invalid(message)),
            Err(e) => return Err(e.into()),
        },
        _ => {
            return Err(PageError(ApiError::bad_request(
                "invalid_form",
                "action is dry_run or run",
            )));
        }
    };
    match outcome {
        Ok(()) => render(&state, &ctx, &page, id, None, &evidence).await,
        Err(StoreError::Invalid(m)) => {
            let mut r = render(&state, &ctx, &page, id, Some(&m), &evidence).await?;
            *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            Ok(r)
        }
        Err(e) => Err(e.into()),
    }
}
