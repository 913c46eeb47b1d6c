//! Campaigns: a draft names a number, a segment, an approved template and how its values
//! come from each contact; review shows the audience after exclusions and a preview per
//! language; launch (now or at a local time in the organisation's time zone), pause,
//! resume and cancel move it; the worker sends it through the outbox. Figures, the
//! recipients and a CSV report read back what happened.

use super::{ApiJson, path_id};
use crate::AppState;
use crate::api::imports::IMPORT_BODY_LIMIT;
use crate::auth::{Access, Tenant};
use crate::error::{ApiError, ErrorEnvelope};
use crate::routes::RouteTableBuilder;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use frontdesk_domain::campaign::{CampaignAction, Mapping};
use frontdesk_domain::{CampaignId, ChannelId, ImportId, Permission, SegmentId};
use frontdesk_store::audit::AuditRecord;
use frontdesk_store::campaigns::{
    Audience, Campaign, CampaignFigures, CampaignPage, CampaignReview, NewCampaign, RecipientPage,
};
use frontdesk_store::imports::ImportMapping;
use frontdesk_store::segments::ConsentRequirement;
use frontdesk_store::{TenantCtx, TenantTx};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::routes;

pub(crate) fn routes(b: RouteTableBuilder) -> RouteTableBuilder {
    use Permission::*;
    b.json(routes!(list_campaigns), Access::Perm(CampaignsManage))
        .json_sized(
            routes!(create_campaign),
            Access::Perm(CampaignsManage),
            Some(IMPORT_BODY_LIMIT),
        )
        .json(routes!(get_campaign), Access::Perm(CampaignsManage))
        .json_sized(
            routes!(update_campaign),
            Access::Perm(CampaignsManage),
            Some(IMPORT_BODY_LIMIT),
        )
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

/// A CSV file as a campaign's audience: its rows upsert contacts (as a contact import
/// does) and the campaign goes to exactly the contacts of the file.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AudienceCsv {
    pub filename: String,
    /// At most 16 MiB and 100,000 rows; the first row names the columns.
    pub csv: String,
    /// Where columns go, as for a contact import (`{"columns": {"Mobile": "phone",
    /// "Name": "name"}}`). Absent: the column called `phone` (or mobile, number,
    /// whatsapp) is the number. Every column can be read by the mapping as
    /// `column:<name>`.
    #[serde(default)]
    pub mapping: Option<ImportMapping>,
}

/// A campaign to create. The audience is one of `segment_id`, `import_id` (a contact
/// import already run) or `audience_csv` (a file uploaded with the campaign).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CampaignBody {
    /// 1 to 120 characters.
    pub name: String,
    pub channel_id: String,
    #[serde(default)]
    pub segment_id: Option<String>,
    #[serde(default)]
    pub import_id: Option<String>,
    #[serde(default)]
    pub audience_csv: Option<AudienceCsv>,
    /// The template's name, and the language recipients get when theirs is not approved.
    pub template_name: String,
    pub template_language: String,
    /// Where each template value comes from: `{"body": [{"source": "first_name",
    /// "fallback": "there"}, {"source": "column:Coupon"}], "location": {"latitude":
    /// 12.97, "longitude": 77.59, "name": "Our shop"}}`.
    #[serde(default)]
    pub mapping: Mapping,
    /// `opt_in` (only contacts who opted in; the default) or `not_opted_out`.
    #[serde(default)]
    pub consent: Option<String>,
    /// The planned send time, a local date and time in the organisation's time zone
    /// (`2026-12-01T09:30`); launching sends or schedules it.
    #[serde(default)]
    pub send_at: Option<String>,
}

fn parse_consent(c: Option<&str>) -> Result<ConsentRequirement, ApiError> {
    match c {
        None | Some("opt_in") => Ok(ConsentRequirement::OptedIn),
        Some("not_opted_out") => Ok(ConsentRequirement::NotOptedOut),
        Some(_) => Err(ApiError::unprocessable(
            "invalid",
            "consent: opt_in or not_opted_out",
        )),
    }
}

fn check_template(name: &str, language: &str) -> Result<(), ApiError> {
    let bounded = |s: &str, n: usize| !s.is_empty() && s.chars().count() <= n;
    if !bounded(name, 512) || !bounded(language, 15) {
        return Err(ApiError::unprocessable(
            "invalid",
            "template_name and template_language are required",
        ));
    }
    Ok(())
}

/// The audience named by a body: exactly one of a segment, an import and a file (the file
/// is uploaded and its import started in this transaction; that takes `contacts.write`,
/// since its rows become contacts). `None` when the body names none.
pub(crate) async fn audience_of(
    tx: &mut TenantTx,
    ctx: &TenantCtx,
    segment: Option<&str>,
    import: Option<&str>,
    csv: Option<&AudienceCsv>,
) -> Result<Option<Audience>, ApiError> {
    let given = [segment.is_some(), import.is_some(), csv.is_some()];
    if given.iter().filter(|g| **g).count() > 1 {
        return Err(ApiError::unprocessable(
            "invalid",
            "audience: one of segment_id, import_id and audience_csv",
        ));
    }
    Ok(match (segment, import, csv) {
        (Some(s), _, _) => Some(Audience::Segment(path_id(s, SegmentId::parse)?)),
        (_, Some(i), _) => Some(Audience::Import(path_id(i, ImportId::parse)?)),
        (_, _, Some(f)) => {
            if !ctx.can(Permission::ContactsWrite) {
                return Err(ApiError::Forbidden);
            }
            let v = tx
                .import_campaign_audience(&f.filename, &f.csv, f.mapping.as_ref())
                .await?;
            Some(Audience::Import(v.id))
        }
        _ => None,
    })
}

