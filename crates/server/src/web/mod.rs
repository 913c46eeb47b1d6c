//! The web UI: server-rendered, auto-escaped HTML (maud), one stylesheet and one small
//! script of our own, no inline script or style (the CSP forbids both). Every form that
//! changes something carries a CSRF token; destructive buttons ask for confirmation.

mod account;
mod admin;
mod audience_settings;
mod campaigns;
mod channels;
mod contacts;
mod exports;
mod imports;
mod inbox;
mod queue;
mod segments;
mod signin;
mod templates;

use crate::AppState;
use crate::auth::{Caller, Via, cookie, presession_cookie_name, set_cookie};
use crate::error::ApiError;
use crate::routes::RouteTableBuilder;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use frontdesk_domain::Permission;
use maud::{DOCTYPE, Markup, html};
use serde::de::DeserializeOwned;

pub(crate) fn routes(b: RouteTableBuilder) -> RouteTableBuilder {
    let b = b
        .other(
            Method::GET,
            "/static/app.css",
            get(css),
            crate::auth::Access::Public,
        )
        .other(
            Method::GET,
            "/static/app.js",
            get(js),
            crate::auth::Access::Public,
        );
    let b = signin::routes(b);
    let b = account::routes(b);
    let b = admin::routes(b);
    let b = channels::routes(b);
    let b = queue::routes(b);
    let b = templates::routes(b);
    let b = imports::routes(b);
    let b = audience_settings::routes(b);
    let b = exports::routes(b);
    let b = contacts::routes(b);
    let b = segments::routes(b);
    let b = campaigns::routes(b);
    inbox::routes(b)
}

const CSS: &str = include_str!("static/app.css");
const JS: &str = include_str!("static/app.js");

async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        CSS,
    )
        .into_response()
}

async fn js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        JS,
    )
        .into_response()
}

/// A navigation entry: shown to those who hold its permission.
struct NavItem {
    href: &'static str,
    label: &'static str,
    needs: Option<Permission>,
}

/// The sections of the dashboard. Later features add their entry here.
const NAV: &[NavItem] = &[
    NavItem {
        href: "/",
        label: "Home",
        needs: None,
    },
    NavItem {
        href: "/inbox",
        label: "Inbox",
        needs: Some(Permission::InboxRead),
    },
    NavItem {
        href: "/contacts",
        label: "Contacts",
        needs: Some(Permission::ContactsRead),
    },
    NavItem {
        href: "/segments",
        label: "Segments",
        needs: Some(Permission::ContactsRead),
    },
    NavItem {
        href: "/queues",
        label: "Queues",
        needs: Some(Permission::QueueRead),
    },
    NavItem {
        href: "/templates",
        label: "Templates",
        needs: Some(Permission::TemplatesManage),
    },
    NavItem {
        href: "/campaigns",
        label: "Campaigns",
        needs: Some(Permission::CampaignsManage),
    },
    NavItem {
        href: "/team",
        label: "Team",
        needs: Some(Permission::TeamManage),
    },
    NavItem {
        href: "/roles",
        label: "Roles",
        needs: Some(Permission::RolesManage),
    },
    NavItem {
        href: "/api-keys",
        label: "API keys",
        needs: Some(Permission::ApiKeysManage),
    },
    NavItem {
        href: "/audit",
        label: "Audit log",
        needs: Some(Permission::AuditRead),
    },
    NavItem {
        href: "/settings/channels",
        label: "Channels",
        needs: Some(Permission::ChannelsManage),
    },
    NavItem {
        href: "/simulator",
        label: "WhatsApp simulator",
        needs: None,
    },
    NavItem {
        href: "/settings/organisation",
        label: "Organisation",
        needs: Some(Permission::SettingsManage),
    },
];

/// What every signed-in page needs: who, where, and the CSRF token for its forms.
pub(crate) struct PageCtx {
    pub caller: Option<Caller>,
    pub csrf: String,
    /// A `Set-Cookie` to send with the page (a fresh pre-session CSRF cookie).
    pub set_cookie: Option<HeaderValue>,
    pub org_name: Option<String>,
    pub path: String,
    /// The simulator is served (its navigation entry is shown).
    pub simulator: bool,
}

