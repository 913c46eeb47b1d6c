//! Who belongs to an organisation and what they may do: sign-up, roles (built-in and
//! custom), memberships, teams and invitations. Every change is audited in the same
//! transaction.

use crate::audit::AuditRecord;
use crate::identity::{User, insert_user, member_ctx};
use crate::orgs::{Organisation, insert_organisation};
use crate::tenant::{GlobalTx, Scope, TenantCtx, TenantTx, with_conn};
use crate::tokens::{new_token, token_hash};
use crate::{Store, StoreError};
use frontdesk_domain::{
    Actor, BuiltinRole, Email, InvitationId, OrgId, PermissionSet, Role, RoleId, TeamId, UserId,
};
use secrecy::SecretString;
use serde::Serialize;
use time::{Duration, OffsetDateTime};

/// An organisation a user belongs to, for the organisation picker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct OrgMembership {
    pub org_id: OrgId,
    pub name: String,
    pub slug: String,
}

/// A role of the organisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RoleRecord {
    pub id: RoleId,
    pub name: String,
    /// Set for admin, manager and agent, whose permissions are defined by Frontdesk.
    pub builtin: Option<BuiltinRole>,
    #[schema(value_type = Vec<String>)]
    pub permissions: PermissionSet,
    pub description: String,
    pub members: i64,
}

/// A member of the organisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Member {
    pub user_id: UserId,
    pub email: String,
    pub name: String,
    pub role_id: RoleId,
    pub role_name: String,
    pub totp_enabled: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub joined_at: OffsetDateTime,
    pub teams: Vec<TeamId>,
}

/// A team of members (the inbox routes conversations to teams).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Team {
    pub id: TeamId,
    pub name: String,
    pub members: Vec<UserId>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// Where an invitation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InvitationState {
    Pending,
    Accepted,
    Revoked,
    Expired,
}

/// An invitation, as admins list it. The token is never stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Invitation {
    pub id: InvitationId,
    pub email: String,
    pub role_id: RoleId,
    pub role_name: String,
    pub state: InvitationState,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// What an invitee sees before accepting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct InvitationPreview {
    pub org_id: OrgId,
    pub org_name: String,
    pub email: String,
    pub role_name: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// A new organisation and its first user, who becomes its admin.
#[derive(Debug)]
pub struct SignUp<'a> {
    pub org_name: &'a str,
    /// Derived from the name when not given.
    pub org_slug: Option<&'a str>,
    pub user_name: &'a str,
    pub email: &'a Email,
    pub password_hash: &'a str,
    pub now: OffsetDateTime,
}

/// Builds a role from its stored columns: built-in roles take their permissions from the
/// code, custom ones from the stored list (names this release does not know are dropped).
pub(crate) fn role_from_row(
    name: String,
    builtin: Option<&str>,
    permissions: &str,
) -> Result<Role, StoreError> {
    let permissions = match builtin {
        Some(b) => BuiltinRole::parse(b)
            .ok_or_else(|| StoreError::Corrupt(format!("built-in role {b:?}")))?
            .permissions(),
        None => stored_permissions(permissions)?,
    };
    Ok(Role { name, permissions })
}

fn stored_permissions(json: &str) -> Result<PermissionSet, StoreError> {
    let names: Vec<String> = serde_json::from_str(json)
        .map_err(|e| StoreError::Corrupt(format!("role permissions: {e}")))?;
    Ok(names
        .iter()
        .filter_map(|n| frontdesk_domain::Permission::parse(n))
        .collect())
}

/// A custom role's name (not a built-in role's) and description, checked and trimmed.
fn role_fields(name: &str, description: &str) -> Result<(String, String), StoreError> {
    let name = valid_label(name, 60, "role name")?;
    if BuiltinRole::parse(&name.to_lowercase()).is_some() {
        return Err(StoreError::Conflict("role_name_taken"));
    }
    Ok((name, description.trim().chars().take(500).collect()))
}

fn permissions_json(p: &PermissionSet) -> String {
    serde_json::to_string(&p.names()).expect("names serialise")
}

/// A trimmed label of 1 to `max` characters without control characters; the error names `what`.
pub(crate) fn valid_label(s: &str, max: usize, what: &str) -> Result<String, StoreError> {
    let s = s.trim();
    if s.is_empty() || s.chars().count() > max || s.chars().any(char::is_control) {
        return Err(StoreError::Invalid(format!(
            "a {what} is 1–{max} characters"
        )));
    }
    Ok(s.to_owned())
}

/// A slug from a name: lower-case letters and digits joined by single dashes.
pub fn slugify(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
        if out.len() >= 40 {
            break;
        }
    }
    let out = out.trim_matches('-').to_owned();
    if out.is_empty() { "org".into() } else { out }
}

