//! Contact exports under two-person control: request (`contacts.export`), approval by
//! another person (`contacts.approve_export`, admins), download by the requester only as
//! CSV with numbers masked as the requester's role sees them. All audited.

use super::{ApiJson, path_id};
use crate::AppState;
use crate::auth::{Access, Tenant};
use crate::error::{ApiError, ErrorEnvelope};
use crate::routes::RouteTableBuilder;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use frontdesk_domain::{ExportId, Permission, SegmentId};
use frontdesk_store::exports::ExportView;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::routes;

pub(crate) fn routes(b: RouteTableBuilder) -> RouteTableBuilder {
    use Permission::*;
    b.json(routes!(list_exports), Access::Perm(ContactsExport))
        .json(routes!(request_export), Access::Perm(ContactsExport))
        .json(routes!(decide_export), Access::Perm(ContactsApproveExport))
        .json(routes!(download_export), Access::Perm(ContactsExport))
}

/// Export requests, newest first.
#[utoipa::path(get, path = "/api/v1/contact-exports", tag = "audience",
    responses((status = 200, description = "Requests", body = Vec<ExportView>)))]
async fn list_exports(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
) -> Result<Json<Vec<ExportView>>, ApiError> {
    let mut tx = state.store().begin_read(&ctx).await?;
    let v = tx.contact_exports().await?;
    tx.commit().await?;
    Ok(Json(v))
}

/// What to export.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ExportBody {
    /// Only this segment's contacts; absent: every contact.
    pub segment_id: Option<String>,
}

/// Asks for an export; another person must approve it before it can be downloaded.
#[utoipa::path(post, path = "/api/v1/contact-exports", tag = "audience", request_body = ExportBody,
    responses((status = 201, description = "Requested", body = ExportView),
        (status = 404, description = "No such segment here", body = ErrorEnvelope)))]
async fn request_export(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    ApiJson(req): ApiJson<ExportBody>,
) -> Result<(StatusCode, Json<ExportView>), ApiError> {
    let segment = req
        .segment_id
        .as_deref()
        .map(|s| SegmentId::parse(s).map_err(|_| ApiError::NotFound))
        .transpose()?;
    let mut tx = state.store().begin(&ctx).await?;
    let v = tx.request_export(segment).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(v)))
}

/// A decision on a request.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    pub approve: bool,
}

/// Approves or refuses a request: once, by a person other than the requester.
#[utoipa::path(post, path = "/api/v1/contact-exports/{export_id}/decision", tag = "audience",
    params(("export_id" = String, Path, description = "Export id")), request_body = DecisionBody,
    responses((status = 200, description = "Decided", body = ExportView),
        (status = 404, description = "No such request here", body = ErrorEnvelope),
        (status = 409, description = "Own request, already decided, or not a person", body = ErrorEnvelope)))]
async fn decide_export(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<DecisionBody>,
) -> Result<Json<ExportView>, ApiError> {
    let id = path_id(&id, ExportId::parse)?;
    let mut tx = state.store().begin(&ctx).await?;
    let v = tx.decide_export(id, req.approve).await?;
    tx.commit().await?;
    Ok(Json(v))
}

/// The approved export as CSV, for its requester only.
#[utoipa::path(get, path = "/api/v1/contact-exports/{export_id}/download", tag = "audience",
    params(("export_id" = String, Path, description = "Export id")),
    responses((status = 200, description = "CSV", content_type = "text/csv"),
        (status = 404, description = "No such request here, or not the caller's", body = ErrorEnvelope),
        (status = 409, description = "Not approved", body = ErrorEnvelope)))]
async fn download_export(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = path_id(&id, ExportId::parse)?;
    // A write: the download is counted and audited.
    let mut tx = state.store().begin(&ctx).await?;
    let csv = tx.download_export(id, state.now()).await?;
    tx.commit().await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"contacts.csv\"",
            ),
            (header::CACHE_CONTROL, "no-store"),
        ],
        csv,
    )
        .into_response())
}
