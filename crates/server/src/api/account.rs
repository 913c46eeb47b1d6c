//! A person's own account over the API: profile, password, two-factor sign-in, sessions,
//! organisations, and accepting invitations.

use super::session::{TokenPair, pair};
use super::{ApiJson, path_id};
use crate::AppState;
use crate::account;
use crate::auth::{Access, ClientIp, Me, totp};
use crate::error::{ApiError, ErrorEnvelope};
use crate::routes::RouteTableBuilder;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use frontdesk_domain::{OrgId, SessionId};
use frontdesk_store::{
    AuditRecord, InvitationPreview, OrgMembership, Organisation, SessionKind, SessionSummary, User,
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::routes;

pub(crate) fn routes(b: RouteTableBuilder) -> RouteTableBuilder {
    b.json(routes!(me), Access::Signed)
        .json(routes!(update_me), Access::Signed)
        .json(routes!(change_password), Access::Signed)
        .json(routes!(totp_setup), Access::Signed)
        .json(routes!(totp_enable), Access::Signed)
        .json(routes!(totp_disable), Access::Signed)
        .json(routes!(list_sessions), Access::Signed)
        .json(routes!(revoke_session), Access::Signed)
        .json(routes!(revoke_other_sessions), Access::Signed)
        .json(routes!(create_organisation), Access::Signed)
        .json(routes!(accept_invitation_signed_in), Access::Signed)
        .json(routes!(preview_invitation), Access::Public)
        .json(routes!(accept_invitation_new_account), Access::Public)
}

/// The acting organisation and what the caller may do in it.
#[derive(Serialize, ToSchema)]
pub struct ActiveOrg {
    pub id: OrgId,
    pub role: String,
    pub permissions: Vec<&'static str>,
}

/// Who I am.
#[derive(Serialize, ToSchema)]
pub struct MeResponse {
    pub user: User,
    pub organisations: Vec<OrgMembership>,
    pub active: Option<ActiveOrg>,
    /// The organisation requires two-factor sign-in and it is not set up yet.
    pub needs_2fa_setup: bool,
}

/// The signed-in user, their organisations and their permissions in the active one.
#[utoipa::path(get, path = "/api/v1/me", tag = "account",
    responses((status = 200, description = "Me", body = MeResponse), (status = 401, description = "Not signed in", body = ErrorEnvelope)))]
