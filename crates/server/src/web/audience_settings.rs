//! The audience's configuration page (`contacts.configure`): custom fields (add, remove),
//! the tag catalogue (add, remove) and the consent keywords with their confirmations. A
//! refused form comes back with its message beside it and what was typed kept.

use super::{PageCtx, PageError, PageForm, see_other};
use crate::AppState;
use crate::auth::{Access, Authed, Tenant};
use crate::error::ApiError;
use crate::routes::RouteTableBuilder;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use frontdesk_domain::audience::FieldKind;
use frontdesk_domain::{FieldId, Permission, TagId};
use frontdesk_store::StoreError;
use frontdesk_store::audience::describe_problems;
use frontdesk_store::consent::AudienceSettings;
use maud::{Markup, html};
use serde::Deserialize;

const NAV_PATH: &str = "/contacts";

pub(crate) fn routes(b: RouteTableBuilder) -> RouteTableBuilder {
    use Permission::ContactsConfigure;
    b.page(
        Method::GET,
        "/contacts/settings",
        get(settings_page),
        Access::Perm(ContactsConfigure),
    )
    .page(
        Method::POST,
        "/contacts/settings/fields",
        post(fields_form),
        Access::Perm(ContactsConfigure),
    )
    .page(
        Method::POST,
        "/contacts/settings/tags",
        post(tags_form),
        Access::Perm(ContactsConfigure),
    )
    .page(
        Method::POST,
        "/contacts/settings/keywords",
        post(keywords_form),
        Access::Perm(ContactsConfigure),
    )
    .page(
        Method::POST,
        "/contacts/settings/erasure",
        post(erasure_form),
        Access::Perm(ContactsConfigure),
    )
}

#[derive(Deserialize, Default)]
struct Notice {
    ok: Option<String>,
}

/// A refusal to show, and in which section.
#[derive(Default)]
struct Problem {
    section: &'static str,
    message: String,
    /// The erasure form's values as typed (window, delay), kept on a refusal.
    typed: Option<(String, String)>,
}

async fn render(
    state: &AppState,
    ctx: &frontdesk_store::TenantCtx,
    page: &PageCtx,
    ok: Option<&str>,
    problem: Option<Problem>,
) -> Result<Response, PageError> {
    let mut tx = state.store().begin_read(ctx).await?;
    let fields = tx.fields().await?;
    let tags = tx.tags().await?;
    let settings = tx.audience_settings().await?;
    let erasure = tx.erasure_settings().await?;
    tx.commit().await?;
    let (window, delay) = problem
        .as_ref()
        .and_then(|p| p.typed.clone())
        .unwrap_or_else(|| {
            (
                erasure.window_days.to_string(),
                erasure.delay_hours.to_string(),
            )
        });
    let err = |section: &str| -> Markup {
        html! {
            @if let Some(p) = problem.as_ref().filter(|p| p.section == section) {
                p.error data-testid={ "error-" (section) } { (p.message) }
            }
        }
    };
    let refused = problem.is_some();
    let body = html! {
        @if let Some(t) = ok { p.notice role="status" data-testid="notice" { (t) } }
        h2 { "Custom fields" }
        (err("fields"))
        table data-testid="fields" {
            thead { tr { th { "Key" } th { "Label" } th { "Type" } th { "Options" } th {} } }
            tbody {
                @for f in &fields {
                    tr data-field-id=(f.id) {
                        td { code { (f.key) } } td { (f.label) } td { (f.kind.as_str()) } td { (f.options.join(", ")) }
                        td {
                            form.inline method="post" action="/contacts/settings/fields" data-confirm="Delete this field and every contact's value of it?" {
                                (page.csrf_field())
                                input type="hidden" name="delete" value=(f.id);
                                button.link type="submit" { "Delete" }
                            }
                        }
                    }
                }
            }
        }
        form method="post" action="/contacts/settings/fields" data-testid="new-field" {
            (page.csrf_field())
            label { "Key (letters, digits, _)" input type="text" name="key" maxlength="40" required placeholder="city"; }
            label { "Label" input type="text" name="label" maxlength="80" required placeholder="City"; }
            label { "Type"
                select name="kind" { @for k in FieldKind::ALL { option value=(k.as_str()) { (k.as_str()) } } }
            }
            label { "Options of a choice field (comma-separated)" input type="text" name="options" maxlength="5000"; }
            button type="submit" { "Add field" }
        }
        h2 { "Tags" }
        (err("tags"))
        p data-testid="tags" {
            @for t in &tags {
                span.badge data-tag-id=(t.id) { (t.name) " (" (t.contacts) ")" }
                form.inline method="post" action="/contacts/settings/tags" data-confirm="Remove this tag from the catalogue and every contact?" {
                    (page.csrf_field())
                    input type="hidden" name="delete" value=(t.id);
                    button.link type="submit" title="Delete tag" { "×" }
                }
            }
        }
        form.inline method="post" action="/contacts/settings/tags" data-testid="new-tag" {
            (page.csrf_field())
            input type="text" name="name" maxlength="50" required placeholder="vip";
            button type="submit" { "Add tag" }
        }
        h2 { "Opt-out and opt-in keywords" }
        (err("keywords"))
        form method="post" action="/contacts/settings/keywords" data-testid="keywords" {
            (page.csrf_field())
            label { "Opt-out keywords (comma-separated; the whole message, any case)"
                input type="text" name="opt_out_keywords" maxlength="1000" value=(settings.opt_out_keywords.join(", "));
            }
            label { "Confirmation sent on opt-out" input type="text" name="opt_out_reply" maxlength="1000" value=(settings.opt_out_reply); }
            label { "Opt-in keywords" input type="text" name="opt_in_keywords" maxlength="1000" value=(settings.opt_in_keywords.join(", ")); }
            label { "Confirmation sent on opt-in" input type="text" name="opt_in_reply" maxlength="1000" value=(settings.opt_in_reply); }
            button type="submit" { "Save keywords" }
        }
        h2 { "Erasure on request" }
        p.muted { "A request to erase a contact is due by the end of the window; with a delay it waits that long (and can be cancelled on the contact's page) before it runs. No delay: it runs at once." }
        (err("erasure"))
        form method="post" action="/contacts/settings/erasure" data-testid="erasure-settings" {
            (page.csrf_field())
            label { "Window (days, 1–90)" input type="number" name="window_days" min="1" max="90" required value=(window); }
            label { "Delay before it runs (hours, 0 = at once)" input type="number" name="delay_hours" min="0" max="2160" required value=(delay); }
            button type="submit" { "Save erasure settings" }
        }
    };
    let mut r = page.render("Contact settings", body);
    if refused {
        *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
    }
    Ok(r)
}

