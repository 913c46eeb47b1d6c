//! Campaigns: a draft names a number, a segment, an approved template and how its values
//! come from each contact; review shows the audience after exclusions and a preview per
//! language; launch (now or at a local time in the organisation's time zone), pause,
//! resume and cancel move it; the worker sends it through the outbox. Figures, the
//! recipients and a CSV report read back what happened.

use super::{ApiJson, path_id};
use crate::AppState;
use crate::auth::{Access, Tenant};
use crate::error::{ApiError, ErrorEnvelope};
use crate::routes::RouteTableBuilder;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use frontdesk_domain::campaign::{CampaignAction, Mapping};
use frontdesk_domain::{CampaignId, ChannelId, Permission, SegmentId};
use frontdesk_store::TenantTx;
use frontdesk_store::audit::AuditRecord;
use frontdesk_store::campaigns::{
    Campaign, CampaignFigures, CampaignPage, CampaignReview, NewCampaign, RecipientPage,
};
use frontdesk_store::segments::ConsentRequirement;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::routes;

pub(crate) fn routes(b: RouteTableBuilder) -> RouteTableBuilder {
    use Permission::*;
    b.json(routes!(list_campaigns), Access::Perm(CampaignsManage))
        .json(routes!(create_campaign), Access::Perm(CampaignsManage))
        .json(routes!(get_campaign), Access::Perm(CampaignsManage))
        .json(routes!(review_campaign), Access::Perm(CampaignsManage))
        .json(routes!(launch_campaign), Access::Perm(CampaignsManage))
        .json(routes!(pause_campaign), Access::Perm(CampaignsManage))
        .json(routes!(resume_campaign), Access::Perm(CampaignsManage))
        .json(routes!(cancel_campaign), Access::Perm(CampaignsManage))
        .json(routes!(campaign_recipients), Access::Perm(CampaignsManage))
        .json(routes!(campaign_report_csv), Access::Perm(CampaignsManage))
}

/// A page request.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// 1 to 100 (default 50).
    pub limit: Option<i64>,
}

/// Campaigns, newest first.
#[utoipa::path(get, path = "/api/v1/campaigns", tag = "campaigns", params(PageParams),
    responses((status = 200, description = "A page", body = CampaignPage),
        (status = 422, description = "Invalid cursor", body = ErrorEnvelope)))]
async fn list_campaigns(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Query(p): Query<PageParams>,
) -> Result<Json<CampaignPage>, ApiError> {
    let mut tx = state.store().begin_read(&ctx).await?;
    let page = tx
        .campaigns(p.cursor.as_deref(), p.limit.unwrap_or(50))
        .await?;
    tx.commit().await?;
    Ok(Json(page))
}

/// A campaign to create.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CampaignBody {
    /// 1 to 120 characters.
    pub name: String,
    pub channel_id: String,
    pub segment_id: String,
    /// The template's name, and the language recipients get when theirs is not approved.
    pub template_name: String,
    pub template_language: String,
    /// Where each template value comes from: `{"body": [{"source": "first_name",
    /// "fallback": "there"}, {"source": "field:city"}]}`.
    #[serde(default)]
    pub mapping: Mapping,
    /// `opt_in` (only contacts who opted in; the default) or `not_opted_out`.
    #[serde(default)]
    pub consent: Option<String>,
}

/// Creates a draft campaign.
#[utoipa::path(post, path = "/api/v1/campaigns", tag = "campaigns", request_body = CampaignBody,
    responses((status = 201, description = "Created", body = Campaign),
        (status = 404, description = "No such number or segment here", body = ErrorEnvelope),
        (status = 422, description = "Invalid name, mapping or template", body = ErrorEnvelope)))]