async fn slug_exists(g: &mut GlobalTx, slug: &str) -> Result<bool, StoreError> {
    g.scope(Scope::System).await?;
    let n: i64 = with_conn!(g.tx, c => {
        sqlx::query_scalar("SELECT count(*) FROM organisations WHERE slug = $1")
            .bind(slug)
            .fetch_one(c)
            .await?
    });
    g.scope(Scope::None).await?;
    Ok(n > 0)
}

/// The slug to use: the one asked for (it must be free), or one derived from the name
/// with a short random suffix when the plain form is taken.
async fn choose_slug(
    g: &mut GlobalTx,
    name: &str,
    asked: Option<&str>,
) -> Result<String, StoreError> {
    if let Some(s) = asked {
        if slug_exists(g, s).await? {
            return Err(StoreError::Conflict("slug_taken"));
        }
        return Ok(s.to_owned());
    }
    let base = slugify(name);
    if !slug_exists(g, &base).await? {
        return Ok(base);
    }
    for _ in 0..5 {
        let suffix: String = crate::tokens::random_urlsafe(4)
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(4)
            .collect::<String>()
            .to_lowercase();
        let candidate = format!("{base}-{suffix}");
        if !slug_exists(g, &candidate).await? {
            return Ok(candidate);
        }
    }
    Err(StoreError::Conflict("slug_taken"))
}

/// Gives a new organisation its built-in roles; returns the admin role's id.
async fn seed_builtin_roles(tx: &mut TenantTx, now: OffsetDateTime) -> Result<RoleId, StoreError> {
    let org = tx.ctx().org_id().as_uuid();
    let mut admin = None;
    for r in BuiltinRole::ALL {
        let id = RoleId::new();
        if r == BuiltinRole::Admin {
            admin = Some(id);
        }
        with_conn!(tx.tx, c => {
            sqlx::query("INSERT INTO roles (org_id, id, name, builtin, permissions, description, created_at, updated_at) VALUES ($1, $2, $3, $4, '[]', '', $5, $5)")
                .bind(org)
                .bind(id.as_uuid())
                .bind(r.as_str())
                .bind(r.as_str())
                .bind(now)
                .execute(c)
                .await?;
        });
    }
    Ok(admin.expect("admin is built in"))
}

pub(crate) async fn seed_roles_and_admin(
    tx: &mut TenantTx,
    admin_user: Option<UserId>,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    let admin_role = seed_builtin_roles(tx, now).await?;
    if let Some(u) = admin_user {
        insert_membership(tx, u, admin_role, now).await?;
    }
    Ok(())
}

async fn insert_membership(
    tx: &mut TenantTx,
    user: UserId,
    role: RoleId,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    let org = tx.ctx().org_id().as_uuid();
    with_conn!(tx.tx, c => {
        sqlx::query("INSERT INTO memberships (org_id, user_id, role_id, created_at) VALUES ($1, $2, $3, $4)")
            .bind(org)
            .bind(user.as_uuid())
            .bind(role.as_uuid())
            .bind(now)
            .execute(c)
            .await?;
    });
    Ok(())
}

impl Store {
    /// Creates an organisation and its first user, an admin, in one transaction.
    pub async fn sign_up(
        &self,
        s: SignUp<'_>,
    ) -> Result<(User, Organisation, TenantCtx), StoreError> {
        let name = valid_label(s.org_name, 200, "organisation name")?;
        if let Some(slug) = s.org_slug
            && !crate::orgs::valid_slug(slug)
        {
            return Err(StoreError::Invalid(
                "a slug is 1–64 of a-z, 0-9 and '-'".into(),
            ));
        }
        let mut g = self.begin_global(true).await?;
        let user = insert_user(&mut g, s.email, s.user_name, Some(s.password_hash), s.now).await?;
        let slug = choose_slug(&mut g, &name, s.org_slug).await?;
        let org_id = OrgId::new();
        let ctx = TenantCtx::new(
            org_id,
            Actor::User(user.id),
            Role::builtin(BuiltinRole::Admin),
        );
        let mut tx = g.into_tenant(ctx.clone()).await?;
        let org = insert_organisation(&mut tx, org_id, &name, &slug, s.now).await?;
        seed_roles_and_admin(&mut tx, Some(user.id), s.now).await?;
        tx.audit(AuditRecord::new(
            "user.signed_up",
            "user",
            user.id.to_string(),
            serde_json::json!({}),
        ))
        .await?;
        tx.commit().await?;
        Ok((user, org, ctx))
    }

    /// A signed-in user creates another organisation, of which they become admin.
    pub async fn create_org_for_user(
        &self,
        user: UserId,
        name: &str,
        now: OffsetDateTime,
    ) -> Result<(Organisation, TenantCtx), StoreError> {
        let name = valid_label(name, 200, "organisation name")?;
        let mut g = self.begin_global(true).await?;
        let slug = choose_slug(&mut g, &name, None).await?;
        let org_id = OrgId::new();
        let ctx = TenantCtx::new(org_id, Actor::User(user), Role::builtin(BuiltinRole::Admin));
        let mut tx = g.into_tenant(ctx.clone()).await?;
        let org = insert_organisation(&mut tx, org_id, &name, &slug, now).await?;
        seed_roles_and_admin(&mut tx, Some(user), now).await?;
        tx.commit().await?;
        Ok((org, ctx))
    }

