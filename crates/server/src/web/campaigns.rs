//! Campaign pages: the list, the form for a new one, and a campaign's page with its review
//! (audience after exclusions, preview per language), its actions (launch now, schedule in
//! the organisation's time zone, pause, resume, cancel), its figures with a bar chart drawn
//! as inline SVG (no inline style or script, so the CSP holds), failures by reason and the
//! CSV report. app.js refreshes the figures while the campaign runs.

use super::{PageCtx, PageError, PageForm, see_other};
use crate::AppState;
use crate::api::imports::IMPORT_BODY_LIMIT;
use crate::auth::{Access, Authed, Tenant};
use crate::error::ApiError;
use crate::routes::RouteTableBuilder;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use frontdesk_domain::campaign::{CampaignAction, CampaignStatus, Mapping, ValueSource};
use frontdesk_domain::template::LocationFill;
use frontdesk_domain::{CampaignId, ChannelId, ImportId, Permission, SegmentId};
use frontdesk_store::campaigns::{Audience, Campaign, CampaignFigures, NewCampaign};
use frontdesk_store::imports::ImportMapping;
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
    .page_sized(
        Method::POST,
        "/campaigns",
        post(campaign_create),
        Access::Perm(CampaignsManage),
        Some(IMPORT_BODY_LIMIT),
    )
    .page(
        Method::GET,
        "/campaigns/{campaign_id}/edit",
        get(edit_campaign_page),
        Access::Perm(CampaignsManage),
    )
    .page_sized(
        Method::POST,
        "/campaigns/{campaign_id}/edit",
        post(campaign_edit),
        Access::Perm(CampaignsManage),
        Some(IMPORT_BODY_LIMIT),
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
    /// A segment's id, `csv` (the file below) or `import:<id>` (the draft's file, kept).
    #[serde(default)]
    segment_id: String,
    /// A CSV audience: the file's text (a chosen file is read into it), its name, and the
    /// number's column (default: the column called phone).
    #[serde(default)]
    audience_csv: String,
    #[serde(default)]
    filename: String,
    #[serde(default)]
    phone_column: String,
    /// `name|language`
    #[serde(default)]
    template: String,
    #[serde(default)]
    consent: String,
    /// One body value per line: `source` or `source|fallback`.
    #[serde(default)]
    values: String,
    /// A location header's place (all empty: none).
    #[serde(default)]
    latitude: String,
    #[serde(default)]
    longitude: String,
    #[serde(default)]
    place_name: String,
    #[serde(default)]
    place_address: String,
    /// The planned send time (local), drafts being edited.
    #[serde(default)]
    send_at: String,
}

impl CampaignForm {
    /// The form filled with a draft's values.
    fn of(c: &Campaign, planned: String) -> Self {
        let values = c
            .mapping
            .body
            .iter()
            .map(|v| match &v.fallback {
                Some(f) => format!("{}|{f}", v.source),
                None => v.source.clone(),
            })
            .collect::<Vec<_>>()
            .join("\n");
        let place = c.mapping.location.clone().unwrap_or_default();
        let has_place = c.mapping.location.is_some();
        CampaignForm {
            name: c.name.clone(),
            channel_id: c.channel_id.to_string(),
            segment_id: match (c.segment_id, c.import_id) {
                (_, Some(i)) => format!("import:{i}"),
                (Some(s), None) => s.to_string(),
                (None, None) => String::new(),
            },
            template: format!("{}|{}", c.template_name, c.template_language),
            consent: c.consent.clone(),
            values,
            latitude: if has_place {
                place.latitude.to_string()
            } else {
                String::new()
            },
            longitude: if has_place {
                place.longitude.to_string()
            } else {
                String::new()
            },
            place_name: place.name.unwrap_or_default(),
            place_address: place.address.unwrap_or_default(),
            send_at: planned,
            ..Default::default()
        }
    }
}

