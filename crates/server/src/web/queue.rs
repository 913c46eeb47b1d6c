//! Clinic queue pages: the list of queues, their configuration form, the printable join QR
//! code, the staff board (the desk's and the doctor's actions as forms) and the
//! waiting-room screen. They call the same functions as the API, so the rules, the audit
//! events and the patients' messages are the same; a doctor's pages for a queue that is not
//! theirs answer 404 because the store does. The board and the screen refresh themselves
//! (app.js): on a `queue.changed` event from `/api/v1/events`, and every 3 s while that
//! stream is not open.

use super::{PageCtx, PageError, see_other, when};
use crate::AppState;
use crate::api::queue::{
    CheckInBody, ManageBody, QueueBody, call_next_patient, check_in_walk_in, consult, join_qr,
    manage, pause_or_resume, save_queue,
};
use crate::auth::{Access, Authed, Tenant};
use crate::error::ApiError;
use crate::routes::RouteTableBuilder;
use axum::extract::{Path, Query, RawForm, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use frontdesk_domain::queue::{QueueText, QueueTexts, Span, TokenState, WeeklyHours};
use frontdesk_domain::{ChannelId, E164, Permission, QueueId, QueueTokenId, ScreenLinkId};
use frontdesk_store::{
    ChannelView, DayReport, Member, QueueTemplates, QueueView, TemplateRef, TenantCtx, TenantTx,
    TokenView,
};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::collections::BTreeMap;

/// The navigation entry the queue pages sit under.
const NAV_PATH: &str = "/queues";

/// Fields a queue form may carry: 11 texts in up to 20 languages, 11 templates, doctors.
const MAX_FORM_FIELDS: usize = 400;

pub(crate) fn routes(b: RouteTableBuilder) -> RouteTableBuilder {
    use Permission::*;
    b.page(
        Method::GET,
        "/queues",
        get(queues_page),
        Access::Perm(QueueRead),
    )
    .page(
        Method::GET,
        "/queues/reports",
        get(reports_page),
        Access::Perm(QueueRead),
    )
    .page(
        Method::GET,
        "/queues/new",
        get(new_queue_page),
        Access::Perm(QueueConfigure),
    )
    .page(
        Method::POST,
        "/queues",
        post(queue_create),
        Access::Perm(QueueConfigure),
    )
    .page(
        Method::GET,
        "/queues/{queue_id}/edit",
        get(edit_queue_page),
        Access::Perm(QueueConfigure),
    )
    .page(
        Method::POST,
        "/queues/{queue_id}",
        post(queue_update),
        Access::Perm(QueueConfigure),
    )
    .page(
        Method::GET,
        "/queues/{queue_id}/qr",
        get(qr_page),
        Access::Perm(QueueRead),
    )
    .page(
        Method::GET,
        "/queues/{queue_id}/board",
        get(board_page),
        Access::Perm(QueueRead),
    )
    .page(
        Method::GET,
        "/queues/{queue_id}/screen",
        get(screen_page),
        Access::Perm(QueueRead),
    )
    .page(
        Method::POST,
        "/queues/{queue_id}/check-in",
        post(check_in_form),
        Access::Perm(QueueManage),
    )
    .page(
        Method::POST,
        "/queues/{queue_id}/pause",
        post(pause_form),
        Access::Perm(QueueManage),
    )
    .page(
        Method::POST,
        "/queues/{queue_id}/call-next",
        post(call_next_form),
        Access::Perm(QueueCallNext),
    )
    .page(
        Method::POST,
        "/queues/{queue_id}/screen-links",
        post(screen_link_create),
        Access::Perm(QueueManage),
    )
    .page(
        Method::POST,
        "/queue-screen-links/{link_id}/revoke",
        post(screen_link_revoke),
        Access::Perm(QueueManage),
    )
    // The waiting-room TV: public to the guard, the unguessable link is the credential
    // (checked by its hash; revoked or unknown: 404).
    .page(
        Method::GET,
        "/screen/{token}",
        get(linked_screen_page),
        Access::Public,
    )
    .other(
        Method::GET,
        "/screen/{token}/data",
        get(linked_screen_data),
        Access::Public,
    )
    .page(
        Method::GET,
        "/queue-tokens/{token_id}",
        get(token_page),
        Access::Perm(QueueRead),
    )
    .page(
        Method::POST,
        "/queue-tokens/{token_id}/consult",
        post(consult_form),
        Access::Perm(QueueCallNext),
    )
    .page(
        Method::POST,
        "/queue-tokens/{token_id}/manage",
        post(manage_form),
        Access::Perm(QueueManage),
    )
}

fn queue_id(s: &str) -> Result<QueueId, PageError> {
    QueueId::parse(s).map_err(|_| PageError(ApiError::NotFound))
}

fn token_id(s: &str) -> Result<QueueTokenId, PageError> {
    QueueTokenId::parse(s).map_err(|_| PageError(ApiError::NotFound))
}

fn invalid(m: impl Into<String>) -> PageError {
    PageError(ApiError::unprocessable("invalid", m.into()))
}

#[derive(Deserialize, Default)]
struct Notice {
    ok: Option<String>,
    /// The token a notice is about (`A-014`); shown only when it looks like a token.
    token: Option<String>,
}

fn looks_like_token(s: &str) -> bool {
    s.len() <= 12
        && s.split_once('-').is_some_and(|(p, n)| {
            (1..=4).contains(&p.len())
                && p.bytes().all(|b| b.is_ascii_uppercase())
                && !n.is_empty()
                && n.bytes().all(|b| b.is_ascii_digit())
        })
}

fn notice(q: &Notice) -> Markup {
    let token = q.token.as_deref().filter(|t| looks_like_token(t));
    let text = match q.ok.as_deref() {
        Some("saved") => Some("Saved.".to_owned()),
        Some("checked_in") => Some(format!("Checked in: {}.", token.unwrap_or("a token"))),
        Some("already_in_queue") => Some(format!(
            "This number already holds {} in this queue.",
            token.unwrap_or("a token")
        )),
        Some("paused") => Some("The queue is paused: nobody can join.".to_owned()),
        Some("cap_reached") => Some("Today's cap is reached: nobody else can join.".to_owned()),
        Some("called") => Some(format!("Called {}.", token.unwrap_or("the next patient"))),
        Some("called_untold") => Some(format!(
            "Called {}, but WhatsApp could not tell them: their 24-hour window is closed and the queue has no come_in template. Call them by name.",
            token.unwrap_or("the next patient")
        )),
        Some("nobody") => Some("Nobody is waiting.".to_owned()),
        Some("done") => Some(format!("{}: done.", token.unwrap_or("Token"))),
        Some("queue_paused") => Some("Paused; waiting patients were told.".to_owned()),
        Some("queue_resumed") => Some("Resumed.".to_owned()),
        Some("link_revoked") => Some("The screen link is revoked.".to_owned()),
        _ => None,
    };
    html! { @if let Some(t) = text { p.notice role="status" data-testid="notice" { (t) } } }
}

fn see_board(queue: QueueId, ok: &str, token: Option<&str>) -> Response {
    let mut to = format!("/queues/{queue}/board?ok={ok}");
    if let Some(t) = token {
        to.push_str("&token=");
        to.extend(url::form_urlencoded::byte_serialize(t.as_bytes()));
    }
    see_other(&to, &[])
}

// -- the list --------------------------------------------------------------------------

async fn queues_page(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Tenant(ctx): Tenant,
    headers: HeaderMap,
    Query(q): Query<Notice>,
) -> Result<Response, PageError> {
    let mut tx = state.store().begin_read(&ctx).await?;
    let queues = tx.queues().await?;
    tx.commit().await?;
    let channels = state.store().list_channels(&ctx).await?;
    let page = PageCtx::new(&state, Some(caller), &headers, NAV_PATH).await;
    let configure = page.can(Permission::QueueConfigure);
    Ok(page.render("Queues", html! {
        (notice(&q))
        @if queues.is_empty() {
            p.muted data-testid="no-queues" { "No queue yet." }
        } @else {
            table data-testid="queues" {
                thead { tr { th { "Queue" } th { "Number" } th { "Keywords" } th { "Pages" } } }
                tbody {
                    @for qv in &queues {
                        tr data-queue-id=(qv.id) {
                            td {
                                a href={ "/queues/" (qv.id) "/board" } data-testid="queue-board-link" { (qv.name) }
                                @if qv.paused { " " span.badge { "paused" } }
                            }
                            td { (channel_name(&channels, qv)) }
                            td { (qv.keywords.join(", ")) }
                            td {
                                a href={ "/queues/" (qv.id) "/board" } { "Board" } " · "
                                a href={ "/queues/" (qv.id) "/screen" } { "Screen" } " · "
                                a href={ "/queues/" (qv.id) "/qr" } { "QR code" }
                                @if configure { " · " a href={ "/queues/" (qv.id) "/edit" } { "Settings" } }
                            }
                        }
                    }
                }
            }
        }
        p {
            a href="/queues/reports" data-testid="queue-reports-link" { "Reports" }
            @if configure { " · " a href="/queues/new" data-testid="new-queue" { "New queue" } }
        }
    }))
}

// -- reports -----------------------------------------------------------------------------

#[derive(Deserialize, Default)]
struct ReportQuery {
    from: Option<String>,
    to: Option<String>,
    queue_id: Option<String>,
}

/// Totals over a report's rows: averages weighted by how many patients each day's average
/// is over (called for the wait, served for the consultation).
#[derive(Debug, Default, PartialEq)]
struct ReportTotals {
    joined: i64,
    served: i64,
    no_show: i64,
    cancelled: i64,
    expired: i64,
    no_show_rate: f64,
    avg_wait_minutes: f64,
    avg_consult_minutes: f64,
}

fn report_totals(rows: &[DayReport]) -> ReportTotals {
    let mut t = ReportTotals::default();
    let (mut called, mut wait, mut consult) = (0i64, 0.0, 0.0);
    for r in rows {
        t.joined += r.joined;
        t.served += r.served;
        t.no_show += r.no_show;
        t.cancelled += r.cancelled;
        t.expired += r.expired;
        called += r.called;
        wait += r.avg_wait_minutes * r.called as f64;
        consult += r.avg_consult_minutes * r.served as f64;
    }
    let ratio = |a: f64, b: i64| if b == 0 { 0.0 } else { a / b as f64 };
    t.no_show_rate = ratio(t.no_show as f64, t.served + t.no_show);
    t.avg_wait_minutes = (ratio(wait, called) * 10.0).round() / 10.0;
    t.avg_consult_minutes = (ratio(consult, t.served) * 10.0).round() / 10.0;
    t
}

/// Patients served on each day of the range (days without any: 0), oldest first.
fn served_per_day(rows: &[DayReport], from: time::Date, to: time::Date) -> Vec<(String, i64)> {
    let mut by_day: BTreeMap<&str, i64> = BTreeMap::new();
    for r in rows {
        *by_day.entry(r.day.as_str()).or_default() += r.served;
    }
    let mut out = Vec::new();
    let mut d = from;
    while d <= to {
        let key = d.to_string();
        let n = by_day.get(key.as_str()).copied().unwrap_or(0);
        out.push((key, n));
        match d.next_day() {
            Some(n) => d = n,
            None => break,
        }
    }
    out
}

/// A bar chart of patients served per day as inline SVG (the CSP allows no script and no
/// inline style: sizes are SVG attributes, colours come from app.css).
fn served_chart(days: &[(String, i64)]) -> Markup {
    let max = days.iter().map(|d| d.1).max().unwrap_or(0).max(1);
    const BAR: usize = 12;
    const HEIGHT: i64 = 100;
    let width = (days.len() * BAR).max(BAR);
    html! {
        figure.chart data-testid="served-chart" {
            svg xmlns="http://www.w3.org/2000/svg" viewBox={ "0 0 " (width) " " (HEIGHT + 14) } preserveAspectRatio="none" role="img" aria-label="Patients served per day" {
                @for (i, (day, n)) in days.iter().enumerate() {
                    @let h = (n * HEIGHT) / max;
                    rect.bar x=(i * BAR + 1) y=(HEIGHT - h) width=(BAR - 2) height=(h) data-day=(day) data-served=(n) {
                        title { (day) ": " (n) " served" }
                    }
                }
                line.axis x1="0" y1=(HEIGHT) x2=(width) y2=(HEIGHT) {}
            }
            figcaption.muted {
                "Patients served per day, " (days.first().map_or("", |d| d.0.as_str())) " to " (days.last().map_or("", |d| d.0.as_str()))
                " (highest: " (max) ")"
            }
        }
    }
}

fn percent(rate: f64) -> String {
    format!("{:.1} %", rate * 100.0)
}

async fn reports_page(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Tenant(ctx): Tenant,
    headers: HeaderMap,
    Query(q): Query<ReportQuery>,
) -> Result<Response, PageError> {
    let now = state.now();
    let mut tx = state.store().begin_read(&ctx).await?;
    let (today, _) = tx.local_now(now).await?;
    let queues = tx.queues().await?;
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    let from_text = q.from.as_deref().map(str::trim).unwrap_or("").to_owned();
    let to_text = q.to.as_deref().map(str::trim).unwrap_or("").to_owned();
    let queue_text = q
        .queue_id
        .as_deref()
        .map(str::trim)
        .unwrap_or("")
        .to_owned();
    let mut errors: BTreeMap<&str, String> = BTreeMap::new();
    let to = if to_text.is_empty() {
        Some(today)
    } else {
        time::Date::parse(&to_text, &fmt).ok().or_else(|| {
            errors.insert("to", "a date, YYYY-MM-DD".into());
            None
        })
    };
    let from = if from_text.is_empty() {
        to.map(|t| t - time::Duration::days(29))
    } else {
        time::Date::parse(&from_text, &fmt).ok().or_else(|| {
            errors.insert("from", "a date, YYYY-MM-DD".into());
            None
        })
    };
    if let (Some(f), Some(t)) = (from, to)
        && (t < f || (t - f).whole_days() > 366)
    {
        errors.insert(
            "to",
            "on or after the first day, at most 366 days later".into(),
        );
    }
    let queue = if queue_text.is_empty() {
        None
    } else {
        match QueueId::parse(&queue_text)
            .ok()
            .filter(|id| queues.iter().any(|q| q.id == *id))
        {
            Some(id) => Some(id),
            None => {
                errors.insert("queue_id", "no such queue here".into());
                None
            }
        }
    };
    let report = match (from, to) {
        (Some(f), Some(t)) if errors.is_empty() => {
            Some((f, t, tx.queue_report(queue, f, t).await?))
        }
        _ => None,
    };
    tx.commit().await?;
    let page = PageCtx::new(&state, Some(caller), &headers, NAV_PATH).await;
    let export = page.can(Permission::QueueExport);
    let shown_from = if from_text.is_empty() {
        from.map(|d| d.to_string()).unwrap_or_default()
    } else {
        from_text.clone()
    };
    let shown_to = if to_text.is_empty() {
        to.map(|d| d.to_string()).unwrap_or_default()
    } else {
        to_text.clone()
    };
    let err = |k: &str| errors.get(k).cloned();
    // The same filter as the page, for the API's CSV export (a cookie session may use it).
    let csv_url = report.as_ref().map_or_else(String::new, |(f, t, _)| {
        let mut u = format!("/api/v1/queue-reports/export?from={f}&to={t}");
        if let Some(q) = queue {
            u.push_str(&format!("&queue_id={q}"));
        }
        u
    });
    let mut r = page.render("Queue reports", html! {
        form.filters method="get" action="/queues/reports" data-testid="report-filter" {
            label { "From" input type="date" name="from" value=(shown_from) aria-invalid=[err("from").map(|_| "true")];
                @if let Some(e) = err("from") { span.field-error data-testid="error-from" { (e) } } }
            label { "To" input type="date" name="to" value=(shown_to) aria-invalid=[err("to").map(|_| "true")];
                @if let Some(e) = err("to") { span.field-error data-testid="error-to" { (e) } } }
            label { "Queue"
                select name="queue_id" {
                    option value="" { "All queues" }
                    @for qv in &queues { option value=(qv.id) selected[queue == Some(qv.id)] { (qv.name) } }
                }
                @if let Some(e) = err("queue_id") { span.field-error data-testid="error-queue_id" { (e) } }
            }
            button type="submit" data-testid="report-submit" { "Show" }
        }
        @if let Some((from, to, rows)) = &report {
            @let t = report_totals(rows);
            @let days = served_per_day(rows, *from, *to);
            @let open_days = days.iter().filter(|d| d.1 > 0).count() as i64;
            p.stats data-testid="report-summary" {
                span data-testid="total-served" { (t.served) " served" } " · "
                span data-testid="served-per-day" { (if open_days == 0 { 0.0 } else { ((t.served as f64 / open_days as f64) * 10.0).round() / 10.0 }) " per day served on" } " · "
                span data-testid="avg-wait" { "average wait " (t.avg_wait_minutes) " min" } " · "
                span data-testid="avg-consult" { "average consultation " (t.avg_consult_minutes) " min" } " · "
                span data-testid="no-show-rate" { "no-shows " (percent(t.no_show_rate)) }
            }
            (served_chart(&days))
            @if export {
                p { a href=(csv_url) download="queue-report.csv" data-testid="report-csv" { "Download as CSV" } }
            }
            @if rows.is_empty() {
                p.muted data-testid="report-empty" { "No patients in this range." }
            } @else {
                table data-testid="report-rows" {
                    thead { tr { th { "Day" } th { "Queue" } th { "Joined" } th { "Served" } th { "No-shows" } th { "Cancelled" } th { "Expired" } th { "No-show rate" } th { "Avg wait (min)" } th { "Avg consultation (min)" } } }
                    tbody {
                        @for r in rows {
                            tr data-day=(r.day) {
                                td { (r.day) } td { (r.queue_name) } td { (r.joined) } td data-testid="row-served" { (r.served) }
                                td { (r.no_show) } td { (r.cancelled) } td { (r.expired) } td { (percent(r.no_show_rate)) }
                                td { (r.avg_wait_minutes) } td { (r.avg_consult_minutes) }
                            }
                        }
                    }
                }
            }
        }
    });
    if !errors.is_empty() {
        *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
    }
    Ok(r)
}

fn channel_name(channels: &[ChannelView], q: &QueueView) -> String {
    channels
        .iter()
        .find(|c| c.id == q.channel_id)
        .map_or_else(String::new, |c| {
            format!("{} ({})", c.name, c.display_number)
        })
}

// -- the configuration form --------------------------------------------------------------

const WEEKDAYS: [(&str, &str); 7] = [
    ("mon", "Monday"),
    ("tue", "Tuesday"),
    ("wed", "Wednesday"),
    ("thu", "Thursday"),
    ("fri", "Friday"),
    ("sat", "Saturday"),
    ("sun", "Sunday"),
];

fn day_spans<'a>(h: &'a WeeklyHours, key: &str) -> &'a [Span] {
    match key {
        "mon" => &h.mon,
        "tue" => &h.tue,
        "wed" => &h.wed,
        "thu" => &h.thu,
        "fri" => &h.fri,
        "sat" => &h.sat,
        _ => &h.sun,
    }
}