    /// The organisations a user belongs to, by name.
    pub async fn memberships_of(&self, user: UserId) -> Result<Vec<OrgMembership>, StoreError> {
        let mut g = self.begin_global(false).await?;
        g.scope(Scope::User(user)).await?;
        let rows: Vec<(uuid::Uuid, String, String)> = with_conn!(g.tx, c => {
            sqlx::query_as("SELECT o.id, o.name, o.slug FROM memberships m JOIN organisations o ON o.id = m.org_id WHERE m.user_id = $1 ORDER BY o.name")
                .bind(user.as_uuid())
                .fetch_all(c)
                .await?
        });
        g.commit().await?;
        Ok(rows
            .into_iter()
            .map(|(id, name, slug)| OrgMembership {
                org_id: OrgId::from_uuid(id),
                name,
                slug,
            })
            .collect())
    }

    /// Records a sign-in event of `user` (login, failed login, logout, revocation, password
    /// or two-factor change) in the audit chain of every organisation they belong to, in one
    /// transaction. `by_user`: the user acted (else Frontdesk's sign-in code, e.g. for a
    /// failed attempt that may not be theirs). Returns how many chains got the event.
    pub async fn record_user_event(
        &self,
        user: UserId,
        by_user: bool,
        record: AuditRecord,
    ) -> Result<usize, StoreError> {
        let mut g = self.begin_global(true).await?;
        g.scope(Scope::User(user)).await?;
        let orgs: Vec<uuid::Uuid> = with_conn!(g.tx, c => {
            sqlx::query_scalar("SELECT org_id FROM memberships WHERE user_id = $1 ORDER BY org_id")
                .bind(user.as_uuid())
                .fetch_all(c)
                .await?
        });
        let actor = if by_user {
            Actor::User(user)
        } else {
            Actor::System("sign-in".into())
        };
        for org in &orgs {
            let ctx = TenantCtx::new(OrgId::from_uuid(*org), actor.clone(), Role::system());
            let mut tx = g.into_tenant(ctx).await?;
            tx.audit(record.clone()).await?;
            g = tx.into_global().await?;
        }
        g.commit().await?;
        Ok(orgs.len())
    }

    /// The context a user would act in within `org`, if they belong to it.
    pub async fn member_context(
        &self,
        user: UserId,
        org: OrgId,
    ) -> Result<Option<TenantCtx>, StoreError> {
        let mut g = self.begin_global(false).await?;
        let ctx = member_ctx(&mut g, org, user).await?.map(|(c, _)| c);
        g.commit().await?;
        Ok(ctx)
    }

    pub async fn list_roles(&self, ctx: &TenantCtx) -> Result<Vec<RoleRecord>, StoreError> {
        let mut tx = self.begin_read(ctx).await?;
        let roles = tx.roles().await?;
        tx.commit().await?;
        Ok(roles)
    }

    pub async fn list_members(&self, ctx: &TenantCtx) -> Result<Vec<Member>, StoreError> {
        type Row = (
            uuid::Uuid,
            String,
            String,
            uuid::Uuid,
            String,
            bool,
            OffsetDateTime,
        );
        let org = ctx.org_id().as_uuid();
        let mut tx = self.begin_read(ctx).await?;
        // Users are a global table: the join reaches only users who are members here.
        let rows: Vec<Row> = with_conn!(tx.tx, c => {
            sqlx::query_as("SELECT u.id, u.email, u.name, r.id, r.name, u.totp_enabled, m.created_at FROM memberships m JOIN users u ON u.id = m.user_id JOIN roles r ON r.org_id = m.org_id AND r.id = m.role_id WHERE m.org_id = $1 ORDER BY u.name, u.email")
                .bind(org)
                .fetch_all(c)
                .await?
        });
        let links: Vec<(uuid::Uuid, uuid::Uuid)> = with_conn!(tx.tx, c => {
            sqlx::query_as("SELECT user_id, team_id FROM team_members WHERE org_id = $1 ORDER BY team_id")
                .bind(org)
                .fetch_all(c)
                .await?
        });
        tx.commit().await?;
        Ok(rows
            .into_iter()
            .map(|(uid, email, name, rid, rname, totp, joined)| Member {
                user_id: UserId::from_uuid(uid),
                email,
                name,
                role_id: RoleId::from_uuid(rid),
                role_name: rname,
                totp_enabled: totp,
                joined_at: joined,
                teams: links
                    .iter()
                    .filter(|(u, _)| *u == uid)
                    .map(|(_, t)| TeamId::from_uuid(*t))
                    .collect(),
            })
            .collect())
    }

