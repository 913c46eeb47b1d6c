//! A person's own pages: profile, password, two-factor sign-in, sessions, organisations.

use super::{PageCtx, PageError, PageForm, see_other, when};
use crate::AppState;
use crate::api::account as api;
use crate::auth::{Access, Authed, ClientIp, Me, totp};
use crate::error::ApiError;
use crate::routes::RouteTableBuilder;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use axum::routing::{get, post};
use frontdesk_domain::{OrgId, SessionId};
use maud::{PreEscaped, html};
use secrecy::SecretString;
use serde::Deserialize;

pub(crate) fn routes(b: RouteTableBuilder) -> RouteTableBuilder {
    b.page(
        Method::GET,
        "/settings/profile",
        get(profile_page),
        Access::Signed,
    )
    .page(
        Method::POST,
        "/settings/profile",
        post(profile_submit),
        Access::Signed,
    )
    .page(
        Method::GET,
        "/settings/password",
        get(password_page),
        Access::Signed,
    )
    .page(
        Method::POST,
        "/settings/password",
        post(password_submit),
        Access::Signed,
    )
    .page(
        Method::GET,
        "/settings/security",
        get(security_page),
        Access::Signed,
    )
    .page(
        Method::POST,
        "/settings/security/totp/setup",
        post(totp_setup),
        Access::Signed,
    )
    .page(
        Method::POST,
        "/settings/security/totp/enable",
        post(totp_enable),
        Access::Signed,
    )
    .page(
        Method::POST,
        "/settings/security/totp/disable",
        post(totp_disable),
        Access::Signed,
    )
    .page(
        Method::GET,
        "/settings/sessions",
        get(sessions_page),
        Access::Signed,
    )
    .page(
        Method::POST,
        "/settings/sessions/{session_id}/revoke",
        post(session_revoke),
        Access::Signed,
    )
    .page(
        Method::POST,
        "/settings/sessions/revoke-others",
        post(sessions_revoke_others),
        Access::Signed,
    )
    .page(Method::GET, "/orgs", get(orgs_page), Access::Signed)
    .page(Method::POST, "/orgs", post(org_create), Access::Signed)
    .page(
        Method::POST,
        "/orgs/switch",
        post(org_switch),
        Access::Signed,
    )
}

#[derive(Deserialize, Default)]
struct Notice {
    ok: Option<String>,
    /// Why the last form on the page was refused (a code, so a link cannot put words on
    /// the page).
    error: Option<String>,
}

fn notice_text(code: Option<&str>) -> Option<&'static str> {
    match code? {
        "saved" => Some("Saved."),
        "password_changed" => {
            Some("Your password is changed. Your other sessions were signed out.")
        }
        "totp_enabled" => Some("Two-factor sign-in is on."),
        "totp_disabled" => Some("Two-factor sign-in is off."),
        "revoked" => Some("The session is signed out."),
        "revoked_others" => Some("Your other sessions are signed out."),
        _ => None,
    }
}

/// The refusals of the two-factor forms that a person fixes by trying again.
fn totp_error_text(code: Option<&str>) -> Option<&'static str> {
    match code? {
        "totp_invalid" => {
            Some("That code is not valid. Check the time on your phone and try again.")
        }
        "wrong_password" => Some("The password is wrong."),
        _ => None,
    }
}

/// Sends a refused two-factor form back to the page with its reason, so the person can
/// try again there; other failures stay error pages.
fn back_to_security(e: ApiError) -> Result<Response, PageError> {
    let code = match &e {
        ApiError::Unprocessable { code, .. } | ApiError::Denied { code, .. } => Some(*code),
        _ => None,
    };
    match code.filter(|c| totp_error_text(Some(c)).is_some()) {
        Some(c) => Ok(see_other(&format!("/settings/security?error={c}"), &[])),
        None => Err(PageError(e)),
    }
}

fn notice(code: &Option<String>) -> maud::Markup {
    html! { @if let Some(n) = notice_text(code.as_deref()) { p.notice role="status" data-testid="notice" { (n) } } }
}

async fn profile_page(
    State(state): State<AppState>,
    Me(user, caller): Me,
    headers: HeaderMap,
    Query(q): Query<Notice>,
) -> Response {
    let page = PageCtx::new(&state, Some(caller), &headers, "/settings/profile").await;
    page.render("Profile", html! {
        (notice(&q.ok))
        form method="post" action="/settings/profile" {
            (page.csrf_field())
            label { "Name" input type="text" name="name" value=(user.name) required maxlength="200"; }
            label { "Email" input type="email" value=(user.email) disabled; }
            button type="submit" { "Save" }
        }
    })
}

#[derive(Deserialize)]
struct NameForm {
    name: String,
}

async fn profile_submit(
    State(state): State<AppState>,
    Me(user, _): Me,
    PageForm(form): PageForm<NameForm>,
) -> Result<Response, PageError> {
    state
        .store()
        .rename_user(user.id, &form.name, state.now())
        .await?;
    Ok(see_other("/settings/profile?ok=saved", &[]))
}

