//! Segment pages: the list with each segment's live count, and the editor. The editor is a
//! form with the rule as JSON (it works without script); app.js adds a condition builder
//! that writes that JSON and shows the live count from `POST /api/v1/segments/preview`
//! while one edits. A rule the store refuses comes back with the message beside it.

use super::{PageCtx, PageError, PageForm, see_other};
use crate::AppState;
use crate::auth::{Access, Authed, Tenant};
use crate::error::ApiError;
use crate::routes::RouteTableBuilder;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use frontdesk_domain::audience::Rule;
use frontdesk_domain::{Permission, SegmentId};
use frontdesk_store::StoreError;
use maud::{Markup, html};
use serde::Deserialize;

const NAV_PATH: &str = "/segments";

/// Longest rule text a form may carry.
const MAX_RULE_TEXT: usize = 20_000;

pub(crate) fn routes(b: RouteTableBuilder) -> RouteTableBuilder {
    use Permission::*;
    b.page(
        Method::GET,
        "/segments",
        get(segments_page),
        Access::Perm(ContactsRead),
    )
    .page(
        Method::GET,
        "/segments/new",
        get(new_segment_page),
        Access::Perm(ContactsWrite),
    )
    .page(
        Method::POST,
        "/segments",
        post(segment_create),
        Access::Perm(ContactsWrite),
    )
    .page(
        Method::GET,
        "/segments/{segment_id}",
        get(segment_page),
        Access::Perm(ContactsRead),
    )
    .page(
        Method::POST,
        "/segments/{segment_id}",
        post(segment_update),
        Access::Perm(ContactsWrite),
    )
}

fn segment_id(s: &str) -> Result<SegmentId, PageError> {
    SegmentId::parse(s).map_err(|_| PageError(ApiError::NotFound))
}

async fn segments_page(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Tenant(ctx): Tenant,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let mut tx = state.store().begin_read(&ctx).await?;
    let mut rows = Vec::new();
    for s in tx.segments().await? {
        let n = tx.preview_rule(&s.rule, state.now()).await?.count;
        rows.push((s, n));
    }
    tx.commit().await?;
    let page = PageCtx::new(&state, Some(caller), &headers, NAV_PATH).await;
    let can_write = page.can(Permission::ContactsWrite);
    Ok(page.render("Segments", html! {
        @if can_write { p { a href="/segments/new" data-testid="new-segment" { "New segment" } } }
        @if rows.is_empty() {
            p.muted data-testid="no-segments" { "No segment yet." }
        } @else {
            table data-testid="segments" {
                thead { tr { th { "Segment" } th { "Contacts now" } } }
                tbody {
                    @for (s, n) in &rows {
                        tr data-segment-id=(s.id) {
                            td { a href={ "/segments/" (s.id) } { (s.name) } }
                            td { (n) }
                        }
                    }
                }
            }
        }
    }))
}

/// What the editor shows: the name and rule text as stored or as typed, the count, the
/// problems.
struct Editor<'a> {
    action: String,
    name: &'a str,
    rule: &'a str,
    count: Option<i64>,
    name_error: Option<String>,
    rule_error: Option<String>,
}

async fn editor(
    state: &AppState,
    ctx: &frontdesk_store::TenantCtx,
    page: &PageCtx,
    e: Editor<'_>,
) -> Result<Markup, PageError> {
    let mut tx = state.store().begin_read(ctx).await?;
    let fields = tx.fields().await?;
    let tags = tx.tags().await?;
    tx.commit().await?;
    let fields_json =
        serde_json::to_string(&fields).map_err(|e| PageError(ApiError::internal(e)))?;
    let tags_json = serde_json::to_string(&tags).map_err(|e| PageError(ApiError::internal(e)))?;
    Ok(html! {
        form method="post" action=(e.action) data-testid="segment-form" {
            (page.csrf_field())
            label class=[e.name_error.as_ref().map(|_| "invalid")] {
                "Name" input type="text" name="name" required maxlength="80" value=(e.name) data-testid="segment-name";
                @if let Some(m) = &e.name_error { span.field-error data-testid="error-name" { (m) } }
            }
            div #segment-builder data-csrf=(page.csrf) data-fields=(fields_json) data-tags=(tags_json) {}
            label class=[e.rule_error.as_ref().map(|_| "invalid")] {
                "Rule (JSON; the builder above writes it)"
                textarea name="rule" rows="6" maxlength=(MAX_RULE_TEXT) data-testid="segment-rule" { (e.rule) }
                @if let Some(m) = &e.rule_error { span.field-error data-testid="error-rule" { (m) } }
            }
            p { "Contacts matching now: " strong #segment-count data-testid="segment-count" {
                @if let Some(n) = e.count { (n) } @else { "—" }
            } }
            ul #segment-sample data-testid="segment-sample" {}
            button type="submit" data-testid="save-segment" { "Save segment" }
        }
    })
}