    pub async fn list_teams(&self, ctx: &TenantCtx) -> Result<Vec<Team>, StoreError> {
        let org = ctx.org_id().as_uuid();
        let mut tx = self.begin_read(ctx).await?;
        let rows: Vec<(uuid::Uuid, String, OffsetDateTime)> = with_conn!(tx.tx, c => {
            sqlx::query_as("SELECT id, name, created_at FROM teams WHERE org_id = $1 ORDER BY name")
                .bind(org)
                .fetch_all(c)
                .await?
        });
        let links: Vec<(uuid::Uuid, uuid::Uuid)> = with_conn!(tx.tx, c => {
            sqlx::query_as("SELECT team_id, user_id FROM team_members WHERE org_id = $1 ORDER BY user_id")
                .bind(org)
                .fetch_all(c)
                .await?
        });
        tx.commit().await?;
        Ok(rows
            .into_iter()
            .map(|(id, name, created_at)| Team {
                id: TeamId::from_uuid(id),
                name,
                members: links
                    .iter()
                    .filter(|(t, _)| *t == id)
                    .map(|(_, u)| UserId::from_uuid(*u))
                    .collect(),
                created_at,
            })
            .collect())
    }

    pub async fn list_invitations(
        &self,
        ctx: &TenantCtx,
        now: OffsetDateTime,
    ) -> Result<Vec<Invitation>, StoreError> {
        type Row = (
            uuid::Uuid,
            String,
            uuid::Uuid,
            String,
            OffsetDateTime,
            OffsetDateTime,
            Option<OffsetDateTime>,
            Option<OffsetDateTime>,
        );
        let mut tx = self.begin_read(ctx).await?;
        let rows: Vec<Row> = with_conn!(tx.tx, c => {
            sqlx::query_as("SELECT i.id, i.email, i.role_id, r.name, i.created_at, i.expires_at, i.accepted_at, i.revoked_at FROM invitations i JOIN roles r ON r.org_id = i.org_id AND r.id = i.role_id WHERE i.org_id = $1 ORDER BY i.created_at DESC LIMIT 500")
                .bind(ctx.org_id().as_uuid())
                .fetch_all(c)
                .await?
        });
        tx.commit().await?;
        Ok(rows
            .into_iter()
            .map(
                |(id, email, rid, rname, created_at, expires_at, accepted, revoked)| Invitation {
                    id: InvitationId::from_uuid(id),
                    email,
                    role_id: RoleId::from_uuid(rid),
                    role_name: rname,
                    state: invitation_state(accepted, revoked, expires_at, now),
                    created_at,
                    expires_at,
                },
            )
            .collect())
    }

    /// What an invitation link offers, if it is still pending.
    pub async fn invitation_preview(
        &self,
        token: &str,
        now: OffsetDateTime,
    ) -> Result<Option<InvitationPreview>, StoreError> {
        let mut g = self.begin_global(false).await?;
        let found = find_invitation(&mut g, token, now).await?;
        let Some(inv) = found else {
            g.commit().await?;
            return Ok(None);
        };
        g.scope(Scope::Tenant(inv.org)).await?;
        let row: (String, String) = with_conn!(g.tx, c => {
            sqlx::query_as("SELECT o.name, r.name FROM organisations o JOIN roles r ON r.org_id = o.id WHERE o.id = $1 AND r.id = $2")
                .bind(inv.org.as_uuid())
                .bind(inv.role.as_uuid())
                .fetch_one(c)
                .await?
        });
        g.commit().await?;
        Ok(Some(InvitationPreview {
            org_id: inv.org,
            org_name: row.0,
            email: inv.email,
            role_name: row.1,
            expires_at: inv.expires_at,
        }))
    }

    /// An existing user accepts an invitation addressed to their email.
    pub async fn accept_invitation(
        &self,
        token: &str,
        user: &User,
        now: OffsetDateTime,
    ) -> Result<TenantCtx, StoreError> {
        let mut g = self.begin_global(true).await?;
        let inv = find_invitation(&mut g, token, now)
            .await?
            .ok_or(StoreError::NotFound)?;
        if inv.email != user.email {
            return Err(StoreError::Conflict("invitation_for_another_email"));
        }
        join_by_invitation(g, inv, user.id, now).await
    }

    /// Someone new accepts an invitation: their account is created with the invited email.
    pub async fn accept_invitation_as_new_user(
        &self,
        token: &str,
        name: &str,
        password_hash: &str,
        now: OffsetDateTime,
    ) -> Result<(User, TenantCtx), StoreError> {
        let mut g = self.begin_global(true).await?;
        let inv = find_invitation(&mut g, token, now)
            .await?
            .ok_or(StoreError::NotFound)?;
        let email =
            Email::parse(&inv.email).map_err(|_| StoreError::Corrupt("invitation email".into()))?;
        let user = insert_user(&mut g, &email, name, Some(password_hash), now).await?;
        let ctx = join_by_invitation(g, inv, user.id, now).await?;
        Ok((user, ctx))
    }

