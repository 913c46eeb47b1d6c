//! Sign-in screens: sign-in with password (and second factor), sign-up, sign-out,
//! magic links, password reset, and accepting an invitation.

use super::{PageCtx, PageError, PageForm, bare_page, safe_next, see_other};
use crate::AppState;
use crate::account::{self, PasswordCheck};
use crate::auth::{Access, Authed, ClientIp, MaybeCaller, session_cookie_name, set_cookie};
use crate::error::ApiError;
use crate::routes::RouteTableBuilder;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use frontdesk_domain::Email;
use frontdesk_store::{EmailTokenPurpose, IssuedSession, SessionKind, SignUp, User};
use maud::{Markup, html};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

pub(crate) fn routes(b: RouteTableBuilder) -> RouteTableBuilder {
    b.page(Method::GET, "/login", get(login_page), Access::Public)
        .page(Method::POST, "/login", post(login_submit), Access::Public)
        .page(
            Method::GET,
            "/login/2fa",
            get(second_factor_page),
            Access::Session,
        )
        .page(
            Method::POST,
            "/login/2fa",
            post(second_factor_submit),
            Access::Session,
        )
        .page(Method::POST, "/logout", post(logout), Access::Session)
        .page(Method::GET, "/signup", get(signup_page), Access::Public)
        .page(Method::POST, "/signup", post(signup_submit), Access::Public)
        .page(
            Method::GET,
            "/login/magic",
            get(magic_request_page),
            Access::Public,
        )
        .page(
            Method::POST,
            "/login/magic",
            post(magic_request_submit),
            Access::Public,
        )
        .page(
            Method::GET,
            "/auth/magic",
            get(magic_confirm_page),
            Access::Public,
        )
        .page(
            Method::POST,
            "/auth/magic",
            post(magic_redeem),
            Access::Public,
        )
        .page(
            Method::GET,
            "/password/forgot",
            get(forgot_page),
            Access::Public,
        )
        .page(
            Method::POST,
            "/password/forgot",
            post(forgot_submit),
            Access::Public,
        )
        .page(
            Method::GET,
            "/password/reset",
            get(reset_page),
            Access::Public,
        )
        .page(
            Method::POST,
            "/password/reset",
            post(reset_submit),
            Access::Public,
        )
        .page(
            Method::GET,
            "/invitations/accept",
            get(invitation_page),
            Access::Public,
        )
        .page(
            Method::POST,
            "/invitations/accept",
            post(invitation_submit),
            Access::Public,
        )
}

fn html_response(body: String, cookies: &[HeaderValue]) -> Response {
    html_status(StatusCode::OK, body, cookies)
}

fn html_status(status: StatusCode, body: String, cookies: &[HeaderValue]) -> Response {
    let mut r = (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response();
    for c in cookies {
        r.headers_mut().append(header::SET_COOKIE, c.clone());
    }
    r
}

/// Opens a browser session and sets its cookie (a new id at every sign-in).
async fn start_web_session(
    state: &AppState,
    user: &User,
    mfa_pending: bool,
    ip: Option<std::net::IpAddr>,
    headers: &HeaderMap,
    method: &str,
) -> Result<HeaderValue, ApiError> {
    let org = account::initial_org(state, user.id, None).await?;
    let issued: IssuedSession = account::open_session(
        state,
        user,
        SessionKind::Web,
        org,
        mfa_pending,
        account::Client::new(ip, headers),
        method,
    )
    .await?;
    let token = issued.cookie_token.expect("web sessions have a cookie");
    let secure = state.auth().secure_cookies;
    Ok(set_cookie(
        session_cookie_name(secure),
        token.expose_secret(),
        secure,
        Some(state.auth().web_session_ttl.whole_seconds()),
    ))
}

/// Ends the browser session the request came with, if any (a new sign-in replaces it).
async fn end_current(
    state: &AppState,
    caller: &Option<crate::auth::Caller>,
    reason: &str,
) -> Result<(), ApiError> {
    if let Some(c) = caller
        && let (Some(u), Some(s)) = (&c.principal.user, &c.principal.session)
    {
        state
            .store()
            .revoke_session(u.id, s.id, reason, state.now())
            .await?;
    }
    Ok(())
}

#[derive(Deserialize, Default)]
struct NextQuery {
    next: Option<String>,
    ok: Option<String>,
}

fn notice(code: Option<&str>) -> Option<&'static str> {
    match code? {
        "password_reset" => Some("Your password was changed. Sign in with the new one."),
        "signed_out" => Some("You are signed out."),
        _ => None,
    }
}

