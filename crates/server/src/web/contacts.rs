//! Contact pages: the list (search, tag filter, cursor pages), the new-contact form and a
//! contact's page with its edit form, tags and custom fields. A form with bad values comes
//! back with every value as typed and each message beside its field; nothing is stored.
//! Numbers are masked by the store for roles without `contacts.view_phone`, and such a
//! role's edit form has no number input (it could only overwrite what it cannot see).

use super::{PageCtx, PageError, PageForm, see_other, when};
use crate::AppState;
use crate::api::contacts::{ConsentBody, ContactListParams, check_consent_body, contact_query};
use crate::auth::{Access, Authed, Tenant};
use crate::error::ApiError;
use crate::routes::RouteTableBuilder;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use frontdesk_domain::audience::{ConsentSource, ConsentState, FieldKind};
use frontdesk_domain::{ContactId, Permission, TagId};
use frontdesk_store::StoreError;
use frontdesk_store::audience::{ContactInput, ContactRecord, FieldDef, FieldProblem, Tag};
use frontdesk_store::consent::ConsentView;
use maud::{Markup, html};
use serde::Deserialize;
use std::collections::BTreeMap;

/// The navigation entry the contact pages sit under.
const NAV_PATH: &str = "/contacts";

/// Inputs a contact form may carry: the built-in ones and at most this many more.
const MAX_FORM_FIELDS: usize = 130;

pub(crate) fn routes(b: RouteTableBuilder) -> RouteTableBuilder {
    use Permission::*;
    b.page(
        Method::GET,
        "/contacts",
        get(contacts_page),
        Access::Perm(ContactsRead),
    )
    .page(
        Method::GET,
        "/contacts/new",
        get(new_contact_page),
        Access::Perm(ContactsWrite),
    )
    .page(
        Method::POST,
        "/contacts",
        post(contact_create),
        Access::Perm(ContactsWrite),
    )
    .page(
        Method::GET,
        "/contacts/{contact_id}",
        get(contact_page),
        Access::Perm(ContactsRead),
    )
    .page(
        Method::POST,
        "/contacts/{contact_id}",
        post(contact_update),
        Access::Perm(ContactsWrite),
    )
    .page(
        Method::POST,
        "/contacts/{contact_id}/tags",
        post(contact_tags),
        Access::Perm(ContactsWrite),
    )
    .page(
        Method::POST,
        "/contacts/{contact_id}/erase",
        post(contact_erase),
        Access::Perm(ContactsErase),
    )
    .page(
        Method::POST,
        "/contacts/{contact_id}/erasure/{request_id}/cancel",
        post(contact_erasure_cancel),
        Access::Perm(ContactsErase),
    )
    .page(
        Method::POST,
        "/contacts/{contact_id}/consent",
        post(contact_consent),
        Access::Perm(ContactsWrite),
    )
}

fn contact_id(s: &str) -> Result<ContactId, PageError> {
    ContactId::parse(s).map_err(|_| PageError(ApiError::NotFound))
}

#[derive(Deserialize, Default)]
struct Notice {
    ok: Option<String>,
}

fn notice(code: &Option<String>) -> Markup {
    let text = match code.as_deref() {
        Some("created") => Some("Contact created."),
        Some("saved") => Some("Saved."),
        Some("tagged") => Some("Tags updated."),
        Some("consent") => Some("Consent recorded."),
        Some("erased") => Some("The contact's personal data was erased."),
        Some("erasure_requested") => {
            Some("Erasure requested: it runs after the organisation's delay unless cancelled.")
        }
        Some("erasure_cancelled") => Some("The erasure request was cancelled."),
        _ => None,
    };
    html! { @if let Some(t) = text { p.notice role="status" data-testid="notice" { (t) } } }
}

/// The name to show: the business's, else WhatsApp's, else the username.
fn display_name(c: &ContactRecord) -> String {
    c.name
        .clone()
        .or_else(|| c.profile_name.clone())
        .or_else(|| c.username.clone())
        .unwrap_or_else(|| "(no name)".into())
}

fn value_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Bool(b) => if *b { "yes" } else { "no" }.into(),
        serde_json::Value::Number(n) => n
            .as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() < 1e15)
            .map(|f| (f as i64).to_string())
            .unwrap_or_else(|| n.to_string()),
        _ => String::new(),
    }
}

