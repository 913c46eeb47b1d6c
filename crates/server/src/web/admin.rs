//! Pages for running an organisation: home, team (members, invitations, teams), roles,
//! API keys, the audit log and organisation settings. They call the same rules as the API.

use super::{PageCtx, PageError, PageForm, see_other, when};
use crate::AppState;
use crate::api::admin::{
    change_member_role, invite, remove_member_checked, require_outranks, update_role_checked,
    within_own,
};
use crate::api::audit::AuditFilter;
use crate::auth::{Access, Authed, Tenant};
use crate::error::ApiError;
use crate::routes::RouteTableBuilder;
use axum::extract::{Path, Query, RawForm, State};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use axum::routing::{get, post};
use frontdesk_domain::{ApiKeyId, InvitationId, Permission, PermissionSet, RoleId, TeamId, UserId};
use maud::{Markup, html};
use serde::Deserialize;

pub(crate) fn routes(b: RouteTableBuilder) -> RouteTableBuilder {
    use Permission::*;
    b.page(Method::GET, "/", get(home), Access::Member)
        .page(
            Method::GET,
            "/team",
            get(team_page),
            Access::Perm(TeamManage),
        )
        .page(
            Method::POST,
            "/team/invitations",
            post(invitation_create),
            Access::Perm(TeamManage),
        )
        .page(
            Method::POST,
            "/team/invitations/{invitation_id}/revoke",
            post(invitation_revoke),
            Access::Perm(TeamManage),
        )
        .page(
            Method::POST,
            "/team/members/{user_id}/role",
            post(member_role),
            Access::Perm(RolesManage),
        )
        .page(
            Method::POST,
            "/team/members/{user_id}/remove",
            post(member_remove),
            Access::Perm(TeamManage),
        )
        .page(
            Method::POST,
            "/team/members/{user_id}/revoke-sessions",
            post(member_revoke_sessions),
            Access::Perm(TeamManage),
        )
        .page(
            Method::POST,
            "/team/teams",
            post(team_create),
            Access::Perm(TeamManage),
        )
        .page(
            Method::POST,
            "/team/teams/{team_id}/delete",
            post(team_delete),
            Access::Perm(TeamManage),
        )
        .page(
            Method::POST,
            "/team/teams/{team_id}/members",
            post(team_member),
            Access::Perm(TeamManage),
        )
        .page(
            Method::GET,
            "/roles",
            get(roles_page),
            Access::Perm(RolesManage),
        )
        .page(
            Method::POST,
            "/roles",
            post(role_create),
            Access::Perm(RolesManage),
        )
        .page(
            Method::POST,
            "/roles/{role_id}",
            post(role_update),
            Access::Perm(RolesManage),
        )
        .page(
            Method::POST,
            "/roles/{role_id}/delete",
            post(role_delete),
            Access::Perm(RolesManage),
        )
        .page(
            Method::GET,
            "/api-keys",
            get(keys_page),
            Access::Perm(ApiKeysManage),
        )
        .page(
            Method::POST,
            "/api-keys",
            post(key_create),
            Access::Perm(ApiKeysManage),
        )
        .page(
            Method::POST,
            "/api-keys/{key_id}/revoke",
            post(key_revoke),
            Access::Perm(ApiKeysManage),
        )
        .page(
            Method::GET,
            "/audit",
            get(audit_page),
            Access::Perm(AuditRead),
        )
        .page(
            Method::GET,
            "/settings/organisation",
            get(org_settings_page),
            Access::Perm(SettingsManage),
        )
        .page(
            Method::POST,
            "/settings/organisation",
            post(org_settings_submit),
            Access::Perm(SettingsManage),
        )
}

fn id<T>(s: &str, parse: impl Fn(&str) -> Result<T, uuid::Error>) -> Result<T, PageError> {
    parse(s).map_err(|_| PageError(ApiError::NotFound))
}

#[derive(Deserialize, Default)]
struct Notice {
    ok: Option<String>,
}