async fn settings_page(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Tenant(ctx): Tenant,
    headers: HeaderMap,
    Query(q): Query<Notice>,
) -> Result<Response, PageError> {
    let page = PageCtx::new(&state, Some(caller), &headers, NAV_PATH).await;
    let ok = match q.ok.as_deref() {
        Some("fields") => Some("Fields saved."),
        Some("tags") => Some("Tags saved."),
        Some("keywords") => Some("Keywords saved."),
        Some("erasure") => Some("Erasure settings saved."),
        _ => None,
    };
    render(&state, &ctx, &page, ok, None).await
}

/// A refusal the form shows, or the error page.
fn problem_of(section: &'static str, e: StoreError) -> Result<Problem, PageError> {
    let message = match e {
        StoreError::InvalidFields(ps) => describe_problems(&ps),
        StoreError::Invalid(m) => m,
        StoreError::Conflict(code) => ApiError::from(StoreError::Conflict(code)).to_string(),
        other => return Err(other.into()),
    };
    Ok(Problem {
        section,
        message,
        typed: None,
    })
}

/// Commits a change and goes back to the page, or shows the page again with the refusal.
async fn finish(
    state: &AppState,
    caller: crate::auth::Caller,
    ctx: &frontdesk_store::TenantCtx,
    headers: &HeaderMap,
    section: &'static str,
    tx: frontdesk_store::TenantTx,
    outcome: Result<(), StoreError>,
) -> Result<Response, PageError> {
    match outcome {
        Ok(()) => {
            tx.commit().await?;
            Ok(see_other(&format!("/contacts/settings?ok={section}"), &[]))
        }
        Err(StoreError::NotFound) => Err(PageError(ApiError::NotFound)),
        Err(e) => {
            drop(tx);
            let p = problem_of(section, e)?;
            let page = PageCtx::new(state, Some(caller), headers, NAV_PATH).await;
            render(state, ctx, &page, None, Some(p)).await
        }
    }
}

#[derive(Deserialize)]
struct FieldForm {
    delete: Option<String>,
    key: Option<String>,
    label: Option<String>,
    kind: Option<String>,
    options: Option<String>,
}