fn day_spans_mut<'a>(h: &'a mut WeeklyHours, key: &str) -> Option<&'a mut Vec<Span>> {
    Some(match key {
        "mon" => &mut h.mon,
        "tue" => &mut h.tue,
        "wed" => &mut h.wed,
        "thu" => &mut h.thu,
        "fri" => &mut h.fri,
        "sat" => &mut h.sat,
        "sun" => &mut h.sun,
        _ => return None,
    })
}

/// `09:00-13:00, 14:00-18:00`.
fn spans_text(spans: &[Span]) -> String {
    spans
        .iter()
        .map(|s| format!("{}-{}", s.open, s.close))
        .collect::<Vec<_>>()
        .join(", ")
}

fn parse_spans(day: &str, text: &str) -> Result<Vec<Span>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            let (open, close) = s.split_once('-').ok_or_else(|| {
                format!("{day}: write opening hours as 09:00-13:00, separated by commas")
            })?;
            Ok(Span {
                open: open.trim().to_owned(),
                close: close.trim().to_owned(),
            })
        })
        .collect()
}

async fn form_inputs(
    state: &AppState,
    ctx: &TenantCtx,
) -> Result<(Vec<ChannelView>, Vec<Member>), PageError> {
    Ok((
        state.store().list_channels(ctx).await?,
        state.store().list_members(ctx).await?,
    ))
}