fn login_form(
    page: &PageCtx,
    next: &str,
    email: &str,
    error: Option<&str>,
    notice: Option<&str>,
) -> Markup {
    html! {
        @if let Some(n) = notice { p.notice role="status" data-testid="notice" { (n) } }
        @if let Some(e) = error { p.error role="alert" data-testid="login-error" { (e) } }
        form method="post" action="/login" {
            (page.csrf_field())
            input type="hidden" name="next" value=(next);
            label { "Email" input type="email" name="email" value=(email) autocomplete="username" required autofocus; }
            label { "Password" input type="password" name="password" autocomplete="current-password" required; }
            button type="submit" data-testid="login-submit" { "Sign in" }
        }
        p.muted {
            a href="/login/magic" { "Email me a sign-in link" } " · "
            a href="/password/forgot" { "Forgot your password?" } " · "
            a href="/signup" { "Create an organisation" }
        }
    }
}

async fn login_page(
    State(state): State<AppState>,
    MaybeCaller(caller): MaybeCaller,
    headers: HeaderMap,
    Query(q): Query<NextQuery>,
) -> Response {
    let next = safe_next(q.next.as_deref());
    if caller
        .as_ref()
        .is_some_and(|c| c.principal.session.as_ref().is_some_and(|s| !s.mfa_pending))
    {
        return see_other(&next, &[]);
    }
    let page = PageCtx::new(&state, None, &headers, "/login").await;
    let cookies: Vec<HeaderValue> = page.set_cookie.iter().cloned().collect();
    html_response(
        bare_page(
            "Sign in",
            login_form(&page, &next, "", None, notice(q.ok.as_deref())),
        ),
        &cookies,
    )
}

#[derive(Deserialize)]
struct LoginForm {
    email: String,
    password: SecretString,
    next: Option<String>,
}

async fn login_submit(
    State(state): State<AppState>,
    MaybeCaller(caller): MaybeCaller,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    PageForm(form): PageForm<LoginForm>,
) -> Result<Response, PageError> {
    let next = safe_next(form.next.as_deref());
    let user = match account::check_password(&state, &form.email, form.password, ip).await? {
        PasswordCheck::Ok(u) => u,
        PasswordCheck::Refused => {
            let page = PageCtx::new(&state, None, &headers, "/login").await;
            let body = login_form(
                &page,
                &next,
                &form.email,
                Some("Wrong email or password."),
                None,
            );
            return Ok(html_status(
                StatusCode::UNAUTHORIZED,
                bare_page("Sign in", body),
                &[],
            ));
        }
        PasswordCheck::Locked { retry_after_secs } => {
            return Err(PageError(ApiError::TooManyRequests { retry_after_secs }));
        }
    };
    end_current(&state, &caller, "replaced_by_new_sign_in").await?;
    let cookie =
        start_web_session(&state, &user, user.totp_enabled, ip, &headers, "password").await?;
    if user.totp_enabled {
        let to = format!(
            "/login/2fa?next={}",
            url::form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
        );
        return Ok(see_other(&to, &[cookie]));
    }
    Ok(see_other(&next, &[cookie]))
}

async fn second_factor_page(
    State(state): State<AppState>,
    Authed(caller): Authed,
    headers: HeaderMap,
    Query(q): Query<NextQuery>,
) -> Response {
    let next = safe_next(q.next.as_deref());
    if caller
        .principal
        .session
        .as_ref()
        .is_some_and(|s| !s.mfa_pending)
    {
        return see_other(&next, &[]);
    }
    let page = PageCtx::new(&state, Some(caller), &headers, "/login/2fa").await;
    html_response(
        bare_page("Two-factor sign-in", second_factor_form(&page, &next, None)),
        &[],
    )
}

fn second_factor_form(page: &PageCtx, next: &str, error: Option<&str>) -> Markup {
    html! {
        @if let Some(e) = error { p.error role="alert" data-testid="totp-error" { (e) } }
        p { "Enter the 6-digit code from your authenticator app." }
        form method="post" action="/login/2fa" {
            (page.csrf_field())
            input type="hidden" name="next" value=(next);
            label { "Code" input type="text" name="code" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9 ]{6,7}" required autofocus; }
            button type="submit" data-testid="totp-submit" { "Continue" }
        }
        form.inline method="post" action="/logout" { (page.csrf_field()) button.link type="submit" { "Cancel and sign out" } }
    }
}

#[derive(Deserialize)]
struct CodeForm {
    code: String,
    next: Option<String>,
}