async fn fields_form(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Tenant(ctx): Tenant,
    headers: HeaderMap,
    PageForm(f): PageForm<FieldForm>,
) -> Result<Response, PageError> {
    let mut tx = state.store().begin(&ctx).await?;
    let r = match &f.delete {
        Some(id) => {
            let id = FieldId::parse(id).map_err(|_| PageError(ApiError::NotFound))?;
            tx.delete_field(id).await.map(drop)
        }
        None => {
            let kind = FieldKind::parse(f.kind.as_deref().unwrap_or("")).ok_or_else(|| {
                PageError(ApiError::bad_request("invalid_form", "no such field type"))
            })?;
            let options: Vec<String> = f
                .options
                .as_deref()
                .unwrap_or("")
                .split(',')
                .map(|o| o.trim().to_owned())
                .filter(|o| !o.is_empty())
                .collect();
            tx.create_field(
                f.key.as_deref().unwrap_or(""),
                f.label.as_deref().unwrap_or(""),
                kind,
                &options,
            )
            .await
            .map(drop)
        }
    };
    finish(&state, caller, &ctx, &headers, "fields", tx, r).await
}

#[derive(Deserialize)]
struct TagForm {
    delete: Option<String>,
    name: Option<String>,
}

async fn tags_form(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Tenant(ctx): Tenant,
    headers: HeaderMap,
    PageForm(f): PageForm<TagForm>,
) -> Result<Response, PageError> {
    let mut tx = state.store().begin(&ctx).await?;
    let r = match &f.delete {
        Some(id) => {
            let id = TagId::parse(id).map_err(|_| PageError(ApiError::NotFound))?;
            tx.delete_tag(id).await
        }
        None => tx
            .create_tag(f.name.as_deref().unwrap_or(""))
            .await
            .map(drop),
    };
    finish(&state, caller, &ctx, &headers, "tags", tx, r).await
}

#[derive(Deserialize)]
struct KeywordForm {
    opt_out_keywords: String,
    opt_in_keywords: String,
    opt_out_reply: String,
    opt_in_reply: String,
}

fn words(s: &str) -> Vec<String> {
    s.split(',')
        .map(|w| w.trim().to_owned())
        .filter(|w| !w.is_empty())
        .collect()
}

async fn keywords_form(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Tenant(ctx): Tenant,
    headers: HeaderMap,
    PageForm(f): PageForm<KeywordForm>,
) -> Result<Response, PageError> {
    let mut tx = state.store().begin(&ctx).await?;
    let r = tx
        .set_audience_settings(AudienceSettings {
            opt_out_keywords: words(&f.opt_out_keywords),
            opt_in_keywords: words(&f.opt_in_keywords),
            opt_out_reply: f.opt_out_reply,
            opt_in_reply: f.opt_in_reply,
        })
        .await
        .map(drop);
    finish(&state, caller, &ctx, &headers, "keywords", tx, r).await
}

#[derive(Deserialize)]
struct ErasureForm {
    window_days: String,
    delay_hours: String,
}

async fn erasure_form(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Tenant(ctx): Tenant,
    headers: HeaderMap,
    PageForm(f): PageForm<ErasureForm>,
) -> Result<Response, PageError> {
    use frontdesk_store::audience::FieldProblem;
    let typed = Some((f.window_days.clone(), f.delay_hours.clone()));
    let mut tx = state.store().begin(&ctx).await?;
    let mut problems = Vec::new();
    let window = f.window_days.trim().parse::<i32>().unwrap_or_else(|_| {
        problems.push(FieldProblem::new("window_days", "a whole number of days"));
        0
    });
    let delay = f.delay_hours.trim().parse::<i32>().unwrap_or_else(|_| {
        problems.push(FieldProblem::new("delay_hours", "a whole number of hours"));
        0
    });
    let r = if problems.is_empty() {
        tx.set_erasure_settings(frontdesk_store::erasure::ErasureSettings {
            window_days: window,
            delay_hours: delay,
        })
        .await
        .map(drop)
    } else {
        Err(StoreError::InvalidFields(problems))
    };
    match r {
        Err(e) if !matches!(e, StoreError::NotFound) => {
            // Shown again with what was typed, not what is stored.
            drop(tx);
            let p = Problem {
                typed,
                ..problem_of("erasure", e)?
            };
            let page = PageCtx::new(&state, Some(caller), &headers, NAV_PATH).await;
            render(&state, &ctx, &page, None, Some(p)).await
        }
        r => finish(&state, caller, &ctx, &headers, "erasure", tx, r).await,
    }
}