/// The body values typed one per line, and the place of a location header; the rest of
/// `base` (a draft's header and button values, set through the API) is kept.
fn parse_values(f: &CampaignForm, base: Mapping) -> Result<Mapping, String> {
    let mut body = Vec::new();
    for line in f.values.lines().map(str::trim).filter(|l| !l.is_empty()) {
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
    let text = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
    let location = match (text(&f.latitude), text(&f.longitude)) {
        (None, None) => None,
        (Some(lat), Some(lng)) => {
            let coord = |s: &str, what: &str| {
                s.parse::<f64>()
                    .map_err(|_| format!("location.{what}: a number such as 12.9716"))
            };
            Some(LocationFill {
                latitude: coord(&lat, "latitude")?,
                longitude: coord(&lng, "longitude")?,
                name: text(&f.place_name),
                address: text(&f.place_address),
            })
        }
        _ => return Err("location: both a latitude and a longitude".into()),
    };
    let m = Mapping {
        body,
        location,
        ..base
    };
    m.check()?;
    Ok(m)
}

#[derive(Default)]
struct FormErrors {
    name: Option<String>,
    audience: Option<String>,
    template: Option<String>,
    values: Option<String>,
    send_at: Option<String>,
    other: Option<String>,
}

/// The new-campaign form (`editing`: a draft's, posting to its edit page).
async fn form(
    state: &AppState,
    ctx: &frontdesk_store::TenantCtx,
    page: &PageCtx,
    f: &CampaignForm,
    e: &FormErrors,
    editing: Option<&Campaign>,
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
    let kept_file = match editing.and_then(|c| c.import_id) {
        Some(i) => Some((i, tx.contact_import(i).await?.filename)),
        None => None,
    };
    let tz = tx.time_zone().await?;
    tx.commit().await?;
    let action = match editing {
        Some(c) => format!("/campaigns/{}/edit", c.id),
        None => "/campaigns".to_owned(),
    };
    Ok(html! {
        form method="post" action=(action) data-testid="campaign-form" {
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
            fieldset class=[e.audience.as_ref().map(|_| "invalid")] {
                legend { "Audience" }
                label { "A segment, or a CSV file"
                    select name="segment_id" data-testid="campaign-segment" {
                        @for s in &segments {
                            option value=(s.id) selected[f.segment_id == s.id.to_string()] { (s.name) }
                        }
                        @if let Some((i, name)) = &kept_file {
                            @let v = format!("import:{i}");
                            option value=(v) selected[f.segment_id == v] { "The file " (name) }
                        }
                        option value="csv" selected[f.segment_id == "csv"] { "A CSV file (below)" }
                    }
                }
                p.muted { "A CSV file: its rows become contacts (or update them) and the campaign goes to exactly those contacts, opted-out ones never. The first row names the columns; one is the phone number. At most 16 MB and 100,000 rows. Every column can be a template value: column:<name>." }
                label { "CSV file" input type="file" accept=".csv,text/csv" data-csv-into="audience-csv" data-testid="campaign-csv-file"; }
                label { "…or paste it here"
                    // A file too large to show again is not put back.
                    textarea name="audience_csv" id="audience-csv" rows="4" data-testid="campaign-csv" {
                        @if f.audience_csv.len() <= 200_000 { (f.audience_csv) }
                    }
                }
                input type="hidden" name="filename" value=(if f.filename.is_empty() { "pasted.csv" } else { f.filename.as_str() }) data-filename-for="audience-csv";
                label { "The phone number's column (empty: the column called phone)"
                    input type="text" name="phone_column" maxlength="100" value=(f.phone_column) data-testid="campaign-phone-column";
                }
                @if let Some(m) = &e.audience { span.field-error data-testid="error-audience" { (m) } }
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
                "Template values, one per line in order: a source (name, first_name, profile_name, email, company, language, field:<key>, column:<CSV column>, text) and an optional fallback after |, e.g. first_name|there"
                textarea name="values" rows="4" data-testid="campaign-values" { (f.values) }
                @if let Some(m) = &e.values { span.field-error data-testid="error-values" { (m) } }
            }
            fieldset {
                legend { "Location header (templates whose header is a place; the same for everyone)" }
                label { "Latitude" input type="text" name="latitude" inputmode="decimal" value=(f.latitude) data-testid="campaign-latitude"; }
                label { "Longitude" input type="text" name="longitude" inputmode="decimal" value=(f.longitude) data-testid="campaign-longitude"; }
                label { "Place name" input type="text" name="place_name" maxlength="1000" value=(f.place_name); }
                label { "Address" input type="text" name="place_address" maxlength="1000" value=(f.place_address); }
            }
            @if editing.is_some() {
                label class=[e.send_at.as_ref().map(|_| "invalid")] { "Planned send time (" (tz) " time; not binding until you schedule it)"
                    input type="datetime-local" name="send_at" value=(f.send_at) data-testid="campaign-planned-at";
                    @if let Some(m) = &e.send_at { span.field-error data-testid="error-send-at" { (m) } }
                }
                button type="submit" data-testid="save-campaign" { "Save draft" }
            } @else {
                button type="submit" data-testid="create-campaign" { "Create draft" }
            }
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
        None,
    )
    .await?;
    Ok(page.render("New campaign", body))
}

/// Reads the form into a draft, uploading a CSV audience's file in `tx` (refusals go
/// beside their fields). `editing`: the draft being changed.
async fn draft_of_form(
    tx: &mut frontdesk_store::TenantTx,
    ctx: &frontdesk_store::TenantCtx,
    f: &CampaignForm,
    editing: Option<&Campaign>,
    e: &mut FormErrors,
) -> Result<Option<NewCampaign>, PageError> {
    let base = editing.map(|c| c.mapping.clone()).unwrap_or_default();
    let mapping = parse_values(f, base).map_err(|m| e.values = Some(m)).ok();
    let template = f.template.split_once('|');
    if template.is_none() {
        e.template = Some("choose an approved template".into());
    }
    let channel = ChannelId::parse(&f.channel_id).ok();
    if channel.is_none() {
        e.other = Some("choose a number".into());
    }
    let planned = match f.send_at.trim() {
        "" => None,
        t => match crate::api::campaigns::local_send_at(tx, t).await {
            Ok(at) => Some(at),
            Err(_) => {
                e.send_at =
                    Some("a date and time that exists in the organisation's time zone".into());
                None
            }
        },
    };
    let audience = match f.segment_id.as_str() {
        "csv" if f.audience_csv.trim().is_empty() => {
            e.audience = Some("choose or paste a CSV file".into());
            None
        }
        "csv" if !ctx.can(Permission::ContactsWrite) => {
            e.audience = Some(
                "a CSV audience creates contacts: that needs the contacts.write permission".into(),
            );
            None
        }
        "csv" => {
            let col = f.phone_column.trim();
            let mapping = (!col.is_empty()).then(|| ImportMapping {
                columns: [(col.to_owned(), "phone".to_owned())].into(),
                consent_evidence: None,
            });
            match tx
                .import_campaign_audience(&f.filename, &f.audience_csv, mapping.as_ref())
                .await
            {
                Ok(v) => Some(Audience::Import(v.id)),
                Err(StoreError::Invalid(m)) => {
                    e.audience = Some(m);
                    None
                }
                Err(err) => return Err(err.into()),
            }
        }
        s => match s.strip_prefix("import:") {
            Some(i) => ImportId::parse(i).ok().map(Audience::Import),
            None => SegmentId::parse(s).ok().map(Audience::Segment),
        },
    };
    if audience.is_none() && e.audience.is_none() {
        e.audience = Some("choose a segment or a CSV file".into());
    }
    let (Some(m), Some((name, lang)), Some(ch), Some(audience)) =
        (mapping, template, channel, audience)
    else {
        return Ok(None);
    };
    if e.send_at.is_some() {
        return Ok(None);
    }
    Ok(Some(NewCampaign {
        name: f.name.clone(),
        channel: ch,
        audience,
        template_name: name.to_owned(),
        template_language: lang.to_owned(),
        mapping: m,
        consent: if f.consent == "not_opted_out" {
            ConsentRequirement::NotOptedOut
        } else {
            ConsentRequirement::OptedIn
        },
        planned_at: planned,
    }))
}

/// Where a store refusal of a draft goes on the form.
fn place_refusal(err: StoreError, e: &mut FormErrors) -> Result<(), PageError> {
    match err {
        StoreError::Invalid(m) if m.starts_with("name:") => e.name = Some(m),
        StoreError::Invalid(m) if m.starts_with("template:") => e.template = Some(m),
        StoreError::Invalid(m) if m.starts_with("audience:") || m.starts_with("file:") => {
            e.audience = Some(m)
        }
        StoreError::Invalid(m) if m.starts_with("send_at:") => e.send_at = Some(m),
        StoreError::Invalid(m) => e.values = Some(m),
        StoreError::Conflict(_) => e.other = Some(
            "the campaign is no longer a draft (it was launched meanwhile); nothing was changed"
                .into(),
        ),
        // Another organisation's number, segment or file is not there at all.
        StoreError::NotFound => return Err(PageError(ApiError::NotFound)),
        err => return Err(err.into()),
    }
    Ok(())
}

async fn campaign_create(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Tenant(ctx): Tenant,
    headers: HeaderMap,
    PageForm(f): PageForm<CampaignForm>,
) -> Result<Response, PageError> {
    let mut e = FormErrors::default();
    let mut tx = state.store().begin(&ctx).await?;
    if let Some(n) = draft_of_form(&mut tx, &ctx, &f, None, &mut e).await? {
        match tx.create_campaign(&n).await {
            Ok(c) => {
                tx.commit().await?;
                return Ok(see_other(&format!("/campaigns/{}", c.id), &[]));
            }
            Err(err) => place_refusal(err, &mut e)?,
        }
    }
    // Nothing is kept of a refused form (a file uploaded with it included).
    drop(tx);
    let page = PageCtx::new(&state, Some(caller), &headers, NAV_PATH).await;
    let body = form(&state, &ctx, &page, &f, &e, None).await?;
    let mut r = page.render("New campaign", body);
    *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
    Ok(r)
}

/// A draft's planned time as the form's local `YYYY-MM-DDTHH:MM`.
fn local_input(t: Option<time::OffsetDateTime>, tz: &str) -> String {
    t.and_then(|t| frontdesk_store::zone::local_time(t, tz).ok())
        .map(|(d, h)| format!("{d}T{:02}:{:02}", h.hour(), h.minute()))
        .unwrap_or_default()
}

async fn edit_campaign_page(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Tenant(ctx): Tenant,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let id = campaign_id(&id)?;
    let mut tx = state.store().begin_read(&ctx).await?;
    let c = tx.campaign(id).await?;
    let tz = tx.time_zone().await?;
    tx.commit().await?;
    if c.status != CampaignStatus::Draft {
        return Ok(see_other(&format!("/campaigns/{id}"), &[]));
    }
    let page = PageCtx::new(&state, Some(caller), &headers, NAV_PATH).await;
    let f = CampaignForm::of(&c, local_input(c.scheduled_at, &tz));
    let body = form(&state, &ctx, &page, &f, &FormErrors::default(), Some(&c)).await?;
    Ok(page.render(&format!("Edit {}", c.name), body))
}

async fn campaign_edit(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Tenant(ctx): Tenant,
    headers: HeaderMap,
    Path(id): Path<String>,
    PageForm(f): PageForm<CampaignForm>,
) -> Result<Response, PageError> {
    let id = campaign_id(&id)?;
    let mut e = FormErrors::default();
    let mut tx = state.store().begin(&ctx).await?;
    let c = tx.campaign(id).await?;
    if c.status != CampaignStatus::Draft {
        e.other = Some("the campaign is no longer a draft; nothing was changed".into());
    } else if let Some(n) = draft_of_form(&mut tx, &ctx, &f, Some(&c), &mut e).await? {
        match tx.update_campaign(id, &n).await {
            Ok(_) => {
                tx.commit().await?;
                return Ok(see_other(&format!("/campaigns/{id}"), &[]));
            }
            Err(err) => place_refusal(err, &mut e)?,
        }
    }
    drop(tx);
    let page = PageCtx::new(&state, Some(caller), &headers, NAV_PATH).await;
    let body = form(&state, &ctx, &page, &f, &e, Some(&c)).await?;
    let mut r = page.render(&format!("Edit {}", c.name), body);
    *r.status_mut() = if c.status == CampaignStatus::Draft {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::CONFLICT
    };
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
    let planned = local_input(c.scheduled_at.filter(|_| s == CampaignStatus::Draft), &tz);
    // Statuses and replies keep coming after the last message is queued.
    let live = s != CampaignStatus::Draft;
    let mut r = page.render(&c.name, html! {
        p { "Status: " strong data-testid="campaign-status" data-campaign-status { (s.as_str()) }
            @if let Some(w) = &c.waiting { " · waiting (" (w) ") until " (c.waiting_until.map(|t| t.to_string()).unwrap_or_default()) }
            @if let Some(t) = c.scheduled_at { " · scheduled for " (t.to_string()) " (UTC)" }
        }
        p.muted { "Template " (c.template_name) " (" (c.template_language) ") · consent: " (c.consent)
            @if let Some(f) = review.as_ref().and_then(|r| r.file.as_ref()) { " · audience: the file " (f.filename) }
        }
        @if s == CampaignStatus::Draft {
            p { a href={ "/campaigns/" (id) "/edit" } data-testid="edit-campaign" { "Edit the draft" } }
        }
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
                    label { "Send at (" (tz) " time)" input type="datetime-local" name="send_at" required value=(planned) data-testid="campaign-send-at"; }
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
            @if let Some(f) = &r.file {
                @if f.status != "done" {
                    // The worker is importing the file: look again in a moment.
                    p data-testid="review-importing" data-reload-every="2" { "Importing the file: " (f.processed_rows) " of " (f.total_rows) " rows…" }
                }
                table data-testid="campaign-file" {
                    tr { th { "Rows in the file" } td { (f.total_rows) } }
                    tr { th { "Invalid rows (no valid number, a bad value)" } td data-testid="review-invalid-rows" { (f.invalid_rows) } }
                    tr { th { "Duplicate rows (a number an earlier row had)" } td data-testid="review-duplicate-rows" { (f.duplicate_rows) } }
                }
            }
            table data-testid="campaign-review" {
                tr { th { @if r.file.is_some() { "Contacts of the file" } @else { "Contacts in the segment" } } td data-testid="review-matched" { (r.matched) } }
                tr { th { "Opted out (never sent to)" } td { (r.opted_out) } }
                tr { th { "No opt-in" } td { (r.no_opt_in) } }
                tr { th { "Missing a value (no fallback)" } td { (r.missing_value) } }
                tr { th { "Will receive it" } td data-testid="review-sendable" { (r.sendable) } }
                tr { th { "Daily limit (unique recipients, 24 h)" } td { @if let Some(l) = r.daily_limit { (l) } @else { "unlimited" } } }
                tr { th { "Used in the last 24 h (outside service windows)" } td { (r.used_last_24h) } }
                tr { th { "In their service window now (not counted)" } td data-testid="review-in-window" { (r.in_service_window) } }
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
        Err(StoreError::Conflict("audience_importing")) => {
            "the audience's file is still being imported; send it once the review shows every row"
                .into()
        }
        Err(StoreError::Conflict(_)) => {
            "the campaign's state does not allow this any more (it changed meanwhile)".into()
        }
        Err(e) => return Err(e.into()),
    };
    drop(tx);
    render_campaign(state, caller, ctx, headers, id, Some(error)).await
}
