//! Running an organisation over the API: its settings, roles, members, teams,
//! invitations and API keys. Nobody can hand out more than they hold: a role, an
//! invitation or a key may only carry permissions the caller has.

use super::{ApiJson, path_id};
use crate::AppState;
use crate::auth::{Access, Tenant};
use crate::error::{ApiError, ErrorEnvelope};
use crate::routes::RouteTableBuilder;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use frontdesk_domain::{
    ApiKeyId, Email, InvitationId, Permission, PermissionSet, RoleId, TeamId, UserId,
};
use frontdesk_store::{
    ApiKeyRecord, Invitation, Member, Organisation, RoleRecord, Team, TenantCtx,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::routes;

pub(crate) fn routes(b: RouteTableBuilder) -> RouteTableBuilder {
    use Permission::*;
    b.json(routes!(get_org), Access::Member)
        .json(routes!(update_org), Access::Perm(SettingsManage))
        .json(routes!(list_permissions), Access::Member)
        .json(routes!(list_roles), Access::Member)
        .json(routes!(create_role), Access::Perm(RolesManage))
        .json(routes!(update_role), Access::Perm(RolesManage))
        .json(routes!(delete_role), Access::Perm(RolesManage))
        .json(routes!(list_members), Access::Perm(TeamManage))
        .json(routes!(set_member_role), Access::Perm(RolesManage))
        .json(routes!(remove_member), Access::Perm(TeamManage))
        .json(routes!(revoke_member_sessions), Access::Perm(TeamManage))
        .json(routes!(list_teams), Access::Perm(TeamManage))
        .json(routes!(create_team), Access::Perm(TeamManage))
        .json(routes!(rename_team), Access::Perm(TeamManage))
        .json(routes!(delete_team), Access::Perm(TeamManage))
        .json(routes!(add_team_member), Access::Perm(TeamManage))
        .json(routes!(remove_team_member), Access::Perm(TeamManage))
        .json(routes!(list_invitations), Access::Perm(TeamManage))
        .json(routes!(create_invitation), Access::Perm(TeamManage))
        .json(routes!(revoke_invitation), Access::Perm(TeamManage))
        .json(routes!(list_api_keys), Access::Perm(ApiKeysManage))
        .json(routes!(create_api_key), Access::Perm(ApiKeysManage))
        .json(routes!(revoke_api_key), Access::Perm(ApiKeysManage))
}

/// Refuses to hand out permissions the caller does not hold.
pub(crate) fn within_own(ctx: &TenantCtx, wanted: &PermissionSet) -> Result<(), ApiError> {
    if wanted.is_subset_of(&ctx.role().permissions) {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "exceeds_own_permissions",
            "you cannot grant permissions you do not have",
        ))
    }
}

fn parse_permissions(names: &[String]) -> Result<PermissionSet, ApiError> {
    PermissionSet::parse_names(names.iter().map(String::as_str))
        .map_err(|e| ApiError::unprocessable("unknown_permission", e.to_string()))
}

/// The organisation and my place in it.
#[derive(Serialize, ToSchema)]
pub struct OrgView {
    #[serde(flatten)]
    pub organisation: Organisation,
    pub my_role: String,
    pub my_permissions: Vec<&'static str>,
}

/// The organisation I act in.
#[utoipa::path(get, path = "/api/v1/org", tag = "organisation",
    responses((status = 200, description = "The organisation", body = OrgView)))]
async fn get_org(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
) -> Result<Json<OrgView>, ApiError> {
    let organisation = state.store().organisation(&ctx).await?;
    Ok(Json(OrgView {
        organisation,
        my_role: ctx.role().name.clone(),
        my_permissions: ctx.role().permissions.names(),
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateOrg {
    pub name: String,
    /// Every member must use two-factor sign-in.
    pub require_2fa: bool,
}

/// Renames the organisation and sets the two-factor requirement.
#[utoipa::path(patch, path = "/api/v1/org", tag = "organisation", request_body = UpdateOrg,
    responses((status = 200, description = "Updated", body = Organisation), (status = 422, description = "Invalid", body = ErrorEnvelope)))]
async fn update_org(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    ApiJson(req): ApiJson<UpdateOrg>,
) -> Result<Json<Organisation>, ApiError> {
    let mut tx = state.store().begin(&ctx).await?;
    tx.update_organisation(&req.name, req.require_2fa).await?;
    tx.commit().await?;
    Ok(Json(state.store().organisation(&ctx).await?))
}

/// A permission and what it allows.
#[derive(Serialize, ToSchema)]
pub struct PermissionInfo {
    pub name: &'static str,
    pub description: &'static str,
}

/// Every permission there is (for building custom roles and key scopes).
#[utoipa::path(get, path = "/api/v1/permissions", tag = "organisation",
    responses((status = 200, description = "All permissions", body = Vec<PermissionInfo>)))]