    /// Ends the sessions a member has open in the context's organisation (admins use it).
    pub async fn revoke_member_sessions(
        &self,
        ctx: &TenantCtx,
        user: UserId,
        now: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        let mut tx = self.begin(ctx).await?;
        tx.require_member(user).await?;
        tx.audit(AuditRecord::new(
            "member.sessions_revoked",
            "user",
            user.to_string(),
            serde_json::json!({}),
        ))
        .await?;
        let n = revoke_sessions_in_org(&mut tx, user, "revoked_by_admin", now).await?;
        tx.commit().await?;
        Ok(n)
    }
}

/// Revokes the user's sessions that work in the transaction's organisation.
async fn revoke_sessions_in_org(
    tx: &mut TenantTx,
    user: UserId,
    reason: &str,
    now: OffsetDateTime,
) -> Result<u64, StoreError> {
    let org = tx.ctx().org_id().as_uuid();
    let n = with_conn!(tx.tx, c => {
        sqlx::query("UPDATE sessions SET revoked_at = $3, revoked_reason = $4 WHERE user_id = $1 AND active_org_id = $2 AND revoked_at IS NULL")
            .bind(user.as_uuid())
            .bind(org)
            .bind(now)
            .bind(reason)
            .execute(c)
            .await?
            .rows_affected()
    });
    Ok(n)
}

fn invitation_state(
    accepted: Option<OffsetDateTime>,
    revoked: Option<OffsetDateTime>,
    expires_at: OffsetDateTime,
    now: OffsetDateTime,
) -> InvitationState {
    if accepted.is_some() {
        InvitationState::Accepted
    } else if revoked.is_some() {
        InvitationState::Revoked
    } else if expires_at <= now {
        InvitationState::Expired
    } else {
        InvitationState::Pending
    }
}

struct FoundInvitation {
    org: OrgId,
    id: InvitationId,
    email: String,
    role: RoleId,
    expires_at: OffsetDateTime,
}

/// A pending invitation by its token, read in the token's scope (its organisation is not
/// known until then).
async fn find_invitation(
    g: &mut GlobalTx,
    token: &str,
    now: OffsetDateTime,
) -> Result<Option<FoundInvitation>, StoreError> {
    let hash = token_hash(token);
    g.scope(Scope::Token(&hash)).await?;
    type Row = (uuid::Uuid, uuid::Uuid, String, uuid::Uuid, OffsetDateTime);
    let row: Option<Row> = with_conn!(g.tx, c => {
        sqlx::query_as("SELECT org_id, id, email, role_id, expires_at FROM invitations WHERE token_hash = $1 AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > $2")
            .bind(&hash[..])
            .bind(now)
            .fetch_optional(c)
            .await?
    });
    g.scope(Scope::None).await?;
    Ok(
        row.map(|(org, id, email, role, expires_at)| FoundInvitation {
            org: OrgId::from_uuid(org),
            id: InvitationId::from_uuid(id),
            email,
            role: RoleId::from_uuid(role),
            expires_at,
        }),
    )
}

async fn join_by_invitation(
    g: GlobalTx,
    inv: FoundInvitation,
    user: UserId,
    now: OffsetDateTime,
) -> Result<TenantCtx, StoreError> {
    // The context is rebuilt from the role row once the membership exists.
    let placeholder = TenantCtx::new(
        inv.org,
        Actor::User(user),
        Role {
            name: String::new(),
            permissions: PermissionSet::EMPTY,
        },
    );
    let mut tx = g.into_tenant(placeholder).await?;
    let already: i64 = with_conn!(tx.tx, c => {
        sqlx::query_scalar("SELECT count(*) FROM memberships WHERE org_id = $1 AND user_id = $2")
            .bind(inv.org.as_uuid())
            .bind(user.as_uuid())
            .fetch_one(c)
            .await?
    });
    if already > 0 {
        return Err(StoreError::Conflict("already_a_member"));
    }
    insert_membership(&mut tx, user, inv.role, now).await?;
    with_conn!(tx.tx, c => {
        sqlx::query("UPDATE invitations SET accepted_at = $3 WHERE org_id = $1 AND id = $2")
            .bind(inv.org.as_uuid())
            .bind(inv.id.as_uuid())
            .bind(now)
            .execute(c)
            .await?;
    });
    tx.audit(AuditRecord::new(
        "invitation.accepted",
        "invitation",
        inv.id.to_string(),
        serde_json::json!({ "user_id": user }),
    ))
    .await?;
    let mut g = tx.into_global().await?;
    let (ctx, _) = member_ctx(&mut g, inv.org, user)
        .await?
        .ok_or(StoreError::NotFound)?;
    g.commit().await?;
    Ok(ctx)
}