/// Errors of a form, by the name of the field they are about (`form`: the whole form).
type FieldErrors = BTreeMap<String, String>;

/// The error beside a field, if it has one.
fn field_error(errors: &FieldErrors, field: &str) -> Markup {
    html! {
        @if let Some(e) = errors.get(field) {
            span.field-error role="alert" data-testid={ "error-" (field) } { (e) }
        }
    }
}

fn invalid_attr(errors: &FieldErrors, field: &str) -> Option<&'static str> {
    errors.contains_key(field).then_some("true")
}

/// The queue form's fields as text, exactly as shown: from a stored queue, or from what
/// the person posted (so a refused form comes back with their input).
#[derive(Debug, Default, Clone, PartialEq)]
struct QueueFormValues {
    name: String,
    channel_id: String,
    keywords: String,
    token_prefix: String,
    daily_cap: String,
    position_step: String,
    /// Per weekday key (`mon` …).
    hours: BTreeMap<&'static str, String>,
    holidays: String,
    doctors: Vec<String>,
    /// Per language, per text (blank: the default).
    texts: BTreeMap<String, BTreeMap<QueueText, String>>,
    new_language: String,
    new_texts: BTreeMap<QueueText, String>,
    /// Per text: template name and language.
    templates: BTreeMap<QueueText, (String, String)>,
}

impl QueueFormValues {
    fn of_queue(q: Option<&QueueView>) -> Self {
        let Some(q) = q else {
            return QueueFormValues {
                token_prefix: "A".into(),
                daily_cap: "100".into(),
                position_step: "1".into(),
                ..Default::default()
            };
        };
        QueueFormValues {
            name: q.name.clone(),
            channel_id: q.channel_id.to_string(),
            keywords: q.keywords.join(", "),
            token_prefix: q.token_prefix.clone(),
            daily_cap: q.daily_cap.to_string(),
            position_step: q.position_step.to_string(),
            hours: WEEKDAYS
                .iter()
                .map(|(k, _)| {
                    (
                        *k,
                        q.hours
                            .as_ref()
                            .map(|h| spans_text(day_spans(h, k)))
                            .unwrap_or_default(),
                    )
                })
                .collect(),
            holidays: q
                .holidays
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            doctors: q.doctors.iter().map(|d| d.to_string()).collect(),
            texts: q.texts.clone(),
            new_language: String::new(),
            new_texts: BTreeMap::new(),
            templates: q
                .templates
                .iter()
                .map(|(k, t)| (*k, (t.name.clone(), t.language.clone())))
                .collect(),
        }
    }

    fn of_form(pairs: &[(String, String)]) -> Self {
        let one = |k: &str| {
            pairs
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.trim().to_owned())
                .unwrap_or_default()
        };
        let mut v = QueueFormValues {
            name: one("name"),
            channel_id: one("channel_id"),
            keywords: one("keywords"),
            token_prefix: one("token_prefix"),
            daily_cap: one("daily_cap"),
            position_step: one("position_step"),
            hours: WEEKDAYS
                .iter()
                .map(|(k, _)| (*k, one(&format!("hours_{k}"))))
                .collect(),
            holidays: one("holidays"),
            doctors: pairs
                .iter()
                .filter(|(n, _)| n == "doctor")
                .map(|(_, v)| v.clone())
                .collect(),
            new_language: one("new_language"),
            ..Default::default()
        };
        for (name, value) in pairs {
            let value = value.trim();
            if let Some(rest) = name.strip_prefix("text:") {
                let Some((lang, key)) = rest.split_once(':') else {
                    continue;
                };
                let Some(key) = QueueText::parse(key) else {
                    continue;
                };
                if lang == "_new" {
                    v.new_texts.insert(key, value.to_owned());
                } else if lang.len() <= 10 {
                    v.texts
                        .entry(lang.to_owned())
                        .or_default()
                        .insert(key, value.to_owned());
                }
            } else if let Some(rest) = name.strip_prefix("tpl:") {
                let Some((key, part)) = rest.split_once(':') else {
                    continue;
                };
                let Some(key) = QueueText::parse(key) else {
                    continue;
                };
                let e = v.templates.entry(key).or_default();
                match part {
                    "name" => e.0 = value.to_owned(),
                    "language" => e.1 = value.to_owned(),
                    _ => {}
                }
            }
        }
        v
    }

    /// The API's body for these fields, or the first field the form itself can tell is
    /// wrong (the store checks the rest with the same rules as for the API).
    fn body(&self) -> Result<QueueBody, (&'static str, String)> {
        let number = |field: &'static str, v: &str, what: &str| {
            v.parse::<i32>()
                .map_err(|_| (field, format!("{what} is a whole number")))
        };
        if ChannelId::parse(&self.channel_id).is_err() {
            return Err(("channel_id", "choose a WhatsApp number".into()));
        }
        let mut hours = WeeklyHours::default();
        let mut any_hours = false;
        for (key, label) in WEEKDAYS {
            let field = hours_field(key);
            let spans = parse_spans(label, self.hours.get(key).map_or("", String::as_str))
                .map_err(|m| (field, m))?;
            let mut one_day = WeeklyHours::default();
            if let Some(d) = day_spans_mut(&mut one_day, key) {
                *d = spans.clone();
            }
            one_day.validate().map_err(|m| (field, m))?;
            any_hours |= !spans.is_empty();
            if let Some(d) = day_spans_mut(&mut hours, key) {
                *d = spans;
            }
        }
        let holidays: Vec<String> = self
            .holidays
            .split([',', ' ', '\n'])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        let fmt = time::macros::format_description!("[year]-[month]-[day]");
        if let Some(bad) = holidays
            .iter()
            .find(|d| time::Date::parse(d, &fmt).is_err())
        {
            return Err(("holidays", format!("{bad:?} is not a YYYY-MM-DD date")));
        }
        let mut texts = QueueTexts::new();
        let new_texts = (!self.new_language.is_empty())
            .then_some((self.new_language.as_str(), &self.new_texts));
        for (lang, map) in self
            .texts
            .iter()
            .map(|(l, m)| (l.as_str(), m))
            .chain(new_texts)
        {
            for (key, value) in map {
                // A blank text, or the English default as typed, leaves the default in force.
                if value.is_empty() || (lang == "en" && value == key.default_text()) {
                    continue;
                }
                texts
                    .entry(lang.to_owned())
                    .or_default()
                    .insert(*key, value.clone());
            }
        }
        let mut templates = QueueTemplates::new();
        for (key, (name, language)) in &self.templates {
            match (name.is_empty(), language.is_empty()) {
                (true, true) => {}
                (false, false) => {
                    templates.insert(
                        *key,
                        TemplateRef {
                            name: name.clone(),
                            language: language.clone(),
                        },
                    );
                }
                _ => {
                    return Err((
                        "templates",
                        format!(
                            "the {} template needs both a name and a language",
                            key.as_str()
                        ),
                    ));
                }
            }
        }
        Ok(QueueBody {
            channel_id: self.channel_id.clone(),
            name: self.name.clone(),
            keywords: self
                .keywords
                .split([',', '\n'])
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            token_prefix: self.token_prefix.clone(),
            daily_cap: number("daily_cap", &self.daily_cap, "the daily cap")?,
            position_step: number("position_step", &self.position_step, "the position step")?,
            hours: any_hours.then_some(hours),
            holidays,
            texts,
            templates,
            doctors: self.doctors.clone(),
        })
    }
}