async fn create_campaign(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    ApiJson(req): ApiJson<CampaignBody>,
) -> Result<(StatusCode, Json<Campaign>), ApiError> {
    let consent = match req.consent.as_deref() {
        None | Some("opt_in") => ConsentRequirement::OptedIn,
        Some("not_opted_out") => ConsentRequirement::NotOptedOut,
        Some(_) => {
            return Err(ApiError::unprocessable(
                "invalid",
                "consent: opt_in or not_opted_out",
            ));
        }
    };
    let bounded = |s: &str, n: usize| !s.is_empty() && s.chars().count() <= n;
    if !bounded(&req.template_name, 512) || !bounded(&req.template_language, 15) {
        return Err(ApiError::unprocessable(
            "invalid",
            "template_name and template_language are required",
        ));
    }
    let n = NewCampaign {
        name: req.name,
        channel: path_id(&req.channel_id, ChannelId::parse)?,
        segment: path_id(&req.segment_id, SegmentId::parse)?,
        template_name: req.template_name,
        template_language: req.template_language,
        mapping: req.mapping,
        consent,
    };
    let mut tx = state.store().begin(&ctx).await?;
    let c = tx.create_campaign(&n).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(c)))
}

/// A campaign and its figures.
#[derive(Serialize, ToSchema)]
pub struct CampaignDetail {
    pub campaign: Campaign,
    pub figures: CampaignFigures,
}

/// One campaign with its figures now.
#[utoipa::path(get, path = "/api/v1/campaigns/{campaign_id}", tag = "campaigns",
    params(("campaign_id" = String, Path, description = "Campaign id")),
    responses((status = 200, description = "The campaign", body = CampaignDetail),
        (status = 404, description = "No such campaign here", body = ErrorEnvelope)))]
async fn get_campaign(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
) -> Result<Json<CampaignDetail>, ApiError> {
    let id = path_id(&id, CampaignId::parse)?;
    let mut tx = state.store().begin_read(&ctx).await?;
    let campaign = tx.campaign(id).await?;
    let figures = tx.campaign_figures(id).await?;
    tx.commit().await?;
    Ok(Json(CampaignDetail { campaign, figures }))
}

/// What launching would do now: the audience after exclusions (opted out, no opt-in,
/// missing values), today's room under the number's messaging limit, and a preview per
/// language.
#[utoipa::path(get, path = "/api/v1/campaigns/{campaign_id}/review", tag = "campaigns",
    params(("campaign_id" = String, Path, description = "Campaign id")),
    responses((status = 200, description = "The review", body = CampaignReview),
        (status = 404, description = "No such campaign here", body = ErrorEnvelope)))]
async fn review_campaign(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
) -> Result<Json<CampaignReview>, ApiError> {
    let id = path_id(&id, CampaignId::parse)?;
    let mut tx = state.store().begin_read(&ctx).await?;
    let r = tx.review_campaign(id, state.now()).await?;
    tx.commit().await?;
    Ok(Json(r))
}

/// When to send.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct LaunchBody {
    /// A local date and time in the organisation's time zone (`2026-12-01T09:30`); absent:
    /// now.
    pub send_at: Option<String>,
}

/// The UTC instant of a local `YYYY-MM-DDTHH:MM` in the organisation's time zone.
pub(crate) async fn local_send_at(
    tx: &mut TenantTx,
    text: &str,
) -> Result<OffsetDateTime, ApiError> {
    let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]");
    let bad = || {
        ApiError::unprocessable(
            "invalid",
            "send_at: a local date and time such as 2026-12-01T09:30",
        )
    };
    let local =
        time::PrimitiveDateTime::parse(text.get(..16).ok_or_else(bad)?, &fmt).map_err(|_| bad())?;
    let tz = tx.time_zone().await?;
    frontdesk_store::zone::utc_of_local(local, &tz).map_err(|_| {
        ApiError::unprocessable(
            "invalid",
            "send_at: a time that exists in the organisation's time zone",
        )
    })
}

