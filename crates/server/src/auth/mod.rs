//! Who may call what. Every route declares its [`Access`] where it is registered (see
//! `routes.rs`); the guard below, attached to that route by the same line, enforces it.
//! Handlers then take the principal from the request with the extractors at the bottom.
//!
//! Credentials, in order: `Authorization: Bearer <access token>` or `Bearer fdk_…` (an API
//! key), then the session cookie. Cookie-authenticated requests that change state must carry
//! the session's CSRF token (header `x-csrf-token` or form field `_csrf`) and must not come
//! from another origin. Public forms use a double-submit cookie instead.

pub mod password;
pub mod token;
pub mod totp;

use crate::AppState;
use crate::error::ApiError;
use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use frontdesk_domain::Permission;
use frontdesk_store::{Principal, TenantCtx, User};
use std::net::{IpAddr, SocketAddr};

/// What a route requires of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone (sign-in pages, probes, webhooks, assets).
    Public,
    /// A signed-in person, even before the second factor (signing out, entering the code).
    Session,
    /// A fully signed-in person; no organisation needed (their own account).
    Signed,
    /// A member acting in an organisation (person or API key), whatever the role.
    Member,
    /// A member holding this permission.
    Perm(Permission),
}

impl Access {
    /// The permission, for the route table and the access-matrix test.
    pub fn permission(&self) -> Option<Permission> {
        match self {
            Access::Perm(p) => Some(*p),
            _ => None,
        }
    }
}

/// How a refusal is answered: JSON for the API, a redirect or an HTML page for the web.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    Api,
    Page,
}

/// Cookie names. With TLS the `__Host-` prefix pins the cookie to this host and path `/`.
pub(crate) fn session_cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-fd_session"
    } else {
        "fd_session"
    }
}

pub(crate) fn presession_cookie_name(secure: bool) -> &'static str {
    if secure { "__Host-fd_csrf" } else { "fd_csrf" }
}

/// A cookie's value from the request's `Cookie` headers.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

/// A `Set-Cookie` value with the attributes every Frontdesk cookie has.
pub(crate) fn set_cookie(
    name: &str,
    value: &str,
    secure: bool,
    max_age_secs: Option<i64>,
) -> HeaderValue {
    let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
    if secure {
        c.push_str("; Secure");
    }
    match max_age_secs {
        Some(0) => c.push_str("; Max-Age=0"),
        Some(s) => c.push_str(&format!("; Max-Age={s}")),
        None => {}
    }
    HeaderValue::from_str(&c).expect("cookie values are URL-safe tokens")
}

/// The client's address: the socket peer, or the first `X-Forwarded-For` hop when a
/// trusted proxy is configured to set it.
pub(crate) fn client_ip(
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
    trust_forwarded: bool,
) -> Option<IpAddr> {
    if trust_forwarded
        && let Some(ip) = headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.trim().parse().ok())
    {
        return Some(ip);
    }
    peer.map(|p| p.ip())
}

/// How the request authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Via {
    Bearer,
    Cookie,
}

/// The resolved caller, put in the request's extensions by the guard.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    pub(crate) via: Via,
}