impl PageCtx {
    /// The page context of a request: the session's CSRF token for a signed-in browser,
    /// else the pre-session double-submit token (created when missing).
    pub(crate) async fn new(
        state: &AppState,
        caller: Option<Caller>,
        headers: &HeaderMap,
        path: &str,
    ) -> Self {
        let (csrf, set) = match caller
            .as_ref()
            .filter(|c| c.via == Via::Cookie)
            .and_then(|c| c.principal.session.as_ref())
        {
            Some(s) => (s.csrf_token.clone(), None),
            None => {
                let secure = state.auth().secure_cookies;
                let name = presession_cookie_name(secure);
                match cookie(headers, name) {
                    Some(v) if v.len() >= 32 && v.len() <= 64 => (v.to_owned(), None),
                    _ => {
                        let token = random_token();
                        let c = set_cookie(name, &token, secure, Some(60 * 60 * 12));
                        (token, Some(c))
                    }
                }
            }
        };
        let org_name = match caller.as_ref().and_then(|c| c.principal.ctx.as_ref()) {
            Some(ctx) => state.store().organisation(ctx).await.ok().map(|o| o.name),
            None => None,
        };
        PageCtx {
            caller,
            csrf,
            set_cookie: set,
            org_name,
            path: path.to_owned(),
            simulator: state.settings().simulator.enabled,
        }
    }

    pub(crate) fn can(&self, p: Permission) -> bool {
        self.caller
            .as_ref()
            .and_then(|c| c.principal.ctx.as_ref())
            .is_some_and(|ctx| ctx.can(p))
    }

    /// The hidden CSRF field for a form.
    pub(crate) fn csrf_field(&self) -> Markup {
        html! { input type="hidden" name="_csrf" value=(self.csrf); }
    }

    /// A page in the signed-in layout.
    pub(crate) fn render(&self, title: &str, body: Markup) -> Response {
        let user = self.caller.as_ref().and_then(|c| c.principal.user.as_ref());
        let markup = html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    title { (title) " · Frontdesk" }
                    link rel="stylesheet" href="/static/app.css";
                    script src="/static/app.js" defer {}
                }
                body {
                    header.top {
                        a.brand href="/" { "Frontdesk" }
                        @if let Some(org) = &self.org_name {
                            a.org href="/orgs" title="Switch organisation" { (org) }
                        }
                        @if let Some(u) = user {
                            nav.account {
                                @if self.org_name.is_some() {
                                    // Mentions of the caller, kept current by app.js from the
                                    // event stream (the list is fetched as JSON).
                                    div #notif.notif data-csrf=(self.csrf) data-testid="notifications" {
                                        button.link #notif-toggle type="button" aria-expanded="false" aria-controls="notif-panel" data-testid="notif-toggle" {
                                            "Mentions "
                                            span #notif-count.badge.unread data-testid="notif-count" hidden { "0" }
                                        }
                                        div #notif-panel.notif-panel hidden {
                                            ul #notif-items data-testid="notif-items" {}
                                            p #notif-empty.muted { "No mentions yet." }
                                            button.link #notif-read-all type="button" data-testid="notif-read-all" { "Mark all read" }
                                        }
                                    }
                                }
                                a href="/settings/profile" data-testid="account-link" { (u.name) }
                                form.inline method="post" action="/logout" {
                                    (self.csrf_field())
                                    button.link type="submit" data-testid="logout" { "Sign out" }
                                }
                            }
                        }
                    }
                    div.shell {
                        @if user.is_some() {
                            nav.side {
                                @if self.org_name.is_some() {
                                    @for item in NAV {
                                        @if item.needs.is_none_or(|p| self.can(p)) && (item.href != "/simulator" || self.simulator) {
                                            a href=(item.href) class=[(self.path == item.href).then_some("active")] { (item.label) }
                                        }
                                    }
                                }
                                h4 { "Account" }
                                a href="/settings/profile" class=[(self.path == "/settings/profile").then_some("active")] { "Profile" }
                                a href="/settings/password" class=[(self.path == "/settings/password").then_some("active")] { "Password" }
                                a href="/settings/security" class=[(self.path == "/settings/security").then_some("active")] { "Two-factor sign-in" }
                                a href="/settings/sessions" class=[(self.path == "/settings/sessions").then_some("active")] { "Sessions" }
                                a href="/orgs" class=[(self.path == "/orgs").then_some("active")] { "Organisations" }
                            }
                        }
                        main {
                            h1 { (title) }
                            (body)
                        }
                    }
                }
            }
        };
        let mut r = (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            markup.into_string(),
        )
            .into_response();
        if let Some(c) = &self.set_cookie {
            r.headers_mut().append(header::SET_COOKIE, c.clone());
        }
        r
    }
}

