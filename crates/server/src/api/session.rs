//! Signing up, in and out over the API: access and refresh tokens, one-time links.

use super::ApiJson;
use crate::AppState;
use crate::account::{self, PasswordCheck};
use crate::auth::token::{self, AccessClaims};
use crate::auth::{Access, Authed, ClientIp};
use crate::error::{ApiError, ErrorEnvelope};
use crate::routes::RouteTableBuilder;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use frontdesk_domain::{Email, OrgId, SessionId, UserId};
use frontdesk_store::{AuditRecord, EmailTokenPurpose, Refreshed, SessionKind, SignUp};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::routes;

pub(crate) fn routes(b: RouteTableBuilder) -> RouteTableBuilder {
    b.json(routes!(signup), Access::Public)
        .json(routes!(login), Access::Public)
        .json(routes!(refresh), Access::Public)
        .json(routes!(logout), Access::Session)
        .json(routes!(switch_org), Access::Signed)
        .json(routes!(request_magic_link), Access::Public)
        .json(routes!(request_password_reset), Access::Public)
        .json(routes!(complete_password_reset), Access::Public)
}

/// Credentials for the API: a short-lived access token and a refresh token.
#[derive(Serialize, ToSchema)]
pub struct TokenPair {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// Spend it at `/api/v1/auth/refresh` for a new pair; each works once.
    pub refresh_token: String,
    pub org_id: Option<OrgId>,
}

impl std::fmt::Debug for TokenPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenPair([redacted])")
    }
}

/// Mints an access token for a session.
pub(crate) fn access_token(
    state: &AppState,
    user: UserId,
    session: SessionId,
    org: Option<OrgId>,
    role: Option<String>,
) -> (String, i64) {
    let now = state.now().unix_timestamp();
    let ttl = state.auth().access_token_ttl.whole_seconds();
    let claims = AccessClaims {
        iss: token::ISSUER.into(),
        aud: token::AUDIENCE.into(),
        sub: user,
        org,
        sid: session,
        role,
        iat: now,
        exp: now + ttl,
        jti: uuid::Uuid::now_v7().to_string(),
    };
    (token::mint(state.store().vault(), &claims), ttl)
}

pub(crate) async fn pair(
    state: &AppState,
    user: UserId,
    session: SessionId,
    org: Option<OrgId>,
    refresh: &SecretString,
) -> Result<TokenPair, ApiError> {
    let role = match org {
        Some(o) => state
            .store()
            .member_context(user, o)
            .await?
            .map(|c| c.role().name.clone()),
        None => None,
    };
    let (access_token, expires_in) = access_token(state, user, session, org, role);
    Ok(TokenPair {
        access_token,
        token_type: "Bearer",
        expires_in,
        refresh_token: refresh.expose_secret().to_owned(),
        org_id: org,
    })
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignupRequest {
    pub organisation_name: String,
    /// Lower-case letters, digits and dashes; derived from the name when left out.
    pub organisation_slug: Option<String>,
    pub name: String,
    pub email: String,
    #[schema(value_type = String, format = Password)]
    pub password: SecretString,
}

/// Creates an organisation and its first user, an admin, and signs them in.
#[utoipa::path(post, path = "/api/v1/auth/signup", tag = "auth", request_body = SignupRequest,
    responses(
        (status = 201, description = "Signed up and in", body = TokenPair),
        (status = 409, description = "Email or organisation address taken", body = ErrorEnvelope),
        (status = 422, description = "Invalid input or weak password", body = ErrorEnvelope),
    ))]