async fn contacts_page(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Tenant(ctx): Tenant,
    headers: HeaderMap,
    Query(p): Query<ContactListParams>,
) -> Result<Response, PageError> {
    let q = contact_query(&p)?;
    let mut tx = state.store().begin_read(&ctx).await?;
    let page_rows = tx.list_contacts(&q).await?;
    let tags = tx.tags().await?;
    tx.commit().await?;
    let page = PageCtx::new(&state, Some(caller), &headers, NAV_PATH).await;
    let can_write = page.can(Permission::ContactsWrite);
    let next = page_rows.next_cursor.as_ref().map(|c| {
        let mut u = url::form_urlencoded::Serializer::new(String::new());
        if let Some(s) = &p.q {
            u.append_pair("q", s);
        }
        if let Some(t) = &p.tag_id {
            u.append_pair("tag_id", t);
        }
        u.append_pair("cursor", c);
        format!("/contacts?{}", u.finish())
    });
    Ok(page.render("Contacts", html! {
        form.filters method="get" action="/contacts" data-testid="contact-filters" {
            label { "Search" input type="search" name="q" maxlength="100" value=[p.q.as_deref()] placeholder="Name, email, company…"; }
            label { "Tag"
                select name="tag_id" {
                    option value="" { "Any" }
                    @for t in &tags {
                        option value=(t.id) selected[p.tag_id.as_deref() == Some(t.id.to_string().as_str())] { (t.name) }
                    }
                }
            }
            button type="submit" { "Filter" }
        }
        @if page.can(Permission::ContactsConfigure) {
            p { a href="/contacts/settings" data-testid="contact-settings" { "Fields, tags and keywords" } }
        }
        @if page.can(Permission::ContactsExport) {
            p { a href="/contacts/exports" data-testid="contact-exports" { "Exports" } }
        }
        @if can_write {
            p { a href="/contacts/new" data-testid="new-contact" { "New contact" } " · " a href="/contacts/import" data-testid="import-contacts" { "Import from CSV" } }
        }
        @if page_rows.items.is_empty() {
            p.muted data-testid="no-contacts" { "No contact matches." }
        } @else {
            table data-testid="contacts" {
                thead { tr { th { "Name" } th { "Number or user" } th { "Email" } th { "Tags" } th { "Last message" } } }
                tbody {
                    @for c in &page_rows.items {
                        tr data-contact-id=(c.id) {
                            td { a href={ "/contacts/" (c.id) } { (display_name(c)) } }
                            td data-testid="contact-phone" {
                                @if let Some(p) = &c.phone { (p) }
                                @else if let Some(u) = &c.username { "@" (u) }
                                @else if let Some(u) = &c.user_id { (u) }
                            }
                            td { (c.email.as_deref().unwrap_or("")) }
                            td { @for t in &c.tags { span.badge { (t.name) } " " } }
                            td { (c.last_inbound_at.map(when).unwrap_or_default()) }
                        }
                    }
                }
            }
        }
        @if let Some(n) = next {
            p { a href=(n) data-testid="next-page" { "Older contacts →" } }
        }
    }))
}

/// The values a form shows: what is stored, or what was typed.
#[derive(Default)]
struct FormValues {
    values: BTreeMap<String, String>,
}

impl FormValues {
    fn of(c: &ContactRecord) -> Self {
        let mut values = BTreeMap::new();
        for (k, v) in [
            ("name", &c.name),
            ("phone", &c.phone),
            ("user_id", &c.user_id),
            ("username", &c.username),
            ("email", &c.email),
            ("language", &c.language),
            ("company", &c.company),
        ] {
            if let Some(v) = v {
                values.insert(k.to_owned(), v.clone());
            }
        }
        for (k, v) in &c.fields {
            values.insert(format!("f.{k}"), value_text(v));
        }
        Self { values }
    }

    fn get(&self, k: &str) -> &str {
        self.values.get(k).map_or("", String::as_str)
    }
}

fn problem<'a>(problems: &'a [FieldProblem], field: &str) -> Option<&'a str> {
    problems
        .iter()
        .find(|p| p.field == field)
        .map(|p| p.message.as_str())
}

fn error_beside(problems: &[FieldProblem], field: &str) -> Markup {
    html! {
        @if let Some(m) = problem(problems, field) {
            span.field-error data-testid={ "error-" (field) } { (m) }
        }
    }
}

