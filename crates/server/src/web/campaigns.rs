//! Campaign pages: the list, the form for a new one, and a campaign's page with its review
//! (audience after exclusions, preview per language), its actions (launch now, schedule in
//! the organisation's time zone, pause, resume, cancel), its figures with a bar chart drawn
//! as inline SVG (no inline style or script, so the CSP holds), failures by reason and the
//! CSV report. app.js refreshes the figures while the campaign runs.

use super::{PageCtx, PageError, PageForm, see_other};
use crate::AppState;
use crate::auth::{Access, Authed, Tenant};
use crate::error::ApiError;
use crate::routes::RouteTableBuilder;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use frontdesk_domain::campaign::{CampaignAction, CampaignStatus, Mapping, ValueSource};
use frontdesk_domain::{CampaignId, ChannelId, Permission, SegmentId};
use frontdesk_store::campaigns::{CampaignFigures, NewCampaign};
use frontdesk_store::segments::ConsentRequirement;
use frontdesk_store::{StoreError, TemplateFilter};
use maud::{Markup, html};
use serde::Deserialize;

const NAV_PATH: &str = "/campaigns";

pub(crate) fn routes(b: RouteTableBuilder) -> RouteTableBuilder {
    use Permission::*;
    b.page(
        Method::GET,
        "/campaigns",
        get(campaigns_page),
        Access::Perm(CampaignsManage),
    )
    .page(
        Method::GET,
        "/campaigns/new",
        get(new_campaign_page),
        Access::Perm(CampaignsManage),
    )
    .page(
        Method::POST,
        "/campaigns",
        post(campaign_create),
        Access::Perm(CampaignsManage),
    )
    .page(
        Method::GET,
        "/campaigns/{campaign_id}",
        get(campaign_page),
        Access::Perm(CampaignsManage),
    )
    .page(
        Method::POST,
        "/campaigns/{campaign_id}",
        post(campaign_action),
        Access::Perm(CampaignsManage),
    )
}

fn campaign_id(s: &str) -> Result<CampaignId, PageError> {
    CampaignId::parse(s).map_err(|_| PageError(ApiError::NotFound))
}

async fn campaigns_page(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Tenant(ctx): Tenant,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let mut tx = state.store().begin_read(&ctx).await?;
    let page_of = tx.campaigns(None, 100).await?;
    tx.commit().await?;
    let page = PageCtx::new(&state, Some(caller), &headers, NAV_PATH).await;
    Ok(page.render("Campaigns", html! {
        p { a href="/campaigns/new" data-testid="new-campaign" { "New campaign" } }
        @if page_of.items.is_empty() {
            p.muted data-testid="no-campaigns" { "No campaign yet." }
        } @else {
            table data-testid="campaigns" {
                thead { tr { th { "Campaign" } th { "Template" } th { "Status" } th { "Created" } } }
                tbody {
                    @for c in &page_of.items {
                        tr data-campaign-id=(c.id) {
                            td { a href={ "/campaigns/" (c.id) } { (c.name) } }
                            td { (c.template_name) " (" (c.template_language) ")" }
                            td { (c.status.as_str()) }
                            td { (c.created_at.date()) }
                        }
                    }
                }
            }
        }
    }))
}

/// The form's fields as typed.
#[derive(Deserialize, Default)]
struct CampaignForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    channel_id: String,
    #[serde(default)]
    segment_id: String,
    /// `name|language`
    #[serde(default)]
    template: String,
    #[serde(default)]
    consent: String,
    /// One body value per line: `source` or `source|fallback`.
    #[serde(default)]
    values: String,
}

/// The body values typed one per line.
fn parse_values(text: &str) -> Result<Mapping, String> {
    let mut body = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (source, fallback) = match line.split_once('|') {
            Some((s, f)) => (
                s.trim(),
                Some(f.trim().to_owned()).filter(|f| !f.is_empty()),
            ),
            None => (line, None),
        };
        body.push(ValueSource {
            source: source.to_owned(),
            fallback,
        });
    }
    let m = Mapping {
        body,
        ..Default::default()
    };
    m.check()?;
    Ok(m)
}

#[derive(Default)]
struct FormErrors {
    name: Option<String>,
    template: Option<String>,
    values: Option<String>,
    other: Option<String>,
}