/// Resolves the request's credential. `Err` means a credential was presented and is not
/// valid (expired token, revoked session): a protected route answers 401.
pub(crate) async fn resolve(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<Caller>, ApiError> {
    let now = state.now();
    if let Some(auth) = headers.get(header::AUTHORIZATION) {
        let bearer = auth
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or(ApiError::Unauthorized)?;
        let principal = if bearer.starts_with("fdk_") {
            state.store().authenticate_api_key(bearer, now).await?
        } else {
            let claims = token::verify(state.store().vault(), bearer, now.unix_timestamp())
                .map_err(|_| ApiError::Unauthorized)?;
            state
                .store()
                .authenticate_session_id(claims.sid, claims.org, now)
                .await?
                .filter(|p| p.user.as_ref().is_some_and(|u| u.id == claims.sub))
        };
        return principal
            .map(|principal| {
                Some(Caller {
                    principal,
                    via: Via::Bearer,
                })
            })
            .ok_or(ApiError::Unauthorized);
    }
    let name = session_cookie_name(state.auth().secure_cookies);
    if let Some(value) = cookie(headers, name) {
        let p = state
            .store()
            .authenticate_cookie(value, now, state.auth().session_policy)
            .await?;
        return p
            .map(|principal| {
                Some(Caller {
                    principal,
                    via: Via::Cookie,
                })
            })
            .ok_or(ApiError::Unauthorized);
    }
    Ok(None)
}

/// One route's guard: the state, what the route requires, and how to refuse.
#[derive(Clone)]
pub(crate) struct Guard {
    pub state: AppState,
    pub access: Access,
    pub surface: Surface,
    /// The largest request body the route takes (the server's default, or more for uploads).
    pub body_limit: usize,
}

/// Why the guard refused.
enum Denied {
    /// No valid credential.
    Anonymous,
    /// Password given, second factor still to come.
    MfaPending,
    /// The organisation requires two-factor and the user has not set it up.
    TwoFactorSetup,
    /// Signed in, but not acting in any organisation.
    NoOrganisation,
    /// API keys act for an organisation, not for a person's own account.
    NotForApiKeys,
    Forbidden,
    Csrf,
}

fn check(access: Access, caller: Option<&Caller>) -> Result<(), Denied> {
    if access == Access::Public {
        return Ok(());
    }
    let Some(caller) = caller else {
        return Err(Denied::Anonymous);
    };
    let p = &caller.principal;
    let person = p.user.is_some();
    let pending = p.session.as_ref().is_some_and(|s| s.mfa_pending);
    match access {
        Access::Public => Ok(()),
        Access::Session if person => Ok(()),
        Access::Session | Access::Signed if !person => Err(Denied::NotForApiKeys),
        _ if pending => Err(Denied::MfaPending),
        Access::Signed => Ok(()),
        Access::Member | Access::Perm(_) => {
            if p.needs_2fa_setup {
                return Err(Denied::TwoFactorSetup);
            }
            let Some(ctx) = &p.ctx else {
                return Err(Denied::NoOrganisation);
            };
            match access {
                Access::Perm(perm) if !ctx.can(perm) => Err(Denied::Forbidden),
                _ => Ok(()),
            }
        }
        Access::Session => Ok(()),
    }
}

fn is_safe(m: &Method) -> bool {
    matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// A request from another site: its `Origin` (or `Sec-Fetch-Site`) says so.
fn cross_origin(headers: &HeaderMap, public_origin: Option<&str>) -> bool {
    if headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes() == b"cross-site")
    {
        return true;
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    if origin == "null" {
        return true;
    }
    if let Some(expected) = public_origin {
        return !origin.eq_ignore_ascii_case(expected);
    }
    // Without a configured public URL, the origin's authority must be the Host we answer.
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let authority = origin.split_once("://").map(|(_, a)| a).unwrap_or(origin);
    !authority.eq_ignore_ascii_case(host)
}

fn ct_eq(a: &str, b: &str) -> bool {
    subtle::ConstantTimeEq::ct_eq(a.as_bytes(), b.as_bytes()).into()
}

/// Reads the `_csrf` field of a form body, and gives the request back with its body intact.
async fn form_csrf(req: Request, limit: usize) -> Result<(Request, Option<String>), ApiError> {
    let is_form = req.headers().get(header::CONTENT_TYPE).is_some_and(|v| {
        v.as_bytes()
            .starts_with(b"application/x-www-form-urlencoded")
    });
    if !is_form {
        return Ok((req, None));
    }
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::PayloadTooLarge)?;
    let token = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&bytes)
        .ok()
        .and_then(|pairs| {
            pairs
                .into_iter()
                .find(|(k, _)| k == "_csrf")
                .map(|(_, v)| v)
        });
    Ok((Request::from_parts(parts, Body::from(bytes)), token))
}

/// Refuses a body declared larger than `limit` at once, and caps one that is not declared:
/// reading past `limit` fails, which extractors answer with 413.
fn limit_body(req: Request, limit: usize) -> Result<Request, ApiError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::PayloadTooLarge);
    }
    let (parts, body) = req.into_parts();
    Ok(Request::from_parts(
        parts,
        Body::new(http_body_util::Limited::new(body, limit)),
    ))
}