/// The contact form. `phone_input`: whether the number may be typed (not for a role that
/// sees it masked, on an existing contact).
fn contact_form(
    page: &PageCtx,
    action: &str,
    v: &FormValues,
    defs: &[FieldDef],
    problems: &[FieldProblem],
    phone_input: bool,
) -> Markup {
    let text_input = |name: &str, label: &str, kind: &str, max: u32, hint: &str| -> Markup {
        html! {
            label class=[problem(problems, name).map(|_| "invalid")] {
                (label)
                input type=(kind) name=(name) maxlength=(max) value=(v.get(name)) placeholder=(hint) data-testid={ "input-" (name) };
                (error_beside(problems, name))
            }
        }
    };
    html! {
        form method="post" action=(action) data-testid="contact-form" {
            (page.csrf_field())
            @if !problems.is_empty() {
                p.error data-testid="form-error" { "Some values need a look; nothing was saved." }
            }
            (error_beside(problems, "fields"))
            (text_input("name", "Name", "text", 200, "Asha Rao"))
            @if phone_input {
                (text_input("phone", "Phone number (international, with +)", "tel", 40, "+91 98765 43210"))
            } @else {
                p { "Phone number: " span data-testid="masked-phone" { (v.get("phone")) } }
            }
            (text_input("user_id", "WhatsApp user id", "text", 128, ""))
            (text_input("username", "WhatsApp username", "text", 100, ""))
            (text_input("email", "Email", "text", 254, "asha@example.com"))
            (text_input("language", "Language (en, pt_BR, …)", "text", 12, "en"))
            (text_input("company", "Company", "text", 200, ""))
            @if !defs.is_empty() {
                fieldset data-testid="custom-fields" {
                    legend { "Custom fields" }
                    @for d in defs {
                        @let name = format!("f.{}", d.key);
                        @let err = format!("fields.{}", d.key);
                        label class=[problem(problems, &err).map(|_| "invalid")] {
                            (d.label)
                            @match d.kind {
                                FieldKind::Choice => {
                                    select name=(name) data-testid={ "input-" (name) } {
                                        option value="" { "—" }
                                        @for o in &d.options {
                                            option value=(o) selected[v.get(&name) == o] { (o) }
                                        }
                                    }
                                }
                                FieldKind::Boolean => {
                                    select name=(name) data-testid={ "input-" (name) } {
                                        option value="" { "—" }
                                        option value="yes" selected[v.get(&name) == "yes"] { "yes" }
                                        option value="no" selected[v.get(&name) == "no"] { "no" }
                                    }
                                }
                                FieldKind::Date => {
                                    input type="date" name=(name) value=(v.get(&name)) data-testid={ "input-" (name) };
                                }
                                FieldKind::Number => {
                                    input type="text" inputmode="decimal" name=(name) maxlength="40" value=(v.get(&name)) data-testid={ "input-" (name) };
                                }
                                FieldKind::Text => {
                                    input type="text" name=(name) maxlength="1000" value=(v.get(&name)) data-testid={ "input-" (name) };
                                }
                            }
                            (error_beside(problems, &err))
                        }
                    }
                }
            }
            button type="submit" data-testid="save-contact" { "Save" }
        }
    }
}

/// The form's values as the store's input; `phone` only when the form had the input.
fn input_of(form: &BTreeMap<String, String>) -> Result<ContactInput, PageError> {
    if form.len() > MAX_FORM_FIELDS {
        return Err(PageError(ApiError::bad_request(
            "invalid_form",
            "the form has too many fields",
        )));
    }
    let get = |k: &str| form.get(k).cloned();
    let fields = form
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("f.")
                .map(|key| (key.to_owned(), serde_json::Value::String(v.clone())))
        })
        .collect();
    Ok(ContactInput {
        name: get("name"),
        phone: get("phone"),
        user_id: get("user_id"),
        username: get("username"),
        email: get("email"),
        language: get("language"),
        company: get("company"),
        fields,
    })
}

/// A store refusal as problems to show beside the fields, or the error page.
fn problems_of(e: StoreError) -> Result<Vec<FieldProblem>, PageError> {
    match e {
        StoreError::InvalidFields(ps) => Ok(ps),
        StoreError::Conflict("contact_exists") => Ok(vec![FieldProblem::new(
            "phone",
            "another contact has this number or WhatsApp user id",
        )]),
        other => Err(other.into()),
    }
}