async fn planned_at(
    tx: &mut TenantTx,
    text: Option<&str>,
) -> Result<Option<OffsetDateTime>, ApiError> {
    match text.map(str::trim).filter(|t| !t.is_empty()) {
        Some(t) => Ok(Some(local_send_at(tx, t).await?)),
        None => Ok(None),
    }
}

/// Creates a draft campaign.
#[utoipa::path(post, path = "/api/v1/campaigns", tag = "campaigns", request_body = CampaignBody,
    responses((status = 201, description = "Created", body = Campaign),
        (status = 403, description = "A CSV audience needs contacts.write too", body = ErrorEnvelope),
        (status = 404, description = "No such number, segment or import here", body = ErrorEnvelope),
        (status = 413, description = "Larger than the upload limit", body = ErrorEnvelope),
        (status = 422, description = "Invalid name, audience, file, mapping or template", body = ErrorEnvelope)))]
async fn create_campaign(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    ApiJson(req): ApiJson<CampaignBody>,
) -> Result<(StatusCode, Json<Campaign>), ApiError> {
    let consent = parse_consent(req.consent.as_deref())?;
    check_template(&req.template_name, &req.template_language)?;
    let channel = path_id(&req.channel_id, ChannelId::parse)?;
    let mut tx = state.store().begin(&ctx).await?;
    let audience = audience_of(
        &mut tx,
        &ctx,
        req.segment_id.as_deref(),
        req.import_id.as_deref(),
        req.audience_csv.as_ref(),
    )
    .await?
    .ok_or_else(|| {
        ApiError::unprocessable(
            "invalid",
            "audience: one of segment_id, import_id and audience_csv",
        )
    })?;
    let n = NewCampaign {
        name: req.name,
        channel,
        audience,
        template_name: req.template_name,
        template_language: req.template_language,
        mapping: req.mapping,
        consent,
        planned_at: planned_at(&mut tx, req.send_at.as_deref()).await?,
    };
    let c = tx.create_campaign(&n).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(c)))
}

/// A present JSON value, even `null` (so `"send_at": null` clears, absent keeps).
fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

/// Changes to a draft: only the values given change. A new audience is one of
/// `segment_id`, `import_id` and `audience_csv`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CampaignPatch {
    pub name: Option<String>,
    pub channel_id: Option<String>,
    pub segment_id: Option<String>,
    pub import_id: Option<String>,
    pub audience_csv: Option<AudienceCsv>,
    pub template_name: Option<String>,
    pub template_language: Option<String>,
    pub mapping: Option<Mapping>,
    pub consent: Option<String>,
    /// The planned send time (local, in the organisation's time zone); `null` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub send_at: Option<Option<String>>,
}

/// Edits a draft campaign (audited with what changed). Any other state is 409
/// `campaign_state`.
#[utoipa::path(patch, path = "/api/v1/campaigns/{campaign_id}", tag = "campaigns",
    params(("campaign_id" = String, Path, description = "Campaign id")), request_body = CampaignPatch,
    responses((status = 200, description = "The draft as changed", body = Campaign),
        (status = 403, description = "A CSV audience needs contacts.write too", body = ErrorEnvelope),
        (status = 404, description = "No such campaign, number, segment or import here", body = ErrorEnvelope),
        (status = 409, description = "Not a draft", body = ErrorEnvelope),
        (status = 413, description = "Larger than the upload limit", body = ErrorEnvelope),
        (status = 422, description = "Invalid name, audience, file, mapping, template or time", body = ErrorEnvelope)))]
async fn update_campaign(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<CampaignPatch>,
) -> Result<Json<Campaign>, ApiError> {
    let id = path_id(&id, CampaignId::parse)?;
    let mut tx = state.store().begin(&ctx).await?;
    let c = tx.campaign(id).await?;
    if c.status != frontdesk_domain::campaign::CampaignStatus::Draft {
        // Refused before a file would be imported for nothing.
        return Err(frontdesk_store::StoreError::Conflict("campaign_state").into());
    }
    let consent = match req.consent.as_deref() {
        Some(x) => parse_consent(Some(x))?,
        None => parse_consent(Some(&c.consent))?,
    };
    let current = c.audience()?;
    let template_name = req.template_name.unwrap_or(c.template_name);
    let template_language = req.template_language.unwrap_or(c.template_language);
    check_template(&template_name, &template_language)?;
    let channel = match req.channel_id.as_deref() {
        Some(ch) => path_id(ch, ChannelId::parse)?,
        None => c.channel_id,
    };
    let audience = match audience_of(
        &mut tx,
        &ctx,
        req.segment_id.as_deref(),
        req.import_id.as_deref(),
        req.audience_csv.as_ref(),
    )
    .await?
    {
        Some(a) => a,
        None => current,
    };
    let planned = match &req.send_at {
        Some(t) => planned_at(&mut tx, t.as_deref()).await?,
        None => c.scheduled_at,
    };
    let n = NewCampaign {
        name: req.name.unwrap_or(c.name),
        channel,
        audience,
        template_name,
        template_language,
        mapping: req.mapping.unwrap_or(c.mapping),
        consent,
        planned_at: planned,
    };
    let c = tx.update_campaign(id, &n).await?;
    tx.commit().await?;
    Ok(Json(c))
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
pub(crate) fn cell(s: &str) -> String {
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
    Ok(csv_response(csv, "campaign.csv"))
}

/// A CSV download named `filename` (a fixed name of ours, never the user's).
pub(crate) fn csv_response(csv: String, filename: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        csv,
    )
        .into_response()
}