async fn list_permissions() -> Json<Vec<PermissionInfo>> {
    Json(
        Permission::ALL
            .iter()
            .map(|p| PermissionInfo {
                name: p.as_str(),
                description: p.describe(),
            })
            .collect(),
    )
}

/// The organisation's roles (built-in and custom) with member counts.
#[utoipa::path(get, path = "/api/v1/roles", tag = "organisation",
    responses((status = 200, description = "Roles", body = Vec<RoleRecord>)))]
async fn list_roles(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
) -> Result<Json<Vec<RoleRecord>>, ApiError> {
    Ok(Json(state.store().list_roles(&ctx).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleInput {
    pub name: String,
    pub permissions: Vec<String>,
    #[serde(default)]
    pub description: String,
}

/// Creates a custom role (e.g. receptionist, doctor) from a set of permissions.
#[utoipa::path(post, path = "/api/v1/roles", tag = "organisation", request_body = RoleInput,
    responses(
        (status = 201, description = "Created", body = RoleRecord),
        (status = 403, description = "Grants permissions the caller lacks", body = ErrorEnvelope),
        (status = 409, description = "Name taken", body = ErrorEnvelope),
        (status = 422, description = "Unknown permission or invalid name", body = ErrorEnvelope),
    ))]
async fn create_role(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    ApiJson(req): ApiJson<RoleInput>,
) -> Result<(StatusCode, Json<RoleRecord>), ApiError> {
    let perms = parse_permissions(&req.permissions)?;
    within_own(&ctx, &perms)?;
    let mut tx = state.store().begin(&ctx).await?;
    let role = tx
        .create_role(&req.name, perms, &req.description, state.now())
        .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(role)))
}

/// Changes a custom role; members holding it get the new permissions on their next request.
#[utoipa::path(patch, path = "/api/v1/roles/{role_id}", tag = "organisation", request_body = RoleInput,
    params(("role_id" = String, Path, description = "Role id")),
    responses(
        (status = 200, description = "Updated", body = RoleRecord),
        (status = 404, description = "No such role here", body = ErrorEnvelope),
        (status = 409, description = "Built-in role or name taken", body = ErrorEnvelope),
    ))]
async fn update_role(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<RoleInput>,
) -> Result<Json<RoleRecord>, ApiError> {
    let id = path_id(&id, RoleId::parse)?;
    let perms = parse_permissions(&req.permissions)?;
    let role = update_role_checked(&state, &ctx, id, &req.name, perms, &req.description).await?;
    Ok(Json(role))
}

/// Changes a custom role if the caller holds every permission it had and every one it
/// gets (shared with the roles page).
pub(crate) async fn update_role_checked(
    state: &AppState,
    ctx: &TenantCtx,
    id: RoleId,
    name: &str,
    permissions: PermissionSet,
    description: &str,
) -> Result<RoleRecord, ApiError> {
    let mut tx = state.store().begin(ctx).await?;
    let current = tx
        .roles()
        .await?
        .into_iter()
        .find(|r| r.id == id)
        .ok_or(ApiError::NotFound)?;
    within_own(ctx, &current.permissions)?;
    within_own(ctx, &permissions)?;
    let role = tx
        .update_role(id, name, permissions, description, state.now())
        .await?;
    tx.commit().await?;
    Ok(role)
}

/// Deletes a custom role nobody holds.
#[utoipa::path(delete, path = "/api/v1/roles/{role_id}", tag = "organisation",
    params(("role_id" = String, Path, description = "Role id")),
    responses((status = 204, description = "Deleted"), (status = 404, description = "No such role here", body = ErrorEnvelope), (status = 409, description = "Built-in or in use", body = ErrorEnvelope)))]
async fn delete_role(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = path_id(&id, RoleId::parse)?;
    let mut tx = state.store().begin(&ctx).await?;
    tx.delete_role(id).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The members, their roles and teams.
#[utoipa::path(get, path = "/api/v1/members", tag = "organisation",
    responses((status = 200, description = "Members", body = Vec<Member>)))]