async fn signup(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    ApiJson(req): ApiJson<SignupRequest>,
) -> Result<(StatusCode, Json<TokenPair>), ApiError> {
    let email = Email::parse(&req.email)
        .map_err(|e| ApiError::unprocessable("invalid_email", e.to_string()))?;
    let hash = account::new_password_hash(req.password, &[email.as_str(), &req.name]).await?;
    let (user, org, _) = state
        .store()
        .sign_up(SignUp {
            org_name: &req.organisation_name,
            org_slug: req.organisation_slug.as_deref(),
            user_name: &req.name,
            email: &email,
            password_hash: &hash,
            now: state.now(),
        })
        .await?;
    let issued = account::open_session(
        &state,
        &user,
        SessionKind::Api,
        Some(org.id),
        false,
        account::Client::new(ip, &headers),
        "signup",
    )
    .await?;
    let refresh = issued
        .refresh_token
        .expect("API sessions have a refresh token");
    Ok((
        StatusCode::CREATED,
        Json(pair(&state, user.id, issued.id, Some(org.id), &refresh).await?),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub email: String,
    #[schema(value_type = String, format = Password)]
    pub password: SecretString,
    /// Required when the account has two-factor sign-in on.
    pub totp_code: Option<String>,
    /// The organisation to act in; the first one the user belongs to when left out.
    pub org_id: Option<OrgId>,
}

/// Signs in with email and password (and the second factor when it is on).
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in", body = TokenPair),
        (status = 401, description = "Wrong email or password (one answer for both), or the two-factor code is missing (`totp_required`) or wrong", body = ErrorEnvelope),
        (status = 429, description = "Too many failed attempts; see Retry-After", body = ErrorEnvelope),
    ))]
async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<Json<TokenPair>, ApiError> {
    let user = match account::check_password(&state, &req.email, req.password, ip).await? {
        PasswordCheck::Ok(u) => u,
        PasswordCheck::Refused => return Err(account::login_refused()),
        PasswordCheck::Locked { retry_after_secs } => {
            return Err(ApiError::TooManyRequests { retry_after_secs });
        }
    };
    if user.totp_enabled {
        let Some(code) = req.totp_code.as_deref() else {
            return Err(to_401(ApiError::Denied {
                code: "totp_required",
                message: "enter the code from your authenticator app".into(),
            }));
        };
        match account::second_factor(&state, &user, code, ip).await? {
            account::SecondFactor::Ok => {}
            account::SecondFactor::Refused => {
                return Err(to_401(ApiError::Denied {
                    code: "totp_invalid",
                    message: "the two-factor code is not valid".into(),
                }));
            }
            account::SecondFactor::Locked { retry_after_secs } => {
                return Err(ApiError::TooManyRequests { retry_after_secs });
            }
        }
    }
    let org = account::initial_org(&state, user.id, req.org_id).await?;
    let issued = account::open_session(
        &state,
        &user,
        SessionKind::Api,
        org,
        false,
        account::Client::new(ip, &headers),
        "password",
    )
    .await?;
    let refresh = issued
        .refresh_token
        .expect("API sessions have a refresh token");
    Ok(Json(pair(&state, user.id, issued.id, org, &refresh).await?))
}

/// A 401 carrying a code the client can act on.
fn to_401(e: ApiError) -> ApiError {
    match e {
        ApiError::Denied { code, message } => ApiError::UnauthorizedBecause { code, message },
        other => other,
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    #[schema(value_type = String)]
    pub refresh_token: SecretString,
}

/// Spends a refresh token for a new pair. Using a spent token again ends the session.
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses(
        (status = 200, description = "A new pair", body = TokenPair),
        (status = 401, description = "Unknown, expired or reused refresh token", body = ErrorEnvelope),
    ))]
async fn refresh(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<RefreshRequest>,
) -> Result<Json<TokenPair>, ApiError> {
    let now = state.now();
    match state
        .store()
        .refresh_session(
            req.refresh_token.expose_secret(),
            now,
            state.auth().refresh_token_ttl,
        )
        .await?
    {
        Refreshed::Rotated {
            session,
            user,
            org,
            refresh_token,
        } => {
            // The membership may have ended since: a token for a lost organisation is none.
            let org = match org {
                Some(o) if state.store().member_context(user, o).await?.is_some() => Some(o),
                _ => None,
            };
            Ok(Json(
                pair(&state, user, session, org, &refresh_token).await?,
            ))
        }
        Refreshed::Reused { session, user } => {
            tracing::warn!(session = %session, "refresh token reused; session revoked");
            state
                .store()
                .record_user_event(
                    user,
                    false,
                    AuditRecord::new(
                        "auth.refresh_token_reused",
                        "session",
                        session.to_string(),
                        serde_json::json!({}),
                    ),
                )
                .await?;
            Err(ApiError::Unauthorized)
        }
        Refreshed::Invalid => Err(ApiError::Unauthorized),
    }
}

/// Ends the current session (its access and refresh tokens stop working at once).
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth",
    responses((status = 204, description = "Signed out"), (status = 401, description = "Not signed in", body = ErrorEnvelope)))]