async fn me(
    State(state): State<AppState>,
    Me(user, caller): Me,
) -> Result<Json<MeResponse>, ApiError> {
    let organisations = state.store().memberships_of(user.id).await?;
    let active = caller.principal.ctx.as_ref().map(|c| ActiveOrg {
        id: c.org_id(),
        role: c.role().name.clone(),
        permissions: c.role().permissions.names(),
    });
    Ok(Json(MeResponse {
        user,
        organisations,
        active,
        needs_2fa_setup: caller.principal.needs_2fa_setup,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMe {
    pub name: String,
}

/// Changes my display name.
#[utoipa::path(patch, path = "/api/v1/me", tag = "account", request_body = UpdateMe,
    responses((status = 200, description = "Updated", body = User), (status = 422, description = "Invalid name", body = ErrorEnvelope)))]
async fn update_me(
    State(state): State<AppState>,
    Me(user, _): Me,
    ApiJson(req): ApiJson<UpdateMe>,
) -> Result<Json<User>, ApiError> {
    Ok(Json(
        state
            .store()
            .rename_user(user.id, &req.name, state.now())
            .await?,
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    #[schema(value_type = String, format = Password)]
    pub current_password: SecretString,
    #[schema(value_type = String, format = Password)]
    pub new_password: SecretString,
}

/// Changes my password; my other sessions end.
#[utoipa::path(post, path = "/api/v1/me/password", tag = "account", request_body = ChangePassword,
    responses(
        (status = 204, description = "Changed"),
        (status = 403, description = "The current password is wrong", body = ErrorEnvelope),
        (status = 422, description = "Weak new password", body = ErrorEnvelope),
    ))]
async fn change_password(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Me(user, caller): Me,
    ApiJson(req): ApiJson<ChangePassword>,
) -> Result<StatusCode, ApiError> {
    confirm_password(&state, &user, req.current_password, ip).await?;
    account::change_password(
        &state,
        &user,
        req.new_password,
        caller.principal.session.as_ref().map(|s| s.id),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Re-checks the signed-in user's password before a sensitive change.
pub(crate) async fn confirm_password(
    state: &AppState,
    user: &User,
    given: SecretString,
    ip: Option<std::net::IpAddr>,
) -> Result<(), ApiError> {
    match account::check_password(state, &user.email, given, ip).await? {
        account::PasswordCheck::Ok(_) => Ok(()),
        account::PasswordCheck::Refused => Err(ApiError::forbidden(
            "wrong_password",
            "the current password is wrong",
        )),
        account::PasswordCheck::Locked { retry_after_secs } => {
            Err(ApiError::TooManyRequests { retry_after_secs })
        }
    }
}

/// A new two-factor secret to put into an authenticator app.
#[derive(Serialize, ToSchema)]
pub struct TotpSetup {
    /// Base32, for typing into the app.
    pub secret: String,
    /// The same as an `otpauth://` URI (what the QR code on the settings page holds).
    pub otpauth_uri: String,
}

/// Starts two-factor enrolment: a fresh secret, active once confirmed with a code.
#[utoipa::path(post, path = "/api/v1/me/totp/setup", tag = "account",
    responses((status = 200, description = "A new secret", body = TotpSetup), (status = 409, description = "Already on", body = ErrorEnvelope)))]
async fn totp_setup(
    State(state): State<AppState>,
    Me(user, _): Me,
) -> Result<Json<TotpSetup>, ApiError> {
    let secret = totp::new_secret();
    state
        .store()
        .set_pending_totp(user.id, &secret, state.now())
        .await?;
    Ok(Json(TotpSetup {
        secret: totp::secret_base32(&secret),
        otpauth_uri: totp::otpauth_uri(&secret, &user.email),
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpCode {
    pub code: String,
}

/// Turns two-factor sign-in on with a code from the app.
#[utoipa::path(post, path = "/api/v1/me/totp/enable", tag = "account", request_body = TotpCode,
    responses((status = 204, description = "On"), (status = 422, description = "Wrong code, or no setup started", body = ErrorEnvelope)))]
async fn totp_enable(
    State(state): State<AppState>,
    Me(user, _): Me,
    ApiJson(req): ApiJson<TotpCode>,
) -> Result<StatusCode, ApiError> {
    enable_totp(&state, &user, &req.code).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Confirms a pending secret with a code and turns two-factor on (shared with the page).
pub(crate) async fn enable_totp(state: &AppState, user: &User, code: &str) -> Result<(), ApiError> {
    let Some(t) = state.store().totp_state(user.id).await? else {
        return Err(ApiError::unprocessable(
            "no_totp_setup",
            "start the two-factor setup first",
        ));
    };
    if t.enabled {
        return Err(ApiError::conflict(
            "totp_already_enabled",
            "two-factor sign-in is already on",
        ));
    }
    let step =
        totp::matching_step(&t.secret, code, state.now().unix_timestamp()).ok_or_else(|| {
            ApiError::unprocessable(
                "totp_invalid",
                "the code is not valid; check the time on your phone",
            )
        })?;
    state.store().accept_totp_step(user.id, step).await?;
    state
        .store()
        .set_totp_enabled(user.id, true, state.now())
        .await?;
    state
        .store()
        .record_user_event(
            user.id,
            true,
            AuditRecord::new(
                "auth.totp_enabled",
                "user",
                user.id.to_string(),
                serde_json::json!({}),
            ),
        )
        .await?;
    Ok(())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpDisable {
    #[schema(value_type = String, format = Password)]
    pub password: SecretString,
    pub code: String,
}

/// Turns two-factor sign-in off (password and a current code required).
#[utoipa::path(post, path = "/api/v1/me/totp/disable", tag = "account", request_body = TotpDisable,
    responses((status = 204, description = "Off"), (status = 403, description = "Wrong password or code", body = ErrorEnvelope)))]
async fn totp_disable(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Me(user, _): Me,
    ApiJson(req): ApiJson<TotpDisable>,
) -> Result<StatusCode, ApiError> {
    disable_totp(&state, &user, req.password, &req.code, ip).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn disable_totp(
    state: &AppState,
    user: &User,
    password: SecretString,
    code: &str,
    ip: Option<std::net::IpAddr>,
) -> Result<(), ApiError> {
    confirm_password(state, user, password, ip).await?;
    match account::second_factor(state, user, code, ip).await? {
        account::SecondFactor::Ok => {}
        account::SecondFactor::Refused => {
            return Err(ApiError::forbidden(
                "totp_invalid",
                "the two-factor code is not valid",
            ));
        }
        account::SecondFactor::Locked { retry_after_secs } => {
            return Err(ApiError::TooManyRequests { retry_after_secs });
        }
    }
    state
        .store()
        .set_totp_enabled(user.id, false, state.now())
        .await?;
    state
        .store()
        .record_user_event(
            user.id,
            true,
            AuditRecord::new(
                "auth.totp_disabled",
                "user",
                user.id.to_string(),
                serde_json::json!({}),
            ),
        )
        .await?;
    Ok(())
}

/// One of my sessions.
#[derive(Serialize, ToSchema)]
pub struct MySession {
    #[serde(flatten)]
    pub session: SessionSummary,
    /// The session this request came with.
    pub current: bool,
}

/// My live sessions (browsers and API clients).
#[utoipa::path(get, path = "/api/v1/me/sessions", tag = "account",
    responses((status = 200, description = "Sessions, newest first", body = Vec<MySession>)))]
async fn list_sessions(
    State(state): State<AppState>,
    Me(user, caller): Me,
) -> Result<Json<Vec<MySession>>, ApiError> {
    let current = caller.principal.session.as_ref().map(|s| s.id);
    let list = state.store().list_sessions(user.id, state.now()).await?;
    Ok(Json(
        list.into_iter()
            .map(|s| MySession {
                current: Some(s.id) == current,
                session: s,
            })
            .collect(),
    ))
}

/// Ends one of my sessions; it is signed out on its next request.
#[utoipa::path(delete, path = "/api/v1/me/sessions/{session_id}", tag = "account",
    params(("session_id" = String, Path, description = "Session id")),
    responses((status = 204, description = "Revoked"), (status = 404, description = "No such live session of mine", body = ErrorEnvelope)))]
async fn revoke_session(
    State(state): State<AppState>,
    Me(user, _): Me,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = path_id(&id, SessionId::parse)?;
    if !account::end_session(
        &state,
        user.id,
        id,
        "revoked_by_user",
        "auth.session_revoked",
    )
    .await?
    {
        return Err(ApiError::NotFound);
    }
    Ok(StatusCode::NO_CONTENT)
}

/// How many sessions ended.
#[derive(Serialize, ToSchema)]
pub struct Revoked {
    pub revoked: u64,
}

/// Ends all my sessions but this one.
#[utoipa::path(post, path = "/api/v1/me/sessions/revoke-others", tag = "account",
    responses((status = 200, description = "Revoked", body = Revoked)))]