fn notice(code: &Option<String>) -> Markup {
    let text = match code.as_deref() {
        Some("saved") => Some("Saved."),
        Some("invited") => Some("Invitation sent."),
        Some("revoked") => Some("Revoked."),
        Some("removed") => Some("Removed."),
        Some("sessions_revoked") => Some("Their sessions in this organisation are signed out."),
        _ => None,
    };
    html! { @if let Some(t) = text { p.notice role="status" data-testid="notice" { (t) } } }
}

async fn home(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Tenant(ctx): Tenant,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let org = state.store().organisation(&ctx).await?;
    let page = PageCtx::new(&state, Some(caller), &headers, "/").await;
    Ok(page.render(&org.name, html! {
        p data-testid="home-role" { "You are signed in as " strong { (ctx.role().name) } "." }
        @if org.require_2fa { p.muted { "This organisation requires two-factor sign-in." } }
        section.cards {
            @if ctx.can(Permission::TeamManage) { a.card href="/team" { h3 { "Team" } p { "Members, invitations and teams." } } }
            @if ctx.can(Permission::RolesManage) { a.card href="/roles" { h3 { "Roles" } p { "Who may do what." } } }
            @if ctx.can(Permission::ApiKeysManage) { a.card href="/api-keys" { h3 { "API keys" } p { "Connect other systems." } } }
            @if ctx.can(Permission::AuditRead) { a.card href="/audit" { h3 { "Audit log" } p { "Every change, tamper-evident." } } }
        }
    }))
}