fn hours_field(key: &str) -> &'static str {
    match key {
        "mon" => "hours_mon",
        "tue" => "hours_tue",
        "wed" => "hours_wed",
        "thu" => "hours_thu",
        "fri" => "hours_fri",
        "sat" => "hours_sat",
        _ => "hours_sun",
    }
}

async fn new_queue_page(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Tenant(ctx): Tenant,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let (channels, members) = form_inputs(&state, &ctx).await?;
    let page = PageCtx::new(&state, Some(caller), &headers, NAV_PATH).await;
    let body = if channels.is_empty() {
        html! {
            p.muted data-testid="no-channels" {
                "A queue belongs to a WhatsApp number. "
                a href="/settings/channels" { "Connect a number" } " first."
            }
        }
    } else {
        queue_form(
            &page,
            None,
            &QueueFormValues::of_queue(None),
            &FieldErrors::new(),
            &channels,
            &members,
        )
    };
    Ok(page.render("New queue", body))
}

async fn edit_queue_page(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Tenant(ctx): Tenant,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<Notice>,
) -> Result<Response, PageError> {
    let id = queue_id(&id)?;
    let mut tx = state.store().begin_read(&ctx).await?;
    let queue = tx.queue(id).await?;
    tx.commit().await?;
    let (channels, members) = form_inputs(&state, &ctx).await?;
    let page = PageCtx::new(&state, Some(caller), &headers, NAV_PATH).await;
    let title = format!("{} · settings", queue.name);
    Ok(page.render(
        &title,
        html! {
            (notice(&q))
            (edit_links(id))
            (queue_form(&page, Some(id), &QueueFormValues::of_queue(Some(&queue)), &FieldErrors::new(), &channels, &members))
        },
    ))
}

fn edit_links(id: QueueId) -> Markup {
    html! {
        p {
            a href={ "/queues/" (id) "/board" } { "Board" } " · "
            a href={ "/queues/" (id) "/qr" } { "QR code" }
        }
    }
}

fn queue_form(
    page: &PageCtx,
    id: Option<QueueId>,
    v: &QueueFormValues,
    errors: &FieldErrors,
    channels: &[ChannelView],
    members: &[Member],
) -> Markup {
    let action = id.map_or_else(|| "/queues".to_owned(), |id| format!("/queues/{id}"));
    // English is always offered; other languages the queue has, then a blank one to add.
    let mut langs: Vec<&str> = vec!["en"];
    langs.extend(v.texts.keys().map(String::as_str).filter(|l| *l != "en"));
    let err = |f: &str| field_error(errors, f);
    let bad = |f: &str| invalid_attr(errors, f);
    html! {
        form method="post" action=(action) data-testid="queue-form" novalidate[!errors.is_empty()] {
            (page.csrf_field())
            @if let Some(e) = errors.get("form") { p.error role="alert" data-testid="error-form" { (e) } }
            label { "Name" input type="text" name="name" required maxlength="80" value=(v.name) placeholder="Dr Mehta" aria-invalid=[bad("name")]; (err("name")) }
            label { "WhatsApp number"
                select name="channel_id" required aria-invalid=[bad("channel_id")] {
                    @for c in channels {
                        option value=(c.id) selected[v.channel_id == c.id.to_string()] { (c.name) " (" (c.display_number) ")" }
                    }
                }
                (err("channel_id"))
            }
            label { "Join keywords (comma-separated; case and spacing do not matter)"
                input type="text" name="keywords" required maxlength="500" value=(v.keywords) placeholder="DR MEHTA, JOIN" aria-invalid=[bad("keywords")];
                (err("keywords"))
            }
            label { "Token prefix (1–4 capital letters: A-001)" input type="text" name="token_prefix" required maxlength="4" pattern="[A-Z]{1,4}" value=(v.token_prefix) aria-invalid=[bad("token_prefix")]; (err("token_prefix")) }
            label { "Daily cap" input type="number" name="daily_cap" required min="1" max="9999" value=(v.daily_cap) aria-invalid=[bad("daily_cap")]; (err("daily_cap")) }
            label { "Tell patients their position every … places (0: never)" input type="number" name="position_step" required min="0" max="100" value=(v.position_step) aria-invalid=[bad("position_step")]; (err("position_step")) }
            fieldset {
                legend { "Opening hours (organisation's time zone)" }
                p.muted { "Spans like 09:00-13:00, 14:00-18:00. A blank day is closed; all blank: always open." }
                (err("hours"))
                @for (key, label) in WEEKDAYS {
                    @let field = hours_field(key);
                    label { (label) input type="text" name=(field) maxlength="200" value=(v.hours.get(key).map_or("", String::as_str)) aria-invalid=[bad(field)]; (err(field)) }
                }
            }
            label { "Holidays (YYYY-MM-DD, comma-separated)"
                input type="text" name="holidays" maxlength="5000" value=(v.holidays) aria-invalid=[bad("holidays")];
                (err("holidays"))
            }
            fieldset data-testid="doctors" {
                legend { "Doctors (they see and call this queue only)" }
                (err("doctors"))
                @for m in members {
                    label.check {
                        input type="checkbox" name="doctor" value=(m.user_id) checked[v.doctors.contains(&m.user_id.to_string())];
                        (m.name) " " span.muted { "(" (m.role_name) ")" }
                    }
                }
            }
            details open[errors.contains_key("texts")] {
                summary { "Texts to patients" }
                (err("texts"))
                p.muted { "Blank: the default text. Placeholders: {queue} {token} {position} {wait} {opens} {message}." }
                @for lang in &langs {
                    fieldset {
                        legend { "Language: " code { (lang) } }
                        @for t in QueueText::ALL {
                            label { (t.as_str())
                                textarea name={ "text:" (lang) ":" (t.as_str()) } maxlength="1000" rows="2" placeholder=(t.default_text()) {
                                    (v.texts.get(*lang).and_then(|m| m.get(&t)).map(String::as_str).unwrap_or(""))
                                }
                            }
                        }
                    }
                }
                fieldset {
                    legend { "Add a language" }
                    label { "Language code" input type="text" name="new_language" maxlength="10" placeholder="hi" value=(v.new_language); }
                    @for t in QueueText::ALL {
                        label { (t.as_str()) textarea name={ "text:_new:" (t.as_str()) } maxlength="1000" rows="2" { (v.new_texts.get(&t).map(String::as_str).unwrap_or("")) } }
                    }
                }
            }
            details open[errors.contains_key("templates")] {
                summary { "Templates outside the 24-hour window" }
                (err("templates"))
                p.muted { "The approved template (name and language) to use for each text. Without a come_in template, a walk-in checked in by phone whose 24-hour window is closed is not told when called (the board says so)." }
                @for t in QueueText::ALL {
                    @let tpl = v.templates.get(&t);
                    label { (t.as_str()) " — template name" input type="text" name={ "tpl:" (t.as_str()) ":name" } maxlength="512" value=(tpl.map_or("", |x| x.0.as_str())); }
                    label { (t.as_str()) " — template language" input type="text" name={ "tpl:" (t.as_str()) ":language" } maxlength="15" value=(tpl.map_or("", |x| x.1.as_str())); }
                }
            }
            button type="submit" data-testid="queue-save" { @if id.is_some() { "Save" } @else { "Create queue" } }
        }
    }
}