async fn list_members(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
) -> Result<Json<Vec<Member>>, ApiError> {
    Ok(Json(state.store().list_members(&ctx).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberRole {
    pub role_id: RoleId,
}

/// Gives a member another role (takes effect on their next request).
#[utoipa::path(patch, path = "/api/v1/members/{user_id}", tag = "organisation", request_body = MemberRole,
    params(("user_id" = String, Path, description = "User id")),
    responses(
        (status = 204, description = "Changed"),
        (status = 403, description = "The role (old or new) has permissions the caller lacks", body = ErrorEnvelope),
        (status = 404, description = "No such member or role here", body = ErrorEnvelope),
        (status = 409, description = "Would leave the organisation without an admin", body = ErrorEnvelope),
    ))]
async fn set_member_role(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<MemberRole>,
) -> Result<StatusCode, ApiError> {
    let user = path_id(&id, UserId::parse)?;
    change_member_role(&state, &ctx, user, req.role_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Gives a member another role, if the caller holds every permission of both the old and
/// the new role, and tells the member by mail (shared with the team page).
pub(crate) async fn change_member_role(
    state: &AppState,
    ctx: &TenantCtx,
    user: UserId,
    role: RoleId,
) -> Result<(), ApiError> {
    let mut tx = state.store().begin(ctx).await?;
    let roles = tx.roles().await?;
    let current = tx.require_member(user).await?;
    let old = roles
        .iter()
        .find(|r| r.id == current)
        .ok_or(ApiError::NotFound)?;
    let new = roles
        .iter()
        .find(|r| r.id == role)
        .ok_or(ApiError::NotFound)?;
    within_own(ctx, &old.permissions)?;
    within_own(ctx, &new.permissions)?;
    tx.set_member_role(user, role).await?;
    tx.commit().await?;
    if old.id != new.id
        && let Some(member) = state
            .store()
            .list_members(ctx)
            .await?
            .into_iter()
            .find(|m| m.user_id == user)
    {
        let org = state.store().organisation(ctx).await?;
        state.mailer().send_later(
            member.email,
            format!("Your role in {} changed", org.name),
            format!(
                "Hello {},\n\nYour role in {} on Frontdesk changed from {} to {}.\nIf you did not expect this, ask your administrator.\n",
                member.name, org.name, old.name, new.name
            ),
        );
    }
    Ok(())
}

/// Fails unless the caller holds every permission of the member's role: a team manager
/// cannot act on an admin.
pub(crate) async fn require_outranks(
    state: &AppState,
    ctx: &TenantCtx,
    user: UserId,
) -> Result<(), ApiError> {
    let mut tx = state.store().begin_read(ctx).await?;
    let roles = tx.roles().await?;
    let current = tx.require_member(user).await?;
    tx.commit().await?;
    let role = roles
        .iter()
        .find(|r| r.id == current)
        .ok_or(ApiError::NotFound)?;
    within_own(ctx, &role.permissions)
}

/// Removes a member if the caller holds every permission of the member's role (shared with
/// the team page).
pub(crate) async fn remove_member_checked(
    state: &AppState,
    ctx: &TenantCtx,
    user: UserId,
) -> Result<(), ApiError> {
    let mut tx = state.store().begin(ctx).await?;
    let roles = tx.roles().await?;
    let current = tx.require_member(user).await?;
    let role = roles
        .iter()
        .find(|r| r.id == current)
        .ok_or(ApiError::NotFound)?;
    within_own(ctx, &role.permissions)?;
    tx.remove_member(user, state.now()).await?;
    tx.commit().await?;
    Ok(())
}

/// Removes a member; their sessions in this organisation end.
#[utoipa::path(delete, path = "/api/v1/members/{user_id}", tag = "organisation",
    params(("user_id" = String, Path, description = "User id")),
    responses((status = 204, description = "Removed"), (status = 404, description = "No such member here", body = ErrorEnvelope), (status = 409, description = "The last admin", body = ErrorEnvelope)))]
async fn remove_member(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let user = path_id(&id, UserId::parse)?;
    remove_member_checked(&state, &ctx, user).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Signs a member out of every session they have open in this organisation.
#[utoipa::path(post, path = "/api/v1/members/{user_id}/revoke-sessions", tag = "organisation",
    params(("user_id" = String, Path, description = "User id")),
    responses((status = 200, description = "Revoked", body = super::account::Revoked), (status = 404, description = "No such member here", body = ErrorEnvelope)))]
async fn revoke_member_sessions(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
) -> Result<Json<super::account::Revoked>, ApiError> {
    let user = path_id(&id, UserId::parse)?;
    require_outranks(&state, &ctx, user).await?;
    let revoked = state
        .store()
        .revoke_member_sessions(&ctx, user, state.now())
        .await?;
    Ok(Json(super::account::Revoked { revoked }))
}