async fn second_factor_submit(
    State(state): State<AppState>,
    Authed(caller): Authed,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    PageForm(form): PageForm<CodeForm>,
) -> Result<Response, PageError> {
    let next = safe_next(form.next.as_deref());
    let (Some(user), Some(session)) = (
        caller.principal.user.clone(),
        caller.principal.session.clone(),
    ) else {
        return Err(PageError(ApiError::Forbidden));
    };
    if !session.mfa_pending {
        return Ok(see_other(&next, &[]));
    }
    match account::second_factor(&state, &user, &form.code, ip).await? {
        account::SecondFactor::Ok => {}
        account::SecondFactor::Locked { retry_after_secs } => {
            return Err(PageError(ApiError::TooManyRequests { retry_after_secs }));
        }
        account::SecondFactor::Refused => {
            let page = PageCtx::new(&state, Some(caller), &headers, "/login/2fa").await;
            let body = second_factor_form(
                &page,
                &next,
                Some("That code is not valid. Check the time on your phone and try again."),
            );
            return Ok(html_status(
                StatusCode::UNAUTHORIZED,
                bare_page("Two-factor sign-in", body),
                &[],
            ));
        }
    }
    // A fresh session id now that both factors are in (the pending one ends).
    state
        .store()
        .revoke_session(user.id, session.id, "second_factor_completed", state.now())
        .await?;
    let cookie = start_web_session(&state, &user, false, ip, &headers, "password+totp").await?;
    Ok(see_other(&next, &[cookie]))
}

async fn logout(
    State(state): State<AppState>,
    Authed(caller): Authed,
) -> Result<Response, PageError> {
    if let (Some(user), Some(session)) = (&caller.principal.user, &caller.principal.session) {
        account::end_session(&state, user.id, session.id, "logout", "auth.logout").await?;
    }
    let secure = state.auth().secure_cookies;
    Ok(see_other(
        "/login?ok=signed_out",
        &[set_cookie(session_cookie_name(secure), "", secure, Some(0))],
    ))
}

#[derive(Deserialize, Default)]
struct SignupForm {
    organisation_name: String,
    name: String,
    email: String,
    password: SecretString,
}

fn signup_form(page: &PageCtx, org: &str, name: &str, email: &str, error: Option<&str>) -> Markup {
    html! {
        @if let Some(e) = error { p.error role="alert" data-testid="signup-error" { (e) } }
        form method="post" action="/signup" {
            (page.csrf_field())
            label { "Organisation (your clinic or business)" input type="text" name="organisation_name" value=(org) required maxlength="200" autofocus; }
            label { "Your name" input type="text" name="name" value=(name) autocomplete="name" required maxlength="200"; }
            label { "Email" input type="email" name="email" value=(email) autocomplete="username" required; }
            label { "Password (at least 12 characters)" input type="password" name="password" autocomplete="new-password" required minlength="12" maxlength="128"; }
            button type="submit" data-testid="signup-submit" { "Create organisation" }
        }
        p.muted { "Already have an account? " a href="/login" { "Sign in" } }
    }
}

async fn signup_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let page = PageCtx::new(&state, None, &headers, "/signup").await;
    let cookies: Vec<HeaderValue> = page.set_cookie.iter().cloned().collect();
    html_response(
        bare_page(
            "Create your organisation",
            signup_form(&page, "", "", "", None),
        ),
        &cookies,
    )
}

async fn signup_submit(
    State(state): State<AppState>,
    MaybeCaller(caller): MaybeCaller,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    PageForm(form): PageForm<SignupForm>,
) -> Result<Response, PageError> {
    let outcome: Result<User, ApiError> = async {
        let email = Email::parse(&form.email)
            .map_err(|e| ApiError::unprocessable("invalid_email", e.to_string()))?;
        let hash = account::new_password_hash(form.password.clone(), &[email.as_str(), &form.name])
            .await?;
        let (user, _, _) = state
            .store()
            .sign_up(SignUp {
                org_name: &form.organisation_name,
                org_slug: None,
                user_name: &form.name,
                email: &email,
                password_hash: &hash,
                now: state.now(),
            })
            .await?;
        Ok(user)
    }
    .await;
    match outcome {
        Ok(user) => {
            end_current(&state, &caller, "replaced_by_new_sign_in").await?;
            let cookie = start_web_session(&state, &user, false, ip, &headers, "signup").await?;
            Ok(see_other("/", &[cookie]))
        }
        Err(e) if e.status().is_client_error() => {
            let page = PageCtx::new(&state, None, &headers, "/signup").await;
            let body = signup_form(
                &page,
                &form.organisation_name,
                &form.name,
                &form.email,
                Some(&e.to_string()),
            );
            Ok(html_status(
                e.status(),
                bare_page("Create your organisation", body),
                &[],
            ))
        }
        Err(e) => Err(PageError(e)),
    }
}

