//! Template pages: the list (status, rejection reason, quality, clicks; filters; sync per
//! number) and the editor, a form with a live preview of the message as a phone shows it
//! (app.js redraws it as one types). A refused form comes back with each error beside its
//! field and nothing typed lost. The pages call the same functions as the API.
//! Carousel templates are shown, and written through the API only.

use super::{PageCtx, PageError, see_other, when};
use crate::AppState;
use crate::api::templates::{self as tapi, TemplateQuery};
use crate::auth::{Access, Authed, Tenant};
use crate::error::ApiError;
use crate::routes::RouteTableBuilder;
use axum::extract::{Path, Query, RawForm, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use frontdesk_domain::template::{
    BodyInput, ButtonInput, FieldError, HeaderInput, TemplateInput, TemplateSpec,
};
use frontdesk_domain::{ChannelId, Permission, TemplateId};
use frontdesk_store::{ChannelView, Provider, TemplateRecord};
use maud::{Markup, html};
use serde::Deserialize;

const NAV_PATH: &str = "/templates";
/// Button rows the editor shows at most (WhatsApp's limit).
const MAX_BUTTON_ROWS: usize = 10;
/// Fields an editor form may carry.
const MAX_FORM_FIELDS: usize = 120;

pub(crate) fn routes(b: RouteTableBuilder) -> RouteTableBuilder {
    use Permission::TemplatesManage;
    let p = Access::Perm(TemplatesManage);
    b.page(Method::GET, "/templates", get(list_page), p)
        .page(Method::GET, "/templates/new", get(new_page), p)
        .page(Method::POST, "/templates", post(create), p)
        .page(Method::GET, "/templates/{template_id}", get(edit_page), p)
        .page(Method::POST, "/templates/{template_id}", post(update), p)
        .page(
            Method::POST,
            "/templates/{template_id}/submit",
            post(submit),
            p,
        )
        .page(
            Method::POST,
            "/templates/{template_id}/delete",
            post(delete),
            p,
        )
        .page(Method::POST, "/templates/sync", post(sync), p)
}

fn template_id(s: &str) -> Result<TemplateId, PageError> {
    TemplateId::parse(s).map_err(|_| PageError(ApiError::NotFound))
}

#[derive(Deserialize, Default)]
struct ListQuery {
    status: Option<String>,
    category: Option<String>,
    language: Option<String>,
    channel_id: Option<String>,
    ok: Option<String>,
}

fn notice(ok: Option<&str>) -> Markup {
    let text = match ok {
        Some("created") => Some("Draft saved. Submit it for review when it is ready."),
        Some("saved") => Some("Saved."),
        Some("submitted") => {
            Some("Submitted for review: WhatsApp answers within minutes (the simulator at once).")
        }
        Some("resubmitted") => Some("Saved and submitted again for review."),
        Some("deleted") => Some("Template deleted."),
        Some("synced") => Some("Templates synced from WhatsApp."),
        _ => None,
    };
    html! { @if let Some(t) = text { p.notice role="status" data-testid="notice" { (t) } } }
}

fn status_badge(t: &TemplateRecord) -> Markup {
    let class = match t.status.as_str() {
        "APPROVED" => "badge ok",
        "REJECTED" | "DISABLED" | "PAUSED" => "badge bad",
        _ => "badge",
    };
    html! { span class=(class) data-testid="template-status" { (t.status) } }
}

async fn cloud_channels(
    state: &AppState,
    ctx: &frontdesk_store::TenantCtx,
) -> Result<Vec<ChannelView>, PageError> {
    Ok(state
        .store()
        .list_channels(ctx)
        .await?
        .into_iter()
        .filter(|c| c.provider == Provider::Cloud)
        .collect())
}

async fn list_page(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Tenant(ctx): Tenant,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Result<Response, PageError> {
    let filter = TemplateQuery {
        status: q.status.clone(),
        category: q.category.clone(),
        language: q.language.clone(),
        channel_id: q.channel_id.clone(),
    }
    .to_filter()?;
    let mut tx = state.store().begin_read(&ctx).await?;
    let list = tx.templates(&filter).await?;
    tx.commit().await?;
    let channels = cloud_channels(&state, &ctx).await?;
    let page = PageCtx::new(&state, Some(caller), &headers, NAV_PATH).await;
    let sel =
        |v: &Option<String>, want: &str| v.as_deref().is_some_and(|x| x.eq_ignore_ascii_case(want));
    Ok(page.render("Message templates", html! {
        (notice(q.ok.as_deref()))
        p { a href="/templates/new" data-testid="new-template" { "New template" } }
        form.filters method="get" action="/templates" {
            label { "Status" select name="status" {
                option value="" { "any" }
                @for s in ["DRAFT", "PENDING", "APPROVED", "REJECTED", "PAUSED", "DISABLED"] { option value=(s) selected[sel(&q.status, s)] { (s) } }
            } }
            label { "Category" select name="category" {
                option value="" { "any" }
                @for s in ["MARKETING", "UTILITY", "AUTHENTICATION"] { option value=(s) selected[sel(&q.category, s)] { (s) } }
            } }
            label { "Language" input type="text" name="language" maxlength="15" value=[q.language.as_deref()]; }
            label { "Number" select name="channel_id" {
                option value="" { "any" }
                @for c in &channels { option value=(c.id) selected[q.channel_id.as_deref() == Some(&c.id.to_string())] { (c.name) } }
            } }
            button type="submit" { "Filter" }
        }
        @if list.is_empty() {
            p.muted data-testid="no-templates" { "No template here yet." }
        } @else {
            table data-testid="templates" {
                thead { tr { th { "Name" } th { "Language" } th { "Category" } th { "Status" } th { "Quality" } th { "Clicks" } th title="Recipients who clicked, each once" { "People" } th { "Updated" } } }
                tbody {
                    @for t in &list {
                        tr data-template-id=(t.id) data-name=(t.name) {
                            td { a href={ "/templates/" (t.id) } data-testid="template-link" { (t.name) } }
                            td { (t.language) }
                            td { (t.category.as_deref().unwrap_or("")) }
                            td { (status_badge(t)) @if let Some(r) = &t.reason { br; span.muted data-testid="template-reason" { (r) } } }
                            td data-testid="template-quality" { (t.quality.as_deref().unwrap_or("—")) }
                            td data-testid="template-clicks" { (t.clicks) }
                            td data-testid="template-unique-clicks" { (t.unique_clicks) }
                            td { (when(t.updated_at)) }
                        }
                    }
                }
            }
        }
        h2 { "Templates made in Meta's manager" }
        p.muted { "Pull a number's templates from WhatsApp: new ones appear here, known ones take WhatsApp's status, category and quality." }
        @for c in &channels {
            form.inline method="post" action="/templates/sync" {
                (page.csrf_field())
                input type="hidden" name="channel_id" value=(c.id);
                button type="submit" data-testid="sync-templates" { "Sync " (c.name) }
            }
        }
    }))
}

/// The editor's form, with the errors beside their fields.
struct Editor<'a> {
    action: String,
    input: &'a TemplateInput,
    channel: Option<ChannelId>,
    channels: &'a [ChannelView],
    errors: &'a [FieldError],
    /// Name and language can change (a draft).
    identity_open: bool,
    save_label: &'static str,
}

fn field_error(errors: &[FieldError], field: &str) -> Markup {
    html! {
        @for e in errors.iter().filter(|e| e.field == field || e.field.starts_with(&format!("{field}[")) || e.field.starts_with(&format!("{field}."))) {
            span.field-error data-testid="field-error" data-field=(e.field) { (e.message) }
        }
    }
}

fn editor(page: &PageCtx, e: &Editor<'_>) -> Markup {
    let i = e.input;
    let header_format = i.header.as_ref().map_or("none", |h| h.format.as_str());
    let mut rows: Vec<Option<&ButtonInput>> = i.buttons.iter().map(Some).collect();
    let blank = (i.buttons.len() + 2).clamp(3, MAX_BUTTON_ROWS);
    rows.resize(blank.max(rows.len()).min(MAX_BUTTON_ROWS), None);
    let preview = TemplateSpec::parse(i)
        .map(|s| s.preview())
        .unwrap_or_default();
    let errs = e.errors;
    html! {
        @if !errs.is_empty() {
            p.error role="alert" data-testid="form-errors" { "The template breaks " (errs.len()) " of WhatsApp's rules; see the fields below." }
        }
        div.template-editor {
            form method="post" action=(e.action) data-testid="template-form" id="template-form" {
                (page.csrf_field())
                label { "WhatsApp number"
                    select name="channel_id" required disabled[!e.identity_open] {
                        @for c in e.channels {
                            option value=(c.id) selected[e.channel == Some(c.id)] { (c.name) " (" (c.display_number) ")" }
                        }
                    }
                }
                label { "Name (lower-case letters, digits, underscores)"
                    input type="text" name="name" required maxlength="512" value=(i.name) readonly[!e.identity_open] data-testid="tpl-name";
                    (field_error(errs, "name"))
                }
                label { "Language (e.g. en_US)"
                    input type="text" name="language" required maxlength="15" value=(i.language) readonly[!e.identity_open] data-testid="tpl-language";
                    (field_error(errs, "language"))
                }
                label { "Category"
                    select name="category" data-testid="tpl-category" {
                        @for c in ["UTILITY", "MARKETING", "AUTHENTICATION"] { option value=(c) selected[i.category.eq_ignore_ascii_case(c)] { (c) } }
                    }
                    (field_error(errs, "category"))
                }
                fieldset {
                    legend { "Header" }
                    label { "Kind"
                        select name="header_format" data-testid="tpl-header-format" {
                            @for (v, l) in [("none", "none"), ("text", "text"), ("image", "image"), ("video", "video"), ("document", "document"), ("location", "location (place given per send)")] {
                                option value=(v) selected[header_format.eq_ignore_ascii_case(v)] { (l) }
                            }
                        }
                    }
                    label { "Text (at most 60 characters, one variable)"
                        input type="text" name="header_text" maxlength="200" value=(i.header.as_ref().and_then(|h| h.text.as_deref()).unwrap_or("")) data-testid="tpl-header-text";
                        (field_error(errs, "header.text"))
                    }
                    label { "Example (the variable's value, or a media header's upload handle)"
                        input type="text" name="header_example" maxlength="2000" value=(i.header.as_ref().and_then(|h| h.example.as_deref()).unwrap_or("")) data-testid="tpl-header-example";
                        (field_error(errs, "header.example"))
                        (field_error(errs, "header.format"))
                    }
                    (sample_field(i.header.as_ref(), header_format, errs))
                }
                label { "Body (at most 1024 characters; variables {{1}}, {{2}}… or {{first_name}}; empty for a one-time-password template)"
                    textarea name="body_text" rows="5" maxlength="2000" data-testid="tpl-body" { (i.body.text) }
                    (field_error(errs, "body.text"))
                }
                label { "Examples, one per line, in the order of the variables"
                    textarea name="body_examples" rows="3" maxlength="3000" data-testid="tpl-examples" { (i.body.examples.join("\n")) }
                    (field_error(errs, "body.examples"))
                }
                label { "Footer (at most 60 characters)"
                    input type="text" name="footer" maxlength="200" value=(i.footer.as_deref().unwrap_or("")) data-testid="tpl-footer";
                    (field_error(errs, "footer"))
                }
                fieldset data-testid="tpl-buttons" {
                    legend { "Buttons (at most 10: quick replies together; at most 2 links, 1 phone, 1 copy code)" }
                    (field_error(errs, "buttons"))
                    @for (n, b) in rows.iter().enumerate() {
                        @let kind = b.map_or("none", |b| b.kind.as_str());
                        div.button-row data-row=(n) {
                            select name={ "button_" (n) "_type" } data-testid={ "tpl-button-type-" (n) } {
                                @for (v, l) in [("none", "—"), ("quick_reply", "quick reply"), ("url", "link"), ("phone_number", "phone"), ("copy_code", "copy code")] {
                                    option value=(v) selected[kind == v] { (l) }
                                }
                            }
                            input type="text" name={ "button_" (n) "_text" } maxlength="60" placeholder="Label" value=(b.and_then(|b| b.text.as_deref()).unwrap_or("")) data-testid={ "tpl-button-text-" (n) };
                            input type="text" name={ "button_" (n) "_url" } maxlength="2000" placeholder="https://… (may end in {{1}})" value=(b.and_then(|b| b.url.as_deref()).unwrap_or("")) data-testid={ "tpl-button-url-" (n) };
                            label.check { input type="checkbox" name={ "button_" (n) "_track" } value="1" checked[b.is_some_and(|b| b.track)]; "count clicks" }
                            input type="text" name={ "button_" (n) "_phone" } maxlength="20" placeholder="+14155550123" value=(b.and_then(|b| b.phone_number.as_deref()).unwrap_or(""));
                            input type="text" name={ "button_" (n) "_example" } maxlength="2000" placeholder="Example (full URL, or a code)" value=(b.and_then(|b| b.example.as_deref()).unwrap_or(""));
                        }
                    }
                }
                @let otp = i.otp.as_ref();
                @let app = otp.and_then(|o| o.supported_apps.first());
                fieldset data-testid="tpl-otp" {
                    legend { "One-time password (authentication only: WhatsApp writes the body; no header, footer or other buttons)" }
                    (field_error(errs, "otp"))
                    label { "Button"
                        select name="otp_type" data-testid="tpl-otp-type" {
                            @for (v, l) in [("none", "none (an ordinary template)"), ("copy_code", "copy code"), ("one_tap", "one-tap autofill"), ("zero_tap", "zero-tap")] {
                                option value=(v) selected[otp.map_or("none", |o| o.otp_type.as_str()) == v] { (l) }
                            }
                        }
                        (field_error(errs, "otp.otp_type"))
                    }
                    label { "Button label (optional)" input type="text" name="otp_button_text" maxlength="60" value=(otp.and_then(|o| o.button_text.as_deref()).unwrap_or("")); (field_error(errs, "otp.button_text")) }
                    label { "Autofill label (one-tap, zero-tap)" input type="text" name="otp_autofill_text" maxlength="60" value=(otp.and_then(|o| o.autofill_text.as_deref()).unwrap_or("")); (field_error(errs, "otp.autofill_text")) }
                    label { "Android package (one-tap, zero-tap)" input type="text" name="otp_package_name" maxlength="224" placeholder="com.example.app" value=(app.map_or("", |a| a.package_name.as_str())) data-testid="tpl-otp-package"; (field_error(errs, "otp.supported_apps")) }
                    label { "App signing key hash (11 characters)" input type="text" name="otp_signature_hash" maxlength="20" value=(app.map_or("", |a| a.signature_hash.as_str())); }
                    label.check { input type="checkbox" name="otp_zero_tap_terms_accepted" value="1" checked[otp.is_some_and(|o| o.zero_tap_terms_accepted)]; "Zero-tap terms accepted" }
                    (field_error(errs, "otp.zero_tap_terms_accepted"))
                    label.check { input type="checkbox" name="otp_add_security_recommendation" value="1" checked[otp.is_some_and(|o| o.add_security_recommendation)]; "Add \"For your security, do not share this code.\"" }
                    label { "Code expires after (minutes, 1–90; optional)" input type="number" name="otp_code_expiration_minutes" min="1" max="90" value=(otp.and_then(|o| o.code_expiration_minutes).map(|m| m.to_string()).unwrap_or_default()); (field_error(errs, "otp.code_expiration_minutes")) }
                }
                button type="submit" data-testid="template-save" { (e.save_label) }
            }
            aside.phone-preview {
                h3 { "Preview" }
                div.bubble id="template-preview" data-testid="template-preview" { (preview) }
            }
        }
    }
}

/// The media header's sample: a file input (app.js uploads the chosen file to `POST
/// /api/v1/templates/samples` and puts its id in `header_sample`), the types and size the
/// header kind takes, and the current sample shown.
fn sample_field(header: Option<&HeaderInput>, format: &str, errs: &[FieldError]) -> Markup {
    use frontdesk_domain::template::{MediaKind, sample_rule};
    let sample = header.and_then(|h| h.sample.as_deref()).unwrap_or("");
    let rules: Vec<(&str, String, usize)> =
        [MediaKind::Image, MediaKind::Video, MediaKind::Document]
            .into_iter()
            .map(|k| {
                let (types, max) = sample_rule(k);
                (k.as_str(), types.join(","), max)
            })
            .collect();
    let accept = rules
        .iter()
        .find(|(k, _, _)| format.eq_ignore_ascii_case(k))
        .map_or("image/jpeg,image/png", |(_, t, _)| t.as_str());
    html! {
        div.sample-field id="tpl-sample" data-testid="tpl-sample"
            data-image-types=(rules[0].1) data-image-max=(rules[0].2)
            data-video-types=(rules[1].1) data-video-max=(rules[1].2)
            data-document-types=(rules[2].1) data-document-max=(rules[2].2) {
            label { "Sample file (image: JPEG or PNG up to 5 MiB; video: MP4 up to 16 MiB; document: PDF up to 16 MiB). WhatsApp reviews it."
                input type="file" name="header_sample_file" accept=(accept) data-testid="tpl-header-sample-file";
            }
            input type="hidden" name="header_sample" value=(sample) data-testid="tpl-header-sample";
            span.muted data-testid="tpl-sample-status" { @if !sample.is_empty() { "A sample file is attached." } }
            @if !sample.is_empty() && format.eq_ignore_ascii_case("image") {
                img.sample-preview src={ "/api/v1/media/" (sample) } alt="The header's sample" data-testid="tpl-sample-preview";
            } @else if !sample.is_empty() {
                a href={ "/api/v1/media/" (sample) } data-testid="tpl-sample-link" { "The sample file" }
            }
            (field_error(errs, "header.sample"))
        }
    }
}

/// The one-time-password part of the editor form.
fn otp_input(
    one: &dyn Fn(&str) -> String,
    opt: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<frontdesk_domain::template::OtpInput>, PageError> {
    use frontdesk_domain::template::{OtpApp, OtpInput};
    let kind = one("otp_type");
    if kind.is_empty() || kind == "none" {
        return Ok(None);
    }
    let minutes = match opt("otp_code_expiration_minutes") {
        None => None,
        Some(m) => Some(m.parse::<u32>().map_err(|_| {
            PageError(ApiError::unprocessable(
                "invalid",
                "otp.code_expiration_minutes: a whole number of minutes",
            ))
        })?),
    };
    let (pkg, hash) = (opt("otp_package_name"), opt("otp_signature_hash"));
    Ok(Some(OtpInput {
        otp_type: kind,
        button_text: opt("otp_button_text"),
        autofill_text: opt("otp_autofill_text"),
        supported_apps: if pkg.is_some() || hash.is_some() {
            vec![OtpApp {
                package_name: pkg.unwrap_or_default(),
                signature_hash: hash.unwrap_or_default(),
            }]
        } else {
            Vec::new()
        },
        zero_tap_terms_accepted: opt("otp_zero_tap_terms_accepted").is_some(),
        add_security_recommendation: opt("otp_add_security_recommendation").is_some(),
        code_expiration_minutes: minutes,
    }))
}

/// The editor form as a written template; a text that is not one comes back as errors.
fn form_input(raw: &[u8]) -> Result<(Option<ChannelId>, TemplateInput), PageError> {
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(raw).into_owned().collect();
    if pairs.len() > MAX_FORM_FIELDS {
        return Err(PageError(ApiError::unprocessable(
            "invalid",
            "the form has too many fields",
        )));
    }
    let one = |k: &str| {
        pairs
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_default()
    };
    let opt = |k: &str| Some(one(k)).filter(|v| !v.is_empty());
    let header = match one("header_format").as_str() {
        "" | "none" => None,
        f => {
            let media = matches!(f, "image" | "video" | "document");
            // An uploaded sample file stands for a media header's example.
            let sample = opt("header_sample").filter(|_| media);
            Some(HeaderInput {
                format: f.to_owned(),
                text: opt("header_text").filter(|_| f == "text"),
                // A location header has no sample: the place comes with each send.
                example: opt("header_example").filter(|_| f != "location" && sample.is_none()),
                sample,
            })
        }
    };
    let mut buttons = Vec::new();
    for n in 0..MAX_BUTTON_ROWS {
        let kind = one(&format!("button_{n}_type"));
        if kind.is_empty() || kind == "none" {
            continue;
        }
        let f = |s: &str| opt(&format!("button_{n}_{s}"));
        buttons.push(ButtonInput {
            text: f("text").filter(|_| kind != "copy_code"),
            url: f("url").filter(|_| kind == "url"),
            track: kind == "url" && f("track").is_some(),
            phone_number: f("phone").filter(|_| kind == "phone_number"),
            example: f("example").filter(|_| kind == "url" || kind == "copy_code"),
            kind,
        });
    }
    let body_text = pairs
        .iter()
        .find(|(n, _)| n == "body_text")
        .map(|(_, v)| v.replace("\r\n", "\n").trim().to_owned())
        .unwrap_or_default();
    let input = TemplateInput {
        name: one("name"),
        language: one("language"),
        category: one("category"),
        header,
        body: BodyInput {
            text: body_text,
            examples: one("body_examples")
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect(),
        },
        footer: opt("footer"),
        buttons,
        cards: Vec::new(),
        otp: otp_input(&one, &opt)?,
    };
    let channel = opt("channel_id").and_then(|c| ChannelId::parse(&c).ok());
    Ok((channel, input))
}

async fn new_page(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Tenant(ctx): Tenant,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let channels = cloud_channels(&state, &ctx).await?;
    let page = PageCtx::new(&state, Some(caller), &headers, NAV_PATH).await;
    let input = TemplateInput {
        category: "UTILITY".into(),
        language: "en_US".into(),
        ..Default::default()
    };
    let body = if channels.is_empty() {
        html! { p.muted data-testid="no-channels" { "Templates belong to a Cloud API number. " a href="/settings/channels" { "Connect a number" } " first." } }
    } else {
        editor(
            &page,
            &Editor {
                action: "/templates".into(),
                input: &input,
                channel: channels.first().map(|c| c.id),
                channels: &channels,
                errors: &[],
                identity_open: true,
                save_label: "Save draft",
            },
        )
    };
    Ok(page.render("New template", body))
}

/// The editor again, with the refusal's errors beside the fields (422).
async fn refused(
    state: &AppState,
    caller: crate::auth::Caller,
    ctx: &frontdesk_store::TenantCtx,
    headers: &HeaderMap,
    e: Editor<'_>,
    title: &str,
) -> Result<Response, PageError> {
    let channels = cloud_channels(state, ctx).await?;
    let page = PageCtx::new(state, Some(caller), headers, NAV_PATH).await;
    let e = Editor {
        channels: &channels,
        ..e
    };
    let mut r = page.render(title, editor(&page, &e));
    *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
    Ok(r)
}

/// The template's stored samples that are not its number's files of a fitting type.
async fn sample_problems(
    state: &AppState,
    ctx: &frontdesk_store::TenantCtx,
    channel: ChannelId,
    spec: &TemplateSpec,
) -> Result<Vec<FieldError>, PageError> {
    let mut tx = state.store().begin_read(ctx).await?;
    let problems = tx.template_sample_problems(channel, spec).await?;
    tx.commit().await?;
    Ok(problems)
}

/// A store or API refusal that belongs beside a field, as a field error.
fn as_field_error(e: &ApiError) -> Option<FieldError> {
    let (field, message) = match e {
        ApiError::Conflict {
            code: "template_exists",
            ..
        } => (
            "name",
            "a template with this name exists in this language".to_owned(),
        ),
        ApiError::Conflict {
            code: "template_identity_fixed",
            ..
        } => (
            "name",
            "name and language cannot change once submitted".to_owned(),
        ),
        ApiError::Unprocessable {
            code: "invalid",
            message,
        } => ("channel_id", message.clone()),
        _ => return None,
    };
    Some(FieldError {
        field: field.into(),
        message,
    })
}

async fn create(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Tenant(ctx): Tenant,
    headers: HeaderMap,
    RawForm(raw): RawForm,
) -> Result<Response, PageError> {
    let (channel, input) = form_input(&raw)?;
    let Some(channel) = channel else {
        return Err(PageError(ApiError::unprocessable(
            "invalid",
            "choose a number",
        )));
    };
    let errors = match TemplateSpec::parse(&input) {
        Err(e) => e.0,
        Ok(spec) => match sample_problems(&state, &ctx, channel, &spec).await? {
            problems if !problems.is_empty() => problems,
            _ => match tapi::create(&state, &ctx, channel, &input).await {
                Ok(t) => return Ok(see_other(&format!("/templates/{}?ok=created", t.id), &[])),
                Err(e) => vec![as_field_error(&e).ok_or(PageError(e))?],
            },
        },
    };
    let e = Editor {
        action: "/templates".into(),
        input: &input,
        channel: Some(channel),
        channels: &[],
        errors: &errors,
        identity_open: true,
        save_label: "Save draft",
    };
    refused(&state, caller, &ctx, &headers, e, "New template").await
}

#[derive(Deserialize, Default)]
struct EditQuery {
    ok: Option<String>,
}

async fn edit_page(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Tenant(ctx): Tenant,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<EditQuery>,
) -> Result<Response, PageError> {
    let id = template_id(&id)?;
    let mut tx = state.store().begin_read(&ctx).await?;
    let t = tx.template(id).await?;
    let clicks = tx.link_clicks(Some(id), None).await?;
    tx.commit().await?;
    let channels = cloud_channels(&state, &ctx).await?;
    let page = PageCtx::new(&state, Some(caller), &headers, NAV_PATH).await;
    let title = format!("Template {} ({})", t.name, t.language);
    Ok(page.render(&title, html! {
        (detail(&page, &t, &channels, q.ok.as_deref(), &[], None))
        @if !clicks.is_empty() {
            h2 { "Tracked links sent" }
            table data-testid="template-link-clicks" {
                thead { tr { th { "Message" } th { "Button" } th { "Destination" } th { "Clicks" } th { "Last click" } } }
                tbody {
                    @for l in &clicks {
                        tr {
                            td { code { (l.message_id.map(|m| m.to_string()).unwrap_or_default()) } }
                            td { @if let Some(c) = l.card_index { "card " (c + 1) ", " } "button " (l.button_index + 1) }
                            td { (l.destination) }
                            td data-testid="link-clicks" { (l.clicks) }
                            td { (l.last_clicked_at.map(when).unwrap_or_default()) }
                        }
                    }
                }
            }
        }
    }))
}

fn detail(
    page: &PageCtx,
    t: &TemplateRecord,
    channels: &[ChannelView],
    ok: Option<&str>,
    errors: &[FieldError],
    typed: Option<&TemplateInput>,
) -> Markup {
    let editable =
        ["DRAFT", "REJECTED", "APPROVED"].contains(&t.status.as_str()) && t.channel_id.is_some();
    let submittable = ["DRAFT", "REJECTED"].contains(&t.status.as_str())
        && t.content.is_some()
        && t.channel_id.is_some();
    html! {
        (notice(ok))
        dl.template-facts data-testid="template-facts" data-status=(t.status) {
            dt { "Status" } dd { (status_badge(t)) }
            @if let Some(r) = &t.reason { dt { "Reason" } dd data-testid="template-reason" { (r) } }
            dt { "Category" } dd { (t.category.as_deref().unwrap_or("—")) }
            dt { "Quality" } dd data-testid="template-quality" { (t.quality.as_deref().unwrap_or("not rated yet")) }
            dt { "Clicks on tracked buttons" } dd data-testid="template-clicks" { (t.clicks) }
            dt { "People who clicked" } dd data-testid="template-unique-clicks" { (t.unique_clicks) }
            @if let Some(s) = t.submitted_at { dt { "Submitted" } dd { (when(s)) } }
        }
        @if submittable {
            form.inline method="post" action={ "/templates/" (t.id) "/submit" } {
                (page.csrf_field())
                button type="submit" data-testid="template-submit" { "Submit for review" }
            }
        }
        form.inline method="post" action={ "/templates/" (t.id) "/delete" } data-confirm="Delete this template, here and at WhatsApp? Sends of it stop." {
            (page.csrf_field())
            button.danger type="submit" data-testid="template-delete" { "Delete" }
        }
        @match (&t.content, typed) {
            (_, Some(input)) => (editor(page, &Editor { action: format!("/templates/{}", t.id), input, channel: t.channel_id, channels, errors, identity_open: t.status == "DRAFT", save_label: if t.status == "APPROVED" { "Save and submit again for review" } else { "Save" } })),
            (Some(c), None) if !c.cards.is_empty() => {
                p.muted { "A carousel template: edit it through the API (PUT /api/v1/templates/" (t.id) ")." }
                div.bubble data-testid="template-preview" { (t.spec().map(|s| s.preview()).unwrap_or_default()) }
            }
            (Some(c), None) if editable => (editor(page, &Editor { action: format!("/templates/{}", t.id), input: c, channel: t.channel_id, channels, errors, identity_open: t.status == "DRAFT", save_label: if t.status == "APPROVED" { "Save and submit again for review" } else { "Save" } })),
            (Some(_), None) => {
                p.muted { "Not editable while " (t.status) "." }
                div.bubble data-testid="template-preview" { (t.spec().map(|s| s.preview()).unwrap_or_default()) }
            }
            (None, None) => p.muted { "Its components are not known here: sync the number's templates from the list." },
        }
    }
}

async fn update(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Tenant(ctx): Tenant,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawForm(raw): RawForm,
) -> Result<Response, PageError> {
    let id = template_id(&id)?;
    let (_, mut input) = form_input(&raw)?;
    let mut tx = state.store().begin_read(&ctx).await?;
    let t = tx.template(id).await?;
    tx.commit().await?;
    if t.status != "DRAFT" {
        // Read-only on the form once submitted: the stored identity stands.
        input.name = t.name.clone();
        input.language = t.language.clone();
    }
    let problems = match (TemplateSpec::parse(&input), t.channel_id) {
        (Ok(spec), Some(channel)) => sample_problems(&state, &ctx, channel, &spec).await?,
        _ => Vec::new(),
    };
    let errors = match TemplateSpec::parse(&input) {
        Err(e) => e.0,
        Ok(_) if !problems.is_empty() => problems,
        Ok(_) => match tapi::update(&state, &ctx, id, &input).await {
            Ok(after) => {
                let ok = if after.status == "PENDING" {
                    "resubmitted"
                } else {
                    "saved"
                };
                return Ok(see_other(&format!("/templates/{id}?ok={ok}"), &[]));
            }
            Err(ApiError::BadGateway { message }) => vec![FieldError {
                field: "template".into(),
                message,
            }],
            Err(e) => vec![as_field_error(&e).ok_or(PageError(e))?],
        },
    };
    let channels = cloud_channels(&state, &ctx).await?;
    let page = PageCtx::new(&state, Some(caller), &headers, NAV_PATH).await;
    let title = format!("Template {} ({})", t.name, t.language);
    let mut r = page.render(&title, html! {
        @for e in errors.iter().filter(|e| e.field == "template") { p.error data-testid="provider-error" { (e.message) } }
        (detail(&page, &t, &channels, None, &errors, Some(&input)))
    });
    *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
    Ok(r)
}

async fn submit(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let id = template_id(&id)?;
    tapi::submit(&state, &ctx, id).await?;
    Ok(see_other(&format!("/templates/{id}?ok=submitted"), &[]))
}

async fn delete(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let id = template_id(&id)?;
    tapi::delete_everywhere(&state, &ctx, id, false).await?;
    Ok(see_other("/templates?ok=deleted", &[]))
}

#[derive(Deserialize)]
struct SyncForm {
    channel_id: String,
}

async fn sync(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    super::PageForm(f): super::PageForm<SyncForm>,
) -> Result<Response, PageError> {
    let channel = ChannelId::parse(&f.channel_id).map_err(|_| PageError(ApiError::NotFound))?;
    tapi::sync(&state, &ctx, channel).await?;
    Ok(see_other("/templates?ok=synced", &[]).into_response())
}