/// The guard every route runs (attached per route by the route table).
pub(crate) async fn guard(State(g): State<Guard>, req: Request, next: Next) -> Response {
    let caller = match resolve(&g.state, req.headers()).await {
        Ok(c) => c,
        Err(ApiError::Unauthorized) if g.access != Access::Public => {
            return refuse(&g, Denied::Anonymous, &req);
        }
        Err(ApiError::Unauthorized) => None,
        Err(e) => return e.into_response(),
    };
    if let Err(denied) = check(g.access, caller.as_ref()) {
        if let Some(c) = &caller {
            tracing::info!(route_access = ?g.access, user = ?c.principal.user.as_ref().map(|u| u.id), api_key = ?c.principal.api_key, "access denied");
        }
        return refuse(&g, denied, &req);
    }
    let mut req = match limit_body(req, g.body_limit) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    if !is_safe(req.method()) {
        let public_origin = g.state.auth().public_origin.clone();
        let limit = g.body_limit;
        let cookie_session = caller.as_ref().filter(|c| c.via == Via::Cookie);
        if let Some(c) = cookie_session {
            if cross_origin(req.headers(), public_origin.as_deref()) {
                return refuse(&g, Denied::Csrf, &req);
            }
            let expected = c
                .principal
                .session
                .as_ref()
                .map(|s| s.csrf_token.clone())
                .unwrap_or_default();
            let header_token = req
                .headers()
                .get("x-csrf-token")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let token = match header_token {
                Some(t) => Some(t),
                None => match form_csrf(req, limit).await {
                    Ok((r, t)) => {
                        req = r;
                        t
                    }
                    Err(e) => return e.into_response(),
                },
            };
            if !token.is_some_and(|t| !expected.is_empty() && ct_eq(&t, &expected)) {
                return refuse(&g, Denied::Csrf, &req);
            }
        } else if g.access == Access::Public && g.surface == Surface::Page {
            // A public form (sign-in, sign-up): the double-submit cookie set with the form.
            if cross_origin(req.headers(), public_origin.as_deref()) {
                return refuse(&g, Denied::Csrf, &req);
            }
            let name = presession_cookie_name(g.state.auth().secure_cookies);
            let expected = cookie(req.headers(), name).map(str::to_owned);
            let (r, token) = match form_csrf(req, limit).await {
                Ok(x) => x,
                Err(e) => return e.into_response(),
            };
            req = r;
            let ok = matches!((&expected, &token), (Some(e), Some(t)) if ct_eq(e, t));
            if !ok {
                return refuse(&g, Denied::Csrf, &req);
            }
        }
    }
    if let Some(c) = caller {
        req.extensions_mut().insert(c);
    }
    next.run(req).await
}

fn refuse(g: &Guard, denied: Denied, req: &Request) -> Response {
    match g.surface {
        Surface::Api => {
            let e = match denied {
                Denied::Anonymous => ApiError::Unauthorized,
                Denied::MfaPending => {
                    ApiError::forbidden("mfa_pending", "enter your two-factor code first")
                }
                Denied::TwoFactorSetup => ApiError::forbidden(
                    "two_factor_required",
                    "this organisation requires two-factor sign-in; set it up first",
                ),
                Denied::NoOrganisation => {
                    ApiError::forbidden("no_organisation", "choose an organisation first")
                }
                Denied::NotForApiKeys => {
                    ApiError::forbidden("not_for_api_keys", "API keys cannot use this endpoint")
                }
                Denied::Forbidden => ApiError::Forbidden,
                Denied::Csrf => ApiError::forbidden(
                    "csrf",
                    "missing or wrong CSRF token, or a cross-site request",
                ),
            };
            let mut r = e.into_response();
            if matches!(denied, Denied::Anonymous) {
                r.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            r
        }
        Surface::Page => match denied {
            Denied::Anonymous => {
                let target = if req.method() == Method::GET {
                    let pq = req
                        .uri()
                        .path_and_query()
                        .map(|p| p.as_str())
                        .unwrap_or("/");
                    format!(
                        "/login?next={}",
                        url::form_urlencoded::byte_serialize(pq.as_bytes()).collect::<String>()
                    )
                } else {
                    "/login".to_owned()
                };
                Redirect::to(&target).into_response()
            }
            Denied::MfaPending => Redirect::to("/login/2fa").into_response(),
            Denied::TwoFactorSetup => Redirect::to("/settings/security").into_response(),
            Denied::NoOrganisation => Redirect::to("/orgs").into_response(),
            Denied::NotForApiKeys | Denied::Forbidden => crate::web::error_page(
                StatusCode::FORBIDDEN,
                "You do not have permission to see this page.",
            ),
            Denied::Csrf => crate::web::error_page(
                StatusCode::FORBIDDEN,
                "This form has expired or came from another site. Go back, reload the page and try again.",
            ),
        },
    }
}

/// The caller of a protected route (present on every route that is not public).
pub struct Authed(pub Caller);

impl<S: Send + Sync> FromRequestParts<S> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .map(Authed)
            .ok_or_else(|| {
                ApiError::internal(std::io::Error::other("route without a guard used Authed"))
            })
    }
}