/// The field a refusal of the API's queue functions is about (`form` when it is none in
/// particular); `None` for failures that are not the input's fault (they stay pages).
fn queue_error_field(e: &ApiError) -> Option<(&'static str, String)> {
    match e {
        ApiError::Conflict { code, message } => Some((
            match *code {
                "keyword_taken" => "keywords",
                "queue_name_taken" => "name",
                _ => "form",
            },
            message.clone(),
        )),
        ApiError::Unprocessable { message, .. } => Some((
            if message.starts_with("doctor") {
                "doctors"
            } else {
                "form"
            },
            message.clone(),
        )),
        _ => None,
    }
}

/// Saves the posted queue form; a refused one is shown again with the person's input and
/// the error beside its field (status 422).
async fn save_queue_form(
    state: &AppState,
    caller: crate::auth::Caller,
    ctx: &TenantCtx,
    headers: &HeaderMap,
    id: Option<QueueId>,
    raw: &[u8],
) -> Result<Response, PageError> {
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(raw).into_owned().collect();
    if pairs.len() > MAX_FORM_FIELDS {
        return Err(invalid("the form has too many fields"));
    }
    let values = QueueFormValues::of_form(&pairs);
    let problem: (&'static str, String) = match values.body() {
        Err(p) => p,
        Ok(body) => match body.settings() {
            Err(e) => queue_error_field(&e).ok_or(PageError(e))?,
            Ok(settings) => match frontdesk_store::check_queue_settings(&settings) {
                Err(p) => (p.field, p.message),
                Ok(_) => match save_queue(state, ctx, id, settings).await {
                    Ok(q) => return Ok(see_other(&format!("/queues/{}/edit?ok=saved", q.id), &[])),
                    Err(e) => queue_error_field(&e).ok_or(PageError(e))?,
                },
            },
        },
    };
    let (field, message) = problem;
    // The store names the hours as a whole; the form names each day.
    let field = if field == "hours" { "form" } else { field };
    let errors: FieldErrors = [(field.to_owned(), message)].into_iter().collect();
    let (channels, members) = form_inputs(state, ctx).await?;
    let page = PageCtx::new(state, Some(caller), headers, NAV_PATH).await;
    let title = if id.is_some() {
        "Queue settings"
    } else {
        "New queue"
    };
    let mut r = page.render(
        title,
        html! {
            @if let Some(id) = id { (edit_links(id)) }
            (queue_form(&page, id, &values, &errors, &channels, &members))
        },
    );
    *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
    Ok(r)
}

async fn queue_create(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Tenant(ctx): Tenant,
    headers: HeaderMap,
    RawForm(raw): RawForm,
) -> Result<Response, PageError> {
    save_queue_form(&state, caller, &ctx, &headers, None, &raw).await
}

async fn queue_update(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Tenant(ctx): Tenant,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawForm(raw): RawForm,
) -> Result<Response, PageError> {
    let id = queue_id(&id)?;
    save_queue_form(&state, caller, &ctx, &headers, Some(id), &raw).await
}

// -- the printable QR page ---------------------------------------------------------------

async fn qr_page(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Tenant(ctx): Tenant,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let id = queue_id(&id)?;
    let mut tx = state.store().begin_read(&ctx).await?;
    let queue = tx.queue(id).await?;
    tx.commit().await?;
    let qr = join_qr(&state, &ctx, id).await?;
    let page = PageCtx::new(&state, Some(caller), &headers, NAV_PATH).await;
    Ok(page.render(&queue.name, html! {
        p.no-print {
            a href={ "/queues/" (id) "/board" } { "Board" } " · "
            "Print this page and put it up in the waiting room (the navigation is not printed)."
        }
        section.qr-print data-testid="qr-print" {
            h2 { "Join the queue for " (queue.name) " on WhatsApp" }
            p { "Scan the code with your phone's camera, or send " strong data-testid="qr-keyword" { (qr.keyword) } " to our WhatsApp number." }
            // The SVG is generated by our QR encoder from the link (no script, no markup of
            // anyone else's), so it is embedded as it is.
            div.qr data-testid="qr-svg" { (PreEscaped(&qr.svg)) }
            p { a href=(qr.link) data-testid="qr-link" { (qr.link) } }
            p.muted { "You get a token number and your place in the line; we tell you when it is your turn." }
        }
    }))
}

// -- the staff board ---------------------------------------------------------------------

/// Who a token is, as the board shows it: a name, and a phone number masked for those
/// who may not see numbers.
struct Who {
    name: String,
    phone: Option<String>,
}

async fn who_of(tx: &mut TenantTx, t: &TokenView, full_numbers: bool) -> Result<Who, PageError> {
    let contact = match t.contact_id {
        Some(c) => Some(tx.contact(c).await?),
        None => None,
    };
    let name = t
        .walk_in_name
        .clone()
        .or_else(|| contact.as_ref().and_then(|c| c.profile_name.clone()))
        .or_else(|| contact.as_ref().and_then(|c| c.username.clone()))
        .unwrap_or_else(|| "—".to_owned());
    let phone = contact
        .and_then(|c| c.phone)
        .and_then(|p| E164::parse(&p).ok())
        .map(|p| {
            if full_numbers {
                p.as_str().to_owned()
            } else {
                p.masked()
            }
        });
    Ok(Who { name, phone })
}

fn minutes_since(now: time::OffsetDateTime, t: time::OffsetDateTime) -> i64 {
    ((now - t).whole_seconds() / 60).max(0)
}

fn state_label(s: TokenState) -> &'static str {
    match s {
        TokenState::Waiting => "waiting",
        TokenState::Called => "called",
        TokenState::Serving => "with the doctor",
        TokenState::Complete => "complete",
        TokenState::NoShow => "no-show",
        TokenState::Skipped => "skipped",
        TokenState::Cancelled => "cancelled",
        TokenState::Expired => "expired (day ended)",
    }
}

/// A one-button form posting `action` (and extra fields) to a token's route.
fn token_button(
    page: &PageCtx,
    t: &TokenView,
    route: &str,
    action: &str,
    label: &str,
    extra: &[(&str, String)],
) -> Markup {
    html! {
        form.inline method="post" action={ "/queue-tokens/" (t.id) "/" (route) } {
            (page.csrf_field())
            input type="hidden" name="action" value=(action);
            @for (k, v) in extra { input type="hidden" name=(k) value=(v); }
            button.small type="submit" data-testid={ "token-" (action) } { (label) }
        }
    }
}

/// A board form the desk or doctor got wrong: which form (and for a token's form, which
/// token), the error by field, and what they typed, to show the board again with it.
#[derive(Debug, Default)]
struct BoardFormError {
    form: &'static str,
    token: Option<QueueTokenId>,
    errors: FieldErrors,
    values: BTreeMap<&'static str, String>,
}

impl BoardFormError {
    fn new(form: &'static str, field: &str, message: impl Into<String>) -> Self {
        BoardFormError {
            form,
            errors: [(field.to_owned(), message.into())].into_iter().collect(),
            ..Default::default()
        }
    }

    fn keep(mut self, field: &'static str, value: &str) -> Self {
        self.values.insert(field, value.to_owned());
        self
    }

    fn for_token(mut self, token: QueueTokenId) -> Self {
        self.token = Some(token);
        self
    }
}

/// The errors and kept input of `form` (for `token`), when that is the form refused.
fn form_state(
    e: Option<&BoardFormError>,
    form: &str,
    token: Option<QueueTokenId>,
) -> (FieldErrors, BTreeMap<&'static str, String>) {
    match e {
        Some(e) if e.form == form && e.token == token => (e.errors.clone(), e.values.clone()),
        _ => Default::default(),
    }
}

async fn board_page(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Tenant(ctx): Tenant,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<Notice>,
) -> Result<Response, PageError> {
    let id = queue_id(&id)?;
    render_board(&state, caller, &ctx, &headers, id, &q, None).await
}

/// The board again with a refused form's error beside its field and the input kept
/// (status 422).
async fn board_with_error(
    state: &AppState,
    caller: crate::auth::Caller,
    ctx: &TenantCtx,
    headers: &HeaderMap,
    id: QueueId,
    e: BoardFormError,
) -> Result<Response, PageError> {
    let mut r = render_board(
        state,
        caller,
        ctx,
        headers,
        id,
        &Notice::default(),
        Some(&e),
    )
    .await?;
    *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
    Ok(r)
}