fn random_token() -> String {
    let mut b = [0u8; 24];
    getrandom::fill(&mut b).expect("the OS random number generator works");
    data_encoding::BASE64URL_NOPAD.encode(&b)
}

/// A bare page (error pages, the sign-in screens) without navigation.
pub(crate) fn bare_page(title: &str, body: Markup) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Frontdesk" }
                link rel="stylesheet" href="/static/app.css";
                script src="/static/app.js" defer {}
            }
            body.bare {
                main.card {
                    a.brand href="/" { "Frontdesk" }
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
    .into_string()
}

/// The HTML body of an error, with the request id to quote to an administrator.
pub(crate) fn error_page_html(status: StatusCode, message: &str, request_id: &str) -> String {
    bare_page(
        status.canonical_reason().unwrap_or("Error"),
        html! {
            p.error data-testid="error-message" { (message) }
            p.muted { "Request id: " code { (request_id) } }
            p { a href="/" { "Back to Frontdesk" } }
        },
    )
}

/// An HTML error response (the request id is added by the middleware's log line; pages
/// rendered here show the message only).
pub(crate) fn error_page(status: StatusCode, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        bare_page(
            status.canonical_reason().unwrap_or("Error"),
            html! {
                p.error data-testid="error-message" { (message) }
                p { a href="/" { "Back to Frontdesk" } }
            },
        ),
    )
        .into_response()
}

/// A failure of a page handler, shown as an HTML page.
pub(crate) struct PageError(pub ApiError);

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        PageError(e)
    }
}

impl From<frontdesk_store::StoreError> for PageError {
    fn from(e: frontdesk_store::StoreError) -> Self {
        PageError(e.into())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let status = self.0.status();
        if status.is_server_error() {
            // Logged with its cause by the API error's own response.
            let _ = self.0.into_response();
            return error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong on our side. Try again in a moment.",
            );
        }
        let message = self.0.to_string();
        let mut r = error_page(status, &message);
        if let ApiError::TooManyRequests { retry_after_secs } = self.0
            && let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string())
        {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        r
    }
}

/// A form body; a malformed one is a 400 page, not a JSON error.
pub(crate) struct PageForm<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for PageForm<T> {
    type Rejection = PageError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        axum::Form::<T>::from_request(req, state)
            .await
            .map(|axum::Form(v)| PageForm(v))
            .map_err(|_| {
                PageError(ApiError::bad_request(
                    "invalid_form",
                    "the form is incomplete or not valid; go back and try again",
                ))
            })
    }
}

/// Where to go after signing in: only a path on this site.
pub(crate) fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.starts_with("/\\")
                && !n.contains(['\r', '\n'])
                && n.len() <= 500 =>
        {
            n.to_owned()
        }
        _ => "/".to_owned(),
    }
}

/// A 303 to `to`, with cookies to set.
pub(crate) fn see_other(to: &str, cookies: &[HeaderValue]) -> Response {
    let mut r = (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_owned())]).into_response();
    for c in cookies {
        r.headers_mut().append(header::SET_COOKIE, c.clone());
    }
    r
}

/// Formats a time for people (UTC, minutes).
pub(crate) fn when(t: time::OffsetDateTime) -> String {
    let f = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    t.to_offset(time::UtcOffset::UTC)
        .format(&f)
        .unwrap_or_default()
}

/// A time as the organisation's clocks show it (`2026-11-24 18:30 Asia/Kolkata`); UTC when
/// the zone is unknown.
pub(crate) fn local_when(t: time::OffsetDateTime, tz: &str) -> String {
    match frontdesk_store::zone::local_time(t, tz) {
        Ok((d, h)) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02} {tz}",
            d.year(),
            u8::from(d.month()),
            d.day(),
            h.hour(),
            h.minute()
        ),
        Err(_) => when(t),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_targets_stay_on_this_site() {
        assert_eq!(safe_next(Some("/team?x=1")), "/team?x=1");
        for bad in [
            "//evil.example",
            "https://evil.example",
            "/\\evil.example",
            "evil",
            "/a\r\nSet-Cookie: x",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad}");
        }
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn pages_escape_what_they_show() {
        let page = error_page_html(StatusCode::BAD_REQUEST, "<script>alert(1)</script>", "rid");
        assert!(!page.contains("<script>alert"));
        assert!(page.contains("&lt;script&gt;"));
    }
}