/// The caller of a public route, if it presented a valid credential.
pub struct MaybeCaller(pub Option<Caller>);

impl<S: Send + Sync> FromRequestParts<S> for MaybeCaller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(MaybeCaller(parts.extensions.get::<Caller>().cloned()))
    }
}

/// The tenant context of a member route.
pub struct Tenant(pub TenantCtx);

impl<S: Send + Sync> FromRequestParts<S> for Tenant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, s: &S) -> Result<Self, Self::Rejection> {
        let Authed(c) = Authed::from_request_parts(parts, s).await?;
        c.principal.ctx.map(Tenant).ok_or_else(|| {
            ApiError::internal(std::io::Error::other("member route without a tenant"))
        })
    }
}

/// The signed-in person of an account route.
pub struct Me(pub User, pub Caller);

impl<S: Send + Sync> FromRequestParts<S> for Me {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, s: &S) -> Result<Self, Self::Rejection> {
        let Authed(c) = Authed::from_request_parts(parts, s).await?;
        let user = c.principal.user.clone().ok_or_else(|| {
            ApiError::internal(std::io::Error::other("person route without a user"))
        })?;
        Ok(Me(user, c))
    }
}

/// The client's address (socket peer, or trusted `X-Forwarded-For`).
pub struct ClientIp(pub Option<IpAddr>);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<SocketAddr>>()
            .map(|c| c.0);
        Ok(ClientIp(client_ip(
            &parts.headers,
            peer,
            state.auth().trust_forwarded_for,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_parsing_finds_the_named_cookie_only() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; fd_session=abc; fd_sessionx=zzz"),
        );
        h.append(header::COOKIE, HeaderValue::from_static("b=2"));
        assert_eq!(cookie(&h, "fd_session"), Some("abc"));
        assert_eq!(cookie(&h, "b"), Some("2"));
        assert_eq!(cookie(&h, "c"), None);
    }

    #[test]
    fn cross_origin_detection() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert!(
            !cross_origin(&h, None),
            "no Origin: a same-site form or a non-browser"
        );
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8080"),
        );
        assert!(!cross_origin(&h, None));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(cross_origin(&h, None));
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(cross_origin(&h, None));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://desk.example.com"),
        );
        assert!(!cross_origin(&h, Some("https://desk.example.com")));
        h.remove(header::ORIGIN);
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(cross_origin(&h, None));
    }

    #[test]
    fn cookies_carry_the_safe_attributes() {
        let c = set_cookie(session_cookie_name(true), "tok", true, Some(60));
        assert_eq!(
            c.to_str().unwrap(),
            "__Host-fd_session=tok; Path=/; HttpOnly; SameSite=Lax; Secure; Max-Age=60"
        );
        assert_eq!(
            set_cookie("fd_session", "tok", false, None)
                .to_str()
                .unwrap(),
            "fd_session=tok; Path=/; HttpOnly; SameSite=Lax"
        );
    }
}
