//! Export pages: ask for a contact export (all contacts or a segment), see the requests,
//! approve or refuse someone else's (`contacts.approve_export`), and download one's own
//! approved export (the API's CSV route, with the session).

use super::{PageCtx, PageError, PageForm, see_other, when};
use crate::AppState;
use crate::auth::{Access, Authed, Tenant};
use crate::error::ApiError;
use crate::routes::RouteTableBuilder;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use axum::routing::{get, post};
use frontdesk_domain::{ExportId, Permission, SegmentId};
use maud::html;
use serde::Deserialize;

const NAV_PATH: &str = "/contacts";

pub(crate) fn routes(b: RouteTableBuilder) -> RouteTableBuilder {
    use Permission::*;
    b.page(
        Method::GET,
        "/contacts/exports",
        get(exports_page),
        Access::Perm(ContactsExport),
    )
    .page(
        Method::POST,
        "/contacts/exports",
        post(request),
        Access::Perm(ContactsExport),
    )
    .page(
        Method::POST,
        "/contacts/exports/{export_id}/decision",
        post(decide),
        Access::Perm(ContactsApproveExport),
    )
}

#[derive(Deserialize, Default)]
struct Notice {
    ok: Option<String>,
}

async fn exports_page(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Tenant(ctx): Tenant,
    headers: HeaderMap,
    Query(q): Query<Notice>,
) -> Result<Response, PageError> {
    let mut tx = state.store().begin_read(&ctx).await?;
    let exports = tx.contact_exports().await?;
    let segments = tx.segments().await?;
    tx.commit().await?;
    let me = {
        let a = ctx.actor();
        format!("{}:{}", a.kind(), a.id_text())
    };
    let page = PageCtx::new(&state, Some(caller), &headers, NAV_PATH).await;
    let can_decide = page.can(Permission::ContactsApproveExport);
    let notice = match q.ok.as_deref() {
        Some("requested") => {
            Some("Requested. Another admin must approve it before you can download it.")
        }
        Some("decided") => Some("Decision recorded."),
        _ => None,
    };
    Ok(page.render("Contact exports", html! {
        @if let Some(t) = notice { p.notice role="status" data-testid="notice" { (t) } }
        form method="post" action="/contacts/exports" data-testid="request-export" {
            (page.csrf_field())
            label { "Contacts"
                select name="segment_id" {
                    option value="" { "Every contact" }
                    @for s in &segments { option value=(s.id) { "Segment: " (s.name) } }
                }
            }
            button type="submit" { "Request an export" }
        }
        @if !exports.is_empty() {
            table data-testid="exports" {
                thead { tr { th { "Requested" } th { "By" } th { "Status" } th {} } }
                tbody {
                    @for e in &exports {
                        tr data-export-id=(e.id) {
                            td { (when(e.created_at)) }
                            td { (if e.requested_by == me { "you".to_owned() } else { e.requested_by.clone() }) }
                            td { (e.status) }
                            td {
                                @if e.status == "requested" && can_decide && e.requested_by != me {
                                    form.inline method="post" action={ "/contacts/exports/" (e.id) "/decision" } {
                                        (page.csrf_field())
                                        button type="submit" name="approve" value="true" data-testid="approve-export" { "Approve" }
                                        button.danger type="submit" name="approve" value="false" { "Refuse" }
                                    }
                                }
                                @if e.status == "approved" && e.requested_by == me {
                                    a href={ "/api/v1/contact-exports/" (e.id) "/download" } data-testid="download-export" { "Download CSV" }
                                }
                            }
                        }
                    }
                }
            }
        }
    }))
}

#[derive(Deserialize)]
struct RequestForm {
    #[serde(default)]
    segment_id: String,
}

async fn request(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    PageForm(f): PageForm<RequestForm>,
) -> Result<Response, PageError> {
    let segment = match f.segment_id.trim() {
        "" => None,
        s => Some(SegmentId::parse(s).map_err(|_| PageError(ApiError::NotFound))?),
    };
    let mut tx = state.store().begin(&ctx).await?;
    tx.request_export(segment).await?;
    tx.commit().await?;
    Ok(see_other("/contacts/exports?ok=requested", &[]))
}

#[derive(Deserialize)]
struct DecisionForm {
    approve: bool,
}

async fn decide(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
    PageForm(f): PageForm<DecisionForm>,
) -> Result<Response, PageError> {
    let id = ExportId::parse(&id).map_err(|_| PageError(ApiError::NotFound))?;
    let mut tx = state.store().begin(&ctx).await?;
    tx.decide_export(id, f.approve).await?;
    tx.commit().await?;
    Ok(see_other("/contacts/exports?ok=decided", &[]))
}