async fn new_segment_page(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Tenant(ctx): Tenant,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let page = PageCtx::new(&state, Some(caller), &headers, NAV_PATH).await;
    let body = editor(
        &state,
        &ctx,
        &page,
        Editor {
            action: "/segments".into(),
            name: "",
            rule: r#"{"and":[]}"#,
            count: None,
            name_error: None,
            rule_error: None,
        },
    )
    .await?;
    Ok(page.render("New segment", body))
}

async fn segment_page(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Tenant(ctx): Tenant,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let id = segment_id(&id)?;
    let mut tx = state.store().begin_read(&ctx).await?;
    let s = tx.segment(id).await?;
    let count = tx.preview_rule(&s.rule, state.now()).await?.count;
    tx.commit().await?;
    let rule = serde_json::to_string(&s.rule).map_err(|e| PageError(ApiError::internal(e)))?;
    let page = PageCtx::new(&state, Some(caller), &headers, NAV_PATH).await;
    let body = editor(
        &state,
        &ctx,
        &page,
        Editor {
            action: format!("/segments/{id}"),
            name: &s.name,
            rule: &rule,
            count: Some(count),
            name_error: None,
            rule_error: None,
        },
    )
    .await?;
    Ok(page.render(&s.name, body))
}

#[derive(Deserialize)]
struct SegmentForm {
    name: String,
    rule: String,
}

async fn save(
    state: AppState,
    caller: crate::auth::Caller,
    ctx: frontdesk_store::TenantCtx,
    headers: HeaderMap,
    id: Option<SegmentId>,
    form: SegmentForm,
) -> Result<Response, PageError> {
    let parsed: Result<Rule, String> = if form.rule.len() > MAX_RULE_TEXT {
        Err("the rule is too long".into())
    } else {
        serde_json::from_str(&form.rule).map_err(|e| format!("not a valid rule: {e}"))
    };
    let outcome = match &parsed {
        Ok(rule) => {
            let mut tx = state.store().begin(&ctx).await?;
            match tx.save_segment(id, &form.name, rule).await {
                Ok(s) => {
                    tx.commit().await?;
                    return Ok(see_other(&format!("/segments/{}", s.id), &[]));
                }
                Err(StoreError::Invalid(m)) if m.starts_with("name:") => (Some(m), None),
                Err(StoreError::Invalid(m)) => (None, Some(m)),
                Err(StoreError::NotFound) => (
                    None,
                    Some("the rule names a tag or field that does not exist (any more)".to_owned()),
                ),
                Err(StoreError::Conflict("segment_name_taken")) => {
                    (Some("a segment with this name exists".to_owned()), None)
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(m) => (None, Some(m.clone())),
    };
    let page = PageCtx::new(&state, Some(caller), &headers, NAV_PATH).await;
    let body = editor(
        &state,
        &ctx,
        &page,
        Editor {
            action: id.map_or_else(|| "/segments".to_owned(), |i| format!("/segments/{i}")),
            name: &form.name,
            rule: &form.rule,
            count: None,
            name_error: outcome.0,
            rule_error: outcome.1,
        },
    )
    .await?;
    let mut r = page.render("Segment", body);
    *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
    Ok(r)
}

async fn segment_create(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Tenant(ctx): Tenant,
    headers: HeaderMap,
    PageForm(form): PageForm<SegmentForm>,
) -> Result<Response, PageError> {
    save(state, caller, ctx, headers, None, form).await
}

async fn segment_update(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Tenant(ctx): Tenant,
    headers: HeaderMap,
    Path(id): Path<String>,
    PageForm(form): PageForm<SegmentForm>,
) -> Result<Response, PageError> {
    let id = segment_id(&id)?;
    // 404 for an id that is not here, before anything else.
    let mut tx = state.store().begin_read(&ctx).await?;
    tx.segment(id).await?;
    tx.commit().await?;
    save(state, caller, ctx, headers, Some(id), form).await
}