/// Launches a draft now, or schedules it (`send_at`, local time in the organisation's time
/// zone); a scheduled campaign can be launched now or moved. The template must be approved.
#[utoipa::path(post, path = "/api/v1/campaigns/{campaign_id}/launch", tag = "campaigns",
    params(("campaign_id" = String, Path, description = "Campaign id")), request_body = LaunchBody,
    responses((status = 200, description = "Running or scheduled", body = Campaign),
        (status = 404, description = "No such campaign here", body = ErrorEnvelope),
        (status = 409, description = "Not a draft or scheduled campaign, or the template is not approved", body = ErrorEnvelope),
        (status = 422, description = "Invalid or past time", body = ErrorEnvelope)))]
async fn launch_campaign(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<LaunchBody>,
) -> Result<Json<Campaign>, ApiError> {
    let id = path_id(&id, CampaignId::parse)?;
    let mut tx = state.store().begin(&ctx).await?;
    let at = match req.send_at.as_deref().filter(|s| !s.trim().is_empty()) {
        Some(t) => Some(local_send_at(&mut tx, t.trim()).await?),
        None => None,
    };
    let c = tx.launch_campaign(id, at, state.now()).await?;
    tx.commit().await?;
    Ok(Json(c))
}

async fn change(
    state: &AppState,
    ctx: &frontdesk_store::TenantCtx,
    id: &str,
    action: CampaignAction,
) -> Result<Json<Campaign>, ApiError> {
    let id = path_id(id, CampaignId::parse)?;
    let mut tx = state.store().begin(ctx).await?;
    let c = tx.change_campaign(id, action, state.now()).await?;
    tx.commit().await?;
    Ok(Json(c))
}

/// Pauses a running campaign: nothing more is queued (messages already in the outbox go).
#[utoipa::path(post, path = "/api/v1/campaigns/{campaign_id}/pause", tag = "campaigns",
    params(("campaign_id" = String, Path, description = "Campaign id")),
    responses((status = 200, description = "Paused", body = Campaign),
        (status = 404, description = "No such campaign here", body = ErrorEnvelope),
        (status = 409, description = "Not running", body = ErrorEnvelope)))]
async fn pause_campaign(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
) -> Result<Json<Campaign>, ApiError> {
    change(&state, &ctx, &id, CampaignAction::Pause).await
}

/// Resumes a paused campaign.
#[utoipa::path(post, path = "/api/v1/campaigns/{campaign_id}/resume", tag = "campaigns",
    params(("campaign_id" = String, Path, description = "Campaign id")),
    responses((status = 200, description = "Running", body = Campaign),
        (status = 404, description = "No such campaign here", body = ErrorEnvelope),
        (status = 409, description = "Not paused", body = ErrorEnvelope)))]
async fn resume_campaign(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
) -> Result<Json<Campaign>, ApiError> {
    change(&state, &ctx, &id, CampaignAction::Resume).await
}

/// Cancels a scheduled, running or paused campaign: recipients not yet queued are not, and
/// its messages still waiting in the outbox are withdrawn.
#[utoipa::path(post, path = "/api/v1/campaigns/{campaign_id}/cancel", tag = "campaigns",
    params(("campaign_id" = String, Path, description = "Campaign id")),
    responses((status = 200, description = "Cancelled", body = Campaign),
        (status = 404, description = "No such campaign here", body = ErrorEnvelope),
        (status = 409, description = "A draft, or already over", body = ErrorEnvelope)))]
async fn cancel_campaign(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
) -> Result<Json<Campaign>, ApiError> {
    change(&state, &ctx, &id, CampaignAction::Cancel).await
}

/// A recipients page request.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RecipientParams {
    /// `pending`, `excluded`, `queued`, `failed` or `cancelled`.
    pub state: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// 1 to 1000 (default 100).
    pub limit: Option<i64>,
}

/// The campaign's recipients with their state, message status and clicks, in pages.
#[utoipa::path(get, path = "/api/v1/campaigns/{campaign_id}/recipients", tag = "campaigns",
    params(("campaign_id" = String, Path, description = "Campaign id"), RecipientParams),
    responses((status = 200, description = "A page", body = RecipientPage),
        (status = 404, description = "No such campaign here", body = ErrorEnvelope),
        (status = 422, description = "Invalid state or cursor", body = ErrorEnvelope)))]