async fn password_page(
    State(state): State<AppState>,
    Me(_, caller): Me,
    headers: HeaderMap,
    Query(q): Query<Notice>,
) -> Response {
    let page = PageCtx::new(&state, Some(caller), &headers, "/settings/password").await;
    page.render("Password", html! {
        (notice(&q.ok))
        form method="post" action="/settings/password" {
            (page.csrf_field())
            label { "Current password" input type="password" name="current_password" autocomplete="current-password" required; }
            label { "New password (at least 12 characters)" input type="password" name="new_password" autocomplete="new-password" required minlength="12" maxlength="128"; }
            p.muted { "Changing your password signs out your other sessions." }
            button type="submit" { "Change password" }
        }
    })
}

#[derive(Deserialize)]
struct PasswordForm {
    current_password: SecretString,
    new_password: SecretString,
}

async fn password_submit(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Me(user, caller): Me,
    PageForm(form): PageForm<PasswordForm>,
) -> Result<Response, PageError> {
    api::confirm_password(&state, &user, form.current_password, ip).await?;
    crate::account::change_password(
        &state,
        &user,
        form.new_password,
        caller.principal.session.as_ref().map(|s| s.id),
    )
    .await?;
    Ok(see_other("/settings/password?ok=password_changed", &[]))
}

async fn security_page(
    State(state): State<AppState>,
    Me(user, caller): Me,
    headers: HeaderMap,
    Query(q): Query<Notice>,
) -> Result<Response, PageError> {
    let required = caller.principal.needs_2fa_setup;
    let pending = match state.store().totp_state(user.id).await? {
        Some(t) if !t.enabled => Some((
            totp::secret_base32(&t.secret),
            totp::otpauth_uri(&t.secret, &user.email),
        )),
        _ => None,
    };
    let page = PageCtx::new(&state, Some(caller), &headers, "/settings/security").await;
    Ok(page.render("Two-factor sign-in", html! {
        (notice(&q.ok))
        @if let Some(e) = totp_error_text(q.error.as_deref()) {
            p.error role="alert" data-testid="totp-error" { (e) }
        }
        @if required {
            p.error role="alert" data-testid="2fa-required" { "Your organisation requires two-factor sign-in. Set it up to continue." }
        }
        @if user.totp_enabled {
            p data-testid="totp-status" { "Two-factor sign-in is " strong { "on" } "." }
            h2 { "Turn it off" }
            form method="post" action="/settings/security/totp/disable" data-confirm="Turn off two-factor sign-in?" {
                (page.csrf_field())
                label { "Password" input type="password" name="password" autocomplete="current-password" required; }
                label { "Current code" input type="text" name="code" inputmode="numeric" autocomplete="one-time-code" required; }
                button.danger type="submit" data-testid="totp-disable" { "Turn off" }
            }
        } @else if let Some((secret, uri)) = pending {
            p data-testid="totp-status" { "Two-factor sign-in is " strong { "being set up" } "." }
            ol {
                li { "Scan this code with an authenticator app (or type the key below)." }
                li { "Enter the 6-digit code it shows." }
            }
            div.qr role="img" aria-label="QR code of the key below, for an authenticator app" { (PreEscaped(totp::qr_svg(&uri))) }
            p { "Key: " code data-testid="totp-secret" { (secret) } }
            form method="post" action="/settings/security/totp/enable" {
                (page.csrf_field())
                label { "Code" input type="text" name="code" inputmode="numeric" autocomplete="one-time-code" required autofocus; }
                button type="submit" data-testid="totp-enable" { "Turn on" }
            }
        } @else {
            p data-testid="totp-status" { "Two-factor sign-in is " strong { "off" } "." }
            p { "With it on, signing in also needs a code from an app on your phone." }
            form method="post" action="/settings/security/totp/setup" {
                (page.csrf_field())
                button type="submit" data-testid="totp-setup" { "Set up two-factor sign-in" }
            }
        }
    }))
}

async fn totp_setup(State(state): State<AppState>, Me(user, _): Me) -> Result<Response, PageError> {
    let secret = totp::new_secret();
    state
        .store()
        .set_pending_totp(user.id, &secret, state.now())
        .await?;
    Ok(see_other("/settings/security", &[]))
}

#[derive(Deserialize)]
struct CodeForm {
    code: String,
}

async fn totp_enable(
    State(state): State<AppState>,
    Me(user, _): Me,
    PageForm(form): PageForm<CodeForm>,
) -> Result<Response, PageError> {
    match api::enable_totp(&state, &user, &form.code).await {
        Ok(()) => Ok(see_other("/settings/security?ok=totp_enabled", &[])),
        Err(e) => back_to_security(e),
    }
}

#[derive(Deserialize)]
struct DisableForm {
    password: SecretString,
    code: String,
}