fn typed_values(form: &BTreeMap<String, String>) -> FormValues {
    FormValues {
        values: form
            .iter()
            .filter(|(k, _)| k.as_str() != "_csrf")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    }
}

async fn new_contact_page(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Tenant(ctx): Tenant,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let mut tx = state.store().begin_read(&ctx).await?;
    let defs = tx.fields().await?;
    tx.commit().await?;
    let page = PageCtx::new(&state, Some(caller), &headers, NAV_PATH).await;
    let form = contact_form(&page, "/contacts", &FormValues::default(), &defs, &[], true);
    Ok(page.render("New contact", form))
}

async fn contact_create(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Tenant(ctx): Tenant,
    headers: HeaderMap,
    PageForm(form): PageForm<BTreeMap<String, String>>,
) -> Result<Response, PageError> {
    let input = input_of(&form)?;
    let mut tx = state.store().begin(&ctx).await?;
    match tx.create_contact(&input).await {
        Ok(c) => {
            tx.commit().await?;
            Ok(see_other(&format!("/contacts/{}?ok=created", c.id), &[]))
        }
        Err(e) => {
            let problems = problems_of(e)?;
            drop(tx);
            let mut tx = state.store().begin_read(&ctx).await?;
            let defs = tx.fields().await?;
            tx.commit().await?;
            let page = PageCtx::new(&state, Some(caller), &headers, NAV_PATH).await;
            let body = contact_form(
                &page,
                "/contacts",
                &typed_values(&form),
                &defs,
                &problems,
                true,
            );
            Ok(unprocessable(page.render("New contact", body)))
        }
    }
}

/// A form shown again with its problems: 422, so scripts and tests see it was refused.
fn unprocessable(mut r: Response) -> Response {
    *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
    r
}

fn tags_section(page: &PageCtx, c: &ContactRecord, catalogue: &[Tag]) -> Markup {
    let can_write = page.can(Permission::ContactsWrite);
    let addable: Vec<&Tag> = catalogue
        .iter()
        .filter(|t| !c.tags.iter().any(|x| x.id == t.id))
        .collect();
    html! {
        h2 { "Tags" }
        p data-testid="contact-tags" {
            @if c.tags.is_empty() { span.muted { "No tags." } }
            @for t in &c.tags {
                span.badge data-tag-id=(t.id) { (t.name) }
                @if can_write {
                    form.inline method="post" action={ "/contacts/" (c.id) "/tags" } {
                        (page.csrf_field())
                        input type="hidden" name="tag_id" value=(t.id);
                        input type="hidden" name="action" value="remove";
                        button.link type="submit" title="Remove tag" { "×" }
                    }
                }
            }
        }
        @if can_write && !addable.is_empty() {
            form.inline method="post" action={ "/contacts/" (c.id) "/tags" } data-testid="add-tag" {
                (page.csrf_field())
                input type="hidden" name="action" value="add";
                select name="tag_id" {
                    @for t in &addable { option value=(t.id) { (t.name) } }
                }
                button type="submit" { "Add tag" }
            }
        }
    }
}