impl TenantTx {
    pub(crate) fn org(&self) -> uuid::Uuid {
        self.ctx().org_id().as_uuid()
    }

    /// Every role of the organisation with its member count.
    pub async fn roles(&mut self) -> Result<Vec<RoleRecord>, StoreError> {
        type Row = (uuid::Uuid, String, Option<String>, String, String, i64);
        let org = self.org();
        let rows: Vec<Row> = with_conn!(self.tx, c => {
            sqlx::query_as("SELECT r.id, r.name, r.builtin, r.permissions, r.description, (SELECT count(*) FROM memberships m WHERE m.org_id = r.org_id AND m.role_id = r.id) FROM roles r WHERE r.org_id = $1 ORDER BY r.builtin IS NULL, r.name")
                .bind(org)
                .fetch_all(c)
                .await?
        });
        rows.into_iter()
            .map(|(id, name, builtin, perms, description, members)| {
                let role = role_from_row(name, builtin.as_deref(), &perms)?;
                Ok(RoleRecord {
                    id: RoleId::from_uuid(id),
                    name: role.name,
                    builtin: builtin.as_deref().and_then(BuiltinRole::parse),
                    permissions: role.permissions,
                    description,
                    members,
                })
            })
            .collect()
    }

    async fn role(&mut self, id: RoleId) -> Result<RoleRecord, StoreError> {
        self.roles()
            .await?
            .into_iter()
            .find(|r| r.id == id)
            .ok_or(StoreError::NotFound)
    }

    pub async fn create_role(
        &mut self,
        name: &str,
        permissions: PermissionSet,
        description: &str,
        now: OffsetDateTime,
    ) -> Result<RoleRecord, StoreError> {
        let (name, description) = role_fields(name, description)?;
        let id = RoleId::new();
        let org = self.org();
        let r = with_conn!(self.tx, c => {
            sqlx::query("INSERT INTO roles (org_id, id, name, builtin, permissions, description, created_at, updated_at) VALUES ($1, $2, $3, NULL, $4, $5, $6, $6)")
                .bind(org)
                .bind(id.as_uuid())
                .bind(&name)
                .bind(permissions_json(&permissions))
                .bind(&description)
                .bind(now)
                .execute(c)
                .await
                .map(|d| d.rows_affected())
        });
        map_unique(r, "role_name_taken")?;
        self.audit(AuditRecord::new(
            "role.created",
            "role",
            id.to_string(),
            serde_json::json!({ "name": name, "permissions": permissions }),
        ))
        .await?;
        self.role(id).await
    }

    pub async fn update_role(
        &mut self,
        id: RoleId,
        name: &str,
        permissions: PermissionSet,
        description: &str,
        now: OffsetDateTime,
    ) -> Result<RoleRecord, StoreError> {
        let before = self.role(id).await?;
        if before.builtin.is_some() {
            return Err(StoreError::Conflict("builtin_role"));
        }
        let (name, description) = role_fields(name, description)?;
        let org = self.org();
        let r = with_conn!(self.tx, c => {
            sqlx::query("UPDATE roles SET name = $3, permissions = $4, description = $5, updated_at = $6 WHERE org_id = $1 AND id = $2")
                .bind(org)
                .bind(id.as_uuid())
                .bind(&name)
                .bind(permissions_json(&permissions))
                .bind(&description)
                .bind(now)
                .execute(c)
                .await
                .map(|d| d.rows_affected())
        });
        map_unique(r, "role_name_taken")?;
        self.audit(AuditRecord::new(
            "role.updated",
            "role",
            id.to_string(),
            serde_json::json!({ "name": name, "permissions": permissions, "previous_permissions": before.permissions }),
        ))
        .await?;
        self.role(id).await
    }

    pub async fn delete_role(&mut self, id: RoleId) -> Result<(), StoreError> {
        let role = self.role(id).await?;
        if role.builtin.is_some() {
            return Err(StoreError::Conflict("builtin_role"));
        }
        if role.members > 0 {
            return Err(StoreError::Conflict("role_in_use"));
        }
        let org = self.org();
        with_conn!(self.tx, c => {
            sqlx::query("DELETE FROM roles WHERE org_id = $1 AND id = $2")
                .bind(org)
                .bind(id.as_uuid())
                .execute(c)
                .await?;
        });
        self.audit(AuditRecord::new(
            "role.deleted",
            "role",
            id.to_string(),
            serde_json::json!({ "name": role.name }),
        ))
        .await?;
        Ok(())
    }

    /// Fails with `NotFound` unless the user is a member of this organisation.
    pub async fn require_member(&mut self, user: UserId) -> Result<RoleId, StoreError> {
        let org = self.org();
        let role: Option<uuid::Uuid> = with_conn!(self.tx, c => {
            sqlx::query_scalar("SELECT role_id FROM memberships WHERE org_id = $1 AND user_id = $2")
                .bind(org)
                .bind(user.as_uuid())
                .fetch_optional(c)
                .await?
        });
        role.map(RoleId::from_uuid).ok_or(StoreError::NotFound)
    }

