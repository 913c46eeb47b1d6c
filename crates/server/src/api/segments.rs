//! Segments: saved audience rules (a typed JSON tree compiled by the store to SQL with bound
//! parameters only), their live count, and the preview of an unsaved rule that the segment
//! editor calls while one types.

use super::{ApiJson, path_id};
use crate::AppState;
use crate::auth::{Access, Tenant};
use crate::error::{ApiError, ErrorEnvelope};
use crate::routes::RouteTableBuilder;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use frontdesk_domain::audience::Rule;
use frontdesk_domain::{Permission, SegmentId};
use frontdesk_store::segments::{Segment, SegmentPreview};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::routes;

pub(crate) fn routes(b: RouteTableBuilder) -> RouteTableBuilder {
    use Permission::*;
    b.json(routes!(list_segments), Access::Perm(ContactsRead))
        .json(routes!(create_segment), Access::Perm(ContactsWrite))
        .json(routes!(preview_segment), Access::Perm(ContactsRead))
        .json(routes!(get_segment), Access::Perm(ContactsRead))
        .json(routes!(update_segment), Access::Perm(ContactsWrite))
        .json(routes!(delete_segment), Access::Perm(ContactsWrite))
}

/// The organisation's segments, by name.
#[utoipa::path(get, path = "/api/v1/segments", tag = "audience",
    responses((status = 200, description = "Segments", body = Vec<Segment>)))]
async fn list_segments(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
) -> Result<Json<Vec<Segment>>, ApiError> {
    let mut tx = state.store().begin_read(&ctx).await?;
    let s = tx.segments().await?;
    tx.commit().await?;
    Ok(Json(s))
}

/// A segment to save.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SegmentBody {
    /// 1 to 80 characters, unique in the organisation.
    pub name: String,
    pub rule: Rule,
}

/// Saves a segment; its rule must compile (known tags and fields, values of their types,
/// at most 6 levels and 60 conditions).
#[utoipa::path(post, path = "/api/v1/segments", tag = "audience", request_body = SegmentBody,
    responses((status = 201, description = "Saved", body = Segment),
        (status = 409, description = "Name taken, or too many segments", body = ErrorEnvelope),
        (status = 404, description = "The rule names a tag or field not here", body = ErrorEnvelope),
        (status = 422, description = "The rule or name is not valid", body = ErrorEnvelope)))]
async fn create_segment(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    ApiJson(req): ApiJson<SegmentBody>,
) -> Result<(StatusCode, Json<Segment>), ApiError> {
    let mut tx = state.store().begin(&ctx).await?;
    let s = tx.save_segment(None, &req.name, &req.rule).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(s)))
}

/// A rule to count.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewBody {
    pub rule: Rule,
}

/// How many contacts an (unsaved) rule selects now, and the newest five.
#[utoipa::path(post, path = "/api/v1/segments/preview", tag = "audience", request_body = PreviewBody,
    responses((status = 200, description = "Live count and first contacts", body = SegmentPreview),
        (status = 404, description = "The rule names a tag or field not here", body = ErrorEnvelope),
        (status = 422, description = "The rule is not valid", body = ErrorEnvelope)))]
async fn preview_segment(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    ApiJson(req): ApiJson<PreviewBody>,
) -> Result<Json<SegmentPreview>, ApiError> {
    let mut tx = state.store().begin_read(&ctx).await?;
    let p = tx.preview_rule(&req.rule, state.now()).await?;
    tx.commit().await?;
    Ok(Json(p))
}

/// A segment with its live count.
#[derive(Serialize, ToSchema)]
pub struct SegmentDetail {
    #[serde(flatten)]
    pub segment: Segment,
    /// Contacts the rule selects now.
    pub count: i64,
}

/// One segment, with how many contacts it selects now.
#[utoipa::path(get, path = "/api/v1/segments/{segment_id}", tag = "audience",
    params(("segment_id" = String, Path, description = "Segment id")),
    responses((status = 200, description = "The segment", body = SegmentDetail),
        (status = 404, description = "No such segment here", body = ErrorEnvelope)))]
async fn get_segment(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
) -> Result<Json<SegmentDetail>, ApiError> {
    let id = path_id(&id, SegmentId::parse)?;
    let mut tx = state.store().begin_read(&ctx).await?;
    let segment = tx.segment(id).await?;
    let count = tx.preview_rule(&segment.rule, state.now()).await?.count;
    tx.commit().await?;
    Ok(Json(SegmentDetail { segment, count }))
}

/// Changes a segment's name and rule.
#[utoipa::path(put, path = "/api/v1/segments/{segment_id}", tag = "audience",
    params(("segment_id" = String, Path, description = "Segment id")), request_body = SegmentBody,
    responses((status = 200, description = "Saved", body = Segment),
        (status = 404, description = "No such segment here", body = ErrorEnvelope),
        (status = 409, description = "Name taken", body = ErrorEnvelope),
        (status = 404, description = "The rule names a tag or field not here", body = ErrorEnvelope),
        (status = 422, description = "The rule or name is not valid", body = ErrorEnvelope)))]
async fn update_segment(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<SegmentBody>,
) -> Result<Json<Segment>, ApiError> {
    let id = path_id(&id, SegmentId::parse)?;
    let mut tx = state.store().begin(&ctx).await?;
    let s = tx.save_segment(Some(id), &req.name, &req.rule).await?;
    tx.commit().await?;
    Ok(Json(s))
}

/// Deletes a segment.
#[utoipa::path(delete, path = "/api/v1/segments/{segment_id}", tag = "audience",
    params(("segment_id" = String, Path, description = "Segment id")),
    responses((status = 204, description = "Deleted"),
        (status = 404, description = "No such segment here", body = ErrorEnvelope)))]
async fn delete_segment(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = path_id(&id, SegmentId::parse)?;
    let mut tx = state.store().begin(&ctx).await?;
    tx.delete_segment(id).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