async fn form(
    state: &AppState,
    ctx: &frontdesk_store::TenantCtx,
    page: &PageCtx,
    f: &CampaignForm,
    e: &FormErrors,
) -> Result<Markup, PageError> {
    let channels = state.store().list_channels(ctx).await?;
    let mut tx = state.store().begin_read(ctx).await?;
    let segments = tx.segments().await?;
    let templates = tx
        .templates(&TemplateFilter {
            status: Some("APPROVED".into()),
            ..Default::default()
        })
        .await?;
    tx.commit().await?;
    Ok(html! {
        form method="post" action="/campaigns" data-testid="campaign-form" {
            (page.csrf_field())
            @if let Some(m) = &e.other { p.field-error data-testid="error-form" { (m) } }
            label class=[e.name.as_ref().map(|_| "invalid")] {
                "Name" input type="text" name="name" required maxlength="120" value=(f.name) data-testid="campaign-name";
                @if let Some(m) = &e.name { span.field-error data-testid="error-name" { (m) } }
            }
            label { "Number"
                select name="channel_id" data-testid="campaign-channel" {
                    @for c in &channels {
                        option value=(c.id) selected[f.channel_id == c.id.to_string()] { (c.name) " · " (c.display_number) }
                    }
                }
            }
            label { "Audience (segment)"
                select name="segment_id" data-testid="campaign-segment" {
                    @for s in &segments {
                        option value=(s.id) selected[f.segment_id == s.id.to_string()] { (s.name) }
                    }
                }
            }
            label class=[e.template.as_ref().map(|_| "invalid")] { "Template (approved; recipients get their own language when it is approved, else this one)"
                select name="template" data-testid="campaign-template" {
                    @for t in &templates {
                        @let v = format!("{}|{}", t.name, t.language);
                        option value=(v) selected[f.template == v] { (t.name) " (" (t.language) ", " (t.category.as_deref().unwrap_or("?")) ")" }
                    }
                }
                @if let Some(m) = &e.template { span.field-error data-testid="error-template" { (m) } }
            }
            label { "Who may receive it"
                select name="consent" data-testid="campaign-consent" {
                    option value="opt_in" selected[f.consent != "not_opted_out"] { "Only contacts who opted in" }
                    option value="not_opted_out" selected[f.consent == "not_opted_out"] { "Everyone who has not opted out" }
                }
            }
            label class=[e.values.as_ref().map(|_| "invalid")] {
                "Template values, one per line in order: a source (name, first_name, profile_name, email, company, language, field:<key>, text) and an optional fallback after |, e.g. first_name|there"
                textarea name="values" rows="4" data-testid="campaign-values" { (f.values) }
                @if let Some(m) = &e.values { span.field-error data-testid="error-values" { (m) } }
            }
            button type="submit" data-testid="create-campaign" { "Create draft" }
        }
    })
}

async fn new_campaign_page(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Tenant(ctx): Tenant,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let page = PageCtx::new(&state, Some(caller), &headers, NAV_PATH).await;
    let body = form(
        &state,
        &ctx,
        &page,
        &CampaignForm::default(),
        &FormErrors::default(),
    )
    .await?;
    Ok(page.render("New campaign", body))
}

async fn campaign_create(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Tenant(ctx): Tenant,
    headers: HeaderMap,
    PageForm(f): PageForm<CampaignForm>,
) -> Result<Response, PageError> {
    let mut e = FormErrors::default();
    let mapping = parse_values(&f.values).map_err(|m| e.values = Some(m)).ok();
    let template = f.template.split_once('|');
    if template.is_none() {
        e.template = Some("choose an approved template".into());
    }
    let ids = (
        ChannelId::parse(&f.channel_id).ok(),
        SegmentId::parse(&f.segment_id).ok(),
    );
    if ids.0.is_none() || ids.1.is_none() {
        e.other = Some("choose a number and a segment".into());
    }
    if let (Some(m), Some((name, lang)), (Some(ch), Some(seg))) = (mapping, template, ids) {
        let mut tx = state.store().begin(&ctx).await?;
        let n = NewCampaign {
            name: f.name.clone(),
            channel: ch,
            segment: seg,
            template_name: name.to_owned(),
            template_language: lang.to_owned(),
            mapping: m,
            consent: if f.consent == "not_opted_out" {
                ConsentRequirement::NotOptedOut
            } else {
                ConsentRequirement::OptedIn
            },
        };
        match tx.create_campaign(&n).await {
            Ok(c) => {
                tx.commit().await?;
                return Ok(see_other(&format!("/campaigns/{}", c.id), &[]));
            }
            Err(StoreError::Invalid(m)) if m.starts_with("name:") => e.name = Some(m),
            Err(StoreError::Invalid(m)) if m.starts_with("template:") => e.template = Some(m),
            Err(StoreError::Invalid(m)) => e.values = Some(m),
            // Another organisation's number or segment is not there at all.
            Err(StoreError::NotFound) => return Err(PageError(ApiError::NotFound)),
            Err(err) => return Err(err.into()),
        }
    }
    let page = PageCtx::new(&state, Some(caller), &headers, NAV_PATH).await;
    let body = form(&state, &ctx, &page, &f, &e).await?;
    let mut r = page.render("New campaign", body);
    *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
    Ok(r)
}