/// The teams and their members.
#[utoipa::path(get, path = "/api/v1/teams", tag = "organisation",
    responses((status = 200, description = "Teams", body = Vec<Team>)))]
async fn list_teams(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
) -> Result<Json<Vec<Team>>, ApiError> {
    Ok(Json(state.store().list_teams(&ctx).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TeamInput {
    pub name: String,
}

/// Creates a team.
#[utoipa::path(post, path = "/api/v1/teams", tag = "organisation", request_body = TeamInput,
    responses((status = 201, description = "Created", body = Team), (status = 409, description = "Name taken", body = ErrorEnvelope)))]
async fn create_team(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    ApiJson(req): ApiJson<TeamInput>,
) -> Result<(StatusCode, Json<Team>), ApiError> {
    let mut tx = state.store().begin(&ctx).await?;
    let team = tx.create_team(&req.name, state.now()).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(team)))
}

/// Renames a team.
#[utoipa::path(patch, path = "/api/v1/teams/{team_id}", tag = "organisation", request_body = TeamInput,
    params(("team_id" = String, Path, description = "Team id")),
    responses((status = 204, description = "Renamed"), (status = 404, description = "No such team here", body = ErrorEnvelope)))]
async fn rename_team(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<TeamInput>,
) -> Result<StatusCode, ApiError> {
    let id = path_id(&id, TeamId::parse)?;
    let mut tx = state.store().begin(&ctx).await?;
    tx.rename_team(id, &req.name).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes a team.
#[utoipa::path(delete, path = "/api/v1/teams/{team_id}", tag = "organisation",
    params(("team_id" = String, Path, description = "Team id")),
    responses((status = 204, description = "Deleted"), (status = 404, description = "No such team here", body = ErrorEnvelope)))]
async fn delete_team(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = path_id(&id, TeamId::parse)?;
    let mut tx = state.store().begin(&ctx).await?;
    tx.delete_team(id).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn set_team_member(
    state: &AppState,
    ctx: &TenantCtx,
    team: &str,
    user: &str,
    member: bool,
) -> Result<StatusCode, ApiError> {
    let team = path_id(team, TeamId::parse)?;
    let user = path_id(user, UserId::parse)?;
    let mut tx = state.store().begin(ctx).await?;
    tx.set_team_member(team, user, member).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Puts a member in a team.
#[utoipa::path(put, path = "/api/v1/teams/{team_id}/members/{user_id}", tag = "organisation",
    params(("team_id" = String, Path, description = "Team id"), ("user_id" = String, Path, description = "User id")),
    responses((status = 204, description = "In the team"), (status = 404, description = "No such team or member here", body = ErrorEnvelope)))]
async fn add_team_member(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path((team, user)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    set_team_member(&state, &ctx, &team, &user, true).await
}

/// Takes a member out of a team.
#[utoipa::path(delete, path = "/api/v1/teams/{team_id}/members/{user_id}", tag = "organisation",
    params(("team_id" = String, Path, description = "Team id"), ("user_id" = String, Path, description = "User id")),
    responses((status = 204, description = "Not in the team"), (status = 404, description = "No such team or member here", body = ErrorEnvelope)))]
async fn remove_team_member(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path((team, user)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    set_team_member(&state, &ctx, &team, &user, false).await
}

/// Invitations, newest first.
#[utoipa::path(get, path = "/api/v1/invitations", tag = "organisation",
    responses((status = 200, description = "Invitations", body = Vec<Invitation>)))]