    async fn admin_count(&mut self) -> Result<i64, StoreError> {
        let org = self.org();
        Ok(with_conn!(self.tx, c => {
            sqlx::query_scalar("SELECT count(*) FROM memberships m JOIN roles r ON r.org_id = m.org_id AND r.id = m.role_id WHERE m.org_id = $1 AND r.builtin = 'admin'")
                .bind(org)
                .fetch_one(c)
                .await?
        }))
    }

    /// Gives a member another role. The organisation always keeps at least one admin.
    pub async fn set_member_role(&mut self, user: UserId, role: RoleId) -> Result<(), StoreError> {
        let previous = self.require_member(user).await?;
        let new_role = self.role(role).await?;
        let org = self.org();
        with_conn!(self.tx, c => {
            sqlx::query("UPDATE memberships SET role_id = $3 WHERE org_id = $1 AND user_id = $2")
                .bind(org)
                .bind(user.as_uuid())
                .bind(role.as_uuid())
                .execute(c)
                .await?;
        });
        if self.admin_count().await? == 0 {
            return Err(StoreError::Conflict("last_admin"));
        }
        self.audit(AuditRecord::new(
            "member.role_changed",
            "user",
            user.to_string(),
            serde_json::json!({ "from_role": previous, "to_role": role, "to_role_name": new_role.name }),
        ))
        .await?;
        Ok(())
    }

    /// Removes a member (and ends their sessions in this organisation). The organisation
    /// always keeps at least one admin.
    pub async fn remove_member(
        &mut self,
        user: UserId,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.require_member(user).await?;
        let org = self.org();
        with_conn!(self.tx, c => {
            sqlx::query("DELETE FROM memberships WHERE org_id = $1 AND user_id = $2")
                .bind(org)
                .bind(user.as_uuid())
                .execute(c)
                .await?;
        });
        if self.admin_count().await? == 0 {
            return Err(StoreError::Conflict("last_admin"));
        }
        revoke_sessions_in_org(self, user, "removed_from_organisation", now).await?;
        self.audit(AuditRecord::new(
            "member.removed",
            "user",
            user.to_string(),
            serde_json::json!({}),
        ))
        .await?;
        Ok(())
    }

    pub async fn create_team(
        &mut self,
        name: &str,
        now: OffsetDateTime,
    ) -> Result<Team, StoreError> {
        let name = valid_label(name, 100, "team name")?;
        let id = TeamId::new();
        let org = self.org();
        let r = with_conn!(self.tx, c => {
            sqlx::query("INSERT INTO teams (org_id, id, name, created_at) VALUES ($1, $2, $3, $4)")
                .bind(org)
                .bind(id.as_uuid())
                .bind(&name)
                .bind(now)
                .execute(c)
                .await
                .map(|d| d.rows_affected())
        });
        map_unique(r, "team_name_taken")?;
        self.audit(AuditRecord::new(
            "team.created",
            "team",
            id.to_string(),
            serde_json::json!({ "name": name }),
        ))
        .await?;
        Ok(Team {
            id,
            name,
            members: Vec::new(),
            created_at: now,
        })
    }

    pub async fn rename_team(&mut self, id: TeamId, name: &str) -> Result<(), StoreError> {
        let name = valid_label(name, 100, "team name")?;
        let org = self.org();
        let r = with_conn!(self.tx, c => {
            sqlx::query("UPDATE teams SET name = $3 WHERE org_id = $1 AND id = $2")
                .bind(org)
                .bind(id.as_uuid())
                .bind(&name)
                .execute(c)
                .await
                .map(|d| d.rows_affected())
        });
        if map_unique(r, "team_name_taken")? == 0 {
            return Err(StoreError::NotFound);
        }
        self.audit(AuditRecord::new(
            "team.renamed",
            "team",
            id.to_string(),
            serde_json::json!({ "name": name }),
        ))
        .await?;
        Ok(())
    }

    pub async fn delete_team(&mut self, id: TeamId) -> Result<(), StoreError> {
        let org = self.org();
        let n = with_conn!(self.tx, c => {
            sqlx::query("DELETE FROM teams WHERE org_id = $1 AND id = $2")
                .bind(org)
                .bind(id.as_uuid())
                .execute(c)
                .await?
                .rows_affected()
        });
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        self.audit(AuditRecord::new(
            "team.deleted",
            "team",
            id.to_string(),
            serde_json::json!({}),
        ))
        .await?;
        Ok(())
    }