async fn revoke_other_sessions(
    State(state): State<AppState>,
    Me(user, caller): Me,
) -> Result<Json<Revoked>, ApiError> {
    let keep = caller.principal.session.as_ref().map(|s| s.id);
    let revoked = account::end_other_sessions(&state, user.id, keep).await?;
    Ok(Json(Revoked { revoked }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrganisation {
    pub name: String,
}

/// Creates another organisation, of which I become admin.
#[utoipa::path(post, path = "/api/v1/organisations", tag = "account", request_body = NewOrganisation,
    responses((status = 201, description = "Created", body = Organisation), (status = 422, description = "Invalid name", body = ErrorEnvelope)))]
async fn create_organisation(
    State(state): State<AppState>,
    Me(user, _): Me,
    ApiJson(req): ApiJson<NewOrganisation>,
) -> Result<(StatusCode, Json<Organisation>), ApiError> {
    let (org, _) = state
        .store()
        .create_org_for_user(user.id, &req.name, state.now())
        .await?;
    Ok((StatusCode::CREATED, Json(org)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvitationToken {
    #[schema(value_type = String)]
    pub token: SecretString,
}

/// The organisation I joined.
#[derive(Serialize, ToSchema)]
pub struct Joined {
    pub org_id: OrgId,
    pub role: String,
}

/// Accepts an invitation sent to my email.
#[utoipa::path(post, path = "/api/v1/me/invitations/accept", tag = "account", request_body = InvitationToken,
    responses(
        (status = 200, description = "Joined", body = Joined),
        (status = 404, description = "No pending invitation with this token", body = ErrorEnvelope),
        (status = 409, description = "Sent to another email, or already a member", body = ErrorEnvelope),
    ))]
async fn accept_invitation_signed_in(
    State(state): State<AppState>,
    Me(user, _): Me,
    ApiJson(req): ApiJson<InvitationToken>,
) -> Result<Json<Joined>, ApiError> {
    let ctx = state
        .store()
        .accept_invitation(req.token.expose_secret(), &user, state.now())
        .await?;
    Ok(Json(Joined {
        org_id: ctx.org_id(),
        role: ctx.role().name.clone(),
    }))
}

/// What an invitation offers (organisation, role, email), before accepting it.
#[utoipa::path(post, path = "/api/v1/invitations/preview", tag = "account", request_body = InvitationToken,
    responses((status = 200, description = "Pending invitation", body = InvitationPreview), (status = 404, description = "No pending invitation", body = ErrorEnvelope)))]
