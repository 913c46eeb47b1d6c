//! CSV imports of contacts: upload, dry run (every row it would reject and why), run (a
//! background job of the worker), and progress with the report.

use super::campaigns::{cell, csv_response};
use super::{ApiJson, path_id};
use crate::AppState;
use crate::auth::{Access, Tenant};
use crate::error::{ApiError, ErrorEnvelope};
use crate::routes::RouteTableBuilder;
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use frontdesk_domain::{ImportId, Permission};
use frontdesk_store::imports::{ImportMapping, ImportReport, ImportView, Phase};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::routes;

/// Request bodies of an upload: a 16 MiB file, escaped as JSON or a form, fits.
pub(crate) const IMPORT_BODY_LIMIT: usize = 48 * 1024 * 1024;

pub(crate) fn routes(b: RouteTableBuilder) -> RouteTableBuilder {
    use Permission::*;
    b.json_sized(
        routes!(upload_import),
        Access::Perm(ContactsWrite),
        Some(IMPORT_BODY_LIMIT),
    )
    .json(routes!(get_import), Access::Perm(ContactsWrite))
    .json(routes!(dry_run_import), Access::Perm(ContactsWrite))
    .json(routes!(run_import), Access::Perm(ContactsWrite))
    .json(routes!(import_rejections), Access::Perm(ContactsWrite))
}

/// A CSV file: the first row names the columns; at most 16 MiB and 100,000 rows.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UploadBody {
    pub filename: String,
    pub csv: String,
}

/// Stores a CSV file to import; answers its columns, to map.
#[utoipa::path(post, path = "/api/v1/contact-imports", tag = "audience", request_body = UploadBody,
    responses((status = 201, description = "Uploaded", body = ImportView),
        (status = 413, description = "Larger than the upload limit", body = ErrorEnvelope),
        (status = 422, description = "Not a CSV file we take (why)", body = ErrorEnvelope)))]
async fn upload_import(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    ApiJson(req): ApiJson<UploadBody>,
) -> Result<(StatusCode, Json<ImportView>), ApiError> {
    let mut tx = state.store().begin(&ctx).await?;
    let v = tx.upload_import(&req.filename, &req.csv).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(v)))
}

/// An import: status, progress (`processed_rows` of `total_rows`) and its report.
#[utoipa::path(get, path = "/api/v1/contact-imports/{import_id}", tag = "audience",
    params(("import_id" = String, Path, description = "Import id")),
    responses((status = 200, description = "The import", body = ImportView),
        (status = 404, description = "No such import here", body = ErrorEnvelope)))]
async fn get_import(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
) -> Result<Json<ImportView>, ApiError> {
    let id = path_id(&id, ImportId::parse)?;
    let mut tx = state.store().begin_read(&ctx).await?;
    let v = tx.contact_import(id).await?;
    tx.commit().await?;
    Ok(Json(v))
}

/// A column mapping.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MappingBody {
    pub mapping: ImportMapping,
}

/// Checks every row against the mapping without importing: what would be created and
/// updated, and every row that would be rejected, with the reason.
#[utoipa::path(post, path = "/api/v1/contact-imports/{import_id}/dry-run", tag = "audience",
    params(("import_id" = String, Path, description = "Import id")), request_body = MappingBody,
    responses((status = 200, description = "The report", body = ImportReport),
        (status = 404, description = "No such import here", body = ErrorEnvelope),
        (status = 409, description = "The import already ran", body = ErrorEnvelope),
        (status = 422, description = "The mapping is not valid", body = ErrorEnvelope)))]
async fn dry_run_import(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<MappingBody>,
) -> Result<Json<ImportReport>, ApiError> {
    let id = path_id(&id, ImportId::parse)?;
    let mut tx = state.store().begin(&ctx).await?;
    let r = tx.dry_run_import(id, &req.mapping).await?;
    tx.commit().await?;
    Ok(Json(r))
}

/// Starts the import with this mapping as a background job; follow it with GET.
#[utoipa::path(post, path = "/api/v1/contact-imports/{import_id}/run", tag = "audience",
    params(("import_id" = String, Path, description = "Import id")), request_body = MappingBody,
    responses((status = 202, description = "Queued", body = ImportView),
        (status = 404, description = "No such import here", body = ErrorEnvelope),
        (status = 409, description = "The import already ran", body = ErrorEnvelope),
        (status = 422, description = "The mapping is not valid", body = ErrorEnvelope)))]
async fn run_import(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<MappingBody>,
) -> Result<(StatusCode, Json<ImportView>), ApiError> {
    let id = path_id(&id, ImportId::parse)?;
    let v = start(&state, &ctx, id, &req.mapping).await?;
    Ok((StatusCode::ACCEPTED, Json(v)))
}

/// Which rejected rows to download.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RejectionsQuery {
    /// `dry_run` (the last dry run's) or `import` (the import's; the default).
    pub phase: Option<String>,
}

/// Every rejected row, as CSV (`line,reason`): the import's (default) or the last dry
/// run's. Reports show the first 1,000; this is all of them.
#[utoipa::path(get, path = "/api/v1/contact-imports/{import_id}/rejections.csv", tag = "audience",
    params(("import_id" = String, Path, description = "Import id"), RejectionsQuery),
    responses((status = 200, description = "CSV", content_type = "text/csv"),
        (status = 404, description = "No such import here", body = ErrorEnvelope),
        (status = 400, description = "An unknown query parameter", body = ErrorEnvelope),
        (status = 422, description = "Not a phase", body = ErrorEnvelope)))]
async fn import_rejections(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
    q: Result<Query<RejectionsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let id = path_id(&id, ImportId::parse)?;
    let Query(q) = q.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let phase = match q.phase.as_deref() {
        None | Some("import") => Phase::Import,
        Some("dry_run") => Phase::DryRun,
        Some(_) => {
            return Err(ApiError::unprocessable(
                "invalid",
                "phase: dry_run or import",
            ));
        }
    };
    let mut tx = state.store().begin_read(&ctx).await?;
    let rows = tx.import_rejections(id, phase).await?;
    tx.commit().await?;
    let mut out = String::from("line,reason\n");
    for r in rows {
        out.push_str(&format!("{},{}\n", r.line, cell(&r.reason)));
    }
    Ok(csv_response(out, "rejected-rows.csv"))
}

/// Queues an import (shared with the page).
pub(crate) async fn start(
    state: &AppState,
    ctx: &frontdesk_store::TenantCtx,
    id: ImportId,
    mapping: &ImportMapping,
) -> Result<ImportView, ApiError> {
    let mut tx = state.store().begin(ctx).await?;
    let v = tx.start_import(id, mapping).await?;
    tx.commit().await?;
    Ok(v)
}