async fn totp_disable(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Me(user, _): Me,
    PageForm(form): PageForm<DisableForm>,
) -> Result<Response, PageError> {
    match api::disable_totp(&state, &user, form.password, &form.code, ip).await {
        Ok(()) => Ok(see_other("/settings/security?ok=totp_disabled", &[])),
        Err(e) => back_to_security(e),
    }
}

async fn sessions_page(
    State(state): State<AppState>,
    Me(user, caller): Me,
    headers: HeaderMap,
    Query(q): Query<Notice>,
) -> Result<Response, PageError> {
    let current = caller.principal.session.as_ref().map(|s| s.id);
    let sessions = state.store().list_sessions(user.id, state.now()).await?;
    let page = PageCtx::new(&state, Some(caller), &headers, "/settings/sessions").await;
    Ok(page.render("Sessions", html! {
        (notice(&q.ok))
        table data-testid="sessions" {
            thead { tr { th { "Device" } th { "Address" } th { "Signed in" } th { "Last seen" } th {} } }
            tbody {
                @for s in &sessions {
                    tr data-session-id=(s.id) {
                        td { (s.user_agent.as_deref().unwrap_or(if s.kind == frontdesk_store::SessionKind::Api { "API client" } else { "Browser" })) }
                        td { (s.ip.as_deref().unwrap_or("")) }
                        td { (when(s.created_at)) }
                        td { (when(s.last_seen_at)) }
                        td {
                            @if Some(s.id) == current {
                                span.badge { "This session" }
                            } @else {
                                form.inline method="post" action={ "/settings/sessions/" (s.id) "/revoke" } {
                                    (page.csrf_field())
                                    button.danger type="submit" data-testid="revoke-session" { "Sign out" }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if sessions.len() > 1 {
            form method="post" action="/settings/sessions/revoke-others" data-confirm="Sign out every other session?" {
                (page.csrf_field())
                button.danger type="submit" { "Sign out all other sessions" }
            }
        }
    }))
}

async fn session_revoke(
    State(state): State<AppState>,
    Me(user, _): Me,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let id = SessionId::parse(&id).map_err(|_| ApiError::NotFound)?;
    if !crate::account::end_session(
        &state,
        user.id,
        id,
        "revoked_by_user",
        "auth.session_revoked",
    )
    .await?
    {
        return Err(PageError(ApiError::NotFound));
    }
    Ok(see_other("/settings/sessions?ok=revoked", &[]))
}

async fn sessions_revoke_others(
    State(state): State<AppState>,
    Me(user, caller): Me,
) -> Result<Response, PageError> {
    let keep = caller.principal.session.as_ref().map(|s| s.id);
    crate::account::end_other_sessions(&state, user.id, keep).await?;
    Ok(see_other("/settings/sessions?ok=revoked_others", &[]))
}

async fn orgs_page(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Me(user, _): Me,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let orgs = state.store().memberships_of(user.id).await?;
    let active = caller.principal.ctx.as_ref().map(|c| c.org_id());
    let page = PageCtx::new(&state, Some(caller), &headers, "/orgs").await;
    Ok(page.render("Organisations", html! {
        @if orgs.is_empty() {
            p { "You do not belong to any organisation yet. Create one, or ask an admin to invite you." }
        }
        ul.orgs {
            @for o in &orgs {
                li {
                    (o.name)
                    @if Some(o.org_id) == active {
                        " " span.badge { "current" }
                    } @else {
                        form.inline method="post" action="/orgs/switch" {
                            (page.csrf_field())
                            input type="hidden" name="org_id" value=(o.org_id);
                            button type="submit" { "Switch" }
                        }
                    }
                }
            }
        }
        h2 { "New organisation" }
        form method="post" action="/orgs" {
            (page.csrf_field())
            label { "Name" input type="text" name="name" required maxlength="200"; }
            button type="submit" { "Create" }
        }
    }))
}

async fn org_create(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Me(user, _): Me,
    PageForm(form): PageForm<NameForm>,
) -> Result<Response, PageError> {
    let (org, _) = state
        .store()
        .create_org_for_user(user.id, &form.name, state.now())
        .await?;
    if let Some(s) = &caller.principal.session {
        state.store().switch_org(user.id, s.id, org.id).await?;
    }
    Ok(see_other("/", &[]))
}

#[derive(Deserialize)]
struct SwitchForm {
    org_id: String,
}

async fn org_switch(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Me(user, _): Me,
    PageForm(form): PageForm<SwitchForm>,
) -> Result<Response, PageError> {
    let org = OrgId::parse(&form.org_id).map_err(|_| ApiError::NotFound)?;
    let session = caller
        .principal
        .session
        .as_ref()
        .ok_or(ApiError::Forbidden)?;
    state.store().switch_org(user.id, session.id, org).await?;
    Ok(see_other("/", &[]))
}