async fn magic_request_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let page = PageCtx::new(&state, None, &headers, "/login/magic").await;
    let cookies: Vec<HeaderValue> = page.set_cookie.iter().cloned().collect();
    let body = html! {
        p { "We will email you a link that signs you in once, within 15 minutes." }
        form method="post" action="/login/magic" {
            (page.csrf_field())
            label { "Email" input type="email" name="email" autocomplete="username" required autofocus; }
            button type="submit" data-testid="magic-submit" { "Email me a link" }
        }
        p.muted { a href="/login" { "Sign in with a password" } }
    };
    html_response(bare_page("Sign in by email", body), &cookies)
}

#[derive(Deserialize)]
struct EmailForm {
    email: String,
}

fn check_your_mail() -> String {
    bare_page(
        "Check your email",
        html! {
            p data-testid="check-mail" { "If an account uses that address, a link is on its way. It works once and expires soon." }
            p { a href="/login" { "Back to sign-in" } }
        },
    )
}

async fn magic_request_submit(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    PageForm(form): PageForm<EmailForm>,
) -> Result<Response, PageError> {
    account::send_email_link(&state, &form.email, EmailTokenPurpose::MagicLink, ip).await?;
    Ok(html_response(check_your_mail(), &[]))
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

/// The link from the mail lands here: a button spends the token, so a mail scanner that
/// follows links cannot use it up, and the token leaves the address bar.
async fn magic_confirm_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<TokenQuery>,
) -> Response {
    let page = PageCtx::new(&state, None, &headers, "/auth/magic").await;
    let cookies: Vec<HeaderValue> = page.set_cookie.iter().cloned().collect();
    let body = html! {
        form method="post" action="/auth/magic" {
            (page.csrf_field())
            input type="hidden" name="token" value=(q.token.unwrap_or_default());
            button type="submit" data-testid="magic-confirm" { "Sign in to Frontdesk" }
        }
    };
    html_response(bare_page("Sign in", body), &cookies)
}

#[derive(Deserialize)]
struct TokenForm {
    token: SecretString,
}

async fn magic_redeem(
    State(state): State<AppState>,
    MaybeCaller(caller): MaybeCaller,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    PageForm(form): PageForm<TokenForm>,
) -> Result<Response, PageError> {
    let Some(user_id) = state
        .store()
        .redeem_email_token(
            form.token.expose_secret(),
            EmailTokenPurpose::MagicLink,
            state.now(),
        )
        .await?
    else {
        return Err(PageError(ApiError::bad_request(
            "invalid_link",
            "This sign-in link is not valid any more (used, expired or replaced). Ask for a new one.",
        )));
    };
    let user = state
        .store()
        .user(user_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    end_current(&state, &caller, "replaced_by_new_sign_in").await?;
    let cookie =
        start_web_session(&state, &user, user.totp_enabled, ip, &headers, "magic_link").await?;
    state.mailer().send_later(
        user.email.clone(),
        "New sign-in to Frontdesk".into(),
        format!("Hello {},\n\nYou just signed in to Frontdesk with an emailed link. If this was not you, change your password and tell your administrator.\n", user.name),
    );
    Ok(see_other(
        if user.totp_enabled { "/login/2fa" } else { "/" },
        &[cookie],
    ))
}

async fn forgot_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let page = PageCtx::new(&state, None, &headers, "/password/forgot").await;
    let cookies: Vec<HeaderValue> = page.set_cookie.iter().cloned().collect();
    let body = html! {
        form method="post" action="/password/forgot" {
            (page.csrf_field())
            label { "Email" input type="email" name="email" autocomplete="username" required autofocus; }
            button type="submit" data-testid="forgot-submit" { "Email me a reset link" }
        }
    };
    html_response(bare_page("Reset your password", body), &cookies)
}

async fn forgot_submit(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    PageForm(form): PageForm<EmailForm>,
) -> Result<Response, PageError> {
    account::send_email_link(&state, &form.email, EmailTokenPurpose::PasswordReset, ip).await?;
    Ok(html_response(check_your_mail(), &[]))
}