/// The funnel as horizontal bars, scaled to the recipients queued. Bars and numbers carry
/// `data-figure` so app.js can move them as figures arrive.
fn chart(f: &CampaignFigures) -> Markup {
    let rows = [
        ("queued", "Queued", f.queued),
        ("sent", "Sent", f.sent),
        ("delivered", "Delivered", f.delivered),
        ("read", "Read", f.read),
        ("replied", "Replied", f.replied),
        ("clicked", "Clicked", f.clicked),
        ("failed", "Failed", f.failed),
    ];
    let max = rows.iter().map(|r| r.2).max().unwrap_or(0).max(1);
    let width = 360i64;
    html! {
        svg.campaign-chart xmlns="http://www.w3.org/2000/svg" viewBox="0 0 520 230" role="img"
            aria-label="Campaign figures" data-testid="campaign-chart" data-max=(max) {
            @for (i, (key, label, n)) in rows.iter().enumerate() {
                @let y = 10 + i as i64 * 30;
                text x="0" y=(y + 15) { (label) }
                rect x="90" y=(y) height="20" width=(n * width / max) data-bar=(key)
                    fill=(if *key == "failed" { "#b42318" } else { "#0e7c66" }) {}
                text x=(100 + width) y=(y + 15) data-figure-text=(key) { (n) }
            }
        }
    }
}

async fn campaign_page(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Tenant(ctx): Tenant,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let id = campaign_id(&id)?;
    render_campaign(state, caller, ctx, headers, id, None).await
}

async fn render_campaign(
    state: AppState,
    caller: crate::auth::Caller,
    ctx: frontdesk_store::TenantCtx,
    headers: HeaderMap,
    id: CampaignId,
    error: Option<String>,
) -> Result<Response, PageError> {
    let mut tx = state.store().begin_read(&ctx).await?;
    let c = tx.campaign(id).await?;
    let f = tx.campaign_figures(id).await?;
    let review = match c.status {
        CampaignStatus::Draft | CampaignStatus::Scheduled => {
            Some(tx.review_campaign(id, state.now()).await?)
        }
        _ => None,
    };
    let tz = tx.time_zone().await?;
    tx.commit().await?;
    let page = PageCtx::new(&state, Some(caller), &headers, NAV_PATH).await;
    let s = c.status;
    // Statuses and replies keep coming after the last message is queued.
    let live = s != CampaignStatus::Draft;
    let mut r = page.render(&c.name, html! {
        p { "Status: " strong data-testid="campaign-status" data-campaign-status { (s.as_str()) }
            @if let Some(w) = &c.waiting { " · waiting (" (w) ") until " (c.waiting_until.map(|t| t.to_string()).unwrap_or_default()) }
            @if let Some(t) = c.scheduled_at { " · scheduled for " (t.to_string()) " (UTC)" }
        }
        p.muted { "Template " (c.template_name) " (" (c.template_language) ") · consent: " (c.consent) }
        @if let Some(m) = &error { p.field-error data-testid="error-action" { (m) } }
        div.campaign-actions {
            @if s.after(CampaignAction::Launch).is_some() {
                form method="post" action={ "/campaigns/" (id) } {
                    (page.csrf_field())
                    input type="hidden" name="action" value="launch";
                    button type="submit" data-testid="launch-campaign" { "Send now" }
                }
                form method="post" action={ "/campaigns/" (id) } {
                    (page.csrf_field())
                    input type="hidden" name="action" value="schedule";
                    label { "Send at (" (tz) " time)" input type="datetime-local" name="send_at" required data-testid="campaign-send-at"; }
                    button type="submit" data-testid="schedule-campaign" { "Schedule" }
                }
            }
            @for (action, label, needs) in [("pause", "Pause", CampaignAction::Pause), ("resume", "Resume", CampaignAction::Resume), ("cancel", "Cancel campaign", CampaignAction::Cancel)] {
                @if s.after(needs).is_some() {
                    form method="post" action={ "/campaigns/" (id) } {
                        (page.csrf_field())
                        input type="hidden" name="action" value=(action);
                        button type="submit" data-testid={ (action) "-campaign" } { (label) }
                    }
                }
            }
        }
        @if let Some(r) = &review {
            h2 { "Review" }
            table data-testid="campaign-review" {
                tr { th { "Contacts in the segment" } td { (r.matched) } }
                tr { th { "Opted out (never sent to)" } td { (r.opted_out) } }
                tr { th { "No opt-in" } td { (r.no_opt_in) } }
                tr { th { "Missing a value (no fallback)" } td { (r.missing_value) } }
                tr { th { "Will receive it" } td data-testid="review-sendable" { (r.sendable) } }
                tr { th { "Daily limit (unique recipients, 24 h)" } td { @if let Some(l) = r.daily_limit { (l) } @else { "unlimited" } } }
                tr { th { "Used in the last 24 h" } td { (r.used_last_24h) } }
                tr { th { "Over today's room (sent when it frees up)" } td { (r.over_daily_limit) } }
            }
            h3 { "Preview per language" }
            @for l in &r.languages {
                div.campaign-preview data-testid="campaign-preview" {
                    p { strong { (l.language) } " · " (l.recipients) " recipients" }
                    @if let Some(p) = &l.preview { pre { (p) } }
                    @if let Some(p) = &l.problem { p.field-error { (p) } }
                }
            }
        }
        h2 { "Figures" }
        div data-campaign-live=[live.then_some(id.to_string())] {
            (chart(&f))
            table data-testid="campaign-figures" {
                @for (key, label, n) in [("recipients", "Recipients", f.recipients), ("pending", "Waiting to be queued", f.pending),
                    ("queued", "Queued", f.queued), ("sent", "Sent", f.sent), ("delivered", "Delivered", f.delivered),
                    ("read", "Read", f.read), ("replied", "Replied", f.replied), ("clicked", "Clicked", f.clicked),
                    ("failed", "Failed", f.failed), ("cancelled", "Cancelled", f.cancelled)] {
                    tr { th { (label) } td data-figure=(key) data-testid={ "figure-" (key) } { (n) } }
                }
            }
        }
        @if !f.failed_by_reason.is_empty() {
            h3 { "Failed, by reason" }
            ul data-testid="failed-by-reason" { @for r in &f.failed_by_reason { li { (r.reason) ": " (r.count) } } }
        }
        @if !f.excluded.is_empty() {
            h3 { "Left out, by reason" }
            ul data-testid="excluded-by-reason" { @for r in &f.excluded { li { (r.reason) ": " (r.count) } } }
        }
        p { a href={ "/api/v1/campaigns/" (id) "/report.csv" } data-testid="campaign-csv" download { "Download the report (CSV)" } }
    });
    if error.is_some() {
        *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
    }
    Ok(r)
}