async fn team_page(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Tenant(ctx): Tenant,
    headers: HeaderMap,
    Query(q): Query<Notice>,
) -> Result<Response, PageError> {
    let members = state.store().list_members(&ctx).await?;
    let roles = state.store().list_roles(&ctx).await?;
    let teams = state.store().list_teams(&ctx).await?;
    let now = state.now();
    let invitations: Vec<_> = state
        .store()
        .list_invitations(&ctx, now)
        .await?
        .into_iter()
        .filter(|i| i.state == frontdesk_store::InvitationState::Pending)
        .collect();
    let me = ctx.user_id();
    let can_roles = ctx.can(Permission::RolesManage);
    let grantable: Vec<_> = roles
        .iter()
        .filter(|r| r.permissions.is_subset_of(&ctx.role().permissions))
        .collect();
    let page = PageCtx::new(&state, Some(caller), &headers, "/team").await;
    Ok(page.render("Team", html! {
        (notice(&q.ok))
        h2 { "Members" }
        table data-testid="members" {
            thead { tr { th { "Name" } th { "Email" } th { "Role" } th { "2FA" } th {} } }
            tbody {
                @for m in &members {
                    tr data-user-id=(m.user_id) {
                        td { (m.name) @if Some(m.user_id) == me { " " span.badge { "you" } } }
                        td { (m.email) }
                        td {
                            @if can_roles {
                                form.inline method="post" action={ "/team/members/" (m.user_id) "/role" } {
                                    (page.csrf_field())
                                    select name="role_id" {
                                        @for r in &grantable {
                                            option value=(r.id) selected[r.id == m.role_id] { (r.name) }
                                        }
                                    }
                                    button type="submit" { "Change" }
                                }
                            } @else { (m.role_name) }
                        }
                        td { @if m.totp_enabled { "on" } @else { "off" } }
                        td {
                            @if Some(m.user_id) != me {
                                form.inline method="post" action={ "/team/members/" (m.user_id) "/revoke-sessions" } data-confirm="Sign this member out everywhere in this organisation?" {
                                    (page.csrf_field())
                                    button type="submit" data-testid="member-revoke-sessions" { "Sign out" }
                                }
                                form.inline method="post" action={ "/team/members/" (m.user_id) "/remove" } data-confirm="Remove this member?" {
                                    (page.csrf_field())
                                    button.danger type="submit" { "Remove" }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Invite someone" }
        form method="post" action="/team/invitations" {
            (page.csrf_field())
            label { "Email" input type="email" name="email" required; }
            label { "Role" select name="role_id" { @for r in &grantable { option value=(r.id) selected[r.builtin == Some(frontdesk_domain::BuiltinRole::Agent)] { (r.name) } } } }
            button type="submit" data-testid="invite-submit" { "Invite" }
        }
        @if !invitations.is_empty() {
            h2 { "Pending invitations" }
            table data-testid="invitations" {
                thead { tr { th { "Email" } th { "Role" } th { "Expires" } th {} } }
                tbody {
                    @for i in &invitations {
                        tr {
                            td { (i.email) } td { (i.role_name) } td { (when(i.expires_at)) }
                            td {
                                form.inline method="post" action={ "/team/invitations/" (i.id) "/revoke" } {
                                    (page.csrf_field())
                                    button.danger type="submit" { "Withdraw" }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Teams" }
        @for t in &teams {
            div.team data-team-id=(t.id) {
                h3 { (t.name) }
                ul {
                    @for uid in &t.members {
                        @if let Some(m) = members.iter().find(|m| m.user_id == *uid) {
                            li {
                                (m.name)
                                form.inline method="post" action={ "/team/teams/" (t.id) "/members" } {
                                    (page.csrf_field())
                                    input type="hidden" name="user_id" value=(m.user_id);
                                    input type="hidden" name="action" value="remove";
                                    button.link type="submit" { "take out" }
                                }
                            }
                        }
                    }
                }
                form.inline method="post" action={ "/team/teams/" (t.id) "/members" } {
                    (page.csrf_field())
                    input type="hidden" name="action" value="add";
                    select name="user_id" { @for m in members.iter().filter(|m| !t.members.contains(&m.user_id)) { option value=(m.user_id) { (m.name) } } }
                    button type="submit" { "Add" }
                }
                form.inline method="post" action={ "/team/teams/" (t.id) "/delete" } data-confirm="Delete this team?" {
                    (page.csrf_field())
                    button.danger type="submit" { "Delete team" }
                }
            }
        }
        form method="post" action="/team/teams" {
            (page.csrf_field())
            label { "New team" input type="text" name="name" required maxlength="100"; }
            button type="submit" { "Create team" }
        }
    }))
}

#[derive(Deserialize)]
struct InviteForm {
    email: String,
    role_id: String,
}

async fn invitation_create(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Tenant(ctx): Tenant,
    headers: HeaderMap,
    PageForm(form): PageForm<InviteForm>,
) -> Result<Response, PageError> {
    let role = id(&form.role_id, RoleId::parse)?;
    let created = invite(&state, &ctx, &form.email, role).await?;
    // The link is shown once: the admin can pass it on when no mail server is set up.
    let page = PageCtx::new(&state, Some(caller), &headers, "/team").await;
    Ok(page.render("Invitation sent", html! {
        p { "We emailed an invitation to " strong { (created.invitation.email) } " (if a mail server is set up)." }
        p { "You can also send this link yourself; it works once and expires on " (when(created.invitation.expires_at)) ":" }
        p { input.copy type="text" readonly value=(created.invite_url) data-testid="invite-url"; }
        p { a href="/team" { "Back to the team" } }
    }))
}

async fn invitation_revoke(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(inv): Path<String>,
) -> Result<Response, PageError> {
    let inv = id(&inv, InvitationId::parse)?;
    let mut tx = state.store().begin(&ctx).await?;
    tx.revoke_invitation(inv, state.now()).await?;
    tx.commit().await?;
    Ok(see_other("/team?ok=revoked", &[]))
}

#[derive(Deserialize)]
struct RoleForm {
    role_id: String,
}

async fn member_role(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(user): Path<String>,
    PageForm(form): PageForm<RoleForm>,
) -> Result<Response, PageError> {
    let user = id(&user, UserId::parse)?;
    let role = id(&form.role_id, RoleId::parse)?;
    change_member_role(&state, &ctx, user, role).await?;
    Ok(see_other("/team?ok=saved", &[]))
}

async fn member_remove(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(user): Path<String>,
) -> Result<Response, PageError> {
    let user = id(&user, UserId::parse)?;
    remove_member_checked(&state, &ctx, user).await?;
    Ok(see_other("/team?ok=removed", &[]))
}

async fn member_revoke_sessions(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(user): Path<String>,
) -> Result<Response, PageError> {
    let user = id(&user, UserId::parse)?;
    require_outranks(&state, &ctx, user).await?;
    state
        .store()
        .revoke_member_sessions(&ctx, user, state.now())
        .await?;
    Ok(see_other("/team?ok=sessions_revoked", &[]))
}

#[derive(Deserialize)]
struct NameForm {
    name: String,
}

async fn team_create(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    PageForm(form): PageForm<NameForm>,
) -> Result<Response, PageError> {
    let mut tx = state.store().begin(&ctx).await?;
    tx.create_team(&form.name, state.now()).await?;
    tx.commit().await?;
    Ok(see_other("/team?ok=saved", &[]))
}

async fn team_delete(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(team): Path<String>,
) -> Result<Response, PageError> {
    let team = id(&team, TeamId::parse)?;
    let mut tx = state.store().begin(&ctx).await?;
    tx.delete_team(team).await?;
    tx.commit().await?;
    Ok(see_other("/team?ok=removed", &[]))
}

#[derive(Deserialize)]
struct TeamMemberForm {
    user_id: String,
    action: String,
}

async fn team_member(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(team): Path<String>,
    PageForm(form): PageForm<TeamMemberForm>,
) -> Result<Response, PageError> {
    let team = id(&team, TeamId::parse)?;
    let user = id(&form.user_id, UserId::parse)?;
    let mut tx = state.store().begin(&ctx).await?;
    tx.set_team_member(team, user, form.action == "add").await?;
    tx.commit().await?;
    Ok(see_other("/team?ok=saved", &[]))
}

/// Checkboxes for every permission, ticked where `have` holds it, enabled where the viewer may grant it.
fn permission_boxes(have: &PermissionSet, grantable: &PermissionSet) -> Markup {
    html! {
        fieldset.permissions {
            legend { "Permissions" }
            @for p in Permission::ALL {
                label.check title=(p.describe()) {
                    input type="checkbox" name="permission" value=(p.as_str()) checked[have.contains(*p)] disabled[!grantable.contains(*p)];
                    code { (p.as_str()) } " — " (p.describe())
                }
            }
        }
    }
}

/// Reads repeated `permission` fields and the other fields of a role form.
fn parse_role_form(raw: &[u8]) -> Result<(String, String, PermissionSet), PageError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(raw).map_err(|_| {
        PageError(ApiError::bad_request(
            "invalid_form",
            "the form is not valid",
        ))
    })?;
    let get = |k: &str| {
        pairs
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let perms = PermissionSet::parse_names(
        pairs
            .iter()
            .filter(|(k, _)| k == "permission")
            .map(|(_, v)| v.as_str()),
    )
    .map_err(|e| PageError(ApiError::unprocessable("unknown_permission", e.to_string())))?;
    Ok((get("name"), get("description"), perms))
}

async fn roles_page(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Tenant(ctx): Tenant,
    headers: HeaderMap,
    Query(q): Query<Notice>,
) -> Result<Response, PageError> {
    let roles = state.store().list_roles(&ctx).await?;
    let mine = ctx.role().permissions;
    let page = PageCtx::new(&state, Some(caller), &headers, "/roles").await;
    Ok(page.render("Roles", html! {
        (notice(&q.ok))
        @for r in &roles {
            details.role data-role-id=(r.id) {
                summary { strong { (r.name) } " · " (r.members) " member(s)" @if r.builtin.is_some() { " · built in" } }
                @if r.builtin.is_some() {
                    ul { @for p in r.permissions.iter() { li { code { (p.as_str()) } } } }
                } @else {
                    form method="post" action={ "/roles/" (r.id) } {
                        (page.csrf_field())
                        label { "Name" input type="text" name="name" value=(r.name) required maxlength="60"; }
                        label { "Description" input type="text" name="description" value=(r.description) maxlength="500"; }
                        (permission_boxes(&r.permissions, &mine))
                        button type="submit" { "Save" }
                    }
                    form method="post" action={ "/roles/" (r.id) "/delete" } data-confirm="Delete this role?" {
                        (page.csrf_field())
                        button.danger type="submit" { "Delete role" }
                    }
                }
            }
        }
        h2 { "New role" }
        form method="post" action="/roles" data-testid="new-role" {
            (page.csrf_field())
            label { "Name (e.g. Receptionist, Doctor)" input type="text" name="name" required maxlength="60"; }
            label { "Description" input type="text" name="description" maxlength="500"; }
            (permission_boxes(&PermissionSet::EMPTY, &mine))
            button type="submit" { "Create role" }
        }
    }))
}

async fn role_create(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    RawForm(raw): RawForm,
) -> Result<Response, PageError> {
    let (name, description, perms) = parse_role_form(&raw)?;
    within_own(&ctx, &perms)?;
    let mut tx = state.store().begin(&ctx).await?;
    tx.create_role(&name, perms, &description, state.now())
        .await?;
    tx.commit().await?;
    Ok(see_other("/roles?ok=saved", &[]))
}

async fn role_update(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(role): Path<String>,
    RawForm(raw): RawForm,
) -> Result<Response, PageError> {
    let role = id(&role, RoleId::parse)?;
    let (name, description, perms) = parse_role_form(&raw)?;
    update_role_checked(&state, &ctx, role, &name, perms, &description).await?;
    Ok(see_other("/roles?ok=saved", &[]))
}

async fn role_delete(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(role): Path<String>,
) -> Result<Response, PageError> {
    let role = id(&role, RoleId::parse)?;
    let mut tx = state.store().begin(&ctx).await?;
    tx.delete_role(role).await?;
    tx.commit().await?;
    Ok(see_other("/roles?ok=removed", &[]))
}

async fn keys_page(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Tenant(ctx): Tenant,
    headers: HeaderMap,
    Query(q): Query<Notice>,
) -> Result<Response, PageError> {
    let keys = state.store().list_api_keys(&ctx).await?;
    let page = PageCtx::new(&state, Some(caller), &headers, "/api-keys").await;
    Ok(page.render("API keys", html! {
        (notice(&q.ok))
        table data-testid="api-keys" {
            thead { tr { th { "Name" } th { "Key" } th { "Scope" } th { "Created" } th { "Last used" } th {} } }
            tbody {
                @for k in &keys {
                    tr {
                        td { (k.name) }
                        td { code { (k.prefix) "…" } }
                        td { (k.scopes.names().join(", ")) }
                        td { (when(k.created_at)) }
                        td { (k.last_used_at.map(when).unwrap_or_else(|| "never".into())) }
                        td {
                            @if k.revoked_at.is_some() { span.badge { "revoked" } } @else {
                                form.inline method="post" action={ "/api-keys/" (k.id) "/revoke" } data-confirm="Revoke this key? Systems using it stop working at once." {
                                    (page.csrf_field())
                                    button.danger type="submit" { "Revoke" }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { "New key" }
        form method="post" action="/api-keys" {
            (page.csrf_field())
            label { "Name" input type="text" name="name" required maxlength="100"; }
            (permission_boxes(&PermissionSet::EMPTY, &ctx.role().permissions))
            button type="submit" data-testid="key-create" { "Create key" }
        }
    }))
}

async fn key_create(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Tenant(ctx): Tenant,
    headers: HeaderMap,
    RawForm(raw): RawForm,
) -> Result<Response, PageError> {
    let (name, _, scopes) = parse_role_form(&raw)?;
    within_own(&ctx, &scopes)?;
    let mut tx = state.store().begin(&ctx).await?;
    let (record, key) = tx.create_api_key(&name, scopes, None, state.now()).await?;
    tx.commit().await?;
    let page = PageCtx::new(&state, Some(caller), &headers, "/api-keys").await;
    Ok(page.render("API key created", html! {
        p { "Copy the key for " strong { (record.name) } " now. It is shown this once; we keep only a hash of it." }
        p { input.copy type="text" readonly value=(secrecy::ExposeSecret::expose_secret(&key)) data-testid="new-key"; }
        p { a href="/api-keys" { "Done" } }
    }))
}

async fn key_revoke(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(key): Path<String>,
) -> Result<Response, PageError> {
    let key = id(&key, ApiKeyId::parse)?;
    let mut tx = state.store().begin(&ctx).await?;
    tx.revoke_api_key(key, state.now()).await?;
    tx.commit().await?;
    Ok(see_other("/api-keys?ok=revoked", &[]))
}

async fn audit_page(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Tenant(ctx): Tenant,
    headers: HeaderMap,
    Query(filter): Query<AuditFilter>,
) -> Result<Response, PageError> {
    let q = filter.to_query()?;
    let events = state.store().audit_events(&ctx, &q).await?;
    let page = PageCtx::new(&state, Some(caller), &headers, "/audit").await;
    let next = events.next_before_seq.map(|s| {
        let mut u = url::form_urlencoded::Serializer::new(String::new());
        if let Some(a) = &filter.action {
            u.append_pair("action", a);
        }
        u.append_pair("before_seq", &s.to_string());
        format!("/audit?{}", u.finish())
    });
    Ok(page.render("Audit log", html! {
        form.filters method="get" action="/audit" {
            label { "Action" input type="text" name="action" value=(filter.action.clone().unwrap_or_default()) placeholder="e.g. auth.login"; }
            button type="submit" { "Filter" }
        }
        table data-testid="audit" {
            thead { tr { th { "#" } th { "Time" } th { "Actor" } th { "Action" } th { "Target" } th { "Details" } } }
            tbody {
                @for e in &events.events {
                    tr {
                        td { (e.seq) }
                        td { (when(e.occurred_at)) }
                        td { (e.actor.to_string()) }
                        td { code { (e.action) } }
                        td { (e.target_type) " " (e.target_id) }
                        td { code { (e.data.to_string()) } }
                    }
                }
            }
        }
        @if let Some(n) = next { p { a href=(n) { "Older events" } } }
        p.muted { "Each event is chained to the one before by a SHA-256 hash; `frontdesk audit verify` checks the chain." }
    }))
}

async fn org_settings_page(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Tenant(ctx): Tenant,
    headers: HeaderMap,
    Query(q): Query<Notice>,
) -> Result<Response, PageError> {
    let org = state.store().organisation(&ctx).await?;
    let page = PageCtx::new(&state, Some(caller), &headers, "/settings/organisation").await;
    Ok(page.render("Organisation", html! {
        (notice(&q.ok))
        form method="post" action="/settings/organisation" {
            (page.csrf_field())
            label { "Name" input type="text" name="name" value=(org.name) required maxlength="200"; }
            label.check { input type="checkbox" name="require_2fa" value="on" checked[org.require_2fa]; " Every member must use two-factor sign-in" }
            button type="submit" { "Save" }
        }
    }))
}

#[derive(Deserialize)]
struct OrgForm {
    name: String,
    require_2fa: Option<String>,
}

async fn org_settings_submit(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    PageForm(form): PageForm<OrgForm>,
) -> Result<Response, PageError> {
    let mut tx = state.store().begin(&ctx).await?;
    tx.update_organisation(&form.name, form.require_2fa.as_deref() == Some("on"))
        .await?;
    tx.commit().await?;
    Ok(see_other("/settings/organisation?ok=saved", &[]))
}