async fn preview_invitation(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<InvitationToken>,
) -> Result<Json<InvitationPreview>, ApiError> {
    state
        .store()
        .invitation_preview(req.token.expose_secret(), state.now())
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptAsNew {
    #[schema(value_type = String)]
    pub token: SecretString,
    pub name: String,
    #[schema(value_type = String, format = Password)]
    pub password: SecretString,
}

/// Accepts an invitation by creating an account for the invited email, and signs in.
#[utoipa::path(post, path = "/api/v1/invitations/accept", tag = "account", request_body = AcceptAsNew,
    responses(
        (status = 201, description = "Account created and signed in", body = TokenPair),
        (status = 404, description = "No pending invitation", body = ErrorEnvelope),
        (status = 409, description = "An account with that email exists: sign in and accept", body = ErrorEnvelope),
    ))]
async fn accept_invitation_new_account(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    ApiJson(req): ApiJson<AcceptAsNew>,
) -> Result<(StatusCode, Json<TokenPair>), ApiError> {
    let preview = state
        .store()
        .invitation_preview(req.token.expose_secret(), state.now())
        .await?
        .ok_or(ApiError::NotFound)?;
    let hash = account::new_password_hash(req.password, &[&preview.email, &req.name]).await?;
    let (user, ctx) = state
        .store()
        .accept_invitation_as_new_user(req.token.expose_secret(), &req.name, &hash, state.now())
        .await?;
    let issued = account::open_session(
        &state,
        &user,
        SessionKind::Api,
        Some(ctx.org_id()),
        false,
        account::Client::new(ip, &headers),
        "invitation",
    )
    .await?;
    let refresh = issued
        .refresh_token
        .expect("API sessions have a refresh token");
    Ok((
        StatusCode::CREATED,
        Json(pair(&state, user.id, issued.id, Some(ctx.org_id()), &refresh).await?),
    ))
}