#[derive(Deserialize)]
struct ActionForm {
    action: String,
    #[serde(default)]
    send_at: Option<String>,
}

async fn campaign_action(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Tenant(ctx): Tenant,
    headers: HeaderMap,
    Path(id): Path<String>,
    PageForm(f): PageForm<ActionForm>,
) -> Result<Response, PageError> {
    let id = campaign_id(&id)?;
    let mut tx = state.store().begin(&ctx).await?;
    tx.campaign(id).await?;
    let outcome = match f.action.as_str() {
        "launch" => tx.launch_campaign(id, None, state.now()).await,
        "schedule" => {
            let text = f.send_at.as_deref().unwrap_or("").trim().to_owned();
            match crate::api::campaigns::local_send_at(&mut tx, &text).await {
                Ok(at) => tx.launch_campaign(id, Some(at), state.now()).await,
                Err(_) => Err(StoreError::Invalid(
                    "send at: a date and time that exists in the organisation's time zone".into(),
                )),
            }
        }
        "pause" => {
            tx.change_campaign(id, CampaignAction::Pause, state.now())
                .await
        }
        "resume" => {
            tx.change_campaign(id, CampaignAction::Resume, state.now())
                .await
        }
        "cancel" => {
            tx.change_campaign(id, CampaignAction::Cancel, state.now())
                .await
        }
        _ => Err(StoreError::Invalid(
            "launch, schedule, pause, resume or cancel".into(),
        )),
    };
    let error = match outcome {
        Ok(_) => {
            tx.commit().await?;
            return Ok(see_other(&format!("/campaigns/{id}"), &[]));
        }
        Err(StoreError::Invalid(m)) => m,
        Err(StoreError::Conflict("template_not_approved")) => {
            "the template is not approved in the campaign's default language".into()
        }
        Err(StoreError::Conflict(_)) => {
            "the campaign's state does not allow this any more (it changed meanwhile)".into()
        }
        Err(e) => return Err(e.into()),
    };
    drop(tx);
    render_campaign(state, caller, ctx, headers, id, Some(error)).await
}