    /// Puts a member in a team or takes them out; true if anything changed.
    pub async fn set_team_member(
        &mut self,
        team: TeamId,
        user: UserId,
        member: bool,
    ) -> Result<bool, StoreError> {
        self.require_member(user).await?;
        let org = self.org();
        let exists: i64 = with_conn!(self.tx, c => {
            sqlx::query_scalar("SELECT count(*) FROM teams WHERE org_id = $1 AND id = $2")
                .bind(org)
                .bind(team.as_uuid())
                .fetch_one(c)
                .await?
        });
        if exists == 0 {
            return Err(StoreError::NotFound);
        }
        let n = with_conn!(self.tx, c => {
            if member {
                sqlx::query("INSERT INTO team_members (org_id, team_id, user_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
            } else {
                sqlx::query("DELETE FROM team_members WHERE org_id = $1 AND team_id = $2 AND user_id = $3")
            }
            .bind(org)
            .bind(team.as_uuid())
            .bind(user.as_uuid())
            .execute(c)
            .await?
            .rows_affected()
        });
        if n > 0 {
            let action = if member {
                "team.member_added"
            } else {
                "team.member_removed"
            };
            self.audit(AuditRecord::new(
                action,
                "team",
                team.to_string(),
                serde_json::json!({ "user_id": user }),
            ))
            .await?;
        }
        Ok(n > 0)
    }

    /// Invites an email address with a role; the token goes into the invitation mail.
    pub async fn create_invitation(
        &mut self,
        email: &Email,
        role: RoleId,
        ttl: Duration,
        now: OffsetDateTime,
    ) -> Result<(Invitation, SecretString), StoreError> {
        let role_rec = self.role(role).await?;
        let org = self.org();
        let members: i64 = with_conn!(self.tx, c => {
            sqlx::query_scalar("SELECT count(*) FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.org_id = $1 AND u.email = $2")
                .bind(org)
                .bind(email.as_str())
                .fetch_one(c)
                .await?
        });
        if members > 0 {
            return Err(StoreError::Conflict("already_a_member"));
        }
        let (token, hash) = new_token("fdi");
        let id = InvitationId::new();
        let invited_by = self.ctx().user_id().map(|u| u.as_uuid());
        with_conn!(self.tx, c => {
            // A new invitation to the same address replaces a pending one.
            sqlx::query("UPDATE invitations SET revoked_at = $3 WHERE org_id = $1 AND email = $2 AND accepted_at IS NULL AND revoked_at IS NULL")
                .bind(org)
                .bind(email.as_str())
                .bind(now)
                .execute(&mut *c)
                .await?;
            sqlx::query("INSERT INTO invitations (org_id, id, email, role_id, token_hash, invited_by, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
                .bind(org)
                .bind(id.as_uuid())
                .bind(email.as_str())
                .bind(role.as_uuid())
                .bind(&hash[..])
                .bind(invited_by)
                .bind(now)
                .bind(now + ttl)
                .execute(&mut *c)
                .await?;
        });
        self.audit(AuditRecord::new(
            "invitation.created",
            "invitation",
            id.to_string(),
            serde_json::json!({ "role_id": role }),
        ))
        .await?;
        Ok((
            Invitation {
                id,
                email: email.as_str().to_owned(),
                role_id: role,
                role_name: role_rec.name,
                state: InvitationState::Pending,
                created_at: now,
                expires_at: now + ttl,
            },
            token,
        ))
    }

    /// Withdraws a pending invitation; false if there was none pending with that id.
    pub async fn revoke_invitation(
        &mut self,
        id: InvitationId,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let org = self.org();
        let exists: i64 = with_conn!(self.tx, c => {
            sqlx::query_scalar("SELECT count(*) FROM invitations WHERE org_id = $1 AND id = $2")
                .bind(org)
                .bind(id.as_uuid())
                .fetch_one(c)
                .await?
        });
        if exists == 0 {
            return Err(StoreError::NotFound);
        }
        let n = with_conn!(self.tx, c => {
            sqlx::query("UPDATE invitations SET revoked_at = $3 WHERE org_id = $1 AND id = $2 AND accepted_at IS NULL AND revoked_at IS NULL")
                .bind(org)
                .bind(id.as_uuid())
                .bind(now)
                .execute(c)
                .await?
                .rows_affected()
        });
        if n > 0 {
            self.audit(AuditRecord::new(
                "invitation.revoked",
                "invitation",
                id.to_string(),
                serde_json::json!({}),
            ))
            .await?;
        }
        Ok(n > 0)
    }
}

/// Maps a unique violation to a conflict with this code; otherwise the rows affected.
fn map_unique(r: Result<u64, sqlx::Error>, code: &'static str) -> Result<u64, StoreError> {
    match r {
        Ok(n) => Ok(n),
        Err(e)
            if e.as_database_error()
                .is_some_and(|d| d.is_unique_violation()) =>
        {
            Err(StoreError::Conflict(code))
        }
        Err(e) => Err(e.into()),
    }
}