async fn render_board(
    state: &AppState,
    caller: crate::auth::Caller,
    ctx: &TenantCtx,
    headers: &HeaderMap,
    id: QueueId,
    q: &Notice,
    form_error: Option<&BoardFormError>,
) -> Result<Response, PageError> {
    let now = state.now();
    let full_numbers = ctx.can(Permission::ContactsViewPhone);
    let me = ctx.user_id();
    let mut tx = state.store().begin_read(ctx).await?;
    let board = tx.board(id, now).await?;
    let mut people = BTreeMap::new();
    for t in board
        .current
        .iter()
        .chain(&board.waiting)
        .chain(&board.done)
    {
        people.insert(t.id, who_of(&mut tx, t, full_numbers).await?);
    }
    let links = if ctx.can(Permission::QueueManage) {
        tx.screen_links(id).await?
    } else {
        Vec::new()
    };
    let others: Vec<QueueView> = if ctx.can(Permission::QueueManage) {
        tx.queues()
            .await?
            .into_iter()
            .filter(|o| o.id != id)
            .collect()
    } else {
        Vec::new()
    };
    tx.commit().await?;
    let page = PageCtx::new(state, Some(caller), headers, NAV_PATH).await;
    let (desk, doctor) = (
        page.can(Permission::QueueManage),
        page.can(Permission::QueueCallNext),
    );
    let name = |t: &TokenView| people.get(&t.id).map_or("—", |w| w.name.as_str());
    let phone = |t: &TokenView| people.get(&t.id).and_then(|w| w.phone.clone());
    let mine: Vec<&TokenView> = board
        .current
        .iter()
        .filter(|t| me.is_some() && t.called_by == me)
        .collect();
    let queue = &board.queue;
    let last = board.waiting.len() as i64;
    let title = format!("{} · board", queue.name);
    Ok(page.render(&title, html! {
        (notice(q))
        p {
            a href={ "/queues/" (id) "/screen" } data-testid="screen-link" { "Waiting-room screen" } " · "
            a href={ "/queues/" (id) "/qr" } { "QR code" }
            @if page.can(Permission::QueueConfigure) { " · " a href={ "/queues/" (id) "/edit" } { "Settings" } }
            " · " span.muted { "Keywords: " (queue.keywords.join(", ")) }
        }
        section #queue-live data-live-queue=(id) data-live-kind="board" data-testid="board" {
            @if queue.paused {
                p.error data-testid="paused" { "Paused: " (queue.pause_message) }
            }
            p.stats {
                span data-testid="waiting-count" { (board.waiting.len()) " waiting" } " · "
                span data-testid="served-today" { (board.served_today) " served today" } " · "
                "about " (board.avg_consult_secs / 60) " min per patient"
            }
            @if doctor {
                form.inline method="post" action={ "/queues/" (id) "/call-next" } {
                    (page.csrf_field())
                    button type="submit" data-testid="call-next" disabled[board.waiting.is_empty()] { "Call next" }
                }
            }
            @if doctor && me.is_some() {
                section.my-patient data-testid="my-patient" {
                    h2 { "My current patient" }
                    @if mine.is_empty() {
                        p.muted { "Nobody: call the next patient." }
                    }
                    @for t in mine.iter().copied() {
                        p.big-token data-testid="my-token" { (t.label) }
                        p { strong data-testid="my-name" { (name(t)) } " · " (state_label(t.state)) }
                    }
                }
            }
            h2 { "Called and with the doctor" }
            @if board.current.is_empty() {
                p.muted data-testid="no-current" { "Nobody." }
            } @else {
                table data-testid="current" {
                    thead { tr { th { "Token" } th { "Name" } th { "State" } th { "Called" } th { "" } } }
                    tbody {
                        @for t in &board.current {
                            tr data-token-id=(t.id) data-token=(t.label) {
                                td { a href={ "/queue-tokens/" (t.id) } title="History" { strong { (t.label) } } }
                                td { (name(t)) @if let Some(p) = phone(t) { br; span.muted data-testid="phone" { (p) } } }
                                td { (state_label(t.state)) @if t.recalls > 0 { " (recalled " (t.recalls) "×)" } }
                                td { @if let Some(c) = t.called_at { (minutes_since(now, c)) " min ago" } }
                                td {
                                    @if doctor {
                                        (token_button(&page, t, "consult", "recall", "Recall", &[]))
                                        @if t.state == TokenState::Called { (token_button(&page, t, "consult", "serve", "Came in", &[])) }
                                        (token_button(&page, t, "consult", "complete", "Complete", &[]))
                                    }
                                    @if desk {
                                        @if t.state == TokenState::Called {
                                            (token_button(&page, t, "manage", "no_show", "No-show", &[]))
                                            (token_button(&page, t, "manage", "skip", "Skip", &[]))
                                        }
                                        (token_button(&page, t, "manage", "cancel", "Cancel", &[]))
                                    }
                                }
                            }
                        }
                    }
                }
            }
            h2 { "Waiting" }
            @if board.waiting.is_empty() {
                p.muted data-testid="no-waiting" { "Nobody is waiting." }
            } @else {
                table data-testid="waiting" {
                    thead { tr { th { "#" } th { "Token" } th { "Name" } th { "Waiting" } th { "" } } }
                    tbody {
                        @for t in &board.waiting {
                            @let pos = t.position.unwrap_or(0);
                            tr data-token-id=(t.id) data-token=(t.label) {
                                td data-testid="position" { (pos) }
                                td { a href={ "/queue-tokens/" (t.id) } title="History" { strong { (t.label) } } }
                                td { (name(t)) @if let Some(p) = phone(t) { br; span.muted data-testid="phone" { (p) } } }
                                td { (minutes_since(now, t.joined_at)) " min" }
                                td {
                                    @if desk {
                                        @if pos > 1 { (token_button(&page, t, "manage", "reorder", "↑", &[("position", (pos - 1).to_string())])) }
                                        @if pos < last { (token_button(&page, t, "manage", "reorder", "↓", &[("position", (pos + 1).to_string())])) }
                                        @let (errs, kept) = form_state(form_error, "reorder", Some(t.id));
                                        form.inline method="post" action={ "/queue-tokens/" (t.id) "/manage" } data-testid="reorder-form" {
                                            (page.csrf_field())
                                            input type="hidden" name="action" value="reorder";
                                            input.narrow type="number" name="position" min="1" max="10000" required aria-label="New place" value=[kept.get("position")] aria-invalid=[invalid_attr(&errs, "position")];
                                            button.small type="submit" { "Move to" }
                                            (field_error(&errs, "position"))
                                        }
                                        (token_button(&page, t, "manage", "skip", "Skip", &[]))
                                        (token_button(&page, t, "manage", "cancel", "Cancel", &[]))
                                        @if !others.is_empty() {
                                            form.inline method="post" action={ "/queue-tokens/" (t.id) "/manage" } {
                                                (page.csrf_field())
                                                input type="hidden" name="action" value="move";
                                                select name="queue_id" aria-label="Move to queue" {
                                                    @for o in &others { option value=(o.id) { (o.name) } }
                                                }
                                                button.small type="submit" { "Move" }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            h2 { "Done today" }
            @if board.done.is_empty() {
                p.muted { "Nothing yet." }
            } @else {
                table data-testid="done" {
                    tbody {
                        @for t in &board.done {
                            tr data-token-id=(t.id) data-token=(t.label) {
                                td { a href={ "/queue-tokens/" (t.id) } title="History" { (t.label) } }
                                td { (name(t)) }
                                td { (state_label(t.state)) }
                                td {
                                    @if doctor && matches!(t.state, TokenState::Skipped | TokenState::NoShow) {
                                        (token_button(&page, t, "consult", "recall", "Recall", &[]))
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if desk {
            h2 { "Check in a walk-in" }
            @let (errs, kept) = form_state(form_error, "check_in", None);
            form method="post" action={ "/queues/" (id) "/check-in" } data-testid="check-in" {
                (page.csrf_field())
                label { "Name" input type="text" name="name" required maxlength="80" value=[kept.get("name")] aria-invalid=[invalid_attr(&errs, "name")]; (field_error(&errs, "name")) }
                label { "Phone number (optional: they get the WhatsApp messages too)" input type="tel" name="phone" maxlength="20" placeholder="+91 98765 43210" value=[kept.get("phone")] aria-invalid=[invalid_attr(&errs, "phone")]; (field_error(&errs, "phone")) }
                button type="submit" data-testid="check-in-submit" { "Check in" }
            }
            h2 { "Waiting-room screen links" }
            p.muted { "A link shows this queue's screen (tokens only) without signing in: open it on the waiting-room TV. Revoke it when the TV is replaced or the link leaks." }
            @if !links.is_empty() {
                table data-testid="screen-links" {
                    tbody {
                        @for l in &links {
                            tr data-link-id=(l.id) {
                                td { (l.name) }
                                td.muted { "created " (when(l.created_at)) }
                                td {
                                    form.inline method="post" action={ "/queue-screen-links/" (l.id) "/revoke" } data-confirm="Revoke this link? The screen showing it stops updating." {
                                        (page.csrf_field())
                                        button.small.danger type="submit" data-testid="screen-link-revoke" { "Revoke" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @let (errs, kept) = form_state(form_error, "screen_link", None);
            form method="post" action={ "/queues/" (id) "/screen-links" } data-testid="screen-link-create" {
                (page.csrf_field())
                label { "Link name" input type="text" name="name" required maxlength="80" placeholder="Waiting room TV" value=[kept.get("name")] aria-invalid=[invalid_attr(&errs, "name")]; (field_error(&errs, "name")) }
                button type="submit" data-testid="screen-link-submit" { "Create a screen link" }
            }
            h2 { @if queue.paused { "Resume" } @else { "Pause" } }
            form method="post" action={ "/queues/" (id) "/pause" } data-testid="pause" {
                (page.csrf_field())
                @if queue.paused {
                    input type="hidden" name="paused" value="false";
                    button type="submit" data-testid="resume-submit" { "Resume the queue" }
                } @else {
                    input type="hidden" name="paused" value="true";
                    @let (errs, kept) = form_state(form_error, "pause", None);
                    label { "Message to waiting patients" input type="text" name="message" maxlength="500" placeholder="The doctor is delayed; we resume at 11:00." value=[kept.get("message")] aria-invalid=[invalid_attr(&errs, "message")]; (field_error(&errs, "message")) }
                    button.danger type="submit" data-testid="pause-submit" { "Pause the queue" }
                }
            }
        }
    }))
}

#[derive(Deserialize)]
struct CheckInForm {
    name: String,
    #[serde(default)]
    phone: String,
}

async fn check_in_form(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Tenant(ctx): Tenant,
    headers: HeaderMap,
    Path(id): Path<String>,
    super::PageForm(f): super::PageForm<CheckInForm>,
) -> Result<Response, PageError> {
    let id = queue_id(&id)?;
    let (name, phone) = (f.name.trim(), f.phone.trim());
    let refuse = |field: &str, message: String| {
        BoardFormError::new("check_in", field, message)
            .keep("name", name)
            .keep("phone", phone)
    };
    if name.is_empty() || name.chars().count() > 80 {
        let e = refuse("name", "the name is 1–80 characters".into());
        return board_with_error(&state, caller, &ctx, &headers, id, e).await;
    }
    // Spaces, dashes and brackets are the number parser's business (`E164::parse`).
    if !phone.is_empty()
        && let Err(e) = E164::parse(phone)
    {
        let e = refuse("phone", e.to_string());
        return board_with_error(&state, caller, &ctx, &headers, id, e).await;
    }
    let body = CheckInBody {
        name: name.to_owned(),
        phone: (!phone.is_empty()).then(|| phone.to_owned()),
        language: None,
    };
    let answer = match check_in_walk_in(&state, &ctx, id, &body).await {
        Ok((_, answer)) => answer,
        Err(ApiError::Unprocessable { message, .. }) => {
            let field = if message.contains("name") {
                "name"
            } else {
                "phone"
            };
            let e = refuse(field, message);
            return board_with_error(&state, caller, &ctx, &headers, id, e).await;
        }
        Err(e) => return Err(e.into()),
    };
    let ok = match answer.outcome {
        "joined" => "checked_in",
        other => other,
    };
    Ok(see_board(
        id,
        ok,
        answer.token.as_ref().map(|t| t.label.as_str()),
    ))
}

#[derive(Deserialize)]
struct PauseForm {
    paused: String,
    #[serde(default)]
    message: String,
}

/// The longest pause message (the store's bound, checked here to show it by the field).
const MAX_PAUSE_MESSAGE: usize = 500;

async fn pause_form(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Tenant(ctx): Tenant,
    headers: HeaderMap,
    Path(id): Path<String>,
    super::PageForm(f): super::PageForm<PauseForm>,
) -> Result<Response, PageError> {
    let id = queue_id(&id)?;
    let paused = match f.paused.as_str() {
        "true" => true,
        "false" => false,
        _ => return Err(invalid("paused is true or false")),
    };
    let message = f.message.trim();
    let refuse = |m: String| BoardFormError::new("pause", "message", m).keep("message", message);
    if message.chars().count() > MAX_PAUSE_MESSAGE {
        let e = refuse(format!(
            "the message is at most {MAX_PAUSE_MESSAGE} characters"
        ));
        return board_with_error(&state, caller, &ctx, &headers, id, e).await;
    }
    match pause_or_resume(&state, &ctx, id, paused, message).await {
        Ok(_) => {}
        Err(ApiError::Unprocessable { message: m, .. }) => {
            return board_with_error(&state, caller, &ctx, &headers, id, refuse(m)).await;
        }
        Err(e) => return Err(e.into()),
    }
    Ok(see_board(
        id,
        if paused {
            "queue_paused"
        } else {
            "queue_resumed"
        },
        None,
    ))
}

async fn call_next_form(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let id = queue_id(&id)?;
    Ok(match call_next_patient(&state, &ctx, id).await? {
        Some((t, true)) => see_board(id, "called", Some(&t.label)),
        Some((t, false)) => see_board(id, "called_untold", Some(&t.label)),
        None => see_board(id, "nobody", None),
    })
}

#[derive(Deserialize)]
struct TokenActionForm {
    action: String,
    position: Option<String>,
    queue_id: Option<String>,
}

/// The queue a token is in now (for the way back to its board).
async fn token_queue(
    state: &AppState,
    ctx: &TenantCtx,
    id: QueueTokenId,
) -> Result<QueueId, PageError> {
    let mut tx = state.store().begin_read(ctx).await?;
    let t = tx.token(id).await?;
    tx.commit().await?;
    Ok(t.queue_id)
}

async fn consult_form(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
    super::PageForm(f): super::PageForm<TokenActionForm>,
) -> Result<Response, PageError> {
    let id = token_id(&id)?;
    let (t, told) = consult(&state, &ctx, id, &f.action).await?;
    let ok = match (f.action.as_str(), told) {
        ("recall", true) => "called",
        ("recall", false) => "called_untold",
        _ => "done",
    };
    Ok(see_board(t.queue_id, ok, Some(&t.label)))
}

async fn manage_form(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Tenant(ctx): Tenant,
    headers: HeaderMap,
    Path(id): Path<String>,
    super::PageForm(f): super::PageForm<TokenActionForm>,
) -> Result<Response, PageError> {
    let id = token_id(&id)?;
    let back = token_queue(&state, &ctx, id).await?;
    let typed = f.position.as_deref().map(str::trim).unwrap_or("");
    let position = match typed {
        "" => None,
        p => match p.parse::<i64>().ok().filter(|p| (1..=10_000).contains(p)) {
            Some(p) => Some(p),
            None => {
                let e = BoardFormError::new(
                    "reorder",
                    "position",
                    "the place is a whole number from 1 (next) to 10000",
                )
                .keep("position", typed)
                .for_token(id);
                return board_with_error(&state, caller, &ctx, &headers, back, e).await;
            }
        },
    };
    let body = ManageBody {
        action: f.action,
        position,
        queue_id: f.queue_id.filter(|q| !q.is_empty()),
    };
    let t = manage(&state, &ctx, id, &body).await?;
    Ok(see_board(back, "done", Some(&t.label)))
}

// -- screen links ------------------------------------------------------------------------

#[derive(Deserialize)]
struct ScreenLinkForm {
    name: String,
}

/// Creates a link and shows it this once (only its hash is kept).
async fn screen_link_create(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Tenant(ctx): Tenant,
    headers: HeaderMap,
    Path(id): Path<String>,
    super::PageForm(f): super::PageForm<ScreenLinkForm>,
) -> Result<Response, PageError> {
    let id = queue_id(&id)?;
    let mut tx = state.store().begin(&ctx).await?;
    let queue = tx.queue(id).await?;
    let (link, token) = match tx.create_screen_link(id, &f.name).await {
        Ok(made) => made,
        Err(frontdesk_store::StoreError::Invalid(m)) => {
            drop(tx);
            let e = BoardFormError::new("screen_link", "name", m).keep("name", f.name.trim());
            return board_with_error(&state, caller, &ctx, &headers, id, e).await;
        }
        Err(e) => return Err(e.into()),
    };
    tx.commit().await?;
    let url = state
        .auth()
        .base_url
        .join(&format!("/screen/{}", token.expose_secret()))
        .map_err(ApiError::internal)?;
    let page = PageCtx::new(&state, Some(caller), &headers, NAV_PATH).await;
    Ok(page.render("Screen link created", html! {
        p { "Open this address on the waiting-room TV for " strong { (queue.name) } " (" (link.name) "). It is shown only now." }
        p { input.copy type="text" readonly value=(url) data-testid="screen-link-url" data-link-id=(link.id); }
        p.muted { "Anyone with the link sees the tokens called and waiting (no names or numbers). Revoke it on the board when it is no longer needed." }
        p { a href={ "/queues/" (id) "/board" } { "Back to the board" } }
    }))
}

async fn screen_link_revoke(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let id = ScreenLinkId::parse(&id).map_err(|_| PageError(ApiError::NotFound))?;
    let mut tx = state.store().begin(&ctx).await?;
    let queue = tx.revoke_screen_link(id).await?;
    tx.commit().await?;
    Ok(see_board(queue, "link_revoked", None))
}

/// The token of a screen link in a path, as a secret (never logged).
fn link_token(token: String) -> SecretString {
    SecretString::from(token)
}

async fn linked_screen_page(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Response, PageError> {
    let token = link_token(token);
    let Some((queue, screen)) = state.store().screen_for_link(&token).await? else {
        return Err(PageError(ApiError::NotFound));
    };
    let data_url = format!("/screen/{}/data", token.expose_secret());
    // The link is the credential: the site-wide `Referrer-Policy: same-origin` keeps it
    // from other sites, and the page links nowhere else.
    Ok(screen_html(&screen, &data_url, queue))
}

async fn linked_screen_data(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Response, ApiError> {
    let token = link_token(token);
    let Some((_, screen)) = state.store().screen_for_link(&token).await? else {
        return Err(ApiError::NotFound);
    };
    Ok(([(header::CACHE_CONTROL, "no-store")], axum::Json(screen)).into_response())
}

// -- a token's history -------------------------------------------------------------------

async fn token_page(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Tenant(ctx): Tenant,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let id = token_id(&id)?;
    let full_numbers = ctx.can(Permission::ContactsViewPhone);
    let mut tx = state.store().begin_read(&ctx).await?;
    let t = tx.token(id).await?;
    let queue = tx.queue(t.queue_id).await?;
    let history = tx.token_history(id).await?;
    let who = who_of(&mut tx, &t, full_numbers).await?;
    tx.commit().await?;
    let page = PageCtx::new(&state, Some(caller), &headers, NAV_PATH).await;
    let title = format!("{} · {}", t.label, queue.name);
    Ok(page.render(&title, html! {
        p {
            strong { (who.name) } @if let Some(p) = &who.phone { " · " span data-testid="phone" { (p) } }
            " · " span data-testid="token-state" { (state_label(t.state)) } " · day " (t.day)
        }
        h2 { "History" }
        table data-testid="token-history" {
            thead { tr { th { "When" } th { "What" } th { "Who" } th { "Details" } } }
            tbody {
                @for e in &history {
                    tr {
                        td { (when(e.occurred_at)) }
                        td data-testid="history-action" { (e.action) }
                        td { (e.actor.to_string()) }
                        td { code { (e.data.to_string()) } }
                    }
                }
            }
        }
        p { a href={ "/queues/" (t.queue_id) "/board" } { "Back to the board" } }
    }))
}

// -- the waiting-room screen -------------------------------------------------------------

async fn screen_page(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let id = queue_id(&id)?;
    let mut tx = state.store().begin_read(&ctx).await?;
    let screen = tx.screen(id).await?;
    tx.commit().await?;
    Ok(screen_html(
        &screen,
        &format!("/api/v1/queues/{id}/screen"),
        id,
    ))
}

/// The waiting-room screen: token labels only, large, no navigation; app.js keeps it
/// current from `data_url` (the screen JSON).
fn screen_html(s: &frontdesk_store::Screen, data_url: &str, id: QueueId) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (s.queue_name) " · Frontdesk" }
                link rel="stylesheet" href="/static/app.css";
                script src="/static/app.js" defer {}
            }
            body.screen #queue-screen data-live-queue=(id) data-live-kind="screen" data-screen-url=(data_url) {
                h1 data-testid="screen-queue" { (s.queue_name) }
                p.screen-paused data-testid="screen-paused" hidden[!s.paused] { "Paused" }
                section.now {
                    h2 { "Now serving" }
                    ul #screen-now data-testid="screen-now" {
                        @for l in &s.now_serving { li { (l) } }
                    }
                }
                section.next {
                    h2 { "Next" }
                    ul #screen-next data-testid="screen-next" {
                        @for l in &s.up_next { li { (l) } }
                    }
                    p { span #screen-waiting data-testid="screen-waiting" { (s.waiting) } " waiting" }
                }
            }
        }
    };
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        markup.into_string(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue_body(raw: &[u8]) -> Result<QueueBody, (&'static str, String)> {
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(raw).into_owned().collect();
        QueueFormValues::of_form(&pairs).body()
    }

    #[test]
    fn the_queue_form_becomes_the_api_body() {
        let raw = "name=Dr+Mehta&channel_id=0193a0e0-0000-7000-8000-000000000001&keywords=DR+MEHTA%2C+join&token_prefix=A&daily_cap=40&position_step=2\
            &hours_mon=09%3A00-13%3A00%2C+14%3A00-18%3A00&hours_tue=&holidays=2026-12-25%2C+2027-01-01\
            &doctor=u1&doctor=u2&text%3Aen%3Ajoined=Hi+%7Btoken%7D&text%3Aen%3Acome_in=\
            &new_language=hi&text%3A_new%3Acome_in=Aaiye\
            &tpl%3Acome_in%3Aname=come_in&tpl%3Acome_in%3Alanguage=en&tpl%3Ajoined%3Aname=&tpl%3Ajoined%3Alanguage=";
        let b = queue_body(raw.as_bytes()).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(b.keywords, ["DR MEHTA", "join"]);
        assert_eq!((b.daily_cap, b.position_step), (40, 2));
        let h = b.hours.unwrap();
        assert_eq!(spans_text(&h.mon), "09:00-13:00, 14:00-18:00");
        assert!(h.tue.is_empty() && h.sun.is_empty());
        assert_eq!(b.holidays, ["2026-12-25", "2027-01-01"]);
        assert_eq!(b.doctors, ["u1", "u2"]);
        assert_eq!(b.texts["en"][&QueueText::Joined], "Hi {token}");
        assert!(
            !b.texts["en"].contains_key(&QueueText::ComeIn),
            "blank keeps the default"
        );
        assert_eq!(b.texts["hi"][&QueueText::ComeIn], "Aaiye");
        assert_eq!(b.templates.len(), 1);
        assert_eq!(b.templates[&QueueText::ComeIn].name, "come_in");
    }

    #[test]
    fn blank_hours_mean_always_open_and_bad_spans_are_refused() {
        let ch = "channel_id=0193a0e0-0000-7000-8000-000000000001";
        let form = |rest: &str| queue_body(format!("{ch}&{rest}").as_bytes());
        let b = form("name=x&daily_cap=1&position_step=0").unwrap_or_else(|e| panic!("{e:?}"));
        assert!(b.hours.is_none());
        assert_eq!(
            form("daily_cap=1&position_step=0&hours_mon=nine")
                .err()
                .map(|e| e.0),
            Some("hours_mon")
        );
        assert_eq!(
            form("daily_cap=1&position_step=0&hours_fri=14:00-09:00")
                .err()
                .map(|e| e.0),
            Some("hours_fri"),
            "close before open is the day's error"
        );
        assert_eq!(
            form("daily_cap=many&position_step=0").err().map(|e| e.0),
            Some("daily_cap")
        );
        assert_eq!(
            form("daily_cap=1&position_step=0&holidays=christmas")
                .err()
                .map(|e| e.0),
            Some("holidays")
        );
        assert_eq!(
            queue_body(b"daily_cap=1&position_step=0")
                .err()
                .map(|e| e.0),
            Some("channel_id")
        );
        assert_eq!(
            form("daily_cap=1&position_step=0&tpl%3Ajoined%3Aname=x")
                .err()
                .map(|e| e.0),
            Some("templates"),
            "a template without its language"
        );
    }

    #[test]
    fn only_token_shaped_labels_reach_a_notice() {
        assert!(looks_like_token("A-014") && looks_like_token("DRM-1"));
        for bad in ["", "A-", "a-1", "ABCDE-1", "A-1x", "<b>-1", "You won"] {
            assert!(!looks_like_token(bad), "{bad}");
        }
    }
}