async fn list_invitations(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
) -> Result<Json<Vec<Invitation>>, ApiError> {
    Ok(Json(
        state.store().list_invitations(&ctx, state.now()).await?,
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewInvitation {
    pub email: String,
    pub role_id: RoleId,
}

/// A new invitation and its link (shown once; also mailed when SMTP is set up).
#[derive(Serialize, ToSchema)]
pub struct CreatedInvitation {
    pub invitation: Invitation,
    pub invite_url: String,
}

/// Invites someone by email with a role.
#[utoipa::path(post, path = "/api/v1/invitations", tag = "organisation", request_body = NewInvitation,
    responses(
        (status = 201, description = "Invited", body = CreatedInvitation),
        (status = 403, description = "The role has permissions the caller lacks", body = ErrorEnvelope),
        (status = 404, description = "No such role here", body = ErrorEnvelope),
        (status = 409, description = "Already a member", body = ErrorEnvelope),
    ))]
async fn create_invitation(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    ApiJson(req): ApiJson<NewInvitation>,
) -> Result<(StatusCode, Json<CreatedInvitation>), ApiError> {
    let created = invite(&state, &ctx, &req.email, req.role_id).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// Creates an invitation and mails its link (shared with the team page).
pub(crate) async fn invite(
    state: &AppState,
    ctx: &TenantCtx,
    email: &str,
    role: RoleId,
) -> Result<CreatedInvitation, ApiError> {
    let email =
        Email::parse(email).map_err(|e| ApiError::unprocessable("invalid_email", e.to_string()))?;
    let mut tx = state.store().begin(ctx).await?;
    let role_rec = tx
        .roles()
        .await?
        .into_iter()
        .find(|r| r.id == role)
        .ok_or(ApiError::NotFound)?;
    within_own(ctx, &role_rec.permissions)?;
    let (invitation, token) = tx
        .create_invitation(&email, role, state.auth().invitation_ttl, state.now())
        .await?;
    tx.commit().await?;
    let mut link = state
        .auth()
        .base_url
        .join("/invitations/accept")
        .map_err(ApiError::internal)?;
    link.query_pairs_mut()
        .append_pair("token", secrecy::ExposeSecret::expose_secret(&token));
    let org = state.store().organisation(ctx).await?;
    state.mailer().send_later(
        email.as_str().to_owned(),
        format!("You are invited to {} on Frontdesk", org.name),
        format!(
            "Hello,\n\nYou are invited to join {} on Frontdesk as {}.\nAccept within {} days:\n\n{}\n",
            org.name,
            role_rec.name,
            state.auth().invitation_ttl.whole_days(),
            link
        ),
    );
    Ok(CreatedInvitation {
        invitation,
        invite_url: link.to_string(),
    })
}

/// Withdraws a pending invitation.
#[utoipa::path(delete, path = "/api/v1/invitations/{invitation_id}", tag = "organisation",
    params(("invitation_id" = String, Path, description = "Invitation id")),
    responses((status = 204, description = "Revoked (or no longer pending)"), (status = 404, description = "No such invitation here", body = ErrorEnvelope)))]
async fn revoke_invitation(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = path_id(&id, InvitationId::parse)?;
    let mut tx = state.store().begin(&ctx).await?;
    tx.revoke_invitation(id, state.now()).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// API keys (never the keys themselves).
#[utoipa::path(get, path = "/api/v1/api-keys", tag = "organisation",
    responses((status = 200, description = "Keys", body = Vec<ApiKeyRecord>)))]
async fn list_api_keys(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
) -> Result<Json<Vec<ApiKeyRecord>>, ApiError> {
    Ok(Json(state.store().list_api_keys(&ctx).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApiKey {
    pub name: String,
    /// Permission names; within the creator's own.
    pub scopes: Vec<String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
}

/// A new key: `key` is shown this once and never again.
#[derive(Serialize, ToSchema)]
pub struct CreatedApiKey {
    pub key: String,
    pub api_key: ApiKeyRecord,
}

/// Creates an API key with a scope.
#[utoipa::path(post, path = "/api/v1/api-keys", tag = "organisation", request_body = NewApiKey,
    responses(
        (status = 201, description = "Created; the key is in the answer once", body = CreatedApiKey),
        (status = 403, description = "The scope exceeds the caller's permissions", body = ErrorEnvelope),
        (status = 422, description = "Invalid name, scope or expiry", body = ErrorEnvelope),
    ))]
async fn create_api_key(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    ApiJson(req): ApiJson<NewApiKey>,
) -> Result<(StatusCode, Json<CreatedApiKey>), ApiError> {
    let scopes = parse_permissions(&req.scopes)?;
    within_own(&ctx, &scopes)?;
    let mut tx = state.store().begin(&ctx).await?;
    let (api_key, key) = tx
        .create_api_key(&req.name, scopes, req.expires_at, state.now())
        .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedApiKey {
            key: secrecy::ExposeSecret::expose_secret(&key).to_owned(),
            api_key,
        }),
    ))
}

/// Revokes an API key (it stops working on its next request).
#[utoipa::path(delete, path = "/api/v1/api-keys/{key_id}", tag = "organisation",
    params(("key_id" = String, Path, description = "API key id")),
    responses((status = 204, description = "Revoked"), (status = 404, description = "No such key here", body = ErrorEnvelope)))]
async fn revoke_api_key(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = path_id(&id, ApiKeyId::parse)?;
    let mut tx = state.store().begin(&ctx).await?;
    tx.revoke_api_key(id, state.now()).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