async fn contact_page(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Tenant(ctx): Tenant,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<Notice>,
) -> Result<Response, PageError> {
    let id = contact_id(&id)?;
    let mut tx = state.store().begin_read(&ctx).await?;
    let c = tx.contact_record(id).await?;
    let defs = tx.fields().await?;
    let catalogue = tx.tags().await?;
    let consent = tx.consent(id).await?;
    let erasures = if ctx.can(Permission::ContactsErase) {
        tx.erasure_requests(Some(id), false).await?
    } else {
        Vec::new()
    };
    let erasure_delay = tx.erasure_settings().await?.delay_hours;
    tx.commit().await?;
    let page = PageCtx::new(&state, Some(caller), &headers, NAV_PATH).await;
    let pending = erasures.iter().find(|r| r.state == "pending");
    let body = html! {
        (contact_body(&page, &c, &defs, &catalogue, &FormValues::of(&c), &[], &q.ok))
        (consent_section(&page, &c, &consent))
        @if page.can(Permission::ContactsErase) && (c.erased_at.is_none() || !erasures.is_empty()) {
            h2 { "Erase on request" }
            @if let Some(r) = pending {
                p data-testid="erasure-pending" {
                    "Erasure requested " (when(r.requested_at)) " by " (r.requested_by)
                    "; it runs " (when(r.execute_at)) " (due by " (when(r.due_by)) ")."
                }
                form method="post" action={ "/contacts/" (c.id) "/erasure/" (r.id) "/cancel" } data-testid="erasure-cancel" {
                    (page.csrf_field())
                    button type="submit" { "Cancel the erasure" }
                }
            } @else if c.erased_at.is_none() {
                @let confirm = if erasure_delay == 0 {
                    "Erase this contact's personal data and message contents now? This cannot be undone.".to_owned()
                } else {
                    format!("Request erasure of this contact's personal data? It runs in {erasure_delay} hours unless cancelled.")
                };
                form method="post" action={ "/contacts/" (c.id) "/erase" } data-confirm=(confirm) data-testid="erase-form" {
                    (page.csrf_field())
                    button.danger type="submit" { "Erase personal data" }
                }
            }
            @if !erasures.is_empty() {
                table data-testid="erasure-requests" {
                    thead { tr { th { "Requested" } th { "By" } th { "Runs" } th { "Due by" } th { "State" } } }
                    tbody {
                        @for r in &erasures {
                            tr data-erasure-id=(r.id) {
                                td { (when(r.requested_at)) } td { (r.requested_by) }
                                td { (when(r.execute_at)) } td { (when(r.due_by)) } td { (r.state) }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(page.render(&display_name(&c), body))
}

fn contact_body(
    page: &PageCtx,
    c: &ContactRecord,
    defs: &[FieldDef],
    catalogue: &[Tag],
    values: &FormValues,
    problems: &[FieldProblem],
    ok: &Option<String>,
) -> Markup {
    let can_write = page.can(Permission::ContactsWrite);
    html! {
        (notice(ok))
        dl data-testid="contact-summary" {
            dt { "Number" } dd data-testid="contact-phone" { (c.phone.as_deref().unwrap_or("—")) }
            @if let Some(p) = &c.profile_name { dt { "WhatsApp name" } dd { (p) } }
            @if let Some(t) = c.erased_at { dt { "Erased" } dd data-testid="erased-at" { (when(t)) } }
            dt { "Marketing consent" } dd { (consent_label(c.consent)) }
            dt { "Last message from them" } dd { (c.last_inbound_at.map(when).unwrap_or_else(|| "never".into())) }
        }
        (tags_section(page, c, catalogue))
        @if can_write {
            h2 { "Details" }
            (contact_form(page, &format!("/contacts/{}", c.id), values, defs, problems, !c.phone_masked))
        }
    }
}

async fn contact_update(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Tenant(ctx): Tenant,
    headers: HeaderMap,
    Path(id): Path<String>,
    PageForm(form): PageForm<BTreeMap<String, String>>,
) -> Result<Response, PageError> {
    let id = contact_id(&id)?;
    let mut input = input_of(&form)?;
    if !ctx.can(Permission::ContactsViewPhone) {
        // The form had no number input; a typed one would overwrite what is not shown.
        input.phone = None;
    }
    let mut tx = state.store().begin(&ctx).await?;
    match tx.update_contact(id, &input).await {
        Ok(_) => {
            tx.commit().await?;
            Ok(see_other(&format!("/contacts/{id}?ok=saved"), &[]))
        }
        Err(e) => {
            let problems = problems_of(e)?;
            drop(tx);
            let mut tx = state.store().begin_read(&ctx).await?;
            let c = tx.contact_record(id).await?;
            let defs = tx.fields().await?;
            let catalogue = tx.tags().await?;
            tx.commit().await?;
            let mut values = typed_values(&form);
            if c.phone_masked {
                values
                    .values
                    .insert("phone".into(), c.phone.clone().unwrap_or_default());
            }
            let page = PageCtx::new(&state, Some(caller), &headers, NAV_PATH).await;
            let body = contact_body(&page, &c, &defs, &catalogue, &values, &problems, &None);
            Ok(unprocessable(page.render(&display_name(&c), body)))
        }
    }
}

fn consent_label(s: Option<ConsentState>) -> &'static str {
    match s {
        Some(ConsentState::OptIn) => "opted in",
        Some(ConsentState::OptOut) => "opted out",
        None => "unknown",
    }
}

fn consent_section(page: &PageCtx, c: &ContactRecord, v: &ConsentView) -> Markup {
    html! {
        h2 { "Marketing consent" }
        p { "Now: " strong data-testid="consent-state" { (consent_label(v.state)) } }
        @if !v.events.is_empty() {
            table data-testid="consent-ledger" {
                thead { tr { th { "When" } th { "Choice" } th { "Source" } th { "Evidence" } } }
                tbody {
                    @for e in &v.events {
                        tr {
                            td { (when(e.created_at)) }
                            td { (consent_label(Some(e.state))) }
                            td { (e.source.as_str()) }
                            td { (e.evidence) }
                        }
                    }
                }
            }
        }
        @if page.can(Permission::ContactsWrite) {
            form method="post" action={ "/contacts/" (c.id) "/consent" } data-testid="consent-form" {
                (page.csrf_field())
                label { "Choice"
                    select name="state" {
                        option value="opt_in" { "Opted in" }
                        option value="opt_out" { "Opted out" }
                    }
                }
                label { "How we know"
                    select name="source" {
                        option value="agent" { "Told an agent" }
                        option value="form" { "Filled in a form" }
                    }
                }
                label { "Evidence" input type="text" name="evidence" required maxlength="1000" placeholder="Phone call on 3 May, ticket 1234"; }
                button type="submit" { "Record" }
            }
        }
    }
}

#[derive(Deserialize)]
struct ConsentForm {
    state: ConsentState,
    source: ConsentSource,
    evidence: String,
}

async fn contact_consent(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
    PageForm(form): PageForm<ConsentForm>,
) -> Result<Response, PageError> {
    let id = contact_id(&id)?;
    let body = ConsentBody {
        state: form.state,
        source: form.source,
        evidence: form.evidence,
    };
    check_consent_body(&body)?;
    let mut tx = state.store().begin(&ctx).await?;
    tx.record_consent(id, body.state, body.source, &body.evidence)
        .await?;
    tx.commit().await?;
    Ok(see_other(&format!("/contacts/{id}?ok=consent"), &[]))
}

async fn contact_erase(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let id = contact_id(&id)?;
    let r = crate::api::contacts::request_erasure(&state, &ctx, id).await?;
    let ok = if r.state == "pending" {
        "erasure_requested"
    } else {
        "erased"
    };
    Ok(see_other(&format!("/contacts/{id}?ok={ok}"), &[]))
}

async fn contact_erasure_cancel(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path((contact, request)): Path<(String, String)>,
) -> Result<Response, PageError> {
    let contact = contact_id(&contact)?;
    let request = frontdesk_domain::ErasureRequestId::parse(&request)
        .map_err(|_| PageError(ApiError::NotFound))?;
    let mut tx = state.store().begin(&ctx).await?;
    if tx.erasure_request(request).await?.contact_id != contact {
        return Err(PageError(ApiError::NotFound));
    }
    tx.cancel_erasure(request).await?;
    tx.commit().await?;
    Ok(see_other(
        &format!("/contacts/{contact}?ok=erasure_cancelled"),
        &[],
    ))
}

#[derive(Deserialize)]
struct TagForm {
    tag_id: String,
    action: String,
}

async fn contact_tags(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
    PageForm(form): PageForm<TagForm>,
) -> Result<Response, PageError> {
    let id = contact_id(&id)?;
    let tag = TagId::parse(&form.tag_id).map_err(|_| PageError(ApiError::NotFound))?;
    let on = match form.action.as_str() {
        "add" => true,
        "remove" => false,
        _ => {
            return Err(PageError(ApiError::bad_request(
                "invalid_form",
                "action is add or remove",
            )));
        }
    };
    let mut tx = state.store().begin(&ctx).await?;
    tx.set_contact_tag(id, tag, on).await?;
    tx.commit().await?;
    Ok(see_other(&format!("/contacts/{id}?ok=tagged"), &[]).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_form_becomes_the_store_input_with_custom_fields() {
        let form: BTreeMap<String, String> = [
            ("_csrf", "t"),
            ("name", "Asha"),
            ("email", ""),
            ("f.city", "Pune"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let Ok(input) = input_of(&form) else {
            panic!("the form is refused")
        };
        assert_eq!(input.name.as_deref(), Some("Asha"));
        assert_eq!(input.email.as_deref(), Some(""), "an emptied input clears");
        assert_eq!(input.phone, None, "no input, no change");
        assert_eq!(input.fields["city"], serde_json::json!("Pune"));
    }
}