async fn campaign_recipients(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
    Query(p): Query<RecipientParams>,
) -> Result<Json<RecipientPage>, ApiError> {
    let id = path_id(&id, CampaignId::parse)?;
    let mut tx = state.store().begin_read(&ctx).await?;
    let page = tx
        .campaign_recipients(
            id,
            p.state.as_deref(),
            p.cursor.as_deref(),
            p.limit.unwrap_or(100),
        )
        .await?;
    tx.commit().await?;
    Ok(Json(page))
}

/// A CSV cell; text a spreadsheet would run as a formula is prefixed with `'`.
fn cell(s: &str) -> String {
    let mut s = s.to_owned();
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        s.insert(0, '\'');
    }
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// The report: the figures, then one line per recipient. Reading it is audited (it names
/// contacts).
pub(crate) async fn report_csv(tx: &mut TenantTx, id: CampaignId) -> Result<String, ApiError> {
    let c = tx.campaign(id).await?;
    let f = tx.campaign_figures(id).await?;
    let mut out = String::from("figure,count\n");
    for (k, v) in [
        ("recipients", f.recipients),
        ("queued", f.queued),
        ("sent", f.sent),
        ("delivered", f.delivered),
        ("read", f.read),
        ("replied", f.replied),
        ("clicked", f.clicked),
        ("failed", f.failed),
        ("cancelled", f.cancelled),
        ("pending", f.pending),
    ] {
        out.push_str(&format!("{k},{v}\n"));
    }
    for r in &f.failed_by_reason {
        out.push_str(&format!(
            "{},{}\n",
            cell(&format!("failed: {}", r.reason)),
            r.count
        ));
    }
    for r in &f.excluded {
        out.push_str(&format!(
            "{},{}\n",
            cell(&format!("excluded: {}", r.reason)),
            r.count
        ));
    }
    out.push_str("\ncontact_id,name,language,state,reason,message_status,error_code,error_title,queued_at,clicks\n");
    let mut cursor: Option<String> = None;
    let mut rows = 0i64;
    loop {
        let page = tx
            .campaign_recipients(id, None, cursor.as_deref(), 1000)
            .await?;
        for r in &page.items {
            rows += 1;
            let queued = r
                .queued_at
                .and_then(|t| {
                    t.format(&time::format_description::well_known::Rfc3339)
                        .ok()
                })
                .unwrap_or_default();
            out.push_str(&format!(
                "{},{},{},{},{},{},{},{},{},{}\n",
                r.contact_id,
                cell(r.contact_name.as_deref().unwrap_or("")),
                cell(&r.language),
                r.state,
                cell(r.reason.as_deref().unwrap_or("")),
                r.message_status.as_deref().unwrap_or(""),
                r.error_code.map(|c| c.to_string()).unwrap_or_default(),
                cell(r.error_title.as_deref().unwrap_or("")),
                queued,
                r.clicks
            ));
        }
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    tx.audit(AuditRecord::new(
        "campaign.report_downloaded",
        "campaign",
        id.to_string(),
        serde_json::json!({ "rows": rows, "name": c.name }),
    ))
    .await?;
    Ok(out)
}

/// The report as CSV: the figures and one line per recipient.
#[utoipa::path(get, path = "/api/v1/campaigns/{campaign_id}/report.csv", tag = "campaigns",
    params(("campaign_id" = String, Path, description = "Campaign id")),
    responses((status = 200, description = "CSV", content_type = "text/csv"),
        (status = 404, description = "No such campaign here", body = ErrorEnvelope)))]
async fn campaign_report_csv(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = path_id(&id, CampaignId::parse)?;
    let mut tx = state.store().begin(&ctx).await?;
    let csv = report_csv(&mut tx, id).await?;
    tx.commit().await?;
    Ok(csv_response(csv))
}

pub(crate) fn csv_response(csv: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"campaign.csv\"",
            ),
            (header::CACHE_CONTROL, "no-store"),
        ],
        csv,
    )
        .into_response()
}