async fn reset_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<TokenQuery>,
) -> Response {
    let page = PageCtx::new(&state, None, &headers, "/password/reset").await;
    let cookies: Vec<HeaderValue> = page.set_cookie.iter().cloned().collect();
    let body = html! {
        form method="post" action="/password/reset" {
            (page.csrf_field())
            input type="hidden" name="token" value=(q.token.unwrap_or_default());
            label { "New password (at least 12 characters)" input type="password" name="new_password" autocomplete="new-password" required minlength="12" maxlength="128" autofocus; }
            button type="submit" data-testid="reset-submit" { "Set password" }
        }
    };
    html_response(bare_page("Choose a new password", body), &cookies)
}

#[derive(Deserialize)]
struct ResetForm {
    token: SecretString,
    new_password: SecretString,
}

async fn reset_submit(
    State(state): State<AppState>,
    PageForm(form): PageForm<ResetForm>,
) -> Result<Response, PageError> {
    crate::api::reset_password(&state, form.token.expose_secret(), form.new_password).await?;
    Ok(see_other("/login?ok=password_reset", &[]))
}

async fn invitation_page(
    State(state): State<AppState>,
    MaybeCaller(caller): MaybeCaller,
    headers: HeaderMap,
    Query(q): Query<TokenQuery>,
) -> Result<Response, PageError> {
    let token = q.token.unwrap_or_default();
    let Some(preview) = state
        .store()
        .invitation_preview(&token, state.now())
        .await?
    else {
        return Err(PageError(ApiError::bad_request(
            "invalid_link",
            "This invitation is not valid any more (accepted, withdrawn or expired).",
        )));
    };
    let signed_in = caller.as_ref().and_then(|c| c.principal.user.clone());
    let page = PageCtx::new(&state, caller, &headers, "/invitations/accept").await;
    let cookies: Vec<HeaderValue> = page.set_cookie.iter().cloned().collect();
    let next = format!(
        "/invitations/accept?token={}",
        url::form_urlencoded::byte_serialize(token.as_bytes()).collect::<String>()
    );
    let body = html! {
        p { "You are invited to join " strong { (preview.org_name) } " as " strong { (preview.role_name) } "." }
        form method="post" action="/invitations/accept" {
            (page.csrf_field())
            input type="hidden" name="token" value=(token);
            @match &signed_in {
                Some(u) if u.email == preview.email => {
                    button type="submit" data-testid="invitation-accept" { "Join " (preview.org_name) }
                }
                Some(u) => {
                    p.error { "You are signed in as " (u.email) ", but this invitation is for " (preview.email) ". Sign out and open the link again." }
                }
                None => {
                    p { "Create your account for " strong { (preview.email) } ":" }
                    label { "Your name" input type="text" name="name" autocomplete="name" required maxlength="200"; }
                    label { "Password (at least 12 characters)" input type="password" name="password" autocomplete="new-password" required minlength="12" maxlength="128"; }
                    button type="submit" data-testid="invitation-accept" { "Create account and join" }
                }
            }
        }
        @if signed_in.is_none() {
            p.muted { "Already have an account? " a href={ "/login?next=" (url::form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()) } { "Sign in first" } }
        }
    };
    Ok(html_response(bare_page("Invitation", body), &cookies))
}

#[derive(Deserialize)]
struct AcceptForm {
    token: SecretString,
    name: Option<String>,
    password: Option<SecretString>,
}

async fn invitation_submit(
    State(state): State<AppState>,
    MaybeCaller(caller): MaybeCaller,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    PageForm(form): PageForm<AcceptForm>,
) -> Result<Response, PageError> {
    let token = form.token.expose_secret();
    if let Some(user) = caller.as_ref().and_then(|c| c.principal.user.clone()) {
        let ctx = state
            .store()
            .accept_invitation(token, &user, state.now())
            .await?;
        if let Some(session) = caller.as_ref().and_then(|c| c.principal.session.as_ref()) {
            state
                .store()
                .switch_org(user.id, session.id, ctx.org_id())
                .await?;
        }
        return Ok(see_other("/", &[]));
    }
    let (Some(name), Some(password)) = (form.name, form.password) else {
        return Err(PageError(ApiError::bad_request(
            "invalid_form",
            "Enter your name and a password.",
        )));
    };
    let preview = state
        .store()
        .invitation_preview(token, state.now())
        .await?
        .ok_or(ApiError::NotFound)?;
    let hash = account::new_password_hash(password, &[&preview.email, &name]).await?;
    let (user, _ctx) = state
        .store()
        .accept_invitation_as_new_user(token, &name, &hash, state.now())
        .await?;
    let cookie = start_web_session(&state, &user, false, ip, &headers, "invitation").await?;
    Ok(see_other("/", &[cookie]))
}