async fn logout(
    State(state): State<AppState>,
    Authed(caller): Authed,
) -> Result<StatusCode, ApiError> {
    let (Some(user), Some(session)) = (&caller.principal.user, &caller.principal.session) else {
        return Err(ApiError::Forbidden);
    };
    account::end_session(&state, user.id, session.id, "logout", "auth.logout").await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SwitchOrgRequest {
    pub org_id: OrgId,
}

/// A new access token.
#[derive(Serialize, ToSchema)]
pub struct AccessToken {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    pub org_id: OrgId,
}

/// Moves the session to another organisation the user belongs to.
#[utoipa::path(post, path = "/api/v1/auth/switch-org", tag = "auth", request_body = SwitchOrgRequest,
    responses(
        (status = 200, description = "The session now works in that organisation", body = AccessToken),
        (status = 404, description = "Not a member of it", body = ErrorEnvelope),
    ))]
async fn switch_org(
    State(state): State<AppState>,
    Authed(caller): Authed,
    ApiJson(req): ApiJson<SwitchOrgRequest>,
) -> Result<Json<AccessToken>, ApiError> {
    let (Some(user), Some(session)) = (&caller.principal.user, &caller.principal.session) else {
        return Err(ApiError::Forbidden);
    };
    let ctx = state
        .store()
        .switch_org(user.id, session.id, req.org_id)
        .await?;
    let (access_token, expires_in) = access_token(
        &state,
        user.id,
        session.id,
        Some(req.org_id),
        Some(ctx.role().name.clone()),
    );
    Ok(Json(AccessToken {
        access_token,
        token_type: "Bearer",
        expires_in,
        org_id: req.org_id,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailRequest {
    pub email: String,
}

/// Mails a one-time sign-in link. Answers the same whether or not the account exists.
#[utoipa::path(post, path = "/api/v1/auth/magic-link", tag = "auth", request_body = EmailRequest,
    responses((status = 202, description = "If the account exists, a link is on its way")))]
async fn request_magic_link(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(req): ApiJson<EmailRequest>,
) -> Result<StatusCode, ApiError> {
    account::send_email_link(&state, &req.email, EmailTokenPurpose::MagicLink, ip).await?;
    Ok(StatusCode::ACCEPTED)
}

/// Mails a one-time password-reset link. Answers the same whether or not the account exists.
#[utoipa::path(post, path = "/api/v1/auth/password-reset", tag = "auth", request_body = EmailRequest,
    responses((status = 202, description = "If the account exists, a link is on its way")))]
async fn request_password_reset(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(req): ApiJson<EmailRequest>,
) -> Result<StatusCode, ApiError> {
    account::send_email_link(&state, &req.email, EmailTokenPurpose::PasswordReset, ip).await?;
    Ok(StatusCode::ACCEPTED)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteResetRequest {
    #[schema(value_type = String)]
    pub token: SecretString,
    #[schema(value_type = String, format = Password)]
    pub new_password: SecretString,
}

/// Sets a new password with a reset link's token; every session of the account ends.
#[utoipa::path(post, path = "/api/v1/auth/password-reset/complete", tag = "auth", request_body = CompleteResetRequest,
    responses(
        (status = 204, description = "Password changed"),
        (status = 400, description = "The link is not valid (used, expired or unknown)", body = ErrorEnvelope),
        (status = 422, description = "Weak password", body = ErrorEnvelope),
    ))]
async fn complete_password_reset(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<CompleteResetRequest>,
) -> Result<StatusCode, ApiError> {
    reset_password(&state, req.token.expose_secret(), req.new_password).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Spends a reset token and sets the new password (shared with the web page).
pub(crate) async fn reset_password(
    state: &AppState,
    token: &str,
    new_password: SecretString,
) -> Result<(), ApiError> {
    // Check the password first, so a weak one does not burn the link.
    crate::auth::password::check_policy(new_password.expose_secret(), &[])
        .map_err(|e| ApiError::unprocessable("weak_password", e.to_string()))?;
    let Some(user_id) = state
        .store()
        .redeem_email_token(token, EmailTokenPurpose::PasswordReset, state.now())
        .await?
    else {
        return Err(ApiError::bad_request(
            "invalid_link",
            "this link is not valid any more; ask for a new one",
        ));
    };
    let user = state
        .store()
        .user(user_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    account::change_password(state, &user, new_password, None).await
}
